// This browser's IndexedDB for the app, in one place: the database, its stores, and transactions that always
// settle. Nothing stored here leaves the browser. No DOM here: pages and workers import it.
//
//   made-here       {id (auto), thumb, tokensSha256, modelId, prompt, at}: pictures this browser drew
//   conversations   {id, title, created, updated, settings}: one per conversation
//   turns           {conversation, seq, …}: a conversation's turns, keyed [conversation, seq]
//   keys            {id: 'signing', privateKey (a non-extractable CryptoKey), chain, certificateSha256, created}

const NAME = 'tessera';
const VERSION = 3;

export const MADE_HERE = 'made-here';
export const CONVERSATIONS = 'conversations';
export const TURNS = 'turns';
export const KEYS = 'keys';

/** The space this site uses and may use, in bytes (`{usage, quota}`), where the browser says; else null. */
export async function storageSpace() {
  return (await navigator.storage?.estimate?.().catch(() => null)) ?? null;
}

/** Resolves with the open database; rejects with a named error where IndexedDB is missing or refused. */
function open() {
  return new Promise((resolve, reject) => {
    if (!self.indexedDB) return reject(Object.assign(new Error('this browser keeps no IndexedDB here (private mode?)'), { name: 'StorageUnavailable' }));
    const request = indexedDB.open(NAME, VERSION);
    request.onupgradeneeded = () => {
      const db = request.result;
      if (!db.objectStoreNames.contains(MADE_HERE)) db.createObjectStore(MADE_HERE, { keyPath: 'id', autoIncrement: true });
      if (!db.objectStoreNames.contains(CONVERSATIONS)) db.createObjectStore(CONVERSATIONS, { keyPath: 'id' });
      if (!db.objectStoreNames.contains(TURNS)) db.createObjectStore(TURNS, { keyPath: ['conversation', 'seq'] });
      if (!db.objectStoreNames.contains(KEYS)) db.createObjectStore(KEYS, { keyPath: 'id' });
    };
    request.onsuccess = () => {
      // Another tab's newer version of the app may upgrade the database: this connection steps aside.
      request.result.onversionchange = () => request.result.close();
      resolve(request.result);
    };
    request.onerror = () => reject(request.error);
    request.onblocked = () => reject(Object.assign(new Error('another tab holds an older version of the app open: close it and reload'), { name: 'StorageBlocked' }));
  });
}

/**
 * Runs `work(stores)` in one transaction over the stores `names` (`stores[name]` each) and resolves, once the
 * transaction has committed, with what `work` returned (an IDBRequest's result when it returned a request).
 * Rejects with the transaction's error on any failure, a quota abort included: it always settles.
 */
export async function transact(names, mode, work) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(names, mode);
      const stores = Object.fromEntries(names.map((n) => [n, tx.objectStore(n)]));
      let result;
      try {
        result = work(stores);
      } catch (e) {
        tx.abort();
        reject(e);
        return;
      }
      tx.oncomplete = () => resolve(result instanceof IDBRequest ? result.result : result);
      tx.onabort = () => reject(tx.error ?? Object.assign(new Error('the storage transaction was aborted'), { name: 'AbortError' }));
    });
  } finally {
    db.close();
  }
}
