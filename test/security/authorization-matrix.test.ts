import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { create, type DescMethod, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { AuthService } from "../../gen/gatehouse/auth/v1/auth_pb.js";
import { UserService } from "../../gen/gatehouse/user/v1/user_pb.js";
import { ErrorInfoSchema } from "../../src/platform/errors/error-details.ts";
import { startTestServer, type ProtocolName, type TestServer } from "../support/harness.ts";

/**
 * Every method of both services (from their descriptors) × {no token, a user's, an admin's, a
 * deleted user's} × {Connect JSON, gRPC}: who gets through and who is stopped, with which code.
 * The rule of each method comes from the table below; a method missing from it fails the test,
 * so a new RPC cannot ship without someone deciding who may call it.
 */

type Access =
  /** Anyone, token or not (SPEC §3). */
  | "public"
  /** Any signed-in user, acting on itself. */
  | "signed-in"
  /** An admin, or a signed-in user naming its own id (`GetUser`, `UpdateUser`). */
  | "admin-or-self"
  | "admin";

interface Caller {
  readonly userId: string;
  readonly email: string;
  readonly password: string;
  readonly accessToken: string;
  readonly refreshToken: string;
}

/** A request the method would accept from someone allowed to call it (so a refusal is about who calls). */
type RequestFor = (caller: Caller | undefined, target: string) => MessageInitShape<DescMethod["input"]>;

const STRONG = "saffron lighthouse drifts east";
let counter = 0;
const fresh = () => {
  counter++;
  const username = `mx${process.pid.toString(36)}x${counter}`;
  return { username, email: `${username}@example.com` };
};
const soon = () => timestampFromDate(new Date(Date.now() + 86_400_000));

const RULES: Record<string, { access: Access; request: RequestFor }> = {
  "gatehouse.auth.v1.AuthService/Register": { access: "public", request: () => ({ ...fresh(), password: STRONG }) },
  "gatehouse.auth.v1.AuthService/Login": { access: "public", request: () => ({ identifier: { case: "email", value: MEMBER.email }, password: MEMBER.password }) },
  // A live refresh token whoever calls: the Authorization header (even a deleted user's) plays no part.
  "gatehouse.auth.v1.AuthService/Refresh": { access: "public", request: () => ({ refreshToken: spareRefreshToken }) },
  "gatehouse.auth.v1.AuthService/Introspect": { access: "public", request: () => ({ token: "not a token" }) },
  "gatehouse.auth.v1.AuthService/Logout": { access: "signed-in", request: () => ({}) },
  "gatehouse.auth.v1.AuthService/LogoutAll": { access: "signed-in", request: (caller) => ({ password: caller?.password ?? STRONG }) },
  "gatehouse.auth.v1.AuthService/GetMe": { access: "signed-in", request: () => ({}) },
  // The new password is the current one: the call goes through without changing what later calls sign in with.
  "gatehouse.auth.v1.AuthService/ChangePassword": {
    access: "signed-in",
    request: (caller) => ({ currentPassword: caller?.password ?? STRONG, newPassword: caller?.password ?? STRONG }),
  },
  "gatehouse.auth.v1.AuthService/ListSessions": { access: "signed-in", request: () => ({}) },
  "gatehouse.auth.v1.AuthService/RevokeSession": { access: "signed-in", request: () => ({ sessionId: randomUUID() }) },
  "gatehouse.user.v1.UserService/CreateUser": { access: "admin", request: () => ({ user: fresh(), password: STRONG }) },
  "gatehouse.user.v1.UserService/GetUser": { access: "admin-or-self", request: (_caller, target) => ({ id: target }) },
  "gatehouse.user.v1.UserService/ListUsers": { access: "admin", request: () => ({ pageSize: 5 }) },
  "gatehouse.user.v1.UserService/UpdateUser": {
    access: "admin-or-self",
    request: (_caller, target) => ({ user: { id: target, firstName: "Matrix" }, updateMask: { paths: ["first_name"] } }),
  },
  "gatehouse.user.v1.UserService/DeleteUser": { access: "admin", request: () => ({ id: randomUUID() }) },
  "gatehouse.user.v1.UserService/SetPassword": { access: "admin", request: () => ({ id: randomUUID(), password: STRONG }) },
  "gatehouse.user.v1.UserService/CreateInvitation": { access: "admin", request: () => ({ roles: ["user"], maxUses: 1, expireTime: soon() }) },
  "gatehouse.user.v1.UserService/ListInvitations": { access: "admin", request: () => ({}) },
  "gatehouse.user.v1.UserService/DeleteInvitation": { access: "admin", request: () => ({ id: randomUUID() }) },
  "gatehouse.user.v1.UserService/ListAuditEvents": { access: "admin", request: () => ({}) },
};

const ADMIN = { username: "matrixadmin", email: "matrixadmin@example.com", password: "obsidian ferry at low tide" };
const MEMBER = { username: "matrixuser", email: "matrixuser@example.com", password: "juniper kite over the dunes" };
let spareRefreshToken = "";

const METHODS: readonly DescMethod[] = [...AuthService.methods, ...UserService.methods];
const PROTOCOLS: readonly ProtocolName[] = ["connect-json", "grpc"];
type Who = "nobody" | "user" | "admin" | "deleted user";
const WHO: readonly Who[] = ["nobody", "user", "admin", "deleted user"];

/** What must happen: "through" = neither unauthenticated nor permission_denied; else that code and reason. */
function expected(access: Access, who: Who): "through" | { code: Code; reason: string } {
  if (access === "public") return "through";
  if (who === "nobody") return { code: Code.Unauthenticated, reason: "TOKEN_MISSING" };
  if (who === "deleted user") return { code: Code.Unauthenticated, reason: "SESSION_REVOKED" };
  if (access === "admin" && who === "user") return { code: Code.PermissionDenied, reason: "ADMIN_REQUIRED" };
  return "through";
}

describe("authorization matrix: every method × caller × protocol", () => {
  let server: TestServer;
  let deleted: Caller;
  before(async () => {
    server = await startTestServer({
      GATEHOUSE_BOOTSTRAP_ADMIN_EMAIL: ADMIN.email,
      GATEHOUSE_BOOTSTRAP_ADMIN_USERNAME: ADMIN.username,
      GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD: ADMIN.password,
    });
    await server.auth().register({ username: MEMBER.username, email: MEMBER.email, password: MEMBER.password });
    const doomed = { ...fresh(), password: STRONG };
    const { user } = await server.auth().register(doomed);
    deleted = await signIn(doomed);
    const admin = await signIn(ADMIN);
    await server.users().deleteUser({ id: user!.id }, { headers: { authorization: `Bearer ${admin.accessToken}` } });
  });
  after(() => server.stop());

  async function signIn(who: { email: string; password: string }): Promise<Caller> {
    const { user, tokens } = await server.auth().login({ identifier: { case: "email", value: who.email }, password: who.password });
    return { userId: user!.id, email: who.email, password: who.password, accessToken: tokens!.accessToken, refreshToken: tokens!.refreshToken };
  }

  test("every method of both services has a rule in the table", () => {
    const missing = METHODS.map((m) => `${m.parent.typeName}/${m.name}`).filter((name) => !Object.hasOwn(RULES, name));
    assert.deepEqual(missing, [], "add these methods to RULES in test/security/authorization-matrix.test.ts");
  });

  for (const protocol of PROTOCOLS) {
    for (const method of METHODS) {
      const name = `${method.parent.typeName}/${method.name}`;
      test(`${protocol}: ${method.parent.name}/${method.name}`, async (t) => {
        const rule = RULES[name];
        if (!rule) return assert.fail(`${name} has no rule`);
        const client = createClient(method.parent, server.transport(protocol)) as unknown as Record<
          string,
          (request: unknown, options: { headers: Record<string, string> }) => Promise<unknown>
        >;
        for (const who of WHO) {
          // Fresh sign-ins for every call: Logout, LogoutAll and ChangePassword end the sessions they run in.
          spareRefreshToken = (await signIn(MEMBER)).refreshToken;
          const caller = who === "user" ? await signIn(MEMBER) : who === "admin" ? await signIn(ADMIN) : who === "deleted user" ? deleted : undefined;
          const target = caller?.userId ?? deleted.userId;
          const headers: Record<string, string> = caller ? { authorization: `Bearer ${caller.accessToken}` } : {};
          const outcome = await client[method.localName]!(create(method.input, rule.request(caller, target)), { headers }).then(
            () => undefined,
            (e: unknown) => ConnectError.from(e),
          );
          const got = outcome ? `${Code[outcome.code]} ${outcome.findDetails(ErrorInfoSchema)[0]?.reason}: ${outcome.rawMessage}` : "ok";
          const want = expected(rule.access, who);
          await t.test(`${who}`, () => {
            if (want === "through") {
              assert.ok(!outcome || ![Code.Unauthenticated, Code.PermissionDenied, Code.Internal, Code.Unknown].includes(outcome.code), `${who} must get through, got ${got}`);
            } else {
              assert.equal(`${Code[outcome?.code ?? Code.Unknown]} ${outcome?.findDetails(ErrorInfoSchema)[0]?.reason}`, `${Code[want.code]} ${want.reason}`, `${who}: got ${got}`);
            }
          });
          // A signed-in user naming someone else's id is stopped just like on an admin-only method.
          if (rule.access === "admin-or-self" && who === "user") {
            const other = await signIn(ADMIN);
            const refused = await client[method.localName]!(create(method.input, rule.request(caller, other.userId)), { headers }).then(
              () => undefined,
              (e: unknown) => ConnectError.from(e),
            );
            await t.test("user on another user's id", () => {
              assert.equal(`${Code[refused?.code ?? Code.Unknown]} ${refused?.findDetails(ErrorInfoSchema)[0]?.reason}`, "PermissionDenied ADMIN_REQUIRED");
            });
          }
        }
      });
    }
  }
});
