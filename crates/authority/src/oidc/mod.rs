//! The OpenID provider (issue 23, DESIGN §10): "log in with eID" for other services. Clients
//! are registered by the operator; a service sends the citizen's browser to the authorization
//! endpoint (directly, or after pushing the request, RFC 9126), the citizen logs in with
//! ConsentID and allows the service the listed data once (remembered per client and scope),
//! and the service exchanges the one-minute code (PKCE S256, its client authentication, a DPoP
//! proof for `fapi2`) for an ID token and an access token for userinfo.
//!
//! The rules (PKCE, redirect URIs, DPoP claims, `acr`, lifetimes, claims per scope) are
//! `domain::oidc`'s; JOSE is in [`jose`]. Every authorization, refusal and token is audited.
//!
//! Also: refresh tokens that rotate (by family), RFC 7009 revocation and RFC 7662
//! introspection, CIBA in poll and ping mode (a ConsentID login request from a service's own
//! server; ping notifications delivered by [`Oidc::ciba_ping_worker`]), back-channel logout (a
//! queue delivered by [`Oidc::logout_worker`]) and RP-initiated logout,
//! the server-provided DPoP nonce (a MAC of the minute, no state), and the signing key's
//! rollover (`domain::oidc::key_schedule`).
//!
//! A request may carry RFC 9396 `authorization_details` of type `eidportal_transaction`: the
//! citizen approves its text in a ConsentID login of its own (the phone shows it; the device's
//! signature covers it), the code is bound to that login request, and the ID token and
//! introspection return the approved details.
//!
//! Not built yet (issue 23 stays open): the CSC API's `credential` authorization details, and
//! transaction approval by CIBA.

mod authorize;
mod ciba;
mod ciba_ping;
mod clients;
pub mod jose;
mod keys;
mod logout;
#[cfg(test)]
mod tests;
mod tokens;

pub use authorize::{
    AuthorizationParams, AuthorizationRequest, AuthorizationResponse, AuthorizeError,
    AuthorizeStep, ServiceLogin, REQUEST_URI_PREFIX,
};
pub use ciba::{BackchannelRequest, BackchannelStarted, CIBA_GRANT};
pub use clients::{ClientCredentials, ClientRegistration, ASSERTION_TYPE};
pub use logout::{LogoutPlan, LogoutRequest};
pub use tokens::{ResourceRequest, TokenRequest, TokenResponse};

// The imports below serve this file and the parts above, which `use super::*`.
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use domain::oidc::{
    acr_satisfied, check_code_challenge, check_code_verifier, check_dpop_proof, check_registration,
    claims_for, key_schedule, pairwise_subject, parse_authorization_details,
    redirect_uri_registered, transaction_approved, ApprovedTransaction, ApprovingLogin, AuthMethod,
    CibaPing, CibaRecord, Claim, ClientAuthMethod, ClientRecord, CodeUse, DpopExpectation, Grant,
    KeyGeneration, NotificationToken, Profile, RefreshUse, SubjectType, TokenKind, TokenRecord,
    TransactionDetails, ACCESS_TOKEN_LIFETIME, CIBA_INTERVAL, CODE_LIFETIME, ID_TOKEN_LIFETIME,
    PROOF_IAT_WINDOW, REFRESH_TOKEN_LIFETIME, REQUEST_URI_LIFETIME, TRANSACTION_APPROVAL_WINDOW,
};
use domain::{TransactionStatus, UnixTime, UserId};
use pki::KeySigner;
use store::{
    AccountStore as _, AuditLog as _, Change, CibaPingDue, Database, LogoutRecord, LogoutScope,
    OidcQueries, OidcStore, Store, Transaction as _,
};

use crate::login::Session;
use crate::{Ca, Clock, Error, Login, LoginDb, LoginTx, Settings};
use keys::KeySet;

/// The service key role of the ID-token signing key.
pub const SIGNING_KEY: &str = "oidc_signing";

/// What the provider uses of the store (a CIBA request is a ConsentID login request: the
/// login service's part too).
pub trait OidcDb: LoginDb + Database<Tx: OidcTx> + OidcQueries {}

impl<D: LoginDb + Database<Tx: OidcTx> + OidcQueries> OidcDb for D {}

/// What the provider changes in a use case's transaction.
pub trait OidcTx: LoginTx + OidcStore {}

impl<T: LoginTx + OidcStore> OidcTx for T {}

