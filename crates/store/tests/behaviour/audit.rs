//! `AuditLog` and the chain: entries appended in order inside the use case's transaction,
//! read back exactly; `verify_chain` and `verify_keyed_chain` finding what was changed;
//! the audit key's marker; checkpoints.

use domain::UnixTime;
use store::{
    verify_chain, verify_keyed_chain, AuditEntry, AuditKey, AuditLog as _, AuditQueries as _,
    Checkpoint, Store,
};

use crate::support::{databases, T};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn audit_key(byte: u8) -> AuditKey {
    AuditKey::from_secret(zeroize::Zeroizing::new([byte; 32]))
}

async fn append(store: &Store, at: UnixTime, actor: &str, details: serde_json::Value) {
    let mut tx = store.begin().await.unwrap();
    tx.audit(at, actor, "test.event", details).await.unwrap();
    tx.commit().await.unwrap();
}

async fn chain(store: &Store) -> (Vec<AuditEntry>, (i64, String)) {
    (
        store.audit_entries().await.unwrap(),
        store.audit_head().await.unwrap(),
    )
}

#[tokio::test]
async fn entries_are_appended_in_order_exactly_and_a_rollback_appends_nothing() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        assert_eq!(
            chain(store).await,
            (Vec::new(), (0, GENESIS.to_owned())),
            "{name}: empty"
        );
        let details =
            serde_json::json!({ "serial": "7f", "имe": "Јелена 👩", "n": [1, 2.5, null] });
        let mut tx = store.begin().await.unwrap();
        tx.audit(T, "user:u-1", "certificate.revoked", details.clone())
            .await
            .unwrap();
        tx.audit(
            T.plus_seconds(1),
            "officer",
            "account.proofed",
            serde_json::json!({}),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.audit(
            T.plus_seconds(2),
            "system",
            "rolled.back",
            serde_json::json!({}),
        )
        .await
        .unwrap();
        drop(tx);
        append(store, UnixTime(-1), "службеник", serde_json::json!("текст")).await;

        let (entries, head) = chain(store).await;
        let fields: Vec<_> = entries
            .iter()
            .map(|e| {
                (
                    e.seq,
                    e.at,
                    e.actor.as_str(),
                    e.event.as_str(),
                    e.details.clone(),
                )
            })
            .collect();
        assert_eq!(
            fields,
            [
                (1, T, "user:u-1", "certificate.revoked", details.to_string()),
                (
                    2,
                    T.plus_seconds(1),
                    "officer",
                    "account.proofed",
                    "{}".to_owned()
                ),
                (
                    3,
                    UnixTime(-1),
                    "службеник",
                    "test.event",
                    "\"текст\"".to_owned()
                ),
            ],
            "{name}: in order, with no gap for the rolled-back entry"
        );
        assert_eq!(entries[0].prev_hash, GENESIS, "{name}");
        for pair in entries.windows(2) {
            assert_eq!(pair[1].prev_hash, pair[0].hash, "{name}: linked");
        }
        for entry in &entries {
            assert_eq!(
                entry.hash,
                entry.expected_hash(),
                "{name}: plain hashes without a key"
            );
        }
        assert_eq!(head, (3, entries[2].hash.clone()), "{name}");
        assert_eq!(verify_chain(&entries, &head), Ok(3), "{name}");
    }
}

#[tokio::test]
async fn verify_chain_finds_a_changed_removed_or_reordered_entry_and_a_wrong_head() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        for i in 0..4 {
            append(
                store,
                T.plus_seconds(i),
                "officer",
                serde_json::json!({ "i": i }),
            )
            .await;
        }
        let (entries, head) = chain(store).await;
        assert_eq!(verify_chain(&entries, &head), Ok(4), "{name}");
        let broken_at = |entries: &[AuditEntry], head: &(i64, String)| {
            verify_chain(entries, head).map_err(|e| e.seq)
        };
        let changed = |change: fn(&mut AuditEntry)| {
            let mut copy = entries.clone();
            change(&mut copy[2]);
            copy
        };
        assert_eq!(
            broken_at(&changed(|e| e.details = "{\"i\":9}".into()), &head),
            Err(3)
        );
        assert_eq!(
            broken_at(&changed(|e| e.actor = "attacker".into()), &head),
            Err(3)
        );
        assert_eq!(
            broken_at(&changed(|e| e.event = "other".into()), &head),
            Err(3)
        );
        assert_eq!(
            broken_at(&changed(|e| e.at = UnixTime(e.at.0 + 1)), &head),
            Err(3)
        );
        let mut removed = entries.clone();
        removed.remove(1);
        assert!(
            broken_at(&removed, &head).is_err(),
            "{name}: a removed entry"
        );
        let mut swapped = entries.clone();
        swapped.swap(1, 2);
        assert!(broken_at(&swapped, &head).is_err(), "{name}: reordered");
        let last_gone = &entries[..3];
        assert_eq!(
            broken_at(last_gone, &head),
            Err(4),
            "{name}: the last entry removed"
        );
        assert!(
            broken_at(&entries, &(4, "0".repeat(64))).is_err(),
            "{name}: another head"
        );
    }
}

