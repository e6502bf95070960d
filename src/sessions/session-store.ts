import { sql, type Kysely } from "kysely";
import { PREPARED } from "../platform/database/prepared-statements.ts";
import { compiledStatement, slots } from "../platform/database/compiled-statement.ts";
import { gatedStatements, type GateSql, type StatementGate } from "../platform/database/statement-gate.ts";

/**
 * Storage of sessions and refresh tokens, in plain SQL with bind parameters: these statements
 * run on every sign-in, refresh and authenticated call, so they are written to be one round trip
 * each and to stay correct under concurrency without application-side locking.
 *
 * Every time comparison takes `now` from the caller (the application's Clock), never `now()` of
 * the database, so that expiry is decided by one clock that tests can move.
 */
/** Any Kysely instance or transaction: these functions only run raw SQL, so the schema type is not needed. */
export type Db = Kysely<any>;

export interface SessionLifetimes {
  readonly sessionTtlMs: number;
  readonly sessionIdleTtlMs: number;
}

export interface ClientInfo {
  readonly userAgent: string;
  readonly ipAddress: string;
}

export interface SessionRow {
  id: string;
  user_id: string;
  create_time: Date;
  last_use_time: Date;
  expire_time: Date;
  user_agent: string;
  ip_address: string;
}

/** Why a session ended, as kept in `sessions.revoke_reason`. */
export type RevokeReason =
  | "logout"
  | "logout_all"
  | "revoked_by_user"
  | "password_changed"
  | "refresh_token_reused"
  | "user_disabled"
  | "password_set"
  | "user_deleted";

/**
 * Timestamps as Dates. MikroORM's PostgreSQL driver leaves `timestamptz` values as text (to keep
 * their precision), so raw rows are converted here, once, for every caller.
 */
export function toDate(value: Date | string): Date;
export function toDate(value: Date | string | null): Date | null;
export function toDate(value: Date | string | null): Date | null {
  return value === null ? null : value instanceof Date ? value : new Date(value);
}

function toSessionRow(row: SessionRow): SessionRow {
  return {
    ...row,
    create_time: toDate(row.create_time),
    last_use_time: toDate(row.last_use_time),
    expire_time: toDate(row.expire_time),
  };
}

/** Revoked sessions are kept this long, so a late refresh gets SESSION_REVOKED rather than TOKEN_INVALID. */
export const REVOKED_SESSION_RETENTION_MS = 24 * 3_600_000;

/** The moment before which a session's last use makes it idle-expired. */
export function idleCutoff(now: Date, lifetimes: SessionLifetimes): Date {
  return new Date(now.getTime() - lifetimes.sessionIdleTtlMs);
}

/**
 * How stale a session's recorded last use (and client) may get before a refresh records it
 * again: a minute, or a hundredth of the idle lifetime if that is shorter. Rewriting the session
 * row on every refresh left a new version of it each time, one of a refresh's three row writes;
 * once a minute is enough for ListSessions, and a session can idle out at most that much early.
 */
export function lastUseGranularityMs(lifetimes: SessionLifetimes): number {
  return Math.min(60_000, Math.floor(lifetimes.sessionIdleTtlMs / 100));
}

/** When the current refresh token stops working: the sooner of the absolute end and the idle timeout. */
export function refreshTokenExpireTime(session: { last_use_time: Date; expire_time: Date }, lifetimes: SessionLifetimes): Date {
  const idleEnd = session.last_use_time.getTime() + lifetimes.sessionIdleTtlMs;
  return new Date(Math.min(idleEnd, session.expire_time.getTime()));
}

/** Starts a session and stores its first refresh token, in one statement. */
export async function insertSession(
  db: Db,
  input: { userId: string; refreshTokenHash: Buffer; now: Date; lifetimes: SessionLifetimes; client: ClientInfo },
): Promise<SessionRow> {
  const { userId, refreshTokenHash, now, lifetimes, client } = input;
  const expireTime = new Date(now.getTime() + lifetimes.sessionTtlMs);
  const { rows } = await sql<SessionRow>`${PREPARED}
    with new_session as (
      insert into sessions (user_id, create_time, last_use_time, expire_time, user_agent, ip_address)
      values (${userId}, ${now}, ${now}, ${expireTime}, ${client.userAgent.slice(0, 512)}, ${client.ipAddress.slice(0, 64)})
      returning id, user_id, create_time, last_use_time, expire_time, user_agent, ip_address
    ), first_token as (
      insert into refresh_tokens (token_hash, session_id, create_time)
      select ${refreshTokenHash}, id, ${now} from new_session
    )
    select * from new_session`.execute(db);
  return toSessionRow(rows[0]!);
}

export interface RotatedSession extends SessionRow {
  roles: string[];
}

