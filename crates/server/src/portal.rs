//! The portal's pages (the seed's steps 1-7): home with **Пријава**, the choice of login
//! method, the username form, the waiting page with the verification code, the account page
//! with **услуге**, password login and logout. Every form carries the session's CSRF token;
//! every page is rendered in the language of the `lang` cookie (Cyrillic by default).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;

use authority::login::{Session, SessionToken};
use authority::{Error, Rejection};
use domain::{AssuranceLevel, TransactionStatus};

use crate::app_api::ClientIp;
use crate::http::AppState;
use crate::i18n::{Catalog, Language};

/// The portal routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
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
        .route("/register", get(register).post(register_submit))
        .route("/verify-email", get(verify_email))
        .route("/account", get(account))
        .route("/services/cloud-certificate", get(cloud_certificate))
        .route("/services/cloud-certificate/issue", post(cloud_issue))
        .route(
            "/services/cloud-certificate/agreement/accept",
            post(cloud_accept),
        )
        .route("/services/cloud-certificate/renew", post(cloud_renew))
        .route(
            "/services/cloud-certificate/agreements/{file}",
            get(agreement_download),
        )
        .route("/services/cloud-certificate/revoke", post(cloud_revoke))
        .route(
            "/services/cloud-certificate/revoke/confirm",
            post(cloud_revoke_confirm),
        )
        .route(
            "/services/cloud-certificate/revoke-all",
            post(cloud_revoke_all),
        )
        .route(
            "/services/cloud-certificate/revoke-all/confirm",
            post(cloud_revoke_all_confirm),
        )
        .route("/logout", post(logout))
        .route("/lang/{tag}", get(set_language))
        .route("/static/{file}", get(static_file))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
}

/// A language link of the switch.
pub struct LanguageLink {
    pub(crate) tag: &'static str,
    pub(crate) name: &'static str,
    pub(crate) current: bool,
}

/// What every page needs: language, messages, session and CSRF token.
pub struct Page {
    pub(crate) lang: &'static str,
    pub(crate) title: String,
    pub(crate) csrf: String,
    pub(crate) logged_in: bool,
    pub(crate) path: String,
    pub(crate) languages: Vec<LanguageLink>,
    language: Language,
    catalog: Arc<Catalog>,
}

impl Page {
    /// A message.
    pub fn t(&self, id: &str) -> String {
        self.catalog.message(self.language, id, &[])
    }

    pub(crate) fn t_with(&self, id: &str, args: &[(&str, String)]) -> String {
        self.catalog.message(self.language, id, args)
    }
}

/// The request's session (a new anonymous one if the cookie names none) and language.
pub(crate) struct Visit {
    pub(crate) session: Session,
    pub(crate) new_cookie: Option<SessionToken>,
    pub(crate) language: Language,
}

pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl AppState {
    pub(crate) async fn visit(&self, headers: &HeaderMap) -> Result<Visit, Error> {
        let language = cookie(headers, "lang")
            .and_then(Language::from_tag)
            .unwrap_or(Language::SerbianCyrillic);
        if let Some(value) = cookie(headers, "sid") {
            if let Some(session) = self
                .authority
                .session(&SessionToken(value.to_owned()))
                .await?
            {
                return Ok(Visit {
                    session,
                    new_cookie: None,
                    language,
                });
            }
        }
        let (token, session) = self.authority.new_session();
        Ok(Visit {
            session,
            new_cookie: Some(token),
            language,
        })
    }

    pub(crate) fn page(&self, visit: &Visit, title_id: &str, path: &str) -> Page {
        let catalog = self.catalog.clone();
        Page {
            lang: visit.language.tag(),
            title: catalog.message(visit.language, title_id, &[]),
            csrf: visit.session.record.csrf_token.clone(),
            logged_in: visit.session.user.is_some(),
            path: path.to_owned(),
            languages: Language::ALL
                .into_iter()
                .map(|l| LanguageLink {
                    tag: l.tag(),
                    name: l.own_name(),
                    current: l == visit.language,
                })
                .collect(),
            language: visit.language,
            catalog,
        }
    }

    fn session_cookie(&self, token: &SessionToken) -> HeaderValue {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "sid={}; Path=/; HttpOnly; SameSite=Lax{secure}",
            token.0
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("sid=; Path=/"))
    }
}

