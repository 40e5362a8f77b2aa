//! The software key backend: keys generated in this process and kept only as PKCS#8 sealed
//! with AES-256-GCM under the master key (the data folder's `master.key`). The clear key
//! exists only in memory. For development and small deployments; not a QSCD.

use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use rand::rngs::OsRng;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::keys::{
    Digest, GeneratedKey, KeyAlgorithm, KeyBackend, KeyReference, KeySigner, PublicKeyDer, RsaPadding,
};
use crate::{generator, Error};

/// Version tag at the start of every sealed key.
const SEALED_V1: &[u8] = b"sw1:";
/// Associated data bound into every seal, so a sealed blob of another kind cannot be swapped in.
const AAD: &[u8] = b"eidportal software key v1";

/// The master key that seals software keys.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl MasterKey {
    /// A new random master key.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(key.as_mut());
        Self(key)
    }

    /// The master key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let array: [u8; 32] = bytes.try_into().ok()?;
        Some(Self(Zeroizing::new(array)))
    }

    /// The raw bytes, to be written to the key file.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

/// Keys sealed under a [`MasterKey`].
#[derive(Debug, Clone)]
pub struct SoftwareKeyBackend {
    master: MasterKey,
}

impl SoftwareKeyBackend {
    /// A backend that seals and unseals with `master`.
    pub fn new(master: MasterKey) -> Self {
        Self { master }
    }

    fn cipher(&self) -> Result<Aes256Gcm, Error> {
        Aes256Gcm::new_from_slice(self.master.as_bytes()).map_err(|_| Error::Unseal)
    }

    fn seal(&self, pkcs8: &[u8]) -> Result<KeyReference, Error> {
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher()?
            .encrypt(&Nonce::from(nonce), Payload { msg: pkcs8, aad: AAD })
            .map_err(|_| Error::Unseal)?;
        let mut out = Vec::with_capacity(SEALED_V1.len() + nonce.len() + sealed.len());
        out.extend_from_slice(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(KeyReference(out))
    }

    fn unseal(&self, reference: &KeyReference) -> Result<Zeroizing<Vec<u8>>, Error> {
        let rest = reference.0.strip_prefix(SEALED_V1).ok_or(Error::Unseal)?;
        if rest.len() < 12 {
            return Err(Error::Unseal);
        }
        let (nonce, sealed) = rest.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| Error::Unseal)?;
        let clear = self
            .cipher()?
            .decrypt(&Nonce::from(nonce), Payload { msg: sealed, aad: AAD })
            .map_err(|_| Error::Unseal)?;
        Ok(Zeroizing::new(clear))
    }
}

impl KeyBackend for SoftwareKeyBackend {
    fn name(&self) -> &'static str {
        "software"
    }

    fn keeps_objects(&self) -> bool {
        false
    }

    /// A P-256 key costs one multiplication of the base point (its public key, from the
    /// precomputed table of [`crate::generator`]), used for both the sealed PKCS#8 and the
    /// SubjectPublicKeyInfo: `SecretKey::to_pkcs8_der` and opening the key again would each
    /// compute it anew, the slow way (issuance makes one key per certificate).
    fn generate(&self, _label: &str, algorithm: KeyAlgorithm) -> Result<GeneratedKey, Error> {
        match algorithm {
            KeyAlgorithm::EcdsaP256 => {
                let scalar = p256::NonZeroScalar::random(&mut OsRng);
                let public = generator::public_key(&scalar)?;
                let secret = p256::SecretKey::from(scalar);
                let pkcs8 = p256_pkcs8(&secret, &public)?;
                let spki = public.to_public_key_der().map_err(|e| Error::Backend(format!("SPKI encoding: {e}")))?;
                Ok(GeneratedKey { reference: self.seal(&pkcs8)?, public_key: PublicKeyDer(spki.into_vec()) })
            }
            KeyAlgorithm::Rsa3072 => {
                let pkcs8 = rsa::RsaPrivateKey::new(&mut OsRng, 3072)
                    .map_err(|e| Error::Backend(format!("RSA key generation: {e}")))?
                    .to_pkcs8_der()
                    .map_err(|e| Error::Backend(format!("PKCS#8 encoding: {e}")))?;
                let reference = self.seal(pkcs8.as_bytes())?;
                let signer = SoftwareSigner::from_pkcs8(pkcs8.as_bytes())?;
                Ok(GeneratedKey { reference, public_key: signer.public_key().clone() })
            }
        }
    }

    fn open(&self, reference: &KeyReference) -> Result<Arc<dyn KeySigner>, Error> {
        let clear = self.unseal(reference)?;
        Ok(Arc::new(SoftwareSigner::from_pkcs8(&clear)?))
    }

    fn destroy(&self, _reference: &KeyReference) -> Result<(), Error> {
        // The sealed key exists only in the store row, which the caller erases.
        Ok(())
    }

    fn destroy_labelled(&self, _label: &str) -> Result<usize, Error> {
        // No key exists anywhere but in a reference.
        Ok(0)
    }
}

