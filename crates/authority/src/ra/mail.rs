//! Outgoing mail (DESIGN §7). With an SMTP relay configured, a message is first written into
//! the outbox table in the transaction of the use case that causes it, and a background worker
//! ([`Ra::mail_worker`]) delivers it through lettre's async SMTP transport, retrying with
//! exponential backoff and giving up (`failed`, shown on the account page) after
//! [`RetryPolicy::max_attempts`] attempts or a day. Nothing is lost on a crash: pending messages
//! are sent after a restart. Relay URLs: `smtp://HOST[:PORT]` (plain, 25),
//! `smtp+starttls://HOST[:PORT]` (STARTTLS required, 587), `smtps://HOST[:PORT]` (implicit TLS,
//! 465). Without a relay, mail is written to `<data>/outbox/` as RFC 5322 `.eml` files (to a
//! temporary name, synced, then renamed, so a crash never leaves half a message).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use domain::records::{OutboxMail, OutboxStatus};
use domain::{UnixTime, UserId};
use lettre::address::Envelope;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use store::{Change, MailStore};

use crate::ra::RaDb;
use crate::{Account, Error, Ra, UndeliveredMail};

/// A file attached to a message.
#[derive(Debug, Clone)]
pub struct MailAttachment {
    /// File name.
    pub filename: String,
    /// MIME type, e.g. `application/pdf`.
    pub content_type: String,
    /// The bytes.
    pub content: Vec<u8>,
}

/// One message.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Recipient address.
    pub to: String,
    /// Subject (UTF-8).
    pub subject: String,
    /// Plain-text body (UTF-8).
    pub body: String,
    /// Attachments.
    pub attachments: Vec<MailAttachment>,
}

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain SMTP (`smtp://`), to a relay on a trusted network.
    Plain,
    /// STARTTLS, required (`smtp+starttls://`): no mail goes out if the relay does not offer it.
    StartTls,
    /// TLS from the first byte (`smtps://`, RFC 8314 §3.3).
    ImplicitTls,
}

/// The SMTP relay: where, how protected, and with which login. `Debug` redacts the password.
#[derive(Clone)]
pub struct SmtpRelay {
    /// The relay's host name (also the name its certificate must carry).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Plain, STARTTLS or implicit TLS.
    pub security: SmtpSecurity,
    /// User name and password for SMTP AUTH (PLAIN or LOGIN, only over TLS unless plain).
    pub credentials: Option<(String, zeroize::Zeroizing<String>)>,
    /// PEM certificates trusted as roots besides the web PKI's (a private relay's CA).
    pub extra_roots_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for SmtpRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpRelay")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field(
                "credentials",
                &self
                    .credentials
                    .as_ref()
                    .map(|(user, _)| (user, "[redacted]")),
            )
            .field("extra_roots", &self.extra_roots_pem.is_some())
            .finish()
    }
}

impl SmtpRelay {
    /// Parses `smtp://HOST[:PORT]`, `smtp+starttls://HOST[:PORT]` or `smtps://HOST[:PORT]`.
    /// Credentials come from the settings, not from the URL (a URL gets logged).
    pub fn parse(url: &str) -> Result<Self, String> {
        let (security, rest, default_port) = if let Some(rest) = url.strip_prefix("smtp://") {
            (SmtpSecurity::Plain, rest, 25)
        } else if let Some(rest) = url.strip_prefix("smtp+starttls://") {
            (SmtpSecurity::StartTls, rest, 587)
        } else if let Some(rest) = url.strip_prefix("smtps://") {
            (SmtpSecurity::ImplicitTls, rest, 465)
        } else {
            return Err(format!(
                "`{url}` is not smtp://, smtp+starttls:// or smtps://HOST[:PORT]"
            ));
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('@') || rest.contains('/') || rest.contains('?') {
            return Err(
                "the SMTP URL is HOST[:PORT] only; the login goes in EIDPORTAL_SMTP_USER and \
                 EIDPORTAL_SMTP_PASSWORD"
                    .into(),
            );
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse()
                    .map_err(|_| format!("`{port}` is not a port"))?,
            ),
            None => (rest, default_port),
        };
        if host.is_empty() {
            return Err("the SMTP URL names no host".into());
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            security,
            credentials: None,
            extra_roots_pem: None,
        })
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, Error> {
        let tls_parameters = || {
            let mut builder = TlsParameters::builder(self.host.clone());
            if let Some(pem) = &self.extra_roots_pem {
                builder =
                    builder.add_root_certificate(Certificate::from_pem(pem).map_err(mail_error)?);
            }
            builder.build_rustls().map_err(mail_error)
        };
        let tls = match self.security {
            SmtpSecurity::Plain => Tls::None,
            SmtpSecurity::StartTls => Tls::Required(tls_parameters()?),
            SmtpSecurity::ImplicitTls => Tls::Wrapper(tls_parameters()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(30)));
        if let Some((user, password)) = &self.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.to_string()));
        }
        Ok(builder.build())
    }
}