/**
 * Exchanges a refresh token for its successor in ONE statement: the conditional UPDATE
 * (`rotate_time is null`, session live, user enabled) lets exactly one of any number of
 * concurrent callers through — PostgreSQL re-checks the condition on the row after waiting for
 * the winner's lock — and the successor is inserted only by that one, which also records the
 * session's last use and client when the recorded one is older than `lastUseGranularityMs`.
 * `rotated` is undefined when the token could not be rotated; `inspectRefreshToken` says why.
 *
 * The session is also looked up by the token's `session_id` on its own (an InitPlan): without
 * it, the plan PostgreSQL cached for this prepared statement could start from the sessions
 * table and probe the token for every live session — seen in the benchmark once a few hundred
 * sessions existed (125 index probes per refresh). With it, every table is read at one key. The
 * token row is tied to the session only through that value, never by `s.id = rt.session_id`:
 * from that equality the planner may reach the token through its session's index and filter
 * the session's every earlier token by hash, a walk one row longer with each rotation (seen in
 * the benchmark once autoanalyze had seen sessions of one token each: 2,004 rows filtered per
 * refresh, a third of its throughput lost; test/sessions/rotation-plan.test.ts).
 *
 * With a `gate` (e.g. the refresh's rate-limit count), the statement also carries the gate and
 * rotates only if it admits; `gateRow` is the gate's verdict for its owner.
 */
export async function rotateRefreshToken(
  db: Db,
  input: { tokenHash: Buffer; successorHash: Buffer; now: Date; lifetimes: SessionLifetimes; client: ClientInfo; gate?: StatementGate },
): Promise<{ rotated: RotatedSession | undefined; gateRow: Record<string, unknown> }> {
  const { tokenHash, successorHash, now, lifetimes, client, gate } = input;
  const binding = rotationSlots.bind({
    tokenHash,
    successorHash,
    now,
    idleCutoff: idleCutoff(now, lifetimes),
    touchBefore: new Date(now.getTime() - lastUseGranularityMs(lifetimes)),
    userAgent: client.userAgent.slice(0, 512),
    ipAddress: client.ipAddress.slice(0, 64),
  });
  const { rows } = gate ? await gatedRotation(gate.sql).execute(db, binding, gate.binding) : await plainRotation.execute(db, binding);
  const row = rows[0];
  const rotated = row && row.id !== null ? { ...toSessionRow(row), roles: row.roles } : undefined;
  return { rotated, gateRow: (row ?? {}) as unknown as Record<string, unknown> };
}

const rotationSlots = slots<{
  tokenHash: Buffer;
  successorHash: Buffer;
  now: Date;
  idleCutoff: Date;
  touchBefore: Date;
  userAgent: string;
  ipAddress: string;
}>();

function rotationCtes(gate?: GateSql) {
  const $ = rotationSlots.$;
  return sql`
    rotated as (
      update refresh_tokens rt set rotate_time = ${$.now}
      from sessions s join users u on u.id = s.user_id
      where rt.token_hash = ${$.tokenHash} and rt.rotate_time is null
        and s.id = (select session_id from refresh_tokens where token_hash = ${$.tokenHash})
        and s.revoke_time is null
        and s.expire_time > ${$.now} and s.last_use_time > ${$.idleCutoff}
        and not u.disabled and ${gate ? gate.admits : sql`true`}
      returning rt.session_id, u.roles, s.user_id, s.create_time, s.last_use_time, s.expire_time, s.user_agent, s.ip_address
    ), successor as (
      insert into refresh_tokens (token_hash, session_id, create_time)
      select ${$.successorHash}, session_id, ${$.now} from rotated
    ), touched as (
      update sessions set last_use_time = ${$.now}, user_agent = ${$.userAgent}, ip_address = ${$.ipAddress}
      where id = (select session_id from rotated) and last_use_time <= ${$.touchBefore}
      returning last_use_time, user_agent, ip_address
    )`;
}

const ROTATION_RESULT = sql`
  select rotated.session_id as id, rotated.user_id, rotated.create_time,
    coalesce(touched.last_use_time, rotated.last_use_time) as last_use_time, rotated.expire_time,
    coalesce(touched.user_agent, rotated.user_agent) as user_agent, coalesce(touched.ip_address, rotated.ip_address) as ip_address,
    rotated.roles
  from rotated left join touched on true`;

const plainRotation = compiledStatement<RotatedSession>(() => sql`${PREPARED} with ${rotationCtes()} ${ROTATION_RESULT}`);

const gatedRotation = gatedStatements<RotatedSession>(
  (gate) => sql`${PREPARED}
    with ${gate.ctes}, ${rotationCtes(gate)}
    select ${gate.columns}, r.* from ${gate.verdict} left join (${ROTATION_RESULT}) r on true`,
);

