import type { Kysely } from "kysely";
import type { Clock } from "../platform/clock.ts";
import type { Config, RateLimits } from "../platform/config/config.ts";
import type { GateCarrier } from "../platform/database/statement-gate.ts";
import { gatehouseError } from "../platform/errors/gatehouse-error.ts";
import { rateLimitSubject } from "./client-address.ts";
import { createLoginThrottle, deleteExpiredLoginFailures } from "./login-throttle.ts";
import { createRateLimiter, deleteExpiredRateLimitWindows } from "./rate-limiter.ts";

/** The public methods that are rate-limited per client address. */
export type LimitedCall = "register" | "login" | "refresh" | "introspect";

/** A password check that was allowed to run; say how it went. */
export interface PasswordAttempt {
  /** The password was right: this attempt was no failure after all. */
  succeeded(): Promise<void>;
}

/**
 * Everything that slows down abuse of the public methods, answered before any password is
 * hashed: per-address call limits, and per-identifier brute-force throttling (login-throttle.ts).
 * Every refusal is `resource_exhausted` RATE_LIMITED with a RetryInfo and `Retry-After`.
 */
export interface AbuseProtection {
  /** Counts a call of a public method from `address`, or refuses it. */
  limitCall(call: LimitedCall, address: string): Promise<void>;
  /**
   * As `limitCall`, with the count riding in the call's own statement when it needs the database
   * (RateLimiter.consumeWithin): one round trip for both. Returns the carrier's result when it
   * ran; undefined when it did not (the call was paid from a lease, or the method has no limit),
   * and the caller then runs its statement plainly.
   */
  limitCallWithin<T>(call: LimitedCall, address: string, carrier: GateCarrier<T>): Promise<T | undefined>;
  /**
   * Reserves a password check for `identifier` (e.g. `email:ada@example.com`) from `address`, or
   * refuses it. With `perAddress`, the check also counts against the address's budget of failed
   * sign-ins (GATEHOUSE_RATE_LIMIT_LOGIN_FAILURES), which is what stops one address trying one
   * password on many accounts.
   */
  beginPasswordAttempt(identifier: string, address: string, options?: { perAddress?: boolean }): Promise<PasswordAttempt>;
}

export function createAbuseProtection(deps: { db: () => Kysely<any>; clock: Clock; config: Pick<Config, "rateLimits" | "loginThrottle"> }): AbuseProtection {
  const { config } = deps;
  const limiter = createRateLimiter(deps);
  const throttle = createLoginThrottle({ ...deps, config: config.loginThrottle });
  const limits: Record<LimitedCall, RateLimits[LimitedCall]> = config.rateLimits;

  return {
    async limitCall(call, address) {
      const limit = limits[call];
      if (!limit) return;
      const decision = await limiter.consume(`${call}:${rateLimitSubject(address)}`, limit);
      if (!decision.allowed) throw rateLimited(decision.retryAfterMs);
    },

    async limitCallWithin(call, address, carrier) {
      const limit = limits[call];
      if (!limit) return undefined;
      const { decision, carried } = await limiter.consumeWithin(`${call}:${rateLimitSubject(address)}`, limit, carrier);
      if (!decision.allowed) throw rateLimited(decision.retryAfterMs);
      return carried;
    },

    async beginPasswordAttempt(identifier, address, { perAddress = false } = {}) {
      const subject = rateLimitSubject(address);
      const failuresLimit = perAddress ? config.rateLimits.loginFailures : undefined;
      const failuresKey = `login-failures:${subject}`;
      let counted: Date | undefined;
      if (failuresLimit) {
        const decision = await limiter.consume(failuresKey, failuresLimit);
        if (!decision.allowed) throw rateLimited(decision.retryAfterMs);
        counted = decision.windowStart;
      }
      const reserved = await throttle.reserve(identifier, subject);
      if (!reserved.allowed) {
        // No password was checked: the address's failure budget is not charged for it.
        if (counted) await limiter.refund(failuresKey, counted);
        throw rateLimited(reserved.retryAfterMs);
      }
      return {
        async succeeded() {
          // Two independent rows: one round trip's latency, not two.
          await Promise.all([throttle.succeeded(identifier, subject), counted && limiter.refund(failuresKey, counted)]);
        },
      };
    },
  };
}

function rateLimited(retryAfterMs: number) {
  return gatehouseError("RATE_LIMITED", undefined, { retryAfterMs });
}

/** Deletes rate-limit windows and login failures that no longer count for anything. */
export async function deleteExpiredAbuseState(db: Kysely<any>, now: Date, config: Pick<Config, "loginThrottle">): Promise<number> {
  return (await deleteExpiredRateLimitWindows(db, now)) + (await deleteExpiredLoginFailures(db, now, config.loginThrottle));
}
