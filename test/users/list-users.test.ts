import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { UserService, type ListUsersRequest, type User } from "../../gen/gatehouse/user/v1/user_pb.js";
import { createApp } from "../../src/app.ts";
import { loadConfig } from "../../src/platform/config/config.ts";
import { createLogger } from "../../src/platform/observability/logger.ts";
import { makeTransport, type TestServer } from "../support/harness.ts";
import { bearer, rejects, ROOT, RULE_PROTOCOLS, signIn, startUsersServer, uniqueName, type UsersClient } from "./support.ts";

const invalid = (call: Promise<unknown>) => rejects(call, Code.InvalidArgument, "VALIDATION_FAILED");

type ListOptions = Partial<Omit<ListUsersRequest, "$typeName" | "filter">> & { filter?: { query?: string; role?: string; disabled?: boolean } };

/** Walks every page and returns the users in the order they came. */
async function walk(client: UsersClient, token: string, request: ListOptions, between?: () => Promise<void>): Promise<User[]> {
  const seen: User[] = [];
  let pageToken = "";
  for (let pages = 0; pages < 10_000; pages++) {
    const res = await client.listUsers({ ...request, pageToken }, bearer(token));
    seen.push(...res.users);
    if (res.nextPageToken === "") return seen;
    assert.ok(res.users.length > 0, "a page before the last is never empty");
    pageToken = res.nextPageToken;
    await between?.();
  }
  throw new Error("the walk did not end");
}

/** Inserts users straight into the table (these tests list them; none signs in). */
async function insertUsers(server: TestServer, rows: { username: string; firstName?: string; lastName?: string; roles?: string[]; disabled?: boolean }[]) {
  for (const row of rows) {
    await server.sql(
      "insert into users (username, email, password_hash, first_name, last_name, roles, disabled) values ($1, $2, 'x', $3, $4, $5, $6)",
      [row.username, `${row.username}@example.com`, row.firstName ?? "", row.lastName ?? "", row.roles ?? ["user"], row.disabled ?? false],
    );
  }
}

