import { createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";

/** Every HTTP/2 connection without TLS begins with this preface (RFC 9113 §3.4). */
const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export interface ProtocolTargets {
  http1: { emit(event: "connection", socket: Socket): boolean };
  http2: { emit(event: "connection", socket: Socket): boolean };
  /** How long a connection may stay silent before its first bytes arrive. */
  firstByteTimeoutMs: number;
}

/**
 * One cleartext port for HTTP/1.1 and HTTP/2 with prior knowledge (h2c): Node's HTTP/2 server
 * only falls back to HTTP/1.1 through TLS ALPN, so this reads the first bytes of each connection
 * and hands the socket, bytes put back, to the server that speaks its protocol.
 */
export function createProtocolListener(targets: ProtocolTargets): NetServer {
  return createNetServer({ noDelay: true }, (socket) => {
    let received = Buffer.alloc(0);
    socket.setTimeout(targets.firstByteTimeoutMs, () => socket.destroy());
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      const compared = Math.min(received.length, HTTP2_PREFACE.length);
      const isHttp2 = received.subarray(0, compared).equals(HTTP2_PREFACE.subarray(0, compared));
      if (isHttp2 && received.length < HTTP2_PREFACE.length) return;
      socket.off("data", onData);
      socket.pause();
      socket.setTimeout(0);
      socket.unshift(received);
      (isHttp2 ? targets.http2 : targets.http1).emit("connection", socket);
      socket.resume();
    };
    socket.on("data", onData);
    socket.on("error", () => socket.destroy());
  });
}
