//! The OpenID provider's HTTP face (issue 23, DESIGN §10): discovery, the JWKS, pushed
//! authorization requests, the authorization endpoint with its consent page (**Дозволи** /
//! **Одбиј**), the token endpoint and userinfo. The use cases are `authority::oidc`'s.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use authority::oidc::{
    AuthorizationParams, AuthorizationRequest, AuthorizationResponse, AuthorizeError,
    AuthorizeStep, BackchannelRequest, ClientCredentials, LogoutPlan, LogoutRequest,
    ResourceRequest, TokenRequest,
};
use authority::{Error, OidcRefusal};

use crate::client_address::ClientIp;
use crate::error::{internal_response, Surface};
use crate::headers::allowing_form_target;
use crate::i18n::Language;
use crate::portal::{csrf_ok, internal, message_page, render, MessagePage, Page, Visit};
use crate::state::AppState;

/// The provider's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oidc/jwks", get(jwks))
        .route("/oidc/par", post(par))
        .route("/oidc/authorize", get(authorize).post(decision))
        .route("/oidc/token", post(token))
        .route("/oidc/userinfo", get(userinfo).post(userinfo))
        .route("/oidc/bc-authorize", post(backchannel))
        .route("/oidc/logout", get(logout_page).post(logout))
        .route("/oidc/revoke", post(revoke))
        .route("/oidc/introspect", post(introspect))
}

/// `response` with the DPoP nonce to use next (RFC 9449 §8, §9): on every answer of the
/// endpoints that take DPoP proofs, so that a client has it before its first proof.
fn with_nonce(state: &AppState, mut response: Response) -> Response {
    if let Ok(value) = HeaderValue::from_str(&state.authority.oidc.dpop_nonce()) {
        response.headers_mut().insert("dpop-nonce", value);
    }
    response
}

/// A JSON answer that no cache keeps.
fn no_store(status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A refusal as RFC 6749 §5.2 wants it, counted for `endpoint`; anything else is ours (500,
/// with the request id).
fn refused(state: &AppState, endpoint: &'static str, error: &Error) -> Response {
    let Error::Oidc(refusal) = error else {
        state.metrics.count_oidc(endpoint, "server_error");
        return internal_response(&Surface::Csc, error);
    };
    state.metrics.count_oidc(endpoint, refusal.code());
    let at_resource = endpoint == "userinfo";
    let status = match refusal {
        OidcRefusal::InvalidClient(_) | OidcRefusal::InvalidToken(_) => StatusCode::UNAUTHORIZED,
        // RFC 9449 §7.1, §9: a resource refuses a proof (or asks for a nonce) with 401, the
        // token endpoint with 400.
        OidcRefusal::InvalidDpopProof(_) | OidcRefusal::UseDpopNonce if at_resource => {
            StatusCode::UNAUTHORIZED
        }
        _ => StatusCode::BAD_REQUEST,
    };
    let mut response = no_store(
        status,
        json!({ "error": refusal.code(), "error_description": refusal.description() }),
    );
    if at_resource {
        // RFC 6750 §3 and RFC 9449 §7.1: say which schemes are accepted.
        let challenge = format!(
            "DPoP error=\"{}\", algs=\"ES256 PS256\", Bearer",
            refusal.code()
        );
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
    } else if status == StatusCode::UNAUTHORIZED {
        // RFC 9110 §15.5.2: a 401 carries a challenge; RFC 6749 §5.2: a client's is HTTP
        // Basic, the one scheme for client credentials that HTTP has.
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"oidc\""),
        );
    }
    response
}

async fn discovery(State(state): State<AppState>) -> Response {
    Json(state.authority.oidc.discovery()).into_response()
}

async fn jwks(State(state): State<AppState>) -> Response {
    match state.authority.oidc.jwks() {
        Ok(keys) => Json(keys).into_response(),
        Err(error) => internal_response(&Surface::Csc, &error),
    }
}

