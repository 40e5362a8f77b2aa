//! Persistence for the trust service: SQLite (the embedded default, WAL; through rusqlite) or
//! PostgreSQL (through sqlx), chosen by the URL; `db` runs the store's SQL on either. The store
//! offers the operations the use cases need, not tables; every change happens inside a [`Tx`],
//! one database transaction per use case. A transaction's operations come in narrow traits, one
//! per area, each in the file of its SQL: [`CertificateStore`], [`AccountStore`],
//! [`LoginStore`], [`PushStore`], [`QrLoginStore`], [`SigningStore`], [`MailStore`] and
//! [`AuditLog`]. A caller imports those it uses, so its `use` lines say which part of the store
//! it touches.

mod accounts;
mod audit;
mod db;
mod login;
mod mail_outbox;
mod migrate;
mod push;
mod qr_logins;
mod records;
mod signing;
mod sqlite;
pub mod test_support;
mod writer;

use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{Any, Transaction};

use db::{query, Db, Done, On, Query, Readers, Row};
use writer::{Turn, Writer};

use domain::{CertificateKind, CertificateStatus, RevocationReason, Serial, UnixTime};

pub use accounts::{AccountStore, ActivationRecord, UserRecord};
pub use audit::{
    verify_chain, verify_keyed_chain, AuditEntry, AuditKey, AuditLog, ChainBreak, Checkpoint,
};
pub use login::{DeviceRecord, LoginStore, SessionRecord, TransactionRecord};
pub use mail_outbox::{MailStore, OutboxMail, OutboxStatus};
pub use push::{PushStore, PushSubscriptionRecord};
pub use qr_logins::{QrLoginRecord, QrLoginStore};
pub use records::{
    AuthorityRecord, CertificateRecord, KeyId, KeyRecord, KeyState, NewCertificate, RevokedRecord,
};
pub use signing::{
    ApiTokenRecord, OAuthCodeRecord, SignAuthorizationRecord, SigningDocumentRecord,
    SigningJobRecord, SigningStore,
};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database refused or failed (PostgreSQL).
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The database refused or failed (SQLite).
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A row holds a value this version cannot read.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The URL names no supported database.
    #[error("unsupported database URL (use sqlite:PATH or postgres://...): {0}")]
    UnsupportedUrl(String),
    /// A row that must exist does not.
    #[error("not found: {0}")]
    NotFound(String),
    /// SQLite: the commit of a group of use cases failed, or the writer connection was lost
    /// (see `writer`); nothing of the use case was stored.
    #[error("database: the transaction was not committed: {0}")]
    GroupCommit(String),
}

/// The delegates a CA row keeps: its OCSP signer and its time-stamping unit.
#[derive(Debug, Clone, Copy)]
enum Delegate {
    Ocsp,
    Tsa,
}

/// Which database the URL chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// The database: SQLite's readers and writer, or PostgreSQL's connection pool.
#[derive(Debug, Clone)]
pub struct Store {
    db: Arc<Db>,
    /// The audit chain's MAC key, once [`Store::enable_audit_key`] set it: shared by every
    /// clone of this store.
    audit_key: Arc<std::sync::OnceLock<Arc<AuditKey>>>,
}

