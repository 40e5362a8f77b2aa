#!/usr/bin/env python3
"""A relying party of the portal's OpenID provider, built on libraries we did not write:
authlib (OAuth 2.0 client, PKCE, client_secret_basic, private_key_jwt, ID-token validation)
and joserfc (the RP's keys, and DPoP proofs signed with them). crates/server/tests/oidc_e2e.rs
drives it; the browser part (login, consent) is the test's.

    oidc_client.py keygen DIR                    the RP's P-256 key: DIR/private.json, DIR/jwks.json
    oidc_client.py start  STATE basic|fapi2 ISSUER CLIENT_ID SECRET_OR_KEYDIR REDIRECT SCOPE
                          [AUTHORIZATION_DETAILS]
                                                 prints {"url": the authorization URL}; with
                                                 AUTHORIZATION_DETAILS (RFC 9396, JSON), the
                                                 request carries it
    oidc_client.py finish STATE CALLBACK_URL     exchanges the code, validates the ID token
                                                 against the JWKS, calls userinfo; prints JSON
                                                 (with authorization_details: the ID token's
                                                 claim and, for basic, the introspection's)
    oidc_client.py ciba-start STATE ISSUER CLIENT_ID SECRET LOGIN_HINT BINDING_MESSAGE [TOKEN]
                                                 a CIBA request (client_secret_basic), in ping
                                                 mode with TOKEN as client_notification_token;
                                                 prints {"status", "body"}
    oidc_client.py ciba-poll STATE               one poll of the token endpoint; with tokens,
                                                 the ID token validated; prints {"status", "body"}
    oidc_client.py logout-receiver PORTFILE OUTFILE ISSUER
                                                 a back-channel logout endpoint on 127.0.0.1:
                                                 writes its port to PORTFILE, validates each
                                                 logout_token against the JWKS and appends its
                                                 claims (one JSON line) to OUTFILE
    oidc_client.py ping-receiver PORTFILE OUTFILE
                                                 a CIBA client notification endpoint on
                                                 127.0.0.1: writes its port to PORTFILE, appends
                                                 each notification's bearer token and JSON body
                                                 (one JSON line) to OUTFILE

Every check that fails raises: the test sees a non-zero exit and the traceback.
"""

import base64
import hashlib
import json
import secrets
import sys
import time
from urllib.parse import parse_qs, urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oidc.core import CodeIDToken
from joserfc import jws
from joserfc.jwk import ECKey

HIGH = "http://eidas.europa.eu/LoA/high"


def discovery(issuer):
    answer = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10)
    answer.raise_for_status()
    return answer.json()


def session(state):
    if state["mode"] == "basic":
        return OAuth2Session(
            state["client_id"],
            state["secret"],
            scope=state["scope"],
            redirect_uri=state["redirect"],
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",
        )
    with open(f"{state['keydir']}/private.json") as f:
        private = ECKey.import_key(json.load(f))
    client = OAuth2Session(
        state["client_id"],
        private,
        scope=state["scope"],
        redirect_uri=state["redirect"],
        code_challenge_method="S256",
        token_endpoint_auth_method="private_key_jwt",
    )
    # The assertion's audience is the URL it is sent to (PAR or token endpoint).
    client.register_client_auth_method(PrivateKeyJWT(alg="ES256"))
    return client


def validate_id_token(token, state, nonce=None):
    """The ID token checked by authlib against the JWKS: signature, iss, aud, exp, nonce, acr."""
    meta = state["meta"]
    keys = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    params = {"client_id": state["client_id"]}
    if nonce:
        params["nonce"] = nonce
    claims = jwt.decode(
        token,
        keys,
        claims_cls=CodeIDToken,
        claims_options={
            "iss": {"essential": True, "value": state["issuer"]},
            "acr": {"essential": True, "value": HIGH},
        },
        claims_params=params,
    )
    claims.validate()
    return claims


def dpop_key(state):
    with open(f"{state['keydir']}/dpop.json") as f:
        return ECKey.import_key(json.load(f))


def dpop_proof(key, method, url, access_token=None, nonce=None):
    claims = {"htm": method, "htu": url, "iat": int(time.time()), "jti": secrets.token_urlsafe(16)}
    if nonce:
        claims["nonce"] = nonce
    if access_token:
        digest = hashlib.sha256(access_token.encode()).digest()
        claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    header = {"alg": "ES256", "typ": "dpop+jwt", "jwk": key.as_dict(private=False)}
    return jws.serialize_compact(header, json.dumps(claims).encode(), key)


