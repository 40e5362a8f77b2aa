//! Errors as HTTP answers, and the request every answer belongs to. [`AppError`] carries what
//! went wrong (an `authority::Error`, its source chain kept) and the surface that answers: the
//! portal's page in the user's language, the CSC API's `{"error", "error_description"}`, the
//! app API's `{"error", "message"}` or plain text. A refusal the caller may be told
//! ([`Rejection`]) becomes that surface's status and code; anything else is internal: it is
//! logged once, with its whole chain, under the request's span, and the caller gets a generic
//! message with the request id and never the inner text.
//!
//! [`request_span`] (the router's outermost layer) gives every request an id, a tracing span
//! (method, route, id: never headers, cookies or the query, where tokens travel) and the
//! `x-request-id` response header, so that a citizen can quote the id the error page shows.

use std::error::Error as StdError;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use tracing::Instrument as _;

use authority::{Error, Rejection};
use csc::CscError;
use domain::qr::QrRefusal;
use proto::app::ErrorBody;

use crate::i18n::{Catalog, Language};

/// The response header that carries the request id.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of one request: 16 hex digits, random, in the log's span and the `x-request-id`
/// header, and on an internal-error answer.
/// Kept as its ASCII digits, so that it is `Copy` and costs no allocation per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId([u8; 16]);

