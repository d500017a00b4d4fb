// The chat shell: a conversation of turns (prompt + image), a composer, and a canvas per turn that fills
// row by row as the worker streams token rows. The conversation lives here, in the page, and survives every
// error and cancel; the worker only ever holds the model. Each turn is stored in this browser as it changes
// (`www/conversations.js`), so a reload, a crash or an update brings the conversation back.

import { ToWorker, FromWorker, advice } from './protocol.js';
import { DEFAULT_MODEL, EngineClient, modelFolder, originProblem } from './engine.js';
import { cachedModels, forgetModel } from './models.js';
import { ENTRY_BYTES, MADE_HERE, MAX_REMEMBERED, closest, forgetAll, prepareMatching, remember, rememberedCount, thumbnail } from './made-here.js';
import { deleteConversation, listConversations, loadTurns, newConversation, saveConversation, saveTurn } from './conversations.js';
import { storageSpace } from './db.js';

const $ = (sel) => document.querySelector(`[data-testid="${sel}"]`);
const EXAMPLES = [
  'a big red circle in the center on a white background',
  'a small blue star in the top left corner and a big yellow heart at the bottom right, black background',
  'a 3 by 3 grid on a white background: red circle, blue square, green triangle, yellow star, purple heart, orange hexagon, pink diamond, brown cross, black ring',
  'a yellow sign that says HELLO in the middle, blue background',
  '白色背景上，左上角有一个大的红色圆形，右下角有一个小的蓝色星形',
];
/** Longest prompt the page sends; the engine's own limit (bytes) is checked again in the worker. */
const MAX_PROMPT_CHARS = 600;
/** The engine's own cap on an image file (`image_input::MAX_FILE_BYTES`), checked here before reading it. */
const MAX_UPLOAD_BYTES = 64 * 1024 * 1024;
/** Each sampling setting's field; an empty field is the engine's default (`info.defaults`, shown as its placeholder). */
const SAMPLING_FIELDS = { temperature: 'temperature', topK: 'top-k', topP: 'top-p', guidance: 'guidance', keep: 'keep' };

const params = new URLSearchParams(location.search);
const askedModel = params.has('model') ? modelFolder(params.get('model'), location.href) : null;
/** Why `?model=` was not loaded (another site's folder), said once the bundled model is ready. */
const askedProblem = askedModel && originProblem(askedModel);
const modelUrl = askedModel && !askedProblem ? askedModel : DEFAULT_MODEL;
const preferGpu = params.get('backend') !== 'cpu';

