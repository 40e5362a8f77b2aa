//! The OpenID provider in-process, for router tests: `server::http::app(state)` on an authority
//! opened on a temporary SQLite store with software keys and a [`ManualClock`], answered with
//! `oneshot` (no socket, no sleep). Citizens log in through the portal's own routes, approved in
//! the ConsentID app stand-in (`authority::test_app::App`); services are registered as the
//! operator's `eidportal oidc client add` does; a `fapi2` service's key signs its client
//! assertions and DPoP proofs with `jsonwebtoken`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::EncodePrivateKey as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tower::ServiceExt as _;

use authority::oidc::{ClientRegistration, ASSERTION_TYPE};
use authority::ra::accounts::NewUser;
use authority::test_app::App;
use authority::{Authority, ManualClock, Settings};
use domain::oidc::{Profile, SubjectType};
use domain::{Jmbg, UnixTime};
use pki::{KeyBackend, MasterKey, SoftwareKeyBackend};
use proto::app::ResponseOutcome;
use server::state::{AppState, Metrics};

/// The provider's public URL: the issuer.
pub const ISSUER: &str = "https://eid.example";
/// The redirect URI every test service registers first.
pub const REDIRECT: &str = "https://rp.example/cb";
/// The second one.
pub const OTHER_REDIRECT: &str = "https://rp.example/other";
/// Where a service may send the browser after a logout.
pub const AFTER_LOGOUT: &str = "https://rp.example/bye";
/// The password of the citizens [`Provider::citizen`] enrols.
pub const PASSWORD: &str = "correct horse battery";
/// 2026-11-25T03:34:33Z: where the manual clock starts.
pub const START: UnixTime = UnixTime(1_795_577_673);

/// The provider, its clock, and what must live as long as it.
pub struct Provider {
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    _stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

/// An answer of the router.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }

    /// The OAuth `error` of a JSON refusal.
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }

    /// The `Location` of a redirect.
    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }

    /// A redirect to `REDIRECT` (or another registered URI): its query parameters.
    pub fn redirect_params(&self) -> Vec<(String, String)> {
        let location = self
            .location()
            .unwrap_or_else(|| panic!("no redirect: {} {}", self.status, self.text()));
        let query = location.split_once('?').map_or("", |(_, q)| q);
        serde_urlencoded::from_str(query).unwrap()
    }

    /// A parameter of the redirect.
    pub fn redirect_param(&self, name: &str) -> Option<String> {
        self.redirect_params()
            .into_iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// The value of the cookie `name` this answer sets.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_owned())
    }

    /// The CSRF token of the page's forms.
    pub fn csrf(&self) -> String {
        let text = self.text();
        let start = text
            .find(r#"name="csrf" value=""#)
            .unwrap_or_else(|| panic!("no form on the page: {} {text}", self.status))
            + r#"name="csrf" value=""#.len();
        let end = text[start..].find('"').unwrap() + start;
        text[start..end].to_owned()
    }
}

/// A browser: its session cookie (`sid`), if it has one.
#[derive(Debug, Clone, Default)]
pub struct Browser {
    pub sid: Option<String>,
}

impl Browser {
    fn cookie(&self) -> Option<String> {
        self.sid.as_ref().map(|sid| format!("sid={sid}"))
    }

    /// Keeps the session cookie an answer sets.
    fn keep(&mut self, answer: &Answer) {
        if let Some(sid) = answer.set_cookie("sid") {
            self.sid = Some(sid);
        }
    }
}

/// A new `jti`: `prefix` and random text.
pub fn fresh(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>())
    )
}

/// A form body.
pub fn form(fields: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(fields).unwrap()
}

/// A registered service: its id and, for a `basic` confidential one, its secret.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub secret: Option<String>,
}

impl Client {
    /// The form fields of `client_secret_post`.
    pub fn secret_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("client_id", self.id.clone()),
            ("client_secret", self.secret.clone().unwrap()),
        ]
    }
}

