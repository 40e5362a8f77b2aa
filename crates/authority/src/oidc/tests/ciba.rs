//! CIBA in poll mode (OpenID Connect CIBA Core 1.0): a counter's server asks for a citizen by
//! e-mail, the citizen approves on the phone, and the token endpoint answers pending, too
//! fast, refused or ended, then the tokens once.

use proto::app::{Decision, ResponseOutcome};
use proto::crypto;

use domain::login::TRANSACTION_LIFETIME;
use domain::oidc::{Acr, Profile, CIBA_INTERVAL};

use super::{bearer, citizen, refusal, registration, secret, verify_id_token};
use crate::oidc::{
    BackchannelRequest, ClientCredentials, ClientRegistration, TokenRequest, CIBA_GRANT,
};
use crate::test_support::{authorities, App, TestAuthority};

pub(super) fn ask(hint: &str, message: Option<&str>) -> BackchannelRequest {
    BackchannelRequest {
        scope: Some("openid profile".into()),
        login_hint: Some(hint.into()),
        id_token_hint: None,
        other_hint: false,
        binding_message: message.map(str::to_owned),
        acr_values: None,
        client_notification_token: None,
    }
}

pub(super) fn poll(auth_req_id: &str, credentials: ClientCredentials) -> TokenRequest {
    TokenRequest {
        grant_type: Some(CIBA_GRANT.into()),
        auth_req_id: Some(auth_req_id.into()),
        credentials,
        ..TokenRequest::default()
    }
}

/// A `basic` client registered for CIBA (or not): its id and secret.
async fn counter(t: &TestAuthority, ciba: bool) -> (String, String) {
    let (client, client_secret) = t
        .oidc
        .register_client(ClientRegistration {
            ciba,
            name: "Пошта, шалтер 3".into(),
            ..registration(Profile::Basic, &["profile"])
        })
        .await
        .unwrap();
    (client.client_id, client_secret.unwrap())
}

