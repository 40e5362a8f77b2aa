//! The account page with **услуге**, the user's devices, the services allowed to log in with
//! the account (each with **Повуци сагласност**), and undelivered mail.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use domain::AssuranceLevel;

use crate::state::AppState;

use super::page::{csrf_ok, form_expired, internal, message_page, render, visit_or_fail, Page};

/// The account page, and withdrawing a service's consent.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/account", get(account))
        .route("/account/consents/withdraw", post(withdraw_consent))
}

/// A service allowed to log in with the account (OpenID provider, issue 23).
struct ConsentLine {
    client_id: String,
    name: String,
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
    consents: Vec<ConsentLine>,
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
    let devices = match state.authority.login.devices(&user).await {
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
    let login_method = page.t(if visit.session.by_consentid() {
        "login-method-consentid"
    } else {
        "login-method-password-short"
    });
    let cloud_status = match state.authority.ra.cloud_state(&user).await {
        Ok(cloud) => page.t(if cloud.current.is_some() {
            "cloud-status-active"
        } else {
            "cloud-status-none"
        }),
        Err(error) => return internal(&state, visit.language, &error),
    };
    // Only this account's own mails (the store selects by its id).
    let undelivered_mails = match state.authority.ra.undelivered_mails(&user).await {
        Ok(mails) => mails
            .into_iter()
            .map(|mail| {
                let (y, m, day) = mail.created_at.date();
                page.t_with(
                    if mail.given_up {
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
    let consents = match state.authority.oidc.consents(&user.id).await {
        Ok(consents) => consents
            .into_iter()
            .map(|(client, _scope)| ConsentLine {
                client_id: client.client_id,
                name: client.name,
            })
            .collect(),
        Err(error) => return internal(&state, visit.language, &error),
    };
    let template = AccountPage {
        undelivered_mails,
        consents,
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

#[derive(Deserialize)]
struct WithdrawForm {
    csrf: String,
    client_id: String,
}

/// **Повуци сагласност**: the service no longer logs in with this account without asking, and
/// its tokens for it stop working.
async fn withdraw_consent(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<WithdrawForm>,
) -> Response {
    let visit = visit_or_fail!(state, headers);
    if !csrf_ok(&visit, &form.csrf) {
        return form_expired(&state, &visit, "/account");
    }
    let Some(user) = &visit.session.user else {
        return message_page(
            &state,
            &visit,
            StatusCode::UNAUTHORIZED,
            "error-login-required",
            "/login",
        );
    };
    // Only this account's consent: the store selects by its id.
    match state
        .authority
        .oidc
        .withdraw_consent(&user.id, &form.client_id)
        .await
    {
        Ok(_) => Redirect::to("/account").into_response(),
        Err(error) => internal(&state, visit.language, &error),
    }
}
