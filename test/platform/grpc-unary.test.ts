/**
 * The unary gRPC handler (src/platform/server/grpc-unary.ts) must answer every request exactly as
 * connect-es would with the same service, interceptors and options. Each case here goes, as raw
 * HTTP/2, to two real servers: one behind the unary handler, one with connect-es' adapter alone.
 * The answers (status, headers, body bytes, trailers) must be identical, must be the expected
 * one, and must have come from the path the case is about.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { connect, createServer, type ClientHttp2Session, type Http2Server, constants as h2 } from "node:http2";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { GetMeRequestSchema, IntrospectRequestSchema, RefreshRequestSchema } from "../../gen/gatehouse/auth/v1/auth_pb.js";
import { createGrpcUnaryHandler } from "../../src/platform/server/grpc-unary.ts";
import { READ_MAX_BYTES, fastPathOptions, lastAbort, referenceAdapter } from "../support/unary-fixture.ts";

const fellBack = { count: 0 };
const servers: Http2Server[] = [];
const sessions: ClientHttp2Session[] = [];
let unary: ClientHttp2Session;
let reference: ClientHttp2Session;

async function serve(handler: Parameters<typeof createServer>[1]): Promise<ClientHttp2Session> {
  const server = createServer({}, handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const session = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  sessions.push(session);
  return session;
}

before(async () => {
  unary = await serve(createGrpcUnaryHandler(fastPathOptions(fellBack)));
  reference = await serve(referenceAdapter());
});

after(async () => {
  for (const session of sessions) session.close();
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
});

interface Answer {
  status: number;
  headers: Record<string, unknown>;
  body: string;
  trailers: Record<string, unknown>;
}

function call(session: ClientHttp2Session, path: string, body: Buffer, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      [h2.HTTP2_HEADER_METHOD]: "POST",
      [h2.HTTP2_HEADER_PATH]: path,
      "content-type": "application/grpc+proto",
      te: "trailers",
      ...headers,
    });
    const answer: Answer = { status: 0, headers: {}, body: "", trailers: {} };
    const chunks: Buffer[] = [];
    stream.on("response", (fields) => {
      const { date: _date, ...rest } = Object.fromEntries(Object.entries(fields));
      answer.status = Number(fields[":status"]);
      answer.headers = rest;
    });
    stream.on("trailers", (fields) => (answer.trailers = Object.fromEntries(Object.entries(fields))));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", reject);
    stream.on("close", () => resolve({ ...answer, body: Buffer.concat(chunks).toString("hex") }));
    stream.end(body);
  });
}

/** Sends the same request to both servers; returns the unary handler's answer after checking they match. */
async function both(path: string, body: Buffer, headers?: Record<string, string>, expected: "unary" | "fallback" = "unary"): Promise<Answer> {
  const before = fellBack.count;
  const got = await call(unary, path, body, headers);
  assert.equal(fellBack.count - before, expected === "unary" ? 0 : 1, `answered by the ${expected} path`);
  assert.deepEqual(got, await call(reference, path, body, headers), "the same answer as connect-es alone");
  return got;
}

function envelope(message: Uint8Array, flags = 0): Buffer {
  const frame = Buffer.alloc(5 + message.byteLength);
  frame[0] = flags;
  frame.writeUInt32BE(message.byteLength, 1);
  frame.set(message, 5);
  return frame;
}

const GET_ME = "/gatehouse.auth.v1.AuthService/GetMe";
const INTROSPECT = "/gatehouse.auth.v1.AuthService/Introspect";
const REFRESH = "/gatehouse.auth.v1.AuthService/Refresh";
const getMe = envelope(toBinary(GetMeRequestSchema, create(GetMeRequestSchema)));
const introspect = (token: string) => envelope(toBinary(IntrospectRequestSchema, create(IntrospectRequestSchema, { token })));
const grpcMessage = (answer: Answer) => decodeURIComponent(String(answer.trailers["grpc-message"]));

test("a unary call: the answer, the interceptors' headers and trailers, the context values", async () => {
  const answer = await both(GET_ME, getMe, { "x-caller": "grace" });
  assert.equal(answer.status, 200);
  assert.equal(answer.headers["content-type"], "application/grpc+proto");
  assert.equal(answer.headers["x-stamped"], "GetMe");
  assert.deepEqual(answer.trailers, { "grpc-status": "0", "x-stamped-trailer": "yes" });
  assert.ok(Buffer.from(answer.body, "hex").includes("grace"), "the context value reached the implementation");
});

test("plain application/grpc, and a query string on the path, take the same path", async () => {
  assert.equal((await both(GET_ME, getMe, { "content-type": "application/grpc" })).trailers["grpc-status"], "0");
  assert.equal((await both(`${GET_ME}?x=1`, getMe)).trailers["grpc-status"], "0");
});

test("a large answer to a client that accepts gzip is compressed; a small one is not", async () => {
  const large = await both(GET_ME, getMe, { "grpc-accept-encoding": "gzip", "x-name-length": "4000" });
  assert.equal(large.headers["grpc-encoding"], "gzip");
  assert.equal(large.body.slice(0, 2), "01", "the envelope is flagged compressed");
  const small = await both(GET_ME, getMe, { "grpc-accept-encoding": "gzip" });
  assert.equal(small.body.slice(0, 2), "00");
});

