//! The audit log on SQLite and PostgreSQL: appends chain, and any change to a stored entry, a
//! removed entry or a reordered one is found by `verify_chain`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use domain::UnixTime;
use store::{verify_chain, Store};

async fn append(store: &Store, n: i64) {
    for i in 0..n {
        let mut tx = store.begin().await.unwrap();
        tx.audit(UnixTime(1000 + i), "officer", "test.event", serde_json::json!({ "i": i })).await.unwrap();
        tx.commit().await.unwrap();
    }
}

async fn verify(store: &Store) -> Result<usize, store::ChainBreak> {
    verify_chain(&store.audit_entries().await.unwrap(), &store.audit_head().await.unwrap())
}

#[tokio::test]
async fn tampering_breaks_the_chain_on_every_store() {
    let dir = tempfile::tempdir().unwrap();
    for db in store::test_support::databases(dir.path()).await {
        let store = Store::connect(&db.url).await.unwrap();
        append(&store, 5).await;
        assert_eq!(verify(&store).await, Ok(5), "{}", db.name);
        // A rolled-back transaction leaves no entry and no gap.
        let mut tx = store.begin().await.unwrap();
        tx.audit(UnixTime(2000), "officer", "rolled.back", serde_json::json!({})).await.unwrap();
        drop(tx);
        assert_eq!(verify(&store).await, Ok(5), "{}", db.name);

        let raw = sqlx::AnyPool::connect(&db.url).await.unwrap();
        // 1. A changed detail.
        sqlx::query("UPDATE audit_log SET details = '{\"i\":99}' WHERE seq = 3").execute(&raw).await.unwrap();
        let broken = verify(&store).await.unwrap_err();
        assert_eq!(broken.seq, 3, "{}: {broken}", db.name);
        sqlx::query("UPDATE audit_log SET details = '{\"i\":2}' WHERE seq = 3").execute(&raw).await.unwrap();
        assert_eq!(verify(&store).await, Ok(5));
        // 2. The last entry removed.
        sqlx::query("DELETE FROM audit_log WHERE seq = 5").execute(&raw).await.unwrap();
        assert!(verify(&store).await.is_err(), "{}: a removed last entry must be found", db.name);
        // 3. An entry in the middle removed.
        sqlx::query("DELETE FROM audit_log WHERE seq = 2").execute(&raw).await.unwrap();
        assert_eq!(verify(&store).await.unwrap_err().seq, 3, "{}", db.name);
        raw.close().await;
        store.close().await;
    }
}

#[tokio::test]
async fn concurrent_appends_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    for db in store::test_support::databases(dir.path()).await {
        let store = Store::connect(&db.url).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move { append(&store, 10).await }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(verify(&store).await, Ok(40), "{}", db.name);
        store.close().await;
    }
}
