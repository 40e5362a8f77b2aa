//! The qualified certificate in the cloud as its holder manages it (the seed's steps 8-13):
//! its state, the agreement it is shown before **Прихвати**, its agreements, and the e-mail
//! after an action. The actions themselves (**Прихвати**, **Обнови**, **Опозови**, **Опозови
//! све сертификате**) are certificate operations, each approved in ConsentID
//! (`ra::operations`). Every action needs a ConsentID login no older than 15 minutes, and acts
//! on the session's own account only: no identifier from the request chooses whose
//! certificate.

use domain::cloud::{self, CloudCertificate};
use domain::records::CertificateRecord;
use domain::{CertificateKind, CertificateStatus, Jmbg, UnixTime};
use pki::profile::Person;
use store::Transaction as _;

use crate::login::Session;
use crate::ra::agreement::agreement_text;
use crate::ra::RaDb;
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

pub(crate) fn person_of(user: &Account) -> Result<Person, Error> {
    let jmbg =
        Jmbg::parse(&user.jmbg).map_err(|_| Error::Inconsistent("stored JMBG invalid".into()))?;
    Ok(Person {
        given_name: user.given_name.clone(),
        surname: user.surname.clone(),
        jmbg,
    })
}

impl<D: RaDb> Ra<D> {
    /// E-mails the user after a committed action; a failure is logged, not returned: the action
    /// stands, and the agreement stays downloadable from the account.
    pub(super) async fn notify(
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
        if let Err(error) = queued.await {
            tracing::error!(%error, user = %user.id, "an e-mail could not be queued");
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

    pub(super) fn fresh_user(&self, session: &Session) -> Result<Account, Error> {
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
}

#[cfg(test)]
mod mail_tests {
    use crate::ra::agreement::fill;
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
