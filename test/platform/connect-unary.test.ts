/**
 * The unary Connect handler (src/platform/server/connect-unary.ts) must answer every request
 * exactly as connect-es would with the same services, interceptors and options. Each case here
 * goes, as raw HTTP/1.1 and as raw HTTP/2, to two real servers: one behind the unary handler, one
 * with connect-es' adapter alone. The answers (status, headers in order, body bytes) must be
 * identical, must be the expected one, and must have come from the path the case is about.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Agent, createServer as createHttp1Server, request as http1Request, type Server as Http1Server } from "node:http";
import { connect, createServer as createHttp2Server, type ClientHttp2Session, type Http2Server, constants as h2 } from "node:http2";
import type { AddressInfo } from "node:net";
import { gunzipSync, gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { GetMeRequestSchema } from "../../gen/gatehouse/auth/v1/auth_pb.js";
import { ErrorInfoSchema } from "../../src/platform/errors/error-details.ts";
import { createConnectUnaryHandler } from "../../src/platform/server/connect-unary.ts";
import type { HttpRequest, HttpResponse } from "../../src/platform/server/http-routes.ts";
import { READ_MAX_BYTES, fastPathOptions, lastAbort, referenceAdapter } from "../support/unary-fixture.ts";

const fellBack = { count: 0 };
const unaryHandler = createConnectUnaryHandler(fastPathOptions(fellBack));
const referenceHandler = referenceAdapter();

type Protocol = "http/1.1" | "h2";
const PROTOCOLS: Protocol[] = ["http/1.1", "h2"];

interface Target {
  port: number;
  session?: ClientHttp2Session;
}
const servers: (Http1Server | Http2Server)[] = [];
const agent = new Agent({ keepAlive: true });
const targets = {} as Record<Protocol, { unary: Target; reference: Target }>;

async function listen(server: Http1Server | Http2Server): Promise<number> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

async function serve(protocol: Protocol, handler: (req: HttpRequest, res: HttpResponse) => void): Promise<Target> {
  if (protocol === "http/1.1") return { port: await listen(createHttp1Server(handler)) };
  const port = await listen(createHttp2Server({}, handler));
  return { port, session: connect(`http://127.0.0.1:${port}`) };
}

before(async () => {
  for (const protocol of PROTOCOLS) {
    targets[protocol] = { unary: await serve(protocol, unaryHandler), reference: await serve(protocol, referenceHandler) };
  }
});

after(async () => {
  agent.destroy();
  for (const { unary, reference } of Object.values(targets)) {
    unary.session?.close();
    reference.session?.close();
  }
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
});

interface Request {
  path: string;
  body: Buffer;
  headers?: Record<string, string>;
  method?: string;
  /** HTTP/1.1 only: send the body chunked, without a content-length. */
  chunked?: boolean;
}

interface Answer {
  status: number;
  /** Header names and values in the order they arrived, without the date. */
  headers: [string, string][];
  body: Buffer;
}

const withoutDate = (pairs: [string, string][]) => pairs.filter(([name]) => name.toLowerCase() !== "date");

function call(protocol: Protocol, target: Target, { path, body, headers = {}, method = "POST", chunked = false }: Request): Promise<Answer> {
  const fields = { "content-type": "application/json", ...headers };
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    if (protocol === "h2") {
      const length = method === "GET" ? {} : { "content-length": String(body.byteLength) };
      const stream = target.session!.request({ [h2.HTTP2_HEADER_METHOD]: method, [h2.HTTP2_HEADER_PATH]: path, ...fields, ...length });
      let status = 0;
      let pairs: [string, string][] = [];
      stream.on("response", (response, _flags, raw: string[]) => {
        status = Number(response[":status"]);
        pairs = withoutDate(pairsOf(raw));
      });
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("error", reject);
      stream.on("close", () => resolve({ status, headers: pairs, body: Buffer.concat(chunks) }));
      stream.end(method === "GET" ? undefined : body);
      return;
    }
    const req = http1Request({ host: "127.0.0.1", port: target.port, path, method, agent, headers: { ...fields, ...(chunked ? { "transfer-encoding": "chunked" } : { "content-length": String(body.byteLength) }) } });
    req.on("response", (res) => {
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode!, headers: withoutDate(pairsOf(res.rawHeaders)), body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(method === "GET" ? undefined : body);
  });
}

