import assert from "node:assert/strict";
import { test } from "node:test";
import { readConnectionString, withDatabase } from "../../src/platform/database/connection-string.ts";

test("DATABASE_URL pointed at another database (the benchmark's, a test's) keeps the rest of the URL", () => {
  const cases: [string, { host: string; port: number; user: string }][] = [
    ["postgres://postgres@127.0.0.1:5432/test", { host: "127.0.0.1", port: 5432, user: "postgres" }],
    ["postgresql://app:s%40cret@db.example:6543", { host: "db.example", port: 6543, user: "app" }],
    ["postgres://postgres@/postgres?host=/var/run/postgresql&port=5499", { host: "/var/run/postgresql", port: 5499, user: "postgres" }],
    ["postgres://postgres@localhost/x?host=/tmp/pg&sslmode=disable", { host: "/tmp/pg", port: 5432, user: "postgres" }],
  ];
  for (const [url, expected] of cases) {
    const moved = withDatabase(url, "gatehouse_bench_small");
    assert.deepEqual(readConnectionString(moved), { ...expected, database: "gatehouse_bench_small", unixSocket: expected.host.startsWith("/") }, url);
    assert.equal(new URL(moved.replace(/^[a-z]+:\/\/[^/]*/, "http://h")).search, new URL(url.replace(/^[a-z]+:\/\/[^/]*/, "http://h")).search, "query kept");
  }
  assert.throws(() => withDatabase("mysql://root@localhost/test", "x"), /postgres/);
});
