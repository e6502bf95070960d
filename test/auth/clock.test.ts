import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createDatabaseClock, readDatabaseTime } from "../../src/platform/clock.ts";
import { startTestServer, type TestServer } from "../support/harness.ts";

const FIVE_MINUTES = 5 * 60_000;

describe("the database clock: one clock for every instance", () => {
  test("follows the database's time even when this host's clock is five minutes off", async () => {
    const errors: unknown[] = [];
    let databaseAhead = FIVE_MINUTES;
    const clock = createDatabaseClock(async () => new Date(Date.now() + databaseAhead), (e) => errors.push(e));
    try {
      assert.ok(Math.abs(clock.now().getTime() - Date.now()) < 1_000, "the system clock until the first sync");
      await clock.sync();
      assert.ok(Math.abs(clock.offsetMs - FIVE_MINUTES) < 1_000, String(clock.offsetMs));
      assert.ok(Math.abs(clock.now().getTime() - (Date.now() + FIVE_MINUTES)) < 1_000);
      databaseAhead = -FIVE_MINUTES;
      await clock.sync();
      assert.ok(Math.abs(clock.now().getTime() - (Date.now() - FIVE_MINUTES)) < 1_000, "re-measured");
    } finally {
      clock.stop();
    }
    assert.deepEqual(errors, []);
  });

  test("a failed measurement keeps the last offset", async () => {
    let fail = false;
    const clock = createDatabaseClock(async () => {
      if (fail) throw new Error("database down");
      return new Date(Date.now() + FIVE_MINUTES);
    }, () => {});
    try {
      await clock.sync();
      fail = true;
      await assert.rejects(clock.sync(), /database down/);
      assert.ok(Math.abs(clock.offsetMs - FIVE_MINUTES) < 1_000);
    } finally {
      clock.stop();
    }
  });

  describe("against PostgreSQL", () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer();
    });
    after(() => server.stop());

    test("reads the server's current time", async () => {
      const time = await readDatabaseTime(server.gatehouse.orm.em.getConnection().getClient());
      assert.ok(time instanceof Date && Math.abs(time.getTime() - Date.now()) < 60_000, String(time));
    });
  });
});
