//! X.509 for the trust service: certificate profiles and issuance, CRLs, OCSP, and the
//! [`KeySigner`] / [`KeyBackend`] traits with the software key backend.

pub mod crl;
pub mod error;
pub mod keys;
pub mod ocsp;
pub mod oids;
pub mod profile;
pub mod software;
pub mod tsa;
pub mod verify;

pub use error::Error;
pub use keys::{
    ecdsa_raw_to_der, Digest, GeneratedKey, KeyAlgorithm, KeyBackend, KeyReference, KeySigner,
    PublicKeyDer, RsaPadding,
};
pub use software::{MasterKey, SoftwareKeyBackend, SoftwareSigner};
