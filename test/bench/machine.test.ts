import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { measureDiskFlush } from "../../bench/lib/machine.ts";
import { type BenchReport, renderMarkdown } from "../../bench/report.ts";

test("the disk's flush time is measured in the folder it is asked about, and the probe file is removed", async () => {
  const dir = await mkdtemp(join(tmpdir(), "gatehouse-flush-test-"));
  try {
    const flush = measureDiskFlush(dir, 20);
    assert.equal(flush.samples, 20);
    assert.ok(flush.p50Ms > 0, `a flush takes some time: ${flush.p50Ms} ms`);
    assert.ok(flush.p99Ms >= flush.p50Ms, "p99 is not below the median");
    assert.deepEqual(await readdir(dir), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.throws(() => measureDiskFlush(join(dir, "gone")), { code: "ENOENT" });
});

test("the report names the disk's flush time when it was measured, and older reports render as before", () => {
  const committed = JSON.parse(readFileSync(new URL("../../bench/results/2026-12-04.json", import.meta.url), "utf8")) as BenchReport;
  const { diskFlush: _none, ...database } = committed.database;
  const without = renderMarkdown({ ...committed, database });
  assert.doesNotMatch(without, /fdatasync/);
  assert.match(without, /^Machine: .*\(embedded\) on the same machine\. Command:/m);

  const withFlush = renderMarkdown({ ...committed, database: { ...database, diskFlush: { p50Ms: 0.119, p99Ms: 0.412, samples: 200 } } });
  const note = "; its data's disk made an 8 kB write durable (write + fdatasync) in 0.119 ms at the median, 0.412 ms at p99 (200 times, before the run, idle)";
  assert.ok(withFlush.split("\n").some((line) => line.startsWith("Machine: ") && line.includes(`on the same machine${note}. Command:`)));
  assert.equal(withFlush.replace(note, ""), without, "nothing else changes");
});
