//! `MailStore` and `MailQueries`: the outbox written in a use case's transaction and worked
//! by its sender afterwards.

use domain::records::{OutboxMail, OutboxStatus};
use domain::{UnixTime, UserId};
use store::{MailQueries as _, MailStore as _};

use crate::support::{all_bytes, databases, T};

fn mail(id: &str, user: Option<&str>, at: UnixTime) -> OutboxMail {
    OutboxMail {
        id: id.to_owned(),
        user_id: user.map(UserId::from),
        recipient: "jelena@пример.срб".into(),
        subject: "Потврда: ваш сертификат 🔏".into(),
        message: all_bytes(),
        status: OutboxStatus::Pending,
        attempts: 0,
        created_at: at,
        next_attempt_at: at,
        last_error: None,
        finished_at: None,
    }
}

fn ids(mails: &[OutboxMail]) -> Vec<&str> {
    mails.iter().map(|m| m.id.as_str()).collect()
}

#[tokio::test]
async fn queued_mail_round_trips_and_is_due_oldest_first_up_to_the_limit() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        let mut tx = store.begin().await.unwrap();
        tx.enqueue_mail(&mail("m-gone", None, T)).await.unwrap();
        drop(tx);
        assert_eq!(
            store.outbox_mail("m-gone").await.unwrap(),
            None,
            "{name}: rolled back"
        );
        let first = mail("m-2", Some("u-1"), T.plus_seconds(-20));
        let mut tx = store.begin().await.unwrap();
        tx.enqueue_mail(&mail("m-3", None, T.plus_seconds(-10)))
            .await
            .unwrap();
        tx.enqueue_mail(&first).await.unwrap();
        tx.enqueue_mail(&mail("m-1", Some("u-1"), T)).await.unwrap();
        tx.enqueue_mail(&mail("m-later", None, T.plus_seconds(1)))
            .await
            .unwrap();
        assert!(
            tx.enqueue_mail(&first).await.is_err(),
            "{name}: one id twice"
        );
        drop(tx);
        assert_eq!(
            store.next_mail_due().await.unwrap(),
            None,
            "{name}: none pending"
        );
        let mut tx = store.begin().await.unwrap();
        tx.enqueue_mail(&mail("m-3", None, T.plus_seconds(-10)))
            .await
            .unwrap();
        tx.enqueue_mail(&first).await.unwrap();
        tx.enqueue_mail(&mail("m-1", Some("u-1"), T)).await.unwrap();
        tx.enqueue_mail(&mail("m-later", None, T.plus_seconds(1)))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            store.outbox_mail("m-2").await.unwrap(),
            Some(first.clone()),
            "{name}"
        );
        assert_eq!(store.outbox_mail("m-9").await.unwrap(), None, "{name}");
        assert_eq!(
            store.next_mail_due().await.unwrap(),
            Some(T.plus_seconds(-20)),
            "{name}: the earliest pending"
        );
        assert_eq!(
            ids(&store.due_mails(T, 10).await.unwrap()),
            ["m-2", "m-3", "m-1"],
            "{name}"
        );
        assert_eq!(
            ids(&store.due_mails(T, 2).await.unwrap()),
            ["m-2", "m-3"],
            "{name}: limit"
        );
        assert_eq!(
            store.due_mails(T, 10).await.unwrap()[0],
            first,
            "{name}: whole records"
        );
        assert!(
            store
                .due_mails(T.plus_seconds(-21), 10)
                .await
                .unwrap()
                .is_empty(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_claim_holds_a_mail_until_its_lease_and_a_stale_copy_claims_nothing() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        let mut tx = store.begin().await.unwrap();
        tx.enqueue_mail(&mail("m-1", None, T)).await.unwrap();
        tx.commit().await.unwrap();
        let seen = store.due_mails(T, 10).await.unwrap().remove(0);
        assert!(
            store.claim_mail(&seen, T.plus_seconds(300)).await.unwrap(),
            "{name}"
        );
        assert!(
            !store.claim_mail(&seen, T.plus_seconds(300)).await.unwrap(),
            "{name}: taken"
        );
        assert!(
            store
                .due_mails(T.plus_seconds(299), 10)
                .await
                .unwrap()
                .is_empty(),
            "{name}"
        );
        // The lease ended: due again, and claimed through the fresh copy only.
        let again = store
            .due_mails(T.plus_seconds(300), 10)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(again.next_attempt_at, T.plus_seconds(300), "{name}");
        assert!(
            !store.claim_mail(&seen, T.plus_seconds(600)).await.unwrap(),
            "{name}: stale"
        );
        assert!(
            store.claim_mail(&again, T.plus_seconds(600)).await.unwrap(),
            "{name}"
        );
        // Neither sent nor failed ones are claimed.
        store.mail_sent("m-1", T.plus_seconds(301)).await.unwrap();
        let sent = store.outbox_mail("m-1").await.unwrap().unwrap();
        assert!(
            !store.claim_mail(&sent, T.plus_seconds(900)).await.unwrap(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn attempts_are_counted_until_sent_or_given_up_and_an_account_sees_its_undelivered_ones() {
    for db in &databases().await {
        let (name, store) = (db.name, &db.store);
        let mut tx = store.begin().await.unwrap();
        for (id, user, seconds) in [
            ("m-old", Some("u-1"), -30),
            ("m-new", Some("u-1"), -10),
            ("m-ok", Some("u-1"), -20),
            ("m-fresh", Some("u-1"), 0),
            ("m-other", Some("u-2"), -5),
        ] {
            tx.enqueue_mail(&mail(id, user, T.plus_seconds(seconds)))
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        let jelena = UserId::from("u-1");
        assert!(
            store
                .undelivered_mails_of(&jelena)
                .await
                .unwrap()
                .is_empty(),
            "{name}: not tried"
        );

        store
            .mail_attempt_failed("m-old", T, "550 одбијено", Some(T.plus_seconds(60)))
            .await
            .unwrap();
        store
            .mail_attempt_failed("m-old", T.plus_seconds(60), "timeout", None)
            .await
            .unwrap();
        store
            .mail_attempt_failed("m-new", T, "421 busy", Some(T.plus_seconds(30)))
            .await
            .unwrap();
        store
            .mail_attempt_failed("m-ok", T, "421 busy", Some(T.plus_seconds(30)))
            .await
            .unwrap();
        store.mail_sent("m-ok", T.plus_seconds(31)).await.unwrap();
        store
            .mail_attempt_failed("m-other", T, "x", None)
            .await
            .unwrap();

        let given_up = store.outbox_mail("m-old").await.unwrap().unwrap();
        assert_eq!(
            given_up,
            OutboxMail {
                status: OutboxStatus::Failed,
                attempts: 2,
                last_error: Some("timeout".into()),
                finished_at: Some(T.plus_seconds(60)),
                next_attempt_at: T.plus_seconds(60),
                ..mail("m-old", Some("u-1"), T.plus_seconds(-30))
            },
            "{name}"
        );
        let retried = store.outbox_mail("m-new").await.unwrap().unwrap();
        assert_eq!(
            (
                retried.status,
                retried.attempts,
                retried.next_attempt_at,
                retried.last_error.as_deref()
            ),
            (
                OutboxStatus::Pending,
                1,
                T.plus_seconds(30),
                Some("421 busy")
            ),
            "{name}"
        );
        let sent = store.outbox_mail("m-ok").await.unwrap().unwrap();
        assert_eq!(
            (
                sent.status,
                sent.attempts,
                sent.finished_at,
                sent.last_error,
                sent.message.len()
            ),
            (OutboxStatus::Sent, 2, Some(T.plus_seconds(31)), None, 0),
            "{name}: sent, its text emptied"
        );
        assert_eq!(
            sent.subject, "Потврда: ваш сертификат 🔏",
            "{name}: its subject kept"
        );
        // Due: only pending ones whose next attempt has come.
        assert_eq!(
            ids(&store.due_mails(T.plus_seconds(29), 10).await.unwrap()),
            ["m-fresh"]
        );
        assert_eq!(
            ids(&store.due_mails(T.plus_seconds(1000), 10).await.unwrap()),
            ["m-fresh", "m-new"],
            "{name}"
        );
        // Newest first; never another account's, a sent one or one not yet tried.
        assert_eq!(
            ids(&store.undelivered_mails_of(&jelena).await.unwrap()),
            ["m-new", "m-old"],
            "{name}"
        );
        assert_eq!(
            ids(&store
                .undelivered_mails_of(&UserId::from("u-2"))
                .await
                .unwrap()),
            ["m-other"]
        );
    }
}
