//! Transaction approval (RFC 9396 `authorization_details` of type `eidportal_transaction`): the
//! citizen approves the service's text in a ConsentID login of its own, whatever session she
//! has; the code is bound to that login request, and the ID token and introspection return
//! what was approved. A login that did not show the text, a refusal on the phone, an approval
//! grown old or used once already, and details the phone cannot show get no code.

use serde_json::{json, Value};

use domain::oidc::{Profile, TRANSACTION_APPROVAL_WINDOW};
use proto::app::{Decision, ResponseOutcome};
use store::{AuditQueries as _, LoginQueries as _, LoginStore as _};

use super::{
    allow, citizen, code_of, param, params, pkce, refusal, registration, secret, token_request,
    verify_id_token, Pkce,
};
use crate::login::Session;
use crate::oidc::{AuthorizationParams, AuthorizeStep, ServiceLogin};
use crate::test_app::App;
use crate::test_support::{authorities, consentid_login, TestAuthority, PASSWORD};

const PAYMENT: &str = "Плаћање 1.200,00 RSD Републичком фонду";
const SERVICE: &str = "Пореска управа";

/// `authorization_details` with one transaction of `text`.
fn details(text: &str) -> String {
    json!([{ "type": "eidportal_transaction", "text": text }]).to_string()
}

/// An authorization request of `id` asking the citizen to approve `text`.
fn transaction_params(id: &str, text: &str, pkce: &Pkce) -> AuthorizationParams {
    AuthorizationParams {
        authorization_details: Some(details(text)),
        ..params(id, "openid profile", pkce)
    }
}

/// The login the portal starts for the request waiting at `query` (as `/login/mobile` does
/// with the `next` cookie), approved on the phone: the new session and the login's request.
async fn transaction_login(
    t: &TestAuthority,
    app: &App,
    query: &AuthorizationParams,
) -> (Session, domain::TxnId) {
    let path = format!(
        "/oidc/authorize?{}",
        serde_urlencoded::to_string(query).unwrap()
    );
    let waiting = t.oidc.login_waiting_at(&path).await.unwrap();
    let (_, browser) = t.login.new_session();
    let started = t
        .login
        .login_start_for(
            &browser,
            "petar@example.rs",
            "127.0.0.1",
            "test browser",
            &waiting.service,
            waiting.transaction.as_deref(),
        )
        .await
        .unwrap();
    assert_eq!(app.approve_next(t).await, ResponseOutcome::Approved);
    let (_, session) = t
        .login
        .login_complete(&browser, &started.txn_id)
        .await
        .unwrap();
    (session, started.txn_id)
}

/// A basic client the citizen allowed before (the consent is remembered): its id and secret.
async fn allowed_client(t: &TestAuthority, session: &Session) -> (String, String) {
    let (client, client_secret) = t
        .oidc
        .register_client(registration(Profile::Basic, &["profile"]))
        .await
        .unwrap();
    let id = client.client_id;
    code_of(
        t,
        &allow(t, session, &params(&id, "openid profile", &pkce())).await,
    );
    (id, client_secret.unwrap())
}

fn is_login(step: &AuthorizeStep) -> bool {
    matches!(step, AuthorizeStep::Login)
}

