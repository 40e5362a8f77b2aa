//! `AccountStore` and `AccountQueries`: accounts, their proofing, activation codes, e-mail
//! verifications and rate-limit counters.

use domain::records::{ActivationRecord, UserRecord};
use domain::{AssuranceLevel, RateLimit, UnixTime, UserId};
use store::{AccountQueries as _, AccountStore as _};

use crate::support::{databases, insert_user, race, user, T};

#[tokio::test]
async fn an_account_round_trips_and_is_seen_by_others_only_once_committed() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        let jelena = user("u-1", "jelena@example.rs");
        let without_password = UserRecord {
            password_hash: None,
            email_verified: true,
            assurance: AssuranceLevel::High,
            ..user("u-2", "marko@example.rs")
        };
        let mut tx = store.begin().await.unwrap();
        tx.insert_user(&jelena).await.unwrap();
        tx.insert_user(&without_password).await.unwrap();
        // The transaction reads its own writes; nobody else does yet.
        assert_eq!(
            tx.user(&jelena.id).await.unwrap(),
            Some(jelena.clone()),
            "{name}"
        );
        assert_eq!(
            tx.user_by_email("jelena@example.rs").await.unwrap(),
            Some(jelena.clone()),
            "{name}"
        );
        assert_eq!(store.user(&jelena.id).await.unwrap(), None, "{name}");
        assert_eq!(
            store.user_by_email("jelena@example.rs").await.unwrap(),
            None,
            "{name}"
        );
        tx.commit().await.unwrap();

        for record in [&jelena, &without_password] {
            let by_id = store.user(&record.id).await.unwrap().unwrap();
            assert_eq!(&by_id, record, "{name}");
            // `UserRecord`'s Debug hides the personal fields: compare them one by one too.
            assert_eq!(
                (
                    &by_id.given_name,
                    &by_id.surname,
                    &by_id.jmbg,
                    &by_id.password_hash
                ),
                (
                    &record.given_name,
                    &record.surname,
                    &record.jmbg,
                    &record.password_hash
                ),
                "{name}"
            );
            assert_eq!(by_id.created_at, T, "{name}");
            assert_eq!(
                store.user_by_email(&record.email).await.unwrap().as_ref(),
                Some(record),
                "{name}"
            );
        }
        // E-mail is matched exactly (the caller lower-cases it).
        assert_eq!(
            store.user_by_email("Jelena@example.rs").await.unwrap(),
            None,
            "{name}"
        );
        assert_eq!(
            store.user(&UserId::from("u-3")).await.unwrap(),
            None,
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_second_account_with_the_same_id_or_email_is_refused_and_a_rollback_keeps_nothing() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        insert_user(store, &user("u-1", "jelena@example.rs")).await;

        let mut tx = store.begin().await.unwrap();
        let same_email = tx.insert_user(&user("u-2", "jelena@example.rs")).await;
        assert!(
            same_email.is_err(),
            "{name}: a second account with one address"
        );
        drop(tx);
        let mut tx = store.begin().await.unwrap();
        let same_id = tx.insert_user(&user("u-1", "other@example.rs")).await;
        assert!(same_id.is_err(), "{name}: a second account with one id");
        drop(tx);

        // Dropped without a commit: nothing of it stays.
        let mut tx = store.begin().await.unwrap();
        tx.insert_user(&user("u-3", "petar@example.rs"))
            .await
            .unwrap();
        drop(tx);
        assert_eq!(
            store.user(&UserId::from("u-2")).await.unwrap(),
            None,
            "{name}"
        );
        assert_eq!(
            store.user(&UserId::from("u-3")).await.unwrap(),
            None,
            "{name}"
        );
        assert_eq!(
            store.user_by_email("other@example.rs").await.unwrap(),
            None,
            "{name}"
        );
        assert_eq!(
            store
                .user(&UserId::from("u-1"))
                .await
                .unwrap()
                .unwrap()
                .email,
            "jelena@example.rs",
            "{name}"
        );
    }
}

