//! HTTP: the CA certificates and CRLs under `/pki/`, OCSP (RFC 6960 Appendix A, RFC 5019),
//! time-stamping (RFC 3161 §3.4), `/healthz` and `/metrics`. Handlers are testable without a
//! socket: [`app`] builds the router.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;

use authority::{Authority, CaName, OcspAnswer};

use crate::error::{AppError, Surface};
use crate::state::{AppState, Metrics};

/// The largest OCSP request accepted (RFC 5019 requests are about 100 bytes).
pub const MAX_OCSP_REQUEST: usize = 8 * 1024;
/// The largest time-stamp request accepted (a TimeStampReq is about 100 bytes).
pub const MAX_TSA_REQUEST: usize = 64 * 1024;
/// The largest request body of any route (JSON of the app API, OCSP); uploads get their own.
pub const MAX_BODY: usize = 64 * 1024;

/// The router.
pub fn app(state: AppState) -> Router {
    let app_origin = HeaderValue::from_str(&crate::app_origin::origin_of(&state.app_public_url))
        .unwrap_or_else(|_| HeaderValue::from_static("null"));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/pki/{file}", get(pki_file))
        .route("/tsa", post(tsa_post))
        .merge(crate::app_api::routes().merge(crate::push::routes()).layer(
            axum::middleware::from_fn_with_state(app_origin, crate::app_origin::cors),
        ))
        .merge(crate::csc::routes())
        .merge(crate::oauth::routes())
        .merge(crate::oidc::routes())
        .merge(crate::portal::routes())
        // A path no route has: set here, before the layers, so that its 404 too carries the
        // security headers and a request id (the OCSP router merged below has none of its own).
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(security_headers))
        // Outermost: every answer, the security headers' too, is inside the request's span.
        .layer(axum::middleware::from_fn(crate::error::request_span))
        // OCSP is the hot path (tens of thousands of answers a second, each a few microseconds
        // of CPU): merged after the layers, so that it runs through none of them. Its answers
        // carry the security headers themselves; the request span and its id are left out (its
        // failures are OCSP answers, never an AppError), and its one body, a POST's, has a
        // limit of its own.
        .merge(
            Router::new()
                .route(
                    "/ocsp",
                    post(ocsp_post).layer(DefaultBodyLimit::max(MAX_BODY)),
                )
                .route(
                    "/ocsp/",
                    post(ocsp_post).layer(DefaultBodyLimit::max(MAX_BODY)),
                )
                .route("/ocsp/{*request}", get(ocsp_get))
                .with_state(Ocsp {
                    authority: state.authority.clone(),
                    metrics: state.metrics.clone(),
                }),
        )
        .with_state(state)
}

/// 404 for a path no route has.
async fn no_route() -> Response {
    not_found()
}

/// What the OCSP handlers get: the part of [`AppState`] they use, cloned for every request.
#[derive(Clone)]
struct Ocsp {
    authority: Arc<Authority>,
    metrics: Arc<Metrics>,
}

/// Headers on every answer: a strict CSP (no inline script or style, no framing), no MIME
/// sniffing, no referrer.
/// (A function returning its future: see `error::request_span`.)
fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> impl std::future::Future<Output = Response> + Send {
    let answer = crate::error::next_answer(next, request);
    async move {
        let mut response = answer.await;
        add_security_headers(response.headers_mut());
        response
    }
}

