import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { UserService } from "../../gen/gatehouse/user/v1/user_pb.js";
import { auditContext } from "../audit/audit-log.ts";
import { fromEventTypeMessage, toAuditEventMessage } from "../audit/audit-mapper.ts";
import { createAuditService } from "../audit/audit-service.ts";
import { requireAdmin, requireCaller } from "../auth/caller.ts";
import { toInvitationMessage } from "../invitations/invitation-mapper.ts";
import { createInvitationService } from "../invitations/invitation-service.ts";
import type { PasswordHasher } from "../passwords/password-hasher.ts";
import type { Clock } from "../platform/clock.ts";
import type { Config } from "../platform/config/config.ts";
import { entityManager } from "../platform/database/request-scope.ts";
import { gatehouseError } from "../platform/errors/gatehouse-error.ts";
import { createPageTokens } from "./page-token.ts";
import { toUserMessage } from "./user-mapper.ts";
import { createUserService } from "./user-service.ts";

export interface UserHandlerDeps {
  readonly config: Pick<Config, "roles">;
  readonly passwordHasher: PasswordHasher;
  readonly clock: Clock;
}

/**
 * Wire ↔ domain for gatehouse.user.v1.UserService. The authentication interceptor has already
 * established the caller; each method checks what the caller may do before it looks anything
 * up, so a non-admin cannot learn which ids exist.
 */
export function createUserHandler(deps: UserHandlerDeps): ServiceImpl<typeof UserService> {
  const pageTokens = createPageTokens();
  const users = createUserService({ ...deps, pageTokens });
  const invitations = createInvitationService({ ...deps, pageTokens });
  const auditTrail = createAuditService({ pageTokens });

  return {
    async createUser(req, ctx) {
      requireAdmin(ctx);
      const user = req.user!;
      const created = await users.createUser(
        entityManager(ctx),
        {
          username: user.username,
          email: user.email,
          firstName: user.firstName,
          lastName: user.lastName,
          roles: user.roles,
          disabled: user.disabled,
          password: req.password,
        },
        auditContext(ctx),
      );
      return { user: toUserMessage(created) };
    },

    async getUser(req, ctx) {
      const user = await users.getUser(entityManager(ctx), requireCaller(ctx), req.id);
      return { user: toUserMessage(user) };
    },

    async listUsers(req, ctx) {
      requireAdmin(ctx);
      const page = await users.listUsers(entityManager(ctx), {
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        orderBy: req.orderBy,
        filter: { query: req.filter?.query ?? "", role: req.filter?.role ?? "", disabled: req.filter?.disabled },
      });
      return { users: page.users.map(toUserMessage), nextPageToken: page.nextPageToken, totalSize: page.totalSize };
    },

    async updateUser(req, ctx) {
      const caller = requireCaller(ctx);
      // An empty mask is an absent mask (AIP-134).
      const paths = req.updateMask && req.updateMask.paths.length > 0 ? req.updateMask.paths : undefined;
      const user = await users.updateUser(entityManager(ctx), caller, req.user!, paths, auditContext(ctx));
      return { user: toUserMessage(user) };
    },

    async deleteUser(req, ctx) {
      requireAdmin(ctx);
      await users.deleteUser(entityManager(ctx), req.id, auditContext(ctx));
      return {};
    },

    async setPassword(req, ctx) {
      requireAdmin(ctx);
      await users.setPassword(entityManager(ctx), req.id, req.password, auditContext(ctx));
      return {};
    },

    async createInvitation(req, ctx) {
      const caller = requireAdmin(ctx);
      if (!req.expireTime) throw gatehouseError("VALIDATION_FAILED", "expire_time is required.", { metadata: { field: "expire_time" } });
      const { invitation, code } = await invitations.createInvitation(
        entityManager(ctx),
        {
          roles: req.roles,
          email: req.email,
          maxUses: req.maxUses,
          expireTime: timestampDate(req.expireTime),
          creatorId: caller.userId,
        },
        auditContext(ctx),
      );
      return { invitation: toInvitationMessage(invitation, code) };
    },

    async listInvitations(req, ctx) {
      requireAdmin(ctx);
      const page = await invitations.listInvitations(entityManager(ctx), { pageSize: req.pageSize, pageToken: req.pageToken });
      return { invitations: page.invitations.map((invitation) => toInvitationMessage(invitation)), nextPageToken: page.nextPageToken };
    },

    async deleteInvitation(req, ctx) {
      requireAdmin(ctx);
      await invitations.deleteInvitation(entityManager(ctx), req.id, auditContext(ctx));
      return {};
    },

    async listAuditEvents(req, ctx) {
      requireAdmin(ctx);
      const filter = req.filter;
      const page = await auditTrail.listAuditEvents(entityManager(ctx), {
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        filter: {
          userId: filter?.userId ? filter.userId.toLowerCase() : undefined,
          // protovalidate has refused UNSPECIFIED and unknown values already.
          types: (filter?.types ?? []).flatMap((type) => fromEventTypeMessage(type) ?? []),
          startTime: filter?.startTime ? timestampDate(filter.startTime) : undefined,
          endTime: filter?.endTime ? timestampDate(filter.endTime) : undefined,
        },
      });
      return { auditEvents: page.events.map(toAuditEventMessage), nextPageToken: page.nextPageToken };
    },
  };
}
