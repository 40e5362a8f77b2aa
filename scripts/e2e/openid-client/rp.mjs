// A FAPI 2.0 relying party of the portal's OpenID provider, built on node's openid-client 6
// (OpenID-certified, FAPI 2.0), which we did not write: PAR, PKCE S256, private_key_jwt and
// DPoP (with the server's nonce), and the ID token validated by the library against the JWKS.
// scripts/e2e/oidc_fapi.py runs it around the browser's part (login, consent).
//
//   node rp.mjs keygen DIR                 the RP's P-256 keys: DIR/private.json (client
//                                          assertions), DIR/dpop.json (DPoP), DIR/jwks.json
//                                          (the public assertion key, for `oidc client add`)
//   node rp.mjs start STATE ISSUER CLIENT_ID DIR REDIRECT
//                                          pushes the authorization request (PAR, with a DPoP
//                                          proof binding the code to DIR/dpop.json); prints
//                                          {"url": the authorization URL}
//   node rp.mjs finish STATE CALLBACK_URL  exchanges the code (DPoP), validates the ID token,
//                                          checks acr, calls userinfo with a DPoP proof; prints
//                                          {"claims", "userinfo", "token_type"}
//
// Every failed check throws: the caller sees a non-zero exit and the message.

import { readFileSync, writeFileSync } from 'node:fs';
import { webcrypto } from 'node:crypto';
import * as client from 'openid-client';

const HIGH = 'http://eidas.europa.eu/LoA/high';
const ES256 = { name: 'ECDSA', namedCurve: 'P-256' };

const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'));
const writeJson = (path, value) => writeFileSync(path, JSON.stringify(value, null, 2));

async function keygen(dir) {
  const pair = async () => webcrypto.subtle.generateKey(ES256, true, ['sign', 'verify']);
  const assertion = await pair();
  const dpop = await pair();
  // A JWK as WebCrypto exports it, without WebCrypto's own members.
  const jwk = async (key) => {
    const { key_ops, ext, ...plain } = await webcrypto.subtle.exportKey('jwk', key);
    return plain;
  };
  const priv = await jwk(assertion.privateKey);
  const pub = await jwk(assertion.publicKey);
  const kid = 'rp-' + Date.now().toString(36);
  writeJson(`${dir}/private.json`, { ...priv, kid, alg: 'ES256' });
  writeJson(`${dir}/jwks.json`, { keys: [{ ...pub, kid, alg: 'ES256', use: 'sig' }] });
  writeJson(`${dir}/dpop.json`, {
    private: await jwk(dpop.privateKey),
    public: await jwk(dpop.publicKey),
  });
}

async function importPrivate(jwk) {
  const { kid, alg, ...key } = jwk;
  return webcrypto.subtle.importKey('jwk', key, ES256, false, ['sign']);
}

// The client's configuration from the provider's discovery document, and its DPoP handle.
async function configure(state) {
  const privateJwk = readJson(`${state.dir}/private.json`);
  const assertionKey = { key: await importPrivate(privateJwk), kid: privateJwk.kid };
  const config = await client.discovery(
    new URL(state.issuer),
    state.clientId,
    { id_token_signed_response_alg: 'ES256' },
    client.PrivateKeyJwt(assertionKey),
    // The test server speaks http on 127.0.0.1; everything else is as in production.
    { execute: [client.allowInsecureRequests] },
  );
  const dpopJwk = readJson(`${state.dir}/dpop.json`);
  const keyPair = {
    privateKey: await importPrivate(dpopJwk.private),
    publicKey: await webcrypto.subtle.importKey('jwk', dpopJwk.public, ES256, true, ['verify']),
  };
  return { config, DPoP: client.getDPoPHandle(config, keyPair) };
}

async function start(statePath, issuer, clientId, dir, redirect) {
  const state = {
    issuer,
    clientId,
    dir,
    redirect,
    verifier: client.randomPKCECodeVerifier(),
    nonce: client.randomNonce(),
    state: client.randomState(),
  };
  const { config, DPoP } = await configure(state);
  const meta = config.serverMetadata();
  // (PAR is required per client, for the fapi2 profile: not `require_pushed_authorization_requests`,
  // which would say it of every client.)
  if (!meta.pushed_authorization_request_endpoint || !meta.dpop_signing_alg_values_supported?.includes('ES256')) {
    throw new Error('discovery lacks PAR or DPoP with ES256');
  }
  const url = await client.buildAuthorizationUrlWithPAR(
    config,
    {
      redirect_uri: redirect,
      scope: 'openid profile email',
      code_challenge: await client.calculatePKCECodeChallenge(state.verifier),
      code_challenge_method: 'S256',
      nonce: state.nonce,
      state: state.state,
      acr_values: HIGH,
    },
    { DPoP },
  );
  writeJson(statePath, state);
  console.log(JSON.stringify({ url: url.href }));
}

async function finish(statePath, callback) {
  const state = readJson(statePath);
  const { config, DPoP } = await configure(state);
  const tokens = await client.authorizationCodeGrant(
    config,
    new URL(callback),
    {
      pkceCodeVerifier: state.verifier,
      expectedNonce: state.nonce,
      expectedState: state.state,
      idTokenExpected: true,
    },
    undefined,
    { DPoP },
  );
  if (tokens.token_type.toLowerCase() !== 'dpop') {
    throw new Error(`the access token is not DPoP-bound: token_type ${tokens.token_type}`);
  }
  // Signature, iss, aud, exp, iat and nonce were checked by the library against the JWKS.
  const claims = tokens.claims();
  if (claims.acr !== HIGH) {
    throw new Error(`acr is ${claims.acr}, not ${HIGH}`);
  }
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub, { DPoP });
  console.log(JSON.stringify({ claims, userinfo, token_type: tokens.token_type }));
}

const [command, ...args] = process.argv.slice(2);
const commands = { keygen, start, finish };
if (!commands[command]) {
  console.error('usage: rp.mjs keygen DIR | start STATE ISSUER CLIENT_ID DIR REDIRECT | finish STATE CALLBACK_URL');
  process.exit(2);
}
await commands[command](...args);
