//! What the services' unit tests share: an [`Authority`] opened on a temporary store (SQLite,
//! and PostgreSQL when `EIDPORTAL_TEST_POSTGRES_URL` is set) with software keys and a
//! [`ManualClock`], enrolled people, and a ConsentID app reduced to its keys and the protocol
//! (crates/proto), as in the integration tests (tests/consentid.rs).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use p256::SecretKey;

use domain::{Jmbg, TxnId, UnixTime};
use pki::profile::Person;
use pki::{KeyBackend, MasterKey, SoftwareKeyBackend};
use proto::app::{
    ActivationComplete, Decision, Envelope, RequestPayload, Response, ResponseOutcome,
};
use proto::crypto;
use store::Store;

use crate::login::consentid::{AuthenticatedDevice, Caller};
use crate::ra::accounts::NewUser;
use crate::{Account, Authority, Error, ManualClock, Settings};

/// 2026-11-25T03:34:33Z.
pub(crate) const START: UnixTime = UnixTime(1_795_577_673);

/// The password of the people [`enrol`] makes.
pub(crate) const PASSWORD: &str = "correct horse battery";

/// An authority on a temporary store, with its clock and its outbox folder.
pub(crate) struct TestAuthority {
    /// `sqlite` or `postgres`, for messages.
    pub(crate) name: &'static str,
    pub(crate) authority: Authority,
    pub(crate) clock: Arc<ManualClock>,
    /// Where mail goes (no relay is configured).
    pub(crate) outbox: PathBuf,
}

impl std::ops::Deref for TestAuthority {
    type Target = Authority;

    fn deref(&self) -> &Authority {
        &self.authority
    }
}

impl TestAuthority {
    /// The number of mails written to the outbox so far.
    pub(crate) fn mails(&self) -> usize {
        std::fs::read_dir(&self.outbox).map_or(0, |entries| entries.count())
    }

    /// The number of entries in the audit log.
    pub(crate) async fn audit_len(&self) -> usize {
        self.store.audit_entries().await.unwrap().len()
    }

    /// The audit log's events, oldest first.
    pub(crate) async fn audit_events(&self) -> Vec<String> {
        self.store
            .audit_entries()
            .await
            .unwrap()
            .into_iter()
            .map(|entry| entry.event)
            .collect()
    }
}

/// Settings for tests: mail into `dir`.
pub(crate) fn settings(dir: &Path) -> Settings {
    let mut settings = Settings::new("http://127.0.0.1:8080");
    settings.mailer =
        crate::ra::mail::Mailer::new(dir.join("outbox"), "eID portal <noreply@eid.gov.rs>".into());
    settings
}

/// Opens an authority on every test database under `dir` (SQLite; PostgreSQL when
/// configured), each with its own clock standing at [`START`] and the settings `adjust` made.
pub(crate) async fn authorities_with(
    dir: &Path,
    adjust: impl Fn(&mut Settings),
) -> Vec<TestAuthority> {
    let mut out = Vec::new();
    for db in store::test_support::databases(dir).await {
        let sub = dir.join(db.name);
        std::fs::create_dir_all(&sub).unwrap();
        let mut settings = settings(&sub);
        adjust(&mut settings);
        let clock = Arc::new(ManualClock::new(START));
        let keys: Arc<dyn KeyBackend> = Arc::new(SoftwareKeyBackend::new(MasterKey::generate()));
        let authority = Authority::open(
            Store::connect(&db.url).await.unwrap(),
            keys,
            clock.clone(),
            settings,
        )
        .await
        .unwrap();
        out.push(TestAuthority {
            name: db.name,
            authority,
            clock,
            outbox: sub.join("outbox"),
        });
    }
    out
}

/// [`authorities_with`] the default test settings.
pub(crate) async fn authorities(dir: &Path) -> Vec<TestAuthority> {
    authorities_with(dir, |_| {}).await
}

/// Петар Петровић, with a valid JMBG.
pub(crate) fn person() -> Person {
    Person {
        given_name: "Петар".into(),
        surname: "Петровић".into(),
        jmbg: Jmbg::parse("0101990710008").unwrap(),
    }
}

/// An officer enrols `email` (proofed, with the password [`PASSWORD`]); returns the account and
/// its first activation code.
pub(crate) async fn enrol(authority: &Authority, email: &str) -> (Account, String) {
    let person = person();
    let new = NewUser {
        email: email.into(),
        given_name: person.given_name,
        surname: person.surname,
        jmbg: person.jmbg,
        password: Some(zeroize::Zeroizing::new(PASSWORD.into())),
    };
    let (user, code) = authority.ra.add_user(new, "officer").await.unwrap();
    (user, code.0)
}

/// The caller of the app's requests.
pub(crate) fn caller() -> Caller {
    Caller {
        ip: "127.0.0.1".into(),
    }
}

/// The ConsentID app, reduced to its keys and the protocol.
pub(crate) struct App {
    device: SecretKey,
    pin: SecretKey,
    pub(crate) device_id: String,
    encryption_key: p256::PublicKey,
}

