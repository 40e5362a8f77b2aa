//! The PIN and the PIN key (DESIGN §4, reference/mobile-auth.md §7.1–7.2, option A).
//!
//! The PIN key is derived from the PIN and a salt that exists only on the device:
//! `P = HKDF-SHA256(Argon2id(PIN, salt; m = 64 MiB, t = 3, p = 4), info = "consentid-pin-v1")`,
//! read as a P-256 scalar. Its public half is known only to the server, so nothing on the
//! device can tell a right PIN from a wrong one: only the server can, and it counts.

use std::fmt;

use argon2::{Algorithm, Argon2, Params, Version};
use p256::SecretKey;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, PinRefusal};

/// Number of digits in a PIN.
pub const PIN_LENGTH: usize = 6;

const HKDF_INFO: &[u8] = b"consentid-pin-v1";

/// A PIN as typed by the user; wiped from memory when dropped, never printed.
#[derive(Clone)]
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// A new PIN being chosen at activation: exactly 6 digits, not one repeated digit, not a
    /// run of consecutive digits (reference/mobile-auth.md §7.2 rule 5).
    pub fn choose(text: &str) -> Result<Self, PinRefusal> {
        let pin = Self::enter(text)?;
        let digits: Vec<i8> = pin.0.bytes().map(|b| (b - b'0') as i8).collect();
        let steps: Vec<i8> = digits
            .windows(2)
            .filter_map(|pair| match pair {
                [a, b] => Some(b - a),
                _ => None,
            })
            .collect();
        if steps.iter().all(|&s| s == 0) {
            return Err(PinRefusal::SameDigit);
        }
        if steps.iter().all(|&s| s == 1) || steps.iter().all(|&s| s == -1) {
            return Err(PinRefusal::Sequence);
        }
        Ok(pin)
    }

    /// A PIN typed to approve a request: only its form is checked (6 digits), so that a typo
    /// does not cost one of the five attempts; whether it is right only the server knows.
    pub fn enter(text: &str) -> Result<Self, PinRefusal> {
        let text = Zeroizing::new(text.trim().to_owned());
        if text.chars().count() != PIN_LENGTH {
            return Err(PinRefusal::Length);
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PinRefusal::NotDigits);
        }
        Ok(Self(text))
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl PartialEq for Pin {
    fn eq(&self, other: &Self) -> bool {
        // Both PINs are local user input (the confirmation of a new PIN): no timing concern.
        self.0.as_str() == other.0.as_str()
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin([redacted])")
    }
}

/// The device-only salt of the PIN key: 32 random bytes.
#[derive(Clone)]
pub struct PinSalt(Zeroizing<[u8; 32]>);

impl PinSalt {
    /// A fresh random salt.
    pub fn random() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, bytes.as_mut());
        Self(bytes)
    }

    /// A salt read back from the keystore.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let array: [u8; 32] = bytes.try_into().ok()?;
        Some(Self(Zeroizing::new(array)))
    }

    /// The bytes, for the keystore.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_ref()
    }
}

impl fmt::Debug for PinSalt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PinSalt([redacted])")
    }
}

/// Argon2id cost parameters of the PIN key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinParams {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
}

impl Default for PinParams {
    /// RFC 9106 §4, second recommended option ("low memory"): m = 64 MiB, t = 3, p = 4.
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 4,
        }
    }
}

impl PinParams {
    /// Weaker parameters, for tests only: a key derived with them is not the device's key
    /// and is far cheaper to brute-force.
    pub fn dangerous_weak(memory_kib: u32, iterations: u32, parallelism: u32) -> Self {
        Self {
            memory_kib,
            iterations,
            parallelism,
        }
    }
}

/// The PIN key `P`: signs the PIN proof of each approval. Never stored; derived when the PIN
/// is typed and wiped with the value (p256's `SecretKey` zeroizes on drop).
pub struct PinKey(SecretKey);

impl PinKey {
    /// Derives the PIN key: Argon2id(PIN, salt) → HKDF-SHA256 (info `consentid-pin-v1`) → a
    /// P-256 scalar. If the 32 bytes are not a valid scalar (probability about 2^-32), the HKDF
    /// step is repeated with a counter byte appended to the info (`consentid-pin-v1` ‖ 1, ‖ 2 …).
    pub fn derive(pin: &Pin, salt: &PinSalt, params: PinParams) -> Result<Self, Error> {
        let argon_params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            Some(32),
        )
        .map_err(|e| Error::KeyDerivation(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
        let mut stretched = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(pin.as_bytes(), salt.as_bytes(), stretched.as_mut())
            .map_err(|e| Error::KeyDerivation(e.to_string()))?;
        let hkdf = hkdf::Hkdf::<Sha256>::new(None, stretched.as_ref());
        for counter in 0u8..=u8::MAX {
            let mut info = HKDF_INFO.to_vec();
            if counter > 0 {
                info.push(counter);
            }
            let mut okm = Zeroizing::new([0u8; 32]);
            hkdf.expand(&info, okm.as_mut())
                .map_err(|e| Error::KeyDerivation(e.to_string()))?;
            if let Ok(key) = SecretKey::from_slice(okm.as_ref()) {
                return Ok(Self(key));
            }
            okm.zeroize();
        }
        Err(Error::KeyDerivation(
            "no valid P-256 scalar after 256 tries".to_owned(),
        ))
    }

    /// The public PIN key, SubjectPublicKeyInfo DER (sent to the server only sealed).
    pub fn public_key_der(&self) -> Vec<u8> {
        proto::crypto::public_key_der(&self.0.public_key())
    }

    /// ECDSA-SHA256 signature (DER) over `message`; wiped when dropped, since any PIN-key
    /// signature lets its holder test PIN guesses.
    pub fn sign(&self, message: &[u8]) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(proto::crypto::sign(&self.0, message))
    }
}

