//! Certificate profiles (DESIGN §5, reference/pki-profiles.md §6) and issuance: the
//! to-be-signed certificate is built from the profile, checked against it by an independent
//! reading of the encoded extensions, and only then signed.

use der::asn1::{
    Any, BitString, Ia5String, Null, OctetString, PrintableString, SetOfVec, UtcTime, Utf8StringRef,
};
use der::{Decode, Encode, Sequence};
use sha1::{Digest as _, Sha1};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::ext::pkix::certpolicy::{PolicyInformation, PolicyQualifierInfo};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CertificatePolicies, CrlDistributionPoints, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate, Version};

use const_oid::ObjectIdentifier;
use domain::{CertificateKind, Jmbg, Serial, UnixTime};

use crate::keys::{KeyAlgorithm, KeySigner, PublicKeyDer};
use crate::oids;
use crate::Error;

/// A DER-encoded certificate.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateDer(pub Vec<u8>);

impl std::fmt::Debug for CertificateDer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CertificateDer({} bytes)", self.0.len())
    }
}

impl CertificateDer {
    /// Decodes the certificate.
    pub fn parse(&self) -> Result<Certificate, Error> {
        Ok(Certificate::from_der(&self.0)?)
    }

    /// PEM text (RFC 7468).
    pub fn to_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.0)
    }
}

/// PEM-encodes `der` under `label`, 64 characters a line.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64_encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let index = ((n >> (18 - 6 * i)) & 63) as usize;
                out.push(char::from(ALPHABET.get(index).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Where relying parties fetch status and issuer certificates for one CA (AIA, CRL DP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerUrls {
    /// OCSP responder (id-ad-ocsp).
    pub ocsp: String,
    /// The issuing CA's certificate (id-ad-caIssuers).
    pub ca_issuers: String,
    /// The issuing CA's CRL.
    pub crl: String,
}

/// The provider's policy identity that goes into certificates (DESIGN §7: configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderPolicy {
    /// The provider's own policy OID for qualified cloud signing certificates.
    pub qualified_policy: ObjectIdentifier,
    /// The provider's own policy OID for ConsentID device certificates.
    pub device_policy: ObjectIdentifier,
    /// The time-stamping policy under which tokens are issued (TSTInfo `policy`, RFC 3161
    /// §2.4.2); a request naming another policy is refused.
    pub timestamp_policy: ObjectIdentifier,
    /// Certification practice statement (id-qt-cps qualifier).
    pub cps_url: String,
    /// PKI disclosure statements, (https URL, ISO 639-1 language).
    pub pds: Vec<(String, String)>,
    /// QcRetentionPeriod: years the registration data is kept after expiry.
    pub retention_years: u32,
}

/// The subject of a personal certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// givenName.
    pub given_name: String,
    /// surname.
    pub surname: String,
    /// The JMBG, which becomes serialNumber `PNORS-<JMBG>`.
    pub jmbg: Jmbg,
}

/// The subject of a CA or OCSP responder certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationName {
    /// countryName.
    pub country: String,
    /// organizationName.
    pub organization: String,
    /// organizationIdentifier, e.g. `VATRS-110177886`.
    pub organization_identifier: String,
    /// commonName.
    pub common_name: String,
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<RelativeDistinguishedName, Error> {
    let mut set = SetOfVec::new();
    set.insert(AttributeTypeAndValue { oid, value })?;
    Ok(RelativeDistinguishedName(set))
}

fn utf8(text: &str) -> Result<Any, Error> {
    Ok(Any::encode_from(&Utf8StringRef::new(text)?)?)
}

fn printable(text: &str) -> Result<Any, Error> {
    Ok(Any::encode_from(&PrintableString::new(text)?)?)
}

impl Person {
    /// `C=RS, givenName, surname, serialNumber=PNORS-<JMBG>, CN=<given surname>`
    /// (EN 319 412-2 §4.2.4, EN 319 412-1 §5.1.3).
    pub fn name(&self) -> Result<Name, Error> {
        Ok(RdnSequence(vec![
            attribute(oids::COUNTRY, printable("RS")?)?,
            attribute(oids::GIVEN_NAME, utf8(&self.given_name)?)?,
            attribute(oids::SURNAME, utf8(&self.surname)?)?,
            attribute(
                oids::SERIAL_NUMBER,
                printable(&format!("PNORS-{}", self.jmbg.as_str()))?,
            )?,
            attribute(
                oids::COMMON_NAME,
                utf8(&format!("{} {}", self.given_name, self.surname))?,
            )?,
        ]))
    }
}

impl OrganizationName {
    /// `C, O, organizationIdentifier, CN`.
    pub fn name(&self) -> Result<Name, Error> {
        Ok(RdnSequence(vec![
            attribute(oids::COUNTRY, printable(&self.country)?)?,
            attribute(oids::ORGANIZATION, utf8(&self.organization)?)?,
            attribute(
                oids::ORGANIZATION_IDENTIFIER,
                utf8(&self.organization_identifier)?,
            )?,
            attribute(oids::COMMON_NAME, utf8(&self.common_name)?)?,
        ]))
    }
}

/// The issuer side of an issuance: who signs and where relying parties look.
pub struct Issuer<'a> {
    /// The issuer's distinguished name.
    pub name: Name,
    /// The issuer's subject key identifier (becomes the AKI).
    pub key_identifier: Vec<u8>,
    /// The issuer's validity end; nothing it issues may outlive it.
    pub not_after: UnixTime,
    /// Status and issuer URLs of this issuer; `None` for the self-signed root.
    pub urls: Option<IssuerUrls>,
    /// The issuer's signing key.
    pub signer: &'a dyn KeySigner,
}

