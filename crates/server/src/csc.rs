//! The CSC API v2 under `/csc/v2/` (DESIGN §6, reference/csc-api.md): a bearer token (HTTP
//! Basic `auth/login`, or OAuth 2.0 in `crate::oauth`), the caller's credentials, authorisation
//! approved in ConsentID (202 with a handle, then `authorizeCheck` until the SAD), `signHash`,
//! and `timestamp` from our own TSA. Every method is a POST with a JSON body (parsed and checked
//! by the `csc` crate, which the fuzz target runs too); errors are the specification's
//! `{"error", "error_description"}`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use authority::signing::{
    ApiCaller, ApiToken, AuthorizationCheck, Credential, SignRequest, SigningRefusal,
};
use authority::{Error, Rejection};
use csc::{CertificateChoice, CscError};
use domain::signing::{AuthorizeRefusal, SadRefusal, MAX_SIGNATURES};
use domain::{Sad, UnixTime};
use pki::KeyAlgorithm;
use proto::app::RequestContext;

use crate::client_address::ClientIp;
use crate::error::{csc_response as csc_error, AppError};
use crate::state::AppState;

/// The methods we implement, as `info` lists them.
const METHODS: &[&str] = &[
    "auth/login",
    "auth/revoke",
    "credentials/list",
    "credentials/info",
    "credentials/authorize",
    "credentials/authorizeCheck",
    "signatures/signHash",
    "signatures/timestamp",
];

/// The CSC routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/csc/v2/info", post(info).get(info))
        .route("/csc/v2/openapi.json", get(openapi))
        .route("/csc/v2/auth/login", post(login))
        .route("/csc/v2/auth/revoke", post(revoke))
        .route("/csc/v2/credentials/list", post(list))
        .route("/csc/v2/credentials/info", post(credential_info))
        .route("/csc/v2/credentials/authorize", post(authorize))
        .route("/csc/v2/credentials/authorizeCheck", post(authorize_check))
        .route("/csc/v2/signatures/signHash", post(sign_hash))
        .route("/csc/v2/signatures/timestamp", post(timestamp))
}

/// A use case's error as the CSC API answers it: the refusals a CSC caller may be told, else
/// an internal error with the request id (crate::error).
fn failed(error: Error) -> Response {
    AppError::csc(error).into_response()
}

/// The CSC answer to a signing step's error: a refusal as its CSC code, anything else as
/// [`failed`] answers it.
fn signing_error(error: Error) -> Response {
    let Error::Signing(refusal) = error else {
        return failed(error);
    };
    let invalid = |text: &str| csc_error(CscError::invalid(text));
    match refusal {
        SigningRefusal::UnknownCredential => invalid("Invalid parameter credentialID"),
        SigningRefusal::UnknownHandle => invalid("Invalid parameter handle"),
        SigningRefusal::Revoked => invalid("Signing certificate is revoked"),
        SigningRefusal::Expired => invalid("Signing certificate is expired"),
        SigningRefusal::Locked => invalid("Credential locked"),
        SigningRefusal::NoDevice => {
            invalid("The credential identified by credentialID is disabled")
        }
        SigningRefusal::WrongScheme => invalid("Invalid parameter signAlgo"),
        SigningRefusal::Request(refusal) => invalid(match refusal {
            AuthorizeRefusal::NoHashes => "Empty hash array",
            AuthorizeRefusal::CountMismatch => "Invalid parameter numSignatures",
            AuthorizeRefusal::TooMany => "Numbers of signatures is too high",
            AuthorizeRefusal::WrongLength => "Invalid digest value length",
        }),
        SigningRefusal::Sad(refusal) => invalid(match refusal {
            SadRefusal::Invalid => "Invalid parameter SAD",
            SadRefusal::Spent => "Invalid parameter SAD: it was already used",
            SadRefusal::Expired => "SAD expired",
            SadRefusal::HashNotAuthorized => "Hash is not authorized by the SAD",
            SadRefusal::AlgorithmMismatch => {
                "Invalid parameter hashAlgorithmOID: it is not the authorized one"
            }
        }),
        SigningRefusal::Denied => csc_error(CscError::access_denied(
            "The user denied the authorization request",
        )),
        SigningRefusal::RequestExpired => csc_error(CscError::access_denied(
            "The authorization request expired before the user approved it",
        )),
    }
}

