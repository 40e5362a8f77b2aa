//! Logging in (the seed's steps 1-7): the choice of method, the username form, the waiting page
//! with the verification code, password login and logout.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;

use authority::login::SessionToken;
use authority::signing::oauth::PendingAuthorization;
use authority::{Error, Rejection};
use domain::{TransactionStatus, TxnId};

use crate::client_address::ClientIp;
use crate::state::AppState;

use super::page::{
    cookie, csrf_ok, describe_browser, form_expired, internal, message_page, render, visit_or_fail,
    with_cookie, CsrfForm, Page, Visit,
};

/// The login routes: the choice of method, the mobile login by username, the password login,
/// logout.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_methods))
        .route("/login/mobile", get(login_mobile).post(login_mobile_start))
        .route("/login/mobile/{txn}", get(login_wait))
        .route("/login/mobile/{txn}/status", get(login_status))
        .route("/login/mobile/{txn}/complete", post(login_complete))
        .route("/login/mobile/{txn}/cancel", post(login_cancel))
        .route(
            "/login/password",
            get(login_password).post(login_password_submit),
        )
        .route("/logout", post(logout))
}

#[derive(Template)]
#[template(path = "login_methods.html")]
struct LoginMethodsPage {
    page: Page,
}

async fn login_methods(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let visit = visit_or_fail!(state, headers);
    let page = state.page(&visit, "login-methods-heading", "/login");
    render(&state, &visit, &LoginMethodsPage { page })
}

#[derive(Template)]
#[template(path = "login_mobile.html")]
struct LoginMobilePage {
    page: Page,
    error: Option<String>,
    username: String,
}

async fn login_mobile(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let visit = visit_or_fail!(state, headers);
    let page = state.page(&visit, "username-heading", "/login/mobile");
    render(
        &state,
        &visit,
        &LoginMobilePage {
            page,
            error: None,
            username: String::new(),
        },
    )
}

#[derive(Deserialize)]
struct UsernameForm {
    csrf: String,
    username: String,
}

async fn login_mobile_start(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(form): Form<UsernameForm>,
) -> Response {
    let visit = visit_or_fail!(state, headers);
    let retry =
        |state: &AppState, visit: &Visit, status: StatusCode, id: &str, username: String| {
            let page = state.page(visit, "username-heading", "/login/mobile");
            let error = Some(page.t(id));
            let mut response = render(
                state,
                visit,
                &LoginMobilePage {
                    page,
                    error,
                    username,
                },
            );
            *response.status_mut() = status;
            response
        };
    if !csrf_ok(&visit, &form.csrf) {
        return retry(
            &state,
            &visit,
            StatusCode::FORBIDDEN,
            "error-form-expired",
            form.username,
        );
    }
    let browser = describe_browser(
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    // A login on the way to a service (the OpenID provider's request waits under the `next`
    // cookie) is shown on the phone as a login to that service, with the transaction text the
    // service asks the citizen to approve (RFC 9396), if any.
    let waiting = match cookie(&headers, "next") {
        Some(id) => match state
            .authority
            .signing
            .oauth_peek(&PendingAuthorization(id.to_owned()))
            .await
        {
            Ok(Some(path)) => state.authority.oidc.login_waiting_at(&path).await,
            _ => None,
        },
        None => None,
    };
    let service = waiting
        .as_ref()
        .map_or(authority::login::PORTAL_NAME, |w| w.service.as_str());
    let message = waiting.as_ref().and_then(|w| w.transaction.as_deref());
    match state
        .authority
        .login
        .login_start_for(
            &visit.session,
            &form.username,
            &ip,
            &browser,
            service,
            message,
        )
        .await
    {
        Ok(started) => with_cookie(
            &state,
            Redirect::to(&format!("/login/mobile/{}", started.txn_id)).into_response(),
            visit.new_cookie.as_ref(),
        ),
        Err(Error::Rejected(Rejection::RateLimited)) => retry(
            &state,
            &visit,
            StatusCode::TOO_MANY_REQUESTS,
            "error-rate-limited",
            form.username,
        ),
        Err(Error::Rejected(Rejection::Invalid(_))) => retry(
            &state,
            &visit,
            StatusCode::BAD_REQUEST,
            "error-invalid-username",
            form.username,
        ),
        Err(error) => internal(&state, visit.language, &error),
    }
}

/// The message id for a request's state, as the waiting page shows it.
pub(crate) fn status_message_id(status: TransactionStatus, hint: &str) -> &'static str {
    match (status, hint) {
        (TransactionStatus::Pending, _) => "wait-status-pending",
        (TransactionStatus::Approved | TransactionStatus::Consumed, _) => "wait-status-approved",
        (TransactionStatus::Denied, _) => "wait-status-denied",
        (TransactionStatus::Expired, _) => "wait-status-expired",
        (TransactionStatus::Cancelled, "superseded") => "wait-status-superseded",
        (TransactionStatus::Cancelled, _) => "wait-status-cancelled",
        (TransactionStatus::Failed, "wrong_vc") => "wait-status-wrong-code",
        (TransactionStatus::Failed, "pin_locked") => "wait-status-pin-locked",
        (TransactionStatus::Failed, "device_revoked") => "wait-status-device-revoked",
        (TransactionStatus::Failed, _) => "wait-status-failed",
    }
}

