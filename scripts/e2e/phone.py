#!/usr/bin/env python3
"""ConsentID on the phone in a real browser: the web app approves what the portal asks.

Two headless Chromiums: the *phone* (mobile emulation, 360x640, touch) on the app's origin,
driven by the app's visible Serbian words, and the *computer* (portal.py's `Portal`, 1280x900)
on the portal's origin. Steps:

  1. activation: **Активациони код** -> **Активирај** -> **ПИН**, **Поновите ПИН**
     -> **Сачувај ПИН**; the app lists requests                    app-activate/pin/home.png
  2. mobile login in the portal: the app picks the code the computer shows, **ПИН**,
     **Ауторизовати**; the computer reaches its account page     app-login-code/pin/approved
  3. the key is not extractable: the stored CryptoKey has `extractable === false`; IndexedDB
     and localStorage hold no private key (no JWK `d`, no PKCS#8) and nothing from the PIN;
     a portal page opening the app's database finds it empty (origins share no storage)
  3b. no network: the app opens from its service worker's cache and says that the server
     cannot be reached                                                  app-offline.png
  4. a portal signature: a cloud certificate (**Издај**, **Прихвати**), **Потписивање
     документа**, **Потпиши**; the app shows the document's name and the fingerprint the
     portal shows; **Ауторизовати**; the portal signs                  app-sign-request.png
  5. QR login: the computer's **QR код** page; its QR code, captured from the page, is the
     phone's camera (Chromium's fake camera reads a Y4M file); a frame captured 10 s earlier
     is refused as stale; a fresh one, scanned by the phone on another network (its requests
     leave through a relay from 127.0.1.2): the app warns **Пријава са друге мреже** and says
     where the computer is, refuses **Ауторизовати** until **Ја сам за тим рачунаром** is
     ticked, then the computer logs in       portal-qr-login.png, app-scan/qr-request
  6. same-phone login: the phone opens the portal, **QR код**, **Отвори ConsentID**; the app
     shows the request, **Ауторизовати**, and sends the phone back to the portal, logged in
                                                          app-link-portal/link-request.png
  7. 5 wrong PINs on a login request: the app is locked        app-wrong-pin/locked.png
  8. a second phone activated for a second user logs in; **Опозови све сертификате** in the
     portal: the app says it is deactivated and its IndexedDB is wiped  app-deactivated.png
  9. Slow 4G first load (CDP throttling, 4x CPU): prints the time to performance.mark('ready')

Prints PASS and exits 0, or what was expected and what the page showed (failure.png) and 1.

Usage:
  python scripts/e2e/phone.py --url PORTAL --app-url APP --email E --code CODE --pin PIN \\
      --email2 E2 --code2 CODE2 --pdf FILE.pdf --screenshots DIR --app-screenshots DIR
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import sys
import threading
import tempfile
import time
from pathlib import Path
from urllib.parse import urljoin

# The shared browser code lives beside this file (also under `python -P` / PYTHONSAFEPATH).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cloud import (  # noqa: E402
    W_OPERATION_REVOKE_ALL,
    W_REVOKE_ALL,
    W_REVOKED_ALL,
    W_YES_REVOKE,
    CloudPortal,
)
from portal import (  # noqa: E402
    CHROMEDRIVER,
    CHROMIUM,
    W_CLOUD_CERT,
    W_LOGIN,
    W_MOBILE_APP,
    W_SERVICES,
    W_SUBMIT,
    By,
    Portal,
    StepFailure,
    WebDriverException,
    norm,
    xpath_literal,
)
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

# The app's words (issue 10 and app/src/i18n/sr-Cyrl.js).
W_CODE = "Активациони код"
W_ACTIVATE = "Активирај"
W_PIN = "ПИН"
W_PIN_AGAIN = "Поновите ПИН"
W_PIN_SAVE = "Сачувај ПИН"
W_REQUESTS = "Захтеви"
W_KIND_LOGIN = "Пријава"
W_KIND_SIGN = "Потписивање"
W_KIND_CERTIFICATE = "Сертификат"
W_AUTHORIZE = "Ауторизовати"
W_APPROVED = "Одобрено."
W_BACK = "Назад"
W_WRONG_PIN = "Погрешан ПИН"
W_LOCKED = "Апликација је закључана"
W_DEACTIVATED = "Апликација је деактивирана"
W_FINGERPRINT = "Отисак"
W_SCAN = "Скенирај QR код"
W_OFFLINE = "Сервер није доступан."
W_STALE_QR = "QR код је застарео."
# The warning about a browser on another network (issue 22).
W_ELSEWHERE = "Пријава са друге мреже"
W_AT_COMPUTER = "Ја сам за тим рачунаром"
W_AT_COMPUTER_NEEDED = "Потврдите да сте за тим рачунаром"
# The phone's own network for the relayed QR code: the computer is on 127.0.0.1.
OTHER_NETWORK = "127.0.1.2"
# The portal's words for the login without a username.
W_QR_LOGIN = "QR код"
W_OPEN_APP = "Отвори ConsentID"
# The portal's words for signing.
W_MY_ACCOUNT = "Мој налог"
W_SIGN_SERVICE = "Потписивање документа"
W_SIGN_LEVEL_BB = "PAdES-B-B (основни потпис)"
W_SIGN_SUBMIT = "Потпиши"
W_SIGNED = "Документи су потписани"

PHONE_SIZE = (360, 640)
PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Mobile Safari/537.36"
)
ARGON_TIMEOUT = 90  # Argon2id with 64 MiB on a busy 2-core machine

# Every record of every IndexedDB database of this origin and all of localStorage, as JSON:
# bytes as {"bytes": base64}, CryptoKeys as {"cryptokey": {type, extractable, algorithm}}.
DUMP_STORAGE = r"""
const done = arguments[arguments.length - 1];
function plain(v, depth) {
  if (depth > 8) return '…';
  if (v instanceof CryptoKey) {
    return { cryptokey: { type: v.type, extractable: v.extractable,
      algorithm: v.algorithm.name, curve: v.algorithm.namedCurve, usages: v.usages } };
  }
  if (v instanceof ArrayBuffer) v = new Uint8Array(v);
  if (ArrayBuffer.isView(v)) {
    const b = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    let s = '';
    for (const x of b) s += String.fromCharCode(x);
    return { bytes: btoa(s) };
  }
  if (Array.isArray(v)) return v.map((x) => plain(x, depth + 1));
  if (v && typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v)) o[k] = plain(v[k], depth + 1);
    return o;
  }
  return v;
}
function req(r) {
  return new Promise((res, rej) => {
    r.onsuccess = () => res(r.result);
    r.onerror = () => rej(r.error);
  });
}
(async () => {
  const out = { databases: {}, localStorage: {} };
  const names = (await indexedDB.databases()).map((d) => d.name);
  for (const name of names) {
    const db = await req(indexedDB.open(name));
    const stores = {};
    for (const s of db.objectStoreNames) {
      const t = db.transaction(s, 'readonly').objectStore(s);
      const keys = await req(t.getAllKeys());
      const values = await req(db.transaction(s, 'readonly').objectStore(s).getAll());
      stores[s] = keys.map((k, i) => ({ key: plain(k, 0), value: plain(values[i], 0) }));
    }
    db.close();
    out.databases[name] = stores;
  }
  for (let i = 0; i < localStorage.length; i++) {
    const k = localStorage.key(i);
    out.localStorage[k] = localStorage.getItem(k);
  }
  return out;
})().then(done, (e) => done({ error: String(e) }));
"""

# From a page of another origin (the portal): what opening the app's database name finds.
PROBE_FOREIGN_DB = r"""
const [name, done] = [arguments[0], arguments[arguments.length - 1]];
(async () => {
  const before = (await indexedDB.databases()).map((d) => d.name);
  const db = await new Promise((res, rej) => {
    const r = indexedDB.open(name);
    r.onsuccess = () => res(r.result);
    r.onerror = () => rej(r.error);
  });
  const stores = [...db.objectStoreNames];
  const version = db.version;
  db.close();
  await new Promise((res) => {
    const r = indexedDB.deleteDatabase(name);
    r.onsuccess = r.onerror = r.onblocked = () => res();
  });
  return { before, stores, version, origin: location.origin };
})().then(done, (e) => done({ error: String(e) }));
"""

# The QR code the page shows now, drawn into a 640x480 canvas and returned as one Y4M frame
# (YUV 4:2:0, JPEG full range: the colour tag C420jpeg), base64: what Chromium's fake camera
# plays (reference/phone-app.md §5). The QR image is an SVG of the page's own origin, so the
# canvas is not tainted.
CAPTURE_QR_Y4M = r"""
const img = document.getElementById('qr-code');
const [w, h] = [640, 480];
const canvas = document.createElement('canvas');
canvas.width = w;
canvas.height = h;
const g = canvas.getContext('2d');
g.fillStyle = '#fff';
g.fillRect(0, 0, w, h);
const side = 420;
g.imageSmoothingEnabled = false;
g.drawImage(img, (w - side) / 2, (h - side) / 2, side, side);
const rgba = g.getImageData(0, 0, w, h).data;
const y = new Uint8Array(w * h), u = new Uint8Array(w * h / 4), v = new Uint8Array(w * h / 4);
for (let i = 0; i < w * h; i++) {
  const [r, gr, b] = [rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]];
  y[i] = Math.round(0.299 * r + 0.587 * gr + 0.114 * b);
  const [px, py] = [i % w, Math.floor(i / w)];
  if (px % 2 === 0 && py % 2 === 0) {
    const j = (py / 2) * (w / 2) + px / 2;
    u[j] = Math.max(0, Math.min(255, Math.round(128 - 0.168736 * r - 0.331264 * gr + 0.5 * b)));
    v[j] = Math.max(0, Math.min(255, Math.round(128 + 0.5 * r - 0.418688 * gr - 0.081312 * b)));
  }
}
const head = new TextEncoder().encode(`YUV4MPEG2 W${w} H${h} F30:1 Ip A1:1 C420jpeg\nFRAME\n`);
const all = new Uint8Array(head.length + y.length + u.length + v.length);
all.set(head, 0);
all.set(y, head.length);
all.set(u, head.length + y.length);
all.set(v, head.length + y.length + u.length);
let s = '';
for (let i = 0; i < all.length; i += 0x8000) {
  s += String.fromCharCode.apply(null, all.subarray(i, i + 0x8000));
}
return btoa(s);
"""

# PKCS#8 PrivateKeyInfo of an EC P-256 key starts with these bytes (version 0, id-ecPublicKey).
PKCS8_EC_PREFIX = bytes.fromhex("020100301306072a8648ce3d0201")


class SourceRelay:
    """The phone's way to the server: an HTTP proxy on loopback whose connections to the
    server leave from `source` (a loopback address), so that the server sees the phone on a
    network of its own while the computer stays on 127.0.0.1. Chromium sends each request in
    absolute form; the relay sends it on with `Connection: close` and streams the answer back
    (long polls included), one request a connection."""

    def __init__(self) -> None:
        self.source = "127.0.0.1"
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            head, body = head.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ", 2)
            if not target.startswith("http://"):
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            authority, _, path = target[len("http://"):].partition("/")
            host, _, port = authority.rpartition(":")
            if not host.startswith("127.") or not port.isdigit():
                # Only the servers on this computer (Chromium's own background requests not).
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            headers = [line for line in lines[1:] if line.split(":", 1)[0].strip().lower()
                       not in ("connection", "proxy-connection", "keep-alive")]
            length = next((int(line.split(":", 1)[1]) for line in headers
                           if line.split(":", 1)[0].strip().lower() == "content-length"), 0)
            while len(body) < length:
                chunk = client.recv(65536)
                if not chunk:
                    return
                body += chunk
            try:
                upstream = socket.create_connection((host, int(port)),
                                                    source_address=(self.source, 0))
            except OSError:
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            with upstream:
                request = "\r\n".join([f"{method} /{path} {version}", *headers,
                                        "Connection: close", "", ""])
                upstream.sendall(request.encode("latin-1") + body)
                while chunk := upstream.recv(65536):
                    client.sendall(chunk)


class Phone(Portal):
    """The phone: Chromium with mobile emulation on the app's origin."""

    def __init__(self, args: argparse.Namespace, user_data_dir: str, name: str = "phone",
                 camera: str | None = None, relay: SourceRelay | None = None):
        self.args = args
        self.name = name
        self.shots = Path(args.app_screenshots)
        self.step = f"starting the {name} browser"
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for flag in (
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={user_data_dir}",
            "--lang=sr",
        ):
            opts.add_argument(flag)
        if getattr(args, "trust_spki", None):
            opts.add_argument(f"--ignore-certificate-errors-spki-list={args.trust_spki}")
        if camera:
            # The camera plays `camera` (a Y4M file, read again each time the app opens it);
            # camera access is granted without a prompt.
            for flag in ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                         f"--use-file-for-fake-video-capture={camera}"):
                opts.add_argument(flag)
        if relay:
            # Every request through the relay, loopback ones too (Chromium bypasses proxies
            # for loopback unless told not to).
            for flag in (f"--proxy-server=http://127.0.0.1:{relay.port}",
                         "--proxy-bypass-list=<-loopback>"):
                opts.add_argument(flag)
        opts.add_experimental_option("prefs", {"intl.accept_languages": "sr-Cyrl-RS,sr"})
        opts.add_experimental_option("mobileEmulation", {
            "deviceMetrics": {"width": PHONE_SIZE[0], "height": PHONE_SIZE[1], "pixelRatio": 2,
                              "touch": True, "mobile": True},
            "userAgent": PHONE_UA,
        })
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=CHROMEDRIVER,
                          log_output=os.path.join(user_data_dir, "chromedriver.log"))
        self.driver = webdriver.Chrome(options=opts, service=service)
        self.driver.set_page_load_timeout(60)

    def metrics(self, height: int) -> None:
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": PHONE_SIZE[0], "height": height, "deviceScaleFactor": 2, "mobile": True})

    def screenshot(self, name: str) -> None:
        """The whole screen at the phone's width (360 CSS px, 2 device px each): a screen
        longer than 640 px is shown on a phone as tall as the screen, then put back."""
        d = self.driver
        path = self.shots / name
        d.execute_script("window.scrollTo(0, 0);")
        height = int(d.execute_script("return document.documentElement.scrollHeight;"))
        try:
            if height > PHONE_SIZE[1]:
                self.metrics(min(height, 4000))
                time.sleep(0.3)
            path.write_bytes(d.get_screenshot_as_png())
        finally:
            if height > PHONE_SIZE[1]:
                self.metrics(PHONE_SIZE[1])
        print(f"  screenshot {path}")

    def report_failure(self, err) -> None:
        print(f"  (the {self.name} browser)")
        super().report_failure(err)

    def screen(self) -> str | None:
        els = self.driver.find_elements(By.CSS_SELECTOR, "main[data-screen]")
        return els[0].get_attribute("data-screen") if els else None

    def wait_screen(self, name: str, timeout: float = 30) -> None:
        self.wait_for(f"the app's screen «{name}»", lambda: self.screen() == name, timeout)

    def input_labelled(self, text: str):
        """The visible input whose <label> reads exactly `text`."""
        lit = xpath_literal(text)
        for label in self.driver.find_elements(By.XPATH, f"//label[normalize-space()={lit}]"):
            target = label.get_attribute("for")
            els = (self.driver.find_elements(By.ID, target) if target
                   else label.find_elements(By.XPATH, ".//input"))
            els = self._displayed(els)
            if els:
                return els[0]
        return None

    def field(self, text: str):
        return self.wait_for(f"an input labelled «{text}»", lambda: self.input_labelled(text))

    def type_into(self, text: str, value: str) -> None:
        el = self.field(text)
        el.clear()
        el.send_keys(value)

    def tap(self, text: str, timeout: float = 15) -> None:
        self.click(self.clickable(text, timeout))

    def error_text(self) -> str:
        els = self.driver.find_elements(By.ID, "error")
        return norm(els[0].text) if els else ""

    def storage(self) -> dict:
        data = self.driver.execute_async_script(DUMP_STORAGE)
        if "error" in data:
            raise StepFailure("the test's script to read IndexedDB and localStorage", data["error"])
        return data

    # ---- the app's steps -----------------------------------------------------------------

    def activate(self, code: str, pin: str, shots: bool = True) -> None:
        d = self.driver
        self.step = f"{self.name}: activation: {W_CODE}, {W_ACTIVATE}"
        print(self.step)
        d.set_script_timeout(30)
        d.get(self.args.app_url.rstrip("/") + "/")
        self.wait_for("the app to start (performance mark 'ready')",
                      lambda: d.execute_script(
                          "return document.documentElement.dataset.ready === '1'"))
        vw = d.execute_script(
            "return [window.innerWidth, window.innerHeight, navigator.maxTouchPoints]")
        print(f"  phone viewport {vw[0]}x{vw[1]}, touch points {vw[2]}")
        if (vw[0], vw[1]) != PHONE_SIZE or not vw[2]:
            raise StepFailure(f"a {PHONE_SIZE[0]}x{PHONE_SIZE[1]} touch screen", f"got {vw}")
        self.wait_screen("activate")
        self.type_into(W_CODE, code)
        self.settled()
        if shots:
            self.screenshot("app-activate.png")
        self.tap(W_ACTIVATE)

        self.step = f"{self.name}: activation: {W_PIN}, {W_PIN_AGAIN}"
        print(self.step)
        self.wait_for(f"the PIN screen (inputs «{W_PIN}» and «{W_PIN_AGAIN}»)",
                      lambda: self.input_labelled(W_PIN) and self.input_labelled(W_PIN_AGAIN)
                      or (self.error_text() and StepFailure(self.error_text())))
        if self.error_text():
            raise StepFailure("the PIN screen after the activation code", self.error_text())
        self.type_into(W_PIN, pin)
        self.type_into(W_PIN_AGAIN, pin)
        if shots:
            self.screenshot("app-pin.png")
        started = time.monotonic()
        self.tap(W_PIN_SAVE)
        self.wait_for(
            f"the home screen «{W_REQUESTS}» after the PIN (activation complete)",
            lambda: self.screen() == "home" or (self.screen() == "pin" and self.error_text()
                                                not in ("", "Рачунам кључ, сачекајте…")),
            ARGON_TIMEOUT,
        )
        if self.screen() != "home":
            raise StepFailure("activation to complete", f"the app says: {self.error_text()}")
        print(f"  activated in {time.monotonic() - started:.1f} s (Argon2id, keys, server)")
        self.wait_for(f"the heading «{W_REQUESTS}»", lambda: self.visible_text_element(W_REQUESTS))
        if shots:
            self.screenshot("app-home.png")

    def open_request(self, kind_word: str, timeout: float = 40):
        """Taps the newest request whose title starts with `kind_word` on the home screen."""
        lit = xpath_literal(kind_word + ":")

        def item():
            if self.screen() != "home":
                return None
            els = self._displayed(self.driver.find_elements(
                By.XPATH, f"//button[.//strong[starts-with(normalize-space(), {lit})]]"))
            return els[-1] if els else None  # the newest (the list is oldest first)

        self.click(self.wait_for(f"a request «{kind_word}: …» in the app's list", item, timeout))
        self.wait_screen("request")

    def enter_pin_and_authorize(self, pin: str) -> None:
        self.type_into(W_PIN, pin)
        self.tap(W_AUTHORIZE)

    def wait_result(self) -> str:
        """After Ауторизовати: 'approved', 'wrong_pin', 'locked' or raises with the error."""
        def outcome():
            s = self.screen()
            if s == "result":
                return "approved" if W_APPROVED in self.body_text() else "other"
            if s == "locked":
                return "locked"
            err = self.error_text()
            if s == "request" and err.startswith(W_WRONG_PIN):
                return "wrong_pin"
            if s == "request" and err and not err.startswith("Рачунам"):
                return "error"
            return None

        r = self.wait_for("the app's answer after «Ауторизовати»", outcome, ARGON_TIMEOUT)
        if r in ("other", "error"):
            raise StepFailure("the request approved in the app", norm(self.body_text())[:500])
        return r


