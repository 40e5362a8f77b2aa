//! The qualified certificate in the cloud as its holder manages it (the seed's steps 8-13):
//! its state, **Издај** with the agreement, **Обнови**, **Опозови** and **Опозови све
//! сертификате**. Every action needs a ConsentID login no older than 15 minutes, and acts on
//! the session's own account only: no identifier from the request chooses whose certificate.

use serde_json::json;

use domain::cloud::{self, CloudCertificate};
use domain::records::CertificateRecord;
use domain::{CertificateKind, CertificateStatus, Jmbg, RevocationReason, UnixTime};
use pki::profile::Person;
use store::{AccountQueries as _, AuditLog as _, CertificateQueries as _};

use crate::ca::issuance::IssuedCertificate;
use crate::login::Session;
use crate::ra::agreement::{agreement_text, fill};
use crate::{Account, CertificateSummary, Error, Ra};

/// Why a cloud-certificate action is refused: the actions return it as [`Error::Cloud`].
pub use domain::cloud::CloudRefusal;

/// What the service page shows.
#[derive(Debug, Clone)]
pub struct CloudState {
    /// The active certificate, if any.
    pub current: Option<CertificateSummary>,
    /// Whether **Издај** is allowed.
    pub may_issue: bool,
    /// Whether **Обнови** is allowed, or why not.
    pub renewal: Result<(), CloudRefusal>,
    /// Whether **Опозови** is allowed.
    pub may_revoke: bool,
}

/// `dd.mm.yyyy.`
pub fn serbian_date(at: UnixTime) -> String {
    let (y, m, d) = at.date();
    format!("{d:02}.{m:02}.{y}.")
}

fn person_of(user: &Account) -> Result<Person, Error> {
    let jmbg =
        Jmbg::parse(&user.jmbg).map_err(|_| Error::Inconsistent("stored JMBG invalid".into()))?;
    Ok(Person {
        given_name: user.given_name.clone(),
        surname: user.surname.clone(),
        jmbg,
    })
}

impl Ra {
    /// E-mails the user after a committed action; a failure is logged, not returned: the action
    /// stands, and the agreement stays downloadable from the account.
    async fn notify(
        &self,
        user: &Account,
        subject: &str,
        body: &str,
        agreement: Option<(&str, &str)>,
    ) {
        let mut attachments = Vec::new();
        if let Some((number, text)) = agreement {
            match crate::ra::agreement::agreement_pdf(text, &self.settings.agreement_words.footer) {
                Ok(pdf) => attachments.push(crate::ra::mail::MailAttachment {
                    filename: format!("ugovor-{number}.pdf"),
                    content_type: "application/pdf".into(),
                    content: pdf,
                }),
                Err(error) => tracing::error!(%error, "the agreement PDF could not be made"),
            }
        }
        let mail = crate::ra::mail::Mail {
            to: user.email.clone(),
            subject: subject.into(),
            body: body.into(),
            attachments,
        };
        // Queued in a transaction of its own just after the action's: the action stands
        // whatever happens to its mail.
        let mailer = &self.settings.mailer;
        let queued = async {
            let mut tx = self.store.begin().await?;
            mailer
                .enqueue(&mut tx, &mail, Some(&user.id), self.clock.now())
                .await?;
            tx.commit().await?;
            Ok::<(), Error>(())
        };
        match queued.await {
            Ok(()) => mailer.wake(),
            Err(error) => tracing::error!(%error, user = %user.id, "an e-mail could not be queued"),
        }
    }

    fn cloud_of(records: &[CertificateRecord], now: UnixTime) -> Option<CertificateRecord> {
        records
            .iter()
            .filter(|c| {
                c.kind == CertificateKind::CloudSigning
                    && c.status == CertificateStatus::Issued
                    && now <= c.not_after
            })
            .max_by_key(|c| c.not_after)
            .cloned()
    }

    /// The user's cloud certificate and which actions are allowed now.
    pub async fn cloud_state(&self, user: &Account) -> Result<CloudState, Error> {
        let now = self.clock.now();
        let current = Self::cloud_of(&self.store.certificates(Some(&user.email)).await?, now)
            .as_ref()
            .map(CertificateSummary::from);
        let view = current.as_ref().map(|c| CloudCertificate {
            not_after: c.not_after,
        });
        Ok(CloudState {
            may_issue: cloud::may_issue(view, now).is_ok(),
            renewal: cloud::may_renew(view, now, self.settings.renewal_window_days),
            may_revoke: cloud::may_revoke_cloud(view, now).is_ok(),
            current,
        })
    }

