//! `va`: validation. Revocation (`revocation`), the CRLs and the OCSP answers (`ocsp`),
//! signed with the CA's delegated responder or, for the CRLs, through the CA's loaded key.

pub(crate) mod ocsp;
pub(crate) mod revocation;
#[cfg(test)]
mod tests;

pub use ocsp::OcspAnswer;

use std::sync::Arc;

use store::{CertificateQueries as _, Store};

use crate::{Ca, CaName, Clock, Error, Settings};

/// The validation service.
pub struct Va {
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) ca: Arc<Ca>,
    pub(crate) ocsp_cache: crate::va::ocsp::Cache,
}

impl Va {
    pub(crate) fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        settings: Arc<Settings>,
        ca: Arc<Ca>,
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

    /// Only re-reads the status revision, so that OCSP answers reflect revocations made by
    /// other processes (cheap: one small query).
    pub async fn sync_status(&self) -> Result<(), Error> {
        self.ocsp_cache
            .set_revision(self.store.status_revision().await?);
        Ok(())
    }
}
