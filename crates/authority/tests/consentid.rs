//! The ConsentID protocol on the server, with a simulated app that speaks the wire contract
//! (crates/proto) and an injected clock: activation, login approval, and every refusal the
//! protocol promises (DESIGN §4), on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::cloned_ref_to_slice_refs)]

use std::sync::Arc;
use std::time::Duration;

use p256::SecretKey;

use authority::consentid::{AuthenticatedDevice, Caller};
use authority::login::Session;
use authority::signing::{AuthorizationCheck, SignRequest, SigningError};
use domain::signing::{HashAlgorithm, SadRefusal, SignatureScheme};
use authority::{Authority, Clock, Error, ManualClock, Rejection, Settings};
use domain::{Jmbg, TransactionStatus, UnixTime};
use pki::{KeyBackend, MasterKey, SoftwareKeyBackend};
use proto::app::{ActivationComplete, Decision, Envelope, RequestPayload, Response, ResponseOutcome};
use proto::crypto;
use store::Store;

const START: UnixTime = UnixTime(1_795_577_673);

/// The app, reduced to its keys and the protocol.
struct App {
    device: SecretKey,
    pin: SecretKey,
    device_id: String,
    encryption_key: p256::PublicKey,
}

async fn open(url: &str, clock: Arc<ManualClock>) -> Authority {
    let keys: Arc<dyn KeyBackend> = Arc::new(SoftwareKeyBackend::new(MasterKey::generate()));
    Authority::open(Store::connect(url).await.unwrap(), keys, clock, Settings::new("http://127.0.0.1:8080")).await.unwrap()
}

fn caller() -> Caller {
    Caller { ip: "127.0.0.1".into() }
}

async fn enrol(authority: &Authority, email: &str) -> String {
    let new = authority::accounts::NewUser {
        email: email.into(),
        given_name: "Петар".into(),
        surname: "Петровић".into(),
        jmbg: Jmbg::parse("0101990710008").unwrap(),
        password: None,
    };
    authority.add_user(new, "officer").await.unwrap().1 .0
}

async fn activate(authority: &Authority, code: &str) -> Result<App, Error> {
    let challenge = authority.activation_start(code, &caller()).await?;
    let encryption_key = crypto::public_key(&crypto::unb64(&challenge.server_encryption_key).unwrap()).unwrap();
    let device = SecretKey::random(&mut rand::rngs::OsRng);
    let pin = SecretKey::random(&mut rand::rngs::OsRng);
    let device_der = crypto::public_key_der(&device.public_key());
    let aad = challenge.activation_id.as_bytes();
    let sealed_pin = crypto::seal(&encryption_key, &crypto::public_key_der(&pin.public_key()), aad).unwrap();
    let message = crypto::activation_message(&challenge.activation_id, &challenge.nonce, &device_der, &sealed_pin);
    let request = ActivationComplete {
        activation_id: challenge.activation_id.clone(),
        device_public_key: crypto::b64(&device_der),
        device_name: "test phone".into(),
        encrypted_pin_public_key: crypto::b64(&sealed_pin),
        device_signature: crypto::b64(&crypto::sign(&device, message.as_bytes())),
        encrypted_pin_signature: crypto::b64(&crypto::seal(&encryption_key, &crypto::sign(&pin, message.as_bytes()), aad).unwrap()),
    };
    let result = authority.activation_complete(&request, &caller()).await?;
    Ok(App { device, pin, device_id: result.device_id, encryption_key })
}

impl App {
    async fn authenticated(&self, authority: &Authority, path: &str, body: &[u8]) -> Result<AuthenticatedDevice, Error> {
        let nonce = crypto::b64(&rand::random::<[u8; 16]>());
        let now = authority.now().0;
        let message = crypto::request_message("POST", path, now, &nonce, body);
        let header = crypto::authorization_header(&self.device_id, now, &nonce, &crypto::sign(&self.device, message.as_bytes()));
        authority.authenticate_device(&header, "POST", path, body).await
    }