impl RequestId {
    /// A fresh random id.
    pub fn new() -> Self {
        let mut digits = [0u8; 16];
        // INVARIANT: 8 bytes are exactly 16 hex digits.
        let _ = hex::encode_to_slice(rand::random::<[u8; 8]>(), &mut digits);
        Self(digits)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The id of the request being answered; outside a request (a test, a background task), a
    /// fresh one.
    pub fn current() -> Self {
        CURRENT_REQUEST
            .try_with(|id| *id)
            .unwrap_or_else(|_| Self::new())
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

tokio::task_local! {
    /// The id of the request whose future is being polled (set by [`request_span`]).
    static CURRENT_REQUEST: RequestId;
}

/// The outermost layer: a request id, a span around the whole answer, the id in the
/// `x-request-id` header of the response.
///
/// A plain function returning its future, and the rest of the stack called as a service rather
/// than through `Next::run`: an `async fn` would keep the moved request's slot (and `run`'s
/// own) in its future for as long as the answer takes, a few hundred bytes that each of
/// 10,000 waiting long polls carried through every layer (issue 24). [`next_answer`] and
/// the layers in `http.rs` and `app_origin.rs` do the same.
pub fn request_span(
    request: Request,
    next: Next,
) -> impl std::future::Future<Output = Response> + Send {
    // The route's pattern ("/login/qr/{id}"), never the path itself: paths and queries carry
    // login links, OAuth codes and handles.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("(none)", MatchedPath::as_str);
    // OCSP, the hot path, does not come through here (http::app merges it after the layers).
    let id = RequestId::new();
    let span = tracing::info_span!("request", method = %request.method(), route, request_id = %id);
    let answer = CURRENT_REQUEST
        .scope(id, next_answer(next, request))
        .instrument(span.clone());
    async move {
        let mut response = answer.await;
        span.in_scope(|| tracing::debug!(status = response.status().as_u16(), "answered"));
        if let Ok(value) = HeaderValue::from_bytes(&id.0) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        response
    }
}

/// The answer of the rest of the stack, as `Next::run` gives it, in a future that holds
/// nothing but the stack's own (boxed) one.
pub fn next_answer(
    mut next: Next,
    request: Request,
) -> impl std::future::Future<Output = Response> + Send {
    let answer = tower_service::Service::call(&mut next, request);
    async move {
        match answer.await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

/// Which kind of answer an error becomes.
#[derive(Clone)]
pub enum Surface {
    /// The portal: a page in the user's language.
    Portal {
        /// The messages.
        catalog: Arc<Catalog>,
        /// The user's language.
        language: Language,
    },
    /// The CSC API and its OAuth token endpoint: `{"error", "error_description"}`.
    Csc,
    /// The ConsentID app API: `{"error", "message"}`.
    AppApi,
    /// Plain text (`/pki/`, the other protocol endpoints).
    Plain,
}

/// What went wrong.
#[derive(Debug)]
enum Source {
    /// A use case failed or refused.
    Authority(Error),
    /// Anything else (a template, a message of our own).
    Other(Box<dyn StdError + Send + Sync>),
}

impl Source {
    fn as_error(&self) -> &(dyn StdError + 'static) {
        match self {
            Self::Authority(error) => error,
            Self::Other(error) => error.as_ref(),
        }
    }
}

/// An error on its way to becoming an answer. Handlers return `Result<Response, AppError>` or
/// call `into_response` on it.
pub struct AppError {
    surface: Surface,
    source: Source,
}

impl AppError {
    /// An error of a use case, answered on `surface`.
    pub fn new(surface: Surface, error: Error) -> Self {
        Self {
            surface,
            source: Source::Authority(error),
        }
    }

    /// Any other error, always internal, answered on `surface`.
    pub fn other(surface: Surface, error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            surface,
            source: Source::Other(error.into()),
        }
    }

    /// An error of a use case on the portal, in the user's language.
    pub fn portal(catalog: Arc<Catalog>, language: Language, error: Error) -> Self {
        Self::new(Surface::Portal { catalog, language }, error)
    }

    /// An error of a use case on the CSC API.
    pub fn csc(error: Error) -> Self {
        Self::new(Surface::Csc, error)
    }

    /// An error of a use case on the app API.
    pub fn app_api(error: Error) -> Self {
        Self::new(Surface::AppApi, error)
    }

    /// An error of a use case answered in plain text.
    pub fn plain(error: Error) -> Self {
        Self::new(Surface::Plain, error)
    }

    /// The refusal, if the caller may be told what it is.
    fn rejection(&self) -> Option<Rejection> {
        match &self.source {
            Source::Authority(Error::Rejected(rejection)) => Some(*rejection),
            _ => None,
        }
    }
}

impl std::fmt::Debug for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppError")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let refused = match (&self.surface, self.rejection()) {
            (Surface::AppApi, Some(rejection)) => Some(app_api_rejection(rejection)),
            (Surface::Csc, Some(rejection)) => csc_rejection(rejection).map(csc_response),
            // The portal's pages and the plain endpoints show their refusals themselves (each
            // in its own words); one that reaches here was not expected.
            _ => None,
        };
        refused.unwrap_or_else(|| internal_response(&self.surface, self.source.as_error()))
    }
}

/// The answer to an internal error: logged once, with its chain, under the request's span;
/// the caller gets a generic message and the request id on `surface`.
pub fn internal_response(surface: &Surface, error: &(dyn StdError + 'static)) -> Response {
    let id = log_internal(error);
    let status = StatusCode::INTERNAL_SERVER_ERROR;
    match surface {
        Surface::Portal { catalog, language } => {
            let text = catalog.message(*language, "error-internal", &[("id", id.to_string())]);
            let html = format!(
                "<!DOCTYPE html><html lang=\"{}\"><body><p>{}</p></body></html>",
                language.tag(),
                html_escape(&text)
            );
            (status, Html(html)).into_response()
        }
        Surface::Csc => {
            let body = CscError {
                status: status.as_u16(),
                error: "server_error",
                error_description: format!("Internal error, request id {id}"),
            };
            csc_response(body)
        }
        Surface::AppApi => {
            let body = ErrorBody {
                error: "internal_error".into(),
                message: format!("internal error, request id {id}"),
            };
            (status, Json(body)).into_response()
        }
        Surface::Plain => (status, format!("internal error, request id {id}\n")).into_response(),
    }
}

/// Logs an internal error once, with its chain ("what: because: because"), and gives the
/// request id to show the caller. For answers that are not HTTP error bodies (an RFC 3161
/// `systemFailure`); everything else goes through [`AppError`].
pub fn log_internal(error: &(dyn StdError + 'static)) -> RequestId {
    let id = RequestId::current();
    tracing::error!(request_id = %id, error = %chain(error), "request failed");
    id
}

/// An error and its sources as one line; a source whose text its parent already ends with
/// (`#[error("DER: {0}")]`) is not repeated.
pub fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        let part = source.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = source.source();
    }
    text
}

/// The HTTP status of a refusal on the app API.
pub fn rejection_status(rejection: Rejection) -> StatusCode {
    match rejection {
        Rejection::Invalid(_)
        | Rejection::InvalidCode
        | Rejection::ActivationMismatch
        | Rejection::LocationNotConfirmed
        | Rejection::PushEndpoint(_) => StatusCode::BAD_REQUEST,
        Rejection::BadSignature
        | Rejection::DeviceRevoked
        | Rejection::ClockSkew
        | Rejection::Replay => StatusCode::UNAUTHORIZED,
        Rejection::NotProofed | Rejection::PinLocked => StatusCode::FORBIDDEN,
        Rejection::UnknownUser | Rejection::NotFound => StatusCode::NOT_FOUND,
        Rejection::AlreadyExists | Rejection::NotPending => StatusCode::CONFLICT,
        Rejection::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        Rejection::QrLogin(refusal) => match refusal {
            QrRefusal::Invalid => StatusCode::BAD_REQUEST,
            QrRefusal::Stale => StatusCode::GONE,
            QrRefusal::Closed => StatusCode::NOT_FOUND,
            QrRefusal::OtherAddress => StatusCode::FORBIDDEN,
        },
    }
}

/// A refusal on the app API: its status, its stable code and its English text.
fn app_api_rejection(rejection: Rejection) -> Response {
    let body = ErrorBody {
        error: rejection.code().into(),
        message: rejection.to_string(),
    };
    (rejection_status(rejection), Json(body)).into_response()
}

/// The CSC answer to the refusals a CSC caller may be told; the others are internal there.
fn csc_rejection(rejection: Rejection) -> Option<CscError> {
    match rejection {
        Rejection::RateLimited => Some(CscError {
            status: 429,
            error: "temporarily_unavailable",
            error_description: "Too many attempts, try again later".into(),
        }),
        Rejection::BadSignature => Some(CscError {
            status: 401,
            error: "authentication_error",
            error_description: "The e-mail address or password is not correct".into(),
        }),
        Rejection::NotProofed => Some(CscError {
            status: 403,
            error: "access_denied",
            error_description:
                "The account's identity was not proofed: the API is for proofed accounts only"
                    .into(),
        }),
        _ => None,
    }
}

/// A CSC error body with its status.
pub fn csc_response(error: CscError) -> Response {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(error)).into_response()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::body::{to_bytes, Body};
    use axum::routing::get;
    use axum::Router;
    use tower_service::Service as _;

