import type { User as UserMessage } from "../../gen/gatehouse/user/v1/user_pb.js";
import { recordAuditEvent, type AuditContext, type AuditEventInput } from "../audit/audit-log.ts";
import type { Caller } from "../auth/caller.ts";
import type { PasswordHasher } from "../passwords/password-hasher.ts";
import { checkPasswordPolicy } from "../passwords/password-policy.ts";
import type { Clock } from "../platform/clock.ts";
import type { Config } from "../platform/config/config.ts";
import type { EntityManager } from "../platform/database/orm.ts";
import { gatehouseError } from "../platform/errors/gatehouse-error.ts";
import { normaliseEmail, normaliseUsername } from "./identity.ts";
import { pageSizeOf, type PageTokens } from "./page-token.ts";
import { ADMIN_ROLE, assignableRoles } from "./roles.ts";
import { inTransaction, sqlExecutor } from "./transaction.ts";
import { ADMIN_ONLY_FIELDS, fieldsToUpdate } from "./update-mask.ts";
import type { UserRecord } from "./user-mapper.ts";
import {
  countUsers,
  deleteUserRow,
  findUser,
  insertUser,
  listUserPage,
  lockEnabledAdmins,
  lockUser,
  revokeUserSessions,
  setPasswordHash,
  updateUserRow,
  type UserChanges,
  type UserCursor,
  type UserListFilter,
  type UserOrder,
} from "./user-repository.ts";

export interface UserServiceDeps {
  readonly config: Pick<Config, "roles">;
  readonly passwordHasher: PasswordHasher;
  readonly clock: Clock;
  readonly pageTokens: PageTokens;
}

export interface NewUserInput {
  username: string;
  email: string;
  firstName: string;
  lastName: string;
  roles: readonly string[];
  /** An account can be created disabled, e.g. prepared ahead of someone's first day. */
  disabled?: boolean;
  password: string;
}

export interface ListUsersInput {
  pageSize: number;
  pageToken: string;
  filter: UserListFilter;
  orderBy: string;
}

export interface ListUsersResult {
  users: UserRecord[];
  nextPageToken: string;
  totalSize: number;
}

export type UserService = ReturnType<typeof createUserService>;

/** The part of an audit event that comes from the call: who acted, from where, in which session. */
function actedBy(audit: AuditContext): Pick<AuditEventInput, "actorUserId" | "sessionId" | "client"> {
  return { actorUserId: audit.actorUserId, sessionId: audit.sessionId, client: audit.client };
}

/** Whether two role lists hold the same roles, in any order. */
function sameRoles(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join(",") === [...b].sort().join(",");
}

/**
 * The rules of user management, free of any transport: who may see and change what, AIP-134
 * updates, the last-admin guarantee, and session revocation on disable or password reset.
 * Admin-only methods expect the handler to have checked the caller already; the methods that
 * a user may also call on itself take the caller and decide.
 */
