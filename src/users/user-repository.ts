import { sql, type RawBuilder } from "kysely";
import { violatedConstraint } from "../platform/errors/database-errors.ts";
import { gatehouseError } from "../platform/errors/gatehouse-error.ts";
import { ADMIN_ROLE } from "./roles.ts";
import type { Db } from "./transaction.ts";
import type { UserRecord } from "./user-mapper.ts";

/**
 * Storage of users: every statement the UserService runs, with bound parameters (never
 * interpolated text). Each takes the Kysely handle of an EntityManager — inside a transaction,
 * that transaction's — so several compose into one.
 */

/** The columns of a User message, never `password_hash`. */
const USER_COLUMNS = sql`u.id, u.username, u.email, u.first_name AS "firstName", u.last_name AS "lastName",
  u.roles, u.disabled, u.create_time AS "createTime", u.update_time AS "updateTime",
  u.last_login_time AS "lastLoginTime"`;

interface UserRow {
  id: string;
  username: string;
  email: string;
  firstName: string;
  lastName: string;
  roles: string[];
  disabled: boolean;
  createTime: Date | string;
  updateTime: Date | string;
  lastLoginTime: Date | string | null;
}

function toRecord(row: UserRow): UserRecord {
  return {
    ...row,
    createTime: new Date(row.createTime),
    updateTime: new Date(row.updateTime),
    lastLoginTime: row.lastLoginTime === null ? null : new Date(row.lastLoginTime),
  };
}

/** USERNAME_TAKEN / EMAIL_TAKEN for a unique-index violation; anything else is rethrown as is. */
function rethrowUniqueViolation(error: unknown): never {
  const constraint = violatedConstraint(error);
  if (constraint === "users_username_key") throw gatehouseError("USERNAME_TAKEN", undefined, { cause: error });
  if (constraint === "users_email_key") throw gatehouseError("EMAIL_TAKEN", undefined, { cause: error });
  throw error;
}

export async function findUser(db: Db, id: string): Promise<UserRecord | undefined> {
  const { rows } = await sql<UserRow>`SELECT ${USER_COLUMNS} FROM users u WHERE u.id = ${id}`.execute(db);
  return rows[0] && toRecord(rows[0]);
}

/** Reads a user and holds its row lock until the transaction ends. */
export async function lockUser(db: Db, id: string): Promise<UserRecord | undefined> {
  const { rows } = await sql<UserRow>`SELECT ${USER_COLUMNS} FROM users u WHERE u.id = ${id} FOR UPDATE`.execute(db);
  return rows[0] && toRecord(rows[0]);
}

/**
 * Locks every enabled admin, in id order, and returns their ids. Every change that could take
 * the last admin away (delete, demote, disable) takes these locks first and in the same order,
 * so two such changes serialise instead of both seeing "another admin is left".
 */
export async function lockEnabledAdmins(db: Db): Promise<string[]> {
  const { rows } = await sql<{ id: string }>`SELECT id FROM users
    WHERE roles @> ARRAY[${ADMIN_ROLE}]::text[] AND NOT disabled ORDER BY id FOR UPDATE`.execute(db);
  return rows.map((row) => row.id);
}

export interface NewUser {
  username: string;
  email: string;
  passwordHash: string;
  firstName: string;
  lastName: string;
  roles: readonly string[];
  disabled: boolean;
}

export async function insertUser(db: Db, user: NewUser): Promise<UserRecord> {
  try {
    const { rows } = await sql<UserRow>`INSERT INTO users AS u (username, email, password_hash, first_name, last_name, roles, disabled)
      VALUES (${user.username}, ${user.email}, ${user.passwordHash}, ${user.firstName}, ${user.lastName}, ${[...user.roles]}::text[], ${user.disabled})
      RETURNING ${USER_COLUMNS}`.execute(db);
    return toRecord(rows[0]!);
  } catch (error) {
    rethrowUniqueViolation(error);
  }
}

/** The updatable fields of a user, after normalisation. */
export interface UserChanges {
  username: string;
  email: string;
  firstName: string;
  lastName: string;
  roles: readonly string[];
  disabled: boolean;
}

export async function updateUserRow(db: Db, id: string, user: UserChanges): Promise<UserRecord> {
  try {
    const { rows } = await sql<UserRow>`UPDATE users AS u SET username = ${user.username}, email = ${user.email},
        first_name = ${user.firstName}, last_name = ${user.lastName}, roles = ${[...user.roles]}::text[],
        disabled = ${user.disabled}, update_time = now()
      WHERE u.id = ${id} RETURNING ${USER_COLUMNS}`.execute(db);
    return toRecord(rows[0]!);
  } catch (error) {
    rethrowUniqueViolation(error);
  }
}

export async function setPasswordHash(db: Db, id: string, passwordHash: string): Promise<boolean> {
  const result = await sql`UPDATE users SET password_hash = ${passwordHash}, update_time = now() WHERE id = ${id}`.execute(db);
  return Number(result.numAffectedRows ?? 0) > 0;
}

/** Deletes a user; its sessions and refresh tokens go with it (ON DELETE CASCADE). */
export async function deleteUserRow(db: Db, id: string): Promise<boolean> {
  const result = await sql`DELETE FROM users WHERE id = ${id}`.execute(db);
  return Number(result.numAffectedRows ?? 0) > 0;
}

