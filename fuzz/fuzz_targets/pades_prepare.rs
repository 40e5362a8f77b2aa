//! Fuzzes `pades::prepare` (the PDF reader and the incremental writer) with arbitrary bytes as
//! the PDF to sign. It must never panic, and every input it accepts must give an increment
//! that starts with the input, survives `Prepared::to_bytes`/`from_bytes`, finishes with a
//! valid signature value and reads back for a DSS revision (`pades::add_dss`).
//!
//! The signer is fixed: `fuzz/data/pades_signer.der` is a self-signed P-256 certificate for
//! the private scalar 0x0707…07 (made once with Python `cryptography`; see fuzz/README.md).

#![no_main]

use libfuzzer_sys::fuzz_target;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{Signature, SigningKey};
use pades::{Prepared, SignatureAlgorithm};

/// The certificate of the fixed test key.
const SIGNER_CERTIFICATE: &[u8] = include_bytes!("../data/pades_signer.der");

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::from_slice(&[7u8; 32]).expect("a valid P-256 scalar");
    let chain = [SIGNER_CERTIFICATE.to_vec()];
    let Ok(prepared) = pades::prepare(data, &chain, SignatureAlgorithm::EcdsaSha256, 1_764_040_668, "Signature1") else {
        return;
    };
    let restored = Prepared::from_bytes(&prepared.to_bytes()).expect("a prepared state must read back");
    assert_eq!(restored, prepared);
    let signature: Signature = key.sign_prehash(&prepared.hash_to_sign()).expect("signing");
    let signed = pades::finish(&prepared, signature.to_der().as_bytes(), None).expect("finish must accept a valid signature");
    assert!(signed.starts_with(data), "the input bytes changed");
    let with_dss = pades::add_dss(&signed, &chain, &[], &[]).expect("a signed output must take a DSS revision");
    assert!(with_dss.starts_with(&signed));
});
