// The one static file server of the project: `cargo xtask serve` runs it (`node xtask/static-server.mjs
// --port P`), and the browser tests and benchmarks import `serveRoot`. It serves the repository root on
// 127.0.0.1 (a secure context, as WebGPU needs): GET and HEAD, no directory listings, nothing outside the root.
// Every response carries the app's Content Security Policy as a header: a `<meta>` policy binds only its own
// document, while a header binds each worker to what its own script's response says.

import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.wasm': 'application/wasm', '.json': 'application/json', '.png': 'image/png',
  '.webmanifest': 'application/manifest+json', '.svg': 'image/svg+xml',
};
const typeOf = (path) => TYPES[extname(path)] ?? 'application/octet-stream';

/**
 * The app's policy (index.html states the same in a `<meta>` for servers that send no header): its own files
 * only, wasm compiled from them, pictures from blobs, and no connection to another site, workers included.
 */
export const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'none'";

/**
 * The headers of every response. The widget's scripts (`/www/`) may be loaded by pages of other sites, so they
 * can say there that they cannot run there (`tessera-error`) rather than fail unseen.
 */
function headersFor(path, type, length) {
  // Every file may change between two loads (a rebuild): the browser asks again each time.
  const headers = { 'Content-Security-Policy': CSP, 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' };
  if (type) Object.assign(headers, { 'Content-Type': type, 'Content-Length': length });
  if (path.startsWith('/www/')) headers['Access-Control-Allow-Origin'] = '*';
  return headers;
}

/**
 * Serves the repository root on `port` (0: any free one); resolves once it listens, with `server.url` set.
 * `server.hits` lists every path asked for, in order; `server.override(path, body)` serves `body` (bytes or a
 * string) at `path` instead of the file (a later app version, a broken model); with `{announce: n}` it
 * announces n bytes, sends `body` and drops the connection (a cut-off download); with `{policy}` it sends that
 * Content Security Policy instead of the app's (a page of another site); `server.restore(path)` serves the file
 * again.
 */
export function serveRoot({ port = 0 } = {}) {
  const overrides = new Map();
  const hits = [];
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    hits.push(path);
    if (!['GET', 'HEAD'].includes(req.method)) return res.writeHead(405, headersFor(path)).end();
    const headers = (type, length) => headersFor(path, type, length);
    if (overrides.has(path)) {
      const { body, announce, policy } = overrides.get(path);
      const own = headers(typeOf(path), announce ?? body.length);
      if (policy !== undefined) own['Content-Security-Policy'] = policy;
      res.writeHead(200, own);
      if (announce) res.write(body, () => res.socket.destroy());
      else res.end(req.method === 'HEAD' ? undefined : body);
      return undefined;
    }
    const file = normalize(join(ROOT, path.endsWith('/') ? `${path}index.html` : path));
    try {
      if (!file.startsWith(ROOT) || !(await stat(file)).isFile()) throw new Error('not found');
      const body = await readFile(file);
      res.writeHead(200, headers(typeOf(file), body.length));
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      res.writeHead(404, headersFor(path)).end();
    }
    return undefined;
  });
  server.hits = hits;
  server.override = (path, body, { announce, policy } = {}) => overrides.set(path, { body: Buffer.from(body), announce, policy });
  server.restore = (path) => overrides.delete(path);
  return new Promise((done, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', () => {
      server.url = `http://127.0.0.1:${server.address().port}`;
      done(server);
    });
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { port: { type: 'string', default: '8080' } } });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`--port ${values.port} is not a port number`);
    process.exit(2);
  }
  serveRoot({ port }).then(
    (server) => console.log(`Tessera is at ${server.url}/  (Ctrl-C to stop)`),
    (e) => { console.error(`port ${port}: ${e.message}`); process.exit(1); },
  );
}