/// The client's credentials: HTTP Basic (RFC 6749 §2.3.1: each part form-urlencoded), or
/// the form's `client_id`, `client_secret`, `client_assertion_type` and `client_assertion`.
fn credentials(headers: &HeaderMap, form: &[(String, String)]) -> Result<ClientCredentials, Error> {
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let mut credentials = ClientCredentials {
        client_id: field("client_id"),
        secret: field("client_secret"),
        assertion_type: field("client_assertion_type"),
        assertion: field("client_assertion"),
    };
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let invalid = || {
            Error::from(OidcRefusal::InvalidClient(
                "malformed Basic credentials".into(),
            ))
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .map_err(|_| invalid())?;
        let text = String::from_utf8(decoded).map_err(|_| invalid())?;
        let (id, secret) = text.split_once(':').ok_or_else(invalid)?;
        let decode = |part: &str| {
            percent_encoding::percent_decode_str(&part.replace('+', " "))
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| invalid())
        };
        let id = decode(id)?;
        if credentials
            .client_id
            .as_ref()
            .is_some_and(|given| *given != id)
            || credentials.secret.is_some()
        {
            return Err(OidcRefusal::InvalidClient("two ways of authenticating".into()).into());
        }
        credentials.client_id = Some(id);
        credentials.secret = Some(decode(secret)?);
    }
    Ok(credentials)
}

/// A form body as pairs; a parameter given twice is refused (RFC 6749 §3.1).
fn form_pairs(body: &str) -> Result<Vec<(String, String)>, Error> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(body)
        .map_err(|_| OidcRefusal::InvalidRequest("the body must be a form".into()))?;
    let mut names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w.first() == w.get(1)) {
        return Err(OidcRefusal::InvalidRequest("a parameter is repeated".into()).into());
    }
    Ok(pairs)
}

fn params_of(pairs: &[(String, String)]) -> Result<AuthorizationParams, Error> {
    let map: serde_json::Map<String, Value> = pairs
        .iter()
        .filter(|(key, _)| !key.starts_with("client_assertion") && key != "client_secret")
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    serde_json::from_value(Value::Object(map))
        .map_err(|_| OidcRefusal::InvalidRequest("the parameters do not parse".into()).into())
}

async fn par(State(state): State<AppState>, headers: HeaderMap, body: String) -> Response {
    let response = par_answer(&state, &headers, &body).await;
    with_nonce(&state, response)
}

async fn par_answer(state: &AppState, headers: &HeaderMap, body: &str) -> Response {
    let pushed = async {
        let pairs = form_pairs(body)?;
        let credentials = credentials(headers, &pairs)?;
        let params = params_of(&pairs)?;
        state
            .authority
            .oidc
            .push_request(&credentials, params)
            .await
    };
    match pushed.await {
        Ok((request_uri, expires_in)) => {
            state.metrics.count_oidc("par", "ok");
            no_store(
                StatusCode::CREATED,
                json!({ "request_uri": request_uri, "expires_in": expires_in }),
            )
        }
        Err(error) => refused(state, "par", &error),
    }
}

async fn token(State(state): State<AppState>, headers: HeaderMap, body: String) -> Response {
    let response = token_answer(&state, &headers, &body).await;
    with_nonce(&state, response)
}

async fn token_answer(state: &AppState, headers: &HeaderMap, body: &str) -> Response {
    let answered = async {
        let pairs = form_pairs(body)?;
        let credentials = credentials(headers, &pairs)?;
        let field = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        let request = TokenRequest {
            grant_type: field("grant_type"),
            code: field("code"),
            redirect_uri: field("redirect_uri"),
            code_verifier: field("code_verifier"),
            refresh_token: field("refresh_token"),
            auth_req_id: field("auth_req_id"),
            credentials,
            dpop: headers
                .get("dpop")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        };
        state.authority.oidc.token(&request).await
    };
    match answered.await {
        Ok(tokens) => {
            state.metrics.count_oidc("token", "ok");
            {
                let mut body = serde_json::Map::new();
                body.insert("access_token".into(), json!(tokens.access_token));
                body.insert("token_type".into(), json!(tokens.token_type));
                body.insert("expires_in".into(), json!(tokens.expires_in));
                body.insert("scope".into(), json!(tokens.scope));
                if let Some(id_token) = tokens.id_token {
                    body.insert("id_token".into(), json!(id_token));
                }
                if let Some(refresh) = tokens.refresh_token {
                    body.insert("refresh_token".into(), json!(refresh));
                }
                no_store(StatusCode::OK, Value::Object(body))
            }
        }
        Err(error) => refused(state, "token", &error),
    }
}

/// The `token` of a revocation or introspection request, and the client's credentials.
fn token_and_client(headers: &HeaderMap, body: &str) -> Result<(String, ClientCredentials), Error> {
    let pairs = form_pairs(body)?;
    let credentials = credentials(headers, &pairs)?;
    let token = pairs
        .iter()
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.clone())
        .ok_or_else(|| OidcRefusal::InvalidRequest("no token".into()))?;
    Ok((token, credentials))
}

