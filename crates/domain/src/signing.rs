//! Rules of remote signing at sole control (SCAL2, DESIGN §6): what an authorisation covers,
//! how long its signature activation data (SAD) lives, and when a signing call may spend it.

use std::str::FromStr;

use crate::certificate::UnknownName;
use crate::time::UnixTime;

/// Seconds a SAD stays usable after it was handed out.
pub const SAD_LIFETIME: i64 = 5 * 60;

/// The most signatures one authorisation may cover (`multisign` of the CSC API).
pub const MAX_SIGNATURES: usize = 100;

/// Where an authorisation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationStatus {
    /// Waiting for the user's answer in ConsentID.
    Pending,
    /// Approved; its SAD was handed out and may be spent once.
    Authorized,
    /// Its SAD was spent by a signing call.
    Consumed,
    /// Denied, expired, cancelled or failed: it never yields a SAD.
    Refused,
}

impl AuthorizationStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Authorized => "authorized",
            Self::Consumed => "consumed",
            Self::Refused => "refused",
        }
    }
}

impl FromStr for AuthorizationStatus {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => Self::Pending,
            "authorized" => Self::Authorized,
            "consumed" => Self::Consumed,
            "refused" => Self::Refused,
            other => return Err(UnknownName(other.to_owned())),
        })
    }
}

/// A digest algorithm a hash to be signed may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-256, `2.16.840.1.101.3.4.2.1`.
    Sha256,
    /// SHA-384, `2.16.840.1.101.3.4.2.2`.
    Sha384,
    /// SHA-512, `2.16.840.1.101.3.4.2.3`.
    Sha512,
}

impl HashAlgorithm {
    /// From its dotted OID; `None` for any other (weaker or unknown) algorithm.
    pub fn from_oid(oid: &str) -> Option<Self> {
        match oid {
            "2.16.840.1.101.3.4.2.1" => Some(Self::Sha256),
            "2.16.840.1.101.3.4.2.2" => Some(Self::Sha384),
            "2.16.840.1.101.3.4.2.3" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// Its dotted OID.
    pub fn oid(self) -> &'static str {
        match self {
            Self::Sha256 => "2.16.840.1.101.3.4.2.1",
            Self::Sha384 => "2.16.840.1.101.3.4.2.2",
            Self::Sha512 => "2.16.840.1.101.3.4.2.3",
        }
    }

    /// Length of its digests in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }
}

/// How a hash is to be signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureScheme {
    /// ECDSA; the signature is DER-encoded (`Ecdsa-Sig-Value`).
    Ecdsa,
    /// RSASSA-PKCS1-v1_5.
    RsaPkcs1,
    /// RSASSA-PSS, MGF1 with the same hash, salt as long as the hash.
    RsaPss,
}

/// Why an authorisation request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizeRefusal {
    /// No hashes: SCAL2 binds the SAD to them, so they are required.
    #[error("empty hash array")]
    NoHashes,
    /// `numSignatures` differs from the number of hashes.
    #[error("numSignatures does not match the number of hashes")]
    CountMismatch,
    /// More than [`MAX_SIGNATURES`].
    #[error("numbers of signatures is too high")]
    TooMany,
    /// A hash does not have the algorithm's length.
    #[error("invalid digest value length")]
    WrongLength,
}

/// Checks what `credentials/authorize` asks to bind a SAD to.
pub fn check_authorization_request(
    num_signatures: usize,
    hashes: &[Vec<u8>],
    algorithm: HashAlgorithm,
) -> Result<(), AuthorizeRefusal> {
    if hashes.is_empty() {
        return Err(AuthorizeRefusal::NoHashes);
    }
    if hashes.len() > MAX_SIGNATURES || num_signatures > MAX_SIGNATURES {
        return Err(AuthorizeRefusal::TooMany);
    }
    if num_signatures != hashes.len() {
        return Err(AuthorizeRefusal::CountMismatch);
    }
    if hashes.iter().any(|h| h.len() != algorithm.digest_len()) {
        return Err(AuthorizeRefusal::WrongLength);
    }
    Ok(())
}

/// Why a SAD may not be spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SadRefusal {
    /// Unknown, another user's, another credential's, or never approved.
    #[error("invalid parameter SAD")]
    Invalid,
    /// Already spent by an earlier signing call.
    #[error("the SAD was already used")]
    Spent,
    /// Older than [`SAD_LIFETIME`].
    #[error("SAD expired")]
    Expired,
    /// A hash (or a repetition of one) was not authorised with this SAD.
    #[error("hash is not authorized by the SAD")]
    HashNotAuthorized,
    /// The hash algorithm differs from the authorised one.
    #[error("the hash algorithm is not the authorised one")]
    AlgorithmMismatch,
}

/// What a signing call presents against what was authorised.
#[derive(Debug, Clone, Copy)]
pub struct SadUse<'a> {
    /// The authorisation's state.
    pub status: AuthorizationStatus,
    /// When its SAD stops being usable.
    pub expires_at: UnixTime,
    /// The authorised algorithm.
    pub authorized_algorithm: HashAlgorithm,
    /// The authorised hashes, in order.
    pub authorized: &'a [Vec<u8>],
    /// The algorithm of the hashes presented now.
    pub algorithm: HashAlgorithm,
    /// The hashes presented now.
    pub requested: &'a [Vec<u8>],
}

