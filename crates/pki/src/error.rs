//! Errors of the PKI crate.

/// Everything that can go wrong while building, signing or parsing PKI objects.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A DER structure could not be encoded or decoded.
    #[error("DER: {0}")]
    Der(#[from] der::Error),
    /// A signature could not be made or has an unexpected form.
    #[error("the signature could not be made or is malformed")]
    Signature,
    /// The key backend failed (PKCS#11 error, token missing, wrong PIN, ...).
    #[error("key backend: {0}")]
    Backend(String),
    /// A sealed software key could not be opened: wrong master key or damaged data.
    #[error("a software key could not be unsealed (wrong master key or damaged key data)")]
    Unseal,
    /// The key is not of a type this operation supports.
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
    /// A to-be-signed certificate broke its profile; nothing was signed.
    #[error("profile check failed: {0}")]
    Profile(String),
    /// A CA's key does not match its certificate.
    #[error("the key of {0} does not match its certificate")]
    KeyMismatch(String),
}
