import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { createRateLimiter, retryAfterMs, slidingWindow } from "../../src/abuse/rate-limiter.ts";
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