async fn backchannel(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: String,
) -> Response {
    let started = async {
        let pairs = form_pairs(&body)?;
        let credentials = credentials(&headers, &pairs)?;
        let field = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        // A transaction is approved through the authorization endpoint, where its binding
        // to the approving login is checked; a CIBA request carries only a binding message.
        if field("authorization_details").is_some() {
            return Err(OidcRefusal::InvalidAuthorizationDetails(
                "not taken with CIBA: send the transaction to the authorization endpoint".into(),
            )
            .into());
        }
        let request = BackchannelRequest {
            scope: field("scope"),
            login_hint: field("login_hint"),
            id_token_hint: field("id_token_hint"),
            other_hint: field("login_hint_token").is_some(),
            binding_message: field("binding_message"),
            acr_values: field("acr_values"),
            client_notification_token: field("client_notification_token"),
        };
        state
            .authority
            .oidc
            .backchannel_authenticate(&credentials, &request, &ip)
            .await
    };
    match started.await {
        Ok(started) => {
            state.metrics.count_oidc("bc_authorize", "ok");
            no_store(
                StatusCode::OK,
                json!({
                    "auth_req_id": started.auth_req_id,
                    "expires_in": started.expires_in,
                    "interval": started.interval,
                }),
            )
        }
        Err(error) => refused(&state, "bc_authorize", &error),
    }
}

async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: String) -> Response {
    let revoked = async {
        let (token, credentials) = token_and_client(&headers, &body)?;
        state.authority.oidc.revoke(&credentials, &token).await
    };
    match revoked.await {
        // RFC 7009 §2.2: 200 whether or not there was such a token.
        Ok(()) => {
            state.metrics.count_oidc("revoke", "ok");
            no_store(StatusCode::OK, json!({}))
        }
        Err(error) => refused(&state, "revoke", &error),
    }
}

async fn introspect(State(state): State<AppState>, headers: HeaderMap, body: String) -> Response {
    let answered = async {
        let (token, credentials) = token_and_client(&headers, &body)?;
        state.authority.oidc.introspect(&credentials, &token).await
    };
    match answered.await {
        Ok(answer) => {
            state.metrics.count_oidc("introspect", "ok");
            no_store(StatusCode::OK, answer)
        }
        Err(error) => refused(&state, "introspect", &error),
    }
}

async fn userinfo(State(state): State<AppState>, method: Method, headers: HeaderMap) -> Response {
    let response = userinfo_answer(&state, &method, &headers).await;
    with_nonce(&state, response)
}

async fn userinfo_answer(state: &AppState, method: &Method, headers: &HeaderMap) -> Response {
    let Some((scheme, token)) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
    else {
        return refused(
            state,
            "userinfo",
            &OidcRefusal::InvalidToken("no access token".into()).into(),
        );
    };
    let request = ResourceRequest {
        scheme,
        token: token.trim(),
        dpop: headers.get("dpop").and_then(|v| v.to_str().ok()),
        method: method.as_str(),
    };
    match state.authority.oidc.userinfo(&request).await {
        Ok(claims) => {
            state.metrics.count_oidc("userinfo", "ok");
            no_store(StatusCode::OK, claims)
        }
        Err(error) => refused(state, "userinfo", &error),
    }
}

/// What an answer at the redirect URI says, for `/metrics`: `ok` (a code) or its error.
fn outcome_of(response: &AuthorizationResponse) -> &'static str {
    let error = response
        .params
        .iter()
        .find(|(key, _)| key == "error")
        .map(|(_, value)| value.as_str());
    match error {
        None => "ok",
        Some("access_denied") => "access_denied",
        Some("login_required") => "login_required",
        Some("consent_required") => "consent_required",
        Some("invalid_scope") => "invalid_scope",
        Some("invalid_authorization_details") => "invalid_authorization_details",
        Some("unsupported_response_type") => "unsupported_response_type",
        Some(_) => "invalid_request",
    }
}

/// The answer at the client's redirect URI.
fn respond(response: &AuthorizationResponse) -> Response {
    let separator = if response.redirect_uri.contains('?') {
        '&'
    } else {
        '?'
    };
    match serde_urlencoded::to_string(&response.params) {
        Ok(query) => {
            Redirect::to(&format!("{}{separator}{query}", response.redirect_uri)).into_response()
        }
        Err(error) => internal_response(&Surface::Plain, &error),
    }
}