/// A `basic` confidential service (a secret, pairwise `sub`), allowed `scopes` beyond `openid`.
pub fn basic(scopes: &[&str]) -> ClientRegistration {
    ClientRegistration {
        name: "Пореска управа".into(),
        redirect_uris: vec![REDIRECT.into(), OTHER_REDIRECT.into()],
        profile: Profile::Basic,
        jwks: None,
        public: false,
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        allow_jmbg: false,
        subject: SubjectType::Pairwise,
        ciba: false,
        ciba_notification_endpoint: None,
        backchannel_logout_uri: None,
        post_logout_redirect_uris: vec![AFTER_LOGOUT.into()],
    }
}

/// A PKCE pair (RFC 7636): the verifier and its S256 challenge.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn generate() -> Self {
        let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Self {
            verifier,
            challenge,
        }
    }
}

/// An authorization request's parameters, as a service's redirect carries them.
pub fn authorization(client_id: &str, scope: &str, pkce: &Pkce) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", client_id.into()),
        ("redirect_uri", REDIRECT.into()),
        ("scope", scope.into()),
        ("state", "state-1".into()),
        ("nonce", "nonce-1".into()),
        ("code_challenge", pkce.challenge.clone()),
        ("code_challenge_method", "S256".into()),
    ]
}

/// Pairs with owned values as a query or form.
pub fn encode(pairs: &[(&str, String)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap()
}

/// A service's P-256 key: its PKCS#8 DER for `jsonwebtoken`, and its public JWK.
pub struct ClientKey {
    der: Vec<u8>,
    public: Value,
    kid: String,
}

impl ClientKey {
    pub fn new(kid: &str) -> Self {
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
    pub fn jwks(&self) -> String {
        let mut jwk = self.public.clone();
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!("ES256");
        json!({ "keys": [jwk] }).to_string()
    }

    /// Signs `claims` under `header`.
    pub fn sign(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &EncodingKey::from_ec_der(&self.der)).unwrap()
    }

    /// A client assertion (RFC 7523 §3) of `client_id` for `audience`, made at `now`.
    pub fn assertion(&self, client_id: &str, audience: &str, jti: &str, now: UnixTime) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        self.sign(
            &header,
            &json!({
                "iss": client_id,
                "sub": client_id,
                "aud": audience,
                "jti": jti,
                "iat": now.0,
                "exp": now.0 + 60,
            }),
        )
    }

    /// The form fields of `private_key_jwt`, with an assertion for the issuer.
    pub fn credentials(
        &self,
        client_id: &str,
        jti: &str,
        now: UnixTime,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("client_id", client_id.to_owned()),
            ("client_assertion_type", ASSERTION_TYPE.to_owned()),
            (
                "client_assertion",
                self.assertion(client_id, ISSUER, jti, now),
            ),
        ]
    }

    /// A DPoP proof (RFC 9449 §4.2) for `method` at `url`, with the server's `nonce` if any and
    /// `ath` for `access_token`.
    pub fn dpop(&self, proof: Dpop<'_>) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(serde_json::from_value(self.public.clone()).unwrap());
        let mut claims = json!({
            "htm": proof.method,
            "htu": proof.url,
            "iat": proof.iat.0,
            "jti": proof.jti,
        });
        if let Some(nonce) = proof.nonce {
            claims["nonce"] = json!(nonce);
        }
        if let Some(token) = proof.access_token {
            claims["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes())));
        }
        self.sign(&header, &claims)
    }
}

/// What a DPoP proof says.
#[derive(Debug, Clone, Copy)]
pub struct Dpop<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub jti: &'a str,
    pub iat: UnixTime,
    pub nonce: Option<&'a str>,
    pub access_token: Option<&'a str>,
}

/// The tokens of a token endpoint's answer.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub token_type: String,
    pub id_token: Option<String>,
    pub refresh_token: Option<String>,
}

impl Tokens {
    fn of(answer: &Answer) -> Self {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        let body = answer.json();
        let text = |name: &str| body[name].as_str().map(str::to_owned);
        Self {
            access_token: text("access_token").unwrap(),
            token_type: text("token_type").unwrap(),
            id_token: text("id_token"),
            refresh_token: text("refresh_token"),
        }
    }
}

