// "Made here?": a private index, in this browser's IndexedDB, of every picture the app generated (never sent
// anywhere), and the matching that tells whether a dropped image is one of them, also after a re-save as
// JPEG or a light crop. Each picture is kept as a 32×32 RGB thumbnail plus its token grid's sha256.
//
// Matching compares a 16×16 grid of colours. Backgrounds are large and alike in this model's world, so the
// score counts only cells where either image has something other than the background:
// score = 1 − (cells that differ) / (cells with content in either image). A light crop is undone by trying
// every crop of up to 3/32 of the stored thumbnail on each side.

import { MADE_HERE as STORE, transact } from './db.js';

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

/**
 * Where `grid` cell centres over [a0, a1) of a THUMB-pixel axis fall: for each cell the pixel before it and
 * the weight of the pixel after it (bilinear sampling, clamped to the thumbnail).
 */
function taps(a0, a1, grid) {
  const at = new Int32Array(grid);
  const weight = new Float32Array(grid);
  for (let g = 0; g < grid; g++) {
    const p = Math.min(THUMB - 1.001, Math.max(0, a0 + ((g + 0.5) / grid) * (a1 - a0) - 0.5));
    at[g] = Math.floor(p);
    weight[g] = p - at[g];
  }
  return { at, weight };
}

/** Each of the THUMB rows of a thumbnail sampled at `grid` columns over [x0, x1): THUMB×grid×3. */
function sampleRows(thumb, x0, x1, grid) {
  const { at, weight } = taps(x0, x1, grid);
  const out = new Float32Array(THUMB * grid * 3);
  for (let y = 0; y < THUMB; y++) {
    for (let g = 0; g < grid; g++) {
      const i = (y * THUMB + at[g]) * 3;
      const f = weight[g];
      for (let c = 0; c < 3; c++) out[(y * grid + g) * 3 + c] = thumb[i + c] * (1 - f) + thumb[i + 3 + c] * f;
    }
  }
  return out;
}

/** Rows from `sampleRows` sampled at `grid` rows over [y0, y1), into `out` (grid×grid×3). */
function sampleColumns(rows, y0, y1, grid, out = new Float32Array(grid * grid * 3)) {
  const { at, weight } = taps(y0, y1, grid);
  const width = grid * 3;
  for (let g = 0; g < grid; g++) {
    const top = at[g] * width;
    const f = weight[g];
    for (let k = 0; k < width; k++) out[g * width + k] = rows[top + k] * (1 - f) + rows[top + width + k] * f;
  }
  return out;
}

/**
 * The grid×grid colours of the region [x0, x1)×[y0, y1) of a thumbnail, sampled bilinearly at cell centres:
 * one pass along the rows, then one down the columns (the weights of a 2-D tap, and the row pass is shared
 * by every crop with the same left and right edges).
 */
