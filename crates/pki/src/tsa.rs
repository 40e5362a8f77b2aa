//! Time-stamping (RFC 3161, with RFC 5816's signing-certificate-v2): parsing requests from
//! untrusted clients, and signing tokens and building responses (reference/pades.md §3.1).
//!
//! A token is a CMS SignedData (RFC 5652) of version 3 whose encapsulated content is the DER
//! TSTInfo; its one SignerInfo carries the signed attributes content-type, message-digest and
//! signing-certificate-v2, and is signed with SHA-256 through a [`KeySigner`], so the TSA key
//! may live in software or in a PKCS#11 token. Tokens are marked qualified with the
//! esi4-qtstStatement-1 statement (EN 319 422 §9.1).

use const_oid::ObjectIdentifier;
use der::asn1::{Any, BitString, GeneralizedTime, Int, OctetString, SetOfVec};
use der::{Decode, Encode, EncodeValue, Sequence, Tagged, ValueOrd};
use sha2::{Digest as _, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::Certificate;

use domain::{Serial, UnixTime};

use crate::keys::KeySigner;
use crate::profile::{signer_algorithm, QcStatement};
use crate::{oids, Error};

/// The longest nonce echoed. RFC 3161 sets no bound; clients send 64 to 160 bits.
pub const MAX_NONCE_OCTETS: usize = 64;

/// MessageImprint (RFC 3161 §2.4.1): the hash of the data to be time-stamped.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct MessageImprint {
    /// The hash algorithm.
    pub hash_algorithm: AlgorithmIdentifierOwned,
    /// The hash.
    pub hashed_message: OctetString,
}

/// TimeStampReq (RFC 3161 §2.4.1).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct TimeStampReq {
    version: Int,
    message_imprint: MessageImprint,
    #[asn1(optional = "true")]
    req_policy: Option<ObjectIdentifier>,
    #[asn1(optional = "true")]
    nonce: Option<Int>,
    #[asn1(default = "Default::default")]
    cert_req: bool,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    extensions: Option<Vec<Extension>>,
}

/// Accuracy (RFC 3161 §2.4.2).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct Accuracy {
    /// Whole seconds.
    #[asn1(optional = "true")]
    pub seconds: Option<u32>,
    /// Milliseconds, 1 to 999.
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub millis: Option<u16>,
    /// Microseconds, 1 to 999.
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub micros: Option<u16>,
}

/// TSTInfo (RFC 3161 §2.4.2): what a token certifies.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct TstInfo {
    /// 1.
    pub version: u8,
    /// The TSA's policy.
    pub policy: ObjectIdentifier,
    /// The request's imprint, copied unchanged.
    pub message_imprint: MessageImprint,
    /// Unique per token, positive.
    pub serial_number: SerialNumber,
    /// When the token was made, UTC, whole seconds.
    pub gen_time: GeneralizedTime,
    /// How far `gen_time` may be off.
    #[asn1(optional = "true")]
    pub accuracy: Option<Accuracy>,
    /// Always false: tokens are not ordered by `gen_time` alone.
    #[asn1(default = "Default::default")]
    pub ordering: bool,
    /// The request's nonce, echoed exactly.
    #[asn1(optional = "true")]
    pub nonce: Option<Int>,
    /// The TSA's name: the directoryName of its certificate's subject.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub tsa: Option<GeneralName>,
    /// qcStatements with esi4-qtstStatement-1.
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub extensions: Option<Vec<Extension>>,
}

/// PKIStatusInfo (RFC 3161 §2.4.2, from RFC 2510).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct PkiStatusInfo {
    status: u8,
    #[asn1(optional = "true")]
    status_string: Option<Vec<String>>,
    #[asn1(optional = "true")]
    fail_info: Option<BitString>,
}

/// ContentInfo (RFC 5652 §3).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct ContentInfo {
    content_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    content: Any,
}

/// TimeStampResp (RFC 3161 §2.4.2).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct TimeStampResp {
    status: PkiStatusInfo,
    #[asn1(optional = "true")]
    time_stamp_token: Option<ContentInfo>,
}

/// EncapsulatedContentInfo (RFC 5652 §5.2).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct EncapsulatedContentInfo {
    e_content_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    e_content: Option<OctetString>,
}

/// IssuerAndSerialNumber (RFC 5652 §10.2.4).
#[derive(Clone, Debug, Eq, PartialEq, Sequence, ValueOrd)]
struct IssuerAndSerialNumber {
    issuer: Name,
    serial_number: SerialNumber,
}

/// SignerInfo (RFC 5652 §5.3) without unsigned attributes.
#[derive(Clone, Debug, Eq, PartialEq, Sequence, ValueOrd)]
struct SignerInfo {
    version: u8,
    sid: IssuerAndSerialNumber,
    digest_algorithm: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    signed_attrs: Option<SetOfVec<Attribute>>,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: OctetString,
}