/// Whether a signing call may spend the SAD: it must be live, unspent, and every requested
/// hash must be an authorised one, each authorised occurrence signed at most once.
pub fn may_spend(sad: &SadUse<'_>, now: UnixTime) -> Result<(), SadRefusal> {
    match sad.status {
        AuthorizationStatus::Authorized => {}
        AuthorizationStatus::Consumed => return Err(SadRefusal::Spent),
        AuthorizationStatus::Pending | AuthorizationStatus::Refused => {
            return Err(SadRefusal::Invalid)
        }
    }
    if now >= sad.expires_at {
        return Err(SadRefusal::Expired);
    }
    if sad.algorithm != sad.authorized_algorithm {
        return Err(SadRefusal::AlgorithmMismatch);
    }
    if sad.requested.is_empty() {
        return Err(SadRefusal::HashNotAuthorized);
    }
    let mut unused: Vec<&Vec<u8>> = sad.authorized.iter().collect();
    for hash in sad.requested {
        match unused.iter().position(|h| *h == hash) {
            Some(index) => {
                unused.swap_remove(index);
            }
            None => return Err(SadRefusal::HashNotAuthorized),
        }
    }
    Ok(())
}

/// Splits the stored concatenation of equal-length hashes.
pub fn split_hashes(joined: &[u8], algorithm: HashAlgorithm) -> Option<Vec<Vec<u8>>> {
    let len = algorithm.digest_len();
    if joined.is_empty() || joined.len() % len != 0 {
        return None;
    }
    Some(joined.chunks(len).map(<[u8]>::to_vec).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(byte: u8) -> Vec<u8> {
        vec![byte; 32]
    }

    fn sad<'a>(authorized: &'a [Vec<u8>], requested: &'a [Vec<u8>]) -> SadUse<'a> {
        SadUse {
            status: AuthorizationStatus::Authorized,
            expires_at: UnixTime(1_000),
            authorized_algorithm: HashAlgorithm::Sha256,
            authorized,
            algorithm: HashAlgorithm::Sha256,
            requested,
        }
    }

    #[test]
    fn authorisation_requests_bind_a_bounded_exact_list_of_hashes() {
        let two = [h(1), h(2)];
        assert_eq!(
            check_authorization_request(2, &two, HashAlgorithm::Sha256),
            Ok(())
        );
        assert_eq!(
            check_authorization_request(0, &[], HashAlgorithm::Sha256),
            Err(AuthorizeRefusal::NoHashes)
        );
        assert_eq!(
            check_authorization_request(3, &two, HashAlgorithm::Sha256),
            Err(AuthorizeRefusal::CountMismatch)
        );
        assert_eq!(
            check_authorization_request(2, &two, HashAlgorithm::Sha384),
            Err(AuthorizeRefusal::WrongLength)
        );
        let many = vec![h(7); MAX_SIGNATURES + 1];
        assert_eq!(
            check_authorization_request(many.len(), &many, HashAlgorithm::Sha256),
            Err(AuthorizeRefusal::TooMany)
        );
        let max = vec![h(7); MAX_SIGNATURES];
        assert_eq!(
            check_authorization_request(max.len(), &max, HashAlgorithm::Sha256),
            Ok(())
        );
    }

    #[test]
    fn a_sad_signs_only_its_own_hashes_each_once() {
        let authorized = [h(1), h(2)];
        assert_eq!(
            may_spend(&sad(&authorized, &[h(2), h(1)]), UnixTime(10)),
            Ok(())
        );
        assert_eq!(may_spend(&sad(&authorized, &[h(1)]), UnixTime(10)), Ok(()));
        assert_eq!(
            may_spend(&sad(&authorized, &[h(3)]), UnixTime(10)),
            Err(SadRefusal::HashNotAuthorized)
        );
        assert_eq!(
            may_spend(&sad(&authorized, &[h(1), h(1)]), UnixTime(10)),
            Err(SadRefusal::HashNotAuthorized)
        );
        assert_eq!(
            may_spend(&sad(&authorized, &[]), UnixTime(10)),
            Err(SadRefusal::HashNotAuthorized)
        );
        let twice = [h(1), h(1)];
        assert_eq!(may_spend(&sad(&twice, &[h(1), h(1)]), UnixTime(10)), Ok(()));
    }

    #[test]
    fn a_sad_dies_when_spent_or_old_and_never_lives_before_approval() {
        let authorized = [h(1)];
        let live = sad(&authorized, &authorized);
        assert_eq!(may_spend(&live, UnixTime(999)), Ok(()));
        assert_eq!(may_spend(&live, UnixTime(1_000)), Err(SadRefusal::Expired));
        assert_eq!(
            may_spend(
                &SadUse {
                    status: AuthorizationStatus::Consumed,
                    ..live
                },
                UnixTime(10)
            ),
            Err(SadRefusal::Spent)
        );
        assert_eq!(
            may_spend(
                &SadUse {
                    status: AuthorizationStatus::Pending,
                    ..live
                },
                UnixTime(10)
            ),
            Err(SadRefusal::Invalid)
        );
        assert_eq!(
            may_spend(
                &SadUse {
                    status: AuthorizationStatus::Refused,
                    ..live
                },
                UnixTime(10)
            ),
            Err(SadRefusal::Invalid)
        );
        assert_eq!(
            may_spend(
                &SadUse {
                    algorithm: HashAlgorithm::Sha512,
                    ..live
                },
                UnixTime(10)
            ),
            Err(SadRefusal::AlgorithmMismatch)
        );
    }

    #[test]
    fn stored_hashes_split_back_or_are_refused() {
        assert_eq!(
            split_hashes(&[h(1), h(2)].concat(), HashAlgorithm::Sha256),
            Some(vec![h(1), h(2)])
        );
        assert_eq!(split_hashes(&[0; 33], HashAlgorithm::Sha256), None);
        assert_eq!(split_hashes(&[], HashAlgorithm::Sha256), None);
        assert_eq!(HashAlgorithm::from_oid("1.3.14.3.2.26"), None);
        assert_eq!(
            HashAlgorithm::from_oid(HashAlgorithm::Sha384.oid()),
            Some(HashAlgorithm::Sha384)
        );
    }
}
