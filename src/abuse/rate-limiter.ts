import { sql, type Kysely, type RawBuilder } from "kysely";
import { PREPARED } from "../platform/database/prepared-statements.ts";
import type { Clock } from "../platform/clock.ts";
import type { RateLimit } from "../platform/config/config.ts";
import { compiledStatement, slots } from "../platform/database/compiled-statement.ts";
import type { GateCarrier, GateSql, StatementGate } from "../platform/database/statement-gate.ts";

/**
 * A sliding-window rate limiter whose counters live in PostgreSQL (`rate_limit_windows`), so a
 * limit holds across every instance. Each key has one row per fixed window; a call is counted
 * against the estimate `previous window × (share of it still inside the sliding window) +
 * current window`, which smooths the burst a plain fixed window allows at its edges (up to
 * twice the limit) at the cost of two rows per key.
 *
 * Checking and counting is ONE statement (`INSERT … ON CONFLICT DO UPDATE … RETURNING`):
 * PostgreSQL applies the update to the latest row version under its row lock, so concurrent
 * calls on any instance can never both take the last slot. Refused calls are not counted, so
 * the retry delay a refusal carries is the truth: a client that waits that long gets through.
 *
 * **Quota leases.** So that a hot key (Refresh, Introspect) does not cost a database write per
 * call, that statement reserves up to `n` slots at once — as many as fit, all counted in `hits`
 * — and this instance hands the spare ones out from memory. A lease is only valid in the fixed
 * window it was granted in, and only from the moment it was granted: later in a window the
 * previous window weighs less, so a slot that fitted then still fits. The first reservation of
 * a key in a window asks for 1 slot, so a rarely used key costs one statement per call and
 * counts nothing extra, exactly as without leases; each further one doubles the ask, up to
 * `leaseCap` (limit/16, at most 64). Concurrent calls of one key on one instance wait for the
 * reservation in flight instead of each making their own.
 *
 * A refusal is remembered for the delay it gave, so a key over its limit is refused from memory
 * meanwhile: a flood from one address costs no database work once it is refused.
 *
 * The trade-off: slots leased but not used still count against the key in the database until
 * their window has faded (the end of the next one), so a key may be refused a little before
 * `limit` calls really happened — by fewer than `leaseCap` per instance holding a lease — but is
 * never let past it.
 */
export interface RateLimiter {
  /** Counts one call under `key` if the limit allows it; says when to retry if it does not. */
  consume(key: string, limit: RateLimit): Promise<RateLimitDecision>;
  /**
   * As `consume`, but when counting needs a statement, the count rides in the caller's own
   * statement (`carrier`, see StatementGate), whose work then happens only if the call is allowed:
   * one round trip instead of two. `carried` is the carrier's result when it ran and the call was
   * allowed; when it is undefined and the call is allowed (a leased slot paid for it), the
   * caller runs its statement plainly. A refused call's carrier did nothing.
   */
  consumeWithin<T>(key: string, limit: RateLimit, carrier: GateCarrier<T>): Promise<{ decision: RateLimitDecision; carried?: T }>;
  /** Gives back a call counted by `consume` (e.g. a sign-in that turned out to be no failure). */
  refund(key: string, windowStart: Date): Promise<void>;
}

export type RateLimitDecision = { allowed: true; windowStart: Date } | { allowed: false; retryAfterMs: number };

/** Where `now` falls: the current fixed window, the one before, and how much of that one still counts. */
export function slidingWindow(now: Date, windowMs: number): { windowStart: Date; previousStart: Date; elapsedMs: number; previousWeight: number } {
  const t = now.getTime();
  const start = t - (t % windowMs);
  const elapsedMs = t - start;
  return {
    windowStart: new Date(start),
    previousStart: new Date(start - windowMs),
    elapsedMs,
    previousWeight: 1 - elapsedMs / windowMs,
  };
}

/**
 * How long a refused caller must wait until one more call fits, if no one else calls meanwhile.
 * Within this window the previous window's weight fades linearly; if the current window alone is
 * full, the wait reaches into the next one, where the current count becomes the fading one.
 */
