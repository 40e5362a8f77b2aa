//! The qualified certificate in the cloud (the seed's steps 8-13): its page, **Издај** with the
//! agreement, **Обнови**, **Опозови** and **Опозови све сертификате**. Each action, once
//! confirmed here, is approved on the phone as a request of its own; the portal waits for it on
//! `/services/cloud-certificate/operations/{id}` (issue 22).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use authority::ra::operations::{OperationProgress, OperationRequest};
use domain::cloud::CertificateOperation;
use proto::app::RequestContext;

use crate::client_address::ClientIp;
use crate::i18n::Language;
use crate::state::AppState;

use super::page::{
    csrf_ok, describe_browser, internal, message_page, render, visit_or_fail, CsrfForm,
    MessagePage, Page, Visit,
};

/// The cloud certificate's page and its actions.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
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
        .route(
            "/services/cloud-certificate/operations/{id}",
            get(operation_page),
        )
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
    let cloud = match state.authority.ra.cloud_state(&user).await {
        Ok(cloud) => cloud,
        Err(error) => return internal(state, visit.language, &error),
    };
    let page = state.page(visit, "cloud-heading", "/services/cloud-certificate");
    let renewal_note = match cloud.renewal {
        Err(domain::cloud::CloudRefusal::RenewalWindowClosed { opens_on }) => Some(page.t_with(
            "cloud-renew-opens",
            &[
                ("date", authority::ra::cloud::serbian_date(opens_on)),
                (
                    "days",
                    state.authority.settings().renewal_window_days.to_string(),
                ),
            ],
        )),
        _ => None,
    };
    let agreements = match state.authority.ra.agreements(&user).await {
        Ok(list) => list
            .into_iter()
            .map(|(number, at)| (number, authority::ra::cloud::serbian_date(at)))
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
            from: authority::ra::cloud::serbian_date(c.not_before),
            to: authority::ra::cloud::serbian_date(c.not_after),
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
    if !visit.session.by_consentid() {
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
    match state.authority.ra.agreement_pdf_of(&user, number).await {
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
async fn cloud_refused(state: &AppState, visit: &Visit, error: authority::Error) -> Response {
    use authority::ra::cloud::CloudRefusal;
    use authority::Error;
    let id = match error {
        Error::Cloud(CloudRefusal::LoginNotFresh) => {
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
        Error::Cloud(CloudRefusal::AlreadyActive) => "cloud-refused-active",
        Error::Cloud(CloudRefusal::NoneActive) => "cloud-refused-none",
        Error::Cloud(CloudRefusal::Expired) => "cloud-refused-expired",
        Error::Cloud(CloudRefusal::RenewalWindowClosed { .. }) => "cloud-refused-none",
        error => return internal(state, visit.language, &error),
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
    if visit.session.user.is_none() {
        return Redirect::to("/login").into_response();
    }
    let user = match state.authority.ra.may_issue_cloud(&visit.session).await {
        Ok(user) => user,
        Err(error) => return cloud_refused(&state, &visit, error).await,
    };
    let text = state.authority.ra.agreement_draft(&user);
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

/// An action confirmed in the portal (**Прихвати**, **Обнови**, **Да, опозови**): asks the
/// citizen's ConsentID to approve it, and shows the page that waits for the phone. Nothing
/// changes before the approval.
async fn request_operation(
    state: &AppState,
    headers: &HeaderMap,
    ip: String,
    csrf: &str,
    operation: CertificateOperation,
) -> Response {
    let visit = match cloud_visit(state, headers, csrf).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let page = state.page(&visit, "cloud-heading", "/services/cloud-certificate");
    let browser = describe_browser(
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    let request = OperationRequest {
        title: page.t(&format!("operation-title-{}", operation.as_str())),
        context: RequestContext { browser, ip },
    };
    match state
        .authority
        .ra
        .request_operation(&visit.session, operation, request)
        .await
    {
        Ok(id) => {
            Redirect::to(&format!("/services/cloud-certificate/operations/{id}")).into_response()
        }
        Err(error) => cloud_refused(state, &visit, error).await,
    }
}

async fn cloud_accept(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    request_operation(
        &state,
        &headers,
        ip,
        &form.csrf,
        CertificateOperation::Issue,
    )
    .await
}

async fn cloud_renew(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    request_operation(
        &state,
        &headers,
        ip,
        &form.csrf,
        CertificateOperation::Renew,
    )
    .await
}

#[derive(Template)]
#[template(path = "operation.html")]
struct OperationPage {
    page: Page,
    title: String,
    agreement: Option<String>,
    time_left: String,
}

/// The page that waits for the phone's approval of an operation (it refreshes itself), then
/// shows the outcome: the service page with its success message, or why nothing changed.
async fn operation_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let visit = visit_or_fail!(state, headers);
    let view = match state.authority.ra.operation(&visit.session, &id).await {
        Ok(view) => view,
        Err(authority::Error::Rejected(authority::Rejection::NotFound)) => {
            return message_page(
                &state,
                &visit,
                StatusCode::NOT_FOUND,
                "error-not-found",
                "/services/cloud-certificate",
            )
        }
        Err(error) => return internal(&state, visit.language, &error),
    };
    match view.progress {
        OperationProgress::Pending { seconds_left } => {
            let page = state.page(
                &visit,
                "operation-heading",
                &format!("/services/cloud-certificate/operations/{id}"),
            );
            let template = OperationPage {
                title: page.t(&format!("operation-title-{}", view.operation.as_str())),
                agreement: view.agreement.map(|(number, fingerprint)| {
                    page.t_with(
                        "operation-agreement",
                        &[("number", number), ("fingerprint", fingerprint)],
                    )
                }),
                time_left: page.t_with(
                    "operation-time-left",
                    &[("seconds", seconds_left.to_string())],
                ),
                page,
            };
            render(&state, &visit, &template)
        }
        OperationProgress::Done => match view.operation {
            CertificateOperation::Issue => {
                Redirect::to("/services/cloud-certificate?done=issued").into_response()
            }
            CertificateOperation::Renew => {
                Redirect::to("/services/cloud-certificate?done=renewed").into_response()
            }
            CertificateOperation::Revoke => {
                Redirect::to("/services/cloud-certificate?done=revoked").into_response()
            }
            CertificateOperation::RevokeAll => revoked_all_page(&state, &visit),
        },
        OperationProgress::Failed(hint) => {
            let id = match hint.as_str() {
                "denied" | "expired" | "failed" => format!("operation-failed-{hint}"),
                _ => "operation-failed-refused".to_owned(),
            };
            cloud_page(&state, &visit, None, Some(&id), StatusCode::CONFLICT).await
        }
    }
}

/// After **Опозови све сертификате**: the session ended with the device, so the page is shown
/// as to a visitor.
fn revoked_all_page(state: &AppState, visit: &Visit) -> Response {
    let page = state.page(visit, "revoke-all-confirm-heading", "/");
    let mut template = MessagePage {
        heading: page.t("revoke-all-confirm-heading"),
        text: page.t("cloud-revoked-all"),
        is_error: false,
        link: "/".into(),
        link_text: page.t("error-back"),
        page,
    };
    template.page.logged_in = false;
    render(state, visit, &template)
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
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    request_operation(
        &state,
        &headers,
        ip,
        &form.csrf,
        CertificateOperation::Revoke,
    )
    .await
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
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    request_operation(
        &state,
        &headers,
        ip,
        &form.csrf,
        CertificateOperation::RevokeAll,
    )
    .await
}
