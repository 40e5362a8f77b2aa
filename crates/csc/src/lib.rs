//! The Cloud Signature Consortium API v2 (reference/csc-api.md) as JSON on the wire: the
//! request bodies we accept, with the v1 names `hash` and `hashAlgo` as aliases so that stock
//! pyHanko works; their validation into typed values; and the error body. Pure: parsing and
//! checking only, so that the fuzz target exercises exactly what the server runs.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use domain::signing::{HashAlgorithm, SignatureScheme};

/// The specification version we implement.
pub const SPECS: &str = "2.0.0.2";

/// The longest `description` of an authorisation. CSC allows 500 characters; we take 200,
/// which is what the ConsentID screen shows on a few lines.
pub const MAX_DESCRIPTION: usize = 200;

/// A CSC error: the HTTP status and the body `{"error", "error_description"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CscError {
    /// The HTTP status.
    #[serde(skip)]
    pub status: u16,
    /// The error code, e.g. `invalid_request`.
    pub error: &'static str,
    /// What is wrong, in English (the specification's canonical wording where it has one).
    pub error_description: String,
}

impl CscError {
    /// `400 invalid_request` with a description.
    pub fn invalid(description: impl Into<String>) -> Self {
        Self {
            status: 400,
            error: "invalid_request",
            error_description: description.into(),
        }
    }

    /// `400 invalid_request`: "Missing (or invalid type) string parameter NAME".
    pub fn missing(name: &str) -> Self {
        Self::invalid(format!("Missing (or invalid type) string parameter {name}"))
    }

    /// `401 invalid_token`.
    pub fn invalid_token() -> Self {
        Self {
            status: 401,
            error: "invalid_token",
            error_description: "The access token is not valid".into(),
        }
    }

    /// `400 access_denied` with a description.
    pub fn access_denied(description: impl Into<String>) -> Self {
        Self {
            status: 400,
            error: "access_denied",
            error_description: description.into(),
        }
    }
}

/// Parses a request body; a body that is not a JSON object of the right shape is
/// `invalid_request` naming what serde found wrong. An empty body counts as `{}`.
pub fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, CscError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| CscError::invalid(format!("Malformed request body: {e}")))
}

/// `credentials/list`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRequest {
    /// Must be absent: a token is bound to its user.
    #[serde(rename = "userID")]
    pub user_id: Option<String>,
    /// Whether to include each credential's info.
    pub credential_info: Option<bool>,
    /// `none`, `single` or `chain`.
    pub certificates: Option<String>,
    /// Whether to include certificate details.
    pub cert_info: Option<bool>,
    /// Whether to include the authentication description.
    pub auth_info: Option<bool>,
    /// Only credentials that may sign now.
    pub only_valid: Option<bool>,
}

/// `credentials/info`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InfoRequest {
    /// The credential.
    #[serde(rename = "credentialID")]
    pub credential_id: Option<String>,
    /// `none`, `single` or `chain` (default `single`).
    pub certificates: Option<String>,
    /// Whether to include certificate details.
    pub cert_info: Option<bool>,
    /// Whether to include the authentication description.
    pub auth_info: Option<bool>,
}

/// Which certificates a listing includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateChoice {
    /// None.
    None,
    /// The end-entity certificate.
    Single,
    /// The whole chain, end-entity first.
    Chain,
}

/// Reads `certificates` (default `single`).
pub fn certificate_choice(value: Option<&str>) -> Result<CertificateChoice, CscError> {
    match value {
        None | Some("single") => Ok(CertificateChoice::Single),
        Some("none") => Ok(CertificateChoice::None),
        Some("chain") => Ok(CertificateChoice::Chain),
        Some(_) => Err(CscError::invalid("Invalid parameter certificates")),
    }
}

/// One entry of `authData`.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthData {
    /// The authentication object's id.
    pub id: Option<String>,
    /// Its value (never needed: the user authenticates in ConsentID).
    pub value: Option<String>,
}

