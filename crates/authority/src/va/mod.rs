//! `va`: validation. Revocation (`revocation`), the CRLs and the OCSP answers (`ocsp`),
//! signed with the CA's delegated responder or, for the CRLs, through the CA's loaded key.

pub(crate) mod ocsp;
pub(crate) mod revocation;
#[cfg(test)]
mod tests;

pub use ocsp::OcspAnswer;

use std::sync::Arc;

use store::{Database, LoginStore, Store};

use crate::ca::{CaDb, CaTx};
use crate::{Ca, CaName, Clock, Error, Settings};

/// What the validation service reads (the CA's records) and, in [`VaTx`], changes.
pub trait VaDb: CaDb + Database<Tx: VaTx> {}
impl<D: CaDb + Database<Tx: VaTx>> VaDb for D {}

/// What a revocation changes in its transaction: beyond the CA's part, revoking a device's
/// certificate deactivates the device and ends its sessions.
pub trait VaTx: CaTx + LoginStore {}
impl<T: CaTx + LoginStore> VaTx for T {}

/// The validation service.
pub struct Va<D = Store> {
    pub(crate) store: D,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) ca: Arc<Ca<D>>,
    pub(crate) ocsp_cache: crate::va::ocsp::Cache,
}

impl<D: VaDb> Va<D> {
    pub(crate) fn new(
        store: D,
        clock: Arc<dyn Clock>,
        settings: Arc<Settings>,
        ca: Arc<Ca<D>>,
    ) -> Self {
        Self {
            store,
            clock,
            settings,
            ca,
            ocsp_cache: crate::va::ocsp::Cache::default(),
        }
    }

    /// Drops every cached OCSP answer (a CA's responder changed).
    pub(crate) fn forget_answers(&self) {
        self.ocsp_cache.clear();
    }

    /// The current CRL of a CA (the root's included), DER.
    pub async fn crl(&self, name: CaName) -> Result<Vec<u8>, Error> {
        let record =
            self.store.authority(name.as_str()).await?.ok_or_else(|| {
                Error::Inconsistent(format!("authority {} missing", name.as_str()))
            })?;
        record.crl.ok_or_else(|| {
            Error::Inconsistent(format!("authority {} has no CRL yet", name.as_str()))
        })
    }

    /// Watches for status changes ([`store::Change::CertificateStatus`]), from every instance
    /// on PostgreSQL: make it before [`Va::sync_status`], then wait on it.
    pub fn status_changes(&self) -> store::Watch {
        self.store.watch(&store::Change::CertificateStatus)
    }

    /// Only re-reads the status revision, so that OCSP answers reflect revocations made by
    /// other processes (cheap: one small query).
    pub async fn sync_status(&self) -> Result<(), Error> {
        self.ocsp_cache
            .set_revision(self.store.status_revision().await?);
        Ok(())
    }
}