export function createUserService(deps: UserServiceDeps) {
  const { config, passwordHasher, clock, pageTokens } = deps;

  return {
    /**
     * Admin only (checked by the caller of this method). `source` tells the audit trail how a
     * user was made outside the API (`cli`, `bootstrap`).
     */
    async createUser(em: EntityManager, input: NewUserInput, audit: AuditContext, source?: string): Promise<UserRecord> {
      const username = normaliseUsername(input.username);
      const email = normaliseEmail(input.email);
      const roles = assignableRoles(input.roles, config.roles);
      checkPasswordPolicy(input.password, { username, email });
      const passwordHash = await passwordHasher.hash(input.password);
      return inTransaction(em, async (tx) => {
        const user = await insertUser(tx, {
          username,
          email,
          passwordHash,
          firstName: input.firstName.trim(),
          lastName: input.lastName.trim(),
          roles,
          disabled: input.disabled ?? false,
        });
        await recordAuditEvent(tx, {
          type: "user_created",
          time: clock.now(),
          ...actedBy(audit),
          subjectUserId: user.id,
          details: { roles: user.roles, disabled: user.disabled, ...(source ? { source } : {}) },
        });
        return user;
      });
    },

    /** Admin, or the user itself; permission is decided before the id is looked up. */
    async getUser(em: EntityManager, caller: Caller, id: string): Promise<UserRecord> {
      if (!caller.isAdmin && caller.userId !== id) throw gatehouseError("ADMIN_REQUIRED");
      const user = await findUser(sqlExecutor(em), id);
      if (!user) throw gatehouseError("USER_NOT_FOUND");
      return user;
    },

    /** Admin only. */
    async listUsers(em: EntityManager, input: ListUsersInput): Promise<ListUsersResult> {
      const limit = pageSizeOf(input.pageSize);
      const order: UserOrder = input.orderBy === "username" ? "username" : "create_time";
      if (input.orderBy !== "" && input.orderBy !== order) {
        throw gatehouseError("VALIDATION_FAILED", 'order_by must be "create_time" or "username".', { metadata: { field: "order_by" } });
      }
      const filter: UserListFilter = { ...input.filter, query: input.filter.query.trim() };
      if (filter.role !== "") assignableRoles([filter.role], config.roles);
      // A token is only good for the filter and order it was issued for.
      const scope = { order, query: filter.query, role: filter.role, disabled: filter.disabled ?? null };
      const db = sqlExecutor(em);
      const cursor = checkedCursor(await pageTokens.read(db, "users", scope, input.pageToken), order);
      const [page, totalSize] = await Promise.all([listUserPage(db, filter, order, cursor, limit), countUsers(db, filter)]);
      return {
        users: page.users,
        nextPageToken: page.next ? await pageTokens.issue(db, "users", scope, page.next) : "",
        totalSize,
      };
    },

    /**
     * AIP-134 update. A non-admin may change only its own username, email and names; naming
     * `roles` or `disabled` (in the mask, through `*`, or by setting them without a mask) is
     * refused, never ignored. The mask is applied to the row read under its lock, so concurrent
     * updates of different fields never undo each other.
     */
    async updateUser(
      em: EntityManager,
      caller: Caller,
      patch: UserMessage,
      maskPaths: readonly string[] | undefined,
      audit: AuditContext,
    ): Promise<UserRecord> {
      if (!caller.isAdmin && caller.userId !== patch.id) throw gatehouseError("ADMIN_REQUIRED");
      const fields = fieldsToUpdate(patch, maskPaths);
      if (!caller.isAdmin && ADMIN_ONLY_FIELDS.some((field) => fields.has(field))) {
        throw gatehouseError("ADMIN_REQUIRED", "Only an administrator may change roles or the disabled flag.");
      }
      for (const [name, value] of [
        ["create_time", patch.createTime],
        ["update_time", patch.updateTime],
        ["last_login_time", patch.lastLoginTime],
      ] as const) {
        if (value !== undefined) {
          throw gatehouseError("VALIDATION_FAILED", `user.${name} is output only and cannot be set.`, { metadata: { field: `user.${name}` } });
        }
      }

      const changes: Partial<UserChanges> = {};
      if (fields.has("username")) {
        if (patch.username === "") throw cannotClear("username");
        changes.username = normaliseUsername(patch.username);
      }
      if (fields.has("email")) {
        if (patch.email === "") throw cannotClear("email");
        changes.email = normaliseEmail(patch.email);
      }
      if (fields.has("first_name")) changes.firstName = patch.firstName.trim();
      if (fields.has("last_name")) changes.lastName = patch.lastName.trim();
      if (fields.has("roles")) changes.roles = assignableRoles(patch.roles, config.roles);
      if (fields.has("disabled")) changes.disabled = patch.disabled;

      const touchesAdminRights = fields.has("roles") || fields.has("disabled");
      return inTransaction(em, async (tx) => {
        // Admin rows first, in id order, then the target: the same order DeleteUser uses.
        const enabledAdmins = touchesAdminRights ? await lockEnabledAdmins(tx) : [];
        const current = await lockUser(tx, patch.id);
        if (!current) throw gatehouseError("USER_NOT_FOUND");
        if (fields.size === 0) return current;

        const next: UserChanges = {
          username: current.username,
          email: current.email,
          firstName: current.firstName,
          lastName: current.lastName,
          roles: current.roles,
          disabled: current.disabled,
          ...changes,
        };
        const wasEnabledAdmin = current.roles.includes(ADMIN_ROLE) && !current.disabled;
        const staysEnabledAdmin = next.roles.includes(ADMIN_ROLE) && !next.disabled;
        if (wasEnabledAdmin && !staysEnabledAdmin && !enabledAdmins.some((id) => id !== current.id)) {
          throw gatehouseError("LAST_ADMIN");
        }
        const updated = await updateUserRow(tx, current.id, next);
        const now = clock.now();
        const event = { time: now, ...actedBy(audit), subjectUserId: current.id };
        const profileFields = (["username", "email", "firstName", "lastName"] as const).filter((field) => current[field] !== updated[field]);
        if (profileFields.length > 0) {
          const names = { username: "username", email: "email", firstName: "first_name", lastName: "last_name" } as const;
          await recordAuditEvent(tx, { ...event, type: "user_updated", details: { fields: profileFields.map((field) => names[field]) } });
        }
        if (!sameRoles(current.roles, updated.roles)) {
          await recordAuditEvent(tx, { ...event, type: "roles_changed", details: { old_roles: current.roles, new_roles: updated.roles } });
        }
        if (next.disabled && !current.disabled) {
          const revoked = await revokeUserSessions(tx, current.id, "user_disabled", now);
          await recordAuditEvent(tx, { ...event, type: "user_disabled", details: { revoked_sessions: revoked } });
        }
        if (!next.disabled && current.disabled) await recordAuditEvent(tx, { ...event, type: "user_enabled" });
        return updated;
      });
    },

    /** Admin only. Sessions and refresh tokens go with the user. */
    async deleteUser(em: EntityManager, id: string, audit: AuditContext): Promise<void> {
      await inTransaction(em, async (tx) => {
        const enabledAdmins = await lockEnabledAdmins(tx);
        const current = await lockUser(tx, id);
        if (!current) throw gatehouseError("USER_NOT_FOUND");
        if (enabledAdmins.includes(id) && enabledAdmins.length === 1) throw gatehouseError("LAST_ADMIN");
        await deleteUserRow(tx, id);
        // The id leads nowhere once the row is gone; the username says who it was.
        await recordAuditEvent(tx, {
          type: "user_deleted",
          time: clock.now(),
          ...actedBy(audit),
          subjectUserId: id,
          details: { username: current.username },
        });
      });
    },

    /** Admin only. The user's sessions end in the same transaction as the new hash is stored. */
    async setPassword(em: EntityManager, id: string, password: string, audit: AuditContext): Promise<void> {
      const user = await findUser(sqlExecutor(em), id);
      if (!user) throw gatehouseError("USER_NOT_FOUND");
      checkPasswordPolicy(password, { username: user.username, email: user.email });
      const passwordHash = await passwordHasher.hash(password);
      await inTransaction(em, async (tx) => {
        if (!(await setPasswordHash(tx, id, passwordHash))) throw gatehouseError("USER_NOT_FOUND");
        const now = clock.now();
        const revoked = await revokeUserSessions(tx, id, "password_set", now);
        await recordAuditEvent(tx, { type: "password_reset", time: now, ...actedBy(audit), subjectUserId: id, details: { revoked_sessions: revoked } });
      });
    },
  };
}

function cannotClear(field: string) {
  return gatehouseError("VALIDATION_FAILED", `user.${field} cannot be cleared.`, { metadata: { field: `user.${field}` } });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PG_TIMESTAMP = /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([+-]\d{2}(:?\d{2}){0,2}|Z)?$/;

/** The cursor of a verified page token, checked for shape anyway (a signed token is still input). */
function checkedCursor(cursor: unknown, order: UserOrder): UserCursor | undefined {
  if (cursor === undefined) return undefined;
  const c = cursor as Record<string, unknown>;
  if (order === "create_time" && typeof c.createTime === "string" && UUID.test(String(c.id)) && PG_TIMESTAMP.test(c.createTime)) {
    return { order, createTime: c.createTime, id: String(c.id) };
  }
  if (order === "username" && typeof c.username === "string") return { order, username: c.username };
  throw gatehouseError("VALIDATION_FAILED", "The page token is not valid for this list; start again from the first page.", {
    metadata: { field: "page_token" },
  });
}