/// The caller behind `Authorization: Bearer …`, or the 401 to answer.
async fn caller(state: &AppState, headers: &HeaderMap) -> Result<ApiCaller, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .ok_or_else(|| csc_error(CscError::invalid_token()))?;
    match state
        .authority
        .signing
        .api_caller(&ApiToken(token.to_owned()))
        .await
    {
        Ok(Some(caller)) => Ok(caller),
        Ok(None) => Err(csc_error(CscError::invalid_token())),
        Err(error) => Err(failed(error)),
    }
}

fn parse<T: for<'de> serde::Deserialize<'de>>(body: &[u8]) -> Result<T, Response> {
    csc::parse(body).map_err(csc_error)
}

async fn info(State(state): State<AppState>) -> Response {
    let base = state
        .authority
        .settings()
        .public_url
        .trim_end_matches('/')
        .to_owned();
    let algos: Vec<&str> = csc::SIGN_ALGORITHMS.iter().map(|(oid, ..)| *oid).collect();
    Json(json!({
        "specs": csc::SPECS,
        "name": "eidportal",
        "logo": format!("{base}/favicon.ico"),
        "region": "RS",
        "lang": "sr",
        "description": "Квалификовани електронски потпис на даљину / Remote qualified electronic signature",
        "authType": ["basic", "oauth2code"],
        "oauth2": base,
        "methods": METHODS,
        "signAlgorithms": { "algos": algos, "algoParams": [] },
        "signature_formats": { "formats": [], "envelope_properties": [] },
        "conformance_levels": [],
        "asynchronousOperationMode": false,
        "validationInfo": false,
    }))
    .into_response()
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("csc_openapi.json"),
    )
        .into_response()
}

/// `auth/login`: HTTP Basic with the account's e-mail and password, for a proofed (high
/// assurance) account only; a basic one gets `403 access_denied`.
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> Response {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    let Some((email, password)) = basic.as_deref().and_then(|b| b.split_once(':')) else {
        return csc_error(CscError {
            status: 401,
            error: "authentication_error",
            error_description:
                "HTTP Basic authentication with the e-mail address and password is required".into(),
        });
    };
    match state
        .authority
        .signing
        .api_login(email, password, &ip)
        .await
    {
        Ok((token, expires_in)) => {
            Json(json!({ "access_token": token.0, "expires_in": expires_in })).into_response()
        }
        Err(error) => failed(error),
    }
}

/// `auth/revoke`: ends the caller's token (the only token a caller may name is its own).
async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let caller = match caller(&state, &headers).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    let request: csc::RevokeRequest = match parse(&body) {
        Ok(r) => r,
        Err(response) => return response,
    };
    if let Some(token) = &request.token {
        if ApiToken(token.clone()).hash() != caller.token_hash {
            return csc_error(CscError::invalid("Invalid parameter token"));
        }
    }
    match state.authority.signing.api_logout(&caller).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => failed(error),
    }
}

/// `YYYYMMDDHHmmssZ`.
fn generalized_time(at: UnixTime) -> String {
    at.rfc3339()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .filter(|c| *c != 'T')
        .collect()
}

/// A credential as `credentials/info` describes it.
fn describe(
    credential: &Credential,
    certificates: CertificateChoice,
    cert_info: bool,
    auth_info: bool,
) -> Map<String, Value> {
    let rsa = credential.algorithm == KeyAlgorithm::Rsa3072;
    let mut key = Map::new();
    key.insert(
        "status".into(),
        json!(if credential.usable() {
            "enabled"
        } else {
            "disabled"
        }),
    );
    key.insert("algo".into(), json!(csc::key_algorithms(rsa)));
    key.insert("len".into(), json!(if rsa { 3072 } else { 256 }));
    if !rsa {
        key.insert("curve".into(), json!("1.2.840.10045.3.1.7"));
    }
    let chain: Vec<String> = match certificates {
        CertificateChoice::None => Vec::new(),
        CertificateChoice::Single => credential
            .chain
            .iter()
            .take(1)
            .map(|c| STANDARD.encode(&c.0))
            .collect(),
        CertificateChoice::Chain => credential
            .chain
            .iter()
            .map(|c| STANDARD.encode(&c.0))
            .collect(),
    };
    let mut cert = Map::new();
    cert.insert("status".into(), json!(credential.status));
    cert.insert("certificates".into(), json!(chain));
    if cert_info {
        cert.insert("issuerDN".into(), json!(credential.issuer));
        cert.insert("serialNumber".into(), json!(credential.id));
        cert.insert("subjectDN".into(), json!(credential.certificate().subject));
        cert.insert(
            "validFrom".into(),
            json!(generalized_time(credential.certificate().not_before)),
        );
        cert.insert(
            "validTo".into(),
            json!(generalized_time(credential.certificate().not_after)),
        );
    }
    let mut out = Map::new();
    out.insert("description".into(), json!("Квалификовани електронски сертификат у клауду / Qualified electronic certificate in the cloud"));
    out.insert("key".into(), Value::Object(key));
    out.insert("cert".into(), Value::Object(cert));
    out.insert("SCAL".into(), json!("2"));
    out.insert("multisign".into(), json!(MAX_SIGNATURES));
    out.insert("lang".into(), json!("sr"));
    if auth_info {
        out.insert(
            "auth".into(),
            json!({
                "mode": "explicit",
                "expression": "mobile",
                "objects": [{
                    "type": "ChallengeResponseOOB",
                    "id": "mobile",
                    "label": "ConsentID",
                    "description": "Одобрите потпис у апликацији ConsentID (ПИН, Ауторизовати) / Approve the signature in the ConsentID app (PIN, Authorise)",
                }],
            }),
        );
    }
    out
}

