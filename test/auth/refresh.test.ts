import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { decodeJwt } from "jose";
import { deleteEndedSessions } from "../../src/sessions/session-store.ts";
import { createManualClock } from "../support/manual-clock.ts";
import { startTestServer, type ProtocolName, type TestServer } from "../support/harness.ts";
import { bearer, registerUser, unauthenticated } from "./support.ts";

const PROTOCOLS: ProtocolName[] = ["connect-json", "grpc"];
const DAY = 86_400_000;
const sha256 = (token: string) => createHash("sha256").update(token).digest();

async function liveRefreshTokens(server: TestServer, sessionId: string): Promise<number> {
  const rows = await server.sql("select 1 from refresh_tokens where session_id = $1 and rotate_time is null", [sessionId]);
  return rows.length;
}

describe("Refresh", () => {
  const clock = createManualClock();
  let server: TestServer;
  before(async () => {
    server = await startTestServer({}, { clock });
  });
  after(() => server.stop());

  test("refresh tokens are 256-bit opaque strings, stored only as their SHA-256", async () => {
    const alice = await registerUser(server.auth());
    assert.match(alice.tokens.refreshToken, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(alice.tokens.refreshToken, "base64url").length, 32);
    const rows = await server.sql<{ token_hash: Buffer }>("select token_hash from refresh_tokens where session_id = $1", [alice.tokens.sessionId]);
    assert.deepEqual(rows.map((r) => r.token_hash), [sha256(alice.tokens.refreshToken)]);
    const dump = JSON.stringify(await server.sql("select * from refresh_tokens")) + JSON.stringify(await server.sql("select * from sessions"));
    assert.ok(!dump.includes(alice.tokens.refreshToken), "the token itself is nowhere in the database");
  });

  for (const protocol of PROTOCOLS) {
    test(`${protocol}: every refresh rotates; a 200-step chain stays one session with one live token`, async () => {
      const auth = server.auth(protocol);
      const alice = await registerUser(auth);
      let tokens = alice.tokens;
      const seen = new Set([tokens.refreshToken]);
      for (let step = 0; step < 200; step++) {
        clock.advance(1_000);
        const res = await auth.refresh({ refreshToken: tokens.refreshToken });
        assert.ok(res.tokens);
        assert.equal(res.tokens.sessionId, alice.tokens.sessionId);
        assert.ok(!seen.has(res.tokens.refreshToken), "a new refresh token every time");
        seen.add(res.tokens.refreshToken);
        tokens = res.tokens;
      }
      assert.equal(decodeJwt(tokens.accessToken).sid, alice.tokens.sessionId);
      assert.equal((await auth.getMe({}, bearer(tokens.accessToken))).user?.id, alice.user.id);
      assert.equal(await liveRefreshTokens(server, alice.tokens.sessionId), 1);
      const all = await server.sql("select 1 from refresh_tokens where session_id = $1", [alice.tokens.sessionId]);
      assert.equal(all.length, 201);
    });
  }

  test("a rotated token presented again after the grace window revokes the whole session, the newest token too", async () => {
    for (const protocol of PROTOCOLS) {
      const auth = server.auth(protocol);
      const alice = await registerUser(auth);
      const second = (await auth.refresh({ refreshToken: alice.tokens.refreshToken })).tokens!;
      const third = (await auth.refresh({ refreshToken: second.refreshToken })).tokens!;
      clock.advance(10_001);
      await unauthenticated(auth.refresh({ refreshToken: alice.tokens.refreshToken }), "REFRESH_TOKEN_REUSED");
      await unauthenticated(auth.refresh({ refreshToken: third.refreshToken }), "SESSION_REVOKED");
      await unauthenticated(auth.getMe({}, bearer(third.accessToken)), "SESSION_REVOKED");
      const [session] = await server.sql<{ revoke_reason: string }>("select revoke_reason from sessions where id = $1", [alice.tokens.sessionId]);
      assert.equal(session!.revoke_reason, "refresh_token_reused");
      // Other sessions of the same user are untouched.
      const other = await auth.login({ identifier: { case: "email", value: alice.email }, password: alice.password });
      assert.ok((await auth.refresh({ refreshToken: other.tokens!.refreshToken })).tokens);
    }
  });

  test("within the grace window a duplicate is refused without revoking: the winner's tokens keep working", async () => {
    const auth = server.auth();
    const alice = await registerUser(auth);
    const winner = (await auth.refresh({ refreshToken: alice.tokens.refreshToken })).tokens!;
    clock.advance(9_000);
    const error = await unauthenticated(auth.refresh({ refreshToken: alice.tokens.refreshToken }), "TOKEN_INVALID");
    assert.match(error.rawMessage, /a moment ago/);
    assert.equal((await auth.getMe({}, bearer(winner.accessToken))).user?.id, alice.user.id);
    assert.ok((await auth.refresh({ refreshToken: winner.refreshToken })).tokens);
  });

  test("20 concurrent refreshes with one token: one wins, none fails with a 5xx, no fork", async () => {
    for (const protocol of PROTOCOLS) {
      const auth = server.auth(protocol);
      const alice = await registerUser(auth);
      const results = await Promise.allSettled(Array.from({ length: 20 }, () => auth.refresh({ refreshToken: alice.tokens.refreshToken })));
      const won = results.filter((r) => r.status === "fulfilled");
      assert.equal(won.length, 1, `${protocol}: exactly one refresh succeeds`);
      for (const result of results) {
        if (result.status === "rejected") {
          const error = ConnectError.from(result.reason);
          assert.equal(error.code, Code.Unauthenticated, `${protocol}: ${error.message}`);
        }
      }
      assert.equal(await liveRefreshTokens(server, alice.tokens.sessionId), 1, "at most one refresh token of the session is valid");
      const winner = won[0]!.value.tokens!;
      assert.ok((await auth.refresh({ refreshToken: winner.refreshToken })).tokens, "the winner's token works");
    }
  });

  test("the session lives at most 30 days from sign-in, however often it is refreshed", async () => {
    const auth = server.auth("grpc");
    const alice = await registerUser(auth);
    const signIn = clock.now().getTime();
    let tokens = alice.tokens;
    for (let day = 6; day < 30; day += 6) {
      clock.set(new Date(signIn + day * DAY));
      tokens = (await auth.refresh({ refreshToken: tokens.refreshToken })).tokens!;
      assert.ok(Number(tokens.refreshTokenExpireTime!.seconds) <= (signIn + 30 * DAY) / 1000, "never beyond the absolute end");
    }
    clock.set(new Date(signIn + 30 * DAY - 60_000));
    tokens = (await auth.refresh({ refreshToken: tokens.refreshToken })).tokens!;
    assert.ok(decodeJwt(tokens.accessToken).exp! <= (signIn + 30 * DAY) / 1000, "the access token ends with the session");
    clock.set(new Date(signIn + 30 * DAY + 1));
    await unauthenticated(auth.refresh({ refreshToken: tokens.refreshToken }), "TOKEN_EXPIRED");
  });

  test("the session ends after 7 idle days", async () => {
    const auth = server.auth();
    const alice = await registerUser(auth);
    const refreshed = (await auth.refresh({ refreshToken: alice.tokens.refreshToken })).tokens!;
    assert.equal(Number(refreshed.refreshTokenExpireTime!.seconds), Math.floor((clock.now().getTime() + 7 * DAY) / 1000));
    clock.advance(7 * DAY);
    await unauthenticated(auth.refresh({ refreshToken: refreshed.refreshToken }), "TOKEN_EXPIRED");
    await unauthenticated(auth.listSessions({}, bearer(refreshed.accessToken)), "TOKEN_EXPIRED");
  });

  test("unknown, malformed and wrong-kind tokens are TOKEN_INVALID", async () => {
    const alice = await registerUser(server.auth());
    for (const protocol of PROTOCOLS) {
      const auth = server.auth(protocol);
      for (const refreshToken of ["", "short", "A".repeat(43), `${alice.tokens.refreshToken}A`, alice.tokens.accessToken, "%".repeat(43)]) {
        await unauthenticated(auth.refresh({ refreshToken }), "TOKEN_INVALID");
      }
    }
  });

  test("a disabled user's refresh token no longer works", async () => {
    const alice = await registerUser(server.auth());
    await server.sql("update users set disabled = true where id = $1", [alice.user.id]);
    await unauthenticated(server.auth().refresh({ refreshToken: alice.tokens.refreshToken }), "SESSION_REVOKED");
  });

  test("a deleted user's refresh token no longer works", async () => {
    const alice = await registerUser(server.auth());
    await server.sql("delete from users where id = $1", [alice.user.id]);
    await unauthenticated(server.auth().refresh({ refreshToken: alice.tokens.refreshToken }), "TOKEN_INVALID");
  });
});

