//! Certificate lifecycle rules: kinds, states, revocation reasons (RFC 5280 §5.3.1), and when
//! CRLs, OCSP responses and OCSP signer certificates must be refreshed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::time::{UnixTime, DAY};

/// A certificate serial number: 16 random bytes (DESIGN §5), shown as lower-case hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial([u8; 16]);

impl Serial {
    /// Wraps 16 bytes. The first bit is cleared so that the DER INTEGER is positive and at
    /// most 16 octets (RFC 5280 §4.1.2.2).
    pub fn from_random(mut bytes: [u8; 16]) -> Self {
        bytes[0] &= 0x7f;
        if bytes[0] == 0 {
            // Keep the encoding at exactly 16 octets, so every serial looks alike.
            bytes[0] = 0x01;
        }
        Self(bytes)
    }

    /// The raw big-endian bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Lower-case hex, 32 characters.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses hex (case-insensitive, optional `0x`, optional `:` separators).
    pub fn parse_hex(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text.strip_prefix("0x").unwrap_or(text);
        let clean: String = text.chars().filter(|c| *c != ':').collect();
        if clean.len() != 32 || !clean.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = u8::from_str_radix(clean.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(out))
    }

    /// The serial from a DER INTEGER's content octets, if it is one of ours (16 bytes, or 17
    /// with a leading zero).
    pub fn from_integer_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes = match bytes {
            [0, rest @ ..] if rest.len() == 16 => rest,
            _ => bytes,
        };
        <[u8; 16]>::try_from(bytes).ok().map(Self)
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({})", self.to_hex())
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// What a certificate is for, which fixes its profile (DESIGN §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateKind {
    /// The self-signed root CA.
    RootCa,
    /// An intermediate CA under the root (qualified CA, ConsentID CA).
    IntermediateCa,
    /// A delegated OCSP responder of one CA.
    OcspSigner,
    /// A qualified certificate for remote signing, key in the key backend.
    CloudSigning,
    /// A ConsentID device certificate.
    Device,
    /// The time-stamping unit's certificate (RFC 3161 §2.3), issued by the qualified CA.
    #[serde(rename = "timestamping")]
    TimeStamping,
}

impl CertificateKind {
    /// The stable name used in the store, the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RootCa => "root_ca",
            Self::IntermediateCa => "intermediate_ca",
            Self::OcspSigner => "ocsp_signer",
            Self::CloudSigning => "cloud_signing",
            Self::Device => "device",
            Self::TimeStamping => "timestamping",
        }
    }
}

impl FromStr for CertificateKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.replace('-', "_").as_str() {
            "root_ca" => Self::RootCa,
            "intermediate_ca" => Self::IntermediateCa,
            "ocsp_signer" => Self::OcspSigner,
            "cloud_signing" => Self::CloudSigning,
            "device" => Self::Device,
            "timestamping" | "time_stamping" => Self::TimeStamping,
            _ => return Err(UnknownName(s.to_owned())),
        })
    }
}

/// A name that is not one of the accepted values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value `{0}`")]
pub struct UnknownName(pub String);

/// Where a serial is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateStatus {
    /// The serial is stored and the certificate is being signed (or the signer crashed).
    Reserved,
    /// Signed and handed out.
    Issued,
    /// Revoked; on the CRL and `revoked` in OCSP.
    Revoked,
    /// Reserved, but the issuing process ended before storing a signed certificate: no
    /// certificate with this serial was ever handed out.
    Abandoned,
}

impl CertificateStatus {
    /// The stable name used in the store, the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Issued => "issued",
            Self::Revoked => "revoked",
            Self::Abandoned => "abandoned",
        }
    }
}

impl FromStr for CertificateStatus {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "reserved" => Self::Reserved,
            "issued" => Self::Issued,
            "revoked" => Self::Revoked,
            "abandoned" => Self::Abandoned,
            _ => return Err(UnknownName(s.to_owned())),
        })
    }
}

