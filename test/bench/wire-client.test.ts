/**
 * The benchmark's own client (bench/load/wire-client.ts) counts a call as done only when the
 * server really answered it: these run it against a real server, over both protocols, for
 * answers, errors and a refresh chain.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { AuthService } from "../../gen/gatehouse/auth/v1/auth_pb.js";
import { UserService } from "../../gen/gatehouse/user/v1/user_pb.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { wireClients } from "../../bench/load/wire-client.ts";
import { startTestServer, type TestServer } from "../support/harness.ts";

const options = (headers: Record<string, string> = {}) => ({ timeoutMs: 10_000, headers });

describe("the benchmark's wire client", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.stop());

  for (const protocol of ["connect-json", "grpc"] as const) {
    test(`${protocol}: answers decode, the refresh chain rotates, errors carry their code`, async (t) => {
      const clients = wireClients(protocol, server.baseUrl, 2, AuthService, UserService);
      t.after(() => clients.close());
      const username = `wire-${protocol}`;
      const password = "a wire client password";
      const registered = await clients.auth.register(
        { username, email: `${username}@example.com`, password, firstName: "Wire", lastName: "Client" },
        options(),
      );
      assert.equal(registered.user?.username, username);

      const { tokens } = await clients.auth.login({ identifier: { case: "username", value: username }, password }, options());
      assert.ok(tokens?.refreshToken && tokens.accessToken);

      const me = await clients.auth.getMe({}, options({ authorization: `Bearer ${tokens.accessToken}` }));
      assert.equal(me.user?.id, registered.user?.id);
      const introspected = await clients.auth.introspect({ token: tokens.accessToken }, options());
      assert.equal(introspected.active, true);

      let refreshToken = tokens.refreshToken;
      for (let i = 0; i < 3; i++) {
        const next = await clients.auth.refresh({ refreshToken }, options());
        assert.ok(next.tokens?.refreshToken);
        assert.notEqual(next.tokens.refreshToken, refreshToken);
        refreshToken = next.tokens.refreshToken;
      }

      const unauthenticated = await clients.auth.getMe({}, options()).then(
        () => assert.fail("GetMe without a token must fail"),
        (error: unknown) => error,
      );
      assert.ok(unauthenticated instanceof ConnectError);
      assert.equal(unauthenticated.code, Code.Unauthenticated);
      assert.ok(unauthenticated.rawMessage.length > 0);

      const invalid = await clients.auth.register({ username: "x", email: "nope", password: "short" }, options()).then(
        () => assert.fail("an invalid Register must fail"),
        (error: unknown) => error,
      );
      assert.ok(invalid instanceof ConnectError);
      assert.equal(invalid.code, Code.InvalidArgument);
    });
  }

  test("a call to a server that is not there fails, never counts as answered", async (t) => {
    for (const protocol of ["connect-json", "grpc"] as const) {
      const clients = wireClients(protocol, "http://127.0.0.1:1", 1, AuthService, UserService);
      t.after(() => clients.close());
      const error = await clients.auth.introspect({ token: "t" }, options()).then(
        () => assert.fail("no server, no answer"),
        (e: unknown) => e,
      );
      assert.ok(error instanceof Error, protocol);
    }
  });
});
