import { defineEntity, p, type InferEntity } from "@mikro-orm/core";
import { SessionEntity } from "./session.entity.ts";

/**
 * Every refresh token a session was ever given, kept as a SHA-256 hash only. A row with
 * `rotateTime` set was exchanged already; presenting it again is reuse and ends the session.
 */
export const RefreshTokenEntity = defineEntity({
  name: "RefreshToken",
  tableName: "refresh_tokens",
  properties: {
    tokenHash: p.type("bytea").primary().columnType("bytea"),
    session: () => p.manyToOne(SessionEntity).deleteRule("cascade").index("refresh_tokens_session_id_idx"),
    createTime: p.datetime().defaultRaw("now()"),
    rotateTime: p.datetime().nullable(),
  },
});

export type RefreshToken = InferEntity<typeof RefreshTokenEntity>;
