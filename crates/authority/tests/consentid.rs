//! The ConsentID protocol on the server, with a simulated app that speaks the wire contract
//! (crates/proto) and an injected clock: activation, login approval, and every refusal the
//! protocol promises (DESIGN §4), on SQLite and PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cloned_ref_to_slice_refs
)]

use std::sync::Arc;
use std::time::Duration;

use p256::SecretKey;

use authority::login::consentid::Caller;
use authority::login::Session;
use authority::signing::{AuthorizationCheck, SignRequest, SigningRefusal};
use authority::test_app::{caller, App};
use authority::{Authority, Clock, Error, ManualClock, Rejection, Settings};
use domain::signing::{HashAlgorithm, SadRefusal, SignatureScheme};
use domain::{Jmbg, TransactionStatus, UnixTime};
use pki::{KeyBackend, MasterKey, SoftwareKeyBackend};
use proto::app::{Decision, Envelope, RequestPayload, ResponseOutcome};
use proto::crypto;
use store::{
    AccountQueries as _, AuditQueries as _, CertificateQueries as _, LoginQueries as _, Store,
};

/// An app calling from `ip`.
fn at(ip: &str) -> Caller {
    Caller { ip: ip.into() }
}

const START: UnixTime = UnixTime(1_795_577_673);

async fn open(url: &str, clock: Arc<ManualClock>) -> Authority {
    let keys: Arc<dyn KeyBackend> = Arc::new(SoftwareKeyBackend::new(MasterKey::generate()));
    Authority::open(
        Store::connect(url).await.unwrap(),
        keys,
        clock,
        Settings::new("http://127.0.0.1:8080"),
    )
    .await
    .unwrap()
}

async fn enrol(authority: &Authority, email: &str) -> String {
    let new = authority::ra::accounts::NewUser {
        email: email.into(),
        given_name: "Петар".into(),
        surname: "Петровић".into(),
        jmbg: Jmbg::parse("0101990710008").unwrap(),
        password: None,
    };
    authority.ra.add_user(new, "officer").await.unwrap().1 .0
}

fn real_code(envelope: &Envelope) -> String {
    let payload: RequestPayload =
        serde_json::from_slice(&crypto::unb64(&envelope.payload).unwrap()).unwrap();
    crypto::verification_code(&crypto::unb64(&payload.challenge).unwrap())
}

fn wrong_code(code: &str) -> String {
    format!("{:04}", (code.parse::<u32>().unwrap() + 1) % 10_000)
}

