//! Response headers more than one origin sends.

use axum::http::{header, HeaderMap, HeaderValue};

/// The headers both origins send on every answer: no MIME sniffing, no referrer.
pub fn no_sniffing_no_referrer(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}
