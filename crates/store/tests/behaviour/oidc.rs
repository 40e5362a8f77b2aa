//! The OpenID provider's state (`OidcStore`, `OidcQueries`): clients registered and removed
//! (with their tokens), a pushed request read until it is taken once by its own client before
//! its end, a code spent once, tokens revoked by their code, alone, with a withdrawn consent
//! or a removed client, consents remembered and widened, one-time values seen once, and the
//! purge of what ended.

use domain::oidc::{
    AuthMethod, ClientRecord, CodeUse, Grant, Profile, SubjectType, TokenKind, TokenRecord,
};
use domain::{UnixTime, UserId};
use store::{OidcQueries as _, OidcStore as _, Store};

use crate::support::{databases, race, T};

fn client(id: &str, created_at: UnixTime) -> ClientRecord {
    ClientRecord {
        client_id: id.to_owned(),
        name: "Републички фонд „ПИО“ 👵".to_owned(),
        profile: Profile::Fapi2,
        redirect_uris: vec![
            "https://rp.example/cb".to_owned(),
            "http://127.0.0.1:8000/cb?x=ш".to_owned(),
        ],
        jwks: Some(r#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AQ"}]}"#.to_owned()),
        secret_hash: None,
        scopes: vec!["profile".to_owned(), "jmbg".to_owned()],
        allow_jmbg: true,
        subject: SubjectType::Pairwise,
        backchannel_logout_uri: Some("https://rp.example/logout".to_owned()),
        post_logout_redirect_uris: Vec::new(),
        created_at,
        ciba: false,
        ciba_notification_endpoint: None,
    }
}

pub(crate) fn grant(client_id: &str, user_id: &str) -> Grant {
    Grant {
        client_id: client_id.to_owned(),
        user_id: UserId::from(user_id),
        scope: "openid profile".to_owned(),
        redirect_uri: "https://rp.example/cb".to_owned(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned(),
        nonce: Some("нонс".to_owned()),
        auth_time: T.plus_seconds(-30),
        method: AuthMethod::ConsentId,
        sid: "sid-1".to_owned(),
        dpop_jkt: None,
        session_expires_at: None,
        transaction: None,
    }
}

pub(crate) fn token(hash: &str, code_hash: Option<&str>, grant: Grant) -> TokenRecord {
    TokenRecord {
        token_hash: hash.to_owned(),
        kind: TokenKind::Access,
        code_hash: code_hash.map(str::to_owned),
        family: "family-1".to_owned(),
        grant,
        created_at: T,
        expires_at: T.plus_seconds(300),
        used_at: None,
        revoked_at: None,
    }
}

async fn insert_clients(store: &Store, clients: &[ClientRecord]) {
    let mut tx = store.begin().await.unwrap();
    for client in clients {
        tx.insert_oidc_client(client).await.unwrap();
    }
    tx.commit().await.unwrap();
}

pub(crate) async fn insert_tokens(store: &Store, tokens: &[TokenRecord]) {
    let mut tx = store.begin().await.unwrap();
    for token in tokens {
        tx.insert_oidc_token(token).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// When each token was revoked, in the order of `hashes` (a missing token panics).
pub(crate) async fn revoked(store: &Store, hashes: &[&str]) -> Vec<Option<UnixTime>> {
    let mut out = Vec::new();
    for hash in hashes {
        let token = store.oidc_token(hash).await.unwrap();
        out.push(
            token
                .unwrap_or_else(|| panic!("token {hash} is gone"))
                .revoked_at,
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_round_trips_and_a_removed_one_is_gone_and_its_tokens_revoked() {
    for db in &databases().await {
        let name = db.name;
        let (older, newer) = (client("c-1", T), client("c-2", T.plus_seconds(1)));
        let basic = ClientRecord {
            profile: Profile::Basic,
            jwks: None,
            secret_hash: Some("ab".repeat(32)),
            subject: SubjectType::Public,
            allow_jmbg: false,
            backchannel_logout_uri: None,
            ..client("c-3", T.plus_seconds(2))
        };
        insert_clients(&db.store, &[newer.clone(), basic.clone(), older.clone()]).await;
        assert_eq!(
            db.store.oidc_client("c-1").await.unwrap(),
            Some(older.clone()),
            "{name}"
        );
        assert_eq!(
            db.store.oidc_client("c-3").await.unwrap(),
            Some(basic.clone()),
            "{name}"
        );
        assert_eq!(db.store.oidc_client("c-9").await.unwrap(), None, "{name}");
        assert_eq!(
            db.store.oidc_clients().await.unwrap(),
            vec![older.clone(), newer.clone(), basic.clone()],
            "{name}: oldest first"
        );
        let mut tx = db.store.begin().await.unwrap();
        assert!(
            tx.insert_oidc_client(&client("c-1", T)).await.is_err(),
            "{name}: an id is registered once"
        );
        drop(tx);

        insert_tokens(
            &db.store,
            &[
                token("t-1", Some("code-1"), grant("c-1", "u-1")),
                token("t-2", None, grant("c-1", "u-2")),
                token("t-3", None, grant("c-2", "u-1")),
            ],
        )
        .await;
        // Rolled back: nothing changes.
        let mut tx = db.store.begin().await.unwrap();
        assert!(tx.remove_oidc_client("c-1", T).await.unwrap(), "{name}");
        drop(tx);
        assert!(
            db.store.oidc_client("c-1").await.unwrap().is_some(),
            "{name}"
        );
        assert_eq!(
            revoked(&db.store, &["t-1", "t-2"]).await,
            [None, None],
            "{name}"
        );

        let at = T.plus_seconds(10);
        let mut tx = db.store.begin().await.unwrap();
        assert!(tx.remove_oidc_client("c-1", at).await.unwrap(), "{name}");
        assert!(
            !tx.remove_oidc_client("c-1", at).await.unwrap(),
            "{name}: once"
        );
        assert!(!tx.remove_oidc_client("c-9", at).await.unwrap(), "{name}");
        tx.commit().await.unwrap();
        assert_eq!(db.store.oidc_client("c-1").await.unwrap(), None, "{name}");
        assert_eq!(
            db.store.oidc_clients().await.unwrap(),
            vec![newer, basic],
            "{name}"
        );
        assert_eq!(
            revoked(&db.store, &["t-1", "t-2", "t-3"]).await,
            [Some(at), Some(at), None],
            "{name}: the removed client's tokens, every citizen's, and only those"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_request_is_read_until_taken_once_by_its_client_before_its_end() {
    for db in &databases().await {
        let name = db.name;
        let params = r#"{"scope":"openid profile","state":"стање \"1\""}"#;
        let end = T.plus_seconds(60);
        let mut tx = db.store.begin().await.unwrap();
        tx.insert_oidc_request("r-1", "c-1", params, end)
            .await
            .unwrap();
        tx.insert_oidc_request("r-2", "c-1", "{}", end)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        // Read (not spent) by its own client, until its end.
        let read = |hash: &'static str, client: &'static str, now: UnixTime| {
            let store = db.store.clone();
            async move { store.oidc_request(hash, client, now).await.unwrap() }
        };
        assert_eq!(
            read("r-1", "c-1", T).await.as_deref(),
            Some(params),
            "{name}"
        );
        assert_eq!(
            read("r-1", "c-1", end.plus_seconds(-1)).await.as_deref(),
            Some(params),
            "{name}"
        );
        assert_eq!(read("r-1", "c-1", end).await, None, "{name}: ended");
        assert_eq!(
            read("r-1", "c-2", T).await,
            None,
            "{name}: another client's"
        );
        assert_eq!(read("r-9", "c-1", T).await, None, "{name}");

        // Taken: not by another client, not at its end, once; a rollback takes nothing.
        let mut tx = db.store.begin().await.unwrap();
        assert_eq!(
            tx.take_oidc_request("r-1", "c-2", T).await.unwrap(),
            None,
            "{name}"
        );
        assert_eq!(
            tx.take_oidc_request("r-1", "c-1", end).await.unwrap(),
            None,
            "{name}"
        );
        assert_eq!(
            tx.take_oidc_request("r-1", "c-1", T)
                .await
                .unwrap()
                .as_deref(),
            Some(params),
            "{name}"
        );
        drop(tx);
        let mut tx = db.store.begin().await.unwrap();
        assert_eq!(
            tx.take_oidc_request("r-1", "c-1", end.plus_seconds(-1))
                .await
                .unwrap()
                .as_deref(),
            Some(params),
            "{name}: the rollback took nothing"
        );
        assert_eq!(
            tx.take_oidc_request("r-1", "c-1", T).await.unwrap(),
            None,
            "{name}: once"
        );
        tx.commit().await.unwrap();
        assert_eq!(read("r-1", "c-1", T).await, None, "{name}: taken");
        assert_eq!(read("r-2", "c-1", T).await.as_deref(), Some("{}"), "{name}");

        // Two use cases at once: one takes it.
        let (first, second) = race(name, &db.store, |mut tx: store::Tx| async move {
            let taken = tx.take_oidc_request("r-2", "c-1", T).await.unwrap();
            (tx, taken.is_some())
        })
        .await;
        assert_eq!((first, second), (true, false), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_is_spent_once_and_then_known_as_reused() {
    for db in &databases().await {
        let name = db.name;
        let mut with_key = grant("c-1", "u-1");
        with_key.dpop_jkt = Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".to_owned());
        with_key.nonce = None;
        // An approved transaction (RFC 9396) travels with the grant.
        with_key.transaction = Some(domain::oidc::ApprovedTransaction {
            details: domain::oidc::TransactionDetails {
                text: "Плаћање 1.200,00 RSD Републичком фонду".to_owned(),
            },
            txn_id: domain::TxnId::from("txn-1"),
        });
        let end = T.plus_seconds(60);
        let mut tx = db.store.begin().await.unwrap();
        tx.insert_oidc_code("code-1", &with_key, end).await.unwrap();
        tx.insert_oidc_code("code-2", &grant("c-1", "u-1"), end)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        // A rolled-back use spends nothing.
        let mut tx = db.store.begin().await.unwrap();
        assert!(
            matches!(
                tx.use_oidc_code("code-1", T).await.unwrap(),
                CodeUse::First(..)
            ),
            "{name}"
        );
        drop(tx);
        let mut tx = db.store.begin().await.unwrap();
        // The first use gets the grant and the code's end, even past it (the caller refuses).
        assert_eq!(
            tx.use_oidc_code("code-1", end.plus_seconds(5))
                .await
                .unwrap(),
            CodeUse::First(Box::new(with_key.clone()), end),
            "{name}"
        );
        assert_eq!(
            tx.use_oidc_code("code-1", end).await.unwrap(),
            CodeUse::Reused,
            "{name}"
        );
        assert_eq!(
            tx.use_oidc_code("code-9", T).await.unwrap(),
            CodeUse::Unknown,
            "{name}"
        );
        tx.commit().await.unwrap();
        let mut tx = db.store.begin().await.unwrap();
        assert_eq!(
            tx.use_oidc_code("code-1", T).await.unwrap(),
            CodeUse::Reused,
            "{name}: still, in another use case"
        );
        drop(tx);
        let mut tx = db.store.begin().await.unwrap();
        assert!(
            tx.insert_oidc_code("code-1", &with_key, end).await.is_err(),
            "{name}: a code is kept once"
        );
        drop(tx);

        // Two use cases at once: one gets the grant, the other learns it was reused.
        let (first, second) = race(name, &db.store, |mut tx: store::Tx| async move {
            let used = tx.use_oidc_code("code-2", T).await.unwrap();
            (tx, used)
        })
        .await;
        assert!(matches!(first, CodeUse::First(..)), "{name}: {first:?}");
        assert_eq!(second, CodeUse::Reused, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_round_trips_and_is_revoked_with_its_code_or_alone() {
    for db in &databases().await {
        let name = db.name;
        let mut bound = grant("c-1", "u-1");
        bound.dpop_jkt = Some("jkt".to_owned());
        let first = token("t-1", Some("code-1"), bound);
        let already = TokenRecord {
            revoked_at: Some(T.plus_seconds(1)),
            ..token("t-4", None, grant("c-1", "u-1"))
        };
        insert_tokens(
            &db.store,
            &[
                first.clone(),
                token("t-2", Some("code-1"), grant("c-1", "u-1")),
                token("t-3", Some("code-2"), grant("c-1", "u-1")),
                already.clone(),
            ],
        )
        .await;
        assert_eq!(
            db.store.oidc_token("t-1").await.unwrap(),
            Some(first.clone()),
            "{name}"
        );
        assert_eq!(
            db.store.oidc_token("t-4").await.unwrap(),
            Some(already),
            "{name}"
        );
        assert_eq!(db.store.oidc_token("t-9").await.unwrap(), None, "{name}");
        assert!(first.active(T.plus_seconds(299)), "{name}");
        assert!(!first.active(T.plus_seconds(300)), "{name}");

        let at = T.plus_seconds(20);
        let mut tx = db.store.begin().await.unwrap();
        assert_eq!(
            tx.revoke_oidc_tokens_of_code("code-1", at).await.unwrap(),
            2,
            "{name}"
        );
        assert_eq!(
            tx.revoke_oidc_tokens_of_code("code-1", at.plus_seconds(1))
                .await
                .unwrap(),
            0,
            "{name}: once"
        );
        assert_eq!(
            tx.revoke_oidc_tokens_of_code("code-9", at).await.unwrap(),
            0,
            "{name}"
        );
        tx.commit().await.unwrap();
        assert_eq!(
            revoked(&db.store, &["t-1", "t-2", "t-3"]).await,
            [Some(at), Some(at), None],
            "{name}: the first revocation's time stays"
        );

        let mut tx = db.store.begin().await.unwrap();
        assert!(tx.revoke_oidc_token("t-3", at).await.unwrap(), "{name}");
        assert!(
            !tx.revoke_oidc_token("t-3", at).await.unwrap(),
            "{name}: once"
        );
        assert!(!tx.revoke_oidc_token("t-4", at).await.unwrap(), "{name}");
        assert!(!tx.revoke_oidc_token("t-9", at).await.unwrap(), "{name}");
        tx.commit().await.unwrap();
        assert_eq!(
            revoked(&db.store, &["t-3", "t-4"]).await,
            [Some(at), Some(T.plus_seconds(1))],
            "{name}"
        );

        // An ended token is not active any more: nothing to revoke.
        insert_tokens(&db.store, &[token("t-5", None, grant("c-1", "u-1"))]).await;
        let mut tx = db.store.begin().await.unwrap();
        assert!(
            !tx.revoke_oidc_token("t-5", T.plus_seconds(300))
                .await
                .unwrap(),
            "{name}"
        );
        tx.commit().await.unwrap();
        assert_eq!(revoked(&db.store, &["t-5"]).await, [None], "{name}");
    }
}

/// The scopes of a consent, as a sorted list.
fn scopes(consent: Option<String>) -> Vec<String> {
    let mut scopes: Vec<String> = consent
        .unwrap_or_default()
        .split_ascii_whitespace()
        .map(str::to_owned)
        .collect();
    scopes.sort();
    scopes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_is_remembered_widened_and_withdrawn_with_its_tokens() {
    for db in &databases().await {
        let name = db.name;
        let (u1, u2) = (UserId::from("u-1"), UserId::from("u-2"));
        let mut tx = db.store.begin().await.unwrap();
        assert_eq!(tx.oidc_consent(&u1, "c-1").await.unwrap(), None, "{name}");
        tx.save_oidc_consent(&u1, "c-2", "openid", T).await.unwrap();
        tx.save_oidc_consent(&u1, "c-1", "openid profile", T.plus_seconds(1))
            .await
            .unwrap();
        tx.save_oidc_consent(&u2, "c-1", "openid jmbg", T)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut tx = db.store.begin().await.unwrap();
        assert_eq!(
            tx.oidc_consent(&u1, "c-1").await.unwrap().as_deref(),
            Some("openid profile"),
            "{name}"
        );
        // Widened by a later consent to other scopes, never narrowed.
        tx.save_oidc_consent(&u1, "c-1", "openid email", T.plus_seconds(2))
            .await
            .unwrap();
        assert_eq!(
            scopes(tx.oidc_consent(&u1, "c-1").await.unwrap()),
            ["email", "openid", "profile"],
            "{name}"
        );
        tx.commit().await.unwrap();
        let listed = db.store.oidc_consents(&u1).await.unwrap();
        let listed: Vec<(&str, UnixTime)> = listed
            .iter()
            .map(|c| (c.client_id.as_str(), c.granted_at))
            .collect();
        assert_eq!(
            listed,
            [("c-2", T), ("c-1", T.plus_seconds(2))],
            "{name}: by time, only the citizen's"
        );

        insert_tokens(
            &db.store,
            &[
                token("t-1", Some("code-1"), grant("c-1", "u-1")),
                token("t-2", None, grant("c-1", "u-1")),
                token("t-3", None, grant("c-2", "u-1")),
                token("t-4", None, grant("c-1", "u-2")),
            ],
        )
        .await;
        let at = T.plus_seconds(30);
        let mut tx = db.store.begin().await.unwrap();
        assert!(
            tx.withdraw_oidc_consent(&u1, "c-1", at).await.unwrap(),
            "{name}"
        );
        drop(tx);
        assert_eq!(
            revoked(&db.store, &["t-1", "t-2"]).await,
            [None, None],
            "{name}: a rollback keeps them"
        );
        let mut tx = db.store.begin().await.unwrap();
        assert!(
            tx.withdraw_oidc_consent(&u1, "c-1", at).await.unwrap(),
            "{name}"
        );
        assert!(
            !tx.withdraw_oidc_consent(&u1, "c-1", at).await.unwrap(),
            "{name}: once"
        );
        assert_eq!(tx.oidc_consent(&u1, "c-1").await.unwrap(), None, "{name}");
        tx.commit().await.unwrap();
        assert_eq!(
            revoked(&db.store, &["t-1", "t-2", "t-3", "t-4"]).await,
            [Some(at), Some(at), None, None],
            "{name}: this citizen's tokens for this client only"
        );
        let listed = db.store.oidc_consents(&u1).await.unwrap();
        assert_eq!(listed.len(), 1, "{name}");
        assert_eq!(listed[0].client_id, "c-2", "{name}");
        assert_eq!(listed[0].scope, "openid", "{name}");
        assert_eq!(
            db.store.oidc_consents(&u2).await.unwrap().len(),
            1,
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_value_is_seen_first_once() {
    for db in &databases().await {
        let name = db.name;
        let end = T.plus_seconds(120);
        let mut tx = db.store.begin().await.unwrap();
        assert!(tx.first_sight("jti-1", end).await.unwrap(), "{name}");
        drop(tx);
        let mut tx = db.store.begin().await.unwrap();
        assert!(
            tx.first_sight("jti-1", end).await.unwrap(),
            "{name}: a rollback forgets it"
        );
        assert!(!tx.first_sight("jti-1", end).await.unwrap(), "{name}");
        assert!(tx.first_sight("jti-2", end).await.unwrap(), "{name}");
        tx.commit().await.unwrap();
        let mut tx = db.store.begin().await.unwrap();
        assert!(
            !tx.first_sight("jti-1", end.plus_seconds(600))
                .await
                .unwrap(),
            "{name}: in a later use case too"
        );
        drop(tx);

        let (first, second) = race(name, &db.store, |mut tx: store::Tx| async move {
            let first = tx.first_sight("jti-3", T).await.unwrap();
            (tx, first)
        })
        .await;
        assert_eq!((first, second), (true, false), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_purge_forgets_what_ended_before_the_cut_and_nothing_else() {
    for db in &databases().await {
        let name = db.name;
        let cut = T.plus_seconds(100);
        insert_clients(&db.store, &[client("c-1", T)]).await;
        let mut tx = db.store.begin().await.unwrap();
        for (suffix, end) in [("old", cut.plus_seconds(-1)), ("edge", cut)] {
            tx.insert_oidc_request(&format!("r-{suffix}"), "c-1", "{}", end)
                .await
                .unwrap();
            tx.insert_oidc_code(&format!("code-{suffix}"), &grant("c-1", "u-1"), end)
                .await
                .unwrap();
            tx.insert_oidc_token(&TokenRecord {
                expires_at: end,
                ..token(&format!("t-{suffix}"), None, grant("c-1", "u-1"))
            })
            .await
            .unwrap();
            assert!(
                tx.first_sight(&format!("jti-{suffix}"), end).await.unwrap(),
                "{name}"
            );
        }
        tx.save_oidc_consent(&UserId::from("u-1"), "c-1", "openid", T)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        assert_eq!(db.store.purge_oidc(cut).await.unwrap(), 4, "{name}");
        assert_eq!(db.store.purge_oidc(cut).await.unwrap(), 0, "{name}: once");
        assert_eq!(db.store.oidc_token("t-old").await.unwrap(), None, "{name}");
        assert!(
            db.store.oidc_token("t-edge").await.unwrap().is_some(),
            "{name}"
        );
        assert_eq!(
            db.store.oidc_request("r-old", "c-1", T).await.unwrap(),
            None,
            "{name}"
        );
        assert!(
            db.store
                .oidc_request("r-edge", "c-1", T)
                .await
                .unwrap()
                .is_some(),
            "{name}"
        );
        let mut tx = db.store.begin().await.unwrap();
        assert_eq!(
            tx.use_oidc_code("code-old", T).await.unwrap(),
            CodeUse::Unknown,
            "{name}"
        );
        assert!(
            matches!(
                tx.use_oidc_code("code-edge", T).await.unwrap(),
                CodeUse::First(..)
            ),
            "{name}"
        );
        assert!(tx.first_sight("jti-old", cut).await.unwrap(), "{name}");
        assert!(!tx.first_sight("jti-edge", cut).await.unwrap(), "{name}");
        assert!(
            tx.oidc_consent(&UserId::from("u-1"), "c-1")
                .await
                .unwrap()
                .is_some(),
            "{name}: consents stay"
        );
        drop(tx);
        assert!(
            db.store.oidc_client("c-1").await.unwrap().is_some(),
            "{name}"
        );
    }
}