impl Store {
    /// Connects (creating a SQLite file if needed) and applies pending migrations. URLs:
    /// `sqlite:PATH` (also `sqlite://PATH`; a `?...` part is ignored) or `postgres://...`.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        sqlx::any::install_default_drivers();
        let db = if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            let path = PathBuf::from(path.split_once('?').map_or(path, |(path, _)| path));
            if path.as_os_str().is_empty() {
                return Err(Error::UnsupportedUrl(url.to_owned()));
            }
            Db::Sqlite(Readers::new(path.clone()), Arc::new(Writer::new(path)))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = AnyPoolOptions::new()
                .acquire_timeout(Duration::from_secs(30))
                .max_connections(16)
                .connect(url)
                .await?;
            Db::Postgres(pool)
        } else {
            return Err(Error::UnsupportedUrl(url.to_owned()));
        };
        let store = Self {
            db: Arc::new(db),
            audit_key: Arc::new(std::sync::OnceLock::new()),
        };
        migrate::run(&store).await?;
        Ok(store)
    }

    /// From now on this store MACs its audit entries with `key`. The first keyed entry of the
    /// chain is a marker (`audit.keyed`), appended now if the chain has none yet: where the
    /// keyed part starts. Entries before it (an earlier release's plain chain) stay as they are.
    /// It applies to every clone of this store; a second key is refused.
    pub async fn enable_audit_key(&self, key: AuditKey, now: UnixTime) -> Result<(), Error> {
        self.audit_key
            .set(Arc::new(key))
            .map_err(|_| Error::Corrupt("the audit key is set already".into()))?;
        if self.audit_keyed_from().await?.is_none() {
            let mut tx = self.begin().await?;
            tx.audit(
                now,
                "system",
                audit::KEYED_MARKER,
                serde_json::json!({ "mac": "hmac-sha256" }),
            )
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// [`Store::enable_audit_key`], by value.
    pub async fn with_audit_key(self, key: AuditKey, now: UnixTime) -> Result<Self, Error> {
        self.enable_audit_key(key, now).await?;
        Ok(self)
    }

    /// Where the chain's keyed part starts: the first marker entry, if any (its MAC is
    /// checked by [`audit::verify_keyed_chain`], not here).
    pub async fn audit_keyed_from(&self) -> Result<Option<i64>, Error> {
        let row = query("SELECT MIN(seq) FROM audit_log WHERE event = $1 AND actor = 'system'")
            .bind(audit::KEYED_MARKER)
            .fetch_one(self.db())
            .await?;
        row.try_get::<Option<i64>>(0)
    }

    /// The audit key, if set.
    pub fn audit_key(&self) -> Option<&AuditKey> {
        self.audit_key.get().map(|key| key.as_ref())
    }

    /// Where pool queries run.
    fn db(&self) -> &Db {
        &self.db
    }

    /// SQLite or PostgreSQL.
    pub fn kind(&self) -> DatabaseKind {
        match &*self.db {
            Db::Sqlite(..) => DatabaseKind::Sqlite,
            Db::Postgres(_) => DatabaseKind::Postgres,
        }
    }

    /// Starts a use case's transaction. On SQLite it takes this process's write turn (see
    /// `writer`): a savepoint inside the writer's group transaction, which holds the write
    /// lock (`BEGIN IMMEDIATE`), so two writers never deadlock upgrading read locks. A task
    /// must not begin a second transaction while it holds one.
    pub async fn begin(&self) -> Result<Tx, Error> {
        let inner = match &*self.db {
            Db::Sqlite(_, writer) => {
                let turn = writer.enter().await?;
                if let Err(error) = turn.conn.execute_batch("SAVEPOINT tx") {
                    writer.abandon(turn, &error.to_string());
                    return Err(error.into());
                }
                Inner::Sqlite(writer.clone(), turn)
            }
            Db::Postgres(pool) => Inner::Postgres(pool.begin().await?),
        };
        Ok(Tx {
            inner,
            kind: self.kind(),
            audit_key: self.audit_key.get().cloned(),
        })
    }

    /// One statement as a use case of its own (a statement is atomic by itself).
    async fn write_one(&self, query: Query<'_>) -> Result<Done, Error> {
        let Db::Sqlite(_, writer) = &*self.db else {
            return query.execute(self.db()).await;
        };
        let mut turn = writer.enter().await?;
        match query.execute(On::Sqlite(&mut turn.conn)).await {
            Ok(done) => {
                writer.leave(turn).await?;
                Ok(done)
            }
            Err(error) if turn.conn.is_autocommit() => {
                // The error ended the group's transaction (SQLite does so on a full disk or an
                // I/O error, say): the group's other use cases are lost with it.
                writer.abandon(turn, &error.to_string());
                Err(error)
            }
            Err(error) => {
                writer.leave_unchanged(turn);
                Err(error)
            }
        }
    }

    /// Closes the database.
    pub async fn close(&self) {
        match &*self.db {
            Db::Sqlite(_, writer) => writer.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }

    /// One authority by name.
    pub async fn authority(&self, name: &str) -> Result<Option<AuthorityRecord>, Error> {
        let row = query(records::AUTHORITY_SELECT_BY_NAME)
            .bind(name)
            .fetch_optional(self.db())
            .await?;
        row.map(|r| AuthorityRecord::from_row(&r)).transpose()
    }

    /// A key record by id.
    pub async fn key(&self, id: &KeyId) -> Result<KeyRecord, Error> {
        let row = query(records::KEY_SELECT)
            .bind(&id.0)
            .fetch_optional(self.db())
            .await?;
        row.map(|r| KeyRecord::from_row(&r))
            .transpose()?
            .ok_or_else(|| Error::NotFound(format!("key {}", id.0)))
    }

    /// A certificate by serial.
    pub async fn certificate(&self, serial: &Serial) -> Result<Option<CertificateRecord>, Error> {
        let row = query(records::CERTIFICATE_SELECT_BY_SERIAL)
            .bind(serial.to_hex())
            .fetch_optional(self.db())
            .await?;
        row.map(|r| CertificateRecord::from_row(&r)).transpose()
    }

    /// Certificates, oldest first; only those of `email` when given.
    pub async fn certificates(&self, email: Option<&str>) -> Result<Vec<CertificateRecord>, Error> {
        let rows = match email {
            Some(email) => {
                query(records::CERTIFICATE_SELECT_BY_EMAIL)
                    .bind(email.to_owned())
                    .fetch_all(self.db())
                    .await?
            }
            None => {
                query(records::CERTIFICATE_SELECT_ALL)
                    .fetch_all(self.db())
                    .await?
            }
        };
        rows.iter().map(CertificateRecord::from_row).collect()
    }

    /// Serials still `reserved` that were reserved before `before`.
    pub async fn reserved_before(&self, before: UnixTime) -> Result<Vec<Serial>, Error> {
        let rows =
            query("SELECT serial FROM certificates WHERE status = 'reserved' AND reserved_at < $1")
                .bind(before.0)
                .fetch_all(self.db())
                .await?;
        rows.iter().map(|r| records::serial_column(r, 0)).collect()
    }

    /// Keys a process left half-way, for the upkeep to finish: `generating` since before
    /// `before` (the generation was cut short or its use case never committed), and every
    /// `destroying` key (its certificate is revoked, the backend's destruction not confirmed).
    pub async fn keys_left_half_way(&self, before: UnixTime) -> Result<Vec<KeyRecord>, Error> {
        let rows = query(records::KEYS_LEFT_HALF_WAY)
            .bind(before.0)
            .fetch_all(self.db())
            .await?;
        rows.iter().map(KeyRecord::from_row).collect()
    }

    /// The status revision: changes whenever any certificate's revocation status changes.
    pub async fn status_revision(&self) -> Result<i64, Error> {
        let row = query("SELECT revision FROM status_revision WHERE id = 1")
            .fetch_one(self.db())
            .await?;
        row.try_get::<i64>(0)
    }

    /// The whole audit log, in order.
    pub async fn audit_entries(&self) -> Result<Vec<AuditEntry>, Error> {
        let rows = query(
            "SELECT seq, at, actor, event, details, prev_hash, hash FROM audit_log ORDER BY seq",
        )
        .fetch_all(self.db())
        .await?;
        rows.iter().map(AuditEntry::from_row).collect()
    }

    /// The audit chain's head as recorded (sequence number and hash).
    pub async fn audit_head(&self) -> Result<(i64, String), Error> {
        let row = query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(self.db())
            .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }
}

/// One use case's transaction. Dropped without [`Tx::commit`], it rolls back.
pub struct Tx {
    inner: Inner,
    kind: DatabaseKind,
    audit_key: Option<Arc<AuditKey>>,
}

enum Inner {
    Postgres(Transaction<'static, Any>),
    /// A turn on the writer, inside savepoint `tx`.
    Sqlite(Arc<Writer>, Turn),
    /// Committed, or being rolled back.
    Ended,
}

impl Drop for Tx {
    fn drop(&mut self) {
        if let Inner::Sqlite(writer, turn) = std::mem::replace(&mut self.inner, Inner::Ended) {
            writer.roll_back(turn);
        }
    }
}

impl Tx {
    /// Commits every change of the use case at once. On SQLite, returns once the group it
    /// joined is committed (see `writer`).
    pub async fn commit(mut self) -> Result<(), Error> {
        match std::mem::replace(&mut self.inner, Inner::Ended) {
            Inner::Postgres(transaction) => Ok(transaction.commit().await?),
            Inner::Sqlite(writer, turn) => {
                if let Err(error) = turn.conn.execute_batch("RELEASE tx") {
                    writer.abandon(turn, &error.to_string());
                    return Err(error.into());
                }
                writer.leave(turn).await
            }
            Inner::Ended => Err(ended()),
        }
    }

    /// Where the transaction's statements run.
    fn conn(&mut self) -> Result<On<'_>, Error> {
        match &mut self.inner {
            Inner::Postgres(transaction) => Ok(On::Postgres(transaction)),
            Inner::Sqlite(_, turn) => Ok(On::Sqlite(&mut turn.conn)),
            Inner::Ended => Err(ended()),
        }
    }

    /// A CA's delegate (OCSP signer or time-stamping unit) lives in four columns of its row.
    async fn store_delegate(
        &mut self,
        delegate: Delegate,
        name: &str,
        serial: &Serial,
        key_id: &KeyId,
        certificate: &[u8],
        not_after: UnixTime,
    ) -> Result<(), Error> {
        let p = match delegate {
            Delegate::Ocsp => "ocsp",
            Delegate::Tsa => "tsa",
        };
        query(&format!(
            "UPDATE authorities SET {p}_serial = $2, {p}_key_id = $3, {p}_certificate = $4, {p}_not_after = $5 WHERE name = $1"
        ))
        .bind(name.to_owned())
        .bind(serial.to_hex())
        .bind(&key_id.0)
        .bind(certificate.to_vec())
        .bind(not_after.0)
        .execute(self.conn()?)
        .await?;
        Ok(())
    }
}

/// The CA's records inside a use case's transaction: keys, authorities (their CRLs, OCSP
/// signers and time-stamping units), certificates and their revocation status, the keys of the
/// service roles, and the agreements accepted with a cloud certificate.
pub trait CertificateStore {
    /// Records a key generated in a backend.
    fn insert_key(&mut self, key: &KeyRecord) -> impl Future<Output = Result<(), Error>> + Send;

    /// Completes the record of a key recorded `generating`: its reference and public key; it
    /// is `active` from now on. Errors if it is no longer `generating` (abandoned meanwhile).
    fn activate_key(
        &mut self,
        id: &KeyId,
        reference: &[u8],
        public_key: &[u8],
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Marks a `generating` key `abandoned`. False when it was not `generating` (then nothing
    /// changes): its use case committed, or another process abandoned it first.
    fn abandon_generating_key(
        &mut self,
        id: &KeyId,
        at: UnixTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Marks an active key `destroying`: it must go, and the reference stays until its backend
    /// has destroyed it ([`CertificateStore::destroy_key`]).
    fn mark_key_destroying(
        &mut self,
        id: &KeyId,
        at: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Marks a key destroyed and erases its reference (for software keys, the sealed key).
    fn destroy_key(
        &mut self,
        id: &KeyId,
        at: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Records a new CA of the hierarchy.
    fn insert_authority(
        &mut self,
        name: &str,
        serial: &Serial,
        key_id: &KeyId,
        certificate: &[u8],
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Locks an authority's row for this transaction and reads it (PostgreSQL `FOR UPDATE`;
    /// SQLite already holds the write lock).
    fn authority_for_update(
        &mut self,
        name: &str,
    ) -> impl Future<Output = Result<AuthorityRecord, Error>> + Send;

    /// Stores a newly signed CRL with its number.
    fn store_crl(
        &mut self,
        name: &str,
        number: i64,
        crl: &[u8],
        next_update: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Stores a renewed delegated OCSP signer.
    fn store_ocsp_signer(
        &mut self,
        name: &str,
        serial: &Serial,
        key_id: &KeyId,
        certificate: &[u8],
        not_after: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Stores a new certificate and key of the time-stamping unit on its issuer's row.
    fn store_tsa(
        &mut self,
        issuer: &str,
        serial: &Serial,
        key_id: &KeyId,
        certificate: &[u8],
        not_after: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Stores a serial before anything is signed with it.
    fn reserve_certificate(
        &mut self,
        new: &NewCertificate,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Stores the signed certificate of a reserved serial. Errors if the serial is not
    /// reserved (abandoned meanwhile, or never reserved).
    fn complete_certificate(
        &mut self,
        serial: &Serial,
        der: &[u8],
        at: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Marks a `reserved` serial `abandoned`; returns its key, if any. `None` when the serial
    /// was not reserved (then nothing changes).
    fn abandon_reserved(
        &mut self,
        serial: &Serial,
    ) -> impl Future<Output = Result<Option<KeyId>, Error>> + Send;

    /// Serialises the creation of the CA hierarchy across processes (PostgreSQL advisory lock;
    /// SQLite's write lock already does).
    fn lock_bootstrap(&mut self) -> impl Future<Output = Result<(), Error>> + Send;

    /// Reads an authority inside the transaction, without locking it.
    fn authority(
        &mut self,
        name: &str,
    ) -> impl Future<Output = Result<Option<AuthorityRecord>, Error>> + Send;

    /// Reads a key record inside the transaction.
    fn key(&mut self, id: &KeyId) -> impl Future<Output = Result<KeyRecord, Error>> + Send;

    /// Reads a certificate inside the transaction.
    fn certificate(
        &mut self,
        serial: &Serial,
    ) -> impl Future<Output = Result<Option<CertificateRecord>, Error>> + Send;

    /// Revokes an issued certificate. Returns false if it was not in the `issued` state.
    fn revoke_certificate(
        &mut self,
        serial: &Serial,
        at: UnixTime,
        reason: RevocationReason,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Every revoked certificate an authority issued, for its CRL.
    fn revoked_by(
        &mut self,
        authority: &str,
    ) -> impl Future<Output = Result<Vec<RevokedRecord>, Error>> + Send;

    /// Stores an accepted agreement.
    fn insert_agreement(
        &mut self,
        number: &str,
        user_id: &str,
        certificate_serial: &str,
        text: &str,
        at: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Names the key of a service role.
    fn insert_service_key(
        &mut self,
        name: &str,
        key_id: &KeyId,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The key of a service role, inside the transaction.
    fn service_key(
        &mut self,
        name: &str,
    ) -> impl Future<Output = Result<Option<KeyId>, Error>> + Send;
}

impl CertificateStore for Tx {
    async fn insert_key(&mut self, key: &KeyRecord) -> Result<(), Error> {
        query(
            "INSERT INTO keys (id, backend, label, algorithm, reference, public_key, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&key.id.0)
        .bind(&key.backend)
        .bind(&key.label)
        .bind(&key.algorithm)
        .bind(key.reference.clone())
        .bind(key.public_key.clone())
        .bind(key.state.as_str())
        .bind(key.created_at.0)
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    async fn activate_key(
        &mut self,
        id: &KeyId,
        reference: &[u8],
        public_key: &[u8],
    ) -> Result<(), Error> {
        let done = query(
            "UPDATE keys SET state = 'active', reference = $2, public_key = $3 WHERE id = $1 AND state = 'generating'",
        )
        .bind(&id.0)
        .bind(reference.to_vec())
        .bind(public_key.to_vec())
        .execute(self.conn()?)
        .await?;
        if done.rows_affected() != 1 {
            return Err(Error::NotFound(format!("key {} being generated", id.0)));
        }
        Ok(())
    }

    async fn abandon_generating_key(&mut self, id: &KeyId, at: UnixTime) -> Result<bool, Error> {
        let done = query("UPDATE keys SET state = 'abandoned', destroyed_at = $2 WHERE id = $1 AND state = 'generating'")
            .bind(&id.0)
            .bind(at.0)
            .execute(self.conn()?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn mark_key_destroying(&mut self, id: &KeyId, at: UnixTime) -> Result<(), Error> {
        query("UPDATE keys SET state = 'destroying', destroyed_at = $2 WHERE id = $1 AND state = 'active'")
            .bind(&id.0)
            .bind(at.0)
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

    async fn destroy_key(&mut self, id: &KeyId, at: UnixTime) -> Result<(), Error> {
        query(
            "UPDATE keys SET state = 'destroyed', destroyed_at = $2, reference = $3 WHERE id = $1",
        )
        .bind(&id.0)
        .bind(at.0)
        .bind(Vec::<u8>::new())
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    async fn insert_authority(
        &mut self,
        name: &str,
        serial: &Serial,
        key_id: &KeyId,
        certificate: &[u8],
    ) -> Result<(), Error> {
        query("INSERT INTO authorities (name, serial, key_id, certificate, crl_number) VALUES ($1, $2, $3, $4, 0)")
            .bind(name.to_owned())
            .bind(serial.to_hex())
            .bind(&key_id.0)
            .bind(certificate.to_vec())
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

    async fn authority_for_update(&mut self, name: &str) -> Result<AuthorityRecord, Error> {
        let sql = match self.kind {
            DatabaseKind::Postgres => format!("{} FOR UPDATE", records::AUTHORITY_SELECT_BY_NAME),
            DatabaseKind::Sqlite => records::AUTHORITY_SELECT_BY_NAME.to_owned(),
        };
        let row = query(&sql)
            .bind(name.to_owned())
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| AuthorityRecord::from_row(&r))
            .transpose()?
            .ok_or_else(|| Error::NotFound(format!("authority {name}")))
    }

    async fn store_crl(
        &mut self,
        name: &str,
        number: i64,
        crl: &[u8],
        next_update: UnixTime,
    ) -> Result<(), Error> {
        query("UPDATE authorities SET crl_number = $2, crl = $3, crl_next_update = $4 WHERE name = $1")
            .bind(name.to_owned())
            .bind(number)
            .bind(crl.to_vec())
            .bind(next_update.0)
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

    async fn store_ocsp_signer(
        &mut self,
        name: &str,
        serial: &Serial,
        key_id: &KeyId,
        certificate: &[u8],
        not_after: UnixTime,
    ) -> Result<(), Error> {
        self.store_delegate(Delegate::Ocsp, name, serial, key_id, certificate, not_after)
            .await
    }

    async fn store_tsa(
        &mut self,
        issuer: &str,
        serial: &Serial,
        key_id: &KeyId,
        certificate: &[u8],
        not_after: UnixTime,
    ) -> Result<(), Error> {
        self.store_delegate(
            Delegate::Tsa,
            issuer,
            serial,
            key_id,
            certificate,
            not_after,
        )
        .await
    }

    async fn reserve_certificate(&mut self, new: &NewCertificate) -> Result<(), Error> {
        query(
            "INSERT INTO certificates (serial, authority, kind, status, subject, email, key_id, not_before, \
             not_after, reserved_at) VALUES ($1, $2, $3, 'reserved', $4, $5, $6, $7, $8, $9)",
        )
        .bind(new.serial.to_hex())
        .bind(new.authority.clone())
        .bind(new.kind.as_str())
        .bind(new.subject.clone())
        .bind(new.email.clone())
        .bind(new.key_id.as_ref().map(|k| k.0.clone()))
        .bind(new.not_before.0)
        .bind(new.not_after.0)
        .bind(new.reserved_at.0)
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    async fn complete_certificate(
        &mut self,
        serial: &Serial,
        der: &[u8],
        at: UnixTime,
    ) -> Result<(), Error> {
        let done = query(
            "UPDATE certificates SET status = 'issued', der = $2, issued_at = $3 WHERE serial = $1 AND status = 'reserved'",
        )
        .bind(serial.to_hex())
        .bind(der.to_vec())
        .bind(at.0)
        .execute(self.conn()?)
        .await?;
        if done.rows_affected() != 1 {
            return Err(Error::NotFound(format!("reserved serial {serial}")));
        }
        Ok(())
    }

    async fn abandon_reserved(&mut self, serial: &Serial) -> Result<Option<KeyId>, Error> {
        let Some(record) = self.certificate(serial).await? else {
            return Ok(None);
        };
        if record.status != CertificateStatus::Reserved {
            return Ok(None);
        }
        query("UPDATE certificates SET status = 'abandoned' WHERE serial = $1 AND status = 'reserved'")
            .bind(serial.to_hex())
            .execute(self.conn()?)
            .await?;
        Ok(record.key_id)
    }

    async fn lock_bootstrap(&mut self) -> Result<(), Error> {
        if self.kind == DatabaseKind::Postgres {
            query("SELECT pg_advisory_xact_lock(7363728002)")
                .execute(self.conn()?)
                .await?;
        }
        Ok(())
    }

    async fn authority(&mut self, name: &str) -> Result<Option<AuthorityRecord>, Error> {
        let row = query(records::AUTHORITY_SELECT_BY_NAME)
            .bind(name.to_owned())
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| AuthorityRecord::from_row(&r)).transpose()
    }

    async fn key(&mut self, id: &KeyId) -> Result<KeyRecord, Error> {
        let row = query(records::KEY_SELECT)
            .bind(&id.0)
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| KeyRecord::from_row(&r))
            .transpose()?
            .ok_or_else(|| Error::NotFound(format!("key {}", id.0)))
    }

    async fn certificate(&mut self, serial: &Serial) -> Result<Option<CertificateRecord>, Error> {
        let row = query(records::CERTIFICATE_SELECT_BY_SERIAL)
            .bind(serial.to_hex())
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| CertificateRecord::from_row(&r)).transpose()
    }

    async fn revoke_certificate(
        &mut self,
        serial: &Serial,
        at: UnixTime,
        reason: RevocationReason,
    ) -> Result<bool, Error> {
        let done = query(
            "UPDATE certificates SET status = 'revoked', revoked_at = $2, revocation_reason = $3 \
             WHERE serial = $1 AND status = 'issued'",
        )
        .bind(serial.to_hex())
        .bind(at.0)
        .bind(i32::from(reason.code()))
        .execute(self.conn()?)
        .await?;
        if done.rows_affected() == 1 {
            query("UPDATE status_revision SET revision = revision + 1 WHERE id = 1")
                .execute(self.conn()?)
                .await?;
        }
        Ok(done.rows_affected() == 1)
    }

    async fn revoked_by(&mut self, authority: &str) -> Result<Vec<RevokedRecord>, Error> {
        let rows = query(
            "SELECT serial, revoked_at, revocation_reason FROM certificates \
             WHERE authority = $1 AND status = 'revoked' ORDER BY revoked_at, serial",
        )
        .bind(authority.to_owned())
        .fetch_all(self.conn()?)
        .await?;
        rows.iter().map(RevokedRecord::from_row).collect()
    }

    async fn insert_agreement(
        &mut self,
        number: &str,
        user_id: &str,
        certificate_serial: &str,
        text: &str,
        at: UnixTime,
    ) -> Result<(), Error> {
        query("INSERT INTO agreements (number, user_id, certificate_serial, text, accepted_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(number.to_owned())
            .bind(user_id.to_owned())
            .bind(certificate_serial.to_owned())
            .bind(text.to_owned())
            .bind(at.0)
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

    async fn insert_service_key(&mut self, name: &str, key_id: &KeyId) -> Result<(), Error> {
        query("INSERT INTO service_keys (name, key_id) VALUES ($1, $2)")
            .bind(name.to_owned())
            .bind(key_id.0.clone())
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

    async fn service_key(&mut self, name: &str) -> Result<Option<KeyId>, Error> {
        let row = query("SELECT key_id FROM service_keys WHERE name = $1")
            .bind(name.to_owned())
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| r.try_get::<String>(0).map(KeyId)).transpose()
    }
}

fn ended() -> Error {
    Error::GroupCommit("the transaction has ended".into())
}

pub(crate) fn parse_column<T: FromStr>(row: &Row, index: usize, what: &str) -> Result<T, Error> {
    let text: String = row.try_get(index)?;
    text.parse()
        .map_err(|_| Error::Corrupt(format!("{what}: {text}")))
}

fn kind_column(row: &Row, index: usize) -> Result<CertificateKind, Error> {
    parse_column(row, index, "certificate kind")
}

fn status_column(row: &Row, index: usize) -> Result<CertificateStatus, Error> {
    parse_column(row, index, "certificate status")
}
