//! `CertificateStore` and `CertificateQueries`, certificates from reservation to revocation
//! and the status revision; agreements and the service roles' keys (read back through
//! `AccountQueries`).

use domain::records::{KeyId, KeyState, RevokedRecord};
use domain::{CertificateStatus, RevocationReason, UserId};
use store::{AccountQueries as _, CertificateQueries as _, CertificateStore as _, Error};

use crate::support::{
    all_bytes, databases, insert_key, insert_user, key, new_certificate, serial, user, END_OF_TIME,
    T,
};

#[tokio::test]
async fn a_certificate_is_reserved_then_issued_once_and_listed_oldest_first() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        insert_key(store, &key("k-1", KeyState::Active, T)).await;
        let jelena = new_certificate(serial(0x21), Some("jelena@example.rs"), Some("k-1"), T);
        let device = domain::records::NewCertificate {
            kind: domain::CertificateKind::Device,
            subject: "CN=device".into(),
            ..new_certificate(serial(0x11), None, None, T.plus_seconds(1))
        };
        let older = new_certificate(
            serial(0x31),
            Some("jelena@example.rs"),
            None,
            T.plus_seconds(-5),
        );
        let marko = new_certificate(
            serial(0x41),
            Some("marko@example.rs"),
            None,
            T.plus_seconds(5),
        );
        let mut tx = store.begin().await.unwrap();
        for new in [&jelena, &device, &older, &marko] {
            tx.reserve_certificate(new).await.unwrap();
        }
        assert!(
            tx.reserve_certificate(&jelena).await.is_err(),
            "{name}: a serial twice"
        );
        drop(tx);
        assert!(
            store.certificate(&serial(0x21)).await.unwrap().is_none(),
            "{name}: rolled back"
        );
        let mut tx = store.begin().await.unwrap();
        for new in [&jelena, &device, &older, &marko] {
            tx.reserve_certificate(new).await.unwrap();
        }
        let reserved = tx.certificate(&serial(0x21)).await.unwrap().unwrap();
        assert_eq!(
            (
                reserved.status,
                reserved.der.clone(),
                reserved.issued_at,
                reserved.revocation
            ),
            (CertificateStatus::Reserved, None, None, None),
            "{name}"
        );
        tx.commit().await.unwrap();
        let reserved = store.certificate(&serial(0x21)).await.unwrap().unwrap();
        assert_eq!(
            (
                reserved.serial,
                reserved.authority.as_str(),
                reserved.kind,
                reserved.subject.as_str(),
                reserved.email.as_deref(),
                reserved.key_id.clone(),
                reserved.not_before,
                reserved.not_after,
                reserved.reserved_at,
            ),
            (
                jelena.serial,
                "qualified",
                jelena.kind,
                jelena.subject.as_str(),
                Some("jelena@example.rs"),
                Some(KeyId("k-1".into())),
                T,
                END_OF_TIME,
                T,
            ),
            "{name}"
        );
        let device_record = store.certificate(&serial(0x11)).await.unwrap().unwrap();
        assert_eq!(
            (
                device_record.kind,
                device_record.email,
                device_record.key_id
            ),
            (domain::CertificateKind::Device, None, None),
            "{name}"
        );

        let mut tx = store.begin().await.unwrap();
        tx.complete_certificate(&serial(0x21), &all_bytes(), T.plus_seconds(1))
            .await
            .unwrap();
        assert!(
            matches!(
                tx.complete_certificate(&serial(0x21), b"again", T).await,
                Err(Error::NotFound(_))
            ),
            "{name}: issued twice"
        );
        assert!(
            matches!(
                tx.complete_certificate(&serial(0x99), b"x", T).await,
                Err(Error::NotFound(_))
            ),
            "{name}: never reserved"
        );
        tx.commit().await.unwrap();
        let issued = store.certificate(&serial(0x21)).await.unwrap().unwrap();
        assert_eq!(
            (issued.status, issued.der, issued.issued_at),
            (
                CertificateStatus::Issued,
                Some(all_bytes()),
                Some(T.plus_seconds(1))
            ),
            "{name}"
        );

        let serials = |records: Vec<domain::records::CertificateRecord>| {
            records.into_iter().map(|c| c.serial).collect::<Vec<_>>()
        };
        // Oldest reservation first, then by serial.
        assert_eq!(
            serials(store.certificates(None).await.unwrap()),
            [serial(0x31), serial(0x21), serial(0x11), serial(0x41)],
            "{name}"
        );
        assert_eq!(
            serials(store.certificates(Some("jelena@example.rs")).await.unwrap()),
            [serial(0x31), serial(0x21)],
            "{name}"
        );
        assert!(store
            .certificates(Some("nobody@example.rs"))
            .await
            .unwrap()
            .is_empty());
        assert!(
            store.certificate(&serial(0x99)).await.unwrap().is_none(),
            "{name}"
        );

        // Still reserved, and reserved before the limit (strictly).
        let mut stale = store.reserved_before(T.plus_seconds(6)).await.unwrap();
        stale.sort();
        assert_eq!(stale, [serial(0x11), serial(0x31), serial(0x41)], "{name}");
        assert_eq!(
            store.reserved_before(T).await.unwrap(),
            [serial(0x31)],
            "{name}"
        );
    }
}

