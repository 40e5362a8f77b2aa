//! The store itself: connecting (and migrating) on either database, what a commit makes
//! visible and to whom, and use cases that fail or roll back among others that commit (on
//! SQLite they share the writer's group commits, see `writer`).

use domain::{UnixTime, UserId};
use store::{
    AccountQueries as _, AccountStore as _, AuditLog as _, AuditQueries as _, DatabaseKind, Error,
    LoginQueries as _, LoginStore as _, Store,
};

use crate::support::{databases, insert_user, user, T};

#[tokio::test]
async fn a_url_that_names_no_supported_database_is_refused() {
    for url in [
        "mysql://localhost/x",
        "sqlite:",
        "sqlite://",
        "sqlite:?mode=rwc",
        "file.db",
    ] {
        assert!(
            matches!(Store::connect(url).await, Err(Error::UnsupportedUrl(_))),
            "{url}"
        );
    }
}

#[tokio::test]
async fn each_database_is_named_and_reopening_it_keeps_everything_and_migrates_nothing() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        let expected = if name == "sqlite" {
            DatabaseKind::Sqlite
        } else {
            DatabaseKind::Postgres
        };
        assert_eq!(store.kind(), expected, "{name}");
        insert_user(store, &user("u-1", "jelena@example.rs")).await;
        let mut tx = store.begin().await.unwrap();
        tx.audit(T, "officer", "test.event", serde_json::json!({}))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        store.close().await;

        // Another process opening the same database (and the `sqlite://` spelling).
        let url = db.url.replacen("sqlite:", "sqlite://", 1);
        let again = Store::connect(&url).await.unwrap();
        assert_eq!(again.kind(), expected, "{name}");
        assert!(
            again.user(&UserId::from("u-1")).await.unwrap().is_some(),
            "{name}"
        );
        assert_eq!(again.audit_entries().await.unwrap().len(), 1, "{name}");
        assert_eq!(again.audit_head().await.unwrap().0, 1, "{name}");
        let third = Store::connect(&db.url).await.unwrap();
        assert!(
            third
                .user_by_email("jelena@example.rs")
                .await
                .unwrap()
                .is_some(),
            "{name}"
        );
        again.close().await;
        third.close().await;
    }
}

#[tokio::test]
async fn a_commit_is_seen_by_another_store_and_nothing_before_it() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        let other = Store::connect(&db.url).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.insert_user(&user("u-1", "jelena@example.rs"))
            .await
            .unwrap();
        assert!(tx.use_nonce("n-1", T).await.unwrap(), "{name}");
        assert!(
            other.user(&UserId::from("u-1")).await.unwrap().is_none(),
            "{name}"
        );
        assert!(
            store.user(&UserId::from("u-1")).await.unwrap().is_none(),
            "{name}"
        );
        tx.commit().await.unwrap();
        assert!(
            other.user(&UserId::from("u-1")).await.unwrap().is_some(),
            "{name}"
        );
        assert!(
            !other.use_nonce("n-1", T).await.unwrap(),
            "{name}: its nonce is spent too"
        );
        other.close().await;
    }
}

/// Use case `i` spends nonce `n{i}`; every third then stores an account that already exists,
/// is refused and is dropped. The others commit, whatever the refused ones shared with them.
async fn use_case(store: Store, i: usize) -> bool {
    let mut tx = store.begin().await.unwrap();
    assert!(tx.use_nonce(&format!("n{i}"), T).await.unwrap());
    tokio::task::yield_now().await;
    if i % 3 == 0 {
        assert!(tx
            .insert_user(&user("u-1", "other@example.rs"))
            .await
            .is_err());
        drop(tx);
        return false;
    }
    tx.audit(
        T,
        "test",
        "transactions.test",
        serde_json::json!({ "i": i }),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_use_case_rolls_back_alone_while_the_others_commit() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        insert_user(store, &user("u-1", "jelena@example.rs")).await;
        let tasks: Vec<_> = (0..30)
            .map(|i| tokio::spawn(use_case(store.clone(), i)))
            .collect();
        let mut committed = Vec::new();
        for task in tasks {
            committed.push(task.await.unwrap());
        }
        let fresh = Store::connect(&db.url).await.unwrap();
        assert_eq!(fresh.audit_entries().await.unwrap().len(), 20, "{name}");
        for (i, was_committed) in committed.into_iter().enumerate() {
            assert_eq!(
                !fresh.use_nonce(&format!("n{i}"), T).await.unwrap(),
                was_committed,
                "{name}: use case {i}"
            );
        }
        fresh.close().await;
    }
}

