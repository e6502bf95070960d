import { recordAuditEvent, type AuditContext } from "../audit/audit-log.ts";
import type { Clock } from "../platform/clock.ts";
import type { Config } from "../platform/config/config.ts";
import type { EntityManager } from "../platform/database/orm.ts";
import { gatehouseError } from "../platform/errors/gatehouse-error.ts";
import { normaliseEmail } from "../users/identity.ts";
import { pageSizeOf, type PageTokens } from "../users/page-token.ts";
import { assignableRoles } from "../users/roles.ts";
import { inTransaction, sqlExecutor } from "../users/transaction.ts";
import { generateInvitationCode, hashInvitationCode } from "./invitation-code.ts";
import {
  deleteInvitationRow,
  insertInvitation,
  listInvitationPage,
  type InvitationCursor,
  type InvitationRecord,
} from "./invitation-repository.ts";

export interface NewInvitationInput {
  roles: readonly string[];
  email: string | undefined;
  /** 0 means 1. */
  maxUses: number;
  expireTime: Date;
  creatorId: string;
}

export type InvitationService = ReturnType<typeof createInvitationService>;

/** Invitations for the admin: create (the code is returned once), list without codes, delete. */
export function createInvitationService(deps: { config: Pick<Config, "roles">; clock: Clock; pageTokens: PageTokens }) {
  const { config, clock, pageTokens } = deps;
  return {
    async createInvitation(em: EntityManager, input: NewInvitationInput, audit: AuditContext): Promise<{ invitation: InvitationRecord; code: string }> {
      const roles = assignableRoles(input.roles, config.roles);
      if (input.expireTime.getTime() <= clock.now().getTime()) {
        throw gatehouseError("VALIDATION_FAILED", "expire_time must be in the future.", { metadata: { field: "expire_time" } });
      }
      const code = generateInvitationCode();
      return inTransaction(em, async (tx) => {
        const invitation = await insertInvitation(tx, {
          codeHash: hashInvitationCode(code),
          roles,
          email: input.email ? normaliseEmail(input.email) : null,
          maxUses: input.maxUses === 0 ? 1 : input.maxUses,
          expireTime: input.expireTime,
          creatorId: input.creatorId,
        });
        await recordAuditEvent(tx, {
          type: "invitation_created",
          time: clock.now(),
          actorUserId: audit.actorUserId,
          sessionId: audit.sessionId,
          client: audit.client,
          details: {
            invitation_id: invitation.id,
            roles: invitation.roles,
            max_uses: invitation.maxUses,
            expire_time: invitation.expireTime.toISOString(),
            email_restricted: invitation.email !== null,
          },
        });
        return { invitation, code };
      });
    },

    async listInvitations(em: EntityManager, input: { pageSize: number; pageToken: string }) {
      const limit = pageSizeOf(input.pageSize);
      const db = sqlExecutor(em);
      const cursor = checkedCursor(await pageTokens.read(db, "invitations", null, input.pageToken));
      const page = await listInvitationPage(db, cursor, limit);
      return {
        invitations: page.invitations,
        nextPageToken: page.next ? await pageTokens.issue(db, "invitations", null, page.next) : "",
      };
    },

    async deleteInvitation(em: EntityManager, id: string, audit: AuditContext): Promise<void> {
      await inTransaction(em, async (tx) => {
        if (!(await deleteInvitationRow(tx, id))) throw gatehouseError("INVITATION_NOT_FOUND");
        await recordAuditEvent(tx, {
          type: "invitation_deleted",
          time: clock.now(),
          actorUserId: audit.actorUserId,
          sessionId: audit.sessionId,
          client: audit.client,
          details: { invitation_id: id },
        });
      });
    },
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function checkedCursor(cursor: unknown): InvitationCursor | undefined {
  if (cursor === undefined) return undefined;
  const c = cursor as Record<string, unknown>;
  if (typeof c.createTime === "string" && typeof c.id === "string" && UUID.test(c.id)) return { createTime: c.createTime, id: c.id };
  throw gatehouseError("VALIDATION_FAILED", "The page token is not valid for this list; start again from the first page.", {
    metadata: { field: "page_token" },
  });
}
