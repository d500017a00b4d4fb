// The chat shell: a conversation of turns (prompt + image), a composer, and a canvas per turn that fills
// row by row as the worker streams token rows. The conversation lives here, in the page, and survives every
// error and cancel; the worker only ever holds the model.

import { ToWorker, FromWorker, advice } from './protocol.js';

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

const params = new URLSearchParams(location.search);
const modelUrl = new URL(params.get('model') ?? 'models/tessera-shapes/', location.href).href;
const preferGpu = params.get('backend') !== 'cpu';

const state = {
  turns: [], // {id, kind, prompt, tokens, state, li, canvas, ctx, marker, stats}
  ready: false,
  running: null, // id of the generating turn
  info: null,
  nextId: 1,
};

// A stable hook for tests and for people who script the page: every worker message, in order (pixels left out).
window.tessera = { events: [], state };

let worker = null;

/** Start (or restart) the engine's worker. The conversation lives here, so a restart loses none of it. */
function startWorker(preferGpuNow, fallbackReason) {
  worker?.terminate();
  state.ready = false;
  worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  worker.onmessage = ({ data }) => {
    window.tessera.events.push({
      type: data.type, id: data.id ?? null, row: data.row, tokens: data.tokens?.length ?? data.tokens, ms: data.ms ?? data.stats?.ms,
      name: data.name, at: performance.now(),
    });
    handlers[data.type]?.(data);
  };
  worker.onerror = (e) => setStatus(`The engine failed to start: ${e.message}`, 'error');
  worker.postMessage({ type: ToWorker.LOAD, modelUrl, preferGpu: preferGpuNow, fallbackReason });
}
// Destroys the WebGPU device the way a driver reset would: for tests and for people who script the page.
window.tessera.loseDevice = () => worker.postMessage({ type: ToWorker.LOSE_DEVICE });

function setStatus(text, kind = 'info') {
  const el = $('status');
  el.textContent = text;
  el.dataset.kind = kind;
}

const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;

const handlers = {
  [FromWorker.PROGRESS]: ({ loaded, total }) => {
    setStatus(total ? `Downloading the model: ${mb(loaded)} of ${mb(total)}` : `Downloading the model: ${mb(loaded)}`);
  },
  [FromWorker.READY]: ({ backend, fallbackReason, info }) => {
    state.ready = true;
    state.info = info;
    document.body.dataset.backend = backend;
    const where = backend === 'webgpu' ? 'on the GPU (WebGPU)' : `on the CPU (${fallbackReason ?? 'WebGPU unavailable'}; slower)`;
    const untrained = info.trained ? '' : ' This model is untrained: expect noise.';
    setStatus(`Ready: ${info.modelId}, ${(info.parameters / 1e6).toFixed(1)} M parameters, running ${where}.${untrained}`, 'ready');
    $('send').disabled = false;
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
    startWorker(false, 'the GPU device was lost');
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
}

/** The last turn whose image is complete: what a follow-up edits. */
function lastImage() {
  const n = state.info?.grid ** 2;
  return [...state.turns].reverse().find((t) => t.tokens && t.tokens.length === n);
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
  const id = state.nextId++;
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
  return {
    seed: num('seed', 0),
    temperature: num('temperature', 1),
    topK: num('top-k', null),
    topP: num('top-p', 1),
    cfg: num('cfg', 2),
  };
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
  worker.postMessage({ type: ToWorker.GENERATE, id: turn.id, prompt, context, settings: settings() });
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
  file.arrayBuffer().then((bytes) => worker.postMessage({ type: ToWorker.ENCODE, id: turn.id, bytes }, [bytes]));
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
  $('stop').onclick = () => state.running && worker.postMessage({ type: ToWorker.CANCEL, id: state.running });
  $('upload').onchange = (e) => { upload(e.target.files[0]); e.target.value = ''; };
  document.addEventListener('dragover', (e) => e.preventDefault());
  document.addEventListener('drop', (e) => { e.preventDefault(); upload(e.dataTransfer.files[0]); });
  document.addEventListener('paste', (e) => {
    const file = [...(e.clipboardData?.files ?? [])].find((f) => f.type.startsWith('image/'));
    if (file) { e.preventDefault(); upload(file); }
  });
}

setup();
startWorker(preferGpu);
