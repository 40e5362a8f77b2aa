//! The VA's own contract, on a temporary store: a revocation is in the next OCSP answer and in
//! the CRL at once, a certificate is revoked once only, and answers signed by a responder that
//! was replaced are not served again.

use der::{Decode, Encode};
use x509_cert::crl::CertificateList;
use x509_cert::Certificate;
use x509_ocsp::TbsRequest;
use x509_ocsp::{BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, Request};

use domain::{RevocationReason, Serial};
use store::CertificateQueries as _;

use crate::test_support::{authorities, authorities_with, person, TestAuthority};
use crate::{CaName, OcspAnswer};

/// A nonce-less OCSP request about `serial` of the qualified CA (RFC 6960 §4.1.1, SHA-1 CertID).
fn ocsp_request(t: &TestAuthority, serial: &Serial) -> Vec<u8> {
    let issuer = Certificate::from_der(&t.ca.ca_certificate(CaName::Qualified).unwrap().0).unwrap();
    let hashes = pki::ocsp::IssuerHashes::of(&issuer).unwrap();
    let request = OcspRequest {
        tbs_request: TbsRequest {
            version: Default::default(),
            requestor_name: None,
            request_list: vec![Request {
                req_cert: CertId {
                    hash_algorithm: spki::AlgorithmIdentifierOwned {
                        oid: pki::oids::SHA1,
                        parameters: Some(der::Any::from(der::asn1::Null)),
                    },
                    issuer_name_hash: der::asn1::OctetString::new(hashes.sha1_name).unwrap(),
                    issuer_key_hash: der::asn1::OctetString::new(hashes.sha1_key).unwrap(),
                    serial_number: x509_cert::serial_number::SerialNumber::new(serial.as_bytes())
                        .unwrap(),
                },
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    };
    request.to_der().unwrap()
}

async fn ask(t: &TestAuthority, serial: &Serial) -> (CertStatus, OcspAnswer) {
    let answer = t.va.ocsp(&ocsp_request(t, serial)).await;
    assert_eq!(answer.outcome, "successful", "{}", t.name);
    let (statuses, _) = pki::ocsp::read_response(&answer.body).unwrap();
    (statuses[0], answer)
}

/// The certificate of the responder that signed an answer (RFC 6960 §4.2.1 `certs`).
fn responder_of(answer: &OcspAnswer) -> Vec<u8> {
    let response = OcspResponse::from_der(&answer.body).unwrap();
    let basic =
        BasicOcspResponse::from_der(response.response_bytes.unwrap().response.as_bytes()).unwrap();
    basic.certs.unwrap()[0].to_der().unwrap()
}

fn crl_serials(der: &[u8]) -> Vec<Vec<u8>> {
    CertificateList::from_der(der)
        .unwrap()
        .tbs_cert_list
        .revoked_certificates
        .unwrap_or_default()
        .iter()
        .map(|r| r.serial_number.as_bytes().to_vec())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_is_in_ocsp_and_the_crl_at_once_and_happens_once() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let issued =
            t.ca.issue_cloud_certificate(&person(), Some("petar@example.rs"), "test")
                .await
                .unwrap();
        let other =
            t.ca.issue_cloud_certificate(&person(), Some("jovana@example.rs"), "test")
                .await
                .unwrap();
        let (status, _) = ask(&t, &issued.serial).await;
        assert_eq!(status, CertStatus::good(), "{name}");
        let (_, answer) = ask(&t, &issued.serial).await;
        assert!(
            answer.cached,
            "{name}: the second answer comes from the cache"
        );
        assert!(crl_serials(&t.va.crl(CaName::Qualified).await.unwrap()).is_empty());

        t.va.revoke(&issued.serial, RevocationReason::KeyCompromise, "officer")
            .await
            .unwrap();
        let (status, answer) = ask(&t, &issued.serial).await;
        assert!(!answer.cached, "{name}: the cached good answer is gone");
        match status {
            CertStatus::Revoked(info) => assert_eq!(
                info.revocation_reason,
                Some(x509_cert::ext::pkix::CrlReason::KeyCompromise),
                "{name}"
            ),
            other => panic!("{name}: expected revoked, got {other:?}"),
        }
        assert_eq!(
            ask(&t, &other.serial).await.0,
            CertStatus::good(),
            "{name}: only the one revoked"
        );
        let crl = t.va.crl(CaName::Qualified).await.unwrap();
        assert_eq!(
            crl_serials(&crl),
            vec![issued.serial.as_bytes().to_vec()],
            "{name}"
        );
        // Its key is destroyed with it (a software key: the record is its only copy).
        assert!(
            t.ca.open_key(issued.key_id.as_ref().unwrap())
                .await
                .is_err(),
            "{name}: the revoked certificate's key"
        );

        // A second revocation is refused and changes nothing: not the reason, not the CRL,
        // not the log.
        let audit = t.audit_len().await;
        assert!(
            matches!(
                t.va.revoke(&issued.serial, RevocationReason::Superseded, "officer")
                    .await,
                Err(crate::Error::Refused(_))
            ),
            "{name}"
        );
        assert_eq!(t.va.crl(CaName::Qualified).await.unwrap(), crl, "{name}");
        assert_eq!(t.audit_len().await, audit, "{name}");
        let record = t.store.certificate(&issued.serial).await.unwrap().unwrap();
        assert_eq!(
            record.revocation.map(|(_, reason)| reason),
            Some(RevocationReason::KeyCompromise),
            "{name}"
        );
        // An unknown serial is no revocation either.
        assert!(matches!(
            t.va.revoke(
                &crate::ca::random_serial(),
                RevocationReason::Unspecified,
                "officer"
            )
            .await,
            Err(crate::Error::UnknownSerial(_))
        ));
        assert_eq!(t.va.crl(CaName::Qualified).await.unwrap(), crl, "{name}");
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_of_a_replaced_responder_are_not_served_again() {
    let dir = tempfile::tempdir().unwrap();
    // The OCSP signer is due for renewal a minute after it is made; answers live 4 hours.
    let signer_lifetime = domain::OcspSchedule::default().signer_lifetime;
    for t in authorities_with(dir.path(), |settings| {
        settings.ocsp.signer_renew_margin = signer_lifetime - 60;
    })
    .await
    {
        let name = t.name;
        let issued =
            t.ca.issue_cloud_certificate(&person(), Some("petar@example.rs"), "test")
                .await
                .unwrap();
        let (_, first) = ask(&t, &issued.serial).await;
        let (_, again) = ask(&t, &issued.serial).await;
        assert!(again.cached, "{name}");
        assert_eq!(responder_of(&again), responder_of(&first), "{name}");

        t.clock.advance(120);
        let (_, still) = ask(&t, &issued.serial).await;
        assert!(still.cached, "{name}: the answer is still fresh");
        // The upkeep renews the responder; the VA forgets what the old one signed.
        t.maintain().await.unwrap();
        let (entries, _) = t.va.ocsp_cache_size();
        assert_eq!(entries, 0, "{name}: the cache is empty");
        let (status, renewed) = ask(&t, &issued.serial).await;
        assert_eq!(status, CertStatus::good(), "{name}");
        assert!(!renewed.cached, "{name}: signed anew");
        let current = t.ca.ca(CaName::Qualified).unwrap();
        let (responder, _) = current.responder.as_ref().unwrap();
        assert_eq!(
            responder_of(&renewed),
            responder.to_der().unwrap(),
            "{name}"
        );
        assert_ne!(
            responder_of(&renewed),
            responder_of(&first),
            "{name}: by the new responder"
        );

        // forget_answers alone drops every cached answer.
        let (_, cached) = ask(&t, &issued.serial).await;
        assert!(cached.cached, "{name}");
        t.va.forget_answers();
        assert_eq!(t.va.ocsp_cache_size().0, 0, "{name}");
        assert!(!ask(&t, &issued.serial).await.1.cached, "{name}");
        t.close().await;
    }
}

/// The cache is keyed by the plain request (one CertID, nothing else): whichever form of a
/// request was answered first, the plain one then finds the answer by its bytes alone
/// (`ocsp_cached`, the HTTP hot path), and the same CertID with a nonce never does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_request_finds_the_cached_answer_by_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let issued =
            t.ca.issue_cloud_certificate(&person(), Some("petar@example.rs"), "test")
                .await
                .unwrap();
        let plain = ocsp_request(&t, &issued.serial);
        assert!(
            t.va.ocsp_cached(&plain).is_none(),
            "{name}: nothing asked yet"
        );

        // First asked with an extension the responder ignores: not the plain form.
        let mut padded = OcspRequest::from_der(&plain).unwrap();
        padded.tbs_request.request_extensions = Some(vec![x509_cert::ext::Extension {
            extn_id: der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.55016.99.1"),
            critical: false,
            extn_value: der::asn1::OctetString::new(vec![0x5a; 16]).unwrap(),
        }]);
        let padded = padded.to_der().unwrap();
        let signed = t.va.ocsp(&padded).await;
        assert!(!signed.cached, "{name}");
        assert!(
            t.va.ocsp_cached(&padded).is_none(),
            "{name}: not found by other bytes"
        );

        let cached =
            t.va.ocsp_cached(&plain)
                .expect("the plain request finds it");
        assert!(cached.cached, "{name}");
        assert_eq!(cached.body, signed.body, "{name}: the same answer");
        assert_eq!(cached.fingerprint, signed.fingerprint, "{name}");
        assert_eq!(cached.cacheable, signed.cacheable, "{name}");

        // With a nonce: signed anew and echoing it, never the cached answer.
        let mut with_nonce = OcspRequest::from_der(&plain).unwrap();
        with_nonce.tbs_request.request_extensions = Some(vec![x509_cert::ext::Extension {
            extn_id: pki::oids::OCSP_NONCE,
            critical: false,
            extn_value: der::asn1::OctetString::new(
                der::asn1::OctetString::new(vec![7u8; 16])
                    .unwrap()
                    .to_der()
                    .unwrap(),
            )
            .unwrap(),
        }]);
        let answer = t.va.ocsp(&with_nonce.to_der().unwrap()).await;
        assert!(!answer.cached, "{name}");
        let (_, nonce) = pki::ocsp::read_response(&answer.body).unwrap();
        assert_eq!(nonce, Some(vec![7u8; 16]), "{name}: the nonce is echoed");
        t.close().await;
    }
}
