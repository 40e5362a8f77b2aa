#!/usr/bin/env python3
"""A local Web Push service for crates/server/tests/push_e2e.rs.

It plays the browser and its push service: makes the subscription's P-256 key and auth
secret (Python `cryptography`), prints the subscription as one JSON line, then receives the
server's pushes. For each POST it checks the VAPID token (RFC 8292: ES256 under the key from
/api/app/v1/push/key, `aud` this origin, `exp` within 24 h), decrypts the body with the
independent `http_ece` library (RFC 8291 / RFC 8188 aes128gcm), and prints one JSON line per
push: {"ok": true, "plaintext": ..., "headers": {...}} or {"ok": false, "error": ...}. It
answers with --status (201; 410 to say the subscription is gone).

Usage: push_service.py --vapid-key B64URL [--status 201]
"""

import argparse
import base64
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_vapid(header, vapid_key, origin):
    """The VAPID `Authorization` header's token, verified; its claims."""
    if not header.startswith("vapid "):
        raise ValueError("Authorization is not `vapid`: " + header)
    parts = dict(p.strip().split("=", 1) for p in header[len("vapid "):].split(","))
    if parts.get("k") != vapid_key:
        raise ValueError("k is not the key of /push/key")
    head, claims, signature = parts["t"].split(".")
    if json.loads(unb64(head)) != {"typ": "JWT", "alg": "ES256"}:
        raise ValueError("JWT header is not ES256")
    raw = unb64(signature)
    if len(raw) != 64:
        raise ValueError("ES256 signature is not 64 bytes")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64(vapid_key))
    try:
        public.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ValueError("the VAPID signature does not verify")
    claims = json.loads(unb64(claims))
    if claims.get("aud") != origin:
        raise ValueError(f"aud {claims.get('aud')!r} is not {origin!r}")
    if not time.time() < claims["exp"] <= time.time() + 24 * 3600:
        raise ValueError("exp is not within 24 hours")
    if not str(claims.get("sub", "")).startswith(("mailto:", "https:", "http:")):
        raise ValueError("sub is not a mailto: or https: URL")
    return claims


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vapid-key", required=True)
    parser.add_argument("--status", type=int, default=201)
    args = parser.parse_args()

    private_key = ec.generate_private_key(ec.SECP256R1())
    public = private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    auth = bytes(__import__("os").urandom(16))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            report = {"path": self.path, "headers": {
                k: self.headers.get(k) for k in ("TTL", "Urgency", "Content-Encoding")}}
            try:
                origin = f"http://{self.headers['Host']}"
                report["claims"] = check_vapid(self.headers.get("Authorization", ""),
                                               args.vapid_key, origin)
                if self.headers.get("Content-Encoding") != "aes128gcm":
                    raise ValueError("Content-Encoding is not aes128gcm")
                # The sender's key comes from the aes128gcm header (RFC 8291 §4): http_ece
                # reads it there when `dh` is left out (passing it makes it decode the key id
                # as text).
                plaintext = http_ece.decrypt(body, private_key=private_key,
                                             auth_secret=auth, version="aes128gcm")
                report.update(ok=True, plaintext=plaintext.decode())
            except Exception as error:  # reported to the test, which fails on it
                report.update(ok=False, error=f"{type(error).__name__}: {error}")
            print(json.dumps(report), flush=True)
            self.send_response(args.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    print(json.dumps({"endpoint": f"http://127.0.0.1:{port}/push/sub-1",
                      "expirationTime": None,
                      "keys": {"p256dh": b64(public), "auth": b64(auth)}}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
