//! The provider's use cases on a real store (SQLite and PostgreSQL): a `basic` client logs a
//! citizen in (the ID token checked by `jsonwebtoken` against our JWKS, userinfo), which `sub`
//! and claims each service gets, and the operator's registration. The refusals a service or a
//! citizen meets are in [`refusals`], the `fapi2` flow (PAR, `private_key_jwt`, DPoP) in
//! [`fapi2`], transaction approval (RFC 9396) in [`transactions`].

mod ciba;
mod ciba_ping;
mod fapi2;
mod grants;
mod logout;
mod refusals;
mod signing_key;
mod transactions;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;

use domain::oidc::{Acr, Profile, SubjectType, ACCESS_TOKEN_LIFETIME, ID_TOKEN_LIFETIME};

use crate::login::Session;
use crate::oidc::{
    AuthorizationParams, AuthorizationResponse, AuthorizeStep, ClientCredentials,
    ClientRegistration, OidcRefusal, ResourceRequest, TokenRequest,
};
use crate::test_support::{authorities, consentid_login, enrol, App, TestAuthority, PASSWORD};
use crate::Error;

/// The redirect URI every test client registers first.
const REDIRECT: &str = "https://rp.example/cb";

/// A `basic` confidential client (a secret), pairwise `sub`, allowed `scopes`.
fn registration(profile: Profile, scopes: &[&str]) -> ClientRegistration {
    ClientRegistration {
        name: "Пореска управа".into(),
        redirect_uris: vec![REDIRECT.into(), "https://rp.example/other".into()],
        profile,
        jwks: None,
        public: false,
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        allow_jmbg: false,
        subject: SubjectType::Pairwise,
        ciba: false,
        ciba_notification_endpoint: None,
        backchannel_logout_uri: None,
        post_logout_redirect_uris: Vec::new(),
    }
}

/// A PKCE pair (RFC 7636): the verifier and its S256 challenge.
struct Pkce {
    verifier: String,
    challenge: String,
}

fn pkce() -> Pkce {
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

/// An authorization request as a service's browser redirect carries it.
fn params(client_id: &str, scope: &str, pkce: &Pkce) -> AuthorizationParams {
    AuthorizationParams {
        response_type: Some("code".into()),
        client_id: Some(client_id.into()),
        redirect_uri: Some(REDIRECT.into()),
        scope: Some(scope.into()),
        state: Some("state-1".into()),
        nonce: Some("nonce-1".into()),
        code_challenge: Some(pkce.challenge.clone()),
        code_challenge_method: Some("S256".into()),
        ..AuthorizationParams::default()
    }
}

/// A parameter of an answer at the redirect URI.
fn param<'a>(response: &'a AuthorizationResponse, name: &str) -> Option<&'a str> {
    response
        .params
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn secret(client_id: &str, secret: &str) -> ClientCredentials {
    ClientCredentials {
        client_id: Some(client_id.into()),
        secret: Some(secret.into()),
        ..ClientCredentials::default()
    }
}

fn token_request(code: &str, verifier: &str, credentials: ClientCredentials) -> TokenRequest {
    TokenRequest {
        grant_type: Some("authorization_code".into()),
        code: Some(code.into()),
        redirect_uri: Some(REDIRECT.into()),
        code_verifier: Some(verifier.into()),
        credentials,
        ..TokenRequest::default()
    }
}

fn bearer(token: &str) -> ResourceRequest<'_> {
    ResourceRequest {
        scheme: "Bearer",
        token,
        dpop: None,
        method: "GET",
    }
}

/// A request an HTTP [`receiver`] got: its head (request line and headers) and body.
struct Received {
    head: String,
    body: String,
}

impl Received {
    /// A header's value (the name in any case).
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// An HTTP receiver on 127.0.0.1 answering each POST with `status`: its URL (with `path`), and
/// the requests it received.
async fn receiver(status: u16, path: &str) -> (String, mpsc::UnboundedReceiver<Received>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    let (send, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            // Headers, then as many body bytes as Content-Length says.
            let got = loop {
                let n = socket.read(&mut buffer).await.unwrap();
                if n == 0 {
                    break None;
                }
                request.extend_from_slice(&buffer[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        break Some(Received {
                            head: head.to_owned(),
                            body: body.to_owned(),
                        });
                    }
                }
            };
            let answer =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            socket.write_all(answer.as_bytes()).await.unwrap();
            if let Some(got) = got {
                let _ = send.send(got);
            }
        }
    });
    (url, received)
}

