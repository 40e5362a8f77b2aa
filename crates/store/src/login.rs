//! Logins: ConsentID devices, login and signing transactions, browser sessions, and the
//! device requests' replay nonces.

use std::future::Future;

use domain::oidc::AuthMethod;
use domain::records::{DeviceRecord, SessionRecord, TransactionRecord};
use domain::{DeviceId, DeviceState, Serial, TransactionStatus, TxnId, UnixTime, UserId};

use crate::db::{query, Row};
use crate::{parse_column, DatabaseKind, Error, Store, Tx};

const USE_NONCE: &str =
    "INSERT INTO used_nonces (nonce, expires_at) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING";
const DEVICE_COLUMNS: &str =
    "SELECT id, user_id, name, public_key, pin_public_key, state, pin_failures, \
     certificate_serial, created_at, last_used_at FROM devices";

fn device_from_row(row: &Row) -> Result<DeviceRecord, Error> {
    Ok(DeviceRecord {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        name: row.try_get(2)?,
        public_key: row.try_get(3)?,
        pin_public_key: row.try_get(4)?,
        state: parse_column(row, 5, "device state")?,
        pin_failures: row.try_get(6)?,
        certificate_serial: row.try_get(7)?,
        created_at: UnixTime(row.try_get(8)?),
        last_used_at: row.try_get::<Option<i64>>(9)?.map(UnixTime),
    })
}

const TRANSACTION_COLUMNS: &str = "SELECT id, user_id, kind, status, hint, challenge, payload, signature, \
     verification_code, session_binding, device_id, created_at, expires_at, decided_at FROM transactions";

fn transaction_from_row(row: &Row) -> Result<TransactionRecord, Error> {
    Ok(TransactionRecord {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        kind: row.try_get(2)?,
        status: parse_column(row, 3, "transaction status")?,
        hint: row.try_get(4)?,
        challenge: row.try_get(5)?,
        payload: row.try_get(6)?,
        signature: row.try_get(7)?,
        verification_code: row.try_get(8)?,
        session_binding: row.try_get(9)?,
        device_id: row.try_get(10)?,
        created_at: UnixTime(row.try_get(11)?),
        expires_at: UnixTime(row.try_get(12)?),
        decided_at: row.try_get::<Option<i64>>(13)?.map(UnixTime),
    })
}

const SESSION_COLUMNS: &str =
    "SELECT id_hash, user_id, auth_method, device_id, csrf_token, created_at, \
     authenticated_at, expires_at, ended_at, login_txn FROM sessions";

fn session_from_row(row: &Row) -> Result<SessionRecord, Error> {
    Ok(SessionRecord {
        id_hash: row.try_get(0)?,
        user_id: row.try_get(1)?,
        auth_method: row
            .try_get::<Option<String>>(2)?
            .map(|name| {
                AuthMethod::parse(&name)
                    .ok_or_else(|| Error::Corrupt(format!("login method: {name}")))
            })
            .transpose()?,
        device_id: row.try_get(3)?,
        csrf_token: row.try_get(4)?,
        created_at: UnixTime(row.try_get(5)?),
        authenticated_at: row.try_get::<Option<i64>>(6)?.map(UnixTime),
        expires_at: UnixTime(row.try_get(7)?),
        ended_at: row.try_get::<Option<i64>>(8)?.map(UnixTime),
        login_txn: row.try_get(9)?,
    })
}

