/**
 * `npm run bench`: Gatehouse at the limits of this machine (issue 7).
 *
 * Everything runs in separate processes — PostgreSQL, each Gatehouse instance (`node src/main.ts
 * serve`, as `npm start` runs it), each load generator, and the ceilings — and every Gatehouse
 * figure is reported next to a ceiling measured in the same run on the same machine.
 */
import { fork } from "node:child_process";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { pathToFileURL } from "node:url";
import { join, resolve } from "node:path";
import { SEED_PASSWORD } from "../src/cli/seed.ts";
import type { Argon2CeilingResult, Argon2CeilingSpec } from "./ceilings/argon2-ceiling.ts";
import { cpuSince, cpuSnapshot, waitForQuiet, type CpuUse } from "./lib/cpu.ts";
import { openCluster, seedUsers, type Cluster, type WalFlushTotals } from "./lib/database.ts";
import { describeMachine } from "./lib/machine.ts";
import { exited, gatehouseRuntime, REPO_ROOT, runLoads, startServer, terminate, type ServerProcess } from "./lib/processes.ts";
import { summariseAllocation, summariseProfile, type ProfileSummary } from "./lib/profile.ts";
import { defaultHashConcurrency } from "../src/platform/config/config.ts";
import { BENCH_USAGE, BenchUsageError, parseSettings, type Settings } from "./lib/settings.ts";
import type { BenchProtocol, Credentials, LoadSpec, Operation } from "./load/load-spec.ts";
import { buildRows, renderMarkdown, renderProfiles, type BenchReport, type Measurement } from "./report.ts";

const ADMIN: Credentials = { username: "bench-admin", password: "bench admin password, not for production" };
const SMALL_PREFIX = "bs-";
const LARGE_PREFIX = "bl-";

/**
 * Calls in flight per closed-loop scenario, unless --concurrency says otherwise. The cheap calls
 * run 4 at once: on 2 cores shared by server, PostgreSQL and load generator that already keeps
 * the server busy, and more in flight only adds queueing (latency = in flight ÷ throughput), which
 * would measure the client's queue rather than the server. The echo ceilings use the same numbers.
 * Hashing scenarios keep a queue in front of the hash pool so it never idles.
 */
const CONCURRENCY = {
  login: 16,
  register: 16,
  refresh: 4,
  getMe: 4,
  introspect: 4,
  listUsers: 8,
  flood: 32,
} as const;
/** The GetMe probe during a login flood: calls per second, open loop. */
const PROBE_RATE = 100;
/** ListUsers: the page size measured (the API default), and how deep the "deep" page lies. */
const PAGE_SIZE = 20;
const DEEP_FRACTION = 0.9;

const log = (line: string) => process.stderr.write(`${line}\n`);

interface Context {
  readonly settings: Settings;
  readonly workDir: string;
  /** PostgreSQL's WAL flush totals, where the cluster times them (embedded, 18 or later). */
  readonly walFlushes: (() => Promise<WalFlushTotals>) | undefined;
  readonly measurements: Measurement[];
  readonly profiles: ProfileSummary[];
  readonly incidents: string[];
  readonly serverEnv: Record<string, string>;
  argon2?: BenchReport["argon2Ceiling"];
}

function selected(settings: Settings, id: string): boolean {
  return settings.only === undefined || settings.only.some((prefix) => id.startsWith(prefix));
}

function concurrencyOf(ctx: Context, kind: keyof typeof CONCURRENCY): number {
  return ctx.settings.concurrency ?? CONCURRENCY[kind];
}

function spec(ctx: Context, name: string, targets: string[], protocol: BenchProtocol, operation: Operation, concurrency: number, extra: Partial<LoadSpec> = {}): LoadSpec {
  const { warmupMs, durationMs, seed } = ctx.settings;
  return { name, targets, protocol, client: ctx.settings.loadClient, operation, concurrency, warmupMs, durationMs, seed, ...extra };
}

