//! The OpenID provider's rules (issue 23), as pure functions of data and `now`: how a login
//! was made and the eIDAS level it reached ([`AuthMethod`], [`Acr`]), PKCE (RFC 7636),
//! redirect-URI registration and matching, the checks of a DPoP proof's claims (RFC 9449) once
//! a JOSE library has verified its signature, the lifetimes of codes and tokens, pairwise
//! subjects, which claims a scope releases, and the approval-screen texts a service may send
//! (CIBA's `binding_message`, RFC 9396 `authorization_details`); CIBA's ping mode in [`ping`].
//!
//! Nothing here parses or verifies a JWS: that is the JOSE library's, in `authority`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

use crate::text::is_display_text;
use crate::UnixTime;

pub mod ping;

pub use ping::{CibaPing, NotificationToken};

/// How a session's login was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// Approved in ConsentID with its PIN: a device key and a knowledge factor.
    ConsentId,
    /// An e-mail and password.
    Password,
}

impl AuthMethod {
    /// The name kept with a session.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConsentId => "consentid",
            Self::Password => "password",
        }
    }

    /// The name kept with a session, read back; `None` for a name this version does not know.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "consentid" => Some(Self::ConsentId),
            "password" => Some(Self::Password),
            _ => None,
        }
    }

    /// The eIDAS level a login of this kind reaches.
    pub fn acr(self) -> Acr {
        match self {
            Self::ConsentId => Acr::High,
            Self::Password => Acr::Low,
        }
    }

    /// The ID token's `amr` values (RFC 8176): ConsentID is a hardware-backed key on the phone
    /// (`hwk`), unlocked with a PIN (`pin`), two factors (`mfa`).
    pub fn amr(self) -> &'static [&'static str] {
        match self {
            Self::ConsentId => &["hwk", "pin", "mfa"],
            Self::Password => &["pwd"],
        }
    }
}

/// An eIDAS level of assurance (Regulation 910/2014, art. 8), ordered low < substantial < high.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Acr {
    /// `http://eidas.europa.eu/LoA/low`.
    Low,
    /// `http://eidas.europa.eu/LoA/substantial`.
    Substantial,
    /// `http://eidas.europa.eu/LoA/high`.
    High,
}

impl Acr {
    /// The `acr` value.
    pub fn uri(self) -> &'static str {
        match self {
            Self::Low => "http://eidas.europa.eu/LoA/low",
            Self::Substantial => "http://eidas.europa.eu/LoA/substantial",
            Self::High => "http://eidas.europa.eu/LoA/high",
        }
    }

    /// An `acr` value read back; `None` for one we do not offer.
    pub fn parse(uri: &str) -> Option<Self> {
        [Self::Low, Self::Substantial, Self::High]
            .into_iter()
            .find(|acr| acr.uri() == uri)
    }
}

/// Whether a login that reached `reached` satisfies a request's `acr_values` (space-separated,
/// in order of preference). None asked: any level does. Asked: the login must reach at least the
/// lowest level asked that we know (OpenID Connect Core §3.1.2.1 leaves the choice to the
/// provider; "at least" keeps a password login from ever passing for `substantial` or `high`).
/// Values we do not know are ignored; only unknown ones: refused.
pub fn acr_satisfied(reached: Acr, acr_values: Option<&str>) -> bool {
    let Some(values) = acr_values else {
        return true;
    };
    let asked: Vec<Acr> = values
        .split_ascii_whitespace()
        .filter_map(Acr::parse)
        .collect();
    match asked.iter().min() {
        Some(lowest) => reached >= *lowest,
        None => values.split_ascii_whitespace().next().is_none(),
    }
}

/// Why a PKCE value is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PkceRefusal {
    /// Only `S256` is accepted (`plain` is not).
    #[error("code_challenge_method must be S256")]
    Method,
    /// A challenge that is not 43 base64url characters (a SHA-256 hash).
    #[error("code_challenge is not a base64url SHA-256 hash")]
    Challenge,
    /// A verifier outside RFC 7636 §4.1's 43 to 128 unreserved characters.
    #[error("code_verifier is malformed")]
    Verifier,
    /// The verifier does not hash to the challenge.
    #[error("code_verifier does not match the code_challenge")]
    Mismatch,
}

/// Checks an authorization request's PKCE parameters: `S256` and a well-formed challenge.
pub fn check_code_challenge(challenge: &str, method: Option<&str>) -> Result<(), PkceRefusal> {
    if method != Some("S256") {
        return Err(PkceRefusal::Method);
    }
    let well_formed = challenge.len() == 43
        && URL_SAFE_NO_PAD
            .decode(challenge)
            .is_ok_and(|hash| hash.len() == 32);
    if well_formed {
        Ok(())
    } else {
        Err(PkceRefusal::Challenge)
    }
}

/// Checks a token request's `code_verifier` against the challenge the code was issued for:
/// BASE64URL(SHA-256(verifier)) == challenge (RFC 7636 §4.6), compared in constant time.
pub fn check_code_verifier(verifier: &str, challenge: &str) -> Result<(), PkceRefusal> {
    let unreserved = |c: u8| c.is_ascii_alphanumeric() || b"-._~".contains(&c);
    if !(43..=128).contains(&verifier.len()) || !verifier.bytes().all(unreserved) {
        return Err(PkceRefusal::Verifier);
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if constant_time_eq(computed.as_bytes(), challenge.as_bytes()) {
        Ok(())
    } else {
        Err(PkceRefusal::Mismatch)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a redirect URI cannot be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriRefusal {
    /// Not an absolute `https://` URI (or `http://` on a loopback address, RFC 8252 §7.3).
    #[error("a redirect URI must be https:// (http:// only on 127.0.0.1, [::1] or localhost)")]
    Scheme,
    /// It has a fragment, which a redirect may not carry (RFC 6749 §3.1.2).
    #[error("a redirect URI must not have a fragment")]
    Fragment,
    /// It has no host, or characters a URI may not hold.
    #[error("a redirect URI must be an absolute URI with a host")]
    Malformed,
}

/// Checks a redirect URI the operator registers.
pub fn check_redirect_uri(uri: &str) -> Result<(), RedirectUriRefusal> {
    if uri.contains('#') {
        return Err(RedirectUriRefusal::Fragment);
    }
    if uri.is_empty() || !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(RedirectUriRefusal::Malformed);
    }
    let (scheme, rest) = uri.split_once("://").ok_or(RedirectUriRefusal::Malformed)?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    if host.is_empty() {
        return Err(RedirectUriRefusal::Malformed);
    }
    match scheme {
        "https" => Ok(()),
        "http" if matches!(host, "127.0.0.1" | "::1" | "localhost") => Ok(()),
        _ => Err(RedirectUriRefusal::Scheme),
    }
}

/// Whether `given` is one of the client's registered redirect URIs: the exact string, never a
/// prefix or a normalised form (FAPI 2.0 §5.3.1.2; RFC 9700 §4.1.3).
pub fn redirect_uri_registered(registered: &[String], given: &str) -> bool {
    registered.iter().any(|uri| uri == given)
}

/// How long an authorization code lives (FAPI 2.0: at most 60 s), seconds.
pub const CODE_LIFETIME: i64 = 60;
/// How long a pushed authorization request's `request_uri` lives (RFC 9126 §2.2), seconds.
pub const REQUEST_URI_LIFETIME: i64 = 60;
/// How long an access token lives, seconds.
pub const ACCESS_TOKEN_LIFETIME: i64 = 300;
/// How long an ID token is valid, seconds.
pub const ID_TOKEN_LIFETIME: i64 = 300;
/// How long a refresh token (`offline_access`) lives without being used, seconds.
pub const REFRESH_TOKEN_LIFETIME: i64 = 30 * 24 * 3600;
/// How far a DPoP proof's or a client assertion's `iat` may be from now, seconds.
pub const PROOF_IAT_WINDOW: i64 = 60;

/// The claims of a DPoP proof (RFC 9449 §4.2), as the JOSE library gave them once it checked
/// the proof's signature with the key in its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopProof {
    /// The header's `typ`.
    pub typ: String,
    /// The header's `alg`.
    pub alg: String,
    /// `htm`: the HTTP method.
    pub htm: String,
    /// `htu`: the HTTP URI, without query and fragment.
    pub htu: String,
    /// `iat`.
    pub iat: i64,
    /// `jti`.
    pub jti: String,
    /// `ath`: base64url SHA-256 of the access token, when one is presented.
    pub ath: Option<String>,
    /// `nonce`, when the server asked for one.
    pub nonce: Option<String>,
}

/// What a DPoP proof must say for this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopExpectation<'a> {
    /// The request's method.
    pub method: &'a str,
    /// The request's URI as the server is reached (its public URL), without query.
    pub uri: &'a str,
    /// The access token presented with the proof (resource requests), if any.
    pub access_token: Option<&'a str>,
    /// The nonce the server currently asks for, if it asks for one.
    pub nonce: Option<&'a str>,
}

