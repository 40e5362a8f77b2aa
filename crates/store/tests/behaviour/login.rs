//! `LoginStore` and `LoginQueries`, the requests a phone answers: login and signing requests,
//! their answers and the approvals kept with them.

use domain::records::TransactionRecord;
use domain::{DeviceId, TransactionStatus, TxnId, UserId};
use store::{LoginQueries as _, LoginStore as _};

use crate::support::{
    all_bytes, databases, device, insert_device, insert_transaction, insert_user, race, serial,
    transaction, user, T,
};

#[tokio::test]
async fn a_request_round_trips_and_moves_only_from_the_status_it_is_in() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        insert_user(store, &user("u-1", "jelena@example.rs")).await;
        insert_device(store, &device("d-1", "u-1", serial(1), T)).await;
        let login = transaction("t-1", Some("u-1"), "login", "binding-1");
        // A username that matched no account: no user.
        let nobody = TransactionRecord {
            verification_code: "07".into(),
            hint: "ћирилица".into(),
            payload: Vec::new(),
            ..transaction("t-2", None, "login", "binding-2")
        };
        let mut tx = store.begin().await.unwrap();
        tx.insert_transaction(&login).await.unwrap();
        tx.insert_transaction(&nobody).await.unwrap();
        assert!(
            tx.insert_transaction(&login).await.is_err(),
            "{name}: one id twice"
        );
        drop(tx);
        assert_eq!(
            store.transaction(&login.id).await.unwrap(),
            None,
            "{name}: rolled back"
        );
        insert_transaction(store, &login).await;
        insert_transaction(store, &nobody).await;
        assert_eq!(
            store.transaction(&login.id).await.unwrap(),
            Some(login.clone()),
            "{name}"
        );
        assert_eq!(
            store.transaction(&nobody.id).await.unwrap(),
            Some(nobody.clone()),
            "{name}"
        );
        assert_eq!(
            store.transaction(&TxnId::from("t-9")).await.unwrap(),
            None,
            "{name}"
        );

        let device_id = DeviceId::from("d-1");
        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.transaction_for_update(&login.id).await.unwrap(),
            Some(login.clone())
        );
        assert_eq!(
            tx.transaction_for_update(&TxnId::from("t-9"))
                .await
                .unwrap(),
            None
        );
        let (pending, approved, consumed) = (
            TransactionStatus::Pending,
            TransactionStatus::Approved,
            TransactionStatus::Consumed,
        );
        assert!(
            !tx.move_transaction(&login.id, approved, consumed, "x", None, T)
                .await
                .unwrap(),
            "{name}: not approved yet"
        );
        assert!(
            tx.move_transaction(
                &login.id,
                pending,
                approved,
                "ok",
                Some(&device_id),
                T.plus_seconds(3)
            )
            .await
            .unwrap(),
            "{name}"
        );
        assert!(
            !tx.move_transaction(&login.id, pending, approved, "again", None, T)
                .await
                .unwrap(),
            "{name}: approved once"
        );
        assert!(
            !tx.move_transaction(&TxnId::from("t-9"), pending, approved, "x", None, T)
                .await
                .unwrap(),
            "{name}: unknown"
        );
        tx.commit().await.unwrap();
        let expected = TransactionRecord {
            status: approved,
            hint: "ok".into(),
            device_id: Some(device_id.clone()),
            decided_at: Some(T.plus_seconds(3)),
            ..login.clone()
        };
        assert_eq!(
            store.transaction(&login.id).await.unwrap(),
            Some(expected.clone()),
            "{name}"
        );
        // Consumed without naming the device again: the approving device stays.
        let mut tx = store.begin().await.unwrap();
        assert!(tx
            .move_transaction(
                &login.id,
                approved,
                consumed,
                "done",
                None,
                T.plus_seconds(4)
            )
            .await
            .unwrap());
        tx.commit().await.unwrap();
        assert_eq!(
            store.transaction(&login.id).await.unwrap(),
            Some(TransactionRecord {
                status: consumed,
                hint: "done".into(),
                decided_at: Some(T.plus_seconds(4)),
                ..expected
            }),
            "{name}"
        );
        assert_eq!(
            store.transaction(&nobody.id).await.unwrap(),
            Some(nobody),
            "{name}"
        );
    }
}

