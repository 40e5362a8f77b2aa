//! Logout (OpenID Connect RP-Initiated Logout 1.0, Back-Channel Logout 1.0): which service
//! asks and where the browser may go after, and the logout token each service that got tokens
//! in a session receives when the citizen logs out (delivered to a receiver of this test on
//! 127.0.0.1, once, and again later when it failed).

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use domain::oidc::Profile;

use super::{
    allow, citizen, code_of, params, pkce, receiver, refusal, registration, secret, token_request,
    verify_id_token,
};
use crate::oidc::{ClientRegistration, LogoutPlan, LogoutRequest};
use crate::test_support::{authorities, consentid_login, TestAuthority};
use crate::Clock as _;

/// A logout token's claims once `jsonwebtoken` verified it with our JWKS for `client_id`.
fn verify_logout_token(t: &TestAuthority, body: &str, client_id: &str) -> Value {
    let token = body
        .strip_prefix("logout_token=")
        .expect("a logout_token form");
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"), "{}", t.name);
    let jwks: JwkSet = serde_json::from_value(t.oidc.jwks().unwrap()).unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[client_id]);
    validation.set_issuer(&[t.oidc.issuer()]);
    validation.validate_exp = false;
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .unwrap_or_else(|e| panic!("{}: the logout token does not verify: {e}", t.name))
        .claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_tells_each_service_of_the_session_once_and_again_after_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let (good_url, mut good) = receiver(200, "/backchannel-logout").await;
        let (bad_url, mut bad) = receiver(500, "/backchannel-logout").await;
        let mut clients = Vec::new();
        for url in [Some(&good_url), Some(&bad_url), None] {
            let (client, client_secret) = t
                .oidc
                .register_client(ClientRegistration {
                    backchannel_logout_uri: url.cloned(),
                    ..registration(Profile::Basic, &[])
                })
                .await
                .unwrap();
            clients.push((client.client_id, client_secret.unwrap()));
        }
        let app = citizen(&t, "petar@example.rs").await;
        let session = consentid_login(&t, &app, "petar@example.rs").await;
        let mut subs = Vec::new();
        for (id, client_secret) in &clients {
            let pkce = pkce();
            let code = code_of(&t, &allow(&t, &session, &params(id, "openid", &pkce)).await);
            let tokens = t
                .oidc
                .token(&token_request(
                    &code,
                    &pkce.verifier,
                    secret(id, client_secret),
                ))
                .await
                .unwrap();
            subs.push(verify_id_token(&t, tokens.id_token.as_deref().unwrap(), id)["sub"].clone());
        }
        // Another session's services are not told.
        let other = consentid_login(&t, &app, "petar@example.rs").await;
        assert_ne!(other.sid(), session.sid(), "{name}");
        let (id, client_secret) = &clients[0];
        let pkce = pkce();
        let code = code_of(&t, &allow(&t, &other, &params(id, "openid", &pkce)).await);
        t.oidc
            .token(&token_request(
                &code,
                &pkce.verifier,
                secret(id, client_secret),
            ))
            .await
            .unwrap();

        assert_eq!(
            t.oidc.deliver_due_logouts().await.unwrap(),
            0,
            "{name}: none yet"
        );
        t.login.logout(&session).await.unwrap();
        assert_eq!(t.oidc.deliver_due_logouts().await.unwrap(), 1, "{name}");
        let claims = verify_logout_token(&t, &good.recv().await.unwrap().body, &clients[0].0);
        assert_eq!(claims["sid"], session.sid(), "{name}");
        assert_eq!(claims["sub"], subs[0], "{name}: the service's own sub");
        assert!(
            claims["events"]
                .get("http://schemas.openid.net/event/backchannel-logout")
                .is_some(),
            "{name}: {claims}"
        );
        assert!(claims.get("nonce").is_none(), "{name}");
        assert!(bad.recv().await.is_some(), "{name}: tried, refused");

        // Once: nothing more now; the failed one again once its wait is over.
        assert_eq!(t.oidc.deliver_due_logouts().await.unwrap(), 0, "{name}");
        assert!(
            good.try_recv().is_err() && bad.try_recv().is_err(),
            "{name}"
        );
        t.clock.advance(3600);
        assert_eq!(t.oidc.deliver_due_logouts().await.unwrap(), 0, "{name}");
        assert!(good.try_recv().is_err(), "{name}: delivered once");
        assert!(bad.recv().await.is_some(), "{name}: retried");
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_simply_expires_is_told_to_its_services_once() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let (url, mut told) = receiver(200, "/backchannel-logout").await;
        let (client, client_secret) = t
            .oidc
            .register_client(ClientRegistration {
                backchannel_logout_uri: Some(url),
                ..registration(Profile::Basic, &[])
            })
            .await
            .unwrap();
        let (id, client_secret) = (client.client_id, client_secret.unwrap());
        let app = citizen(&t, "petar@example.rs").await;
        let session = consentid_login(&t, &app, "petar@example.rs").await;
        let pkce = pkce();
        let code = code_of(
            &t,
            &allow(&t, &session, &params(&id, "openid", &pkce)).await,
        );
        t.oidc
            .token(&token_request(
                &code,
                &pkce.verifier,
                secret(&id, &client_secret),
            ))
            .await
            .unwrap();

        t.maintain().await.unwrap();
        assert_eq!(
            t.oidc.deliver_due_logouts().await.unwrap(),
            0,
            "{name}: still on"
        );
        t.clock
            .advance(session.expires_at().0 - t.clock.now().0 + 1);
        // The upkeep looks (every instance does); the service is told once.
        t.maintain().await.unwrap();
        assert_eq!(
            t.oidc.queue_expired_session_logouts().await.unwrap(),
            0,
            "{name}"
        );
        assert_eq!(t.oidc.deliver_due_logouts().await.unwrap(), 1, "{name}");
        let claims = verify_logout_token(&t, &told.recv().await.unwrap().body, &id);
        assert_eq!(claims["sid"], session.sid(), "{name}");
        t.clock.advance(60);
        t.maintain().await.unwrap();
        assert_eq!(
            t.oidc.deliver_due_logouts().await.unwrap(),
            0,
            "{name}: once"
        );
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_asks_for_a_logout_and_the_browser_returns_only_to_its_registered_uri() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let after = "https://rp.example/after-logout";
        let mut ids = Vec::new();
        let mut hints = Vec::new();
        let app = citizen(&t, "petar@example.rs").await;
        let session = consentid_login(&t, &app, "petar@example.rs").await;
        for _ in 0..2 {
            let (client, client_secret) = t
                .oidc
                .register_client(ClientRegistration {
                    post_logout_redirect_uris: vec![after.into()],
                    ..registration(Profile::Basic, &[])
                })
                .await
                .unwrap();
            let id = client.client_id;
            let pkce = pkce();
            let code = code_of(
                &t,
                &allow(&t, &session, &params(&id, "openid", &pkce)).await,
            );
            let tokens = t
                .oidc
                .token(&token_request(
                    &code,
                    &pkce.verifier,
                    secret(&id, client_secret.as_deref().unwrap()),
                ))
                .await
                .unwrap();
            hints.push(tokens.id_token.unwrap());
            ids.push(id);
        }
        let ask = |hint: Option<&str>, client_id: Option<&str>, uri: Option<&str>| LogoutRequest {
            id_token_hint: hint.map(str::to_owned),
            client_id: client_id.map(str::to_owned),
            post_logout_redirect_uri: uri.map(str::to_owned),
            state: Some("s 1&x".into()),
        };
        assert_eq!(
            t.oidc
                .logout_request(&ask(Some(&hints[0]), None, Some(after)))
                .await
                .unwrap(),
            LogoutPlan {
                service: Some("Пореска управа".into()),
                redirect: Some(format!("{after}?state=s+1%26x")),
            },
            "{name}"
        );
        // An expired hint still names the service.
        t.clock.advance(3600);
        t.oidc
            .logout_request(&ask(Some(&hints[0]), Some(&ids[0]), Some(after)))
            .await
            .unwrap();
        assert_eq!(
            t.oidc.logout_request(&ask(None, None, None)).await.unwrap(),
            LogoutPlan {
                service: None,
                redirect: None,
            },
            "{name}"
        );
        let mut forged = hints[0].clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        for (request, why) in [
            (
                ask(Some(&hints[0]), None, Some("https://rp.example/after")),
                "a prefix",
            ),
            (
                ask(Some(&hints[0]), None, Some("https://evil.example/")),
                "not registered",
            ),
            (ask(None, None, Some(after)), "no service named"),
            (
                ask(Some(&hints[0]), Some(&ids[1]), None),
                "another service's hint",
            ),
            (ask(Some(&forged), None, None), "a forged hint"),
            (ask(Some("not.a.jwt"), None, None), "no JWT"),
            (ask(None, Some("unknown"), None), "an unknown client"),
        ] {
            assert_eq!(
                refusal(t.oidc.logout_request(&request).await).code(),
                "invalid_request",
                "{name}: {why}"
            );
        }
        t.close().await;
    }
}
