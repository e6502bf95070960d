import { Code, ConnectError } from "@connectrpc/connect";
import type { TokenPair } from "../../gen/gatehouse/auth/v1/auth_pb.js";
import type { AbuseProtection } from "../abuse/abuse-protection.ts";
import { recordAuditEvent, type AuditEventType } from "../audit/audit-log.ts";
import { hashInvitationCode } from "../invitations/invitation-code.ts";
import { consumeInvitation } from "../invitations/invitation-repository.ts";
import type { PasswordHasher } from "../passwords/password-hasher.ts";
import { checkPasswordPolicy } from "../passwords/password-policy.ts";
import type { Clock } from "../platform/clock.ts";
import type { Config } from "../platform/config/config.ts";
import { gatehouseError } from "../platform/errors/gatehouse-error.ts";
import type { StatementGate } from "../platform/database/statement-gate.ts";
import { hashRefreshToken, newRefreshToken } from "../sessions/refresh-token.ts";
import {
  inspectRefreshToken,
  listLiveSessions,
  revokeSession,
  revokeUserSessions,
  rotateRefreshToken,
  sessionEnded,
  type ClientInfo,
  type Db,
  type SessionRow,
} from "../sessions/session-store.ts";
import { lookupUsername, normaliseEmail, normaliseUsername } from "../users/identity.ts";
import type { UserRecord } from "../users/user-mapper.ts";
import type { AccessTokens } from "./access-token.ts";
import { authenticate } from "./authentication-interceptor.ts";
import type { Caller } from "./caller.ts";
import type { CallerCache } from "./caller-cache.ts";
import {
  findUserWithHash,
  insertUser,
  recordLogin,
  updatePasswordHash,
} from "./credential-store.ts";
import { issueTokenPair, startSession } from "./token-pair.ts";

export interface AuthDeps {
  readonly config: Config;
  readonly clock: Clock;
  readonly hasher: PasswordHasher;
  readonly accessTokens: AccessTokens;
  readonly abuse: AbuseProtection;
  /** Authenticated callers seen recently (caller-cache.ts); without it, every check reads the database. */
  readonly callerCache?: CallerCache;
  /**
   * Where the refresh's rotation runs: the statement pipeline (statement-pipeline.ts), one
   * connection on which concurrent rotations are sent back to back. Without it, the call's pool.
   */
  readonly pipelined?: Db;
}

/** Where database work runs: the call's own executor, and a way to run a unit in one transaction. */
export interface Database {
  readonly db: Db;
  transaction<T>(work: (tx: Db) => Promise<T>): Promise<T>;
}

export interface SignedIn {
  readonly user: UserRecord;
  readonly tokens: TokenPair;
}

export interface Introspection {
  readonly active: boolean;
  readonly userId?: string;
  readonly sessionId?: string;
  readonly roles?: readonly string[];
  readonly expireTime?: Date;
}

/**
 * The rules of SPEC §3–§4, free of transport: each method takes the call's database and, for
 * protected methods, the authenticated caller.
 */