/// `credentials/authorize`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeRequest {
    /// The credential.
    #[serde(rename = "credentialID")]
    pub credential_id: Option<String>,
    /// How many signatures.
    pub num_signatures: Option<u64>,
    /// The hashes, base64 (v1: `hash`).
    #[serde(alias = "hash")]
    pub hashes: Option<Vec<String>>,
    /// The hash algorithm's OID (v1: `hashAlgo`).
    #[serde(rename = "hashAlgorithmOID", alias = "hashAlgo")]
    pub hash_algorithm_oid: Option<String>,
    /// Authentication data: ignored, the user authenticates in ConsentID (a PIN sent here
    /// would be one the service must never see).
    pub auth_data: Option<Vec<AuthData>>,
    /// What is signed, shown to the user.
    pub description: Option<String>,
    /// Correlation data, echoed nowhere.
    pub client_data: Option<String>,
}

/// A checked `credentials/authorize`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorize {
    /// The credential.
    pub credential_id: String,
    /// How many signatures.
    pub num_signatures: usize,
    /// The hashes, decoded.
    pub hashes: Vec<Vec<u8>>,
    /// Their algorithm.
    pub algorithm: HashAlgorithm,
    /// What is signed.
    pub description: Option<String>,
}

/// Decodes base64 in any of its common spellings (standard or URL alphabet, padded or not):
/// JSON bodies use the standard one, OAuth queries the URL one.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text.as_bytes()).ok())
}

fn credential_id(value: Option<&String>) -> Result<String, CscError> {
    match value {
        Some(id) if !id.is_empty() && id.len() <= 128 => Ok(id.clone()),
        Some(_) => Err(CscError::invalid("Invalid parameter credentialID")),
        None => Err(CscError::missing("credentialID")),
    }
}

fn hash_algorithm(oid: Option<&String>) -> Result<Option<HashAlgorithm>, CscError> {
    oid.map(|oid| {
        HashAlgorithm::from_oid(oid)
            .ok_or_else(|| CscError::invalid("Invalid parameter hashAlgorithmOID"))
    })
    .transpose()
}

fn decode_hashes(
    hashes: Option<&Vec<String>>,
    algorithm: HashAlgorithm,
) -> Result<Vec<Vec<u8>>, CscError> {
    let hashes = hashes
        .ok_or_else(|| CscError::invalid("Missing (or invalid type) array parameter hashes"))?;
    if hashes.is_empty() {
        return Err(CscError::invalid("Empty hash array"));
    }
    if hashes.len() > domain::signing::MAX_SIGNATURES {
        return Err(CscError::invalid("Numbers of signatures is too high"));
    }
    hashes
        .iter()
        .map(|text| {
            let hash = decode_base64(text)
                .ok_or_else(|| CscError::invalid("Invalid Base64 hash string parameter"))?;
            if hash.len() == algorithm.digest_len() {
                Ok(hash)
            } else {
                Err(CscError::invalid("Invalid digest value length"))
            }
        })
        .collect()
}

impl AuthorizeRequest {
    /// Checks the request: SCAL2 needs the hashes and their algorithm, and as many
    /// signatures as hashes.
    pub fn validate(&self) -> Result<Authorize, CscError> {
        let credential_id = credential_id(self.credential_id.as_ref())?;
        let num_signatures = self.num_signatures.ok_or_else(|| {
            CscError::invalid("Missing (or invalid type) integer parameter numSignatures")
        })?;
        let num_signatures = usize::try_from(num_signatures).unwrap_or(usize::MAX);
        if num_signatures == 0 {
            return Err(CscError::invalid("Invalid parameter numSignatures"));
        }
        if num_signatures > domain::signing::MAX_SIGNATURES {
            return Err(CscError::invalid("Numbers of signatures is too high"));
        }
        let algorithm = hash_algorithm(self.hash_algorithm_oid.as_ref())?
            .ok_or_else(|| CscError::missing("hashAlgorithmOID"))?;
        let hashes = decode_hashes(self.hashes.as_ref(), algorithm)?;
        if hashes.len() != num_signatures {
            return Err(CscError::invalid(
                "Invalid parameter numSignatures: it must equal the number of hashes",
            ));
        }
        let description = match &self.description {
            // The citizen reads it on the approval screen: printable text only, so that it
            // cannot draw another request over this one (no escapes, no newlines).
            Some(text) if !domain::text::is_display_text(text, MAX_DESCRIPTION) => {
                return Err(CscError::invalid(format!("Invalid parameter description: printable text of at most {MAX_DESCRIPTION} characters")))
            }
            other => other.clone(),
        };
        Ok(Authorize {
            credential_id,
            num_signatures,
            hashes,
            algorithm,
            description,
        })
    }
}

