import { defineEntity, p, type InferEntity } from "@mikro-orm/core";
import { UserEntity } from "../users/user.entity.ts";

/**
 * One signed-in device. It ends at `expireTime` (absolute, never extended), after the idle
 * lifetime without a refresh, or when `revokeTime` is set.
 */
export const SessionEntity = defineEntity({
  name: "Session",
  tableName: "sessions",
  // Instances cache authenticated callers (src/auth/caller-cache.ts) and forget a session on
  // these: it was revoked, re-timed or moved, or deleted while it still stood.
  triggers: [
    {
      name: "sessions_notify_caller_state_update",
      timing: "after",
      events: ["update"],
      // As PostgreSQL prints a trigger's condition back (MikroORM compares the text).
      when: "((old.revoke_time IS DISTINCT FROM new.revoke_time) OR (old.expire_time IS DISTINCT FROM new.expire_time) OR (old.user_id IS DISTINCT FROM new.user_id))",
      body: "perform pg_notify('gatehouse_caller_state', 's:' || old.id::text); return null;",
    },
    {
      name: "sessions_notify_caller_state_delete",
      timing: "after",
      events: ["delete"],
      when: "(old.revoke_time IS NULL)",
      body: "perform pg_notify('gatehouse_caller_state', 's:' || old.id::text); return null;",
    },
  ],
  properties: {
    id: p.uuid().primary().defaultRaw("gen_random_uuid()"),
    user: () => p.manyToOne(UserEntity).deleteRule("cascade").index("sessions_user_id_idx"),
    createTime: p.datetime().defaultRaw("now()"),
    lastUseTime: p.datetime().defaultRaw("now()"),
    expireTime: p.datetime().index("sessions_expire_time_idx"),
    revokeTime: p.datetime().nullable(),
    revokeReason: p.string().length(64).nullable(),
    userAgent: p.string().length(512).default(""),
    ipAddress: p.string().length(64).default(""),
  },
});

export type Session = InferEntity<typeof SessionEntity>;
