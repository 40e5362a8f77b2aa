//! Fuzzes the GET form of OCSP (RFC 6960 Appendix A.1): the input is the request path after
//! `/ocsp/`, already percent-decoded, holding the base64 of the DER request. It is decoded the
//! way the server decodes it, then given to `pki::ocsp::parse_request`: nothing may panic, and
//! an accepted request must satisfy `eidportal_fuzz::assert_request_invariants`.

#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

/// `crates/server/src/http.rs` `MAX_OCSP_REQUEST`.
const MAX_OCSP_REQUEST: usize = 8 * 1024;

/// The DER bytes the server hands to `Authority::ocsp` for this path, or `None` when it answers
/// without looking (414 URI Too Long).
///
/// MIRRORS `ocsp_get` in `crates/server/src/http.rs`; keep the two in step. Copied rather than
/// called because the server crate (axum, sqlx, tokio, PKCS#11) is too heavy to build with
/// sanitizers for fuzzing.
fn der_of_path(encoded: &str) -> Option<Vec<u8>> {
    // Some clients leave `+` as a space or use the URL-safe alphabet; accept both.
    let cleaned: String = encoded.trim_start_matches('/').chars().map(|c| if c == ' ' { '+' } else { c }).collect();
    if cleaned.len() > MAX_OCSP_REQUEST * 2 {
        return None;
    }
    let standard = base64::engine::general_purpose::STANDARD.decode(cleaned.as_bytes());
    let der = match standard {
        Ok(der) => der,
        Err(_) => match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cleaned.trim_end_matches('=').as_bytes()) {
            Ok(der) => der,
            // The server answers `malformedRequest` by parsing an empty request.
            Err(_) => Vec::new(),
        },
    };
    Some(der)
}

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        // axum's `Path<String>` refuses a path that does not percent-decode to UTF-8.
        return;
    };
    let Some(der) = der_of_path(path) else {
        return;
    };
    if let Ok(parsed) = pki::ocsp::parse_request(&der) {
        eidportal_fuzz::assert_request_invariants(&parsed);
    }
});
