// Model files for the engine's worker: a model folder (`config.json`, `model.safetensors`, `model.sha256`)
// fetched once with byte-accurate progress and kept in a Cache Storage entry of its own, which app updates
// never touch. Files are cached only after the engine has accepted them (names, shapes, sha256), so a bad
// download never replaces a good copy. No DOM here: the worker and Node's tests import it.

import { storageSpace } from './db.js';

/** The cache's name carries the layout of its entries, not the app's version. */
export const MODEL_CACHE = 'tessera-models-v1';

/** A named error the page knows how to explain (`www/protocol.js`). */
export function namedError(name, message) {
  return Object.assign(new Error(message), { name });
}

/** The expected sha256 from a `model.sha256` file (`<hex>  model.safetensors`, as sha256sum writes it). */
export function parseSha256(text) {
  const hex = text.trim().split(/\s+/)[0] ?? '';
  if (!/^[0-9a-f]{64}$/i.test(hex)) throw namedError('BadWeights', 'model.sha256 does not hold a sha256 (64 hex digits)');
  return hex.toLowerCase();
}

/**
 * The largest tensor in a safetensors file, as the GPU will hold it (f32): `{name, bytes}`. Reads only the
 * header (u64 little-endian length, then JSON); a malformed header is a `BadWeights` error.
 */
export function largestTensor(weights) {
  if (weights.length < 8) throw namedError('BadWeights', `model.safetensors is ${weights.length} bytes, too short for a header`);
  const view = new DataView(weights.buffer, weights.byteOffset, weights.byteLength);
  const length = Number(view.getBigUint64(0, true));
  if (length > weights.length - 8) throw namedError('BadWeights', `model.safetensors declares a ${length}-byte header in a ${weights.length}-byte file`);
  let header;
  try {
    header = JSON.parse(new TextDecoder().decode(weights.subarray(8, 8 + length)));
  } catch (e) {
    throw namedError('BadWeights', `model.safetensors has an unreadable header (${e.message})`);
  }
  let largest = { name: null, bytes: 0 };
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__' || !Array.isArray(t?.shape)) continue;
    const bytes = t.shape.reduce((a, b) => a * b, 1) * 4;
    if (bytes > largest.bytes) largest = { name, bytes };
  }
  return largest;
}

/**
 * Why these weights cannot run on a GPU whose buffers bind at most `limit` bytes, or null when they can.
 * The engine allocates each weight tensor as one storage buffer, so one larger tensor cannot run there.
 */
export function bindingProblem(weights, limit) {
  const { name, bytes } = largestTensor(weights);
  if (!limit || bytes <= limit) return null;
  const mb = (n) => `${(n / 2 ** 20).toFixed(0)} MiB`;
  return `tensor \`${name}\` needs ${mb(bytes)} in one GPU buffer and this GPU binds at most ${mb(limit)}`;
}

async function fetchOk(url, init) {
  let response;
  try {
    response = await fetch(url, init);
  } catch (e) {
    throw namedError('ModelMissing', `${url} could not be fetched (${e.message})`);
  }
  if (!response.ok) throw namedError('ModelMissing', `${url}: HTTP ${response.status}`);
  return response;
}

/** A response's bytes, reporting `(loaded, total)` as they arrive; a body shorter than announced is an error. */
export async function readBytes(response, url, onProgress) {
  const total = Number(response.headers.get('Content-Length')) || 0;
  const chunks = [];
  let loaded = 0;
  const stopped = () => `the download of ${url} stopped after ${loaded}${total ? ` of ${total}` : ''} bytes`;
  const reader = response.body.getReader();
  for (;;) {
    let part;
    try {
      part = await reader.read();
    } catch (e) {
      throw namedError('ModelMissing', `${stopped()} (${e.message})`);
    }
    if (part.done) break;
    chunks.push(part.value);
    loaded += part.value.length;
    onProgress?.(loaded, total);
  }
  if (total && loaded !== total) throw namedError('ModelMissing', stopped());
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) { bytes.set(c, at); at += c.length; }
  return bytes;
}

/** Cache Storage, where this context has it (not in opaque origins or some private modes). */
async function openCache() {
  try {
    return self.caches ? await caches.open(MODEL_CACHE) : null;
  } catch {
    return null;
  }
}

/** The bytes Cache Storage needs for `bytes` more, and what the browser says is left, for a quota error. */
async function quotaMessage(e, bytes) {
  const space = await storageSpace();
  const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;
  const left = space ? `; this site uses ${mb(space.usage)} of the ${mb(space.quota)} the browser allows` : '';
  return namedError('QuotaExceededError', `the browser's storage is full: the model needs ${mb(bytes)}${left} (${e.message})`);
}

