import type { IncomingHttpHeaders } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import {
  compressionNegotiate,
  encodeEnvelope,
  envelopeCompress,
  invokeUnaryImplementation,
  validateReadWriteMaxBytes,
  type Compression,
} from "@connectrpc/connect/protocol";
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import type { HttpRequest, HttpResponse } from "./http-routes.ts";
import { nodeHeaders, pathOf, unaryRoutes, unaryCallContext, type UnaryFastPathOptions, type UnaryRoute } from "./unary-fast-path.ts";

/**
 * Unary gRPC calls, answered without connect-es' streaming pipeline.
 *
 * connect-es serves every gRPC call, unary or not, through a chain of about ten async generators
 * (split, decompress and parse envelopes; invoke; serialize, compress and join envelopes), each
 * one a promise-heavy down-levelled generator. On this project's 2-core benchmark machine that
 * made a bare gRPC echo cost the server 0.39 ms of CPU per call against 0.22 ms for the same echo
 * over Connect (whose unary path skips the chain), and it left ~30 KB of every call alive long
 * enough to be promoted into the old generation, so that a full mark-compact ran every second or
 * so. docs/benchmarks.md has the figures.
 *
 * This handler takes the common case, a unary call over HTTP/2 with a binary message that is not
 * compressed, and does the same work in straight-line code with connect-es' own parts: its
 * request adapter (headers, URL, the abort signal tied to the stream's reset code), handler
 * context, serialization with its size limits, interceptor chain (`invokeUnaryImplementation`),
 * compression negotiation and envelope compression, and trailer status encoding. Anything else
 * (gRPC-JSON, a compressed request, an unusable grpc-timeout, a streaming method, another
 * protocol) goes to `fallback`, connect-es' own adapter, untouched. test/platform/grpc-unary.test.ts
 * sends the same requests, well-formed and malformed, to both and compares the answers byte
 * for byte.
 */
export type GrpcUnaryOptions = UnaryFastPathOptions;

const GRPC_PROTO = new Set(["application/grpc", "application/grpc+proto"]);

