// Content Credentials for the pictures this browser makes, as the command line's: a signing key made for this
// browser (WebCrypto ECDSA P-256, non-extractable, kept in IndexedDB), certified by a local authority made with
// it, and a signed C2PA manifest in every PNG. The manifest is made and read by `pkg/credentials/` (c2pa-rs built
// for wasm32, loaded on first use); the private key never leaves WebCrypto: the module calls back to sign.
// No DOM here: the engine worker imports it.

import { KEYS, transact } from './db.js';

const KEY_ID = 'signing';
let module = null;

/** The credentials wasm module, loaded once. */
function credentials() {
  module ??= import('../pkg/credentials/tessera_credentials.js').then(async (m) => {
    await m.default();
    return m;
  });
  return module;
}

const storedKey = () => transact([KEYS], 'readonly', (s) => s[KEYS].get(KEY_ID));

/**
 * This browser's key `{privateKey, chain: [end-entity DER, authority DER], certificateSha256}`, made on first
 * use. Tabs and workers of this site make it one at a time (a Web Lock), so two first uses end with one key.
 */
async function browserKey() {
  const key = await storedKey();
  if (key) return key;
  return navigator.locks.request('tessera-signing-key', async () => {
    const made = await storedKey();
    if (made) return made;
    const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
    const publicPoint = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
    const c = await credentials();
    const chain = c.issueCertificates(publicPoint, new Date().getUTCFullYear());
    const fresh = { id: KEY_ID, privateKey: pair.privateKey, chain, certificateSha256: c.certificateSha256(chain[0]), created: Date.now() };
    try {
      await transact([KEYS], 'readwrite', (s) => s[KEYS].add(fresh));
    } catch (e) {
      // A key that cannot be kept would make every picture's signer a stranger to the next: none is used.
      const why = e.name === 'QuotaExceededError' ? "the browser's storage for this site is full" : `${e.name}: ${e.message}`;
      throw Object.assign(new Error(`this browser's signing key could not be kept (${why})`), { name: 'KeyNotKept' });
    }
    return fresh;
  });
}

/**
 * `png` (the engine's, carrying `claims` in XMP) with a signed manifest embedded: resolves to `{png, ms}`,
 * `ms` the time signing took (the key's first making and the module's first load included).
 */
export async function sign(png, claims, title = 'tessera.png') {
  const start = performance.now();
  const [c, key] = await Promise.all([credentials(), browserKey()]);
  const es256 = async (bytes) => new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key.privateKey, bytes));
  const signed = await c.signPng(png, title, JSON.stringify(claims), key.chain, es256);
  return { png: signed, ms: performance.now() - start };
}

/**
 * What `png`'s manifest says of `claims` (its XMP claims): `null` without a manifest; else `{valid, failures,
 * signer, certificateSha256, signedAt, digitalSourceType, problem, thisBrowser}`, `problem` null when a valid
 * signature covers the claims. Rejects when the manifest cannot be parsed.
 */
export async function readSignature(png, claims) {
  const c = await credentials();
  const report = JSON.parse(await c.readCredentials(png, JSON.stringify(claims)));
  if (!report) return null;
  const key = await storedKey().catch(() => null);
  return { ...report, thisBrowser: key?.certificateSha256 === report.certificateSha256 };
}
