//! Logout: RP-initiated logout, and the back-channel logout queue and its delivery.

use super::*;

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

/// How far back a starting instance looks for expired portal sessions whose services were
/// not told yet: an hour, well inside the day that settled logouts are kept (so a logout is
/// never queued twice).
pub(super) const EXPIRY_LOOKBACK: i64 = 3600;

/// When to try a back-channel logout again after a failure: 30 s, doubling up to an hour,
/// for a day; `None`: give up.
pub(super) fn logout_retry(logout: &LogoutRecord, now: UnixTime) -> Option<UnixTime> {
    let attempts = logout.attempts + 1;
    if attempts >= 12 || now.0 - logout.created_at.0 >= 24 * 3600 {
        return None;
    }
    let wait = (30i64 << attempts.min(7)).min(3600);
    Some(now.plus_seconds(wait))
}

impl<D: OidcDb> Oidc<D> {
    /// Queues the back-channel logouts of the portal sessions that expired since the last look
    /// (at start, [`EXPIRY_LOOKBACK`] back): a session that simply ends is an end its services
    /// are told of, like **Одјава**. Each instance looks; a logout is queued once all the same.
    /// How many were queued.
    pub async fn queue_expired_session_logouts(&self) -> Result<u64, Error> {
        let now = self.clock.now();
        let after = *self
            .expiries_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut tx = self.store.begin().await?;
        let queued = tx
            .queue_oidc_logouts(LogoutScope::ExpiredAfter(after), now)
            .await?;
        tx.commit().await?;
        *self
            .expiries_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = now;
        Ok(queued)
    }

    /// Delivers queued back-channel logouts until `stop`: woken when some are queued (on
    /// PostgreSQL from any instance), and when the next retry is due.
    pub async fn logout_worker(&self, stop: impl std::future::Future<Output = ()>) {
        self.deliver_until(
            stop,
            &Change::Logouts,
            "back-channel logout",
            || self.deliver_due_logouts(),
            || self.store.next_oidc_logout_due(),
        )
        .await;
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
    pub(super) async fn deliver_logout(
        &self,
        logout: &LogoutRecord,
        now: UnixTime,
    ) -> Result<(), String> {
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

    /// The claims of `token` if it is one of our ID tokens (an `id_token_hint`): signed by any
    /// of our keys, a rotated one included; expired or not.
    pub(super) fn own_id_token(&self, token: &str) -> Result<Option<jose::OwnTokenClaims>, Error> {
        let issuer = self.issuer();
        Ok(self
            .key_set()?
            .keys
            .iter()
            .find_map(|(_, key)| jose::verify_own_id_token(token, &key.jwk, &issuer).ok()))
    }

    /// RP-initiated logout (OpenID RP-Initiated Logout 1.0): which service asks (from its
    /// `id_token_hint`, one of our ID tokens, or its `client_id`), and where the browser goes
    /// after the logout: a `post_logout_redirect_uri` registered for that service (with
    /// `state`), else nowhere of the service's.
    pub async fn logout_request(&self, request: &LogoutRequest) -> Result<LogoutPlan, Error> {
        let invalid = |why: &str| Error::from(OidcRefusal::InvalidRequest(why.to_owned()));
        let hinted = match &request.id_token_hint {
            Some(hint) => {
                let claims = self
                    .own_id_token(hint)?
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
}
