import { createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";

/** Every HTTP/2 connection without TLS begins with this preface (RFC 9113 §3.4). */
const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export interface ProtocolTargets {
  http1: { emit(event: "connection", socket: Socket): boolean };
  http2: { emit(event: "connection", socket: Socket): boolean };
  /** How long a connection may take to send the bytes that tell its protocol, however it trickles them. */
  firstBytesTimeoutMs: number;
}

/**
 * One cleartext port for HTTP/1.1 and HTTP/2 with prior knowledge (h2c): Node's HTTP/2 server
 * only falls back to HTTP/1.1 through TLS ALPN, so this reads the first bytes of each connection
 * and hands it to the server that speaks its protocol.
 */
export function createProtocolListener(targets: ProtocolTargets): NetServer {
  return createNetServer({ noDelay: true }, (socket) => {
    let received = Buffer.alloc(0);
    // An absolute deadline, not an idle timeout: a client dripping one byte at a time must not
    // hold the connection open. Once handed over, the protocol's own server times it.
    const sniffing = setTimeout(() => socket.destroy(), targets.firstBytesTimeoutMs);
    sniffing.unref();
    socket.once("close", () => clearTimeout(sniffing));
    socket.on("error", () => socket.destroy());
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      const compared = Math.min(received.length, HTTP2_PREFACE.length);
      const isHttp2 = received.subarray(0, compared).equals(HTTP2_PREFACE.subarray(0, compared));
      if (isHttp2 && received.length < HTTP2_PREFACE.length) return;
      socket.off("data", onData);
      socket.pause();
      clearTimeout(sniffing);
      // Both servers take the socket itself with the sniffed bytes put back: the HTTP/1 parser reads
      // through the socket's stream, and an HTTP/2 session first feeds itself what the stream
      // already holds, then reads the native handle directly (no JavaScript stream in between).
      socket.unshift(received);
      if (isHttp2) {
        targets.http2.emit("connection", socket);
      } else {
        targets.http1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
  });
}