/// Why a DPoP proof is refused (`invalid_dpop_proof`, or `use_dpop_nonce` for
/// [`DpopRefusal::Nonce`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DpopRefusal {
    /// `typ` is not `dpop+jwt`.
    #[error("typ is not dpop+jwt")]
    Type,
    /// An algorithm we do not accept (ES256, PS256 only).
    #[error("algorithm not allowed")]
    Algorithm,
    /// `htm` is not the request's method.
    #[error("htm does not match the request's method")]
    Method,
    /// `htu` is not the request's URI.
    #[error("htu does not match the request's URI")]
    Uri,
    /// `iat` too far from now.
    #[error("iat is not recent")]
    Time,
    /// `jti` missing or too long.
    #[error("jti is missing or too long")]
    Identifier,
    /// `ath` missing, or not the hash of the presented access token.
    #[error("ath does not match the access token")]
    TokenHash,
    /// The server's nonce is missing or stale.
    #[error("the DPoP nonce is missing or stale")]
    Nonce,
}

/// The signature algorithms we accept in a DPoP proof, a client assertion and a request object.
pub const ALLOWED_ALGORITHMS: [&str; 2] = ["ES256", "PS256"];

/// Checks a DPoP proof's claims against the request (RFC 9449 §4.3, checks 4 to 12; the
/// signature and the `jwk` are the JOSE library's, the `jti` replay the store's).
pub fn check_dpop_proof(
    proof: &DpopProof,
    expect: &DpopExpectation<'_>,
    now: UnixTime,
) -> Result<(), DpopRefusal> {
    if proof.typ != "dpop+jwt" {
        return Err(DpopRefusal::Type);
    }
    if !ALLOWED_ALGORITHMS.contains(&proof.alg.as_str()) {
        return Err(DpopRefusal::Algorithm);
    }
    if proof.htm != expect.method {
        return Err(DpopRefusal::Method);
    }
    if proof.htu != htu_of(expect.uri) {
        return Err(DpopRefusal::Uri);
    }
    if (proof.iat - now.0).abs() > PROOF_IAT_WINDOW {
        return Err(DpopRefusal::Time);
    }
    if proof.jti.is_empty() || proof.jti.len() > 256 {
        return Err(DpopRefusal::Identifier);
    }
    if let Some(token) = expect.access_token {
        let hash = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
        if proof.ath.as_deref() != Some(hash.as_str()) {
            return Err(DpopRefusal::TokenHash);
        }
    }
    if let Some(nonce) = expect.nonce {
        if proof.nonce.as_deref() != Some(nonce) {
            return Err(DpopRefusal::Nonce);
        }
    }
    Ok(())
}

/// A URI as `htu` names it: without query and fragment (RFC 9449 §4.2).
fn htu_of(uri: &str) -> &str {
    uri.split(['?', '#']).next().unwrap_or(uri)
}

/// The JWK thumbprint (RFC 7638) a DPoP-bound token carries as `cnf.jkt` is the JOSE library's
/// to compute; this compares the one bound to a token with a proof's, in constant time.
pub fn same_thumbprint(bound: &str, presented: &str) -> bool {
    constant_time_eq(bound.as_bytes(), presented.as_bytes())
}

/// A citizen's pairwise `sub` for one sector (OpenID Connect Core §8.1): HMAC-SHA256 of the
/// sector and the account id under the deployment's secret, base64url. Stable for a client,
/// different between clients of different sectors, and reveals nothing of the account.
pub fn pairwise_subject(secret: &[u8; 32], sector: &str, user_id: &str) -> String {
    // INVARIANT: HMAC-SHA256 takes a key of any length.
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"eidportal pairwise sub v1\0");
    mac.update(&(sector.len() as u64).to_be_bytes());
    mac.update(sector.as_bytes());
    mac.update(user_id.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// A claim a service may receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Claim {
    /// `given_name` (scope `profile`).
    GivenName,
    /// `family_name` (scope `profile`).
    FamilyName,
    /// `email` (scope `email`).
    Email,
    /// `email_verified` (scope `email`).
    EmailVerified,
    /// `jmbg`, the personal number (scope `jmbg`, for clients allowed it only).
    Jmbg,
}

impl Claim {
    /// The claim's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::GivenName => "given_name",
            Self::FamilyName => "family_name",
            Self::Email => "email",
            Self::EmailVerified => "email_verified",
            Self::Jmbg => "jmbg",
        }
    }
}

/// Why a requested scope is refused (`invalid_scope`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeRefusal {
    /// `openid` is missing.
    #[error("the openid scope is required")]
    NoOpenId,
    /// A scope we do not offer, or one the client is not registered for.
    #[error("scope not allowed: {0}")]
    NotAllowed(String),
}

