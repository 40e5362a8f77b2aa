// The device's storage: one IndexedDB object store, one record. It holds the device key pair
// (non-extractable CryptoKeys, by structured clone), the PIN salt, the device id, the
// certificate, the pinned server keys, the server URL and the state. Never the PIN nor
// anything derived from it.

const DB = 'consentid';
const STORE = 'device';
const KEY = 'device';

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function tx(mode, fn) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const t = db.transaction(STORE, mode);
      const req = fn(t.objectStore(STORE));
      t.oncomplete = () => resolve(req && req.result);
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error);
    });
  } finally {
    db.close();
  }
}

/** The stored device, or null. */
export async function load() {
  return (await tx('readonly', (s) => s.get(KEY))) || null;
}

export function save(device) {
  return tx('readwrite', (s) => s.put(device, KEY));
}

export async function setState(state) {
  const device = await load();
  if (device) {
    device.state = state;
    await save(device);
  }
}

/** Deactivated: wipe every key and record (the database itself is deleted). */
export async function wipe() {
  await tx('readwrite', (s) => s.clear());
  await new Promise((resolve) => {
    const req = indexedDB.deleteDatabase(DB);
    req.onsuccess = req.onerror = req.onblocked = () => resolve();
  });
}
