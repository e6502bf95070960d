import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import type { RegisteredUser } from "../auth/support.ts";
import { postJson, startTestServer, type TestServer } from "../support/harness.ts";
import { createManualClock } from "../support/manual-clock.ts";
import { from, loginFrom, outcomeOf, type Outcome } from "./support.ts";

let counter = 0;
const fresh = (prefix: string) => {
  counter++;
  const username = `${prefix}${process.pid}n${counter}`.slice(0, 32);
  return { username, email: `${username}@example.com`, password: "limits test passphrase" };
};

/**
 * Every statement any connection of the in-process server sends (pool, statement pipeline,
 * listener), while `recorder` is set. Installed before the server opens a connection: each
 * connection binds `query` once, when it is made (prepared-statements.ts).
 */
let recorder: ((text: string) => void) | undefined;
const sendQuery = pg.Client.prototype.query as (...args: unknown[]) => unknown;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  const text = typeof args[0] === "string" ? args[0] : (args[0] as { text?: string } | undefined)?.text;
  if (recorder && text) recorder(text);
  return sendQuery.apply(this, args);
} as typeof pg.Client.prototype.query;

/** An address no other call of this file has used. */
let addresses = 0;
const uniqueAddress = () => {
  addresses++;
  return `10.${200 + Math.floor(addresses / 65536)}.${Math.floor(addresses / 256) % 256}.${addresses % 256}`;
};

/** Registers a user from an address of its own, so set-up never eats into a limit a test is about. */
async function newUser(server: TestServer, prefix: string): Promise<RegisteredUser> {
  const identity = fresh(prefix);
  const res = await server.auth().register(identity, from(uniqueAddress()));
  return { user: res.user!, tokens: res.tokens!, ...identity };
}

