// Headless Chromium for the browser tests and benchmarks (Debian's /usr/bin/chromium, never a downloaded
// browser), and the per-file setup of a test: the project's static server and a WebGPU browser.

import { before, after } from 'node:test';
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
