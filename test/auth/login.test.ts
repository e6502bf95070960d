import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as argon2 from "argon2";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../src/platform/errors/error-details.ts";
import { postJson, startTestServer, type ProtocolName, type TestServer } from "../support/harness.ts";
import { bearer, PASSWORD, registerUser, rejects, uniqueIdentity, unauthenticated } from "./support.ts";

const PROTOCOLS: ProtocolName[] = ["connect-json", "grpc"];
const LOGIN = "/gatehouse.auth.v1.AuthService/Login";

describe("Login", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.stop());

  for (const protocol of PROTOCOLS) {
    test(`${protocol}: by email or by username, each starting a new session`, async () => {
      const auth = server.auth(protocol);
      const alice = await registerUser(auth);
      const byEmail = await auth.login({ identifier: { case: "email", value: alice.email.toUpperCase() }, password: PASSWORD });
      const byUsername = await auth.login({ identifier: { case: "username", value: alice.username.toUpperCase() }, password: PASSWORD });
      for (const res of [byEmail, byUsername]) {
        assert.equal(res.user?.id, alice.user.id);
        assert.equal((await auth.getMe({}, bearer(res.tokens!.accessToken))).user?.id, alice.user.id);
      }
      const sessions = new Set([alice.tokens.sessionId, byEmail.tokens!.sessionId, byUsername.tokens!.sessionId]);
      assert.equal(sessions.size, 3);
    });
  }

  test('plain JSON: {"email":…,"password":…} and {"username":…,"password":…}', async () => {
    const alice = await registerUser(server.auth());
    for (const body of [{ email: alice.email, password: PASSWORD }, { username: alice.username, password: PASSWORD }]) {
      const res = await postJson(server.baseUrl, LOGIN, body);
      assert.equal(res.status, 200, JSON.stringify(res.json));
      assert.equal((res.json.user as { id: string }).id, alice.user.id);
    }
    const neither = await postJson(server.baseUrl, LOGIN, { password: PASSWORD });
    assert.equal(neither.json.code, "invalid_argument");
  });

  test("records the sign-in time", async () => {
    const alice = await registerUser(server.auth());
    await server.sql("update users set last_login_time = '2000-01-01' where id = $1", [alice.user.id]);
    const res = await server.auth().login({ identifier: { case: "email", value: alice.email }, password: PASSWORD });
    assert.ok(Number(res.user?.lastLoginTime?.seconds) > Date.parse("2020-01-01") / 1000);
  });

  test("unknown user, wrong password, empty password, disabled user with a wrong password: one answer", async () => {
    const alice = await registerUser(server.auth());
    const disabled = await registerUser(server.auth());
    await server.sql("update users set disabled = true where id = $1", [disabled.user.id]);
    const answers: string[] = [];
    for (const protocol of PROTOCOLS) {
      const auth = server.auth(protocol);
      const attempts = [
        () => auth.login({ identifier: { case: "email", value: "nobody@example.com" }, password: PASSWORD }),
        () => auth.login({ identifier: { case: "username", value: "nobody" }, password: PASSWORD }),
        () => auth.login({ identifier: { case: "username", value: "not a valid username @@" }, password: PASSWORD }),
        () => auth.login({ identifier: { case: "email", value: alice.email }, password: `${PASSWORD}x` }),
        () => auth.login({ identifier: { case: "email", value: alice.email }, password: "" }),
        () => auth.login({ identifier: { case: "username", value: alice.username }, password: "" }),
        () => auth.login({ identifier: { case: "email", value: disabled.email }, password: "wrong wrong wrong" }),
      ];
      for (const attempt of attempts) {
        const error = await unauthenticated(attempt(), "INVALID_CREDENTIALS");
        answers.push(JSON.stringify([error.code, error.rawMessage, error.findDetails(ErrorInfoSchema).map((d) => [d.reason, d.domain, d.metadata])]));
      }
    }
    assert.equal(new Set(answers).size, 1, `every failure looks the same:\n${[...new Set(answers)].join("\n")}`);
  });

  test("a disabled user with the right password gets ACCOUNT_DISABLED, and no session", async () => {
    const bob = await registerUser(server.auth());
    await server.sql("update users set disabled = true where id = $1", [bob.user.id]);
    for (const protocol of PROTOCOLS) {
      await rejects(
        server.auth(protocol).login({ identifier: { case: "email", value: bob.email }, password: PASSWORD }),
        Code.PermissionDenied,
        "ACCOUNT_DISABLED",
      );
    }
    assert.equal((await server.sql("select 1 from sessions where user_id = $1", [bob.user.id])).length, 1, "only the sign-up session");
  });

  test("the same password typed in NFC and NFD both sign in, whichever form was registered", async () => {
    const nfc = "Crème brûlée à la café".normalize("NFC");
    const nfd = nfc.normalize("NFD");
    assert.notEqual(nfc, nfd);
    for (const registered of [nfc, nfd]) {
      const user = await registerUser(server.auth(), { password: registered });
      for (const password of [nfc, nfd]) {
        const res = await server.auth("grpc").login({ identifier: { case: "email", value: user.email }, password });
        assert.equal(res.user?.id, user.user.id, `registered ${registered === nfc ? "NFC" : "NFD"}, typed ${password === nfc ? "NFC" : "NFD"}`);
      }
    }
  });

  test("a hash made with other argon2 parameters is replaced on the next sign-in", async () => {
    const { username, email } = uniqueIdentity();
    const oldHash = await argon2.hash(PASSWORD, { type: argon2.argon2id, memoryCost: 2048, timeCost: 2, parallelism: 1 });
    const [user] = await server.sql<{ id: string }>(
      "insert into users (username, email, password_hash, roles) values ($1, $2, $3, '{user}') returning id",
      [username, email, oldHash],
    );
    await server.auth().login({ identifier: { case: "username", value: username }, password: PASSWORD });
    const [row] = await server.sql<{ password_hash: string }>("select password_hash from users where id = $1", [user!.id]);
    assert.notEqual(row!.password_hash, oldHash);
    assert.match(row!.password_hash, /^\$argon2id\$v=19\$m=1024,p=1,t=1\$/, `the configured parameters of the test server: ${row!.password_hash}`);
    assert.ok(await argon2.verify(row!.password_hash, PASSWORD));
    // A hash with the current parameters is left alone.
    await server.auth().login({ identifier: { case: "username", value: username }, password: PASSWORD });
    const [again] = await server.sql<{ password_hash: string }>("select password_hash from users where id = $1", [user!.id]);
    assert.equal(again!.password_hash, row!.password_hash);
  });

  test("a 1 MB password is refused before hashing", async () => {
    const alice = await registerUser(server.auth());
    const error = await server
      .auth()
      .login({ identifier: { case: "email", value: alice.email }, password: "x".repeat(1_000_000) })
      .then(() => assert.fail("expected an error"), (e: unknown) => ConnectError.from(e));
    assert.ok([Code.InvalidArgument, Code.ResourceExhausted].includes(error.code), Code[error.code]);
  });
});
