import type { Argon2CeilingResult } from "./ceilings/argon2-ceiling.ts";
import type { CpuUse } from "./lib/cpu.ts";
import type { DiskFlush, Machine } from "./lib/machine.ts";
import type { AllocationSummary, ProfileSummary } from "./lib/profile.ts";
import { round } from "./lib/stats.ts";
import type { BenchProtocol, LoadResult } from "./load/load-spec.ts";

export interface Measurement {
  /** e.g. `getMe.grpc`, `listUsers.deep.1000000`, `flood.2.probe`, `ceiling.echo.getMe.grpc`, `ceiling.rotation.refresh.grpc`. */
  id: string;
  title: string;
  protocol: BenchProtocol;
  concurrency: string;
  /** Gatehouse instances serving the scenario (1 for the echo server). */
  instances: number;
  result: LoadResult;
  /** Peak resident memory of each server process during the scenario, in bytes. */
  peakRssBytes: number[];
  /** Cores busy on the machine while measuring, and how many of them other processes took. */
  cpu: CpuUse;
  /** Earlier or later attempts that other processes disturbed more, discarded. */
  disturbedAttempts: { otherCores: number; ioFullPct: number; throughput: number }[];
}

/** One line of the results table, with the issue's target for it and whether it was met. */
export interface Row {
  id: string;
  scenario: string;
  protocol: string;
  concurrency: string;
  throughput: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  peakRssMb: number | undefined;
  ceiling: string | undefined;
  /** throughput ÷ ceiling throughput. */
  ratio: number | undefined;
  /** The issue's criteria for this row, each marked ✓ (met), ✗ (missed) or ? (could not be checked). */
  target: string;
  /** Cores used during the measurement: server(s), PostgreSQL, load generator(s), other processes. */
  cpu: CpuUse | undefined;
  /** undefined: no target applies (ceilings, or the row it compares with is missing). */
  pass: boolean | undefined;
}

export interface BenchReport {
  version: 1;
  startedAt: string;
  finishedAt: string;
  /** False when the run stopped early; the rows hold what was measured before. */
  complete: boolean;
  command: string;
  machine: Machine;
  /** The commit measured, and files of the server that differed from it (uncommitted work). */
  code: { commit: string; modified: string[] };
  /**
   * `onThisMachine` is absent from reports written before it was recorded, all of which ran here;
   * `diskFlush` from those and from runs on an external server.
   */
  database: { kind: string; version: string; onThisMachine?: boolean; diskFlush?: DiskFlush };
  /** Servers that exited during a scenario, with the end of their logs. */
  incidents: string[];
  settings: Record<string, unknown> & { smallUsers: number; largeUsers: number; durationS: number; warmupS: number };
  seeding: { database: string; users: number; seconds: number; output: string }[];
  argon2Ceiling: (Argon2CeilingResult & { memoryKib: number; iterations: number; parallelism: number; concurrency: number; cpu: CpuUse }) | undefined;
  measurements: Measurement[];
  rows: Row[];
  profiles: ProfileSummary[];
}

const RSS_LIMIT_MB = 200;

