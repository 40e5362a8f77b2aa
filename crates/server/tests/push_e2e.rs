//! Web Push to a ConsentID device (issue 10; RFC 8030, RFC 8291, RFC 8292), end to end: the
//! real server, a device activated with the consentid CLI, and a local push service in Python
//! (scripts/e2e/push_service.py) that holds the subscription's keys, verifies the VAPID token
//! and decrypts each push with the independent `http_ece`. A login started for the user must
//! reach it with the login's id; bad subscriptions are refused and change nothing; a deleted
//! subscription, and one the push service calls gone (410), get no more pushes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use serde_json::{json, Value};
use support::{Browser, Server, Setup};

const EMAIL: &str = "push@example.rs";

/// The device the CLI activated: its id and key, from the CLI's keystore.
struct Device {
    id: String,
    key: p256::SecretKey,
}

impl Device {
    fn open(home: &Path) -> Self {
        use p256::pkcs8::DecodePrivateKey as _;
        let text = std::fs::read_to_string(home.join("device.json")).unwrap();
        let record: Value = serde_json::from_str(&text).unwrap();
        let der = proto::unb64(record["device_key"].as_str().unwrap()).unwrap();
        Self {
            id: record["device_id"].as_str().unwrap().to_owned(),
            key: p256::SecretKey::from_pkcs8_der(&der).unwrap(),
        }
    }

    /// A device-signed call (reference/mobile-auth.md §7.4), as the app makes it.
    fn call(&self, server: &Server, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        // The device's own clock, as the app signs with it.
        let timestamp = authority::Clock::now(&authority::SystemClock).0;
        let nonce = proto::crypto::b64(&rand::random::<[u8; 16]>());
        let message = proto::crypto::request_message(method, path, timestamp, &nonce, body);
        let signature = proto::crypto::sign(&self.key, message.as_bytes());
        let authorization =
            proto::crypto::authorization_header(&self.id, timestamp, &nonce, &signature);
        raw_call(server, method, path, Some(&authorization), body)
    }
}

fn raw_call(
    server: &Server,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> (u16, Value) {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(value) = authorization {
        headers.push(("Authorization", value));
    }
    let response = support::http_via(&server.addr, None, method, path, &headers, body).unwrap();
    let value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status, value)
}

/// A running push_service.py: its subscription and the pushes it reports.
struct PushService {
    child: Child,
    subscription: Value,
    reports: Receiver<Value>,
}

impl PushService {
    fn start(python: &Path, vapid_key: &str, status: u16) -> Self {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/e2e/push_service.py");
        let mut child = Command::new(python)
            .arg(script)
            .args(["--vapid-key", vapid_key, "--status", &status.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start push_service.py");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(serde_json::from_str::<Value>(&line).unwrap());
            }
        });
        let subscription = receiver.recv_timeout(Duration::from_secs(30)).unwrap();
        Self {
            child,
            subscription,
            reports: receiver,
        }
    }

    /// The next push, or `None` within `limit`.
    fn next(&self, limit: Duration) -> Option<Value> {
        match self.reports.recv_timeout(limit) {
            Ok(report) => Some(report),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => panic!("push_service.py ended"),
        }
    }
}

impl Drop for PushService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a mobile login for the user in a fresh browser; the login's transaction id.
fn start_login(server: &Server) -> String {
    let mut browser = Browser::new(server);
    let csrf = Browser::csrf(&browser.get("/login/mobile"));
    let started = browser.post("/login/mobile", &[("csrf", &csrf), ("username", EMAIL)]);
    let location = started.header("location").unwrap();
    location.strip_prefix("/login/mobile/").unwrap().to_owned()
}

