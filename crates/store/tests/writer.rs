//! Transactions under load, on SQLite (one writer connection, use cases grouped into shared
//! commits, each in its own savepoint) and on PostgreSQL: a use case that is dropped rolls back
//! alone while the others commit; what a commit returned for is visible to other connections;
//! two stores (two processes) on one SQLite file keep one audit chain.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use domain::UnixTime;
use store::{
    verify_chain, AuditLog as _, AuditQueries as _, LoginQueries as _, LoginStore as _, Store,
};

const FAR: UnixTime = UnixTime(i64::MAX / 2);

async fn chain_length(store: &Store) -> usize {
    verify_chain(
        &store.audit_entries().await.unwrap(),
        &store.audit_head().await.unwrap(),
    )
    .unwrap()
}

/// Use case `i`: records nonce `n{i}` and an audit entry, then commits, or (every third) is
/// dropped half-way.
async fn use_case(store: Store, i: usize) -> bool {
    let mut tx = store.begin().await.unwrap();
    assert!(tx.use_nonce(&format!("n{i}"), FAR).await.unwrap());
    tx.audit(
        UnixTime(1000),
        "test",
        "writer.test",
        serde_json::json!({ "i": i }),
    )
    .await
    .unwrap();
    // Others run meanwhile, so that on SQLite they queue for the writer and share commits.
    tokio::task::yield_now().await;
    if i % 3 == 0 {
        drop(tx);
        false
    } else {
        tx.commit().await.unwrap();
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_use_cases_roll_back_alone_and_the_others_commit() {
    let dir = tempfile::tempdir().unwrap();
    for db in store::test_support::databases(dir.path()).await {
        let store = Store::connect(&db.url).await.unwrap();
        let before = chain_length(&store).await;
        let tasks: Vec<_> = (0..60)
            .map(|i| tokio::spawn(use_case(store.clone(), i)))
            .collect();
        let mut committed = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            committed.push((i, task.await.unwrap()));
        }
        // Read through another connection: every commit that returned is there, nothing else.
        let fresh = Store::connect(&db.url).await.unwrap();
        let kept = committed.iter().filter(|(_, c)| *c).count();
        assert_eq!(chain_length(&fresh).await, before + kept, "{}", db.name);
        for (i, was_committed) in committed {
            // A nonce is new (true) exactly when its use case was rolled back.
            assert_eq!(
                fresh.use_nonce(&format!("n{i}"), FAR).await.unwrap(),
                !was_committed,
                "{}: use case {i}",
                db.name
            );
        }
        fresh.close().await;
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_sqlite_file_keep_one_audit_chain() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("shared.db").display());
    let first = Store::connect(&url).await.unwrap();
    let second = Store::connect(&url).await.unwrap();
    let before = chain_length(&first).await;
    // Each store's writer remembers the head it left; the other's appends make that stale.
    for round in 0..5 {
        for (name, store) in [("first", &first), ("second", &second)] {
            let mut tx = store.begin().await.unwrap();
            tx.audit(
                UnixTime(2000 + round),
                name,
                "writer.shared",
                serde_json::json!({ "round": round }),
            )
            .await
            .unwrap();
            tx.audit(
                UnixTime(2000 + round),
                name,
                "writer.shared",
                serde_json::json!({ "round": round, "second": true }),
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }
    }
    assert_eq!(chain_length(&first).await, before + 20);
    assert_eq!(chain_length(&second).await, before + 20);
    first.close().await;
    second.close().await;
}

#[tokio::test]
async fn a_nonce_is_spent_once_on_every_store() {
    let dir = tempfile::tempdir().unwrap();
    for db in store::test_support::databases(dir.path()).await {
        let store = Store::connect(&db.url).await.unwrap();
        assert!(
            store
                .use_nonce("device:nonce", UnixTime(100))
                .await
                .unwrap(),
            "{}",
            db.name
        );
        assert!(
            !store
                .use_nonce("device:nonce", UnixTime(100))
                .await
                .unwrap(),
            "{}: a replay",
            db.name
        );
        // Until purged, an expired nonce still counts as seen; after, it is gone.
        assert_eq!(
            store.purge_used_nonces(UnixTime(50)).await.unwrap(),
            0,
            "{}",
            db.name
        );
        assert!(
            !store
                .use_nonce("device:nonce", UnixTime(100))
                .await
                .unwrap(),
            "{}",
            db.name
        );
        assert_eq!(
            store.purge_used_nonces(UnixTime(101)).await.unwrap(),
            1,
            "{}",
            db.name
        );
        store.close().await;
    }
}
