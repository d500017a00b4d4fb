// The installed app: offline after one visit (service worker + model cache), updates announced and not
// forced, another model loaded only after it checks out, and no request leaving the origin. Real headless
// Chromium with WebGPU (SwiftShader); the untrained micro model keeps generation fast.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { serverAndBrowser, ROOT } from './browser.mjs';
import { openPage, status, turns, ready, statusMatching, send, finalState } from './page.mjs';

const MICRO = '/models/tessera-micro/';
const PROMPT = 'a big red circle in the center on a white background';

const env = serverAndBrowser();

const downloads = (path) => env.server.hits.filter((p) => p === path).length;

/** The app on the micro model, loaded and controlled by its service worker (which also cached the shell). */
async function installed() {
  const opened = await openPage(env.browser, env.server, `/?model=${MICRO}`);
  await ready(opened.page);
  await opened.page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 120_000 });
  await opened.page.evaluate(() => navigator.serviceWorker.ready);
  return opened;
}

test('after one visit the app loads and generates offline', async () => {
  const before = downloads(`${MICRO}model.safetensors`);
  const { page, context, problems } = await installed();
  assert.equal(await page.evaluate(() => caches.has('tessera-models-v1')), true);

  await context.setOffline(true);
  await page.reload();
  await ready(page);
  assert.match(await page.getByTestId('model-info').textContent(), /from this browser’s cache/);
  await send(page, PROMPT);
  assert.equal(await finalState(page, 0), 'done');
  assert.equal(downloads(`${MICRO}model.safetensors`) - before, 1, 'the weights were downloaded once');
  assert.deepEqual(problems.offOrigin, []);
  await context.close();
});

