//! `ca`: the only holder of the CA keys. It creates the hierarchy (`bootstrap`), records and
//! opens keys (`keys`), and signs every certificate (`issuance`), its delegates' included (the
//! OCSP signers, the time-stamping unit). The other services ask it; none opens a CA key.

pub(crate) mod bootstrap;
pub(crate) mod issuance;
pub(crate) mod keys;
#[cfg(test)]
mod tests;

pub use issuance::IssuedCertificate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use x509_cert::Certificate;

use domain::records::{AuthorityRecord, KeyId};
use domain::{Serial, UnixTime};
use pki::crl::{build_crl, CrlDer, RevokedEntry};
use pki::ocsp::IssuerHashes;
use pki::profile::{self, CertificateDer, Issuer};
use pki::{KeyBackend, KeySigner};
use store::{
    AccountQueries, AuditLog, CertificateQueries, CertificateStore, Database, Store, Transaction,
};

use crate::{parse_certificate, CaName, CertificateSummary, Clock, Error, Settings};

/// A CA of the hierarchy, loaded with its key.
pub(crate) struct LoadedCa {
    pub(crate) certificate: Certificate,
    pub(crate) der: CertificateDer,
    pub(crate) signer: Arc<dyn KeySigner>,
    pub(crate) hashes: IssuerHashes,
    /// The delegated OCSP responder: certificate and key.
    pub(crate) responder: Option<(Certificate, Arc<dyn KeySigner>)>,
    /// The time-stamping unit this CA certified (the qualified CA only).
    pub(crate) tsa: Option<TsaUnit>,
}

/// A fresh random serial (RFC 5280 §4.1.2.2: positive, at most 20 octets; 16 random here).
pub(crate) fn random_serial() -> Serial {
    Serial::from_random(rand::random())
}

/// The time-stamping unit as loaded: certificate and key.
pub(crate) struct TsaUnit {
    pub(crate) certificate: Certificate,
    pub(crate) der: CertificateDer,
    pub(crate) signer: Arc<dyn KeySigner>,
}

impl TsaUnit {
    /// Opens the unit a CA record names and checks its key against its certificate.
    pub(crate) async fn load(
        authority: &Ca<impl CaDb>,
        record: &AuthorityRecord,
    ) -> Result<Option<Self>, Error> {
        let Some((_, key_id, der, _)) = &record.tsa else {
            return Ok(None);
        };
        let certificate = parse_certificate(der)?;
        let signer = authority.open_key(key_id).await?;
        profile::check_key_matches(&certificate, signer.as_ref(), "the time-stamping unit")?;
        Ok(Some(Self {
            certificate,
            der: CertificateDer(der.clone()),
            signer,
        }))
    }

    pub(crate) fn serial(&self) -> Option<Serial> {
        Serial::from_integer_bytes(self.certificate.tbs_certificate.serial_number.as_bytes())
    }
}

/// What the CA service reads of the store (its records of CAs, keys and certificates; whether
/// a cloud key's owner exists) and, in [`CaTx`], what its use cases change.
pub trait CaDb: Database<Tx: CaTx> + CertificateQueries + AccountQueries {}
impl<D: Database<Tx: CaTx> + CertificateQueries + AccountQueries> CaDb for D {}

/// What the CA service changes in a use case's transaction: certificates and keys, and the
/// audit log.
pub trait CaTx: Transaction + CertificateStore + AuditLog {}
impl<T: Transaction + CertificateStore + AuditLog> CaTx for T {}

/// The certification authority service.
pub struct Ca<D = Store> {
    pub(crate) store: D,
    pub(crate) keys: Arc<dyn KeyBackend>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) cas: RwLock<HashMap<CaName, Arc<LoadedCa>>>,
    /// Keys found to match a certificate's SubjectPublicKeyInfo: key id -> SHA-256 of that
    /// SPKI (finding 8: a certificate row pointed at another key signs nothing).
    pub(crate) key_bindings: Mutex<HashMap<KeyId, [u8; 32]>>,
    /// Cloud keys opened to sign, kept between calls (`keys::OpenedKeys`).
    pub(crate) opened_keys: keys::OpenedKeys,
}

impl<D: CaDb> Ca<D> {
    pub(crate) fn new(
        store: D,
        keys: Arc<dyn KeyBackend>,
        clock: Arc<dyn Clock>,
        settings: Arc<Settings>,
    ) -> Self {
        Self {
            store,
            keys,
            clock,
            settings,
            cas: RwLock::new(HashMap::new()),
            key_bindings: Mutex::new(HashMap::new()),
            opened_keys: keys::OpenedKeys::default(),
        }
    }

    /// A loaded CA: its certificate, key, OCSP responder and time-stamping unit.
    pub(crate) fn ca(&self, name: CaName) -> Result<Arc<LoadedCa>, Error> {
        let cas = self
            .cas
            .read()
            .map_err(|_| Error::Inconsistent("CA table lock poisoned".into()))?;
        cas.get(&name)
            .cloned()
            .ok_or_else(|| Error::Inconsistent(format!("CA {} is not loaded", name.as_str())))
    }

    /// A CA certificate, DER.
    pub fn ca_certificate(&self, name: CaName) -> Result<CertificateDer, Error> {
        Ok(self.ca(name)?.der.clone())
    }

    /// Certificates, oldest first, optionally only those of one e-mail address.
    pub async fn certificates(
        &self,
        email: Option<&str>,
    ) -> Result<Vec<CertificateSummary>, Error> {
        let records = self.store.certificates(email).await?;
        Ok(records.iter().map(CertificateSummary::from).collect())
    }

    /// A certificate and, with `chain`, its issuers up to the root, as PEM.
    pub async fn certificate_pem(&self, serial: &Serial, chain: bool) -> Result<String, Error> {
        let record = self
            .store
            .certificate(serial)
            .await?
            .ok_or(Error::UnknownSerial(*serial))?;
        let der = record
            .der
            .ok_or(Error::NoCertificate(*serial, record.status))?;
        let mut pem = CertificateDer(der).to_pem();
        if chain {
            let mut issuer = CaName::parse(&record.authority);
            while let Some(name) = issuer {
                let ca = self.ca(name)?;
                if ca.certificate.tbs_certificate.serial_number.as_bytes() == serial.as_bytes() {
                    break;
                }
                pem.push_str(&ca.der.to_pem());
                issuer = if name == CaName::Root {
                    None
                } else {
                    Some(CaName::Root)
                };
            }
        }
        Ok(pem)
    }

    /// Signs a CRL of `ca` (its URLs are not in a CRL).
    pub(crate) fn sign_crl(
        &self,
        ca: CaName,
        revoked: &[RevokedEntry],
        number: u64,
        this_update: UnixTime,
        next_update: UnixTime,
    ) -> Result<CrlDer, Error> {
        let loaded = self.ca(ca)?;
        let issuer = Issuer::from_certificate(&loaded.certificate, None, loaded.signer.as_ref())?;
        Ok(build_crl(
            &issuer,
            revoked,
            number,
            this_update,
            next_update,
        )?)
    }

    /// Opens a recorded key.
    pub(crate) async fn open_key(&self, id: &KeyId) -> Result<Arc<dyn KeySigner>, Error> {
        let record = self.store.key(id).await?;
        Ok(self.keys.open(&pki::KeyReference(record.reference))?)
    }
}
