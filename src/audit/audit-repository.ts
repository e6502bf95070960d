import { sql, type Kysely, type RawBuilder } from "kysely";
import type { AuditEventType, AuditOutcome } from "./audit-log.ts";

/** Reading the audit trail, keyset-paginated newest first along (time, id). */

export interface AuditEventRecord {
  id: string;
  time: Date;
  type: AuditEventType;
  outcome: AuditOutcome;
  actorUserId: string | null;
  subjectUserId: string | null;
  sessionId: string | null;
  ip: string;
  userAgent: string;
  details: Record<string, unknown>;
}

export interface AuditEventFilter {
  /** As actor or as subject; undefined: everyone. */
  userId: string | undefined;
  /** Empty: every type. */
  types: readonly AuditEventType[];
  /** Inclusive. */
  startTime: Date | undefined;
  /** Exclusive. */
  endTime: Date | undefined;
}

/** Where the previous page ended: (time as PostgreSQL text, to keep its microseconds, id). */
export interface AuditCursor {
  time: string;
  id: string;
}

type Row = Omit<AuditEventRecord, "time" | "details"> & { time: Date | string; details: unknown; cursorTime: string };

export async function listAuditEventPage(
  db: Kysely<any>,
  filter: AuditEventFilter,
  cursor: AuditCursor | undefined,
  limit: number,
): Promise<{ events: AuditEventRecord[]; next: AuditCursor | undefined }> {
  const conditions: RawBuilder<unknown>[] = [];
  if (filter.userId !== undefined) conditions.push(sql`(e.actor_user_id = ${filter.userId} or e.subject_user_id = ${filter.userId})`);
  if (filter.types.length > 0) conditions.push(sql`e.type = any(${[...filter.types]}::text[])`);
  if (filter.startTime) conditions.push(sql`e.time >= ${filter.startTime}`);
  if (filter.endTime) conditions.push(sql`e.time < ${filter.endTime}`);
  if (cursor) conditions.push(sql`(e.time, e.id) < (${cursor.time}::timestamptz, ${cursor.id}::uuid)`);
  const where = conditions.length === 0 ? sql`true` : sql.join(conditions, sql` and `);
  const { rows } = await sql<Row>`
    select e.id, e.time, e.type, e.outcome, e.actor_user_id as "actorUserId", e.subject_user_id as "subjectUserId",
      e.session_id as "sessionId", e.ip, e.user_agent as "userAgent", e.details, e.time::text as "cursorTime"
    from audit_events e where ${where}
    order by e.time desc, e.id desc limit ${limit + 1}`.execute(db);
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    events: page.map(({ cursorTime: _, ...row }) => ({
      ...row,
      time: new Date(row.time),
      details: (typeof row.details === "string" ? JSON.parse(row.details) : row.details) as Record<string, unknown>,
    })),
    next: rows.length > limit && last ? { time: last.cursorTime, id: last.id } : undefined,
  };
}
