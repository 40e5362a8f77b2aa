//! The account page with **услуге**, the user's devices and undelivered mail.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use domain::AssuranceLevel;

use crate::state::AppState;

use super::page::{internal, message_page, render, visit_or_fail, Page};

/// The account page.
pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/account", get(account))
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