/// The scopes a request may ask for, each with the claims it releases. `offline_access`
/// releases none (it asks for a refresh token).
pub const SCOPES: [(&str, &[Claim]); 5] = [
    ("openid", &[]),
    ("profile", &[Claim::GivenName, Claim::FamilyName]),
    ("email", &[Claim::Email, Claim::EmailVerified]),
    ("jmbg", &[Claim::Jmbg]),
    ("offline_access", &[]),
];

/// The claims released by `scope` (space-separated), for a client registered with the scopes
/// `allowed`. Refuses a scope we do not offer or the client may not ask for (`jmbg` only for
/// clients registered with it), and a request without `openid`.
pub fn claims_for(scope: &str, allowed: &[String]) -> Result<Vec<Claim>, ScopeRefusal> {
    let mut claims = Vec::new();
    let mut openid = false;
    for name in scope.split_ascii_whitespace() {
        let offered = SCOPES.iter().find(|(scope, _)| *scope == name);
        let Some((_, released)) = offered.filter(|_| allowed.iter().any(|a| a == name)) else {
            return Err(ScopeRefusal::NotAllowed(name.to_owned()));
        };
        openid |= name == "openid";
        claims.extend_from_slice(released);
    }
    if !openid {
        return Err(ScopeRefusal::NoOpenId);
    }
    claims.sort();
    claims.dedup();
    Ok(claims)
}

/// The longest CIBA `binding_message`, characters.
pub const BINDING_MESSAGE_MAX: usize = 40;
/// The longest `eidportal_transaction` text of `authorization_details`, characters.
pub const TRANSACTION_TEXT_MAX: usize = 200;

/// Whether a service's approval-screen text may be shown on the phone: display characters only
/// (no control, bidi or invisible characters: `text::is_display_text`), at most `max` of them.
pub fn approval_text_ok(text: &str, max: usize) -> bool {
    !text.trim().is_empty() && is_display_text(text, max)
}

/// The one type of RFC 9396 `authorization_details` we accept: a transaction (a payment, a
/// filing) whose `text` the citizen reads and approves in ConsentID.
pub const TRANSACTION_DETAILS_TYPE: &str = "eidportal_transaction";
/// The longest `authorization_details` parameter read at all, bytes: a budget before parsing
/// (one entry of at most [`TRANSACTION_TEXT_MAX`] characters, each at most 4 bytes, and the
/// JSON around it, fit well within it).
pub const AUTHORIZATION_DETAILS_MAX_BYTES: usize = 2048;
/// How long after the citizen approved a transaction in ConsentID its approval may still be
/// turned into a code, seconds (the consent page may come in between).
pub const TRANSACTION_APPROVAL_WINDOW: i64 = 300;

/// A transaction a service asks the citizen to approve: the one entry of type
/// [`TRANSACTION_DETAILS_TYPE`] of its `authorization_details` (RFC 9396 §2).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransactionDetails {
    /// The approval-screen text, validated display text of at most [`TRANSACTION_TEXT_MAX`]
    /// characters: exactly what the phone shows and the device signs.
    pub text: String,
}

impl TransactionDetails {
    /// The `authorization_details` the service gets back in the ID token and introspection
    /// (RFC 9396 §7, §9.2): the array it sent, as approved.
    pub fn authorization_details(&self) -> serde_json::Value {
        serde_json::json!([{ "type": TRANSACTION_DETAILS_TYPE, "text": self.text }])
    }
}

/// Why `authorization_details` is refused (`invalid_authorization_details`, RFC 9396 §5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationDetailsRefusal {
    /// Not a JSON array of objects, or longer than [`AUTHORIZATION_DETAILS_MAX_BYTES`].
    #[error("authorization_details must be a JSON array of objects")]
    Malformed,
    /// Not exactly one entry.
    #[error("authorization_details must hold exactly one entry")]
    Count,
    /// An entry of a type we do not offer.
    #[error("the only authorization_details type is eidportal_transaction")]
    Type,
    /// A field other than `type` and `text`: nothing is approved that the phone did not show.
    #[error("an eidportal_transaction has only the fields type and text")]
    Field,
    /// `text` is missing, not a string, blank, too long, or holds control, bidi or invisible
    /// characters.
    #[error("text must be 1 to 200 display characters")]
    Text,
}

/// Parses a request's `authorization_details` (RFC 9396 §2): a JSON array with exactly one
/// object, `{"type": "eidportal_transaction", "text": TEXT}`, TEXT valid approval-screen text
/// ([`approval_text_ok`], at most [`TRANSACTION_TEXT_MAX`] characters). Anything else is
/// refused, never trimmed or ignored: the service gets back exactly what the citizen saw.
pub fn parse_authorization_details(
    text: &str,
) -> Result<TransactionDetails, AuthorizationDetailsRefusal> {
    use serde_json::Value;
    if text.len() > AUTHORIZATION_DETAILS_MAX_BYTES {
        return Err(AuthorizationDetailsRefusal::Malformed);
    }
    let Ok(Value::Array(entries)) = serde_json::from_str::<Value>(text) else {
        return Err(AuthorizationDetailsRefusal::Malformed);
    };
    if entries.iter().any(|entry| !entry.is_object()) {
        return Err(AuthorizationDetailsRefusal::Malformed);
    }
    let [Value::Object(entry)] = entries.as_slice() else {
        return Err(AuthorizationDetailsRefusal::Count);
    };
    if entry.get("type").and_then(Value::as_str) != Some(TRANSACTION_DETAILS_TYPE) {
        return Err(AuthorizationDetailsRefusal::Type);
    }
    if entry.keys().any(|key| key != "type" && key != "text") {
        return Err(AuthorizationDetailsRefusal::Field);
    }
    match entry.get("text").and_then(Value::as_str) {
        Some(shown) if approval_text_ok(shown, TRANSACTION_TEXT_MAX) => Ok(TransactionDetails {
            text: shown.to_owned(),
        }),
        _ => Err(AuthorizationDetailsRefusal::Text),
    }
}

/// A transaction the citizen approved: kept with the code and its tokens.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApprovedTransaction {
    /// What was approved.
    pub details: TransactionDetails,
    /// The ConsentID request that showed it and that the device signed: its stored approval
    /// (the signed message and the device's signature) is the evidence.
    pub txn_id: crate::TxnId,
}

/// The ConsentID login behind a session, as far as a transaction's approval needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovingLogin<'a> {
    /// Whether it is a login request, approved and spent by the session's login.
    pub consumed_login: bool,
    /// Whether it was made for the session's account.
    pub same_account: bool,
    /// The service its signed payload named.
    pub service: &'a str,
    /// The text its signed payload showed (`RequestPayload.message`), if any.
    pub message: Option<&'a str>,
    /// When the device approved it.
    pub approved_at: Option<UnixTime>,
}

