/**
 * Preloaded (`node --import`) into a server that the benchmark profiles; does nothing unless
 * GATEHOUSE_BENCH_ALLOCATION_FILE is set. A SIGUSR2 starts V8's sampling heap profiler, set to keep
 * the samples of objects that garbage collection has freed since, so the profile counts what was
 * allocated rather than what survived; it also counts the HTTP/1.1 requests and HTTP/2 streams the
 * process serves meanwhile. The next SIGUSR2 stops it and writes `{ calls, profile }` to that file.
 * Each step is also said on standard error.
 *
 * Bytes allocated per call do not drift with the speed of a shared VM the way throughput does, so
 * they show what a change did to the work of a call where a throughput difference is noise.
 */
import diagnostics from "node:diagnostics_channel";
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";

/** One sample per 16 KiB allocated on average: tens of thousands over a measured window. */
const SAMPLING_INTERVAL_BYTES = 16 * 1024;

const file = process.env.GATEHOUSE_BENCH_ALLOCATION_FILE;
if (file) {
  const session = new Session();
  session.connect();
  let calls = 0;
  let sampling = false;
  const count = () => {
    if (sampling) calls++;
  };
  diagnostics.subscribe("http.server.request.start", count);
  diagnostics.subscribe("http2.server.stream.start", count);

  const toggle = async () => {
    if (!sampling) {
      await session.post("HeapProfiler.startSampling", {
        samplingInterval: SAMPLING_INTERVAL_BYTES,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      });
      calls = 0;
      sampling = true;
      process.stderr.write("allocation sampler: sampling\n");
    } else {
      sampling = false;
      const { profile } = await session.post("HeapProfiler.stopSampling");
      writeFileSync(file, JSON.stringify({ calls, profile }));
      process.stderr.write(`allocation sampler: ${calls} calls, written to ${file}\n`);
    }
  };
  // One toggle at a time, in the order the signals came.
  let toggling = Promise.resolve();
  process.on("SIGUSR2", () => {
    toggling = toggling.then(toggle).catch((error: unknown) => console.error("allocation sampler:", error));
  });
}
