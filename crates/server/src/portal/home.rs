//! The home page with **Пријава**, the language switch and the portal's static files.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use crate::i18n::Language;
use crate::state::AppState;

use super::page::{render, visit_or_fail, Page};

/// The home page, the language switch, the portal's static files.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/lang/{tag}", get(set_language))
        .route("/static/{file}", get(static_file))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
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
            include_str!("../../static/portal.css"),
        ),
        "login-wait.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../../static/login-wait.js"),
        ),
        "login-qr.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../../static/login-qr.js"),
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