class Computer(CloudPortal):
    """The citizen's computer: the portal; its phone is the web app."""

    phone: Phone
    on_code = None
    on_operation = None

    def phone_approves(self, code: str) -> None:
        self.on_code(code)

    def phone_approves_operation(self, title: str, evidence: str | None) -> None:
        self.on_operation(title)

    def start_mobile_login(self, email: str) -> str:
        """Пријава -> Мобилна апликација -> корисничко име -> Пријавите се; the code shown."""
        d = self.driver
        d.get(urljoin(self.args.url.rstrip("/") + "/", ""))
        self.settled()
        self.click(self.clickable(W_LOGIN))
        self.click(self.clickable(W_MOBILE_APP))
        field = self.wait_for("the username field", self.username_input)
        field.clear()
        field.send_keys(email)
        self.click(self.clickable(W_SUBMIT))
        code = self.wait_for("the verification code", self.verification_code)
        print(f"  verification code shown: {code}")
        return code

    def wait_logged_in(self) -> None:
        self.wait_for("the computer on its account page after the app approved",
                      lambda: "/account" in self.driver.current_url, self.args.timeout)
        self.clickable(W_SERVICES)

    def open_service(self, entry: str) -> None:
        """услуге -> `entry` (the menu may be open already)."""
        if not self.clickables_by_text(entry):
            if not self.clickables_by_text(W_SERVICES):
                self.click(self.clickable(W_MY_ACCOUNT))
            self.click(self.clickable(W_SERVICES))
        self.click(self.clickable(entry))

    def open_cloud_service(self) -> dict:
        self.open_service(W_CLOUD_CERT)
        return self.panel()