/// The provider's refusal in `result`.
fn refusal<T: std::fmt::Debug>(result: Result<T, Error>) -> OidcRefusal {
    match result {
        Err(Error::Oidc(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Runs the authorization endpoint for a logged-in `session`: allows on the consent page if
/// asked; the answer at the redirect URI.
async fn allow(
    t: &TestAuthority,
    session: &Session,
    query: &AuthorizationParams,
) -> AuthorizationResponse {
    let request = t.oidc.authorization_request(query).await.unwrap();
    match t.oidc.authorize(session, &request).await.unwrap() {
        AuthorizeStep::Consent(request) => t.oidc.decide(session, &request, true).await.unwrap(),
        AuthorizeStep::Respond(response) => response,
        AuthorizeStep::Login => panic!("{}: sent to log in again", t.name),
    }
}

/// The code of an answer, checking that it carries `state` and `iss` (RFC 9207).
fn code_of(t: &TestAuthority, response: &AuthorizationResponse) -> String {
    assert_eq!(response.redirect_uri, REDIRECT, "{}", t.name);
    assert_eq!(param(response, "state"), Some("state-1"), "{}", t.name);
    assert_eq!(
        param(response, "iss"),
        Some(t.oidc.issuer().as_str()),
        "{}",
        t.name
    );
    param(response, "code")
        .unwrap_or_else(|| panic!("{}: no code in {response:?}", t.name))
        .to_owned()
}

/// An ID token's claims once `jsonwebtoken` verified it (ES256) with a key of our JWKS, for
/// audience `client_id` and our issuer.
fn verify_id_token(t: &TestAuthority, id_token: &str, client_id: &str) -> Value {
    let jwks: JwkSet = serde_json::from_value(t.oidc.jwks().unwrap()).unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.alg, Algorithm::ES256, "{}", t.name);
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .unwrap_or_else(|| panic!("{}: the kid is not in the JWKS", t.name));
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[client_id]);
    validation.set_issuer(&[t.oidc.issuer()]);
    // The manual clock stands before the wall clock: `exp` is checked against it below.
    validation.validate_exp = false;
    let claims =
        jsonwebtoken::decode::<Value>(id_token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .unwrap_or_else(|e| panic!("{}: the ID token does not verify: {e}", t.name))
            .claims;
    assert_eq!(claims["iat"], t.now().0, "{}", t.name);
    assert_eq!(claims["exp"], t.now().0 + ID_TOKEN_LIFETIME, "{}", t.name);
    claims
}

/// An enrolled citizen with an activated ConsentID app.
async fn citizen(t: &TestAuthority, email: &str) -> App {
    let (_, code) = enrol(t, email).await;
    App::activate(t, &code).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_logs_a_citizen_in_with_consentid_and_reads_the_claims_allowed() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let app = citizen(&t, "petar@example.rs").await;
        let (client, client_secret) = t
            .oidc
            .register_client(registration(Profile::Basic, &["profile", "email"]))
            .await
            .unwrap();
        let client_secret = client_secret.expect("a basic confidential client gets a secret");
        let id = client.client_id.clone();
        let pkce_1 = pkce();
        let mut query = params(&id, "openid profile email", &pkce_1);
        query.acr_values = Some(Acr::High.uri().into());

        // 1. Anonymous: log in first.
        let request = t.oidc.authorization_request(&query).await.unwrap();
        assert_eq!(request.redirect_uri, REDIRECT, "{name}");
        let (_, anonymous) = t.login.new_session();
        assert!(
            matches!(
                t.oidc.authorize(&anonymous, &request).await.unwrap(),
                AuthorizeStep::Login
            ),
            "{name}: an anonymous browser logs in first"
        );

        // 2. Logged in with ConsentID: the consent page, then the code at the redirect URI.
        let session = consentid_login(&t, &app, "petar@example.rs").await;
        let AuthorizeStep::Consent(asked) = t.oidc.authorize(&session, &request).await.unwrap()
        else {
            panic!("{name}: the citizen is asked first");
        };
        assert_eq!(asked.client.name, "Пореска управа", "{name}");
        let response = t.oidc.decide(&session, &asked, true).await.unwrap();
        let code = code_of(&t, &response);

        // 3. The code, the secret and the verifier: an ID token and an access token.
        let tokens = t
            .oidc
            .token(&token_request(
                &code,
                &pkce_1.verifier,
                secret(&id, &client_secret),
            ))
            .await
            .unwrap();
        assert_eq!(tokens.token_type, "Bearer", "{name}");
        assert_eq!(tokens.expires_in, ACCESS_TOKEN_LIFETIME, "{name}");
        assert_eq!(tokens.scope, "openid profile email", "{name}");
        let claims = verify_id_token(&t, tokens.id_token.as_deref().unwrap(), &id);
        assert_eq!(claims["nonce"], "nonce-1", "{name}");
        assert_eq!(claims["acr"], "http://eidas.europa.eu/LoA/high", "{name}");
        assert_eq!(
            claims["amr"],
            serde_json::json!(["hwk", "pin", "mfa"]),
            "{name}"
        );
        assert_eq!(claims["sid"], session.sid(), "{name}");
        assert_eq!(
            claims["auth_time"],
            session.authenticated_at().unwrap().0,
            "{name}"
        );
        let user = session.user.as_ref().unwrap();
        let sub = claims["sub"].as_str().unwrap().to_owned();
        assert!(
            !sub.is_empty() && sub != user.id.as_str(),
            "{name}: pairwise"
        );

        // A token changed by one character does not verify.
        let mut forged = tokens.id_token.clone().unwrap();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        let jwks: JwkSet = serde_json::from_value(t.oidc.jwks().unwrap()).unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[&id]);
        validation.validate_exp = false;
        assert!(
            jsonwebtoken::decode::<Value>(
                &forged,
                &DecodingKey::from_jwk(&jwks.keys[0]).unwrap(),
                &validation
            )
            .is_err(),
            "{name}"
        );

        // 4. Userinfo: the scopes' claims, and never the JMBG.
        let info = t
            .oidc
            .userinfo(&bearer(&tokens.access_token))
            .await
            .unwrap();
        assert_eq!(info["sub"], sub.as_str(), "{name}");
        assert_eq!(info["given_name"], "Петар", "{name}");
        assert_eq!(info["family_name"], "Петровић", "{name}");
        assert_eq!(info["email"], "petar@example.rs", "{name}");
        assert_eq!(info["email_verified"], true, "{name}");
        assert!(info.get("jmbg").is_none(), "{name}: {info}");
        assert_eq!(
            refusal(t.oidc.userinfo(&bearer("not-a-token")).await).code(),
            "invalid_token",
            "{name}"
        );

        // 5. The same scopes (or fewer) again: answered at once, the consent remembered.
        for scope in ["openid profile email", "openid email"] {
            let pkce_2 = pkce();
            let request = t
                .oidc
                .authorization_request(&params(&id, scope, &pkce_2))
                .await
                .unwrap();
            let AuthorizeStep::Respond(response) =
                t.oidc.authorize(&session, &request).await.unwrap()
            else {
                panic!("{name}: {scope}: the consent is remembered");
            };
            let code = code_of(&t, &response);
            let tokens = t
                .oidc
                .token(&token_request(
                    &code,
                    &pkce_2.verifier,
                    secret(&id, &client_secret),
                ))
                .await
                .unwrap();
            let info = t
                .oidc
                .userinfo(&bearer(&tokens.access_token))
                .await
                .unwrap();
            assert_eq!(info["email"], "petar@example.rs", "{name}");
            assert_eq!(
                info.get("given_name").is_some(),
                scope.contains("profile"),
                "{name}: {scope}: {info}"
            );
        }
        // …but asking for more asks the citizen again, and so does prompt=consent.
        let request = t
            .oidc
            .authorization_request(&params(&id, "openid profile email", &pkce()))
            .await
            .unwrap();
        let mut wider = request.clone();
        wider.params.scope = Some("openid profile email offline_access".into());
        let mut again = request.clone();
        again.params.prompt = Some("consent".into());
        for request in [wider, again] {
            assert!(
                matches!(
                    t.oidc.authorize(&session, &request).await.unwrap(),
                    AuthorizeStep::Consent(_)
                ),
                "{name}: {:?}",
                request.params
            );
        }

        // 6. The access token ends after its lifetime.
        t.clock.advance(ACCESS_TOKEN_LIFETIME - 1);
        t.oidc
            .userinfo(&bearer(&tokens.access_token))
            .await
            .unwrap();
        t.clock.advance(1);
        assert_eq!(
            refusal(t.oidc.userinfo(&bearer(&tokens.access_token)).await).code(),
            "invalid_token",
            "{name}: expired"
        );
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jmbg_goes_only_to_a_client_allowed_it_and_a_password_login_is_low() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        enrol(&t, "petar@example.rs").await;
        let (client, client_secret) = t
            .oidc
            .register_client(ClientRegistration {
                allow_jmbg: true,
                subject: SubjectType::Public,
                ..registration(Profile::Basic, &[])
            })
            .await
            .unwrap();
        let id = client.client_id;
        let (_, anonymous) = t.login.new_session();
        let (_, session) = t
            .login
            .password_login(&anonymous, "petar@example.rs", PASSWORD, "127.0.0.1")
            .await
            .unwrap();
        let pkce = pkce();
        let code = code_of(
            &t,
            &allow(&t, &session, &params(&id, "openid jmbg", &pkce)).await,
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
        let claims = verify_id_token(&t, tokens.id_token.as_deref().unwrap(), &id);
        assert_eq!(claims["acr"], Acr::Low.uri(), "{name}");
        assert_eq!(claims["amr"], serde_json::json!(["pwd"]), "{name}");
        let user = session.user.as_ref().unwrap();
        assert_eq!(claims["sub"], user.id.as_str(), "{name}: a public sub");
        let info = t
            .oidc
            .userinfo(&bearer(&tokens.access_token))
            .await
            .unwrap();
        assert_eq!(info["jmbg"], "0101990710008", "{name}");
        assert!(info.get("email").is_none(), "{name}: {info}");
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pairwise_sub_is_stable_for_a_service_and_differs_between_services() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let petar = citizen(&t, "petar@example.rs").await;
        let jovana = citizen(&t, "jovana@example.rs").await;
        let mut clients = Vec::new();
        for _ in 0..2 {
            let (client, client_secret) = t
                .oidc
                .register_client(registration(Profile::Basic, &[]))
                .await
                .unwrap();
            clients.push((client.client_id, client_secret.unwrap()));
        }
        let mut subs = Vec::new();
        for (app, email) in [
            (&petar, "petar@example.rs"),
            (&petar, "petar@example.rs"),
            (&jovana, "jovana@example.rs"),
        ] {
            let session = consentid_login(&t, app, email).await;
            let mut row = Vec::new();
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
                let sub = verify_id_token(&t, tokens.id_token.as_deref().unwrap(), id)["sub"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let info = t
                    .oidc
                    .userinfo(&bearer(&tokens.access_token))
                    .await
                    .unwrap();
                assert_eq!(info["sub"], sub.as_str(), "{name}: userinfo's sub");
                assert_ne!(sub, session.user.as_ref().unwrap().id.as_str(), "{name}");
                row.push(sub);
            }
            subs.push(row);
        }
        assert_eq!(subs[0], subs[1], "{name}: stable across two logins");
        assert_ne!(subs[0][0], subs[0][1], "{name}: differs between services");
        assert_ne!(subs[0][0], subs[2][0], "{name}: differs between citizens");
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_registers_only_clients_that_can_authenticate_and_a_secret_is_kept_hashed() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let key = fapi2::TestKey::new("k1");
        let base = || registration(Profile::Basic, &["profile"]);
        for (refused, why) in [
            (registration(Profile::Fapi2, &[]), "fapi2 without keys"),
            (
                ClientRegistration {
                    public: true,
                    jwks: Some(key.jwks()),
                    ..registration(Profile::Fapi2, &[])
                },
                "fapi2 and public",
            ),
            (
                ClientRegistration {
                    jwks: Some(r#"{"keys":[]}"#.into()),
                    ..registration(Profile::Fapi2, &[])
                },
                "an empty JWKS",
            ),
            (
                ClientRegistration {
                    jwks: Some(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQ"}]}"#.into()),
                    ..registration(Profile::Fapi2, &[])
                },
                "a symmetric key",
            ),
            (
                ClientRegistration {
                    jwks: Some(
                        r#"{"keys":[{"kty":"EC","crv":"P-384","x":"RxoWomGSl_kKHtA8MoxvqobSCNnVZ2dVpRIVl_1K9z0pxVXc4UpVxs20oqpoxYVl","y":"eVzq-sM2xAquAjS6g3k7XlkbNPeMcBZ8BM0DQFUv15HV_av6e5JRKic6dNsSOqq3"}]}"#
                            .into(),
                    ),
                    ..registration(Profile::Fapi2, &[])
                },
                "a P-384 key",
            ),
            (
                ClientRegistration {
                    redirect_uris: vec!["http://rp.example/cb".into()],
                    ..base()
                },
                "http",
            ),
            (
                ClientRegistration {
                    redirect_uris: Vec::new(),
                    ..base()
                },
                "no redirect URI",
            ),
            (
                ClientRegistration {
                    name: "Пореска\u{202E}управа".into(),
                    ..base()
                },
                "a bidi override in the name",
            ),
            (
                ClientRegistration {
                    scopes: vec!["phone".into()],
                    ..base()
                },
                "an unknown scope",
            ),
            (
                ClientRegistration {
                    public: true,
                    ciba: true,
                    ..base()
                },
                "public and CIBA",
            ),
            (
                ClientRegistration {
                    backchannel_logout_uri: Some("http://rp.example/logout".into()),
                    ..base()
                },
                "logout tokens over plain http",
            ),
            (
                ClientRegistration {
                    ciba_notification_endpoint: Some("https://rp.example/ciba".into()),
                    ..base()
                },
                "a CIBA notification endpoint without CIBA",
            ),
            (
                ClientRegistration {
                    ciba: true,
                    ciba_notification_endpoint: Some("http://rp.example/ciba".into()),
                    ..base()
                },
                "CIBA notifications over plain http",
            ),
            (
                ClientRegistration {
                    post_logout_redirect_uris: vec!["javascript:alert(1)".into()],
                    ..base()
                },
                "a post-logout URI that is no https URI",
            ),
        ] {
            assert_eq!(
                refusal(t.oidc.register_client(refused).await).code(),
                "invalid_request",
                "{name}: {why}"
            );
        }
        assert!(t.oidc.clients().await.unwrap().is_empty(), "{name}");

        let (client, client_secret) = t.oidc.register_client(base()).await.unwrap();
        let client_secret = client_secret.unwrap();
        assert_ne!(
            client.secret_hash.as_deref(),
            Some(client_secret.as_str()),
            "{name}: only its hash is kept"
        );
        assert_eq!(
            t.oidc.client(&client.client_id).await.unwrap(),
            Some(client.clone()),
            "{name}"
        );

        // A public client has no secret, and authenticates with none: PKCE only.
        let (public, none) = t
            .oidc
            .register_client(ClientRegistration {
                public: true,
                ..base()
            })
            .await
            .unwrap();
        assert_eq!(none, None, "{name}");
        let app = citizen(&t, "petar@example.rs").await;
        let session = consentid_login(&t, &app, "petar@example.rs").await;
        let pkce = pkce();
        let code = code_of(
            &t,
            &allow(&t, &session, &params(&public.client_id, "openid", &pkce)).await,
        );
        let as_public = ClientCredentials {
            client_id: Some(public.client_id.clone()),
            ..ClientCredentials::default()
        };
        assert_eq!(
            refusal(
                t.oidc
                    .token(&token_request(
                        &code,
                        &pkce.verifier,
                        secret(&public.client_id, &client_secret)
                    ))
                    .await
            )
            .code(),
            "invalid_client",
            "{name}: a public client presents no secret"
        );
        t.oidc
            .token(&token_request(&code, &pkce.verifier, as_public))
            .await
            .unwrap();
        t.close().await;
    }
}