/// A request read for update is not read again by another use case until the first ends:
/// the second sees the first's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_read_for_update_waits_for_the_use_case_that_holds_it() {
    for db in &databases().await {
        let name = db.name;
        insert_user(&db.store, &user("u-1", "jelena@example.rs")).await;
        insert_transaction(&db.store, &transaction("t-1", Some("u-1"), "login", "b")).await;
        let (first, second) = race(db.name, &db.store, |mut tx: store::Tx| async move {
            let id = TxnId::from("t-1");
            let read = tx
                .transaction_for_update(&id)
                .await
                .unwrap()
                .unwrap()
                .status;
            if read == TransactionStatus::Pending {
                let moved = tx
                    .move_transaction(&id, read, TransactionStatus::Approved, "", None, T)
                    .await
                    .unwrap();
                assert!(moved);
            }
            (tx, read)
        })
        .await;
        assert_eq!(
            (first, second),
            (TransactionStatus::Pending, TransactionStatus::Approved),
            "{name}: what each use case read"
        );
    }
}

#[tokio::test]
async fn ending_pending_requests_ends_only_the_pending_ones_asked_for() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        insert_user(store, &user("u-1", "jelena@example.rs")).await;
        insert_user(store, &user("u-2", "marko@example.rs")).await;
        for record in [
            transaction("login-a", Some("u-1"), "login", "browser-a"),
            transaction("login-b", Some("u-1"), "login", "browser-b"),
            transaction("sign-a", Some("u-1"), "sign", "browser-a"),
            TransactionRecord {
                status: TransactionStatus::Approved,
                ..transaction("approved-a", Some("u-1"), "login", "browser-a")
            },
            transaction("marko-a", Some("u-2"), "login", "browser-a"),
        ] {
            insert_transaction(store, &record).await;
        }
        let jelena = UserId::from("u-1");
        let sorted = |mut ids: Vec<String>| {
            ids.sort();
            ids
        };
        let mut tx = store.begin().await.unwrap();
        let ended = tx
            .end_pending_of_kind(
                &jelena,
                "login",
                Some("browser-a"),
                TransactionStatus::Cancelled,
                "superseded",
                T.plus_seconds(1),
            )
            .await
            .unwrap();
        assert_eq!(ended, ["login-a"], "{name}: one kind, one browser");
        let ended = tx
            .end_pending_of_kind(
                &jelena,
                "login",
                None,
                TransactionStatus::Expired,
                "gone",
                T.plus_seconds(2),
            )
            .await
            .unwrap();
        assert_eq!(ended, ["login-b"], "{name}: one kind, any browser");
        let ended = tx
            .end_pending_of_kind(
                &jelena,
                "login",
                None,
                TransactionStatus::Expired,
                "gone",
                T,
            )
            .await
            .unwrap();
        assert!(ended.is_empty(), "{name}: none left");
        tx.commit().await.unwrap();
        let txn = |id: &'static str| async move {
            store.transaction(&TxnId::from(id)).await.unwrap().unwrap()
        };
        let a = txn("login-a").await;
        assert_eq!(
            (a.status, a.hint.as_str(), a.decided_at),
            (
                TransactionStatus::Cancelled,
                "superseded",
                Some(T.plus_seconds(1))
            ),
            "{name}"
        );
        assert_eq!(
            txn("sign-a").await.status,
            TransactionStatus::Pending,
            "{name}"
        );

        let mut tx = store.begin().await.unwrap();
        insert_pending_sign_b(&mut tx).await;
        let ended = tx
            .end_pending_of(
                &jelena,
                TransactionStatus::Denied,
                "revoked",
                T.plus_seconds(3),
            )
            .await
            .unwrap();
        assert_eq!(sorted(ended), ["sign-a", "sign-b"], "{name}: every kind");
        tx.commit().await.unwrap();
        let sign = txn("sign-b").await;
        assert_eq!(
            (sign.status, sign.hint.as_str(), sign.decided_at),
            (
                TransactionStatus::Denied,
                "revoked",
                Some(T.plus_seconds(3))
            ),
            "{name}"
        );
        assert_eq!(
            txn("approved-a").await.status,
            TransactionStatus::Approved,
            "{name}"
        );
        assert_eq!(
            txn("marko-a").await.status,
            TransactionStatus::Pending,
            "{name}: another account"
        );
        assert_eq!(
            txn("login-b").await.hint,
            "gone",
            "{name}: an ended one stays as it was"
        );
    }
}

