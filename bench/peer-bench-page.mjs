// The measurement bench/peer-bench.html runs (a file of its own: the server's policy allows no inline script).

const params = new URL(location.href).searchParams;
const model = params.get('model') ?? 'models/tessera-shapes';
const rowsWanted = Number(params.get('rows') ?? 2);
const GUIDANCE = 2;

async function tessera(backend) {
  const { EngineClient, modelFolder } = await import('/www/engine.js');
  const loadStart = performance.now();
  const engine = new EngineClient(modelFolder(`/${model}/`, location.href), { preferGpu: backend === 'webgpu' });
  const info = await engine.whenReady();
  const loadMs = performance.now() - loadStart;
  const { prompt } = await (await fetch(`/target/onnx/${model.split('/').pop()}/prompt.json`)).json();
  const rows = [];
  const start = performance.now();
  const { id, done } = engine.generate({ prompt, settings: { seed: 0, temperature: 1, topK: null, topP: 1, guidance: GUIDANCE } }, (m) => {
    rows.push({ ms: performance.now() - start, tokens: m.tokens });
    if (rows.length === rowsWanted) engine.cancel(id);
  });
  await done.catch((e) => { if (e.name !== 'AbortError') throw e; });
  return { engine: `Tessera (${engine.backend})`, backend: engine.backend, modelId: info.modelId, loadMs, rows };
}

async function onnxRuntime(ep) {
  const ort = await import('/node_modules/onnxruntime-web/dist/ort.webgpu.min.mjs');
  ort.env.wasm.wasmPaths = '/node_modules/onnxruntime-web/dist/';
  ort.env.wasm.numThreads = 1;
  const dir = `/target/onnx/${model.split('/').pop()}`;
  const spec = await (await fetch(`${dir}/prompt.json`)).json();
  const loadStart = performance.now();
  // On WebGPU the KV cache stays on the device between steps, as transformers.js keeps it.
  const onGpu = ep === 'webgpu';
  const session = await ort.InferenceSession.create(`${dir}/transformer.onnx`, {
    executionProviders: [ep],
    graphOptimizationLevel: 'all',
    preferredOutputLocation: onGpu ? { logits: 'cpu', present_k: 'gpu-buffer', present_v: 'gpu-buffer' } : 'cpu',
  });
  const loadMs = performance.now() - loadStart;
  const [batch, grid, K] = [spec.ids.length, spec.grid, spec.codebook_size];
  const empty = new ort.Tensor('float32', new Float32Array(0), [spec.layers, batch, spec.heads, 0, spec.head_dim]);
  const feeds = (ids, isImg, pastK, pastV) => ({
    ids: new ort.Tensor('int64', BigInt64Array.from(ids.flat(), BigInt), [batch, ids[0].length]),
    is_img: new ort.Tensor('bool', Uint8Array.from(isImg.flat(), Number), [batch, isImg[0].length]),
    past_k: pastK,
    past_v: pastV,
  });
  // A seeded generator (mulberry32) for the sampled tokens.
  let seed = 0;
  const random = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  // logits [2, K] (cond, uncond) → a token drawn from softmax(uncond + GUIDANCE · (cond − uncond)).
  const sample = (logits) => {
    const guided = new Float32Array(K);
    let max = -Infinity;
    for (let k = 0; k < K; k++) {
      guided[k] = logits[K + k] + GUIDANCE * (logits[k] - logits[K + k]);
      max = Math.max(max, guided[k]);
    }
    let sum = 0;
    for (let k = 0; k < K; k++) sum += (guided[k] = Math.exp(guided[k] - max));
    let r = random() * sum;
    for (let k = 0; k < K; k++) if ((r -= guided[k]) <= 0) return k;
    return K - 1;
  };
  const rows = [];
  const start = performance.now();
  let out = await session.run(feeds(spec.ids, spec.is_img, empty, empty));
  for (let t = 1; rows.length < rowsWanted && t <= grid * grid; t++) {
    const token = sample(out.logits.data);
    if (t % grid === 0) rows.push({ ms: performance.now() - start, tokens: t });
    const previous = out;
    out = await session.run(feeds([[token], [token]], [[1], [1]], previous.present_k, previous.present_v));
    for (const name of ['logits', 'present_k', 'present_v']) previous[name].dispose();
  }
  return { engine: `ONNX Runtime Web ${ort.env.versions.web} (${ep})`, backend: ep, loadMs, rows };
}

const engine = params.get('engine');
(engine === 'ort' ? onnxRuntime(params.get('ep') ?? 'webgpu') : tessera(params.get('backend') ?? 'webgpu'))
  .then((r) => { window.benchResult = r; }, (e) => { window.benchError = `${e.name}: ${e.message}`; });