def approve_login_in_app(phone: Phone, code: str, pin: str, shots: bool = True) -> None:
    phone.step = f"{phone.name}: login request: pick {code}, {W_PIN}, {W_AUTHORIZE}"
    print(phone.step)
    phone.open_request(W_KIND_LOGIN)
    text = norm(phone.body_text())
    codes = [norm(b.text) for b in phone._displayed(
        phone.driver.find_elements(By.CSS_SELECTOR, "fieldset.codes button"))]
    print(f"  the app offers the codes {codes}")
    if len(codes) != 3 or code not in codes:
        raise StepFailure(f"three code buttons, one of them {code}",
                          f"buttons {codes}; {text[:300]}")
    if shots:
        phone.screenshot("app-login-code.png")
    phone.tap(code)
    phone.field(W_PIN)
    left = [c for c in codes if phone.clickables_by_text(c)]
    if left:
        raise StepFailure("the code buttons gone once a code is picked", f"still shown: {left}")
    if shots:
        phone.screenshot("app-login-pin.png")
    phone.enter_pin_and_authorize(pin)
    r = phone.wait_result()
    if r != "approved":
        raise StepFailure("«Одобрено.» in the app", f"got {r}: {phone.error_text()}")
    if shots:
        phone.screenshot("app-approved.png")
    phone.tap(W_BACK)
    phone.wait_screen("home")


