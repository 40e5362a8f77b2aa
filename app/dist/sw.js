// ConsentID service worker: a versioned cache of the app shell (offline start), and the
// notifications of Web Push. The version is replaced by scripts/build-app with a hash of
// the shell, so that every deploy gets a fresh cache.
const CACHE = 'consentid-shell-00248d5ebb038cb9';
const SHELL = ['./', 'index.html', 'app.js', 'scan.js', 'argon2.js', 'app.css', 'manifest.webmanifest',
  'icons/icon-192.png', 'icons/icon-512.png'];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k.startsWith('consentid-shell-') && k !== CACHE)
      .map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  const url = new URL(req.url);
  // Only the shell, same origin, GET; config.json and the API always go to the network.
  if (req.method !== 'GET' || url.origin !== self.location.origin ||
      url.pathname.endsWith('/config.json')) return;
  event.respondWith(caches.match(req, { ignoreSearch: true })
    .then((hit) => hit || fetch(req)));
});

self.addEventListener('push', (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = {};
  }
  const kind = data.kind === 'sign' ? 'Потписивање / Signature' : 'Пријава / Log in';
  event.waitUntil(self.registration.showNotification('ConsentID', {
    body: kind,
    tag: typeof data.txn_id === 'string' ? data.txn_id : 'consentid',
    icon: 'icons/icon-192.png',
    data: { txn_id: data.txn_id },
  }));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil(self.clients.matchAll({ type: 'window', includeUncontrolled: true })
    .then((list) => {
      for (const client of list) {
        if ('focus' in client) return client.focus();
      }
      return self.clients.openWindow('./');
    }));
});
