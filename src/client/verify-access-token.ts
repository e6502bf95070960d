import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload } from "jose";

/**
 * Verifies Gatehouse access tokens inside another service, with Gatehouse's public keys (JWKS)
 * and no call to Gatehouse per request. A token stays valid here until its `exp` even if its
 * session is revoked; call `AuthService.Introspect` where revocation must take effect at once.
 */

/** The only algorithms Gatehouse signs with; anything else (`none`, HS*, RS*) is refused. */
export type AccessTokenAlgorithm = "EdDSA" | "ES256";

export interface VerifyAccessTokenOptions {
  /** Gatehouse's `GATEHOUSE_ISSUER`; the token's `iss` must equal it. */
  issuer: string;
  /** The `aud` this service accepts (Gatehouse's `GATEHOUSE_AUDIENCE`), or several. */
  audience: string | readonly string[];
  /** Where the public keys are served; defaults to `<issuer>/.well-known/jwks.json`. */
  jwksUrl?: string | URL;
  /** Allowed clock skew between this host and Gatehouse, in seconds: 0 to 60, default 30. */
  clockToleranceSec?: number;
  /** Accepted signing algorithms; default both Gatehouse supports. */
  algorithms?: readonly AccessTokenAlgorithm[];
  /** How long fetched keys are trusted before a refetch, in ms (default 10 minutes). */
  jwksCacheMaxAgeMs?: number;
  /**
   * The least time between two key fetches, in ms (default 30 s). A token with an unknown `kid`
   * (after a key rotation) triggers a refetch once this has passed since the last one.
   */
  jwksCooldownMs?: number;
}

/** What a verified Gatehouse access token says. */
export interface AccessTokenClaims {
  /** The user's id. */
  readonly sub: string;
  /** The session the token belongs to. */
  readonly sid: string;
  /** The user's roles when the token was issued (at most 15 minutes ago by default). */
  readonly roles: readonly string[];
  /** Expiry, in seconds since the epoch. */
  readonly exp: number;
  readonly iat: number;
  /** The token's unique id. */
  readonly jti: string;
  readonly iss: string;
  readonly aud: string | readonly string[];
}

export type AccessTokenErrorCode = "TOKEN_INVALID" | "TOKEN_EXPIRED" | "JWKS_UNAVAILABLE";

/** Why a token was refused: answer 401 for the TOKEN_* codes, 503 for JWKS_UNAVAILABLE. */
export class AccessTokenError extends Error {
  readonly code: AccessTokenErrorCode;
  constructor(code: AccessTokenErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AccessTokenError";
    this.code = code;
  }
}

export type AccessTokenVerifier = (token: string) => Promise<AccessTokenClaims>;

const ACCESS_TOKEN_TYPE = "at+jwt";
const MAX_CLOCK_TOLERANCE_SEC = 60;
const ALGORITHMS: readonly AccessTokenAlgorithm[] = ["EdDSA", "ES256"];

/**
 * Makes a verifier that keeps its key set between calls. Create one per service and reuse it:
 * keys are fetched once, cached, and refetched when a token names a key not seen yet.
 */
export function createAccessTokenVerifier(options: VerifyAccessTokenOptions): AccessTokenVerifier {
  const clockTolerance = options.clockToleranceSec ?? 30;
  if (!(clockTolerance >= 0 && clockTolerance <= MAX_CLOCK_TOLERANCE_SEC)) {
    throw new RangeError(`clockToleranceSec must be between 0 and ${MAX_CLOCK_TOLERANCE_SEC}`);
  }
  const algorithms = [...(options.algorithms ?? ALGORITHMS)];
  if (algorithms.length === 0 || algorithms.some((alg) => !ALGORITHMS.includes(alg))) {
    throw new RangeError(`algorithms must be a non-empty subset of ${ALGORITHMS.join(", ")}`);
  }
  const audience = typeof options.audience === "string" ? options.audience : [...options.audience];
  const jwksUrl = new URL(options.jwksUrl ?? `${options.issuer.replace(/\/+$/, "")}/.well-known/jwks.json`);
  const keys = createRemoteJWKSet(jwksUrl, {
    cacheMaxAge: options.jwksCacheMaxAgeMs ?? 10 * 60_000,
    cooldownDuration: options.jwksCooldownMs ?? 30_000,
    timeoutDuration: 5_000,
  });

  return async (token) => {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        issuer: options.issuer,
        audience,
        algorithms,
        typ: ACCESS_TOKEN_TYPE,
        clockTolerance,
        requiredClaims: ["iss", "sub", "aud", "exp", "iat", "jti"],
      }));
    } catch (error) {
      throw toAccessTokenError(error);
    }
    const { sub, sid, roles, exp, iat, jti, iss, aud } = payload;
    if (
      typeof sub !== "string" ||
      typeof sid !== "string" ||
      typeof jti !== "string" ||
      typeof iss !== "string" ||
      typeof exp !== "number" ||
      typeof iat !== "number" ||
      aud === undefined ||
      !Array.isArray(roles) ||
      !roles.every((role) => typeof role === "string")
    ) {
      throw new AccessTokenError("TOKEN_INVALID", "The access token lacks a Gatehouse claim.");
    }
    return { sub, sid, roles: roles as string[], exp, iat, jti, iss, aud };
  };
}

const verifiers = new Map<string, AccessTokenVerifier>();

/**
 * One-call form of {@link createAccessTokenVerifier}: verifiers (and their cached keys) are kept
 * per distinct set of options, so calling this on every request fetches the keys only once.
 */
export function verifyAccessToken(token: string, options: VerifyAccessTokenOptions): Promise<AccessTokenClaims> {
  const key = JSON.stringify([
    options.issuer,
    options.audience,
    String(options.jwksUrl ?? ""),
    options.clockToleranceSec,
    options.algorithms,
    options.jwksCacheMaxAgeMs,
    options.jwksCooldownMs,
  ]);
  let verifier = verifiers.get(key);
  if (!verifier) verifiers.set(key, (verifier = createAccessTokenVerifier(options)));
  return verifier(token);
}

function toAccessTokenError(error: unknown): AccessTokenError {
  if (error instanceof errors.JWTExpired) {
    return new AccessTokenError("TOKEN_EXPIRED", "The access token has expired.", { cause: error });
  }
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid || isFetchFailure(error)) {
    return new AccessTokenError("JWKS_UNAVAILABLE", "Gatehouse's public keys could not be fetched.", { cause: error });
  }
  return new AccessTokenError("TOKEN_INVALID", "The access token is not valid.", { cause: error });
}

/** fetch() rejects with a TypeError on network failure; jose reports a non-200 or non-JSON answer as a plain JOSEError. */
function isFetchFailure(error: unknown): boolean {
  if (error instanceof TypeError) return true;
  return error instanceof errors.JOSEError && error.code === "ERR_JOSE_GENERIC" && /JSON Web Key Set HTTP response/.test(error.message);
}
