import { fork, spawn, type ChildProcess } from "node:child_process";
import { openSync, closeSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import type { FromLoad, LoadResult, LoadSpec, ToLoad } from "../load/load-spec.ts";
import { cpuSince, cpuSnapshot, type CpuUse } from "./cpu.ts";
import type { WalFlushTotals } from "./database.ts";
import { round } from "./stats.ts";

export const REPO_ROOT = join(import.meta.dirname, "..", "..");

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/** Resolves when the child exits (immediately if it already has). */
export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

/** SIGTERM, then SIGKILL if the child has not left after `graceMs`. */
export async function terminate(child: ChildProcess, graceMs = 20_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited(child);
  clearTimeout(timer);
}

// ---- resident memory of a process, from /proc ----

function statusField(pid: number, field: string): number | undefined {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Peak resident memory of a process over one scenario. Linux resets VmHWM (the high-water mark)
 * when "5" is written to /proc/<pid>/clear_refs, so each scenario reads its own peak; a 100 ms
 * VmRSS sampler backs it up where clear_refs is not allowed.
 */
export class PeakRss {
  readonly pid: number;
  private sampled = 0;
  private resetWorked = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(pid: number) {
    this.pid = pid;
  }

  start(): void {
    try {
      writeFileSync(`/proc/${this.pid}/clear_refs`, "5");
      this.resetWorked = true;
    } catch {
      this.resetWorked = false;
    }
    this.sampled = statusField(this.pid, "VmRSS") ?? 0;
    this.timer = setInterval(() => {
      this.sampled = Math.max(this.sampled, statusField(this.pid, "VmRSS") ?? 0);
    }, 100);
  }

  /** Bytes. */
  stop(): number {
    clearInterval(this.timer);
    const hwm = this.resetWorked ? (statusField(this.pid, "VmHWM") ?? 0) : 0;
    return Math.max(hwm, this.sampled, statusField(this.pid, "VmRSS") ?? 0);
  }
}

// ---- the runtime settings Gatehouse runs with ----

/** Node flags and environment (glibc malloc tuning) that `npm start` gives the server. */
export interface Runtime {
  readonly nodeFlags: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

/**
 * The runtime settings of package.json's "start" script (`[NAME=value …] [exec] node [--flag …]
 * src/main.ts serve`), so the benchmark measures the server as `npm start` runs it — and gives
 * its ceilings the same, so ratios to them compare like with like. The Dockerfile repeats them;
 * test/platform/runtime-settings.test.ts keeps the two the same.
 */
export function gatehouseRuntime(): Runtime {
  const script = (JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { scripts?: Record<string, string> }).scripts?.start ?? "";
  const words = script.trim().split(/\s+/);
  const env: Record<string, string> = {};
  let at = 0;
  for (; at < words.length && /^[A-Z_][A-Z0-9_]*=\S*$/.test(words[at]!); at++) {
    const word = words[at]!;
    env[word.slice(0, word.indexOf("="))] = word.slice(word.indexOf("=") + 1);
  }
  if (words[at] === "exec") at++;
  const main = words.indexOf("src/main.ts", at);
  if (words[at] !== "node" || main < 0 || words.slice(main + 1).join(" ") !== "serve" || words.slice(at + 1, main).some((flag) => !flag.startsWith("--"))) {
    throw new Error(`bench: package.json "start" is not of the form "[NAME=value …] [exec] node [--flag …] src/main.ts serve": ${script}`);
  }
  return { nodeFlags: words.slice(at + 1, main), env };
}

// ---- the Gatehouse server under test ----

export interface ServerProcess {
  readonly name: string;
  readonly baseUrl: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** CLOCK_MONOTONIC µs when the process was spawned (for cutting its CPU profile). */
  readonly spawnedAtMicros: number;
  readonly logFile: string;
  stop(): Promise<void>;
}

/**
 * `node src/main.ts serve` in a child process, exactly as `npm start` runs it (its node flags and
 * environment first, then `nodeFlags` and `env`, which win), on a free loopback port; its log
 * (one JSON line per call at the default level) goes to a file.
 */
export async function startServer(options: {
  name: string;
  databaseUrl: string;
  logDir: string;
  env?: Record<string, string>;
  nodeFlags?: string[];
}): Promise<ServerProcess> {
  const port = await freePort();
  const logFile = join(options.logDir, `${options.name}.log`);
  const log = openSync(logFile, "a");
  const spawnedAtMicros = Number(process.hrtime.bigint() / 1000n);
  const runtime = gatehouseRuntime();
  const child = spawn(process.execPath, [...runtime.nodeFlags, ...(options.nodeFlags ?? []), "src/main.ts", "serve"], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      ...runtime.env,
      ...options.env,
      DATABASE_URL: options.databaseUrl,
      GATEHOUSE_HOST: "127.0.0.1",
      GATEHOUSE_PORT: String(port),
    },
    stdio: ["ignore", log, log],
  });
  closeSync(log);
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server ${options.name} exited with ${child.exitCode} during start-up; see ${logFile}`);
    try {
      const res = await fetch(`${baseUrl}/readyz`);
      await res.arrayBuffer();
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await terminate(child);
      throw new Error(`server ${options.name} did not become ready in 60 s; see ${logFile}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { name: options.name, baseUrl, pid: child.pid!, child, spawnedAtMicros, logFile, stop: () => terminate(child) };
}

// ---- load generator processes ----

export interface LoadProcess {
  readonly child: ChildProcess;
  /** Resolves once the workers are built (signed in, deep page found). */
  readonly ready: Promise<void>;
  start(): void;
  readonly result: Promise<LoadResult>;
}

export function forkLoad(spec: LoadSpec): LoadProcess {
  const child = fork(join(REPO_ROOT, "bench", "load", "load-process.ts"), [], { cwd: REPO_ROOT, execArgv: [], stdio: "inherit" });
  let readyResolve!: () => void;
  let resultResolve!: (result: LoadResult) => void;
  let fail!: (error: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    readyResolve = resolve;
    fail = reject;
  });
  const result = new Promise<LoadResult>((resolve, reject) => {
    resultResolve = resolve;
    const previous = fail;
    fail = (error) => {
      previous(error);
      reject(error);
    };
  });
  // Either promise may be left unobserved when the other fails first.
  ready.catch(() => undefined);
  result.catch(() => undefined);
  child.on("message", (message: FromLoad) => {
    if (message.type === "ready") readyResolve();
    else if (message.type === "result") resultResolve(message.result);
    else fail(new Error(`load ${spec.name} failed: ${message.message}`));
  });
  child.once("exit", (code) => fail(new Error(`load process for ${spec.name} exited with ${code}`)));
  const post = (message: ToLoad) => child.send(message);
  post({ type: "setup", spec });
  return { child, ready, start: () => post({ type: "start" }), result };
}