async fn list(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let caller = match caller(&state, &headers).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    let request: csc::ListRequest = match parse(&body) {
        Ok(r) => r,
        Err(response) => return response,
    };
    if request.user_id.is_some() {
        return csc_error(CscError::invalid(
            "Invalid parameter userID: a token is bound to its user",
        ));
    }
    let choice = match csc::certificate_choice(request.certificates.as_deref()) {
        Ok(c) => c,
        Err(error) => return csc_error(error),
    };
    let only_valid = request.only_valid.unwrap_or(false);
    let credentials = match state
        .authority
        .signing
        .credentials(&caller.user, only_valid)
        .await
    {
        Ok(c) => c,
        Err(error) => return failed(error),
    };
    let ids: Vec<&str> = credentials.iter().map(|c| c.id.as_str()).collect();
    let mut out = Map::new();
    out.insert("credentialIDs".into(), json!(ids));
    out.insert("onlyValid".into(), json!(only_valid));
    if request.credential_info.unwrap_or(false) {
        let infos: Vec<Value> = credentials
            .iter()
            .map(|c| {
                let mut info = describe(
                    c,
                    choice,
                    request.cert_info.unwrap_or(false),
                    request.auth_info.unwrap_or(false),
                );
                info.insert("credentialID".into(), json!(c.id));
                Value::Object(info)
            })
            .collect();
        out.insert("credentialInfos".into(), json!(infos));
    }
    Json(Value::Object(out)).into_response()
}

async fn credential_info(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = match caller(&state, &headers).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    let request: csc::InfoRequest = match parse(&body) {
        Ok(r) => r,
        Err(response) => return response,
    };
    let Some(id) = request.credential_id.as_deref() else {
        return csc_error(CscError::missing("credentialID"));
    };
    let choice = match csc::certificate_choice(request.certificates.as_deref()) {
        Ok(c) => c,
        Err(error) => return csc_error(error),
    };
    match state.authority.signing.credential(&caller.user, id).await {
        Ok(Some(credential)) => Json(Value::Object(describe(
            &credential,
            choice,
            request.cert_info.unwrap_or(false),
            request.auth_info.unwrap_or(true),
        )))
        .into_response(),
        Ok(None) => csc_error(CscError::invalid("Invalid parameter credentialID")),
        Err(error) => failed(error),
    }
}

/// Who asks, as the app shows it: an authenticated party, never a header the caller chooses.
/// For an OAuth token, the client the user allowed (its `client_id`, which the user saw and
/// approved on the portal); for a token from `auth/login` (HTTP Basic), "CSC API" and the
/// account that logged in.
fn requester(caller: &ApiCaller) -> String {
    let party = caller.client_id.as_deref().unwrap_or(&caller.user.email);
    domain::text::display_text(&format!("CSC API: {party}"), 120)
}

/// The calling software as the app shows it beside the address (unauthenticated, like a
/// browser's name): its User-Agent as printable text, or "CSC API".
fn calling_software(headers: &HeaderMap) -> String {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let agent = domain::text::display_text(agent.trim(), 60);
    if agent.trim().is_empty() {
        "CSC API".into()
    } else {
        agent
    }
}

