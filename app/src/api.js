// The app API client, as crates/consentid/src/client.rs: activation, signed device calls,
// inbox with verified envelopes, responses with a sealed PIN proof.

import * as c from './crypto.js';
import * as store from './store.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A failed call: `code` is the server's ErrorBody.error, or 'offline' / 'bad_answer'. */
export class ApiError extends Error {
  constructor(code, status, message) {
    super(message || code);
    this.code = code;
    this.status = status;
  }
}

let serverCache = null;

/** The portal's URL, from /config.json on the app's own origin. */
export async function serverUrl() {
  if (serverCache) return serverCache;
  let res;
  try {
    res = await fetch('config.json', { cache: 'no-cache' });
  } catch {
    throw new ApiError('offline', 0);
  }
  if (!res.ok) throw new ApiError('offline', res.status);
  const cfg = await res.json();
  if (typeof cfg.server !== 'string') throw new ApiError('bad_answer', res.status);
  serverCache = cfg.server.replace(/\/+$/, '');
  return serverCache;
}

async function call(server, method, path, body, authorization, signal) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (authorization) headers.authorization = authorization;
  let res;
  try {
    res = await fetch(server + path, { method, headers, body, signal, cache: 'no-store' });
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError('offline', 0);
  }
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const code = json && typeof json.error === 'string' ? json.error : `http_${res.status}`;
    throw new ApiError(code, res.status, json && json.message);
  }
  return json;
}

/** The path the device signs: the server URL's path prefix + the API path (signed_path). */
function signedPath(server, path) {
  return new URL(server).pathname.replace(/\/+$/, '') + path;
}

/** A guess of this browser for the device name, e.g. `ConsentID web (Chrome / Android)`. */
export function deviceName() {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox'
    : /Chrome\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : 'Browser';
  const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS'
    : /Windows/.test(ua) ? 'Windows' : /Mac OS/.test(ua) ? 'macOS'
      : /Linux/.test(ua) ? 'Linux' : 'unknown';
  return `ConsentID web (${browser} / ${os})`;
}

/** Step 1 of activation: spends the code's try, returns the challenge. */
export async function activationStart(code) {
  const server = await serverUrl();
  const ch = await call(server, 'POST', '/api/app/v1/activation/start',
    JSON.stringify({ code: code.trim() }));
  if (!ch || ch.pin_length !== 6 || !/^[A-Za-z0-9_.:-]{1,128}$/.test(ch.activation_id || '')) {
    throw new ApiError('bad_answer', 200);
  }
  return { server, challenge: ch };
}

/** Steps 2–6 of activation (client.rs `activate`), given the chosen PIN. */
export async function activationComplete(server, ch, pin) {
  const serverSigningKey = c.unb64(ch.server_signing_key);
  const serverEncryptionKey = c.unb64(ch.server_encryption_key);
  const deviceKey = await c.generateDeviceKey();
  const devicePub = await c.spkiOf(deviceKey.publicKey);
  const salt = c.randomBytes(32);
  const pinKey = await c.derivePinKey(pin, salt);
  const aad = enc.encode(ch.activation_id);
  const encPinPub = await c.seal(serverEncryptionKey, pinKey.spki, aad);
  const message = await c.activationMessage(ch.activation_id, ch.nonce, devicePub, encPinPub);
  const deviceSignature = await c.signDer(deviceKey.privateKey, message);
  const encPinSig = await c.seal(serverEncryptionKey,
    await c.signDer(pinKey.privateKey, message), aad);
  const body = JSON.stringify({
    activation_id: ch.activation_id,
    device_public_key: c.b64(devicePub),
    device_name: deviceName(),
    encrypted_pin_public_key: c.b64(encPinPub),
    device_signature: c.b64(deviceSignature),
    encrypted_pin_signature: c.b64(encPinSig),
  });
  const result = await call(server, 'POST', '/api/app/v1/activation/complete', body);
  if (!result || !/^[A-Za-z0-9_-]{1,64}$/.test(result.device_id || '')) {
    throw new ApiError('bad_answer', 200);
  }
  const device = {
    v: 1,
    server,
    deviceId: result.device_id,
    keys: deviceKey,
    pinSalt: salt,
    serverSigningKey,
    serverEncryptionKey,
    certificate: c.unb64(result.certificate),
    certificateSerial: result.certificate_serial,
    userHint: ch.user_hint,
    state: 'active',
  };
  await store.save(device);
  return device;
}

/** One device-signed call (client.rs `device_call`); device_revoked wipes, pin_locked marks. */
export async function deviceCall(device, method, path, bodyText, signal) {
  const ts = Math.floor(Date.now() / 1000);
  const nonce = c.b64(c.randomBytes(16));
  const bodyBytes = bodyText === undefined ? new Uint8Array(0) : enc.encode(bodyText);
  const msg = await c.requestMessage(method, signedPath(device.server, path), ts, nonce,
    bodyBytes);
  const sig = await c.signDer(device.keys.privateKey, msg);
  const auth = c.authorizationHeader(device.deviceId, ts, nonce, sig);
  try {
    return await call(device.server, method, path, bodyText, auth, signal);
  } catch (e) {
    if (e instanceof ApiError && e.code === 'device_revoked') {
      await store.wipe();
    } else if (e instanceof ApiError && e.code === 'pin_locked') {
      await store.setState('pin_locked');
    }
    throw e;
  }
}