/// The PKCS#8 `PrivateKeyInfo` (RFC 5208) of a P-256 key whose public key is known: an
/// `ECPrivateKey` (RFC 5915) with the public key and without parameters, under
/// id-ecPublicKey with the named curve. The same bytes as `SecretKey::to_pkcs8_der`, which
/// would compute the public key again.
fn p256_pkcs8(secret: &p256::SecretKey, public: &p256::PublicKey) -> Result<Zeroizing<Vec<u8>>, Error> {
    use der::Encode as _;
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    use p256::pkcs8::AssociatedOid as _;
    let encoding = |e: der::Error| Error::Backend(format!("PKCS#8 encoding: {e}"));
    let private_key = Zeroizing::new(secret.to_bytes());
    let point = public.to_encoded_point(false);
    let ec_private_key = Zeroizing::new(
        sec1::EcPrivateKey { private_key: &private_key, parameters: None, public_key: Some(point.as_bytes()) }
            .to_der()
            .map_err(encoding)?,
    );
    let algorithm = pkcs8::AlgorithmIdentifierRef {
        oid: p256::elliptic_curve::ALGORITHM_OID,
        parameters: Some((&p256::NistP256::OID).into()),
    };
    Ok(Zeroizing::new(pkcs8::PrivateKeyInfo::new(algorithm, &ec_private_key).to_der().map_err(encoding)?))
}

enum SoftwareKey {
    /// Zeroed on drop.
    Ecdsa(p256::SecretKey),
    Rsa(Box<rsa::RsaPrivateKey>),
}

/// A software private key in memory.
pub struct SoftwareSigner {
    key: SoftwareKey,
    public_key: PublicKeyDer,
}

impl SoftwareSigner {
    /// Reads an unencrypted PKCS#8 private key (P-256 or RSA).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, Error> {
        if let Ok(secret) = p256::SecretKey::from_pkcs8_der(der) {
            let public = generator::public_key(&secret.to_nonzero_scalar())?
                .to_public_key_der()
                .map_err(|e| Error::Backend(format!("SPKI encoding: {e}")))?;
            return Ok(Self { key: SoftwareKey::Ecdsa(secret), public_key: PublicKeyDer(public.into_vec()) });
        }
        let rsa_key = rsa::RsaPrivateKey::from_pkcs8_der(der)
            .map_err(|_| Error::UnsupportedKey("neither a P-256 nor an RSA PKCS#8 key".into()))?;
        let public = rsa_key
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| Error::Backend(format!("SPKI encoding: {e}")))?;
        Ok(Self { key: SoftwareKey::Rsa(Box::new(rsa_key)), public_key: PublicKeyDer(public.as_bytes().to_vec()) })
    }
}

impl KeySigner for SoftwareSigner {
    fn algorithm(&self) -> KeyAlgorithm {
        match self.key {
            SoftwareKey::Ecdsa(_) => KeyAlgorithm::EcdsaP256,
            SoftwareKey::Rsa(_) => KeyAlgorithm::Rsa3072,
        }
    }

    fn public_key(&self) -> &PublicKeyDer {
        &self.public_key
    }