    /// The user's accepted agreements, newest first: (number, accepted at).
    pub async fn agreements(&self, user: &Account) -> Result<Vec<(String, UnixTime)>, Error> {
        Ok(self
            .store
            .agreements_of(&user.id)
            .await?
            .into_iter()
            .map(|(number, _, _, at)| (number, at))
            .collect())
    }

    /// One of the user's own agreements as a PDF; `None` for a number that is not theirs.
    pub async fn agreement_pdf_of(
        &self,
        user: &Account,
        number: &str,
    ) -> Result<Option<Vec<u8>>, Error> {
        let agreements = self.store.agreements_of(&user.id).await?;
        match agreements.into_iter().find(|(n, ..)| n == number) {
            Some((_, _, text, _)) => Ok(Some(crate::ra::agreement::agreement_pdf(
                &text,
                &self.settings.agreement_words.footer,
            )?)),
            None => Ok(None),
        }
    }

    /// The agreement the user is asked to accept (no number yet).
    pub fn agreement_draft(&self, user: &Account) -> String {
        let name = format!("{} {}", user.given_name, user.surname);
        agreement_text(
            &self.settings.provider,
            &name,
            &user.jmbg,
            &serbian_date(self.clock.now()),
            None,
            &self.settings.agreement_words,
        )
    }

    fn fresh_user(&self, session: &Session) -> Result<Account, Error> {
        let user = session.user.clone().ok_or(CloudRefusal::LoginNotFresh)?;
        cloud::login_is_fresh(
            session.by_consentid(),
            session.authenticated_at(),
            self.clock.now(),
        )?;
        Ok(user)
    }

    /// Whether this session may have a cloud certificate issued now: a fresh ConsentID login
    /// and no active certificate. The portal asks before it shows the agreement, so that
    /// nobody reads it in vain; [`Self::issue_cloud`] asks again.
    pub async fn may_issue_cloud(&self, session: &Session) -> Result<Account, Error> {
        let user = self.fresh_user(session)?;
        let state = self.cloud_state(&user).await?;
        cloud::may_issue(
            state.current.as_ref().map(|c| CloudCertificate {
                not_after: c.not_after,
            }),
            self.clock.now(),
        )?;
        Ok(user)
    }

    /// **Прихвати**: issues the certificate and stores the accepted agreement with it.
    pub async fn issue_cloud(
        &self,
        session: &Session,
    ) -> Result<(IssuedCertificate, String), Error> {
        let user = self.may_issue_cloud(session).await?;
        let now = self.clock.now();
        let (y, _, _) = now.date();
        let number = format!(
            "{y}-{}",
            hex::encode(rand::random::<[u8; 5]>()).to_uppercase()
        );
        let name = format!("{} {}", user.given_name, user.surname);
        let text = agreement_text(
            &self.settings.provider,
            &name,
            &user.jmbg,
            &serbian_date(now),
            Some(&number),
            &self.settings.agreement_words,
        );
        let actor = format!("user:{}", user.id);
        let issued = self
            .ca
            .issue_cloud_with(
                &person_of(&user)?,
                Some(&user.email),
                &actor,
                Some((&user.id, &number, &text)),
            )
            .await?;
        let mails = &self.settings.cloud_mails;
        let name = format!("{} {}", user.given_name, user.surname);
        let until = serbian_date(issued.not_after);
        let serial = issued.serial.to_string();
        self.notify(
            &user,
            &mails.issued_subject,
            &fill(
                &mails.issued_body,
                &[
                    ("name", &name),
                    ("serial", &serial),
                    ("until", &until),
                    ("number", &number),
                    ("agreement", &text),
                ],
            ),
            Some((&number, &text)),
        )
        .await;
        Ok((issued, number))
    }