async fn browser(authority: &Authority) -> Session {
    authority.login.new_session().1
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
        let app = App::activate(&authority, &code).await.unwrap();
        assert!(
            matches!(
                App::activate(&authority, &code).await,
                Err(Error::Rejected(Rejection::InvalidCode))
            ),
            "{name}: a code used twice"
        );

        // A login approved by the app completes in the browser that started it, only there, once.
        let first = browser(&authority).await;
        let other = browser(&authority).await;
        let started = authority
            .login
            .login_start(&first, "Petar@Example.rs", "127.0.0.1", "Chrome / Linux")
            .await
            .unwrap();
        let (envelope, payload) = app.next_request(&authority).await;
        assert_eq!(payload.txn_id, started.txn_id);
        // The app verifies the server's signature over the exact payload bytes.
        let signing_key = authority
            .store()
            .service_key("app_signing")
            .await
            .unwrap()
            .unwrap();
        let signing = authority.store().key(&signing_key).await.unwrap();
        crypto::verify(
            &signing.public_key,
            &crypto::unb64(&envelope.payload).unwrap(),
            &crypto::unb64(&envelope.signature).unwrap(),
        )
        .unwrap();
        assert_eq!(real_code(&envelope), started.verification_code);
        let (txn, approve) = app.answer(
            &envelope,
            Decision::Approve,
            &started.verification_code,
            Some(&app.pin),
            clock.now(),
        );
        assert_eq!(
            app.send(&authority, &txn, &approve).await.unwrap(),
            ResponseOutcome::Approved,
            "{name}"
        );
        // A replayed approval is refused and changes nothing.
        assert!(
            matches!(
                app.send(&authority, &txn, &approve).await,
                Err(Error::Rejected(Rejection::NotPending))
            ),
            "{name}: replay"
        );
        // A second browser cannot complete the first browser's login.
        assert!(
            matches!(
                authority.login.login_complete(&other, &txn).await,
                Err(Error::Rejected(Rejection::NotFound))
            ),
            "{name}: other browser"
        );
        let (_, logged_in) = authority.login.login_complete(&first, &txn).await.unwrap();
        assert_eq!(
            logged_in.user.as_ref().map(|u| u.email.as_str()),
            Some("petar@example.rs")
        );
        assert_ne!(
            logged_in.record().id_hash,
            first.record().id_hash,
            "{name}: a fresh session id"
        );
        assert!(
            authority.login.login_complete(&first, &txn).await.is_err(),
            "{name}: single use"
        );

        // A wrong verification code denies the request.
        let session = browser(&authority).await;
        let started = authority
            .login
            .login_start(&session, "petar@example.rs", "127.0.0.1", "b")
            .await
            .unwrap();
        let (envelope, _) = app.next_request(&authority).await;
        let (txn, wrong) = app.answer(
            &envelope,
            Decision::Approve,
            &wrong_code(&started.verification_code),
            Some(&app.pin),
            clock.now(),
        );
        assert_eq!(
            app.send(&authority, &txn, &wrong).await.unwrap(),
            ResponseOutcome::Denied
        );
        let state = authority.login.login_state(&session, &txn).await.unwrap();
        assert_eq!(
            (state.status, state.hint.as_str()),
            (TransactionStatus::Failed, "wrong_vc"),
            "{name}"
        );

        // A deny turned into an approve does not verify.
        let started = authority
            .login
            .login_start(&session, "petar@example.rs", "127.0.0.1", "b")
            .await
            .unwrap();
        let (envelope, _) = app.next_request(&authority).await;
        let (txn, mut deny) = app.answer(
            &envelope,
            Decision::Deny,
            &started.verification_code,
            None,
            clock.now(),
        );
        deny.decision = Decision::Approve;
        assert!(
            matches!(
                app.send(&authority, &txn, &deny).await,
                Err(Error::Rejected(Rejection::BadSignature))
            ),
            "{name}"
        );
        assert_eq!(
            authority
                .login
                .login_state(&session, &txn)
                .await
                .unwrap()
                .status,
            TransactionStatus::Pending
        );
        // A login approval can never be replayed as a signing approval: the kind is signed.
        // A new request supersedes the pending one.
        let newer = authority
            .login
            .login_start(&session, "petar@example.rs", "127.0.0.1", "b")
            .await
            .unwrap();
        let state = authority.login.login_state(&session, &txn).await.unwrap();
        assert_eq!(
            (state.status, state.hint.as_str()),
            (TransactionStatus::Cancelled, "superseded"),
            "{name}"
        );

        // An expired request cannot be approved.
        let (envelope, _) = app.next_request(&authority).await;
        clock.advance(121);
        let (txn, late) = app.answer(
            &envelope,
            Decision::Approve,
            &newer.verification_code,
            Some(&app.pin),
            clock.now(),
        );
        assert!(
            matches!(
                app.send(&authority, &txn, &late).await,
                Err(Error::Rejected(Rejection::NotPending))
            ),
            "{name}: expired"
        );
        assert_eq!(
            authority
                .login
                .login_state(&session, &txn)
                .await
                .unwrap()
                .status,
            TransactionStatus::Expired
        );

        // Five wrong PINs in a row lock the device; the fifth fails the request. (A new rate
        // limit window first: this user has started five logins in this one.)
        clock.advance(601);
        let wrong_pin = SecretKey::random(&mut rand::rngs::OsRng);
        let started = authority
            .login
            .login_start(&session, "petar@example.rs", "127.0.0.1", "b")
            .await
            .unwrap();
        let (envelope, _) = app.next_request(&authority).await;
        for attempt in 1..=5u8 {
            let (txn, answer) = app.answer(
                &envelope,
                Decision::Approve,
                &started.verification_code,
                Some(&wrong_pin),
                clock.now(),
            );
            let outcome = app.send(&authority, &txn, &answer).await.unwrap();
            if attempt < 5 {
                assert_eq!(
                    outcome,
                    ResponseOutcome::WrongPin,
                    "{name}: attempt {attempt}"
                );
            } else {
                assert_eq!(outcome, ResponseOutcome::PinLocked, "{name}");
            }
        }
        let state = authority
            .login
            .login_state(&session, &started.txn_id)
            .await
            .unwrap();
        assert_eq!(
            (state.status, state.hint.as_str()),
            (TransactionStatus::Failed, "pin_locked")
        );
        // A locked device cannot approve even with the right PIN.
        let started = authority
            .login
            .login_start(&session, "petar@example.rs", "127.0.0.1", "b")
            .await
            .unwrap();
        let device = app.authenticated(&authority, "/inbox", b"").await.unwrap();
        assert!(authority
            .login
            .inbox(&device, &caller(), Duration::ZERO)
            .await
            .unwrap()
            .items
            .is_empty());
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
        assert!(matches!(
            authority.login.activation_start(&guess, &caller()).await,
            Err(Error::Rejected(Rejection::InvalidCode))
        ));
    }
    assert!(
        matches!(
            App::activate(&authority, &code).await,
            Err(Error::Rejected(Rejection::InvalidCode))
        ),
        "the right code after 5 guesses"
    );
    // A new code from the officer works.
    let fresh = authority
        .ra
        .new_activation_code("ana@example.rs", "officer")
        .await
        .unwrap();
    assert!(App::activate(&authority, &fresh.0).await.is_ok());

    // The same answers for an unknown user as for a known one.
    let session = browser(&authority).await;
    let known = authority
        .login
        .login_start(&session, "ana@example.rs", "10.0.0.1", "b")
        .await
        .unwrap();
    let unknown = authority
        .login
        .login_start(&session, "nobody@example.rs", "10.0.0.2", "b")
        .await
        .unwrap();
    assert_eq!(
        known.verification_code.len(),
        unknown.verification_code.len()
    );
    let (a, b) = (
        authority
            .login
            .login_state(&session, &known.txn_id)
            .await
            .unwrap(),
        authority
            .login
            .login_state(&session, &unknown.txn_id)
            .await
            .unwrap(),
    );
    assert_eq!((a.status, a.hint.as_str()), (b.status, b.hint.as_str()));

    // Rate limit: the sixth login start for one user from one address within ten minutes is
    // refused (per user and address: another address still has its own five).
    for _ in 0..5 {
        authority
            .login
            .login_start(&session, "ana@example.rs", "10.0.0.3", "b")
            .await
            .unwrap();
    }
    assert!(matches!(
        authority
            .login
            .login_start(&session, "ana@example.rs", "10.0.0.3", "b")
            .await,
        Err(Error::Rejected(Rejection::RateLimited))
    ));
    clock.advance(601);
    assert!(authority
        .login
        .login_start(&session, "ana@example.rs", "10.0.0.4", "b")
        .await
        .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_can_no_longer_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("db").display());
    let clock = Arc::new(ManualClock::new(START));
    let authority = open(&url, clock.clone()).await;
    let code = enrol(&authority, "mila@example.rs").await;
    let app = App::activate(&authority, &code).await.unwrap();
    // Logged in through this device.
    let session = browser(&authority).await;
    let started = authority
        .login
        .login_start(&session, "mila@example.rs", "127.0.0.1", "b")
        .await
        .unwrap();
    let (envelope, _) = app.next_request(&authority).await;
    let (txn, approve) = app.answer(
        &envelope,
        Decision::Approve,
        &started.verification_code,
        Some(&app.pin),
        clock.now(),
    );
    app.send(&authority, &txn, &approve).await.unwrap();
    let (token, _) = authority
        .login
        .login_complete(&session, &txn)
        .await
        .unwrap();
    assert!(authority.login.session(&token).await.unwrap().is_some());
    // The officer revokes the device certificate: the device is deactivated, its session ends.
    let device = authority
        .store()
        .device(&app.device_id.as_str().into())
        .await
        .unwrap()
        .unwrap();
    let serial = device.certificate_serial;
    authority
        .va
        .revoke(
            &serial,
            domain::RevocationReason::CessationOfOperation,
            "officer",
        )
        .await
        .unwrap();
    assert!(
        authority.login.session(&token).await.unwrap().is_none(),
        "the device's session ended"
    );
    assert!(matches!(
        app.authenticated(&authority, "/inbox", b"").await,
        Err(Error::Rejected(Rejection::DeviceRevoked))
    ));
    // A new login request cannot even be fetched by the revoked device.
    let session = browser(&authority).await;
    authority
        .login
        .login_start(&session, "mila@example.rs", "127.0.0.1", "b")
        .await
        .unwrap();
    assert!(matches!(
        app.authenticated(&authority, "/inbox", b"").await,
        Err(Error::Rejected(Rejection::DeviceRevoked))
    ));
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
        context: proto::app::RequestContext {
            browser: "test".into(),
            ip: "127.0.0.1".into(),
        },
    }
}

/// Asks for approval of `hashes` and answers as the app; returns the handle.
async fn authorised(
    authority: &Authority,
    app: &App,
    user: &authority::Account,
    credential: &str,
    hashes: &[Vec<u8>],
    clock: &ManualClock,
) -> String {
    let handle = authority
        .signing
        .authorize_signing(user, &sign_request(credential, hashes), "api:test")
        .await
        .unwrap();
    let (envelope, payload) = app.next_request(authority).await;
    // The app is shown exactly the hashes, and who asks.
    let shown: Vec<String> = payload
        .sign
        .as_ref()
        .unwrap()
        .documents
        .iter()
        .map(|d| d.hash.clone())
        .collect();
    assert_eq!(
        shown,
        hashes.iter().map(|h| crypto::b64(h)).collect::<Vec<_>>()
    );
    assert_eq!(payload.rp.name, "test integrator");
    let (txn, approve) = app.answer(
        &envelope,
        Decision::Approve,
        &real_code(&envelope),
        Some(&app.pin),
        clock.now(),
    );
    assert_eq!(
        app.send(authority, &txn, &approve).await.unwrap(),
        ResponseOutcome::Approved
    );
    handle
}

