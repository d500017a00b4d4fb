// The conversation kept in this browser (IndexedDB) as it is made: a reload brings it back pixel for pixel
// with its settings and seeds, a turn cut off mid-way comes back stopped with its partial picture, earlier
// conversations can be reopened or deleted, and a storage failure is told, never swallowed. Real headless
// Chromium with WebGPU (SwiftShader).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serverAndBrowser } from './browser.mjs';
import { openPage, turns, ready, send, finalState, statusMatching } from './page.mjs';

const MICRO = 'models/tessera-micro/';
const PROMPT = 'a big red circle in the center on a white background';

const env = serverAndBrowser();

const open = (query = `?model=${MICRO}`) => openPage(env.browser, env.server, `/${query}`);
const restored = (page) => page.evaluate(() => window.tessera.restored);

function canvasPixels(page, index) {
  return page.evaluate((i) => {
    const c = document.querySelectorAll('[data-testid="canvas"]')[i];
    return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);
  }, index);
}

/** Waits until every turn on the page has been stored in its latest state. */
const saved = (page) => page.waitForFunction(() => window.tessera.state.turns.every((t) => !t.saving && !t.dirty && t.li.dataset.saved === 'true'));

/** The stored turns of the conversation shown, read from IndexedDB itself. */
const storedTurns = (page) => page.evaluate(() => new Promise((resolve, reject) => {
  const request = indexedDB.open('tessera');
  request.onerror = () => reject(request.error);
  request.onsuccess = () => {
    const id = window.tessera.state.conversation.id;
    const get = request.result.transaction('turns').objectStore('turns').getAll(IDBKeyRange.bound([id, 0], [id, Infinity]));
    get.onsuccess = () => resolve(get.result.map((t) => ({ seq: t.seq, state: t.state, rows: t.rows, prompt: t.prompt })));
  };
}));

test('a reload brings the conversation back as it was: pictures, readings, settings; the next edit follows on', async () => {
  const { page, context, problems } = await open();
  await ready(page);
  await page.locator('details.settings summary').click();
  await page.getByTestId('seed').fill('5');
  await page.getByTestId('temperature').fill('0.5');
  await send(page, PROMPT);
  assert.equal(await finalState(page, 0), 'done');
  await send(page, 'now make the circle blue');
  assert.equal(await finalState(page, 1), 'done');
  await saved(page);
  const before = { pixels: [await canvasPixels(page, 0), await canvasPixels(page, 1)], texts: await turns(page).allTextContents() };

  await page.reload();
  await restored(page);
  assert.equal(await turns(page).count(), 2);
  assert.deepEqual([await canvasPixels(page, 0), await canvasPixels(page, 1)], before.pixels, 'pictures are pixel-identical');
  assert.deepEqual(await turns(page).allTextContents(), before.texts, 'prompts, readings and stats are as they were');
  assert.deepEqual([await turns(page).nth(0).getAttribute('data-state'), await turns(page).nth(1).getAttribute('data-kind')], ['done', 'edit']);
  assert.deepEqual([await page.getByTestId('seed').inputValue(), await page.getByTestId('temperature').inputValue()], ['5', '0.5']);
  // The restored picture is the one a follow-up edits: its token grid came back too.
  await ready(page);
  await send(page, 'now make the circle green');
  assert.equal(await finalState(page, 2), 'done');
  const edit = (await page.evaluate(() => window.tessera.events)).find((e) => e.type === 'generate');
  assert.equal(edit.context, 16, 'the edit carries the restored picture’s 4×4 tokens');
  assert.deepEqual(problems.console, []);
  await context.close();
});