#[tokio::test]
async fn an_abandoned_reservation_gives_back_its_key_once_and_an_issued_one_is_kept() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        insert_key(store, &key("k-1", KeyState::Active, T)).await;
        let mut tx = store.begin().await.unwrap();
        tx.reserve_certificate(&new_certificate(serial(1), None, Some("k-1"), T))
            .await
            .unwrap();
        tx.reserve_certificate(&new_certificate(serial(2), None, None, T))
            .await
            .unwrap();
        tx.reserve_certificate(&new_certificate(serial(3), None, Some("k-1"), T))
            .await
            .unwrap();
        tx.complete_certificate(&serial(3), b"der", T)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.abandon_reserved(&serial(1)).await.unwrap(),
            Some(KeyId("k-1".into())),
            "{name}"
        );
        assert_eq!(
            tx.abandon_reserved(&serial(1)).await.unwrap(),
            None,
            "{name}: twice"
        );
        assert_eq!(
            tx.abandon_reserved(&serial(2)).await.unwrap(),
            None,
            "{name}: no key"
        );
        assert_eq!(
            tx.abandon_reserved(&serial(3)).await.unwrap(),
            None,
            "{name}: issued"
        );
        assert_eq!(
            tx.abandon_reserved(&serial(9)).await.unwrap(),
            None,
            "{name}: unknown"
        );
        tx.commit().await.unwrap();
        let status =
            |s| async move { store.certificate(&serial(s)).await.unwrap().unwrap().status };
        assert_eq!(status(1).await, CertificateStatus::Abandoned, "{name}");
        assert_eq!(status(2).await, CertificateStatus::Abandoned, "{name}");
        assert_eq!(status(3).await, CertificateStatus::Issued, "{name}");
        assert!(
            store.reserved_before(END_OF_TIME).await.unwrap().is_empty(),
            "{name}"
        );
        let mut tx = store.begin().await.unwrap();
        assert!(
            matches!(
                tx.complete_certificate(&serial(1), b"der", T).await,
                Err(Error::NotFound(_))
            ),
            "{name}: an abandoned serial is not issued"
        );
    }
}

/// The upkeep abandoning a reservation while its use case issues it: whichever comes second
/// must see the first. An abandon that comes second must not hand back the key (its caller
/// destroys it) of a certificate just issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoning_a_reservation_being_issued_gives_back_no_key() {
    for db in &databases().await {
        let name = db.name;
        insert_key(&db.store, &key("k-1", KeyState::Active, T)).await;
        let mut tx = db.store.begin().await.unwrap();
        tx.reserve_certificate(&new_certificate(serial(1), None, Some("k-1"), T))
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let mut issuing = db.store.begin().await.unwrap();
        issuing
            .complete_certificate(&serial(1), b"der", T)
            .await
            .unwrap();
        let upkeep = tokio::spawn({
            let store = db.store.clone();
            async move {
                let mut tx = store.begin().await.unwrap();
                let key = tx.abandon_reserved(&serial(1)).await.unwrap();
                tx.commit().await.unwrap();
                key
            }
        });
        let mut upkeep = upkeep;
        let early = tokio::time::timeout(std::time::Duration::from_millis(300), &mut upkeep).await;
        issuing.commit().await.unwrap();
        let key = match early {
            Ok(done) => done,
            Err(_) => upkeep.await,
        };
        let key = key.unwrap_or_else(|error| panic!("{name}: the upkeep: {error}"));
        let status = db
            .store
            .certificate(&serial(1))
            .await
            .unwrap()
            .unwrap()
            .status;
        assert_eq!(status, CertificateStatus::Issued, "{name}");
        assert_eq!(
            key, None,
            "{name}: the key of an issued certificate was handed out to destroy"
        );
    }
}

