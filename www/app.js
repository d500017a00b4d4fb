// The chat shell: a conversation of turns (prompt + image), a composer, and a canvas per turn that fills
// row by row as the worker streams token rows. The conversation lives here, in the page, and survives every
// error and cancel; the worker only ever holds the model.

import { ToWorker, FromWorker, advice } from './protocol.js';
import { DEFAULT_MODEL, EngineClient, modelFolder } from './engine.js';
import { MADE_HERE, closest, remember, thumbnail } from './made-here.js';

const $ = (sel) => document.querySelector(`[data-testid="${sel}"]`);
const EXAMPLES = [
  'a big red circle in the center on a white background',
  'a small blue star in the top left corner and a big yellow heart at the bottom right, black background',
  'a 3 by 3 grid on a white background: red circle, blue square, green triangle, yellow star, purple heart, orange hexagon, pink diamond, brown cross, black ring',
  'a yellow sign that says HELLO in the middle, blue background',
  '白色背景上，左上角有一个大的红色圆形，右下角有一个小的蓝色星形',
];
// Words of the model's world; a prompt with none of them gets a gentle note.
const KNOWN = /circle|square|triangle|star|heart|hexagon|diamond|cross|ring|sign|grid|background|red|orange|yellow|green|blue|purple|pink|brown|black|white|gray|grey|圆|方|三角|星|心|六边|菱|十字|环|牌|网格|背景|色/i;
/** Longest prompt the page sends; the engine's own limit (bytes) is checked again in the worker. */
const MAX_PROMPT_CHARS = 600;
const MAX_UPLOAD_BYTES = 64 * 1024 * 1024;
/** Each sampling setting's field; an empty field is the engine's default (`info.defaults`, shown as its placeholder). */
const SAMPLING_FIELDS = { temperature: 'temperature', topK: 'top-k', topP: 'top-p', guidance: 'guidance', keep: 'keep' };

const params = new URLSearchParams(location.search);
const modelUrl = params.has('model') ? modelFolder(params.get('model'), location.href) : DEFAULT_MODEL;
const preferGpu = params.get('backend') !== 'cpu';

const state = {
  turns: [], // {id, kind, prompt, tokens, state, li, canvas, ctx, marker, stats}
  ready: false,
  running: null, // id of the generating turn
  info: null,
};

// A stable hook for tests and for people who script the page: every worker message, in order (pixels left out).
window.tessera = { events: [], state };

/** The engine (a Web Worker); it restarts itself on the CPU if the GPU is lost, and the conversation stays here. */
const engine = new EngineClient(modelUrl, { preferGpu });
engine.subscribe((data) => {
  window.tessera.events.push({
    type: data.type, id: data.id ?? null, row: data.row, tokens: data.tokens?.length ?? data.tokens, ms: data.ms ?? data.stats?.ms,
    name: data.name, cached: data.cached, at: performance.now(),
  });
  handlers[data.type]?.(data);
});
// Destroys the WebGPU device the way a driver reset would: for tests and for people who script the page.
window.tessera.loseDevice = () => engine.post({ type: ToWorker.LOSE_DEVICE });

function setStatus(text, kind = 'info') {
  const el = $('status');
  el.textContent = text;
  el.dataset.kind = kind;
}

const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;

