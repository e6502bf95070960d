import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { postJson, startTestServer, type ProtocolName, type TestServer } from "../support/harness.ts";
import { bearer, PASSWORD, rejects, uniqueIdentity } from "./support.ts";

const PROTOCOLS: ProtocolName[] = ["connect-json", "grpc"];
const REGISTER = "/gatehouse.auth.v1.AuthService/Register";

function invalid(call: Promise<unknown>, reason: string) {
  return rejects(call, Code.InvalidArgument, reason);
}

/** Creates an invitation directly in the database, as CreateInvitation would; returns its code. */
async function invitation(
  server: TestServer,
  options: { roles?: string[]; email?: string; maxUses?: number; expireInMs?: number } = {},
): Promise<string> {
  const code = `code-${crypto.randomUUID()}`;
  await server.sql(
    "insert into invitations (code_hash, roles, email, max_uses, expire_time) values ($1, $2, $3, $4, now() + $5 * interval '1 millisecond')",
    [createHash("sha256").update(code).digest(), options.roles ?? [], options.email ?? null, options.maxUses ?? 1, options.expireInMs ?? 86_400_000],
  );
  return code;
}

describe("Register in open mode (the default)", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.stop());

  for (const protocol of PROTOCOLS) {
    test(`${protocol}: signs the new user up and in, with the role \`user\``, async () => {
      const auth = server.auth(protocol);
      const { username, email } = uniqueIdentity();
      const res = await auth.register({ username, email, password: PASSWORD, passwordConfirmation: PASSWORD, firstName: "Ada", lastName: "L" });
      assert.equal(res.user?.username, username);
      assert.equal(res.user?.email, email);
      assert.equal(res.user?.firstName, "Ada");
      assert.deepEqual(res.user?.roles, ["user"]);
      assert.equal(res.user?.disabled, false);
      assert.ok(res.user?.createTime && res.user.lastLoginTime, "create and sign-in times are set");
      assert.equal(res.tokens?.tokenType, "Bearer");
      const me = await auth.getMe({}, bearer(res.tokens!.accessToken));
      assert.equal(me.user?.id, res.user?.id);
      const [row] = await server.sql<{ password_hash: string }>("select password_hash from users where id = $1", [res.user!.id]);
      assert.match(row!.password_hash, /^\$argon2id\$/, "argon2id, never the password");
    });
  }

  test("the same email in another case is EMAIL_TAKEN", async () => {
    const auth = server.auth();
    const suffix = uniqueIdentity().username;
    await auth.register({ username: `${suffix}a`, email: `Bob.${suffix}@Example.com`, password: PASSWORD });
    const [row] = await server.sql<{ email: string }>("select email from users where username = $1", [`${suffix}a`]);
    assert.equal(row!.email, `bob.${suffix}@example.com`, "stored normalised");
    for (const protocol of PROTOCOLS) {
      await rejects(
        server.auth(protocol).register({ username: `${suffix}b`, email: `bob.${suffix}@example.COM`, password: PASSWORD }),
        Code.AlreadyExists,
        "EMAIL_TAKEN",
      );
    }
  });

  test("20 parallel registrations of one email create one user; the rest get EMAIL_TAKEN, never a 5xx", async () => {
    const email = `${uniqueIdentity("para").username}@example.com`;
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        server.auth(i % 2 ? "grpc" : "connect-json").register({ username: uniqueIdentity("para").username, email, password: PASSWORD }),
      ),
    );
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    for (const result of results) {
      if (result.status === "rejected") await rejects(Promise.reject(result.reason), Code.AlreadyExists, "EMAIL_TAKEN");
    }
    assert.equal((await server.sql("select 1 from users where email = $1", [email])).length, 1);
  });

  test("usernames fold: case and full-width forms are one identity", async () => {
    const auth = server.auth();
    const n = String(Date.now() % 100000);
    const fullWidth = `ＦＵＬＬ${[...n].map((d) => String.fromCodePoint(0xff10 + Number(d))).join("")}`;
    const res = await auth.register({ username: fullWidth, email: `fw${n}@example.com`, password: PASSWORD });
    assert.equal(res.user?.username, `full${n}`);
    for (const username of [`full${n}`, `FULL${n}`, fullWidth]) {
      await rejects(auth.register({ username, email: `other${n}${username.length}@example.com`, password: PASSWORD }), Code.AlreadyExists, "USERNAME_TAKEN");
    }
  });

  test("usernames with an @, a zero-width space or control characters are refused", async () => {
    const auth = server.auth();
    for (const username of ["bob@example.com", "bo\u200bb", "bob\r\nx", "b\u0000ob", "x"]) {
      await invalid(auth.register({ username, email: "fine@example.com", password: PASSWORD }), "VALIDATION_FAILED");
    }
  });

  test("weak passwords: common, equal to the username or the email, too short after NFKC", async () => {
    const auth = server.auth();
    const { username, email } = uniqueIdentity();
    for (const password of ["password1", "iloveyou", "Password123", "QWERTY123", username, username.toUpperCase(), email, email.toUpperCase()]) {
      const error = await invalid(auth.register({ username, email, password }), "WEAK_PASSWORD");
      assert.ok(error.rawMessage.length > 0);
    }
    assert.equal((await server.sql("select 1 from users where username = $1", [username])).length, 0, "nothing was created");
  });

  test("a password confirmation that differs is PASSWORD_MISMATCH", async () => {
    const { username, email } = uniqueIdentity();
    await invalid(server.auth("grpc").register({ username, email, password: PASSWORD, passwordConfirmation: `${PASSWORD}!` }), "PASSWORD_MISMATCH");
  });

  test("roles, disabled, id or unknown fields smuggled into Register are refused, never applied", async () => {
    const { username, email } = uniqueIdentity();
    for (const extra of [{ roles: ["admin"] }, { disabled: true }, { id: crypto.randomUUID() }, { user: { roles: ["admin"] } }]) {
      const res = await postJson(server.baseUrl, REGISTER, { username, email, password: PASSWORD, ...extra });
      assert.equal(res.status, 400, JSON.stringify(extra));
      assert.equal(res.json.code, "invalid_argument");
    }
    const res = await postJson(server.baseUrl, REGISTER, `{"username":"${username}","email":"${email}","password":"${PASSWORD}","__proto__":{"roles":["admin"]}}`);
    if (res.status === 200) assert.deepEqual((res.json.user as { roles: string[] }).roles, ["user"]);
    else assert.equal(res.json.code, "invalid_argument");
  });

  test("an invitation code is optional, but must be valid when given; a valid one gives its roles", async () => {
    const auth = server.auth();
    await invalid(auth.register({ ...uniqueIdentity(), password: PASSWORD, invitationCode: "no-such-code" }), "INVALID_INVITATION");
    const code = await invitation(server, { roles: ["admin"] });
    const res = await auth.register({ ...uniqueIdentity(), password: PASSWORD, invitationCode: code });
    assert.deepEqual(res.user?.roles, ["admin"]);
  });

  test("plain curl-style JSON, camelCase and snake_case", async () => {
    const a = uniqueIdentity();
    const res = await postJson(server.baseUrl, REGISTER, { ...a, password: PASSWORD, first_name: "Snake", password_confirmation: PASSWORD });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const tokens = res.json.tokens as Record<string, string>;
    for (const key of ["accessToken", "accessTokenExpireTime", "refreshToken", "refreshTokenExpireTime", "tokenType", "sessionId"]) {
      assert.ok(tokens[key], `tokens.${key}`);
    }
    assert.equal((res.json.user as { firstName: string }).firstName, "Snake");
  });
});

