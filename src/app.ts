import { createContextValues } from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { MikroORM } from "@mikro-orm/postgresql";
import { AuthService } from "../gen/gatehouse/auth/v1/auth_pb.js";
import { UserService } from "../gen/gatehouse/user/v1/user_pb.js";
import { createAuthHandler } from "./auth/auth-handler.ts";
import type { Config } from "./platform/config/config.ts";
import { createRequestScopeInterceptor } from "./platform/database/request-scope.ts";
import { createErrorInterceptor } from "./platform/errors/error-interceptor.ts";
import type { Logger } from "./platform/observability/logger.ts";
import { createRequestLogInterceptor } from "./platform/observability/request-log.ts";
import { kClient } from "./platform/server/context.ts";
import { createHealthRoutes } from "./platform/server/health-routes.ts";
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

  return createGatehouseServer({
    config,
    logger,
    rpcHandler,
    routes: { ...createHealthRoutes(orm) },
  });
}
