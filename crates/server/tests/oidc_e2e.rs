//! "Log in with eID" (issue 23): services registered with `eidportal oidc client add` log a
//! citizen in through the portal's OpenID provider, driven by a relying party built on
//! authlib and joserfc (scripts/e2e/oidc_client.py), which validates the ID token against the
//! JWKS itself. The citizen logs in with ConsentID and allows each service on the consent page.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use support::{http_with, Browser, Server, Setup};

const BASIC_REDIRECT: &str = "http://127.0.0.1:9/tax/callback";
const FAPI_REDIRECT: &str = "https://bank.example/callback";

/// Runs the relying party; its JSON answer.
fn relying_party(python: &Path, args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/e2e/oidc_client.py");
    let output = Command::new(python)
        .arg(&script)
        .args(args)
        .output()
        .expect("run oidc_client.py");
    assert!(
        output.status.success(),
        "oidc_client.py {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or(Value::Null)
}

/// The path and query of an absolute URL of `server`.
fn path_of(server: &Server, url: &str) -> String {
    url.strip_prefix(&server.url).unwrap().to_owned()
}

/// The consent page for `url`, allowed: where the browser is sent back to the service.
fn allow(browser: &mut Browser, server: &Server, url: &str, service: &str) -> String {
    let path = path_of(server, url);
    let page = browser.get(&path);
    let html = String::from_utf8_lossy(&page.body).to_string();
    assert_eq!(page.status, 200, "{html}");
    assert!(
        html.contains(service) && html.contains("Дозволи") && html.contains("Одбиј"),
        "{html}"
    );
    let csrf = Browser::csrf(&page);
    let query = path.split_once('?').unwrap().1;
    let allowed = browser.post(
        "/oidc/authorize",
        &[("csrf", &csrf), ("query", query), ("decision", "allow")],
    );
    allowed.header("location").unwrap().to_owned()
}

fn post_form(
    server: &Server,
    path: &str,
    headers: &[(&str, &str)],
    fields: &[(&str, &str)],
) -> (u16, Value) {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", support::url_encode(v)))
        .collect();
    let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
    all.extend_from_slice(headers);
    let response = http_with(&server.addr, "POST", path, &all, body.join("&").as_bytes()).unwrap();
    (
        response.status,
        serde_json::from_slice(&response.body).unwrap_or(Value::Null),
    )
}

#[test]
fn services_log_a_citizen_in_with_eid_through_a_client_library_in_both_profiles() {
    let Some(python) = support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(&d.join("data"), &Setup::embedded(), None);
    let issuer = server.url.clone();

    // Discovery names what the specifications require (OpenID Connect Discovery 1.0 §3,
    // RFC 8414, RFC 9126, RFC 9207).
    let meta: Value =
        serde_json::from_slice(&server.get("/.well-known/openid-configuration")).unwrap();
    for field in [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
        "pushed_authorization_request_endpoint",
    ] {
        assert!(meta.get(field).is_some(), "discovery lacks {field}: {meta}");
    }
    assert_eq!(meta["issuer"], issuer);
    assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
    let jwks: Value = serde_json::from_slice(&server.get("/oidc/jwks")).unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("EC"), Some("P-256")),
        "{jwks}"
    );
    assert!(key.get("d").is_none(), "the JWKS holds no private part");

    // The operator registers a tax office (basic, client secret) and a bank (FAPI 2.0).
    let basic: Value = serde_json::from_str(
        server
            .cli_ok(&[
                "oidc",
                "client",
                "add",
                "--name",
                "Пореска управа",
                "--profile",
                "basic",
                "--redirect-uri",
                BASIC_REDIRECT,
                "--scope",
                "profile",
                "--scope",
                "email",
                "--scope",
                "offline_access",
                "--json",
            ])
            .trim(),
    )
    .unwrap();
    let basic_id = basic["client_id"].as_str().unwrap().to_owned();
    let secret = basic["client_secret"].as_str().unwrap().to_owned();
    let keys = d.join("bank-keys");
    std::fs::create_dir_all(&keys).unwrap();
    relying_party(&python, &["keygen", keys.to_str().unwrap()]);
    let fapi: Value = serde_json::from_str(
        server
            .cli_ok(&[
                "oidc",
                "client",
                "add",
                "--name",
                "Банка Интеса",
                "--redirect-uri",
                FAPI_REDIRECT,
                "--jwks",
                keys.join("jwks.json").to_str().unwrap(),
                "--scope",
                "profile",
                "--json",
            ])
            .trim(),
    )
    .unwrap();
    let fapi_id = fapi["client_id"].as_str().unwrap().to_owned();
    assert_eq!(fapi["profile"], "fapi2");
    assert!(fapi.get("client_secret").is_none());
    let listed = server.cli_ok(&["oidc", "client", "list"]);
    assert!(
        listed.contains("Пореска управа") && listed.contains("Банка Интеса"),
        "{listed}"
    );

    let home = d.join("phone");
    let mut browser = support::logged_in(&server, "petar@example.rs", &home);

    // basic: the code flow with client_secret_basic.
    let state = d.join("basic.json");
    let state = state.to_str().unwrap();
    let start =
        |mode: &str, id: &str, credential: &str, redirect: &str, scope: &str, path: &str| {
            relying_party(
                &python,
                &[
                    "start", path, mode, &issuer, id, credential, redirect, scope,
                ],
            )["url"]
                .as_str()
                .unwrap()
                .to_owned()
        };
    let url = start(
        "basic",
        &basic_id,
        &secret,
        BASIC_REDIRECT,
        "openid profile email offline_access",
        state,
    );
    let callback = allow(&mut browser, &server, &url, "Пореска управа");
    assert!(
        callback.starts_with(&format!("{BASIC_REDIRECT}?code=")),
        "{callback}"
    );
    let first = relying_party(&python, &["finish", state, &callback]);
    assert_eq!(first["userinfo"]["given_name"], "Петар", "{first}");
    assert_eq!(first["userinfo"]["email"], "petar@example.rs", "{first}");
    assert!(first["userinfo"].get("jmbg").is_none(), "{first}");

    // The code again: refused, and the token issued from it stops working.
    // (A code is base64url: nothing in it is percent-encoded.)
    let code = callback
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let (status, body) = post_form(
        &server,
        "/oidc/token",
        &[],
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", BASIC_REDIRECT),
            ("client_id", &basic_id),
            ("client_secret", &secret),
            ("code_verifier", "x".repeat(43).as_str()),
        ],
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    let access = first["access_token"].as_str().unwrap();
    let userinfo = http_with(
        &server.addr,
        "GET",
        "/oidc/userinfo",
        &[("Authorization", &format!("Bearer {access}"))],
        b"",
    )
    .unwrap();
    assert_eq!(userinfo.status, 401, "a reused code revokes its tokens");

    // A citizen not logged in yet: the portal's login comes first, the phone names the service
    // that asks, and the login leads back to the service (consent remembered).
    let url = start(
        "basic",
        &basic_id,
        &secret,
        BASIC_REDIRECT,
        "openid profile",
        state,
    );
    let mut anonymous = Browser::new(&server);
    let page = anonymous.get(&path_of(&server, &url));
    let html = String::from_utf8_lossy(&page.body).to_string();
    assert!(
        html.contains("Пореска управа") && html.contains("href=\"/login\""),
        "{html}"
    );
    let (next, phone) = support::log_in_seen(&mut anonymous, "petar@example.rs", &home);
    assert!(
        phone.contains("Пореска управа"),
        "the phone names the service: {phone}"
    );
    assert!(next.starts_with("/oidc/authorize?"), "{next}");
    let back = anonymous.get(&next);
    let callback = back
        .header("location")
        .unwrap_or_else(|| panic!("{next}: {}", String::from_utf8_lossy(&back.body)))
        .to_owned();
    assert!(
        callback.starts_with(&format!("{BASIC_REDIRECT}?code=")),
        "{callback}"
    );
    relying_party(&python, &["finish", state, &callback]);

    // Refresh tokens rotate; the rotated one used again revokes the whole grant.
    let refresh = |token: &str| {
        post_form(
            &server,
            "/oidc/token",
            &[],
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", token),
                ("client_id", &basic_id),
                ("client_secret", &secret),
            ],
        )
    };
    let first_refresh = first["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    // (Issued from the reused code above: revoked with it.)
    let (status, body) = refresh(&first_refresh);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );

    // The consent is remembered: the next login with the service answers at once, with the
    // same pairwise `sub`.
    let url = start(
        "basic",
        &basic_id,
        &secret,
        BASIC_REDIRECT,
        "openid profile",
        state,
    );
    let answered = browser.get(&path_of(&server, &url));
    let callback = answered.header("location").unwrap().to_owned();
    assert!(
        callback.starts_with(&format!("{BASIC_REDIRECT}?code=")),
        "{callback}"
    );
    let second = relying_party(&python, &["finish", state, &callback]);
    assert_eq!(second["sub"], first["sub"]);
    // Without offline_access asked this time, no refresh token.
    assert!(second["refresh_token"].is_null(), "{second}");

    // A login with offline_access, its refresh token rotated once, then replayed.
    let url = start(
        "basic",
        &basic_id,
        &secret,
        BASIC_REDIRECT,
        "openid profile email offline_access",
        state,
    );
    let callback = browser
        .get(&path_of(&server, &url))
        .header("location")
        .unwrap()
        .to_owned();
    let third = relying_party(&python, &["finish", state, &callback]);
    let old_refresh = third["refresh_token"].as_str().unwrap().to_owned();
    let (status, rotated) = refresh(&old_refresh);
    assert_eq!(status, 200, "{rotated}");
    let new_refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(new_refresh, old_refresh);
    let new_access = rotated["access_token"].as_str().unwrap().to_owned();
    let introspect = |token: &str| {
        post_form(
            &server,
            "/oidc/introspect",
            &[],
            &[
                ("token", token),
                ("client_id", &basic_id),
                ("client_secret", &secret),
            ],
        )
        .1
    };
    let active = introspect(&new_access);
    assert_eq!(active["active"], true, "{active}");
    assert_eq!(active["sub"], first["sub"], "{active}");
    assert_eq!(active["acr"], "http://eidas.europa.eu/LoA/high", "{active}");
    let (status, body) = refresh(&old_refresh);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    let (status, body) = refresh(&new_refresh);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "the family is revoked: {body}"
    );
    assert_eq!(introspect(&new_access)["active"], false);

    // RFC 7009: the client revokes a token; it is inactive at once.
    let second_access = second["access_token"].as_str().unwrap();
    assert_eq!(introspect(second_access)["active"], true);
    let (status, _) = post_form(
        &server,
        "/oidc/revoke",
        &[],
        &[
            ("token", second_access),
            ("client_id", &basic_id),
            ("client_secret", &secret),
        ],
    );
    assert_eq!(status, 200);
    assert_eq!(introspect(second_access)["active"], false);

    // fapi2: PAR, PKCE, private_key_jwt and DPoP; the script also checks that userinfo
    // refuses the bound token as a bearer token, a proof for another URL, and a replayed proof.
    let fapi_state = d.join("fapi.json");
    let fapi_state = fapi_state.to_str().unwrap();
    let url = start(
        "fapi2",
        &fapi_id,
        keys.to_str().unwrap(),
        FAPI_REDIRECT,
        "openid profile",
        fapi_state,
    );
    assert!(
        url.contains("request_uri=") && !url.contains("code_challenge"),
        "{url}"
    );
    let callback = allow(&mut browser, &server, &url, "Банка Интеса");
    let bank = relying_party(&python, &["finish", fapi_state, &callback]);
    assert_eq!(bank["token_type"], "DPoP");
    assert_eq!(bank["userinfo"]["family_name"], "Петровић", "{bank}");
    // Pairwise: the bank and the tax office cannot join their records by `sub`.
    assert_ne!(bank["sub"], first["sub"]);

    // The signing key rolls over: the new key is published at once (here signing at once, no
    // overlap), the old one stays published while its tokens live; the next ID token is
    // signed by the new key, and the client library validates it against the JWKS.
    let kid_of = |jwt: &str| -> String {
        use base64::Engine as _;
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().unwrap())
            .unwrap();
        serde_json::from_slice::<Value>(&header).unwrap()["kid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let old_kid = kid_of(bank["id_token"].as_str().unwrap());
    let rotated = server.cli_ok(&["oidc", "keys", "rotate", "--overlap", "0"]);
    assert!(rotated.contains("signing key 1 published"), "{rotated}");
    // (The server learns of another process's rotation within a second: SQLite has no NOTIFY.)
    let jwks = wait_for("the new key in the JWKS", || {
        let jwks: Value = serde_json::from_slice(&server.get("/oidc/jwks")).unwrap();
        (jwks["keys"].as_array().map(Vec::len) == Some(2)).then_some(jwks)
    });
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "{jwks}");
    assert!(kids.contains(&old_kid.as_str()), "{jwks}");
    let url = start(
        "basic",
        &basic_id,
        &secret,
        BASIC_REDIRECT,
        "openid profile",
        state,
    );
    let callback = browser
        .get(&path_of(&server, &url))
        .header("location")
        .unwrap()
        .to_owned();
    let after = relying_party(&python, &["finish", state, &callback]);
    let new_kid = kid_of(after["id_token"].as_str().unwrap());
    assert_ne!(new_kid, old_kid);
    assert!(kids.contains(&new_kid.as_str()), "{jwks}");

    // The account page lists both services; **Повуци сагласност** withdraws the bank's
    // consent and revokes its token, and its next login asks again.
    let account = browser.get("/account");
    let html = String::from_utf8_lossy(&account.body).to_string();
    assert!(
        html.contains("Пореска управа")
            && html.contains("Банка Интеса")
            && html.contains("Повуци сагласност"),
        "{html}"
    );
    let csrf = Browser::csrf(&account);
    let withdrawn = browser.post(
        "/account/consents/withdraw",
        &[("csrf", &csrf), ("client_id", &fapi_id)],
    );
    assert_eq!(withdrawn.header("location"), Some("/account"));
    let html = String::from_utf8_lossy(&browser.get("/account").body).to_string();
    assert!(!html.contains("Банка Интеса"), "{html}");
    let bank_access = bank["access_token"].as_str().unwrap();
    let (_, body) = post_form(
        &server,
        "/oidc/introspect",
        &[],
        &[
            ("token", bank_access),
            ("client_id", &basic_id),
            ("client_secret", &secret),
        ],
    );
    assert_eq!(
        body["active"], false,
        "withdrawn consent revokes the tokens: {body}"
    );
    let url = start(
        "fapi2",
        &fapi_id,
        keys.to_str().unwrap(),
        FAPI_REDIRECT,
        "openid profile",
        fapi_state,
    );
    allow(&mut browser, &server, &url, "Банка Интеса");

    // Refusals at the authorization endpoint.
    let authorize = |client: &str, redirect: &str, extra: &str| {
        format!(
            "/oidc/authorize?response_type=code&client_id={client}&redirect_uri={}&scope=openid&code_challenge={}&code_challenge_method=S256&state=s{extra}",
            support::url_encode(redirect),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        )
    };
    // A redirect URI not registered, or only a prefix of one: a page of ours, never a redirect.
    for redirect in [
        "https://evil.example/cb",
        "http://127.0.0.1:9/tax/callback/../x",
        "http://127.0.0.1:9/tax",
    ] {
        let page = browser.get(&authorize(&basic_id, redirect, ""));
        assert_eq!(page.status, 400, "{redirect}");
        assert!(page.header("location").is_none(), "{redirect}");
    }
    // A fapi2 client must push its request first.
    let skipped = browser.get(&authorize(&fapi_id, FAPI_REDIRECT, ""));
    let location = skipped.header("location").unwrap();
    assert!(
        location.starts_with(&format!("{FAPI_REDIRECT}?error=invalid_request")),
        "{location}"
    );
    // The jmbg scope for a client that is not allowed it.
    let jmbg = browser.get(
        &authorize(&basic_id, BASIC_REDIRECT, "").replace("scope=openid", "scope=openid%20jmbg"),
    );
    assert!(jmbg
        .header("location")
        .unwrap()
        .contains("error=invalid_scope"));

    // The token endpoint: a wrong secret, a public client's missing verifier.
    let (status, body) = post_form(
        &server,
        "/oidc/token",
        &[],
        &[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("client_id", &basic_id),
            ("client_secret", "wrong"),
        ],
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );

    // /metrics counts the provider's answers.
    let metrics = String::from_utf8(server.get("/metrics")).unwrap();
    for line in [
        "eidportal_oidc_requests_total{endpoint=\"token\",outcome=\"ok\"}",
        "eidportal_oidc_requests_total{endpoint=\"token\",outcome=\"invalid_grant\"}",
        "eidportal_oidc_requests_total{endpoint=\"par\",outcome=\"ok\"}",
        "eidportal_oidc_requests_total{endpoint=\"authorize\",outcome=\"invalid_scope\"}",
    ] {
        assert!(metrics.contains(line), "{line} missing: {metrics}");
    }

    // Every step is in the audit log, and it verifies.
    let verified = server.cli_ok(&["audit", "verify"]);
    assert!(verified.contains("intact"), "{verified}");
}

