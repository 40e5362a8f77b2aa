//! A service logging citizens in through the OpenID provider at FAPI 2.0 (`login_bench
//! --oidc`): PAR with `private_key_jwt` and DPoP, the browser's authorization request around
//! the mobile login, the code exchanged for DPoP-bound tokens, and userinfo with a proof.
//!
//! The service's JWS (client assertions and DPoP proofs) are signed by `jsonwebtoken` with
//! aws-lc-rs, as a real service's library would; that work happens before a step's clock
//! starts, like the app's signatures.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use consentid::{Clock as _, SystemClock};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::{between, login_to, timed, url_encode, Answer, App, BrowserMode, Connection};
use super::{Failure, Step, USER_AGENT};

/// The service's key files in the folder `login_bench --oidc-keygen` writes.
const KEY_FILE: &str = "key.der";
const JWKS_FILE: &str = "jwks.json";
/// `eidportal oidc client add --json`'s answer, saved there by scripts/bench.
const CLIENT_FILE: &str = "client.json";
const KID: &str = "bench";

/// A registered FAPI 2.0 service.
pub struct Service {
    issuer: String,
    client_id: String,
    redirect_uri: String,
    key: EncodingKey,
    jwk: Value,
}

/// Writes a new P-256 key (`key.der`, PKCS#8) and its JWKS (`jwks.json`) into `dir`.
pub fn keygen(dir: &Path) -> Result<(), String> {
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let der = secret.to_pkcs8_der().map_err(|e| e.to_string())?;
    let mut jwk = public_jwk(&secret)?;
    if let Some(fields) = jwk.as_object_mut() {
        fields.insert("kid".into(), json!(KID));
        fields.insert("use".into(), json!("sig"));
        fields.insert("alg".into(), json!("ES256"));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(dir.join(name), bytes).map_err(|e| format!("{name}: {e}"))
    };
    write(KEY_FILE, der.as_bytes())?;
    write(JWKS_FILE, json!({ "keys": [jwk] }).to_string().as_bytes())
}

fn public_jwk(secret: &p256::SecretKey) -> Result<Value, String> {
    let point = secret.public_key().to_encoded_point(false);
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        return Err("the public key has no coordinates".into());
    };
    Ok(json!({
        "kty": "EC",
        "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(x),
        "y": URL_SAFE_NO_PAD.encode(y),
    }))
}

