//! The signing service's own contract, on a temporary store: an API token reaches only its own
//! user's credentials, and a SAD is handed out once and signs once.

use domain::signing::{HashAlgorithm, SadRefusal, SignatureScheme};

use crate::signing::{AuthorizationCheck, SignRequest, SigningRefusal, API_TOKEN_LIFETIME};
use crate::test_support::{authorities, basic_account, enrol, person, App, PASSWORD};
use crate::{Error, Rejection};

fn sign_request(credential_id: &str, hashes: &[Vec<u8>]) -> SignRequest {
    SignRequest {
        credential_id: credential_id.into(),
        algorithm: HashAlgorithm::Sha256,
        hashes: hashes.to_vec(),
        num_signatures: hashes.len(),
        titles: vec!["Уговор.pdf".into()],
        requester: "test integrator".into(),
        context: proto::app::RequestContext {
            browser: "test".into(),
            ip: "127.0.0.1".into(),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_token_reaches_only_its_own_users_credentials() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let mut credentials = Vec::new();
        for email in ["petar@example.rs", "jovana@example.rs"] {
            enrol(&t, email).await;
            let issued =
                t.ca.issue_cloud_certificate(&person(), Some(email), "officer")
                    .await
                    .unwrap();
            credentials.push(issued.serial.to_hex());
        }
        let (own, others) = (&credentials[0], &credentials[1]);

        let (token, lifetime) = t
            .signing
            .api_login("petar@example.rs", PASSWORD, "127.0.0.1")
            .await
            .unwrap();
        assert_eq!(lifetime, API_TOKEN_LIFETIME, "{name}");
        let caller = t.signing.api_caller(&token).await.unwrap().unwrap();
        assert_eq!(caller.user.email, "petar@example.rs", "{name}");
        let listed: Vec<String> = t
            .signing
            .credentials(&caller.user, false)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(listed, vec![own.clone()], "{name}: only their own");
        assert!(
            t.signing
                .credential(&caller.user, others)
                .await
                .unwrap()
                .is_none(),
            "{name}: another user's credential is unknown"
        );
        assert!(
            t.signing
                .credential(&caller.user, own)
                .await
                .unwrap()
                .is_some(),
            "{name}"
        );
        assert!(
            matches!(
                t.signing
                    .authorize_signing(
                        &caller.user,
                        &sign_request(others, &[vec![1; 32]]),
                        "api:test"
                    )
                    .await,
                Err(Error::Signing(SigningRefusal::UnknownCredential))
            ),
            "{name}: nor can it be asked to sign"
        );

        // A wrong password gets no token; a token ends at logout and at its expiry.
        assert!(
            matches!(
                t.signing
                    .api_login("petar@example.rs", "wrong horse battery", "127.0.0.1")
                    .await,
                Err(Error::Rejected(Rejection::BadSignature))
            ),
            "{name}"
        );
        t.signing.api_logout(&caller).await.unwrap();
        assert!(
            t.signing.api_caller(&token).await.unwrap().is_none(),
            "{name}"
        );
        let (token, _) = t
            .signing
            .api_login("petar@example.rs", PASSWORD, "127.0.0.1")
            .await
            .unwrap();
        t.clock.advance(API_TOKEN_LIFETIME - 1);
        assert!(
            t.signing.api_caller(&token).await.unwrap().is_some(),
            "{name}"
        );
        t.clock.advance(1);
        assert!(
            t.signing.api_caller(&token).await.unwrap().is_none(),
            "{name}: expired"
        );
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sad_is_handed_out_once_and_signs_once() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let (user, code) = enrol(&t, "petar@example.rs").await;
        let app = App::activate(&t, &code).await.unwrap();
        let credential =
            t.ca.issue_cloud_certificate(&person(), Some("petar@example.rs"), "officer")
                .await
                .unwrap()
                .serial
                .to_hex();
        let hashes = vec![vec![1u8; 32], vec![2u8; 32]];
        let handle = t
            .signing
            .authorize_signing(&user, &sign_request(&credential, &hashes), "api:test")
            .await
            .unwrap();
        assert!(
            matches!(
                t.signing
                    .authorization_check(&user, &handle, "api:test")
                    .await,
                Ok(AuthorizationCheck::Pending { .. })
            ),
            "{name}"
        );
        app.approve_next(&t).await;
        // Another caller (binding) does not know the handle.
        assert!(
            matches!(
                t.signing
                    .authorization_check(&user, &handle, "api:other")
                    .await,
                Err(Error::Signing(SigningRefusal::UnknownHandle))
            ),
            "{name}"
        );
        let sad = match t
            .signing
            .authorization_check(&user, &handle, "api:test")
            .await
            .unwrap()
        {
            AuthorizationCheck::Authorized { sad, .. } => sad,
            other => panic!("{name}: expected a SAD, got {other:?}"),
        };
        assert!(
            matches!(
                t.signing
                    .authorization_check(&user, &handle, "api:test")
                    .await,
                Err(Error::Signing(SigningRefusal::UnknownHandle))
            ),
            "{name}: the SAD is handed out once"
        );

        let sign = |binding: &'static str, hashes: Vec<Vec<u8>>| {
            let (t, user, credential, sad) = (&t, &user, &credential, &sad);
            async move {
                t.signing
                    .sign_hashes(
                        user,
                        binding,
                        credential,
                        sad,
                        HashAlgorithm::Sha256,
                        SignatureScheme::Ecdsa,
                        &hashes,
                    )
                    .await
            }
        };
        // Another caller cannot spend it, nor can it sign what was not approved.
        assert!(
            matches!(
                sign("api:other", hashes.clone()).await,
                Err(Error::Signing(SigningRefusal::Sad(SadRefusal::Invalid)))
            ),
            "{name}: another binding"
        );
        assert!(
            matches!(
                sign("api:test", vec![vec![3u8; 32]]).await,
                Err(Error::Signing(SigningRefusal::Sad(
                    SadRefusal::HashNotAuthorized
                )))
            ),
            "{name}: a hash not approved"
        );
        let signatures = sign("api:test", hashes.clone()).await.unwrap();
        assert_eq!(signatures.len(), 2, "{name}");
        let audit = t.audit_len().await;
        assert!(
            matches!(
                sign("api:test", hashes.clone()).await,
                Err(Error::Signing(SigningRefusal::Sad(SadRefusal::Spent)))
            ),
            "{name}: a SAD signs once"
        );
        assert!(
            matches!(
                sign("api:test", vec![hashes[0].clone()]).await,
                Err(Error::Signing(SigningRefusal::Sad(SadRefusal::Spent)))
            ),
            "{name}: not even a part of it"
        );
        assert_eq!(t.audit_len().await, audit, "{name}: nothing more signed");
        t.close().await;
    }
}

