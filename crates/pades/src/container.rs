//! The CMS container inside `/Contents` (RFC 5652; CAdES baseline, EN 319 122-1, as PAdES uses
//! it; reference/pades.md §2, §3): the signed attributes hashed for the remote signer, the
//! check of the returned signature value, the `SignedData` and the signature timestamp.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedAttributes, SignedData, SignerIdentifier,
    SignerInfo, SignerInfos,
};
use const_oid::ObjectIdentifier;
use der::asn1::{Null, OctetString, SetOfVec};
use der::{Any, Decode, Encode, Reader, Sequence};
use sha2::{Digest, Sha256};
use spki::{AlgorithmIdentifierOwned, DecodePublicKey};
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::serial_number::SerialNumber;
use x509_cert::Certificate;

use crate::{PadesError, SignatureAlgorithm};

/// id-data (RFC 5652 §4).
const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
/// id-signedData (RFC 5652 §5.1).
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// id-contentType (RFC 5652 §11.1).
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
/// id-messageDigest (RFC 5652 §11.2).
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
/// id-aa-signingCertificateV2 (RFC 5035 §3).
const ID_AA_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
/// id-aa-signatureTimeStampToken (RFC 3161 Appendix A).
const ID_AA_SIGNATURE_TIME_STAMP_TOKEN: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.14");
/// id-ct-TSTInfo (RFC 3161 §2.4.2).
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
/// id-sha256 (RFC 5754 §2.2).
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// ecdsa-with-SHA256 (RFC 5758 §3.2).
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// sha256WithRSAEncryption (RFC 4055 §5).
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
/// id-ecPublicKey (RFC 5480 §2.1.1).
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp256r1 (RFC 5480 §2.1.1.1).
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// rsaEncryption (RFC 3279 §2.3.1).
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// IssuerSerial (RFC 5035 §4).
#[derive(Clone, Debug, Sequence)]
struct IssuerSerial {
    issuer: Vec<GeneralName>,
    serial_number: SerialNumber,
}

/// ESSCertIDv2 (RFC 5035 §4); `hashAlgorithm` is omitted because it is the SHA-256 default.
#[derive(Clone, Debug, Sequence)]
struct EssCertIdV2 {
    cert_hash: OctetString,
    issuer_serial: IssuerSerial,
}

/// SigningCertificateV2 (RFC 5035 §3), without policies.
#[derive(Clone, Debug, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
}

/// MessageImprint (RFC 3161 §2.4.1).
#[derive(Clone, Debug, Sequence)]
struct MessageImprint {
    hash_algorithm: AlgorithmIdentifierOwned,
    hashed_message: OctetString,
}

fn encoding(error: der::Error) -> PadesError {
    PadesError::Internal(format!("DER encoding: {error}"))
}

fn sha256_identifier() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ID_SHA256,
        parameters: None,
    }
}