impl fmt::Debug for PinKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PinKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> PinParams {
        PinParams::dangerous_weak(64, 1, 1)
    }

    #[test]
    fn new_pins_must_be_six_non_trivial_digits() {
        assert!(Pin::choose("482915").is_ok());
        assert!(
            Pin::choose(" 135790\n").is_ok(),
            "surrounding whitespace is not part of the PIN"
        );
        assert_eq!(Pin::choose("12345").unwrap_err(), PinRefusal::Length);
        assert_eq!(Pin::choose("1234567").unwrap_err(), PinRefusal::Length);
        assert_eq!(Pin::choose("12a456").unwrap_err(), PinRefusal::NotDigits);
        assert_eq!(
            Pin::choose("١٢٣٤٥٦").unwrap_err(),
            PinRefusal::NotDigits,
            "only ASCII digits"
        );
        assert_eq!(Pin::choose("000000").unwrap_err(), PinRefusal::SameDigit);
        assert_eq!(Pin::choose("777777").unwrap_err(), PinRefusal::SameDigit);
        assert_eq!(Pin::choose("123456").unwrap_err(), PinRefusal::Sequence);
        assert_eq!(Pin::choose("456789").unwrap_err(), PinRefusal::Sequence);
        assert_eq!(Pin::choose("654321").unwrap_err(), PinRefusal::Sequence);
        assert_eq!(Pin::choose("987654").unwrap_err(), PinRefusal::Sequence);
        assert!(Pin::choose("123457").is_ok());
    }

    #[test]
    fn entered_pins_are_only_checked_for_form() {
        assert!(
            Pin::enter("000000").is_ok(),
            "a trivial PIN is simply wrong; the server counts it"
        );
        assert_eq!(Pin::enter("00000").unwrap_err(), PinRefusal::Length);
        assert_eq!(Pin::enter("00000x").unwrap_err(), PinRefusal::NotDigits);
    }

    #[test]
    fn secrets_do_not_print() {
        let pin = Pin::choose("482915").unwrap();
        let salt = PinSalt::random();
        let key = PinKey::derive(&pin, &salt, fast()).unwrap();
        let printed = format!("{pin:?} {salt:?} {key:?}");
        assert!(!printed.contains("482915"));
        assert_eq!(
            printed,
            "Pin([redacted]) PinSalt([redacted]) PinKey([redacted])"
        );
    }

    #[test]
    fn the_pin_key_depends_on_pin_and_salt_only() {
        let pin = Pin::choose("482915").unwrap();
        let other_pin = Pin::choose("482916").unwrap();
        let salt = PinSalt::random();
        let other_salt = PinSalt::random();
        let key = |p: &Pin, s: &PinSalt| PinKey::derive(p, s, fast()).unwrap().public_key_der();
        assert_eq!(key(&pin, &salt), key(&pin, &salt));
        assert_ne!(key(&pin, &salt), key(&other_pin, &salt));
        assert_ne!(key(&pin, &salt), key(&pin, &other_salt));
        let restored = PinSalt::from_bytes(salt.as_bytes()).unwrap();
        assert_eq!(key(&pin, &salt), key(&pin, &restored));
    }

    #[test]
    fn the_cost_parameters_change_the_key_and_the_default_is_rfc_9106_low_memory() {
        let pin = Pin::choose("482915").unwrap();
        let salt = PinSalt::random();
        let a = PinKey::derive(&pin, &salt, fast())
            .unwrap()
            .public_key_der();
        let b = PinKey::derive(&pin, &salt, PinParams::dangerous_weak(64, 2, 1))
            .unwrap()
            .public_key_der();
        assert_ne!(a, b);
        assert_eq!(
            PinParams::default(),
            PinParams::dangerous_weak(65_536, 3, 4)
        );
        assert!(matches!(
            PinKey::derive(&pin, &salt, PinParams::dangerous_weak(1, 1, 1)),
            Err(Error::KeyDerivation(_))
        ));
    }

    #[test]
    fn pin_key_signatures_verify_under_its_public_key() {
        let key =
            PinKey::derive(&Pin::choose("482915").unwrap(), &PinSalt::random(), fast()).unwrap();
        let signature = key.sign(b"M");
        assert!(proto::crypto::verify(&key.public_key_der(), b"M", &signature).is_ok());
    }
}
