//! The protocol client (reference/mobile-auth.md §7.3–7.6 as adopted in `proto`): activation,
//! the inbox, approving or denying a request, and the device's status.
//!
//! Every call except activation is device-authenticated: an `Authorization: CID-Device …`
//! header signing method, path and query, time, a fresh nonce and the body hash with the
//! device key (§7.4). The client also applies what the server reports about the device: a
//! revoked device wipes its keys, a locked PIN is recorded, in this core so that a phone app
//! behaves the same.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use proto::app::{
    self, ActivationChallenge, ActivationComplete, ActivationResult, ActivationStart, Decision,
    DeviceState, DeviceStatus, ResponseOutcome, ResponseResult,
};
use proto::crypto;
use serde::de::DeserializeOwned;

use crate::clock::{Clock, SystemClock};
use crate::error::{EnvelopeError, Error};
use crate::keystore::{Credentials, DeviceCertificate, DeviceKey, Keystore};
use crate::pin::{Pin, PinKey, PinParams, PinSalt, PIN_LENGTH};
use crate::request::{is_safe_value, verify_envelope, VerificationCode, VerifiedRequest};
use crate::server::{Http, ServerUrl};

/// Extra time allowed beyond a long-poll's `wait` before the client gives up on an answer.
const ANSWER_GRACE: Duration = Duration::from_secs(30);

/// Error codes meaning "this request is not (or no longer) pending".
const UNAVAILABLE_CODES: &[&str] = &[
    "expired",
    "not_pending",
    "not_found",
    "unknown_transaction",
    "cancelled",
    "superseded",
    "consumed",
];

/// How the client is set up: where time comes from, the PIN key's Argon2 cost, timeouts.
#[derive(Clone)]
pub struct Settings {
    /// Source of `now` for signatures and the approval message.
    pub clock: Arc<dyn Clock>,
    /// Argon2id cost of the PIN key; the default is the real one (RFC 9106 low-memory).
    pub pin_params: PinParams,
    /// How long to wait for a TCP connection.
    pub connect_timeout: Duration,
    /// At activation: the only CA to trust for the server (kept in the home and used
    /// afterwards); `None` trusts the public roots.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            pin_params: PinParams::default(),
            connect_timeout: Duration::from_secs(10),
            ca_file: None,
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("pin_params", &self.pin_params)
            .field("connect_timeout", &self.connect_timeout)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

/// Why a request is denied (`Response.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// The user tapped **Одбиј** (Deny).
    UserDeny,
    /// The user picked a verification code that is not the browser's.
    WrongVerificationCode,
    /// "I didn't start this".
    NotMe,
}

impl DenyReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserDeny => "user_deny",
            Self::WrongVerificationCode => "wrong_vc",
            Self::NotMe => "not_me",
        }
    }
}

/// What became of an answer to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server verified and accepted the approval.
    Approved,
    /// The server recorded the deny.
    Denied,
    /// The PIN proof did not verify; the request stays open.
    WrongPin {
        /// Wrong PINs left before the lock, when the server says.
        attempts_left: Option<u8>,
    },
    /// That was the last allowed wrong PIN: the device is locked (recorded locally).
    PinLocked,
    /// The picked code was not the real one: a deny with reason `wrong_vc` was sent and the
    /// server ended the request.
    WrongCode,
}

/// The inbox after verification.
#[derive(Debug)]
pub struct Inbox {
    /// Pending requests whose envelope verified, in the server's order.
    pub requests: Vec<VerifiedRequest>,
    /// Envelopes that failed verification and were dropped.
    pub rejected: Vec<EnvelopeError>,
    /// Transactions that ended since they were delivered.
    pub cancelled: Vec<String>,
    /// The device's state as the server reports it.
    pub device_status: DeviceStatus,
}

impl Inbox {
    /// The verified request with this transaction id.
    pub fn find(&self, txn_id: &str) -> Option<&VerifiedRequest> {
        self.requests.iter().find(|r| r.txn_id() == txn_id)
    }
}