/// CRLReason (RFC 5280 §5.3.1). `certificateHold` is not offered: qualified certificates are
/// never suspended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RevocationReason {
    /// 0
    Unspecified,
    /// 1
    KeyCompromise,
    /// 2
    CaCompromise,
    /// 3
    AffiliationChanged,
    /// 4
    Superseded,
    /// 5
    CessationOfOperation,
    /// 9
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// Every reason, in code order.
    pub const ALL: [Self; 7] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::PrivilegeWithdrawn,
    ];

    /// The RFC 5280 code.
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::PrivilegeWithdrawn => 9,
        }
    }

    /// The reason with this code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The RFC 5280 name, e.g. `keyCompromise` (what `openssl ocsp` prints).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "cACompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }
}

impl FromStr for RevocationReason {
    type Err = UnknownName;
    /// Accepts the RFC name in any case, with or without dashes or underscores, or the code.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(code) = s.parse::<u8>() {
            return Self::from_code(code).ok_or_else(|| UnknownName(s.to_owned()));
        }
        let wanted: String = s
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|r| r.as_str().to_ascii_lowercase() == wanted)
            .ok_or_else(|| UnknownName(s.to_owned()))
    }
}

/// A policy refusal: the request was understood but the rules do not allow it now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Only an issued certificate can be revoked.
    #[error("the certificate is {0:?}, only an issued certificate can be revoked")]
    NotRevocable(CertificateStatus),
    /// CA certificates are not revoked through this service.
    #[error("a CA certificate cannot be revoked here")]
    CaCertificate,
}

/// May a certificate of this kind in this state be revoked?
pub fn may_revoke(kind: CertificateKind, status: CertificateStatus) -> Result<(), Refusal> {
    if matches!(
        kind,
        CertificateKind::RootCa | CertificateKind::IntermediateCa
    ) {
        return Err(Refusal::CaCertificate);
    }
    match status {
        CertificateStatus::Issued => Ok(()),
        other => Err(Refusal::NotRevocable(other)),
    }
}

/// How long a CRL is valid and when it is re-issued (RFC 5280 §5.1.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlSchedule {
    /// thisUpdate to nextUpdate, seconds.
    pub lifetime: i64,
    /// Re-issue when less than this is left before nextUpdate, seconds.
    pub refresh_margin: i64,
}

impl Default for CrlSchedule {
    fn default() -> Self {
        Self {
            lifetime: DAY,
            refresh_margin: DAY / 2,
        }
    }
}

impl CrlSchedule {
    /// Must a CRL with this nextUpdate be re-issued now?
    pub fn needs_refresh(&self, next_update: UnixTime, now: UnixTime) -> bool {
        next_update.0 - now.0 < self.refresh_margin
    }
}

/// Lifetimes of OCSP responses and of the delegated OCSP signer certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OcspSchedule {
    /// thisUpdate to nextUpdate of a response, seconds.
    pub response_lifetime: i64,
    /// A cached response is signed anew when less than this is left, seconds.
    pub response_refresh_margin: i64,
    /// Validity of a delegated OCSP signer certificate, seconds.
    pub signer_lifetime: i64,
    /// A signer certificate is renewed when less than this is left, seconds.
    pub signer_renew_margin: i64,
}

impl Default for OcspSchedule {
    fn default() -> Self {
        Self {
            response_lifetime: 4 * 3600,
            response_refresh_margin: 2 * 3600,
            signer_lifetime: 30 * DAY,
            signer_renew_margin: 10 * DAY,
        }
    }
}

impl OcspSchedule {
    /// May a cached response with this nextUpdate still be served?
    pub fn response_is_fresh(&self, next_update: UnixTime, now: UnixTime) -> bool {
        next_update.0 - now.0 >= self.response_refresh_margin
    }