/// What [`security_headers`] adds, for the routes outside it (OCSP). A page that set its own
/// policy (`headers::allowing_form_target`) keeps it.
fn add_security_headers(headers: &mut HeaderMap) {
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(crate::headers::CSP),
        );
    }
    crate::headers::no_sniffing_no_referrer(headers);
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(state): State<AppState>) -> Response {
    let m = &state.metrics;
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let text = format!(
        "# HELP eidportal_ocsp_responses_total OCSP responses by outcome.\n\
         # TYPE eidportal_ocsp_responses_total counter\n\
         eidportal_ocsp_responses_total{{outcome=\"successful\"}} {}\n\
         eidportal_ocsp_responses_total{{outcome=\"malformed_request\"}} {}\n\
         eidportal_ocsp_responses_total{{outcome=\"unauthorized\"}} {}\n\
         eidportal_ocsp_responses_total{{outcome=\"other_error\"}} {}\n\
         # HELP eidportal_ocsp_cache_hits_total OCSP responses served from the cache without a signature.\n\
         # TYPE eidportal_ocsp_cache_hits_total counter\n\
         eidportal_ocsp_cache_hits_total {}\n\
         # HELP eidportal_pki_downloads_total CA certificates and CRLs served.\n\
         # TYPE eidportal_pki_downloads_total counter\n\
         eidportal_pki_downloads_total {}\n\
         # HELP eidportal_connections_refused_total Connections closed on accepting because their address (IPv6: its /64) held its share.\n\
         # TYPE eidportal_connections_refused_total counter\n\
         eidportal_connections_refused_total{{reason=\"per_address_cap\"}} {}\n\
         # HELP eidportal_requests_cut_total Requests whose body did not arrive in time; their connection is closed.\n\
         # TYPE eidportal_requests_cut_total counter\n\
         eidportal_requests_cut_total{{reason=\"deadline\"}} {}\n\
         eidportal_requests_cut_total{{reason=\"min_body_rate\"}} {}\n",
        load(&m.ocsp_successful),
        load(&m.ocsp_malformed),
        load(&m.ocsp_unauthorized),
        load(&m.ocsp_other_errors),
        load(&m.ocsp_cached),
        load(&m.pki_downloads),
        load(&m.transport.refused_per_address),
        load(&m.transport.cut_at_deadline),
        load(&m.transport.cut_too_slow),
    );
    let mut text = text;
    text.push_str(
        "# HELP eidportal_oidc_requests_total The OpenID provider's answers by endpoint and outcome (ok or the OAuth error code).\n\
         # TYPE eidportal_oidc_requests_total counter\n",
    );
    for ((endpoint, outcome), count) in m
        .oidc
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
    {
        text.push_str(&format!(
            "eidportal_oidc_requests_total{{endpoint=\"{endpoint}\",outcome=\"{outcome}\"}} {count}\n"
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn pki_file(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, AppError> {
    let (stem, is_crl) = match (file.strip_suffix(".crt"), file.strip_suffix(".crl")) {
        (Some(stem), _) => (stem, false),
        (_, Some(stem)) => (stem, true),
        _ => return Ok(not_found()),
    };
    if (stem, is_crl) == ("tsa", false) {
        let der = state
            .authority
            .tsa
            .tsa_chain()
            .into_iter()
            .next()
            .ok_or_else(|| {
                AppError::other(Surface::Plain, "the time-stamping unit has no certificate")
            })?;
        state.metrics.pki_downloads.fetch_add(1, Ordering::Relaxed);
        return Ok(der_response("application/pkix-cert", der.0));
    }
    let Some(ca) = CaName::ALL.into_iter().find(|c| c.file_stem() == stem) else {
        return Ok(not_found());
    };
    state.metrics.pki_downloads.fetch_add(1, Ordering::Relaxed);
    Ok(if is_crl {
        let der = state.authority.va.crl(ca).await.map_err(AppError::plain)?;
        der_response("application/pkix-crl", der)
    } else {
        let der = state
            .authority
            .ca
            .ca_certificate(ca)
            .map_err(AppError::plain)?;
        der_response("application/pkix-cert", der.0)
    })
}

fn der_response(content_type: &'static str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

async fn ocsp_post(State(state): State<Ocsp>, headers: HeaderMap, body: Bytes) -> Response {
    if body.len() > MAX_OCSP_REQUEST {
        return (StatusCode::PAYLOAD_TOO_LARGE, "OCSP request too large\n").into_response();
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.is_empty() && !content_type.starts_with("application/ocsp-request") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected application/ocsp-request\n",
        )
            .into_response();
    }
    let answer = state.authority.va.ocsp(&body).await;
    ocsp_response(&state, answer)
}

/// RFC 3161 §3.4: a DER TimeStampReq in, a DER TimeStampResp out, `200` with exactly
/// `application/timestamp-reply` whatever the outcome (pyHanko compares the header string); a
/// refused request is a `rejection` response, a failure of ours a `systemFailure` one.
async fn tsa_post(
    State(state): State<AppState>,
    client: crate::client_address::ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // HTTP 429, not an RFC 3161 rejection: no PKIFailureInfo means "come back later" (the
    // nearest, systemFailure, would blame the TSA), and an HTTP client backs off on 429 and
    // Retry-After without reading the body.
    if state
        .authority
        .tsa
        .admit_timestamp_request(&client.0)
        .is_err()
    {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            "too many time-stamp requests\n",
        )
            .into_response();
    }
    if body.len() > MAX_TSA_REQUEST {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            "time-stamp request too large\n",
        )
            .into_response();
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/timestamp-query") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected application/timestamp-query\n",
        )
            .into_response();
    }
    let reply = match state.authority.tsa.timestamp(&body).await {
        Ok(reply) => reply,
        Err(error) => {
            let id = crate::error::log_internal(&error);
            pki::tsa::rejection(
                pki::tsa::FailureInfo::SystemFailure,
                Some(&format!("internal error, request id {id}")),
            )
        }
    };
    (
        [
            (header::CONTENT_TYPE, "application/timestamp-reply"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        reply,
    )
        .into_response()
}

/// The longest OCSP GET path segment answered from the cache without an allocation: a plain
/// RFC 5019 request is about 80 bytes of DER, 110 of base64.
const INLINE_GET_TEXT: usize = 512;

/// Percent-decodes an OCSP GET path segment into `text` and drops leading slashes: the base64
/// of the request (RFC 6960 Appendix A.1). Some clients leave `+` as a space; it is put back.
/// `None` when it does not fit.
fn percent_decode_into<'a>(encoded: &str, text: &'a mut [u8]) -> Option<&'a [u8]> {
    let mut length = 0;
    for byte in percent_encoding::percent_decode_str(encoded) {
        *text.get_mut(length)? = if byte == b' ' { b'+' } else { byte };
        length += 1;
    }
    let text = text.get(..length)?;
    let start = text.iter().take_while(|&&byte| byte == b'/').count();
    text.get(start..)
}

/// Base64-decodes `text` into `der`, in the standard alphabet or the URL-safe one, which some
/// clients use. `Err(true)` when it is not base64, `Err(false)` when `der` is too short.
fn base64_decode_into<'a>(text: &[u8], der: &'a mut [u8]) -> Result<&'a [u8], bool> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let decoded = match STANDARD.decode_slice(text, &mut *der) {
        Err(base64::DecodeSliceError::DecodeError(_)) => {
            let end = text.len() - text.iter().rev().take_while(|&&byte| byte == b'=').count();
            URL_SAFE_NO_PAD.decode_slice(text.get(..end).unwrap_or_default(), &mut *der)
        }
        other => other,
    };
    match decoded {
        Ok(length) => der.get(..length).ok_or(false),
        Err(base64::DecodeSliceError::DecodeError(_)) => Err(true),
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => Err(false),
    }
}