/** Applies the targets of issue 7 to the measurements. */
export function buildRows(report: BenchReport): Row[] {
  const rows: Row[] = [];
  const byId = new Map(report.measurements.map((m) => [m.id, m]));
  const argon2 = report.argon2Ceiling;
  if (argon2) {
    rows.push({
      id: "ceiling.argon2",
      scenario: `Ceiling: argon2id verify (${argon2.memoryKib} KiB, t=${argon2.iterations}, p=${argon2.parallelism}; ${argon2.concurrency} at once)`,
      protocol: "—",
      concurrency: String(argon2.concurrency),
      throughput: argon2.verificationsPerSecond,
      p50Ms: argon2.latencyMs.p50,
      p99Ms: argon2.latencyMs.p99,
      errors: 0,
      peakRssMb: undefined,
      ceiling: undefined,
      ratio: undefined,
      target: "—",
      cpu: argon2.cpu,
      pass: undefined,
    });
  }

  for (const m of report.measurements) {
    if (m.id.startsWith("profile.") || m.id.startsWith("allocation.")) continue;
    const r = m.result;
    const [kind, variant] = m.id.split(".") as [string, string | undefined];
    const isCeiling = kind === "ceiling";
    const peakRssMb = Math.max(...m.peakRssBytes) / 2 ** 20;
    let ceiling: { name: string; throughput: number } | undefined;
    const checks: { text: string; ok: boolean | undefined }[] = [];

    const echo = (method: string, protocol: string) => {
      const found = byId.get(`ceiling.echo.${method}.${protocol}`);
      return found && { name: `echo ${method} ${protocol}`, throughput: found.result.throughput };
    };
    const ratioAtLeast = (min: number) =>
      checks.push({ text: `≥ ${min}× ${ceiling?.name ?? "ceiling"}`, ok: ceiling ? r.throughput / ceiling.throughput >= min : undefined });

    switch (kind) {
      case "login":
      case "register":
        ceiling = argon2 && { name: "argon2", throughput: argon2.verificationsPerSecond };
        ratioAtLeast(kind === "login" ? 0.85 : 0.8);
        break;
      case "refresh": {
        // Compared with the bare server that also rotates and signs; the echo alone when that ceiling is missing.
        const rotation = byId.get(`ceiling.rotation.refresh.${m.protocol}`);
        ceiling = rotation ? { name: `rotation ${m.protocol}`, throughput: rotation.result.throughput } : echo("refresh", m.protocol);
        checks.push({ text: "≥ 1,000/s", ok: r.throughput >= 1000 }, { text: "p99 ≤ 20 ms", ok: r.latencyMs.p99 <= 20 });
        break;
      }
      case "getMe":
      case "introspect":
        ceiling = echo(kind, m.protocol);
        ratioAtLeast(0.5);
        checks.push({ text: "p99 ≤ 10 ms", ok: r.latencyMs.p99 <= 10 });
        break;
      case "listUsers": {
        ceiling = echo("listUsers", m.protocol);
        const count = Number(m.id.split(".")[2]);
        if (count === report.settings.largeUsers && count !== report.settings.smallUsers) {
          const small = byId.get(`listUsers.${variant}.${report.settings.smallUsers}`);
          checks.push({
            text: `p50 ≤ 1.5× the ${report.settings.smallUsers.toLocaleString("en")}-user page${small ? ` (${fmtMs(small.result.latencyMs.p50)} ms)` : ""}`,
            ok: small ? r.latencyMs.p50 <= 1.5 * small.result.latencyMs.p50 : undefined,
          });
        }
        break;
      }
      case "flood":
        if (m.id.endsWith(".flood")) ceiling = argon2 && { name: "argon2", throughput: argon2.verificationsPerSecond };
        else checks.push({ text: "GetMe p99 ≤ 50 ms", ok: r.latencyMs.p99 <= 50 });
        break;
    }
    if (!isCeiling) checks.push({ text: `RSS ≤ ${RSS_LIMIT_MB} MB`, ok: peakRssMb <= RSS_LIMIT_MB });
    const verdicts = checks.map((check) => check.ok);
    rows.push({
      id: m.id,
      scenario: m.title,
      protocol: m.protocol,
      concurrency: m.concurrency,
      throughput: r.throughput,
      p50Ms: r.latencyMs.p50,
      p99Ms: r.latencyMs.p99,
      errors: r.errors,
      peakRssMb: m.peakRssBytes.length > 0 ? peakRssMb : undefined,
      ceiling: ceiling?.name,
      ratio: ceiling ? r.throughput / ceiling.throughput : undefined,
      // Each criterion with its own mark, so a row that fails on memory alone says so.
      target: checks.length ? checks.map((check) => `${check.text} ${check.ok === true ? "✓" : check.ok === false ? "✗" : "?"}`).join("; ") : "—",
      cpu: m.cpu,
      pass: checks.length === 0 ? undefined : verdicts.includes(false) ? false : verdicts.includes(undefined) ? undefined : true,
    });
  }
  return rows;
}

