// ConsentID web app: screens and flow. Plain DOM, no framework; text only via textContent.

import * as api from './api.js';
import * as store from './store.js';
import { OutOfMemory, choosePinRefusal, fingerprint, unb64, randomBytes } from './crypto.js';
import { t, setLang, lang, LANGS, toLatin } from './i18n/index.js';
import { loadScript } from './lazy.js';

const root = document.getElementById('app');
const statusLine = document.getElementById('status');
let device = null;
let route = { path: '', params: new URLSearchParams() };
let requests = new Map();
let current = null; // the request on screen
let poller = null;
let render = () => {};
let stopScanner = null;
let linkDone = null;
// Requests this app has answered: an inbox poll already under way may still list them.
const answered = new Set();

/** Builds an element: h('button', {class: 'x', onclick}, 'text', child…). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return el;
}

function show(screen, ...content) {
  root.replaceChildren(h('main', { 'data-screen': screen }, ...content));
  const first = root.querySelector('[autofocus]') || root.querySelector('h1');
  if (first) first.focus();
}

function setStatus(text) {
  statusLine.textContent = text || '';
}

function errorText(e) {
  if (e instanceof OutOfMemory) return t('out_of_memory');
  if (e instanceof api.ApiError) {
    if (e.code === 'offline') return t('offline');
    if (['stale_qr', 'invalid_qr', 'expired', 'other_address'].includes(e.code)) return t(e.code);
    if (['not_pending', 'not_found'].includes(e.code) || e.status === 410) return t('unavailable');
    return t('error', { msg: e.code });
  }
  return t('error', { msg: String((e && e.message) || e) });
}

function field(id, label, attrs = {}) {
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    h('input', { id, name: id, ...attrs }));
}

function pinAttrs(extra = {}) {
  return { type: 'password', inputmode: 'numeric', autocomplete: 'off', maxlength: '6',
    pattern: '[0-9]{6}', required: true, ...extra };
}

function errorBox() {
  return h('p', { class: 'error', role: 'alert', id: 'error' });
}

function setError(text) {
  const el = document.getElementById('error');
  if (el) el.textContent = text || '';
}

function langSwitch() {
  return h('nav', { class: 'langs', 'aria-label': t('language') },
    Object.keys(LANGS).map((code) => h('button', {
      type: 'button', class: code === lang() ? 'lang active' : 'lang', lang: code,
      'aria-pressed': code === lang() ? 'true' : 'false',
      onclick: () => {
        setLang(code);
        localStorage.setItem('lang', code);
        render();
      },
    }, LANGS[code].lang_name)));
}

function header() {
  return h('header', {}, h('span', { class: 'brand' }, t('title')), langSwitch());
}

// --- activation --------------------------------------------------------------------------

function activationScreen() {
  render = activationScreen;
  const code = route.path === '/activate' ? route.params.get('code') || '' : '';
  const form = h('form', { novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault();
    const value = form.querySelector('#code').value.trim();
    if (!value) return setError(t('invalid_code'));
    const button = form.querySelector('button');
    button.disabled = true;
    setError('');
    try {
      const { server, challenge } = await api.activationStart(value);
      pinScreen(server, challenge);
    } catch (e) {
      button.disabled = false;
      setError(e instanceof api.ApiError && e.status >= 400 && e.status < 500
        ? t('invalid_code') : errorText(e));
    }
  } },
  field('code', t('activation_code'), { type: 'text', value: code, autocomplete: 'off',
    autocapitalize: 'characters', spellcheck: 'false', autofocus: true }),
  errorBox(),
  h('button', { type: 'submit', class: 'primary' }, t('activate')));
  show('activate', header(), h('h1', { tabindex: '-1' }, t('activate_title')),
    h('p', {}, t('activate_intro')), form);
}

function pinScreen(server, challenge) {
  render = () => pinScreen(server, challenge);
  const form = h('form', { novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault();
    const pin = form.querySelector('#pin').value;
    const again = form.querySelector('#pin2').value;
    const refusal = choosePinRefusal(pin);
    if (refusal) return setError(t(`pin_${refusal}`));
    if (pin !== again) return setError(t('pin_mismatch'));
    const button = form.querySelector('button');
    button.disabled = true;
    setError(t('working'));
    try {
      device = await api.activationComplete(server, challenge, pin);
      form.reset();
      history.replaceState(null, '', location.pathname);
      route = parseRoute();
      setStatus(t('activated'));
      startHome();
    } catch (e) {
      form.reset();
      button.disabled = false;
      setError(errorText(e));
    }
  } },
  field('pin', t('pin'), pinAttrs({ autocomplete: 'new-password', autofocus: true })),
  field('pin2', t('pin_repeat'), pinAttrs({ autocomplete: 'new-password' })),
  errorBox(),
  h('button', { type: 'submit', class: 'primary' }, t('pin_save')));
  show('pin', header(), h('h1', { tabindex: '-1' }, t('pin_title')),
    h('p', {}, t('pin_intro')), form);
}

// --- home / inbox ------------------------------------------------------------------------

function homeScreen() {
  render = homeScreen;
  current = null;
  const list = [...requests.values()].sort((a, b) => a.payload.created_at - b.payload.created_at);
  show('home', header(), h('h1', { tabindex: '-1' }, t('home_title')),
    device.userHint ? h('p', { class: 'muted' }, t('home_user', { user: device.userHint })) : null,
    list.length === 0 ? h('p', { class: 'empty' }, t('home_empty'))
      : h('ul', { class: 'requests' }, list.map((r) => h('li', {},
        h('button', { type: 'button', class: 'request-item', onclick: () => requestScreen(r) },
          h('strong', {}, `${t(`kind_${r.payload.kind}`)}: ${r.payload.rp.name}`),
          h('span', { class: 'countdown', 'data-expires': String(r.payload.expires_at) }))))),
    h('button', { type: 'button', class: 'secondary', onclick: scanScreen }, t('scan_qr')),
    'Notification' in window && Notification.permission === 'default'
      ? h('button', { type: 'button', class: 'secondary', onclick: enableNotifications },
        t('notify_enable')) : null);
  tick();
}

function row(label, value, cls) {
  return [h('dt', {}, label), h('dd', { class: cls }, value)];
}

function requestScreen(req) {
  render = () => requestScreen(req);
  current = req;
  const p = req.payload;
  let picked = p.flow ? req.code : null;
  const details = h('dl', { class: 'details' },
    row(t('req_who'), p.rp.name),
    row(t('req_what'), t(`kind_${p.kind}`)),
    row(t('req_user'), p.user),
    // A service's own text (OpenID CIBA's binding message): the citizen compares it with what
    // the service shows at its counter.
    p.message ? row(t('req_message'), p.message) : null,
    row(t('req_browser'), p.context.browser),
    row(t('req_address'), p.context.ip),
    row(t('req_time_left'),
      h('span', { class: 'countdown', 'data-expires': String(p.expires_at) })));
  const docs = p.kind === 'sign' && p.sign ? h('section', { class: 'documents' },
    h('h2', {}, t('req_documents')),
    h('ul', {}, p.sign.documents.map((d) => h('li', {},
      h('span', { class: 'doc-title' }, d.title),
      h('span', { class: 'fingerprint' }, `${t('req_fingerprint')}: `,
        h('code', {}, fingerprint(unb64(d.hash)))))))) : null;
  const op = p.kind === 'certificate' && p.certificate ? p.certificate : null;
  const operation = op ? h('section', { class: 'operation' },
    h('h2', {}, op.title),
    h('dl', { class: 'details' },
      op.agreement_number ? row(t('req_agreement'), op.agreement_number) : null,
      op.agreement_hash ? row(t('req_fingerprint'),
        h('code', {}, fingerprint(unb64(op.agreement_hash)))) : null,
      op.certificate_serial ? row(t('req_certificate'), op.certificate_serial) : null)) : null;
  // A browser on another network than this phone: say so, and ask "I am at that computer".
  const elsewhere = req.elsewhere ? h('section', { class: 'warning', role: 'alert' },
    h('h2', {}, t('elsewhere_title')),
    // The place names come as the server's database has them (Serbian Cyrillic first).
    h('p', {}, t('elsewhere_text', { location: lang() === 'sr-Latn' ? toLatin(req.elsewhere)
      : req.elsewhere })),
    h('label', { class: 'check' },
      h('input', { type: 'checkbox', id: 'at-computer', required: true }),
      ' ', t('elsewhere_confirm'))) : null;
  const pinForm = h('form', { novalidate: true, class: 'approve', hidden: !picked,
    onsubmit: (ev) => {
      ev.preventDefault();
      if (elsewhere && !elsewhere.querySelector('#at-computer').checked) {
        setError(t('elsewhere_needed'));
        return;
      }
      answer(req, 'approve', picked, pinForm, Boolean(elsewhere));
    } },
  elsewhere,
  field('pin', t('pin'), pinAttrs({ autocomplete: 'current-password' })),
  errorBox(),
  h('button', { type: 'submit', class: 'approve-button' }, t('authorize')),
  h('button', { type: 'button', class: 'deny-button',
    onclick: () => answer(req, 'deny', picked, pinForm) }, t('deny')));
  let codes = null;
  if (!p.flow && p.kind === 'login') {
    codes = h('fieldset', { class: 'codes' }, h('legend', {}, t('pick_code')),
      codeChoices(req.code).map((code) => h('button', { type: 'button', class: 'code',
        onclick: async () => {
          picked = code;
          if (code !== req.code) {
            answer(req, 'deny', code, pinForm);
            return;
          }
          codes.hidden = true;
          pinForm.hidden = false;
          pinForm.querySelector('#pin').focus();
        } }, code)));
  } else {
    picked = req.code;
    pinForm.hidden = false;
  }
  show('request', header(), h('h1', { tabindex: '-1' }, `${t(`kind_${p.kind}`)}: ${p.rp.name}`),
    details, docs, operation, codes, pinForm,
    h('button', { type: 'button', class: 'link', onclick: homeScreen }, t('back')));
  if (!codes) pinForm.querySelector('#pin').focus();
  tick();
}

/** The right code plus two distinct random others, shuffled (crypto randomness). */
function codeChoices(right) {
  const set = new Set([right]);
  while (set.size < 3) {
    const r = randomBytes(2);
    set.add(String(((r[0] << 8) | r[1]) % 10000).padStart(4, '0'));
  }
  const list = [...set];
  for (let i = list.length - 1; i > 0; i--) {
    const j = randomBytes(1)[0] % (i + 1);
    [list[i], list[j]] = [list[j], list[i]];
  }
  return list;
}

