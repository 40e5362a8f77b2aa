//! Signing keys behind one trait (DESIGN §5): the CA, OCSP and cloud-signing keys live in a
//! [`KeyBackend`] (software keys sealed under the master key, or a PKCS#11 token) and are used
//! through a [`KeySigner`], which signs digests and never hands out private key material.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest as _, Sha256, Sha384, Sha512};

use crate::Error;

/// The key types we generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 (the default).
    EcdsaP256,
    /// RSA with a 3072-bit modulus.
    Rsa3072,
}

impl KeyAlgorithm {
    /// Stable name for configuration and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::Rsa3072 => "rsa-3072",
        }
    }

    /// Parses a name produced by [`KeyAlgorithm::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ecdsa-p256" | "p256" | "ec" => Some(Self::EcdsaP256),
            "rsa-3072" | "rsa" => Some(Self::Rsa3072),
            _ => None,
        }
    }
}

/// A message digest to be signed.
#[derive(Clone, PartialEq, Eq)]
pub enum Digest {
    /// SHA-256 (32 bytes).
    Sha256([u8; 32]),
    /// SHA-384 (48 bytes).
    Sha384([u8; 48]),
    /// SHA-512 (64 bytes).
    Sha512([u8; 64]),
}

impl Digest {
    /// SHA-256 of `message`.
    pub fn sha256(message: &[u8]) -> Self {
        Self::Sha256(Sha256::digest(message).into())
    }

    /// SHA-384 of `message`.
    pub fn sha384(message: &[u8]) -> Self {
        Self::Sha384(Sha384::digest(message).into())
    }

    /// SHA-512 of `message`.
    pub fn sha512(message: &[u8]) -> Self {
        Self::Sha512(Sha512::digest(message).into())
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Sha256(d) => d,
            Self::Sha384(d) => d,
            Self::Sha512(d) => d,
        }
    }

    /// The DER DigestInfo prefix for RSA PKCS#1 v1.5 (RFC 8017 §9.2 note 1).
    pub fn digest_info_prefix(&self) -> &'static [u8] {
        match self {
            Self::Sha256(_) => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            Self::Sha384(_) => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            Self::Sha512(_) => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", hex::encode(self.as_bytes()))
    }
}

/// How an RSA signature is padded. ECDSA keys ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RsaPadding {
    /// RSASSA-PKCS1-v1_5 (RFC 8017 §8.2).
    #[default]
    Pkcs1v15,
    /// RSASSA-PSS with MGF1 over the same hash and a salt as long as the hash (RFC 8017 §8.1).
    Pss,
}

/// A public key as DER SubjectPublicKeyInfo.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKeyDer(pub Vec<u8>);

impl fmt::Debug for PublicKeyDer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKeyDer({} bytes)", self.0.len())
    }
}

/// What the store keeps to find a key again in its backend: for software keys the sealed
/// PKCS#8, for PKCS#11 the object id. Opaque to everyone but the backend that made it.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyReference(pub Vec<u8>);

impl fmt::Debug for KeyReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyReference([redacted], {} bytes)", self.0.len())
    }
}

/// A freshly generated key pair.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// How to find the private key again.
    pub reference: KeyReference,
    /// Its public key.
    pub public_key: PublicKeyDer,
}

/// A private key that can sign, wherever it lives.
pub trait KeySigner: Send + Sync {
    /// The key type.
    fn algorithm(&self) -> KeyAlgorithm;

    /// The public key.
    fn public_key(&self) -> &PublicKeyDer;

    /// Signs a digest. ECDSA signatures come back DER-encoded (`Ecdsa-Sig-Value`, RFC 3279
    /// §2.2.3), RSA signatures as the raw big-endian integer.
    fn sign_digest(&self, digest: &Digest, padding: RsaPadding) -> Result<Vec<u8>, Error>;

    /// How many threads may sign with this key at once to good effect: a batch of
    /// [`KeySigner::sign_digest`] calls is spread over at most this many. One unless the key
    /// says otherwise (SoftHSM2 serialises a token's sessions: two threads sign slower than one).
    fn parallelism(&self) -> usize {
        1
    }

    /// ECDH (P-256 keys only): the x-coordinate of the shared point with `peer`, an
    /// uncompressed SEC1 point. Used to open PIN material sealed to the service's key.
    fn diffie_hellman(&self, peer: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, Error> {
        let _ = peer;
        Err(Error::UnsupportedKey("this key cannot do ECDH".into()))
    }

    /// Signs `message` with SHA-256 (and PKCS#1 v1.5 for RSA): what certificates, CRLs and OCSP
    /// responses use.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.sign_digest(&Digest::sha256(message), RsaPadding::Pkcs1v15)
    }
}

/// Where keys are generated and kept.
pub trait KeyBackend: Send + Sync {
    /// `software` or `pkcs11`, for the store and the logs.
    fn name(&self) -> &'static str;

    /// Whether the backend keeps key objects of its own, outside the store (a PKCS#11 token).
    /// Such a key is recorded before it is generated, so that a crash between the generation
    /// and the use case's commit leaves a record naming what to clean up
    /// ([`KeyBackend::destroy_labelled`]). A software key lives only in its reference, which the
    /// store keeps: a crash leaves nothing behind.
    fn keeps_objects(&self) -> bool;

    /// Generates a key pair inside the backend. `label` names it there (PKCS#11 `CKA_LABEL`);
    /// callers give each key a label of its own.
    fn generate(&self, label: &str, algorithm: KeyAlgorithm) -> Result<GeneratedKey, Error>;

    /// Generates a P-256 key that may also do key agreement ([`KeySigner::diffie_hellman`]):
    /// the service's encryption key. Keys from [`KeyBackend::generate`] only sign (a PKCS#11
    /// token creates them without `CKA_DERIVE`). A software key can do both either way.
    fn generate_agreement_key(&self, label: &str) -> Result<GeneratedKey, Error> {
        self.generate(label, KeyAlgorithm::EcdsaP256)
    }

    /// A 32-byte secret for `purpose` (e.g. the audit chain's MAC key) that only this backend
    /// can make again and that no database holds, if the backend has one of its own:
    /// HKDF-SHA256 of the master key (software keys). `None` for a PKCS#11 token.
    fn derive_secret(&self, purpose: &str) -> Result<Option<zeroize::Zeroizing<[u8; 32]>>, Error>;

    /// Opens a key generated earlier.
    fn open(&self, reference: &KeyReference) -> Result<Arc<dyn KeySigner>, Error>;

    /// Destroys a key for good. Destroying a key that is already gone is not an error.
    fn destroy(&self, reference: &KeyReference) -> Result<(), Error>;

    /// Destroys every key object labelled `label`, of any class (a crash may leave a private
    /// key without its public key); returns how many there were. This is how a key whose
    /// generation was cut short is found: its reference was never recorded, its label was.
    /// A backend without objects of its own ([`KeyBackend::keeps_objects`] false) has nothing
    /// to find.
    fn destroy_labelled(&self, label: &str) -> Result<usize, Error>;
}

/// Converts a raw `r || s` ECDSA signature (PKCS#11 `CKM_ECDSA`) to DER.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, Error> {
    let signature = p256::ecdsa::Signature::from_slice(raw).map_err(|_| Error::Signature)?;
    Ok(signature.to_der().as_bytes().to_vec())
}
