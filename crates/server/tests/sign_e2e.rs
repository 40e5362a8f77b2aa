//! **Потписивање документа** in the portal with the real server and the `consentid` binary as the
//! phone: a PDF signed at PAdES-B-B, B-T (our TSA) and B-LT (validation data in the DSS), each
//! validated by pyHanko with revocation checks and by poppler's pdfsig, the B-LT one also with
//! the server stopped (from its DSS alone); and uploads that are not signable PDFs refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{consentid, der_to_pem, extract, logged_in, run, Browser, Server, Setup, PIN};

/// A PDF to sign: an agreement as the portal makes them (crates/pdf, embedded DejaVu Sans).
fn document(text: &str) -> Vec<u8> {
    pdf::agreement_pdf(
        text,
        &[format!("Документ за потписивање: {text}.")],
        "eidportal",
    )
    .unwrap()
}

fn text(response: &support::HttpResponse) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

/// Uploads `files` at `level`; the response.
fn upload(browser: &mut Browser, level: &str, files: &[(&str, &[u8])]) -> support::HttpResponse {
    let form = browser.get("/services/sign");
    let csrf = Browser::csrf(&form);
    let files: Vec<(&str, &str, &[u8])> = files
        .iter()
        .map(|(name, bytes)| ("documents", *name, *bytes))
        .collect();
    browser.post_multipart(
        "/services/sign",
        &[("csrf", &csrf), ("level", level)],
        &files,
    )
}

/// Uploads one PDF, approves on the phone, waits for the job page to offer the download;
/// returns the signed PDF.
fn sign_in_portal(browser: &mut Browser, home: &Path, level: &str, name: &str) -> Vec<u8> {
    sign_job_in_portal(browser, home, level, name).1
}

