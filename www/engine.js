// The page's side of the engine: one Web Worker holding one model, restarted with the same model when the GPU
// device is lost or the wasm engine traps. The app and every <tessera-generator> on a page reach the engine
// through an EngineClient; their conversations and pictures stay with them, so a worker restart loses none of it.

import { ToWorker, FromWorker } from './protocol.js';

const named = (name, message) => Object.assign(new Error(message), { name });

/** After this many lost devices on one page the engine stays on the CPU. */
const GPU_LOSSES_TOLERATED = 3;

/** The bundled default model's folder. */
export const DEFAULT_MODEL = new URL('../models/tessera-shapes/', import.meta.url).href;

/** A model folder's URL, ending in `/`, from the address of the folder or of its config.json (relative to `base`). */
export function modelFolder(address, base) {
  const url = new URL(address, base);
  url.search = '';
  url.hash = '';
  const href = url.href.replace(/config\.json$/, '');
  return href.endsWith('/') ? href : `${href}/`;
}

/**
 * Why this page cannot run the engine of `workerUrl` on the model folder `modelUrl`, or `null`: browsers start
 * workers only from the page's own site, and models are read from the page's own site only (a model from
 * elsewhere would run whatever another site serves, and its weights would leave that site's logs a trail).
 */
export function originProblem(modelUrl, workerUrl = new URL('./worker.js', import.meta.url).href) {
  const here = location.origin;
  const engineOrigin = new URL(workerUrl).origin;
  if (engineOrigin !== here) {
    return `the engine is served from ${engineOrigin}, another site than this page's (${here}), and a browser starts an engine worker only from the page's own site: serve Tessera's files (www/, pkg/, models/) from ${here}`;
  }
  const modelOrigin = new URL(modelUrl).origin;
  if (modelOrigin !== here) {
    return `the model ${modelUrl} is on another site (${modelOrigin}), and models are read from this page's site (${here}) only: copy the model's folder to ${here}`;
  }
  return null;
}

export class EngineClient {
  #worker = null;
  #listeners = new Set();
  #nextId = 1;
  #queue = Promise.resolve(); // generations run one at a time, in the order they were asked for
  #running = null; // id of the generation the worker is running
  #cancelled = new Set(); // ids cancelled while still queued
  #preferGpu;
  #losses = 0; // GPU devices lost on this page
  #started = false; // the current worker has loaded a model: a crash from here on restarts it

  /** Starts the worker and loads the model folder at `modelUrl`. */
  constructor(modelUrl, { preferGpu = true } = {}) {
    this.modelUrl = modelUrl;
    /** What the worker loads when it has to be restarted: the model loaded last (`{url}` or `{files}`). */
    this.source = { url: modelUrl };
    this.ready = false;
    this.info = null;
    this.backend = null;
    this.loadError = null;
    this.#preferGpu = preferGpu;
    const problem = originProblem(modelUrl);
    if (problem) {
      this.loadError = named('OtherOrigin', problem);
      return;
    }
    this.#start(preferGpu);
  }

  /** `fn(message)` for every message from the worker, in order; returns the function that unsubscribes. */
  subscribe(fn) {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** A generation id unique to this client (callers that drive the worker with raw messages need one). */
  nextId() {
    return this.#nextId++;
  }

  post(message, transfer = []) {
    this.#worker.postMessage(message, transfer);
  }

  #start(preferGpu, fallbackReason, restarted = null) {
    this.#worker?.terminate();
    this.ready = false;
    this.#started = false;
    this.#worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    this.#worker.onmessage = ({ data }) => this.#receive(data);
    // An error nothing in the worker caught (a trap inside a wasm future): once a model ran, the worker is
    // replaced as for any crash; while the first model loads, it is that load's error.
    this.#worker.onerror = (e) => {
      e.preventDefault();
      const message = e.message || 'the engine stopped';
      if (this.#started) this.#receive({ type: FromWorker.CRASHED, id: null, message });
      else this.#receive({ type: FromWorker.ERROR, id: null, name: 'Internal', message: `the engine stopped while loading the model (${message})` });
    };
    this.post({ type: ToWorker.LOAD, source: this.source, preferGpu, fallbackReason, restarted });
  }

  #receive(data) {
    if (data.type === FromWorker.READY) {
      Object.assign(this, { ready: true, info: data.info, backend: data.backend, loadError: null, source: data.load });
      this.#started = true;
    }
    if (data.type === FromWorker.ERROR && data.id == null && !this.ready) this.loadError = named(data.name, data.message);
    // The old worker's wasm instance may be poisoned: a fresh one loads the model that was running, on the
    // GPU again after a lost device (a new device usually comes up), unless the GPU keeps being lost.
    if (data.type === FromWorker.DEVICE_LOST) {
      this.#losses += 1;
      const onCpu = this.#losses >= GPU_LOSSES_TOLERATED;
      const reason = onCpu ? `the GPU device was lost ${this.#losses} times` : null;
      this.#start(this.#preferGpu && !onCpu, reason, `the graphics device was lost (${data.message})`);
    }
    if (data.type === FromWorker.CRASHED) this.#start(this.#preferGpu && this.#losses < GPU_LOSSES_TOLERATED, null, `the engine stopped (${data.message})`);
    for (const fn of this.#listeners) fn(data);
  }

