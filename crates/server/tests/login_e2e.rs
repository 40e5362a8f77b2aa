//! The seed's steps 2-7 end to end: the real server, the real `consentid` binary as the phone,
//! a real headless Chromium driven by the visible Serbian words (scripts/e2e/login.py), and the
//! refusals a user would notice, each through the binaries.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::{consentid, der_to_pem, extract, run, Browser, Server, Setup};

const PIN: &str = "246810";
const JMBG: &str = "0101990710008";

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Enrols a person and activates ConsentID for them in `home`; returns the device certificate serial.
fn enrol_and_activate(server: &Server, email: &str, home: &Path) -> String {
    let out = server.cli_ok(&[
        "user",
        "add",
        "--email",
        email,
        "--given-name",
        "Петар",
        "--surname",
        "Петровић",
        "--jmbg",
        JMBG,
        "--json",
    ]);
    let value: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let code = value["activation_code"].as_str().unwrap().to_owned();
    let (status, stdout, stderr) = consentid(
        home,
        &[
            "activate",
            "--server",
            &server.url,
            "--code",
            &code,
            "--pin-stdin",
            "--json",
        ],
        &format!("{PIN}\n"),
    );
    assert_eq!(status, 0, "consentid activate: {stdout}{stderr}");
    // Activating again with the same code is refused.
    let (status, _, stderr) = consentid(
        &home.with_extension("again"),
        &[
            "activate",
            "--server",
            &server.url,
            "--code",
            &code,
            "--pin-stdin",
        ],
        &format!("{PIN}\n"),
    );
    assert_ne!(status, 0, "an activation code worked twice: {stderr}");
    let (_, stdout, _) = consentid(home, &["status", "--json"], "");
    let state: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(state["state"], "active", "{stdout}");
    state["certificate_serial"].as_str().unwrap().to_owned()
}

/// Starts a login in a browser without JavaScript; returns the transaction path and the code shown.
fn start_login(browser: &mut Browser, email: &str) -> (String, String) {
    let form = browser.get("/login/mobile");
    let csrf = Browser::csrf(&form);
    let started = browser.post("/login/mobile", &[("csrf", &csrf), ("username", email)]);
    assert_eq!(
        started.status,
        303,
        "{}",
        String::from_utf8_lossy(&started.body)
    );
    let location = started.header("location").unwrap().to_owned();
    let page = browser.get(&location);
    let html = String::from_utf8_lossy(&page.body).to_string();
    let code = extract(&html, "data-testid=\"verification-code\">", "<")
        .expect("the verification code on the page");
    (location, code)
}

