//! The values the store hands out and takes in. Row decoding stays in this crate.

use domain::{CertificateKind, CertificateStatus, RevocationReason, Serial, UnixTime};

use crate::db::Row;
use crate::{kind_column, status_column, Error};

pub(crate) const AUTHORITY_SELECT_BY_NAME: &str = "SELECT name, serial, key_id, certificate, crl_number, crl, \
     crl_next_update, ocsp_serial, ocsp_key_id, ocsp_certificate, ocsp_not_after, tsa_serial, tsa_key_id, \
     tsa_certificate, tsa_not_after FROM authorities WHERE name = $1";
macro_rules! key_select {
    ($tail:literal) => {
        concat!("SELECT id, backend, label, algorithm, reference, public_key, state, created_at FROM keys", $tail)
    };
}
pub(crate) const KEY_SELECT: &str = key_select!(" WHERE id = $1");
pub(crate) const KEYS_LEFT_HALF_WAY: &str =
    // The first condition is the partial index's own (migration 8), so that both databases use it.
    key_select!(" WHERE state IN ('generating', 'destroying') AND (state = 'destroying' OR created_at < $1) ORDER BY created_at, id");
macro_rules! certificate_select {
    ($tail:literal) => {
        concat!(
            "SELECT serial, authority, kind, status, subject, email, key_id, not_before, not_after, der, ",
            "reserved_at, issued_at, revoked_at, revocation_reason FROM certificates",
            $tail
        )
    };
}
pub(crate) const CERTIFICATE_SELECT_BY_SERIAL: &str = certificate_select!(" WHERE serial = $1");
pub(crate) const CERTIFICATE_SELECT_BY_EMAIL: &str =
    certificate_select!(" WHERE email = $1 ORDER BY reserved_at, serial");
pub(crate) const CERTIFICATE_SELECT_ALL: &str =
    certificate_select!(" ORDER BY reserved_at, serial");

/// Identifies a key record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(pub String);

/// Where a key is in its life. A key of a backend that keeps objects of its own (PKCS#11)
/// goes `generating` → `active` → `destroying` → `destroyed`, or `generating` → `abandoned`
/// when the use case that wanted it did not commit; a software key is recorded `active` and
/// ends `destroyed` in one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Recorded (with its label) before the backend generates it; no reference yet.
    Generating,
    /// In use.
    Active,
    /// Its certificate is revoked and the key must go; still in the backend until the
    /// destruction is done (the reference is kept to find it).
    Destroying,
    /// Destroyed in its backend.
    Destroyed,
    /// Its generation was cut short or its use case failed: destroyed in its backend by its
    /// label; it never signed anything and no certificate names it.
    Abandoned,
}

impl KeyState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generating => "generating",
            Self::Active => "active",
            Self::Destroying => "destroying",
            Self::Destroyed => "destroyed",
            Self::Abandoned => "abandoned",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [
            Self::Generating,
            Self::Active,
            Self::Destroying,
            Self::Destroyed,
            Self::Abandoned,
        ]
        .into_iter()
        .find(|state| state.as_str() == name)
    }
}

/// A key in a backend.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    /// Its id.
    pub id: KeyId,
    /// `software` or `pkcs11`.
    pub backend: String,
    /// The label it carries in the backend.
    pub label: String,
    /// `ecdsa-p256` or `rsa-3072`.
    pub algorithm: String,
    /// The backend's opaque reference.
    pub reference: Vec<u8>,
    /// SubjectPublicKeyInfo DER.
    pub public_key: Vec<u8>,
    /// Active or destroyed.
    pub state: KeyState,
    /// When it was generated.
    pub created_at: UnixTime,
}

impl KeyRecord {
    pub(crate) fn from_row(row: &Row) -> Result<Self, Error> {
        let state: String = row.try_get(6)?;
        Ok(Self {
            id: KeyId(row.try_get(0)?),
            backend: row.try_get(1)?,
            label: row.try_get(2)?,
            algorithm: row.try_get(3)?,
            reference: row.try_get(4)?,
            public_key: row.try_get(5)?,
            state: KeyState::parse(&state)
                .ok_or_else(|| Error::Corrupt(format!("key state: {state}")))?,
            created_at: UnixTime(row.try_get(7)?),
        })
    }
}

/// A certificate the CA issued to one of its own services (OCSP signer, time-stamping unit):
/// serial, key, certificate (DER), end of validity.
pub type ServiceCertificate = (Serial, KeyId, Vec<u8>, UnixTime);

/// One CA of the hierarchy with its current CRL and OCSP signer.
#[derive(Debug, Clone)]
pub struct AuthorityRecord {
    /// `root`, `qualified` or `consentid`.
    pub name: String,
    /// The CA certificate's serial.
    pub serial: Serial,
    /// The CA key.
    pub key_id: KeyId,
    /// The CA certificate, DER.
    pub certificate: Vec<u8>,
    /// The number of the latest CRL (0: none yet).
    pub crl_number: i64,
    /// The latest CRL, DER.
    pub crl: Option<Vec<u8>>,
    /// The latest CRL's nextUpdate.
    pub crl_next_update: Option<UnixTime>,
    /// The delegated OCSP signer: serial, key, certificate, end of validity.
    pub ocsp_signer: Option<(Serial, KeyId, Vec<u8>, UnixTime)>,
    /// The time-stamping unit this CA certified (the qualified CA's only): serial, key,
    /// certificate, end of validity.
    pub tsa: Option<ServiceCertificate>,
}

