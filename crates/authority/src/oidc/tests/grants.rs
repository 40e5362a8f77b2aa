//! What a grant becomes after the code: a refresh token (scope `offline_access`) that rotates
//! and whose reuse revokes every token of the grant, RFC 7009 revocation of a client's own
//! tokens, and RFC 7662 introspection for a resource server that authenticates.

use domain::oidc::{Profile, REFRESH_TOKEN_LIFETIME};

use super::{
    allow, bearer, citizen, code_of, fapi2, params, pkce, refusal, registration, secret,
    token_request,
};
use crate::oidc::{ClientCredentials, ClientRegistration, TokenRequest, TokenResponse};
use crate::test_support::{authorities, consentid_login, TestAuthority};

fn refresh(refresh_token: &str, credentials: ClientCredentials) -> TokenRequest {
    TokenRequest {
        grant_type: Some("refresh_token".into()),
        refresh_token: Some(refresh_token.into()),
        credentials,
        ..TokenRequest::default()
    }
}

/// A `basic` client allowed `offline_access`: its id and secret.
async fn offline_client(t: &TestAuthority) -> (String, String) {
    let (client, client_secret) = t
        .oidc
        .register_client(registration(Profile::Basic, &["profile", "offline_access"]))
        .await
        .unwrap();
    (client.client_id, client_secret.unwrap())
}

