import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { measureDiskFlush } from "../../bench/lib/machine.ts";

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
