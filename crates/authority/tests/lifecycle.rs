//! The authority's use cases on every store (SQLite, PostgreSQL) and every key backend
//! (software, SoftHSM2): hierarchy bootstrap and reload, issuance, revocation with CRL and
//! OCSP, crash recovery of reserved serials, and refusal of a CA key that does not match.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use der::{Decode, Encode};
use x509_cert::crl::CertificateList;
use x509_cert::Certificate;
use x509_ocsp::{CertId, CertStatus, OcspRequest, Request, TbsRequest};

use authority::{Authority, CaName, ManualClock, Settings};
use domain::{CertificateStatus, Jmbg, RevocationReason, Serial, UnixTime};
use pki::profile::Person;
use pki::{KeyBackend, MasterKey, SoftwareKeyBackend};
use store::{AuditQueries as _, CertificateQueries as _, CertificateStore as _, Store};

/// Held by each test that uses the token: SoftHSM2 fails concurrent `C_GenerateKeyPair` calls
/// of one process now and then with `CKR_GENERAL_ERROR` (softhsm/SoftHSMv2#573), and the tests
/// of this file run on threads of one process under `cargo test`.
static TOKEN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn token_lock() -> std::sync::MutexGuard<'static, ()> {
    TOKEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The key backends to test: software always, SoftHSM2 when configured.
fn backends() -> Vec<(&'static str, Arc<dyn KeyBackend>)> {
    let mut out: Vec<(&'static str, Arc<dyn KeyBackend>)> = vec![(
        "software",
        Arc::new(SoftwareKeyBackend::new(MasterKey::generate())),
    )];
    hsm::test_support::private_token().expect("a private copy of the test token");
    match (
        std::env::var("EIDPORTAL_TEST_PKCS11_MODULE"),
        std::env::var("EIDPORTAL_TEST_PKCS11_TOKEN"),
        std::env::var("EIDPORTAL_TEST_PKCS11_PIN"),
    ) {
        (Ok(module), Ok(token), Ok(pin)) => {
            let backend = hsm::Pkcs11Backend::open(module.as_ref(), &token, hsm::Pin::new(pin))
                .expect("open the test token");
            out.push(("pkcs11", Arc::new(backend)));
        }
        _ if std::env::var_os("EIDPORTAL_TEST_REQUIRE_ALL").is_some() => {
            panic!("EIDPORTAL_TEST_PKCS11_* are not set but EIDPORTAL_TEST_REQUIRE_ALL is: run scripts/test")
        }
        _ => eprintln!(
            "note: PKCS#11 case skipped (EIDPORTAL_TEST_PKCS11_* not set; scripts/test sets them)"
        ),
    }
    out
}

fn person() -> Person {
    Person {
        given_name: "Петар".into(),
        surname: "Петровић".into(),
        jmbg: Jmbg::parse("0101990710008").unwrap(),
    }
}

const START: UnixTime = UnixTime(1_795_577_673); // 2026-11-25T03:34:33Z

async fn open(url: &str, keys: Arc<dyn KeyBackend>, clock: Arc<ManualClock>) -> Authority {
    let store = Store::connect(url).await.unwrap();
    Authority::open(store, keys, clock, Settings::new("http://127.0.0.1:8080"))
        .await
        .unwrap()
}

