import { deleteExpiredAbuseState } from "../abuse/abuse-protection.ts";
import type { Clock } from "../platform/clock.ts";
import type { Config } from "../platform/config/config.ts";
import type { Logger } from "../platform/observability/logger.ts";
import { deleteRemovedSigningKeys } from "../signing-keys/signing-keys.ts";
import { deleteEndedSessions, type Db, type SessionLifetimes } from "./session-store.ts";

/** How often each instance sweeps; jittered so instances started together do not sweep together. */
const CLEANUP_INTERVAL_MS = 10 * 60_000;

export interface SessionCleanup {
  /** One sweep now; resolves with what was deleted. */
  runOnce(): Promise<{ sessions: number; signingKeys: number; abuseState: number }>;
  stop(): void;
}

/**
 * Deletes ended sessions (and with them their refresh tokens), signing keys past their
 * removal time, and rate-limit windows and login failures that no longer count, periodically. Ended sessions are refused by their timestamps whether or not the
 * sweep has run yet: it only keeps the tables small. Every instance sweeps; the deletes are
 * idempotent, so they need no coordination.
 */
export function startSessionCleanup(deps: {
  db: () => Db;
  clock: Clock;
  lifetimes: SessionLifetimes;
  logger: Logger;
  /** With it, the sweep also deletes expired rate-limit windows and login failures. */
  abuse?: Pick<Config, "loginThrottle">;
}): SessionCleanup {
  const { db, clock, lifetimes, logger, abuse } = deps;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const runOnce = async () => {
    const now = clock.now();
    const sessions = await deleteEndedSessions(db(), { now, lifetimes });
    const signingKeys = await deleteRemovedSigningKeys(db(), now);
    const abuseState = abuse ? await deleteExpiredAbuseState(db(), now, abuse) : 0;
    if (sessions + signingKeys > 0) logger.info({ sessions, signingKeys }, "deleted ended sessions and removed signing keys");
    if (abuseState > 0) logger.debug({ rows: abuseState }, "deleted expired rate-limit windows and login failures");
    return { sessions, signingKeys, abuseState };
  };

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      runOnce()
        .catch((err: unknown) => logger.warn({ err }, "session cleanup failed; will retry"))
        .finally(schedule);
    }, CLEANUP_INTERVAL_MS * (0.75 + Math.random() / 2));
    timer.unref();
  };
  schedule();

  return {
    runOnce,
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
