//! Pure rules of the trust service: no IO, no async, no clock. Every function that depends on
//! time takes `now` as a parameter so that tests can put it anywhere.

pub mod certificate;
pub mod cloud;
pub mod forwarded;
pub mod ids;
pub mod jmbg;
pub mod login;
pub mod network;
pub mod oidc;
pub mod push;
pub mod qr;
pub mod records;
pub mod signing;
pub mod text;
pub mod time;

pub use certificate::{
    may_revoke, CertificateKind, CertificateStatus, CrlSchedule, OcspSchedule, Refusal,
    RevocationReason, Serial, TimestampSchedule, UnknownName,
};
pub use ids::{DeviceId, Sad, TxnId, UserId};
pub use jmbg::{Jmbg, JmbgError};
pub use login::{AssuranceLevel, DeviceState, RateLimit, TransactionStatus};
pub use time::UnixTime;