/// SignedData (RFC 5652 §5.1) without CRLs.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SignedData {
    version: u8,
    digest_algorithms: SetOfVec<AlgorithmIdentifierOwned>,
    encap_content_info: EncapsulatedContentInfo,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    certificates: Option<SetOfVec<Certificate>>,
    signer_infos: SetOfVec<SignerInfo>,
}

/// IssuerSerial (RFC 5035 §4).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct IssuerSerial {
    issuer: Vec<GeneralName>,
    serial_number: SerialNumber,
}

/// ESSCertIDv2 (RFC 5035 §4); hashAlgorithm is omitted, its default being SHA-256.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct EssCertIdV2 {
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<IssuerSerial>,
}

/// SigningCertificateV2 (RFC 5035 §3).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
}

/// The hash algorithms accepted in a message imprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImprintHash {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl ImprintHash {
    fn of(oid: ObjectIdentifier) -> Option<Self> {
        match oid {
            oids::SHA256 => Some(Self::Sha256),
            oids::SHA384 => Some(Self::Sha384),
            oids::SHA512 => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The digest length in octets.
    pub fn length(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// `sha256`, `sha384` or `sha512`, for the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }
}

/// Why a request is refused: the PKIFailureInfo bit of the rejection (RFC 3161 §2.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum FailureInfo {
    /// An unrecognised or unsupported hash algorithm.
    #[error("badAlg: the hash algorithm is not SHA-256, SHA-384 or SHA-512")]
    BadAlg,
    /// A transaction not permitted or supported.
    #[error("badRequest: the request is not supported")]
    BadRequest,
    /// The data submitted has the wrong format.
    #[error("badDataFormat: the request is malformed")]
    BadDataFormat,
    /// The TSA's time source is not available.
    #[error("timeNotAvailable: the time source is not available")]
    TimeNotAvailable,
    /// The requested policy is not the TSA's.
    #[error("unacceptedPolicy: the requested policy is not this TSA's")]
    UnacceptedPolicy,
    /// The request has an extension the TSA does not support.
    #[error("unacceptedExtension: request extensions are not supported")]
    UnacceptedExtension,
    /// The request could not be handled because of a system failure.
    #[error("systemFailure: the request could not be handled")]
    SystemFailure,
}

impl FailureInfo {
    /// Every failure, in bit order.
    pub const ALL: [Self; 7] = [
        Self::BadAlg,
        Self::BadRequest,
        Self::BadDataFormat,
        Self::TimeNotAvailable,
        Self::UnacceptedPolicy,
        Self::UnacceptedExtension,
        Self::SystemFailure,
    ];

    /// The bit number in PKIFailureInfo.
    pub fn bit(self) -> u8 {
        match self {
            Self::BadAlg => 0,
            Self::BadRequest => 2,
            Self::BadDataFormat => 5,
            Self::TimeNotAvailable => 14,
            Self::UnacceptedPolicy => 15,
            Self::UnacceptedExtension => 16,
            Self::SystemFailure => 25,
        }
    }

    /// The RFC name, e.g. `badAlg`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadAlg => "badAlg",
            Self::BadRequest => "badRequest",
            Self::BadDataFormat => "badDataFormat",
            Self::TimeNotAvailable => "timeNotAvailable",
            Self::UnacceptedPolicy => "unacceptedPolicy",
            Self::UnacceptedExtension => "unacceptedExtension",
            Self::SystemFailure => "systemFailure",
        }
    }

    /// The named-bit BIT STRING with only this bit set, trailing zero bits removed (X.690
    /// §11.2.2): (unused bits, octets).
    fn bits(self) -> (u8, Vec<u8>) {
        let bit = usize::from(self.bit());
        let mut octets = vec![0u8; bit / 8 + 1];
        if let Some(last) = octets.last_mut() {
            *last = 0x80 >> (bit % 8);
        }
        (7 - (bit % 8) as u8, octets)
    }
}

/// A request that may be granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeStampRequest {
    /// The imprint, copied into the token unchanged.
    pub message_imprint: MessageImprint,
    /// Its hash algorithm.
    pub hash: ImprintHash,
    /// The nonce to echo.
    pub nonce: Option<Int>,
    /// Whether the client asked for the TSA's certificate (and chain) in the token.
    pub cert_req: bool,
}

impl ImprintHash {
    fn oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha256 => oids::SHA256,
            Self::Sha384 => oids::SHA384,
            Self::Sha512 => oids::SHA512,
        }
    }
}

/// A DER TimeStampReq (RFC 3161 §2.4.1), version 1, asking for the TSA's certificate: the
/// imprint, and the nonce (big-endian, read as a positive INTEGER) if given.
pub fn request(hash: ImprintHash, imprint: &[u8], nonce: Option<&[u8]>) -> Result<Vec<u8>, Error> {
    let nonce = match nonce {
        Some(bytes) => Some(Int::from(der::asn1::Uint::new(bytes)?)),
        None => None,
    };
    let request = TimeStampReq {
        version: Int::from(der::asn1::Uint::new(&[1])?),
        message_imprint: MessageImprint {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: hash.oid(),
                parameters: Some(Any::null()),
            },
            hashed_message: OctetString::new(imprint)?,
        },
        req_policy: None,
        nonce,
        cert_req: true,
        extensions: None,
    };
    Ok(request.to_der()?)
}

