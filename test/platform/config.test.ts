import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigError, loadConfig } from "../../src/platform/config/config.ts";
import { parseDuration } from "../../src/platform/config/duration.ts";

describe("configuration", () => {
  test("defaults follow SPEC §7", () => {
    const config = loadConfig({});
    assert.equal(config.databaseUrl, undefined);
    assert.equal(config.host, "0.0.0.0");
    assert.equal(config.port, 8080);
    assert.equal(config.issuer, "http://localhost:8080");
    assert.equal(config.audience, "gatehouse");
    assert.equal(config.accessTokenTtlMs, 15 * 60_000);
    assert.equal(config.sessionTtlMs, 30 * 86_400_000);
    assert.equal(config.sessionIdleTtlMs, 7 * 86_400_000);
    assert.equal(config.refreshReuseGraceMs, 10_000);
    assert.equal(config.signingAlg, "EdDSA");
    assert.deepEqual(config.argon2, { memoryKib: 19456, iterations: 2, parallelism: 1 });
    assert.equal(config.registrationMode, "open");
    assert.deepEqual(config.roles, ["admin", "user"]);
    assert.deepEqual(config.corsOrigins, []);
    assert.equal(config.bootstrapAdmin, undefined);
    assert.equal(config.logLevel, "info");
    assert.equal(config.maxRequestBytes, 65536);
    assert.equal(config.hashNice, 10);
  });

  test("reads every variable", () => {
    const config = loadConfig({
      DATABASE_URL: "postgres://u:p@db:5432/auth",
      GATEHOUSE_PORT: "9000",
      GATEHOUSE_ACCESS_TOKEN_TTL: "5m",
      GATEHOUSE_REFRESH_REUSE_GRACE: "0s",
      GATEHOUSE_SIGNING_ALG: "ES256",
      GATEHOUSE_REGISTRATION_MODE: "invite",
      GATEHOUSE_ROLES: "manager, driver",
      GATEHOUSE_CORS_ORIGINS: "https://app.example.com,http://localhost:5173",
      GATEHOUSE_BOOTSTRAP_ADMIN_EMAIL: "root@example.com",
      GATEHOUSE_BOOTSTRAP_ADMIN_USERNAME: "root",
      GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD: "a long passphrase",
      GATEHOUSE_HASH_NICE: "0",
    });
    assert.equal(config.databaseUrl, "postgres://u:p@db:5432/auth");
    assert.equal(config.port, 9000);
    assert.equal(config.accessTokenTtlMs, 300_000);
    assert.equal(config.refreshReuseGraceMs, 0);
    assert.equal(config.signingAlg, "ES256");
    assert.equal(config.registrationMode, "invite");
    assert.deepEqual(config.roles, ["admin", "user", "manager", "driver"]);
    assert.deepEqual(config.corsOrigins, ["https://app.example.com", "http://localhost:5173"]);
    assert.equal(config.bootstrapAdmin?.username, "root");
    assert.equal(config.hashNice, 0);
  });

  test("every bad value is reported, naming its variable", () => {
    let error: ConfigError | undefined;
    try {
      loadConfig({
          DATABASE_URL: "mysql://x",
          GATEHOUSE_PORT: "70000",
          GATEHOUSE_ACCESS_TOKEN_TTL: "15 minutes",
          GATEHOUSE_SIGNING_ALG: "HS256",
          GATEHOUSE_REGISTRATION_MODE: "sometimes",
          GATEHOUSE_ROLES: "Bad Role",
          GATEHOUSE_CORS_ORIGINS: "https://app.example.com/path",
          GATEHOUSE_BOOTSTRAP_ADMIN_EMAIL: "root@example.com",
          GATEHOUSE_ARGON2_MEMORY_KIB: "-1",
          GATEHOUSE_HASH_NICE: "20",
      });
    } catch (thrown) {
      assert.ok(thrown instanceof ConfigError);
      error = thrown;
    }
    assert.ok(error, "loadConfig must refuse this environment");
    const text = error.message;
    for (const name of [
      "DATABASE_URL",
      "GATEHOUSE_PORT",
      "GATEHOUSE_ACCESS_TOKEN_TTL",
      "GATEHOUSE_SIGNING_ALG",
      "GATEHOUSE_REGISTRATION_MODE",
      "GATEHOUSE_ROLES",
      "GATEHOUSE_CORS_ORIGINS",
      "GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD",
      "GATEHOUSE_ARGON2_MEMORY_KIB",
      "GATEHOUSE_HASH_NICE",
    ]) {
      assert.match(text, new RegExp(name), `the message names ${name}`);
    }
    assert.equal(error.problems.length, 10);
  });

  test("DATABASE_URL: any connection string PostgreSQL clients accept, Unix-socket ones included", () => {
    for (const url of [
      "postgres://postgres@/test?host=/var/run/postgresql",
      "postgresql:///test?host=/tmp",
      "postgres://app:secret@%2Fvar%2Frun%2Fpostgresql/auth",
      "postgres://app:secret@localhost:5433/auth?host=%2Fsrv%2Fpg&port=5434",
      "postgres://app:secret@db.internal/auth?sslmode=verify-full&application_name=gatehouse-eu&options=-c%20lock_timeout%3D5s",
      "postgresql://",
    ]) {
      assert.equal(loadConfig({ DATABASE_URL: url }).databaseUrl, url, url);
    }
  });

  test("DATABASE_URL: anything else is refused with a message that says why, without repeating the URL (it holds a password)", () => {
    for (const [url, reason] of [
      ["mysql://app:s3cr3t-pw@db/auth", /must be a PostgreSQL connection string such as postgres:\/\/user:password@host:5432\/database/],
      ["db.internal:5432", /must be a PostgreSQL connection string/],
      ["postgres://app:s3cr3t-pw@db:99999/auth", /not a PostgreSQL connection string Gatehouse can use \(Invalid URL\)/],
      ["postgres://app:s3cr3t-pw@[::1/auth", /Invalid URL/],
      ["postgres://app:s3cr3t-pw@db/auth?port=five", /its port is not a number/],
      ["postgres://app:s3cr3t-pw@db/auth?sslcert=/nonexistent/client.crt", /no such file or directory/],
    ] as const) {
      let error: ConfigError | undefined;
      try {
        loadConfig({ DATABASE_URL: url });
      } catch (thrown) {
        error = thrown as ConfigError;
      }
      assert.ok(error instanceof ConfigError, `${url} is refused`);
      assert.equal(error.problems.length, 1);
      assert.match(error.message, /DATABASE_URL/);
      assert.match(error.message, reason, url);
      assert.match(error.message, /Unix socket/, "the example shows the socket form too");
      assert.doesNotMatch(error.message, /s3cr3t-pw/, "the password is not repeated");
    }
  });

  test("the idle lifetime cannot exceed the absolute one", () => {
    assert.throws(() => loadConfig({ GATEHOUSE_SESSION_TTL: "1d", GATEHOUSE_SESSION_IDLE_TTL: "2d" }), /GATEHOUSE_SESSION_IDLE_TTL/);
  });

  test("durations", () => {
    assert.equal(parseDuration("250ms"), 250);
    assert.equal(parseDuration("10s"), 10_000);
    assert.equal(parseDuration("15m"), 900_000);
    assert.equal(parseDuration("2h"), 7_200_000);
    assert.equal(parseDuration("30d"), 2_592_000_000);
    for (const bad of ["", "15", "m", "1.5h", "-1s", "1w", "99999999999999999d"]) assert.equal(parseDuration(bad), undefined, bad);
  });
});
