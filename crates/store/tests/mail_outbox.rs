//! The mail outbox on SQLite and PostgreSQL: a queued mail is due, claimed by one worker only,
//! retried, given up or sent (its text emptied); a rolled-back use case queues nothing; an
//! account sees only its own undelivered mail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use domain::records::{OutboxMail, OutboxStatus};
use domain::{UnixTime, UserId};
use store::{MailQueries as _, MailStore as _, Store};

fn mail(id: &str, user: &str, at: UnixTime) -> OutboxMail {
    OutboxMail {
        id: id.into(),
        user_id: Some(user.into()),
        recipient: format!("{user}@example.rs"),
        subject: "Потврда".into(),
        message: b"Subject: test\r\n\r\nbody".to_vec(),
        status: OutboxStatus::Pending,
        attempts: 0,
        created_at: at,
        next_attempt_at: at,
        last_error: None,
        finished_at: None,
    }
}

#[tokio::test]
async fn queued_mail_is_retried_given_up_or_sent_and_shown_only_to_its_account() {
    let dir = tempfile::tempdir().unwrap();
    for db in store::test_support::databases(dir.path()).await {
        let store = Store::connect(&db.url).await.unwrap();
        let t = UnixTime(1_000_000);
        let (ana, petar) = (UserId::from("ana"), UserId::from("petar"));
        // Rolled back: nothing queued.
        let mut tx = store.begin().await.unwrap();
        tx.enqueue_mail(&mail("gone", "ana", t)).await.unwrap();
        drop(tx);
        let mut tx = store.begin().await.unwrap();
        tx.enqueue_mail(&mail("a", "ana", t)).await.unwrap();
        tx.enqueue_mail(&mail("b", "petar", t.plus_seconds(5)))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let due = store.due_mails(t, 10).await.unwrap();
        assert_eq!(due.len(), 1, "{}", db.name);
        assert_eq!(due[0].id, "a");
        // One claim wins; the claimed mail is not due again until its lease ends.
        assert!(store
            .claim_mail(&due[0], t.plus_seconds(300))
            .await
            .unwrap());
        assert!(!store
            .claim_mail(&due[0], t.plus_seconds(300))
            .await
            .unwrap());
        assert!(store
            .due_mails(t.plus_seconds(10), 10)
            .await
            .unwrap()
            .iter()
            .all(|m| m.id != "a"));
        // Not yet failed: nobody is told.
        assert!(store.undelivered_mails_of(&ana).await.unwrap().is_empty());
        store
            .mail_attempt_failed("a", t, "connection refused", Some(t.plus_seconds(60)))
            .await
            .unwrap();
        let shown = store.undelivered_mails_of(&ana).await.unwrap();
        assert_eq!(shown.len(), 1);
        assert_eq!(
            (shown[0].attempts, shown[0].status),
            (1, OutboxStatus::Pending)
        );
        assert!(store.undelivered_mails_of(&petar).await.unwrap().is_empty());
        // Given up.
        store
            .mail_attempt_failed("a", t.plus_seconds(60), "refused", None)
            .await
            .unwrap();
        let failed = store.outbox_mail("a").await.unwrap().unwrap();
        assert_eq!((failed.status, failed.attempts), (OutboxStatus::Failed, 2));
        assert!(store
            .due_mails(t.plus_seconds(9999), 10)
            .await
            .unwrap()
            .iter()
            .all(|m| m.id != "a"));
        assert_eq!(store.undelivered_mails_of(&ana).await.unwrap().len(), 1);
        // Sent: its text is gone and it is no longer due.
        store.mail_sent("b", t.plus_seconds(6)).await.unwrap();
        let sent = store.outbox_mail("b").await.unwrap().unwrap();
        assert_eq!(sent.status, OutboxStatus::Sent);
        assert!(sent.message.is_empty());
        assert!(store
            .due_mails(t.plus_seconds(9999), 10)
            .await
            .unwrap()
            .is_empty());
        store.close().await;
    }
}
