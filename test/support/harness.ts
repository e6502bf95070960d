import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { AuthService } from "../../gen/gatehouse/auth/v1/auth_pb.js";
import { UserService } from "../../gen/gatehouse/user/v1/user_pb.js";
import type { Clock } from "../../src/platform/clock.ts";
import { loadConfig } from "../../src/platform/config/config.ts";
import { withDatabase } from "../../src/platform/database/connection-string.ts";
import { createLogger } from "../../src/platform/observability/logger.ts";
import { startGatehouse, type RunningGatehouse } from "../../src/gatehouse.ts";

/** The four ways a caller reaches Gatehouse, each over the transport it really uses. */
export type ProtocolName = "connect-json" | "connect-binary" | "grpc" | "grpc-web";
export const PROTOCOLS: readonly ProtocolName[] = ["connect-json", "connect-binary", "grpc", "grpc-web"];

export interface TestServer {
  readonly baseUrl: string;
  readonly port: number;
  /** This server's own database, for tests that need a connection of their own (to hold a lock, say). */
  readonly databaseUrl: string;
  readonly gatehouse: RunningGatehouse;
  /** Every log line the server wrote, as parsed JSON. */
  readonly logs: Record<string, unknown>[];
  transport(protocol: ProtocolName): Transport;
  auth(protocol?: ProtocolName): Client<typeof AuthService>;
  users(protocol?: ProtocolName): Client<typeof UserService>;
  /** Plain SQL against this server's own database. */
  sql<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]>;
  stop(): Promise<void>;
}

/**
 * Starts a real Gatehouse on a free port against a database of its own, created for it on the
 * run's PostgreSQL (embedded, or the server DATABASE_URL points at) and dropped by `stop()`.
 * Pass a `clock` (see manual-clock.ts) to move time instead of sleeping. With `sameDatabaseAs`,
 * the server is a second instance on another server's database (stop it before that one, which
 * drops the database).
 */
export async function startTestServer(
  env: Record<string, string> = {},
  options: { clock?: Clock; sameDatabaseAs?: TestServer; databaseUrl?: string } = {},
): Promise<TestServer> {
  const adminUrl = process.env.GATEHOUSE_TEST_ADMIN_URL;
  if (!adminUrl) throw new Error("GATEHOUSE_TEST_ADMIN_URL is not set: run the tests with `npm test`");
  // `databaseUrl`: a database the test owns (on a PostgreSQL it starts and stops itself); kept, not dropped.
  const given = options.databaseUrl ?? options.sameDatabaseAs?.databaseUrl;
  const database = given ? undefined : `gatehouse_test_${randomBytes(6).toString("hex")}`;
  if (database) await adminQuery(adminUrl, `CREATE DATABASE "${database}"`);
  const databaseUrl = database ? withDatabase(adminUrl, database) : given!;

  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n")) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const config = loadConfig({
    GATEHOUSE_HOST: "127.0.0.1",
    GATEHOUSE_PORT: "0",
    GATEHOUSE_LOG_LEVEL: "info",
    // Cheap hashing keeps the suite fast; the production defaults are covered by the benchmark.
    GATEHOUSE_ARGON2_MEMORY_KIB: "1024",
    GATEHOUSE_ARGON2_ITERATIONS: "1",
    // Every call of the suite comes from 127.0.0.1, so the per-address limits are off unless a
    // test (test/abuse/) sets them; the per-account throttling keeps its defaults.
    GATEHOUSE_RATE_LIMIT_REGISTER: "off",
    GATEHOUSE_RATE_LIMIT_LOGIN: "off",
    GATEHOUSE_RATE_LIMIT_LOGIN_FAILURES: "off",
    GATEHOUSE_RATE_LIMIT_REFRESH: "off",
    GATEHOUSE_RATE_LIMIT_INTROSPECT: "off",
    ...env,
    DATABASE_URL: databaseUrl,
  });
  const gatehouse = await startGatehouse(config, createLogger(config.logLevel, sink), options);
  const baseUrl = `http://127.0.0.1:${gatehouse.port}`;
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  // An idle connection of this helper pool may be cut when a database is dropped (a second
  // instance's owner stopping first, say); the next query reports it, so the event is not fatal.
  pool.on("error", () => {});

  const transports = new Map<ProtocolName, Transport>();
  const transport = (protocol: ProtocolName): Transport => {
    let made = transports.get(protocol);
    if (!made) {
      made = makeTransport(protocol, baseUrl);
      transports.set(protocol, made);
    }
    return made;
  };

  return {
    baseUrl,
    port: gatehouse.port,
    databaseUrl,
    gatehouse,
    logs,
    transport,
    auth: (protocol = "connect-json") => createClient(AuthService, transport(protocol)),
    users: (protocol = "connect-json") => createClient(UserService, transport(protocol)),
    sql: async (text, values) => (await pool.query(text, values)).rows,
    stop: async () => {
      await pool.end();
      await gatehouse.stop();
      if (database) await adminQuery(adminUrl, `DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
    },
  };
}

/** An empty database of its own on the run's PostgreSQL, for a server started some other way (a child process, say). */
export async function createTestDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const adminUrl = process.env.GATEHOUSE_TEST_ADMIN_URL;
  if (!adminUrl) throw new Error("GATEHOUSE_TEST_ADMIN_URL is not set: run the tests with `npm test`");
  const database = `gatehouse_test_${randomBytes(6).toString("hex")}`;
  await adminQuery(adminUrl, `CREATE DATABASE "${database}"`);
  return {
    url: withDatabase(adminUrl, database),
    drop: () => adminQuery(adminUrl, `DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`),
  };
}

export function makeTransport(protocol: ProtocolName, baseUrl: string): Transport {
  switch (protocol) {
    case "connect-json":
      return createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false });
    case "connect-binary":
      return createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true });
    case "grpc":
      return createGrpcTransport({ baseUrl });
    case "grpc-web":
      return createGrpcWebTransport({ baseUrl, httpVersion: "1.1" });
  }
}

async function adminQuery(url: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

/** POSTs JSON the way `curl -H 'Content-Type: application/json' -d '…'` does. */
export async function postJson(
  baseUrl: string,
  path: string,
  body: string | object,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; json: Record<string, unknown> }> {
  const res = await fetch(baseUrl + path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}
