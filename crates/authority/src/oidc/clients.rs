//! Registered clients: registration by the operator, and client authentication at the token,
//! PAR, CIBA, revocation and introspection endpoints.

use super::*;

/// The `client_assertion_type` of `private_key_jwt` (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

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
    /// CIBA in ping mode: where its notifications go (with `ciba` only).
    pub ciba_notification_endpoint: Option<String>,
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

impl<D: OidcDb> Oidc<D> {
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
            ciba_notification_endpoint: registration.ciba_notification_endpoint,
        };
        check_registration(&client, registration.public)
            .map_err(|e| OidcRefusal::InvalidRequest(e.to_string()))?;
        let mut tx = self.store.begin().await?;
        tx.insert_oidc_client(&client).await?;
        tx.audit(
            client.created_at,
            "operator",
            "oidc.client.added",
            json!({
                "client_id": client.client_id,
                "name": client.name,
                "profile": client.profile.as_str(),
                "ciba": client.ciba_delivery_mode(),
            }),
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
    pub(super) async fn authenticate(
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
                // RFC 6749 §2.3: one way of authenticating per request.
                if credentials.assertion.is_some() || credentials.assertion_type.is_some() {
                    return Err(refuse("two ways of authenticating"));
                }
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
}
