// Model files for the engine's worker: a model folder (`config.json`, the weight files its `model.sha256`
// lists — `model.safetensors`, or a converted Janus folder's shards — and a Janus model's `tokenizer.json`)
// fetched once with byte-accurate progress and kept in a Cache Storage entry of its own, which app updates
// never touch. The weights stream into the engine as they arrive (never held whole); a copy of each byte goes
// to a staging entry, which becomes the cached model only after the engine has accepted it (names, shapes,
// sha256), so a bad download never replaces a good copy. A staged file is whole or absent (the cache stores a
// streamed body only once it ends), so a download that stops part-way resumes at the first file not staged.
// No DOM here: the worker and Node's tests import it.

import { storageSpace } from './db.js';

/** The cache's name carries the layout of its entries, not the app's version. */
export const MODEL_CACHE = 'tessera-models-v1';

/** A named error the page knows how to explain (`www/protocol.js`). */
export function namedError(name, message) {
  return Object.assign(new Error(message), { name });
}

/** The expected sha256 from a `model.sha256` file (`<hex>  model.safetensors`, as sha256sum writes it). */
export function parseSha256(text) {
  return parseSha256List(text)[0].sha256;
}

/**
 * The weight files a `model.sha256` list names, in its order: `[{name, sha256}]` (`<hex>  <file>` lines, as
 * sha256sum writes them; a bare hash is `model.safetensors`'s).
 */
export function parseSha256List(text) {
  const files = text.split('\n').filter((line) => line.trim()).map((line) => {
    const [hex, name = 'model.safetensors'] = line.trim().split(/\s+/);
    if (!/^[0-9a-f]{64}$/i.test(hex)) throw namedError('BadWeights', 'model.sha256 does not hold a sha256 (64 hex digits)');
    const file = name.replace(/^\*/, '');
    if (!/^[\w.-]+$/.test(file)) throw namedError('BadWeights', `model.sha256 names ${JSON.stringify(file)}, not a file of the folder`);
    return { name: file, sha256: hex.toLowerCase() };
  });
  if (!files.length) throw namedError('BadWeights', 'model.sha256 does not hold a sha256 (64 hex digits)');
  return files;
}

/** Whether `config.json`'s bytes are a Janus folder's (which reads text with its `tokenizer.json`). */
export function isJanusConfig(config) {
  try {
    const json = JSON.parse(new TextDecoder().decode(config));
    return json.model_type === 'multi_modality' || 'language_config' in json;
  } catch {
    return false; // the engine names what is wrong with it
  }
}

/**
 * Why a model whose largest tensor is `largest` (`{name, bytes}` as the GPU holds it, from the engine's
 * `modelNeeds`) cannot run on a GPU whose buffers bind at most `limit` bytes, or null when it can. The engine
 * allocates each weight tensor as one storage buffer, so one larger tensor cannot run there.
 */
