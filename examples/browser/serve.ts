// Bundles the browser example with esbuild and serves it.
// Run: node examples/browser/serve.ts   (then open http://localhost:5173/?gatehouse=http://localhost:8080,
// with GATEHOUSE_CORS_ORIGINS=http://localhost:5173 set on Gatehouse)
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const HERE = dirname(fileURLToPath(import.meta.url));

/** The page's script, bundled for browsers (ES2022, minified, with a source map inline). */
export async function bundle(): Promise<string> {
  const result = await build({
    entryPoints: [join(HERE, "app.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    sourcemap: "inline",
    write: false,
    logLevel: "warning",
  });
  return result.outputFiles[0]!.text;
}

/** Serves index.html and the bundle; resolves once listening. */
export async function serveExample(port = 0, host = "127.0.0.1"): Promise<{ server: Server; url: string }> {
  const [html, script] = await Promise.all([readFile(join(HERE, "index.html"), "utf8"), bundle()]);
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const headers = { "cache-control": "no-store", "x-content-type-options": "nosniff" };
    if (path === "/" || path === "/index.html") {
      res.writeHead(200, { ...headers, "content-type": "text/html; charset=utf-8" });
      res.end(html);
    } else if (path === "/app.js") {
      res.writeHead(200, { ...headers, "content-type": "text/javascript; charset=utf-8" });
      res.end(script);
    } else {
      res.writeHead(404, headers);
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  return { server, url: `http://${host}:${(server.address() as AddressInfo).port}` };
}

if (import.meta.main) {
  const { url } = await serveExample(Number(process.env.PORT ?? 5173), process.env.HOST ?? "localhost");
  console.log(`Browser example at ${url}/?gatehouse=${process.env.GATEHOUSE_URL ?? "http://localhost:8080"}`);
}
