//! The ID-token key is the key backend's (issue 23: "signing goes through our key backend, so
//! the ID-token key can live in the HSM"): on software keys and on SoftHSM2 (when scripts/test
//! configured it), the tokens it signs verify with `jsonwebtoken` against the JWKS, and the
//! same key is found again after a restart, so that tokens already issued keep verifying.

use std::sync::Arc;

use domain::oidc::Profile;
use pki::{KeyBackend, MasterKey, SoftwareKeyBackend};
use store::Store;

use super::{allow, code_of, params, pkce, registration, secret, token_request, verify_id_token};
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
