//! The qualified certificate in the cloud through the portal (the seed's steps 8-13), with the
//! real server and the `consentid` binary: issue after accepting the agreement, the renewal
//! window, revoke, revoke all, and one user's session never touching another's certificate.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{
    approved_action, consentid, der_to_pem, extract, log_in, logged_in, qualified_ocsp_status, run,
    Browser, Server, Setup, PIN,
};

fn page(browser: &mut Browser, path: &str) -> String {
    String::from_utf8_lossy(&browser.get(path).body).to_string()
}

fn post(browser: &mut Browser, from: &str, action: &str) -> (u16, String, Option<String>) {
    let csrf = Browser::csrf(&browser.get(from));
    let response = browser.post(action, &[("csrf", &csrf)]);
    (
        response.status,
        String::from_utf8_lossy(&response.body).to_string(),
        response.header("location").map(str::to_owned),
    )
}

/// The cloud certificates of `email` that the officer's register lists.
fn cloud_certificates_of(server: &Server, email: &str) -> usize {
    let listed = server.cli_ok(&["cert", "list", "--email", email, "--json"]);
    serde_json::from_str::<Vec<serde_json::Value>>(&listed)
        .unwrap()
        .into_iter()
        .filter(|c| c["kind"] == "cloud_signing")
        .count()
}

/// What the ConsentID app at `home` has pending (`consentid pending --json`), waiting up to 10 s
/// for something to arrive.
fn pending(home: &Path) -> Vec<serde_json::Value> {
    let (status, out, err) = consentid(home, &["pending", "--wait", "10", "--json"], "");
    assert_eq!(status, 0, "{out}{err}");
    serde_json::from_str(&out).unwrap()
}

fn current_serial(browser: &mut Browser) -> Option<String> {
    extract(
        &page(browser, "/services/cloud-certificate"),
        "<dd class=\"serial\">",
        "<",
    )
}