test('a new version is announced, not forced; after Reload it runs with the cached model', async () => {
  const { page, context, problems } = await installed();
  const weights = downloads(`${MICRO}model.safetensors`);
  const oldVersion = await page.getByTestId('version').textContent();
  assert.match(oldVersion, /^v\d+\.\d+\.\d+ · build [0-9a-f]{16}$/);

  // The server now has a new build; the browser notices it at the next update check.
  const stamp = readFileSync(join(ROOT, 'pkg/build.js'), 'utf8');
  env.server.override('/pkg/build.js', stamp.replace(/version: '[^']*'/, "version: '99.0.0'"));
  try {
    await page.evaluate(() => navigator.serviceWorker.getRegistration().then((r) => r.update()));
    await page.getByTestId('update').waitFor({ state: 'visible', timeout: 120_000 });

    // Not forced: a plain reload still runs the old version, and announces the new one again.
    await page.reload();
    await ready(page);
    assert.equal(await page.getByTestId('version').textContent(), oldVersion);
    await page.getByTestId('update').waitFor({ state: 'visible', timeout: 120_000 });

    // Pressing it switches: the page reloads on the new shell, and the model comes from the cache.
    await Promise.all([page.waitForEvent('load', { timeout: 120_000 }), page.getByTestId('update').click()]);
    await ready(page);
    assert.match(await page.getByTestId('version').textContent(), /^v99\.0\.0 /);
    assert.equal(await page.getByTestId('update').isHidden(), true);
    assert.equal(downloads(`${MICRO}model.safetensors`), weights, 'the update did not download the model again');
    assert.match(await page.getByTestId('model-info').textContent(), /from this browser’s cache/);
    const shells = await page.evaluate(async () => (await caches.keys()).filter((k) => k.startsWith('tessera-shell-')));
    assert.equal(shells.length, 1, `old shell caches are deleted on activation: ${shells}`);
    assert.deepEqual(problems.offOrigin, []);
  } finally {
    env.server.override('/pkg/build.js', stamp);
    await context.close();
  }
});

/** Loads the folder `path` through the Model panel and returns the status text once it settles. */
async function loadFromUrl(page, path) {
  await page.getByTestId('model-url').fill(path);
  await page.getByTestId('model-load').click();
  await page.waitForFunction(() => !document.querySelector('[data-testid="model-load"]').disabled, null, { timeout: 120_000 });
  await page.waitForFunction(() => ['ready', 'warn'].includes(document.querySelector('[data-testid="status"]').dataset.kind));
  return status(page).textContent();
}

test('another model replaces the current one only when it checks out', async () => {
  const { page, context, problems } = await installed();
  await page.locator('details.model-panel summary').click();
  const micro = (name) => readFileSync(join(ROOT, `models/tessera-micro/${name}`));
  const tiny = (name) => readFileSync(join(ROOT, `models/tessera-tiny/${name}`));
  const sha = (bytes) => `${createHash('sha256').update(bytes).digest('hex')}  model.safetensors\n`;
  const folder = (name, { config = micro('config.json'), weights = micro('model.safetensors'), sha256 = micro('model.sha256') }) => {
    env.server.override(`/bad/${name}/config.json`, config);
    env.server.override(`/bad/${name}/model.safetensors`, weights);
    env.server.override(`/bad/${name}/model.sha256`, sha256);
    return `/bad/${name}/`;
  };
  const garbage = Buffer.from('this is not a safetensors file at all');
  const flipped = Buffer.from(micro('model.safetensors'));
  flipped[flipped.length - 3] ^= 0x40;
  const cases = [
    [folder('corrupt', { weights: garbage, sha256: sha(garbage) }), /model\.safetensors|header/],
    [folder('sha', { weights: flipped }), /sha256/],
    [folder('shapes', { weights: tiny('model.safetensors'), sha256: tiny('model.sha256') }), /tensor `[^`]+` has shape \[[\d, ]+\], the architecture needs \[[\d, ]+\]/],
    [folder('cut', {}), /stopped after \d+ of \d+ bytes/],
    ['/models/nonexistent/', /HTTP 404/],
  ];
  const full = micro('model.safetensors');
  env.server.override('/bad/cut/model.safetensors', full.subarray(0, full.length >> 1), { announce: full.length });
  for (const [path, reason] of cases) {
    const text = await loadFromUrl(page, path);
    assert.match(text, /That model was not loaded/, path);
    assert.match(text, reason, path);
    assert.match(text, /The current model \(tessera-micro[^)]*\) stays loaded/, path);
  }
  // Files too: the three files of a folder, checked the same way.
  await page.getByTestId('model-files').setInputFiles([
    { name: 'config.json', mimeType: 'application/json', buffer: micro('config.json') },
    { name: 'model.safetensors', mimeType: 'application/octet-stream', buffer: flipped },
    { name: 'model.sha256', mimeType: 'text/plain', buffer: micro('model.sha256') },
  ]);
  assert.match(await statusMatching(page, 'warn', /the weights file's sha256 is [0-9a-f]{64}/), /That model was not loaded/);
  await page.getByTestId('model-files').setInputFiles([{ name: 'config.json', mimeType: 'application/json', buffer: micro('config.json') }]);
  assert.match(await statusMatching(page, 'warn', /pick the three files/), /That model was not loaded/);

  // The current model still draws.
  await send(page, PROMPT);
  assert.equal(await finalState(page, 0), 'done');

  // A good model replaces it, from files…
  await page.getByTestId('model-files').setInputFiles([
    { name: 'config.json', mimeType: 'application/json', buffer: tiny('config.json') },
    { name: 'model.safetensors', mimeType: 'application/octet-stream', buffer: tiny('model.safetensors') },
    { name: 'model.sha256', mimeType: 'text/plain', buffer: tiny('model.sha256') },
  ]);
  await statusMatching(page, 'ready', /New model loaded: tessera-tiny/);
  assert.match(await page.getByTestId('model-info').textContent(), /the file model\.safetensors/);
  // …and from a folder on the site; the picture made by the other model is not offered for editing.
  assert.match(await loadFromUrl(page, MICRO), /New model loaded: tessera-micro/);
  assert.equal(await turns(page).count(), 1, 'the conversation is kept');
  assert.deepEqual(problems.offOrigin, []);
  await context.close();
});

test('nothing leaves the origin: the page’s Content-Security-Policy blocks it', async () => {
  const { page, context, problems } = await installed();
  const blocked = await page.evaluate(async () => {
    const violation = new Promise((resolve) => document.addEventListener('securitypolicyviolation', (e) => resolve(e.violatedDirective), { once: true }));
    const outcome = await fetch('https://example.com/x.png').then(() => 'sent', () => 'refused');
    return { outcome, directive: await violation };
  });
  assert.equal(blocked.outcome, 'refused');
  assert.equal(blocked.directive, 'connect-src');
  assert.deepEqual(problems.offOrigin, [], 'the request never reached the network');
  await context.close();
});