async fn sad_of(authority: &Authority, user: &authority::Account, handle: &str) -> domain::Sad {
    match authority
        .signing
        .authorization_check(user, handle, "api:test")
        .await
        .unwrap()
    {
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
        let person = |jmbg: &str| pki::profile::Person {
            given_name: "Петар".into(),
            surname: "Петровић".into(),
            jmbg: Jmbg::parse(jmbg).unwrap(),
        };
        let mut parties = Vec::new();
        for email in ["petar@example.rs", "jovana@example.rs"] {
            let app = App::activate(&authority, &enrol(&authority, email).await)
                .await
                .unwrap();
            let issued = authority
                .ca
                .issue_cloud_certificate(&person("0101990710008"), Some(email), "officer")
                .await
                .unwrap();
            let user: authority::Account = authority
                .store()
                .user_by_email(email)
                .await
                .unwrap()
                .unwrap()
                .into();
            parties.push((app, user, issued.serial.to_hex()));
        }
        let [(app, user, credential), (other_app, other, other_credential)] = &parties[..] else {
            unreachable!()
        };
        let (h1, h2) = (vec![1u8; 32], vec![2u8; 32]);
        let sign = |user, credential, sad, hashes: &[Vec<u8>]| {
            let authority = &authority;
            let hashes = hashes.to_vec();
            async move {
                authority
                    .signing
                    .sign_hashes(
                        user,
                        "api:test",
                        credential,
                        sad,
                        HashAlgorithm::Sha256,
                        SignatureScheme::Ecdsa,
                        &hashes,
                    )
                    .await
            }
        };

        // Listing shows each user only their own credential.
        let ids: Vec<String> = authority
            .signing
            .credentials(user, true)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(&ids, &[credential.clone()], "{name}");
        assert!(
            authority
                .signing
                .credential(user, other_credential)
                .await
                .unwrap()
                .is_none(),
            "{name}: another user's credential"
        );
        assert!(matches!(
            authority
                .signing
                .authorize_signing(
                    user,
                    &sign_request(other_credential, &[h1.clone()]),
                    "api:test"
                )
                .await,
            Err(Error::Signing(SigningRefusal::UnknownCredential))
        ));

        // Pending until the app answers; then the SAD, handed out once.
        let handle = authority
            .signing
            .authorize_signing(user, &sign_request(credential, &[h1.clone()]), "api:test")
            .await
            .unwrap();
        assert!(matches!(
            authority
                .signing
                .authorization_check(user, &handle, "api:test")
                .await
                .unwrap(),
            AuthorizationCheck::Pending { .. }
        ));
        assert!(
            matches!(
                authority
                    .signing
                    .authorization_check(other, &handle, "api:test")
                    .await,
                Err(Error::Signing(SigningRefusal::UnknownHandle))
            ),
            "{name}: another user's handle"
        );
        assert!(
            matches!(
                authority
                    .signing
                    .authorization_check(user, &handle, "api:another-token")
                    .await,
                Err(Error::Signing(SigningRefusal::UnknownHandle))
            ),
            "{name}: the same user's other token does not poll this handle"
        );
        let (envelope, payload) = app.next_request(&authority).await;
        assert_eq!(payload.kind, proto::app::RequestKind::Sign);
        // A wrong PIN is counted, as for logins; the request stays open.
        let wrong_pin = SecretKey::random(&mut rand::rngs::OsRng);
        let (txn, bad) = app.answer(
            &envelope,
            Decision::Approve,
            &real_code(&envelope),
            Some(&wrong_pin),
            clock.now(),
        );
        assert_eq!(
            app.send(&authority, &txn, &bad).await.unwrap(),
            ResponseOutcome::WrongPin
        );
        let (txn, approve) = app.answer(
            &envelope,
            Decision::Approve,
            &real_code(&envelope),
            Some(&app.pin),
            clock.now(),
        );
        assert_eq!(
            app.send(&authority, &txn, &approve).await.unwrap(),
            ResponseOutcome::Approved
        );
        let sad = sad_of(&authority, user, &handle).await;
        assert!(
            matches!(
                authority
                    .signing
                    .authorization_check(user, &handle, "api:test")
                    .await,
                Err(Error::Signing(SigningRefusal::UnknownHandle))
            ),
            "{name}: the SAD is handed out once"
        );

        // A SAD for h1 does not sign h2, nor h1 twice in one call; another user cannot spend it.
        assert!(
            matches!(
                sign(user, credential, &sad, &[h2.clone()]).await,
                Err(Error::Signing(SigningRefusal::Sad(
                    SadRefusal::HashNotAuthorized
                )))
            ),
            "{name}"
        );
        assert!(matches!(
            sign(user, credential, &sad, &[h1.clone(), h1.clone()]).await,
            Err(Error::Signing(SigningRefusal::Sad(
                SadRefusal::HashNotAuthorized
            )))
        ));
        assert!(
            matches!(
                sign(other, other_credential, &sad, &[h1.clone()]).await,
                Err(Error::Signing(SigningRefusal::Sad(SadRefusal::Invalid)))
            ),
            "{name}: another user's SAD"
        );
        assert!(
            matches!(
                authority
                    .signing
                    .sign_hashes(
                        user,
                        "api:another-token",
                        credential,
                        &sad,
                        HashAlgorithm::Sha256,
                        SignatureScheme::Ecdsa,
                        &[h1.clone()]
                    )
                    .await,
                Err(Error::Signing(SigningRefusal::Sad(SadRefusal::Invalid)))
            ),
            "{name}: the same user's other token does not spend this SAD"
        );
        assert!(
            matches!(
                sign(other, credential, &sad, &[h1.clone()]).await,
                Err(Error::Signing(SigningRefusal::UnknownCredential))
            ),
            "{name}"
        );
        assert!(matches!(
            authority
                .signing
                .sign_hashes(
                    user,
                    "api:test",
                    credential,
                    &sad,
                    HashAlgorithm::Sha256,
                    SignatureScheme::RsaPkcs1,
                    &[h1.clone()]
                )
                .await,
            Err(Error::Signing(SigningRefusal::WrongScheme))
        ));
        // The signature verifies with the certificate's key over exactly h1.
        let signatures = sign(user, credential, &sad, &[h1.clone()]).await.unwrap();
        let certificate = authority
            .signing
            .credential(user, credential)
            .await
            .unwrap()
            .unwrap();
        let spki = {
            use der::{Decode, Encode};
            let cert = x509_cert::Certificate::from_der(&certificate.chain[0].0).unwrap();
            cert.tbs_certificate
                .subject_public_key_info
                .to_der()
                .unwrap()
        };
        let key =
            <p256::ecdsa::VerifyingKey as p256::pkcs8::DecodePublicKey>::from_public_key_der(&spki)
                .unwrap();
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        key.verify_prehash(
            &h1,
            &p256::ecdsa::Signature::from_der(&signatures[0]).unwrap(),
        )
        .unwrap();
        // Spent: a second use is refused.
        assert!(
            matches!(
                sign(user, credential, &sad, &[h1.clone()]).await,
                Err(Error::Signing(SigningRefusal::Sad(SadRefusal::Spent)))
            ),
            "{name}: used twice"
        );

        // Five minutes, then it expires.
        let handle = authorised(
            &authority,
            app,
            user,
            credential,
            &[h1.clone(), h2.clone()],
            &clock,
        )
        .await;
        let sad = sad_of(&authority, user, &handle).await;
        clock.advance(300);
        assert!(
            matches!(
                sign(user, credential, &sad, &[h1.clone()]).await,
                Err(Error::Signing(SigningRefusal::Sad(SadRefusal::Expired)))
            ),
            "{name}: expired"
        );

        // A denied request never yields a SAD.
        let handle = authority
            .signing
            .authorize_signing(user, &sign_request(credential, &[h1.clone()]), "api:test")
            .await
            .unwrap();
        let (envelope, _) = app.next_request(&authority).await;
        let (txn, deny) = app.answer(
            &envelope,
            Decision::Deny,
            &real_code(&envelope),
            None,
            clock.now(),
        );
        assert_eq!(
            app.send(&authority, &txn, &deny).await.unwrap(),
            ResponseOutcome::Denied
        );
        assert!(
            matches!(
                authority
                    .signing
                    .authorization_check(user, &handle, "api:test")
                    .await,
                Err(Error::Signing(SigningRefusal::Denied))
            ),
            "{name}: denied"
        );

        // Nor does one left unanswered.
        let handle = authority
            .signing
            .authorize_signing(user, &sign_request(credential, &[h1.clone()]), "api:test")
            .await
            .unwrap();
        clock.advance(121);
        assert!(
            matches!(
                authority
                    .signing
                    .authorization_check(user, &handle, "api:test")
                    .await,
                Err(Error::Signing(SigningRefusal::RequestExpired))
            ),
            "{name}"
        );

        // A revoked certificate signs nothing, even with a SAD obtained before.
        let handle = authorised(
            &authority,
            other_app,
            other,
            other_credential,
            &[h1.clone()],
            &clock,
        )
        .await;
        let sad = sad_of(&authority, other, &handle).await;
        authority
            .va
            .revoke(
                &domain::Serial::parse_hex(other_credential).unwrap(),
                domain::RevocationReason::KeyCompromise,
                "officer",
            )
            .await
            .unwrap();
        assert!(
            matches!(
                sign(other, other_credential, &sad, &[h1.clone()]).await,
                Err(Error::Signing(SigningRefusal::Revoked))
            ),
            "{name}: revoked"
        );
        assert!(matches!(
            authority
                .signing
                .authorize_signing(
                    other,
                    &sign_request(other_credential, &[h1.clone()]),
                    "api:test"
                )
                .await,
            Err(Error::Signing(SigningRefusal::Revoked))
        ));

        // Each request rings the phone: at most 30 in 10 minutes per user.
        let mut refused_at = None;
        for attempt in 0..=domain::RateLimit::SIGN_REQUESTS_PER_USER.limit {
            let result = authority
                .signing
                .authorize_signing(user, &sign_request(credential, &[h1.clone()]), "api:test")
                .await;
            if matches!(result, Err(Error::Rejected(Rejection::RateLimited))) {
                refused_at = Some(attempt);
                break;
            }
        }
        assert!(
            refused_at.is_some(),
            "{name}: sign requests are rate limited"
        );

        // A SAD whose approving device was deactivated signs nothing.
        clock.advance(600);
        let handle = authorised(&authority, app, user, credential, &[h1.clone()], &clock).await;
        let sad = sad_of(&authority, user, &handle).await;
        let device = authority
            .store()
            .device(&app.device_id.as_str().into())
            .await
            .unwrap()
            .unwrap();
        let device_serial = device.certificate_serial;
        authority
            .va
            .revoke(
                &device_serial,
                domain::RevocationReason::Unspecified,
                "officer",
            )
            .await
            .unwrap();
        assert!(
            matches!(
                sign(user, credential, &sad, &[h1.clone()]).await,
                Err(Error::Signing(SigningRefusal::NoDevice))
            ),
            "{name}: deactivated device"
        );
        assert!(matches!(
            authority
                .signing
                .authorize_signing(user, &sign_request(credential, &[h1.clone()]), "api:test")
                .await,
            Err(Error::Signing(SigningRefusal::NoDevice))
        ));

        // Every step is in the audit log, with the hashes; the chain holds.
        let events: Vec<String> = authority
            .store()
            .audit_entries()
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect();
        for event in [
            "signature.requested",
            "signature.authorized",
            "signature.created",
            "signature.refused",
        ] {
            assert!(
                events.iter().any(|e| e == event),
                "{name}: audit has {event}"
            );
        }
        assert!(authority.verify_audit().await.unwrap().is_ok());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_login_left_for_61_seconds_does_not_complete() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("db").display());
    let clock = Arc::new(ManualClock::new(START));
    let authority = open(&url, clock.clone()).await;
    let code = enrol(&authority, "late@example.rs").await;
    let app = App::activate(&authority, &code).await.unwrap();
    let approved_login = |session: Session| {
        let (authority, app, clock) = (&authority, &app, &clock);
        async move {
            let started = authority
                .login
                .login_start(&session, "late@example.rs", "127.0.0.1", "b")
                .await
                .unwrap();
            let (envelope, _) = app.next_request(authority).await;
            let (txn, approve) = app.answer(
                &envelope,
                Decision::Approve,
                &started.verification_code,
                Some(&app.pin),
                clock.now(),
            );
            assert_eq!(
                app.send(authority, &txn, &approve).await.unwrap(),
                ResponseOutcome::Approved
            );
            (session, txn)
        }
    };
    // Approved, then left lying for 61 s: not a fresh ConsentID login any more.
    let (session, txn) = approved_login(browser(&authority).await).await;
    clock.advance(61);
    assert!(matches!(
        authority.login.login_complete(&session, &txn).await,
        Err(Error::Rejected(Rejection::NotPending))
    ));
    // Within 60 s it completes.
    let (session, txn) = approved_login(browser(&authority).await).await;
    clock.advance(60);
    assert!(authority.login.login_complete(&session, &txn).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_tokens_are_issued_by_the_server_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("db").display());
    let clock = Arc::new(ManualClock::new(START));
    let authority = open(&url, clock.clone()).await;
    // A token the client chose (well formed as the old anonymous tokens were) is not adopted.
    let chosen = authority::login::SessionToken(format!("a.{}", crypto::b64(&[7u8; 32])));
    assert!(authority.login.session(&chosen).await.unwrap().is_none());
    // The server's own works until it expires, an hour later.
    let (token, _) = authority.login.new_session();
    assert!(authority
        .login
        .session(&token)
        .await
        .unwrap()
        .is_some_and(|s| s.user.is_none()));
    clock.advance(authority::login::ANONYMOUS_LIFETIME - 1);
    assert!(authority.login.session(&token).await.unwrap().is_some());
    clock.advance(1);
    assert!(authority.login.session(&token).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_who_knows_the_username_cannot_lock_out_the_owner_nor_cancel_their_signature() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("db").display());
    let clock = Arc::new(ManualClock::new(START));
    let authority = open(&url, clock.clone()).await;
    let email = "owner@example.rs";
    let new = authority::ra::accounts::NewUser {
        email: email.into(),
        given_name: "Петар".into(),
        surname: "Петровић".into(),
        jmbg: Jmbg::parse("0101990710008").unwrap(),
        password: Some(zeroize::Zeroizing::new("Lozinka vlasnika 2026".to_owned())),
    };
    let code = authority.ra.add_user(new, "officer").await.unwrap().1 .0;
    let app = App::activate(&authority, &code).await.unwrap();
    let person = pki::profile::Person {
        given_name: "Петар".into(),
        surname: "Петровић".into(),
        jmbg: Jmbg::parse("0101990710008").unwrap(),
    };
    let credential = authority
        .ca
        .issue_cloud_certificate(&person, Some(email), "officer")
        .await
        .unwrap()
        .serial
        .to_hex();
    let user: authority::Account = authority
        .store()
        .user_by_email(email)
        .await
        .unwrap()
        .unwrap()
        .into();
    // The owner's signing request is pending on the phone.
    let handle = authority
        .signing
        .authorize_signing(
            &user,
            &sign_request(&credential, &[vec![1u8; 32]]),
            "api:test",
        )
        .await
        .unwrap();

    // A stranger at 127.0.0.2 starts 20 logins for the owner's username and tries 6 wrong
    // passwords (portal and CSC).
    let stranger = browser(&authority).await;
    for _ in 0..20 {
        let _ = authority
            .login
            .login_start(&stranger, email, "127.0.0.2", "b")
            .await;
    }
    for _ in 0..3 {
        let _ = authority
            .login
            .password_login(&stranger, email, "wrong password", "127.0.0.2")
            .await;
        let _ = authority
            .signing
            .api_login(email, "wrong password", "127.0.0.2")
            .await;
    }
    assert!(
        matches!(
            authority
                .signing
                .api_login(email, "Lozinka vlasnika 2026", "127.0.0.2")
                .await,
            Err(Error::Rejected(Rejection::RateLimited))
        ),
        "the stranger is limited"
    );

    // The owner's signing request is still pending, and they approve it.
    assert!(matches!(
        authority
            .signing
            .authorization_check(&user, &handle, "api:test")
            .await
            .unwrap(),
        AuthorizationCheck::Pending { .. }
    ));
    let pending = |txn_or_kind: String| {
        let (authority, app) = (&authority, &app);
        async move {
            let device = app.authenticated(authority, "/inbox", b"").await.unwrap();
            let items = authority
                .login
                .inbox(&device, &caller(), Duration::ZERO)
                .await
                .unwrap()
                .items;
            items.into_iter().find_map(|envelope| {
                let payload: RequestPayload =
                    serde_json::from_slice(&crypto::unb64(&envelope.payload).unwrap()).unwrap();
                (payload.txn_id == txn_or_kind || payload.kind.as_str() == txn_or_kind)
                    .then_some((envelope, payload))
            })
        }
    };
    let (envelope, _) = pending("sign".into())
        .await
        .expect("the stranger's login starts did not supersede the signature");
    let (txn, approve) = app.answer(
        &envelope,
        Decision::Approve,
        &real_code(&envelope),
        Some(&app.pin),
        clock.now(),
    );
    assert_eq!(
        app.send(&authority, &txn, &approve).await.unwrap(),
        ResponseOutcome::Approved
    );
    assert!(matches!(
        authority
            .signing
            .authorization_check(&user, &handle, "api:test")
            .await
            .unwrap(),
        AuthorizationCheck::Authorized { .. }
    ));

    // The owner logs in from 127.0.0.1 with ConsentID, and with the password (portal and CSC).
    let own = browser(&authority).await;
    let started = authority
        .login
        .login_start(&own, email, "127.0.0.1", "b")
        .await
        .unwrap();
    let (envelope, payload) = pending(started.txn_id.to_string())
        .await
        .expect("the owner's login request");
    assert_eq!(payload.kind, proto::app::RequestKind::Login);
    let (txn, approve) = app.answer(
        &envelope,
        Decision::Approve,
        &started.verification_code,
        Some(&app.pin),
        clock.now(),
    );
    assert_eq!(
        app.send(&authority, &txn, &approve).await.unwrap(),
        ResponseOutcome::Approved
    );
    assert!(authority.login.login_complete(&own, &txn).await.is_ok());
    assert!(authority
        .login
        .password_login(
            &browser(&authority).await,
            email,
            "Lozinka vlasnika 2026",
            "127.0.0.1"
        )
        .await
        .is_ok());
    assert!(authority
        .signing
        .api_login(email, "Lozinka vlasnika 2026", "127.0.0.1")
        .await
        .is_ok());
}

