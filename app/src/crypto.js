// ConsentID web app: the protocol's cryptography, byte for byte as crates/proto/src/crypto.rs
// and crates/consentid/src/pin.rs. Composed from WebCrypto, hash-wasm (Argon2id) and
// @noble/curves (P-256 point from a scalar, signature format conversion); nothing hand-written.

import { loadScript } from './lazy.js';
import { p256 } from '@noble/curves/nist.js';

const enc = new TextEncoder();
const subtle = globalThis.crypto.subtle;

/** base64url without padding (proto::crypto::b64). */
export function b64(bytes) {
  let s = '';
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Decodes base64url without padding (proto::crypto::unb64); throws on bad input. */
export function unb64(text) {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new Error('bad base64url');
  const s = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

export function randomBytes(n) {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

export async function sha256(data) {
  const bytes = typeof data === 'string' ? enc.encode(data) : data;
  return new Uint8Array(await subtle.digest('SHA-256', bytes));
}

/** First 8 bytes of a hash, lower-case hex, groups of 4 digits (proto::crypto::fingerprint). */
export function fingerprint(hash) {
  const hex = Array.from(hash.slice(0, 8), (b) => b.toString(16).padStart(2, '0')).join('');
  return hex.match(/.{4}/g).join(' ');
}

/** Last two bytes of SHA-256(challenge), big-endian, mod 10000 (verification_code). */
export async function verificationCode(challenge) {
  const h = await sha256(challenge);
  return String(((h[30] << 8) | h[31]) % 10000).padStart(4, '0');
}

export async function approvalMessage(txnId, kind, decision, rpId, challengeB64, payload,
  vc, deviceId, issuedAt) {
  return 'CONSENTID-APPROVAL-V1\n' +
    `txn=${txnId}\nkind=${kind}\ndecision=${decision}\nrp=${rpId}\n` +
    `challenge=${challengeB64}\nctx=${b64(await sha256(payload))}\nvc=${vc}\n` +
    `device=${deviceId}\niat=${issuedAt}`;
}

export async function activationMessage(activationId, nonce, devicePub, encryptedPinKey) {
  return `CONSENTID-ACTIVATION-V1\nact=${activationId}\nnonce=${nonce}\n` +
    `dev=${b64(await sha256(devicePub))}\npkp=${b64(await sha256(encryptedPinKey))}`;
}

export async function requestMessage(method, pathAndQuery, timestamp, nonce, body) {
  return `CONSENTID-REQ-V1\n${method}\n${pathAndQuery}\n${timestamp}\n${nonce}\n` +
    b64(await sha256(body));
}

export function authorizationHeader(deviceId, timestamp, nonce, signatureDer) {
  return `CID-Device id=${deviceId},ts=${timestamp},nonce=${nonce},sig=${b64(signatureDer)}`;
}

/** WebCrypto's r‖s (P1363) → DER, through noble's signature parser. */
export function rawToDer(raw) {
  return p256.Signature.fromBytes(new Uint8Array(raw), 'compact').toBytes('der');
}

/** A new device key: ECDSA P-256, private half non-extractable. */
export function generateDeviceKey() {
  return subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
}

export async function spkiOf(publicKey) {
  return new Uint8Array(await subtle.exportKey('spki', publicKey));
}

/** ECDSA-SHA256 with a WebCrypto private key; DER as proto::crypto::sign. */
export async function signDer(privateKey, message) {
  const bytes = typeof message === 'string' ? enc.encode(message) : message;
  const raw = await subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, bytes);
  return rawToDer(raw);
}

/** SEC1 uncompressed point of an SPKI DER key (via WebCrypto import/export). */
async function pointOfSpki(spki) {
  const key = await subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: 'P-256' },
    true, ['verify']);
  return new Uint8Array(await subtle.exportKey('raw', key));
}

/** Verifies a server DER signature over `message` (high-S accepted, as p256 does). */
export async function verifyDer(spki, message, signatureDer) {
  const point = await pointOfSpki(spki);
  const bytes = typeof message === 'string' ? enc.encode(message) : message;
  try {
    return p256.verify(signatureDer, bytes, point, { lowS: false, format: 'der' });
  } catch {
    return false;
  }
}

