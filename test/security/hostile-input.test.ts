import assert from "node:assert/strict";
import { connect as netConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import pg from "pg";
import { LoginRequestSchema, RegisterRequestSchema } from "../../gen/gatehouse/auth/v1/auth_pb.js";
import { loadConfig } from "../../src/platform/config/config.ts";
import { PASSWORD, bearer, registerUser, uniqueIdentity } from "../auth/support.ts";
import { postJson, startTestServer, type TestServer } from "../support/harness.ts";
import { GrpcStatus, eventually, grpcFrame, rawGrpc, rawPost } from "./support.ts";

const AUTH = "/gatehouse.auth.v1.AuthService";
const USERS = "/gatehouse.user.v1.UserService";
const JSON_HEADERS = { "content-type": "application/json" };

describe("hostile input", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.stop());

  /** The server still answers, and answers correctly. */
  const stillServes = async () => {
    assert.equal((await fetch(`${server.baseUrl}/healthz`)).status, 200);
    const { user } = await registerUser(server.auth());
    assert.ok(user.id);
  };

  describe("size limit (GATEHOUSE_MAX_REQUEST_BYTES, 64 KiB) before parsing, compressed bodies by their inflated size", () => {
    // 8 MiB of JSON that gzip squeezes to a few KiB: a decompression bomb in miniature.
    const inflated = JSON.stringify({ username: "bomb", email: "bomb@example.com", password: "x".repeat(8 * 1024 * 1024) });
    const bomb = gzipSync(inflated);

    test("Connect: a small gzip body that inflates past the limit is resource_exhausted", async () => {
      assert.ok(bomb.length < 64 * 1024, `the compressed body (${bomb.length} bytes) is itself under the limit`);
      const res = await rawPost(server.baseUrl, `${AUTH}/Register`, bomb, { ...JSON_HEADERS, "content-encoding": "gzip" });
      assert.equal(res.json?.code, "resource_exhausted", res.text.slice(0, 300));
      assert.doesNotMatch(res.text, /xxxxxxxx/);
      await stillServes();
    });

    test("gRPC with grpc-encoding gzip: the same bomb as a compressed message is RESOURCE_EXHAUSTED", async () => {
      const message = toBinary(
        RegisterRequestSchema,
        create(RegisterRequestSchema, { username: "bomb", email: "bomb@example.com", password: "x".repeat(8 * 1024 * 1024) }),
      );
      const compressed = gzipSync(message);
      assert.ok(compressed.length < 64 * 1024);
      const res = await rawGrpc(server.baseUrl, `${AUTH}/Register`, grpcFrame(compressed, { compressed: true }), { "grpc-encoding": "gzip" });
      assert.equal(res.grpcStatus, GrpcStatus.RESOURCE_EXHAUSTED, res.grpcMessage);
      await stillServes();
    });

    test("gRPC: an envelope that declares 1 GiB is refused before it is read; a truncated one is invalid", async () => {
      const huge = await rawGrpc(server.baseUrl, `${AUTH}/Login`, grpcFrame(new Uint8Array(10), { declaredLength: 1024 ** 3 }));
      assert.equal(huge.grpcStatus, GrpcStatus.RESOURCE_EXHAUSTED, huge.grpcMessage);
      const truncated = await rawGrpc(server.baseUrl, `${AUTH}/Login`, grpcFrame(new Uint8Array(10), { declaredLength: 100 }));
      assert.equal(truncated.grpcStatus, GrpcStatus.INVALID_ARGUMENT, truncated.grpcMessage);
      await stillServes();
    });

    test("Connect: a plain body over the limit is refused, and so is one that only claims to be small", async () => {
      const big = await rawPost(server.baseUrl, `${AUTH}/Login`, JSON.stringify({ email: "a@example.com", password: "y".repeat(100_000) }), JSON_HEADERS);
      assert.equal(big.json?.code, "resource_exhausted");
      assert.doesNotMatch(big.text, /yyyyyyyy/);
    });
  });

  describe("requests that cannot be decoded are invalid_argument in every protocol, never internal or a hung call", () => {
    const LOGIN = `${AUTH}/Login`;
    test("a JSON key with a lone surrogate (echoed in the error) over gRPC, gRPC-Web and Connect", async () => {
      const body = Buffer.from('{"bogus\\ud800":1}');
      const grpc = await rawGrpc(server.baseUrl, LOGIN, grpcFrame(body), { "content-type": "application/grpc+json" });
      assert.equal(grpc.grpcStatus, GrpcStatus.INVALID_ARGUMENT, grpc.grpcMessage);
      const web = await rawPost(server.baseUrl, LOGIN, grpcFrame(body), { "content-type": "application/grpc-web+json" });
      assert.match(web.text, /grpc-status: ?3\b/);
      const connect = await rawPost(server.baseUrl, LOGIN, body, JSON_HEADERS);
      assert.equal(connect.json?.code, "invalid_argument");
    });

    test("a body that does not inflate, over Connect POST, Connect GET and gRPC", async () => {
      const notGzip = Buffer.from("this is not gzip at all");
      const post = await rawPost(server.baseUrl, LOGIN, notGzip, { ...JSON_HEADERS, "content-encoding": "gzip" });
      assert.equal(post.json?.code, "invalid_argument", post.text);
      const get = await fetch(`${server.baseUrl}${AUTH}/GetMe?encoding=json&message=%7B&compression=gzip&connect=v1`);
      assert.equal(((await get.json()) as { code: string }).code, "invalid_argument");
      const grpc = await rawGrpc(server.baseUrl, LOGIN, grpcFrame(notGzip, { compressed: true }), { "grpc-encoding": "gzip" });
      assert.equal(grpc.grpcStatus, GrpcStatus.INVALID_ARGUMENT, grpc.grpcMessage);
    });

    test("the gRPC health and reflection services too: a malformed message is INVALID_ARGUMENT", async () => {
      const truncated = grpcFrame(Uint8Array.of(0x0a, 0x20, 0x61));
      const health = await rawGrpc(server.baseUrl, "/grpc.health.v1.Health/Check", truncated);
      assert.equal(health.grpcStatus, GrpcStatus.INVALID_ARGUMENT, health.grpcMessage);
    });

    test("gRPC: a message flagged compressed without grpc-encoding, no message, and two messages for a unary call", async () => {
      const message = toBinary(LoginRequestSchema, create(LoginRequestSchema, { identifier: { case: "email", value: "a@example.com" }, password: "x" }));
      for (const [what, body] of [
        ["flagged compressed", grpcFrame(message, { compressed: true })],
        ["no message", Buffer.alloc(0)],
        ["two messages", Buffer.concat([grpcFrame(message), grpcFrame(message)])],
      ] as const) {
        const grpc = await rawGrpc(server.baseUrl, LOGIN, body);
        assert.equal(grpc.grpcStatus, GrpcStatus.INVALID_ARGUMENT, `${what}: ${grpc.grpcMessage}`);
        const web = await rawPost(server.baseUrl, LOGIN, body, { "content-type": "application/grpc-web+proto" });
        assert.match(web.text, /grpc-status: ?3\b/, what);
      }
      await stillServes();
      assert.deepEqual(server.logs.filter((line) => line.level === "error"), []);
    });
  });

  describe("names: control characters and invalid UTF-8 are refused", () => {
    /** A RegisterRequest written by hand, so a string field can carry bytes no encoder would produce. */
    const registerWithRawName = (field: "username" | "first_name", bytes: number[]) => {
      const { username, email } = uniqueIdentity("utf");
      const str = (n: number, value: Buffer) => Buffer.concat([Buffer.from([(n << 3) | 2, value.length]), value]);
      return Buffer.concat([
        str(1, field === "username" ? Buffer.from(bytes) : Buffer.from(username)),
        str(2, Buffer.from(email)),
        str(3, Buffer.from(PASSWORD)),
        ...(field === "first_name" ? [str(5, Buffer.from(bytes))] : []),
      ]);
    };
    const invalidUtf8 = [0x41, 0x64, 0xff, 0x61]; // "Ad", a byte that never occurs in UTF-8, "a"
    const overlong = [0x41, 0xc0, 0xaf, 0x61]; // an overlong "/" — a classic filter bypass

    for (const field of ["username", "first_name"] as const) {
      test(`binary protobuf over Connect and gRPC: invalid UTF-8 in ${field} is invalid_argument`, async () => {
        for (const bytes of [invalidUtf8, overlong]) {
          const body = registerWithRawName(field, bytes);
          const connect = await rawPost(server.baseUrl, `${AUTH}/Register`, body, { "content-type": "application/proto" });
          assert.equal(connect.status, 400, connect.text);
          assert.equal(connect.headers.get("content-type"), "application/json");
          assert.equal(connect.json?.code, "invalid_argument");
          const grpc = await rawGrpc(server.baseUrl, `${AUTH}/Register`, grpcFrame(body));
          assert.equal(grpc.grpcStatus, GrpcStatus.INVALID_ARGUMENT, grpc.grpcMessage);
        }
      });
    }

    test("JSON: invalid UTF-8 bytes in a name are invalid_argument, not silently replaced", async () => {
      const { username, email } = uniqueIdentity("utfj");
      for (const [field, bytes] of [
        ["username", invalidUtf8],
        ["firstName", invalidUtf8],
        ["lastName", overlong],
      ] as const) {
        const body = Buffer.concat([
          Buffer.from(`{"username":"${field === "username" ? "" : username}`),
          Buffer.from(field === "username" ? bytes : []),
          Buffer.from(`","email":"${email}","password":"${PASSWORD}"`),
          field === "username" ? Buffer.alloc(0) : Buffer.concat([Buffer.from(`,"${field}":"`), Buffer.from(bytes), Buffer.from('"')]),
          Buffer.from("}"),
        ]);
        const res = await rawPost(server.baseUrl, `${AUTH}/Register`, body, JSON_HEADERS);
        assert.equal(res.json?.code, "invalid_argument", `${field}: ${res.text}`);
      }
      assert.equal((await server.sql("select 1 from users where email = $1", [email])).length, 0, "nobody was registered");
      const replaced = await server.sql("select 1 from users where first_name like '%' || chr(65533) || '%' or last_name like '%' || chr(65533) || '%'");
      assert.equal(replaced.length, 0, "no name holds U+FFFD");
    });

    test("control characters, CR/LF and NUL in names are VALIDATION_FAILED over JSON", async () => {
      for (const firstName of ["Ada\r\nSet-Cookie: x=1", "Ada\u0000", "\u001b[31mAda", "Ada\u007f"]) {
        const { username, email } = uniqueIdentity("ctl");
        const res = await postJson(server.baseUrl, `${AUTH}/Register`, { username, email, password: PASSWORD, firstName });
        assert.equal(res.json.code, "invalid_argument", JSON.stringify(firstName));
      }
    });
  });

  describe("JSON objects: __proto__, constructor and duplicate keys change nothing", () => {
    test("__proto__ and constructor keys are refused as unknown fields and pollute nothing", async () => {
      const { username, email } = uniqueIdentity("proto");
      const bodies = [
        `{"username":"${username}","email":"${email}","password":"${PASSWORD}","__proto__":{"roles":["admin"],"isAdmin":true}}`,
        `{"username":"${username}","email":"${email}","password":"${PASSWORD}","constructor":{"prototype":{"isAdmin":true}}}`,
        `{"username":"${username}","email":"${email}","password":"${PASSWORD}","__proto__":null}`,
      ];
      for (const body of bodies) {
        const res = await rawPost(server.baseUrl, `${AUTH}/Register`, body, JSON_HEADERS);
        assert.equal(res.json?.code, "invalid_argument", body);
      }
      assert.equal(({} as Record<string, unknown>).isAdmin, undefined, "Object.prototype is untouched");
      assert.equal(({} as Record<string, unknown>).roles, undefined);
      assert.equal((await server.sql("select 1 from users where email = $1", [email])).length, 0);

      // Nested, inside a message field: UpdateUser by the user itself.
      const self = await registerUser(server.auth());
      const nested = await rawPost(
        server.baseUrl,
        `${USERS}/UpdateUser`,
        `{"user":{"id":"${self.user.id}","firstName":"Changed","__proto__":{"roles":["admin"]}}}`,
        { ...JSON_HEADERS, authorization: `Bearer ${self.tokens.accessToken}` },
      );
      assert.equal(nested.json?.code, "invalid_argument");
      const [row] = await server.sql<{ roles: string[]; first_name: string }>("select roles, first_name from users where id = $1", [self.user.id]);
      assert.deepEqual([row!.roles, row!.first_name], [["user"], "Test"]);
    });

    test("a duplicate key cannot smuggle a role or change a field behind a check", async () => {
      const self = await registerUser(server.auth());
      const auth = { ...JSON_HEADERS, authorization: `Bearer ${self.tokens.accessToken}` };
      const smuggled = await rawPost(
        server.baseUrl,
        `${USERS}/UpdateUser`,
        `{"user":{"id":"${self.user.id}","roles":["user"],"roles":["admin"]},"updateMask":"roles"}`,
        auth,
      );
      // protobuf-es refuses duplicate keys outright; were the last one taken, it would be ADMIN_REQUIRED.
      assert.ok(["invalid_argument", "permission_denied"].includes(String(smuggled.json?.code)), smuggled.text);
      const [row] = await server.sql<{ roles: string[] }>("select roles from users where id = $1", [self.user.id]);
      assert.deepEqual(row!.roles, ["user"]);

      // An ordinary field given twice takes one of its values, never a mix, and nothing else moves.
      const twice = await rawPost(
        server.baseUrl,
        `${USERS}/UpdateUser`,
        `{"user":{"id":"${self.user.id}","firstName":"First","firstName":"Second","first_name":"Third"}}`,
        auth,
      );
      if (twice.status === 200) {
        const [after] = await server.sql<{ first_name: string; roles: string[]; disabled: boolean }>(
          "select first_name, roles, disabled from users where id = $1",
          [self.user.id],
        );
        assert.ok(["First", "Second", "Third"].includes(after!.first_name));
        assert.deepEqual([after!.roles, after!.disabled], [["user"], false]);
      } else {
        assert.equal(twice.json?.code, "invalid_argument", twice.text);
      }
    });
  });

  test("token answers are sent with Cache-Control: no-store (Register, Login, Refresh, ChangePassword) — errors too", async () => {
    const { username, email } = uniqueIdentity("cache");
    const register = await postJson(server.baseUrl, `${AUTH}/Register`, { username, email, password: PASSWORD });
    assert.equal(register.status, 200);
    const login = await postJson(server.baseUrl, `${AUTH}/Login`, { email, password: PASSWORD });
    const tokens = login.json.tokens as { accessToken: string; refreshToken: string };
    const refresh = await postJson(server.baseUrl, `${AUTH}/Refresh`, { refreshToken: tokens.refreshToken });
    const newTokens = refresh.json.tokens as { accessToken: string };
    const change = await postJson(
      server.baseUrl,
      `${AUTH}/ChangePassword`,
      { currentPassword: PASSWORD, newPassword: "an entirely new passphrase" },
      bearer(newTokens.accessToken).headers,
    );
    const failed = await postJson(server.baseUrl, `${AUTH}/Login`, { email, password: "wrong wrong wrong" });
    for (const [name, res] of Object.entries({ register, login, refresh, change, failed })) {
      if (name !== "failed") assert.equal(res.status, 200, `${name}: ${JSON.stringify(res.json)}`);
      assert.equal(res.headers.get("cache-control"), "no-store", name);
    }
    // And over gRPC the header is there too (harmless, and proxies that cache gRPC-Web see it).
    const grpc = await rawGrpc(
      server.baseUrl,
      `${AUTH}/Login`,
      grpcFrame(toBinary(LoginRequestSchema, create(LoginRequestSchema, { identifier: { case: "email", value: email }, password: "an entirely new passphrase" }))),
    );
    assert.equal(grpc.grpcStatus, GrpcStatus.OK, grpc.grpcMessage);
    assert.match(grpc.text, /"cache-control":"no-store"/);
  });
});

