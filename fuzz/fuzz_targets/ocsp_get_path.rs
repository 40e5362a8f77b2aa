//! Fuzzes the GET form of OCSP (RFC 6960 Appendix A.1): the input is the request path after
//! `/ocsp/` as it arrives (percent-encoded), holding the base64 of the DER request. It is
//! decoded the way the server decodes it, then given to `pki::ocsp::parse_request`: nothing
//! may panic, and an accepted request must satisfy `eidportal_fuzz::assert_request_invariants`.

#![no_main]

use libfuzzer_sys::fuzz_target;

/// `crates/server/src/http.rs` `MAX_OCSP_REQUEST`.
const MAX_OCSP_REQUEST: usize = 8 * 1024;

/// The DER bytes the server hands to `Va::ocsp` for this path, or `None` when it answers
/// without looking (414 URI Too Long).
///
/// MIRRORS `ocsp_get`, `percent_decode_into` and `base64_decode_into` in
/// `crates/server/src/http.rs` (its slow path: the cached one decodes the same way into a
/// smaller buffer); keep them in step. Copied rather than called because the server crate
/// (axum, sqlx, tokio, PKCS#11) is too heavy to build with sanitizers for fuzzing.
fn der_of_path(encoded: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    // Percent-decoded to bytes; some clients leave `+` as a space; leading slashes dropped.
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(encoded)
        .map(|byte| if byte == b' ' { b'+' } else { byte })
        .collect();
    let start = decoded.iter().take_while(|&&byte| byte == b'/').count();
    let text = &decoded[start..];
    if text.len() > MAX_OCSP_REQUEST * 2 {
        return None;
    }
    // The standard alphabet, else the URL-safe one without padding; not base64: an empty
    // request, which the server answers `malformedRequest`.
    let mut der = vec![0u8; text.len()];
    let decoded = match STANDARD.decode_slice(text, &mut der) {
        Err(base64::DecodeSliceError::DecodeError(_)) => {
            let end = text.len() - text.iter().rev().take_while(|&&byte| byte == b'=').count();
            URL_SAFE_NO_PAD.decode_slice(&text[..end], &mut der)
        }
        other => other,
    };
    Some(match decoded {
        Ok(length) => der[..length].to_vec(),
        Err(_) => Vec::new(),
    })
}

fuzz_target!(|data: &[u8]| {
    // A request's path is text (the URI); what it percent-decodes to need not be.
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let Some(der) = der_of_path(path) else {
        return;
    };
    if let Ok(parsed) = pki::ocsp::parse_request(&der) {
        eidportal_fuzz::assert_request_invariants(&parsed);
    }
});
