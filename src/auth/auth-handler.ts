import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { SessionSchema, type AuthService } from "../../gen/gatehouse/auth/v1/auth_pb.js";
import { callKysely } from "../platform/database/request-scope.ts";
import { gatehouseError } from "../platform/errors/gatehouse-error.ts";
import { observeRefresh, observeSignIn } from "../platform/observability/metrics.ts";
import { kClient } from "../platform/server/context.ts";
import { toUserMessage } from "../users/user-mapper.ts";
import type { AuthServiceImpl, Database } from "./auth-service.ts";
import { requireCaller } from "./caller.ts";
import type { RefreshCookies } from "./refresh-cookie.ts";

/** The call's database: the pool's Kysely, and transactions on it. */
function database(ctx: HandlerContext): Database {
  const db = callKysely(ctx) as Database["db"];
  return { db, transaction: (work) => db.transaction().execute(work) };
}

/** Wire ↔ domain for gatehouse.auth.v1.AuthService; the rules live in auth-service.ts. */
export function createAuthHandler(
  auth: AuthServiceImpl,
  cookies: RefreshCookies = { deliver: (_ctx, tokens) => tokens, refreshToken: (_ctx, token) => token, clear: () => {} },
): ServiceImpl<typeof AuthService> {
  return {
    async register(req, ctx) {
      const { user, tokens } = await auth.register(
        database(ctx),
        {
          username: req.username,
          email: req.email,
          password: req.password,
          firstName: req.firstName,
          lastName: req.lastName,
          invitationCode: req.invitationCode,
        },
        ctx.values.get(kClient),
      );
      return { user: toUserMessage(user), tokens: cookies.deliver(ctx, tokens) };
    },

    async login(req, ctx) {
      const { identifier } = req;
      // protovalidate already requires one of them; this keeps the type honest.
      if (identifier.case === undefined) throw gatehouseError("VALIDATION_FAILED", "Send either an email or a username.");
      const { user, tokens } = await observeSignIn(ctx, () =>
        auth.login(
          database(ctx),
          {
            identifier: identifier.case === "email" ? { email: identifier.value } : { username: identifier.value },
            password: req.password,
          },
          ctx.values.get(kClient),
        ),
      );
      return { user: toUserMessage(user), tokens: cookies.deliver(ctx, tokens) };
    },

    async refresh(req, ctx) {
      const refreshToken = cookies.refreshToken(ctx, req.refreshToken);
      const tokens = await observeRefresh(ctx, () => auth.refresh(database(ctx), refreshToken, ctx.values.get(kClient)));
      return { tokens: cookies.deliver(ctx, tokens) };
    },

    async logout(_req, ctx) {
      await auth.logout(database(ctx), requireCaller(ctx), ctx.values.get(kClient));
      cookies.clear(ctx);
      return {};
    },

    async logoutAll(req, ctx) {
      return { revokedSessions: await auth.logoutAll(database(ctx), requireCaller(ctx), req.password, ctx.values.get(kClient)) };
    },

    async getMe(_req, ctx) {
      return { user: toUserMessage(auth.getMe(requireCaller(ctx))) };
    },

    async changePassword(req, ctx) {
      const tokens = await auth.changePassword(
        database(ctx),
        requireCaller(ctx),
        { currentPassword: req.currentPassword, newPassword: req.newPassword },
        ctx.values.get(kClient),
      );
      return { tokens: cookies.deliver(ctx, tokens) };
    },

    async listSessions(_req, ctx) {
      const sessions = await auth.listSessions(database(ctx), requireCaller(ctx));
      return {
        sessions: sessions.map(({ session, current }) =>
          create(SessionSchema, {
            id: session.id,
            createTime: timestampFromDate(session.create_time),
            lastUseTime: timestampFromDate(session.last_use_time),
            expireTime: timestampFromDate(session.expire_time),
            userAgent: session.user_agent,
            ipAddress: session.ip_address,
            current,
          }),
        ),
      };
    },

    async revokeSession(req, ctx) {
      await auth.revokeSession(database(ctx), requireCaller(ctx), req.sessionId, ctx.values.get(kClient));
      return {};
    },

    async introspect(req, ctx) {
      const result = await auth.introspect(database(ctx), req.token, ctx.values.get(kClient));
      if (!result.active) return { active: false };
      return {
        active: true,
        sub: result.userId,
        sid: result.sessionId,
        roles: [...(result.roles ?? [])],
        exp: result.expireTime ? timestampFromDate(result.expireTime) : undefined,
      };
    },
  };
}