fn assert_push(report: &Value, txn: &str, kind: &str) {
    assert_eq!(report["ok"], json!(true), "push service: {report}");
    let plaintext: Value = serde_json::from_str(report["plaintext"].as_str().unwrap()).unwrap();
    assert_eq!(plaintext, json!({ "v": 1, "kind": kind, "txn_id": txn }));
    assert_eq!(report["headers"]["Urgency"], json!("high"));
    assert_eq!(report["headers"]["Content-Encoding"], json!("aes128gcm"));
    assert!(
        report["headers"]["TTL"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
}

/// How long a push that should not come is waited for.
const NO_PUSH: Duration = Duration::from_millis(1500);
const PUSH: Duration = Duration::from_secs(15);

#[test]
fn a_login_is_pushed_encrypted_to_the_subscribed_device() {
    let Some(python) = support::python() else {
        return;
    };
    // The subscriptions live in the store and the VAPID key in the key backend: every setup.
    let setups = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(Setup::all());
    for setup in setups {
        eprintln!("setup: {}", setup.name);
        pushes_on(&python, setup);
    }
}

fn pushes_on(python: &Path, mut setup: Setup) {
    let dir = tempfile::tempdir().unwrap();
    setup.env.push((
        "EIDPORTAL_DANGEROUS_PUSH_ALLOW_HTTP_LOOPBACK".into(),
        "1".into(),
    ));
    // The local push service is on 127.0.0.1: private endpoints allowed (issue 22).
    setup.env.push((
        "EIDPORTAL_DANGEROUS_PUSH_ALLOW_PRIVATE_ENDPOINTS".into(),
        "1".into(),
    ));
    setup
        .env
        .push(("EIDPORTAL_DANGEROUS_DISABLE_RATE_LIMITS".into(), "1".into()));
    setup.env.push((
        "EIDPORTAL_PUSH_SUBJECT".into(),
        "mailto:ops@example.rs".into(),
    ));
    let server = Server::start(&dir.path().join("data"), &setup, None);
    let home = dir.path().join("app");
    support::logged_in(&server, EMAIL, &home);
    let device = Device::open(&home);

    // The key needs no authentication and is an uncompressed P-256 point.
    let (status, key) = raw_call(&server, "GET", "/api/app/v1/push/key", None, b"");
    assert_eq!(status, 200);
    let vapid_key = key["vapid_public_key"].as_str().unwrap().to_owned();
    let point = proto::unb64(&vapid_key).unwrap();
    assert!(p256::PublicKey::from_sec1_bytes(&point).is_ok() && point.len() == 65);

    let service = PushService::start(python, &vapid_key, 201);
    let good = service.subscription.clone();
    let path = "/api/app/v1/push/subscription";

    // 1. Refused: no device authentication, a forged one, and bad subscriptions.
    let body = good.to_string();
    let (status, answer) = raw_call(&server, "POST", path, None, body.as_bytes());
    assert!(status == 400 || status == 401, "{status} {answer}");
    let forged = proto::crypto::authorization_header(&device.id, 1, "AAAA", &[0u8; 70]);
    let (status, _) = raw_call(&server, "POST", path, Some(&forged), body.as_bytes());
    assert_eq!(status, 401);
    let mut bad = Vec::new();
    let mut http_remote = good.clone();
    http_remote["endpoint"] = json!("http://192.0.2.1/push/sub-1");
    bad.push((http_remote, "invalid endpoint"));
    let mut no_url = good.clone();
    no_url["endpoint"] = json!("push service");
    bad.push((no_url, "invalid endpoint"));
    let mut off_curve = good.clone();
    off_curve["keys"]["p256dh"] = json!(proto::crypto::b64(&[4u8; 65]));
    bad.push((off_curve, "invalid p256dh"));
    let mut short_auth = good.clone();
    short_auth["keys"]["auth"] = json!(proto::crypto::b64(&[1u8; 15]));
    bad.push((short_auth, "invalid auth"));
    for (subscription, message) in &bad {
        let (status, answer) =
            device.call(&server, "POST", path, subscription.to_string().as_bytes());
        assert_eq!(status, 400, "{subscription}: {answer}");
        assert_eq!(answer["error"], json!("invalid_request"));
        assert_eq!(answer["message"], json!(message));
    }
    // Nothing was stored: a login reaches no push service.
    start_login(&server);
    assert_eq!(
        service.next(NO_PUSH),
        None,
        "a refused subscription was stored"
    );

    // 2. Subscribed: a login is pushed, encrypted to the subscription, with its id.
    let (status, answer) = device.call(&server, "POST", path, body.as_bytes());
    assert_eq!(status, 200, "{answer}");
    let txn = start_login(&server);
    let report = service.next(PUSH).expect("no push arrived");
    assert_push(&report, &txn, "login");
    assert_eq!(report["claims"]["sub"], json!("mailto:ops@example.rs"));

    // 3. Deleted: no more pushes.
    let (status, _) = device.call(&server, "DELETE", path, b"");
    assert_eq!(status, 200);
    let (status, _) = device.call(&server, "DELETE", path, b"");
    assert_eq!(status, 404);
    start_login(&server);
    assert_eq!(service.next(NO_PUSH), None, "pushed after the DELETE");
    drop(service);

    // 4. Gone (410): the push is sent once, then the subscription is deleted.
    let gone = PushService::start(python, &vapid_key, 410);
    let (status, _) = device.call(
        &server,
        "POST",
        path,
        gone.subscription.to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    let txn = start_login(&server);
    assert_push(&gone.next(PUSH).expect("no push arrived"), &txn, "login");
    // The deletion follows the 410 at once; a re-registration would not be deleted by it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        start_login(&server);
        match gone.next(NO_PUSH) {
            None => break,
            Some(_) => assert!(
                std::time::Instant::now() < deadline,
                "the gone subscription stayed"
            ),
        }
    }
    let (status, _) = device.call(&server, "DELETE", path, b"");
    assert_eq!(status, 404, "the gone subscription is still stored");
}

/// Issue 22: with the default settings, subscriptions whose endpoint is this machine are
/// refused by the app API with a reason the app can show, and nothing is stored.
#[test]
fn subscriptions_to_internal_hosts_are_refused_by_the_app_api() {
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &Setup::embedded(), None);
    let home = dir.path().join("app");
    support::logged_in(&server, EMAIL, &home);
    let device = Device::open(&home);
    let point = p256::SecretKey::random(&mut rand::rngs::OsRng)
        .public_key()
        .to_encoded_point(false);
    let path = "/api/app/v1/push/subscription";
    for endpoint in [
        "https://127.0.0.1:19999/internal/admin",
        "https://localhost:19998/",
    ] {
        let subscription = json!({
            "endpoint": endpoint,
            "expirationTime": null,
            "keys": {
                "p256dh": proto::crypto::b64(point.as_bytes()),
                "auth": proto::crypto::b64(&[7u8; 16]),
            },
        });
        let (status, answer) =
            device.call(&server, "POST", path, subscription.to_string().as_bytes());
        assert_eq!(status, 400, "{endpoint}: {answer}");
        assert_eq!(answer["error"], json!("endpoint_not_public"), "{endpoint}");
        assert_eq!(
            answer["message"],
            json!("the push endpoint's host is a loopback address, not a public address"),
            "{endpoint}"
        );
    }
    // Nothing was stored.
    let (status, _) = device.call(&server, "DELETE", path, b"");
    assert_eq!(status, 404);
}
