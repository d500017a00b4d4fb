// The app in real headless Chromium with real WebGPU (SwiftShader here), driven by playwright-core with
// Debian's /usr/bin/chromium. SwiftShader runs WebGPU on the CPU at milliseconds per kernel launch, so the
// WebGPU tests use the untrained micro model (32² images, 16 tokens); the CPU-fallback test runs the trained
// tiny model. Run by `cargo xtask test` after `cargo xtask build-web` (pkg/ must exist) and after the native
// CLI is built (target/debug/tessera, or $TESSERA_CLI).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchChromium, serverAndBrowser, ROOT } from './browser.mjs';
import { openPage, status, turns, ready, send, finalState } from './page.mjs';

const MICRO = 'models/tessera-micro/';
const TINY = 'models/tessera-tiny/';
const PROMPT = 'a big red circle in the center on a white background';

const env = serverAndBrowser();

/** A fresh context on the app with `query`. */
const open = (query = `?model=${MICRO}`, b = env.browser, options = {}) => openPage(b, env.server, `/${query}`, options);

/** Greedy settings, so the browser's image can be compared with the CLI's. */
async function greedy(page) {
  await page.locator('details.settings summary').click();
  await page.getByTestId('temperature').fill('0');
  await page.getByTestId('guidance').fill('3');
  await page.getByTestId('seed').fill('0');
}

const events = (page) => page.evaluate(() => window.tessera.events);
const grid = (page) => page.evaluate(() => window.tessera.state.info.grid);

function canvasPixels(page, index) {
  return page.evaluate((i) => {
    const c = document.querySelectorAll('[data-testid="canvas"]')[i];
    return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);
  }, index);
}

