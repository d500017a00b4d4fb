// A Janus folder in the app: janus-tiny (random weights, Janus-Pro's key names) with a word-level
// tokenizer.json, converted by the CLI into five 1 MiB shards with their index and sha256 list, as a released
// checkpoint is converted for the browser. Real headless Chromium with WebGPU (SwiftShader).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serverAndBrowser, ROOT } from './browser.mjs';
import { openPage, ready, send, finalState, pngPixels, turns, loadInWorker } from './page.mjs';

const env = serverAndBrowser();
const cli = (args) => execFileSync(process.env.TESSERA_CLI ?? join(ROOT, 'target/debug/tessera'), args, { stdio: 'pipe' });
const PROMPT = 'a red cat in a hat';

/** janus-tiny with the fixture tokenizer, converted to shards under a fresh directory: `{dir, folder}`. */
function shardedJanusTiny() {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-janus-'));
  const src = join(dir, 'src');
  mkdirSync(src);
  for (const name of ['config.json', 'model.safetensors']) copyFileSync(join(ROOT, 'tests/fixtures/janus-tiny', name), join(src, name));
  copyFileSync(join(ROOT, 'tests/fixtures/janus-tiny-tokenizer/tokenizer.json'), join(src, 'tokenizer.json'));
  const folder = join(dir, 'janus-tiny');
  cli(['convert', src, folder, '--shard-mib', '1']);
  return { dir, folder };
}

