//! The ID-token key is the key backend's (issue 23: "signing goes through our key backend, so
//! the ID-token key can live in the HSM"): on software keys and on SoftHSM2 (when scripts/test
//! configured it), the tokens it signs verify with `jsonwebtoken` against the JWKS, and the
//! same key is found again after a restart, so that tokens already issued keep verifying; and
//! the key rolls over (`eidportal oidc keys rotate`): the next key published first, signing
//! after the overlap, the old one published until its tokens have ended.

use std::sync::Arc;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use domain::oidc::{Profile, ID_TOKEN_LIFETIME};
use pki::{KeyBackend, MasterKey, SoftwareKeyBackend};
use store::Store;

use super::{allow, code_of, params, pkce, registration, secret, token_request, verify_id_token};
use crate::oidc::{LogoutRequest, TokenResponse};
use crate::test_support::{enrol, settings, TestAuthority, PASSWORD, START};
use crate::{Authority, ManualClock};

/// Software keys always; SoftHSM2 too when scripts/test configured it.
fn key_backends() -> Vec<(&'static str, Arc<dyn KeyBackend>)> {
    let mut out: Vec<(&'static str, Arc<dyn KeyBackend>)> = vec![(
        "software",
        Arc::new(SoftwareKeyBackend::new(MasterKey::generate())),
    )];
    hsm::test_support::private_token().expect("a private copy of the test token");
    if let (Ok(module), Ok(token), Ok(pin)) = (
        std::env::var("EIDPORTAL_TEST_PKCS11_MODULE"),
        std::env::var("EIDPORTAL_TEST_PKCS11_TOKEN"),
        std::env::var("EIDPORTAL_TEST_PKCS11_PIN"),
    ) {
        let backend = hsm::Pkcs11Backend::open(module.as_ref(), &token, hsm::Pin::new(pin))
            .expect("open the test token");
        out.push(("pkcs11", Arc::new(backend)));
    } else if std::env::var_os("EIDPORTAL_TEST_REQUIRE_ALL").is_some() {
        panic!("EIDPORTAL_TEST_PKCS11_* are not set but EIDPORTAL_TEST_REQUIRE_ALL is: run scripts/test");
    } else {
        eprintln!(
            "note: PKCS#11 case skipped (EIDPORTAL_TEST_PKCS11_* not set; scripts/test sets them)"
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_id_token_key_is_the_key_backends_and_the_same_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    for (backend, keys) in key_backends() {
        let sub = dir.path().join(backend);
        std::fs::create_dir_all(&sub).unwrap();
        for db in store::test_support::databases(&sub).await {
            let clock = Arc::new(ManualClock::new(START));
            let open = || async {
                Authority::open(
                    Store::connect(&db.url).await.unwrap(),
                    keys.clone(),
                    clock.clone(),
                    settings(&sub),
                )
                .await
                .unwrap_or_else(|e| panic!("{backend} on {}: open: {e}", db.name))
            };
            let t = TestAuthority {
                name: db.name,
                authority: open().await,
                clock: clock.clone(),
                outbox: sub.join("outbox"),
            };
            enrol(&t, "petar@example.rs").await;
            let (client, client_secret) = t
                .oidc
                .register_client(registration(Profile::Basic, &[]))
                .await
                .unwrap();
            let (_, anonymous) = t.login.new_session();
            let (_, session) = t
                .login
                .password_login(&anonymous, "petar@example.rs", PASSWORD, "127.0.0.1")
                .await
                .unwrap();
            let pkce = pkce();
            let code = code_of(
                &t,
                &allow(&t, &session, &params(&client.client_id, "openid", &pkce)).await,
            );
            let tokens = t
                .oidc
                .token(&token_request(
                    &code,
                    &pkce.verifier,
                    secret(&client.client_id, client_secret.as_deref().unwrap()),
                ))
                .await
                .unwrap();
            verify_id_token(&t, tokens.id_token.as_deref().unwrap(), &client.client_id);
            let jwks = t.oidc.jwks().unwrap();
            t.close().await;

            let again = TestAuthority {
                name: db.name,
                authority: open().await,
                clock: clock.clone(),
                outbox: sub.join("outbox"),
            };
            assert_eq!(
                again.oidc.jwks().unwrap(),
                jwks,
                "{backend} on {}: the same key after a restart",
                db.name
            );
            verify_id_token(
                &again,
                tokens.id_token.as_deref().unwrap(),
                &client.client_id,
            );
            again.close().await;
        }
    }
}

/// An ID token of a password login for `client` (id, secret).
async fn id_token(t: &TestAuthority, (id, client_secret): &(String, String)) -> String {
    let (_, anonymous) = t.login.new_session();
    let (_, session) = t
        .login
        .password_login(&anonymous, "petar@example.rs", PASSWORD, "127.0.0.1")
        .await
        .unwrap();
    let pkce = pkce();
    let code = code_of(t, &allow(t, &session, &params(id, "openid", &pkce)).await);
    let tokens: TokenResponse = t
        .oidc
        .token(&token_request(
            &code,
            &pkce.verifier,
            secret(id, client_secret),
        ))
        .await
        .unwrap();
    tokens.id_token.unwrap()
}

/// The `kid` of a token's header.
fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// The `kid`s the JWKS publishes now.
fn published(t: &TestAuthority) -> Vec<String> {
    let jwks: JwkSet = serde_json::from_value(t.oidc.jwks().unwrap()).unwrap();
    jwks.keys
        .iter()
        .map(|k| k.common.key_id.clone().unwrap())
        .collect()
}

/// Whether `token` verifies with a key the JWKS publishes now (as a client with a fresh copy
/// of it checks it).
fn verifies_with_the_jwks(t: &TestAuthority, token: &str, client_id: &str) -> bool {
    let jwks: JwkSet = serde_json::from_value(t.oidc.jwks().unwrap()).unwrap();
    let Some(jwk) = jwks.find(&kid(token)) else {
        return false;
    };
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[client_id]);
    validation.validate_exp = false;
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_id_token_key_rolls_over_published_first_and_kept_until_its_tokens_end() {
    let dir = tempfile::tempdir().unwrap();
    for (backend, keys) in key_backends() {
        let sub = dir.path().join(backend);
        std::fs::create_dir_all(&sub).unwrap();
        for db in store::test_support::databases(&sub).await {
            let name = format!("{backend} on {}", db.name);
            let clock = Arc::new(ManualClock::new(START));
            let open = || async {
                TestAuthority {
                    name: db.name,
                    authority: Authority::open(
                        Store::connect(&db.url).await.unwrap(),
                        keys.clone(),
                        clock.clone(),
                        settings(&sub),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{backend} on {}: open: {e}", db.name)),
                    clock: clock.clone(),
                    outbox: sub.join("outbox"),
                }
            };
            let t = open().await;
            enrol(&t, "petar@example.rs").await;
            let (client, client_secret) = t
                .oidc
                .register_client(registration(Profile::Basic, &[]))
                .await
                .unwrap();
            let client = (client.client_id, client_secret.unwrap());
            let old_token = id_token(&t, &client).await;
            let old = kid(&old_token);
            assert_eq!(published(&t), vec![old.clone()], "{name}");

            // 1. Rotated with a minute's overlap: the next key is published, the old one signs.
            let generation = t.oidc.rotate_keys(60).await.unwrap();
            assert_eq!(generation.generation, 1, "{name}");
            let keys = published(&t);
            assert_eq!(keys.len(), 2, "{name}: {keys:?}");
            let new = keys.iter().find(|k| **k != old).unwrap().clone();
            assert_eq!(
                kid(&id_token(&t, &client).await),
                old,
                "{name}: still the old key"
            );

            // 2. After the overlap the new key signs; the old one stays published while its
            // tokens live.
            t.clock.advance(60);
            let new_token = id_token(&t, &client).await;
            assert_eq!(kid(&new_token), new, "{name}");
            verify_id_token(&t, &new_token, &client.0);
            assert!(
                verifies_with_the_jwks(&t, &old_token, &client.0),
                "{name}: an old token still verifies"
            );
            t.clock.advance(ID_TOKEN_LIFETIME - 1);
            assert_eq!(published(&t).len(), 2, "{name}");
            t.clock.advance(1);
            assert_eq!(
                published(&t),
                vec![new.clone()],
                "{name}: the old key's tokens have ended"
            );
            // An old ID token is still ours as a logout hint.
            let plan = t
                .oidc
                .logout_request(&LogoutRequest {
                    id_token_hint: Some(old_token.clone()),
                    ..LogoutRequest::default()
                })
                .await
                .unwrap();
            assert_eq!(plan.service.as_deref(), Some("Пореска управа"), "{name}");
            t.close().await;

            // 3. Reopened: the same keys, the new one signing.
            let again = open().await;
            assert_eq!(
                published(&again),
                vec![new.clone()],
                "{name}: after a restart"
            );
            assert_eq!(kid(&id_token(&again, &client).await), new, "{name}");
            again.close().await;
        }
    }
}