/// A refusal of the provider, with its OAuth error code (RFC 6749 §5.2, RFC 9449 §7,
/// RFC 6750 §3.1). Carried by [`Error::Oidc`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcRefusal {
    /// The client is unknown or did not authenticate.
    #[error("invalid_client: {0}")]
    InvalidClient(String),
    /// A parameter is missing or wrong.
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// The code is unknown, used, expired, or not this client's.
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    /// A scope the client may not have.
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    /// A grant type other than `authorization_code`, `refresh_token` and CIBA's.
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// A DPoP proof is missing, malformed, replayed, or for another request.
    #[error("invalid_dpop_proof: {0}")]
    InvalidDpopProof(String),
    /// The access token is unknown, expired, revoked, or used without its proof.
    #[error("invalid_token: {0}")]
    InvalidToken(String),
    /// The client may not use this grant (CIBA without `--ciba`).
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(String),
    /// CIBA: a binding message the phone cannot show.
    #[error("invalid_binding_message")]
    InvalidBindingMessage,
    /// RFC 9396 §5: `authorization_details` of a type we do not offer, or a transaction text
    /// the phone cannot show.
    #[error("invalid_authorization_details: {0}")]
    InvalidAuthorizationDetails(String),
    /// CIBA: the citizen has not answered yet.
    #[error("authorization_pending")]
    AuthorizationPending,
    /// CIBA: polled faster than the interval.
    #[error("slow_down")]
    SlowDown,
    /// CIBA: the citizen refused.
    #[error("access_denied")]
    AccessDenied,
    /// CIBA: the request ended unanswered.
    #[error("expired_token")]
    ExpiredToken,
    /// A DPoP proof without our current nonce (RFC 9449 §8): retry with the `DPoP-Nonce` given.
    #[error("use_dpop_nonce")]
    UseDpopNonce,
}

impl OidcRefusal {
    /// The `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidClient(_) => "invalid_client",
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::InvalidScope(_) => "invalid_scope",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidDpopProof(_) => "invalid_dpop_proof",
            Self::InvalidToken(_) => "invalid_token",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::InvalidBindingMessage => "invalid_binding_message",
            Self::InvalidAuthorizationDetails(_) => "invalid_authorization_details",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::AccessDenied => "access_denied",
            Self::ExpiredToken => "expired_token",
            Self::UseDpopNonce => "use_dpop_nonce",
        }
    }

    /// The `error_description`.
    pub fn description(&self) -> String {
        match self {
            Self::InvalidClient(d)
            | Self::InvalidRequest(d)
            | Self::InvalidGrant(d)
            | Self::InvalidScope(d)
            | Self::InvalidDpopProof(d)
            | Self::InvalidToken(d)
            | Self::UnauthorizedClient(d)
            | Self::InvalidAuthorizationDetails(d) => d.clone(),
            Self::UnsupportedGrantType => {
                "authorization_code, refresh_token or urn:openid:params:grant-type:ciba".into()
            }
            Self::InvalidBindingMessage => format!(
                "binding_message: at most {} display characters",
                domain::oidc::BINDING_MESSAGE_MAX
            ),
            Self::AuthorizationPending => "the citizen has not answered yet".into(),
            Self::SlowDown => "poll less often".into(),
            Self::AccessDenied => "the citizen refused".into(),
            Self::ExpiredToken => "the request ended unanswered".into(),
            Self::UseDpopNonce => "make the DPoP proof with the DPoP-Nonce given".into(),
        }
    }
}

/// Sets `key` of a JSON object (nothing if `object` is not one).
fn set(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        map.insert(key.to_owned(), value);
    }
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The OpenID provider.
pub struct Oidc<D = Store> {
    store: D,
    clock: Arc<dyn Clock>,
    settings: Arc<Settings>,
    ca: Arc<Ca<D>>,
    login: Arc<Login<D>>,
    key: RwLock<Option<Arc<KeySet>>>,
    /// The pairwise `sub` secret, derived from the deployment's secret.
    pairwise: RwLock<[u8; 32]>,
    /// The DPoP nonces' MAC key, derived from the deployment's secret (every instance makes
    /// and accepts the same nonces).
    nonce_key: RwLock<[u8; 32]>,
    /// Up to when expired portal sessions were looked at ([`Oidc::queue_expired_session_logouts`]).
    expiries_seen: std::sync::Mutex<UnixTime>,
}