impl AuthorityRecord {
    pub(crate) fn from_row(row: &Row) -> Result<Self, Error> {
        // (serial, key, certificate, not_after) from four nullable columns from `first` on.
        let signer = |first: usize| -> Result<Option<ServiceCertificate>, Error> {
            let serial: Option<String> = row.try_get(first)?;
            let key: Option<String> = row.try_get(first + 1)?;
            let certificate: Option<Vec<u8>> = row.try_get(first + 2)?;
            let not_after: Option<i64> = row.try_get(first + 3)?;
            Ok(match (serial, key, certificate, not_after) {
                (Some(serial), Some(key), Some(certificate), Some(not_after)) => Some((
                    Serial::parse_hex(&serial)
                        .ok_or_else(|| Error::Corrupt(format!("serial {serial}")))?,
                    KeyId(key),
                    certificate,
                    UnixTime(not_after),
                )),
                _ => None,
            })
        };
        let ocsp_signer = signer(7)?;
        let tsa = signer(11)?;
        Ok(Self {
            name: row.try_get(0)?,
            serial: serial_column(row, 1)?,
            key_id: KeyId(row.try_get(2)?),
            certificate: row.try_get(3)?,
            crl_number: row.try_get(4)?,
            crl: row.try_get(5)?,
            crl_next_update: row.try_get::<Option<i64>>(6)?.map(UnixTime),
            ocsp_signer,
            tsa,
        })
    }
}

/// A serial to reserve.
#[derive(Debug, Clone)]
pub struct NewCertificate {
    /// The serial.
    pub serial: Serial,
    /// The issuing authority's name.
    pub authority: String,
    /// The profile.
    pub kind: CertificateKind,
    /// The subject, one line.
    pub subject: String,
    /// The holder's e-mail, if a person.
    pub email: Option<String>,
    /// The key in our backend, if we hold it.
    pub key_id: Option<KeyId>,
    /// Start of validity.
    pub not_before: UnixTime,
    /// End of validity.
    pub not_after: UnixTime,
    /// When the serial was stored.
    pub reserved_at: UnixTime,
}

/// A certificate row.
#[derive(Debug, Clone)]
pub struct CertificateRecord {
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
    /// Our key, if we hold it.
    pub key_id: Option<KeyId>,
    /// Start of validity.
    pub not_before: UnixTime,
    /// End of validity.
    pub not_after: UnixTime,
    /// The certificate, once signed.
    pub der: Option<Vec<u8>>,
    /// When the serial was stored.
    pub reserved_at: UnixTime,
    /// When the certificate was stored.
    pub issued_at: Option<UnixTime>,
    /// When and why it was revoked.
    pub revocation: Option<(UnixTime, RevocationReason)>,
}

impl CertificateRecord {
    pub(crate) fn from_row(row: &Row) -> Result<Self, Error> {
        let revoked_at: Option<i64> = row.try_get(12)?;
        let reason: Option<i32> = row.try_get(13)?;
        let revocation = match (revoked_at, reason) {
            (Some(at), Some(code)) => Some((UnixTime(at), reason_from_code(code)?)),
            _ => None,
        };
        Ok(Self {
            serial: serial_column(row, 0)?,
            authority: row.try_get(1)?,
            kind: kind_column(row, 2)?,
            status: status_column(row, 3)?,
            subject: row.try_get(4)?,
            email: row.try_get(5)?,
            key_id: row.try_get::<Option<String>>(6)?.map(KeyId),
            not_before: UnixTime(row.try_get(7)?),
            not_after: UnixTime(row.try_get(8)?),
            der: row.try_get(9)?,
            reserved_at: UnixTime(row.try_get(10)?),
            issued_at: row.try_get::<Option<i64>>(11)?.map(UnixTime),
            revocation,
        })
    }
}

/// An entry of a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedRecord {
    /// The serial.
    pub serial: Serial,
    /// When it was revoked.
    pub revoked_at: UnixTime,
    /// Why.
    pub reason: RevocationReason,
}

impl RevokedRecord {
    pub(crate) fn from_row(row: &Row) -> Result<Self, Error> {
        Ok(Self {
            serial: serial_column(row, 0)?,
            revoked_at: UnixTime(row.try_get(1)?),
            reason: reason_from_code(row.try_get(2)?)?,
        })
    }
}

fn reason_from_code(code: i32) -> Result<RevocationReason, Error> {
    u8::try_from(code)
        .ok()
        .and_then(RevocationReason::from_code)
        .ok_or_else(|| Error::Corrupt(format!("revocation reason {code}")))
}

pub(crate) fn serial_column(row: &Row, index: usize) -> Result<Serial, Error> {
    let text: String = row.try_get(index)?;
    Serial::parse_hex(&text).ok_or_else(|| Error::Corrupt(format!("serial {text}")))
}