export function retryAfterMs(input: { previous: number; current: number; limit: number; windowMs: number; elapsedMs: number }): number {
  const { previous, current, limit, windowMs, elapsedMs } = input;
  if (current + 1 <= limit) {
    if (previous <= 0) return 1;
    const fraction = 1 - (limit - current - 1) / previous;
    // One millisecond more, so that floating-point rounding in the database never lands short.
    return Math.max(1, Math.ceil(fraction * windowMs - elapsedMs) + 1);
  }
  const intoNext = current <= 0 ? 0 : Math.max(0, 1 - (limit - 1) / current);
  return Math.max(1, Math.ceil(windowMs - elapsedMs + intoNext * windowMs) + 1);
}

/** The most slots one reservation asks for under `limit`: a sixteenth of it, at most 64, at least 1. */
export function leaseCap(limit: number): number {
  return Math.max(1, Math.min(64, Math.floor(limit / 16)));
}

/** This instance's share of one key's current fixed window. */
interface Lease {
  readonly windowStart: number;
  readonly limit: number;
  readonly windowMs: number;
  /** Slots counted in the database and not handed out yet. */
  remaining: number;
  /** When the latest slots were granted: before that moment they might not have fitted. */
  validFrom: number;
  nextAsk: number;
  reserving?: Promise<Reserved>;
  /**
   * Set by a refusal: until then, this instance refuses the key without asking the database.
   * The database would refuse too: the estimate only falls with time, and the delay is the first
   * moment one more call fits. Only a refund frees a slot sooner; one made here lifts this at once.
   */
  refusedUntil?: number;
}

/** What a reservation decided for the call that made it, and when. */
interface Reserved {
  decision: RateLimitDecision;
  at: number;
  /** What the statement that carried the reservation returned, for the call that made it. */
  carried?: unknown;
}

/** How many keys' leases one instance keeps; beyond it, ended windows and then the oldest go. */
const MAX_LEASES = 10_000;

