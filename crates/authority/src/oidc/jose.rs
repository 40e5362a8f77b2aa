//! JOSE for the provider. What clients send (client assertions, RFC 7523; DPoP proofs,
//! RFC 9449) is parsed and verified by `jsonwebtoken` (aws-lc-rs). What we sign (ID tokens)
//! is signed by a [`KeySigner`] of the key backend, so the key may live in the HSM, where
//! `jsonwebtoken`, which wants the private key's bytes, cannot reach it: [`sign_es256`] joins
//! the two base64url parts (RFC 7515 §7.1) around the backend's ECDSA signature, as the Web
//! Push VAPID token already did. The tests check our tokens with `jsonwebtoken`.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::DecodePublicKey as _;
use serde::Deserialize;
use serde_json::{json, Value};

use domain::oidc::{DpopProof, ALLOWED_ALGORITHMS};
use pki::KeySigner;

/// Why a client's JWS is refused (the token endpoint answers `invalid_client`, the resource
/// endpoints `invalid_dpop_proof`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsRefusal {
    /// Not a JWS, or a header or claims that do not parse.
    #[error("malformed JWS: {0}")]
    Malformed(String),
    /// An algorithm other than ES256 or PS256.
    #[error("algorithm not allowed")]
    Algorithm,
    /// No registered key fits, or the signature does not verify.
    #[error("the signature does not verify with a registered key")]
    Signature,
    /// A claim is wrong: issuer, subject, audience, expiry.
    #[error("claim refused: {0}")]
    Claim(String),
}

fn algorithm(name: &str) -> Result<Algorithm, JwsRefusal> {
    match name {
        "ES256" if ALLOWED_ALGORITHMS.contains(&name) => Ok(Algorithm::ES256),
        "PS256" if ALLOWED_ALGORITHMS.contains(&name) => Ok(Algorithm::PS256),
        _ => Err(JwsRefusal::Algorithm),
    }
}

/// The public key of an ES256 signer as a JWK with its `kid` (the RFC 7638 thumbprint).
pub fn public_jwk(key: &dyn KeySigner) -> Result<Value, String> {
    let public = p256::PublicKey::from_public_key_der(&key.public_key().0)
        .map_err(|_| "the ID-token key is not a P-256 key".to_owned())?;
    let point = public.to_encoded_point(false);
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        return Err("the ID-token key's point is not uncompressed".into());
    };
    let (x, y) = (proto::b64(x), proto::b64(y));
    let public: Jwk =
        serde_json::from_value(json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y }))
            .map_err(|e| e.to_string())?;
    let kid = public.thumbprint(ThumbprintHash::SHA256);
    Ok(json!({
        "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "use": "sig", "alg": "ES256",
    }))
}

/// A compact JWS (RFC 7515) of `claims`, ES256, signed by `key` (see the module's text): the
/// ID and logout tokens, and Web Push's VAPID token (no `kid`).
pub fn sign_es256(
    key: &dyn KeySigner,
    kid: Option<&str>,
    typ: &str,
    claims: &Value,
) -> Result<String, String> {
    let header = match kid {
        Some(kid) => json!({ "alg": "ES256", "kid": kid, "typ": typ }),
        None => json!({ "typ": typ, "alg": "ES256" }),
    };
    let input = format!(
        "{}.{}",
        proto::b64(header.to_string().as_bytes()),
        proto::b64(claims.to_string().as_bytes())
    );
    let der = key
        .sign(input.as_bytes())
        .map_err(|e| format!("ES256 signature: {e}"))?;
    // JWS wants r ‖ s (RFC 7518 §3.4), the backend gives DER.
    let signature = p256::ecdsa::Signature::from_der(&der)
        .map_err(|_| "the signature is not ECDSA P-256".to_owned())?;
    Ok(format!("{input}.{}", proto::b64(&signature.to_bytes())))
}

/// The claims of a client assertion we read (RFC 7523 §3).
#[derive(Debug, Deserialize)]
pub struct AssertionClaims {
    /// The client.
    pub iss: String,
    /// The client again.
    pub sub: String,
    /// Once only.
    pub jti: String,
    /// Its end.
    pub exp: i64,
}

