import { Agent } from "node:http";
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { AuthService } from "../../gen/gatehouse/auth/v1/auth_pb.js";
import { UserService } from "../../gen/gatehouse/user/v1/user_pb.js";
import { pickFrom, seededRandom } from "../lib/random.ts";
import type { BenchProtocol, Credentials, LoadSpec, UserSource } from "./load-spec.ts";
import { wireClients, type CallOptions, type UnaryMethods } from "./wire-client.ts";

const CALL_TIMEOUT_MS = 30_000;

/** One worker's next call. `recover` runs (untimed) after a failed call, e.g. to sign in again. */
export interface Worker {
  call(): Promise<void>;
  recover?(): Promise<void>;
}

/** What workers call: the benchmark's wire client, or connect-es' client (`--load-client`). */
export interface Clients {
  auth: UnaryMethods<typeof AuthService>;
  users: UnaryMethods<typeof UserService>;
}

/**
 * One client per target, shared by the workers that call it: HTTP/1.1 with a keep-alive pool
 * of one connection per worker (as a browser or curl loop would), or gRPC with every call
 * multiplexed on one HTTP/2 connection (as a backend service's channel does).
 */
export function makeClients(spec: LoadSpec): Clients[] {
  return spec.targets.map((baseUrl) => {
    const connections = Math.max(1, Math.ceil(spec.concurrency / spec.targets.length));
    if (spec.client === "wire") return wireClients(spec.protocol, baseUrl, connections, AuthService, UserService);
    const transport = makeTransport(spec.protocol, baseUrl, connections);
    return { auth: createClient(AuthService, transport), users: createClient(UserService, transport) };
  });
}

function makeTransport(protocol: BenchProtocol, baseUrl: string, sockets: number): Transport {
  switch (protocol) {
    case "connect-json":
      return createConnectTransport({
        baseUrl,
        httpVersion: "1.1",
        useBinaryFormat: false,
        nodeOptions: { agent: new Agent({ keepAlive: true, maxSockets: sockets }) },
      });
    case "grpc":
      return createGrpcTransport({ baseUrl });
  }
}

/** A string shaped like an EdDSA at+jwt access token, for the echo ceiling (which never reads it). */
const FAKE_ACCESS_TOKEN = `eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCIsImtpZCI6ImJlbmNoIn0.${"e".repeat(300)}.${"s".repeat(86)}`;
const FAKE_REFRESH_TOKEN = "r".repeat(43);

/**
 * Gatehouse limits calls per client address, and real traffic comes from many clients: each call
 * says it comes from the next of 4,096 addresses in a /20 of its own (the server trusts
 * X-Forwarded-For from loopback in the benchmark), so the limiter runs — and costs what it costs —
 * without refusing the load of one test machine.
 */
export type OptionsFactory = (headers?: Record<string, string>) => CallOptions;

export function clientAddresses(name: string, attempt: number): OptionsFactory {
  let hash = attempt * 31;
  for (const char of name) hash = (hash * 33 + char.charCodeAt(0)) >>> 0;
  const second = hash % 256;
  const third = ((hash >>> 8) % 16) * 16;
  let next = 0;
  return (headers = {}) => {
    const n = next++ % 4096;
    return { timeoutMs: CALL_TIMEOUT_MS, headers: { ...headers, "x-forwarded-for": `10.${second}.${third + (n >> 8)}.${n & 255}` } };
  };
}

/** Signs in (untimed setup) and returns the token pair's two tokens. */
async function signIn(clients: Clients, who: Credentials, options: OptionsFactory): Promise<{ accessToken: string; refreshToken: string }> {
  const { tokens } = await clients.auth.login({ identifier: { case: "username", value: who.username }, password: who.password }, options());
  if (!tokens) throw new Error("login returned no tokens");
  return { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken };
}

function seededUser(users: Exclude<UserSource, "none">, worker: number): Credentials {
  return { username: `${users.usernamePrefix}${(worker % users.userCount) + 1}`, password: users.password };
}

