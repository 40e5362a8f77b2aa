//! The time-stamping authority (`POST /tsa`, RFC 3161) as clients and validators see it,
//! checked with tools this project did not write: `openssl ts -verify`, `openssl verify
//! -purpose timestampsign`, `openssl ocsp`, pkilint and pyHanko (which fetches the revocation
//! data of the whole chain, the root's CRL included).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::{Path, PathBuf};

use support::{der_to_pem, run, Server, Setup};

/// POSTs a time-stamp query file; checks the HTTP side; writes the reply to `out`.
fn post_query(server: &Server, dir: &Path, query: &str, out: &str) -> Vec<u8> {
    let body = std::fs::read(dir.join(query)).unwrap();
    let response = server.request("POST", "/tsa", Some("application/timestamp-query"), &body);
    assert_eq!(response.status, 200);
    // Exactly this: pyHanko compares the whole header string.
    assert_eq!(
        response.header("content-type"),
        Some("application/timestamp-reply")
    );
    std::fs::write(dir.join(out), &response.body).unwrap();
    response.body
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    let (ok, text) = run("openssl", args, dir);
    assert!(ok, "openssl {args:?}: {text}");
    text
}

struct Pems {
    root: PathBuf,
    qualified: PathBuf,
    tsa: PathBuf,
    chain: PathBuf,
}