impl<D: OidcDb> Oidc<D> {
    /// A delivery worker's loop until `stop` (back-channel logouts, CIBA pings): `deliver`
    /// sends what is due now, then the worker sleeps until `next_due` says the next one is due,
    /// or until `change` wakes it (on PostgreSQL from any instance), or the watch's recheck.
    async fn deliver_until<Sent, Due>(
        &self,
        stop: impl std::future::Future<Output = ()>,
        change: &Change,
        what: &'static str,
        deliver: impl Fn() -> Sent,
        next_due: impl Fn() -> Due,
    ) where
        Sent: std::future::Future<Output = Result<usize, Error>>,
        Due: std::future::Future<Output = Result<Option<UnixTime>, store::Error>>,
    {
        let watch = self.store.watch(change);
        tokio::pin!(stop);
        loop {
            let woken = watch.next();
            let mut pause = watch.recheck();
            match deliver().await {
                Ok(_) => {
                    if let Ok(Some(due)) = next_due().await {
                        let wait = due.0.saturating_sub(self.clock.now().0).max(0);
                        pause = pause.min(std::time::Duration::from_secs(wait.unsigned_abs()));
                    }
                }
                Err(error) => tracing::error!(%error, "{what} delivery failed"),
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = woken => {}
                () = &mut stop => break,
            }
        }
    }

    pub(crate) fn new(
        store: D,
        clock: Arc<dyn Clock>,
        settings: Arc<Settings>,
        ca: Arc<Ca<D>>,
        login: Arc<Login<D>>,
    ) -> Self {
        let expiries_seen =
            std::sync::Mutex::new(clock.now().plus_seconds(-logout::EXPIRY_LOOKBACK));
        Self {
            store,
            clock,
            settings,
            ca,
            login,
            key: RwLock::new(None),
            pairwise: RwLock::new(rand::random()),
            nonce_key: RwLock::new(rand::random()),
            expiries_seen,
        }
    }

    /// Derives the pairwise `sub` secret and the DPoP nonces' key from the deployment's secret:
    /// the same on every instance and after a restart (HKDF-SHA256, a label for each).
    pub(crate) fn set_deployment_secret(&self, secret: &[u8; 32]) {
        for (label, slot) in [
            (&b"eidportal oidc pairwise subject"[..], &self.pairwise),
            (&b"eidportal oidc dpop nonce"[..], &self.nonce_key),
        ] {
            let mut key = [0u8; 32];
            // INVARIANT: 32 bytes are far below HKDF-SHA256's limit of 255 × 32.
            #[allow(clippy::expect_used)]
            hkdf::Hkdf::<Sha256>::new(None, secret)
                .expand(label, &mut key)
                .expect("HKDF expands 32 bytes");
            *slot
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = key;
        }
    }

    /// The issuer: the portal's public URL.
    pub fn issuer(&self) -> String {
        self.settings.public_url.trim_end_matches('/').to_owned()
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer())
    }

    /// `GET /.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §3).
    pub fn discovery(&self) -> Value {
        let scopes: Vec<&str> = domain::oidc::SCOPES.iter().map(|(s, _)| *s).collect();
        let mut claims = vec![
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "acr",
            "amr",
            "sid",
        ];
        claims.extend(
            domain::oidc::SCOPES
                .iter()
                .flat_map(|(_, c)| c.iter().map(|c| c.name())),
        );
        json!({
            "issuer": self.issuer(),
            "authorization_endpoint": self.endpoint("/oidc/authorize"),
            "pushed_authorization_request_endpoint": self.endpoint("/oidc/par"),
            "token_endpoint": self.endpoint("/oidc/token"),
            "userinfo_endpoint": self.endpoint("/oidc/userinfo"),
            "jwks_uri": self.endpoint("/oidc/jwks"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", CIBA_GRANT],
            "backchannel_authentication_endpoint": self.endpoint("/oidc/bc-authorize"),
            "backchannel_token_delivery_modes_supported": ["poll", "ping"],
            "backchannel_user_code_parameter_supported": false,
            "revocation_endpoint": self.endpoint("/oidc/revoke"),
            "end_session_endpoint": self.endpoint("/oidc/logout"),
            "backchannel_logout_supported": true,
            "backchannel_logout_session_supported": true,
            "introspection_endpoint": self.endpoint("/oidc/introspect"),
            "subject_types_supported": ["pairwise", "public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "token_endpoint_auth_methods_supported":
                ["private_key_jwt", "client_secret_basic", "client_secret_post", "none"],
            "token_endpoint_auth_signing_alg_values_supported": domain::oidc::ALLOWED_ALGORITHMS,
            "dpop_signing_alg_values_supported": domain::oidc::ALLOWED_ALGORITHMS,
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": scopes,
            "claims_supported": claims,
            "acr_values_supported": [
                domain::oidc::Acr::High.uri(),
                domain::oidc::Acr::Substantial.uri(),
                domain::oidc::Acr::Low.uri(),
            ],
            "prompt_values_supported": ["none", "login", "consent"],
            "authorization_response_iss_parameter_supported": true,
            "request_parameter_supported": false,
            "claims_parameter_supported": false,
            // RFC 9396 §10.
            "authorization_details_types_supported": [domain::oidc::TRANSACTION_DETAILS_TYPE],
        })
    }
}