/// Verifies a client assertion against the client's registered JWKS: signed by one of its
/// keys with ES256 or PS256, `iss` and `sub` the client, `aud` one of `audiences` (the issuer
/// or the endpoint), not expired at `now`. The caller spends its `jti`.
pub fn verify_client_assertion(
    assertion: &str,
    jwks: &str,
    client_id: &str,
    audiences: &[&str],
    now: i64,
) -> Result<AssertionClaims, JwsRefusal> {
    let header =
        jsonwebtoken::decode_header(assertion).map_err(|e| JwsRefusal::Malformed(e.to_string()))?;
    let alg = algorithm(&format!("{:?}", header.alg))?;
    let set: JwkSet =
        serde_json::from_str(jwks).map_err(|e| JwsRefusal::Malformed(format!("JWKS: {e}")))?;
    let candidates: Vec<&Jwk> = match &header.kid {
        Some(kid) => set
            .keys
            .iter()
            .filter(|k| k.common.key_id.as_deref() == Some(kid))
            .collect(),
        None => set.keys.iter().collect(),
    };
    let mut validation = Validation::new(alg);
    validation.set_audience(audiences);
    validation.set_issuer(&[client_id]);
    validation.sub = Some(client_id.to_owned());
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.leeway = 5;
    validation.validate_exp = false;
    for jwk in candidates {
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        match jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation) {
            Ok(data) => {
                if data.claims.exp + validation.leeway as i64 <= now {
                    return Err(JwsRefusal::Claim("the assertion has expired".into()));
                }
                if data.claims.jti.is_empty() || data.claims.jti.len() > 256 {
                    return Err(JwsRefusal::Claim("jti".into()));
                }
                return Ok(data.claims);
            }
            Err(error) => match error.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature
                | jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
                | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat => continue,
                _ => return Err(JwsRefusal::Claim(error.to_string())),
            },
        }
    }
    Err(JwsRefusal::Signature)
}

#[derive(Deserialize)]
struct DpopClaims {
    htm: String,
    htu: String,
    iat: i64,
    jti: String,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// A DPoP proof whose signature verifies with the public key in its own header: its claims,
/// for `domain::oidc::check_dpop_proof`, and the key's thumbprint (`jkt`, RFC 9449 §6.1).
pub fn verify_dpop_proof(proof: &str) -> Result<(DpopProof, String), JwsRefusal> {
    let header =
        jsonwebtoken::decode_header(proof).map_err(|e| JwsRefusal::Malformed(e.to_string()))?;
    let alg_name = format!("{:?}", header.alg);
    let alg = algorithm(&alg_name)?;
    let jwk = header
        .jwk
        .as_ref()
        .ok_or_else(|| JwsRefusal::Malformed("no jwk in the header".into()))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| JwsRefusal::Signature)?;
    let mut validation = Validation::new(alg);
    validation.set_required_spec_claims::<&str>(&[]);
    validation.validate_exp = false;
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<DpopClaims>(proof, &key, &validation).map_err(|e| match e
        .kind()
    {
        jsonwebtoken::errors::ErrorKind::InvalidSignature => JwsRefusal::Signature,
        _ => JwsRefusal::Malformed(e.to_string()),
    })?;
    let claims = data.claims;
    Ok((
        DpopProof {
            typ: header.typ.unwrap_or_default(),
            alg: alg_name,
            htm: claims.htm,
            htu: claims.htu,
            iat: claims.iat,
            jti: claims.jti,
            ath: claims.ath,
            nonce: claims.nonce,
        },
        jwk.thumbprint(ThumbprintHash::SHA256),
    ))
}

/// A JWKS an operator registers: parses, and every key is an EC P-256 or RSA signing key.
pub fn check_client_jwks(jwks: &str) -> Result<(), String> {
    let set: JwkSet = serde_json::from_str(jwks).map_err(|e| format!("not a JWKS: {e}"))?;
    if set.keys.is_empty() {
        return Err("the JWKS has no keys".into());
    }
    for key in &set.keys {
        // Only what ES256 or PS256 can verify: a symmetric key, or another curve, would be
        // registered and never match.
        match &key.algorithm {
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {}
            AlgorithmParameters::RSA(_) => {}
            _ => return Err("a key is neither EC P-256 nor RSA".into()),
        }
        DecodingKey::from_jwk(key).map_err(|e| format!("a key is not usable: {e}"))?;
    }
    Ok(())
}

/// The claims of one of our own ID tokens we read back (an `id_token_hint`).
#[derive(Debug, Deserialize)]
pub struct OwnTokenClaims {
    /// The client it was issued to.
    pub aud: String,
    /// The portal session (or a CIBA login's own).
    #[serde(default)]
    pub sid: Option<String>,
}

/// Verifies an ID token we issued (an `id_token_hint`, of RP-initiated logout or CIBA): our signature with
/// `jwk`, our issuer; an expired one is still good as a hint (OpenID RP-Initiated Logout 1.0
/// §2).
pub fn verify_own_id_token(
    token: &str,
    jwk: &Value,
    issuer: &str,
) -> Result<OwnTokenClaims, JwsRefusal> {
    let jwk: Jwk =
        serde_json::from_value(jwk.clone()).map_err(|e| JwsRefusal::Malformed(e.to_string()))?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| JwsRefusal::Signature)?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[issuer]);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["iss", "aud"]);
    jsonwebtoken::decode::<OwnTokenClaims>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => JwsRefusal::Signature,
            _ => JwsRefusal::Claim(e.to_string()),
        })
}