/// The error of an answer at the redirect URI (and that it carries no code).
fn error_of(step: AuthorizeStep) -> String {
    let response = match step {
        AuthorizeStep::Respond(response) => response,
        other => panic!("expected an answer, got {other:?}"),
    };
    assert_eq!(param(&response, "code"), None, "{response:?}");
    param(&response, "error").unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_approved_on_the_phone_lands_in_the_id_token_and_introspection() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let app = citizen(&t, "petar@example.rs").await;
        let session = consentid_login(&t, &app, "petar@example.rs").await;
        let (id, client_secret) = allowed_client(&t, &session).await;
        let pkce_1 = pkce();
        let query = transaction_params(&id, PAYMENT, &pkce_1);
        let request = t.oidc.authorization_request(&query).await.unwrap();
        assert_eq!(
            request.transaction.as_ref().map(|d| d.text.as_str()),
            Some(PAYMENT),
            "{name}"
        );

        // 1. A session whose login did not show the text gets no code, the consent
        //    remembered or not: the citizen logs in again (prompt=none: login_required).
        assert!(
            is_login(&t.oidc.authorize(&session, &request).await.unwrap()),
            "{name}"
        );
        let mut silent = request.clone();
        silent.params.prompt = Some("none".into());
        assert_eq!(
            error_of(t.oidc.authorize(&session, &silent).await.unwrap()),
            "login_required",
            "{name}"
        );
        assert!(
            t.oidc
                .decide(&session, &request, true)
                .await
                .map(|r| param(&r, "code").is_none())
                .unwrap(),
            "{name}: nor from the consent page"
        );

        // 2. The portal's login for this request: the phone names the service and shows
        //    the text; the citizen approves with her PIN.
        let path = format!(
            "/oidc/authorize?{}",
            serde_urlencoded::to_string(&query).unwrap()
        );
        assert_eq!(
            t.oidc.login_waiting_at(&path).await,
            Some(ServiceLogin {
                service: SERVICE.into(),
                transaction: Some(PAYMENT.into()),
            }),
            "{name}"
        );
        let (_, browser) = t.login.new_session();
        let started = t
            .login
            .login_start_for(
                &browser,
                "petar@example.rs",
                "127.0.0.1",
                "test browser",
                SERVICE,
                Some(PAYMENT),
            )
            .await
            .unwrap();
        let (_, shown) = app.next_request(&t).await;
        assert_eq!(shown.message.as_deref(), Some(PAYMENT), "{name}");
        assert_eq!(shown.rp.name, SERVICE, "{name}");
        assert_eq!(app.approve_next(&t).await, ResponseOutcome::Approved);
        let (_, approved) = t
            .login
            .login_complete(&browser, &started.txn_id)
            .await
            .unwrap();

        // 3. The code, and the approved details in the ID token and introspection.
        let AuthorizeStep::Respond(response) = t.oidc.authorize(&approved, &request).await.unwrap()
        else {
            panic!("{name}: the consent is remembered");
        };
        let code = code_of(&t, &response);
        let tokens = t
            .oidc
            .token(&token_request(
                &code,
                &pkce_1.verifier,
                secret(&id, &client_secret),
            ))
            .await
            .unwrap();
        let expected = json!([{ "type": "eidportal_transaction", "text": PAYMENT }]);
        let claims = verify_id_token(&t, tokens.id_token.as_deref().unwrap(), &id);
        assert_eq!(claims["authorization_details"], expected, "{name}");
        let answer = t
            .oidc
            .introspect(&secret(&id, &client_secret), &tokens.access_token)
            .await
            .unwrap();
        assert_eq!(answer["authorization_details"], expected, "{name}");

        // 4. The audit entry names the ConsentID request, whose stored approval is the
        //    device's signature over a message that covers the payload with the text.
        let entries = t.store.audit_entries().await.unwrap();
        let authorized = entries
            .iter()
            .rev()
            .find(|entry| entry.event == "oidc.authorized")
            .unwrap();
        let audited: Value = serde_json::from_str(&authorized.details).unwrap();
        assert_eq!(audited["approval_txn"], started.txn_id.as_str(), "{name}");
        assert_eq!(audited["authorization_details"], expected, "{name}");
        let txn = t.store.transaction(&started.txn_id).await.unwrap().unwrap();
        let mut tx = t.store.begin().await.unwrap();
        let (approval, signature) = tx.approval_of(&started.txn_id).await.unwrap().unwrap();
        drop(tx);
        let device = t
            .store
            .device(&app.device_id.as_str().into())
            .await
            .unwrap()
            .unwrap();
        proto::crypto::verify(&device.public_key, approval.as_bytes(), &signature)
            .expect("the device signed the approval");
        assert!(
            approval.contains(&format!(
                "\nctx={}\n",
                proto::crypto::b64(&proto::crypto::sha256(&txn.payload))
            )),
            "{name}: the approval covers the payload"
        );
        let signed: proto::app::RequestPayload = serde_json::from_slice(&txn.payload).unwrap();
        assert_eq!(signed.message.as_deref(), Some(PAYMENT), "{name}");

        // 5. One approval, one code: the same text asked again is not approved by it.
        let again = t
            .oidc
            .authorization_request(&transaction_params(&id, PAYMENT, &pkce()))
            .await
            .unwrap();
        assert_eq!(
            error_of(t.oidc.authorize(&approved, &again).await.unwrap()),
            "access_denied",
            "{name}"
        );
        // Another text: the citizen logs in again for it.
        let other = t
            .oidc
            .authorization_request(&transaction_params(
                &id,
                "Плаћање 12.000,00 RSD Републичком фонду",
                &pkce(),
            ))
            .await
            .unwrap();
        assert!(
            is_login(&t.oidc.authorize(&approved, &other).await.unwrap()),
            "{name}"
        );
        // A request without a transaction is answered from the session as ever, without
        // authorization_details.
        let plain_pkce = pkce();
        let plain = params(&id, "openid profile", &plain_pkce);
        let code = code_of(&t, &allow(&t, &approved, &plain).await);
        let tokens = t
            .oidc
            .token(&token_request(
                &code,
                &plain_pkce.verifier,
                secret(&id, &client_secret),
            ))
            .await
            .unwrap();
        let claims = verify_id_token(&t, tokens.id_token.as_deref().unwrap(), &id);
        assert!(claims.get("authorization_details").is_none(), "{name}");
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_is_not_approved_by_another_text_a_refusal_an_old_approval_or_a_password() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let app = citizen(&t, "petar@example.rs").await;
        let session = consentid_login(&t, &app, "petar@example.rs").await;
        let (id, client_secret) = allowed_client(&t, &session).await;
        let request = t
            .oidc
            .authorization_request(&transaction_params(&id, PAYMENT, &pkce()))
            .await
            .unwrap();

        // A login that showed another text (another payment of the same service).
        let (other, _) = transaction_login(
            &t,
            &app,
            &transaction_params(&id, "Плаћање 1.200,01 RSD Републичком фонду", &pkce()),
        )
        .await;
        assert!(
            is_login(&t.oidc.authorize(&other, &request).await.unwrap()),
            "{name}"
        );
        assert_eq!(
            param(
                &t.oidc.decide(&other, &request, true).await.unwrap(),
                "error"
            ),
            Some("access_denied"),
            "{name}"
        );

        // The citizen refuses the text on the phone: the login never completes.
        let (_, browser) = t.login.new_session();
        let started = t
            .login
            .login_start_for(
                &browser,
                "petar@example.rs",
                "127.0.0.1",
                "test browser",
                SERVICE,
                Some(PAYMENT),
            )
            .await
            .unwrap();
        let (envelope, shown) = app.next_request(&t).await;
        assert_eq!(shown.message.as_deref(), Some(PAYMENT), "{name}");
        let code =
            proto::crypto::verification_code(&proto::crypto::unb64(&shown.challenge).unwrap());
        let (txn, deny) = app.answer(&envelope, Decision::Deny, &code, None, t.now());
        assert_eq!(
            app.send(&t, &txn, &deny).await.unwrap(),
            ResponseOutcome::Denied
        );
        assert!(
            t.login
                .login_complete(&browser, &started.txn_id)
                .await
                .is_err(),
            "{name}: a refused login makes no session"
        );

        // An approval older than the window.
        let (late, _) =
            transaction_login(&t, &app, &transaction_params(&id, PAYMENT, &pkce())).await;
        t.clock.advance(TRANSACTION_APPROVAL_WINDOW + 1);
        assert!(
            is_login(&t.oidc.authorize(&late, &request).await.unwrap()),
            "{name}"
        );

        // A password session: no phone showed anything.
        let (_, anonymous) = t.login.new_session();
        let (_, by_password) = t
            .login
            .password_login(&anonymous, "petar@example.rs", PASSWORD, "127.0.0.1")
            .await
            .unwrap();
        assert!(
            is_login(&t.oidc.authorize(&by_password, &request).await.unwrap()),
            "{name}"
        );

        // Details the phone cannot show exactly, at the authorization endpoint (answered at
        // the redirect URI) and at PAR (RFC 9396 §5).
        for refused in [
            details(&"ш".repeat(201)),
            details("Плаћање\u{7}1.200"),
            details("Плаћање \u{202E}DSR"),
            json!([{ "type": "payment_initiation", "text": PAYMENT }]).to_string(),
            json!([
                { "type": "eidportal_transaction", "text": PAYMENT },
                { "type": "eidportal_transaction", "text": "Плаћање 1,00 RSD" },
            ])
            .to_string(),
        ] {
            let query = AuthorizationParams {
                authorization_details: Some(refused.clone()),
                ..params(&id, "openid profile", &pkce())
            };
            let error = t.oidc.authorization_request(&query).await.unwrap_err();
            assert_eq!(
                error.error, "invalid_authorization_details",
                "{name}: {refused}"
            );
            let redirect = error.redirect.expect("answered at the redirect URI");
            assert_eq!(
                param(&redirect, "error"),
                Some("invalid_authorization_details"),
                "{name}"
            );
            assert_eq!(
                refusal(
                    t.oidc
                        .push_request(&secret(&id, &client_secret), query)
                        .await
                )
                .code(),
                "invalid_authorization_details",
                "{name}: {refused}"
            );
        }
        assert_eq!(
            t.oidc.discovery()["authorization_details_types_supported"],
            json!(["eidportal_transaction"]),
            "{name}"
        );
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_transaction_is_shown_on_the_phone_and_approved_as_a_direct_one() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let app = citizen(&t, "petar@example.rs").await;
        let session = consentid_login(&t, &app, "petar@example.rs").await;
        let (id, client_secret) = allowed_client(&t, &session).await;
        let pkce_1 = pkce();
        let (request_uri, _) = t
            .oidc
            .push_request(
                &secret(&id, &client_secret),
                transaction_params(&id, PAYMENT, &pkce_1),
            )
            .await
            .unwrap();
        // The browser brings only client_id and request_uri; the text comes from the pushed
        // request, read (not spent) for the phone.
        let query = AuthorizationParams {
            client_id: Some(id.clone()),
            request_uri: Some(request_uri),
            ..AuthorizationParams::default()
        };
        let request = t.oidc.authorization_request(&query).await.unwrap();
        assert!(
            is_login(&t.oidc.authorize(&session, &request).await.unwrap()),
            "{name}"
        );
        let (approved, txn) = transaction_login(&t, &app, &query).await;
        let signed: proto::app::RequestPayload =
            serde_json::from_slice(&t.store.transaction(&txn).await.unwrap().unwrap().payload)
                .unwrap();
        assert_eq!(signed.message.as_deref(), Some(PAYMENT), "{name}");
        let request = t.oidc.authorization_request(&query).await.unwrap();
        let AuthorizeStep::Respond(response) = t.oidc.authorize(&approved, &request).await.unwrap()
        else {
            panic!("{name}: the consent is remembered");
        };
        let tokens = t
            .oidc
            .token(&token_request(
                &code_of(&t, &response),
                &pkce_1.verifier,
                secret(&id, &client_secret),
            ))
            .await
            .unwrap();
        let claims = verify_id_token(&t, tokens.id_token.as_deref().unwrap(), &id);
        assert_eq!(
            claims["authorization_details"],
            json!([{ "type": "eidportal_transaction", "text": PAYMENT }]),
            "{name}"
        );
        t.close().await;
    }
}