describe("per-address rate limits on Register, Login, Refresh and Introspect", () => {
  let server: TestServer;
  const clock = createManualClock(new Date(Date.UTC(2030, 2, 1, 9, 0, 0)));
  before(async () => {
    server = await startTestServer(
      {
        GATEHOUSE_TRUSTED_PROXIES: "127.0.0.1",
        GATEHOUSE_RATE_LIMIT_REGISTER: "3/1m",
        GATEHOUSE_RATE_LIMIT_LOGIN: "15/1m",
        GATEHOUSE_RATE_LIMIT_LOGIN_FAILURES: "10/1h",
        GATEHOUSE_RATE_LIMIT_REFRESH: "3/1m",
        GATEHOUSE_RATE_LIMIT_INTROSPECT: "3/1m",
      },
      { clock },
    );
  });
  after(() => server.stop());

  /** Makes `limit` calls from `ip`, then one more; returns that last outcome after checking the others passed the limiter. */
  async function exhaust(limit: number, call: (ip: string) => Promise<Outcome>, ip: string): Promise<Outcome> {
    for (let i = 0; i < limit; i++) assert.notEqual((await call(ip)).reason, "RATE_LIMITED", `call ${i + 1} of ${limit}`);
    const refused = await call(ip);
    assert.equal(refused.reason, "RATE_LIMITED");
    assert.ok(refused.retryAfterMs! > 0);
    return refused;
  }

  test("Register: the fourth sign-up from one address in a minute is refused, and creates nobody", async () => {
    const register = (ip: string) => outcomeOf(server.auth().register(fresh("reg"), from(ip)));
    const refused = await exhaust(3, register, "198.51.100.1");
    const [{ n } = { n: -1 }] = await server.sql<{ n: number }>("select count(*)::int as n from users");
    assert.equal(n, 3);
    assert.equal((await register("198.51.100.2")).reason, "ok", "another address is not affected");
    clock.advance(refused.retryAfterMs!);
    assert.equal((await register("198.51.100.1")).reason, "ok", "after the delay it was told, the address may sign up again");
  });

  test("Login: successful sign-ins count too", async () => {
    const user = await newUser(server, "li");
    await exhaust(15, (ip) => loginFrom(server, ip, user.email, user.password), "198.51.100.3");
  });

  test("Refresh: a refused refresh does not use up the refresh token", async () => {
    const user = await newUser(server, "rf");
    let token = user.tokens.refreshToken;
    const refresh = async (ip: string) => {
      try {
        const res = await server.auth().refresh({ refreshToken: token }, from(ip));
        token = res.tokens!.refreshToken;
        return { reason: "ok" };
      } catch (error) {
        return outcomeOf(Promise.reject(error));
      }
    };
    const refused = await exhaust(3, refresh, "198.51.100.4");
    clock.advance(refused.retryAfterMs!);
    assert.equal((await refresh("198.51.100.4")).reason, "ok");
  });

  test("Refresh: counting the call rides in the rotation's statement — one statement per refresh", async () => {
    const user = await newUser(server, "rs");
    let token = user.tokens.refreshToken;
    const statements: string[] = [];
    recorder = (text) => {
      if (/refresh_tokens|rate_limit_windows/.test(text)) statements.push(text);
    };
    try {
      // Each from an address never seen before, so no lease can pay for the call.
      for (let i = 0; i < 3; i++) token = (await server.auth().refresh({ refreshToken: token }, from(uniqueAddress()))).tokens!.refreshToken;
    } finally {
      recorder = undefined;
    }
    assert.equal(statements.length, 3, statements.join("\n---\n"));
    for (const text of statements) assert.match(text, /rate_limit_windows[\s\S]*refresh_tokens/);
  });

  test("Introspect: answers of active=false are limited per address; a valid token is answered however often it is asked", async () => {
    const user = await newUser(server, "in");
    const ip = "198.51.100.5";
    const active = async () => (await server.auth().introspect({ token: user.tokens.accessToken }, from(ip))).active;
    // A resource server checking its users' tokens: far past the limit of 3, never refused.
    for (let i = 0; i < 10; i++) assert.equal(await active(), true, `valid call ${i + 1}`);
    // Tokens that do not work (junk, then a token of a session that ended) use up the address's budget.
    const other = await newUser(server, "in");
    await server.auth().logout({}, from(uniqueAddress(), other.tokens.accessToken));
    const inactive = ["garbage", other.tokens.accessToken, "garbage"];
    let i = 0;
    const refused = await exhaust(3, (address) => outcomeOf(server.auth().introspect({ token: inactive[i++ % 3]! }, from(address))), ip);
    assert.equal(await active(), true, "a limited address still gets answers for valid tokens");
    assert.equal((await outcomeOf(server.auth().introspect({ token: "garbage" }, from(uniqueAddress())))).reason, "ok", "another address is not affected");
    clock.advance(refused.retryAfterMs!);
    assert.equal((await outcomeOf(server.auth().introspect({ token: "garbage" }, from(ip)))).reason, "ok", "after the delay it was told");
  });

  test("plain JSON sees 429 with Retry-After and a RetryInfo detail", async () => {
    const ip = "198.51.100.6";
    for (let i = 0; i < 3; i++) await server.auth().introspect({ token: "x" }, from(ip));
    const res = await postJson(server.baseUrl, "/gatehouse.auth.v1.AuthService/Introspect", { token: "x" }, { "x-forwarded-for": ip });
    assert.equal(res.status, 429);
    assert.equal(res.json.code, "resource_exhausted");
    assert.match(res.headers.get("retry-after") ?? "", /^\d+$/);
    const details = res.json.details as { type: string; debug?: { reason?: string; retryDelay?: string } }[];
    assert.ok(details.some((d) => d.type === "google.rpc.ErrorInfo" && d.debug?.reason === "RATE_LIMITED"), JSON.stringify(details));
    assert.ok(details.some((d) => d.type === "google.rpc.RetryInfo"), JSON.stringify(details));
  });

  test("one address spraying one password over many accounts is refused after 10 failures", async () => {
    const victims: RegisteredUser[] = [];
    for (let i = 0; i < 12; i++) victims.push(await newUser(server, "spray"));
    clock.advance(60_000);
    const sprayer = "203.0.113.99";
    const reasons: string[] = [];
    for (const victim of victims) reasons.push((await loginFrom(server, sprayer, victim.email, "Summer2030!")).reason);
    assert.deepEqual(reasons, [...Array<string>(10).fill("INVALID_CREDENTIALS"), "RATE_LIMITED", "RATE_LIMITED"]);
    // Accounts that do not exist are no way around it, nor is the right password of one of them.
    assert.equal((await loginFrom(server, sprayer, "nobody@example.com", "Summer2030!")).reason, "RATE_LIMITED");
    assert.equal((await loginFrom(server, sprayer, victims[0]!.email, victims[0]!.password)).reason, "RATE_LIMITED");
    // Everyone else signs in as usual.
    assert.equal((await loginFrom(server, "198.51.100.7", victims[11]!.email, victims[11]!.password)).reason, "ok");
  });

  test("successful sign-ins do not use up an address's failure budget (one office, many people)", async () => {
    const office = "198.51.100.8";
    clock.advance(60_000);
    for (let i = 0; i < 11; i++) {
      const user = await newUser(server, "office");
      assert.equal((await loginFrom(server, office, user.email, user.password)).reason, "ok");
    }
  });
});