impl<'a> Issuer<'a> {
    /// The issuer described by its own certificate.
    pub fn from_certificate(
        certificate: &Certificate,
        urls: Option<IssuerUrls>,
        signer: &'a dyn KeySigner,
    ) -> Result<Self, Error> {
        let spki = &certificate.tbs_certificate.subject_public_key_info;
        Ok(Self {
            name: certificate.tbs_certificate.subject.clone(),
            key_identifier: key_identifier(spki),
            not_after: unix_time(&certificate.tbs_certificate.validity.not_after),
            urls,
            signer,
        })
    }
}

/// What to certify.
pub struct CertificateRequest<'a> {
    /// The profile.
    pub kind: CertificateKind,
    /// The serial, already stored.
    pub serial: Serial,
    /// The subject name.
    pub subject: Name,
    /// The subject's public key.
    pub public_key: &'a PublicKeyDer,
    /// Start of validity.
    pub not_before: UnixTime,
    /// End of validity.
    pub not_after: UnixTime,
}

/// Key identifier method 1 (RFC 5280 §4.2.1.2): SHA-1 of the subjectPublicKey bits.
pub fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec()
}

/// An X.509 Time: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5).
pub fn x509_time(at: UnixTime) -> Result<Time, Error> {
    let seconds = u64::try_from(at.0).map_err(|_| Error::Profile("time before 1970".into()))?;
    let date_time = der::DateTime::from_unix_duration(std::time::Duration::from_secs(seconds))?;
    if date_time.year() < 2050 {
        Ok(Time::UtcTime(UtcTime::from_date_time(date_time)?))
    } else {
        Ok(Time::GeneralTime(
            der::asn1::GeneralizedTime::from_date_time(date_time),
        ))
    }
}

/// Seconds since the epoch of an X.509 Time.
pub fn unix_time(time: &Time) -> UnixTime {
    UnixTime(i64::try_from(time.to_unix_duration().as_secs()).unwrap_or(i64::MAX))
}

fn signature_algorithm(algorithm: KeyAlgorithm) -> Result<AlgorithmIdentifierOwned, Error> {
    Ok(match algorithm {
        KeyAlgorithm::EcdsaP256 => AlgorithmIdentifierOwned {
            oid: oids::ECDSA_WITH_SHA256,
            parameters: None,
        },
        KeyAlgorithm::Rsa3072 => AlgorithmIdentifierOwned {
            oid: oids::SHA256_WITH_RSA,
            parameters: Some(Any::encode_from(&Null)?),
        },
    })
}

