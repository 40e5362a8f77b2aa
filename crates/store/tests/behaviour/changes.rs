//! `Database::watch` and `Transaction::publish`: a committed change wakes its watchers, in
//! this process and (PostgreSQL) in another instance; a rolled-back one wakes nobody; the
//! store publishes the changes it makes itself (a status revision, a queued mail).

use std::time::Duration;

use domain::records::{OutboxMail, OutboxStatus};
use domain::{RevocationReason, UserId};
use store::{
    CertificateStore as _, Change, Database as _, MailStore as _, Store, Transaction as _, Watch,
};

use crate::support::{databases, new_certificate, serial, T};

/// A wake comes well within this (a lost one only after `Watch::recheck`, 30 s when listening).
pub(crate) const SOON: Duration = Duration::from_secs(5);
/// Long enough for a wrongly sent wake to have arrived.
const QUIET: Duration = Duration::from_millis(300);

pub(crate) async fn woken(
    next: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>,
    within: Duration,
) -> bool {
    tokio::time::timeout(within, next).await.is_ok()
}

/// Waits until the store's listener hears other instances (PostgreSQL; it wakes every watcher
/// when it connects, since it may have missed changes until then).
pub(crate) async fn until_listening(name: &str, watch: &Watch) {
    if name == "sqlite" {
        return;
    }
    let deadline = tokio::time::Instant::now() + SOON;
    while watch.recheck() < Duration::from_secs(30) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the listener never connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_committed_change_wakes_its_watchers_and_a_rolled_back_one_nobody() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        let jelena = Change::Requests(UserId::from("u-1"));
        let marko = Change::Requests(UserId::from("u-2"));
        let hers = store.watch(&jelena);
        let his = store.watch(&marko);
        until_listening(name, &hers).await;

        let next = hers.next();
        let mut tx = store.begin().await.unwrap();
        tx.publish(jelena.clone());
        drop(tx);
        assert!(!woken(next, QUIET).await, "{name}: woken by a rollback");

        let (next, other) = (hers.next(), his.next());
        let mut tx = store.begin().await.unwrap();
        tx.publish(jelena.clone());
        tx.publish(jelena.clone());
        tx.commit().await.unwrap();
        assert!(woken(next, SOON).await, "{name}: not woken by the commit");
        assert!(
            !woken(other, QUIET).await,
            "{name}: another account's watcher woken"
        );

        // A watcher that starts after the commit is not woken by it.
        let late = store.watch(&jelena);
        assert!(
            !woken(late.next(), QUIET).await,
            "{name}: woken by an earlier change"
        );
    }
}

#[tokio::test]
async fn another_instance_is_woken_on_postgres_and_told_to_look_often_on_sqlite() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        let other = Store::connect(&db.url).await.unwrap();
        let change = Change::Requests(UserId::from("u-1"));
        let watch = other.watch(&change);
        if name == "sqlite" {
            // Another process's commits cannot reach it: it must look again every second.
            assert_eq!(watch.recheck(), Duration::from_secs(1), "{name}");
            continue;
        }
        until_listening(name, &watch).await;
        let next = watch.next();
        let mut tx = store.begin().await.unwrap();
        tx.publish(change.clone());
        tx.commit().await.unwrap();
        assert!(
            woken(next, SOON).await,
            "{name}: the other instance was not woken"
        );
        other.close().await;
    }
}

#[tokio::test]
async fn a_revocation_and_a_queued_mail_wake_their_watchers() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        let mut tx = store.begin().await.unwrap();
        tx.reserve_certificate(&new_certificate(serial(0x10), None, None, T))
            .await
            .unwrap();
        tx.complete_certificate(&serial(0x10), b"der", T)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let status = store.watch(&Change::CertificateStatus);
        let mail = store.watch(&Change::Mail);
        until_listening(name, &mail).await;
        let (status_next, mail_next) = (status.next(), mail.next());
        let mut tx = store.begin().await.unwrap();
        assert!(tx
            .revoke_certificate(&serial(0x10), T, RevocationReason::KeyCompromise)
            .await
            .unwrap());
        tx.commit().await.unwrap();
        assert!(woken(status_next, SOON).await, "{name}: revocation");
        assert!(
            !woken(mail_next, QUIET).await,
            "{name}: mail watcher woken by a revocation"
        );

        let mail_next = mail.next();
        let mut tx = store.begin().await.unwrap();
        tx.enqueue_mail(&OutboxMail {
            id: "m-1".into(),
            user_id: None,
            recipient: "jelena@example.rs".into(),
            subject: "Потврда".into(),
            message: b"text".to_vec(),
            status: OutboxStatus::Pending,
            attempts: 0,
            created_at: T,
            next_attempt_at: T,
            last_error: None,
            finished_at: None,
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert!(woken(mail_next, SOON).await, "{name}: queued mail");
    }
}