test('janus-tiny from a sharded folder streams in with progress over every shard, says its family, previews, draws what the native CLI draws, and keeps the last preview when stopped', async () => {
  const { dir, folder } = shardedJanusTiny();
  const names = readdirSync(folder);
  const shards = names.filter((n) => /^model-\d+-of-\d+\.safetensors$/.test(n));
  assert.ok(shards.length >= 3, `${shards.length} shards`);
  for (const name of names) env.server.override(`/janus-tiny/${name}`, readFileSync(join(folder, name)));
  try {
    const { page, context, problems } = await openPage(env.browser, env.server, '/?model=/janus-tiny/');
    await ready(page);
    const info = await page.getByTestId('model-info').textContent();
    assert.match(info, / · Janus, [\d.]+ M parameters · /);
    // One progress over all the shards, ending at their total.
    const weightBytes = shards.reduce((n, s) => n + readFileSync(join(folder, s)).length, 0);
    const progress = (await page.evaluate(() => window.tessera.events)).filter((e) => e.type === 'progress');
    assert.ok(progress.length >= shards.length, `${progress.length} progress messages`);
    assert.ok(progress.every((e) => e.total === weightBytes), 'the total is every shard’s bytes from the start');
    assert.equal(progress.at(-1).loaded, weightBytes);
    // Each shard asked for twice: its size (HEAD, for the total above), then its bytes, once.
    for (const shard of shards) assert.equal(env.server.hits.filter((p) => p === `/janus-tiny/${shard}`).length, 2, shard);

    await page.locator('details.settings summary').click();
    await page.getByTestId('temperature').fill('0');
    await page.getByTestId('seed').fill('3');
    await send(page, PROMPT);
    assert.equal(await finalState(page, 0), 'done');
    // VQ-16 is not row-causal: previews of the whole grid while it draws, then the final image in one band.
    const ev = (await page.evaluate(() => window.tessera.events)).filter((e) => ['preview', 'token-row', 'done'].includes(e.type));
    const previews = ev.filter((e) => e.type === 'preview');
    assert.ok(previews.length >= 1, 'at least one preview');
    assert.deepEqual(ev.slice(-2).map((e) => e.type), ['token-row', 'done'], 'previews come before the final image');
    assert.equal(await page.getByTestId('preview-veil').isHidden(), true, 'the final image is not dimmed');
    const png = join(dir, 'native.png');
    cli(['generate', PROMPT, '-o', png, '--model', folder, '--temperature', '0', '--seed', '3']);
    const native = await pngPixels(page, readFileSync(png));
    const browser = await page.evaluate(() => {
      const c = document.querySelector('[data-testid="canvas"]');
      return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);
    });
    assert.equal(browser.length, 64 * 64 * 4);
    const worst = browser.reduce((m, v, i) => Math.max(m, Math.abs(v - native[i])), 0);
    assert.ok(worst <= 2, `browser (WebGPU) and native (CPU) images differ by ${worst} levels`);

    // Stopped after its first preview, a turn keeps that preview, dimmed below the rows drawn.
    await send(page, 'a blue dog');
    await page.waitForFunction(() => {
      const second = window.tessera.events.filter((e) => e.type === 'generate')[1];
      return second && window.tessera.events.some((e) => e.type === 'preview' && e.id === second.id);
    });
    await page.getByTestId('stop').click();
    assert.equal(await finalState(page, 1), 'stopped');
    const veil = page.getByTestId('preview-veil').nth(1);
    assert.equal(await veil.isVisible(), true, 'the last preview stays marked as a preview');
    assert.equal(await veil.textContent(), 'preview');
    const kept = await page.evaluate(() => {
      const c = document.querySelectorAll('[data-testid="canvas"]')[1];
      return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);
    });
    // The canvas's fill is #0b0c10; a preview paints the rows not drawn yet too (unfinished cells neutral).
    const fill = (i) => kept[i] === 0x0b && kept[i + 1] === 0x0c && kept[i + 2] === 0x10;
    const row = (y) => Array.from({ length: 64 }, (_, x) => (y * 64 + x) * 4);
    assert.ok(row(0).some((i) => !fill(i)) && row(63).some((i) => !fill(i)), 'the preview is kept whole');
    assert.equal(await turns(page).count(), 2, 'the conversation is intact');
    assert.deepEqual(problems.console, []);
    assert.deepEqual(problems.offOrigin, []);
    await context.close();
  } finally {
    for (const name of names) env.server.restore(`/janus-tiny/${name}`);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a shard download cut off part-way resumes at that shard: the shards before it are not fetched again', async () => {
  const { dir, folder } = shardedJanusTiny();
  const names = readdirSync(folder);
  const shards = names.filter((n) => /^model-\d+-of-\d+\.safetensors$/.test(n)).sort();
  const cut = shards[2];
  const whole = readFileSync(join(folder, cut));
  for (const name of names) env.server.override(`/resume/${name}`, readFileSync(join(folder, name)));
  env.server.override(`/resume/${cut}`, whole.subarray(0, whole.length >> 1), { announce: whole.length });
  try {
    const { page, context } = await openPage(env.browser, env.server, '/www/protocol.js');
    const url = `${env.server.url}/resume/`;
    const marks = [env.server.hits.length];
    const stopped = await loadInWorker(page, url, false);
    marks.push(env.server.hits.length);
    env.server.override(`/resume/${cut}`, whole); // the network is back
    const resumed = await loadInWorker(page, url, false);
    marks.push(env.server.hits.length);
    assert.equal(stopped.type, 'error');
    assert.equal(stopped.name, 'ModelMissing');
    assert.match(stopped.message, new RegExp(`the download of \\S+${cut} stopped after \\d+ of ${whole.length} bytes`));
    assert.equal(resumed.type, 'ready', resumed.message);
    assert.equal(resumed.info.source.fromCache, false);
    /** How often each shard was asked for (HEAD or GET) between marks `a` and `b`. */
    const hits = (a, b) => shards.map((shard) => env.server.hits.slice(marks[a], marks[b]).filter((p) => p === `/resume/${shard}`).length);
    // The first load: the shards before the cut, HEAD and GET; the cut one at least that (the browser may
    // retry a dropped connection itself); the ones after it, HEAD only.
    const first = hits(0, 1);
    assert.deepEqual(first.filter((_, i) => i !== 2), [2, 2, 1, 1]);
    assert.ok(first[2] >= 2, `the cut shard asked for ${first[2]} times`);
    // The second: nothing of the shards staged whole; the cut one and those after it, HEAD and GET.
    assert.deepEqual(hits(1, 2), shards.map((_, i) => (i < 2 ? 0 : 2)));
    // The model is now cached whole: a third load asks for no weights at all.
    const third = await loadInWorker(page, url, false);
    assert.equal(third.type, 'ready', third.message);
    assert.equal(third.info.source.fromCache, true);
    marks.push(env.server.hits.length);
    assert.deepEqual(hits(2, 3), shards.map(() => 0));
    await context.close();
  } finally {
    for (const name of names) env.server.restore(`/resume/${name}`);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the widget draws janus-tiny from a sharded folder: previews dimmed below the rows drawn, then the image the native CLI draws', async () => {
  const { dir, folder } = shardedJanusTiny();
  const names = readdirSync(folder);
  for (const name of names) env.server.override(`/janus-widget/${name}`, readFileSync(join(folder, name)));
  try {
    const { page, context, problems } = await openPage(env.browser, env.server, '/tests/browser/widget-page.html');
    const drawn = await page.evaluate(async (prompt) => {
      const el = document.createElement('tessera-generator');
      Object.entries({ model: '/janus-widget/', seed: '3', temperature: '0' }).forEach(([k, v]) => el.setAttribute(k, v));
      const veil = () => el.shadowRoot.querySelector('[part="preview-veil"]');
      const previews = [];
      el.addEventListener('tessera-preview', (e) => previews.push({ ...e.detail, veiled: !veil().hidden, top: veil().style.top }));
      document.body.append(el);
      await new Promise((resolve) => el.addEventListener('tessera-ready', resolve, { once: true }));
      const png = await el.generate(prompt);
      const canvas = el.shadowRoot.querySelector('canvas');
      return {
        previews, veiledAtEnd: !veil().hidden, png: Array.from(new Uint8Array(await png.arrayBuffer())),
        pixels: Array.from(canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data),
      };
    }, PROMPT);
    assert.ok(drawn.previews.length >= 1, 'at least one preview');
    for (const p of drawn.previews) {
      assert.ok(p.rows >= 1 && p.rows < p.of, `preview at row ${p.rows} of ${p.of}`);
      assert.equal(p.veiled, true);
      assert.equal(p.top, `${(p.rows / p.of) * 100}%`);
    }
    assert.equal(drawn.veiledAtEnd, false, 'the final image is not dimmed');
    const png = join(dir, 'native.png');
    cli(['generate', PROMPT, '-o', png, '--model', folder, '--temperature', '0', '--seed', '3']);
    const native = await pngPixels(page, readFileSync(png));
    const fromWidget = await pngPixels(page, Buffer.from(drawn.png));
    for (const [what, pixels] of [['canvas', drawn.pixels], ['PNG', fromWidget]]) {
      assert.equal(pixels.length, 64 * 64 * 4);
      const worst = pixels.reduce((m, v, i) => Math.max(m, Math.abs(v - native[i])), 0);
      assert.ok(worst <= 2, `the widget's ${what} and the native CLI's image differ by ${worst} levels`);
    }
    assert.deepEqual(problems.console, []);
    await context.close();
  } finally {
    for (const name of names) env.server.restore(`/janus-widget/${name}`);
    rmSync(dir, { recursive: true, force: true });
  }
});
