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
    // The old shell is deleted once no page runs on it any more (this one reloaded onto the new one).
    await page.waitForFunction(async () => (await caches.keys()).filter((k) => k.startsWith('tessera-shell-')).length === 1);
    assert.deepEqual(problems.offOrigin, []);
  } finally {
    env.server.override('/pkg/build.js', stamp);
    await context.close();
  }
});

test('two tabs across an update: the tab left on the old version keeps being served its own files', async () => {
  const { page: old, context } = await installed();
  const oldVersion = await old.getByTestId('version').textContent();
  const stamp = readFileSync(join(ROOT, 'pkg/build.js'), 'utf8');
  const workerSource = readFileSync(join(ROOT, 'www/worker.js'), 'utf8');
  env.server.override('/pkg/build.js', stamp.replace(/version: '[^']*'/, "version: '99.0.0'"));
  env.server.override('/www/worker.js', `${workerSource}\n// the new build\n`);
  try {
    // A second tab takes the update.
    const fresh = await context.newPage();
    await fresh.goto(`${env.server.url}/?model=${MICRO}`);
    await ready(fresh);
    await fresh.evaluate(() => navigator.serviceWorker.getRegistration().then((r) => r.update()));
    await fresh.getByTestId('update').waitFor({ state: 'visible', timeout: 120_000 });
    await Promise.all([fresh.waitForEvent('load', { timeout: 120_000 }), fresh.getByTestId('update').click()]);
    await ready(fresh);
    assert.match(await fresh.getByTestId('version').textContent(), /^v99\.0\.0 /);
    assert.match(await fresh.evaluate(() => fetch('www/worker.js').then((r) => r.text())), /the new build/);
    // The old tab is still served the shell it started on: its next engine worker is of its own build.
    assert.doesNotMatch(await old.evaluate(() => fetch('www/worker.js').then((r) => r.text())), /the new build/);
    await old.evaluate(() => window.tessera.trapEngine());
    await statusMatching(old, 'ready', /^Restarted after the engine stopped/);
    await send(old, PROMPT);
    assert.equal(await finalState(old, 0), 'done');
    assert.equal(await old.getByTestId('version').textContent(), oldVersion);
    // Once the old tab is gone, the next page load deletes its shell.
    await old.close();
    await fresh.reload();
    await ready(fresh);
    await fresh.waitForFunction(async () => (await caches.keys()).filter((k) => k.startsWith('tessera-shell-')).length === 1);
  } finally {
    env.server.restore('/pkg/build.js');
    env.server.restore('/www/worker.js');
    await context.close();
  }
});

test('the model cache keeps what works: corrupt bytes are fetched again; a captive portal or a failed update falls back to it', async () => {
  const { page, context } = await installed();
  const weights = `${MICRO}model.safetensors`;
  const before = downloads(weights);
  // Bytes damaged inside Cache Storage: refused by their sha256, dropped, and downloaded again.
  await page.evaluate(async (url) => {
    const cache = await caches.open('tessera-models-v1');
    const bytes = new Uint8Array(await (await cache.match(url)).arrayBuffer());
    bytes[bytes.length - 5] ^= 0xff;
    await cache.put(url, new Response(bytes, { headers: { 'Content-Length': String(bytes.length) } }));
  }, `${env.server.url}${weights}`);
  await page.reload();
  await ready(page);
  assert.equal(downloads(weights) - before, 1, 'downloaded again once');
  assert.doesNotMatch(await page.getByTestId('model-info').textContent(), /from this browser’s cache/);
  // A login page where model.sha256 should be: the cached copy runs, and the app says why.
  env.server.override(`${MICRO}model.sha256`, '<!doctype html><title>Sign in to the Wi-Fi</title>');
  try {
    await page.reload();
    const text = await statusMatching(page, 'warn', /Ready: tessera-micro/);
    assert.match(text, /model\.sha256 is not a sha256 file\); this is the copy cached earlier/);
    assert.match(await page.getByTestId('model-info').textContent(), /from this browser’s cache/);
    assert.equal(downloads(weights) - before, 1, 'nothing downloaded');
  } finally {
    env.server.restore(`${MICRO}model.sha256`);
  }
  // A changed model on the server whose download is cut off: the cached one still runs, and the app says why.
  const full = readFileSync(join(ROOT, weights));
  env.server.override(`${MICRO}model.sha256`, `${'ab'.repeat(32)}  model.safetensors\n`);
  env.server.override(weights, full.subarray(0, full.length >> 1), { announce: full.length });
  try {
    await page.reload();
    const text = await statusMatching(page, 'warn', /Ready: tessera-micro/);
    assert.match(text, /could not be checked or downloaded \(the download of \S+model\.safetensors stopped after \d+ of \d+ bytes.*\); this is the copy cached earlier/);
    assert.match(await page.getByTestId('model-info').textContent(), /from this browser’s cache/);
  } finally {
    env.server.restore(`${MICRO}model.sha256`);
    env.server.restore(weights);
  }
  // The Model panel lists what is cached, with sizes, and removes it.
  await page.locator('details.model-panel summary').click();
  const listed = page.getByTestId('cached-model');
  await listed.first().waitFor();
  assert.match(await listed.first().textContent(), /\/models\/tessera-micro\/ · 0\.\d MB · loaded now/);
  await listed.first().getByTestId('remove-cached-model').click();
  await page.getByTestId('cached-models-empty').waitFor();
  assert.equal(await page.evaluate(async () => (await (await caches.open('tessera-models-v1')).keys()).length), 0);
  await context.close();
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
    // Configs whose sizes are zero, too large or wrap: refused at load with the field named.
    ...[
      ['image_size is 0', (c) => { c.image_size = 0; }],
      ['transformer.codebook_size is 0', (c) => { c.transformer.codebook_size = 0; c.vq.codebook_size = 0; }],
      ['transformer.max_seq is 1000000', (c) => { c.transformer.max_seq = 1_000_000; }],
      ['vq.dec_channels \\(levels\\) is 65', (c) => { c.vq.dec_channels = Array(65).fill(8); }],
      ['transformer.dim is 0', (c) => { c.transformer.dim = 0; }],
    ].map(([field, edit], i) => {
      const config = JSON.parse(micro('config.json'));
      edit(config);
      return [folder(`config-${i}`, { config: JSON.stringify(config) }), new RegExp(`model config is invalid: .*${field}`)];
    }),
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