#[tokio::test]
async fn assurance_and_proofing_change_only_their_fields_of_only_that_account() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        let jelena = user("u-1", "jelena@example.rs");
        let marko = user("u-2", "marko@example.rs");
        insert_user(store, &jelena).await;
        insert_user(store, &marko).await;

        let mut tx = store.begin().await.unwrap();
        tx.update_user_assurance(&jelena.id, AssuranceLevel::High, true)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let updated = store.user(&jelena.id).await.unwrap().unwrap();
        assert_eq!(
            updated,
            UserRecord {
                assurance: AssuranceLevel::High,
                email_verified: true,
                ..jelena.clone()
            },
            "{name}"
        );
        assert_eq!(updated.password_hash, jelena.password_hash, "{name}");
        let mut tx = store.begin().await.unwrap();
        tx.update_user_assurance(&jelena.id, AssuranceLevel::Basic, false)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            store.user(&jelena.id).await.unwrap(),
            Some(jelena.clone()),
            "{name}"
        );

        let mut tx = store.begin().await.unwrap();
        tx.proof_user(&marko.id, "Марко", "Марковић", "0202985710012")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let proofed = store.user(&marko.id).await.unwrap().unwrap();
        assert_eq!(
            (
                proofed.given_name.as_str(),
                proofed.surname.as_str(),
                proofed.jmbg.as_str(),
                proofed.assurance,
                proofed.email_verified,
                proofed.password_hash.as_deref(),
            ),
            (
                "Марко",
                "Марковић",
                "0202985710012",
                AssuranceLevel::High,
                true,
                None
            ),
            "{name}: proofed, verified, and no password any more"
        );
        assert_eq!(
            (proofed.email.as_str(), proofed.created_at),
            ("marko@example.rs", T)
        );
        let untouched = store.user(&jelena.id).await.unwrap().unwrap();
        assert_eq!(untouched, jelena, "{name}");
        assert_eq!(untouched.given_name, jelena.given_name, "{name}");
        assert_eq!(untouched.password_hash, jelena.password_hash, "{name}");
    }
}

fn activation(id: &str, lookup: &str, user_id: &str) -> ActivationRecord {
    ActivationRecord {
        id: id.to_owned(),
        lookup: lookup.to_owned(),
        secret_hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".to_owned(),
        user_id: UserId::from(user_id),
        expires_at: T.plus_seconds(600),
        tries_left: 5,
        nonce: None,
        used_at: None,
    }
}

#[tokio::test]
async fn an_activation_is_found_by_lookup_or_id_updated_and_ended_by_the_next_one() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        insert_user(store, &user("u-1", "jelena@example.rs")).await;
        insert_user(store, &user("u-2", "marko@example.rs")).await;
        let first = activation("a-1", "LOOK-1", "u-1");
        let used = activation("a-0", "LOOK-0", "u-1");
        let others = activation("a-9", "LOOK-9", "u-2");
        let mut tx = store.begin().await.unwrap();
        tx.insert_activation(&used, T).await.unwrap();
        tx.update_activation("a-0", 4, Some("нонс-0"), Some(T.plus_seconds(1)))
            .await
            .unwrap();
        tx.insert_activation(&first, T).await.unwrap();
        tx.insert_activation(&others, T).await.unwrap();
        assert_eq!(
            tx.activation("LOOK-1").await.unwrap(),
            Some(first.clone()),
            "{name}"
        );
        assert_eq!(
            tx.activation("a-1").await.unwrap(),
            Some(first.clone()),
            "{name}"
        );
        assert_eq!(tx.activation("LOOK-7").await.unwrap(), None, "{name}");
        // A used activation keeps what it had.
        assert_eq!(
            tx.activation("a-0").await.unwrap(),
            Some(ActivationRecord {
                tries_left: 4,
                nonce: Some("нонс-0".to_owned()),
                used_at: Some(T.plus_seconds(1)),
                ..used.clone()
            }),
            "{name}"
        );

        // Started: a nonce; then a wrong secret.
        tx.update_activation("a-1", 5, Some("nonce-1"), None)
            .await
            .unwrap();
        tx.update_activation("a-1", 3, Some("nonce-1"), None)
            .await
            .unwrap();
        assert_eq!(
            tx.activation("a-1").await.unwrap(),
            Some(ActivationRecord {
                tries_left: 3,
                nonce: Some("nonce-1".to_owned()),
                ..first.clone()
            }),
            "{name}"
        );
        tx.commit().await.unwrap();

        // A new code for u-1: its unused earlier code stops working, the used one and
        // another account's stay as they were.
        let second = activation("a-2", "LOOK-2", "u-1");
        let mut tx = store.begin().await.unwrap();
        tx.insert_activation(&second, T.plus_seconds(30))
            .await
            .unwrap();
        assert_eq!(
            tx.activation("a-1").await.unwrap().unwrap().tries_left,
            0,
            "{name}"
        );
        assert_eq!(
            tx.activation("a-0").await.unwrap().unwrap().tries_left,
            4,
            "{name}"
        );
        assert_eq!(
            tx.activation("a-9").await.unwrap(),
            Some(others.clone()),
            "{name}"
        );
        assert_eq!(
            tx.activation("a-2").await.unwrap(),
            Some(second.clone()),
            "{name}"
        );
        // A lookup already given out is refused.
        let again = tx
            .insert_activation(&activation("a-3", "LOOK-2", "u-2"), T)
            .await;
        assert!(
            again.is_err(),
            "{name}: a second activation with one lookup"
        );
        drop(tx);
        // The failed use case was rolled back whole: a-1 still works.
        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.activation("a-1").await.unwrap().unwrap().tries_left,
            3,
            "{name}"
        );
        assert_eq!(tx.activation("a-2").await.unwrap(), None, "{name}");
        // Used: the nonce may be cleared with it.
        tx.update_activation("a-1", 3, None, Some(T.plus_seconds(9)))
            .await
            .unwrap();
        assert_eq!(
            tx.activation("LOOK-1").await.unwrap(),
            Some(ActivationRecord {
                tries_left: 3,
                used_at: Some(T.plus_seconds(9)),
                ..first.clone()
            }),
            "{name}"
        );
    }
}

