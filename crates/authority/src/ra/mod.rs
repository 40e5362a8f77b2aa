//! `ra`: registration. Accounts and their proofing, activation codes (`accounts`), the cloud
//! certificate's life and its agreement (`cloud`, `agreement`), and the mail that tells the
//! citizen (`mail`). Certificates are the CA's to sign and the VA's to revoke.

pub mod accounts;
pub mod agreement;
pub mod cloud;
pub mod mail;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use store::Store;

use crate::{Ca, Clock, Settings, Va};

/// The registration service.
pub struct Ra {
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) ca: Arc<Ca>,
    pub(crate) va: Arc<Va>,
}

impl Ra {
    pub(crate) fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        settings: Arc<Settings>,
        ca: Arc<Ca>,
        va: Arc<Va>,
    ) -> Self {
        Self {
            store,
            clock,
            settings,
            ca,
            va,
        }
    }
}
