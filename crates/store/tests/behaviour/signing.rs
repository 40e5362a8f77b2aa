//! `SigningStore` and `SigningQueries`: the CSC API's bearer tokens, signature
//! authorisations and their SADs, PDF signing jobs and their documents, OAuth codes and the
//! OAuth requests waiting for a login.

use domain::records::{
    ApiTokenRecord, OAuthCodeRecord, SignAuthorizationRecord, SigningDocumentRecord,
    SigningJobRecord,
};
use domain::signing::AuthorizationStatus;
use domain::{DeviceId, TxnId, UserId};
use store::{LoginStore as _, SigningQueries as _, SigningStore as _, Store};

use crate::support::{all_bytes, databases, insert_user, serial, transaction, user, T};

fn token(hash: &str, user_id: &str, client: Option<&str>) -> ApiTokenRecord {
    ApiTokenRecord {
        token_hash: hash.to_owned(),
        user_id: UserId::from(user_id),
        created_at: T,
        expires_at: T.plus_seconds(3600),
        revoked_at: None,
        client_id: client.map(str::to_owned),
    }
}

async fn two_accounts(store: &Store) {
    insert_user(store, &user("u-1", "jelena@example.rs")).await;
    insert_user(store, &user("u-2", "marko@example.rs")).await;
}

#[tokio::test]
async fn a_bearer_token_round_trips_and_is_revoked_once_alone_or_with_its_accounts() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        two_accounts(store).await;
        let basic = token("tok-1", "u-1", None);
        let oauth = token("tok-2", "u-1", Some("клијент-app"));
        let markos = token("tok-3", "u-2", None);
        let mut tx = store.begin().await.unwrap();
        for record in [&basic, &oauth, &markos] {
            tx.insert_api_token(record).await.unwrap();
        }
        assert!(
            tx.insert_api_token(&basic).await.is_err(),
            "{name}: one hash twice"
        );
        drop(tx);
        assert_eq!(
            store.api_token("tok-1").await.unwrap(),
            None,
            "{name}: rolled back"
        );
        let mut tx = store.begin().await.unwrap();
        for record in [&basic, &oauth, &markos] {
            tx.insert_api_token(record).await.unwrap();
        }
        tx.commit().await.unwrap();
        for record in [&basic, &oauth, &markos] {
            assert_eq!(
                store.api_token(&record.token_hash).await.unwrap().as_ref(),
                Some(record)
            );
        }
        assert_eq!(store.api_token("tok-9").await.unwrap(), None, "{name}");

        let mut tx = store.begin().await.unwrap();
        assert!(
            tx.revoke_api_token("tok-1", T.plus_seconds(1))
                .await
                .unwrap(),
            "{name}"
        );
        assert!(
            !tx.revoke_api_token("tok-1", T.plus_seconds(2))
                .await
                .unwrap(),
            "{name}: twice"
        );
        assert!(
            !tx.revoke_api_token("tok-9", T).await.unwrap(),
            "{name}: unknown"
        );
        assert_eq!(
            tx.revoke_api_tokens_of_user(&UserId::from("u-1"), T.plus_seconds(3))
                .await
                .unwrap(),
            1,
            "{name}: only the one still in force"
        );
        assert_eq!(
            tx.revoke_api_tokens_of_user(&UserId::from("u-1"), T.plus_seconds(4))
                .await
                .unwrap(),
            0,
            "{name}"
        );
        tx.commit().await.unwrap();
        let revoked_at = |hash: &'static str| async move {
            store.api_token(hash).await.unwrap().unwrap().revoked_at
        };
        assert_eq!(revoked_at("tok-1").await, Some(T.plus_seconds(1)), "{name}");
        assert_eq!(revoked_at("tok-2").await, Some(T.plus_seconds(3)), "{name}");
        assert_eq!(revoked_at("tok-3").await, None, "{name}: another account's");
    }
}

