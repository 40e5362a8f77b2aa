// The entry of `argon2.js`, hash-wasm's Argon2id in a bundle of its own: loaded by crypto.js
// the first time a PIN is turned into a key (lazy.js), it hands Argon2id to the app.
import { argon2id } from 'hash-wasm';

window.ConsentIDArgon2 = { argon2id };
