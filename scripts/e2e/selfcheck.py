#!/usr/bin/env python3
"""Self-check of scripts/e2e/login.py, without the real portal.

Serves a mock of the portal's pages (same words as the seed guide) from http.server on
127.0.0.1, with a fake `consentid` shell script as the phone, and runs login.py against it:

  1. the happy path must PASS, leave every screenshot, and send Accept-Language sr-Cyrl-RS;
  2. a wrong --expect-name must FAIL (exit 1) and leave failure.png + failure.html.

The mock only tests the driver; the real test runs login.py against the real server.
Run it with the test venv's Python (it has selenium):

  target/test-venv/bin/python scripts/e2e/selfcheck.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import html
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

HERE = Path(__file__).resolve().parent
LOGIN_PY = HERE / "login.py"
EMAIL = "petar.petrovic@example.rs"
NAME = "Петар Петровић"
PIN = "482915"

STYLE = """
body { font-family: sans-serif; margin: 0; }
header { display: flex; justify-content: space-between; align-items: center;
         padding: 12px 24px; background: #0c4076; color: #fff; }
header a { color: #fff; }
main { padding: 24px; max-width: 720px; }
.code { font-size: 48px; letter-spacing: 8px; font-weight: bold; }
.method { display: block; border: 1px solid #999; padding: 16px; margin: 8px 0; }
"""


def page(title: str, body: str, header_right: str = "") -> bytes:
    return f"""<!doctype html>
<html lang="sr-Cyrl"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{STYLE}</style></head>
<body><header><span>Портал за електронску идентификацију</span>{header_right}</header>
<main>{body}</main></body></html>""".encode()


# The fake phone: checks its arguments and the PIN, records the approved code in its home,
# which the mock server reads (as the real server learns of the app's answer).
FAKE_CONSENTID = r"""#!/bin/sh
set -eu
home=""; code=""; cmd=""; next=0; wait=""; pin_stdin=0
while [ $# -gt 0 ]; do
  case "$1" in
    --home) home=$2; shift 2 ;;
    approve) cmd=approve; shift ;;
    --next) next=1; shift ;;
    --wait) wait=$2; shift 2 ;;
    --code) code=$2; shift 2 ;;
    --pin-stdin) pin_stdin=1; shift ;;
    *) echo "fake consentid: unexpected argument $1" >&2; exit 2 ;;
  esac
done
[ "$cmd" = approve ] && [ "$next" = 1 ] && [ "$pin_stdin" = 1 ] && [ -n "$wait" ] ||
  { echo "fake consentid: expected: --home DIR approve --next --wait N --code C --pin-stdin" >&2; exit 2; }
