import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { createClient } from "@connectrpc/connect";
import { AuthService } from "../../gen/gatehouse/auth/v1/auth_pb.js";
import { startGatehouse } from "../../src/gatehouse.ts";
import { loadConfig } from "../../src/platform/config/config.ts";
import { startEmbeddedPostgres } from "../../src/platform/database/embedded-postgres.ts";
import { readConnectionString } from "../../src/platform/database/connection-string.ts";
import { createLogger } from "../../src/platform/observability/logger.ts";
import { PASSWORD, registerUser } from "../auth/support.ts";
import { makeTransport } from "../support/harness.ts";

/** These start PostgreSQL clusters of their own, in folders of their own. */
describe("the embedded PostgreSQL", () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });
  const folder = async (prefix: string) => {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  };
  const mode = async (path: string) => (await stat(path)).mode & 0o777;

  test("Gatehouse without DATABASE_URL reaches it over a Unix socket only its own OS user may use", async () => {
    const dataDir = join(await folder("gatehouse-socket-"), ".gatehouse");
    const config = loadConfig({
      GATEHOUSE_DATA_DIR: dataDir,
      GATEHOUSE_HOST: "127.0.0.1",
      GATEHOUSE_PORT: "0",
      GATEHOUSE_ARGON2_MEMORY_KIB: "1024",
      GATEHOUSE_ARGON2_ITERATIONS: "1",
      GATEHOUSE_RATE_LIMIT_REGISTER: "off",
    });
    const gatehouse = await startGatehouse(config, createLogger("error"));
    let stopped = false;
    cleanups.push(async () => {
      if (!stopped) await gatehouse.stop();
    });
    const auth = createClient(AuthService, makeTransport("connect-json", `http://127.0.0.1:${gatehouse.port}`));
    const user = await registerUser(auth);
    await auth.login({ identifier: { case: "username", value: user.username }, password: PASSWORD });

    const target = readConnectionString(String(gatehouse.orm.config.get("clientUrl")));
    const socketDir = join(dataDir, "socket");
    assert.deepEqual([target.host, target.unixSocket], [socketDir, true], "the URL Gatehouse uses names the socket directory");
    assert.equal(await mode(socketDir), 0o700, "the socket directory is closed to other users");
    assert.equal(await mode(join(socketDir, `.s.PGSQL.${target.port}`)), 0o700, "so is the socket");

    const [seen] = await gatehouse.orm.em.getConnection().execute<{ tcp: number; socket: number; mine: string | null }[]>(
      `select count(*) filter (where client_addr is not null)::int as tcp, count(*) filter (where client_addr is null)::int as socket,
              host(inet_client_addr()) as mine
         from pg_stat_activity where application_name like 'gatehouse%'`,
    );
    assert.equal(seen!.mine, null, "this pool connection has no client address: it is a Unix-socket connection");
    assert.ok(seen!.socket >= 2, `the pool and the notification listener connect over the socket (saw ${seen!.socket})`);
    assert.equal(seen!.tcp, 0, "no Gatehouse connection uses TCP");

    await gatehouse.stop();
    stopped = true;
    assert.deepEqual(await readdir(socketDir), [], "PostgreSQL leaves no socket behind when it stops");
  });

  test("a data directory too deep for a socket address gets a short socket directory of its own, gone once it stops; a restart finds it again", async () => {
    const dataDir = join(await folder("gatehouse-deep-"), "d".repeat(90));
    await mkdir(dataDir);
    const logger = createLogger("silent");
    const first = await startEmbeddedPostgres(dataDir, logger);
    let running = first;
    cleanups.push(() => running.stop());
    assert.ok(first.socketDir, "it still has a Unix socket");
    assert.ok(!first.socketDir.startsWith(dataDir), "outside the data directory");
    assert.ok(Buffer.byteLength(join(first.socketDir, `.s.PGSQL.${first.port}`)) <= 107);
    assert.equal(await mode(first.socketDir), 0o700);
    assert.equal(readConnectionString(first.url).host, first.socketDir);

    await first.stop();
    assert.equal(existsSync(first.socketDir), false, "the directory goes with the cluster");

    // Clients keep their URL across a restart on the same port (tests restart clusters that way).
    running = await startEmbeddedPostgres(dataDir, logger, { port: first.port });
    assert.equal(running.url, first.url);
    assert.equal(running.socketDir, first.socketDir);
  });
});
