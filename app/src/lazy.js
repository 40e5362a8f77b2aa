// Scripts of their own, loaded the first time they are needed, so that the first load of the
// app carries only the app: `scan.js` (the QR scanner, jsQR) when the camera opens, and
// `argon2.js` (hash-wasm's Argon2id) when a PIN is first turned into a key. Each sets one
// global (`window[name]`); the service worker caches both with the shell.

const loading = new Map();

/** Loads `src` once and resolves with `window[name]`, which the script defines. */
export function loadScript(src, name) {
  if (window[name]) return Promise.resolve(window[name]);
  if (!loading.has(src)) {
    loading.set(src, new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.src = src;
      script.onload = () => (window[name] ? resolve(window[name])
        : reject(new Error(`${src} did not load`)));
      script.onerror = () => {
        loading.delete(src);
        reject(new Error(`${src} did not load`));
      };
      document.head.append(script);
    }));
  }
  return loading.get(src);
}