/**
 * Runs load processes together: all set up, then all start at once; the peak RSS of each watched
 * process and the machine's CPU use are taken over the run (setup excluded).
 */
export async function runLoads(
  specs: LoadSpec[],
  watched: number[],
  /** Called when the warm-up is over and when the loads have finished (e.g. to bracket a profile). */
  window?: { start(): void; end(): void },
  /** PostgreSQL's WAL flush totals, read before the loads start and after they end. */
  walFlushes?: () => Promise<WalFlushTotals>,
): Promise<{ results: LoadResult[]; peakRss: number[]; cpu: CpuUse }> {
  const loads = specs.map(forkLoad);
  let warmedUp: NodeJS.Timeout | undefined;
  try {
    await Promise.all(loads.map((load) => load.ready));
    const meters = watched.map((pid) => new PeakRss(pid));
    for (const meter of meters) meter.start();
    const flushesBefore = await walFlushes?.();
    const cpuStart = cpuSnapshot();
    for (const load of loads) load.start();
    let windowStarted = false;
    if (window) {
      warmedUp = setTimeout(() => {
        windowStarted = true;
        window.start();
      }, Math.max(...specs.map((spec) => spec.warmupMs)));
    }
    const results = await Promise.all(loads.map((load) => load.result));
    if (windowStarted) window!.end();
    const cpu = cpuSince(cpuStart, cpuSnapshot(), { servers: watched });
    cpu.loadCores = Math.round(results.reduce((sum, result) => sum + result.cpuCores, 0) * 100) / 100;
    const peakRss = meters.map((meter) => meter.stop());
    if (flushesBefore) {
      const after = await walFlushes!();
      cpu.walFlushes = after.flushes - flushesBefore.flushes;
      if (cpu.walFlushes > 0) cpu.walFlushMeanMs = round((after.ms - flushesBefore.ms) / cpu.walFlushes);
    }
    return { results, peakRss, cpu };
  } finally {
    clearTimeout(warmedUp);
    for (const load of loads) {
      if (load.child.exitCode === null && load.child.signalCode === null) load.child.kill("SIGKILL");
    }
  }
}
