import { randomUUID } from "node:crypto";
import { decodeProtectedHeader, errors, jwtVerify, SignJWT, type CryptoKey, type JWTPayload } from "jose";
import type { Clock } from "../platform/clock.ts";
import type { Config } from "../platform/config/config.ts";
import { gatehouseError } from "../platform/errors/gatehouse-error.ts";
import { VERIFY_LEEWAY_SECONDS, type SigningKeys } from "../signing-keys/signing-keys.ts";

/** The `typ` header of Gatehouse access tokens (RFC 9068), so no other JWT passes for one. */
export const ACCESS_TOKEN_TYPE = "at+jwt";

/** The claims Gatehouse relies on, after verification. */
export interface AccessTokenClaims {
  readonly userId: string;
  readonly sessionId: string;
  readonly roles: readonly string[];
  readonly expireTime: Date;
  readonly jti: string;
}

export interface IssuedAccessToken {
  readonly token: string;
  readonly expireTime: Date;
}

export interface AccessTokens {
  /** Signs an access token; it never outlives `notAfter` (the session's own end). */
  issue(subject: { userId: string; sessionId: string; roles: readonly string[]; notAfter?: Date }): Promise<IssuedAccessToken>;
  /** Verifies signature, header and claims; throws TOKEN_INVALID or TOKEN_EXPIRED. The session is NOT checked here. */
  verify(token: string): Promise<AccessTokenClaims>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const KID = /^[A-Za-z0-9_-]{1,64}$/;
/** Header parameters that point a verifier at a key of the token's choosing (RFC 8725 §3.10): never honoured. */
const KEY_POINTING_HEADERS = ["jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256"];
/** A compact JWS: three base64url parts. Anything else is not looked at further. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

type TokenConfig = Pick<Config, "issuer" | "audience" | "accessTokenTtlMs" | "signingAlg">;

/** Tokens whose signature and claims were checked recently; see `verify`. */
const VERIFIED_TOKENS_MAX = 5_000;

interface VerifiedToken {
  readonly claims: AccessTokenClaims;
  readonly kid: string;
  /** The key object it was verified with: a reload or removal of keys gives other objects. */
  readonly key: CryptoKey;
}

export function createAccessTokens(options: { config: TokenConfig; clock: Clock; keys: SigningKeys }): AccessTokens {
  const { config, clock, keys } = options;
  // A client sends the same access token with every call of its 15 minutes, and verifying an
  // EdDSA signature costs more than the rest of a GetMe: once a token has passed, later calls
  // only re-check its expiry and that the key it was verified with is still the one in use.
  const verified = new Map<string, VerifiedToken>();
  const remember = (token: string, entry: VerifiedToken) => {
    if (verified.size >= VERIFIED_TOKENS_MAX) verified.delete(verified.keys().next().value!);
    verified.set(token, entry);
  };

  return {
    async issue({ userId, sessionId, roles, notAfter }) {
      const key = await keys.active();
      const now = clock.now().getTime();
      let exp = Math.floor((now + config.accessTokenTtlMs) / 1000);
      if (notAfter) exp = Math.min(exp, Math.floor(notAfter.getTime() / 1000));
      const token = await new SignJWT({ sid: sessionId, roles: [...roles] })
        .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: ACCESS_TOKEN_TYPE })
        .setIssuer(config.issuer)
        .setSubject(userId)
        .setAudience(config.audience)
        .setIssuedAt(Math.floor(now / 1000))
        .setExpirationTime(exp)
        .setJti(randomUUID())
        .sign(key.privateKey);
      return { token, expireTime: new Date(exp * 1000) };
    },

    async verify(token) {
      const seen = verified.get(token);
      if (seen) {
        if ((await keys.verificationKey(seen.kid)) === seen.key) {
          if (clock.now().getTime() >= seen.claims.expireTime.getTime() + VERIFY_LEEWAY_SECONDS * 1000) {
            verified.delete(token);
            throw gatehouseError("TOKEN_EXPIRED");
          }
          return seen.claims;
        }
        verified.delete(token);
      }
      if (token.length > 8192 || !COMPACT_JWS.test(token)) throw invalid();
      let header: ReturnType<typeof decodeProtectedHeader>;
      try {
        header = decodeProtectedHeader(token);
      } catch {
        throw invalid();
      }
      if (header.alg !== config.signingAlg) throw invalid();
      if (typeof header.kid !== "string" || !KID.test(header.kid)) throw invalid();
      if (KEY_POINTING_HEADERS.some((name) => name in header) || header.crit !== undefined) throw invalid();
      const key = await keys.verificationKey(header.kid);
      if (!key) throw invalid();

      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, key, {
          algorithms: [config.signingAlg],
          issuer: config.issuer,
          audience: config.audience,
          typ: ACCESS_TOKEN_TYPE,
          clockTolerance: VERIFY_LEEWAY_SECONDS,
          currentDate: clock.now(),
          // Also refuses an `iat` in the future and a token older than Gatehouse would ever issue.
          maxTokenAge: Math.ceil(config.accessTokenTtlMs / 1000),
          requiredClaims: ["iss", "sub", "aud", "exp", "iat", "jti"],
        }));
      } catch (error) {
        if (error instanceof errors.JWTExpired) throw gatehouseError("TOKEN_EXPIRED", undefined, { cause: error });
        if (error instanceof errors.JOSEError) throw invalid(error);
        throw error;
      }
      const { sub, sid, roles, exp, jti } = payload;
      if (
        typeof sub !== "string" ||
        !UUID.test(sub) ||
        typeof sid !== "string" ||
        !UUID.test(sid) ||
        typeof jti !== "string" ||
        typeof exp !== "number" ||
        !Array.isArray(roles) ||
        !roles.every((role): role is string => typeof role === "string")
      ) {
        throw invalid();
      }
      const claims = { userId: sub, sessionId: sid, roles, expireTime: new Date(exp * 1000), jti };
      remember(token, { claims, kid: header.kid, key });
      return claims;
    },
  };
}

function invalid(cause?: unknown) {
  return gatehouseError("TOKEN_INVALID", undefined, { cause });
}
