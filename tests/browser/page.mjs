// The app page as the browser tests drive it: a fresh browser context per page (its own caches and service
// worker), console errors and off-origin requests collected, and the waits every test needs.

/**
 * Opens `path` (e.g. `/?model=models/tessera-micro/`) on `server` in a fresh context of `browser`.
 * `before(context)` runs before the first navigation (to install routes).
 */
export async function openPage(browser, server, path, { before } = {}) {
  const context = await browser.newContext();
  await before?.(context);
  const page = await context.newPage();
  const problems = { console: [], offOrigin: [] };
  page.on('console', (m) => { if (m.type() === 'error') problems.console.push(m.text()); });
  page.on('pageerror', (e) => problems.console.push(String(e)));
  context.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith(server.url) && !url.startsWith('data:') && !url.startsWith('blob:')) problems.offOrigin.push(url);
  });
  await page.goto(`${server.url}${path}`);
  return { page, context, problems };
}

export const status = (page) => page.getByTestId('status');
export const turns = (page) => page.getByTestId('turn');

/** Waits until the status line says the model is loaded (`data-kind="ready"`). */
export async function ready(page) {
  await page.waitForFunction(() => document.querySelector('[data-testid="status"]').dataset.kind === 'ready', null, { timeout: 120_000 });
}

/**
 * Waits until the status line has `kind` (`warn`, `ready`, …) and text matching `pattern`, and returns the
 * text. Waiting on the text too means an earlier status of the same kind is never taken for the new one.
 */
export async function statusMatching(page, kind, pattern) {
  await page.waitForFunction(([k, source, flags]) => {
    const el = document.querySelector('[data-testid="status"]');
    return el.dataset.kind === k && new RegExp(source, flags).test(el.textContent);
  }, [kind, pattern.source, pattern.flags], { timeout: 120_000 });
  return status(page).textContent();
}

export async function send(page, text) {
  await page.getByTestId('prompt').fill(text);
  await page.getByTestId('prompt').press('Enter');
}

/**
 * Waits until turn `index` has finished and returns its state: `done`, `stopped`, `error`, or `waiting` (its
 * message has words the model does not know, and it waits for "Draw it anyway").
 */
export async function finalState(page, index) {
  await page.waitForFunction((i) => {
    const t = document.querySelectorAll('[data-testid="turn"]')[i];
    return t && t.dataset.state !== 'generating' && t.dataset.state !== 'reading';
  }, index, { timeout: 300_000 });
  return turns(page).nth(index).getAttribute('data-state');
}

/** The RGBA pixels of PNG `bytes`, decoded by the browser of `page`. */
export async function pngPixels(page, bytes) {
  return page.evaluate(async (b) => {
    const bitmap = await createImageBitmap(new Blob([new Uint8Array(b)], { type: 'image/png' }));
    const c = new OffscreenCanvas(bitmap.width, bitmap.height);
    const ctx = c.getContext('2d');
    ctx.drawImage(bitmap, 0, 0);
    return Array.from(ctx.getImageData(0, 0, c.width, c.height).data);
  }, [...bytes]);
}

/**
 * A fresh engine worker in `page` loads the model folder at `url` (`preferGpu` or not); resolves to its
 * READY or ERROR message. Loads from one page share its Cache Storage.
 */
export async function loadInWorker(page, url, preferGpu) {
  return page.evaluate(([source, gpu]) => new Promise((resolve) => {
    const worker = new Worker('/www/worker.js', { type: 'module' });
    worker.onmessage = ({ data }) => {
      if (data.type === 'ready' || data.type === 'error') {
        worker.terminate();
        resolve(data);
      }
    };
    worker.postMessage({ type: 'load', source: { url: source }, preferGpu: gpu });
  }), [url, preferGpu]);
}
