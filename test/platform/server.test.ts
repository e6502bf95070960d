import assert from "node:assert/strict";
import { once } from "node:events";
import { connect as http2Connect } from "node:http2";
import { connect as netConnect } from "node:net";
import { after, before, describe, test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { AuthService, RegisterRequestSchema } from "../../gen/gatehouse/auth/v1/auth_pb.js";
import { UserService } from "../../gen/gatehouse/user/v1/user_pb.js";
import { ErrorInfoSchema } from "../../src/platform/errors/error-details.ts";
import { PROTOCOLS, postJson, startTestServer, type TestServer } from "../support/harness.ts";

const register = {
  username: "ada",
  email: "ada@example.com",
  password: "correct horse battery",
  passwordConfirmation: "correct horse battery!",
  firstName: "Ada",
  lastName: "Lovelace",
};

describe("one port, every protocol", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ GATEHOUSE_CORS_ORIGINS: "https://app.example.com" });
  });
  after(() => server.stop());

  for (const protocol of PROTOCOLS) {
    test(`${protocol}: validation errors carry ErrorInfo and the violations`, async () => {
      const error = await server
        .auth(protocol)
        .register(register)
        .then(() => assert.fail("expected an error"), (e: unknown) => ConnectError.from(e));
      assert.equal(error.code, Code.InvalidArgument);
      const [info] = error.findDetails(ErrorInfoSchema);
      assert.equal(info?.domain, "gatehouse");
      assert.equal(info?.reason, "PASSWORD_MISMATCH");
      assert.match(error.rawMessage, /password confirmation/i);
    });
  }

  test("plain curl-style JSON over HTTP/1.1, snake_case and camelCase alike", async () => {
    for (const body of [
      { ...register, passwordConfirmation: undefined, password_confirmation: "nope nope nope" },
      { ...register, username: "a" },
    ]) {
      const res = await postJson(server.baseUrl, "/gatehouse.auth.v1.AuthService/Register", body);
      assert.equal(res.status, 400);
      assert.equal(res.json.code, "invalid_argument");
      assert.ok(typeof res.json.message === "string" && res.json.message.length > 0);
      const details = res.json.details as { type: string }[];
      assert.ok(details.some((d) => d.type === "google.rpc.ErrorInfo"));
    }
  });

  test("gRPC over h2c with prior knowledge, hand-framed, on the same port", async () => {
    const session = http2Connect(server.baseUrl);
    try {
      const message = toBinary(RegisterRequestSchema, create(RegisterRequestSchema, { ...register, username: "x" }));
      const frame = Buffer.alloc(5 + message.length);
      frame.writeUInt32BE(message.length, 1);
      frame.set(message, 5);
      const stream = session.request({
        ":method": "POST",
        ":path": "/gatehouse.auth.v1.AuthService/Register",
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.end(frame);
      const trailers = await new Promise<Record<string, unknown>>((resolve, reject) => {
        let headers: Record<string, unknown> = {};
        stream.on("response", (h) => (headers = h));
        stream.on("trailers", (t) => resolve({ ...headers, ...t }));
        stream.on("error", reject);
        stream.resume();
      });
      assert.equal(trailers["grpc-status"], String(Code.InvalidArgument));
      assert.ok(trailers["grpc-status-details-bin"], "rich error details are sent");
    } finally {
      session.close();
    }
  });

  test("an h2c preface that arrives in pieces still opens an HTTP/2 session", async () => {
    // Raw frames: the sniffed bytes must reach the HTTP/2 session intact, however they were split.
    const socket = netConnect(server.port, "127.0.0.1");
    await once(socket, "connect");
    const received: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => received.push(chunk));
    const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    const frame = (type: number, flags: number, payload: Buffer) => {
      const header = Buffer.alloc(9);
      header.writeUIntBE(payload.length, 0, 3);
      header[3] = type;
      header[4] = flags;
      return Buffer.concat([header, payload]);
    };
    const SETTINGS = 0x4;
    const PING = 0x6;
    const opaque = Buffer.from("gh-ping!");
    try {
      for (const piece of [preface.subarray(0, 3), preface.subarray(3, 16), preface.subarray(16)]) {
        socket.write(piece);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      socket.write(Buffer.concat([frame(SETTINGS, 0, Buffer.alloc(0)), frame(PING, 0, opaque)]));
      const pingAck = Buffer.concat([Buffer.from([0, 0, 8, PING, 0x1, 0, 0, 0, 0]), opaque]);
      for (let waited = 0; !Buffer.concat(received).includes(pingAck) && waited < 5_000; waited += 20) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.ok(Buffer.concat(received).includes(pingAck), "the server acknowledged the PING, so it read the preface");
    } finally {
      socket.destroy();
    }
  });

  test("every method of both services is routed", async () => {
    for (const service of [AuthService, UserService]) {
      for (const method of service.methods) {
        const res = await postJson(server.baseUrl, `/${service.typeName}/${method.name}`, {});
        assert.notEqual(res.status, 404, `${service.typeName}/${method.name} is routed`);
        assert.equal(typeof res.json.code === "string" || res.status === 200, true);
      }
    }
  });

  test("health and readiness", async () => {
    const health = await fetch(`${server.baseUrl}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: "ok" });
    const ready = await fetch(`${server.baseUrl}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: "ready" });
  });

  test("unknown paths get a JSON 404", async () => {
    for (const path of ["/", "/nope", "/gatehouse.auth.v1.AuthService/Nope", "/gatehouse.nope.v1.X/Y"]) {
      const res = await fetch(server.baseUrl + path, { method: path.startsWith("/gatehouse") ? "POST" : "GET" });
      assert.equal(res.status, 404, path);
      const body = (await res.json()) as { code: string; message: string };
      assert.equal(body.code, "not_found");
      assert.ok(body.message.length > 0);
    }
  });

  test("malformed and empty bodies are invalid_argument, never a crash", async () => {
    for (const body of ["{", "not json", '{"username": 5}', '{"unknownField": 1}', "[]"]) {
      const res = await postJson(server.baseUrl, "/gatehouse.auth.v1.AuthService/Register", body);
      assert.equal(res.status, 400, body);
      assert.equal(res.json.code, "invalid_argument", body);
    }
    const empty = await postJson(server.baseUrl, "/gatehouse.auth.v1.AuthService/Register", "");
    assert.equal(empty.json.code, "invalid_argument");
    const res = await fetch(`${server.baseUrl}/gatehouse.auth.v1.AuthService/Register`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "hello",
    });
    assert.equal(res.status, 415);
  });

  test("a request whose authority and target make no URL is a 400, for every protocol, and the server keeps serving", async () => {
    const path = "/gatehouse.auth.v1.AuthService/GetMe";
    const requests = [
      `POST ${path} HTTP/1.0\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}`,
      `POST ${path} HTTP/1.0\r\ncontent-type: application/grpc-web+proto\r\ncontent-length: 0\r\n\r\n`,
      `POST ${path} HTTP/1.1\r\nhost: a b\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}`,
      `POST //[ HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}`,
    ];
    for (const request of requests) {
      const socket = netConnect(server.port, "127.0.0.1");
      socket.end(request);
      const chunks: Buffer[] = [];
      socket.on("data", (chunk: Buffer) => chunks.push(chunk));
      await once(socket, "close");
      const answer = Buffer.concat(chunks).toString("utf8");
      assert.match(answer, /^HTTP\/1\.1 400 /, request);
      assert.match(answer, /"code":"invalid_argument"/, request);
    }
    const session = http2Connect(server.baseUrl);
    try {
      for (const contentType of ["application/json", "application/grpc"]) {
        // With a host header, node's client sends no :authority.
        const stream = session.request({ ":method": "POST", ":path": path, host: "[", "content-type": contentType });
        stream.end();
        const [headers] = (await once(stream, "response")) as [Record<string, unknown>];
        stream.resume();
        assert.equal(headers[":status"], 400, contentType);
      }
    } finally {
      session.close();
    }
    assert.equal((await fetch(`${server.baseUrl}/healthz`)).status, 200, "still serving");
    const me = await postJson(server.baseUrl, path, {});
    assert.equal(me.json.code, "unauthenticated", "RPCs still answered");
  });

  test("a body over the size limit is refused", async () => {
    const res = await postJson(server.baseUrl, "/gatehouse.auth.v1.AuthService/Register", {
      ...register,
      password: "x".repeat(200_000),
    });
    assert.equal(res.json.code, "resource_exhausted");
    assert.doesNotMatch(JSON.stringify(res.json), /xxxxxxxx/);
  });

  test("CORS answers allowed origins only", async () => {
    const preflight = (origin: string) =>
      fetch(`${server.baseUrl}/gatehouse.auth.v1.AuthService/Login`, {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
      });
    const allowed = await preflight("https://app.example.com");
    assert.equal(allowed.status, 204);
    assert.equal(allowed.headers.get("access-control-allow-origin"), "https://app.example.com");
    assert.match(allowed.headers.get("access-control-allow-headers") ?? "", /connect-protocol-version/i);
    const refused = await preflight("https://evil.example.com");
    assert.equal(refused.headers.get("access-control-allow-origin"), null);
    const simple = await postJson(server.baseUrl, "/gatehouse.auth.v1.AuthService/Register", {}, { origin: "https://app.example.com" });
    assert.equal(simple.headers.get("access-control-allow-origin"), "https://app.example.com");
    assert.match(simple.headers.get("access-control-expose-headers") ?? "", /grpc-status/i);
  });
});

describe("the error interceptor", () => {
  test("keeps a deliberate code that has no reason, and hides unexpected errors", async () => {
    const { toWireError } = await import("../../src/platform/errors/error-interceptor.ts");
    const { createLogger } = await import("../../src/platform/observability/logger.ts");
    const logger = createLogger("silent");
    const signal = new AbortController().signal;
    const unimplemented = toWireError(new ConnectError("not here yet", Code.Unimplemented), signal, logger, "X");
    assert.equal(unimplemented.code, Code.Unimplemented);
    const hidden = toWireError(new Error("relation \"users\" does not exist at /src/x.ts:1"), signal, logger, "X");
    assert.equal(hidden.code, Code.Internal);
    assert.doesNotMatch(hidden.message, /relation|users|\.ts/);
    const internal = toWireError(new ConnectError("select * from secrets", Code.Internal), signal, logger, "X");
    assert.doesNotMatch(internal.message, /select/);
  });
});