/// `credentials/authorizeCheck`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthorizeCheckRequest {
    /// The handle `credentials/authorize` returned.
    pub handle: Option<String>,
}

impl AuthorizeCheckRequest {
    /// The handle.
    pub fn validate(&self) -> Result<String, CscError> {
        match &self.handle {
            Some(handle) if !handle.is_empty() && handle.len() <= 128 => Ok(handle.clone()),
            Some(_) => Err(CscError::invalid("Invalid parameter handle")),
            None => Err(CscError::missing("handle")),
        }
    }
}

/// `signatures/signHash`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignHashRequest {
    /// The credential.
    #[serde(rename = "credentialID")]
    pub credential_id: Option<String>,
    /// The signature activation data.
    #[serde(rename = "SAD")]
    pub sad: Option<String>,
    /// The hashes, base64 (v1: `hash`).
    #[serde(alias = "hash")]
    pub hashes: Option<Vec<String>>,
    /// The hash algorithm's OID (v1: `hashAlgo`); needed when `signAlgo` does not imply it.
    #[serde(rename = "hashAlgorithmOID", alias = "hashAlgo")]
    pub hash_algorithm_oid: Option<String>,
    /// The signature algorithm's OID.
    pub sign_algo: Option<String>,
    /// DER parameters of the signature algorithm, base64 (RSASSA-PSS).
    pub sign_algo_params: Option<String>,
    /// `S` (synchronous, the default) or `A` (not offered).
    pub operation_mode: Option<String>,
    /// Correlation data.
    pub client_data: Option<String>,
}

/// A checked `signatures/signHash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignHash {
    /// The credential.
    pub credential_id: String,
    /// The signature activation data.
    pub sad: String,
    /// The hashes, decoded.
    pub hashes: Vec<Vec<u8>>,
    /// Their algorithm.
    pub algorithm: HashAlgorithm,
    /// How to sign them.
    pub scheme: SignatureScheme,
}

/// The signature algorithms we accept: (OID, scheme, the hash it implies).
pub const SIGN_ALGORITHMS: &[(&str, SignatureScheme, Option<HashAlgorithm>)] = &[
    (
        "1.2.840.10045.4.3.2",
        SignatureScheme::Ecdsa,
        Some(HashAlgorithm::Sha256),
    ),
    (
        "1.2.840.10045.4.3.3",
        SignatureScheme::Ecdsa,
        Some(HashAlgorithm::Sha384),
    ),
    (
        "1.2.840.10045.4.3.4",
        SignatureScheme::Ecdsa,
        Some(HashAlgorithm::Sha512),
    ),
    ("1.2.840.10045.2.1", SignatureScheme::Ecdsa, None),
    (
        "1.2.840.113549.1.1.11",
        SignatureScheme::RsaPkcs1,
        Some(HashAlgorithm::Sha256),
    ),
    (
        "1.2.840.113549.1.1.12",
        SignatureScheme::RsaPkcs1,
        Some(HashAlgorithm::Sha384),
    ),
    (
        "1.2.840.113549.1.1.13",
        SignatureScheme::RsaPkcs1,
        Some(HashAlgorithm::Sha512),
    ),
    ("1.2.840.113549.1.1.1", SignatureScheme::RsaPkcs1, None),
    ("1.2.840.113549.1.1.10", SignatureScheme::RsaPss, None),
];

/// The `key/algo` list of a credential: the signature algorithms its key can make.
pub fn key_algorithms(scheme_family_is_rsa: bool) -> Vec<&'static str> {
    SIGN_ALGORITHMS
        .iter()
        .filter(|(_, scheme, _)| (*scheme != SignatureScheme::Ecdsa) == scheme_family_is_rsa)
        .map(|(oid, ..)| *oid)
        .collect()
}

