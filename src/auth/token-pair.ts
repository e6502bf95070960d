import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { TokenPairSchema, type TokenPair } from "../../gen/gatehouse/auth/v1/auth_pb.js";
import type { Clock } from "../platform/clock.ts";
import type { Config } from "../platform/config/config.ts";
import { newRefreshToken } from "../sessions/refresh-token.ts";
import { insertSession, refreshTokenExpireTime, type ClientInfo, type Db, type SessionRow } from "../sessions/session-store.ts";
import type { AccessTokens } from "./access-token.ts";

export interface TokenIssuer {
  readonly config: Pick<Config, "sessionTtlMs" | "sessionIdleTtlMs">;
  readonly clock: Clock;
  readonly accessTokens: AccessTokens;
}

/** The wire TokenPair for a session, its fresh refresh token and the user's current roles. */
export async function issueTokenPair(
  issuer: TokenIssuer,
  input: { session: SessionRow; refreshToken: string; roles: readonly string[] },
): Promise<TokenPair> {
  const { session, refreshToken, roles } = input;
  const access = await issuer.accessTokens.issue({
    userId: session.user_id,
    sessionId: session.id,
    roles,
    notAfter: session.expire_time,
  });
  return create(TokenPairSchema, {
    accessToken: access.token,
    accessTokenExpireTime: timestampFromDate(access.expireTime),
    refreshToken,
    refreshTokenExpireTime: timestampFromDate(refreshTokenExpireTime(session, issuer.config)),
    tokenType: "Bearer",
    sessionId: session.id,
  });
}

/**
 * Signs a user in: starts a new session (one statement) and returns its token pair. Pass a
 * transaction as `db` to make the session part of a larger change (as Register does).
 */
export async function startSession(
  issuer: TokenIssuer,
  db: Db,
  input: { userId: string; roles: readonly string[]; client: ClientInfo },
): Promise<TokenPair> {
  const refresh = newRefreshToken();
  const session = await insertSession(db, {
    userId: input.userId,
    refreshTokenHash: refresh.hash,
    now: issuer.clock.now(),
    lifetimes: issuer.config,
    client: input.client,
  });
  return issueTokenPair(issuer, { session, refreshToken: refresh.token, roles: input.roles });
}