#[test]
fn a_counter_logs_a_citizen_in_from_its_own_server_with_ciba() {
    let Some(python) = support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(&d.join("data"), &Setup::embedded(), None);
    let issuer = server.url.clone();
    let counter: Value = serde_json::from_str(
        server
            .cli_ok(&[
                "oidc",
                "client",
                "add",
                "--name",
                "Општина Врачар",
                "--profile",
                "basic",
                "--redirect-uri",
                BASIC_REDIRECT,
                "--scope",
                "profile",
                "--ciba",
                "--json",
            ])
            .trim(),
    )
    .unwrap();
    assert_eq!(counter["ciba"], true);
    let id = counter["client_id"].as_str().unwrap().to_owned();
    let secret = counter["client_secret"].as_str().unwrap().to_owned();
    let home = d.join("phone");
    support::logged_in(&server, "petar@example.rs", &home);
    let state = d.join("ciba.json");
    let state = state.to_str().unwrap();
    let start = |hint: &str, message: &str| {
        relying_party(
            &python,
            &["ciba-start", state, &issuer, &id, &secret, hint, message],
        )
    };
    let poll = || relying_party(&python, &["ciba-poll", state]);

    // The counter asks; the citizen has not answered yet.
    let started = start("petar@example.rs", "Шалтер 3, код 7241");
    assert_eq!(started["status"], 200, "{started}");
    assert_eq!(started["body"]["interval"], 5, "{started}");
    let pending = poll();
    assert_eq!(
        pending["body"]["error"], "authorization_pending",
        "{pending}"
    );

    // The phone shows the service's registered name and the binding message; PIN, approve.
    let (status, out, err) = support::consentid(
        &home,
        &["approve", "--next", "--wait", "10", "--pin-stdin"],
        &format!("{}\n", support::PIN),
    );
    assert_eq!(status, 0, "{out}{err}");
    assert!(
        out.contains("Општина Врачар") && out.contains("Шалтер 3, код 7241"),
        "{out}"
    );
    // The next poll after the interval gets the tokens; the ID token is validated by authlib.
    std::thread::sleep(std::time::Duration::from_millis(5200));
    let done = poll();
    assert_eq!(done["status"], 200, "{done}");
    assert_eq!(done["userinfo"]["given_name"], "Петар", "{done}");
    let again = poll();
    assert_eq!(
        again["body"]["error"], "invalid_grant",
        "tokens once: {again}"
    );

    // A refused request: access_denied, once; the counter may ask again at once.
    start("petar@example.rs", "Шалтер 3, код 9918");
    let (_, pending, _) = support::consentid(&home, &["pending"], "");
    let txn = pending
        .lines()
        .find(|line| line.contains("Општина Врачар"))
        .and_then(|line| line.split_whitespace().next())
        .unwrap_or_else(|| panic!("{pending}"))
        .to_owned();
    let (status, out, err) = support::consentid(&home, &["deny", &txn], "");
    assert_eq!(status, 0, "{out}{err}");
    let denied = poll();
    assert_eq!(denied["body"]["error"], "access_denied", "{denied}");
    assert_eq!(poll()["body"]["error"], "invalid_grant");

    // An address no account has: the same answers as for a citizen who does not answer, one
    // open request at a time; polling again at once is too fast.
    let unknown = start("nobody@example.rs", "Шалтер 3, код 1111");
    assert_eq!(unknown["status"], 200, "{unknown}");
    assert_eq!(poll()["body"]["error"], "authorization_pending");
    assert_eq!(poll()["body"]["error"], "slow_down");
    let twice = start("nobody@example.rs", "Шалтер 3, код 1112");
    assert_eq!(twice["body"]["error"], "invalid_request", "{twice}");

    // A binding message the phone cannot show: control and bidi characters, or too long.
    for message in ["Шалтер\u{7}3", "Шалтер \u{202E}3", &"д".repeat(41)] {
        let refused = start("petar@example.rs", message);
        assert_eq!(
            (
                refused["status"].as_u64(),
                refused["body"]["error"].as_str()
            ),
            (Some(400), Some("invalid_binding_message")),
            "{refused}"
        );
    }

    let verified = server.cli_ok(&["audit", "verify"]);
    assert!(verified.contains("intact"), "{verified}");
}