/** Verifies an envelope with the pinned server key, then parses it (request.rs). */
export async function verifyEnvelope(device, env) {
  const payloadBytes = c.unb64(env.payload);
  const sig = c.unb64(env.signature);
  if (!(await c.verifyDer(device.serverSigningKey, payloadBytes, sig))) {
    throw new Error('signature');
  }
  const p = JSON.parse(dec.decode(payloadBytes));
  const safe = /^[A-Za-z0-9_.:-]{1,128}$/;
  if (p.v !== 1 || !safe.test(p.txn_id) || !safe.test(p.rp && p.rp.id)) throw new Error('payload');
  const challenge = c.unb64(p.challenge);
  if (challenge.length !== 32) throw new Error('challenge');
  // Where the browser is, seen from this phone's network (not signed: it depends on who asks).
  const o = env.origin;
  const elsewhere = o && o.same_network === false ? String(o.location || '') : null;
  return { payload: p, payloadBytes, code: await c.verificationCode(challenge), elsewhere };
}

async function applyStatus(status) {
  if (status === 'deactivated') {
    await store.wipe();
    throw new ApiError('device_revoked', 200);
  }
  await store.setState(status);
}

/** Long-polls the inbox; returns verified requests, cancelled ids and the status. */
export async function inbox(device, wait, signal) {
  const wire = await deviceCall(device, 'GET', `/api/app/v1/inbox?wait=${wait}`, undefined,
    signal);
  await applyStatus(wire.device_status);
  const requests = [];
  for (const env of wire.items || []) {
    try {
      requests.push(await verifyEnvelope(device, env));
    } catch {
      // A forged or malformed envelope is dropped, as the CLI does.
    }
  }
  return { requests, cancelled: wire.cancelled || [], status: wire.device_status };
}

/** Answers a request (client.rs `respond`). A picked code that is not the real one sends a
 * deny with reason `wrong_vc` and no PIN. Returns the ResponseResult plus `wrongCode`. */
export async function respond(device, req, decision, pickedCode, pin, atComputer = false) {
  const wrongCode = pickedCode !== req.code;
  let reason;
  if (wrongCode) {
    decision = 'deny';
    reason = 'wrong_vc';
  } else if (decision === 'deny') {
    reason = 'user_deny';
  }
  let pinKey = null;
  if (decision === 'approve') {
    if (device.state === 'pin_locked') throw new ApiError('pin_locked', 0);
    pinKey = await c.derivePinKey(pin, device.pinSalt);
  }
  const p = req.payload;
  const issuedAt = Math.floor(Date.now() / 1000);
  const message = await c.approvalMessage(p.txn_id, p.kind, decision, p.rp.id, p.challenge,
    req.payloadBytes, pickedCode, device.deviceId, issuedAt);
  const body = {
    decision,
    verification_code: pickedCode,
    issued_at: issuedAt,
    device_signature: c.b64(await c.signDer(device.keys.privateKey, message)),
  };
  if (reason) body.reason = reason;
  if (atComputer) body.at_computer = true;
  if (pinKey) {
    const proof = await c.signDer(pinKey.privateKey, message);
    body.pin_proof = c.b64(await c.seal(device.serverEncryptionKey, proof,
      enc.encode(p.txn_id)));
    pinKey = null;
  }
  try {
    const r = await deviceCall(device, 'POST',
      `/api/app/v1/requests/${encodeURIComponent(p.txn_id)}/response`, JSON.stringify(body));
    if (r.result === 'pin_locked') await store.setState('pin_locked');
    return { ...r, wrongCode };
  } catch (e) {
    if (wrongCode && e instanceof ApiError && e.code === 'wrong_vc') {
      return { result: 'denied', wrongCode };
    }
    throw e;
  }
}

export async function status(device) {
  const s = await deviceCall(device, 'GET', '/api/app/v1/status');
  await applyStatus(s.device_status);
  return s;
}

/** QR login: the scanned text verbatim (contract). */
export async function loginQr(device, text) {
  const r = await deviceCall(device, 'POST', '/api/app/v1/login/qr', JSON.stringify({ qr: text }));
  return verifyEnvelope(device, r.request);
}

/** Same-phone login: the token of `#/link?t=`. */
export async function loginLink(device, token) {
  const r = await deviceCall(device, 'POST', '/api/app/v1/login/link',
    JSON.stringify({ link: token }));
  return { request: await verifyEnvelope(device, r.request), returnUrl: r.return_url };
}

/** Web Push registration (contract); failures are reported to the caller, never fatal. */
export async function registerPush(device, registration) {
  if (!registration || !('pushManager' in registration)) return 'unsupported';
  const server = device.server;
  const key = await call(server, 'GET', '/api/app/v1/push/key');
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 5000));
  const sub = await Promise.race([
    registration.pushManager.subscribe({
      userVisibleOnly: true, applicationServerKey: c.unb64(key.vapid_public_key),
    }),
    timeout,
  ]);
  await deviceCall(device, 'POST', '/api/app/v1/push/subscription',
    JSON.stringify(sub.toJSON()));
  return 'ok';
}
