#!/usr/bin/env python3
"""Signs a PDF through eidportal's CSC API v2 with unmodified pyHanko (from PyPI).

What an integrator writes: HTTP Basic `auth/login` for a bearer token, `credentials/list`,
then pyHanko's own `fetch_certs_in_csc_credential` (credentials/info) and its stock
`CSCSigner` (signatures/signHash, with the v1 field names `hash`/`hashAlgo` that the server
accepts as aliases). pyHanko leaves credential authorisation to the caller: the small
`ConsentIdAuthorizationManager` below calls `credentials/authorize` with the exact hash (SCAL2)
and polls `credentials/authorizeCheck` while the user approves in ConsentID (202 while
pending, then 200 with the SAD).

Prints `handle <HANDLE>` as soon as the approval is requested, then `signed <OUT>`; exits 1
with the server's error on any refusal.

Usage:
  python scripts/e2e/csc_sign.py --url http://127.0.0.1:PORT --email E --password-file F \\
      --in in.pdf --out out.pdf [--make-input] [--description TEXT] [--timeout 60]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import datetime, timedelta, timezone

import aiohttp
from asn1crypto import algos
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.signers.csc_signer import (
    CSCAuthorizationInfo,
    CSCAuthorizationManager,
    CSCServiceSessionInfo,
    CSCSigner,
    fetch_certs_in_csc_credential,
)


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with a classic cross-reference table."""
    content = f"BT /F1 18 Tf 72 760 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.7\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


class ConsentIdAuthorizationManager(CSCAuthorizationManager):
    """credentials/authorize with the hashes (SCAL2), then authorizeCheck until approved."""

    def __init__(self, http, session_info, credential_info, description, timeout):
        super().__init__(session_info, credential_info)
        self.http = http
        self.description = description
        self.timeout = timeout

    async def _post(self, method, body):
        url = self.csc_session_info.endpoint_url(method)
        async with self.http.post(url, headers=self.auth_headers, json=body) as response:
            payload = await response.json(content_type=None)
            if response.status >= 400:
                raise SystemExit(f"{method}: HTTP {response.status} {payload}")
            return response.status, payload

    async def authorize_signature(self, hash_b64s):
        body = {
            "credentialID": self.csc_session_info.credential_id,
            "numSignatures": len(hash_b64s),
            "hashes": hash_b64s,
            "hashAlgorithmOID": algos.DigestAlgorithmId("sha256").dotted,
            "description": self.description,
        }
        status, payload = await self._post("credentials/authorize", body)
        if status == 200:
            return self.parse_csc_auth_response(payload)
        handle = payload["handle"]
        print(f"handle {handle}", flush=True)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            status, payload = await self._post("credentials/authorizeCheck", {"handle": handle})
            if status == 200:
                expires = datetime.now(timezone.utc) + timedelta(seconds=int(payload.get("expiresIn", 300)))
                return CSCAuthorizationInfo(sad=payload["SAD"], expires_at=expires)
            await asyncio.sleep(0.3)
        raise SystemExit("credentials/authorizeCheck: no approval in time")


async def main(args) -> int:
    password = open(args.password_file, encoding="utf-8").read().strip()
    if args.make_input:
        with open(args.input, "wb") as f:
            f.write(minimal_pdf("eidportal CSC test document"))
    async with aiohttp.ClientSession() as http:
        login = f"{args.url}/csc/v2/auth/login"
        async with http.post(login, auth=aiohttp.BasicAuth(args.email, password), json={}) as response:
            body = await response.json(content_type=None)
            if response.status != 200:
                print(f"auth/login: HTTP {response.status} {body}", file=sys.stderr)
                return 1
            token = body["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        async with http.post(f"{args.url}/csc/v2/credentials/list", headers=headers, json={"onlyValid": True}) as response:
            ids = (await response.json(content_type=None))["credentialIDs"]
        if not ids:
            print("credentials/list: no credential", file=sys.stderr)
            return 1
        session_info = CSCServiceSessionInfo(service_url=args.url, credential_id=ids[0], oauth_token=token, api_ver="v2")
        credential = await fetch_certs_in_csc_credential(http, session_info)
        manager = ConsentIdAuthorizationManager(http, session_info, credential, args.description, args.timeout)
        signer = CSCSigner(http, auth_manager=manager)
        with open(args.input, "rb") as inp:
            writer = IncrementalPdfFileWriter(inp)
            meta = signers.PdfSignatureMetadata(field_name="Signature1", md_algorithm="sha256")
            with open(args.output, "wb") as out:
                await signers.async_sign_pdf(writer, meta, signer=signer, output=out)
    print(f"signed {args.output}", flush=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--email", required=True)
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--in", dest="input", required=True)
    parser.add_argument("--out", dest="output", required=True)
    parser.add_argument("--make-input", action="store_true", help="write a one-page test PDF to --in first")
    parser.add_argument("--description", default="Тест документ")
    parser.add_argument("--timeout", type=float, default=60)
    sys.exit(asyncio.run(main(parser.parse_args())))
