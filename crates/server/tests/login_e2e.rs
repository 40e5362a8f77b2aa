//! The seed's steps 2-7 end to end: the real server, the real `consentid` binary as the phone,
//! a real headless Chromium driven by the visible Serbian words (scripts/e2e/login.py), and the
//! refusals a user would notice, each through the binaries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

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
    let out = server.cli_ok(&["user", "add", "--email", email, "--given-name", "Петар", "--surname", "Петровић", "--jmbg", JMBG, "--json"]);
    let value: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let code = value["activation_code"].as_str().unwrap().to_owned();
    let (status, stdout, stderr) = consentid(home, &["activate", "--server", &server.url, "--code", &code, "--pin-stdin", "--json"], &format!("{PIN}\n"));
    assert_eq!(status, 0, "consentid activate: {stdout}{stderr}");
    // Activating again with the same code is refused.
    let (status, _, stderr) = consentid(&home.with_extension("again"), &["activate", "--server", &server.url, "--code", &code, "--pin-stdin"], &format!("{PIN}\n"));
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
    assert_eq!(started.status, 303, "{}", String::from_utf8_lossy(&started.body));
    let location = started.header("location").unwrap().to_owned();
    let page = browser.get(&location);
    let html = String::from_utf8_lossy(&page.body).to_string();
    let code = extract(&html, "data-testid=\"verification-code\">", "<").expect("the verification code on the page");
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
    let Some(python) = support::python() else { return };
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
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && text.contains("PASS"), "the browser test failed:\n{text}");

    // The device certificate verifies to the root and OCSP says good.
    let d = dir.path();
    std::fs::write(d.join("device.pem"), server.cli_ok(&["cert", "pem", &serial])).unwrap();
    let root = der_to_pem(d, &server.get("/pki/root.crt"), "root", "x509");
    let ca = der_to_pem(d, &server.get("/pki/consentid-ca.crt"), "consentid", "x509");
    let (ok, text) = run("openssl", &["verify", "-CAfile", root.to_str().unwrap(), "-untrusted", ca.to_str().unwrap(), "device.pem"], d);
    assert!(ok, "{text}");
    let url = format!("{}/ocsp", server.url);
    let (ok, text) = run("openssl", &["ocsp", "-issuer", ca.to_str().unwrap(), "-cert", "device.pem", "-url", &url, "-CAfile", root.to_str().unwrap()], d);
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
    let (status, out, err) = consentid(&home, &["approve", "--next", "--wait", "10", "--code", &code, "--pin-stdin"], &format!("{PIN}\n"));
    assert_eq!(status, 0, "{out}{err}");
    assert_eq!(wait_status(&mut browser, &location, "approved")["status"], "approved");
    let page = browser.get(&location);
    let csrf = Browser::csrf(&page);
    let done = browser.post(&format!("{location}/complete"), &[("csrf", &csrf)]);
    assert_eq!(done.header("location"), Some("/account"));
    let account = String::from_utf8_lossy(&browser.get("/account").body).to_string();
    assert!(account.contains("Петар Петровић") && account.contains("ana@example.rs") && account.contains("услуге"), "{account}");

    // A wrong verification code: the app denies, the browser says why.
    let mut browser = Browser::new(&server);
    let (location, code) = start_login(&mut browser, "ana@example.rs");
    let wrong = format!("{:04}", (code.parse::<u32>().unwrap() + 1) % 10_000);
    let (status, out, err) = consentid(&home, &["approve", "--next", "--wait", "10", "--code", &wrong, "--pin-stdin"], &format!("{PIN}\n"));
    assert_eq!(status, 5, "{out}{err}");
    let state = wait_status(&mut browser, &location, "failed");
    assert_eq!((state["status"].as_str(), state["hint"].as_str()), (Some("failed"), Some("wrong_vc")));
    let page = String::from_utf8_lossy(&browser.get(&location).body).to_string();
    assert!(page.contains("погрешан верификациони код"), "{page}");

    // Five wrong PINs in a row: the fifth locks the device, and the app says so in words.
    let mut browser = Browser::new(&server);
    let (location, code) = start_login(&mut browser, "ana@example.rs");
    for attempt in 1..=5 {
        let (status, out, err) = consentid(&home, &["approve", "--next", "--wait", "10", "--code", &code, "--pin-stdin"], "135799\n");
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
    server.cli_ok(&["cert", "revoke", &serial, "--reason", "cessationOfOperation"]);
    let (_, stdout, _) = consentid(&home, &["status", "--json"], "");
    assert!(stdout.contains("\"state\":\"deactivated\""), "{stdout}");
    let mut browser = Browser::new(&server);
    let (_, code) = start_login(&mut browser, "ana@example.rs");
    let (status, out, err) = consentid(&home, &["approve", "--next", "--wait", "2", "--code", &code, "--pin-stdin"], &format!("{PIN}\n"));
    assert_ne!(status, 0, "a deactivated device approved a login: {out}{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_started_on_one_server_and_approved_through_another_completes() {
    let Some(url) = store::test_support::fresh_postgres().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup { env: vec![("EIDPORTAL_DATABASE_URL".into(), url)], name: "postgres".into() };
    let first = Server::start(&dir.path().join("a"), &setup, None);
    // Software keys are sealed under the master key: the second server shares it (with an HSM
    // both would use the token).
    std::fs::create_dir_all(dir.path().join("b")).unwrap();
    std::fs::copy(dir.path().join("a/master.key"), dir.path().join("b/master.key")).unwrap();
    let second = Server::start(&dir.path().join("b"), &setup, None);
    let home = dir.path().join("phone");
    // The app talks to the second server only.
    let out = first.cli_ok(&["user", "add", "--email", "iva@example.rs", "--given-name", "Ива", "--surname", "Ивић", "--jmbg", JMBG, "--json"]);
    let code = serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["activation_code"].as_str().unwrap().to_owned();
    let (status, out, err) = consentid(&home, &["activate", "--server", &second.url, "--code", &code, "--pin-stdin"], &format!("{PIN}\n"));
    assert_eq!(status, 0, "{out}{err}");
    // The browser talks to the first server only.
    let mut browser = Browser::new(&first);
    let (location, code) = start_login(&mut browser, "iva@example.rs");
    let (status, out, err) = consentid(&home, &["approve", "--next", "--wait", "10", "--code", &code, "--pin-stdin"], &format!("{PIN}\n"));
    assert_eq!(status, 0, "{out}{err}");
    assert_eq!(wait_status(&mut browser, &location, "approved")["status"], "approved");
    let csrf = Browser::csrf(&browser.get(&location));
    let done = browser.post(&format!("{location}/complete"), &[("csrf", &csrf)]);
    assert_eq!(done.header("location"), Some("/account"));
    let account = String::from_utf8_lossy(&browser.get("/account").body).to_string();
    assert!(account.contains("Ива Ивић"), "{account}");
}
