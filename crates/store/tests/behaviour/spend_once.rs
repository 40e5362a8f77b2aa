//! What a use case spends once (a verification link, an OAuth code, a waiting OAuth request, a
//! SAD, a nonce, a revocation) stays spent once when two use cases try at once: the second
//! sees the first's spending (see `support::race`).

use domain::records::OAuthCodeRecord;
use domain::signing::AuthorizationStatus;
use domain::{RevocationReason, TxnId, UserId};
use store::{
    AccountStore as _, CertificateQueries as _, CertificateStore as _, LoginStore as _,
    SigningStore as _, Store,
};

use crate::support::{databases, insert_user, new_certificate, race, serial, transaction, user, T};

/// Runs `spend` in two overlapping use cases and checks that exactly the first one spent.
async fn spent_once<F, Fut>(store: &Store, name: &str, what: &str, spend: F)
where
    F: Fn(store::Tx) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = (store::Tx, bool)> + Send + 'static,
{
    let (first, second) = race(name, store, spend).await;
    assert_eq!(
        (first, second),
        (true, false),
        "{name}: {what} spent by (first, second)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_verification_link() {
    for db in &databases().await {
        insert_user(&db.store, &user("u-1", "jelena@example.rs")).await;
        let mut tx = db.store.begin().await.unwrap();
        tx.insert_email_verification("link", &UserId::from("u-1"), T.plus_seconds(60))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        spent_once(
            &db.store,
            db.name,
            "the link",
            |mut tx: store::Tx| async move {
                let spent = tx
                    .use_email_verification("link", T)
                    .await
                    .unwrap()
                    .is_some();
                (tx, spent)
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_code_and_a_waiting_oauth_request() {
    for db in &databases().await {
        insert_user(&db.store, &user("u-1", "jelena@example.rs")).await;
        let mut tx = db.store.begin().await.unwrap();
        tx.insert_oauth_code(&OAuthCodeRecord {
            code_hash: "code".into(),
            user_id: UserId::from("u-1"),
            client_id: "app".into(),
            redirect_uri: "https://client.example/cb".into(),
            code_challenge: "challenge".into(),
            created_at: T,
            expires_at: T.plus_seconds(60),
        })
        .await
        .unwrap();
        tx.insert_oauth_pending("pending", "client_id=app", T, T.plus_seconds(60))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        spent_once(
            &db.store,
            db.name,
            "the code",
            |mut tx: store::Tx| async move {
                let spent = tx.use_oauth_code("code", T).await.unwrap().is_some();
                (tx, spent)
            },
        )
        .await;
        spent_once(
            &db.store,
            db.name,
            "the request",
            |mut tx: store::Tx| async move {
                let spent = tx.take_oauth_pending("pending", T).await.unwrap().is_some();
                (tx, spent)
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sad_and_a_nonce() {
    for db in &databases().await {
        insert_user(&db.store, &user("u-1", "jelena@example.rs")).await;
        let mut tx = db.store.begin().await.unwrap();
        tx.insert_transaction(&transaction("t-1", Some("u-1"), "sign", "token"))
            .await
            .unwrap();
        tx.insert_sign_authorization(&domain::records::SignAuthorizationRecord {
            id: "a-1".into(),
            user_id: UserId::from("u-1"),
            credential_id: serial(5),
            txn_id: TxnId::from("t-1"),
            hash_algorithm: "2.16.840.1.101.3.4.2.1".into(),
            hashes: vec![1; 32],
            num_signatures: 1,
            status: AuthorizationStatus::Pending,
            sad_hash: None,
            sad_expires_at: None,
            device_id: None,
            created_at: T,
            used_at: None,
        })
        .await
        .unwrap();
        let sad = Some(("sad", T.plus_seconds(60)));
        assert!(tx
            .settle_sign_authorization("a-1", AuthorizationStatus::Authorized, sad, None)
            .await
            .unwrap());
        tx.commit().await.unwrap();
        spent_once(
            &db.store,
            db.name,
            "the SAD",
            |mut tx: store::Tx| async move {
                let spent = tx.spend_sign_authorization("a-1", T).await.unwrap();
                (tx, spent)
            },
        )
        .await;
        spent_once(
            &db.store,
            db.name,
            "the nonce",
            |mut tx: store::Tx| async move {
                let spent = tx.use_nonce("d-1:n", T).await.unwrap();
                (tx, spent)
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_moves_the_status_revision_once() {
    for db in &databases().await {
        let mut tx = db.store.begin().await.unwrap();
        tx.reserve_certificate(&new_certificate(serial(1), None, None, T))
            .await
            .unwrap();
        tx.complete_certificate(&serial(1), b"der", T)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        spent_once(
            &db.store,
            db.name,
            "the revocation",
            |mut tx: store::Tx| async move {
                let revoked = tx
                    .revoke_certificate(&serial(1), T, RevocationReason::KeyCompromise)
                    .await
                    .unwrap();
                (tx, revoked)
            },
        )
        .await;
        assert_eq!(db.store.status_revision().await.unwrap(), 1, "{}", db.name);
    }
}
