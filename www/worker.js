// The engine's Web Worker: owns the wasm module and the loaded model, runs one generation at a time, and
// posts each finished token row as soon as it exists. Cancel is honoured between any two tokens.

import { ToWorker, FromWorker } from './protocol.js';
import { bindingProblem, fetchModel, namedError, parseSha256, streamBytes } from './models.js';
import { readSignature, sign } from './credentials.js';

let wasm = null; // the wasm-bindgen module
let engine = null;
let backend = { preferGpu: true, fallbackReason: null }; // what the page asked for
let info = null; // engine.info() of the loaded model
let current = null; // {id, cancelled}
let gpuDevice = null; // the GPUDevice wgpu asked for: to hear when it is lost, and to lose it on request
let lost = false;
let crashed = false; // the wasm instance trapped: its state may be held forever, so the page replaces this worker

const post = (msg, transfer = []) => self.postMessage(msg, transfer);
const fail = (id, name, message) => post({ type: FromWorker.ERROR, id, name, message });
/** The engine names its errors (`TesseraError::name`); plain `Error`s get `fallback`. */
const errorName = (e, fallback) => (e.name && e.name !== 'Error' ? e.name : fallback);
/** A failure while the engine steps: a wasm trap (`RuntimeError`) is unnamed too, and is `Internal`. */
const failureName = (e, fallback) => (e.name === 'RuntimeError' ? 'Internal' : errorName(e, fallback));
/** On the GPU path a trap or a failed readback means the device failed: the worker reports it lost. */
const deviceFailed = (name) => engine.backend === 'webgpu' && (name === 'Internal' || name === 'DeviceError');
/** A wasm trap (a panic inside the engine): the instance cannot be trusted again. */
const trapped = (e) => e instanceof WebAssembly.RuntimeError;

// wgpu requests the device inside the wasm; wrapping requestDevice hands the worker the same GPUDevice, so a
// loss (driver reset, GPU process crash, tab backgrounded on some systems) is heard even between generations.
if (self.GPUAdapter) {
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await requestDevice.apply(this, args);
    gpuDevice = device;
    device.lost.then((why) => deviceLost(`${why.reason ?? 'unknown'}: ${why.message || 'no details'}`));
    return device;
  };
}

/** Reported once; the page then replaces this worker (and its possibly poisoned wasm instance). */
function deviceLost(message) {
  if (lost || crashed) return;
  lost = true;
  post({ type: FromWorker.DEVICE_LOST, id: current?.id ?? null, message: message.split('\n')[0] });
}

/** Reported once; the page then replaces this worker with one that loads the same model. */
function crash(e) {
  if (lost || crashed) return;
  crashed = true;
  post({ type: FromWorker.CRASHED, id: current?.id ?? null, message: String(e.message ?? e).split('\n')[0] });
}

/** The end of a failed engine call: a trap or a lost device replaces this worker, anything else is `fail`ed. */
function failed(e, fallback, fail) {
  const name = failureName(e, fallback);
  if (engine && deviceFailed(name)) return deviceLost(e.message ?? String(e));
  if (trapped(e)) return crash(e);
  return fail(name, e.message ?? String(e));
}

// A macrotask boundary: lets queued messages (cancel) run between tokens even when a step never awaits
// real I/O (the CPU backend resolves readbacks immediately).
const channel = new MessageChannel();
const waiting = [];
channel.port1.onmessage = () => waiting.shift()?.();
const yieldToEvents = () => new Promise((resolve) => { waiting.push(resolve); channel.port2.postMessage(null); });

/** The most of a generation's time previews may take (codecs that are not row-causal). */
const PREVIEW_SHARE = 0.2;

/** The largest buffer the GPU binds (cubecl asks wgpu for the adapter's limits), or 0 when unknown. */
async function gpuBindingLimit() {
  if (gpuDevice) return gpuDevice.limits.maxStorageBufferBindingSize;
  const adapter = await self.navigator.gpu?.requestAdapter().catch(() => null);
  return adapter?.limits.maxStorageBufferBindingSize ?? 0;
}

/**
 * An engine for model files (`{config, tokenizer, files: [{name, sha256, url, total, open}], copy}`), each
 * weight file streamed into it as it arrives; the engine checks every tensor's name and shape the moment a
 * file's header is in, and its sha256 as the bytes pass. Where it runs is decided from the config before any
 * weight is fetched (`backendFor`). Progress counts the bytes of all files.
 */
