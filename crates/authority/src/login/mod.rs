//! Browser sessions and logging in (DESIGN §3-§4): the mobile login started by a username and
//! approved in ConsentID, completed once and only by the browser that started it, with a fresh
//! session id; and the password login at the basic level. Unknown usernames get the same
//! answers as known ones.

pub mod consentid;
pub mod geoip;
#[cfg(test)]
mod limit_tests;
pub mod push;
pub mod qr_login;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::json;
use sha2::{Digest, Sha256};

use domain::login::{
    effective_status, is_login_of, may_cancel_login, may_complete_login, LoginRefusal, LoginRequest,
};
use domain::oidc::AuthMethod;
use domain::records::{SessionRecord, TransactionRecord, UserRecord};
use domain::{DeviceId, DeviceState, RateLimit, TransactionStatus, TxnId, UnixTime, UserId};
use hmac::{Hmac, Mac};
use pki::KeySigner;
use proto::app::{RequestContext, RequestKind};
use store::{
    AccountQueries, AccountStore, AuditLog as _, Change, Database, LoginQueries, LoginStore,
    LogoutScope, OidcStore, PushQueries, PushStore, QrLoginQueries, QrLoginStore, Store,
    Transaction as _,
};

use crate::ra::accounts::{hash_password_in_pool, normalise_email, password_matches_in_pool};

/// The Argon2id hash of a password nobody has, made once (on the blocking pool): unknown
/// accounts and accounts without a password are checked against it, so that they take as
/// long as the rest.
static DUMMY_PASSWORD_HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
use crate::ca::{CaDb, CaTx};
use crate::{Account, Ca, Clock, Error, Rejection, Settings};

/// Seconds an anonymous session's token is valid (it is not stored: see [`SessionToken`]).
pub const ANONYMOUS_LIFETIME: i64 = 3600;
/// The MACed part of an anonymous token: 16 random bytes and the end of validity.
const ANONYMOUS_BODY: usize = 16 + 8;
/// What an anonymous session's token starts with.
const ANONYMOUS_PREFIX: &str = "a.";
/// Seconds a logged-in session lives.
const LOGGED_IN_LIFETIME: i64 = 8 * 3600;

/// A session cookie's value; `Debug` is redacted.
///
/// A logged-in session is stored, keyed by the token's hash. An anonymous session (a visitor
/// who has not logged in: the login forms, the waiting page) is not stored at all: its token
/// is `a.` and, in base64url, 16 random bytes, its end of validity (8 bytes, big-endian Unix
/// seconds) and an HMAC-SHA256 over both with a key of this server process
/// (`AnonymousKey`). So only the server makes them, each lives [`ANONYMOUS_LIFETIME`]
/// seconds, and a token a client made up (or one of an earlier process) is not adopted: the
/// visitor gets a fresh one. Its forms' CSRF token is derived from the token. So a page view
/// writes nothing, and a login costs the database one transaction less. A login request is
/// bound to the anonymous token's hash, and completing it gives a fresh, stored token.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(pub String);

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken([redacted])")
    }
}

impl SessionToken {
    fn generate() -> Self {
        Self(proto::b64(&rand::random::<[u8; 32]>()))
    }

    fn generate_anonymous(key: &AnonymousKey, expires_at: UnixTime) -> Self {
        let mut body = rand::random::<[u8; 16]>().to_vec();
        body.extend_from_slice(&expires_at.0.to_be_bytes());
        let tag = key.tag(&body);
        body.extend_from_slice(&tag);
        Self(format!("{ANONYMOUS_PREFIX}{}", proto::b64(&body)))
    }

    /// Whether this looks like an anonymous session's token (`a.` prefix): such a token is
    /// never looked up among the stored sessions.
    fn is_anonymous(&self) -> bool {
        self.0.starts_with(ANONYMOUS_PREFIX)
    }