/// Activates ConsentID in `home` with an activation code (reference/mobile-auth.md §7.3).
///
/// Steps, in this order:
/// 1. check that `home` is usable and holds no active device, before the single-use code is
///    spent;
/// 2. `activation/start {code}` → the challenge and the server keys to pin;
/// 3. make the device key, a fresh PIN salt and the PIN key;
/// 4. seal the PIN public key to the server (aad = activation id), sign the activation message
///    with both keys, seal the PIN-key signature the same way;
/// 5. `activation/complete` → device id and certificate, which must certify the device key;
/// 6. store everything.
pub fn activate(
    home: &Path,
    server: &ServerUrl,
    code: &str,
    pin: &Pin,
    device_name: &str,
    settings: &Settings,
) -> Result<Keystore, Error> {
    let code = code.trim();
    if code.is_empty() {
        return Err(Error::EmptyActivationCode);
    }
    Keystore::prepare_home(home)?;
    Http::install_ca(home, settings.ca_file.as_deref())?;
    let http = Http::new(settings.connect_timeout, home);
    let timeout = settings.connect_timeout + ANSWER_GRACE;

    let start = serde_json::to_vec(&ActivationStart {
        code: code.to_owned(),
    })
    .map_err(json_error)?;
    let url = server.url("/api/app/v1/activation/start");
    let challenge: ActivationChallenge = parse(
        "activation challenge",
        &http.call("POST", &url, None, Some(&start), timeout)?,
    )?;
    if usize::from(challenge.pin_length) != PIN_LENGTH {
        return Err(bad(
            "activation challenge",
            format!("the server asks for {}-digit PINs", challenge.pin_length),
        ));
    }
    if !is_safe_value(&challenge.activation_id) {
        return Err(bad("activation challenge", "unsafe activation_id".into()));
    }
    let server_signing_key = crypto::unb64(&challenge.server_signing_key)?;
    crypto::public_key(&server_signing_key)?;
    let server_encryption_key =
        crypto::public_key(&crypto::unb64(&challenge.server_encryption_key)?)?;

    let device_key = DeviceKey::generate();
    let device_public_key = device_key.public_key_der();
    let pin_salt = PinSalt::random();
    let pin_key = PinKey::derive(pin, &pin_salt, settings.pin_params)?;

    let aad = challenge.activation_id.as_bytes();
    let encrypted_pin_public_key =
        crypto::seal(&server_encryption_key, &pin_key.public_key_der(), aad)?;
    let message = crypto::activation_message(
        &challenge.activation_id,
        &challenge.nonce,
        &device_public_key,
        &encrypted_pin_public_key,
    );
    let device_signature = device_key.sign(message.as_bytes());
    let encrypted_pin_signature = crypto::seal(
        &server_encryption_key,
        &pin_key.sign(message.as_bytes()),
        aad,
    )?;
    drop(pin_key);

    let complete = ActivationComplete {
        activation_id: challenge.activation_id.clone(),
        device_public_key: crypto::b64(&device_public_key),
        device_name: device_name.to_owned(),
        encrypted_pin_public_key: crypto::b64(&encrypted_pin_public_key),
        device_signature: crypto::b64(&device_signature),
        encrypted_pin_signature: crypto::b64(&encrypted_pin_signature),
    };
    let body = serde_json::to_vec(&complete).map_err(json_error)?;
    let url = server.url("/api/app/v1/activation/complete");
    let result: ActivationResult = parse(
        "activation result",
        &http.call("POST", &url, None, Some(&body), timeout)?,
    )?;
    if !is_device_id(&result.device_id) {
        return Err(bad("activation result", "unsafe device_id".into()));
    }
    let certificate = DeviceCertificate::for_device(
        crypto::unb64(&result.certificate)?,
        &result.certificate_serial,
        &device_public_key,
    )?;

    let credentials = Credentials {
        device_key,
        pin_salt,
        server_signing_key,
        server_encryption_key,
        certificate,
    };
    Keystore::create(home, server.clone(), result.device_id, credentials)
}

/// A client for an activated device.
#[derive(Debug)]
pub struct Client {
    keystore: Keystore,
    http: Http,
    settings: Settings,
}

impl Client {
    /// A client for `keystore`.
    pub fn new(keystore: Keystore, settings: Settings) -> Self {
        let http = Http::new(settings.connect_timeout, keystore.home());
        Self {
            keystore,
            http,
            settings,
        }
    }

    /// A client for the keystore in `home`.
    pub fn open(home: &Path, settings: Settings) -> Result<Self, Error> {
        Ok(Self::new(Keystore::open(home)?, settings))
    }

    /// The keystore (its state follows what the server reports).
    pub fn keystore(&self) -> &Keystore {
        &self.keystore
    }