def check_storage(phone: Phone, computer: Computer, pin: str) -> None:
    phone.step = "phone: the stored key is not extractable; no private key or PIN in storage"
    print(phone.step)
    data = phone.storage()
    dbs = data["databases"]
    print(f"  IndexedDB databases {sorted(dbs)}; localStorage keys {sorted(data['localStorage'])}")
    records = [r for stores in dbs.values() for recs in stores.values() for r in recs]
    keys = []
    blobs: list[bytes] = []
    strings: list[str] = []
    bad: list[str] = []

    def walk(v, where):
        if isinstance(v, dict):
            if set(v) == {"cryptokey"}:
                keys.append((where, v["cryptokey"]))
                return
            if set(v) == {"bytes"}:
                blobs.append(base64.b64decode(v["bytes"]))
                return
            for k, x in v.items():
                if k in ("d", "p", "q", "dp", "dq", "qi", "k"):
                    bad.append(f"{where}.{k}: a JWK private member")
                walk(x, f"{where}.{k}")
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, f"{where}[{i}]")
        elif isinstance(v, str):
            strings.append(v)

    walk(dbs, "indexedDB")
    walk(data["localStorage"], "localStorage")
    for k, v in data["localStorage"].items():
        try:
            walk(json.loads(v), f"localStorage[{k}]")
        except ValueError:
            pass
    privates = [(w, k) for w, k in keys if k["type"] == "private"]
    for w, k in keys:
        print(f"  CryptoKey at {w}: type {k['type']}, extractable {k['extractable']}, "
              f"{k['algorithm']} {k.get('curve')}, usages {k['usages']}")
    if not records or not privates:
        raise StepFailure("a stored device record with a private CryptoKey", json.dumps(data)[:600])
    for w, k in privates:
        if k["extractable"] is not False:
            bad.append(f"{w}: private CryptoKey extractable={k['extractable']}")
    if len(privates) != 1:
        bad.append(f"{len(privates)} private keys stored (expected the device key only)")
    pin_digests = {hashlib.sha256(pin.encode()).digest(), pin.encode()}
    for b in blobs:
        if PKCS8_EC_PREFIX in b:
            bad.append(f"a byte string of {len(b)} bytes holding a PKCS#8 EC private key")
        if b in pin_digests or pin.encode() in b:
            bad.append("a byte string holding the PIN or its SHA-256")
    for s in strings:
        if pin in s:
            bad.append(f"a string holding the PIN: {s[:40]!r}")
        for b in (s.encode(),):
            if PKCS8_EC_PREFIX in b:
                bad.append("a string holding PKCS#8")
        try:
            raw = base64.b64decode(s + "=" * (-len(s) % 4), altchars=b"-_", validate=False)
            if PKCS8_EC_PREFIX in raw:
                bad.append("a base64 string holding PKCS#8")
        except ValueError:
            pass
    # The one record's fields: nothing else hides there (a PIN key, a PIN hash).
    allowed = {"v", "server", "deviceId", "keys", "pinSalt", "serverSigningKey",
               "serverEncryptionKey", "certificate", "certificateSerial", "userHint", "state"}
    for r in records:
        if isinstance(r["value"], dict):
            extra = set(r["value"]) - allowed
            if extra:
                bad.append(f"unexpected fields in the device record: {sorted(extra)}")
            print(f"  device record fields: {sorted(r['value'])}")
    if bad:
        raise StepFailure("no private key bytes and nothing from the PIN in the phone's storage",
                          "; ".join(bad))
    print(f"  {len(records)} record(s), {len(blobs)} byte strings: no JWK d, no PKCS#8, no PIN")

    computer.step = "computer: a portal page opens the app's IndexedDB database and finds nothing"
    print(computer.step)
    names = list(dbs)
    for name in names:
        r = computer.driver.execute_async_script(PROBE_FOREIGN_DB, name)
        print(f"  on {r.get('origin')}: databases before {r.get('before')}, "
              f"«{name}» opens with stores {r.get('stores')}")
        if "error" in r or r["stores"] or name in r["before"]:
            raise StepFailure(f"the portal's origin to see nothing of the app's database «{name}»",
                              json.dumps(r))


