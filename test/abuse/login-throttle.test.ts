import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { loadConfig } from "../../src/platform/config/config.ts";
import { createLogger } from "../../src/platform/observability/logger.ts";
import { startSessionCleanup } from "../../src/sessions/session-cleanup.ts";
import { registerUser } from "../auth/support.ts";
import { startTestServer, type TestServer } from "../support/harness.ts";
import { createManualClock } from "../support/manual-clock.ts";
import { from, loginFrom, outcomeOf, type Outcome } from "./support.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** The defaults: delays start after 5 failures, 1 s doubling to at most 15 min; 50 failures per identifier per 24 h. */
const DEFAULTS = loadConfig({}).loginThrottle;

describe("brute force: progressive delay per (account, address), hard cap per account", () => {
  let server: TestServer;
  const clock = createManualClock(new Date(Date.UTC(2030, 5, 1, 8, 0, 0)));
  before(async () => {
    // The test client is a trusted proxy, so each request can say which address it comes from.
    server = await startTestServer({ GATEHOUSE_TRUSTED_PROXIES: "127.0.0.1" }, { clock });
  });
  after(() => server.stop());

  test("101 wrong passwords on one account are throttled long before 100; the owner still signs in from an address that has not failed", async () => {
    assert.deepEqual(
      DEFAULTS,
      { lockoutAfter: 5, lockoutBaseMs: 1_000, lockoutMaxMs: 15 * MINUTE, maxFailures: 50, failureWindowMs: 24 * HOUR },
      "this test walks the default limits",
    );
    const victim = await registerUser(server.auth(), { prefix: "victim" });
    const attacker = "203.0.113.66";
    let failures = 0;
    const delays: number[] = [];
    let cap: Outcome | undefined;
    let failuresAtFirstDelay: number | undefined;
    const start = clock.now().getTime();

    attempts: for (let attempt = 1; attempt <= 101; attempt++) {
      for (;;) {
        const outcome = await loginFrom(server, attacker, victim.email, `wrong guess number ${attempt}`);
        if (outcome.reason === "INVALID_CREDENTIALS") {
          failures++;
          break;
        }
        assert.equal(outcome.reason, "RATE_LIMITED", JSON.stringify(outcome));
        failuresAtFirstDelay ??= failures;
        if (outcome.retryAfterMs! > DEFAULTS.lockoutMaxMs) {
          cap = outcome;
          break attempts;
        }
        delays.push(outcome.retryAfterMs!);
        // Not waiting long enough changes nothing.
        clock.advance(outcome.retryAfterMs! - 1);
        assert.equal((await loginFrom(server, attacker, victim.email, "one more guess")).reason, "RATE_LIMITED");
        clock.advance(1);
      }
    }

    assert.equal(failuresAtFirstDelay, 5, "five free failures, then delays");
    assert.deepEqual(
      delays.slice(0, 11),
      [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900].map((s) => s * 1000),
      "each failure doubles the delay, up to 15 minutes",
    );
    assert.ok(cap, "the hard cap stopped the attempts");
    assert.equal(failures, 50, "the password was checked 50 times, not 100");
    assert.ok(clock.now().getTime() - start < 24 * HOUR, "all within one day");

    // Waiting out the longest delay does not help: the cap holds until these failures are a day old.
    clock.advance(DEFAULTS.lockoutMaxMs);
    const capped = await loginFrom(server, attacker, victim.email, victim.password);
    assert.equal(capped.reason, "RATE_LIMITED", "refused before the password is even checked, the right one included");
    assert.ok(capped.retryAfterMs! > 20 * HOUR && capped.retryAfterMs! <= 24 * HOUR, String(capped.retryAfterMs));

    // The owner, elsewhere, is not locked out.
    assert.equal((await loginFrom(server, "198.51.100.20", victim.email, victim.password)).reason, "ok");
    // Another address gets one guess, and is then refused as the attacker is.
    assert.equal((await loginFrom(server, "198.51.100.21", victim.email, "a guess from a botnet")).reason, "INVALID_CREDENTIALS");
    assert.equal((await loginFrom(server, "198.51.100.21", victim.email, victim.password)).reason, "RATE_LIMITED");
    // The owner's own successful sign-ins never counted.
    assert.equal((await loginFrom(server, "198.51.100.20", victim.email, victim.password)).reason, "ok");

    // A day after its last failure, the attacker's address starts afresh.
    clock.advance(capped.retryAfterMs!);
    assert.equal((await loginFrom(server, attacker, victim.email, "a fresh start")).reason, "INVALID_CREDENTIALS");
  });

  test("an account that does not exist is throttled exactly like one that does", async () => {
    const known = await registerUser(server.auth(), { prefix: "known" });
    const run = async (email: string, ip: string) => {
      const seen: Outcome[] = [];
      for (let i = 0; i < 9; i++) {
        const outcome = await loginFrom(server, ip, email, "not the password");
        seen.push(outcome);
        if (outcome.retryAfterMs) clock.advance(outcome.retryAfterMs);
      }
      return seen;
    };
    const forKnown = await run(known.email, "192.0.2.10");
    const forUnknown = await run(`nobody-${known.username}@example.com`, "192.0.2.11");
    assert.deepEqual(forUnknown, forKnown);
    assert.deepEqual(
      forKnown.map((o) => o.reason),
      ["INVALID_CREDENTIALS", "INVALID_CREDENTIALS", "INVALID_CREDENTIALS", "INVALID_CREDENTIALS", "INVALID_CREDENTIALS", "RATE_LIMITED", "INVALID_CREDENTIALS", "RATE_LIMITED", "INVALID_CREDENTIALS"],
    );
  });

  test("a right password clears the address's failures on that account", async () => {
    const user = await registerUser(server.auth(), { prefix: "typo" });
    const ip = "192.0.2.30";
    for (let i = 0; i < 4; i++) assert.equal((await loginFrom(server, ip, user.email, "typo")).reason, "INVALID_CREDENTIALS");
    assert.equal((await loginFrom(server, ip, user.email, user.password)).reason, "ok");
    for (let i = 0; i < 5; i++) assert.equal((await loginFrom(server, ip, user.email, "typo")).reason, "INVALID_CREDENTIALS");
    assert.equal((await loginFrom(server, ip, user.email, "typo")).reason, "RATE_LIMITED");
  });

  test("20 wrong passwords at once from one address: five are checked, the rest refused before hashing", async () => {
    const user = await registerUser(server.auth(), { prefix: "burst" });
    const outcomes = await Promise.all(Array.from({ length: 20 }, (_, i) => loginFrom(server, "192.0.2.40", user.email, `burst guess ${i}`)));
    const reasons = outcomes.map((o) => o.reason).sort();
    assert.equal(reasons.filter((r) => r === "INVALID_CREDENTIALS").length, 5, reasons.join(","));
    assert.equal(reasons.filter((r) => r === "RATE_LIMITED").length, 15, reasons.join(","));
    const [failed] = await server.sql<{ n: number }>(
      "select count(*)::int as n from audit_events where type = 'sign_in' and outcome = 'failure' and subject_user_id = $1",
      [user.user.id],
    );
    assert.equal(failed?.n, 5, "only checked passwords reach the audit trail");
  });

  test("re-entering the password while signed in (LogoutAll, ChangePassword) is throttled the same way", async () => {
    const user = await registerUser(server.auth(), { prefix: "stolen" });
    const ip = "192.0.2.50";
    const token = user.tokens.accessToken;
    const seen: string[] = [];
    for (let i = 0; i < 3; i++) seen.push((await outcomeOf(server.auth().logoutAll({ password: `guess ${i}` }, from(ip, token)))).reason);
    for (let i = 0; i < 2; i++) {
      seen.push((await outcomeOf(server.auth().changePassword({ currentPassword: `guess ${i}`, newPassword: "an entirely new passphrase" }, from(ip, token)))).reason);
    }
    seen.push((await outcomeOf(server.auth().logoutAll({ password: user.password }, from(ip, token)))).reason);
    assert.deepEqual(seen, ["INVALID_CREDENTIALS", "INVALID_CREDENTIALS", "INVALID_CREDENTIALS", "INVALID_CREDENTIALS", "INVALID_CREDENTIALS", "RATE_LIMITED"]);
  });

  test("failures older than the window are swept away", async () => {
    const user = await registerUser(server.auth(), { prefix: "sweep" });
    await loginFrom(server, "192.0.2.60", user.email, "wrong");
    const db = () => server.gatehouse.orm.em.getConnection().getClient();
    const cleanup = startSessionCleanup({
      db,
      clock,
      lifetimes: { sessionTtlMs: 30 * 86_400_000, sessionIdleTtlMs: 7 * 86_400_000 },
      logger: createLogger("silent"),
      abuse: loadConfig({}),
    });
    try {
      const count = async () => (await server.sql<{ n: number }>("select count(*)::int as n from login_failures where address = '192.0.2.60'"))[0]!.n;
      assert.equal(await count(), 1);
      clock.advance(DEFAULTS.failureWindowMs);
      await cleanup.runOnce();
      assert.equal(await count(), 0);
    } finally {
      cleanup.stop();
    }
  });
});