fn wait_status(browser: &mut Browser, location: &str, wanted: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = browser.get(&format!("{location}/status"));
        let state: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        if state["status"] == wanted || Instant::now() > deadline {
            return state;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_logs_in_through_the_seed_steps_with_consentid_approving() {
    let Some(python) = support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &Setup::embedded(), None);
    let home = dir.path().join("phone");
    let serial = enrol_and_activate(&server, "petar@example.rs", &home);
    std::fs::write(dir.path().join("pin"), format!("{PIN}\n")).unwrap();
    let screenshots = repository().join("docs/screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let output = std::process::Command::new(&python)
        .arg(repository().join("scripts/e2e/login.py"))
        .args(["--url", &server.url, "--email", "petar@example.rs"])
        .arg("--consentid")
        .arg(support::consentid_binary())
        .arg("--consentid-home")
        .arg(&home)
        .arg("--pin-file")
        .arg(dir.path().join("pin"))
        .arg("--screenshots")
        .arg(&screenshots)
        .args(["--expect-name", "Петар Петровић"])
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

    // The device certificate verifies to the root and OCSP says good.
    let d = dir.path();
    std::fs::write(
        d.join("device.pem"),
        server.cli_ok(&["cert", "pem", &serial]),
    )
    .unwrap();
    let root = der_to_pem(d, &server.get("/pki/root.crt"), "root", "x509");
    let ca = der_to_pem(d, &server.get("/pki/consentid-ca.crt"), "consentid", "x509");
    let (ok, text) = run(
        "openssl",
        &[
            "verify",
            "-CAfile",
            root.to_str().unwrap(),
            "-untrusted",
            ca.to_str().unwrap(),
            "device.pem",
        ],
        d,
    );
    assert!(ok, "{text}");
    let url = format!("{}/ocsp", server.url);
    let (ok, text) = run(
        "openssl",
        &[
            "ocsp",
            "-issuer",
            ca.to_str().unwrap(),
            "-cert",
            "device.pem",
            "-url",
            &url,
            "-CAfile",
            root.to_str().unwrap(),
        ],
        d,
    );
    assert!(ok && text.contains("device.pem: good"), "{text}");
    let listed = server.cli_ok(&["cert", "list", "--email", "petar@example.rs", "--json"]);
    assert!(listed.contains("\"kind\":\"device\""), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_refuses_wrong_codes_locks_after_five_wrong_pins_and_dies_when_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &Setup::embedded(), None);
    let home = dir.path().join("phone");
    let serial = enrol_and_activate(&server, "ana@example.rs", &home);

    // A happy login first, in a browser without JavaScript.
    let mut browser = Browser::new(&server);
    let (location, code) = start_login(&mut browser, "ana@example.rs");
    let (status, out, err) = consentid(
        &home,
        &[
            "approve",
            "--next",
            "--wait",
            "10",
            "--code",
            &code,
            "--pin-stdin",
        ],
        &format!("{PIN}\n"),
    );
    assert_eq!(status, 0, "{out}{err}");
    assert_eq!(
        wait_status(&mut browser, &location, "approved")["status"],
        "approved"
    );
    let page = browser.get(&location);
    let csrf = Browser::csrf(&page);
    let done = browser.post(&format!("{location}/complete"), &[("csrf", &csrf)]);
    assert_eq!(done.header("location"), Some("/account"));
    let account = String::from_utf8_lossy(&browser.get("/account").body).to_string();
    assert!(
        account.contains("Петар Петровић")
            && account.contains("ana@example.rs")
            && account.contains("услуге"),
        "{account}"
    );

    // A wrong verification code: the app denies, the browser says why.
    let mut browser = Browser::new(&server);
    let (location, code) = start_login(&mut browser, "ana@example.rs");
    let wrong = format!("{:04}", (code.parse::<u32>().unwrap() + 1) % 10_000);
    let (status, out, err) = consentid(
        &home,
        &[
            "approve",
            "--next",
            "--wait",
            "10",
            "--code",
            &wrong,
            "--pin-stdin",
        ],
        &format!("{PIN}\n"),
    );
    assert_eq!(status, 5, "{out}{err}");
    let state = wait_status(&mut browser, &location, "failed");
    assert_eq!(
        (state["status"].as_str(), state["hint"].as_str()),
        (Some("failed"), Some("wrong_vc"))
    );
    let page = String::from_utf8_lossy(&browser.get(&location).body).to_string();
    assert!(page.contains("погрешан верификациони код"), "{page}");

    // Five wrong PINs in a row: the fifth locks the device, and the app says so in words.
    let mut browser = Browser::new(&server);
    let (location, code) = start_login(&mut browser, "ana@example.rs");
    for attempt in 1..=5 {
        let (status, out, err) = consentid(
            &home,
            &[
                "approve",
                "--next",
                "--wait",
                "10",
                "--code",
                &code,
                "--pin-stdin",
            ],
            "135799\n",
        );
        let expected = if attempt < 5 { 3 } else { 4 };
        assert_eq!(status, expected, "attempt {attempt}: {out}{err}");
    }
    let (_, stdout, _) = consentid(&home, &["status", "--json"], "");
    assert!(stdout.contains("\"state\":\"pin_locked\""), "{stdout}");
    let (_, words, _) = consentid(&home, &["status"], "");
    assert!(words.contains("закључан"), "{words}");
    let state = wait_status(&mut browser, &location, "failed");
    assert_eq!(state["hint"], "pin_locked");

    // The officer revokes the device certificate: the app is deactivated and wipes its keys,
    // and no login by it is possible.
    server.cli_ok(&[
        "cert",
        "revoke",
        &serial,
        "--reason",
        "cessationOfOperation",
    ]);
    let (_, stdout, _) = consentid(&home, &["status", "--json"], "");
    assert!(stdout.contains("\"state\":\"deactivated\""), "{stdout}");
    let mut browser = Browser::new(&server);
    let (_, code) = start_login(&mut browser, "ana@example.rs");
    let (status, out, err) = consentid(
        &home,
        &[
            "approve",
            "--next",
            "--wait",
            "2",
            "--code",
            &code,
            "--pin-stdin",
        ],
        &format!("{PIN}\n"),
    );
    assert_ne!(
        status, 0,
        "a deactivated device approved a login: {out}{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_started_on_one_server_and_approved_through_another_completes() {
    let Some(url) = store::test_support::fresh_postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        env: vec![("EIDPORTAL_DATABASE_URL".into(), url)],
        name: "postgres".into(),
    };
    let first = Server::start(&dir.path().join("a"), &setup, None);
    // Software keys are sealed under the master key: the second server shares it (with an HSM
    // both would use the token).
    std::fs::create_dir_all(dir.path().join("b")).unwrap();
    std::fs::copy(
        dir.path().join("a/master.key"),
        dir.path().join("b/master.key"),
    )
    .unwrap();
    let second = Server::start(&dir.path().join("b"), &setup, None);
    let home = dir.path().join("phone");
    // The app talks to the second server only.
    let out = first.cli_ok(&[
        "user",
        "add",
        "--email",
        "iva@example.rs",
        "--given-name",
        "Ива",
        "--surname",
        "Ивић",
        "--jmbg",
        JMBG,
        "--json",
    ]);
    let code = serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["activation_code"]
        .as_str()
        .unwrap()
        .to_owned();
    support::activate(&second, &home, &code);
    // The browser talks to the first server only.
    let mut browser = Browser::new(&first);
    let (location, code) = start_login(&mut browser, "iva@example.rs");
    let (status, out, err) = consentid(
        &home,
        &[
            "approve",
            "--next",
            "--wait",
            "10",
            "--code",
            &code,
            "--pin-stdin",
        ],
        &format!("{PIN}\n"),
    );
    assert_eq!(status, 0, "{out}{err}");
    assert_eq!(
        wait_status(&mut browser, &location, "approved")["status"],
        "approved"
    );
    let csrf = Browser::csrf(&browser.get(&location));
    let done = browser.post(&format!("{location}/complete"), &[("csrf", &csrf)]);
    assert_eq!(done.header("location"), Some("/account"));
    let account = String::from_utf8_lossy(&browser.get("/account").body).to_string();
    assert!(account.contains("Ива Ивић"), "{account}");
}

/// The decoded text body of the first `.eml` in `outbox` whose body contains `needle`.
fn outbox_message(outbox: &Path, needle: &str) -> Option<String> {
    for entry in std::fs::read_dir(outbox).ok()? {
        let text = std::fs::read_to_string(entry.ok()?.path()).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let decoded = if head.contains("Content-Transfer-Encoding: base64") {
            use base64::Engine as _;
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(body.replace("\r\n", ""))
                    .ok()?,
            )
            .ok()?
        } else if head.contains("Content-Transfer-Encoding: quoted-printable") {
            quoted_printable(body)
        } else {
            body.to_owned()
        };
        if decoded.contains(needle) {
            return Some(decoded);
        }
    }
    None
}

/// RFC 2045 §6.7 quoted-printable decoding.
fn quoted_printable(text: &str) -> String {
    let text = text.replace("=\r\n", "");
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() + 1 {
            if let Ok(byte) = u8::from_str_radix(
                std::str::from_utf8(&bytes[i + 1..(i + 3).min(bytes.len())]).unwrap_or(""),
                16,
            ) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_registration_verifies_the_address_and_gives_a_basic_account() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &Setup::embedded(), None);
    let mut browser = Browser::new(&server);
    let form = browser.get("/register");
    let csrf = Browser::csrf(&form);
    let fields = |jmbg: &'static str| {
        vec![
            ("email", "Jovana@Example.rs"),
            ("password", "duga lozinka 123"),
            ("given_name", "Јована"),
            ("surname", "Јовић"),
            ("jmbg", jmbg),
        ]
    };
    // A JMBG with a wrong check digit is refused with a clear message and changes nothing.
    let mut bad = fields("0101990710007");
    bad.push(("csrf", &csrf));
    let refused = browser.post("/register", &bad);
    assert_eq!(refused.status, 400);
    assert!(String::from_utf8_lossy(&refused.body).contains("ЈМБГ није исправан"));
    // Without the CSRF token nothing happens either.
    let forged = browser.post("/register", &fields("0101990710008"));
    assert_eq!(forged.status, 422, "a form without its CSRF field");
    let mut good = fields("0101990710008");
    good.push(("csrf", &csrf));
    let sent = browser.post("/register", &good);
    assert_eq!(sent.status, 200);
    assert!(String::from_utf8_lossy(&sent.body).contains("Проверите пошту"));
    // Before the link is opened, the password does not open the account.
    let login = browser.get("/login/password");
    let csrf = Browser::csrf(&login);
    let early = browser.post(
        "/login/password",
        &[
            ("csrf", &csrf),
            ("username", "jovana@example.rs"),
            ("password", "duga lozinka 123"),
        ],
    );
    assert_eq!(early.status, 401);
    let message = outbox_message(&data.join("outbox"), "verify-email")
        .expect("the verification e-mail in the outbox");
    let link = message
        .split_whitespace()
        .find(|w| w.contains("/verify-email?token="))
        .unwrap();
    let path = &link[link.find("/verify-email").unwrap()..];
    let verified = browser.get(path);
    assert!(String::from_utf8_lossy(&verified.body).contains("Адреса је потврђена"));
    assert_eq!(browser.get(path).status, 400, "a link works once");
    // Registering the same address again answers the same and sends a notice instead.
    let csrf = Browser::csrf(&browser.get("/register"));
    let mut again = fields("0101990710008");
    again.push(("csrf", &csrf));
    assert!(
        String::from_utf8_lossy(&browser.post("/register", &again).body)
            .contains("Проверите пошту")
    );
    assert!(outbox_message(&data.join("outbox"), "already has one").is_some());
    // Password login: a wrong password and an unknown user get the same answer.
    let csrf = Browser::csrf(&browser.get("/login/password"));
    let wrong = browser.post(
        "/login/password",
        &[
            ("csrf", &csrf),
            ("username", "jovana@example.rs"),
            ("password", "pogresna lozinka"),
        ],
    );
    let unknown = browser.post(
        "/login/password",
        &[
            ("csrf", &csrf),
            ("username", "niko@example.rs"),
            ("password", "pogresna lozinka"),
        ],
    );
    assert_eq!((wrong.status, unknown.status), (401, 401));
    assert_eq!(wrong.body, unknown.body);
    let ok = browser.post(
        "/login/password",
        &[
            ("csrf", &csrf),
            ("username", "jovana@example.rs"),
            ("password", "duga lozinka 123"),
        ],
    );
    assert_eq!(ok.header("location"), Some("/account"));
    let account = String::from_utf8_lossy(&browser.get("/account").body).to_string();
    assert!(
        account.contains("Јована Јовић") && account.contains("основни"),
        "{account}"
    );
    // Finding 3 of issue 22: the same password gets no CSC API token (an API token is for
    // signing, which needs a proofed identity), with CSC's `access_denied`.
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "jovana@example.rs:duga lozinka 123"
        )
    );
    let api = support::http_with(
        &server.addr,
        "POST",
        "/csc/v2/auth/login",
        &[("Authorization", &basic)],
        b"{}",
    )
    .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&api.body).unwrap_or_default();
    assert_eq!(
        (api.status, body["error"].as_str()),
        (403, Some("access_denied")),
        "{body}"
    );
    assert!(body.get("access_token").is_none(), "{body}");
}

