import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { serveExample } from "../../examples/browser/serve.ts";
import { startTestServer, type TestServer } from "../support/harness.ts";
import { ensureClientBuilt, ROOT } from "./client-build.ts";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = join(ROOT, "test-artifacts");

test("the examples type-check against the package exports", async () => {
  await ensureClientBuilt();
  await promisify(execFile)(join(ROOT, "node_modules/.bin/tsc"), ["-p", join(ROOT, "examples")], { cwd: ROOT });
});

describe("examples/node-backend: a service protected with verifyAccessToken", () => {
  let server: TestServer;
  let backend: ChildProcess;
  let backendUrl: string;
  before(async () => {
    await ensureClientBuilt();
    server = await startTestServer();
    backend = spawn(process.execPath, [join(ROOT, "examples/node-backend/server.ts")], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", PORT: "0", GATEHOUSE_URL: server.baseUrl },
      stdio: ["ignore", "pipe", "pipe"],
    });
    backendUrl = await new Promise<string>((resolve, reject) => {
      let output = "";
      const timer = setTimeout(() => reject(new Error(`the example did not start:\n${output}`)), 30_000);
      const onData = (chunk: Buffer) => {
        output += chunk.toString("utf8");
        const match = /"port":(\d+)/.exec(output);
        if (match) {
          clearTimeout(timer);
          resolve(`http://127.0.0.1:${match[1]}`);
        }
      };
      backend.stdout!.on("data", onData);
      backend.stderr!.on("data", onData);
      backend.once("exit", (code) => reject(new Error(`the example exited with ${code}:\n${output}`)));
    });
  });
  after(async () => {
    const exited = new Promise((resolve) => backend.once("exit", resolve));
    backend.kill("SIGTERM");
    await exited;
    await server.stop();
  });

  test("reads verify locally; a write also asks Gatehouse over gRPC, so it sees a sign-out at once", async () => {
    const { user, tokens } = await server.auth("grpc").register({
      username: "orders.user",
      email: "orders@example.com",
      password: "a long enough passphrase",
      firstName: "Olive",
      lastName: "Orders",
    });
    const authorization = `Bearer ${tokens!.accessToken}`;
    const call = (method: string, path: string, headers: Record<string, string> = { authorization }) =>
      fetch(backendUrl + path, { method, headers });

    assert.equal((await call("GET", "/api/orders", {})).status, 401);
    assert.equal((await call("GET", "/api/orders", { authorization: "Bearer not.a.token" })).status, 401);
    const listed = await call("GET", "/api/orders");
    assert.equal(listed.status, 200);
    const body = (await listed.json()) as { user: string; roles: string[] };
    assert.equal(body.user, user!.id);
    assert.deepEqual(body.roles, ["user"]);
    assert.equal((await call("POST", "/api/orders/1/cancel")).status, 200);

    await server.auth("grpc").logout({}, { headers: { authorization } });
    assert.equal((await call("GET", "/api/orders")).status, 200, "a verified token holds until it expires");
    const write = await call("POST", "/api/orders/1/cancel");
    assert.equal(write.status, 401);
    assert.deepEqual(await write.json(), { error: "session ended" });
  });
});

for (const cookieMode of [false, true]) describe(`examples/browser: Connect-Web in headless Chromium${cookieMode ? ", refresh token in a cookie" : ""}`, () => {
  let server: TestServer;
  let site: Awaited<ReturnType<typeof serveExample>>;
  let context: BrowserContext;
  let profileDir: string;
  before(async () => {
    site = await serveExample();
    server = await startTestServer({ GATEHOUSE_CORS_ORIGINS: site.url, GATEHOUSE_REFRESH_COOKIE: cookieMode ? "on" : "off" });
    profileDir = await mkdtemp(join(tmpdir(), "gatehouse-chromium-"));
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  });
  after(async () => {
    await context?.close();
    await server?.stop();
    await new Promise((resolve) => site?.server.close(resolve));
    if (profileDir) await rm(profileDir, { recursive: true, force: true });
  });

  const statusIs = (page: Page, text: string) => page.locator("#status").filter({ hasText: text }).waitFor({ timeout: 15_000 });

  test("signs up, shows the profile, refreshes, signs out and signs in again", async () => {
    const page = await context.newPage();
    const problems: string[] = [];
    page.on("pageerror", (error) => problems.push(error.message));
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(message.text());
    });
    await page.goto(`${site.url}/?gatehouse=${encodeURIComponent(server.baseUrl)}`);

    const signUp = page.locator("#sign-up");
    await signUp.locator("[name=username]").fill("ada");
    await signUp.locator("[name=email]").fill("ada@example.com");
    await signUp.locator("[name=password]").fill("correct horse battery staple");
    await signUp.locator("[name=firstName]").fill("Ada");
    await signUp.locator("[name=lastName]").fill("Lovelace");
    await signUp.locator("button").click();
    await statusIs(page, "Signed up as ada.");
    assert.equal(await page.locator("#profile-username").textContent(), "ada");
    assert.equal(await page.locator("#profile-name").textContent(), "Ada Lovelace");
    assert.equal(await page.locator("#profile-roles").textContent(), "user");
    const sessionId = (await page.locator("#session-id").textContent()) ?? "";
    assert.equal(
      await page.locator("#refresh-token-location").textContent(),
      cookieMode ? "HttpOnly cookie (cookie mode)" : "held by this page",
    );
    if (cookieMode) assert.doesNotMatch(await page.evaluate<string>("document.cookie"), /gatehouse-refresh/);

    await page.locator("#refresh").click();
    await statusIs(page, "Tokens refreshed.");
    assert.equal(await page.locator("#refresh-count").textContent(), "1");
    assert.equal(await page.locator("#session-id").textContent(), sessionId, "rotation keeps the session");
    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, `browser-example${cookieMode ? "-cookie" : ""}.png`), fullPage: true });

    await page.locator("#sign-out").click();
    await statusIs(page, "Signed out.");
    assert.ok(await page.locator("#sign-in").isVisible());
    const [session] = await server.sql<{ revoke_time: Date | null }>("select revoke_time from sessions where id = $1", [sessionId]);
    assert.ok(session?.revoke_time, "signing out revoked the session in Gatehouse");

    const signIn = page.locator("#sign-in");
    await signIn.locator("[name=email]").fill("ada@example.com");
    await signIn.locator("[name=password]").fill("wrong password entirely");
    await signIn.locator("button").click();
    await statusIs(page, "Unauthenticated");
    await signIn.locator("[name=password]").fill("correct horse battery staple");
    await signIn.locator("button").click();
    await statusIs(page, "Signed in as ada.");

    // The failed sign-in shows up as a console error from the browser's network layer (401); nothing else may.
    assert.deepEqual(problems.filter((p) => !/status of 401/.test(p)), []);
  });
});