/// DER of `RSASSA-PSS-params` with MGF1 over the same hash and a salt as long as the hash
/// (RFC 8017 A.2.3), with the hash identifiers' parameters NULL (`null`) or absent.
fn pss_params(hash: HashAlgorithm, null: bool) -> Vec<u8> {
    let last = match hash {
        HashAlgorithm::Sha256 => 1,
        HashAlgorithm::Sha384 => 2,
        HashAlgorithm::Sha512 => 3,
    };
    let mut hash_id = vec![
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, last,
    ];
    if null {
        hash_id.extend_from_slice(&[0x05, 0x00]);
    }
    let tlv = |tag: u8, content: &[u8]| {
        let mut out = vec![tag, u8::try_from(content.len()).unwrap_or(0)];
        out.extend_from_slice(content);
        out
    };
    let hash_alg = tlv(0x30, &hash_id);
    let mgf1 = [
        vec![
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08,
        ],
        hash_alg.clone(),
    ]
    .concat();
    let salt = tlv(0x02, &[u8::try_from(hash.digest_len()).unwrap_or(0)]);
    let body = [
        tlv(0xa0, &hash_alg),
        tlv(0xa1, &tlv(0x30, &mgf1)),
        tlv(0xa2, &salt),
    ]
    .concat();
    tlv(0x30, &body)
}

/// The hash of RSASSA-PSS parameters we can honour (MGF1 with the same hash, salt = hash length).
pub fn pss_hash(params: &[u8]) -> Option<HashAlgorithm> {
    [
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha384,
        HashAlgorithm::Sha512,
    ]
    .into_iter()
    .find(|hash| {
        params == pss_params(*hash, true).as_slice()
            || params == pss_params(*hash, false).as_slice()
    })
}

impl SignHashRequest {
    /// Checks the request: the algorithm pair, the hashes' encoding and length.
    pub fn validate(&self) -> Result<SignHash, CscError> {
        let credential_id = credential_id(self.credential_id.as_ref())?;
        let sad = match &self.sad {
            Some(sad) if !sad.is_empty() && sad.len() <= 512 => sad.clone(),
            Some(_) => return Err(CscError::invalid("Invalid parameter SAD")),
            None => return Err(CscError::missing("SAD")),
        };
        if self
            .operation_mode
            .as_deref()
            .is_some_and(|mode| mode != "S")
        {
            return Err(CscError::invalid(
                "Invalid parameter operationMode: only S is offered",
            ));
        }
        let sign_algo = self
            .sign_algo
            .as_ref()
            .ok_or_else(|| CscError::missing("signAlgo"))?;
        let (_, scheme, implied) = SIGN_ALGORITHMS
            .iter()
            .find(|(oid, ..)| oid == sign_algo)
            .ok_or_else(|| CscError::invalid("Invalid parameter signAlgo"))?;
        let given = hash_algorithm(self.hash_algorithm_oid.as_ref())?;
        let from_params = match (&self.sign_algo_params, scheme) {
            (Some(params), SignatureScheme::RsaPss) => {
                let params = decode_base64(params)
                    .ok_or_else(|| CscError::invalid("Invalid parameter signAlgoParams"))?;
                Some(
                    pss_hash(&params)
                        .ok_or_else(|| CscError::invalid("Invalid parameter signAlgoParams"))?,
                )
            }
            (Some(_), _) => return Err(CscError::invalid("Invalid parameter signAlgoParams")),
            (None, _) => None,
        };
        let candidates = [*implied, from_params, given];
        let mut known = candidates.iter().flatten();
        let algorithm = *known
            .next()
            .ok_or_else(|| CscError::missing("hashAlgorithmOID"))?;
        if known.any(|other| *other != algorithm) {
            return Err(CscError::invalid(
                "Invalid parameter hashAlgorithmOID: it does not match signAlgo",
            ));
        }
        let hashes = decode_hashes(self.hashes.as_ref(), algorithm)?;
        Ok(SignHash {
            credential_id,
            sad,
            hashes,
            algorithm,
            scheme: *scheme,
        })
    }
}

/// `signatures/timestamp`: an RFC 3161 token over one hash (the v1 names `hash` and
/// `hashAlgo` are the v2 names here too).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TimestampRequest {
    /// The hash, base64.
    pub hash: Option<String>,
    /// Its algorithm's OID.
    #[serde(rename = "hashAlgo", alias = "hashAlgorithmOID")]
    pub hash_algo: Option<String>,
    /// A nonce, hex, echoed in the token.
    pub nonce: Option<String>,
    /// Correlation data.
    #[serde(rename = "clientData")]
    pub client_data: Option<String>,
}

