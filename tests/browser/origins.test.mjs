// What may come from another site: nothing. Every response carries the app's Content Security Policy as a
// header (so it binds the workers too, which a `<meta>` policy does not); a worker cannot fetch another site;
// `?model=` and the widget's `model` are read from the page's own site only; a widget whose scripts are
// served by another site than its page says so with `tessera-error`.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, serverAndBrowser, serveRoot } from './browser.mjs';
import { CSP } from '../../xtask/static-server.mjs';
import { openPage, statusMatching } from './page.mjs';

const env = serverAndBrowser();
/** Another site: the same files on another port (another origin). */
let other;
before(async () => { other = await serveRoot(); });
after(() => other?.close());

test('every response carries the policy as a header, the same the page states', async () => {
  const meta = /http-equiv="Content-Security-Policy"\s+content="([^"]+)"/.exec(readFileSync(join(ROOT, 'index.html'), 'utf8'))[1];
  assert.equal(meta, CSP, "index.html's <meta> and the header are one policy");
  for (const path of ['/', '/www/worker.js', '/www/made-here-worker.js', '/pkg/tessera_bg.wasm', '/models/tessera-micro/config.json', '/no-such-file']) {
    const response = await fetch(`${env.server.url}${path}`);
    assert.equal(response.headers.get('content-security-policy'), CSP, path);
  }
});

test('a worker of this site cannot fetch another site, and can fetch its own', async () => {
  const { page, context } = await openPage(env.browser, env.server, '/tests/browser/widget-page.html');
  const fetchFromWorker = (url) => page.evaluate((u) => new Promise((resolve) => {
    const worker = new Worker('/tests/browser/fetch-worker.js');
    worker.onmessage = ({ data }) => { worker.terminate(); resolve(data); };
    worker.postMessage(u);
  }), url);
  const own = await fetchFromWorker(`${env.server.url}/models/tessera-micro/config.json`);
  assert.equal(own.ok, true, JSON.stringify(own));
  const before = other.hits.length;
  const elsewhere = await fetchFromWorker(`${other.url}/models/tessera-micro/config.json`);
  assert.match(elsewhere.error ?? '', /TypeError: Failed to fetch/, JSON.stringify(elsewhere));
  assert.deepEqual(elsewhere.violations, [`connect-src ${other.url}/models/tessera-micro/config.json`]);
  assert.equal(other.hits.length, before, 'the other site was never asked');
  await context.close();
});

test('?model= from another site is refused by name and the bundled model runs', async () => {
  const { page, context, problems } = await openPage(env.browser, env.server, `/?backend=cpu&model=${other.url}/models/tessera-micro/`);
  const text = await statusMatching(page, 'warn', /\?model= was not loaded/);
  assert.match(text, new RegExp(`the model ${other.url}/models/tessera-micro/ is on another site \\(${other.url}\\), and models are read from this page's site \\(${env.server.url}\\) only`));
  assert.match(text, /the bundled model runs instead/);
  assert.match(text, /tessera-shapes/);
  assert.equal(other.hits.filter((p) => p.startsWith('/models/')).length, 0, 'nothing was fetched from the other site');
  assert.deepEqual(problems.offOrigin, []);
  await context.close();
});

test("a widget's model from another site, and a widget served by another site, fire tessera-error by name", async () => {
  const context = await env.browser.newContext();
  const page = await context.newPage();
  await page.addInitScript(() => {
    window.errors = [];
    document.addEventListener('tessera-error', (e) => window.errors.push({ id: e.target.id, ...e.detail }));
  });
  // A page of this site whose widget names another site's model.
  await page.goto(`${env.server.url}/tests/browser/widget-page.html`);
  await page.evaluate((url) => {
    const el = document.createElement('tessera-generator');
    el.id = 'elsewhere';
    el.setAttribute('model', url);
    document.body.append(el);
  }, `${other.url}/models/tessera-micro/`);
  await page.waitForFunction(() => window.errors.some((e) => e.id === 'elsewhere'));
  const [modelError] = await page.evaluate(() => window.errors.filter((e) => e.id === 'elsewhere'));
  assert.equal(modelError.name, 'OtherOrigin');
  assert.match(modelError.message, /is on another site .* models are read from this page's site .* only/);

  // A page of another site (with a policy of its own) embedding the widget from this one: the widget's
  // scripts load there, and its worker cannot start there.
  const host = '/a-page-of-another-site.html';
  other.override(host, `<!doctype html><title>another site</title><script type="module" src="${env.server.url}/www/widget.js"></script>
    <tessera-generator id="embedded" model="/models/tessera-micro/"></tessera-generator>`, { policy: `script-src 'self' ${env.server.url}` });
  await page.goto(`${other.url}${host}`);
  await page.waitForFunction(() => window.errors.some((e) => e.id === 'embedded'));
  const [embedded] = await page.evaluate(() => window.errors.filter((e) => e.id === 'embedded'));
  assert.equal(embedded.name, 'OtherOrigin');
  assert.match(embedded.message, new RegExp(`the engine is served from ${env.server.url}, another site than this page's \\(${other.url}\\)`));
  await context.close();
});
