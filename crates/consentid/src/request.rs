//! Requests delivered to the app: verifying the server's signature on each envelope, keeping
//! the exact payload bytes (reference/mobile-auth.md §7.4: no JSON canonicalisation), and the
//! verification code the user matches against the browser (§7.5 step 2).

use std::fmt;

use proto::app::{BrowserOrigin, Envelope, RequestKind, RequestPayload};
use rand::Rng;

use crate::error::{EnvelopeError, Error};

/// A 4-digit verification code.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VerificationCode(String);

impl VerificationCode {
    /// Parses a code typed or picked by the user: exactly 4 ASCII digits (surrounding spaces
    /// ignored).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        if text.len() == 4 && text.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(text.to_owned()))
        } else {
            Err(Error::InvalidVerificationCode)
        }
    }

    /// The code of a challenge (`proto::crypto::verification_code`).
    pub fn of_challenge(challenge: &[u8]) -> Self {
        Self(proto::crypto::verification_code(challenge))
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VerificationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for VerificationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerificationCode({})", self.0)
    }
}

/// The real code and two distinct random decoys, in random order: the user picks the one the
/// browser shows (number matching, reference/mobile-auth.md §7.5 step 2).
pub fn three_codes(real: &VerificationCode) -> [VerificationCode; 3] {
    let mut rng = rand::rngs::OsRng;
    let mut decoy = |taken: &[&VerificationCode]| loop {
        let candidate = VerificationCode(format!("{:04}", rng.gen_range(0..10_000u16)));
        if taken.iter().all(|t| **t != candidate) {
            break candidate;
        }
    };
    let first = decoy(&[real]);
    let second = decoy(&[real, &first]);
    match rand::rngs::OsRng.gen_range(0..3u8) {
        0 => [real.clone(), first, second],
        1 => [first, real.clone(), second],
        _ => [first, second, real.clone()],
    }
}

/// A request whose envelope verified under the pinned server key.
#[derive(Debug, Clone)]
pub struct VerifiedRequest {
    payload: RequestPayload,
    payload_bytes: Vec<u8>,
    code: VerificationCode,
    origin: Option<BrowserOrigin>,
    at_computer: bool,
}

impl VerifiedRequest {
    /// What the server asks (parsed from the signed bytes).
    pub fn payload(&self) -> &RequestPayload {
        &self.payload
    }

    /// The exact signed payload bytes (hashed into the approval message).
    pub fn payload_bytes(&self) -> &[u8] {
        &self.payload_bytes
    }

    /// The transaction id.
    pub fn txn_id(&self) -> &str {
        &self.payload.txn_id
    }

    /// Login or sign.
    pub fn kind(&self) -> RequestKind {
        self.payload.kind
    }

    /// The verification code, recomputed from the signed challenge (never taken from any
    /// other field).
    pub fn verification_code(&self) -> &VerificationCode {
        &self.code
    }

    /// Where the browser is, when it is on another network than this phone (issue 22): the
    /// app warns, and the user must confirm being at that computer before approving.
    pub fn from_another_network(&self) -> Option<&str> {
        self.origin
            .as_ref()
            .filter(|origin| !origin.same_network)
            .map(|origin| origin.location.as_str())
    }

    /// The user confirmed "I am at that computer".
    pub fn confirm_at_computer(&mut self) {
        self.at_computer = true;
    }

    /// Whether the user confirmed being at the browser's computer.
    pub fn at_computer(&self) -> bool {
        self.at_computer
    }

    /// Seconds until the request expires at `now` (0 once expired).
    pub fn seconds_left(&self, now: i64) -> i64 {
        (self.payload.expires_at - now).max(0)
    }
}

/// Characters allowed in values that enter the approval message or a URL path
/// (reference/mobile-auth.md §7.6).
pub(crate) fn is_safe_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        && value.bytes().any(|b| b.is_ascii_alphanumeric())
}