def approve_operation_in_app(phone: Phone, title: str, pin: str, shot: str | None = None) -> None:
    """A certificate operation asked for in the portal: the app names it (and the agreement's
    number and fingerprint for an issue); PIN, Ауторизовати."""
    phone.step = f"phone: the certificate operation «{title}», PIN, {W_AUTHORIZE}"
    print(phone.step)
    phone.open_request(W_KIND_CERTIFICATE)
    phone.wait_for(f"«{title}» in the app's request", lambda: phone.visible_text_element(title))
    if shot:
        phone.screenshot(shot)
    phone.enter_pin_and_authorize(pin)
    if title == W_OPERATION_REVOKE_ALL:
        # The approval revokes this very app: once the portal carried it out, the app may show
        # its deactivation before (or instead of) its result.
        phone.wait_for("the app's answer, or its deactivation, after «Ауторизовати»",
                       lambda: phone.screen() in ("result", "deactivated"), ARGON_TIMEOUT)
        return
    if phone.wait_result() != "approved":
        raise StepFailure(f"«{title}» approved in the app")
    phone.tap(W_BACK)


def sign_in_portal(phone: Phone, computer: Computer, pin: str) -> None:
    a = phone.args
    computer.step = "computer: a cloud certificate (Издај, Прихвати)"
    print(computer.step)
    buttons = computer.open_cloud_service()
    computer.issue(buttons)

    computer.step = f"computer: {W_SIGN_SERVICE}: a PDF, {W_SIGN_SUBMIT}"
    print(computer.step)
    computer.open_service(W_SIGN_SERVICE)
    upload = computer.wait_for("the file input of the signing form", lambda: computer.driver
                               .find_elements(By.CSS_SELECTOR, "input[type=file]"))
    upload[0].send_keys(str(Path(a.pdf).resolve()))
    computer.click(computer.clickable(W_SIGN_LEVEL_BB))
    computer.click(computer.clickable(W_SIGN_SUBMIT))
    name = Path(a.pdf).name
    rows = computer.wait_for("the signing job's table with the document's fingerprint",
                             lambda: [(norm(tr.find_element(By.XPATH, "./td[1]").text),
                                       norm(tr.find_element(By.XPATH, "./td[2]").text))
                                      for tr in computer.driver.find_elements(
                                          By.CSS_SELECTOR, "table.documents tbody tr")])
    print(f"  the portal shows {rows}")

    phone.step = "phone: the signing request: documents and fingerprints, PIN, Ауторизовати"
    print(phone.step)
    phone.open_request(W_KIND_SIGN)
    shown = []
    for li in phone._displayed(phone.driver.find_elements(By.CSS_SELECTOR, ".documents li")):
        title = norm(li.find_element(By.CSS_SELECTOR, ".doc-title").text)
        fp = norm(li.find_element(By.CSS_SELECTOR, ".fingerprint code").text)
        shown.append((title, fp))
    print(f"  the app shows {shown}")
    if not phone.visible_text_element(W_FINGERPRINT):
        raise StepFailure(f"the word «{W_FINGERPRINT}» beside each document in the app")
    if sorted(shown) != sorted(rows) or not any(t == name for t, _ in shown):
        raise StepFailure("the app's documents and fingerprints equal to the portal's",
                          f"app {shown}, portal {rows}")
    phone.screenshot("app-sign-request.png")
    phone.enter_pin_and_authorize(pin)
    if phone.wait_result() != "approved":
        raise StepFailure("the signature approved in the app")
    phone.tap(W_BACK)
    computer.step = "computer: the documents are signed"
    print(computer.step)
    computer.wait_for(f"«{W_SIGNED}» on the job page", lambda: computer.has_words(W_SIGNED), 60)
    print(f"  «{W_SIGNED}»")