/// A checked `signatures/timestamp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    /// The hash.
    pub hash: Vec<u8>,
    /// Its algorithm.
    pub algorithm: HashAlgorithm,
    /// The nonce's bytes.
    pub nonce: Option<Vec<u8>>,
}

impl TimestampRequest {
    /// Checks the request.
    pub fn validate(&self) -> Result<Timestamp, CscError> {
        let algorithm = hash_algorithm(self.hash_algo.as_ref())?
            .ok_or_else(|| CscError::missing("hashAlgo"))?;
        let text = self
            .hash
            .as_ref()
            .ok_or_else(|| CscError::missing("hash"))?;
        let hash = decode_base64(text)
            .ok_or_else(|| CscError::invalid("Invalid Base64 hash string parameter"))?;
        if hash.len() != algorithm.digest_len() {
            return Err(CscError::invalid("Invalid digest value length"));
        }
        let nonce = match &self.nonce {
            None => None,
            Some(hex)
                if !hex.is_empty()
                    && hex.len() <= 64
                    && hex.len() % 2 == 0
                    && hex.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Some(
                    hex.as_bytes()
                        .chunks(2)
                        .map(|pair| {
                            std::str::from_utf8(pair)
                                .ok()
                                .and_then(|p| u8::from_str_radix(p, 16).ok())
                                .unwrap_or(0)
                        })
                        .collect(),
                )
            }
            Some(_) => return Err(CscError::invalid("Invalid parameter nonce")),
        };
        Ok(Timestamp {
            hash,
            algorithm,
            nonce,
        })
    }
}