describe("X-Forwarded-For is ignored unless it comes from a trusted proxy", () => {
  let direct: TestServer;
  let proxied: TestServer;
  const clock = createManualClock(new Date(Date.UTC(2030, 3, 1, 9, 0, 0)));
  before(async () => {
    direct = await startTestServer({ GATEHOUSE_RATE_LIMIT_REGISTER: "2/1m" }, { clock });
    proxied = await startTestServer({ GATEHOUSE_RATE_LIMIT_REGISTER: "2/1m", GATEHOUSE_TRUSTED_PROXIES: "10.0.0.0/8, 127.0.0.1" }, { clock });
  });
  after(async () => {
    await direct?.stop();
    await proxied?.stop();
  });

  test("without trusted proxies, a different X-Forwarded-For on every call still counts against the real peer", async () => {
    const reasons: string[] = [];
    for (let i = 0; i < 3; i++) reasons.push((await outcomeOf(direct.auth().register(fresh("xff"), from(`203.0.113.${i + 1}`)))).reason);
    assert.deepEqual(reasons, ["ok", "ok", "RATE_LIMITED"]);
    const sessions = await direct.sql<{ ip_address: string }>("select distinct ip_address from sessions");
    assert.deepEqual(sessions, [{ ip_address: "127.0.0.1" }], "sessions record the peer, not the header");
  });

  test("behind a trusted proxy, the right-most untrusted hop is the client; a forged left part changes nothing", async () => {
    const reasons: string[] = [];
    for (const forwarded of ["6.6.6.1, 192.0.2.77", "6.6.6.2, 192.0.2.77, 10.1.1.1", "192.0.2.77"]) {
      reasons.push((await outcomeOf(proxied.auth().register(fresh("prx"), from(forwarded)))).reason);
    }
    assert.deepEqual(reasons, ["ok", "ok", "RATE_LIMITED"]);
    const identity = fresh("seen");
    const registered = await proxied.auth().register(identity);
    const user = { ...identity, tokens: registered.tokens! };
    const { sessions } = await proxied.auth().listSessions({}, from("6.6.6.3, 192.0.2.78", user.tokens.accessToken));
    assert.equal(sessions.length, 1);
    const login = await proxied.auth().login({ identifier: { case: "email", value: user.email }, password: user.password }, from("192.0.2.79"));
    const listed = await proxied.auth().listSessions({}, from("192.0.2.79", login.tokens!.accessToken));
    assert.deepEqual(listed.sessions.map((s) => s.ipAddress).sort(), ["127.0.0.1", "192.0.2.79"]);
  });
});
