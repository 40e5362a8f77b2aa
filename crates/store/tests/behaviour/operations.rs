//! `OperationStore` and `OperationQueries`: certificate operations waiting for the phone, and
//! the approval kept with an agreement.

use domain::cloud::{CertificateOperation, OperationStatus};
use domain::records::{AgreementApproval, CertificateOperationRecord};
use domain::{DeviceId, TxnId, UserId};
use store::{CertificateStore as _, Error, OperationQueries as _, OperationStore as _};

use crate::support::{
    all_bytes, databases, insert_transaction, insert_user, race, serial, transaction, user, T,
};

fn operation(id: &str, kind: CertificateOperation) -> CertificateOperationRecord {
    CertificateOperationRecord {
        id: id.to_owned(),
        user_id: UserId::from("u-1"),
        operation: kind,
        txn_id: TxnId::from("t-1"),
        session_binding: "binding".into(),
        agreement: None,
        certificate_serial: None,
        status: OperationStatus::Pending,
        hint: String::new(),
        result_serial: None,
        created_at: T,
        finished_at: None,
    }
}

async fn setup(store: &store::Store) {
    insert_user(store, &user("u-1", "jelena@example.rs")).await;
    insert_transaction(
        store,
        &transaction("t-1", Some("u-1"), "certificate", "binding"),
    )
    .await;
}

#[tokio::test]
async fn an_operation_round_trips_and_finishes_once() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        setup(store).await;
        let issue = CertificateOperationRecord {
            agreement: Some(("2025-000001".into(), "Уговор «текст» 🖋\n".into())),
            ..operation("op-issue", CertificateOperation::Issue)
        };
        let renew = CertificateOperationRecord {
            agreement: Some(("2025-000002".into(), String::new())),
            certificate_serial: Some(serial(7)),
            ..operation("op-renew", CertificateOperation::Renew)
        };
        let revoke_all = operation("op-all", CertificateOperation::RevokeAll);
        let revoke = CertificateOperationRecord {
            certificate_serial: Some(serial(8)),
            ..operation("op-revoke", CertificateOperation::Revoke)
        };
        let mut tx = store.begin().await.unwrap();
        for record in [&issue, &renew, &revoke_all, &revoke] {
            tx.insert_certificate_operation(record).await.unwrap();
        }
        assert!(
            tx.insert_certificate_operation(&issue).await.is_err(),
            "{name}: one id twice"
        );
        drop(tx);
        assert_eq!(
            store.certificate_operation("op-issue").await.unwrap(),
            None,
            "{name}"
        );
        let mut tx = store.begin().await.unwrap();
        for record in [&issue, &renew, &revoke_all, &revoke] {
            tx.insert_certificate_operation(record).await.unwrap();
        }
        tx.commit().await.unwrap();
        for record in [&issue, &renew, &revoke_all, &revoke] {
            assert_eq!(
                store
                    .certificate_operation(&record.id)
                    .await
                    .unwrap()
                    .as_ref(),
                Some(record),
                "{name}"
            );
        }
        assert_eq!(
            store.certificate_operation("op-none").await.unwrap(),
            None,
            "{name}"
        );

        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.certificate_operation_for_update("op-renew")
                .await
                .unwrap(),
            Some(renew.clone()),
            "{name}"
        );
        assert_eq!(
            tx.certificate_operation_for_update("op-none")
                .await
                .unwrap(),
            None
        );
        assert!(tx
            .finish_certificate_operation(
                "op-renew",
                OperationStatus::Done,
                "ok",
                Some(&serial(9)),
                T.plus_seconds(4)
            )
            .await
            .unwrap());
        assert!(
            !tx.finish_certificate_operation("op-renew", OperationStatus::Failed, "late", None, T)
                .await
                .unwrap(),
            "{name}: finished once"
        );
        assert!(tx
            .finish_certificate_operation(
                "op-all",
                OperationStatus::Failed,
                "denied",
                None,
                T.plus_seconds(5)
            )
            .await
            .unwrap());
        assert!(!tx
            .finish_certificate_operation("op-none", OperationStatus::Done, "", None, T)
            .await
            .unwrap());
        tx.commit().await.unwrap();
        assert_eq!(
            store.certificate_operation("op-renew").await.unwrap(),
            Some(CertificateOperationRecord {
                status: OperationStatus::Done,
                hint: "ok".into(),
                result_serial: Some(serial(9)),
                finished_at: Some(T.plus_seconds(4)),
                ..renew
            }),
            "{name}"
        );
        assert_eq!(
            store.certificate_operation("op-all").await.unwrap(),
            Some(CertificateOperationRecord {
                status: OperationStatus::Failed,
                hint: "denied".into(),
                finished_at: Some(T.plus_seconds(5)),
                ..revoke_all
            }),
            "{name}"
        );
        assert_eq!(
            store.certificate_operation("op-issue").await.unwrap(),
            Some(issue),
            "{name}"
        );
    }
}

/// The waiting page refreshed twice at once: the second carries the operation out only after
/// the first finished it, and sees that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_read_for_update_waits_for_the_use_case_finishing_it() {
    for db in &databases().await {
        let name = db.name;
        setup(&db.store).await;
        let mut tx = db.store.begin().await.unwrap();
        tx.insert_certificate_operation(&operation("op-1", CertificateOperation::Revoke))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let (first, second) = race(db.name, &db.store, |mut tx: store::Tx| async move {
            let read = tx
                .certificate_operation_for_update("op-1")
                .await
                .unwrap()
                .unwrap();
            if read.status == OperationStatus::Pending {
                assert!(tx
                    .finish_certificate_operation("op-1", OperationStatus::Done, "ok", None, T)
                    .await
                    .unwrap());
            }
            (tx, read.status)
        })
        .await;
        assert_eq!(
            (first, second),
            (OperationStatus::Pending, OperationStatus::Done),
            "{name}: what each read"
        );
    }
}

#[tokio::test]
async fn an_agreements_approval_is_kept_with_it_and_only_with_an_existing_one() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        setup(store).await;
        let approval = AgreementApproval {
            payload: all_bytes(),
            approval: "eidportal approval v1\nПрихваћено".into(),
            signature: vec![0x30, 0x44, 0x00, 0xff],
            device_id: DeviceId::from("d-1"),
        };
        let mut tx = store.begin().await.unwrap();
        tx.insert_agreement("2025-000001", &UserId::from("u-1"), &serial(1), "текст", T)
            .await
            .unwrap();
        tx.insert_agreement("2025-000002", &UserId::from("u-1"), &serial(2), "текст", T)
            .await
            .unwrap();
        assert!(
            matches!(
                tx.keep_agreement_approval("2025-000009", &approval).await,
                Err(Error::NotFound(_))
            ),
            "{name}: no such agreement"
        );
        drop(tx);
        let mut tx = store.begin().await.unwrap();
        tx.insert_agreement("2025-000001", &UserId::from("u-1"), &serial(1), "текст", T)
            .await
            .unwrap();
        tx.insert_agreement("2025-000002", &UserId::from("u-1"), &serial(2), "текст", T)
            .await
            .unwrap();
        tx.keep_agreement_approval("2025-000001", &approval)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            store.agreement_approval("2025-000001").await.unwrap(),
            Some(approval),
            "{name}"
        );
        assert_eq!(
            store.agreement_approval("2025-000002").await.unwrap(),
            None,
            "{name}: accepted without a kept approval"
        );
        assert_eq!(
            store.agreement_approval("2025-000009").await.unwrap(),
            None,
            "{name}"
        );
    }
}