impl App {
    /// Activates a new app with an activation code.
    pub(crate) async fn activate(authority: &Authority, code: &str) -> Result<Self, Error> {
        let challenge = authority.login.activation_start(code, &caller()).await?;
        let encryption_key =
            crypto::public_key(&crypto::unb64(&challenge.server_encryption_key).unwrap()).unwrap();
        let device = SecretKey::random(&mut rand::rngs::OsRng);
        let pin = SecretKey::random(&mut rand::rngs::OsRng);
        let device_der = crypto::public_key_der(&device.public_key());
        let aad = challenge.activation_id.as_bytes();
        let sealed_pin = crypto::seal(
            &encryption_key,
            &crypto::public_key_der(&pin.public_key()),
            aad,
        )
        .unwrap();
        let message = crypto::activation_message(
            &challenge.activation_id,
            &challenge.nonce,
            &device_der,
            &sealed_pin,
        );
        let request = ActivationComplete {
            activation_id: challenge.activation_id.clone(),
            device_public_key: crypto::b64(&device_der),
            device_name: "test phone".into(),
            encrypted_pin_public_key: crypto::b64(&sealed_pin),
            device_signature: crypto::b64(&crypto::sign(&device, message.as_bytes())),
            encrypted_pin_signature: crypto::b64(
                &crypto::seal(
                    &encryption_key,
                    &crypto::sign(&pin, message.as_bytes()),
                    aad,
                )
                .unwrap(),
            ),
        };
        let result = authority
            .login
            .activation_complete(&request, &caller())
            .await?;
        Ok(Self {
            device,
            pin,
            device_id: result.device_id,
            encryption_key,
        })
    }

    async fn authenticated(
        &self,
        authority: &Authority,
        path: &str,
        body: &[u8],
    ) -> Result<AuthenticatedDevice, Error> {
        let nonce = crypto::b64(&rand::random::<[u8; 16]>());
        let now = authority.now().0;
        let message = crypto::request_message("POST", path, now, &nonce, body);
        let header = crypto::authorization_header(
            &self.device_id,
            now,
            &nonce,
            &crypto::sign(&self.device, message.as_bytes()),
        );
        authority
            .login
            .authenticate_device(&header, "POST", path, body)
            .await
    }

    /// The first request waiting in the app's inbox.
    pub(crate) async fn next_request(&self, authority: &Authority) -> (Envelope, RequestPayload) {
        let device = self.authenticated(authority, "/inbox", b"").await.unwrap();
        let inbox = authority
            .login
            .inbox(&device, Duration::ZERO)
            .await
            .unwrap();
        let envelope = inbox.items.into_iter().next().expect("a pending request");
        let payload: RequestPayload =
            serde_json::from_slice(&crypto::unb64(&envelope.payload).unwrap()).unwrap();
        (envelope, payload)
    }

    /// Approves the first request waiting, with the right code and PIN, now.
    pub(crate) async fn approve_next(&self, authority: &Authority) -> ResponseOutcome {
        let (envelope, payload) = self.next_request(authority).await;
        let code = crypto::verification_code(&crypto::unb64(&payload.challenge).unwrap());
        let (txn, response) = self.answer(&envelope, Decision::Approve, &code, authority.now());
        self.send(authority, &txn, &response).await.unwrap()
    }

    fn answer(
        &self,
        envelope: &Envelope,
        decision: Decision,
        code: &str,
        iat: UnixTime,
    ) -> (TxnId, Response) {
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
        let pin_proof = crypto::b64(
            &crypto::seal(
                &self.encryption_key,
                &crypto::sign(&self.pin, message.as_bytes()),
                payload.txn_id.as_bytes(),
            )
            .unwrap(),
        );
        let response = Response {
            decision,
            reason: None,
            verification_code: code.into(),
            issued_at: iat.0,
            device_signature: crypto::b64(&crypto::sign(&self.device, message.as_bytes())),
            pin_proof: Some(pin_proof),
        };
        (TxnId::from(payload.txn_id), response)
    }

    async fn send(
        &self,
        authority: &Authority,
        txn: &TxnId,
        response: &Response,
    ) -> Result<ResponseOutcome, Error> {
        let body = serde_json::to_vec(response).unwrap();
        let device = self
            .authenticated(authority, &format!("/requests/{txn}/response"), &body)
            .await?;
        Ok(authority
            .login
            .respond(&device, txn, response)
            .await?
            .result)
    }
}

/// Logs `email` in from a new browser, approved in `app`: a ConsentID session.
pub(crate) async fn consentid_login(
    authority: &Authority,
    app: &App,
    email: &str,
) -> crate::login::Session {
    let (_, browser) = authority.login.new_session();
    let started = authority
        .login
        .login_start(&browser, email, "127.0.0.1", "test browser")
        .await
        .unwrap();
    assert_eq!(app.approve_next(authority).await, ResponseOutcome::Approved);
    let (_, session) = authority
        .login
        .login_complete(&browser, &started.txn_id)
        .await
        .unwrap();
    session
}
