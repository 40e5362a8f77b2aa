//! Fuzzes the CSC API's request parsing and validation (`csc` crate), exactly as the server runs
//! it on untrusted bodies: every method's JSON body, then each typed request's `validate`; and
//! the OAuth 2.0 requests' checks (their fields from the input's lines).
//! None may panic; what `validate` accepts must be consistent (hash lengths match the
//! algorithm, counts within the limits, authorisations as many hashes as signatures).

#![no_main]

use csc::{
    AuthorizeCheckRequest, AuthorizeRequest, InfoRequest, ListRequest, OAuthAuthorizeQuery, OAuthTokenForm, RevokeRequest,
    SignHashRequest,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = csc::parse::<AuthorizeRequest>(data) {
        if let Ok(valid) = request.validate() {
            assert_eq!(valid.hashes.len(), valid.num_signatures);
            assert!(valid.num_signatures >= 1 && valid.num_signatures <= domain::signing::MAX_SIGNATURES);
            assert!(valid.hashes.iter().all(|h| h.len() == valid.algorithm.digest_len()));
        }
    }
    if let Ok(request) = csc::parse::<SignHashRequest>(data) {
        if let Ok(valid) = request.validate() {
            assert!(!valid.hashes.is_empty() && valid.hashes.len() <= domain::signing::MAX_SIGNATURES);
            assert!(valid.hashes.iter().all(|h| h.len() == valid.algorithm.digest_len()));
            assert!(!valid.sad.is_empty());
        }
    }
    if let Ok(request) = csc::parse::<AuthorizeCheckRequest>(data) {
        let _ = request.validate();
    }
    if let Ok(request) = csc::parse::<InfoRequest>(data) {
        let _ = csc::certificate_choice(request.certificates.as_deref());
    }
    if let Ok(request) = csc::parse::<ListRequest>(data) {
        let _ = csc::certificate_choice(request.certificates.as_deref());
    }
    let _ = csc::parse::<RevokeRequest>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = csc::decode_base64(text);
        let mut lines = text.split('\n').map(|l| Some(l.to_owned()));
        let mut next = || lines.next().flatten();
        let query = OAuthAuthorizeQuery {
            response_type: next(),
            client_id: next(),
            redirect_uri: next(),
            scope: next(),
            code_challenge: next(),
            code_challenge_method: next(),
            state: next(),
        };
        if let Ok(valid) = query.validate() {
            // A code is only ever sent to the user's own computer.
            assert!(csc::loopback_redirect(&valid.redirect_uri));
            assert!(valid.redirect_uri.starts_with("http://127.0.0.1") || valid.redirect_uri.starts_with("http://localhost") || valid.redirect_uri.starts_with("http://[::1]"));
        }
        let form = OAuthTokenForm { grant_type: next(), code: next(), redirect_uri: next(), client_id: next(), code_verifier: next() };
        let _ = form.validate();
    }
    let _ = csc::pss_hash(data);
});
