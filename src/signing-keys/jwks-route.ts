import type { Logger } from "../platform/observability/logger.ts";
import { sendJson, type HttpRoute } from "../platform/server/http-routes.ts";
import type { SigningKeys } from "./signing-keys.ts";

/** The path other services fetch Gatehouse's public keys from (RFC 7517, RFC 8414 convention). */
export const JWKS_PATH = "/.well-known/jwks.json";

/**
 * `GET /.well-known/jwks.json`. Verifiers may cache it for five minutes: a new key is only ever
 * needed after a rotation, and verifiers such as jose's remote JWK set re-fetch on an unknown `kid`.
 */
export function createJwksRoute(keys: SigningKeys, logger: Logger): Record<string, HttpRoute> {
  return {
    [JWKS_PATH]: async (_req, res) => {
      try {
        sendJson(res, 200, await keys.jwks(), {
          "content-type": "application/jwk-set+json",
          "cache-control": "public, max-age=300",
        });
      } catch (err) {
        logger.warn({ err }, "JWKS unavailable");
        sendJson(res, 503, { code: "unavailable", message: "The signing keys cannot be read right now; try again shortly." }, {
          "cache-control": "no-store",
        });
      }
    },
  };
}
