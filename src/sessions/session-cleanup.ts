import type { Clock } from "../platform/clock.ts";
import type { Logger } from "../platform/observability/logger.ts";
import { deleteRemovedSigningKeys } from "../signing-keys/signing-keys.ts";
import { deleteEndedSessions, type Db, type SessionLifetimes } from "./session-store.ts";

/** How often each instance sweeps; jittered so instances started together do not sweep together. */
const CLEANUP_INTERVAL_MS = 10 * 60_000;

export interface SessionCleanup {
  /** One sweep now; resolves with what was deleted. */
  runOnce(): Promise<{ sessions: number; signingKeys: number }>;
  stop(): void;
}

/**
 * Deletes ended sessions (and with them their refresh tokens) and signing keys past their
 * removal time, periodically. Ended sessions are refused by their timestamps whether or not the
 * sweep has run yet: it only keeps the tables small. Every instance sweeps; the deletes are
 * idempotent, so they need no coordination.
 */
export function startSessionCleanup(deps: { db: () => Db; clock: Clock; lifetimes: SessionLifetimes; logger: Logger }): SessionCleanup {
  const { db, clock, lifetimes, logger } = deps;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const runOnce = async () => {
    const now = clock.now();
    const sessions = await deleteEndedSessions(db(), { now, lifetimes });
    const signingKeys = await deleteRemovedSigningKeys(db(), now);
    if (sessions + signingKeys > 0) logger.info({ sessions, signingKeys }, "deleted ended sessions and removed signing keys");
    return { sessions, signingKeys };
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
