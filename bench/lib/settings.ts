import { availableParallelism } from "node:os";
import type { LoadClient } from "../load/load-spec.ts";

export const BENCH_USAGE = `Usage: npm run bench -- [options]

Starts its own PostgreSQL (or uses DATABASE_URL), seeds users, starts Gatehouse in child
processes and drives it from separate load-generator processes; writes bench/results/<date>.json
and .md and prints the table.

Options:
  --quick               a few seconds per scenario and 100,000 "large" users (a smoke run)
  --duration <s>        measured seconds per scenario (default 10; quick 3)
  --warmup <s>          unmeasured seconds before each measurement (default 3; quick 1)
  --concurrency <n>     calls in flight for every closed-loop scenario (default: per scenario)
  --seed <n>            seed of every random choice (default 1)
  --small-users <n>     users seeded for the small database (default 10000)
  --large-users <n>     users seeded for the large database (default 1000000; quick 100000; 0 skips it)
  --only <ids>          comma-separated scenario id prefixes, e.g. getMe,introspect,listUsers
  --profile             also run refresh, GetMe, Introspect and Login under node --cpu-prof, then
                        under the allocation sampler (KB allocated per call), and summarise both;
                        for refresh, also profile the rotation ceiling and compare per call
  --max-other-load <cores>  before each scenario, wait until other processes on the machine use
                        less than this many cores (default 0.25) …
  --quiet-timeout <s>   … for at most this long (default 300; quick 20), then run anyway and say so
  --retries <n>         measure a scenario again when other processes took CPU during it, keeping
                        the least disturbed attempt (default 2; quick 0)
  --log-level <level>   the server's GATEHOUSE_LOG_LEVEL (default: its own default, info)
  --server-env <K=V,…>  extra environment for every Gatehouse process, e.g. GATEHOUSE_HASH_CONCURRENCY=1
  --server-flags "<…>"  extra node flags for every Gatehouse process, e.g. "--max-semi-space-size=4"
  --db-settings <k=v,…> PostgreSQL settings for the benchmark's databases, e.g. synchronous_commit=off
  --echo-listener <l>   "one-port" (default: Gatehouse's HTTP/1.1 + h2c listener) or "direct-h2c"
                        (a plain HTTP/2 server; gRPC rows only), to price the one-port sniffing
  --load-client <c>     "wire" (default: the benchmark's lean Connect/gRPC client) or "connect-es"
                        (connect-es' Node client, which spends more of the shared CPU per call)
  --out <dir>           where results go (default bench/results)

Environment:
  DATABASE_URL          run on this PostgreSQL instead of an embedded one (databases of its own,
                        dropped afterwards)
  TMPDIR                where the work folder goes, and with it the embedded PostgreSQL's data:
                        its disk's flush time is in the report's machine line`;

export interface Settings {
  readonly quick: boolean;
  readonly durationMs: number;
  readonly warmupMs: number;
  /** Overrides every closed-loop scenario's own concurrency. */
  readonly concurrency: number | undefined;
  readonly seed: number;
  readonly smallUsers: number;
  readonly largeUsers: number;
  readonly only: readonly string[] | undefined;
  readonly profile: boolean;
  readonly logLevel: string | undefined;
  readonly maxOtherLoad: number;
  readonly serverEnv: Readonly<Record<string, string>>;
  readonly serverFlags: readonly string[];
  readonly echoListener: "one-port" | "direct-h2c";
  readonly loadClient: LoadClient;
  readonly dbSettings: Readonly<Record<string, string>>;
  readonly quietTimeoutMs: number;
  readonly retries: number;
  readonly outDir: string;
  /** Cores, which is also the server's default hash concurrency. */
  readonly cores: number;
}

export class BenchUsageError extends Error {}

export function parseSettings(args: readonly string[]): Settings {
  const values = new Map<string, string>();
  const switches = new Set<string>();
  const valued = ["duration", "warmup", "concurrency", "seed", "small-users", "large-users", "only", "log-level", "out", "max-other-load", "quiet-timeout", "retries", "server-env", "server-flags", "echo-listener", "db-settings", "load-client"];
  const flags = ["quick", "profile", "help"];
  for (let i = 0; i < args.length; i++) {
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(args[i]!);
    if (!match) throw new BenchUsageError(`unexpected argument "${args[i]}"`);
    const [, name, inline] = match as unknown as [string, string, string | undefined];
    if (flags.includes(name)) switches.add(name);
    else if (valued.includes(name)) {
      const value = inline ?? args[++i];
      if (value === undefined) throw new BenchUsageError(`--${name} needs a value`);
      values.set(name, value);
    } else throw new BenchUsageError(`unknown option --${name}`);
  }
  if (switches.has("help")) throw new BenchUsageError("");

  const quick = switches.has("quick");
  const number = (name: string, fallback: number, min: number): number => {
    const text = values.get(name);
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isFinite(value) || value < min) throw new BenchUsageError(`--${name} must be a number ≥ ${min}`);
    return value;
  };
  const oneOf = <T extends string>(name: string, fallback: T, allowed: readonly T[]): T => {
    const text = values.get(name) ?? fallback;
    if (!(allowed as readonly string[]).includes(text)) throw new BenchUsageError(`--${name} must be one of: ${allowed.join(", ")}`);
    return text as T;
  };
  const concurrencyText = values.get("concurrency");
  const pairs = (name: string): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const pair of (values.get(name) ?? "").split(",").filter(Boolean)) {
      const at = pair.indexOf("=");
      if (at <= 0) throw new BenchUsageError(`--${name}: "${pair}" is not name=value`);
      out[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
    }
    return out;
  };
  const serverEnv = pairs("server-env");
  return {
    quick,
    durationMs: number("duration", quick ? 3 : 10, 0.5) * 1000,
    warmupMs: number("warmup", quick ? 1 : 3, 0) * 1000,
    concurrency: concurrencyText === undefined ? undefined : Math.round(number("concurrency", 1, 1)),
    seed: Math.round(number("seed", 1, 0)),
    smallUsers: Math.round(number("small-users", 10_000, 100)),
    largeUsers: Math.round(number("large-users", quick ? 100_000 : 1_000_000, 0)),
    only: values.get("only")?.split(",").map((id) => id.trim()).filter(Boolean),
    profile: switches.has("profile"),
    logLevel: values.get("log-level"),
    maxOtherLoad: number("max-other-load", 0.25, 0),
    serverEnv,
    dbSettings: pairs("db-settings"),
    echoListener: oneOf("echo-listener", "one-port", ["one-port", "direct-h2c"] as const),
    loadClient: oneOf("load-client", "wire", ["wire", "connect-es"] as const),
    serverFlags: (values.get("server-flags") ?? "").split(/\s+/).filter(Boolean),
    quietTimeoutMs: number("quiet-timeout", quick ? 20 : 300, 0) * 1000,
    retries: Math.round(number("retries", quick ? 0 : 2, 0)),
    outDir: values.get("out") ?? "bench/results",
    cores: availableParallelism(),
  };
}