/** NaN (no successful call) travels over IPC as null. */
const ms = (value: number | null) => (value === null || !Number.isFinite(value) ? "—" : value.toFixed(2));

function report(m: Measurement): void {
  const r = m.result;
  const rss = m.peakRssBytes.map((b) => `${Math.round(b / 2 ** 20)} MB`).join(" / ");
  log(
    `  ${m.id.padEnd(34)} ${r.throughput.toFixed(1).padStart(9)}/s  p50 ${ms(r.latencyMs.p50)} ms  p99 ${ms(r.latencyMs.p99)} ms` +
      `  errors ${r.errors}${r.errors ? ` ${JSON.stringify(r.errorCodes)} ${r.firstErrors[0] ?? ""}` : ""}  rss ${rss}` +
      `  cpu srv ${m.cpu.serverCores} pg ${m.cpu.postgresCores} load ${m.cpu.loadCores} other ${m.cpu.otherCores} (steal ${m.cpu.stealCores ?? 0}) io-full ${m.cpu.ioFullPct}%`,
  );
}

/** Other processes' CPU above which a measurement counts as disturbed. */
const noisyCores = (ctx: Context) => ctx.settings.maxOtherLoad + 0.15;
/** Share of the time every task waited for the disk above which a measurement counts as disturbed. */
const NOISY_IO_FULL_PCT = 10;
/** How disturbed a measurement was: other processes' cores, plus a stalled disk. */
const disturbance = (cpu: CpuUse) => cpu.otherCores + (cpu.ioFullPct > NOISY_IO_FULL_PCT ? 1 : 0);

/** What was not the benchmark's CPU, for the log: other processes, and the hypervisor's steal among it. */
const notOurs = (cpu: CpuUse) => `other processes and steal took ${cpu.otherCores} cores (steal ${cpu.stealCores ?? 0})`;

/** Before a measurement: let other processes on a shared machine finish what they are doing. */
async function quiet(ctx: Context, what: string): Promise<void> {
  const use = await waitForQuiet(ctx.settings.maxOtherLoad, ctx.settings.quietTimeoutMs, (busy) =>
    log(`  (waiting: ${notOurs(busy)}; starting ${what} when below ${ctx.settings.maxOtherLoad})`),
  );
  if (use.otherCores >= ctx.settings.maxOtherLoad) log(`  (still ${notOurs(use)}; measuring ${what} anyway)`);
}

/**
 * Runs the parts of one scenario together (each its own load process) and records each part.
 * When processes outside the benchmark took CPU during the measurement, it is run again (up to
 * --retries times) and the least disturbed attempt is kept.
 */
async function measure(
  ctx: Context,
  instances: number,
  watched: number[],
  parts: { id: string; title: string; spec: LoadSpec }[],
  window?: { start(): void; end(): void },
): Promise<Measurement[]> {
  const what = parts.map((part) => part.id).join(" + ");
  let best: Awaited<ReturnType<typeof runLoads>> | undefined;
  const disturbed: Measurement["disturbedAttempts"] = [];
  for (let attempt = 0; attempt <= ctx.settings.retries; attempt++) {
    await quiet(ctx, what);
    const run = await runLoads(
      parts.map((part) => ({ ...part.spec, attempt })),
      watched,
      window,
      ctx.walFlushes,
    );
    const record = (r: typeof run) => ({ otherCores: r.cpu.otherCores, ioFullPct: r.cpu.ioFullPct, throughput: r.results[0]!.throughput });
    if (best && disturbance(run.cpu) >= disturbance(best.cpu)) {
      disturbed.push(record(run));
    } else {
      if (best) disturbed.push(record(best));
      best = run;
    }
    if (disturbance(best.cpu) <= noisyCores(ctx)) break;
    log(
      `  (${what}: ${notOurs(run.cpu)}, the disk stalled everything ${run.cpu.ioFullPct}% of the time` +
        `${attempt < ctx.settings.retries ? "; measuring again" : ""})`,
    );
  }
  const { results, peakRss, cpu } = best!;
  const out = results.map((result, i): Measurement => {
    const { id, title, spec } = parts[i]!;
    return {
      id,
      title,
      protocol: spec.protocol,
      concurrency: spec.ratePerSecond ? `${spec.ratePerSecond}/s open loop` : String(spec.concurrency),
      instances,
      result,
      peakRssBytes: peakRss,
      cpu,
      disturbedAttempts: disturbed,
    };
  });
  for (const m of out) {
    ctx.measurements.push(m);
    report(m);
  }
  return out;
}