test("an error with details travels in the trailers", async () => {
  const answer = await both(INTROSPECT, introspect("abc"));
  assert.equal(answer.trailers["grpc-status"], String(Code.Unauthenticated));
  assert.equal(grpcMessage(answer), "The token abc is not valid.");
  assert.ok(answer.trailers["grpc-status-details-bin"], "the ErrorInfo detail is there");
  assert.equal(answer.body, "");
});

test("an error message that cannot be encoded is answered, not left hanging", async () => {
  const answer = await both(INTROSPECT, introspect("surrogate"));
  assert.equal(answer.trailers["grpc-status"], String(Code.InvalidArgument));
  assert.equal(grpcMessage(answer), "The request holds text that is not valid Unicode.");
});

test("request bodies that are not exactly one well-formed message", async () => {
  const cases: { name: string; body: Buffer; code: Code; message: RegExp }[] = [
    { name: "no message", body: Buffer.alloc(0), code: Code.InvalidArgument, message: /exactly one request message/ },
    { name: "two messages", body: Buffer.concat([getMe, getMe]), code: Code.InvalidArgument, message: /exactly one request message/ },
    { name: "a cut-off header", body: getMe.subarray(0, 3), code: Code.InvalidArgument, message: /incomplete envelope/ },
    { name: "a cut-off message", body: introspect("abcdef").subarray(0, 8), code: Code.InvalidArgument, message: /incomplete envelope/ },
    { name: "a message and a cut-off one", body: Buffer.concat([getMe, introspect("abcdef").subarray(0, 7)]), code: Code.InvalidArgument, message: /incomplete envelope/ },
    { name: "not protobuf", body: envelope(Buffer.from([0x0a, 0x05, 0x61])), code: Code.InvalidArgument, message: /not a valid protobuf message/ },
    { name: "a message, then one that is not protobuf", body: Buffer.concat([getMe, envelope(Buffer.from([0x0a, 0x05, 0x61]))]), code: Code.InvalidArgument, message: /not a valid protobuf message/ },
    { name: "marked compressed, no grpc-encoding", body: envelope(Buffer.from([]), 1), code: Code.InvalidArgument, message: /marked compressed/ },
    { name: "larger than readMaxBytes", body: introspect("x".repeat(READ_MAX_BYTES)), code: Code.ResourceExhausted, message: /larger than configured readMaxBytes 512/ },
    { name: "a second message larger than readMaxBytes", body: Buffer.concat([getMe, introspect("x".repeat(READ_MAX_BYTES))]), code: Code.ResourceExhausted, message: /readMaxBytes/ },
  ];
  for (const { name, body, code, message } of cases) {
    const answer = await both(INTROSPECT, body);
    assert.equal(answer.trailers["grpc-status"], String(code), name);
    assert.match(grpcMessage(answer), message, name);
  }
});

test("a deadline from grpc-timeout ends the call with deadline_exceeded", async () => {
  const answer = await both(REFRESH, envelope(toBinary(RefreshRequestSchema, create(RefreshRequestSchema))), { "grpc-timeout": "30m" });
  assert.equal(answer.trailers["grpc-status"], String(Code.DeadlineExceeded));
});

test("requests this handler leaves to connect-es: gRPC-JSON, compressed requests, bad timeouts, unknown paths", async () => {
  const json = await both(GET_ME, envelope(Buffer.from("{}")), { "content-type": "application/grpc+json" }, "fallback");
  assert.equal(json.trailers["grpc-status"], "0");
  assert.equal(json.headers["content-type"], "application/grpc+json");
  const gzipped = await both(GET_ME, envelope(gzipSync(toBinary(GetMeRequestSchema, create(GetMeRequestSchema))), 1), { "grpc-encoding": "gzip" }, "fallback");
  assert.equal(gzipped.trailers["grpc-status"], "0");
  const unknownEncoding = await both(GET_ME, getMe, { "grpc-encoding": "zstd" }, "fallback");
  assert.equal(unknownEncoding.trailers["grpc-status"], String(Code.Unimplemented));
  const badTimeout = await both(GET_ME, getMe, { "grpc-timeout": "soon" }, "fallback");
  assert.equal(badTimeout.trailers["grpc-status"], String(Code.InvalidArgument));
  const unknown = await both("/gatehouse.auth.v1.AuthService/NoSuchMethod", getMe, {}, "fallback");
  assert.equal(unknown.status, 404);
});

test("a client that cancels the call aborts the implementation's signal with canceled", async () => {
  lastAbort.seen = undefined;
  const stream = unary.request({ [h2.HTTP2_HEADER_METHOD]: "POST", [h2.HTTP2_HEADER_PATH]: REFRESH, "content-type": "application/grpc", te: "trailers" });
  stream.end(envelope(toBinary(RefreshRequestSchema, create(RefreshRequestSchema))));
  await new Promise((resolve) => setTimeout(resolve, 50));
  stream.close(h2.NGHTTP2_CANCEL);
  const seen = () => lastAbort.seen;
  for (let i = 0; i < 100 && !seen(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  const reason = seen()?.reason;
  assert.ok(reason instanceof ConnectError, "the implementation saw its signal abort, with a ConnectError");
  assert.equal(reason.code, Code.Canceled);
});
