//! `QrLoginStore` and `QrLoginQueries` (a browser's QR login, taken by one phone), and
//! `PushStore` and `PushQueries` (one Web Push subscription per device).

use domain::records::{PushSubscriptionRecord, QrLoginRecord};
use domain::{DeviceId, DeviceState, TxnId, UserId};
use store::{
    LoginStore as _, PushQueries as _, PushStore as _, QrLoginQueries as _, QrLoginStore as _,
};

use crate::support::{
    all_bytes, databases, device, insert_device, insert_transaction, insert_user, race, serial,
    transaction, user, T,
};

fn qr_login(id: &str) -> QrLoginRecord {
    QrLoginRecord {
        id: id.to_owned(),
        secret: all_bytes(),
        session_binding: "binding".into(),
        browser: "Firefox 133 на Linux-у".into(),
        ip: "2001:db8::1".into(),
        created_at: T,
        expires_at: T.plus_seconds(120),
        txn_id: None,
    }
}

#[tokio::test]
async fn a_qr_login_round_trips_is_taken_once_ended_only_while_open_and_purged_once_expired() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        insert_transaction(store, &transaction("t-1", None, "login", "binding")).await;
        insert_transaction(store, &transaction("t-2", None, "login", "binding")).await;
        let open = qr_login("qr-1");
        let mut tx = store.begin().await.unwrap();
        tx.insert_qr_login(&open).await.unwrap();
        tx.insert_qr_login(&qr_login("qr-2")).await.unwrap();
        tx.insert_qr_login(&qr_login("qr-3")).await.unwrap();
        assert!(
            tx.insert_qr_login(&open).await.is_err(),
            "{name}: one id twice"
        );
        drop(tx);
        assert_eq!(
            store.qr_login("qr-1").await.unwrap(),
            None,
            "{name}: rolled back"
        );
        let mut tx = store.begin().await.unwrap();
        for id in ["qr-1", "qr-2", "qr-3"] {
            tx.insert_qr_login(&qr_login(id)).await.unwrap();
        }
        tx.commit().await.unwrap();
        assert_eq!(
            store.qr_login("qr-1").await.unwrap(),
            Some(open.clone()),
            "{name}"
        );
        assert_eq!(store.qr_login("qr-9").await.unwrap(), None, "{name}");

        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.qr_login_for_update("qr-1").await.unwrap(),
            Some(open.clone()),
            "{name}"
        );
        assert_eq!(
            tx.qr_login_for_update("qr-9").await.unwrap(),
            None,
            "{name}"
        );
        assert!(
            tx.take_qr_login("qr-1", &TxnId::from("t-1")).await.unwrap(),
            "{name}"
        );
        assert!(
            !tx.take_qr_login("qr-1", &TxnId::from("t-2")).await.unwrap(),
            "{name}: taken by another phone first"
        );
        assert!(
            !tx.take_qr_login("qr-9", &TxnId::from("t-2")).await.unwrap(),
            "{name}"
        );
        // Ending: a taken one is not ended; an open one expires now; an expired one stays.
        tx.end_qr_login("qr-1", T.plus_seconds(5)).await.unwrap();
        tx.end_qr_login("qr-2", T.plus_seconds(5)).await.unwrap();
        tx.end_qr_login("qr-2", T.plus_seconds(9)).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            store.qr_login("qr-1").await.unwrap(),
            Some(QrLoginRecord {
                txn_id: Some(TxnId::from("t-1")),
                ..open.clone()
            }),
            "{name}"
        );
        assert_eq!(
            store.qr_login("qr-2").await.unwrap().unwrap().expires_at,
            T.plus_seconds(5),
            "{name}: ended once"
        );

        // Purged when they expired before the limit (not at it); taken ones too.
        assert_eq!(
            store.purge_qr_logins(T.plus_seconds(5)).await.unwrap(),
            0,
            "{name}"
        );
        assert_eq!(
            store.purge_qr_logins(T.plus_seconds(6)).await.unwrap(),
            1,
            "{name}"
        );
        assert_eq!(store.qr_login("qr-2").await.unwrap(), None, "{name}");
        assert_eq!(
            store.purge_qr_logins(T.plus_seconds(121)).await.unwrap(),
            2,
            "{name}"
        );
        assert_eq!(store.qr_login("qr-1").await.unwrap(), None, "{name}");
        // Its request stays.
        let mut tx = store.begin().await.unwrap();
        assert!(tx
            .transaction_for_update(&TxnId::from("t-1"))
            .await
            .unwrap()
            .is_some());
    }
}