fn authorization(id: &str, txn: &str) -> SignAuthorizationRecord {
    SignAuthorizationRecord {
        id: id.to_owned(),
        user_id: UserId::from("u-1"),
        credential_id: serial(5),
        txn_id: TxnId::from(txn),
        hash_algorithm: "2.16.840.1.101.3.4.2.1".into(),
        hashes: all_bytes(),
        num_signatures: 8,
        status: AuthorizationStatus::Pending,
        sad_hash: None,
        sad_expires_at: None,
        device_id: None,
        created_at: T,
        used_at: None,
    }
}

async fn with_authorizations(store: &Store, ids: &[&str]) {
    two_accounts(store).await;
    let mut tx = store.begin().await.unwrap();
    for id in ids {
        tx.insert_transaction(&transaction(
            &format!("t-{id}"),
            Some("u-1"),
            "sign",
            "tok-1",
        ))
        .await
        .unwrap();
        tx.insert_sign_authorization(&authorization(id, &format!("t-{id}")))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn an_authorisation_is_settled_once_and_its_sad_spent_once() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        with_authorizations(store, &["a-1", "a-2"]).await;
        let pending = authorization("a-1", "t-a-1");
        assert_eq!(
            store.sign_authorization("a-1").await.unwrap(),
            Some(pending.clone()),
            "{name}"
        );
        assert_eq!(
            store.sign_authorization("a-9").await.unwrap(),
            None,
            "{name}"
        );
        let device = DeviceId::from("d-1");

        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.sign_authorization("a-1").await.unwrap(),
            Some(pending.clone()),
            "{name}"
        );
        assert!(
            !tx.spend_sign_authorization("a-1", T).await.unwrap(),
            "{name}: a pending one has no SAD to spend"
        );
        assert!(tx
            .settle_sign_authorization(
                "a-1",
                AuthorizationStatus::Authorized,
                Some(("sad-hash-1", T.plus_seconds(300))),
                Some(&device),
            )
            .await
            .unwrap());
        assert!(
            !tx.settle_sign_authorization("a-1", AuthorizationStatus::Refused, None, None)
                .await
                .unwrap(),
            "{name}: settled once"
        );
        assert!(tx
            .settle_sign_authorization("a-2", AuthorizationStatus::Refused, None, None)
            .await
            .unwrap());
        assert!(!tx
            .settle_sign_authorization("a-9", AuthorizationStatus::Refused, None, None)
            .await
            .unwrap());
        let authorized = SignAuthorizationRecord {
            status: AuthorizationStatus::Authorized,
            sad_hash: Some("sad-hash-1".into()),
            sad_expires_at: Some(T.plus_seconds(300)),
            device_id: Some(device.clone()),
            ..pending.clone()
        };
        assert_eq!(
            tx.sign_authorization_by_sad("sad-hash-1").await.unwrap(),
            Some(authorized.clone()),
            "{name}"
        );
        tx.commit().await.unwrap();
        assert_eq!(
            store.sign_authorization_by_sad("sad-hash-1").await.unwrap(),
            Some(authorized.clone()),
            "{name}"
        );
        assert_eq!(
            store.sign_authorization_by_sad("sad-hash-9").await.unwrap(),
            None,
            "{name}"
        );
        assert_eq!(
            store
                .sign_authorization("a-2")
                .await
                .unwrap()
                .unwrap()
                .status,
            AuthorizationStatus::Refused,
            "{name}"
        );
        assert!(
            !{
                let mut tx = store.begin().await.unwrap();
                tx.spend_sign_authorization("a-2", T).await.unwrap()
            },
            "{name}: a refused one is not spent"
        );

        let mut tx = store.begin().await.unwrap();
        assert!(
            tx.spend_sign_authorization("a-1", T.plus_seconds(10))
                .await
                .unwrap(),
            "{name}"
        );
        assert!(
            !tx.spend_sign_authorization("a-1", T.plus_seconds(11))
                .await
                .unwrap(),
            "{name}"
        );
        assert!(
            !tx.spend_sign_authorization("a-9", T).await.unwrap(),
            "{name}"
        );
        tx.commit().await.unwrap();
        assert_eq!(
            store.sign_authorization("a-1").await.unwrap(),
            Some(SignAuthorizationRecord {
                status: AuthorizationStatus::Consumed,
                used_at: Some(T.plus_seconds(10)),
                ..authorized
            }),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_sad_hash_belongs_to_one_authorisation() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        with_authorizations(store, &["a-1", "a-2"]).await;
        let mut tx = store.begin().await.unwrap();
        let sad = Some(("sad-hash", T));
        assert!(tx
            .settle_sign_authorization("a-1", AuthorizationStatus::Authorized, sad, None)
            .await
            .unwrap());
        let again = tx
            .settle_sign_authorization("a-2", AuthorizationStatus::Authorized, sad, None)
            .await;
        assert!(again.is_err(), "{name}: two authorisations with one SAD");
    }
}