/// Whether a session's login approved `details` for `service`: the login was made for it, the
/// phone showed exactly this text and named this service, and the approval is at most
/// [`TRANSACTION_APPROVAL_WINDOW`] seconds old. The text alone never binds: the caller reads
/// `login` by the session's own login request id, and spends that id once.
pub fn transaction_approved(
    details: &TransactionDetails,
    service: &str,
    login: &ApprovingLogin<'_>,
    now: UnixTime,
) -> bool {
    login.consumed_login
        && login.same_account
        && login.service == service
        && login.message == Some(details.text.as_str())
        && login
            .approved_at
            .is_some_and(|at| at <= now && now.0 - at.0 <= TRANSACTION_APPROVAL_WINDOW)
}

/// A client's profile (DESIGN §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// FAPI 2.0 Security Profile: PAR, PKCE S256, `private_key_jwt`, DPoP-bound tokens.
    Fapi2,
    /// Code flow with PKCE S256; a client secret, `private_key_jwt` or none; bearer tokens.
    Basic,
}

impl Profile {
    /// The name on the command line and in `client show`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fapi2 => "fapi2",
            Self::Basic => "basic",
        }
    }
}

/// Which `sub` a client is given for a citizen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubjectType {
    /// Per client ([`pairwise_subject`]): two services cannot join their records by `sub`.
    Pairwise,
    /// The account's id, the same for every client so registered.
    Public,
}

/// How a client proves itself at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// RFC 7523 assertion signed with a key of its registered JWKS.
    PrivateKeyJwt,
    /// `client_secret_basic` or `client_secret_post`.
    ClientSecret,
    /// A public client: PKCE only (`basic` profile).
    None,
}

impl ClientAuthMethod {
    /// The discovery names of the method.
    pub fn names(self) -> &'static [&'static str] {
        match self {
            Self::PrivateKeyJwt => &["private_key_jwt"],
            Self::ClientSecret => &["client_secret_basic", "client_secret_post"],
            Self::None => &["none"],
        }
    }
}

/// A registered client (`eidportal oidc client add`), as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientRecord {
    /// Its id, made at registration.
    pub client_id: String,
    /// The service's name: shown on the consent page and on the phone.
    pub name: String,
    /// Its profile.
    pub profile: Profile,
    /// The redirect URIs, matched exactly ([`redirect_uri_registered`]).
    pub redirect_uris: Vec<String>,
    /// Its public keys (a JWKS, JSON text), for `private_key_jwt`.
    pub jwks: Option<String>,
    /// SHA-256 (hex) of its secret (`basic` confidential clients without keys).
    pub secret_hash: Option<String>,
    /// The scopes it may ask for, beyond `openid`.
    pub scopes: Vec<String>,
    /// Whether it may receive the `jmbg` claim.
    pub allow_jmbg: bool,
    /// Which `sub` it is given.
    pub subject: SubjectType,
    /// Where its back-channel logout tokens go.
    pub backchannel_logout_uri: Option<String>,
    /// Where RP-initiated logout may send the browser back to.
    pub post_logout_redirect_uris: Vec<String>,
    /// When it was registered.
    pub created_at: UnixTime,
    /// It may ask for logins from its own server (CIBA, poll mode).
    #[serde(default)]
    pub ciba: bool,
    /// A CIBA client in ping mode (CIBA Core §5, §10.2): where it is told that a request's
    /// answer is ready (`backchannel_client_notification_endpoint`). Clients registered before
    /// ping mode have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciba_notification_endpoint: Option<String>,
}

impl ClientRecord {
    /// Where a CIBA client in ping mode is notified; `None` for a poll-mode client (or one
    /// without CIBA).
    pub fn ciba_ping_endpoint(&self) -> Option<&str> {
        self.ciba_notification_endpoint
            .as_deref()
            .filter(|_| self.ciba)
    }

    /// `backchannel_token_delivery_mode` (CIBA Core §4), for a CIBA client.
    pub fn ciba_delivery_mode(&self) -> Option<&'static str> {
        match (self.ciba, self.ciba_ping_endpoint()) {
            (false, _) => None,
            (true, Some(_)) => Some("ping"),
            (true, None) => Some("poll"),
        }
    }

    /// How it authenticates at the token endpoint.
    pub fn auth_method(&self) -> ClientAuthMethod {
        if self.jwks.is_some() {
            ClientAuthMethod::PrivateKeyJwt
        } else if self.secret_hash.is_some() {
            ClientAuthMethod::ClientSecret
        } else {
            ClientAuthMethod::None
        }
    }

    /// The scopes it may be given: `openid`, its registered ones, and `jmbg` only if allowed.
    pub fn allowed_scopes(&self) -> Vec<String> {
        let mut scopes = vec!["openid".to_owned()];
        for scope in &self.scopes {
            if scope != "jmbg" || self.allow_jmbg {
                scopes.push(scope.clone());
            }
        }
        if self.allow_jmbg && !scopes.iter().any(|s| s == "jmbg") {
            scopes.push("jmbg".to_owned());
        }
        scopes
    }
}

/// Why a client's registration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationRefusal {
    /// The name is empty, too long, or holds control, bidi or invisible characters.
    #[error("the name must be 1 to 80 display characters")]
    Name,
    /// No redirect URI, or one that is not an absolute https (or loopback http) URI.
    #[error("redirect URI refused: {0}")]
    RedirectUri(String),
    /// A `fapi2` client needs keys for `private_key_jwt`; a public client has none.
    #[error("{0}")]
    Authentication(&'static str),
    /// A scope we do not offer.
    #[error("unknown scope: {0}")]
    Scope(String),
    /// A CIBA notification endpoint without CIBA.
    #[error("a notification endpoint is for a CIBA client (--ciba) in ping mode")]
    NotificationWithoutCiba,
}

/// The longest service name, characters.
pub const CLIENT_NAME_MAX: usize = 80;

/// Checks what an operator registers: the name shown on the phone, the redirect URIs, the
/// scopes, and that the profile's client authentication is possible.
pub fn check_registration(client: &ClientRecord, public: bool) -> Result<(), RegistrationRefusal> {
    if !approval_text_ok(&client.name, CLIENT_NAME_MAX) {
        return Err(RegistrationRefusal::Name);
    }
    if client.redirect_uris.is_empty() {
        return Err(RegistrationRefusal::RedirectUri("none given".into()));
    }
    // Where browsers are sent after a logout, where logout tokens are posted and where CIBA
    // notifications go: the same rules as a redirect URI (https, or http on a loopback address
    // only; no fragment).
    let logout_uris = client
        .post_logout_redirect_uris
        .iter()
        .chain(&client.backchannel_logout_uri)
        .chain(&client.ciba_notification_endpoint);
    for uri in client.redirect_uris.iter().chain(logout_uris) {
        check_redirect_uri(uri)
            .map_err(|e| RegistrationRefusal::RedirectUri(format!("{uri}: {e}")))?;
    }
    for scope in &client.scopes {
        if !SCOPES.iter().any(|(name, _)| name == scope) {
            return Err(RegistrationRefusal::Scope(scope.clone()));
        }
    }
    if client.ciba_notification_endpoint.is_some() && !client.ciba {
        return Err(RegistrationRefusal::NotificationWithoutCiba);
    }
    if client.ciba && public {
        // A public client's id is no credential: anyone could send citizens' phones
        // approval requests in the service's name.
        return Err(RegistrationRefusal::Authentication(
            "a CIBA client asks from its own server and authenticates: it cannot be public",
        ));
    }
    match (client.profile, public, client.jwks.is_some()) {
        (Profile::Fapi2, true, _) => Err(RegistrationRefusal::Authentication(
            "a fapi2 client cannot be public: it authenticates with private_key_jwt",
        )),
        (Profile::Fapi2, false, false) => Err(RegistrationRefusal::Authentication(
            "a fapi2 client needs its keys (--jwks FILE) for private_key_jwt",
        )),
        (Profile::Basic, true, true) => Err(RegistrationRefusal::Authentication(
            "a public client has no keys",
        )),
        _ => Ok(()),
    }
}