export function bindingProblem(largest, limit) {
  const { name, bytes } = largest;
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

/**
 * A response's body, piece by piece as it arrives, into `sink(piece)` (awaited: a slow sink slows the download
 * instead of piling it up in memory), reporting `(loaded, total)`; with `copy` (a stream writer) every piece is
 * written there too, and a copy that fails (a full disk) only stops copying. Resolves with the bytes read; a
 * body shorter than announced is a `ModelMissing` error. `total` defaults to the Content-Length.
 */
export async function streamBytes(response, url, sink, { onProgress, copy, total } = {}) {
  total ??= Number(response.headers.get('Content-Length')) || 0;
  let loaded = 0;
  let copying = Boolean(copy);
  const stopped = () => `the download of ${url} stopped after ${loaded}${total ? ` of ${total}` : ''} bytes`;
  const reader = response.body.getReader();
  try {
    for (;;) {
      let part;
      try {
        part = await reader.read();
      } catch (e) {
        throw namedError('ModelMissing', `${stopped()} (${e.message})`);
      }
      if (part.done) break;
      if (copying) await copy.write(part.value).catch(() => { copying = false; });
      await sink(part.value);
      loaded += part.value.length;
      onProgress?.(loaded, total);
    }
    if (total && loaded !== total) throw namedError('ModelMissing', stopped());
  } catch (e) {
    reader.cancel().catch(() => {});
    copy?.abort(e).catch(() => {});
    throw e;
  }
  await copy?.close().catch(() => {});
  return loaded;
}

/** A response's bytes, reporting `(loaded, total)` as they arrive; a body shorter than announced is an error. */
export async function readBytes(response, url, onProgress) {
  const chunks = [];
  const loaded = await streamBytes(response, url, (piece) => { chunks.push(piece); }, { onProgress });
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
 * The model folder at `base` (a URL ending in `/`), its weights not yet read: `{config, tokenizer, files,
 * fromCache, resumed, stale, copy, keep, discard, forget, fallback}`. `files` are the weight files
 * `model.sha256` lists, in its order: `{name, sha256, url, total, open, staged}`, where `open()` resolves to a
 * Response whose body streams the file and `total` is its size when known. From the network, `copy(file)`
 * gives a writer for `streamBytes` that stages every byte in the cache; a file staged whole by an earlier load
 * that stopped (`staged`; `resumed` when any is) is read from there instead of the network. `keep()` makes the
 * staged copies the cached model once the engine has accepted them (rejecting with a `QuotaExceededError` that
 * says the space needed, also when `storage.estimate()` said before the download that there is no room, and
 * nothing was staged), `discard({keepWhole})` drops them (with `keepWhole`, the files staged whole stay for the
 * next load to resume from); `forget()` drops a cached copy whose bytes the engine refused; `fallback(why)` is
 * the copy cached earlier, if any, for a download that failed part-way (`stale` then says why it may be an
 * older model).
 *
 * Online, `model.sha256` is always asked for again, so a changed model is downloaded. The cached copy is used
 * offline, when the server is gone, when what comes back is not a sha256 (a captive portal's login page), and
 * when the download of a changed model fails.
 */
export async function fetchModel(base) {
  const at = (name) => `${base}${name}`;
  const urls = { config: at('config.json'), sha256: at('model.sha256'), tokenizer: at('tokenizer.json') };
  /** Where a file is staged until the engine accepts it: its sha256 is in the key, so another version's is never taken for it. */
  const staged = (file) => `${file.url}?incoming=${file.sha256}`;
  const cache = await openCache();
  const cached = async (url) => (await cache?.match(url)) ?? null;
  const forget = () => forgetModel(base);
  const nothing = async () => {};
  /** The complete cached copy, if there is one (`model.sha256` is written last, so it marks one). */
  const cachedCopy = async (stale = null) => {
    const stored = await cached(urls.sha256);
    const config = await cached(urls.config);
    if (!stored || !config) return null;
    let list;
    try {
      list = parseSha256List(await stored.text());
    } catch {
      return null;
    }
    const weights = await Promise.all(list.map(({ name }) => cached(at(name))));
    if (weights.some((w) => !w)) return null;
    const configBytes = new Uint8Array(await config.arrayBuffer());
    const tokenizer = isJanusConfig(configBytes) ? await cached(urls.tokenizer) : null;
    const files = list.map((file, i) => ({
      ...file, url: at(file.name), total: Number(weights[i].headers.get('Content-Length')) || 0, open: async () => weights[i],
    }));
    return {
      config: configBytes, tokenizer: tokenizer && new Uint8Array(await tokenizer.arrayBuffer()), files,
      fromCache: true, resumed: false, stale, copy: () => null, keep: nothing, discard: nothing, forget, fallback: async () => null,
    };
  };

  let listText;
  let list;
  try {
    listText = await (await fetchOk(urls.sha256, { cache: 'no-cache' })).text();
    list = parseSha256List(listText);
  } catch (e) {
    // Offline or the server gone (ModelMissing): the cached copy, quietly. Something that is not a sha256
    // (BadWeights: a captive portal's page): the cached copy, saying so.
    const copy = await cachedCopy(e.name === 'ModelMissing' ? null : `${urls.sha256} is not a sha256 file`);
    if (copy) return copy;
    throw e;
  }
  const stored = await cached(urls.sha256);
  if (stored && (await stored.text()).trim() === listText.trim()) {
    const copy = await cachedCopy();
    if (copy) return copy;
  }
  let config;
  let tokenizer = null;
  let files;
  try {
    config = await readBytes(await fetchOk(urls.config, { cache: 'no-cache' }), urls.config);
    if (isJanusConfig(config)) tokenizer = await readBytes(await fetchOk(urls.tokenizer, { cache: 'no-cache' }), urls.tokenizer);
    // Several files: their sizes first, for one progress over all of them (a server that does not say
    // leaves it counting bytes only).
    const size = async (url) => Number((await fetch(url, { method: 'HEAD', cache: 'no-cache' }).catch(() => null))?.headers.get('Content-Length')) || 0;
    files = await Promise.all(list.map(async ({ name, sha256 }) => {
      const file = { name, sha256, url: at(name) };
      const whole = await cached(staged(file));
      if (whole) return { ...file, staged: true, total: Number(whole.headers.get('Content-Length')) || 0, open: async () => (await cached(staged(file))) ?? fetchOk(file.url, { cache: 'no-cache' }) };
      return { ...file, staged: false, total: list.length > 1 ? await size(file.url) : 0, open: () => fetchOk(file.url, { cache: 'no-cache' }) };
    }));
  } catch (e) {
    // The model changed on the server but cannot be had now: the one cached before still runs.
    const copy = e.name === 'ModelMissing' ? await cachedCopy(e.message) : null;
    if (copy) return copy;
    throw e;
  }
  const bytes = () => config.length + (tokenizer?.length ?? 0) + files.reduce((n, f) => n + f.total, 0);
  // Staged copies of files this version does not list (an earlier version's interrupted download).
  const wantedStaged = new Set(files.map(staged));
  for (const request of (await cache?.keys()) ?? []) {
    if (request.url.startsWith(base) && request.url.includes('?incoming') && !wantedStaged.has(request.url)) await cache.delete(request);
  }
  // No room for a copy (the sizes are known and the browser says what is left): the model runs, uncached.
  const space = cache && files.every((f) => f.total) ? await storageSpace() : null;
  const unstaged = files.filter((f) => !f.staged).reduce((n, f) => n + f.total, 0);
  const noRoom = Boolean(space) && unstaged > space.quota - space.usage;
  const staging = new Map(); // file URL → the cache's write of its staged copy: resolves to null, or the error that stopped it
  const copy = (file, total) => {
    if (!cache || noRoom || file.staged) return null;
    const { readable, writable } = new TransformStream();
    const headers = { 'Content-Type': 'application/octet-stream', ...(total ? { 'Content-Length': String(total) } : {}) };
    staging.set(file.url, cache.put(staged(file), new Response(readable, { headers })).then(() => null, (e) => e));
    return writable.getWriter();
  };
  const discard = async ({ keepWhole = false } = {}) => {
    const outcomes = new Map(await Promise.all([...staging].map(async ([url, write]) => [url, await write])));
    // Kept: files staged by an earlier load, and those this one stored whole (their write resolved to null).
    const drop = keepWhole ? files.filter((f) => !f.staged && outcomes.get(f.url) !== null) : files;
    await Promise.all(drop.map((f) => cache?.delete(staged(f))));
  };
  const keep = async () => {
    if (!cache) return;
    if (noRoom) throw await quotaMessage(namedError('QuotaExceededError', 'checked before the download'), bytes());
    const failed = (await Promise.all(files.map((f) => (f.staged ? null : staging.get(f.url) ?? new Error('the download was not copied into the cache'))))).find(Boolean);
    if (failed) {
      await discard();
      if (failed.name === 'QuotaExceededError') throw await quotaMessage(failed, bytes());
      throw failed;
    }
    // `model.sha256` goes in last: it marks a complete entry, so an interrupted write is simply re-downloaded.
    const put = (url, body, type) => cache.put(url, new Response(body, { headers: { 'Content-Type': type, 'Content-Length': String(body.length) } }));
    try {
      await cache.delete(urls.sha256);
      await put(urls.config, config, 'application/json');
      if (tokenizer) await put(urls.tokenizer, tokenizer, 'application/json');
      for (const file of files) {
        await cache.put(file.url, await cache.match(staged(file)));
        await cache.delete(staged(file));
      }
      // Files of an earlier version of the model that this one no longer lists.
      const wanted = new Set([urls.config, urls.tokenizer, urls.sha256, ...files.map((f) => f.url)]);
      for (const request of await cache.keys()) {
        const name = request.url.slice(base.length);
        if (request.url.startsWith(base) && !name.includes('/') && !name.includes('?') && !wanted.has(request.url)) await cache.delete(request);
      }
      await put(urls.sha256, new TextEncoder().encode(listText), 'text/plain');
    } catch (e) {
      if (e.name === 'QuotaExceededError') throw await quotaMessage(e, bytes());
      throw e;
    }
  };
  const resumed = files.some((f) => f.staged);
  return { config, tokenizer, files, fromCache: false, resumed, stale: null, copy, keep, discard, forget, fallback: cachedCopy };
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