/// A use case that goes on after the database refused one of its statements, and commits:
/// the commit says so and stores nothing, on both databases (PostgreSQL has aborted the
/// transaction at the refusal and answers its COMMIT with a rollback; SQLite would otherwise
/// commit the statements around the refused one). The audit log is held to the same rule.
#[tokio::test]
async fn a_commit_after_a_refused_statement_fails_and_stores_nothing() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        insert_user(store, &user("u-1", "jelena@example.rs")).await;
        let head = store.audit_head().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.insert_user(&user("u-2", "marko@example.rs"))
            .await
            .unwrap();
        tx.audit(T, "officer", "test.event", serde_json::json!({}))
            .await
            .unwrap();
        assert!(
            tx.insert_user(&user("u-1", "x@example.rs")).await.is_err(),
            "{name}"
        );
        assert!(
            matches!(tx.commit().await, Err(Error::Aborted)),
            "{name}: the commit after a refused statement did not fail"
        );
        assert!(
            store.user(&UserId::from("u-2")).await.unwrap().is_none(),
            "{name}: part of a failed use case was stored"
        );
        assert_eq!(
            store.audit_head().await.unwrap(),
            head,
            "{name}: audit entry stored"
        );

        // The next use case is not affected.
        let mut tx = store.begin().await.unwrap();
        tx.insert_user(&user("u-2", "marko@example.rs"))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(
            store.user(&UserId::from("u-2")).await.unwrap().is_some(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn time_and_counts_at_the_edges_of_their_range_round_trip() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        let mut tx = store.begin().await.unwrap();
        for (i, at) in [i64::MIN, -1, 0, i64::MAX].into_iter().enumerate() {
            tx.audit(
                UnixTime(at),
                "officer",
                "edge",
                serde_json::json!({ "i": i }),
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        let times: Vec<i64> = store
            .audit_entries()
            .await
            .unwrap()
            .iter()
            .map(|e| e.at.0)
            .collect();
        assert_eq!(times, [i64::MIN, -1, 0, i64::MAX], "{name}");
    }
}

/// PostgreSQL: a statement that runs (here: waits for a lock) longer than the pool's statement
/// timeout is cancelled, and its use case fails instead of hanging; the pool's size and
/// lifetime are taken as given. SQLite has no statement timeout (its writer is one turn).
#[tokio::test]
async fn a_statement_past_the_timeout_is_cancelled_and_its_use_case_fails() {
    use std::time::{Duration, Instant};
    const LIMIT: domain::RateLimit = domain::RateLimit {
        limit: 10,
        window: 600,
    };
    for db in &databases().await {
        if db.store.kind() != DatabaseKind::Postgres {
            continue;
        }
        let pool = store::PoolSettings {
            max_connections: 2,
            statement_timeout: Some(Duration::from_millis(500)),
            max_lifetime: Some(Duration::from_secs(60)),
        };
        let store = Store::connect_with(&db.url, pool).await.unwrap();
        // The first use case holds the counter's row lock; the second waits for it.
        let mut holder = store.begin().await.unwrap();
        assert!(holder.rate_limit("held", LIMIT, T).await.unwrap());
        let mut waiter = store.begin().await.unwrap();
        let started = Instant::now();
        let waited =
            tokio::time::timeout(Duration::from_secs(10), waiter.rate_limit("held", LIMIT, T))
                .await
                .expect("the statement timeout cancels the wait");
        assert!(waited.is_err(), "{}: {waited:?}", db.name);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{}: {:?}",
            db.name,
            started.elapsed()
        );
        drop(waiter);
        holder.commit().await.unwrap();
        // The pool's connections are still good after a cancelled statement.
        let mut again = store.begin().await.unwrap();
        assert!(again.rate_limit("held", LIMIT, T).await.unwrap());
        again.commit().await.unwrap();
    }
}