    /// Now, from the client's clock.
    pub fn now(&self) -> i64 {
        self.settings.clock.now()
    }

    /// `GET /inbox?wait=N`: pending requests, long-polling up to `wait_secs` when there are none.
    /// Envelopes that fail verification are dropped and listed in [`Inbox::rejected`]. A
    /// device the server reports deactivated is wiped and the call fails with
    /// [`Error::DeviceRevoked`].
    pub fn inbox(&mut self, wait_secs: u32) -> Result<Inbox, Error> {
        let path = format!("/api/app/v1/inbox?wait={wait_secs}");
        let timeout = Duration::from_secs(u64::from(wait_secs)) + ANSWER_GRACE;
        let wire: app::Inbox = self.device_call("GET", &path, None, timeout, "inbox")?;
        self.apply_status(wire.device_status)?;
        let signing_key = &self.keystore.credentials()?.server_signing_key;
        let mut requests = Vec::new();
        let mut rejected = Vec::new();
        for envelope in &wire.items {
            match verify_envelope(signing_key, envelope) {
                Ok(request) => requests.push(request),
                Err(e) => rejected.push(e),
            }
        }
        Ok(Inbox {
            requests,
            rejected,
            cancelled: wire.cancelled,
            device_status: wire.device_status,
        })
    }

    /// Answers a request (reference/mobile-auth.md §7.5 step 3).
    ///
    /// `picked_code` is the code the user chose or typed; it is compared with the code
    /// recomputed from the signed challenge. If they differ, a deny with reason `wrong_vc` is
    /// sent instead, whatever `decision` was, and the outcome is [`Outcome::WrongCode`].
    /// An approval needs `pin`; a deny ignores it. `reason` applies to a deny (default
    /// `user_deny`).
    pub fn respond(
        &mut self,
        request: &VerifiedRequest,
        decision: Decision,
        picked_code: &VerificationCode,
        pin: Option<&Pin>,
        reason: Option<DenyReason>,
    ) -> Result<Outcome, Error> {
        let wrong_code = picked_code != request.verification_code();
        let (decision, reason) = match (wrong_code, decision) {
            (true, _) => (Decision::Deny, Some(DenyReason::WrongVerificationCode)),
            (false, Decision::Deny) => {
                (Decision::Deny, Some(reason.unwrap_or(DenyReason::UserDeny)))
            }
            (false, Decision::Approve) => (Decision::Approve, None),
        };
        let credentials = self.keystore.credentials()?;
        // The PIN key is derived first (it takes a moment) so that `issued_at` is fresh.
        let pin_key = match (decision, pin) {
            (Decision::Approve, None) => return Err(Error::PinRequired),
            (Decision::Approve, Some(_)) if self.keystore.state() == DeviceStatus::PinLocked => {
                return Err(Error::PinLocked)
            }
            (Decision::Approve, Some(pin)) => Some(PinKey::derive(
                pin,
                &credentials.pin_salt,
                self.settings.pin_params,
            )?),
            (Decision::Deny, _) => None,
        };
        let payload = request.payload();
        let issued_at = self.settings.clock.now();
        let message = crypto::approval_message(
            &payload.txn_id,
            payload.kind,
            decision,
            &payload.rp.id,
            &payload.challenge,
            request.payload_bytes(),
            picked_code.as_str(),
            self.keystore.device_id(),
            issued_at,
        );
        let device_signature = crypto::b64(&credentials.device_key.sign(message.as_bytes()));
        let pin_proof = match pin_key {
            Some(pin_key) => {
                let proof = pin_key.sign(message.as_bytes());
                Some(crypto::b64(&crypto::seal(
                    &credentials.server_encryption_key,
                    &proof,
                    payload.txn_id.as_bytes(),
                )?))
            }
            None => None,
        };
        let body = app::Response {
            decision,
            reason: reason.map(|r| r.as_str().to_owned()),
            verification_code: picked_code.as_str().to_owned(),
            issued_at,
            device_signature,
            pin_proof,
            at_computer: request.at_computer(),
        };
        let body = serde_json::to_vec(&body).map_err(json_error)?;
        let path = format!("/api/app/v1/requests/{}/response", payload.txn_id);
        let timeout = self.settings.connect_timeout + ANSWER_GRACE;
        let answer: Result<ResponseResult, Error> =
            self.device_call("POST", &path, Some(&body), timeout, "response");
        let result = match answer {
            Ok(result) => result,
            Err(Error::Server { code, .. }) if wrong_code && code == "wrong_vc" => {
                return Ok(Outcome::WrongCode)
            }
            Err(Error::Server { status, code, .. })
                if status == 404 || status == 410 || UNAVAILABLE_CODES.contains(&code.as_str()) =>
            {
                return Err(Error::RequestUnavailable {
                    txn_id: payload.txn_id.clone(),
                    code,
                })
            }
            Err(e) => return Err(e),
        };
        Ok(match result.result {
            ResponseOutcome::Approved if decision == Decision::Approve => Outcome::Approved,
            ResponseOutcome::Approved => {
                return Err(bad("response", "a deny was answered `approved`".into()))
            }
            ResponseOutcome::Denied if wrong_code => Outcome::WrongCode,
            ResponseOutcome::Denied => Outcome::Denied,
            ResponseOutcome::WrongPin => Outcome::WrongPin {
                attempts_left: result.attempts_left,
            },
            ResponseOutcome::PinLocked => {
                self.keystore.set_state(DeviceStatus::PinLocked)?;
                Outcome::PinLocked
            }
        })
    }

