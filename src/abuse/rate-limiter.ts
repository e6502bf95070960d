import { sql, type Kysely } from "kysely";
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

export function createRateLimiter(deps: { db: () => Kysely<any>; clock: Clock }): RateLimiter {
  const { db, clock } = deps;
  return {
    async consume(key, { limit, windowMs }) {
      const now = clock.now();
      const { windowStart, previousStart, elapsedMs, previousWeight } = slidingWindow(now, windowMs);
      // A window is needed until the end of the next one, where it is the fading previous window.
      const expireTime = new Date(windowStart.getTime() + 2 * windowMs);
      const { rows } = await sql<{ hits: number; allowed: boolean; previous: number }>`
        with previous as (
          select coalesce((select hits from rate_limit_windows where key = ${key} and window_start = ${previousStart}), 0) as hits
        )
        insert into rate_limit_windows as w (key, window_start, hits, allowed, expire_time)
        select ${key}, ${windowStart},
               case when p.hits * ${previousWeight}::float8 + 1 <= ${limit} then 1 else 0 end,
               p.hits * ${previousWeight}::float8 + 1 <= ${limit}, ${expireTime}
        from previous p
        on conflict (key, window_start) do update
          set allowed = (select hits from previous) * ${previousWeight}::float8 + w.hits + 1 <= ${limit},
              hits = w.hits + case when (select hits from previous) * ${previousWeight}::float8 + w.hits + 1 <= ${limit} then 1 else 0 end
        returning hits, allowed, (select hits from previous) as previous`.execute(db());
      const row = rows[0]!;
      if (row.allowed) return { allowed: true, windowStart };
      return { allowed: false, retryAfterMs: retryAfterMs({ previous: row.previous, current: row.hits, limit, windowMs, elapsedMs }) };
    },

    async refund(key, windowStart) {
      await sql`update rate_limit_windows set hits = hits - 1
        where key = ${key} and window_start = ${windowStart} and hits > 0`.execute(db());
    },
  };
}

/** Deletes windows that no longer count towards any limit. */
export async function deleteExpiredRateLimitWindows(db: Kysely<any>, now: Date): Promise<number> {
  const result = await sql`delete from rate_limit_windows where expire_time <= ${now}`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}
