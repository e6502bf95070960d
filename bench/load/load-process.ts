/**
 * The load generator: a process of its own (forked by bench/run.ts), so its CPU is never the
 * server's event loop. It builds the workers of one scenario (untimed setup), reports ready,
 * then on "start" warms up and measures, and sends back one LoadResult.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { summarise } from "../lib/stats.ts";
import type { FromLoad, LoadResult, LoadSpec, ToLoad } from "./load-spec.ts";
import { clientAddresses, makeClients, makeWorker, type Worker } from "./operations.ts";

const SETUP_PARALLELISM = 4;
/** Open-loop calls beyond this many in flight are counted as dropped, so a stalled server cannot exhaust memory. */
const MAX_OPEN_LOOP_IN_FLIGHT = 2_000;

function send(message: FromLoad): void {
  process.send!(message);
}

/** CLOCK_MONOTONIC in µs for a performance.now() mark: the clock V8's CPU profiles use. */
const monotonicOffsetMicros = Number(process.hrtime.bigint() / 1000n) - performance.now() * 1000;
const toMonotonicMicros = (mark: number) => Math.round(mark * 1000 + monotonicOffsetMicros);

function describe(error: unknown): { code: string; message: string } {
  if (error instanceof ConnectError) return { code: Code[error.code] ?? String(error.code), message: error.rawMessage };
  return { code: "client", message: error instanceof Error ? error.message : String(error) };
}

async function setup(spec: LoadSpec): Promise<{ workers: Worker[]; notes: Record<string, unknown>; setupMs: number }> {
  const started = performance.now();
  const clients = makeClients(spec);
  const notes: Record<string, unknown> = {};
  const shared = new Map<string, Promise<string>>();
  const options = clientAddresses(spec.name, spec.attempt ?? 0);
  const workers: Worker[] = new Array(spec.concurrency);
  let next = 0;
  const build = async () => {
    for (let i = next++; i < spec.concurrency; i = next++) {
      workers[i] = await makeWorker(spec, clients[i % clients.length]!, i, notes, shared, options);
    }
  };
  await Promise.all(Array.from({ length: Math.min(SETUP_PARALLELISM, spec.concurrency) }, build));
  return { workers, notes, setupMs: Math.round(performance.now() - started) };
}

async function measure(spec: LoadSpec, workers: Worker[], notes: Record<string, unknown>, setupMs: number): Promise<LoadResult> {
  const latencies: number[] = [];
  const errorCodes: Record<string, number> = {};
  const firstErrors: string[] = [];
  let errors = 0;
  const cpuBefore = process.cpuUsage();
  const begin = performance.now();
  const windowStart = begin + spec.warmupMs;
  const windowEnd = windowStart + spec.durationMs;

  const record = (startedAt: number, error: unknown) => {
    const ended = performance.now();
    if (ended < windowStart || ended > windowEnd) return;
    if (error === undefined) {
      latencies.push(ended - startedAt);
      return;
    }
    errors++;
    const { code, message } = describe(error);
    errorCodes[code] = (errorCodes[code] ?? 0) + 1;
    if (firstErrors.length < 5) firstErrors.push(`${code}: ${message}`);
  };

  if (spec.ratePerSecond === undefined) {
    // Closed loop: every worker keeps exactly one call in flight.
    await Promise.all(
      workers.map(async (worker) => {
        while (performance.now() < windowEnd) {
          const startedAt = performance.now();
          let failure: unknown;
          try {
            await worker.call();
          } catch (error) {
            failure = error;
          }
          record(startedAt, failure);
          if (failure !== undefined && worker.recover) await worker.recover().catch(() => undefined);
        }
      }),
    );
  } else {
    // Open loop: calls start on a fixed schedule whatever the server does, and each latency is
    // counted from its scheduled start, so a stall is measured rather than hidden.
    const interval = 1000 / spec.ratePerSecond;
    const inFlight = new Set<Promise<void>>();
    for (let i = 0; ; i++) {
      const scheduled = begin + i * interval;
      if (scheduled >= windowEnd) break;
      const wait = scheduled - performance.now();
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
      if (inFlight.size >= MAX_OPEN_LOOP_IN_FLIGHT) {
        record(scheduled, new Error("dropped: too many calls in flight"));
        continue;
      }
      const call = workers[i % workers.length]!.call().then(
        () => record(scheduled, undefined),
        (error: unknown) => record(scheduled, error ?? new Error("failed")),
      );
      inFlight.add(call);
      void call.finally(() => inFlight.delete(call));
    }
    await Promise.all(inFlight);
  }

  const cpu = process.cpuUsage(cpuBefore);
  const cpuCores = (cpu.user + cpu.system) / 1000 / (performance.now() - begin);
  const ok = latencies.length;
  const durationS = spec.durationMs / 1000;
  return {
    name: spec.name,
    calls: ok + errors,
    ok,
    errors,
    errorCodes,
    firstErrors,
    durationS,
    throughput: ok / durationS,
    latencyMs: summarise(latencies),
    setupMs,
    windowMicros: [toMonotonicMicros(windowStart), toMonotonicMicros(windowEnd)],
    cpuCores: Math.round(cpuCores * 100) / 100,
    notes,
  };
}

let prepared: { spec: LoadSpec; workers: Worker[]; notes: Record<string, unknown>; setupMs: number } | undefined;

process.on("message", (message: ToLoad) => {
  const run = async () => {
    if (message.type === "setup") {
      prepared = { spec: message.spec, ...(await setup(message.spec)) };
      send({ type: "ready" });
    } else {
      if (!prepared) throw new Error("start before setup");
      const result = await measure(prepared.spec, prepared.workers, prepared.notes, prepared.setupMs);
      // Exit once the result is out: keep-alive sockets would otherwise hold the process open.
      process.send!({ type: "result", result } satisfies FromLoad, () => process.exit(0));
    }
  };
  run().catch((error: unknown) => {
    const { code, message: text } = describe(error);
    send({ type: "failed", message: `${code}: ${text}` });
  });
});