/// When failed deliveries are tried again: after `first`, doubling up to `cap`, until
/// `max_attempts` attempts or `give_up_after` since the message was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failure.
    pub first: Duration,
    /// The longest delay.
    pub cap: Duration,
    /// Attempts before giving up.
    pub max_attempts: i64,
    /// Time after which a message is given up whatever its attempts.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(60),
            cap: Duration::from_secs(3600),
            max_attempts: 12,
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// After the `attempts`-th failed attempt at `now` of a message written at `created`: when
    /// to try again, or `None` to give up.
    pub fn next_attempt(
        &self,
        attempts: i64,
        created: UnixTime,
        now: UnixTime,
    ) -> Option<UnixTime> {
        let age = u64::try_from(now.0.saturating_sub(created.0)).unwrap_or(0);
        if attempts >= self.max_attempts || age >= self.give_up_after.as_secs() {
            return None;
        }
        let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let delay = self
            .first
            .as_secs()
            .saturating_mul(1u64 << doublings)
            .min(self.cap.as_secs())
            .max(1);
        Some(now.plus_seconds(i64::try_from(delay).unwrap_or(i64::MAX)))
    }
}

/// Where mail goes.
#[derive(Debug, Clone)]
pub struct Mailer {
    /// The outbox folder (used when there is no SMTP relay).
    pub outbox: PathBuf,
    /// The SMTP relay; `None`: `.eml` files in [`Mailer::outbox`].
    pub smtp: Option<SmtpRelay>,
    /// The sender.
    pub from: String,
    /// When failed deliveries are tried again.
    pub retry: RetryPolicy,
}

fn mail_error(what: impl std::fmt::Display) -> Error {
    Error::Inconsistent(format!("mail: {what}"))
}

impl Mail {
    /// The message in RFC 5322 form.
    pub fn to_message(&self, from: &str) -> Result<Message, Error> {
        let from: Mailbox = from.parse().map_err(mail_error)?;
        let to: Mailbox = self.to.parse().map_err(mail_error)?;
        let text = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(self.body.clone());
        let builder = Message::builder()
            .from(from)
            .to(to)
            .subject(self.subject.clone());
        let message = if self.attachments.is_empty() {
            builder.singlepart(text)
        } else {
            let mut parts = MultiPart::mixed().singlepart(text);
            for attachment in &self.attachments {
                let content_type =
                    ContentType::parse(&attachment.content_type).map_err(mail_error)?;
                parts = parts.singlepart(
                    Attachment::new(attachment.filename.clone())
                        .body(attachment.content.clone(), content_type),
                );
            }
            builder.multipart(parts)
        };
        message.map_err(mail_error)
    }
}

impl Mailer {
    /// Mail into the folder `outbox`, from `from`, until a relay is set.
    pub fn new(outbox: PathBuf, from: String) -> Self {
        Self {
            outbox,
            smtp: None,
            from,
            retry: RetryPolicy::default(),
        }
    }

