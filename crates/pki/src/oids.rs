//! Object identifiers of the profiles (reference/pki-profiles.md §1.3-§1.5, §3.2).

use const_oid::ObjectIdentifier as Oid;

/// countryName (X.520)
pub const COUNTRY: Oid = Oid::new_unwrap("2.5.4.6");
/// organizationName
pub const ORGANIZATION: Oid = Oid::new_unwrap("2.5.4.10");
/// organizationIdentifier (EN 319 412-1 §5.1.4)
pub const ORGANIZATION_IDENTIFIER: Oid = Oid::new_unwrap("2.5.4.97");
/// commonName
pub const COMMON_NAME: Oid = Oid::new_unwrap("2.5.4.3");
/// givenName
pub const GIVEN_NAME: Oid = Oid::new_unwrap("2.5.4.42");
/// surname
pub const SURNAME: Oid = Oid::new_unwrap("2.5.4.4");
/// serialNumber (the `PNORS-<JMBG>` semantics identifier value)
pub const SERIAL_NUMBER: Oid = Oid::new_unwrap("2.5.4.5");

/// ecdsa-with-SHA256
pub const ECDSA_WITH_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
/// sha256WithRSAEncryption
pub const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
/// id-sha1 (OCSP CertID)
pub const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
/// id-sha256
pub const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
/// id-sha384
pub const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
/// id-sha512
pub const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");

/// basicConstraints
pub const BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
/// keyUsage
pub const KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
/// extKeyUsage
pub const EXT_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37");
/// subjectKeyIdentifier
pub const SUBJECT_KEY_IDENTIFIER: Oid = Oid::new_unwrap("2.5.29.14");
/// authorityKeyIdentifier
pub const AUTHORITY_KEY_IDENTIFIER: Oid = Oid::new_unwrap("2.5.29.35");
/// certificatePolicies
pub const CERTIFICATE_POLICIES: Oid = Oid::new_unwrap("2.5.29.32");
/// anyPolicy
pub const ANY_POLICY: Oid = Oid::new_unwrap("2.5.29.32.0");
/// cRLDistributionPoints
pub const CRL_DISTRIBUTION_POINTS: Oid = Oid::new_unwrap("2.5.29.31");
/// authorityInfoAccess
pub const AUTHORITY_INFO_ACCESS: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.1.1");
/// qcStatements (RFC 3739)
pub const QC_STATEMENTS: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.1.3");
/// cRLNumber
pub const CRL_NUMBER: Oid = Oid::new_unwrap("2.5.29.20");
/// reasonCode (CRL entry)
pub const REASON_CODE: Oid = Oid::new_unwrap("2.5.29.21");

/// id-ad-ocsp
pub const AD_OCSP: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1");
/// id-ad-caIssuers
pub const AD_CA_ISSUERS: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.2");
/// id-pkix-ocsp-basic
pub const OCSP_BASIC: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1.1");
/// id-pkix-ocsp-nonce
pub const OCSP_NONCE: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1.2");
/// id-pkix-ocsp-nocheck
pub const OCSP_NOCHECK: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1.5");
/// id-qt-cps
pub const QT_CPS: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.2.1");

/// id-kp-clientAuth
pub const KP_CLIENT_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.2");
/// id-kp-OCSPSigning
pub const KP_OCSP_SIGNING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.9");
/// id-kp-timeStamping (RFC 3161 §2.3)
pub const KP_TIME_STAMPING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.8");

/// id-signedData (RFC 5652 §5.1)
pub const SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
/// id-ct-TSTInfo (RFC 3161 §2.4.2)
pub const CT_TST_INFO: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.1.4");
/// id-contentType signed attribute (RFC 5652 §11.1)
pub const ATTR_CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
/// id-messageDigest signed attribute (RFC 5652 §11.2)
pub const ATTR_MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
/// id-aa-signingCertificateV2 (RFC 5035 §3, required in tokens by RFC 5816)
pub const ATTR_SIGNING_CERTIFICATE_V2: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.2.47");

/// QCP-n-qscd (EN 319 411-2)
pub const QCP_N_QSCD: Oid = Oid::new_unwrap("0.4.0.194112.1.2");
/// NCP (EN 319 411-1)
pub const NCP: Oid = Oid::new_unwrap("0.4.0.2042.1.1");

/// id-etsi-qcs-QcCompliance
pub const QCS_COMPLIANCE: Oid = Oid::new_unwrap("0.4.0.1862.1.1");
/// id-etsi-qcs-QcRetentionPeriod
pub const QCS_RETENTION_PERIOD: Oid = Oid::new_unwrap("0.4.0.1862.1.3");
/// id-etsi-qcs-QcSSCD
pub const QCS_SSCD: Oid = Oid::new_unwrap("0.4.0.1862.1.4");
/// id-etsi-qcs-QcPDS
pub const QCS_PDS: Oid = Oid::new_unwrap("0.4.0.1862.1.5");
/// id-etsi-qcs-QcType
pub const QCS_TYPE: Oid = Oid::new_unwrap("0.4.0.1862.1.6");
/// id-etsi-qct-esign
pub const QCT_ESIGN: Oid = Oid::new_unwrap("0.4.0.1862.1.6.1");
/// id-qcs-pkixQCSyntax-v2 (RFC 3739)
pub const QCS_PKIX_SYNTAX_V2: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.11.2");
/// esi4-qtstStatement-1: the token is a qualified electronic time stamp (EN 319 422 §9.1)
pub const QTST_STATEMENT_1: Oid = Oid::new_unwrap("0.4.0.19422.1.1");
/// id-etsi-qcs-semanticsId-Natural (EN 319 412-1 §5.1.3)
pub const SEMANTICS_ID_NATURAL: Oid = Oid::new_unwrap("0.4.0.194121.1.1");
