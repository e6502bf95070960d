import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { sql } from "kysely";
import pg from "pg";
import { createRateLimiter, leaseCap, retryAfterMs, slidingWindow, type RateLimitDecision } from "../../src/abuse/rate-limiter.ts";
import { slots } from "../../src/platform/database/compiled-statement.ts";
import { gatedStatements, type GateCarrier } from "../../src/platform/database/statement-gate.ts";
import { startSessionCleanup } from "../../src/sessions/session-cleanup.ts";
import { loadConfig } from "../../src/platform/config/config.ts";
import { createLogger } from "../../src/platform/observability/logger.ts";
import { startTestServer, type TestServer } from "../support/harness.ts";
import { createManualClock } from "../support/manual-clock.ts";

/** Whether one more call passes `t` ms from now, by the sliding-window estimate, if nobody else calls. */
function passesAfter(t: number, s: { previous: number; current: number; limit: number; windowMs: number; elapsedMs: number }): boolean {
  const at = s.elapsedMs + t;
  if (at < s.windowMs) return s.previous * (1 - at / s.windowMs) + s.current + 1 <= s.limit;
  if (at < 2 * s.windowMs) return s.current * (1 - (at - s.windowMs) / s.windowMs) + 1 <= s.limit;
  return true;
}

describe("sliding-window arithmetic", () => {
  test("windows are aligned and the previous one fades linearly", () => {
    const { windowStart, previousStart, elapsedMs, previousWeight } = slidingWindow(new Date(Date.UTC(2030, 0, 1, 12, 0, 45)), 60_000);
    assert.equal(windowStart.toISOString(), "2030-01-01T12:00:00.000Z");
    assert.equal(previousStart.toISOString(), "2030-01-01T11:59:00.000Z");
    assert.equal(elapsedMs, 45_000);
    assert.equal(previousWeight, 0.25);
  });

  test("the retry delay of a refusal is the first moment one more call fits", () => {
    const refused = fc
      .record({
        limit: fc.integer({ min: 1, max: 1000 }),
        windowMs: fc.integer({ min: 1_000, max: 86_400_000 }),
        previous: fc.integer({ min: 0, max: 2000 }),
        current: fc.integer({ min: 0, max: 1000 }),
        elapsed: fc.double({ min: 0, max: 0.999, noNaN: true }),
      })
      .map((r) => ({ ...r, current: Math.min(r.current, r.limit), elapsedMs: Math.floor(r.elapsed * r.windowMs) }))
      .filter((s) => !passesAfter(0, s));
    fc.assert(
      fc.property(refused, (s) => {
        const wait = retryAfterMs(s);
        assert.ok(passesAfter(wait, s), `passes after ${wait} ms`);
        if (wait > 3) assert.ok(!passesAfter(wait - 3, s), `refused just before ${wait} ms`);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("rate limiter on PostgreSQL", () => {
  let server: TestServer;
  const clock = createManualClock(new Date(Date.UTC(2030, 0, 1, 12, 0, 0)));
  before(async () => {
    server = await startTestServer({}, { clock });
  });
  after(() => server.stop());
  const db = () => server.gatehouse.orm.em.getConnection().getClient();

  test("60 calls at once against a limit of 10: exactly 10 pass, on any number of connections", async () => {
    const limiter = createRateLimiter({ db, clock });
    const decisions = await Promise.all(Array.from({ length: 60 }, () => limiter.consume("test:burst", { limit: 10, windowMs: 60_000 })));
    assert.equal(decisions.filter((d) => d.allowed).length, 10);
    for (const decision of decisions) if (!decision.allowed) assert.ok(decision.retryAfterMs > 0);
    const [row] = await server.sql<{ hits: number }>("select hits from rate_limit_windows where key = 'test:burst'");
    assert.equal(row?.hits, 10, "refused calls are not counted");
  });

  test("a refused caller that waits as long as it was told gets through; the previous window fades", async () => {
    const limiter = createRateLimiter({ db, clock });
    const limit = { limit: 4, windowMs: 60_000 };
    clock.set(new Date(Date.UTC(2030, 0, 1, 13, 0, 0)));
    for (let i = 0; i < 4; i++) assert.equal((await limiter.consume("test:wait", limit)).allowed, true);
    const refused = await limiter.consume("test:wait", limit);
    assert.equal(refused.allowed, false);
    // The current window is full: the wait reaches into the next one, where these 4 calls still weigh.
    assert.ok(!refused.allowed && refused.retryAfterMs > 60_000 && refused.retryAfterMs <= 120_000, JSON.stringify(refused));
    clock.advance(60_000);
    assert.equal((await limiter.consume("test:wait", limit)).allowed, false, "a fixed window would let a burst through here");
    clock.set(new Date(Date.UTC(2030, 0, 1, 13, 0, 0) + (refused.allowed ? 0 : refused.retryAfterMs)));
    assert.equal((await limiter.consume("test:wait", limit)).allowed, true);
  });

  test("a refund gives a counted call back", async () => {
    const limiter = createRateLimiter({ db, clock });
    const limit = { limit: 1, windowMs: 60_000 };
    const first = await limiter.consume("test:refund", limit);
    assert.ok(first.allowed);
    assert.equal((await limiter.consume("test:refund", limit)).allowed, false);
    await limiter.refund("test:refund", first.windowStart);
    assert.equal((await limiter.consume("test:refund", limit)).allowed, true);
  });

  test("the sweep deletes windows that no longer count", async () => {
    const limiter = createRateLimiter({ db, clock });
    clock.set(new Date(Date.UTC(2030, 0, 2, 0, 0, 0)));
    await limiter.consume("test:sweep", { limit: 5, windowMs: 60_000 });
    const cleanup = startSessionCleanup({
      db,
      clock,
      lifetimes: { sessionTtlMs: 30 * 86_400_000, sessionIdleTtlMs: 7 * 86_400_000 },
      logger: createLogger("silent"),
      abuse: loadConfig({}),
    });
    try {
      clock.advance(119_999);
      await cleanup.runOnce();
      assert.equal((await server.sql("select 1 from rate_limit_windows where key = 'test:sweep'")).length, 1, "still the previous window");
      clock.advance(1);
      assert.ok((await cleanup.runOnce()).abuseState >= 1);
      assert.equal((await server.sql("select 1 from rate_limit_windows where key = 'test:sweep'")).length, 0);
    } finally {
      cleanup.stop();
    }
  });
});

describe("quota leases", () => {
  let server: TestServer;
  const clock = createManualClock(new Date(Date.UTC(2030, 5, 1, 0, 0, 0)));
  before(async () => {
    server = await startTestServer({}, { clock });
  });
  after(() => server.stop());

  /** A limiter (one "instance") whose database statements are counted. */
  function instance(options: { maxLeases?: number } = {}) {
    const counted = { statements: 0 };
    const db = () => {
      counted.statements++;
      return server.gatehouse.orm.em.getConnection().getClient();
    };
    return Object.assign(counted, { limiter: createRateLimiter({ db, clock, ...options }) });
  }
  const hits = async (key: string, windowStart: Date) =>
    (await server.sql<{ hits: number }>("select hits from rate_limit_windows where key = $1 and window_start = $2", [key, windowStart]))[0]?.hits;
  const allowedCount = (decisions: RateLimitDecision[]) => decisions.filter((d) => d.allowed).length;

  test("the lease size doubles from 1 up to a sixteenth of the limit, at most 64", () => {
    assert.deepEqual([1, 20, 31, 32, 300, 1023, 1200, 100_000].map(leaseCap), [1, 1, 1, 2, 18, 63, 64, 64]);
  });

  test("a hot key is served from leases, not one statement per call; a cold key costs one per call and counts nothing extra", async () => {
    const window = new Date(Date.UTC(2030, 5, 1, 1, 0, 0));
    clock.set(window);
    const hot = instance();
    for (let i = 0; i < 200; i++) {
      assert.equal((await hot.limiter.consume("lease:hot", { limit: 1200, windowMs: 60_000 })).allowed, true);
      clock.advance(10);
    }
    // Reservations of 1, 2, 4, 8, 16, 32, 64, 64, 64 slots.
    assert.equal(hot.statements, 9);
    assert.equal(await hits("lease:hot", window), 255, "leased slots are counted in the database");

    const cold = instance();
    for (let i = 0; i < 5; i++) assert.equal((await cold.limiter.consume("lease:cold", { limit: 20, windowMs: 60_000 })).allowed, true);
    assert.equal(cold.statements, 5);
    assert.equal(await hits("lease:cold", window), 5);
  });

  test("two instances at once never let more through than the limit, also with a fading previous window", async () => {
    const a = instance();
    const b = instance();
    const limit = { limit: 200, windowMs: 60_000 };
    const window = new Date(Date.UTC(2030, 5, 1, 2, 0, 0));
    clock.set(window);
    const burst = () => Promise.all(Array.from({ length: 300 }, () => [a.limiter.consume("lease:shared", limit), b.limiter.consume("lease:shared", limit)]).flat());

    const first = await burst();
    assert.equal(allowedCount(first), 200, "all 200 slots are used: a refusal only comes once the database is full");
    assert.equal(await hits("lease:shared", window), 200);
    for (const decision of first) if (!decision.allowed) assert.ok(decision.retryAfterMs > 60_000, JSON.stringify(decision));
    assert.ok(a.statements + b.statements < 100, `${a.statements} + ${b.statements} statements for 600 calls`);

    // Half-way into the next window the 200 weigh 100: room for exactly 100 more.
    clock.set(new Date(window.getTime() + 90_000));
    const second = await burst();
    assert.equal(allowedCount(second), 100);
    assert.equal(await hits("lease:shared", new Date(window.getTime() + 60_000)), 100);
  });

  test("a lease ends with its fixed window: the next window starts over with one slot", async () => {
    const edge = instance();
    const limit = { limit: 160, windowMs: 60_000 };
    const window = new Date(Date.UTC(2030, 5, 1, 3, 0, 0));
    const next = new Date(window.getTime() + 60_000);
    clock.set(window);
    for (let i = 0; i < 4; i++) assert.equal((await edge.limiter.consume("lease:edge", limit)).allowed, true);
    assert.equal(edge.statements, 3);
    assert.equal(await hits("lease:edge", window), 7, "reservations of 1, 2 and 4: 3 slots left");

    clock.set(new Date(next.getTime() - 1));
    const last = await edge.limiter.consume("lease:edge", limit);
    assert.deepEqual(last, { allowed: true, windowStart: window });
    assert.equal(edge.statements, 3, "the last millisecond of the window is still served from the lease");

    clock.set(next);
    assert.deepEqual(await edge.limiter.consume("lease:edge", limit), { allowed: true, windowStart: next });
    assert.equal(edge.statements, 4, "the 2 slots left of the old window are not used in the new one");
    assert.equal(await hits("lease:edge", window), 7);
    assert.equal(await hits("lease:edge", next), 1, "the new window's first reservation asks for one slot");
  });

  test("consumeWithin: the reservation rides in the caller's statement, whose work happens only if the call is allowed", async () => {
    const window = new Date(Date.UTC(2030, 5, 1, 4, 0, 0));
    clock.set(window);
    const one = instance();
    const limit = { limit: 2, windowMs: 60_000 };
    let carried = 0;
    // The caller's "work": a marker row, inserted only where the gate admits.
    const work = slots<{ marker: string; window: Date }>();
    const statement = gatedStatements<Record<string, unknown> & { done: string | null }>(
      (gate) => sql`
        with ${gate.ctes}, work as (
          insert into rate_limit_windows (key, window_start, hits, allowed, expire_time)
          select ${work.$.marker}, ${work.$.window}, 0, true, ${work.$.window} where ${gate.admits}
          returning key
        )
        select ${gate.columns}, (select key from work) as done from ${gate.verdict}`,
    );
    const carrier: GateCarrier<string> = async (gate) => {
      carried++;
      const binding = work.bind({ marker: `carried:${carried}`, window });
      const { rows } = await statement(gate.sql).execute(server.gatehouse.orm.em.getConnection().getClient(), binding, gate.binding);
      return { gateRow: rows[0]!, result: rows[0]!.done ?? "not done" };
    };
    const first = await one.limiter.consumeWithin("within:key", limit, carrier);
    assert.deepEqual([first.decision.allowed, first.carried], [true, "carried:1"]);
    const second = await one.limiter.consumeWithin("within:key", limit, carrier);
    assert.deepEqual([second.decision.allowed, second.carried], [true, "carried:2"]);
    const third = await one.limiter.consumeWithin("within:key", limit, carrier);
    assert.equal(third.decision.allowed, false);
    assert.equal(third.carried, undefined);
    assert.equal(one.statements, 0, "no statement of the limiter's own");
    assert.equal(await hits("within:key", window), 2);
    const markers = await server.sql<{ key: string }>("select key from rate_limit_windows where key like 'carried:%' order by key");
    assert.deepEqual(markers.map((m) => m.key), ["carried:1", "carried:2"], "the refused call's work was not done");

    // A slot from a lease needs no statement: the carrier does not run, and the caller runs its work itself.
    const hot = instance();
    const big = { limit: 1200, windowMs: 60_000 };
    const decisions = [];
    for (let i = 0; i < 4; i++) decisions.push(await hot.limiter.consumeWithin("within:hot", big, carrier));
    assert.deepEqual(decisions.map((d) => [d.decision.allowed, d.carried !== undefined]), [[true, true], [true, true], [true, false], [true, true]]);
    assert.equal(hot.statements, 0);
  });

  test("calls of one key while a reservation is in flight wait for it instead of each reserving", async () => {
    const waiting = instance();
    const limit = { limit: 1000, windowMs: 60_000 };
    const window = new Date(Date.UTC(2030, 5, 1, 4, 0, 0));
    clock.set(window);
    // Another session holds the row, so the first reservation stays in flight until it lets go.
    await server.sql("insert into rate_limit_windows (key, window_start, hits, allowed, expire_time) values ('lease:coalesce', $1, 0, true, $2)", [
      window,
      new Date(window.getTime() + 120_000),
    ]);
    const holder = new pg.Client({ connectionString: server.databaseUrl });
    await holder.connect();
    try {
      await holder.query("begin");
      await holder.query("select 1 from rate_limit_windows where key = 'lease:coalesce' for update");
      const calls = Array.from({ length: 10 }, () => waiting.limiter.consume("lease:coalesce", limit));
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(waiting.statements, 1, "one reservation in flight, nine calls waiting for it");
      await holder.query("commit");
      const decisions = await Promise.all(calls);
      assert.equal(allowedCount(decisions), 10);
      // Reservations of 1, 2, 4 and 8 slots, one after the other.
      assert.equal(waiting.statements, 4);
      assert.equal(await hits("lease:coalesce", window), 15);
    } finally {
      await holder.end();
    }
  });

  test("calls waiting for a reservation that is refused are refused with it, without a statement each", async () => {
    const refused = instance();
    const limit = { limit: 40, windowMs: 60_000 };
    const window = new Date(Date.UTC(2030, 5, 1, 5, 0, 0));
    clock.set(window);
    const decisions = await Promise.all(Array.from({ length: 100 }, () => refused.limiter.consume("lease:refused", limit)));
    assert.equal(allowedCount(decisions), 40);
    assert.equal(await hits("lease:refused", window), 40);
    // Leases of 1, then 2 (at most 2 under 40) nineteen times: 39 slots; the 21st reservation asks
    // for 2 and gets the 1 left; the 22nd is refused, for all 60 calls left.
    assert.equal(refused.statements, 22);
    for (const decision of decisions) if (!decision.allowed) assert.ok(decision.retryAfterMs > 60_000, JSON.stringify(decision));
  });

  test("a key over its limit is refused from memory until its delay is over: a flood costs no statement per call", async () => {
    const flooded = instance();
    const limit = { limit: 2, windowMs: 60_000 };
    const window = new Date(Date.UTC(2030, 5, 1, 5, 30, 0));
    clock.set(window);
    const key = "lease:flood";
    for (let i = 0; i < 2; i++) assert.equal((await flooded.limiter.consume(key, limit)).allowed, true);
    const first = await flooded.limiter.consume(key, limit);
    assert.ok(!first.allowed);
    const statements = flooded.statements;
    const refusedUntil = window.getTime() + first.retryAfterMs;
    for (let i = 0; i < 50; i++) {
      clock.advance(100);
      const again = await flooded.limiter.consume(key, limit);
      assert.deepEqual(again, { allowed: false, retryAfterMs: refusedUntil - clock.now().getTime() }, `call ${i}: the same delay, shortened by the time since`);
    }
    assert.equal(flooded.statements, statements, "no statement for a call refused from memory");
    assert.equal(await hits(key, window), 2, "refused calls are not counted");
    // Another instance, which holds no memory of the refusal, is refused by the database alike.
    const other = instance();
    const elsewhere = await other.limiter.consume(key, limit);
    assert.ok(!elsewhere.allowed && Math.abs(window.getTime() + 5_000 + elsewhere.retryAfterMs - refusedUntil) <= 1, JSON.stringify(elsewhere));
    // A caller that waits as long as it was told asks the database again, and gets through.
    clock.set(new Date(refusedUntil));
    assert.equal((await flooded.limiter.consume(key, limit)).allowed, true);
    assert.equal(flooded.statements, statements + 1);
  });

  test("a refund made on this instance lifts its memory of a refusal", async () => {
    const refunding = instance();
    const limit = { limit: 1, windowMs: 60_000 };
    const window = new Date(Date.UTC(2030, 5, 1, 5, 40, 0));
    clock.set(window);
    const counted = await refunding.limiter.consume("lease:lifted", limit);
    assert.ok(counted.allowed);
    assert.equal((await refunding.limiter.consume("lease:lifted", limit)).allowed, false);
    await refunding.limiter.refund("lease:lifted", counted.windowStart);
    assert.equal((await refunding.limiter.consume("lease:lifted", limit)).allowed, true, "the slot given back is used at once");
  });

  test("a refund goes back to the database; a lease the instance holds is not touched", async () => {
    const refunding = instance();
    const limit = { limit: 32, windowMs: 60_000 };
    const window = new Date(Date.UTC(2030, 5, 1, 6, 0, 0));
    clock.set(window);
    const decisions: RateLimitDecision[] = [];
    for (let i = 0; i < 32; i++) decisions.push(await refunding.limiter.consume("lease:refund", limit));
    assert.equal(allowedCount(decisions), 32);
    assert.equal((await refunding.limiter.consume("lease:refund", limit)).allowed, false);
    const counted = decisions[5]!;
    assert.ok(counted.allowed);
    await refunding.limiter.refund("lease:refund", counted.windowStart);
    assert.equal(await hits("lease:refund", window), 31);
    // Another instance may take the slot given back: it is the database's, not this instance's.
    const other = instance();
    assert.equal((await other.limiter.consume("lease:refund", limit)).allowed, true);
    assert.equal((await refunding.limiter.consume("lease:refund", limit)).allowed, false);
  });

  test("leases are kept for a bounded number of keys: the oldest go first", async () => {
    const bounded = instance({ maxLeases: 8 });
    const limit = { limit: 1000, windowMs: 60_000 };
    clock.set(new Date(Date.UTC(2030, 5, 1, 7, 0, 0)));
    for (let i = 0; i < 2; i++) await bounded.limiter.consume("lease:bounded", limit);
    assert.equal(bounded.statements, 2, "a lease of 2: one slot left");
    for (let i = 0; i < 8; i++) await bounded.limiter.consume(`lease:bounded:other${i}`, limit);
    assert.equal(bounded.statements, 10);
    await bounded.limiter.consume("lease:bounded", limit);
    assert.equal(bounded.statements, 11, "the oldest lease was dropped to make room");
  });
});