const handlers = {
  [FromWorker.PROGRESS]: ({ loaded, total, cached }) => {
    const bar = $('download');
    bar.hidden = cached || loaded === total;
    bar.max = total || loaded;
    bar.value = loaded;
    if (cached) setStatus(`Loading the model from this browser's cache (${mb(loaded)})…`);
    else setStatus(total ? `Downloading the model: ${mb(loaded)} of ${mb(total)}` : `Downloading the model: ${mb(loaded)}`);
  },
  [FromWorker.READY]: ({ backend, fallbackReason, info }) => {
    const replaced = state.info && state.info.sha256 !== info.sha256;
    state.ready = true;
    state.info = info;
    document.body.dataset.backend = backend;
    $('download').hidden = true;
    const where = backend === 'webgpu' ? 'on the GPU (WebGPU)' : `on the CPU (${fallbackReason ?? 'WebGPU unavailable'}; slower)`;
    const untrained = info.trained ? '' : ' This model is untrained: expect noise.';
    const what = replaced ? 'New model loaded' : 'Ready';
    setStatus(`${what}: ${info.modelId}, ${(info.parameters / 1e6).toFixed(1)} M parameters, running ${where}.${untrained}`, 'ready');
    showModel(info);
    for (const [setting, field] of Object.entries(SAMPLING_FIELDS)) {
      if (setting in info.defaults) $(field).placeholder = String(info.defaults[setting]);
    }
    if (!state.running) $('send').disabled = false;
    updateEditToggle();
    // Ask the browser to keep the cached model under storage pressure (granted quietly where the site is trusted).
    navigator.storage?.persist?.().catch(() => {});
  },
  [FromWorker.REFUSED]: ({ name, message }) => {
    const current = state.info ? ` The current model (${state.info.modelId}) stays loaded.` : '';
    setStatus(`That model was not loaded: ${message}.${current}`, 'warn');
    $('model-load').disabled = false;
  },
  [FromWorker.TOKEN_ROW]: (m) => {
    const turn = find(m.id);
    if (!turn) return;
    turn.ctx.putImageData(new ImageData(m.rgba, state.info.imageSize, m.height), 0, m.y0);
    turn.marker.style.top = `${((m.y0 + m.height) / state.info.imageSize) * 100}%`;
    turn.li.dataset.rows = String(m.row + 1);
    turn.meta.textContent = `row ${m.row + 1}/${m.rows} · ${(m.tokens / (m.ms / 1000)).toFixed(0)} tokens/s`;
  },
  [FromWorker.DONE]: (m) => finish(m, 'done'),
  [FromWorker.STOPPED]: (m) => finish(m, 'stopped'),
  [FromWorker.ENCODED]: (m) => {
    const turn = find(m.id);
    if (!turn) return;
    turn.tokens = m.tokens;
    turn.modelSha = state.info.sha256;
    turn.ctx.putImageData(new ImageData(m.rgba, m.size, m.size), 0, 0);
    setTurnState(turn, 'done');
    turn.meta.textContent = 'uploaded image, as the model sees it';
  },
  [FromWorker.DEVICE_LOST]: ({ message }) => {
    const turn = state.running == null ? null : find(state.running);
    if (turn) {
      setTurnState(turn, 'error');
      turn.marker.hidden = true;
      turn.meta.textContent = `The graphics device was lost (${message}). ${advice('DeviceLost')}`;
      turn.regenerate.hidden = turn.kind === 'upload';
    }
    state.ready = false; // the engine restarts itself on the CPU and says READY again
    endRun();
    setStatus('The graphics device was lost: restarting the engine on the CPU…');
  },
  [FromWorker.ERROR]: ({ id, name, message }) => {
    const turn = id == null ? null : find(id);
    if (turn) {
      setTurnState(turn, 'error');
      turn.meta.textContent = `${message}. ${advice(name)}`;
      if (state.running === id) endRun();
    } else {
      setStatus(`${message}. ${advice(name)}`, 'error');
    }
  },
};

function find(id) {
  return state.turns.find((t) => t.id === id);
}

function setTurnState(turn, s) {
  turn.state = s;
  turn.li.dataset.state = s;
}

function endRun() {
  state.running = null;
  $('stop').disabled = true;
  $('send').disabled = !state.ready;
}

function finish(m, how) {
  const turn = find(m.id);
  if (!turn) return;
  turn.tokens = m.tokens;
  turn.modelSha = state.info.sha256;
  turn.png = new Blob([m.png], { type: 'image/png' });
  turn.marker.hidden = true;
  const s = m.stats;
  turn.meta.textContent = `${how === 'done' ? 'done' : `stopped after ${s.tokens} tokens`} · ${(s.ms / 1000).toFixed(1)} s · ${s.tokensPerSec.toFixed(0)} tokens/s · first row ${s.firstRowMs == null ? '–' : `${s.firstRowMs.toFixed(0)} ms`} · ${s.backend}`;
  turn.download.href = URL.createObjectURL(turn.png);
  turn.download.hidden = false;
  turn.regenerate.hidden = turn.kind === 'upload';
  setTurnState(turn, how);
  endRun();
  updateEditToggle();
  if (how === 'done' && turn.kind !== 'upload') rememberTurn(turn);
}

const hex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, '0')).join('');
const sha256 = async (bytes) => hex(await crypto.subtle.digest('SHA-256', bytes));

