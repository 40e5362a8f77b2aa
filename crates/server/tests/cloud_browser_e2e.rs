//! The seed's steps 2-13 in a real browser: the real server, the real `consentid` binary as the
//! phone, and headless Chromium driven by the visible Serbian words (scripts/e2e/cloud.py): log
//! in, open the cloud certificate service, cancel and then accept the agreement, read the
//! agreement e-mail from the outbox, revoke, issue again and revoke all certificates.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::{Path, PathBuf};

use support::{consentid, Server, Setup};

const PIN: &str = "246810";
const JMBG: &str = "0101990710008";
const EMAIL: &str = "petar@example.rs";

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Enrols Петар Петровић and activates ConsentID for him in `home`.
fn enrol_and_activate(server: &Server, home: &Path) {
    let out = server.cli_ok(&[
        "user",
        "add",
        "--email",
        EMAIL,
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
    let (_, stdout, _) = consentid(home, &["status", "--json"], "");
    let state: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(state["state"], "active", "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_issues_revokes_and_revokes_all_cloud_certificates_through_the_seed_steps() {
    let Some(python) = support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &Setup::embedded(), None);
    let home = dir.path().join("phone");
    enrol_and_activate(&server, &home);
    std::fs::write(dir.path().join("pin"), format!("{PIN}\n")).unwrap();
    let screenshots = repository().join("docs/screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let output = std::process::Command::new(&python)
        .arg(repository().join("scripts/e2e/cloud.py"))
        .args(["--url", &server.url, "--email", EMAIL])
        .arg("--consentid")
        .arg(support::consentid_binary())
        .arg("--consentid-home")
        .arg(&home)
        .arg("--pin-file")
        .arg(dir.path().join("pin"))
        .arg("--outbox")
        .arg(data.join("outbox"))
        .arg("--screenshots")
        .arg(&screenshots)
        .args(["--expect-name", "Петар Петровић", "--expect-jmbg", JMBG])
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
    println!("{text}");

    // What the browser did, as the officer's register sees it: two cloud certificates, both
    // revoked, and the device certificate revoked with them.
    let listed = server.cli_ok(&["cert", "list", "--email", EMAIL, "--json"]);
    let certificates: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    let count = |kind: &str| certificates.iter().filter(|c| c["kind"] == kind).count();
    assert_eq!(
        (count("cloud_signing"), count("device")),
        (2, 1),
        "{listed}"
    );
    assert!(
        certificates.iter().all(|c| c["status"] == "revoked"),
        "{listed}"
    );

    // The evidence names no path of this machine.
    let temporary = dir.path().to_string_lossy().to_string();
    for name in ["05-phone-approves.txt", "13c-consentid-status.txt"] {
        let written = std::fs::read_to_string(screenshots.join(name)).unwrap();
        assert!(
            !written.contains(&temporary) && !written.contains("/tmp/"),
            "{name} names a path:\n{written}"
        );
    }
    for name in [
        "08-service-page.png",
        "09-agreement.png",
        "10-issued.png",
        "11-agreement.pdf",
        "11-agreement-page1.png",
        "12-revoked.png",
        "13-revoke-all-confirm.png",
        "13b-revoked-all.png",
    ] {
        assert!(screenshots.join(name).is_file(), "{name} was not written");
    }
}
