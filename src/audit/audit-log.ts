import type { HandlerContext } from "@connectrpc/connect";
import { sql, type Kysely } from "kysely";
import { kCaller } from "../auth/caller.ts";
import { kClient, type ClientInfo } from "../platform/server/context.ts";

/**
 * The audit trail: one `audit_events` row per security-relevant event. A change and its event
 * are written by the same transaction — pass that transaction as `db` — so there is never a
 * change without its event, nor an event for a change that was rolled back. Refused attempts
 * that change nothing (a wrong password) are written on their own.
 */

/** Every event type, as stored; the API's `AuditEventType` names them in upper case. */
export const AUDIT_EVENT_TYPES = [
  "sign_up",
  "sign_in",
  "refresh_token_reused",
  "logout",
  "logout_all",
  "session_revoked",
  "password_changed",
  "password_reset",
  "user_created",
  "user_updated",
  "roles_changed",
  "user_disabled",
  "user_enabled",
  "user_deleted",
  "invitation_created",
  "invitation_used",
  "invitation_deleted",
  "signing_key_rotated",
] as const;

export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

/** `success`: the change was made. `failure`: the attempt was refused and changed nothing. */
export type AuditOutcome = "success" | "failure";

/** A value in `details`: plain facts such as ids, role names, counts and reasons. */
export type AuditDetail = string | number | boolean | null | readonly string[];

/** Who acted, from where: the signed-in caller (if any) and the client of the call. */
export interface AuditContext {
  readonly actorUserId: string | null;
  /** The caller's session, when the caller is signed in. */
  readonly sessionId: string | null;
  readonly client: ClientInfo;
}

export interface AuditEventInput {
  readonly type: AuditEventType;
  readonly outcome?: AuditOutcome;
  readonly time: Date;
  readonly actorUserId?: string | null;
  readonly subjectUserId?: string | null;
  /** The session the event started or ended; otherwise the session of the caller who acted. */
  readonly sessionId?: string | null;
  readonly client?: ClientInfo;
  readonly details?: Readonly<Record<string, AuditDetail>>;
}

/** The actor and client of a call, for events it causes. */
export function auditContext(ctx: HandlerContext): AuditContext {
  const caller = ctx.values.get(kCaller);
  return { actorUserId: caller?.userId ?? null, sessionId: caller?.sessionId ?? null, client: ctx.values.get(kClient) };
}

/** A context for changes made outside any call (the CLI, start-up). */
export function systemAuditContext(): AuditContext {
  return { actorUserId: null, sessionId: null, client: { ipAddress: "", userAgent: "" } };
}

/**
 * Names a detail may not have: whatever is called a password, token, secret, hash or code is
 * kept out of the trail even if a future change tries to put it there.
 */
const SECRET_NAME = /password|token|secret|hash|code/i;

export async function recordAuditEvent(db: Kysely<any>, event: AuditEventInput): Promise<void> {
  const details = event.details ?? {};
  for (const name of Object.keys(details)) {
    if (SECRET_NAME.test(name)) throw new Error(`audit event detail "${name}" looks like a secret; audit events never hold secrets`);
  }
  await sql`insert into audit_events (time, type, outcome, actor_user_id, subject_user_id, session_id, ip, user_agent, details)
    values (${event.time}, ${event.type}, ${event.outcome ?? "success"}, ${event.actorUserId ?? null}, ${event.subjectUserId ?? null},
            ${event.sessionId ?? null}, ${(event.client?.ipAddress ?? "").slice(0, 64)}, ${(event.client?.userAgent ?? "").slice(0, 512)},
            ${JSON.stringify(details)}::jsonb)`.execute(db);
}
