import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { type BenchReport, buildRows, renderMarkdown } from "../../bench/report.ts";

/** A real report, as written before the disk's flush and the WAL flushes were recorded. */
function olderReport(): BenchReport {
  const report = JSON.parse(readFileSync(new URL("../../bench/results/2026-12-04.json", import.meta.url), "utf8")) as BenchReport;
  const { diskFlush: _disk, ...database } = report.database;
  const measurements = report.measurements.map(({ cpu: { walFlushes: _n, walFlushMeanMs: _ms, ...cpu }, ...m }) => ({ ...m, cpu }));
  const older = { ...report, database, measurements };
  return { ...older, rows: buildRows(older) };
}

test("the report names the disk's flush time when it was measured, and older reports render as before", () => {
  const report = olderReport();
  const without = renderMarkdown(report);
  assert.doesNotMatch(without, /fdatasync/);
  assert.match(without, /^Machine: .*\(embedded\) on the same machine\. Command:/m);

  const withFlush = renderMarkdown({ ...report, database: { ...report.database, diskFlush: { p50Ms: 0.119, p99Ms: 0.412, samples: 200 } } });
  const note = "; its data's disk made an 8 kB write durable (write + fdatasync) in 0.119 ms at the median, 0.412 ms at p99 (200 times, before the run, idle)";
  assert.ok(withFlush.split("\n").some((line) => line.startsWith("Machine: ") && line.includes(`on the same machine${note}. Command:`)));
  assert.equal(withFlush.replace(note, ""), without, "nothing else changes");
});

test("a row shows the WAL flush its commits waited for, when its calls made the flushes, with a note saying what it is", () => {
  const plain = olderReport();
  const flushes: Record<string, { walFlushes: number; walFlushMeanMs: number }> = {
    "refresh.grpc": { walFlushes: 12_754, walFlushMeanMs: 0.416 },
    // A row whose calls write nothing: only the server's background work flushed, now and then.
    "getMe.grpc": { walFlushes: 15, walFlushMeanMs: 1.01 },
  };
  const measurements = plain.measurements.map((m) => (flushes[m.id] ? { ...m, cpu: { ...m.cpu, ...flushes[m.id] } } : m));
  const report = { ...plain, measurements };
  const markdown = renderMarkdown({ ...report, rows: buildRows(report) });
  const refresh = markdown.split("\n").find((line) => line.startsWith("| Refresh (rotation chain) | grpc |"));
  assert.ok(refresh?.endsWith("; WAL flush 0.42 ms |"), refresh);
  assert.match(markdown, /^WAL flush: the mean time of the `fdatasync` calls/m);
  const others = markdown.split("\n").filter((line) => line.includes("WAL flush"));
  assert.equal(others.length, 2, "that row and the note, not GetMe's few background flushes");

  assert.doesNotMatch(renderMarkdown(plain), /WAL flush/, "reports without the figure render as before");
});
