// "Made here?" matching, off the page's thread: keeps the remembered pictures in memory (with their coarse
// grids) and brings them up to date from IndexedDB before each match, reading only what was added since.
//
//   page → worker  {id, thumb}       (thumb null: only read the index, and answer match null)
//   worker → page  {id, match: {entry, score}} or {id, error: {name, message}}

import { MADE_HERE as STORE, transact } from './db.js';
import { closestOf, coarseEntry } from './made-here.js';

/** id → entry with its `coarse` grids. Ids grow (autoIncrement): what is new is above the last one read. */
const known = new Map();
let last = 0;

async function sync() {
  const read = await transact([STORE], 'readonly', (s) => {
    const count = s[STORE].count();
    const fresh = s[STORE].getAll(IDBKeyRange.lowerBound(last, true));
    return () => [count.result, fresh.result]; // read once the transaction has completed
  });
  const [count, added] = read();
  for (const entry of added) {
    known.set(entry.id, { ...entry, coarse: coarseEntry(entry.thumb) });
    last = Math.max(last, entry.id);
  }
  if (known.size === count) return;
  // Some went (the oldest out, or all forgotten): keep only the ids still there.
  const present = new Set(await transact([STORE], 'readonly', (s) => s[STORE].getAllKeys()));
  for (const id of known.keys()) if (!present.has(id)) known.delete(id);
}

self.onmessage = async ({ data: { id, thumb } }) => {
  try {
    await sync();
    if (!thumb) return self.postMessage({ id, match: null });
    const { entry, score } = closestOf(thumb, [...known.values()]);
    const { coarse, thumb: _, ...shown } = entry ?? {};
    self.postMessage({ id, match: { entry: entry ? shown : null, score } });
  } catch (e) {
    self.postMessage({ id, error: { name: e.name, message: e.message } });
  }
};