/// The signature AlgorithmIdentifier this signer produces.
pub fn signer_algorithm(signer: &dyn KeySigner) -> Result<AlgorithmIdentifierOwned, Error> {
    signature_algorithm(signer.algorithm())
}

fn extension(
    oid: ObjectIdentifier,
    critical: bool,
    value: &impl Encode,
) -> Result<Extension, Error> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

fn uri(text: &str) -> Result<GeneralName, Error> {
    Ok(GeneralName::UniformResourceIdentifier(Ia5String::new(
        text,
    )?))
}

/// QCStatement (RFC 3739 §3.2.6).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct QcStatement {
    pub(crate) statement_id: ObjectIdentifier,
    pub(crate) statement_info: Option<Any>,
}

/// PdsLocation (EN 319 412-5 §4.3.4).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct PdsLocation {
    url: Ia5String,
    language: PrintableString,
}

/// SemanticsInformation (RFC 3739) with only the identifier.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SemanticsInformation {
    semantics_identifier: ObjectIdentifier,
}

fn qc_statements(policy: &ProviderPolicy) -> Result<Vec<QcStatement>, Error> {
    let pds = policy
        .pds
        .iter()
        .map(|(url, language)| {
            Ok(PdsLocation {
                url: Ia5String::new(url)?,
                language: PrintableString::new(language)?,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(vec![
        QcStatement {
            statement_id: oids::QCS_COMPLIANCE,
            statement_info: None,
        },
        QcStatement {
            statement_id: oids::QCS_SSCD,
            statement_info: None,
        },
        QcStatement {
            statement_id: oids::QCS_TYPE,
            statement_info: Some(Any::encode_from(&vec![oids::QCT_ESIGN])?),
        },
        QcStatement {
            statement_id: oids::QCS_PDS,
            statement_info: Some(Any::encode_from(&pds)?),
        },
        QcStatement {
            statement_id: oids::QCS_RETENTION_PERIOD,
            statement_info: Some(Any::encode_from(&policy.retention_years)?),
        },
        QcStatement {
            statement_id: oids::QCS_PKIX_SYNTAX_V2,
            statement_info: Some(Any::encode_from(&SemanticsInformation {
                semantics_identifier: oids::SEMANTICS_ID_NATURAL,
            })?),
        },
    ])
}

fn policies(
    oids_and_cps: &[(ObjectIdentifier, Option<&str>)],
) -> Result<CertificatePolicies, Error> {
    let mut out = Vec::new();
    for (oid, cps) in oids_and_cps {
        let qualifiers = match cps {
            Some(url) => Some(vec![PolicyQualifierInfo {
                policy_qualifier_id: oids::QT_CPS,
                qualifier: Some(Any::encode_from(&Ia5String::new(url)?)?),
            }]),
            None => None,
        };
        out.push(PolicyInformation {
            policy_identifier: *oid,
            policy_qualifiers: qualifiers,
        });
    }
    Ok(CertificatePolicies(out))
}

/// Builds the to-be-signed certificate of `request` under `issuer`.
pub fn build_tbs(
    request: &CertificateRequest<'_>,
    issuer: &Issuer<'_>,
    policy: &ProviderPolicy,
) -> Result<TbsCertificate, Error> {
    let spki = SubjectPublicKeyInfoOwned::from_der(&request.public_key.0)?;
    let ski = key_identifier(&spki);
    let mut extensions = Vec::new();
    let kind = request.kind;
    // 1. Basic constraints: CAs only (RFC 5280 §4.2.1.9).
    match kind {
        CertificateKind::RootCa => extensions.push(extension(
            oids::BASIC_CONSTRAINTS,
            true,
            &BasicConstraints {
                ca: true,
                path_len_constraint: None,
            },
        )?),
        CertificateKind::IntermediateCa => extensions.push(extension(
            oids::BASIC_CONSTRAINTS,
            true,
            &BasicConstraints {
                ca: true,
                path_len_constraint: Some(0),
            },
        )?),
        _ => {}
    }
    // 2. Key usage, always critical.
    let usage = match kind {
        CertificateKind::RootCa | CertificateKind::IntermediateCa => {
            KeyUsages::KeyCertSign | KeyUsages::CRLSign
        }
        CertificateKind::OcspSigner | CertificateKind::Device | CertificateKind::TimeStamping => {
            KeyUsages::DigitalSignature.into()
        }
        CertificateKind::CloudSigning => KeyUsages::NonRepudiation.into(),
    };
    extensions.push(extension(oids::KEY_USAGE, true, &KeyUsage(usage))?);
    // 3. Extended key usage, not critical (EN 319 412-2 GEN-4.3.10-1) but on the TSA's, which
    //    must be critical and hold only id-kp-timeStamping (RFC 3161 §2.3).
    match kind {
        CertificateKind::OcspSigner => extensions.push(extension(
            oids::EXT_KEY_USAGE,
            false,
            &vec![oids::KP_OCSP_SIGNING],
        )?),
        CertificateKind::Device => extensions.push(extension(
            oids::EXT_KEY_USAGE,
            false,
            &vec![oids::KP_CLIENT_AUTH],
        )?),
        CertificateKind::TimeStamping => extensions.push(extension(
            oids::EXT_KEY_USAGE,
            true,
            &vec![oids::KP_TIME_STAMPING],
        )?),
        _ => {}
    }
    // 4. Key identifiers.
    extensions.push(extension(
        oids::SUBJECT_KEY_IDENTIFIER,
        false,
        &SubjectKeyIdentifier(OctetString::new(ski)?),
    )?);
    if kind != CertificateKind::RootCa {
        extensions.push(extension(
            oids::AUTHORITY_KEY_IDENTIFIER,
            false,
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(issuer.key_identifier.clone())?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
        )?);
    }
    // 5. Policies.
    match kind {
        CertificateKind::IntermediateCa => extensions.push(extension(
            oids::CERTIFICATE_POLICIES,
            false,
            &policies(&[(oids::ANY_POLICY, None)])?,
        )?),
        CertificateKind::CloudSigning => extensions.push(extension(
            oids::CERTIFICATE_POLICIES,
            false,
            &policies(&[
                (policy.qualified_policy, Some(&policy.cps_url)),
                (oids::QCP_N_QSCD, None),
            ])?,
        )?),
        CertificateKind::Device => extensions.push(extension(
            oids::CERTIFICATE_POLICIES,
            false,
            &policies(&[
                (policy.device_policy, Some(&policy.cps_url)),
                (oids::NCP, None),
            ])?,
        )?),
        CertificateKind::RootCa | CertificateKind::OcspSigner | CertificateKind::TimeStamping => {}
    }
    // 6. Where to find the issuer and the status (AIA, CRL DP); not on the root, and not on the
    //    OCSP signer, which is never checked (ocsp-nocheck, RFC 6960 §4.2.2.2.1). An
    //    intermediate's status is on the root's CRL (the root runs no OCSP responder); validators
    //    need it for every certificate of the chain (reference/pades.md §5.10).
    let located = matches!(
        kind,
        CertificateKind::IntermediateCa
            | CertificateKind::CloudSigning
            | CertificateKind::Device
            | CertificateKind::TimeStamping
    );
    if let (Some(urls), true) = (&issuer.urls, located) {
        let mut access = Vec::new();
        if kind != CertificateKind::IntermediateCa {
            access.push(AccessDescription {
                access_method: oids::AD_OCSP,
                access_location: uri(&urls.ocsp)?,
            });
        }
        access.push(AccessDescription {
            access_method: oids::AD_CA_ISSUERS,
            access_location: uri(&urls.ca_issuers)?,
        });
        extensions.push(extension(
            oids::AUTHORITY_INFO_ACCESS,
            false,
            &AuthorityInfoAccessSyntax(access),
        )?);
        extensions.push(extension(
            oids::CRL_DISTRIBUTION_POINTS,
            false,
            &CrlDistributionPoints(vec![DistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(vec![uri(&urls.crl)?])),
                reasons: None,
                crl_issuer: None,
            }]),
        )?);
    }
    // 7. OCSP signer: id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1).
    if kind == CertificateKind::OcspSigner {
        extensions.push(extension(oids::OCSP_NOCHECK, false, &Null)?);
    }
    // 8. Qualified statements (EN 319 412-5), never critical.
    if kind == CertificateKind::CloudSigning {
        extensions.push(extension(
            oids::QC_STATEMENTS,
            false,
            &qc_statements(policy)?,
        )?);
    }

    let issuer_name = if kind == CertificateKind::RootCa {
        request.subject.clone()
    } else {
        issuer.name.clone()
    };
    Ok(TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(request.serial.as_bytes())?,
        signature: signature_algorithm(issuer.signer.algorithm())?,
        issuer: issuer_name,
        validity: Validity {
            not_before: x509_time(request.not_before)?,
            not_after: x509_time(request.not_after)?,
        },
        subject: request.subject.clone(),
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    })
}

/// The extensions a profile requires, as (OID, critical).
fn required_extensions(kind: CertificateKind) -> &'static [(ObjectIdentifier, bool)] {
    match kind {
        CertificateKind::RootCa => &[
            (oids::BASIC_CONSTRAINTS, true),
            (oids::KEY_USAGE, true),
            (oids::SUBJECT_KEY_IDENTIFIER, false),
        ],
        CertificateKind::IntermediateCa => &[
            (oids::BASIC_CONSTRAINTS, true),
            (oids::KEY_USAGE, true),
            (oids::SUBJECT_KEY_IDENTIFIER, false),
            (oids::AUTHORITY_KEY_IDENTIFIER, false),
            (oids::CERTIFICATE_POLICIES, false),
            (oids::CRL_DISTRIBUTION_POINTS, false),
        ],
        CertificateKind::OcspSigner => &[
            (oids::KEY_USAGE, true),
            (oids::EXT_KEY_USAGE, false),
            (oids::SUBJECT_KEY_IDENTIFIER, false),
            (oids::AUTHORITY_KEY_IDENTIFIER, false),
            (oids::OCSP_NOCHECK, false),
        ],
        CertificateKind::CloudSigning => &[
            (oids::KEY_USAGE, true),
            (oids::SUBJECT_KEY_IDENTIFIER, false),
            (oids::AUTHORITY_KEY_IDENTIFIER, false),
            (oids::CERTIFICATE_POLICIES, false),
            (oids::AUTHORITY_INFO_ACCESS, false),
            (oids::CRL_DISTRIBUTION_POINTS, false),
            (oids::QC_STATEMENTS, false),
        ],
        CertificateKind::Device => &[
            (oids::KEY_USAGE, true),
            (oids::EXT_KEY_USAGE, false),
            (oids::SUBJECT_KEY_IDENTIFIER, false),
            (oids::AUTHORITY_KEY_IDENTIFIER, false),
            (oids::CERTIFICATE_POLICIES, false),
            (oids::AUTHORITY_INFO_ACCESS, false),
            (oids::CRL_DISTRIBUTION_POINTS, false),
        ],
        CertificateKind::TimeStamping => &[
            (oids::KEY_USAGE, true),
            (oids::EXT_KEY_USAGE, true),
            (oids::SUBJECT_KEY_IDENTIFIER, false),
            (oids::AUTHORITY_KEY_IDENTIFIER, false),
            (oids::AUTHORITY_INFO_ACCESS, false),
            (oids::CRL_DISTRIBUTION_POINTS, false),
        ],
    }
}

