//! PAdES signatures made in two phases, for a private key that lives elsewhere (a remote QSCD
//! reached through the CSC API), and long-term validation data added afterwards
//! (ETSI EN 319 142-1 baseline B-B, B-T, B-LT; reference/pades.md is the design note).
//!
//! 1. [`prepare`] appends revision n+1 to the PDF: an invisible signature field, the `/Sig`
//!    dictionary and a fixed placeholder, and computes the CAdES signed attributes over the
//!    `/ByteRange` digest. [`Prepared::hash_to_sign`] is what the signer signs (CSC `signHash`).
//!    The placeholder size is fixed here, before the user is asked to approve anything, so
//!    that nothing after the approval can fail for lack of room (reference/pades.md §5.7).
//! 2. Between the phases the server keeps [`Prepared::to_bytes`] in its database.
//! 3. [`finish`] checks the returned signature value against the signer certificate, wraps it
//!    (and an optional signature timestamp, B-T) in a CMS `SignedData` and writes it into the
//!    placeholder. Steps 2–3 change neither the digest nor the hash, so B-T needs no second
//!    approval.
//! 4. [`add_dss`] appends revision n+2 with the certificates and revocation data (B-LT).
//!
//! Every output starts with its input unchanged (an incremental update, ISO 32000-1 §7.5.6),
//! so earlier signatures stay valid. The PDF reader is this crate's own (`document`,
//! `syntax`, `filters`): strict, bounded in memory and time, fuzzed (`fuzz/fuzz_targets/
//! pades_prepare.rs`). Refused inputs: anything not starting with `%PDF-`, encrypted files,
//! hybrid-reference files (a table with `/XRefStm`, which pyHanko refuses to validate),
//! files whose cross-reference data would need repair, files over [`MAX_INPUT_LEN`] bytes,
//! and documents certified with "no changes allowed".

mod container;
mod document;
mod dss;
mod field;
mod filters;
mod syntax;
mod writer;

use sha2::{Digest, Sha256};

pub use document::MAX_INPUT_LEN;

/// The bytes reserved for the DER `ContentInfo` in `/Contents` (written as twice as many hex
/// digits). Enough for a chain of a few certificates plus a timestamp token with its own
/// certificates (reference/pades.md §1.2: pyHanko's default is the same 16 KiB).
pub const SIGNATURE_CAPACITY: usize = 16 * 1024;