/// [`sign_in_portal`], with the job page's path.
fn sign_job_in_portal(
    browser: &mut Browser,
    home: &Path,
    level: &str,
    name: &str,
) -> (String, Vec<u8>) {
    let response = upload(
        browser,
        level,
        &[(name, &document(&format!("eidportal {level}")))],
    );
    assert_eq!(response.status, 303, "{level}: {}", text(&response));
    let job = response.header("location").unwrap().to_owned();
    let page = text(&browser.get(&job));
    assert!(
        page.contains("Одобрите потпис у апликацији ConsentID") && page.contains(name),
        "{page}"
    );
    let fingerprint = extract(&page, "<code>", "</code>").unwrap();
    let (status, out, err) = consentid(
        home,
        &["approve", "--next", "--wait", "10", "--pin-stdin"],
        &format!("{PIN}\n"),
    );
    assert_eq!(status, 0, "{out}{err}");
    // The phone showed the document's name and the same fingerprint as the page.
    assert!(
        out.contains(name) && out.contains(&fingerprint),
        "{out} / {fingerprint}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = text(&browser.get(&job));
        if page.contains("Документи су потписани") {
            let link = format!("{job}/0");
            assert!(
                page.contains(&format!("<a href=\"{link}\" data-testid=\"download\">")),
                "{page}"
            );
            let response = browser.get(&link);
            assert_eq!(response.status, 200);
            assert_eq!(response.header("content-type"), Some("application/pdf"));
            return (job, response.body);
        }
        assert!(Instant::now() < deadline, "{level}: not signed: {page}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_signatures_at_b_b_b_t_and_b_lt_validate_with_pyhanko_and_pdfsig() {
    let Some(python) = support::python() else {
        return;
    };
    let pyhanko = python.with_file_name("pyhanko");
    for setup in Setup::all().await {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let server = Server::start(&d.join("data"), &setup, None);
        let home = d.join("phone");
        let mut browser = logged_in(&server, "petar@example.rs", &home);
        server.cli_ok(&[
            "cert",
            "issue",
            "--email",
            "petar@example.rs",
            "--given-name",
            "Петар",
            "--surname",
            "Петровић",
            "--jmbg",
            "0101990710008",
        ]);
        let root = der_to_pem(d, &server.get("/pki/root.crt"), "root", "x509");
        let nss = format!("sql:{}", d.join("nss").display());
        std::fs::create_dir_all(d.join("nss")).unwrap();
        assert!(run("certutil", &["-N", "-d", &nss, "--empty-password"], d).0);
        assert!(
            run(
                "certutil",
                &[
                    "-A",
                    "-d",
                    &nss,
                    "-n",
                    "root",
                    "-t",
                    "CT,C,C",
                    "-i",
                    root.to_str().unwrap()
                ],
                d
            )
            .0
        );
        for level in ["b-b", "b-t", "b-lt"] {
            let signed = sign_in_portal(&mut browser, &home, level, &format!("ugovor-{level}.pdf"));
            let file = format!("signed-{level}.pdf");
            std::fs::write(d.join(&file), &signed).unwrap();
            let (ok, out) = run(
                pyhanko.to_str().unwrap(),
                &[
                    "sign",
                    "validate",
                    "--trust",
                    root.to_str().unwrap(),
                    "--trust-replace",
                    "--force-revinfo",
                    &file,
                ],
                d,
            );
            assert!(
                ok && out.contains("INTACT:TRUSTED"),
                "{} {level}: pyhanko sign validate: {out}",
                setup.name
            );
            if level != "b-b" {
                assert!(
                    out.contains("TIMESTAMP_TOKEN<INTACT:TRUSTED>"),
                    "{} {level}: the signature timestamp: {out}",
                    setup.name
                );
            }
            let (_, out) = run("pdfsig", &["-nssdir", &nss, &file], d);
            assert!(
                out.contains("Signature is Valid") && out.contains("Certificate is Trusted"),
                "{} {level}: pdfsig: {out}",
                setup.name
            );
            let (ok, out) = run("qpdf", &["--check", &file], d);
            assert!(ok, "{} {level}: qpdf --check: {out}", setup.name);
        }
        // B-LT validates from its own DSS, with the server (OCSP responder, CRLs) gone.
        server.kill();
        let (ok, out) = run(
            pyhanko.to_str().unwrap(),
            &[
                "sign",
                "adesverify",
                "--trust",
                root.to_str().unwrap(),
                "--trust-replace",
                "signed-b-lt.pdf",
            ],
            d,
        );
        assert!(ok, "{}: pyhanko sign adesverify offline: {out}", setup.name);
        let (ok, out) = run(
            pyhanko.to_str().unwrap(),
            &[
                "sign",
                "adesverify",
                "--trust",
                root.to_str().unwrap(),
                "--trust-replace",
                "signed-b-b.pdf",
            ],
            d,
        );
        assert!(
            !ok,
            "{}: a B-B signature must not validate offline without revocation data: {out}",
            setup.name
        );
    }
}

#[test]
fn uploads_that_are_not_signable_pdfs_are_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &Setup::embedded(), None);
    let home = dir.path().join("phone");
    let mut browser = logged_in(&server, "petar@example.rs", &home);
    // Without a cloud certificate there is nothing to sign with.
    let response = upload(&mut browser, "b-b", &[("a.pdf", &document("a"))]);
    assert!(
        text(&response).contains("Немате активан квалификовани електронски сертификат у клауду"),
        "{}",
        text(&response)
    );
    server.cli_ok(&[
        "cert",
        "issue",
        "--email",
        "petar@example.rs",
        "--given-name",
        "Петар",
        "--surname",
        "Петровић",
        "--jmbg",
        "0101990710008",
    ]);

    let refused = |browser: &mut Browser, files: &[(&str, &[u8])], status: u16, words: &str| {
        let response = upload(browser, "b-lt", files);
        let page = text(&response);
        assert_eq!(response.status, status, "{page}");
        assert!(page.contains(words), "expected “{words}” in {page}");
    };
    refused(
        &mut browser,
        &[("notes.txt", b"just some text, not a PDF")],
        422,
        "Датотека „notes.txt” није PDF документ.",
    );
    let mut corrupt = document("x");
    corrupt.truncate(corrupt.len() / 2);
    refused(
        &mut browser,
        &[("broken.pdf", &corrupt)],
        422,
        "Документ „broken.pdf” је оштећен",
    );
    refused(
        &mut browser,
        &[(
            "random.pdf",
            &b"%PDF-1.7\n\x00\x01\x02 garbage without objects".repeat(3),
        )],
        422,
        "је оштећен",
    );
    let big = vec![b'x'; 11 * 1024 * 1024];
    refused(
        &mut browser,
        &[("big.pdf", &big)],
        422,
        "Документ „big.pdf” је већи од 10 MB.",
    );
    let huge = vec![b'x'; 21 * 1024 * 1024];
    refused(
        &mut browser,
        &[("huge.pdf", &huge)],
        413,
        "Послати документи су превелики",
    );
    refused(&mut browser, &[], 422, "Изаберите бар један PDF документ.");
    // Nothing was stored or asked for.
    let (_, pending, _) = consentid(&home, &["pending", "--json"], "");
    assert_eq!(pending.trim(), "[]", "no request reached the phone");
    // A form without the session's CSRF token is refused.
    let response = browser.post_multipart(
        "/services/sign",
        &[("csrf", "forged"), ("level", "b-b")],
        &[("documents", "a.pdf", &document("a"))],
    );
    assert_eq!(response.status, 403);
    // Another user cannot see or download a job.
    let response = upload(&mut browser, "b-b", &[("mine.pdf", &document("mine"))]);
    let job = response.header("location").unwrap().to_owned();
    let mut other = logged_in(&server, "ana@example.rs", &dir.path().join("phone-b"));
    assert_eq!(other.get(&job).status, 404);
    assert_eq!(other.get(&format!("{job}/0")).status, 404);
}

