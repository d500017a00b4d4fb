// The service worker: after one online visit the app shell (page, scripts, styles, wasm) comes from a cache
// named after the build, so the app starts and generates offline. Models are not its business: the engine's
// worker keeps them in a cache of their own (`www/models.js`), which no app update touches.
//
// Updates are announced, not forced: a new build installs next to the running one and waits until the page
// asks it to take over (the user pressed "Reload"); then the old shell cache is deleted.

// A classic script, because browsers compare `importScripts` files byte for byte when they check for an update
// (imports of module service workers are not compared): a new `pkg/build.js` is a new version.
importScripts('pkg/build.js');
const { version: VERSION, build: BUILD } = self.TESSERA_BUILD;

const SHELL_CACHE = `tessera-shell-${VERSION}-${BUILD}`;
const SHELL_PREFIX = 'tessera-shell-';
/** Everything the page needs to start, relative to this script. `pkg/build.js` changes with any of them. */
const SHELL = [
  './', 'index.html', 'pkg/build.js', 'pkg/tessera.js', 'pkg/tessera_bg.wasm',
  'www/app.js', 'www/engine.js', 'www/models.js', 'www/protocol.js', 'www/worker.js', 'www/widget.js', 'www/made-here.js',
  'www/style.css', 'www/icon.svg', 'www/manifest.webmanifest',
].map((path) => new URL(path, self.location.href).href);

self.addEventListener('install', (event) => {
  // `no-cache` revalidates with the server, so an HTTP-cached file of the previous build cannot slip in.
  event.waitUntil(caches.open(SHELL_CACHE).then((cache) => cache.addAll(SHELL.map((url) => new Request(url, { cache: 'no-cache' })))));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    const names = await caches.keys();
    await Promise.all(names.filter((n) => n.startsWith(SHELL_PREFIX) && n !== SHELL_CACHE).map((n) => caches.delete(n)));
    // The first install takes the open page at once, so it works offline without a second visit.
    await self.clients.claim();
  })());
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
  // A navigation to the app with any query (`?model=…`) is the page itself.
  const key = request.mode === 'navigate' && url.href === SHELL[0] ? SHELL[1] : url.href;
  if (!SHELL.includes(key)) return; // models, examples, anything else: straight to the network
  event.respondWith(caches.open(SHELL_CACHE).then(async (cache) => (await cache.match(key)) ?? fetch(request)));
});