fn registration(email: &str) -> authority::ra::accounts::Registration {
    authority::ra::accounts::Registration {
        email: email.into(),
        password: zeroize::Zeroizing::new("duga lozinka 123".into()),
        given_name: "Напасник".into(),
        surname: "Лажни".into(),
        jmbg: "0101990710008".into(),
    }
}

async fn open_in(dir: &std::path::Path, clock: Arc<ManualClock>) -> Authority {
    let keys: Arc<dyn KeyBackend> = Arc::new(SoftwareKeyBackend::new(MasterKey::generate()));
    let mut settings = Settings::new("http://127.0.0.1:8080");
    settings.mailer.outbox = dir.join("outbox");
    let url = format!("sqlite:{}", dir.join("test.db").display());
    Authority::open(Store::connect(&url).await.unwrap(), keys, clock, settings)
        .await
        .unwrap()
}

/// Finding 12: registering a victim's address first does not block the officer's enrolment;
/// a verified account is refused with `AlreadyExists` (the CLI then names `user proof`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverified_registration_does_not_block_the_officer() {
    let dir = tempfile::tempdir().unwrap();
    let authority = open_in(dir.path(), Arc::new(ManualClock::new(START))).await;
    authority
        .ra
        .register(registration("zrtva@example.rs"), "127.0.0.2")
        .await
        .unwrap();
    enrol(&authority, "zrtva@example.rs").await;
    let user = authority
        .store()
        .user_by_email("zrtva@example.rs")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (user.given_name.as_str(), user.assurance),
        ("Петар", domain::AssuranceLevel::High)
    );
    let again = authority::ra::accounts::NewUser {
        email: "zrtva@example.rs".into(),
        given_name: "Петар".into(),
        surname: "Петровић".into(),
        jmbg: Jmbg::parse("0101990710008").unwrap(),
        password: None,
    };
    assert!(matches!(
        authority.ra.add_user(again, "officer").await,
        Err(Error::Rejected(Rejection::AlreadyExists))
    ));
    // A later self-registration of the proofed address changes nothing.
    authority
        .ra
        .register(registration("zrtva@example.rs"), "127.0.0.2")
        .await
        .unwrap();
    let still = authority
        .store()
        .user_by_email("zrtva@example.rs")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((still.id, still.given_name), (user.id, user.given_name));
}

