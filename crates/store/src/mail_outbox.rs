//! The mail outbox: messages written in the use case's transaction and delivered afterwards by
//! a worker, retried with backoff until sent or given up (`failed`).

use std::future::Future;

use domain::records::OutboxMail;
use domain::{UnixTime, UserId};

use crate::db::{query, Row};
use crate::{parse_column, Error, Store, Tx};

const COLUMNS: &str = "SELECT id, user_id, recipient, subject, message, status, attempts, \
     created_at, next_attempt_at, last_error, finished_at FROM mail_outbox";

fn from_row(row: &Row) -> Result<OutboxMail, Error> {
    Ok(OutboxMail {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        recipient: row.try_get(2)?,
        subject: row.try_get(3)?,
        message: row.try_get(4)?,
        status: parse_column(row, 5, "outbox status")?,
        attempts: row.try_get(6)?,
        created_at: UnixTime(row.try_get(7)?),
        next_attempt_at: UnixTime(row.try_get(8)?),
        last_error: row.try_get(9)?,
        finished_at: row.try_get::<Option<i64>>(10)?.map(UnixTime),
    })
}

/// The outbox as its sender works it, one statement each: due mails, a claim, the outcome; and an account's undelivered mails.
pub trait MailQueries {
    /// Pending messages due at `now`, oldest first, at most `limit`.
    fn due_mails(
        &self,
        now: UnixTime,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<OutboxMail>, Error>> + Send;

    /// When the next pending message falls due (it may be now or past), if any is pending.
    fn next_mail_due(&self) -> impl Future<Output = Result<Option<UnixTime>, Error>> + Send;

    /// One message by id.
    fn outbox_mail(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<OutboxMail>, Error>> + Send;

    /// The account's messages that could not be delivered: given up, or pending after at
    /// least one failed attempt; newest first.
    fn undelivered_mails_of(
        &self,
        user_id: &UserId,
    ) -> impl Future<Output = Result<Vec<OutboxMail>, Error>> + Send;

    /// Takes a due message for one attempt: moves its next attempt to `lease_until`, so that no
    /// other worker (another process on the same database) sends it meanwhile. False when
    /// someone else took it first.
    fn claim_mail(
        &self,
        mail: &OutboxMail,
        lease_until: UnixTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Records a delivered message and empties its text.
    fn mail_sent(&self, id: &str, at: UnixTime) -> impl Future<Output = Result<(), Error>> + Send;

    /// Records a failed attempt: the next one at `retry_at`, or given up (`failed`) when
    /// `None`.
    fn mail_attempt_failed(
        &self,
        id: &str,
        at: UnixTime,
        error: &str,
        retry_at: Option<UnixTime>,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

impl MailQueries for Store {
    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn due_mails(&self, now: UnixTime, limit: i64) -> Result<Vec<OutboxMail>, Error> {
        let rows = query(&format!(
            "{COLUMNS} WHERE status = 'pending' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, id LIMIT $2"
        ))
        .bind(now.0)
        .bind(limit)
        .fetch_all(self.db())
        .await?;
        rows.iter().map(from_row).collect()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn next_mail_due(&self) -> Result<Option<UnixTime>, Error> {
        let row = query("SELECT MIN(next_attempt_at) FROM mail_outbox WHERE status = 'pending'")
            .fetch_one(self.db())
            .await?;
        Ok(row.try_get::<Option<i64>>(0)?.map(UnixTime))
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn outbox_mail(&self, id: &str) -> Result<Option<OutboxMail>, Error> {
        let row = query(&format!("{COLUMNS} WHERE id = $1"))
            .bind(id.to_owned())
            .fetch_optional(self.db())
            .await?;
        row.map(|r| from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn undelivered_mails_of(&self, user_id: &UserId) -> Result<Vec<OutboxMail>, Error> {
        let rows = query(&format!(
            "{COLUMNS} WHERE user_id = $1 AND (status = 'failed' OR \
             (status = 'pending' AND attempts > 0)) ORDER BY created_at DESC, id"
        ))
        .bind(user_id.to_owned())
        .fetch_all(self.db())
        .await?;
        rows.iter().map(from_row).collect()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn claim_mail(&self, mail: &OutboxMail, lease_until: UnixTime) -> Result<bool, Error> {
        let done = self
            .write_one(
                query(
                    "UPDATE mail_outbox SET next_attempt_at = $3 \
                     WHERE id = $1 AND status = 'pending' AND next_attempt_at = $2",
                )
                .bind(mail.id.clone())
                .bind(mail.next_attempt_at.0)
                .bind(lease_until.0),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn mail_sent(&self, id: &str, at: UnixTime) -> Result<(), Error> {
        self.write_one(
            query(
                "UPDATE mail_outbox SET status = 'sent', attempts = attempts + 1, \
                 finished_at = $2, message = $3, last_error = NULL WHERE id = $1",
            )
            .bind(id.to_owned())
            .bind(at.0)
            .bind(Vec::<u8>::new()),
        )
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn mail_attempt_failed(
        &self,
        id: &str,
        at: UnixTime,
        error: &str,
        retry_at: Option<UnixTime>,
    ) -> Result<(), Error> {
        let q = match retry_at {
            Some(retry_at) => query(
                "UPDATE mail_outbox SET attempts = attempts + 1, last_error = $2, \
                 next_attempt_at = $3 WHERE id = $1",
            )
            .bind(id.to_owned())
            .bind(error.to_owned())
            .bind(retry_at.0),
            None => query(
                "UPDATE mail_outbox SET attempts = attempts + 1, last_error = $2, \
                 status = 'failed', finished_at = $3 WHERE id = $1",
            )
            .bind(id.to_owned())
            .bind(error.to_owned())
            .bind(at.0),
        };
        self.write_one(q).await?;
        Ok(())
    }
}

/// The mail outbox inside a use case's transaction: a message is written in the use case
/// that sends it, and delivered after the commit.
pub trait MailStore {
    /// Writes a message into the outbox, due at once (`status` pending, no attempt yet).
    fn enqueue_mail(&mut self, mail: &OutboxMail)
        -> impl Future<Output = Result<(), Error>> + Send;
}

impl MailStore for Tx {
    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn enqueue_mail(&mut self, mail: &OutboxMail) -> Result<(), Error> {
        query(
            "INSERT INTO mail_outbox (id, user_id, recipient, subject, message, status, attempts, \
             created_at, next_attempt_at, last_error, finished_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(mail.id.clone())
        .bind(mail.user_id.clone())
        .bind(mail.recipient.clone())
        .bind(mail.subject.clone())
        .bind(mail.message.clone())
        .bind(mail.status.as_str())
        .bind(mail.attempts)
        .bind(mail.created_at.0)
        .bind(mail.next_attempt_at.0)
        .bind(mail.last_error.clone())
        .bind(mail.finished_at.map(|t| t.0))
        .execute(self.conn()?)
        .await?;
        crate::Transaction::publish(self, crate::Change::Mail);
        Ok(())
    }
}
