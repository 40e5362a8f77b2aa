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
