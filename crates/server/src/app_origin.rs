//! The ConsentID web app's own origin (DESIGN §9): a second listener that serves only the app's
//! static files, embedded in the binary from `app/dist/`, and `/config.json`, which names the
//! portal whose app API the app calls. Nothing of the portal is served here, and nothing of the
//! app on the portal, so that no script of the portal's origin can reach the app's keys
//! (IndexedDB is per origin).
//!
//! The portal's side of the split is [`cors`]: the app API under `/api/app/v1/` answers
//! cross-origin calls from the app's origin, and from no other.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One file of the web app, embedded by build.rs.
struct AppFile {
    /// Its path under `app/dist/`, e.g. `icons/icon-192.png`.
    path: &'static str,
    /// Its contents.
    bytes: &'static [u8],
    /// The contents gzipped, for text files.
    gzipped: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/app_files.rs"));

/// What the app origin needs to know.
#[derive(Debug, Clone)]
struct Origins {
    /// `/config.json`, rendered once.
    config: String,
    /// The app's Content-Security-Policy (its `connect-src` names the portal).
    csp: HeaderValue,
}

/// The origin (`scheme://host[:port]`) of a base URL: what `Origin` headers carry.
pub fn origin_of(url: &str) -> String {
    let url = url.trim_end_matches('/');
    match url.find("://") {
        Some(scheme_end) => {
            let rest = &url[scheme_end + 3..];
            let host_end = rest.find('/').unwrap_or(rest.len());
            url[..scheme_end + 3 + host_end].to_owned()
        }
        None => url.to_owned(),
    }
}

/// The app origin's router: the embedded files, `/config.json`, and the app's headers.
/// `portal_url` is the portal's public URL (the app API's base).
pub fn router(portal_url: &str) -> Router {
    let portal = portal_url.trim_end_matches('/').to_owned();
    let csp = format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; \
         manifest-src 'self'; connect-src 'self' {}; img-src 'self' data: blob:; \
         media-src 'self' blob: mediastream:; style-src 'self'; object-src 'none'; \
         base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
        origin_of(&portal)
    );
    let origins = Origins {
        config: serde_json::json!({ "server": portal }).to_string(),
        csp: HeaderValue::from_str(&csp)
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'")),
    };
    Router::new()
        .route("/config.json", get(config))
        .fallback(file)
        .layer(axum::middleware::from_fn_with_state(
            origins.clone(),
            app_headers,
        ))
        .with_state(origins)
}

async fn config(State(origins): State<Origins>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        origins.config,
    )
        .into_response()
}

/// One embedded file by its path; `/` is `index.html`. Only GET and HEAD. Gzipped when the
/// browser accepts it and the file is text.
async fn file(method: Method, uri: Uri, request_headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    let Some(found) = APP_FILES.iter().find(|file| file.path == path) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let (bytes, encoding) = match found.gzipped {
        Some(gzipped) if accepts_gzip(&request_headers) => (gzipped, Some("gzip")),
        _ => (found.bytes, None),
    };
    // The service worker must be re-checked on every load, so that a new release reaches the
    // phone; the rest may be cached briefly (the worker versions its own cache).
    let cache = if path == "sw.js" || path == "index.html" {
        "no-cache"
    } else {
        "max-age=300"
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type(path)),
            (header::CACHE_CONTROL, cache),
        ],
        bytes,
    )
        .into_response();
    if found.gzipped.is_some() {
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if let Some(encoding) = encoding {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    response
}

/// Whether `Accept-Encoding` admits gzip (`gzip` or `*`, unless given `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

/// The Content-Type of an app file, by its extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("wasm") => "application/wasm",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The app's headers on every answer: its CSP, no sniffing, no referrer, the camera for
/// itself only (QR codes).
async fn app_headers(State(origins): State<Origins>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, origins.csp.clone());
    crate::headers::no_sniffing_no_referrer(headers);
    headers.insert(
        header::HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(self)"),
    );
    response
}

/// CORS for the app API: a call whose `Origin` is exactly the app's origin gets
/// `Access-Control-Allow-Origin` with that origin, and a preflight (`OPTIONS` with
/// `Access-Control-Request-Method`) is answered here. Any other origin gets no CORS headers,
/// so its browser keeps the answer from its script. CORS protects answers, not the server:
/// every app API call is still authenticated by its device signature.
///
/// (A function returning its future: see `error::request_span`.)
pub fn cors(
    app_origin: State<HeaderValue>,
    request: Request,
    next: Next,
) -> impl std::future::Future<Output = Response> + Send {
    let allowed = request
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|origin| origin == app_origin.0);
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let answer = (!preflight).then(|| crate::error::next_answer(next, request));
    async move {
        let Some(answer) = answer else {
            let mut response = StatusCode::NO_CONTENT.into_response();
            if allowed {
                preflight_headers(response.headers_mut(), &app_origin.0);
            }
            vary_origin(response.headers_mut());
            return response;
        };
        let mut response = answer.await;
        if allowed {
            response
                .headers_mut()
                .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, app_origin.0.clone());
        }
        vary_origin(response.headers_mut());
        response
    }
}

fn preflight_headers(headers: &mut HeaderMap, origin: &HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, DELETE"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, authorization"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
}

fn vary_origin(headers: &mut HeaderMap) {
    headers.append(header::VARY, HeaderValue::from_static("origin"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port() {
        assert_eq!(
            origin_of("https://app.example.rs/"),
            "https://app.example.rs"
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8081/x/y"),
            "http://127.0.0.1:8081"
        );
        assert_eq!(
            origin_of("https://eid.example.rs:8443"),
            "https://eid.example.rs:8443"
        );
    }

    #[test]
    fn gzip_is_sent_only_when_accepted() {
        let headers = |value: &'static str| {
            let mut map = HeaderMap::new();
            map.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
            map
        };
        assert!(accepts_gzip(&headers("gzip, deflate, br")));
        assert!(accepts_gzip(&headers("br;q=1.0, gzip;q=0.8")));
        assert!(accepts_gzip(&headers("*")));
        assert!(!accepts_gzip(&headers("gzip;q=0")));
        assert!(!accepts_gzip(&headers("br, identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(
            content_type("manifest.webmanifest"),
            "application/manifest+json"
        );
        assert_eq!(content_type("icons/icon-192.png"), "image/png");
        assert_eq!(content_type("README"), "application/octet-stream");
    }
}