/** Ends every open session of a user at once; access tokens of those sessions stop working on their next call. */
export async function revokeUserSessions(db: Db, userId: string, reason: string, now: Date): Promise<number> {
  const result = await sql`UPDATE sessions SET revoke_time = ${now}, revoke_reason = ${reason}
    WHERE user_id = ${userId} AND revoke_time IS NULL`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

/** Whether any user has the `admin` role, enabled or not. */
export async function anyAdmin(db: Db): Promise<boolean> {
  const { rows } = await sql<{ found: boolean }>`SELECT EXISTS (
    SELECT 1 FROM users WHERE roles @> ARRAY[${ADMIN_ROLE}]::text[]) AS found`.execute(db);
  return rows[0]?.found === true;
}

// ---------------------------------------------------------------------------------------------
// ListUsers

export type UserOrder = "create_time" | "username";

export interface UserListFilter {
  /** Prefix of username, email, first or last name; compared case-insensitively. Empty: no condition. */
  query: string;
  /** A role the user must have. Empty: no condition. */
  role: string;
  disabled: boolean | undefined;
}

/** Where the previous page ended: (create_time as PostgreSQL text, id) or the username. */
export type UserCursor = { order: "create_time"; createTime: string; id: string } | { order: "username"; username: string };

/** `%`, `_` and `\` in user input match themselves, not "anything". */
export function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

function filterConditions(filter: UserListFilter): RawBuilder<unknown>[] {
  const conditions: RawBuilder<unknown>[] = [];
  const query = filter.query.trim();
  if (query !== "") {
    // Username and email are stored NFKC + lower-case; names as typed, hence lower() on them.
    // Each side has a text_pattern_ops index, so a prefix is an index range, OR-ed as a bitmap.
    const identity = `${escapeLike(query.normalize("NFKC").toLowerCase())}%`;
    const name = `${escapeLike(query.toLowerCase())}%`;
    conditions.push(sql`(u.username LIKE ${identity} OR u.email LIKE ${identity}
      OR lower(u.first_name) LIKE ${name} OR lower(u.last_name) LIKE ${name})`);
  }
  if (filter.role !== "") conditions.push(sql`u.roles @> ARRAY[${filter.role}]::text[]`);
  if (filter.disabled === true) conditions.push(sql`u.disabled`);
  if (filter.disabled === false) conditions.push(sql`NOT u.disabled`);
  return conditions;
}

function whereClause(conditions: RawBuilder<unknown>[]): RawBuilder<unknown> {
  return conditions.length === 0 ? sql`TRUE` : sql.join(conditions, sql` AND `);
}

/**
 * One page of users, keyset-paginated: the cursor is a WHERE condition on the ordering
 * columns, never an OFFSET, so a deep page costs what the first one does. One row more than
 * the page is read, to tell whether another page follows.
 */
export function userPageQuery(filter: UserListFilter, order: UserOrder, cursor: UserCursor | undefined, limit: number) {
  const conditions = filterConditions(filter);
  if (order === "create_time") {
    if (cursor?.order === "create_time") {
      conditions.push(sql`(u.create_time, u.id) > (${cursor.createTime}::timestamptz, ${cursor.id}::uuid)`);
    }
    return sql<UserRow & { cursorTime: string }>`SELECT ${USER_COLUMNS}, u.create_time::text AS "cursorTime" FROM users u
      WHERE ${whereClause(conditions)} ORDER BY u.create_time, u.id LIMIT ${limit + 1}`;
  }
  if (cursor?.order === "username") conditions.push(sql`u.username > ${cursor.username}`);
  return sql<UserRow & { cursorTime: string }>`SELECT ${USER_COLUMNS}, u.create_time::text AS "cursorTime" FROM users u
    WHERE ${whereClause(conditions)} ORDER BY u.username LIMIT ${limit + 1}`;
}

export interface UserPage {
  users: UserRecord[];
  /** Where the next page starts; undefined on the last page. */
  next: UserCursor | undefined;
}

export async function listUserPage(
  db: Db,
  filter: UserListFilter,
  order: UserOrder,
  cursor: UserCursor | undefined,
  limit: number,
): Promise<UserPage> {
  const { rows } = await userPageQuery(filter, order, cursor, limit).execute(db);
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  const next: UserCursor | undefined =
    rows.length > limit && last
      ? order === "create_time"
        ? { order, createTime: last.cursorTime, id: last.id }
        : { order, username: last.username }
      : undefined;
  return { users: page.map(({ cursorTime: _, ...row }) => toRecord(row)), next };
}

/** Up to this many matches are counted exactly; beyond it, counting would cost as much as the table is big. */
export const EXACT_COUNT_LIMIT = 10_000;

/**
 * How many users match: exact up to EXACT_COUNT_LIMIT (a bounded index scan), otherwise the
 * planner's estimate (at least the limit). Either way the cost does not grow with the table.
 */
export async function countUsers(db: Db, filter: UserListFilter): Promise<number> {
  const where = whereClause(filterConditions(filter));
  const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n
    FROM (SELECT 1 FROM users u WHERE ${where} LIMIT ${EXACT_COUNT_LIMIT + 1}) AS matching`.execute(db);
  const exact = rows[0]?.n ?? 0;
  if (exact <= EXACT_COUNT_LIMIT) return exact;
  const plan = await sql<{ "QUERY PLAN": unknown }>`EXPLAIN (FORMAT JSON) SELECT 1 FROM users u WHERE ${where}`.execute(db);
  const raw = plan.rows[0]?.["QUERY PLAN"];
  const parsed = (typeof raw === "string" ? JSON.parse(raw) : raw) as { Plan?: { "Plan Rows"?: number } }[];
  const estimate = Math.round(parsed[0]?.Plan?.["Plan Rows"] ?? 0);
  return Math.min(Math.max(estimate, exact), 2_147_483_647);
}
