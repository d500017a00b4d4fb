// Streaming figures of a model in headless Chromium: model load, time to first row (or, for a codec that is
// not row-causal, to the first preview), tokens/s, with a screenshot taken mid-stream. A benchmark, not a test: it prints one JSON object.
//
//   node bench/stream-bench.mjs [--model models/tessera-shapes/] [--backend webgpu|cpu] [--rows N]
//                                       [--screenshot out.png]
//
// --rows stops the generation after N token rows (a software GPU needs minutes for a whole image);
// tokens/s is measured from the first row to the last one seen, so start-up is reported separately.

import { parseArgs } from 'node:util';
import { launchChromium, serveRoot } from '../tests/browser/browser.mjs';

const { values: opt } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/tessera-shapes/' },
    backend: { type: 'string', default: 'webgpu' },
    rows: { type: 'string', default: '0' },
    screenshot: { type: 'string' },
    prompt: { type: 'string', default: 'a small blue star in the top left corner and a big yellow heart at the bottom right, black background' },
  },
});
const server = await serveRoot();
const browser = await launchChromium({ webgpu: opt.backend === 'webgpu' });
try {
  const page = await browser.newPage({ viewport: { width: 720, height: 900 } });
  const t0 = Date.now();
  await page.goto(`${server.url}/?model=${opt.model}${opt.backend === 'cpu' ? '&backend=cpu' : ''}`);
  await page.waitForFunction(() => ['ready', 'error'].includes(document.querySelector('[data-testid="status"]').dataset.kind), null, { timeout: 600_000 });
  const loadMs = Date.now() - t0;
  const status = await page.getByTestId('status').textContent();
  await page.getByTestId('prompt').fill(opt.prompt);
  await page.getByTestId('prompt').press('Enter');
  const rowsWanted = Number(opt.rows);
  await page.waitForFunction((n) => {
    const ev = window.tessera.events;
    return ev.some((e) => e.type === 'done' || e.type === 'error') || (n > 0 && ev.filter((e) => e.type === 'token-row').length >= n);
  }, rowsWanted, { timeout: 0, polling: 200 });
  if (opt.screenshot) await page.screenshot({ path: opt.screenshot });
  await page.getByTestId('stop').click().catch(() => {});
  const ev = await page.evaluate(() => window.tessera.events);
  const rows = ev.filter((e) => e.type === 'token-row');
  const first = rows[0];
  const last = rows.at(-1);
  const perRow = rows.length > 1 ? (last.tokens - first.tokens) / ((last.ms - first.ms) / 1000) : null;
  console.log(JSON.stringify({
    model: opt.model, backend: await page.evaluate(() => document.body.dataset.backend), status,
    load_ms: loadMs, first_row_ms: first?.ms ?? null, rows: rows.length, tokens: last?.tokens ?? 0,
    first_preview_ms: ev.find((e) => e.type === 'preview')?.ms ?? null, previews: ev.filter((e) => e.type === 'preview').length,
    tokens_per_s: perRow, overall_tokens_per_s: last ? last.tokens / (last.ms / 1000) : null,
    chromium: browser.version(),
  }));
} finally {
  await browser.close();
  server.close();
}