/// The certificate `serial`'s OCSP answer (`support::qualified_ocsp_status`), once `openssl
/// verify` accepted the certificate itself against the root and the qualified CA.
fn ocsp_status(server: &Server, dir: &Path, serial: &str) -> String {
    let text = qualified_ocsp_status(server, dir, serial);
    let (ok, verified) = run(
        "openssl",
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "qualified.pem",
            "leaf.pem",
        ],
        dir,
    );
    assert!(ok, "{verified}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_revoke_and_revoke_all_through_the_portal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(&d.join("data"), &Setup::embedded(), None);
    let home = d.join("phone");
    let mut browser = logged_in(&server, "petar@example.rs", &home);

    // Издај shows the agreement; Одустани changes nothing.
    let service = page(&mut browser, "/services/cloud-certificate");
    assert!(
        service.contains("Управљај квалификованим електронским сертификатом у клауду"),
        "{service}"
    );
    let (status, agreement, _) = post(
        &mut browser,
        "/services/cloud-certificate",
        "/services/cloud-certificate/issue",
    );
    assert_eq!(status, 200);
    for needle in [
        "УГОВОР О ПРУЖАЊУ УСЛУГЕ",
        "94/17 и 52/21",
        "Немањина 11",
        "110177886",
        "07020171",
        "Петар Петровић",
        "0101990710008",
        "Прихвати",
        "Одустани",
    ] {
        assert!(agreement.contains(needle), "the agreement lacks {needle}");
    }
    assert!(
        current_serial(&mut browser).is_none(),
        "Одустани (not accepting) must change nothing"
    );

    // Прихвати issues it.
    let (status, _, location) = approved_action(
        &mut browser,
        &home,
        "/services/cloud-certificate",
        "/services/cloud-certificate/agreement/accept",
    );
    assert_eq!(
        (status, location.as_deref()),
        (303, Some("/services/cloud-certificate?done=issued"))
    );
    let done = page(&mut browser, "/services/cloud-certificate?done=issued");
    assert!(
        done.contains("✓ Успешно је издат сертификат за потпис у клауду"),
        "{done}"
    );
    assert!(done.contains("Квалификовани електронски сертификат у клауду је активан."));
    let serial = current_serial(&mut browser).expect("the certificate's serial on the page");
    assert!(ocsp_status(&server, d, &serial).contains("leaf.pem: good"));
    // A second Издај is refused by the server, even when posted by hand.
    let (status, refused, _) = approved_action(
        &mut browser,
        &home,
        "/services/cloud-certificate",
        "/services/cloud-certificate/agreement/accept",
    );
    assert_eq!(status, 409, "{refused}");
    // Обнови is closed for a 5-year certificate, and refused by the server too.
    assert!(page(&mut browser, "/services/cloud-certificate").contains("Обнова је могућа од"));
    let (status, _, _) = approved_action(
        &mut browser,
        &home,
        "/services/cloud-certificate",
        "/services/cloud-certificate/renew",
    );
    assert_eq!(status, 409);

    // Another user's session cannot touch this certificate: every action acts on the session's
    // own account, and a crafted request names no one else's.
    let mut other = logged_in(&server, "ana@example.rs", &d.join("phone-b"));
    let (status, _, _) = approved_action(
        &mut other,
        &d.join("phone-b"),
        "/services/cloud-certificate",
        "/services/cloud-certificate/revoke/confirm",
    );
    assert_eq!(status, 409, "Ana has nothing to revoke");
    let (status, _, _) = approved_action(
        &mut other,
        &d.join("phone-b"),
        "/services/cloud-certificate",
        "/services/cloud-certificate/renew",
    );
    assert_eq!(status, 409);
    assert!(
        ocsp_status(&server, d, &serial).contains("leaf.pem: good"),
        "Petar's certificate untouched"
    );
    // Ana issues her own; Petar's stays his.
    let (status, _, _) = approved_action(
        &mut other,
        &d.join("phone-b"),
        "/services/cloud-certificate",
        "/services/cloud-certificate/agreement/accept",
    );
    assert_eq!(status, 303);
    assert_ne!(current_serial(&mut other), Some(serial.clone()));

    // Опозови: a confirmation, then revoked; ConsentID stays active.
    let (_, confirm, _) = post(
        &mut browser,
        "/services/cloud-certificate",
        "/services/cloud-certificate/revoke",
    );
    assert!(confirm.contains("Да, опозови"));
    let (status, _, location) = approved_action(
        &mut browser,
        &home,
        "/services/cloud-certificate",
        "/services/cloud-certificate/revoke/confirm",
    );
    assert_eq!(
        (status, location.as_deref()),
        (303, Some("/services/cloud-certificate?done=revoked"))
    );
    let text = ocsp_status(&server, d, &serial);
    assert!(text.contains("leaf.pem: revoked"), "{text}");
    let crl = der_to_pem(d, &server.get("/pki/qualified-ca.crl"), "crl", "crl");
    let (_, text) = run(
        "openssl",
        &["crl", "-in", crl.to_str().unwrap(), "-noout", "-text"],
        d,
    );
    assert!(text.to_lowercase().contains(&serial), "{text}");
    let (_, status_json, _) = consentid(&home, &["status", "--json"], "");
    assert!(
        status_json.contains("\"state\":\"active\""),
        "{status_json}"
    );

    // Опозови све сертификате: a new cloud certificate, then everything revoked; the app is
    // deactivated and a mobile login fails.
    let (status, _, _) = approved_action(
        &mut browser,
        &home,
        "/services/cloud-certificate",
        "/services/cloud-certificate/agreement/accept",
    );
    assert_eq!(status, 303);
    let second = current_serial(&mut browser).unwrap();
    let (_, confirm, _) = post(
        &mut browser,
        "/services/cloud-certificate",
        "/services/cloud-certificate/revoke-all",
    );
    assert!(
        confirm.contains("ConsentID више неће бити активна"),
        "{confirm}"
    );
    let (status, done, _) = approved_action(
        &mut browser,
        &home,
        "/services/cloud-certificate",
        "/services/cloud-certificate/revoke-all/confirm",
    );
    assert_eq!(status, 200);
    assert!(done.contains("Сви ваши сертификати су опозвани"), "{done}");
    assert!(ocsp_status(&server, d, &second).contains("leaf.pem: revoked"));
    let listed = server.cli_ok(&["cert", "list", "--email", "petar@example.rs", "--json"]);
    let devices: Vec<serde_json::Value> = serde_json::from_str::<Vec<serde_json::Value>>(&listed)
        .unwrap()
        .into_iter()
        .filter(|c| c["kind"] == "device")
        .collect();
    assert!(devices.iter().all(|d| d["status"] == "revoked"), "{listed}");
    let (_, status_json, _) = consentid(&home, &["status", "--json"], "");
    assert!(
        status_json.contains("\"state\":\"deactivated\""),
        "{status_json}"
    );
    assert!(
        page(&mut browser, "/account").contains("Пријавите се да бисте наставили"),
        "the session ended"
    );
    // Ana is untouched.
    assert!(current_serial(&mut other).is_some());
}

