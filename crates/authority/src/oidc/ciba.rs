//! CIBA (OpenID Connect CIBA Core 1.0): a service asks from its own server, the citizen
//! approves on the phone, and the service fetches the tokens at the token endpoint: by polling
//! (poll mode), or once it is told that the answer is ready (ping mode, CIBA Core §10.2: the
//! notification is sent by [`Oidc::ciba_ping_worker`]). Requests are limited per service and
//! per citizen, and a citizen has at most one open request per service.

use super::*;

/// The grant type of CIBA's token requests.
pub const CIBA_GRANT: &str = "urn:openid:params:grant-type:ciba";

/// A CIBA authentication request (CIBA Core §7.1).
#[derive(Debug, Clone, Default)]
pub struct BackchannelRequest {
    /// Space-separated scopes, `openid` among them.
    pub scope: Option<String>,
    /// The citizen's e-mail address.
    pub login_hint: Option<String>,
    /// Or one of our ID tokens issued to the service: its session names the citizen.
    pub id_token_hint: Option<String>,
    /// A hint we do not take (`login_hint_token`): refused if given.
    pub other_hint: bool,
    /// The text the service shows the citizen, shown on the phone too.
    pub binding_message: Option<String>,
    /// Levels asked.
    pub acr_values: Option<String>,
    /// Ping mode: the client's bearer token for our notification (CIBA Core §7.1).
    pub client_notification_token: Option<String>,
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

impl<D: OidcDb> Oidc<D> {
    /// The e-mail address of the citizen an `id_token_hint` names: one of our ID tokens
    /// (signed by any of our keys, expired or not) issued to `client`, whose session's tokens
    /// are still kept (a day after they end). The service holds the token, so the answer tells
    /// it nothing new of who has an account.
    async fn hinted_address(
        &self,
        tx: &mut D::Tx,
        client: &ClientRecord,
        token: &str,
    ) -> Result<String, Error> {
        let invalid = |why: &str| Error::from(OidcRefusal::InvalidRequest(why.to_owned()));
        let claims = self
            .own_id_token(token)?
            .filter(|claims| claims.aud == client.client_id)
            .ok_or_else(|| invalid("id_token_hint is not an ID token of ours issued to you"))?;
        let user = match &claims.sid {
            Some(sid) => tx.oidc_user_of_session(&client.client_id, sid).await?,
            None => None,
        };
        let account = match user {
            Some(user) => tx.user(&user).await?,
            None => None,
        };
        account
            .map(|account| account.email)
            .ok_or_else(|| invalid("id_token_hint's login is no longer known: send login_hint"))
    }

