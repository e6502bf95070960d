import type { IncomingHttpHeaders } from "node:http";
import type { JsonReadOptions, JsonWriteOptions } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import { compressionNegotiate, invokeUnaryImplementation, mergeNonProtocolHeaders, validateReadWriteMaxBytes, type Compression } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, errorToJsonBytes, parseContentType, parseTimeout, trailerMux } from "@connectrpc/connect/protocol-connect";
import { sendConnectError, type HttpRequest, type HttpResponse } from "./http-routes.ts";
import { nodeHeaders, pathOf, unaryRoutes, unaryCallContext, type UnaryFastPathOptions, type UnaryRoute } from "./unary-fast-path.ts";

/**
 * Unary Connect calls (JSON and binary, POST), answered without connect-node's adapter.
 *
 * connect-node serves a Connect unary call through its router and adapter: the body is read
 * through two nested async generators, the answer is written back through another, awaiting the
 * socket's write callback and then the response's end, and the router wraps each handler in
 * protocol negotiation. On this project's 2-core benchmark machine that path cost ~100–160 µs of
 * server CPU a call on top of the work itself (docs/benchmarks.md).
 *
 * This handler takes the common case, a POST with `application/json` or `application/proto`, an
 * uncompressed body and a usable (or absent) `connect-timeout-ms`, and does the same work in
 * straight-line code with connect-es' own parts: its request adapter (headers, URL, the abort
 * signal tied to the connection), handler context, serialization with its size limits and JSON
 * options, interceptor chain (`invokeUnaryImplementation`), error body, compression negotiation
 * and the trailer-to-header mapping of the Connect protocol. Anything else (GET, a compressed
 * request, an unusable timeout, an unknown content type, a streaming method, another protocol)
 * goes to `fallback`, connect-es' own adapter, untouched. test/platform/connect-unary.test.ts sends
 * the same requests, well-formed and malformed, to both and compares the answers byte for byte.
 */
export interface ConnectUnaryOptions extends UnaryFastPathOptions {
  /** The fallback's `jsonOptions`: they read request bodies and write error details. */
  jsonOptions?: Partial<JsonReadOptions & JsonWriteOptions>;
}

const CONTENT_TYPE_JSON = "application/json";
const CONTENT_TYPE_PROTO = "application/proto";

export function createConnectUnaryHandler(options: ConnectUnaryOptions): (req: HttpRequest, res: HttpResponse) => void {
  const { interceptors, readMaxBytes, jsonOptions, contextValues, answerDecodingError, answerRejected, logger, fallback } = options;
  const acceptCompression = options.acceptCompression ?? [compressionGzip, compressionBrotli];
  const limits = validateReadWriteMaxBytes(readMaxBytes, undefined, undefined);
  const routes = unaryRoutes(options.services, limits, jsonOptions);

  return (req, res) => {
    const route = req.method === "POST" ? routes.get(pathOf(req.url)) : undefined;
    const fields = route && singleFields(req.headers);
    const type = fields ? parseContentType(fields["content-type"]) : undefined;
    const timeout = fields && type && !type.stream ? parseTimeout(fields["connect-timeout-ms"], Number.MAX_SAFE_INTEGER) : undefined;
    const compression =
      fields && timeout && !timeout.error ? compressionNegotiate(acceptCompression, fields["content-encoding"], fields["accept-encoding"], "accept-encoding") : undefined;
    if (!route || !fields || !type || !timeout || !compression || compression.error || compression.request) {
      fallback(req, res);
      return;
    }
    serve(route, type.binary, timeout.timeoutMs, compression.response, fields["content-length"], req, res).catch((error: unknown) => {
      const procedure = pathOf(req.url);
      if (res.headersSent || res.destroyed) {
        logger.error({ err: error, procedure }, "Connect call failed while answering");
        res.destroy();
        return;
      }
      // Logs the error unless it is the caller's fault.
      sendConnectError(res, answerRejected(error, procedure));
    });
  };

  async function serve(route: UnaryRoute, binary: boolean, timeoutMs: number | undefined, responseCompression: Compression | null, declaredLength: string | null, req: HttpRequest, res: HttpResponse): Promise<void> {
    const responseHeader = { "content-type": binary ? CONTENT_TYPE_PROTO : CONTENT_TYPE_JSON };
    const context = unaryCallContext(route, { protocolName: "connect", timeoutMs, responseHeader }, req, res, contextValues(req));
    let status = 200;
    let body: Uint8Array;
    try {
      const bytes = await readBody(req, readMaxBytes, declaredLength);
      let input;
      try {
        input = route.serialization.getI(binary).parse(bytes);
      } catch (error) {
        throw error instanceof ConnectError ? answerDecodingError(error) : error;
      }
      const output = await invokeUnaryImplementation(route.spec, context, input, interceptors);
      body = route.serialization.getO(binary).serialize(output);
    } catch (failure) {
      context.abort(failure);
      const error = failure instanceof ConnectError ? failure : new ConnectError("internal error", Code.Internal, undefined, undefined, failure);
      status = codeToHttpStatus(error.code);
      context.responseHeader.set("content-type", CONTENT_TYPE_JSON);
      if (!error.isWireError) mergeNonProtocolHeaders(context.responseHeader, error.metadata);
      body = errorToJsonBytes(error, jsonOptions ?? {});
    } finally {
      context.abort();
    }
    if (responseCompression && body.byteLength >= limits.compressMinBytes) {
      body = await responseCompression.compress(body);
      context.responseHeader.set("content-encoding", responseCompression.name);
    }
    const header = trailerMux(context.responseHeader, context.responseTrailer);
    header.set("content-length", String(body.byteLength));
    if (res.destroyed) return;
    res.writeHead(status, nodeHeaders(header));
    res.end(body);
  }
}

