//! Signature checks with a public key: used at start to prove that each CA key matches its
//! certificate, and by tests.

use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use pkcs8::DecodePublicKey;

use crate::keys::PublicKeyDer;
use crate::Error;

/// Verifies a SHA-256 signature (ECDSA P-256 in DER, or RSA PKCS#1 v1.5) over `message`.
pub fn verify_signature(
    public_key: &PublicKeyDer,
    message: &[u8],
    signature: &[u8],
) -> Result<(), Error> {
    if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(&public_key.0) {
        // Checked by AWS-LC: RustCrypto's p256 takes about ten times as long (two scalar
        // multiplications in software), once per CA key at every start.
        let point = key.to_encoded_point(false);
        return UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point.as_bytes())
            .verify(message, signature)
            .map_err(|_| Error::Signature);
    }
    let key = rsa::RsaPublicKey::from_public_key_der(&public_key.0)
        .map_err(|_| Error::UnsupportedKey("neither a P-256 nor an RSA public key".into()))?;
    let digest = crate::keys::Digest::sha256(message);
    key.verify(
        rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
        digest.as_bytes(),
        signature,
    )
    .map_err(|_| Error::Signature)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use p256::ecdsa::signature::Signer as _;
    use pkcs8::EncodePublicKey as _;

    use super::*;

    fn spki(key: &p256::ecdsa::SigningKey) -> PublicKeyDer {
        PublicKeyDer(key.verifying_key().to_public_key_der().unwrap().into_vec())
    }

    /// A signature made by another library (RustCrypto's p256) verifies under its own key only,
    /// over its own message only, and only in DER.
    #[test]
    fn p256_signatures_of_another_signer_verify_only_as_they_were_made() {
        let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let other = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let signature: p256::ecdsa::Signature = key.sign(b"eidportal key check");
        let der = signature.to_der();
        verify_signature(&spki(&key), b"eidportal key check", der.as_bytes()).unwrap();
        assert!(verify_signature(&spki(&key), b"eidportal key checK", der.as_bytes()).is_err());
        assert!(verify_signature(&spki(&other), b"eidportal key check", der.as_bytes()).is_err());
        assert!(
            verify_signature(&spki(&key), b"eidportal key check", &signature.to_bytes()).is_err()
        );
    }
}