#[tokio::test]
async fn the_audit_key_adds_one_marker_macs_what_follows_and_is_set_once() {
    for db in &databases().await {
        let name = db.name;
        let store = Store::connect(&db.url).await.unwrap();
        append(&store, T, "officer", serde_json::json!({ "before": true })).await;
        assert!(store.audit_key().is_none(), "{name}");
        assert_eq!(store.audit_keyed_from().await.unwrap(), None, "{name}");
        store
            .enable_audit_key(audit_key(7), T.plus_seconds(1))
            .await
            .unwrap();
        assert!(
            store.clone().audit_key().is_some(),
            "{name}: every clone has it"
        );
        assert!(
            store.enable_audit_key(audit_key(8), T).await.is_err(),
            "{name}: a second key"
        );
        assert_eq!(store.audit_keyed_from().await.unwrap(), Some(2), "{name}");
        append(
            &store,
            T.plus_seconds(2),
            "officer",
            serde_json::json!({ "after": 1 }),
        )
        .await;
        // Another process starting with the key: no second marker.
        let other = Store::connect(&db.url)
            .await
            .unwrap()
            .with_audit_key(audit_key(7), T.plus_seconds(3))
            .await
            .unwrap();
        append(
            &other,
            T.plus_seconds(4),
            "officer",
            serde_json::json!({ "after": 2 }),
        )
        .await;
        assert_eq!(other.audit_keyed_from().await.unwrap(), Some(2), "{name}");

        let (entries, head) = chain(&store).await;
        assert_eq!(entries.len(), 4, "{name}");
        let marker = &entries[1];
        assert_eq!(
            (marker.actor.as_str(), marker.event.as_str(), marker.at),
            ("system", "audit.keyed", T.plus_seconds(1)),
            "{name}"
        );
        let key = audit_key(7);
        assert_eq!(
            entries[0].hash,
            entries[0].expected_hash(),
            "{name}: before the marker"
        );
        for entry in &entries[1..] {
            assert_eq!(
                entry.hash,
                entry.expected_mac(&key),
                "{name}: from the marker on"
            );
        }
        assert_eq!(
            verify_keyed_chain(&entries, &head, &key, &[]),
            Ok(4),
            "{name}"
        );
        assert!(
            verify_keyed_chain(&entries, &head, &audit_key(8), &[]).is_err(),
            "{name}"
        );
        assert_eq!(
            verify_chain(&entries, &head).map_err(|e| e.seq),
            Err(2),
            "{name}: a keyed chain is not a plain one"
        );
        // A changed keyed entry is found even with its plain hash recomputed.
        let mut forged = entries.clone();
        forged[2].details = "{\"after\":9}".into();
        forged[2].hash = forged[2].expected_hash();
        forged[3].prev_hash = forged[2].hash.clone();
        forged[3].hash = forged[3].expected_mac(&key);
        let forged_head = (4, forged[3].hash.clone());
        assert_eq!(
            verify_keyed_chain(&forged, &forged_head, &key, &[]).map_err(|e| e.seq),
            Err(3),
            "{name}"
        );
    }
}

#[tokio::test]
async fn checkpoints_round_trip_as_json_and_pin_the_head_and_the_keyed_part() {
    for db in &databases().await {
        let name = db.name;
        let key = audit_key(7);
        let store = Store::connect(&db.url)
            .await
            .unwrap()
            .with_audit_key(audit_key(7), T)
            .await
            .unwrap();
        for i in 0..3 {
            append(
                &store,
                T.plus_seconds(i),
                "officer",
                serde_json::json!({ "i": i }),
            )
            .await;
        }
        let (entries, head) = chain(&store).await;
        assert_eq!(store.audit_keyed_from().await.unwrap(), Some(1), "{name}");
        let checkpoint = Checkpoint::new(&key, T.plus_seconds(10), &head, 1);
        assert_eq!(
            (
                checkpoint.at,
                checkpoint.seq,
                checkpoint.hash.as_str(),
                checkpoint.keyed_from
            ),
            (T.plus_seconds(10), 4, head.1.as_str(), 1),
            "{name}"
        );
        assert_eq!(
            Checkpoint::from_json(&checkpoint.to_json()),
            Some(checkpoint.clone())
        );
        assert_eq!(Checkpoint::from_json("{\"at\": 1}"), None, "{name}");
        assert_eq!(Checkpoint::from_json("not json"), None, "{name}");
        let pinned = std::slice::from_ref(&checkpoint);
        assert_eq!(
            verify_keyed_chain(&entries, &head, &key, pinned),
            Ok(4),
            "{name}"
        );

        // Cut behind the checkpoint (the head moved back with it): found only with it.
        let cut = &entries[..3];
        let cut_head = (3, entries[2].hash.clone());
        assert_eq!(
            verify_keyed_chain(cut, &cut_head, &key, &[]),
            Ok(3),
            "{name}"
        );
        assert!(
            verify_keyed_chain(cut, &cut_head, &key, pinned).is_err(),
            "{name}"
        );
        // A checkpoint of another key, or claiming another start of the keyed part.
        let foreign = Checkpoint::new(&audit_key(8), T, &head, 1);
        assert!(
            verify_keyed_chain(&entries, &head, &key, &[foreign]).is_err(),
            "{name}"
        );
        let elsewhere = Checkpoint::new(&key, T, &head, 2);
        assert!(
            verify_keyed_chain(&entries, &head, &key, &[elsewhere]).is_err(),
            "{name}"
        );
        let mut tampered = checkpoint.clone();
        tampered.seq = 3;
        assert!(
            verify_keyed_chain(&entries, &head, &key, &[tampered]).is_err(),
            "{name}"
        );
        // A later entry does not invalidate an earlier checkpoint.
        append(&store, T.plus_seconds(20), "officer", serde_json::json!({})).await;
        let (entries, head) = chain(&store).await;
        assert_eq!(
            verify_keyed_chain(&entries, &head, &key, pinned),
            Ok(5),
            "{name}"
        );
    }
}
