//! Accounts and their proofing, ConsentID activation codes, e-mail verifications, agreements
//! and service keys read back, and rate-limit counters.

use std::future::Future;

use domain::records::{ActivationRecord, KeyId, UserRecord};
use domain::{AssuranceLevel, UnixTime, UserId};

use crate::db::{query, Row};
use crate::{parse_column, DatabaseKind, Error, Store, Tx};

/// The window start of a key never counted: so long ago that every window has ended.
const NO_WINDOW: UnixTime = UnixTime(i64::MIN / 2);

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

/// Accounts, agreements and service keys, read outside a transaction.
pub trait AccountQueries {
    /// An account by e-mail (lower-cased by the caller).
    fn user_by_email(
        &self,
        email: &str,
    ) -> impl Future<Output = Result<Option<UserRecord>, Error>> + Send;

    /// An account by id.
    fn user(&self, id: &UserId) -> impl Future<Output = Result<Option<UserRecord>, Error>> + Send;

    /// An account's accepted agreements, newest first: (number, certificate serial, text, accepted at).
    fn agreements_of(
        &self,
        user_id: &UserId,
    ) -> impl Future<Output = Result<Vec<(String, String, String, UnixTime)>, Error>> + Send;

    /// The key of a service role (`app_signing`, `app_encryption`).
    fn service_key(&self, name: &str) -> impl Future<Output = Result<Option<KeyId>, Error>> + Send;

    /// Deletes the rate-limit counters whose window started at or before `started_before` (the
    /// upkeep passes now less the longest window, so only ended windows go); returns how many.
    fn purge_rate_limits(
        &self,
        started_before: UnixTime,
    ) -> impl Future<Output = Result<u64, Error>> + Send;

    /// How many rate-limit counters are stored.
    fn rate_limit_counters(&self) -> impl Future<Output = Result<u64, Error>> + Send;
}

impl AccountQueries for Store {
    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>, Error> {
        let row = query(&format!("{USER_COLUMNS} WHERE email = $1"))
            .bind(email.to_owned())
            .fetch_optional(self.db())
            .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn user(&self, id: &UserId) -> Result<Option<UserRecord>, Error> {
        let row = query(&format!("{USER_COLUMNS} WHERE id = $1"))
            .bind(id.to_owned())
            .fetch_optional(self.db())
            .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn agreements_of(
        &self,
        user_id: &UserId,
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

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn service_key(&self, name: &str) -> Result<Option<KeyId>, Error> {
        let row = query("SELECT key_id FROM service_keys WHERE name = $1")
            .bind(name.to_owned())
            .fetch_optional(self.db())
            .await?;
        row.map(|r| r.try_get::<String>(0).map(KeyId)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn purge_rate_limits(&self, started_before: UnixTime) -> Result<u64, Error> {
        let done = self
            .write_one(
                query("DELETE FROM rate_limits WHERE window_start <= $1").bind(started_before.0),
            )
            .await?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn rate_limit_counters(&self) -> Result<u64, Error> {
        let row = query("SELECT COUNT(*) FROM rate_limits")
            .fetch_one(self.db())
            .await?;
        Ok(u64::try_from(row.try_get::<i64>(0)?).unwrap_or(0))
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
    fn user(
        &mut self,
        id: &UserId,
    ) -> impl Future<Output = Result<Option<UserRecord>, Error>> + Send;

    /// Sets an account's assurance and e-mail verification.
    fn update_user_assurance(
        &mut self,
        id: &UserId,
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
        user_id: &UserId,
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
        id: &UserId,
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
        id: &UserId,
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
    #[tracing::instrument(level = "debug", target = "store", skip_all)]
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

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn user_by_email(&mut self, email: &str) -> Result<Option<UserRecord>, Error> {
        let row = query(&format!("{USER_COLUMNS} WHERE email = $1"))
            .bind(email.to_owned())
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn user(&mut self, id: &UserId) -> Result<Option<UserRecord>, Error> {
        let row = query(&format!("{USER_COLUMNS} WHERE id = $1"))
            .bind(id.to_owned())
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn update_user_assurance(
        &mut self,
        id: &UserId,
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

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
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

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn activation(&mut self, lookup_or_id: &str) -> Result<Option<ActivationRecord>, Error> {
        let row = query(&format!(
            "{ACTIVATION_COLUMNS} WHERE lookup = $1 OR id = $1"
        ))
        .bind(lookup_or_id.to_owned())
        .fetch_optional(self.conn()?)
        .await?;
        row.map(|r| activation_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
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

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn insert_email_verification(
        &mut self,
        token_hash: &str,
        user_id: &UserId,
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

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn use_email_verification(
        &mut self,
        token_hash: &str,
        now: UnixTime,
    ) -> Result<Option<String>, Error> {
        // Spent by a compare-and-set: on PostgreSQL a use case spending the same token at
        // once makes this wait, and then it changes nothing.
        let spent = query(
            "UPDATE email_verifications SET used_at = $2 \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash.to_owned())
        .bind(now.0)
        .execute(self.conn()?)
        .await?;
        if spent.rows_affected() != 1 {
            return Ok(None);
        }
        let row = query("SELECT user_id FROM email_verifications WHERE token_hash = $1")
            .bind(token_hash.to_owned())
            .fetch_one(self.conn()?)
            .await?;
        let user_id: String = row.try_get(0)?;
        query("UPDATE users SET email_verified = 1 WHERE id = $1")
            .bind(user_id.clone())
            .execute(self.conn()?)
            .await?;
        Ok(Some(user_id))
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn discard_unverified_user(&mut self, id: &UserId) -> Result<bool, Error> {
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

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
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

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn proof_user(
        &mut self,
        id: &UserId,
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

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn rate_limit(
        &mut self,
        key: &str,
        limit: domain::RateLimit,
        now: UnixTime,
    ) -> Result<bool, Error> {
        // PostgreSQL: the counter's row is locked until the commit, so that two use cases
        // counting one key at once take turns (without it both read one count and both pass).
        // One statement makes the row if there is none (counting nothing, in a window long
        // ended, as if there were none), locks it, and reads it: the upsert's update takes the
        // row lock and returns the newest version. SQLite holds the write lock already.
        let row = match self.kind {
            DatabaseKind::Postgres => {
                query(
                    "INSERT INTO rate_limits (key, window_start, count) VALUES ($1, $2, 0) \
                 ON CONFLICT (key) DO UPDATE SET count = rate_limits.count \
                 RETURNING window_start, count",
                )
                .bind(key.to_owned())
                .bind(NO_WINDOW.0)
                .fetch_optional(self.conn()?)
                .await?
            }
            DatabaseKind::Sqlite => {
                query("SELECT window_start, count FROM rate_limits WHERE key = $1")
                    .bind(key.to_owned())
                    .fetch_optional(self.conn()?)
                    .await?
            }
        };
        let (start, count) = match &row {
            Some(r) => (
                UnixTime(r.try_get(0)?),
                u32::try_from(r.try_get::<i64>(1)?).unwrap_or(u32::MAX),
            ),
            None => (NO_WINDOW, 0),
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