describe("Refresh with the grace window disabled", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ GATEHOUSE_REFRESH_REUSE_GRACE: "0s" });
  });
  after(() => server.stop());

  test("an immediate duplicate is reuse", async () => {
    const auth = server.auth("grpc");
    const alice = await registerUser(auth);
    const next = (await auth.refresh({ refreshToken: alice.tokens.refreshToken })).tokens!;
    await unauthenticated(auth.refresh({ refreshToken: alice.tokens.refreshToken }), "REFRESH_TOKEN_REUSED");
    await unauthenticated(auth.refresh({ refreshToken: next.refreshToken }), "SESSION_REVOKED");
  });

  test("20 concurrent refreshes: never a 5xx, and afterwards no refresh token of the session works", async () => {
    const auth = server.auth();
    const alice = await registerUser(auth);
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => auth.refresh({ refreshToken: alice.tokens.refreshToken })));
    assert.ok(results.filter((r) => r.status === "fulfilled").length <= 1);
    for (const result of results) {
      if (result.status === "rejected") {
        const error = ConnectError.from(result.reason);
        assert.equal(error.code, Code.Unauthenticated, error.message);
      } else {
        await unauthenticated(auth.refresh({ refreshToken: result.value.tokens!.refreshToken }), "SESSION_REVOKED");
      }
    }
  });
});