/// A refused authorization request: back to the client if its redirect URI is registered,
/// else a page of ours.
fn authorize_refused(state: &AppState, visit: &Visit, refusal: &AuthorizeError) -> Response {
    state.metrics.count_oidc("authorize", refusal.error);
    if let Some(redirect) = &refusal.redirect {
        return respond(redirect);
    }
    let page = state.page(visit, "oidc-heading", "/oidc/authorize");
    let template = MessagePage {
        heading: page.t("oidc-heading"),
        text: format!("{} ({})", page.t("oidc-invalid"), refusal.description),
        is_error: true,
        link: "/".into(),
        link_text: page.t("error-back"),
        page,
    };
    let mut response = render(state, visit, &template);
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response
}

/// One line of the consent page: what the service will receive.
struct Released {
    text: String,
}

#[derive(Template)]
#[template(path = "oidc_consent.html")]
struct ConsentPage {
    page: Page,
    text: String,
    released: Vec<Released>,
    query: String,
}

fn consent_page(
    state: &AppState,
    visit: &Visit,
    request: &AuthorizationRequest,
    query: &str,
) -> Response {
    let page = state.page(visit, "oidc-heading", "/oidc/authorize");
    let mut released = vec![Released {
        text: page.t("oidc-claim-sub"),
    }];
    released.extend(request.claims.iter().map(|claim| Released {
        text: page.t(&format!("oidc-claim-{}", claim.name().replace('_', "-"))),
    }));
    let template = ConsentPage {
        text: page.t_with("oidc-text", &[("client", request.client.name.clone())]),
        released,
        query: query.to_owned(),
        page,
    };
    // Allowed, the browser goes on to the service.
    allowing_form_target(render(state, visit, &template), &request.redirect_uri)
}

async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let visit = match state.visit(&headers).await {
        Ok(visit) => visit,
        Err(error) => return internal(&state, Language::SerbianCyrillic, &error),
    };
    let raw = raw.unwrap_or_default();
    let query: AuthorizationParams = serde_urlencoded::from_str(&raw).unwrap_or_default();
    let request = match state.authority.oidc.authorization_request(&query).await {
        Ok(request) => request,
        Err(refusal) => return authorize_refused(&state, &visit, &refusal),
    };
    match state
        .authority
        .oidc
        .authorize(&visit.session, &request)
        .await
    {
        Ok(AuthorizeStep::Respond(response)) => {
            state.metrics.count_oidc("authorize", outcome_of(&response));
            respond(&response)
        }
        Ok(AuthorizeStep::Consent(request)) => consent_page(&state, &visit, &request, &raw),
        Ok(AuthorizeStep::Login) => {
            let page = state.page(&visit, "oidc-heading", "/oidc/authorize");
            // A transaction (RFC 9396) is approved by a login of its own, by username: the
            // phone shows its text (the QR and same-phone logins carry none).
            let text = match &request.transaction {
                Some(transaction) => page.t_with(
                    "oidc-transaction-login",
                    &[
                        ("client", request.client.name.clone()),
                        ("text", transaction.text.clone()),
                    ],
                ),
                None => page.t_with(
                    "oidc-login-first",
                    &[("client", request.client.name.clone())],
                ),
            };
            // Every way to log in (the mobile app, the QR code or the same phone, and the
            // password, whose `acr` is low); for a transaction, the login by username.
            let (link, link_text) = match &request.transaction {
                Some(_) => ("/login/mobile", page.t("cloud-login-again")),
                None => ("/login", page.t("login-methods-heading")),
            };
            let template = MessagePage {
                heading: page.t("oidc-heading"),
                text,
                is_error: false,
                link: link.into(),
                link_text,
                page,
            };
            // The request waits server-side under a random id, the cookie's only content
            // (as the CSC's OAuth: issue 22).
            let pending = match state
                .authority
                .signing
                .oauth_remember(&format!("/oidc/authorize?{raw}"))
                .await
            {
                Ok(pending) => pending,
                Err(error) => return internal(&state, visit.language, &error),
            };
            let mut response = render(&state, &visit, &template);
            if let Some(value) = pending.and_then(|id| state.next_cookie(Some(&id.0))) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        Err(error) => internal(&state, visit.language, &error),
    }
}

