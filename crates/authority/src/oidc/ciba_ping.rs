//! CIBA's ping mode (OpenID Connect CIBA Core 1.0 §10.2): once a ping-mode request is answered
//! (or ends unanswered), its client's notification endpoint gets `{"auth_req_id": …}` with
//! `Authorization: Bearer <client_notification_token>`, and the client fetches the answer at
//! the token endpoint. The notification owed is kept with the request in the database (made
//! due by the phone's answer, or by the request's end), so none is lost when a server stops;
//! a worker woken by the store's changes sends it, retried with backoff and audited.

use super::*;

/// How long one attempt holds a notification: another worker leaves it alone meanwhile, and
/// one that stopped half-way is tried again after it.
const ATTEMPT_LEASE: i64 = 60;

impl<D: OidcDb> Oidc<D> {
    /// Delivers ping-mode notifications until `stop`: woken when a request is answered (on
    /// PostgreSQL in any instance), and when the next one falls due (a request's end, a retry).
    pub async fn ciba_ping_worker(&self, stop: impl std::future::Future<Output = ()>) {
        self.deliver_until(
            stop,
            &Change::CibaPings,
            "CIBA ping",
            || self.deliver_due_pings(),
            || self.store.next_oidc_ping_due(),
        )
        .await;
    }

    /// Delivers the ping-mode notifications due now: how many were delivered.
    ///
    /// For each: 1. take it for one attempt (so that two workers do not both send it, and a
    /// worker that stops half-way leaves it due again shortly); 2. send it; 3. record the
    /// outcome (delivered, retried later, or given up), and audit a delivery or a give-up.
    pub async fn deliver_due_pings(&self) -> Result<usize, Error> {
        let now = self.clock.now();
        let mut delivered = 0;
        for due in self.store.due_oidc_pings(now, 50).await? {
            if !self
                .store
                .claim_oidc_ping(&due.id_hash, now, now.plus_seconds(ATTEMPT_LEASE))
                .await?
            {
                continue;
            }
            let outcome = self.deliver_ping(&due).await;
            let attempts = due.attempts + 1;
            let record = match &outcome {
                Ok(()) => Ok(()),
                Err(error) => Err((
                    domain::oidc::ping::ping_retry(attempts, due.expires_at, now),
                    error.clone(),
                )),
            };
            let event = match &record {
                Ok(()) => Some("oidc.ciba.ping_delivered"),
                Err((None, _)) => Some("oidc.ciba.ping_given_up"),
                Err((Some(_), _)) => None,
            };
            self.store
                .record_oidc_ping(&due.id_hash, now, record)
                .await?;
            if let Some(event) = event {
                let mut tx = self.store.begin().await?;
                tx.audit(
                    now,
                    "system",
                    event,
                    json!({
                        "client_id": due.client_id,
                        "attempts": attempts,
                        "error": outcome.err(),
                    }),
                )
                .await?;
                tx.commit().await?;
            }
            if event == Some("oidc.ciba.ping_delivered") {
                delivered += 1;
            }
        }
        Ok(delivered)
    }

    /// One notification (CIBA Core §10.2) POSTed to the client's registered endpoint.
    async fn deliver_ping(&self, due: &CibaPingDue) -> Result<(), String> {
        let client = self
            .store
            .oidc_client(&due.client_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the client was removed")?;
        let endpoint = client
            .ciba_ping_endpoint()
            .ok_or("the client has no CIBA notification endpoint")?;
        let body = json!({ "auth_req_id": due.ping.auth_req_id }).to_string();
        crate::login::push::post_to_operator_uri(
            endpoint,
            "application/json",
            Some(due.ping.token.as_str()),
            body,
        )
        .await
    }
}
