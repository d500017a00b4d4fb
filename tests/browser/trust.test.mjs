// "Check an image" in the app: the claims a PNG carries, whether this browser made it (also after a JPEG
// re-save and a light crop), and proof by regeneration from the prompt. Runs the trained tiny model on the
// CPU backend (the feature is the same on WebGPU; the CPU keeps 256-token images fast here).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, assertValidUntrusted, serverAndBrowser, withoutChunks } from './browser.mjs';
import { openPage, ready, send, finalState } from './page.mjs';

const env = serverAndBrowser();

/** The native CLI (`$TESSERA_CLI`, else the debug build), with a signing key of its own for these tests. */
function tesseraCli(args) {
  const key = mkdtempSync(join(tmpdir(), 'tessera-trust-key-'));
  try {
    return spawnSync(process.env.TESSERA_CLI ?? join(ROOT, 'target/debug/tessera'), args, {
      encoding: 'utf8', env: { ...process.env, TESSERA_KEY_DIR: join(key, 'key') },
    });
  } finally {
    rmSync(key, { recursive: true, force: true });
  }
}

/** A file holding `bytes`, removed when the process exits. */
function tempPng(bytes) {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-trust-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'image.png');
  writeFileSync(file, Buffer.from(bytes));
  return file;
}
const PROMPT = 'a big red circle in the center on a white background';

/** Checks `bytes` (a file of `type`) with `prompt` and returns the result text and verdict. */
async function check(page, name, type, bytes, prompt = '') {
  await page.getByTestId('check-prompt').fill(prompt);
  await page.evaluate(() => { document.querySelector('[data-testid="check-result"]').dataset.verdict = 'pending'; });
  await page.getByTestId('check-file').setInputFiles({ name, mimeType: type, buffer: Buffer.from(bytes) });
  await page.waitForFunction(() => document.querySelector('[data-testid="check-result"]').dataset.verdict !== 'pending', null, { timeout: 300_000 });
  return page.evaluate(() => {
    const r = document.querySelector('[data-testid="check-result"]');
    return { text: r.textContent, verdict: r.dataset.verdict };
  });
}

