//! The OpenID provider's state (issue 23): registered clients, pushed authorization requests
//! (RFC 9126), codes, tokens (kept as hashes), remembered consents, and the one-time values
//! already seen (a client assertion's or DPoP proof's `jti`), CIBA requests and the ping-mode
//! notifications they owe, and the back-channel logout queue. A client and a grant are kept
//! as JSON text of their `domain::oidc` types.

use std::future::Future;

use domain::oidc::{
    CibaPing, CibaRecord, ClientRecord, CodeUse, Grant, KeyGeneration, NotificationToken,
    RefreshUse, TokenKind, TokenRecord,
};
use domain::{TxnId, UnixTime, UserId};

use crate::db::{query, Row};
use crate::{DatabaseKind, Error, Store, Tx};

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::Corrupt(format!("JSON: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt(format!("{what}: {e}")))
}

const TOKEN_COLUMNS: &str = "SELECT token_hash, kind, code_hash, family, grant_data, \
     created_at, expires_at, used_at, revoked_at FROM oidc_tokens";

fn token_from_row(row: &Row) -> Result<TokenRecord, Error> {
    let kind: String = row.try_get(1)?;
    let grant: String = row.try_get(4)?;
    Ok(TokenRecord {
        token_hash: row.try_get(0)?,
        kind: TokenKind::parse(&kind)
            .ok_or_else(|| Error::Corrupt(format!("token kind {kind}")))?,
        code_hash: row.try_get(2)?,
        family: row.try_get(3)?,
        grant: from_json(&grant, "token grant")?,
        created_at: UnixTime(row.try_get(5)?),
        expires_at: UnixTime(row.try_get(6)?),
        used_at: row.try_get::<Option<i64>>(7)?.map(UnixTime),
        revoked_at: row.try_get::<Option<i64>>(8)?.map(UnixTime),
    })
}

/// Whose back-channel logouts to queue: the clients that received tokens in a portal session,
/// one client's for an account, or every client's for an account.
#[derive(Debug, Clone, Copy)]
pub enum LogoutScope<'a> {
    /// A portal session ended (its `sid`).
    Session(&'a str),
    /// A citizen withdrew a client's consent.
    Client(&'a UserId, &'a str),
    /// Every session of a citizen ended (revoke everything).
    User(&'a UserId),
    /// The portal sessions that expired after this time, up to the call's `now`.
    ExpiredAfter(UnixTime),
}

/// A back-channel logout waiting to be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRecord {
    /// The client to tell.
    pub client_id: String,
    /// The portal session that ended.
    pub sid: String,
    /// Its citizen.
    pub user_id: UserId,
    /// Attempts so far.
    pub attempts: i64,
    /// When it was queued.
    pub created_at: UnixTime,
}

/// A ping-mode CIBA notification due to be sent (CIBA Core §10.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CibaPingDue {
    /// SHA-256 (hex) of the request's `auth_req_id`.
    pub id_hash: String,
    /// The client to notify.
    pub client_id: String,
    /// What to send.
    pub ping: CibaPing,
    /// Attempts so far.
    pub attempts: i64,
    /// When the request ends.
    pub expires_at: UnixTime,
}

/// The ping columns of a CIBA request as one notification, if both are kept.
fn ping_of(auth_req_id: Option<String>, token: Option<String>) -> Result<Option<CibaPing>, Error> {
    match (auth_req_id, token) {
        (Some(auth_req_id), Some(token)) => Ok(Some(CibaPing {
            auth_req_id,
            token: NotificationToken::parse(&token)
                .ok_or_else(|| Error::Corrupt("CIBA notification token".into()))?,
        })),
        _ => Ok(None),
    }
}

/// A citizen's remembered consent for a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    /// The client.
    pub client_id: String,
    /// The scopes consented to, space-separated.
    pub scope: String,
    /// When.
    pub granted_at: UnixTime,
}