    /// An internal error whose text must never reach the caller.
    const SECRET: &str = "inconsistent row 42 in table sessions";

    fn internal() -> Error {
        Error::Inconsistent(SECRET.into())
    }

    fn portal(language: Language) -> Surface {
        let catalog = Arc::new(Catalog::load().unwrap());
        Surface::Portal { catalog, language }
    }

    /// The status and body of `error`'s answer, inside a request whose id is `id`.
    async fn answer(error: AppError, id: &str) -> (StatusCode, Option<String>, String) {
        let response = CURRENT_REQUEST
            .scope(RequestId(id.as_bytes().try_into().unwrap()), async move {
                error.into_response()
            })
            .await;
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn app_api_refusals_keep_their_status_code_and_text() {
        for (rejection, status, code) in [
            (Rejection::InvalidCode, 400, "invalid_code"),
            (Rejection::DeviceRevoked, 401, "device_revoked"),
            (Rejection::PinLocked, 403, "pin_locked"),
            (Rejection::NotFound, 404, "not_found"),
            (Rejection::NotPending, 409, "not_pending"),
            (Rejection::QrLogin(QrRefusal::Stale), 410, "stale_qr"),
            (Rejection::RateLimited, 429, "rate_limited"),
        ] {
            let error = AppError::app_api(Error::Rejected(rejection));
            let (got, _, body) = answer(error, "0011223344556677").await;
            assert_eq!(got.as_u16(), status, "{rejection:?}");
            let body: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["error"], code, "{rejection:?}");
            assert_eq!(body["message"], rejection.to_string());
        }
    }

