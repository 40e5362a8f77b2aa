#!/usr/bin/env python3
"""The citizens of the upgrade fixture, made through a running eidportal (scripts/make-upgrade-fixture).

Standard library only. Against a server already listening at --url on the data folder --data
(and the database its environment names), with that release's `eidportal` and `consentid`:

1. Петар Петровић (petar@example.rs): enrolled by the officer, ConsentID activated in
   PHONES/petar, logged in with the phone, the agreement accepted (a cloud certificate; the
   portal mails it), and a small PDF signed at B-LT through the portal, approved on the
   phone. The signed PDF is written to OUT/petar-b-lt.pdf.
2. Ана Анић (ana@example.rs): the same up to the cloud certificate, then "Опозови све
   сертификате" (revoke everything): her certificates are revoked and her phone deactivated.
3. Јована Јовић (jovana@example.rs): enrolled with a password only (no ConsentID); the
   password login is checked.

It then writes OUT/certificates.json, the officer's `cert list --json` at the end: what the
upgrade test expects every certificate's status to stay.
"""

import argparse
import email
import email.policy
import http.cookiejar
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

PIN = "246810"
PASSWORD = "duga lozinka 123"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Browser:
    """A browser without JavaScript: keeps cookies, reads CSRF tokens, posts forms."""

    def __init__(self, url):
        self.url = url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect()
        )

    def send(self, method, path, body=None, content_type=None):
        request = urllib.request.Request(self.url + path, data=body, method=method)
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with self.opener.open(request, timeout=60) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def get(self, path):
        return self.send("GET", path)

    def text(self, path):
        status, _, body = self.get(path)
        if status != 200:
            fail(f"GET {path}: HTTP {status}: {body[:500]!r}")
        return body.decode("utf-8", "replace")

    def post(self, path, fields):
        body = urllib.parse.urlencode(fields).encode()
        return self.send("POST", path, body, "application/x-www-form-urlencoded")

    def csrf(self, path):
        found = re.search(r'name="csrf" value="([^"]+)"', self.text(path))
        if not found:
            fail(f"no CSRF field on {path}")
        return found.group(1)

    def post_from(self, page, action, fields=()):
        return self.post(action, [("csrf", self.csrf(page)), *fields])

    def post_multipart(self, path, fields, files):
        boundary = "----eidportal-upgrade-fixture-7MA4YWxkTrZu0gW"
        body = b""
        for name, value in fields:
            body += (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{value}\r\n"
            ).encode()
        for name, filename, content in files:
            body += (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: application/pdf\r\n\r\n'
            ).encode()
            body += content + b"\r\n"
        body += f"--{boundary}--\r\n".encode()
        return self.send("POST", path, body, f"multipart/form-data; boundary={boundary}")


def fail(message):
    print(f"upgrade_fixture: {message}", file=sys.stderr)
    sys.exit(1)


def expect(condition, message):
    if not condition:
        fail(message)


class Tools:
    def __init__(self, args):
        self.args = args

    def eidportal(self, *argv, stdin=None):
        result = subprocess.run(
            [self.args.eidportal, "--data", self.args.data, *argv],
            input=stdin,
            capture_output=True,
            text=True,
            env={**os.environ, "EIDPORTAL_PUBLIC_URL": self.args.url},
        )
        expect(result.returncode == 0, f"eidportal {argv}: {result.stderr}")
        return result.stdout

    def consentid(self, home, *argv):
        result = subprocess.run(
            [self.args.consentid, "--home", str(home), *argv],
            input=f"{PIN}\n",
            capture_output=True,
            text=True,
        )
        expect(result.returncode == 0, f"consentid {argv}: {result.stdout}{result.stderr}")
        return result.stdout

    def enrol(self, email_address, given, surname, jmbg, password=None):
        argv = [
            "user", "add", "--email", email_address, "--given-name", given,
            "--surname", surname, "--jmbg", jmbg, "--json",
        ]
        if password is not None:
            argv.append("--password-stdin")
        out = self.eidportal(*argv, stdin=f"{password}\n" if password is not None else None)
        return json.loads(out.strip())["activation_code"]


def log_in_with_phone(tools, home, email_address):
    """The mobile login: the browser starts it, the phone approves with the code shown."""
    browser = Browser(tools.args.url)
    status, headers, _ = browser.post_from(
        "/login/mobile", "/login/mobile", [("username", email_address)]
    )
    location = headers.get("Location")
    expect(status == 303 and location, f"mobile login start: HTTP {status}")
    page = browser.text(location)
    code = re.search(r'data-testid="verification-code">([^<]+)<', page)
    expect(code, f"no verification code on {location}")
    tools.consentid(
        home, "approve", "--next", "--wait", "10", "--code", code.group(1), "--pin-stdin"
    )
    deadline = time.monotonic() + 10
    while "approved" not in browser.text(f"{location}/status"):
        expect(time.monotonic() < deadline, "the login was not approved")
        time.sleep(0.1)
    status, headers, _ = browser.post_from(location, f"{location}/complete")
    expect(headers.get("Location") == "/account", f"mobile login complete: HTTP {status}")
    return browser


