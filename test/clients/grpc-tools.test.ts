import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { service as healthServiceDefinition } from "grpc-health-check";
import pg from "pg";
import { Health, ServingStatus } from "../../src/platform/grpc/grpc-health.ts";
import { ErrorInfoSchema } from "../../src/platform/errors/error-details.ts";
import { startTestServer, type TestServer } from "../support/harness.ts";

/**
 * Gatehouse through tools that know nothing of its code: `buf curl` (Go, connect-go) and
 * @grpc/grpc-js (a different gRPC stack from Connect's), both learning the schema from server
 * reflection, and the standard gRPC health service.
 */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");
const BUF = join(ROOT, "node_modules/.bin/buf");
const require = createRequire(import.meta.url);
const REFLECTION_PROTO_DIR = join(dirname(require.resolve("@grpc/reflection/package.json")), "build/proto");

type BufProtocol = "grpc" | "grpcweb" | "connect";
const BUF_PROTOCOLS: readonly BufProtocol[] = ["grpc", "grpcweb", "connect"];

function bufCurl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(BUF, ["curl", ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** `buf curl` exits with the gRPC status code shifted left by three when the RPC fails. */
const exitCodeFor = (grpcCode: number) => grpcCode << 3;

describe("independent gRPC tooling", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.stop());

  for (const protocol of BUF_PROTOCOLS) {
    test(`buf curl --protocol ${protocol}: lists services and methods by reflection`, async () => {
      const services = await bufCurl(["--protocol", protocol, "--http2-prior-knowledge", "--list-services", server.baseUrl]);
      assert.equal(services.code, 0, services.stderr);
      const listed = services.stdout.trim().split("\n").sort();
      assert.deepEqual(listed, [
        "gatehouse.auth.v1.AuthService",
        "gatehouse.user.v1.UserService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]);
      const methods = await bufCurl(["--protocol", protocol, "--http2-prior-knowledge", "--list-methods", server.baseUrl]);
      assert.equal(methods.code, 0, methods.stderr);
      for (const method of [
        "gatehouse.auth.v1.AuthService/Login",
        "gatehouse.auth.v1.AuthService/Introspect",
        "gatehouse.user.v1.UserService/ListUsers",
        "grpc.health.v1.Health/Watch",
      ]) {
        assert.ok(methods.stdout.split("\n").includes(method), `${method} in:\n${methods.stdout}`);
      }
    });

    test(`buf curl --protocol ${protocol}: calls Health.Check and an AuthService method with no proto files`, async () => {
      const health = await bufCurl([
        "--protocol",
        protocol,
        "--http2-prior-knowledge",
        "-d",
        '{"service":"gatehouse.auth.v1.AuthService"}',
        `${server.baseUrl}/grpc.health.v1.Health/Check`,
      ]);
      assert.equal(health.code, 0, health.stderr);
      assert.deepEqual(JSON.parse(health.stdout), { status: "SERVING" });

      // The request is encoded from the reflected schema; protovalidate's rule (also carried in
      // the reflected descriptor's options) refuses the mismatched confirmation server-side.
      const register = await bufCurl([
        "--protocol",
        protocol,
        "--http2-prior-knowledge",
        "-d",
        JSON.stringify({
          username: "grace",
          email: "grace@example.com",
          password: "correct horse battery",
          passwordConfirmation: "something else entirely",
          firstName: "Grace",
          lastName: "Hopper",
        }),
        `${server.baseUrl}/gatehouse.auth.v1.AuthService/Register`,
      ]);
      assert.equal(register.code, exitCodeFor(grpc.status.INVALID_ARGUMENT), register.stderr);
      const wire = JSON.parse(register.stderr) as { code: string; details: { type: string; value: string }[] };
      assert.equal(wire.code, "invalid_argument");
      const info = wire.details.find((d) => d.type === "google.rpc.ErrorInfo");
      assert.ok(info, register.stderr);
      assert.equal(fromBinary(ErrorInfoSchema, Buffer.from(info.value, "base64")).reason, "PASSWORD_MISMATCH");
    });
  }

  test("buf curl --reflect-protocol grpc-v1alpha works for older tools", async () => {
    const result = await bufCurl([
      "--protocol",
      "grpc",
      "--reflect-protocol",
      "grpc-v1alpha",
      "-d",
      "{}",
      `${server.baseUrl}/grpc.health.v1.Health/Check`,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), { status: "SERVING" });
  });

  test("grpc-js: Health.Check with the health package's own definition", async () => {
    const Client = grpc.makeGenericClientConstructor(healthServiceDefinition, "Health");
    const client = new Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    try {
      const check = (service: string) =>
        new Promise<{ status: string }>((resolve, reject) =>
          (client as unknown as Record<string, Function>).Check!({ service }, (err: grpc.ServiceError | null, res: { status: string }) =>
            err ? reject(err) : resolve(res),
          ),
        );
      assert.deepEqual(await check(""), { status: "SERVING" });
      assert.deepEqual(await check("gatehouse.user.v1.UserService"), { status: "SERVING" });
      await assert.rejects(check("no.such.Service"), (err: grpc.ServiceError) => err.code === grpc.status.NOT_FOUND);
    } finally {
      client.close();
    }
  });

  test("grpc-js: loads AuthService through reflection alone and calls it", async () => {
    const target = `127.0.0.1:${server.port}`;
    const files = await reflectFiles(target, "gatehouse.auth.v1.AuthService");
    assert.ok(files.length >= 4, "the service's file comes with its imports");
    const definition = protoLoader.loadFileDescriptorSetFromBuffer(encodeFileDescriptorSet(files), { keepCase: false });
    const pkg = grpc.loadPackageDefinition(definition) as unknown as {
      gatehouse: { auth: { v1: { AuthService: grpc.ServiceClientConstructor } } };
    };
    const client = new pkg.gatehouse.auth.v1.AuthService(target, grpc.credentials.createInsecure());
    try {
      const error = await new Promise<grpc.ServiceError>((resolve, reject) =>
        (client as unknown as Record<string, Function>).Register!(
          { username: "x", email: "not-an-email", password: "short" },
          (err: grpc.ServiceError | null) => (err ? resolve(err) : reject(new Error("expected an error"))),
        ),
      );
      assert.equal(error.code, grpc.status.INVALID_ARGUMENT);
      assert.ok(error.metadata.get("grpc-status-details-bin").length > 0, "rich error details reach grpc-js");
    } finally {
      client.close();
    }
  });
});

/** Asks the v1 reflection service, over grpc-js, for the files that define `symbol`. */
async function reflectFiles(target: string, symbol: string): Promise<Buffer[]> {
  const definition = protoLoader.loadSync("grpc/reflection/v1/reflection.proto", {
    includeDirs: [REFLECTION_PROTO_DIR],
    keepCase: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
  };
  const client = new pkg.grpc.reflection.v1.ServerReflection(target, grpc.credentials.createInsecure());
  try {
    const call = (client as unknown as Record<string, () => grpc.ClientDuplexStream<object, Record<string, unknown>>>)
      .ServerReflectionInfo!();
    const answers: Record<string, unknown>[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on("data", (answer: Record<string, unknown>) => answers.push(answer));
      call.on("end", resolve);
      call.on("error", reject);
    });
    call.write({ list_services: "" });
    call.write({ file_containing_symbol: symbol });
    call.write({ file_containing_symbol: "google.rpc.ErrorInfo" });
    call.write({ file_by_filename: "no/such/file.proto" });
    call.end();
    await done;
    assert.equal(answers.length, 4);
    assert.ok(answers[2]!.file_descriptor_response, "error details are described, so clients can decode them");
    assert.equal((answers[3]!.error_response as { error_code: number }).error_code, grpc.status.NOT_FOUND);
    const services = (answers[0]!.list_services_response as { service: { name: string }[] }).service.map((s) => s.name);
    assert.ok(services.includes(symbol));
    return (answers[1]!.file_descriptor_response as { file_descriptor_proto: Buffer[] }).file_descriptor_proto;
  } finally {
    client.close();
  }
}

/** google.protobuf.FileDescriptorSet: field 1, repeated FileDescriptorProto, hand-framed. */
function encodeFileDescriptorSet(files: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const file of files) {
    const length: number[] = [];
    let n = file.length;
    while (n > 0x7f) {
      length.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    length.push(n);
    parts.push(Buffer.from([0x0a, ...length]), file);
  }
  return Buffer.concat(parts);
}

describe("gRPC health follows the database", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.stop());

  test("Check and Watch turn NOT_SERVING while the database refuses connections, and recover", async () => {
    const health = createClient(Health, server.transport("grpc"));
    const [{ database }] = (await server.sql<{ database: string }>("select current_database() as database")) as [{ database: string }];
    const watching = new AbortController();
    const updates: number[] = [];
    const watch = (async () => {
      for await (const update of health.watch({ service: "gatehouse.auth.v1.AuthService" }, { signal: watching.signal })) {
        updates.push(update.status);
      }
    })().catch((error: unknown) => {
      if (!watching.signal.aborted) throw error;
    });

    await waitFor(() => updates.at(-1) === ServingStatus.SERVING);
    await admin(`ALTER DATABASE "${database}" ALLOW_CONNECTIONS false`);
    await admin(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'gatehouse'`,
      [database],
    );
    try {
      await waitFor(() => updates.at(-1) === ServingStatus.NOT_SERVING);
      assert.equal((await health.check({ service: "" })).status, ServingStatus.NOT_SERVING);
      assert.equal((await health.list({})).statuses["gatehouse.user.v1.UserService"]?.status, ServingStatus.NOT_SERVING);
    } finally {
      await admin(`ALTER DATABASE "${database}" ALLOW_CONNECTIONS true`);
    }
    await waitFor(() => updates.at(-1) === ServingStatus.SERVING);
    assert.deepEqual(updates, [ServingStatus.SERVING, ServingStatus.NOT_SERVING, ServingStatus.SERVING]);
    watching.abort();
    await watch;
  });

  test("an unknown service is SERVICE_UNKNOWN to Watch and NOT_FOUND to Check", async () => {
    const health = createClient(Health, server.transport("connect-binary"));
    await assert.rejects(health.check({ service: "nope.v1.Nope" }), (e: unknown) => ConnectError.from(e).code === Code.NotFound);
    const watching = new AbortController();
    for await (const update of health.watch({ service: "nope.v1.Nope" }, { signal: watching.signal })) {
      assert.equal(update.status, ServingStatus.SERVICE_UNKNOWN);
      break;
    }
    watching.abort();
  });

  test("shutdown reports NOT_SERVING to watchers and ends their streams instead of holding the drain", async () => {
    const other = await startTestServer();
    const updates: number[] = [];
    const watchEnded = (async () => {
      for await (const update of createClient(Health, other.transport("grpc")).watch({ service: "" })) updates.push(update.status);
      return performance.now();
    })();
    await waitFor(() => updates.length === 1);
    const started = performance.now();
    const stopped = other.stop();
    // Measured to the stream's end, not the whole stop (which also drops the test database).
    assert.ok((await watchEnded) - started < 5_000, "the drain did not wait for the Watch stream");
    await stopped;
    assert.deepEqual(updates, [ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
  });
});

async function admin(text: string, values: unknown[] = []): Promise<void> {
  const client = new pg.Client({ connectionString: process.env.GATEHOUSE_TEST_ADMIN_URL });
  await client.connect();
  try {
    await client.query(text, values);
  } finally {
    await client.end();
  }
}

async function waitFor(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