/// Decodes and checks a DER TimeStampReq (RFC 3161 §2.4.1) against the TSA's `policy`. The
/// error is the reason to send back in a rejection.
pub fn parse_request(
    der: &[u8],
    policy: &ObjectIdentifier,
) -> Result<TimeStampRequest, FailureInfo> {
    let request = TimeStampReq::from_der(der).map_err(|_| FailureInfo::BadDataFormat)?;
    if request.version.as_bytes() != [1] {
        return Err(FailureInfo::BadDataFormat);
    }
    let algorithm = &request.message_imprint.hash_algorithm;
    let hash = ImprintHash::of(algorithm.oid).ok_or(FailureInfo::BadAlg)?;
    // Parameters absent or NULL (RFC 5754 §2: both occur for the SHA-2 family).
    if algorithm
        .parameters
        .as_ref()
        .is_some_and(|p| p.tag() != der::Tag::Null || !p.value().is_empty())
    {
        return Err(FailureInfo::BadAlg);
    }
    if request.message_imprint.hashed_message.as_bytes().len() != hash.length() {
        return Err(FailureInfo::BadDataFormat);
    }
    if request
        .req_policy
        .is_some_and(|requested| requested != *policy)
    {
        return Err(FailureInfo::UnacceptedPolicy);
    }
    if request.extensions.is_some() {
        return Err(FailureInfo::UnacceptedExtension);
    }
    if request
        .nonce
        .as_ref()
        .is_some_and(|n| n.as_bytes().len() > MAX_NONCE_OCTETS)
    {
        return Err(FailureInfo::BadDataFormat);
    }
    Ok(TimeStampRequest {
        message_imprint: request.message_imprint,
        hash,
        nonce: request.nonce,
        cert_req: request.cert_req,
    })
}

/// The time-stamping unit that signs: its certificate, the issuers to include after it, its
/// key and policy.
pub struct TimeStampUnit<'a> {
    /// The TSA certificate (keyUsage digitalSignature, critical EKU id-kp-timeStamping).
    pub certificate: &'a Certificate,
    /// Its issuers up to, not including, the root; included when the client asks.
    pub issuers: &'a [Certificate],
    /// The TSA key.
    pub signer: &'a dyn KeySigner,
    /// The TSTInfo policy.
    pub policy: ObjectIdentifier,
}

fn attribute(
    oid: ObjectIdentifier,
    value: &(impl EncodeValue + Tagged),
) -> Result<Attribute, Error> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![Any::encode_from(value)?])?,
    })
}

fn sha256() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: oids::SHA256,
        parameters: None,
    }
}

/// Builds the TSTInfo of a granted request.
fn tst_info(
    unit: &TimeStampUnit<'_>,
    request: &TimeStampRequest,
    serial: &Serial,
    gen_time: UnixTime,
) -> Result<TstInfo, Error> {
    let seconds =
        u64::try_from(gen_time.0).map_err(|_| Error::Profile("time before 1970".into()))?;
    let qualified = vec![QcStatement {
        statement_id: oids::QTST_STATEMENT_1,
        statement_info: None,
    }];
    Ok(TstInfo {
        version: 1,
        policy: unit.policy,
        message_imprint: request.message_imprint.clone(),
        serial_number: SerialNumber::new(serial.as_bytes())?,
        gen_time: GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(seconds))?,
        accuracy: Some(Accuracy {
            seconds: Some(1),
            millis: None,
            micros: None,
        }),
        ordering: false,
        nonce: request.nonce.clone(),
        tsa: Some(GeneralName::DirectoryName(
            unit.certificate.tbs_certificate.subject.clone(),
        )),
        extensions: Some(vec![Extension {
            extn_id: oids::QC_STATEMENTS,
            critical: false,
            extn_value: OctetString::new(qualified.to_der()?)?,
        }]),
    })
}

