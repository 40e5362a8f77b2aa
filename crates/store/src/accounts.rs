//! Accounts, ConsentID activations and devices, login and signing transactions, browser
//! sessions, rate-limit counters and replay nonces.

use std::future::Future;

use domain::{AssuranceLevel, DeviceState, TransactionStatus, UnixTime};

use crate::db::{query, Row};
use crate::records::KeyId;
use crate::{parse_column, DatabaseKind, Error, Store, Tx};

const USE_NONCE: &str =
    "INSERT INTO used_nonces (nonce, expires_at) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING";

/// An account.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Random id.
    pub id: String,
    /// Lower-case e-mail, the username.
    pub email: String,
    /// Given name.
    pub given_name: String,
    /// Surname.
    pub surname: String,
    /// The JMBG (validated when stored).
    pub jmbg: String,
    /// Argon2id PHC string, if the account has a password.
    pub password_hash: Option<String>,
    /// Whether the e-mail address was verified.
    pub email_verified: bool,
    /// Basic or high.
    pub assurance: AssuranceLevel,
    /// When it was created.
    pub created_at: UnixTime,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UserRecord({}, {:?})", self.id, self.assurance)
    }
}

const USER_COLUMNS: &str =
    "SELECT id, email, given_name, surname, jmbg, password_hash, email_verified, assurance, created_at FROM users";

fn user_from_row(row: &Row) -> Result<UserRecord, Error> {
    Ok(UserRecord {
        id: row.try_get(0)?,
        email: row.try_get(1)?,
        given_name: row.try_get(2)?,
        surname: row.try_get(3)?,
        jmbg: row.try_get(4)?,
        password_hash: row.try_get(5)?,
        email_verified: row.try_get::<i64>(6)? != 0,
        assurance: parse_column(row, 7, "assurance")?,
        created_at: UnixTime(row.try_get(8)?),
    })
}

/// An activation code's record (the secret part only as a hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationRecord {
    /// Random id.
    pub id: String,
    /// The code's public lookup part.
    pub lookup: String,
    /// SHA-256 (hex) of the secret part.
    pub secret_hash: String,
    /// The account.
    pub user_id: String,
    /// End of validity.
    pub expires_at: UnixTime,
    /// Wrong secrets left.
    pub tries_left: i64,
    /// The nonce given at start.
    pub nonce: Option<String>,
    /// When it was used.
    pub used_at: Option<UnixTime>,
}

fn activation_from_row(row: &Row) -> Result<ActivationRecord, Error> {
    Ok(ActivationRecord {
        id: row.try_get(0)?,
        lookup: row.try_get(1)?,
        secret_hash: row.try_get(2)?,
        user_id: row.try_get(3)?,
        expires_at: UnixTime(row.try_get(4)?),
        tries_left: row.try_get(5)?,
        nonce: row.try_get(6)?,
        used_at: row.try_get::<Option<i64>>(7)?.map(UnixTime),
    })
}

const ACTIVATION_COLUMNS: &str =
    "SELECT id, lookup, secret_hash, user_id, expires_at, tries_left, nonce, used_at FROM activations";

/// A ConsentID device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Random id.
    pub id: String,
    /// Its account.
    pub user_id: String,
    /// Its name.
    pub name: String,
    /// Device key, SPKI DER.
    pub public_key: Vec<u8>,
    /// PIN key, SPKI DER (known only to the server).
    pub pin_public_key: Vec<u8>,
    /// Active, PIN-locked or revoked.
    pub state: DeviceState,
    /// Wrong PINs in a row.
    pub pin_failures: i64,
    /// The device certificate's serial, hex.
    pub certificate_serial: String,
    /// When it was activated.
    pub created_at: UnixTime,
    /// When it last answered.
    pub last_used_at: Option<UnixTime>,
}

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

/// A login or signing transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRecord {
    /// Random id.
    pub id: String,
    /// The account; `None` when the username matched none (the browser gets the same answers).
    pub user_id: Option<String>,
    /// `login` or `sign`.
    pub kind: String,
    /// Where it is.
    pub status: TransactionStatus,
    /// Why, e.g. `superseded`, `wrong_vc`.
    pub hint: String,
    /// The challenge, base64url.
    pub challenge: String,
    /// The exact payload bytes the app is shown.
    pub payload: Vec<u8>,
    /// The server's signature over the payload.
    pub signature: Vec<u8>,
    /// The verification code.
    pub verification_code: String,
    /// SHA-256 (hex) of the session cookie that started it.
    pub session_binding: String,
    /// The device that answered.
    pub device_id: Option<String>,
    /// When it was created.
    pub created_at: UnixTime,
    /// When it expires.
    pub expires_at: UnixTime,
    /// When it was answered.
    pub decided_at: Option<UnixTime>,
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

