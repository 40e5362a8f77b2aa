//! What the use cases show of stored things. The store's rows stay inside this crate: the
//! server gets these views, which leave out what it must not read (a password hash, a key
//! reference, a device's keys) and carry typed ids.

use domain::records::{CertificateRecord, DeviceRecord, OutboxMail, OutboxStatus, UserRecord};
use domain::{
    AssuranceLevel, CertificateKind, CertificateStatus, DeviceId, DeviceState, RevocationReason,
    Serial, UnixTime, UserId,
};

/// An account: the citizen's own data, without the password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    /// Its id.
    pub id: UserId,
    /// Lower-case e-mail, the username.
    pub email: String,
    /// Given name.
    pub given_name: String,
    /// Surname.
    pub surname: String,
    /// The JMBG (validated when stored).
    pub jmbg: String,
    /// Whether the e-mail address was verified.
    pub email_verified: bool,
    /// Basic or high.
    pub assurance: AssuranceLevel,
    /// When it was created.
    pub created_at: UnixTime,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Account({}, {:?})", self.id, self.assurance)
    }
}

impl From<UserRecord> for Account {
    fn from(user: UserRecord) -> Self {
        Self {
            id: user.id,
            email: user.email,
            given_name: user.given_name,
            surname: user.surname,
            jmbg: user.jmbg,
            email_verified: user.email_verified,
            assurance: user.assurance,
            created_at: user.created_at,
        }
    }
}

/// A certificate as listed: no DER, no key reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSummary {
    /// The serial.
    pub serial: Serial,
    /// The issuing authority's name.
    pub authority: String,
    /// The profile.
    pub kind: CertificateKind,
    /// Where it is in its life.
    pub status: CertificateStatus,
    /// The subject, one line.
    pub subject: String,
    /// The holder's e-mail.
    pub email: Option<String>,
    /// Start of validity.
    pub not_before: UnixTime,
    /// End of validity.
    pub not_after: UnixTime,
    /// When and why it was revoked.
    pub revocation: Option<(UnixTime, RevocationReason)>,
}

impl From<&CertificateRecord> for CertificateSummary {
    fn from(record: &CertificateRecord) -> Self {
        Self {
            serial: record.serial,
            authority: record.authority.clone(),
            kind: record.kind,
            status: record.status,
            subject: record.subject.clone(),
            email: record.email.clone(),
            not_before: record.not_before,
            not_after: record.not_after,
            revocation: record.revocation,
        }
    }
}

/// A ConsentID device as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSummary {
    /// Its id.
    pub id: DeviceId,
    /// Its name.
    pub name: String,
    /// Active, PIN-locked or revoked.
    pub state: DeviceState,
    /// The device certificate's serial, hex.
    pub certificate_serial: Serial,
    /// When it was activated.
    pub created_at: UnixTime,
    /// When it last answered.
    pub last_used_at: Option<UnixTime>,
}

impl From<&DeviceRecord> for DeviceSummary {
    fn from(device: &DeviceRecord) -> Self {
        Self {
            id: device.id.clone(),
            name: device.name.clone(),
            state: device.state,
            certificate_serial: device.certificate_serial,
            created_at: device.created_at,
            last_used_at: device.last_used_at,
        }
    }
}

/// A mail to the account that could not be delivered yet (or at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndeliveredMail {
    /// To whom.
    pub recipient: String,
    /// Its subject.
    pub subject: String,
    /// When it was queued.
    pub created_at: UnixTime,
    /// True once the outbox gave up; false while it still retries.
    pub given_up: bool,
}

impl From<OutboxMail> for UndeliveredMail {
    fn from(mail: OutboxMail) -> Self {
        Self {
            given_up: mail.status == OutboxStatus::Failed,
            recipient: mail.recipient,
            subject: mail.subject,
            created_at: mail.created_at,
        }
    }
}
