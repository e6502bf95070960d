// An example backend ("orders") that trusts Gatehouse for sign-in.
//
// - Reads are authorised locally: the access token is verified against Gatehouse's JWKS
//   (fetched once, cached), so they cost no call to Gatehouse.
// - A write that must respect a sign-out at once also asks Gatehouse over gRPC
//   (AuthService.Introspect), since a verified token stays valid until it expires.
//
// Run: npm run build:client && GATEHOUSE_URL=http://localhost:8080 node examples/node-backend/server.ts
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AuthService } from "gatehouse/auth/v1";
import { AccessTokenError, createAccessTokenVerifier, type AccessTokenClaims } from "gatehouse/client";

const gatehouseUrl = process.env.GATEHOUSE_URL ?? "http://localhost:8080";
const verifyToken = createAccessTokenVerifier({
  issuer: process.env.GATEHOUSE_ISSUER ?? "http://localhost:8080",
  audience: process.env.GATEHOUSE_AUDIENCE ?? "gatehouse",
  jwksUrl: `${gatehouseUrl}/.well-known/jwks.json`,
});
const auth = createClient(AuthService, createGrpcTransport({ baseUrl: gatehouseUrl }));

interface Order {
  id: string;
  item: string;
  status: "open" | "cancelled";
}
const ordersByUser = new Map<string, Order[]>();

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

/** The caller's verified claims, or a 401/503 already sent. */
async function authenticate(req: IncomingMessage, res: ServerResponse): Promise<{ token: string; claims: AccessTokenClaims } | undefined> {
  const match = /^Bearer (\S+)$/.exec(req.headers.authorization ?? "");
  if (!match) {
    send(res, 401, { error: "missing bearer token" });
    return undefined;
  }
  try {
    return { token: match[1]!, claims: await verifyToken(match[1]!) };
  } catch (error) {
    if (error instanceof AccessTokenError && error.code === "JWKS_UNAVAILABLE") send(res, 503, { error: "auth unavailable" });
    else send(res, 401, { error: error instanceof AccessTokenError ? error.code : "invalid token" });
    return undefined;
  }
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? "/", "http://orders");
  const caller = await authenticate(req, res);
  if (!caller) return;
  const orders = ordersByUser.get(caller.claims.sub) ?? [{ id: "1", item: "A box of tea", status: "open" as const }];
  ordersByUser.set(caller.claims.sub, orders);

  if (req.method === "GET" && url.pathname === "/api/orders") {
    send(res, 200, { user: caller.claims.sub, roles: caller.claims.roles, orders });
    return;
  }
  const cancel = /^\/api\/orders\/([^/]+)\/cancel$/.exec(url.pathname);
  if (req.method === "POST" && cancel) {
    // Revocation must count here: ask Gatehouse whether the session is still alive.
    const { active } = await auth.introspect({ token: caller.token });
    if (!active) {
      send(res, 401, { error: "session ended" });
      return;
    }
    const order = orders.find((o) => o.id === cancel[1]);
    if (!order) {
      send(res, 404, { error: "no such order" });
      return;
    }
    order.status = "cancelled";
    send(res, 200, { order });
    return;
  }
  send(res, 404, { error: "not found" });
});

server.listen(Number(process.env.PORT ?? 3000), "127.0.0.1", () => {
  console.log(JSON.stringify({ msg: "orders example listening", port: (server.address() as AddressInfo).port }));
});
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => server.close(() => process.exit(0)));
