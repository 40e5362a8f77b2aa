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

use store::{
    Database, MailQueries, MailStore, OperationQueries, OperationStore, SigningStore, Store,
};

use crate::login::{LoginDb, LoginTx};
use crate::va::{VaDb, VaTx};
use crate::{Ca, Clock, Login, Settings, Va};

/// What the registration service reads of the store and, in [`RaTx`], changes: beyond the
/// parts of the services it asks (the CA's, the VA's, login's), the mail outbox and the
/// certificate operations waiting for their approval.
pub trait RaDb: VaDb + LoginDb + Database<Tx: RaTx> + MailQueries + OperationQueries {}
impl<D> RaDb for D where D: VaDb + LoginDb + Database<Tx: RaTx> + MailQueries + OperationQueries {}

/// What the registration service changes in a use case's transaction; revoking everything
/// also ends the citizen's API tokens (the signing service's part).
pub trait RaTx: VaTx + LoginTx + MailStore + OperationStore + SigningStore {}
impl<T: VaTx + LoginTx + MailStore + OperationStore + SigningStore> RaTx for T {}

/// The services `ra` asks: the CA signs, the VA revokes, and `login` asks the citizen's
/// ConsentID to approve each certificate operation.
pub(crate) struct Services<D> {
    pub(crate) ca: Arc<Ca<D>>,
    pub(crate) va: Arc<Va<D>>,
    pub(crate) login: Arc<Login<D>>,
}

/// The registration service.
pub struct Ra<D = Store> {
    pub(crate) store: D,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) ca: Arc<Ca<D>>,
    pub(crate) va: Arc<Va<D>>,
    pub(crate) login: Arc<Login<D>>,
}

impl<D: RaDb> Ra<D> {
    pub(crate) fn new(
        store: D,
        clock: Arc<dyn Clock>,
        settings: Arc<Settings>,
        services: Services<D>,
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
