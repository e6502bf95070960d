import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, describe, test } from "node:test";
import * as argon2 from "argon2";
import pg from "pg";
import { connectDatabase, startGatehouse } from "../../src/gatehouse.ts";
import { loadConfig } from "../../src/platform/config/config.ts";
import { createLogger } from "../../src/platform/observability/logger.ts";
import { MAIN, runGatehouse } from "../support/process.ts";
import { BOOTSTRAP_ENV, ROOT } from "./support.ts";

const adminUrl = () => {
  const url = process.env.GATEHOUSE_TEST_ADMIN_URL;
  assert.ok(url, "run through npm test");
  return url;
};

async function adminQuery(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl() });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

/** An empty database of its own, dropped after the suite. */
async function freshDatabase(cleanups: (() => Promise<void>)[]): Promise<{ url: string; query: <R>(text: string, values?: unknown[]) => Promise<R[]> }> {
  const name = `gatehouse_admin_${Date.now().toString(36)}${Math.floor(Math.random() * 1e6)}`;
  await adminQuery(`CREATE DATABASE "${name}"`);
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 2 });
  cleanups.push(async () => {
    await pool.end();
    await adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  });
  return { url: url.toString(), query: async <R>(text: string, values?: unknown[]) => (await pool.query(text, values)).rows as R[] };
}

/** Runs `gatehouse <args>` with `input` piped to its standard input. */
function runWithStdin(args: string[], env: Record<string, string>, input: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    env: { PATH: process.env.PATH ?? "", GATEHOUSE_LOG_LEVEL: "warn", GATEHOUSE_ARGON2_MEMORY_KIB: "1024", GATEHOUSE_ARGON2_ITERATIONS: "1", ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
  child.stdin.end(input);
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, stdout, stderr })));
}

interface AdminRow {
  username: string;
  email: string;
  roles: string[];
  password_hash: string;
}

describe("the first admin", () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const cleanup of cleanups) await cleanup();
  });

  test("gatehouse create-admin reads the password from stdin and creates an admin that can sign in", async () => {
    const db = await freshDatabase(cleanups);
    const password = "quartz harbour lullaby";
    const res = await runWithStdin(
      ["create-admin", "--email", "Ops@Example.COM", "--username", "Ops.Lead", "--first-name", "Olga"],
      { DATABASE_URL: db.url },
      `${password}\r\n`,
    );
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /Created admin "ops.lead" <ops@example.com>/);
    const [row] = await db.query<AdminRow & { first_name: string }>("select username, email, roles, password_hash, first_name from users");
    assert.deepEqual([row!.username, row!.email, row!.roles, row!.first_name], ["ops.lead", "ops@example.com", ["admin"], "Olga"]);
    assert.ok(await argon2.verify(row!.password_hash, password), "the piped password, without its line ending");
    assert.ok(!res.stdout.includes(password) && !res.stderr.includes(password), "the password is never echoed");

    const again = await runWithStdin(["create-admin", "--email", "other@example.com", "--username", "ops.lead"], { DATABASE_URL: db.url }, password);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /username is already taken/);
  });

  test("gatehouse create-admin never takes a password argument, and refuses weak passwords and bad input", async () => {
    const db = await freshDatabase(cleanups);
    const env = { DATABASE_URL: db.url };
    const argv = await runWithStdin(["create-admin", "--email", "a@example.com", "--username", "alice", "--password", "quartz harbour lullaby"], env, "");
    assert.equal(argv.code, 2);
    assert.match(argv.stderr, /never taken from the command line/);
    const weak = await runWithStdin(["create-admin", "--email", "a@example.com", "--username", "alice"], env, "password\n");
    assert.equal(weak.code, 1);
    assert.match(weak.stderr, /commonly used/);
    const same = await runWithStdin(["create-admin", "--email", "a@example.com", "--username", "alice"], env, "a@example.com");
    assert.equal(same.code, 1);
    const email = await runWithStdin(["create-admin", "--email", "not-an-email", "--username", "alice"], env, "quartz harbour lullaby");
    assert.equal(email.code, 1);
    assert.match(email.stderr, /email/);
    const missing = await runWithStdin(["create-admin", "--username", "alice"], env, "quartz harbour lullaby");
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--email is required/);
    const empty = await runWithStdin(["create-admin", "--email", "a@example.com", "--username", "alice"], env, "");
    assert.equal(empty.code, 1);
    assert.equal((await db.query("select 1 from users")).length, 0, "nothing was created");
  });

  test("GATEHOUSE_BOOTSTRAP_ADMIN_* creates the admin on the first start only, also when instances start together", async () => {
    const db = await freshDatabase(cleanups);
    const env = { GATEHOUSE_HOST: "127.0.0.1", GATEHOUSE_PORT: "0", GATEHOUSE_ARGON2_MEMORY_KIB: "1024", GATEHOUSE_ARGON2_ITERATIONS: "1", DATABASE_URL: db.url };
    const start = (extra: Record<string, string> = {}) =>
      startGatehouse(loadConfig({ ...env, ...BOOTSTRAP_ENV, ...extra }), createLogger("silent"));

    // Migrations first: concurrent first-time migration is not what this test is about.
    const migrated = await connectDatabase(loadConfig(env), createLogger("silent"));
    await migrated.orm.close();
    const started = await Promise.allSettled([start(), start(), start()]);
    const instances = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
    for (const s of started) if (s.status === "rejected") for (const instance of instances) await instance.stop();
    assert.deepEqual(started.map((s) => s.status), ["fulfilled", "fulfilled", "fulfilled"], String(started.find((s) => s.status === "rejected")?.reason));
    const admins = await db.query<AdminRow>("select username, email, roles, password_hash from users");
    assert.equal(admins.length, 1, "three instances starting at once created one admin");
    assert.deepEqual([admins[0]!.username, admins[0]!.email, admins[0]!.roles], [ROOT.username, ROOT.email, ["admin"]]);
    assert.ok(await argon2.verify(admins[0]!.password_hash, ROOT.password));
    for (const instance of instances) await instance.stop();

    // A restart with other values changes nothing: an admin exists.
    const restarted = await start({ GATEHOUSE_BOOTSTRAP_ADMIN_USERNAME: "second", GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD: "entirely different words" });
    await restarted.stop();
    const after = await db.query<AdminRow>("select username, email, roles, password_hash from users");
    assert.deepEqual(after, admins);
  });

  test("a bootstrap value Gatehouse refuses stops the start-up with a message naming the variable", async () => {
    const db = await freshDatabase(cleanups);
    const res = await runGatehouse(["serve"], {
      DATABASE_URL: db.url,
      GATEHOUSE_PORT: "0",
      ...BOOTSTRAP_ENV,
      GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD: "password",
    });
    assert.equal(res.code, 78);
    assert.match(res.stderr, /GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD is refused/);
    const bad = await runGatehouse(["serve"], { DATABASE_URL: db.url, GATEHOUSE_PORT: "0", ...BOOTSTRAP_ENV, GATEHOUSE_BOOTSTRAP_ADMIN_USERNAME: "no@at" });
    assert.equal(bad.code, 78);
    assert.match(bad.stderr, /GATEHOUSE_BOOTSTRAP_ADMIN_USERNAME/);
    assert.equal((await db.query("select 1 from users")).length, 0);
  });
});
