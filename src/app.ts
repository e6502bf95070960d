import type { JsonReadOptions, JsonWriteOptions } from "@bufbuild/protobuf";
import { createContextValues } from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { MikroORM } from "@mikro-orm/postgresql";
import { AuthService } from "../gen/gatehouse/auth/v1/auth_pb.js";
import { UserService } from "../gen/gatehouse/user/v1/user_pb.js";
import { createAbuseProtection } from "./abuse/abuse-protection.ts";
import { createClientAddressResolver } from "./abuse/client-address.ts";
import { createAccessTokens } from "./auth/access-token.ts";
import { createAuthHandler } from "./auth/auth-handler.ts";
import { createAuthService } from "./auth/auth-service.ts";
import { createAuthenticationInterceptor } from "./auth/authentication-interceptor.ts";
import { CALLER_STATE_CHANNEL, createCallerCache, type CallerCache } from "./auth/caller-cache.ts";
import { createCallerStateSyncInterceptor } from "./auth/caller-state-sync.ts";
import { createRefreshCookies } from "./auth/refresh-cookie.ts";
import { createPasswordHasher } from "./passwords/password-hasher.ts";
import { createDatabaseClock, readDatabaseTime, type Clock } from "./platform/clock.ts";
import type { Config } from "./platform/config/config.ts";
import { createNotificationListener, type NotificationListener } from "./platform/database/notification-listener.ts";
import { createReadiness } from "./platform/database/readiness.ts";
import { createRequestScopeInterceptor } from "./platform/database/request-scope.ts";
import { openStatementPipeline } from "./platform/database/statement-pipeline.ts";
import { ErrorInfoSchema } from "./platform/errors/error-details.ts";
import { createErrorInterceptor } from "./platform/errors/error-interceptor.ts";
import { cachedReadiness } from "./platform/grpc/grpc-health.ts";
import { createGrpcPlatform } from "./platform/grpc/grpc-platform.ts";
import type { Logger } from "./platform/observability/logger.ts";
import { createMetrics, kMetrics } from "./platform/observability/metrics.ts";
import { createRequestLogInterceptor } from "./platform/observability/request-log.ts";
import { createCallDeadlineInterceptor } from "./platform/server/call-deadline.ts";
import { kClient } from "./platform/server/context.ts";
import { createHealthRoutes, isDatabaseReachable } from "./platform/server/health-routes.ts";
import { sendNotFound, type HttpRequest } from "./platform/server/http-routes.ts";
import { createConnectUnaryHandler } from "./platform/server/connect-unary.ts";
import { createGrpcUnaryHandler } from "./platform/server/grpc-unary.ts";
import { createNoStoreInterceptor } from "./platform/server/no-store.ts";
import { answerDecodingError, answerUndecodableRequestsAsInvalid, rejectedHandlerAnswer } from "./platform/server/decoding-errors.ts";
import { createGatehouseServer, type GatehouseServer } from "./platform/server/server.ts";
import { serviceSpec, type UnaryFastPathOptions } from "./platform/server/unary-fast-path.ts";
import { startSessionCleanup } from "./sessions/session-cleanup.ts";
import type { Db } from "./sessions/session-store.ts";
import { createJwksRoute } from "./signing-keys/jwks-route.ts";
import { createSigningKeys } from "./signing-keys/signing-keys.ts";
import { createUserHandler } from "./users/user-handler.ts";

/**
 * Request JSON: unknown fields are refused, not ignored; invalid UTF-8 is refused, not replaced
 * with U+FFFD (binary protobuf already refuses it in every string field). Connect hands these
 * options to its JSON serialization, which takes the decoder although the option type omits it.
 */
const JSON_OPTIONS: Partial<JsonReadOptions & JsonWriteOptions> & { textDecoder: { decode(bytes: Uint8Array): string } } = {
  ignoreUnknownFields: false,
  textDecoder: new TextDecoder("utf-8", { fatal: true }),
};