export interface RefreshTokenState {
  session_id: string;
  user_id: string;
  rotate_time: Date | null;
  revoke_time: Date | null;
  expire_time: Date;
  last_use_time: Date;
  disabled: boolean;
}

/** Why a refresh token was not rotated: its row, its session's and its user's state. */
export async function inspectRefreshToken(db: Db, tokenHash: Buffer): Promise<RefreshTokenState | undefined> {
  const { rows } = await sql<RefreshTokenState>`
    select rt.session_id, s.user_id, rt.rotate_time, s.revoke_time, s.expire_time, s.last_use_time, u.disabled
    from refresh_tokens rt join sessions s on s.id = rt.session_id join users u on u.id = s.user_id
    where rt.token_hash = ${tokenHash}`.execute(db);
  const row = rows[0];
  return (
    row && {
      ...row,
      rotate_time: toDate(row.rotate_time),
      revoke_time: toDate(row.revoke_time),
      expire_time: toDate(row.expire_time),
      last_use_time: toDate(row.last_use_time),
    }
  );
}

/** Ends one session if it is still live; with `userId`, only if it belongs to that user. */
export async function revokeSession(
  db: Db,
  input: { sessionId: string; userId?: string; reason: RevokeReason; now: Date; lifetimes: SessionLifetimes },
): Promise<boolean> {
  const { sessionId, userId, reason, now, lifetimes } = input;
  const result = await sql`
    update sessions set revoke_time = ${now}, revoke_reason = ${reason}
    where id = ${sessionId} and (${userId ?? null}::uuid is null or user_id = ${userId ?? null}::uuid)
      and revoke_time is null and expire_time > ${now} and last_use_time > ${idleCutoff(now, lifetimes)}`.execute(db);
  return Number(result.numAffectedRows ?? 0) > 0;
}

/**
 * Ends every session of a user (except `exceptSessionId`), e.g. on logout-all, a password
 * change, disabling or a password reset. Returns how many of them were still live.
 */
export async function revokeUserSessions(
  db: Db,
  input: { userId: string; reason: RevokeReason; now: Date; lifetimes: SessionLifetimes; exceptSessionId?: string },
): Promise<number> {
  const { userId, reason, now, lifetimes, exceptSessionId } = input;
  const { rows } = await sql<{ live: boolean }>`
    update sessions set revoke_time = ${now}, revoke_reason = ${reason}
    where user_id = ${userId} and revoke_time is null
      and (${exceptSessionId ?? null}::uuid is null or id <> ${exceptSessionId ?? null}::uuid)
    returning (expire_time > ${now} and last_use_time > ${idleCutoff(now, lifetimes)}) as live`.execute(db);
  return rows.filter((row) => row.live).length;
}

/** A user's live sessions, most recently used first. */
export async function listLiveSessions(db: Db, input: { userId: string; now: Date; lifetimes: SessionLifetimes }): Promise<SessionRow[]> {
  const { userId, now, lifetimes } = input;
  const { rows } = await sql<SessionRow>`
    select id, user_id, create_time, last_use_time, expire_time, user_agent, ip_address
    from sessions
    where user_id = ${userId} and revoke_time is null
      and expire_time > ${now} and last_use_time > ${idleCutoff(now, lifetimes)}
    order by last_use_time desc, id`.execute(db);
  return rows.map(toSessionRow);
}

/** True when the session no longer stands at `now`, for whichever reason. */
export function sessionEnded(session: { expire_time: Date; last_use_time: Date }, now: Date, lifetimes: SessionLifetimes): boolean {
  return session.expire_time <= now || session.last_use_time <= idleCutoff(now, lifetimes);
}

const CLEANUP_BATCH = 1_000;

/**
 * Deletes sessions that ended (expired, idle, or revoked more than a day ago) together with
 * their refresh tokens (cascade), in batches so no statement holds many locks for long.
 */
export async function deleteEndedSessions(db: Db, input: { now: Date; lifetimes: SessionLifetimes }): Promise<number> {
  const { now, lifetimes } = input;
  const revokedBefore = new Date(now.getTime() - REVOKED_SESSION_RETENTION_MS);
  let total = 0;
  for (;;) {
    const result = await sql`
      delete from sessions where id in (
        select id from sessions
        where expire_time <= ${now} or last_use_time <= ${idleCutoff(now, lifetimes)} or revoke_time <= ${revokedBefore}
        limit ${CLEANUP_BATCH})`.execute(db);
    const deleted = Number(result.numAffectedRows ?? 0);
    total += deleted;
    if (deleted < CLEANUP_BATCH) return total;
  }
}