function fmtRate(value: number | null): string {
  if (value === null || !Number.isFinite(value)) return "—";
  return value >= 100 ? Math.round(value).toLocaleString("en") : value.toFixed(1);
}

function fmtMs(value: number | null): string {
  if (value === null || !Number.isFinite(value)) return "—";
  return value >= 100 ? Math.round(value).toLocaleString("en") : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

/** Other processes using more than this many cores make a figure suspect… */
const NOISY_CORES = 0.25;
/** … and so does a disk that stalled every task more than this share of the time (PSI "full"). */
const NOISY_IO_FULL_PCT = 10;

/**
 * The row's mean WAL flush, when the row's own calls made the flushes: at least one for every ten
 * calls. A row whose calls write nothing still sees the server's background work flush now and
 * then, too seldom to say anything about the row.
 */
function rowWalFlushMs(row: Row, loadSeconds: number): number | undefined {
  const { walFlushes, walFlushMeanMs } = row.cpu ?? {};
  if (walFlushes === undefined || walFlushMeanMs === undefined) return undefined;
  return walFlushes / loadSeconds >= row.throughput / 10 ? walFlushMeanMs : undefined;
}

function fmtCpu(cpu: CpuUse | undefined, walFlushMs?: number): string {
  if (!cpu) return "—";
  const parts = [cpu.serverCores, cpu.postgresCores, cpu.loadCores, cpu.otherCores].map((cores) => cores.toFixed(1));
  const steal = (cpu.stealCores ?? 0) >= 0.05 ? ` (steal ${cpu.stealCores!.toFixed(1)})` : "";
  const io = cpu.ioFullPct > 1 ? `; disk stall ${Math.round(cpu.ioFullPct)}%` : "";
  const flush = walFlushMs !== undefined ? `; WAL flush ${fmtMs(walFlushMs)} ms` : "";
  return `${parts.join(" / ")}${steal}${io}${flush}${cpu.otherCores > NOISY_CORES || cpu.ioFullPct > NOISY_IO_FULL_PCT ? " ⚠" : ""}`;
}

const verdict = (pass: boolean | undefined) => (pass === true ? "✅ pass" : pass === false ? "❌ fail" : "—");

const diskFlushNote = (flush: DiskFlush | undefined) =>
  flush
    ? `; its data's disk made an 8 kB write durable (write + fdatasync) in ${flush.p50Ms} ms at the median, ${flush.p99Ms} ms at p99 (${flush.samples} times, before the run, idle)`
    : "";

/** The results table and how it was made, as markdown. */
export function renderMarkdown(report: BenchReport): string {
  const { machine, settings } = report;
  const lines = [
    `## Gatehouse benchmark — ${report.startedAt.slice(0, 16).replace("T", " ")} UTC${report.complete ? "" : " (INCOMPLETE: the run stopped early)"}`,
    "",
    `Machine: ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGb} GB RAM, Linux ${machine.kernel}, Node ${machine.node}; ` +
      `PostgreSQL ${report.database.version} (${report.database.kind}) ${report.database.onThisMachine === false ? "elsewhere (its CPU is not in the CPU column)" : "on the same machine"}` +
      `${diskFlushNote(report.database.diskFlush)}. Command: \`${report.command}\`.`,
    `Code: commit \`${report.code.commit.slice(0, 12)}\`${report.code.modified.length ? ` with uncommitted changes to ${report.code.modified.length} server file(s)` : ""}.` +
      (Object.keys(settings.serverEnv ?? {}).length || (settings.serverFlags as string[] | undefined)?.length || Object.keys(settings.dbSettings ?? {}).length
        ? ` Non-default: server env ${JSON.stringify(settings.serverEnv)}, node flags ${JSON.stringify(settings.serverFlags)}, PostgreSQL ${JSON.stringify(settings.dbSettings)}.`
        : ""),
    `Each scenario: ${settings.warmupS} s warm-up, then ${settings.durationS} s measured; seed ${String(settings.seed)}; ` +
      `server, PostgreSQL and load generator share the ${machine.cores} cores. ` +
      (settings.loadClient === "connect-es"
        ? "Load: connect-es' Node client."
        : "Load: the benchmark's wire client (Connect JSON over undici, gRPC over node:http2; bench/load/wire-client.ts)."),
    "",
    "| Scenario | Protocol | In flight | ops/s | p50 ms | p99 ms | Errors | Peak RSS MB | × ceiling | Target | Pass | CPU srv/pg/load/other |",
    "|---|---|--:|--:|--:|--:|--:|--:|--:|---|---|--:|",
  ];
  const loadSeconds = settings.warmupS + settings.durationS;
  const flushes = new Map(report.rows.map((row) => [row, rowWalFlushMs(row, loadSeconds)]));
  for (const row of report.rows) {
    lines.push(
      `| ${row.scenario} | ${row.protocol} | ${row.concurrency} | ${fmtRate(row.throughput)} | ${fmtMs(row.p50Ms)} | ${fmtMs(row.p99Ms)} | ${row.errors} | ` +
        `${row.peakRssMb === undefined ? "—" : Math.round(row.peakRssMb)} | ${row.ratio === undefined ? "—" : `${row.ratio.toFixed(2)}× ${row.ceiling}`} | ${row.target} | ${verdict(row.pass)} | ${fmtCpu(row.cpu, flushes.get(row))} |`,
    );
  }
  const seeded = report.seeding.map((s) => `${s.users.toLocaleString("en")} users (${s.database}) in ${s.seconds.toFixed(1)} s`).join(", ");
  if (seeded) lines.push("", `Seeded with \`gatehouse seed\`: ${seeded}.`);
  const walks = report.measurements.filter((m) => m.result.notes.walkPages !== undefined);
  for (const m of walks) {
    const n = m.result.notes;
    lines.push(
      `Deep page for "${m.title}": reached by walking ${Number(n.walkPages).toLocaleString("en")} pages of 100 ` +
        `(${Number(n.walkedUsers).toLocaleString("en")} users) in ${(Number(n.walkMs) / 1000).toFixed(1)} s, ${String(n.walkMsPerPage)} ms a page.`,
    );
  }
  lines.push(
    "",
    `CPU: cores used while measuring by the Gatehouse process(es) (all threads, argon2 included), PostgreSQL, the load generator(s), ` +
      `and what was not the benchmark: processes outside it, and "steal", time the hypervisor gave the VM's cores to someone else, ` +
      `shown after them when it reached 0.05 cores ` +
      `(the machine may be shared: ⚠ marks more than ${NOISY_CORES} cores of those, or a disk that stalled every task ` +
      `more than ${NOISY_IO_FULL_PCT}% of the time (Linux PSI "full"), where the figure is pessimistic). ` +
      `For the argon2 ceiling, "srv" is the ceiling process.`,
  );
  if ([...flushes.values()].some((ms) => ms !== undefined)) {
    lines.push(
      "",
      `WAL flush: the mean time of the \`fdatasync\` calls PostgreSQL's sessions made to commit during the row (warm-up included; ` +
        `pg_stat_io with track_wal_io_timing), which every durable commit waits for; shown where there was at least one for every ten calls.`,
    );
  }
  for (const incident of report.incidents) lines.push("", "**A server exited during a scenario:**", "", "```", incident, "```");
  const passed = report.rows.filter((row) => row.pass === true).length;
  const failed = report.rows.filter((row) => row.pass === false).length;
  const met = report.rows.reduce((n, row) => n + (row.target.match(/✓/g)?.length ?? 0), 0);
  const missed = report.rows.reduce((n, row) => n + (row.target.match(/✗/g)?.length ?? 0), 0);
  lines.push("", `Targets: ${passed} rows pass, ${failed} fail; ${met} criteria met, ${missed} missed.`);
  return lines.join("\n");
}

/** The CPU profiles' hot spots, as markdown. */
export function renderProfiles(profiles: ProfileSummary[]): string {
  const lines = ["## Server CPU profiles (node --cpu-prof, measured window only)"];
  for (const p of profiles) {
    lines.push(
      "",
      `### ${p.title} — ${fmtRate(p.throughput)} ops/s under the profiler; main thread busy ${p.busyMs} of ${p.windowMs} ms`,
      "",
      "| Top self time | ms | % of busy |",
      "|---|--:|--:|",
      ...p.topSelf.map((f) => `| \`${f.frame}\` | ${f.ms} | ${round(f.pct)} |`),
      "",
      "Where the top frames are called from (nearest caller first):",
      "",
      ...p.topSelf
        .filter((f) => f.callers?.length)
        .flatMap((f) => [`- \`${f.frame}\``, ...f.callers!.map((c) => `  - ${c.ms} ms: ${c.path ? `\`${c.path}\`` : "(top of stack)"}`)]),
      "",
      "| By component (self time) | ms | % of busy |",
      "|---|--:|--:|",
      ...p.byComponent.map((f) => `| \`${f.frame}\` | ${f.ms} | ${round(f.pct)} |`),
      "",
      "| Gatehouse functions (inclusive) | ms | % of busy |",
      "|---|--:|--:|",
      ...p.topInclusiveSrc.map((f) => `| \`${f.frame}\` | ${f.ms} | ${round(f.pct)} |`),
    );
    if (p.allocation) lines.push("", ...renderAllocation(p.allocation));
    const gatehouse = p.id.startsWith(ROTATION_PROFILE) ? profiles.find((q) => q.id === p.id.slice(ROTATION_PROFILE.length)) : undefined;
    if (gatehouse) lines.push("", ...renderComparison(p, gatehouse));
  }
  return lines.join("\n");
}

/** Profiles of the rotation ceiling are named after the refresh profile they go with. */
const ROTATION_PROFILE = "ceiling.rotation.";

/**
 * The main thread's time per call, component by component, in the ceiling and in Gatehouse under
 * the same load: where Gatehouse spends more than the bare server doing the same rotation.
 */
function renderComparison(ceiling: ProfileSummary, gatehouse: ProfileSummary): string[] {
  const perCall = (p: ProfileSummary) => {
    const calls = (p.throughput * p.windowMs) / 1000;
    return (ms: number | undefined) => ((ms ?? 0) * 1000) / calls;
  };
  const [c, g] = [perCall(ceiling), perCall(gatehouse)];
  const components = [...new Set([...Object.keys(ceiling.componentMs ?? {}), ...Object.keys(gatehouse.componentMs ?? {})])]
    .map((name) => ({ name, ceiling: c(ceiling.componentMs?.[name]), gatehouse: g(gatehouse.componentMs?.[name]) }))
    .sort((a, b) => b.gatehouse - b.ceiling - (a.gatehouse - a.ceiling));
  const us = (n: number) => n.toFixed(1);
  return [
    `Main thread per call, ${gatehouse.title} against this ceiling (self time; the 15 largest differences):`,
    "",
    "| Component | ceiling µs/call | Gatehouse µs/call | difference |",
    "|---|--:|--:|--:|",
    `| **busy, all components** | ${us(c(ceiling.busyMs))} | ${us(g(gatehouse.busyMs))} | ${us(g(gatehouse.busyMs) - c(ceiling.busyMs))} |`,
    ...components.slice(0, 15).map((row) => `| \`${row.name}\` | ${us(row.ceiling)} | ${us(row.gatehouse)} | ${us(row.gatehouse - row.ceiling)} |`),
  ];
}

function renderAllocation(a: AllocationSummary): string[] {
  const kb = (bytes: number) => (bytes / 1024).toFixed(1);
  return [
    `Allocated: **${kb(a.bytesPerCall)} KB per call** over ${a.calls.toLocaleString("en")} calls (a separate run under V8's sampling heap profiler, freed objects included).`,
    "",
    "| Allocated by (component) | KB per call |",
    "|---|--:|",
    ...a.byComponent.map((f) => `| \`${f.frame}\` | ${kb(f.bytesPerCall)} |`),
    "",
    "| Nearest Gatehouse function on the stack | KB per call |",
    "|---|--:|",
    ...a.bySrcFunction.map((f) => `| \`${f.frame}\` | ${kb(f.bytesPerCall)} |`),
  ];
}