test('loads on WebGPU with no console errors, streams every row, and matches the native CLI', async () => {
  const { page, context, problems } = await open();
  await ready(page);
  assert.match(await status(page).textContent(), /WebGPU/);
  assert.equal(await page.evaluate(() => document.body.dataset.backend), 'webgpu');
  await greedy(page);
  await send(page, PROMPT);
  assert.equal(await finalState(page, 0), 'done');

  const ev = await events(page);
  const id = ev.find((e) => e.type === 'generate').id;
  const rows = ev.filter((e) => e.type === 'token-row' && e.id === id).map((e) => e.row);
  const doneAt = ev.findIndex((e) => e.type === 'done' && e.id === id);
  assert.deepEqual(rows, [...Array(await grid(page)).keys()], 'one token-row per token row, in order');
  assert.ok(ev.findLastIndex((e) => e.type === 'token-row') < doneAt, 'rows arrive before done');

  // The same checkpoint, seed and greedy sampling on the native CPU backend.
  const dir = mkdtempSync(join(tmpdir(), 'tessera-'));
  let pngBytes;
  try {
    const png = join(dir, 'native.png');
    execFileSync(process.env.TESSERA_CLI ?? join(ROOT, 'target/debug/tessera'), ['generate', PROMPT, '-o', png, '--model', join(ROOT, MICRO),
      '--temperature', '0', '--guidance', '3', '--seed', '0'], { stdio: 'pipe' });
    pngBytes = readFileSync(png);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const native = await page.evaluate(async (bytes) => {
    const bitmap = await createImageBitmap(new Blob([new Uint8Array(bytes)], { type: 'image/png' }));
    const c = new OffscreenCanvas(bitmap.width, bitmap.height);
    const ctx = c.getContext('2d');
    ctx.drawImage(bitmap, 0, 0);
    return Array.from(ctx.getImageData(0, 0, c.width, c.height).data);
  }, [...pngBytes]);
  const browserPixels = await canvasPixels(page, 0);
  const worst = browserPixels.reduce((m, v, i) => Math.max(m, Math.abs(v - native[i])), 0);
  assert.ok(worst <= 2, `browser (WebGPU) and native (CPU) images differ by ${worst} levels`);

  const href = await turns(page).nth(0).locator('a', { hasText: 'Download PNG' }).getAttribute('href');
  assert.match(href, /^blob:/);
  assert.deepEqual(problems.console, []);
  assert.deepEqual(problems.offOrigin, []);
  await context.close();
});

test('a follow-up edits the last image; stop keeps the partial image; sending while busy is refused', async () => {
  const { page, context, problems } = await open();
  await ready(page);
  await send(page, PROMPT);
  assert.equal(await finalState(page, 0), 'done');
  // With an overwhelming keep, the edit is the image it edits: the setting reaches the engine.
  await page.locator('details.settings summary').click();
  await page.getByTestId('keep').fill('1000');
  await send(page, 'make the circle blue');
  await page.waitForFunction(() => window.tessera.events.filter((e) => e.type === 'generate').length === 2);
  const edit = (await events(page)).filter((e) => e.type === 'generate')[1];
  assert.equal(edit.context, (await grid(page)) ** 2, 'the edit carries the previous image’s tokens');
  // Sending while that runs is refused and nothing interleaves.
  await send(page, 'a green star');
  assert.equal(await turns(page).count(), 2);
  assert.match(await status(page).textContent(), /still being drawn/);
  assert.equal(await page.getByTestId('prompt').inputValue(), 'a green star', 'the refused prompt stays in the box');
  assert.equal(await finalState(page, 1), 'done');
  assert.deepEqual(await canvasPixels(page, 1), await canvasPixels(page, 0), 'keep 1000 copies the source');

  // Stop after the first row: the turn keeps what was drawn.
  await page.getByTestId('prompt').fill('');
  await send(page, 'a big yellow heart at the bottom right');
  await page.waitForFunction(() => {
    const third = window.tessera.events.filter((e) => e.type === 'generate')[2];
    return third && window.tessera.events.some((e) => e.type === 'token-row' && e.id === third.id);
  });
  await page.getByTestId('stop').click();
  assert.equal(await finalState(page, 2), 'stopped');
  // The rows drawn before the stop keep their pixels; the rows below were never painted and still show the
  // canvas's fill (#0b0c10).
  const rows = Number(await turns(page).nth(2).getAttribute('data-rows'));
  const { imageSize } = await page.evaluate(() => window.tessera.state.info);
  assert.ok(rows >= 1 && rows < (await grid(page)), `stopped after ${rows} rows`);
  const drawnTo = (rows * imageSize) / (await grid(page)); // pixel rows
  const partial = await canvasPixels(page, 2);
  const isFill = (p) => partial[p] === 0x0b && partial[p + 1] === 0x0c && partial[p + 2] === 0x10;
  const pixelsOf = (y0, y1) => Array.from({ length: (y1 - y0) * imageSize }, (_, k) => (y0 * imageSize + k) * 4);
  assert.ok(pixelsOf(0, drawnTo).some((p) => !isFill(p)), 'the rows drawn before the stop are kept');
  assert.ok(pixelsOf(drawnTo, imageSize).every(isFill), 'no row after the stop was painted');
  assert.equal(await turns(page).count(), 3, 'the conversation is intact');
  assert.deepEqual(problems.console, []);
  await context.close();
});

const generates = async (page) => (await events(page)).filter((e) => e.type === 'generate');
const generated = (page, n) => page.waitForFunction((k) => window.tessera.events.filter((e) => e.type === 'generate').length === k, n);

test('each message is read back: a new description starts a new picture, an edit edits, either can be overridden', async () => {
  const { page, context, problems } = await open();
  await ready(page);
  await send(page, 'a yellow sign that says HELLO in the middle, blue background');
  assert.equal(await finalState(page, 0), 'done');
  assert.equal(await turns(page).nth(0).getByTestId('interpreted').textContent(),
    'interpreted as “a yellow sign that says HELLO in the middle on a blue background” · a new picture');
  // A whole new scene after the sign is a new picture, not an edit of the sign.
  await send(page, 'a big red circle in the center on a white background');
  assert.equal(await finalState(page, 1), 'done');
  assert.equal(await turns(page).nth(1).getAttribute('data-kind'), 'new');
  assert.equal((await generates(page))[1].context, 0, 'a new picture does not start from the sign');
  // A change to it is an edit of it, named the way the model was taught.
  await send(page, 'now make the circle blue');
  assert.equal(await finalState(page, 2), 'done');
  assert.equal(await turns(page).nth(2).getAttribute('data-kind'), 'edit');
  let edit = (await generates(page))[2];
  assert.deepEqual([edit.context, edit.prompt], [(await grid(page)) ** 2, 'make the red circle blue']);
  // Overridden: the same words as a new picture, then as typed; the turn remembers both.
  await turns(page).nth(2).getByTestId('switch-kind').click();
  await generated(page, 4);
  assert.equal(await finalState(page, 2), 'done');
  assert.equal(await turns(page).nth(2).getAttribute('data-kind'), 'new');
  assert.equal((await generates(page))[3].context, 0);
  await turns(page).nth(2).getByTestId('use-typed').click();
  await generated(page, 5);
  assert.equal(await finalState(page, 2), 'done');
  edit = (await generates(page))[4];
  assert.deepEqual([edit.prompt, edit.context], ['now make the circle blue', 0]);
  assert.match(await turns(page).nth(2).getByTestId('interpreted').textContent(), /^sent as typed · a new picture/);
  // Words the model does not know are named before anything is drawn.
  await send(page, 'a photo of a cat wearing a detective hat');
  assert.equal(await finalState(page, 3), 'waiting');
  assert.match(await turns(page).nth(3).textContent(), /does not know “cat”, “detective” or “hat” yet/);
  assert.equal((await generates(page)).length, 5, 'nothing was drawn');
  assert.equal(await page.getByTestId('send').isDisabled(), false, 'the conversation goes on');
  assert.deepEqual(problems.console, []);
  await context.close();
});

test('uploads: an image becomes a turn to edit; non-images and huge images are handled', async () => {
  const { page, context, problems } = await open();
  await ready(page);
  const red = await page.evaluate(async () => {
    const c = new OffscreenCanvas(300, 200);
    const ctx = c.getContext('2d');
    ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, 300, 200);
    ctx.fillStyle = '#dc2828'; ctx.beginPath(); ctx.arc(150, 100, 40, 0, 7); ctx.fill();
    return [...new Uint8Array(await (await c.convertToBlob({ type: 'image/png' })).arrayBuffer())];
  });
  await page.getByTestId('upload').setInputFiles({ name: 'circle.png', mimeType: 'image/png', buffer: Buffer.from(red) });
  assert.equal(await finalState(page, 0), 'done');
  await send(page, 'make the circle green');
  assert.equal(await finalState(page, 1), 'done');
  assert.equal((await events(page)).filter((e) => e.type === 'generate')[0].context, (await grid(page)) ** 2);

  // Not an image: refused before it reaches the engine, the conversation unchanged.
  await page.getByTestId('upload').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
  assert.match(await status(page).textContent(), /not an image/);
  // An image whose bytes are not an image: the engine names the problem on the turn.
  await page.getByTestId('upload').setInputFiles({ name: 'fake.png', mimeType: 'image/png', buffer: Buffer.from('not png') });
  assert.equal(await finalState(page, 2), 'error');
  assert.match(await turns(page).nth(2).textContent(), /PNG, JPEG/);
  // 8000×8000: decoded and downscaled in the worker, the tab survives.
  const huge = await page.evaluate(async () => {
    const c = new OffscreenCanvas(8000, 8000);
    const ctx = c.getContext('2d');
    ctx.fillStyle = '#2858dc'; ctx.fillRect(0, 0, 8000, 8000);
    return [...new Uint8Array(await (await c.convertToBlob({ type: 'image/png' })).arrayBuffer())];
  });
  await page.getByTestId('upload').setInputFiles({ name: 'huge.png', mimeType: 'image/png', buffer: Buffer.from(huge) });
  assert.equal(await finalState(page, 3), 'done');
  assert.equal(await turns(page).count(), 4);
  assert.deepEqual(problems.console, []);
  await context.close();
});

