//! Checks shared by the fuzz targets: the invariants that every request accepted by
//! `pki::ocsp::parse_request` must satisfy, whichever way its bytes arrived (POST body or GET
//! path, RFC 6960 Appendix A.1).

use der::Decode;
use pki::ocsp::{CertIdHash, ParsedRequest, MAX_REQUESTS};
use x509_ocsp::CertId;

/// Panics (a libFuzzer finding) if an accepted request breaks an invariant the responder relies
/// on.
pub fn assert_request_invariants(parsed: &ParsedRequest) {
    // 1 to 16 CertIDs (the limit is ours; RFC 6960 §4.1.1 allows any number).
    assert!(
        (1..=MAX_REQUESTS).contains(&parsed.queries.len()),
        "accepted a request with {} CertIDs",
        parsed.queries.len()
    );
    // RFC 8954 §2.1: a nonce of 1 to 32 octets.
    if let Some(nonce) = &parsed.nonce {
        assert!((1..=32).contains(&nonce.len()), "accepted a nonce of {} octets", nonce.len());
    }
    for query in &parsed.queries {
        // The DER is the cache key and is what the response repeats (RFC 6960 §4.2.1): it must
        // decode to the very CertID the client sent.
        let decoded = CertId::from_der(&query.cert_id_der)
            .unwrap_or_else(|error| panic!("cert_id_der does not decode: {error}"));
        assert_eq!(decoded, query.cert_id, "cert_id_der decodes to another CertID");
        // The hashes have the length of the algorithm the query claims.
        let length = match query.hash {
            CertIdHash::Sha1 => 20,
            CertIdHash::Sha256 => 32,
        };
        assert_eq!(query.cert_id.issuer_name_hash.as_bytes().len(), length, "issuerNameHash length");
        assert_eq!(query.cert_id.issuer_key_hash.as_bytes().len(), length, "issuerKeyHash length");
        // A serial of ours is the INTEGER's 16 octets, after at most one leading zero.
        if let Some(serial) = query.serial {
            let integer = query.cert_id.serial_number.as_bytes();
            let tail = integer.len().checked_sub(16).and_then(|start| integer.get(start..));
            assert_eq!(tail, Some(&serial.as_bytes()[..]), "serial is not the INTEGER's last 16 octets");
            assert!(
                integer.len() == 16 || (integer.len() == 17 && integer.first() == Some(&0)),
                "serial taken from a {}-octet INTEGER",
                integer.len()
            );
        }
    }
}