/// `auth/revoke`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RevokeRequest {
    /// The token to revoke (default: the caller's own).
    pub token: Option<String>,
    /// `access_token` or `refresh_token`.
    pub token_type_hint: Option<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const H: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

    #[test]
    fn stock_pyhanko_v1_names_are_accepted() {
        let request: SignHashRequest = parse(
            br#"{"credentialID":"ab","SAD":"s","hashAlgo":"2.16.840.1.101.3.4.2.1","signAlgo":"1.2.840.10045.4.3.2","hash":["47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="]}"#,
        )
        .unwrap();
        let valid = request.validate().unwrap();
        assert_eq!(valid.algorithm, HashAlgorithm::Sha256);
        assert_eq!(valid.scheme, SignatureScheme::Ecdsa);
        assert_eq!(valid.hashes, vec![decode_base64(H).unwrap()]);
    }

    #[test]
    fn authorize_binds_the_hashes_and_their_count() {
        let request: AuthorizeRequest =
            parse(br#"{"credentialID":"ab","numSignatures":1,"hashes":["47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"],"hashAlgorithmOID":"2.16.840.1.101.3.4.2.1"}"#).unwrap();
        assert_eq!(request.validate().unwrap().hashes.len(), 1);
        let two = AuthorizeRequest {
            num_signatures: Some(2),
            ..request.clone()
        };
        assert_eq!(two.validate().unwrap_err().error, "invalid_request");
        let none = AuthorizeRequest {
            hashes: None,
            ..request.clone()
        };
        assert!(none
            .validate()
            .unwrap_err()
            .error_description
            .contains("hashes"));
        let no_algo = AuthorizeRequest {
            hash_algorithm_oid: None,
            ..request.clone()
        };
        assert!(no_algo
            .validate()
            .unwrap_err()
            .error_description
            .contains("hashAlgorithmOID"));
        let sha1 = AuthorizeRequest {
            hash_algorithm_oid: Some("1.3.14.3.2.26".into()),
            ..request
        };
        assert_eq!(
            sha1.validate().unwrap_err().error_description,
            "Invalid parameter hashAlgorithmOID"
        );
    }

    #[test]
    fn a_description_that_could_draw_on_the_approval_screen_is_refused() {
        let request: AuthorizeRequest =
            parse(br#"{"credentialID":"ab","numSignatures":1,"hashes":["47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"],"hashAlgorithmOID":"2.16.840.1.101.3.4.2.1"}"#).unwrap();
        let with = |text: &str| AuthorizeRequest {
            description: Some(text.into()),
            ..request.clone()
        };
        assert_eq!(
            with("Уговор о закупу.pdf")
                .validate()
                .unwrap()
                .description
                .as_deref(),
            Some("Уговор о закупу.pdf")
        );
        assert!(with(&"ж".repeat(200)).validate().is_ok());
        for bad in [
            "x\u{1b}[2A\u{1b}[2K",
            "Ugovor\nКо тражи / Who asks: Портал",
            "a\u{202E}fdp",
            &"ж".repeat(201),
        ] {
            let error = with(bad).validate().unwrap_err();
            assert_eq!(
                (error.status, error.error),
                (400, "invalid_request"),
                "{bad:?}"
            );
            assert!(error.error_description.contains("description"), "{bad:?}");
        }
    }

    #[test]
    fn bad_hashes_and_algorithms_get_the_specifications_errors() {
        let base = SignHashRequest {
            credential_id: Some("ab".into()),
            sad: Some("s".into()),
            hashes: Some(vec![H.into()]),
            hash_algorithm_oid: None,
            sign_algo: Some("1.2.840.10045.4.3.2".into()),
            ..SignHashRequest::default()
        };
        assert!(base.validate().is_ok());
        let check = |request: SignHashRequest, expected: &str| {
            assert_eq!(request.validate().unwrap_err().error_description, expected)
        };
        check(
            SignHashRequest {
                hashes: Some(vec!["%%%".into()]),
                ..base.clone()
            },
            "Invalid Base64 hash string parameter",
        );
        check(
            SignHashRequest {
                hashes: Some(vec!["AAAA".into()]),
                ..base.clone()
            },
            "Invalid digest value length",
        );
        check(
            SignHashRequest {
                hashes: Some(vec![]),
                ..base.clone()
            },
            "Empty hash array",
        );
        check(
            SignHashRequest {
                sign_algo: Some("1.2.3.4".into()),
                ..base.clone()
            },
            "Invalid parameter signAlgo",
        );
        check(
            SignHashRequest {
                sad: None,
                ..base.clone()
            },
            "Missing (or invalid type) string parameter SAD",
        );
        check(
            SignHashRequest {
                credential_id: None,
                ..base.clone()
            },
            "Missing (or invalid type) string parameter credentialID",
        );
        check(
            SignHashRequest {
                hash_algorithm_oid: Some("2.16.840.1.101.3.4.2.3".into()),
                ..base.clone()
            },
            "Invalid parameter hashAlgorithmOID: it does not match signAlgo",
        );
        check(
            SignHashRequest {
                sign_algo: Some("1.2.840.113549.1.1.1".into()),
                ..base.clone()
            },
            "Missing (or invalid type) string parameter hashAlgorithmOID",
        );
        assert!(parse::<SignHashRequest>(br#"{"credentialID": 5}"#)
            .unwrap_err()
            .error_description
            .starts_with("Malformed request body"));
        assert!(parse::<SignHashRequest>(b"[").is_err());
    }

    #[test]
    fn pss_parameters_are_recognised_in_both_spellings() {
        for hash in [
            HashAlgorithm::Sha256,
            HashAlgorithm::Sha384,
            HashAlgorithm::Sha512,
        ] {
            assert_eq!(pss_hash(&pss_params(hash, true)), Some(hash));
            assert_eq!(pss_hash(&pss_params(hash, false)), Some(hash));
        }
        assert_eq!(pss_hash(b"\x30\x00"), None);
        // RFC 8017's SHA-256 parameters with NULL hash parameters, byte for byte.
        assert_eq!(
            pss_params(HashAlgorithm::Sha256, true),
            [
                &[
                    0x30, 0x34, 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
                    0x03, 0x04, 0x02, 0x01, 0x05, 0x00
                ][..],
                &[
                    0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
                    0x01, 0x08
                ],
                &[
                    0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
                    0x05, 0x00
                ],
                &[0xa2, 0x03, 0x02, 0x01, 0x20],
            ]
            .concat()
        );
    }
}

/// `GET /oauth2/authorize` (RFC 6749 §4.1.1 with PKCE, RFC 7636; CSC §8.3.2), as a query.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OAuthAuthorizeQuery {
    /// Must be `code`.
    pub response_type: Option<String>,
    /// The client's self-chosen name, shown to the user.
    pub client_id: Option<String>,
    /// Where the code goes: a loopback address (RFC 8252 §7.3).
    pub redirect_uri: Option<String>,
    /// `service` (the default); `credential` is not offered.
    pub scope: Option<String>,
    /// The PKCE challenge.
    pub code_challenge: Option<String>,
    /// Must be `S256`.
    pub code_challenge_method: Option<String>,
    /// Echoed to the client.
    pub state: Option<String>,
}

/// A checked authorisation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthAuthorize {
    /// The client's name.
    pub client_id: String,
    /// The loopback redirect URI.
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// The client's state, if any.
    pub state: Option<String>,
}

