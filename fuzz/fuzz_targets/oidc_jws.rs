//! Fuzzes the OpenID provider's JOSE parsing (`authority::oidc::jose`): a DPoP proof
//! (RFC 9449) from any client, a client assertion (RFC 7523) against a registered JWKS, and a
//! JWKS an operator registers.
//!
//! Input: the first byte picks the parser; the rest is the text. Invariants: nothing panics;
//! the answer is the same twice; an accepted DPoP proof has a 43-character base64url key
//! thumbprint and an allowed algorithm; a client assertion signed by no key of the fixed JWKS
//! is never accepted (the fuzzer has no private key).

#![no_main]

use authority::oidc::jose::{check_client_jwks, verify_client_assertion, verify_dpop_proof};
use libfuzzer_sys::fuzz_target;

/// A registered client's JWKS (one P-256 key; its private half is nowhere).
const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"rp-1","x":"vtL7O6AO61IJraB_3RqaaeVszmbC7_n_HZkaufmvRQM","y":"dqeGU6dnE68G9qa8wp3NAMeyFXDEMjaGX5zxy6cjkdw"}]}"#;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match which % 3 {
        0 => {
            let answer = verify_dpop_proof(text);
            assert_eq!(answer, verify_dpop_proof(text), "not deterministic");
            if let Ok((proof, jkt)) = answer {
                assert_eq!(jkt.len(), 43, "{jkt:?}");
                assert!(domain::oidc::ALLOWED_ALGORITHMS.contains(&proof.alg.as_str()));
            }
        }
        1 => {
            let answer = verify_client_assertion(text, JWKS, "client", &["https://eid.example"], 0);
            assert!(answer.is_err(), "an assertion nobody could sign was accepted");
        }
        _ => {
            assert_eq!(check_client_jwks(text), check_client_jwks(text), "not deterministic");
        }
    }
});