test('bad prompts are refused with a reason and lose nothing', async () => {
  const { page, context } = await open();
  await ready(page);
  await send(page, '');
  assert.match(await status(page).textContent(), /Type what you would like to see/);
  await page.getByTestId('prompt').fill('x'.repeat(100_000));
  await page.getByTestId('send').click();
  assert.match(await status(page).textContent(), /100000 characters/);
  assert.equal((await page.getByTestId('prompt').inputValue()).length, 100_000, 'the text is kept to shorten');
  assert.equal(await turns(page).count(), 0);
  // Outside the model's world: said kindly before anything is drawn, and drawn when the user goes ahead.
  await send(page, 'a photo of a cat');
  assert.equal(await finalState(page, 0), 'waiting');
  assert.match(await turns(page).nth(0).textContent(), /does not know “cat” yet.*It draws circles/);
  await turns(page).nth(0).getByTestId('draw-anyway').click();
  assert.equal(await finalState(page, 0), 'done');
  // The prompt policy: refused before any work, the rule and the reason on the turn, an evasion too.
  await send(page, 'a ｎ ｕ ｄ ｅ figure');
  assert.equal(await finalState(page, 1), 'error');
  assert.match(await turns(page).nth(1).textContent(), /refused by the prompt policy \(rule `sexual`.*Ask for a different picture/);
  // A setting out of range: the engine names it, the turn says so, and the next one works.
  await page.locator('details.settings summary').click();
  await page.getByTestId('top-p').fill('0');
  await send(page, PROMPT);
  assert.equal(await finalState(page, 2), 'error');
  assert.match(await turns(page).nth(2).textContent(), /top-p 0 is invalid/);
  await page.getByTestId('top-p').fill('0.9');
  await send(page, PROMPT);
  assert.equal(await finalState(page, 3), 'done');
  assert.equal(await turns(page).count(), 4);
  await context.close();
});

test('a missing or corrupt model is a named error, not a silent failure', async () => {
  const missing = await open('?model=models/nonexistent/');
  await missing.page.waitForFunction(() => document.querySelector('[data-testid="status"]').dataset.kind === 'error');
  assert.match(await status(missing.page).textContent(), /could not be downloaded/);
  await missing.context.close();

  // Flip bytes in the weights on the way in: the sha256 check refuses them.
  const corrupt = await open(undefined, env.browser, {
    before: (context) => context.route('**/model.safetensors', async (route) => {
      const response = await route.fetch();
      const body = Buffer.from(await response.body());
      body[body.length - 10] ^= 0xff;
      await route.fulfill({ response, body });
    }),
  });
  await corrupt.page.waitForFunction(() => document.querySelector('[data-testid="status"]').dataset.kind === 'error');
  assert.match(await status(corrupt.page).textContent(), /sha256.*download it again/s);
  await corrupt.context.close();
});

test('losing the GPU device mid-generation keeps the conversation and carries on on the CPU', async () => {
  const { page, context } = await open();
  await ready(page);
  await send(page, PROMPT);
  await page.waitForFunction(() => window.tessera.events.some((e) => e.type === 'token-row'));
  await page.evaluate(() => window.tessera.loseDevice());
  assert.equal(await finalState(page, 0), 'error');
  assert.match(await turns(page).nth(0).textContent(), /graphics device was lost/);
  await ready(page);
  assert.equal(await page.evaluate(() => document.body.dataset.backend), 'cpu');
  assert.match(await status(page).textContent(), /GPU device was lost/);
  await send(page, 'a small blue star at the top left');
  assert.equal(await finalState(page, 1), 'done');
  assert.equal(await turns(page).count(), 2, 'the conversation is intact');
  await context.close();
});

test('without WebGPU the app runs on the CPU and says so', async () => {
  const noGpu = await launchChromium({ webgpu: false });
  try {
    const { page, problems } = await open(`?model=${TINY}`, noGpu);
    await ready(page);
    assert.equal(await page.evaluate(() => document.body.dataset.backend), 'cpu');
    assert.match(await status(page).textContent(), /on the CPU/);
    await send(page, PROMPT);
    assert.equal(await finalState(page, 0), 'done');
    assert.deepEqual(problems.console, []);
  } finally {
    await noGpu.close();
  }
});
