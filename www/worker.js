// The engine's Web Worker: owns the wasm module and the loaded model, runs one generation at a time, and
// posts each finished token row as soon as it exists. Cancel is honoured between any two tokens.

import { ToWorker, FromWorker } from './protocol.js';

let wasm = null; // the wasm-bindgen module
let engine = null;
let info = null; // engine.info() of the loaded model
let current = null; // {id, cancelled}
let gpuDevice = null; // the GPUDevice wgpu asked for: to hear when it is lost, and to lose it on request
let lost = false;

const post = (msg, transfer = []) => self.postMessage(msg, transfer);
const fail = (id, name, message) => post({ type: FromWorker.ERROR, id, name, message });
/** The engine names its errors (`TesseraError::name`); plain `Error`s get `fallback`. */
const errorName = (e, fallback) => (e.name && e.name !== 'Error' ? e.name : fallback);

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

async function fetchBytes(url, onProgress) {
  const response = await fetch(url);
  if (!response.ok) throw Object.assign(new Error(`${url}: HTTP ${response.status}`), { name: 'ModelMissing' });
  const total = Number(response.headers.get('Content-Length')) || 0;
  if (!onProgress || !response.body) return new Uint8Array(await response.arrayBuffer());
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    onProgress(loaded, total);
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) { bytes.set(c, at); at += c.length; }
  return bytes;
}

async function load({ modelUrl, preferGpu, fallbackReason }) {
  try {
    wasm = await import('../pkg/tessera.js');
    await wasm.default();
  } catch (e) {
    return fail(null, 'WasmMissing', String(e));
  }
  try {
    const base = modelUrl.endsWith('/') ? modelUrl : `${modelUrl}/`;
    const [config, sha256Text] = await Promise.all([fetchBytes(`${base}config.json`), fetchBytes(`${base}model.sha256`)]);
    const sha256 = new TextDecoder().decode(sha256Text).trim().split(/\s+/)[0];
    const weights = await fetchBytes(`${base}model.safetensors`, (loaded, total) => post({ type: FromWorker.PROGRESS, loaded, total }));
    engine = await wasm.Engine.load(config, weights, sha256, preferGpu && !!self.navigator.gpu);
    info = engine.info();
    const reason = fallbackReason ?? engine.fallbackReason ?? (self.navigator.gpu ? null : 'this browser has no WebGPU');
    post({ type: FromWorker.READY, backend: engine.backend, fallbackReason: reason, info });
  } catch (e) {
    fail(null, errorName(e, 'ModelMissing'), e.message ?? String(e));
  }
}

async function generate({ id, prompt, context, settings }) {
  if (!engine) return fail(id, 'ModelMissing', 'the model is not loaded yet');
  if (current) return fail(id, 'Busy', 'a generation is already running');
  current = { id, cancelled: false };
  const s = settings;
  try {
    engine.start(prompt, context ?? undefined, s.seed, s.temperature, s.topK ?? undefined, s.topP, s.cfg);
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
    // A wasm trap (`RuntimeError`) is unnamed too: on the GPU path it means the device failed.
    const name = e.name === 'RuntimeError' ? 'Internal' : errorName(e, 'Internal');
    if (engine.backend === 'webgpu' && (name === 'Internal' || name === 'DeviceError')) {
      deviceLost(e.message ?? String(e)); // a failed readback, or a trap in the GPU path
    } else {
      fail(id, name, e.message ?? String(e));
    }
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
    case ToWorker.GENERATE: return generate(data);
    case ToWorker.CANCEL: if (current && current.id === data.id) current.cancelled = true; return undefined;
    case ToWorker.ENCODE: return encode(data);
    case ToWorker.LOSE_DEVICE: return gpuDevice?.destroy();
    default: return fail(data.id ?? null, 'Protocol', `unknown message type ${data.type}`);
  }
};
