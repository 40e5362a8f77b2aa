//! What the services' unit tests share: an [`Authority`] opened on a temporary store (SQLite,
//! and PostgreSQL when `EIDPORTAL_TEST_POSTGRES_URL` is set) with software keys and a
//! [`ManualClock`], enrolled people, and the ConsentID app of `test_app`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use domain::{Jmbg, UnixTime};
use pki::profile::Person;
use pki::{KeyBackend, MasterKey, SoftwareKeyBackend};
use proto::app::ResponseOutcome;
use store::{AuditQueries as _, Store};

use crate::ra::accounts::NewUser;
pub(crate) use crate::test_app::App;
use crate::{Account, Authority, ManualClock, Settings};

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

/// A self-registered account whose address was verified but whose identity was never
/// proofed (basic assurance), with the password [`PASSWORD`].
pub(crate) async fn basic_account(authority: &Authority, email: &str) -> domain::UserId {
    use store::AccountStore as _;
    let user = domain::records::UserRecord {
        id: domain::UserId::from(hex::encode(rand::random::<[u8; 16]>())),
        email: email.into(),
        given_name: "Јована".into(),
        surname: "Јовановић".into(),
        jmbg: person().jmbg.as_str().to_owned(),
        password_hash: Some(
            crate::ra::accounts::hash_password_in_pool(PASSWORD)
                .await
                .unwrap(),
        ),
        email_verified: true,
        assurance: domain::AssuranceLevel::Basic,
        created_at: authority.now(),
    };
    let mut tx = authority.store.begin().await.unwrap();
    tx.insert_user(&user).await.unwrap();
    tx.commit().await.unwrap();
    user.id
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