/// Parses the chain and checks that the signer certificate's key suits `algorithm`.
pub(crate) fn parse_chain(
    chain_der: &[Vec<u8>],
    algorithm: SignatureAlgorithm,
) -> Result<Vec<Certificate>, PadesError> {
    if chain_der.is_empty() {
        return Err(PadesError::InvalidCertificate(
            "the certificate chain is empty".into(),
        ));
    }
    let chain = chain_der
        .iter()
        .enumerate()
        .map(|(index, der)| {
            Certificate::from_der(der).map_err(|error| {
                PadesError::InvalidCertificate(format!("certificate {index} of the chain: {error}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let signer = chain
        .first()
        .ok_or_else(|| PadesError::InvalidCertificate("the certificate chain is empty".into()))?;
    let key = &signer.tbs_certificate.subject_public_key_info.algorithm;
    let suits = match algorithm {
        SignatureAlgorithm::EcdsaSha256 => {
            key.oid == ID_EC_PUBLIC_KEY
                && key
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                    == Some(SECP256R1)
        }
        SignatureAlgorithm::RsaPkcs1Sha256 => key.oid == RSA_ENCRYPTION,
    };
    if !suits {
        return Err(PadesError::InvalidCertificate(format!(
            "the signer certificate's key does not suit {algorithm:?}"
        )));
    }
    Ok(chain)
}

/// The signed attributes (reference/pades.md §2): content-type id-data, message-digest
/// `digest`, signing-certificate-v2 of `signer`; no signing-time (EN 319 142-1). Returned as
/// the DER `SET OF Attribute` (tag 0x31) that RFC 5652 §5.4 hashes.
pub(crate) fn signed_attributes(
    digest: &[u8; 32],
    signer: &Certificate,
) -> Result<Vec<u8>, PadesError> {
    let signer_der = signer.to_der().map_err(encoding)?;
    let signing_certificate = SigningCertificateV2 {
        certs: vec![EssCertIdV2 {
            cert_hash: OctetString::new(Sha256::digest(&signer_der).to_vec()).map_err(encoding)?,
            issuer_serial: IssuerSerial {
                issuer: vec![GeneralName::DirectoryName(
                    signer.tbs_certificate.issuer.clone(),
                )],
                serial_number: signer.tbs_certificate.serial_number.clone(),
            },
        }],
    };
    let attributes: SignedAttributes = SetOfVec::try_from(vec![
        attribute(
            ID_CONTENT_TYPE,
            Any::encode_from(&ID_DATA).map_err(encoding)?,
        )?,
        attribute(
            ID_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(digest.to_vec()).map_err(encoding)?)
                .map_err(encoding)?,
        )?,
        attribute(
            ID_AA_SIGNING_CERTIFICATE_V2,
            Any::encode_from(&signing_certificate).map_err(encoding)?,
        )?,
    ])
    .map_err(encoding)?;
    attributes.to_der().map_err(encoding)
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, PadesError> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value]).map_err(encoding)?,
    })
}

/// The message-digest value inside stored signed attributes.
pub(crate) fn message_digest(signed_attributes_der: &[u8]) -> Result<Vec<u8>, PadesError> {
    let attributes = SignedAttributes::from_der(signed_attributes_der)
        .map_err(|error| PadesError::InvalidPrepared(format!("signed attributes: {error}")))?;
    let attribute = attributes
        .iter()
        .find(|attribute| attribute.oid == ID_MESSAGE_DIGEST)
        .ok_or_else(|| PadesError::InvalidPrepared("no message-digest attribute".into()))?;
    let value = attribute
        .values
        .iter()
        .next()
        .ok_or_else(|| PadesError::InvalidPrepared("empty message-digest".into()))?;
    let digest: OctetString = value
        .decode_as()
        .map_err(|error| PadesError::InvalidPrepared(format!("message-digest: {error}")))?;
    Ok(digest.as_bytes().to_vec())
}

/// Checks `signature` over `signed_attributes_der` with the signer certificate's key: a DER
/// ECDSA-Sig-Value (RFC 3279 §2.2.3) or an RSASSA-PKCS1-v1_5 signature of the modulus length.
pub(crate) fn verify(
    signer: &Certificate,
    algorithm: SignatureAlgorithm,
    signed_attributes_der: &[u8],
    signature: &[u8],
) -> Result<(), PadesError> {
    use p256::ecdsa::signature::Verifier;
    let spki = signer
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(encoding)?;
    match algorithm {
        SignatureAlgorithm::EcdsaSha256 => {
            let key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki)
                .map_err(|error| PadesError::InvalidCertificate(format!("signer key: {error}")))?;
            let value = p256::ecdsa::Signature::from_der(signature)
                .map_err(|_| PadesError::BadSignature)?;
            // Only the canonical DER form is embedded, so that what validators parse is what we checked.
            if value.to_der().as_bytes() != signature {
                return Err(PadesError::BadSignature);
            }
            key.verify(signed_attributes_der, &value)
                .map_err(|_| PadesError::BadSignature)
        }
        SignatureAlgorithm::RsaPkcs1Sha256 => {
            let key = rsa::RsaPublicKey::from_public_key_der(&spki)
                .map_err(|error| PadesError::InvalidCertificate(format!("signer key: {error}")))?;
            let key = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key);
            let value = rsa::pkcs1v15::Signature::try_from(signature)
                .map_err(|_| PadesError::BadSignature)?;
            key.verify(signed_attributes_der, &value)
                .map_err(|_| PadesError::BadSignature)
        }
    }
}