async fn ocsp_get(State(state): State<Ocsp>, uri: Uri) -> Response {
    // The route is `/ocsp/{*request}`: the rest of the path is the request.
    let encoded = uri.path().strip_prefix("/ocsp/").unwrap_or_default();
    // 1. The hot path: a plain request answered before, decoded on the stack and found in the
    //    cache by its bytes.
    let cached = {
        let mut text = [0u8; INLINE_GET_TEXT];
        let mut der = [0u8; INLINE_GET_TEXT];
        percent_decode_into(encoded, &mut text)
            .and_then(|text| base64_decode_into(text, &mut der).ok())
            .and_then(|der| state.authority.va.ocsp_cached(der))
    };
    if let Some(answer) = cached {
        return ocsp_response(&state, answer);
    }
    // 2. Anything else, in buffers as long as the path (decoding only shortens it).
    let mut text = vec![0u8; encoded.len()];
    let Some(text) = percent_decode_into(encoded, &mut text) else {
        return (StatusCode::URI_TOO_LONG, "request too long\n").into_response();
    };
    if text.len() > MAX_OCSP_REQUEST * 2 {
        return (StatusCode::URI_TOO_LONG, "request too long\n").into_response();
    }
    let mut der = vec![0u8; text.len()];
    let answer = match base64_decode_into(text, &mut der) {
        Ok(der) => state.authority.va.ocsp(der).await,
        Err(_) => state.authority.va.ocsp(&[]).await,
    };
    ocsp_response(&state, answer)
}

/// An OCSP answer in HTTP: the DER, RFC 5019 §6.2's caching headers for a cacheable one, and
/// the security headers every answer carries.
fn ocsp_response(state: &Ocsp, answer: OcspAnswer) -> Response {
    let m = &state.metrics;
    match answer.outcome {
        "successful" => m.ocsp_successful.fetch_add(1, Ordering::Relaxed),
        "malformed_request" => m.ocsp_malformed.fetch_add(1, Ordering::Relaxed),
        "unauthorized" => m.ocsp_unauthorized.fetch_add(1, Ordering::Relaxed),
        _ => m.ocsp_other_errors.fetch_add(1, Ordering::Relaxed),
    };
    if answer.cached {
        m.ocsp_cached.fetch_add(1, Ordering::Relaxed);
    }
    let mut response = Response::new(Body::from(answer.body));
    let headers = response.headers_mut();
    // Room for every header below (and HSTS) at once, rather than the map growing twice.
    headers.reserve(12);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/ocsp-response"),
    );
    match answer.cacheable {
        // RFC 5019 §6.2: caching headers from thisUpdate and nextUpdate.
        Some((this_update, next_update)) => {
            let now = state.authority.now();
            let max_age = (next_update.0 - now.0).max(0);
            if let Some(v) = header_value(format_args!(
                "max-age={max_age}, public, no-transform, must-revalidate"
            )) {
                headers.insert(header::CACHE_CONTROL, v);
            }
            for (name, at) in [
                (header::LAST_MODIFIED, this_update),
                (header::EXPIRES, next_update),
            ] {
                let time = std::time::UNIX_EPOCH
                    + std::time::Duration::from_secs(u64::try_from(at.0).unwrap_or(0));
                if let Some(v) = header_value(format_args!("{}", httpdate::HttpDate::from(time))) {
                    headers.insert(name, v);
                }
            }
            // Any value that changes with the bytes will do: their fingerprint, taken once
            // when they were signed.
            if let Some(v) = header_value(format_args!("\"{:016x}\"", answer.fingerprint)) {
                headers.insert(header::ETAG, v);
            }
        }
        None => {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
    add_security_headers(headers);
    response
}

/// A header value written on the stack and copied once (the values above are under 64 bytes).
fn header_value(text: std::fmt::Arguments<'_>) -> Option<HeaderValue> {
    let mut buffer = [0u8; 64];
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    std::io::Write::write_fmt(&mut cursor, text).ok()?;
    let length = usize::try_from(cursor.position()).ok()?;
    HeaderValue::from_bytes(buffer.get(..length)?).ok()
}
