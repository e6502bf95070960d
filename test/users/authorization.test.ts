import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { UserService } from "../../gen/gatehouse/user/v1/user_pb.js";
import type { TestServer } from "../support/harness.ts";
import { bearer, createUser, PASSWORD, rejects, ROOT, RULE_PROTOCOLS, signIn, startUsersServer, uniqueName, type UsersClient } from "./support.ts";

type CallOptions = { headers?: Record<string, string> };

/**
 * One row per UserService method: how to call it on a target that exists (the `setup` makes a
 * fresh one when the call consumes it), and on one that does not.
 */
interface MethodCase {
  name: keyof typeof UserService.method;
  /** Makes what the call acts on; runs as the admin. */
  setup: () => Promise<string>;
  call: (client: UsersClient, target: string, options: CallOptions) => Promise<unknown>;
  /** For methods that name a resource: the not_found reason an admin gets for an unknown id. */
  notFound?: string;
}

describe("UserService authorisation: {no token, user, admin} × every method × {Connect JSON, gRPC}", () => {
  let server: TestServer;
  let root: string;
  let user: { id: string; token: string };
  const responses: { method: string; desc: DescMessage; message: unknown }[] = [];

  before(async () => {
    server = await startUsersServer();
    root = await signIn(server, ROOT.username, ROOT.password);
    const created = await createUser(server, root);
    user = { id: created.user.id, token: created.token };
  });
  after(() => server.stop());

  const victim = async () => (await createUser(server, root)).user.id;
  const invitation = async () => {
    const res = await server.users().createInvitation({ expireTime: timestampFromMs(Date.now() + 3_600_000) }, bearer(root));
    return res.invitation!.id;
  };

  const cases: MethodCase[] = [
    {
      name: "createUser",
      setup: async () => uniqueName("c"),
      call: (c, name, o) => c.createUser({ user: { username: name, email: `${name}@example.com` }, password: PASSWORD }, o),
    },
    { name: "getUser", setup: victim, call: (c, id, o) => c.getUser({ id }, o), notFound: "USER_NOT_FOUND" },
    { name: "listUsers", setup: async () => "", call: (c, _, o) => c.listUsers({}, o) },
    {
      name: "updateUser",
      setup: victim,
      call: (c, id, o) => c.updateUser({ user: { id, firstName: "Renamed" } }, o),
      notFound: "USER_NOT_FOUND",
    },
    { name: "deleteUser", setup: victim, call: (c, id, o) => c.deleteUser({ id }, o), notFound: "USER_NOT_FOUND" },
    {
      name: "setPassword",
      setup: victim,
      call: (c, id, o) => c.setPassword({ id, password: "another fine password" }, o),
      notFound: "USER_NOT_FOUND",
    },
    {
      name: "createInvitation",
      setup: async () => "",
      call: (c, _, o) => c.createInvitation({ roles: ["driver"], expireTime: timestampFromMs(Date.now() + 3_600_000) }, o),
    },
    { name: "listInvitations", setup: async () => "", call: (c, _, o) => c.listInvitations({}, o) },
    { name: "deleteInvitation", setup: invitation, call: (c, id, o) => c.deleteInvitation({ id }, o), notFound: "INVITATION_NOT_FOUND" },
    { name: "listAuditEvents", setup: async () => "", call: (c, _, o) => c.listAuditEvents({}, o) },
  ];

  test("the table covers every method of the service", () => {
    assert.deepEqual(cases.map((c) => c.name).sort(), Object.keys(UserService.method).sort());
  });

  for (const protocol of RULE_PROTOCOLS) {
    for (const method of cases) {
      test(`${protocol} ${method.name}: no token → unauthenticated, user → ADMIN_REQUIRED, admin → ok`, async () => {
        const client = server.users(protocol);
        const target = await method.setup();
        await rejects(method.call(client, target, {}), Code.Unauthenticated, "TOKEN_MISSING");
        await rejects(method.call(client, target, bearer("not-a-jwt")), Code.Unauthenticated, "TOKEN_INVALID");
        await rejects(method.call(client, target, bearer(user.token)), Code.PermissionDenied, "ADMIN_REQUIRED");
        const response = await method.call(client, target, bearer(root));
        responses.push({ method: method.name, desc: UserService.method[method.name].output, message: response });
      });

      if (method.notFound) {
        test(`${protocol} ${method.name}: permission before existence — a user gets ADMIN_REQUIRED for any id, the admin not_found`, async () => {
          const client = server.users(protocol);
          const missing = randomUUID();
          await rejects(method.call(client, missing, bearer(user.token)), Code.PermissionDenied, "ADMIN_REQUIRED");
          await rejects(method.call(client, await method.setup(), bearer(user.token)), Code.PermissionDenied, "ADMIN_REQUIRED");
          await rejects(method.call(client, missing, bearer(root)), Code.NotFound, method.notFound!);
        });
      }
    }

    test(`${protocol}: a user may read itself and edit its own profile, but not its roles or disabled flag`, async () => {
      const client = server.users(protocol);
      const me = await createUser(server, root);
      const got = await client.getUser({ id: me.user.id }, bearer(me.token));
      assert.equal(got.user?.id, me.user.id);
      const renamed = await client.updateUser({ user: { id: me.user.id, firstName: "Self", lastName: "Made" } }, bearer(me.token));
      assert.equal(renamed.user?.firstName, "Self");
      await rejects(client.updateUser({ user: { id: me.user.id, roles: ["admin"] } }, bearer(me.token)), Code.PermissionDenied, "ADMIN_REQUIRED");
      await rejects(client.updateUser({ user: { id: me.user.id, roles: ["user"] } }, bearer(me.token)), Code.PermissionDenied, "ADMIN_REQUIRED");
      await rejects(
        client.updateUser({ user: { id: me.user.id, disabled: false }, updateMask: { paths: ["disabled"] } }, bearer(me.token)),
        Code.PermissionDenied,
        "ADMIN_REQUIRED",
      );
      await rejects(
        client.updateUser({ user: { id: me.user.id, username: me.user.username, email: me.user.email }, updateMask: { paths: ["*"] } }, bearer(me.token)),
        Code.PermissionDenied,
        "ADMIN_REQUIRED",
      );
      const [row] = await server.sql<{ roles: string[]; disabled: boolean }>("select roles, disabled from users where id = $1", [me.user.id]);
      assert.deepEqual(row, { roles: ["user"], disabled: false }, "nothing of a refused update was applied");
    });

    test(`${protocol}: a deleted user's token is refused on every method`, async () => {
      const doomed = await createUser(server, root);
      await server.users().deleteUser({ id: doomed.user.id }, bearer(root));
      const client = server.users(protocol);
      for (const method of cases) {
        const target = method.name === "createUser" ? await method.setup() : doomed.user.id;
        await rejects(method.call(client, target, bearer(doomed.token)), Code.Unauthenticated, "SESSION_REVOKED");
      }
    });

    test(`${protocol}: a demoted admin loses admin rights on its next call`, async () => {
      const admin = await createUser(server, root, { roles: ["admin"] });
      await server.users(protocol).listUsers({}, bearer(admin.token));
      await server.users().updateUser({ user: { id: admin.user.id, roles: ["user"] }, updateMask: { paths: ["roles"] } }, bearer(root));
      await rejects(server.users(protocol).listUsers({}, bearer(admin.token)), Code.PermissionDenied, "ADMIN_REQUIRED");
    });
  }

  test("no response of any method carries a password, a hash or an invitation code hash (JSON and binary)", async () => {
    assert.ok(responses.length >= cases.length * RULE_PROTOCOLS.length, "every method answered the admin");
    // Also the responses that hold most: a full list of users and of invitations.
    responses.push({ method: "listUsers", desc: UserService.method.listUsers.output, message: await server.users().listUsers({ pageSize: 100 }, bearer(root)) });
    responses.push({
      method: "listInvitations",
      desc: UserService.method.listInvitations.output,
      message: await server.users().listInvitations({ pageSize: 100 }, bearer(root)),
    });
    const hashes = await server.sql<{ h: string }>("select password_hash as h from users");
    const codeHashes = await server.sql<{ hex: string; b64: string; b64url: string }>(
      `select encode(code_hash, 'hex') as hex, encode(code_hash, 'base64') as b64,
        translate(rtrim(encode(code_hash, 'base64'), '='), '+/', '-_') as b64url from invitations`,
    );
    const secrets = [
      ...hashes.map((r) => r.h),
      ...hashes.map((r) => r.h.split("$").at(-1)!),
      ...codeHashes.flatMap((r) => [r.hex, r.b64, r.b64url]),
      PASSWORD,
      ROOT.password,
    ];
    assert.ok(secrets.length > 10);
    for (const { method, desc, message } of responses) {
      const json = JSON.stringify(message, (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
      const binary = Buffer.from(toBinary(desc, message as MessageShape<DescMessage>)).toString("latin1");
      for (const text of [json, binary]) {
        assert.doesNotMatch(text, /\$argon2/, `${method} leaks a password hash`);
        for (const secret of secrets) assert.ok(!text.includes(secret), `${method} leaks a secret`);
      }
    }
  });
});