/// Starts a 50 MB multipart upload whose first part is `csrf`, sends only its first 1 MB, and
/// returns the status the server answers with meanwhile (0 if none came within 20 s).
fn answer_before_the_body(browser: &Browser, csrf: &str) -> u16 {
    use std::io::{Read, Write};
    let boundary = "----eidportal-test-boundary-slow";
    let declared = 50 * 1024 * 1024;
    let mut stream = std::net::TcpStream::connect(browser.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let head = format!(
        "POST /services/sign HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {declared}\r\n\r\n",
        browser.addr(),
        browser.cookie_header()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let start = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"documents\"; filename=\"big.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
    );
    stream.write_all(start.as_bytes()).unwrap();
    // A server may close while we write: what matters is its answer.
    let _ = stream.write_all(&vec![b'x'; 1024 * 1024]);
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buffer) {
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buffer[..n]);
        if raw.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let line = String::from_utf8_lossy(&raw)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Finding 7: `/services/sign` checks CSRF and the ConsentID level before it reads the body:
/// a forged post, and a password session's post, are answered while the client is still
/// sending (49 of the 50 MB never sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_refused_before_their_body_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &Setup::embedded(), None);
    let browser = logged_in(&server, "petar@example.rs", &dir.path().join("phone"));
    assert_eq!(answer_before_the_body(&browser, "forged"), 403);
    // A password (basic) session with its own valid CSRF token.
    let email = "jovana@example.rs";
    let args = [
        "user",
        "add",
        "--email",
        email,
        "--given-name",
        "Јована",
        "--surname",
        "Јовић",
        "--jmbg",
        "0101990710008",
        "--password-stdin",
    ];
    assert!(server
        .cli_input(&args, "duga lozinka 123\n")
        .status
        .success());
    let mut basic = Browser::new(&server);
    let csrf = Browser::csrf(&basic.get("/login/password"));
    let login = basic.post(
        "/login/password",
        &[
            ("csrf", &csrf),
            ("username", email),
            ("password", "duga lozinka 123"),
        ],
    );
    assert_eq!(login.header("location"), Some("/account"));
    let csrf = Browser::csrf(&basic.get("/services/sign"));
    assert_eq!(answer_before_the_body(&basic, &csrf), 403);
    // Nothing reached a phone.
    let (_, pending, _) = consentid(&dir.path().join("phone"), &["pending", "--json"], "");
    assert_eq!(pending.trim(), "[]");
}

/// Issue 22: a job's page and its signed documents open only to a ConsentID session. The job's
/// owner, logged in with the password (basic level) and knowing the job's address, gets 403 and
/// the refusal in the portal's language for both; the ConsentID session gets the PDF.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_documents_open_only_to_a_consentid_session() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(&d.join("data"), &Setup::embedded(), None);
    let email = "petar@example.rs";
    let password = "duga lozinka 123";
    let out = server.cli_input(
        &[
            "user",
            "add",
            "--email",
            email,
            "--given-name",
            "Петар",
            "--surname",
            "Петровић",
            "--jmbg",
            "0101990710008",
            "--password-stdin",
            "--json",
        ],
        &format!("{password}\n"),
    );
    assert!(out.status.success(), "{out:?}");
    let code = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["activation_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let home = d.join("phone");
    support::activate(&server, &home, &code);
    let mut strong = Browser::new(&server);
    assert_eq!(support::log_in(&mut strong, email, &home), "/account");
    server.cli_ok(&[
        "cert",
        "issue",
        "--email",
        email,
        "--given-name",
        "Петар",
        "--surname",
        "Петровић",
        "--jmbg",
        "0101990710008",
    ]);
    // The ConsentID session signs and downloads.
    let (job, signed) = sign_job_in_portal(&mut strong, &home, "b-b", "ugovor.pdf");
    assert!(signed.starts_with(b"%PDF-"));
    let download = format!("{job}/0");
    assert_eq!(strong.get(&download).status, 200);

    // The same owner with the password: neither the job's page nor its document.
    let mut basic = Browser::new(&server);
    let csrf = Browser::csrf(&basic.get("/login/password"));
    let login = basic.post(
        "/login/password",
        &[("csrf", &csrf), ("username", email), ("password", password)],
    );
    assert_eq!(login.header("location"), Some("/account"));
    for path in [&job, &download] {
        let response = basic.get(path);
        assert_eq!(response.status, 403, "{path}: {}", text(&response));
        assert_ne!(response.header("content-type"), Some("application/pdf"));
        let page = text(&response);
        assert!(
            page.contains("Пријава лозинком није довољна") && page.contains("/login/mobile"),
            "{path}: {page}"
        );
        assert!(
            !page.contains("ugovor"),
            "{path}: the page names the document: {page}"
        );
    }
}
