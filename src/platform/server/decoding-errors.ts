import type { ConnectError, ConnectRouter } from "@connectrpc/connect";
import { createAsyncIterable, type UniversalHandler, type UniversalServerResponse } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { gatehouseError } from "../errors/gatehouse-error.ts";

/** connect-es wraps every binary decoding failure of a request message in this (as `internal`). */
const PARSE_BINARY = "parse binary: ";

/**
 * A request message that is not valid protobuf — truncated, a wrong wire type, invalid UTF-8 in
 * a string — is the caller's mistake: `invalid_argument` / VALIDATION_FAILED. connect-es answers
 * it with `internal` (HTTP 500), and decodes requests before any interceptor runs, so the one
 * place to correct it is the handler's answer: this wraps every handler of the router and
 * rewrites exactly that error, in each protocol's own framing (Connect JSON body, gRPC trailers,
 * gRPC-Web trailer frame). Call it last in `routes`, after every `router.service(...)`.
 */
export function answerUnparsableMessagesAsInvalid(router: ConnectRouter): void {
  router.handlers.forEach((handler, index) => {
    const wrapped = async (req: Parameters<UniversalHandler>[0]): Promise<UniversalServerResponse> => rewrite(await handler(req));
    router.handlers[index] = Object.assign(wrapped, {
      protocolNames: handler.protocolNames,
      allowedMethods: handler.allowedMethods,
      supportedContentType: handler.supportedContentType,
      requestPath: handler.requestPath,
      service: handler.service,
      method: handler.method,
    });
  });
}

function invalid(parseMessage: string): ConnectError {
  const reason = parseMessage.slice(PARSE_BINARY.length);
  return gatehouseError("VALIDATION_FAILED", `The request is not a valid protobuf message: ${reason}.`);
}

async function rewrite(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  const contentType = res.header?.get("content-type") ?? "";
  // gRPC: the status travels in trailers, already final when a unary request failed to decode.
  const grpcMessage = decoded(res.trailer?.get("grpc-message"));
  if (res.trailer && res.trailer.get("grpc-status") === "13" && grpcMessage.startsWith(PARSE_BINARY)) {
    setTrailerStatus(res.trailer, invalid(grpcMessage));
    return res;
  }
  if (res.body === undefined || res.body instanceof Uint8Array) return res;
  // Connect unary: a JSON error body with HTTP 500 (uncompressed: error bodies are small).
  if (res.status === 500 && contentType.startsWith("application/json") && !res.header?.has("content-encoding")) {
    const bytes = await readAll(res.body);
    const message = connectErrorMessage(bytes);
    if (!message.startsWith(PARSE_BINARY)) return { ...res, body: createAsyncIterable([bytes]) };
    const error = invalid(message);
    const body = errorToJsonBytes(error, {});
    const header = new Headers(res.header);
    header.set("content-length", String(body.byteLength));
    return { ...res, status: codeToHttpStatus(error.code), header, body: createAsyncIterable([body]) };
  }
  // gRPC-Web: the trailers are the body's last frame.
  if (contentType.startsWith("application/grpc-web")) {
    const body = res.body;
    return {
      ...res,
      body: (async function* () {
        for await (const chunk of body) yield rewriteGrpcWebTrailer(chunk);
      })(),
    };
  }
  return res;
}

function rewriteGrpcWebTrailer(chunk: Uint8Array): Uint8Array {
  if (chunk.byteLength < 5 || chunk[0] !== trailerFlag) return chunk;
  const length = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength).getUint32(1);
  if (length + 5 !== chunk.byteLength) return chunk;
  const trailer = trailerParse(chunk.subarray(5));
  const message = decoded(trailer.get("grpc-message"));
  if (trailer.get("grpc-status") !== "13" || !message.startsWith(PARSE_BINARY)) return chunk;
  setTrailerStatus(trailer, invalid(message));
  const data = trailerSerialize(trailer);
  const frame = new Uint8Array(5 + data.byteLength);
  frame[0] = trailerFlag;
  new DataView(frame.buffer).setUint32(1, data.byteLength);
  frame.set(data, 5);
  return frame;
}

/** The `message` of a Connect error body with code `internal`, or "". */
function connectErrorMessage(bytes: Uint8Array): string {
  try {
    const json = JSON.parse(Buffer.from(bytes).toString("utf8")) as { code?: unknown; message?: unknown };
    return json.code === "internal" && typeof json.message === "string" ? json.message : "";
  } catch {
    return "";
  }
}

/** A percent-encoded grpc-message, decoded; "" when absent or malformed. */
function decoded(value: string | null | undefined): string {
  try {
    return value ? decodeURIComponent(value) : "";
  } catch {
    return "";
  }
}

async function readAll(body: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}