/// Finding 12: unverified registrations expire after 24 hours (upkeep discards them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_registrations_are_purged_after_a_day() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START));
    let authority = open_in(dir.path(), clock.clone()).await;
    authority
        .ra
        .register(registration("stara@example.rs"), "127.0.0.2")
        .await
        .unwrap();
    clock.advance(23 * 3600);
    authority.maintain().await.unwrap();
    assert!(
        authority
            .store()
            .user_by_email("stara@example.rs")
            .await
            .unwrap()
            .is_some(),
        "younger than a day"
    );
    clock.advance(3601);
    authority.maintain().await.unwrap();
    assert!(
        authority
            .store()
            .user_by_email("stara@example.rs")
            .await
            .unwrap()
            .is_none(),
        "older than a day"
    );
}

/// Finding 12: a known and a new address cost the same work: one Argon2 hash and one e-mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_does_the_same_work_for_known_and_new_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let authority = open_in(dir.path(), Arc::new(ManualClock::new(START))).await;
    enrol(&authority, "poznata@example.rs").await;
    let mails = || {
        std::fs::read_dir(dir.path().join("outbox"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let work = |before: (u64, usize)| {
        (
            authority::ra::accounts::password_hashes_made() - before.0,
            mails() - before.1,
        )
    };
    let start = (authority::ra::accounts::password_hashes_made(), mails());
    authority
        .ra
        .register(registration("nova@example.rs"), "127.0.0.2")
        .await
        .unwrap();
    let new = work(start);
    let start = (authority::ra::accounts::password_hashes_made(), mails());
    authority
        .ra
        .register(registration("poznata@example.rs"), "127.0.0.2")
        .await
        .unwrap();
    let known = work(start);
    assert_eq!(new, (1, 1));
    assert_eq!(known, new, "a known address must cost what a new one does");
}

/// Finding 12: `user proof` replaces name and JMBG, raises the assurance, ends the sessions and
/// the password (a password known to an attacker no longer logs in), and makes a code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofing_an_account_ends_its_sessions_and_password() {
    let dir = tempfile::tempdir().unwrap();
    let authority = open_in(dir.path(), Arc::new(ManualClock::new(START))).await;
    let new = authority::ra::accounts::NewUser {
        email: "jovana@example.rs".into(),
        given_name: "Јована".into(),
        surname: "Јовић".into(),
        jmbg: Jmbg::parse("0101990710008").unwrap(),
        password: Some(zeroize::Zeroizing::new("duga lozinka 123".into())),
    };
    authority.ra.add_user(new, "officer").await.unwrap();
    let (token, _) = authority
        .login
        .password_login(
            &browser(&authority).await,
            "jovana@example.rs",
            "duga lozinka 123",
            "127.0.0.1",
        )
        .await
        .unwrap();
    assert!(authority
        .login
        .session(&token)
        .await
        .unwrap()
        .unwrap()
        .user
        .is_some());
    let proof = authority::ra::accounts::Proofing {
        email: "jovana@example.rs".into(),
        given_name: "Јована".into(),
        surname: "Петровић".into(),
        jmbg: Jmbg::parse("0101990710008").unwrap(),
    };
    let (user, changes, code) = authority.ra.proof_user(proof, "officer").await.unwrap();
    assert_eq!(user.surname, "Петровић");
    // The view leaves the hash out; the stored account has none.
    let user = authority.store().user(&user.id).await.unwrap().unwrap();
    assert!(user.password_hash.is_none());
    let fields: Vec<&str> = changes.iter().map(|c| c.field).collect();
    assert_eq!(fields, ["surname", "password"]);
    assert_eq!(
        (changes[0].old.as_str(), changes[0].new.as_str()),
        ("Јовић", "Петровић")
    );
    assert!(
        authority.login.session(&token).await.unwrap().is_none(),
        "the old session ended"
    );
    assert!(authority
        .login
        .password_login(
            &browser(&authority).await,
            "jovana@example.rs",
            "duga lozinka 123",
            "127.0.0.1"
        )
        .await
        .is_err());
    App::activate(&authority, &code.0).await.unwrap();
}

/// Finding 7: Argon2 runs on the blocking pool. On a one-thread runtime, a ticking task keeps
/// ticking while a password login runs; on the runtime's own thread it would stall for the
/// whole hash.
#[tokio::test(flavor = "current_thread")]
async fn argon2_does_not_stall_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let authority = open_in(dir.path(), Arc::new(ManualClock::new(START))).await;
    let new = authority::ra::accounts::NewUser {
        email: "jovana@example.rs".into(),
        given_name: "Јована".into(),
        surname: "Јовић".into(),
        jmbg: Jmbg::parse("0101990710008").unwrap(),
        password: Some(zeroize::Zeroizing::new("duga lozinka 123".into())),
    };
    authority.ra.add_user(new, "officer").await.unwrap();
    // One Argon2 check's time, measured here (the shortest of three).
    let hash = authority
        .store()
        .user_by_email("jovana@example.rs")
        .await
        .unwrap()
        .unwrap()
        .password_hash
        .unwrap();
    let mut argon = Duration::MAX;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        assert!(
            authority::ra::accounts::password_matches_in_pool("duga lozinka 123", &hash)
                .await
                .unwrap()
        );
        argon = argon.min(started.elapsed());
    }
    // The shortest stall of three logins: noise on a shared machine only lengthens a stall,
    // while Argon2 on the runtime's thread would stall every one of them for a whole hash.
    let mut shortest = Duration::MAX;
    for _ in 0..3 {
        let session = browser(&authority).await;
        let login = authority.login.password_login(
            &session,
            "jovana@example.rs",
            "duga lozinka 123",
            "127.0.0.1",
        );
        let done = std::sync::atomic::AtomicBool::new(false);
        let ticker = async {
            let mut longest = Duration::ZERO;
            let mut last = std::time::Instant::now();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(1)).await;
                longest = longest.max(last.elapsed());
                last = std::time::Instant::now();
            }
            longest
        };
        let login = async {
            let out = login.await;
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            out
        };
        let (longest, out) = tokio::join!(ticker, login);
        out.unwrap();
        shortest = shortest.min(longest);
    }
    assert!(
        shortest * 2 < argon,
        "the runtime stalled for {shortest:?} at the least; one Argon2 check takes {argon:?}"
    );
}

