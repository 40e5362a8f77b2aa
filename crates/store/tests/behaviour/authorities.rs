//! `CertificateStore` and `CertificateQueries`, the CA hierarchy's rows: each CA with its CRL,
//! its OCSP signer and its time-stamping unit, read for update, and the bootstrap's lock.

use domain::records::{KeyId, KeyState};
use domain::Serial;
use store::{CertificateQueries as _, CertificateStore as _, Error, Store};

use crate::support::{all_bytes, databases, insert_key, key, race, serial, END_OF_TIME, T};

/// The CA `name` with its key.
async fn insert_authority(store: &Store, name: &str, ca_serial: Serial) {
    insert_key(store, &key(&format!("key-{name}"), KeyState::Active, T)).await;
    let mut tx = store.begin().await.unwrap();
    tx.insert_authority(
        name,
        &ca_serial,
        &KeyId(format!("key-{name}")),
        &all_bytes(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn an_authority_round_trips_with_its_crl_ocsp_signer_and_time_stamping_unit() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        insert_authority(store, "root", serial(1)).await;
        insert_authority(store, "qualified", serial(2)).await;
        let fresh = store.authority("root").await.unwrap().unwrap();
        assert_eq!(
            (
                fresh.name.as_str(),
                fresh.serial,
                &fresh.key_id.0,
                fresh.certificate.clone()
            ),
            ("root", serial(1), &"key-root".to_owned(), all_bytes()),
            "{name}"
        );
        assert_eq!(
            (fresh.crl_number, fresh.crl.clone(), fresh.crl_next_update),
            (0, None, None),
            "{name}"
        );
        assert!(fresh.ocsp_signer.is_none() && fresh.tsa.is_none(), "{name}");
        assert!(
            store.authority("consentid").await.unwrap().is_none(),
            "{name}"
        );

        insert_key(store, &key("key-ocsp", KeyState::Active, T)).await;
        insert_key(store, &key("key-tsa", KeyState::Active, T)).await;
        let mut tx = store.begin().await.unwrap();
        assert!(
            matches!(
                tx.authority_for_update("consentid").await,
                Err(Error::NotFound(_))
            ),
            "{name}"
        );
        assert!(tx.authority("consentid").await.unwrap().is_none(), "{name}");
        tx.store_crl("qualified", 7, &[0x30, 0x00, 0xff], END_OF_TIME)
            .await
            .unwrap();
        tx.store_ocsp_signer(
            "qualified",
            &serial(3),
            &KeyId("key-ocsp".into()),
            b"ocsp\x00",
            T,
        )
        .await
        .unwrap();
        tx.store_tsa(
            "qualified",
            &serial(4),
            &KeyId("key-tsa".into()),
            b"tsa\xff",
            END_OF_TIME,
        )
        .await
        .unwrap();
        let locked = tx.authority_for_update("qualified").await.unwrap();
        assert_eq!(
            locked.crl_number, 7,
            "{name}: the transaction sees its writes"
        );
        tx.commit().await.unwrap();

        let qualified = store.authority("qualified").await.unwrap().unwrap();
        assert_eq!(
            (
                qualified.crl_number,
                qualified.crl.clone(),
                qualified.crl_next_update
            ),
            (7, Some(vec![0x30, 0x00, 0xff]), Some(END_OF_TIME)),
            "{name}"
        );
        assert_eq!(
            format!("{:?}", qualified.ocsp_signer),
            format!(
                "{:?}",
                Some((serial(3), KeyId("key-ocsp".into()), b"ocsp\x00".to_vec(), T))
            ),
            "{name}"
        );
        assert_eq!(
            format!("{:?}", qualified.tsa),
            format!(
                "{:?}",
                Some((
                    serial(4),
                    KeyId("key-tsa".into()),
                    b"tsa\xff".to_vec(),
                    END_OF_TIME
                ))
            ),
            "{name}"
        );
        assert_eq!(qualified.serial, serial(2), "{name}");
        // The other CA's row is untouched.
        let root = store.authority("root").await.unwrap().unwrap();
        assert!(
            root.crl.is_none() && root.ocsp_signer.is_none() && root.tsa.is_none(),
            "{name}"
        );
        // A second CA with one name is refused.
        let mut tx = store.begin().await.unwrap();
        let again = tx
            .insert_authority("root", &serial(9), &KeyId("key-root".into()), b"x")
            .await;
        assert!(again.is_err(), "{name}");
    }
}

/// A use case reading an authority for update waits for another that changed it, and sees
/// its change: two CRLs never get one number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authority_read_for_update_is_not_read_again_until_the_first_commits() {
    for db in &databases().await {
        let name = db.name;
        insert_authority(&db.store, "qualified", serial(2)).await;
        let (first, second) = race(db.name, &db.store, |mut tx: store::Tx| async move {
            let read = tx.authority_for_update("qualified").await.unwrap();
            let number = read.crl_number + 1;
            tx.store_crl("qualified", number, b"crl", END_OF_TIME)
                .await
                .unwrap();
            (tx, number)
        })
        .await;
        assert_eq!((first, second), (1, 2), "{name}: CRL numbers");
        let stored = db.store.authority("qualified").await.unwrap().unwrap();
        assert_eq!(stored.crl_number, 2, "{name}");
    }
}

/// Two processes creating the hierarchy at once: the second waits for the first's lock and
/// finds the root made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_locks_make_the_hierarchy_once() {
    for db in &databases().await {
        let name = db.name;
        insert_key(&db.store, &key("key-root", KeyState::Active, T)).await;
        let (first, second) = race(db.name, &db.store, |mut tx: store::Tx| async move {
            tx.lock_bootstrap().await.unwrap();
            let made = tx.authority("root").await.unwrap().is_none();
            if made {
                tx.insert_authority("root", &serial(1), &KeyId("key-root".into()), b"root")
                    .await
                    .unwrap();
            }
            (tx, made)
        })
        .await;
        assert_eq!((first, second), (true, false), "{name}: who made the root");
    }
}
