import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext } from "@connectrpc/connect";
import type { TokenPair } from "../../gen/gatehouse/auth/v1/auth_pb.js";
import type { Config } from "../platform/config/config.ts";

/**
 * Cookie mode for browsers (GATEHOUSE_REFRESH_COOKIE=on): the refresh token travels only in an
 * `HttpOnly; Secure; SameSite=Strict` cookie scoped to the Refresh procedure, so no script —
 * an XSS payload included — can read it, and the response body carries an empty refresh_token.
 *
 * It applies to calls from the browser origins on the CORS allow-list only; other callers
 * (backends, curl, gRPC) get the refresh token in the body as always. Refresh accepts the cookie
 * only from such an origin: a request that carries the cookie from anywhere else is a
 * cross-site forgery attempt and reads as "no token". (Connect's JSON or protobuf content types
 * already force a CORS preflight, which Gatehouse answers only for listed origins.)
 */
export const REFRESH_COOKIE_NAME = "__Secure-gatehouse-refresh";
export const REFRESH_COOKIE_PATH = "/gatehouse.auth.v1.AuthService/Refresh";

export interface RefreshCookies {
  /** The pair to send back: unchanged, or with the refresh token moved into a Set-Cookie. */
  deliver(ctx: HandlerContext, tokens: TokenPair | undefined): TokenPair | undefined;
  /** The refresh token of a Refresh call: the body's, else (cookie mode, listed origin) the cookie's. */
  refreshToken(ctx: HandlerContext, fromBody: string): string;
  /** Expires the cookie (after a logout). */
  clear(ctx: HandlerContext): void;
}

export function createRefreshCookies(config: Pick<Config, "refreshCookie" | "corsOrigins">): RefreshCookies {
  const origins = new Set(config.corsOrigins);
  const applies = (ctx: HandlerContext) => {
    if (!config.refreshCookie) return false;
    const origin = ctx.requestHeader.get("origin");
    return origin !== null && origins.has(origin);
  };
  const setCookie = (ctx: HandlerContext, value: string, maxAgeSeconds: number) =>
    ctx.responseHeader.append(
      "set-cookie",
      `${REFRESH_COOKIE_NAME}=${value}; Path=${REFRESH_COOKIE_PATH}; Max-Age=${maxAgeSeconds}; HttpOnly; Secure; SameSite=Strict`,
    );

  return {
    deliver(ctx, tokens) {
      if (!tokens || !applies(ctx)) return tokens;
      const expires = tokens.refreshTokenExpireTime ? timestampDate(tokens.refreshTokenExpireTime).getTime() : Date.now();
      setCookie(ctx, tokens.refreshToken, Math.max(0, Math.floor((expires - Date.now()) / 1000)));
      return { ...tokens, refreshToken: "" };
    },
    refreshToken(ctx, fromBody) {
      if (fromBody !== "" || !applies(ctx)) return fromBody;
      return readCookie(ctx.requestHeader.get("cookie") ?? "", REFRESH_COOKIE_NAME) ?? "";
    },
    clear(ctx) {
      if (applies(ctx)) setCookie(ctx, "", 0);
    },
  };
}

function readCookie(header: string, name: string): string | undefined {
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
