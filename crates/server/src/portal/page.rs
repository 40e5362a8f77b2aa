//! The portal's page framework: the visit (session and language), the page every template
//! gets (language, messages, CSRF token), rendering, cookies, the message page and the CSRF
//! check. Every page module builds on it; it knows none of them.

use std::sync::Arc;

use askama::Template;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use authority::login::{Session, SessionToken};
use authority::Error;

use crate::error::Surface;
use crate::i18n::{Catalog, Language};
use crate::state::AppState;

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
                .login
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
        let (token, session) = self.authority.login.new_session();
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
            csrf: visit.session.csrf_token().to_owned(),
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

impl AppState {
    /// The `next` cookie: the id of an OAuth authorisation request waiting for the login
    /// (`oauth.rs`), or empty with `Max-Age=0` to forget it. `HttpOnly`, `SameSite=Lax`, `Path=/`
    /// and, under TLS, `Secure`, as the session cookie. `None` if `id` is not a cookie value
    /// (RFC 6265 §4.1.1: no `;`, `,`, whitespace or quote), so that it cannot add attributes.
    pub(crate) fn next_cookie(&self, id: Option<&str>) -> Option<HeaderValue> {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        let (value, max_age) = match id {
            Some(id) => (id, 600),
            None => ("", 0),
        };
        let cookie_octet = |b: u8| b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\');
        if !value.bytes().all(cookie_octet) {
            return None;
        }
        HeaderValue::from_str(&format!(
            "next={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
        ))
        .ok()
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

/// How the portal answers an error in `language` (crate::error).
pub(crate) fn surface(state: &AppState, language: Language) -> Surface {
    Surface::Portal {
        catalog: state.catalog.clone(),
        language,
    }
}

/// An internal error on a page: logged once under the request's span, and a page in
/// `language` with the request id (crate::error).
pub(crate) fn internal(
    state: &AppState,
    language: Language,
    error: &(dyn std::error::Error + 'static),
) -> Response {
    crate::error::internal_response(&surface(state, language), error)
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

/// The answer to a form whose CSRF token does not fit the session (an old or forged form):
/// 403 with **the form has expired** and a link back to `back`.
pub(crate) fn form_expired(state: &AppState, visit: &Visit, back: &str) -> Response {
    message_page(
        state,
        visit,
        StatusCode::FORBIDDEN,
        "error-form-expired",
        back,
    )
}

macro_rules! visit_or_fail {
    ($state:expr, $headers:expr) => {
        match $state.visit(&$headers).await {
            Ok(visit) => visit,
            Err(error) => {
                return $crate::portal::page::internal(
                    &$state,
                    $crate::i18n::Language::SerbianCyrillic,
                    &error,
                )
            }
        }
    };
}
pub(crate) use visit_or_fail;

/// Checks the CSRF token of a form (constant time).
pub(crate) fn csrf_ok(visit: &Visit, given: &str) -> bool {
    let expected = visit.session.csrf_token().as_bytes();
    let given = given.as_bytes();
    expected.len() == given.len()
        && expected
            .iter()
            .zip(given)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
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

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    pub(crate) csrf: String,
}
