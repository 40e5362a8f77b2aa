//! Fuzzes `pki::tsa::parse_request` with arbitrary bytes as the DER body of `POST /tsa`
//! (RFC 3161 §3.4): it must never panic; a refused request must make a rejection that reads
//! back with its failure bit; an accepted one must satisfy
//! `eidportal_fuzz::assert_tsa_request_invariants` and be granted a token that verifies and
//! carries the request's imprint and nonce unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match pki::tsa::parse_request(data, &eidportal_fuzz::TSA_POLICY) {
        Ok(request) => {
            eidportal_fuzz::assert_tsa_request_invariants(data, &request);
            eidportal_fuzz::assert_tsa_grant(data, &request);
        }
        Err(failure) => eidportal_fuzz::assert_tsa_rejection(failure),
    }
});