#[tokio::test]
async fn an_email_verification_is_spent_once_before_it_expires_and_verifies_the_account() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        let jelena = user("u-1", "jelena@example.rs");
        insert_user(store, &jelena).await;
        insert_user(store, &user("u-2", "marko@example.rs")).await;
        let mut tx = store.begin().await.unwrap();
        tx.insert_email_verification("hash-1", &jelena.id, T.plus_seconds(60))
            .await
            .unwrap();
        tx.insert_email_verification("hash-2", &UserId::from("u-2"), T.plus_seconds(60))
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.use_email_verification("unknown", T).await.unwrap(),
            None,
            "{name}"
        );
        // Expired at its `expires_at`.
        assert_eq!(
            tx.use_email_verification("hash-2", T.plus_seconds(60))
                .await
                .unwrap(),
            None,
            "{name}: expired"
        );
        assert_eq!(
            tx.use_email_verification("hash-1", T.plus_seconds(59))
                .await
                .unwrap(),
            Some("u-1".to_owned()),
            "{name}"
        );
        assert_eq!(
            tx.use_email_verification("hash-1", T.plus_seconds(59))
                .await
                .unwrap(),
            None,
            "{name}: spent"
        );
        tx.commit().await.unwrap();
        assert!(
            store
                .user(&jelena.id)
                .await
                .unwrap()
                .unwrap()
                .email_verified,
            "{name}"
        );
        assert!(
            !store
                .user(&UserId::from("u-2"))
                .await
                .unwrap()
                .unwrap()
                .email_verified,
            "{name}: another account is not verified"
        );
    }
}

#[tokio::test]
async fn only_unverified_basic_registrations_are_discarded_and_purged() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        let fresh = user("u-fresh", "fresh@example.rs");
        let old = UserRecord {
            created_at: T.plus_seconds(-100),
            ..user("u-old", "old@example.rs")
        };
        let verified = UserRecord {
            email_verified: true,
            created_at: T.plus_seconds(-100),
            ..user("u-verified", "verified@example.rs")
        };
        let proofed = UserRecord {
            assurance: AssuranceLevel::High,
            created_at: T.plus_seconds(-100),
            ..user("u-proofed", "proofed@example.rs")
        };
        let mut tx = store.begin().await.unwrap();
        for record in [&fresh, &old, &verified, &proofed] {
            tx.insert_user(record).await.unwrap();
        }
        // Verification links do not keep an account from going.
        tx.insert_email_verification("link-fresh", &fresh.id, T.plus_seconds(60))
            .await
            .unwrap();
        tx.insert_email_verification("link-old", &old.id, T.plus_seconds(60))
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let mut tx = store.begin().await.unwrap();
        assert!(
            !tx.discard_unverified_user(&verified.id).await.unwrap(),
            "{name}"
        );
        assert!(
            !tx.discard_unverified_user(&proofed.id).await.unwrap(),
            "{name}"
        );
        assert!(
            !tx.discard_unverified_user(&UserId::from("nobody"))
                .await
                .unwrap(),
            "{name}"
        );
        assert!(
            tx.discard_unverified_user(&fresh.id).await.unwrap(),
            "{name}"
        );
        assert!(
            !tx.discard_unverified_user(&fresh.id).await.unwrap(),
            "{name}: gone"
        );
        assert_eq!(
            tx.use_email_verification("link-fresh", T).await.unwrap(),
            None,
            "{name}"
        );
        tx.commit().await.unwrap();
        assert_eq!(store.user(&fresh.id).await.unwrap(), None, "{name}");
        // Its address is free again.
        insert_user(store, &user("u-again", "fresh@example.rs")).await;

        // Purged: created strictly before the limit.
        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.purge_unverified_users(T.plus_seconds(-100))
                .await
                .unwrap(),
            0,
            "{name}: created at the limit stays"
        );
        assert_eq!(tx.purge_unverified_users(T).await.unwrap(), 1, "{name}");
        tx.commit().await.unwrap();
        assert_eq!(store.user(&old.id).await.unwrap(), None, "{name}");
        for kept in ["u-verified", "u-proofed", "u-again"] {
            assert!(
                store.user(&UserId::from(kept)).await.unwrap().is_some(),
                "{name}: {kept}"
            );
        }
    }
}