fn profile_error(kind: CertificateKind, what: impl std::fmt::Display) -> Error {
    Error::Profile(format!("{}: {what}", kind.as_str()))
}

/// Checks a to-be-signed certificate against its profile by decoding what was encoded: the
/// last look before the key signs (the role zlint plays in Boulder).
pub fn check_profile(
    kind: CertificateKind,
    tbs: &TbsCertificate,
    issuer_not_after: UnixTime,
) -> Result<(), Error> {
    let fail = |what: &str| profile_error(kind, what);
    if tbs.version != Version::V3 {
        return Err(fail("version is not v3"));
    }
    let serial = tbs.serial_number.as_bytes();
    if serial.is_empty() || serial.len() > 20 || serial.first().is_some_and(|b| b & 0x80 != 0) {
        return Err(fail(
            "serial is not a positive integer of at most 20 octets",
        ));
    }
    if serial.len() < 16 {
        return Err(fail("serial has fewer than 16 random octets"));
    }
    let not_before = unix_time(&tbs.validity.not_before);
    let not_after = unix_time(&tbs.validity.not_after);
    if not_after <= not_before {
        return Err(fail("validity ends before it begins"));
    }
    if kind != CertificateKind::RootCa && not_after > issuer_not_after {
        return Err(fail("validity ends after the issuer's"));
    }
    for time in [&tbs.validity.not_before, &tbs.validity.not_after] {
        let year = time.to_date_time().year();
        let utc = matches!(time, Time::UtcTime(_));
        if (year < 2050) != utc {
            return Err(fail("time encoding breaks RFC 5280 §4.1.2.5"));
        }
    }
    let extensions = tbs.extensions.as_deref().unwrap_or(&[]);
    let mut seen = std::collections::HashSet::new();
    for ext in extensions {
        if !seen.insert(ext.extn_id) {
            return Err(profile_error(
                kind,
                format!("extension {} appears twice", ext.extn_id),
            ));
        }
    }
    for (oid, critical) in required_extensions(kind) {
        match extensions.iter().find(|e| e.extn_id == *oid) {
            None => return Err(profile_error(kind, format!("extension {oid} is missing"))),
            Some(e) if e.critical != *critical => {
                return Err(profile_error(
                    kind,
                    format!("extension {oid} has the wrong criticality"),
                ))
            }
            Some(_) => {}
        }
    }
    let allowed: Vec<ObjectIdentifier> = required_extensions(kind)
        .iter()
        .map(|(oid, _)| *oid)
        .collect();
    for ext in extensions {
        let optional_ok = matches!(
            (kind, ext.extn_id),
            (CertificateKind::IntermediateCa, oids::AUTHORITY_INFO_ACCESS)
        );
        if !allowed.contains(&ext.extn_id) && !optional_ok {
            return Err(profile_error(
                kind,
                format!("extension {} is not in the profile", ext.extn_id),
            ));
        }
    }
    let find = |oid| {
        extensions
            .iter()
            .find(|e| e.extn_id == oid)
            .map(|e| e.extn_value.as_bytes())
    };
    // Key usage exactly as the profile says (EN 319 412-2 Table 1 type A for signing).
    if let Some(bytes) = find(oids::KEY_USAGE) {
        let usage = KeyUsage::from_der(bytes)?;
        let expected = match kind {
            CertificateKind::RootCa | CertificateKind::IntermediateCa => {
                KeyUsages::KeyCertSign | KeyUsages::CRLSign
            }
            CertificateKind::OcspSigner
            | CertificateKind::Device
            | CertificateKind::TimeStamping => KeyUsages::DigitalSignature.into(),
            CertificateKind::CloudSigning => KeyUsages::NonRepudiation.into(),
        };
        if usage.0 != expected {
            return Err(fail("key usage differs from the profile"));
        }
    }
    if let Some(bytes) = find(oids::BASIC_CONSTRAINTS) {
        if !BasicConstraints::from_der(bytes)?.ca {
            return Err(fail("a CA certificate without cA=true"));
        }
    }
    if let Some(bytes) = find(oids::EXT_KEY_USAGE) {
        let usages: Vec<ObjectIdentifier> = Vec::from_der(bytes)?;
        let expected = match kind {
            CertificateKind::OcspSigner => oids::KP_OCSP_SIGNING,
            CertificateKind::TimeStamping => oids::KP_TIME_STAMPING,
            _ => oids::KP_CLIENT_AUTH,
        };
        if usages != [expected] {
            return Err(fail("extended key usage differs from the profile"));
        }
    }
    if let Some(bytes) = find(oids::CERTIFICATE_POLICIES) {
        let policies = CertificatePolicies::from_der(bytes)?;
        let wanted = match kind {
            CertificateKind::CloudSigning => Some(oids::QCP_N_QSCD),
            CertificateKind::Device => Some(oids::NCP),
            _ => None,
        };
        if let Some(wanted) = wanted {
            if !policies.0.iter().any(|p| p.policy_identifier == wanted) {
                return Err(profile_error(kind, format!("policy {wanted} is missing")));
            }
        }
    }
    if kind == CertificateKind::CloudSigning {
        let bytes = find(oids::QC_STATEMENTS).ok_or_else(|| fail("qcStatements missing"))?;
        let statements: Vec<QcStatement> = Vec::from_der(bytes)?;
        for needed in [
            oids::QCS_COMPLIANCE,
            oids::QCS_SSCD,
            oids::QCS_TYPE,
            oids::QCS_PDS,
            oids::QCS_PKIX_SYNTAX_V2,
        ] {
            if !statements.iter().any(|s| s.statement_id == needed) {
                return Err(profile_error(
                    kind,
                    format!("QC statement {needed} is missing"),
                ));
            }
        }
    }
    if matches!(
        kind,
        CertificateKind::CloudSigning | CertificateKind::Device
    ) {
        let has_pno = tbs
            .subject
            .0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .any(|atv| {
                atv.oid == oids::SERIAL_NUMBER
                    && PrintableString::try_from(&atv.value)
                        .is_ok_and(|s| s.as_str().starts_with("PNORS-"))
            });
        if !has_pno {
            return Err(fail("subject has no serialNumber PNORS-<JMBG>"));
        }
    }
    Ok(())
}