def keygen(directory):
    key = ECKey.generate_key("P-256", parameters={"kid": "rp-1", "use": "sig", "alg": "ES256"})
    with open(f"{directory}/private.json", "w") as f:
        json.dump(key.as_dict(private=True), f)
    with open(f"{directory}/jwks.json", "w") as f:
        json.dump({"keys": [key.as_dict(private=False)]}, f)
    with open(f"{directory}/dpop.json", "w") as f:
        json.dump(ECKey.generate_key("P-256").as_dict(private=True), f)


def start(path, mode, issuer, client_id, secret_or_keydir, redirect, scope,
          authorization_details=None):
    meta = discovery(issuer)
    state = {
        "mode": mode,
        "issuer": issuer,
        "client_id": client_id,
        "redirect": redirect,
        "scope": scope,
        "nonce": secrets.token_urlsafe(16),
        "verifier": secrets.token_urlsafe(48),
        "meta": meta,
    }
    if mode == "basic":
        state["secret"] = secret_or_keydir
    else:
        state["keydir"] = secret_or_keydir
    client = session(state)
    extra = {}
    if authorization_details is not None:
        # RFC 9396 §2: a JSON array, sent as one parameter.
        state["authorization_details"] = json.loads(authorization_details)
        extra["authorization_details"] = authorization_details
    url, state["state"] = client.create_authorization_url(
        meta["authorization_endpoint"],
        code_verifier=state["verifier"],
        nonce=state["nonce"],
        acr_values=HIGH,
        **extra,
    )
    if mode == "fapi2":
        # RFC 9126: the parameters go to the PAR endpoint, authenticated with private_key_jwt;
        # the browser gets only client_id and request_uri.
        params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        params["dpop_jkt"] = dpop_key(state).thumbprint()
        pushed = client.post(
            meta["pushed_authorization_request_endpoint"],
            data=params,
            auth=client.client_auth("private_key_jwt"),
            withhold_token=True,
        )
        assert pushed.status_code == 201, pushed.text
        request_uri = pushed.json()["request_uri"]
        # RFC 9449 §8: the server's nonce, for the proofs to come.
        state["dpop_nonce"] = pushed.headers["DPoP-Nonce"]
        url = (
            f"{meta['authorization_endpoint']}?"
            + requests.compat.urlencode({"client_id": client_id, "request_uri": request_uri})
        )
    with open(path, "w") as f:
        json.dump(state, f)
    print(json.dumps({"url": url}))


def finish(path, callback):
    with open(path) as f:
        state = json.load(f)
    meta = state["meta"]
    query = parse_qs(urlsplit(callback).query)
    # RFC 9207: the answer names its issuer.
    assert query["iss"] == [state["issuer"]], query
    assert query["state"] == [state["state"]], query
    client = session(state)
    headers = {}
    if state["mode"] == "fapi2":
        headers["DPoP"] = dpop_proof(dpop_key(state), "POST", meta["token_endpoint"],
                                     nonce=state["dpop_nonce"])
    token = client.fetch_token(
        meta["token_endpoint"],
        authorization_response=callback,
        code_verifier=state["verifier"],
        state=state["state"],
        headers=headers,
    )
    claims = validate_id_token(token["id_token"], state, state["nonce"])
    access = token["access_token"]
    out = {"sub": claims["sub"], "acr": claims["acr"], "sid": claims["sid"],
           "token_type": token["token_type"], "access_token": access,
           "refresh_token": token.get("refresh_token"), "id_token": token["id_token"]}
    if state["mode"] == "fapi2":
        assert token["token_type"] == "DPoP", token
        key = dpop_key(state)
        url = meta["userinfo_endpoint"]
        nonce = state["dpop_nonce"]
        # A proof without the server's nonce: refused, with the nonce to use.
        bare = requests.get(url, headers={"Authorization": f"DPoP {access}",
                                          "DPoP": dpop_proof(key, "GET", url, access)}, timeout=10)
        assert bare.status_code == 401 and bare.json()["error"] == "use_dpop_nonce", bare.text
        assert bare.headers["DPoP-Nonce"], bare.headers
        # The bound token alone, as a bearer token: refused.
        bearer = requests.get(url, headers={"Authorization": f"Bearer {access}"}, timeout=10)
        assert bearer.status_code == 401, bearer.text
        # A proof for another URL: refused.
        wrong = requests.get(url, headers={"Authorization": f"DPoP {access}",
                                           "DPoP": dpop_proof(key, "GET", meta["token_endpoint"], access, nonce)},
                             timeout=10)
        assert wrong.status_code in (400, 401) and wrong.json()["error"] == "invalid_dpop_proof", wrong.text
        proof = dpop_proof(key, "GET", url, access, nonce)
        info = requests.get(url, headers={"Authorization": f"DPoP {access}", "DPoP": proof}, timeout=10)
        assert info.status_code == 200, info.text
        # The same proof again: a replay.
        again = requests.get(url, headers={"Authorization": f"DPoP {access}", "DPoP": proof}, timeout=10)
        assert again.status_code in (400, 401) and again.json()["error"] == "invalid_dpop_proof", again.text
        out["userinfo"] = info.json()
    else:
        assert token["token_type"] == "Bearer", token
        out["userinfo"] = client.get(meta["userinfo_endpoint"]).json()
    assert out["userinfo"]["sub"] == claims["sub"], out
    if "authorization_details" in state:
        # RFC 9396 §7, §9.2: what was approved, in the ID token and to a resource server.
        out["authorization_details"] = claims.get("authorization_details")
        if state["mode"] == "basic":
            answer = requests.post(meta["introspection_endpoint"], data={"token": access},
                                   auth=(state["client_id"], state["secret"]), timeout=10)
            assert answer.status_code == 200, answer.text
            out["introspection"] = answer.json()
    print(json.dumps(out))