/// Software keys always; SoftHSM2 too when scripts/test configured it.
fn key_backends() -> Vec<(&'static str, Arc<dyn KeyBackend>)> {
    let mut out: Vec<(&'static str, Arc<dyn KeyBackend>)> = vec![(
        "software",
        Arc::new(SoftwareKeyBackend::new(MasterKey::generate())),
    )];
    hsm::test_support::private_token().expect("a private copy of the test token");
    if let (Ok(module), Ok(token), Ok(pin)) = (
        std::env::var("EIDPORTAL_TEST_PKCS11_MODULE"),
        std::env::var("EIDPORTAL_TEST_PKCS11_TOKEN"),
        std::env::var("EIDPORTAL_TEST_PKCS11_PIN"),
    ) {
        let backend = hsm::Pkcs11Backend::open(module.as_ref(), &token, hsm::Pin::new(pin))
            .expect("open the test token");
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
            let authority = Authority::open(
                store,
                keys.clone(),
                clock.clone(),
                Settings::new("http://127.0.0.1:8080"),
            )
            .await
            .unwrap();
            let email = "petar@example.rs";
            let app = App::activate(&authority, &enrol(&authority, email).await)
                .await
                .unwrap();
            let person = pki::profile::Person {
                given_name: "Петар".into(),
                surname: "Петровић".into(),
                jmbg: Jmbg::parse("0101990710008").unwrap(),
            };
            let issued = authority
                .ca
                .issue_cloud_certificate(&person, Some(email), "officer")
                .await
                .unwrap();
            let user: authority::Account = authority
                .store()
                .user_by_email(email)
                .await
                .unwrap()
                .unwrap()
                .into();
            let credential = issued.serial.to_hex();
            let hash = vec![7u8; 32];

            // Its own key signs.
            let handle = authorised(
                &authority,
                &app,
                &user,
                &credential,
                &[hash.clone()],
                &clock,
            )
            .await;
            let sad = sad_of(&authority, &user, &handle).await;
            authority
                .signing
                .sign_hashes(
                    &user,
                    "api:test",
                    &credential,
                    &sad,
                    HashAlgorithm::Sha256,
                    SignatureScheme::Ecdsa,
                    &[hash.clone()],
                )
                .await
                .unwrap();

            // The row now names the qualified CA's key.
            let ca_key = authority
                .store()
                .authority("qualified")
                .await
                .unwrap()
                .unwrap()
                .key_id;
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

            let handle = authorised(
                &authority,
                &app,
                &user,
                &credential,
                &[hash.clone()],
                &clock,
            )
            .await;
            let sad = sad_of(&authority, &user, &handle).await;
            let refused = authority
                .signing
                .sign_hashes(
                    &user,
                    "api:test",
                    &credential,
                    &sad,
                    HashAlgorithm::Sha256,
                    SignatureScheme::Ecdsa,
                    &[hash.clone()],
                )
                .await;
            match refused {
                Err(Error::Pki(pki::Error::KeyMismatch(_))) => {}
                other => panic!("{name}: the CA key signed for a cloud certificate: {other:?}"),
            }
            authority.store().close().await;
        }
    }
}

