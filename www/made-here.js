// "Made here?": a private index, in this browser's IndexedDB, of every picture the app generated (never sent
// anywhere), and the matching that tells whether a dropped image is one of them, also after a re-save as
// JPEG or a light crop. Each picture is kept as a 32×32 RGB thumbnail plus its token grid's sha256.
//
// Matching compares a 16×16 grid of colours. Backgrounds are large and alike in this model's world, so the
// score counts only cells where either image has something other than the background:
// score = 1 − (cells that differ) / (cells with content in either image). A light crop is undone by trying
// every crop of up to 3/32 of the stored thumbnail on each side.

export const THUMB = 32;
const GRID = 16;
/** A cell differs when a channel differs by more than this (JPEG moves flat colours by far less). */
const DIFFERENT = 48;
/** The most of each side a crop search takes away, in thumbnail pixels. */
const MAX_CROP = 3;
/** At or above this score an image counts as made here (measured: see bench/made-here-bench.mjs). */
export const MADE_HERE = 0.8;

/** A 32×32 RGB thumbnail of an image, canvas or bitmap. */
export function thumbnail(source) {
  const canvas = new OffscreenCanvas(THUMB, THUMB);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(source, 0, 0, THUMB, THUMB);
  const rgba = ctx.getImageData(0, 0, THUMB, THUMB).data;
  const rgb = new Uint8Array(THUMB * THUMB * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) rgb.set(rgba.subarray(i, i + 3), j);
  return rgb;
}

/** The GRID×GRID colours of the region [x0, x1)×[y0, y1) of a thumbnail, sampled bilinearly at cell centres. */
function cells(thumb, x0 = 0, y0 = 0, x1 = THUMB, y1 = THUMB) {
  const out = new Float32Array(GRID * GRID * 3);
  const at = (x, y, c) => thumb[(y * THUMB + x) * 3 + c];
  for (let gy = 0; gy < GRID; gy++) {
    const y = Math.min(THUMB - 1.001, Math.max(0, y0 + ((gy + 0.5) / GRID) * (y1 - y0) - 0.5));
    const yi = Math.floor(y);
    const fy = y - yi;
    for (let gx = 0; gx < GRID; gx++) {
      const x = Math.min(THUMB - 1.001, Math.max(0, x0 + ((gx + 0.5) / GRID) * (x1 - x0) - 0.5));
      const xi = Math.floor(x);
      const fx = x - xi;
      for (let c = 0; c < 3; c++) {
        const top = at(xi, yi, c) * (1 - fx) + at(xi + 1, yi, c) * fx;
        const bottom = at(xi, yi + 1, c) * (1 - fx) + at(xi + 1, yi + 1, c) * fx;
        out[(gy * GRID + gx) * 3 + c] = top * (1 - fy) + bottom * fy;
      }
    }
  }
  return out;
}

const distance = (a, i, b, j) => Math.max(Math.abs(a[i] - b[j]), Math.abs(a[i + 1] - b[j + 1]), Math.abs(a[i + 2] - b[j + 2]));

/** The most common colour of a cell grid (to 32 levels a channel): the background. */
function background(grid) {
  const counts = new Map();
  let best = 0;
  let colour = [0, 0, 0];
  for (let i = 0; i < grid.length; i += 3) {
    const key = ((grid[i] >> 3) << 10) | ((grid[i + 1] >> 3) << 5) | (grid[i + 2] >> 3);
    const n = (counts.get(key) ?? 0) + 1;
    counts.set(key, n);
    if (n > best) [best, colour] = [n, [grid[i], grid[i + 1], grid[i + 2]]];
  }
  return colour;
}

function score(query, stored, bg) {
  let content = 0;
  let differ = 0;
  for (let i = 0; i < query.length; i += 3) {
    if (distance(query, i, bg, 0) > DIFFERENT || distance(stored, i, bg, 0) > DIFFERENT) content++;
    if (distance(query, i, stored, i) > DIFFERENT) differ++;
  }
  return 1 - differ / Math.max(content, 8);
}

/** How alike a query thumbnail is to a stored one, in [0, 1], allowing the query to be a light crop of it. */
export function similarity(query, stored) {
  const q = cells(query);
  const bg = background(q);
  let best = -Infinity;
  for (let l = 0; l <= MAX_CROP; l++) {
    for (let t = 0; t <= MAX_CROP; t++) {
      for (let r = 0; r <= MAX_CROP; r++) {
        for (let b = 0; b <= MAX_CROP; b++) {
          best = Math.max(best, score(q, cells(stored, l, t, THUMB - r, THUMB - b), bg));
          if (best === 1) return 1;
        }
      }
    }
  }
  return Math.max(0, best);
}

const DB = 'tessera';
const STORE = 'made-here';

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: 'id', autoIncrement: true });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function transaction(mode, work) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const result = work(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(result.result);
      tx.onerror = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/** Records a generated picture: `{thumb, tokensSha256, modelId, prompt, at}`. */
export function remember(entry) {
  return transaction('readwrite', (store) => store.add({ ...entry, at: Date.now() }));
}

/** Every remembered picture. */
export function remembered() {
  return transaction('readonly', (store) => store.getAll());
}

/** The remembered picture most like `thumb`: `{entry, score}`, entry null when nothing is remembered. */
export async function closest(thumb) {
  let best = { entry: null, score: 0 };
  for (const entry of await remembered()) {
    const s = similarity(thumb, entry.thumb);
    if (s > best.score) best = { entry, score: s };
  }
  return best;
}