impl Service {
    /// The service whose keys and registration are in `dir`, at the provider `issuer`.
    pub fn load(dir: &Path, issuer: &str) -> Result<Self, String> {
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| format!("{}: {e}", dir.join(name).display()))
        };
        let der = read(KEY_FILE)?;
        let secret = p256::SecretKey::from_pkcs8_der(&der).map_err(|e| e.to_string())?;
        let client: Value = serde_json::from_slice(&read(CLIENT_FILE)?)
            .map_err(|e| format!("{CLIENT_FILE}: {e}"))?;
        let text = |field: &str| {
            client
                .pointer(field)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("{CLIENT_FILE}: no {field}"))
        };
        Ok(Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            client_id: text("/client_id")?,
            redirect_uri: text("/redirect_uris/0")?,
            key: EncodingKey::from_ec_der(&der),
            jwk: public_jwk(&secret)?,
        })
    }

    fn sign(&self, header: &Header, claims: &Value) -> Result<String, Failure> {
        jsonwebtoken::encode(header, claims, &self.key).map_err(|e| Failure::new("jws", e))
    }

    /// A client assertion (RFC 7523) for the endpoint `url`.
    fn assertion(&self, url: &str) -> Result<String, Failure> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(KID.into());
        let now = unix_now();
        self.sign(
            &header,
            &json!({
                "iss": self.client_id, "sub": self.client_id, "aud": url,
                "jti": random(), "iat": now, "exp": now + 60,
            }),
        )
    }

    /// A DPoP proof (RFC 9449) for `method` at `url`, with the server's `nonce`, bound to
    /// `access_token` when there is one.
    fn proof(
        &self,
        nonce: &str,
        method: &str,
        url: &str,
        access_token: Option<&str>,
    ) -> Result<String, Failure> {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk =
            Some(serde_json::from_value(self.jwk.clone()).map_err(|e| Failure::new("jwk", e))?);
        let mut claims = json!({
            "htm": method, "htu": url, "iat": unix_now(), "jti": random(), "nonce": nonce,
        });
        if let (Some(token), Some(fields)) = (access_token, claims.as_object_mut()) {
            let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
            fields.insert("ath".into(), json!(ath));
        }
        self.sign(&header, &claims)
    }

    /// A service call with a DPoP proof: once more with the server's new nonce when it asks
    /// (`use_dpop_nonce`, as every client library does); `nonce` keeps the newest.
    #[allow(clippy::too_many_arguments)] // one HTTP exchange, as `timed` with the proof's parts
    fn with_proof(
        &self,
        times: &mut Vec<(Step, u32)>,
        step: Step,
        connection: &mut Connection,
        nonce: &mut String,
        method: &str,
        path: &str,
        access_token: Option<&str>,
        body: impl Fn(&Self) -> Result<String, Failure>,
    ) -> Result<Answer, Failure> {
        let url = format!("{}{path}", self.issuer);
        for _ in 0..2 {
            let proof = self.proof(nonce, method, &url, access_token)?;
            let authorization = access_token.map(|token| format!("DPoP {token}"));
            let body = body(self)?;
            let mut headers = vec![
                ("DPoP", proof.as_str()),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ];
            headers.extend(authorization.as_deref().map(|a| ("Authorization", a)));
            let answer = timed(
                times,
                step,
                connection,
                method,
                path,
                &headers,
                body.as_bytes(),
            )?;
            let fresh = answer.header("dpop-nonce").map(str::to_owned);
            let asked = answer.status >= 400 && answer.text().contains("use_dpop_nonce");
            if let Some(fresh) = fresh {
                *nonce = fresh;
            }
            if !asked {
                return Ok(answer);
            }
        }
        Err(Failure::new(step.as_str(), "use_dpop_nonce twice"))
    }
}

