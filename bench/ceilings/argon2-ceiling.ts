/**
 * Ceiling for password work: argon2id verifications per second with the configured parameters
 * and the server's thread budget (GATEHOUSE_HASH_CONCURRENCY verifications at once, on libuv's
 * pool as in the server), in a process of its own with nothing else to do.
 * Forked by bench/run.ts with Gatehouse's runtime settings (npm start's node flags and malloc
 * environment: how argon2's buffers are allocated matters here); answers with one message.
 */
import * as argon2 from "argon2";
import { summarise } from "../lib/stats.ts";

export interface Argon2CeilingSpec {
  memoryKib: number;
  iterations: number;
  parallelism: number;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
}

export interface Argon2CeilingResult {
  verificationsPerSecond: number;
  latencyMs: ReturnType<typeof summarise>;
  verifications: number;
}

process.once("message", (spec: Argon2CeilingSpec) => {
  const run = async (): Promise<Argon2CeilingResult> => {
    const password = "a bench password that is long enough";
    const hash = await argon2.hash(password, {
      type: argon2.argon2id,
      memoryCost: spec.memoryKib,
      timeCost: spec.iterations,
      parallelism: spec.parallelism,
    });
    const begin = performance.now();
    const windowStart = begin + spec.warmupMs;
    const windowEnd = windowStart + spec.durationMs;
    const latencies: number[] = [];
    await Promise.all(
      Array.from({ length: spec.concurrency }, async () => {
        while (performance.now() < windowEnd) {
          const started = performance.now();
          if (!(await argon2.verify(hash, password))) throw new Error("argon2 verification failed");
          const ended = performance.now();
          if (ended >= windowStart && ended <= windowEnd) latencies.push(ended - started);
        }
      }),
    );
    return {
      verificationsPerSecond: latencies.length / (spec.durationMs / 1000),
      latencyMs: summarise(latencies),
      verifications: latencies.length,
    };
  };
  run().then(
    (result) => process.send!(result, () => process.exit(0)),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
});