    /// An anonymous token's end of validity, if this server made it (its MAC verifies) and it
    /// is still valid at `now`.
    fn anonymous_expiry(&self, key: &AnonymousKey, now: UnixTime) -> Option<UnixTime> {
        let bytes = proto::unb64(self.0.strip_prefix(ANONYMOUS_PREFIX)?).ok()?;
        if bytes.len() != ANONYMOUS_BODY + 32 {
            return None;
        }
        let (body, tag) = bytes.split_at(ANONYMOUS_BODY);
        key.verify(body, tag).then_some(())?;
        let expires_at = UnixTime(i64::from_be_bytes(
            body.get(16..ANONYMOUS_BODY)?.try_into().ok()?,
        ));
        (now < expires_at).then_some(expires_at)
    }

    /// The CSRF token of an anonymous session's forms: only who holds the (HttpOnly) cookie
    /// can know it.
    fn anonymous_csrf(&self) -> String {
        let digest = Sha256::new()
            .chain_update(b"eidportal anonymous session csrf\0")
            .chain_update(self.0.as_bytes())
            .finalize();
        proto::b64(&digest)
    }

    /// The hash the store keys sessions by.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

/// The key that MACs anonymous session tokens. The server derives it from the deployment's
/// secret ([`crate::Authority::with_deployment_secret`]), so every instance behind a load balancer,
/// and the same instance after a restart, accepts the others' tokens; until then (tests, tools)
/// it is random, made when the process starts and never stored.
pub(crate) struct AnonymousKey([u8; 32]);

impl std::fmt::Debug for AnonymousKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnonymousKey([redacted])")
    }
}

impl AnonymousKey {
    /// A fresh random key.
    pub(crate) fn generate() -> Self {
        Self(rand::random())
    }

    /// The key derived from the deployment's secret (HKDF-SHA256, RFC 5869, with its own
    /// label, so that it tells nothing about the audit key made from the same secret).
    pub(crate) fn from_secret(secret: &[u8; 32]) -> Self {
        let mut key = [0u8; 32];
        // INVARIANT: 32 bytes are far below HKDF-SHA256's limit of 255 × 32.
        #[allow(clippy::expect_used)]
        hkdf::Hkdf::<Sha256>::new(None, secret)
            .expand(b"eidportal anonymous session key", &mut key)
            .expect("HKDF expands 32 bytes");
        Self(key)
    }

    fn mac(&self) -> Hmac<Sha256> {
        // INVARIANT: HMAC takes a key of any length.
        #[allow(clippy::expect_used)]
        let mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.chain_update(b"eidportal anonymous session\0")
    }

    fn tag(&self, body: &[u8]) -> Vec<u8> {
        self.mac()
            .chain_update(body)
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// Whether `tag` is the MAC of `body` (compared in constant time by `hmac`).
    fn verify(&self, body: &[u8], tag: &[u8]) -> bool {
        self.mac().chain_update(body).verify_slice(tag).is_ok()
    }
}

/// A stored request as [`domain::login`]'s policy reads it.
fn login_request(txn: &TransactionRecord) -> LoginRequest<'_> {
    LoginRequest {
        kind: &txn.kind,
        bound_to: &txn.session_binding,
        status: txn.status,
        decided_at: txn.decided_at,
    }
}

/// A valid session, with its account when logged in.
#[derive(Debug, Clone)]
pub struct Session {
    /// The stored session (anonymous ones are never stored).
    pub(crate) record: SessionRecord,
    /// The logged-in account.
    pub user: Option<Account>,
}

impl Session {
    /// The stored session, for integration tests only (`test-support`).
    #[cfg(feature = "test-support")]
    pub fn record(&self) -> &SessionRecord {
        &self.record
    }

    /// The CSRF token of this session's forms.
    pub fn csrf_token(&self) -> &str {
        &self.record.csrf_token
    }

    /// Whether the login was approved in ConsentID (high assurance), not by a password.
    pub fn by_consentid(&self) -> bool {
        self.record.auth_method == Some(AuthMethod::ConsentId)
    }

    /// When the session expires.
    pub fn expires_at(&self) -> UnixTime {
        self.record.expires_at
    }

    /// When the login happened (none while anonymous).
    pub fn authenticated_at(&self) -> Option<UnixTime> {
        self.record.authenticated_at
    }