fn payload_of(envelope: &Envelope) -> RequestPayload {
    serde_json::from_slice(&crypto::unb64(&envelope.payload).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qr_login_is_taken_once_by_a_fresh_frame_and_completes_only_in_its_browser() {
    use domain::qr::QrRefusal;
    use proto::app::LoginFlow;
    let refused = |r: Result<authority::login::qr_login::QrLoginTaken, Error>| match r {
        Err(Error::Rejected(Rejection::QrLogin(refusal))) => refusal,
        other => panic!("expected a QR refusal, got {other:?}"),
    };
    let dir = tempfile::tempdir().unwrap();
    for db in store::test_support::databases(dir.path()).await {
        let name = db.name;
        let clock = Arc::new(ManualClock::new(START));
        let authority = open(&db.url, clock.clone()).await;
        let petar = App::activate(&authority, &enrol(&authority, "qr@example.rs").await)
            .await
            .unwrap();
        let marko = App::activate(&authority, &enrol(&authority, "qr2@example.rs").await)
            .await
            .unwrap();
        let first = browser(&authority).await;
        let other = browser(&authority).await;
        let started = authority
            .login
            .qr_login_start(&first, "127.0.0.1", "Chrome / Linux")
            .await
            .unwrap();
        let id = started.id.clone();

        // Another browser sees neither the code nor the state.
        for result in [
            authority.login.qr_frame(&other, &id).await.map(|_| ()),
            authority
                .login
                .qr_login_state(&other, &id)
                .await
                .map(|_| ()),
        ] {
            assert!(
                matches!(result, Err(Error::Rejected(Rejection::NotFound))),
                "{name}: another browser's QR login"
            );
        }

        // A frame captured 10 s earlier is stale; text that is not a frame is invalid.
        let old = authority.login.qr_frame(&first, &id).await.unwrap();
        clock.advance(10);
        let petar_device = petar
            .authenticated(&authority, "/login/qr", b"")
            .await
            .unwrap();
        assert_eq!(
            refused(
                authority
                    .login
                    .qr_login_take(&petar_device, &caller(), &old)
                    .await
            ),
            QrRefusal::Stale,
            "{name}"
        );
        for text in [
            "https://example.rs/",
            "CID1.x.1.AAAA",
            &old.replace(".0.", ".10."),
        ] {
            assert_eq!(
                refused(
                    authority
                        .login
                        .qr_login_take(&petar_device, &caller(), text)
                        .await
                ),
                QrRefusal::Invalid,
                "{name}: {text}"
            );
        }
        assert_eq!(
            authority
                .login
                .qr_login_state(&first, &id)
                .await
                .unwrap()
                .hint,
            "waiting",
            "{name}: refused scans take nothing"
        );

        // A fresh frame, 2 s later: the request is Petar's, bound to the first browser.
        let fresh = authority.login.qr_frame(&first, &id).await.unwrap();
        assert_ne!(fresh, old, "{name}: the code changes with the seconds");
        clock.advance(2);
        let taken = authority
            .login
            .qr_login_take(&petar_device, &caller(), &fresh)
            .await
            .unwrap();
        assert_eq!(taken.qr_id, id);
        let payload = payload_of(&taken.request);
        assert_eq!(payload.flow, Some(LoginFlow::Qr), "{name}");
        assert_eq!(payload.user, "Петар Петровић");
        assert_eq!(payload.context.browser, "Chrome / Linux");
        // Taken once: not by Marko's phone with the same frame, and no more frames.
        let marko_device = marko
            .authenticated(&authority, "/login/qr", b"")
            .await
            .unwrap();
        assert_eq!(
            refused(
                authority
                    .login
                    .qr_login_take(&marko_device, &caller(), &fresh)
                    .await
            ),
            QrRefusal::Closed,
            "{name}"
        );
        assert!(matches!(
            authority.login.qr_frame(&first, &id).await,
            Err(Error::Rejected(Rejection::QrLogin(QrRefusal::Closed)))
        ));
        let state = authority.login.qr_login_state(&first, &id).await.unwrap();
        assert_eq!(
            (state.status, state.hint.as_str()),
            (TransactionStatus::Pending, "outstanding")
        );

        // Approved in the app: completes in the first browser only.
        let (txn, approve) = petar.answer(
            &taken.request,
            Decision::Approve,
            &real_code(&taken.request),
            Some(&petar.pin),
            clock.now(),
        );
        assert_eq!(
            petar.send(&authority, &txn, &approve).await.unwrap(),
            ResponseOutcome::Approved
        );
        assert!(matches!(
            authority.login.qr_login_complete(&other, &id).await,
            Err(Error::Rejected(Rejection::NotFound))
        ));
        assert!(matches!(
            authority.login.login_complete(&other, &txn).await,
            Err(Error::Rejected(Rejection::NotFound))
        ));
        let (_, session) = authority
            .login
            .qr_login_complete(&first, &id)
            .await
            .unwrap();
        assert_eq!(session.user.unwrap().email, "qr@example.rs", "{name}");

        // The same-phone link: only from the browser's own address.
        let phone = browser(&authority).await;
        let linked = authority
            .login
            .qr_login_start(&phone, "10.0.0.7", "Chrome / Android")
            .await
            .unwrap();
        let token = authority
            .login
            .qr_link_token(&phone, &linked.id)
            .await
            .unwrap();
        let device = petar
            .authenticated(&authority, "/login/link", b"")
            .await
            .unwrap();
        assert_eq!(
            refused(
                authority
                    .login
                    .link_login_take(&device, &at("10.0.0.8"), &token)
                    .await
            ),
            QrRefusal::OtherAddress,
            "{name}"
        );
        assert_eq!(
            refused(
                authority
                    .login
                    .qr_login_take(&device, &caller(), &token)
                    .await
            ),
            QrRefusal::Invalid,
            "{name}: a link is not a QR text"
        );
        let taken = authority
            .login
            .link_login_take(&device, &at("10.0.0.7"), &token)
            .await
            .unwrap();
        assert_eq!(payload_of(&taken.request).flow, Some(LoginFlow::Link));

        // Cancelled in its browser before any phone scanned it: no phone can take it.
        let dropped = authority
            .login
            .qr_login_start(&first, "127.0.0.1", "Chrome / Linux")
            .await
            .unwrap();
        let frame = authority.login.qr_frame(&first, &dropped.id).await.unwrap();
        authority
            .login
            .qr_login_cancel(&first, &dropped.id)
            .await
            .unwrap();
        assert_eq!(
            refused(
                authority
                    .login
                    .qr_login_take(&petar_device, &caller(), &frame)
                    .await
            ),
            QrRefusal::Closed,
            "{name}: a cancelled QR login"
        );

        // A QR login nobody scans expires with its lifetime.
        let late = authority
            .login
            .qr_login_start(&first, "127.0.0.1", "Chrome / Linux")
            .await
            .unwrap();
        clock.advance(domain::qr::QR_LOGIN_LIFETIME);
        assert_eq!(
            authority
                .login
                .qr_login_state(&first, &late.id)
                .await
                .unwrap()
                .status,
            TransactionStatus::Expired,
            "{name}"
        );
        assert!(matches!(
            authority.login.qr_frame(&first, &late.id).await,
            Err(Error::Rejected(Rejection::QrLogin(QrRefusal::Closed)))
        ));
    }
}

/// Issue 22, finding 2: an attacker's page relays the QR code its browser (127.0.0.1) shows to
/// the citizen, whose phone is on another network (127.0.1.2). The phone says where the browser
/// is and approves only with the citizen's "I am at that computer"; and the relayed session
/// then issues nothing without an approval of its own, which the citizen can deny.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_qr_login_warns_and_its_session_issues_nothing_without_the_phone() {
    use authority::ra::operations::{OperationProgress, OperationRequest};
    use domain::cloud::CertificateOperation;
    use proto::app::{RequestContext, RequestKind};
    let dir = tempfile::tempdir().unwrap();
    for db in store::test_support::databases(dir.path()).await {
        let name = db.name;
        let clock = Arc::new(ManualClock::new(START));
        let authority = open(&db.url, clock.clone()).await;
        let mut victim = App::activate(&authority, &enrol(&authority, "vera@example.rs").await)
            .await
            .unwrap();
        victim.ip = "127.0.1.2".into();
        let attacker = browser(&authority).await;
        let started = authority
            .login
            .qr_login_start(&attacker, "127.0.0.1", "Chrome / Windows")
            .await
            .unwrap();
        let relayed = authority
            .login
            .qr_frame(&attacker, &started.id)
            .await
            .unwrap();

        // The victim's phone scans the relayed frame: the request says the browser is elsewhere.
        let device = victim
            .authenticated(&authority, "/login/qr", b"")
            .await
            .unwrap();
        let taken = authority
            .login
            .qr_login_take(&device, &victim.caller(), &relayed)
            .await
            .unwrap();
        let origin = taken.request.origin.clone().expect("the browser's origin");
        assert!(
            !origin.same_network,
            "{name}: 127.0.0.1 is not 127.0.1.0/24"
        );
        assert!(origin.location.contains("127.0.0.1"), "{name}: {origin:?}");
        let (inboxed, _) = victim.next_request(&authority).await;
        assert_eq!(
            inboxed.origin,
            Some(origin),
            "{name}: the inbox says so too"
        );

        // Without "I am at that computer" the approval is refused and the request stays open.
        let code = crypto::verification_code(
            &crypto::unb64(&payload_of(&taken.request).challenge).unwrap(),
        );
        let (txn, unconfirmed) = victim.answer(
            &taken.request,
            Decision::Approve,
            &code,
            Some(&victim.pin),
            clock.now(),
        );
        assert!(
            matches!(
                victim.send(&authority, &txn, &unconfirmed).await,
                Err(Error::Rejected(Rejection::LocationNotConfirmed))
            ),
            "{name}"
        );
        assert_eq!(
            authority
                .login
                .qr_login_state(&attacker, &started.id)
                .await
                .unwrap()
                .status,
            TransactionStatus::Pending,
            "{name}: still waiting"
        );
        // Confirmed (the citizen was deceived): the attacker's browser holds a session.
        victim.at_computer = true;
        assert_eq!(
            victim.approve_next(&authority).await,
            ResponseOutcome::Approved,
            "{name}"
        );
        let (_, session) = authority
            .login
            .qr_login_complete(&attacker, &started.id)
            .await
            .unwrap();

        // Прихвати in the relayed session: the phone is asked, naming the operation; nothing
        // is issued before it answers, and a denial issues nothing.
        let count = || async {
            authority
                .store()
                .certificates(Some("vera@example.rs"))
                .await
                .unwrap()
                .iter()
                .filter(|c| c.kind == domain::CertificateKind::CloudSigning)
                .count()
        };
        let operation = authority
            .ra
            .request_operation(
                &session,
                CertificateOperation::Issue,
                OperationRequest {
                    title: "Издавање квалификованог електронског сертификата у клауду".into(),
                    context: RequestContext {
                        browser: "Chrome / Windows".into(),
                        ip: "127.0.0.1".into(),
                    },
                },
            )
            .await
            .unwrap();
        assert_eq!(count().await, 0, "{name}: nothing before the phone answers");
        let (envelope, payload) = victim.next_request(&authority).await;
        assert_eq!(payload.kind, RequestKind::Certificate, "{name}");
        let details = payload.certificate.clone().unwrap();
        assert_eq!(
            details.title, "Издавање квалификованог електронског сертификата у клауду",
            "{name}"
        );
        assert!(details.agreement_number.is_some() && details.agreement_hash.is_some());
        assert_eq!(
            envelope.origin.as_ref().map(|o| o.same_network),
            Some(false),
            "{name}: the operation's request warns too"
        );
        assert!(matches!(
            authority
                .ra
                .operation(&session, &operation)
                .await
                .unwrap()
                .progress,
            OperationProgress::Pending { .. }
        ));
        let code = crypto::verification_code(&crypto::unb64(&payload.challenge).unwrap());
        let (txn, deny) = victim.answer(&envelope, Decision::Deny, &code, None, clock.now());
        assert_eq!(
            victim.send(&authority, &txn, &deny).await.unwrap(),
            ResponseOutcome::Denied
        );
        assert_eq!(
            authority
                .ra
                .operation(&session, &operation)
                .await
                .unwrap()
                .progress,
            OperationProgress::Failed("denied".into()),
            "{name}"
        );
        assert_eq!(count().await, 0, "{name}: a denied approval issues nothing");
        authority.store().close().await;
    }
}