/// What a code, and the tokens made from it, stand for: who allowed which client what, and how
/// the login was made. Kept with the code and each token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    /// The client.
    pub client_id: String,
    /// The citizen's account.
    pub user_id: crate::UserId,
    /// The scopes granted, space-separated.
    pub scope: String,
    /// The redirect URI the code went to.
    pub redirect_uri: String,
    /// The PKCE S256 challenge of the request.
    pub code_challenge: String,
    /// The request's `nonce`, for the ID token.
    pub nonce: Option<String>,
    /// When the citizen logged in.
    pub auth_time: UnixTime,
    /// How.
    pub method: AuthMethod,
    /// The portal session's id for the ID token's `sid` (a hash, never the cookie).
    pub sid: String,
    /// The DPoP key's thumbprint the tokens are bound to (RFC 9449 §10), if any.
    pub dpop_jkt: Option<String>,
    /// When the portal session of the grant expires: its services are told of the end then
    /// (Back-Channel Logout). None for CIBA, which has no portal session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expires_at: Option<UnixTime>,
    /// The transaction the citizen approved in ConsentID (RFC 9396 `authorization_details`),
    /// if the request carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<ApprovedTransaction>,
}

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// An access token for userinfo (and introspection by resource servers).
    Access,
    /// A refresh token (scope `offline_access` only): used once, then rotated.
    Refresh,
}

impl TokenKind {
    /// The name the store keeps (and RFC 7009's `token_type_hint`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access_token",
            Self::Refresh => "refresh_token",
        }
    }

    /// The name the store keeps, read back.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Access, Self::Refresh]
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// An issued token, as the store keeps it: only its hash, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// SHA-256 (hex) of the token.
    pub token_hash: String,
    /// What it is.
    pub kind: TokenKind,
    /// The code it was issued from: a reused code revokes it.
    pub code_hash: Option<String>,
    /// Its grant's tokens (the code's exchange and every refresh after it).
    pub family: String,
    /// What it stands for.
    pub grant: Grant,
    /// When it was issued.
    pub created_at: UnixTime,
    /// When it ends.
    pub expires_at: UnixTime,
    /// A refresh token: when it was rotated.
    pub used_at: Option<UnixTime>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<UnixTime>,
}

impl TokenRecord {
    /// Whether it may be used at `now`.
    pub fn active(&self, now: UnixTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// An ID-token signing key's place in the rollover (`eidportal oidc keys rotate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGeneration {
    /// 0 for the first key, then one more per rotation.
    pub generation: i64,
    /// Its service key role.
    pub role: String,
    /// When it was first published in the JWKS.
    pub published_at: UnixTime,
    /// When it starts signing.
    pub signs_from: UnixTime,
}

/// Which key signs at `now` (the latest whose `signs_from` has come) and which are published:
/// every key from its publication until the tokens it signed have all expired, that is
/// `lifetime` after the next key started signing. `keys` are in order of generation.
pub fn key_schedule(
    keys: &[KeyGeneration],
    now: UnixTime,
    lifetime: i64,
) -> (Option<i64>, Vec<i64>) {
    let signing = keys
        .iter()
        .filter(|k| k.signs_from <= now)
        .map(|k| k.generation)
        .max();
    let published = keys
        .iter()
        .filter(|key| key.published_at <= now)
        .filter(|key| {
            // Replaced by the first later key that signs now; published until its tokens end.
            let replaced = keys
                .iter()
                .filter(|later| later.generation > key.generation && later.signs_from <= now)
                .map(|later| later.signs_from)
                .min();
            replaced.is_none_or(|at| now.0 < at.0 + lifetime)
        })
        .map(|key| key.generation)
        .collect();
    (signing, published)
}

/// Seconds a CIBA client waits between two polls of the token endpoint.
pub const CIBA_INTERVAL: i64 = 5;

/// A CIBA request as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CibaRecord {
    /// SHA-256 (hex) of its `auth_req_id`.
    pub id_hash: String,
    /// The client that asked.
    pub client_id: String,
    /// SHA-256 (hex) of the normalised `login_hint`.
    pub hint_hash: String,
    /// The ConsentID request made for it; none for an address no account has.
    pub txn_id: Option<crate::TxnId>,
    /// What the tokens will stand for; none for an address no account has.
    pub grant: Option<Grant>,
    /// When it was made.
    pub created_at: UnixTime,
    /// When it ends.
    pub expires_at: UnixTime,
    /// The client may not poll before this.
    pub next_poll_at: UnixTime,
    /// When it was closed: its tokens issued (once), or its refusal or end told the client.
    pub closed_at: Option<UnixTime>,
    /// A ping-mode request's notification, while it is owed (CIBA Core §10.2): due when the
    /// citizen answers, or when the request ends unanswered; forgotten once delivered or given
    /// up.
    pub ping: Option<CibaPing>,
}

/// The ConsentID request's binding of a CIBA request (by the hash of its `auth_req_id`): it
/// ties the phone's answer to the CIBA request, not to a browser session.
pub fn ciba_binding(id_hash: &str) -> String {
    format!("ciba:{id_hash}")
}

/// The CIBA request (the hash of its `auth_req_id`) a ConsentID request was made for, if any.
pub fn ciba_of_binding(binding: &str) -> Option<&str> {
    binding.strip_prefix("ciba:")
}

/// What using a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// No such refresh token, or one expired or revoked.
    Unknown,
    /// The token, now rotated.
    First(Box<TokenRecord>),
    /// The token was rotated before: a replay (its family is to be revoked).
    Reused {
        /// The family to revoke.
        family: String,
    },
}

