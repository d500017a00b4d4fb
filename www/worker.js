// The engine's Web Worker: owns the wasm module and the loaded model, runs one generation at a time, and
// posts each finished token row as soon as it exists. Cancel is honoured between any two tokens.

import { ToWorker, FromWorker } from './protocol.js';
import { bindingProblem, fetchModel, parseSha256 } from './models.js';

let wasm = null; // the wasm-bindgen module
let engine = null;
let backend = { preferGpu: true, fallbackReason: null }; // what the page asked for
let info = null; // engine.info() of the loaded model
let current = null; // {id, cancelled}
let gpuDevice = null; // the GPUDevice wgpu asked for: to hear when it is lost, and to lose it on request
let lost = false;

const post = (msg, transfer = []) => self.postMessage(msg, transfer);
const fail = (id, name, message) => post({ type: FromWorker.ERROR, id, name, message });
/** The engine names its errors (`TesseraError::name`); plain `Error`s get `fallback`. */
const errorName = (e, fallback) => (e.name && e.name !== 'Error' ? e.name : fallback);
/** A failure while the engine steps: a wasm trap (`RuntimeError`) is unnamed too, and is `Internal`. */
const failureName = (e, fallback) => (e.name === 'RuntimeError' ? 'Internal' : errorName(e, fallback));
/** On the GPU path a trap or a failed readback means the device failed: the worker reports it lost. */
const deviceFailed = (name) => engine.backend === 'webgpu' && (name === 'Internal' || name === 'DeviceError');

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

/** Reported once; the page then replaces this worker (and its possibly poisoned wasm instance) with a CPU one. */
function deviceLost(message) {
  if (lost) return;
  lost = true;
  post({ type: FromWorker.DEVICE_LOST, id: current?.id ?? null, message: message.split('\n')[0] });
}

// A macrotask boundary: lets queued messages (cancel) run between tokens even when a step never awaits
// real I/O (the CPU backend resolves readbacks immediately).
const channel = new MessageChannel();
const waiting = [];
channel.port1.onmessage = () => waiting.shift()?.();
const yieldToEvents = () => new Promise((resolve) => { waiting.push(resolve); channel.port2.postMessage(null); });

/** The largest buffer the GPU binds (cubecl asks wgpu for the adapter's limits), or 0 when unknown. */
async function gpuBindingLimit() {
  if (gpuDevice) return gpuDevice.limits.maxStorageBufferBindingSize;
  const adapter = await self.navigator.gpu?.requestAdapter().catch(() => null);
  return adapter?.limits.maxStorageBufferBindingSize ?? 0;
}

/**
 * An engine for these model files; the engine checks the sha256 and every tensor's name and shape. Weights
 * with a tensor too large for one GPU buffer run on the CPU, and the reason says which tensor.
 */
async function createEngine(files) {
  let gpu = backend.preferGpu && !!self.navigator.gpu;
  let reason = backend.fallbackReason;
  if (gpu) {
    const problem = bindingProblem(files.weights, await gpuBindingLimit());
    if (problem) [gpu, reason] = [false, problem];
  }
  const next = await wasm.Engine.load(files.config, files.weights, files.sha256, gpu);
  return { next, reason: reason ?? next.fallbackReason ?? (self.navigator.gpu ? null : 'this browser has no WebGPU') };
}

/** Model files from a folder URL; a cached copy the engine refuses is dropped and downloaded again, once. */
async function engineFromUrl(modelUrl) {
  const base = modelUrl.endsWith('/') ? modelUrl : `${modelUrl}/`;
  const progress = (loaded, total, cached) => post({ type: FromWorker.PROGRESS, loaded, total, cached });
  let files = await fetchModel(base, progress);
  let made;
  try {
    made = await createEngine(files);
  } catch (e) {
    if (!files.fromCache) throw e;
    await files.forget();
    files = await fetchModel(base, progress);
    made = await createEngine(files);
  }
  await files.keep().catch(() => {}); // a full or unavailable cache only costs the next visit a download
  return { ...made, source: { url: base, fromCache: files.fromCache, bytes: files.weights.length } };
}

/** Model files the user picked: `{config, weights: ArrayBuffer, sha256: string}`. */
async function engineFromFiles({ config, weights, sha256, name }) {
  const files = { config: new Uint8Array(config), weights: new Uint8Array(weights), sha256: parseSha256(sha256) };
  return { ...(await createEngine(files)), source: { file: name, fromCache: false, bytes: files.weights.length } };
}

function ready(made) {
  engine?.free();
  engine = made.next;
  info = { ...engine.info(), source: made.source };
  post({ type: FromWorker.READY, backend: engine.backend, fallbackReason: made.reason, info });
}

async function loadWasm() {
  if (wasm) return;
  const module = await import('../pkg/tessera.js');
  await module.default();
  wasm = module;
}

async function load({ modelUrl, preferGpu, fallbackReason }) {
  backend = { preferGpu, fallbackReason };
  try {
    await loadWasm();
  } catch (e) {
    return fail(null, 'WasmMissing', String(e));
  }
  try {
    ready(await engineFromUrl(modelUrl));
  } catch (e) {
    fail(null, errorName(e, 'ModelMissing'), e.message ?? String(e));
  }
}

/** Another model, from a URL or from files: it replaces the current one only once the engine accepted it. */
async function replace({ source }) {
  if (current) return post({ type: FromWorker.REFUSED, name: 'Busy', message: 'a generation is running' });
  try {
    ready(source.url ? await engineFromUrl(source.url) : await engineFromFiles(source.files));
  } catch (e) {
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
    return answer({ name: errorName(e, 'Internal'), message: e.message ?? String(e) });
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
      return { ms, firstRowMs, tokens, tokensPerSec: tokens / (ms / 1000), backend: engine.backend };
    };
    for (;;) {
      await yieldToEvents();
      if (lost) break; // the page is replacing this worker
      if (current.cancelled) {
        const png = engine.png();
        post({ type: FromWorker.STOPPED, id, png, tokens: engine.tokens(), stats: stats() }, [png.buffer]);
        break;
      }
      const step = await engine.step();
      if (step === null) {
        const png = engine.png();
        post({ type: FromWorker.DONE, id, png, tokens: engine.tokens(), stats: stats() }, [png.buffer]);
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
      }
    }
  } catch (e) {
    const name = failureName(e, 'Internal');
    if (deviceFailed(name)) deviceLost(e.message ?? String(e));
    else fail(id, name, e.message ?? String(e));
  } finally {
    current = null;
  }
}

async function inspect({ id, bytes }) {
  try {
    await loadWasm();
    post({ type: FromWorker.INSPECTED, id, claims: wasm.readProvenance(new Uint8Array(bytes)) });
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
    const decided = engine.startVerification(new Uint8Array(bytes), prompt);
    if (decided !== undefined) return answer({ verdict: decided });
    for (;;) {
      await yieldToEvents();
      if (lost) return undefined; // the page is replacing this worker
      if ((await engine.step()) === null) break;
    }
    return answer({ verdict: engine.finishVerification() });
  } catch (e) {
    const name = failureName(e, 'BadImage');
    if (deviceFailed(name)) return deviceLost(e.message ?? String(e));
    return answer({ name, message: e.message ?? String(e) });
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
    fail(id, errorName(e, 'BadImage'), e.message ?? String(e));
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
    default: return fail(data.id ?? null, 'Protocol', `unknown message type ${data.type}`);
  }
};
