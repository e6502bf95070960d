import { Code, ConnectError, createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { reasonOf } from "../errors/gatehouse-error.ts";
import type { HttpRoute } from "../server/http-routes.ts";

/** How a sign-in attempt ended, as the sign-in counter labels it. */
export type SignInOutcome = "success" | "invalid_credentials" | "account_disabled" | "rate_limited";

/** Security events that features record; handlers reach it with `ctx.values.get(kMetrics)`. */
export interface SecurityEvents {
  signIn(outcome: SignInOutcome): void;
  /** A rotated refresh token was presented again and its session revoked. */
  refreshTokenReused(): void;
}

/** The counters every call can reach; a no-op until the app sets the real one (so handler tests need none). */
export const kMetrics = createContextKey<SecurityEvents>(
  { signIn: () => {}, refreshTokenReused: () => {} },
  { description: "metrics" },
);

const SIGN_IN_FAILURES: Readonly<Record<string, SignInOutcome>> = {
  INVALID_CREDENTIALS: "invalid_credentials",
  ACCOUNT_DISABLED: "account_disabled",
  RATE_LIMITED: "rate_limited",
};

/** Runs a sign-in and counts its outcome: success, or the reason it was refused. */
export async function observeSignIn<T>(ctx: HandlerContext, attempt: () => Promise<T>): Promise<T> {
  const events = ctx.values.get(kMetrics);
  try {
    const result = await attempt();
    events.signIn("success");
    return result;
  } catch (error) {
    const outcome = error instanceof ConnectError ? SIGN_IN_FAILURES[reasonOf(error) ?? ""] : undefined;
    if (outcome) events.signIn(outcome);
    throw error;
  }
}

/** Runs a refresh and counts it when it was refused as the replay of a rotated token. */
export async function observeRefresh<T>(ctx: HandlerContext, attempt: () => Promise<T>): Promise<T> {
  try {
    return await attempt();
  } catch (error) {
    if (error instanceof ConnectError && reasonOf(error) === "REFRESH_TOKEN_REUSED") ctx.values.get(kMetrics).refreshTokenReused();
    throw error;
  }
}

/** What `pg.Pool` reports about its connections. */
export interface PoolStats {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
}

export interface Metrics extends SecurityEvents {
  readonly registry: Registry;
  /** Counts every call by procedure and code and times it; install it outermost so it sees the final code. */
  readonly interceptor: Interceptor;
  /** `GET /metrics` in the Prometheus text format. */
  readonly route: HttpRoute;
  /** Reports the password hasher's waiting hashes at every scrape. */
  registerHashQueueGauge(getDepth: () => number): void;
  /** Reports the database pool's connections at every scrape. */
  registerDatabasePool(getPool: () => Promise<PoolStats> | PoolStats): void;
  /** Reports the statements in flight on the pipelined connection (refresh-token rotations) at every scrape. */
  registerStatementPipeline(getInFlight: () => number): void;
  /** Reports the caller cache's lookups, size and whether it is in use, at every scrape. */
  registerCallerCache(getStats: () => CallerCacheStats): void;
}

export interface CallerCacheStats {
  readonly hits: number;
  readonly misses: number;
  readonly entries: number;
  readonly listening: boolean;
}

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * One registry per server (not prom-client's global one), so several servers in one process —
 * as in the test suite — never collide, and a scrape shows only its own server.
 */
export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const calls = new Counter({
    name: "gatehouse_rpc_calls_total",
    help: "RPC calls handled, by procedure and final status code.",
    labelNames: ["procedure", "code"] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: "gatehouse_rpc_duration_seconds",
    help: "Time from a call's arrival to its last response message, by procedure.",
    labelNames: ["procedure"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const signIns = new Counter({
    name: "gatehouse_sign_ins_total",
    help: "Sign-in attempts, by outcome.",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
  const refreshReuse = new Counter({
    name: "gatehouse_refresh_token_reuse_total",
    help: "Rotated refresh tokens presented again; each revoked its session.",
    registers: [registry],
  });

  const interceptor: Interceptor = (next) => async (req) => {
    const procedure = `${req.service.typeName}/${req.method.name}`;
    const stopTimer = latency.startTimer({ procedure });
    const finish = (code: string) => {
      stopTimer();
      calls.inc({ procedure, code });
    };
    try {
      const res = await next(req);
      if (!res.stream) {
        finish("ok");
        return res;
      }
      return { ...res, message: observeStream(res.message, req.signal, finish) };
    } catch (error) {
      finish(codeOf(error));
      throw error;
    }
  };

  /** A gauge that reads its value at every scrape. */
  const sampledGauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });

  return {
    registry,
    interceptor,
    route: async (_req, res) => {
      const body = await registry.metrics();
      res.statusCode = 200;
      res.setHeader("content-type", registry.contentType);
      res.setHeader("cache-control", "no-store");
      res.end(body);
    },
    signIn: (outcome) => signIns.inc({ outcome }),
    refreshTokenReused: () => refreshReuse.inc(),
    registerHashQueueGauge(getDepth) {
      sampledGauge("gatehouse_password_hash_queue_depth", "Password hashes waiting for a free hashing slot.", getDepth);
    },
    registerCallerCache(getStats) {
      // The cache counts in plain numbers (it sits on every authenticated call); a scrape catches up.
      const reported = { hit: 0, miss: 0 };
      new Counter({
        name: "gatehouse_caller_cache_lookups_total",
        help: "Authenticated calls whose session was found in memory (hit) or read from the database (miss).",
        labelNames: ["result"] as const,
        registers: [registry],
        collect() {
          const { hits, misses } = getStats();
          this.inc({ result: "hit" }, hits - reported.hit);
          this.inc({ result: "miss" }, misses - reported.miss);
          reported.hit = hits;
          reported.miss = misses;
        },
      });
      sampledGauge("gatehouse_caller_cache_entries", "Sessions held in the caller cache.", () => getStats().entries);
      sampledGauge(
        "gatehouse_caller_cache_listening",
        "1 while database notifications arrive and the caller cache is in use; 0 while it is off.",
        () => (getStats().listening ? 1 : 0),
      );
    },
    registerStatementPipeline(getInFlight) {
      sampledGauge(
        "gatehouse_db_pipeline_statements_in_flight",
        "Statements sent on the pipelined database connection (refresh-token rotations) and not answered yet.",
        getInFlight,
      );
    },
    registerDatabasePool(getPool) {
      new Gauge({
        name: "gatehouse_db_pool_connections",
        help: "Connections of the database pool, by state (in_use, idle).",
        labelNames: ["state"] as const,
        registers: [registry],
        async collect() {
          const pool = await poolStats(getPool);
          if (!pool) return;
          this.set({ state: "idle" }, pool.idleCount);
          this.set({ state: "in_use" }, pool.totalCount - pool.idleCount);
        },
      });
      new Gauge({
        name: "gatehouse_db_pool_waiting_requests",
        help: "Queries waiting for a free database connection.",
        registers: [registry],
        async collect() {
          const pool = await poolStats(getPool);
          if (pool) this.set(pool.waitingCount);
        },
      });
    },
  };
}

/** Records the stream's outcome once it ends: drained, failed, or cut short by the client. */
async function* observeStream<T>(
  messages: AsyncIterable<T>,
  signal: AbortSignal,
  finish: (code: string) => void,
): AsyncGenerator<T> {
  let code = codeToString(Code.Canceled);
  try {
    yield* messages;
    // A handler that stops because its caller went away (or ran out of time) did not succeed.
    code = signal.aborted ? codeOf(ConnectError.from(signal.reason, Code.Canceled)) : "ok";
  } catch (error) {
    code = codeOf(error);
    throw error;
  } finally {
    finish(code);
  }
}

function codeOf(error: unknown): string {
  return codeToString(error instanceof ConnectError ? error.code : Code.Unknown);
}

/** A scrape never fails because the database is down: the pool gauges are then left out. */
async function poolStats(getPool: () => Promise<PoolStats> | PoolStats): Promise<PoolStats | undefined> {
  try {
    return await getPool();
  } catch {
    return undefined;
  }
}