/// Two phones scanning one QR code at once: the second reads it only after the first took it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qr_login_read_for_update_waits_for_the_phone_taking_it() {
    for db in &databases().await {
        let name = db.name;
        insert_transaction(&db.store, &transaction("t-1", None, "login", "binding")).await;
        let mut tx = db.store.begin().await.unwrap();
        tx.insert_qr_login(&qr_login("qr-1")).await.unwrap();
        tx.commit().await.unwrap();
        let (first, second) = race(db.name, &db.store, |mut tx: store::Tx| async move {
            let read = tx.qr_login_for_update("qr-1").await.unwrap().unwrap();
            if read.txn_id.is_none() {
                assert!(tx.take_qr_login("qr-1", &TxnId::from("t-1")).await.unwrap());
            }
            (tx, read.txn_id)
        })
        .await;
        assert_eq!(
            (first, second),
            (None, Some(TxnId::from("t-1"))),
            "{name}: what each read"
        );
    }
}

fn subscription(device_id: &str, endpoint: &str) -> PushSubscriptionRecord {
    PushSubscriptionRecord {
        device_id: DeviceId::from(device_id),
        endpoint: endpoint.to_owned(),
        p256dh: all_bytes(),
        auth: vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 255],
        created_at: T,
    }
}

#[tokio::test]
async fn a_device_has_one_push_subscription_replaced_and_deleted_only_if_still_the_same() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        insert_user(store, &user("u-1", "jelena@example.rs")).await;
        insert_user(store, &user("u-2", "marko@example.rs")).await;
        insert_device(store, &device("d-1", "u-1", serial(1), T)).await;
        insert_device(store, &device("d-2", "u-1", serial(2), T)).await;
        insert_device(store, &device("d-locked", "u-1", serial(3), T)).await;
        insert_device(store, &device("d-marko", "u-2", serial(4), T)).await;
        let first = subscription("d-1", "https://push.example/первый");
        let mut tx = store.begin().await.unwrap();
        tx.replace_push_subscription(&first).await.unwrap();
        drop(tx);
        assert_eq!(
            store.push_subscription(&first.device_id).await.unwrap(),
            None,
            "{name}"
        );

        let mut tx = store.begin().await.unwrap();
        tx.replace_push_subscription(&first).await.unwrap();
        tx.replace_push_subscription(&subscription("d-2", "https://push.example/2"))
            .await
            .unwrap();
        tx.replace_push_subscription(&subscription("d-locked", "https://push.example/3"))
            .await
            .unwrap();
        tx.replace_push_subscription(&subscription("d-marko", "https://push.example/4"))
            .await
            .unwrap();
        tx.update_device(&DeviceId::from("d-locked"), DeviceState::PinLocked, 0, T)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            store.push_subscription(&first.device_id).await.unwrap(),
            Some(first.clone())
        );
        let endpoints = |subscriptions: Vec<PushSubscriptionRecord>| {
            let mut endpoints: Vec<String> =
                subscriptions.into_iter().map(|s| s.endpoint).collect();
            endpoints.sort();
            endpoints
        };
        assert_eq!(
            endpoints(
                store
                    .push_subscriptions_of(&UserId::from("u-1"))
                    .await
                    .unwrap()
            ),
            ["https://push.example/2", "https://push.example/первый"],
            "{name}: the active devices' of this account"
        );

        // Registering again replaces the subscription.
        let second = PushSubscriptionRecord {
            created_at: T.plus_seconds(60),
            p256dh: vec![4; 65],
            ..subscription("d-1", "https://push.example/second")
        };
        let mut tx = store.begin().await.unwrap();
        tx.replace_push_subscription(&second).await.unwrap();
        // The push service says the old one is gone: the new one stays.
        assert!(
            !tx.delete_push_subscription(&first.device_id, Some(&first.endpoint))
                .await
                .unwrap(),
            "{name}"
        );
        tx.commit().await.unwrap();
        assert_eq!(
            store.push_subscription(&first.device_id).await.unwrap(),
            Some(second.clone())
        );
        let mine = store
            .push_subscriptions_of(&UserId::from("u-1"))
            .await
            .unwrap();
        assert_eq!(mine.len(), 2, "{name}: one per device");
        assert!(mine.contains(&second), "{name}");

        let mut tx = store.begin().await.unwrap();
        assert!(
            tx.delete_push_subscription(&first.device_id, Some(&second.endpoint))
                .await
                .unwrap(),
            "{name}"
        );
        assert!(
            tx.delete_push_subscription(&DeviceId::from("d-2"), None)
                .await
                .unwrap(),
            "{name}"
        );
        assert!(
            !tx.delete_push_subscription(&DeviceId::from("d-2"), None)
                .await
                .unwrap(),
            "{name}"
        );
        tx.commit().await.unwrap();
        assert_eq!(
            store.push_subscription(&first.device_id).await.unwrap(),
            None,
            "{name}"
        );
        assert!(store
            .push_subscriptions_of(&UserId::from("u-1"))
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            store
                .push_subscriptions_of(&UserId::from("u-2"))
                .await
                .unwrap()
                .len(),
            1
        );
    }
}