def take_cloud_certificate(browser):
    """Издај, then Прихвати: the agreement accepted, a cloud certificate issued."""
    status, _, body = browser.post_from(
        "/services/cloud-certificate", "/services/cloud-certificate/issue"
    )
    expect(status == 200 and "Прихвати".encode() in body, f"Издај: HTTP {status}")
    status, headers, _ = browser.post_from(
        "/services/cloud-certificate", "/services/cloud-certificate/agreement/accept"
    )
    expect(
        status == 303 and headers.get("Location") == "/services/cloud-certificate?done=issued",
        f"Прихвати: HTTP {status} {headers.get('Location')}",
    )


def mailed_agreement(outbox, to):
    """The agreement PDF the portal mailed to `to` (the outbox's .eml files)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for path in sorted(pathlib.Path(outbox).glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if to not in str(message["To"]):
                continue
            for part in message.iter_attachments():
                if part.get_content_type() == "application/pdf":
                    return part.get_content()
        time.sleep(0.2)
    fail(f"no agreement PDF for {to} in {outbox}")


def small_pdf(text):
    """A one-page PDF with one line of ASCII `text` in Helvetica (a standard font, not
    embedded): a few hundred bytes, where the portal's agreement embeds its whole font."""
    content = f"BT /F1 14 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.7\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return out


def sign_b_lt(tools, browser, home, name, document):
    """Uploads `document` at B-LT, approves on the phone, returns the signed PDF."""
    csrf = browser.csrf("/services/sign")
    status, headers, body = browser.post_multipart(
        "/services/sign",
        [("csrf", csrf), ("level", "b-lt")],
        [("documents", name, document)],
    )
    expect(status == 303, f"upload: HTTP {status}: {body[:500]!r}")
    job = headers.get("Location")
    expect(job, "the upload names no job")
    expect(
        "Одобрите потпис у апликацији ConsentID" in browser.text(job),
        f"{job} asks for no approval",
    )
    tools.consentid(home, "approve", "--next", "--wait", "10", "--pin-stdin")
    deadline = time.monotonic() + 60
    while "Документи су потписани" not in browser.text(job):
        expect(time.monotonic() < deadline, f"{job}: not signed")
        time.sleep(0.2)
    status, headers, signed = browser.get(f"{job}/0")
    expect(
        status == 200 and headers.get("Content-Type") == "application/pdf",
        f"download: HTTP {status}",
    )
    return signed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the running server, http://127.0.0.1:PORT")
    parser.add_argument("--data", required=True, help="its data folder")
    parser.add_argument("--eidportal", required=True)
    parser.add_argument("--consentid", required=True)
    parser.add_argument("--phones", required=True, help="folder of the ConsentID homes")
    parser.add_argument("--out", required=True, help="where the signed PDF and the list go")
    args = parser.parse_args()
    tools = Tools(args)
    phones, out = pathlib.Path(args.phones), pathlib.Path(args.out)

    # 1. Петар: a cloud certificate and a B-LT signature.
    petar = phones / "petar"
    code = tools.enrol("petar@example.rs", "Петар", "Петровић", "0101990710008")
    tools.consentid(
        petar, "activate", "--server", args.url, "--code", code, "--pin-stdin"
    )
    browser = log_in_with_phone(tools, petar, "petar@example.rs")
    take_cloud_certificate(browser)
    # The agreement arrived by mail (the outbox) as before; the document he signs is a small
    # one, to keep the fixture small.
    mailed_agreement(pathlib.Path(args.data) / "outbox", "petar@example.rs")
    document = small_pdf("Signed before the upgrade (release c5afecc)")
    signed = sign_b_lt(tools, browser, petar, "dokument.pdf", document)
    (out / "petar-b-lt.pdf").write_bytes(signed)

    # 2. Ана: a cloud certificate, then Опозови све сертификате.
    ana = phones / "ana"
    code = tools.enrol("ana@example.rs", "Ана", "Анић", "0101990710008")
    tools.consentid(ana, "activate", "--server", args.url, "--code", code, "--pin-stdin")
    browser = log_in_with_phone(tools, ana, "ana@example.rs")
    take_cloud_certificate(browser)
    status, _, body = browser.post_from(
        "/services/cloud-certificate", "/services/cloud-certificate/revoke-all"
    )
    expect(status == 200, f"Опозови све сертификате: HTTP {status}")
    status, _, body = browser.post_from(
        "/services/cloud-certificate", "/services/cloud-certificate/revoke-all/confirm"
    )
    expect(
        status == 200 and "Сви ваши сертификати су опозвани".encode() in body,
        f"revoke all, confirmed: HTTP {status}",
    )
    state = json.loads(tools.consentid(ana, "status", "--json"))["state"]
    expect(state == "deactivated", f"Ана's phone is {state}, not deactivated")

    # 3. Јована: a password only.
    tools.enrol("jovana@example.rs", "Јована", "Јовић", "0101990710008", password=PASSWORD)
    browser = Browser(args.url)
    status, headers, _ = browser.post_from(
        "/login/password",
        "/login/password",
        [("username", "jovana@example.rs"), ("password", PASSWORD)],
    )
    expect(headers.get("Location") == "/account", f"password login: HTTP {status}")

    # What the upgrade must keep.
    listed = json.loads(tools.eidportal("cert", "list", "--json"))
    (out / "certificates.json").write_text(json.dumps(listed, indent=1, ensure_ascii=False) + "\n")
    for c in listed:
        print(f"upgrade_fixture: {c['serial']} {c['kind']} {c['status']} {c.get('email') or ''}")


if __name__ == "__main__":
    main()