describe("ListUsers", () => {
  let server: TestServer;
  let root: string;
  before(async () => {
    server = await startUsersServer();
    root = await signIn(server, ROOT.username, ROOT.password);
    const rows = [];
    for (let i = 0; i < 140; i++) {
      rows.push({
        username: `member${String(i).padStart(3, "0")}`,
        firstName: ["Ada", "Alan", "Grace", "Linus"][i % 4],
        lastName: ["Lovelace", "Turing", "Hopper", "Torvalds"][i % 4],
        roles: i % 10 === 0 ? ["driver"] : i % 7 === 0 ? ["user", "manager"] : ["user"],
        disabled: i % 13 === 0,
      });
    }
    await insertUsers(server, rows);
    await insertUsers(server, [
      { username: "pct.user", firstName: "100%_real", lastName: "O'Brien" },
      { username: "back.slash", firstName: "a\\b", lastName: "Under_score" },
    ]);
  });
  after(() => server.stop());

  for (const protocol of RULE_PROTOCOLS) {
    describe(protocol, () => {
      const users = () => server.users(protocol);

      test("page_size: 0 means 20, 10^9 is clamped to 100, negative is invalid_argument", async () => {
        const first = await users().listUsers({}, bearer(root));
        assert.equal(first.users.length, 20);
        assert.equal(first.totalSize, 143);
        assert.notEqual(first.nextPageToken, "");
        const huge = await users().listUsers({ pageSize: 1_000_000_000 }, bearer(root));
        assert.equal(huge.users.length, 100);
        await invalid(users().listUsers({ pageSize: -1 }, bearer(root)));
      });

      test("walking every page returns every user exactly once, in creation order or by username", async () => {
        const all = await server.sql<{ id: string; username: string }>("select id, username from users order by create_time, id");
        const byTime = await walk(users(), root, { pageSize: 7 });
        assert.deepEqual(byTime.map((u) => u.id), all.map((u) => u.id));
        const byName = await walk(users(), root, { pageSize: 9, orderBy: "username" });
        assert.deepEqual(byName.map((u) => u.username), [...all.map((u) => u.username)].sort());
        const last = await users().listUsers({ pageSize: 100, pageToken: (await users().listUsers({ pageSize: 100 }, bearer(root))).nextPageToken }, bearer(root));
        assert.equal(last.nextPageToken, "", "empty on the last page");
      });

      test("filters: prefix of username, email, first or last name (any case), role, disabled, combined; total_size counts the matches", async () => {
        const check = async (filter: ListOptions["filter"], expected: string) => {
          const rows = await server.sql<{ username: string }>(`select username from users u where ${expected} order by create_time, id`);
          const listed = await walk(users(), root, { pageSize: 50, filter });
          assert.deepEqual(listed.map((u) => u.username), rows.map((r) => r.username), JSON.stringify(filter));
          const { totalSize } = await users().listUsers({ pageSize: 1, filter }, bearer(root));
          assert.equal(totalSize, rows.length, `total_size for ${JSON.stringify(filter)}`);
        };
        await check({ query: "MEMBER01" }, "username like 'member01%'");
        await check({ query: "member010@EXAMPLE" }, "email like 'member010@example%'");
        await check({ query: "gra" }, "lower(first_name) like 'gra%'");
        await check({ query: "TORV" }, "lower(last_name) like 'torv%'");
        await check({ role: "driver" }, "'driver' = any(roles)");
        await check({ role: "manager", query: "member" }, "'manager' = any(roles) and username like 'member%'");
        await check({ disabled: true }, "disabled");
        await check({ disabled: false, role: "user", query: "alan" }, "not disabled and 'user' = any(roles) and lower(first_name) like 'alan%'");
      });

      test("LIKE wildcards and SQL in the query match themselves and nothing else", async () => {
        const query = async (text: string) =>
          (await users().listUsers({ pageSize: 100, filter: { query: text } }, bearer(root))).users.map((u) => u.username);
        assert.deepEqual(await query("%"), []);
        assert.deepEqual(await query("_"), []);
        assert.deepEqual(await query("100%_"), ["pct.user"]);
        assert.deepEqual(await query("100%x"), []);
        assert.deepEqual(await query("a\\"), ["back.slash"]);
        assert.deepEqual(await query("under_"), ["back.slash"]);
        assert.deepEqual(await query("under%"), []);
        assert.deepEqual(await query("o'brien"), ["pct.user"]);
        for (const attack of ["' OR 1=1 --", "'; DROP TABLE users; --", "\\'; select pg_sleep(5); --", ") or (1=1", "$1", "member%' or '1'='1"]) {
          assert.deepEqual(await query(attack), [], attack);
        }
        assert.equal((await server.sql("select count(*)::int as n from users"))[0]!.n, 143);
      });

      test("a tampered, foreign or malformed page token is invalid_argument", async () => {
        const { nextPageToken } = await users().listUsers({ pageSize: 5 }, bearer(root));
        const [body, signature] = nextPageToken.split(".") as [string, string];
        const payload = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as { c: { id: string } };
        payload.c.id = "00000000-0000-0000-0000-000000000000";
        const forged = `${Buffer.from(JSON.stringify(payload)).toString("base64url")}.${signature}`;
        const flipped = nextPageToken.slice(0, -2) + (nextPageToken.at(-2) === "A" ? "B" : "A") + nextPageToken.at(-1);
        for (const pageToken of [forged, flipped, "garbage", `${body}.`, `.${signature}`, `${nextPageToken}.x`, "a".repeat(1025)]) {
          await invalid(users().listUsers({ pageSize: 5, pageToken }, bearer(root)));
        }
        // A token only continues the list it came from: same filter, same order.
        await invalid(users().listUsers({ pageSize: 5, pageToken: nextPageToken, orderBy: "username" }, bearer(root)));
        await invalid(users().listUsers({ pageSize: 5, pageToken: nextPageToken, filter: { role: "driver" } }, bearer(root)));
        // Nor does a token of another list method.
        for (let i = 0; i < 2; i++) {
          await users().createInvitation({ expireTime: timestampFromMs(Date.now() + 3_600_000) }, bearer(root));
        }
        const invitations = await users().listInvitations({ pageSize: 1 }, bearer(root));
        assert.notEqual(invitations.nextPageToken, "");
        await invalid(users().listUsers({ pageSize: 5, pageToken: invitations.nextPageToken }, bearer(root)));
        await invalid(users().listInvitations({ pageSize: 5, pageToken: nextPageToken }, bearer(root)));
        // The untouched token still works, also with another page size.
        assert.equal((await users().listUsers({ pageSize: 3, pageToken: nextPageToken }, bearer(root))).users.length, 3);
      });

      test("unknown role filters and orders are invalid_argument", async () => {
        await invalid(users().listUsers({ filter: { role: "superuser" } }, bearer(root)));
        await invalid(users().listUsers({ orderBy: "email" }, bearer(root)));
        await invalid(users().listUsers({ orderBy: "create_time desc" }, bearer(root)));
      });
    });
  }

  test("a walk returns every user exactly once while users are being created", async () => {
    for (const orderBy of ["create_time", "username"]) {
      const before = await server.sql<{ id: string }>("select id from users");
      let created = 0;
      const seen = await walk(server.users("grpc"), root, { pageSize: 6, orderBy }, async () => {
        // Between every two pages, three new users: some sort before the cursor, some after.
        await Promise.all(
          ["aaa", "mmm", "zzz"].map((prefix) =>
            server.users().createUser(
              { user: { username: uniqueName(prefix), email: `${uniqueName("e")}@example.com` }, password: "plenty of entropy here" },
              bearer(root),
            ),
          ),
        );
        created += 3;
      });
      const ids = seen.map((u) => u.id);
      assert.equal(new Set(ids).size, ids.length, `${orderBy}: no user twice`);
      const missing = before.filter((u) => !ids.includes(u.id));
      assert.deepEqual(missing, [], `${orderBy}: every user that existed before the walk is listed`);
      assert.ok(created > 20);
    }
  });

  test("page tokens are signed with a key in the database, so another instance accepts them", async () => {
    const config = loadConfig({ GATEHOUSE_HOST: "127.0.0.1", GATEHOUSE_PORT: "0", GATEHOUSE_ROLES: "manager,driver", DATABASE_URL: "postgres://unused/x" });
    const other = createApp(config, createLogger("silent"), server.gatehouse.orm);
    const port = await other.listen();
    try {
      const client = createClient(UserService, makeTransport("connect-json", `http://127.0.0.1:${port}`));
      const first = await server.users().listUsers({ pageSize: 10 }, bearer(root));
      const second = await client.listUsers({ pageSize: 10, pageToken: first.nextPageToken }, bearer(root));
      const expected = await server.users().listUsers({ pageSize: 20 }, bearer(root));
      assert.deepEqual(
        [...first.users, ...second.users].map((u) => u.id),
        expected.users.map((u) => u.id),
      );
      const [key] = await server.sql<{ n: number }>("select count(*)::int as n from page_token_keys");
      assert.equal(key!.n, 1);
    } finally {
      await other.close();
    }
  });
});
