//! Every refusal of the OpenID provider (issue 23) through the router in-process:
//! `server::http::app(state).oneshot(request)` on a temporary store with a manual clock that
//! the tests move (a code older than 60 s, a CIBA request past its end, a DPoP proof out of its
//! window). Each test asserts what a service or a browser sees (the status, the OAuth `error`,
//! where the browser goes) and that the refused request changed nothing it must not. The whole
//! flows, with an independent relying party and a browser, stay in `oidc_e2e.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/provider.rs"]
mod provider;

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, Header};
use serde_json::json;

use authority::oidc::{ClientRegistration, CIBA_GRANT};
use authority::test_app::App;
use domain::login::TRANSACTION_LIFETIME;
use domain::oidc::{Acr, CIBA_INTERVAL, CODE_LIFETIME, PROOF_IAT_WINDOW};
use proto::app::Decision;

use provider::{
    authorization, basic, encode, form, fresh, Answer, Browser, Client, ClientKey, Dpop, Pkce,
    Provider, AFTER_LOGOUT, ISSUER, REDIRECT,
};

const EMAIL: &str = "petar@example.rs";

/// Form fields or headers: names and values.
type Fields = Vec<(&'static str, String)>;

/// A refusal as RFC 6749 §5.2 wants it: `status`, the OAuth `error`, kept by no cache.
fn assert_refused(answer: &Answer, status: StatusCode, error: &str) {
    assert_eq!(answer.status, status, "{}", answer.text());
    assert_eq!(answer.error(), error, "{}", answer.text());
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    // RFC 9110 §15.5.2: a 401 says how to authenticate; a client's, with HTTP Basic
    // (RFC 6749 §5.2), the one scheme for client credentials that HTTP has.
    if status == StatusCode::UNAUTHORIZED {
        let challenge = answer.header("www-authenticate");
        assert!(
            challenge.is_some(),
            "a 401 without a challenge: {}",
            answer.text()
        );
        if error == "invalid_client" {
            assert!(challenge.unwrap().starts_with("Basic "), "{challenge:?}");
        }
    }
}

/// A refusal at a resource (RFC 6750 §3, RFC 9449 §7.1): 401, the OAuth `error` in the body
/// and in the `WWW-Authenticate` challenge, which names both schemes.
fn assert_refused_at_resource(answer: &Answer, error: &str) {
    assert_refused(answer, StatusCode::UNAUTHORIZED, error);
    let challenge = answer.header("www-authenticate").unwrap();
    assert!(
        challenge.starts_with(&format!("DPoP error=\"{error}\"")) && challenge.contains("Bearer"),
        "{challenge}"
    );
}

/// An authorization request refused at the service's registered redirect URI: `error` there,
/// with `state` and `iss`, and no code.
fn assert_refused_at_redirect(answer: &Answer, error: &str) {
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text());
    let location = answer.location().unwrap();
    assert!(location.starts_with(&format!("{REDIRECT}?")), "{location}");
    assert_eq!(answer.redirect_param("error").as_deref(), Some(error));
    assert_eq!(answer.redirect_param("state").as_deref(), Some("state-1"));
    assert_eq!(answer.redirect_param("iss").as_deref(), Some(ISSUER));
    assert_eq!(answer.redirect_param("code"), None, "{location}");
}

