import { defineEntity, p, type InferEntity } from "@mikro-orm/core";

/**
 * A person who can sign in. `username` and `email` are stored already normalised (see
 * identity.ts), so the unique indexes on them are case- and form-insensitive by construction.
 */
export const UserEntity = defineEntity({
  name: "User",
  tableName: "users",
  // Keyset pagination walks (create_time, id); the unique username index serves the other order.
  // The rest keep ListUsers' filters off a full scan: GIN for `roles @> {role}`, pattern indexes
  // for the case-insensitive prefix search (username and email are stored lower-cased), and a
  // small partial index for listing the few disabled users in creation order.
  indexes: [
    { name: "users_create_time_id_idx", properties: ["createTime", "id"] },
    { name: "users_roles_idx", properties: ["roles"], type: "gin" },
    { name: "users_username_pattern_idx", expression: 'create index "users_username_pattern_idx" on "users" ("username" text_pattern_ops)' },
    { name: "users_email_pattern_idx", expression: 'create index "users_email_pattern_idx" on "users" ("email" text_pattern_ops)' },
    {
      name: "users_first_name_pattern_idx",
      expression: 'create index "users_first_name_pattern_idx" on "users" (lower("first_name") text_pattern_ops)',
    },
    {
      name: "users_last_name_pattern_idx",
      expression: 'create index "users_last_name_pattern_idx" on "users" (lower("last_name") text_pattern_ops)',
    },
    { name: "users_disabled_create_time_id_idx", properties: ["createTime", "id"], where: "disabled" },
  ],
  // Instances cache authenticated callers (src/auth/caller-cache.ts) and forget a user's sessions
  // on these, whoever changed the row: any instance, the CLI, an operator's SQL.
  triggers: [
    {
      name: "users_notify_caller_state_update",
      timing: "after",
      events: ["update"],
      // As PostgreSQL prints a trigger's condition back (MikroORM compares the text).
      when: "(old.* IS DISTINCT FROM new.*)",
      body: "perform pg_notify('gatehouse_caller_state', 'u:' || old.id::text); return null;",
    },
    {
      name: "users_notify_caller_state_delete",
      timing: "after",
      events: ["delete"],
      body: "perform pg_notify('gatehouse_caller_state', 'u:' || old.id::text); return null;",
    },
  ],
  properties: {
    id: p.uuid().primary().defaultRaw("gen_random_uuid()"),
    username: p.string().length(32).unique("users_username_key"),
    email: p.string().length(254).unique("users_email_key"),
    passwordHash: p.text().hidden().lazy(),
    firstName: p.string().length(100).default(""),
    lastName: p.string().length(100).default(""),
    roles: p.array().default([]),
    disabled: p.boolean().default(false),
    createTime: p.datetime().defaultRaw("now()"),
    updateTime: p.datetime().defaultRaw("now()"),
    lastLoginTime: p.datetime().nullable(),
  },
});

export type User = InferEntity<typeof UserEntity>;