def offline_start(phone: Phone) -> None:
    """The installed app opens without a network (its service worker's cache) and says that the
    server cannot be reached; with the network back it works again."""
    phone.step = f"phone: no network: the app opens from its cache and says «{W_OFFLINE}…»"
    print(phone.step)
    d = phone.driver
    app = phone.args.app_url.rstrip("/") + "/"
    d.get(app)
    phone.wait_screen("home")
    phone.wait_for("the service worker controlling the app", lambda: d.execute_script(
        "return !!(navigator.serviceWorker && navigator.serviceWorker.controller)"), 30)
    d.execute_cdp_cmd("Network.enable", {})
    offline = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    d.execute_cdp_cmd("Network.emulateNetworkConditions", offline)
    try:
        d.get(app)
        phone.wait_screen("home", 30)
        phone.wait_for(f"«{W_OFFLINE}…» on the home screen", lambda: W_OFFLINE in phone.body_text(),
                       30)
        phone.screenshot("app-offline.png")
    finally:
        d.execute_cdp_cmd("Network.emulateNetworkConditions", {**offline, "offline": False})
    d.get(app)
    phone.wait_screen("home")
    phone.wait_for(f"«{W_OFFLINE}…» gone with the network back",
                   lambda: W_OFFLINE not in phone.body_text(), 30)


def capture_qr(computer: Computer, camera: str) -> float:
    """Writes the QR code the computer shows now as the phone camera's video; returns when."""
    data = base64.b64decode(computer.driver.execute_script(CAPTURE_QR_Y4M))
    tmp = camera + ".new"
    Path(tmp).write_bytes(data)
    os.replace(tmp, camera)
    return time.monotonic()


def scan(phone: Phone) -> None:
    phone.wait_screen("home")
    phone.tap(W_SCAN)
    phone.wait_screen("scan")


