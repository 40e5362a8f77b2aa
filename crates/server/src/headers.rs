//! Response headers more than one origin sends, and the portal pages' content security policy.

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;

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

/// The content security policy of every page: no inline script or style, no framing, forms
/// only to ourselves (see [`csp_with_form_target`]).
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// The policy of a page whose form leads on to `target`, a service's registered redirect URI
/// (a consent or logout page): browsers apply `form-action` to the redirects that follow a
/// submission too, so the service's origin must be named. `None` for a URI without a plain
/// origin.
fn csp_with_form_target(target: &str) -> Option<HeaderValue> {
    let origin = url::Url::parse(target).ok()?.origin();
    if !origin.is_tuple() {
        return None;
    }
    let policy = CSP.replace(
        "form-action 'self'",
        &format!("form-action 'self' {}", origin.ascii_serialization()),
    );
    HeaderValue::from_str(&policy).ok()
}

/// `response`, a page whose form leads on to `target`, under [`csp_with_form_target`]'s policy.
pub fn allowing_form_target(mut response: Response, target: &str) -> Response {
    if let Some(policy) = csp_with_form_target(target) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}