    /// `GET /status`: the device as the server sees it. The local state follows: a
    /// `deactivated` answer (or a `device_revoked` refusal) wipes the keys and fails with
    /// [`Error::DeviceRevoked`]; a `pin_locked` refusal fails with [`Error::PinLocked`].
    pub fn status(&mut self) -> Result<DeviceState, Error> {
        let timeout = self.settings.connect_timeout + ANSWER_GRACE;
        let state: DeviceState =
            self.device_call("GET", "/api/app/v1/status", None, timeout, "status")?;
        if state.device_id != self.keystore.device_id() {
            return Err(bad(
                "status",
                format!("it is about device {}, not this one", state.device_id),
            ));
        }
        self.apply_status(state.device_status)?;
        Ok(state)
    }

    /// Records the device state the server reported.
    fn apply_status(&mut self, status: DeviceStatus) -> Result<(), Error> {
        self.keystore.set_state(status)?;
        if status == DeviceStatus::Deactivated {
            return Err(Error::DeviceRevoked);
        }
        Ok(())
    }

    /// One device-authenticated call (reference/mobile-auth.md §7.4).
    fn device_call<T: DeserializeOwned>(
        &mut self,
        method: &str,
        path_and_query: &str,
        body: Option<&[u8]>,
        timeout: Duration,
        what: &'static str,
    ) -> Result<T, Error> {
        let credentials = self.keystore.credentials()?;
        let server = self.keystore.server();
        let timestamp = self.settings.clock.now();
        let mut nonce = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let nonce = crypto::b64(&nonce);
        let message = crypto::request_message(
            method,
            &server.signed_path(path_and_query),
            timestamp,
            &nonce,
            body.unwrap_or_default(),
        );
        let signature = credentials.device_key.sign(message.as_bytes());
        let authorization =
            crypto::authorization_header(self.keystore.device_id(), timestamp, &nonce, &signature);
        let answer = self.http.call(
            method,
            &server.url(path_and_query),
            Some(&authorization),
            body,
            timeout,
        );
        match answer {
            Ok(text) => parse(what, &text),
            Err(Error::Server { code, .. }) if code == "device_revoked" => {
                self.keystore.wipe()?;
                Err(Error::DeviceRevoked)
            }
            Err(Error::Server { code, .. }) if code == "pin_locked" => {
                self.keystore.set_state(DeviceStatus::PinLocked)?;
                Err(Error::PinLocked)
            }
            Err(e) => Err(e),
        }
    }
}

/// Device ids go into the `Authorization` header: `[A-Za-z0-9_-]{1,64}` (`parse_authorization`).
fn is_device_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn parse<T: DeserializeOwned>(what: &'static str, text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| bad(what, e.to_string()))
}

fn bad(what: &'static str, detail: String) -> Error {
    Error::BadAnswer { what, detail }
}