/// Why a PDF could not be prepared, finished or extended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PadesError {
    /// The input does not start with `%PDF-`.
    #[error("the input is not a PDF file")]
    NotPdf,
    /// The PDF is damaged: its structure would need repair, which an incremental update must
    /// not rely on. The text says where.
    #[error("the PDF is damaged: {0}")]
    Corrupt(String),
    /// The PDF is encrypted (has `/Encrypt`); encrypted documents are not signed.
    #[error("the PDF is encrypted")]
    Encrypted,
    /// The PDF uses a feature this crate does not handle (hybrid-reference file, a filter
    /// other than Flate on a cross-reference or object stream, a certified document that
    /// allows no changes, ...).
    #[error("unsupported PDF: {0}")]
    Unsupported(String),
    /// The input is larger than [`MAX_INPUT_LEN`], or decoding its streams would exceed the
    /// decoding budget.
    #[error("the PDF is too large")]
    TooLarge,
    /// The field name is empty, too long, or contains a period or a control character.
    #[error("invalid signature field name {0:?}")]
    InvalidFieldName(String),
    /// The signing time cannot be written as a PDF date (years 1–9999).
    #[error("signing time {0} is out of range")]
    InvalidSigningTime(i64),
    /// The certificate chain is empty, a certificate does not parse, or the signer's key does
    /// not suit the signature algorithm.
    #[error("invalid certificate chain: {0}")]
    InvalidCertificate(String),
    /// The signature value does not verify with the signer certificate's key over the signed
    /// attributes (or is not in the expected encoding: DER for ECDSA).
    #[error("the signature value does not verify")]
    BadSignature,
    /// The timestamp token is not a DER TimeStampToken over SHA-256 of the signature value.
    #[error("invalid timestamp token: {0}")]
    InvalidTimestamp(String),
    /// The CMS container does not fit the placeholder reserved by [`prepare`].
    #[error("the signature container needs {size} bytes but only {reserved} are reserved")]
    SignatureTooLarge {
        /// Bytes needed.
        size: usize,
        /// Bytes reserved ([`SIGNATURE_CAPACITY`]).
        reserved: usize,
    },
    /// The bytes given to [`Prepared::from_bytes`] are not a prepared signature of this
    /// crate, or they were altered.
    #[error("invalid prepared signature: {0}")]
    InvalidPrepared(String),
    /// A certificate, OCSP response or CRL given to [`add_dss`] does not parse, or there is
    /// nothing to add.
    #[error("invalid validation data: {0}")]
    InvalidValidationData(String),
    /// A defect of this crate (an internal check failed); the input is not to blame.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The signature algorithm of the signer's key; its OID goes into `SignerInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// ECDSA on P-256 with SHA-256: ecdsa-with-SHA256 1.2.840.10045.4.3.2, no parameters
    /// (RFC 5758 §3.2). The signature value is a DER ECDSA-Sig-Value (RFC 3279 §2.2.3).
    EcdsaSha256,
    /// RSASSA-PKCS1-v1_5 with SHA-256: sha256WithRSAEncryption 1.2.840.113549.1.1.11, NULL
    /// parameters (RFC 4055 §5). The signature value has the modulus length.
    RsaPkcs1Sha256,
}

impl SignatureAlgorithm {
    fn code(self) -> u8 {
        match self {
            Self::EcdsaSha256 => 1,
            Self::RsaPkcs1Sha256 => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::EcdsaSha256),
            2 => Some(Self::RsaPkcs1Sha256),
            _ => None,
        }
    }
}

/// A PDF with its signature revision appended and a placeholder to fill: the state between
/// [`prepare`] and [`finish`].
#[derive(Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The whole file, `/ByteRange` filled in, `/Contents` all zeros.
    pdf: Vec<u8>,
    /// Offset of the `<` opening `/Contents`.
    contents_start: usize,
    /// DER `SET OF Attribute` (tag 0x31): the signed attributes as hashed.
    signed_attributes: Vec<u8>,
    /// The chain, signer first, DER.
    chain: Vec<Vec<u8>>,
    /// The signer's algorithm.
    algorithm: SignatureAlgorithm,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("pdf_len", &self.pdf.len())
            .field("contents_start", &self.contents_start)
            .field("algorithm", &self.algorithm)
            .field("chain_len", &self.chain.len())
            .finish()
    }
}

/// Magic and version of [`Prepared::to_bytes`].
const PREPARED_MAGIC: &[u8] = b"eidportal-pades-prepared-v1\n";

impl Prepared {
    /// SHA-256 over the DER signed attributes (RFC 5652 §5.4): the value the signer signs
    /// (CSC `signHash` with `hashAlgorithmOID` 2.16.840.1.101.3.4.2.1).
    pub fn hash_to_sign(&self) -> [u8; 32] {
        Sha256::digest(&self.signed_attributes).into()
    }

    /// The signature algorithm chosen at [`prepare`].
    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    /// The `/ByteRange` digest: SHA-256 of the file without the placeholder.
    fn byte_range_digest(&self) -> Result<[u8; 32], PadesError> {
        let end = self.contents_end();
        let (Some(before), Some(after)) =
            (self.pdf.get(..self.contents_start), self.pdf.get(end..))
        else {
            return Err(PadesError::InvalidPrepared(
                "the placeholder lies outside the file".into(),
            ));
        };
        let mut hasher = Sha256::new();
        hasher.update(before);
        hasher.update(after);
        Ok(hasher.finalize().into())
    }

