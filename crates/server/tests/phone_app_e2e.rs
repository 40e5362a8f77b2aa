//! ConsentID on the phone in a real browser (issue 10): the real server, the web app served on
//! its own origin, and two headless Chromiums driven by scripts/e2e/phone.py: a phone (mobile
//! emulation, 360x640, touch) on the app's origin and a computer on the portal's. Activation,
//! a mobile login, the non-extractable key and the separate storage, a portal signature
//! approved in the app, a QR code scanned from another network (the app warns, naming the
//! computer's city from the operator's GeoIP database), 5 wrong PINs, deactivation by
//! **Опозови све сертификате**, and the first load on Slow 4G.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::{Path, PathBuf};

use support::{Server, Setup};

const PIN: &str = "246810";

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Enrols a person; their activation code.
fn enrol(server: &Server, email: &str, given: &str, surname: &str, jmbg: &str) -> String {
    let out = server.cli_ok(&[
        "user",
        "add",
        "--email",
        email,
        "--given-name",
        given,
        "--surname",
        surname,
        "--jmbg",
        jmbg,
        "--json",
    ]);
    let value: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    value["activation_code"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_activates_logs_in_signs_locks_and_is_deactivated_in_chromium() {
    let Some(python) = support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The operator's GeoIP database: the phone names the computer's city (issue 22).
    let geoip = dir.path().join("places.mmdb");
    let made = std::process::Command::new(&python)
        .arg(repository().join("scripts/e2e/geoip_db.py"))
        .arg(&geoip)
        .status()
        .unwrap();
    assert!(made.success(), "scripts/e2e/geoip_db.py");
    let mut setup = Setup::embedded();
    setup.env.push((
        "EIDPORTAL_GEOIP_DATABASE".into(),
        geoip.to_str().unwrap().into(),
    ));
    let server = Server::start(&data, &setup, None);
    assert_ne!(server.app_url, server.url, "the app has its own origin");
    let code = enrol(
        &server,
        "petar@example.rs",
        "Петар",
        "Петровић",
        "0101990710008",
    );
    let code2 = enrol(
        &server,
        "jelena@example.rs",
        "Јелена",
        "Јовановић",
        "0202985715000",
    );
    let pdf = dir.path().join("ugovor.pdf");
    let document = pdf::agreement_pdf(
        "Уговор за потпис",
        &["Документ за потписивање у апликацији ConsentID.".to_owned()],
        "eidportal",
    )
    .unwrap();
    std::fs::write(&pdf, document).unwrap();
    let app_screenshots = repository().join("docs/screenshots");
    std::fs::create_dir_all(&app_screenshots).unwrap();
    let output = std::process::Command::new(&python)
        .arg(repository().join("scripts/e2e/phone.py"))
        .args(["--url", &server.url, "--app-url", &server.app_url])
        .args(["--email", "petar@example.rs", "--code", &code])
        .args(["--email2", "jelena@example.rs", "--code2", &code2])
        .args(["--pin", PIN])
        .args(["--expect-location", "Нови Сад, Србија (127.0.0.1)"])
        .arg("--pdf")
        .arg(&pdf)
        .arg("--screenshots")
        .arg(dir.path().join("computer"))
        .arg("--app-screenshots")
        .arg(&app_screenshots)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{text}");
    assert!(
        output.status.success() && text.contains("\nPASS"),
        "the browser test failed:\n{text}"
    );

    // What the browsers did, as the officer's register sees it: the second user's
    // certificates (the web app's device certificate among them) are all revoked.
    let listed = server.cli_ok(&["cert", "list", "--email", "jelena@example.rs", "--json"]);
    let certificates: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    assert!(
        certificates.iter().any(|c| c["kind"] == "device"),
        "{listed}"
    );
    assert!(
        certificates.iter().all(|c| c["status"] == "revoked"),
        "{listed}"
    );
    for name in [
        "app-activate.png",
        "app-pin.png",
        "app-home.png",
        "app-login-code.png",
        "app-approved.png",
        "app-sign-request.png",
        "app-locked.png",
        "app-deactivated.png",
    ] {
        assert!(
            app_screenshots.join(name).is_file(),
            "{name} was not written"
        );
    }
}