pub(crate) fn with_cookie(
    state: &AppState,
    mut response: Response,
    token: Option<&SessionToken>,
) -> Response {
    if let Some(token) = token {
        response
            .headers_mut()
            .append(header::SET_COOKIE, state.session_cookie(token));
    }
    response
}

pub(crate) fn render(state: &AppState, visit: &Visit, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => with_cookie(state, Html(html).into_response(), visit.new_cookie.as_ref()),
        Err(error) => internal(state, visit.language, &error),
    }
}

pub(crate) fn internal(
    state: &AppState,
    language: Language,
    error: &dyn std::fmt::Display,
) -> Response {
    let id = hex::encode(rand::random::<[u8; 8]>());
    tracing::error!(request_id = %id, %error, "portal request failed");
    let text = state
        .catalog
        .message(language, "error-internal", &[("id", id)]);
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html(format!(
            "<!DOCTYPE html><html><body><p>{}</p></body></html>",
            html_escape(&text)
        )),
    )
        .into_response()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A page with a heading, a sentence and a link.
#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct MessagePage {
    pub(crate) page: Page,
    pub(crate) heading: String,
    pub(crate) text: String,
    pub(crate) is_error: bool,
    pub(crate) link: String,
    pub(crate) link_text: String,
}

pub(crate) fn message_page(
    state: &AppState,
    visit: &Visit,
    status: StatusCode,
    text_id: &str,
    link: &str,
) -> Response {
    let page = state.page(visit, "error-heading", "/");
    let template = MessagePage {
        heading: page.t("error-heading"),
        text: page.t(text_id),
        is_error: true,
        link: link.to_owned(),
        link_text: page.t("error-back"),
        page,
    };
    let mut response = render(state, visit, &template);
    *response.status_mut() = status;
    response
}

macro_rules! visit_or_fail {
    ($state:expr, $headers:expr) => {
        match $state.visit(&$headers).await {
            Ok(visit) => visit,
            Err(error) => return internal(&$state, Language::SerbianCyrillic, &error),
        }
    };
}

/// Checks the CSRF token of a form (constant time).
pub(crate) fn csrf_ok(visit: &Visit, given: &str) -> bool {
    let expected = visit.session.record.csrf_token.as_bytes();
    let given = given.as_bytes();
    expected.len() == given.len()
        && expected
            .iter()
            .zip(given)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    page: Page,
}

async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let visit = visit_or_fail!(state, headers);
    let page = state.page(&visit, "home-heading", "/");
    render(&state, &visit, &HomePage { page })
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
    match state
        .authority
        .login_start(&visit.session, &form.username, &ip, &browser)
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

/// `Chrome / Linux` from a User-Agent, for the request shown in the app.
pub(crate) fn describe_browser(user_agent: &str) -> String {
    let browser = ["Edg/", "OPR/", "Firefox/", "Chrome/", "Safari/"]
        .iter()
        .find(|b| user_agent.contains(**b))
        .map(|b| match *b {
            "Edg/" => "Edge",
            "OPR/" => "Opera",
            "Firefox/" => "Firefox",
            "Chrome/" => "Chrome",
            _ => "Safari",
        })
        .unwrap_or("Browser");
    let system = ["Android", "iPhone", "Windows", "Mac OS", "Linux"]
        .iter()
        .find(|s| user_agent.contains(**s))
        .map(|s| if *s == "Mac OS" { "macOS" } else { s })
        .unwrap_or("unknown system");
    format!("{browser} / {system}")
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
    Path(txn): Path<String>,
) -> Response {
    let visit = visit_or_fail!(state, headers);
    let login = match state.authority.login_state(&visit.session, &txn).await {
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
    let code = match state.authority.store().transaction(&txn).await {
        Ok(Some(record)) => record.verification_code,
        _ => String::new(),
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
        txn,
        code,
        page,
    };
    render(&state, &visit, &template)
}

async fn login_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(txn): Path<String>,
) -> Response {
    let visit = visit_or_fail!(state, headers);
    match state.authority.login_state(&visit.session, &txn).await {
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

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    pub(crate) csrf: String,
}

async fn login_complete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(txn): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let visit = visit_or_fail!(state, headers);
    if !csrf_ok(&visit, &form.csrf) {
        return message_page(
            &state,
            &visit,
            StatusCode::FORBIDDEN,
            "error-form-expired",
            "/login",
        );
    }
    match state.authority.login_complete(&visit.session, &txn).await {
        Ok((token, _)) => logged_in(&state, &headers, &token),
        Err(Error::Rejected(_)) => Redirect::to(&format!("/login/mobile/{txn}")).into_response(),
        Err(error) => internal(&state, visit.language, &error),
    }
}