    fn diffie_hellman(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        let SoftwareKey::Ecdsa(key) = &self.key else {
            return Err(Error::UnsupportedKey("ECDH needs a P-256 key".into()));
        };
        let peer = p256::PublicKey::from_sec1_bytes(peer).map_err(|_| Error::UnsupportedKey("not a P-256 point".into()))?;
        let shared = p256::ecdh::diffie_hellman(key.to_nonzero_scalar(), peer.as_affine());
        Ok(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
    }

    fn sign_digest(&self, digest: &Digest, padding: RsaPadding) -> Result<Vec<u8>, Error> {
        match &self.key {
            // RFC 6979 nonce, R from the precomputed table: the same bytes as the p256
            // crate's `SigningKey::sign_prehash` (crate::generator).
            SoftwareKey::Ecdsa(key) => {
                let signature = generator::sign_prehash(&key.to_nonzero_scalar(), digest.as_bytes())?;
                Ok(signature.to_der().as_bytes().to_vec())
            }
            SoftwareKey::Rsa(key) => {
                let hashed = digest.as_bytes();
                let result = match (padding, digest) {
                    (RsaPadding::Pkcs1v15, Digest::Sha256(_)) => key.sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), hashed),
                    (RsaPadding::Pkcs1v15, Digest::Sha384(_)) => key.sign(rsa::Pkcs1v15Sign::new::<sha2::Sha384>(), hashed),
                    (RsaPadding::Pkcs1v15, Digest::Sha512(_)) => key.sign(rsa::Pkcs1v15Sign::new::<sha2::Sha512>(), hashed),
                    (RsaPadding::Pss, Digest::Sha256(_)) => key.sign_with_rng(&mut OsRng, rsa::Pss::new::<sha2::Sha256>(), hashed),
                    (RsaPadding::Pss, Digest::Sha384(_)) => key.sign_with_rng(&mut OsRng, rsa::Pss::new::<sha2::Sha384>(), hashed),
                    (RsaPadding::Pss, Digest::Sha512(_)) => key.sign_with_rng(&mut OsRng, rsa::Pss::new::<sha2::Sha512>(), hashed),
                };
                result.map_err(|_| Error::Signature)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_under_their_master_key() {
        let backend = SoftwareKeyBackend::new(MasterKey::generate());
        let key = backend.generate("test", KeyAlgorithm::EcdsaP256).unwrap();
        let signer = backend.open(&key.reference).unwrap();
        assert_eq!(signer.public_key(), &key.public_key);
        let signature = signer.sign(b"hello").unwrap();
        crate::verify::verify_signature(&key.public_key, b"hello", &signature).unwrap();
        assert!(crate::verify::verify_signature(&key.public_key, b"hellO", &signature).is_err());

        let other = SoftwareKeyBackend::new(MasterKey::generate());
        assert!(matches!(other.open(&key.reference), Err(Error::Unseal)));
        let mut damaged = key.reference.clone();
        if let Some(last) = damaged.0.last_mut() {
            *last ^= 1;
        }
        assert!(matches!(backend.open(&damaged), Err(Error::Unseal)));
    }

    #[test]
    fn p256_keys_are_sealed_as_the_p256_crate_encodes_them() {
        use pkcs8::DecodePrivateKey as _;
        let backend = SoftwareKeyBackend::new(MasterKey::generate());
        let key = backend.generate("test", KeyAlgorithm::EcdsaP256).unwrap();
        let clear = backend.unseal(&key.reference).unwrap();
        let secret = p256::SecretKey::from_pkcs8_der(&clear).unwrap();
        assert_eq!(clear.as_slice(), secret.to_pkcs8_der().unwrap().as_bytes(), "same PKCS#8 bytes");
        let spki = secret.public_key().to_public_key_der().unwrap();
        assert_eq!(key.public_key.0, spki.as_bytes(), "the SPKI is the key's own");
        assert_eq!(backend.open(&key.reference).unwrap().public_key(), &key.public_key);
        assert_eq!(backend.destroy_labelled("test").unwrap(), 0);
        assert!(!backend.keeps_objects());
    }

    #[test]
    fn rsa_keys_sign_with_both_paddings() {
        let backend = SoftwareKeyBackend::new(MasterKey::generate());
        let key = backend.generate("test", KeyAlgorithm::Rsa3072).unwrap();
        let signer = backend.open(&key.reference).unwrap();
        assert_eq!(signer.algorithm(), KeyAlgorithm::Rsa3072);
        let signature = signer.sign(b"hello").unwrap();
        assert_eq!(signature.len(), 384);
        crate::verify::verify_signature(&key.public_key, b"hello", &signature).unwrap();
        let pss = signer.sign_digest(&Digest::sha256(b"x"), RsaPadding::Pss).unwrap();
        assert_eq!(pss.len(), 384);
    }
}
