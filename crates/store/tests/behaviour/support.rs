//! What every test of the suite shares: the databases (each test gets fresh ones, SQLite
//! always and PostgreSQL when configured, see `store::test_support`), and records to store,
//! filled with what a round trip could lose: non-ASCII text, every byte value, times far from
//! zero and optional fields both set and unset.

use domain::oidc::AuthMethod;
use domain::records::{
    DeviceRecord, KeyId, KeyRecord, KeyState, NewCertificate, SessionRecord, TransactionRecord,
    UserRecord,
};
use domain::{
    AssuranceLevel, CertificateKind, DeviceId, DeviceState, Serial, TransactionStatus, TxnId,
    UnixTime, UserId,
};
use store::{AccountStore as _, CertificateStore as _, LoginStore as _, Store};

/// A point in time past 2038 (2040-12-25), so that a time kept in 32 bits, or shifted, would
/// show.
pub const T: UnixTime = UnixTime(2_240_000_000);

/// 31 December 9999, the largest time a certificate may carry (RFC 5280 §4.1.2.5).
pub const END_OF_TIME: UnixTime = UnixTime(253_402_300_799);

/// A store on one database, with the database's name for failure messages.
pub struct TestStore {
    /// `sqlite` or `postgres`.
    pub name: &'static str,
    /// The URL, for a second store on the same database.
    pub url: String,
    /// The store, migrated.
    pub store: Store,
}

/// Fresh databases for one test: the SQLite file lives as long as this value.
pub struct Databases {
    _dir: tempfile::TempDir,
    stores: Vec<TestStore>,
}

impl Databases {
    /// The stores, one per database.
    pub fn iter(&self) -> std::slice::Iter<'_, TestStore> {
        self.stores.iter()
    }
}

impl<'a> IntoIterator for &'a Databases {
    type Item = &'a TestStore;
    type IntoIter = std::slice::Iter<'a, TestStore>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// A migrated store on every database of `store::test_support::databases`.
pub async fn databases() -> Databases {
    let dir = tempfile::tempdir().unwrap();
    let mut stores = Vec::new();
    for db in store::test_support::databases(dir.path()).await {
        let store = Store::connect(&db.url)
            .await
            .unwrap_or_else(|error| panic!("{}: connect: {error}", db.name));
        stores.push(TestStore {
            name: db.name,
            url: db.url,
            store,
        });
    }
    Databases { _dir: dir, stores }
}

/// Every byte value once, then a zero again: bytes that text handling would mangle.
pub fn all_bytes() -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..=255).collect();
    bytes.push(0);
    bytes
}

/// A serial from one byte (repeated), for readable tests.
pub fn serial(byte: u8) -> Serial {
    Serial::from_random([byte; 16])
}

/// An account with a password, basic assurance, address not verified.
pub fn user(id: &str, email: &str) -> UserRecord {
    UserRecord {
        id: UserId::from(id),
        email: email.to_owned(),
        given_name: "Јелена".to_owned(),
        surname: "Петровић-Šćepanović 👩".to_owned(),
        jmbg: "0101990710006".to_owned(),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned()),
        email_verified: false,
        assurance: AssuranceLevel::Basic,
        created_at: T,
    }
}

/// Stores `user` in a transaction of its own.
pub async fn insert_user(store: &Store, user: &UserRecord) {
    let mut tx = store.begin().await.unwrap();
    tx.insert_user(user).await.unwrap();
    tx.commit().await.unwrap();
}

/// An active software key.
pub fn key(id: &str, state: KeyState, created_at: UnixTime) -> KeyRecord {
    KeyRecord {
        id: KeyId(id.to_owned()),
        backend: "software".to_owned(),
        label: format!("eidportal-{id}-ключ"),
        algorithm: "ecdsa-p256".to_owned(),
        reference: all_bytes(),
        public_key: vec![0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x00, 0xff],
        state,
        created_at,
    }
}

/// Stores `key` in a transaction of its own.
pub async fn insert_key(store: &Store, key: &KeyRecord) {
    let mut tx = store.begin().await.unwrap();
    tx.insert_key(key).await.unwrap();
    tx.commit().await.unwrap();
}

/// A serial to reserve for a cloud certificate of `email`, held by key `key_id`.
pub fn new_certificate(
    serial: Serial,
    email: Option<&str>,
    key_id: Option<&str>,
    reserved_at: UnixTime,
) -> NewCertificate {
    NewCertificate {
        serial,
        authority: "qualified".to_owned(),
        kind: CertificateKind::CloudSigning,
        subject: "CN=Јелена Петровић,SERIALNUMBER=PNORS-0101990710006,C=RS".to_owned(),
        email: email.map(str::to_owned),
        key_id: key_id.map(|id| KeyId(id.to_owned())),
        not_before: reserved_at,
        not_after: END_OF_TIME,
        reserved_at,
    }
}

