//! P-256 multiples of the base point G by secret scalars, from a precomputed table: the public
//! key of a new software key, and the point R = k·G of each ECDSA signature by a software key.
//!
//! The p256 crate (0.13) multiplies G like any other point, building a table of G's first
//! multiples on every call and then doubling 256 times ("TODO(tarcieri): precomputed basepoint
//! tables", primeorder `MulByGenerator`); issuance makes one key and one signature per
//! certificate, and these multiplications were most of its CPU time. Here the multiples
//! j·16^i·G (i < 64, 1 ≤ j ≤ 15) are computed once per process, and k·G is the sum of one of
//! them per 4-bit digit of k: 64 additions, no doublings (the table costs 960 additions once).
//!
//! Nothing else is new: the additions are the crate's own complete formulas (Renes, Costello,
//! Batina 2015), the field and scalar arithmetic the crate's, the nonce RFC 6979's from the
//! `rfc6979` crate, the signature equation that of `ecdsa::hazmat::sign_prehashed`. Every
//! step is constant-time in the secret: each digit reads all 15 entries of its row with
//! `conditional_assign`, and a zero digit adds the identity, which the addition handles without
//! a branch. The tests check the points against the crate's multiplication and the signatures
//! byte for byte against `p256::ecdsa::SigningKey` (RFC 6979 makes both deterministic).

use std::sync::OnceLock;

use p256::elliptic_curve::ops::Reduce;
use p256::elliptic_curve::point::AffineCoordinates as _;
use p256::elliptic_curve::subtle::{ConditionallySelectable as _, ConstantTimeEq as _};
use p256::elliptic_curve::{Curve as _, Field as _, FieldBytesEncoding as _, PrimeField as _};
use p256::{FieldBytes, NistP256, NonZeroScalar, ProjectivePoint, Scalar, U256};

use crate::Error;

/// 4-bit digits of a 256-bit scalar.
const WINDOWS: usize = 64;
/// Non-zero values of a digit.
const DIGITS: usize = 15;

/// Row i holds j·16^i·G for j = 1..=15. Projective: p256 0.13 offers no batch inversion, and
/// making 960 points affine one inversion at a time would cost more at start than the cheaper
/// mixed additions save.
type Table = Vec<[ProjectivePoint; DIGITS]>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut rows = Vec::with_capacity(WINDOWS);
        let mut base = ProjectivePoint::GENERATOR;
        for _ in 0..WINDOWS {
            let mut row = [ProjectivePoint::IDENTITY; DIGITS];
            let mut multiple = base;
            for slot in &mut row {
                *slot = multiple;
                multiple += base;
            }
            // Now 16·base: the next row's base.
            base = multiple;
            rows.push(row);
        }
        rows
    })
}

/// k·G.
pub(crate) fn mul_generator(k: &Scalar) -> ProjectivePoint {
    let bytes = k.to_repr(); // big-endian
    let mut sum = ProjectivePoint::IDENTITY;
    // Least significant byte first; its low digit belongs to row 0, its high digit to row 1.
    for (byte, rows) in bytes.iter().rev().zip(table().chunks_exact(2)) {
        for (digit, row) in [byte & 0x0f, byte >> 4].into_iter().zip(rows) {
            let mut term = ProjectivePoint::IDENTITY;
            for (value, entry) in (1u8..).zip(row) {
                term.conditional_assign(entry, digit.ct_eq(&value));
            }
            sum += term;
        }
    }
    sum
}

/// The public key of `secret`.
pub(crate) fn public_key(secret: &NonZeroScalar) -> Result<p256::PublicKey, Error> {
    p256::PublicKey::from_affine(mul_generator(secret).to_affine()).map_err(|_| Error::Signature)
}

