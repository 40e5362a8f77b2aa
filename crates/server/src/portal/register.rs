//! Self-registration at the basic level and the e-mail verification link.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use authority::{Error, Rejection};

use crate::client_address::ClientIp;
use crate::state::AppState;

use super::page::{csrf_ok, internal, render, visit_or_fail, MessagePage, Page, Visit};

/// Self-registration and the e-mail verification link.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/register", get(register).post(register_submit))
        .route("/verify-email", get(verify_email))
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
    let registration = authority::ra::accounts::Registration {
        email: form.email.clone(),
        password: zeroize::Zeroizing::new(form.password.clone()),
        given_name: form.given_name.clone(),
        surname: form.surname.clone(),
        jmbg: form.jmbg.clone(),
    };
    match state.authority.ra.register(registration, &ip).await {
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
        .ra
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
