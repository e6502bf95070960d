import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ProtocolName, TestServer } from "../support/harness.ts";
import { bearer, PASSWORD, rejects, ROOT, RULE_PROTOCOLS, signIn, startUsersServer, uniqueName } from "./support.ts";

const HOUR = 3_600_000;
const invalidInvitation = (call: Promise<unknown>) => rejects(call, Code.InvalidArgument, "INVALID_INVITATION");

function claims(accessToken: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(accessToken.split(".")[1]!, "base64url").toString("utf8")) as Record<string, unknown>;
}

describe("invitations (registration mode `invite`)", () => {
  let server: TestServer;
  let root: string;
  before(async () => {
    server = await startUsersServer({ GATEHOUSE_REGISTRATION_MODE: "invite" });
    root = await signIn(server, ROOT.username, ROOT.password);
  });
  after(() => server.stop());

  const invite = (fields: { roles?: string[]; email?: string; maxUses?: number; expireInMs?: number } = {}, protocol: ProtocolName = "connect-json") =>
    server
      .users(protocol)
      .createInvitation(
        { roles: fields.roles ?? [], email: fields.email, maxUses: fields.maxUses ?? 0, expireTime: timestampFromMs(Date.now() + (fields.expireInMs ?? HOUR)) },
        bearer(root),
      )
      .then((res) => res.invitation!);

  const register = (code: string, email?: string, protocol: ProtocolName = "connect-json") => {
    const username = uniqueName("inv");
    return server.auth(protocol).register({ username, email: email ?? `${username}@example.com`, password: PASSWORD, invitationCode: code });
  };

  for (const protocol of RULE_PROTOCOLS) {
    test(`${protocol}: CreateInvitation returns a 256-bit code once and stores only its SHA-256`, async () => {
      const invitation = await invite({ roles: ["driver", "manager"], email: "Invitee@Example.COM" }, protocol);
      assert.match(invitation.code, /^[A-Za-z0-9_-]{43}$/, "32 random bytes, base64url");
      assert.deepEqual(invitation.roles, ["driver", "manager"]);
      assert.equal(invitation.email, "invitee@example.com");
      assert.equal(invitation.maxUses, 1, "0 means a single use");
      assert.equal(invitation.useCount, 0);
      const [row] = await server.sql<{ code_hash: Buffer }>("select code_hash from invitations where id = $1", [invitation.id]);
      assert.deepEqual(row!.code_hash, createHash("sha256").update(invitation.code).digest());
      const dump = JSON.stringify(await server.sql("select * from invitations"));
      assert.ok(!dump.includes(invitation.code), "the code itself is nowhere in the table");

      const listed = await server.users(protocol).listInvitations({ pageSize: 100 }, bearer(root));
      const same = listed.invitations.find((i) => i.id === invitation.id);
      assert.ok(same);
      assert.equal(same.code, "", "never shown again");
    });

    test(`${protocol}: CreateInvitation refuses unknown roles, a past expiry and out-of-range max_uses`, async () => {
      const users = server.users(protocol);
      const later = timestampFromMs(Date.now() + HOUR);
      await rejects(users.createInvitation({ roles: ["superuser"], expireTime: later }, bearer(root)), Code.InvalidArgument, "VALIDATION_FAILED");
      await rejects(users.createInvitation({ expireTime: timestampFromMs(Date.now() - 1000) }, bearer(root)), Code.InvalidArgument, "VALIDATION_FAILED");
      await rejects(users.createInvitation({}, bearer(root)), Code.InvalidArgument, "VALIDATION_FAILED");
      await rejects(users.createInvitation({ maxUses: -1, expireTime: later }, bearer(root)), Code.InvalidArgument, "VALIDATION_FAILED");
      await rejects(users.createInvitation({ email: "not an email", expireTime: later }, bearer(root)), Code.InvalidArgument, "VALIDATION_FAILED");
    });

    test(`${protocol}: Register with the code grants the invitation's roles, in the user and in the access token`, async () => {
      const invitation = await invite({ roles: ["manager"] }, protocol);
      const { user, tokens } = await register(invitation.code, undefined, protocol);
      assert.deepEqual(user?.roles, ["manager"]);
      assert.deepEqual(claims(tokens!.accessToken).roles, ["manager"]);
      const plain = await invite({}, protocol);
      assert.deepEqual((await register(plain.code, undefined, protocol)).user?.roles, ["user"], "no roles on the invitation means `user`");
      const listed = await server.users(protocol).listInvitations({ pageSize: 100 }, bearer(root));
      assert.equal(listed.invitations.find((i) => i.id === invitation.id)?.useCount, 1);
    });

    test(`${protocol}: a used-up, expired, deleted, wrong-email or made-up code is INVALID_INVITATION`, async () => {
      const used = await invite({}, protocol);
      await register(used.code, undefined, protocol);
      await invalidInvitation(register(used.code, undefined, protocol));

      const expiring = await invite({}, protocol);
      await server.sql("update invitations set expire_time = now() - interval '1 second' where id = $1", [expiring.id]);
      await invalidInvitation(register(expiring.code, undefined, protocol));

      const deleted = await invite({}, protocol);
      await server.users(protocol).deleteInvitation({ id: deleted.id }, bearer(root));
      await invalidInvitation(register(deleted.code, undefined, protocol));
      await rejects(server.users(protocol).deleteInvitation({ id: deleted.id }, bearer(root)), Code.NotFound, "INVITATION_NOT_FOUND");

      const address = `${uniqueName("bound")}@example.com`;
      const bound = await invite({ email: address }, protocol);
      await invalidInvitation(register(bound.code, "someone.else@example.com", protocol));
      const { user } = await register(bound.code, address.toUpperCase(), protocol);
      assert.equal(user?.email, address);

      await invalidInvitation(register("x".repeat(43), undefined, protocol));
    });
  }

  test("16 parallel registrations with one single-use code admit exactly one", async () => {
    for (const protocol of RULE_PROTOCOLS) {
      const invitation = await invite({ roles: ["driver"] });
      const results = await Promise.allSettled(Array.from({ length: 16 }, () => register(invitation.code, undefined, protocol)));
      const admitted = results.filter((r) => r.status === "fulfilled");
      assert.equal(admitted.length, 1, `${protocol}: exactly one registration succeeds`);
      for (const r of results) {
        if (r.status === "rejected") {
          const error = ConnectError.from(r.reason);
          assert.equal(error.code, Code.InvalidArgument, error.message);
        }
      }
      const [row] = await server.sql<{ use_count: number }>("select use_count from invitations where id = $1", [invitation.id]);
      assert.equal(row!.use_count, 1);
      assert.equal((await server.sql("select 1 from users where roles @> '{driver}' and create_time > now() - interval '1 minute'")).length >= 1, true);
    }
  });

  test("a code for three uses admits exactly three of ten racing registrations", async () => {
    const invitation = await invite({ maxUses: 3 });
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => register(invitation.code, undefined, i % 2 ? "grpc" : "connect-json")));
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 3);
  });

  test("a registration that fails for another reason gives the use back", async () => {
    const invitation = await invite();
    const taken = uniqueName("taken");
    await register((await invite()).code, `${taken}@example.com`);
    await rejects(
      server.auth().register({ username: uniqueName("dup"), email: `${taken}@example.com`, password: PASSWORD, invitationCode: invitation.code }),
      Code.AlreadyExists,
      "EMAIL_TAKEN",
    );
    const [row] = await server.sql<{ use_count: number }>("select use_count from invitations where id = $1", [invitation.id]);
    assert.equal(row!.use_count, 0);
    await register(invitation.code);
  });

  test("ListInvitations pages newest first, without codes, every invitation once", async () => {
    for (let i = 0; i < 12; i++) await invite({ maxUses: i + 1 });
    const all = await server.sql<{ id: string }>("select id from invitations order by create_time desc, id desc");
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await server.users("grpc").listInvitations({ pageSize: 5, pageToken }, bearer(root));
      assert.ok(page.invitations.every((i) => i.code === ""));
      seen.push(...page.invitations.map((i) => i.id));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    assert.deepEqual(seen, all.map((r) => r.id));
    assert.equal((await server.users().listInvitations({ pageSize: 1_000_000_000 }, bearer(root))).invitations.length, Math.min(100, all.length));
    await rejects(server.users().listInvitations({ pageToken: "forged.token" }, bearer(root)), Code.InvalidArgument, "VALIDATION_FAILED");
  });
});