#[test]
fn a_counter_in_ciba_ping_mode_is_told_when_the_citizen_approves_and_then_fetches_the_tokens() {
    let Some(python) = support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(&d.join("data"), &Setup::embedded(), None);
    let issuer = server.url.clone();
    // The counter's notification endpoint (CIBA Core §10.2), on its own server.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/e2e/oidc_client.py");
    let (port_file, out_file) = (d.join("port"), d.join("pings.jsonl"));
    let _receiver = KillOnDrop(
        Command::new(&python)
            .arg(&script)
            .args([
                "ping-receiver",
                port_file.to_str().unwrap(),
                out_file.to_str().unwrap(),
            ])
            .spawn()
            .unwrap(),
    );
    let port = wait_for("the receiver to start", || {
        std::fs::read_to_string(&port_file)
            .ok()
            .filter(|port| !port.is_empty())
    });
    let endpoint = format!("http://127.0.0.1:{port}/ciba-ping");
    let counter: Value = serde_json::from_str(
        server
            .cli_ok(&[
                "oidc",
                "client",
                "add",
                "--name",
                "Општина Врачар",
                "--profile",
                "basic",
                "--redirect-uri",
                BASIC_REDIRECT,
                "--scope",
                "profile",
                "--ciba",
                "--ciba-notification-endpoint",
                &endpoint,
                "--json",
            ])
            .trim(),
    )
    .unwrap();
    let id = counter["client_id"].as_str().unwrap().to_owned();
    let secret = counter["client_secret"].as_str().unwrap().to_owned();
    let shown: Value = serde_json::from_str(
        server
            .cli_ok(&["oidc", "client", "show", &id, "--json"])
            .trim(),
    )
    .unwrap();
    assert_eq!(shown["backchannel_token_delivery_mode"], "ping", "{shown}");
    assert_eq!(
        shown["backchannel_client_notification_endpoint"], endpoint,
        "{shown}"
    );
    let home = d.join("phone");
    support::logged_in(&server, "petar@example.rs", &home);
    let state = d.join("ciba.json");
    let state = state.to_str().unwrap();

    // A ping-mode request without its notification token is refused.
    let refused = relying_party(
        &python,
        &[
            "ciba-start",
            state,
            &issuer,
            &id,
            &secret,
            "petar@example.rs",
            "Шалтер 2",
        ],
    );
    assert_eq!(refused["body"]["error"], "invalid_request", "{refused}");
    let token = "counter-2.ping~7241";
    let started = relying_party(
        &python,
        &[
            "ciba-start",
            state,
            &issuer,
            &id,
            &secret,
            "petar@example.rs",
            "Шалтер 2, код 7241",
            token,
        ],
    );
    assert_eq!(started["status"], 200, "{started}");
    let auth_req_id = started["body"]["auth_req_id"].as_str().unwrap().to_owned();

    // The phone shows the service and the message; PIN, approve.
    let (status, out, err) = support::consentid(
        &home,
        &["approve", "--next", "--wait", "10", "--pin-stdin"],
        &format!("{}\n", support::PIN),
    );
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.contains("Шалтер 2, код 7241"), "{out}");

    // The counter is told, with its own token and the request's id, once.
    let ping = wait_for("the counter's notification", || {
        let text = std::fs::read_to_string(&out_file).ok()?;
        let line = text.lines().next()?;
        Some(serde_json::from_str::<Value>(line).unwrap())
    });
    assert_eq!(ping["path"], "/ciba-ping", "{ping}");
    assert_eq!(ping["token"], token, "{ping}");
    assert_eq!(ping["body"]["auth_req_id"], auth_req_id, "{ping}");

    // Told, it fetches the tokens once, without polling before; authlib validates the ID
    // token against the JWKS.
    let done = relying_party(&python, &["ciba-poll", state]);
    assert_eq!(done["status"], 200, "{done}");
    assert_eq!(done["userinfo"]["given_name"], "Петар", "{done}");
    let again = relying_party(&python, &["ciba-poll", state]);
    assert_eq!(again["body"]["error"], "invalid_grant", "{again}");
    let pings = std::fs::read_to_string(&out_file).unwrap();
    assert_eq!(pings.lines().count(), 1, "told once: {pings}");

    let audit = server.cli_ok(&["audit", "verify"]);
    assert!(audit.contains("intact"), "{audit}");
}