describe("deadlines: honoured, capped, and the query they cut short is cancelled", () => {
  let server: TestServer;
  let capped: TestServer;
  before(async () => {
    // statement_timeout follows GATEHOUSE_MAX_CALL_TIMEOUT (30 s here), far longer than these
    // tests wait: a query that goes away sooner was cancelled because its call ended.
    [server, capped] = await Promise.all([startTestServer(), startTestServer({ GATEHOUSE_MAX_CALL_TIMEOUT: "1500ms" })]);
  });
  after(() => Promise.all([server.stop(), capped.stop()]));

  /** Holds an ACCESS EXCLUSIVE lock on `users` so that any call reading it waits in PostgreSQL. */
  async function lockUsers(target: TestServer): Promise<{ release: () => Promise<void> }> {
    const client = new pg.Client({ connectionString: target.databaseUrl });
    await client.connect();
    await client.query("begin");
    await client.query("lock table users in access exclusive mode");
    return {
      release: async () => {
        await client.query("rollback");
        await client.end();
      },
    };
  }
  /** Gatehouse's own connections that are waiting for a lock right now. */
  const waiting = async (target: TestServer) =>
    (
      await target.sql<{ n: number }>(
        "select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name = 'gatehouse' and wait_event_type = 'Lock'",
      )
    )[0]!.n;

  const loginJson = (email: string) => JSON.stringify({ email, password: PASSWORD });
  const loginProto = (email: string) =>
    grpcFrame(toBinary(LoginRequestSchema, create(LoginRequestSchema, { identifier: { case: "email", value: email }, password: PASSWORD })));

  test("a 1 ms deadline is deadline_exceeded over Connect and gRPC, never internal; nothing is left half-written", async () => {
    const codes = new Set<string>();
    const emails: string[] = [];
    for (let i = 0; i < 12; i++) {
      const { username, email } = uniqueIdentity("dl");
      emails.push(email);
      const body = JSON.stringify({ username, email, password: PASSWORD });
      if (i % 2 === 0) {
        const res = await rawPost(server.baseUrl, `${AUTH}/Register`, body, { ...JSON_HEADERS, "connect-timeout-ms": "1" });
        codes.add(String(res.json?.code ?? res.status));
      } else {
        const proto = toBinary(RegisterRequestSchema, create(RegisterRequestSchema, { username, email, password: PASSWORD }));
        const res = await rawGrpc(server.baseUrl, `${AUTH}/Register`, grpcFrame(proto), { "grpc-timeout": "1m" });
        codes.add(res.grpcStatus === GrpcStatus.DEADLINE_EXCEEDED ? "deadline_exceeded" : `grpc ${res.grpcStatus} ${res.grpcMessage}`);
      }
    }
    assert.deepEqual([...codes], ["deadline_exceeded"]);
    // Whatever got written before the deadline is whole: every user has its session.
    await eventually(async () => (await server.sql("select 1 from pg_stat_activity where datname = current_database() and application_name = 'gatehouse' and state = 'active' and pid <> pg_backend_pid()")).length === 0, { attempts: 40 });
    const halves = await server.sql(
      "select u.email from users u where u.email = any($1) and not exists (select 1 from sessions s where s.user_id = u.id)",
      [emails],
    );
    assert.deepEqual(halves, []);
  });

  for (const protocol of ["connect", "grpc"] as const) {
    test(`${protocol}: a client deadline ends the call, and the query it was waiting on is cancelled in PostgreSQL`, async () => {
      const { email } = await registerUser(server.auth());
      const lock = await lockUsers(server);
      try {
        const call =
          protocol === "connect"
            ? rawPost(server.baseUrl, `${AUTH}/Login`, loginJson(email), { ...JSON_HEADERS, "connect-timeout-ms": "1000" }).then((r) => String(r.json?.code))
            : rawGrpc(server.baseUrl, `${AUTH}/Login`, loginProto(email), { "grpc-timeout": "1000m" }).then((r) => `grpc ${r.grpcStatus}`);
        assert.ok(await eventually(async () => (await waiting(server)) > 0), "the call's query waits for the lock");
        assert.equal(await call, protocol === "connect" ? "deadline_exceeded" : `grpc ${GrpcStatus.DEADLINE_EXCEEDED}`);
        assert.ok(await eventually(async () => (await waiting(server)) === 0), "the waiting query was cancelled, long before its 30 s statement_timeout");
      } finally {
        await lock.release();
      }
    });
  }

  test("a one-day deadline is accepted but capped at GATEHOUSE_MAX_CALL_TIMEOUT, over Connect and gRPC", async () => {
    const { email } = await registerUser(capped.auth());
    // Not refused: a call that finishes in time succeeds with a one-day deadline.
    const quick = await rawPost(capped.baseUrl, `${AUTH}/Login`, loginJson(email), { ...JSON_HEADERS, "connect-timeout-ms": "86400000" });
    assert.equal(quick.status, 200, quick.text);
    const quickGrpc = await rawGrpc(capped.baseUrl, `${AUTH}/Login`, loginProto(email), { "grpc-timeout": "24H" });
    assert.equal(quickGrpc.grpcStatus, GrpcStatus.OK, quickGrpc.grpcMessage);

    const lock = await lockUsers(capped);
    try {
      const connect = await rawPost(capped.baseUrl, `${AUTH}/Login`, loginJson(email), { ...JSON_HEADERS, "connect-timeout-ms": "86400000" });
      assert.equal(connect.json?.code, "deadline_exceeded", connect.text);
      const grpc = await rawGrpc(capped.baseUrl, `${AUTH}/Login`, loginProto(email), { "grpc-timeout": "24H" });
      assert.equal(grpc.grpcStatus, GrpcStatus.DEADLINE_EXCEEDED, grpc.grpcMessage);
      // And with no deadline at all.
      const none = await rawPost(capped.baseUrl, `${AUTH}/Login`, loginJson(email), JSON_HEADERS);
      assert.equal(none.json?.code, "deadline_exceeded");
      assert.ok(await eventually(async () => (await waiting(capped)) === 0));
    } finally {
      await lock.release();
    }
  });
});