const state = {
  turns: [], // {id, seq, kind, prompt, base, reading, raw, force, tokens, scene, state, li, canvas, ctx, marker, …}
  conversation: null, // the stored record of the conversation shown (made with its first turn)
  ready: false,
  replacing: false, // a model from the Model panel is being checked
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
    name: data.name, cached: data.cached, loaded: data.loaded, total: data.total, at: performance.now(),
  });
  handlers[data.type]?.(data);
});
// Destroys the WebGPU device the way a driver reset would, and traps the engine the way a bug in it would:
// for tests and for people who script the page.
window.tessera.loseDevice = () => engine.post({ type: ToWorker.LOSE_DEVICE });
window.tessera.trapEngine = () => engine.post({ type: ToWorker.TRAP });

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
  [FromWorker.READY]: ({ backend, fallbackReason, restarted, cacheProblem, info }) => {
    const replaced = state.info && state.info.sha256 !== info.sha256;
    state.ready = true;
    state.replacing = false;
    state.info = info;
    document.body.dataset.backend = backend;
    $('download').hidden = true;
    const where = backend === 'webgpu' ? 'on the GPU (WebGPU)' : `on the CPU (${fallbackReason ?? 'WebGPU unavailable'}; slower)`;
    const untrained = info.trained ? '' : ' This model is untrained: expect noise.';
    const what = restarted ? `Restarted after ${restarted}` : replaced ? 'New model loaded' : 'Ready';
    const stale = info.source.stale ? ` The server's copy could not be checked or downloaded (${info.source.stale}); this is the copy cached earlier.` : '';
    const uncached = cacheProblem ? ` It could not be kept for offline use: ${cacheProblem}.` : '';
    const refused = askedProblem && !replaced ? ` ?model= was not loaded: ${askedProblem}; the bundled model runs instead.` : '';
    setStatus(`${what}: ${info.modelId}, ${(info.parameters / 1e6).toFixed(1)} M parameters, running ${where}.${untrained}${stale}${uncached}${refused}`, stale || uncached || refused ? 'warn' : 'ready');
    showModel(info);
    for (const [setting, field] of Object.entries(SAMPLING_FIELDS)) {
      if (setting in info.defaults) $(field).placeholder = String(info.defaults[setting]);
    }
    if (!state.running) $('send').disabled = false;
    if (document.querySelector('details.model-panel').open) showCachedModels();
    // Ask the browser to keep the cached model under storage pressure (granted quietly where the site is trusted).
    navigator.storage?.persist?.().catch(() => {});
  },
  [FromWorker.REFUSED]: ({ name, message }) => {
    state.replacing = false;
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
    turn.veil.hidden = true; // final pixels replace a preview
    persist(turn); // the picture so far: what a reload or a crash mid-way brings back
  },
  [FromWorker.PREVIEW]: (m) => {
    const turn = find(m.id);
    if (!turn) return;
    turn.ctx.putImageData(new ImageData(m.rgba, state.info.imageSize, state.info.imageSize), 0, 0);
    const drawn = `${(m.rows / m.of) * 100}%`;
    turn.marker.style.top = drawn;
    turn.veil.style.top = drawn;
    turn.veil.hidden = false;
    turn.meta.textContent = `preview: row ${m.rows}/${m.of} · ${(m.tokens / (m.ms / 1000)).toFixed(0)} tokens/s`;
  },
  [FromWorker.DONE]: (m) => finish(m, 'done'),
  [FromWorker.STOPPED]: (m) => finish(m, 'stopped'),
  [FromWorker.ENCODED]: (m) => {
    const turn = find(m.id);
    if (!turn) return;
    turn.tokens = m.tokens;
    turn.modelSha = state.info.sha256;
    turn.modelId = state.info.modelId;
    turn.ctx.putImageData(new ImageData(m.rgba, m.size, m.size), 0, 0);
    turn.meta.textContent = 'uploaded image, as the model sees it';
    setTurnState(turn, 'done');
  },
  [FromWorker.DEVICE_LOST]: ({ message }) => restarting(`The graphics device was lost (${message}).`, 'DeviceLost'),
  [FromWorker.CRASHED]: ({ message }) => restarting(`The engine stopped (${message}).`, 'EngineCrashed'),
  [FromWorker.ERROR]: ({ id, name, message }) => {
    const turn = id == null ? null : find(id);
    if (turn) {
      failTurn(turn, name, message);
      if (state.running === id) endRun();
    } else {
      setStatus(`${message}. ${advice(name)}`, 'error');
    }
  },
};

function find(id) {
  return state.turns.find((t) => t.id === id);
}

/** The worker is being replaced by one with the same model: the running turn fails, every other one stays. */
function restarting(what, name) {
  const turn = state.running == null ? null : find(state.running);
  if (turn) {
    turn.marker.hidden = true;
    turn.meta.textContent = `${what} ${advice(name)}`;
    turn.regenerate.hidden = turn.kind === 'upload';
    setTurnState(turn, 'error');
  }
  state.ready = false; // the engine restarts and says READY again
  endRun();
  if (state.replacing) {
    // The model being checked is not loaded; the one before it comes back.
    state.replacing = false;
    $('model-load').disabled = false;
    return setStatus(`That model was not loaded: ${what} The previous model is being loaded again…`, 'warn');
  }
  return setStatus(`${what} Restarting the engine with the same model…`);
}

function setTurnState(turn, s) {
  turn.state = s;
  turn.li.dataset.state = s;
  persist(turn);
}