/// One login of `app`'s user to `service`, as the service, the browser and the phone do it;
/// `nonce` is the service's newest DPoP nonce. The steps:
/// 1. `par`: the service pushes its request (PKCE S256, assertion, DPoP) → `request_uri`;
/// 2. `authorize`: the browser, without a session, opens the authorization URL → the page
///    that asks for a login, and the `next` cookie that remembers the request;
/// 3. the mobile login of [`login_to`], which completes with a 303 back to that URL;
/// 4. `authorize`: the URL again, logged in → 303 to the service with the code (a user's first
///    login shows the consent page first: `consent` allows it);
/// 5. `token`: the code, the verifier, an assertion and a proof → DPoP-bound tokens;
/// 6. `userinfo`: the access token with a proof → the user's e-mail.
pub fn login(
    service: &Service,
    app: &App,
    browser: &mut Connection,
    phone: &mut Connection,
    mode: BrowserMode,
    times: &mut Vec<(Step, u32)>,
    nonce: &mut String,
) -> Result<(), Failure> {
    // 1. PAR.
    let verifier = random();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let state = random();
    let par_url = format!("{}/oidc/par", service.issuer);
    let pushed = service.with_proof(
        times,
        Step::Par,
        browser,
        nonce,
        "POST",
        "/oidc/par",
        None,
        |s| {
            Ok(form(&[
                ("response_type", "code"),
                ("client_id", &s.client_id),
                ("redirect_uri", &s.redirect_uri),
                ("scope", "openid profile email"),
                ("state", &state),
                ("nonce", &random()),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &s.assertion(&par_url)?),
            ]))
        },
    )?;
    let request_uri = json_field(&pushed, Step::Par, 201, "request_uri")?;
    let authorize = format!(
        "/oidc/authorize?client_id={}&request_uri={}",
        url_encode(&service.client_id),
        url_encode(&request_uri)
    );

    // 2. The browser at the service's URL, not logged in: the request is remembered.
    let first = timed(
        times,
        Step::Authorize,
        browser,
        "GET",
        &authorize,
        &[("User-Agent", USER_AGENT)],
        b"",
    )?;
    let next = first
        .cookie("next")
        .filter(|_| first.status == 200)
        .ok_or_else(|| {
            Failure::new(
                "authorize",
                format!("{} and no next cookie", first.describe()),
            )
        })?;
    let next = format!("next={next}");

    // 3. The mobile login, back to the authorization URL.
    let sid = login_to(app, browser, phone, mode, times, Some(&next), &authorize)?;
    let cookie = format!("sid={sid}");
    let page_headers = [("User-Agent", USER_AGENT), ("Cookie", cookie.as_str())];

    // 4. Logged in: the code (after the consent page, the first time).
    let mut answer = timed(
        times,
        Step::Authorize,
        browser,
        "GET",
        &authorize,
        &page_headers,
        b"",
    )?;
    if answer.status == 200 {
        // (The query has no `<>"'`; the page writes its `&` as `&#38;`.)
        let html = answer.text();
        let (Some(csrf), Some(query)) = (
            between(&html, "name=\"csrf\" value=\"", "\""),
            between(&html, "name=\"query\" value=\"", "\""),
        ) else {
            return Err(Failure::new("consent", "no consent form"));
        };
        let body = form(&[
            ("csrf", csrf),
            ("query", &query.replace("&#38;", "&")),
            ("decision", "allow"),
        ]);
        let headers = [
            ("User-Agent", USER_AGENT),
            ("Cookie", cookie.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        answer = timed(
            times,
            Step::Consent,
            browser,
            "POST",
            "/oidc/authorize",
            &headers,
            body.as_bytes(),
        )?;
    }
    let location = answer.header("location").unwrap_or_default();
    let prefix = format!("{}?code=", service.redirect_uri);
    let code = location
        .strip_prefix(&prefix)
        .and_then(|rest| rest.split('&').next())
        .filter(|_| answer.status == 303 && location.contains(&format!("state={state}")))
        .ok_or_else(|| {
            Failure::new(
                "authorize",
                format!("{}, not to the service with a code", answer.describe()),
            )
        })?
        .to_owned();

    // 5. The code for tokens.
    let token_url = format!("{}/oidc/token", service.issuer);
    let tokens = service.with_proof(
        times,
        Step::Token,
        browser,
        nonce,
        "POST",
        "/oidc/token",
        None,
        |s| {
            Ok(form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &s.redirect_uri),
                ("code_verifier", &verifier),
                ("client_id", &s.client_id),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &s.assertion(&token_url)?),
            ]))
        },
    )?;
    let access = json_field(&tokens, Step::Token, 200, "access_token")?;
    if json_field(&tokens, Step::Token, 200, "id_token").is_err() {
        return Err(Failure::new("token", "no ID token"));
    }

    // 6. Userinfo.
    let info = service.with_proof(
        times,
        Step::UserInfo,
        browser,
        nonce,
        "GET",
        "/oidc/userinfo",
        Some(&access),
        |_| Ok(String::new()),
    )?;
    let email = json_field(&info, Step::UserInfo, 200, "email")?;
    if email != app.email {
        return Err(Failure::new("userinfo", "another user's e-mail"));
    }
    Ok(())
}

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(name, value)| format!("{name}={}", url_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The string `field` of a JSON answer with the status `status`.
fn json_field(answer: &Answer, step: Step, status: u16, field: &str) -> Result<String, Failure> {
    let value: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    match value.get(field).and_then(Value::as_str) {
        Some(text) if answer.status == status => Ok(text.to_owned()),
        _ => Err(Failure::new(step.as_str(), answer.describe())),
    }
}

/// 32 random bytes, base64url: a PKCE verifier, a `state`, a `jti`.
fn random() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn unix_now() -> i64 {
    SystemClock.now()
}
