//! CIBA's ping-mode notifications (CIBA Core §10.2) as the store keeps them: owed from the
//! request's making, due at its end or at once when the citizen answers (waking the worker),
//! taken by one attempt at a time, retried, delivered or given up once, and forgotten (the
//! `auth_req_id` and the client's token with them) when settled. A poll-mode request owes
//! nothing.

use domain::oidc::{CibaPing, CibaRecord, NotificationToken};
use domain::{TxnId, UnixTime};
use store::{Change, CibaPingDue, Database as _, OidcQueries as _, OidcStore as _};

use crate::changes::{until_listening, woken, SOON};
use crate::oidc::grant;
use crate::support::{databases, T};

const END: UnixTime = UnixTime(T.0 + 120);

fn request(id: &str, token: Option<&str>) -> CibaRecord {
    CibaRecord {
        id_hash: format!("hash-{id}"),
        client_id: "c-1".to_owned(),
        hint_hash: format!("hint-{id}"),
        txn_id: Some(TxnId::from(format!("txn-{id}"))),
        grant: Some(grant("c-1", "u-1")),
        created_at: T,
        expires_at: END,
        next_poll_at: T,
        closed_at: None,
        ping: token.map(|token| CibaPing {
            auth_req_id: format!("req-{id}"),
            token: NotificationToken::parse(token).unwrap(),
        }),
    }
}

/// The id hashes of the notifications due at `now`, in their order.
async fn due(store: &store::Store, now: UnixTime) -> Vec<String> {
    store
        .due_oidc_pings(now, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id_hash)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_is_due_when_the_citizen_answers_or_the_request_ends_and_the_worker_is_woken() {
    for db in &databases().await {
        let name = db.name;
        let store = &db.store;
        let mut tx = store.begin().await.unwrap();
        for (id, token) in [("1", Some("tok-1")), ("2", Some("tok-2")), ("3", None)] {
            tx.insert_oidc_ciba(&request(id, token)).await.unwrap();
        }
        tx.commit().await.unwrap();
        // Kept with the request, read back as given.
        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.oidc_ciba_for_update("hash-1").await.unwrap(),
            Some(request("1", Some("tok-1"))),
            "{name}"
        );
        drop(tx);
        // Owed, not yet due: at the latest when the requests end.
        assert!(due(store, END.plus_seconds(-1)).await.is_empty(), "{name}");
        assert_eq!(
            store.next_oidc_ping_due().await.unwrap(),
            Some(END),
            "{name}"
        );

        // The citizen answers request 1: due at once, and the worker is woken on commit.
        let watch = store.watch(&Change::CibaPings);
        until_listening(name, &watch).await;
        let next = watch.next();
        let answered = T.plus_seconds(30);
        let mut tx = store.begin().await.unwrap();
        assert!(
            tx.oidc_ciba_answered("hash-1", answered).await.unwrap(),
            "{name}"
        );
        assert!(
            !tx.oidc_ciba_answered("hash-3", answered).await.unwrap(),
            "{name}: a poll-mode request owes nothing"
        );
        assert!(
            !tx.oidc_ciba_answered("hash-9", answered).await.unwrap(),
            "{name}: unknown"
        );
        tx.commit().await.unwrap();
        assert!(woken(next, SOON).await, "{name}: the worker woken");
        assert_eq!(
            store.due_oidc_pings(answered, 100).await.unwrap(),
            vec![CibaPingDue {
                id_hash: "hash-1".into(),
                client_id: "c-1".into(),
                ping: request("1", Some("tok-1")).ping.unwrap(),
                attempts: 0,
                expires_at: END,
            }],
            "{name}"
        );
        assert_eq!(
            store.next_oidc_ping_due().await.unwrap(),
            Some(answered),
            "{name}"
        );
        // Unanswered, request 2 is due at its end; the poll-mode request never.
        assert_eq!(due(store, END).await, ["hash-1", "hash-2"], "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_is_taken_by_one_attempt_retried_and_settled_once_then_forgotten() {
    for db in &databases().await {
        let name = db.name;
        let store = &db.store;
        let mut tx = store.begin().await.unwrap();
        for id in ["1", "2"] {
            tx.insert_oidc_ciba(&request(id, Some("tok")))
                .await
                .unwrap();
            tx.oidc_ciba_answered(&format!("hash-{id}"), T)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();

        // One attempt takes it: a second worker finds it taken, and it is due again only when
        // the attempt's lease ends (a worker that stopped half-way).
        let lease = T.plus_seconds(60);
        assert!(
            store.claim_oidc_ping("hash-1", T, lease).await.unwrap(),
            "{name}"
        );
        assert!(
            !store.claim_oidc_ping("hash-1", T, lease).await.unwrap(),
            "{name}"
        );
        assert_eq!(due(store, T).await, ["hash-2"], "{name}");
        assert_eq!(due(store, lease).await, ["hash-2", "hash-1"], "{name}");

        // Request 1 failed: retried later, counted; an answer now changes nothing.
        let retry = T.plus_seconds(10);
        store
            .record_oidc_ping("hash-1", T, Err((Some(retry), "HTTP 503".into())))
            .await
            .unwrap();
        let mut tx = store.begin().await.unwrap();
        assert!(!tx.oidc_ciba_answered("hash-1", T).await.unwrap(), "{name}");
        tx.commit().await.unwrap();
        assert_eq!(due(store, T).await, ["hash-2"], "{name}");
        let again = store.due_oidc_pings(retry, 100).await.unwrap();
        let attempts: Vec<_> = again
            .iter()
            .map(|p| (p.id_hash.as_str(), p.attempts))
            .collect();
        assert_eq!(attempts, [("hash-2", 0), ("hash-1", 1)], "{name}");

        // Delivered once; given up once: neither is due again, and what was sent is forgotten.
        store
            .record_oidc_ping("hash-1", retry, Ok(()))
            .await
            .unwrap();
        store
            .record_oidc_ping("hash-2", retry, Err((None, "timed out".into())))
            .await
            .unwrap();
        assert!(
            due(store, END.plus_seconds(3600)).await.is_empty(),
            "{name}"
        );
        assert_eq!(store.next_oidc_ping_due().await.unwrap(), None, "{name}");
        let mut tx = store.begin().await.unwrap();
        for id in ["hash-1", "hash-2"] {
            let kept = tx.oidc_ciba_for_update(id).await.unwrap().unwrap();
            assert_eq!(kept.ping, None, "{name}: {id}'s token forgotten");
        }
        drop(tx);
    }
}