/// Signs a token for `request` with serial `serial` at `gen_time` and wraps it in a `granted`
/// TimeStampResp (DER).
pub fn grant(
    unit: &TimeStampUnit<'_>,
    request: &TimeStampRequest,
    serial: &Serial,
    gen_time: UnixTime,
) -> Result<Vec<u8>, Error> {
    // 1. The content: the DER TSTInfo, encapsulated (not detached).
    let tst_der = tst_info(unit, request, serial, gen_time)?.to_der()?;
    // 2. The signed attributes (RFC 5652 §5.3; RFC 5816 §2.2.1: signing-certificate-v2 names
    //    the TSA certificate by its SHA-256 hash and issuer/serial).
    let certificate = unit.certificate;
    let ess = SigningCertificateV2 {
        certs: vec![EssCertIdV2 {
            cert_hash: OctetString::new(Sha256::digest(certificate.to_der()?).to_vec())?,
            issuer_serial: Some(IssuerSerial {
                issuer: vec![GeneralName::DirectoryName(
                    certificate.tbs_certificate.issuer.clone(),
                )],
                serial_number: certificate.tbs_certificate.serial_number.clone(),
            }),
        }],
    };
    // SetOfVec sorts: the DER SET (tag 0x31) is both what is signed and what is sent, under
    // the [0] IMPLICIT tag (RFC 5652 §5.4).
    let signed_attrs = SetOfVec::try_from(vec![
        attribute(oids::ATTR_CONTENT_TYPE, &oids::CT_TST_INFO)?,
        attribute(
            oids::ATTR_MESSAGE_DIGEST,
            &OctetString::new(Sha256::digest(&tst_der).to_vec())?,
        )?,
        attribute(oids::ATTR_SIGNING_CERTIFICATE_V2, &ess)?,
    ])?;
    // 3. The signature: SHA-256 over the attributes, by the TSA key.
    let signature = unit.signer.sign(&signed_attrs.to_der()?)?;
    let signer_info = SignerInfo {
        version: 1,
        sid: IssuerAndSerialNumber {
            issuer: certificate.tbs_certificate.issuer.clone(),
            serial_number: certificate.tbs_certificate.serial_number.clone(),
        },
        digest_algorithm: sha256(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: signer_algorithm(unit.signer)?,
        signature: OctetString::new(signature)?,
    };
    // 4. SignedData version 3: the content type is not id-data (RFC 5652 §5.1).
    let certificates = if request.cert_req {
        let mut chain = vec![certificate.clone()];
        chain.extend(unit.issuers.iter().cloned());
        Some(SetOfVec::try_from(chain)?)
    } else {
        None
    };
    let signed_data = SignedData {
        version: 3,
        digest_algorithms: SetOfVec::try_from(vec![sha256()])?,
        encap_content_info: EncapsulatedContentInfo {
            e_content_type: oids::CT_TST_INFO,
            e_content: Some(OctetString::new(tst_der)?),
        },
        certificates,
        signer_infos: SetOfVec::try_from(vec![signer_info])?,
    };
    let token = ContentInfo {
        content_type: oids::SIGNED_DATA,
        content: Any::encode_from(&signed_data)?,
    };
    let response = TimeStampResp {
        status: PkiStatusInfo {
            status: 0,
            status_string: None,
            fail_info: None,
        },
        time_stamp_token: Some(token),
    };
    Ok(response.to_der()?)
}

/// A `rejection` TimeStampResp (DER) with the failure bit and, if given, a statusString.
pub fn rejection(failure: FailureInfo, text: Option<&str>) -> Vec<u8> {
    let (unused, octets) = failure.bits();
    let response = BitString::new(unused, octets).map(|bits| TimeStampResp {
        status: PkiStatusInfo {
            status: 2,
            status_string: text.map(|t| vec![t.to_owned()]),
            fail_info: Some(bits),
        },
        time_stamp_token: None,
    });
    match response.map(|r| r.to_der()) {
        Ok(Ok(der)) => der,
        _ => rejection_by_hand(failure),
    }
}

/// A rejection without text, encoded without the DER encoder (which cannot fail here, but
/// the answer must not depend on it).
fn rejection_by_hand(failure: FailureInfo) -> Vec<u8> {
    let (unused, octets) = failure.bits();
    // SEQUENCE { SEQUENCE { INTEGER 2, BIT STRING } }: at most 4 octets of bits, so every
    // length fits in one octet.
    let bits_len = octets.len() as u8 + 1;
    let mut out = vec![
        0x30,
        bits_len + 7,
        0x30,
        bits_len + 5,
        0x02,
        0x01,
        0x02,
        0x03,
        bits_len,
        unused,
    ];
    out.extend_from_slice(&octets);
    out
}

/// A TimeStampResp read back (for tests, the fuzz target and clients of our own TSA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResponse {
    /// PKIStatus: 0 granted, 2 rejection, ...
    pub status: u8,
    /// The failure reason of a rejection.
    pub failure: Option<FailureInfo>,
    /// The token (a DER ContentInfo), as sent.
    pub token: Option<Vec<u8>>,
    /// The token's TSTInfo.
    pub tst_info: Option<TstInfo>,
}

