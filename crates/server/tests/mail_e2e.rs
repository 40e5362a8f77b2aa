//! Mail through a real SMTP server (aiosmtpd): a mail queued while the relay is down waits in
//! the outbox table, is retried and delivered once the relay is up; one that exhausts its
//! attempts is `failed` and the account page says so; STARTTLS with a private CA and a login.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use support::{approved_action, logged_in, Browser, Server, Setup};

/// aiosmtpd delivering into `maildir`; with `tls`, STARTTLS is required and, with `login`,
/// AUTH too (only that user and password).
const SMTP_SERVER: &str = r#"
import ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult
port, maildir, cert, key, user, password = sys.argv[1:7]
kwargs = {}
if cert:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    kwargs.update(require_starttls=True, tls_context=context)
if user:
    def check(server, session, envelope, mechanism, data):
        ok = data.login == user.encode() and data.password == password.encode()
        return AuthResult(success=ok)
    kwargs.update(authenticator=check, auth_required=True)
controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=int(port), **kwargs)
controller.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn smtp_server(
    python: &Path,
    port: u16,
    maildir: &Path,
    tls: Option<(&Path, &Path)>,
    login: Option<(&str, &str)>,
) -> Child {
    let (cert, key) = tls.map_or((String::new(), String::new()), |(c, k)| {
        (c.display().to_string(), k.display().to_string())
    });
    let (user, password) = login.unwrap_or(("", ""));
    let child = Command::new(python)
        .args(["-c", SMTP_SERVER, &port.to_string()])
        .arg(maildir)
        .args([&cert, &key, user, password])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "aiosmtpd did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

fn page(browser: &mut Browser, path: &str) -> String {
    String::from_utf8_lossy(&browser.get(path).body).to_string()
}

/// Accepts the agreement and approves the issue in ConsentID at `home`, which issues the cloud
/// certificate and queues the agreement mail.
fn accept_agreement(browser: &mut Browser, home: &Path) {
    let (status, _, location) = approved_action(
        browser,
        home,
        "/services/cloud-certificate",
        "/services/cloud-certificate/agreement/accept",
    );
    assert_eq!(
        (status, location.as_deref()),
        (303, Some("/services/cloud-certificate?done=issued"))
    );
}

fn messages(maildir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(maildir.join("new"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// Polls `ready` every 200 ms for up to `limit`.
fn wait_until(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn smtp_setup(name: &str, env: &[(&str, String)]) -> Setup {
    Setup {
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        name: name.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_waits_while_the_relay_is_down_and_goes_out_when_it_is_up() {
    let Some(python) = support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let setup = smtp_setup(
        "smtp-down",
        &[
            ("EIDPORTAL_SMTP_URL", format!("smtp://127.0.0.1:{port}")),
            ("EIDPORTAL_SMTP_RETRY_FIRST_SECS", "1".into()),
            ("EIDPORTAL_SMTP_MAX_ATTEMPTS", "100".into()),
        ],
    );
    let server = Server::start(&d.join("data"), &setup, None);
    let mut browser = logged_in(&server, "petar@example.rs", &d.join("phone"));
    assert!(!page(&mut browser, "/account").contains("undelivered-mail"));
    accept_agreement(&mut browser, &d.join("phone"));
    // The relay is down: the account page says the mail is not delivered yet.
    wait_until(Duration::from_secs(30), "the retrying notice", || {
        page(&mut browser, "/account").contains("још није испоручено")
    });
    let account = page(&mut browser, "/account");
    assert!(
        account.contains("petar@example.rs") && account.contains("Уговор и квалификовани"),
        "{account}"
    );
    // Another account sees nothing of it.
    let mut other = logged_in(&server, "ana@example.rs", &d.join("phone-b"));
    assert!(!page(&mut other, "/account").contains("undelivered-mail"));

    // The relay comes up: the queued mail goes out, once, and the notice is gone.
    let maildir = d.join("maildir");
    let mut smtp = smtp_server(&python, port, &maildir, None, None);
    wait_until(Duration::from_secs(60), "the mail in the maildir", || {
        !messages(&maildir).is_empty()
    });
    let text = std::fs::read_to_string(&messages(&maildir)[0]).unwrap();
    assert!(
        text.contains("ugovor-") && text.contains("application/pdf"),
        "{text}"
    );
    wait_until(Duration::from_secs(10), "the notice gone", || {
        !page(&mut browser, "/account").contains("undelivered-mail")
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(messages(&maildir).len(), 1, "sent once");
    let _ = smtp.kill();
    let _ = smtp.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_its_last_attempt_the_account_page_says_a_mail_was_not_delivered() {
    if support::python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let setup = smtp_setup(
        "smtp-failed",
        &[
            ("EIDPORTAL_SMTP_URL", format!("smtp://127.0.0.1:{port}")),
            ("EIDPORTAL_SMTP_RETRY_FIRST_SECS", "1".into()),
            ("EIDPORTAL_SMTP_MAX_ATTEMPTS", "2".into()),
        ],
    );
    let server = Server::start(&d.join("data"), &setup, None);
    let mut browser = logged_in(&server, "petar@example.rs", &d.join("phone"));
    accept_agreement(&mut browser, &d.join("phone"));
    wait_until(Duration::from_secs(30), "the failed notice", || {
        page(&mut browser, "/account").contains("није могло да буде испоручено")
    });
    browser.get("/lang/en");
    let english = page(&mut browser, "/account");
    assert!(english.contains("could not be delivered"), "{english}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_to_a_relay_of_a_private_ca_with_a_login() {
    let Some(python) = support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A test CA and the relay's certificate for 127.0.0.1, by OpenSSL.
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=Test mail CA",
        "-days",
        "2",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "relay.key",
        "-out",
        "relay.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "relay.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "relay.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let port = free_port();
    let maildir = d.join("maildir");
    let mut smtp = smtp_server(
        &python,
        port,
        &maildir,
        Some((&d.join("relay.pem"), &d.join("relay.key"))),
        Some(("portal", "tajna-lozinka")),
    );
    let setup = smtp_setup(
        "smtp-starttls",
        &[
            (
                "EIDPORTAL_SMTP_URL",
                format!("smtp+starttls://127.0.0.1:{port}"),
            ),
            ("EIDPORTAL_SMTP_USER", "portal".into()),
            ("EIDPORTAL_SMTP_PASSWORD", "tajna-lozinka".into()),
            (
                "EIDPORTAL_SMTP_CA_FILE",
                d.join("ca.pem").display().to_string(),
            ),
        ],
    );
    let server = Server::start(&d.join("data"), &setup, None);
    let mut browser = logged_in(&server, "petar@example.rs", &d.join("phone"));
    accept_agreement(&mut browser, &d.join("phone"));
    wait_until(Duration::from_secs(30), "the mail over STARTTLS", || {
        !messages(&maildir).is_empty()
    });
    let text = std::fs::read_to_string(&messages(&maildir)[0]).unwrap();
    assert!(text.contains("application/pdf"), "{text}");
    drop(server);
    let _ = smtp.kill();
    let _ = smtp.wait();

    // The same relay, but the portal does not trust its CA: nothing is delivered.
    let maildir = d.join("maildir-untrusted");
    let port = free_port();
    let mut smtp = smtp_server(
        &python,
        port,
        &maildir,
        Some((&d.join("relay.pem"), &d.join("relay.key"))),
        Some(("portal", "tajna-lozinka")),
    );
    let setup = smtp_setup(
        "smtp-untrusted",
        &[
            (
                "EIDPORTAL_SMTP_URL",
                format!("smtp+starttls://127.0.0.1:{port}"),
            ),
            ("EIDPORTAL_SMTP_USER", "portal".into()),
            ("EIDPORTAL_SMTP_PASSWORD", "tajna-lozinka".into()),
            ("EIDPORTAL_SMTP_RETRY_FIRST_SECS", "1".into()),
        ],
    );
    let server = Server::start(&d.join("data-untrusted"), &setup, None);
    let mut browser = logged_in(&server, "petar@example.rs", &d.join("phone-u"));
    accept_agreement(&mut browser, &d.join("phone-u"));
    wait_until(Duration::from_secs(30), "the retrying notice", || {
        page(&mut browser, "/account").contains("још није испоручено")
    });
    assert!(messages(&maildir).is_empty());
    let _ = smtp.kill();
    let _ = smtp.wait();
}
