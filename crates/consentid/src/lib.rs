//! ConsentID core: the authenticator's keystore, PIN key and protocol client (DESIGN §4,
//! reference/mobile-auth.md §7, wire contract in `proto`).
//!
//! No terminal code, no printing, no process exit: this library is meant to be embedded in a
//! phone app as well as in the `consentid` command. The device key stands in for a
//! non-exportable platform key; the PIN never leaves the device and nothing derived from it is
//! stored.
//!
//! A typical session:
//! 1. [`activate`] once, with the officer's activation code and a new [`Pin`];
//! 2. [`Client::inbox`] to fetch the pending requests, each verified against the server key
//!    pinned at activation ([`VerifiedRequest`]);
//! 3. show the request and [`three_codes`] to pick from, then [`Client::respond`].

mod client;
mod clock;
mod error;
mod keystore;
mod pin;
mod request;
mod server;

pub use client::{activate, Client, DenyReason, Inbox, Outcome, Settings};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{EnvelopeError, Error, PinRefusal};
pub use keystore::{DeviceCertificate, DeviceKey, Keystore, FILE_NAME};
pub use pin::{Pin, PinKey, PinParams, PinSalt, PIN_LENGTH};
pub use proto::app::{Decision, DeviceState, DeviceStatus, RequestKind, RequestPayload};
pub use request::{three_codes, verify_envelope, VerificationCode, VerifiedRequest};
pub use server::ServerUrl;