describe("Register in invite mode", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ GATEHOUSE_REGISTRATION_MODE: "invite", GATEHOUSE_ROLES: "manager" });
  });
  after(() => server.stop());

  test("without a code: INVALID_INVITATION, over both protocols", async () => {
    for (const protocol of PROTOCOLS) {
      await invalid(server.auth(protocol).register({ ...uniqueIdentity(), password: PASSWORD }), "INVALID_INVITATION");
      await invalid(server.auth(protocol).register({ ...uniqueIdentity(), password: PASSWORD, invitationCode: "" }), "INVALID_INVITATION");
    }
  });

  test("a valid code admits one user with the invitation's roles; used up afterwards", async () => {
    const code = await invitation(server, { roles: ["manager", "user"] });
    const res = await server.auth("grpc").register({ ...uniqueIdentity(), password: PASSWORD, invitationCode: code });
    assert.deepEqual(res.user?.roles, ["manager", "user"]);
    await invalid(server.auth().register({ ...uniqueIdentity(), password: PASSWORD, invitationCode: code }), "INVALID_INVITATION");
  });

  test("an invitation without roles gives `user`", async () => {
    const code = await invitation(server, { roles: [] });
    const res = await server.auth().register({ ...uniqueIdentity(), password: PASSWORD, invitationCode: code });
    assert.deepEqual(res.user?.roles, ["user"]);
  });

  test("expired codes and codes bound to another email are refused; the bound email is accepted in any case", async () => {
    const expired = await invitation(server, { expireInMs: -1_000 });
    await invalid(server.auth().register({ ...uniqueIdentity(), password: PASSWORD, invitationCode: expired }), "INVALID_INVITATION");
    const bound = await invitation(server, { email: "invited@example.com" });
    await invalid(server.auth().register({ ...uniqueIdentity(), password: PASSWORD, invitationCode: bound }), "INVALID_INVITATION");
    const res = await server.auth().register({ username: uniqueIdentity().username, email: "Invited@EXAMPLE.com", password: PASSWORD, invitationCode: bound });
    assert.equal(res.user?.email, "invited@example.com");
  });

  test("a registration that fails (EMAIL_TAKEN) does not use up the invitation", async () => {
    const first = uniqueIdentity();
    await server.auth().register({ ...first, password: PASSWORD, invitationCode: await invitation(server) });
    const code = await invitation(server);
    await rejects(
      server.auth().register({ username: uniqueIdentity().username, email: first.email, password: PASSWORD, invitationCode: code }),
      Code.AlreadyExists,
      "EMAIL_TAKEN",
    );
    const [row] = await server.sql<{ use_count: number }>("select use_count from invitations where code_hash = $1", [createHash("sha256").update(code).digest()]);
    assert.equal(row!.use_count, 0);
    await server.auth().register({ ...uniqueIdentity(), password: PASSWORD, invitationCode: code });
  });

  test("16 parallel uses of a single-use code admit exactly one", async () => {
    const code = await invitation(server, { maxUses: 1 });
    const results = await Promise.allSettled(
      Array.from({ length: 16 }, (_, i) =>
        server.auth(i % 2 ? "grpc" : "connect-json").register({ ...uniqueIdentity("race"), password: PASSWORD, invitationCode: code }),
      ),
    );
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    for (const result of results) {
      if (result.status === "rejected") await invalid(Promise.reject(result.reason), "INVALID_INVITATION");
    }
    const [row] = await server.sql<{ use_count: number }>("select use_count from invitations where code_hash = $1", [createHash("sha256").update(code).digest()]);
    assert.equal(row!.use_count, 1);
  });
});

describe("Register in closed mode", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ GATEHOUSE_REGISTRATION_MODE: "closed" });
  });
  after(() => server.stop());

  test("REGISTRATION_CLOSED, even with an invitation code", async () => {
    for (const protocol of PROTOCOLS) {
      await rejects(server.auth(protocol).register({ ...uniqueIdentity(), password: PASSWORD }), Code.PermissionDenied, "REGISTRATION_CLOSED");
    }
    const code = await invitation(server);
    await rejects(server.auth().register({ ...uniqueIdentity(), password: PASSWORD, invitationCode: code }), Code.PermissionDenied, "REGISTRATION_CLOSED");
    assert.equal((await server.sql("select 1 from users")).length, 0);
  });
});