#[tokio::test]
async fn a_rate_limit_counts_per_key_and_window_and_its_counters_are_purged() {
    const LIMIT: RateLimit = RateLimit {
        limit: 2,
        window: 60,
    };
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        assert_eq!(store.rate_limit_counters().await.unwrap(), 0, "{name}");
        let count = |key: &'static str, at: UnixTime| async move {
            let mut tx = store.begin().await.unwrap();
            let allowed = tx.rate_limit(key, LIMIT, at).await.unwrap();
            tx.commit().await.unwrap();
            allowed
        };
        assert!(count("login:ана", T).await, "{name}");
        assert!(count("login:ана", T.plus_seconds(10)).await, "{name}");
        assert!(
            !count("login:ана", T.plus_seconds(20)).await,
            "{name}: the third in the window"
        );
        assert!(
            !count("login:ана", T.plus_seconds(59)).await,
            "{name}: a refusal counts nothing"
        );
        assert!(
            count("login:marko", T.plus_seconds(20)).await,
            "{name}: another key"
        );
        // A rolled-back count is not counted.
        let mut tx = store.begin().await.unwrap();
        assert!(tx
            .rate_limit("login:marko", LIMIT, T.plus_seconds(21))
            .await
            .unwrap());
        drop(tx);
        assert!(
            count("login:marko", T.plus_seconds(22)).await,
            "{name}: the second"
        );
        assert!(!count("login:marko", T.plus_seconds(23)).await, "{name}");
        // The window ends 60 s after its first event and a new one starts.
        assert!(
            count("login:ана", T.plus_seconds(60)).await,
            "{name}: a new window"
        );
        assert!(count("login:ана", T.plus_seconds(61)).await, "{name}");
        assert!(!count("login:ана", T.plus_seconds(62)).await, "{name}");
        assert_eq!(store.rate_limit_counters().await.unwrap(), 2, "{name}");

        // ана's window started at T+60, marko's at T+20: purged at or before the limit.
        assert_eq!(
            store.purge_rate_limits(T.plus_seconds(19)).await.unwrap(),
            0,
            "{name}"
        );
        assert_eq!(
            store.purge_rate_limits(T.plus_seconds(20)).await.unwrap(),
            1,
            "{name}"
        );
        assert_eq!(store.rate_limit_counters().await.unwrap(), 1, "{name}");
        assert!(
            !count("login:ана", T.plus_seconds(63)).await,
            "{name}: ана's counter kept"
        );
        assert!(
            count("login:marko", T.plus_seconds(24)).await,
            "{name}: marko's forgotten"
        );
    }
}

/// Two use cases counting the same key at once must not both pass a limit of one: the second
/// waits for the first and then sees its count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_counts_of_one_key_do_not_exceed_the_limit() {
    const ONCE: RateLimit = RateLimit {
        limit: 1,
        window: 600,
    };
    for db in &databases().await {
        let name = db.name;
        for existing in [false, true] {
            let key = if existing {
                "password:old"
            } else {
                "password:new"
            };
            if existing {
                // A counter from an ended window: both use cases read and rewrite it.
                let mut tx = db.store.begin().await.unwrap();
                assert!(tx
                    .rate_limit(key, ONCE, T.plus_seconds(-1000))
                    .await
                    .unwrap());
                tx.commit().await.unwrap();
            }
            let (first, second) = race(db.name, &db.store, move |mut tx: store::Tx| async move {
                let allowed = tx.rate_limit(key, ONCE, T).await.unwrap();
                (tx, allowed)
            })
            .await;
            assert!(first, "{name}: the first count");
            assert!(
                !second,
                "{name}: the second count passed a limit of one ({key})"
            );
        }
    }
}
