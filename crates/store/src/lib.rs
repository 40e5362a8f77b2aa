//! Persistence for the trust service: SQLite (the embedded default, WAL; through rusqlite) or
//! PostgreSQL (through sqlx), chosen by the URL; `db` runs the store's SQL on either. The store
//! offers the operations the use cases need, not tables; every change happens inside a [`Tx`],
//! one database transaction per use case. A transaction's operations come in narrow traits, one
//! per area, each in the file of its SQL: [`CertificateStore`], [`AccountStore`],
//! [`LoginStore`], [`PushStore`], [`QrLoginStore`], [`SigningStore`], [`MailStore`], [`OidcStore`] and
//! [`AuditLog`]. Outside a transaction, reads of committed data (and the one-statement writes
//! of the upkeep and the mail queue) come in one `…Queries` trait per area, implemented for
//! [`Store`]: [`AccountQueries`], [`CertificateQueries`], [`LoginQueries`], [`PushQueries`],
//! [`QrLoginQueries`], [`SigningQueries`], [`MailQueries`] and [`AuditQueries`]. A caller imports those it uses,
//! so its `use` lines say which part of the store it touches. [`Database`] and
//! [`Transaction`] are the seam: the services are generic over them and name the traits they
//! use as bounds, so another implementation (a native PostgreSQL one, say) can stand in for
//! [`Store`] behind the same behavioural suite (`tests/behaviour`).
//!
//! Every trait method, [`Store::begin`] and [`Tx::commit`] runs in a `tracing` span of its
//! own (level debug, target `store`, named after the method): `EIDPORTAL_LOG=info,store=debug`
//! logs each call's duration when its span closes.
//!
//! What the traits take and give are `domain`'s types: its records ([`domain::records`]) and
//! its typed ids ([`domain::UserId`], [`domain::DeviceId`], [`domain::TxnId`],
//! [`domain::Serial`]). Rows, columns and SQL stay private to this crate; the database keeps
//! an id as text (a serial as hex).
mod accounts;
mod audit;
mod certificates;
mod changes;
mod db;
mod login;
mod mail_outbox;
mod migrate;
mod oidc;
mod operations;
mod push;
mod qr_logins;
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
use sqlx::Any;

use db::{query, Db, Done, Failed, On, Query, Readers, Row};
use writer::{Turn, Writer};

use domain::UnixTime;

pub use accounts::{AccountQueries, AccountStore};
pub use audit::{
    verify_chain, verify_keyed_chain, AuditEntry, AuditKey, AuditLog, ChainBreak, Checkpoint,
};
pub use certificates::{CertificateQueries, CertificateStore};
pub use changes::{Change, Watch};
pub use login::{LoginQueries, LoginStore};
pub use mail_outbox::{MailQueries, MailStore};
pub use oidc::{CibaPingDue, ConsentRecord, LogoutRecord, LogoutScope, OidcQueries, OidcStore};
pub use operations::{OperationQueries, OperationStore};
pub use push::{PushQueries, PushStore};
pub use qr_logins::{QrLoginQueries, QrLoginStore};
pub use signing::{SigningQueries, SigningStore};

/// A database the services run their use cases on (SQLite or PostgreSQL today, both behind
/// [`Store`]). What a caller reads of committed data comes from the `…Queries` traits the
/// database also implements; what a use case changes, from the `…Store` traits and
/// [`AuditLog`] of its [`Transaction`]. A service names the traits it needs as bounds (see
/// `authority`'s `…Db` traits), so any implementation of them can stand in for [`Store`].
pub trait Database: Clone + Send + Sync + 'static {
    /// One use case's transaction.
    type Tx: Transaction;

    /// Starts a use case's transaction (a task holds at most one at a time).
    fn begin(&self) -> impl Future<Output = Result<Self::Tx, Error>> + Send;

    /// Starts watching `change` (see [`Watch`]): call it before reading what you wait on.
    fn watch(&self, change: &Change) -> Watch;

    /// Closes the database (SQLite: commits what waits for the writer, and stops it).
    fn close(&self) -> impl Future<Output = ()> + Send;
}

/// One use case's transaction: every change it makes is stored at once by
/// [`Transaction::commit`], or, dropped without it, none is.
pub trait Transaction: Send + 'static {
    /// Commits every change of the use case at once.
    fn commit(self) -> impl Future<Output = Result<(), Error>> + Send;

    /// Wakes the watchers of `change`, in every process, once (and only if) this transaction
    /// commits.
    fn publish(&mut self, change: Change);
}

