import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, mkdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { startTestServer, type TestServer } from "../support/harness.ts";
import { ensureClientBuilt, ROOT } from "./client-build.ts";

/**
 * Gatehouse as another project sees it: a dependency named `gatehouse` (linked into a throwaway
 * project's node_modules), imported through package.json `exports` only, in plain JavaScript and
 * type-checked TypeScript.
 */
const run = promisify(execFile);

const CONSUMER_TS = `
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AccessTokenError, verifyAccessToken, type AccessTokenClaims } from "gatehouse/client";
import { AuthService } from "gatehouse/auth/v1";
import { UserService, type User } from "gatehouse/user/v1";
import { RegisterRequestSchema } from "gatehouse/gen/gatehouse/auth/v1/auth_pb.js";

const baseUrl = process.env.GATEHOUSE_URL ?? "";
const auth = createClient(AuthService, createGrpcTransport({ baseUrl }));
const { user, tokens } = await auth.register({
  username: "consumer",
  email: "consumer@example.com",
  password: "a long enough passphrase",
  firstName: "Con",
  lastName: "Sumer",
});
const claims: AccessTokenClaims = await verifyAccessToken(tokens!.accessToken, {
  issuer: "http://localhost:8080",
  audience: "gatehouse",
  jwksUrl: baseUrl + "/.well-known/jwks.json",
});
const me: User | undefined = user;
let refused = "";
try {
  await verifyAccessToken(tokens!.refreshToken, { issuer: "http://localhost:8080", audience: "gatehouse", jwksUrl: baseUrl + "/.well-known/jwks.json" });
} catch (error) {
  if (error instanceof AccessTokenError) refused = error.code;
}
console.log(JSON.stringify({ sub: claims.sub, id: me?.id, refused, service: UserService.typeName, schema: RegisterRequestSchema.typeName }));
`;

describe("the gatehouse package, from another project", () => {
  let server: TestServer;
  let project: string;
  before(async () => {
    await ensureClientBuilt();
    project = await mkdtemp(join(tmpdir(), "gatehouse-consumer-"));
    await mkdir(join(project, "node_modules/@connectrpc"), { recursive: true });
    await symlink(ROOT, join(project, "node_modules/gatehouse"));
    for (const dep of ["@connectrpc/connect", "@connectrpc/connect-node"]) {
      await symlink(join(ROOT, "node_modules", dep), join(project, "node_modules", dep));
    }
    await symlink(join(ROOT, "node_modules/@types"), join(project, "node_modules/@types"));
    await writeFile(join(project, "package.json"), JSON.stringify({ name: "consumer", type: "module", private: true }));
    await writeFile(join(project, "consumer.ts"), CONSUMER_TS);
    await writeFile(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "es2024",
          module: "nodenext",
          moduleResolution: "nodenext",
          strict: true,
          types: ["node"],
          outDir: "out",
          skipLibCheck: true,
        },
        files: ["consumer.ts"],
      }),
    );
    server = await startTestServer();
  });
  after(async () => {
    await server.stop();
    await rm(project, { recursive: true, force: true });
  });

  test("type-checks against the exported declarations, compiles, and runs", async () => {
    await run(join(ROOT, "node_modules/.bin/tsc"), ["-p", project], { cwd: project });
    const { stdout } = await run(process.execPath, [join(project, "out/consumer.js")], {
      cwd: project,
      env: { PATH: process.env.PATH ?? "", GATEHOUSE_URL: server.baseUrl },
    });
    const result = JSON.parse(stdout) as Record<string, string>;
    assert.ok(result.sub && result.sub === result.id);
    assert.equal(result.refused, "TOKEN_INVALID");
    assert.equal(result.service, "gatehouse.user.v1.UserService");
    assert.equal(result.schema, "gatehouse.auth.v1.RegisterRequest");
  });
});
