//! The `fapi2` profile (FAPI 2.0 Security Profile): the request pushed first (RFC 9126) and
//! spent once, the client authenticated with `private_key_jwt` (RFC 7523) whose assertions are
//! accepted once, and access tokens bound to a DPoP key (RFC 9449) that userinfo accepts only
//! with a fresh proof for its own method and URL. The test client's key is a P-256 key of ours;
//! its assertions and proofs are signed by `jsonwebtoken`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::EncodePrivateKey as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use domain::oidc::{Profile, REQUEST_URI_LIFETIME};

use super::{
    allow, bearer, citizen, code_of, params, pkce, refusal, registration, secret, token_request,
    verify_id_token, Pkce,
};
use crate::oidc::{
    AuthorizationParams, AuthorizeStep, ClientCredentials, ClientRegistration, ResourceRequest,
    TokenRequest, ASSERTION_TYPE, REQUEST_URI_PREFIX,
};
use crate::test_support::{authorities, consentid_login, TestAuthority};

/// A client's P-256 key: its PKCS#8 DER for `jsonwebtoken`, and its public JWK.
pub(super) struct TestKey {
    der: Vec<u8>,
    public: Value,
    kid: String,
}

impl TestKey {
    pub(super) fn new(kid: &str) -> Self {
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let der = secret.to_pkcs8_der().unwrap().as_bytes().to_vec();
        let point = secret.public_key().to_encoded_point(false);
        let public = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        });
        Self {
            der,
            public,
            kid: kid.to_owned(),
        }
    }

    /// The JWKS the operator registers.
    pub(super) fn jwks(&self) -> String {
        let mut jwk = self.public.clone();
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!("ES256");
        json!({ "keys": [jwk] }).to_string()
    }

    /// The RFC 7638 thumbprint of the public key (a DPoP `jkt`).
    pub(super) fn thumbprint(&self) -> String {
        serde_json::from_value::<Jwk>(self.public.clone())
            .unwrap()
            .thumbprint(ThumbprintHash::SHA256)
    }

    fn sign(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &EncodingKey::from_ec_der(&self.der)).unwrap()
    }

    /// A client assertion (RFC 7523 §3) for `audience`, made at `now`, living a minute.
    fn assertion(&self, client_id: &str, audience: &str, jti: &str, now: i64) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        self.sign(
            &header,
            &json!({
                "iss": client_id,
                "sub": client_id,
                "aud": audience,
                "jti": jti,
                "iat": now,
                "exp": now + 60,
            }),
        )
    }

    /// A DPoP proof (RFC 9449 §4.2) with the server's `nonce` for `method` at `url`, with `ath`
    /// for `access_token`.
    pub(super) fn dpop(
        &self,
        nonce: &str,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        jti: &str,
        iat: i64,
    ) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(serde_json::from_value(self.public.clone()).unwrap());
        let mut claims = dpop_claims(method, url, access_token, jti, iat);
        claims["nonce"] = json!(nonce);
        self.sign(&header, &claims)
    }
}

