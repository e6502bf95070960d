import { randomUUID, sign } from "node:crypto";
import { decodeProtectedHeader, errors, jwtVerify, type CryptoKey, type JWTPayload } from "jose";
import type { Clock } from "../platform/clock.ts";
import type { Config } from "../platform/config/config.ts";
import { gatehouseError } from "../platform/errors/gatehouse-error.ts";
import { VERIFY_LEEWAY_SECONDS, type ActiveSigningKey, type SigningKeys } from "../signing-keys/signing-keys.ts";

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
      const header = { alg: key.alg, kid: key.kid, typ: ACCESS_TOKEN_TYPE };
      const claims = {
        sid: sessionId,
        roles: [...roles],
        iss: config.issuer,
        sub: userId,
        aud: config.audience,
        iat: Math.floor(now / 1000),
        exp,
        jti: randomUUID(),
      };
      return { token: signCompactJws(header, claims, key), expireTime: new Date(exp * 1000) };
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

/**
 * A compact JWS (RFC 7515 §7.1) of `claims`, signed with node:crypto. jose's SignJWT signs through
 * WebCrypto, which cost three times the main-thread time for the same signature (EdDSA: 122 µs
 * against 41 µs a token, measured), and a token is signed on every refresh. Verification stays
 * with jose, here and in every client, so each token issued is checked by the library.
 */
export function signCompactJws(header: object, claims: object, key: ActiveSigningKey): string {
  const input = `${Buffer.from(JSON.stringify(header)).toString("base64url")}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
  const signature =
    key.alg === "EdDSA"
      ? sign(null, Buffer.from(input), key.privateKey)
      : // JWS wants ECDSA's r‖s (RFC 7518 §3.4), not node's default DER.
        sign("sha256", Buffer.from(input), { key: key.privateKey, dsaEncoding: "ieee-p1363" });
  return `${input}.${signature.toString("base64url")}`;
}
