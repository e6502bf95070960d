import { defineEntity, p, type InferEntity } from "@mikro-orm/core";
import { SessionEntity } from "./session.entity.ts";

/**
 * Every refresh token a session was ever given, kept as a SHA-256 hash only. A row with
 * `rotateTime` set was exchanged already; presenting it again is reuse and ends the session.
 *
 * The one row of a session without `rotateTime` is its current token, and it records the
 * session's last use: `createTime` (when it was issued, at sign-in or by the latest refresh) and
 * the client that used it. A refresh thus inserts one row and marks one, and never updates the
 * session: rewriting that row on every refresh left chains of dead versions that every later
 * refresh of the session had to walk (docs/benchmarks.md). A token's client is cleared when it
 * is exchanged, so a long session's history stays small.
 */
export const RefreshTokenEntity = defineEntity({
  name: "RefreshToken",
  tableName: "refresh_tokens",
  // The session's current token is found by walking this index backwards from its newest entry.
  indexes: [{ name: "refresh_tokens_session_id_create_time_idx", properties: ["session", "createTime"] }],
  properties: {
    tokenHash: p.type("bytea").primary().columnType("bytea"),
    session: () => p.manyToOne(SessionEntity).deleteRule("cascade"),
    createTime: p.datetime().defaultRaw("now()"),
    rotateTime: p.datetime().nullable(),
    userAgent: p.string().length(512).default(""),
    ipAddress: p.string().length(64).default(""),
  },
});

export type RefreshToken = InferEntity<typeof RefreshTokenEntity>;
