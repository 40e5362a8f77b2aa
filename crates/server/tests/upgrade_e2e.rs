//! An upgrade from release c5afecc (issue 24): this build's `eidportal serve` starts on the data
//! that release made, on SQLite and on PostgreSQL (`tests/fixtures/upgrade-c5afecc/`, made by
//! `scripts/make-upgrade-fixture`), and everything its citizens had still works:
//!
//! 1. every certificate keeps its status, in the officer's list and in the OCSP answers;
//! 2. the audit chain verifies, against the checkpoints the old release wrote;
//! 3. Петар's old phone (its ConsentID home from the fixture, used with this build's `consentid`)
//!    logs him in and approves a new signature with his old cloud certificate, and the agreement
//!    he accepted before the upgrade still downloads;
//! 4. Ана, who revoked everything, stays revoked (1.) and her phone deactivated;
//! 5. Јована's password still logs her in;
//! 6. the B-LT PDF signed before the upgrade validates offline (pyHanko) under the root
//!    certificate the upgraded server publishes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    consentid, der_to_pem, extract, log_in, qualified_ocsp_status, run, Browser, Server, Setup, PIN,
};

/// The password of the fixture's password-only account (scripts/upgrade_fixture.py).
const PASSWORD: &str = "duga lozinka 123";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/upgrade-c5afecc")
        .join(format!("{name}.tar.gz"))
}

/// Unpacks the fixture `name` into `dir`.
fn unpack(name: &str, dir: &Path) {
    let (ok, text) = run(
        "tar",
        &["-xzf", fixture(name).to_str().unwrap(), "-C", "."],
        dir,
    );
    assert!(ok, "tar -xzf {name}.tar.gz: {text}");
}

/// Points the ConsentID home at `home` to `server`: the fixture's phones knew the old server on
/// the port it had then; this one listens on another.
fn move_phone(home: &Path, server: &Server) {
    let path = home.join("device.json");
    let mut record: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    record["server"] = server.url.clone().into();
    std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
}