    fn contents_end(&self) -> usize {
        self.contents_start
            .saturating_add(SIGNATURE_CAPACITY * 2 + 2)
    }

    /// A self-describing serialisation to keep between the phases: a magic line, then
    /// length-prefixed fields (big-endian u64 lengths).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pdf.len() + 16 * 1024);
        out.extend_from_slice(PREPARED_MAGIC);
        out.push(self.algorithm.code());
        out.extend_from_slice(&(self.contents_start as u64).to_be_bytes());
        put_field(&mut out, &self.pdf);
        put_field(&mut out, &self.signed_attributes);
        out.extend_from_slice(&(self.chain.len() as u64).to_be_bytes());
        for certificate in &self.chain {
            put_field(&mut out, certificate);
        }
        out
    }

    /// Reads what [`Prepared::to_bytes`] wrote and checks it: the placeholder is intact and
    /// the signed attributes' message-digest matches the file.
    ///
    /// # Errors
    ///
    /// [`PadesError::InvalidPrepared`] for anything else, including altered bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PadesError> {
        let mut reader = FieldReader {
            rest: bytes.strip_prefix(PREPARED_MAGIC).ok_or_else(|| {
                PadesError::InvalidPrepared("not a prepared signature of this version".into())
            })?,
        };
        let algorithm = SignatureAlgorithm::from_code(reader.byte()?)
            .ok_or_else(|| PadesError::InvalidPrepared("unknown algorithm".into()))?;
        let contents_start = reader.length()?;
        let pdf = reader.field()?.to_vec();
        let signed_attributes = reader.field()?.to_vec();
        let count = reader.length()?;
        if count == 0 || count > 64 {
            return Err(PadesError::InvalidPrepared("bad chain length".into()));
        }
        let chain = (0..count)
            .map(|_| reader.field().map(<[u8]>::to_vec))
            .collect::<Result<Vec<_>, _>>()?;
        if !reader.rest.is_empty() {
            return Err(PadesError::InvalidPrepared("trailing bytes".into()));
        }
        let prepared = Self {
            pdf,
            contents_start,
            signed_attributes,
            chain,
            algorithm,
        };
        let placeholder = prepared
            .pdf
            .get(prepared.contents_start..prepared.contents_end())
            .ok_or_else(|| {
                PadesError::InvalidPrepared("the placeholder lies outside the file".into())
            })?;
        let (Some((b'<', zeros)), Some(b'>')) = (placeholder.split_first(), placeholder.last())
        else {
            return Err(PadesError::InvalidPrepared(
                "no placeholder at the recorded offset".into(),
            ));
        };
        if !zeros
            .get(..zeros.len().saturating_sub(1))
            .unwrap_or_default()
            .iter()
            .all(|&b| b == b'0')
        {
            return Err(PadesError::InvalidPrepared(
                "the placeholder is not empty".into(),
            ));
        }
        container::parse_chain(&prepared.chain, algorithm)
            .map_err(|error| PadesError::InvalidPrepared(error.to_string()))?;
        if container::message_digest(&prepared.signed_attributes)?
            != prepared.byte_range_digest()?
        {
            return Err(PadesError::InvalidPrepared(
                "the signed attributes do not match the file".into(),
            ));
        }
        Ok(prepared)
    }
}

fn put_field(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u64).to_be_bytes());
    out.extend_from_slice(field);
}

struct FieldReader<'a> {
    rest: &'a [u8],
}

impl<'a> FieldReader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], PadesError> {
        if count > self.rest.len() {
            return Err(PadesError::InvalidPrepared("truncated".into()));
        }
        let (taken, rest) = self.rest.split_at(count);
        self.rest = rest;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, PadesError> {
        self.take(1)?
            .first()
            .copied()
            .ok_or_else(|| PadesError::InvalidPrepared("truncated".into()))
    }

    fn length(&mut self) -> Result<usize, PadesError> {
        let bytes = <[u8; 8]>::try_from(self.take(8)?)
            .map_err(|_| PadesError::InvalidPrepared("truncated".into()))?;
        usize::try_from(u64::from_be_bytes(bytes))
            .map_err(|_| PadesError::InvalidPrepared("length too large".into()))
    }

    fn field(&mut self) -> Result<&'a [u8], PadesError> {
        let length = self.length()?;
        self.take(length)
    }
}