fn ocsp_request(issuer: &Certificate, serial: &Serial) -> Vec<u8> {
    let hashes = pki::ocsp::IssuerHashes::of(issuer).unwrap();
    let cert_id = CertId {
        hash_algorithm: spki::AlgorithmIdentifierOwned {
            oid: pki::oids::SHA1,
            parameters: Some(der::Any::from(der::asn1::Null)),
        },
        issuer_name_hash: der::asn1::OctetString::new(hashes.sha1_name).unwrap(),
        issuer_key_hash: der::asn1::OctetString::new(hashes.sha1_key).unwrap(),
        serial_number: x509_cert::serial_number::SerialNumber::new(serial.as_bytes()).unwrap(),
    };
    let request = OcspRequest {
        tbs_request: TbsRequest {
            version: Default::default(),
            requestor_name: None,
            request_list: vec![Request {
                req_cert: cert_id,
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    };
    request.to_der().unwrap()
}

async fn status(authority: &Authority, serial: &Serial) -> (CertStatus, bool) {
    let issuer =
        Certificate::from_der(&authority.ca.ca_certificate(CaName::Qualified).unwrap().0).unwrap();
    let answer = authority.va.ocsp(&ocsp_request(&issuer, serial)).await;
    assert_eq!(answer.outcome, "successful");
    let (statuses, _) = pki::ocsp::read_response(&answer.body).unwrap();
    (statuses[0], answer.cached)
}

fn crl_serials(der: &[u8]) -> Vec<Vec<u8>> {
    let crl = CertificateList::from_der(der).unwrap();
    crl.tbs_cert_list
        .revoked_certificates
        .unwrap_or_default()
        .iter()
        .map(|r| r.serial_number.as_bytes().to_vec())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock)] // the test's own future, on its own runtime
async fn issue_revoke_and_answer_on_every_store_and_backend() {
    let _token = token_lock();
    let dir = tempfile::tempdir().unwrap();
    for (backend_name, keys) in backends() {
        let sub = dir.path().join(backend_name);
        std::fs::create_dir_all(&sub).unwrap();
        for db in store::test_support::databases(&sub).await {
            let context = format!("{backend_name} on {}", db.name);
            let clock = Arc::new(ManualClock::new(START));
            let authority = open(&db.url, keys.clone(), clock.clone()).await;
            let root_before = authority.ca.ca_certificate(CaName::Root).unwrap();

            let issued = authority
                .ca
                .issue_cloud_certificate(&person(), Some("p@example.rs"), "test")
                .await
                .unwrap();
            let (first, cached) = status(&authority, &issued.serial).await;
            assert_eq!(first, CertStatus::good(), "{context}");
            assert!(!cached, "{context}: the first answer is signed");
            let (_, cached) = status(&authority, &issued.serial).await;
            assert!(cached, "{context}: the second answer comes from the cache");
            assert!(matches!(
                status(&authority, &Serial::from_random([7; 16])).await.0,
                CertStatus::Unknown(_)
            ));

            let crl_number_before = authority
                .store()
                .authority("qualified")
                .await
                .unwrap()
                .unwrap()
                .crl_number;
            authority
                .va
                .revoke(&issued.serial, RevocationReason::KeyCompromise, "test")
                .await
                .unwrap();
            let (after, cached) = status(&authority, &issued.serial).await;
            assert!(
                !cached,
                "{context}: a revocation invalidates the cached answer"
            );
            match after {
                CertStatus::Revoked(info) => assert_eq!(
                    info.revocation_reason,
                    Some(x509_cert::ext::pkix::CrlReason::KeyCompromise)
                ),
                other => panic!("{context}: expected revoked, got {other:?}"),
            }
            let crl = authority.va.crl(CaName::Qualified).await.unwrap();
            assert_eq!(
                crl_serials(&crl),
                vec![issued.serial.as_bytes().to_vec()],
                "{context}"
            );
            let record = authority
                .store()
                .authority("qualified")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                record.crl_number,
                crl_number_before + 1,
                "{context}: CRL number increases"
            );
            // Revoking twice is refused and changes nothing.
            assert!(authority
                .va
                .revoke(&issued.serial, RevocationReason::Superseded, "test")
                .await
                .is_err());
            assert_eq!(
                authority
                    .store()
                    .authority("qualified")
                    .await
                    .unwrap()
                    .unwrap()
                    .crl_number,
                record.crl_number
            );

            // The CRL is re-issued before its nextUpdate.
            clock.advance(13 * 3600);
            authority.maintain().await.unwrap();
            assert!(
                authority
                    .store()
                    .authority("qualified")
                    .await
                    .unwrap()
                    .unwrap()
                    .crl_number
                    > record.crl_number
            );

            // A restart reuses the hierarchy.
            drop(authority);
            let again = open(&db.url, keys.clone(), clock.clone()).await;
            assert_eq!(
                again.ca.ca_certificate(CaName::Root).unwrap(),
                root_before,
                "{context}"
            );
            assert!(
                again.verify_audit().await.unwrap().is_ok(),
                "{context}: audit chain intact"
            );
            again.store().close().await;
        }
    }
}

/// `openssl ts -query -sha256 -cert` (OpenSSL 3.0): a nonce whose DER INTEGER has a leading zero.
const TSA_REQUEST: &str = "30440201013031300d060960864801650304020105000420a628889052fab7e842995956674ef112241c8d0b99b9501970e0bf3d064ee4ef020900a71b57f8ba74191f0101ff";

fn tsa_events(entries: &[store::AuditEntry], event: &str) -> Vec<serde_json::Value> {
    entries
        .iter()
        .filter(|e| e.event == event)
        .map(|e| serde_json::from_str(&e.details).unwrap())
        .collect()
}

/// Grants a token and checks it against the unit's certificate; returns the token's serial.
async fn token(authority: &Authority, context: &str) -> Vec<u8> {
    let chain = authority.tsa.tsa_chain();
    assert_eq!(
        chain.len(),
        2,
        "{context}: the TSA certificate and the qualified CA"
    );
    assert_eq!(
        chain[1],
        authority.ca.ca_certificate(CaName::Qualified).unwrap(),
        "{context}"
    );
    let response = authority
        .tsa
        .timestamp(&hex::decode(TSA_REQUEST).unwrap())
        .await
        .unwrap();
    let read = pki::tsa::read_response(&response).unwrap();
    assert_eq!((read.status, read.failure), (0, None), "{context}");
    let tst =
        pki::tsa::verify_token(read.token.as_ref().unwrap(), &chain[0].parse().unwrap()).unwrap();
    assert_eq!(
        tst.nonce.unwrap().to_der().unwrap(),
        hex::decode("020900a71b57f8ba74191f").unwrap(),
        "{context}"
    );
    assert_eq!(
        tst.gen_time.to_unix_duration().as_secs() as i64,
        authority.now().0,
        "{context}"
    );
    assert_eq!(tst.policy, authority.settings().policy.timestamp_policy);
    tst.serial_number.as_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock)] // the test's own future, on its own runtime
