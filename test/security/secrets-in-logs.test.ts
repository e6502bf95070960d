import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ConnectError, createClient } from "@connectrpc/connect";
import { AuthService } from "../../gen/gatehouse/auth/v1/auth_pb.js";
import { UserService } from "../../gen/gatehouse/user/v1/user_pb.js";
import { createTestDatabase, makeTransport, startTestServer, type ProtocolName } from "../support/harness.ts";
import { spawnGatehouse } from "../support/process.ts";

/**
 * A full run — sign-up, sign-in (right and wrong), refresh and a replayed refresh token, password
 * change, an invitation created and used, an admin's SetPassword and CreateUser, introspection,
 * logout-all — with logging at `trace`, then every secret it used is looked for in what the
 * server wrote: none may appear. Once in-process (the harness's captured lines) and once as a
 * spawned `gatehouse serve` (its stdout and stderr).
 */

const ADMIN = { username: "logadmin", email: "logadmin@example.com", password: "tangerine glacier sings twice" };
const BOOTSTRAP = {
  GATEHOUSE_BOOTSTRAP_ADMIN_EMAIL: ADMIN.email,
  GATEHOUSE_BOOTSTRAP_ADMIN_USERNAME: ADMIN.username,
  GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD: ADMIN.password,
};

/** Runs the whole flow against `baseUrl` over `protocol`; returns every secret it sent or received. */
async function fullFlow(baseUrl: string, protocol: ProtocolName, tag: string): Promise<string[]> {
  const transport = makeTransport(protocol, baseUrl);
  const auth = createClient(AuthService, transport);
  const users = createClient(UserService, transport);
  const secrets: string[] = [ADMIN.password];
  const keep = (...values: (string | undefined)[]) => {
    for (const value of values) if (value) secrets.push(value);
  };
  const as = (token: string) => ({ headers: { authorization: `Bearer ${token}`, "x-request-id": `flow-${tag}` } });
  const refused = (call: Promise<unknown>) => call.then(() => assert.fail("expected a refusal"), (e: unknown) => ConnectError.from(e));

  const password = `first secret passphrase ${tag}`;
  const username = `log${tag}`;
  const email = `log${tag}@example.com`;
  keep(password);
  const registered = await auth.register({ username, email, password, firstName: "Log", lastName: "Flow" });
  keep(registered.tokens?.accessToken, registered.tokens?.refreshToken);

  const wrong = `wrong secret passphrase ${tag}`;
  keep(wrong);
  await refused(auth.login({ identifier: { case: "email", value: email }, password: wrong }));
  const signedIn = await auth.login({ identifier: { case: "username", value: username }, password });
  keep(signedIn.tokens?.accessToken, signedIn.tokens?.refreshToken);

  const refreshed = await auth.refresh({ refreshToken: signedIn.tokens!.refreshToken });
  keep(refreshed.tokens?.accessToken, refreshed.tokens?.refreshToken);
  // The rotated token again: refused (within the grace window without revoking the session).
  await refused(auth.refresh({ refreshToken: signedIn.tokens!.refreshToken }));

  await auth.introspect({ token: refreshed.tokens!.accessToken });
  await auth.getMe({}, as(refreshed.tokens!.accessToken));
  const garbage = `garbage.${tag}.token`;
  keep(garbage);
  await refused(auth.getMe({}, as(garbage)));

  const second = `second secret passphrase ${tag}`;
  keep(second);
  const changed = await auth.changePassword({ currentPassword: password, newPassword: second }, as(refreshed.tokens!.accessToken));
  keep(changed.tokens?.accessToken, changed.tokens?.refreshToken);

  const admin = await auth.login({ identifier: { case: "email", value: ADMIN.email }, password: ADMIN.password });
  keep(admin.tokens?.accessToken, admin.tokens?.refreshToken);
  const { invitation } = await users.createInvitation(
    { roles: ["user"], maxUses: 1, expireTime: timestampFromDate(new Date(Date.now() + 86_400_000)) },
    as(admin.tokens!.accessToken),
  );
  keep(invitation?.code);
  const invitedPassword = `invited secret passphrase ${tag}`;
  keep(invitedPassword);
  const invited = await auth.register({
    username: `inv${tag}`,
    email: `inv${tag}@example.com`,
    password: invitedPassword,
    invitationCode: invitation!.code,
  });
  keep(invited.tokens?.accessToken, invited.tokens?.refreshToken);

  const reset = `reset secret passphrase ${tag}`;
  keep(reset);
  await users.setPassword({ id: invited.user!.id, password: reset }, as(admin.tokens!.accessToken));
  const created = `created secret passphrase ${tag}`;
  keep(created);
  await users.createUser({ user: { username: `made${tag}`, email: `made${tag}@example.com` }, password: created }, as(admin.tokens!.accessToken));

  await auth.logoutAll({ password: second }, as(changed.tokens!.accessToken));
  return secrets;
}

