//! `LoginStore` and `LoginQueries`, what a device and a browser hold: ConsentID devices,
//! browser sessions, and the device requests' replay nonces.

use domain::records::{DeviceRecord, SessionRecord};
use domain::{DeviceId, DeviceState, UnixTime, UserId};
use store::{LoginQueries as _, LoginStore as _};

use crate::support::{
    databases, device, insert_device, insert_user, logged_in, serial, session, user, T,
};

#[tokio::test]
async fn a_device_round_trips_and_an_accounts_devices_come_oldest_first() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        insert_user(store, &user("u-1", "jelena@example.rs")).await;
        insert_user(store, &user("u-2", "marko@example.rs")).await;
        let newer = device("d-newer", "u-1", serial(1), T.plus_seconds(10));
        let older = DeviceRecord {
            state: DeviceState::PinLocked,
            pin_failures: 4,
            ..device("d-older", "u-1", serial(2), T)
        };
        let markos = device("d-marko", "u-2", serial(3), T);
        let mut tx = store.begin().await.unwrap();
        for record in [&newer, &older, &markos] {
            tx.insert_device(record).await.unwrap();
        }
        assert_eq!(
            tx.device(&newer.id).await.unwrap(),
            Some(newer.clone()),
            "{name}"
        );
        assert_eq!(
            store.device(&newer.id).await.unwrap(),
            None,
            "{name}: not committed"
        );
        tx.commit().await.unwrap();

        for record in [&newer, &older, &markos] {
            assert_eq!(
                store.device(&record.id).await.unwrap().as_ref(),
                Some(record),
                "{name}"
            );
        }
        assert_eq!(
            store.device(&DeviceId::from("d-none")).await.unwrap(),
            None,
            "{name}"
        );
        let jelena = UserId::from("u-1");
        assert_eq!(
            store.devices_of(&jelena).await.unwrap(),
            [older.clone(), newer.clone()],
            "{name}"
        );
        assert!(
            store
                .devices_of(&UserId::from("u-9"))
                .await
                .unwrap()
                .is_empty(),
            "{name}"
        );
        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.devices_of(&jelena).await.unwrap(),
            [older.clone(), newer.clone()],
            "{name}"
        );
        assert_eq!(
            tx.device_by_certificate(&serial(3)).await.unwrap(),
            Some(markos.clone()),
            "{name}"
        );
        assert_eq!(
            tx.device_by_certificate(&serial(9)).await.unwrap(),
            None,
            "{name}"
        );
        assert!(
            tx.insert_device(&newer).await.is_err(),
            "{name}: one id twice"
        );
    }
}

#[tokio::test]
async fn updating_a_device_sets_its_state_pin_failures_and_last_use_only() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        insert_user(store, &user("u-1", "jelena@example.rs")).await;
        let first = device("d-1", "u-1", serial(1), T);
        let second = device("d-2", "u-1", serial(2), T);
        insert_device(store, &first).await;
        insert_device(store, &second).await;
        let mut tx = store.begin().await.unwrap();
        tx.update_device(&first.id, DeviceState::PinLocked, 3, T.plus_seconds(7))
            .await
            .unwrap();
        drop(tx);
        assert_eq!(
            store.device(&first.id).await.unwrap(),
            Some(first.clone()),
            "{name}"
        );
        let mut tx = store.begin().await.unwrap();
        tx.update_device(&first.id, DeviceState::PinLocked, 3, T.plus_seconds(7))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            store.device(&first.id).await.unwrap(),
            Some(DeviceRecord {
                state: DeviceState::PinLocked,
                pin_failures: 3,
                last_used_at: Some(T.plus_seconds(7)),
                ..first.clone()
            }),
            "{name}"
        );
        assert_eq!(
            store.device(&second.id).await.unwrap(),
            Some(second),
            "{name}"
        );
        let mut tx = store.begin().await.unwrap();
        tx.update_device(&first.id, DeviceState::Revoked, 0, T.plus_seconds(8))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let revoked = store.device(&first.id).await.unwrap().unwrap();
        assert_eq!(
            (revoked.state, revoked.pin_failures, revoked.last_used_at),
            (DeviceState::Revoked, 0, Some(T.plus_seconds(8))),
            "{name}"
        );
    }
}

