import assert from "node:assert/strict";
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { exportJWK, SignJWT, type JWK } from "jose";
import { AccessTokenError, createAccessTokenVerifier, verifyAccessToken } from "../../src/client/index.ts";
import { startTestServer, type TestServer } from "../support/harness.ts";

const ISSUER = "https://gatehouse.test";
const AUDIENCE = "orders";

describe("verifyAccessToken against a real Gatehouse", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ GATEHOUSE_ISSUER: ISSUER, GATEHOUSE_AUDIENCE: AUDIENCE });
  });
  after(() => server.stop());

  test("accepts a fresh access token and returns its typed claims", async () => {
    const { user, tokens } = await server.auth("grpc").register({
      username: "ada",
      email: "ada@example.com",
      password: "correct horse battery staple",
      firstName: "Ada",
      lastName: "Lovelace",
    });
    assert.ok(user && tokens);
    const jwksUrl = `${server.baseUrl}/.well-known/jwks.json`;
    const claims = await verifyAccessToken(tokens.accessToken, { issuer: ISSUER, audience: AUDIENCE, jwksUrl });
    assert.equal(claims.sub, user.id);
    assert.equal(claims.sid, tokens.sessionId);
    assert.deepEqual(claims.roles, ["user"]);
    assert.equal(claims.iss, ISSUER);
    assert.ok(claims.exp > Date.now() / 1000 && typeof claims.jti === "string");

    const refused = (options: Partial<Parameters<typeof verifyAccessToken>[1]>, token = tokens.accessToken) =>
      assert.rejects(verifyAccessToken(token, { issuer: ISSUER, audience: AUDIENCE, jwksUrl, ...options }), (error: unknown) => {
        assert.ok(error instanceof AccessTokenError);
        assert.equal(error.code, "TOKEN_INVALID");
        return true;
      });
    await refused({ audience: "billing" });
    await refused({ issuer: "https://elsewhere.test" });
    await refused({}, tokens.refreshToken);
    const [header, payload, signature] = tokens.accessToken.split(".") as [string, string, string];
    const forged = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(payload, "base64url").toString()), roles: ["admin"] }),
    ).toString("base64url");
    await refused({}, `${header}.${forged}.${signature}`);
  });
});

/** A JWKS endpoint serving whatever keys the test puts in it, counting fetches. */
async function serveJwks(): Promise<{ url: string; keys: JWK[]; fetches: () => number; close: () => Promise<void> }> {
  const keys: JWK[] = [];
  let fetches = 0;
  const server: Server = createServer((_req, res) => {
    fetches++;
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`,
    keys,
    fetches: () => fetches,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function signingKey(alg: "EdDSA" | "ES256" | "RS256") {
  const pair =
    alg === "EdDSA"
      ? generateKeyPairSync("ed25519")
      : alg === "ES256"
        ? generateKeyPairSync("ec", { namedCurve: "P-256" })
        : generateKeyPairSync("rsa", { modulusLength: 2048 });
  const kid = randomUUID();
  const jwk = { ...(await exportJWK(pair.publicKey)), kid, alg, use: "sig" };
  const sign = (claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}, expiresIn = "5m") =>
    new SignJWT({ sid: randomUUID(), roles: ["user"], ...claims })
      .setProtectedHeader({ alg, kid, typ: "at+jwt", ...header })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(randomUUID())
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime(expiresIn)
      .sign(pair.privateKey);
  return { jwk, sign };
}

describe("verifyAccessToken with a locally served JWKS", () => {
  let jwks: Awaited<ReturnType<typeof serveJwks>>;
  before(async () => {
    jwks = await serveJwks();
  });
  after(() => jwks.close());

  const expectCode = (promise: Promise<unknown>, code: string) =>
    assert.rejects(promise, (error: unknown) => error instanceof AccessTokenError && error.code === code);

  test("EdDSA and ES256 pass; typ, algorithm, expiry and claims are enforced", async () => {
    const ed = await signingKey("EdDSA");
    const es = await signingKey("ES256");
    const rs = await signingKey("RS256");
    jwks.keys.push(ed.jwk, es.jwk, rs.jwk);
    const verify = createAccessTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, jwksUrl: jwks.url });

    assert.deepEqual((await verify(await ed.sign())).roles, ["user"]);
    assert.deepEqual((await verify(await es.sign({ roles: ["admin", "driver"] }))).roles, ["admin", "driver"]);
    await expectCode(verify(await rs.sign()), "TOKEN_INVALID");
    await expectCode(verify(await ed.sign({}, { typ: "JWT" })), "TOKEN_INVALID");
    await expectCode(verify(await ed.sign({ roles: "admin" })), "TOKEN_INVALID");
    await expectCode(verify(await ed.sign({ sid: undefined })), "TOKEN_INVALID");
    await expectCode(verify(await ed.sign({}, {}, "-2m")), "TOKEN_EXPIRED");
    // Within the default 30 s tolerance an expiry just passed is still accepted.
    assert.ok(await verify(await ed.sign({}, {}, "-5s")));
    const unsigned = `${Buffer.from(JSON.stringify({ alg: "none", typ: "at+jwt" })).toString("base64url")}.${(await ed.sign()).split(".")[1]}.`;
    await expectCode(verify(unsigned), "TOKEN_INVALID");
    await expectCode(verify("not a token"), "TOKEN_INVALID");
  });

  test("keys are cached, and a rotated-in key is fetched on its first token", async () => {
    const first = await signingKey("EdDSA");
    jwks.keys.splice(0, jwks.keys.length, first.jwk);
    const verify = createAccessTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, jwksUrl: jwks.url, jwksCooldownMs: 0 });
    const before = jwks.fetches();
    for (let i = 0; i < 5; i++) await verify(await first.sign());
    assert.equal(jwks.fetches() - before, 1, "one fetch serves many verifications");

    const second = await signingKey("EdDSA");
    jwks.keys.push(second.jwk);
    assert.ok(await verify(await second.sign()));
    assert.equal(jwks.fetches() - before, 2, "an unknown kid triggers one refetch");
    assert.ok(await verify(await first.sign()), "the old key keeps working while it is published");
  });

  test("an unreachable JWKS is JWKS_UNAVAILABLE, not an invalid token", async () => {
    const key = await signingKey("EdDSA");
    const verify = createAccessTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, jwksUrl: "http://127.0.0.1:9/jwks.json" });
    await expectCode(verify(await key.sign()), "JWKS_UNAVAILABLE");
  });

  test("options outside the safe range are refused up front", () => {
    assert.throws(() => createAccessTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, clockToleranceSec: 600 }), RangeError);
    assert.throws(
      () => createAccessTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, algorithms: ["HS256" as "EdDSA"] }),
      RangeError,
    );
  });
});
