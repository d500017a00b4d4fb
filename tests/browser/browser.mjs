// Headless Chromium for the browser tests and benchmarks (Debian's /usr/bin/chromium, never a downloaded
// browser), and the per-file setup of a test: the project's static server and a WebGPU browser.

import { before, after } from 'node:test';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { serveRoot, ROOT } from '../../xtask/static-server.mjs';

export { serveRoot, ROOT };

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

/** The C2PA reference tool's report on PNG `bytes` (`$C2PATOOL`, which `cargo xtask test` installs), as text. */
export function c2patool(bytes) {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-c2pa-'));
  try {
    const file = join(dir, 'image.png');
    writeFileSync(file, bytes);
    const run = spawnSync(process.env.C2PATOOL ?? 'c2patool', [file], { encoding: 'utf8' });
    if (run.error) throw new Error(`c2patool: ${run.error.message} (\`cargo xtask test\` installs it)`);
    return run.stdout + run.stderr;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** PNG `bytes` without its chunks of type `kind` (e.g. `caBX`, the C2PA manifest). */
export function withoutChunks(bytes, kind) {
  const parts = [bytes.subarray(0, 8)];
  for (let at = 8; at + 12 <= bytes.length;) {
    const length = new DataView(bytes.buffer, bytes.byteOffset + at).getUint32(0);
    const end = at + 12 + length;
    if (new TextDecoder('latin1').decode(bytes.subarray(at + 4, at + 8)) !== kind) parts.push(bytes.subarray(at, end));
    at = end;
  }
  return Buffer.concat(parts);
}

/** Asserts that the C2PA reference tool reads `bytes` as a valid, untrusted manifest of a trained model's creation. */
export function assertValidUntrusted(assert, bytes, what) {
  const report = c2patool(bytes);
  assert.match(report, /"validation_state": "Valid"/, `${what}: ${report}`);
  assert.match(report, /signingCredential\.untrusted/, `${what}: untrusted, a local key`);
  assert.match(report, /"digitalSourceType": "http:\/\/cv\.iptc\.org\/newscodes\/digitalsourcetype\/trainedAlgorithmicMedia"/, what);
  assert.match(report, /invalid\.tessera\.generation/, `${what}: the generation assertion`);
}
