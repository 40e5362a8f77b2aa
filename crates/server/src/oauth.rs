//! OAuth 2.0 for the CSC API (`authType` `oauth2code`): `GET /oauth2/authorize` asks the user,
//! logged in with ConsentID, to allow a client on their own computer; `POST /oauth2/authorize`
//! sends the code to the client's loopback redirect URI; `POST /oauth2/token` exchanges it
//! (with the PKCE verifier) for a bearer token of the CSC API.

use askama::Template;
use axum::extract::{Query, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::json;

use authority::Error;
use csc::{OAuthAuthorize, OAuthAuthorizeQuery, OAuthRefusal, OAuthTokenForm};

use crate::error::{internal_response, AppError, Surface};
use crate::headers::allowing_form_target;
use crate::i18n::Language;
use crate::portal::{
    csrf_ok, internal, message_page, render, with_cookie, MessagePage, Page, Visit,
};
use crate::state::AppState;

/// The OAuth routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/oauth2/authorize",
            get(authorize_page).post(authorize_decision),
        )
        .route("/oauth2/token", post(token))
}

#[derive(Template)]
#[template(path = "oauth_consent.html")]
struct ConsentPage {
    page: Page,
    text: String,
    client_id: String,
    redirect_uri: String,
    query: String,
}

/// Appends `pairs` to the client's redirect URI as query parameters.
fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)]) -> Response {
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    match serde_urlencoded::to_string(pairs) {
        Ok(query) => Redirect::to(&format!("{redirect_uri}{separator}{query}")).into_response(),
        Err(error) => AppError::other(Surface::Plain, error).into_response(),
    }
}

/// A refused request: back to the client when its redirect URI is trusted, else a page.
fn refusal(
    state: &AppState,
    visit: &Visit,
    query: &OAuthAuthorizeQuery,
    refusal: &OAuthRefusal,
) -> Response {
    match (&query.redirect_uri, refusal.redirect) {
        (Some(uri), true) => {
            let mut pairs = vec![
                ("error", refusal.error),
                ("error_description", refusal.description),
            ];
            if let Some(state) = &query.state {
                pairs.push(("state", state));
            }
            redirect_with(uri, &pairs)
        }
        _ => {
            let page = state.page(visit, "oauth-heading", "/oauth2/authorize");
            let template = MessagePage {
                heading: page.t("oauth-heading"),
                text: format!("{} ({})", page.t("oauth-invalid"), refusal.description),
                is_error: true,
                link: "/".into(),
                link_text: page.t("error-back"),
                page,
            };
            let mut response = render(state, visit, &template);
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response
        }
    }
}

async fn authorize_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    query: Result<Query<OAuthAuthorizeQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let visit = match state.visit(&headers).await {
        Ok(visit) => visit,
        Err(error) => return internal(&state, Language::SerbianCyrillic, &error),
    };
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let request = match query.validate() {
        Ok(request) => request,
        Err(refused) => return refusal(&state, &visit, &query, &refused),
    };
    let raw = raw.unwrap_or_default();
    let logged_in = visit.session.user.is_some() && visit.session.by_consentid();
    if !logged_in {
        // Log in with ConsentID first; the login comes back here.
        let page = state.page(&visit, "oauth-heading", "/oauth2/authorize");
        let template = MessagePage {
            heading: page.t("oauth-heading"),
            text: page.t_with(
                "oauth-login-first",
                &[("client", request.client_id.clone())],
            ),
            is_error: false,
            link: "/login/mobile".into(),
            link_text: page.t("cloud-login-again"),
            page,
        };
        // The request waits server-side; the cookie holds only its random id (issue 22: the
        // query itself, `state` included, is the link maker's text and never goes into a
        // `Set-Cookie` header, where `;` would add attributes of their choosing).
        let pending = match state.authority.signing.oauth_remember(&raw).await {
            Ok(pending) => pending,
            Err(error) => return internal(&state, visit.language, &error),
        };
        let mut response = render(&state, &visit, &template);
        if let Some(value) = pending.and_then(|id| state.next_cookie(Some(&id.0))) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        return response;
    }
    let page = state.page(&visit, "oauth-heading", "/oauth2/authorize");
    let target = request.redirect_uri.clone();
    let template = ConsentPage {
        text: page.t_with("oauth-text", &[("client", request.client_id.clone())]),
        client_id: request.client_id,
        redirect_uri: request.redirect_uri,
        query: raw,
        page,
    };
    // Either answer sends the browser on to the client.
    allowing_form_target(render(&state, &visit, &template), &target)
}

#[derive(Deserialize)]
struct DecisionForm {
    csrf: String,
    query: String,
    decision: String,
}

async fn authorize_decision(
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
    // The original authorisation query, carried through the consent form.
    let query: OAuthAuthorizeQuery = match serde_urlencoded::from_str(&form.query) {
        Ok(q) => q,
        Err(_) => {
            return message_page(
                &state,
                &visit,
                StatusCode::BAD_REQUEST,
                "oauth-invalid",
                "/",
            )
        }
    };
    let request: OAuthAuthorize = match query.validate() {
        Ok(request) => request,
        Err(refused) => return refusal(&state, &visit, &query, &refused),
    };
    let state_pair = |mut pairs: Vec<(&'static str, String)>| {
        if let Some(s) = &request.state {
            pairs.push(("state", s.clone()));
        }
        pairs
    };
    if form.decision != "allow" {
        let pairs = state_pair(vec![
            ("error", "access_denied".into()),
            ("error_description", "the user denied the request".into()),
        ]);
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        return redirect_with(&request.redirect_uri, &pairs);
    }
    match state
        .authority
        .signing
        .oauth_allow(&visit.session, &request)
        .await
    {
        Ok(code) => {
            let pairs = state_pair(vec![("code", code)]);
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            with_cookie(&state, redirect_with(&request.redirect_uri, &pairs), None)
        }
        Err(Error::OAuth(authority::OAuthRefusal::LoginRequired)) => message_page(
            &state,
            &visit,
            StatusCode::UNAUTHORIZED,
            "error-login-required",
            "/login/mobile",
        ),
        Err(error) => internal(&state, visit.language, &error),
    }
}

fn token_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

async fn token(
    State(state): State<AppState>,
    form: Result<Form<OAuthTokenForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return token_error(
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    };
    let request = match form.validate() {
        Ok(request) => request,
        Err((error, description)) => return token_error(error, description),
    };
    match state.authority.signing.oauth_token(&request).await {
        Ok((token, expires_in)) => {
            let mut response = Json(json!({ "access_token": token.0, "token_type": "Bearer", "expires_in": expires_in })).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(Error::OAuth(authority::OAuthRefusal::InvalidGrant(reason))) => {
            token_error("invalid_grant", reason)
        }
        Err(Error::OAuth(authority::OAuthRefusal::LoginRequired)) => {
            token_error("invalid_grant", "the code was not allowed")
        }
        // `server_error` (RFC 6749 §4.1.2.1's code: §5.2 has none for a failure of ours), with
        // the request id; always internal here, any other refusal included (the exchange
        // expects none).
        Err(error) => internal_response(&Surface::Csc, &error),
    }
}