async function createEngine(model, onProgress) {
  const started = performance.now();
  const wasmBytesBefore = wasm.wasmMemoryBytes();
  const weightBytes = model.files.every((f) => f.total) ? model.files.reduce((n, f) => n + f.total, 0) : 0;
  const { gpu, reason } = await backendFor(wasm.modelNeeds(model.config), weightBytes);
  let loader = await wasm.Loader.start(model.config, gpu);
  let done = 0; // bytes of the files already loaded
  try {
    for (const file of model.files) {
      loader.beginFile(file.name, file.sha256);
      const response = await file.open();
      const length = Number(response.headers.get('Content-Length')) || file.total;
      const progress = (loaded) => onProgress?.(done + loaded, weightBytes || (model.files.length === 1 ? length : 0));
      done += await streamBytes(response, file.url, (piece) => loader.push(piece), { onProgress: progress, copy: model.copy(file, length), total: length });
      loader.endFile();
    }
    const peakPartialBytes = loader.peakPartialBytes;
    const next = loader.finish(model.tokenizer ?? undefined);
    loader = null; // `finish` consumed it
    // What loading cost: wasm memory only grows, so its size now is the peak so far.
    const loading = { ms: performance.now() - started, wasmBytesBefore, wasmBytes: wasm.wasmMemoryBytes(), peakPartialBytes };
    return { next, bytes: done, loading, reason: reason ?? next.fallbackReason ?? (self.navigator.gpu ? null : 'this browser has no WebGPU') };
  } finally {
    loader?.free();
  }
}

/** The most memory a model may take on the CPU backend: wasm32 addresses 4 GiB, and generating needs room. */
const CPU_MODEL_LIMIT = 3 * 2 ** 30;

/**
 * Where a model that `needs` (`wasm.modelNeeds`) and whose files hold `weightBytes` (0: not known) can run:
 * `{gpu, reason}`. The GPU when the page asked for it and its largest tensor fits one buffer; else the CPU,
 * where the weights must fit wasm memory — otherwise a `ModelTooLarge` error naming both limits, before any
 * weight is fetched.
 */
async function backendFor(needs, weightBytes) {
  let reason = backend.fallbackReason;
  if (backend.preferGpu && self.navigator.gpu) {
    const problem = bindingProblem(needs.largestTensor, await gpuBindingLimit());
    if (!problem) return { gpu: true, reason };
    reason = problem;
  }
  // On the CPU the linear layers stay in the files' dtype: about the files' size (f32 when not known).
  const cpuBytes = weightBytes || needs.f32Bytes;
  if (cpuBytes > CPU_MODEL_LIMIT) {
    const gb = (n) => `${(n / 1e9).toFixed(1)} GB`;
    const gpuPart = reason ? `; it cannot run on the GPU either: ${reason}` : '';
    throw namedError('ModelTooLarge', `this model (${(needs.parameters / 1e9).toFixed(2)} G parameters) needs about ${gb(cpuBytes)} of memory on the CPU, more than the ${gb(CPU_MODEL_LIMIT)} a page's WebAssembly can give it${gpuPart}`);
  }
  return { gpu: false, reason };
}

/** Whether the engine refused these bytes themselves (not the memory or the device they were loaded on). */
const badBytes = (e) => e.name === 'BadWeights' || e.name === 'BadConfig';

/**
 * An engine for the model folder at a URL. A cached copy is dropped only when the engine refuses its bytes
 * (sha256, parse, shapes), and is then downloaded again, once; a copy that fails for any other reason
 * (memory, GPU) stays for the next try. A download of a changed model that stops part-way falls back to the
 * copy cached earlier, and the files it staged whole stay for the next load to resume from; staged files the
 * engine refuses are downloaded again, once.
 */
async function engineFromUrl(modelUrl) {
  const base = modelUrl.endsWith('/') ? modelUrl : `${modelUrl}/`;
  const attempt = async (files) => {
    const progress = (loaded, total) => post({ type: FromWorker.PROGRESS, loaded, total, cached: files.fromCache });
    try {
      return { files, made: await createEngine(files, progress) };
    } catch (e) {
      await files.discard({ keepWhole: !badBytes(e) });
      throw e;
    }
  };
  let files = await fetchModel(base);
  let result;
  try {
    result = await attempt(files);
  } catch (e) {
    const again = files.fromCache && badBytes(e) ? (await files.forget(), await fetchModel(base))
      : files.resumed && badBytes(e) ? await fetchModel(base)
      : !files.fromCache && e.name === 'ModelMissing' ? await files.fallback(e.message) : null;
    if (!again) throw e;
    result = await attempt(again);
  }
  ({ files } = result);
  const cacheProblem = await files.keep().then(() => null, (e) => e.message ?? String(e));
  const source = { url: base, fromCache: files.fromCache, bytes: result.made.bytes, stale: files.stale ?? null };
  return { ...result.made, source, cacheProblem };
}

