import { sql, type Kysely, type RawBuilder } from "kysely";
import { PREPARED } from "../platform/database/prepared-statements.ts";
import type { Clock } from "../platform/clock.ts";
import type { RateLimit } from "../platform/config/config.ts";

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
 * The trade-off: slots leased but not used still count against the key in the database until
 * their window has faded (the end of the next one), so a key may be refused a little before
 * `limit` calls really happened — by fewer than `leaseCap` per instance holding a lease — but is
 * never let past it.
 */
export interface RateLimiter {
  /** Counts one call under `key` if the limit allows it; says when to retry if it does not. */
  consume(key: string, limit: RateLimit): Promise<RateLimitDecision>;
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
}

/** What a reservation decided for the call that made it, and when. */
interface Reserved {
  decision: RateLimitDecision;
  at: number;
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

  const reserve = (key: string, lease: Lease, limit: RateLimit, now: Date): Promise<Reserved> => {
    const ask = lease.nextAsk;
    lease.nextAsk = Math.min(leaseCap(limit.limit), ask * 2);
    const reserving = (async (): Promise<Reserved> => {
      try {
        const at = now.getTime();
        const window = slidingWindow(now, limit.windowMs);
        const { granted, previous, current } = await reserveSlots(db(), key, ask, limit, window);
        if (granted === 0) {
          const wait = retryAfterMs({ previous, current, limit: limit.limit, windowMs: limit.windowMs, elapsedMs: window.elapsedMs });
          return { decision: { allowed: false, retryAfterMs: wait }, at };
        }
        // One slot is this call's; the rest wait for the next calls.
        lease.remaining += granted - 1;
        lease.validFrom = Math.max(lease.validFrom, at);
        return { decision: { allowed: true, windowStart: window.windowStart }, at };
      } finally {
        lease.reserving = undefined;
      }
    })();
    lease.reserving = reserving;
    return reserving;
  };

  return {
    async consume(key, limit) {
      for (;;) {
        const now = clock.now();
        const { windowStart } = slidingWindow(now, limit.windowMs);
        const lease = leaseFor(key, windowStart.getTime(), limit, now.getTime());
        if (lease.remaining > 0 && now.getTime() >= lease.validFrom) {
          lease.remaining--;
          return { allowed: true, windowStart };
        }
        if (!lease.reserving) return (await reserve(key, lease, limit, now)).decision;

        // Wait for the reservation in flight, then take from it or reserve again. If it failed
        // (its call may just have been cancelled), this call tries on its own.
        const reserved = await lease.reserving.catch(() => undefined);
        if (reserved && !reserved.decision.allowed) {
          // Refused for this very window a moment ago: so is this call, with the delay shortened
          // by the time since (the estimate only falls while no one is let through).
          const later = clock.now().getTime();
          if (later >= reserved.at && slidingWindow(new Date(later), limit.windowMs).windowStart.getTime() === lease.windowStart) {
            return { allowed: false, retryAfterMs: Math.max(1, reserved.decision.retryAfterMs - (later - reserved.at)) };
          }
        }
      }
    },

    // A refund goes to the database even if this instance holds a lease for the key: the call
    // it gives back was counted there like any other (leased slots included), and a slot given
    // back there is free for every instance. It is no hot path (a sign-in that succeeded).
    async refund(key, windowStart) {
      await sql`update rate_limit_windows set hits = hits - 1
        where key = ${key} and window_start = ${windowStart} and hits > 0`.execute(db());
    },
  };
}

/**
 * Reserves up to `ask` slots of `key` in the current window in one statement: as many as fit
 * the sliding estimate, at least one whenever one call would fit (so a refusal means exactly
 * what it meant for a single call), none otherwise.
 *
 * The statement must also say how many it granted, which the new `hits` alone does not tell when
 * the room ran out. A reservation of more than one slot therefore first locks the current row
 * (`held`, FOR UPDATE: in READ COMMITTED that returns the latest committed version and keeps it)
 * and reports the count it started from; the ON CONFLICT update then works on that same locked
 * version. Without such a row — the first reservation of a window, or a row another instance
 * inserted after this statement's snapshot — the ask falls back to one slot, which `allowed`
 * reports.
 */
/**
 * A CTE that makes the statement's own transaction commit asynchronously (it must be joined in,
 * or PostgreSQL skips it). Counters are soft state: the commit no longer waits for the WAL to
 * reach the disk, which took most of a counted call's time, and a database crash can lose only
 * the last fraction of a second of counts (PostgreSQL stays consistent; nothing else is affected).
 */
const ASYNC_COMMIT = sql`async_commit as materialized (select set_config('synchronous_commit', 'off', true) as off)`;

async function reserveSlots(
  db: Kysely<any>,
  key: string,
  ask: number,
  { limit, windowMs }: RateLimit,
  { windowStart, previousStart, previousWeight }: ReturnType<typeof slidingWindow>,
): Promise<{ granted: number; previous: number; current: number }> {
  // A window is needed until the end of the next one, where it is the fading previous window.
  const expireTime = new Date(windowStart.getTime() + 2 * windowMs);
  const granted = (previous: RawBuilder<unknown>, current: RawBuilder<unknown>, n: RawBuilder<unknown>) => sql`
    case when ${previous} * ${previousWeight}::float8 + ${current} + 1 <= ${limit}
         then least(${n}, greatest(1, floor(${limit}::int - ${previous} * ${previousWeight}::float8 - ${current})::int))
         else 0 end`;
  const previousHits = sql`(select hits from previous)`;
  const n = sql`(select n from ask)`;
  const { rows } = await sql<{ hits: number; allowed: boolean; previous: number; before: number | null }>`${PREPARED}
    with previous as (
      select coalesce((select hits from rate_limit_windows where key = ${key} and window_start = ${previousStart}), 0) as hits
    ),
    held as materialized (
      select hits from rate_limit_windows where key = ${key} and window_start = ${windowStart} and ${ask}::int > 1
      for update
    ),
    ask as (
      select case when exists (select 1 from held) then ${ask}::int else 1 end as n
    ),
    ${ASYNC_COMMIT}
    insert into rate_limit_windows as w (key, window_start, hits, allowed, expire_time)
    select ${key}, ${windowStart}, ${granted(sql`p.hits`, sql`0`, sql`a.n`)}, ${granted(sql`p.hits`, sql`0`, sql`a.n`)} > 0, ${expireTime}
    from previous p, ask a, async_commit
    on conflict (key, window_start) do update
      set hits = w.hits + ${granted(previousHits, sql`w.hits`, n)},
          allowed = ${granted(previousHits, sql`w.hits`, n)} > 0
    returning hits, allowed, (select hits from previous) as previous, (select hits from held) as before`.execute(db);
  const row = rows[0]!;
  const count = row.before === null ? (row.allowed ? 1 : 0) : row.hits - row.before;
  return { granted: count, previous: row.previous, current: row.hits };
}

/** Deletes windows that no longer count towards any limit. */
export async function deleteExpiredRateLimitWindows(db: Kysely<any>, now: Date): Promise<number> {
  const result = await sql`delete from rate_limit_windows where expire_time <= ${now}`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}