/// Decodes a TimeStampResp. Does not verify the signature (see [`verify_token`]).
pub fn read_response(der: &[u8]) -> Result<ReadResponse, Error> {
    let response = TimeStampResp::from_der(der)?;
    let failure = match &response.status.fail_info {
        Some(bits) => {
            let raw = bits.raw_bytes();
            let set = |bit: u8| {
                raw.get(usize::from(bit / 8))
                    .is_some_and(|octet| octet & (0x80 >> (bit % 8)) != 0)
            };
            FailureInfo::ALL.into_iter().find(|f| set(f.bit()))
        }
        None => None,
    };
    let (token, tst_info) = match &response.time_stamp_token {
        Some(content_info) => {
            let signed_data: SignedData = content_info.content.decode_as()?;
            let content = signed_data
                .encap_content_info
                .e_content
                .ok_or(Error::Signature)?;
            (
                Some(content_info.to_der()?),
                Some(TstInfo::from_der(content.as_bytes())?),
            )
        }
        None => (None, None),
    };
    Ok(ReadResponse {
        status: response.status.status,
        failure,
        token,
        tst_info,
    })
}

/// Verifies a token of ours against the TSA `certificate`: version 3, id-ct-TSTInfo, the
/// message digest over the content, signing-certificate-v2 naming the certificate, and the
/// signature. Returns the TSTInfo.
pub fn verify_token(token: &[u8], certificate: &Certificate) -> Result<TstInfo, Error> {
    let content_info = ContentInfo::from_der(token)?;
    if content_info.content_type != oids::SIGNED_DATA {
        return Err(Error::Signature);
    }
    let signed_data: SignedData = content_info.content.decode_as()?;
    let content = signed_data
        .encap_content_info
        .e_content
        .as_ref()
        .ok_or(Error::Signature)?;
    if signed_data.version != 3
        || signed_data.encap_content_info.e_content_type != oids::CT_TST_INFO
    {
        return Err(Error::Signature);
    }
    let [signer_info] = signed_data.signer_infos.as_slice() else {
        return Err(Error::Signature);
    };
    let attributes = signer_info.signed_attrs.as_ref().ok_or(Error::Signature)?;
    let value = |oid: ObjectIdentifier| {
        attributes
            .iter()
            .find(|a| a.oid == oid)
            .and_then(|a| a.values.get(0))
            .cloned()
            .ok_or(Error::Signature)
    };
    if value(oids::ATTR_CONTENT_TYPE)?.decode_as::<ObjectIdentifier>()? != oids::CT_TST_INFO {
        return Err(Error::Signature);
    }
    let digest: OctetString = value(oids::ATTR_MESSAGE_DIGEST)?.decode_as()?;
    if digest.as_bytes() != &Sha256::digest(content.as_bytes())[..] {
        return Err(Error::Signature);
    }
    let ess: SigningCertificateV2 = value(oids::ATTR_SIGNING_CERTIFICATE_V2)?.decode_as()?;
    let named = ess.certs.first().ok_or(Error::Signature)?;
    if named.cert_hash.as_bytes() != &Sha256::digest(certificate.to_der()?)[..] {
        return Err(Error::Signature);
    }
    let public_key = crate::keys::PublicKeyDer(
        certificate
            .tbs_certificate
            .subject_public_key_info
            .to_der()?,
    );
    crate::verify::verify_signature(
        &public_key,
        &attributes.to_der()?,
        signer_info.signature.as_bytes(),
    )?;
    Ok(TstInfo::from_der(content.as_bytes())?)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]

    use std::sync::Arc;

    use domain::CertificateKind;

    use super::*;
    use crate::keys::{KeyAlgorithm, KeyBackend};

    /// The hand-written encoder this replaced wrote a 2-byte length for anything longer, so
    /// a 70,000-byte imprint came out as a TLV that claimed 65,535 bytes.
    #[test]
    fn requests_are_built_by_der_whatever_their_length() {
        let long = request(ImprintHash::Sha256, &[7; 70_000], Some(&[0, 0x80, 1])).unwrap();
        let decoded = TimeStampReq::from_der(&long).unwrap();
        assert_eq!(
            decoded.message_imprint.hashed_message.as_bytes().len(),
            70_000
        );
        assert_eq!(decoded.nonce.unwrap().as_bytes(), &[0, 0x80, 1]);
        assert!(decoded.cert_req);
        let policy = ObjectIdentifier::new_unwrap("1.2.3.4");
        let parsed = parse_request(
            &request(ImprintHash::Sha256, &[7; 32], None).unwrap(),
            &policy,
        )
        .unwrap();
        assert_eq!(parsed.message_imprint.hashed_message.as_bytes(), &[7; 32]);
    }
    use crate::profile::{
        self, CertificateRequest, Issuer, IssuerUrls, OrganizationName, ProviderPolicy,
    };
    use crate::{MasterKey, SoftwareKeyBackend};

    /// `openssl ts -query -data data.txt -sha256 -cert` (OpenSSL 3.0): a nonce of 9 octets
    /// whose first is a zero (the random value has its high bit set).
    const OPENSSL_SHA256_CERT: &str = "30440201013031300d060960864801650304020105000420a628889052fab7e842995956674ef112241c8d0b99b9501970e0bf3d064ee4ef020900a71b57f8ba74191f0101ff";
    /// `openssl ts -query -data data.txt -sha512 -no_nonce`.
    const OPENSSL_SHA512_NO_NONCE: &str = "30560201013051300d060960864801650304020305000440450508d3a4efe8cfd3d86f7efa01ef44ba67c494157cb8336e6b7a943ab18b2529027f880297e59a2e56831873623032822edaa95bfdd4c221f3fe536d32df99";

    const POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.55016.1.3.1");
    const NOW: UnixTime = UnixTime(1_795_577_673);

    struct Fixture {
        tsa: Certificate,
        issuer: Certificate,
        signer: Arc<dyn KeySigner>,
    }

    fn name(common_name: &str) -> OrganizationName {
        OrganizationName {
            country: "RS".into(),
            organization: "eidportal test".into(),
            organization_identifier: "VATRS-000000000".into(),
            common_name: common_name.into(),
        }
    }

    /// A CA and a TSA certificate under it, issued with the real profile.
    fn fixture(algorithm: KeyAlgorithm) -> Fixture {
        let backend = SoftwareKeyBackend::new(MasterKey::generate());
        let policy = ProviderPolicy {
            qualified_policy: ObjectIdentifier::new_unwrap("1.3.6.1.4.1.55016.1.2.1"),
            device_policy: ObjectIdentifier::new_unwrap("1.3.6.1.4.1.55016.1.2.2"),
            timestamp_policy: POLICY,
            cps_url: "http://pki.example/cps".into(),
            pds: vec![],
            retention_years: 10,
        };
        let ca_key = backend.generate("ca", algorithm).unwrap();
        let ca_signer = backend.open(&ca_key.reference).unwrap();
        let ca_subject = name("Test CA").name().unwrap();
        let not_after = NOW.plus_calendar_years(20);
        let ca_request = CertificateRequest {
            kind: CertificateKind::RootCa,
            serial: Serial::from_random(rand::random()),
            subject: ca_subject.clone(),
            public_key: &ca_key.public_key,
            not_before: NOW,
            not_after,
        };
        let self_issuer = Issuer {
            name: ca_subject,
            key_identifier: Vec::new(),
            not_after,
            urls: None,
            signer: ca_signer.as_ref(),
        };
        let issuer = profile::issue(&ca_request, &self_issuer, &policy)
            .unwrap()
            .parse()
            .unwrap();
        let tsa_key = backend.generate("tsa", algorithm).unwrap();
        let urls = IssuerUrls {
            ocsp: "http://pki.example/ocsp".into(),
            ca_issuers: "http://pki.example/pki/ca.crt".into(),
            crl: "http://pki.example/pki/ca.crl".into(),
        };
        let tsa_request = CertificateRequest {
            kind: CertificateKind::TimeStamping,
            serial: Serial::from_random(rand::random()),
            subject: name("Test TSA").name().unwrap(),
            public_key: &tsa_key.public_key,
            not_before: NOW,
            not_after: NOW.plus_calendar_years(5),
        };
        let ca_issuer = Issuer::from_certificate(&issuer, Some(urls), ca_signer.as_ref()).unwrap();
        let tsa = profile::issue(&tsa_request, &ca_issuer, &policy)
            .unwrap()
            .parse()
            .unwrap();
        Fixture {
            tsa,
            issuer,
            signer: backend.open(&tsa_key.reference).unwrap(),
        }
    }

    fn issue(fixture: &Fixture, request: &TimeStampRequest) -> (Vec<u8>, ReadResponse) {
        let unit = TimeStampUnit {
            certificate: &fixture.tsa,
            issuers: std::slice::from_ref(&fixture.issuer),
            signer: fixture.signer.as_ref(),
            policy: POLICY,
        };
        let serial = Serial::from_random(rand::random());
        let der = grant(&unit, request, &serial, NOW).unwrap();
        let read = read_response(&der).unwrap();
        let tst = read.tst_info.as_ref().unwrap();
        assert_eq!(tst.serial_number.as_bytes(), serial.as_bytes());
        (der, read)
    }

    /// A request built field by field.
    struct Req {
        version: u8,
        hash: ObjectIdentifier,
        parameters: Option<Any>,
        length: usize,
        policy: Option<ObjectIdentifier>,
        nonce: Option<Vec<u8>>,
        extensions: Option<Vec<Extension>>,
    }

    impl Default for Req {
        fn default() -> Self {
            Self {
                version: 1,
                hash: oids::SHA256,
                parameters: None,
                length: 32,
                policy: None,
                nonce: None,
                extensions: None,
            }
        }
    }

    impl Req {
        fn der(&self) -> Vec<u8> {
            TimeStampReq {
                version: Int::new(&[self.version]).unwrap(),
                message_imprint: MessageImprint {
                    hash_algorithm: AlgorithmIdentifierOwned {
                        oid: self.hash,
                        parameters: self.parameters.clone(),
                    },
                    hashed_message: OctetString::new(vec![0x5a; self.length]).unwrap(),
                },
                req_policy: self.policy,
                nonce: self.nonce.as_ref().map(|n| Int::new(n).unwrap()),
                cert_req: false,
                extensions: self.extensions.clone(),
            }
            .to_der()
            .unwrap()
        }

        fn parse(&self) -> Result<TimeStampRequest, FailureInfo> {
            parse_request(&self.der(), &POLICY)
        }
    }

    #[test]
    fn an_openssl_request_gets_a_token_that_verifies_with_the_nonce_echoed() {
        for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa3072] {
            let fixture = fixture(algorithm);
            let der = hex::decode(OPENSSL_SHA256_CERT).unwrap();
            let request = parse_request(&der, &POLICY).unwrap();
            assert_eq!(request.hash, ImprintHash::Sha256);
            assert!(request.cert_req);
            let (response, read) = issue(&fixture, &request);
            assert_eq!((read.status, read.failure), (0, None));
            let tst = verify_token(read.token.as_ref().unwrap(), &fixture.tsa).unwrap();
            assert_eq!(Some(&tst), read.tst_info.as_ref());
            // The nonce: the very INTEGER of the request, leading zero included.
            let nonce_tlv = hex::decode("020900a71b57f8ba74191f").unwrap();
            assert_eq!(tst.nonce.as_ref().unwrap().to_der().unwrap(), nonce_tlv);
            assert!(response
                .windows(nonce_tlv.len())
                .any(|w| w == nonce_tlv.as_slice()));
            // The imprint, copied unchanged.
            assert_eq!(
                tst.message_imprint.to_der().unwrap(),
                der[5..5 + 0x33].to_vec()
            );
            assert_eq!(tst.version, 1);
            assert_eq!(tst.policy, POLICY);
            assert!(!tst.ordering);
            assert_eq!(tst.accuracy.as_ref().and_then(|a| a.seconds), Some(1));
            assert_eq!(tst.gen_time.to_unix_duration().as_secs(), NOW.0 as u64);
            assert_eq!(
                tst.tsa,
                Some(GeneralName::DirectoryName(
                    fixture.tsa.tbs_certificate.subject.clone()
                ))
            );
            // Qualified: qcStatements with only esi4-qtstStatement-1.
            let extensions = tst.extensions.as_ref().unwrap();
            assert_eq!(extensions.len(), 1);
            assert_eq!(
                (extensions[0].extn_id, extensions[0].critical),
                (oids::QC_STATEMENTS, false)
            );
            let statements: Vec<QcStatement> =
                Vec::from_der(extensions[0].extn_value.as_bytes()).unwrap();
            assert_eq!(
                statements,
                vec![QcStatement {
                    statement_id: oids::QTST_STATEMENT_1,
                    statement_info: None
                }]
            );
            // certReq: the TSA certificate and its issuer are in the token.
            let token = ContentInfo::from_der(read.token.as_ref().unwrap()).unwrap();
            let signed_data: SignedData = token.content.decode_as().unwrap();
            let certificates = signed_data.certificates.unwrap();
            assert_eq!(certificates.len(), 2);
            assert!(
                certificates.iter().any(|c| c == &fixture.tsa)
                    && certificates.iter().any(|c| c == &fixture.issuer)
            );
            assert_eq!(
                signed_data.signer_infos.as_slice()[0].signature_algorithm,
                signer_algorithm(fixture.signer.as_ref()).unwrap()
            );
        }
    }

    #[test]
    fn without_cert_req_or_nonce_the_token_has_neither() {
        let fixture = fixture(KeyAlgorithm::EcdsaP256);
        let request =
            parse_request(&hex::decode(OPENSSL_SHA512_NO_NONCE).unwrap(), &POLICY).unwrap();
        assert_eq!(
            (request.hash, request.cert_req, request.nonce.is_none()),
            (ImprintHash::Sha512, false, true)
        );
        let (_, read) = issue(&fixture, &request);
        let tst = verify_token(read.token.as_ref().unwrap(), &fixture.tsa).unwrap();
        assert!(tst.nonce.is_none());
        let signed_data: SignedData = ContentInfo::from_der(read.token.as_ref().unwrap())
            .unwrap()
            .content
            .decode_as()
            .unwrap();
        assert!(signed_data.certificates.is_none());
        // Another TSA certificate does not verify it.
        let other = fixture_other_tsa();
        assert!(verify_token(read.token.as_ref().unwrap(), &other).is_err());
    }

    fn fixture_other_tsa() -> Certificate {
        fixture(KeyAlgorithm::EcdsaP256).tsa
    }

    #[test]
    fn each_hash_needs_its_own_length() {
        for (hash, length, parsed) in [
            (oids::SHA256, 32, ImprintHash::Sha256),
            (oids::SHA384, 48, ImprintHash::Sha384),
            (oids::SHA512, 64, ImprintHash::Sha512),
        ] {
            assert_eq!(
                Req {
                    hash,
                    length,
                    ..Req::default()
                }
                .parse()
                .map(|r| r.hash),
                Ok(parsed)
            );
            for wrong in [0, 20, length - 1, length + 1] {
                assert_eq!(
                    Req {
                        hash,
                        length: wrong,
                        ..Req::default()
                    }
                    .parse(),
                    Err(FailureInfo::BadDataFormat),
                    "{hash} with {wrong} octets"
                );
            }
        }
        // NULL parameters are as good as none; anything else is not SHA-2 as we know it.
        let null = Some(Any::from(der::asn1::Null));
        assert!(Req {
            parameters: null,
            ..Req::default()
        }
        .parse()
        .is_ok());
        let odd = Some(Any::encode_from(&1u8).unwrap());
        assert_eq!(
            Req {
                parameters: odd,
                ..Req::default()
            }
            .parse(),
            Err(FailureInfo::BadAlg)
        );
    }

    #[test]
    fn bad_requests_get_their_failure_bit() {
        let sha1 = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
        let md5 = ObjectIdentifier::new_unwrap("1.2.840.113549.2.5");
        let extension = Extension {
            extn_id: oids::OCSP_NONCE,
            critical: false,
            extn_value: OctetString::new(vec![4, 0]).unwrap(),
        };
        let cases = [
            (
                "version 2",
                Req {
                    version: 2,
                    ..Req::default()
                },
                FailureInfo::BadDataFormat,
            ),
            (
                "version 0",
                Req {
                    version: 0,
                    ..Req::default()
                },
                FailureInfo::BadDataFormat,
            ),
            (
                "SHA-1",
                Req {
                    hash: sha1,
                    length: 20,
                    ..Req::default()
                },
                FailureInfo::BadAlg,
            ),
            (
                "MD5",
                Req {
                    hash: md5,
                    length: 16,
                    ..Req::default()
                },
                FailureInfo::BadAlg,
            ),
            (
                "wrong length",
                Req {
                    length: 20,
                    ..Req::default()
                },
                FailureInfo::BadDataFormat,
            ),
            (
                "another policy",
                Req {
                    policy: Some(oids::NCP),
                    ..Req::default()
                },
                FailureInfo::UnacceptedPolicy,
            ),
            (
                "an extension",
                Req {
                    extensions: Some(vec![extension]),
                    ..Req::default()
                },
                FailureInfo::UnacceptedExtension,
            ),
            (
                "a huge nonce",
                Req {
                    nonce: Some(vec![0x11; MAX_NONCE_OCTETS + 1]),
                    ..Req::default()
                },
                FailureInfo::BadDataFormat,
            ),
        ];
        for (what, request, failure) in cases {
            assert_eq!(request.parse(), Err(failure), "{what}");
        }
        assert!(Req {
            policy: Some(POLICY),
            nonce: Some(vec![0x11; MAX_NONCE_OCTETS]),
            ..Req::default()
        }
        .parse()
        .is_ok());

        let valid = hex::decode(OPENSSL_SHA256_CERT).unwrap();
        let mut trailing = valid.clone();
        trailing.push(0);
        let mut random = vec![0u8; 300];
        for (i, b) in random.iter_mut().enumerate() {
            *b = (i * 7919 % 251) as u8;
        }
        let mut long_form = valid.clone();
        long_form.splice(1..2, [0x81, 0x44]);
        for (what, der) in [
            ("empty", vec![]),
            ("truncated", valid[..valid.len() / 2].to_vec()),
            ("trailing byte", trailing),
            ("garbage", random),
            ("BER length", long_form),
            ("an OCSP error response", vec![0x30, 0x03, 0x0a, 0x01, 0x01]),
        ] {
            assert_eq!(
                parse_request(&der, &POLICY),
                Err(FailureInfo::BadDataFormat),
                "{what}"
            );
        }
    }

    #[test]
    fn rejections_carry_status_2_and_exactly_their_bit() {
        for failure in FailureInfo::ALL {
            for text in [None, Some("a reason")] {
                let der = rejection(failure, text);
                let read = read_response(&der).unwrap();
                assert_eq!(
                    (read.status, read.failure, read.token),
                    (2, Some(failure), None)
                );
                let decoded = TimeStampResp::from_der(&der).unwrap();
                assert_eq!(
                    decoded.status.status_string,
                    text.map(|t| vec![t.to_owned()])
                );
                // Only the one bit, and no trailing zero octets (DER named bits).
                let bits = decoded.status.fail_info.unwrap();
                assert_eq!(
                    bits.raw_bytes().iter().map(|b| b.count_ones()).sum::<u32>(),
                    1
                );
                assert_ne!(bits.raw_bytes().last(), Some(&0));
            }
            // The fallback encoding is the same DER as the encoder's.
            assert_eq!(
                rejection_by_hand(failure),
                rejection(failure, None),
                "{failure:?}"
            );
        }
        // badAlg is the first bit: 03 02 07 80.
        assert_eq!(
            rejection(FailureInfo::BadAlg, None),
            vec![0x30, 0x09, 0x30, 0x07, 0x02, 0x01, 0x02, 0x03, 0x02, 0x07, 0x80]
        );
    }
}