/// Every (status:hint) key the page script may meet, with its message.
pub(crate) const STATUS_KEYS: &[(&str, TransactionStatus, &str)] = &[
    ("approved", TransactionStatus::Approved, ""),
    ("consumed", TransactionStatus::Consumed, ""),
    ("denied", TransactionStatus::Denied, ""),
    ("expired", TransactionStatus::Expired, ""),
    ("cancelled", TransactionStatus::Cancelled, ""),
    (
        "cancelled:superseded",
        TransactionStatus::Cancelled,
        "superseded",
    ),
    ("failed", TransactionStatus::Failed, ""),
    ("failed:wrong_vc", TransactionStatus::Failed, "wrong_vc"),
    ("failed:pin_locked", TransactionStatus::Failed, "pin_locked"),
    (
        "failed:device_revoked",
        TransactionStatus::Failed,
        "device_revoked",
    ),
];

#[derive(Template)]
#[template(path = "login_wait.html")]
struct LoginWaitPage {
    page: Page,
    txn: String,
    code: String,
    status: &'static str,
    status_message: String,
    pending: bool,
    approved: bool,
    seconds_left: i64,
    messages: Vec<(String, String)>,
}

async fn login_wait(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(txn): Path<TxnId>,
) -> Response {
    let visit = visit_or_fail!(state, headers);
    let login = match state
        .authority
        .login
        .login_state(&visit.session, &txn)
        .await
    {
        Ok(login) => login,
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
    let page = state.page(&visit, "wait-heading", &format!("/login/mobile/{txn}"));
    let messages = STATUS_KEYS
        .iter()
        .map(|(key, s, h)| ((*key).to_owned(), page.t(status_message_id(*s, h))))
        .collect();
    let template = LoginWaitPage {
        status: login.status.as_str(),
        status_message: page.t(status_message_id(login.status, &login.hint)),
        pending: login.status == TransactionStatus::Pending,
        approved: login.status == TransactionStatus::Approved,
        seconds_left: login.seconds_left,
        messages,
        txn: txn.to_string(),
        code: login.verification_code,
        page,
    };
    render(&state, &visit, &template)
}

/// `?wait=N`: the status endpoint waits up to N seconds (at most 25) while the request is
/// pending, and answers as soon as it is not (a long poll; a stopping server answers at once).
#[derive(serde::Deserialize)]
pub(super) struct StatusQuery {
    wait: Option<u64>,
}

impl StatusQuery {
    /// How long to wait: as asked, at most [`MAX_STATUS_WAIT`] seconds.
    pub(super) fn wait(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.wait.unwrap_or(0).min(MAX_STATUS_WAIT))
    }
}

/// The longest wait of a status long poll.
const MAX_STATUS_WAIT: u64 = 25;