export function createAuthService(deps: AuthDeps) {
  const { config, clock, hasher, abuse } = deps;

  /** The same answer for an unknown user, a wrong or empty password: code, reason and message. */
  const invalidCredentials = () => gatehouseError("INVALID_CREDENTIALS");

  /**
   * A signed-in caller types its password again (LogoutAll, ChangePassword). A stolen access
   * token must not become a way to guess the password, so this is throttled like a sign-in, and
   * a wrong password is recorded as a failed `action`.
   */
  async function verifyCallerPassword(database: Database, caller: Caller, password: string, client: ClientInfo, action: AuditEventType) {
    const attempt = await abuse.beginPasswordAttempt(`user:${caller.userId}`, client.ipAddress);
    const found = await findUserWithHash(database.db, { id: caller.userId });
    if (!found) {
      await hasher.verifyDummy(password);
      throw gatehouseError("SESSION_REVOKED");
    }
    const { ok } = await hasher.verify(found.passwordHash, password);
    if (!ok) {
      await recordAuditEvent(database.db, {
        type: action,
        outcome: "failure",
        time: clock.now(),
        actorUserId: caller.userId,
        subjectUserId: caller.userId,
        sessionId: caller.sessionId,
        client,
        details: { reason: "INVALID_CREDENTIALS" },
      });
      throw invalidCredentials();
    }
    await attempt.succeeded();
    return found;
  }

  return {
    async register(
      database: Database,
      input: { username: string; email: string; password: string; firstName: string; lastName: string; invitationCode?: string },
      client: ClientInfo,
    ): Promise<SignedIn> {
      await abuse.limitCall("register", client.ipAddress);
      if (config.registrationMode === "closed") throw gatehouseError("REGISTRATION_CLOSED");
      const code = input.invitationCode ?? "";
      if (config.registrationMode === "invite" && code === "") {
        throw gatehouseError("INVALID_INVITATION", "Sign-up on this server needs an invitation code.");
      }
      const username = normaliseUsername(input.username);
      const email = normaliseEmail(input.email);
      checkPasswordPolicy(input.password, { username, email });
      // Hash before the transaction: no row is locked while argon2 runs.
      const passwordHash = await hasher.hash(input.password);

      return database.transaction(async (tx) => {
        const now = clock.now();
        let roles = ["user"];
        let invitationId: string | undefined;
        if (code !== "") {
          const invitation = await consumeInvitation(tx, { codeHash: hashInvitationCode(code), email, now });
          if (!invitation) throw gatehouseError("INVALID_INVITATION");
          if (invitation.roles.length > 0) roles = invitation.roles;
          invitationId = invitation.id;
        }
        // A taken username or email aborts the transaction, and with it the invitation use.
        const user = await insertUser(tx, {
          username,
          email,
          passwordHash,
          firstName: input.firstName,
          lastName: input.lastName,
          roles,
          now,
        });
        const tokens = await startSession(deps, tx, { userId: user.id, roles: user.roles, client });
        const event = { time: now, actorUserId: user.id, subjectUserId: user.id, sessionId: tokens.sessionId, client };
        await recordAuditEvent(tx, { ...event, type: "sign_up", details: { roles: user.roles } });
        if (invitationId) await recordAuditEvent(tx, { ...event, type: "invitation_used", details: { invitation_id: invitationId } });
        return { user, tokens };
      });
    },

    async login(
      database: Database,
      input: { identifier: { email: string } | { username: string }; password: string },
      client: ClientInfo,
    ): Promise<SignedIn> {
      await abuse.limitCall("login", client.ipAddress);
      const by =
        "email" in input.identifier
          ? { email: normaliseEmail(input.identifier.email) }
          : { username: lookupUsername(input.identifier.username) };
      const kind = "email" in by ? "email" : "username";
      // Throttled by what was typed, before anything is looked up or hashed: an unknown account
      // is throttled exactly like a known one.
      const attempt = await abuse.beginPasswordAttempt(`${kind}:${"email" in by ? by.email : by.username}`, client.ipAddress, {
        perAddress: true,
      });
      const found = await findUserWithHash(database.db, by);
      const failed = async (reason: "INVALID_CREDENTIALS" | "ACCOUNT_DISABLED") => {
        // Nothing changed, so there is no transaction to share: the event is written on its own.
        // The identifier typed is not kept (people type passwords into the wrong box).
        await recordAuditEvent(database.db, {
          type: "sign_in",
          outcome: "failure",
          time: clock.now(),
          subjectUserId: found?.user.id ?? null,
          client,
          details: { reason, identifier: kind },
        });
        return gatehouseError(reason);
      };
      if (!found) {
        // Spend the time a real check takes, so timing does not reveal which accounts exist.
        await hasher.verifyDummy(input.password);
        throw await failed("INVALID_CREDENTIALS");
      }
      const { ok, needsRehash } = await hasher.verify(found.passwordHash, input.password);
      if (!ok || input.password === "") throw await failed("INVALID_CREDENTIALS");
      // The password was right: this was no guess, whatever comes next.
      await attempt.succeeded();
      if (found.user.disabled) throw await failed("ACCOUNT_DISABLED");

      if (needsRehash) {
        const passwordHash = await hasher.hash(input.password);
        await updatePasswordHash(database.db, {
          userId: found.user.id,
          passwordHash,
          now: clock.now(),
          ifUnchanged: found.passwordHash,
          touch: false,
        });
      }
      return database.transaction(async (tx) => {
        const now = clock.now();
        const user = (await recordLogin(tx, { userId: found.user.id, now })) ?? found.user;
        const tokens = await startSession(deps, tx, { userId: user.id, roles: user.roles, client });
        await recordAuditEvent(tx, {
          type: "sign_in",
          time: now,
          actorUserId: user.id,
          subjectUserId: user.id,
          sessionId: tokens.sessionId,
          client,
          details: { identifier: kind },
        });
        return { user, tokens };
      });
    },

    async refresh(database: Database, refreshToken: string, client: ClientInfo): Promise<TokenPair> {
      const tokenHash = hashRefreshToken(refreshToken);
      if (!tokenHash) {
        await abuse.limitCall("refresh", client.ipAddress);
        throw gatehouseError("TOKEN_INVALID", "The refresh token is not valid.");
      }
      // Two attempts: the state read after a failed rotation can be older than the rotation's.
      for (let attempt = 1; ; attempt++) {
        const now = clock.now();
        const successor = newRefreshToken();
        const rotate = (gate?: StatementGate) =>
          rotateRefreshToken(deps.pipelined ?? database.db, { tokenHash, successorHash: successor.hash, now, lifetimes: config, client, gate });
        // The first attempt is counted against the caller's rate limit, in the rotation's own
        // statement when the count needs the database: one round trip per refresh.
        const counted =
          attempt === 1
            ? await abuse.limitCallWithin("refresh", client.ipAddress, async (gate) => {
                const { rotated, gateRow } = await rotate(gate);
                return { gateRow, result: { rotated } };
              })
            : undefined;
        const { rotated } = counted ?? (await rotate());
        if (rotated) return issueTokenPair(deps, { session: rotated, refreshToken: successor.token, roles: rotated.roles });

        const state = await inspectRefreshToken(database.db, tokenHash);
        if (!state) throw gatehouseError("TOKEN_INVALID", "The refresh token is not valid.");
        if (state.revoke_time !== null || state.disabled) throw gatehouseError("SESSION_REVOKED");
        if (sessionEnded(state, now, config)) throw gatehouseError("TOKEN_EXPIRED", "This session has expired; sign in again.");
        if (state.rotate_time !== null) {
          if (now.getTime() - state.rotate_time.getTime() <= config.refreshReuseGraceMs) {
            // A racing duplicate (two tabs, a retried request): refused, but not treated as theft.
            throw gatehouseError(
              "TOKEN_INVALID",
              "This refresh token was exchanged a moment ago by another request; use the tokens that request received.",
            );
          }
          await database.transaction(async (tx) => {
            await revokeSession(tx, { sessionId: state.session_id, reason: "refresh_token_reused", now, lifetimes: config });
            await recordAuditEvent(tx, {
              type: "refresh_token_reused",
              outcome: "failure",
              time: now,
              subjectUserId: state.user_id,
              sessionId: state.session_id,
              client,
            });
          });
          throw gatehouseError("REFRESH_TOKEN_REUSED");
        }
        // The session changed between the two statements twice in a row (say, disabled and enabled again).
        if (attempt >= 2) throw gatehouseError("TOKEN_INVALID", "The refresh token could not be used just now; try again.");
      }
    },

    async logout(database: Database, caller: Caller, client: ClientInfo): Promise<void> {
      await database.transaction(async (tx) => {
        const now = clock.now();
        const revoked = await revokeSession(tx, { sessionId: caller.sessionId, userId: caller.userId, reason: "logout", now, lifetimes: config });
        if (!revoked) return;
        await recordAuditEvent(tx, { type: "logout", time: now, actorUserId: caller.userId, subjectUserId: caller.userId, sessionId: caller.sessionId, client });
      });
    },

    async logoutAll(database: Database, caller: Caller, password: string, client: ClientInfo): Promise<number> {
      await verifyCallerPassword(database, caller, password, client, "logout_all");
      return database.transaction(async (tx) => {
        const now = clock.now();
        const revoked = await revokeUserSessions(tx, { userId: caller.userId, reason: "logout_all", now, lifetimes: config });
        await recordAuditEvent(tx, {
          type: "logout_all",
          time: now,
          actorUserId: caller.userId,
          subjectUserId: caller.userId,
          sessionId: caller.sessionId,
          client,
          details: { revoked_sessions: revoked },
        });
        return revoked;
      });
    },

    /** The caller's row as authentication read it (or found it cached): no second lookup. */
    getMe(caller: Caller): UserRecord {
      return caller.user;
    },

    /**
     * Replaces the password and every session of the caller: all sessions end, the current one
     * included, and the caller is signed in again on a fresh session, so no token issued before
     * the change (access or refresh, on any device) works afterwards.
     */
    async changePassword(
      database: Database,
      caller: Caller,
      input: { currentPassword: string; newPassword: string },
      client: ClientInfo,
    ): Promise<TokenPair> {
      const found = await verifyCallerPassword(database, caller, input.currentPassword, client, "password_changed");
      checkPasswordPolicy(input.newPassword, { username: found.user.username, email: found.user.email });
      const passwordHash = await hasher.hash(input.newPassword);
      return database.transaction(async (tx) => {
        const now = clock.now();
        const changed = await updatePasswordHash(tx, { userId: caller.userId, passwordHash, now, ifUnchanged: found.passwordHash });
        // Someone changed the password since we checked the current one: the caller's proof is stale.
        if (!changed) throw invalidCredentials();
        const revoked = await revokeUserSessions(tx, { userId: caller.userId, reason: "password_changed", now, lifetimes: config });
        const tokens = await startSession(deps, tx, { userId: caller.userId, roles: caller.roles, client });
        await recordAuditEvent(tx, {
          type: "password_changed",
          time: now,
          actorUserId: caller.userId,
          subjectUserId: caller.userId,
          sessionId: tokens.sessionId,
          client,
          details: { revoked_sessions: revoked },
        });
        return tokens;
      });
    },

    async listSessions(database: Database, caller: Caller): Promise<{ session: SessionRow; current: boolean }[]> {
      const sessions = await listLiveSessions(database.db, { userId: caller.userId, now: clock.now(), lifetimes: config });
      return sessions.map((session) => ({ session, current: session.id === caller.sessionId }));
    },

    async revokeSession(database: Database, caller: Caller, sessionId: string, client: ClientInfo): Promise<void> {
      await database.transaction(async (tx) => {
        const now = clock.now();
        const revoked = await revokeSession(tx, { sessionId, userId: caller.userId, reason: "revoked_by_user", now, lifetimes: config });
        if (!revoked) throw gatehouseError("SESSION_NOT_FOUND");
        await recordAuditEvent(tx, {
          type: "session_revoked",
          time: now,
          actorUserId: caller.userId,
          subjectUserId: caller.userId,
          sessionId,
          client,
          details: caller.sessionId === sessionId ? { current: true } : {},
        });
      });
    },

    /**
     * RFC 7662 in spirit: anything that would not authenticate a call is simply not active.
     *
     * Only answers of `active: false` count against the caller's address. A resource server that
     * introspects its users' tokens calls from one address, as often as it is called itself; a
     * valid token costs no more than a GetMe with it, which is not limited either. The limit is for
     * a caller sending tokens that do not work: guessing, replaying, flooding with junk.
     */
    async introspect(database: Database, token: string, client: ClientInfo): Promise<Introspection> {
      try {
        const claims = await deps.accessTokens.verify(token);
        const caller = await authenticate(database.db, claims, deps);
        return { active: true, userId: caller.userId, sessionId: caller.sessionId, roles: caller.roles, expireTime: claims.expireTime };
      } catch (error) {
        if (!(error instanceof ConnectError && error.code === Code.Unauthenticated)) throw error;
        await abuse.limitCall("introspect", client.ipAddress);
        return { active: false };
      }
    },
  };
}

export type AuthServiceImpl = ReturnType<typeof createAuthService>;