    #[tokio::test]
    async fn csc_refusals_keep_their_status_and_code() {
        let error = AppError::csc(Error::Rejected(Rejection::RateLimited));
        let (status, _, body) = answer(error, "0011223344556677").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
        let error = AppError::csc(Error::Rejected(Rejection::BadSignature));
        let (status, _, body) = answer(error, "0011223344556677").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "authentication_error");
        assert_eq!(
            body["error_description"],
            "The e-mail address or password is not correct"
        );
    }

    #[tokio::test]
    async fn an_internal_error_shows_the_request_id_and_not_its_text_on_every_surface() {
        let id = "a1b2c3d4e5f60718";
        for (surface, content_type, expected) in [
            (
                Surface::Csc,
                "application/json",
                r#"{"error":"server_error","error_description":"Internal error, request id a1b2c3d4e5f60718"}"#.to_owned(),
            ),
            (
                Surface::AppApi,
                "application/json",
                r#"{"error":"internal_error","message":"internal error, request id a1b2c3d4e5f60718"}"#.to_owned(),
            ),
            (
                Surface::Plain,
                "text/plain; charset=utf-8",
                "internal error, request id a1b2c3d4e5f60718\n".to_owned(),
            ),
        ] {
            let (status, got_type, body) = answer(AppError::new(surface, internal()), id).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(got_type.as_deref(), Some(content_type));
            assert_eq!(body, expected);
            assert!(!body.contains(SECRET));
        }
    }

    #[tokio::test]
    async fn the_portal_says_so_in_the_users_language_with_the_request_id() {
        let id = "a1b2c3d4e5f60718";
        for (language, words) in [
            (Language::SerbianCyrillic, "Број захтева"),
            (Language::English, "Request number"),
        ] {
            let error = AppError::new(portal(language), internal());
            let (status, content_type, body) = answer(error, id).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(content_type.as_deref(), Some("text/html; charset=utf-8"));
            assert!(body.contains(words), "{body}");
            assert!(body.contains(id), "{body}");
            assert!(!body.contains(SECRET), "{body}");
        }
    }

    #[tokio::test]
    async fn a_refusal_the_page_did_not_expect_is_internal_on_the_portal() {
        // As before AppError: the portal's handlers show the refusals they expect themselves.
        let error = AppError::new(
            portal(Language::English),
            Error::Rejected(Rejection::NotFound),
        );
        let (status, _, body) = answer(error, "a1b2c3d4e5f60718").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains("a1b2c3d4e5f60718"));
    }

    #[test]
    fn the_chain_names_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("DER: {0}")]
        struct Outer(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("inner failed")]
        struct Inner(#[source] std::io::Error);
        let error = Outer(Inner(std::io::Error::other("disk full")));
        assert_eq!(chain(&error), "DER: inner failed: disk full");
    }

    /// A log written to memory.
    #[derive(Clone, Default)]
    struct Log(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Log {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_internal_error_is_logged_once_with_its_chain_under_the_requests_span() {
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        // The current-thread runtime polls the request on this thread.
        let _guard = tracing::subscriber::set_default(subscriber);
        let mut router: Router = Router::new()
            .route(
                "/documents/{id}",
                get(|| async { Err::<Response, _>(AppError::app_api(internal())) }),
            )
            .layer(axum::middleware::from_fn(request_span));
        let request = Request::get("/documents/secret-token-in-the-path?code=also-secret")
            .header("authorization", "Bearer very-secret")
            .header("cookie", "sid=secret-session")
            .body(Body::empty())
            .unwrap();
        let response = router.call(request).await.unwrap();
        let id = response.headers()[REQUEST_ID_HEADER]
            .to_str()
            .unwrap()
            .to_owned();
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
        assert_eq!(errors.len(), 1, "{text}");
        let line = errors[0];
        assert!(line.contains(SECRET), "the log has the inner error: {line}");
        assert!(line.contains(&format!("request_id={id}")), "{line}");
        assert!(line.contains("method=GET"), "{line}");
        assert!(line.contains("route=\"/documents/{id}\""), "{line}");
        for secret in [
            "secret-token",
            "also-secret",
            "very-secret",
            "secret-session",
        ] {
            assert!(!text.contains(secret), "{secret} reached the log: {text}");
        }
    }

    #[tokio::test]
    async fn every_answer_carries_the_request_id_that_an_internal_error_shows() {
        let mut router: Router = Router::new()
            .route(
                "/fails",
                get(|| async { Err::<Response, _>(AppError::plain(internal())) }),
            )
            .route("/works", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn(request_span));
        let request = |path: &str| Request::get(path).body(Body::empty()).unwrap();
        let mut seen = Vec::new();
        for path in ["/works", "/fails", "/nowhere"] {
            let response = router.call(request(path)).await.unwrap();
            let id = response
                .headers()
                .get(REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("{path} has no x-request-id"));
            assert_eq!(id.len(), 16, "{path}: {id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{path}: {id}");
            if path == "/fails" {
                let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
                assert_eq!(body, format!("internal error, request id {id}\n"));
            }
            seen.push(id);
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 3, "each request has its own id: {seen:?}");
    }
}