/// Registers `email` through the portal's form; the path of the verification link.
fn register(browser: &mut Browser, outbox: &Path, email: &str, given_name: &str) -> String {
    let csrf = Browser::csrf(&browser.get("/register"));
    let form = [
        ("email", email),
        ("password", "duga lozinka 123"),
        ("given_name", given_name),
        ("surname", "Лажић"),
        ("jmbg", JMBG),
        ("csrf", &csrf),
    ];
    assert!(
        String::from_utf8_lossy(&browser.post("/register", &form).body).contains("Проверите пошту")
    );
    let message =
        outbox_message(outbox, &format!("{given_name} Лажић")).expect("the verification e-mail");
    let link = message
        .split_whitespace()
        .find(|w| w.contains("/verify-email?token="))
        .unwrap()
        .to_owned();
    link[link.find("/verify-email").unwrap()..].to_owned()
}

/// Finding 12: an address registered first by someone else (never verified) does not stop the
/// officer's `user add`; a verified account is refused with a message naming `user proof`,
/// and `user proof` shows the changes, ends the password and its session, and gives a code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_officer_takes_over_unverified_addresses_and_proofs_verified_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &Setup::embedded(), None);
    let outbox = data.join("outbox");
    // An attacker registers the victim's address first; the officer still enrols the victim.
    let mut attacker = Browser::new(&server);
    let attacker_link = register(&mut attacker, &outbox, "zrtva@example.rs", "Напасник");
    let out = server.cli_ok(&[
        "user",
        "add",
        "--email",
        "zrtva@example.rs",
        "--given-name",
        "Петар",
        "--surname",
        "Петровић",
        "--jmbg",
        JMBG,
        "--json",
    ]);
    assert!(out.contains("activation_code"), "{out}");
    // The attacker's link now leads nowhere.
    assert_eq!(attacker.get(&attacker_link).status, 400);

    // A verified basic account: `user add` refuses and names `user proof`.
    let mut owner = Browser::new(&server);
    let link = register(&mut owner, &outbox, "jovana@example.rs", "Лажни");
    assert!(String::from_utf8_lossy(&owner.get(&link).body).contains("Адреса је потврђена"));
    let csrf = Browser::csrf(&owner.get("/login/password"));
    let login = owner.post(
        "/login/password",
        &[
            ("csrf", &csrf),
            ("username", "jovana@example.rs"),
            ("password", "duga lozinka 123"),
        ],
    );
    assert_eq!(login.header("location"), Some("/account"));
    let refused = server.cli(&[
        "user",
        "add",
        "--email",
        "jovana@example.rs",
        "--given-name",
        "Јована",
        "--surname",
        "Јовић",
        "--jmbg",
        "0101990710008",
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("user proof"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let text = server.cli_ok(&[
        "user",
        "proof",
        "--email",
        "jovana@example.rs",
        "--given-name",
        "Јована",
        "--surname",
        "Јовић",
        "--jmbg",
        "0101990710008",
    ]);
    assert!(
        text.contains("given_name: Лажни → Јована")
            && text.contains("surname: Лажић → Јовић")
            && text.contains("assurance: basic → high"),
        "{text}"
    );
    assert!(
        text.contains("activation code for jovana@example.rs"),
        "{text}"
    );
    let code = extract(&text, "activation code for jovana@example.rs: ", " ").unwrap();
    // The old password session ended, the password no longer opens the account.
    assert!(!String::from_utf8_lossy(&owner.get("/account").body).contains("Јована Јовић"));
    let csrf = Browser::csrf(&owner.get("/login/password"));
    let again = owner.post(
        "/login/password",
        &[
            ("csrf", &csrf),
            ("username", "jovana@example.rs"),
            ("password", "duga lozinka 123"),
        ],
    );
    assert_eq!(again.status, 401);
    // The code activates ConsentID; `--json` of a second proofing (nothing left to change but a
    // new code) is one object.
    let home = dir.path().join("phone");
    let (status, stdout, stderr) = consentid(
        &home,
        &[
            "activate",
            "--server",
            &server.url,
            "--code",
            &code,
            "--pin-stdin",
        ],
        &format!("{PIN}\n"),
    );
    assert_eq!(status, 0, "{stdout}{stderr}");
    let json = server.cli_ok(&[
        "user",
        "proof",
        "--email",
        "jovana@example.rs",
        "--given-name",
        "Јована",
        "--surname",
        "Јовић",
        "--jmbg",
        "0101990710008",
        "--json",
    ]);
    let value: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(value["changes"], serde_json::json!([]));
    assert!(
        value["activation_code"]
            .as_str()
            .is_some_and(|c| c.len() == 27),
        "{json}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_speaks_all_three_languages_and_is_protected() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &Setup::embedded(), None);
    let ids: Vec<String> = include_str!("../i18n/en.ftl")
        .lines()
        .filter_map(|l| l.split_once(" = ").map(|(id, _)| id.trim().to_owned()))
        .filter(|id| id.contains('-'))
        .collect();
    let mut browser = Browser::new(&server);
    for (tag, word) in [
        ("sr-Cyrl", "Пријава"),
        ("sr-Latn", "Prijava"),
        ("en", "Log in"),
    ] {
        let switched = browser.get(&format!("/lang/{tag}?next=/login"));
        assert_eq!(switched.header("location"), Some("/login"));
        for path in [
            "/",
            "/login",
            "/login/mobile",
            "/login/password",
            "/register",
            "/account",
            "/nowhere",
        ] {
            let page = browser.get(path);
            let html = String::from_utf8_lossy(&page.body).to_string();
            if path != "/nowhere" {
                assert!(html.contains(&format!("lang=\"{tag}\"")), "{path} in {tag}");
                assert!(html.contains(word), "{path} in {tag} lacks {word}");
            }
            for id in &ids {
                assert!(
                    !html.contains(&format!(">{id}<")),
                    "{path} in {tag} shows the message id {id}"
                );
            }
            let csp = page.header("content-security-policy").unwrap_or("");
            assert!(
                csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
                "{path}: {csp}"
            );
            // The id a citizen quotes to support (the internal-error page shows the same).
            let id = page.header("x-request-id").unwrap_or("");
            assert!(
                id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
                "{path}: x-request-id {id:?}"
            );
        }
    }
    // No open redirect through the language switch.
    assert_eq!(
        browser
            .get("/lang/en?next=//evil.example")
            .header("location"),
        Some("/")
    );
    // A tab that browsers drop (`/<TAB>/evil.example` is `//evil.example` to them), and paths
    // the portal does not serve, go home too.
    for next in [
        "/%09/evil.example",
        "/%0a/evil.example",
        "/%5Cevil.example",
        "/nowhere",
        "https://evil.example",
    ] {
        assert_eq!(
            browser
                .get(&format!("/lang/en?next={next}"))
                .header("location"),
            Some("/"),
            "{next}"
        );
    }
    assert_eq!(
        browser
            .get("/lang/en?next=/services/cloud-certificate")
            .header("location"),
        Some("/services/cloud-certificate")
    );
    // A form posted with another session's token is refused.
    let mut other = Browser::new(&server);
    let token = Browser::csrf(&other.get("/login/mobile"));
    let forged = browser.post(
        "/login/mobile",
        &[("csrf", &token), ("username", "a@example.rs")],
    );
    assert_eq!(forged.status, 403);
    // Cookies: HttpOnly and SameSite=Lax.
    let cookie = Browser::at(&server.addr)
        .get("/")
        .header("set-cookie")
        .unwrap_or("")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
}