async fn insert_pending_sign_b(tx: &mut store::Tx) {
    tx.insert_transaction(&transaction("sign-b", Some("u-1"), "sign", "token-b"))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_accounts_requests_are_the_pending_ones_and_the_recent_unanswered_newest_first() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        insert_user(store, &user("u-1", "jelena@example.rs")).await;
        let at = |id: &str, seconds: i64, status: TransactionStatus| TransactionRecord {
            created_at: T.plus_seconds(seconds),
            status,
            ..transaction(id, Some("u-1"), "login", "b")
        };
        use TransactionStatus as S;
        for record in [
            at("old-pending", -1000, S::Pending),
            at("old-denied", -1000, S::Denied),
            at("new-denied", 10, S::Denied),
            at("new-expired", 20, S::Expired),
            at("new-cancelled", 30, S::Cancelled),
            at("new-failed", 35, S::Failed),
            at("new-approved", 40, S::Approved),
            at("new-consumed", 50, S::Consumed),
            at("new-pending", 60, S::Pending),
            at("since-denied", 0, S::Denied),
            TransactionRecord {
                user_id: Some(UserId::from("u-2")),
                ..at("other-pending", 70, S::Pending)
            },
        ] {
            insert_transaction(store, &record).await;
        }
        let ids: Vec<String> = store
            .transactions_of(&UserId::from("u-1"), T)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.id.as_str().to_owned())
            .collect();
        assert_eq!(
            ids,
            [
                "new-pending",
                "new-failed",
                "new-cancelled",
                "new-expired",
                "new-denied",
                "since-denied",
                "old-pending"
            ],
            "{name}"
        );
        let full = store
            .transactions_of(&UserId::from("u-1"), T)
            .await
            .unwrap();
        assert_eq!(
            full[0],
            at("new-pending", 60, S::Pending),
            "{name}: whole records"
        );
    }
}

#[tokio::test]
async fn an_approval_is_kept_with_its_request() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        insert_transaction(store, &transaction("t-1", None, "login", "b")).await;
        insert_transaction(store, &transaction("t-2", None, "login", "b")).await;
        let id = TxnId::from("t-1");
        let mut tx = store.begin().await.unwrap();
        assert_eq!(tx.approval_of(&id).await.unwrap(), None, "{name}");
        let message = "eidportal approval v1\nОдобрено: t-1";
        tx.record_approval(&id, message, &all_bytes())
            .await
            .unwrap();
        assert_eq!(
            tx.approval_of(&id).await.unwrap(),
            Some((message.to_owned(), all_bytes())),
            "{name}"
        );
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.approval_of(&id).await.unwrap(),
            Some((message.to_owned(), all_bytes())),
            "{name}"
        );
        assert_eq!(
            tx.approval_of(&TxnId::from("t-2")).await.unwrap(),
            None,
            "{name}"
        );
        assert_eq!(
            tx.approval_of(&TxnId::from("t-9")).await.unwrap(),
            None,
            "{name}"
        );
        // The request itself is unchanged.
        drop(tx);
        assert_eq!(
            store.transaction(&id).await.unwrap(),
            Some(transaction("t-1", None, "login", "b")),
            "{name}"
        );
    }
}