    /// Hands a message over inside the use case's transaction `tx`: with a relay, into the
    /// outbox table (committed or rolled back with the use case; the commit wakes the mail
    /// workers); without one, straight into the `.eml` folder. `user` is the account it
    /// concerns (its account page shows the message if it cannot be delivered).
    pub async fn enqueue(
        &self,
        tx: &mut impl MailStore,
        mail: &Mail,
        user: Option<&UserId>,
        now: UnixTime,
    ) -> Result<(), Error> {
        let message = mail.to_message(&self.from)?;
        if self.smtp.is_none() {
            self.write_to_outbox(&message.formatted(), now)?;
            return Ok(());
        }
        tx.enqueue_mail(&OutboxMail {
            id: hex::encode(rand::random::<[u8; 16]>()),
            user_id: user.cloned(),
            recipient: mail.to.clone(),
            subject: mail.subject.clone(),
            message: message.formatted(),
            status: OutboxStatus::Pending,
            attempts: 0,
            created_at: now,
            next_attempt_at: now,
            last_error: None,
            finished_at: None,
        })
        .await?;
        Ok(())
    }

    /// One delivery attempt of a queued message.
    async fn deliver(&self, relay: &SmtpRelay, mail: &OutboxMail) -> Result<(), Error> {
        let from: Mailbox = self.from.parse().map_err(mail_error)?;
        let to: Address = mail.recipient.parse().map_err(mail_error)?;
        let envelope = Envelope::new(Some(from.email), vec![to]).map_err(mail_error)?;
        relay
            .transport()?
            .send_raw(&envelope, &mail.message)
            .await
            .map_err(mail_error)?;
        Ok(())
    }

    fn write_to_outbox(&self, bytes: &[u8], now: domain::UnixTime) -> Result<String, Error> {
        let io = |e: std::io::Error| mail_error(format!("outbox {}: {e}", self.outbox.display()));
        std::fs::create_dir_all(&self.outbox).map_err(io)?;
        let name = format!("{}-{}.eml", now.0, hex::encode(rand::random::<[u8; 8]>()));
        let temporary = self.outbox.join(format!(".{name}.tmp"));
        let mut file = std::fs::File::create(&temporary).map_err(io)?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(io)?;
        let path = self.outbox.join(name);
        std::fs::rename(&temporary, &path).map_err(io)?;
        Ok(path.display().to_string())
    }
}

impl<D: RaDb> Ra<D> {
    /// Delivers every message due now, one attempt each; returns how many went out. A failed
    /// attempt is recorded with its next time, or the message is given up (`failed`).
    pub async fn deliver_due_mails(&self) -> Result<usize, Error> {
        let mailer = &self.settings.mailer;
        let Some(relay) = &mailer.smtp else {
            return Ok(0);
        };
        let mut sent = 0;
        let now = self.clock.now();
        for mail in self.store.due_mails(now, 50).await? {
            // 1. Claimed for a few minutes first, so that a second server on the same database
            //    does not send it too; a crash during the attempt retries it after the lease.
            if !self.store.claim_mail(&mail, now.plus_seconds(300)).await? {
                continue;
            }
            // 2. The attempt, then its outcome.
            match mailer.deliver(relay, &mail).await {
                Ok(()) => {
                    self.store.mail_sent(&mail.id, self.clock.now()).await?;
                    sent += 1;
                }
                Err(error) => {
                    let at = self.clock.now();
                    let retry = mailer
                        .retry
                        .next_attempt(mail.attempts + 1, mail.created_at, at);
                    tracing::warn!(%error, mail = %mail.id, attempts = mail.attempts + 1, given_up = retry.is_none(), "an e-mail could not be delivered");
                    self.store
                        .mail_attempt_failed(&mail.id, at, &error.to_string(), retry)
                        .await?;
                }
            }
        }
        Ok(sent)
    }