describe("limits hold across instances on one database", () => {
  let first: TestServer;
  let second: TestServer;
  const clock = createManualClock(new Date(Date.UTC(2030, 6, 1, 8, 0, 0)));
  before(async () => {
    const env = { GATEHOUSE_TRUSTED_PROXIES: "127.0.0.1", GATEHOUSE_RATE_LIMIT_REGISTER: "2/1h" };
    first = await startTestServer(env, { clock });
    second = await startTestServer(env, { clock, sameDatabaseAs: first });
  });
  after(async () => {
    await second?.stop();
    await first?.stop();
  });

  test("failures on one instance delay attempts on the other", async () => {
    const user = await registerUser(first.auth(), { prefix: "twin" });
    const ip = "192.0.2.70";
    const reasons: string[] = [];
    for (let i = 0; i < 6; i++) reasons.push((await loginFrom(i % 2 === 0 ? first : second, ip, user.email, "wrong")).reason);
    assert.deepEqual(reasons, ["INVALID_CREDENTIALS", "INVALID_CREDENTIALS", "INVALID_CREDENTIALS", "INVALID_CREDENTIALS", "INVALID_CREDENTIALS", "RATE_LIMITED"]);
    assert.equal((await loginFrom(first, ip, user.email, user.password)).reason, "RATE_LIMITED");
  });

  test("a per-address limit counts the calls made to both", async () => {
    const register = (server: TestServer, n: number) =>
      outcomeOf(
        server.auth().register(
          { username: `twin${process.pid}r${n}`, email: `twin${process.pid}r${n}@example.com`, password: "twin register passphrase" },
          from("192.0.2.71"),
        ),
      );
    assert.equal((await register(first, 1)).reason, "ok");
    assert.equal((await register(second, 2)).reason, "ok");
    assert.equal((await register(first, 3)).reason, "RATE_LIMITED");
    assert.equal((await register(second, 4)).reason, "RATE_LIMITED");
  });
});