// ---- ceilings ----

/**
 * A ceiling process, run like the Gatehouse processes: npm start's node flags and environment
 * (heap sizing, malloc tuning), then --server-flags and --server-env. Ratios to a ceiling then
 * compare code with code, not one runtime configuration with another.
 */
function forkCeiling(ctx: Context, file: string, args: string[] = [], env: Record<string, string> = {}, nodeFlags: string[] = []) {
  const runtime = gatehouseRuntime();
  return fork(join(REPO_ROOT, "bench", "ceilings", file), args, {
    execArgv: [...runtime.nodeFlags, ...ctx.settings.serverFlags, ...nodeFlags],
    env: { ...process.env, ...runtime.env, ...ctx.settings.serverEnv, ...env },
    stdio: "inherit",
  });
}

/** The server's argon2 parameters and hash concurrency: its defaults unless --server-env changes them. */
function hashBudget(settings: Settings) {
  const env = (name: string, fallback: number) => Number(settings.serverEnv[name] ?? fallback);
  return {
    memoryKib: env("GATEHOUSE_ARGON2_MEMORY_KIB", 19456),
    iterations: env("GATEHOUSE_ARGON2_ITERATIONS", 2),
    parallelism: env("GATEHOUSE_ARGON2_PARALLELISM", 1),
    concurrency: env("GATEHOUSE_HASH_CONCURRENCY", defaultHashConcurrency()),
  };
}

async function argon2Ceiling(ctx: Context): Promise<void> {
  const spec: Argon2CeilingSpec = {
    ...hashBudget(ctx.settings),
    warmupMs: ctx.settings.warmupMs,
    durationMs: ctx.settings.durationMs,
  };
  let best: { result: Argon2CeilingResult; cpu: CpuUse } | undefined;
  for (let attempt = 0; attempt <= ctx.settings.retries; attempt++) {
    await quiet(ctx, "ceiling.argon2");
    const child = forkCeiling(ctx, "argon2-ceiling.ts");
    const cpuStart = cpuSnapshot();
    const result = await new Promise<Argon2CeilingResult>((resolve, reject) => {
      child.once("message", (message) => resolve(message as Argon2CeilingResult));
      child.once("exit", (code) => reject(new Error(`argon2 ceiling exited with ${code}`)));
      child.send(spec);
    });
    const cpu = cpuSince(cpuStart, cpuSnapshot(), { servers: [child.pid!] });
    await exited(child);
    if (!best || disturbance(cpu) < disturbance(best.cpu)) best = { result, cpu };
    if (disturbance(best.cpu) <= noisyCores(ctx)) break;
    log(`  (ceiling.argon2: other processes took ${cpu.otherCores} cores while measuring${attempt < ctx.settings.retries ? "; measuring again" : ""})`);
  }
  const { result, cpu } = best!;
  ctx.argon2 = { ...result, memoryKib: spec.memoryKib, iterations: spec.iterations, parallelism: spec.parallelism, concurrency: spec.concurrency, cpu };
  log(
    `  ceiling.argon2 (m=${spec.memoryKib} t=${spec.iterations} p=${spec.parallelism}, ${spec.concurrency} at once)`.padEnd(36) +
      `  ${result.verificationsPerSecond.toFixed(1)}/s  p50 ${result.latencyMs.p50.toFixed(1)} ms`,
  );
}