    /// Delivers queued mail until `stop` completes: at once when a use case queues a message
    /// (in any instance: [`Change::Mail`]), and when a retry falls due; it looks again at least
    /// every [`store::Watch::recheck`]. Ends between rounds.
    pub async fn mail_worker(&self, stop: impl std::future::Future<Output = ()>) {
        let watch = self.store.watch(&Change::Mail);
        tokio::pin!(stop);
        loop {
            let queued = watch.next();
            let mut pause = watch.recheck();
            match self.deliver_due_mails().await {
                Ok(_) => {
                    if let Ok(Some(due)) = self.store.next_mail_due().await {
                        let wait = due.0.saturating_sub(self.clock.now().0).max(0);
                        pause = pause.min(Duration::from_secs(wait.unsigned_abs()));
                    }
                }
                Err(error) => tracing::error!(%error, "mail delivery failed"),
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = queued => {}
                () = &mut stop => break,
            }
        }
    }

    /// The account's messages that could not be delivered (failed, or retrying after a
    /// failure), newest first.
    pub async fn undelivered_mails(&self, user: &Account) -> Result<Vec<UndeliveredMail>, Error> {
        let mails = self.store.undelivered_mails_of(&user.id).await?;
        Ok(mails.into_iter().map(UndeliveredMail::from).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_up_to_the_cap_and_give_up() {
        let policy = RetryPolicy::default();
        let created = UnixTime(1_000_000);
        let at = |seconds| created.plus_seconds(seconds);
        assert_eq!(policy.next_attempt(1, created, at(0)), Some(at(60)));
        assert_eq!(policy.next_attempt(2, created, at(60)), Some(at(180)));
        assert_eq!(policy.next_attempt(3, created, at(180)), Some(at(420)));
        assert_eq!(policy.next_attempt(8, created, at(1000)), Some(at(4600)));
        assert_eq!(policy.next_attempt(11, created, at(1000)), Some(at(4600)));
        assert_eq!(policy.next_attempt(12, created, at(1000)), None);
        assert!(policy.next_attempt(2, created, at(24 * 3600 - 1)).is_some());
        assert_eq!(policy.next_attempt(2, created, at(24 * 3600)), None);
    }

    #[test]
    fn relay_urls_choose_the_protection_and_keep_logins_out() {
        let plain = SmtpRelay::parse("smtp://relay.local").unwrap();
        assert_eq!((plain.port, plain.security), (25, SmtpSecurity::Plain));
        let starttls = SmtpRelay::parse("smtp+starttls://mail.example.rs").unwrap();
        assert_eq!(
            (starttls.port, starttls.security),
            (587, SmtpSecurity::StartTls)
        );
        let tls = SmtpRelay::parse("smtps://mail.example.rs:2465/").unwrap();
        assert_eq!(
            (tls.host.as_str(), tls.port, tls.security),
            ("mail.example.rs", 2465, SmtpSecurity::ImplicitTls)
        );
        assert!(SmtpRelay::parse("smtps://user:secret@mail.example.rs").is_err());
        assert!(SmtpRelay::parse("http://mail.example.rs").is_err());
        assert!(SmtpRelay::parse("smtp://mail:x").is_err());
        let mut relay = tls;
        relay.credentials = Some(("portal".into(), "secret".to_owned().into()));
        let shown = format!("{relay:?}");
        assert!(
            shown.contains("portal") && !shown.contains("secret"),
            "{shown}"
        );
    }

    #[test]
    fn messages_carry_utf8_text_and_attachments() {
        let mail = Mail {
            to: "a@example.rs".into(),
            subject: "Потврда".into(),
            body: "Здраво".into(),
            attachments: vec![MailAttachment {
                filename: "ugovor.pdf".into(),
                content_type: "application/pdf".into(),
                content: b"%PDF-1.7".to_vec(),
            }],
        };
        let text = String::from_utf8(
            mail.to_message("Portal <portal@example.rs>")
                .unwrap()
                .formatted(),
        )
        .unwrap();
        assert!(text.contains("Subject: =?utf-8?"), "{text}");
        assert!(
            text.contains("multipart/mixed")
                && text.contains("ugovor.pdf")
                && text.contains("application/pdf"),
            "{text}"
        );
    }
}