/** Builds worker `index` of a scenario, doing its untimed setup; `notes` collects facts for the report. */
export async function makeWorker(
  spec: LoadSpec,
  clients: Clients,
  index: number,
  notes: Record<string, unknown>,
  shared: Map<string, Promise<string>>,
  options: OptionsFactory,
): Promise<Worker> {
  const op = spec.operation;
  switch (op.kind) {
    case "login": {
      const random = seededRandom(spec.seed * 7919 + index);
      return {
        call: async () => {
          const username = `${op.usernamePrefix}${pickFrom(random, op.userCount)}`;
          await clients.auth.login({ identifier: { case: "username", value: username }, password: op.password }, options());
        },
      };
    }
    case "register": {
      let n = 0;
      return {
        call: async () => {
          n++;
          const username = `r${op.tag}${spec.attempt ?? 0}-${index}-${n}`;
          await clients.auth.register(
            {
              username,
              email: `${username}@bench.example`,
              password: "a bench password that is long enough",
              firstName: "Bench",
              lastName: `Worker ${index}`,
            },
            options(),
          );
        },
      };
    }
    case "refresh": {
      const who = op.users === "none" ? undefined : seededUser(op.users, index);
      let refreshToken = who ? (await signIn(clients, who, options)).refreshToken : FAKE_REFRESH_TOKEN;
      return {
        call: async () => {
          const { tokens } = await clients.auth.refresh({ refreshToken }, options());
          refreshToken = tokens?.refreshToken ?? "";
        },
        // A broken chain (a failed call) starts over from a fresh sign-in, outside the clock.
        recover: async () => {
          if (who) refreshToken = (await signIn(clients, who, options)).refreshToken;
        },
      };
    }
    case "getMe":
    case "introspect": {
      const token = op.users === "none" ? FAKE_ACCESS_TOKEN : (await signIn(clients, seededUser(op.users, index), options)).accessToken;
      if (op.kind === "introspect") {
        return {
          call: async () => {
            const res = await clients.auth.introspect({ token }, options());
            if (!res.active) throw new Error("introspect said the token is not active");
          },
        };
      }
      const authorization = `Bearer ${token}`;
      return { call: () => clients.auth.getMe({}, options({ authorization })).then(() => undefined) };
    }
    case "listUsers": {
      const authorization = `Bearer ${op.admin ? (await signIn(clients, op.admin, options)).accessToken : FAKE_ACCESS_TOKEN}`;
      let pageToken = "";
      if (op.depth > 0) {
        // Workers share one deep token: the first one walks, the others wait for it.
        let deepToken = shared.get("deepToken");
        if (!deepToken) shared.set("deepToken", (deepToken = walk(clients, () => options({ authorization }), op.depth, notes)));
        pageToken = await deepToken;
      }
      return {
        call: async () => {
          const res = await clients.users.listUsers({ pageSize: op.pageSize, pageToken }, options({ authorization }));
          if (res.users.length === 0) throw new Error("ListUsers returned an empty page");
        },
      };
    }
  }
}

/** Follows next_page_token 100 users at a time until `depth` users lie behind; returns the token there. */
async function walk(clients: Clients, options: () => CallOptions, depth: number, notes: Record<string, unknown>): Promise<string> {
  const started = performance.now();
  let pageToken = "";
  let walked = 0;
  let pages = 0;
  while (walked < depth) {
    const res = await clients.users.listUsers({ pageSize: 100, pageToken }, options());
    pages++;
    walked += res.users.length;
    notes.totalSize = res.totalSize;
    if (!res.nextPageToken) break;
    pageToken = res.nextPageToken;
  }
  notes.walkedUsers = walked;
  notes.walkPages = pages;
  notes.walkMs = Math.round(performance.now() - started);
  notes.walkMsPerPage = Number(((performance.now() - started) / pages).toFixed(2));
  return pageToken;
}
