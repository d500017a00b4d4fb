// <tessera-generator> on a plain page in headless Chromium (WebGPU on SwiftShader): two instances sharing one
// worker and model, events in order, PNG results with provenance, cancel, a bad model, and no CSS leaks.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertValidUntrusted, serverAndBrowser } from './browser.mjs';

const env = serverAndBrowser();

/** The fixture page, with every widget event recorded from the start (before the elements upgrade). */
async function widgetPage() {
  const context = await env.browser.newContext();
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(String(e)));
  await page.addInitScript(() => {
    window.widgetEvents = [];
    for (const type of ['tessera-ready', 'tessera-interpreted', 'tessera-row', 'tessera-done', 'tessera-error']) {
      document.addEventListener(type, (e) => {
        const { blob, ...detail } = e.detail;
        window.widgetEvents.push({ type, id: e.target.id, detail, blob: blob ? blob.size : undefined });
      });
    }
  });
  await page.goto(`${env.server.url}/tests/browser/widget-page.html`);
  return { page, context, problems };
}

const eventsOf = (page, id) => page.evaluate((i) => window.widgetEvents.filter((e) => e.id === i), id);

test('two widgets share one engine, fire their events in order and resolve to PNGs with provenance', async () => {
  const weightsBefore = env.server.hits.filter((p) => p === '/models/tessera-micro/model.safetensors').length;
  const { page, context, problems } = await widgetPage();
  await page.waitForFunction(() => window.widgetEvents.filter((e) => e.type === 'tessera-ready').length === 2, null, { timeout: 120_000 });

  const results = await page.evaluate(async () => {
    const [a, b] = ['a', 'b'].map((id) => document.getElementById(id));
    const blobs = await Promise.all([a.generate(), b.generate('a small blue star in the top left corner')]);
    return Promise.all(blobs.map(async (blob) => {
      const bytes = new Uint8Array(await blob.arrayBuffer());
      return { type: blob.type, signature: [...bytes.subarray(0, 8)], text: new TextDecoder('latin1').decode(bytes), bytes: [...bytes] };
    }));
  });
  for (const r of results) {
    assert.equal(r.type, 'image/png');
    assert.deepEqual(r.signature, [137, 80, 78, 71, 13, 10, 26, 10]);
    assert.match(r.text, /trainedAlgorithmicMedia/);
    assert.match(r.text, /tessera-micro/);
    assertValidUntrusted(assert, Buffer.from(r.bytes), 'a PNG from the widget');
  }
  for (const id of ['a', 'b']) {
    const ev = await eventsOf(page, id);
    const rows = ev.filter((e) => e.type === 'tessera-row');
    assert.equal(ev[0].type, 'tessera-ready');
    assert.equal(ev[1].type, 'tessera-interpreted', `${id}: the prompt is read before it is drawn`);
    assert.match(ev[1].detail.canonical, /^a (big|small) /);
    assert.deepEqual(rows.map((e) => e.detail.row), [...Array(rows[0].detail.rows).keys()], `${id}: rows in order`);
    assert.equal(ev.at(-1).type, 'tessera-done');
    assert.equal(ev.length, rows.length + 3, `${id}: ready, interpreted, rows, done and nothing else`);
    assert.ok(ev.at(-1).blob > 0 && ev.at(-1).detail.tokens === rows.length ** 2 && ev.at(-1).detail.ms > 0);
  }
  assert.equal(env.server.hits.filter((p) => p === '/models/tessera-micro/model.safetensors').length - weightsBefore, 1,
    'one download of the weights for both widgets');
  assert.deepEqual(problems, []);
  await context.close();
});

test('cancel() stops within a token step; a bad model gives tessera-error; no CSS crosses the shadow root', async () => {
  const { page, context } = await widgetPage();
  await page.waitForFunction(() => window.widgetEvents.filter((e) => e.type === 'tessera-ready').length === 2, null, { timeout: 120_000 });

  const stopped = await page.evaluate(() => new Promise((resolve) => {
    const a = document.getElementById('a');
    let tokensAtCancel = null;
    a.addEventListener('tessera-row', (e) => {
      if (tokensAtCancel !== null) return;
      tokensAtCancel = (e.detail.row + 1) * e.detail.rows;
      a.cancel();
    });
    a.generate().then(() => resolve({ outcome: 'finished' }), (e) => resolve({ outcome: e.name, message: e.message, tokensAtCancel }));
  }));
  assert.equal(stopped.outcome, 'AbortError');
  const stoppedAt = Number(stopped.message.match(/after (\d+) tokens/)[1]);
  assert.ok(stoppedAt - stopped.tokensAtCancel <= 1, `stopped at token ${stoppedAt}, cancelled at ${stopped.tokensAtCancel}`);
  const errors = (await eventsOf(page, 'a')).filter((e) => e.type === 'tessera-error');
  assert.deepEqual(errors.map((e) => e.detail.name), ['AbortError']);
  // The engine is free again: the other widget draws.
  await page.evaluate(() => document.getElementById('b').generate('a green square at the bottom'));

  const bad = await page.evaluate(() => new Promise((resolve) => {
    const el = document.createElement('tessera-generator');
    el.setAttribute('model', '/models/nonexistent/');
    el.addEventListener('tessera-error', (e) => resolve(e.detail), { once: true });
    document.body.append(el);
  }));
  assert.equal(bad.name, 'ModelMissing');
  assert.match(bad.message, /HTTP 404/);

  const styles = await page.evaluate(() => {
    const shadow = document.getElementById('a').shadowRoot;
    return {
      widgetCanvasBorder: getComputedStyle(shadow.querySelector('canvas')).borderTopWidth,
      hostCaptionMargin: getComputedStyle(document.getElementById('host-caption')).marginTop,
    };
  });
  assert.equal(styles.widgetCanvasBorder, '0px', 'the page’s canvas rule does not reach inside');
  assert.equal(styles.hostCaptionMargin, '30px', 'the widget’s .caption rule does not reach outside');
  await context.close();
});