/**
 * The echo server's rows. With `rotationUrl`, its Refresh also rotates a token in that database
 * and signs (echo-server.ts `--rotation`): the "rotation" ceiling of the refresh rows. With
 * `profile`, the server runs under the CPU profiler, which writes `profile.file` as it exits, and
 * its rows are tagged to stay out of the table.
 */
async function echoCeilings(
  ctx: Context,
  wanted: { method: "getMe" | "introspect" | "refresh" | "listUsers"; protocol: BenchProtocol }[],
  rotationUrl?: string,
  profile?: { dir: string; file: string },
): Promise<Measurement[]> {
  const measured: Measurement[] = [];
  if (wanted.length === 0) return measured;
  const listener = ctx.settings.echoListener;
  const profiler = profile ? ["--cpu-prof", "--cpu-prof-dir", profile.dir, "--cpu-prof-name", profile.file] : [];
  // The URL goes in the environment, where a process listing does not show its password.
  const child = rotationUrl
    ? forkCeiling(ctx, "echo-server.ts", [listener, "--rotation"], { BENCH_ROTATION_DATABASE_URL: rotationUrl }, profiler)
    : forkCeiling(ctx, "echo-server.ts", [listener], {}, profiler);
  try {
    const { port } = await new Promise<{ port: number }>((resolve, reject) => {
      child.once("message", (message) => resolve(message as { port: number }));
      child.once("exit", (code) => reject(new Error(`echo server exited with ${code}`)));
    });
    const target = [`http://127.0.0.1:${port}`];
    for (const { method, protocol } of wanted) {
      // A plain HTTP/2 server speaks no HTTP/1.1.
      if (listener === "direct-h2c" && protocol !== "grpc") continue;
      const operation: Operation =
        method === "listUsers" ? { kind: "listUsers", admin: undefined, depth: 0, pageSize: PAGE_SIZE } : { kind: method, users: "none" };
      const concurrency = concurrencyOf(ctx, method);
      const id = `${profile ? "profile." : ""}ceiling.${rotationUrl ? "rotation" : "echo"}.${method}.${protocol}`;
      const title = `Ceiling: bare connect-node ${method}${rotationUrl ? " + rotation statement" : ""}${listener === "direct-h2c" ? " (plain h2c listener)" : ""}`;
      measured.push(...(await measure(ctx, 1, [child.pid!], [{ id, title, spec: spec(ctx, id, target, protocol, operation, concurrency) }])));
    }
  } finally {
    await terminate(child, 5_000);
  }
  return measured;
}

// ---- Gatehouse ----

async function withServers<T>(
  ctx: Context,
  name: string,
  databaseUrl: string,
  count: number,
  work: (servers: ServerProcess[]) => Promise<T>,
  nodeFlags: string[] = [],
  env: Record<string, string> = {},
): Promise<T> {
  const servers: ServerProcess[] = [];
  try {
    // One after the other: the first migrates and creates the signing key and the admin.
    for (let i = 0; i < count; i++) {
      servers.push(
        await startServer({
          name: `${name}-${i + 1}`,
          databaseUrl,
          logDir: ctx.workDir,
          env: { ...ctx.serverEnv, ...env },
          nodeFlags: [...ctx.settings.serverFlags, ...nodeFlags],
        }),
      );
    }
    return await work(servers);
  } finally {
    for (const server of servers) {
      // A server that left during a scenario is a finding, not a reason to stop the run.
      if (server.child.exitCode !== null || server.child.signalCode !== null) {
        const tail = (await readFile(server.logFile, "utf8").catch(() => "")).trim().split("\n").slice(-15).join("\n");
        ctx.incidents.push(`${server.name} exited (${server.child.exitCode ?? server.child.signalCode}) during the scenario; the end of its log:\n${tail}`);
        log(`  !! ${server.name} exited during the scenario; see the report`);
      }
    }
    await Promise.all(servers.map((server) => server.stop()));
  }
}

