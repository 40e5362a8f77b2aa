//! The CA's own contract, on a temporary store: the profile is checked before anything is
//! signed, a certificate carries its CA's URLs, the hierarchy's certificates chain to the root,
//! and only recorded keys open.

use der::{Decode, Encode};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, CrlDistributionPoints};
use x509_cert::Certificate;

use domain::records::KeyId;
use domain::CertificateKind;
use pki::keys::PublicKeyDer;
use pki::profile::{self, CertificateRequest};
use store::CertificateQueries as _;

use crate::ca::random_serial;
use crate::test_support::{authorities, person};
use crate::CaName;

/// A public key nobody recorded: the CA certifies it, it does not hold it.
fn foreign_public_key() -> PublicKeyDer {
    let key = p256::SecretKey::random(&mut rand::rngs::OsRng);
    PublicKeyDer(proto::crypto::public_key_der(&key.public_key()))
}

/// The URIs of a certificate's Authority Information Access (sorted) and CRL Distribution
/// Points extensions (RFC 5280 §4.2.2.1, §4.2.1.13).
fn uris(certificate: &Certificate) -> (Vec<String>, Vec<String>) {
    let extensions = certificate.tbs_certificate.extensions.clone().unwrap();
    let mut aia = Vec::new();
    let mut crl = Vec::new();
    for extension in extensions {
        if extension.extn_id == const_oid::db::rfc5280::ID_PE_AUTHORITY_INFO_ACCESS {
            let access =
                AuthorityInfoAccessSyntax::from_der(extension.extn_value.as_bytes()).unwrap();
            for description in access.0 {
                if let GeneralName::UniformResourceIdentifier(uri) = description.access_location {
                    aia.push(uri.to_string());
                }
            }
        }
        if extension.extn_id == const_oid::db::rfc5280::ID_CE_CRL_DISTRIBUTION_POINTS {
            let points = CrlDistributionPoints::from_der(extension.extn_value.as_bytes()).unwrap();
            for point in points.0 {
                if let Some(DistributionPointName::FullName(names)) = point.distribution_point {
                    for name in names {
                        if let GeneralName::UniformResourceIdentifier(uri) = name {
                            crl.push(uri.to_string());
                        }
                    }
                }
            }
        }
    }
    aia.sort();
    (aia, crl)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_outside_the_profile_is_refused_and_one_inside_carries_the_cas_urls() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let ca = &t.ca;
        let issuer =
            Certificate::from_der(&ca.ca_certificate(CaName::Qualified).unwrap().0).unwrap();
        let issuer_not_after = profile::unix_time(&issuer.tbs_certificate.validity.not_after);
        let public_key = foreign_public_key();
        let now = t.now();
        let certificates_before = t.store.certificates(None).await.unwrap().len();
        let audit_before = t.audit_len().await;

        let serial = random_serial();
        let subject = person().name().unwrap();
        let request = |not_before, not_after| CertificateRequest {
            kind: CertificateKind::CloudSigning,
            serial,
            subject: subject.clone(),
            public_key: &public_key,
            not_before,
            not_after,
        };
        // Outliving the issuing CA breaks the profile (RFC 5280 §6.1.3 would reject the path).
        assert!(
            ca.sign_certificate(
                CaName::Qualified,
                &request(now, issuer_not_after.plus_seconds(1))
            )
            .is_err(),
            "{name}: a certificate outliving its CA"
        );
        // A validity that ends before it begins, too.
        assert!(
            ca.sign_certificate(CaName::Qualified, &request(now, now.plus_seconds(-1)))
                .is_err(),
            "{name}: a validity that ends before it begins"
        );
        assert_eq!(
            t.store.certificates(None).await.unwrap().len(),
            certificates_before,
            "{name}: a refused request stores nothing"
        );
        assert_eq!(t.audit_len().await, audit_before, "{name}: nor audits");

        // One that fits is signed by the qualified CA and points at its URLs.
        let fits = request(now, ca.cloud_not_after(now));
        let der = ca.sign_certificate(CaName::Qualified, &fits).unwrap();
        let certificate = Certificate::from_der(&der.0).unwrap();
        assert_eq!(
            certificate.tbs_certificate.issuer, issuer.tbs_certificate.subject,
            "{name}"
        );
        assert_eq!(
            certificate.tbs_certificate.serial_number.as_bytes(),
            fits.serial.as_bytes(),
            "{name}: the reserved serial"
        );
        assert_eq!(
            certificate
                .tbs_certificate
                .subject_public_key_info
                .to_der()
                .unwrap(),
            public_key.0,
            "{name}: the requested key"
        );
        let (aia, crl) = uris(&certificate);
        assert_eq!(
            aia,
            vec![
                "http://127.0.0.1:8080/ocsp".to_owned(),
                "http://127.0.0.1:8080/pki/qualified-ca.crt".to_owned(),
            ],
            "{name}: AIA"
        );
        assert_eq!(
            crl,
            vec!["http://127.0.0.1:8080/pki/qualified-ca.crl".to_owned()],
            "{name}: CRL DP"
        );
        // Its signature is the qualified CA's.
        pki::verify::verify_signature(
            &PublicKeyDer(
                issuer
                    .tbs_certificate
                    .subject_public_key_info
                    .to_der()
                    .unwrap(),
            ),
            &certificate.tbs_certificate.to_der().unwrap(),
            certificate.signature.raw_bytes(),
        )
        .unwrap();
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_ca_certificate_names_its_ca_and_chains_to_the_root() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let parse = |ca| Certificate::from_der(&t.ca.ca_certificate(ca).unwrap().0).unwrap();
        let root = parse(CaName::Root);
        assert_eq!(
            root.tbs_certificate.issuer, root.tbs_certificate.subject,
            "{name}: the root is self-issued"
        );
        for ca in CaName::ALL {
            let certificate = parse(ca);
            let expected = t.settings().ca_name(ca).common_name;
            assert!(
                pki::profile::name_to_string(&certificate.tbs_certificate.subject)
                    .contains(&format!("CN={expected}")),
                "{name}: {}",
                ca.as_str()
            );
            assert_eq!(
                certificate.tbs_certificate.issuer,
                root.tbs_certificate.subject,
                "{name}: {} is issued by the root",
                ca.as_str()
            );
        }
        assert_ne!(
            parse(CaName::Qualified).tbs_certificate.subject,
            parse(CaName::ConsentId).tbs_certificate.subject,
            "{name}"
        );

        // A certificate's PEM with its chain: itself, its CA, the root, and nothing after.
        let issued =
            t.ca.issue_cloud_certificate(&person(), Some("petar@example.rs"), "test")
                .await
                .unwrap();
        let alone = t.ca.certificate_pem(&issued.serial, false).await.unwrap();
        assert_eq!(alone, issued.der.to_pem(), "{name}");
        let chain = t.ca.certificate_pem(&issued.serial, true).await.unwrap();
        assert_eq!(
            chain,
            format!(
                "{}{}{}",
                issued.der.to_pem(),
                t.ca.ca_certificate(CaName::Qualified).unwrap().to_pem(),
                t.ca.ca_certificate(CaName::Root).unwrap().to_pem()
            ),
            "{name}"
        );
        // The root's own chain is the root once.
        let root_serial =
            domain::Serial::from_integer_bytes(root.tbs_certificate.serial_number.as_bytes())
                .unwrap();
        assert_eq!(
            t.ca.certificate_pem(&root_serial, true).await.unwrap(),
            t.ca.ca_certificate(CaName::Root).unwrap().to_pem(),
            "{name}"
        );
        assert!(matches!(
            t.ca.certificate_pem(&random_serial(), true).await,
            Err(crate::Error::UnknownSerial(_))
        ));
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_recorded_key_opens() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        assert!(
            t.ca.open_key(&KeyId("no-such-key".into())).await.is_err(),
            "{name}"
        );
        assert!(
            t.ca.open_key(&crate::ca::keys::random_key_id())
                .await
                .is_err(),
            "{name}"
        );
        // A cloud certificate's key, once recorded, opens and is the certified one.
        let issued =
            t.ca.issue_cloud_certificate(&person(), Some("petar@example.rs"), "test")
                .await
                .unwrap();
        let signer =
            t.ca.open_key(issued.key_id.as_ref().unwrap())
                .await
                .unwrap();
        let certificate = Certificate::from_der(&issued.der.0).unwrap();
        pki::profile::check_key_matches(&certificate, signer.as_ref(), "the cloud key").unwrap();
        t.close().await;
    }
}
