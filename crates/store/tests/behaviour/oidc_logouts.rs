//! The back-channel logout queue (`queue_oidc_logouts` and the delivery's queries): one logout
//! per client that got tokens in each session concerned, never queued twice, due in order of
//! their time, delivered, retried or given up, and purged once settled.

use domain::oidc::{Grant, TokenRecord};
use domain::{UnixTime, UserId};
use store::{LogoutRecord, LogoutScope, OidcQueries as _, OidcStore as _};

use crate::oidc::{grant, insert_tokens, token};
use crate::support::{databases, T};

fn in_session(client: &str, user: &str, sid: &str) -> Grant {
    Grant {
        sid: sid.to_owned(),
        ..grant(client, user)
    }
}

/// (client, sid) of the logouts due at `now`, in their order.
async fn due(store: &store::Store, now: UnixTime) -> Vec<(String, String)> {
    store
        .due_oidc_logouts(now, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.client_id, l.sid))
        .collect()
}

fn pair(client: &str, sid: &str) -> (String, String) {
    (client.to_owned(), sid.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_is_queued_once_per_client_and_session_concerned() {
    for db in &databases().await {
        let name = db.name;
        let u1 = UserId::from("u-1");
        let tokens: Vec<TokenRecord> = [
            ("t-1", "c-1", "u-1", "s-1"),
            ("t-2", "c-1", "u-1", "s-1"),
            ("t-3", "c-2", "u-1", "s-1"),
            ("t-4", "c-1", "u-1", "s-2"),
            ("t-5", "c-3", "u-1", "s-3"),
            ("t-6", "c-1", "u-2", "s-9"),
        ]
        .into_iter()
        .map(|(hash, client, user, sid)| token(hash, None, in_session(client, user, sid)))
        .collect();
        insert_tokens(&db.store, &tokens).await;
        assert_eq!(
            db.store.next_oidc_logout_due().await.unwrap(),
            None,
            "{name}"
        );

        let mut tx = db.store.begin().await.unwrap();
        assert_eq!(
            tx.queue_oidc_logouts(LogoutScope::Session("s-1"), T)
                .await
                .unwrap(),
            2,
            "{name}: c-1 (two tokens) and c-2, once each"
        );
        drop(tx);
        assert!(due(&db.store, T).await.is_empty(), "{name}: rolled back");

        let mut tx = db.store.begin().await.unwrap();
        assert_eq!(
            tx.queue_oidc_logouts(LogoutScope::Session("s-1"), T)
                .await
                .unwrap(),
            2,
            "{name}"
        );
        assert_eq!(
            tx.queue_oidc_logouts(LogoutScope::Session("s-1"), T)
                .await
                .unwrap(),
            0,
            "{name}: not twice"
        );
        assert_eq!(
            tx.queue_oidc_logouts(LogoutScope::Client(&u1, "c-1"), T.plus_seconds(1))
                .await
                .unwrap(),
            1,
            "{name}: c-1's other session (s-2) only"
        );
        assert_eq!(
            tx.queue_oidc_logouts(LogoutScope::User(&u1), T.plus_seconds(2))
                .await
                .unwrap(),
            1,
            "{name}: the citizen's last one (c-3 in s-3); not u-2's"
        );
        assert_eq!(
            tx.queue_oidc_logouts(LogoutScope::Session("s-none"), T)
                .await
                .unwrap(),
            0,
            "{name}"
        );
        tx.commit().await.unwrap();
        let mut queued = due(&db.store, T.plus_seconds(2)).await;
        queued.sort();
        assert_eq!(
            queued,
            [
                pair("c-1", "s-1"),
                pair("c-1", "s-2"),
                pair("c-2", "s-1"),
                pair("c-3", "s-3"),
            ],
            "{name}"
        );
        assert_eq!(
            due(&db.store, T).await.len(),
            2,
            "{name}: due from when queued"
        );
        let records = db.store.due_oidc_logouts(T, 1).await.unwrap();
        assert_eq!(records.len(), 1, "{name}: at most the limit");
        assert_eq!(records[0].user_id, u1, "{name}");
        assert_eq!(records[0].attempts, 0, "{name}");
        assert_eq!(records[0].created_at, T, "{name}");
        assert_eq!(
            db.store.next_oidc_logout_due().await.unwrap(),
            Some(T),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_names_the_account_only_to_the_client_that_got_tokens_in_it() {
    for db in &databases().await {
        let name = db.name;
        insert_tokens(
            &db.store,
            &[
                token("t-1", None, in_session("c-1", "u-1", "s-1")),
                token("t-2", None, in_session("c-2", "u-2", "s-2")),
            ],
        )
        .await;
        let mut tx = db.store.begin().await.unwrap();
        assert_eq!(
            tx.oidc_user_of_session("c-1", "s-1").await.unwrap(),
            Some(UserId::from("u-1")),
            "{name}"
        );
        assert_eq!(
            tx.oidc_user_of_session("c-2", "s-1").await.unwrap(),
            None,
            "{name}: another client"
        );
        assert_eq!(
            tx.oidc_user_of_session("c-1", "s-9").await.unwrap(),
            None,
            "{name}: no such session"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sessions_that_expired_in_a_window_queue_their_logouts_once() {
    for db in &databases().await {
        let name = db.name;
        let expiring = |hash, client, sid, at: Option<i64>| {
            token(
                hash,
                None,
                Grant {
                    session_expires_at: at.map(|s| T.plus_seconds(s)),
                    ..in_session(client, "u-1", sid)
                },
            )
        };
        insert_tokens(
            &db.store,
            &[
                expiring("t-1", "c-1", "s-1", Some(100)),
                expiring("t-2", "c-2", "s-1", Some(100)),
                expiring("t-3", "c-1", "s-2", Some(200)),
                // CIBA: no portal session.
                expiring("t-4", "c-3", "s-3", None),
            ],
        )
        .await;
        let expired = |after: i64, now: i64| async move {
            let mut tx = db.store.begin().await.unwrap();
            let queued = tx
                .queue_oidc_logouts(
                    LogoutScope::ExpiredAfter(T.plus_seconds(after)),
                    T.plus_seconds(now),
                )
                .await
                .unwrap();
            tx.commit().await.unwrap();
            queued
        };
        assert_eq!(expired(0, 99).await, 0, "{name}: none expired yet");
        assert_eq!(expired(0, 150).await, 2, "{name}: s-1's two services");
        assert_eq!(expired(150, 250).await, 1, "{name}: then s-2's");
        assert_eq!(expired(0, 10_000).await, 0, "{name}: each once");
        let mut queued = due(&db.store, T.plus_seconds(10_000)).await;
        queued.sort();
        assert_eq!(
            queued,
            [pair("c-1", "s-1"), pair("c-1", "s-2"), pair("c-2", "s-1")],
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_is_delivered_retried_or_given_up_and_purged_once_settled() {
    for db in &databases().await {
        let name = db.name;
        insert_tokens(
            &db.store,
            &[
                token("t-1", None, in_session("c-1", "u-1", "s-1")),
                token("t-2", None, in_session("c-2", "u-1", "s-1")),
                token("t-3", None, in_session("c-3", "u-1", "s-1")),
            ],
        )
        .await;
        let mut tx = db.store.begin().await.unwrap();
        tx.queue_oidc_logouts(LogoutScope::Session("s-1"), T)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let record = |client: &str| LogoutRecord {
            client_id: client.to_owned(),
            sid: "s-1".to_owned(),
            user_id: UserId::from("u-1"),
            attempts: 0,
            created_at: T,
        };
        let at = T.plus_seconds(3);
        db.store
            .record_oidc_logout(&record("c-1"), at, Ok(()))
            .await
            .unwrap();
        db.store
            .record_oidc_logout(
                &record("c-2"),
                at,
                Err((Some(at.plus_seconds(60)), "HTTP 500".into())),
            )
            .await
            .unwrap();
        db.store
            .record_oidc_logout(&record("c-3"), at, Err((None, "gone".into())))
            .await
            .unwrap();
        assert!(due(&db.store, at).await.is_empty(), "{name}");
        assert_eq!(
            db.store.next_oidc_logout_due().await.unwrap(),
            Some(at.plus_seconds(60)),
            "{name}: the retry only"
        );
        let retried = db
            .store
            .due_oidc_logouts(at.plus_seconds(60), 10)
            .await
            .unwrap();
        assert_eq!(retried.len(), 1, "{name}");
        assert_eq!(retried[0].client_id, "c-2", "{name}");
        assert_eq!(retried[0].attempts, 1, "{name}: the attempt counted");

        // A delivered or given-up logout is not queued again for the same session.
        let mut tx = db.store.begin().await.unwrap();
        assert_eq!(
            tx.queue_oidc_logouts(LogoutScope::Session("s-1"), at)
                .await
                .unwrap(),
            0,
            "{name}"
        );
        tx.commit().await.unwrap();

        // Unless the service got tokens in that session since its logout was delivered (it
        // logged the citizen in again): then it is told once more, and only it.
        let mut late = token("t-4", None, in_session("c-1", "u-1", "s-1"));
        late.created_at = at.plus_seconds(5);
        insert_tokens(&db.store, &[late]).await;
        let again = at.plus_seconds(10);
        let mut tx = db.store.begin().await.unwrap();
        assert_eq!(
            tx.queue_oidc_logouts(LogoutScope::Session("s-1"), again)
                .await
                .unwrap(),
            1,
            "{name}: the service that logged in again"
        );
        tx.commit().await.unwrap();
        let requeued = db.store.due_oidc_logouts(again, 10).await.unwrap();
        assert_eq!(requeued.len(), 1, "{name}");
        assert_eq!(
            (requeued[0].client_id.as_str(), requeued[0].attempts),
            ("c-1", 0),
            "{name}"
        );
        db.store
            .record_oidc_logout(&requeued[0], again, Ok(()))
            .await
            .unwrap();

        // Purged once settled and older than the cut; a pending one stays.
        assert_eq!(db.store.purge_oidc(T).await.unwrap(), 0, "{name}");
        assert_eq!(
            db.store.purge_oidc(T.plus_seconds(1)).await.unwrap(),
            1,
            "{name}: the given-up (the delivered one was queued again since)"
        );
        assert_eq!(
            db.store.purge_oidc(again.plus_seconds(1)).await.unwrap(),
            1,
            "{name}: the one delivered again"
        );
        assert_eq!(
            db.store.next_oidc_logout_due().await.unwrap(),
            Some(at.plus_seconds(60)),
            "{name}"
        );
    }
}