async function smallDatabaseScenarios(ctx: Context, cluster: Cluster, seeding: BenchReport["seeding"]): Promise<void> {
  const { settings } = ctx;
  const ids = [
    "listUsers.first.small",
    "listUsers.deep.small",
    "login.connect-json",
    "register.connect-json",
    "refresh.connect-json",
    "refresh.grpc",
    "getMe.connect-json",
    "getMe.grpc",
    "introspect.connect-json",
    "introspect.grpc",
    "flood.1",
    "flood.2",
  ].filter((id) => selected(settings, id));
  const profiled = settings.profile
    ? ["refresh.connect-json", "refresh.grpc", "getMe.connect-json", "getMe.grpc", "introspect.connect-json", "introspect.grpc", "login.connect-json"].filter((id) =>
        selected(settings, id),
      )
    : [];
  if (ids.length === 0 && profiled.length === 0) return;

  log(`\nSeeding ${settings.smallUsers.toLocaleString("en")} users (small database)…`);
  const url = await cluster.createDatabase("gatehouse_bench_small", settings.dbSettings);
  const seeded = await seedUsers(url, settings.smallUsers, SMALL_PREFIX);
  seeding.push({ database: "small", users: settings.smallUsers, seconds: seeded.seconds, output: seeded.output });
  log(`  ${seeded.output}`);

  const users = { usernamePrefix: SMALL_PREFIX, userCount: settings.smallUsers, password: SEED_PASSWORD };
  /**
   * One scenario. With `profile`, its server runs under the CPU profiler, or with the allocation
   * sampler (bench/lib/allocation-sampler.ts), which the measured window switches on and off.
   */
  const run = async (id: string, profile?: { dir: string; of: "cpu" | "allocation" }) => {
    const [kind, variant] = id.split(".") as [string, string];
    const nodeFlags =
      profile?.of === "cpu"
        ? ["--cpu-prof", "--cpu-prof-dir", profile.dir, "--cpu-prof-name", `${id}.cpuprofile`]
        : profile?.of === "allocation"
          ? [`--import=${pathToFileURL(join(REPO_ROOT, "bench", "lib", "allocation-sampler.ts")).href}`]
          : [];
    const env: Record<string, string> = profile?.of === "allocation" ? { GATEHOUSE_BENCH_ALLOCATION_FILE: join(profile.dir, `${id}.allocation.json`) } : {};
    const instances = kind === "flood" ? Number(variant) : 1;
    // Rows measured under a profiler are reported apart from the table (report.ts).
    const tag = profile && (profile.of === "cpu" ? "profile" : "allocation");
    const rowId = tag ? `${tag}.${id}` : id;
    return withServers(ctx, tag ? `${tag}-${id}` : id, url, instances, async (servers) => {
      const targets = servers.map((s) => s.baseUrl);
      const pids = servers.map((s) => s.pid);
      const signal = () => {
        for (const pid of pids) process.kill(pid, "SIGUSR2");
      };
      const window = profile?.of === "allocation" ? { start: signal, end: signal } : undefined;
      const protocol = (variant === "grpc" ? "grpc" : "connect-json") as BenchProtocol;
      switch (kind) {
        case "listUsers": {
          const depth = variant === "deep" ? Math.floor(settings.smallUsers * DEEP_FRACTION) : 0;
          return measure(ctx, 1, pids, [
            {
              id: `listUsers.${variant}.${settings.smallUsers}`,
              title: `ListUsers ${variant} page, ${settings.smallUsers.toLocaleString("en")} users`,
              spec: spec(ctx, id, targets, protocol, { kind: "listUsers", admin: ADMIN, depth, pageSize: PAGE_SIZE }, concurrencyOf(ctx, "listUsers")),
            },
          ]);
        }
        case "login":
          return measure(
            ctx,
            1,
            pids,
            [{ id: rowId, title: "Login", spec: spec(ctx, id, targets, protocol, { kind: "login", ...users }, concurrencyOf(ctx, "login")) }],
            window,
          );
        case "register":
          return measure(ctx, 1, pids, [
            {
              id,
              title: "Register",
              spec: spec(ctx, id, targets, protocol, { kind: "register", tag: settings.seed.toString(36) }, concurrencyOf(ctx, "register")),
            },
          ]);
        case "refresh":
        case "getMe":
        case "introspect": {
          const title = { refresh: "Refresh (rotation chain)", getMe: "GetMe", introspect: "Introspect" }[kind];
          return measure(
            ctx,
            1,
            pids,
            [{ id: rowId, title, spec: spec(ctx, id, targets, protocol, { kind, users }, concurrencyOf(ctx, kind)) }],
            window,
          );
        }
        case "flood": {
          const where = `${instances} instance${instances > 1 ? "s" : ""}`;
          return measure(ctx, instances, pids, [
            {
              id: `${id}.flood`,
              title: `Login flood, ${where}`,
              spec: spec(ctx, `${id} flood`, targets, "connect-json", { kind: "login", ...users }, concurrencyOf(ctx, "flood")),
            },
            {
              // A second client: its own process and connections, signed in as users the flood also uses.
              id: `${id}.probe`,
              title: `GetMe during the login flood, ${where}`,
              spec: spec(ctx, `${id} probe`, targets, "connect-json", { kind: "getMe", users }, 4, { ratePerSecond: PROBE_RATE, seed: settings.seed + 1 }),
            },
          ]);
        }
        default:
          throw new Error(`unknown scenario ${id}`);
      }
    }, nodeFlags, env);
  };

  log(`\nGatehouse, ${settings.smallUsers.toLocaleString("en")} users, each row after the ceiling it is compared with:`);
  for (const id of ids) {
    // This VM's speed drifts by a fifth within the hour: a ratio means something only when both
    // sides ran in the same minutes, so each ceiling is measured just before its rows.
    const [kind, variant] = id.split(".") as [string, string];
    if ((kind === "login" || kind === "register" || kind === "flood") && !ctx.argon2) await argon2Ceiling(ctx);
    if (kind === "getMe" || kind === "introspect" || kind === "refresh") {
      const wanted: Parameters<typeof echoCeilings>[1] = [{ method: kind, protocol: variant === "grpc" ? "grpc" : "connect-json" }];
      await echoCeilings(ctx, wanted);
      if (kind === "refresh") await echoCeilings(ctx, wanted, url);
    }
    await run(id);
  }
  if (profiled.length > 0) {
    const profileDir = resolve(settings.outDir, "profiles");
    await mkdir(profileDir, { recursive: true });
    log(`\nProfiling (node --cpu-prof on the server, then a run with the allocation sampler; profiles in ${profileDir}):`);
    for (const id of profiled) {
      const [measured] = await run(id, { dir: profileDir, of: "cpu" });
      // The server wrote its profile on exit; keep only the measured window.
      const summary = await summariseProfile(join(profileDir, `${id}.cpuprofile`), measured!.result.windowMicros);
      await run(id, { dir: profileDir, of: "allocation" });
      const allocation = await summariseAllocation(join(profileDir, `${id}.allocation.json`));
      ctx.profiles.push({ ...summary, allocation, id, title: `${measured!.title} over ${measured!.protocol}`, throughput: measured!.result.throughput });
      if (id.startsWith("refresh.")) {
        // The rotation ceiling under the same profiler, for the per-call comparison in the report.
        const file = `ceiling.rotation.${id}.cpuprofile`;
        const [ceiling] = await echoCeilings(ctx, [{ method: "refresh", protocol: measured!.protocol }], url, { dir: profileDir, file });
        const ceilingSummary = await summariseProfile(join(profileDir, file), ceiling!.result.windowMicros);
        ctx.profiles.push({ ...ceilingSummary, id: `ceiling.rotation.${id}`, title: `${ceiling!.title} over ${ceiling!.protocol}`, throughput: ceiling!.result.throughput });
      }
    }
  }
}