async function answer(req, decision, picked, form, atComputer = false) {
  const pinInput = form.querySelector('#pin');
  const pin = pinInput.value;
  if (decision === 'approve' && picked === req.code) {
    if (!/^[0-9]{6}$/.test(pin.trim())) return setError(t('pin_length'));
  }
  for (const b of form.querySelectorAll('button')) b.disabled = true;
  if (decision === 'approve') setError(t('working'));
  try {
    const r = await api.respond(device, req, decision, picked, pin.trim(), atComputer);
    pinInput.value = '';
    if (r.result === 'wrong_pin') {
      for (const b of form.querySelectorAll('button')) b.disabled = false;
      setError(r.attempts_left !== undefined ? t('wrong_pin', { n: r.attempts_left })
        : t('wrong_pin_unknown'));
      pinInput.focus();
      return;
    }
    answered.add(req.payload.txn_id);
    requests.delete(req.payload.txn_id);
    if (r.result === 'pin_locked') {
      device.state = 'pin_locked';
      return lockedScreen();
    }
    const text = r.wrongCode ? t('wrong_code') : r.result === 'approved' ? t('approved')
      : t('denied');
    if (r.result === 'approved' && linkDone && linkDone.txn === req.payload.txn_id) {
      resultScreen(text, r.result);
      setStatus(t('redirecting'));
      location.href = linkDone.returnUrl;
      return;
    }
    resultScreen(text, r.result);
  } catch (e) {
    pinInput.value = '';
    if (await handleFatal(e)) return;
    for (const b of form.querySelectorAll('button')) b.disabled = false;
    setError(errorText(e));
  }
}