export function createGrpcUnaryHandler(options: GrpcUnaryOptions): (req: HttpRequest, res: HttpResponse) => void {
  const { interceptors, readMaxBytes, contextValues, answerDecodingError, answerRejected, logger, fallback } = options;
  const acceptCompression = options.acceptCompression ?? [compressionGzip, compressionBrotli];
  const limits = validateReadWriteMaxBytes(readMaxBytes, undefined, undefined);
  const routes = unaryRoutes(options.services, limits);

  return (req, res) => {
    const route = req.httpVersionMajor === 2 && req.method === "POST" ? routes.get(pathOf(req.url)) : undefined;
    const headers = req.headers;
    const timeout = route && GRPC_PROTO.has(String(headers["content-type"])) ? parseTimeout(single(headers, "grpc-timeout"), Number.MAX_SAFE_INTEGER) : undefined;
    const compression = timeout && !timeout.error ? compressionNegotiate(acceptCompression, single(headers, "grpc-encoding"), single(headers, "grpc-accept-encoding"), "grpc-accept-encoding") : undefined;
    if (!route || !timeout || !compression || compression.error || compression.request) {
      fallback(req, res);
      return;
    }
    const h2res = res as Http2ServerResponse;
    serve(route, timeout.timeoutMs, compression.response, req as Http2ServerRequest, h2res).catch((error: unknown) => {
      logger.error({ err: error, procedure: req.url }, "gRPC call failed while answering");
      h2res.stream.destroy();
    });
  };

  async function serve(route: UnaryRoute, timeoutMs: number | undefined, responseCompression: Compression | null, req: Http2ServerRequest, res: Http2ServerResponse): Promise<void> {
    const context = unaryCallContext(
      route,
      { protocolName: "grpc", timeoutMs, responseHeader: { "content-type": "application/grpc+proto" }, responseTrailer: { "grpc-status": "0" } },
      req,
      res,
      contextValues(req),
    );
    if (responseCompression) context.responseHeader.set("grpc-encoding", responseCompression.name);
    let body: Uint8Array | undefined;
    let failure: unknown;
    try {
      const input = await readInput(route, req);
      const output = await invokeUnaryImplementation(route.spec, context, input, interceptors);
      const envelope = await envelopeCompress({ flags: 0, data: route.serialization.getO(true).serialize(output) }, responseCompression, limits.compressMinBytes);
      body = encodeEnvelope(envelope.flags, envelope.data);
    } catch (error) {
      failure = error;
    }
    context.abort(failure);
    let header = context.responseHeader;
    let trailer = context.responseTrailer;
    if (failure !== undefined) {
      body = undefined;
      try {
        setTrailerStatus(trailer, failure instanceof ConnectError ? failure : new ConnectError("internal error", Code.Internal, undefined, undefined, failure));
      } catch (error) {
        header = new Headers({ "content-type": String(req.headers["content-type"]) });
        trailer = new Headers();
        setTrailerStatus(trailer, answerRejected(error, `/${route.spec.method.parent.typeName}/${route.spec.method.name}`));
      }
    }
    if (res.stream.closed || res.stream.destroyed) return;
    res.writeHead(200, nodeHeaders(header));
    res.addTrailers(nodeHeaders(trailer));
    if (body) res.end(body);
    else res.end();
  }

  /**
   * The request's one message, read and checked in the order connect-es does it (the first
   * envelope's size, completeness, compression flag and parse; then whatever follows it), with
   * its errors. Reading stops as soon as the body is known to be wrong, so a caller can make
   * this buffer at most two envelopes of `readMaxBytes`.
   */
  async function readInput(route: UnaryRoute, req: Http2ServerRequest): Promise<MessageShape<DescMessage>> {
    const parse = (data: Uint8Array) => {
      try {
        return route.serialization.getI(true).parse(data);
      } catch (error) {
        throw error instanceof ConnectError ? answerDecodingError(error) : error;
      }
    };
    const frames = await readFrames(req, readMaxBytes);
    const [first, second] = frames.envelopes;
    if (!first) throw answerDecodingError(frames.incomplete ? incompleteEnvelope() : new ConnectError("protocol error: missing input message for unary method", Code.Unimplemented));
    const input = parse(uncompressed(first));
    if (second) parse(uncompressed(second));
    if (frames.incomplete) throw incompleteEnvelope();
    if (second) throw answerDecodingError(new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented));
    return input;

    function uncompressed(envelope: { flags: number; data: Uint8Array }): Uint8Array {
      if ((envelope.flags & 0b1) === 1) throw answerDecodingError(new ConnectError("received compressed envelope, but do not know how to decompress", Code.Internal));
      return envelope.data;
    }
  }
}

const incompleteEnvelope = () => new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);

/**
 * Up to two envelopes from the request body (a unary call with a second one is refused anyway),
 * and whether bytes were left over that do not make a whole envelope. An envelope declaring
 * more than `readMaxBytes` is refused as soon as its header arrives.
 */
function readFrames(req: Http2ServerRequest, readMaxBytes: number): Promise<{ envelopes: { flags: number; data: Uint8Array }[]; incomplete: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    /** Where the envelope being read starts, and how long its data is once its header is in (-1 before). */
    let start = 0;
    let length = -1;
    const envelopes: { flags: number; data: Uint8Array }[] = [];
    const buffered = () => (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received));
    const finish = (error?: Error) => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("close", onClose);
      if (error) reject(error);
      else resolve({ envelopes, incomplete: received > start });
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.byteLength;
      for (;;) {
        if (length < 0 && received - start >= 5) {
          length = buffered().readUInt32BE(start + 1);
          if (length > readMaxBytes) return finish(new ConnectError(`message size ${length} is larger than configured readMaxBytes ${readMaxBytes}`, Code.ResourceExhausted));
        }
        if (length < 0 || received - start < 5 + length) return;
        const all = buffered();
        envelopes.push({ flags: all[start]!, data: all.subarray(start + 5, start + 5 + length) });
        start += 5 + length;
        length = -1;
        if (envelopes.length === 2) return finish();
      }
    };
    const onEnd = () => finish();
    const onClose = () => finish(new ConnectError("the client closed the stream before sending its whole request", Code.Canceled));
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("close", onClose);
  });
}

/** A header sent once, or null (absent, or repeated, which connect-es would join and refuse). */
function single(headers: IncomingHttpHeaders, name: string): string | null {
  const value = headers[name];
  return typeof value === "string" ? value : null;
}
