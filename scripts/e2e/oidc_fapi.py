#!/usr/bin/env python3
"""A bank logs a citizen in at FAPI 2.0, in headless Chromium, with ConsentID approving.

The relying party is node's openid-client 6 (scripts/e2e/openid-client/rp.mjs): it pushes the
authorization request (PAR, PKCE S256, private_key_jwt, DPoP), and after the browser's part it
exchanges the code, validates the ID token against the JWKS and calls userinfo with a DPoP
proof. The browser's part is the citizen's: the service's page asks to log in to the portal,
**Изаберите начин пријаве**, **Мобилна апликација**, the username, the phone approves (the
`consentid` command-line app), the consent page names the service, **Дозволи**, and the
browser lands on the bank's callback (a listener of this script on 127.0.0.1).

    oidc_fapi.py --url URL --email E --consentid BIN --consentid-home DIR --pin-file F
        --screenshots DIR --node NODE --rp-dir KEYDIR --client-id ID --redirect URL
        --service NAME

It prints `RESULT {json}` (what rp.mjs finish printed: the ID token's claims, userinfo and
the token type), then the citizen logs out, logs in to the bank again (the consent is
remembered: no consent page) and it prints `RESULT-AGAIN {json}`; then PASS, or what failed.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import urlparse

from portal import StepFailure, add_login_arguments, drive, norm

RP = Path(__file__).resolve().parent / "openid-client" / "rp.mjs"
W_CHOOSE = "Изаберите начин пријаве"
W_MOBILE_APP = "Мобилна апликација"
W_ALLOW = "Дозволи"
W_DENY = "Одбиј"
W_LOGIN = "Пријава"
W_LOGOUT = "Одјава"
W_GIVEN_NAME = "име"
W_EMAIL = "адресу е-поште"


class Callback:
    """The bank's redirect URI: a listener on 127.0.0.1 that keeps the newest request's path."""

    def __init__(self, redirect: str):
        parsed = urlparse(redirect)
        if parsed.hostname != "127.0.0.1" or not parsed.port:
            raise SystemExit(f"--redirect must be http://127.0.0.1:PORT/...: {redirect}")
        self.base = f"{parsed.scheme}://{parsed.netloc}"
        self.redirect_path = parsed.path
        self.path: str | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                # (The browser also asks for /favicon.ico.)
                if urlparse(self.path).path == outer.redirect_path:
                    outer.path = self.path
                body = "<!doctype html><title>Bank</title><h1>Bank: signed in</h1>".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_):
                pass

        self.server = HTTPServer(("127.0.0.1", parsed.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self) -> str | None:
        return None if self.path is None else self.base + self.path


def rp(args: argparse.Namespace, *arguments: str) -> dict:
    """Runs rp.mjs; its JSON answer."""
    p = subprocess.run(
        [args.node, str(RP), *arguments], capture_output=True, text=True, timeout=60
    )
    if p.returncode != 0:
        raise StepFailure(
            f"openid-client (rp.mjs {arguments[0]}) to succeed",
            f"exit status {p.returncode}:\n{p.stdout}{p.stderr}",
        )
    return json.loads(p.stdout.strip().splitlines()[-1])


def steps(portal) -> None:
    a = portal.args
    callback = Callback(a.redirect)
    folder = Path(tempfile.mkdtemp(prefix="eidportal-rp-"))
    first = login(portal, callback, folder / "first.json", consent=True)
    print("RESULT " + json.dumps(first, ensure_ascii=False))

    # The citizen logs out of the portal and comes back through the bank: the consent is
    # remembered, so the login itself leads on to the bank (its page's refresh, then the
    # authorization request's redirect), and the bank sees the same pairwise `sub`.
    portal.step = "8. Одјава"
    print(portal.step)
    portal.driver.get(a.url)
    portal.click(portal.clickable(W_LOGOUT))
    portal.clickable(W_LOGIN)
    again = login(portal, callback, folder / "again.json", consent=False)
    if again["claims"]["sub"] != first["claims"]["sub"]:
        raise StepFailure("the same sub on the second login", f"{again['claims']['sub']} != {first['claims']['sub']}")
    print("RESULT-AGAIN " + json.dumps(again, ensure_ascii=False))


def login(portal, callback: Callback, state: Path, consent: bool) -> dict:
    """One login to the bank, from its pushed request to userinfo: what rp.mjs finish printed."""
    a = portal.args
    d = portal.driver
    callback.path = None
    shot = "oidc-" if consent else "oidc-again-"

    portal.step = "1. the bank pushes its request (PAR, PKCE, private_key_jwt, DPoP)"
    print(portal.step)
    url = rp(a, "start", str(state), a.url, a.client_id, a.rp_dir, a.redirect)["url"]
    print(f"  authorization URL: {url}")

    portal.step = "2. the service's page: log in to the portal first"
    print(portal.step)
    d.get(url)
    portal.settled()
    choose = portal.clickable(W_CHOOSE)
    if norm(a.service) not in norm(portal.body_text()):
        raise StepFailure(f"the page to name the service «{a.service}»")
    portal.screenshot(f"{shot}01-login-first.png")
    portal.click(choose)
    portal.click(portal.clickable(W_MOBILE_APP))
    portal.username_and_phone()

    if consent:
        portal.step = "5. consent page: the service, its data, Дозволи"
        print(portal.step)
        allow = portal.clickable(W_ALLOW, timeout=a.timeout)
        portal.clickable(W_DENY)
        text = norm(portal.body_text())
        # The scopes `profile email`: what the service will receive, each by name.
        for want in (a.service, W_GIVEN_NAME, W_EMAIL):
            if norm(want) not in text:
                raise StepFailure(f"the consent page to show «{want}»")
        portal.settled()
        portal.screenshot(f"{shot}02-consent.png")
        portal.click(allow)

    portal.step = "6. back at the bank's callback"
    print(portal.step)
    landed = portal.wait_for(
        f"the browser to arrive at the bank's redirect URI {a.redirect}",
        callback.url,
        timeout=a.timeout,
    )
    portal.screenshot(f"{shot}03-callback.png")
    print(f"  callback: {landed}")

    portal.step = "7. the bank exchanges the code, validates the ID token, calls userinfo"
    print(portal.step)
    return rp(a, "finish", str(state), landed)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_login_arguments(p)
    p.add_argument("--node", default="node", help="the node binary")
    p.add_argument("--rp-dir", required=True, help="the RP's keys (rp.mjs keygen)")
    p.add_argument("--client-id", required=True)
    p.add_argument("--redirect", required=True, help="http://127.0.0.1:PORT/callback")
    p.add_argument("--service", required=True, help="the service's registered name")
    return drive(p.parse_args(), steps)


if __name__ == "__main__":
    sys.exit(main())
