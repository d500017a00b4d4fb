// The app in real headless Chromium with real WebGPU (SwiftShader here), driven by playwright-core with
// Debian's /usr/bin/chromium. SwiftShader runs WebGPU on the CPU at milliseconds per kernel launch, so the
// WebGPU tests use the untrained micro model (32² images, 16 tokens); the CPU-fallback test runs the trained
// tiny model. Run by `cargo xtask test` after `cargo xtask build-web` (pkg/ must exist) and after the native
// CLI is built (target/debug/tessera, or $TESSERA_CLI).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { crc32 } from 'node:zlib';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchChromium, serverAndBrowser, ROOT } from './browser.mjs';
import { openPage, status, turns, ready, send, finalState, statusMatching, pngPixels } from './page.mjs';

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

/** A PNG that declares `w`×`h` RGBA pixels and holds none: only a header. */
function pngDeclaring(w, h) {
  const chunk = (kind, data) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(kind), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([length, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 6, 0, 0, 0], 8);
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk('IHDR', ihdr), chunk('IDAT', Buffer.from([0x78, 0x9c, 3, 0, 0, 0, 0, 1])), chunk('IEND', Buffer.alloc(0))]);
}
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
  const native = await pngPixels(page, pngBytes);
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
  // 16385² declared in a 100-byte file: refused from its header, by name, before any pixel is decoded.
  await page.getByTestId('upload').setInputFiles({ name: 'bomb.png', mimeType: 'image/png', buffer: pngDeclaring(16385, 16385) });
  assert.equal(await finalState(page, 4), 'error');
  assert.match(await turns(page).nth(4).textContent(), /16385×16385 pixels \(268\.5 M\); images may have at most 67\.1 M pixels/);
  // The check panel reads the header the same way.
  await page.locator('details.check-panel summary').click();
  await page.getByTestId('check-file').setInputFiles({ name: 'bomb.png', mimeType: 'image/png', buffer: pngDeclaring(16384, 16384) });
  await page.waitForFunction(() => document.querySelector('[data-testid="check-result"]').dataset.verdict === 'error');
  assert.match(await page.getByTestId('check-result').textContent(), /16384×16384 pixels/);
  // Animations and print colours are refused by name (tests/fixtures/images/README.md says how they were made).
  const fixture = (name) => readFileSync(join(ROOT, 'tests/fixtures/images', name));
  await page.getByTestId('upload').setInputFiles({ name: 'animated.gif', mimeType: 'image/gif', buffer: fixture('animated.gif') });
  assert.equal(await finalState(page, 5), 'error');
  assert.match(await turns(page).nth(5).textContent(), /the GIF is animated; use a still image/);
  await page.getByTestId('upload').setInputFiles({ name: 'cmyk.jpg', mimeType: 'image/jpeg', buffer: fixture('cmyk.jpg') });
  assert.equal(await finalState(page, 6), 'error');
  assert.match(await turns(page).nth(6).textContent(), /the JPEG is in CMYK, a print colour model/);
  // A file over 64 MB is refused from its size, before a byte of it is read, in both places.
  const bigDir = mkdtempSync(join(tmpdir(), 'tessera-big-'));
  const big = join(bigDir, 'big.png');
  writeFileSync(big, '');
  truncateSync(big, (64 << 20) + 1);
  await page.getByTestId('upload').setInputFiles(big);
  assert.match(await status(page).textContent(), /big\.png is over 67\.1 MB/);
  await page.getByTestId('check-file').setInputFiles(big);
  await page.waitForFunction(() => /big\.png is/.test(document.querySelector('[data-testid="check-result"]').textContent));
  assert.equal(await page.getByTestId('check-result').getAttribute('data-verdict'), 'error');
  rmSync(bigDir, { recursive: true, force: true });
  await send(page, 'make it red');
  assert.equal(await finalState(page, 7), 'done', 'the conversation goes on');
  assert.equal(await turns(page).count(), 8);
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

test('losing the GPU device mid-generation keeps the conversation; the engine comes back on a new device', async () => {
  const { page, context } = await open();
  await ready(page);
  await send(page, PROMPT);
  await page.waitForFunction(() => window.tessera.events.some((e) => e.type === 'token-row'));
  await page.evaluate(() => window.tessera.loseDevice());
  assert.equal(await finalState(page, 0), 'error');
  assert.match(await turns(page).nth(0).textContent(), /graphics device was lost/);
  await ready(page);
  assert.equal(await page.evaluate(() => document.body.dataset.backend), 'webgpu', 'the GPU is tried again');
  assert.match(await status(page).textContent(), /^Restarted after the graphics device was lost/);
  await send(page, 'a small blue star at the top left');
  assert.equal(await finalState(page, 1), 'done');
  assert.equal(await turns(page).count(), 2, 'the conversation is intact');
  await context.close();
});

test('a device lost after the Model panel replaced the model comes back with the replaced model', async () => {
  const { page, context } = await open();
  await ready(page);
  await page.locator('details.model-panel summary').click();
  await page.getByTestId('model-url').fill(TINY);
  await page.getByTestId('model-load').click();
  await statusMatching(page, 'ready', /New model loaded: tessera-tiny/);
  await page.evaluate(() => window.tessera.loseDevice());
  await statusMatching(page, 'ready', /^Restarted after the graphics device was lost.*tessera-tiny/);
  assert.equal(await page.evaluate(() => window.tessera.state.info.modelId), 'tessera-tiny');
  await context.close();
});

test('an engine that traps mid-turn fails that turn by name and restarts with the same model', async () => {
  const { page, context, problems } = await open();
  await ready(page);
  await send(page, PROMPT);
  assert.equal(await finalState(page, 0), 'done');
  const first = await canvasPixels(page, 0);
  await send(page, 'a small blue star at the top left');
  await page.waitForFunction(() => window.tessera.events.filter((e) => e.type === 'token-row').length > 4);
  await page.evaluate(() => window.tessera.trapEngine());
  assert.equal(await finalState(page, 1), 'error');
  assert.match(await turns(page).nth(1).textContent(), /The engine stopped \(.*\)\. The engine restarted with the same model/);
  await statusMatching(page, 'ready', /^Restarted after the engine stopped.*tessera-micro/);
  // The turn before is untouched, and the next Send works (the trapped instance would answer "already borrowed").
  assert.deepEqual(await canvasPixels(page, 0), first);
  await send(page, 'a big yellow heart at the bottom right');
  assert.equal(await finalState(page, 2), 'done');
  await turns(page).nth(1).getByTestId('regenerate').click();
  assert.equal(await finalState(page, 3), 'done');
  assert.equal(await turns(page).count(), 4);
  // The trap's own panic, and the step that was in flight when it came finding the state still held.
  assert.ok(problems.console.every((line) => /trapped on request|unreachable|RefCell already borrowed/.test(line)), problems.console.join('\n'));
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