test('an image is checked: its claims, whether it was made here (JPEG, crop), and proof by regeneration', async () => {
  const { page, context, problems } = await openPage(env.browser, env.server, '/?backend=cpu&model=models/tessera-tiny/');
  await ready(page);
  await page.locator('details.settings summary').click();
  await page.getByTestId('seed').fill('11');
  // The other settings are left empty: the engine's defaults, which the fields show.
  assert.equal(await page.getByTestId('guidance').getAttribute('placeholder'), '1.5');
  await send(page, PROMPT);
  assert.equal(await finalState(page, 0), 'done');
  await page.waitForFunction(() => document.querySelector('[data-testid="turn"]').dataset.remembered === 'true');
  await page.locator('details.check-panel summary').click();

  // The downloaded PNG, then the same picture re-saved as JPEG, lightly cropped, and something else.
  const files = await page.evaluate(async () => {
    const png = new Uint8Array(await window.tessera.state.turns[0].png.arrayBuffer()); // what Download PNG saves
    const bitmap = await createImageBitmap(new Blob([png]));
    const draw = async (sx, sy, sw, sh, type, quality) => {
      const c = new OffscreenCanvas(sw, sh);
      c.getContext('2d').drawImage(bitmap, sx, sy, sw, sh, 0, 0, sw, sh);
      return [...new Uint8Array(await (await c.convertToBlob({ type, quality })).arrayBuffer())];
    };
    const n = bitmap.width;
    const other = new OffscreenCanvas(n, n);
    const ctx = other.getContext('2d');
    ctx.fillStyle = '#000'; ctx.fillRect(0, 0, n, n);
    ctx.fillStyle = '#2858dc'; ctx.fillRect(8, 70, 40, 40);
    return {
      png: [...png],
      jpeg: await draw(0, 0, n, n, 'image/jpeg', 0.8),
      crop: await draw(4, 4, n - 8, n - 8, 'image/png'),
      other: [...new Uint8Array(await (await other.convertToBlob({ type: 'image/png' })).arrayBuffer())],
    };
  });

  const proven = await check(page, 'tessera-1.png', 'image/png', files.png, PROMPT);
  assert.match(proven.text, /Claims: made by an AI model \(IPTC trainedAlgorithmicMedia\): tessera-tiny .* seed 11/);
  assert.match(proven.text, /temperature 1, top-p 1, guidance 1\.5, made \S/, 'the defaults were used; the creation time is read back');
  assert.match(proven.text, /Made here: yes, .* from “a big red circle/);
  assert.match(proven.text, /Signature: Content Credentials signed by Tessera image signer \(this browser\), issued by .*\(this browser's key; certificate sha256 [0-9a-f]{12}…\).*: valid, untrusted/);
  assert.match(proven.text, /the same pixels, and the claims are signed\. Verified\./);
  assert.equal(proven.verdict, 'verified');
  assertValidUntrusted(assert, Buffer.from(files.png), 'a PNG downloaded from the app');
  // The command line's verdict on the same file: the same verification, another key than its own.
  const cli = tesseraCli(['verify', tempPng(files.png), '--prompt', PROMPT, '--model', join(ROOT, 'models/tessera-tiny')]);
  assert.equal(cli.status, 0, cli.stderr);
  assert.match(cli.stdout, /signed by Tessera image signer \(this browser\).*another key, not this machine's/);
  assert.match(cli.stdout, /verdict: VERIFIED/);

  // Without its manifest the claims are anyone's: the same pixels, never VERIFIED.
  const stripped = await check(page, 'stripped.png', 'image/png', withoutChunks(Buffer.from(files.png), 'caBX'), PROMPT);
  assert.match(stripped.text, /Signature: none/);
  assert.match(stripped.text, /the same pixels, but no signature binds the claims to the file, so who made it and when is not proven\. Not verified: unsigned\./);
  assert.equal(stripped.verdict, 'unsigned');

  const wrongPrompt = await check(page, 'tessera-1.png', 'image/png', files.png, 'a big blue circle in the center on a white background');
  assert.match(wrongPrompt.text, /not the one recorded/);
  assert.equal(wrongPrompt.verdict, 'not-verified');

  const jpeg = await check(page, 'resaved.jpg', 'image/jpeg', files.jpeg);
  assert.match(jpeg.text, /Claims: none/);
  assert.equal(jpeg.verdict, 'made-here', jpeg.text);
  const crop = await check(page, 'cropped.png', 'image/png', files.crop);
  assert.equal(crop.verdict, 'made-here', crop.text);
  const other = await check(page, 'other.png', 'image/png', files.other);
  assert.match(other.text, /Made here: no picture this browser drew matches it/);
  assert.equal(other.verdict, 'unknown');

  // The index says its size; "Forget them" empties it, and the matching worker forgets with it.
  const sizeLine = (pattern) => page.waitForFunction((p) => new RegExp(p).test(document.querySelector('[data-testid="made-here-size"]').textContent), pattern.source);
  await sizeLine(/remembers 1 picture it drew/);
  await page.getByTestId('forget-made-here').click();
  await sizeLine(/remembers 0 pictures/);
  assert.equal(await page.getByTestId('forget-made-here').isHidden(), true);
  const forgotten = await check(page, 'resaved.jpg', 'image/jpeg', files.jpeg);
  assert.match(forgotten.text, /Made here: no picture this browser drew matches it\./);
  assert.equal(forgotten.verdict, 'unknown');
  // Bounded: at the cap, one more picture drops the oldest.
  const bounded = await page.evaluate(async () => {
    const { remember, rememberedCount, MAX_REMEMBERED } = await import('/www/made-here.js');
    const { MADE_HERE, transact } = await import('/www/db.js');
    const thumb = new Uint8Array(32 * 32 * 3);
    await transact([MADE_HERE], 'readwrite', (s) => {
      for (let i = 0; i < MAX_REMEMBERED; i++) s[MADE_HERE].add({ thumb, prompt: `filler ${i}` });
    });
    await remember({ thumb, prompt: 'the newest' });
    const [oldest] = await transact([MADE_HERE], 'readonly', (s) => s[MADE_HERE].getAll(null, 1));
    return { count: await rememberedCount(), oldest: oldest.prompt };
  });
  assert.deepEqual(bounded, { count: 10_000, oldest: 'filler 1' });

  const text = await check(page, 'notes.txt', 'text/plain', Buffer.from('hello'));
  assert.match(text.text, /not an image/);
  const broken = await check(page, 'broken.png', 'image/png', Buffer.from(files.png.slice(0, 40)));
  assert.equal(broken.verdict, 'error');
  assert.equal(await page.getByTestId('turn').count(), 1, 'checking never touches the conversation');
  assert.deepEqual(problems.offOrigin, []);
  await context.close();
});

test("this browser's signing key: made once for two first uses at once, private, and kept", async () => {
  const context = await env.browser.newContext();
  const pages = await Promise.all([context.newPage(), context.newPage()]);
  const url = `${env.server.url}/index.html?backend=cpu&model=models/tessera-micro/`;
  // Two tabs sign their first picture at the same moment: one key is made, and both sign with it.
  await Promise.all(pages.map((p) => p.goto(url)));
  const signedBy = (page) => page.evaluate(async () => {
    const { sign, readSignature } = await import('/www/credentials.js');
    // Any PNG and claims: what is signed here is the key's use, not a picture's truth.
    const c = new OffscreenCanvas(8, 8);
    c.getContext('2d').fillRect(0, 0, 8, 8);
    const plain = new Uint8Array(await (await c.convertToBlob({ type: 'image/png' })).arrayBuffer());
    const claims = { modelId: 'm', seed: 1 };
    const { png: signed } = await sign(plain, claims);
    return (await readSignature(signed, claims));
  });
  const [a, b] = await Promise.all(pages.map(signedBy));
  assert.equal(a.valid, true, JSON.stringify(a));
  assert.equal(a.problem, null);
  assert.equal(a.certificateSha256, b.certificateSha256, 'both tabs signed with one key');
  assert.equal(a.thisBrowser && b.thisBrowser, true);
  const stored = await pages[0].evaluate(async () => {
    const { KEYS, transact } = await import('/www/db.js');
    const keys = await transact([KEYS], 'readonly', (s) => s[KEYS].getAll());
    return keys.map((k) => ({ extractable: k.privateKey.extractable, type: k.privateKey.type, usages: k.privateKey.usages, chain: k.chain.length }));
  });
  assert.deepEqual(stored, [{ extractable: false, type: 'private', usages: ['sign'], chain: 2 }], 'one key, which no script can read out');
  // A later page of the same browser signs with the same key.
  const later = await context.newPage();
  await later.goto(url);
  assert.equal((await signedBy(later)).certificateSha256, a.certificateSha256);
  await context.close();
});
