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
    /// The key backend failed (PKCS#11 error, token missing, wrong PIN, ...): what it was
    /// doing, and the error that stopped it where there is one (kept, not flattened to text).
    #[error("key backend: {what}")]
    Backend {
        /// What failed, for people.
        what: String,
        /// The cause.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
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

impl Error {
    /// The key backend failed for a reason this text says all of.
    pub fn backend(what: impl Into<String>) -> Self {
        Self::Backend {
            what: what.into(),
            source: None,
        }
    }

    /// The key backend failed doing `what` because of `source`.
    pub fn backend_because(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Backend {
            what: what.into(),
            source: Some(Box::new(source)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_backend_failure_keeps_its_cause() {
        let cause = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = Error::backend_because("load PKCS#11 module /x.so", cause);
        assert_eq!(error.to_string(), "key backend: load PKCS#11 module /x.so");
        assert_eq!(
            error.source().map(ToString::to_string).as_deref(),
            Some("no such file")
        );
        assert!(Error::backend("refused").source().is_none());
    }
}
