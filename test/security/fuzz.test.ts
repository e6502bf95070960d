import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { fromJson, toBinary, type DescField, type DescMessage, type DescMethod, type JsonValue } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { AuthService } from "../../gen/gatehouse/auth/v1/auth_pb.js";
import { UserService } from "../../gen/gatehouse/user/v1/user_pb.js";
import { startTestServer, type TestServer } from "../support/harness.ts";
import { GrpcStatus, grpcFrame, rawGrpc, rawPost } from "./support.ts";

/**
 * Property-based: random and malformed JSON, binary protobuf, gRPC envelopes and headers thrown
 * at every method of both services, derived from their descriptors. Whatever comes in, the
 * answer is never a 5xx but 503 (and 504 only for a caller that set a deadline), never an
 * `internal`/`unknown` status, the server never logs an unexpected error, and no answer holds
 * a password hash, a stack frame or SQL. Fixed seed and bounded runs keep it fast and repeatable.
 */

// Fixed, so a failure repeats; set GATEHOUSE_FUZZ_SEED / GATEHOUSE_FUZZ_RUNS to explore further.
const SEED = Number(process.env.GATEHOUSE_FUZZ_SEED ?? 20_261_122);
const RUNS_PER_METHOD = Number(process.env.GATEHOUSE_FUZZ_RUNS ?? 30);
const ADMIN = { username: "fuzzadmin", email: "fuzzadmin@example.com", password: "marble orchard whispers softly" };
const USER = { username: "fuzzuser", email: "fuzzuser@example.com", password: "velvet compass hums at noon" };

const METHODS: readonly DescMethod[] = [...AuthService.methods, ...UserService.methods];

/** Header values any HTTP client can send: printable ASCII. */
const headerText = fc.string({ unit: fc.constantFrom(...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i))), maxLength: 60 });
const base64url = fc.string({ unit: fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."), minLength: 1, maxLength: 200 });

/** Strings a validator or a database might trip over. */
const nastyString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.constantFrom(
    "",
    " ",
    "admin",
    "ＡＤＭＩＮ",
    "a@b.co",
    "root@example.com",
    "00000000-0000-0000-0000-000000000000",
    "*",
    "create_time",
    "username desc",
    "'; drop table users; --",
    "\u0000",
    "\r\n",
    "\ud800",
    "e\u0301",
    "%00",
    "../../etc/passwd",
    "__proto__",
    "constructor",
    "x".repeat(5000),
  ),
);

/** A JSON value for one field, usually of the right shape, sometimes not. */
function fieldValue(field: DescField, depth: number): fc.Arbitrary<unknown> {
  const wrongShape = fc.oneof(fc.constant(null), fc.integer(), nastyString, fc.boolean(), fc.constant({}), fc.constant([]));
  const single = (): fc.Arbitrary<unknown> => {
    if (field.fieldKind === "message" || (field.fieldKind === "list" && field.listKind === "message")) {
      const message = field.message!;
      if (message.typeName.startsWith("google.protobuf.")) {
        return fc.oneof(nastyString, fc.constantFrom("2030-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "first_name,roles", "*", "3s"));
      }
      return depth > 2 ? fc.constant({}) : messageJson(message, depth + 1);
    }
    if (field.fieldKind === "enum" || (field.fieldKind === "list" && field.listKind === "enum")) {
      return fc.oneof(fc.constantFrom(...field.enum!.values.map((v) => v.name)), fc.integer({ min: -5, max: 1000 }));
    }
    switch (field.scalar) {
      case undefined:
        return wrongShape;
      default:
        return fc.oneof(
          nastyString,
          fc.integer(),
          fc.constantFrom(0, -1, 1e9, 2 ** 53, "1e999", "-0", "NaN", "Infinity", true, false),
          fc.double(),
        );
    }
  };
  if (field.fieldKind === "list") return fc.oneof(fc.array(single(), { maxLength: 5 }), wrongShape);
  if (field.fieldKind === "map") return fc.oneof(fc.dictionary(nastyString, nastyString, { maxKeys: 3 }), wrongShape);
  return fc.oneof({ weight: 4, arbitrary: single() }, { weight: 1, arbitrary: wrongShape });
}

/** A JSON object for a message: any subset of its fields by JSON or proto name, plus the odd stranger. */
function messageJson(message: DescMessage, depth = 0): fc.Arbitrary<Record<string, unknown>> {
  const entries = message.fields.map((field) =>
    fc.option(fc.tuple(fc.constantFrom(field.jsonName, field.name), fieldValue(field, depth)), { nil: undefined, freq: 2 }),
  );
  const strangers = fc.array(fc.tuple(fc.oneof(nastyString, fc.constantFrom("__proto__", "constructor", "prototype", "roles", "passwordHash")), fc.jsonValue({ maxDepth: 2 })), { maxLength: 2 });
  return fc.tuple(fc.tuple(...entries), fc.oneof({ weight: 5, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: strangers })).map(([fields, extra]) => {
    const object: Record<string, unknown> = {};
    for (const entry of [...fields, ...extra]) if (entry) Object.defineProperty(object, entry[0], { value: entry[1], enumerable: true, configurable: true, writable: true });
    return object;
  });
}

/** Message bytes: valid encodings of random messages, mutated ones, or noise. */
function messageBytes(message: DescMessage): fc.Arbitrary<Uint8Array> {
  const valid = messageJson(message).map((json) => {
    try {
      return toBinary(message, fromJson(message, json as JsonValue, { ignoreUnknownFields: true }));
    } catch {
      return new Uint8Array(0);
    }
  });
  return fc.oneof(
    valid,
    fc.tuple(valid, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([bytes, at, value]) => {
      const copy = Uint8Array.from(bytes);
      if (copy.length > 0) copy[at % copy.length] = value;
      return copy;
    }),
    fc.tuple(valid, fc.nat()).map(([bytes, cut]) => bytes.subarray(0, bytes.length === 0 ? 0 : cut % bytes.length)),
    fc.uint8Array({ maxLength: 200 }),
    fc.constantFrom(Uint8Array.of(0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f), Uint8Array.of(0x0a, 0x03, 0x61, 0xff, 0x62), Uint8Array.of(0x08), Uint8Array.of(0xff)),
  );
}

/** A JSON body: a likely-looking object, any JSON at all, or text that is not JSON. */
function jsonBody(message: DescMessage): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 4, arbitrary: messageJson(message).map((json) => Buffer.from(JSON.stringify(json))) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((json) => Buffer.from(JSON.stringify(json) ?? "null")) },
    { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 100 }).map((text) => Buffer.from(text)) },
    { weight: 1, arbitrary: messageJson(message).map((json) => Buffer.from(JSON.stringify(json).slice(0, -1))) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 100 }) },
  );
}