/// Checks that `token` is a DER TimeStampToken whose imprint is SHA-256 of `signature`
/// (RFC 3161 Appendix A; reference/pades.md §5.8). The token's own signature is the
/// validator's business; the imprint is checked so that a token for another signature is
/// never embedded.
pub(crate) fn check_timestamp(token: &[u8], signature: &[u8]) -> Result<Any, PadesError> {
    let bad = |what: &str| PadesError::InvalidTimestamp(what.to_owned());
    let any = Any::from_der(token)
        .map_err(|error| PadesError::InvalidTimestamp(format!("not DER: {error}")))?;
    if any.to_der().map_err(encoding)? != token {
        return Err(bad("not in DER"));
    }
    let content_info = ContentInfo::from_der(token)
        .map_err(|error| PadesError::InvalidTimestamp(format!("{error}")))?;
    if content_info.content_type != ID_SIGNED_DATA {
        return Err(bad("not a SignedData"));
    }
    // Only the head of the SignedData is read: the certificate SET of real tokens is not
    // always DER (openssl can repeat the TSA certificate), and it is embedded untouched anyway.
    let encapsulated = der::SliceReader::new(content_info.content.value())
        .and_then(|mut reader| {
            let _version: u8 = reader.decode()?;
            let _digest_algorithms: Any = reader.decode()?;
            reader.decode::<EncapsulatedContentInfo>()
        })
        .map_err(|error| PadesError::InvalidTimestamp(format!("SignedData: {error}")))?;
    if der::Tagged::tag(&content_info.content) != der::Tag::Sequence {
        return Err(bad("not a SignedData"));
    }
    if encapsulated.econtent_type != ID_CT_TST_INFO {
        return Err(bad("does not encapsulate a TSTInfo"));
    }
    let econtent = encapsulated.econtent.ok_or_else(|| bad("no TSTInfo"))?;
    let tst_info: OctetString = econtent
        .decode_as()
        .map_err(|error| PadesError::InvalidTimestamp(format!("{error}")))?;
    let imprint = der::SliceReader::new(tst_info.as_bytes())
        .and_then(|mut reader| {
            reader.sequence(|tst| {
                let _version: u8 = tst.decode()?;
                let _policy: ObjectIdentifier = tst.decode()?;
                let imprint: MessageImprint = tst.decode()?;
                tst.read_slice(tst.remaining_len())?;
                Ok(imprint)
            })
        })
        .map_err(|error| PadesError::InvalidTimestamp(format!("TSTInfo: {error}")))?;
    if imprint.hash_algorithm.oid != ID_SHA256 {
        return Err(bad("the imprint is not SHA-256"));
    }
    if imprint.hashed_message.as_bytes() != crate::timestamp_imprint(signature) {
        return Err(bad("the imprint is not over this signature value"));
    }
    Ok(any)
}

/// The DER `ContentInfo` holding the detached `SignedData` (reference/pades.md §2, §2.2).
pub(crate) fn signed_data(
    chain: &[Certificate],
    algorithm: SignatureAlgorithm,
    signed_attributes_der: &[u8],
    signature: &[u8],
    timestamp: Option<Any>,
) -> Result<Vec<u8>, PadesError> {
    let signer = chain
        .first()
        .ok_or_else(|| PadesError::Internal("empty chain".into()))?;
    let signed_attributes = SignedAttributes::from_der(signed_attributes_der)
        .map_err(|error| PadesError::InvalidPrepared(format!("signed attributes: {error}")))?;
    // What is embedded must be byte for byte what was hashed (reference/pades.md §5.4).
    if signed_attributes.to_der().map_err(encoding)? != signed_attributes_der {
        return Err(PadesError::InvalidPrepared(
            "the signed attributes are not in DER".into(),
        ));
    }
    let signature_algorithm = match algorithm {
        SignatureAlgorithm::EcdsaSha256 => AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA256,
            parameters: None,
        },
        SignatureAlgorithm::RsaPkcs1Sha256 => AlgorithmIdentifierOwned {
            oid: SHA256_WITH_RSA,
            parameters: Some(Any::encode_from(&Null).map_err(encoding)?),
        },
    };
    let unsigned_attrs = match timestamp {
        Some(token) => Some(
            SetOfVec::try_from(vec![attribute(ID_AA_SIGNATURE_TIME_STAMP_TOKEN, token)?])
                .map_err(encoding)?,
        ),
        None => None,
    };
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: signer.tbs_certificate.issuer.clone(),
            serial_number: signer.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: sha256_identifier(),
        signed_attrs: Some(signed_attributes),
        signature_algorithm,
        signature: OctetString::new(signature.to_vec()).map_err(encoding)?,
        unsigned_attrs,
    };
    // A certificate given twice is embedded once (a SET OF holds no duplicates).
    let mut certificates: Vec<CertificateChoices> = Vec::with_capacity(chain.len());
    for certificate in chain {
        let choice = CertificateChoices::Certificate(certificate.clone());
        if !certificates.contains(&choice) {
            certificates.push(choice);
        }
    }
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![sha256_identifier()]).map_err(encoding)?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        },
        certificates: Some(CertificateSet(
            SetOfVec::try_from(certificates).map_err(encoding)?,
        )),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info]).map_err(encoding)?),
    };
    let content_info = ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed_data).map_err(encoding)?,
    };
    content_info.to_der().map_err(encoding)
}