function resultScreen(text, result) {
  render = () => resultScreen(text, result);
  show('result', header(), h('h1', { tabindex: '-1', class: `result ${result}` }, text),
    h('button', { type: 'button', class: 'primary', autofocus: true, onclick: homeScreen },
      t('back')));
}

function lockedScreen() {
  render = lockedScreen;
  stopPolling();
  show('locked', header(), h('h1', { tabindex: '-1' }, t('locked_title')),
    h('p', { role: 'alert', 'data-state': 'pin_locked' }, t('locked')));
}

function deactivatedScreen() {
  render = deactivatedScreen;
  stopPolling();
  device = null;
  requests = new Map();
  show('deactivated', header(), h('h1', { tabindex: '-1' }, t('deactivated_title')),
    h('p', { role: 'alert' }, t('deactivated')),
    h('button', { type: 'button', class: 'primary', onclick: activationScreen }, t('reactivate')));
}

/** Locked or deactivated: switch screens; true when handled. */
async function handleFatal(e) {
  if (!(e instanceof api.ApiError)) return false;
  if (e.code === 'device_revoked') {
    deactivatedScreen();
    return true;
  }
  if (e.code === 'pin_locked') {
    if (device) device.state = 'pin_locked';
    lockedScreen();
    return true;
  }
  return false;
}

// --- QR scanning -------------------------------------------------------------------------

function scanScreen() {
  render = scanScreen;
  const video = h('video', { playsinline: true, muted: true, autoplay: true,
    'aria-label': t('scan_hint') });
  show('scan', header(), h('h1', { tabindex: '-1' }, t('scan_title')),
    h('p', {}, t('scan_hint')), video, errorBox(),
    h('button', { type: 'button', class: 'link', onclick: () => {
      closeScanner();
      homeScreen();
    } }, t('back')));
  loadScript('scan.js', 'ConsentIDScanner').then(({ startScanner }) => startScanner(video, async (text) => {
    closeScanner();
    try {
      const req = await api.loginQr(device, text);
      requests.set(req.payload.txn_id, req);
      requestScreen(req);
    } catch (e) {
      if (await handleFatal(e)) return;
      homeScreen();
      setStatus(errorText(e));
    }
  })).then((stop) => {
    stopScanner = stop;
  }, () => setError(t('camera_error')));
}