fn dpop_claims(method: &str, url: &str, access_token: Option<&str>, jti: &str, iat: i64) -> Value {
    let mut claims = json!({ "htm": method, "htu": url, "iat": iat, "jti": jti });
    if let Some(token) = access_token {
        claims["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes())));
    }
    claims
}

/// A proof whose header `change` altered after [`TestKey::dpop`] made it, signed by `key`
/// (an ES256 key's PKCS#8 DER, or an HMAC secret).
fn dpop_with(change: impl Fn(&mut Header), key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("dpop+jwt".into());
    change(&mut header);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn assertion_credentials(client_id: &str, assertion: String) -> ClientCredentials {
    ClientCredentials {
        client_id: Some(client_id.into()),
        secret: None,
        assertion_type: Some(ASSERTION_TYPE.into()),
        assertion: Some(assertion),
    }
}

/// A `fapi2` client with `key`'s JWKS: its id.
async fn fapi2_client(t: &TestAuthority, key: &TestKey) -> String {
    let (client, client_secret) = t
        .oidc
        .register_client(ClientRegistration {
            jwks: Some(key.jwks()),
            ..registration(Profile::Fapi2, &["profile"])
        })
        .await
        .unwrap();
    assert_eq!(
        client_secret, None,
        "{}: private_key_jwt has no secret",
        t.name
    );
    client.client_id
}

/// What the browser brings back after a push: the client and its `request_uri`.
fn by_reference(client_id: &str, request_uri: &str) -> AuthorizationParams {
    AuthorizationParams {
        client_id: Some(client_id.into()),
        request_uri: Some(request_uri.into()),
        ..AuthorizationParams::default()
    }
}

/// Pushes `query` for `client_id`, authenticated by an assertion with `jti`: the request URI.
async fn push(
    t: &TestAuthority,
    key: &TestKey,
    client_id: &str,
    jti: &str,
    query: AuthorizationParams,
) -> String {
    let assertion = key.assertion(client_id, &t.oidc.issuer(), jti, t.now().0);
    let (uri, lifetime) = t
        .oidc
        .push_request(&assertion_credentials(client_id, assertion), query)
        .await
        .unwrap_or_else(|e| panic!("{}: PAR refused: {e:?}", t.name));
    assert_eq!(lifetime, REQUEST_URI_LIFETIME, "{}", t.name);
    assert!(uri.starts_with(REQUEST_URI_PREFIX), "{}: {uri}", t.name);
    uri
}

/// A token request of a `fapi2` client: an assertion with `jti`, a DPoP proof if any.
fn fapi2_token(
    t: &TestAuthority,
    key: &TestKey,
    client_id: &str,
    code: &str,
    pkce: &Pkce,
    jti: &str,
    dpop: Option<String>,
) -> TokenRequest {
    let token_url = format!("{}/oidc/token", t.oidc.issuer());
    TokenRequest {
        dpop,
        ..token_request(
            code,
            &pkce.verifier,
            assertion_credentials(
                client_id,
                key.assertion(client_id, &token_url, jti, t.now().0),
            ),
        )
    }
}

fn with_dpop<'a>(token: &'a str, proof: Option<&'a str>, method: &'a str) -> ResourceRequest<'a> {
    ResourceRequest {
        scheme: "DPoP",
        token,
        dpop: proof,
        method,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fapi2_service_pushes_its_request_and_gets_a_token_bound_to_its_dpop_key() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let key = TestKey::new("rp-key-1");
        let other_key = TestKey::new("rp-key-1");
        let id = fapi2_client(&t, &key).await;
        let app = citizen(&t, "petar@example.rs").await;
        let session = consentid_login(&t, &app, "petar@example.rs").await;
        let issuer = t.oidc.issuer();
        let token_url = format!("{issuer}/oidc/token");
        let userinfo_url = format!("{issuer}/oidc/userinfo");
        let now = t.now().0;

        // 1. Pushed, authenticated by an assertion accepted once.
        let pkce = pkce();
        let query = params(&id, "openid profile", &pkce);
        let uri = push(&t, &key, &id, "par-1", query.clone()).await;
        let replayed = key.assertion(&id, &issuer, "par-1", now);
        assert_eq!(
            refusal(
                t.oidc
                    .push_request(&assertion_credentials(&id, replayed), query.clone())
                    .await
            )
            .code(),
            "invalid_client",
            "{name}: a replayed assertion"
        );
        for credentials in [
            assertion_credentials(&id, other_key.assertion(&id, &issuer, "par-2", now)),
            assertion_credentials(
                &id,
                key.assertion(&id, "https://evil.example", "par-3", now),
            ),
            assertion_credentials(&id, key.assertion(&id, &issuer, "par-4", now - 3600)),
            ClientCredentials {
                client_id: Some(id.clone()),
                ..ClientCredentials::default()
            },
            // Signed by this client's key for another client.
            assertion_credentials("another", key.assertion("another", &issuer, "par-5", now)),
            ClientCredentials {
                assertion_type: Some("urn:other".into()),
                ..assertion_credentials(&id, key.assertion(&id, &issuer, "par-6", now))
            },
        ] {
            assert_eq!(
                refusal(t.oidc.push_request(&credentials, query.clone()).await).code(),
                "invalid_client",
                "{name}: {credentials:?}"
            );
        }

        // 2. The browser brings the request URI; the citizen allows; the request is spent.
        let request = t
            .oidc
            .authorization_request(&by_reference(&id, &uri))
            .await
            .unwrap();
        let AuthorizeStep::Consent(request) = t.oidc.authorize(&session, &request).await.unwrap()
        else {
            panic!("{name}: the citizen is asked");
        };
        let code = code_of(&t, &t.oidc.decide(&session, &request, true).await.unwrap());
        let again = t
            .oidc
            .authorization_request(&by_reference(&id, &uri))
            .await
            .unwrap_err();
        assert_eq!(again.redirect, None, "{name}: the request URI is spent");

        // 3. The token endpoint wants a DPoP proof for itself, and the client's assertion.
        let refused = |request: TokenRequest| {
            let t = &t;
            async move { refusal(t.oidc.token(&request).await).code() }
        };
        assert_eq!(
            refused(fapi2_token(&t, &key, &id, &code, &pkce, "tok-1", None)).await,
            "invalid_dpop_proof",
            "{name}: no proof"
        );
        let for_userinfo = key.dpop(
            &t.oidc.dpop_nonce(),
            "POST",
            &userinfo_url,
            None,
            "d-1",
            now,
        );
        assert_eq!(
            refused(fapi2_token(
                &t,
                &key,
                &id,
                &code,
                &pkce,
                "tok-2",
                Some(for_userinfo)
            ))
            .await,
            "invalid_dpop_proof",
            "{name}: a proof for another URL"
        );
        let as_get = key.dpop(&t.oidc.dpop_nonce(), "GET", &token_url, None, "d-2", now);
        assert_eq!(
            refused(fapi2_token(
                &t,
                &key,
                &id,
                &code,
                &pkce,
                "tok-3",
                Some(as_get)
            ))
            .await,
            "invalid_dpop_proof",
            "{name}: a proof for another method"
        );
        let proof = key.dpop(&t.oidc.dpop_nonce(), "POST", &token_url, None, "d-3", now);
        assert_eq!(
            refused(TokenRequest {
                dpop: Some(proof.clone()),
                ..token_request(&code, &pkce.verifier, secret(&id, "a secret"))
            })
            .await,
            "invalid_client",
            "{name}: a secret instead of the assertion"
        );
        // The client named by its assertion alone (RFC 7523 §3: `client_id` may be left out).
        let mut request = fapi2_token(&t, &key, &id, &code, &pkce, "tok-4", Some(proof));
        request.credentials.client_id = None;
        let tokens = t.oidc.token(&request).await.unwrap();
        assert_eq!(tokens.token_type, "DPoP", "{name}");
        let claims = verify_id_token(&t, tokens.id_token.as_deref().unwrap(), &id);
        assert_eq!(claims["nonce"], "nonce-1", "{name}");
        // The same assertion again is refused whatever it comes with.
        assert_eq!(
            refused(fapi2_token(
                &t,
                &key,
                &id,
                &code,
                &pkce,
                "tok-4",
                Some(key.dpop(&t.oidc.dpop_nonce(), "POST", &token_url, None, "d-4", now))
            ))
            .await,
            "invalid_client",
            "{name}: a replayed assertion"
        );

        // 4. Userinfo: only with the DPoP scheme and a fresh proof by the token's key for
        // this method, this URL and this token.
        let access = tokens.access_token.as_str();
        assert_eq!(
            refusal(t.oidc.userinfo(&bearer(access)).await).code(),
            "invalid_token",
            "{name}: the Bearer scheme"
        );
        let good = key.dpop(
            &t.oidc.dpop_nonce(),
            "GET",
            &userinfo_url,
            Some(access),
            "u-1",
            now,
        );
        let mut as_bearer = with_dpop(access, Some(&good), "GET");
        as_bearer.scheme = "Bearer";
        assert_eq!(
            refusal(t.oidc.userinfo(&as_bearer).await).code(),
            "invalid_token",
            "{name}: the Bearer scheme with a proof"
        );
        let wrong = [
            (None, "GET", "no proof"),
            (
                Some(key.dpop(
                    &t.oidc.dpop_nonce(),
                    "POST",
                    &userinfo_url,
                    Some(access),
                    "u-2",
                    now,
                )),
                "GET",
                "another method",
            ),
            (
                Some(key.dpop(
                    &t.oidc.dpop_nonce(),
                    "GET",
                    &token_url,
                    Some(access),
                    "u-3",
                    now,
                )),
                "GET",
                "another URL",
            ),
            (
                Some(key.dpop(&t.oidc.dpop_nonce(), "GET", &userinfo_url, None, "u-4", now)),
                "GET",
                "no ath",
            ),
            (
                Some(key.dpop(
                    &t.oidc.dpop_nonce(),
                    "GET",
                    &userinfo_url,
                    Some("another"),
                    "u-5",
                    now,
                )),
                "GET",
                "the ath of another token",
            ),
            (
                Some(other_key.dpop(
                    &t.oidc.dpop_nonce(),
                    "GET",
                    &userinfo_url,
                    Some(access),
                    "u-6",
                    now,
                )),
                "GET",
                "another key",
            ),
            (
                Some(key.dpop(
                    &t.oidc.dpop_nonce(),
                    "GET",
                    &userinfo_url,
                    Some(access),
                    "u-7",
                    now - 61,
                )),
                "GET",
                "an old proof",
            ),
            (
                Some(dpop_with(
                    |h| {
                        h.typ = Some("JWT".into());
                        h.jwk = Some(serde_json::from_value(key.public.clone()).unwrap());
                    },
                    &EncodingKey::from_ec_der(&key.der),
                    &dpop_claims("GET", &userinfo_url, Some(access), "u-9", now),
                )),
                "GET",
                "typ JWT",
            ),
            (
                Some(dpop_with(
                    |h| h.jwk = None,
                    &EncodingKey::from_ec_der(&key.der),
                    &dpop_claims("GET", &userinfo_url, Some(access), "u-10", now),
                )),
                "GET",
                "no jwk in the header",
            ),
            (
                Some(dpop_with(
                    |h| {
                        h.alg = Algorithm::HS256;
                        h.jwk = Some(
                            serde_json::from_value(json!({ "kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0" }))
                                .unwrap(),
                        );
                    },
                    &EncodingKey::from_secret(b"secret-secret-secret-secret"),
                    &dpop_claims("GET", &userinfo_url, Some(access), "u-11", now),
                )),
                "GET",
                "HS256 with a symmetric key",
            ),
        ];
        for (proof, method, why) in &wrong {
            assert_eq!(
                refusal(
                    t.oidc
                        .userinfo(&with_dpop(access, proof.as_deref(), method))
                        .await
                )
                .code(),
                "invalid_dpop_proof",
                "{name}: {why}"
            );
        }
        let info = t
            .oidc
            .userinfo(&with_dpop(access, Some(&good), "GET"))
            .await
            .unwrap();
        assert_eq!(info["given_name"], "Петар", "{name}");
        assert_eq!(
            refusal(
                t.oidc
                    .userinfo(&with_dpop(access, Some(&good), "GET"))
                    .await
            )
            .code(),
            "invalid_dpop_proof",
            "{name}: a replayed proof"
        );
        let fresh = key.dpop(
            &t.oidc.dpop_nonce(),
            "POST",
            &userinfo_url,
            Some(access),
            "u-8",
            now,
        );
        t.oidc
            .userinfo(&with_dpop(access, Some(&fresh), "POST"))
            .await
            .unwrap();
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_request_is_checked_when_pushed_and_spent_once_by_its_own_client() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let key = TestKey::new("rp-key-1");
        let id = fapi2_client(&t, &key).await;
        let (basic, basic_secret) = t
            .oidc
            .register_client(registration(Profile::Basic, &["profile"]))
            .await
            .unwrap();
        let basic_secret = basic_secret.unwrap();
        let app = citizen(&t, "petar@example.rs").await;
        let session = consentid_login(&t, &app, "petar@example.rs").await;
        let pkce = pkce();
        let query = params(&id, "openid profile", &pkce);

        // Checked when pushed, with the authorization endpoint's error codes.
        let now = t.now().0;
        let issuer = t.oidc.issuer();
        for (n, (change, error)) in [
            (
                AuthorizationParams {
                    redirect_uri: Some("https://rp.example/c".into()),
                    ..query.clone()
                },
                "invalid_request",
            ),
            (
                AuthorizationParams {
                    code_challenge: None,
                    ..query.clone()
                },
                "invalid_request",
            ),
            (
                AuthorizationParams {
                    scope: Some("openid jmbg".into()),
                    ..query.clone()
                },
                "invalid_scope",
            ),
            (
                AuthorizationParams {
                    request_uri: Some(format!("{REQUEST_URI_PREFIX}x")),
                    ..query.clone()
                },
                "invalid_request",
            ),
            (
                AuthorizationParams {
                    client_id: Some(basic.client_id.clone()),
                    ..query.clone()
                },
                "invalid_request",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let assertion = key.assertion(&id, &issuer, &format!("bad-{n}"), now);
            assert_eq!(
                refusal(
                    t.oidc
                        .push_request(&assertion_credentials(&id, assertion), change.clone())
                        .await
                )
                .code(),
                error,
                "{name}: {change:?}"
            );
        }

        // Only by its own client, only with our prefix, only for a minute.
        let uri = push(&t, &key, &id, "par-1", query.clone()).await;
        for refused in [
            by_reference(&basic.client_id, &uri),
            by_reference(&id, uri.trim_start_matches(REQUEST_URI_PREFIX)),
            by_reference(&id, &format!("{REQUEST_URI_PREFIX}unknown")),
        ] {
            let refused = t.oidc.authorization_request(&refused).await.unwrap_err();
            assert_eq!(refused.redirect, None, "{name}");
        }
        let request = t
            .oidc
            .authorization_request(&by_reference(&id, &uri))
            .await
            .unwrap();
        // Read, not spent, while the citizen logs in.
        let (_, anonymous) = t.login.new_session();
        assert!(
            matches!(
                t.oidc.authorize(&anonymous, &request).await.unwrap(),
                AuthorizeStep::Login
            ),
            "{name}"
        );
        t.oidc
            .authorization_request(&by_reference(&id, &uri))
            .await
            .unwrap();
        t.clock.advance(REQUEST_URI_LIFETIME);
        let expired = t
            .oidc
            .authorization_request(&by_reference(&id, &uri))
            .await
            .unwrap_err();
        assert_eq!(expired.redirect, None, "{name}: expired");
        // …and a citizen who took longer than that on the consent page is answered with an
        // error at the redirect URI, not a code.
        let AuthorizeStep::Consent(late) = t.oidc.authorize(&session, &request).await.unwrap()
        else {
            panic!("{name}: the citizen is asked");
        };
        let answer = t.oidc.decide(&session, &late, true).await.unwrap();
        assert_eq!(answer.params[0].0, "error", "{name}: {answer:?}");

        // A remembered consent spends the request too: its URI works once.
        let pkce = self::pkce();
        let query = params(&id, "openid profile", &pkce);
        let uri = push(&t, &key, &id, "par-2", query.clone()).await;
        let code = code_of(&t, &allow(&t, &session, &by_reference(&id, &uri)).await);
        let uri = push(&t, &key, &id, "par-3", query.clone()).await;
        let request = t
            .oidc
            .authorization_request(&by_reference(&id, &uri))
            .await
            .unwrap();
        let AuthorizeStep::Respond(response) = t.oidc.authorize(&session, &request).await.unwrap()
        else {
            panic!("{name}: the consent is remembered");
        };
        let second_code = code_of(&t, &response);
        assert_ne!(code, second_code, "{name}");
        let again = t
            .oidc
            .authorization_request(&by_reference(&id, &uri))
            .await
            .unwrap_err();
        assert_eq!(
            again.redirect, None,
            "{name}: spent by the remembered consent"
        );

        // A request that names its DPoP key (dpop_jkt) binds the code to that key.
        let bound_key = TestKey::new("dpop");
        let pkce = self::pkce();
        let uri = push(
            &t,
            &key,
            &id,
            "par-4",
            AuthorizationParams {
                dpop_jkt: Some(bound_key.thumbprint()),
                ..params(&id, "openid profile", &pkce)
            },
        )
        .await;
        let code = code_of(&t, &allow(&t, &session, &by_reference(&id, &uri)).await);
        let token_url = format!("{issuer}/oidc/token");
        let now = t.now().0;
        let by_other_key = key.dpop(&t.oidc.dpop_nonce(), "POST", &token_url, None, "d-1", now);
        assert_eq!(
            refusal(
                t.oidc
                    .token(&fapi2_token(
                        &t,
                        &key,
                        &id,
                        &code,
                        &pkce,
                        "tok-1",
                        Some(by_other_key)
                    ))
                    .await
            )
            .code(),
            "invalid_dpop_proof",
            "{name}"
        );
        let by_bound_key =
            bound_key.dpop(&t.oidc.dpop_nonce(), "POST", &token_url, None, "d-2", now);
        let tokens = t
            .oidc
            .token(&fapi2_token(
                &t,
                &key,
                &id,
                &code,
                &pkce,
                "tok-2",
                Some(by_bound_key),
            ))
            .await
            .unwrap();
        assert_eq!(tokens.token_type, "DPoP", "{name}");

        // A basic client may push too, with its secret.
        let pkce = self::pkce();
        let (uri, _) = t
            .oidc
            .push_request(
                &secret(&basic.client_id, &basic_secret),
                params(&basic.client_id, "openid", &pkce),
            )
            .await
            .unwrap();
        let code = code_of(
            &t,
            &allow(&t, &session, &by_reference(&basic.client_id, &uri)).await,
        );
        let tokens = t
            .oidc
            .token(&token_request(
                &code,
                &pkce.verifier,
                secret(&basic.client_id, &basic_secret),
            ))
            .await
            .unwrap();
        assert_eq!(tokens.token_type, "Bearer", "{name}");
        t.close().await;
    }
}