#[tokio::test]
async fn revoking_an_issued_certificate_once_moves_the_status_revision_and_the_crl_list() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        let mut tx = store.begin().await.unwrap();
        for i in 0..7 {
            let s = serial(0x10 + i);
            tx.reserve_certificate(&new_certificate(s, None, None, T))
                .await
                .unwrap();
            tx.complete_certificate(&s, b"der", T).await.unwrap();
        }
        let other = domain::records::NewCertificate {
            authority: "consentid".into(),
            ..new_certificate(serial(0x50), None, None, T)
        };
        tx.reserve_certificate(&other).await.unwrap();
        tx.complete_certificate(&serial(0x50), b"der", T)
            .await
            .unwrap();
        tx.reserve_certificate(&new_certificate(serial(0x60), None, None, T))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(store.status_revision().await.unwrap(), 0, "{name}");

        // Rolled back: no revocation and no new revision.
        let mut tx = store.begin().await.unwrap();
        assert!(tx
            .revoke_certificate(&serial(0x10), T, RevocationReason::KeyCompromise)
            .await
            .unwrap());
        drop(tx);
        assert_eq!(store.status_revision().await.unwrap(), 0, "{name}");
        assert_eq!(
            store
                .certificate(&serial(0x10))
                .await
                .unwrap()
                .unwrap()
                .status,
            CertificateStatus::Issued,
            "{name}"
        );

        // Every reason, in reverse time order, so that the CRL's order is by time.
        let mut tx = store.begin().await.unwrap();
        let mut expected = Vec::new();
        for (i, reason) in RevocationReason::ALL.into_iter().enumerate() {
            let s = serial(0x10 + u8::try_from(i).unwrap());
            let at = T.plus_seconds(100 - i64::try_from(i).unwrap());
            assert!(
                tx.revoke_certificate(&s, at, reason).await.unwrap(),
                "{name}: {reason:?}"
            );
            expected.push(RevokedRecord {
                serial: s,
                revoked_at: at,
                reason,
            });
        }
        assert!(
            !tx.revoke_certificate(&serial(0x10), END_OF_TIME, RevocationReason::Superseded)
                .await
                .unwrap(),
            "{name}: revoked twice"
        );
        assert!(
            !tx.revoke_certificate(&serial(0x60), T, RevocationReason::Superseded)
                .await
                .unwrap(),
            "{name}: only reserved"
        );
        assert!(
            !tx.revoke_certificate(&serial(0x99), T, RevocationReason::Superseded)
                .await
                .unwrap(),
            "{name}: unknown"
        );
        assert!(tx
            .revoke_certificate(&serial(0x50), T, RevocationReason::Unspecified)
            .await
            .unwrap());
        // The CRL's entries, in no promised order.
        let mut listed = tx.revoked_by("qualified").await.unwrap();
        listed.sort_by_key(|r| r.serial);
        assert_eq!(listed, expected, "{name}");
        assert_eq!(
            tx.revoked_by("consentid").await.unwrap(),
            [RevokedRecord {
                serial: serial(0x50),
                revoked_at: T,
                reason: RevocationReason::Unspecified
            }],
            "{name}"
        );
        assert!(tx.revoked_by("root").await.unwrap().is_empty(), "{name}");
        tx.commit().await.unwrap();
        // One new revision per revocation that happened (eight), none for the refusals.
        assert_eq!(store.status_revision().await.unwrap(), 8, "{name}");
        let first = store.certificate(&serial(0x10)).await.unwrap().unwrap();
        assert_eq!(first.status, CertificateStatus::Revoked, "{name}");
        assert_eq!(
            first.revocation,
            Some((T.plus_seconds(100), RevocationReason::Unspecified)),
            "{name}: the first revocation stands"
        );
        let last = store.certificate(&serial(0x16)).await.unwrap().unwrap();
        assert_eq!(
            last.revocation,
            Some((T.plus_seconds(94), RevocationReason::PrivilegeWithdrawn)),
            "{name}: reason code 9"
        );
        assert_eq!(last.der.as_deref(), Some(&b"der"[..]), "{name}");
    }
}

