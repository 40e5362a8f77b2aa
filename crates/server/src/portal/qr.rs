//! The portal's login without a username (issue 10): **QR код** on the login page starts it;
//! its page shows a QR code that changes every second and, for a citizen on the phone itself,
//! the link **Отвори ConsentID**; once a phone approved, the page completes the login as the
//! mobile login's waiting page does. The rules are `domain::qr`'s, the use cases
//! `authority::login::qr_login`'s.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};

use authority::{Error, Rejection};
use domain::TransactionStatus;

use super::login::{logged_in, status_message_id, StatusQuery, STATUS_KEYS};
use super::page::{
    csrf_ok, describe_browser, form_expired, internal, message_page, render, with_cookie, CsrfForm,
    Page, Visit,
};
use crate::client_address::ClientIp;
use crate::i18n::Language;
use crate::state::AppState;

/// The QR login routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/login/qr", post(start))
        .route("/login/qr/{id}", get(page))
        .route("/login/qr/{id}/frame.svg", get(frame))
        .route("/login/qr/{id}/status", get(status))
        .route("/login/qr/{id}/complete", post(complete))
        .route("/login/qr/{id}/cancel", post(cancel))
}

async fn visit(state: &AppState, headers: &HeaderMap) -> Result<Visit, Response> {
    state
        .visit(headers)
        .await
        .map_err(|error| internal(state, Language::SerbianCyrillic, &error))
}

async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(form): Form<CsrfForm>,
) -> Response {
    let visit = match visit(&state, &headers).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    if !csrf_ok(&visit, &form.csrf) {
        return form_expired(&state, &visit, "/login");
    }
    let browser = describe_browser(
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    match state
        .authority
        .login
        .qr_login_start(&visit.session, &ip, &browser)
        .await
    {
        Ok(started) => with_cookie(
            &state,
            Redirect::to(&format!("/login/qr/{}", started.id)).into_response(),
            visit.new_cookie.as_ref(),
        ),
        Err(Error::Rejected(Rejection::RateLimited)) => message_page(
            &state,
            &visit,
            StatusCode::TOO_MANY_REQUESTS,
            "error-rate-limited",
            "/login",
        ),
        Err(error) => internal(&state, visit.language, &error),
    }
}

#[derive(Template)]
#[template(path = "login_qr.html")]
struct LoginQrPage {
    page: Page,
    id: String,
    /// The app's address that opens it with this login (`#/link?t=`).
    link: String,
    status: &'static str,
    hint: String,
    status_message: String,
    /// No phone has the login yet: the QR code is shown.
    waiting: bool,
    pending: bool,
    approved: bool,
    seconds_left: i64,
    messages: Vec<(String, String)>,
}

/// The message id for a QR login's state: while no phone took it, or after one did.
fn qr_message_id(status: TransactionStatus, hint: &str) -> &'static str {
    match (status, hint) {
        (TransactionStatus::Pending, "waiting") => "qr-status-waiting",
        (TransactionStatus::Pending, _) => "qr-status-taken",
        _ => status_message_id(status, hint),
    }
}