    /// The ConsentID login request whose approval made this session, if it was made so.
    pub fn login_txn(&self) -> Option<&TxnId> {
        self.user.as_ref().and(self.record.login_txn.as_ref())
    }

    /// How the login was made (none while anonymous).
    pub fn method(&self) -> Option<AuthMethod> {
        self.user.as_ref().and(self.record.auth_method)
    }

    /// Whether the login happened within the last two minutes: a request with
    /// `prompt=login` that brought the citizen through the login is not sent there again.
    pub fn just_logged_in(&self, now: UnixTime) -> bool {
        self.record
            .authenticated_at
            .is_some_and(|at| now.0 - at.0 <= 120)
    }

    /// The session's id as an ID token's `sid`: derived from the stored hash, never the cookie.
    pub fn sid(&self) -> String {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(format!("sid\0{}", self.record.id_hash).as_bytes());
        proto::b64(digest.get(..16).unwrap_or_default())
    }
}

/// A login request made.
#[derive(Debug, Clone)]
pub struct LoginStarted {
    /// The transaction.
    pub txn_id: TxnId,
    /// The code the browser shows.
    pub verification_code: String,
    /// When it expires.
    pub expires_at: UnixTime,
}

/// How a login request stands, as the browser sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginState {
    /// The status.
    pub status: TransactionStatus,
    /// Why (`superseded`, `wrong_vc`, `pin_locked`, `user_deny`...).
    pub hint: String,
    /// Seconds left while pending.
    pub seconds_left: i64,
    /// The code the browser shows beside the request.
    pub verification_code: String,
}

/// The portal's name, shown in the app as who asks.
pub const PORTAL_NAME: &str = "Портал за електронску идентификацију";

/// What the login service reads of the store and, in [`LoginTx`], changes: accounts,
/// sessions, ConsentID devices and requests, push subscriptions, QR logins; and the CA's part,
/// for the device certificates.
pub trait LoginDb:
    CaDb + Database<Tx: LoginTx> + AccountQueries + LoginQueries + PushQueries + QrLoginQueries
{
}
impl<D> LoginDb for D where
    D: CaDb + Database<Tx: LoginTx> + AccountQueries + LoginQueries + PushQueries + QrLoginQueries
{
}

/// What the login service changes in a use case's transaction.
pub trait LoginTx: CaTx + AccountStore + LoginStore + PushStore + QrLoginStore + OidcStore {}
impl<T: CaTx + AccountStore + LoginStore + PushStore + QrLoginStore + OidcStore> LoginTx for T {}

/// The login service: browser sessions, and ConsentID (activation, login and signing
/// requests, the device's answers, push). The RA's activation codes and the CA's device
/// certificates are asked of those services.
pub struct Login<D = Store> {
    pub(crate) store: D,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) ca: Arc<Ca<D>>,
    /// The app-channel keys, opened once at start: a use case holding a database transaction
    /// must never wait for a second pooled connection (under load that exhausts the pool).
    pub(crate) service_keys: RwLock<HashMap<&'static str, Arc<dyn KeySigner>>>,
    /// MACs the anonymous sessions' tokens.
    anonymous_key: RwLock<Arc<AnonymousKey>>,
}

impl<D: LoginDb> Login<D> {
    pub(crate) fn new(
        store: D,
        clock: Arc<dyn Clock>,
        settings: Arc<Settings>,
        ca: Arc<Ca<D>>,
    ) -> Self {
        Self {
            store,
            clock,
            settings,
            ca,
            service_keys: RwLock::new(HashMap::new()),
            anonymous_key: RwLock::new(Arc::new(AnonymousKey::generate())),
        }
    }

    /// Derives the keys that must be the same on every instance of a deployment (today: the
    /// anonymous session tokens' MAC key) from its secret, the one the audit key comes from.
    pub(crate) fn set_deployment_secret(&self, secret: &[u8; 32]) {
        let key = Arc::new(AnonymousKey::from_secret(secret));
        *self
            .anonymous_key
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = key;
    }