/// Issue 22: **Прихвати** issues nothing until the phone approves the operation that names it;
/// a denied approval issues nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issue_waits_for_the_phone_and_a_denial_issues_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(&d.join("data"), &Setup::embedded(), None);
    let home = d.join("phone");
    let mut browser = logged_in(&server, "vera@example.rs", &home);
    let cloud_certificates = || cloud_certificates_of(&server, "vera@example.rs");
    let accept = |browser: &mut Browser| {
        let (status, _, location) = post(
            browser,
            "/services/cloud-certificate",
            "/services/cloud-certificate/agreement/accept",
        );
        assert_eq!(status, 303);
        let location = location.unwrap();
        assert!(
            location.starts_with("/services/cloud-certificate/operations/"),
            "{location}"
        );
        location
    };

    // Прихвати: the portal waits for the phone, which is asked to approve an issue with the
    // agreement's number and fingerprint; nothing is issued meanwhile.
    let operation = accept(&mut browser);
    let waiting = page(&mut browser, &operation);
    assert!(
        waiting.contains("Потврдите у апликацији ConsentID"),
        "{waiting}"
    );
    assert!(waiting.contains("Уговор број"), "{waiting}");
    let requests = pending(&home);
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["kind"], "certificate");
    let shown = &requests[0]["certificate_operation"];
    assert_eq!(shown["operation"], "issue");
    assert_eq!(
        shown["title"],
        "Издавање квалификованог електронског сертификата у клауду"
    );
    let number = shown["agreement_number"].as_str().unwrap();
    assert!(
        waiting.contains(number),
        "the page names the agreement the phone shows"
    );
    assert_eq!(
        cloud_certificates(),
        0,
        "nothing issued before the approval"
    );

    // Denied on the phone: nothing issued, and the page says so.
    let txn = requests[0]["txn_id"].as_str().unwrap();
    let (status, out, err) = consentid(&home, &["deny", txn], "");
    assert_eq!(status, 0, "{out}{err}");
    let response = browser.get(&operation);
    let denied = String::from_utf8_lossy(&response.body).to_string();
    assert_eq!(response.status, 409, "{denied}");
    assert!(
        denied.contains("Захтев је одбијен у апликацији ConsentID"),
        "{denied}"
    );
    assert_eq!(cloud_certificates(), 0, "a denied approval issues nothing");

    // Approved: issued, once.
    let operation = accept(&mut browser);
    assert_eq!(cloud_certificates(), 0);
    let (status, out, err) = consentid(
        &home,
        &["approve", "--next", "--wait", "10", "--pin-stdin"],
        &format!("{PIN}\n"),
    );
    assert_eq!(status, 0, "{out}{err}");
    let response = browser.get(&operation);
    assert_eq!(
        (response.status, response.header("location")),
        (303, Some("/services/cloud-certificate?done=issued"))
    );
    assert_eq!(cloud_certificates(), 1);
    assert_eq!(browser.get(&operation).status, 303, "done once");
    assert_eq!(cloud_certificates(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_certificate_can_be_renewed_in_its_window() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        env: vec![("EIDPORTAL_CLOUD_CERT_VALIDITY_DAYS".into(), "20".into())],
        name: "20 days".into(),
    };
    let server = Server::start(&dir.path().join("data"), &setup, None);
    let mut browser = logged_in(&server, "mila@example.rs", &dir.path().join("phone"));
    let (status, _, _) = approved_action(
        &mut browser,
        &dir.path().join("phone"),
        "/services/cloud-certificate",
        "/services/cloud-certificate/agreement/accept",
    );
    assert_eq!(status, 303);
    let old = current_serial(&mut browser).unwrap();
    // Valid 20 days: inside the 30-day window from the start.
    let service = page(&mut browser, "/services/cloud-certificate");
    assert!(!service.contains("Обнова је могућа од"), "{service}");
    let (status, _, location) = approved_action(
        &mut browser,
        &dir.path().join("phone"),
        "/services/cloud-certificate",
        "/services/cloud-certificate/renew",
    );
    assert_eq!(
        (status, location.as_deref()),
        (303, Some("/services/cloud-certificate?done=renewed"))
    );
    let new = current_serial(&mut browser).unwrap();
    assert_ne!(new, old);
    let listed = server.cli_ok(&["cert", "list", "--email", "mila@example.rs", "--json"]);
    let certificates: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    let old_entry = certificates
        .iter()
        .find(|c| c["serial"] == old.as_str())
        .unwrap();
    assert_eq!(
        (
            old_entry["status"].as_str(),
            old_entry["revocation_reason"].as_str()
        ),
        (Some("revoked"), Some("superseded"))
    );
}

