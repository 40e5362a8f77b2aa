//! The audit log on SQLite and PostgreSQL: appends chain, and any change to a stored entry, a
//! removed entry or a reordered one is found by `verify_chain`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use domain::UnixTime;
use store::{verify_chain, AuditLog as _, AuditQueries as _, Store};

async fn append(store: &Store, n: i64) {
    for i in 0..n {
        let mut tx = store.begin().await.unwrap();
        tx.audit(
            UnixTime(1000 + i),
            "officer",
            "test.event",
            serde_json::json!({ "i": i }),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
}

async fn verify(store: &Store) -> Result<usize, store::ChainBreak> {
    verify_chain(
        &store.audit_entries().await.unwrap(),
        &store.audit_head().await.unwrap(),
    )
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
        tx.audit(
            UnixTime(2000),
            "officer",
            "rolled.back",
            serde_json::json!({}),
        )
        .await
        .unwrap();
        drop(tx);
        assert_eq!(verify(&store).await, Ok(5), "{}", db.name);

        let raw = sqlx::AnyPool::connect(&db.url).await.unwrap();
        // 1. A changed detail.
        sqlx::query("UPDATE audit_log SET details = '{\"i\":99}' WHERE seq = 3")
            .execute(&raw)
            .await
            .unwrap();
        let broken = verify(&store).await.unwrap_err();
        assert_eq!(broken.seq, 3, "{}: {broken}", db.name);
        sqlx::query("UPDATE audit_log SET details = '{\"i\":2}' WHERE seq = 3")
            .execute(&raw)
            .await
            .unwrap();
        assert_eq!(verify(&store).await, Ok(5));
        // 2. The last entry removed.
        sqlx::query("DELETE FROM audit_log WHERE seq = 5")
            .execute(&raw)
            .await
            .unwrap();
        assert!(
            verify(&store).await.is_err(),
            "{}: a removed last entry must be found",
            db.name
        );
        // 3. An entry in the middle removed.
        sqlx::query("DELETE FROM audit_log WHERE seq = 2")
            .execute(&raw)
            .await
            .unwrap();
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

/// The plain hash of an entry, as an earlier release (and anyone who reads the code) computes
/// it: what an attacker with database access but without the key can recompute.
fn plain_hash(prev: &str, seq: i64, at: i64, actor: &str, event: &str, details: &str) -> String {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    for field in [
        prev,
        &seq.to_string(),
        &at.to_string(),
        actor,
        event,
        details,
    ] {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Rewrites every entry from `from` on as a plain chain, `change` applied to each entry
/// (actor, event, details) first, and moves the head: a rewrite with SQL alone.
async fn recompute_plain(
    raw: &sqlx::AnyPool,
    from: i64,
    change: impl Fn(i64, &mut (String, String, String)),
) {
    use sqlx::Row as _;
    let rows =
        sqlx::query("SELECT seq, at, actor, event, details, prev_hash FROM audit_log ORDER BY seq")
            .fetch_all(raw)
            .await
            .unwrap();
    let mut prev = String::new();
    let mut last = (0i64, String::new());
    for row in rows {
        let seq: i64 = row.get(0);
        let at: i64 = row.get(1);
        let mut fields: (String, String, String) = (row.get(2), row.get(3), row.get(4));
        if seq < from {
            let hash: String = sqlx::query("SELECT hash FROM audit_log WHERE seq = $1")
                .bind(seq)
                .fetch_one(raw)
                .await
                .unwrap()
                .get(0);
            prev = hash;
            continue;
        }
        change(seq, &mut fields);
        let hash = plain_hash(&prev, seq, at, &fields.0, &fields.1, &fields.2);
        sqlx::query("UPDATE audit_log SET actor = $1, event = $2, details = $3, prev_hash = $4, hash = $5 WHERE seq = $6")
            .bind(&fields.0)
            .bind(&fields.1)
            .bind(&fields.2)
            .bind(&prev)
            .bind(&hash)
            .bind(seq)
            .execute(raw)
            .await
            .unwrap();
        prev = hash.clone();
        last = (seq, hash);
    }
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(last.0)
        .bind(&last.1)
        .execute(raw)
        .await
        .unwrap();
}

fn audit_key(byte: u8) -> store::AuditKey {
    store::AuditKey::from_secret(zeroize::Zeroizing::new([byte; 32]))
}

async fn verify_keyed(
    store: &Store,
    checkpoints: &[store::Checkpoint],
) -> Result<usize, store::ChainBreak> {
    let entries = store.audit_entries().await.unwrap();
    store::verify_keyed_chain(
        &entries,
        &store.audit_head().await.unwrap(),
        &audit_key(7),
        checkpoints,
    )
}

/// Finding 9: a chain written by an earlier release (plain hashes) still verifies after the
/// upgrade; from the marker on it is keyed, and a rewrite recomputed without the key, a
/// keyed part rewritten as a plain chain, or a log cut behind a checkpoint, are all found.
#[tokio::test]
async fn the_keyed_chain_finds_rewrites_made_without_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for db in store::test_support::databases(dir.path()).await {
        let name = db.name;
        // An earlier release's chain: 3 plain entries.
        let old = Store::connect(&db.url).await.unwrap();
        append(&old, 3).await;
        old.close().await;
        // The upgrade: the marker (entry 4), then keyed entries 5 to 7.
        let store = Store::connect(&db.url)
            .await
            .unwrap()
            .with_audit_key(audit_key(7), UnixTime(1500))
            .await
            .unwrap();
        assert_eq!(store.audit_keyed_from().await.unwrap(), Some(4), "{name}");
        append(&store, 3).await;
        assert_eq!(verify_keyed(&store, &[]).await, Ok(7), "{name}");
        let checkpoint = store::Checkpoint::new(
            &audit_key(7),
            UnixTime(1600),
            &store.audit_head().await.unwrap(),
            4,
        );
        assert_eq!(
            verify_keyed(&store, std::slice::from_ref(&checkpoint)).await,
            Ok(7),
            "{name}"
        );
        // A checkpoint MACed with another key is not ours.
        let forged = store::Checkpoint::new(
            &audit_key(8),
            UnixTime(1600),
            &store.audit_head().await.unwrap(),
            4,
        );
        assert!(verify_keyed(&store, &[forged]).await.is_err(), "{name}");

        let raw = sqlx::AnyPool::connect(&db.url).await.unwrap();
        let snapshot: Vec<store::AuditEntry> = store.audit_entries().await.unwrap();
        let restore = || async {
            for e in &snapshot {
                sqlx::query("UPDATE audit_log SET actor = $1, event = $2, details = $3, prev_hash = $4, hash = $5 WHERE seq = $6")
                    .bind(&e.actor)
                    .bind(&e.event)
                    .bind(&e.details)
                    .bind(&e.prev_hash)
                    .bind(&e.hash)
                    .bind(e.seq)
                    .execute(&raw)
                    .await
                    .unwrap();
            }
            let last = snapshot.last().unwrap();
            sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                .bind(last.seq)
                .bind(&last.hash)
                .execute(&raw)
                .await
                .unwrap();
        };

        // 1. Entry 6 changed and the chain recomputed from it with plain hashes: its MAC is wrong.
        recompute_plain(&raw, 6, |seq, f| {
            if seq == 6 {
                f.2 = "{\"i\":99}".into()
            }
        })
        .await;
        let broken = verify_keyed(&store, &[]).await.unwrap_err();
        assert_eq!(broken.seq, 6, "{name}: {broken}");
        assert!(broken.what.contains("MAC"), "{name}: {broken}");
        restore().await;
        assert_eq!(
            verify_keyed(&store, std::slice::from_ref(&checkpoint)).await,
            Ok(7),
            "{name}"
        );

        // 2. The marker turned into an ordinary entry and everything after it recomputed as a
        //    plain chain: the plain chain holds, but not where the checkpoint says it is keyed.
        recompute_plain(&raw, 4, |seq, f| {
            if seq == 4 {
                f.1 = "test.event".into()
            }
        })
        .await;
        assert_eq!(
            verify_chain(
                &store.audit_entries().await.unwrap(),
                &store.audit_head().await.unwrap()
            ),
            Ok(7),
            "{name}: a valid plain chain"
        );
        let broken = verify_keyed(&store, std::slice::from_ref(&checkpoint))
            .await
            .unwrap_err();
        assert!(
            broken.to_string().contains("checkpoint") || broken.to_string().contains("keyed"),
            "{name}: {broken}"
        );
        restore().await;

        // 3. The last two entries removed and the head moved back: behind the checkpoint.
        let kept = &snapshot[4];
        sqlx::query("DELETE FROM audit_log WHERE seq > 5")
            .execute(&raw)
            .await
            .unwrap();
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(kept.seq)
            .bind(&kept.hash)
            .execute(&raw)
            .await
            .unwrap();
        assert_eq!(
            verify_keyed(&store, &[]).await,
            Ok(5),
            "{name}: without a checkpoint, a cut log looks whole"
        );
        let broken = verify_keyed(&store, std::slice::from_ref(&checkpoint))
            .await
            .unwrap_err();
        assert!(broken.what.contains("removed"), "{name}: {broken}");
        raw.close().await;
        store.close().await;
    }
}