describe("cleanup of ended sessions", () => {
  const clock = createManualClock();
  let server: TestServer;
  before(async () => {
    server = await startTestServer({}, { clock });
  });
  after(() => server.stop());

  test("expired, idle and long-revoked sessions are deleted with their refresh tokens; live ones stay", async () => {
    const db = () => server.gatehouse.orm.em.getConnection().getClient();
    const lifetimes = { sessionTtlMs: 30 * DAY, sessionIdleTtlMs: 7 * DAY };
    const idle = await registerUser(server.auth());
    clock.advance(6 * DAY);
    const live = await registerUser(server.auth());
    const revoked = await registerUser(server.auth());
    await server.auth().logout({}, bearer(revoked.tokens.accessToken));
    assert.equal(await deleteEndedSessions(db(), { now: clock.now(), lifetimes }), 0, "nothing has ended long enough yet");

    clock.advance(DAY + 1);
    assert.equal(await deleteEndedSessions(db(), { now: clock.now(), lifetimes }), 2, "the idle one, and the one revoked over a day ago");
    const left = await server.sql<{ id: string }>("select id from sessions");
    assert.deepEqual(left.map((r) => r.id), [live.tokens.sessionId]);
    assert.equal((await server.sql("select 1 from refresh_tokens where session_id <> $1", [live.tokens.sessionId])).length, 0);
    await unauthenticated(server.auth().refresh({ refreshToken: idle.tokens.refreshToken }), "TOKEN_INVALID");
    assert.ok((await server.auth().refresh({ refreshToken: live.tokens.refreshToken })).tokens);
  });
});
