import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import type { TestServer } from "../support/harness.ts";
import { bearer, createUser, rejects, ROOT, RULE_PROTOCOLS, signIn, startUsersServer, type TestUser } from "./support.ts";

const lastAdmin = (call: Promise<unknown>) => rejects(call, Code.PermissionDenied, "LAST_ADMIN");

describe("LAST_ADMIN: the server always keeps an enabled admin", () => {
  let server: TestServer;
  let root: string;
  let rootId: string;
  before(async () => {
    server = await startUsersServer();
    root = await signIn(server, ROOT.username, ROOT.password);
    rootId = (await server.sql<{ id: string }>("select id from users where username = 'root'"))[0]!.id;
  });
  after(() => server.stop());

  for (const protocol of RULE_PROTOCOLS) {
    test(`${protocol}: the only admin cannot delete, disable or demote itself`, async () => {
      const users = server.users(protocol);
      await lastAdmin(users.deleteUser({ id: rootId }, bearer(root)));
      await lastAdmin(users.updateUser({ user: { id: rootId, disabled: true } }, bearer(root)));
      await lastAdmin(users.updateUser({ user: { id: rootId, roles: ["user"] } }, bearer(root)));
      await lastAdmin(users.updateUser({ user: { id: rootId, username: ROOT.username, email: ROOT.email }, updateMask: { paths: ["*"] } }, bearer(root)));
      // Changes that keep it an enabled admin are fine.
      await users.updateUser({ user: { id: rootId, roles: ["admin", "manager"] } }, bearer(root));
      await users.updateUser({ user: { id: rootId, roles: ["admin"] }, updateMask: { paths: ["roles"] } }, bearer(root));
      const [row] = await server.sql<{ roles: string[]; disabled: boolean }>("select roles, disabled from users where id = $1", [rootId]);
      assert.deepEqual(row, { roles: ["admin"], disabled: false });
    });

    test(`${protocol}: a disabled admin does not count; with a second enabled admin, one may go`, async () => {
      const users = server.users(protocol);
      const sleeper = await createUser(server, root, { roles: ["admin"] });
      await users.updateUser({ user: { id: sleeper.user.id, disabled: true } }, bearer(root));
      await lastAdmin(users.deleteUser({ id: rootId }, bearer(root)));
      await lastAdmin(users.updateUser({ user: { id: rootId, roles: ["manager"] } }, bearer(root)));

      const deputy = await createUser(server, root, { roles: ["admin"] });
      await users.updateUser({ user: { id: deputy.user.id, roles: ["user"] } }, bearer(root));
      await users.updateUser({ user: { id: deputy.user.id, roles: ["admin"] } }, bearer(root));
      const deputyToken = await signIn(server, deputy.user.username, deputy.password);
      await users.deleteUser({ id: deputy.user.id }, bearer(root));
      await rejects(users.listUsers({}, bearer(deputyToken)), Code.Unauthenticated, "SESSION_REVOKED");
      await users.deleteUser({ id: sleeper.user.id }, bearer(root));
    });
  }

  test("concurrent removals of every admin: exactly one admin is left, whatever the interleaving", async () => {
    for (let round = 0; round < 4; round++) {
      const admins: TestUser[] = [];
      for (let i = 0; i < 5; i++) admins.push(await createUser(server, root, { roles: ["admin", "driver"] }));
      const everyone = [{ id: rootId, token: root }, ...admins.map((a) => ({ id: a.user.id, token: a.token }))];
      // Every admin removes itself at the same moment, in one of three ways. Each stays an admin
      // until its own call commits, so all pass authentication and race on the last-admin rule.
      const results = await Promise.allSettled(
        everyone.map((admin, i) => {
          const users = server.users(i % 2 ? "grpc" : "connect-json");
          switch (i % 3) {
            case 0:
              return users.deleteUser({ id: admin.id }, bearer(admin.token));
            case 1:
              return users.updateUser({ user: { id: admin.id, disabled: true } }, bearer(admin.token));
            default:
              return users.updateUser({ user: { id: admin.id, roles: ["driver"] }, updateMask: { paths: ["roles"] } }, bearer(admin.token));
          }
        }),
      );
      const refused = results.flatMap((r) => (r.status === "rejected" ? [ConnectError.from(r.reason)] : []));
      assert.equal(refused.length, 1, `round ${round}: ${refused.map((e) => e.message).join("; ")}`);
      await lastAdmin(Promise.reject(refused[0]));
      const left = await server.sql<{ id: string; username: string }>("select id, username from users where roles @> '{admin}' and not disabled");
      assert.equal(left.length, 1, `round ${round}: ${left.length} enabled admins left`);
      // The survivor is the admin of the next round.
      rootId = left[0]!.id;
      root = await signIn(server, left[0]!.username, left[0]!.username === ROOT.username ? ROOT.password : admins[0]!.password);
    }
  });
});