    /// `POST /oidc/bc-authorize` (CIBA Core §7): a service asks, from its own server, for
    /// the citizen named by `login_hint` to log in; the citizen approves on the phone, which
    /// shows the service's registered name and the binding message. An address no account has
    /// gets the same answers, and its request simply expires. At most one open request per
    /// citizen and service; at most [`domain::RateLimit::CIBA_PER_CLIENT`] requests per service
    /// and [`domain::RateLimit::CIBA_PER_USER`] per citizen (counted by the address asked for,
    /// whether an account has it or not). A ping-mode client gives the token its notification
    /// will carry.
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
        let invalid = |why: &str| Error::from(OidcRefusal::InvalidRequest(why.to_owned()));
        if request.other_hint {
            return Err(invalid(
                "login_hint_token is not taken: send login_hint or id_token_hint",
            ));
        }
        // The citizen: by the e-mail address, or by an ID token of ours the service holds.
        let hint = match (&request.login_hint, &request.id_token_hint) {
            (Some(hint), None) => crate::ra::accounts::normalise_email(hint)
                .map_err(|_| invalid("login_hint must be an e-mail address"))?,
            (None, Some(token)) => self.hinted_address(&mut tx, &client, token).await?,
            _ => return Err(invalid("one hint: login_hint (an e-mail) or id_token_hint")),
        };
        if let Some(message) = &request.binding_message {
            if !domain::oidc::approval_text_ok(message, domain::oidc::BINDING_MESSAGE_MAX) {
                return Err(OidcRefusal::InvalidBindingMessage.into());
            }
        }
        // CIBA Core §7.1: required of a ping-mode client, sent back as it is.
        let ping_token = match client.ciba_ping_endpoint() {
            Some(_) => Some(
                request
                    .client_notification_token
                    .as_deref()
                    .and_then(NotificationToken::parse)
                    .ok_or_else(|| {
                        OidcRefusal::InvalidRequest(format!(
                            "client_notification_token: required in ping mode, at most {} \
                             characters of an RFC 6750 bearer token",
                            domain::oidc::ping::NOTIFICATION_TOKEN_MAX
                        ))
                    })?,
            ),
            None => None,
        };
        // ConsentID reaches `high`: any level asked is met.
        let hint_hash = sha256_hex(&hint);
        // The limits, counted in this transaction (a refused request counts nothing). The
        // citizen's is by the address asked for, before looking for its account: an address no
        // account has is limited the same, so the answers tell nothing of who has an account.
        if !crate::within_rate_limit(
            &mut tx,
            &self.settings,
            now,
            &format!("ciba_client:{}", client.client_id),
            domain::RateLimit::CIBA_PER_CLIENT,
        )
        .await?
        {
            return Err(OidcRefusal::SlowDown.into());
        }
        if !crate::within_rate_limit(
            &mut tx,
            &self.settings,
            now,
            &format!("ciba_user:{hint_hash}"),
            domain::RateLimit::CIBA_PER_USER,
        )
        .await?
        {
            return Err(OidcRefusal::InvalidRequest(
                "too many requests for this citizen: ask again later".into(),
            )
            .into());
        }
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
                        &domain::oidc::ciba_binding(&id_hash),
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
                    session_expires_at: None,
                    transaction: None,
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
            ping: ping_token.map(|token| CibaPing {
                auth_req_id: id.clone(),
                token,
            }),
        })
        .await?;
        tx.audit(
            now,
            "system",
            "oidc.ciba.requested",
            json!({
                "client_id": client.client_id,
                "user": user.map(|u| u.id),
                "mode": client.ciba_delivery_mode(),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(BackchannelStarted {
            auth_req_id: id,
            expires_in: expires_at.0 - now.0,
            interval: CIBA_INTERVAL,
        })
    }

    /// CIBA's token request (CIBA Core §10.1, §11): pending, too fast, refused, ended, or the
    /// tokens once the citizen approved. A ping-mode client told that the answer is ready gets
    /// it at once, however recently it polled: its notification is the signal to come (§10.2),
    /// and an answer is fetched once.
    pub(super) async fn ciba_token(
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
        let answered = match &ciba.txn_id {
            Some(txn_id) => self.store.transaction(txn_id).await?,
            None => None,
        };
        let ready = answered.as_ref().is_some_and(|txn| {
            domain::login::effective_status(txn.status, txn.expires_at, now)
                != TransactionStatus::Pending
        });
        let pinged = ready && client.ciba_ping_endpoint().is_some();
        if now < ciba.next_poll_at && !pinged {
            // CIBA Core §11: each poll too early adds to the wait.
            tx.poll_oidc_ciba(&ciba.id_hash, ciba.next_poll_at.plus_seconds(CIBA_INTERVAL))
                .await?;
            tx.commit().await?;
            return Err(OidcRefusal::SlowDown.into());
        }
        tx.poll_oidc_ciba(&ciba.id_hash, now.plus_seconds(CIBA_INTERVAL))
            .await?;
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
        let details = json!({ "client_id": client.client_id, "scope": grant.scope, "ciba": true });
        self.new_grant_tokens(tx, client, &grant, None, now, details)
            .await
    }
}
