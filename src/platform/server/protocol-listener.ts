import { createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import { Duplex } from "node:stream";

/** Every HTTP/2 connection without TLS begins with this preface (RFC 9113 §3.4). */
const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export interface ProtocolTargets {
  http1: { emit(event: "connection", socket: Socket): boolean };
  http2: { emit(event: "connection", socket: Duplex): boolean };
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
      if (isHttp2) {
        targets.http2.emit("connection", replayingStream(socket, received));
      } else {
        // The HTTP/1 parser reads through the socket's stream, so the bytes can simply be put back.
        socket.unshift(received);
        targets.http1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
  });
}

/**
 * The HTTP/2 session reads straight from a socket's native handle, past anything already read
 * into JavaScript; so it gets a stream that replays the sniffed bytes, then relays the socket.
 */
function replayingStream(socket: Socket, head: Buffer): Duplex {
  const stream = new Duplex({
    read: () => void socket.resume(),
    write: (chunk: Buffer, encoding, done) => void socket.write(chunk, encoding, done),
    final: (done) => {
      socket.end();
      done();
    },
    destroy: (error, done) => {
      socket.destroy(error ?? undefined);
      done(error);
    },
  });
  for (const name of ["remoteAddress", "remotePort", "remoteFamily", "localAddress", "localPort"] as const) {
    Object.defineProperty(stream, name, { value: socket[name], enumerable: true });
  }
  stream.push(head);
  socket.on("data", (chunk: Buffer) => {
    if (!stream.push(chunk)) socket.pause();
  });
  socket.on("end", () => stream.push(null));
  socket.on("close", () => stream.destroy());
  return stream;
}