/// A key that "signs" a digest by copying it and remembers the threads it ran on: the slicing
/// of a batch, not the cryptography, is under test here.
struct EchoKey {
    parallelism: usize,
    public_key: pki::PublicKeyDer,
    threads: std::sync::Mutex<std::collections::HashSet<std::thread::ThreadId>>,
}

impl pki::KeySigner for EchoKey {
    fn algorithm(&self) -> pki::KeyAlgorithm {
        pki::KeyAlgorithm::EcdsaP256
    }

    fn public_key(&self) -> &pki::PublicKeyDer {
        &self.public_key
    }

    fn sign_digest(&self, digest: &pki::Digest, _: pki::RsaPadding) -> Result<Vec<u8>, pki::Error> {
        self.threads
            .lock()
            .unwrap()
            .insert(std::thread::current().id());
        Ok(digest.as_bytes().to_vec())
    }

    fn parallelism(&self) -> usize {
        self.parallelism
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_signed_on_as_many_threads_as_the_key_allows_in_order() {
    let hashes: Vec<Vec<u8>> = (0..100_u8).map(|i| vec![i; 32]).collect();
    for (parallelism, count, threads) in [(4, 100, 4), (4, 20, 1), (1, 100, 1), (0, 100, 1)] {
        let key = std::sync::Arc::new(EchoKey {
            parallelism,
            public_key: pki::PublicKeyDer(Vec::new()),
            threads: std::sync::Mutex::default(),
        });
        let batch = &hashes[..count];
        let signed = super::start_signing(
            key.clone(),
            pki::RsaPadding::Pkcs1v15,
            HashAlgorithm::Sha256,
            batch,
        )
        .unwrap()
        .finish()
        .await
        .unwrap();
        assert_eq!(signed, batch, "parallelism {parallelism}, {count} hashes");
        assert_eq!(super::signing_threads(key.as_ref(), count), threads);
        assert!(key.threads.lock().unwrap().len() <= threads);
    }
}

/// Finding 3 of issue 22: a self-registered account that was never proofed got an API token
/// from `auth/login`. Its right password now gets `NotProofed` (on the record), and the token
/// it may hold from before reaches nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_basic_account_gets_no_api_token() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let basic = basic_account(&t, "jovana@example.rs").await;
        assert!(
            matches!(
                t.signing
                    .api_login("jovana@example.rs", PASSWORD, "192.0.2.1")
                    .await,
                Err(Error::Rejected(Rejection::NotProofed))
            ),
            "{name}"
        );
        assert_eq!(
            t.audit_events().await.last().map(String::as_str),
            Some("api.login_refused"),
            "{name}"
        );
        // A wrong password says nothing about the account.
        assert!(
            matches!(
                t.signing
                    .api_login("jovana@example.rs", "wrong password", "192.0.2.1")
                    .await,
                Err(Error::Rejected(Rejection::BadSignature))
            ),
            "{name}"
        );
        // A token made for the account before this rule is worth nothing.
        let token = crate::signing::ApiToken("made before".into());
        let mut tx = t.store.begin().await.unwrap();
        store::SigningStore::insert_api_token(
            &mut tx,
            &domain::records::ApiTokenRecord {
                token_hash: token.hash(),
                user_id: basic,
                created_at: t.now(),
                expires_at: t.now().plus_seconds(API_TOKEN_LIFETIME),
                revoked_at: None,
                client_id: None,
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert!(
            t.signing.api_caller(&token).await.unwrap().is_none(),
            "{name}"
        );
        // A proofed account still gets its token.
        enrol(&t, "petar@example.rs").await;
        let (token, _) = t
            .signing
            .api_login("petar@example.rs", PASSWORD, "192.0.2.1")
            .await
            .unwrap();
        assert!(
            t.signing.api_caller(&token).await.unwrap().is_some(),
            "{name}"
        );
        t.close().await;
    }
}

/// Issue 22: an OAuth request waiting for a login is kept server-side under a random id; the id
/// gives it back once, within ten minutes, and an unknown id gives nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_oauth_request_is_given_back_once_within_its_lifetime() {
    use crate::signing::oauth::{PendingAuthorization, MAX_PENDING_QUERY, PENDING_LIFETIME};
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let query = "client_id=a&state=s%3BDomain%3Dx";
        let id = t.signing.oauth_remember(query).await.unwrap().unwrap();
        assert!(
            id.0.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{name}"
        );
        assert!(
            !format!("{id:?}").contains(&id.0),
            "{name}: the id is redacted"
        );
        let unknown = PendingAuthorization("unknown".into());
        assert_eq!(
            t.signing.oauth_recall(&unknown).await.unwrap(),
            None,
            "{name}"
        );
        assert_eq!(
            t.signing.oauth_recall(&id).await.unwrap().as_deref(),
            Some(query),
            "{name}"
        );
        assert_eq!(
            t.signing.oauth_recall(&id).await.unwrap(),
            None,
            "{name}: once"
        );

        let late = t.signing.oauth_remember(query).await.unwrap().unwrap();
        t.clock.advance(PENDING_LIFETIME);
        assert_eq!(
            t.signing.oauth_recall(&late).await.unwrap(),
            None,
            "{name}: expired"
        );

        let long = "a".repeat(MAX_PENDING_QUERY + 1);
        assert_eq!(
            t.signing.oauth_remember(&long).await.unwrap(),
            None,
            "{name}"
        );
    }
}
