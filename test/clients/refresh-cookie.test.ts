import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { postJson, startTestServer, type TestServer } from "../support/harness.ts";

const APP = "https://app.example.com";
const AUTH = "/gatehouse.auth.v1.AuthService";
const COOKIE = "__Secure-gatehouse-refresh";

function refreshCookie(headers: Headers): { value: string; attributes: string[] } | undefined {
  const raw = headers.getSetCookie().find((c) => c.startsWith(`${COOKIE}=`));
  if (!raw) return undefined;
  const [pair, ...attributes] = raw.split(";").map((part) => part.trim());
  return { value: pair!.slice(COOKIE.length + 1), attributes };
}

describe("refresh-token cookie mode (GATEHOUSE_REFRESH_COOKIE=on)", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ GATEHOUSE_REFRESH_COOKIE: "on", GATEHOUSE_CORS_ORIGINS: APP });
  });
  after(() => server.stop());

  test("a listed browser origin gets the refresh token only as an HttpOnly, Secure, SameSite=Strict cookie for Refresh", async () => {
    const res = await postJson(
      server.baseUrl,
      `${AUTH}/Register`,
      { username: "cookie", email: "cookie@example.com", password: "a long enough passphrase" },
      { origin: APP },
    );
    assert.equal(res.status, 200);
    const tokens = res.json.tokens as Record<string, string>;
    assert.ok(tokens.accessToken);
    assert.equal(tokens.refreshToken, undefined, "the body carries no refresh token");
    const cookie = refreshCookie(res.headers);
    assert.ok(cookie && cookie.value.length >= 43);
    for (const attribute of ["HttpOnly", "Secure", "SameSite=Strict", `Path=${AUTH}/Refresh`]) {
      assert.ok(cookie.attributes.includes(attribute), `${attribute} in ${cookie.attributes.join("; ")}`);
    }
    assert.ok(cookie.attributes.some((a) => /^Max-Age=\d+$/.test(a) && Number(a.slice(8)) > 86_400));

    // Refresh from the cookie alone rotates it; the old cookie value is then spent.
    const refreshed = await postJson(server.baseUrl, `${AUTH}/Refresh`, {}, { origin: APP, cookie: `${COOKIE}=${cookie.value}` });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.json));
    const next = refreshCookie(refreshed.headers);
    assert.ok(next && next.value !== cookie.value);
    assert.equal((refreshed.json.tokens as Record<string, string>).refreshToken, undefined);

    // Sign-out expires the cookie.
    const access = (refreshed.json.tokens as Record<string, string>).accessToken;
    const out = await postJson(server.baseUrl, `${AUTH}/Logout`, {}, { origin: APP, authorization: `Bearer ${access}` });
    assert.equal(out.status, 200);
    assert.ok(refreshCookie(out.headers)?.attributes.includes("Max-Age=0"));
  });

  test("the cookie is ignored from an origin not on the list (cross-site request forgery)", async () => {
    const signIn = await postJson(
      server.baseUrl,
      `${AUTH}/Register`,
      { username: "victim", email: "victim@example.com", password: "a long enough passphrase" },
      { origin: APP },
    );
    const cookie = refreshCookie(signIn.headers)!;
    for (const origin of ["https://evil.example.com", "null"]) {
      const forged = await postJson(server.baseUrl, `${AUTH}/Refresh`, {}, { origin, cookie: `${COOKIE}=${cookie.value}` });
      assert.equal(forged.status, 401);
      assert.equal(refreshCookie(forged.headers), undefined);
    }
    const genuine = await postJson(server.baseUrl, `${AUTH}/Refresh`, {}, { origin: APP, cookie: `${COOKIE}=${cookie.value}` });
    assert.equal(genuine.status, 200, "the forgeries did not spend the token");
  });

  test("callers without a browser origin (backends, curl, gRPC) keep the refresh token in the body", async () => {
    const { tokens } = await server.auth("grpc").register({
      username: "backend",
      email: "backend@example.com",
      password: "a long enough passphrase",
    });
    assert.ok(tokens?.refreshToken);
    const res = await postJson(server.baseUrl, `${AUTH}/Refresh`, { refreshToken: tokens.refreshToken });
    assert.equal(res.status, 200);
    assert.ok((res.json.tokens as Record<string, string>).refreshToken);
    assert.equal(refreshCookie(res.headers), undefined);
  });
});

describe("without cookie mode", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ GATEHOUSE_CORS_ORIGINS: APP });
  });
  after(() => server.stop());

  test("browsers get the refresh token in the body and no cookie", async () => {
    const res = await postJson(
      server.baseUrl,
      `${AUTH}/Register`,
      { username: "plain", email: "plain@example.com", password: "a long enough passphrase" },
      { origin: APP },
    );
    assert.equal(res.status, 200);
    assert.ok((res.json.tokens as Record<string, string>).refreshToken);
    assert.equal(refreshCookie(res.headers), undefined);
  });
});
