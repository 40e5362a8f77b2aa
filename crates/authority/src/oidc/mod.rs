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
//! introspection, CIBA in poll mode (a ConsentID login request from a service's own server),
//! back-channel logout (a queue delivered by [`Oidc::logout_worker`]) and RP-initiated logout,
//! the server-provided DPoP nonce (a MAC of the minute, no state), and the signing key's
//! rollover (`domain::oidc::key_schedule`).
//!
//! Not built yet (issue 23 stays open): CIBA's ping mode, Rich Authorization Requests.

pub mod jose;
#[cfg(test)]
mod tests;

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use domain::oidc::{
    acr_satisfied, check_code_challenge, check_code_verifier, check_dpop_proof, check_registration,
    claims_for, key_schedule, pairwise_subject, redirect_uri_registered, AuthMethod, CibaRecord,
    Claim, ClientAuthMethod, ClientRecord, CodeUse, DpopExpectation, Grant, KeyGeneration, Profile,
    RefreshUse, SubjectType, TokenKind, TokenRecord, ACCESS_TOKEN_LIFETIME, CIBA_INTERVAL,
    CODE_LIFETIME, ID_TOKEN_LIFETIME, PROOF_IAT_WINDOW, REFRESH_TOKEN_LIFETIME,
    REQUEST_URI_LIFETIME,
};
use domain::{TransactionStatus, UnixTime, UserId};
use pki::KeySigner;
use store::{
    AccountStore as _, AuditLog as _, Change, Database, LogoutRecord, LogoutScope, OidcQueries,
    OidcStore, Store, Transaction as _,
};

use crate::login::Session;
use crate::{Ca, Clock, Error, Login, LoginDb, LoginTx, Settings};

/// The service key role of the ID-token signing key.
pub const SIGNING_KEY: &str = "oidc_signing";

/// The prefix of a pushed request's `request_uri` (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// The grant type of CIBA's token requests.
pub const CIBA_GRANT: &str = "urn:openid:params:grant-type:ciba";

/// A CIBA authentication request (CIBA Core §7.1).
#[derive(Debug, Clone, Default)]
pub struct BackchannelRequest {
    /// Space-separated scopes, `openid` among them.
    pub scope: Option<String>,
    /// The citizen's e-mail address.
    pub login_hint: Option<String>,
    /// Hints we do not take (`id_token_hint`, `login_hint_token`): refused if given.
    pub other_hint: bool,
    /// The text the service shows the citizen, shown on the phone too.
    pub binding_message: Option<String>,
    /// Levels asked.
    pub acr_values: Option<String>,
}

/// A CIBA request accepted: its id, lifetime and polling interval (CIBA Core §7.3).
#[derive(Debug, Clone)]
pub struct BackchannelStarted {
    /// `auth_req_id`.
    pub auth_req_id: String,
    /// Seconds.
    pub expires_in: i64,
    /// Seconds between polls.
    pub interval: i64,
}

/// The `client_assertion_type` of `private_key_jwt` (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

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
    /// Only `authorization_code`.
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
            | Self::UnauthorizedClient(d) => d.clone(),
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

/// What the operator registers (`eidportal oidc client add`).
#[derive(Debug, Clone)]
pub struct ClientRegistration {
    /// The service's name.
    pub name: String,
    /// Its redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Its profile.
    pub profile: Profile,
    /// Its JWKS (JSON text), for `private_key_jwt`.
    pub jwks: Option<String>,
    /// A public client (PKCE only, `basic`).
    pub public: bool,
    /// Scopes beyond `openid`.
    pub scopes: Vec<String>,
    /// May receive the JMBG.
    pub allow_jmbg: bool,
    /// Which `sub`.
    pub subject: SubjectType,
    /// May use CIBA.
    pub ciba: bool,
    /// Back-channel logout URI.
    pub backchannel_logout_uri: Option<String>,
    /// Post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
}

/// How a client presented itself at the token or PAR endpoint.
#[derive(Debug, Clone, Default)]
pub struct ClientCredentials {
    /// `client_id` (form or HTTP Basic).
    pub client_id: Option<String>,
    /// The secret (form or HTTP Basic).
    pub secret: Option<String>,
    /// `client_assertion_type`.
    pub assertion_type: Option<String>,
    /// `client_assertion`.
    pub assertion: Option<String>,
}

/// The parameters of an authorization request (OpenID Connect Core §3.1.2.1, RFC 7636,
/// RFC 9126), as sent or pushed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationParams {
    /// `code`.
    pub response_type: Option<String>,
    /// The client.
    pub client_id: Option<String>,
    /// Where the answer goes.
    pub redirect_uri: Option<String>,
    /// Space-separated scopes.
    pub scope: Option<String>,
    /// The client's state.
    pub state: Option<String>,
    /// For the ID token.
    pub nonce: Option<String>,
    /// PKCE.
    pub code_challenge: Option<String>,
    /// PKCE: `S256`.
    pub code_challenge_method: Option<String>,
    /// `login`, `consent`, `none`.
    pub prompt: Option<String>,
    /// Seconds since the login at most.
    pub max_age: Option<String>,
    /// Levels asked.
    pub acr_values: Option<String>,
    /// A pushed request's URI.
    pub request_uri: Option<String>,
    /// The DPoP key the code is bound to (RFC 9449 §10).
    pub dpop_jkt: Option<String>,
}

/// An authorization request that can be answered at its redirect URI.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// The client.
    pub client: ClientRecord,
    /// Its parameters (a pushed request's, if it was pushed).
    pub params: AuthorizationParams,
    /// The registered redirect URI it named.
    pub redirect_uri: String,
    /// The claims its scopes release.
    pub claims: Vec<Claim>,
    /// The hash of its pushed request's id, if it was pushed.
    request_hash: Option<String>,
}

/// An authorization request refused: at the redirect URI (`redirect` set) or, when neither
/// the client nor the URI can be trusted, on a page of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeError {
    /// Where to send the refusal, with `state` and `iss`; `None`: show a page.
    pub redirect: Option<AuthorizationResponse>,
    /// The OAuth error code.
    pub error: &'static str,
    /// Why.
    pub description: String,
}

/// An RP-initiated logout request's parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LogoutRequest {
    /// One of our ID tokens, naming the service and session.
    pub id_token_hint: Option<String>,
    /// The service.
    pub client_id: Option<String>,
    /// Where to go after the logout (registered for the service).
    pub post_logout_redirect_uri: Option<String>,
    /// Returned with it.
    pub state: Option<String>,
}

/// What an RP-initiated logout does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutPlan {
    /// The service that asks, if known: the confirmation page names it.
    pub service: Option<String>,
    /// Where the browser goes after the logout, if the service named a registered URI.
    pub redirect: Option<String>,
}

/// How an authorization request reached us.
enum Came {
    /// In the browser's query.
    Directly,
    /// Being pushed now (RFC 9126).
    Pushing,
    /// Pushed before: the hash of its `request_uri`'s id.
    Pushed(String),
}

/// An answer at the client's redirect URI: the URI and its query parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationResponse {
    /// The registered redirect URI.
    pub redirect_uri: String,
    /// The parameters (`code` or `error`, `state`, `iss`).
    pub params: Vec<(String, String)>,
}

/// What the authorization endpoint does for this browser.
#[derive(Debug, Clone)]
pub enum AuthorizeStep {
    /// Log in first (and come back).
    Login,
    /// Ask the citizen: the consent page.
    Consent(Box<AuthorizationRequest>),
    /// Answer the client now (consent remembered).
    Respond(AuthorizationResponse),
}

/// The token endpoint's request.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// `authorization_code`.
    pub grant_type: Option<String>,
    /// The code.
    pub code: Option<String>,
    /// The redirect URI the code went to.
    pub redirect_uri: Option<String>,
    /// The PKCE verifier.
    pub code_verifier: Option<String>,
    /// The refresh token (`grant_type=refresh_token`).
    pub refresh_token: Option<String>,
    /// The CIBA request (`grant_type=urn:openid:params:grant-type:ciba`).
    pub auth_req_id: Option<String>,
    /// How the client authenticates.
    pub credentials: ClientCredentials,
    /// The `DPoP` header.
    pub dpop: Option<String>,
}