    async fn next_request(&self, authority: &Authority) -> (Envelope, RequestPayload) {
        let device = self.authenticated(authority, "/inbox", b"").await.unwrap();
        let inbox = authority.inbox(&device, Duration::ZERO).await.unwrap();
        let envelope = inbox.items.into_iter().next().expect("a pending request");
        let payload: RequestPayload = serde_json::from_slice(&crypto::unb64(&envelope.payload).unwrap()).unwrap();
        (envelope, payload)
    }

    /// Builds an answer. `pin` is the PIN key to prove with (a wrong one models a wrong PIN).
    fn answer(&self, envelope: &Envelope, decision: Decision, code: &str, pin: Option<&SecretKey>, iat: UnixTime) -> (String, Response) {
        let payload_bytes = crypto::unb64(&envelope.payload).unwrap();
        let payload: RequestPayload = serde_json::from_slice(&payload_bytes).unwrap();
        let message = crypto::approval_message(
            &payload.txn_id,
            payload.kind,
            decision,
            &payload.rp.id,
            &payload.challenge,
            &payload_bytes,
            code,
            &self.device_id,
            iat.0,
        );
        let pin_proof = pin.map(|key| {
            crypto::b64(&crypto::seal(&self.encryption_key, &crypto::sign(key, message.as_bytes()), payload.txn_id.as_bytes()).unwrap())
        });
        let response = Response {
            decision,
            reason: None,
            verification_code: code.into(),
            issued_at: iat.0,
            device_signature: crypto::b64(&crypto::sign(&self.device, message.as_bytes())),
            pin_proof,
        };
        (payload.txn_id, response)
    }

    async fn send(&self, authority: &Authority, txn: &str, response: &Response) -> Result<ResponseOutcome, Error> {
        let body = serde_json::to_vec(response).unwrap();
        let device = self.authenticated(authority, &format!("/requests/{txn}/response"), &body).await?;
        Ok(authority.respond(&device, txn, response).await?.result)
    }
}

fn real_code(envelope: &Envelope) -> String {
    let payload: RequestPayload = serde_json::from_slice(&crypto::unb64(&envelope.payload).unwrap()).unwrap();
    crypto::verification_code(&crypto::unb64(&payload.challenge).unwrap())
}

fn wrong_code(code: &str) -> String {
    format!("{:04}", (code.parse::<u32>().unwrap() + 1) % 10_000)
}