/// The provider's state as committed, and the upkeep's purge.
pub trait OidcQueries {
    /// A registered client (not removed).
    fn oidc_client(
        &self,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<ClientRecord>, Error>> + Send;

    /// Every registered client, oldest first.
    fn oidc_clients(&self) -> impl Future<Output = Result<Vec<ClientRecord>, Error>> + Send;

    /// A pushed request of `client_id`, still unused and valid at `now`: its parameters
    /// (read, not spent: [`OidcStore::take_oidc_request`] spends it).
    fn oidc_request(
        &self,
        id_hash: &str,
        client_id: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<String>, Error>> + Send;

    /// A token by the hash of its value.
    fn oidc_token(
        &self,
        token_hash: &str,
    ) -> impl Future<Output = Result<Option<TokenRecord>, Error>> + Send;

    /// The consents a citizen gave, by client.
    fn oidc_consents(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Vec<ConsentRecord>, Error>> + Send;

    /// The signing keys after the first, in order of generation.
    fn oidc_keys(&self) -> impl Future<Output = Result<Vec<KeyGeneration>, Error>> + Send;

    /// Back-channel logouts due at `now`, oldest first, at most `limit`.
    fn due_oidc_logouts(
        &self,
        now: UnixTime,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<LogoutRecord>, Error>> + Send;

    /// When the next back-channel logout is due, if one waits.
    fn next_oidc_logout_due(&self) -> impl Future<Output = Result<Option<UnixTime>, Error>> + Send;

    /// Records a back-channel logout's attempt: delivered, retried at `retry_at`, or (neither)
    /// given up, with the failure.
    fn record_oidc_logout(
        &self,
        logout: &LogoutRecord,
        now: UnixTime,
        outcome: Result<(), (Option<UnixTime>, String)>,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Ping-mode CIBA notifications due at `now`, oldest first, at most `limit`.
    fn due_oidc_pings(
        &self,
        now: UnixTime,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<CibaPingDue>, Error>> + Send;

    /// When the next ping-mode CIBA notification is due, if one waits.
    fn next_oidc_ping_due(&self) -> impl Future<Output = Result<Option<UnixTime>, Error>> + Send;

    /// Takes a due notification for one attempt: it is not due again before `until` (so that
    /// another worker does not send it meanwhile, and one that stopped half-way is tried again
    /// then). False if it was not due at `now` (another worker took it, or it was settled).
    fn claim_oidc_ping(
        &self,
        id_hash: &str,
        now: UnixTime,
        until: UnixTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Records a notification's attempt: delivered, retried at `retry_at`, or (neither) given
    /// up, with the failure. Once settled, its `auth_req_id` and token are forgotten.
    fn record_oidc_ping(
        &self,
        id_hash: &str,
        now: UnixTime,
        outcome: Result<(), (Option<UnixTime>, String)>,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Forgets requests, codes, tokens and one-time values that ended before `before`.
    fn purge_oidc(&self, before: UnixTime) -> impl Future<Output = Result<u64, Error>> + Send;
}

impl OidcQueries for Store {
    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn oidc_client(&self, client_id: &str) -> Result<Option<ClientRecord>, Error> {
        let row =
            query("SELECT record FROM oidc_clients WHERE client_id = $1 AND removed_at IS NULL")
                .bind(client_id.to_owned())
                .fetch_optional(self.db())
                .await?;
        row.map(|r| from_json(&r.try_get::<String>(0)?, "client"))
            .transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn oidc_clients(&self) -> Result<Vec<ClientRecord>, Error> {
        let rows = query(
            "SELECT record FROM oidc_clients WHERE removed_at IS NULL \
             ORDER BY created_at, client_id",
        )
        .fetch_all(self.db())
        .await?;
        rows.iter()
            .map(|r| from_json(&r.try_get::<String>(0)?, "client"))
            .collect()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn oidc_request(
        &self,
        id_hash: &str,
        client_id: &str,
        now: UnixTime,
    ) -> Result<Option<String>, Error> {
        let row = query(
            "SELECT params FROM oidc_requests WHERE id_hash = $1 AND client_id = $2 \
             AND used_at IS NULL AND expires_at > $3",
        )
        .bind(id_hash.to_owned())
        .bind(client_id.to_owned())
        .bind(now.0)
        .fetch_optional(self.db())
        .await?;
        row.map(|r| r.try_get(0)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn oidc_token(&self, token_hash: &str) -> Result<Option<TokenRecord>, Error> {
        let row = query(&format!("{TOKEN_COLUMNS} WHERE token_hash = $1"))
            .bind(token_hash.to_owned())
            .fetch_optional(self.db())
            .await?;
        row.map(|r| token_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn oidc_consents(&self, user: &UserId) -> Result<Vec<ConsentRecord>, Error> {
        let rows = query(
            "SELECT client_id, scope, granted_at FROM oidc_consents WHERE user_id = $1 \
             ORDER BY granted_at, client_id",
        )
        .bind(user.clone())
        .fetch_all(self.db())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ConsentRecord {
                    client_id: r.try_get(0)?,
                    scope: r.try_get(1)?,
                    granted_at: UnixTime(r.try_get(2)?),
                })
            })
            .collect()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn oidc_keys(&self) -> Result<Vec<KeyGeneration>, Error> {
        let rows = query(
            "SELECT generation, role, published_at, signs_from FROM oidc_keys ORDER BY generation",
        )
        .fetch_all(self.db())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(KeyGeneration {
                    generation: r.try_get(0)?,
                    role: r.try_get(1)?,
                    published_at: UnixTime(r.try_get(2)?),
                    signs_from: UnixTime(r.try_get(3)?),
                })
            })
            .collect()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn due_oidc_logouts(
        &self,
        now: UnixTime,
        limit: i64,
    ) -> Result<Vec<LogoutRecord>, Error> {
        let rows = query(
            "SELECT client_id, sid, user_id, attempts, created_at FROM oidc_logouts \
             WHERE delivered_at IS NULL AND given_up_at IS NULL AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at LIMIT $2",
        )
        .bind(now.0)
        .bind(limit)
        .fetch_all(self.db())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LogoutRecord {
                    client_id: r.try_get(0)?,
                    sid: r.try_get(1)?,
                    user_id: r.try_get(2)?,
                    attempts: r.try_get(3)?,
                    created_at: UnixTime(r.try_get(4)?),
                })
            })
            .collect()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn next_oidc_logout_due(&self) -> Result<Option<UnixTime>, Error> {
        let row = query(
            "SELECT MIN(next_attempt_at) FROM oidc_logouts \
             WHERE delivered_at IS NULL AND given_up_at IS NULL",
        )
        .fetch_one(self.db())
        .await?;
        Ok(row.try_get::<Option<i64>>(0)?.map(UnixTime))
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn record_oidc_logout(
        &self,
        logout: &LogoutRecord,
        now: UnixTime,
        outcome: Result<(), (Option<UnixTime>, String)>,
    ) -> Result<(), Error> {
        let statement = match &outcome {
            Ok(()) => query(
                "UPDATE oidc_logouts SET delivered_at = $3, attempts = attempts + 1, \
                 last_error = NULL WHERE client_id = $1 AND sid = $2",
            )
            .bind(logout.client_id.clone())
            .bind(logout.sid.clone())
            .bind(now.0),
            Err((Some(retry_at), error)) => query(
                "UPDATE oidc_logouts SET next_attempt_at = $3, attempts = attempts + 1, \
                 last_error = $4 WHERE client_id = $1 AND sid = $2",
            )
            .bind(logout.client_id.clone())
            .bind(logout.sid.clone())
            .bind(retry_at.0)
            .bind(error.clone()),
            Err((None, error)) => query(
                "UPDATE oidc_logouts SET given_up_at = $3, attempts = attempts + 1, \
                 last_error = $4 WHERE client_id = $1 AND sid = $2",
            )
            .bind(logout.client_id.clone())
            .bind(logout.sid.clone())
            .bind(now.0)
            .bind(error.clone()),
        };
        self.write_one(statement).await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn due_oidc_pings(&self, now: UnixTime, limit: i64) -> Result<Vec<CibaPingDue>, Error> {
        let rows = query(
            "SELECT id_hash, client_id, ping_auth_req_id, ping_token, ping_attempts, expires_at \
             FROM oidc_ciba WHERE ping_due_at <= $1 ORDER BY ping_due_at LIMIT $2",
        )
        .bind(now.0)
        .bind(limit)
        .fetch_all(self.db())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CibaPingDue {
                    id_hash: r.try_get(0)?,
                    client_id: r.try_get(1)?,
                    ping: ping_of(r.try_get(2)?, r.try_get(3)?)?.ok_or_else(|| {
                        Error::Corrupt("a due CIBA ping without its token".into())
                    })?,
                    attempts: r.try_get(4)?,
                    expires_at: UnixTime(r.try_get(5)?),
                })
            })
            .collect()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn next_oidc_ping_due(&self) -> Result<Option<UnixTime>, Error> {
        let row = query("SELECT MIN(ping_due_at) FROM oidc_ciba WHERE ping_due_at IS NOT NULL")
            .fetch_one(self.db())
            .await?;
        Ok(row.try_get::<Option<i64>>(0)?.map(UnixTime))
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn claim_oidc_ping(
        &self,
        id_hash: &str,
        now: UnixTime,
        until: UnixTime,
    ) -> Result<bool, Error> {
        let done = self
            .write_one(
                query(
                    "UPDATE oidc_ciba SET ping_due_at = $3 WHERE id_hash = $1 \
                     AND ping_due_at <= $2",
                )
                .bind(id_hash.to_owned())
                .bind(now.0)
                .bind(until.0),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn record_oidc_ping(
        &self,
        id_hash: &str,
        now: UnixTime,
        outcome: Result<(), (Option<UnixTime>, String)>,
    ) -> Result<(), Error> {
        let statement = match &outcome {
            Ok(()) => query(
                "UPDATE oidc_ciba SET ping_due_at = NULL, ping_delivered_at = $2, \
                 ping_attempts = ping_attempts + 1, ping_error = NULL, ping_auth_req_id = NULL, \
                 ping_token = NULL WHERE id_hash = $1",
            )
            .bind(id_hash.to_owned())
            .bind(now.0),
            Err((Some(retry_at), error)) => query(
                "UPDATE oidc_ciba SET ping_due_at = $2, ping_attempts = ping_attempts + 1, \
                 ping_error = $3 WHERE id_hash = $1",
            )
            .bind(id_hash.to_owned())
            .bind(retry_at.0)
            .bind(error.clone()),
            Err((None, error)) => query(
                "UPDATE oidc_ciba SET ping_due_at = NULL, ping_given_up_at = $2, \
                 ping_attempts = ping_attempts + 1, ping_error = $3, ping_auth_req_id = NULL, \
                 ping_token = NULL WHERE id_hash = $1",
            )
            .bind(id_hash.to_owned())
            .bind(now.0)
            .bind(error.clone()),
        };
        self.write_one(statement).await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn purge_oidc(&self, before: UnixTime) -> Result<u64, Error> {
        let mut purged = 0;
        for table in [
            "oidc_requests",
            "oidc_codes",
            "oidc_tokens",
            "oidc_seen",
            "oidc_ciba",
        ] {
            let done = self
                .write_one(
                    query(&format!("DELETE FROM {table} WHERE expires_at < $1")).bind(before.0),
                )
                .await?;
            purged += done.rows_affected();
        }
        let done = self
            .write_one(
                query(
                    "DELETE FROM oidc_logouts WHERE created_at < $1 \
                     AND (delivered_at IS NOT NULL OR given_up_at IS NOT NULL)",
                )
                .bind(before.0),
            )
            .await?;
        purged += done.rows_affected();
        Ok(purged)
    }
}

/// The provider's state inside a use case's transaction.
pub trait OidcStore {
    /// Registers a client (its id is new).
    fn insert_oidc_client(
        &mut self,
        client: &ClientRecord,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Removes a client at `now`: false if there was none. Its tokens stop working.
    fn remove_oidc_client(
        &mut self,
        client_id: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Keeps a pushed authorization request (its parameters, JSON) until `expires_at`.
    fn insert_oidc_request(
        &mut self,
        id_hash: &str,
        client_id: &str,
        params: &str,
        expires_at: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// A pushed request of `client_id`, still valid at `now`, and spent: its parameters, once.
    fn take_oidc_request(
        &mut self,
        id_hash: &str,
        client_id: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<String>, Error>> + Send;

    /// Keeps a code for `grant` until `expires_at`.
    fn insert_oidc_code(
        &mut self,
        code_hash: &str,
        grant: &Grant,
        expires_at: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Spends a code at `now`: the first use gets its grant, a later one learns it was reused.
    fn use_oidc_code(
        &mut self,
        code_hash: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<CodeUse, Error>> + Send;

    /// Keeps an issued token.
    fn insert_oidc_token(
        &mut self,
        token: &TokenRecord,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Revokes every token issued from a code: how many were active.
    fn revoke_oidc_tokens_of_code(
        &mut self,
        code_hash: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Rotates a refresh token at `now`: the first use gets it, a later one learns it was
    /// rotated before (a replay); an unknown, expired or revoked one is unknown.
    fn use_oidc_refresh_token(
        &mut self,
        token_hash: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<RefreshUse, Error>> + Send;

    /// Revokes every token of a family: how many were active.
    fn revoke_oidc_family(
        &mut self,
        family: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<u64, Error>> + Send;

    /// A token by the hash of its value, in this transaction.
    fn oidc_token_in(
        &mut self,
        token_hash: &str,
    ) -> impl Future<Output = Result<Option<TokenRecord>, Error>> + Send;

    /// Revokes one token: false if it was not active.
    fn revoke_oidc_token(
        &mut self,
        token_hash: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// The scopes a citizen consented to for a client, if any.
    fn oidc_consent(
        &mut self,
        user: &UserId,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<String>, Error>> + Send;

    /// Remembers (or widens) a citizen's consent for a client.
    fn save_oidc_consent(
        &mut self,
        user: &UserId,
        client_id: &str,
        scope: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Withdraws a citizen's consent for a client and revokes the client's tokens for them:
    /// false if there was no consent.
    fn withdraw_oidc_consent(
        &mut self,
        user: &UserId,
        client_id: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Queues the back-channel logouts of `scope`: one per client that received tokens in
    /// each portal session concerned. A logout already queued for a client and session is
    /// queued again only if the client got tokens in that session since it was settled. How
    /// many were queued.
    fn queue_oidc_logouts(
        &mut self,
        scope: LogoutScope<'_>,
        now: UnixTime,
    ) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Records a new signing key generation: false if that generation exists (another
    /// rotation came first).
    fn insert_oidc_key(
        &mut self,
        key: &KeyGeneration,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Keeps a CIBA request.
    fn insert_oidc_ciba(
        &mut self,
        request: &CibaRecord,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The account whose tokens `client_id` got in the session `sid` (an `id_token_hint`'s
    /// `sid`), while any of them is kept.
    fn oidc_user_of_session(
        &mut self,
        client_id: &str,
        sid: &str,
    ) -> impl Future<Output = Result<Option<UserId>, Error>> + Send;

    /// Whether `client_id` has a CIBA request for `hint_hash` still open at `now`.
    fn oidc_ciba_open(
        &mut self,
        hint_hash: &str,
        client_id: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// A CIBA request, locked for this database transaction on PostgreSQL.
    fn oidc_ciba_for_update(
        &mut self,
        id_hash: &str,
    ) -> impl Future<Output = Result<Option<CibaRecord>, Error>> + Send;

    /// Records a poll: the next may come at `next_poll_at`.
    fn poll_oidc_ciba(
        &mut self,
        id_hash: &str,
        next_poll_at: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The citizen answered the ConsentID request of a CIBA request (approved, refused, or
    /// failed it) at `now`: a ping-mode request's notification is due at once, and the worker
    /// is woken when this commits. False if nothing was owed (a poll-mode request, or its
    /// notification already tried).
    fn oidc_ciba_answered(
        &mut self,
        id_hash: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Closes a CIBA request at `now` (its tokens issued, or its refusal or end told): false
    /// if it was closed before.
    fn close_oidc_ciba(
        &mut self,
        id_hash: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Records a one-time value until `expires_at`: false if it was seen before (a replay).
    fn first_sight(
        &mut self,
        key_hash: &str,
        expires_at: UnixTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
}

impl OidcStore for Tx {
    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn insert_oidc_client(&mut self, client: &ClientRecord) -> Result<(), Error> {
        query("INSERT INTO oidc_clients (client_id, record, created_at) VALUES ($1, $2, $3)")
            .bind(client.client_id.clone())
            .bind(to_json(client)?)
            .bind(client.created_at.0)
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn remove_oidc_client(&mut self, client_id: &str, now: UnixTime) -> Result<bool, Error> {
        let done = query(
            "UPDATE oidc_clients SET removed_at = $2 WHERE client_id = $1 AND removed_at IS NULL",
        )
        .bind(client_id.to_owned())
        .bind(now.0)
        .execute(self.conn()?)
        .await?;
        query("UPDATE oidc_tokens SET revoked_at = $2 WHERE client_id = $1 AND revoked_at IS NULL")
            .bind(client_id.to_owned())
            .bind(now.0)
            .execute(self.conn()?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn insert_oidc_request(
        &mut self,
        id_hash: &str,
        client_id: &str,
        params: &str,
        expires_at: UnixTime,
    ) -> Result<(), Error> {
        query(
            "INSERT INTO oidc_requests (id_hash, client_id, params, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id_hash.to_owned())
        .bind(client_id.to_owned())
        .bind(params.to_owned())
        .bind(expires_at.0)
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn take_oidc_request(
        &mut self,
        id_hash: &str,
        client_id: &str,
        now: UnixTime,
    ) -> Result<Option<String>, Error> {
        let done = query(
            "UPDATE oidc_requests SET used_at = $3 WHERE id_hash = $1 AND client_id = $2 \
             AND used_at IS NULL AND expires_at > $3",
        )
        .bind(id_hash.to_owned())
        .bind(client_id.to_owned())
        .bind(now.0)
        .execute(self.conn()?)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let row = query("SELECT params FROM oidc_requests WHERE id_hash = $1")
            .bind(id_hash.to_owned())
            .fetch_one(self.conn()?)
            .await?;
        Ok(Some(row.try_get(0)?))
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn insert_oidc_code(
        &mut self,
        code_hash: &str,
        grant: &Grant,
        expires_at: UnixTime,
    ) -> Result<(), Error> {
        query("INSERT INTO oidc_codes (code_hash, grant_data, expires_at) VALUES ($1, $2, $3)")
            .bind(code_hash.to_owned())
            .bind(to_json(grant)?)
            .bind(expires_at.0)
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn use_oidc_code(&mut self, code_hash: &str, now: UnixTime) -> Result<CodeUse, Error> {
        let done =
            query("UPDATE oidc_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL")
                .bind(code_hash.to_owned())
                .bind(now.0)
                .execute(self.conn()?)
                .await?;
        let row = query("SELECT grant_data, expires_at FROM oidc_codes WHERE code_hash = $1")
            .bind(code_hash.to_owned())
            .fetch_optional(self.conn()?)
            .await?;
        Ok(match (row, done.rows_affected()) {
            (None, _) => CodeUse::Unknown,
            (Some(row), 1) => CodeUse::First(
                Box::new(from_json(&row.try_get::<String>(0)?, "code grant")?),
                UnixTime(row.try_get(1)?),
            ),
            (Some(_), _) => CodeUse::Reused,
        })
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn insert_oidc_token(&mut self, token: &TokenRecord) -> Result<(), Error> {
        query(
            "INSERT INTO oidc_tokens (token_hash, kind, client_id, user_id, code_hash, family, \
             sid, grant_data, created_at, expires_at, used_at, revoked_at, session_expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(token.token_hash.clone())
        .bind(token.kind.as_str())
        .bind(token.grant.client_id.clone())
        .bind(token.grant.user_id.clone())
        .bind(token.code_hash.clone())
        .bind(token.family.clone())
        .bind(token.grant.sid.clone())
        .bind(to_json(&token.grant)?)
        .bind(token.created_at.0)
        .bind(token.expires_at.0)
        .bind(token.used_at.map(|t| t.0))
        .bind(token.revoked_at.map(|t| t.0))
        .bind(token.grant.session_expires_at.map(|t| t.0))
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn revoke_oidc_tokens_of_code(
        &mut self,
        code_hash: &str,
        now: UnixTime,
    ) -> Result<u64, Error> {
        let done = query(
            "UPDATE oidc_tokens SET revoked_at = $2 WHERE code_hash = $1 AND revoked_at IS NULL",
        )
        .bind(code_hash.to_owned())
        .bind(now.0)
        .execute(self.conn()?)
        .await?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn use_oidc_refresh_token(
        &mut self,
        token_hash: &str,
        now: UnixTime,
    ) -> Result<RefreshUse, Error> {
        let done = query(
            "UPDATE oidc_tokens SET used_at = $2 WHERE token_hash = $1 AND kind = 'refresh_token' \
             AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash.to_owned())
        .bind(now.0)
        .execute(self.conn()?)
        .await?;
        let row = query(&format!(
            "{TOKEN_COLUMNS} WHERE token_hash = $1 AND kind = 'refresh_token'"
        ))
        .bind(token_hash.to_owned())
        .fetch_optional(self.conn()?)
        .await?;
        let Some(token) = row.map(|r| token_from_row(&r)).transpose()? else {
            return Ok(RefreshUse::Unknown);
        };
        Ok(if done.rows_affected() == 1 {
            RefreshUse::First(Box::new(token))
        } else if token.used_at.is_some() {
            RefreshUse::Reused {
                family: token.family,
            }
        } else {
            RefreshUse::Unknown
        })
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn revoke_oidc_family(&mut self, family: &str, now: UnixTime) -> Result<u64, Error> {
        let done = query(
            "UPDATE oidc_tokens SET revoked_at = $2 WHERE family = $1 AND revoked_at IS NULL",
        )
        .bind(family.to_owned())
        .bind(now.0)
        .execute(self.conn()?)
        .await?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn oidc_token_in(&mut self, token_hash: &str) -> Result<Option<TokenRecord>, Error> {
        let row = query(&format!("{TOKEN_COLUMNS} WHERE token_hash = $1"))
            .bind(token_hash.to_owned())
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| token_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn revoke_oidc_token(&mut self, token_hash: &str, now: UnixTime) -> Result<bool, Error> {
        let done = query(
            "UPDATE oidc_tokens SET revoked_at = $2 WHERE token_hash = $1 \
             AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash.to_owned())
        .bind(now.0)
        .execute(self.conn()?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn oidc_consent(
        &mut self,
        user: &UserId,
        client_id: &str,
    ) -> Result<Option<String>, Error> {
        let row = query("SELECT scope FROM oidc_consents WHERE user_id = $1 AND client_id = $2")
            .bind(user.clone())
            .bind(client_id.to_owned())
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| r.try_get(0)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn save_oidc_consent(
        &mut self,
        user: &UserId,
        client_id: &str,
        scope: &str,
        now: UnixTime,
    ) -> Result<(), Error> {
        // Widened, never narrowed: the scopes consented to before stay consented to.
        let given = self
            .oidc_consent(user, client_id)
            .await?
            .unwrap_or_default();
        let mut scopes: Vec<&str> = given.split_ascii_whitespace().collect();
        for name in scope.split_ascii_whitespace() {
            if !scopes.contains(&name) {
                scopes.push(name);
            }
        }
        let scope = scopes.join(" ");
        query("DELETE FROM oidc_consents WHERE user_id = $1 AND client_id = $2")
            .bind(user.clone())
            .bind(client_id.to_owned())
            .execute(self.conn()?)
            .await?;
        query(
            "INSERT INTO oidc_consents (user_id, client_id, scope, granted_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(user.clone())
        .bind(client_id.to_owned())
        .bind(scope)
        .bind(now.0)
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn withdraw_oidc_consent(
        &mut self,
        user: &UserId,
        client_id: &str,
        now: UnixTime,
    ) -> Result<bool, Error> {
        let done = query("DELETE FROM oidc_consents WHERE user_id = $1 AND client_id = $2")
            .bind(user.clone())
            .bind(client_id.to_owned())
            .execute(self.conn()?)
            .await?;
        query(
            "UPDATE oidc_tokens SET revoked_at = $3 WHERE user_id = $1 AND client_id = $2 \
             AND revoked_at IS NULL",
        )
        .bind(user.clone())
        .bind(client_id.to_owned())
        .bind(now.0)
        .execute(self.conn()?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn queue_oidc_logouts(
        &mut self,
        scope: LogoutScope<'_>,
        now: UnixTime,
    ) -> Result<u64, Error> {
        // (`WHERE` before `ON CONFLICT`: SQLite needs it to read INSERT … SELECT … ON CONFLICT.)
        let insert = "INSERT INTO oidc_logouts (client_id, sid, user_id, created_at, attempts, \
             next_attempt_at) SELECT DISTINCT client_id, sid, user_id, $1, 0, $1 FROM oidc_tokens";
        // Queued again only if the service got tokens in that session after its last logout
        // was settled (a consent withdrawn, then the service logged in again in the session):
        // it is told once more. A logout still pending is left as it is.
        let conflict =
            "ON CONFLICT (client_id, sid) DO UPDATE SET created_at = excluded.created_at, \
             attempts = 0, next_attempt_at = excluded.next_attempt_at, delivered_at = NULL, \
             given_up_at = NULL, last_error = NULL \
             WHERE EXISTS (SELECT 1 FROM oidc_tokens t WHERE t.client_id = oidc_logouts.client_id \
             AND t.sid = oidc_logouts.sid \
             AND t.created_at >= COALESCE(oidc_logouts.delivered_at, oidc_logouts.given_up_at))";
        let sql = match scope {
            LogoutScope::Session(_) => format!("{insert} WHERE sid = $2 {conflict}"),
            LogoutScope::Client(..) => {
                format!("{insert} WHERE user_id = $2 AND client_id = $3 {conflict}")
            }
            LogoutScope::User(_) => format!("{insert} WHERE user_id = $2 {conflict}"),
            LogoutScope::ExpiredAfter(_) => format!(
                "{insert} WHERE session_expires_at > $2 AND session_expires_at <= $1 {conflict}"
            ),
        };
        let statement = query(&sql).bind(now.0);
        let statement = match scope {
            LogoutScope::Session(sid) => statement.bind(sid.to_owned()),
            LogoutScope::Client(user, client_id) => {
                statement.bind(user.clone()).bind(client_id.to_owned())
            }
            LogoutScope::User(user) => statement.bind(user.clone()),
            LogoutScope::ExpiredAfter(after) => statement.bind(after.0),
        };
        let done = statement.execute(self.conn()?).await?;
        if done.rows_affected() > 0 {
            crate::Transaction::publish(self, crate::Change::Logouts);
        }
        Ok(done.rows_affected())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn insert_oidc_key(&mut self, key: &KeyGeneration) -> Result<bool, Error> {
        let done = query(
            "INSERT INTO oidc_keys (generation, role, published_at, signs_from) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (generation) DO NOTHING",
        )
        .bind(key.generation)
        .bind(key.role.clone())
        .bind(key.published_at.0)
        .bind(key.signs_from.0)
        .execute(self.conn()?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn insert_oidc_ciba(&mut self, request: &CibaRecord) -> Result<(), Error> {
        let grant = request.grant.as_ref().map(to_json).transpose()?;
        // A ping is owed at the latest when the request ends unanswered.
        let ping = request.ping.as_ref();
        query(
            "INSERT INTO oidc_ciba (id_hash, client_id, hint_hash, txn_id, grant_data, created_at, \
             expires_at, next_poll_at, closed_at, ping_auth_req_id, ping_token, ping_due_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(request.id_hash.clone())
        .bind(request.client_id.clone())
        .bind(request.hint_hash.clone())
        .bind(request.txn_id.clone())
        .bind(grant)
        .bind(request.created_at.0)
        .bind(request.expires_at.0)
        .bind(request.next_poll_at.0)
        .bind(request.closed_at.map(|t| t.0))
        .bind(ping.map(|p| p.auth_req_id.clone()))
        .bind(ping.map(|p| p.token.as_str().to_owned()))
        .bind(ping.map(|_| request.expires_at.0))
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn oidc_user_of_session(
        &mut self,
        client_id: &str,
        sid: &str,
    ) -> Result<Option<UserId>, Error> {
        let row =
            query("SELECT user_id FROM oidc_tokens WHERE sid = $1 AND client_id = $2 LIMIT 1")
                .bind(sid.to_owned())
                .bind(client_id.to_owned())
                .fetch_optional(self.conn()?)
                .await?;
        Ok(row
            .map(|r| r.try_get::<String>(0))
            .transpose()?
            .map(UserId::from))
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn oidc_ciba_open(
        &mut self,
        hint_hash: &str,
        client_id: &str,
        now: UnixTime,
    ) -> Result<bool, Error> {
        let row = query(
            "SELECT 1 FROM oidc_ciba WHERE hint_hash = $1 AND client_id = $2 \
             AND expires_at > $3 AND closed_at IS NULL",
        )
        .bind(hint_hash.to_owned())
        .bind(client_id.to_owned())
        .bind(now.0)
        .fetch_optional(self.conn()?)
        .await?;
        Ok(row.is_some())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn oidc_ciba_for_update(&mut self, id_hash: &str) -> Result<Option<CibaRecord>, Error> {
        let lock = if self.kind == DatabaseKind::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let row = query(&format!(
            "SELECT id_hash, client_id, hint_hash, txn_id, grant_data, created_at, expires_at, \
             next_poll_at, closed_at, ping_auth_req_id, ping_token FROM oidc_ciba \
             WHERE id_hash = $1{lock}"
        ))
        .bind(id_hash.to_owned())
        .fetch_optional(self.conn()?)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let grant: Option<String> = row.try_get(4)?;
        Ok(Some(CibaRecord {
            id_hash: row.try_get(0)?,
            client_id: row.try_get(1)?,
            hint_hash: row.try_get(2)?,
            txn_id: row.try_get::<Option<String>>(3)?.map(TxnId::from),
            grant: grant
                .map(|text| from_json(&text, "CIBA grant"))
                .transpose()?,
            created_at: UnixTime(row.try_get(5)?),
            expires_at: UnixTime(row.try_get(6)?),
            next_poll_at: UnixTime(row.try_get(7)?),
            closed_at: row.try_get::<Option<i64>>(8)?.map(UnixTime),
            ping: ping_of(row.try_get(9)?, row.try_get(10)?)?,
        }))
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn poll_oidc_ciba(&mut self, id_hash: &str, next_poll_at: UnixTime) -> Result<(), Error> {
        query("UPDATE oidc_ciba SET next_poll_at = $2 WHERE id_hash = $1")
            .bind(id_hash.to_owned())
            .bind(next_poll_at.0)
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn oidc_ciba_answered(&mut self, id_hash: &str, now: UnixTime) -> Result<bool, Error> {
        // Only a notification not tried yet: one being sent, or sent, stays as it is.
        let done = query(
            "UPDATE oidc_ciba SET ping_due_at = $2 WHERE id_hash = $1 \
             AND ping_due_at > $2 AND ping_attempts = 0",
        )
        .bind(id_hash.to_owned())
        .bind(now.0)
        .execute(self.conn()?)
        .await?;
        if done.rows_affected() > 0 {
            crate::Transaction::publish(self, crate::Change::CibaPings);
        }
        Ok(done.rows_affected() > 0)
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn close_oidc_ciba(&mut self, id_hash: &str, now: UnixTime) -> Result<bool, Error> {
        let done =
            query("UPDATE oidc_ciba SET closed_at = $2 WHERE id_hash = $1 AND closed_at IS NULL")
                .bind(id_hash.to_owned())
                .bind(now.0)
                .execute(self.conn()?)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn first_sight(&mut self, key_hash: &str, expires_at: UnixTime) -> Result<bool, Error> {
        let done = query(
            "INSERT INTO oidc_seen (key_hash, expires_at) VALUES ($1, $2) \
             ON CONFLICT (key_hash) DO NOTHING",
        )
        .bind(key_hash.to_owned())
        .bind(expires_at.0)
        .execute(self.conn()?)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
