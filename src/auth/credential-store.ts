import { sql } from "kysely";
import { PREPARED } from "../platform/database/prepared-statements.ts";
import { violatedConstraint } from "../platform/errors/database-errors.ts";
import { gatehouseError } from "../platform/errors/gatehouse-error.ts";
import { toDate, type Db } from "../sessions/session-store.ts";
import type { UserRecord } from "../users/user-mapper.ts";

/**
 * The user rows the AuthService reads and writes, in plain SQL. Only these functions ever read
 * `password_hash`, and they hand it back separately from the user record that goes on the wire.
 */

const USER_COLUMNS = sql`id, username, email, first_name as "firstName", last_name as "lastName", roles, disabled,
  create_time as "createTime", update_time as "updateTime", last_login_time as "lastLoginTime"`;

export interface UserWithHash {
  readonly user: UserRecord;
  readonly passwordHash: string;
}

type Row = UserRecord & { passwordHash: string };

function toRecord(row: UserRecord): UserRecord {
  return {
    ...row,
    createTime: toDate(row.createTime),
    updateTime: toDate(row.updateTime),
    lastLoginTime: toDate(row.lastLoginTime ?? null),
  };
}

function split(row: Row | undefined): UserWithHash | undefined {
  if (!row) return undefined;
  const { passwordHash, ...user } = row;
  return { user: toRecord(user), passwordHash };
}

export async function findUserWithHash(db: Db, by: { email: string } | { username: string } | { id: string }): Promise<UserWithHash | undefined> {
  const where =
    "email" in by ? sql`email = ${by.email}` : "username" in by ? sql`username = ${by.username}` : sql`id = ${by.id}`;
  const { rows } = await sql<Row>`
    select ${USER_COLUMNS}, password_hash as "passwordHash" from users where ${where}`.execute(db);
  return split(rows[0]);
}

/** What every authenticated call needs: the user's CURRENT row, and whether the session still stands. */
export interface CallerState {
  readonly user: UserRecord;
  readonly session: { readonly revoke_time: Date | null; readonly expire_time: Date; readonly last_use_time: Date };
}

/**
 * The caller behind a session, in one primary-key lookup joined to the user row. Undefined when
 * the session or the user no longer exists, or the session is not that user's.
 */
export async function findCaller(db: Db, input: { sessionId: string; userId: string }): Promise<CallerState | undefined> {
  const { rows } = await sql<UserRecord & { revoke_time: Date | null; expire_time: Date; last_use_time: Date }>`${PREPARED}
    select u.*, s.revoke_time, s.expire_time, s.last_use_time
    from (select ${USER_COLUMNS} from users where id = ${input.userId}) u
    join sessions s on s.user_id = u.id
    where s.id = ${input.sessionId}`.execute(db);
  const row = rows[0];
  if (!row) return undefined;
  const { revoke_time, expire_time, last_use_time, ...user } = row;
  return {
    user: toRecord(user),
    session: { revoke_time: toDate(revoke_time), expire_time: toDate(expire_time), last_use_time: toDate(last_use_time) },
  };
}

/** Inserts a user; the unique indexes (not a pre-check) decide USERNAME_TAKEN / EMAIL_TAKEN. */
export async function insertUser(
  db: Db,
  input: { username: string; email: string; passwordHash: string; firstName: string; lastName: string; roles: readonly string[]; now: Date },
): Promise<UserRecord> {
  try {
    const { rows } = await sql<UserRecord>`
      insert into users (username, email, password_hash, first_name, last_name, roles, create_time, update_time, last_login_time)
      values (${input.username}, ${input.email}, ${input.passwordHash}, ${input.firstName}, ${input.lastName},
              ${[...input.roles]}::text[], ${input.now}, ${input.now}, ${input.now})
      returning ${USER_COLUMNS}`.execute(db);
    return toRecord(rows[0]!);
  } catch (error) {
    const constraint = violatedConstraint(error);
    if (constraint === "users_username_key") throw gatehouseError("USERNAME_TAKEN", undefined, { cause: error });
    if (constraint === "users_email_key") throw gatehouseError("EMAIL_TAKEN", undefined, { cause: error });
    throw error;
  }
}

/** Records a sign-in; returns the updated record. */
export async function recordLogin(db: Db, input: { userId: string; now: Date }): Promise<UserRecord | undefined> {
  const { rows } = await sql<UserRecord>`
    update users set last_login_time = ${input.now} where id = ${input.userId} returning ${USER_COLUMNS}`.execute(db);
  return rows[0] && toRecord(rows[0]);
}

/**
 * Replaces a password hash. With `ifUnchanged`, only when the stored hash is still that one,
 * so a re-hash on login never overwrites a password changed in the meantime.
 */
export async function updatePasswordHash(
  db: Db,
  input: { userId: string; passwordHash: string; now: Date; ifUnchanged?: string; touch?: boolean },
): Promise<boolean> {
  const result = await sql`
    update users set password_hash = ${input.passwordHash},
      update_time = case when ${input.touch ?? true} then ${input.now}::timestamptz else update_time end
    where id = ${input.userId} and (${input.ifUnchanged ?? null}::text is null or password_hash = ${input.ifUnchanged ?? null})`.execute(db);
  return Number(result.numAffectedRows ?? 0) > 0;
}
