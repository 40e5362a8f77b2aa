//! Outgoing mail (DESIGN §7): through SMTP when `EIDPORTAL_SMTP_URL` is set (`smtp://host:port`,
//! plain SMTP to a relay), else written to `<data>/outbox/` as RFC 5322 `.eml` files (to a
//! temporary name, synced, then renamed, so a crash never leaves half a message).

use std::io::Write;
use std::path::PathBuf;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{Message, SmtpTransport, Transport};

use crate::Error;

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

/// Where mail goes.
#[derive(Debug, Clone)]
pub struct Mailer {
    /// The outbox folder (used when there is no SMTP relay).
    pub outbox: PathBuf,
    /// The SMTP relay, `smtp://host:port`.
    pub smtp_url: Option<String>,
    /// The sender.
    pub from: String,
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

/// Host and port of `smtp://host[:port]` (default port 25).
fn smtp_address(url: &str) -> Result<(String, u16), Error> {
    let rest = url.strip_prefix("smtp://").ok_or_else(|| {
        mail_error(format!(
            "{url}: only smtp:// (plain, to a relay) is supported"
        ))
    })?;
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((host, port)) => Ok((
            host.to_owned(),
            port.parse()
                .map_err(|_| mail_error(format!("{url}: bad port")))?,
        )),
        None => Ok((rest.to_owned(), 25)),
    }
}

impl Mailer {
    /// Sends the message: through SMTP, or into the outbox. Returns where it went.
    pub fn send(&self, mail: &Mail, now: domain::UnixTime) -> Result<String, Error> {
        let message = mail.to_message(&self.from)?;
        match &self.smtp_url {
            Some(url) => {
                let (host, port) = smtp_address(url)?;
                // Plain SMTP to a relay on a trusted network; TLS to the relay is not built in.
                let transport = SmtpTransport::builder_dangerous(host).port(port).build();
                transport.send(&message).map_err(mail_error)?;
                Ok(format!("smtp {url}"))
            }
            None => self.write_to_outbox(&message.formatted(), now),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