/// A browser session (anonymous until a login completes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 (hex) of the cookie value.
    pub id_hash: String,
    /// The logged-in account.
    pub user_id: Option<String>,
    /// `consentid` or `password`.
    pub auth_method: Option<String>,
    /// The device that approved the login.
    pub device_id: Option<String>,
    /// The CSRF token of this session's forms.
    pub csrf_token: String,
    /// When it was created.
    pub created_at: UnixTime,
    /// When the login happened.
    pub authenticated_at: Option<UnixTime>,
    /// End of validity.
    pub expires_at: UnixTime,
    /// When it was ended (logout, revoke all).
    pub ended_at: Option<UnixTime>,
}

const SESSION_COLUMNS: &str =
    "SELECT id_hash, user_id, auth_method, device_id, csrf_token, created_at, \
     authenticated_at, expires_at, ended_at FROM sessions";

fn session_from_row(row: &Row) -> Result<SessionRecord, Error> {
    Ok(SessionRecord {
        id_hash: row.try_get(0)?,
        user_id: row.try_get(1)?,
        auth_method: row.try_get(2)?,
        device_id: row.try_get(3)?,
        csrf_token: row.try_get(4)?,
        created_at: UnixTime(row.try_get(5)?),
        authenticated_at: row.try_get::<Option<i64>>(6)?.map(UnixTime),
        expires_at: UnixTime(row.try_get(7)?),
        ended_at: row.try_get::<Option<i64>>(8)?.map(UnixTime),
    })
}

impl Store {
    /// Records a device request nonce on its own, one statement committed at once; false if
    /// it was seen before (a replay). For requests that change nothing else (the inbox).
    pub async fn use_nonce(&self, nonce: &str, expires_at: UnixTime) -> Result<bool, Error> {
        let done = self
            .write_one(query(USE_NONCE).bind(nonce.to_owned()).bind(expires_at.0))
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forgets nonces whose requests are too old to be accepted anyway (upkeep).
    pub async fn purge_used_nonces(&self, now: UnixTime) -> Result<u64, Error> {
        let done = self
            .write_one(query("DELETE FROM used_nonces WHERE expires_at < $1").bind(now.0))
            .await?;
        Ok(done.rows_affected())
    }

    /// An account by e-mail (lower-cased by the caller).
    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>, Error> {
        let row = query(&format!("{USER_COLUMNS} WHERE email = $1"))
            .bind(email.to_owned())
            .fetch_optional(self.db())
            .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    /// An account by id.
    pub async fn user(&self, id: &str) -> Result<Option<UserRecord>, Error> {
        let row = query(&format!("{USER_COLUMNS} WHERE id = $1"))
            .bind(id.to_owned())
            .fetch_optional(self.db())
            .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    /// A device by id.
    pub async fn device(&self, id: &str) -> Result<Option<DeviceRecord>, Error> {
        let row = query(&format!("{DEVICE_COLUMNS} WHERE id = $1"))
            .bind(id.to_owned())
            .fetch_optional(self.db())
            .await?;
        row.map(|r| device_from_row(&r)).transpose()
    }

    /// The devices of an account, oldest first.
    pub async fn devices_of(&self, user_id: &str) -> Result<Vec<DeviceRecord>, Error> {
        let rows = query(&format!(
            "{DEVICE_COLUMNS} WHERE user_id = $1 ORDER BY created_at, id"
        ))
        .bind(user_id.to_owned())
        .fetch_all(self.db())
        .await?;
        rows.iter().map(device_from_row).collect()
    }

    /// A transaction by id.
    pub async fn transaction(&self, id: &str) -> Result<Option<TransactionRecord>, Error> {
        let row = query(&format!("{TRANSACTION_COLUMNS} WHERE id = $1"))
            .bind(id.to_owned())
            .fetch_optional(self.db())
            .await?;
        row.map(|r| transaction_from_row(&r)).transpose()
    }

    /// An account's transactions that are pending, or that were made after `since` and ended
    /// other than approved (denied, expired, superseded: so that the app can close their
    /// screens), newest first. Approved and consumed ones, which the app has answered itself,
    /// are left out: a user signing in batches has hundreds of them.
    pub async fn transactions_of(
        &self,
        user_id: &str,
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

    /// A session by the hash of its cookie.
    pub async fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>, Error> {
        let row = query(&format!("{SESSION_COLUMNS} WHERE id_hash = $1"))
            .bind(id_hash.to_owned())
            .fetch_optional(self.db())
            .await?;
        row.map(|r| session_from_row(&r)).transpose()
    }

    /// An account's accepted agreements, newest first: (number, certificate serial, text, accepted at).
    pub async fn agreements_of(
        &self,
        user_id: &str,
    ) -> Result<Vec<(String, String, String, UnixTime)>, Error> {
        let rows = query("SELECT number, certificate_serial, text, accepted_at FROM agreements WHERE user_id = $1 ORDER BY accepted_at DESC, number")
            .bind(user_id.to_owned())
            .fetch_all(self.db())
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    UnixTime(r.try_get(3)?),
                ))
            })
            .collect()
    }