#[test]
fn a_service_hears_of_the_citizens_logout_on_its_back_channel() {
    let Some(python) = support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(&d.join("data"), &Setup::embedded(), None);
    let issuer = server.url.clone();
    // The service's back-channel logout endpoint (authlib validates each logout_token).
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/e2e/oidc_client.py");
    let (port_file, out_file) = (d.join("port"), d.join("logouts.jsonl"));
    let _receiver = KillOnDrop(
        Command::new(&python)
            .arg(&script)
            .args([
                "logout-receiver",
                port_file.to_str().unwrap(),
                out_file.to_str().unwrap(),
                &issuer,
            ])
            .spawn()
            .unwrap(),
    );
    let port = wait_for("the receiver to start", || {
        std::fs::read_to_string(&port_file)
            .ok()
            .filter(|port| !port.is_empty())
    });
    let client: Value = serde_json::from_str(
        server
            .cli_ok(&[
                "oidc",
                "client",
                "add",
                "--name",
                "Дом здравља",
                "--profile",
                "basic",
                "--redirect-uri",
                BASIC_REDIRECT,
                "--backchannel-logout-uri",
                &format!("http://127.0.0.1:{port}/backchannel-logout"),
                "--post-logout-redirect-uri",
                "https://dz.example/logged-out",
                "--json",
            ])
            .trim(),
    )
    .unwrap();
    let id = client["client_id"].as_str().unwrap().to_owned();
    let secret = client["client_secret"].as_str().unwrap().to_owned();
    let home = d.join("phone");
    let mut browser = support::logged_in(&server, "petar@example.rs", &home);
    let state = d.join("rp.json");
    let state = state.to_str().unwrap();
    let url = relying_party(
        &python,
        &[
            "start",
            state,
            "basic",
            &issuer,
            &id,
            &secret,
            BASIC_REDIRECT,
            "openid",
        ],
    )["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let callback = allow(&mut browser, &server, &url, "Дом здравља");
    let login = relying_party(&python, &["finish", state, &callback]);

    // **Одјава**: the service is told, with the session's `sid` and the citizen's `sub`.
    let csrf = Browser::csrf(&browser.get("/account"));
    let out = browser.post("/logout", &[("csrf", &csrf)]);
    assert_eq!(out.header("location"), Some("/"));
    let told = wait_for("a logout_token at the service", || {
        let text = std::fs::read_to_string(&out_file).ok()?;
        let line = text.lines().next()?;
        Some(serde_json::from_str::<Value>(line).unwrap())
    });
    assert_eq!(told["aud"], id, "{told}");
    assert_eq!(told["sid"], login["sid"], "{told}");
    assert_eq!(told["sub"], login["sub"], "{told}");

    // RP-initiated logout: the service sends the browser with its ID token; the citizen
    // confirms **Одјава**, the service hears of it on its back channel too, and the browser
    // goes to the service's registered URI with its state.
    let mut browser = Browser::new(&server);
    support::log_in(&mut browser, "petar@example.rs", &home);
    let url = relying_party(
        &python,
        &[
            "start",
            state,
            "basic",
            &issuer,
            &id,
            &secret,
            BASIC_REDIRECT,
            "openid",
        ],
    )["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let callback = browser
        .get(&path_of(&server, &url))
        .header("location")
        .unwrap()
        .to_owned();
    let second = relying_party(&python, &["finish", state, &callback]);
    assert_ne!(second["sid"], login["sid"], "a new session");
    let logout = |redirect: &str| {
        format!(
            "/oidc/logout?id_token_hint={}&post_logout_redirect_uri={}&state=bye",
            second["id_token"].as_str().unwrap(),
            support::url_encode(redirect)
        )
    };
    let wrong = browser.get(&logout("https://evil.example/"));
    assert_eq!(wrong.status, 400);
    assert!(wrong.header("location").is_none());
    let page = browser.get(&logout("https://dz.example/logged-out"));
    let html = String::from_utf8_lossy(&page.body).to_string();
    assert!(html.contains("Дом здравља"), "{html}");
    let csrf = Browser::csrf(&page);
    let query = logout("https://dz.example/logged-out");
    let query = query.split_once('?').unwrap().1;
    let done = browser.post("/oidc/logout", &[("csrf", &csrf), ("query", query)]);
    assert_eq!(
        done.header("location"),
        Some("https://dz.example/logged-out?state=bye")
    );
    assert_eq!(browser.get("/account").status, 401, "logged out");
    let second_sid = second["sid"].as_str().unwrap();
    wait_for("a second logout_token at the service", || {
        let text = std::fs::read_to_string(&out_file).ok()?;
        text.lines()
            .any(|line| line.contains(second_sid))
            .then_some(())
    });
    let audit = server.cli_ok(&["audit", "verify"]);
    assert!(audit.contains("intact"), "{audit}");
}

#[test]
fn a_citizen_approves_a_services_transaction_text_on_the_phone() {
    let Some(python) = support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(&d.join("data"), &Setup::embedded(), None);
    let issuer = server.url.clone();
    let meta: Value =
        serde_json::from_slice(&server.get("/.well-known/openid-configuration")).unwrap();
    assert_eq!(
        meta["authorization_details_types_supported"],
        serde_json::json!(["eidportal_transaction"]),
        "{meta}"
    );
    let client: Value = serde_json::from_str(
        server
            .cli_ok(&[
                "oidc",
                "client",
                "add",
                "--name",
                "Републички фонд",
                "--profile",
                "basic",
                "--redirect-uri",
                BASIC_REDIRECT,
                "--scope",
                "profile",
                "--json",
            ])
            .trim(),
    )
    .unwrap();
    let id = client["client_id"].as_str().unwrap().to_owned();
    let secret = client["client_secret"].as_str().unwrap().to_owned();
    let home = d.join("phone");
    // The citizen is logged in to the portal already.
    let mut browser = support::logged_in(&server, "petar@example.rs", &home);
    let state = d.join("rp.json");
    let state = state.to_str().unwrap();
    let payment = "Плаћање 1.200,00 RSD Републичком фонду";
    let details = serde_json::json!([{ "type": "eidportal_transaction", "text": payment }]);
    let start = |details: &str| {
        relying_party(
            &python,
            &[
                "start",
                state,
                "basic",
                &issuer,
                &id,
                &secret,
                BASIC_REDIRECT,
                "openid profile",
                details,
            ],
        )["url"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let url = start(&details.to_string());

    // Her portal session is not enough: the transaction is approved by a login of its own.
    let page = browser.get(&path_of(&server, &url));
    let html = String::from_utf8_lossy(&page.body).to_string();
    assert_eq!(page.status, 200, "{html}");
    assert!(
        html.contains(payment) && html.contains("/login/mobile"),
        "{html}"
    );

    // The login by username: the phone names the service and shows the text; PIN, approve.
    let csrf = Browser::csrf(&browser.get("/login/mobile"));
    let started = browser.post(
        "/login/mobile",
        &[("csrf", &csrf), ("username", "petar@example.rs")],
    );
    let location = started.header("location").unwrap().to_owned();
    let html = String::from_utf8_lossy(&browser.get(&location).body).to_string();
    let vc = support::extract(&html, "data-testid=\"verification-code\">", "<").unwrap();
    let (status, out, err) = support::consentid(&home, &["pending", "--wait", "10", "--json"], "");
    assert_eq!(status, 0, "{out}{err}");
    let pending: Value = serde_json::from_str(out.trim()).unwrap();
    let shown = pending
        .as_array()
        .unwrap()
        .iter()
        .find(|request| request["message"] == payment)
        .unwrap_or_else(|| panic!("the phone shows the text: {pending}"));
    assert_eq!(shown["rp"]["name"], "Републички фонд", "{shown}");
    let (status, out, err) = support::consentid(
        &home,
        &[
            "approve",
            "--next",
            "--wait",
            "10",
            "--code",
            &vc,
            "--pin-stdin",
        ],
        &format!("{}\n", support::PIN),
    );
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.contains(payment), "{out}");
    wait_for("the approval in the browser", || {
        String::from_utf8_lossy(&browser.get(&format!("{location}/status")).body)
            .contains("approved")
            .then_some(())
    });
    let csrf = Browser::csrf(&browser.get(&location));
    let next = support::onward(&browser.post(&format!("{location}/complete"), &[("csrf", &csrf)]));
    assert!(next.starts_with("/oidc/authorize?"), "{next}");

    // Consent, the code, and the approved details in the ID token (validated by authlib)
    // and in the introspection answer.
    let callback = allow(
        &mut browser,
        &server,
        &format!("{}{next}", server.url),
        "Републички фонд",
    );
    assert!(
        callback.starts_with(&format!("{BASIC_REDIRECT}?code=")),
        "{callback}"
    );
    let done = relying_party(&python, &["finish", state, &callback]);
    assert_eq!(done["authorization_details"], details, "{done}");
    assert_eq!(
        done["introspection"]["authorization_details"], details,
        "{done}"
    );

    // A text the phone cannot show exactly: refused at the redirect URI (RFC 9396 §5).
    let url = start(
        &serde_json::json!([{ "type": "eidportal_transaction", "text": "Плаћање \u{202E}DSR" }])
            .to_string(),
    );
    let refused = browser.get(&path_of(&server, &url));
    let location = refused.header("location").unwrap_or_default().to_owned();
    assert!(
        location.starts_with(BASIC_REDIRECT)
            && location.contains("error=invalid_authorization_details"),
        "{location}"
    );
    let audit = server.cli_ok(&["audit", "verify"]);
    assert!(audit.contains("intact"), "{audit}");
}

/// The FAPI 2.0 flow as a bank runs it: node's openid-client 6 pushes the request (PAR, PKCE
/// S256, `private_key_jwt`, DPoP with the server's nonce), headless Chromium carries the citizen
/// through the portal's login and the consent page with the `consentid` app approving, and the
/// library exchanges the code, validates the ID token against the JWKS and calls userinfo with
/// a DPoP proof (scripts/e2e/oidc_fapi.py, scripts/e2e/openid-client/rp.mjs). Then the citizen
/// logs out and in again through the bank: the remembered consent leads straight on.
#[test]
fn a_bank_logs_a_citizen_in_at_fapi2_with_openid_client_through_chromium() {
    let (Some(python), Some(node)) = (support::python(), support::node()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(&d.join("data"), &Setup::embedded(), None);
    let home = d.join("phone");
    support::enrolled(&server, "petar@example.rs", &home);
    std::fs::write(d.join("pin"), format!("{}\n", support::PIN)).unwrap();

    let rp = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/e2e/openid-client/rp.mjs");
    let keys = d.join("bank-keys");
    std::fs::create_dir_all(&keys).unwrap();
    let keygen = Command::new(&node)
        .arg(&rp)
        .arg("keygen")
        .arg(&keys)
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{keygen:?}");
    // The bank's callback: a free loopback port that the browser script listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let registered: Value = serde_json::from_str(
        server
            .cli_ok(&[
                "oidc",
                "client",
                "add",
                "--name",
                "Банка Интеса",
                "--redirect-uri",
                &redirect,
                "--jwks",
                keys.join("jwks.json").to_str().unwrap(),
                "--scope",
                "profile",
                "--scope",
                "email",
                "--json",
            ])
            .trim(),
    )
    .unwrap();
    assert_eq!(registered["profile"], "fapi2");
    let client_id = registered["client_id"].as_str().unwrap();

    let screenshots = d.join("screenshots");
    let output = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/e2e/oidc_fapi.py"))
        .args(["--url", &server.url, "--email", "petar@example.rs"])
        .arg("--consentid")
        .arg(support::consentid_binary())
        .arg("--consentid-home")
        .arg(&home)
        .arg("--pin-file")
        .arg(d.join("pin"))
        .arg("--screenshots")
        .arg(&screenshots)
        .arg("--node")
        .arg(&node)
        .arg("--rp-dir")
        .arg(&keys)
        .args(["--client-id", client_id, "--redirect", &redirect])
        .args(["--service", "Банка Интеса"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && text.contains("PASS"),
        "the browser test failed:\n{text}"
    );
    let result: Value = serde_json::from_str(
        text.lines()
            .find_map(|line| line.strip_prefix("RESULT "))
            .expect("the RP's result"),
    )
    .unwrap();
    // What openid-client validated, as the bank receives it.
    let claims = &result["claims"];
    assert_eq!(claims["iss"], server.url, "{result}");
    assert_eq!(claims["aud"], client_id, "{result}");
    assert_eq!(claims["acr"], "http://eidas.europa.eu/LoA/high", "{result}");
    assert!(
        claims["sid"].is_string() && claims["auth_time"].is_number(),
        "{result}"
    );
    assert_eq!(
        result["token_type"]
            .as_str()
            .map(str::to_lowercase)
            .as_deref(),
        Some("dpop")
    );
    let userinfo = &result["userinfo"];
    assert_eq!(userinfo["sub"], claims["sub"], "{result}");
    assert_eq!(
        (
            &userinfo["given_name"],
            &userinfo["family_name"],
            &userinfo["email"]
        ),
        (
            &Value::from("Петар"),
            &Value::from("Петровић"),
            &Value::from("petar@example.rs")
        ),
        "{result}"
    );
    assert!(userinfo.get("jmbg").is_none(), "{result}");
    // Pairwise by default: not the account's id, not the e-mail.
    let sub = claims["sub"].as_str().unwrap();
    assert!(!sub.contains("petar") && sub.len() >= 20, "{sub}");
    // Logged out and back through the bank: no consent page, the same `sub`.
    let again: Value = serde_json::from_str(
        text.lines()
            .find_map(|line| line.strip_prefix("RESULT-AGAIN "))
            .expect("the second login's result"),
    )
    .unwrap();
    assert_eq!(again["claims"]["sub"], claims["sub"], "{again}");
    assert_ne!(
        again["claims"]["sid"], claims["sid"],
        "a new portal session"
    );
}

/// What `probe` finds, asked every 50 ms for up to 20 s (a failure names `what`).
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "waited in vain for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A child process stopped when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