function pairsOf(raw: string[]): [string, string][] {
  const pairs: [string, string][] = [];
  for (let i = 0; i < raw.length; i += 2) pairs.push([raw[i]!, raw[i + 1]!]);
  return pairs;
}

/**
 * Sends the same request over both protocols to both servers; returns the unary handler's answers
 * after checking each matches connect-es' alone.
 */
async function both(request: Request, expected: "unary" | "fallback" = "unary"): Promise<Answer[]> {
  const answers: Answer[] = [];
  for (const protocol of PROTOCOLS) {
    if (request.chunked && protocol === "h2") continue;
    const before = fellBack.count;
    const got = await call(protocol, targets[protocol].unary, request);
    assert.equal(fellBack.count - before, expected === "unary" ? 0 : 1, `${protocol}: answered by the ${expected} path`);
    assert.deepEqual(got, await call(protocol, targets[protocol].reference, request), `${protocol}: the same answer as connect-es alone`);
    answers.push(got);
  }
  return answers;
}

const header = (answer: Answer, name: string) => answer.headers.find(([key]) => key.toLowerCase() === name)?.[1];
const json = (answer: Answer) => JSON.parse(answer.body.toString("utf8")) as { code?: string; message?: string; details?: { type: string }[]; user?: { username: string } };

const GET_ME = "/gatehouse.auth.v1.AuthService/GetMe";
const INTROSPECT = "/gatehouse.auth.v1.AuthService/Introspect";
const REFRESH = "/gatehouse.auth.v1.AuthService/Refresh";
const introspect = (token: string) => Buffer.from(JSON.stringify({ token }));

test("a JSON call: the answer, the interceptors' headers and trailers, the context values", async () => {
  for (const answer of await both({ path: GET_ME, body: Buffer.from("{}"), headers: { "x-caller": "grace" } })) {
    assert.equal(answer.status, 200);
    assert.equal(header(answer, "content-type"), "application/json");
    assert.equal(header(answer, "x-stamped"), "GetMe");
    assert.equal(header(answer, "trailer-x-stamped-trailer"), "yes");
    assert.equal(header(answer, "content-length"), String(answer.body.byteLength));
    assert.equal(json(answer).user?.username, "grace", "the context value reached the implementation");
  }
});

test("a binary call, a JSON content type with a charset, and a query string on the path take the same path", async () => {
  const binary = await both({ path: GET_ME, body: Buffer.from(toBinary(GetMeRequestSchema, create(GetMeRequestSchema))), headers: { "content-type": "application/proto" } });
  for (const answer of binary) {
    assert.equal(header(answer, "content-type"), "application/proto");
    assert.ok(answer.body.includes("nobody"));
  }
  for (const answer of await both({ path: GET_ME, body: Buffer.from("{}"), headers: { "content-type": "application/json; charset=utf-8" } })) assert.equal(answer.status, 200);
  for (const answer of await both({ path: `${GET_ME}?x=1`, body: Buffer.from("{}") })) assert.equal(answer.status, 200);
});

test("a body sent chunked, without a content-length, is read whole", async () => {
  const [answer] = await both({ path: INTROSPECT, body: introspect("abc"), chunked: true });
  assert.equal(json(answer!).message, "The token abc is not valid.");
});

test("a large answer to a client that accepts gzip is compressed; a small one is not", async () => {
  for (const answer of await both({ path: GET_ME, body: Buffer.from("{}"), headers: { "accept-encoding": "gzip;q=1.0", "x-name-length": "4000" } })) {
    assert.equal(header(answer, "content-encoding"), undefined, "no encoding it knows by that exact name: not compressed");
  }
  for (const answer of await both({ path: GET_ME, body: Buffer.from("{}"), headers: { "accept-encoding": "gzip, deflate", "x-name-length": "4000" } })) {
    assert.equal(header(answer, "content-encoding"), "gzip");
    assert.ok(gunzipSync(answer.body).includes("G".repeat(4000)));
  }
  for (const answer of await both({ path: GET_ME, body: Buffer.from("{}"), headers: { "accept-encoding": "gzip" } })) {
    assert.equal(header(answer, "content-encoding"), undefined);
  }
});

