/**
 * Ceiling for the RPC path: a bare connect-node server with trivial implementations of the
 * methods the benchmark calls (fixed answers shaped like Gatehouse's, no interceptors, no
 * database), served on the same one-port listener Gatehouse uses (HTTP/1.1 and h2c sniffed on
 * one cleartext port). Whatever Gatehouse spends beyond this is its own work.
 *
 * With `--rotation` (and the benchmark's database in BENCH_ROTATION_DATABASE_URL), its Refresh
 * also does the work no refresh can skip: Gatehouse's own rotation statement
 * (`rotateRefreshToken`, without a rate-limit gate) as a named prepared statement on a plain pg
 * pool, and an Ed25519 signature over claims of an access token's size. Nothing else of
 * Gatehouse runs: no interceptors, no call scope, no rate limit, no ORM. That prices a durable
 * rotation on this machine, so the refresh rows can say how much of their time is Gatehouse's own.
 *
 * Forked by bench/run.ts with Gatehouse's runtime settings (npm start's node flags and malloc
 * environment); sends `{ port }` once listening and stops on SIGTERM.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createServer as createHttp2Server } from "node:http2";
import type { AddressInfo } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { AuthService, TokenPairSchema } from "../../gen/gatehouse/auth/v1/auth_pb.js";
import { UserSchema, UserService } from "../../gen/gatehouse/user/v1/user_pb.js";
import { rotationCeiling } from "./rotation-ceiling.ts";
import { createLogger } from "../../src/platform/observability/logger.ts";
import { createGatehouseServer } from "../../src/platform/server/server.ts";

const now = new Date();
const later = new Date(now.getTime() + 15 * 60_000);

const user = (n: number) =>
  create(UserSchema, {
    id: `0193b1c4-7d2e-7c4a-9f1e-${String(n).padStart(12, "0")}`,
    username: `seed-ab12-${n}`,
    email: `seed-ab12-${n}@example.test`,
    firstName: "Grace",
    lastName: "Hopper",
    roles: ["user"],
    disabled: false,
    createTime: timestampFromDate(now),
    updateTime: timestampFromDate(now),
    lastLoginTime: timestampFromDate(now),
  });

const me = user(1);
const page = Array.from({ length: 20 }, (_, i) => user(i + 1));
const tokens = create(TokenPairSchema, {
  accessToken: `eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCIsImtpZCI6ImJlbmNoIn0.${"e".repeat(300)}.${"s".repeat(86)}`,
  accessTokenExpireTime: timestampFromDate(later),
  refreshToken: "r".repeat(43),
  refreshTokenExpireTime: timestampFromDate(later),
  tokenType: "Bearer",
  sessionId: "0193b1c4-7d2e-7c4a-9f1e-5a6b7c8d9e0f",
});

const rotation = process.argv.includes("--rotation") ? await rotationCeiling(requiredEnv("BENCH_ROTATION_DATABASE_URL")) : undefined;

const rpcHandler = connectNodeAdapter({
  routes: (router) => {
    router.service(AuthService, {
      getMe: () => ({ user: me }),
      introspect: () => ({ active: true, sub: me.id, sid: tokens.sessionId, roles: ["user"], exp: timestampFromDate(later) }),
      refresh: rotation
        ? async () => {
            await rotation.rotate();
            return { tokens };
          }
        : () => ({ tokens }),
    });
    router.service(UserService, {
      listUsers: () => ({ users: page, nextPageToken: `${"p".repeat(160)}.${"m".repeat(43)}`, totalSize: 10_001 }),
    });
  },
});

/**
 * `--listener direct-h2c`: a plain node:http2 server instead (HTTP/2 only, so gRPC only), to
 * measure what the one-port sniffing costs the gRPC path.
 */
const direct = process.argv.includes("direct-h2c");
const server = direct
  ? createDirectH2c()
  : createGatehouseServer({
      config: { host: "127.0.0.1", port: 0, tls: undefined, corsOrigins: [], shutdownTimeoutMs: 2_000 },
      logger: createLogger("silent"),
      rpcHandler,
      routes: {},
    });
const port = await server.listen();
process.send!({ port });
process.once("SIGTERM", () => {
  void server
    .close()
    .then(() => rotation?.close())
    .then(() => process.exit(0));
});

function createDirectH2c() {
  const h2 = createHttp2Server({}, rpcHandler);
  return {
    listen: () => new Promise<number>((resolve) => h2.listen(0, "127.0.0.1", () => resolve((h2.address() as AddressInfo).port))),
    close: () => new Promise<void>((resolve) => h2.close(() => resolve())),
  };
}

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}
