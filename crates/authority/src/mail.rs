//! Outgoing mail (DESIGN §7): without `EIDPORTAL_SMTP_URL` every message is written to
//! `<data>/outbox/` as an RFC 5322 `.eml` file (written to a temporary name, synced, then
//! renamed, so a crash never leaves half a message). SMTP delivery comes with the agreement
//! e-mails.

use std::io::Write;
use std::path::PathBuf;

use crate::Error;

/// One message.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Recipient address.
    pub to: String,
    /// Subject (UTF-8).
    pub subject: String,
    /// Plain-text body (UTF-8).
    pub body: String,
}

/// Where mail goes.
#[derive(Debug, Clone)]
pub struct Mailer {
    /// The outbox folder.
    pub outbox: PathBuf,
    /// The sender address.
    pub from: String,
}

fn base64(data: &[u8]) -> String {
    proto::b64(data).replace('-', "+").replace('_', "/") + match data.len() % 3 {
        1 => "==",
        2 => "=",
        _ => "",
    }
}

/// RFC 2047 encoded-word for a header with non-ASCII text.
fn encoded_word(text: &str) -> String {
    if text.is_ascii() {
        text.to_owned()
    } else {
        format!("=?UTF-8?B?{}?=", base64(text.as_bytes()))
    }
}

impl Mail {
    /// The message as RFC 5322 text with a base64 UTF-8 body.
    pub fn to_eml(&self, from: &str, date: &str, message_id: &str) -> String {
        let body = base64(self.body.as_bytes());
        let mut wrapped = String::new();
        for chunk in body.as_bytes().chunks(76) {
            wrapped.push_str(&String::from_utf8_lossy(chunk));
            wrapped.push_str("\r\n");
        }
        format!(
            "From: {from}\r\nTo: {}\r\nSubject: {}\r\nDate: {date}\r\nMessage-ID: <{message_id}>\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{wrapped}",
            self.to,
            encoded_word(&self.subject),
        )
    }
}

impl Mailer {
    /// Writes the message to the outbox; returns its file.
    pub fn send(&self, mail: &Mail, now: domain::UnixTime) -> Result<PathBuf, Error> {
        let io = |e: std::io::Error| Error::Inconsistent(format!("outbox {}: {e}", self.outbox.display()));
        std::fs::create_dir_all(&self.outbox).map_err(io)?;
        let id = hex::encode(rand::random::<[u8; 12]>());
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(now.0).unwrap_or(0));
        let date = httpdate::fmt_http_date(time);
        let text = mail.to_eml(&self.from, &date, &format!("{id}@eidportal"));
        let name = format!("{}-{id}.eml", now.0);
        let temporary = self.outbox.join(format!(".{name}.tmp"));
        let mut file = std::fs::File::create(&temporary).map_err(io)?;
        file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(io)?;
        let path = self.outbox.join(name);
        std::fs::rename(&temporary, &path).map_err(io)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_valid_mime_with_utf8() {
        let mail = Mail { to: "a@example.rs".into(), subject: "Потврда".into(), body: "Здраво".into() };
        let eml = mail.to_eml("portal@example.rs", "Wed, 25 Nov 2026 03:34:33 GMT", "x@y");
        assert!(eml.contains("Subject: =?UTF-8?B?"));
        let body = eml.split("\r\n\r\n").nth(1).unwrap().replace("\r\n", "");
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD.decode(body).unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "Здраво");
    }
}