/// Why an authorisation request is refused: `redirect` errors go back to the client's
/// redirect URI (RFC 6749 §4.1.2.1); the others are shown to the user, because the client or
/// its redirect URI cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthRefusal {
    /// The OAuth error code.
    pub error: &'static str,
    /// What is wrong.
    pub description: &'static str,
    /// Whether the redirect URI is valid, so that the error may be sent there.
    pub redirect: bool,
}

/// Whether a redirect URI is a loopback one: `http://127.0.0.1[:port]/…`, `http://[::1]…` or
/// `http://localhost…` (RFC 8252 §7.3), without fragment or user info. A code sent there
/// stays on the user's own computer.
pub fn loopback_redirect(uri: &str) -> bool {
    let Some(rest) = uri.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host = if authority.starts_with("[::1]") {
        "[::1]"
    } else {
        authority.split(':').next().unwrap_or("")
    };
    let port_ok = match authority.strip_prefix(host) {
        Some("") => true,
        Some(port) => port.strip_prefix(':').is_some_and(|p| {
            !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
        }),
        None => false,
    };
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
        && port_ok
        && !uri.contains('#')
        && uri.len() <= 512
        && !uri.chars().any(|c| c.is_control() || c.is_whitespace())
}

fn pkce_text_ok(text: &str) -> bool {
    (43..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl OAuthAuthorizeQuery {
    /// Checks the request.
    pub fn validate(&self) -> Result<OAuthAuthorize, OAuthRefusal> {
        let refuse = |error, description, redirect| OAuthRefusal {
            error,
            description,
            redirect,
        };
        let client_id = match &self.client_id {
            Some(id)
                if !id.is_empty()
                    && id.chars().count() <= 64
                    && !id.chars().any(char::is_control) =>
            {
                id.clone()
            }
            _ => {
                return Err(refuse(
                    "invalid_request",
                    "client_id is missing or invalid",
                    false,
                ))
            }
        };
        let redirect_uri = match &self.redirect_uri {
            Some(uri) if loopback_redirect(uri) => uri.clone(),
            _ => {
                return Err(refuse(
                    "invalid_request",
                    "redirect_uri must be a loopback address (http://127.0.0.1:PORT/...)",
                    false,
                ))
            }
        };
        if self.response_type.as_deref() != Some("code") {
            return Err(refuse(
                "unsupported_response_type",
                "response_type must be code",
                true,
            ));
        }
        if !matches!(self.scope.as_deref(), None | Some("service")) {
            return Err(refuse(
                "invalid_scope",
                "only the service scope is offered",
                true,
            ));
        }
        if self.code_challenge_method.as_deref() != Some("S256") {
            return Err(refuse(
                "invalid_request",
                "PKCE with code_challenge_method S256 is required",
                true,
            ));
        }
        let code_challenge = match &self.code_challenge {
            Some(challenge) if pkce_text_ok(challenge) => challenge.clone(),
            _ => {
                return Err(refuse(
                    "invalid_request",
                    "code_challenge is missing or invalid",
                    true,
                ))
            }
        };
        if self.state.as_ref().is_some_and(|s| s.len() > 512) {
            return Err(refuse("invalid_request", "state is too long", true));
        }
        Ok(OAuthAuthorize {
            client_id,
            redirect_uri,
            code_challenge,
            state: self.state.clone(),
        })
    }
}

/// `POST /oauth2/token` (form-encoded, RFC 6749 §4.1.3).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OAuthTokenForm {
    /// Must be `authorization_code`.
    pub grant_type: Option<String>,
    /// The code.
    pub code: Option<String>,
    /// The same redirect URI as in the authorisation request.
    pub redirect_uri: Option<String>,
    /// The same client.
    pub client_id: Option<String>,
    /// The PKCE verifier.
    pub code_verifier: Option<String>,
}

/// A checked token request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthToken {
    /// The code.
    pub code: String,
    /// The redirect URI.
    pub redirect_uri: String,
    /// The client.
    pub client_id: String,
    /// The PKCE verifier.
    pub code_verifier: String,
}

