// What signing Content Credentials costs in the browser: the app (tessera-tiny on the CPU backend) draws N
// pictures; each turn's stats give the time from the engine's PNG to the signed one (the first includes loading
// the credentials module and making this browser's key). Also the download the module adds: its files' bytes,
// raw and gzip-compressed. Prints one JSON object.
//
//   node bench/sign-bench.mjs [N]

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { launchChromium, serveRoot, ROOT } from '../tests/browser/browser.mjs';
import { ready, send, finalState } from '../tests/browser/page.mjs';

const n = Number(process.argv[2] ?? 8);
const server = await serveRoot();
const browser = await launchChromium({ webgpu: false });
const page = await browser.newPage();
await page.goto(`${server.url}/index.html?backend=cpu&model=models/tessera-tiny/`);
await ready(page);
const ms = [];
for (let i = 0; i < n; i++) {
  await send(page, i % 2 ? 'a small blue star in the top left corner' : 'a big red circle in the center on a white background');
  if ((await finalState(page, i)) !== 'done') throw new Error(`turn ${i} did not finish`);
  const meta = await page.getByTestId('turn').nth(i).locator('.meta').textContent();
  const signed = /signed in (\d+) ms/.exec(meta);
  if (!signed) throw new Error(`turn ${i}: ${meta}`);
  ms.push(Number(signed[1]));
}
await browser.close();
server.close();
const later = ms.slice(1).sort((a, b) => a - b);
const files = ['pkg/credentials/tessera_credentials_bg.wasm', 'pkg/credentials/tessera_credentials.js', 'www/credentials.js'];
const bytes = files.map((f) => readFileSync(join(ROOT, f)));
console.log(JSON.stringify({
  signMs: { first: ms[0], medianAfter: later[Math.floor(later.length / 2)], maxAfter: later.at(-1), all: ms },
  download: { files, bytes: bytes.reduce((a, b) => a + b.length, 0), gzipBytes: bytes.reduce((a, b) => a + gzipSync(b, { level: 9 }).length, 0) },
}));