    fn anonymous_key(&self) -> Arc<AnonymousKey> {
        self.anonymous_key
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A new anonymous session (it carries the CSRF token of the forms). Nothing is stored.
    pub fn new_session(&self) -> (SessionToken, Session) {
        let expires_at = self.clock.now().plus_seconds(ANONYMOUS_LIFETIME);
        let token = SessionToken::generate_anonymous(&self.anonymous_key(), expires_at);
        let session = self.anonymous_session(&token, expires_at);
        (token, session)
    }

    fn anonymous_session(&self, token: &SessionToken, expires_at: UnixTime) -> Session {
        let now = self.clock.now();
        let record = SessionRecord {
            id_hash: token.hash(),
            user_id: None,
            auth_method: None,
            device_id: None,
            login_txn: None,
            csrf_token: token.anonymous_csrf(),
            created_at: now,
            authenticated_at: None,
            expires_at,
            ended_at: None,
        };
        Session { record, user: None }
    }

    /// The live session of a cookie: an anonymous one this server issued and not expired, or
    /// a stored one not ended, not expired, and for a ConsentID login, its device not revoked.
    pub async fn session(&self, token: &SessionToken) -> Result<Option<Session>, Error> {
        if token.is_anonymous() {
            return Ok(token
                .anonymous_expiry(&self.anonymous_key(), self.clock.now())
                .map(|expires_at| self.anonymous_session(token, expires_at)));
        }
        let Some(record) = self.store.session(&token.hash()).await? else {
            return Ok(None);
        };
        let now = self.clock.now();
        if record.ended_at.is_some() || now >= record.expires_at {
            return Ok(None);
        }
        if let Some(device_id) = &record.device_id {
            if self
                .store
                .device(device_id)
                .await?
                .is_none_or(|d| d.state == DeviceState::Revoked)
            {
                return Ok(None);
            }
        }
        let user = match &record.user_id {
            Some(id) => self.store.user(id).await?.map(Account::from),
            None => None,
        };
        Ok(Some(Session { record, user }))
    }

    /// Starts a mobile login for `username` from this browser session.
    pub async fn login_start(
        &self,
        session: &Session,
        username: &str,
        ip: &str,
        browser: &str,
    ) -> Result<LoginStarted, Error> {
        self.login_start_for(session, username, ip, browser, PORTAL_NAME, None)
            .await
    }

    /// Starts a mobile login for `username` that the phone shows as a login to `service` (a
    /// registered OpenID client's name, validated at registration; else the portal), with
    /// `message`, the service's transaction text (RFC 9396 `authorization_details`, validated
    /// by `domain::oidc::parse_authorization_details`) for the citizen to approve with it.
    pub async fn login_start_for(
        &self,
        session: &Session,
        username: &str,
        ip: &str,
        browser: &str,
        service: &str,
        message: Option<&str>,
    ) -> Result<LoginStarted, Error> {
        let email = normalise_email(username).map_err(|_| Rejection::Invalid("username"))?;
        // Read before the write transaction (which SQLite's writers take in turns): an
        // account appearing or going meanwhile changes nothing the browser could tell.
        let user = self.store.user_by_email(&email).await?;
        let mut tx = self.store.begin().await?;
        // Per (user, network) and per network, never per user alone: starts from other
        // networks do not use up the owner's, so strangers cannot lock her out (finding 4 of
        // issue 22). How often her phone rings is bounded where the request is made
        // (`create_transaction`), by withholding the push, never the start.
        let network = domain::network::limit_network(ip);
        self.rate_limit(
            &mut tx,
            &format!("login:user:{email}:net:{network}"),
            RateLimit::LOGIN_PER_USER,
        )
        .await?;
        self.rate_limit(
            &mut tx,
            &format!("login:net:{network}"),
            RateLimit::LOGIN_PER_ADDRESS,
        )
        .await?;
        // An unknown user gets a request nobody can answer, which simply expires: the browser
        // sees exactly what it would see for a known user who does not answer.
        let owner = user
            .as_ref()
            .map(|u| (&u.id, format!("{} {}", u.given_name, u.surname)));
        let context = RequestContext {
            browser: browser.chars().take(80).collect(),
            ip: ip.chars().take(64).collect(),
        };
        let txn = self
            .create_transaction(
                &mut tx,
                owner,
                RequestKind::Login,
                service,
                &session.record.id_hash,
                context,
                message.map(|m| consentid::RequestDetails::Message(m.to_owned())),
                None,
            )
            .await?;
        tx.audit(
            self.clock.now(),
            "anonymous",
            "login.started",
            json!({ "txn": txn.id, "user": user.as_ref().map(|u| u.id.clone()), "ip": ip }),
        )
        .await?;
        tx.commit().await?;
        Ok(LoginStarted {
            txn_id: txn.id,
            verification_code: txn.verification_code,
            expires_at: txn.expires_at,
        })
    }

    /// The ConsentID login request of a service's CIBA request (OpenID CIBA): shown on the
    /// phone as a login to `service` with `message` (the binding message), no browser and no
    /// code to pick; bound to `binding`, the CIBA request, not to a browser session.
    pub(crate) async fn backchannel_request(
        &self,
        tx: &mut D::Tx,
        user: &UserRecord,
        service: &str,
        binding: &str,
        ip: &str,
        message: Option<&str>,
    ) -> Result<TransactionRecord, Error> {
        let context = RequestContext {
            browser: service.chars().take(80).collect(),
            ip: ip.chars().take(64).collect(),
        };
        self.create_transaction(
            tx,
            Some((&user.id, format!("{} {}", user.given_name, user.surname))),
            RequestKind::Login,
            service,
            binding,
            context,
            message.map(|m| consentid::RequestDetails::Message(m.to_owned())),
            Some(proto::app::LoginFlow::Backchannel),
        )
        .await
    }

    /// The state of a login request, for the browser that started it only.
    pub async fn login_state(
        &self,
        session: &Session,
        txn_id: &TxnId,
    ) -> Result<LoginState, Error> {
        let txn = self
            .store
            .transaction(txn_id)
            .await?
            .ok_or(Rejection::NotFound)?;
        if !is_login_of(&login_request(&txn), &session.record.id_hash) {
            return Err(Rejection::NotFound.into());
        }
        let now = self.clock.now();
        let status = effective_status(txn.status, txn.expires_at, now);
        Ok(LoginState {
            status,
            hint: txn.hint,
            seconds_left: (txn.expires_at.0 - now.0).max(0),
            verification_code: txn.verification_code,
        })
    }

    /// [`Login::login_state`], waiting up to `wait` while the request is pending: woken as
    /// soon as the account's requests change ([`Change::Requests`], from any instance), so
    /// the browser learns of the answer at once; it looks again at least every
    /// [`store::Watch::recheck`], and when the request expires.
    pub async fn login_state_waiting(
        &self,
        session: &Session,
        txn_id: &TxnId,
        wait: std::time::Duration,
    ) -> Result<LoginState, Error> {
        let deadline = tokio::time::Instant::now() + wait;
        let state = self.login_state(session, txn_id).await?;
        if state.status != TransactionStatus::Pending || wait.is_zero() {
            return Ok(state);
        }
        // Only to know whose requests to watch; `login_state` checked whose login it is.
        let user = self
            .store
            .transaction(txn_id)
            .await?
            .and_then(|t| t.user_id);
        let watch = user.map(|user| self.store.watch(&Change::Requests(user)));
        loop {
            let changed = match &watch {
                Some(watch) => watch.next(),
                // A login for no account: nothing but the clock changes it.
                None => Box::pin(std::future::pending()),
            };
            let state = self.login_state(session, txn_id).await?;
            let now = tokio::time::Instant::now();
            if state.status != TransactionStatus::Pending || now >= deadline {
                return Ok(state);
            }
            let recheck = watch
                .as_ref()
                .map_or(std::time::Duration::from_secs(1), store::Watch::recheck);
            let expiry = std::time::Duration::from_secs(state.seconds_left.unsigned_abs() + 1);
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(deadline.min(now + recheck.min(expiry))) => {}
            }
        }
    }