    /// Must the OCSP signer certificate valid until `not_after` be renewed?
    pub fn signer_needs_renewal(&self, not_after: UnixTime, now: UnixTime) -> bool {
        not_after.0 - now.0 < self.signer_renew_margin
    }
}

/// Lifetime of the time-stamping unit's certificate (reference/pades.md §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampSchedule {
    /// Validity of a new TSA certificate, calendar years (bounded by the issuer's).
    pub certificate_years: i64,
    /// The certificate is replaced when less than this is left, seconds.
    pub renew_margin: i64,
}

impl Default for TimestampSchedule {
    fn default() -> Self {
        Self {
            certificate_years: 5,
            renew_margin: 365 * DAY,
        }
    }
}

impl TimestampSchedule {
    /// Must the TSA certificate valid until `not_after` be replaced now? Not when its issuer
    /// ends no later: a new certificate could not last longer (it would be replaced on every
    /// upkeep).
    pub fn needs_renewal(
        &self,
        not_after: UnixTime,
        issuer_not_after: UnixTime,
        now: UnixTime,
    ) -> bool {
        not_after.0 - now.0 < self.renew_margin && not_after < issuer_not_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_hex_round_trip() {
        let s = Serial::from_random([0xff; 16]);
        assert_eq!(s.as_bytes()[0], 0x7f);
        assert_eq!(Serial::parse_hex(&s.to_hex()), Some(s));
        assert_eq!(Serial::parse_hex(&s.to_hex().to_uppercase()), Some(s));
        assert_eq!(Serial::parse_hex("abc"), None);
        assert_eq!(Serial::from_random([0; 16]).as_bytes()[0], 1);
    }

    #[test]
    fn reasons_parse_by_name_and_code() {
        assert_eq!("keyCompromise".parse(), Ok(RevocationReason::KeyCompromise));
        assert_eq!(
            "key-compromise".parse(),
            Ok(RevocationReason::KeyCompromise)
        );
        assert_eq!("4".parse(), Ok(RevocationReason::Superseded));
        assert!("6".parse::<RevocationReason>().is_err());
        assert!("hold".parse::<RevocationReason>().is_err());
    }

    #[test]
    fn only_issued_end_entity_certificates_are_revocable() {
        assert!(may_revoke(CertificateKind::CloudSigning, CertificateStatus::Issued).is_ok());
        assert!(may_revoke(CertificateKind::Device, CertificateStatus::Revoked).is_err());
        assert!(may_revoke(CertificateKind::IntermediateCa, CertificateStatus::Issued).is_err());
    }

    #[test]
    fn schedules_refresh_before_expiry() {
        let crl = CrlSchedule::default();
        let now = UnixTime(1_000_000);
        assert!(!crl.needs_refresh(now.plus_seconds(DAY), now));
        assert!(crl.needs_refresh(now.plus_seconds(DAY / 2 - 1), now));
        let ocsp = OcspSchedule::default();
        assert!(ocsp.response_is_fresh(now.plus_seconds(3 * 3600), now));
        assert!(!ocsp.response_is_fresh(now.plus_seconds(3600), now));
        assert!(ocsp.signer_needs_renewal(now.plus_days(9), now));
        assert!(!ocsp.signer_needs_renewal(now.plus_days(11), now));
        let tsa = TimestampSchedule::default();
        let issuer_end = now.plus_days(20 * 365);
        assert!(!tsa.needs_renewal(now.plus_days(366), issuer_end, now));
        assert!(tsa.needs_renewal(now.plus_days(364), issuer_end, now));
        // An issuer ending first: renewing would not help.
        assert!(!tsa.needs_renewal(now.plus_days(364), now.plus_days(364), now));
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in [
            CertificateKind::RootCa,
            CertificateKind::IntermediateCa,
            CertificateKind::OcspSigner,
            CertificateKind::CloudSigning,
            CertificateKind::Device,
            CertificateKind::TimeStamping,
        ] {
            assert_eq!(kind.as_str().parse(), Ok(kind));
        }
    }
}