/**
 * The model folder at `base` (a URL ending in `/`): `{config, weights, sha256, fromCache, stale, keep, forget}`.
 * `keep()` stores the files once the engine accepted them (rejecting with a `QuotaExceededError` that says
 * the space needed); `forget()` drops a cached copy whose bytes the engine refused.
 *
 * Online, `model.sha256` is always asked for again, so a changed model is downloaded. The cached copy is used
 * offline, when the server is gone, when what comes back is not a sha256 (a captive portal's login page), and
 * when the download of a changed model fails; `stale` then says why the copy may be an older model.
 */
export async function fetchModel(base, onProgress) {
  const urls = { config: `${base}config.json`, sha256: `${base}model.sha256`, weights: `${base}model.safetensors` };
  const cache = await openCache();
  const cached = async (url) => (await cache?.match(url)) ?? null;
  const forget = async () => { await Promise.all(Object.values(urls).map((u) => cache?.delete(u))); };
  /** The complete cached copy, if there is one (`model.sha256` is written last, so it marks one). */
  const cachedCopy = async (stale = null) => {
    const stored = await cached(urls.sha256);
    const [config, weights] = await Promise.all([cached(urls.config), cached(urls.weights)]);
    if (!stored || !config || !weights) return null;
    let sha256;
    try {
      sha256 = parseSha256(await stored.text());
    } catch {
      return null;
    }
    const bytes = new Uint8Array(await weights.arrayBuffer());
    onProgress?.(bytes.length, bytes.length, true);
    return { config: new Uint8Array(await config.arrayBuffer()), weights: bytes, sha256, fromCache: true, stale, keep: async () => {}, forget };
  };

  let sha256;
  try {
    sha256 = parseSha256(await (await fetchOk(urls.sha256, { cache: 'no-cache' })).text());
  } catch (e) {
    // Offline or the server gone (ModelMissing): the cached copy, quietly. Something that is not a sha256
    // (BadWeights: a captive portal's page): the cached copy, saying so.
    const copy = await cachedCopy(e.name === 'ModelMissing' ? null : `${urls.sha256} is not a sha256 file`);
    if (copy) return copy;
    throw e;
  }
  const stored = await cached(urls.sha256);
  if (stored && parseSha256(await stored.text()) === sha256) {
    const copy = await cachedCopy();
    if (copy) return copy;
  }
  let config;
  let weights;
  try {
    config = await readBytes(await fetchOk(urls.config, { cache: 'no-cache' }), urls.config);
    weights = await readBytes(await fetchOk(urls.weights, { cache: 'no-cache' }), urls.weights, (l, t) => onProgress?.(l, t, false));
  } catch (e) {
    // The model changed on the server but cannot be had now: the one cached before still runs.
    const copy = e.name === 'ModelMissing' ? await cachedCopy(e.message) : null;
    if (copy) return copy;
    throw e;
  }
  const keep = async () => {
    if (!cache) return;
    // `model.sha256` goes in last: it marks a complete entry, so an interrupted write is simply re-downloaded.
    const put = (url, bytes, type) => cache.put(url, new Response(bytes, { headers: { 'Content-Type': type, 'Content-Length': String(bytes.length) } }));
    try {
      await cache.delete(urls.sha256);
      await put(urls.config, config, 'application/json');
      await put(urls.weights, weights, 'application/octet-stream');
      await put(urls.sha256, new TextEncoder().encode(`${sha256}  model.safetensors\n`), 'text/plain');
    } catch (e) {
      if (e.name === 'QuotaExceededError') throw await quotaMessage(e, config.length + weights.length);
      throw e;
    }
  };
  return { config, weights, sha256, fromCache: false, stale: null, keep, forget };
}

/**
 * Every model folder in this browser's model cache: `[{folder, bytes, complete}]` (an incomplete one lacks the
 * `model.sha256` written last: it is downloaded again when next used).
 */
export async function cachedModels() {
  const cache = await openCache();
  if (!cache) return [];
  const folders = new Map();
  for (const request of await cache.keys()) {
    const folder = request.url.slice(0, request.url.lastIndexOf('/') + 1);
    const response = await cache.match(request);
    const entry = folders.get(folder) ?? { folder, bytes: 0, complete: false };
    entry.bytes += Number(response?.headers.get('Content-Length')) || 0;
    if (request.url.endsWith('/model.sha256')) entry.complete = true;
    folders.set(folder, entry);
  }
  return [...folders.values()];
}

/** Removes the model folder `folder` (a URL ending in `/`) from this browser's model cache. */
export async function forgetModel(folder) {
  const cache = await openCache();
  if (!cache) return;
  for (const request of await cache.keys()) {
    if (request.url.startsWith(folder) && !request.url.slice(folder.length).includes('/')) await cache.delete(request);
  }
}