/// The PDF attached to an RFC 5322 message file, saved to `out` (Python's `email` module).
fn pdf_attachment(python: &Path, message: &Path, out: &Path) {
    let script = "import email,sys\n\
m=email.message_from_binary_file(open(sys.argv[1],'rb'))\n\
p=[x for x in m.walk() if x.get_content_type()=='application/pdf']\n\
open(sys.argv[2],'wb').write(p[0].get_payload(decode=True))\n";
    let output = std::process::Command::new(python)
        .args(["-c", script])
        .arg(message)
        .arg(out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "no PDF attachment in {}: {}",
        message.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn pdf_text(pdf: &Path) -> String {
    let (ok, text) = run(
        "pdftotext",
        &["-enc", "UTF-8", pdf.to_str().unwrap(), "-"],
        pdf.parent().unwrap(),
    );
    assert!(ok, "{text}");
    text
}

fn wait_for_file(dir: &Path) -> std::path::PathBuf {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(entry) = std::fs::read_dir(dir)
            .ok()
            .and_then(|mut d| d.find_map(|e| e.ok().filter(|e| e.path().is_file())))
        {
            return entry.path();
        }
        assert!(
            Instant::now() < deadline,
            "nothing arrived in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agreement_arrives_by_smtp_as_a_pdf_and_is_downloadable() {
    let Some(python) = support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A real SMTP server: aiosmtpd, delivering into a maildir.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let maildir = d.join("maildir");
    let mut smtp = std::process::Command::new(&python)
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ])
        .arg(&maildir)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "aiosmtpd did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let setup = Setup {
        env: vec![(
            "EIDPORTAL_SMTP_URL".into(),
            format!("smtp://127.0.0.1:{port}"),
        )],
        name: "smtp".into(),
    };
    let server = Server::start(&d.join("data"), &setup, None);
    let mut browser = logged_in(&server, "petar@example.rs", &d.join("phone"));
    let (status, _, _) = approved_action(
        &mut browser,
        &d.join("phone"),
        "/services/cloud-certificate",
        "/services/cloud-certificate/agreement/accept",
    );
    assert_eq!(status, 303);
    let message = wait_for_file(&maildir.join("new"));
    pdf_attachment(&python, &message, &d.join("agreement.pdf"));
    let text = pdf_text(&d.join("agreement.pdf"));
    assert!(
        text.contains("Петар Петровић")
            && text.contains("0101990710008")
            && text.contains("УГОВОР"),
        "{text}"
    );
    let _ = smtp.kill();
    let _ = smtp.wait();

    // Downloadable from the account; another user gets nothing.
    let service = page(&mut browser, "/services/cloud-certificate");
    let link = extract(
        &service,
        "href=\"/services/cloud-certificate/agreements/",
        "\"",
    )
    .expect("an agreement link");
    let path = format!("/services/cloud-certificate/agreements/{link}");
    let pdf = browser.get(&path);
    assert_eq!(pdf.header("content-type"), Some("application/pdf"));
    std::fs::write(d.join("download.pdf"), &pdf.body).unwrap();
    assert!(pdf_text(&d.join("download.pdf")).contains("0101990710008"));
    let mut other = logged_in(&server, "ana@example.rs", &d.join("phone-b"));
    assert_eq!(other.get(&path).status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtp_the_agreement_goes_to_the_outbox() {
    let Some(python) = support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(&d.join("data"), &Setup::embedded(), None);
    let mut browser = logged_in(&server, "petar@example.rs", &d.join("phone"));
    let (status, _, _) = approved_action(
        &mut browser,
        &d.join("phone"),
        "/services/cloud-certificate",
        "/services/cloud-certificate/agreement/accept",
    );
    assert_eq!(status, 303);
    let message = wait_for_file(&d.join("data/outbox"));
    assert_eq!(message.extension().and_then(|e| e.to_str()), Some("eml"));
    pdf_attachment(&python, &message, &d.join("agreement.pdf"));
    let text = pdf_text(&d.join("agreement.pdf"));
    assert!(
        text.contains("Петар Петровић") && text.contains("0101990710008"),
        "{text}"
    );
}

/// Finding 13: the agreement carries the JMBG, so a password (basic) session of the same
/// account must not download it; a ConsentID session still does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_session_cannot_download_an_agreement() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(&d.join("data"), &Setup::embedded(), None);
    let email = "petar@example.rs";
    let password = "duga lozinka 123";
    let args = [
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
    ];
    let out = server.cli_input(&args, &format!("{password}\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["activation_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let home = d.join("phone");
    support::activate(&server, &home, &code);
    let mut mobile = Browser::new(&server);
    assert_eq!(log_in(&mut mobile, email, &home), "/account");
    let (status, _, _) = approved_action(
        &mut mobile,
        &home,
        "/services/cloud-certificate",
        "/services/cloud-certificate/agreement/accept",
    );
    assert_eq!(status, 303);
    let link = extract(
        &page(&mut mobile, "/services/cloud-certificate"),
        "href=\"/services/cloud-certificate/agreements/",
        "\"",
    )
    .expect("an agreement link");
    let path = format!("/services/cloud-certificate/agreements/{link}");
    assert_eq!(
        mobile.get(&path).header("content-type"),
        Some("application/pdf")
    );

    // The same account, logged in with its password only.
    let mut basic = Browser::new(&server);
    let csrf = Browser::csrf(&basic.get("/login/password"));
    let login = basic.post(
        "/login/password",
        &[("csrf", &csrf), ("username", email), ("password", password)],
    );
    assert_eq!(login.header("location"), Some("/account"));
    let refused = basic.get(&path);
    assert_eq!(refused.status, 403);
    assert_ne!(refused.header("content-type"), Some("application/pdf"));
    let html = String::from_utf8_lossy(&refused.body).to_string();
    assert!(
        html.contains("ЈМБГ") && html.contains("/login/mobile") && !html.contains("0101990710008"),
        "{html}"
    );
}

/// A `[provider]` table in the settings file names another provider in the agreement (its PDF,
/// as pdftotext reads it) and in the certificates (issuer, policy and CPS, as openssl reads
/// them); the renewal window's setting gives the agreement's renewal words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_provider_and_renewal_window_reach_the_agreement_and_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let settings = d.join("eidportal.toml");
    std::fs::write(
        &settings,
        "renewal_window_days = 14\n\
         [provider]\n\
         name = \"Пример д.о.о.\"\n\
         address = \"Нови Сад, Булевар ослобођења 1\"\n\
         tax_id = \"123456789\"\n\
         registration_number = \"87654321\"\n\
         representative = \"Марко Марковић\"\n\
         qualified_policy_oid = \"1.3.6.1.4.1.99999.1.2.1\"\n\
         cps_url = \"https://example.rs/cps\"\n",
    )
    .unwrap();
    let setup = Setup {
        env: vec![(
            "EIDPORTAL_CONFIG".into(),
            settings.to_str().unwrap().to_owned(),
        )],
        name: "provider".into(),
    };
    let server = Server::start(&d.join("data"), &setup, None);
    let mut browser = logged_in(&server, "petar@example.rs", &d.join("phone"));
    let (status, _, _) = approved_action(
        &mut browser,
        &d.join("phone"),
        "/services/cloud-certificate",
        "/services/cloud-certificate/agreement/accept",
    );
    assert_eq!(status, 303);
    let service = page(&mut browser, "/services/cloud-certificate");
    let link = extract(
        &service,
        "href=\"/services/cloud-certificate/agreements/",
        "\"",
    )
    .expect("an agreement link");
    let pdf = browser.get(&format!("/services/cloud-certificate/agreements/{link}"));
    std::fs::write(d.join("agreement.pdf"), &pdf.body).unwrap();
    let text = pdf_text(&d.join("agreement.pdf"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for needle in [
        "Пример д.о.о., Нови Сад, Булевар ослобођења 1, ПИБ 123456789, матични број 87654321, коју заступа Марко Марковић",
        "у последњих 14 дана његовог важења",
        "Петар Петровић",
    ] {
        assert!(text.contains(needle), "{needle} not in: {text}");
    }
    for seed in ["Немањина", "110177886", "07020171", "30 дана"] {
        assert!(!text.contains(seed), "{seed} in: {text}");
    }

    let serial = current_serial(&mut browser).unwrap();
    std::fs::write(d.join("leaf.pem"), server.cli_ok(&["cert", "pem", &serial])).unwrap();
    let (ok, leaf) = run(
        "openssl",
        &[
            "x509",
            "-in",
            "leaf.pem",
            "-noout",
            "-text",
            "-nameopt",
            "oneline,-esc_msb",
        ],
        d,
    );
    assert!(ok, "{leaf}");
    for needle in [
        "Policy: 1.3.6.1.4.1.99999.1.2.1",
        "CPS: https://example.rs/cps",
        "organizationIdentifier = VATRS-123456789",
        "O = Пример д.о.о.",
    ] {
        assert!(leaf.contains(needle), "{needle} not in: {leaf}");
    }
    assert!(!leaf.contains("55016.1.2.1"), "{leaf}");
}

/// Issue 22 over HTTP, with the operator's GeoIP database: a browser on another network
/// (127.0.1.2) than the phone (127.0.0.1) logs in. The phone names where the browser is (its
/// city and country from the database, and its address), approves nothing until the citizen
/// says "I am at that computer", and the session that login gives issues nothing without an
/// approval of its own, which warns the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_on_another_network_is_named_by_its_place_and_issues_only_when_approved() {
    let Some(python) = support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let geoip = d.join("places.mmdb");
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let (made, out) = run(
        python.to_str().unwrap(),
        &[
            repository.join("scripts/e2e/geoip_db.py").to_str().unwrap(),
            geoip.to_str().unwrap(),
        ],
        d,
    );
    assert!(made, "{out}");
    let mut setup = Setup::embedded();
    setup.env.push((
        "EIDPORTAL_GEOIP_DATABASE".into(),
        geoip.to_str().unwrap().into(),
    ));
    let server = Server::start(&d.join("data"), &setup, None);
    let home = d.join("phone");
    // The phone (127.0.0.1) is activated; then a browser elsewhere logs in with its username.
    drop(logged_in(&server, "vera@example.rs", &home));
    let elsewhere = std::net::Ipv4Addr::new(127, 0, 1, 2);
    let mut browser = Browser::from_address(&server, elsewhere);
    let csrf = Browser::csrf(&browser.get("/login/mobile"));
    let started = browser.post(
        "/login/mobile",
        &[("csrf", &csrf), ("username", "vera@example.rs")],
    );
    let location = started.header("location").unwrap().to_owned();
    let waiting = page(&mut browser, &location);
    let code = extract(&waiting, "data-testid=\"verification-code\">", "<").unwrap();
    let place = "Београд, Србија (127.0.1.2)";
    let requests = pending(&home);
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["another_network"], place, "{requests:?}");

    // Without --at-computer the phone sends nothing (exit 7), and the browser still waits.
    let approve = |extra: &[&str]| {
        let mut args = vec!["approve", "--next", "--wait", "10", "--pin-stdin"];
        args.extend_from_slice(extra);
        consentid(&home, &args, &format!("{PIN}\n"))
    };
    let (status, out, err) = approve(&["--code", &code]);
    assert_eq!(status, 7, "{out}{err}");
    assert!(out.contains(place), "the warning names the place: {out}");
    let status_of = |browser: &mut Browser| page(browser, &format!("{location}/status"));
    assert!(status_of(&mut browser).contains("pending"));

    // "I am at that computer": the login completes.
    let (status, out, err) = approve(&["--code", &code, "--at-computer"]);
    assert_eq!(status, 0, "{out}{err}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !status_of(&mut browser).contains("approved") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let csrf = Browser::csrf(&browser.get(&location));
    let done = browser.post(&format!("{location}/complete"), &[("csrf", &csrf)]);
    assert_eq!(done.header("location"), Some("/account"));

    // That session's Прихвати waits for the phone, which warns again; nothing is issued first.
    let cloud_certificates = || cloud_certificates_of(&server, "vera@example.rs");
    let (status, _, operation) = post(
        &mut browser,
        "/services/cloud-certificate",
        "/services/cloud-certificate/agreement/accept",
    );
    assert_eq!(status, 303);
    let operation = operation.unwrap();
    let requests = pending(&home);
    assert_eq!(requests[0]["kind"], "certificate", "{requests:?}");
    assert_eq!(requests[0]["another_network"], place, "{requests:?}");
    let (status, out, err) = approve(&[]);
    assert_eq!(status, 7, "{out}{err}");
    assert_eq!(
        cloud_certificates(),
        0,
        "nothing issued before the approval"
    );
    let (status, out, err) = approve(&["--at-computer"]);
    assert_eq!(status, 0, "{out}{err}");
    let response = browser.get(&operation);
    assert_eq!(
        response.status,
        303,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(cloud_certificates(), 1, "issued once approved");
}

/// A GeoIP database that is missing or not a MaxMind DB stops `serve` with the file's name,
/// before anything is made; the officer's commands, which never read it, still work.
#[test]
fn serve_refuses_a_geoip_database_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("not-a-database.mmdb");
    std::fs::write(&bogus, b"GeoIP? no.").unwrap();
    let data = dir.path().join("data");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_eidportal"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("EIDPORTAL_DATA", &data)
        .env("EIDPORTAL_APP_LISTEN", "127.0.0.1:0")
        .env("EIDPORTAL_GEOIP_DATABASE", &bogus)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{err}");
    assert!(err.contains("EIDPORTAL_GEOIP_DATABASE"), "{err}");
    assert!(err.contains("not-a-database.mmdb"), "{err}");
    assert!(!data.exists(), "nothing is made before the refusal");
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_eidportal"))
        .args(["cert", "list", "--json"])
        .env("EIDPORTAL_DATA", &data)
        .env("EIDPORTAL_GEOIP_DATABASE", &bogus)
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
}
