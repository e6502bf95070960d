import type { Interceptor } from "@connectrpc/connect";
import { isDatabaseUnavailable } from "../errors/database-errors.ts";
import { gatehouseError } from "../errors/gatehouse-error.ts";
import type { Logger } from "../observability/logger.ts";

/**
 * Whether this instance may take calls. The server listens before its database is known to be
 * there; until the start-up work that needs the database (migrations, the first admin, the
 * signing key) has finished, every RPC answers `unavailable` / DATABASE_UNAVAILABLE and
 * `/readyz` 503, instead of the process exiting and a supervisor restarting it in a loop.
 */
export interface Readiness {
  /** True once the start-up work has finished; it stays true (later outages are per call). */
  readonly started: boolean;
  markStarted(): void;
  /** Refuses every call until started, before any of the call's own work. */
  readonly interceptor: Interceptor;
  /** For `/readyz` and gRPC health: started, and the database answers right now. */
  isReady(): Promise<boolean>;
}

export function createReadiness(isDatabaseReachable: () => Promise<boolean>): Readiness {
  let started = false;
  return {
    get started() {
      return started;
    },
    markStarted: () => {
      started = true;
    },
    interceptor: (next) => async (req) => {
      if (!started) throw gatehouseError("DATABASE_UNAVAILABLE", "Gatehouse is starting and cannot reach its database yet; try again shortly.");
      return next(req);
    },
    isReady: async () => started && (await isDatabaseReachable()),
  };
}

export interface RetryOptions {
  /** First wait after a failure; it doubles up to `maxDelayMs`, with ±20 % jitter. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Stops the retries (shutdown); the returned promise then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Called once after the first attempt, whatever its outcome, so a caller can go on serving. */
  onFirstAttempt?: (outcome: "done" | "retrying") => void;
}

/**
 * Runs `work` until it succeeds, waiting with exponential backoff while the database is
 * unavailable (refused, reset, starting up, too many connections). Any other error is not going
 * to heal by waiting and is thrown at once.
 */
export async function retryWhileDatabaseUnavailable<T>(
  work: () => Promise<T>,
  logger: Logger,
  options: RetryOptions = {},
): Promise<T> {
  const { initialDelayMs = 200, maxDelayMs = 5_000, signal, onFirstAttempt } = options;
  let delay = initialDelayMs;
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    try {
      const result = await work();
      if (attempt === 1) onFirstAttempt?.("done");
      return result;
    } catch (error) {
      if (!isDatabaseUnavailable(error)) throw error;
      const wait = Math.round(delay * (0.8 + Math.random() * 0.4));
      logger.warn({ attempt, retryInMs: wait, err: error }, "database unavailable at start-up; retrying");
      if (attempt === 1) onFirstAttempt?.("retrying");
      await abortableSleep(wait, signal);
      delay = Math.min(delay * 2, maxDelayMs);
    }
  }
}

function abortableSleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