export function createRateLimiter(deps: { db: () => Kysely<any>; clock: Clock; maxLeases?: number }): RateLimiter {
  const { db, clock, maxLeases = MAX_LEASES } = deps;
  // In creation order, so the first entries are the oldest.
  const leases = new Map<string, Lease>();

  const leaseFor = (key: string, windowStart: number, { limit, windowMs }: RateLimit, now: number): Lease => {
    const found = leases.get(key);
    if (found && found.windowStart === windowStart && found.limit === limit && found.windowMs === windowMs) return found;
    // A lease of another window is worthless now; a reservation still in flight for it keeps
    // the old object and updates nothing here.
    leases.delete(key);
    const lease: Lease = { windowStart, limit, windowMs, remaining: 0, validFrom: now, nextAsk: 1 };
    leases.set(key, lease);
    if (leases.size > maxLeases) evict(now);
    return lease;
  };

  /** Drops every lease whose window has ended, then the oldest, down to three quarters of the cap (so this runs rarely). */
  const evict = (now: number) => {
    const target = Math.floor(maxLeases * 0.75);
    for (const [key, lease] of leases) if (lease.windowStart + lease.windowMs <= now) leases.delete(key);
    for (const key of leases.keys()) {
      if (leases.size <= target) break;
      leases.delete(key);
    }
  };

  const reserve = (key: string, lease: Lease, limit: RateLimit, now: Date, carrier?: GateCarrier<unknown>): Promise<Reserved> => {
    const ask = lease.nextAsk;
    lease.nextAsk = Math.min(leaseCap(limit.limit), ask * 2);
    const reserving = (async (): Promise<Reserved> => {
      try {
        const at = now.getTime();
        const window = slidingWindow(now, limit.windowMs);
        const reservation = reservationGate(key, ask, limit, window);
        let row: ReservationRow;
        let carried: unknown;
        if (carrier) {
          const { gateRow, result } = await carrier(reservation);
          row = gateRow as unknown as ReservationRow;
          carried = result;
        } else {
          const { rows } = await standaloneReservation.execute(db(), reservation.binding);
          row = rows[0]!;
        }
        const { granted, previous, current } = readReservation(row);
        if (granted === 0) {
          const wait = retryAfterMs({ previous, current, limit: limit.limit, windowMs: limit.windowMs, elapsedMs: window.elapsedMs });
          lease.refusedUntil = Math.max(lease.refusedUntil ?? 0, at + wait);
          return { decision: { allowed: false, retryAfterMs: wait }, at };
        }
        // One slot is this call's; the rest wait for the next calls.
        lease.remaining += granted - 1;
        lease.validFrom = Math.max(lease.validFrom, at);
        return { decision: { allowed: true, windowStart: window.windowStart }, at, carried };
      } finally {
        lease.reserving = undefined;
      }
    })();
    lease.reserving = reserving;
    return reserving;
  };

  const take = async (key: string, limit: RateLimit, carrier?: GateCarrier<unknown>): Promise<Reserved> => {
    for (;;) {
      const now = clock.now();
      const { windowStart } = slidingWindow(now, limit.windowMs);
      const lease = leaseFor(key, windowStart.getTime(), limit, now.getTime());
      if (lease.remaining > 0 && now.getTime() >= lease.validFrom) {
        lease.remaining--;
        return { decision: { allowed: true, windowStart }, at: now.getTime() };
      }
      // A key over its limit costs no statement per call: a flood is refused from memory.
      if (lease.refusedUntil !== undefined && now.getTime() < lease.refusedUntil) {
        return { decision: { allowed: false, retryAfterMs: lease.refusedUntil - now.getTime() }, at: now.getTime() };
      }
      if (!lease.reserving) return reserve(key, lease, limit, now, carrier);

      // Wait for the reservation in flight, then take from it, be refused with it (its refusal
      // is remembered above) or reserve again. If it failed (its call may just have been
      // cancelled), this call tries on its own.
      await lease.reserving.catch(() => undefined);
    }
  };

  return {
    async consume(key, limit) {
      return (await take(key, limit)).decision;
    },

    async consumeWithin<T>(key: string, limit: RateLimit, carrier: GateCarrier<T>) {
      const { decision, carried } = await take(key, limit, carrier);
      return { decision, carried: decision.allowed ? (carried as T | undefined) : undefined };
    },

    // A refund goes to the database even if this instance holds a lease for the key: the call
    // it gives back was counted there like any other (leased slots included), and a slot given
    // back there is free for every instance. It is no hot path (a sign-in that succeeded).
    async refund(key, windowStart) {
      await sql`update rate_limit_windows set hits = hits - 1
        where key = ${key} and window_start = ${windowStart} and hits > 0`.execute(db());
      const lease = leases.get(key);
      if (lease) lease.refusedUntil = undefined;
    },
  };
}

/**
 * The statement gate that reserves up to `ask` slots of `key` in the current window: as many as
 * fit the sliding estimate, at least one whenever one call would fit (so a refusal means exactly
 * what it meant for a single call), none otherwise. It admits the carrying statement's work when
 * at least one slot was granted. It runs alone (committed asynchronously, below) or inside the
 * statement of the call it counts (`consumeWithin`), whose commit it then shares.
 *
 * The statement must also say how many it granted, which the new `hits` alone does not tell when
 * the room ran out. A reservation of more than one slot therefore first locks the current row
 * (`held`, FOR UPDATE: in READ COMMITTED that returns the latest committed version and keeps it)
 * and reports the count it started from; the ON CONFLICT update then works on that same locked
 * version. Without such a row — the first reservation of a window, or a row another instance
 * inserted after this statement's snapshot — the ask falls back to one slot, which `allowed`
 * reports.
 */
function reservationGate(
  key: string,
  ask: number,
  { limit, windowMs }: RateLimit,
  { windowStart, previousStart, previousWeight }: ReturnType<typeof slidingWindow>,
): StatementGate {
  // A window is needed until the end of the next one, where it is the fading previous window.
  const expireTime = new Date(windowStart.getTime() + 2 * windowMs);
  return { sql: RESERVATION_GATE, binding: reservationSlots.bind({ key, ask, limit, windowStart, previousStart, previousWeight, expireTime }) };
}

