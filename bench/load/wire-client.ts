/**
 * The benchmark's own unary client: Connect JSON over HTTP/1.1 (undici) and gRPC over HTTP/2
 * (node:http2), with messages encoded and decoded by protobuf-es as any client would.
 *
 * Why not connect-es' client: the load generator shares the machine's 2 cores with the server and
 * PostgreSQL, and connect-es' Node client spends about half a millisecond of CPU per call (fetch-style
 * Headers, abort signals, async iterables over node:http streams). That CPU is taken from the server
 * being measured. This client speaks the same two protocols on the wire in a fraction of it, as
 * purpose-built load generators (wrk, h2load, ghz) do. `--load-client connect-es` still drives the
 * benchmark with connect-es, to compare.
 */
import { connect as connectHttp2, constants as h2, type ClientHttp2Session } from "node:http2";
import { create, fromBinary, fromJsonString, toBinary, toJsonString, type DescMessage, type DescMethodUnary, type DescService, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeFromHttpStatus, codeFromString } from "@connectrpc/connect/protocol-connect";
import { Pool } from "undici";
import type { BenchProtocol } from "./load-spec.ts";

export type CallOptions = { timeoutMs: number; headers: Record<string, string> };

export type UnaryMethods<S extends DescService> = {
  [K in keyof S["method"]]: S["method"][K] extends DescMethodUnary<infer I, infer O>
    ? (input: MessageInitShape<I>, options: CallOptions) => Promise<MessageShape<O>>
    : never;
};

/** Moves one encoded request to the server and returns the encoded response. */
interface Wire {
  unary(path: string, body: Uint8Array, options: CallOptions): Promise<Uint8Array>;
  close(): void;
}

/** A client for every unary method of `service`, over `wire`. */
function clientFor<S extends DescService>(service: S, wire: Wire, protocol: BenchProtocol): UnaryMethods<S> {
  const methods: Record<string, unknown> = {};
  for (const method of service.methods) {
    if (method.methodKind !== "unary") continue;
    const path = `/${service.typeName}/${method.name}`;
    methods[method.localName] =
      protocol === "grpc"
        ? async (input: MessageInitShape<DescMessage>, options: CallOptions) =>
            fromBinary(method.output, await wire.unary(path, toBinary(method.input, create(method.input, input)), options))
        : async (input: MessageInitShape<DescMessage>, options: CallOptions) => {
            const body = Buffer.from(toJsonString(method.input, create(method.input, input)));
            return fromJsonString(method.output, Buffer.from(await wire.unary(path, body, options)).toString("utf8"), { ignoreUnknownFields: true });
          };
  }
  return methods as UnaryMethods<S>;
}

/**
 * Connect unary over HTTP/1.1: POST the JSON message; a 200 carries the answer, anything else
 * a Connect error body `{ code, message }`. One keep-alive connection per worker.
 */
function connectJsonWire(baseUrl: string, connections: number): Wire {
  const pool = new Pool(baseUrl, { connections, pipelining: 1 });
  return {
    async unary(path, body, { timeoutMs, headers }) {
      const res = await pool.request({
        method: "POST",
        path,
        body,
        headers: { ...headers, "content-type": "application/json", "connect-protocol-version": "1", "connect-timeout-ms": String(timeoutMs) },
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      const bytes = new Uint8Array(await res.body.arrayBuffer());
      if (res.statusCode === 200) return bytes;
      let error: { code?: unknown; message?: unknown } = {};
      try {
        error = JSON.parse(Buffer.from(bytes).toString("utf8")) as typeof error;
      } catch {
        // Not a Connect error body; the HTTP status says what happened.
      }
      const code = (typeof error.code === "string" ? codeFromString(error.code) : undefined) ?? codeFromHttpStatus(res.statusCode);
      throw new ConnectError(typeof error.message === "string" ? error.message : `HTTP ${res.statusCode}`, code);
    },
    close: () => void pool.close(),
  };
}

/**
 * gRPC unary over one HTTP/2 connection (as a backend's channel multiplexes its calls): one
 * length-prefixed message out, one back, and the status in the trailers (or in the headers of a
 * trailers-only answer).
 */
function grpcWire(baseUrl: string): Wire {
  let session: ClientHttp2Session | undefined;
  const connected = () => {
    if (!session || session.closed || session.destroyed) {
      session = connectHttp2(baseUrl);
      session.on("error", () => undefined); // each call's stream reports its own failure
    }
    return session;
  };
  return {
    unary(path, body, { timeoutMs, headers }) {
      return new Promise((resolve, reject) => {
        const stream = connected().request({
          ...headers,
          [h2.HTTP2_HEADER_METHOD]: "POST",
          [h2.HTTP2_HEADER_PATH]: path,
          [h2.HTTP2_HEADER_CONTENT_TYPE]: "application/grpc+proto",
          [h2.HTTP2_HEADER_TE]: "trailers",
          "grpc-timeout": `${timeoutMs}m`,
        });
        const chunks: Buffer[] = [];
        let status: string | undefined;
        let message = "";
        const readStatus = (fields: Record<string, unknown>) => {
          if (fields["grpc-status"] === undefined) return;
          status = String(fields["grpc-status"]);
          const text = String(fields["grpc-message"] ?? "");
          try {
            message = decodeURIComponent(text);
          } catch {
            message = text; // not percent-encoded as the protocol asks; shown as it came
          }
        };
        stream.on("response", (fields) => {
          const httpStatus = Number(fields[h2.HTTP2_HEADER_STATUS]);
          if (httpStatus !== 200) reject(new ConnectError(`HTTP ${httpStatus}`, codeFromHttpStatus(httpStatus)));
          readStatus(fields);
        });
        stream.on("trailers", readStatus);
        stream.on("data", (chunk: Buffer) => chunks.push(chunk));
        stream.on("error", (error: Error) => reject(new ConnectError(error.message, Code.Unavailable)));
        stream.on("close", () => {
          if (status !== "0") {
            // gRPC status numbers are Connect's codes.
            const code = Number(status);
            reject(new ConnectError(message || "no grpc-status", status !== undefined && code in Code ? (code as Code) : Code.Unknown));
            return;
          }
          const frame = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
          if (frame.length < 5 || frame[0] !== 0 || frame.readUInt32BE(1) !== frame.length - 5) {
            reject(new ConnectError("the answer is not one uncompressed gRPC message", Code.Internal));
            return;
          }
          resolve(frame.subarray(5));
        });
        const request = Buffer.allocUnsafe(5 + body.length);
        request[0] = 0;
        request.writeUInt32BE(body.length, 1);
        request.set(body, 5);
        stream.end(request);
      });
    },
    close: () => session?.close(),
  };
}

/** Clients for `services` at `baseUrl`; `connections` is the HTTP/1.1 keep-alive pool's size. */
export function wireClients<A extends DescService, U extends DescService>(
  protocol: BenchProtocol,
  baseUrl: string,
  connections: number,
  auth: A,
  users: U,
): { auth: UnaryMethods<A>; users: UnaryMethods<U>; close(): void } {
  const wire = protocol === "grpc" ? grpcWire(baseUrl) : connectJsonWire(baseUrl, connections);
  return { auth: clientFor(auth, wire, protocol), users: clientFor(users, wire, protocol), close: () => wire.close() };
}
