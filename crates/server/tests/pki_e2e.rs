//! The foundation as a relying party and an officer see it, checked with tools this project did
//! not write: `openssl verify`, `openssl crl -verify`, `openssl ocsp`, `pkcs11-tool`, pkilint.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{der_to_pem, run, Server, Setup};

const JMBG: &str = "0101990710008";

fn issue(server: &Server) -> String {
    let out = server.cli_ok(&[
        "cert",
        "issue",
        "--given-name",
        "Петар",
        "--surname",
        "Петровић",
        "--jmbg",
        JMBG,
        "--email",
        "petar@example.rs",
        "--json",
    ]);
    let value: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    value["serial"].as_str().unwrap().to_owned()
}

fn ocsp(server: &Server, dir: &Path, issuer: &Path, root: &Path, what: &[&str]) -> String {
    let url = format!("{}/ocsp", server.url);
    let mut args = vec![
        "ocsp",
        "-issuer",
        issuer.to_str().unwrap(),
        "-url",
        &url,
        "-CAfile",
        root.to_str().unwrap(),
    ];
    args.extend_from_slice(what);
    let (ok, text) = run("openssl", &args, dir);
    assert!(ok, "openssl ocsp failed: {text}");
    assert!(
        text.contains("Response verify OK"),
        "OCSP response not verified: {text}"
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_accepts_the_hierarchy_crls_and_ocsp_on_every_setup() {
    for setup in Setup::all().await {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let server = Server::start(&d.join("data"), &setup, None);
        let name = &setup.name;

        // 1. The CA certificates: both intermediates verify against the root.
        let root = der_to_pem(d, &server.get("/pki/root.crt"), "root", "x509");
        let qualified = der_to_pem(d, &server.get("/pki/qualified-ca.crt"), "qualified", "x509");
        let consentid = der_to_pem(d, &server.get("/pki/consentid-ca.crt"), "consentid", "x509");
        for ca in [&qualified, &consentid] {
            let (ok, text) = run(
                "openssl",
                &[
                    "verify",
                    "-CAfile",
                    root.to_str().unwrap(),
                    ca.to_str().unwrap(),
                ],
                d,
            );
            assert!(ok && text.contains(": OK"), "{name}: {text}");
            // Their status is on the root's CRL (validators require revocation data for
            // intermediates too), which they point to; no OCSP for them.
            let (ok, text) = run(
                "openssl",
                &[
                    "x509",
                    "-in",
                    ca.to_str().unwrap(),
                    "-noout",
                    "-ext",
                    "crlDistributionPoints,authorityInfoAccess",
                ],
                d,
            );
            assert!(
                ok && text.contains(&format!("URI:{}/pki/root.crl", server.url)),
                "{name}: {text}"
            );
            assert!(
                text.contains("CA Issuers - URI:") && !text.contains("OCSP - URI:"),
                "{name}: {text}"
            );
        }
        let response = server.request("GET", "/pki/root.crt", None, &[]);
        assert_eq!(
            response.header("content-type"),
            Some("application/pkix-cert")
        );
        // The root's CRL (ARL): signed by the root, empty while no intermediate is revoked.
        let response = server.request("GET", "/pki/root.crl", None, &[]);
        assert_eq!(
            (response.status, response.header("content-type")),
            (200, Some("application/pkix-crl")),
            "{name}"
        );
        let root_crl = der_to_pem(d, &response.body, "root-crl", "crl");
        let (ok, text) = run(
            "openssl",
            &[
                "crl",
                "-in",
                root_crl.to_str().unwrap(),
                "-CAfile",
                root.to_str().unwrap(),
                "-noout",
                "-verify",
                "-text",
            ],
            d,
        );
        assert!(
            ok && text.contains("verify OK") && text.contains("No Revoked Certificates"),
            "{name}: {text}"
        );

        // 2. An issued cloud certificate verifies to the root and is good.
        let serial = issue(&server);
        std::fs::write(d.join("leaf.pem"), server.cli_ok(&["cert", "pem", &serial])).unwrap();
        let leaf = d.join("leaf.pem");
        let (ok, text) = run(
            "openssl",
            &[
                "verify",
                "-CAfile",
                root.to_str().unwrap(),
                "-untrusted",
                qualified.to_str().unwrap(),
                leaf.to_str().unwrap(),
            ],
            d,
        );
        assert!(ok, "{name}: {text}");
        let text = ocsp(
            &server,
            d,
            &qualified,
            &root,
            &["-cert", leaf.to_str().unwrap()],
        );
        assert!(text.contains("leaf.pem: good"), "{name}: {text}");

        // 3. Revoked by the officer: OCSP says revoked with the reason, the CRL lists it.
        server.cli_ok(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        let text = loop {
            // The server notices a revocation made by another process within a second.
            let text = ocsp(
                &server,
                d,
                &qualified,
                &root,
                &["-cert", leaf.to_str().unwrap(), "-no_nonce"],
            );
            if text.contains("revoked") || Instant::now() > deadline {
                break text;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(
            text.contains("leaf.pem: revoked") && text.contains("Reason: keyCompromise"),
            "{name}: {text}"
        );
        let crl = der_to_pem(
            d,
            &server.get("/pki/qualified-ca.crl"),
            "qualified-crl",
            "crl",
        );
        let (ok, text) = run(
            "openssl",
            &[
                "crl",
                "-in",
                crl.to_str().unwrap(),
                "-CAfile",
                qualified.to_str().unwrap(),
                "-noout",
                "-verify",
                "-text",
            ],
            d,
        );
        assert!(ok && text.contains("verify OK"), "{name}: {text}");
        assert!(
            text.to_lowercase().contains(&serial),
            "{name}: the CRL does not list {serial}: {text}"
        );
        assert!(text.contains("Key Compromise"), "{name}: {text}");
        let consentid_crl = der_to_pem(
            d,
            &server.get("/pki/consentid-ca.crl"),
            "consentid-crl",
            "crl",
        );
        let (ok, text) = run(
            "openssl",
            &[
                "crl",
                "-in",
                consentid_crl.to_str().unwrap(),
                "-CAfile",
                consentid.to_str().unwrap(),
                "-noout",
                "-verify",
            ],
            d,
        );
        assert!(ok && text.contains("verify OK"), "{name}: {text}");

        // 4. A serial never issued is unknown.
        let text = ocsp(
            &server,
            d,
            &qualified,
            &root,
            &["-serial", "0x0123456789abcdef0123456789abcdef"],
        );
        assert!(text.contains(": unknown"), "{name}: {text}");

        // 5. A restart keeps the hierarchy.
        let root_before = std::fs::read(d.join("root.der")).unwrap();
        server.kill();
        let server = Server::start(&d.join("data"), &setup, None);
        assert_eq!(
            server.get("/pki/root.crt"),
            root_before,
            "{name}: the root changed across a restart"
        );
        let (ok, text) = (
            server.cli(&["audit", "verify"]).status.success(),
            server.cli_ok(&["audit", "verify"]),
        );
        assert!(ok && text.contains("intact"), "{name}: {text}");

        // 6. With PKCS#11: every CA key in the token, sensitive and never extractable, and no
        //    key material in the data folder.
        if setup.name.contains("pkcs11") {
            check_token(&setup, d);
        }
    }
}

fn check_token(setup: &Setup, dir: &Path) {
    let get = |k: &str| {
        setup
            .env
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let module = get("EIDPORTAL_PKCS11_MODULE");
    let token = get("EIDPORTAL_PKCS11_TOKEN");
    let pin = get("EIDPORTAL_PKCS11_PIN");
    let (ok, text) = run(
        "pkcs11-tool",
        &[
            "--module",
            &module,
            "--token-label",
            &token,
            "--login",
            "--pin",
            &pin,
            "--list-objects",
            "--type",
            "privkey",
        ],
        dir,
    );
    assert!(ok, "pkcs11-tool: {text}");
    for label in [
        "eidportal-ca-root",
        "eidportal-ca-qualified",
        "eidportal-ca-consentid",
    ] {
        let block = text
            .split("Private Key Object")
            .find(|b| {
                b.contains(&format!("label:      {label}"))
                    || b.contains(&format!("label: {label}"))
            })
            .unwrap_or_else(|| panic!("{label} is not in the token: {text}"));
        assert!(
            block.contains("sensitive") && block.contains("never extractable"),
            "{label}: {block}"
        );
    }
    let data = dir.join("data");
    assert!(
        !data.join("master.key").exists(),
        "a master key was written although keys live in the HSM"
    );
    for entry in std::fs::read_dir(&data).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        assert!(
            name.starts_with("eidportal.db"),
            "unexpected file in the data folder: {name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkilint_finds_no_error_in_what_the_engine_issues() {
    let Some(python) = support::python() else {
        return;
    };
    let bin = python.parent().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A public host name: pkilint rightly flags internal names such as 127.0.0.1 in URLs.
    let server = Server::start(
        &d.join("data"),
        &Setup::embedded(),
        Some("http://pki.eid.gov.rs"),
    );
    let serial = issue(&server);
    std::fs::write(d.join("leaf.pem"), server.cli_ok(&["cert", "pem", &serial])).unwrap();
    let root = der_to_pem(d, &server.get("/pki/root.crt"), "root", "x509");
    let qualified = der_to_pem(d, &server.get("/pki/qualified-ca.crt"), "qualified", "x509");
    let consentid = der_to_pem(d, &server.get("/pki/consentid-ca.crt"), "consentid", "x509");
    server.cli_ok(&["cert", "revoke", &serial, "--reason", "superseded"]);
    std::fs::write(d.join("qualified.crl"), server.get("/pki/qualified-ca.crl")).unwrap();
    std::fs::write(d.join("consentid.crl"), server.get("/pki/consentid-ca.crl")).unwrap();
    std::fs::write(d.join("root.crl"), server.get("/pki/root.crl")).unwrap();
    // An OCSP response, fetched with openssl.
    let url = format!("{}/ocsp", server.url);
    let (ok, text) = run(
        "openssl",
        &[
            "ocsp",
            "-issuer",
            qualified.to_str().unwrap(),
            "-serial",
            &format!("0x{serial}"),
            "-url",
            &url,
            "-respout",
            "resp.der",
            "-noverify",
        ],
        d,
    );
    assert!(ok, "{text}");

    let lint = |tool: &str, args: &[&str]| {
        let program = bin.join(tool);
        let mut all = vec!["lint", "-s", "ERROR"];
        all.extend_from_slice(args);
        let (_, text) = run(program.to_str().unwrap(), &all, d);
        assert!(
            text.trim().is_empty(),
            "{tool} {args:?} found errors:\n{text}"
        );
    };
    for ca in [&root, &qualified, &consentid] {
        lint("lint_pkix_cert", &[ca.to_str().unwrap()]);
    }
    lint(
        "lint_crl",
        &[
            "-t",
            "CRL",
            "-p",
            "PKIX",
            "--document-format",
            "DER",
            "qualified.crl",
        ],
    );
    lint(
        "lint_crl",
        &[
            "-t",
            "CRL",
            "-p",
            "PKIX",
            "--document-format",
            "DER",
            "consentid.crl",
        ],
    );
    lint(
        "lint_crl",
        &[
            "-t",
            "ARL",
            "-p",
            "PKIX",
            "--document-format",
            "DER",
            "root.crl",
        ],
    );
    lint(
        "lint_ocsp_response",
        &["--document-format", "DER", "resp.der"],
    );
    lint(
        "lint_etsi_cert",
        &["-t", "QCP-N-QSCD-NON-EIDAS-FINAL-CERTIFICATE", "leaf.pem"],
    );

    // An independent parser (Python `cryptography`) reads every field of the qualified profile.
    let script = r#"
import sys
from cryptography import x509
from cryptography.x509.oid import NameOID, ExtensionOID, ObjectIdentifier
c = x509.load_pem_x509_certificate(open(sys.argv[1], 'rb').read())
serial = c.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value
assert serial == 'PNORS-0101990710008', serial
ku = c.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE)
assert ku.critical and ku.value.content_commitment and not ku.value.digital_signature and not ku.value.key_cert_sign, ku
policies = [p.policy_identifier.dotted_string for p in c.extensions.get_extension_for_oid(ExtensionOID.CERTIFICATE_POLICIES).value]
assert '0.4.0.194112.1.2' in policies, policies
qc = c.extensions.get_extension_for_oid(ObjectIdentifier('1.3.6.1.5.5.7.1.3'))
assert not qc.critical
der = qc.value.value
for name, oid in [('QcCompliance', '060604008e460101'), ('QcSSCD', '060604008e460104'), ('QcType', '060604008e460106'),
                  ('esign', '060704008e46010601'), ('QcPDS', '060604008e460105'), ('semantics id', '06070400 8bec4901 01'.replace(' ', ''))]:
    assert bytes.fromhex(oid) in der, name
aia = [a.access_method.dotted_string for a in c.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value]
assert '1.3.6.1.5.5.7.48.1' in aia and '1.3.6.1.5.5.7.48.2' in aia, aia
c.extensions.get_extension_for_oid(ExtensionOID.CRL_DISTRIBUTION_POINTS)
years = (c.not_valid_after_utc - c.not_valid_before_utc).days / 365.2425
assert 4.99 < years < 5.01, years
print('qualified profile OK')
"#;
    let output = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(d.join("leaf.pem"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && text.contains("qualified profile OK"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ocsp_requests_get_ocsp_errors_or_4xx_never_5xx() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &Setup::embedded(), None);
    // A valid request for reference, then damaged forms of it.
    let (ok, text) = run(
        "openssl",
        &[
            "ocsp",
            "-issuer",
            der_to_pem(
                dir.path(),
                &server.get("/pki/qualified-ca.crt"),
                "q",
                "x509",
            )
            .to_str()
            .unwrap(),
            "-serial",
            "0x01",
            "-no_nonce",
            "-reqout",
            "req.der",
        ],
        dir.path(),
    );
    assert!(ok, "{text}");
    let valid = std::fs::read(dir.path().join("req.der")).unwrap();
    let mut random = vec![0u8; 300];
    for (i, b) in random.iter_mut().enumerate() {
        *b = (i * 7919 % 251) as u8;
    }
    // Unknown issuer: the same request with the issuer key hash changed.
    let mut unknown_issuer = valid.clone();
    let position = unknown_issuer.len() - 5;
    unknown_issuer[position - 10] ^= 0xff;
    let cases: Vec<(&str, Vec<u8>, &[u8])> = vec![
        ("empty", vec![], b"\x30\x03\x0a\x01\x01"),
        (
            "truncated",
            valid[..valid.len() / 2].to_vec(),
            b"\x30\x03\x0a\x01\x01",
        ),
        ("random", random.clone(), b"\x30\x03\x0a\x01\x01"),
        ("unknown issuer", unknown_issuer, b"\x30\x03\x0a\x01\x06"),
    ];
    for (what, body, expected) in &cases {
        let response = server.request("POST", "/ocsp", Some("application/ocsp-request"), body);
        assert_eq!(response.status, 200, "{what}");
        assert_eq!(
            response.body,
            expected.to_vec(),
            "{what}: expected an OCSP error status"
        );
        let encoded = base64_url(body);
        let response = server.request("GET", &format!("/ocsp/{encoded}"), None, &[]);
        assert!(response.status < 500, "GET {what}: {}", response.status);
    }
    let oversized = vec![0x30u8; 64 * 1024];
    let response = server.request(
        "POST",
        "/ocsp",
        Some("application/ocsp-request"),
        &oversized,
    );
    assert!(
        (400..500).contains(&response.status),
        "oversized POST: {}",
        response.status
    );
    let response = server.request("GET", &format!("/ocsp/{}", "A".repeat(40_000)), None, &[]);
    assert!(
        (200..500).contains(&response.status),
        "oversized GET: {}",
        response.status
    );
    for garbage in ["%%%", "not-base64!", "////", "AAAA"] {
        let response = server.request("GET", &format!("/ocsp/{garbage}"), None, &[]);
        assert!(response.status < 500, "GET {garbage}: {}", response.status);
    }
    // The valid request still works afterwards, over GET with RFC 5019 caching headers.
    let response = server.request("GET", &format!("/ocsp/{}", base64_url(&valid)), None, &[]);
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("application/ocsp-response")
    );
    assert!(
        response
            .header("cache-control")
            .is_some_and(|v| v.contains("max-age=")),
        "{:?}",
        response.headers
    );
    assert!(
        response.header("expires").is_some()
            && response.header("last-modified").is_some()
            && response.header("etag").is_some()
    );
}

/// Base64 then URL-encoding (RFC 6960 Appendix A.1).
fn base64_url(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode(data)
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

/// Recomputes the audit chain of `db` as plain SHA-256 hashes (the pre-key scheme, which
/// anyone can compute) from entry `from` on, after `change` (Python, on the SQLite file):
/// a rewrite by someone with database access but without the key.
const REWRITE: &str = r#"
import hashlib, sqlite3, sys
db, mode, arg = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = sqlite3.connect(db)
def plain(prev, seq, at, actor, event, details):
    h = hashlib.sha256()
    for f in [prev, str(seq), str(at), actor, event, details]:
        b = f.encode()
        h.update(len(b).to_bytes(8, "big")); h.update(b)
    return h.hexdigest()
if mode == "rewrite":
    c.execute("UPDATE audit_log SET details = ? WHERE seq = ?", ('{"rewritten":true}', arg))
    prev = c.execute("SELECT hash FROM audit_log WHERE seq = ?", (arg - 1,)).fetchone()[0]
    for seq, at, actor, event, details in c.execute("SELECT seq, at, actor, event, details FROM audit_log WHERE seq >= ? ORDER BY seq", (arg,)).fetchall():
        h = plain(prev, seq, at, actor, event, details)
        c.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, h, seq))
        prev = h
    c.execute("UPDATE audit_head SET seq = (SELECT MAX(seq) FROM audit_log), hash = ? WHERE id = 1", (prev,))
elif mode == "truncate":
    c.execute("DELETE FROM audit_log WHERE seq > ?", (arg,))
    c.execute("UPDATE audit_head SET seq = ?, hash = (SELECT hash FROM audit_log WHERE seq = ?) WHERE id = 1", (arg, arg))
elif mode == "backup":
    c.backup(sqlite3.connect(db + ".copy"))
elif mode == "restore":
    sqlite3.connect(db + ".copy").backup(c)
c.commit()
"#;

/// Finding 9: with SQL alone, an entry rewritten and the chain recomputed passed `audit
/// verify`; now the keyed part's MACs find it, and a log cut behind a checkpoint is found too.
#[test]
fn audit_verify_finds_a_chain_rewritten_without_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &Setup::embedded(), None);
    issue(&server);
    issue(&server);
    assert!(server.cli_ok(&["audit", "verify"]).contains("intact"));
    let written = server.cli_ok(&["audit", "checkpoint"]);
    assert!(written.contains("audit-checkpoints"), "{written}");
    let db = data.join("eidportal.db");
    let python = |mode: &str, arg: i64| {
        let (ok, text) = run(
            "python3",
            &["-c", REWRITE, db.to_str().unwrap(), mode, &arg.to_string()],
            dir.path(),
        );
        assert!(ok, "python3 {mode}: {text}");
    };
    let head = |server: &Server| -> i64 {
        let text = server.cli_ok(&["audit", "verify"]);
        text.split_whitespace()
            .find_map(|w| w.parse().ok())
            .unwrap()
    };
    let count = head(&server);
    python("backup", 0);

    // 1. The last entry rewritten, the plain chain recomputed.
    python("rewrite", count);
    let verify = server.cli(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&verify.stdout).to_string();
    assert!(!verify.status.success(), "a rewritten chain passed: {text}");
    assert!(
        text.contains("BROKEN") && text.contains(&format!("entry {count}")) && text.contains("MAC"),
        "{text}"
    );
    python("restore", 0);
    assert!(server.cli_ok(&["audit", "verify"]).contains("intact"));

    // 2. The log cut back before the checkpointed head.
    python("truncate", count - 2);
    let verify = server.cli(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&verify.stdout).to_string();
    assert!(
        !verify.status.success() && text.contains("removed"),
        "a cut log passed: {text}"
    );
}