async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let visit = match visit(&state, &headers).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let login = match state
        .authority
        .login
        .qr_login_state(&visit.session, &id)
        .await
    {
        Ok(login) => login,
        // The app sends the citizen back here after the approval; when this browser's other
        // tab completed the login first, the session is already logged in.
        Err(Error::Rejected(_)) if visit.session.user.is_some() => {
            return Redirect::to("/account").into_response()
        }
        Err(Error::Rejected(_)) => {
            return message_page(
                &state,
                &visit,
                StatusCode::NOT_FOUND,
                "error-not-found",
                "/login",
            )
        }
        Err(error) => return internal(&state, visit.language, &error),
    };
    let token = match state
        .authority
        .login
        .qr_link_token(&visit.session, &id)
        .await
    {
        Ok(token) => token,
        Err(error) => return internal(&state, visit.language, &error),
    };
    let page = state.page(&visit, "qr-heading", &format!("/login/qr/{id}"));
    let mut messages: Vec<(String, String)> = STATUS_KEYS
        .iter()
        .map(|(key, s, h)| ((*key).to_owned(), page.t(status_message_id(*s, h))))
        .collect();
    for (key, id) in [
        ("pending:waiting", "qr-status-waiting"),
        ("pending", "qr-status-taken"),
    ] {
        messages.push((key.to_owned(), page.t(id)));
    }
    let app = state.app_public_url.trim_end_matches('/');
    let template = LoginQrPage {
        link: format!("{app}/#/link?t={token}"),
        status: login.status.as_str(),
        status_message: page.t(qr_message_id(login.status, &login.hint)),
        waiting: login.status == TransactionStatus::Pending && login.hint == "waiting",
        pending: login.status == TransactionStatus::Pending,
        approved: login.status == TransactionStatus::Approved,
        seconds_left: login.seconds_left,
        hint: login.hint,
        messages,
        id,
        page,
    };
    render(&state, &visit, &template)
}

/// The QR code to show now, as SVG: only to the browser that started the login, only while
/// no phone took it.
async fn frame(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let visit = match visit(&state, &headers).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let text = match state.authority.login.qr_frame(&visit.session, &id).await {
        Ok(text) => text,
        Err(Error::Rejected(Rejection::NotFound)) => return StatusCode::NOT_FOUND.into_response(),
        Err(Error::Rejected(_)) => return StatusCode::GONE.into_response(),
        Err(error) => return internal(&state, visit.language, &error),
    };
    match qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(264, 264)
                .quiet_zone(true)
                .build();
            (
                [
                    (header::CONTENT_TYPE, "image/svg+xml"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                svg,
            )
                .into_response()
        }
        Err(error) => internal(&state, visit.language, &error),
    }
}

/// The login's state as JSON. `?wait=N` (at most 25 s) makes it a long poll, as the mobile
/// login's status: it answers when a phone takes the login, when its request is answered or
/// ends, or after N seconds (a stopping server answers at once).
async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<StatusQuery>,
) -> Response {
    let visit = match visit(&state, &headers).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    // Not needed while waiting (as the app's inbox, app_api.rs).
    drop(headers);
    let login = &state.authority.login;
    let login_state = tokio::select! {
        login_state = login.qr_login_state_waiting(&visit.session, &id, query.wait()) => login_state,
        () = state.stopping.wait() => login.qr_login_state(&visit.session, &id).await,
    };
    match login_state {
        Ok(login) => Json(serde_json::json!({
            "status": login.status.as_str(),
            "hint": login.hint,
            "seconds_left": login.seconds_left,
        }))
        .into_response(),
        Err(Error::Rejected(_)) => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "not_found" })),
        )
            .into_response(),
        Err(error) => internal(&state, visit.language, &error),
    }
}

async fn complete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let visit = match visit(&state, &headers).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    if !csrf_ok(&visit, &form.csrf) {
        return form_expired(&state, &visit, "/login");
    }
    match state
        .authority
        .login
        .qr_login_complete(&visit.session, &id)
        .await
    {
        Ok((token, _)) => logged_in(&state, &visit, &headers, &token).await,
        Err(Error::Rejected(_)) => Redirect::to(&format!("/login/qr/{id}")).into_response(),
        Err(error) => internal(&state, visit.language, &error),
    }
}

async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let visit = match visit(&state, &headers).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    if !csrf_ok(&visit, &form.csrf) {
        return form_expired(&state, &visit, "/login");
    }
    match state
        .authority
        .login
        .qr_login_cancel(&visit.session, &id)
        .await
    {
        Ok(()) | Err(Error::Rejected(_)) => Redirect::to("/login").into_response(),
        Err(error) => internal(&state, visit.language, &error),
    }
}
