//! `CertificateStore` and `CertificateQueries`, the CA's keys: recorded, generated, activated,
//! abandoned, destroyed, and those a process left half-way.

use domain::records::{KeyId, KeyRecord, KeyState};
use store::{CertificateQueries as _, CertificateStore as _, Error};

use crate::support::{all_bytes, databases, insert_key, key, END_OF_TIME, T};

fn same_key(found: &KeyRecord, expected: &KeyRecord) -> bool {
    format!("{found:?}") == format!("{expected:?}")
}

#[tokio::test]
async fn a_key_round_trips_and_an_unknown_or_second_one_is_refused() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        let active = key("k-1", KeyState::Active, T);
        let generating = KeyRecord {
            reference: Vec::new(),
            public_key: Vec::new(),
            ..key("k-2", KeyState::Generating, END_OF_TIME)
        };
        let mut tx = store.begin().await.unwrap();
        tx.insert_key(&active).await.unwrap();
        tx.insert_key(&generating).await.unwrap();
        assert!(
            same_key(&tx.key(&active.id).await.unwrap(), &active),
            "{name}"
        );
        assert!(
            matches!(store.key(&active.id).await, Err(Error::NotFound(_))),
            "{name}: not committed yet"
        );
        tx.commit().await.unwrap();
        for expected in [&active, &generating] {
            let found = store.key(&expected.id).await.unwrap();
            assert!(same_key(&found, expected), "{name}: {found:?}");
        }
        let unknown = KeyId("k-9".into());
        assert!(
            matches!(store.key(&unknown).await, Err(Error::NotFound(_))),
            "{name}"
        );
        let mut tx = store.begin().await.unwrap();
        assert!(
            matches!(tx.key(&unknown).await, Err(Error::NotFound(_))),
            "{name}"
        );
        assert!(
            tx.insert_key(&active).await.is_err(),
            "{name}: a second key k-1"
        );
    }
}

#[tokio::test]
async fn a_key_goes_generating_active_destroying_destroyed_or_abandoned_and_no_other_way() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        let blank = |id: &str| KeyRecord {
            reference: Vec::new(),
            public_key: Vec::new(),
            ..key(id, KeyState::Generating, T)
        };
        insert_key(store, &blank("k-gen")).await;
        insert_key(store, &blank("k-lost")).await;
        let id = |id: &str| KeyId(id.to_owned());

        let mut tx = store.begin().await.unwrap();
        tx.activate_key(&id("k-gen"), b"ref\x00\xff", &all_bytes())
            .await
            .unwrap();
        assert!(
            matches!(
                tx.activate_key(&id("k-gen"), b"x", b"y").await,
                Err(Error::NotFound(_))
            ),
            "{name}: activated twice"
        );
        assert!(
            !tx.abandon_generating_key(&id("k-gen"), T).await.unwrap(),
            "{name}: an active key is not abandoned"
        );
        assert!(
            tx.abandon_generating_key(&id("k-lost"), T).await.unwrap(),
            "{name}"
        );
        assert!(
            !tx.abandon_generating_key(&id("k-lost"), T).await.unwrap(),
            "{name}"
        );
        assert!(
            matches!(
                tx.activate_key(&id("k-lost"), b"x", b"y").await,
                Err(Error::NotFound(_))
            ),
            "{name}: an abandoned key is not activated"
        );
        assert!(
            matches!(
                tx.activate_key(&id("k-none"), b"x", b"y").await,
                Err(Error::NotFound(_))
            ),
            "{name}"
        );
        tx.commit().await.unwrap();
        let active = store.key(&id("k-gen")).await.unwrap();
        assert_eq!(
            (
                active.state,
                active.reference.as_slice(),
                active.public_key.clone()
            ),
            (KeyState::Active, &b"ref\x00\xff"[..], all_bytes()),
            "{name}"
        );
        assert_eq!(active.label, "eidportal-k-gen-ключ", "{name}");
        assert_eq!(
            store.key(&id("k-lost")).await.unwrap().state,
            KeyState::Abandoned,
            "{name}"
        );

        // Destroying keeps the reference (to find the key in its backend); destroyed erases it.
        let mut tx = store.begin().await.unwrap();
        tx.mark_key_destroying(&id("k-lost"), T).await.unwrap();
        assert_eq!(
            tx.key(&id("k-lost")).await.unwrap().state,
            KeyState::Abandoned,
            "{name}: only an active key is marked destroying"
        );
        tx.mark_key_destroying(&id("k-gen"), T.plus_seconds(1))
            .await
            .unwrap();
        let destroying = tx.key(&id("k-gen")).await.unwrap();
        assert_eq!(
            (destroying.state, destroying.reference.as_slice()),
            (KeyState::Destroying, &b"ref\x00\xff"[..]),
            "{name}"
        );
        tx.destroy_key(&id("k-gen"), T.plus_seconds(2))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let destroyed = store.key(&id("k-gen")).await.unwrap();
        assert_eq!(destroyed.state, KeyState::Destroyed, "{name}");
        assert!(
            destroyed.reference.is_empty(),
            "{name}: the reference is erased"
        );
        assert_eq!(
            destroyed.public_key,
            all_bytes(),
            "{name}: the public key stays"
        );
    }
}

#[tokio::test]
async fn keys_left_half_way_are_old_generating_ones_and_every_destroying_one() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        let at = |seconds| T.plus_seconds(seconds);
        for (id, state, created) in [
            ("k-gen-old-b", KeyState::Generating, at(-100)),
            ("k-gen-old-a", KeyState::Generating, at(-100)),
            ("k-gen-new", KeyState::Generating, at(0)),
            ("k-destroying-new", KeyState::Destroying, at(50)),
            ("k-destroying-old", KeyState::Destroying, at(-200)),
            ("k-active", KeyState::Active, at(-300)),
            ("k-destroyed", KeyState::Destroyed, at(-300)),
            ("k-abandoned", KeyState::Abandoned, at(-300)),
        ] {
            insert_key(store, &key(id, state, created)).await;
        }
        // In no promised order.
        let ids = |keys: Vec<KeyRecord>| {
            let mut ids = keys.into_iter().map(|k| k.id.0).collect::<Vec<_>>();
            ids.sort();
            ids
        };
        assert_eq!(
            ids(store.keys_left_half_way(T).await.unwrap()),
            [
                "k-destroying-new",
                "k-destroying-old",
                "k-gen-old-a",
                "k-gen-old-b"
            ],
            "{name}: generating before T (not at T), and every destroying one"
        );
        assert_eq!(
            ids(store.keys_left_half_way(at(-100)).await.unwrap()),
            ["k-destroying-new", "k-destroying-old"],
            "{name}"
        );
        let found = store.keys_left_half_way(T).await.unwrap();
        let old = found.iter().find(|k| k.id.0 == "k-destroying-old").unwrap();
        assert!(
            same_key(
                old,
                &key("k-destroying-old", KeyState::Destroying, at(-200))
            ),
            "{name}"
        );
    }
}