/** Adds a finished picture to this browser's private "made here" index. */
async function rememberTurn(turn) {
  try {
    await remember({
      thumb: thumbnail(turn.canvas),
      tokensSha256: await sha256(new Uint32Array(turn.tokens)),
      modelId: state.info.modelId,
      prompt: turn.prompt,
    });
    turn.li.dataset.remembered = 'true';
  } catch (e) {
    turn.li.dataset.remembered = 'false'; // no IndexedDB (private mode): "made here?" cannot answer for it
  }
}

/**
 * "Check an image": what the file claims (its provenance metadata), whether this browser made it (the
 * private index, robust to JPEG and light crops), and, given the prompt, whether regenerating it from the
 * recorded seed and settings gives the same pixels.
 */
async function checkImage(file, prompt) {
  const out = $('check-result');
  const say = (lines, verdict) => { out.textContent = lines.join('\n'); out.dataset.verdict = verdict; };
  if (!file.type.startsWith('image/')) return say([`${file.name} is not an image.`], 'error');
  const lines = [];
  const bytes = await file.arrayBuffer();
  let claims = null;
  try {
    claims = file.type === 'image/png' ? await engine.inspect(bytes.slice(0)) : null;
  } catch (e) {
    return say([`${file.name}: ${e.message}.`], 'error');
  }
  lines.push(claims
    ? `Claims: made by an AI model (IPTC trainedAlgorithmicMedia): ${claims.modelId} (weights sha256 ${claims.modelSha256.slice(0, 12)}…), seed ${claims.seed}, temperature ${claims.temperature}, top-p ${claims.topP}, guidance ${claims.guidance}${claims.sourceTokensSha256 ? `, keep ${claims.keep}` : ''}${claims.created ? `, made ${new Date(claims.created).toLocaleString()}` : ''}. Not signed.`
    : 'Claims: none (no provenance metadata: stripped, re-saved, or not made by Tessera).');
  let bitmap;
  try {
    bitmap = await createImageBitmap(new Blob([bytes], { type: file.type }));
  } catch {
    return say([...lines, `${file.name} could not be decoded.`], 'error');
  }
  const match = await closest(thumbnail(bitmap)).catch(() => ({ entry: null, score: 0 }));
  const madeHere = match.entry && match.score >= MADE_HERE;
  lines.push(madeHere
    ? `Made here: yes, it matches a picture this browser drew on ${new Date(match.entry.at).toLocaleString()} from “${match.entry.prompt}” (similarity ${match.score.toFixed(2)}).`
    : `Made here: no picture this browser drew matches it${match.entry ? ` (closest similarity ${match.score.toFixed(2)})` : ''}.`);
  let verdict = madeHere ? 'made-here' : 'unknown';
  if (claims && prompt) {
    const regenerated = await regenerate(bytes.slice(0), prompt);
    lines.push(regenerated.line);
    verdict = regenerated.verdict;
  } else if (claims) {
    lines.push('Type the prompt it was made from to check the claims by regenerating it.');
  }
  return say(lines, verdict);
}

/**
 * The engine's verdict on regenerating the picture from its claims and `prompt` (as `tessera verify` gives):
 * the engine decides; the page only words it.
 */
async function regenerate(bytes, prompt) {
  if (state.running) return { line: `Regenerated: not now, ${advice('Busy')}`, verdict: 'unknown' };
  state.running = 'check'; // the engine is busy: sends wait, as for any generation
  $('send').disabled = true;
  let verdict;
  try {
    verdict = await engine.verify(bytes, prompt);
  } finally {
    endRun();
  }
  if (!verdict) return { line: 'Regenerated: no, the file carries no claims to check.', verdict: 'unknown' };
  const line = verdict.outcome === 'verified' ? `${capitalized(verdict.reason)}. Verified.` : `Regenerated: no, ${verdict.reason}.`;
  return { line, verdict: verdict.outcome };
}

const capitalized = (text) => text.charAt(0).toUpperCase() + text.slice(1);

/** The last turn whose image is complete and made by the loaded model: what a follow-up edits. */
function lastImage() {
  const n = state.info?.grid ** 2;
  return [...state.turns].reverse().find((t) => t.tokens && t.tokens.length === n && t.modelSha === state.info.sha256);
}

function updateEditToggle() {
  document.querySelector('.edit-toggle').hidden = !lastImage();
}

/** `<tag class=…>` with the given properties. */
function el(tag, className, props = {}) {
  const node = document.createElement(tag);
  node.className = className;
  return Object.assign(node, props);
}