/// What ties an authorisation, its handle and its SAD to the caller that asked: the bearer
/// token (a token belongs to one OAuth client, so this binds the client too).
fn binding(caller: &ApiCaller) -> String {
    format!("api:{}", caller.token_hash)
}

/// Document titles from the description: one title for one hash, numbered for several.
fn titles(description: Option<&str>, count: usize) -> Vec<String> {
    let base = description
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .unwrap_or("Документ");
    if count == 1 {
        return vec![base.to_owned()];
    }
    (1..=count)
        .map(|i| format!("{base} ({i}/{count})"))
        .collect()
}

async fn authorize(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = match caller(&state, &headers).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    let request =
        match parse::<csc::AuthorizeRequest>(&body).and_then(|r| r.validate().map_err(csc_error)) {
            Ok(r) => r,
            Err(response) => return response,
        };
    let sign = SignRequest {
        credential_id: request.credential_id,
        algorithm: request.algorithm,
        titles: titles(request.description.as_deref(), request.hashes.len()),
        num_signatures: request.num_signatures,
        hashes: request.hashes,
        requester: requester(&caller),
        context: RequestContext {
            browser: calling_software(&headers),
            ip,
        },
    };
    match state
        .authority
        .signing
        .authorize_signing(&caller.user, &sign, &binding(&caller))
        .await
    {
        Ok(handle) => (StatusCode::ACCEPTED, Json(json!({ "handle": handle }))).into_response(),
        Err(error) => signing_error(error),
    }
}

async fn authorize_check(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = match caller(&state, &headers).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    let handle = match parse::<csc::AuthorizeCheckRequest>(&body)
        .and_then(|r| r.validate().map_err(csc_error))
    {
        Ok(h) => h,
        Err(response) => return response,
    };
    match state
        .authority
        .signing
        .authorization_check(&caller.user, &handle, &binding(&caller))
        .await
    {
        Ok(AuthorizationCheck::Pending { .. }) => {
            (StatusCode::ACCEPTED, Json(json!({ "handle": handle }))).into_response()
        }
        Ok(AuthorizationCheck::Authorized { sad, expires_in }) => {
            Json(json!({ "SAD": sad.as_str(), "expiresIn": expires_in })).into_response()
        }
        Err(error) => signing_error(error),
    }
}

async fn sign_hash(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let caller = match caller(&state, &headers).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    let request =
        match parse::<csc::SignHashRequest>(&body).and_then(|r| r.validate().map_err(csc_error)) {
            Ok(r) => r,
            Err(response) => return response,
        };
    match state
        .authority
        .signing
        .sign_hashes(
            &caller.user,
            &binding(&caller),
            &request.credential_id,
            &Sad::from(request.sad.clone()),
            request.algorithm,
            request.scheme,
            &request.hashes,
        )
        .await
    {
        Ok(signatures) => {
            let signatures: Vec<String> = signatures.iter().map(|s| STANDARD.encode(s)).collect();
            Json(json!({ "signatures": signatures })).into_response()
        }
        Err(error) => signing_error(error),
    }
}

/// `signatures/timestamp`: a token from our own TSA, under the limits of `POST /tsa` (per
/// address and overall) and a per-user one; past them `429 temporarily_unavailable`.
async fn timestamp(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = match caller(&state, &headers).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    let request =
        match parse::<csc::TimestampRequest>(&body).and_then(|r| r.validate().map_err(csc_error)) {
            Ok(r) => r,
            Err(response) => return response,
        };
    match state
        .authority
        .tsa
        .api_timestamp_token(
            &caller.user.id,
            &ip,
            request.algorithm,
            &request.hash,
            request.nonce.as_deref(),
        )
        .await
    {
        Ok(token) => Json(json!({ "timestamp": STANDARD.encode(token) })).into_response(),
        Err(Error::Rejected(Rejection::Invalid(_))) => {
            csc_error(CscError::invalid("Invalid parameter hash"))
        }
        Err(error) => failed(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_titles_read_as_the_specification_expects() {
        assert_eq!(generalized_time(UnixTime(0)), "19700101000000Z");
        assert_eq!(titles(Some("Ugovor"), 1), vec!["Ugovor"]);
        assert_eq!(titles(None, 2), vec!["Документ (1/2)", "Документ (2/2)"]);
    }
}