fn document(position: i64, filename: &str) -> SigningDocumentRecord {
    SigningDocumentRecord {
        position,
        filename: filename.to_owned(),
        prepared: all_bytes(),
        signature: None,
        signed_pdf: None,
    }
}

#[tokio::test]
async fn a_signing_job_keeps_its_documents_in_order_and_moves_only_from_its_status() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        with_authorizations(store, &["a-1"]).await;
        let job = SigningJobRecord {
            id: "job-1".into(),
            user_id: UserId::from("u-1"),
            authorization_id: "a-1".into(),
            level: "b-lt".into(),
            status: "pending".into(),
            hint: String::new(),
            created_at: T,
            finished_at: None,
        };
        // Given out of order: read back by position.
        let documents = [
            document(2, "трећи.pdf"),
            document(0, "први уговор.pdf"),
            document(1, "second.pdf"),
        ];
        let mut tx = store.begin().await.unwrap();
        tx.insert_signing_job(&job, &documents).await.unwrap();
        drop(tx);
        assert_eq!(
            store.signing_job("job-1").await.unwrap(),
            None,
            "{name}: rolled back"
        );
        assert!(
            store.signing_documents("job-1").await.unwrap().is_empty(),
            "{name}"
        );

        let mut tx = store.begin().await.unwrap();
        tx.insert_signing_job(&job, &documents).await.unwrap();
        let in_order = vec![
            documents[1].clone(),
            documents[2].clone(),
            documents[0].clone(),
        ];
        assert_eq!(
            tx.signing_documents("job-1").await.unwrap(),
            in_order,
            "{name}"
        );
        tx.commit().await.unwrap();
        assert_eq!(
            store.signing_job("job-1").await.unwrap(),
            Some(job.clone()),
            "{name}"
        );
        assert_eq!(store.signing_job("job-9").await.unwrap(), None, "{name}");
        assert_eq!(
            store.signing_documents("job-1").await.unwrap(),
            in_order,
            "{name}"
        );
        assert!(
            store.signing_documents("job-9").await.unwrap().is_empty(),
            "{name}"
        );

        let mut tx = store.begin().await.unwrap();
        tx.store_document_signature("job-1", 1, &[0x30, 0x00, 0xff])
            .await
            .unwrap();
        tx.store_signed_document("job-1", 1, &all_bytes())
            .await
            .unwrap();
        tx.store_document_signature("job-1", 2, b"sig-2")
            .await
            .unwrap();
        assert!(
            !tx.move_signing_job("job-1", "signed", "done", "ok", T)
                .await
                .unwrap(),
            "{name}"
        );
        assert!(tx
            .move_signing_job("job-1", "pending", "signed", "ok", T.plus_seconds(5))
            .await
            .unwrap());
        assert!(!tx
            .move_signing_job("job-1", "pending", "failed", "x", T)
            .await
            .unwrap());
        assert!(!tx
            .move_signing_job("job-9", "pending", "failed", "x", T)
            .await
            .unwrap());
        tx.commit().await.unwrap();
        let stored = store.signing_documents("job-1").await.unwrap();
        assert_eq!(
            stored,
            [
                documents[1].clone(),
                SigningDocumentRecord {
                    signature: Some(vec![0x30, 0x00, 0xff]),
                    signed_pdf: Some(all_bytes()),
                    ..documents[2].clone()
                },
                SigningDocumentRecord {
                    signature: Some(b"sig-2".to_vec()),
                    ..documents[0].clone()
                },
            ],
            "{name}"
        );
        assert_eq!(
            store.signing_job("job-1").await.unwrap(),
            Some(SigningJobRecord {
                status: "signed".into(),
                hint: "ok".into(),
                finished_at: Some(T.plus_seconds(5)),
                ..job
            }),
            "{name}"
        );
    }
}