function addTurn(kind, prompt) {
  const id = engine.nextId();
  const li = el('li', 'turn');
  li.dataset.testid = 'turn';
  const size = state.info?.imageSize ?? 128;
  const canvas = el('canvas', 'image', { width: size, height: size });
  canvas.dataset.testid = 'canvas';
  canvas.setAttribute('aria-label', `image for: ${prompt}`);
  canvas.setAttribute('role', 'img');
  const marker = el('div', 'marker');
  const frame = el('div', 'frame');
  frame.append(canvas, marker);
  const meta = el('p', 'meta');
  const note = el('p', 'note', { hidden: true });
  const download = el('a', 'download', { textContent: 'Download PNG', download: `tessera-${id}.png`, hidden: true });
  const regenerate = el('button', 'regenerate', { type: 'button', textContent: 'Regenerate (new seed)', hidden: true });
  const actions = el('div', 'actions');
  actions.append(download, regenerate);
  li.append(el('p', 'prompt', { textContent: prompt }), note, frame, meta, actions);
  $('conversation').append(li);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#0b0c10'; // darker than the page: the image's full extent shows while it develops
  ctx.fillRect(0, 0, size, size);
  const turn = { id, kind, prompt, tokens: null, state: 'generating', li, canvas, ctx, marker, meta, note, download, regenerate };
  regenerate.onclick = () => {
    $('seed').value = String(Number($('seed').value || 0) + 1);
    start(turn.prompt, turn.context ?? null);
  };
  state.turns.push(turn);
  setTurnState(turn, 'generating');
  li.scrollIntoView({ block: 'end', behavior: 'smooth' });
  return turn;
}

function settings() {
  const num = (sel, fallback) => {
    const v = $(sel).value.trim();
    return v === '' ? fallback : Number(v);
  };
  const sampling = Object.entries(SAMPLING_FIELDS).map(([setting, field]) => [setting, num(field, null)]);
  return { seed: num('seed', 0), ...Object.fromEntries(sampling) };
}

function start(prompt, context) {
  const turn = addTurn(context ? 'edit' : 'generate', prompt);
  turn.context = context;
  if (!KNOWN.test(prompt)) {
    turn.note.textContent = 'This model only knows shapes, colours, positions and signs, so it will draw those. Try an example above.';
    turn.note.hidden = false;
  }
  state.running = turn.id;
  $('stop').disabled = false;
  $('send').disabled = true;
  window.tessera.events.push({ type: ToWorker.GENERATE, id: turn.id, context: context ? context.length : 0, at: performance.now() });
  engine.post({ type: ToWorker.GENERATE, id: turn.id, prompt, context, settings: settings() });
}

function send(event) {
  event?.preventDefault();
  const box = $('prompt');
  const prompt = box.value.trim();
  if (state.running) return setStatus(advice('Busy'), 'warn');
  if (!state.ready) return setStatus('The model is still loading.', 'warn');
  if (!prompt) return setStatus(advice('EmptyPrompt'), 'warn');
  if (prompt.length > MAX_PROMPT_CHARS) {
    return setStatus(`The prompt is ${prompt.length} characters; this model reads about ${MAX_PROMPT_CHARS}. ${advice('PromptTooLong')}`, 'warn');
  }
  const base = $('edit-last').checked ? lastImage() : null;
  box.value = '';
  start(prompt, base ? base.tokens : null);
}

function upload(file) {
  if (!file) return;
  if (!state.ready) return setStatus('The model is still loading.', 'warn');
  if (state.running) return setStatus(advice('Busy'), 'warn');
  if (!file.type.startsWith('image/')) return setStatus(`${file.name} is not an image. ${advice('BadImage')}`, 'warn');
  if (file.size > MAX_UPLOAD_BYTES) return setStatus(`${file.name} is over ${mb(MAX_UPLOAD_BYTES)}. Use a smaller image.`, 'warn');
  const turn = addTurn('upload', `uploaded ${file.name}`);
  file.arrayBuffer().then((bytes) => engine.post({ type: ToWorker.ENCODE, id: turn.id, bytes }, [bytes]));
}

