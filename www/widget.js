// <tessera-generator>: the engine as one custom element for any page on the same site as these files.
//
//   <script type="module" src="www/widget.js"></script>
//   <tessera-generator prompt="a big red circle in the center on a white background" seed="7"></tessera-generator>
//
// Attributes: `prompt` (used when generate() gets none), `seed` (default 0), `model` (a model folder or its
// config.json; default the bundled model), and optionally `temperature`, `top-k`, `top-p`, `guidance` (left out:
// the engine's defaults) and `raw` (the model reads the prompt as typed, not as interpreted).
// Methods: `generate(prompt?)` → Promise<Blob> (a PNG with provenance metadata), `cancel()`.
// Events (bubbling, composed): `tessera-ready` {modelId, backend}, `tessera-interpreted` {canonical, kind,
// unknown, notes, note, …: the prompt as the model reads it}, `tessera-row` {row, rows}, `tessera-preview` {rows, of},
// `tessera-done` {blob, tokens, ms}, `tessera-error` {name, message}.
// Every element with the same model shares one worker and one loaded model; their generations take turns.
// Styles live in the element's shadow root: nothing leaks in or out (style it through `::part(canvas)`,
// `::part(caption)` and `::part(preview-veil)`, which dims the rows a preview has not drawn yet).

import { DEFAULT_MODEL, EngineClient, modelFolder } from './engine.js';

const clients = new Map(); // model folder URL → EngineClient

function clientFor(folder) {
  if (!clients.has(folder)) clients.set(folder, new EngineClient(folder));
  return clients.get(folder);
}

/** The folder of an element's `model` attribute (relative to the page), or the bundled model's. */
const folderOf = (element) => modelFolder(element.getAttribute('model') || DEFAULT_MODEL, document.baseURI);

const sheet = new CSSStyleSheet();
sheet.replaceSync(`
  :host { display: inline-block; width: 256px; max-width: 100%; font: 13px/1.4 system-ui, sans-serif; color: inherit; }
  :host([hidden]) { display: none; }
  .frame { position: relative; aspect-ratio: 1; background: #0b0c10; border-radius: 6px; overflow: hidden; }
  canvas { display: block; width: 100%; height: 100%; image-rendering: auto; }
  .veil { position: absolute; left: 0; right: 0; bottom: 0; display: flex; align-items: center; justify-content: center;
    background: rgba(11, 12, 16, 0.6); color: #c8ccd4; font-size: 11px; letter-spacing: 0.08em; text-transform: uppercase; }
  .veil[hidden] { display: none; }
  .caption { margin: 4px 0 0; opacity: 0.75; font-variant-numeric: tabular-nums; min-height: 1.4em; }
`);

class TesseraGenerator extends HTMLElement {
  static observedAttributes = ['model'];
  #client = null;
  #job = null; // the generation this element is waiting for: {id}
  #canvas;
  #ctx;
  #caption;
  #veil; // over the rows a preview has not drawn yet

  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    root.adoptedStyleSheets = [sheet];
    const frame = document.createElement('div');
    frame.className = 'frame';
    this.#canvas = document.createElement('canvas');
    this.#canvas.part = 'canvas';
    this.#canvas.setAttribute('role', 'img');
    this.#veil = document.createElement('div');
    this.#veil.className = 'veil';
    this.#veil.part = 'preview-veil';
    this.#veil.textContent = 'preview';
    this.#veil.hidden = true;
    frame.append(this.#canvas, this.#veil);
    this.#caption = document.createElement('p');
    this.#caption.className = 'caption';
    this.#caption.part = 'caption';
    this.#caption.setAttribute('role', 'status');
    root.append(frame, this.#caption);
  }

  connectedCallback() {
    this.#connect();
  }

  disconnectedCallback() {
    this.cancel();
  }

  attributeChangedCallback() {
    if (this.isConnected) this.#connect();
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }

  #fail(e) {
    this.#caption.textContent = e.name === 'AbortError' ? 'stopped' : `${e.message}`;
    this.#emit('tessera-error', { name: e.name, message: e.message });
  }