IFS= read -r pin || true
[ "$pin" = "$(cat "$home/expected-pin")" ] || { echo "fake consentid: wrong PIN" >&2; exit 3; }
echo "login request for the eID portal: code $code"
printf '%s' "$code" > "$home/approved-code"
echo "approved"
"""


class State:
    def __init__(self, phone_home: Path):
        self.phone_home = phone_home
        self.sessions: dict[str, dict] = {}
        self.accept_languages: list[str] = []
        self.lock = threading.Lock()


def make_handler(state: State):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *_):  # quiet
            pass

        def send(self, status: int, body: bytes = b"", ctype="text/html; charset=utf-8",
                 headers: dict | None = None):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def session(self) -> tuple[str | None, dict | None]:
            for part in (self.headers.get("Cookie") or "").split(";"):
                k, _, v = part.strip().partition("=")
                if k == "sid":
                    return v, state.sessions.get(v)
            return None, None

        def do_GET(self):
            with state.lock:
                state.accept_languages.append(self.headers.get("Accept-Language", ""))
            u = urlparse(self.path)
            sid, s = self.session()
            if u.path == "/":
                self.send(200, page("Портал за електронску идентификацију",
                                    "<h1>Добродошли</h1><p>Услуге електронске идентификације.</p>",
                                    '<nav><a href="/login">Пријава</a></nav>'))
            elif u.path == "/login":
                self.send(200, page("Пријава", """<h1>Изаберите начин пријаве</h1>
                    <a class="method" href="/login/card"><span>Квалификовани сертификат</span></a>
                    <a class="method" href="/login/mobile"><span>Мобилна апликација</span></a>"""))
            elif u.path == "/login/mobile":
                self.send(200, page("Пријава", """<h1>Мобилна апликација</h1>
                    <form method="post" action="/login/mobile">
                      <label for="u">Унесите корисничко име (е-пошта)</label><br>
                      <input id="u" name="username" type="text" autocomplete="username"><br><br>
                      <button type="submit">Пријавите се</button>
                    </form>"""))
            elif u.path == "/login/wait" and s:
                self.send(200, page("Пријава", f"""<h1>Потврдите пријаву у апликацији ConsentID</h1>
                    <p>Проверите да апликација приказује исти код:</p>
                    <p class="code" data-testid="verification-code">{s['code']}</p>
                    <script>
                    setInterval(async () => {{
                      const r = await fetch('/login/status');
                      if ((await r.json()).done) location.href = '/account';
                    }}, 300);
                    </script>"""))
            elif u.path == "/login/status" and s:
                f = state.phone_home / "approved-code"
                done = f.exists() and f.read_text() == s["code"]
                if done:
                    s["approved"] = True
                self.send(200, (b'{"done":true}' if done else b'{"done":false}'), "application/json")
            elif u.path == "/account" and s and s.get("approved"):
                self.send(200, page("Кориснички налог", f"""<h1>Подаци о корисничком налогу</h1>
                    <dl><dt>Име и презиме</dt><dd>{html.escape(NAME)}</dd>
                        <dt>Е-пошта</dt><dd>{html.escape(s['email'])}</dd></dl>
                    <details><summary>услуге</summary><ul>
                      <li><a href="/services/cloud-certificate">Квалификовани електронски сертификат у клауду</a></li>
                    </ul></details>""", '<nav><a href="/logout">Одјава</a></nav>'))
            else:
                self.send(404, page("Није пронађено", "<h1>404</h1>"))

        def do_POST(self):
            u = urlparse(self.path)
            n = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(n).decode())
            if u.path == "/login/mobile" and form.get("username"):
                sid = secrets.token_hex(16)
                code = f"{secrets.randbelow(10000):04d}"
                state.sessions[sid] = {"email": form["username"][0], "code": code}
                self.send(303, headers={"Location": "/login/wait",
                                        "Set-Cookie": f"sid={sid}; Path=/; HttpOnly"})
            else:
                self.send(400, page("Грешка", "<h1>Грешка</h1>"))

    return H


def run_login(url: str, phone: Path, home: Path, pin_file: Path, shots: Path, name: str):
    cmd = [sys.executable, str(LOGIN_PY), "--url", url, "--email", EMAIL,
           "--consentid", str(phone), "--consentid-home", str(home),
           "--pin-file", str(pin_file), "--screenshots", str(shots), "--expect-name", name]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=180)
    return p.returncode, p.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description="self-check of scripts/e2e/login.py against a mock")
    ap.add_argument("--keep", help="copy the screenshots of both runs into this folder")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="eidportal-e2e-selfcheck-"))
    server = None
    problems: list[str] = []
    try:
        home = tmp / "phone"
        home.mkdir()
        (home / "expected-pin").write_text(PIN)
        pin_file = tmp / "pin"
        pin_file.write_text(PIN + "\n")
        phone = tmp / "consentid"
        phone.write_text(FAKE_CONSENTID)
        phone.chmod(0o755)

        state = State(home)
        server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        print(f"mock portal on {url}")

        # 1. happy path
        ok_shots = tmp / "pass"
        rc, out = run_login(url, phone, home, pin_file, ok_shots, NAME)
        print("---- login.py (expected PASS) ----\n" + out.rstrip())
        if rc != 0 or out.strip().splitlines()[-1:] != ["PASS"]:
            problems.append(f"happy path: expected exit 0 and PASS, got exit {rc}")
        for f in ("01-home.png", "02-login-methods.png", "03-username.png", "04-waiting-code.png",
                  "06-account.png", "06b-account-phone.png", "07-services-menu.png"):
            p = ok_shots / f
            if not p.is_file() or p.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
                problems.append(f"happy path: {f} missing or not a PNG")
        txt = ok_shots / "05-phone-approves.txt"
        if not txt.is_file() or "approved" not in txt.read_text():
            problems.append("happy path: 05-phone-approves.txt missing or without 'approved'")
        if (ok_shots / "failure.png").exists():
            problems.append("happy path: failure.png written")
        langs = {a for a in state.accept_languages if a}
        if not langs or not all(a.startswith("sr-Cyrl-RS") for a in langs):
            problems.append(f"Accept-Language: expected sr-Cyrl-RS first, got {sorted(langs)}")
        else:
            print(f"Accept-Language seen by the mock: {sorted(langs)}")

        # 2. a failing check must fail, with evidence
        (home / "approved-code").unlink(missing_ok=True)
        bad_shots = tmp / "fail"
        rc, out = run_login(url, phone, home, pin_file, bad_shots, "Марко Марковић")
        print("---- login.py (expected FAIL: wrong --expect-name) ----\n" + out.rstrip())
        if rc != 1 or "Марко Марковић" not in out:
            problems.append(f"failure path: expected exit 1 naming the missing name, got exit {rc}")
        for f in ("failure.png", "failure.html"):
            if not (bad_shots / f).is_file():
                problems.append(f"failure path: {f} missing")

        if args.keep:
            dest = Path(args.keep)
            dest.mkdir(parents=True, exist_ok=True)
            for sub in ("pass", "fail"):
                if (tmp / sub).is_dir():
                    shutil.copytree(tmp / sub, dest / sub, dirs_exist_ok=True)
            print(f"screenshots kept in {dest}")
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        shutil.rmtree(tmp, ignore_errors=True)

    if problems:
        print("selfcheck: FAIL")
        for p in problems:
            print(f"  - {p}")
        return 1
    print("selfcheck: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
