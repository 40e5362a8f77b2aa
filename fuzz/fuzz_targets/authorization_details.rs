//! Fuzzes `domain::oidc::parse_authorization_details`: a service's RFC 9396
//! `authorization_details` (a form or query parameter of the PAR and authorization endpoints).
//!
//! Input: lossy UTF-8 text. Invariants: nothing panics; whatever parses is one transaction of
//! display text the phone can show unchanged, and the array given back to the service parses
//! again to the same transaction.

#![no_main]

use domain::oidc::{approval_text_ok, parse_authorization_details, TRANSACTION_TEXT_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(details) = parse_authorization_details(&text) {
        assert!(approval_text_ok(&details.text, TRANSACTION_TEXT_MAX), "{text:?}");
        let given_back = details.authorization_details().to_string();
        assert_eq!(parse_authorization_details(&given_back), Ok(details), "{text:?}");
    }
});
