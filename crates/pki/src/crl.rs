//! Certificate revocation lists (RFC 5280 §5): one full CRL per issuing CA, version 2, with
//! authorityKeyIdentifier, cRLNumber and a reasonCode on each entry (omitted for
//! `unspecified`, §5.3.1).

use der::asn1::{BitString, OctetString, Uint};
use der::Encode;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::crl::CrlNumber;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlReason};
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_cert::Version;

use domain::{RevocationReason, Serial, UnixTime};

use crate::profile::{signer_algorithm, x509_time, Issuer};
use crate::{oids, Error};

/// One revoked certificate on a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// The certificate's serial.
    pub serial: Serial,
    /// When it was revoked.
    pub revoked_at: UnixTime,
    /// Why.
    pub reason: RevocationReason,
}

/// A DER-encoded CRL.
#[derive(Clone, PartialEq, Eq)]
pub struct CrlDer(pub Vec<u8>);

impl std::fmt::Debug for CrlDer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CrlDer({} bytes)", self.0.len())
    }
}

/// The CRLReason of a domain reason.
pub fn crl_reason(reason: RevocationReason) -> CrlReason {
    match reason {
        RevocationReason::Unspecified => CrlReason::Unspecified,
        RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
        RevocationReason::CaCompromise => CrlReason::CaCompromise,
        RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
        RevocationReason::Superseded => CrlReason::Superseded,
        RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
    }
}

fn extension(oid: const_oid::ObjectIdentifier, value: &impl Encode) -> Result<Extension, Error> {
    Ok(Extension {
        extn_id: oid,
        critical: false,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

/// Builds and signs the CRL of `issuer` listing `revoked`.
pub fn build_crl(
    issuer: &Issuer<'_>,
    revoked: &[RevokedEntry],
    crl_number: u64,
    this_update: UnixTime,
    next_update: UnixTime,
) -> Result<CrlDer, Error> {
    let mut entries = Vec::with_capacity(revoked.len());
    for entry in revoked {
        let extensions = if entry.reason == RevocationReason::Unspecified {
            None
        } else {
            Some(vec![extension(
                oids::REASON_CODE,
                &crl_reason(entry.reason),
            )?])
        };
        entries.push(RevokedCert {
            serial_number: SerialNumber::new(entry.serial.as_bytes())?,
            revocation_date: x509_time(entry.revoked_at)?,
            crl_entry_extensions: extensions,
        });
    }
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(issuer.key_identifier.clone())?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    let tbs = TbsCertList {
        version: Version::V2,
        signature: signer_algorithm(issuer.signer)?,
        issuer: issuer.name.clone(),
        this_update: x509_time(this_update)?,
        next_update: Some(x509_time(next_update)?),
        // An empty list is omitted, not encoded empty (RFC 5280 §5.1.2.6).
        revoked_certificates: if entries.is_empty() {
            None
        } else {
            Some(entries)
        },
        crl_extensions: Some(vec![
            extension(oids::AUTHORITY_KEY_IDENTIFIER, &aki)?,
            extension(
                oids::CRL_NUMBER,
                &CrlNumber(Uint::new(&crl_number.to_be_bytes())?),
            )?,
        ]),
    };
    let signature = issuer.signer.sign(&tbs.to_der()?)?;
    let list = CertificateList {
        signature_algorithm: tbs.signature.clone(),
        tbs_cert_list: tbs,
        signature: BitString::from_bytes(&signature)?,
    };
    Ok(CrlDer(list.to_der()?))
}