  /** Resolves once a model is loaded; rejects with the load error (a named Error) if loading failed. */
  whenReady() {
    if (this.ready) return Promise.resolve(this.info);
    if (this.loadError) return Promise.reject(this.loadError);
    return new Promise((resolve, reject) => {
      const off = this.subscribe(() => {
        if (this.ready) { off(); resolve(this.info); }
        else if (this.loadError) { off(); reject(this.loadError); }
      });
    });
  }

  /**
   * One text-to-image generation of `prompt` (what the model reads; `typed`, when given, is what the user
   * typed, recorded as the prompt) — an edit when `context` holds an image's tokens — queued behind any other.
   * `onRow(message)` sees each token row as it is painted, and each preview (`type` says which). Returns `{id, done}`; `done` resolves to
   * `{png: Blob, tokens, stats}` or rejects with a named Error (`AbortError` when cancelled).
   */
  generate({ prompt, typed = null, context = null, settings }, onRow) {
    const id = this.nextId();
    const done = this.#queue.then(() => this.#run(id, { prompt, typed, context, settings }, onRow));
    this.#queue = done.catch(() => {});
    return { id, done };
  }

  async #run(id, request, onRow) {
    await this.whenReady();
    if (this.#cancelled.delete(id)) throw named('AbortError', 'cancelled before it started');
    this.#running = id;
    try {
      return await new Promise((resolve, reject) => {
        const off = this.subscribe((m) => {
          if (m.type === FromWorker.DEVICE_LOST) { off(); reject(named('DeviceLost', m.message)); }
          if (m.type === FromWorker.CRASHED) { off(); reject(named('EngineCrashed', m.message)); }
          if (m.id !== id) return;
          if (m.type === FromWorker.TOKEN_ROW || m.type === FromWorker.PREVIEW) onRow?.(m);
          if (m.type === FromWorker.DONE) { off(); resolve({ png: new Blob([m.png], { type: 'image/png' }), tokens: m.tokens, stats: m.stats }); }
          if (m.type === FromWorker.STOPPED) { off(); reject(Object.assign(named('AbortError', `cancelled after ${m.stats.tokens} tokens`), { tokens: m.stats.tokens })); }
          if (m.type === FromWorker.ERROR) { off(); reject(named(m.name, m.message)); }
        });
        this.post({ type: ToWorker.GENERATE, id, ...request });
      });
    } finally {
      this.#running = null;
    }
  }

  /**
   * `text` read as the loaded model will read it: `{canonical, kind, edit, unknown, notes, note, scene,
   * understood}`. `picture` says a picture comes before it, `scene` what it shows (a previous reading's
   * `scene`, when known), `force` overrides the kind (`'new'` or `'edit'`). Rejects with a named Error
   * (`EmptyPrompt`, `PromptTooLong`, `PolicyRefused`).
   */
  async interpret(text, { picture = false, scene = null, force = null } = {}) {
    await this.whenReady();
    const reply = await this.#ask({ type: ToWorker.INTERPRET, text, picture, scene, force }, FromWorker.INTERPRETED, []);
    return reply.reading;
  }

  /**
   * An image's provenance claims and what its signature says of them: `{claims, signature}`, each `null` when
   * absent (`signature` as `readSignature` in credentials.js); rejects with a named Error for an unreadable file.
   */
  inspect(bytes) {
    return this.#ask({ type: ToWorker.INSPECT, bytes }, FromWorker.INSPECTED, [bytes]).then((m) => ({ claims: m.claims, signature: m.signature }));
  }

  /**
   * The engine's verdict on a PNG (`bytes`, transferred) made from `prompt`: it regenerates the picture from
   * its claims with the loaded model and compares (as `tessera verify`). Resolves to `{outcome, reason}`, or
   * `null` for a file without claims; rejects with a named Error.
   */
  async verify(bytes, prompt) {
    await this.whenReady();
    const reply = await this.#ask({ type: ToWorker.VERIFY, bytes, prompt }, FromWorker.VERIFIED, [bytes]);
    return reply.verdict;
  }

  /**
   * Posts `message` with a fresh id; resolves to the worker's `reply` for that id, or rejects with its named
   * error, or with `DeviceLost` when the worker is replaced before it answers.
   */
  #ask(message, reply, transfer) {
    const id = this.nextId();
    return new Promise((resolve, reject) => {
      const off = this.subscribe((m) => {
        if (m.type === FromWorker.DEVICE_LOST) { off(); reject(named('DeviceLost', m.message)); }
        if (m.type === FromWorker.CRASHED) { off(); reject(named('EngineCrashed', m.message)); }
        if (m.type !== reply || m.id !== id) return;
        off();
        if (m.name) reject(named(m.name, m.message));
        else resolve(m);
      });
      this.post({ ...message, id }, transfer);
    });
  }

  /** Stops generation `id` between two tokens, or drops it from the queue. */
  cancel(id) {
    if (this.#running === id) this.post({ type: ToWorker.CANCEL, id });
    else this.#cancelled.add(id);
  }
}