  /** Attach to the shared engine for this element's model; `tessera-ready` once it is loaded. */
  #connect() {
    const client = clientFor(folderOf(this));
    if (client === this.#client) return;
    this.cancel();
    this.#client = client;
    this.#caption.textContent = 'loading the model…';
    client.whenReady().then(
      (info) => {
        if (this.#client !== client) return;
        this.#size(info.imageSize);
        this.#caption.textContent = `ready · ${info.modelId} · ${client.backend}`;
        this.#emit('tessera-ready', { modelId: info.modelId, backend: client.backend });
      },
      (e) => this.#client === client && this.#fail(e),
    );
  }

  #size(n) {
    if (this.#canvas.width === n) return;
    this.#canvas.width = n;
    this.#canvas.height = n;
    this.#ctx = this.#canvas.getContext('2d');
  }

  #settings() {
    const number = (name, fallback) => {
      const v = this.getAttribute(name);
      return v === null || v.trim() === '' ? fallback : Number(v);
    };
    return {
      seed: number('seed', 0), temperature: number('temperature', null), topK: number('top-k', null),
      topP: number('top-p', null), guidance: number('guidance', null), // null: the engine's default
    };
  }

  /** Draws `prompt` (or the `prompt` attribute); resolves to the PNG, rejects with a named Error. */
  async generate(prompt = this.getAttribute('prompt')) {
    const client = this.#client ?? clientFor(folderOf(this));
    if (this.#job) {
      const e = Object.assign(new Error('this element is already drawing; call cancel() first'), { name: 'Busy' });
      this.#fail(e);
      throw e;
    }
    const text = (prompt ?? '').trim();
    this.#canvas.setAttribute('aria-label', text);
    // The model reads the prompt as the engine interprets it, unless the `raw` attribute says as typed.
    let reading;
    this.#job = { id: null }; // busy from here: a second generate() is refused while this one is read
    this.#veil.hidden = true; // a stopped generation's preview stays dimmed until the next one starts
    try {
      reading = await client.interpret(text);
    } catch (e) {
      this.#job = null;
      this.#fail(e);
      throw e;
    }
    this.#emit('tessera-interpreted', reading);
    const model = this.hasAttribute('raw') ? text : reading.canonical;
    const job = client.generate({ prompt: model, typed: text, settings: this.#settings() }, (m) => {
      const size = client.info.imageSize;
      this.#size(size);
      if (m.type === 'preview') {
        // The whole picture so far (a codec that is not row-causal); the rows below `m.rows` are placeholders.
        this.#ctx.putImageData(new ImageData(m.rgba, size, size), 0, 0);
        this.#veil.style.top = `${(m.rows / m.of) * 100}%`;
        this.#veil.hidden = false;
        this.#caption.textContent = `preview: row ${m.rows}/${m.of}`;
        this.#emit('tessera-preview', { rows: m.rows, of: m.of });
        return;
      }
      this.#ctx.putImageData(new ImageData(m.rgba, size, m.height), 0, m.y0);
      this.#veil.hidden = true; // final pixels replace a preview
      this.#caption.textContent = `row ${m.row + 1}/${m.rows}`;
      this.#emit('tessera-row', { row: m.row, rows: m.rows });
    });
    this.#job = job;
    this.#caption.textContent = 'waiting for the engine…';
    try {
      const { png, tokens, stats } = await job.done;
      this.#caption.textContent = `${tokens.length} tokens · ${(stats.ms / 1000).toFixed(1)} s`;
      this.#emit('tessera-done', { blob: png, tokens: tokens.length, ms: stats.ms });
      return png;
    } catch (e) {
      this.#fail(e);
      throw e;
    } finally {
      this.#job = null;
    }
  }

  /** Stops this element's generation between two tokens (or before it starts); `generate()` rejects with AbortError. */
  cancel() {
    if (this.#job?.id != null) this.#client.cancel(this.#job.id);
  }
}

if (!customElements.get('tessera-generator')) customElements.define('tessera-generator', TesseraGenerator);