/// A request refused on a page of ours, sent nowhere: 400, HTML, no `Location`, saying `why`.
fn assert_refused_on_page(answer: &Answer, why: &str) {
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
    assert_eq!(answer.location(), None);
    assert!(answer
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(answer.text().contains(why), "{}", answer.text());
}

/// A provider with a citizen logged in with ConsentID, and the citizen's app.
async fn with_citizen() -> (Provider, App, Browser) {
    let provider = Provider::start().await;
    let app = provider.citizen(EMAIL).await;
    let browser = provider.consentid_login(&app, EMAIL).await;
    (provider, app, browser)
}

/// Whether `browser` is still logged in (its account page opens).
async fn logged_in(provider: &Provider, browser: &mut Browser) -> bool {
    let answer = provider
        .browse(browser, Method::GET, "/account", None)
        .await;
    answer.status == StatusCode::OK
}

/// The consent form (**Дозволи**) posted for `query` with the session's own CSRF token, taken
/// from its account page: a request the authorization endpoint refuses is refused here too.
async fn post_consent(provider: &Provider, browser: &mut Browser, query: &str) -> Answer {
    let page = provider
        .browse(browser, Method::GET, "/account", None)
        .await;
    provider
        .browse(
            browser,
            Method::POST,
            "/oidc/authorize",
            Some(form(&[
                ("csrf", &page.csrf()),
                ("query", query),
                ("decision", "allow"),
            ])),
        )
        .await
}

// ---- The authorization endpoint ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_uri_not_registered_or_only_a_prefix_of_one_gets_a_page_and_no_redirect() {
    let (provider, _app, mut browser) = with_citizen().await;
    let client = provider.register(basic(&["profile"])).await;
    let pkce = Pkce::generate();
    for uri in [
        "https://evil.example/cb",
        // Prefix matches, either way, and the same URI with more to it.
        "https://rp.example/c",
        "https://rp.example/cb/more",
        "https://rp.example/cb?next=https://evil.example",
        "https://rp.example/cb#x",
        "https://rp.example/CB",
        "http://rp.example/cb",
    ] {
        let mut query = authorization(&client.id, "openid", &pkce);
        query[2].1 = uri.into();
        let query = encode(&query);
        let answer = provider.authorize(&mut browser, &query).await;
        assert_refused_on_page(&answer, "redirect_uri is not registered for this client");
        // Nor through the consent form.
        let posted = post_consent(&provider, &mut browser, &query).await;
        assert_refused_on_page(&posted, "redirect_uri is not registered for this client");
    }
    // The registered URI itself is answered there.
    let code = provider
        .code(
            &mut browser,
            &encode(&authorization(&client.id, "openid", &pkce)),
        )
        .await;
    assert!(!code.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fapi2_client_that_skips_par_is_refused_at_its_redirect_uri() {
    let (provider, _app, mut browser) = with_citizen().await;
    let key = ClientKey::new("rp-1");
    let client = provider.fapi2(&key, &["profile"]).await;
    let pkce = Pkce::generate();
    let query = encode(&authorization(&client.id, "openid profile", &pkce));
    let answer = provider.authorize(&mut browser, &query).await;
    assert_refused_at_redirect(&answer, "invalid_request");
    assert!(answer
        .redirect_param("error_description")
        .unwrap()
        .contains("PAR"));
    assert_refused_at_redirect(
        &post_consent(&provider, &mut browser, &query).await,
        "invalid_request",
    );
    // Pushed first, the same request gets a code.
    provider
        .fapi2_code(&client, &key, &mut browser, &pkce)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acr_high_after_a_password_login_is_refused_with_access_denied() {
    let provider = Provider::start().await;
    let app = provider.citizen(EMAIL).await;
    let client = provider.register(basic(&["profile"])).await;
    let mut by_password = provider.password_login(EMAIL).await;
    let high = |pkce: &Pkce| {
        let mut query = authorization(&client.id, "openid profile", pkce);
        query.push(("acr_values", Acr::High.uri().into()));
        encode(&query)
    };
    let pkce = Pkce::generate();
    let answer = provider.authorize(&mut by_password, &high(&pkce)).await;
    assert_refused_at_redirect(&answer, "access_denied");
    // Nor by posting the consent form for it.
    let posted = post_consent(&provider, &mut by_password, &high(&pkce)).await;
    assert_refused_at_redirect(&posted, "access_denied");
    // ConsentID reaches high.
    let mut by_consentid = provider.consentid_login(&app, EMAIL).await;
    provider.code(&mut by_consentid, &high(&pkce)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jmbg_scope_is_refused_to_a_client_not_registered_with_allow_jmbg() {
    let (provider, _app, mut browser) = with_citizen().await;
    let client = provider.register(basic(&["profile"])).await;
    let pkce = Pkce::generate();
    let query = encode(&authorization(&client.id, "openid jmbg", &pkce));
    assert_refused_at_redirect(
        &provider.authorize(&mut browser, &query).await,
        "invalid_scope",
    );
    // Pushed by a fapi2 client, refused when pushed.
    let key = ClientKey::new("rp-1");
    let fapi2 = provider.fapi2(&key, &["profile"]).await;
    let pushed = provider
        .push(
            &fapi2,
            &key,
            &fresh("par"),
            &authorization(&fapi2.id, "openid jmbg", &pkce),
        )
        .await;
    assert_refused(&pushed, StatusCode::BAD_REQUEST, "invalid_scope");
    // A client registered with it gets the JMBG.
    let allowed = provider
        .register(ClientRegistration {
            allow_jmbg: true,
            ..basic(&[])
        })
        .await;
    let tokens = provider
        .logged_in(&allowed, &mut browser, "openid jmbg")
        .await;
    let info = provider.userinfo(&tokens.access_token).await;
    assert_eq!(info.json()["jmbg"], "0101990710008", "{}", info.text());
}

// ---- Codes ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_code_is_refused_and_the_tokens_issued_from_it_are_revoked() {
    let (provider, _app, mut browser) = with_citizen().await;
    let client = provider
        .register(basic(&["profile", "offline_access"]))
        .await;
    let pkce = Pkce::generate();
    let query = encode(&authorization(
        &client.id,
        "openid profile offline_access",
        &pkce,
    ));
    let code = provider.code(&mut browser, &query).await;
    let tokens = provider.tokens(&client, &code, &pkce.verifier).await;
    let refresh = tokens.refresh_token.clone().unwrap();
    assert!(provider.active(&client, &tokens.access_token).await);
    assert_eq!(
        provider.userinfo(&tokens.access_token).await.status,
        StatusCode::OK
    );

    let again = provider.exchange(&client, &code, &pkce.verifier).await;
    assert_refused(&again, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(!provider.active(&client, &tokens.access_token).await);
    assert!(!provider.active(&client, &refresh).await);
    assert_refused_at_resource(
        &provider.userinfo(&tokens.access_token).await,
        "invalid_token",
    );
    let mut fields = client.secret_fields();
    fields.extend([
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", refresh),
    ]);
    assert_refused(
        &provider.post("/oidc/token", &[], encode(&fields)).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pkce_verifier_is_refused_and_leaves_the_code_to_its_client() {
    let (provider, _app, mut browser) = with_citizen().await;
    let client = provider.register(basic(&["profile"])).await;
    let pkce = Pkce::generate();
    let code = provider
        .code(
            &mut browser,
            &encode(&authorization(&client.id, "openid", &pkce)),
        )
        .await;
    for verifier in [
        Pkce::generate().verifier,
        String::new(),
        pkce.challenge.clone(),
    ] {
        let answer = provider.exchange(&client, &code, &verifier).await;
        assert_refused(&answer, StatusCode::BAD_REQUEST, "invalid_grant");
    }
    // Whoever holds a stolen code cannot spend it without the verifier, nor spoil it for the
    // service that has the verifier.
    provider.tokens(&client, &code, &pkce.verifier).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_is_refused_once_sixty_seconds_old() {
    let (provider, _app, mut browser) = with_citizen().await;
    let client = provider.register(basic(&["profile"])).await;
    let (first, second) = (Pkce::generate(), Pkce::generate());
    let first_code = provider
        .code(
            &mut browser,
            &encode(&authorization(&client.id, "openid", &first)),
        )
        .await;
    let second_code = provider
        .code(
            &mut browser,
            &encode(&authorization(&client.id, "openid", &second)),
        )
        .await;
    assert_eq!(CODE_LIFETIME, 60);
    provider.clock.advance(CODE_LIFETIME - 1);
    provider.tokens(&client, &first_code, &first.verifier).await;
    provider.clock.advance(1);
    let late = provider
        .exchange(&client, &second_code, &second.verifier)
        .await;
    assert_refused(&late, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(late.text().contains("expired"), "{}", late.text());
}

// ---- DPoP ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_proof_for_another_url_or_method_is_refused_at_the_token_endpoint() {
    let (provider, _app, mut browser) = with_citizen().await;
    let key = ClientKey::new("rp-1");
    let client = provider.fapi2(&key, &["profile"]).await;
    let pkce = Pkce::generate();
    let code = provider
        .fapi2_code(&client, &key, &mut browser, &pkce)
        .await;
    let nonce = provider.dpop_nonce().await;
    let token_url = format!("{ISSUER}/oidc/token");
    let proof = |method: &'static str, url: String| {
        key.dpop(Dpop {
            method,
            url: &url,
            jti: &fresh("proof"),
            iat: provider.now(),
            nonce: Some(&nonce),
            access_token: None,
        })
    };
    for wrong in [
        proof("POST", format!("{ISSUER}/oidc/userinfo")),
        proof("POST", "https://evil.example/oidc/token".into()),
        proof("GET", token_url.clone()),
        proof("PUT", token_url.clone()),
    ] {
        let answer = provider
            .fapi2_exchange(&client, &key, &code, &pkce, &fresh("a"), Some(&wrong))
            .await;
        assert_refused(&answer, StatusCode::BAD_REQUEST, "invalid_dpop_proof");
    }
    let none = provider
        .fapi2_exchange(&client, &key, &code, &pkce, &fresh("a"), None)
        .await;
    assert_refused(&none, StatusCode::BAD_REQUEST, "invalid_dpop_proof");
    // The code was not spent by them.
    let answer = provider
        .fapi2_exchange(
            &client,
            &key,
            &code,
            &pkce,
            &fresh("a"),
            Some(&proof("POST", token_url)),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json()["token_type"], "DPoP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_proof_without_the_server_nonce_is_answered_use_dpop_nonce() {
    let (provider, _app, mut browser) = with_citizen().await;
    let key = ClientKey::new("rp-1");
    let client = provider.fapi2(&key, &["profile"]).await;
    let pkce = Pkce::generate();
    let code = provider
        .fapi2_code(&client, &key, &mut browser, &pkce)
        .await;
    let token_url = format!("{ISSUER}/oidc/token");
    let without = key.dpop(Dpop {
        method: "POST",
        url: &token_url,
        jti: &fresh("proof"),
        iat: provider.now(),
        nonce: None,
        access_token: None,
    });
    let answer = provider
        .fapi2_exchange(&client, &key, &code, &pkce, &fresh("a"), Some(&without))
        .await;
    // RFC 9449 §8: 400 at the token endpoint, with the nonce to use.
    assert_refused(&answer, StatusCode::BAD_REQUEST, "use_dpop_nonce");
    let nonce = answer.header("dpop-nonce").unwrap().to_owned();
    let with_nonce = key.dpop(Dpop {
        method: "POST",
        url: &token_url,
        jti: &fresh("proof"),
        iat: provider.now(),
        nonce: Some(&nonce),
        access_token: None,
    });
    let answer = provider
        .fapi2_exchange(&client, &key, &code, &pkce, &fresh("a"), Some(&with_nonce))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let token = answer.json()["access_token"].as_str().unwrap().to_owned();

    // At userinfo: 401 (RFC 9449 §9), with the nonce; one two minutes old is no longer ours.
    let userinfo_url = format!("{ISSUER}/oidc/userinfo");
    let at_userinfo = |nonce: Option<&str>| {
        key.dpop(Dpop {
            method: "GET",
            url: &userinfo_url,
            jti: &fresh("proof"),
            iat: provider.now(),
            nonce,
            access_token: Some(&token),
        })
    };
    let auth_header = format!("DPoP {token}");
    let answer = provider
        .resource(
            Method::GET,
            "/oidc/userinfo",
            &auth_header,
            Some(&at_userinfo(None)),
        )
        .await;
    assert_refused_at_resource(&answer, "use_dpop_nonce");
    assert!(answer.header("dpop-nonce").is_some());
    provider.clock.advance(120);
    let answer = provider
        .resource(
            Method::GET,
            "/oidc/userinfo",
            &auth_header,
            Some(&at_userinfo(Some(&nonce))),
        )
        .await;
    assert_refused_at_resource(&answer, "use_dpop_nonce");
    let fresh_nonce = answer.header("dpop-nonce").unwrap().to_owned();
    assert_ne!(fresh_nonce, nonce);
    let answer = provider
        .resource(
            Method::GET,
            "/oidc/userinfo",
            &auth_header,
            Some(&at_userinfo(Some(&fresh_nonce))),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_dpop_proof_is_refused() {
    let (provider, _app, mut browser) = with_citizen().await;
    let key = ClientKey::new("rp-1");
    let client = provider.fapi2(&key, &["profile"]).await;
    let tokens = provider.fapi2_logged_in(&client, &key, &mut browser).await;
    let nonce = provider.dpop_nonce().await;
    let proof = key.dpop(Dpop {
        method: "GET",
        url: &format!("{ISSUER}/oidc/userinfo"),
        jti: "once",
        iat: provider.now(),
        nonce: Some(&nonce),
        access_token: Some(&tokens.access_token),
    });
    let auth_header = format!("DPoP {}", tokens.access_token);
    let first = provider
        .resource(Method::GET, "/oidc/userinfo", &auth_header, Some(&proof))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(first.json()["given_name"], "Петар");
    let replayed = provider
        .resource(Method::GET, "/oidc/userinfo", &auth_header, Some(&proof))
        .await;
    assert_refused_at_resource(&replayed, "invalid_dpop_proof");
    // The same jti in a new proof (a new signature) is a replay too.
    let again = key.dpop(Dpop {
        method: "GET",
        url: &format!("{ISSUER}/oidc/userinfo"),
        jti: "once",
        iat: provider.now(),
        nonce: Some(&nonce),
        access_token: Some(&tokens.access_token),
    });
    assert_ne!(again, proof);
    let replayed = provider
        .resource(Method::GET, "/oidc/userinfo", &auth_header, Some(&again))
        .await;
    assert_refused_at_resource(&replayed, "invalid_dpop_proof");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_proof_is_refused_once_its_iat_is_out_of_the_window() {
    let (provider, _app, mut browser) = with_citizen().await;
    let key = ClientKey::new("rp-1");
    let client = provider.fapi2(&key, &["profile"]).await;
    let tokens = provider.fapi2_logged_in(&client, &key, &mut browser).await;
    let nonce = provider.dpop_nonce().await;
    let made_now = |jti: &str, iat| {
        key.dpop(Dpop {
            method: "GET",
            url: &format!("{ISSUER}/oidc/userinfo"),
            jti,
            iat,
            nonce: Some(&nonce),
            access_token: Some(&tokens.access_token),
        })
    };
    let auth_header = format!("DPoP {}", tokens.access_token);
    let send = |proof: String| {
        let provider = &provider;
        let auth_header = auth_header.clone();
        async move {
            provider
                .resource(Method::GET, "/oidc/userinfo", &auth_header, Some(&proof))
                .await
        }
    };
    let now = provider.now();
    let (on_the_edge, past_it) = (made_now("a", now), made_now("b", now));
    let from_the_future = made_now("c", now.plus_seconds(PROOF_IAT_WINDOW + 1));
    assert_refused_at_resource(&send(from_the_future).await, "invalid_dpop_proof");
    provider.clock.advance(PROOF_IAT_WINDOW);
    assert_eq!(send(on_the_edge).await.status, StatusCode::OK);
    provider.clock.advance(1);
    assert_refused_at_resource(&send(past_it).await, "invalid_dpop_proof");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_bound_token_is_refused_at_userinfo_without_its_proof() {
    let (provider, _app, mut browser) = with_citizen().await;
    let key = ClientKey::new("rp-1");
    let client = provider.fapi2(&key, &["profile"]).await;
    let tokens = provider.fapi2_logged_in(&client, &key, &mut browser).await;
    let token = &tokens.access_token;
    let no_proof = provider
        .resource(
            Method::GET,
            "/oidc/userinfo",
            &format!("DPoP {token}"),
            None,
        )
        .await;
    assert_refused_at_resource(&no_proof, "invalid_dpop_proof");
    let as_bearer = provider.userinfo(token).await;
    assert_refused_at_resource(&as_bearer, "invalid_token");
    // Another key's proof, right in every other way.
    let other = ClientKey::new("rp-1");
    let by_other = provider.userinfo_dpop(&other, token, &fresh("u")).await;
    assert_refused_at_resource(&by_other, "invalid_dpop_proof");
    let answer = provider.userinfo_dpop(&key, token, &fresh("u")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
}

// ---- Client authentication -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_client_assertion_or_one_signed_by_another_clients_key_is_refused() {
    let (provider, _app, mut browser) = with_citizen().await;
    let key = ClientKey::new("rp-1");
    let client = provider.fapi2(&key, &["profile"]).await;
    let other_key = ClientKey::new("rp-2");
    let other = provider.fapi2(&other_key, &["profile"]).await;
    let pkce = Pkce::generate();
    let params = authorization(&client.id, "openid profile", &pkce);

    // At PAR.
    let pushed = provider.push(&client, &key, "par-1", &params).await;
    assert_eq!(pushed.status, StatusCode::CREATED, "{}", pushed.text());
    let replayed = provider.push(&client, &key, "par-1", &params).await;
    assert_refused(&replayed, StatusCode::UNAUTHORIZED, "invalid_client");
    assert!(replayed.json().get("request_uri").is_none());
    let by_other_key = provider.push(&client, &other_key, "par-2", &params).await;
    assert_refused(&by_other_key, StatusCode::UNAUTHORIZED, "invalid_client");
    // The other client's key, in an assertion for the other client, is no key of this one's.
    let by_other_client = provider.push(&other, &key, "par-3", &params).await;
    assert_refused(&by_other_client, StatusCode::UNAUTHORIZED, "invalid_client");

    // At the token endpoint: an assertion spent on a code cannot be spent again.
    let code = provider
        .fapi2_code(&client, &key, &mut browser, &pkce)
        .await;
    let proof = provider.token_proof(&key, &fresh("proof")).await;
    let answer = provider
        .fapi2_exchange(&client, &key, &code, &pkce, "token-1", Some(&proof))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let second = provider
        .fapi2_code(&client, &key, &mut browser, &pkce)
        .await;
    let proof = provider.token_proof(&key, &fresh("proof")).await;
    let replayed = provider
        .fapi2_exchange(&client, &key, &second, &pkce, "token-1", Some(&proof))
        .await;
    assert_refused(&replayed, StatusCode::UNAUTHORIZED, "invalid_client");
    let by_other_key = provider
        .fapi2_exchange(&client, &other_key, &second, &pkce, "token-2", Some(&proof))
        .await;
    assert_refused(&by_other_key, StatusCode::UNAUTHORIZED, "invalid_client");
    // The second code is still its client's.
    let answer = provider
        .fapi2_exchange(&client, &key, &second, &pkce, "token-3", Some(&proof))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_and_introspect_refuse_wrong_client_credentials_and_change_nothing() {
    let (provider, _app, mut browser) = with_citizen().await;
    let client = provider.register(basic(&["profile"])).await;
    let other = provider.register(basic(&["profile"])).await;
    let tokens = provider
        .logged_in(&client, &mut browser, "openid profile")
        .await;
    let token = tokens.access_token.clone();
    let basic_auth = |id: &str, secret: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    };
    // Each: the form's credential fields, and the headers.
    let wrong: Vec<(Fields, Fields)> = vec![
        (
            vec![
                ("client_id", client.id.clone()),
                ("client_secret", "wrong".into()),
            ],
            vec![],
        ),
        (
            vec![
                ("client_id", client.id.clone()),
                ("client_secret", other.secret.clone().unwrap()),
            ],
            vec![],
        ),
        (
            vec![],
            vec![("authorization", basic_auth(&client.id, "wrong"))],
        ),
        (vec![], vec![]),
        (vec![("client_id", client.id.clone())], vec![]),
        (
            vec![
                ("client_id", "unknown".into()),
                ("client_secret", client.secret.clone().unwrap()),
            ],
            vec![],
        ),
        // The right secret and an assertion besides: two ways of authenticating at once
        // (RFC 6749 §2.3), as the right secret in the form and in HTTP Basic is.
        (
            [
                client.secret_fields(),
                ClientKey::new("rp-1").credentials(&client.id, "both", provider.now())[1..]
                    .to_vec(),
            ]
            .concat(),
            vec![],
        ),
        (
            vec![("client_secret", client.secret.clone().unwrap())],
            vec![(
                "authorization",
                basic_auth(&client.id, client.secret.as_deref().unwrap()),
            )],
        ),
    ];
    for endpoint in ["/oidc/revoke", "/oidc/introspect"] {
        for (fields, headers) in &wrong {
            let mut fields = fields.clone();
            fields.push(("token", token.clone()));
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let answer = provider.post(endpoint, &headers, encode(&fields)).await;
            assert_refused(&answer, StatusCode::UNAUTHORIZED, "invalid_client");
            assert!(answer.json().get("active").is_none(), "{}", answer.text());
        }
    }
    // A public client's id is no credential: it may not scan tokens.
    let public = provider
        .register(ClientRegistration {
            public: true,
            ..basic(&["profile"])
        })
        .await;
    let answer = provider
        .post(
            "/oidc/introspect",
            &[],
            encode(&[("client_id", public.id.clone()), ("token", token.clone())]),
        )
        .await;
    assert_refused(&answer, StatusCode::UNAUTHORIZED, "invalid_client");
    assert!(provider.active(&client, &token).await);
    // Another service, authenticated, is answered as for an unknown token (RFC 7009 §2.2) and
    // revokes nothing.
    let mut fields = other.secret_fields();
    fields.push(("token", token.clone()));
    let answer = provider.post("/oidc/revoke", &[], encode(&fields)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert!(provider.active(&client, &token).await);
    assert_eq!(provider.userinfo(&token).await.status, StatusCode::OK);
    // Its own client revokes it, with HTTP Basic.
    let answer = provider
        .post(
            "/oidc/revoke",
            &[(
                "authorization",
                &basic_auth(&client.id, client.secret.as_deref().unwrap()),
            )],
            encode(&[("token", token.clone())]),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert!(!provider.active(&client, &token).await);
}

// ---- Refresh tokens ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_reused_after_rotation_revokes_its_whole_family() {
    let (provider, _app, mut browser) = with_citizen().await;
    let client = provider
        .register(basic(&["profile", "offline_access"]))
        .await;
    let first = provider
        .logged_in(&client, &mut browser, "openid profile offline_access")
        .await;
    let refresh = |token: String| {
        let mut fields = client.secret_fields();
        fields.extend([
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", token),
        ]);
        let provider = &provider;
        async move { provider.post("/oidc/token", &[], encode(&fields)).await }
    };
    let rotated = refresh(first.refresh_token.clone().unwrap()).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
    let second_access = rotated.json()["access_token"].as_str().unwrap().to_owned();
    let second_refresh = rotated.json()["refresh_token"].as_str().unwrap().to_owned();
    assert!(provider.active(&client, &second_access).await);

    let reused = refresh(first.refresh_token.clone().unwrap()).await;
    assert_refused(&reused, StatusCode::BAD_REQUEST, "invalid_grant");
    for token in [&first.access_token, &second_access, &second_refresh] {
        assert!(!provider.active(&client, token).await);
    }
    assert_refused_at_resource(&provider.userinfo(&second_access).await, "invalid_token");
    assert_refused(
        &refresh(second_refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
}

// ---- CIBA ----------------------------------------------------------------------------------

/// A `basic` service registered for CIBA.
async fn counter(provider: &Provider) -> Client {
    provider
        .register(ClientRegistration {
            ciba: true,
            name: "Пошта, шалтер 3".into(),
            ..basic(&["profile"])
        })
        .await
}

/// `POST /oidc/bc-authorize` of `client` for the citizen, with `message` as its binding message.
async fn ask(provider: &Provider, client: &Client, message: Option<&str>) -> Answer {
    let mut fields = client.secret_fields();
    fields.extend([
        ("scope", "openid profile".to_owned()),
        ("login_hint", EMAIL.to_owned()),
    ]);
    if let Some(message) = message {
        fields.push(("binding_message", message.to_owned()));
    }
    provider
        .post("/oidc/bc-authorize", &[], encode(&fields))
        .await
}

/// Asks, which must be accepted: the `auth_req_id`.
async fn asked(provider: &Provider, client: &Client) -> String {
    let answer = ask(provider, client, Some("Шалтер 3")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    answer.json()["auth_req_id"].as_str().unwrap().to_owned()
}

/// The service polls the token endpoint.
async fn poll(provider: &Provider, client: &Client, auth_req_id: &str) -> Answer {
    let mut fields = client.secret_fields();
    fields.extend([
        ("grant_type", CIBA_GRANT.to_owned()),
        ("auth_req_id", auth_req_id.to_owned()),
    ]);
    provider.post("/oidc/token", &[], encode(&fields)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_ciba_request_is_expired_token_once_its_time_is_up() {
    let provider = Provider::start().await;
    let _app = provider.citizen(EMAIL).await;
    let client = counter(&provider).await;
    let answer = ask(&provider, &client, None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let expires_in = answer.json()["expires_in"].as_i64().unwrap();
    assert_eq!(expires_in, TRANSACTION_LIFETIME);
    let id = answer.json()["auth_req_id"].as_str().unwrap().to_owned();
    provider.clock.advance(expires_in - 1);
    assert_refused(
        &poll(&provider, &client, &id).await,
        StatusCode::BAD_REQUEST,
        "authorization_pending",
    );
    provider.clock.advance(1);
    assert_refused(
        &poll(&provider, &client, &id).await,
        StatusCode::BAD_REQUEST,
        "expired_token",
    );
    // The counter may ask again.
    asked(&provider, &client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ciba_request_the_citizen_refuses_is_access_denied_then_closed() {
    let provider = Provider::start().await;
    let app = provider.citizen(EMAIL).await;
    let client = counter(&provider).await;
    let id = asked(&provider, &client).await;
    let (envelope, payload) = app.next_request(provider.authority()).await;
    let code = proto::crypto::verification_code(&proto::crypto::unb64(&payload.challenge).unwrap());
    let (txn, response) = app.answer(
        &envelope,
        Decision::Deny,
        &code,
        Some(&app.pin),
        provider.now(),
    );
    app.send(provider.authority(), &txn, &response)
        .await
        .unwrap();
    assert_refused(
        &poll(&provider, &client, &id).await,
        StatusCode::BAD_REQUEST,
        "access_denied",
    );
    provider.clock.advance(CIBA_INTERVAL);
    let again = poll(&provider, &client, &id).await;
    assert_refused(&again, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(again.json().get("access_token").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_faster_than_the_interval_is_slow_down_and_adds_to_the_wait() {
    let provider = Provider::start().await;
    let app = provider.citizen(EMAIL).await;
    let client = counter(&provider).await;
    let id = asked(&provider, &client).await;
    let status = |answer: Answer| answer.error();
    assert_eq!(
        status(poll(&provider, &client, &id).await),
        "authorization_pending"
    );
    assert_refused(
        &poll(&provider, &client, &id).await,
        StatusCode::BAD_REQUEST,
        "slow_down",
    );
    app.approve_next(provider.authority()).await;
    // The slow_down pushed the next poll one interval further.
    provider.clock.advance(CIBA_INTERVAL);
    assert_refused(
        &poll(&provider, &client, &id).await,
        StatusCode::BAD_REQUEST,
        "slow_down",
    );
    provider.clock.advance(2 * CIBA_INTERVAL);
    let answer = poll(&provider, &client, &id).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_message_with_control_or_bidi_characters_is_refused() {
    let provider = Provider::start().await;
    let app = provider.citizen(EMAIL).await;
    let client = counter(&provider).await;
    for message in [
        "Шалтер\u{7}3",
        "Шалтер\n3",
        "Шалтер \u{202E}3 ретлаШ",
        "Шалтер \u{2066}3",
        "Шалтер\u{200B}3",
        "",
    ] {
        let answer = ask(&provider, &client, Some(message)).await;
        assert_refused(&answer, StatusCode::BAD_REQUEST, "invalid_binding_message");
    }
    // None of them reached the phone or left a request open.
    let id = asked(&provider, &client).await;
    let (_, payload) = app.next_request(provider.authority()).await;
    let shown = serde_json::to_string(&payload).unwrap();
    assert!(shown.contains("Шалтер 3"), "{shown}");
    assert!(!id.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ciba_request_with_a_transaction_or_a_ping_client_without_its_token_is_refused() {
    let provider = Provider::start().await;
    let _app = provider.citizen(EMAIL).await;
    let client = counter(&provider).await;
    let mut fields = client.secret_fields();
    fields.extend([
        ("scope", "openid".to_owned()),
        ("login_hint", EMAIL.to_owned()),
        (
            "authorization_details",
            r#"[{"type":"eidportal_transaction","text":"Плаћање"}]"#.to_owned(),
        ),
    ]);
    let answer = provider
        .post("/oidc/bc-authorize", &[], encode(&fields))
        .await;
    assert_refused(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_authorization_details",
    );
    // A ping-mode counter must give the token its notification will carry.
    let ping = provider
        .register(ClientRegistration {
            ciba: true,
            ciba_notification_endpoint: Some("http://127.0.0.1:9/ciba".into()),
            ..basic(&["profile"])
        })
        .await;
    let answer = ask(&provider, &ping, Some("Шалтер 3")).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    // Neither left a request open: each counter's next request is accepted.
    asked(&provider, &client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_details_other_than_one_short_transaction_are_refused() {
    let (provider, _app, _browser) = with_citizen().await;
    let client = provider.register(basic(&["profile"])).await;
    for details in [
        r#"[{"type":"payment_initiation","text":"x"}]"#,
        r#"[{"type":"eidportal_transaction","text":"Плаћање\u202e"}]"#,
        r#"[{"type":"eidportal_transaction","text":""}]"#,
        r#"{"type":"eidportal_transaction","text":"x"}"#,
        "not json",
    ] {
        let mut fields = client.secret_fields();
        fields.extend([
            ("response_type", "code".to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("scope", "openid".to_owned()),
            ("code_challenge", Pkce::generate().challenge),
            ("code_challenge_method", "S256".to_owned()),
            ("authorization_details", details.to_owned()),
        ]);
        let answer = provider.post("/oidc/par", &[], encode(&fields)).await;
        assert_refused(
            &answer,
            StatusCode::BAD_REQUEST,
            "invalid_authorization_details",
        );
    }
}

// ---- RP-initiated logout -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rp_initiated_logout_refuses_an_unregistered_uri_or_a_foreign_id_token_hint() {
    let (provider, _app, mut browser) = with_citizen().await;
    let client = provider.register(basic(&["profile"])).await;
    let other = provider.register(basic(&["profile"])).await;
    let tokens = provider.logged_in(&client, &mut browser, "openid").await;
    let hint = tokens.id_token.clone().unwrap();
    // An ID token the service made itself, claiming to be ours.
    let key = ClientKey::new("ours?");
    let now = provider.now().0;
    let forged = key.sign(
        &Header::new(Algorithm::ES256),
        &json!({
            "iss": ISSUER, "aud": client.id, "sub": "someone", "iat": now, "exp": now + 300,
        }),
    );
    let logout = |pairs: Vec<(&'static str, String)>| encode(&pairs);
    let refused = [
        (
            logout(vec![
                ("id_token_hint", hint.clone()),
                ("post_logout_redirect_uri", "https://evil.example/".into()),
            ]),
            "post_logout_redirect_uri is not registered",
        ),
        (
            logout(vec![
                ("id_token_hint", hint.clone()),
                ("post_logout_redirect_uri", format!("{AFTER_LOGOUT}/more")),
            ]),
            "post_logout_redirect_uri is not registered",
        ),
        (
            logout(vec![
                ("client_id", other.id.clone()),
                ("post_logout_redirect_uri", REDIRECT.into()),
            ]),
            "post_logout_redirect_uri is not registered",
        ),
        (
            logout(vec![
                ("id_token_hint", forged),
                ("post_logout_redirect_uri", AFTER_LOGOUT.into()),
            ]),
            "id_token_hint is not an ID token of ours",
        ),
        (
            logout(vec![
                ("id_token_hint", hint.clone()),
                ("client_id", other.id.clone()),
                ("post_logout_redirect_uri", AFTER_LOGOUT.into()),
            ]),
            "client_id is not the id_token_hint",
        ),
    ];
    let good = logout(vec![
        ("id_token_hint", hint.clone()),
        ("post_logout_redirect_uri", AFTER_LOGOUT.into()),
        ("state", "bye-1".into()),
    ]);
    let page = provider
        .browse(
            &mut browser,
            Method::GET,
            &format!("/oidc/logout?{good}"),
            None,
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let csrf = page.csrf();
    for (query, why) in &refused {
        let asked = provider
            .browse(
                &mut browser,
                Method::GET,
                &format!("/oidc/logout?{query}"),
                None,
            )
            .await;
        assert_refused_on_page(&asked, why);
        let confirmed = provider
            .browse(
                &mut browser,
                Method::POST,
                "/oidc/logout",
                Some(form(&[("csrf", &csrf), ("query", query)])),
            )
            .await;
        assert_refused_on_page(&confirmed, why);
        assert!(logged_in(&provider, &mut browser).await, "{why}");
    }
    // The registered URI, confirmed: logged out and sent there.
    let confirmed = provider
        .browse(
            &mut browser,
            Method::POST,
            "/oidc/logout",
            Some(form(&[("csrf", &csrf), ("query", &good)])),
        )
        .await;
    assert_eq!(
        confirmed.location(),
        Some(format!("{AFTER_LOGOUT}?state=bye-1").as_str())
    );
    assert!(!logged_in(&provider, &mut browser).await);
}