/// Refuses the first request waiting in the app.
pub(super) async fn deny_next(t: &TestAuthority, app: &App) {
    let (envelope, payload) = app.next_request(t).await;
    let code = crypto::verification_code(&crypto::unb64(&payload.challenge).unwrap());
    let (txn, response) = app.answer(&envelope, Decision::Deny, &code, Some(&app.pin), t.now());
    app.send(t, &txn, &response).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_gets_the_tokens_once_the_citizen_approves_on_the_phone() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let app = citizen(&t, "petar@example.rs").await;
        let (id, client_secret) = counter(&t, true).await;
        let credentials = || secret(&id, &client_secret);

        // 1. Asked, by an address written any way.
        let started = t
            .oidc
            .backchannel_authenticate(
                &credentials(),
                &ask(" Petar@Example.RS ", Some("Шалтер 3, пошта Нови Сад")),
                "127.0.0.1",
            )
            .await
            .unwrap();
        assert_eq!(started.expires_in, TRANSACTION_LIFETIME, "{name}");
        assert_eq!(started.interval, CIBA_INTERVAL, "{name}");
        assert_eq!(
            refusal(
                t.oidc
                    .backchannel_authenticate(
                        &credentials(),
                        &ask("petar@example.rs", None),
                        "127.0.0.1"
                    )
                    .await
            )
            .code(),
            "invalid_request",
            "{name}: one open request per citizen and service"
        );
        let (_, payload) = app.next_request(&t).await;
        let shown = serde_json::to_string(&payload).unwrap();
        assert!(
            shown.contains("Шалтер 3, пошта Нови Сад"),
            "{name}: {shown}"
        );
        assert!(shown.contains("Пошта, шалтер 3"), "{name}: {shown}");

        // 2. Polled: pending; too soon again: slow down (and the wait grows).
        let request = poll(&started.auth_req_id, credentials());
        assert_eq!(
            refusal(t.oidc.token(&request).await).code(),
            "authorization_pending",
            "{name}"
        );
        assert_eq!(
            refusal(t.oidc.token(&request).await).code(),
            "slow_down",
            "{name}"
        );
        // Another client cannot poll it.
        let (other_id, other_secret) = counter(&t, true).await;
        assert_eq!(
            refusal(
                t.oidc
                    .token(&poll(
                        &started.auth_req_id,
                        secret(&other_id, &other_secret)
                    ))
                    .await
            )
            .code(),
            "invalid_grant",
            "{name}"
        );

        // 3. Approved on the phone: the tokens at the next poll, once.
        assert_eq!(
            app.approve_next(&t).await,
            ResponseOutcome::Approved,
            "{name}"
        );
        t.clock.advance(CIBA_INTERVAL);
        assert_eq!(
            refusal(t.oidc.token(&request).await).code(),
            "slow_down",
            "{name}: the slow_down added to the wait"
        );
        t.clock.advance(2 * CIBA_INTERVAL);
        let tokens = t.oidc.token(&request).await.unwrap();
        let claims = verify_id_token(&t, tokens.id_token.as_deref().unwrap(), &id);
        assert_eq!(claims["acr"], Acr::High.uri(), "{name}");
        let info = t
            .oidc
            .userinfo(&bearer(&tokens.access_token))
            .await
            .unwrap();
        assert_eq!(info["given_name"], "Петар", "{name}");
        assert_eq!(info["sub"], claims["sub"], "{name}");
        t.clock.advance(CIBA_INTERVAL);
        assert_eq!(
            refusal(t.oidc.token(&request).await).code(),
            "invalid_grant",
            "{name}: answered before"
        );

        // 4. The citizen can take it back like any consent: the counter's token ends.
        let user = t
            .oidc
            .consents(&info_user(&t, "petar@example.rs").await)
            .await
            .unwrap();
        assert_eq!(
            user.len(),
            1,
            "{name}: the approval is listed among the services"
        );
        assert!(
            t.oidc
                .withdraw_consent(&info_user(&t, "petar@example.rs").await, &id)
                .await
                .unwrap(),
            "{name}"
        );
        assert_eq!(
            refusal(t.oidc.userinfo(&bearer(&tokens.access_token)).await).code(),
            "invalid_token",
            "{name}"
        );

        // 5. Refused on the phone: access_denied, then the request is closed.
        let refused = t
            .oidc
            .backchannel_authenticate(&credentials(), &ask("petar@example.rs", None), "127.0.0.1")
            .await
            .unwrap();
        deny_next(&t, &app).await;
        let request = poll(&refused.auth_req_id, credentials());
        assert_eq!(
            refusal(t.oidc.token(&request).await).code(),
            "access_denied",
            "{name}"
        );
        t.clock.advance(CIBA_INTERVAL);
        assert_eq!(
            refusal(t.oidc.token(&request).await).code(),
            "invalid_grant",
            "{name}"
        );
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_names_the_citizen_again_by_the_id_token_it_got() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let app = citizen(&t, "petar@example.rs").await;
        let (id, client_secret) = counter(&t, true).await;
        let credentials = || secret(&id, &client_secret);
        // A first login by address gives the counter an ID token.
        let first = t
            .oidc
            .backchannel_authenticate(&credentials(), &ask("petar@example.rs", None), "127.0.0.1")
            .await
            .unwrap();
        app.approve_next(&t).await;
        let tokens = t
            .oidc
            .token(&poll(&first.auth_req_id, credentials()))
            .await
            .unwrap();
        let id_token = tokens.id_token.unwrap();
        let sub = verify_id_token(&t, &id_token, &id)["sub"].clone();

        // The next request names the citizen by that token, expired by now.
        t.clock.advance(3600);
        let by_token = |token: &str| BackchannelRequest {
            login_hint: None,
            id_token_hint: Some(token.to_owned()),
            ..ask("", Some("Шалтер 3"))
        };
        let again = t
            .oidc
            .backchannel_authenticate(&credentials(), &by_token(&id_token), "127.0.0.1")
            .await
            .unwrap();
        let (_, payload) = app.next_request(&t).await;
        assert!(
            serde_json::to_string(&payload)
                .unwrap()
                .contains("Шалтер 3"),
            "{name}: the citizen's phone is asked"
        );
        app.approve_next(&t).await;
        t.clock.advance(CIBA_INTERVAL);
        let tokens = t
            .oidc
            .token(&poll(&again.auth_req_id, credentials()))
            .await
            .unwrap();
        assert_eq!(
            verify_id_token(&t, tokens.id_token.as_deref().unwrap(), &id)["sub"],
            sub,
            "{name}: the same citizen"
        );

        // Another service's token, a made-up one, or two hints: refused.
        let (other_id, other_secret) = counter(&t, true).await;
        for (credentials, request) in [
            (secret(&other_id, &other_secret), by_token(&id_token)),
            (credentials(), by_token("eyJhbGciOiJFUzI1NiJ9.e30.c2ln")),
            (
                credentials(),
                BackchannelRequest {
                    login_hint: Some("petar@example.rs".into()),
                    ..by_token(&id_token)
                },
            ),
        ] {
            assert_eq!(
                refusal(
                    t.oidc
                        .backchannel_authenticate(&credentials, &request, "127.0.0.1")
                        .await
                )
                .code(),
                "invalid_request",
                "{name}: {request:?}"
            );
        }
        t.close().await;
    }
}

