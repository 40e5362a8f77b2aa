//! `ra`: registration. Accounts and their proofing, activation codes (`accounts`), the cloud
//! certificate's life and its agreement (`cloud`, `agreement`), its operations, each approved
//! in ConsentID (`operations`), and the mail that tells the citizen (`mail`). Certificates
//! are the CA's to sign and the VA's to revoke.

pub mod accounts;
pub mod agreement;
pub mod cloud;
pub mod mail;
pub mod operations;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use store::Store;

use crate::{Ca, Clock, Login, Settings, Va};

/// The services `ra` asks: the CA signs, the VA revokes, and `login` asks the citizen's
/// ConsentID to approve each certificate operation.
pub(crate) struct Services {
    pub(crate) ca: Arc<Ca>,
    pub(crate) va: Arc<Va>,
    pub(crate) login: Arc<Login>,
}

/// The registration service.
pub struct Ra {
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) ca: Arc<Ca>,
    pub(crate) va: Arc<Va>,
    pub(crate) login: Arc<Login>,
}

impl Ra {
    pub(crate) fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        settings: Arc<Settings>,
        services: Services,
    ) -> Self {
        let Services { ca, va, login } = services;
        Self {
            store,
            clock,
            settings,
            ca,
            va,
            login,
        }
    }
}