/// The claimed signing time as a PDF date (ISO 32000-1 §7.9.4) in UTC: `D:YYYYMMDDHHmmSSZ`.
fn pdf_date(unix_seconds: i64) -> Result<String, PadesError> {
    let days = unix_seconds.div_euclid(86_400);
    let seconds = unix_seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant, "chrono-compatible low-level date
    // algorithms", civil_from_days).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    if !(1..=9999).contains(&year) {
        return Err(PadesError::InvalidSigningTime(unix_seconds));
    }
    Ok(format!(
        "D:{year:04}{month:02}{day:02}{:02}{:02}{:02}Z",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    ))
}

/// Phase 1: appends the signature revision to `pdf` and computes what is to be signed.
///
/// `chain_der` is the signer certificate first, then the intermediates (the root is
/// optional); all of them go into the CMS `certificates`. `signing_time` (Unix seconds) is
/// the claimed time, written as `/M` only: PAdES forbids the signing-time attribute. The
/// field is called `field_name`, or `field_name_2`, `_3`, ... if that name is taken. The
/// placeholder holds [`SIGNATURE_CAPACITY`] bytes.
///
/// # Errors
///
/// [`PadesError::NotPdf`], [`PadesError::Corrupt`], [`PadesError::Encrypted`],
/// [`PadesError::Unsupported`] (for example a hybrid-reference file) and
/// [`PadesError::TooLarge`] for inputs this crate does not sign;
/// [`PadesError::InvalidCertificate`] if the chain is unusable or its key does not suit
/// `algorithm`; [`PadesError::InvalidFieldName`], [`PadesError::InvalidSigningTime`].
pub fn prepare(
    pdf: &[u8],
    chain_der: &[Vec<u8>],
    algorithm: SignatureAlgorithm,
    signing_time: i64,
    field_name: &str,
) -> Result<Prepared, PadesError> {
    field::check_field_name(field_name)?;
    let date = pdf_date(signing_time)?;
    let chain = container::parse_chain(chain_der, algorithm)?;
    let signer = chain
        .first()
        .ok_or_else(|| PadesError::Internal("empty chain".into()))?;
    let mut document = document::Document::load(pdf)?;
    let placeholder =
        field::add_signature_field(&mut document, field_name, &date, SIGNATURE_CAPACITY)?;
    // The output must read back with our own strict reader before anyone is asked to sign it.
    document::Document::load(&placeholder.pdf).map_err(|error| {
        PadesError::Internal(format!("the prepared file does not read back: {error}"))
    })?;
    let mut prepared = Prepared {
        pdf: placeholder.pdf,
        contents_start: placeholder.contents_start,
        signed_attributes: Vec::new(),
        chain: chain_der.to_vec(),
        algorithm,
    };
    let digest = prepared.byte_range_digest()?;
    prepared.signed_attributes = container::signed_attributes(&digest, signer)?;
    Ok(prepared)
}

/// SHA-256 of a signature value: the imprint of its B-T signature timestamp (RFC 3161
/// Appendix A: the timestamp covers the content octets of `SignerInfo.signature`).
pub fn timestamp_imprint(signature: &[u8]) -> [u8; 32] {
    Sha256::digest(signature).into()
}

