//! The qualified certificate in the cloud as its holder manages it (the seed's steps 8-13):
//! its state, **Издај** with the agreement, **Обнови**, **Опозови** and **Опозови све
//! сертификате**. Every action needs a ConsentID login no older than 15 minutes, and acts on
//! the session's own account only: no identifier from the request chooses whose certificate.

use serde_json::json;

use domain::cloud::{self, CloudCertificate, CloudRefusal};
use domain::{CertificateKind, CertificateStatus, Jmbg, RevocationReason, UnixTime};
use pki::profile::Person;
use store::{CertificateRecord, UserRecord};

use crate::agreement::{agreement_text, Provider};
use crate::issuance::IssuedCertificate;
use crate::login::Session;
use crate::settings::CloudValidity;
use crate::{Authority, Error};

/// A refused cloud-certificate action.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// The rules refuse it now.
    #[error(transparent)]
    Refused(#[from] CloudRefusal),
    /// Something else failed.
    #[error(transparent)]
    Failed(#[from] Error),
}

impl From<store::Error> for CloudError {
    fn from(error: store::Error) -> Self {
        Self::Failed(error.into())
    }
}

/// What the service page shows.
#[derive(Debug, Clone)]
pub struct CloudState {
    /// The active certificate, if any.
    pub current: Option<CertificateRecord>,
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

fn person_of(user: &UserRecord) -> Result<Person, Error> {
    let jmbg = Jmbg::parse(&user.jmbg).map_err(|_| Error::Inconsistent("stored JMBG invalid".into()))?;
    Ok(Person { given_name: user.given_name.clone(), surname: user.surname.clone(), jmbg })
}

impl Authority {
    fn cloud_of(records: &[CertificateRecord], now: UnixTime) -> Option<CertificateRecord> {
        records
            .iter()
            .filter(|c| c.kind == CertificateKind::CloudSigning && c.status == CertificateStatus::Issued && now <= c.not_after)
            .max_by_key(|c| c.not_after)
            .cloned()
    }

    /// The user's cloud certificate and which actions are allowed now.
    pub async fn cloud_state(&self, user: &UserRecord) -> Result<CloudState, Error> {
        let now = self.clock.now();
        let current = Self::cloud_of(&self.store.certificates(Some(&user.email)).await?, now);
        let view = current.as_ref().map(|c| CloudCertificate { not_after: c.not_after });
        Ok(CloudState {
            may_issue: cloud::may_issue(view, now).is_ok(),
            renewal: cloud::may_renew(view, now, self.settings.renewal_window_days),
            may_revoke: cloud::may_revoke_cloud(view, now).is_ok(),
            current,
        })
    }

    /// The validity in words for the agreement.
    fn validity_words(&self) -> String {
        match self.settings.cloud_validity {
            CloudValidity::CalendarYears(years) => format!("{years} година"),
            CloudValidity::Days(days) => format!("{days} дана"),
        }
    }

    /// The agreement the user is asked to accept (no number yet).
    pub fn agreement_draft(&self, user: &UserRecord) -> String {
        let name = format!("{} {}", user.given_name, user.surname);
        agreement_text(&Provider::default(), &name, &user.jmbg, &serbian_date(self.clock.now()), None, &self.validity_words())
    }

    fn fresh_user(&self, session: &Session) -> Result<UserRecord, CloudError> {
        let user = session.user.clone().ok_or(CloudRefusal::LoginNotFresh)?;
        let by_consentid = session.record.auth_method.as_deref() == Some("consentid");
        cloud::login_is_fresh(by_consentid, session.record.authenticated_at, self.clock.now())?;
        Ok(user)
    }

    /// **Прихвати**: issues the certificate and stores the accepted agreement with it.
    pub async fn issue_cloud(&self, session: &Session) -> Result<(IssuedCertificate, String), CloudError> {
        let user = self.fresh_user(session)?;
        let state = self.cloud_state(&user).await?;
        cloud::may_issue(state.current.as_ref().map(|c| CloudCertificate { not_after: c.not_after }), self.clock.now())?;
        let now = self.clock.now();
        let (y, _, _) = now.date();
        let number = format!("{y}-{}", hex::encode(rand::random::<[u8; 5]>()).to_uppercase());
        let name = format!("{} {}", user.given_name, user.surname);
        let text = agreement_text(&Provider::default(), &name, &user.jmbg, &serbian_date(now), Some(&number), &self.validity_words());
        let actor = format!("user:{}", user.id);
        let issued = self.issue_cloud_with(&person_of(&user)?, Some(&user.email), &actor, Some((&user.id, &number, &text))).await?;
        Ok((issued, number))
    }

    /// **Обнови**: a new key pair and certificate; the old one is revoked as superseded.
    pub async fn renew_cloud(&self, session: &Session) -> Result<IssuedCertificate, CloudError> {
        let user = self.fresh_user(session)?;
        let state = self.cloud_state(&user).await?;
        state.renewal?;
        let old = state.current.ok_or(CloudRefusal::NoneActive)?;
        let actor = format!("user:{}", user.id);
        let issued = self.issue_cloud_with(&person_of(&user)?, Some(&user.email), &actor, None).await?;
        self.revoke(&old.serial, RevocationReason::Superseded, &actor).await?;
        Ok(issued)
    }

    /// **Опозови**: the cloud certificate is revoked and its key destroyed; ConsentID stays.
    pub async fn revoke_cloud(&self, session: &Session) -> Result<(), CloudError> {
        let user = self.fresh_user(session)?;
        let state = self.cloud_state(&user).await?;
        let current = state.current.ok_or(CloudRefusal::NoneActive)?;
        self.revoke(&current.serial, RevocationReason::CessationOfOperation, &format!("user:{}", user.id)).await?;
        Ok(())
    }

    /// **Опозови све сертификате**: the cloud certificate and every ConsentID device
    /// certificate of the user, in one transaction; the devices are deactivated, their pending
    /// requests fail and the sessions they created end (this one included).
    pub async fn revoke_everything(&self, session: &Session) -> Result<usize, CloudError> {
        let user = self.fresh_user(session)?;
        let now = self.clock.now();
        let mut serials: Vec<domain::Serial> = self
            .store
            .certificates(Some(&user.email))
            .await?
            .into_iter()
            .filter(|c| c.status == CertificateStatus::Issued && matches!(c.kind, CertificateKind::CloudSigning | CertificateKind::Device))
            .map(|c| c.serial)
            .collect();
        serials.sort();
        serials.dedup();
        let actor = format!("user:{}", user.id);
        self.revoke_all_of(&serials, RevocationReason::CessationOfOperation, &actor).await?;
        let mut tx = self.store.begin().await?;
        tx.audit(now, &actor, "certificates.revoked_all", json!({ "count": serials.len() })).await?;
        tx.commit().await?;
        Ok(serials.len())
    }
}
