import { cors as connectCors } from "@connectrpc/connect";
import { respond, type HttpRequest, type HttpResponse } from "./http-routes.ts";

const ALLOW_METHODS = connectCors.allowedMethods.join(", ");
const ALLOW_HEADERS = [...connectCors.allowedHeaders, "Authorization"].join(", ");
const EXPOSE_HEADERS = [...connectCors.exposedHeaders, "Retry-After"].join(", ");

/**
 * Applies the CORS allow-list. Returns true when the request was a preflight and has been
 * answered. Origins not on the list get no CORS headers, so browsers refuse the response.
 */
export function applyCors(allowedOrigins: ReadonlySet<string>, req: HttpRequest, res: HttpResponse): boolean {
  const origin = req.headers.origin;
  if (typeof origin !== "string" || !allowedOrigins.has(origin)) {
    if (req.method === "OPTIONS" && typeof origin === "string") {
      respond(res, 403, { vary: "Origin" });
      return true;
    }
    return false;
  }
  res.setHeader("access-control-allow-origin", origin);
  res.setHeader("access-control-allow-credentials", "true");
  res.setHeader("vary", "Origin");
  if (req.method !== "OPTIONS") {
    res.setHeader("access-control-expose-headers", EXPOSE_HEADERS);
    return false;
  }
  respond(res, 204, {
    "access-control-allow-methods": ALLOW_METHODS,
    "access-control-allow-headers": ALLOW_HEADERS,
    "access-control-max-age": "7200",
  });
  return true;
}