impl Provider {
    /// A provider on a new SQLite store, its clock at [`START`].
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::new(ISSUER);
        settings.mailer.outbox = dir.path().join("outbox");
        let clock = Arc::new(ManualClock::new(START));
        let keys: Arc<dyn KeyBackend> = Arc::new(SoftwareKeyBackend::new(MasterKey::generate()));
        let store = store::Store::connect(&format!("sqlite:{}", dir.path().join("db").display()))
            .await
            .unwrap();
        let authority = Authority::open(store, keys, clock.clone(), settings)
            .await
            .unwrap()
            .with_deployment_secret(&rand::random());
        let (stop, stopping) = server::transport::Stopping::new();
        let state = AppState {
            authority: Arc::new(authority),
            metrics: Arc::new(Metrics::default()),
            catalog: Arc::new(server::i18n::Catalog::load().unwrap()),
            secure_cookies: true,
            stopping,
            app_public_url: "https://app.eid.example".into(),
        };
        Self {
            state,
            clock,
            _stop: stop,
            _dir: dir,
        }
    }

    pub fn authority(&self) -> &Authority {
        &self.state.authority
    }

    pub fn now(&self) -> UnixTime {
        self.authority().now()
    }

    /// Sends one request through a new router, as from the loopback address the app stand-in
    /// calls from too (the same network: no "are you at that computer?").
    pub async fn send(&self, mut request: Request<Body>) -> Answer {
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))));
        let response = server::http::app(self.state.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// A request of `browser` (its cookie), keeping the session cookie it is given.
    pub async fn browse(
        &self,
        browser: &mut Browser,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(cookie) = browser.cookie() {
            request = request.header(header::COOKIE, cookie);
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body)),
            None => request.body(Body::empty()),
        };
        let answer = self.send(request.unwrap()).await;
        browser.keep(&answer);
        answer
    }

    /// A service's form POST to `path` with extra `headers` (a `DPoP` proof, HTTP Basic).
    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: String) -> Answer {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Body::from(body)).unwrap()).await
    }

    /// A resource request (userinfo) with `authorization` and a `DPoP` proof if any.
    pub async fn resource(
        &self,
        method: Method,
        path: &str,
        authorization: &str,
        dpop: Option<&str>,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, authorization);
        if let Some(proof) = dpop {
            request = request.header("dpop", proof);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    /// The DPoP nonce the provider hands out now (on any answer of its token endpoint).
    pub async fn dpop_nonce(&self) -> String {
        let answer = self.post("/oidc/token", &[], String::new()).await;
        answer.header("dpop-nonce").unwrap().to_owned()
    }

    /// An officer enrols `email` (proofed, with [`PASSWORD`]) and the citizen activates the
    /// ConsentID app.
    pub async fn citizen(&self, email: &str) -> App {
        let new = NewUser {
            email: email.into(),
            given_name: "Петар".into(),
            surname: "Петровић".into(),
            jmbg: Jmbg::parse("0101990710008").unwrap(),
            password: Some(zeroize::Zeroizing::new(PASSWORD.into())),
        };
        let (_, code) = self.authority().ra.add_user(new, "officer").await.unwrap();
        App::activate(self.authority(), &code.0).await.unwrap()
    }

    /// Logs `email` in with ConsentID through the portal's pages, approved in `app`.
    pub async fn consentid_login(&self, app: &App, email: &str) -> Browser {
        let mut browser = Browser::default();
        let page = self
            .browse(&mut browser, Method::GET, "/login/mobile", None)
            .await;
        let started = self
            .browse(
                &mut browser,
                Method::POST,
                "/login/mobile",
                Some(form(&[("csrf", &page.csrf()), ("username", email)])),
            )
            .await;
        let waiting = started.location().unwrap().to_owned();
        assert!(waiting.starts_with("/login/mobile/"), "{waiting}");
        assert_eq!(
            app.approve_next(self.authority()).await,
            ResponseOutcome::Approved
        );
        let page = self.browse(&mut browser, Method::GET, &waiting, None).await;
        let done = self
            .browse(
                &mut browser,
                Method::POST,
                &format!("{waiting}/complete"),
                Some(form(&[("csrf", &page.csrf())])),
            )
            .await;
        assert_eq!(done.location(), Some("/account"), "{}", done.text());
        assert!(done.set_cookie("sid").is_some(), "a new session");
        browser
    }

    /// Logs `email` in with the password through the portal's page.
    pub async fn password_login(&self, email: &str) -> Browser {
        let mut browser = Browser::default();
        let page = self
            .browse(&mut browser, Method::GET, "/login/password", None)
            .await;
        let done = self
            .browse(
                &mut browser,
                Method::POST,
                "/login/password",
                Some(form(&[
                    ("csrf", &page.csrf()),
                    ("username", email),
                    ("password", PASSWORD),
                ])),
            )
            .await;
        assert_eq!(done.location(), Some("/account"), "{}", done.text());
        browser
    }

    /// Registers a service as the operator does.
    pub async fn register(&self, registration: ClientRegistration) -> Client {
        let (client, secret) = self
            .authority()
            .oidc
            .register_client(registration)
            .await
            .unwrap();
        Client {
            id: client.client_id,
            secret,
        }
    }

    /// A `fapi2` service with `key`'s JWKS, allowed `scopes`.
    pub async fn fapi2(&self, key: &ClientKey, scopes: &[&str]) -> Client {
        self.register(ClientRegistration {
            profile: Profile::Fapi2,
            jwks: Some(key.jwks()),
            ..basic(scopes)
        })
        .await
    }

    /// The authorization endpoint for `browser` with `query`, the citizen allowing on the
    /// consent page if asked: the answer that sends the browser back to the service.
    pub async fn authorize(&self, browser: &mut Browser, query: &str) -> Answer {
        let path = format!("/oidc/authorize?{query}");
        let answer = self.browse(browser, Method::GET, &path, None).await;
        if answer.status != StatusCode::OK {
            return answer;
        }
        let csrf = answer.csrf();
        self.browse(
            browser,
            Method::POST,
            "/oidc/authorize",
            Some(form(&[
                ("csrf", &csrf),
                ("query", query),
                ("decision", "allow"),
            ])),
        )
        .await
    }

    /// A code for `browser` at `REDIRECT`, checking `state` and `iss` (RFC 9207).
    pub async fn code(&self, browser: &mut Browser, query: &str) -> String {
        let answer = self.authorize(browser, query).await;
        let location = answer
            .location()
            .unwrap_or_else(|| panic!("no redirect: {} {}", answer.status, answer.text()));
        assert!(location.starts_with(&format!("{REDIRECT}?")), "{location}");
        assert_eq!(answer.redirect_param("state").as_deref(), Some("state-1"));
        assert_eq!(answer.redirect_param("iss").as_deref(), Some(ISSUER));
        answer
            .redirect_param("code")
            .unwrap_or_else(|| panic!("no code: {location}"))
    }

    /// A `basic` service's code exchange with its secret: the answer.
    pub async fn exchange(&self, client: &Client, code: &str, verifier: &str) -> Answer {
        let mut fields = client.secret_fields();
        fields.extend([
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("code_verifier", verifier.to_owned()),
        ]);
        self.post("/oidc/token", &[], encode(&fields)).await
    }

    /// [`Self::exchange`], which must succeed.
    pub async fn tokens(&self, client: &Client, code: &str, verifier: &str) -> Tokens {
        Tokens::of(&self.exchange(client, code, verifier).await)
    }

    /// A `basic` service's login of the citizen in `browser` with `scope`: its tokens.
    pub async fn logged_in(&self, client: &Client, browser: &mut Browser, scope: &str) -> Tokens {
        let pkce = Pkce::generate();
        let code = self
            .code(browser, &encode(&authorization(&client.id, scope, &pkce)))
            .await;
        self.tokens(client, &code, &pkce.verifier).await
    }

    /// A `fapi2` service pushes its request (PAR), authenticated by an assertion with `jti`:
    /// the answer.
    pub async fn push(
        &self,
        client: &Client,
        key: &ClientKey,
        jti: &str,
        params: &[(&'static str, String)],
    ) -> Answer {
        let mut fields = key.credentials(&client.id, jti, self.now());
        fields.extend(
            params
                .iter()
                .filter(|(name, _)| *name != "client_id")
                .cloned(),
        );
        self.post("/oidc/par", &[], encode(&fields)).await
    }

    /// A `fapi2` service's code for `browser`: pushed, then brought by the browser.
    pub async fn fapi2_code(
        &self,
        client: &Client,
        key: &ClientKey,
        browser: &mut Browser,
        pkce: &Pkce,
    ) -> String {
        let pushed = self
            .push(
                client,
                key,
                &fresh("par"),
                &authorization(&client.id, "openid profile", pkce),
            )
            .await;
        assert_eq!(pushed.status, StatusCode::CREATED, "{}", pushed.text());
        let request_uri = pushed.json()["request_uri"].as_str().unwrap().to_owned();
        let query = encode(&[
            ("client_id", client.id.clone()),
            ("request_uri", request_uri),
        ]);
        self.code(browser, &query).await
    }

    /// A `fapi2` service's code exchange: an assertion with `jti`, and `dpop` as its proof.
    pub async fn fapi2_exchange(
        &self,
        client: &Client,
        key: &ClientKey,
        code: &str,
        pkce: &Pkce,
        jti: &str,
        dpop: Option<&str>,
    ) -> Answer {
        let mut fields = key.credentials(&client.id, jti, self.now());
        fields.extend([
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("code_verifier", pkce.verifier.clone()),
        ]);
        let headers: Vec<(&str, &str)> = dpop.map(|p| ("dpop", p)).into_iter().collect();
        self.post("/oidc/token", &headers, encode(&fields)).await
    }

    /// A proof of `key` with the current nonce, for the token endpoint.
    pub async fn token_proof(&self, key: &ClientKey, jti: &str) -> String {
        let nonce = self.dpop_nonce().await;
        key.dpop(Dpop {
            method: "POST",
            url: &format!("{ISSUER}/oidc/token"),
            jti,
            iat: self.now(),
            nonce: Some(&nonce),
            access_token: None,
        })
    }

    /// A `fapi2` service's login of the citizen in `browser`: its DPoP-bound tokens.
    pub async fn fapi2_logged_in(
        &self,
        client: &Client,
        key: &ClientKey,
        browser: &mut Browser,
    ) -> Tokens {
        let pkce = Pkce::generate();
        let code = self.fapi2_code(client, key, browser, &pkce).await;
        let proof = self.token_proof(key, &fresh("proof")).await;
        let answer = self
            .fapi2_exchange(client, key, &code, &pkce, &fresh("assertion"), Some(&proof))
            .await;
        let tokens = Tokens::of(&answer);
        assert_eq!(tokens.token_type, "DPoP");
        tokens
    }

    /// Userinfo with a DPoP-bound `token` and a fresh proof of `key` (`jti`) for GET.
    pub async fn userinfo_dpop(&self, key: &ClientKey, token: &str, jti: &str) -> Answer {
        let nonce = self.dpop_nonce().await;
        let proof = key.dpop(Dpop {
            method: "GET",
            url: &format!("{ISSUER}/oidc/userinfo"),
            jti,
            iat: self.now(),
            nonce: Some(&nonce),
            access_token: Some(token),
        });
        self.resource(
            Method::GET,
            "/oidc/userinfo",
            &format!("DPoP {token}"),
            Some(&proof),
        )
        .await
    }

    /// Userinfo with a bearer token.
    pub async fn userinfo(&self, token: &str) -> Answer {
        self.resource(
            Method::GET,
            "/oidc/userinfo",
            &format!("Bearer {token}"),
            None,
        )
        .await
    }

    /// Introspection of `token` by `client` with its secret: the answer.
    pub async fn introspect(&self, client: &Client, token: &str) -> Answer {
        let mut fields = client.secret_fields();
        fields.push(("token", token.to_owned()));
        self.post("/oidc/introspect", &[], encode(&fields)).await
    }

    /// Whether introspection by `client` says `token` is active.
    pub async fn active(&self, client: &Client, token: &str) -> bool {
        let answer = self.introspect(client, token).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        answer.json()["active"].as_bool().unwrap()
    }
}
