//! What the provider refuses, and where it says so: a request answered only at a registered
//! redirect URI (else on a page of ours), a code spent once (its reuse revokes its tokens) by
//! its own client with its verifier, the level and freshness of the login asked for, and the
//! tokens (and codes) that a withdrawn consent or a removed client end.

use domain::oidc::{Acr, Profile, CODE_LIFETIME};

use super::{
    allow, bearer, citizen, code_of, fapi2, param, params, pkce, refusal, registration, secret,
    token_request, REDIRECT,
};
use crate::oidc::{AuthorizationParams, AuthorizeStep, ClientCredentials, ClientRegistration};
use crate::test_support::{authorities, consentid_login, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_answered_only_at_a_registered_redirect_uri_and_refused_there_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let (basic, _) = t
            .oidc
            .register_client(registration(Profile::Basic, &["profile"]))
            .await
            .unwrap();
        let pkce = pkce();
        let good = params(&basic.client_id, "openid profile", &pkce);
        t.oidc.authorization_request(&good).await.unwrap();
        t.oidc
            .authorization_request(&AuthorizationParams {
                redirect_uri: Some("https://rp.example/other".into()),
                ..good.clone()
            })
            .await
            .unwrap();

        // Never at a URI that is not registered exactly: a page of ours, no redirect.
        for uri in [
            Some("https://rp.example/c"),
            Some("https://rp.example/cb/"),
            Some("https://rp.example/cb?x=1"),
            Some("https://rp.example/cbx"),
            Some("https://evil.example/cb"),
            None,
        ] {
            let refused = t
                .oidc
                .authorization_request(&AuthorizationParams {
                    redirect_uri: uri.map(str::to_owned),
                    ..good.clone()
                })
                .await
                .unwrap_err();
            assert_eq!(refused.redirect, None, "{name}: {uri:?}");
            assert_eq!(refused.error, "invalid_request", "{name}: {uri:?}");
        }
        for client_id in [Some("unknown"), None] {
            let refused = t
                .oidc
                .authorization_request(&AuthorizationParams {
                    client_id: client_id.map(str::to_owned),
                    ..good.clone()
                })
                .await
                .unwrap_err();
            assert_eq!(refused.redirect, None, "{name}: {client_id:?}");
        }

        // At a registered URI: the error, with state and iss.
        let at_redirect = |query: AuthorizationParams, error: &'static str| {
            let t = &t;
            async move {
                let refused = t.oidc.authorization_request(&query).await.unwrap_err();
                assert_eq!(refused.error, error, "{name}: {query:?}");
                let redirect = refused
                    .redirect
                    .unwrap_or_else(|| panic!("{name}: {query:?}: no redirect"));
                assert_eq!(redirect.redirect_uri, REDIRECT, "{name}");
                assert_eq!(param(&redirect, "error"), Some(error), "{name}");
                assert_eq!(param(&redirect, "state"), Some("state-1"), "{name}");
                assert_eq!(
                    param(&redirect, "iss"),
                    Some(t.oidc.issuer().as_str()),
                    "{name}"
                );
            }
        };
        at_redirect(
            AuthorizationParams {
                response_type: Some("token".into()),
                ..good.clone()
            },
            "unsupported_response_type",
        )
        .await;
        at_redirect(
            AuthorizationParams {
                code_challenge: None,
                ..good.clone()
            },
            "invalid_request",
        )
        .await;
        at_redirect(
            AuthorizationParams {
                code_challenge_method: Some("plain".into()),
                ..good.clone()
            },
            "invalid_request",
        )
        .await;
        // The JMBG only for a client allowed it; a scope not registered; no openid.
        for scope in ["openid jmbg", "openid email", "profile"] {
            at_redirect(
                AuthorizationParams {
                    scope: Some(scope.into()),
                    ..good.clone()
                },
                "invalid_scope",
            )
            .await;
        }

        // A fapi2 client must push its request first.
        let key = fapi2::TestKey::new("k1");
        let (fapi, _) = t
            .oidc
            .register_client(ClientRegistration {
                jwks: Some(key.jwks()),
                ..registration(Profile::Fapi2, &["profile"])
            })
            .await
            .unwrap();
        at_redirect(
            params(&fapi.client_id, "openid profile", &pkce),
            "invalid_request",
        )
        .await;
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_is_spent_once_and_its_reuse_revokes_its_tokens() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let app = citizen(&t, "petar@example.rs").await;
        let session = consentid_login(&t, &app, "petar@example.rs").await;
        let (client, client_secret) = t
            .oidc
            .register_client(registration(Profile::Basic, &["profile"]))
            .await
            .unwrap();
        let (other, other_secret) = t
            .oidc
            .register_client(registration(Profile::Basic, &["profile"]))
            .await
            .unwrap();
        let (id, client_secret) = (client.client_id.clone(), client_secret.unwrap());
        let pkce = pkce();
        let code = code_of(
            &t,
            &allow(&t, &session, &params(&id, "openid profile", &pkce)).await,
        );
        let good = || token_request(&code, &pkce.verifier, secret(&id, &client_secret));

        // Refused before the code is spent: the client's credentials, the code's client, the
        // grant type.
        let wrong_secret = token_request(&code, &pkce.verifier, secret(&id, "wrong"));
        let no_secret = token_request(
            &code,
            &pkce.verifier,
            ClientCredentials {
                client_id: Some(id.clone()),
                ..ClientCredentials::default()
            },
        );
        for request in [wrong_secret, no_secret] {
            assert_eq!(
                refusal(t.oidc.token(&request).await).code(),
                "invalid_client",
                "{name}"
            );
        }
        let another_client = token_request(
            &code,
            &pkce.verifier,
            secret(&other.client_id, other_secret.as_deref().unwrap()),
        );
        assert_eq!(
            refusal(t.oidc.token(&another_client).await).code(),
            "invalid_grant",
            "{name}: the code is not the other client's"
        );
        let mut implicit = good();
        implicit.grant_type = Some("password".into());
        assert_eq!(
            refusal(t.oidc.token(&implicit).await).code(),
            "unsupported_grant_type",
            "{name}"
        );
        // PKCE and the redirect URI: the verifier of another request, none, another URI.
        let mut wrong_verifier = good();
        wrong_verifier.code_verifier = Some(self::pkce().verifier);
        let mut no_verifier = good();
        no_verifier.code_verifier = None;
        let mut other_uri = good();
        other_uri.redirect_uri = Some("https://rp.example/other".into());
        for request in [wrong_verifier, no_verifier, other_uri] {
            assert_eq!(
                refusal(t.oidc.token(&request).await).code(),
                "invalid_grant",
                "{name}: {:?} {:?}",
                request.code_verifier,
                request.redirect_uri
            );
        }

        // Spent once…
        let tokens = t.oidc.token(&good()).await.unwrap();
        t.oidc
            .userinfo(&bearer(&tokens.access_token))
            .await
            .unwrap();
        // …a second use is refused and revokes what the first one got (RFC 6749 §4.1.2).
        assert_eq!(
            refusal(t.oidc.token(&good()).await).code(),
            "invalid_grant",
            "{name}: reused"
        );
        assert_eq!(
            refusal(t.oidc.userinfo(&bearer(&tokens.access_token)).await).code(),
            "invalid_token",
            "{name}: revoked by the reuse"
        );
        assert!(
            t.audit_events()
                .await
                .contains(&"oidc.code_reused".to_owned()),
            "{name}"
        );
        let unknown = token_request("no-such-code", &pkce.verifier, secret(&id, &client_secret));
        assert_eq!(
            refusal(t.oidc.token(&unknown).await).code(),
            "invalid_grant",
            "{name}"
        );

        // A code lives a minute.
        let pkce = self::pkce();
        let code = code_of(
            &t,
            &allow(&t, &session, &params(&id, "openid profile", &pkce)).await,
        );
        t.clock.advance(CODE_LIFETIME);
        assert_eq!(
            refusal(
                t.oidc
                    .token(&token_request(
                        &code,
                        &pkce.verifier,
                        secret(&id, &client_secret)
                    ))
                    .await
            )
            .code(),
            "invalid_grant",
            "{name}: expired"
        );
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_level_asked_for_and_the_freshness_of_the_login_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let app = citizen(&t, "petar@example.rs").await;
        let (client, _) = t
            .oidc
            .register_client(registration(Profile::Basic, &["profile"]))
            .await
            .unwrap();
        let query = params(&client.client_id, "openid profile", &pkce());
        let request = t.oidc.authorization_request(&query).await.unwrap();
        let mut high = request.clone();
        high.params.acr_values = Some(Acr::High.uri().into());

        // A password login never passes for high: access_denied at the redirect URI, on the
        // way in and on the consent page.
        let (_, anonymous) = t.login.new_session();
        let (_, by_password) = t
            .login
            .password_login(&anonymous, "petar@example.rs", PASSWORD, "127.0.0.1")
            .await
            .unwrap();
        let AuthorizeStep::Respond(denied) = t.oidc.authorize(&by_password, &high).await.unwrap()
        else {
            panic!("{name}: a password login is refused for high");
        };
        assert_eq!(param(&denied, "error"), Some("access_denied"), "{name}");
        assert!(param(&denied, "code").is_none(), "{name}");
        let denied = t.oidc.decide(&by_password, &high, true).await.unwrap();
        assert_eq!(param(&denied, "error"), Some("access_denied"), "{name}");
        // Without acr_values it may go on, and its ID token says low.
        assert!(
            matches!(
                t.oidc.authorize(&by_password, &request).await.unwrap(),
                AuthorizeStep::Consent(_)
            ),
            "{name}"
        );

        // prompt=none without a login: login_required; the citizen refusing: access_denied.
        let mut silent = request.clone();
        silent.params.prompt = Some("none".into());
        let AuthorizeStep::Respond(answer) = t.oidc.authorize(&anonymous, &silent).await.unwrap()
        else {
            panic!("{name}: prompt=none answers at once");
        };
        assert_eq!(param(&answer, "error"), Some("login_required"), "{name}");
        let session = consentid_login(&t, &app, "petar@example.rs").await;
        let AuthorizeStep::Respond(answer) = t.oidc.authorize(&session, &silent).await.unwrap()
        else {
            panic!("{name}: prompt=none answers at once");
        };
        assert_eq!(param(&answer, "error"), Some("consent_required"), "{name}");
        let refused = t.oidc.decide(&session, &high, false).await.unwrap();
        assert_eq!(param(&refused, "error"), Some("access_denied"), "{name}");
        assert!(param(&refused, "code").is_none(), "{name}");
        assert!(
            matches!(
                t.oidc.authorize(&session, &high).await.unwrap(),
                AuthorizeStep::Consent(_)
            ),
            "{name}: a refusal is not remembered as a consent"
        );

        // max_age and prompt=login send an older login back to log in.
        t.clock.advance(200);
        let mut recent = request.clone();
        recent.params.max_age = Some("100".into());
        let mut relogin = request.clone();
        relogin.params.prompt = Some("login".into());
        for request in [recent, relogin] {
            assert!(
                matches!(
                    t.oidc.authorize(&session, &request).await.unwrap(),
                    AuthorizeStep::Login
                ),
                "{name}: {:?}",
                request.params
            );
        }
        let mut lenient = request.clone();
        lenient.params.max_age = Some("300".into());
        assert!(
            matches!(
                t.oidc.authorize(&session, &lenient).await.unwrap(),
                AuthorizeStep::Consent(_)
            ),
            "{name}"
        );
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_consent_and_a_removed_client_end_the_tokens() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let app = citizen(&t, "petar@example.rs").await;
        let session = consentid_login(&t, &app, "petar@example.rs").await;
        let user = session.user.clone().unwrap();
        let mut clients = Vec::new();
        for _ in 0..2 {
            let (client, client_secret) = t
                .oidc
                .register_client(registration(Profile::Basic, &["profile"]))
                .await
                .unwrap();
            let id = client.client_id;
            let pkce = pkce();
            let code = code_of(
                &t,
                &allow(&t, &session, &params(&id, "openid profile", &pkce)).await,
            );
            let client_secret = client_secret.unwrap();
            let tokens = t
                .oidc
                .token(&token_request(
                    &code,
                    &pkce.verifier,
                    secret(&id, &client_secret),
                ))
                .await
                .unwrap();
            clients.push((id, client_secret, tokens.access_token));
        }
        let listed: Vec<String> = t
            .oidc
            .consents(&user.id)
            .await
            .unwrap()
            .into_iter()
            .map(|(client, scope)| {
                assert_eq!(scope, "openid profile", "{name}");
                client.client_id
            })
            .collect();
        assert_eq!(listed.len(), 2, "{name}");
        for (id, ..) in &clients {
            assert!(listed.contains(id), "{name}");
        }

        // Withdrawn: the service's token ends, the other's does not, a code it has not
        // exchanged yet gets nothing; the next request asks.
        let (id, client_secret, token) = &clients[0];
        let pkce_unused = pkce();
        let unused = code_of(
            &t,
            &allow(&t, &session, &params(id, "openid", &pkce_unused)).await,
        );
        assert!(
            t.oidc.withdraw_consent(&user.id, id).await.unwrap(),
            "{name}"
        );
        assert_eq!(
            refusal(
                t.oidc
                    .token(&token_request(
                        &unused,
                        &pkce_unused.verifier,
                        secret(id, client_secret)
                    ))
                    .await
            )
            .code(),
            "invalid_grant",
            "{name}: a code from before the withdrawal"
        );
        assert!(
            !t.oidc.withdraw_consent(&user.id, id).await.unwrap(),
            "{name}: once"
        );
        assert_eq!(
            refusal(t.oidc.userinfo(&bearer(token)).await).code(),
            "invalid_token",
            "{name}"
        );
        t.oidc.userinfo(&bearer(&clients[1].2)).await.unwrap();
        let request = t
            .oidc
            .authorization_request(&params(id, "openid profile", &pkce()))
            .await
            .unwrap();
        assert!(
            matches!(
                t.oidc.authorize(&session, &request).await.unwrap(),
                AuthorizeStep::Consent(_)
            ),
            "{name}: asked again"
        );
        let consents = t.oidc.consents(&user.id).await.unwrap();
        assert_eq!(consents.len(), 1, "{name}");
        assert_eq!(consents[0].0.client_id, clients[1].0, "{name}");

        // Removed: its token ends, and it is unknown everywhere.
        let (id, client_secret, token) = &clients[1];
        assert!(t.oidc.remove_client(id).await.unwrap(), "{name}");
        assert!(!t.oidc.remove_client(id).await.unwrap(), "{name}: once");
        assert_eq!(
            refusal(t.oidc.userinfo(&bearer(token)).await).code(),
            "invalid_token",
            "{name}"
        );
        assert!(t.oidc.client(id).await.unwrap().is_none(), "{name}");
        assert!(
            t.oidc
                .clients()
                .await
                .unwrap()
                .iter()
                .all(|c| c.client_id != *id),
            "{name}"
        );
        assert!(
            t.oidc.consents(&user.id).await.unwrap().is_empty(),
            "{name}"
        );
        let refused = t
            .oidc
            .authorization_request(&params(id, "openid profile", &pkce()))
            .await
            .unwrap_err();
        assert_eq!(refused.redirect, None, "{name}");
        let pkce = pkce();
        assert_eq!(
            refusal(
                t.oidc
                    .token(&token_request(
                        "code",
                        &pkce.verifier,
                        secret(id, client_secret)
                    ))
                    .await
            )
            .code(),
            "invalid_client",
            "{name}"
        );
        t.close().await;
    }
}