async fn login_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(txn): Path<TxnId>,
    Query(query): Query<StatusQuery>,
) -> Response {
    let visit = visit_or_fail!(state, headers);
    // Not needed while waiting (as the app's inbox, app_api.rs).
    drop(headers);
    let wait = query.wait();
    let login = &state.authority.login;
    let login_state = tokio::select! {
        login_state = login.login_state_waiting(&visit.session, &txn, wait) => login_state,
        () = state.stopping.wait() => login.login_state(&visit.session, &txn).await,
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

async fn login_complete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(txn): Path<TxnId>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let visit = visit_or_fail!(state, headers);
    if !csrf_ok(&visit, &form.csrf) {
        return form_expired(&state, &visit, "/login");
    }
    match state
        .authority
        .login
        .login_complete(&visit.session, &txn)
        .await
    {
        Ok((token, _)) => logged_in(&state, &visit, &headers, &token).await,
        Err(Error::Rejected(_)) => Redirect::to(&format!("/login/mobile/{txn}")).into_response(),
        Err(error) => internal(&state, visit.language, &error),
    }
}

/// On to a service's authorization request after a login: a page that goes there by itself
/// (a refresh, with a link), not a redirect. Browsers hold the redirects that follow a form's
/// submission to the form page's `form-action` (ours only), and the authorization request ends
/// with a redirect to the service.
#[derive(Template)]
#[template(path = "continue.html")]
struct ContinuePage {
    page: Page,
    link: String,
}

/// The answer to a completed login: the new session's cookie, and back to where the login was
/// asked for (only our own OAuth or OpenID authorization request, which waited server-side
/// under the `next` cookie's id, through a [`ContinuePage`]), else the account.
pub(crate) async fn logged_in(
    state: &AppState,
    visit: &Visit,
    headers: &HeaderMap,
    token: &SessionToken,
) -> Response {
    let next = match cookie(headers, "next") {
        Some(id) => {
            let id = PendingAuthorization(id.to_owned());
            match state.authority.signing.oauth_recall(&id).await {
                // The OpenID provider keeps its whole path; the CSC's OAuth, its query.
                Ok(Some(path)) if path.starts_with("/oidc/authorize?") => path,
                Ok(Some(query)) => format!("/oauth2/authorize?{query}"),
                Ok(None) => "/account".to_owned(),
                // The login happened: its cookie goes with the error page.
                Err(error) => {
                    let response = internal(state, visit.language, &error);
                    return with_cookie(state, response, Some(token));
                }
            }
        }
        None => "/account".to_owned(),
    };
    let onward = if next == "/account" {
        Redirect::to(&next).into_response()
    } else {
        let page = state.page(visit, "login-continue-heading", "/login");
        render(state, visit, &ContinuePage { page, link: next })
    };
    let mut response = with_cookie(state, onward, Some(token));
    if let Some(forget) = state.next_cookie(None) {
        response.headers_mut().append(header::SET_COOKIE, forget);
    }
    response
}

async fn login_cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(txn): Path<TxnId>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let visit = visit_or_fail!(state, headers);
    if !csrf_ok(&visit, &form.csrf) {
        return form_expired(&state, &visit, "/login");
    }
    match state
        .authority
        .login
        .login_cancel(&visit.session, &txn)
        .await
    {
        Ok(()) | Err(Error::Rejected(_)) => Redirect::to("/login").into_response(),
        Err(error) => internal(&state, visit.language, &error),
    }
}

#[derive(Template)]
#[template(path = "login_password.html")]
struct LoginPasswordPage {
    page: Page,
    error: Option<String>,
}

async fn login_password(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let visit = visit_or_fail!(state, headers);
    let page = state.page(&visit, "password-heading", "/login/password");
    render(&state, &visit, &LoginPasswordPage { page, error: None })
}

#[derive(Deserialize)]
struct PasswordForm {
    csrf: String,
    username: String,
    password: String,
}

async fn login_password_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(form): Form<PasswordForm>,
) -> Response {
    let visit = visit_or_fail!(state, headers);
    let refuse = |state: &AppState, visit: &Visit, status: StatusCode, id: &str| {
        let page = state.page(visit, "password-heading", "/login/password");
        let error = Some(page.t(id));
        let mut response = render(state, visit, &LoginPasswordPage { page, error });
        *response.status_mut() = status;
        response
    };
    if !csrf_ok(&visit, &form.csrf) {
        return refuse(&state, &visit, StatusCode::FORBIDDEN, "error-form-expired");
    }
    match state
        .authority
        .login
        .password_login(&visit.session, &form.username, &form.password, &ip)
        .await
    {
        Ok((token, _)) => with_cookie(
            &state,
            Redirect::to("/account").into_response(),
            Some(&token),
        ),
        Err(Error::Rejected(Rejection::RateLimited)) => refuse(
            &state,
            &visit,
            StatusCode::TOO_MANY_REQUESTS,
            "error-rate-limited",
        ),
        Err(Error::Rejected(_)) => {
            refuse(&state, &visit, StatusCode::UNAUTHORIZED, "error-password")
        }
        Err(error) => internal(&state, visit.language, &error),
    }
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let visit = visit_or_fail!(state, headers);
    if !csrf_ok(&visit, &form.csrf) {
        return form_expired(&state, &visit, "/");
    }
    if let Err(error) = state.authority.login.logout(&visit.session).await {
        return internal(&state, visit.language, &error);
    }
    Redirect::to("/").into_response()
}