def qr_login(phone: Phone, computer: Computer, pin: str, camera: str,
             relay: SourceRelay) -> None:
    computer.step = f"computer: log out, {W_LOGIN} -> {W_QR_LOGIN}: a QR code changing every second"
    print(computer.step)
    computer.driver.delete_all_cookies()
    computer.driver.get(computer.args.url.rstrip("/") + "/")
    computer.click(computer.clickable(W_LOGIN))
    computer.click(computer.clickable(W_QR_LOGIN))
    image = computer.wait_for("the QR code on the page", lambda: computer._displayed(
        computer.driver.find_elements(By.ID, "qr-code")))[0]
    computer.wait_for("the QR image loaded", lambda: computer.driver.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth > 0", image))
    first = image.get_attribute("src")
    computer.wait_for("the QR image to change within 3 s", lambda: image.get_attribute("src")
                      != first, 3)
    computer.settled()
    computer.screenshot("portal-qr-login.png", Path(computer.args.app_screenshots))

    phone.step = "phone: a QR frame captured 10 s earlier is refused"
    print(phone.step)
    old = capture_qr(computer, camera)
    time.sleep(max(0.0, 10 - (time.monotonic() - old)))
    scan(phone)
    phone.screenshot("app-scan.png")
    phone.wait_for(f"«{W_STALE_QR}…» in the app after the old frame",
                   lambda: phone.screen() == "home" and W_STALE_QR in phone.body_text(), 30)
    print(f"  refused: «{norm(phone.body_text()).split(W_STALE_QR)[0][-40:]}{W_STALE_QR}…»")
    if computer.driver.find_elements(By.CSS_SELECTOR, ".qr-box[hidden]"):
        raise StepFailure("the computer still waiting for a phone after the stale frame")

    # The frame is relayed: the phone scans it on another network than the computer's, as
    # when a phishing page shows a QR code it fetched (issue 22). The app says where the
    # browser is and approves only once the citizen says they are at that computer.
    phone.step = (f"phone on {OTHER_NETWORK}: a fresh frame: «{W_ELSEWHERE}», "
                  f"{W_PIN}, {W_AUTHORIZE} refused until «{W_AT_COMPUTER}»")
    print(phone.step)
    relay.source = OTHER_NETWORK
    fresh = capture_qr(computer, camera)
    scan(phone)
    phone.wait_screen("request", 30)
    print(f"  the request is on the phone {time.monotonic() - fresh:.1f} s after the capture")
    if phone.driver.find_elements(By.CSS_SELECTOR, "fieldset.codes"):
        raise StepFailure("no verification codes to pick after a QR scan")
    warning = phone.wait_for(f"«{W_ELSEWHERE}» on the request", lambda: phone._displayed(
        phone.driver.find_elements(By.CSS_SELECTOR, "section.warning")))[0]
    shown = norm(warning.text)
    expected = phone.args.expect_location or "127.0.0.1"
    if W_ELSEWHERE not in shown or expected not in shown:
        raise StepFailure(f"«{W_ELSEWHERE}» naming «{expected}»", shown)
    print(f"  warned: «{shown}»")
    phone.screenshot("app-qr-request.png")
    phone.enter_pin_and_authorize(pin)
    phone.wait_for(f"«{W_AT_COMPUTER_NEEDED}…» before anything is sent",
                   lambda: phone.error_text().startswith(W_AT_COMPUTER_NEEDED), 15)
    phone.click(phone.input_labelled(W_AT_COMPUTER))
    phone.tap(W_AUTHORIZE)
    if phone.wait_result() != "approved":
        raise StepFailure("the QR login approved in the app")
    relay.source = "127.0.0.1"
    phone.tap(W_BACK)
    computer.step = "computer: logged in by the QR code"
    print(computer.step)
    computer.wait_logged_in()


def same_phone_login(phone: Phone, pin: str) -> None:
    phone.step = f"phone: the portal on the phone: {W_LOGIN} -> {W_QR_LOGIN} -> {W_OPEN_APP}"
    print(phone.step)
    d = phone.driver
    portal = phone.args.url.rstrip("/")
    d.get(portal + "/")
    phone.click(phone.clickable(W_LOGIN))
    phone.click(phone.clickable(W_QR_LOGIN))
    link = phone.clickable(W_OPEN_APP)
    phone.settled()
    phone.screenshot("app-link-portal.png")
    phone.click(link)
    phone.wait_screen("request", 30)
    if phone.driver.find_elements(By.CSS_SELECTOR, "fieldset.codes"):
        raise StepFailure("no verification codes to pick after the link")
    phone.screenshot("app-link-request.png")
    phone.step = f"phone: {W_PIN}, {W_AUTHORIZE}: back to the portal, logged in"
    print(phone.step)
    phone.enter_pin_and_authorize(pin)
    phone.wait_for("the phone back on the portal's account page", lambda: d.current_url
                   .startswith(portal + "/account"), phone.args.timeout)
    phone.clickable(W_SERVICES)
    print(f"  on {d.current_url}")
    d.get(phone.args.app_url.rstrip("/") + "/")
    phone.wait_screen("home")


def wrong_pins(phone: Phone, computer: Computer, pin: str) -> None:
    computer.step = "computer: log out, a new mobile login (for the wrong PINs)"
    print(computer.step)
    computer.driver.delete_all_cookies()
    code = computer.start_mobile_login(phone.args.email)
    phone.step = "phone: 5 wrong PINs on the login request"
    print(phone.step)
    phone.open_request(W_KIND_LOGIN)
    phone.tap(code)
    wrong = "135790" if pin != "135790" else "975310"
    for i in range(1, 6):
        phone.enter_pin_and_authorize(wrong)
        r = phone.wait_result()
        print(f"  wrong PIN {i}: {r} «{phone.error_text() if r == 'wrong_pin' else ''}»")
        if i == 1:
            phone.screenshot("app-wrong-pin.png")
        if i < 5 and r != "wrong_pin":
            raise StepFailure(f"«{W_WRONG_PIN}» after wrong PIN {i}", f"got {r}")
        if i == 5 and r != "locked":
            raise StepFailure(f"«{W_LOCKED}» after the 5th wrong PIN", f"got {r}")
    phone.wait_for(f"«{W_LOCKED}» and data-state=pin_locked", lambda: phone.visible_text_element(
        W_LOCKED) and phone.driver.find_elements(By.CSS_SELECTOR, "[data-state=pin_locked]"))
    phone.screenshot("app-locked.png")
    # After a reload the app still knows it is locked.
    phone.driver.refresh()
    phone.wait_screen("locked")
    print("  locked, also after a reload")


def deactivation(args, computer: Computer, phone2: Phone) -> None:
    phone2.activate(args.code2, args.pin, shots=False)
    computer.step = "computer: log out, the second user logs in with the second phone"
    print(computer.step)
    computer.driver.delete_all_cookies()
    code = computer.start_mobile_login(args.email2)
    approve_login_in_app(phone2, code, args.pin, shots=False)
    computer.wait_logged_in()
    computer.step = f"computer: {W_REVOKE_ALL} -> {W_YES_REVOKE}"
    print(computer.step)
    buttons = computer.open_cloud_service()
    computer.click(buttons[W_REVOKE_ALL])
    computer.click(computer.clickable(W_YES_REVOKE))
    computer.on_operation = lambda title: approve_operation_in_app(phone2, title, args.pin)
    computer.operation_approved(W_OPERATION_REVOKE_ALL)
    computer.wait_text(W_REVOKED_ALL)
    phone2.step = "phone 2: the app says it is deactivated; its IndexedDB is wiped"
    print(phone2.step)
    phone2.wait_for(f"«{W_DEACTIVATED}» in the app", lambda: phone2.screen() == "deactivated"
                    and phone2.visible_text_element(W_DEACTIVATED), 60)
    phone2.screenshot("app-deactivated.png")
    data = phone2.storage()
    left = {n: {s: len(r) for s, r in st.items()} for n, st in data["databases"].items()}
    print(f"  IndexedDB after deactivation: {left or 'no database'}")
    if any(n for st in left.values() for n in st.values()):
        raise StepFailure("no records left in the app's IndexedDB", json.dumps(left))


def slow_4g(args, user_data_dir: str) -> None:
    phone = Phone(args, user_data_dir, "slow-4G phone")
    try:
        d = phone.driver
        d.execute_cdp_cmd("Network.enable", {})
        d.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
        d.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": False, "latency": 562.5, "downloadThroughput": 180000,
            "uploadThroughput": 84375})
        d.execute_cdp_cmd("Emulation.setCPUThrottlingRate", {"rate": 4})
        d.set_page_load_timeout(60)
        d.get(args.app_url.rstrip("/") + "/")
        phone.wait_for("the app's performance mark 'ready'", lambda: d.execute_script(
            "return performance.getEntriesByName('ready').length > 0"), 60)
        ms = d.execute_script("return performance.getEntriesByName('ready')[0].startTime")
        print(f"app TTI on Slow 4G: {ms:.0f} ms (goal 2000 ms)")
    finally:
        phone.quit()