def ciba_start(path, issuer, client_id, secret, login_hint, binding_message, token=None):
    meta = discovery(issuer)
    data = {"scope": "openid profile", "login_hint": login_hint,
            "binding_message": binding_message}
    if token is not None:
        # CIBA Core §7.1: ping mode; the provider sends it back with its notification.
        assert "ping" in meta["backchannel_token_delivery_modes_supported"], meta
        data["client_notification_token"] = token
    answer = requests.post(
        meta["backchannel_authentication_endpoint"],
        data=data,
        auth=(client_id, secret),
        timeout=10,
    )
    state = {"issuer": issuer, "client_id": client_id, "secret": secret, "meta": meta,
             "auth_req_id": answer.json().get("auth_req_id")}
    with open(path, "w") as f:
        json.dump(state, f)
    print(json.dumps({"status": answer.status_code, "body": answer.json()}))


def ciba_poll(path):
    with open(path) as f:
        state = json.load(f)
    meta = state["meta"]
    answer = requests.post(
        meta["token_endpoint"],
        data={"grant_type": "urn:openid:params:grant-type:ciba",
              "auth_req_id": state["auth_req_id"]},
        auth=(state["client_id"], state["secret"]),
        timeout=10,
    )
    body = answer.json()
    out = {"status": answer.status_code, "body": body}
    if answer.status_code == 200:
        claims = validate_id_token(body["id_token"], state)
        info = requests.get(meta["userinfo_endpoint"],
                            headers={"Authorization": f"Bearer {body['access_token']}"}, timeout=10)
        assert info.status_code == 200, info.text
        out["sub"] = claims["sub"]
        out["userinfo"] = info.json()
    print(json.dumps(out))


def logout_receiver(port_file, out_file, issuer):
    from http.server import BaseHTTPRequestHandler, HTTPServer

    meta = discovery(issuer)

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            form = parse_qs(self.rfile.read(length).decode())
            token = form["logout_token"][0]
            keys = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
            claims = jwt.decode(token, keys)
            claims.validate()
            header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
            # Back-Channel Logout 1.0 §2.4 and §2.6.
            assert header["typ"] == "logout+jwt", header
            assert claims["iss"] == issuer, claims
            assert "http://schemas.openid.net/event/backchannel-logout" in claims["events"], claims
            assert "nonce" not in claims, claims
            assert claims.get("sid") and claims.get("sub") and claims.get("jti"), claims
            with open(out_file, "a") as f:
                f.write(json.dumps(dict(claims)) + "\n")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    with open(port_file, "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


def ping_receiver(port_file, out_file):
    """CIBA Core §10.2: a POST of {"auth_req_id"} as JSON, with the request's
    client_notification_token as a bearer credential; answered 204."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length).decode())
            scheme, _, token = self.headers.get("Authorization", "").partition(" ")
            assert scheme == "Bearer", self.headers
            assert self.headers.get("Content-Type") == "application/json", self.headers
            assert set(body) == {"auth_req_id"}, body
            with open(out_file, "a") as f:
                f.write(json.dumps({"path": self.path, "token": token, "body": body}) + "\n")
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    with open(port_file, "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


def main(argv):
    if argv[1] == "keygen":
        keygen(argv[2])
    elif argv[1] == "start":
        start(*argv[2:10])
    elif argv[1] == "finish":
        finish(argv[2], argv[3])
    elif argv[1] == "ciba-start":
        ciba_start(*argv[2:9])
    elif argv[1] == "ciba-poll":
        ciba_poll(argv[2])
    elif argv[1] == "logout-receiver":
        logout_receiver(argv[2], argv[3], argv[4])
    elif argv[1] == "ping-receiver":
        ping_receiver(argv[2], argv[3])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
