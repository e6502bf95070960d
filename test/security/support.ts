import { connect as http2Connect, type IncomingHttpHeaders } from "node:http2";

/** What came back from a hand-made gRPC call: the status from the trailers (or a trailers-only answer). */
export interface RawGrpcAnswer {
  readonly httpStatus: number;
  readonly grpcStatus: number | undefined;
  readonly grpcMessage: string;
  /** Everything sent back: headers, body bytes and trailers, for greps. */
  readonly text: string;
}

/** One gRPC length-prefixed message: flag byte (1 = compressed), 4-byte length, payload. */
export function grpcFrame(payload: Uint8Array, { compressed = false, declaredLength }: { compressed?: boolean; declaredLength?: number } = {}): Buffer {
  const frame = Buffer.alloc(5 + payload.length);
  frame.writeUInt8(compressed ? 1 : 0, 0);
  frame.writeUInt32BE(declaredLength ?? payload.length, 1);
  frame.set(payload, 5);
  return frame;
}

/** POSTs raw bytes as a gRPC call over h2c with prior knowledge, with no client-side checks at all. */
export async function rawGrpc(baseUrl: string, path: string, body: Uint8Array, headers: Record<string, string> = {}): Promise<RawGrpcAnswer> {
  const session = http2Connect(baseUrl);
  session.on("error", () => {});
  try {
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      ...headers,
    });
    stream.end(body);
    return await new Promise<RawGrpcAnswer>((resolve, reject) => {
      let head: IncomingHttpHeaders = {};
      let tail: IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      stream.on("response", (h) => (head = h));
      stream.on("trailers", (t) => (tail = t));
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("error", reject);
      stream.on("close", () => {
        const all = { ...head, ...tail };
        const status = all["grpc-status"];
        resolve({
          httpStatus: Number(head[":status"] ?? 0),
          grpcStatus: status === undefined ? undefined : Number(status),
          grpcMessage: decodeURIComponent(String(all["grpc-message"] ?? "")),
          text: `${JSON.stringify(all)}\n${Buffer.concat(chunks).toString("latin1")}`,
        });
      });
    });
  } finally {
    session.close();
  }
}

/** What came back from a plain HTTP call: status, headers, body text and (when it is JSON) the parsed body. */
export interface RawHttpAnswer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  readonly json: Record<string, unknown> | undefined;
}

/** POSTs raw bytes to a Connect endpoint the way any HTTP client could. */
export async function rawPost(baseUrl: string, path: string, body: Uint8Array | string, headers: Record<string, string>): Promise<RawHttpAnswer> {
  const res = await fetch(baseUrl + path, { method: "POST", headers, body });
  const text = await res.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** gRPC status numbers by name (grpc/status.proto), for readable assertions. */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** Polls `condition` every `intervalMs`, at most `attempts` times; true as soon as it holds. */
export async function eventually(condition: () => Promise<boolean>, { attempts = 100, intervalMs = 50 } = {}): Promise<boolean> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (await condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  return false;
}
