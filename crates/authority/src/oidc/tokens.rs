//! The token endpoint (codes, refresh tokens), DPoP proofs and nonces, ID tokens, userinfo,
//! revocation and introspection.

use super::*;

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

impl<D: OidcDb> Oidc<D> {
    /// The DPoP nonce of the minute `at` falls in (RFC 9449 §8): a MAC of the minute, so that
    /// no instance keeps any state for it.
    pub(super) fn dpop_nonce_at(&self, at: UnixTime) -> String {
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
    pub(super) fn dpop_nonce_ok(&self, nonce: &str, now: UnixTime) -> bool {
        [now, now.plus_seconds(-60)]
            .iter()
            .any(|at| constant_time_eq(self.dpop_nonce_at(*at).as_bytes(), nonce.as_bytes()))
    }

    /// The `sub` a client gets for a citizen.
    pub(super) fn subject(&self, client: &ClientRecord, user: &UserId) -> String {
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
    pub(super) async fn check_dpop(
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
    pub(super) async fn token_dpop(
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

    pub(super) async fn exchange_code(
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
        let details = json!({ "client_id": client.client_id, "scope": grant.scope, "dpop": grant.dpop_jkt.is_some() });
        self.new_grant_tokens(tx, client, &grant, Some(code_hash), now, details)
            .await
    }

    /// The end of a new grant (a code exchanged, a CIBA request approved): a token family of
    /// its own, an ID token, the audit entry (`oidc.token`, with `details`), the commit.
    pub(super) async fn new_grant_tokens(
        &self,
        mut tx: D::Tx,
        client: &ClientRecord,
        grant: &Grant,
        code_hash: Option<String>,
        now: UnixTime,
        details: Value,
    ) -> Result<TokenResponse, Error> {
        let family = proto::b64(&rand::random::<[u8; 16]>());
        let mut response = self
            .issue_tokens(&mut tx, grant, code_hash, &family, now)
            .await?;
        response.id_token = Some(self.id_token(client, grant, now)?);
        tx.audit(now, grant.user_id.as_str(), "oidc.token", details)
            .await?;
        tx.commit().await?;
        Ok(response)
    }

    pub(super) async fn refresh(
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

    /// An access token, and a refresh token if `offline_access` was granted, for `grant`.
    pub(super) async fn issue_tokens(
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
        // RFC 9396 §9.2.
        if let Some(approved) = &found.grant.transaction {
            set(
                &mut answer,
                "authorization_details",
                approved.details.authorization_details(),
            );
        }
        Ok(answer)
    }

    pub(super) fn id_token(
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
        // RFC 9396 §7: what the citizen approved, as the service asked for it.
        if let Some(approved) = &grant.transaction {
            set(
                &mut claims,
                "authorization_details",
                approved.details.authorization_details(),
            );
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
}