function cells(thumb, x0 = 0, y0 = 0, x1 = THUMB, y1 = THUMB, grid = GRID) {
  return sampleColumns(sampleRows(thumb, x0, x1, grid), y0, y1, grid);
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

/** Which cells of a grid hold something other than the background `bg`. */
function content(grid, bg) {
  const out = new Uint8Array(grid.length / 3);
  for (let i = 0; i < grid.length; i += 3) out[i / 3] = distance(grid, i, bg, 0) > DIFFERENT ? 1 : 0;
  return out;
}

function score(query, queryContent, stored, bg) {
  let withContent = 0;
  let differ = 0;
  for (let i = 0, cell = 0; i < query.length; i += 3, cell++) {
    if (queryContent[cell] || distance(stored, i, bg, 0) > DIFFERENT) withContent++;
    if (distance(query, i, stored, i) > DIFFERENT) differ++;
  }
  return 1 - differ / Math.max(withContent, 8);
}

/** How alike a query thumbnail is to a stored one, in [0, 1], allowing the query to be a light crop of it. */
export function similarity(query, stored) {
  const q = cells(query);
  const bg = background(q);
  const queryContent = content(q, bg);
  const crop = new Float32Array(q.length);
  let best = -Infinity;
  for (let l = 0; l <= MAX_CROP; l++) {
    for (let r = 0; r <= MAX_CROP; r++) {
      const rows = sampleRows(stored, l, THUMB - r, GRID);
      for (let t = 0; t <= MAX_CROP; t++) {
        for (let b = 0; b <= MAX_CROP; b++) {
          best = Math.max(best, score(q, queryContent, sampleColumns(rows, t, THUMB - b, GRID, crop), bg));
          if (best === 1) return 1;
        }
      }
    }
  }
  return Math.max(0, best);
}

/** The most pictures the index keeps; the oldest go first (each entry is about 3 KB). */
export const MAX_REMEMBERED = 10_000;

/** Records a generated picture: `{thumb, tokensSha256, modelId, prompt, at}`; the oldest beyond the cap go. */
export function remember(entry) {
  return transact([STORE], 'readwrite', (s) => {
    const store = s[STORE];
    store.add({ ...entry, at: Date.now() });
    store.count().onsuccess = ({ target }) => {
      let extra = target.result - MAX_REMEMBERED;
      if (extra <= 0) return;
      store.openCursor().onsuccess = ({ target: { result: cursor } }) => {
        if (!cursor || extra-- <= 0) return;
        cursor.delete();
        cursor.continue();
      };
    };
  });
}

/** About how many bytes an entry takes: its thumbnail, its sha256 and its prompt. */
export const ENTRY_BYTES = THUMB * THUMB * 3 + 200;

/** How many pictures the index holds. */
export function rememberedCount() {
  return transact([STORE], 'readonly', (s) => s[STORE].count());
}

/** Empties the index. */
export function forgetAll() {
  return transact([STORE], 'readwrite', (s) => s[STORE].clear());
}

/**
 * The full crop search is ~256 grid comparisons an entry, too slow for thousands of them; a coarse 8×8 grid
 * picks the candidates first. Each entry has two: the whole picture (for a re-saved or rescaled copy) and
 * the middle of the crop range (a query cropped anywhere in it is at most 1.5 thumbnail pixels a side away
 * from that); an entry's coarse distance is the smaller of the two.
 */
const COARSE = 8;
/** How many of the coarsest-closest entries get the full crop search (measured: bench/made-here-bench.mjs). */
const CANDIDATES = 32;

/** The coarse grid a query is compared by (the whole image), and an entry's two (whole, middle crop). */
const coarseQuery = (thumb) => cells(thumb, 0, 0, THUMB, THUMB, COARSE);
export const coarseEntry = (thumb) => [coarseQuery(thumb),
  cells(thumb, MAX_CROP / 2, MAX_CROP / 2, THUMB - MAX_CROP / 2, THUMB - MAX_CROP / 2, COARSE)];

/** The L1 distance of two arrays of the same length (coarse grids, thumbnails). */
function l1Distance(a, b) {
  let d = 0;
  for (let i = 0; i < a.length; i++) d += Math.abs(a[i] - b[i]);
  return d;
}

/**
 * Of `entries` (each with its `thumb` and its `coarse` grids from `coarseEntry`), the one most like `thumb`:
 * `{entry, score}`, entry null when there are none. Only the CANDIDATES coarsest-closest get the full crop
 * search. Equal scores
 * (the same scene drawn twice scores 1 against both) go to the one closer pixel for pixel: the original of
 * a re-saved copy rather than another drawing of its prompt.
 */
export function closestOf(thumb, entries) {
  const q = coarseQuery(thumb);
  const ranked = entries.map((e) => [Math.min(l1Distance(q, e.coarse[0]), l1Distance(q, e.coarse[1])), e])
    .sort((a, b) => a[0] - b[0]);
  let best = { entry: null, score: 0 };
  for (const [, entry] of ranked.slice(0, CANDIDATES)) {
    const s = similarity(thumb, entry.thumb);
    const better = !best.entry || s > best.score
      || (s === best.score && l1Distance(thumb, entry.thumb) < l1Distance(thumb, best.entry.thumb));
    if (better) best = { entry, score: s };
  }
  return best;
}

let matcher = null;
let asked = 0;
const waiting = new Map();

/**
 * The remembered picture most like `thumb`: `{entry, score}` (entry null when nothing is remembered), found in
 * a worker so the page never waits on the search. Rejects with the worker's error (storage unreadable).
 */
export const closest = (thumb) => askMatcher(thumb);

/**
 * Has the worker read the index now (a second or so for 10 000 pictures), so that the first `closest` is as
 * quick as the later ones. Resolves with null; rejects as `closest` does.
 */
export const prepareMatching = () => askMatcher(null);

function askMatcher(thumb) {
  if (!matcher) {
    matcher = new Worker(new URL('./made-here-worker.js', import.meta.url), { type: 'module' });
    matcher.onmessage = ({ data }) => {
      const { resolve, reject } = waiting.get(data.id);
      waiting.delete(data.id);
      if (data.error) reject(Object.assign(new Error(data.error.message), { name: data.error.name }));
      else resolve(data.match);
    };
    matcher.onerror = (e) => {
      e.preventDefault();
      for (const { reject } of waiting.values()) reject(new Error(`the matching worker failed: ${e.message}`));
      waiting.clear();
      matcher = null;
    };
  }
  const id = ++asked;
  return new Promise((resolve, reject) => {
    waiting.set(id, { resolve, reject });
    matcher.postMessage({ id, thumb });
  });
}
