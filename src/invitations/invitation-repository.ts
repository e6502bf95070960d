import { sql } from "kysely";
import type { Db } from "../users/transaction.ts";

/** Storage of invitations, with bound parameters. Only the SHA-256 of a code is ever written. */

export interface InvitationRecord {
  id: string;
  roles: string[];
  email: string | null;
  maxUses: number;
  useCount: number;
  expireTime: Date;
  createTime: Date;
}

interface InvitationRow extends Omit<InvitationRecord, "expireTime" | "createTime"> {
  expireTime: Date | string;
  createTime: Date | string;
}

/** Never `code_hash`. */
const INVITATION_COLUMNS = sql`i.id, i.roles, i.email, i.max_uses AS "maxUses", i.use_count AS "useCount",
  i.expire_time AS "expireTime", i.create_time AS "createTime"`;

function toRecord(row: InvitationRow): InvitationRecord {
  return { ...row, expireTime: new Date(row.expireTime), createTime: new Date(row.createTime) };
}

export async function insertInvitation(
  db: Db,
  input: { codeHash: Buffer; roles: readonly string[]; email: string | null; maxUses: number; expireTime: Date; creatorId: string },
): Promise<InvitationRecord> {
  const { rows } = await sql<InvitationRow>`INSERT INTO invitations AS i (code_hash, roles, email, max_uses, expire_time, creator_id)
    VALUES (${input.codeHash}, ${[...input.roles]}::text[], ${input.email}, ${input.maxUses}, ${input.expireTime}, ${input.creatorId})
    RETURNING ${INVITATION_COLUMNS}`.execute(db);
  return toRecord(rows[0]!);
}

/** Where the previous page ended, newest first: (create_time as PostgreSQL text, id). */
export interface InvitationCursor {
  createTime: string;
  id: string;
}

/** One page, newest first, keyset-paginated backwards along the (create_time, id) index. */
export async function listInvitationPage(
  db: Db,
  cursor: InvitationCursor | undefined,
  limit: number,
): Promise<{ invitations: InvitationRecord[]; next: InvitationCursor | undefined }> {
  const after = cursor ? sql`(i.create_time, i.id) < (${cursor.createTime}::timestamptz, ${cursor.id}::uuid)` : sql`TRUE`;
  const { rows } = await sql<InvitationRow & { cursorTime: string }>`SELECT ${INVITATION_COLUMNS}, i.create_time::text AS "cursorTime"
    FROM invitations i WHERE ${after} ORDER BY i.create_time DESC, i.id DESC LIMIT ${limit + 1}`.execute(db);
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    invitations: page.map(({ cursorTime: _, ...row }) => toRecord(row)),
    next: rows.length > limit && last ? { createTime: last.cursorTime, id: last.id } : undefined,
  };
}

export async function deleteInvitationRow(db: Db, id: string): Promise<boolean> {
  const result = await sql`DELETE FROM invitations WHERE id = ${id}`.execute(db);
  return Number(result.numAffectedRows ?? 0) > 0;
}

/**
 * Uses up one registration of the invitation with this code hash, if it is still good for
 * `email` at `now`, and returns its roles. One conditional UPDATE: concurrent uses queue on the
 * row lock and each re-checks `use_count < max_uses`, so a single-use code admits exactly one.
 */
export async function consumeInvitation(
  db: Db,
  input: { codeHash: Buffer; email: string; now: Date },
): Promise<{ id: string; roles: string[] } | undefined> {
  const { rows } = await sql<{ id: string; roles: string[] }>`UPDATE invitations SET use_count = use_count + 1
    WHERE code_hash = ${input.codeHash} AND use_count < max_uses AND expire_time > ${input.now}
      AND (email IS NULL OR email = ${input.email})
    RETURNING id, roles`.execute(db);
  return rows[0];
}
