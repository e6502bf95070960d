import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createCallerCache } from "../../src/auth/caller-cache.ts";
import type { CallerState } from "../../src/auth/credential-store.ts";
import { startTestServer, type TestServer } from "../support/harness.ts";
import { bearer, registerUser, unauthenticated } from "./support.ts";

/** Calls `probe` until it resolves true; fails after `withinMs`. Returns how long it took. */
async function eventually(probe: () => Promise<boolean>, withinMs: number, what: string): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await probe()) return Date.now() - started;
    if (Date.now() - started > withinMs) assert.fail(`${what} did not happen within ${withinMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function metric(server: TestServer, name: string): Promise<number> {
  const text = await (await fetch(`${server.baseUrl}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? Number.NaN : Number(line.slice(line.lastIndexOf(" ") + 1));
}

const listening = (server: TestServer) =>
  eventually(async () => (await metric(server, "gatehouse_caller_cache_listening")) === 1, 5_000, "listening for notifications");

/** Whether GetMe with this token is refused as revoked now. */
const revoked = (server: TestServer, token: string) => async () => {
  try {
    await server.auth().getMe({}, bearer(token));
    return false;
  } catch (error) {
    await unauthenticated(Promise.reject(error), "SESSION_REVOKED");
    return true;
  }
};

describe("caller cache: authenticated sessions served from memory, forgotten on every change", () => {
  let a: TestServer;
  let b: TestServer;
  before(async () => {
    a = await startTestServer();
    b = await startTestServer({}, { sameDatabaseAs: a });
    await Promise.all([listening(a), listening(b)]);
  });
  after(async () => {
    await b?.stop();
    await a?.stop();
  });

  test("a session seen once is answered from memory on the next calls", async () => {
    const user = await registerUser(a.auth());
    const hitsBefore = await metric(a, 'gatehouse_caller_cache_lookups_total{result="hit"}');
    for (let i = 0; i < 3; i++) assert.equal((await a.auth().getMe({}, bearer(user.tokens.accessToken))).user?.id, user.user.id);
    const hits = (await metric(a, 'gatehouse_caller_cache_lookups_total{result="hit"}')) - (Number.isNaN(hitsBefore) ? 0 : hitsBefore);
    assert.ok(hits >= 2, `the 2nd and 3rd GetMe were hits (counted ${hits})`);
  });

  test("the instance that ends a session refuses its token on the very next call", async () => {
    for (let i = 0; i < 10; i++) {
      const user = await registerUser(a.auth());
      await a.auth().getMe({}, bearer(user.tokens.accessToken)); // now cached
      await a.auth().logout({}, bearer(user.tokens.accessToken));
      await unauthenticated(a.auth().getMe({}, bearer(user.tokens.accessToken)), "SESSION_REVOKED");
    }
  });

  test("a logout on one instance ends the session on another that had it cached", async () => {
    const user = await registerUser(a.auth());
    await b.auth().getMe({}, bearer(user.tokens.accessToken));
    await b.auth().getMe({}, bearer(user.tokens.accessToken));
    await a.auth().logout({}, bearer(user.tokens.accessToken));
    // Bounded by notification delivery, far below the cache's 60 s lifetime.
    await eventually(revoked(b, user.tokens.accessToken), 2_000, "instance b refusing the logged-out token");
  });

  test("a change made in SQL by someone else (an operator, another tool) is seen: revocation and roles", async () => {
    const user = await registerUser(a.auth());
    await a.auth().getMe({}, bearer(user.tokens.accessToken));
    await a.sql("update users set roles = array['user', 'admin'] where id = $1", [user.user.id]);
    await eventually(
      async () => (await a.auth().getMe({}, bearer(user.tokens.accessToken))).user?.roles.includes("admin") === true,
      2_000,
      "GetMe showing the new role",
    );
    await a.sql("update sessions set revoke_time = now(), revoke_reason = 'logout' where id = $1", [user.tokens.sessionId]);
    await eventually(revoked(a, user.tokens.accessToken), 2_000, "the revoked session being refused");
  });

  test("when the notification connection is cut, the cache is dropped and nothing missed is served", async () => {
    const user = await registerUser(a.auth());
    await a.auth().getMe({}, bearer(user.tokens.accessToken));
    await a.sql("select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'gatehouse-listen' and datname = current_database()");
    // Revoked while (some of) the listeners may be gone: a lost notification must not leave the session cached.
    await a.sql("update sessions set revoke_time = now(), revoke_reason = 'logout' where id = $1", [user.tokens.sessionId]);
    await eventually(revoked(a, user.tokens.accessToken), 2_000, "the revoked session being refused");
    await eventually(revoked(b, user.tokens.accessToken), 2_000, "the revoked session being refused on b");
    await Promise.all([listening(a), listening(b)]);
  });
});

describe("caller cache rules", () => {
  const state = (userId: string, overrides: Partial<CallerState["session"]> = {}, disabled = false): CallerState => ({
    user: { id: userId, username: "u", email: "u@example.com", firstName: "", lastName: "", roles: ["user"], disabled, createTime: new Date(), updateTime: new Date() },
    session: { revoke_time: null, expire_time: new Date(Date.now() + 60_000), last_use_time: new Date(), ...overrides },
  });

  test("an answer read while any notification arrived is not kept", () => {
    const cache = createCallerCache({ isListening: () => true });
    const generation = cache.generation;
    cache.invalidate("s:00000000-0000-0000-0000-000000000001");
    cache.set("s1", state("u1"), generation, 0);
    assert.equal(cache.get("s1", "u1", 0), undefined);
    cache.set("s1", state("u1"), cache.generation, 0);
    assert.ok(cache.get("s1", "u1", 0));
  });

  test("a user notification drops every session of that user, and only theirs", () => {
    const cache = createCallerCache({ isListening: () => true });
    for (const [session, user] of [["s1", "u1"], ["s2", "u1"], ["s3", "u2"]] as const) cache.set(session, state(user), cache.generation, 0);
    cache.invalidate("u:u1");
    assert.equal(cache.get("s1", "u1", 0), undefined);
    assert.equal(cache.get("s2", "u1", 0), undefined);
    assert.ok(cache.get("s3", "u2", 0));
  });

  test("nothing is kept or served while not listening; revoked and disabled states are never kept", () => {
    let on = false;
    const cache = createCallerCache({ isListening: () => on });
    cache.set("s1", state("u1"), cache.generation, 0);
    assert.equal(cache.size, 0);
    on = true;
    cache.set("s1", state("u1"), cache.generation, 0);
    on = false;
    assert.equal(cache.get("s1", "u1", 0), undefined);
    on = true;
    cache.set("s2", state("u1", { revoke_time: new Date() }), cache.generation, 0);
    cache.set("s3", state("u1", {}, true), cache.generation, 0);
    assert.equal(cache.size, 0);
  });

  test("entries expire after the TTL, belong to one user, and the cache is bounded", () => {
    const cache = createCallerCache({ isListening: () => true, ttlMs: 1_000, maxEntries: 2 });
    cache.set("s1", state("u1"), cache.generation, 0);
    assert.equal(cache.get("s1", "someone-else", 0), undefined, "a token naming another user does not match");
    cache.set("s1", state("u1"), cache.generation, 0);
    assert.equal(cache.get("s1", "u1", 1_001), undefined);
    for (const session of ["a", "b", "c"]) cache.set(session, state("u1"), cache.generation, 0);
    assert.equal(cache.size, 2);
    assert.equal(cache.get("a", "u1", 0), undefined, "the oldest went first");
  });
});
