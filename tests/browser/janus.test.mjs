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
import { openPage, ready, send, finalState, pngPixels } from './page.mjs';

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

test('janus-tiny from a sharded folder streams in with progress over every shard, says its family, previews, and draws what the native CLI draws', async () => {
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
    assert.deepEqual(problems.console, []);
    assert.deepEqual(problems.offOrigin, []);
    await context.close();
  } finally {
    for (const name of names) env.server.restore(`/janus-tiny/${name}`);
    rmSync(dir, { recursive: true, force: true });
  }
});
