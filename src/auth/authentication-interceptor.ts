import type { Interceptor } from "@connectrpc/connect";
import { AuthService } from "../../gen/gatehouse/auth/v1/auth_pb.js";
import type { Clock } from "../platform/clock.ts";
import type { Config } from "../platform/config/config.ts";
import { gatehouseError } from "../platform/errors/gatehouse-error.ts";
import { kKysely } from "../platform/server/context.ts";
import { sessionEnded, type Db } from "../sessions/session-store.ts";
import type { AccessTokens, AccessTokenClaims } from "./access-token.ts";
import type { CallerCache } from "./caller-cache.ts";
import { findCaller, type CallerState } from "./credential-store.ts";
import { kCaller, type Caller } from "./caller.ts";

/** Methods anyone may call without an access token (SPEC §3). */
const PUBLIC_METHODS = new Set(
  ["Register", "Login", "Refresh", "Introspect"].map((method) => `${AuthService.typeName}/${method}`),
);

/** `Bearer <token>`: the scheme is case-insensitive (RFC 9110), the token a base64url JWS. */
const BEARER = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i;

/**
 * Establishes the caller of every non-public method: verifies the access token, then checks
 * that its session still stands and reads the user's CURRENT row (roles, disabled flag), so a
 * logout, a revocation, a disabled or deleted user, or a demotion takes effect on the next call
 * (on other instances, once its database notification arrives: see caller-cache.ts). That check
 * is one indexed query, or none when the caller cache holds the session. Sets
 * `kCaller`; anything else is `unauthenticated`. Standard gRPC services (`grpc.*`: health,
 * reflection) stay public.
 */
export function createAuthenticationInterceptor(deps: AuthenticationDeps & { accessTokens: AccessTokens }): Interceptor {
  return (next) => async (req) => {
    const procedure = `${req.service.typeName}/${req.method.name}`;
    if (PUBLIC_METHODS.has(procedure) || req.service.typeName.startsWith("grpc.")) return next(req);

    const header = req.header.get("authorization");
    if (header === null || header.trim() === "") throw gatehouseError("TOKEN_MISSING");
    const match = BEARER.exec(header);
    if (!match) throw gatehouseError("TOKEN_INVALID", "The Authorization header must be `Bearer <access token>`.");

    const claims = await deps.accessTokens.verify(match[1]!);
    const db = req.contextValues.get(kKysely);
    if (!db) throw new Error("the request-scope interceptor must run before authentication");
    req.contextValues.set(kCaller, await authenticate(db, claims, deps));
    return next(req);
  };
}

export interface AuthenticationDeps {
  clock: Clock;
  config: Pick<Config, "sessionTtlMs" | "sessionIdleTtlMs">;
  callerCache?: CallerCache;
}

/** The caller behind verified claims, or SESSION_REVOKED / TOKEN_EXPIRED when its session no longer stands. */
export async function authenticate(db: Db, claims: AccessTokenClaims, deps: AuthenticationDeps): Promise<Caller> {
  const { clock, config, callerCache } = deps;
  const now = clock.now();
  const cached = callerCache?.get(claims.sessionId, claims.userId, now.getTime());
  if (cached && !sessionEnded(cached.session, now, config)) return toCaller(claims, cached);

  const generation = callerCache?.generation ?? 0;
  const state = await findCaller(db, { sessionId: claims.sessionId, userId: claims.userId });
  // A deleted user's sessions are gone with it (cascade); a disabled user's are ended.
  if (!state || state.session.revoke_time !== null || state.user.disabled) throw gatehouseError("SESSION_REVOKED");
  if (sessionEnded(state.session, now, config)) throw gatehouseError("TOKEN_EXPIRED", "This session has expired; sign in again.");
  callerCache?.set(claims.sessionId, state, generation, now.getTime());
  return toCaller(claims, state);
}

function toCaller(claims: AccessTokenClaims, state: CallerState): Caller {
  return {
    userId: claims.userId,
    sessionId: claims.sessionId,
    roles: state.user.roles,
    isAdmin: state.user.roles.includes("admin"),
    user: state.user,
  };
}