/// Signs a checked to-be-signed certificate.
pub fn sign_tbs(tbs: TbsCertificate, signer: &dyn KeySigner) -> Result<CertificateDer, Error> {
    let signature = signer.sign(&tbs.to_der()?)?;
    let certificate = Certificate {
        signature_algorithm: tbs.signature.clone(),
        tbs_certificate: tbs,
        signature: BitString::from_bytes(&signature)?,
    };
    Ok(CertificateDer(certificate.to_der()?))
}

/// Builds, checks and signs: the whole issuance of one certificate.
pub fn issue(
    request: &CertificateRequest<'_>,
    issuer: &Issuer<'_>,
    policy: &ProviderPolicy,
) -> Result<CertificateDer, Error> {
    let tbs = build_tbs(request, issuer, policy)?;
    let issuer_not_after = if request.kind == CertificateKind::RootCa {
        request.not_after
    } else {
        issuer.not_after
    };
    check_profile(request.kind, &tbs, issuer_not_after)?;
    sign_tbs(tbs, issuer.signer)
}

/// Proves that `signer` holds the private key of `certificate`: same public key, and a fresh
/// signature verifies with the certificate's key.
pub fn check_key_matches(
    certificate: &Certificate,
    signer: &dyn KeySigner,
    what: &str,
) -> Result<(), Error> {
    let certified = PublicKeyDer(
        certificate
            .tbs_certificate
            .subject_public_key_info
            .to_der()?,
    );
    if &certified != signer.public_key() {
        return Err(Error::KeyMismatch(what.to_owned()));
    }
    let challenge = b"eidportal key check";
    let signature = signer.sign(challenge)?;
    crate::verify::verify_signature(&certified, challenge, &signature)
        .map_err(|_| Error::KeyMismatch(what.to_owned()))
}

/// The subject as one line, RFC 4514 style but in certificate order, for listings.
pub fn name_to_string(name: &Name) -> String {
    let mut parts = Vec::new();
    for rdn in &name.0 {
        for atv in rdn.0.iter() {
            let label = match atv.oid {
                oids::COUNTRY => "C".to_owned(),
                oids::ORGANIZATION => "O".to_owned(),
                oids::ORGANIZATION_IDENTIFIER => "organizationIdentifier".to_owned(),
                oids::COMMON_NAME => "CN".to_owned(),
                oids::GIVEN_NAME => "GN".to_owned(),
                oids::SURNAME => "SN".to_owned(),
                oids::SERIAL_NUMBER => "serialNumber".to_owned(),
                other => other.to_string(),
            };
            let value = std::str::from_utf8(atv.value.value()).unwrap_or("?");
            parts.push(format!("{label}={value}"));
        }
    }
    parts.join(", ")
}
