//! OCSP (RFC 6960): parsing requests from untrusted clients, and signing responses with a
//! delegated responder (byKey ResponderID, the responder's certificate included, the nonce of
//! RFC 8954 echoed when asked).

use der::asn1::{BitString, OctetString};
use der::{Decode, Encode};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use x509_cert::ext::Extension;
use x509_cert::Certificate;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus,
    ResponderId, ResponseData, RevokedInfo, SingleResponse, Version,
};

use domain::{RevocationReason, Serial, UnixTime};

use crate::crl::crl_reason;
use crate::keys::KeySigner;
use crate::profile::signer_algorithm;
use crate::{oids, Error};

/// The most CertIDs one request may ask about.
pub const MAX_REQUESTS: usize = 16;

/// Which hash a CertID uses for the issuer name and key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertIdHash {
    /// SHA-1 (what most clients send).
    Sha1,
    /// SHA-256.
    Sha256,
}

/// One certificate a client asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertQuery {
    /// The CertID as the client sent it; the response repeats it (RFC 6960 §4.2.1).
    pub cert_id: CertId,
    /// The DER of the plain request asking about this CertID alone ([`plain_request`]): the
    /// cache key, the same whatever else the client's request carried, and the very bytes of a
    /// client that sent the plain form.
    pub plain_request_der: Vec<u8>,
    /// The hash algorithm.
    pub hash: CertIdHash,
    /// The serial if it has the form of ours; `None` means it cannot be one we issued.
    pub serial: Option<Serial>,
}

/// A decoded OCSP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRequest {
    /// The certificates asked about, 1 to [`MAX_REQUESTS`].
    pub queries: Vec<CertQuery>,
    /// The nonce to echo.
    pub nonce: Option<Vec<u8>>,
}

/// Why a request is malformed (answered with `malformedRequest`, RFC 6960 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not a DER OCSPRequest.
    #[error("not a DER-encoded OCSP request")]
    NotDer,
    /// No CertID, or too many.
    #[error("an OCSP request must ask about 1 to 16 certificates")]
    Count,
    /// A CertID hash we do not support.
    #[error("the CertID hash algorithm is neither SHA-1 nor SHA-256")]
    HashAlgorithm,
    /// A CertID hash of the wrong length.
    #[error("a CertID hash has the wrong length")]
    HashLength,
    /// A nonce outside 1..=32 octets (RFC 8954 §2.1).
    #[error("the nonce must be 1 to 32 octets")]
    Nonce,
}

/// Decodes and validates an OCSP request.
pub fn parse_request(der: &[u8]) -> Result<ParsedRequest, RequestError> {
    let request = OcspRequest::from_der(der).map_err(|_| RequestError::NotDer)?;
    let list = &request.tbs_request.request_list;
    if list.is_empty() || list.len() > MAX_REQUESTS {
        return Err(RequestError::Count);
    }
    let mut queries = Vec::with_capacity(list.len());
    for single in list {
        let cert_id = single.req_cert.clone();
        let (hash, length) = match cert_id.hash_algorithm.oid {
            oids::SHA1 => (CertIdHash::Sha1, 20),
            oids::SHA256 => (CertIdHash::Sha256, 32),
            _ => return Err(RequestError::HashAlgorithm),
        };
        if cert_id.issuer_name_hash.as_bytes().len() != length
            || cert_id.issuer_key_hash.as_bytes().len() != length
        {
            return Err(RequestError::HashLength);
        }
        let serial = Serial::from_integer_bytes(cert_id.serial_number.as_bytes());
        let plain_request_der = plain_request(&cert_id).map_err(|_| RequestError::NotDer)?;
        queries.push(CertQuery {
            cert_id,
            plain_request_der,
            hash,
            serial,
        });
    }
    let nonce = match request_nonce(&request) {
        Some(Ok(bytes)) if (1..=32).contains(&bytes.len()) => Some(bytes),
        Some(_) => return Err(RequestError::Nonce),
        None => None,
    };
    Ok(ParsedRequest { queries, nonce })
}

/// The nonce extension's value. Some clients (OpenSSL among them) put the nonce bytes in an
/// OCTET STRING inside extnValue as RFC 8954 says; accept that form only.
fn request_nonce(request: &OcspRequest) -> Option<Result<Vec<u8>, ()>> {
    let extensions = request.tbs_request.request_extensions.as_ref()?;
    let ext = extensions.iter().find(|e| e.extn_id == oids::OCSP_NONCE)?;
    Some(
        OctetString::from_der(ext.extn_value.as_bytes())
            .map(|o| o.as_bytes().to_vec())
            .map_err(|_| ()),
    )
}

/// The issuer name and key hashes of a CA, as CertIDs carry them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerHashes {
    /// SHA-1 of the subject name DER.
    pub sha1_name: Vec<u8>,
    /// SHA-1 of the subjectPublicKey bits.
    pub sha1_key: Vec<u8>,
    /// SHA-256 of the subject name DER.
    pub sha256_name: Vec<u8>,
    /// SHA-256 of the subjectPublicKey bits.
    pub sha256_key: Vec<u8>,
}

impl IssuerHashes {
    /// The hashes of a CA certificate.
    pub fn of(ca: &Certificate) -> Result<Self, Error> {
        let name = ca.tbs_certificate.subject.to_der()?;
        let key = ca
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        Ok(Self {
            sha1_name: Sha1::digest(&name).to_vec(),
            sha1_key: Sha1::digest(key).to_vec(),
            sha256_name: Sha256::digest(&name).to_vec(),
            sha256_key: Sha256::digest(key).to_vec(),
        })
    }

