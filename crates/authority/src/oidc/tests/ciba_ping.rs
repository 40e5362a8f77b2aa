//! CIBA in ping mode (CIBA Core §10.2): a ping-mode counter gives a notification token with
//! each request; once the citizen answers (or the request ends unanswered) its endpoint is
//! told the `auth_req_id` with that token as a bearer credential, once, retried after a
//! failure, and the counter fetches the answer at once. Also the limits on CIBA requests per
//! service and per citizen, the same for an address no account has.

use serde_json::Value;

use domain::login::TRANSACTION_LIFETIME;
use domain::oidc::Profile;
use domain::RateLimit;
use proto::app::ResponseOutcome;

use super::ciba::{ask, deny_next, poll};
use super::{citizen, receiver, refusal, registration, secret, verify_id_token};
use crate::oidc::{BackchannelRequest, ClientRegistration};
use crate::test_support::{authorities, TestAuthority};

/// A `basic` CIBA client in ping mode notified at `endpoint`: its id and secret.
async fn ping_counter(t: &TestAuthority, endpoint: &str) -> (String, String) {
    let (client, client_secret) = t
        .oidc
        .register_client(ClientRegistration {
            ciba: true,
            ciba_notification_endpoint: Some(endpoint.to_owned()),
            name: "Општина Врачар, шалтер 2".into(),
            ..registration(Profile::Basic, &["profile"])
        })
        .await
        .unwrap();
    assert_eq!(client.ciba_delivery_mode(), Some("ping"));
    (client.client_id, client_secret.unwrap())
}