/// Devices, login and signing requests and sessions, read outside a transaction; and the device nonces, recorded and purged in one statement each.
pub trait LoginQueries {
    /// Records a device request nonce on its own, one statement committed at once; false if
    /// it was seen before (a replay). For requests that change nothing else (the inbox).
    fn use_nonce(
        &self,
        nonce: &str,
        expires_at: UnixTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Forgets nonces whose requests are too old to be accepted anyway (upkeep).
    fn purge_used_nonces(&self, now: UnixTime) -> impl Future<Output = Result<u64, Error>> + Send;

    /// A device by id.
    fn device(
        &self,
        id: &DeviceId,
    ) -> impl Future<Output = Result<Option<DeviceRecord>, Error>> + Send;

    /// The devices of an account, oldest first.
    fn devices_of(
        &self,
        user_id: &UserId,
    ) -> impl Future<Output = Result<Vec<DeviceRecord>, Error>> + Send;

    /// A transaction by id.
    fn transaction(
        &self,
        id: &TxnId,
    ) -> impl Future<Output = Result<Option<TransactionRecord>, Error>> + Send;

    /// An account's transactions that are pending, or that were made after `since` and ended
    /// other than approved (denied, expired, superseded: so that the app can close their
    /// screens), newest first. Approved and consumed ones, which the app has answered itself,
    /// are left out: a user signing in batches has hundreds of them.
    fn transactions_of(
        &self,
        user_id: &UserId,
        since: UnixTime,
    ) -> impl Future<Output = Result<Vec<TransactionRecord>, Error>> + Send;

    /// A session by the hash of its cookie.
    fn session(
        &self,
        id_hash: &str,
    ) -> impl Future<Output = Result<Option<SessionRecord>, Error>> + Send;
}

impl LoginQueries for Store {
    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn use_nonce(&self, nonce: &str, expires_at: UnixTime) -> Result<bool, Error> {
        let done = self
            .write_one(query(USE_NONCE).bind(nonce.to_owned()).bind(expires_at.0))
            .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn purge_used_nonces(&self, now: UnixTime) -> Result<u64, Error> {
        let done = self
            .write_one(query("DELETE FROM used_nonces WHERE expires_at < $1").bind(now.0))
            .await?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn device(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, Error> {
        let row = query(&format!("{DEVICE_COLUMNS} WHERE id = $1"))
            .bind(id.to_owned())
            .fetch_optional(self.db())
            .await?;
        row.map(|r| device_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn devices_of(&self, user_id: &UserId) -> Result<Vec<DeviceRecord>, Error> {
        let rows = query(&format!(
            "{DEVICE_COLUMNS} WHERE user_id = $1 ORDER BY created_at, id"
        ))
        .bind(user_id.to_owned())
        .fetch_all(self.db())
        .await?;
        rows.iter().map(device_from_row).collect()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn transaction(&self, id: &TxnId) -> Result<Option<TransactionRecord>, Error> {
        let row = query(&format!("{TRANSACTION_COLUMNS} WHERE id = $1"))
            .bind(id.to_owned())
            .fetch_optional(self.db())
            .await?;
        row.map(|r| transaction_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn transactions_of(
        &self,
        user_id: &UserId,
        since: UnixTime,
    ) -> Result<Vec<TransactionRecord>, Error> {
        let rows = query(&format!(
            "{TRANSACTION_COLUMNS} WHERE user_id = $1 AND (status = 'pending' \
             OR (created_at >= $2 AND status NOT IN ('approved', 'consumed'))) ORDER BY created_at DESC, id"
        ))
        .bind(user_id.to_owned())
        .bind(since.0)
        .fetch_all(self.db())
        .await?;
        rows.iter().map(transaction_from_row).collect()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>, Error> {
        let row = query(&format!("{SESSION_COLUMNS} WHERE id_hash = $1"))
            .bind(id_hash.to_owned())
            .fetch_optional(self.db())
            .await?;
        row.map(|r| session_from_row(&r)).transpose()
    }
}

/// Logins inside a use case's transaction: ConsentID devices, login and signing transactions,
/// browser sessions, and the device requests' replay nonces.
pub trait LoginStore {
    /// Adds a device.
    fn insert_device(
        &mut self,
        device: &DeviceRecord,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// A device, inside the transaction.
    fn device(
        &mut self,
        id: &DeviceId,
    ) -> impl Future<Output = Result<Option<DeviceRecord>, Error>> + Send;

    /// Sets a device's state and wrong-PIN counter, and when it was last used.
    fn update_device(
        &mut self,
        id: &DeviceId,
        state: DeviceState,
        pin_failures: i64,
        used_at: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Adds a transaction.
    fn insert_transaction(
        &mut self,
        txn: &TransactionRecord,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// A transaction, locked for this database transaction on PostgreSQL.
    fn transaction_for_update(
        &mut self,
        id: &TxnId,
    ) -> impl Future<Output = Result<Option<TransactionRecord>, Error>> + Send;

    /// Moves a transaction from `from` to `to` (compare-and-set). Returns false if it was not
    /// in `from` any more.
    fn move_transaction(
        &mut self,
        id: &TxnId,
        from: TransactionStatus,
        to: TransactionStatus,
        hint: &str,
        device_id: Option<&DeviceId>,
        at: UnixTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Ends every pending transaction of an account with `status`/`hint`; returns their ids.
    fn end_pending_of(
        &mut self,
        user_id: &UserId,
        status: TransactionStatus,
        hint: &str,
        at: UnixTime,
    ) -> impl Future<Output = Result<Vec<String>, Error>> + Send;

    /// Ends the pending transactions of one kind (`login`, `sign`) of an account, only those
    /// bound to the browser session or API token `bound_to` when it is given, with
    /// `status`/`hint`; returns their ids.
    fn end_pending_of_kind(
        &mut self,
        user_id: &UserId,
        kind: &str,
        bound_to: Option<&str>,
        status: TransactionStatus,
        hint: &str,
        at: UnixTime,
    ) -> impl Future<Output = Result<Vec<String>, Error>> + Send;

    /// The device holding a certificate, if any.
    fn device_by_certificate(
        &mut self,
        serial: &Serial,
    ) -> impl Future<Output = Result<Option<DeviceRecord>, Error>> + Send;

    /// Ends every session a device's login created; returns how many.
    fn end_sessions_of_device(
        &mut self,
        device_id: &DeviceId,
        at: UnixTime,
    ) -> impl Future<Output = Result<u64, Error>> + Send;

    /// The devices of an account, inside the transaction.
    fn devices_of(
        &mut self,
        user_id: &UserId,
    ) -> impl Future<Output = Result<Vec<DeviceRecord>, Error>> + Send;

    /// Adds a session.
    fn insert_session(
        &mut self,
        session: &SessionRecord,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Ends every open session of an account; returns how many.
    fn end_sessions_of_user(
        &mut self,
        user_id: &UserId,
        at: UnixTime,
    ) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Ends a session.
    fn end_session(
        &mut self,
        id_hash: &str,
        at: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Keeps a device's approval with its request: the approval message it signed and the
    /// signature (DER).
    fn record_approval(
        &mut self,
        id: &TxnId,
        approval: &str,
        signature: &[u8],
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The approval kept with a request ([`Self::record_approval`]), if any.
    fn approval_of(
        &mut self,
        id: &TxnId,
    ) -> impl Future<Output = Result<Option<(String, Vec<u8>)>, Error>> + Send;

    /// Records a device request nonce; false if it was seen before (a replay). Expired ones
    /// are removed by [`LoginQueries::purge_used_nonces`]; until then they still count as seen.
    fn use_nonce(
        &mut self,
        nonce: &str,
        expires_at: UnixTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
}

impl LoginStore for Tx {
    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn insert_device(&mut self, device: &DeviceRecord) -> Result<(), Error> {
        query(
            "INSERT INTO devices (id, user_id, name, public_key, pin_public_key, state, pin_failures, certificate_serial, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(device.id.clone())
        .bind(device.user_id.clone())
        .bind(device.name.clone())
        .bind(device.public_key.clone())
        .bind(device.pin_public_key.clone())
        .bind(device.state.as_str())
        .bind(device.pin_failures)
        .bind(device.certificate_serial)
        .bind(device.created_at.0)
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn device(&mut self, id: &DeviceId) -> Result<Option<DeviceRecord>, Error> {
        let row = query(&format!("{DEVICE_COLUMNS} WHERE id = $1"))
            .bind(id.to_owned())
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| device_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn update_device(
        &mut self,
        id: &DeviceId,
        state: DeviceState,
        pin_failures: i64,
        used_at: UnixTime,
    ) -> Result<(), Error> {
        query("UPDATE devices SET state = $2, pin_failures = $3, last_used_at = $4 WHERE id = $1")
            .bind(id.to_owned())
            .bind(state.as_str())
            .bind(pin_failures)
            .bind(used_at.0)
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn insert_transaction(&mut self, txn: &TransactionRecord) -> Result<(), Error> {
        query(
            "INSERT INTO transactions (id, user_id, kind, status, hint, challenge, payload, signature, verification_code, \
             session_binding, device_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(txn.id.clone())
        .bind(txn.user_id.clone())
        .bind(txn.kind.clone())
        .bind(txn.status.as_str())
        .bind(txn.hint.clone())
        .bind(txn.challenge.clone())
        .bind(txn.payload.clone())
        .bind(txn.signature.clone())
        .bind(txn.verification_code.clone())
        .bind(txn.session_binding.clone())
        .bind(txn.device_id.clone())
        .bind(txn.created_at.0)
        .bind(txn.expires_at.0)
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn transaction_for_update(
        &mut self,
        id: &TxnId,
    ) -> Result<Option<TransactionRecord>, Error> {
        let lock = if self.kind == DatabaseKind::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let row = query(&format!("{TRANSACTION_COLUMNS} WHERE id = $1{lock}"))
            .bind(id.to_owned())
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| transaction_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn move_transaction(
        &mut self,
        id: &TxnId,
        from: TransactionStatus,
        to: TransactionStatus,
        hint: &str,
        device_id: Option<&DeviceId>,
        at: UnixTime,
    ) -> Result<bool, Error> {
        let done = query(
            "UPDATE transactions SET status = $3, hint = $4, device_id = COALESCE($5, device_id), decided_at = $6 \
             WHERE id = $1 AND status = $2",
        )
        .bind(id.to_owned())
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(hint.to_owned())
        .bind(device_id.cloned())
        .bind(at.0)
        .execute(self.conn()?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn end_pending_of(
        &mut self,
        user_id: &UserId,
        status: TransactionStatus,
        hint: &str,
        at: UnixTime,
    ) -> Result<Vec<String>, Error> {
        self.end_pending(user_id, None, None, status, hint, at)
            .await
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn end_pending_of_kind(
        &mut self,
        user_id: &UserId,
        kind: &str,
        bound_to: Option<&str>,
        status: TransactionStatus,
        hint: &str,
        at: UnixTime,
    ) -> Result<Vec<String>, Error> {
        self.end_pending(user_id, Some(kind), bound_to, status, hint, at)
            .await
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn device_by_certificate(
        &mut self,
        serial: &Serial,
    ) -> Result<Option<DeviceRecord>, Error> {
        let row = query(&format!("{DEVICE_COLUMNS} WHERE certificate_serial = $1"))
            .bind(serial)
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| device_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn end_sessions_of_device(
        &mut self,
        device_id: &DeviceId,
        at: UnixTime,
    ) -> Result<u64, Error> {
        let done =
            query("UPDATE sessions SET ended_at = $2 WHERE device_id = $1 AND ended_at IS NULL")
                .bind(device_id.to_owned())
                .bind(at.0)
                .execute(self.conn()?)
                .await?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn devices_of(&mut self, user_id: &UserId) -> Result<Vec<DeviceRecord>, Error> {
        let rows = query(&format!(
            "{DEVICE_COLUMNS} WHERE user_id = $1 ORDER BY created_at, id"
        ))
        .bind(user_id.to_owned())
        .fetch_all(self.conn()?)
        .await?;
        rows.iter().map(device_from_row).collect()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn insert_session(&mut self, session: &SessionRecord) -> Result<(), Error> {
        query(
            "INSERT INTO sessions (id_hash, user_id, auth_method, device_id, csrf_token, created_at, authenticated_at, expires_at, login_txn) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(session.id_hash.clone())
        .bind(session.user_id.clone())
        .bind(session.auth_method.map(AuthMethod::as_str))
        .bind(session.device_id.clone())
        .bind(session.csrf_token.clone())
        .bind(session.created_at.0)
        .bind(session.authenticated_at.map(|t| t.0))
        .bind(session.expires_at.0)
        .bind(session.login_txn.clone())
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn end_sessions_of_user(&mut self, user_id: &UserId, at: UnixTime) -> Result<u64, Error> {
        let sessions =
            query("UPDATE sessions SET ended_at = $2 WHERE user_id = $1 AND ended_at IS NULL")
                .bind(user_id.to_owned())
                .bind(at.0)
                .execute(self.conn()?)
                .await?;
        Ok(sessions.rows_affected())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn end_session(&mut self, id_hash: &str, at: UnixTime) -> Result<(), Error> {
        query("UPDATE sessions SET ended_at = $2 WHERE id_hash = $1 AND ended_at IS NULL")
            .bind(id_hash.to_owned())
            .bind(at.0)
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn record_approval(
        &mut self,
        id: &TxnId,
        approval: &str,
        signature: &[u8],
    ) -> Result<(), Error> {
        query("UPDATE transactions SET approval = $2, approval_signature = $3 WHERE id = $1")
            .bind(id)
            .bind(approval)
            .bind(signature)
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn approval_of(&mut self, id: &TxnId) -> Result<Option<(String, Vec<u8>)>, Error> {
        let row = query(
            "SELECT approval, approval_signature FROM transactions \
             WHERE id = $1 AND approval IS NOT NULL",
        )
        .bind(id)
        .fetch_optional(self.conn()?)
        .await?;
        row.map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn use_nonce(&mut self, nonce: &str, expires_at: UnixTime) -> Result<bool, Error> {
        let done = query(USE_NONCE)
            .bind(nonce.to_owned())
            .bind(expires_at.0)
            .execute(self.conn()?)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Tx {
    /// Ends an account's pending transactions, of one kind or of every kind.
    async fn end_pending(
        &mut self,
        user_id: &UserId,
        kind: Option<&str>,
        bound_to: Option<&str>,
        status: TransactionStatus,
        hint: &str,
        at: UnixTime,
    ) -> Result<Vec<String>, Error> {
        // The kind and the binding are the last parameters of both statements, so that they
        // can be left out.
        let filters = |first: u8| {
            let mut n = first;
            let mut sql = String::new();
            for (column, value) in [("kind", kind), ("session_binding", bound_to)] {
                if value.is_some() {
                    sql.push_str(&format!(" AND {column} = ${n}"));
                    n += 1;
                }
            }
            sql
        };
        let select_sql = format!(
            "SELECT id FROM transactions WHERE user_id = $1 AND status = 'pending'{}",
            filters(2)
        );
        let update_sql = format!(
            "UPDATE transactions SET status = $2, hint = $3, decided_at = $4 \
             WHERE user_id = $1 AND status = 'pending'{}",
            filters(5)
        );
        let mut select = query(&select_sql).bind(user_id.to_owned());
        let mut update = query(&update_sql)
            .bind(user_id.to_owned())
            .bind(status.as_str())
            .bind(hint.to_owned())
            .bind(at.0);
        for value in [kind, bound_to].into_iter().flatten() {
            select = select.bind(value.to_owned());
            update = update.bind(value.to_owned());
        }
        let rows = select.fetch_all(self.conn()?).await?;
        let ids = rows
            .iter()
            .map(|r| r.try_get::<String>(0))
            .collect::<Result<Vec<_>, _>>()?;
        update.execute(self.conn()?).await?;
        Ok(ids)
    }
}
