//! The one error type of the ConsentID core, and the typed refusals it carries.
//!
//! Every variant names the problem so that an app can show it in the user's language; the
//! command-line app maps them to exit codes.

use std::path::PathBuf;

use proto::CryptoError;

/// Why a PIN was refused before anything was sent (a refusal is data, STYLE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PinRefusal {
    /// The PIN is not exactly 6 characters long.
    #[error("the PIN must have exactly 6 digits")]
    Length,
    /// The PIN has a character that is not an ASCII digit.
    #[error("the PIN may contain digits only")]
    NotDigits,
    /// All six digits are the same (000000, 777777, …).
    #[error("the PIN must not repeat one digit")]
    SameDigit,
    /// The digits ascend or descend by one (123456, 654321, …).
    #[error("the PIN must not be a run of consecutive digits")]
    Sequence,
    /// The two entries of a new PIN differ.
    #[error("the two PIN entries differ")]
    Mismatch,
}

/// Why a delivered request was dropped instead of being shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The payload or the signature is not base64url.
    #[error("the request envelope is not base64url")]
    Encoding,
    /// The signature does not verify with the server key pinned at activation.
    #[error("the request is not signed by the pinned server key")]
    Signature,
    /// The signed payload is not a request this app understands.
    #[error("the signed request cannot be read: {0}")]
    Payload(String),
    /// The payload announces a protocol version other than 1.
    #[error("the signed request has protocol version {0}, this app speaks 1")]
    Version(u8),
    /// A field that goes into the approval message or a URL has characters outside
    /// `[A-Za-z0-9._:-]` (reference/mobile-auth.md §7.6).
    #[error("the signed request has an unsafe `{0}` field")]
    UnsafeField(&'static str),
    /// The challenge is not 32 bytes.
    #[error("the signed request's challenge is not 32 bytes")]
    Challenge,
}

/// Everything that can go wrong in the ConsentID core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The PIN was refused locally; nothing was sent.
    #[error("PIN refused: {0}")]
    PinPolicy(#[from] PinRefusal),
    /// An approval needs the PIN and none was given.
    #[error("an approval needs the PIN")]
    PinRequired,
    /// A verification code is not 4 digits.
    #[error("a verification code has exactly 4 digits")]
    InvalidVerificationCode,
    /// The activation code is empty.
    #[error("the activation code is empty")]
    EmptyActivationCode,
    /// Neither `$CONSENTID_HOME` nor `$HOME` is set.
    #[error("no home folder: set CONSENTID_HOME or HOME")]
    NoHome,
    /// The home folder holds no activated device.
    #[error("ConsentID is not activated in {home}")]
    NotActivated {
        /// The folder looked in.
        home: PathBuf,
    },
    /// The home folder already holds an active device; activating again would lose its keys.
    #[error("ConsentID is already active in {home}")]
    AlreadyActive {
        /// The folder.
        home: PathBuf,
    },
    /// The device was deactivated and its keys are wiped.
    #[error("this ConsentID device is deactivated; its keys are wiped")]
    Deactivated,
    /// The server reported the device revoked; the keys have just been wiped.
    #[error("the server revoked this device; its keys have been wiped")]
    DeviceRevoked,
    /// Five wrong PINs in a row locked the device; re-activation is needed.
    #[error("the PIN is locked; re-activation is needed")]
    PinLocked,
    /// Reading or writing the keystore failed.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The keystore file is damaged.
    #[error("the keystore {path} is damaged: {detail}")]
    CorruptKeystore {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The server address is not usable.
    #[error("invalid server address {url:?}: {reason}")]
    InvalidServerUrl {
        /// What was given.
        url: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The home was activated by an earlier release with a plain `http://` address of another
    /// computer, which this release no longer uses: the approvals would cross the network in
    /// clear. The keystore itself is intact; a new activation over `https://` is needed.
    #[error("this ConsentID home was activated with the plain http:// address {url:?}; activate again over https://")]
    PlainHttpHome {
        /// The address stored in the home.
        url: String,
    },
    /// The CA certificate for the server (`--ca-file`) cannot be used.
    #[error("the CA certificate {path:?} cannot be used: {detail}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The server could not be reached (connection, timeout, DNS).
    #[error("cannot reach the server at {url}: {source}")]
    Unreachable {
        /// The address called.
        url: String,
        /// The transport failure.
        #[source]
        source: Box<ureq::Transport>,
    },
    /// The server answered with an error body (`ErrorBody`).
    #[error("the server refused ({status} {code}): {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// The stable error code, e.g. `invalid_code`, `rate_limited`.
        code: String,
        /// The server's sentence.
        message: String,
    },
    /// The request is not (or no longer) pending: unknown, expired, answered or cancelled.
    #[error("request {txn_id} was not found or has expired ({code})")]
    RequestUnavailable {
        /// The transaction.
        txn_id: String,
        /// The server's error code (`expired`, `not_pending`, `not_found`, …).
        code: String,
    },
    /// The server's answer does not follow the protocol.
    #[error("unexpected answer from the server ({what}): {detail}")]
    BadAnswer {
        /// Which answer.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The device certificate from the server is unreadable or not for this device's key.
    #[error("the device certificate is not acceptable: {0}")]
    Certificate(String),
    /// A delivered request failed verification.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// A signature, key or sealed value could not be processed.
    #[error("cryptographic failure: {0}")]
    Crypto(#[from] CryptoError),
    /// Argon2id or HKDF rejected its parameters.
    #[error("PIN key derivation failed: {0}")]
    KeyDerivation(String),
}