async fn the_tsa_signs_tokens_and_its_certificate_is_renewed_and_replaced_once_revoked() {
    let _token = token_lock();
    let dir = tempfile::tempdir().unwrap();
    for (backend_name, keys) in backends() {
        let sub = dir.path().join(format!("tsa-{backend_name}"));
        std::fs::create_dir_all(&sub).unwrap();
        for db in store::test_support::databases(&sub).await {
            let context = format!("{backend_name} on {}", db.name);
            let clock = Arc::new(ManualClock::new(START));
            let authority = open(&db.url, keys.clone(), clock.clone()).await;

            // The root's CRL (ARL) exists from the first start, empty, signed by the root.
            let arl =
                CertificateList::from_der(&authority.va.crl(CaName::Root).await.unwrap()).unwrap();
            let root = Certificate::from_der(&authority.ca.ca_certificate(CaName::Root).unwrap().0)
                .unwrap();
            assert_eq!(
                arl.tbs_cert_list.issuer, root.tbs_certificate.subject,
                "{context}"
            );
            assert!(
                arl.tbs_cert_list.revoked_certificates.is_none(),
                "{context}"
            );

            // 1. A token, recorded in the audit log with its serial and imprint.
            let first_unit = authority.tsa.tsa_chain()[0].clone();
            let serial = token(&authority, &context).await;
            let entries = authority.store().audit_entries().await.unwrap();
            let tokens = tsa_events(&entries, "tsa.token");
            assert_eq!(tokens.len(), 1, "{context}");
            assert_eq!(tokens[0]["serial"], hex::encode(&serial), "{context}");
            assert_eq!(tokens[0]["hash_algorithm"], "sha256");
            assert_eq!(tokens[0]["imprint"], &TSA_REQUEST[48..112]);
            assert_eq!(tsa_events(&entries, "tsa.certified").len(), 1, "{context}");

            // 2. A bad request gets a rejection, and no audit entry.
            let rejected = authority.tsa.timestamp(b"not DER").await.unwrap();
            let read = pki::tsa::read_response(&rejected).unwrap();
            assert_eq!(
                (read.status, read.failure),
                (2, Some(pki::tsa::FailureInfo::BadDataFormat)),
                "{context}"
            );
            assert_eq!(
                tsa_events(
                    &authority.store().audit_entries().await.unwrap(),
                    "tsa.token"
                )
                .len(),
                1
            );

            // 3. A year before its end the certificate is replaced; tokens use the new one.
            clock.advance(3 * 366 * 86_400);
            authority.maintain().await.unwrap();
            assert_eq!(
                authority.tsa.tsa_chain()[0],
                first_unit,
                "{context}: too early to renew"
            );
            clock.advance(366 * 86_400);
            authority.maintain().await.unwrap();
            let second_unit = authority.tsa.tsa_chain()[0].clone();
            assert_ne!(
                second_unit, first_unit,
                "{context}: renewed a year before its end"
            );
            token(&authority, &context).await;

            // 4. Revoked, it is replaced at the next upkeep.
            let second = second_unit.parse().unwrap();
            let second_serial =
                Serial::from_integer_bytes(second.tbs_certificate.serial_number.as_bytes())
                    .unwrap();
            let record = authority
                .store()
                .certificate(&second_serial)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (record.kind, record.authority.as_str()),
                (domain::CertificateKind::TimeStamping, "qualified")
            );
            authority
                .va
                .revoke(&second_serial, RevocationReason::KeyCompromise, "test")
                .await
                .unwrap();
            authority.maintain().await.unwrap();
            let third_unit = authority.tsa.tsa_chain()[0].clone();
            assert!(
                third_unit != second_unit && third_unit != first_unit,
                "{context}: replaced after revocation"
            );
            token(&authority, &context).await;

            // 5. A restart loads the same unit.
            drop(authority);
            let again = open(&db.url, keys.clone(), clock.clone()).await;
            assert_eq!(again.tsa.tsa_chain()[0], third_unit, "{context}");
            assert!(
                again.verify_audit().await.unwrap().is_ok(),
                "{context}: audit chain intact"
            );
            again.store().close().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_reservation_is_abandoned_and_its_key_destroyed() {
    let dir = tempfile::tempdir().unwrap();
    for db in store::test_support::databases(dir.path()).await {
        let keys: Arc<dyn KeyBackend> = Arc::new(SoftwareKeyBackend::new(MasterKey::generate()));
        let clock = Arc::new(ManualClock::new(START));
        let authority = open(&db.url, keys, clock.clone()).await;
        // A process reserved a serial and died before storing the certificate.
        let serial = Serial::from_random([9; 16]);
        let mut tx = authority.store().begin().await.unwrap();
        tx.reserve_certificate(&domain::records::NewCertificate {
            serial,
            authority: "qualified".into(),
            kind: domain::CertificateKind::CloudSigning,
            subject: "CN=x".into(),
            email: None,
            key_id: None,
            not_before: START,
            not_after: START.plus_days(1),
            reserved_at: START,
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert!(
            authority
                .ca
                .abandon_stale_reservations()
                .await
                .unwrap()
                .is_empty(),
            "{}: too young",
            db.name
        );
        clock.advance(600);
        assert_eq!(
            authority.ca.abandon_stale_reservations().await.unwrap(),
            vec![serial],
            "{}",
            db.name
        );
        let record = authority
            .store()
            .certificate(&serial)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.status, CertificateStatus::Abandoned);
        assert!(authority
            .va
            .revoke(&serial, RevocationReason::Unspecified, "test")
            .await
            .is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_key_that_does_not_match_its_certificate_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("db").display());
    let keys: Arc<dyn KeyBackend> = Arc::new(SoftwareKeyBackend::new(MasterKey::generate()));
    let clock = Arc::new(ManualClock::new(START));
    let authority = open(&url, keys.clone(), clock.clone()).await;
    let qualified = authority
        .store()
        .authority("qualified")
        .await
        .unwrap()
        .unwrap();
    let consentid = authority
        .store()
        .authority("consentid")
        .await
        .unwrap()
        .unwrap();
    authority.store().close().await;
    drop(authority);
    // Point the qualified CA at the ConsentID CA's key.
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE authorities SET key_id = $1 WHERE name = 'qualified'")
        .bind(&consentid.key_id.0)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let store = Store::connect(&url).await.unwrap();
    let error = Authority::open(store, keys, clock, Settings::new("http://127.0.0.1:8080"))
        .await
        .err()
        .expect("refused");
    assert!(error.to_string().contains("qualified"), "{error}");
    let _ = qualified;
}

/// Audit events of one kind.
fn events(entries: &[store::AuditEntry], event: &str) -> usize {
    entries.iter().filter(|e| e.event == event).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock)] // the test's own future, on its own runtime
async fn keys_left_half_way_by_a_dead_process_are_finished_by_the_upkeep() {
    let _token = token_lock();
    let dir = tempfile::tempdir().unwrap();
    for (backend_name, keys) in backends() {
        let sub = dir.path().join(backend_name);
        std::fs::create_dir_all(&sub).unwrap();
        for db in store::test_support::databases(&sub).await {
            let context = format!("{backend_name} on {}", db.name);
            let clock = Arc::new(ManualClock::new(START));
            let authority = open(&db.url, keys.clone(), clock.clone()).await;

            // One transaction per issuance: the serial, the key and the certificate commit
            // together, so nothing stays `reserved`; a token's key was recorded before the
            // token made it and is `active` now.
            let audit_before = authority.store().audit_entries().await.unwrap().len();
            let issued = authority
                .ca
                .issue_cloud_certificate(&person(), None, "test")
                .await
                .unwrap();
            let entries = authority.store().audit_entries().await.unwrap();
            assert_eq!(
                entries.len(),
                audit_before + 1,
                "{context}: one audit entry per issuance"
            );
            assert_eq!(events(&entries, "certificate.issued"), 1, "{context}");
            let record = authority
                .store()
                .certificate(&issued.serial)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(record.status, CertificateStatus::Issued, "{context}");
            let key = authority
                .store()
                .key(issued.key_id.as_ref().unwrap())
                .await
                .unwrap();
            assert_eq!(key.state, domain::records::KeyState::Active, "{context}");
            assert_eq!(
                key.label,
                format!("eidportal-cloud-{}", issued.serial.to_hex()),
                "{context}"
            );

            // A process recorded a key, the backend generated it, and the process died
            // before its use case committed.
            let label = format!(
                "eidportal-cloud-test-{}",
                hex::encode(rand::random::<[u8; 8]>())
            );
            let id = domain::records::KeyId(hex::encode(rand::random::<[u8; 16]>()));
            let mut tx = authority.store().begin().await.unwrap();
            tx.insert_key(&domain::records::KeyRecord {
                id: id.clone(),
                backend: keys.name().into(),
                label: label.clone(),
                algorithm: "ecdsa-p256".into(),
                reference: Vec::new(),
                public_key: Vec::new(),
                state: domain::records::KeyState::Generating,
                created_at: START,
            })
            .await
            .unwrap();
            tx.commit().await.unwrap();
            let orphan = keys.generate(&label, pki::KeyAlgorithm::EcdsaP256).unwrap();

            // A revocation committed, and its process died before the backend destroyed the
            // key: the record says `destroying`, the key is still there.
            let revoked = authority
                .ca
                .issue_cloud_certificate(&person(), None, "test")
                .await
                .unwrap();
            let revoked_key = authority
                .store()
                .key(revoked.key_id.as_ref().unwrap())
                .await
                .unwrap();
            let mut tx = authority.store().begin().await.unwrap();
            tx.mark_key_destroying(&revoked_key.id, START)
                .await
                .unwrap();
            tx.commit().await.unwrap();

            // Young `generating` records may belong to a live process: left alone.
            authority.maintain().await.unwrap();
            assert_eq!(
                authority.store().key(&id).await.unwrap().state,
                domain::records::KeyState::Generating,
                "{context}"
            );
            assert!(
                keys.open(&orphan.reference).is_ok(),
                "{context}: a young key is kept"
            );
            assert_eq!(
                authority.store().key(&revoked_key.id).await.unwrap().state,
                domain::records::KeyState::Destroyed,
                "{context}"
            );
            if keys.keeps_objects() {
                assert!(
                    keys.open(&pki::KeyReference(revoked_key.reference.clone()))
                        .is_err(),
                    "{context}: revoked key destroyed"
                );
            }

            clock.advance(600);
            authority.maintain().await.unwrap();
            assert_eq!(
                authority.store().key(&id).await.unwrap().state,
                domain::records::KeyState::Abandoned,
                "{context}"
            );
            if keys.keeps_objects() {
                assert!(
                    keys.open(&orphan.reference).is_err(),
                    "{context}: the orphan is destroyed"
                );
                assert_eq!(
                    keys.destroy_labelled(&label).unwrap(),
                    0,
                    "{context}: nothing left under its label"
                );
            }
            let entries = authority.store().audit_entries().await.unwrap();
            assert_eq!(events(&entries, "key.abandoned"), 1, "{context}");
            // The issued certificate's key is untouched.
            let signer = keys
                .open(&pki::KeyReference(key.reference.clone()))
                .unwrap();
            assert!(signer.sign(b"still mine").is_ok(), "{context}");
            assert!(
                authority.verify_audit().await.unwrap().is_ok(),
                "{context}: audit chain intact"
            );
            authority.store().close().await;
        }
    }
}

/// An OCSP request about `serial` with a `pad`-byte unknown (non-critical) request extension.
fn padded_ocsp_request(issuer: &Certificate, serial: &Serial, pad: usize) -> Vec<u8> {
    let mut request = OcspRequest::from_der(&ocsp_request(issuer, serial)).unwrap();
    request.tbs_request.request_extensions = Some(vec![x509_cert::ext::Extension {
        extn_id: der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.55016.99.1"),
        critical: false,
        extn_value: der::asn1::OctetString::new(vec![0x5a; pad]).unwrap(),
    }]);
    request.to_der().unwrap()
}

/// Finding 7: the OCSP cache was keyed by the whole request, so requests padded with an
/// unknown extension and a random serial each took an entry (and at the cap, evicted the real
/// ones). Now it is keyed by the CertID (the plain request asking about it alone) and keeps only
/// answers about our certificates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn padded_ocsp_requests_do_not_grow_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("db").display());
    let keys: Arc<dyn KeyBackend> = Arc::new(SoftwareKeyBackend::new(MasterKey::generate()));
    let authority = open(&url, keys, Arc::new(ManualClock::new(START))).await;
    let issuer =
        Certificate::from_der(&authority.ca.ca_certificate(CaName::Qualified).unwrap().0).unwrap();
    let issued = authority
        .ca
        .issue_cloud_certificate(&person(), Some("p@example.rs"), "test")
        .await
        .unwrap();
    assert_eq!(
        status(&authority, &issued.serial).await,
        (CertStatus::good(), false)
    );
    let size = authority.va.ocsp_cache_size();
    assert_eq!(size.0, 1);

    for _ in 0..200 {
        let request = padded_ocsp_request(&issuer, &Serial::from_random(rand::random()), 3 * 1024);
        let answer = authority.va.ocsp(&request).await;
        assert_eq!(answer.outcome, "successful");
        assert!(matches!(
            pki::ocsp::read_response(&answer.body).unwrap().0[0],
            CertStatus::Unknown(_)
        ));
    }
    assert_eq!(
        authority.va.ocsp_cache_size(),
        size,
        "random padded requests grew the cache"
    );

    // The real entry is still there, and the same CertID padded finds it.
    assert_eq!(
        status(&authority, &issued.serial).await,
        (CertStatus::good(), true)
    );
    let answer = authority
        .va
        .ocsp(&padded_ocsp_request(&issuer, &issued.serial, 3 * 1024))
        .await;
    assert!(
        answer.cached,
        "the padded request about a real certificate is the same CertID"
    );
    assert_eq!(authority.va.ocsp_cache_size(), size);
}