test("errors: the JSON error body with its details, the HTTP status of its code, the error's headers", async () => {
  for (const answer of await both({ path: INTROSPECT, body: introspect("abc") })) {
    assert.equal(answer.status, 401);
    assert.equal(header(answer, "content-type"), "application/json");
    assert.equal(json(answer).code, "unauthenticated");
    assert.equal(json(answer).details?.[0]?.type, ErrorInfoSchema.typeName);
    assert.equal(header(answer, "x-stamped"), undefined, "an interceptor that threw set nothing");
  }
  for (const answer of await both({ path: INTROSPECT, body: introspect("busy") })) {
    assert.equal(answer.status, 429);
    assert.equal(header(answer, "retry-after"), "3");
  }
  for (const answer of await both({ path: INTROSPECT, body: introspect("crash") })) {
    assert.equal(answer.status, 500);
    assert.deepEqual(json(answer), { code: "internal", message: "internal error" });
  }
  for (const answer of await both({ path: INTROSPECT, body: introspect("surrogate") })) {
    assert.equal(answer.status, 404);
    assert.equal(json(answer).message, "no such token: \ud800");
  }
});

test("request bodies that are not one well-formed message", async () => {
  const cases: { name: string; request: Request; status: number; message: RegExp }[] = [
    { name: "not JSON", request: { path: INTROSPECT, body: Buffer.from("{") }, status: 400, message: /JSON/ },
    { name: "an unknown field", request: { path: INTROSPECT, body: Buffer.from('{"tokn":"a"}') }, status: 400, message: /tokn/ },
    { name: "invalid UTF-8", request: { path: INTROSPECT, body: Buffer.from([0x7b, 0x22, 0x74, 0x6f, 0x6b, 0x65, 0x6e, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]) }, status: 400, message: /./ },
    { name: "an empty JSON body", request: { path: INTROSPECT, body: Buffer.alloc(0) }, status: 400, message: /./ },
    { name: "not protobuf", request: { path: INTROSPECT, body: Buffer.from([0x0a, 0x05, 0x61]), headers: { "content-type": "application/proto" } }, status: 400, message: /not a valid protobuf message/ },
    { name: "larger than readMaxBytes, declared", request: { path: INTROSPECT, body: introspect("x".repeat(READ_MAX_BYTES)) }, status: 429, message: /message size \d+ is larger than configured readMaxBytes 512/ },
    { name: "larger than readMaxBytes, chunked", request: { path: INTROSPECT, body: introspect("x".repeat(READ_MAX_BYTES)), chunked: true }, status: 429, message: /^message size is larger than configured readMaxBytes 512/ },
  ];
  for (const { name, request, status, message } of cases) {
    for (const answer of await both(request)) {
      assert.equal(answer.status, status, name);
      assert.match(json(answer).message ?? "", message, name);
    }
  }
  const [empty] = await both({ path: GET_ME, body: Buffer.alloc(0), headers: { "content-type": "application/proto" } });
  assert.equal(empty!.status, 200, "an empty binary body is the empty message");
});

test("a deadline from connect-timeout-ms ends the call with deadline_exceeded", async () => {
  for (const answer of await both({ path: REFRESH, body: Buffer.from("{}"), headers: { "connect-timeout-ms": "30" } })) {
    assert.equal(answer.status, 504);
    assert.equal(json(answer).code, "deadline_exceeded");
  }
});