/** Every secret, and each JWT's signature on its own (a log that cut a token short would still leak it). */
function needles(secrets: string[]): string[] {
  const parts = secrets.flatMap((secret) => (secret.split(".").length === 3 ? [secret, secret.split(".")[2]!] : [secret]));
  return [...new Set(parts)].filter((part) => part.length >= 8);
}

function assertNoSecret(output: string, secrets: string[], where: string): void {
  assert.ok(output.length > 0, `${where}: something was logged`);
  for (const needle of needles(secrets)) {
    assert.ok(!output.includes(needle), `${where}: a secret appears in the logs: ${needle.slice(0, 12)}…`);
  }
  assert.doesNotMatch(output, /\$argon2/i, `${where}: a password hash appears in the logs`);
  assert.doesNotMatch(output, /"authorization":"(?!\[redacted\])/i, `${where}: an Authorization header appears in the logs`);
}

describe("no secret in the logs", () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  test("in-process: a full flow over Connect and gRPC, logged at trace, leaves no secret in the captured lines", async () => {
    const server = await startTestServer({ ...BOOTSTRAP, GATEHOUSE_LOG_LEVEL: "trace" });
    cleanups.push(() => server.stop());
    const secrets = [...(await fullFlow(server.baseUrl, "connect-json", "a")), ...(await fullFlow(server.baseUrl, "grpc", "b"))];
    const databasePassword = decodeURIComponent(new URL(server.databaseUrl).password);
    assertNoSecret(JSON.stringify(server.logs), [...secrets, databasePassword], "captured logs");

    // And what is logged per call is what an operator needs.
    const calls = server.logs.filter((line) => line.msg === "call");
    assert.ok(calls.length >= 30, `one line per call (${calls.length})`);
    for (const line of calls) {
      assert.equal(typeof line.requestId, "string");
      assert.match(String(line.procedure), /^gatehouse\.(auth|user)\.v1\.\w+Service\/\w+$/);
      assert.equal(typeof line.code, "string");
      assert.equal(typeof line.ms, "number");
      assert.match(String(line.ip), /^(127\.0\.0\.1|::1|::ffff:127\.0\.0\.1)$/);
      for (const field of ["body", "message", "headers", "request", "response"]) assert.equal(line[field], undefined, `no ${field} in a call line`);
    }
    assert.ok(calls.some((line) => line.requestId === "flow-a"), "a caller's x-request-id is kept");
    assert.ok(calls.some((line) => line.code === "unauthenticated"));
  });

  test("a spawned `gatehouse serve`: its stdout and stderr hold no secret either", async () => {
    const db = await createTestDatabase();
    cleanups.push(db.drop);
    const proc = await spawnGatehouse({
      ...BOOTSTRAP,
      DATABASE_URL: db.url,
      GATEHOUSE_LOG_LEVEL: "trace",
      GATEHOUSE_ARGON2_MEMORY_KIB: "1024",
      GATEHOUSE_ARGON2_ITERATIONS: "1",
    });
    let secrets: string[];
    try {
      secrets = await fullFlow(`http://127.0.0.1:${proc.port}`, "connect-json", "c");
    } finally {
      assert.equal(await proc.stop(), 0);
    }
    assertNoSecret(proc.output(), [...secrets, decodeURIComponent(new URL(db.url).password)], "process output");
    assert.match(proc.output(), /"msg":"call"/);
  });
});
