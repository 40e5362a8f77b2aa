//! Logins without a username (issue 10): a browser's QR login waiting for a phone, and the
//! login transaction the phone made from it.

use std::future::Future;

use domain::records::QrLoginRecord;
use domain::{TxnId, UnixTime};

use crate::db::{query, Row};
use crate::{DatabaseKind, Error, Store, Tx};

const QR_LOGIN_COLUMNS: &str = "SELECT id, secret, session_binding, browser, ip, created_at, \
     expires_at, txn_id FROM qr_logins";

fn qr_login_from_row(row: &Row) -> Result<QrLoginRecord, Error> {
    Ok(QrLoginRecord {
        id: row.try_get(0)?,
        secret: row.try_get(1)?,
        session_binding: row.try_get(2)?,
        browser: row.try_get(3)?,
        ip: row.try_get(4)?,
        created_at: UnixTime(row.try_get(5)?),
        expires_at: UnixTime(row.try_get(6)?),
        txn_id: row.try_get(7)?,
    })
}

/// QR logins, read outside a transaction, and purged by the upkeep.
pub trait QrLoginQueries {
    /// A QR login by id.
    fn qr_login(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<QrLoginRecord>, Error>> + Send;

    /// Forgets QR logins that ended before `before` (upkeep; their transactions stay).
    fn purge_qr_logins(&self, before: UnixTime) -> impl Future<Output = Result<u64, Error>> + Send;
}

impl QrLoginQueries for Store {
    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn qr_login(&self, id: &str) -> Result<Option<QrLoginRecord>, Error> {
        let row = query(&format!("{QR_LOGIN_COLUMNS} WHERE id = $1"))
            .bind(id.to_owned())
            .fetch_optional(self.db())
            .await?;
        row.map(|r| qr_login_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn purge_qr_logins(&self, before: UnixTime) -> Result<u64, Error> {
        let done = self
            .write_one(query("DELETE FROM qr_logins WHERE expires_at < $1").bind(before.0))
            .await?;
        Ok(done.rows_affected())
    }
}

/// QR logins inside a use case's transaction.
pub trait QrLoginStore {
    /// Adds a QR login.
    fn insert_qr_login(
        &mut self,
        login: &QrLoginRecord,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// A QR login, locked for this database transaction on PostgreSQL.
    fn qr_login_for_update(
        &mut self,
        id: &str,
    ) -> impl Future<Output = Result<Option<QrLoginRecord>, Error>> + Send;

    /// Records that a phone took the QR login with transaction `txn_id` (compare-and-set:
    /// false if another phone took it first).
    fn take_qr_login(
        &mut self,
        id: &str,
        txn_id: &TxnId,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Ends a QR login no phone took yet (its browser cancelled): it expires at `now`.
    fn end_qr_login(
        &mut self,
        id: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

impl QrLoginStore for Tx {
    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn insert_qr_login(&mut self, login: &QrLoginRecord) -> Result<(), Error> {
        query(
            "INSERT INTO qr_logins (id, secret, session_binding, browser, ip, created_at, \
             expires_at, txn_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(login.id.clone())
        .bind(login.secret.clone())
        .bind(login.session_binding.clone())
        .bind(login.browser.clone())
        .bind(login.ip.clone())
        .bind(login.created_at.0)
        .bind(login.expires_at.0)
        .bind(login.txn_id.clone())
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn qr_login_for_update(&mut self, id: &str) -> Result<Option<QrLoginRecord>, Error> {
        let lock = if self.kind == DatabaseKind::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let row = query(&format!("{QR_LOGIN_COLUMNS} WHERE id = $1{lock}"))
            .bind(id.to_owned())
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| qr_login_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn take_qr_login(&mut self, id: &str, txn_id: &TxnId) -> Result<bool, Error> {
        let done = query("UPDATE qr_logins SET txn_id = $2 WHERE id = $1 AND txn_id IS NULL")
            .bind(id.to_owned())
            .bind(txn_id.to_owned())
            .execute(self.conn()?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn end_qr_login(&mut self, id: &str, now: UnixTime) -> Result<(), Error> {
        query(
            "UPDATE qr_logins SET expires_at = $2 WHERE id = $1 AND txn_id IS NULL \
             AND expires_at > $2",
        )
        .bind(id.to_owned())
        .bind(now.0)
        .execute(self.conn()?)
        .await?;
        Ok(())
    }
}
