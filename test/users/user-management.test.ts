import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { postJson, type TestServer } from "../support/harness.ts";
import { bearer, createUser, PASSWORD, rejects, ROOT, RULE_PROTOCOLS, signIn, startUsersServer, uniqueName } from "./support.ts";

const invalid = (call: Promise<unknown>, reason = "VALIDATION_FAILED") => rejects(call, Code.InvalidArgument, reason);

describe("CreateUser, UpdateUser, DeleteUser, SetPassword", () => {
  let server: TestServer;
  let root: string;
  before(async () => {
    server = await startUsersServer();
    root = await signIn(server, ROOT.username, ROOT.password);
  });
  after(() => server.stop());

  for (const protocol of RULE_PROTOCOLS) {
    describe(protocol, () => {
      const users = () => server.users(protocol);

      test("CreateUser normalises the identity, defaults the role to `user` and hashes the password", async () => {
        const name = uniqueName("Cu");
        const { user } = await users().createUser(
          { user: { username: name.toUpperCase(), email: `${name}@EXAMPLE.com`, firstName: "Grace", lastName: "Hopper" }, password: PASSWORD },
          bearer(root),
        );
        assert.equal(user?.username, name.toLowerCase());
        assert.equal(user?.email, `${name.toLowerCase()}@example.com`);
        assert.deepEqual(user?.roles, ["user"]);
        assert.equal(user?.disabled, false);
        assert.ok(user?.createTime && user.updateTime);
        assert.equal(user?.lastLoginTime, undefined, "never signed in");
        const [row] = await server.sql<{ password_hash: string }>("select password_hash from users where id = $1", [user!.id]);
        assert.match(row!.password_hash, /^\$argon2id\$/);
        await signIn(server, name, PASSWORD);
      });

      test("CreateUser: an admin may create admins and configured roles; unknown roles, weak passwords and taken names are refused", async () => {
        const admin = await createUser(server, root, { roles: ["admin", "manager"] });
        assert.deepEqual(admin.user.roles, ["admin", "manager"]);
        await users().listUsers({}, bearer(admin.token));
        const name = uniqueName("cr");
        const create = (fields: { username?: string; email?: string; roles?: string[] }, password = PASSWORD) =>
          users().createUser(
            { user: { username: fields.username ?? name, email: fields.email ?? `${name}@example.com`, roles: fields.roles ?? [] }, password },
            bearer(root),
          );
        await invalid(create({ roles: ["superuser"] }));
        await invalid(create({}, "password"), "WEAK_PASSWORD");
        await invalid(create({}, `${name}@example.com`), "WEAK_PASSWORD");
        await invalid(users().createUser({ user: { email: `${name}@example.com` }, password: PASSWORD }, bearer(root)));
        await invalid(create({ username: "a@b" }));
        await rejects(create({ username: admin.user.username }), Code.AlreadyExists, "USERNAME_TAKEN");
        await rejects(create({ email: admin.user.email.toUpperCase() }), Code.AlreadyExists, "EMAIL_TAKEN");
        assert.equal((await server.sql("select 1 from users where username = $1", [name])).length, 0);
        const dormant = await users().createUser(
          { user: { username: name, email: `${name}@example.com`, disabled: true }, password: PASSWORD },
          bearer(root),
        );
        assert.equal(dormant.user?.disabled, true, "created disabled, not silently enabled");
        await rejects(
          server.auth(protocol).login({ identifier: { case: "username", value: name }, password: PASSWORD }),
          Code.PermissionDenied,
          "ACCOUNT_DISABLED",
        );
      });

      test("UpdateUser without a mask changes exactly the populated fields", async () => {
        const { user } = await createUser(server, root, { firstName: "Before", lastName: "Kept", roles: ["driver"] });
        const res = await users().updateUser({ user: { id: user.id, firstName: "After" } }, bearer(root));
        assert.equal(res.user?.firstName, "After");
        assert.equal(res.user?.lastName, "Kept");
        assert.equal(res.user?.email, user.email);
        assert.deepEqual(res.user?.roles, ["driver"]);
        assert.ok(res.user!.updateTime!.seconds >= user.updateTime!.seconds);
      });

      test("UpdateUser with a mask changes only the named fields, and can clear one or set false", async () => {
        const { user } = await createUser(server, root, { firstName: "Keep", lastName: "Clear" });
        const res = await users().updateUser(
          { user: { id: user.id, firstName: "Ignored", lastName: "" }, updateMask: { paths: ["last_name"] } },
          bearer(root),
        );
        assert.equal(res.user?.firstName, "Keep", "a field outside the mask stays");
        assert.equal(res.user?.lastName, "", "a field in the mask is cleared");
        await users().updateUser({ user: { id: user.id, disabled: true } }, bearer(root));
        const enabled = await users().updateUser({ user: { id: user.id }, updateMask: { paths: ["disabled"] } }, bearer(root));
        assert.equal(enabled.user?.disabled, false);
      });

      test('UpdateUser with "*" replaces every field; username and email cannot be cleared', async () => {
        const { user } = await createUser(server, root, { firstName: "Old", lastName: "Name", roles: ["manager"] });
        const name = uniqueName("star");
        const res = await users().updateUser(
          { user: { id: user.id, username: name, email: `${name}@example.com` }, updateMask: { paths: ["*"] } },
          bearer(root),
        );
        assert.equal(res.user?.username, name);
        assert.equal(res.user?.firstName, "");
        assert.equal(res.user?.lastName, "");
        assert.deepEqual(res.user?.roles, ["user"], "no roles means the role `user`");
        assert.equal(res.user?.disabled, false);
        await invalid(users().updateUser({ user: { id: user.id, email: `${name}@example.com` }, updateMask: { paths: ["*"] } }, bearer(root)));
        await invalid(users().updateUser({ user: { id: user.id }, updateMask: { paths: ["username"] } }, bearer(root)));
        await invalid(users().updateUser({ user: { id: user.id }, updateMask: { paths: ["email"] } }, bearer(root)));
      });

      test("UpdateUser refuses unknown mask paths, unknown roles and output-only fields, and keeps identities unique", async () => {
        const { user } = await createUser(server, root);
        const other = await createUser(server, root);
        for (const path of ["password", "password_hash", "id", "create_time", "nope"]) {
          await invalid(users().updateUser({ user: { id: user.id, firstName: "X" }, updateMask: { paths: [path] } }, bearer(root)));
        }
        await invalid(users().updateUser({ user: { id: user.id, roles: ["root"] } }, bearer(root)));
        await invalid(users().updateUser({ user: { id: user.id, firstName: "X", createTime: timestampFromMs(0) } }, bearer(root)));
        await rejects(users().updateUser({ user: { id: user.id, username: other.user.username.toUpperCase() } }, bearer(root)), Code.AlreadyExists, "USERNAME_TAKEN");
        await rejects(users().updateUser({ user: { id: user.id, email: other.user.email.toUpperCase() } }, bearer(root)), Code.AlreadyExists, "EMAIL_TAKEN");
        const [row] = await server.sql<{ first_name: string; create_time: Date }>("select first_name, create_time from users where id = $1", [user.id]);
        assert.equal(row!.first_name, "Test", "nothing of a refused update was applied");
      });

      test("a user's self-update goes through the same uniqueness and normalisation", async () => {
        const me = await createUser(server, root);
        const other = await createUser(server, root);
        const name = uniqueName("Self");
        const res = await users().updateUser({ user: { id: me.user.id, username: name, email: `${name}@Example.COM` } }, bearer(me.token));
        assert.equal(res.user?.username, name.toLowerCase());
        assert.equal(res.user?.email, `${name.toLowerCase()}@example.com`);
        await rejects(users().updateUser({ user: { id: me.user.id, email: other.user.email } }, bearer(me.token)), Code.AlreadyExists, "EMAIL_TAKEN");
        await rejects(users().updateUser({ user: { id: other.user.id, firstName: "Mallory" } }, bearer(me.token)), Code.PermissionDenied, "ADMIN_REQUIRED");
      });

      test("disabling a user ends its sessions at once; enabling lets it sign in again", async () => {
        const victim = await createUser(server, root);
        const second = await server.auth().login({ identifier: { case: "username", value: victim.user.username }, password: PASSWORD });
        await server.auth(protocol).getMe({}, bearer(victim.token));
        await users().updateUser({ user: { id: victim.user.id, disabled: true } }, bearer(root));
        await rejects(server.auth(protocol).getMe({}, bearer(victim.token)), Code.Unauthenticated, "SESSION_REVOKED");
        await rejects(server.auth(protocol).getMe({}, bearer(second.tokens!.accessToken)), Code.Unauthenticated, "SESSION_REVOKED");
        const refreshed = await server.auth(protocol).refresh({ refreshToken: second.tokens!.refreshToken }).then(
          () => assert.fail("a disabled user's refresh token still works"),
          (e: unknown) => ConnectError.from(e),
        );
        assert.equal(refreshed.code, Code.Unauthenticated);
        const open = await server.sql("select 1 from sessions where user_id = $1 and revoke_time is null", [victim.user.id]);
        assert.equal(open.length, 0, "every session revoked in the database");
        await rejects(
          server.auth(protocol).login({ identifier: { case: "username", value: victim.user.username }, password: PASSWORD }),
          Code.PermissionDenied,
          "ACCOUNT_DISABLED",
        );
        await users().updateUser({ user: { id: victim.user.id, disabled: false }, updateMask: { paths: ["disabled"] } }, bearer(root));
        await signIn(server, victim.user.username, PASSWORD);
      });

      test("SetPassword replaces the password and ends every session of the user", async () => {
        const victim = await createUser(server, root);
        const newPassword = "saffron glacier overture";
        await invalid(users().setPassword({ id: victim.user.id, password: "password" }, bearer(root)), "WEAK_PASSWORD");
        await invalid(users().setPassword({ id: victim.user.id, password: victim.user.email }, bearer(root)), "WEAK_PASSWORD");
        await users().setPassword({ id: victim.user.id, password: newPassword }, bearer(root));
        await rejects(server.auth(protocol).getMe({}, bearer(victim.token)), Code.Unauthenticated, "SESSION_REVOKED");
        await rejects(
          server.auth(protocol).login({ identifier: { case: "username", value: victim.user.username }, password: PASSWORD }),
          Code.Unauthenticated,
          "INVALID_CREDENTIALS",
        );
        await signIn(server, victim.user.username, newPassword);
      });

      test("DeleteUser removes the user and its sessions", async () => {
        const victim = await createUser(server, root);
        await users().deleteUser({ id: victim.user.id }, bearer(root));
        assert.equal((await server.sql("select 1 from sessions where user_id = $1", [victim.user.id])).length, 0);
        await rejects(users().getUser({ id: victim.user.id }, bearer(root)), Code.NotFound, "USER_NOT_FOUND");
        await rejects(users().deleteUser({ id: victim.user.id }, bearer(root)), Code.NotFound, "USER_NOT_FOUND");
        await rejects(server.auth(protocol).getMe({}, bearer(victim.token)), Code.Unauthenticated, "SESSION_REVOKED");
      });
    });
  }

  test("curl-style JSON: the update mask as a string of camelCase paths", async () => {
    const { user } = await createUser(server, root, { firstName: "Json", lastName: "Body" });
    const res = await postJson(
      server.baseUrl,
      "/gatehouse.user.v1.UserService/UpdateUser",
      { user: { id: user.id, firstName: "Curl", lastName: "" }, updateMask: "firstName,lastName" },
      { authorization: `Bearer ${root}` },
    );
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const updated = res.json.user as Record<string, unknown>;
    assert.equal(updated.firstName, "Curl");
    assert.equal(updated.lastName, undefined, "cleared (proto3 JSON omits empty strings)");
    const smuggled = await postJson(
      server.baseUrl,
      "/gatehouse.user.v1.UserService/UpdateUser",
      { user: { id: user.id, firstName: "X", passwordHash: "$argon2id$…" } },
      { authorization: `Bearer ${root}` },
    );
    assert.equal(smuggled.status, 400, "unknown fields are refused, not ignored");
  });

  test("concurrent updates of different fields of one user never undo each other", async () => {
    const { user } = await createUser(server, root);
    for (let round = 0; round < 8; round++) {
      const name = uniqueName("cc");
      await Promise.all([
        server.users().updateUser({ user: { id: user.id, firstName: `First${round}` }, updateMask: { paths: ["first_name"] } }, bearer(root)),
        server.users("grpc").updateUser({ user: { id: user.id, lastName: `Last${round}` }, updateMask: { paths: ["last_name"] } }, bearer(root)),
        server.users().updateUser({ user: { id: user.id, username: name }, updateMask: { paths: ["username"] } }, bearer(root)),
        server.users("grpc").updateUser({ user: { id: user.id, roles: round % 2 ? ["manager"] : ["driver"] }, updateMask: { paths: ["roles"] } }, bearer(root)),
      ]);
      const { user: after } = await server.users().getUser({ id: user.id }, bearer(root));
      assert.deepEqual(
        [after?.firstName, after?.lastName, after?.username, after?.roles],
        [`First${round}`, `Last${round}`, name, round % 2 ? ["manager"] : ["driver"]],
      );
    }
  });
});
