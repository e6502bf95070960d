import { defineEntity, p, type InferEntity } from "@mikro-orm/core";

/**
 * A person who can sign in. `username` and `email` are stored already normalised (see
 * identity.ts), so the unique indexes on them are case- and form-insensitive by construction.
 */
export const UserEntity = defineEntity({
  name: "User",
  tableName: "users",
  // Keyset pagination walks (create_time, id); the unique username index serves the other order.
  indexes: [{ name: "users_create_time_id_idx", properties: ["createTime", "id"] }],
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
