//! Checks shared by the fuzz targets: the invariants that every request accepted by
//! `pki::ocsp::parse_request` must satisfy, whichever way its bytes arrived (POST body or GET
//! path, RFC 6960 Appendix A.1); and for `pki::tsa::parse_request` (RFC 3161), the same for
//! accepted requests plus a granted token that verifies, or a rejection that reads back.

use der::Decode;
use pki::ocsp::{CertIdHash, ParsedRequest, MAX_REQUESTS};
use x509_ocsp::OcspRequest;

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
        // The plain request is the cache key; its answer repeats its CertID (RFC 6960 §4.2.1),
        // so it must ask about the very CertID the client sent, and nothing else.
        let plain = OcspRequest::from_der(&query.plain_request_der)
            .unwrap_or_else(|error| panic!("plain_request_der does not decode: {error}"));
        let [single] = plain.tbs_request.request_list.as_slice() else {
            panic!("plain_request_der asks about {} CertIDs", plain.tbs_request.request_list.len());
        };
        assert_eq!(single.req_cert, query.cert_id, "plain_request_der asks about another CertID");
        assert!(
            single.single_request_extensions.is_none()
                && plain.tbs_request.request_extensions.is_none()
                && plain.tbs_request.requestor_name.is_none()
                && plain.optional_signature.is_none(),
            "plain_request_der carries more than the CertID"
        );
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

/// The policy the fuzzed TSA accepts (the default of `authority::Settings`).
pub const TSA_POLICY: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.55016.1.3.1");

/// Panics if a request accepted by `pki::tsa::parse_request` breaks what the responder relies
/// on: a digest of its algorithm's length, a bounded nonce, and imprint and nonce encodings that
/// are the very bytes the client sent (they are copied into the token).
pub fn assert_tsa_request_invariants(data: &[u8], request: &pki::tsa::TimeStampRequest) {
    use der::Encode;
    let hashed = request.message_imprint.hashed_message.as_bytes();
    assert_eq!(hashed.len(), request.hash.length(), "accepted a {}-octet {} digest", hashed.len(), request.hash.as_str());
    let contains = |needle: &[u8]| data.windows(needle.len()).any(|w| w == needle);
    let imprint = request.message_imprint.to_der().unwrap_or_else(|error| panic!("imprint does not encode: {error}"));
    assert!(contains(&imprint), "the imprint re-encodes to bytes the request does not hold");
    if let Some(nonce) = &request.nonce {
        assert!(nonce.as_bytes().len() <= pki::tsa::MAX_NONCE_OCTETS, "accepted a nonce of {} octets", nonce.as_bytes().len());
        let encoded = nonce.to_der().unwrap_or_else(|error| panic!("nonce does not encode: {error}"));
        assert!(contains(&encoded), "the nonce re-encodes to bytes the request does not hold");
    }
}

/// A throw-away CA and TSA certificate (software P-256 keys), made once per process.
struct TsaFixture {
    certificate: x509_cert::Certificate,
    issuer: x509_cert::Certificate,
    signer: std::sync::Arc<dyn pki::KeySigner>,
}

