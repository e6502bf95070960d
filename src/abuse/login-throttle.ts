import { createHash } from "node:crypto";
import { sql, type Kysely } from "kysely";
import type { Clock } from "../platform/clock.ts";
import type { LoginThrottleConfig } from "../platform/config/config.ts";

/**
 * Brute-force throttling of password checks, per sign-in identifier (what the caller typed:
 * an email, a username, or — for re-entering a password while signed in — a user id), with its
 * state in PostgreSQL (`login_failures`, one row per identifier and client address).
 *
 * - **Progressive delay** for an (identifier, address) pair: after `lockoutAfter` failures, each
 *   further failure locks the pair for `lockoutBase × 2^(failures − lockoutAfter)`, at most
 *   `lockoutMax`.
 * - **Hard cap** per identifier: once it has `maxFailures` failures within `failureWindow`, from
 *   all addresses together, every address that has failed on it is refused until its own failures
 *   are that old. An address that has not failed still gets its attempt, so an attacker cannot
 *   lock the owner out from the owner's own network.
 *
 * The identifier is keyed as the caller typed it, whether or not such an account exists, so the
 * throttle answers an unknown account exactly like a known one and reveals nothing. (Keying an
 * account's email and username together would: their shared counter would tell which username
 * belongs to which email.) Keys are SHA-256 digests, so what people typed is not kept.
 *
 * An attempt is counted as a failure BEFORE the password is checked — in the same statement that
 * decides whether it may go ahead — and forgotten again when the password was right. Racing
 * attempts therefore cannot slip through between a check and a count.
 */
export interface LoginThrottle {
  /** Reserves one password check, or says how long the pair must wait. */
  reserve(identifier: string, address: string): Promise<{ allowed: true } | { allowed: false; retryAfterMs: number }>;
  /** The password was right: the pair's failures are forgotten. */
  succeeded(identifier: string, address: string): Promise<void>;
}

/** The delay after the `failures`-th failure of a pair (0 while still under `lockoutAfter`). */
export function lockoutMs(failures: number, config: LoginThrottleConfig): number {
  if (failures < config.lockoutAfter) return 0;
  const exponent = Math.min(failures - config.lockoutAfter, 40);
  return Math.min(config.lockoutMaxMs, config.lockoutBaseMs * 2 ** exponent);
}

export function identifierKey(identifier: string): Buffer {
  return createHash("sha256").update(`gatehouse login\n${identifier}`, "utf8").digest();
}

export function createLoginThrottle(deps: { db: () => Kysely<any>; clock: Clock; config: LoginThrottleConfig }): LoginThrottle {
  const { db, clock, config } = deps;
  return {
    async reserve(identifier, address) {
      const key = identifierKey(identifier);
      const now = clock.now();
      const cutoff = new Date(now.getTime() - config.failureWindowMs);
      // Inserted (first failure of the pair), restarted (its failures are older than the window),
      // or counted when the pair is neither locked nor over the identifier's cap; otherwise the
      // WHERE leaves the row alone and nothing is returned.
      const { rows } = await sql<{ failures: number }>`
        insert into login_failures as f (identifier_key, address, failures, last_failure_time)
        values (${key}, ${address}, 1, ${now})
        on conflict (identifier_key, address) do update
          set failures = case when f.last_failure_time > ${cutoff} then f.failures + 1 else 1 end,
              last_failure_time = ${now}
          where f.last_failure_time <= ${cutoff}
             or ((f.failures < ${config.lockoutAfter}
                  or f.last_failure_time + least(${config.lockoutMaxMs}::float8,
                       ${config.lockoutBaseMs}::float8 * power(2::float8, least(f.failures - ${config.lockoutAfter}, 40))) * interval '1 millisecond' <= ${now})
                 and (select coalesce(sum(g.failures), 0) from login_failures g
                      where g.identifier_key = ${key} and g.last_failure_time > ${cutoff}) < ${config.maxFailures})
        returning failures`.execute(db());
      if (rows.length > 0) return { allowed: true };

      const state = await sql<{ failures: number; last_failure_time: Date | string; total: number }>`
        select f.failures, f.last_failure_time,
          (select coalesce(sum(g.failures), 0)::int from login_failures g
           where g.identifier_key = ${key} and g.last_failure_time > ${cutoff}) as total
        from login_failures f where f.identifier_key = ${key} and f.address = ${address}`.execute(db());
      const row = state.rows[0];
      if (!row) return { allowed: false, retryAfterMs: 1_000 };
      const last = new Date(row.last_failure_time).getTime();
      const until = row.total >= config.maxFailures ? last + config.failureWindowMs : last + lockoutMs(row.failures, config);
      return { allowed: false, retryAfterMs: Math.max(1, until - now.getTime()) };
    },

    async succeeded(identifier, address) {
      await sql`delete from login_failures where identifier_key = ${identifierKey(identifier)} and address = ${address}`.execute(db());
    },
  };
}

/** Deletes pairs whose failures are all older than the window: they no longer count. */
export async function deleteExpiredLoginFailures(db: Kysely<any>, now: Date, config: Pick<LoginThrottleConfig, "failureWindowMs">): Promise<number> {
  const result = await sql`delete from login_failures where last_failure_time <= ${new Date(now.getTime() - config.failureWindowMs)}`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}