#[tokio::test]
async fn an_oauth_code_is_used_once_and_gives_back_what_it_was_issued_for() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        two_accounts(store).await;
        let code = OAuthCodeRecord {
            code_hash: "code-1".into(),
            user_id: UserId::from("u-1"),
            client_id: "клијент".into(),
            redirect_uri: "https://client.example/callback?a=1&б=2".into(),
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            created_at: T,
            expires_at: T.plus_seconds(60),
        };
        let mut tx = store.begin().await.unwrap();
        tx.insert_oauth_code(&code).await.unwrap();
        assert!(
            tx.insert_oauth_code(&code).await.is_err(),
            "{name}: one hash twice"
        );
        drop(tx);
        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.use_oauth_code("code-1", T).await.unwrap(),
            None,
            "{name}: rolled back"
        );
        tx.insert_oauth_code(&code).await.unwrap();
        tx.commit().await.unwrap();
        // A use rolled back leaves the code unused.
        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.use_oauth_code("code-1", T).await.unwrap(),
            Some(code.clone())
        );
        drop(tx);
        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.use_oauth_code("code-1", T).await.unwrap(),
            Some(code.clone()),
            "{name}"
        );
        assert_eq!(
            tx.use_oauth_code("code-1", T).await.unwrap(),
            None,
            "{name}: used"
        );
        assert_eq!(
            tx.use_oauth_code("code-9", T).await.unwrap(),
            None,
            "{name}: unknown"
        );
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.use_oauth_code("code-1", T).await.unwrap(),
            None,
            "{name}: used"
        );
    }
}

#[tokio::test]
async fn a_waiting_oauth_request_is_taken_once_before_it_expires() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        let query = "response_type=code&client_id=app&state=ћ%20x&redirect_uri=https%3A%2F%2Fc";
        let mut tx = store.begin().await.unwrap();
        tx.insert_oauth_pending("p-1", query, T, T.plus_seconds(600))
            .await
            .unwrap();
        tx.insert_oauth_pending("p-2", "second", T, T.plus_seconds(10))
            .await
            .unwrap();
        tx.insert_oauth_pending("p-3", "third", T, T.plus_seconds(20))
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.take_oauth_pending("p-1", T).await.unwrap(),
            Some(query.to_owned())
        );
        drop(tx);
        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.take_oauth_pending("p-1", T.plus_seconds(599))
                .await
                .unwrap(),
            Some(query.to_owned()),
            "{name}: the rolled-back take left it"
        );
        assert_eq!(
            tx.take_oauth_pending("p-1", T).await.unwrap(),
            None,
            "{name}: taken"
        );
        assert_eq!(
            tx.take_oauth_pending("p-9", T).await.unwrap(),
            None,
            "{name}: unknown"
        );
        assert_eq!(
            tx.take_oauth_pending("p-2", T.plus_seconds(10))
                .await
                .unwrap(),
            None,
            "{name}: expired at its end"
        );
        assert_eq!(
            tx.take_oauth_pending("p-2", T).await.unwrap(),
            None,
            "{name}: an expired take removes it"
        );
        // A new one removes those expired by its `now`: p-3 ends at T+20.
        tx.insert_oauth_pending("p-4", "fourth", T.plus_seconds(20), T.plus_seconds(80))
            .await
            .unwrap();
        assert_eq!(
            tx.take_oauth_pending("p-3", T).await.unwrap(),
            None,
            "{name}: removed"
        );
        // An id of an expired request may be used again.
        tx.insert_oauth_pending("p-2", "again", T.plus_seconds(20), T.plus_seconds(80))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.take_oauth_pending("p-4", T.plus_seconds(79))
                .await
                .unwrap(),
            Some("fourth".into())
        );
        assert_eq!(
            tx.take_oauth_pending("p-2", T.plus_seconds(21))
                .await
                .unwrap(),
            Some("again".into())
        );
    }
}