def run(args) -> int:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            print(f"FAIL: {path} not found")
            return 1
    Path(args.screenshots).mkdir(parents=True, exist_ok=True)
    Path(args.app_screenshots).mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = tempfile.mkdtemp(prefix="eidportal-e2e-phone-")
    dirs = [os.path.join(tmp, n) for n in ("computer", "phone", "phone2", "slow")]
    for x in dirs:
        os.mkdir(x)
    # Portal's login() wants these; the phone is the web app, not the CLI.
    args.consentid = args.consentid_home = args.pin_file = None
    args.expect_name = args.account_heading = args.expect_jmbg = None
    browsers = []
    current = None
    started = time.monotonic()
    # The phone's camera: a blank frame until the test captures the computer's QR code.
    camera = os.path.join(tmp, "camera.y4m")
    with open(camera, "wb") as f:
        f.write(b"YUV4MPEG2 W640 H480 F30:1 Ip A1:1 C420jpeg\nFRAME\n" + b"\xff" * (640 * 480)
                + b"\x80" * (640 * 480 // 2))
    try:
        relay = SourceRelay()
        phone = Phone(args, dirs[1], camera=camera, relay=relay)
        browsers.append(phone)
        computer = Computer(args, dirs[0])
        browsers.append(computer)
        current = phone
        phone.activate(args.code, args.pin)
        print("STEP activation: ok")

        current = computer
        computer.on_code = lambda code: approve_login_in_app(phone, code, args.pin)
        computer.on_operation = lambda title: approve_operation_in_app(
            phone, title, args.pin, "app-certificate-request.png")
        computer.login()
        print("STEP mobile login: ok")

        current = phone
        check_storage(phone, computer, args.pin)
        print("STEP key not extractable, storage clean, origins separate: ok")

        offline_start(phone)
        print("STEP offline start from the service worker: ok")

        current = computer
        sign_in_portal(phone, computer, args.pin)
        print("STEP portal signature approved in the app: ok")

        current = phone
        qr_login(phone, computer, args.pin, camera, relay)
        print("STEP QR login (fake camera), the 10-s-old frame refused, the relayed one warned: ok")

        current = phone
        same_phone_login(phone, args.pin)
        print("STEP same-phone login (Отвори ConsentID): ok")

        current = phone
        wrong_pins(phone, computer, args.pin)
        print("STEP 5 wrong PINs lock the app: ok")

        phone2 = Phone(args, dirs[2], "phone 2")
        browsers.append(phone2)
        current = phone2
        deactivation(args, computer, phone2)
        print("STEP Опозови све сертификате deactivates the app: ok")

        current = None
        slow_4g(args, dirs[3])
        print(f"all steps done in {time.monotonic() - started:.1f} s")
        print("PASS")
        return 0
    except (StepFailure, WebDriverException) as e:
        if current is not None:
            current.report_failure(e)
        else:
            print(f"FAIL: {type(e).__name__}: {e}")
        return 1
    finally:
        for b in browsers:
            b.quit()
        shutil.rmtree(tmp, ignore_errors=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="portal base URL")
    p.add_argument("--app-url", required=True, help="the ConsentID web app's base URL")
    p.add_argument("--email", required=True, help="the first user's username")
    p.add_argument("--code", required=True, help="the first user's activation code")
    p.add_argument("--email2", required=True, help="the second user's username (deactivation)")
    p.add_argument("--code2", required=True, help="the second user's activation code")
    p.add_argument("--pin", required=True, help="the PIN the test chooses (6 digits)")
    p.add_argument("--pdf", required=True, help="a PDF to sign in the portal")
    p.add_argument("--screenshots", required=True, help="folder for the computer's screenshots")
    p.add_argument("--app-screenshots", required=True, help="folder for app-*.png")
    p.add_argument("--timeout", type=float, default=40.0)
    p.add_argument("--trust-spki")
    p.add_argument("--expect-location",
                   help="where the phone must say the computer is (default: its address)")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(run(parse_args(sys.argv[1:])))
