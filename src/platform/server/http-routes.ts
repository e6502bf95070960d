import type { ConnectError } from "@connectrpc/connect";
import type { connectNodeAdapter } from "@connectrpc/connect-node";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";

type NodeHandler = ReturnType<typeof connectNodeAdapter>;
/** A request or response of either Node HTTP server (HTTP/1.1 or HTTP/2), as connect-node sees them. */
export type HttpRequest = Parameters<NodeHandler>[0];
export type HttpResponse = Parameters<NodeHandler>[1];

export function respond(res: HttpResponse, status: number, headers: Record<string, string>, body?: string): void {
  res.statusCode = status;
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  if (body === undefined) res.end();
  else res.end(body);
}

/** A plain HTTP endpoint served beside the RPCs (health, JWKS, metrics). */
export type HttpRoute = (req: HttpRequest, res: HttpResponse) => void | Promise<void>;

export function sendJson(res: HttpResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = JSON.stringify(body);
  respond(
    res,
    status,
    { "content-type": "application/json; charset=utf-8", "content-length": String(Buffer.byteLength(payload)), ...headers },
    payload,
  );
}

/** An error as a Connect unary call answers it: the HTTP status of its code and its JSON body. */
export function sendConnectError(res: HttpResponse, error: ConnectError): void {
  const body = errorToJsonBytes(error, {});
  res.writeHead(codeToHttpStatus(error.code), { "content-type": "application/json", "content-length": String(body.byteLength) });
  res.end(body);
}

/** Any path that is neither an RPC nor a known endpoint. */
export function sendNotFound(req: HttpRequest, res: HttpResponse): void {
  sendJson(res, 404, { code: "not_found", message: `Nothing is served at ${new URL(req.url ?? "/", "http://x").pathname}.` });
}
