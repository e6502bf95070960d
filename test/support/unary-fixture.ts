/**
 * What the unary fast-path tests (test/platform/grpc-unary.test.ts, connect-unary.test.ts) serve
 * on both sides of their comparison: a small AuthService implementation, an interceptor that sets
 * a header and a trailer, and the options connect-es and the fast path are both built with.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, createContextValues, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { AuthService } from "../../gen/gatehouse/auth/v1/auth_pb.js";
import { UserSchema } from "../../gen/gatehouse/user/v1/user_pb.js";
import { gatehouseError } from "../../src/platform/errors/gatehouse-error.ts";
import { createLogger } from "../../src/platform/observability/logger.ts";
import { answerDecodingError, answerUndecodableRequestsAsInvalid, rejectedHandlerAnswer } from "../../src/platform/server/decoding-errors.ts";
import type { HttpRequest, HttpResponse } from "../../src/platform/server/http-routes.ts";
import { serviceSpec } from "../../src/platform/server/unary-fast-path.ts";

export const READ_MAX_BYTES = 512;
const kCaller = createContextKey<string>("", { description: "who is calling" });
const logger = createLogger("silent");

/** What the implementation saw of the last Refresh call's signal, for the cancellation cases. */
export const lastAbort: { seen?: { reason: unknown } } = {};

/**
 * GetMe answers with the caller from the context values and a first name as long as the
 * `x-name-length` header asks (and, asked by `x-unwritable-answer`, a header HTTP/1.1 cannot carry); Introspect fails in a way its token picks; Refresh waits for its
 * signal to abort, then fails with the signal's reason.
 */
const implementation = {
  getMe: (_req: unknown, ctx: { requestHeader: Headers; responseHeader: Headers; values: { get(key: typeof kCaller): string } }) => {
    const size = Number(ctx.requestHeader.get("x-name-length") ?? "6");
    // A header value that Headers takes but node:http refuses to write (a DEL character).
    if (ctx.requestHeader.has("x-unwritable-answer")) ctx.responseHeader.set("x-name", "Ada\x7f");
    return { user: create(UserSchema, { id: "u-1", username: ctx.values.get(kCaller), firstName: "G".repeat(size), roles: ["user"] }) };
  },
  introspect: (req: { token: string }) => {
    if (req.token === "surrogate") throw new ConnectError(`no such token: \ud800`, Code.NotFound);
    if (req.token === "busy") throw gatehouseError("RATE_LIMITED", "Too many calls; wait a moment.", { retryAfterMs: 2_500 });
    if (req.token === "crash") throw new TypeError("something broke");
    throw gatehouseError("TOKEN_INVALID", `The token ${req.token} is not valid.`);
  },
  refresh: async (_req: unknown, ctx: { signal: AbortSignal }) => {
    await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
    lastAbort.seen = { reason: ctx.signal.reason };
    throw ctx.signal.reason;
  },
};

const stamp: Interceptor = (next) => async (req) => {
  const res = await next(req);
  res.header.set("x-stamped", req.method.name);
  res.trailer.set("x-stamped-trailer", "yes");
  return res;
};

/** As the server's: unknown JSON fields and invalid UTF-8 are refused. */
const jsonOptions = { ignoreUnknownFields: false, textDecoder: new TextDecoder("utf-8", { fatal: true }) };

const options = {
  interceptors: [stamp],
  readMaxBytes: READ_MAX_BYTES,
  jsonOptions,
  contextValues: (req: { headers: Record<string, unknown> }) => createContextValues().set(kCaller, String(req.headers["x-caller"] ?? "nobody")),
};

/** connect-es' own adapter for the fixture: the reference side, and the fast path's fallback. */
export function referenceAdapter(): (req: HttpRequest, res: HttpResponse) => void {
  return connectNodeAdapter({
    routes: (router) => {
      router.service(AuthService, implementation as never);
      answerUndecodableRequestsAsInvalid(router, logger);
    },
    ...options,
  });
}

/**
 * The options of a fast path for the fixture, its fallback connect-es' adapter; `fellBack.count`
 * counts the requests the fast path handed to it.
 */
export function fastPathOptions(fellBack: { count: number }) {
  const fallback = referenceAdapter();
  return {
    services: [serviceSpec(AuthService, implementation as never)],
    ...options,
    answerDecodingError,
    answerRejected: (error: unknown, procedure: string) => rejectedHandlerAnswer(error, logger, procedure),
    logger,
    fallback: (req: HttpRequest, res: HttpResponse) => {
      fellBack.count++;
      fallback(req, res);
    },
  };
}