    /// Does this query name this issuer?
    pub fn matches(&self, query: &CertQuery) -> bool {
        let (name, key) = match query.hash {
            CertIdHash::Sha1 => (&self.sha1_name, &self.sha1_key),
            CertIdHash::Sha256 => (&self.sha256_name, &self.sha256_key),
        };
        query.cert_id.issuer_name_hash.as_bytes() == name.as_slice()
            && query.cert_id.issuer_key_hash.as_bytes() == key.as_slice()
    }
}

/// A DER OCSPRequest (RFC 6960 §4.1.1) for the certificate `serial` of `issuer`: one CertID
/// with SHA-1, no nonce, unsigned.
pub fn request(
    issuer: &IssuerHashes,
    serial: &x509_cert::serial_number::SerialNumber,
) -> Result<Vec<u8>, Error> {
    plain_request(&CertId {
        hash_algorithm: spki::AlgorithmIdentifierOwned {
            oid: oids::SHA1,
            parameters: Some(der::asn1::Any::null()),
        },
        issuer_name_hash: OctetString::new(issuer.sha1_name.as_slice())?,
        issuer_key_hash: OctetString::new(issuer.sha1_key.as_slice())?,
        serial_number: serial.clone(),
    })
}

/// The plain OCSPRequest asking about `cert_id` alone, in DER: one Request without
/// extensions, no requestorName, no requestExtensions (so no nonce), unsigned (RFC 6960 §4.1.1;
/// the form RFC 5019 §2.1.1 describes, and what `openssl ocsp -no_nonce` sends). DER has one
/// encoding of a value, so a request whose bytes equal this is that request.
pub fn plain_request(cert_id: &CertId) -> Result<Vec<u8>, Error> {
    let request = OcspRequest {
        tbs_request: x509_ocsp::TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: vec![x509_ocsp::Request {
                req_cert: cert_id.clone(),
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    };
    Ok(request.to_der()?)
}

/// The status of one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Issued and not revoked.
    Good,
    /// Revoked.
    Revoked {
        /// When.
        at: UnixTime,
        /// Why.
        reason: RevocationReason,
    },
    /// Never issued by this CA.
    Unknown,
}

/// A delegated responder: its certificate and key.
pub struct Responder<'a> {
    /// The responder's certificate, included in every response.
    pub certificate: &'a Certificate,
    /// The responder's key.
    pub signer: &'a dyn KeySigner,
}

fn generalized(at: UnixTime) -> Result<x509_ocsp::OcspGeneralizedTime, Error> {
    let seconds = u64::try_from(at.0).map_err(|_| Error::Profile("time before 1970".into()))?;
    let date_time = der::DateTime::from_unix_duration(std::time::Duration::from_secs(seconds))?;
    Ok(date_time.into())
}

/// Signs a successful response with one SingleResponse per `(CertID, status)`.
pub fn sign_response(
    responder: &Responder<'_>,
    answers: &[(CertId, Status)],
    this_update: UnixTime,
    next_update: UnixTime,
    nonce: Option<&[u8]>,
) -> Result<Vec<u8>, Error> {
    let mut responses = Vec::with_capacity(answers.len());
    for (cert_id, status) in answers {
        let cert_status = match status {
            Status::Good => CertStatus::good(),
            Status::Unknown => CertStatus::unknown(),
            Status::Revoked { at, reason } => CertStatus::revoked(RevokedInfo {
                revocation_time: generalized(*at)?,
                revocation_reason: (*reason != RevocationReason::Unspecified)
                    .then(|| crl_reason(*reason)),
            }),
        };
        responses.push(SingleResponse {
            cert_id: cert_id.clone(),
            cert_status,
            this_update: generalized(this_update)?,
            next_update: Some(generalized(next_update)?),
            single_extensions: None,
        });
    }
    let response_extensions = match nonce {
        Some(bytes) => Some(vec![Extension {
            extn_id: oids::OCSP_NONCE,
            critical: false,
            extn_value: OctetString::new(OctetString::new(bytes)?.to_der()?)?,
        }]),
        None => None,
    };
    let key_hash = Sha1::digest(
        responder
            .certificate
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
    );
    let data = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(OctetString::new(key_hash.to_vec())?),
        produced_at: generalized(this_update)?,
        responses,
        response_extensions,
    };
    let signature = responder.signer.sign(&data.to_der()?)?;
    let basic = BasicOcspResponse {
        tbs_response_data: data,
        signature_algorithm: signer_algorithm(responder.signer)?,
        signature: BitString::from_bytes(&signature)?,
        certs: Some(vec![responder.certificate.clone()]),
    };
    Ok(OcspResponse::successful(basic)?.to_der()?)
}

/// An unsigned error response (RFC 6960 §2.3): `malformedRequest`, `internalError`,
/// `tryLater` or `unauthorized`.
pub fn error_response(status: OcspResponseStatus) -> Vec<u8> {
    // OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED }: 30 03 0a 01 <status>
    vec![0x30, 0x03, 0x0a, 0x01, status as u8]
}

/// Reads back a response we produced: (status of each answer, nonce). For tests and for the
/// cache's expiry bookkeeping.
pub fn read_response(der: &[u8]) -> Result<(Vec<CertStatus>, Option<Vec<u8>>), Error> {
    let response = OcspResponse::from_der(der)?;
    let bytes = response.response_bytes.ok_or(Error::Signature)?;
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes())?;
    let nonce = basic.nonce().map(|n| n.0.as_bytes().to_vec());
    Ok((
        basic
            .tbs_response_data
            .responses
            .into_iter()
            .map(|r| r.cert_status)
            .collect(),
        nonce,
    ))
}
