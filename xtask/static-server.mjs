// The one static file server of the project: `cargo xtask serve` runs it (`node xtask/static-server.mjs
// --port P`), and the browser tests and benchmarks import `serveRoot`. It serves the repository root on
// 127.0.0.1 (a secure context, as WebGPU needs): GET and HEAD, no directory listings, nothing outside the root.

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
 * Serves the repository root on `port` (0: any free one); resolves once it listens, with `server.url` set.
 * `server.hits` lists every path asked for, in order; `server.override(path, body)` serves `body` (bytes or a
 * string) at `path` instead of the file (a later app version, a broken model); with `{announce: n}` it
 * announces n bytes, sends `body` and drops the connection (a cut-off download); `server.restore(path)` serves
 * the file again.
 */
export function serveRoot({ port = 0 } = {}) {
  const overrides = new Map();
  const hits = [];
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    hits.push(path);
    if (!['GET', 'HEAD'].includes(req.method)) return res.writeHead(405).end();
    // Every file may change between two loads (a rebuild): the browser asks again each time.
    const headers = (type, length) => ({ 'Content-Type': type, 'Content-Length': length, 'Cache-Control': 'no-cache' });
    if (overrides.has(path)) {
      const { body, announce } = overrides.get(path);
      res.writeHead(200, headers(typeOf(path), announce ?? body.length));
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
      res.writeHead(404).end();
    }
    return undefined;
  });
  server.hits = hits;
  server.override = (path, body, { announce } = {}) => overrides.set(path, { body: Buffer.from(body), announce });
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