/** Model files the user picked, as Blobs (`File`s): `{config, weights, sha256, name}`. */
async function engineFromFiles({ config, weights, sha256, name }) {
  const [c, h] = await Promise.all([config.arrayBuffer(), sha256.text()]);
  const file = { name: 'model.safetensors', sha256: parseSha256(h), url: name, total: weights.size, open: async () => new Response(weights) };
  const made = await createEngine({ config: new Uint8Array(c), tokenizer: null, files: [file], copy: () => null }, null);
  return { ...made, source: { file: name, fromCache: false, bytes: made.bytes } };
}

/** An engine for `source` (`{url}` or `{files}`), as the page's LOAD and REPLACE messages give it. */
const engineFrom = (source) => (source.url ? engineFromUrl(source.url) : engineFromFiles(source.files));

/** `load` is the source to start again from when this worker has to be replaced. */
function ready(made, load, restarted = null) {
  engine?.free();
  engine = made.next;
  info = { ...engine.info(), source: made.source, loading: made.loading };
  post({
    type: FromWorker.READY, backend: engine.backend, fallbackReason: made.reason, restarted,
    cacheProblem: made.cacheProblem ?? null, load, info,
  });
}

async function loadWasm() {
  if (wasm) return;
  const module = await import('../pkg/tessera.js');
  await module.default();
  wasm = module;
}

async function load({ source, preferGpu, fallbackReason, restarted }) {
  backend = { preferGpu, fallbackReason };
  try {
    await loadWasm();
  } catch (e) {
    return fail(null, 'WasmMissing', String(e));
  }
  try {
    ready(await engineFrom(source), source, restarted);
  } catch (e) {
    fail(null, failureName(e, 'ModelMissing'), e.message ?? String(e));
  }
}

/** Another model, from a URL or from files: it replaces the current one only once the engine accepted it. */
async function replace({ source }) {
  if (current) return post({ type: FromWorker.REFUSED, name: 'Busy', message: 'a generation is running' });
  try {
    ready(await engineFrom(source), source);
  } catch (e) {
    if (trapped(e)) return crash(e); // the model that was loaded before comes back in a fresh worker
    post({ type: FromWorker.REFUSED, name: errorName(e, 'BadWeights'), message: e.message ?? String(e) });
  }
}

/** A message read as the loaded model will read it (`interpret`); refused when empty, too long or by the policy. */
function interpret({ id, text, picture, scene, force }) {
  const answer = (reply) => post({ type: FromWorker.INTERPRETED, id, ...reply });
  if (!engine) return answer({ name: 'ModelMissing', message: 'the model is not loaded yet' });
  try {
    return answer({ reading: engine.interpret(text, picture, scene ? JSON.stringify(scene) : undefined, force ?? undefined) });
  } catch (e) {
    return failed(e, 'Internal', (name, message) => answer({ name, message }));
  }
}

async function generate({ id, prompt, typed, context, settings }) {
  if (!engine) return fail(id, 'ModelMissing', 'the model is not loaded yet');
  if (current) return fail(id, 'Busy', 'a generation is already running');
  current = { id, cancelled: false };
  const s = settings;
  try {
    // A setting left null is the engine's default (engine.info().defaults).
    const given = (v) => v ?? undefined;
    engine.start(prompt, typed ?? undefined, context ?? undefined, s.seed, given(s.temperature), given(s.topK), given(s.topP), given(s.guidance), given(s.keep));
    const start = performance.now();
    let firstRowMs = null;
    let tokens = 0;
    const stats = () => {
      const ms = performance.now() - start;
      return { ms, firstRowMs, firstPreviewMs, previewMs, tokens, tokensPerSec: tokens / (ms / 1000), backend: engine.backend };
    };
    let firstPreviewMs = null;
    let previewMs = 0; // time spent on previews so far
    // A codec that is not row-causal: after a finished token row, the whole picture so far, as long as
    // previews have taken at most PREVIEW_SHARE of the time.
    const previewDue = (step) => !info.rowsFinal && tokens % info.grid === 0 && tokens < step.total
      && previewMs <= PREVIEW_SHARE * (performance.now() - start);
    // Stopped or done, the picture so far is signed and sent.
    const finish = async (type) => {
      const made = { tokens: engine.tokens(), stats: stats() };
      const { png, signing } = await signed(engine.png());
      post({ type, id, png, ...made, stats: { ...made.stats, ...signing } }, [png.buffer]);
    };
    for (;;) {
      await yieldToEvents();
      if (lost || crashed) break; // the page is replacing this worker
      if (current.cancelled) {
        await finish(FromWorker.STOPPED);
        break;
      }
      const step = await engine.step();
      if (step === null) {
        await finish(FromWorker.DONE);
        break;
      }
      tokens = step.index + 1;
      if (step.rgba) {
        firstRowMs ??= performance.now() - start;
        const rows = step.total / info.grid;
        post({
          type: FromWorker.TOKEN_ROW, id, row: step.row, rows, y0: step.y0, height: step.height,
          rgba: step.rgba, tokens, ms: performance.now() - start,
        }, [step.rgba.buffer]);
      } else if (previewDue(step)) {
        const began = performance.now();
        const preview = await engine.preview();
        previewMs += performance.now() - began;
        if (preview) {
          firstPreviewMs ??= performance.now() - start;
          post({
            type: FromWorker.PREVIEW, id, rows: preview.rows, of: step.total / info.grid, rgba: preview.rgba, tokens,
            ms: performance.now() - start,
          }, [preview.rgba.buffer]);
        }
      }
    }
  } catch (e) {
    failed(e, 'Internal', (name, message) => fail(id, name, message));
  } finally {
    current = null;
  }
}