type Protocol = "connect-json" | "connect-proto" | "connect-get" | "grpc" | "grpc-json" | "grpc-web";

interface Shot {
  protocol: Protocol;
  body: Uint8Array;
  /** How the envelope of a gRPC(-Web) message is bent, if at all. */
  envelope: { flag: number | undefined; lengthDelta: number; doubled: boolean; raw: boolean };
  headers: Record<string, string>;
  token: "none" | "user" | "admin" | "garbage";
  compress: boolean;
}

function shots(method: DescMethod): fc.Arbitrary<Shot> {
  const input = method.input;
  const protocol = fc.constantFrom<Protocol>("connect-json", "connect-proto", "connect-get", "grpc", "grpc-json", "grpc-web");
  const optional = <T>(arbitrary: fc.Arbitrary<T>) => fc.option(arbitrary, { nil: undefined, freq: 3 });
  const headers = fc.record({
    "content-type": optional(
      fc.constantFrom("text/plain", "application/json; charset=latin1", "application/x-www-form-urlencoded", "application/grpc-web-text", "application/connect+json", "", "application/proto; x=1"),
    ),
    timeout: optional(fc.oneof(headerText, fc.constantFrom("1", "0", "-1", "99999999999", "1m", "5S", "1H", "abc"))),
    encoding: optional(fc.constantFrom("gzip", "identity", "br", "deflate", "x-nope", "")),
    "connect-protocol-version": optional(fc.constantFrom("1", "2", "", "x")),
    "x-request-id": optional(headerText),
    "x-forwarded-for": optional(fc.oneof(headerText, fc.ipV4(), fc.ipV6())),
    "user-agent": optional(headerText),
    "accept-encoding": optional(fc.constantFrom("gzip", "br", "*", "x-nope")),
    authorization: optional(fc.oneof(headerText, base64url.map((t) => `Bearer ${t}`), fc.constantFrom("Bearer ", "Basic dXNlcjpwYXNz", "bearer  x.y.z"))),
  });
  return fc.record({
    protocol,
    body: fc.oneof(jsonBody(input), messageBytes(input)),
    envelope: fc.record({
      flag: optional(fc.constantFrom(1, 2, 0x80, 0xff)),
      lengthDelta: fc.oneof({ weight: 5, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -10, max: 10 }) }, { weight: 1, arbitrary: fc.constant(2 ** 31) }),
      doubled: fc.boolean(),
      raw: fc.oneof({ weight: 8, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    }),
    headers: headers.map((h) => Object.fromEntries(Object.entries(h).filter(([, v]) => v !== undefined)) as Record<string, string>),
    token: fc.constantFrom("none", "user", "admin", "garbage"),
    compress: fc.oneof({ weight: 5, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  });
}

interface Answer {
  /** The HTTP status (gRPC answers are 200 with a grpc-status). */
  status: number;
  /** The RPC code as Connect names it, when the answer has one. */
  code: string | undefined;
  text: string;
}

const GRPC_CODE_NAMES = Object.fromEntries(Object.entries(GrpcStatus).map(([name, number]) => [number, name.toLowerCase()]));

describe("fuzzing every method with random and malformed requests (fast-check)", () => {
  let server: TestServer;
  let tokens: { user: string; admin: string };
  before(async () => {
    server = await startTestServer({
      GATEHOUSE_BOOTSTRAP_ADMIN_EMAIL: ADMIN.email,
      GATEHOUSE_BOOTSTRAP_ADMIN_USERNAME: ADMIN.username,
      GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD: ADMIN.password,
    });
    await server.auth().register({ username: USER.username, email: USER.email, password: USER.password });
  });
  after(() => server.stop());

  /** Fresh tokens before each method: a fuzzed Logout or ChangePassword may have ended the last ones. */
  async function signIn(): Promise<{ user: string; admin: string }> {
    const [admin, user] = await Promise.all(
      [ADMIN, USER].map((who) => server.auth().login({ identifier: { case: "email", value: who.email }, password: who.password })),
    );
    return { admin: admin!.tokens!.accessToken, user: user!.tokens!.accessToken };
  }

  async function fire(method: DescMethod, shot: Shot): Promise<Answer> {
    const path = `/${method.parent.typeName}/${method.name}`;
    const headers: Record<string, string> = {};
    const { timeout, encoding, ...plain } = shot.headers;
    Object.assign(headers, plain);
    if (shot.token !== "none") {
      headers.authorization = shot.token === "garbage" ? `Bearer ${tokens.user.slice(0, -3)}abc` : `Bearer ${tokens[shot.token]}`;
    }
    const grpcLike = shot.protocol.startsWith("grpc");
    if (timeout !== undefined) headers[grpcLike ? "grpc-timeout" : "connect-timeout-ms"] = timeout;
    const body = shot.compress ? gzipSync(shot.body) : shot.body;
    if (encoding !== undefined || shot.compress) headers[grpcLike ? "grpc-encoding" : "content-encoding"] = encoding ?? "gzip";

    if (shot.protocol === "connect-get") {
      const query = new URLSearchParams({ encoding: "json", message: Buffer.from(shot.body).toString("utf8"), connect: "v1" });
      if (encoding !== undefined) query.set("compression", encoding);
      delete headers["content-type"];
      const res = await fetch(`${server.baseUrl}${path}?${query}`, { headers });
      const text = await res.text();
      return { status: res.status, code: connectCode(text), text: `${JSON.stringify(Object.fromEntries(res.headers))}\n${text}` };
    }
    if (shot.protocol === "connect-json" || shot.protocol === "connect-proto") {
      headers["content-type"] ??= shot.protocol === "connect-json" ? "application/json" : "application/proto";
      const res = await rawPost(server.baseUrl, path, body, headers);
      return { status: res.status, code: connectCode(res.text), text: `${JSON.stringify(Object.fromEntries(res.headers))}\n${res.text}` };
    }
    const { flag, lengthDelta, doubled, raw } = shot.envelope;
    const frame = grpcFrame(body, { compressed: shot.compress, declaredLength: Math.max(0, Math.min(2 ** 32 - 1, body.length + lengthDelta)) });
    if (flag !== undefined) frame[0] = flag;
    const payload = raw ? body : doubled ? Buffer.concat([frame, frame]) : frame;
    if (shot.protocol === "grpc-web") {
      headers["content-type"] ??= "application/grpc-web+proto";
      const res = await rawPost(server.baseUrl, path, payload, headers);
      const status = /grpc-status:\s*(\d+)/.exec(res.text)?.[1] ?? res.headers.get("grpc-status");
      return { status: res.status, code: status == null ? undefined : GRPC_CODE_NAMES[Number(status)], text: `${JSON.stringify(Object.fromEntries(res.headers))}\n${res.text}` };
    }
    headers["content-type"] ??= shot.protocol === "grpc-json" ? "application/grpc+json" : "application/grpc";
    const res = await rawGrpc(server.baseUrl, path, payload, headers);
    return { status: res.httpStatus, code: res.grpcStatus === undefined ? undefined : GRPC_CODE_NAMES[res.grpcStatus], text: res.text };
  }

  function connectCode(text: string): string | undefined {
    try {
      const code = (JSON.parse(text) as { code?: unknown }).code;
      return typeof code === "string" ? code : undefined;
    } catch {
      return undefined;
    }
  }

  function check(method: DescMethod, shot: Shot, answer: Answer): void {
    const where = `${method.name} over ${shot.protocol}: ${answer.status} ${answer.code}\n${answer.text.slice(0, 600)}`;
    const deadlineAllowed = shot.headers.timeout !== undefined;
    // Both protocols require `unimplemented` (Connect: HTTP 501) for a compression the server lacks.
    const encoding = shot.headers.encoding;
    const unsupportedEncoding = encoding !== undefined && !["gzip", "br", "identity"].includes(encoding);
    if (answer.code === "unimplemented") assert.ok(unsupportedEncoding, `unimplemented for a supported encoding: ${where}`);
    const allowed5xx = [503, ...(deadlineAllowed ? [504] : []), ...(unsupportedEncoding ? [501] : [])];
    assert.ok(answer.status < 500 || allowed5xx.includes(answer.status), `a 5xx: ${where}`);
    assert.ok(!["internal", "unknown", "data_loss"].includes(answer.code ?? ""), `an internal status: ${where}`);
    if (answer.code === "deadline_exceeded") assert.ok(deadlineAllowed, `deadline_exceeded without a deadline: ${where}`);
    assert.doesNotMatch(answer.text, /\$argon2/i, `a password hash: ${where}`);
    assert.doesNotMatch(answer.text, /\bat [^\n]*\.(ts|js|mjs):\d+|node_modules|\/work\//, `a stack frame or a path: ${where}`);
    assert.doesNotMatch(answer.text, /\b(select|insert|update|delete)\b[\s\S]{0,80}\b(from|into|set|where)\b/i, `SQL: ${where}`);
    assert.doesNotMatch(answer.text, /password_hash|token_hash|code_hash|pg_|violates|constraint/i, `database internals: ${where}`);
  }

  for (const method of METHODS) {
    test(`${method.parent.name}/${method.name}`, async () => {
      tokens = await signIn();
      await fc.assert(
        fc.asyncProperty(shots(method), async (shot) => {
          check(method, shot, await fire(method, shot));
        }),
        { seed: SEED + METHODS.indexOf(method), numRuns: RUNS_PER_METHOD, endOnFailure: true },
      );
    });
  }

  test("afterwards the server is up, serves real calls, and logged no unexpected error", async () => {
    assert.equal((await fetch(`${server.baseUrl}/healthz`)).status, 200);
    assert.equal((await fetch(`${server.baseUrl}/readyz`)).status, 200);
    const { user } = await server.auth().login({ identifier: { case: "email", value: USER.email }, password: USER.password });
    assert.equal(user?.username, USER.username);
    const errors = server.logs.filter((line) => line.level === "error" || line.level === "fatal");
    assert.deepEqual(errors, [], "no error-level log line");
    assert.ok(METHODS.some((m) => m.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS), "Connect GET was exercised on some method");
  });
});