/// The answer to a completed login: the new session's cookie, and back to where the login was
/// asked for (only our own OAuth page), else the account.
pub(crate) fn logged_in(state: &AppState, headers: &HeaderMap, token: &SessionToken) -> Response {
    let next = cookie(headers, "next")
        .filter(|n| n.starts_with("/oauth2/authorize?"))
        .unwrap_or("/account");
    let mut response = with_cookie(state, Redirect::to(next).into_response(), Some(token));
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("next=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"),
    );
    response
}

async fn login_cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(txn): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let visit = visit_or_fail!(state, headers);
    if !csrf_ok(&visit, &form.csrf) {
        return message_page(
            &state,
            &visit,
            StatusCode::FORBIDDEN,
            "error-form-expired",
            "/login",
        );
    }
    match state.authority.login_cancel(&visit.session, &txn).await {
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

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage {
    page: Page,
    error: Option<String>,
    email: String,
    given_name: String,
    surname: String,
    jmbg: String,
}

async fn register(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let visit = visit_or_fail!(state, headers);
    let page = state.page(&visit, "register-heading", "/register");
    let template = RegisterPage {
        page,
        error: None,
        email: String::new(),
        given_name: String::new(),
        surname: String::new(),
        jmbg: String::new(),
    };
    render(&state, &visit, &template)
}

#[derive(Deserialize)]
struct RegisterForm {
    csrf: String,
    email: String,
    password: String,
    given_name: String,
    surname: String,
    jmbg: String,
}

async fn register_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(form): Form<RegisterForm>,
) -> Response {
    let visit = visit_or_fail!(state, headers);
    let again = |state: &AppState,
                 visit: &Visit,
                 status: StatusCode,
                 message_id: &str,
                 form: &RegisterForm| {
        let page = state.page(visit, "register-heading", "/register");
        let template = RegisterPage {
            error: Some(page.t(message_id)),
            email: form.email.clone(),
            given_name: form.given_name.clone(),
            surname: form.surname.clone(),
            jmbg: form.jmbg.clone(),
            page,
        };
        let mut response = render(state, visit, &template);
        *response.status_mut() = status;
        response
    };
    if !csrf_ok(&visit, &form.csrf) {
        return again(
            &state,
            &visit,
            StatusCode::FORBIDDEN,
            "error-form-expired",
            &form,
        );
    }
    let registration = authority::accounts::Registration {
        email: form.email.clone(),
        password: zeroize::Zeroizing::new(form.password.clone()),
        given_name: form.given_name.clone(),
        surname: form.surname.clone(),
        jmbg: form.jmbg.clone(),
    };
    match state.authority.register(registration, &ip).await {
        Ok(()) => {
            let page = state.page(&visit, "register-sent-heading", "/register");
            let template = MessagePage {
                heading: page.t("register-sent-heading"),
                text: page.t("register-sent"),
                is_error: false,
                link: "/".into(),
                link_text: page.t("error-back"),
                page,
            };
            render(&state, &visit, &template)
        }
        Err(Error::Rejected(Rejection::Invalid(field))) => again(
            &state,
            &visit,
            StatusCode::BAD_REQUEST,
            &format!("error-field-{field}"),
            &form,
        ),
        Err(Error::Rejected(Rejection::RateLimited)) => again(
            &state,
            &visit,
            StatusCode::TOO_MANY_REQUESTS,
            "error-rate-limited",
            &form,
        ),
        Err(error) => internal(&state, visit.language, &error),
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn verify_email(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> Response {
    let visit = visit_or_fail!(state, headers);
    let result = state
        .authority
        .verify_email(query.token.as_deref().unwrap_or(""))
        .await;
    let (status, text_id, is_error) = match result {
        Ok(()) => (StatusCode::OK, "verify-done", false),
        Err(Error::Rejected(_)) => (StatusCode::BAD_REQUEST, "verify-failed", true),
        Err(error) => return internal(&state, visit.language, &error),
    };
    let page = state.page(&visit, "verify-heading", "/verify-email");
    let template = MessagePage {
        heading: page.t("verify-heading"),
        text: page.t(text_id),
        is_error,
        link: "/login/password".into(),
        link_text: page.t("login-method-password"),
        page,
    };
    let mut response = render(&state, &visit, &template);
    *response.status_mut() = status;
    response
}

/// A device line on the account page.
struct DeviceLine {
    name: String,
    state: String,
    activated: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    page: Page,
    name: String,
    email: String,
    assurance: String,
    login_method: String,
    devices: Vec<DeviceLine>,
    cloud_status: String,
    /// Mails to this account that could not be delivered, one line each.
    undelivered_mails: Vec<String>,
}

async fn account(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let visit = visit_or_fail!(state, headers);
    let Some(user) = visit.session.user.clone() else {
        return message_page(
            &state,
            &visit,
            StatusCode::UNAUTHORIZED,
            "error-login-required",
            "/login",
        );
    };
    let page = state.page(&visit, "account-heading", "/account");
    let devices = match state.authority.store().devices_of(&user.id).await {
        Ok(devices) => devices,
        Err(error) => return internal(&state, visit.language, &error),
    };
    let devices = devices
        .into_iter()
        .map(|d| {
            let (y, m, day) = d.created_at.date();
            DeviceLine {
                name: d.name,
                state: page.t(&format!("device-state-{}", d.state.as_str())),
                activated: page.t_with(
                    "account-device-activated",
                    &[("date", format!("{day:02}.{m:02}.{y}."))],
                ),
            }
        })
        .collect();
    let assurance = page.t(if user.assurance == AssuranceLevel::High {
        "assurance-high"
    } else {
        "assurance-basic"
    });
    let method = visit.session.record.auth_method.as_deref();
    let login_method = page.t(if method == Some("consentid") {
        "login-method-consentid"
    } else {
        "login-method-password-short"
    });
    let cloud_status = match state.authority.cloud_state(&user).await {
        Ok(cloud) => page.t(if cloud.current.is_some() {
            "cloud-status-active"
        } else {
            "cloud-status-none"
        }),
        Err(error) => return internal(&state, visit.language, &error),
    };
    // Only this account's own mails (the store selects by its id).
    let undelivered_mails = match state.authority.undelivered_mails(&user).await {
        Ok(mails) => mails
            .into_iter()
            .map(|mail| {
                let (y, m, day) = mail.created_at.date();
                page.t_with(
                    if mail.status == store::OutboxStatus::Failed {
                        "account-mail-failed"
                    } else {
                        "account-mail-retrying"
                    },
                    &[
                        ("address", mail.recipient),
                        ("subject", mail.subject),
                        ("date", format!("{day:02}.{m:02}.{y}.")),
                    ],
                )
            })
            .collect(),
        Err(error) => return internal(&state, visit.language, &error),
    };
    let template = AccountPage {
        undelivered_mails,
        cloud_status,
        name: format!("{} {}", user.given_name, user.surname),
        email: user.email,
        assurance,
        login_method,
        devices,
        page,
    };
    render(&state, &visit, &template)
}

/// The certificate lines of the service page.
struct CertificateLines {
    serial: String,
    from: String,
    to: String,
}

#[derive(Template)]
#[template(path = "cloud.html")]
struct CloudPage {
    page: Page,
    notice: Option<String>,
    error: Option<String>,
    status_line: String,
    current: Option<CertificateLines>,
    may_issue: bool,
    may_renew: bool,
    may_revoke: bool,
    renewal_note: Option<String>,
    agreements: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

async fn cloud_certificate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<DoneQuery>,
) -> Response {
    let visit = visit_or_fail!(state, headers);
    let notice = match query.done.as_deref() {
        Some("issued") => Some("cloud-issued"),
        Some("renewed") => Some("cloud-renewed"),
        Some("revoked") => Some("cloud-revoked"),
        _ => None,
    };
    cloud_page(&state, &visit, notice, None, StatusCode::OK).await
}

async fn cloud_page(
    state: &AppState,
    visit: &Visit,
    notice: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let Some(user) = visit.session.user.clone() else {
        return message_page(
            state,
            visit,
            StatusCode::UNAUTHORIZED,
            "error-login-required",
            "/login",
        );
    };
    let cloud = match state.authority.cloud_state(&user).await {
        Ok(cloud) => cloud,
        Err(error) => return internal(state, visit.language, &error),
    };
    let page = state.page(visit, "cloud-heading", "/services/cloud-certificate");
    let renewal_note = match cloud.renewal {
        Err(domain::cloud::CloudRefusal::RenewalWindowClosed { opens_on }) => Some(page.t_with(
            "cloud-renew-opens",
            &[
                ("date", authority::cloud::serbian_date(opens_on)),
                (
                    "days",
                    state.authority.settings().renewal_window_days.to_string(),
                ),
            ],
        )),
        _ => None,
    };
    let agreements = match state.authority.agreements(&user).await {
        Ok(list) => list
            .into_iter()
            .map(|(number, at)| (number, authority::cloud::serbian_date(at)))
            .collect(),
        Err(error) => return internal(state, visit.language, &error),
    };
    let template = CloudPage {
        agreements,
        notice: notice.map(|id| page.t(id)),
        error: error.map(|id| page.t(id)),
        status_line: page.t(if cloud.current.is_some() {
            "cloud-status-active"
        } else {
            "cloud-status-none"
        }),
        current: cloud.current.as_ref().map(|c| CertificateLines {
            serial: c.serial.to_hex(),
            from: authority::cloud::serbian_date(c.not_before),
            to: authority::cloud::serbian_date(c.not_after),
        }),
        may_issue: cloud.may_issue,
        may_renew: cloud.renewal.is_ok(),
        may_revoke: cloud.may_revoke,
        renewal_note,
        page,
    };
    let mut response = render(state, visit, &template);
    *response.status_mut() = status;
    response
}

async fn agreement_download(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Response {
    let visit = visit_or_fail!(state, headers);
    let Some(user) = visit.session.user.clone() else {
        return message_page(
            &state,
            &visit,
            StatusCode::UNAUTHORIZED,
            "error-login-required",
            "/login",
        );
    };
    // The agreement carries the JMBG: a password (basic) session, which an e-mail and password
    // compromise gives, never reads it; only a ConsentID (high) session does.
    if visit.session.record.auth_method.as_deref() != Some("consentid") {
        return message_with_link(
            &state,
            &visit,
            StatusCode::FORBIDDEN,
            "cloud-heading",
            "agreement-needs-consentid",
            "/login/mobile",
            "cloud-login-again",
        );
    }
    let number = file.strip_suffix(".pdf").unwrap_or(&file);
    match state.authority.agreement_pdf_of(&user, number).await {
        Ok(Some(pdf)) => {
            let disposition = format!(
                "attachment; filename=\"ugovor-{}.pdf\"",
                number.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "")
            );
            let mut response = ([(header::CONTENT_TYPE, "application/pdf")], pdf).into_response();
            if let Ok(value) = HeaderValue::from_str(&disposition) {
                response
                    .headers_mut()
                    .insert(header::CONTENT_DISPOSITION, value);
            }
            response
        }
        // Another user's agreement is as absent as one that does not exist.
        Ok(None) => message_page(
            &state,
            &visit,
            StatusCode::NOT_FOUND,
            "error-not-found",
            "/services/cloud-certificate",
        ),
        Err(error) => internal(&state, visit.language, &error),
    }
}

/// A page that asks to confirm: the agreement (**Прихвати** / **Одустани**) or a revocation.
#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    page: Page,
    heading: String,
    text: String,
    agreement: bool,
    paragraphs: Vec<String>,
    action: String,
    confirm: String,
}

/// What a refused or failed cloud action shows.
async fn cloud_refused(
    state: &AppState,
    visit: &Visit,
    error: authority::cloud::CloudError,
) -> Response {
    use authority::cloud::CloudError;
    use domain::cloud::CloudRefusal;
    let id = match error {
        CloudError::Refused(CloudRefusal::LoginNotFresh) => {
            return message_with_link(
                state,
                visit,
                StatusCode::FORBIDDEN,
                "cloud-heading",
                "cloud-fresh-login",
                "/login/mobile",
                "cloud-login-again",
            );
        }
        CloudError::Refused(CloudRefusal::AlreadyActive) => "cloud-refused-active",
        CloudError::Refused(CloudRefusal::NoneActive) => "cloud-refused-none",
        CloudError::Refused(CloudRefusal::Expired) => "cloud-refused-expired",
        CloudError::Refused(CloudRefusal::RenewalWindowClosed { .. }) => "cloud-refused-none",
        CloudError::Failed(error) => return internal(state, visit.language, &error),
    };
    cloud_page(state, visit, None, Some(id), StatusCode::CONFLICT).await
}

pub(crate) fn message_with_link(
    state: &AppState,
    visit: &Visit,
    status: StatusCode,
    heading: &str,
    text: &str,
    link: &str,
    link_text: &str,
) -> Response {
    let page = state.page(visit, heading, "/services/cloud-certificate");
    let template = MessagePage {
        heading: page.t(heading),
        text: page.t(text),
        is_error: true,
        link: link.into(),
        link_text: page.t(link_text),
        page,
    };
    let mut response = render(state, visit, &template);
    *response.status_mut() = status;
    response
}

/// The checks every cloud action starts with: the CSRF token and a fresh ConsentID login.
async fn cloud_visit(state: &AppState, headers: &HeaderMap, csrf: &str) -> Result<Visit, Response> {
    let visit = match state.visit(headers).await {
        Ok(visit) => visit,
        Err(error) => return Err(internal(state, Language::SerbianCyrillic, &error)),
    };
    if !csrf_ok(&visit, csrf) {
        return Err(message_page(
            state,
            &visit,
            StatusCode::FORBIDDEN,
            "error-form-expired",
            "/services/cloud-certificate",
        ));
    }
    if visit.session.user.is_none() {
        return Err(message_page(
            state,
            &visit,
            StatusCode::UNAUTHORIZED,
            "error-login-required",
            "/login",
        ));
    }
    Ok(visit)
}

async fn cloud_issue(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let visit = match cloud_visit(&state, &headers, &form.csrf).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let Some(user) = visit.session.user.clone() else {
        return Redirect::to("/login").into_response();
    };
    // The same checks as the issuance itself, so that nobody reads an agreement in vain.
    let by_consentid = visit.session.record.auth_method.as_deref() == Some("consentid");
    if let Err(refusal) = domain::cloud::login_is_fresh(
        by_consentid,
        visit.session.record.authenticated_at,
        state.authority.now(),
    ) {
        return cloud_refused(&state, &visit, refusal.into()).await;
    }
    match state.authority.cloud_state(&user).await {
        Ok(cloud) if !cloud.may_issue => {
            return cloud_refused(
                &state,
                &visit,
                domain::cloud::CloudRefusal::AlreadyActive.into(),
            )
            .await
        }
        Ok(_) => {}
        Err(error) => return internal(&state, visit.language, &error),
    }
    let text = state.authority.agreement_draft(&user);
    let mut paragraphs: Vec<String> = text
        .split('\n')
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    let heading = if paragraphs.is_empty() {
        String::new()
    } else {
        paragraphs.remove(0)
    };
    let page = state.page(&visit, "cloud-heading", "/services/cloud-certificate");
    let template = ConfirmPage {
        heading,
        text: String::new(),
        agreement: true,
        paragraphs,
        action: "/services/cloud-certificate/agreement/accept".into(),
        confirm: page.t("agreement-accept"),
        page,
    };
    render(&state, &visit, &template)
}

async fn cloud_accept(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let visit = match cloud_visit(&state, &headers, &form.csrf).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    match state.authority.issue_cloud(&visit.session).await {
        Ok(_) => Redirect::to("/services/cloud-certificate?done=issued").into_response(),
        Err(error) => cloud_refused(&state, &visit, error).await,
    }
}

async fn cloud_renew(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let visit = match cloud_visit(&state, &headers, &form.csrf).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    match state.authority.renew_cloud(&visit.session).await {
        Ok(_) => Redirect::to("/services/cloud-certificate?done=renewed").into_response(),
        Err(error) => cloud_refused(&state, &visit, error).await,
    }
}

fn confirm_page(
    state: &AppState,
    visit: &Visit,
    heading: &str,
    text: &str,
    action: &str,
) -> Response {
    let page = state.page(visit, heading, "/services/cloud-certificate");
    let template = ConfirmPage {
        heading: page.t(heading),
        text: page.t(text),
        agreement: false,
        paragraphs: Vec::new(),
        action: action.into(),
        confirm: page.t("confirm-yes"),
        page,
    };
    render(state, visit, &template)
}

async fn cloud_revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    match cloud_visit(&state, &headers, &form.csrf).await {
        Ok(visit) => confirm_page(
            &state,
            &visit,
            "revoke-confirm-heading",
            "revoke-confirm-text",
            "/services/cloud-certificate/revoke/confirm",
        ),
        Err(response) => response,
    }
}

async fn cloud_revoke_confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let visit = match cloud_visit(&state, &headers, &form.csrf).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    match state.authority.revoke_cloud(&visit.session).await {
        Ok(()) => Redirect::to("/services/cloud-certificate?done=revoked").into_response(),
        Err(error) => cloud_refused(&state, &visit, error).await,
    }
}