/**
 * The engine's PNG with this browser's signed Content Credentials: `{png, signing: {signMs}}`, or, where
 * signing fails, the PNG with its XMP claims alone and `signing: {signError}` (the picture is never lost).
 */
async function signed(png) {
  try {
    const { png: signedPng, ms } = await sign(png, wasm.readProvenance(png));
    return { png: signedPng, signing: { signMs: ms } };
  } catch (e) {
    return { png, signing: { signError: e.message || e.name || String(e) } };
  }
}

/** What the file's signature says of its claims (see `readSignature`); a manifest that cannot be read says why. */
async function signatureOf(image, claims) {
  if (!claims) return null;
  try {
    return await readSignature(image, claims);
  } catch (e) {
    return { valid: false, problem: e.message ?? String(e) };
  }
}

async function inspect({ id, bytes }) {
  try {
    await loadWasm();
    const image = new Uint8Array(bytes);
    const size = wasm.probeImage(image); // the pixel budget, before the page decodes it
    const claims = size.format === 'png' ? wasm.readProvenance(image) : null;
    post({ type: FromWorker.INSPECTED, id, size, claims, signature: await signatureOf(image, claims) });
  } catch (e) {
    post({ type: FromWorker.INSPECTED, id, name: errorName(e, 'BadImage'), message: e.message ?? String(e) });
  }
}

/**
 * The engine's verdict on a PNG's claims: it redraws the picture with the loaded model (a generation like any
 * other, one token at a time, so a lost device is heard) and compares; no other generation runs meanwhile.
 */
async function verify({ id, bytes, prompt }) {
  const answer = (reply) => post({ type: FromWorker.VERIFIED, id, ...reply });
  if (!engine) return answer({ name: 'ModelMissing', message: 'the model is not loaded yet' });
  if (current) return answer({ name: 'Busy', message: 'a generation is running' });
  current = { id, cancelled: false };
  try {
    const image = new Uint8Array(bytes);
    const claims = wasm.readProvenance(image);
    const signature = await signatureOf(image, claims);
    // VERIFIED needs a valid signature over the very claims the XMP states.
    const decided = engine.startVerification(image, prompt, Boolean(signature && signature.problem === null));
    if (decided !== undefined) return answer({ verdict: decided });
    for (;;) {
      await yieldToEvents();
      if (lost || crashed) return undefined; // the page is replacing this worker
      if ((await engine.step()) === null) break;
    }
    return answer({ verdict: engine.finishVerification() });
  } catch (e) {
    return failed(e, 'BadImage', (name, message) => answer({ name, message }));
  } finally {
    current = null;
  }
}

async function encode({ id, bytes }) {
  if (!engine) return fail(id, 'ModelMissing', 'the model is not loaded yet');
  try {
    const tokens = await engine.encode(new Uint8Array(bytes));
    const rgba = await engine.decode(tokens);
    post({ type: FromWorker.ENCODED, id, tokens, rgba, size: info.imageSize }, [rgba.buffer]);
  } catch (e) {
    failed(e, 'BadImage', (name, message) => fail(id, name, message));
  }
}

self.onmessage = ({ data }) => {
  switch (data.type) {
    case ToWorker.LOAD: return load(data);
    case ToWorker.INTERPRET: return interpret(data);
    case ToWorker.GENERATE: return generate(data);
    case ToWorker.CANCEL: if (current && current.id === data.id) current.cancelled = true; return undefined;
    case ToWorker.ENCODE: return encode(data);
    case ToWorker.REPLACE: return replace(data);
    case ToWorker.INSPECT: return inspect(data);
    case ToWorker.VERIFY: return verify(data);
    case ToWorker.LOSE_DEVICE: return gpuDevice?.destroy();
    case ToWorker.TRAP: try { return engine?.trap(); } catch (e) { return crash(e); }
    default: return fail(data.id ?? null, 'Protocol', `unknown message type ${data.type}`);
  }
};