    /// Completes an approved login: once, from the browser that started it, within
    /// [`domain::login::LOGIN_COMPLETION_WINDOW`] seconds of the approval, with a fresh session
    /// id; the session it replaces ends.
    pub async fn login_complete(
        &self,
        session: &Session,
        txn_id: &TxnId,
    ) -> Result<(SessionToken, Session), Error> {
        let now = self.clock.now();
        // Read before the write transaction: what is checked here (binding, kind, and the
        // user and device an approval set) does not change once approved, and the move from
        // approved to consumed below happens once only.
        let txn = self
            .store
            .transaction(txn_id)
            .await?
            .ok_or(Rejection::NotFound)?;
        match may_complete_login(&login_request(&txn), &session.record.id_hash, now) {
            Ok(()) => {}
            Err(LoginRefusal::NotFound) => return Err(Rejection::NotFound.into()),
            Err(LoginRefusal::NotApproved | LoginRefusal::TooLate) => {
                return Err(Rejection::NotPending.into())
            }
        }
        let (Some(user_id), Some(device_id)) = (txn.user_id.clone(), txn.device_id.clone()) else {
            return Err(Error::Inconsistent(
                "an approved login without user or device".into(),
            ));
        };
        let mut tx = self.store.begin().await?;
        if !tx
            .move_transaction(
                &txn.id,
                TransactionStatus::Approved,
                TransactionStatus::Consumed,
                "consumed",
                None,
                now,
            )
            .await?
        {
            return Err(Rejection::NotPending.into());
        }
        let (token, record) = self.logged_in_session(
            &user_id,
            AuthMethod::ConsentId,
            Some(device_id),
            Some(txn.id.clone()),
            now,
        );
        tx.insert_session(&record).await?;
        self.end_stored_session(&mut tx, session, now).await?;
        tx.audit(
            now,
            &format!("user:{user_id}"),
            "login.completed",
            json!({ "txn": txn.id, "method": "consentid" }),
        )
        .await?;
        tx.commit().await?;
        let user = self.store.user(&user_id).await?.map(Account::from);
        Ok((token, Session { record, user }))
    }