/// ECDSA (FIPS 186-5 §6.4.1) over a message digest, with the nonce of RFC 6979 §3.2: what
/// `p256::ecdsa::SigningKey::sign_prehash` computes, with R = k·G from the table.
pub(crate) fn sign_prehash(secret: &NonZeroScalar, prehash: &[u8]) -> Result<p256::ecdsa::Signature, Error> {
    // bits2field (RFC 6979 §2.3.2): the leftmost 256 bits of the digest; shorter ones are
    // padded on the left, and fewer than 128 bits are refused, as the ecdsa crate does.
    if prehash.len() < 16 {
        return Err(Error::Signature);
    }
    let mut z = FieldBytes::default();
    let take = prehash.len().min(z.len());
    let offset = z.len() - take;
    for (slot, byte) in z.iter_mut().skip(offset).zip(prehash) {
        *slot = *byte;
    }
    let k_bytes = rfc6979::generate_k::<sha2::Sha256, _>(&secret.to_repr(), &NistP256::ORDER.encode_field_bytes(), &z, &[]);
    let k = Option::<Scalar>::from(Scalar::from_repr(k_bytes)).ok_or(Error::Signature)?;
    if bool::from(k.is_zero()) {
        return Err(Error::Signature);
    }
    let k_inverse = Option::<Scalar>::from(k.invert()).ok_or(Error::Signature)?;
    let z = <Scalar as Reduce<U256>>::reduce_bytes(&z);
    let r_point = mul_generator(&k).to_affine();
    let r = <Scalar as Reduce<U256>>::reduce_bytes(&r_point.x());
    let s = k_inverse * (z + r * secret.as_ref());
    // Refuses r = 0 or s = 0.
    p256::ecdsa::Signature::from_scalars(r, s).map_err(|_| Error::Signature)
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::signature::hazmat::PrehashSigner as _;
    use p256::elliptic_curve::ops::MulByGenerator as _;
    use rand::rngs::OsRng;

    use super::*;

    fn scalar(hex_be: &str) -> Scalar {
        let mut bytes = FieldBytes::default();
        bytes.copy_from_slice(&hex::decode(hex_be).unwrap());
        Option::from(Scalar::from_repr(bytes)).unwrap()
    }

    #[test]
    fn multiples_of_g_are_the_crates() {
        let mut scalars = vec![
            Scalar::ZERO,
            Scalar::ONE,
            Scalar::from(2u64),
            Scalar::from(15u64),
            Scalar::from(16u64),
            Scalar::from(17u64),
            Scalar::from(0xffff_ffffu64),
            -Scalar::ONE,
            -Scalar::from(2u64),
            -Scalar::from(16u64),
            // Every digit 0, every digit 15 (as far as below the order), alternating digits.
            scalar("8000000000000000000000000000000000000000000000000000000000000000"),
            scalar("0fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
            scalar("0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"),
            scalar("f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0"),
            scalar("0000000000000000000000000000000100000000000000000000000000000000"),
        ];
        scalars.extend((0..300).map(|_| Scalar::random(&mut OsRng)));
        for k in scalars {
            let expected = ProjectivePoint::mul_by_generator(&k).to_affine();
            assert_eq!(mul_generator(&k).to_affine(), expected, "k = {:?}", k.to_repr());
        }
    }

    #[test]
    fn signatures_are_byte_for_byte_the_crates() {
        for round in 0..100 {
            let secret = p256::SecretKey::random(&mut OsRng);
            let signing_key = p256::ecdsa::SigningKey::from(secret.clone());
            let nonzero = secret.to_nonzero_scalar();
            assert_eq!(
                public_key(&nonzero).unwrap(),
                secret.public_key(),
                "round {round}: public key"
            );
            for length in [16usize, 20, 32, 48, 64] {
                let digest: Vec<u8> = (0..length).map(|_| rand::random::<u8>()).collect();
                let ours = sign_prehash(&nonzero, &digest).unwrap();
                let theirs: p256::ecdsa::Signature = signing_key.sign_prehash(&digest).unwrap();
                assert_eq!(ours.to_bytes(), theirs.to_bytes(), "round {round}, {length}-byte digest");
            }
        }
        let secret = p256::SecretKey::random(&mut OsRng).to_nonzero_scalar();
        assert!(sign_prehash(&secret, &[7; 15]).is_err(), "digests under 128 bits are refused");
    }
}