/// The audit log as committed, outside a transaction (its verification reads it whole).
pub trait AuditQueries {
    /// The whole audit log, in order.
    fn audit_entries(&self) -> impl Future<Output = Result<Vec<AuditEntry>, Error>> + Send;

    /// The audit chain's head as recorded (sequence number and hash).
    fn audit_head(&self) -> impl Future<Output = Result<(i64, String), Error>> + Send;

    /// Where the chain's keyed part starts: the first marker entry, if any (its MAC is
    /// checked by [`verify_keyed_chain`], not here).
    fn audit_keyed_from(&self) -> impl Future<Output = Result<Option<i64>, Error>> + Send;

    /// The key this database MACs its audit entries with, once it was given one
    /// ([`Store::enable_audit_key`]).
    fn audit_key(&self) -> Option<&AuditKey>;
}

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
    /// A statement of the use case failed before its commit: nothing of it was stored.
    #[error("database: a statement of the transaction failed, so nothing of it was stored")]
    Aborted,
    /// SQLite: the commit of a group of use cases failed, or the writer connection was lost
    /// (see `writer`); nothing of the use case was stored.
    #[error("database: the transaction was not committed: {0}")]
    GroupCommit(String),
}

/// Which database the URL chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// How the store holds its connections (DESIGN §1: settings, not constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// PostgreSQL: connections in the pool at most. SQLite: reader connections kept open
    /// while idle (the one writer is apart).
    pub max_connections: u32,
    /// PostgreSQL: a statement running longer is cancelled (and its use case fails, changing
    /// nothing); `None`: no limit. Migrations are never cut off. SQLite has no such limit.
    pub statement_timeout: Option<Duration>,
    /// PostgreSQL: a connection is closed and replaced after this long (so that a server's
    /// per-connection memory and a load balancer's routes are renewed); `None`: kept.
    pub max_lifetime: Option<Duration>,
}

impl Default for PoolSettings {
    /// 16 connections, statements cut off after 60 s, connections renewed every 30 minutes.
    fn default() -> Self {
        Self {
            max_connections: 16,
            statement_timeout: Some(Duration::from_secs(60)),
            max_lifetime: Some(Duration::from_secs(30 * 60)),
        }
    }
}

/// The database: SQLite's readers and writer, or PostgreSQL's connection pool.
#[derive(Debug, Clone)]
pub struct Store {
    db: Arc<Db>,
    /// The audit chain's MAC key, once [`Store::enable_audit_key`] set it: shared by every
    /// clone of this store.
    audit_key: Arc<std::sync::OnceLock<Arc<AuditKey>>>,
    /// The watchers of this process ([`Change`]).
    hub: Arc<changes::Hub>,
}

