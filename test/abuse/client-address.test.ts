import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { canonicalAddress, createClientAddressResolver, rateLimitSubject } from "../../src/abuse/client-address.ts";
import { ConfigError, loadConfig } from "../../src/platform/config/config.ts";

describe("client address: X-Forwarded-For is believed only from trusted proxies", () => {
  test("without trusted proxies the TCP peer is the client, whatever the header says", () => {
    const resolve = createClientAddressResolver([]);
    assert.equal(resolve("198.51.100.7", "203.0.113.9"), "198.51.100.7");
    assert.equal(resolve("198.51.100.7", ["203.0.113.9", "10.0.0.1"]), "198.51.100.7");
    assert.equal(resolve("::ffff:198.51.100.7", undefined), "198.51.100.7", "IPv4-mapped IPv6 reads as IPv4");
  });

  test("a peer that is not a trusted proxy is the client even when proxies are configured", () => {
    const resolve = createClientAddressResolver(["10.0.0.0/8"]);
    assert.equal(resolve("198.51.100.7", "203.0.113.9"), "198.51.100.7");
  });

  test("from a trusted proxy: the right-most hop that is not a trusted proxy; what a client prepends is ignored", () => {
    const resolve = createClientAddressResolver(["10.0.0.0/8", "2001:db8:ffff::/48"]);
    assert.equal(resolve("10.1.2.3", "203.0.113.9"), "203.0.113.9");
    assert.equal(resolve("10.1.2.3", "6.6.6.6, 203.0.113.9"), "203.0.113.9", "a forged left-most entry changes nothing");
    assert.equal(resolve("10.1.2.3", "6.6.6.6, 203.0.113.9, 10.9.9.9"), "203.0.113.9", "a chain of trusted proxies is walked");
    assert.equal(resolve("::ffff:10.1.2.3", ["6.6.6.6", "203.0.113.9"]), "203.0.113.9", "repeated headers are one list");
    assert.equal(resolve("2001:db8:ffff::1", "2001:DB8::7"), "2001:db8::7");
    assert.equal(resolve("10.1.2.3", "203.0.113.9:4711"), "203.0.113.9", "a port after an IPv4 hop");
    assert.equal(resolve("10.1.2.3", "[2001:db8::7]:443"), "2001:db8::7", "a bracketed IPv6 hop with a port");
  });

  test("garbage in the header stops the walk at the last address that can be believed", () => {
    const resolve = createClientAddressResolver(["10.0.0.1"]);
    assert.equal(resolve("10.0.0.1", "203.0.113.9, not-an-ip"), "10.0.0.1");
    assert.equal(resolve("10.0.0.1", "unknown"), "10.0.0.1");
    assert.equal(resolve("10.0.0.1", ""), "10.0.0.1", "no header: the proxy itself");
    assert.equal(resolve("10.0.0.1", "10.0.0.1"), "10.0.0.1", "only trusted hops: the left-most of them");
  });

  test("one spelling per address; IPv6 clients are limited per /64", () => {
    assert.equal(canonicalAddress("::FFFF:127.0.0.1"), "127.0.0.1");
    assert.equal(canonicalAddress("FE80::1%eth0"), "fe80::1");
    assert.equal(rateLimitSubject("203.0.113.9"), "203.0.113.9");
    assert.equal(rateLimitSubject("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
    assert.equal(rateLimitSubject("2001:db8:1:2::ffff"), "2001:db8:1:2::/64", "any address of the /64 is the same subject");
    assert.equal(rateLimitSubject("2001:db8::1"), "2001:db8:0:0::/64");
    assert.equal(rateLimitSubject("::1"), "0:0:0:0::/64");
    assert.equal(rateLimitSubject("::ffff:192.0.2.1"), "192.0.2.1");
    assert.equal(rateLimitSubject("64:ff9b::192.0.2.1"), "64:ff9b:0:0::/64", "an embedded IPv4 tail");
  });
});

describe("configuration of the abuse protection", () => {
  test("defaults", () => {
    const config = loadConfig({});
    assert.deepEqual(config.trustedProxies, []);
    assert.deepEqual(config.rateLimits, {
      register: { limit: 20, windowMs: 3_600_000 },
      login: { limit: 60, windowMs: 60_000 },
      loginFailures: { limit: 100, windowMs: 3_600_000 },
      refresh: { limit: 300, windowMs: 60_000 },
      introspect: { limit: 1200, windowMs: 60_000 },
    });
    assert.deepEqual(config.loginThrottle, {
      lockoutAfter: 5,
      lockoutBaseMs: 1_000,
      lockoutMaxMs: 15 * 60_000,
      maxFailures: 50,
      failureWindowMs: 24 * 3_600_000,
    });
  });

  test("reads every variable; `off` turns a per-address limit off", () => {
    const config = loadConfig({
      GATEHOUSE_TRUSTED_PROXIES: "10.0.0.0/8, 192.0.2.1, fd00::/8",
      GATEHOUSE_RATE_LIMIT_REGISTER: "5/10m",
      GATEHOUSE_RATE_LIMIT_LOGIN: "off",
      GATEHOUSE_RATE_LIMIT_LOGIN_FAILURES: "30 / 1h",
      GATEHOUSE_RATE_LIMIT_REFRESH: "OFF",
      GATEHOUSE_RATE_LIMIT_INTROSPECT: "1000000/7d",
      GATEHOUSE_LOGIN_LOCKOUT_AFTER: "3",
      GATEHOUSE_LOGIN_LOCKOUT_BASE: "30s",
      GATEHOUSE_LOGIN_LOCKOUT_MAX: "1h",
      GATEHOUSE_LOGIN_MAX_FAILURES: "100",
      GATEHOUSE_LOGIN_FAILURE_WINDOW: "12h",
    });
    assert.deepEqual(config.trustedProxies, ["10.0.0.0/8", "192.0.2.1", "fd00::/8"]);
    assert.deepEqual(config.rateLimits, {
      register: { limit: 5, windowMs: 600_000 },
      login: undefined,
      loginFailures: { limit: 30, windowMs: 3_600_000 },
      refresh: undefined,
      introspect: { limit: 1_000_000, windowMs: 7 * 86_400_000 },
    });
    assert.deepEqual(config.loginThrottle, {
      lockoutAfter: 3,
      lockoutBaseMs: 30_000,
      lockoutMaxMs: 3_600_000,
      maxFailures: 100,
      failureWindowMs: 12 * 3_600_000,
    });
  });

  test("every bad value is refused, naming its variable", () => {
    let error: ConfigError | undefined;
    try {
      loadConfig({
        GATEHOUSE_TRUSTED_PROXIES: "10.0.0.0/33, proxy.example.com, 2001:db8::/129, 192.0.2.1/8/8",
        GATEHOUSE_RATE_LIMIT_REGISTER: "20",
        GATEHOUSE_RATE_LIMIT_LOGIN: "0/1m",
        GATEHOUSE_RATE_LIMIT_LOGIN_FAILURES: "10/500ms",
        GATEHOUSE_RATE_LIMIT_REFRESH: "10/8d",
        GATEHOUSE_RATE_LIMIT_INTROSPECT: "many/1m",
        GATEHOUSE_LOGIN_LOCKOUT_AFTER: "0",
        GATEHOUSE_LOGIN_LOCKOUT_BASE: "1m",
        GATEHOUSE_LOGIN_LOCKOUT_MAX: "10s",
        GATEHOUSE_LOGIN_MAX_FAILURES: "101",
        GATEHOUSE_LOGIN_FAILURE_WINDOW: "30s",
      });
    } catch (e) {
      error = e as ConfigError;
    }
    assert.ok(error instanceof ConfigError, "loadConfig must refuse this environment");
    const text = error.problems.join("\n");
    for (const bad of ["10.0.0.0/33", "proxy.example.com", "2001:db8::/129", "192.0.2.1/8/8"]) {
      assert.match(text, new RegExp(`GATEHOUSE_TRUSTED_PROXIES: "${bad.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}"`));
    }
    for (const name of [
      "GATEHOUSE_RATE_LIMIT_REGISTER",
      "GATEHOUSE_RATE_LIMIT_LOGIN=",
      "GATEHOUSE_RATE_LIMIT_LOGIN_FAILURES",
      "GATEHOUSE_RATE_LIMIT_REFRESH",
      "GATEHOUSE_RATE_LIMIT_INTROSPECT",
      "GATEHOUSE_LOGIN_LOCKOUT_AFTER",
      "GATEHOUSE_LOGIN_LOCKOUT_MAX must not be shorter than GATEHOUSE_LOGIN_LOCKOUT_BASE",
      "GATEHOUSE_LOGIN_MAX_FAILURES",
      "GATEHOUSE_LOGIN_FAILURE_WINDOW",
    ]) {
      assert.ok(text.includes(name), `a problem names ${name}:\n${text}`);
    }
  });
});