async function largeDatabaseScenarios(ctx: Context, cluster: Cluster, seeding: BenchReport["seeding"]): Promise<void> {
  const { settings } = ctx;
  const count = settings.largeUsers;
  const variants = (["first", "deep"] as const).filter((variant) => selected(settings, `listUsers.${variant}.large`));
  if (count === 0 || variants.length === 0) return;
  log(`\nSeeding ${count.toLocaleString("en")} users (large database)…`);
  const url = await cluster.createDatabase("gatehouse_bench_large", settings.dbSettings);
  const seeded = await seedUsers(url, count, LARGE_PREFIX);
  seeding.push({ database: "large", users: count, seconds: seeded.seconds, output: seeded.output });
  log(`  ${seeded.output}`);
  log(`\nGatehouse, ${count.toLocaleString("en")} users:`);
  for (const variant of variants) {
    await withServers(ctx, `listUsers.${variant}.large`, url, 1, (servers) => {
      const depth = variant === "deep" ? Math.floor(count * DEEP_FRACTION) : 0;
      return measure(ctx, 1, [servers[0]!.pid], [
        {
          id: `listUsers.${variant}.${count}`,
          title: `ListUsers ${variant} page, ${count.toLocaleString("en")} users`,
          spec: spec(ctx, `listUsers.${variant}.large`, [servers[0]!.baseUrl], "connect-json", { kind: "listUsers", admin: ADMIN, depth, pageSize: PAGE_SIZE }, concurrencyOf(ctx, "listUsers")),
        },
      ]);
    });
  }
}