async fn cloud_revoke_all(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    match cloud_visit(&state, &headers, &form.csrf).await {
        Ok(visit) => confirm_page(
            &state,
            &visit,
            "revoke-all-confirm-heading",
            "revoke-all-confirm-text",
            "/services/cloud-certificate/revoke-all/confirm",
        ),
        Err(response) => response,
    }
}

async fn cloud_revoke_all_confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let visit = match cloud_visit(&state, &headers, &form.csrf).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    match state.authority.revoke_everything(&visit.session).await {
        Ok(_) => {
            // The session ended with the device: the page is shown as to a visitor.
            let page = state.page(&visit, "revoke-all-confirm-heading", "/");
            let mut template = MessagePage {
                heading: page.t("revoke-all-confirm-heading"),
                text: page.t("cloud-revoked-all"),
                is_error: false,
                link: "/".into(),
                link_text: page.t("error-back"),
                page,
            };
            template.page.logged_in = false;
            render(&state, &visit, &template)
        }
        Err(error) => cloud_refused(&state, &visit, error).await,
    }
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let visit = visit_or_fail!(state, headers);
    if !csrf_ok(&visit, &form.csrf) {
        return message_page(
            &state,
            &visit,
            StatusCode::FORBIDDEN,
            "error-form-expired",
            "/",
        );
    }
    if let Err(error) = state.authority.logout(&visit.session).await {
        return internal(&state, visit.language, &error);
    }
    Redirect::to("/").into_response()
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn set_language(Path(tag): Path<String>, Query(query): Query<NextQuery>) -> Response {
    let Some(language) = Language::from_tag(&tag) else {
        return (StatusCode::NOT_FOUND, "unknown language\n").into_response();
    };
    // Only a page of this portal: no open redirect.
    let mut response =
        Redirect::to(crate::redirect::local_page(query.next.as_deref())).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!(
        "lang={}; Path=/; Max-Age=31536000; SameSite=Lax",
        language.tag()
    )) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

async fn static_file(Path(file): Path<String>) -> Response {
    let (content_type, body) = match file.as_str() {
        "portal.css" => (
            "text/css; charset=utf-8",
            include_str!("../static/portal.css"),
        ),
        "login-wait.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../static/login-wait.js"),
        ),
        "login-qr.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../static/login-qr.js"),
        ),
        _ => return (StatusCode::NOT_FOUND, "not found\n").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
