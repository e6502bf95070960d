import type { LatencySummary } from "../lib/stats.ts";

/** The two client shapes the benchmark drives: what browsers/curl use, and what backends use. */
export type BenchProtocol = "connect-json" | "grpc";

export type LoadClient = "wire" | "connect-es";

export interface Credentials {
  readonly username: string;
  readonly password: string;
}

/** What one call of a scenario does. */
export type Operation =
  /** Sign in as a random seeded user. */
  | { readonly kind: "login"; readonly usernamePrefix: string; readonly userCount: number; readonly password: string }
  /** Sign up a new, unique user. */
  | { readonly kind: "register"; readonly tag: string }
  /** Each worker rotates its own refresh token, chained; `users` are signed in during setup. */
  | { readonly kind: "refresh"; readonly users: UserSource }
  | { readonly kind: "getMe"; readonly users: UserSource }
  | { readonly kind: "introspect"; readonly users: UserSource }
  /** One page of every user; `depth` > 0 first walks that far and then asks for the page there. */
  | { readonly kind: "listUsers"; readonly admin: Credentials | undefined; readonly depth: number; readonly pageSize: number };

/**
 * Where per-worker credentials come from: seeded users (worker w signs in as `${prefix}${w+1}`),
 * or nothing at all (the echo ceiling ignores tokens; a token-shaped string is sent instead).
 */
export type UserSource = { readonly usernamePrefix: string; readonly userCount: number; readonly password: string } | "none";

export interface LoadSpec {
  readonly name: string;
  /** Base URLs; worker w calls targets[w % targets.length]. */
  readonly targets: readonly string[];
  readonly protocol: BenchProtocol;
  /** Which client speaks it: the benchmark's lean wire client, or connect-es' Node client. */
  readonly client: LoadClient;
  readonly operation: Operation;
  /** Workers, each with one call in flight (closed loop). */
  readonly concurrency: number;
  /** Open loop instead: this many calls per second on a fixed schedule, latency counted from the scheduled start. */
  readonly ratePerSecond?: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly seed: number;
  /** Re-runs of a scenario (after another process disturbed it) need names of their own. */
  readonly attempt?: number;
}

export interface LoadResult {
  readonly name: string;
  /** Calls that completed (successfully or not) inside the measurement window. */
  readonly calls: number;
  readonly ok: number;
  readonly errors: number;
  readonly errorCodes: Record<string, number>;
  readonly firstErrors: string[];
  readonly durationS: number;
  /** Successful calls per second. */
  readonly throughput: number;
  readonly latencyMs: LatencySummary;
  /** Setup before the clock starts (sign-ins, the walk to a deep page), in ms. */
  readonly setupMs: number;
  /** The measurement window in CLOCK_MONOTONIC microseconds, to cut CPU profiles to it. */
  readonly windowMicros: readonly [number, number];
  /** Cores this load process itself used, warm-up and measurement together. */
  readonly cpuCores: number;
  readonly notes: Record<string, unknown>;
}

/** Messages between the orchestrator and a load process. */
export type ToLoad = { readonly type: "setup"; readonly spec: LoadSpec } | { readonly type: "start" };
export type FromLoad =
  | { readonly type: "ready" }
  | { readonly type: "result"; readonly result: LoadResult }
  | { readonly type: "failed"; readonly message: string };