/** The server of createApp, which can also listen before its database is there. */
export interface GatehouseApp extends GatehouseServer {
  /** Listens at once; every RPC answers DATABASE_UNAVAILABLE (and /readyz 503) until `prepare()` has run. */
  listenBeforeReady(): Promise<number>;
  /** The start-up work this app needs from the database (clock offset, signing key); then it takes calls. */
  prepare(): Promise<void>;
}

/**
 * The composition root: every service, interceptor and endpoint of Gatehouse, wired once.
 * Interceptors run outermost first: metrics → log → no-store → map errors → readiness gate →
 * deadline → scope the database → sync the caller cache → authenticate → validate (a caller without a token learns
 * nothing about the request schema). `clock` decides every expiry (tests pass one they can move).
 */
export function createApp(config: Config, logger: Logger, orm: MikroORM, options: { clock?: Clock } = {}): GatehouseApp {
  const db = (): Db => orm.em.getConnection().getClient();
  // Every instance decides expiry by the database's clock, whatever its own host's clock says.
  const databaseClock = options.clock
    ? undefined
    : createDatabaseClock(
        () => readDatabaseTime(db()),
        (err) => logger.warn({ err }, "could not read the database clock; keeping the last offset"),
      );
  const clock = options.clock ?? databaseClock!;
  const hasher = createPasswordHasher(config);
  const signingKeys = createSigningKeys({ db, config, clock });
  const accessTokens = createAccessTokens({ config, clock, keys: signingKeys });
  const abuse = createAbuseProtection({ db, clock, config });
  const { callerCache, listener } = createCallerCacheWithListener(config, orm, logger);
  const pipeline = openStatementPipeline({ connectionString: orm.config.get("clientUrl")!, statementTimeoutMs: config.maxCallTimeoutMs, logger });
  const authService = createAuthService({ config, clock, hasher, accessTokens, abuse, callerCache, pipelined: pipeline.db });
  const sessionCleanup = startSessionCleanup({ db, clock, lifetimes: config, logger, abuse: config });
  const clientAddress = createClientAddressResolver(config.trustedProxies);

  const readiness = createReadiness(() => isDatabaseReachable(orm));
  const metrics = createMetrics();
  metrics.registerDatabasePool(() => orm.em.getConnection().getNativeClient());
  metrics.registerStatementPipeline(() => pipeline.inFlight);
  metrics.registerHashQueueGauge(() => hasher.queueDepth);
  if (callerCache && listener) {
    metrics.registerCallerCache(() => ({ hits: callerCache.hits, misses: callerCache.misses, entries: callerCache.size, listening: listener.listening }));
  }

  const auth = createAuthHandler(authService, createRefreshCookies(config));
  const users = createUserHandler({ config, passwordHasher: hasher, clock });
  const interceptors = [
    metrics.interceptor,
    createRequestLogInterceptor(logger),
    createNoStoreInterceptor(),
    createErrorInterceptor(logger),
    readiness.interceptor,
    createCallDeadlineInterceptor(config.maxCallTimeoutMs),
    createRequestScopeInterceptor(orm),
    ...(listener ? [createCallerStateSyncInterceptor(listener.catchUp)] : []),
    createAuthenticationInterceptor({ accessTokens, clock, config, callerCache }),
    createValidateInterceptor(),
  ];
  const contextValues = (req: HttpRequest) =>
    createContextValues()
      .set(kClient, {
        // X-Forwarded-For counts only from GATEHOUSE_TRUSTED_PROXIES (src/abuse/client-address.ts).
        ipAddress: clientAddress(req.socket.remoteAddress ?? "", req.headers["x-forwarded-for"]),
        userAgent: String(req.headers["user-agent"] ?? "").slice(0, 512),
      })
      .set(kMetrics, metrics);
  const connectHandler = connectNodeAdapter({
    routes: (router) => {
      router.service(AuthService, auth);
      router.service(UserService, users);
      answerUndecodableRequestsAsInvalid(router, logger);
    },
    interceptors,
    // Checked before parsing, and for compressed bodies against their inflated size.
    readMaxBytes: config.maxRequestBytes,
    // No maxTimeoutMs here: Connect would refuse a longer client deadline with invalid_argument;
    // the deadline interceptor caps it at maxCallTimeoutMs instead.
    jsonOptions: JSON_OPTIONS,
    contextValues,
    fallback: sendNotFound,
  });
  // Plain unary gRPC and Connect calls skip connect-node's adapter and connect-es' streaming
  // pipeline; everything else (GET, compressed requests, gRPC-Web, ...) is connect-es'.
  const unaryOptions: Omit<UnaryFastPathOptions, "fallback"> = {
    services: [serviceSpec(AuthService, auth), serviceSpec(UserService, users)],
    interceptors,
    readMaxBytes: config.maxRequestBytes,
    contextValues,
    answerDecodingError,
    answerRejected: (error, procedure) => rejectedHandlerAnswer(error, logger, procedure),
    logger,
  };
  const rpcHandler = createGrpcUnaryHandler({
    ...unaryOptions,
    fallback: createConnectUnaryHandler({ ...unaryOptions, jsonOptions: JSON_OPTIONS, fallback: connectHandler }),
  });

  // gRPC health and reflection sit in front of the API on their own router: public by nature,
  // they take no part in the API's authentication or database scope, and they answer with the
  // plain gRPC codes their protocols define (NOT_FOUND for an unknown service), no ErrorInfo.
  const grpcPlatform = createGrpcPlatform({
    services: [AuthService, UserService],
    // Lets reflection clients decode the google.rpc.ErrorInfo detail of every Gatehouse error.
    extraFiles: [ErrorInfoSchema.file],
    isReady: cachedReadiness(readiness.isReady),
  });
  const platformRpcHandler = connectNodeAdapter({
    routes: (router) => {
      grpcPlatform.routes(router);
      answerUndecodableRequestsAsInvalid(router, logger);
    },
    interceptors: [metrics.interceptor, createRequestLogInterceptor(logger)],
    readMaxBytes: config.maxRequestBytes,
    maxTimeoutMs: config.maxCallTimeoutMs,
    fallback: rpcHandler,
  });

  const server = createGatehouseServer({
    config,
    logger,
    rpcHandler: platformRpcHandler,
    routes: { ...createHealthRoutes(readiness.isReady), "/metrics": metrics.route, ...createJwksRoute(signingKeys, logger) },
  });
  const prepare = async () => {
    await databaseClock?.sync();
    if (databaseClock && Math.abs(databaseClock.offsetMs) > 1_000) {
      logger.warn({ offsetMs: Math.round(databaseClock.offsetMs) }, "this host's clock differs from the database's; using the database's");
    }
    // The first instance to start generates the signing key, before it takes any call.
    await signingKeys.active();
    readiness.markStarted();
  };
  return {
    listen: async () => {
      await prepare();
      return server.listen();
    },
    listenBeforeReady: () => server.listen(),
    prepare,
    close: async () => {
      sessionCleanup.stop();
      databaseClock?.stop();
      grpcPlatform.shutdown();
      try {
        await server.close();
      } finally {
        // After the drain: calls still answering may wait on them.
        await listener?.close();
        await pipeline.close();
      }
    },
  };
}

/** The caller cache and the database notifications that keep it honest; neither when its TTL is 0. */
function createCallerCacheWithListener(
  config: Config,
  orm: MikroORM,
  logger: Logger,
): { callerCache?: CallerCache; listener?: NotificationListener } {
  if (config.callerCacheTtlMs === 0) return {};
  let listening = () => false;
  const callerCache = createCallerCache({ isListening: () => listening(), ttlMs: config.callerCacheTtlMs });
  const listener = createNotificationListener({
    connectionString: orm.config.get("clientUrl")!,
    channel: CALLER_STATE_CHANNEL,
    onMessage: callerCache.invalidate,
    onReset: callerCache.clear,
    logger,
  });
  listening = () => listener.listening;
  return { callerCache, listener };
}
