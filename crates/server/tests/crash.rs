//! `kill -9` in the middle of a stream of issuances and revocations, many times: nothing that
//! was reported done is lost, and no serial is left in an undefined state (DESIGN §8).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{cli, Server, Setup};

const ROUNDS: usize = 8;

fn eidportal(data: &std::path::Path, setup: &Setup, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eidportal"));
    command.arg("--data").arg(data).args(args).envs(setup.env.iter().map(|(k, v)| (k, v)));
    command.env("EIDPORTAL_PUBLIC_URL", "http://127.0.0.1:8080").env("EIDPORTAL_LOG", "warn");
    command
}

/// One number from the test's database, asked with a client this project did not write
/// (Python's sqlite3, or psql).
fn count(setup: &Setup, data: &std::path::Path, sql: &str) -> i64 {
    let output = match setup.env.iter().find(|(k, _)| k == "EIDPORTAL_DATABASE_URL") {
        Some((_, url)) => Command::new("psql").args(["-w", "-X", "-q", "-A", "-t", url, "-c", sql]).output().unwrap(),
        None => {
            let python = std::env::var("EIDPORTAL_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
            let script = "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])";
            Command::new(python).args(["-c", script]).arg(data.join("eidportal.db")).arg(sql).output().unwrap()
        }
    };
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_reported_done() {
    let mut setups = vec![Setup::embedded()];
    if let Some(url) = store::test_support::fresh_postgres().await {
        setups.push(Setup { env: vec![("EIDPORTAL_DATABASE_URL".into(), url)], name: "postgres+software".into() });
    }
    for setup in setups {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let name = &setup.name;
        let first = cli(&data, &setup, "http://127.0.0.1:8080", &["cert", "list"]);
        assert!(first.status.success(), "{name}: {}", String::from_utf8_lossy(&first.stderr));

        let issued_reported: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut revoked_reported = BTreeSet::new();
        let mut kills = 0;
        for round in 0..ROUNDS {
            // A stream of issuances, each printed as soon as it is committed.
            let mut issuer = eidportal(&data, &setup, &[
                "cert", "issue", "--given-name", "Ана", "--surname", "Анић", "--jmbg", "0101990710008", "--count", "100000", "--json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
            let stdout = issuer.stdout.take().unwrap();
            let sink = issued_reported.clone();
            let reader = std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) {
                        if let Some(serial) = value["serial"].as_str() {
                            sink.lock().unwrap().push(serial.to_owned());
                        }
                    }
                }
            });
            // Meanwhile, revocations of earlier certificates, some of them killed too.
            let candidates: Vec<String> = issued_reported.lock().unwrap().iter().rev().take(3).cloned().collect();
            let mut revokers = Vec::new();
            for (i, serial) in candidates.iter().enumerate() {
                if revoked_reported.contains(serial) {
                    continue;
                }
                let child = eidportal(&data, &setup, &["cert", "revoke", serial, "--reason", "superseded"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                revokers.push((serial.clone(), child, i == 0 && round % 2 == 1));
            }
            std::thread::sleep(Duration::from_millis(250 + 97 * (round as u64 % 5)));
            for (serial, mut child, kill) in revokers {
                if kill {
                    let _ = child.kill();
                    kills += 1;
                }
                if child.wait().unwrap().success() {
                    revoked_reported.insert(serial);
                }
            }
            issuer.kill().unwrap(); // SIGKILL
            kills += 1;
            issuer.wait().unwrap();
            reader.join().unwrap();
        }

        let listed = cli(&data, &setup, "http://127.0.0.1:8080", &["cert", "list", "--json"]);
        assert!(listed.status.success());
        let listed: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
        let status: BTreeMap<String, String> = listed
            .iter()
            .map(|c| (c["serial"].as_str().unwrap().to_owned(), c["status"].as_str().unwrap().to_owned()))
            .collect();
        let reported = issued_reported.lock().unwrap().clone();
        assert!(reported.len() >= ROUNDS, "{name}: too few issuances to be meaningful: {}", reported.len());
        for serial in &reported {
            let s = status.get(serial).map(String::as_str);
            assert!(matches!(s, Some("issued") | Some("revoked")), "{name}: reported issued {serial} is {s:?}");
        }
        for serial in &revoked_reported {
            assert_eq!(status.get(serial).map(String::as_str), Some("revoked"), "{name}: reported revoked {serial}");
        }
        let reserved = status.values().filter(|s| *s == "reserved").count();
        assert!(reserved <= kills, "{name}: {reserved} reserved serials after {kills} kills");
        for (serial, s) in &status {
            assert!(matches!(s.as_str(), "issued" | "revoked" | "reserved"), "{name}: {serial} is {s}");
        }

        // The CRL lists exactly the revoked certificates, and the audit chain is intact.
        let server = Server::start(&data, &setup, None);
        let crl = support::der_to_pem(dir.path(), &server.get("/pki/qualified-ca.crl"), "crl", "crl");
        let (ok, text) = support::run("openssl", &["crl", "-in", crl.to_str().unwrap(), "-noout", "-text"], dir.path());
        assert!(ok);
        let on_crl = text.matches("Serial Number:").count();
        let revoked = status.values().filter(|s| *s == "revoked").count();
        assert_eq!(on_crl, revoked, "{name}: CRL entries vs revoked certificates");
        for serial in &revoked_reported {
            assert!(text.to_lowercase().contains(serial), "{name}: {serial} not on the CRL");
        }
        let audit = server.cli_ok(&["audit", "verify"]);
        assert!(audit.contains("intact"), "{name}: {audit}");
        // Neither a cloud key without its certificate record nor a cloud certificate without
        // its key record (the key and the serial are stored in one transaction).
        for (what, sql) in [
            (
                "keys without a certificate",
                "SELECT count(*) FROM keys k LEFT JOIN certificates c ON c.key_id = k.id \
                 WHERE k.label LIKE 'eidportal-cloud-%' AND c.serial IS NULL",
            ),
            (
                "cloud certificates without a key",
                "SELECT count(*) FROM certificates c LEFT JOIN keys k ON k.id = c.key_id \
                 WHERE c.kind = 'cloud_signing' AND k.id IS NULL",
            ),
        ] {
            assert_eq!(count(&setup, &data, sql), 0, "{name}: {what}");
        }
        eprintln!("{name}: {} issued, {} revoked, {reserved} reserved after {kills} kills", reported.len(), revoked_reported.len());
    }
}