/**
 * The whole request body, with connect-es' checks and errors: a declared length over
 * `readMaxBytes` is refused before reading, a body that does not match its declared length or
 * grows past `readMaxBytes` as soon as that is known.
 */
function readBody(req: HttpRequest, readMaxBytes: number, declaredLength: string | null): Promise<Uint8Array> {
  const declared = declaredLength === null ? Number.NaN : Number.parseInt(declaredLength, 10);
  const known = Number.isSafeInteger(declared) && declared >= 0;
  if (known && declared > readMaxBytes) {
    return Promise.reject(new ConnectError(`message size ${declared} is larger than configured readMaxBytes ${readMaxBytes}`, Code.ResourceExhausted));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const finish = (error?: Error) => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onClose);
      req.off("close", onClose);
      if (error) reject(error);
      else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received));
    };
    const onData = (chunk: Buffer) => {
      received += chunk.byteLength;
      if (known && received > declared) return finish(new ConnectError(`protocol error: promised ${declared} bytes, received ${received}`, Code.InvalidArgument));
      if (!known && received > readMaxBytes) return finish(new ConnectError(`message size is larger than configured readMaxBytes ${readMaxBytes}`, Code.ResourceExhausted));
      chunks.push(chunk);
    };
    const onEnd = () => {
      if (known && received < declared) return finish(new ConnectError(`protocol error: promised ${declared} bytes, received ${received}`, Code.InvalidArgument));
      finish();
    };
    const onClose = () => finish(new ConnectError("the client closed the connection before sending its whole request", Code.Canceled));
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("error", onClose);
    req.once("close", onClose);
  });
}

const FIELDS = ["content-type", "content-length", "content-encoding", "accept-encoding", "connect-timeout-ms"] as const;

/**
 * The request headers this handler reads, each null when absent; undefined when one of them is
 * repeated (node lists the values, connect-es would read them joined), which the fallback takes.
 */
function singleFields(headers: IncomingHttpHeaders): Record<(typeof FIELDS)[number], string | null> | undefined {
  const fields = {} as Record<(typeof FIELDS)[number], string | null>;
  for (const name of FIELDS) {
    const value = headers[name];
    if (value !== undefined && typeof value !== "string") return undefined;
    fields[name] = value ?? null;
  }
  return fields;
}