fn pems(server: &Server, dir: &Path) -> Pems {
    let root = der_to_pem(dir, &server.get("/pki/root.crt"), "root", "x509");
    let qualified = der_to_pem(
        dir,
        &server.get("/pki/qualified-ca.crt"),
        "qualified",
        "x509",
    );
    let response = server.request("GET", "/pki/tsa.crt", None, &[]);
    assert_eq!(
        (response.status, response.header("content-type")),
        (200, Some("application/pkix-cert"))
    );
    let tsa = der_to_pem(dir, &response.body, "tsa", "x509");
    let chain = dir.join("chain.pem");
    let text =
        std::fs::read_to_string(&tsa).unwrap() + &std::fs::read_to_string(&qualified).unwrap();
    std::fs::write(&chain, text).unwrap();
    Pems {
        root,
        qualified,
        tsa,
        chain,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_verifies_tokens_and_the_tsa_certificate_on_every_setup() {
    for setup in Setup::all().await {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let server = Server::start(&d.join("data"), &setup, None);
        let name = &setup.name;
        let p = pems(&server, d);
        let (root, chain) = (p.root.to_str().unwrap(), p.chain.to_str().unwrap());
        std::fs::write(d.join("data.txt"), "a document to time-stamp\n").unwrap();

        // 1. A query with a nonce asking for the certificates: the reply verifies against
        //    the query (imprint, nonce) and the chain to the root.
        openssl(
            d,
            &[
                "ts", "-query", "-data", "data.txt", "-sha256", "-cert", "-out", "q.tsq",
            ],
        );
        post_query(&server, d, "q.tsq", "r.tsr");
        let text = openssl(
            d,
            &[
                "ts",
                "-verify",
                "-queryfile",
                "q.tsq",
                "-in",
                "r.tsr",
                "-CAfile",
                root,
                "-untrusted",
                chain,
            ],
        );
        assert!(text.contains("Verification: OK"), "{name}: {text}");
        let text = openssl(d, &["ts", "-reply", "-in", "r.tsr", "-text"]);
        for expected in [
            "Status: Granted.",
            "Policy OID: 1.3.6.1.4.1.55016.1.3.1",
            "Accuracy: 0x01 seconds",
            "Ordering: no",
            "TSA: DirName:",
            "Nonce: 0x",
        ] {
            assert!(
                text.contains(expected),
                "{name}: `{expected}` missing from\n{text}"
            );
        }
        // The qualified-token statement: qcStatements { esi4-qtstStatement-1 }.
        let reply = std::fs::read(d.join("r.tsr")).unwrap();
        let statement = [
            0x30, 0x0b, 0x30, 0x09, 0x06, 0x07, 0x04, 0x00, 0x81, 0x97, 0x5e, 0x01, 0x01,
        ];
        assert!(
            reply.windows(statement.len()).any(|w| w == statement),
            "{name}: no esi4-qtstStatement-1"
        );

        // 2. SHA-512, no nonce, no certificates asked: verified against the data itself.
        openssl(
            d,
            &[
                "ts",
                "-query",
                "-data",
                "data.txt",
                "-sha512",
                "-no_nonce",
                "-out",
                "q2.tsq",
            ],
        );
        post_query(&server, d, "q2.tsq", "r2.tsr");
        let text = openssl(
            d,
            &[
                "ts",
                "-verify",
                "-data",
                "data.txt",
                "-in",
                "r2.tsr",
                "-CAfile",
                root,
                "-untrusted",
                chain,
            ],
        );
        assert!(text.contains("Verification: OK"), "{name}: {text}");
        // ... and not against other data.
        std::fs::write(d.join("other.txt"), "another document\n").unwrap();
        let (ok, text) = run(
            "openssl",
            &[
                "ts",
                "-verify",
                "-data",
                "other.txt",
                "-in",
                "r2.tsr",
                "-CAfile",
                root,
                "-untrusted",
                chain,
            ],
            d,
        );
        assert!(!ok && !text.contains("Verification: OK"), "{name}: {text}");

        // 3. The TSA certificate chains to the root for the time-stamping purpose (critical
        //    EKU with only id-kp-timeStamping) and is good by OCSP.
        let (tsa, qualified) = (p.tsa.to_str().unwrap(), p.qualified.to_str().unwrap());
        let text = openssl(
            d,
            &[
                "verify",
                "-purpose",
                "timestampsign",
                "-CAfile",
                root,
                "-untrusted",
                qualified,
                tsa,
            ],
        );
        assert!(text.contains(": OK"), "{name}: {text}");
        let text = openssl(d, &["x509", "-in", tsa, "-noout", "-text"]);
        let eku = text
            .split("X509v3 Extended Key Usage: critical")
            .nth(1)
            .unwrap_or_else(|| panic!("{name}: {text}"));
        assert!(
            eku.lines()
                .nth(1)
                .is_some_and(|l| l.trim() == "Time Stamping"),
            "{name}: {text}"
        );
        assert!(text.contains("CN = eID Portal TSA"), "{name}: {text}");
        let url = format!("{}/ocsp", server.url);
        let text = openssl(
            d,
            &[
                "ocsp", "-issuer", qualified, "-cert", tsa, "-url", &url, "-CAfile", root,
            ],
        );
        assert!(
            text.contains("Response verify OK") && text.contains("tsa.pem: good"),
            "{name}: {text}"
        );

        // 4. Garbage gets a rejection (status 2, badDataFormat) with 200 and the reply type.
        std::fs::write(d.join("garbage.tsq"), b"\x30\x03\x02\x01\x01 and then some").unwrap();
        let body = post_query(&server, d, "garbage.tsq", "garbage.tsr");
        let read = pki::tsa::read_response(&body).unwrap();
        assert_eq!(
            (read.status, read.failure),
            (2, Some(pki::tsa::FailureInfo::BadDataFormat)),
            "{name}"
        );
        let text = openssl(d, &["ts", "-reply", "-in", "garbage.tsr", "-text"]);
        assert!(
            text.contains("Status: Rejected")
                && text.contains("the data submitted has the wrong format"),
            "{name}: {text}"
        );

        // 5. Another media type, or none, is refused before parsing.
        let query = std::fs::read(d.join("q.tsq")).unwrap();
        for content_type in [Some("application/ocsp-request"), Some("text/plain"), None] {
            let response = server.request("POST", "/tsa", content_type, &query);
            assert_eq!(response.status, 415, "{name}: {content_type:?}");
        }
        let response = server.request(
            "POST",
            "/tsa",
            Some("application/timestamp-query"),
            &vec![0x30; 65 * 1024],
        );
        assert_eq!(response.status, 413, "{name}: oversized");

        // 6. The officer sees the certificate; the audit log holds one entry per token.
        let list = server.cli_ok(&["cert", "list"]);
        assert_eq!(
            list.lines()
                .filter(|l| l.contains(" timestamping ") && l.contains(" issued "))
                .count(),
            1,
            "{name}: {list}"
        );
        let text = server.cli_ok(&["audit", "verify"]);
        assert!(text.contains("intact"), "{name}: {text}");

        // 7. With PKCS#11 the TSA key is in the token, sensitive and never extractable.
        if setup.name.contains("pkcs11") {
            check_tsa_key_in_token(&setup, d);
        }
    }
}

fn check_tsa_key_in_token(setup: &Setup, dir: &Path) {
    let get = |k: &str| {
        setup
            .env
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let (module, token, pin) = (
        get("EIDPORTAL_PKCS11_MODULE"),
        get("EIDPORTAL_PKCS11_TOKEN"),
        get("EIDPORTAL_PKCS11_PIN"),
    );
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
    let block = text
        .split("Private Key Object")
        .find(|b| {
            b.lines().any(|l| {
                l.trim()
                    .strip_prefix("label:")
                    .is_some_and(|label| label.trim().starts_with("eidportal-tsa-"))
            })
        })
        .unwrap_or_else(|| panic!("eidportal-tsa is not in the token: {text}"));
    assert!(
        block.contains("sensitive") && block.contains("never extractable"),
        "{block}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkilint_and_pyhanko_accept_the_tsa() {
    let Some(python) = support::python() else {
        return;
    };
    let bin = python.parent().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // pkilint, with a public host name in the URLs (it rightly flags 127.0.0.1).
    let server = Server::start(
        &d.join("data"),
        &Setup::embedded(),
        Some("http://pki.eid.gov.rs"),
    );
    let p = pems(&server, d);
    let (_, text) = run(
        bin.join("lint_pkix_cert").to_str().unwrap(),
        &["lint", "-s", "ERROR", p.tsa.to_str().unwrap()],
        d,
    );
    assert!(
        text.trim().is_empty(),
        "lint_pkix_cert found errors in the TSA certificate:\n{text}"
    );
    server.kill();

    // pyHanko's own TSA client fetches a token (exact content type, nonce echoed), then
    // validates it requiring revocation data for every certificate but the root: OCSP for the
    // TSA certificate, the root's CRL for the qualified CA, both fetched from this server.
    let server = Server::start(&d.join("data2"), &Setup::embedded(), None);
    pems(&server, d);
    let script = r#"
import asyncio, hashlib, sys
from asn1crypto import x509
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko.sign.validation.status import TimestampSignatureStatus
from pyhanko_certvalidator import ValidationContext

url, root_path = sys.argv[1], sys.argv[2]
root = x509.Certificate.load(open(root_path, 'rb').read())
data = b'eidportal time-stamp'

async def main():
    token = await HTTPTimeStamper(url).async_timestamp(hashlib.sha256(data).digest(), 'sha256')
    context = ValidationContext(trust_roots=[root], allow_fetching=True, revocation_mode='require')
    kwargs = await validate_tst_signed_data(token['content'], context, lambda algorithm: hashlib.new(algorithm, data).digest())
    status = TimestampSignatureStatus(**kwargs)
    print(status.summary())
    assert status.intact and status.valid and status.trusted, status
    print('pyhanko: token OK')

asyncio.run(main())
"#;
    let root_der = d.join("root.der");
    let output = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(format!("{}/tsa", server.url))
        .arg(&root_der)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && text.contains("pyhanko: token OK"),
        "{text}"
    );
    println!("{text}");
}

/// Finding 7: `POST /tsa` costs a signature, an audit row and an fsync, and had no limit. A
/// burst from one address beyond the per-address limit now gets 429 with Retry-After.
#[test]
fn a_burst_of_time_stamp_requests_gets_429() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &Setup::embedded(), None);
    let query = pki::tsa::request(pki::tsa::ImprintHash::Sha256, &[7; 32], None).unwrap();
    let statuses: Vec<(u16, Option<String>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..6)
            .map(|_| {
                scope.spawn(|| {
                    (0..20)
                        .map(|_| {
                            let response = server.request(
                                "POST",
                                "/tsa",
                                Some("application/timestamp-query"),
                                &query,
                            );
                            (
                                response.status,
                                response.header("retry-after").map(str::to_owned),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let granted = statuses.iter().filter(|(s, _)| *s == 200).count();
    let limited: Vec<_> = statuses.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!(
        granted + limited.len(),
        statuses.len(),
        "only 200 or 429: {statuses:?}"
    );
    assert!(!limited.is_empty(), "120 requests at once were all granted");
    assert!(
        limited
            .iter()
            .all(|(_, retry)| retry.as_deref() == Some("1")),
        "{limited:?}"
    );
    assert!(granted >= 1, "none granted");
}