const reservationSlots = slots<{
  key: string;
  ask: number;
  limit: number;
  windowStart: Date;
  previousStart: Date;
  previousWeight: number;
  expireTime: Date;
}>();

const RESERVATION_GATE: GateSql = (() => {
  const $ = reservationSlots.$;
  const granted = (previous: RawBuilder<unknown>, current: RawBuilder<unknown>, n: RawBuilder<unknown>) => sql`
    case when ${previous} * ${$.previousWeight}::float8 + ${current} + 1 <= ${$.limit}
         then least(${n}, greatest(1, floor(${$.limit}::int - ${previous} * ${$.previousWeight}::float8 - ${current})::int))
         else 0 end`;
  const previousHits = sql`(select hits from rate_limit_previous)`;
  const n = sql`(select n from rate_limit_ask)`;
  return {
    ctes: sql`rate_limit_previous as (
      select coalesce((select hits from rate_limit_windows where key = ${$.key} and window_start = ${$.previousStart}), 0) as hits
    ),
    rate_limit_held as materialized (
      select hits from rate_limit_windows where key = ${$.key} and window_start = ${$.windowStart} and ${$.ask}::int > 1
      for update
    ),
    rate_limit_ask as (
      select case when exists (select 1 from rate_limit_held) then ${$.ask}::int else 1 end as n
    ),
    rate_limit_reservation as (
      insert into rate_limit_windows as w (key, window_start, hits, allowed, expire_time)
      select ${$.key}, ${$.windowStart}, ${granted(sql`p.hits`, sql`0`, sql`a.n`)}, ${granted(sql`p.hits`, sql`0`, sql`a.n`)} > 0, ${$.expireTime}
      from rate_limit_previous p, rate_limit_ask a
      on conflict (key, window_start) do update
        set hits = w.hits + ${granted(previousHits, sql`w.hits`, n)},
            allowed = ${granted(previousHits, sql`w.hits`, n)} > 0
      returning hits, allowed, (select hits from rate_limit_previous) as previous, (select hits from rate_limit_held) as before
    )`,
    admits: sql`(select allowed from rate_limit_reservation)`,
    verdict: sql`rate_limit_reservation rate_limit`,
    columns: sql`rate_limit.hits as rate_limit_hits, rate_limit.allowed as rate_limit_allowed,
      rate_limit.previous as rate_limit_previous, rate_limit.before as rate_limit_before`,
  };
})();

/** The gate's columns, as a reservation reports them. */
interface ReservationRow {
  rate_limit_hits: number;
  rate_limit_allowed: boolean;
  rate_limit_previous: number;
  rate_limit_before: number | null;
}

function readReservation(row: ReservationRow): { granted: number; previous: number; current: number } {
  const hits = row.rate_limit_hits;
  const granted = row.rate_limit_before === null ? (row.rate_limit_allowed ? 1 : 0) : hits - row.rate_limit_before;
  return { granted, previous: row.rate_limit_previous, current: hits };
}

/**
 * A CTE that makes the statement's own transaction commit asynchronously (it must be joined in,
 * or PostgreSQL skips it). Counters are soft state: the commit no longer waits for the WAL to
 * reach the disk, which took most of a counted call's time, and a database crash can lose only
 * the last fraction of a second of counts (PostgreSQL stays consistent; nothing else is affected).
 */
const ASYNC_COMMIT = sql`async_commit as materialized (select set_config('synchronous_commit', 'off', true) as off)`;

/** A reservation that no statement of the caller carries. */
const standaloneReservation = compiledStatement<ReservationRow>(
  () => sql`${PREPARED}
    with ${RESERVATION_GATE.ctes}, ${ASYNC_COMMIT}
    select ${RESERVATION_GATE.columns} from ${RESERVATION_GATE.verdict}, async_commit`,
);

/** Deletes windows that no longer count towards any limit. */
export async function deleteExpiredRateLimitWindows(db: Kysely<any>, now: Date): Promise<number> {
  const result = await sql`delete from rate_limit_windows where expire_time <= ${now}`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}