/** Tells the user that the conversation could not be stored, with the space the browser reports. */
async function storageProblem(e) {
  const space = await storageSpace();
  const left = space ? ` (this site uses ${mb(space.usage)} of the ${mb(space.quota)} the browser allows)` : '';
  const fix = e.name === 'QuotaExceededError' ? ' Free some space: delete earlier conversations in the Conversations panel.' : '';
  setStatus(`The conversation could not be saved in this browser: ${e.message || e.name}${left}. It stays on this page until it is closed.${fix}`, 'warn');
}

/** The canvas as a PNG Blob: a turn's picture so far. */
const canvasPng = (canvas) => new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));

/** What is stored of a turn: everything needed to show it again and to go on from it. */
async function turnRecord(turn) {
  const finished = turn.png ?? null;
  return {
    conversation: turn.conversation.id, seq: turn.seq, kind: turn.kind, prompt: turn.prompt, base: turn.base?.seq ?? null,
    raw: turn.raw, force: turn.force, reading: turn.reading, settings: turn.settings ?? null, tokens: turn.tokens,
    scene: turn.scene, modelSha: turn.modelSha ?? null, modelId: turn.modelId ?? null, state: turn.state,
    meta: turn.meta.textContent, size: turn.canvas.width, rows: turn.li.dataset.rows ?? null,
    png: finished, partial: finished || turn.state === 'reading' ? null : await canvasPng(turn.canvas), at: Date.now(),
  };
}

/**
 * Stores the turn's current state, once the code that changed it has finished (a microtask later). Saves of
 * one turn never overlap: changes made while one is written are stored by the next, the latest state only.
 */
function persist(turn) {
  if (turn.restoring) return;
  turn.conversation ??= (state.conversation ??= newConversation());
  turn.dirty = true;
  if (turn.saving) return;
  turn.saving = (async () => {
    while (turn.dirty) {
      await Promise.resolve();
      turn.dirty = false;
      try {
        await saveTurn(turn.conversation, await turnRecord(turn));
        turn.li.dataset.saved = 'true';
      } catch (e) {
        turn.li.dataset.saved = 'false';
        await storageProblem(e);
        break;
      }
    }
    turn.saving = null;
  })();
}

