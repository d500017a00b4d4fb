// The service worker: after one online visit the app shell (page, scripts, styles, wasm) comes from a cache
// named after the build, so the app starts and generates offline. Models are not its business: the engine's
// worker keeps them in a cache of their own (`www/models.js`), which no app update touches.
//
// Updates are announced, not forced: a new build installs next to the running one and waits until the page
// asks it to take over (the user pressed "Reload"); the old shell cache is deleted once no open tab runs on it.

// A classic script, because browsers compare `importScripts` files byte for byte when they check for an update
// (imports of module service workers are not compared): a new `pkg/build.js` is a new version.
importScripts('pkg/build.js');
const { version: VERSION, build: BUILD } = self.TESSERA_BUILD;

const SHELL_CACHE = `tessera-shell-${VERSION}-${BUILD}`;
const SHELL_PREFIX = 'tessera-shell-';
/** Everything the page needs to start, relative to this script. `pkg/build.js` changes with any of them. */
const SHELL = [
  './', 'index.html', 'pkg/build.js', 'pkg/tessera.js', 'pkg/tessera_bg.wasm',
  'pkg/credentials/tessera_credentials.js', 'pkg/credentials/tessera_credentials_bg.wasm', 'www/credentials.js',
  'www/app.js', 'www/engine.js', 'www/models.js', 'www/protocol.js', 'www/worker.js', 'www/widget.js', 'www/made-here.js', 'www/made-here-worker.js', 'www/db.js', 'www/conversations.js',
  'www/style.css', 'www/icon.svg', 'www/manifest.webmanifest',
].map((path) => new URL(path, self.location.href).href);

self.addEventListener('install', (event) => {
  // `no-cache` revalidates with the server, so an HTTP-cached file of the previous build cannot slip in.
  event.waitUntil(caches.open(SHELL_CACHE).then((cache) => cache.addAll(SHELL.map((url) => new Request(url, { cache: 'no-cache' })))));
});

// Each open page keeps the shell it started with: an update in one tab must not hand another tab's next
// request (a restarted engine worker, say) files of another build. So every client (page or worker) is
// served from the shell cache it started on, recorded here by client id, and a shell cache is deleted only
// once no client uses it. The record is kept in Cache Storage, since this worker may be stopped any time.
const CLIENTS_CACHE = 'tessera-clients'; // not a shell cache: the sweep leaves it
const CLIENTS_KEY = new URL('shell-clients.json', self.location.href).href;

async function shellOfClients() {
  const response = await (await caches.open(CLIENTS_CACHE)).match(CLIENTS_KEY);
  return response ? response.json() : {};
}

let recording = Promise.resolve();
/** Records that client `id` runs on `shell`: queued, so concurrent records never lose one another. */
function record(id, shell) {
  recording = recording.then(async () => {
    const map = await shellOfClients();
    if (map[id] === shell) return;
    map[id] = shell;
    await (await caches.open(CLIENTS_CACHE)).put(CLIENTS_KEY, new Response(JSON.stringify(map)));
  }).catch(() => {});
  return recording;
}

/** Deletes every shell cache no open client runs on (the current one stays), and forgets closed clients. */
function sweep() {
  recording = recording.then(async () => {
    const live = new Set((await self.clients.matchAll({ type: 'all', includeUncontrolled: true })).map((c) => c.id));
    const map = await shellOfClients();
    const kept = Object.fromEntries(Object.entries(map).filter(([id]) => live.has(id)));
    const used = new Set([SHELL_CACHE, ...Object.values(kept)]);
    const names = await caches.keys();
    await Promise.all(names.filter((n) => n.startsWith(SHELL_PREFIX) && !used.has(n)).map((n) => caches.delete(n)));
    await (await caches.open(CLIENTS_CACHE)).put(CLIENTS_KEY, new Response(JSON.stringify(kept)));
  }).catch(() => {});
  return recording;
}

/**
 * Clients open before this worker took over and not yet recorded run the shell of the worker before (the
 * newest other shell cache; caches are listed in the order they were made), or, on the first install, the
 * files this worker just cached.
 */
function adoptOpenClients() {
  recording = recording.then(async () => {
    const others = (await caches.keys()).filter((n) => n.startsWith(SHELL_PREFIX) && n !== SHELL_CACHE);
    const previous = others.at(-1) ?? SHELL_CACHE;
    const map = await shellOfClients();
    for (const client of await self.clients.matchAll({ type: 'all', includeUncontrolled: true })) map[client.id] ??= previous;
    await (await caches.open(CLIENTS_CACHE)).put(CLIENTS_KEY, new Response(JSON.stringify(map)));
  }).catch(() => {});
  return recording;
}

self.addEventListener('activate', (event) => {
  // The first install takes the open page at once, so it works offline without a second visit.
  event.waitUntil(adoptOpenClients().then(sweep).then(() => self.clients.claim()));
});

self.addEventListener('message', (event) => {
  if (event.data?.type === 'skip-waiting') self.skipWaiting();
  if (event.data?.type === 'version') event.source?.postMessage({ type: 'version', version: VERSION, build: BUILD });
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  url.search = '';
  url.hash = '';
  const navigation = request.mode === 'navigate';
  // A navigation to the app with any query (`?model=…`) is the page itself.
  const key = navigation && url.href === SHELL[0] ? SHELL[1] : url.href;
  if (!SHELL.includes(key)) return; // models, examples, anything else: straight to the network
  event.respondWith((async () => {
    // A navigation starts on the newest shell; everything else comes from the shell its client started on,
    // and a worker script's new client (`resultingClientId`) inherits it.
    const started = navigation ? null : (await shellOfClients())[event.clientId];
    const shell = started && (await caches.has(started)) ? started : SHELL_CACHE;
    if (event.resultingClientId) event.waitUntil(record(event.resultingClientId, shell).then(() => navigation && sweep()));
    else if (!started && event.clientId) event.waitUntil(record(event.clientId, shell)); // a page from before this worker
    return (await (await caches.open(shell)).match(key)) ?? fetch(request);
  })());
});