function closeScanner() {
  if (stopScanner) stopScanner();
  stopScanner = null;
}

// --- polling, notifications, push ---------------------------------------------------------

function stopPolling() {
  if (poller) poller.abort();
  poller = null;
}

async function pollLoop() {
  stopPolling();
  const ctl = new AbortController();
  poller = ctl;
  let wait = 0;
  while (!ctl.signal.aborted && device) {
    try {
      const box = await api.inbox(device, wait, ctl.signal);
      wait = 25;
      setStatus(statusLine.dataset.push || '');
      let changed = false;
      for (const id of box.cancelled) changed = requests.delete(id) || changed;
      for (const r of box.requests) {
        if (!requests.has(r.payload.txn_id) && !answered.has(r.payload.txn_id)) {
          requests.set(r.payload.txn_id, r);
          changed = true;
          notify(r);
        }
      }
      if (box.status === 'pin_locked') {
        device.state = 'pin_locked';
        return lockedScreen();
      }
      if (changed) {
        if (current && !requests.has(current.payload.txn_id)) {
          homeScreen();
          setStatus(t('unavailable'));
        } else if (!current && root.querySelector('[data-screen="home"]')) homeScreen();
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
      if (await handleFatal(e)) return;
      setStatus(errorText(e));
      await new Promise((r) => setTimeout(r, 3000));
    }
  }
}

async function notify(req) {
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  const reg = await navigator.serviceWorker?.ready;
  if (!reg) return;
  reg.showNotification(t('notif_title'), {
    body: t('notif_body', { rp: req.payload.rp.name, kind: t(`kind_${req.payload.kind}`) }),
    tag: req.payload.txn_id,
    icon: 'icons/icon-192.png',
  }).catch(() => {});
}

async function enableNotifications() {
  try {
    await Notification.requestPermission();
  } catch {
    // Old browsers: callback form only; notifications stay off.
  }
  await setupPush();
  render();
}

async function setupPush() {
  if (!device || !('serviceWorker' in navigator)) return;
  try {
    const reg = await navigator.serviceWorker.ready;
    const r = await api.registerPush(device, reg);
    statusLine.dataset.push = r === 'ok' ? t('push_ok') : t('push_off');
  } catch {
    statusLine.dataset.push = t('push_off');
  }
  setStatus(statusLine.dataset.push);
}

function tick() {
  const now = Date.now() / 1000;
  for (const el of root.querySelectorAll('.countdown')) {
    const left = Math.max(0, Math.round(Number(el.dataset.expires) - now));
    el.textContent = t('seconds', { n: left });
  }
}

// --- start -------------------------------------------------------------------------------

function parseRoute() {
  const hash = location.hash.replace(/^#/, '');
  const [path, query] = hash.split('?');
  return { path: path || '', params: new URLSearchParams(query || '') };
}

async function startHome() {
  if (route.path === '/link' && route.params.get('t')) {
    const token = route.params.get('t');
    history.replaceState(null, '', location.pathname);
    route = parseRoute();
    show('link', header(), h('h1', { tabindex: '-1' }, t('link_working')));
    try {
      const { request, returnUrl } = await api.loginLink(device, token);
      requests.set(request.payload.txn_id, request);
      linkDone = { txn: request.payload.txn_id, returnUrl };
      requestScreen(request);
    } catch (e) {
      if (await handleFatal(e)) return;
      homeScreen();
      setStatus(errorText(e));
    }
  } else {
    homeScreen();
  }
  pollLoop();
  if ('Notification' in window && Notification.permission === 'granted') setupPush();
}

async function start() {
  setLang(localStorage.getItem('lang') || 'sr-Cyrl');
  route = parseRoute();
  window.addEventListener('hashchange', () => {
    route = parseRoute();
    if (!device) activationScreen();
    else if (route.path === '/link') startHome();
  });
  setInterval(tick, 1000);
  window.addEventListener('online', () => setStatus(''));
  window.addEventListener('offline', () => setStatus(t('offline')));
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('sw.js').catch(() => {});
  }
  try {
    device = await store.load();
  } catch {
    device = null;
  }
  if (!device) activationScreen();
  else if (device.state === 'pin_locked') lockedScreen();
  else startHome();
  performance.mark('ready');
  document.documentElement.dataset.ready = '1';
}

start();
