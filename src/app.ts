import { createContextValues } from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { MikroORM } from "@mikro-orm/postgresql";
import { AuthService } from "../gen/gatehouse/auth/v1/auth_pb.js";
import { UserService } from "../gen/gatehouse/user/v1/user_pb.js";
import { createAuthHandler } from "./auth/auth-handler.ts";
import type { Config } from "./platform/config/config.ts";
import { createRequestScopeInterceptor } from "./platform/database/request-scope.ts";
import { ErrorInfoSchema } from "./platform/errors/error-details.ts";
import { createErrorInterceptor } from "./platform/errors/error-interceptor.ts";
import { cachedReadiness } from "./platform/grpc/grpc-health.ts";
import { createGrpcPlatform } from "./platform/grpc/grpc-platform.ts";
import type { Logger } from "./platform/observability/logger.ts";
import { createRequestLogInterceptor } from "./platform/observability/request-log.ts";
import { kClient } from "./platform/server/context.ts";
import { createHealthRoutes, isDatabaseReachable } from "./platform/server/health-routes.ts";
import { sendNotFound } from "./platform/server/http-routes.ts";
import { createGatehouseServer, type GatehouseServer } from "./platform/server/server.ts";
import { createUserHandler } from "./users/user-handler.ts";

/**
 * The composition root: every service, interceptor and endpoint of Gatehouse, wired once.
 * Interceptors run outermost first: log → map errors → scope the database → validate.
 */
export function createApp(config: Config, logger: Logger, orm: MikroORM): GatehouseServer {
  const rpcHandler = connectNodeAdapter({
    routes: (router) => {
      router.service(AuthService, createAuthHandler());
      router.service(UserService, createUserHandler());
    },
    interceptors: [
      createRequestLogInterceptor(logger),
      createErrorInterceptor(logger),
      createRequestScopeInterceptor(orm),
      createValidateInterceptor(),
    ],
    readMaxBytes: config.maxRequestBytes,
    maxTimeoutMs: config.maxCallTimeoutMs,
    jsonOptions: { ignoreUnknownFields: false },
    contextValues: (req) =>
      createContextValues().set(kClient, {
        ipAddress: req.socket.remoteAddress ?? "",
        userAgent: String(req.headers["user-agent"] ?? "").slice(0, 512),
      }),
    fallback: sendNotFound,
  });

  // gRPC health and reflection sit in front of the API on their own router: public by nature,
  // they take no part in the API's authentication or database scope, and they answer with the
  // plain gRPC codes their protocols define (NOT_FOUND for an unknown service), no ErrorInfo.
  const grpcPlatform = createGrpcPlatform({
    services: [AuthService, UserService],
    // Lets reflection clients decode the google.rpc.ErrorInfo detail of every Gatehouse error.
    extraFiles: [ErrorInfoSchema.file],
    isReady: cachedReadiness(() => isDatabaseReachable(orm)),
  });
  const platformRpcHandler = connectNodeAdapter({
    routes: grpcPlatform.routes,
    interceptors: [createRequestLogInterceptor(logger)],
    readMaxBytes: config.maxRequestBytes,
    maxTimeoutMs: config.maxCallTimeoutMs,
    fallback: rpcHandler,
  });

  const server = createGatehouseServer({
    config,
    logger,
    rpcHandler: platformRpcHandler,
    routes: { ...createHealthRoutes(orm) },
  });
  return {
    listen: () => server.listen(),
    close: () => {
      grpcPlatform.shutdown();
      return server.close();
    },
  };
}