test("requests this handler leaves to connect-es: GET, compressed requests, bad timeouts, other content types, unknown paths", async () => {
  const query = `?encoding=json&message=${encodeURIComponent("{}")}`;
  for (const answer of await both({ path: GET_ME + query, body: Buffer.alloc(0), method: "GET" }, "fallback")) assert.equal(answer.status, 200);
  for (const answer of await both({ path: INTROSPECT + query, body: Buffer.alloc(0), method: "GET" }, "fallback")) assert.equal(answer.status, 405);
  const gzipped = await both({ path: INTROSPECT, body: gzipSync(introspect("abc")), headers: { "content-encoding": "gzip" } }, "fallback");
  for (const answer of gzipped) assert.equal(json(answer).message, "The token abc is not valid.");
  for (const answer of await both({ path: INTROSPECT, body: introspect("abc"), headers: { "content-encoding": "zstd" } }, "fallback")) {
    assert.equal(json(answer).code, "unimplemented");
  }
  for (const answer of await both({ path: INTROSPECT, body: introspect("abc"), headers: { "connect-timeout-ms": "soon" } }, "fallback")) {
    assert.equal(json(answer).code, "invalid_argument");
  }
  for (const answer of await both({ path: GET_ME, body: Buffer.from("{}"), headers: { "content-type": "application/connect+json" } }, "fallback")) {
    assert.equal(answer.status, 415);
  }
  for (const answer of await both({ path: GET_ME, body: Buffer.from("{}"), headers: { "content-type": "text/plain" } }, "fallback")) assert.equal(answer.status, 415);
  for (const answer of await both({ path: "/gatehouse.auth.v1.AuthService/NoSuchMethod", body: Buffer.from("{}") }, "fallback")) assert.equal(answer.status, 404);
});

test("an answer that cannot be written is answered with a logged internal error, not left hanging", async () => {
  // connect-node's adapter only prints such a failure and never answers, so this is the fast path alone.
  const before = fellBack.count;
  const answer = await call("http/1.1", targets["http/1.1"].unary, { path: GET_ME, body: Buffer.from("{}"), headers: { "x-unwritable-answer": "1" } });
  assert.equal(fellBack.count, before);
  assert.equal(answer.status, 500);
  assert.deepEqual(json(answer), { code: "internal", message: "Something went wrong on our side; the error was logged." });
});

/** Starts a call that waits for its signal, goes away mid-call, and returns what the implementation saw. */
async function abandon(protocol: Protocol, target: Target): Promise<{ reason: unknown }> {
  lastAbort.seen = undefined;
  if (protocol === "h2") {
    const stream = target.session!.request({ [h2.HTTP2_HEADER_METHOD]: "POST", [h2.HTTP2_HEADER_PATH]: REFRESH, "content-type": "application/json" });
    stream.end("{}");
    await new Promise((resolve) => setTimeout(resolve, 50));
    stream.close(h2.NGHTTP2_CANCEL);
  } else {
    const req = http1Request({ host: "127.0.0.1", port: target.port, path: REFRESH, method: "POST", headers: { "content-type": "application/json" } });
    req.on("error", () => {});
    req.end("{}");
    await new Promise((resolve) => setTimeout(resolve, 50));
    req.destroy();
  }
  for (let i = 0; i < 100 && !lastAbort.seen; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  const seen = lastAbort.seen;
  assert.ok(seen, `${protocol}: the implementation saw its signal abort`);
  return seen;
}

test("a client that goes away aborts the implementation's signal, with the reason connect-es gives", async () => {
  for (const protocol of PROTOCOLS) {
    const { reason } = await abandon(protocol, targets[protocol].unary);
    const { reason: expected } = await abandon(protocol, targets[protocol].reference);
    // Over HTTP/1.1 connect-node aborts with the platform's AbortError, over HTTP/2 with a ConnectError.
    assert.equal(Object.prototype.toString.call(reason), Object.prototype.toString.call(expected), protocol);
    assert.equal((reason as Error).name, (expected as Error).name, protocol);
    assert.equal((reason as Error).message, (expected as Error).message, protocol);
  }
  const { reason } = await abandon("h2", targets.h2.unary);
  assert.equal((reason as ConnectError).code, Code.Canceled, "a cancelled HTTP/2 stream is canceled");
});