/// The tokens of a code flow of `session`'s citizen with `client` for `scope`.
async fn tokens(
    t: &TestAuthority,
    session: &crate::login::Session,
    (id, client_secret): &(String, String),
    scope: &str,
) -> TokenResponse {
    let pkce = pkce();
    let code = code_of(t, &allow(t, session, &params(id, scope, &pkce)).await);
    t.oidc
        .token(&token_request(
            &code,
            &pkce.verifier,
            secret(id, client_secret),
        ))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_rotates_and_its_reuse_revokes_the_whole_grant() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let app = citizen(&t, "petar@example.rs").await;
        let session = consentid_login(&t, &app, "petar@example.rs").await;
        let client = offline_client(&t).await;
        let other = offline_client(&t).await;
        let credentials = || secret(&client.0, &client.1);

        // Only with offline_access.
        let online = tokens(&t, &session, &client, "openid profile").await;
        assert_eq!(online.refresh_token, None, "{name}");
        let first = tokens(&t, &session, &client, "openid profile offline_access").await;
        let r1 = first.refresh_token.clone().expect("a refresh token");
        assert_eq!(
            refusal(t.oidc.userinfo(&bearer(&r1)).await).code(),
            "invalid_token",
            "{name}: a refresh token is no access token"
        );

        // Not another client's to use (and that attempt does not spend it).
        assert_eq!(
            refusal(
                t.oidc
                    .token(&refresh(&r1, secret(&other.0, &other.1)))
                    .await
            )
            .code(),
            "invalid_grant",
            "{name}"
        );
        // Rotated: new tokens, no ID token, the same scope.
        let second = t.oidc.token(&refresh(&r1, credentials())).await.unwrap();
        assert_eq!(second.id_token, None, "{name}");
        assert_eq!(second.scope, "openid profile offline_access", "{name}");
        let r2 = second
            .refresh_token
            .clone()
            .expect("the next refresh token");
        assert_ne!(r1, r2, "{name}");
        let info = t
            .oidc
            .userinfo(&bearer(&second.access_token))
            .await
            .unwrap();
        assert_eq!(info["given_name"], "Петар", "{name}");

        // The first one again: refused, and every token of the grant is revoked.
        assert_eq!(
            refusal(t.oidc.token(&refresh(&r1, credentials())).await).code(),
            "invalid_grant",
            "{name}: reused"
        );
        for access in [&first.access_token, &second.access_token] {
            assert_eq!(
                refusal(t.oidc.userinfo(&bearer(access)).await).code(),
                "invalid_token",
                "{name}: revoked with its grant"
            );
        }
        assert_eq!(
            refusal(t.oidc.token(&refresh(&r2, credentials())).await).code(),
            "invalid_grant",
            "{name}: the grant's latest refresh token too"
        );
        // …and not the citizen's other grant.
        t.oidc
            .userinfo(&bearer(&online.access_token))
            .await
            .unwrap();

        // A refresh token ends unused after its lifetime.
        let third = tokens(&t, &session, &client, "openid offline_access").await;
        let r3 = third.refresh_token.unwrap();
        t.clock.advance(REFRESH_TOKEN_LIFETIME);
        assert_eq!(
            refusal(t.oidc.token(&refresh(&r3, credentials())).await).code(),
            "invalid_grant",
            "{name}: expired"
        );

        // A withdrawn consent ends them too.
        let session = consentid_login(&t, &app, "petar@example.rs").await;
        let fourth = tokens(&t, &session, &client, "openid offline_access").await;
        let user = session.user.as_ref().unwrap();
        assert!(
            t.oidc.withdraw_consent(&user.id, &client.0).await.unwrap(),
            "{name}"
        );
        assert_eq!(
            refusal(
                t.oidc
                    .token(&refresh(&fourth.refresh_token.unwrap(), credentials()))
                    .await
            )
            .code(),
            "invalid_grant",
            "{name}: withdrawn"
        );
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_revokes_only_its_own_tokens_and_a_resource_server_introspects_them() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let app = citizen(&t, "petar@example.rs").await;
        let session = consentid_login(&t, &app, "petar@example.rs").await;
        let client = offline_client(&t).await;
        let other = offline_client(&t).await;
        let own = || secret(&client.0, &client.1);
        let by_other = || secret(&other.0, &other.1);

        // Introspection: for an authenticated client, what the token stands for.
        let issued = tokens(&t, &session, &client, "openid profile offline_access").await;
        let access = issued.access_token.clone();
        let answer = t.oidc.introspect(&by_other(), &access).await.unwrap();
        assert_eq!(answer["active"], true, "{name}: {answer}");
        assert_eq!(answer["client_id"], client.0.as_str(), "{name}");
        assert_eq!(answer["scope"], "openid profile offline_access", "{name}");
        assert_eq!(answer["token_type"], "Bearer", "{name}");
        assert_eq!(answer["iss"], t.oidc.issuer().as_str(), "{name}");
        let info = t.oidc.userinfo(&bearer(&access)).await.unwrap();
        assert_eq!(answer["sub"], info["sub"], "{name}: the client's own sub");
        assert_eq!(
            t.oidc.introspect(&own(), "no-such-token").await.unwrap(),
            serde_json::json!({ "active": false }),
            "{name}"
        );
        assert_eq!(
            refusal(t.oidc.introspect(&secret(&other.0, "wrong"), &access).await).code(),
            "invalid_client",
            "{name}"
        );
        // A public client proves nothing with its client_id: no token scanning through it
        // (RFC 7662 §2.1, §4).
        let (public, _) = t
            .oidc
            .register_client(ClientRegistration {
                public: true,
                ..registration(Profile::Basic, &[])
            })
            .await
            .unwrap();
        let as_public = ClientCredentials {
            client_id: Some(public.client_id.clone()),
            ..ClientCredentials::default()
        };
        assert_eq!(
            refusal(t.oidc.introspect(&as_public, &access).await).code(),
            "invalid_client",
            "{name}: a public client"
        );

        // Revocation: another client's attempt changes nothing and is answered the same.
        t.oidc.revoke(&by_other(), &access).await.unwrap();
        t.oidc.userinfo(&bearer(&access)).await.unwrap();
        t.oidc.revoke(&own(), "no-such-token").await.unwrap();
        // Its own access token: that token only.
        let refresh_token = issued.refresh_token.clone().unwrap();
        t.oidc.revoke(&own(), &access).await.unwrap();
        assert_eq!(
            refusal(t.oidc.userinfo(&bearer(&access)).await).code(),
            "invalid_token",
            "{name}"
        );
        assert_eq!(
            t.oidc.introspect(&by_other(), &access).await.unwrap(),
            serde_json::json!({ "active": false }),
            "{name}: revoked"
        );
        let rotated = t.oidc.token(&refresh(&refresh_token, own())).await.unwrap();
        // Its refresh token: the whole grant.
        t.oidc
            .revoke(&own(), rotated.refresh_token.as_deref().unwrap())
            .await
            .unwrap();
        assert_eq!(
            refusal(t.oidc.userinfo(&bearer(&rotated.access_token)).await).code(),
            "invalid_token",
            "{name}: the grant's access token"
        );
        assert_eq!(
            refusal(
                t.oidc
                    .token(&refresh(rotated.refresh_token.as_deref().unwrap(), own()))
                    .await
            )
            .code(),
            "invalid_grant",
            "{name}"
        );

        // A DPoP-bound token is introspected with its key's thumbprint (RFC 9449 §6.2).
        let key = fapi2::TestKey::new("dpop");
        let pkce = pkce();
        let code = code_of(
            &t,
            &allow(&t, &session, &params(&client.0, "openid", &pkce)).await,
        );
        let token_url = format!("{}/oidc/token", t.oidc.issuer());
        let bound = t
            .oidc
            .token(&TokenRequest {
                dpop: Some(key.dpop(
                    &t.oidc.dpop_nonce(),
                    "POST",
                    &token_url,
                    None,
                    "d-1",
                    t.now().0,
                )),
                ..token_request(&code, &pkce.verifier, own())
            })
            .await
            .unwrap();
        assert_eq!(bound.token_type, "DPoP", "{name}");
        let answer = t
            .oidc
            .introspect(&by_other(), &bound.access_token)
            .await
            .unwrap();
        assert_eq!(answer["token_type"], "DPoP", "{name}");
        assert_eq!(answer["cnf"]["jkt"], key.thumbprint().as_str(), "{name}");
        t.close().await;
    }
}