/** proto::crypto::seal: ephemeral ECDH P-256, HKDF-SHA256 (salt = point ‖ aad,
 * info "consentid-seal-v1"), AES-256-GCM with a zero nonce; out = point ‖ ciphertext+tag. */
export async function seal(recipientSpki, plaintext, aad) {
  const recipient = await subtle.importKey('spki', recipientSpki,
    { name: 'ECDH', namedCurve: 'P-256' }, false, []);
  const eph = await subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false,
    ['deriveBits']);
  const point = new Uint8Array(await subtle.exportKey('raw', eph.publicKey));
  const shared = await subtle.deriveBits({ name: 'ECDH', public: recipient }, eph.privateKey,
    256);
  const ikm = await subtle.importKey('raw', shared, 'HKDF', false, ['deriveKey']);
  const salt = new Uint8Array(point.length + aad.length);
  salt.set(point);
  salt.set(aad, point.length);
  const key = await subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt, info: enc.encode('consentid-seal-v1') },
    ikm, { name: 'AES-GCM', length: 256 }, false, ['encrypt']);
  const ct = new Uint8Array(await subtle.encrypt(
    { name: 'AES-GCM', iv: new Uint8Array(12), additionalData: aad }, key, plaintext));
  const out = new Uint8Array(point.length + ct.length);
  out.set(point);
  out.set(ct, point.length);
  return out;
}

/** Error raised when the phone cannot give Argon2id its 64 MiB. */
export class OutOfMemory extends Error {}

/** The PIN key (pin.rs PinKey::derive): Argon2id(PIN, salt; 64 MiB, t=3, p=4, 32 B) →
 * HKDF-SHA256 (no salt, info "consentid-pin-v1" [‖ counter]) → P-256 scalar. Returns a
 * non-extractable WebCrypto signing key and its SPKI; the scalar is dropped at once. */
export async function derivePinKey(pin, salt) {
  let stretched;
  const { argon2id } = await loadScript('argon2.js', 'ConsentIDArgon2');
  try {
    stretched = await argon2id({
      password: pin, salt, parallelism: 4, iterations: 3, memorySize: 64 * 1024,
      hashLength: 32, outputType: 'binary',
    });
  } catch (e) {
    if (e instanceof RangeError || /memory/i.test(String(e && e.message))) {
      throw new OutOfMemory(String(e && e.message));
    }
    throw e;
  }
  const ikm = await subtle.importKey('raw', stretched, 'HKDF', false, ['deriveBits']);
  stretched.fill(0);
  for (let counter = 0; counter <= 255; counter++) {
    const base = enc.encode('consentid-pin-v1');
    const info = counter > 0 ? new Uint8Array([...base, counter]) : base;
    const okm = new Uint8Array(await subtle.deriveBits(
      { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info }, ikm, 256));
    if (!p256.utils.isValidSecretKey(okm)) {
      okm.fill(0);
      continue;
    }
    const pub = p256.getPublicKey(okm, false);
    const jwk = { kty: 'EC', crv: 'P-256', d: b64(okm), x: b64(pub.slice(1, 33)),
      y: b64(pub.slice(33, 65)), ext: true };
    okm.fill(0);
    const privateKey = await subtle.importKey('jwk', jwk,
      { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
    jwk.d = '';
    const pubKey = await subtle.importKey('jwk', { kty: 'EC', crv: 'P-256', x: jwk.x,
      y: jwk.y, ext: true }, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify']);
    return { privateKey, spki: await spkiOf(pubKey) };
  }
  throw new Error('no valid P-256 scalar after 256 tries');
}

/** pin.rs Pin::choose: 6 digits, not one repeated digit, not a run up or down. */
export function choosePinRefusal(text) {
  const t = text.trim();
  if (t.length !== 6) return 'length';
  if (!/^[0-9]{6}$/.test(t)) return 'not_digits';
  const d = [...t].map(Number);
  const steps = d.slice(1).map((v, i) => v - d[i]);
  if (steps.every((s) => s === 0)) return 'same_digit';
  if (steps.every((s) => s === 1) || steps.every((s) => s === -1)) return 'sequence';
  return null;
}