#[tokio::test]
async fn agreements_come_newest_first_and_service_keys_are_named_once() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        insert_user(store, &user("u-1", "jelena@example.rs")).await;
        insert_user(store, &user("u-2", "marko@example.rs")).await;
        insert_key(store, &key("k-app", KeyState::Active, T)).await;
        let jelena = UserId::from("u-1");
        let text = "Уговор о квалификованом сертификату\n§1 … «услови» 🖋";
        let mut tx = store.begin().await.unwrap();
        tx.insert_agreement("2025-000002", &jelena, &serial(2), text, T)
            .await
            .unwrap();
        tx.insert_agreement(
            "2025-000001",
            &jelena,
            &serial(1),
            "стари",
            T.plus_seconds(-60),
        )
        .await
        .unwrap();
        tx.insert_agreement(
            "2025-000003",
            &jelena,
            &serial(3),
            "пре",
            T.plus_seconds(-30),
        )
        .await
        .unwrap();
        tx.insert_agreement("2025-000009", &UserId::from("u-2"), &serial(9), "x", T)
            .await
            .unwrap();
        assert!(
            tx.insert_agreement("2025-000001", &jelena, &serial(4), "x", T)
                .await
                .is_err(),
            "{name}: one number twice"
        );
        drop(tx);
        assert!(
            store.agreements_of(&jelena).await.unwrap().is_empty(),
            "{name}: rolled back"
        );

        let mut tx = store.begin().await.unwrap();
        tx.insert_agreement("2025-000002", &jelena, &serial(2), text, T)
            .await
            .unwrap();
        tx.insert_agreement(
            "2025-000001",
            &jelena,
            &serial(1),
            "стари",
            T.plus_seconds(-60),
        )
        .await
        .unwrap();
        tx.insert_agreement(
            "2025-000003",
            &jelena,
            &serial(3),
            "пре",
            T.plus_seconds(-30),
        )
        .await
        .unwrap();
        tx.insert_service_key("app_signing", &KeyId("k-app".into()))
            .await
            .unwrap();
        assert_eq!(
            tx.service_key("app_signing").await.unwrap(),
            Some(KeyId("k-app".into())),
            "{name}"
        );
        tx.commit().await.unwrap();
        assert_eq!(
            store.agreements_of(&jelena).await.unwrap(),
            [
                (
                    "2025-000002".to_owned(),
                    serial(2).to_hex(),
                    text.to_owned(),
                    T
                ),
                (
                    "2025-000003".to_owned(),
                    serial(3).to_hex(),
                    "пре".to_owned(),
                    T.plus_seconds(-30)
                ),
                (
                    "2025-000001".to_owned(),
                    serial(1).to_hex(),
                    "стари".to_owned(),
                    T.plus_seconds(-60)
                ),
            ],
            "{name}: newest first"
        );
        assert!(store
            .agreements_of(&UserId::from("u-3"))
            .await
            .unwrap()
            .is_empty());

        assert_eq!(
            store.service_key("app_signing").await.unwrap(),
            Some(KeyId("k-app".into())),
            "{name}"
        );
        assert_eq!(
            store.service_key("app_encryption").await.unwrap(),
            None,
            "{name}"
        );
        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.service_key("app_encryption").await.unwrap(),
            None,
            "{name}"
        );
        assert!(
            tx.insert_service_key("app_signing", &KeyId("k-app".into()))
                .await
                .is_err(),
            "{name}: a role named twice"
        );
    }
}
