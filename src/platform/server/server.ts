import { readFileSync } from "node:fs";
import { createServer as createHttp1Server, type Server as Http1Server } from "node:http";
import {
  createSecureServer,
  createServer as createHttp2Server,
  type Http2Server,
  type Http2SecureServer,
  type Http2Session,
} from "node:http2";
import type { Server as NetServer, Socket, AddressInfo } from "node:net";
import type { Config } from "../config/config.ts";
import type { Logger } from "../observability/logger.ts";
import { shareAbortReasons } from "./abort-reason.ts";
import { applyCors } from "./cors.ts";
import { rejectedHandlerAnswer } from "./decoding-errors.ts";
import { respond, sendConnectError, sendJson, sendNotFound, type HttpRequest, type HttpResponse, type HttpRoute } from "./http-routes.ts";
import { createProtocolListener } from "./protocol-listener.ts";

export interface ServerOptions {
  config: Pick<Config, "host" | "port" | "tls" | "corsOrigins" | "shutdownTimeoutMs"> &
    Partial<Pick<Config, "headersTimeoutMs" | "requestTimeoutMs" | "idleTimeoutMs">>;
  logger: Logger;
  /** Handles RPC paths; calls `fallback` for anything else. */
  rpcHandler: (req: HttpRequest, res: HttpResponse) => void;
  /** Plain GET endpoints by exact path. */
  routes: Record<string, HttpRoute>;
}

export interface GatehouseServer {
  /** Resolves with the bound port once listening. */
  listen(): Promise<number>;
  /** Stops accepting connections, lets in-flight calls finish, then closes what is left. */
  close(): Promise<void>;
}

/** How long an idle HTTP/1.1 keep-alive connection stays open between requests. */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;

export function createGatehouseServer(options: ServerOptions): GatehouseServer {
  shareAbortReasons();
  const { logger, rpcHandler, routes } = options;
  // The defaults of GATEHOUSE_HEADERS_TIMEOUT, _REQUEST_TIMEOUT and _IDLE_TIMEOUT.
  const config = { headersTimeoutMs: 10_000, requestTimeoutMs: 60_000, idleTimeoutMs: 60_000, ...options.config };
  const allowedOrigins = new Set(config.corsOrigins);
  let inFlight = 0;
  let drained: (() => void) | undefined;
  let closing = false;
  /** HTTP/1.1 answers not yet sent: on shutdown they say `Connection: close`, so no client reuses a connection about to go. */
  const pendingHttp1 = new Set<HttpResponse>();
  const closeAfter = (res: HttpResponse) => {
    if (!res.headersSent) res.setHeader("connection", "close");
  };

  const handle = (req: HttpRequest, res: HttpResponse): void => {
    inFlight++;
    const http1Answer = req.httpVersionMajor === 1;
    if (http1Answer) {
      if (closing) closeAfter(res);
      else pendingHttp1.add(res);
    }
    res.once("close", () => {
      inFlight--;
      pendingHttp1.delete(res);
      if (inFlight === 0) drained?.();
    });
    if (applyCors(allowedOrigins, req, res)) return;
    const path = (req.url ?? "/").split("?", 1)[0] ?? "/";
    const route = Object.hasOwn(routes, path) ? routes[path] : undefined;
    if (route && (req.method === "GET" || req.method === "HEAD")) {
      Promise.resolve(route(req, res)).catch((err: unknown) => {
        logger.error({ err, path }, "endpoint failed");
        if (!res.headersSent) respond(res, 500, {});
      });
      return;
    }
    if (!hasUsableUrl(req)) {
      sendJson(res, 400, { code: "invalid_argument", message: "The request needs a Host header (or :authority) and a target that together form a valid URL." });
      return;
    }
    try {
      rpcHandler(req, res);
    } catch (err) {
      const answer = rejectedHandlerAnswer(err, logger, path);
      if (!res.headersSent) sendConnectError(res, answer);
    }
  };

  const sessions = new Set<Http2Session>();
  const trackSessions = (server: Http2Server | Http2SecureServer): void => {
    server.on("session", (session) => {
      sessions.add(session);
      session.once("close", () => sessions.delete(session));
    });
    server.setTimeout(config.idleTimeoutMs);
  };

  let listener: NetServer | Http2SecureServer;
  let http1: Http1Server | undefined;
  // Slow clients (slowloris): Node answers 408 and closes an HTTP/1.1 connection whose headers
  // are not complete within headersTimeout, or whose whole request is not within requestTimeout.
  // It checks every connectionsCheckingInterval, so that is kept well below the timeouts.
  const slowClientLimits = {
    headersTimeout: config.headersTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(config.headersTimeoutMs / 4))),
  };
  if (config.tls) {
    // With TLS, HTTP/1.1 is the HTTP/2 server's fallback, which takes the same limits.
    const secure = createSecureServer(
      { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile), allowHTTP1: true, ...slowClientLimits },
      handle,
    );
    trackSessions(secure);
    listener = secure;
  } else {
    http1 = createHttp1Server({ ...slowClientLimits, keepAliveTimeout: Math.min(KEEP_ALIVE_TIMEOUT_MS, config.idleTimeoutMs) }, handle);
    // Node starts enforcing those timeouts (and tracking connections for closeIdleConnections and
    // closeAllConnections) when the server emits "listening"; this one never listens itself — the
    // protocol listener hands it its connections — so it is told here, or slow clients go unchecked.
    http1.emit("listening");
    const http2 = createHttp2Server({}, handle);
    trackSessions(http2);
    listener = createProtocolListener({ http1, http2, firstBytesTimeoutMs: config.headersTimeoutMs });
  }
  const sockets = new Set<Socket>();
  listener.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });

  return {
    listen: () =>
      new Promise((resolve, reject) => {
        listener.once("error", reject);
        listener.listen(config.port, config.host, () => {
          listener.off("error", reject);
          resolve((listener.address() as AddressInfo).port);
        });
      }),
    close: async () => {
      closing = true;
      for (const res of pendingHttp1) closeAfter(res);
      const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
      for (const session of sessions) session.close();
      http1?.closeIdleConnections();
      const idle = inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => (drained = resolve));
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), config.shutdownTimeoutMs)));
      if (await Promise.race([idle.then(() => false), timedOut])) {
        logger.warn({ inFlight }, "shutdown timeout reached; closing remaining connections");
      }
      clearTimeout(timer);
      http1?.closeAllConnections();
      // Stops its connection checks; it was never listening, so the callback only says so.
      http1?.close(() => {});
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

/**
 * Whether connect-node can build the call's URL from the request's authority and target. It
 * throws, outside any promise (so the process would exit), when it cannot: an HTTP/1.0 request
 * without Host, an HTTP/2 one without :authority, a Host or target that makes no URL.
 */
function hasUsableUrl(req: HttpRequest): boolean {
  const authority = "authority" in req ? req.authority : req.headers.host;
  return !!authority && URL.canParse(req.url ?? "", `http://${authority}`);
}

export { sendNotFound };