/// What using a code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeUse {
    /// No such code.
    Unknown,
    /// The code, now spent: its grant and end.
    First(Box<Grant>, UnixTime),
    /// The code was spent before: a replay (its tokens are to be revoked).
    Reused,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_new_key_is_published_before_it_signs_and_the_old_one_until_its_tokens_end() {
        let key = |generation: i64, published: i64, signs: i64| KeyGeneration {
            generation,
            role: format!("oidc_signing.{generation}"),
            published_at: UnixTime(published),
            signs_from: UnixTime(signs),
        };
        let keys = [key(0, 0, 0), key(1, 1000, 4600)];
        // Before the rotation.
        assert_eq!(
            key_schedule(&keys[..1], UnixTime(999), 300),
            (Some(0), vec![0])
        );
        // The overlap: the new key is published, the old one still signs.
        assert_eq!(
            key_schedule(&keys, UnixTime(1000), 300),
            (Some(0), vec![0, 1])
        );
        assert_eq!(
            key_schedule(&keys, UnixTime(4599), 300),
            (Some(0), vec![0, 1])
        );
        // The new key signs; the old one stays published while its tokens live.
        assert_eq!(
            key_schedule(&keys, UnixTime(4600), 300),
            (Some(1), vec![0, 1])
        );
        assert_eq!(
            key_schedule(&keys, UnixTime(4899), 300),
            (Some(1), vec![0, 1])
        );
        assert_eq!(key_schedule(&keys, UnixTime(4900), 300), (Some(1), vec![1]));
        // A key not yet published is not in the JWKS.
        assert_eq!(key_schedule(&keys, UnixTime(500), 300), (Some(0), vec![0]));
    }

    #[test]
    fn a_login_reaches_the_level_of_its_method_and_a_password_never_passes_for_more() {
        assert_eq!(AuthMethod::ConsentId.acr(), Acr::High);
        assert_eq!(AuthMethod::Password.acr(), Acr::Low);
        for method in [AuthMethod::ConsentId, AuthMethod::Password] {
            assert_eq!(AuthMethod::parse(method.as_str()), Some(method));
        }
        assert_eq!(AuthMethod::parse("sms"), None);
        let high = Acr::High.uri();
        let substantial = Acr::Substantial.uri();
        assert_eq!(high, "http://eidas.europa.eu/LoA/high");
        assert!(acr_satisfied(Acr::Low, None));
        assert!(acr_satisfied(Acr::High, Some(high)));
        assert!(!acr_satisfied(Acr::Low, Some(high)));
        assert!(!acr_satisfied(Acr::Low, Some(substantial)));
        assert!(!acr_satisfied(
            Acr::Low,
            Some(&format!("{high} {substantial}"))
        ));
        assert!(acr_satisfied(
            Acr::High,
            Some(&format!("{substantial} urn:other"))
        ));
        assert!(acr_satisfied(Acr::Low, Some(Acr::Low.uri())));
        assert!(!acr_satisfied(Acr::High, Some("urn:unknown")));
        assert!(acr_satisfied(Acr::Low, Some("  ")));
    }

    #[test]
    fn pkce_takes_only_s256_and_the_verifier_that_hashes_to_the_challenge() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(check_code_challenge(challenge, Some("S256")), Ok(()));
        assert_eq!(
            check_code_challenge(challenge, Some("plain")),
            Err(PkceRefusal::Method)
        );
        assert_eq!(
            check_code_challenge(challenge, None),
            Err(PkceRefusal::Method)
        );
        assert_eq!(
            check_code_challenge("short", Some("S256")),
            Err(PkceRefusal::Challenge)
        );
        assert_eq!(check_code_verifier(verifier, challenge), Ok(()));
        let other = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX";
        assert_eq!(
            check_code_verifier(other, challenge),
            Err(PkceRefusal::Mismatch)
        );
        assert_eq!(
            check_code_verifier("too-short", challenge),
            Err(PkceRefusal::Verifier)
        );
        let bad_char = format!("{}+", &verifier[..43]);
        assert_eq!(
            check_code_verifier(&bad_char, challenge),
            Err(PkceRefusal::Verifier)
        );
        assert_eq!(
            check_code_verifier(&"a".repeat(129), challenge),
            Err(PkceRefusal::Verifier)
        );
    }

    #[test]
    fn a_redirect_uri_matches_only_exactly_and_registers_only_over_https_or_loopback() {
        let registered = vec!["https://rp.example/cb".to_owned()];
        assert!(redirect_uri_registered(
            &registered,
            "https://rp.example/cb"
        ));
        for wrong in [
            "https://rp.example/cb/",
            "https://rp.example/cb?x=1",
            "https://rp.example/cb/../evil",
            "https://rp.example/c",
            "https://RP.example/cb",
            "https://rp.example/cbx",
            "",
        ] {
            assert!(!redirect_uri_registered(&registered, wrong), "{wrong}");
        }
        assert_eq!(check_redirect_uri("https://rp.example/cb"), Ok(()));
        assert_eq!(check_redirect_uri("http://127.0.0.1:8000/cb"), Ok(()));
        assert_eq!(check_redirect_uri("http://[::1]:8000/cb"), Ok(()));
        assert_eq!(check_redirect_uri("http://localhost/cb"), Ok(()));
        assert_eq!(
            check_redirect_uri("http://rp.example/cb"),
            Err(RedirectUriRefusal::Scheme)
        );
        assert_eq!(
            check_redirect_uri("http://localhost.evil.example/cb"),
            Err(RedirectUriRefusal::Scheme)
        );
        assert_eq!(
            check_redirect_uri("com.example.app:/cb"),
            Err(RedirectUriRefusal::Malformed)
        );
        assert_eq!(
            check_redirect_uri("https://rp.example/cb#x"),
            Err(RedirectUriRefusal::Fragment)
        );
        assert_eq!(
            check_redirect_uri("https:///cb"),
            Err(RedirectUriRefusal::Malformed)
        );
        assert_eq!(
            check_redirect_uri("https://rp.example/a b"),
            Err(RedirectUriRefusal::Malformed)
        );
    }

    fn proof(now: UnixTime) -> DpopProof {
        DpopProof {
            typ: "dpop+jwt".into(),
            alg: "ES256".into(),
            htm: "GET".into(),
            htu: "https://eid.example/oidc/userinfo".into(),
            iat: now.0,
            jti: "e1j3V_bKic8-LAEB".into(),
            ath: Some(URL_SAFE_NO_PAD.encode(Sha256::digest(b"token-1"))),
            nonce: Some("n-1".into()),
        }
    }

    #[test]
    fn a_dpop_proof_must_name_this_request_be_recent_and_carry_the_token_hash_and_nonce() {
        let now = UnixTime(2_000_000_000);
        let expect = DpopExpectation {
            method: "GET",
            uri: "https://eid.example/oidc/userinfo?x=1",
            access_token: Some("token-1"),
            nonce: Some("n-1"),
        };
        assert_eq!(check_dpop_proof(&proof(now), &expect, now), Ok(()));
        let refused = |change: &dyn Fn(&mut DpopProof)| {
            let mut p = proof(now);
            change(&mut p);
            check_dpop_proof(&p, &expect, now).unwrap_err()
        };
        assert_eq!(refused(&|p| p.typ = "JWT".into()), DpopRefusal::Type);
        assert_eq!(refused(&|p| p.alg = "HS256".into()), DpopRefusal::Algorithm);
        assert_eq!(refused(&|p| p.alg = "none".into()), DpopRefusal::Algorithm);
        assert_eq!(refused(&|p| p.htm = "POST".into()), DpopRefusal::Method);
        assert_eq!(
            refused(&|p| p.htu = "https://eid.example/oidc/token".into()),
            DpopRefusal::Uri
        );
        assert_eq!(
            refused(&|p| p.htu = "https://eid.example/oidc/userinfo?x=1".into()),
            DpopRefusal::Uri
        );
        assert_eq!(refused(&|p| p.iat = now.0 - 61), DpopRefusal::Time);
        assert_eq!(refused(&|p| p.iat = now.0 + 61), DpopRefusal::Time);
        assert_eq!(refused(&|p| p.jti = String::new()), DpopRefusal::Identifier);
        assert_eq!(refused(&|p| p.ath = None), DpopRefusal::TokenHash);
        assert_eq!(
            refused(&|p| p.ath = Some(URL_SAFE_NO_PAD.encode(Sha256::digest(b"token-2")))),
            DpopRefusal::TokenHash
        );
        assert_eq!(refused(&|p| p.nonce = None), DpopRefusal::Nonce);
        assert_eq!(
            refused(&|p| p.nonce = Some("n-0".into())),
            DpopRefusal::Nonce
        );
        // At the token endpoint: no access token, no nonce asked.
        let token_endpoint = DpopExpectation {
            method: "POST",
            uri: "https://eid.example/oidc/token",
            access_token: None,
            nonce: None,
        };
        let mut p = proof(now);
        p.htm = "POST".into();
        p.htu = "https://eid.example/oidc/token".into();
        assert_eq!(check_dpop_proof(&p, &token_endpoint, now), Ok(()));
        assert!(same_thumbprint("abc", "abc"));
        assert!(!same_thumbprint("abc", "abd"));
    }

    #[test]
    fn a_pairwise_subject_is_stable_per_sector_and_differs_between_sectors_and_secrets() {
        let secret = [7u8; 32];
        let a = pairwise_subject(&secret, "tax.example", "u-1");
        assert_eq!(a, pairwise_subject(&secret, "tax.example", "u-1"));
        assert_ne!(a, pairwise_subject(&secret, "health.example", "u-1"));
        assert_ne!(a, pairwise_subject(&secret, "tax.example", "u-2"));
        assert_ne!(a, pairwise_subject(&[8u8; 32], "tax.example", "u-1"));
        // The sector's length is part of the input: no two (sector, user) pairs run together.
        assert_ne!(
            pairwise_subject(&secret, "ab", "c"),
            pairwise_subject(&secret, "a", "bc")
        );
        assert!(!a.contains("u-1"));
        assert_eq!(a.len(), 43);
    }

    #[test]
    fn scopes_release_their_claims_and_jmbg_only_to_a_client_allowed_it() {
        let basic: Vec<String> = ["openid", "profile", "email"].map(String::from).to_vec();
        let with_jmbg: Vec<String> = ["openid", "profile", "jmbg"].map(String::from).to_vec();
        assert_eq!(
            claims_for("openid profile", &basic),
            Ok(vec![Claim::GivenName, Claim::FamilyName])
        );
        assert_eq!(
            claims_for("email openid email", &basic),
            Ok(vec![Claim::Email, Claim::EmailVerified])
        );
        assert_eq!(
            claims_for("openid jmbg", &basic),
            Err(ScopeRefusal::NotAllowed("jmbg".into()))
        );
        assert_eq!(claims_for("openid jmbg", &with_jmbg), Ok(vec![Claim::Jmbg]));
        assert_eq!(claims_for("profile", &basic), Err(ScopeRefusal::NoOpenId));
        assert_eq!(
            claims_for("openid phone", &basic),
            Err(ScopeRefusal::NotAllowed("phone".into()))
        );
        assert_eq!(Claim::Jmbg.name(), "jmbg");
    }

    #[test]
    fn a_registration_can_authenticate_as_its_profile_asks() {
        let client = |profile, jwks: Option<&str>, ciba| ClientRecord {
            client_id: "c-1".into(),
            name: "Пореска управа".into(),
            profile,
            redirect_uris: vec!["https://rp.example/cb".into()],
            jwks: jwks.map(str::to_owned),
            secret_hash: None,
            scopes: vec!["profile".into()],
            allow_jmbg: false,
            subject: SubjectType::Pairwise,
            backchannel_logout_uri: None,
            post_logout_redirect_uris: Vec::new(),
            created_at: UnixTime(0),
            ciba,
            ciba_notification_endpoint: None,
        };
        let jwks = Some(r#"{"keys":[]}"#);
        assert_eq!(
            check_registration(&client(Profile::Fapi2, jwks, false), false),
            Ok(())
        );
        assert_eq!(
            check_registration(&client(Profile::Basic, None, false), true),
            Ok(())
        );
        assert_eq!(
            check_registration(&client(Profile::Basic, None, true), false),
            Ok(())
        );
        for (refused, public) in [
            (client(Profile::Fapi2, None, false), false),
            (client(Profile::Fapi2, jwks, false), true),
            (client(Profile::Basic, jwks, false), true),
            (client(Profile::Basic, None, true), true),
        ] {
            assert!(
                matches!(
                    check_registration(&refused, public),
                    Err(RegistrationRefusal::Authentication(_))
                ),
                "{refused:?} public={public}"
            );
        }
    }

    #[test]
    fn a_ping_mode_client_is_a_ciba_client_with_an_https_or_loopback_notification_endpoint() {
        let client = |ciba, endpoint: Option<&str>| ClientRecord {
            client_id: "c-1".into(),
            name: "Општина Врачар".into(),
            profile: Profile::Basic,
            redirect_uris: vec!["https://rp.example/cb".into()],
            jwks: None,
            secret_hash: Some("00".into()),
            scopes: Vec::new(),
            allow_jmbg: false,
            subject: SubjectType::Pairwise,
            backchannel_logout_uri: None,
            post_logout_redirect_uris: Vec::new(),
            created_at: UnixTime(0),
            ciba,
            ciba_notification_endpoint: endpoint.map(str::to_owned),
        };
        for (endpoint, mode) in [
            (None, "poll"),
            (Some("https://counter.example/ciba"), "ping"),
            (Some("http://127.0.0.1:8080/ciba"), "ping"),
        ] {
            let registered = client(true, endpoint);
            assert_eq!(
                check_registration(&registered, false),
                Ok(()),
                "{endpoint:?}"
            );
            assert_eq!(registered.ciba_delivery_mode(), Some(mode));
        }
        assert!(matches!(
            check_registration(&client(true, Some("http://counter.example/ciba")), false),
            Err(RegistrationRefusal::RedirectUri(_))
        ));
        assert_eq!(
            check_registration(&client(false, Some("https://counter.example/ciba")), false),
            Err(RegistrationRefusal::NotificationWithoutCiba)
        );
        assert_eq!(client(false, None).ciba_delivery_mode(), None);
        // A client stored before ping mode still loads, as a poll-mode client; a poll-mode
        // client is stored as before.
        let mut stored = serde_json::to_value(client(true, None)).unwrap();
        assert!(stored.get("ciba_notification_endpoint").is_none());
        if let Some(map) = stored.as_object_mut() {
            map.remove("ciba");
        }
        let old: ClientRecord = serde_json::from_value(stored).unwrap();
        assert_eq!(old.ciba_delivery_mode(), None);
        assert_eq!(old.ciba_notification_endpoint, None);
    }

    #[test]
    fn a_ciba_binding_names_its_request() {
        assert_eq!(ciba_of_binding(&ciba_binding("ab12")), Some("ab12"));
        assert_eq!(ciba_of_binding("a-browser-session-hash"), None);
    }

    #[test]
    fn authorization_details_are_one_transaction_of_short_display_text() {
        let details = |entries: &str| parse_authorization_details(entries);
        let payment = "Плаћање 1.200,00 RSD Републичком фонду";
        let entry = |text: &str| {
            serde_json::json!([{ "type": "eidportal_transaction", "text": text }]).to_string()
        };
        let parsed = details(&entry(payment)).unwrap();
        assert_eq!(parsed.text, payment);
        assert_eq!(
            parsed.authorization_details(),
            serde_json::json!([{ "type": "eidportal_transaction", "text": payment }])
        );
        assert_eq!(
            details(&entry(&"ш".repeat(200))).map(|d| d.text.chars().count()),
            Ok(200)
        );
        for (refused, why) in [
            (entry(&"ш".repeat(201)), AuthorizationDetailsRefusal::Text),
            (entry("Плаћање\u{7}"), AuthorizationDetailsRefusal::Text),
            (entry("\u{1b}[2AПлаћање"), AuthorizationDetailsRefusal::Text),
            (entry("Плаћање\n1.200"), AuthorizationDetailsRefusal::Text),
            (entry("Плаћање \u{202E}DSR 002.1"), AuthorizationDetailsRefusal::Text),
            (entry("Плаћање \u{2066}1.200"), AuthorizationDetailsRefusal::Text),
            (entry("zero\u{200B}width"), AuthorizationDetailsRefusal::Text),
            (entry("   "), AuthorizationDetailsRefusal::Text),
            (
                r#"[{"type":"eidportal_transaction","text":12}]"#.into(),
                AuthorizationDetailsRefusal::Text,
            ),
            (
                r#"[{"type":"eidportal_transaction"}]"#.into(),
                AuthorizationDetailsRefusal::Text,
            ),
            (
                r#"[{"type":"payment_initiation","text":"x"}]"#.into(),
                AuthorizationDetailsRefusal::Type,
            ),
            (r#"[{"text":"x"}]"#.into(), AuthorizationDetailsRefusal::Type),
            (
                r#"[{"type":"eidportal_transaction","text":"a"},{"type":"eidportal_transaction","text":"b"}]"#
                    .into(),
                AuthorizationDetailsRefusal::Count,
            ),
            ("[]".into(), AuthorizationDetailsRefusal::Count),
            (
                r#"[{"type":"eidportal_transaction","text":"x","amount":"1"}]"#.into(),
                AuthorizationDetailsRefusal::Field,
            ),
            (
                r#"{"type":"eidportal_transaction","text":"x"}"#.into(),
                AuthorizationDetailsRefusal::Malformed,
            ),
            (r#"["x"]"#.into(), AuthorizationDetailsRefusal::Malformed),
            ("[{".into(), AuthorizationDetailsRefusal::Malformed),
            (
                format!("[{}]", " ".repeat(AUTHORIZATION_DETAILS_MAX_BYTES)),
                AuthorizationDetailsRefusal::Malformed,
            ),
        ] {
            assert_eq!(details(&refused), Err(why), "{refused:?}");
        }
    }

    #[test]
    fn a_transaction_is_approved_only_by_a_fresh_login_that_showed_its_exact_text() {
        let details = TransactionDetails {
            text: "Плаћање 1.200,00 RSD Републичком фонду".into(),
        };
        let now = UnixTime(2_000_000_000);
        let login = ApprovingLogin {
            consumed_login: true,
            same_account: true,
            service: "Пореска управа",
            message: Some("Плаћање 1.200,00 RSD Републичком фонду"),
            approved_at: Some(UnixTime(now.0 - TRANSACTION_APPROVAL_WINDOW)),
        };
        assert!(transaction_approved(
            &details,
            "Пореска управа",
            &login,
            now
        ));
        let refused = |change: &dyn Fn(&mut ApprovingLogin<'_>)| {
            let mut other = login.clone();
            change(&mut other);
            !transaction_approved(&details, "Пореска управа", &other, now)
        };
        assert!(refused(&|l| l.consumed_login = false));
        assert!(refused(&|l| l.same_account = false));
        assert!(refused(&|l| l.service = "Банка Интеса"));
        assert!(refused(&|l| l.message = None));
        assert!(refused(&|l| l.message = Some("Плаћање 1.200,00 RSD")));
        assert!(refused(
            &|l| l.message = Some("Плаћање 12.000,00 RSD Републичком фонду")
        ));
        assert!(refused(&|l| l.approved_at = None));
        assert!(refused(
            &|l| l.approved_at = Some(UnixTime(now.0 - TRANSACTION_APPROVAL_WINDOW - 1))
        ));
        assert!(refused(&|l| l.approved_at = Some(UnixTime(now.0 + 1))));
    }

    #[test]
    fn approval_texts_are_short_display_text_only() {
        assert!(approval_text_ok(
            "Плаћање 1.200,00 RSD Републичком фонду",
            TRANSACTION_TEXT_MAX
        ));
        assert!(approval_text_ok(
            "Шалтер 3, пошта Нови Сад",
            BINDING_MESSAGE_MAX
        ));
        assert!(!approval_text_ok(&"ш".repeat(41), BINDING_MESSAGE_MAX));
        assert!(approval_text_ok(&"ш".repeat(40), BINDING_MESSAGE_MAX));
        assert!(!approval_text_ok(
            "Плаћање\u{202E}DSR",
            TRANSACTION_TEXT_MAX
        ));
        assert!(!approval_text_ok("line\nbreak", TRANSACTION_TEXT_MAX));
        assert!(!approval_text_ok("   ", TRANSACTION_TEXT_MAX));
        assert!(!approval_text_ok("zero\u{200B}width", TRANSACTION_TEXT_MAX));
    }
}
