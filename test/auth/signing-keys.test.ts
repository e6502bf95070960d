import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from "jose";
import { systemClock } from "../../src/platform/clock.ts";
import { loadConfig } from "../../src/platform/config/config.ts";
import { createLogger } from "../../src/platform/observability/logger.ts";
import { startSessionCleanup } from "../../src/sessions/session-cleanup.ts";
import { createSigningKeys } from "../../src/signing-keys/signing-keys.ts";
import { createManualClock } from "../support/manual-clock.ts";
import { startTestServer, type TestServer } from "../support/harness.ts";
import { runGatehouse } from "../support/process.ts";
import { bearer, registerUser } from "./support.ts";

async function jwks(server: TestServer): Promise<JSONWebKeySet> {
  const res = await fetch(`${server.baseUrl}/.well-known/jwks.json`);
  assert.equal(res.status, 200);
  return (await res.json()) as JSONWebKeySet;
}

const verifyOptions = { issuer: "http://localhost:8080", audience: "gatehouse", typ: "at+jwt" };

describe("signing keys", () => {
  const clock = createManualClock();
  let server: TestServer;
  let databaseUrl: string;

  before(async () => {
    server = await startTestServer({}, { clock });
    databaseUrl = String(server.gatehouse.orm.config.get("clientUrl"));
  });
  after(() => server.stop());

  test("one key is generated on first start, stored in the database, and published", async () => {
    const rows = await server.sql<{ kid: string; algorithm: string; retire_time: Date | null }>("select kid, algorithm, retire_time from signing_keys");
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.algorithm, "EdDSA");
    assert.equal(rows[0]!.retire_time, null);
    assert.deepEqual((await jwks(server)).keys.map((k) => k.kid), [rows[0]!.kid]);
  });

  test("`gatehouse keys rotate` switches signing to a new key and keeps the old one published until its tokens expire", async () => {
    const before = await registerUser(server.auth());
    const oldKid = decodeProtectedHeader(before.tokens.accessToken).kid;

    const run = await runGatehouse(["keys", "rotate"], { DATABASE_URL: databaseUrl, GATEHOUSE_LOG_LEVEL: "warn" });
    assert.equal(run.code, 0, run.stderr);
    const newKid = /New signing key (\S+)/.exec(run.stdout)?.[1];
    assert.ok(newKid && newKid !== oldKid, run.stdout);

    // Instances re-read the key table within a minute.
    clock.advance(61_000);
    const after = await registerUser(server.auth());
    assert.equal(decodeProtectedHeader(after.tokens.accessToken).kid, newKid);

    const published = await jwks(server);
    assert.deepEqual(new Set(published.keys.map((k) => k.kid)), new Set([oldKid, newKid]));
    const local = createLocalJWKSet(published);
    for (const token of [before.tokens.accessToken, after.tokens.accessToken]) {
      await jwtVerify(token, local, { ...verifyOptions, currentDate: clock.now() });
    }
    // Gatehouse itself still accepts the token signed with the retired key.
    assert.equal((await server.auth().getMe({}, bearer(before.tokens.accessToken))).user?.id, before.user.id);

    // Once every token the old key signed has expired, it leaves the JWKS and the table.
    const [retired] = await server.sql<{ remove_time: Date }>("select remove_time from signing_keys where kid = $1", [oldKid]);
    assert.ok(retired!.remove_time.getTime() >= clock.now().getTime() - 61_000 + 15 * 60_000, "kept at least one token lifetime");
    clock.set(new Date(retired!.remove_time.getTime() + 1_000));
    assert.deepEqual((await jwks(server)).keys.map((k) => k.kid), [newKid]);
    const cleanup = startSessionCleanup({
      db: () => server.gatehouse.orm.em.getConnection().getClient(),
      clock,
      lifetimes: { sessionTtlMs: 30 * 86_400_000, sessionIdleTtlMs: 7 * 86_400_000 },
      logger: createLogger("silent"),
    });
    try {
      const swept = await cleanup.runOnce();
      assert.equal(swept.signingKeys, 1);
    } finally {
      cleanup.stop();
    }
    assert.deepEqual((await server.sql<{ kid: string }>("select kid from signing_keys")).map((r) => r.kid), [newKid]);
  });

  test("`gatehouse keys` without `rotate` is a usage error", async () => {
    const run = await runGatehouse(["keys"], { DATABASE_URL: databaseUrl, GATEHOUSE_LOG_LEVEL: "warn" });
    assert.equal(run.code, 2);
    assert.match(run.stderr, /gatehouse keys rotate/);
  });
});

describe("ES256 signing", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ GATEHOUSE_SIGNING_ALG: "ES256" });
  });
  after(() => server.stop());

  test("tokens are ES256 and verify against the published P-256 key", async () => {
    const alice = await registerUser(server.auth());
    assert.equal(decodeProtectedHeader(alice.tokens.accessToken).alg, "ES256");
    const published = await jwks(server);
    assert.equal(published.keys.length, 1);
    assert.equal(published.keys[0]!.kty, "EC");
    assert.equal(published.keys[0]!.crv, "P-256");
    await jwtVerify(alice.tokens.accessToken, createLocalJWKSet(published), { ...verifyOptions, algorithms: ["ES256"] });
    assert.equal((await server.auth().getMe({}, bearer(alice.tokens.accessToken))).user?.id, alice.user.id);
  });
});

describe("private signing keys sealed with GATEHOUSE_SIGNING_KEY_SECRET", () => {
  const secret = "s3cret-for-tests-only-0123456789abcdef";
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ GATEHOUSE_SIGNING_KEY_SECRET: secret });
  });
  after(() => server.stop());

  test("the database holds only ciphertext, tokens still sign and verify, and the wrong secret cannot use the key", async () => {
    const [row] = await server.sql<{ kid: string; private_jwk: Record<string, unknown> }>("select kid, private_jwk from signing_keys");
    assert.equal(row!.private_jwk.sealed, "A256GCM");
    assert.equal(row!.private_jwk.d, undefined, "no private key material in the clear");
    const alice = await registerUser(server.auth());
    await jwtVerify(alice.tokens.accessToken, createLocalJWKSet(await jwks(server)), verifyOptions);

    const db = () => server.gatehouse.orm.em.getConnection().getClient();
    const config = { signingAlg: "EdDSA" as const, accessTokenTtlMs: 15 * 60_000 };
    await assert.rejects(createSigningKeys({ db, config: { ...config, signingKeySecret: undefined }, clock: systemClock }).active(), /is encrypted/);
    await assert.rejects(
      createSigningKeys({ db, config: { ...config, signingKeySecret: `${secret}-other` }, clock: systemClock }).active(),
      /cannot be decrypted/,
    );
    const right = await createSigningKeys({ db, config: { ...config, signingKeySecret: secret }, clock: systemClock }).active();
    assert.equal(right.kid, row!.kid);
  });

  test("a secret shorter than 32 characters stops start-up with a message naming the variable", () => {
    assert.throws(() => loadConfig({ GATEHOUSE_SIGNING_KEY_SECRET: "short" }), /GATEHOUSE_SIGNING_KEY_SECRET must be at least 32 characters/);
  });
});
