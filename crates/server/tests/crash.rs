//! `kill -9` in the middle of a stream of issuances and revocations, many times: nothing that
//! was reported done is lost, no serial is left in an undefined state, and (with SoftHSM2) every
//! key object in the token has its key record and every live key record its objects, once the
//! upkeep has cleaned up after the dead processes (DESIGN §8).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{cli, Server, Setup};

const ROUNDS: usize = 8;

fn eidportal(data: &Path, setup: &Setup, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eidportal"));
    command
        .arg("--data")
        .arg(data)
        .args(args)
        .envs(setup.env.iter().map(|(k, v)| (k, v)));
    command
        .env("EIDPORTAL_PUBLIC_URL", "http://127.0.0.1:8080")
        .env("EIDPORTAL_LOG", "warn");
    command
}

fn database_url(setup: &Setup) -> Option<&str> {
    setup
        .env
        .iter()
        .find(|(k, _)| k == "EIDPORTAL_DATABASE_URL")
        .map(|(_, url)| url.as_str())
}

/// Rows of the test's database (tab-separated columns), asked or changed with a client this
/// project did not write (Python's sqlite3, or psql).
fn sql(setup: &Setup, data: &Path, statement: &str) -> Vec<Vec<String>> {
    let output = match database_url(setup) {
        Some(url) => Command::new("psql")
            .args([
                "-w", "-X", "-q", "-A", "-t", "-F", "\t", url, "-c", statement,
            ])
            .output()
            .unwrap(),
        None => {
            let python =
                std::env::var("EIDPORTAL_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
            let script = "import sqlite3,sys\n\
                          c = sqlite3.connect(sys.argv[1])\n\
                          for row in c.execute(sys.argv[2]): print('\\t'.join(str(v) for v in row))\n\
                          c.commit()";
            Command::new(python)
                .args(["-c", script])
                .arg(data.join("eidportal.db"))
                .arg(statement)
                .output()
                .unwrap()
        }
    };
    assert!(
        output.status.success(),
        "{statement}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// One number from the test's database.
fn count(setup: &Setup, data: &Path, query: &str) -> i64 {
    sql(setup, data, query)[0][0].parse().unwrap()
}

/// A SoftHSM2 token of the test's own (in the tests' `SOFTHSM2_CONF`), deleted on drop: every
/// object in it belongs to this test, so the token can be compared with the store entire.
struct OwnToken {
    module: String,
    label: String,
}

const TOKEN_PIN: &str = "1234";

impl OwnToken {
    fn create() -> Option<Self> {
        let env = support::pkcs11_env()?;
        let module = env
            .iter()
            .find(|(k, _)| k == "EIDPORTAL_PKCS11_MODULE")
            .map(|(_, v)| v.clone())
            .unwrap();
        let label = format!("eidportal-crash-{}", std::process::id());
        let status = Command::new("softhsm2-util")
            .args([
                "--init-token",
                "--free",
                "--label",
                &label,
                "--pin",
                TOKEN_PIN,
                "--so-pin",
                "5678",
            ])
            .stdout(Stdio::null())
            .status();
        match status {
            Ok(status) if status.success() => Some(Self { module, label }),
            other if std::env::var_os("EIDPORTAL_TEST_REQUIRE_ALL").is_some() => {
                panic!("softhsm2-util --init-token failed ({other:?}); the SoftHSM2 crash case needs a token of its own")
            }
            other => {
                eprintln!("note: SoftHSM2 crash case skipped: softhsm2-util --init-token failed ({other:?})");
                None
            }
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("EIDPORTAL_PKCS11_MODULE".into(), self.module.clone()),
            ("EIDPORTAL_PKCS11_TOKEN".into(), self.label.clone()),
            ("EIDPORTAL_PKCS11_PIN".into(), TOKEN_PIN.into()),
        ]
    }

    /// Every object in the token, read by OpenSC's `pkcs11-tool`.
    fn objects(&self, dir: &Path) -> Vec<TokenObject> {
        let (ok, text) = support::run(
            "pkcs11-tool",
            &[
                "--module",
                &self.module,
                "--token-label",
                &self.label,
                "--login",
                "--pin",
                TOKEN_PIN,
                "--list-objects",
            ],
            dir,
        );
        assert!(ok, "pkcs11-tool --list-objects: {text}");
        let mut objects: Vec<TokenObject> = Vec::new();
        for line in text.lines() {
            if !line.starts_with(' ') {
                objects.push(TokenObject {
                    header: line.to_owned(),
                    label: String::new(),
                    id: String::new(),
                    fields: Vec::new(),
                });
            } else if let (Some(last), Some((name, value))) =
                (objects.last_mut(), line.trim().split_once(':'))
            {
                let value = value.trim().to_owned();
                match name.trim() {
                    "label" => last.label = value,
                    "ID" => last.id = value.to_lowercase(),
                    name => last.fields.push((name.to_owned(), value)),
                }
            }
        }
        objects
    }
}

/// An object as `pkcs11-tool --list-objects` shows it.
#[derive(Debug)]
struct TokenObject {
    /// e.g. `Private Key Object; EC`.
    header: String,
    label: String,
    /// CKA_ID in hex.
    id: String,
    fields: Vec<(String, String)>,
}

impl TokenObject {
    fn class(&self) -> &'static str {
        if self.header.starts_with("Private Key Object") {
            "private"
        } else if self.header.starts_with("Public Key Object") {
            "public"
        } else {
            "other"
        }
    }

    /// What SoftHSM2 leaves when killed inside `C_GenerateKeyPair`: it creates an object's
    /// file with default attributes first, writes the template (label, id) in a second step
    /// and the key itself (EC point or private value, with CKA_LOCAL) in a third, so a kill
    /// before the second leaves an object without label or id and without a key: no EC point
    /// or parameters, no modulus, not CKA_LOCAL (or, killed right after creating the file, an
    /// object without any attribute, which `pkcs11-tool` shows as an empty data object).
    /// Nothing can find it or sign with it, and nothing names whose it was.
    fn is_empty_shell(&self) -> bool {
        let field = |name: &str| {
            self.fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let empty = |value: &str| value.is_empty() || value == "<empty>";
        if self.header.starts_with("Data object") {
            return empty(&self.label) && self.fields.iter().all(|(_, value)| empty(value));
        }
        self.label.is_empty()
            && self.id.is_empty()
            && !field("Access").unwrap_or_default().contains("local")
            && ["EC_POINT", "EC_PARAMS", "Modulus"]
                .iter()
                .all(|name| field(name).is_none())
    }
}

impl Drop for OwnToken {
    fn drop(&mut self) {
        let _ = Command::new("softhsm2-util")
            .args(["--delete-token", "--token", &self.label])
            .stdout(Stdio::null())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_reported_done() {
    let mut setups = vec![(Setup::embedded(), None)];
    if let Some(url) = store::test_support::fresh_postgres().await {
        setups.push((
            Setup {
                env: vec![("EIDPORTAL_DATABASE_URL".into(), url)],
                name: "postgres+software".into(),
            },
            None,
        ));
    }
    if let Some(token) = OwnToken::create() {
        setups.push((
            Setup {
                env: token.env(),
                name: "sqlite+pkcs11".into(),
            },
            Some(token),
        ));
    }
    for (setup, token) in setups {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let name = &setup.name;
        let first = cli(&data, &setup, "http://127.0.0.1:8080", &["cert", "list"]);
        assert!(
            first.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&first.stderr)
        );

        let issued_reported: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut revoked_reported = BTreeSet::new();
        let mut kills = 0;
        for round in 0..ROUNDS {
            // A stream of issuances, each printed as soon as it is committed.
            let mut issuer = eidportal(
                &data,
                &setup,
                &[
                    "cert",
                    "issue",
                    "--given-name",
                    "Ана",
                    "--surname",
                    "Анић",
                    "--jmbg",
                    "0101990710008",
                    "--count",
                    "100000",
                    "--json",
                ],
            )
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
            let candidates: Vec<String> = issued_reported
                .lock()
                .unwrap()
                .iter()
                .rev()
                .take(3)
                .cloned()
                .collect();
            let mut revokers = Vec::new();
            for (i, serial) in candidates.iter().enumerate() {
                if revoked_reported.contains(serial) {
                    continue;
                }
                let child = eidportal(
                    &data,
                    &setup,
                    &["cert", "revoke", serial, "--reason", "superseded"],
                )
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
                revokers.push((serial.clone(), child, i == 0 && round % 2 == 1));
            }
            // A process on a token starts slower (it opens the CA keys in the token).
            let start = if token.is_some() { 700 } else { 250 };
            std::thread::sleep(Duration::from_millis(start + 97 * (round as u64 % 5)));
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

        let listed = cli(
            &data,
            &setup,
            "http://127.0.0.1:8080",
            &["cert", "list", "--json"],
        );
        assert!(listed.status.success());
        let listed: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
        let status: BTreeMap<String, String> = listed
            .iter()
            .map(|c| {
                (
                    c["serial"].as_str().unwrap().to_owned(),
                    c["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let reported = issued_reported.lock().unwrap().clone();
        assert!(
            reported.len() >= ROUNDS,
            "{name}: too few issuances to be meaningful: {}",
            reported.len()
        );
        for serial in &reported {
            let s = status.get(serial).map(String::as_str);
            assert!(
                matches!(s, Some("issued") | Some("revoked")),
                "{name}: reported issued {serial} is {s:?}"
            );
        }
        for serial in &revoked_reported {
            assert_eq!(
                status.get(serial).map(String::as_str),
                Some("revoked"),
                "{name}: reported revoked {serial}"
            );
        }
        // Each issuance is one transaction: its serial, key record and certificate commit
        // together, so a killed issuance leaves no serial behind.
        for (serial, s) in &status {
            assert!(
                matches!(s.as_str(), "issued" | "revoked"),
                "{name}: {serial} is {s}"
            );
        }

        // The CRL lists exactly the revoked certificates, and the audit chain is intact.
        let server = Server::start(&data, &setup, None);
        let crl = support::der_to_pem(
            dir.path(),
            &server.get("/pki/qualified-ca.crl"),
            "crl",
            "crl",
        );
        let (ok, text) = support::run(
            "openssl",
            &["crl", "-in", crl.to_str().unwrap(), "-noout", "-text"],
            dir.path(),
        );
        assert!(ok);
        let on_crl = text.matches("Serial Number:").count();
        let revoked = status.values().filter(|s| *s == "revoked").count();
        assert_eq!(
            on_crl, revoked,
            "{name}: CRL entries vs revoked certificates"
        );
        for serial in &revoked_reported {
            assert!(
                text.to_lowercase().contains(serial),
                "{name}: {serial} not on the CRL"
            );
        }
        let audit = server.cli_ok(&["audit", "verify"]);
        assert!(audit.contains("intact"), "{name}: {audit}");
        drop(server);

        // A token's key is recorded `generating` before the token makes it: a process killed
        // in between leaves that record (and maybe objects under its label). Two minutes later
        // the upkeep abandons the record and destroys the objects; here the records are aged
        // as the clock would age them, and the next start runs the upkeep.
        let generating = count(
            &setup,
            &data,
            "SELECT count(*) FROM keys WHERE state = 'generating'",
        );
        let destroying = count(
            &setup,
            &data,
            "SELECT count(*) FROM keys WHERE state = 'destroying'",
        );
        if token.is_some() {
            sql(
                &setup,
                &data,
                "UPDATE keys SET created_at = created_at - 3600 WHERE state = 'generating'",
            );
            let again = cli(&data, &setup, "http://127.0.0.1:8080", &["cert", "list"]);
            assert!(
                again.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&again.stderr)
            );
        } else {
            assert_eq!(
                (generating, destroying),
                (0, 0),
                "{name}: software keys are recorded with their certificate"
            );
        }
        // Neither a cloud key without its certificate record nor a cloud certificate without
        // its key record; an issued certificate's key is live, a revoked one's destroyed.
        for (what, query) in [
            ("keys left generating or destroying", "SELECT count(*) FROM keys WHERE state IN ('generating', 'destroying')"),
            (
                "keys without a certificate",
                "SELECT count(*) FROM keys k LEFT JOIN certificates c ON c.key_id = k.id \
                 WHERE k.label LIKE 'eidportal-cloud-%' AND k.state <> 'abandoned' AND c.serial IS NULL",
            ),
            (
                "cloud certificates without a key",
                "SELECT count(*) FROM certificates c LEFT JOIN keys k ON k.id = c.key_id \
                 WHERE c.kind = 'cloud_signing' AND k.id IS NULL",
            ),
            (
                "issued certificates whose key is not active, or revoked ones whose key is not destroyed",
                "SELECT count(*) FROM certificates c JOIN keys k ON k.id = c.key_id WHERE c.kind = 'cloud_signing' \
                 AND NOT ((c.status = 'issued' AND k.state = 'active') OR (c.status = 'revoked' AND k.state = 'destroyed'))",
            ),
        ] {
            assert_eq!(count(&setup, &data, query), 0, "{name}: {what}");
        }
        // The token holds exactly the live keys: every object has an active record with its
        // label and CKA_ID (the reference is `p11v1:` and the CKA_ID), and every active record
        // has its private and public key object.
        let (mut in_token, mut empty_shells) = (0, 0);
        if let Some(token) = &token {
            let hex_reference = if database_url(&setup).is_some() {
                "encode(reference, 'hex')"
            } else {
                "lower(hex(reference))"
            };
            let live: BTreeMap<String, String> =
                sql(&setup, &data, &format!("SELECT label, {hex_reference} FROM keys WHERE backend = 'pkcs11' AND state = 'active'"))
                    .into_iter()
                    .map(|row| (row[0].clone(), row[1].strip_prefix(&hex::encode("p11v1:")).unwrap().to_owned()))
                    .collect();
            let objects = token.objects(dir.path());
            let (shells, objects): (Vec<_>, Vec<_>) =
                objects.into_iter().partition(TokenObject::is_empty_shell);
            for object in &objects {
                assert_eq!(
                    live.get(&object.label),
                    Some(&object.id),
                    "{name}: an object in the token has no active key record: {object:?}"
                );
            }
            for (label, id) in &live {
                let mut classes: Vec<&str> = objects
                    .iter()
                    .filter(|o| &o.label == label && &o.id == id)
                    .map(TokenObject::class)
                    .collect();
                classes.sort_unstable();
                assert_eq!(
                    classes,
                    ["private", "public"],
                    "{name}: key objects of the record {label}"
                );
            }
            in_token = objects.len();
            empty_shells = shells.len();
        }
        let abandoned = count(
            &setup,
            &data,
            "SELECT count(*) FROM keys WHERE state = 'abandoned'",
        );
        eprintln!(
            "{name}: {} issued, {} revoked after {kills} kills; {generating} keys were left generating and {destroying} \
             destroying, {abandoned} abandoned by the upkeep; {in_token} key objects in the token (and {empty_shells} \
             empty object shells of SoftHSM2's interrupted writes)",
            reported.len(),
            revoked_reported.len()
        );
    }
}
