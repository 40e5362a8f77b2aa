//! What the server and the app must compute identically: the signed strings, the
//! verification code, P-256 signatures, and sealing of PIN material to the server's key.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use p256::{PublicKey, SecretKey};
use sha2::{Digest, Sha256};

use crate::app::{Decision, RequestKind};

/// Why a cryptographic check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Not base64url.
    #[error("not base64url")]
    Base64,
    /// Not a P-256 public key.
    #[error("not a P-256 public key")]
    PublicKey,
    /// The signature is malformed or does not verify.
    #[error("the signature does not verify")]
    Signature,
    /// A sealed value could not be opened.
    #[error("the sealed value cannot be opened")]
    Sealed,
}

/// base64url without padding.
pub fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Decodes base64url without padding.
pub fn unb64(text: &str) -> Result<Vec<u8>, CryptoError> {
    URL_SAFE_NO_PAD
        .decode(text.as_bytes())
        .map_err(|_| CryptoError::Base64)
}

/// The short fingerprint of a hash to be signed, as both the app and the portal show it, so
/// that the user can compare them: the first 8 bytes in lower-case hex, in groups of four
/// digits (`8081 cd53 6309 5b2e`).
pub fn fingerprint(hash: &[u8]) -> String {
    hash.chunks(2)
        .take(4)
        .map(|pair| pair.iter().map(|b| format!("{b:02x}")).collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// SHA-256.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// The 4-digit verification code of a challenge: the last two bytes of SHA-256(challenge),
/// big-endian, modulo 10000 (the Smart-ID formula, reference/mobile-auth.md §7.5).
pub fn verification_code(challenge: &[u8]) -> String {
    let hash = sha256(challenge);
    let value = u16::from_be_bytes([hash[30], hash[31]]) % 10_000;
    format!("{value:04}")
}

/// The canonical approval message M (reference/mobile-auth.md §7.6): fixed fields in a fixed
/// order, binding the transaction, its kind, the decision, the challenge, the exact displayed
/// request (the hash of the payload bytes), the verification code, the device and the time.
#[allow(clippy::too_many_arguments)]
pub fn approval_message(
    txn_id: &str,
    kind: RequestKind,
    decision: Decision,
    rp_id: &str,
    challenge_b64: &str,
    payload: &[u8],
    verification_code: &str,
    device_id: &str,
    issued_at: i64,
) -> String {
    format!(
        "CONSENTID-APPROVAL-V1\ntxn={txn_id}\nkind={}\ndecision={}\nrp={rp_id}\nchallenge={challenge_b64}\nctx={}\nvc={verification_code}\ndevice={device_id}\niat={issued_at}",
        kind.as_str(),
        decision.as_str(),
        b64(&sha256(payload)),
    )
}

/// What both activation signatures cover.
pub fn activation_message(
    activation_id: &str,
    nonce: &str,
    device_public_key: &[u8],
    encrypted_pin_key: &[u8],
) -> String {
    format!(
        "CONSENTID-ACTIVATION-V1\nact={activation_id}\nnonce={nonce}\ndev={}\npkp={}",
        b64(&sha256(device_public_key)),
        b64(&sha256(encrypted_pin_key)),
    )
}

/// What a device signs to authenticate an API request.
pub fn request_message(
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> String {
    format!(
        "CONSENTID-REQ-V1\n{method}\n{path_and_query}\n{timestamp}\n{nonce}\n{}",
        b64(&sha256(body))
    )
}

/// The `Authorization` header of a device request.
pub fn authorization_header(
    device_id: &str,
    timestamp: i64,
    nonce: &str,
    signature: &[u8],
) -> String {
    format!(
        "CID-Device id={device_id},ts={timestamp},nonce={nonce},sig={}",
        b64(signature)
    )
}

/// The parts of a device `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuthorization {
    /// The device.
    pub device_id: String,
    /// When it signed.
    pub timestamp: i64,
    /// Single-use nonce.
    pub nonce: String,
    /// DER signature.
    pub signature: Vec<u8>,
}

/// Parses a device `Authorization` header; `None` when malformed.
pub fn parse_authorization(header: &str) -> Option<DeviceAuthorization> {
    let rest = header.strip_prefix("CID-Device ")?;
    let (mut id, mut ts, mut nonce, mut sig) = (None, None, None, None);
    for part in rest.split(',') {
        let (key, value) = part.trim().split_once('=')?;
        match key {
            "id" => id = Some(value.to_owned()),
            "ts" => ts = value.parse().ok(),
            "nonce" => nonce = Some(value.to_owned()),
            "sig" => sig = unb64(value).ok(),
            _ => return None,
        }
    }
    let (device_id, timestamp, nonce, signature) = (id?, ts?, nonce?, sig?);
    let safe = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    (safe(&device_id) && safe(&nonce)).then_some(DeviceAuthorization {
        device_id,
        timestamp,
        nonce,
        signature,
    })
}

/// A P-256 public key from SPKI DER.
pub fn public_key(spki_der: &[u8]) -> Result<PublicKey, CryptoError> {
    PublicKey::from_public_key_der(spki_der).map_err(|_| CryptoError::PublicKey)
}

/// SPKI DER of a P-256 public key.
pub fn public_key_der(key: &PublicKey) -> Vec<u8> {
    key.to_public_key_der()
        .map(|d| d.as_bytes().to_vec())
        .unwrap_or_default()
}

/// ECDSA-SHA256 signature, DER.
pub fn sign(key: &SecretKey, message: &[u8]) -> Vec<u8> {
    let signature: DerSignature = SigningKey::from(key).sign(message);
    signature.as_bytes().to_vec()
}

/// Verifies an ECDSA-SHA256 DER signature with an SPKI DER public key.
pub fn verify(spki_der: &[u8], message: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
    let key = VerifyingKey::from(public_key(spki_der)?);
    let signature = DerSignature::try_from(signature).map_err(|_| CryptoError::Signature)?;
    key.verify(message, &signature)
        .map_err(|_| CryptoError::Signature)
}

const SEAL_INFO: &[u8] = b"consentid-seal-v1";

fn seal_key(shared: &[u8], ephemeral: &[u8], aad: &[u8]) -> Result<Aes256Gcm, CryptoError> {
    let mut salt = Vec::with_capacity(ephemeral.len() + aad.len());
    salt.extend_from_slice(ephemeral);
    salt.extend_from_slice(aad);
    let hkdf = hkdf::Hkdf::<Sha256>::new(Some(&salt), shared);
    let mut key = [0u8; 32];
    hkdf.expand(SEAL_INFO, &mut key)
        .map_err(|_| CryptoError::Sealed)?;
    Aes256Gcm::new_from_slice(&key).map_err(|_| CryptoError::Sealed)
}

/// Seals `plaintext` to `recipient` (ECIES: ephemeral P-256 ECDH, HKDF-SHA256, AES-256-GCM),
/// bound to `aad`. Output: ephemeral point (65 bytes, uncompressed) || ciphertext and tag.
/// The GCM nonce can be zero because every key is used once.
pub fn seal(recipient: &PublicKey, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let ephemeral = p256::ecdh::EphemeralSecret::random(&mut rand::rngs::OsRng);
    let ephemeral_point = ephemeral.public_key().to_encoded_point(false);
    let shared = ephemeral.diffie_hellman(recipient);
    let cipher = seal_key(shared.raw_secret_bytes(), ephemeral_point.as_bytes(), aad)?;
    let sealed = cipher
        .encrypt(
            &Nonce::default(),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Sealed)?;
    let mut out = ephemeral_point.as_bytes().to_vec();
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens what [`seal`] made, given the ECDH shared secret of the recipient's key with the
/// ephemeral point (so that the recipient key may live in an HSM).
pub fn open_with(shared_secret: &[u8], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let (point, ciphertext) = split_sealed(sealed)?;
    let cipher = seal_key(shared_secret, point, aad)?;
    cipher
        .decrypt(
            &Nonce::default(),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Sealed)
}

/// The ephemeral public point of a sealed value (65 bytes, uncompressed SEC1).
pub fn split_sealed(sealed: &[u8]) -> Result<(&[u8], &[u8]), CryptoError> {
    if sealed.len() < 65 + 16 || sealed.first() != Some(&4) {
        return Err(CryptoError::Sealed);
    }
    Ok(sealed.split_at(65))
}

/// Opens a sealed value with the recipient's secret key in memory.
pub fn open(recipient: &SecretKey, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let (point, _) = split_sealed(sealed)?;
    let ephemeral = PublicKey::from_sec1_bytes(point).map_err(|_| CryptoError::Sealed)?;
    let shared = p256::ecdh::diffie_hellman(recipient.to_nonzero_scalar(), ephemeral.as_affine());
    open_with(shared.raw_secret_bytes(), sealed, aad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_key_and_the_aad() {
        let key = SecretKey::random(&mut rand::rngs::OsRng);
        let sealed = seal(&key.public_key(), b"pin proof", b"txn-1").unwrap();
        assert_eq!(open(&key, &sealed, b"txn-1").unwrap(), b"pin proof");
        assert_eq!(open(&key, &sealed, b"txn-2"), Err(CryptoError::Sealed));
        let other = SecretKey::random(&mut rand::rngs::OsRng);
        assert_eq!(open(&other, &sealed, b"txn-1"), Err(CryptoError::Sealed));
        assert_eq!(
            open(&key, &sealed[..70], b"txn-1"),
            Err(CryptoError::Sealed)
        );
    }

    #[test]
    fn signatures_verify_and_bind_the_message() {
        let key = SecretKey::random(&mut rand::rngs::OsRng);
        let der = public_key_der(&key.public_key());
        let signature = sign(&key, b"m");
        assert!(verify(&der, b"m", &signature).is_ok());
        assert!(verify(&der, b"n", &signature).is_err());
    }

    #[test]
    fn approval_messages_differ_by_kind_and_decision() {
        let m = |k, d| approval_message("t", k, d, "rp", "c", b"p", "0001", "dev", 5);
        assert_ne!(
            m(RequestKind::Login, Decision::Approve),
            m(RequestKind::Sign, Decision::Approve)
        );
        assert_ne!(
            m(RequestKind::Login, Decision::Approve),
            m(RequestKind::Login, Decision::Deny)
        );
        assert!(m(RequestKind::Login, Decision::Deny)
            .starts_with("CONSENTID-APPROVAL-V1\ntxn=t\nkind=login\ndecision=deny\n"));
    }

    #[test]
    fn verification_codes_have_four_digits() {
        for i in 0..50u8 {
            let code = verification_code(&[i; 32]);
            assert_eq!(code.len(), 4);
            assert!(code.chars().all(|c| c.is_ascii_digit()));
        }
    }

    #[test]
    fn authorization_headers_round_trip_and_reject_junk() {
        let header = authorization_header("dev-1", 42, "abc_DEF", &[1, 2, 3]);
        let parsed = parse_authorization(&header).unwrap();
        assert_eq!(
            (
                parsed.device_id.as_str(),
                parsed.timestamp,
                parsed.signature
            ),
            ("dev-1", 42, vec![1, 2, 3])
        );
        assert!(parse_authorization("Bearer x").is_none());
        assert!(parse_authorization("CID-Device id=a b,ts=1,nonce=n,sig=AQ").is_none());
        assert!(parse_authorization("CID-Device id=a,ts=x,nonce=n,sig=AQ").is_none());
    }
}
