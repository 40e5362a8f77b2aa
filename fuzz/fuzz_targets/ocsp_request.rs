//! Fuzzes `pki::ocsp::parse_request` with arbitrary bytes as the DER body of an OCSP POST
//! (RFC 6960 Appendix A.1): it must never panic, and every request it accepts must satisfy
//! `eidportal_fuzz::assert_request_invariants` (1 to 16 CertIDs, a nonce of 1 to 32 octets,
//! each `plain_request_der` asking about its `cert_id` alone).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = pki::ocsp::parse_request(data) {
        eidportal_fuzz::assert_request_invariants(&parsed);
    }
});