fn json_error(e: serde_json::Error) -> Error {
    bad("request body", e.to_string())
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::net::TcpListener;
    use std::str::FromStr as _;
    use std::thread::JoinHandle;

    use p256::SecretKey;
    use proto::app::{Envelope, RequestKind};
    use x509_cert::der::{Decode as _, Encode as _};

    use super::*;
    use crate::clock::ManualClock;
    use crate::keystore::tests::active_keystore;
    use crate::request::tests::{payload, seal_envelope};
    use crate::request::three_codes;

    const NOW: i64 = 1_800_000_000;
    const PIN: &str = "482915";

    /// One HTTP request as the stand-in server received it.
    #[derive(Debug)]
    struct Received {
        method: String,
        path: String,
        authorization: Option<String>,
        body: Vec<u8>,
    }

    /// A stand-in for the server inside these unit tests: answers `count` requests, one per
    /// connection, with what `answer` returns, and hands back what it received.
    fn serve(
        count: usize,
        mut answer: impl FnMut(&Received) -> (u16, String) + Send + 'static,
    ) -> (String, JoinHandle<Vec<Received>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut received = Vec::new();
            for _ in 0..count {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let mut parts = line.split_whitespace();
                let (method, path) = (
                    parts.next().unwrap().to_owned(),
                    parts.next().unwrap().to_owned(),
                );
                let (mut length, mut authorization) = (0usize, None);
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    let header = header.trim_end();
                    if header.is_empty() {
                        break;
                    }
                    let (name, value) = header.split_once(':').unwrap();
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap(),
                        "authorization" => authorization = Some(value.trim().to_owned()),
                        _ => {}
                    }
                }
                let mut body = vec![0u8; length];
                reader.read_exact(&mut body).unwrap();
                let request = Received {
                    method,
                    path,
                    authorization,
                    body,
                };
                let (status, text) = answer(&request);
                let mut stream = reader.into_inner();
                write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                )
                .unwrap();
                received.push(request);
            }
            received
        });
        (url, handle)
    }

    fn settings() -> Settings {
        Settings {
            clock: Arc::new(ManualClock::new(NOW)),
            pin_params: PinParams::dangerous_weak(64, 1, 1),
            connect_timeout: Duration::from_secs(5),
            ca_file: None,
        }
    }

    /// Checks the `Authorization` header the way the server must.
    fn assert_device_signed(request: &Received, device_public_key: &[u8]) {
        let header =
            proto::crypto::parse_authorization(request.authorization.as_deref().unwrap()).unwrap();
        assert_eq!(header.device_id, "dev-1");
        assert_eq!(header.timestamp, NOW);
        assert_eq!(proto::unb64(&header.nonce).unwrap().len(), 16);
        let message = proto::crypto::request_message(
            &request.method,
            &request.path,
            header.timestamp,
            &header.nonce,
            &request.body,
        );
        proto::crypto::verify(device_public_key, message.as_bytes(), &header.signature).unwrap();
    }

    fn inbox_json(items: Vec<Envelope>) -> String {
        serde_json::to_string(&app::Inbox {
            items,
            cancelled: vec!["old".into()],
            device_status: DeviceStatus::Active,
        })
        .unwrap()
    }

    #[test]
    fn the_inbox_is_fetched_with_a_device_signature_and_forged_requests_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let answer = Arc::new(std::sync::Mutex::new(String::new()));
        let shared = Arc::clone(&answer);
        let (url, server) = serve(1, move |_| (200, shared.lock().unwrap().clone()));
        let (keystore, signing, _) = active_keystore(dir.path(), &url);
        let other_server = SecretKey::random(&mut rand::rngs::OsRng);
        let good = seal_envelope(&signing, &payload("txn-1", RequestKind::Login, NOW + 100));
        let forged = seal_envelope(
            &other_server,
            &payload("txn-2", RequestKind::Sign, NOW + 100),
        );
        *answer.lock().unwrap() = inbox_json(vec![good, forged]);
        let device_public_key = keystore.credentials().unwrap().device_key.public_key_der();
        let mut client = Client::new(keystore, settings());

        let inbox = client.inbox(7).unwrap();
        assert_eq!(inbox.requests.len(), 1);
        assert_eq!(inbox.requests[0].txn_id(), "txn-1");
        assert!(inbox.find("txn-1").is_some() && inbox.find("txn-2").is_none());
        assert_eq!(inbox.rejected, vec![EnvelopeError::Signature]);
        assert_eq!(inbox.cancelled, vec!["old".to_owned()]);

        let received = server.join().unwrap();
        assert_eq!(
            (received[0].method.as_str(), received[0].path.as_str()),
            ("GET", "/api/app/v1/inbox?wait=7")
        );
        assert_device_signed(&received[0], &device_public_key);
    }

    /// An active client against a stand-in server answering `answers` in turn.
    fn client_with(
        answers: Vec<(u16, String)>,
    ) -> (
        tempfile::TempDir,
        Client,
        SecretKey,
        SecretKey,
        JoinHandle<Vec<Received>>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut answers = answers.into_iter();
        let (url, server) = serve(answers.len(), move |_| answers.next().unwrap());
        let (keystore, signing, encryption) = active_keystore(dir.path(), &url);
        (
            dir,
            Client::new(keystore, settings()),
            signing,
            encryption,
            server,
        )
    }

    fn request(client: &Client, signing: &SecretKey, kind: RequestKind) -> VerifiedRequest {
        let pinned = &client.keystore().credentials().unwrap().server_signing_key;
        verify_envelope(
            pinned,
            &seal_envelope(signing, &payload("txn-1", kind, NOW + 100)),
        )
        .unwrap()
    }

    #[test]
    fn an_approval_carries_a_device_signature_and_a_sealed_pin_proof_over_the_same_message() {
        let (_dir, mut client, signing, encryption, server) =
            client_with(vec![(200, r#"{"result":"approved"}"#.into())]);
        let request = request(&client, &signing, RequestKind::Sign);
        let code = request.verification_code().clone();
        let pin = Pin::enter(PIN).unwrap();
        let outcome = client
            .respond(&request, Decision::Approve, &code, Some(&pin), None)
            .unwrap();
        assert_eq!(outcome, Outcome::Approved);

        let credentials = client.keystore().credentials().unwrap();
        let device_public_key = credentials.device_key.public_key_der();
        let pin_public_key = PinKey::derive(
            &pin,
            &credentials.pin_salt,
            PinParams::dangerous_weak(64, 1, 1),
        )
        .unwrap()
        .public_key_der();
        let received = server.join().unwrap();
        let sent = &received[0];
        assert_eq!(
            (sent.method.as_str(), sent.path.as_str()),
            ("POST", "/api/app/v1/requests/txn-1/response")
        );
        assert_device_signed(sent, &device_public_key);

        // What the server does: rebuild M from its own values, check both signatures.
        let body: app::Response = serde_json::from_slice(&sent.body).unwrap();
        assert_eq!(
            (body.decision, body.reason.as_deref(), body.issued_at),
            (Decision::Approve, None, NOW)
        );
        assert_eq!(
            body.verification_code,
            proto::crypto::verification_code(&[7u8; 32])
        );
        let message = proto::crypto::approval_message(
            "txn-1",
            RequestKind::Sign,
            Decision::Approve,
            "eidportal",
            &proto::b64(&[7u8; 32]),
            request.payload_bytes(),
            &body.verification_code,
            "dev-1",
            NOW,
        );
        proto::crypto::verify(
            &device_public_key,
            message.as_bytes(),
            &proto::unb64(&body.device_signature).unwrap(),
        )
        .unwrap();
        let sealed = proto::unb64(body.pin_proof.as_deref().unwrap()).unwrap();
        assert!(
            proto::crypto::open(&encryption, &sealed, b"txn-2").is_err(),
            "the proof is bound to its transaction"
        );
        let proof = proto::crypto::open(&encryption, &sealed, b"txn-1").unwrap();
        proto::crypto::verify(&pin_public_key, message.as_bytes(), &proof).unwrap();
        let as_login = message.replace("kind=sign", "kind=login");
        assert!(proto::crypto::verify(&pin_public_key, as_login.as_bytes(), &proof).is_err());
    }

    #[test]
    fn a_wrong_code_is_sent_as_a_wrong_vc_deny_without_the_pin() {
        let (_dir, mut client, signing, _, server) =
            client_with(vec![(200, r#"{"result":"denied"}"#.into())]);
        let request = request(&client, &signing, RequestKind::Login);
        let real = request.verification_code().clone();
        let wrong = three_codes(&real).into_iter().find(|c| *c != real).unwrap();
        let pin = Pin::enter(PIN).unwrap();
        let outcome = client
            .respond(&request, Decision::Approve, &wrong, Some(&pin), None)
            .unwrap();
        assert_eq!(outcome, Outcome::WrongCode);
        let body: app::Response = serde_json::from_slice(&server.join().unwrap()[0].body).unwrap();
        assert_eq!(
            (body.decision, body.reason.as_deref()),
            (Decision::Deny, Some("wrong_vc"))
        );
        assert_eq!(body.verification_code, wrong.as_str());
        assert!(
            body.pin_proof.is_none(),
            "no PIN proof leaves the device for a deny"
        );
    }

    #[test]
    fn wrong_pins_are_counted_by_the_server_and_the_lock_is_recorded() {
        let (dir, mut client, signing, _, server) = client_with(vec![
            (200, r#"{"result":"wrong_pin","attempts_left":1}"#.into()),
            (200, r#"{"result":"pin_locked"}"#.into()),
        ]);
        let request = request(&client, &signing, RequestKind::Login);
        let code = request.verification_code().clone();
        let pin = Pin::enter("000000").unwrap();
        assert_eq!(
            client
                .respond(&request, Decision::Approve, &code, Some(&pin), None)
                .unwrap(),
            Outcome::WrongPin {
                attempts_left: Some(1)
            }
        );
        assert_eq!(
            client
                .respond(&request, Decision::Approve, &code, Some(&pin), None)
                .unwrap(),
            Outcome::PinLocked
        );
        server.join().unwrap();
        assert_eq!(
            Keystore::open(dir.path()).unwrap().state(),
            DeviceStatus::PinLocked
        );
        assert!(matches!(
            client.respond(&request, Decision::Approve, &code, Some(&pin), None),
            Err(Error::PinLocked)
        ));
        assert!(matches!(
            client.respond(&request, Decision::Approve, &code, None, None),
            Err(Error::PinRequired)
        ));
    }

    #[test]
    fn a_revoked_device_wipes_its_keys() {
        let refusal = r#"{"error":"device_revoked","message":"revoked"}"#;
        let (dir, mut client, _, _, server) = client_with(vec![(401, refusal.into())]);
        assert!(matches!(client.status(), Err(Error::DeviceRevoked)));
        server.join().unwrap();
        let stored = Keystore::open(dir.path()).unwrap();
        assert_eq!(stored.state(), DeviceStatus::Deactivated);
        assert!(stored.certificate().is_none());
        assert!(
            matches!(client.inbox(0), Err(Error::Deactivated)),
            "nothing is sent once wiped"
        );
    }

    #[test]
    fn a_request_that_is_no_longer_pending_is_named() {
        let refusal = r#"{"error":"expired","message":"too late"}"#;
        let (_dir, mut client, signing, _, server) = client_with(vec![(409, refusal.into())]);
        let request = request(&client, &signing, RequestKind::Login);
        let code = request.verification_code().clone();
        match client.respond(&request, Decision::Deny, &code, None, None) {
            Err(Error::RequestUnavailable { txn_id, code }) => {
                assert_eq!((txn_id.as_str(), code.as_str()), ("txn-1", "expired"))
            }
            other => panic!("{other:?}"),
        }
        let body: app::Response = serde_json::from_slice(&server.join().unwrap()[0].body).unwrap();
        assert_eq!(
            (body.decision, body.reason.as_deref()),
            (Decision::Deny, Some("user_deny"))
        );
    }

    fn certificate_for(device_public_key: &[u8]) -> Vec<u8> {
        use x509_cert::der::asn1::{BitString, UtcTime};
        use x509_cert::spki::{
            AlgorithmIdentifierOwned, ObjectIdentifier, SubjectPublicKeyInfoOwned,
        };
        use x509_cert::time::{Time, Validity};
        let algorithm = AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2"),
            parameters: None,
        };
        let name = x509_cert::name::Name::from_str("CN=dev-1").unwrap();
        let time =
            |secs| Time::UtcTime(UtcTime::from_unix_duration(Duration::from_secs(secs)).unwrap());
        let tbs = x509_cert::TbsCertificate {
            version: x509_cert::Version::V3,
            serial_number: x509_cert::serial_number::SerialNumber::new(&[0x0a, 0x1b]).unwrap(),
            signature: algorithm.clone(),
            issuer: name.clone(),
            validity: Validity {
                not_before: time(1_767_225_600),
                not_after: time(1_830_297_600),
            },
            subject: name,
            subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(device_public_key)
                .unwrap(),
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: None,
        };
        let certificate = x509_cert::Certificate {
            tbs_certificate: tbs,
            signature_algorithm: algorithm,
            signature: BitString::from_bytes(&[0]).unwrap(),
        };
        certificate.to_der().unwrap()
    }

    #[test]
    fn activation_proves_the_device_key_and_the_pin_key_and_stores_the_certificate() {
        let signing = SecretKey::random(&mut rand::rngs::OsRng);
        let encryption = SecretKey::random(&mut rand::rngs::OsRng);
        let challenge = ActivationChallenge {
            activation_id: "act-1".into(),
            nonce: "nonce-1".into(),
            server_signing_key: proto::b64(&proto::crypto::public_key_der(&signing.public_key())),
            server_encryption_key: proto::b64(&proto::crypto::public_key_der(
                &encryption.public_key(),
            )),
            user_hint: "p***@example.rs".into(),
            pin_length: 6,
            max_pin_failures: 5,
        };
        let server_secret = encryption.clone();
        let (url, server) = serve(2, move |request| match request.path.as_str() {
            "/api/app/v1/activation/start" => {
                let start: ActivationStart = serde_json::from_slice(&request.body).unwrap();
                assert_eq!(start.code, "ABCD-EFGH");
                (200, serde_json::to_string(&challenge).unwrap())
            }
            _ => {
                // What the server does at activation/complete.
                let complete: ActivationComplete = serde_json::from_slice(&request.body).unwrap();
                let device_public_key = proto::unb64(&complete.device_public_key).unwrap();
                let sealed_pin_key = proto::unb64(&complete.encrypted_pin_public_key).unwrap();
                let message = proto::crypto::activation_message(
                    "act-1",
                    "nonce-1",
                    &device_public_key,
                    &sealed_pin_key,
                );
                let device_signature = proto::unb64(&complete.device_signature).unwrap();
                proto::crypto::verify(&device_public_key, message.as_bytes(), &device_signature)
                    .unwrap();
                let pin_public_key =
                    proto::crypto::open(&server_secret, &sealed_pin_key, b"act-1").unwrap();
                let sealed_signature = proto::unb64(&complete.encrypted_pin_signature).unwrap();
                let pin_signature =
                    proto::crypto::open(&server_secret, &sealed_signature, b"act-1").unwrap();
                proto::crypto::verify(&pin_public_key, message.as_bytes(), &pin_signature).unwrap();
                assert_eq!(complete.device_name, "test phone");
                let result = ActivationResult {
                    device_id: "dev-1".into(),
                    certificate: proto::b64(&certificate_for(&device_public_key)),
                    certificate_serial: "0a1b".into(),
                };
                (200, serde_json::to_string(&result).unwrap())
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let pin = Pin::choose(PIN).unwrap();
        let server_url = ServerUrl::parse(&url).unwrap();
        let keystore = activate(
            &home,
            &server_url,
            " ABCD-EFGH ",
            &pin,
            "test phone",
            &settings(),
        )
        .unwrap();
        let received = server.join().unwrap();
        assert!(
            received.iter().all(|r| r.authorization.is_none()),
            "activation is not device-authenticated"
        );

        let stored = Keystore::open(&home).unwrap();
        assert_eq!(
            (stored.state(), stored.device_id()),
            (DeviceStatus::Active, "dev-1")
        );
        let certificate = stored.certificate().unwrap();
        assert_eq!(certificate.serial(), "0a1b");
        assert_eq!(
            (certificate.not_before(), certificate.not_after()),
            ("2026-01-01T00:00:00Z", "2028-01-01T00:00:00Z")
        );
        assert_eq!(
            stored.credentials().unwrap().server_signing_key,
            proto::crypto::public_key_der(&signing.public_key())
        );
        assert!(matches!(
            activate(&home, &server_url, "ABCD-EFGH", &pin, "again", &settings()),
            Err(Error::AlreadyActive { .. })
        ));
        drop(keystore);
    }

    #[test]
    fn a_certificate_for_another_key_is_refused() {
        let mine = DeviceKey::generate().public_key_der();
        let other = DeviceKey::generate().public_key_der();
        assert!(DeviceCertificate::for_device(certificate_for(&mine), "0a", &mine).is_ok());
        assert!(matches!(
            DeviceCertificate::for_device(certificate_for(&other), "0a", &mine),
            Err(Error::Certificate(_))
        ));
        assert!(matches!(
            DeviceCertificate::for_device(vec![1, 2, 3], "0a", &mine),
            Err(Error::Certificate(_))
        ));
    }
}