/// Verifies an envelope with the pinned server signing key (SPKI DER), then parses the payload
/// bytes. Nothing in the envelope is looked at before the signature verifies.
pub fn verify_envelope(
    server_signing_key: &[u8],
    envelope: &Envelope,
) -> Result<VerifiedRequest, EnvelopeError> {
    let payload_bytes = proto::unb64(&envelope.payload).map_err(|_| EnvelopeError::Encoding)?;
    let signature = proto::unb64(&envelope.signature).map_err(|_| EnvelopeError::Encoding)?;
    proto::crypto::verify(server_signing_key, &payload_bytes, &signature)
        .map_err(|_| EnvelopeError::Signature)?;
    let payload: RequestPayload = serde_json::from_slice(&payload_bytes)
        .map_err(|e| EnvelopeError::Payload(e.to_string()))?;
    if payload.v != 1 {
        return Err(EnvelopeError::Version(payload.v));
    }
    if !is_safe_value(&payload.txn_id) {
        return Err(EnvelopeError::UnsafeField("txn_id"));
    }
    if !is_safe_value(&payload.rp.id) {
        return Err(EnvelopeError::UnsafeField("rp.id"));
    }
    let challenge = proto::unb64(&payload.challenge).map_err(|_| EnvelopeError::Challenge)?;
    if challenge.len() != 32 {
        return Err(EnvelopeError::Challenge);
    }
    let code = VerificationCode::of_challenge(&challenge);
    Ok(VerifiedRequest {
        payload,
        payload_bytes,
        code,
        origin: envelope.origin.clone(),
        at_computer: false,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use p256::SecretKey;
    use proto::app::{RelyingParty, RequestContext};

    pub(crate) fn payload(txn_id: &str, kind: RequestKind, expires_at: i64) -> RequestPayload {
        RequestPayload {
            v: 1,
            txn_id: txn_id.to_owned(),
            kind,
            rp: RelyingParty {
                id: "eidportal".into(),
                name: "Портал за електронску идентификацију".into(),
            },
            user: "Петар Петровић".into(),
            challenge: proto::b64(&[7u8; 32]),
            created_at: expires_at - 120,
            expires_at,
            context: RequestContext {
                browser: "Firefox / Linux".into(),
                ip: "127.0.0.1".into(),
            },
            sign: None,
            certificate: None,
            flow: None,
            message: None,
        }
    }

    pub(crate) fn seal_envelope(server: &SecretKey, payload: &RequestPayload) -> Envelope {
        let bytes = serde_json::to_vec(payload).unwrap();
        Envelope {
            origin: None,
            payload: proto::b64(&bytes),
            signature: proto::b64(&proto::crypto::sign(server, &bytes)),
        }
    }

    fn spki(key: &SecretKey) -> Vec<u8> {
        proto::crypto::public_key_der(&key.public_key())
    }

    #[test]
    fn three_codes_hold_the_real_one_and_two_distinct_decoys() {
        let real = VerificationCode::parse("4821").unwrap();
        let mut positions = [0usize; 3];
        for _ in 0..300 {
            let codes = three_codes(&real);
            assert_eq!(codes.iter().filter(|c| **c == real).count(), 1);
            assert!(codes[0] != codes[1] && codes[1] != codes[2] && codes[0] != codes[2]);
            assert!(codes
                .iter()
                .all(|c| VerificationCode::parse(c.as_str()).is_ok()));
            positions[codes.iter().position(|c| *c == real).unwrap()] += 1;
        }
        assert!(
            positions.iter().all(|&n| n > 0),
            "the real code must not always sit in one place: {positions:?}"
        );
    }

    #[test]
    fn verification_codes_are_four_digits() {
        assert!(VerificationCode::parse(" 0042 ").is_ok());
        for bad in ["042", "04200", "04a2", "", "4821\nvc=1"] {
            assert!(
                matches!(
                    VerificationCode::parse(bad),
                    Err(Error::InvalidVerificationCode)
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_signed_envelope_verifies_and_keeps_the_exact_bytes() {
        let server = SecretKey::random(&mut rand::rngs::OsRng);
        let envelope = seal_envelope(&server, &payload("txn-1", RequestKind::Login, 1000));
        let request = verify_envelope(&spki(&server), &envelope).unwrap();
        assert_eq!(request.txn_id(), "txn-1");
        assert_eq!(proto::b64(request.payload_bytes()), envelope.payload);
        assert_eq!(
            request.verification_code().as_str(),
            proto::crypto::verification_code(&[7u8; 32])
        );
        assert_eq!(request.seconds_left(900), 100);
        assert_eq!(request.seconds_left(2000), 0);
    }

    #[test]
    fn a_tampered_or_foreign_envelope_is_rejected() {
        let server = SecretKey::random(&mut rand::rngs::OsRng);
        let original = payload("txn-1", RequestKind::Login, 1000);
        let envelope = seal_envelope(&server, &original);

        // Same signature, payload changed from login to sign.
        let mut tampered_payload = original.clone();
        tampered_payload.kind = RequestKind::Sign;
        let tampered = Envelope {
            payload: proto::b64(&serde_json::to_vec(&tampered_payload).unwrap()),
            signature: envelope.signature.clone(),
            origin: None,
        };
        assert_eq!(
            verify_envelope(&spki(&server), &tampered).unwrap_err(),
            EnvelopeError::Signature
        );

        // One flipped byte.
        let mut bytes = proto::unb64(&envelope.payload).unwrap();
        bytes[10] ^= 1;
        let flipped = Envelope {
            payload: proto::b64(&bytes),
            signature: envelope.signature.clone(),
            origin: None,
        };
        assert_eq!(
            verify_envelope(&spki(&server), &flipped).unwrap_err(),
            EnvelopeError::Signature
        );

        // Signed by another key than the pinned one.
        let other = SecretKey::random(&mut rand::rngs::OsRng);
        assert_eq!(
            verify_envelope(&spki(&other), &envelope).unwrap_err(),
            EnvelopeError::Signature
        );

        let junk = Envelope {
            payload: "%%%".into(),
            signature: envelope.signature,
            origin: None,
        };
        assert_eq!(
            verify_envelope(&spki(&server), &junk).unwrap_err(),
            EnvelopeError::Encoding
        );
    }

    #[test]
    fn signed_but_unsafe_payloads_are_rejected() {
        let server = SecretKey::random(&mut rand::rngs::OsRng);
        let mut injected = payload("txn-1\ndecision=approve", RequestKind::Login, 1000);
        assert_eq!(
            verify_envelope(&spki(&server), &seal_envelope(&server, &injected)).unwrap_err(),
            EnvelopeError::UnsafeField("txn_id")
        );
        injected.txn_id = "..".into();
        assert_eq!(
            verify_envelope(&spki(&server), &seal_envelope(&server, &injected)).unwrap_err(),
            EnvelopeError::UnsafeField("txn_id")
        );
        let mut short = payload("txn-1", RequestKind::Login, 1000);
        short.challenge = proto::b64(&[1u8; 16]);
        assert_eq!(
            verify_envelope(&spki(&server), &seal_envelope(&server, &short)).unwrap_err(),
            EnvelopeError::Challenge
        );
        let mut future = payload("txn-1", RequestKind::Login, 1000);
        future.v = 2;
        assert_eq!(
            verify_envelope(&spki(&server), &seal_envelope(&server, &future)).unwrap_err(),
            EnvelopeError::Version(2)
        );
    }
}