/// Restores the fixture's `pg_dump` into a fresh database; its URL, or `None` (skipped).
async fn restored_postgres(dump: &Path) -> Option<String> {
    let url = store::test_support::fresh_postgres().await?;
    let output = Command::new("psql")
        .args(["-q", "-X", "-v", "ON_ERROR_STOP=1", "-d", &url, "-f"])
        .arg(dump)
        .output()
        .unwrap_or_else(|e| panic!("psql (PostgreSQL's client) restores the fixture: {e}"));
    assert!(
        output.status.success(),
        "psql -f postgres.sql: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(url)
}

/// OpenSSL's OCSP answer for the certificate `serial`, checked against the root.
fn ocsp_status(server: &Server, dir: &Path, serial: &str) -> String {
    let text = qualified_ocsp_status(server, dir, serial);
    assert!(text.contains("Response verify OK"), "{text}");
    text
}

/// Step 1: every certificate the old release listed is listed with the same status (and
/// reason); the cloud certificates' OCSP answers say the same. Returns Петар's cloud certificate.
fn certificates_keep_their_status(server: &Server, d: &Path) -> String {
    let before: Vec<Value> =
        serde_json::from_slice(&std::fs::read(d.join("certificates.json")).unwrap()).unwrap();
    let after: Vec<Value> =
        serde_json::from_str(&server.cli_ok(&["cert", "list", "--json"])).unwrap();
    // Nothing new but the OCSP responders' certificates, which the server renews by itself ten
    // days before their 30 days end (the fixture's were issued when it was made).
    let added: Vec<&Value> = after
        .iter()
        .filter(|c| !before.iter().any(|o| o["serial"] == c["serial"]))
        .collect();
    assert!(
        added.iter().all(|c| c["kind"] == "ocsp_signer"),
        "certificates that were not there before: {added:#?}"
    );
    for old in &before {
        let new = after
            .iter()
            .find(|c| c["serial"] == old["serial"])
            .unwrap_or_else(|| panic!("{} is no longer listed", old["serial"]));
        for field in ["kind", "status", "email", "revocation_reason", "not_after"] {
            assert_eq!(old[field], new[field], "{field} of {}", old["serial"]);
        }
    }
    let cloud = |email: &str| -> Vec<&Value> {
        after
            .iter()
            .filter(|c| c["kind"] == "cloud_signing" && c["email"] == email)
            .collect()
    };
    // The fixture holds what the issue asks for (a check of the fixture itself).
    let petar = cloud("petar@example.rs");
    assert_eq!(petar.len(), 1, "{after:#?}");
    assert_eq!(petar[0]["status"], "issued");
    let ana = cloud("ana@example.rs");
    assert!(
        !ana.is_empty() && ana.iter().all(|c| c["status"] == "revoked"),
        "{after:#?}"
    );
    for certificate in after.iter().filter(|c| c["kind"] == "cloud_signing") {
        let serial = certificate["serial"].as_str().unwrap();
        let text = ocsp_status(server, d, serial);
        let expected = match certificate["status"].as_str() {
            Some("issued") => "leaf.pem: good",
            _ => "leaf.pem: revoked",
        };
        assert!(text.contains(expected), "{serial}: {text}");
    }
    petar[0]["serial"].as_str().unwrap().to_owned()
}

/// Step 3: a new portal signature at B-B, approved on `home`; the signed PDF.
fn sign_in_portal(browser: &mut Browser, home: &Path) -> Vec<u8> {
    let document = pdf::agreement_pdf(
        "после надоградње",
        &["Документ потписан после надоградње.".to_owned()],
        "eidportal",
    )
    .unwrap();
    let csrf = Browser::csrf(&browser.get("/services/sign"));
    let response = browser.post_multipart(
        "/services/sign",
        &[("csrf", &csrf), ("level", "b-b")],
        &[("documents", "posle.pdf", &document)],
    );
    assert_eq!(
        response.status,
        303,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    let job = response.header("location").unwrap().to_owned();
    let (status, out, err) = consentid(
        home,
        &["approve", "--next", "--wait", "10", "--pin-stdin"],
        &format!("{PIN}\n"),
    );
    assert_eq!(
        status, 0,
        "the old phone approves the signature: {out}{err}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = String::from_utf8_lossy(&browser.get(&job).body).to_string();
        if page.contains("Документи су потписани") {
            let signed = browser.get(&format!("{job}/0"));
            assert_eq!(signed.status, 200);
            assert_eq!(signed.header("content-type"), Some("application/pdf"));
            return signed.body;
        }
        assert!(Instant::now() < deadline, "not signed: {page}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// pyHanko's `sign ARGS... FILE --trust ROOT --trust-replace` in `d`, or `None` without Python.
fn pyhanko(d: &Path, root: &Path, args: &[&str], file: &str) -> Option<(bool, String)> {
    let python = support::python()?;
    let pyhanko = python.with_file_name("pyhanko");
    let mut argv = vec!["sign"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--trust", root.to_str().unwrap(), "--trust-replace", file]);
    Some(run(pyhanko.to_str().unwrap(), &argv, d))
}

/// The whole upgrade on the unpacked fixture in `d`, with the database of `setup`.
fn upgrade(d: &Path, setup: &Setup) {
    let server = Server::start(&d.join("data"), setup, None);
    let name = &setup.name;

    // 1. Statuses.
    let petar_serial = certificates_keep_their_status(&server, d);

    // 2. The audit chain and the old release's checkpoints (at its stop, and `audit
    // checkpoint`): `audit verify` reads every checkpoint in the folder.
    let checkpoints = std::fs::read_dir(d.join("data/audit-checkpoints"))
        .unwrap()
        .count();
    assert!(checkpoints >= 1, "{name}: the fixture has no checkpoint");
    let verified = server.cli(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&verified.stdout).to_string()
        + &String::from_utf8_lossy(&verified.stderr);
    assert!(
        verified.status.success() && text.contains("audit log intact"),
        "{name}: audit verify: {text}"
    );

    // 3. Петар's old phone logs him in and signs with his old certificate.
    let petar = d.join("phones/petar");
    move_phone(&petar, &server);
    let mut browser = Browser::new(&server);
    assert_eq!(
        log_in(&mut browser, "petar@example.rs", &petar),
        "/account",
        "{name}: Петар's old phone logs him in"
    );
    let service =
        String::from_utf8_lossy(&browser.get("/services/cloud-certificate").body).to_string();
    assert_eq!(
        extract(&service, "<dd class=\"serial\">", "<").as_deref(),
        Some(petar_serial.as_str()),
        "{name}: the portal shows Петар's certificate: {service}"
    );
    let agreement = extract(
        &service,
        "href=\"/services/cloud-certificate/agreements/",
        "\"",
    )
    .unwrap_or_else(|| panic!("{name}: no agreement to download: {service}"));
    let download = browser.get(&format!(
        "/services/cloud-certificate/agreements/{agreement}"
    ));
    assert_eq!(download.status, 200, "{name}: the old agreement");
    assert!(
        download.body.starts_with(b"%PDF-"),
        "{name}: the old agreement"
    );
    let signed = sign_in_portal(&mut browser, &petar);
    std::fs::write(d.join("posle.pdf"), &signed).unwrap();

    // 4. Ана's phone was deactivated when she revoked everything, and stays so.
    let ana = d.join("phones/ana");
    move_phone(&ana, &server);
    let (_, status, _) = consentid(&ana, &["status", "--json"], "");
    assert!(
        status.contains("\"state\":\"deactivated\""),
        "{name}: Ана's phone: {status}"
    );

    // 5. Јована's password.
    let mut basic = Browser::new(&server);
    let csrf = Browser::csrf(&basic.get("/login/password"));
    let login = basic.post(
        "/login/password",
        &[
            ("csrf", &csrf),
            ("username", "jovana@example.rs"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(
        login.header("location"),
        Some("/account"),
        "{name}: Јована's password login"
    );
    let account = String::from_utf8_lossy(&basic.get("/account").body).to_string();
    assert!(account.contains("jovana@example.rs"), "{name}: {account}");

    // 6. The PDFs: the new signature validates, and the old B-LT one offline, from its DSS.
    // The certificates name the old server's address (the port the fixture's server had), which
    // is gone: the new signature is checked without fetching revocation data (its certificate's
    // OCSP answer from this server was checked in 1.).
    let root = der_to_pem(d, &server.get("/pki/root.crt"), "root", "x509");
    if let Some((ok, out)) = pyhanko(
        d,
        &root,
        &["validate", "--no-revocation-check"],
        "posle.pdf",
    ) {
        assert!(
            ok && out.contains("INTACT:TRUSTED"),
            "{name}: the new signature: {out}"
        );
    }
    server.kill();
    if let Some((ok, out)) = pyhanko(d, &root, &["adesverify"], "petar-b-lt.pdf") {
        assert!(ok, "{name}: the B-LT PDF signed before the upgrade: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_on_sqlite_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    unpack("sqlite", dir.path());
    upgrade(dir.path(), &Setup::embedded());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_on_postgres_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    unpack("postgres", dir.path());
    let Some(url) = restored_postgres(&dir.path().join("postgres.sql")).await else {
        return;
    };
    let setup = Setup {
        env: vec![("EIDPORTAL_DATABASE_URL".into(), url)],
        name: "postgres".into(),
    };
    upgrade(dir.path(), &setup);
}
