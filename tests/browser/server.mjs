// A static file server for the repository root on 127.0.0.1 (a secure context, as WebGPU needs), and the
// browser launch, for the browser tests and benchmarks.

import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, after } from 'node:test';
import { chromium } from 'playwright-core';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.wasm': 'application/wasm', '.json': 'application/json', '.png': 'image/png',
  '.webmanifest': 'application/manifest+json', '.svg': 'image/svg+xml',
};

/**
 * Serves the repository root. `server.hits` lists every path asked for, in order; `server.override(path, body)`
 * serves `body` (bytes or a string) at `path` instead of the file (a later app version, a broken model);
 * with `{announce: n}` it announces n bytes, sends `body` and drops the connection (a cut-off download).
 */
export function serveRoot() {
  const overrides = new Map();
  const hits = [];
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    hits.push(path);
    if (overrides.has(path)) {
      const { body, announce } = overrides.get(path);
      res.writeHead(200, { 'Content-Type': TYPES[extname(path)] ?? 'application/octet-stream', 'Content-Length': announce ?? body.length });
      if (announce) res.write(body, () => res.socket.destroy());
      else res.end(body);
      return;
    }
    const file = normalize(join(ROOT, path.endsWith('/') ? `${path}index.html` : path));
    try {
      if (!file.startsWith(ROOT) || !(await stat(file)).isFile()) throw new Error('not found');
      const body = await readFile(file);
      res.writeHead(200, { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream', 'Content-Length': body.length });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  server.hits = hits;
  server.override = (path, body, { announce } = {}) => overrides.set(path, { body: Buffer.from(body), announce });
  return new Promise((done) => server.listen(0, '127.0.0.1', () => {
    server.url = `http://127.0.0.1:${server.address().port}`;
    done(server);
  }));
}

/** Flags for headless Chromium here; `--enable-unsafe-webgpu` is the one that gives SwiftShader's adapter. */
const CHROMIUM_ARGS = ['--no-sandbox', '--no-first-run', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--disable-quic'];

/** Debian's /usr/bin/chromium (never a downloaded browser), with or without WebGPU. */
export function launchChromium({ webgpu }) {
  const args = webgpu ? [...CHROMIUM_ARGS, '--enable-unsafe-webgpu'] : CHROMIUM_ARGS;
  return chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args });
}

/**
 * For a test file: the file server and a WebGPU Chromium, started before its tests and closed after them.
 * Returns an object whose `server` and `browser` are set once they have started.
 */
export function serverAndBrowser() {
  const env = {};
  before(async () => {
    env.server = await serveRoot();
    env.browser = await launchChromium({ webgpu: true });
  });
  after(async () => {
    await env.browser?.close();
    env.server?.close();
  });
  return env;
}