/// Phase 2: embeds `signature` (a DER ECDSA-Sig-Value, or the RSA signature) and, for B-T,
/// `timestamp_token` (a DER RFC 3161 TimeStampToken over [`timestamp_imprint`] of
/// `signature`, embedded byte for byte as the unsigned attribute signatureTimeStampToken
/// 1.2.840.113549.1.9.16.2.14) and returns the signed PDF.
///
/// # Errors
///
/// [`PadesError::BadSignature`] if `signature` does not verify with the signer certificate
/// over the signed attributes (a raw `r‖s` ECDSA value is refused too: convert it to DER
/// first); [`PadesError::InvalidTimestamp`] if the token is not DER or covers something else;
/// [`PadesError::SignatureTooLarge`] if the container does not fit the placeholder.
pub fn finish(
    prepared: &Prepared,
    signature: &[u8],
    timestamp_token: Option<&[u8]>,
) -> Result<Vec<u8>, PadesError> {
    let chain = container::parse_chain(&prepared.chain, prepared.algorithm)?;
    let signer = chain
        .first()
        .ok_or_else(|| PadesError::Internal("empty chain".into()))?;
    container::verify(
        signer,
        prepared.algorithm,
        &prepared.signed_attributes,
        signature,
    )?;
    let timestamp = timestamp_token
        .map(|token| container::check_timestamp(token, signature))
        .transpose()?;
    let content_info = container::signed_data(
        &chain,
        prepared.algorithm,
        &prepared.signed_attributes,
        signature,
        timestamp,
    )?;
    if content_info.len() > SIGNATURE_CAPACITY {
        return Err(PadesError::SignatureTooLarge {
            size: content_info.len(),
            reserved: SIGNATURE_CAPACITY,
        });
    }
    let mut pdf = prepared.pdf.clone();
    let hex_start = prepared.contents_start + 1;
    let slot = pdf
        .get_mut(hex_start..hex_start + content_info.len() * 2)
        .ok_or_else(|| PadesError::Internal("the placeholder lies outside the file".into()))?;
    let digit = |nibble: u8| {
        if nibble < 10 {
            b'0' + nibble
        } else {
            b'A' + nibble - 10
        }
    };
    for (pair, byte) in slot.chunks_exact_mut(2).zip(&content_info) {
        pair.copy_from_slice(&[digit(byte >> 4), digit(byte & 0x0f)]);
    }
    Ok(pdf)
}

/// B-LT: appends a revision whose catalog `/DSS` lists `certificates`, `ocsp_responses` (DER
/// OCSPResponse, with responseBytes) and `crls` (DER CertificateList), one stream each,
/// besides whatever an existing DSS already lists. Each item must parse as its type;
/// duplicates within one call are written once. No `/VRI` is written.
///
/// # Errors
///
/// The reading errors of [`prepare`]; [`PadesError::InvalidValidationData`] for an item that
/// does not parse or when all three lists are empty.
pub fn add_dss(
    signed_pdf: &[u8],
    certificates: &[Vec<u8>],
    ocsp_responses: &[Vec<u8>],
    crls: &[Vec<u8>],
) -> Result<Vec<u8>, PadesError> {
    dss::add_dss(signed_pdf, certificates, ocsp_responses, crls)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]

    use super::*;

    #[test]
    fn pdf_dates_are_utc() {
        assert_eq!(pdf_date(0).unwrap(), "D:19700101000000Z");
        assert_eq!(pdf_date(1_764_040_668).unwrap(), "D:20251125031748Z");
        assert_eq!(pdf_date(951_782_400).unwrap(), "D:20000229000000Z");
        assert_eq!(pdf_date(-1).unwrap(), "D:19691231235959Z");
        assert!(matches!(
            pdf_date(i64::MAX / 2),
            Err(PadesError::InvalidSigningTime(_))
        ));
    }

    #[test]
    fn garbage_is_not_a_prepared_signature() {
        for bytes in [
            &b""[..],
            b"eidportal-pades-prepared-v1\n",
            b"eidportal-pades-prepared-v1\n\x01\xff\xff\xff\xff\xff\xff\xff\xff",
        ] {
            assert!(matches!(
                Prepared::from_bytes(bytes),
                Err(PadesError::InvalidPrepared(_))
            ));
        }
    }
}
