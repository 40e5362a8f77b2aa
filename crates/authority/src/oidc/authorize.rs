//! The authorization endpoint: pushed requests (RFC 9126), checking a request, the login and
//! consent steps, codes, and the consents a citizen keeps or withdraws.

use super::*;

/// The prefix of a pushed request's `request_uri` (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

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
    /// RFC 9396: a JSON array with one `eidportal_transaction`, the text the citizen approves
    /// in ConsentID (`domain::oidc::parse_authorization_details`).
    pub authorization_details: Option<String>,
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
    /// The transaction it asks the citizen to approve (its `authorization_details`), if any.
    pub transaction: Option<TransactionDetails>,
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

/// The service a login waits for, as the phone is to show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLogin {
    /// The service's registered name.
    pub service: String,
    /// The transaction text it asks the citizen to approve, if any.
    pub transaction: Option<String>,
}

/// What a session's login says of a request's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TransactionCheck {
    /// The request has none.
    NoTransaction,
    /// The session's login did not approve it (or no longer may): log in again.
    NotApproved,
    /// Approved by the session's login.
    Approved(ApprovedTransaction),
}

/// How an authorization request reached us.
pub(super) enum Came {
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

impl<D: OidcDb> Oidc<D> {
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
                "invalid_authorization_details" => {
                    OidcRefusal::InvalidAuthorizationDetails(error.description)
                }
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
    pub(super) fn validate(
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
        // RFC 9396 §5: what the phone cannot show exactly is refused, never cut.
        let transaction = params
            .authorization_details
            .as_deref()
            .map(parse_authorization_details)
            .transpose()
            .map_err(|e| refuse("invalid_authorization_details", e.to_string()))?;
        Ok(AuthorizationRequest {
            client: client.clone(),
            params: params.clone(),
            redirect_uri,
            claims,
            transaction,
            request_hash: match came {
                Came::Pushed(hash) => Some(hash),
                Came::Directly | Came::Pushing => None,
            },
        })
    }

    pub(super) fn response(
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

    /// The service whose authorization request waits at `path` (what the portal kept for
    /// after the login), and the transaction text it asks to approve: the ConsentID login
    /// request names the one and shows the other. A pushed request is read, not spent.
    pub async fn login_waiting_at(&self, path: &str) -> Option<ServiceLogin> {
        let query = path.strip_prefix("/oidc/authorize?")?;
        let params: AuthorizationParams = serde_urlencoded::from_str(query).ok()?;
        let request = self.authorization_request(&params).await.ok()?;
        Some(ServiceLogin {
            service: request.client.name,
            transaction: request.transaction.map(|t| t.text),
        })
    }

    /// Whether the session's login approved `request`'s transaction: its own ConsentID login
    /// request (by id, never found by its text) showed exactly this text, named this service,
    /// and was approved for this account within `TRANSACTION_APPROVAL_WINDOW`. (That it makes
    /// one code only is `issue_code`'s to ensure, in the code's transaction.)
    pub(super) async fn approved_transaction(
        &self,
        session: &Session,
        request: &AuthorizationRequest,
        now: UnixTime,
    ) -> Result<TransactionCheck, Error> {
        let Some(details) = &request.transaction else {
            return Ok(TransactionCheck::NoTransaction);
        };
        let refused = Ok(TransactionCheck::NotApproved);
        let (Some(user), Some(txn_id)) = (&session.user, session.login_txn()) else {
            return refused;
        };
        let Some(txn) = self.store.transaction(txn_id).await? else {
            return refused;
        };
        // The payload is what the server signed and the device signed the hash of
        // (`proto::crypto::approval_message`): what the citizen saw.
        let Ok(shown) = serde_json::from_slice::<proto::app::RequestPayload>(&txn.payload) else {
            return refused;
        };
        let login = ApprovingLogin {
            consumed_login: txn.kind == proto::app::RequestKind::Login.as_str()
                && txn.status == TransactionStatus::Consumed,
            same_account: txn.user_id.as_ref() == Some(&user.id),
            service: &shown.rp.name,
            message: shown.message.as_deref(),
            approved_at: txn.decided_at,
        };
        if !transaction_approved(details, &request.client.name, &login, now) {
            return refused;
        }
        Ok(TransactionCheck::Approved(ApprovedTransaction {
            details: details.clone(),
            txn_id: txn.id,
        }))
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
        // A transaction is approved by a login of its own, whatever session the citizen has:
        // the phone shows its text and signs it (RFC 9396; as prompt=login).
        if let TransactionCheck::NotApproved =
            self.approved_transaction(session, request, now).await?
        {
            if prompts.contains(&"none") {
                return Ok(AuthorizeStep::Respond(self.error_response(
                    request,
                    "login_required",
                    "the transaction is to be approved in ConsentID",
                )));
            }
            return Ok(AuthorizeStep::Login);
        }
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
    pub(super) async fn spend_pushed(
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

    pub(super) fn error_response(
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
        if let TransactionCheck::NotApproved =
            self.approved_transaction(session, request, now).await?
        {
            return Ok(self.error_response(
                request,
                "access_denied",
                "the transaction was not approved in ConsentID",
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

    pub(super) async fn issue_code(
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
        // The transaction's approval, checked again and spent in this transaction: one
        // approval makes one code.
        let transaction = match self.approved_transaction(session, request, now).await? {
            TransactionCheck::NoTransaction => None,
            TransactionCheck::NotApproved => {
                return Ok(self.error_response(
                    request,
                    "access_denied",
                    "the transaction was not approved in ConsentID",
                ))
            }
            TransactionCheck::Approved(approved) => {
                let key = sha256_hex(&format!("transaction\0{}", approved.txn_id));
                let keep_until = now.plus_seconds(2 * TRANSACTION_APPROVAL_WINDOW);
                if !tx.first_sight(&key, keep_until).await? {
                    return Ok(self.error_response(
                        request,
                        "access_denied",
                        "this approval was used for another request",
                    ));
                }
                Some(approved)
            }
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
            session_expires_at: Some(session.expires_at()),
            transaction,
        };
        tx.insert_oidc_code(&sha256_hex(&code), &grant, now.plus_seconds(CODE_LIFETIME))
            .await?;
        let mut details = json!({ "client_id": grant.client_id, "scope": grant.scope, "acr": method.acr().uri() });
        if let Some(approved) = &grant.transaction {
            // The evidence: the ConsentID request's stored approval (the signed message, which
            // covers the payload with the text, and the device's signature over it; audited
            // as `transaction.approved` with the same txn).
            set(
                &mut details,
                "authorization_details",
                approved.details.authorization_details(),
            );
            set(&mut details, "approval_txn", json!(approved.txn_id));
        }
        tx.audit(now, user.id.as_str(), "oidc.authorized", details)
            .await?;
        Ok(self.response(
            &request.redirect_uri,
            &request.params,
            vec![("code".into(), code)],
        ))
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