/// The token endpoint's answer.
#[derive(Debug, Clone)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// `DPoP` or `Bearer`.
    pub token_type: &'static str,
    /// Seconds.
    pub expires_in: i64,
    /// The ID token (not on a refresh).
    pub id_token: Option<String>,
    /// The next refresh token, with `offline_access`.
    pub refresh_token: Option<String>,
    /// The scopes granted.
    pub scope: String,
}

/// How userinfo was called.
#[derive(Debug, Clone)]
pub struct ResourceRequest<'a> {
    /// The `Authorization` scheme: `Bearer` or `DPoP`.
    pub scheme: &'a str,
    /// The token.
    pub token: &'a str,
    /// The `DPoP` header.
    pub dpop: Option<&'a str>,
    /// The method.
    pub method: &'a str,
}

/// When to try a back-channel logout again after a failure: 30 s, doubling up to an hour,
/// for a day; `None`: give up.
fn logout_retry(logout: &LogoutRecord, now: UnixTime) -> Option<UnixTime> {
    let attempts = logout.attempts + 1;
    if attempts >= 12 || now.0 - logout.created_at.0 >= 24 * 3600 {
        return None;
    }
    let wait = (30i64 << attempts.min(7)).min(3600);
    Some(now.plus_seconds(wait))
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

/// A signing key, opened once, with its `kid` and public JWK.
struct SigningKey {
    key: Arc<dyn KeySigner>,
    kid: String,
    jwk: Value,
}

/// Every ID-token key generation, opened.
struct KeySet {
    keys: Vec<(KeyGeneration, Arc<SigningKey>)>,
}

impl KeySet {
    fn generations(&self) -> Vec<KeyGeneration> {
        self.keys.iter().map(|(g, _)| g.clone()).collect()
    }
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
}

impl<D: OidcDb> Oidc<D> {
    pub(crate) fn new(
        store: D,
        clock: Arc<dyn Clock>,
        settings: Arc<Settings>,
        ca: Arc<Ca<D>>,
        login: Arc<Login<D>>,
    ) -> Self {
        Self {
            store,
            clock,
            settings,
            ca,
            login,
            key: RwLock::new(None),
            pairwise: RwLock::new(rand::random()),
            nonce_key: RwLock::new(rand::random()),
        }
    }

    /// Derives the pairwise `sub` secret from the deployment's secret: the same on every
    /// instance and after a restart (HKDF-SHA256 with a label of its own).
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

    /// The DPoP nonce of the minute `at` falls in (RFC 9449 §8): a MAC of the minute, so that
    /// no instance keeps any state for it.
    fn dpop_nonce_at(&self, at: UnixTime) -> String {
        use hmac::Mac as _;
        let key = *self
            .nonce_key
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // INVARIANT: HMAC-SHA256 takes a key of any length.
        #[allow(clippy::expect_used)]
        let mut mac =
            hmac::Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(&(at.0.div_euclid(60)).to_be_bytes());
        proto::b64(mac.finalize().into_bytes().get(..16).unwrap_or_default())
    }

    /// The DPoP nonce to give clients now (`DPoP-Nonce` header).
    pub fn dpop_nonce(&self) -> String {
        self.dpop_nonce_at(self.clock.now())
    }

    /// Whether `nonce` is this minute's or the last one's.
    fn dpop_nonce_ok(&self, nonce: &str, now: UnixTime) -> bool {
        [now, now.plus_seconds(-60)]
            .iter()
            .any(|at| constant_time_eq(self.dpop_nonce_at(*at).as_bytes(), nonce.as_bytes()))
    }

    /// Opens the ID-token keys: the first is made on first start, in the key backend; the
    /// later ones come from `eidportal oidc keys rotate`. The upkeep calls it again every
    /// minute, so that every instance learns of a rotation made elsewhere.
    pub async fn refresh_signing_keys(&self) -> Result<(), Error> {
        let mut generations = vec![KeyGeneration {
            generation: 0,
            role: SIGNING_KEY.to_owned(),
            published_at: UnixTime(0),
            signs_from: UnixTime(0),
        }];
        generations.extend(self.store.oidc_keys().await?);
        let known = self
            .key
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut keys = Vec::new();
        for generation in generations {
            let open = known
                .as_ref()
                .and_then(|set| set.keys.iter().find(|(g, _)| *g == generation))
                .map(|(_, key)| key.clone());
            let key = match open {
                Some(key) => key,
                None => {
                    let signer = self.ca.service_key(&generation.role, false).await?;
                    let jwk = jose::public_jwk(signer.as_ref()).map_err(Error::Inconsistent)?;
                    let kid = jwk
                        .get("kid")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    Arc::new(SigningKey {
                        key: signer,
                        kid,
                        jwk,
                    })
                }
            };
            keys.push((generation, key));
        }
        *self
            .key
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(KeySet { keys }));
        Ok(())
    }

    /// The key set as opened.
    fn key_set(&self) -> Result<Arc<KeySet>, Error> {
        self.key
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or_else(|| Error::Inconsistent("the ID-token keys are not open".into()))
    }

    /// The key that signs now.
    fn signing_key(&self) -> Result<Arc<SigningKey>, Error> {
        let set = self.key_set()?;
        let (signing, _) = key_schedule(&set.generations(), self.clock.now(), ID_TOKEN_LIFETIME);
        set.keys
            .iter()
            .find(|(g, _)| Some(g.generation) == signing)
            .map(|(_, key)| key.clone())
            .ok_or_else(|| Error::Inconsistent("no ID-token key signs now".into()))
    }

    /// Wakes when the signing keys rolled over (in any process, on PostgreSQL): the server's
    /// upkeep then calls [`Oidc::refresh_signing_keys`].
    pub fn key_changes(&self) -> store::Watch {
        self.store.watch(&Change::SigningKeys)
    }

    /// `eidportal oidc keys rotate`: a new signing key, published now and signing after
    /// `overlap` seconds (so that clients fetch it first); the key it replaces stays published
    /// until every token it signed has expired. Its generation.
    pub async fn rotate_keys(&self, overlap: i64) -> Result<KeyGeneration, Error> {
        let now = self.clock.now();
        let last = self
            .store
            .oidc_keys()
            .await?
            .last()
            .map_or(0, |k| k.generation);
        let generation = KeyGeneration {
            generation: last + 1,
            role: format!("{SIGNING_KEY}.{}", last + 1),
            published_at: now,
            signs_from: now.plus_seconds(overlap.max(0)),
        };
        // The key first (its own use case, like every service key), then its place.
        self.ca.service_key(&generation.role, false).await?;
        let mut tx = self.store.begin().await?;
        if !tx.insert_oidc_key(&generation).await? {
            return Err(OidcRefusal::InvalidRequest("another rotation came first".into()).into());
        }
        tx.publish(Change::SigningKeys);
        tx.audit(
            now,
            "operator",
            "oidc.key.rotated",
            json!({ "generation": generation.generation, "signs_from": generation.signs_from.0 }),
        )
        .await?;
        tx.commit().await?;
        self.refresh_signing_keys().await?;
        Ok(generation)
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
            "backchannel_token_delivery_modes_supported": ["poll"],
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
        })
    }

    /// `GET /oidc/jwks`: the ID-token keys published now (the signing one, the next one
    /// during a rollover's overlap, and the last one until its tokens have expired).
    pub fn jwks(&self) -> Result<Value, Error> {
        let set = self.key_set()?;
        let (_, published) = key_schedule(&set.generations(), self.clock.now(), ID_TOKEN_LIFETIME);
        let keys: Vec<Value> = set
            .keys
            .iter()
            .filter(|(g, _)| published.contains(&g.generation))
            .map(|(_, key)| key.jwk.clone())
            .collect();
        Ok(json!({ "keys": keys }))
    }

    /// Registers a client: its record, and its secret (shown once; only the hash is kept)
    /// for a `basic` confidential client without keys.
    pub async fn register_client(
        &self,
        registration: ClientRegistration,
    ) -> Result<(ClientRecord, Option<String>), Error> {
        if let Some(jwks) = &registration.jwks {
            jose::check_client_jwks(jwks)
                .map_err(|e| OidcRefusal::InvalidRequest(format!("--jwks: {e}")))?;
        }
        let secret = (registration.profile == Profile::Basic
            && !registration.public
            && registration.jwks.is_none())
        .then(|| proto::b64(&rand::random::<[u8; 32]>()));
        let client = ClientRecord {
            client_id: proto::b64(&rand::random::<[u8; 16]>()),
            name: registration.name.trim().to_owned(),
            profile: registration.profile,
            redirect_uris: registration.redirect_uris,
            jwks: registration.jwks,
            secret_hash: secret.as_deref().map(sha256_hex),
            scopes: registration.scopes,
            allow_jmbg: registration.allow_jmbg,
            subject: registration.subject,
            backchannel_logout_uri: registration.backchannel_logout_uri,
            post_logout_redirect_uris: registration.post_logout_redirect_uris,
            created_at: self.clock.now(),
            ciba: registration.ciba,
        };
        check_registration(&client, registration.public)
            .map_err(|e| OidcRefusal::InvalidRequest(e.to_string()))?;
        let mut tx = self.store.begin().await?;
        tx.insert_oidc_client(&client).await?;
        tx.audit(
            client.created_at,
            "operator",
            "oidc.client.added",
            json!({ "client_id": client.client_id, "name": client.name, "profile": client.profile.as_str() }),
        )
        .await?;
        tx.commit().await?;
        Ok((client, secret))
    }

    /// The registered clients.
    pub async fn clients(&self) -> Result<Vec<ClientRecord>, Error> {
        Ok(self.store.oidc_clients().await?)
    }

    /// A registered client.
    pub async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, Error> {
        Ok(self.store.oidc_client(client_id).await?)
    }

    /// Removes a client and revokes its tokens: false if there was none.
    pub async fn remove_client(&self, client_id: &str) -> Result<bool, Error> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let removed = tx.remove_oidc_client(client_id, now).await?;
        if removed {
            tx.audit(
                now,
                "operator",
                "oidc.client.removed",
                json!({ "client_id": client_id }),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    /// Authenticates a client at `endpoint` (its URL: an assertion's audience may name it or
    /// the issuer), spending an assertion's `jti` in `tx`.
    async fn authenticate(
        &self,
        tx: &mut D::Tx,
        credentials: &ClientCredentials,
        endpoint: &str,
        now: UnixTime,
    ) -> Result<ClientRecord, Error> {
        let refuse = |why: &str| Error::from(OidcRefusal::InvalidClient(why.to_owned()));
        let client_id = match (&credentials.client_id, &credentials.assertion) {
            (Some(id), _) => id.clone(),
            (None, Some(assertion)) => {
                // Only to find the client; the assertion is verified below.
                jsonwebtoken::dangerous::insecure_decode::<jose::AssertionClaims>(assertion)
                    .map(|data| data.claims.iss)
                    .map_err(|_| refuse("the client assertion does not parse"))?
            }
            (None, None) => return Err(refuse("no client_id")),
        };
        let client = self
            .store
            .oidc_client(&client_id)
            .await?
            .ok_or_else(|| refuse("unknown client"))?;
        match client.auth_method() {
            ClientAuthMethod::PrivateKeyJwt => {
                let (Some(kind), Some(assertion)) =
                    (&credentials.assertion_type, &credentials.assertion)
                else {
                    return Err(refuse("this client authenticates with private_key_jwt"));
                };
                if kind != ASSERTION_TYPE || credentials.secret.is_some() {
                    return Err(refuse("client_assertion_type must be jwt-bearer"));
                }
                let jwks = client.jwks.as_deref().unwrap_or_default();
                let issuer = self.issuer();
                let claims = jose::verify_client_assertion(
                    assertion,
                    jwks,
                    &client.client_id,
                    &[issuer.as_str(), endpoint, &self.endpoint("/oidc/token")],
                    now.0,
                )
                .map_err(|e| refuse(&e.to_string()))?;
                let key = sha256_hex(&format!("assertion\0{}\0{}", client.client_id, claims.jti));
                let keep_until = UnixTime(claims.exp.max(now.0) + PROOF_IAT_WINDOW);
                if !tx.first_sight(&key, keep_until).await? {
                    return Err(refuse("the client assertion was used before"));
                }
            }
            ClientAuthMethod::ClientSecret => {
                let Some(secret) = &credentials.secret else {
                    return Err(refuse("this client authenticates with its secret"));
                };
                let expected = client.secret_hash.as_deref().unwrap_or_default();
                if !constant_time_eq(sha256_hex(secret).as_bytes(), expected.as_bytes()) {
                    return Err(refuse("wrong client secret"));
                }
            }
            ClientAuthMethod::None => {
                if credentials.secret.is_some() || credentials.assertion.is_some() {
                    return Err(refuse("a public client has no credentials"));
                }
            }
        }
        Ok(client)
    }

    /// `POST /oidc/par` (RFC 9126): keeps the request of an authenticated client for
    /// [`REQUEST_URI_LIFETIME`]; its `request_uri` and lifetime.
    pub async fn push_request(
        &self,
        credentials: &ClientCredentials,
        params: AuthorizationParams,
    ) -> Result<(String, i64), Error> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let client = self
            .authenticate(&mut tx, credentials, &self.endpoint("/oidc/par"), now)
            .await?;
        if params.request_uri.is_some() {
            return Err(OidcRefusal::InvalidRequest("request_uri cannot be pushed".into()).into());
        }
        if params
            .client_id
            .as_ref()
            .is_some_and(|id| *id != client.client_id)
        {
            return Err(OidcRefusal::InvalidRequest("client_id differs".into()).into());
        }
        let mut params = params;
        params.client_id = Some(client.client_id.clone());
        // With the authorization endpoint's error codes (RFC 9126 §2.3).
        if let Err(error) = self.validate(&client, &params, Came::Pushing) {
            return Err(match error.error {
                "invalid_scope" => OidcRefusal::InvalidScope(error.description),
                _ => OidcRefusal::InvalidRequest(error.description),
            }
            .into());
        }
        let id = proto::b64(&rand::random::<[u8; 32]>());
        let text = serde_json::to_string(&params)
            .map_err(|e| Error::Inconsistent(format!("request JSON: {e}")))?;
        tx.insert_oidc_request(
            &sha256_hex(&id),
            &client.client_id,
            &text,
            now.plus_seconds(REQUEST_URI_LIFETIME),
        )
        .await?;
        tx.commit().await?;
        Ok((format!("{REQUEST_URI_PREFIX}{id}"), REQUEST_URI_LIFETIME))
    }

    /// Checks an authorization request of `client` (its redirect URI first: only a registered
    /// one is ever answered).
    fn validate(
        &self,
        client: &ClientRecord,
        params: &AuthorizationParams,
        came: Came,
    ) -> Result<AuthorizationRequest, AuthorizeError> {
        let page = |description: &str| AuthorizeError {
            redirect: None,
            error: "invalid_request",
            description: description.to_owned(),
        };
        let redirect_uri = params
            .redirect_uri
            .clone()
            .ok_or_else(|| page("redirect_uri is missing"))?;
        if !redirect_uri_registered(&client.redirect_uris, &redirect_uri) {
            return Err(page("redirect_uri is not registered for this client"));
        }
        let refuse = |error: &'static str, description: String| AuthorizeError {
            redirect: Some(self.response(
                &redirect_uri,
                params,
                vec![
                    ("error".into(), error.into()),
                    ("error_description".into(), description.clone()),
                ],
            )),
            error,
            description,
        };
        if params.response_type.as_deref() != Some("code") {
            return Err(refuse(
                "unsupported_response_type",
                "response_type must be code".into(),
            ));
        }
        if client.profile == Profile::Fapi2 && matches!(came, Came::Directly) {
            return Err(refuse(
                "invalid_request",
                "this client must push its request (PAR) first".into(),
            ));
        }
        let challenge = params.code_challenge.as_deref().unwrap_or_default();
        check_code_challenge(challenge, params.code_challenge_method.as_deref())
            .map_err(|e| refuse("invalid_request", e.to_string()))?;
        let scope = params.scope.as_deref().unwrap_or_default();
        let claims = claims_for(scope, &client.allowed_scopes())
            .map_err(|e| refuse("invalid_scope", e.to_string()))?;
        if params
            .max_age
            .as_deref()
            .is_some_and(|age| age.parse::<u32>().is_err())
        {
            return Err(refuse("invalid_request", "max_age is not a number".into()));
        }
        Ok(AuthorizationRequest {
            client: client.clone(),
            params: params.clone(),
            redirect_uri,
            claims,
            request_hash: match came {
                Came::Pushed(hash) => Some(hash),
                Came::Directly | Came::Pushing => None,
            },
        })
    }

    fn response(
        &self,
        redirect_uri: &str,
        params: &AuthorizationParams,
        mut pairs: Vec<(String, String)>,
    ) -> AuthorizationResponse {
        if let Some(state) = &params.state {
            pairs.push(("state".into(), state.clone()));
        }
        pairs.push(("iss".into(), self.issuer()));
        AuthorizationResponse {
            redirect_uri: redirect_uri.to_owned(),
            params: pairs,
        }
    }

    /// The request a browser brought to the authorization endpoint: its own parameters, or
    /// those pushed under its `request_uri` (read, not spent: the citizen may log in first).
    pub async fn authorization_request(
        &self,
        query: &AuthorizationParams,
    ) -> Result<AuthorizationRequest, AuthorizeError> {
        let page = |description: &str| AuthorizeError {
            redirect: None,
            error: "invalid_request",
            description: description.to_owned(),
        };
        let client_id = query
            .client_id
            .as_deref()
            .ok_or_else(|| page("client_id is missing"))?;
        let client = match self.store.oidc_client(client_id).await {
            Ok(Some(client)) => client,
            Ok(None) => return Err(page("unknown client")),
            Err(error) => {
                tracing::error!(%error, "reading an OpenID client");
                return Err(page("the request cannot be read now"));
            }
        };
        let Some(request_uri) = &query.request_uri else {
            return self.validate(&client, query, Came::Directly);
        };
        let id = request_uri
            .strip_prefix(REQUEST_URI_PREFIX)
            .ok_or_else(|| page("request_uri is not ours"))?;
        let hash = sha256_hex(id);
        let pushed = self
            .store
            .oidc_request(&hash, &client.client_id, self.clock.now())
            .await
            .map_err(|error| {
                tracing::error!(%error, "reading a pushed request");
                page("the request cannot be read now")
            })?
            .ok_or_else(|| page("request_uri is unknown, used or expired"))?;
        let params: AuthorizationParams =
            serde_json::from_str(&pushed).map_err(|_| page("the pushed request cannot be read"))?;
        self.validate(&client, &params, Came::Pushed(hash))
    }

    /// The registered name of the service whose authorization request waits at `path` (what
    /// the portal kept for after the login): the ConsentID login request names it.
    pub async fn service_waiting_at(&self, path: &str) -> Option<String> {
        let query = path.strip_prefix("/oidc/authorize?")?;
        let params: AuthorizationParams = serde_urlencoded::from_str(query).ok()?;
        let client = self
            .store
            .oidc_client(params.client_id.as_deref()?)
            .await
            .ok()??;
        Some(client.name)
    }

    /// What the authorization endpoint does next for this session: log in, ask, or answer
    /// (a remembered consent that covers the scopes).
    pub async fn authorize(
        &self,
        session: &Session,
        request: &AuthorizationRequest,
    ) -> Result<AuthorizeStep, Error> {
        let now = self.clock.now();
        let prompt = request.params.prompt.as_deref().unwrap_or_default();
        let prompts: Vec<&str> = prompt.split_ascii_whitespace().collect();
        let fresh_enough = match (&request.params.max_age, session.authenticated_at()) {
            (Some(age), Some(at)) => at.0 + age.parse::<i64>().unwrap_or(0) >= now.0,
            _ => true,
        };
        let logged_in = session.user.is_some() && session.method().is_some();
        if !logged_in || !fresh_enough || prompts.contains(&"login") && !session.just_logged_in(now)
        {
            if prompts.contains(&"none") {
                return Ok(AuthorizeStep::Respond(self.error_response(
                    request,
                    "login_required",
                    "the citizen is not logged in",
                )));
            }
            return Ok(AuthorizeStep::Login);
        }
        let Some(method) = session.method() else {
            return Ok(AuthorizeStep::Login);
        };
        if !acr_satisfied(method.acr(), request.params.acr_values.as_deref()) {
            return Ok(AuthorizeStep::Respond(self.error_response(
                request,
                "access_denied",
                "the login did not reach the level asked for (acr_values)",
            )));
        }
        let Some(user) = &session.user else {
            return Ok(AuthorizeStep::Login);
        };
        let mut tx = self.store.begin().await?;
        let consented = tx.oidc_consent(&user.id, &request.client.client_id).await?;
        let covered = consented.is_some_and(|given| {
            let given: Vec<&str> = given.split_ascii_whitespace().collect();
            request
                .params
                .scope
                .as_deref()
                .unwrap_or_default()
                .split_ascii_whitespace()
                .all(|s| given.contains(&s))
        });
        if !covered || prompts.contains(&"consent") {
            if prompts.contains(&"none") {
                return Ok(AuthorizeStep::Respond(self.error_response(
                    request,
                    "consent_required",
                    "the citizen has not allowed this service",
                )));
            }
            return Ok(AuthorizeStep::Consent(Box::new(request.clone())));
        }
        if !Self::spend_pushed(&mut tx, request, now).await? {
            return Ok(AuthorizeStep::Respond(self.error_response(
                request,
                "invalid_request",
                "request_uri is used or expired",
            )));
        }
        let response = self.issue_code(&mut tx, session, request, now).await?;
        tx.commit().await?;
        Ok(AuthorizeStep::Respond(response))
    }

    /// Spends the request's pushed request, if it was pushed, so that its `request_uri` is
    /// answered once (RFC 9126 §4): false if it was used or expired meanwhile.
    async fn spend_pushed(
        tx: &mut D::Tx,
        request: &AuthorizationRequest,
        now: UnixTime,
    ) -> Result<bool, Error> {
        Ok(match &request.request_hash {
            Some(hash) => tx
                .take_oidc_request(hash, &request.client.client_id, now)
                .await?
                .is_some(),
            None => true,
        })
    }

    fn error_response(
        &self,
        request: &AuthorizationRequest,
        error: &str,
        description: &str,
    ) -> AuthorizationResponse {
        self.response(
            &request.redirect_uri,
            &request.params,
            vec![
                ("error".into(), error.into()),
                ("error_description".into(), description.into()),
            ],
        )
    }

    /// The citizen's answer on the consent page: a code (and the consent remembered), or
    /// `access_denied`. A pushed request is spent here.
    pub async fn decide(
        &self,
        session: &Session,
        request: &AuthorizationRequest,
        allow: bool,
    ) -> Result<AuthorizationResponse, Error> {
        let now = self.clock.now();
        let (Some(user), Some(method)) = (&session.user, session.method()) else {
            return Err(OidcRefusal::InvalidRequest("not logged in".into()).into());
        };
        if !acr_satisfied(method.acr(), request.params.acr_values.as_deref()) {
            return Ok(self.error_response(
                request,
                "access_denied",
                "the login did not reach the level asked for (acr_values)",
            ));
        }
        let mut tx = self.store.begin().await?;
        if !Self::spend_pushed(&mut tx, request, now).await? {
            return Ok(self.error_response(
                request,
                "invalid_request",
                "request_uri is used or expired",
            ));
        }
        if !allow {
            tx.audit(
                now,
                user.id.as_str(),
                "oidc.denied",
                json!({ "client_id": request.client.client_id }),
            )
            .await?;
            tx.commit().await?;
            return Ok(self.error_response(request, "access_denied", "the citizen refused"));
        }
        let scope = request.params.scope.clone().unwrap_or_default();
        tx.save_oidc_consent(&user.id, &request.client.client_id, &scope, now)
            .await?;
        tx.audit(
            now,
            user.id.as_str(),
            "oidc.consent",
            json!({ "client_id": request.client.client_id, "scope": scope }),
        )
        .await?;
        let response = self.issue_code(&mut tx, session, request, now).await?;
        tx.commit().await?;
        Ok(response)
    }

    async fn issue_code(
        &self,
        tx: &mut D::Tx,
        session: &Session,
        request: &AuthorizationRequest,
        now: UnixTime,
    ) -> Result<AuthorizationResponse, Error> {
        let (Some(user), Some(method), Some(auth_time)) =
            (&session.user, session.method(), session.authenticated_at())
        else {
            return Err(OidcRefusal::InvalidRequest("not logged in".into()).into());
        };
        let code = proto::b64(&rand::random::<[u8; 32]>());
        let grant = Grant {
            client_id: request.client.client_id.clone(),
            user_id: user.id.clone(),
            scope: request.params.scope.clone().unwrap_or_default(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.params.code_challenge.clone().unwrap_or_default(),
            nonce: request.params.nonce.clone(),
            auth_time,
            method,
            sid: session.sid(),
            dpop_jkt: request.params.dpop_jkt.clone(),
        };
        tx.insert_oidc_code(&sha256_hex(&code), &grant, now.plus_seconds(CODE_LIFETIME))
            .await?;
        tx.audit(
            now,
            user.id.as_str(),
            "oidc.authorized",
            json!({ "client_id": grant.client_id, "scope": grant.scope, "acr": method.acr().uri() }),
        )
        .await?;
        Ok(self.response(
            &request.redirect_uri,
            &request.params,
            vec![("code".into(), code)],
        ))
    }

    /// The `sub` a client gets for a citizen.
    fn subject(&self, client: &ClientRecord, user: &UserId) -> String {
        match client.subject {
            SubjectType::Public => user.as_str().to_owned(),
            SubjectType::Pairwise => {
                let secret = *self
                    .pairwise
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                pairwise_subject(&secret, &client.client_id, user.as_str())
            }
        }
    }

    /// Checks a DPoP proof for `method` at `uri` (and `access_token`, at a resource), and
    /// spends its `jti` in `tx`: the key's thumbprint.
    async fn check_dpop(
        &self,
        tx: &mut D::Tx,
        proof: &str,
        method: &str,
        uri: &str,
        access_token: Option<&str>,
        now: UnixTime,
    ) -> Result<String, Error> {
        let refuse = |why: String| Error::from(OidcRefusal::InvalidDpopProof(why));
        let (claims, jkt) = jose::verify_dpop_proof(proof).map_err(|e| refuse(e.to_string()))?;
        check_dpop_proof(
            &claims,
            &DpopExpectation {
                method,
                uri,
                access_token,
                nonce: None,
            },
            now,
        )
        .map_err(|e| refuse(e.to_string()))?;
        // RFC 9449 §8: only a proof made after our nonce (of this minute or the last).
        if !claims
            .nonce
            .as_deref()
            .is_some_and(|n| self.dpop_nonce_ok(n, now))
        {
            return Err(OidcRefusal::UseDpopNonce.into());
        }
        let key = sha256_hex(&format!("dpop\0{jkt}\0{}", claims.jti));
        if !tx
            .first_sight(&key, now.plus_seconds(2 * PROOF_IAT_WINDOW))
            .await?
        {
            return Err(refuse("the proof's jti was used before".into()));
        }
        Ok(jkt)
    }

    /// `POST /oidc/token`: a code for an ID token and an access token (and a refresh token
    /// with `offline_access`), once; or a refresh token for new ones, once. A code used a second
    /// time revokes every token issued from it; a rotated refresh token used again revokes its
    /// whole family.
    pub async fn token(&self, request: &TokenRequest) -> Result<TokenResponse, Error> {
        let now = self.clock.now();
        let token_url = self.endpoint("/oidc/token");
        let mut tx = self.store.begin().await?;
        let client = self
            .authenticate(&mut tx, &request.credentials, &token_url, now)
            .await?;
        match request.grant_type.as_deref() {
            Some("authorization_code") => self.exchange_code(tx, &client, request, now).await,
            Some("refresh_token") => self.refresh(tx, &client, request, now).await,
            Some(CIBA_GRANT) => self.ciba_token(tx, &client, request, now).await,
            _ => Err(OidcRefusal::UnsupportedGrantType.into()),
        }
    }

    /// The DPoP key of a token request: its proof checked and spent, required for `fapi2`.
    async fn token_dpop(
        &self,
        tx: &mut D::Tx,
        client: &ClientRecord,
        request: &TokenRequest,
        now: UnixTime,
    ) -> Result<Option<String>, Error> {
        match &request.dpop {
            Some(proof) => {
                let url = self.endpoint("/oidc/token");
                Ok(Some(
                    self.check_dpop(tx, proof, "POST", &url, None, now).await?,
                ))
            }
            None if client.profile == Profile::Fapi2 => Err(OidcRefusal::InvalidDpopProof(
                "this client's tokens are DPoP-bound: send a DPoP proof".into(),
            )
            .into()),
            None => Ok(None),
        }
    }

    async fn exchange_code(
        &self,
        mut tx: D::Tx,
        client: &ClientRecord,
        request: &TokenRequest,
        now: UnixTime,
    ) -> Result<TokenResponse, Error> {
        let invalid = |why: &str| Error::from(OidcRefusal::InvalidGrant(why.to_owned()));
        let code = request.code.as_deref().ok_or_else(|| invalid("no code"))?;
        let code_hash = sha256_hex(code);
        let grant = match tx.use_oidc_code(&code_hash, now).await? {
            CodeUse::Unknown => return Err(invalid("the code is unknown")),
            CodeUse::Reused => {
                let revoked = tx.revoke_oidc_tokens_of_code(&code_hash, now).await?;
                tx.audit(
                    now,
                    "system",
                    "oidc.code_reused",
                    json!({ "client_id": client.client_id, "tokens_revoked": revoked }),
                )
                .await?;
                tx.commit().await?;
                return Err(invalid(
                    "the code was used before: the tokens issued from it are revoked",
                ));
            }
            CodeUse::First(grant, expires_at) => {
                if now >= expires_at {
                    return Err(invalid("the code has expired"));
                }
                *grant
            }
        };
        if grant.client_id != client.client_id {
            return Err(invalid("the code was issued to another client"));
        }
        // A consent withdrawn since the code was issued ends the code too: its tokens would
        // outlive the withdrawal that revoked the others.
        if tx
            .oidc_consent(&grant.user_id, &client.client_id)
            .await?
            .is_none()
        {
            return Err(invalid("the citizen has withdrawn the consent"));
        }
        if request.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str()) {
            return Err(invalid("redirect_uri differs from the request's"));
        }
        check_code_verifier(
            request.code_verifier.as_deref().unwrap_or_default(),
            &grant.code_challenge,
        )
        .map_err(|e| invalid(&e.to_string()))?;
        let jkt = self.token_dpop(&mut tx, client, request, now).await?;
        if grant.dpop_jkt.is_some() && grant.dpop_jkt != jkt {
            return Err(OidcRefusal::InvalidDpopProof(
                "the proof's key is not the one the request named (dpop_jkt)".into(),
            )
            .into());
        }
        let mut grant = grant;
        grant.dpop_jkt = jkt;
        let family = proto::b64(&rand::random::<[u8; 16]>());
        let mut response = self
            .issue_tokens(&mut tx, &grant, Some(code_hash), &family, now)
            .await?;
        response.id_token = Some(self.id_token(client, &grant, now)?);
        tx.audit(
            now,
            grant.user_id.as_str(),
            "oidc.token",
            json!({ "client_id": client.client_id, "scope": grant.scope, "dpop": grant.dpop_jkt.is_some() }),
        )
        .await?;
        tx.commit().await?;
        Ok(response)
    }

    async fn refresh(
        &self,
        mut tx: D::Tx,
        client: &ClientRecord,
        request: &TokenRequest,
        now: UnixTime,
    ) -> Result<TokenResponse, Error> {
        let invalid = |why: &str| Error::from(OidcRefusal::InvalidGrant(why.to_owned()));
        let presented = request
            .refresh_token
            .as_deref()
            .ok_or_else(|| invalid("no refresh_token"))?;
        let old = match tx
            .use_oidc_refresh_token(&sha256_hex(presented), now)
            .await?
        {
            RefreshUse::Unknown => {
                return Err(invalid("the refresh token is unknown, expired or revoked"))
            }
            RefreshUse::Reused { family } => {
                let revoked = tx.revoke_oidc_family(&family, now).await?;
                tx.audit(
                    now,
                    "system",
                    "oidc.refresh_reused",
                    json!({ "client_id": client.client_id, "tokens_revoked": revoked }),
                )
                .await?;
                tx.commit().await?;
                return Err(invalid(
                    "the refresh token was used before: every token of its grant is revoked",
                ));
            }
            RefreshUse::First(token) => *token,
        };
        if old.grant.client_id != client.client_id {
            return Err(invalid("the refresh token was issued to another client"));
        }
        let jkt = self.token_dpop(&mut tx, client, request, now).await?;
        if old.grant.dpop_jkt.is_some() && old.grant.dpop_jkt != jkt {
            return Err(OidcRefusal::InvalidDpopProof(
                "the proof is not by the key the refresh token is bound to".into(),
            )
            .into());
        }
        let response = self
            .issue_tokens(&mut tx, &old.grant, old.code_hash.clone(), &old.family, now)
            .await?;
        tx.audit(
            now,
            old.grant.user_id.as_str(),
            "oidc.refreshed",
            json!({ "client_id": client.client_id }),
        )
        .await?;
        tx.commit().await?;
        Ok(response)
    }

    /// `POST /oidc/bc-authorize` (CIBA Core §7): a service asks, from its own server, for
    /// the citizen named by `login_hint` to log in; the citizen approves on the phone, which
    /// shows the service's registered name and the binding message. An address no account has
    /// gets the same answers, and its request simply expires. At most one open request per
    /// citizen and service.
    pub async fn backchannel_authenticate(
        &self,
        credentials: &ClientCredentials,
        request: &BackchannelRequest,
        ip: &str,
    ) -> Result<BackchannelStarted, Error> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let client = self
            .authenticate(
                &mut tx,
                credentials,
                &self.endpoint("/oidc/bc-authorize"),
                now,
            )
            .await?;
        if !client.ciba || client.auth_method() == ClientAuthMethod::None {
            return Err(OidcRefusal::UnauthorizedClient(
                "this client is not registered for CIBA".into(),
            )
            .into());
        }
        let scope = request.scope.clone().unwrap_or_default();
        claims_for(&scope, &client.allowed_scopes())
            .map_err(|e| OidcRefusal::InvalidScope(e.to_string()))?;
        if request.other_hint {
            return Err(
                OidcRefusal::InvalidRequest("only login_hint (an e-mail) is taken".into()).into(),
            );
        }
        let hint = request
            .login_hint
            .as_deref()
            .and_then(|hint| crate::ra::accounts::normalise_email(hint).ok())
            .ok_or_else(|| {
                OidcRefusal::InvalidRequest("login_hint must be an e-mail address".into())
            })?;
        if let Some(message) = &request.binding_message {
            if !domain::oidc::approval_text_ok(message, domain::oidc::BINDING_MESSAGE_MAX) {
                return Err(OidcRefusal::InvalidBindingMessage.into());
            }
        }
        // ConsentID reaches `high`: any level asked is met.
        let hint_hash = sha256_hex(&hint);
        if tx
            .oidc_ciba_open(&hint_hash, &client.client_id, now)
            .await?
        {
            return Err(OidcRefusal::InvalidRequest(
                "a request for this citizen is still open".into(),
            )
            .into());
        }
        let id = proto::b64(&rand::random::<[u8; 32]>());
        let id_hash = sha256_hex(&id);
        let user = tx
            .user_by_email(&hint)
            .await?
            .filter(|u| u.assurance == domain::AssuranceLevel::High);
        let (txn, grant) = match &user {
            Some(user) => {
                let txn = self
                    .login
                    .backchannel_request(
                        &mut tx,
                        user,
                        &client.name,
                        &format!("ciba:{id_hash}"),
                        ip,
                        request.binding_message.as_deref(),
                    )
                    .await?;
                let grant = Grant {
                    client_id: client.client_id.clone(),
                    user_id: user.id.clone(),
                    scope: scope.clone(),
                    redirect_uri: String::new(),
                    code_challenge: String::new(),
                    nonce: None,
                    auth_time: now,
                    method: AuthMethod::ConsentId,
                    sid: proto::b64(&rand::random::<[u8; 16]>()),
                    dpop_jkt: None,
                };
                (Some(txn), Some(grant))
            }
            None => (None, None),
        };
        let expires_at = txn
            .as_ref()
            .map_or(now.plus_seconds(domain::login::TRANSACTION_LIFETIME), |t| {
                t.expires_at
            });
        tx.insert_oidc_ciba(&CibaRecord {
            id_hash,
            client_id: client.client_id.clone(),
            hint_hash,
            txn_id: txn.map(|t| t.id),
            grant,
            created_at: now,
            expires_at,
            next_poll_at: now,
            closed_at: None,
        })
        .await?;
        tx.audit(
            now,
            "system",
            "oidc.ciba.requested",
            json!({ "client_id": client.client_id, "user": user.map(|u| u.id) }),
        )
        .await?;
        tx.commit().await?;
        Ok(BackchannelStarted {
            auth_req_id: id,
            expires_in: expires_at.0 - now.0,
            interval: CIBA_INTERVAL,
        })
    }

    /// CIBA's token request (poll mode, CIBA Core §10.1): pending, too fast, refused, ended, or
    /// the tokens once the citizen approved.
    async fn ciba_token(
        &self,
        mut tx: D::Tx,
        client: &ClientRecord,
        request: &TokenRequest,
        now: UnixTime,
    ) -> Result<TokenResponse, Error> {
        let invalid = |why: &str| Error::from(OidcRefusal::InvalidGrant(why.to_owned()));
        let id = request
            .auth_req_id
            .as_deref()
            .ok_or_else(|| invalid("no auth_req_id"))?;
        let ciba = tx
            .oidc_ciba_for_update(&sha256_hex(id))
            .await?
            .filter(|c| c.client_id == client.client_id)
            .ok_or_else(|| invalid("unknown auth_req_id"))?;
        if ciba.closed_at.is_some() {
            return Err(invalid("this request was answered before"));
        }
        if now >= ciba.expires_at {
            return Err(OidcRefusal::ExpiredToken.into());
        }
        if now < ciba.next_poll_at {
            // CIBA Core §11: each poll too early adds to the wait.
            tx.poll_oidc_ciba(&ciba.id_hash, ciba.next_poll_at.plus_seconds(CIBA_INTERVAL))
                .await?;
            tx.commit().await?;
            return Err(OidcRefusal::SlowDown.into());
        }
        tx.poll_oidc_ciba(&ciba.id_hash, now.plus_seconds(CIBA_INTERVAL))
            .await?;
        let answered = match &ciba.txn_id {
            Some(txn_id) => self.store.transaction(txn_id).await?,
            None => None,
        };
        let (Some(txn), Some(grant)) = (answered, ciba.grant.clone()) else {
            tx.commit().await?;
            return Err(OidcRefusal::AuthorizationPending.into());
        };
        match domain::login::effective_status(txn.status, txn.expires_at, now) {
            TransactionStatus::Pending => {
                tx.commit().await?;
                return Err(OidcRefusal::AuthorizationPending.into());
            }
            TransactionStatus::Approved => {}
            TransactionStatus::Expired => {
                tx.close_oidc_ciba(&ciba.id_hash, now).await?;
                tx.commit().await?;
                return Err(OidcRefusal::ExpiredToken.into());
            }
            _ => {
                // Closed: the counter may ask again at once.
                tx.close_oidc_ciba(&ciba.id_hash, now).await?;
                tx.audit(
                    now,
                    grant.user_id.as_str(),
                    "oidc.ciba.denied",
                    json!({ "client_id": client.client_id }),
                )
                .await?;
                tx.commit().await?;
                return Err(OidcRefusal::AccessDenied.into());
            }
        }
        if !tx.close_oidc_ciba(&ciba.id_hash, now).await? {
            return Err(invalid("this request was answered before"));
        }
        // The approval on the phone is the citizen's consent: kept like one given on the
        // consent page, so that the account page lists the service and **Повуци сагласност**
        // revokes these tokens too.
        tx.save_oidc_consent(&grant.user_id, &client.client_id, &grant.scope, now)
            .await?;
        let jkt = self.token_dpop(&mut tx, client, request, now).await?;
        let mut grant = grant;
        grant.auth_time = txn.decided_at.unwrap_or(now);
        grant.dpop_jkt = jkt;
        let family = proto::b64(&rand::random::<[u8; 16]>());
        let mut response = self
            .issue_tokens(&mut tx, &grant, None, &family, now)
            .await?;
        response.id_token = Some(self.id_token(client, &grant, now)?);
        tx.audit(
            now,
            grant.user_id.as_str(),
            "oidc.token",
            json!({ "client_id": client.client_id, "scope": grant.scope, "ciba": true }),
        )
        .await?;
        tx.commit().await?;
        Ok(response)
    }

    /// An access token, and a refresh token if `offline_access` was granted, for `grant`.
    async fn issue_tokens(
        &self,
        tx: &mut D::Tx,
        grant: &Grant,
        code_hash: Option<String>,
        family: &str,
        now: UnixTime,
    ) -> Result<TokenResponse, Error> {
        let issue = |kind: TokenKind, lifetime: i64| {
            let value = proto::b64(&rand::random::<[u8; 32]>());
            let record = TokenRecord {
                token_hash: sha256_hex(&value),
                kind,
                code_hash: code_hash.clone(),
                family: family.to_owned(),
                grant: grant.clone(),
                created_at: now,
                expires_at: now.plus_seconds(lifetime),
                used_at: None,
                revoked_at: None,
            };
            (value, record)
        };
        let (access_token, access) = issue(TokenKind::Access, ACCESS_TOKEN_LIFETIME);
        let offline = grant
            .scope
            .split_ascii_whitespace()
            .any(|s| s == "offline_access");
        let refresh = offline.then(|| issue(TokenKind::Refresh, REFRESH_TOKEN_LIFETIME));
        tx.insert_oidc_token(&access).await?;
        if let Some((_, record)) = &refresh {
            tx.insert_oidc_token(record).await?;
        }
        Ok(TokenResponse {
            access_token,
            token_type: if grant.dpop_jkt.is_some() {
                "DPoP"
            } else {
                "Bearer"
            },
            expires_in: ACCESS_TOKEN_LIFETIME,
            id_token: None,
            refresh_token: refresh.map(|(value, _)| value),
            scope: grant.scope.clone(),
        })
    }

    /// `POST /oidc/revoke` (RFC 7009): a client revokes one of its tokens; a refresh token
    /// takes its whole grant with it. Unknown tokens, and other clients' tokens, change nothing
    /// and are answered the same.
    pub async fn revoke(&self, credentials: &ClientCredentials, token: &str) -> Result<(), Error> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let client = self
            .authenticate(&mut tx, credentials, &self.endpoint("/oidc/revoke"), now)
            .await?;
        if let Some(found) = tx.oidc_token_in(&sha256_hex(token)).await? {
            if found.grant.client_id == client.client_id {
                match found.kind {
                    TokenKind::Refresh => tx.revoke_oidc_family(&found.family, now).await?,
                    TokenKind::Access => {
                        u64::from(tx.revoke_oidc_token(&found.token_hash, now).await?)
                    }
                };
                tx.audit(
                    now,
                    found.grant.user_id.as_str(),
                    "oidc.revoked",
                    json!({ "client_id": client.client_id, "kind": found.kind.as_str() }),
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// `POST /oidc/introspect` (RFC 7662): what an authenticated client (a resource server)
    /// may know of a token; `{"active": false}` for anything not active.
    pub async fn introspect(
        &self,
        credentials: &ClientCredentials,
        token: &str,
    ) -> Result<Value, Error> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let caller = self
            .authenticate(
                &mut tx,
                credentials,
                &self.endpoint("/oidc/introspect"),
                now,
            )
            .await?;
        // A public client's id is no credential: anyone could scan tokens through it
        // (RFC 7662 §2.1, §4).
        if caller.auth_method() == ClientAuthMethod::None {
            return Err(OidcRefusal::InvalidClient(
                "a public client cannot introspect tokens".into(),
            )
            .into());
        }
        tx.commit().await?;
        let Some(found) = self
            .store
            .oidc_token(&sha256_hex(token))
            .await?
            .filter(|t| t.active(now))
        else {
            return Ok(json!({ "active": false }));
        };
        let Some(owner) = self.store.oidc_client(&found.grant.client_id).await? else {
            return Ok(json!({ "active": false }));
        };
        let mut answer = json!({
            "active": true,
            "iss": self.issuer(),
            "client_id": owner.client_id,
            "sub": self.subject(&owner, &found.grant.user_id),
            "scope": found.grant.scope,
            "token_type": if found.grant.dpop_jkt.is_some() { "DPoP" } else { "Bearer" },
            "iat": found.created_at.0,
            "exp": found.expires_at.0,
            "acr": found.grant.method.acr().uri(),
            "auth_time": found.grant.auth_time.0,
        });
        if let Some(jkt) = &found.grant.dpop_jkt {
            set(&mut answer, "cnf", json!({ "jkt": jkt }));
        }
        Ok(answer)
    }

    fn id_token(
        &self,
        client: &ClientRecord,
        grant: &Grant,
        now: UnixTime,
    ) -> Result<String, Error> {
        let key = self.signing_key()?;
        let mut claims = json!({
            "iss": self.issuer(),
            "sub": self.subject(client, &grant.user_id),
            "aud": client.client_id,
            "exp": now.0 + ID_TOKEN_LIFETIME,
            "iat": now.0,
            "auth_time": grant.auth_time.0,
            "acr": grant.method.acr().uri(),
            "amr": grant.method.amr(),
            "sid": grant.sid,
        });
        if let Some(nonce) = &grant.nonce {
            set(&mut claims, "nonce", json!(nonce));
        }
        jose::sign_es256(key.key.as_ref(), Some(&key.kid), "JWT", &claims)
            .map_err(Error::Inconsistent)
    }

    /// `GET /oidc/userinfo` (OpenID Connect Core §5.3): the claims the token's scopes release.
    /// A DPoP-bound token needs the `DPoP` scheme and a proof by its key for this request.
    pub async fn userinfo(&self, request: &ResourceRequest<'_>) -> Result<Value, Error> {
        let now = self.clock.now();
        let invalid = |why: &str| Error::from(OidcRefusal::InvalidToken(why.to_owned()));
        let token = self
            .store
            .oidc_token(&sha256_hex(request.token))
            .await?
            .filter(|t| t.kind == TokenKind::Access && t.active(now))
            .ok_or_else(|| invalid("the access token is unknown, expired or revoked"))?;
        let client = self
            .store
            .oidc_client(&token.grant.client_id)
            .await?
            .ok_or_else(|| invalid("the client was removed"))?;
        let mut tx = self.store.begin().await?;
        match (
            &token.grant.dpop_jkt,
            request.scheme.to_ascii_lowercase().as_str(),
        ) {
            (Some(bound), "dpop") => {
                let proof = request
                    .dpop
                    .ok_or_else(|| OidcRefusal::InvalidDpopProof("no DPoP proof".into()))?;
                let jkt = self
                    .check_dpop(
                        &mut tx,
                        proof,
                        request.method,
                        &self.endpoint("/oidc/userinfo"),
                        Some(request.token),
                        now,
                    )
                    .await?;
                if !domain::oidc::same_thumbprint(bound, &jkt) {
                    return Err(OidcRefusal::InvalidDpopProof(
                        "the proof is not by the token's key".into(),
                    )
                    .into());
                }
            }
            (Some(_), _) => {
                return Err(invalid(
                    "this token is DPoP-bound: use the DPoP scheme with a proof",
                ))
            }
            (None, "bearer") => {}
            (None, _) => return Err(invalid("this is a bearer token")),
        }
        tx.commit().await?;
        let user = self
            .store
            .user(&token.grant.user_id)
            .await?
            .ok_or_else(|| invalid("the account is gone"))?;
        let mut claims = json!({ "sub": self.subject(&client, &token.grant.user_id) });
        let released = claims_for(&token.grant.scope, &client.allowed_scopes())
            .map_err(|_| invalid("the token's scope is no longer allowed"))?;
        for claim in released {
            let value = match claim {
                Claim::GivenName => json!(user.given_name),
                Claim::FamilyName => json!(user.surname),
                Claim::Email => json!(user.email),
                Claim::EmailVerified => json!(user.email_verified),
                Claim::Jmbg => json!(user.jmbg),
            };
            set(&mut claims, claim.name(), value);
        }
        Ok(claims)
    }

    /// Delivers queued back-channel logouts until `stop`: woken when some are queued (on
    /// PostgreSQL from any instance), and when the next retry is due.
    pub async fn logout_worker(&self, stop: impl std::future::Future<Output = ()>) {
        let watch = self.store.watch(&Change::Logouts);
        tokio::pin!(stop);
        loop {
            let queued = watch.next();
            let mut pause = watch.recheck();
            match self.deliver_due_logouts().await {
                Ok(_) => {
                    if let Ok(Some(due)) = self.store.next_oidc_logout_due().await {
                        let wait = due.0.saturating_sub(self.clock.now().0).max(0);
                        pause = pause.min(std::time::Duration::from_secs(wait.unsigned_abs()));
                    }
                }
                Err(error) => tracing::error!(%error, "back-channel logout delivery failed"),
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = queued => {}
                () = &mut stop => break,
            }
        }
    }

    /// Delivers the back-channel logouts due now: how many were delivered.
    pub async fn deliver_due_logouts(&self) -> Result<usize, Error> {
        let now = self.clock.now();
        let mut delivered = 0;
        for logout in self.store.due_oidc_logouts(now, 50).await? {
            // A service without a back-channel URI (or gone) has nothing to be told: settled
            // at once, not retried for a day.
            let told = self
                .store
                .oidc_client(&logout.client_id)
                .await?
                .is_some_and(|c| c.backchannel_logout_uri.is_some());
            if !told {
                let nothing = Err((None, "no back-channel logout URI".to_owned()));
                self.store.record_oidc_logout(&logout, now, nothing).await?;
                continue;
            }
            let outcome = self.deliver_logout(&logout, now).await;
            let record = match &outcome {
                Ok(()) => Ok(()),
                Err(error) => Err((logout_retry(&logout, now), error.clone())),
            };
            let event = match &record {
                Ok(()) => Some("oidc.logout.delivered"),
                Err((None, _)) => Some("oidc.logout.given_up"),
                Err((Some(_), _)) => None,
            };
            self.store.record_oidc_logout(&logout, now, record).await?;
            if let Some(event) = event {
                let mut tx = self.store.begin().await?;
                tx.audit(
                    now,
                    "system",
                    event,
                    json!({ "client_id": logout.client_id, "error": outcome.err() }),
                )
                .await?;
                tx.commit().await?;
            }
            if event == Some("oidc.logout.delivered") {
                delivered += 1;
            }
        }
        Ok(delivered)
    }

    /// One logout token (Back-Channel Logout 1.0 §2.4) POSTed to the client's registered URI.
    async fn deliver_logout(&self, logout: &LogoutRecord, now: UnixTime) -> Result<(), String> {
        let client = self
            .store
            .oidc_client(&logout.client_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the client was removed")?;
        let uri = client
            .backchannel_logout_uri
            .clone()
            .ok_or("the client has no back-channel logout URI")?;
        let key = self.signing_key().map_err(|e| e.to_string())?;
        let claims = json!({
            "iss": self.issuer(),
            "aud": client.client_id,
            "iat": now.0,
            "exp": now.0 + ID_TOKEN_LIFETIME,
            "jti": proto::b64(&rand::random::<[u8; 16]>()),
            "sub": self.subject(&client, &logout.user_id),
            "sid": logout.sid,
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        });
        let token = jose::sign_es256(key.key.as_ref(), Some(&key.kid), "logout+jwt", &claims)?;
        let body = format!("logout_token={token}");
        crate::login::push::post_form(&uri, body).await
    }

    /// RP-initiated logout (OpenID RP-Initiated Logout 1.0): which service asks (from its
    /// `id_token_hint`, one of our ID tokens, or its `client_id`), and where the browser goes
    /// after the logout: a `post_logout_redirect_uri` registered for that service (with
    /// `state`), else nowhere of the service's.
    pub async fn logout_request(&self, request: &LogoutRequest) -> Result<LogoutPlan, Error> {
        let invalid = |why: &str| Error::from(OidcRefusal::InvalidRequest(why.to_owned()));
        let hinted = match &request.id_token_hint {
            Some(hint) => {
                // Signed by any of our keys, a rotated one included.
                let issuer = self.issuer();
                let set = self.key_set()?;
                let claims = set
                    .keys
                    .iter()
                    .find_map(|(_, key)| jose::verify_own_id_token(hint, &key.jwk, &issuer).ok())
                    .ok_or_else(|| invalid("id_token_hint is not an ID token of ours"))?;
                Some(claims.aud)
            }
            None => None,
        };
        let client_id = match (&hinted, &request.client_id) {
            (Some(aud), Some(id)) if aud != id => {
                return Err(invalid("client_id is not the id_token_hint's audience"))
            }
            (Some(aud), _) => Some(aud.clone()),
            (None, id) => id.clone(),
        };
        let client = match &client_id {
            Some(id) => Some(
                self.store
                    .oidc_client(id)
                    .await?
                    .ok_or_else(|| invalid("unknown client"))?,
            ),
            None => None,
        };
        let redirect = match (&request.post_logout_redirect_uri, &client) {
            (Some(uri), Some(client)) => {
                if !redirect_uri_registered(&client.post_logout_redirect_uris, uri) {
                    return Err(invalid("post_logout_redirect_uri is not registered"));
                }
                let mut target = uri.clone();
                if let Some(state) = &request.state {
                    let separator = if uri.contains('?') { '&' } else { '?' };
                    let encoded = serde_urlencoded::to_string([("state", state)])
                        .map_err(|e| Error::Inconsistent(e.to_string()))?;
                    target = format!("{target}{separator}{encoded}");
                }
                Some(target)
            }
            (Some(_), None) => {
                return Err(invalid(
                    "post_logout_redirect_uri needs id_token_hint or client_id",
                ))
            }
            (None, _) => None,
        };
        Ok(LogoutPlan {
            service: client.map(|c| c.name),
            redirect,
        })
    }

    /// The services a citizen allowed, with their names.
    pub async fn consents(&self, user: &UserId) -> Result<Vec<(ClientRecord, String)>, Error> {
        let mut out = Vec::new();
        for consent in self.store.oidc_consents(user).await? {
            if let Some(client) = self.store.oidc_client(&consent.client_id).await? {
                out.push((client, consent.scope));
            }
        }
        Ok(out)
    }

    /// **Повуци сагласност**: withdraws a citizen's consent for a client and revokes the
    /// client's tokens for them.
    pub async fn withdraw_consent(&self, user: &UserId, client_id: &str) -> Result<bool, Error> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        // The service is told first, while its tokens still name the sessions.
        tx.queue_oidc_logouts(LogoutScope::Client(user, client_id), now)
            .await?;
        let withdrawn = tx.withdraw_oidc_consent(user, client_id, now).await?;
        if withdrawn {
            tx.audit(
                now,
                user.as_str(),
                "oidc.consent_withdrawn",
                json!({ "client_id": client_id }),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(withdrawn)
    }
}