impl OAuthTokenForm {
    /// Checks the request; the error is `(error, description)` of RFC 6749 §5.2.
    pub fn validate(&self) -> Result<OAuthToken, (&'static str, &'static str)> {
        if self.grant_type.as_deref() != Some("authorization_code") {
            return Err((
                "unsupported_grant_type",
                "only authorization_code is offered",
            ));
        }
        let field = |value: &Option<String>, what: &'static str| match value {
            Some(v) if !v.is_empty() && v.len() <= 512 => Ok(v.clone()),
            _ => Err(("invalid_request", what)),
        };
        let code_verifier = field(&self.code_verifier, "code_verifier is missing")?;
        if !pkce_text_ok(&code_verifier) {
            return Err(("invalid_request", "code_verifier is malformed"));
        }
        Ok(OAuthToken {
            code: field(&self.code, "code is missing")?,
            redirect_uri: field(&self.redirect_uri, "redirect_uri is missing")?,
            client_id: field(&self.client_id, "client_id is missing")?,
            code_verifier,
        })
    }
}

/// The PKCE S256 challenge of a verifier: base64url(SHA-256(verifier)) without padding.
pub fn pkce_challenge(verifier_sha256: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(verifier_sha256)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod oauth_tests {
    use super::*;

    #[test]
    fn only_loopback_redirects_are_accepted() {
        for good in [
            "http://127.0.0.1:8765/callback",
            "http://localhost/cb?x=1",
            "http://[::1]:9000/",
            "http://127.0.0.1",
        ] {
            assert!(loopback_redirect(good), "{good}");
        }
        for bad in [
            "https://evil.example/cb",
            "http://127.0.0.1.evil.example/cb",
            "http://localhost.evil.example/",
            "http://127.0.0.1:80x/",
            "http://127.0.0.1:8765/cb#frag",
            "http://user@127.0.0.1/",
            "javascript:alert(1)",
            "http://127.0.0.1:/",
        ] {
            assert!(!loopback_redirect(bad), "{bad}");
        }
    }

    #[test]
    fn authorisation_requests_need_pkce_and_the_service_scope() {
        let good = OAuthAuthorizeQuery {
            response_type: Some("code".into()),
            client_id: Some("pyHanko".into()),
            redirect_uri: Some("http://127.0.0.1:8765/cb".into()),
            scope: Some("service".into()),
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
            code_challenge_method: Some("S256".into()),
            state: Some("xyz".into()),
        };
        assert!(good.validate().is_ok());
        let no_pkce = OAuthAuthorizeQuery {
            code_challenge_method: None,
            ..good.clone()
        };
        assert_eq!(no_pkce.validate().unwrap_err().error, "invalid_request");
        let credential = OAuthAuthorizeQuery {
            scope: Some("credential".into()),
            ..good.clone()
        };
        assert_eq!(credential.validate().unwrap_err().error, "invalid_scope");
        let remote = OAuthAuthorizeQuery {
            redirect_uri: Some("https://evil.example/".into()),
            ..good
        };
        assert!(
            !remote.validate().unwrap_err().redirect,
            "never redirect to an untrusted URI"
        );
    }

    #[test]
    fn the_rfc_7636_example_challenge() {
        // RFC 7636 Appendix B: verifier dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk.
        use std::num::ParseIntError;
        let digest: Result<Vec<u8>, ParseIntError> =
            "13d31e961a1ad8ec2f16b10c4c982e0876a878ad6df144566ee1894acb70f9c3"
                .as_bytes()
                .chunks(2)
                .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap_or(""), 16))
                .collect();
        assert_eq!(
            pkce_challenge(&digest.unwrap()),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