    /// Cancels a login request from the browser that started it.
    pub async fn login_cancel(&self, session: &Session, txn_id: &TxnId) -> Result<(), Error> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let txn = tx
            .transaction_for_update(txn_id)
            .await?
            .ok_or(Rejection::NotFound)?;
        if !is_login_of(&login_request(&txn), &session.record.id_hash) {
            return Err(Rejection::NotFound.into());
        }
        if let Some(user_id) = &txn.user_id {
            tx.publish(Change::Requests(user_id.clone()));
        }
        // Nothing is audited as cancelled that was not: the row is locked, so the status read
        // is the one the update below moves from.
        if !may_cancel_login(effective_status(txn.status, txn.expires_at, now))
            || !tx
                .move_transaction(
                    &txn.id,
                    txn.status,
                    TransactionStatus::Cancelled,
                    "rp_cancel",
                    None,
                    now,
                )
                .await?
        {
            return Err(Rejection::NotPending.into());
        }
        tx.audit(
            now,
            "anonymous",
            "login.cancelled",
            json!({ "txn": txn.id }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Password login (basic level: sees the account, cannot issue or sign). Wrong e-mail and
    /// wrong password get the same refusal.
    pub async fn password_login(
        &self,
        session: &Session,
        email: &str,
        password: &str,
        ip: &str,
    ) -> Result<(SessionToken, Session), Error> {
        let Some(user) = self.check_password(email, password, ip).await? else {
            return Err(Rejection::BadSignature.into());
        };
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let Some(user) = self.password_still_holds(&mut tx, user).await? else {
            return Err(Rejection::BadSignature.into());
        };
        let (token, record) =
            self.logged_in_session(&user.id, AuthMethod::Password, None, None, now);
        tx.insert_session(&record).await?;
        self.end_stored_session(&mut tx, session, now).await?;
        tx.audit(
            now,
            &format!("user:{}", user.id),
            "login.completed",
            json!({ "method": "password" }),
        )
        .await?;
        tx.commit().await?;
        Ok((
            token,
            Session {
                record,
                user: Some(Account::from(user)),
            },
        ))
    }

    /// Checks an e-mail and password under the password rate limits: the account if both
    /// match a verified account, else `None` (after an audit entry). Unknown users are hashed
    /// too, so that timing does not tell them apart. The steps, in this order:
    /// 1. one transaction counts the attempt and reads the account;
    /// 2. Argon2 runs on the blocking pool, with no transaction held (it would hold SQLite's
    ///    one writer for its whole run);
    /// 3. a failure is audited in a transaction of its own.
    ///
    /// The caller's own transaction then checks [`Self::password_still_holds`].
    pub(crate) async fn check_password(
        &self,
        email: &str,
        password: &str,
        ip: &str,
    ) -> Result<Option<UserRecord>, Error> {
        let email = normalise_email(email).map_err(|_| Rejection::BadSignature)?;
        // 1. Per (user, network) and per network. The per-user ceiling refuses nobody (that
        // would lock the owner out): past it the account is under attack and every network,
        // the owner's fresh one too, gets one attempt per window. Guessing spread over many
        // networks is held to that one try per network, each network also under its own
        // limit across all accounts.
        let network = domain::network::limit_network(ip);
        let mut tx = self.store.begin().await?;
        self.rate_limit(
            &mut tx,
            &format!("login:net:{network}"),
            RateLimit::LOGIN_PER_ADDRESS,
        )
        .await?;
        self.rate_limit(
            &mut tx,
            &format!("password:user:{email}:net:{network}"),
            RateLimit::PASSWORD_PER_USER,
        )
        .await?;
        if !crate::within_rate_limit(
            &mut tx,
            &self.settings,
            self.clock.now(),
            &format!("password:user:{email}"),
            RateLimit::PASSWORD_PER_USER_CEILING,
        )
        .await?
        {
            self.rate_limit(
                &mut tx,
                &format!("password:user:{email}:net:{network}:under-attack"),
                RateLimit::PASSWORD_PER_USER_NETWORK_UNDER_ATTACK,
            )
            .await?;
        }
        let user = tx.user_by_email(&email).await?;
        tx.commit().await?;
        // 2.
        let hash = match user.as_ref().and_then(|u| u.password_hash.clone()) {
            Some(hash) => hash,
            None => DUMMY_PASSWORD_HASH
                .get_or_try_init(|| hash_password_in_pool("dummy password"))
                .await?
                .clone(),
        };
        let verified = password_matches_in_pool(password, &hash).await?
            && user.as_ref().is_some_and(|u| u.email_verified);
        let user = user.filter(|_| verified);
        // 3.
        if user.is_none() {
            let mut tx = self.store.begin().await?;
            tx.audit(
                self.clock.now(),
                "anonymous",
                "login.password_failed",
                json!({ "ip": ip }),
            )
            .await?;
            tx.commit().await?;
        }
        Ok(user)
    }

    /// Inside the caller's transaction: the account as checked by [`Self::check_password`], if
    /// its password and verification did not change meanwhile (an officer's proofing removes
    /// the password; a login checked just before must not slip through).
    pub(crate) async fn password_still_holds(
        &self,
        tx: &mut D::Tx,
        checked: UserRecord,
    ) -> Result<Option<UserRecord>, Error> {
        Ok(tx.user(&checked.id).await?.filter(|now| {
            now.email_verified
                && now.password_hash.is_some()
                && now.password_hash == checked.password_hash
        }))
    }

    fn logged_in_session(
        &self,
        user_id: &UserId,
        method: AuthMethod,
        device_id: Option<DeviceId>,
        login_txn: Option<TxnId>,
        now: UnixTime,
    ) -> (SessionToken, SessionRecord) {
        let token = SessionToken::generate();
        let record = SessionRecord {
            id_hash: token.hash(),
            user_id: Some(user_id.clone()),
            auth_method: Some(method),
            device_id,
            login_txn,
            csrf_token: proto::b64(&rand::random::<[u8; 24]>()),
            created_at: now,
            authenticated_at: Some(now),
            expires_at: now.plus_seconds(LOGGED_IN_LIFETIME),
            ended_at: None,
        };
        (token, record)
    }

    /// Ends the session a login replaces, if it is a stored one (an anonymous one is not).
    async fn end_stored_session(
        &self,
        tx: &mut D::Tx,
        session: &Session,
        now: UnixTime,
    ) -> Result<(), Error> {
        if session.record.user_id.is_some() {
            tx.end_session(&session.record.id_hash, now).await?;
        }
        Ok(())
    }

    /// Ends a session (logout).
    pub async fn logout(&self, session: &Session) -> Result<(), Error> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        self.end_stored_session(&mut tx, session, now).await?;
        // **Одјава** ends the session at every service that got an ID token in it.
        tx.queue_oidc_logouts(LogoutScope::Session(&session.sid()), now)
            .await?;
        if let Some(user) = &session.user {
            tx.audit(now, &format!("user:{}", user.id), "logout", json!({}))
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod session_token_tests {
    use super::*;

    #[test]
    fn instances_of_one_deployment_accept_each_others_anonymous_tokens() {
        let now = UnixTime(1_800_000_000);
        let token = SessionToken::generate_anonymous(
            &AnonymousKey::from_secret(&[1; 32]),
            now.plus_seconds(60),
        );
        assert!(
            token
                .anonymous_expiry(&AnonymousKey::from_secret(&[1; 32]), now)
                .is_some(),
            "another instance"
        );
        assert!(
            token
                .anonymous_expiry(&AnonymousKey::from_secret(&[2; 32]), now)
                .is_none(),
            "another deployment"
        );
    }

    #[test]
    fn anonymous_tokens_are_the_servers_own_and_expire() {
        let key = AnonymousKey::generate();
        let now = UnixTime(1_000_000);
        let first = SessionToken::generate_anonymous(&key, now.plus_seconds(ANONYMOUS_LIFETIME));
        let second = SessionToken::generate_anonymous(&key, now.plus_seconds(ANONYMOUS_LIFETIME));
        assert!(first.is_anonymous() && second.is_anonymous());
        assert_eq!(
            first.anonymous_expiry(&key, now),
            Some(now.plus_seconds(ANONYMOUS_LIFETIME))
        );
        // Expired at the end of its lifetime.
        assert_eq!(
            first.anonymous_expiry(&key, now.plus_seconds(ANONYMOUS_LIFETIME - 1)),
            Some(now.plus_seconds(ANONYMOUS_LIFETIME))
        );
        assert_eq!(
            first.anonymous_expiry(&key, now.plus_seconds(ANONYMOUS_LIFETIME)),
            None
        );
        // Another process's key, a token the client chose (the old format: 32 random bytes),
        // or one with its expiry moved on, is not adopted.
        assert_eq!(first.anonymous_expiry(&AnonymousKey::generate(), now), None);
        let chosen = SessionToken(format!("{ANONYMOUS_PREFIX}{}", proto::b64(&[7u8; 32])));
        assert_eq!(chosen.anonymous_expiry(&key, now), None);
        let mut bytes = proto::unb64(first.0.trim_start_matches(ANONYMOUS_PREFIX)).unwrap();
        bytes[16..24].copy_from_slice(&i64::MAX.to_be_bytes());
        assert_eq!(
            SessionToken(format!("{ANONYMOUS_PREFIX}{}", proto::b64(&bytes)))
                .anonymous_expiry(&key, now),
            None
        );
        for bad in [
            "a.".to_owned(),
            format!("{}!", first.0),
            format!("{}AA", first.0),
        ] {
            assert_eq!(
                SessionToken(bad.clone()).anonymous_expiry(&key, now),
                None,
                "{bad}"
            );
        }
        // A stored session's token is never taken for an anonymous one.
        assert!(!SessionToken::generate().is_anonymous());
        // The CSRF token is the same for the same cookie, different for another, and not the
        // session's stored-by hash.
        assert_eq!(
            first.anonymous_csrf(),
            SessionToken(first.0.clone()).anonymous_csrf()
        );
        assert_ne!(first.anonymous_csrf(), second.anonymous_csrf());
        assert_ne!(
            first.anonymous_csrf(),
            proto::b64(&hex::decode(first.hash()).unwrap_or_default())
        );
    }
}
