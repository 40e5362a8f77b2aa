//! OAuth 2.0 for the CSC API (RFC 6749 §4.1, authorisation code with PKCE S256, RFC 7636): a
//! user logged in with ConsentID allows a client on their own computer (a loopback redirect
//! URI, RFC 8252) to use the API on their behalf; the client exchanges the one-minute code
//! once for a bearer token (scope `service`). Each signature still needs its own approval in
//! ConsentID: the token alone signs nothing.

use domain::records::{ApiTokenRecord, OAuthCodeRecord};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use csc::{OAuthAuthorize, OAuthToken};
use store::{AuditLog as _, SigningStore as _, Transaction as _};

use crate::login::Session;
use crate::signing::{ApiToken, SigningDb, API_TOKEN_LIFETIME};
use crate::{Error, Signing};

/// Seconds an authorisation code lives.
pub const CODE_LIFETIME: i64 = 60;

/// Why a code or token is refused (RFC 6749 §5.2 codes). Carried by [`Error::OAuth`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OAuthRefusal {
    /// Allowing a client needs a ConsentID login.
    #[error("a ConsentID login is needed")]
    LoginRequired,
    /// The code is unknown, used, expired, or was issued for another client, redirect URI or
    /// verifier.
    #[error("invalid_grant: {0}")]
    InvalidGrant(&'static str),
}

/// Seconds an authorisation request waits for the user's login ([`Signing::oauth_remember`]).
pub const PENDING_LIFETIME: i64 = 600;
/// The longest authorisation query remembered; a longer one is not (the login then ends on the
/// account page, and the client starts again).
pub const MAX_PENDING_QUERY: usize = 4096;

/// The random id of an authorisation request waiting for a login: what the browser's `next`
/// cookie holds (base64url, so nothing in it can end the cookie's value). Its `Debug` is
/// redacted: it gives the request back once.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingAuthorization(pub String);

impl std::fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingAuthorization([redacted])")
    }
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl<D: SigningDb> Signing<D> {
    /// The user allowed the client: a one-minute, single-use code for its redirect URI.
    pub async fn oauth_allow(
        &self,
        session: &Session,
        request: &OAuthAuthorize,
    ) -> Result<String, Error> {
        let user = session.user.clone().ok_or(OAuthRefusal::LoginRequired)?;
        // A ConsentID login implies a proofed account (devices are activated only for one);
        // the assurance is checked as well, so that no token ever reaches a basic account.
        if !session.by_consentid() || user.assurance != domain::AssuranceLevel::High {
            return Err(OAuthRefusal::LoginRequired.into());
        }
        let now = self.clock.now();
        let code = proto::b64(&rand::random::<[u8; 32]>());
        let mut tx = self.store.begin().await?;
        tx.insert_oauth_code(&OAuthCodeRecord {
            code_hash: sha256_hex(&code),
            user_id: user.id.clone(),
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            created_at: now,
            expires_at: now.plus_seconds(CODE_LIFETIME),
        })
        .await?;
        tx.audit(
            now,
            &format!("user:{}", user.id),
            "oauth.allowed",
            json!({ "client": request.client_id, "redirect_uri": request.redirect_uri }),
        )
        .await?;
        tx.commit().await?;
        Ok(code)
    }

    /// `GET /oauth2/authorize` before the login: keeps the request's query (already
    /// validated by the caller) for [`PENDING_LIFETIME`], under a random id, the only thing
    /// the browser is given. `None` for a query longer than [`MAX_PENDING_QUERY`]. Not audited:
    /// it is an anonymous visitor's page view, and allows nothing.
    pub async fn oauth_remember(&self, query: &str) -> Result<Option<PendingAuthorization>, Error> {
        if query.len() > MAX_PENDING_QUERY {
            return Ok(None);
        }
        let now = self.clock.now();
        let id = PendingAuthorization(proto::b64(&rand::random::<[u8; 32]>()));
        let mut tx = self.store.begin().await?;
        tx.insert_oauth_pending(
            &sha256_hex(&id.0),
            query,
            now,
            now.plus_seconds(PENDING_LIFETIME),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    /// Before the login: the request kept under `id`, left in place (the login names the
    /// service that asks); `None` for an unknown or expired id.
    pub async fn oauth_peek(&self, id: &PendingAuthorization) -> Result<Option<String>, Error> {
        Ok(self
            .store
            .oauth_pending(&sha256_hex(&id.0), self.clock.now())
            .await?)
    }

    /// After the login: the query kept under `id`, once, within [`PENDING_LIFETIME`]; `None`
    /// for an unknown, taken or expired id.
    pub async fn oauth_recall(&self, id: &PendingAuthorization) -> Result<Option<String>, Error> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let query = tx.take_oauth_pending(&sha256_hex(&id.0), now).await?;
        tx.commit().await?;
        Ok(query)
    }

    /// Exchanges a code for a bearer token, once: the same client and redirect URI, within a
    /// minute, and the verifier whose SHA-256 is the challenge.
    pub async fn oauth_token(&self, request: &OAuthToken) -> Result<(ApiToken, i64), Error> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        // Spent even when the rest does not match: a code is tried once.
        let Some(code) = tx.use_oauth_code(&sha256_hex(&request.code), now).await? else {
            return Err(OAuthRefusal::InvalidGrant("the code is unknown or was used").into());
        };
        let refusal = if now >= code.expires_at {
            Some("the code has expired")
        } else if code.client_id != request.client_id || code.redirect_uri != request.redirect_uri {
            Some("the code was issued to another client or redirect URI")
        } else if csc::pkce_challenge(&Sha256::digest(request.code_verifier.as_bytes()))
            != code.code_challenge
        {
            Some("the code verifier does not match the challenge")
        } else {
            None
        };
        let actor = format!("user:{}", code.user_id);
        if let Some(reason) = refusal {
            tx.audit(
                now,
                &actor,
                "oauth.refused",
                json!({ "client": request.client_id, "reason": reason }),
            )
            .await?;
            tx.commit().await?;
            return Err(OAuthRefusal::InvalidGrant(reason).into());
        }
        let token = ApiToken(proto::b64(&rand::random::<[u8; 32]>()));
        tx.insert_api_token(&ApiTokenRecord {
            token_hash: token.hash(),
            user_id: code.user_id.clone(),
            created_at: now,
            expires_at: now.plus_seconds(API_TOKEN_LIFETIME),
            revoked_at: None,
            client_id: Some(request.client_id.clone()),
        })
        .await?;
        tx.audit(
            now,
            &actor,
            "api.login",
            json!({ "method": "oauth2code", "client": request.client_id }),
        )
        .await?;
        tx.commit().await?;
        Ok((token, API_TOKEN_LIFETIME))
    }
}