#[tokio::test]
async fn sessions_round_trip_and_end_once_by_id_account_or_device() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        let anonymous = session("s-anon");
        let records = [
            anonymous.clone(),
            logged_in("s-phone-1", "u-1", Some("d-1")),
            logged_in("s-phone-2", "u-1", Some("d-1")),
            logged_in("s-password", "u-1", None),
            logged_in("s-other-device", "u-1", Some("d-2")),
            logged_in("s-marko", "u-2", Some("d-9")),
        ];
        let mut tx = store.begin().await.unwrap();
        for record in &records {
            tx.insert_session(record).await.unwrap();
        }
        assert!(
            tx.insert_session(&anonymous).await.is_err(),
            "{name}: one id twice"
        );
        drop(tx);
        assert_eq!(
            store.session("s-anon").await.unwrap(),
            None,
            "{name}: rolled back"
        );
        let mut tx = store.begin().await.unwrap();
        for record in &records {
            tx.insert_session(record).await.unwrap();
        }
        tx.commit().await.unwrap();
        for record in &records {
            assert_eq!(
                store.session(&record.id_hash).await.unwrap().as_ref(),
                Some(record),
                "{name}"
            );
        }
        assert_eq!(store.session("s-none").await.unwrap(), None, "{name}");

        let ended = |at: UnixTime, record: &SessionRecord| SessionRecord {
            ended_at: Some(at),
            ..record.clone()
        };
        let mut tx = store.begin().await.unwrap();
        tx.end_session("s-anon", T.plus_seconds(1)).await.unwrap();
        tx.end_session("s-anon", T.plus_seconds(2)).await.unwrap();
        tx.end_session("s-none", T.plus_seconds(2)).await.unwrap();
        assert_eq!(
            tx.end_sessions_of_device(&DeviceId::from("d-1"), T.plus_seconds(3))
                .await
                .unwrap(),
            2,
            "{name}"
        );
        assert_eq!(
            tx.end_sessions_of_device(&DeviceId::from("d-1"), T.plus_seconds(4))
                .await
                .unwrap(),
            0,
            "{name}: ended already"
        );
        assert_eq!(
            tx.end_sessions_of_user(&UserId::from("u-1"), T.plus_seconds(5))
                .await
                .unwrap(),
            2,
            "{name}: the open ones"
        );
        assert_eq!(
            tx.end_sessions_of_user(&UserId::from("u-1"), T.plus_seconds(6))
                .await
                .unwrap(),
            0,
            "{name}"
        );
        tx.commit().await.unwrap();
        let expected = [
            ended(T.plus_seconds(1), &records[0]),
            ended(T.plus_seconds(3), &records[1]),
            ended(T.plus_seconds(3), &records[2]),
            ended(T.plus_seconds(5), &records[3]),
            ended(T.plus_seconds(5), &records[4]),
            records[5].clone(),
        ];
        for record in &expected {
            assert_eq!(
                store.session(&record.id_hash).await.unwrap().as_ref(),
                Some(record),
                "{name}"
            );
        }
    }
}

#[tokio::test]
async fn a_nonce_is_used_once_in_a_transaction_and_forgotten_once_expired() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        let mut tx = store.begin().await.unwrap();
        assert!(tx.use_nonce("d-1:нонс", T).await.unwrap(), "{name}");
        assert!(
            !tx.use_nonce("d-1:нонс", T).await.unwrap(),
            "{name}: a replay"
        );
        drop(tx);
        let mut tx = store.begin().await.unwrap();
        assert!(
            tx.use_nonce("d-1:нонс", T).await.unwrap(),
            "{name}: the first was rolled back"
        );
        assert!(
            tx.use_nonce("d-1:other", T.plus_seconds(10)).await.unwrap(),
            "{name}"
        );
        tx.commit().await.unwrap();
        assert!(
            !store.use_nonce("d-1:нонс", T).await.unwrap(),
            "{name}: committed"
        );
        assert!(
            store
                .use_nonce("d-1:third", T.plus_seconds(20))
                .await
                .unwrap(),
            "{name}"
        );
        // Forgotten when expired before `now` (not at it).
        assert_eq!(store.purge_used_nonces(T).await.unwrap(), 0, "{name}");
        assert_eq!(
            store.purge_used_nonces(T.plus_seconds(11)).await.unwrap(),
            2,
            "{name}"
        );
        let mut tx = store.begin().await.unwrap();
        assert!(
            tx.use_nonce("d-1:нонс", T).await.unwrap(),
            "{name}: forgotten"
        );
        assert!(!tx.use_nonce("d-1:third", T).await.unwrap(), "{name}: kept");
    }
}