    /// **Обнови**: a new key pair and certificate; the old one is revoked as superseded.
    pub async fn renew_cloud(&self, session: &Session) -> Result<IssuedCertificate, Error> {
        let user = self.fresh_user(session)?;
        let state = self.cloud_state(&user).await?;
        state.renewal?;
        let old = state.current.ok_or(CloudRefusal::NoneActive)?;
        let actor = format!("user:{}", user.id);
        let issued = self
            .ca
            .issue_cloud_with(&person_of(&user)?, Some(&user.email), &actor, None)
            .await?;
        self.va
            .revoke(&old.serial, RevocationReason::Superseded, &actor)
            .await?;
        let mails = &self.settings.cloud_mails;
        let until = serbian_date(issued.not_after);
        let (serial, old) = (issued.serial.to_string(), old.serial.to_string());
        self.notify(
            &user,
            &mails.renewed_subject,
            &fill(
                &mails.renewed_body,
                &[("serial", &serial), ("until", &until), ("old", &old)],
            ),
            None,
        )
        .await;
        Ok(issued)
    }

    /// **Опозови**: the cloud certificate is revoked and its key destroyed; ConsentID stays.
    pub async fn revoke_cloud(&self, session: &Session) -> Result<(), Error> {
        let user = self.fresh_user(session)?;
        let state = self.cloud_state(&user).await?;
        let current = state.current.ok_or(CloudRefusal::NoneActive)?;
        self.va
            .revoke(
                &current.serial,
                RevocationReason::CessationOfOperation,
                &format!("user:{}", user.id),
            )
            .await?;
        let mails = &self.settings.cloud_mails;
        let serial = current.serial.to_string();
        self.notify(
            &user,
            &mails.revoked_subject,
            &fill(&mails.revoked_body, &[("serial", &serial)]),
            None,
        )
        .await;
        Ok(())
    }

    /// **Опозови све сертификате**: the cloud certificate and every ConsentID device
    /// certificate of the user, in one transaction; the devices are deactivated, their pending
    /// requests fail and the sessions they created end (this one included).
    pub async fn revoke_everything(&self, session: &Session) -> Result<usize, Error> {
        let user = self.fresh_user(session)?;
        let now = self.clock.now();
        let mut serials: Vec<domain::Serial> = self
            .store
            .certificates(Some(&user.email))
            .await?
            .into_iter()
            .filter(|c| {
                c.status == CertificateStatus::Issued
                    && matches!(
                        c.kind,
                        CertificateKind::CloudSigning | CertificateKind::Device
                    )
            })
            .map(|c| c.serial)
            .collect();
        serials.sort();
        serials.dedup();
        let actor = format!("user:{}", user.id);
        self.va
            .revoke_all_of(&serials, RevocationReason::CessationOfOperation, &actor)
            .await?;
        let mut tx = self.store.begin().await?;
        tx.audit(
            now,
            &actor,
            "certificates.revoked_all",
            json!({ "count": serials.len() }),
        )
        .await?;
        tx.commit().await?;
        let mails = &self.settings.cloud_mails;
        self.notify(
            &user,
            &mails.revoked_all_subject,
            &mails.revoked_all_body,
            None,
        )
        .await;
        Ok(serials.len())
    }
}

#[cfg(test)]
mod mail_tests {
    use super::*;
    use crate::settings::CloudMails;

    #[test]
    fn placeholders_are_filled_once_and_unknown_braces_stay() {
        assert_eq!(
            fill(
                "Поштовани/а {name}, број {serial}; {unknown} {",
                &[("name", "Ана {serial}"), ("serial", "01AB")]
            ),
            "Поштовани/а Ана {serial}, број 01AB; {unknown} {"
        );
    }

    #[test]
    fn every_placeholder_of_the_default_mails_is_one_the_authority_fills() {
        let mails = CloudMails::default();
        let names = |text: &str| -> Vec<String> {
            text.split('{')
                .skip(1)
                .filter_map(|part| part.split_once('}').map(|(name, _)| name.to_owned()))
                .collect()
        };
        for (body, known) in [
            (
                &mails.issued_body,
                &["name", "serial", "until", "number", "agreement"][..],
            ),
            (&mails.renewed_body, &["serial", "until", "old"][..]),
            (&mails.revoked_body, &["serial"][..]),
            (&mails.revoked_all_body, &[][..]),
        ] {
            for name in names(body) {
                assert!(known.contains(&name.as_str()), "{{{name}}} in {body}");
            }
        }
    }
}