fn tsa_fixture() -> &'static TsaFixture {
    static FIXTURE: std::sync::OnceLock<TsaFixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        use domain::{CertificateKind, Serial, UnixTime};
        use pki::profile::{self, CertificateRequest, Issuer, IssuerUrls, OrganizationName, ProviderPolicy};
        use pki::{KeyAlgorithm, KeyBackend, MasterKey, SoftwareKeyBackend};
        let backend = SoftwareKeyBackend::new(MasterKey::generate());
        let policy = ProviderPolicy {
            qualified_policy: der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.55016.1.2.1"),
            device_policy: der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.55016.1.2.2"),
            timestamp_policy: TSA_POLICY,
            cps_url: "http://fuzz.invalid/cps".into(),
            pds: vec![],
            retention_years: 10,
        };
        let name = |cn: &str| {
            OrganizationName {
                country: "RS".into(),
                organization: "eidportal fuzz".into(),
                organization_identifier: "VATRS-000000000".into(),
                common_name: cn.into(),
            }
            .name()
            .expect("name")
        };
        let now = UnixTime(1_795_577_673);
        let ca_key = backend.generate("ca", KeyAlgorithm::EcdsaP256).expect("CA key");
        let ca_signer = backend.open(&ca_key.reference).expect("open CA key");
        let request = CertificateRequest {
            kind: CertificateKind::RootCa,
            serial: Serial::from_random([1; 16]),
            subject: name("Fuzz CA"),
            public_key: &ca_key.public_key,
            not_before: now,
            not_after: now.plus_calendar_years(20),
        };
        let self_issuer = Issuer {
            name: name("Fuzz CA"),
            key_identifier: Vec::new(),
            not_after: request.not_after,
            urls: None,
            signer: ca_signer.as_ref(),
        };
        let issuer = profile::issue(&request, &self_issuer, &policy).expect("CA").parse().expect("parse CA");
        let tsa_key = backend.generate("tsa", KeyAlgorithm::EcdsaP256).expect("TSA key");
        let urls = IssuerUrls {
            ocsp: "http://fuzz.invalid/ocsp".into(),
            ca_issuers: "http://fuzz.invalid/ca.crt".into(),
            crl: "http://fuzz.invalid/ca.crl".into(),
        };
        let request = CertificateRequest {
            kind: CertificateKind::TimeStamping,
            serial: Serial::from_random([2; 16]),
            subject: name("Fuzz TSA"),
            public_key: &tsa_key.public_key,
            not_before: now,
            not_after: now.plus_calendar_years(5),
        };
        let ca = Issuer::from_certificate(&issuer, Some(urls), ca_signer.as_ref()).expect("issuer");
        let certificate = profile::issue(&request, &ca, &policy).expect("TSA").parse().expect("parse TSA");
        TsaFixture { certificate, issuer, signer: backend.open(&tsa_key.reference).expect("open TSA key") }
    })
}

/// Grants an accepted request and panics unless the token verifies against the TSA
/// certificate and carries the request's imprint and nonce (RFC 3161 §2.4.2).
pub fn assert_tsa_grant(data: &[u8], request: &pki::tsa::TimeStampRequest) {
    let fixture = tsa_fixture();
    let issuers = [fixture.issuer.clone()];
    let unit = pki::tsa::TimeStampUnit {
        certificate: &fixture.certificate,
        issuers: &issuers,
        signer: fixture.signer.as_ref(),
        policy: TSA_POLICY,
    };
    // Any 16 octets will do for a serial: take them from the input.
    let mut serial = [0x5au8; 16];
    for (slot, byte) in serial.iter_mut().zip(data.iter().rev()) {
        *slot = *byte;
    }
    let serial = domain::Serial::from_random(serial);
    let at = domain::UnixTime(1_795_577_700);
    let response = pki::tsa::grant(&unit, request, &serial, at).unwrap_or_else(|error| panic!("grant failed: {error}"));
    let read = pki::tsa::read_response(&response).unwrap_or_else(|error| panic!("our response does not read: {error}"));
    assert_eq!((read.status, read.failure), (0, None));
    let token = read.token.as_deref().unwrap_or_else(|| panic!("granted without a token"));
    let tst = pki::tsa::verify_token(token, &fixture.certificate).unwrap_or_else(|error| panic!("token does not verify: {error}"));
    assert_eq!(tst.message_imprint, request.message_imprint, "imprint changed");
    assert_eq!(tst.nonce, request.nonce, "nonce changed");
    assert_eq!(tst.serial_number.as_bytes(), serial.as_bytes());
    assert_eq!(tst.policy, TSA_POLICY);
}

/// Panics unless the rejection for `failure` reads back as status 2 with that failure bit.
pub fn assert_tsa_rejection(failure: pki::tsa::FailureInfo) {
    let read = pki::tsa::read_response(&pki::tsa::rejection(failure, Some(&failure.to_string())))
        .unwrap_or_else(|error| panic!("our rejection does not read: {error}"));
    assert_eq!((read.status, read.failure, read.token), (2, Some(failure), None));
}