#[derive(Deserialize)]
struct DecisionForm {
    csrf: String,
    query: String,
    decision: String,
}

async fn decision(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<DecisionForm>,
) -> Response {
    let visit = match state.visit(&headers).await {
        Ok(visit) => visit,
        Err(error) => return internal(&state, Language::SerbianCyrillic, &error),
    };
    if !csrf_ok(&visit, &form.csrf) {
        return message_page(
            &state,
            &visit,
            StatusCode::FORBIDDEN,
            "error-form-expired",
            "/",
        );
    }
    let query: AuthorizationParams = serde_urlencoded::from_str(&form.query).unwrap_or_default();
    let request = match state.authority.oidc.authorization_request(&query).await {
        Ok(request) => request,
        Err(refusal) => return authorize_refused(&state, &visit, &refusal),
    };
    match state
        .authority
        .oidc
        .decide(&visit.session, &request, form.decision == "allow")
        .await
    {
        Ok(response) => {
            state.metrics.count_oidc("authorize", outcome_of(&response));
            respond(&response)
        }
        Err(Error::Oidc(_)) => message_page(
            &state,
            &visit,
            StatusCode::UNAUTHORIZED,
            "error-login-required",
            "/login/mobile",
        ),
        Err(error) => internal(&state, visit.language, &error),
    }
}

/// What an RP-initiated logout request (its query) asks for, or the page that refuses it.
async fn logout_plan(state: &AppState, visit: &Visit, query: &str) -> Result<LogoutPlan, Response> {
    let request: LogoutRequest = serde_urlencoded::from_str(query).unwrap_or_default();
    match state.authority.oidc.logout_request(&request).await {
        Ok(plan) => Ok(plan),
        Err(Error::Oidc(refusal)) => Err(authorize_refused(
            state,
            visit,
            &AuthorizeError {
                redirect: None,
                error: refusal.code(),
                description: refusal.description(),
            },
        )),
        Err(error) => Err(internal(state, visit.language, &error)),
    }
}

#[derive(Template)]
#[template(path = "oidc_logout.html")]
struct LogoutPage {
    page: Page,
    text: String,
    query: String,
}

/// `GET /oidc/logout` (RP-initiated logout): asks the citizen to confirm **Одјава** (a link
/// alone never ends a session); not logged in, straight on to where the service asked.
async fn logout_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let visit = match state.visit(&headers).await {
        Ok(visit) => visit,
        Err(error) => return internal(&state, Language::SerbianCyrillic, &error),
    };
    let raw = raw.unwrap_or_default();
    let plan = match logout_plan(&state, &visit, &raw).await {
        Ok(plan) => plan,
        Err(response) => return response,
    };
    if visit.session.user.is_none() {
        return Redirect::to(plan.redirect.as_deref().unwrap_or("/")).into_response();
    }
    let page = state.page(&visit, "oidc-logout-heading", "/oidc/logout");
    let text = match &plan.service {
        Some(service) => page.t_with("oidc-logout-text", &[("client", service.clone())]),
        None => page.t("oidc-logout-text-portal"),
    };
    let template = LogoutPage {
        text,
        query: raw,
        page,
    };
    let response = render(&state, &visit, &template);
    match &plan.redirect {
        // Confirmed, the browser goes on to the service's registered URI.
        Some(redirect) => allowing_form_target(response, redirect),
        None => response,
    }
}

#[derive(Deserialize)]
struct LogoutForm {
    csrf: String,
    query: String,
}

/// `POST /oidc/logout`: the confirmed logout (every service that got an ID token in the
/// session is told on its back channel), then back to the service's registered URI.
async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    let visit = match state.visit(&headers).await {
        Ok(visit) => visit,
        Err(error) => return internal(&state, Language::SerbianCyrillic, &error),
    };
    if !csrf_ok(&visit, &form.csrf) {
        return message_page(
            &state,
            &visit,
            StatusCode::FORBIDDEN,
            "error-form-expired",
            "/",
        );
    }
    let plan = match logout_plan(&state, &visit, &form.query).await {
        Ok(plan) => plan,
        Err(response) => return response,
    };
    if let Err(error) = state.authority.login.logout(&visit.session).await {
        return internal(&state, visit.language, &error);
    }
    Redirect::to(plan.redirect.as_deref().unwrap_or("/")).into_response()
}
