import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { createManualClock } from "../support/manual-clock.ts";
import { postJson, startTestServer, type ProtocolName, type TestServer } from "../support/harness.ts";
import { bearer, PASSWORD, registerUser, rejects, unauthenticated, type RegisteredUser } from "./support.ts";

const PROTOCOLS: ProtocolName[] = ["connect-json", "grpc"];

describe("sessions: logout, logout everywhere, password change, listing, revoking, introspection", () => {
  const clock = createManualClock();
  let server: TestServer;
  before(async () => {
    server = await startTestServer({}, { clock });
  });
  after(() => server.stop());

  /** A user signed in on `count` devices (the sign-up session plus logins), each with its own user agent. */
  async function onDevices(count: number, protocol: ProtocolName = "connect-json") {
    const user = await registerUser(server.auth(protocol));
    const devices = [user.tokens];
    for (let i = 1; i < count; i++) {
      clock.advance(1_000);
      const res = await server.auth(protocol).login({ identifier: { case: "email", value: user.email }, password: PASSWORD });
      devices.push(res.tokens!);
    }
    return { user, devices };
  }

  async function stillWorks(user: RegisteredUser, tokens: { accessToken: string; refreshToken: string }) {
    assert.equal((await server.auth().getMe({}, bearer(tokens.accessToken))).user?.id, user.user.id);
  }

  for (const protocol of PROTOCOLS) {
    test(`${protocol}: Logout ends the session: its access token and its refresh token both stop working`, async () => {
      const auth = server.auth(protocol);
      const { user, devices } = await onDevices(2, protocol);
      const [phone, laptop] = devices;
      await auth.logout({ refreshToken: phone!.refreshToken }, bearer(phone!.accessToken));
      await unauthenticated(auth.getMe({}, bearer(phone!.accessToken)), "SESSION_REVOKED");
      await unauthenticated(auth.refresh({ refreshToken: phone!.refreshToken }), "SESSION_REVOKED");
      await stillWorks(user, laptop!);
      // The refresh token is optional.
      await auth.logout({}, bearer(laptop!.accessToken));
      await unauthenticated(auth.refresh({ refreshToken: laptop!.refreshToken }), "SESSION_REVOKED");
    });

    test(`${protocol}: LogoutAll with a wrong password changes nothing; with the right one it ends every session`, async () => {
      const auth = server.auth(protocol);
      const { user, devices } = await onDevices(3, protocol);
      await unauthenticated(auth.logoutAll({ password: "not the password" }, bearer(devices[0]!.accessToken)), "INVALID_CREDENTIALS");
      for (const tokens of devices) await stillWorks(user, tokens);
      const live = await server.sql("select 1 from sessions where user_id = $1 and revoke_time is null", [user.user.id]);
      assert.equal(live.length, 3);

      const res = await auth.logoutAll({ password: PASSWORD }, bearer(devices[1]!.accessToken));
      assert.equal(res.revokedSessions, 3);
      for (const tokens of devices) {
        await unauthenticated(auth.getMe({}, bearer(tokens.accessToken)), "SESSION_REVOKED");
        await unauthenticated(auth.refresh({ refreshToken: tokens.refreshToken }), "SESSION_REVOKED");
      }
    });

    test(`${protocol}: ChangePassword ends every other session and returns new tokens; old ones stop working`, async () => {
      const auth = server.auth(protocol);
      const { user, devices } = await onDevices(2, protocol);
      const [current, other] = devices;
      await unauthenticated(
        auth.changePassword({ currentPassword: "wrong password!", newPassword: "a brand new passphrase" }, bearer(current!.accessToken)),
        "INVALID_CREDENTIALS",
      );
      await rejects(
        auth.changePassword({ currentPassword: PASSWORD, newPassword: "password123" }, bearer(current!.accessToken)),
        Code.InvalidArgument,
        "WEAK_PASSWORD",
      );
      await rejects(
        auth.changePassword({ currentPassword: PASSWORD, newPassword: user.username }, bearer(current!.accessToken)),
        Code.InvalidArgument,
        "WEAK_PASSWORD",
      );
      for (const tokens of devices) await stillWorks(user, tokens);

      const res = await auth.changePassword({ currentPassword: PASSWORD, newPassword: "a brand new passphrase" }, bearer(current!.accessToken));
      const fresh = res.tokens!;
      await stillWorks(user, fresh);
      assert.ok((await auth.refresh({ refreshToken: fresh.refreshToken })).tokens);
      for (const tokens of [current!, other!]) {
        await unauthenticated(auth.getMe({}, bearer(tokens.accessToken)), "SESSION_REVOKED");
        await unauthenticated(auth.refresh({ refreshToken: tokens.refreshToken }), "SESSION_REVOKED");
      }
      await unauthenticated(auth.login({ identifier: { case: "email", value: user.email }, password: PASSWORD }), "INVALID_CREDENTIALS");
      assert.ok((await auth.login({ identifier: { case: "email", value: user.email }, password: "a brand new passphrase" })).tokens);
    });

    test(`${protocol}: ListSessions shows the live sessions, most recently used first, and marks the current one`, async () => {
      const auth = server.auth(protocol);
      const { devices } = await onDevices(3, protocol);
      await auth.logout({}, bearer(devices[2]!.accessToken));
      clock.advance(60_000);
      await auth.refresh({ refreshToken: devices[0]!.refreshToken });
      const res = await auth.listSessions({}, bearer(devices[1]!.accessToken));
      assert.deepEqual(
        res.sessions.map((s) => [s.id, s.current]),
        [
          [devices[0]!.sessionId, false],
          [devices[1]!.sessionId, true],
        ],
      );
      for (const session of res.sessions) {
        assert.ok(session.createTime && session.lastUseTime && session.expireTime);
        assert.equal(session.ipAddress, "127.0.0.1");
      }
      assert.ok(Number(res.sessions[0]!.lastUseTime!.seconds) > Number(res.sessions[1]!.lastUseTime!.seconds));
    });

    test(`${protocol}: a refresh records the session's last use and client, at most once a minute`, async () => {
      const auth = server.auth(protocol);
      const alice = await registerUser(auth);
      const seconds = (ms: number) => Math.floor(ms / 1000);
      const lastUse = async (accessToken: string) => {
        const [session, ...others] = (await auth.listSessions({}, bearer(accessToken))).sessions;
        assert.equal(others.length, 0);
        return { seconds: Number(session!.lastUseTime!.seconds), userAgent: session!.userAgent };
      };
      const signUp = await lastUse(alice.tokens.accessToken);
      assert.equal(signUp.seconds, seconds(clock.now().getTime()));
      const phone = (version: number) => ({ headers: { "user-agent": `Gatehouse test phone/${version} (${protocol})` } });

      clock.advance(30_000);
      let tokens = (await auth.refresh({ refreshToken: alice.tokens.refreshToken }, phone(1))).tokens!;
      assert.deepEqual(await lastUse(tokens.accessToken), signUp, "half a minute later: not recorded again yet");
      assert.equal(Number(tokens.refreshTokenExpireTime!.seconds), signUp.seconds + (7 * 86_400), "idle time counts from the recorded use");

      clock.advance(30_000);
      tokens = (await auth.refresh({ refreshToken: tokens.refreshToken }, phone(2))).tokens!;
      assert.deepEqual(await lastUse(tokens.accessToken), { seconds: seconds(clock.now().getTime()), userAgent: phone(2).headers["user-agent"] });
      assert.equal(Number(tokens.refreshTokenExpireTime!.seconds), seconds(clock.now().getTime() + 7 * 86_400_000));
    });

    test(`${protocol}: RevokeSession ends one of the caller's sessions; others' sessions are SESSION_NOT_FOUND`, async () => {
      const auth = server.auth(protocol);
      const { user, devices } = await onDevices(3, protocol);
      const mallory = await registerUser(auth);
      await auth.revokeSession({ sessionId: devices[1]!.sessionId }, bearer(devices[0]!.accessToken));
      await unauthenticated(auth.getMe({}, bearer(devices[1]!.accessToken)), "SESSION_REVOKED");
      await stillWorks(user, devices[2]!);

      for (const sessionId of [devices[1]!.sessionId, mallory.tokens.sessionId, crypto.randomUUID()]) {
        await rejects(auth.revokeSession({ sessionId }, bearer(devices[0]!.accessToken)), Code.NotFound, "SESSION_NOT_FOUND");
      }
      await stillWorks(mallory, mallory.tokens);
      // Mallory cannot end Alice's session either.
      await rejects(auth.revokeSession({ sessionId: devices[2]!.sessionId }, bearer(mallory.tokens.accessToken)), Code.NotFound, "SESSION_NOT_FOUND");
      await stillWorks(user, devices[2]!);

      await rejects(auth.revokeSession({ sessionId: "not-a-uuid" }, bearer(devices[0]!.accessToken)), Code.InvalidArgument, "VALIDATION_FAILED");
      // The current session may be ended too: like Logout.
      await auth.revokeSession({ sessionId: devices[0]!.sessionId }, bearer(devices[0]!.accessToken));
      await unauthenticated(auth.getMe({}, bearer(devices[0]!.accessToken)), "SESSION_REVOKED");
    });

    test(`${protocol}: Introspect says active with the current roles, and inactive for anything else`, async () => {
      const auth = server.auth(protocol);
      const alice = await registerUser(auth);
      const res = await auth.introspect({ token: alice.tokens.accessToken });
      assert.equal(res.active, true);
      assert.equal(res.sub, alice.user.id);
      assert.equal(res.sid, alice.tokens.sessionId);
      assert.deepEqual(res.roles, ["user"]);
      assert.equal(Number(res.exp?.seconds), Number(alice.tokens.accessTokenExpireTime?.seconds));
      for (const token of ["garbage", alice.tokens.refreshToken, `${alice.tokens.accessToken}x`]) {
        const inactive = await auth.introspect({ token });
        assert.deepEqual([inactive.active, inactive.sub, inactive.sid, inactive.roles, inactive.exp], [false, "", "", [], undefined]);
      }
      await auth.logout({}, bearer(alice.tokens.accessToken));
      assert.equal((await auth.introspect({ token: alice.tokens.accessToken })).active, false);
    });

    test(`${protocol}: GetMe returns the caller's own profile`, async () => {
      const auth = server.auth(protocol);
      const alice = await registerUser(auth);
      const me = await auth.getMe({}, bearer(alice.tokens.accessToken));
      assert.deepEqual(
        [me.user?.id, me.user?.username, me.user?.email, me.user?.firstName, me.user?.lastName, me.user?.roles],
        [alice.user.id, alice.username, alice.email, "Test", "User", ["user"]],
      );
    });
  }

  test("every protected method refuses a call without a token", async () => {
    const auth = server.auth();
    await unauthenticated(auth.logout({}), "TOKEN_MISSING");
    await unauthenticated(auth.logoutAll({ password: PASSWORD }), "TOKEN_MISSING");
    await unauthenticated(auth.getMe({}), "TOKEN_MISSING");
    await unauthenticated(auth.changePassword({ currentPassword: PASSWORD, newPassword: "whatever it is now" }), "TOKEN_MISSING");
    await unauthenticated(auth.listSessions({}), "TOKEN_MISSING");
    await unauthenticated(auth.revokeSession({ sessionId: crypto.randomUUID() }), "TOKEN_MISSING");
  });

  test("Introspect never works through Connect GET: a token never travels in a URL", async () => {
    const alice = await registerUser(server.auth());
    const message = encodeURIComponent(JSON.stringify({ token: alice.tokens.accessToken }));
    const res = await fetch(`${server.baseUrl}/gatehouse.auth.v1.AuthService/Introspect?encoding=json&message=${message}`);
    assert.notEqual(res.status, 200);
    const body = await res.text();
    assert.ok(!body.includes('"active"'), body);
  });

  test("no response, JSON or binary, ever contains a password hash or a refresh-token hash", async () => {
    const alice = await registerUser(server.auth());
    const login = { email: alice.email, password: PASSWORD };
    const bodies: string[] = [];
    const call = async (method: string, body: object, token?: string) => {
      const res = await postJson(server.baseUrl, `/gatehouse.auth.v1.AuthService/${method}`, body, token ? { authorization: `Bearer ${token}` } : {});
      bodies.push(JSON.stringify(res.json));
      return res.json;
    };
    const signedIn = (await call("Login", login)) as { tokens: { accessToken: string; refreshToken: string } };
    const refreshed = (await call("Refresh", { refreshToken: signedIn.tokens.refreshToken })) as { tokens: { accessToken: string } };
    const access = refreshed.tokens.accessToken;
    await call("GetMe", {}, access);
    await call("ListSessions", {}, access);
    await call("Introspect", { token: access });
    await call("Login", { ...login, password: "wrong password" });
    await call("Refresh", { refreshToken: signedIn.tokens.refreshToken });
    // The binary protocol too, as raw bytes.
    for (const method of ["GetMe", "ListSessions"]) {
      const res = await fetch(`${server.baseUrl}/gatehouse.auth.v1.AuthService/${method}`, {
        method: "POST",
        headers: { "content-type": "application/proto", authorization: `Bearer ${access}` },
        body: new Uint8Array(),
      });
      assert.equal(res.status, 200);
      bodies.push(Buffer.from(await res.arrayBuffer()).toString("latin1"));
    }
    const haystack = bodies.join("\n");
    assert.ok(!/\$argon2/.test(haystack), "no argon2 hash");
    const secrets = [
      ...(await server.sql<{ password_hash: string }>("select password_hash from users")).map((r) => r.password_hash),
      ...(await server.sql<{ h: string; b: string }>("select encode(token_hash, 'hex') as h, encode(token_hash, 'base64') as b from refresh_tokens")).flatMap(
        (r) => [r.h, r.b, Buffer.from(r.b, "base64").toString("base64url"), Buffer.from(r.b, "base64").toString("latin1")],
      ),
    ];
    assert.ok(secrets.length > 3);
    for (const secret of secrets) assert.ok(!haystack.includes(secret), "a stored hash appeared in a response");
  });
});