async fn browser(authority: &Authority) -> Session {
    authority.new_session().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protocol_holds_on_every_store() {
    let dir = tempfile::tempdir().unwrap();
    for db in store::test_support::databases(dir.path()).await {
        let name = db.name;
        let clock = Arc::new(ManualClock::new(START));
        let authority = open(&db.url, clock.clone()).await;
        let code = enrol(&authority, "petar@example.rs").await;

        // Activation: the code works once.
        let app = activate(&authority, &code).await.unwrap();
        assert!(matches!(activate(&authority, &code).await, Err(Error::Rejected(Rejection::InvalidCode))), "{name}: a code used twice");

        // A login approved by the app completes in the browser that started it, only there, once.
        let first = browser(&authority).await;
        let other = browser(&authority).await;
        let started = authority.login_start(&first, "Petar@Example.rs", "127.0.0.1", "Chrome / Linux").await.unwrap();
        let (envelope, payload) = app.next_request(&authority).await;
        assert_eq!(payload.txn_id, started.txn_id);
        // The app verifies the server's signature over the exact payload bytes.
        let signing_key = authority.store().service_key("app_signing").await.unwrap().unwrap();
        let signing = authority.store().key(&signing_key).await.unwrap();
        crypto::verify(&signing.public_key, &crypto::unb64(&envelope.payload).unwrap(), &crypto::unb64(&envelope.signature).unwrap()).unwrap();
        assert_eq!(real_code(&envelope), started.verification_code);
        let (txn, approve) = app.answer(&envelope, Decision::Approve, &started.verification_code, Some(&app.pin), clock.now());
        assert_eq!(app.send(&authority, &txn, &approve).await.unwrap(), ResponseOutcome::Approved, "{name}");
        // A replayed approval is refused and changes nothing.
        assert!(matches!(app.send(&authority, &txn, &approve).await, Err(Error::Rejected(Rejection::NotPending))), "{name}: replay");
        // A second browser cannot complete the first browser's login.
        assert!(matches!(authority.login_complete(&other, &txn).await, Err(Error::Rejected(Rejection::NotFound))), "{name}: other browser");
        let (_, logged_in) = authority.login_complete(&first, &txn).await.unwrap();
        assert_eq!(logged_in.user.as_ref().map(|u| u.email.as_str()), Some("petar@example.rs"));
        assert_ne!(logged_in.record.id_hash, first.record.id_hash, "{name}: a fresh session id");
        assert!(authority.login_complete(&first, &txn).await.is_err(), "{name}: single use");

        // A wrong verification code denies the request.
        let session = browser(&authority).await;
        let started = authority.login_start(&session, "petar@example.rs", "127.0.0.1", "b").await.unwrap();
        let (envelope, _) = app.next_request(&authority).await;
        let (txn, wrong) = app.answer(&envelope, Decision::Approve, &wrong_code(&started.verification_code), Some(&app.pin), clock.now());
        assert_eq!(app.send(&authority, &txn, &wrong).await.unwrap(), ResponseOutcome::Denied);
        let state = authority.login_state(&session, &txn).await.unwrap();
        assert_eq!((state.status, state.hint.as_str()), (TransactionStatus::Failed, "wrong_vc"), "{name}");

        // A deny turned into an approve does not verify.
        let started = authority.login_start(&session, "petar@example.rs", "127.0.0.1", "b").await.unwrap();
        let (envelope, _) = app.next_request(&authority).await;
        let (txn, mut deny) = app.answer(&envelope, Decision::Deny, &started.verification_code, None, clock.now());
        deny.decision = Decision::Approve;
        assert!(matches!(app.send(&authority, &txn, &deny).await, Err(Error::Rejected(Rejection::BadSignature))), "{name}");
        assert_eq!(authority.login_state(&session, &txn).await.unwrap().status, TransactionStatus::Pending);
        // A login approval can never be replayed as a signing approval: the kind is signed.
        // A new request supersedes the pending one.
        let newer = authority.login_start(&session, "petar@example.rs", "127.0.0.1", "b").await.unwrap();
        let state = authority.login_state(&session, &txn).await.unwrap();
        assert_eq!((state.status, state.hint.as_str()), (TransactionStatus::Cancelled, "superseded"), "{name}");

        // An expired request cannot be approved.
        let (envelope, _) = app.next_request(&authority).await;
        clock.advance(121);
        let (txn, late) = app.answer(&envelope, Decision::Approve, &newer.verification_code, Some(&app.pin), clock.now());
        assert!(matches!(app.send(&authority, &txn, &late).await, Err(Error::Rejected(Rejection::NotPending))), "{name}: expired");
        assert_eq!(authority.login_state(&session, &txn).await.unwrap().status, TransactionStatus::Expired);

        // Five wrong PINs in a row lock the device; the fifth fails the request. (A new rate
        // limit window first: this user has started five logins in this one.)
        clock.advance(601);
        let wrong_pin = SecretKey::random(&mut rand::rngs::OsRng);
        let started = authority.login_start(&session, "petar@example.rs", "127.0.0.1", "b").await.unwrap();
        let (envelope, _) = app.next_request(&authority).await;
        for attempt in 1..=5u8 {
            let (txn, answer) = app.answer(&envelope, Decision::Approve, &started.verification_code, Some(&wrong_pin), clock.now());
            let outcome = app.send(&authority, &txn, &answer).await.unwrap();
            if attempt < 5 {
                assert_eq!(outcome, ResponseOutcome::WrongPin, "{name}: attempt {attempt}");
            } else {
                assert_eq!(outcome, ResponseOutcome::PinLocked, "{name}");
            }
        }
        let state = authority.login_state(&session, &started.txn_id).await.unwrap();
        assert_eq!((state.status, state.hint.as_str()), (TransactionStatus::Failed, "pin_locked"));
        // A locked device cannot approve even with the right PIN.
        let started = authority.login_start(&session, "petar@example.rs", "127.0.0.1", "b").await.unwrap();
        let device = app.authenticated(&authority, "/inbox", b"").await.unwrap();
        assert!(authority.inbox(&device, Duration::ZERO).await.unwrap().items.is_empty());
        let _ = started;
        authority.store().close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_codes_die_after_five_wrong_guesses_and_unknown_users_look_known() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("db").display());
    let clock = Arc::new(ManualClock::new(START));
    let authority = open(&url, clock.clone()).await;
    let code = enrol(&authority, "ana@example.rs").await;
    let normalised: String = code.chars().filter(|c| *c != '-').collect();
    let (lookup, secret) = normalised.split_at(6);
    for i in 0..5 {
        let mut guess = secret.as_bytes().to_vec();
        guess[i] = if guess[i] == b'0' { b'1' } else { b'0' };
        let guess = format!("{lookup}{}", String::from_utf8(guess).unwrap());
        assert!(matches!(authority.activation_start(&guess, &caller()).await, Err(Error::Rejected(Rejection::InvalidCode))));
    }
    assert!(matches!(activate(&authority, &code).await, Err(Error::Rejected(Rejection::InvalidCode))), "the right code after 5 guesses");
    // A new code from the officer works.
    let fresh = authority.new_activation_code("ana@example.rs", "officer").await.unwrap();
    assert!(activate(&authority, &fresh.0).await.is_ok());

    // The same answers for an unknown user as for a known one.
    let session = browser(&authority).await;
    let known = authority.login_start(&session, "ana@example.rs", "10.0.0.1", "b").await.unwrap();
    let unknown = authority.login_start(&session, "nobody@example.rs", "10.0.0.2", "b").await.unwrap();
    assert_eq!(known.verification_code.len(), unknown.verification_code.len());
    let (a, b) = (authority.login_state(&session, &known.txn_id).await.unwrap(), authority.login_state(&session, &unknown.txn_id).await.unwrap());
    assert_eq!((a.status, a.hint.as_str()), (b.status, b.hint.as_str()));

    // Rate limit: the sixth login start for one user within ten minutes is refused.
    for _ in 0..4 {
        authority.login_start(&session, "ana@example.rs", "10.0.0.3", "b").await.unwrap();
    }
    assert!(matches!(authority.login_start(&session, "ana@example.rs", "10.0.0.4", "b").await, Err(Error::Rejected(Rejection::RateLimited))));
    clock.advance(601);
    assert!(authority.login_start(&session, "ana@example.rs", "10.0.0.4", "b").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_can_no_longer_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("db").display());
    let clock = Arc::new(ManualClock::new(START));
    let authority = open(&url, clock.clone()).await;
    let code = enrol(&authority, "mila@example.rs").await;
    let app = activate(&authority, &code).await.unwrap();
    // Logged in through this device.
    let session = browser(&authority).await;
    let started = authority.login_start(&session, "mila@example.rs", "127.0.0.1", "b").await.unwrap();
    let (envelope, _) = app.next_request(&authority).await;
    let (txn, approve) = app.answer(&envelope, Decision::Approve, &started.verification_code, Some(&app.pin), clock.now());
    app.send(&authority, &txn, &approve).await.unwrap();
    let (token, _) = authority.login_complete(&session, &txn).await.unwrap();
    assert!(authority.session(&token).await.unwrap().is_some());
    // The officer revokes the device certificate: the device is deactivated, its session ends.
    let device = authority.store().device(&app.device_id).await.unwrap().unwrap();
    let serial = domain::Serial::parse_hex(&device.certificate_serial).unwrap();
    authority.revoke(&serial, domain::RevocationReason::CessationOfOperation, "officer").await.unwrap();
    assert!(authority.session(&token).await.unwrap().is_none(), "the device's session ended");
    assert!(matches!(app.authenticated(&authority, "/inbox", b"").await, Err(Error::Rejected(Rejection::DeviceRevoked))));
    // A new login request cannot even be fetched by the revoked device.
    let session = browser(&authority).await;
    authority.login_start(&session, "mila@example.rs", "127.0.0.1", "b").await.unwrap();
    assert!(matches!(app.authenticated(&authority, "/inbox", b"").await, Err(Error::Rejected(Rejection::DeviceRevoked))));
}

/// A signing request for `hashes`, as the CSC API or the portal makes it.
fn sign_request(credential_id: &str, hashes: &[Vec<u8>]) -> SignRequest {
    SignRequest {
        credential_id: credential_id.into(),
        algorithm: HashAlgorithm::Sha256,
        hashes: hashes.to_vec(),
        num_signatures: hashes.len(),
        titles: vec!["Уговор.pdf".into()],
        requester: "test integrator".into(),
        context: proto::app::RequestContext { browser: "test".into(), ip: "127.0.0.1".into() },
    }
}

/// Asks for approval of `hashes` and answers as the app; returns the handle.
async fn authorised(authority: &Authority, app: &App, user: &store::UserRecord, credential: &str, hashes: &[Vec<u8>], clock: &ManualClock) -> String {
    let handle = authority.authorize_signing(user, &sign_request(credential, hashes), "api:test").await.unwrap();
    let (envelope, payload) = app.next_request(authority).await;
    // The app is shown exactly the hashes, and who asks.
    let shown: Vec<String> = payload.sign.as_ref().unwrap().documents.iter().map(|d| d.hash.clone()).collect();
    assert_eq!(shown, hashes.iter().map(|h| crypto::b64(h)).collect::<Vec<_>>());
    assert_eq!(payload.rp.name, "test integrator");
    let (txn, approve) = app.answer(&envelope, Decision::Approve, &real_code(&envelope), Some(&app.pin), clock.now());
    assert_eq!(app.send(authority, &txn, &approve).await.unwrap(), ResponseOutcome::Approved);
    handle
}

async fn sad_of(authority: &Authority, user: &store::UserRecord, handle: &str) -> String {
    match authority.authorization_check(user, handle).await.unwrap() {
        AuthorizationCheck::Authorized { sad, expires_in } => {
            assert_eq!(expires_in, 300);
            sad
        }
        other => panic!("expected a SAD, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sad_signs_exactly_what_was_approved_once_in_five_minutes() {
    let dir = tempfile::tempdir().unwrap();
    for db in store::test_support::databases(dir.path()).await {
        let name = db.name;
        let clock = Arc::new(ManualClock::new(START));
        let authority = open(&db.url, clock.clone()).await;
        let person = |jmbg: &str| pki::profile::Person { given_name: "Петар".into(), surname: "Петровић".into(), jmbg: Jmbg::parse(jmbg).unwrap() };
        let mut parties = Vec::new();
        for email in ["petar@example.rs", "jovana@example.rs"] {
            let app = activate(&authority, &enrol(&authority, email).await).await.unwrap();
            let issued = authority.issue_cloud_certificate(&person("0101990710008"), Some(email), "officer").await.unwrap();
            let user = authority.store().user_by_email(email).await.unwrap().unwrap();
            parties.push((app, user, issued.serial.to_hex()));
        }
        let [(app, user, credential), (other_app, other, other_credential)] = &parties[..] else { unreachable!() };
        let (h1, h2) = (vec![1u8; 32], vec![2u8; 32]);
        let sign = |user, credential, sad, hashes: &[Vec<u8>]| {
            let authority = &authority;
            let hashes = hashes.to_vec();
            async move { authority.sign_hashes(user, credential, sad, HashAlgorithm::Sha256, SignatureScheme::Ecdsa, &hashes).await }
        };

        // Listing shows each user only their own credential.
        let ids: Vec<String> = authority.credentials(user, true).await.unwrap().into_iter().map(|c| c.id).collect();
        assert_eq!(&ids, &[credential.clone()], "{name}");
        assert!(authority.credential(user, other_credential).await.unwrap().is_none(), "{name}: another user's credential");
        assert!(matches!(
            authority.authorize_signing(user, &sign_request(other_credential, &[h1.clone()]), "api:test").await,
            Err(SigningError::UnknownCredential)
        ));

        // Pending until the app answers; then the SAD, handed out once.
        let handle = authority.authorize_signing(user, &sign_request(credential, &[h1.clone()]), "api:test").await.unwrap();
        assert!(matches!(authority.authorization_check(user, &handle).await.unwrap(), AuthorizationCheck::Pending { .. }));
        assert!(matches!(authority.authorization_check(other, &handle).await, Err(SigningError::UnknownHandle)), "{name}: another user's handle");
        let (envelope, payload) = app.next_request(&authority).await;
        assert_eq!(payload.kind, proto::app::RequestKind::Sign);
        // A wrong PIN is counted, as for logins; the request stays open.
        let wrong_pin = SecretKey::random(&mut rand::rngs::OsRng);
        let (txn, bad) = app.answer(&envelope, Decision::Approve, &real_code(&envelope), Some(&wrong_pin), clock.now());
        assert_eq!(app.send(&authority, &txn, &bad).await.unwrap(), ResponseOutcome::WrongPin);
        let (txn, approve) = app.answer(&envelope, Decision::Approve, &real_code(&envelope), Some(&app.pin), clock.now());
        assert_eq!(app.send(&authority, &txn, &approve).await.unwrap(), ResponseOutcome::Approved);
        let sad = sad_of(&authority, user, &handle).await;
        assert!(matches!(authority.authorization_check(user, &handle).await, Err(SigningError::UnknownHandle)), "{name}: the SAD is handed out once");

        // A SAD for h1 does not sign h2, nor h1 twice in one call; another user cannot spend it.
        assert!(matches!(sign(user, credential, &sad, &[h2.clone()]).await, Err(SigningError::Sad(SadRefusal::HashNotAuthorized))), "{name}");
        assert!(matches!(sign(user, credential, &sad, &[h1.clone(), h1.clone()]).await, Err(SigningError::Sad(SadRefusal::HashNotAuthorized))));
        assert!(matches!(sign(other, other_credential, &sad, &[h1.clone()]).await, Err(SigningError::Sad(SadRefusal::Invalid))), "{name}: another user's SAD");
        assert!(matches!(sign(other, credential, &sad, &[h1.clone()]).await, Err(SigningError::UnknownCredential)), "{name}");
        assert!(matches!(
            authority.sign_hashes(user, credential, &sad, HashAlgorithm::Sha256, SignatureScheme::RsaPkcs1, &[h1.clone()]).await,
            Err(SigningError::WrongScheme)
        ));
        // The signature verifies with the certificate's key over exactly h1.
        let signatures = sign(user, credential, &sad, &[h1.clone()]).await.unwrap();
        let certificate = authority.credential(user, credential).await.unwrap().unwrap();
        let spki = {
            use der::{Decode, Encode};
            let cert = x509_cert::Certificate::from_der(&certificate.chain[0].0).unwrap();
            cert.tbs_certificate.subject_public_key_info.to_der().unwrap()
        };
        let key = <p256::ecdsa::VerifyingKey as p256::pkcs8::DecodePublicKey>::from_public_key_der(&spki).unwrap();
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        key.verify_prehash(&h1, &p256::ecdsa::Signature::from_der(&signatures[0]).unwrap()).unwrap();
        // Spent: a second use is refused.
        assert!(matches!(sign(user, credential, &sad, &[h1.clone()]).await, Err(SigningError::Sad(SadRefusal::Spent))), "{name}: used twice");

        // Five minutes, then it expires.
        let handle = authorised(&authority, app, user, credential, &[h1.clone(), h2.clone()], &clock).await;
        let sad = sad_of(&authority, user, &handle).await;
        clock.advance(300);
        assert!(matches!(sign(user, credential, &sad, &[h1.clone()]).await, Err(SigningError::Sad(SadRefusal::Expired))), "{name}: expired");

        // A denied request never yields a SAD.
        let handle = authority.authorize_signing(user, &sign_request(credential, &[h1.clone()]), "api:test").await.unwrap();
        let (envelope, _) = app.next_request(&authority).await;
        let (txn, deny) = app.answer(&envelope, Decision::Deny, &real_code(&envelope), None, clock.now());
        assert_eq!(app.send(&authority, &txn, &deny).await.unwrap(), ResponseOutcome::Denied);
        assert!(matches!(authority.authorization_check(user, &handle).await, Err(SigningError::Denied)), "{name}: denied");

        // Nor does one left unanswered.
        let handle = authority.authorize_signing(user, &sign_request(credential, &[h1.clone()]), "api:test").await.unwrap();
        clock.advance(121);
        assert!(matches!(authority.authorization_check(user, &handle).await, Err(SigningError::RequestExpired)), "{name}");

        // A revoked certificate signs nothing, even with a SAD obtained before.
        let handle = authorised(&authority, other_app, other, other_credential, &[h1.clone()], &clock).await;
        let sad = sad_of(&authority, other, &handle).await;
        authority.revoke(&domain::Serial::parse_hex(other_credential).unwrap(), domain::RevocationReason::KeyCompromise, "officer").await.unwrap();
        assert!(matches!(sign(other, other_credential, &sad, &[h1.clone()]).await, Err(SigningError::Revoked)), "{name}: revoked");
        assert!(matches!(
            authority.authorize_signing(other, &sign_request(other_credential, &[h1.clone()]), "api:test").await,
            Err(SigningError::Revoked)
        ));

        // Each request rings the phone: at most 30 in 10 minutes per user.
        let mut refused_at = None;
        for attempt in 0..=domain::RateLimit::SIGN_REQUESTS_PER_USER.limit {
            let result = authority.authorize_signing(user, &sign_request(credential, &[h1.clone()]), "api:test").await;
            if matches!(result, Err(SigningError::Failed(Error::Rejected(Rejection::RateLimited)))) {
                refused_at = Some(attempt);
                break;
            }
        }
        assert!(refused_at.is_some(), "{name}: sign requests are rate limited");

        // A SAD whose approving device was deactivated signs nothing.
        clock.advance(600);
        let handle = authorised(&authority, app, user, credential, &[h1.clone()], &clock).await;
        let sad = sad_of(&authority, user, &handle).await;
        let device = authority.store().device(&app.device_id).await.unwrap().unwrap();
        let device_serial = domain::Serial::parse_hex(&device.certificate_serial).unwrap();
        authority.revoke(&device_serial, domain::RevocationReason::Unspecified, "officer").await.unwrap();
        assert!(matches!(sign(user, credential, &sad, &[h1.clone()]).await, Err(SigningError::NoDevice)), "{name}: deactivated device");
        assert!(matches!(
            authority.authorize_signing(user, &sign_request(credential, &[h1.clone()]), "api:test").await,
            Err(SigningError::NoDevice)
        ));

        // Every step is in the audit log, with the hashes; the chain holds.
        let events: Vec<String> = authority.store().audit_entries().await.unwrap().into_iter().map(|e| e.event).collect();
        for event in ["signature.requested", "signature.authorized", "signature.created", "signature.refused"] {
            assert!(events.iter().any(|e| e == event), "{name}: audit has {event}");
        }
        assert!(authority.verify_audit().await.unwrap().is_ok());
    }
}

/// Software keys always; SoftHSM2 too when scripts/test configured it.
fn key_backends() -> Vec<(&'static str, Arc<dyn KeyBackend>)> {
    let mut out: Vec<(&'static str, Arc<dyn KeyBackend>)> =
        vec![("software", Arc::new(SoftwareKeyBackend::new(MasterKey::generate())))];
    hsm::test_support::private_token().expect("a private copy of the test token");
    if let (Ok(module), Ok(token), Ok(pin)) = (
        std::env::var("EIDPORTAL_TEST_PKCS11_MODULE"),
        std::env::var("EIDPORTAL_TEST_PKCS11_TOKEN"),
        std::env::var("EIDPORTAL_TEST_PKCS11_PIN"),
    ) {
        let backend = hsm::Pkcs11Backend::open(module.as_ref(), &token, hsm::Pin::new(pin)).expect("open the test token");
        out.push(("pkcs11", Arc::new(backend)));
    } else if std::env::var_os("EIDPORTAL_TEST_REQUIRE_ALL").is_some() {
        panic!("EIDPORTAL_TEST_PKCS11_* are not set but EIDPORTAL_TEST_REQUIRE_ALL is: run scripts/test");
    }
    out
}

/// Finding 8: someone with write access to the database points a cloud certificate's row at
/// the qualified CA's key. signHash with a valid SAD must not make the CA key sign (it would
/// sign whatever hash it is given: a certificate's TBS, for instance).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_row_pointed_at_the_ca_key_cannot_sign() {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    for (backend, keys) in key_backends() {
        let sub = dir.path().join(backend);
        std::fs::create_dir_all(&sub).unwrap();
        for db in store::test_support::databases(&sub).await {
            let name = format!("{backend} on {}", db.name);
            let clock = Arc::new(ManualClock::new(START));
            let store = Store::connect(&db.url).await.unwrap();
            let authority =
                Authority::open(store, keys.clone(), clock.clone(), Settings::new("http://127.0.0.1:8080")).await.unwrap();
            let email = "petar@example.rs";
            let app = activate(&authority, &enrol(&authority, email).await).await.unwrap();
            let person = pki::profile::Person { given_name: "Петар".into(), surname: "Петровић".into(), jmbg: Jmbg::parse("0101990710008").unwrap() };
            let issued = authority.issue_cloud_certificate(&person, Some(email), "officer").await.unwrap();
            let user = authority.store().user_by_email(email).await.unwrap().unwrap();
            let credential = issued.serial.to_hex();
            let hash = vec![7u8; 32];

            // Its own key signs.
            let handle = authorised(&authority, &app, &user, &credential, &[hash.clone()], &clock).await;
            let sad = sad_of(&authority, &user, &handle).await;
            authority.sign_hashes(&user, &credential, &sad, HashAlgorithm::Sha256, SignatureScheme::Ecdsa, &[hash.clone()]).await.unwrap();

            // The row now names the qualified CA's key.
            let ca_key = authority.store().authority("qualified").await.unwrap().unwrap().key_id;
            let raw = sqlx::AnyPool::connect(&db.url).await.unwrap();
            let changed = sqlx::query("UPDATE certificates SET key_id = $1 WHERE serial = $2")
                .bind(ca_key.0.clone())
                .bind(credential.clone())
                .execute(&raw)
                .await
                .unwrap()
                .rows_affected();
            assert_eq!(changed, 1, "{name}");
            raw.close().await;

            let handle = authorised(&authority, &app, &user, &credential, &[hash.clone()], &clock).await;
            let sad = sad_of(&authority, &user, &handle).await;
            let refused = authority.sign_hashes(&user, &credential, &sad, HashAlgorithm::Sha256, SignatureScheme::Ecdsa, &[hash.clone()]).await;
            match refused {
                Err(SigningError::Failed(Error::Pki(pki::Error::KeyMismatch(_)))) => {}
                other => panic!("{name}: the CA key signed for a cloud certificate: {other:?}"),
            }
            authority.store().close().await;
        }
    }
}