impl Store {
    /// Connects (creating a SQLite file if needed) and applies pending migrations, with the
    /// default [`PoolSettings`]. URLs: `sqlite:PATH` (also `sqlite://PATH`; a `?...` part is
    /// ignored) or `postgres://...`.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(url, PoolSettings::default()).await
    }

    /// [`Store::connect`] with these pool settings.
    pub async fn connect_with(url: &str, pool: PoolSettings) -> Result<Self, Error> {
        sqlx::any::install_default_drivers();
        let mut listen_url = None;
        let db = if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            let path = PathBuf::from(path.split_once('?').map_or(path, |(path, _)| path));
            if path.as_os_str().is_empty() {
                return Err(Error::UnsupportedUrl(url.to_owned()));
            }
            Db::Sqlite(
                Readers::new(path.clone(), pool.max_connections),
                Arc::new(Writer::new(path)),
            )
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let timeout_ms = pool
                .statement_timeout
                .map_or(0, |t| t.as_millis().clamp(1, i32::MAX as u128));
            let connections = AnyPoolOptions::new()
                .acquire_timeout(Duration::from_secs(30))
                .max_connections(pool.max_connections.max(1))
                .max_lifetime(pool.max_lifetime)
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        use sqlx::Executor as _;
                        conn.execute(format!("SET statement_timeout = {timeout_ms}").as_str())
                            .await
                            .map(|_| ())
                    })
                })
                .connect(url)
                .await?;
            listen_url = Some(url.to_owned());
            Db::Postgres(connections)
        } else {
            return Err(Error::UnsupportedUrl(url.to_owned()));
        };
        let store = Self {
            db: Arc::new(db),
            audit_key: Arc::new(std::sync::OnceLock::new()),
            hub: Arc::new(changes::Hub::new(listen_url)),
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
    #[tracing::instrument(level = "debug", target = "store", skip_all)]
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
            changes: Vec::new(),
            failed: Failed::default(),
            hub: self.hub.clone(),
        })
    }

    /// Closes the database.
    pub async fn close(&self) {
        self.hub.close();
        match &*self.db {
            Db::Sqlite(_, writer) => writer.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }

    /// One statement as a use case of its own (a statement is atomic by itself).
    async fn write_one(&self, query: Query<'_>) -> Result<Done, Error> {
        let Db::Sqlite(_, writer) = &*self.db else {
            return query.execute(self.db()).await;
        };
        let mut turn = writer.enter().await?;
        match query.execute(On::Sqlite(&mut turn.conn, None)).await {
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
}

/// One use case's transaction. Dropped without [`Tx::commit`], it rolls back.
pub struct Tx {
    inner: Inner,
    kind: DatabaseKind,
    audit_key: Option<Arc<AuditKey>>,
    /// What commit wakes ([`Change::key`]s, each once).
    changes: Vec<String>,
    /// Set when a statement of the use case failed: its commit then stores nothing.
    failed: Failed,
    hub: Arc<changes::Hub>,
}

enum Inner {
    Postgres(sqlx::Transaction<'static, Any>),
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
    /// joined is committed (see `writer`). After a failed statement it stores nothing and
    /// returns [`Error::Aborted`], on both databases.
    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    pub async fn commit(mut self) -> Result<(), Error> {
        if self.failed.0 {
            // Dropped, the transaction rolls back.
            return Err(Error::Aborted);
        }
        match std::mem::replace(&mut self.inner, Inner::Ended) {
            Inner::Postgres(mut transaction) => {
                if !self.changes.is_empty() {
                    // Sent to the other instances when (and only if) the transaction commits.
                    query("SELECT pg_notify($1, $2)")
                        .bind(changes::CHANNEL.to_owned())
                        .bind(self.changes.join("\n"))
                        .execute(On::Postgres(&mut transaction, None))
                        .await?;
                }
                transaction.commit().await?;
            }
            Inner::Sqlite(writer, turn) => {
                if let Err(error) = turn.conn.execute_batch("RELEASE tx") {
                    writer.abandon(turn, &error.to_string());
                    return Err(error.into());
                }
                writer.leave(turn).await?;
            }
            Inner::Ended => return Err(ended()),
        }
        for key in &self.changes {
            self.hub.wake(key);
        }
        Ok(())
    }

    /// Where the transaction's statements run.
    fn conn(&mut self) -> Result<On<'_>, Error> {
        match &mut self.inner {
            Inner::Postgres(transaction) => Ok(On::Postgres(transaction, Some(&mut self.failed))),
            Inner::Sqlite(_, turn) => Ok(On::Sqlite(&mut turn.conn, Some(&mut self.failed))),
            Inner::Ended => Err(ended()),
        }
    }
}

impl Database for Store {
    type Tx = Tx;

    async fn begin(&self) -> Result<Tx, Error> {
        Store::begin(self).await
    }

    async fn close(&self) {
        Store::close(self).await;
    }

    fn watch(&self, change: &Change) -> Watch {
        self.hub.watch(change)
    }
}

impl Transaction for Tx {
    async fn commit(self) -> Result<(), Error> {
        Tx::commit(self).await
    }

    fn publish(&mut self, change: Change) {
        let key = change.key();
        if !self.changes.contains(&key) {
            self.changes.push(key);
        }
    }
}

impl AuditQueries for Store {
    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn audit_entries(&self) -> Result<Vec<AuditEntry>, Error> {
        let rows = query(
            "SELECT seq, at, actor, event, details, prev_hash, hash FROM audit_log ORDER BY seq",
        )
        .fetch_all(self.db())
        .await?;
        rows.iter().map(AuditEntry::from_row).collect()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn audit_head(&self) -> Result<(i64, String), Error> {
        let row = query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(self.db())
            .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn audit_keyed_from(&self) -> Result<Option<i64>, Error> {
        // The marker's name is written out (not bound) so that the planner can use the
        // partial index of migration 0015, whose condition names it.
        const SQL: &str =
            "SELECT MIN(seq) FROM audit_log WHERE event = 'audit.keyed' AND actor = 'system'";
        debug_assert!(SQL.contains(audit::KEYED_MARKER));
        let row = query(SQL).fetch_one(self.db()).await?;
        row.try_get::<Option<i64>>(0)
    }

    fn audit_key(&self) -> Option<&AuditKey> {
        self.audit_key.get().map(|key| key.as_ref())
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