fn ask_ping(hint: &str, token: Option<&str>) -> BackchannelRequest {
    BackchannelRequest {
        client_notification_token: token.map(str::to_owned),
        ..ask(hint, Some("Шалтер 2"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_mode_counter_is_told_once_the_citizen_answers_and_fetches_the_tokens_at_once() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let app = citizen(&t, "petar@example.rs").await;
        let (url, mut told) = receiver(200, "/ciba").await;
        let (id, client_secret) = ping_counter(&t, &url).await;
        let credentials = || secret(&id, &client_secret);
        let start = |request: BackchannelRequest| {
            let (t, credentials) = (&t, credentials());
            async move {
                t.oidc
                    .backchannel_authenticate(&credentials, &request, "127.0.0.1")
                    .await
            }
        };

        // 1. A ping-mode request needs its notification token, a bearer credential.
        for token in [None, Some("two words"), Some(&*"x".repeat(1025))] {
            assert_eq!(
                refusal(start(ask_ping("petar@example.rs", token)).await).code(),
                "invalid_request",
                "{name}: {token:?}"
            );
        }
        let started = start(ask_ping("petar@example.rs", Some("ping-token.1")))
            .await
            .unwrap();

        // 2. Nothing to tell before the citizen answers; the counter that polls anyway waits.
        assert_eq!(t.oidc.deliver_due_pings().await.unwrap(), 0, "{name}");
        let request = poll(&started.auth_req_id, credentials());
        assert_eq!(
            refusal(t.oidc.token(&request).await).code(),
            "authorization_pending",
            "{name}"
        );

        // 3. Approved: told once, with its token and the request's id.
        assert_eq!(
            app.approve_next(&t).await,
            ResponseOutcome::Approved,
            "{name}"
        );
        assert_eq!(t.oidc.deliver_due_pings().await.unwrap(), 1, "{name}");
        let ping = told.recv().await.unwrap();
        assert!(
            ping.head.starts_with("POST /ciba "),
            "{name}: {}",
            ping.head
        );
        assert_eq!(
            ping.header("authorization"),
            Some("Bearer ping-token.1"),
            "{name}"
        );
        assert_eq!(
            ping.header("content-type"),
            Some("application/json"),
            "{name}"
        );
        let body: Value = serde_json::from_str(&ping.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({ "auth_req_id": started.auth_req_id }),
            "{name}"
        );
        assert_eq!(t.oidc.deliver_due_pings().await.unwrap(), 0, "{name}");
        assert!(told.try_recv().is_err(), "{name}: told once");

        // 4. Told, it fetches the tokens at once (it polled a moment ago), and once.
        let tokens = t.oidc.token(&request).await.unwrap();
        verify_id_token(&t, tokens.id_token.as_deref().unwrap(), &id);
        assert_eq!(
            refusal(t.oidc.token(&request).await).code(),
            "invalid_grant",
            "{name}: answered before"
        );

        // 5. Refused on the phone: told too, and the refusal is there at once.
        let refused = start(ask_ping("petar@example.rs", Some("ping-token-2")))
            .await
            .unwrap();
        deny_next(&t, &app).await;
        assert_eq!(t.oidc.deliver_due_pings().await.unwrap(), 1, "{name}");
        let ping = told.recv().await.unwrap();
        assert_eq!(
            ping.header("authorization"),
            Some("Bearer ping-token-2"),
            "{name}"
        );
        assert!(ping.body.contains(&refused.auth_req_id), "{name}");
        assert_eq!(
            refusal(
                t.oidc
                    .token(&poll(&refused.auth_req_id, credentials()))
                    .await
            )
            .code(),
            "access_denied",
            "{name}"
        );
        let events = t.audit_events().await;
        assert_eq!(
            events
                .iter()
                .filter(|e| *e == "oidc.ciba.ping_delivered")
                .count(),
            2,
            "{name}: {events:?}"
        );
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_ping_request_is_told_at_its_end_and_a_failed_notification_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        citizen(&t, "petar@example.rs").await;
        let (url, mut told) = receiver(503, "/ciba").await;
        let (id, client_secret) = ping_counter(&t, &url).await;
        let credentials = secret(&id, &client_secret);

        // An address no account has: told at the request's end, like an unanswered citizen.
        let started = t
            .oidc
            .backchannel_authenticate(
                &credentials,
                &ask_ping("nobody@example.rs", Some("tok")),
                "127.0.0.1",
            )
            .await
            .unwrap();
        t.clock.advance(TRANSACTION_LIFETIME - 1);
        assert_eq!(t.oidc.deliver_due_pings().await.unwrap(), 0, "{name}");
        assert!(told.try_recv().is_err(), "{name}: not before its end");
        t.clock.advance(1);
        assert_eq!(
            t.oidc.deliver_due_pings().await.unwrap(),
            0,
            "{name}: refused by the endpoint"
        );
        assert!(told
            .recv()
            .await
            .unwrap()
            .body
            .contains(&started.auth_req_id));
        // Tried again once its wait is over, not before.
        assert_eq!(t.oidc.deliver_due_pings().await.unwrap(), 0, "{name}");
        assert!(told.try_recv().is_err(), "{name}: not at once");
        t.clock.advance(10);
        t.oidc.deliver_due_pings().await.unwrap();
        assert!(told.recv().await.is_some(), "{name}: retried");
        assert_eq!(
            refusal(t.oidc.token(&poll(&started.auth_req_id, credentials)).await).code(),
            "expired_token",
            "{name}"
        );
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ciba_requests_are_limited_per_citizen_and_per_service_whether_or_not_the_address_has_an_account(
) {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        citizen(&t, "petar@example.rs").await;
        // Per citizen, from all services together: one request each from ten counters, then
        // the eleventh is refused, for an account's address and for an unknown one alike.
        let mut counters = Vec::new();
        for _ in 0..=RateLimit::CIBA_PER_USER.limit {
            let (client, client_secret) = t
                .oidc
                .register_client(ClientRegistration {
                    ciba: true,
                    ..registration(Profile::Basic, &["profile"])
                })
                .await
                .unwrap();
            counters.push(secret(&client.client_id, &client_secret.unwrap()));
        }
        for hint in ["petar@example.rs", "nobody@example.rs"] {
            let mut answers = Vec::new();
            for counter in &counters {
                let answer = t
                    .oidc
                    .backchannel_authenticate(counter, &ask(hint, None), "127.0.0.1")
                    .await;
                answers.push(match answer {
                    Ok(_) => "ok",
                    Err(crate::Error::Oidc(refusal)) => refusal.code(),
                    Err(other) => panic!("{name}: {other:?}"),
                });
            }
            let limit = RateLimit::CIBA_PER_USER.limit as usize;
            assert!(
                answers[..limit].iter().all(|a| *a == "ok"),
                "{name}: {hint}: {answers:?}"
            );
            assert_eq!(answers[limit], "invalid_request", "{name}: {hint}");
        }
        // The window over, the citizen can be asked again.
        t.clock.advance(RateLimit::CIBA_PER_USER.window);
        t.oidc
            .backchannel_authenticate(&counters[0], &ask("nobody@example.rs", None), "127.0.0.1")
            .await
            .unwrap();

        // Per service: past its budget a counter is told to slow down, whoever it asks for.
        let counter = &counters[1];
        for i in 0..RateLimit::CIBA_PER_CLIENT.limit {
            t.oidc
                .backchannel_authenticate(
                    counter,
                    &ask(&format!("someone{i}@example.rs"), None),
                    "127.0.0.1",
                )
                .await
                .unwrap_or_else(|e| panic!("{name}: request {i}: {e:?}"));
        }
        assert_eq!(
            refusal(
                t.oidc
                    .backchannel_authenticate(counter, &ask("last@example.rs", None), "127.0.0.1")
                    .await
            )
            .code(),
            "slow_down",
            "{name}"
        );
        t.close().await;
    }
}