describe("slow clients (slowloris) are cut off by the server's timeouts", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ GATEHOUSE_HEADERS_TIMEOUT: "500ms" });
  });
  after(() => server.stop());

  /** Sends `bytes` one at a time, `gapMs` apart, until the server closes the connection; returns how many went out. */
  async function trickle(bytes: Buffer, gapMs = 20): Promise<{ sent: number; closed: boolean; answer: string }> {
    const socket = netConnect({ host: "127.0.0.1", port: server.port });
    let closed = false;
    let answer = "";
    socket.on("data", (chunk: Buffer) => (answer += chunk.toString("latin1")));
    socket.on("error", () => {});
    socket.on("close", () => (closed = true));
    await new Promise((resolve) => socket.once("connect", resolve));
    let sent = 0;
    for (; sent < bytes.length && !closed; sent++) {
      socket.write(bytes.subarray(sent, sent + 1));
      await sleep(gapMs);
    }
    socket.destroy();
    return { sent, closed, answer };
  }

  test("HTTP/1.1 headers dripped byte by byte: the server closes the connection within the headers timeout", async () => {
    // 500 bytes at 20 ms each would take 10 s, twenty times the headers timeout.
    const request = Buffer.from(`POST ${AUTH}/Login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ${"a".repeat(440)}\r\n\r\n`);
    const { sent, closed, answer } = await trickle(request);
    assert.ok(closed, "the server closed the connection");
    assert.ok(sent < request.length, `cut off after ${sent} of ${request.length} bytes`);
    assert.match(answer, /^$|^HTTP\/1\.1 408/, "at most a 408 on the way out");
    assert.equal((await fetch(`${server.baseUrl}/healthz`)).status, 200);
  });

  test("over TLS too: HTTP/1.1 headers dripped after the handshake are cut off", async () => {
    const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));
    const secure = await startTestServer({
      GATEHOUSE_HEADERS_TIMEOUT: "500ms",
      GATEHOUSE_TLS_CERT_FILE: `${fixtures}localhost-cert.pem`,
      GATEHOUSE_TLS_KEY_FILE: `${fixtures}localhost-key.pem`,
    });
    try {
      const socket = tlsConnect({ host: "127.0.0.1", port: secure.port, ALPNProtocols: ["http/1.1"], rejectUnauthorized: false });
      let closed = false;
      socket.on("error", () => {});
      socket.on("close", () => (closed = true));
      await new Promise((resolve) => socket.once("secureConnect", resolve));
      const request = Buffer.from(`POST ${AUTH}/Login HTTP/1.1\r\nHost: localhost\r\nX-Padding: ${"a".repeat(440)}\r\n\r\n`);
      let sent = 0;
      for (; sent < request.length && !closed; sent++) {
        socket.write(request.subarray(sent, sent + 1));
        await sleep(20);
      }
      socket.destroy();
      assert.ok(closed && sent < request.length, `cut off after ${sent} of ${request.length} bytes`);
    } finally {
      await secure.stop();
    }
  });

  test("the timeouts are configuration, checked at start-up", () => {
    const config = loadConfig({ GATEHOUSE_HEADERS_TIMEOUT: "2s", GATEHOUSE_REQUEST_TIMEOUT: "30s", GATEHOUSE_IDLE_TIMEOUT: "90s" });
    assert.deepEqual([config.headersTimeoutMs, config.requestTimeoutMs, config.idleTimeoutMs], [2_000, 30_000, 90_000]);
    const defaults = loadConfig({});
    assert.deepEqual([defaults.headersTimeoutMs, defaults.requestTimeoutMs, defaults.idleTimeoutMs], [10_000, 60_000, 60_000]);
    assert.throws(() => loadConfig({ GATEHOUSE_HEADERS_TIMEOUT: "2m", GATEHOUSE_REQUEST_TIMEOUT: "1m" }), /GATEHOUSE_HEADERS_TIMEOUT must not be longer than GATEHOUSE_REQUEST_TIMEOUT/);
    assert.throws(() => loadConfig({ GATEHOUSE_IDLE_TIMEOUT: "soon" }), /GATEHOUSE_IDLE_TIMEOUT="soon" is not a duration/);
  });

  test("the HTTP/2 preface dripped byte by byte is cut off too", async () => {
    // 24 bytes at 50 ms each: the preface alone outlasts the 500 ms allowed to tell the protocol.
    const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    const { sent, closed } = await trickle(preface, 50);
    assert.ok(closed);
    assert.ok(sent < preface.length, `cut off after ${sent} of ${preface.length} bytes`);
  });
});