function failTurn(turn, name, message) {
  turn.marker.hidden = true;
  turn.meta.textContent = `${message}. ${advice(name)}`;
  setTurnState(turn, 'error');
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
  turn.modelId = state.info.modelId;
  turn.png = new Blob([m.png], { type: 'image/png' });
  turn.marker.hidden = true;
  const s = m.stats;
  const signing = s.signMs == null ? `unsigned: ${s.signError}` : `signed in ${s.signMs.toFixed(0)} ms`;
  turn.meta.textContent = `${how === 'done' ? 'done' : `stopped after ${s.tokens} tokens`} · ${(s.ms / 1000).toFixed(1)} s · ${s.tokensPerSec.toFixed(0)} tokens/s · ${s.firstPreviewMs == null ? `first row ${s.firstRowMs == null ? '–' : `${s.firstRowMs.toFixed(0)} ms`}` : `first preview ${s.firstPreviewMs.toFixed(0)} ms`} · ${s.backend} · ${signing}`;
  turn.download.href = URL.createObjectURL(turn.png);
  turn.download.hidden = false;
  turn.regenerate.hidden = turn.kind === 'upload';
  // What the picture shows, as far as the interpreter knows: what a follow-up's edit names things by.
  turn.scene = how === 'done' && turn.reading && !sendsTyped(turn) ? turn.reading.scene : null;
  setTurnState(turn, how);
  endRun();
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
  if (file.size > MAX_UPLOAD_BYTES) return say([`${file.name} is ${mb(file.size)}; images may be at most ${mb(MAX_UPLOAD_BYTES)}.`], 'error');
  const lines = [];
  const bytes = await file.arrayBuffer();
  let claims = null;
  let signature = null;
  try {
    // The engine reads the header first: an image over the pixel budget is refused before it is decoded.
    ({ claims, signature } = await engine.inspect(bytes.slice(0)));
  } catch (e) {
    return say([`${file.name}: ${e.message}.`], 'error');
  }
  lines.push(claims
    ? `Claims: made by an AI model (IPTC trainedAlgorithmicMedia): ${claims.modelId} (weights sha256 ${claims.modelSha256.slice(0, 12)}…), seed ${claims.seed}, temperature ${claims.temperature}, top-p ${claims.topP}, guidance ${claims.guidance}${claims.sourceTokensSha256 ? `, keep ${claims.keep}` : ''}${claims.created ? `, made ${new Date(claims.created).toLocaleString()}` : ''}.`
    : 'Claims: none (no provenance metadata: stripped, re-saved, or not made by Tessera).');
  if (claims) lines.push(signatureLine(signature));
  let bitmap;
  try {
    bitmap = await createImageBitmap(new Blob([bytes], { type: file.type }));
  } catch {
    return say([...lines, `${file.name} could not be decoded.`], 'error');
  }
  let match;
  try {
    match = await closest(thumbnail(bitmap));
  } catch (e) {
    match = { entry: null, score: 0, problem: e.message || e.name };
  }
  const madeHere = match.entry && match.score >= MADE_HERE;
  lines.push(madeHere
    ? `Made here: yes, it matches a picture this browser drew on ${new Date(match.entry.at).toLocaleString()} from “${match.entry.prompt}” (similarity ${match.score.toFixed(2)}).`
    : match.problem
      ? `Made here: cannot tell, this browser's index of its pictures could not be read (${match.problem}).`
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
  const line = {
    verified: `${capitalized(verdict.reason)}. Verified.`,
    unsigned: `${capitalized(verdict.reason)}. Not verified: unsigned.`,
  }[verdict.outcome] ?? `Regenerated: no, ${verdict.reason}.`;
  return { line, verdict: verdict.outcome };
}

/** What a PNG's C2PA signature says of its claims, in one line (see `readSignature` in credentials.js). */
function signatureLine(signature) {
  if (!signature) return 'Signature: none (no Content Credentials): the claims above are unsigned, and anyone could have written them.';
  if (signature.problem) return `Signature: does not vouch for these claims: ${signature.problem}.`;
  const whose = signature.thisBrowser ? "this browser's key" : "another key, not this browser's: its name is whatever its maker wrote in it";
  return `Signature: Content Credentials signed by ${signature.signer} (${whose}; certificate sha256 ${signature.certificateSha256.slice(0, 12)}…)${signature.signedAt ? ` at ${new Date(signature.signedAt).toLocaleString()}` : ''}: valid, untrusted (a local key no trust list knows).`;
}

const capitalized = (text) => text.charAt(0).toUpperCase() + text.slice(1);

/** The last turn whose image is complete and made by the loaded model: what a follow-up may edit. */
function lastImage() {
  const n = state.info?.grid ** 2;
  return [...state.turns].reverse().find((t) => t.tokens && t.tokens.length === n && t.modelSha === state.info.sha256);
}

/** `<tag class=…>` with the given properties. */
function el(tag, className, props = {}) {
  const node = document.createElement(tag);
  node.className = className;
  return Object.assign(node, props);
}

function button(className, testid, onclick) {
  const b = el('button', className, { type: 'button', hidden: true, onclick });
  b.dataset.testid = testid;
  return b;
}

/** A turn of the conversation: the message, how it was read, its picture, and what can be done with it. */
function addTurn(kind, prompt, { base = null, raw = false, size = state.info?.imageSize ?? 128, restoring = false } = {}) {
  const id = engine.nextId();
  const li = el('li', 'turn');
  li.dataset.testid = 'turn';
  const canvas = el('canvas', 'image', { width: size, height: size });
  canvas.dataset.testid = 'canvas';
  canvas.setAttribute('aria-label', `image for: ${prompt}`);
  canvas.setAttribute('role', 'img');
  const marker = el('div', 'marker');
  // Over the rows a preview has not drawn yet (codecs that are not row-causal).
  const veil = el('div', 'veil', { textContent: 'preview', hidden: true });
  veil.dataset.testid = 'preview-veil';
  const frame = el('div', 'frame');
  frame.append(canvas, marker, veil);
  const interpreted = el('p', 'interpreted', { hidden: true });
  interpreted.dataset.testid = 'interpreted';
  const notes = el('p', 'notes', { hidden: true });
  const note = el('p', 'note', { hidden: true });
  const meta = el('p', 'meta');
  const download = el('a', 'download', { textContent: 'Download PNG', download: `tessera-${id}.png`, hidden: true });
  const seq = (state.turns.at(-1)?.seq ?? -1) + 1;
  const turn = { id, seq, kind, prompt, base, raw, force: null, reading: null, tokens: null, scene: null, state: 'reading', restoring, li, canvas, marker, veil, meta, note, notes, interpreted, download };
  turn.regenerate = button('regenerate', 'regenerate', () => {
    $('seed').value = String(Number($('seed').value || 0) + 1);
    send(null, { text: turn.prompt, base: turn.base, raw: turn.raw, force: turn.force, approved: true });
  });
  turn.regenerate.textContent = 'Regenerate (new seed)';
  // One click sends the words as typed instead (remembered for this turn), or back.
  turn.useTyped = button('use-typed', 'use-typed', () => idle() && draw(Object.assign(turn, { raw: !turn.raw })));
  // The interpreter's decision, overridden: a new picture, or an edit of the one before.
  turn.switchKind = button('switch-kind', 'switch-kind', () => idle() && submit(turn, turn.reading.kind === 'edit' ? 'new' : 'edit', true));
  turn.drawAnyway = button('draw-anyway', 'draw-anyway', () => idle() && draw(turn));
  turn.drawAnyway.textContent = 'Draw it anyway';
  const reading = el('div', 'reading');
  reading.append(interpreted, turn.useTyped, turn.switchKind);
  const actions = el('div', 'actions');
  actions.append(download, turn.regenerate);
  li.append(el('p', 'prompt', { textContent: prompt }), reading, notes, note, turn.drawAnyway, frame, meta, actions);
  $('conversation').append(li);
  turn.ctx = canvas.getContext('2d');
  turn.ctx.fillStyle = '#0b0c10'; // darker than the page: the image's full extent shows while it develops
  turn.ctx.fillRect(0, 0, size, size);
  state.turns.push(turn);
  setTurnState(turn, kind === 'upload' ? 'generating' : 'reading');
  li.scrollIntoView({ block: 'end', behavior: 'smooth' });
  return turn;
}

/** Whether the engine is free for a turn's button; says so when it is not. */
function idle() {
  if (state.running) setStatus(advice('Busy'), 'warn');
  return !state.running && state.ready;
}

/** Whether the model reads this turn's words as typed (the turn's choice, or the setting). */
const sendsTyped = (turn) => turn.raw || $('raw').checked;

/** Shows how the turn's message was read: the text the model reads, new picture or edit, and the notes. */
function showReading(turn) {
  const r = turn.reading;
  turn.li.dataset.kind = r.kind;
  const what = r.kind === 'edit' ? 'an edit of the picture above' : 'a new picture';
  turn.interpreted.textContent = sendsTyped(turn)
    ? `sent as typed · ${what} (interpreted as “${r.canonical}”)`
    : `interpreted as “${r.canonical}” · ${what}`;
  turn.interpreted.hidden = false;
  turn.useTyped.hidden = false;
  turn.useTyped.textContent = turn.raw ? 'Use the interpretation' : 'Send my words as typed';
  turn.switchKind.hidden = !turn.base;
  turn.switchKind.textContent = r.kind === 'edit' ? 'Make it a new picture' : 'Edit the picture above instead';
  turn.notes.textContent = r.notes.join(' · ');
  turn.notes.hidden = r.notes.length === 0;
  turn.note.textContent = r.note ?? '';
  turn.note.hidden = !r.note;
}

/**
 * Reads the turn's message as the model will (after the picture it follows, or as `force` says), then draws
 * it; a message with words the model does not know waits for "Draw it anyway" unless `approved`.
 */
async function submit(turn, force = null, approved = false) {
  state.running = turn.id;
  $('send').disabled = true;
  setTurnState(turn, 'reading');
  try {
    turn.reading = await engine.interpret(turn.prompt, { picture: !!turn.base, scene: turn.base?.scene ?? null, force });
    turn.force = force;
  } catch (e) {
    failTurn(turn, e.name, e.message);
    endRun();
    return;
  }
  showReading(turn);
  if (turn.reading.note && !approved) {
    setTurnState(turn, 'waiting');
    turn.drawAnyway.hidden = false;
    endRun();
    return;
  }
  draw(turn);
}

/** Draws the turn's picture (again): the edit of the picture before it, or a new one. */
function draw(turn) {
  showReading(turn);
  turn.drawAnyway.hidden = true;
  turn.download.hidden = true;
  turn.regenerate.hidden = true;
  turn.marker.hidden = false;
  turn.marker.style.top = '0%';
  turn.veil.hidden = true;
  turn.meta.textContent = '';
  turn.ctx.fillStyle = '#0b0c10';
  turn.ctx.fillRect(0, 0, turn.canvas.width, turn.canvas.height);
  const context = turn.reading.kind === 'edit' && turn.base ? turn.base.tokens : null;
  turn.context = context;
  state.running = turn.id;
  $('stop').disabled = false;
  $('send').disabled = true;
  turn.png = null;
  turn.settings = settings();
  setTurnState(turn, 'generating');
  rememberSettings();
  const prompt = sendsTyped(turn) ? turn.prompt : turn.reading.canonical;
  window.tessera.events.push({ type: ToWorker.GENERATE, id: turn.id, context: context ? context.length : 0, prompt, at: performance.now() });
  engine.post({ type: ToWorker.GENERATE, id: turn.id, prompt, typed: turn.prompt, context, settings: turn.settings });
}

/** The composer's settings, stored with the conversation (a reload brings them back with it). */
function rememberSettings() {
  if (!state.conversation) return;
  state.conversation.settings = { fields: settingFields(), raw: $('raw').checked };
}

/** Every setting field's text, by test id. */
const settingFields = () => Object.fromEntries(['seed', ...Object.values(SAMPLING_FIELDS)].map((f) => [f, $(f).value]));

function settings() {
  const num = (sel, fallback) => {
    const v = $(sel).value.trim();
    return v === '' ? fallback : Number(v);
  };
  const sampling = Object.entries(SAMPLING_FIELDS).map(([setting, field]) => [setting, num(field, null)]);
  return { seed: num('seed', 0), ...Object.fromEntries(sampling) };
}

/**
 * Sends the composer's message (or, for Regenerate, `again`: the same message after the same picture) as a
 * new turn: it follows the last picture, and the interpreter decides whether it edits it.
 */
function send(event, again = null) {
  event?.preventDefault();
  const box = $('prompt');
  const prompt = again ? again.text : box.value.trim();
  if (state.running) return setStatus(advice('Busy'), 'warn');
  if (!state.ready) return setStatus('The model is still loading.', 'warn');
  if (!prompt) return setStatus(advice('EmptyPrompt'), 'warn');
  if (prompt.length > MAX_PROMPT_CHARS) {
    return setStatus(`The prompt is ${prompt.length} characters; this model reads about ${MAX_PROMPT_CHARS}. ${advice('PromptTooLong')}`, 'warn');
  }
  if (!again) box.value = '';
  const turn = addTurn('generate', prompt, again ?? { base: lastImage() ?? null });
  return submit(turn, again?.force ?? null, again?.approved ?? false);
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

/** Empties the page's conversation (what is stored stays). */
function clearConversation() {
  for (const turn of state.turns) {
    if (turn.download.href) URL.revokeObjectURL(turn.download.href);
    turn.li.remove();
  }
  state.turns = [];
  state.conversation = null;
}

/** A stored turn's state as it comes back: one cut off mid-way (a reload, a crash) is stopped where it was. */
const RESTORED_STATE = { reading: 'stopped', generating: 'stopped', waiting: 'waiting', done: 'done', stopped: 'stopped', error: 'error' };

/** Shows a stored conversation as it was left, its settings in the composer. */
async function showConversation(conversation) {
  clearConversation();
  state.conversation = conversation;
  for (const [field, value] of Object.entries(conversation.settings?.fields ?? {})) $(field).value = value;
  if (conversation.settings) $('raw').checked = conversation.settings.raw;
  const bySeq = new Map();
  for (const r of await loadTurns(conversation.id)) {
    const turn = addTurn(r.kind, r.prompt, { base: bySeq.get(r.base) ?? null, raw: r.raw, size: r.size, restoring: true });
    bySeq.set(r.seq, turn);
    Object.assign(turn, {
      conversation, seq: r.seq, force: r.force, reading: r.reading, tokens: r.tokens, scene: r.scene, modelSha: r.modelSha,
      modelId: r.modelId, settings: r.settings, png: r.png,
    });
    if (r.rows) turn.li.dataset.rows = r.rows;
    if (r.reading) showReading(turn);
    const picture = r.png ?? r.partial;
    if (picture) turn.ctx.drawImage(await createImageBitmap(picture), 0, 0);
    turn.marker.hidden = true;
    const now = RESTORED_STATE[r.state] ?? 'error';
    turn.meta.textContent = now === r.state ? r.meta : `interrupted${r.rows ? ` after ${r.rows} rows` : ''}: the page closed while it was drawn. Press Regenerate to draw it again.`;
    if (turn.png) {
      turn.download.href = URL.createObjectURL(turn.png);
      turn.download.hidden = false;
    }
    turn.regenerate.hidden = turn.kind === 'upload' || now === 'waiting';
    turn.drawAnyway.hidden = now !== 'waiting';
    turn.restoring = false;
    turn.state = now;
    turn.li.dataset.state = now;
    if (now !== r.state) persist(turn);
  }
}

/** Opens the most recent stored conversation, if any (at start). */
async function restoreLatest() {
  try {
    const [latest] = await listConversations();
    if (latest && state.turns.length === 0) await showConversation(latest);
  } catch (e) {
    await storageProblem(e);
  }
}

/** The Conversations panel: every stored conversation, to open or delete, and a new one to start. */
async function showConversationList() {
  const list = $('conversation-list');
  let all;
  try {
    all = await listConversations();
  } catch (e) {
    list.replaceChildren();
    return storageProblem(e);
  }
  list.replaceChildren(...all.map((c) => {
    const li = el('li', 'stored-conversation');
    li.dataset.testid = 'stored-conversation';
    if (c.id === state.conversation?.id) li.setAttribute('aria-current', 'true');
    const open = button('open', 'open-conversation', () => {
      if (state.running) return setStatus(advice('Busy'), 'warn');
      return showConversation(c).then(showConversationList, storageProblem);
    });
    open.hidden = false;
    open.textContent = `${c.title || '(empty)'} · ${new Date(c.updated).toLocaleString()}`;
    const remove = button('delete', 'delete-conversation', async () => {
      if (state.running && c.id === state.conversation?.id) return setStatus(advice('Busy'), 'warn');
      try {
        await deleteConversation(c.id);
        if (c.id === state.conversation?.id) clearConversation();
      } catch (e) {
        await storageProblem(e);
      }
      return showConversationList();
    });
    remove.hidden = false;
    remove.textContent = 'Delete';
    remove.setAttribute('aria-label', `Delete the conversation “${c.title}”`);
    li.append(open, remove);
    return li;
  }));
}

function setupConversations() {
  $('new-conversation').onclick = () => {
    if (state.running) return setStatus(advice('Busy'), 'warn');
    clearConversation();
    return showConversationList();
  };
  $('conversations').addEventListener('toggle', (e) => e.target.open && showConversationList());
}

/** The loaded model, and where it came from, in the Model panel. */
function showModel(info) {
  const from = info.source.file ? `the file ${info.source.file}` : `${info.source.url}${info.source.fromCache ? ' (from this browser’s cache, works offline)' : ''}`;
  const family = { tessera: 'Tessera', janus: 'Janus' }[info.family] ?? info.family;
  $('model-info').textContent = `${info.modelId} · ${family}, ${(info.parameters / 1e6).toFixed(1)} M parameters · ${mb(info.source.bytes)} · sha256 ${info.sha256.slice(0, 12)}… · ${from}`;
  $('model-load').disabled = false;
}

/** The Model panel's list of the models this browser keeps for offline use, each with its size and a Remove. */
async function showCachedModels() {
  const list = $('cached-models');
  const models = await cachedModels().catch(() => []);
  list.replaceChildren(...models.map(({ folder, bytes, complete }) => {
    const li = el('li', 'cached-model');
    li.dataset.testid = 'cached-model';
    const loaded = state.info?.source.url === folder ? ' · loaded now' : '';
    li.append(el('span', 'name', { textContent: `${folder.replace(location.origin, '')} · ${mb(bytes)}${complete ? '' : ' · incomplete'}${loaded}` }));
    const remove = button('remove', 'remove-cached-model', async () => {
      await forgetModel(folder).catch((e) => setStatus(`${folder} could not be removed: ${e.message}`, 'warn'));
      return showCachedModels();
    });
    remove.hidden = false;
    remove.textContent = 'Remove';
    li.append(remove);
    return li;
  }));
  $('cached-models-empty').hidden = models.length > 0;
}

/** Another model, from a folder on this site or from its three files; the current one stays until it is accepted. */
function setupModelPanel() {
  const refuse = (message) => setStatus(`That model was not loaded: ${message}.`, 'warn');
  const replace = (source) => {
    if (state.running) return setStatus(advice('Busy'), 'warn');
    if (!state.ready) return setStatus('The model is still loading.', 'warn');
    $('model-load').disabled = true;
    state.replacing = true;
    setStatus('Checking the new model…');
    return engine.post({ type: ToWorker.REPLACE, source });
  };
  document.querySelector('details.model-panel').addEventListener('toggle', (e) => e.target.open && showCachedModels());
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
    // The files themselves (Blobs, not copies): the worker reads them, and reads them again if it restarts.
    return replace({ files: { config, weights, sha256, name: weights.name } });
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
setupConversations();
// Settles once the last conversation is back on the page (tests and scripts wait on it).
window.tessera.restored = restoreLatest();
/** The check panel's line on the "made here" index: how many pictures it holds, their size, and a Forget. */
async function showMadeHereSize() {
  const line = $('made-here-size');
  try {
    const n = await rememberedCount();
    line.textContent = `This browser remembers ${n} picture${n === 1 ? '' : 's'} it drew (about ${mb(n * ENTRY_BYTES)}; the oldest go beyond ${MAX_REMEMBERED.toLocaleString('en')}).`;
    $('forget-made-here').hidden = n === 0;
  } catch (e) {
    line.textContent = `This browser's index of its pictures cannot be read: ${e.message || e.name}.`;
    $('forget-made-here').hidden = true;
  }
}
document.querySelector('details.check-panel').addEventListener('toggle', (e) => {
  if (!e.target.open) return;
  showMadeHereSize();
  prepareMatching().catch(() => {}); // an unreadable index is said when an image is checked
});
$('forget-made-here').addEventListener('click', () =>
  forgetAll().catch((e) => setStatus(`The index could not be emptied: ${e.message || e.name}`, 'warn')).then(showMadeHereSize));
$('check-file').addEventListener('change', (e) => {
  const file = e.target.files[0];
  e.target.value = '';
  if (file) checkImage(file, $('check-prompt').value.trim()).catch((err) => { $('check-result').textContent = err.message; });
});
setupOffline();