/**
 * Which code was measured: the commit, and whether the server's code differed from it. In an
 * exported tree (`git archive`, no .git) BENCH_COMMIT names the commit it came from.
 */
function describeCode(): { commit: string; modified: string[] } {
  if (process.env.BENCH_COMMIT) return { commit: process.env.BENCH_COMMIT, modified: [] };
  try {
    const git = (...args: string[]) => execFileSync("git", args, { cwd: REPO_ROOT, encoding: "utf8" }).trim();
    const modified = git("status", "--porcelain", "--", "src", "gen", "package.json", "package-lock.json").split("\n").filter(Boolean);
    return { commit: git("rev-parse", "HEAD"), modified };
  } catch {
    return { commit: "unknown (not a git checkout)", modified: [] };
  }
}

async function main(): Promise<number> {
  let settings: Settings;
  try {
    settings = parseSettings(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof BenchUsageError)) throw error;
    if (error.message) process.stderr.write(`bench: ${error.message}\n\n`);
    process.stderr.write(`${BENCH_USAGE}\n`);
    return error.message ? 2 : 0;
  }
  const startedAt = new Date();
  const workDir = await mkdtemp(join(tmpdir(), "gatehouse-bench-"));
  const machine = describeMachine();
  log(`Gatehouse benchmark — ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGb} GB; work dir ${workDir}`);
  const cluster = await openCluster(workDir);
  const ctx: Context = {
    settings,
    workDir,
    walFlushes: cluster.walFlushes,
    measurements: [],
    profiles: [],
    incidents: [],
    serverEnv: {
      // The load generators spread their calls over many client addresses (X-Forwarded-For).
      GATEHOUSE_TRUSTED_PROXIES: "127.0.0.1",
      GATEHOUSE_BOOTSTRAP_ADMIN_EMAIL: "bench-admin@bench.example",
      GATEHOUSE_BOOTSTRAP_ADMIN_USERNAME: ADMIN.username,
      GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD: ADMIN.password,
      ...(settings.logLevel ? { GATEHOUSE_LOG_LEVEL: settings.logLevel } : {}),
      ...settings.serverEnv,
    },
  };
  const seeding: BenchReport["seeding"] = [];
  let failed: unknown;
  try {
    log(`PostgreSQL ${cluster.version} (${cluster.kind}${cluster.onThisMachine ? "" : ", not on this machine: its CPU is not counted"})`);
    if (cluster.diskFlush) log(`Its disk: an 8 kB write + fdatasync takes ${cluster.diskFlush.p50Ms} ms (median; p99 ${cluster.diskFlush.p99Ms} ms)`);
    // The other ceilings are measured next to the rows compared with them (smallDatabaseScenarios).
    // Wanted by any ListUsers row, including one picked alone (`--only listUsers.deep.large`).
    if (settings.only === undefined || settings.only.some((prefix) => prefix.startsWith("listUsers") || "listUsers".startsWith(prefix))) {
      log("\nCeiling for ListUsers:");
      await echoCeilings(ctx, [{ method: "listUsers", protocol: "connect-json" }]);
    }
    await smallDatabaseScenarios(ctx, cluster, seeding);
    await largeDatabaseScenarios(ctx, cluster, seeding);
  } catch (error) {
    failed = error;
    log(`\nThe run stopped early: ${error instanceof Error ? error.stack : String(error)}\nServer logs are in ${workDir}`);
  } finally {
    await cluster.stop().catch((error: unknown) => log(`stopping PostgreSQL failed: ${String(error)}`));
  }

  const benchReport: BenchReport = {
    version: 1,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    complete: failed === undefined,
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`,
    machine,
    code: describeCode(),
    database: {
      kind: cluster.kind,
      version: cluster.version,
      onThisMachine: cluster.onThisMachine,
      ...(cluster.diskFlush ? { diskFlush: cluster.diskFlush } : {}),
    },
    incidents: ctx.incidents,
    settings: {
      durationS: settings.durationMs / 1000,
      warmupS: settings.warmupMs / 1000,
      seed: settings.seed,
      concurrency: settings.concurrency ?? CONCURRENCY,
      probeRatePerSecond: PROBE_RATE,
      listPageSize: PAGE_SIZE,
      deepPageFraction: DEEP_FRACTION,
      smallUsers: settings.smallUsers,
      largeUsers: settings.largeUsers,
      loadClient: settings.loadClient,
      serverLogLevel: settings.logLevel ?? "info (default)",
      serverEnv: settings.serverEnv,
      serverFlags: settings.serverFlags,
      dbSettings: settings.dbSettings,
      argon2: hashBudget(settings),
    },
    seeding,
    argon2Ceiling: ctx.argon2,
    measurements: ctx.measurements,
    rows: [],
    profiles: ctx.profiles,
  };
  benchReport.rows = buildRows(benchReport);
  const date = startedAt.toISOString().slice(0, 10);
  const outDir = resolve(settings.outDir);
  await mkdir(outDir, { recursive: true });
  const markdown = renderMarkdown(benchReport);
  await writeFile(join(outDir, `${date}.json`), `${JSON.stringify(benchReport, null, 2)}\n`);
  await writeFile(join(outDir, `${date}.md`), `${markdown}\n${ctx.profiles.length ? `\n${renderProfiles(ctx.profiles)}\n` : ""}`);
  process.stdout.write(`\n${markdown}\n`);
  if (ctx.profiles.length) process.stdout.write(`\n${renderProfiles(ctx.profiles)}\n`);
  log(`\nWrote ${join(outDir, `${date}.json`)} and ${date}.md`);
  if (failed === undefined && ctx.incidents.length === 0) await rm(workDir, { recursive: true, force: true });
  else log(`Server logs kept in ${workDir}`);
  return failed === undefined ? 0 : 1;
}

process.exitCode = await main();