    /// The key of a service role (`app_signing`, `app_encryption`).
    pub async fn service_key(&self, name: &str) -> Result<Option<KeyId>, Error> {
        let row = query("SELECT key_id FROM service_keys WHERE name = $1")
            .bind(name.to_owned())
            .fetch_optional(self.db())
            .await?;
        row.map(|r| r.try_get::<String>(0).map(KeyId)).transpose()
    }
}

/// Accounts inside a use case's transaction: users, their identity proofing, ConsentID
/// activation codes, e-mail verifications, and the rate-limit counters.
pub trait AccountStore {
    /// Adds an account.
    fn insert_user(&mut self, user: &UserRecord) -> impl Future<Output = Result<(), Error>> + Send;

    /// An account by e-mail, inside the transaction.
    fn user_by_email(
        &mut self,
        email: &str,
    ) -> impl Future<Output = Result<Option<UserRecord>, Error>> + Send;

    /// An account by id, inside the transaction.
    fn user(&mut self, id: &str) -> impl Future<Output = Result<Option<UserRecord>, Error>> + Send;

    /// Sets an account's assurance and e-mail verification.
    fn update_user_assurance(
        &mut self,
        id: &str,
        assurance: AssuranceLevel,
        email_verified: bool,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Adds an activation code; earlier unused codes of the account stop working.
    fn insert_activation(
        &mut self,
        activation: &ActivationRecord,
        now: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// An activation by its lookup part or id.
    fn activation(
        &mut self,
        lookup_or_id: &str,
    ) -> impl Future<Output = Result<Option<ActivationRecord>, Error>> + Send;

    /// Records a wrong secret, a start (nonce) or the use of an activation.
    fn update_activation(
        &mut self,
        id: &str,
        tries_left: i64,
        nonce: Option<&str>,
        used_at: Option<UnixTime>,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Stores an e-mail verification token's hash.
    fn insert_email_verification(
        &mut self,
        token_hash: &str,
        user_id: &str,
        expires_at: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Spends an unused, unexpired verification token; returns its account.
    fn use_email_verification(
        &mut self,
        token_hash: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<String>, Error>> + Send;

    /// Discards a self-registration whose address was never verified (an officer takes the
    /// address over, or the registration is replaced): its links first, then the account. A
    /// verified or proofed account is never touched; returns whether one was discarded.
    fn discard_unverified_user(
        &mut self,
        id: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Discards every unverified self-registration created before `before` (upkeep); returns
    /// how many. Such an account has nothing but its verification links: it cannot log in.
    fn purge_unverified_users(
        &mut self,
        before: UnixTime,
    ) -> impl Future<Output = Result<u64, Error>> + Send;

    /// An officer's identity proofing of an existing account: the proofed name and JMBG, the
    /// assurance high, the address verified, and no password (an e-mail or password compromise
    /// must never lead to signing).
    fn proof_user(
        &mut self,
        id: &str,
        given_name: &str,
        surname: &str,
        jmbg: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Counts one event against a rate limit; false when the limit is reached (then nothing
    /// changes).
    fn rate_limit(
        &mut self,
        key: &str,
        limit: domain::RateLimit,
        now: UnixTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
}

impl AccountStore for Tx {
    async fn insert_user(&mut self, user: &UserRecord) -> Result<(), Error> {
        query(
            "INSERT INTO users (id, email, given_name, surname, jmbg, password_hash, email_verified, assurance, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(user.id.clone())
        .bind(user.email.clone())
        .bind(user.given_name.clone())
        .bind(user.surname.clone())
        .bind(user.jmbg.clone())
        .bind(user.password_hash.clone())
        .bind(i64::from(user.email_verified))
        .bind(user.assurance.as_str())
        .bind(user.created_at.0)
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    async fn user_by_email(&mut self, email: &str) -> Result<Option<UserRecord>, Error> {
        let row = query(&format!("{USER_COLUMNS} WHERE email = $1"))
            .bind(email.to_owned())
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    async fn user(&mut self, id: &str) -> Result<Option<UserRecord>, Error> {
        let row = query(&format!("{USER_COLUMNS} WHERE id = $1"))
            .bind(id.to_owned())
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    async fn update_user_assurance(
        &mut self,
        id: &str,
        assurance: AssuranceLevel,
        email_verified: bool,
    ) -> Result<(), Error> {
        query("UPDATE users SET assurance = $2, email_verified = $3 WHERE id = $1")
            .bind(id.to_owned())
            .bind(assurance.as_str())
            .bind(i64::from(email_verified))
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

    async fn insert_activation(
        &mut self,
        activation: &ActivationRecord,
        now: UnixTime,
    ) -> Result<(), Error> {
        query("UPDATE activations SET tries_left = 0 WHERE user_id = $1 AND used_at IS NULL")
            .bind(activation.user_id.clone())
            .execute(self.conn()?)
            .await?;
        query(
            "INSERT INTO activations (id, lookup, secret_hash, user_id, expires_at, tries_left, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(activation.id.clone())
        .bind(activation.lookup.clone())
        .bind(activation.secret_hash.clone())
        .bind(activation.user_id.clone())
        .bind(activation.expires_at.0)
        .bind(activation.tries_left)
        .bind(now.0)
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    async fn activation(&mut self, lookup_or_id: &str) -> Result<Option<ActivationRecord>, Error> {
        let row = query(&format!(
            "{ACTIVATION_COLUMNS} WHERE lookup = $1 OR id = $1"
        ))
        .bind(lookup_or_id.to_owned())
        .fetch_optional(self.conn()?)
        .await?;
        row.map(|r| activation_from_row(&r)).transpose()
    }

    async fn update_activation(
        &mut self,
        id: &str,
        tries_left: i64,
        nonce: Option<&str>,
        used_at: Option<UnixTime>,
    ) -> Result<(), Error> {
        query("UPDATE activations SET tries_left = $2, nonce = $3, used_at = $4 WHERE id = $1")
            .bind(id.to_owned())
            .bind(tries_left)
            .bind(nonce.map(str::to_owned))
            .bind(used_at.map(|t| t.0))
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

    async fn insert_email_verification(
        &mut self,
        token_hash: &str,
        user_id: &str,
        expires_at: UnixTime,
    ) -> Result<(), Error> {
        query(
            "INSERT INTO email_verifications (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(token_hash.to_owned())
        .bind(user_id.to_owned())
        .bind(expires_at.0)
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    async fn use_email_verification(
        &mut self,
        token_hash: &str,
        now: UnixTime,
    ) -> Result<Option<String>, Error> {
        let row = query("SELECT user_id FROM email_verifications WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2")
            .bind(token_hash.to_owned())
            .bind(now.0)
            .fetch_optional(self.conn()?)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let user_id: String = row.try_get(0)?;
        query("UPDATE email_verifications SET used_at = $2 WHERE token_hash = $1")
            .bind(token_hash.to_owned())
            .bind(now.0)
            .execute(self.conn()?)
            .await?;
        query("UPDATE users SET email_verified = 1 WHERE id = $1")
            .bind(user_id.clone())
            .execute(self.conn()?)
            .await?;
        Ok(Some(user_id))
    }

    async fn discard_unverified_user(&mut self, id: &str) -> Result<bool, Error> {
        query(
            "DELETE FROM email_verifications WHERE user_id IN \
             (SELECT id FROM users WHERE id = $1 AND email_verified = 0 AND assurance = 'basic')",
        )
        .bind(id.to_owned())
        .execute(self.conn()?)
        .await?;
        let done =
            query("DELETE FROM users WHERE id = $1 AND email_verified = 0 AND assurance = 'basic'")
                .bind(id.to_owned())
                .execute(self.conn()?)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn purge_unverified_users(&mut self, before: UnixTime) -> Result<u64, Error> {
        query(
            "DELETE FROM email_verifications WHERE user_id IN \
             (SELECT id FROM users WHERE email_verified = 0 AND assurance = 'basic' AND created_at < $1)",
        )
        .bind(before.0)
        .execute(self.conn()?)
        .await?;
        let done = query("DELETE FROM users WHERE email_verified = 0 AND assurance = 'basic' AND created_at < $1")
            .bind(before.0)
            .execute(self.conn()?)
            .await?;
        Ok(done.rows_affected())
    }

    async fn proof_user(
        &mut self,
        id: &str,
        given_name: &str,
        surname: &str,
        jmbg: &str,
    ) -> Result<(), Error> {
        query(
            "UPDATE users SET given_name = $2, surname = $3, jmbg = $4, assurance = $5, email_verified = 1, \
             password_hash = NULL WHERE id = $1",
        )
        .bind(id.to_owned())
        .bind(given_name.to_owned())
        .bind(surname.to_owned())
        .bind(jmbg.to_owned())
        .bind(AssuranceLevel::High.as_str())
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    async fn rate_limit(
        &mut self,
        key: &str,
        limit: domain::RateLimit,
        now: UnixTime,
    ) -> Result<bool, Error> {
        let row = query("SELECT window_start, count FROM rate_limits WHERE key = $1")
            .bind(key.to_owned())
            .fetch_optional(self.conn()?)
            .await?;
        let (start, count) = match &row {
            Some(r) => (
                UnixTime(r.try_get(0)?),
                u32::try_from(r.try_get::<i64>(1)?).unwrap_or(u32::MAX),
            ),
            None => (UnixTime(i64::MIN / 2), 0),
        };
        let (allowed, start, count) = limit.check(start, count, now);
        if allowed {
            query(
                "INSERT INTO rate_limits (key, window_start, count) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET window_start = $2, count = $3",
            )
            .bind(key.to_owned())
            .bind(start.0)
            .bind(i64::from(count))
            .execute(self.conn()?)
            .await?;
        }
        Ok(allowed)
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
        id: &str,
    ) -> impl Future<Output = Result<Option<DeviceRecord>, Error>> + Send;

    /// Sets a device's state and wrong-PIN counter, and when it was last used.
    fn update_device(
        &mut self,
        id: &str,
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
        id: &str,
    ) -> impl Future<Output = Result<Option<TransactionRecord>, Error>> + Send;

    /// Moves a transaction from `from` to `to` (compare-and-set). Returns false if it was not
    /// in `from` any more.
    fn move_transaction(
        &mut self,
        id: &str,
        from: TransactionStatus,
        to: TransactionStatus,
        hint: &str,
        device_id: Option<&str>,
        at: UnixTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Ends every pending transaction of an account with `status`/`hint`; returns their ids.
    fn end_pending_of(
        &mut self,
        user_id: &str,
        status: TransactionStatus,
        hint: &str,
        at: UnixTime,
    ) -> impl Future<Output = Result<Vec<String>, Error>> + Send;

    /// Ends the pending transactions of one kind (`login`, `sign`) of an account with
    /// `status`/`hint`; returns their ids.
    fn end_pending_of_kind(
        &mut self,
        user_id: &str,
        kind: &str,
        status: TransactionStatus,
        hint: &str,
        at: UnixTime,
    ) -> impl Future<Output = Result<Vec<String>, Error>> + Send;

    /// The device holding a certificate, if any.
    fn device_by_certificate(
        &mut self,
        serial_hex: &str,
    ) -> impl Future<Output = Result<Option<DeviceRecord>, Error>> + Send;

    /// Ends every session a device's login created; returns how many.
    fn end_sessions_of_device(
        &mut self,
        device_id: &str,
        at: UnixTime,
    ) -> impl Future<Output = Result<u64, Error>> + Send;

    /// The devices of an account, inside the transaction.
    fn devices_of(
        &mut self,
        user_id: &str,
    ) -> impl Future<Output = Result<Vec<DeviceRecord>, Error>> + Send;

    /// Adds a session.
    fn insert_session(
        &mut self,
        session: &SessionRecord,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Ends every open session and API token of an account; returns how many.
    fn end_sessions_of_user(
        &mut self,
        user_id: &str,
        at: UnixTime,
    ) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Ends a session.
    fn end_session(
        &mut self,
        id_hash: &str,
        at: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Records a device request nonce; false if it was seen before (a replay). Expired ones
    /// are removed by [`Store::purge_used_nonces`]; until then they still count as seen.
    fn use_nonce(
        &mut self,
        nonce: &str,
        expires_at: UnixTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
}

impl LoginStore for Tx {
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
        .bind(device.certificate_serial.clone())
        .bind(device.created_at.0)
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    async fn device(&mut self, id: &str) -> Result<Option<DeviceRecord>, Error> {
        let row = query(&format!("{DEVICE_COLUMNS} WHERE id = $1"))
            .bind(id.to_owned())
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| device_from_row(&r)).transpose()
    }

    async fn update_device(
        &mut self,
        id: &str,
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

    async fn transaction_for_update(
        &mut self,
        id: &str,
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

    async fn move_transaction(
        &mut self,
        id: &str,
        from: TransactionStatus,
        to: TransactionStatus,
        hint: &str,
        device_id: Option<&str>,
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
        .bind(device_id.map(str::to_owned))
        .bind(at.0)
        .execute(self.conn()?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn end_pending_of(
        &mut self,
        user_id: &str,
        status: TransactionStatus,
        hint: &str,
        at: UnixTime,
    ) -> Result<Vec<String>, Error> {
        self.end_pending(user_id, None, status, hint, at).await
    }

    async fn end_pending_of_kind(
        &mut self,
        user_id: &str,
        kind: &str,
        status: TransactionStatus,
        hint: &str,
        at: UnixTime,
    ) -> Result<Vec<String>, Error> {
        self.end_pending(user_id, Some(kind), status, hint, at)
            .await
    }

    async fn device_by_certificate(
        &mut self,
        serial_hex: &str,
    ) -> Result<Option<DeviceRecord>, Error> {
        let row = query(&format!("{DEVICE_COLUMNS} WHERE certificate_serial = $1"))
            .bind(serial_hex.to_owned())
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| device_from_row(&r)).transpose()
    }

    async fn end_sessions_of_device(
        &mut self,
        device_id: &str,
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

    async fn devices_of(&mut self, user_id: &str) -> Result<Vec<DeviceRecord>, Error> {
        let rows = query(&format!(
            "{DEVICE_COLUMNS} WHERE user_id = $1 ORDER BY created_at, id"
        ))
        .bind(user_id.to_owned())
        .fetch_all(self.conn()?)
        .await?;
        rows.iter().map(device_from_row).collect()
    }

    async fn insert_session(&mut self, session: &SessionRecord) -> Result<(), Error> {
        query(
            "INSERT INTO sessions (id_hash, user_id, auth_method, device_id, csrf_token, created_at, authenticated_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(session.id_hash.clone())
        .bind(session.user_id.clone())
        .bind(session.auth_method.clone())
        .bind(session.device_id.clone())
        .bind(session.csrf_token.clone())
        .bind(session.created_at.0)
        .bind(session.authenticated_at.map(|t| t.0))
        .bind(session.expires_at.0)
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    async fn end_sessions_of_user(&mut self, user_id: &str, at: UnixTime) -> Result<u64, Error> {
        let sessions =
            query("UPDATE sessions SET ended_at = $2 WHERE user_id = $1 AND ended_at IS NULL")
                .bind(user_id.to_owned())
                .bind(at.0)
                .execute(self.conn()?)
                .await?;
        let tokens = query(
            "UPDATE api_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user_id.to_owned())
        .bind(at.0)
        .execute(self.conn()?)
        .await?;
        Ok(sessions.rows_affected() + tokens.rows_affected())
    }

    async fn end_session(&mut self, id_hash: &str, at: UnixTime) -> Result<(), Error> {
        query("UPDATE sessions SET ended_at = $2 WHERE id_hash = $1 AND ended_at IS NULL")
            .bind(id_hash.to_owned())
            .bind(at.0)
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

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
        user_id: &str,
        kind: Option<&str>,
        status: TransactionStatus,
        hint: &str,
        at: UnixTime,
    ) -> Result<Vec<String>, Error> {
        // The kind is the last parameter of both statements, so that it can be left out.
        let of_kind = |n: u8| {
            kind.map(|_| format!(" AND kind = ${n}"))
                .unwrap_or_default()
        };
        let select_sql = format!(
            "SELECT id FROM transactions WHERE user_id = $1 AND status = 'pending'{}",
            of_kind(2)
        );
        let update_sql = format!(
            "UPDATE transactions SET status = $2, hint = $3, decided_at = $4 \
             WHERE user_id = $1 AND status = 'pending'{}",
            of_kind(5)
        );
        let mut select = query(&select_sql).bind(user_id.to_owned());
        let mut update = query(&update_sql)
            .bind(user_id.to_owned())
            .bind(status.as_str())
            .bind(hint.to_owned())
            .bind(at.0);
        if let Some(kind) = kind {
            select = select.bind(kind.to_owned());
            update = update.bind(kind.to_owned());
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