test('a turn cut off by a reload comes back stopped with the rows it had', async () => {
  // The default model on the CPU: 16 token rows of 16, slow enough to be cut off after the first.
  const { page, context } = await open('?backend=cpu');
  await ready(page);
  await send(page, PROMPT);
  await page.waitForFunction(() => window.tessera.state.turns[0]?.li.dataset.rows);
  await page.waitForFunction(() => {
    const t = window.tessera.state.turns[0];
    return !t.saving && t.li.dataset.saved === 'true' && t.state === 'generating';
  });
  const stored = await storedTurns(page);
  assert.equal(stored[0].state, 'generating', 'stored mid-way');
  assert.ok(Number(stored[0].rows) >= 1, `stored after ${stored[0].rows} rows`);
  await page.reload();
  await restored(page);
  assert.equal(await turns(page).nth(0).getAttribute('data-state'), 'stopped');
  // Rows kept drawing (and being stored) until the reload: at least as many as seen stored, never all 16.
  const rows = Number((await turns(page).nth(0).textContent()).match(/interrupted after (\d+) rows/)?.[1]);
  assert.ok(rows >= Number(stored[0].rows) && rows < 16, `interrupted after ${rows} rows`);
  // The rows drawn are back; those never drawn still show the canvas's fill.
  const pixels = await canvasPixels(page, 0);
  const fill = (p) => pixels[p] === 0x0b && pixels[p + 1] === 0x0c && pixels[p + 2] === 0x10;
  const row = (y) => Array.from({ length: 128 }, (_, x) => (y * 128 + x) * 4);
  assert.ok(row(0).some((p) => !fill(p)), 'the first rows are back');
  assert.ok(row(127).every(fill), 'the last row was never drawn');
  // Stored as stopped from now on, and Regenerate draws it again.
  await saved(page);
  assert.equal((await storedTurns(page))[0].state, 'stopped');
  await ready(page);
  await turns(page).nth(0).getByTestId('regenerate').click();
  assert.equal(await finalState(page, 1), 'done');
  await context.close();
});

test('New conversation starts another; earlier ones are listed, reopened and deleted', async () => {
  const { page, context } = await open();
  await ready(page);
  await send(page, PROMPT);
  assert.equal(await finalState(page, 0), 'done');
  await page.locator('details.conversations-panel summary').click();
  await page.getByTestId('new-conversation').click();
  assert.equal(await turns(page).count(), 0);
  await send(page, 'a small blue star at the top left');
  assert.equal(await finalState(page, 0), 'done');
  await saved(page);
  await page.locator('details.conversations-panel summary').click(); // closed, then opened: the list is read again
  await page.locator('details.conversations-panel summary').click();
  const entries = page.getByTestId('stored-conversation');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="stored-conversation"]').length === 2);
  assert.match(await entries.nth(0).textContent(), /a small blue star/);
  assert.equal(await entries.nth(0).getAttribute('aria-current'), 'true');
  // Reopen the first: its turn comes back.
  await entries.nth(1).getByTestId('open-conversation').click();
  await page.waitForFunction(() => document.querySelector('[data-testid="turn"] .prompt')?.textContent.startsWith('a big red circle'));
  assert.equal(await turns(page).count(), 1);
  // Delete the other (the one not shown); a reload shows the one left.
  await page.waitForFunction(() => document.querySelector('[data-testid="stored-conversation"][aria-current="true"]')?.textContent.includes('a big red circle'));
  await page.locator('[data-testid="stored-conversation"]:not([aria-current])').getByTestId('delete-conversation').click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="stored-conversation"]').length === 1);
  await page.reload();
  await restored(page);
  assert.match(await turns(page).nth(0).textContent(), /a big red circle/);
  await context.close();
});

test('a storage quota too small to keep anything is told, and the conversation goes on', async () => {
  const context = await env.browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin: env.server.url, quotaSize: 4096 });
  await page.goto(`${env.server.url}/?model=${MICRO}`);
  // The model runs, and says it could not be kept for offline use, with the space it needs.
  const loaded = await statusMatching(page, 'warn', /could not be kept for offline use/);
  assert.match(loaded, /storage is full: the model needs \d+\.\d MB; this site uses [\d.]+ MB of the [\d.]+ MB the browser allows/);
  await send(page, PROMPT);
  assert.equal(await finalState(page, 0), 'done');
  // Nor can this browser's signing key be kept: the picture is drawn and given with its XMP claims, unsigned.
  assert.match(await turns(page).nth(0).locator('.meta').textContent(), /unsigned: this browser's signing key could not be kept \(the browser's storage for this site is full\)/);
  await statusMatching(page, 'warn', /The conversation could not be saved in this browser: .*delete earlier conversations/);
  assert.equal(await turns(page).count(), 1, 'the picture stays on the page');
  await context.close();
});
