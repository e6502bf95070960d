import type { Interceptor } from "@connectrpc/connect";
import { AuthService } from "../../gen/gatehouse/auth/v1/auth_pb.js";
import type { Clock } from "../platform/clock.ts";
import type { Config } from "../platform/config/config.ts";
import { gatehouseError } from "../platform/errors/gatehouse-error.ts";
import { kEntityManager } from "../platform/server/context.ts";
import { findCallerSession, sessionEnded } from "../sessions/session-store.ts";
import type { AccessTokens, AccessTokenClaims } from "./access-token.ts";
import { kCaller, type Caller } from "./caller.ts";

/** Methods anyone may call without an access token (SPEC §3). */
const PUBLIC_METHODS = new Set(
  ["Register", "Login", "Refresh", "Introspect"].map((method) => `${AuthService.typeName}/${method}`),
);

/** `Bearer <token>`: the scheme is case-insensitive (RFC 9110), the token a base64url JWS. */
const BEARER = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i;

/**
 * Establishes the caller of every non-public method: verifies the access token, then — in one
 * indexed query — checks that its session still stands and reads the user's CURRENT roles and
 * disabled flag, so a logout, a revocation, a disabled or deleted user, or a demotion takes
 * effect on the very next call on every instance. Sets `kCaller`; anything else is
 * `unauthenticated`. Standard gRPC services (`grpc.*`: health, reflection) stay public.
 */
export function createAuthenticationInterceptor(deps: {
  accessTokens: AccessTokens;
  clock: Clock;
  config: Pick<Config, "sessionTtlMs" | "sessionIdleTtlMs">;
}): Interceptor {
  return (next) => async (req) => {
    const procedure = `${req.service.typeName}/${req.method.name}`;
    if (PUBLIC_METHODS.has(procedure) || req.service.typeName.startsWith("grpc.")) return next(req);

    const header = req.header.get("authorization");
    if (header === null || header.trim() === "") throw gatehouseError("TOKEN_MISSING");
    const match = BEARER.exec(header);
    if (!match) throw gatehouseError("TOKEN_INVALID", "The Authorization header must be `Bearer <access token>`.");

    const claims = await deps.accessTokens.verify(match[1]!);
    const em = req.contextValues.get(kEntityManager);
    if (!em) throw new Error("the request-scope interceptor must run before authentication");
    req.contextValues.set(kCaller, await authenticate(em.getKysely(), claims, deps));
    return next(req);
  };
}

/** The caller behind verified claims, or SESSION_REVOKED / TOKEN_EXPIRED when its session no longer stands. */
export async function authenticate(
  db: Parameters<typeof findCallerSession>[0],
  claims: AccessTokenClaims,
  deps: { clock: Clock; config: Pick<Config, "sessionTtlMs" | "sessionIdleTtlMs"> },
): Promise<Caller> {
  const state = await findCallerSession(db, { sessionId: claims.sessionId, userId: claims.userId });
  // A deleted user's sessions are gone with it (cascade); a disabled user's are ended.
  if (!state || state.revoke_time !== null || state.disabled) throw gatehouseError("SESSION_REVOKED");
  if (sessionEnded(state, deps.clock.now(), deps.config)) throw gatehouseError("TOKEN_EXPIRED", "This session has expired; sign in again.");
  return {
    userId: claims.userId,
    sessionId: claims.sessionId,
    roles: state.roles,
    isAdmin: state.roles.includes("admin"),
  };
}