function setup() {
  for (const text of EXAMPLES) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'example';
    b.textContent = text;
    b.onclick = () => { $('prompt').value = text; $('prompt').focus(); };
    $('examples').append(b);
  }
  $('send').disabled = true;
  $('composer').addEventListener('submit', send);
  $('prompt').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) send(e);
  });
  $('stop').onclick = () => state.running && engine.post({ type: ToWorker.CANCEL, id: state.running });
  $('upload').onchange = (e) => { upload(e.target.files[0]); e.target.value = ''; };
  document.addEventListener('dragover', (e) => e.preventDefault());
  document.addEventListener('drop', (e) => { e.preventDefault(); upload(e.dataTransfer.files[0]); });
  document.addEventListener('paste', (e) => {
    const file = [...(e.clipboardData?.files ?? [])].find((f) => f.type.startsWith('image/'));
    if (file) { e.preventDefault(); upload(file); }
  });
}

/** The loaded model, and where it came from, in the Model panel. */
function showModel(info) {
  const from = info.source.file ? `the file ${info.source.file}` : `${info.source.url}${info.source.fromCache ? ' (from this browser’s cache, works offline)' : ''}`;
  $('model-info').textContent = `${info.modelId} · ${(info.parameters / 1e6).toFixed(1)} M parameters · ${mb(info.source.bytes)} · sha256 ${info.sha256.slice(0, 12)}… · ${from}`;
  $('model-load').disabled = false;
}

/** Another model, from a folder on this site or from its three files; the current one stays until it is accepted. */
function setupModelPanel() {
  const refuse = (message) => setStatus(`That model was not loaded: ${message}.`, 'warn');
  const replace = (source, transfer = []) => {
    if (state.running) return setStatus(advice('Busy'), 'warn');
    if (!state.ready) return setStatus('The model is still loading.', 'warn');
    $('model-load').disabled = true;
    setStatus('Checking the new model…');
    return engine.post({ type: ToWorker.REPLACE, source }, transfer);
  };
  $('model-url-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = $('model-url').value.trim();
    if (!text) return refuse('type the address of a model folder');
    const url = new URL(text, location.href);
    // The page's Content-Security-Policy keeps every request on this site; say so rather than fail obscurely.
    if (url.origin !== location.origin) return refuse(`${url.origin} is another site, and this app only reads models from ${location.origin}; download the model's files and pick them instead`);
    return replace({ url: modelFolder(text, location.href) });
  });
  $('model-files').addEventListener('change', async (e) => {
    const files = [...e.target.files];
    e.target.value = '';
    const pick = (ext) => files.find((f) => f.name.endsWith(ext));
    const [config, weights, sha256] = [pick('.json'), pick('.safetensors'), pick('.sha256')];
    if (!config || !weights || !sha256) return refuse('pick the three files of a model folder together: config.json, model.safetensors and model.sha256');
    const [c, w, h] = await Promise.all([config.arrayBuffer(), weights.arrayBuffer(), sha256.text()]);
    return replace({ files: { config: c, weights: w, sha256: h, name: weights.name } }, [c, w]);
  });
}

/**
 * The service worker makes the app work offline after one visit. A new version is announced with a button;
 * it takes over only when the user presses it (the page then reloads).
 */
async function setupOffline() {
  const build = await import('../pkg/build.js').then(() => self.TESSERA_BUILD, () => null);
  $('version').textContent = build ? `v${build.version} · build ${build.build}` : 'not built';
  if (!build || !navigator.serviceWorker) return;
  // `updateViaCache: 'none'`: update checks go to the server for sw.js and pkg/build.js, never the HTTP cache.
  const registration = await navigator.serviceWorker.register(new URL('../sw.js', import.meta.url), { updateViaCache: 'none' })
    .catch((e) => { setStatus(`Offline use is unavailable: ${e.message}`, 'warn'); return null; });
  if (!registration) return;
  let updating = false;
  const announce = (waiting) => {
    const button = $('update');
    button.hidden = false;
    button.onclick = () => { updating = true; waiting.postMessage({ type: 'skip-waiting' }); };
  };
  if (registration.waiting && navigator.serviceWorker.controller) announce(registration.waiting);
  registration.addEventListener('updatefound', () => {
    const installing = registration.installing;
    installing?.addEventListener('statechange', () => {
      if (installing.state === 'installed' && navigator.serviceWorker.controller) announce(installing);
    });
  });
  navigator.serviceWorker.addEventListener('controllerchange', () => { if (updating) location.reload(); });
}

setup();
setupModelPanel();
$('check-file').addEventListener('change', (e) => {
  const file = e.target.files[0];
  e.target.value = '';
  if (file) checkImage(file, $('check-prompt').value.trim()).catch((err) => { $('check-result').textContent = err.message; });
});
setupOffline();
