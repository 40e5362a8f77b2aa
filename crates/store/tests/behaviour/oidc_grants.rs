//! The OpenID provider's state after the code: refresh tokens rotated once (a second use names
//! the family to revoke), a family revoked whole, a token read inside a use case, and CIBA
//! requests open until closed or ended, polled, closed once, and purged when ended.

use domain::oidc::{CibaRecord, RefreshUse, TokenKind, TokenRecord};
use domain::TxnId;
use store::{OidcQueries as _, OidcStore as _};

use crate::oidc::{grant, insert_tokens, revoked, token};
use crate::support::{databases, race, T};

fn refresh_token(hash: &str, family: &str) -> TokenRecord {
    TokenRecord {
        kind: TokenKind::Refresh,
        family: family.to_owned(),
        expires_at: T.plus_seconds(1000),
        ..token(hash, Some("code-1"), grant("c-1", "u-1"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_is_rotated_once_and_a_second_use_names_its_family() {
    for db in &databases().await {
        let name = db.name;
        let r1 = refresh_token("r-1", "f-1");
        insert_tokens(
            &db.store,
            &[
                r1.clone(),
                TokenRecord {
                    family: "f-1".to_owned(),
                    ..token("a-1", Some("code-1"), grant("c-1", "u-1"))
                },
                TokenRecord {
                    expires_at: T.plus_seconds(10),
                    ..refresh_token("r-ended", "f-2")
                },
                TokenRecord {
                    revoked_at: Some(T),
                    ..refresh_token("r-revoked", "f-3")
                },
                refresh_token("r-race", "f-4"),
            ],
        )
        .await;

        let mut tx = db.store.begin().await.unwrap();
        assert!(
            matches!(
                tx.use_oidc_refresh_token("r-1", T).await.unwrap(),
                RefreshUse::First(_)
            ),
            "{name}"
        );
        drop(tx);
        let at = T.plus_seconds(5);
        let mut tx = db.store.begin().await.unwrap();
        assert_eq!(
            tx.use_oidc_refresh_token("r-1", at).await.unwrap(),
            RefreshUse::First(Box::new(TokenRecord {
                used_at: Some(at),
                ..r1.clone()
            })),
            "{name}: a rollback spent nothing"
        );
        for (hash, now, why) in [
            ("a-1", at, "an access token is no refresh token"),
            ("r-ended", T.plus_seconds(10), "ended"),
            ("r-revoked", at, "revoked"),
            ("r-9", at, "unknown"),
        ] {
            assert_eq!(
                tx.use_oidc_refresh_token(hash, now).await.unwrap(),
                RefreshUse::Unknown,
                "{name}: {why}"
            );
        }
        tx.commit().await.unwrap();
        let mut tx = db.store.begin().await.unwrap();
        assert_eq!(
            tx.use_oidc_refresh_token("r-1", at.plus_seconds(1))
                .await
                .unwrap(),
            RefreshUse::Reused {
                family: "f-1".to_owned()
            },
            "{name}"
        );
        drop(tx);
        assert_eq!(
            db.store.oidc_token("r-1").await.unwrap().unwrap().used_at,
            Some(at),
            "{name}: the first use's time stays"
        );

        let (first, second) = race(name, &db.store, |mut tx: store::Tx| async move {
            let used = tx.use_oidc_refresh_token("r-race", T).await.unwrap();
            (tx, used)
        })
        .await;
        assert!(matches!(first, RefreshUse::First(_)), "{name}: {first:?}");
        assert_eq!(
            second,
            RefreshUse::Reused {
                family: "f-4".to_owned()
            },
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_is_revoked_whole_and_a_token_is_read_inside_a_use_case() {
    for db in &databases().await {
        let name = db.name;
        let already = TokenRecord {
            revoked_at: Some(T.plus_seconds(1)),
            family: "f-1".to_owned(),
            ..token("a-0", None, grant("c-1", "u-1"))
        };
        insert_tokens(
            &db.store,
            &[
                refresh_token("r-1", "f-1"),
                TokenRecord {
                    family: "f-1".to_owned(),
                    ..token("a-1", None, grant("c-1", "u-1"))
                },
                already,
                refresh_token("r-2", "f-2"),
            ],
        )
        .await;
        let at = T.plus_seconds(20);
        let mut tx = db.store.begin().await.unwrap();
        assert_eq!(tx.revoke_oidc_family("f-1", at).await.unwrap(), 2, "{name}");
        assert_eq!(
            tx.revoke_oidc_family("f-1", at.plus_seconds(1))
                .await
                .unwrap(),
            0,
            "{name}: once"
        );
        assert_eq!(tx.revoke_oidc_family("f-9", at).await.unwrap(), 0, "{name}");
        tx.commit().await.unwrap();
        assert_eq!(
            revoked(&db.store, &["r-1", "a-1", "a-0", "r-2"]).await,
            [Some(at), Some(at), Some(T.plus_seconds(1)), None],
            "{name}: the family's, the earlier revocation's time kept, no other family's"
        );

        // Read in a use case: what it wrote itself, before the commit.
        let mut tx = db.store.begin().await.unwrap();
        let fresh = refresh_token("r-3", "f-3");
        tx.insert_oidc_token(&fresh).await.unwrap();
        assert_eq!(
            tx.oidc_token_in("r-3").await.unwrap(),
            Some(fresh),
            "{name}"
        );
        assert_eq!(
            tx.oidc_token_in("r-2").await.unwrap(),
            db.store.oidc_token("r-2").await.unwrap(),
            "{name}"
        );
        assert_eq!(tx.oidc_token_in("r-9").await.unwrap(), None, "{name}");
        drop(tx);
        assert_eq!(db.store.oidc_token("r-3").await.unwrap(), None, "{name}");
    }
}

fn ciba(id: &str, client: &str, hint: &str, known: bool) -> CibaRecord {
    CibaRecord {
        id_hash: id.to_owned(),
        client_id: client.to_owned(),
        hint_hash: hint.to_owned(),
        txn_id: known.then(|| TxnId::from("txn-1")),
        grant: known.then(|| grant(client, "u-1")),
        created_at: T,
        expires_at: T.plus_seconds(120),
        next_poll_at: T,
        closed_at: None,
        ping: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ciba_request_is_open_until_closed_once_or_ended_and_purged_when_ended() {
    for db in &databases().await {
        let name = db.name;
        let known = ciba("q-1", "c-1", "h-1", true);
        let unknown = ciba("q-2", "c-1", "h-2", false);
        let mut tx = db.store.begin().await.unwrap();
        tx.insert_oidc_ciba(&known).await.unwrap();
        tx.insert_oidc_ciba(&unknown).await.unwrap();
        tx.insert_oidc_ciba(&ciba("q-3", "c-1", "h-3", true))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut tx = db.store.begin().await.unwrap();
        assert!(
            tx.insert_oidc_ciba(&known).await.is_err(),
            "{name}: an id once"
        );
        drop(tx);

        let mut tx = db.store.begin().await.unwrap();
        assert_eq!(
            tx.oidc_ciba_for_update("q-1").await.unwrap(),
            Some(known.clone()),
            "{name}"
        );
        assert_eq!(
            tx.oidc_ciba_for_update("q-2").await.unwrap(),
            Some(unknown.clone()),
            "{name}"
        );
        assert_eq!(
            tx.oidc_ciba_for_update("q-9").await.unwrap(),
            None,
            "{name}"
        );
        // Open for its client and hint, until its end.
        assert!(tx.oidc_ciba_open("h-1", "c-1", T).await.unwrap(), "{name}");
        assert!(
            tx.oidc_ciba_open("h-1", "c-1", T.plus_seconds(119))
                .await
                .unwrap(),
            "{name}"
        );
        assert!(
            !tx.oidc_ciba_open("h-1", "c-1", T.plus_seconds(120))
                .await
                .unwrap(),
            "{name}: ended"
        );
        assert!(!tx.oidc_ciba_open("h-1", "c-2", T).await.unwrap(), "{name}");
        assert!(!tx.oidc_ciba_open("h-9", "c-1", T).await.unwrap(), "{name}");

        // Polled, then closed once.
        tx.poll_oidc_ciba("q-1", T.plus_seconds(5)).await.unwrap();
        assert!(
            tx.close_oidc_ciba("q-1", T.plus_seconds(7)).await.unwrap(),
            "{name}"
        );
        assert!(
            !tx.close_oidc_ciba("q-1", T.plus_seconds(8)).await.unwrap(),
            "{name}: once"
        );
        assert!(!tx.close_oidc_ciba("q-9", T).await.unwrap(), "{name}");
        tx.commit().await.unwrap();
        let mut tx = db.store.begin().await.unwrap();
        assert_eq!(
            tx.oidc_ciba_for_update("q-1").await.unwrap(),
            Some(CibaRecord {
                next_poll_at: T.plus_seconds(5),
                closed_at: Some(T.plus_seconds(7)),
                ..known
            }),
            "{name}"
        );
        assert!(
            !tx.oidc_ciba_open("h-1", "c-1", T).await.unwrap(),
            "{name}: closed"
        );
        drop(tx);

        // Two use cases closing it at once: one does.
        let (first, second) = race(name, &db.store, |mut tx: store::Tx| async move {
            let found = tx.oidc_ciba_for_update("q-3").await.unwrap().is_some();
            let closed = tx.close_oidc_ciba("q-3", T).await.unwrap();
            (tx, found && closed)
        })
        .await;
        assert_eq!((first, second), (true, false), "{name}");

        // Purged once ended (before the cut), like the provider's other one-time state.
        assert_eq!(
            db.store.purge_oidc(T.plus_seconds(120)).await.unwrap(),
            0,
            "{name}: not before its end"
        );
        assert_eq!(
            db.store.purge_oidc(T.plus_seconds(121)).await.unwrap(),
            3,
            "{name}"
        );
        let mut tx = db.store.begin().await.unwrap();
        assert_eq!(
            tx.oidc_ciba_for_update("q-2").await.unwrap(),
            None,
            "{name}"
        );
        drop(tx);
    }
}
