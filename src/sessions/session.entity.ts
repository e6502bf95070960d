import { defineEntity, p, type InferEntity } from "@mikro-orm/core";
import { UserEntity } from "../users/user.entity.ts";

/**
 * One signed-in device. It ends at `expireTime` (absolute, never extended), after the idle
 * lifetime without a refresh, or when `revokeTime` is set.
 */
export const SessionEntity = defineEntity({
  name: "Session",
  tableName: "sessions",
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