/// The account id of `email`.
async fn info_user(t: &TestAuthority, email: &str) -> domain::UserId {
    use store::AccountQueries as _;
    t.store.user_by_email(email).await.unwrap().unwrap().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ciba_request_is_refused_or_ends_the_same_for_an_unknown_address() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        citizen(&t, "petar@example.rs").await;
        let (id, client_secret) = counter(&t, true).await;
        let credentials = || secret(&id, &client_secret);
        let (plain, plain_secret) = counter(&t, false).await;

        let refused = |client: ClientCredentials, request: BackchannelRequest| {
            let t = &t;
            async move {
                refusal(
                    t.oidc
                        .backchannel_authenticate(&client, &request, "127.0.0.1")
                        .await,
                )
                .code()
            }
        };
        assert_eq!(
            refused(secret(&plain, &plain_secret), ask("petar@example.rs", None)).await,
            "unauthorized_client",
            "{name}: not registered for CIBA"
        );
        assert_eq!(
            refused(secret(&id, "wrong"), ask("petar@example.rs", None)).await,
            "invalid_client",
            "{name}"
        );
        for (request, error) in [
            (
                ask("petar@example.rs", Some(&"ш".repeat(41))),
                "invalid_binding_message",
            ),
            (
                ask("petar@example.rs", Some("ред\u{202E}")),
                "invalid_binding_message",
            ),
            (ask("not an address", None), "invalid_request"),
            (
                BackchannelRequest {
                    login_hint: None,
                    ..ask("petar@example.rs", None)
                },
                "invalid_request",
            ),
            (
                BackchannelRequest {
                    other_hint: true,
                    ..ask("petar@example.rs", None)
                },
                "invalid_request",
            ),
            (
                BackchannelRequest {
                    scope: Some("openid jmbg".into()),
                    ..ask("petar@example.rs", None)
                },
                "invalid_scope",
            ),
            (
                BackchannelRequest {
                    scope: Some("profile".into()),
                    ..ask("petar@example.rs", None)
                },
                "invalid_scope",
            ),
        ] {
            assert_eq!(
                refused(credentials(), request.clone()).await,
                error,
                "{name}: {request:?}"
            );
        }

        // An address no account has: the same answers, until it ends.
        let started = t
            .oidc
            .backchannel_authenticate(&credentials(), &ask("nobody@example.rs", None), "127.0.0.1")
            .await
            .unwrap();
        assert_eq!(started.expires_in, TRANSACTION_LIFETIME, "{name}");
        let request = poll(&started.auth_req_id, credentials());
        assert_eq!(
            refusal(t.oidc.token(&request).await).code(),
            "authorization_pending",
            "{name}"
        );
        t.clock.advance(TRANSACTION_LIFETIME);
        assert_eq!(
            refusal(t.oidc.token(&request).await).code(),
            "expired_token",
            "{name}"
        );
        assert_eq!(
            refusal(t.oidc.token(&poll("unknown", credentials())).await).code(),
            "invalid_grant",
            "{name}"
        );
        t.close().await;
    }
}