/// An active device of `user_id` with certificate `serial`.
pub fn device(id: &str, user_id: &str, serial: Serial, created_at: UnixTime) -> DeviceRecord {
    DeviceRecord {
        id: DeviceId::from(id),
        user_id: UserId::from(user_id),
        name: "Телефон „Јелене“".to_owned(),
        public_key: all_bytes(),
        pin_public_key: vec![4, 0, 255, 1],
        state: DeviceState::Active,
        pin_failures: 0,
        certificate_serial: serial,
        created_at,
        last_used_at: None,
    }
}

/// Stores `device` in a transaction of its own.
pub async fn insert_device(store: &Store, device: &DeviceRecord) {
    let mut tx = store.begin().await.unwrap();
    tx.insert_device(device).await.unwrap();
    tx.commit().await.unwrap();
}

/// A pending login request of `user_id` bound to browser session `binding`.
pub fn transaction(
    id: &str,
    user_id: Option<&str>,
    kind: &str,
    binding: &str,
) -> TransactionRecord {
    TransactionRecord {
        id: TxnId::from(id),
        user_id: user_id.map(UserId::from),
        kind: kind.to_owned(),
        status: TransactionStatus::Pending,
        hint: String::new(),
        challenge: "q83vEjRWeJA".to_owned(),
        payload: all_bytes(),
        signature: vec![0x30, 0x45, 0x02, 0x20, 0x00],
        verification_code: "42".to_owned(),
        session_binding: binding.to_owned(),
        device_id: None,
        created_at: T,
        expires_at: T.plus_seconds(120),
        decided_at: None,
    }
}

/// Stores `txn` in a transaction of its own.
pub async fn insert_transaction(store: &Store, txn: &TransactionRecord) {
    let mut tx = store.begin().await.unwrap();
    tx.insert_transaction(txn).await.unwrap();
    tx.commit().await.unwrap();
}

/// An anonymous browser session.
pub fn session(id_hash: &str) -> SessionRecord {
    SessionRecord {
        id_hash: id_hash.to_owned(),
        user_id: None,
        auth_method: None,
        device_id: None,
        login_txn: None,
        csrf_token: "csrf-токен".to_owned(),
        created_at: T,
        authenticated_at: None,
        expires_at: T.plus_seconds(3600),
        ended_at: None,
    }
}

/// `session` logged in to `user_id` by `device_id`'s approval.
pub fn logged_in(id_hash: &str, user_id: &str, device_id: Option<&str>) -> SessionRecord {
    SessionRecord {
        user_id: Some(UserId::from(user_id)),
        auth_method: Some(if device_id.is_some() {
            AuthMethod::ConsentId
        } else {
            AuthMethod::Password
        }),
        device_id: device_id.map(DeviceId::from),
        // The login request kept with a ConsentID session (read back by the tests as stored).
        login_txn: device_id.map(|_| TxnId::from(format!("login-of-{id_hash}"))),
        authenticated_at: Some(T.plus_seconds(5)),
        ..session(id_hash)
    }
}

/// Runs `work` in two use cases that overlap as much as the database allows: the first does
/// its work and keeps its transaction open; the second begins and does the same work
/// meanwhile (on SQLite it waits for its turn on the writer); then the first commits, and so
/// does the second. Returns what each one's work returned; `name` names the database if the
/// second panics.
pub async fn race<F, Fut, Out>(name: &str, store: &Store, work: F) -> (Out, Out)
where
    F: Fn(store::Tx) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = (store::Tx, Out)> + Send + 'static,
    Out: Send + 'static,
{
    let tx = store.begin().await.unwrap();
    let (tx, first) = work.clone()(tx).await;
    let second = tokio::spawn({
        let store = store.clone();
        async move {
            let tx = store.begin().await.unwrap();
            let (tx, out) = work(tx).await;
            tx.commit().await.unwrap();
            out
        }
    });
    // Give the second use case time to read what it reads before the first commits (a store
    // that serialises them makes it wait meanwhile, however long).
    let mut second = second;
    let early = tokio::time::timeout(std::time::Duration::from_millis(300), &mut second).await;
    tx.commit().await.unwrap();
    let second = match early {
        Ok(done) => done,
        Err(_) => second.await,
    };
    let second = second.unwrap_or_else(|error| panic!("{name}: the second use case: {error}"));
    (first, second)
}
