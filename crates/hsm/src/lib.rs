//! The PKCS#11 key backend: CA, OCSP and cloud-signing keys generated and kept inside a
//! hardware security module (or SoftHSM2 in tests), used through [`pki::KeyBackend`] and
//! [`pki::KeySigner`]. Private keys are created sensitive and non-extractable, so no private key
//! material ever leaves the token; this crate only asks the token to sign digests and, for P-256
//! keys, to compute ECDH shared secrets.
//!
//! PKCS#11 background (PKCS#11 v2.40 base specification):
//! - `C_Initialize` is per process (§5.4), so a module is loaded and initialised once per
//!   process and shared by every [`Pkcs11Backend`] opened on it; it is never finalised.
//! - Login state is per token and application, shared by all sessions (§2.6.7); we log in as
//!   user once and again only when a fresh session finds the token logged out.
//! - A session must not be used by two threads at once (§2.6.2), so signers borrow sessions
//!   from a small pool.

pub mod test_support;
use std::fmt;
use std::os::raw::c_ulong;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CryptokiError, RvError};
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::{AuthPin, Ulong};
use der::asn1::OctetStringRef;
use der::Decode as _;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::elliptic_curve::zeroize::Zeroizing;
use p256::pkcs8::EncodePublicKey as _;
use pki::{
    ecdsa_raw_to_der, Digest, Error, GeneratedKey, KeyAlgorithm, KeyBackend, KeyReference,
    KeySigner, PublicKeyDer, RsaPadding,
};
use rsa::traits::PublicKeyParts as _;

/// Version tag at the start of every [`KeyReference`] this backend makes; the `CKA_ID` follows.
const REFERENCE_V1: &[u8] = b"p11v1:";

/// Length of the random `CKA_ID` given to each new key pair.
const KEY_ID_LEN: usize = 16;

/// Longest `CKA_ID` accepted in a reference (ours are [`KEY_ID_LEN`] bytes).
const MAX_KEY_ID_LEN: usize = 64;

/// `CKA_EC_PARAMS` for P-256: the DER of the named-curve OID 1.2.840.10045.3.1.7
/// (RFC 5480 §2.1.1.1, PKCS#11 v2.40 curr. mechanisms §2.3.3).
const P256_PARAMETERS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// The RSA public exponent 65537, big-endian.
const RSA_PUBLIC_EXPONENT: [u8; 3] = [0x01, 0x00, 0x01];

/// RSA modulus length we generate and accept.
const RSA_MODULUS_BITS: usize = 3072;

/// Length of a P-256 ECDH shared secret: the x-coordinate of the shared point (SEC 1 §3.3.1).
const P256_SHARED_SECRET_LEN: usize = 32;

/// Idle sessions kept open per token; more are opened under load and closed after use.
const MAX_IDLE_SESSIONS: usize = 8;

/// The user PIN of a token. Its `Debug` prints `[redacted]`, and the memory is zeroed on drop.
pub struct Pin(AuthPin);

impl Pin {
    /// Wraps a PIN read from the configuration or the environment.
    pub fn new(pin: impl Into<String>) -> Self {
        Self(AuthPin::from(pin.into()))
    }
}

impl From<String> for Pin {
    fn from(pin: String) -> Self {
        Self::new(pin)
    }
}

impl From<&str> for Pin {
    fn from(pin: &str) -> Self {
        Self::new(pin)
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Keys in one token of a PKCS#11 module, reached through a pool of logged-in sessions.
///
/// Cheap to clone; clones share the pool. Signers opened from it keep the token open even
/// after the backend itself is dropped.
#[derive(Clone)]
pub struct Pkcs11Backend {
    token: Arc<Token>,
}

impl fmt::Debug for Pkcs11Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Backend")
            .field("module", &self.token.module)
            .field("token", &self.token.label)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Backend {
    /// Opens the token labelled `token_label` in the PKCS#11 module at `module` and logs in
    /// as user with `pin`.
    ///
    /// 1. Load and initialise the module (`C_Initialize` with `CKF_OS_LOCKING_OK`), once per
    ///    process: a second backend on the same module shares the loaded library.
    /// 2. Find the one slot whose token carries `token_label`.
    /// 3. Open a read/write session and log in, so that a wrong PIN fails here and not at the
    ///    first signature. If another backend in this process is already logged in to the same
    ///    token, PKCS#11 reports `CKR_USER_ALREADY_LOGGED_IN` without checking `pin`.
    pub fn open(module: &Path, token_label: &str, pin: Pin) -> Result<Self, Error> {
        let context = loaded_module(module)?;
        let slot = find_slot(&context, module, token_label)?;
        let token = Token {
            module: module.to_path_buf(),
            label: token_label.to_owned(),
            context,
            slot,
            pin: pin.0,
            idle: Mutex::new(Vec::new()),
        };
        let session = token
            .open_session()
            .map_err(|failure| failure.into_error(&token.label))?;
        token.check_in(session);
        tracing::info!(module = %module.display(), token = token_label, "PKCS#11 token opened");
        Ok(Self {
            token: Arc::new(token),
        })
    }
}

impl Pkcs11Backend {
    /// Generates a key pair; `agreement`: the private key may also derive (ECDH).
    fn generate_pair(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
        agreement: bool,
    ) -> Result<GeneratedKey, Error> {
        let generated = self.token.with_session(Retry::No, |session| {
            let id = session
                .generate_random_vec(KEY_ID_LEN as u32)
                .during("generate a random CKA_ID")?;
            let (mechanism, public_template, private_template) =
                key_pair_templates(label, &id, algorithm, agreement);
            let (public, private) = session
                .generate_key_pair(&mechanism, &public_template, &private_template)
                .during("generate a key pair")?;
            // Read the public key back before handing out the reference; should that fail,
            // remove the pair again rather than leave an orphan in the token.
            match public_key_of(session, algorithm, public) {
                Ok(public_key) => Ok(GeneratedKey {
                    reference: encode_reference(&id),
                    public_key,
                }),
                Err(failure) => {
                    for object in [private, public] {
                        if let Err(error) = session.destroy_object(object) {
                            tracing::warn!(%error, "could not remove a half-made key pair");
                        }
                    }
                    Err(failure)
                }
            }
        })?;
        tracing::info!(
            token = %self.token.label,
            label,
            algorithm = algorithm.as_str(),
            agreement,
            "key pair generated in PKCS#11 token"
        );
        Ok(generated)
    }
}

impl KeyBackend for Pkcs11Backend {
    fn name(&self) -> &'static str {
        "pkcs11"
    }

    fn keeps_objects(&self) -> bool {
        true
    }

    /// Generates the key pair inside the token (PKCS#11 v2.40 §5.14 `C_GenerateKeyPair`): the
    /// private key is a sensitive, non-extractable token object that may only sign
    /// (`CKA_DERIVE` false: a signing key does no key agreement), and the public key a token
    /// object with the same random `CKA_ID`.
    fn generate(&self, label: &str, algorithm: KeyAlgorithm) -> Result<GeneratedKey, Error> {
        self.generate_pair(label, algorithm, false)
    }

    /// A P-256 pair whose private key may also derive ECDH secrets (`CKA_DERIVE` true).
    fn generate_agreement_key(&self, label: &str) -> Result<GeneratedKey, Error> {
        self.generate_pair(label, KeyAlgorithm::EcdsaP256, true)
    }

    /// None: a token's secret objects would be objects without a key record. The audit key of
    /// a PKCS#11 deployment comes from ECDH with the ConsentID encryption key instead (in
    /// `server::open_authority`).
    fn derive_secret(&self, _purpose: &str) -> Result<Option<Zeroizing<[u8; 32]>>, Error> {
        Ok(None)
    }

    fn open(&self, reference: &KeyReference) -> Result<Arc<dyn KeySigner>, Error> {
        let id = decode_reference(reference)?.to_vec();
        let (algorithm, public_key) = self.token.with_session(Retry::Once, |session| {
            let private = find_one(session, &id, ObjectClass::PRIVATE_KEY)?
                .ok_or_else(|| missing_key(&id))?;
            let key_type = key_type_of(session, private)?;
            let algorithm = if key_type == KeyType::EC {
                let parameters = bytes_attribute(session, private, AttributeType::EcParams)?;
                if parameters != P256_PARAMETERS {
                    return Err(Failure::Key(Error::UnsupportedKey(
                        "EC key on a curve other than P-256".to_owned(),
                    )));
                }
                KeyAlgorithm::EcdsaP256
            } else if key_type == KeyType::RSA {
                KeyAlgorithm::Rsa3072
            } else {
                return Err(Failure::Key(Error::UnsupportedKey(format!(
                    "PKCS#11 key type {key_type}"
                ))));
            };
            // The public key object holds CKA_EC_POINT; an RSA private key also carries the
            // modulus and exponent, so an RSA key whose public object is gone still opens.
            let public = match find_one(session, &id, ObjectClass::PUBLIC_KEY)? {
                Some(public) => public,
                None if algorithm == KeyAlgorithm::Rsa3072 => private,
                None => {
                    return Err(Failure::Backend(format!(
                        "no public key with CKA_ID {}",
                        hex(&id)
                    )));
                }
            };
            Ok((algorithm, public_key_of(session, algorithm, public)?))
        })?;
        tracing::debug!(token = %self.token.label, algorithm = algorithm.as_str(), "PKCS#11 key opened");
        Ok(Arc::new(Pkcs11Signer {
            token: Arc::clone(&self.token),
            id,
            algorithm,
            public_key,
        }))
    }

    fn destroy(&self, reference: &KeyReference) -> Result<(), Error> {
        let id = decode_reference(reference)?;
        let destroyed = self.token.with_session(Retry::Once, |session| {
            let mut destroyed = 0;
            for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
                for object in find_all(session, id, class)? {
                    match session.destroy_object(object) {
                        Ok(()) => destroyed += 1,
                        // Destroyed meanwhile through another session: just as good.
                        Err(CryptokiError::Pkcs11(RvError::ObjectHandleInvalid, _)) => {}
                        Err(error) => {
                            return Err(Failure::Call {
                                operation: "destroy a key object",
                                error,
                            })
                        }
                    }
                }
            }
            Ok(destroyed)
        })?;
        tracing::info!(token = %self.token.label, objects = destroyed, "PKCS#11 key destroyed");
        Ok(())
    }

    /// Finds the objects by `CKA_LABEL` alone (PKCS#11 v2.40 §5.7 `C_FindObjects`), so that a
    /// private key whose public key was never written is found too, and destroys each.
    fn destroy_labelled(&self, label: &str) -> Result<usize, Error> {
        if label.is_empty() {
            // An empty template value would match every unlabelled object of the token.
            return Err(Error::backend(
                "refusing to destroy objects by an empty label",
            ));
        }
        let destroyed = self.token.with_session(Retry::Once, |session| {
            let template = [Attribute::Label(label.as_bytes().to_vec())];
            let found = session
                .find_objects(&template)
                .during("find objects by label")?;
            // Private objects are invisible to a logged-out session: "none found" must not be
            // taken for "none there".
            if found.is_empty() && !logged_in(session)? {
                return Err(Failure::LoggedOut);
            }
            let mut destroyed = 0;
            for object in found {
                match session.destroy_object(object) {
                    Ok(()) => destroyed += 1,
                    Err(CryptokiError::Pkcs11(RvError::ObjectHandleInvalid, _)) => {}
                    Err(error) => {
                        return Err(Failure::Call {
                            operation: "destroy a labelled object",
                            error,
                        })
                    }
                }
            }
            Ok(destroyed)
        })?;
        if destroyed > 0 {
            tracing::warn!(token = %self.token.label, label, objects = destroyed, "PKCS#11 objects of an unrecorded key destroyed");
        }
        Ok(destroyed)
    }
}

/// A private key in the token, found by its `CKA_ID` for every signature.
///
/// The object handle is deliberately not cached: PKCS#11 does not promise that a handle stays
/// bound to the same object once all sessions are closed, and a stale handle must never sign
/// with another key.
struct Pkcs11Signer {
    token: Arc<Token>,
    id: Vec<u8>,
    algorithm: KeyAlgorithm,
    public_key: PublicKeyDer,
}

impl KeySigner for Pkcs11Signer {
    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    fn public_key(&self) -> &PublicKeyDer {
        &self.public_key
    }

    fn sign_digest(&self, digest: &Digest, padding: RsaPadding) -> Result<Vec<u8>, Error> {
        let (mechanism, data) = signing_mechanism(self.algorithm, digest, padding)?;
        let signature = self.token.with_session(Retry::Once, |session| {
            let key = find_one(session, &self.id, ObjectClass::PRIVATE_KEY)?
                .ok_or_else(|| missing_key(&self.id))?;
            session.sign(&mechanism, key, &data).during("sign")
        })?;
        match self.algorithm {
            // CKM_ECDSA returns r || s (PKCS#11 v2.40 curr. mechanisms §2.3.1).
            KeyAlgorithm::EcdsaP256 => ecdsa_raw_to_der(&signature),
            KeyAlgorithm::Rsa3072 => Ok(signature),
        }
    }

    /// ECDH in the token with `CKM_ECDH1_DERIVE` and the null KDF (PKCS#11 v2.40 curr.
    /// mechanisms §2.3.15), which yields the x-coordinate of the shared point, as the software
    /// backend does.
    ///
    /// 1. Check that `peer` is a P-256 point before the token sees it, and hand it over
    ///    uncompressed: the one form every token must accept (ANSI X9.62 §A.5.2).
    /// 2. Derive the secret into a session object (`CKA_TOKEN` false) that is neither sensitive
    ///    nor sealed in, since its value has to come out; the private key itself stays sensitive
    ///    and non-extractable.
    /// 3. Read `CKA_VALUE`.
    /// 4. Destroy the derived object whether or not the read worked, so that the secret does
    ///    not stay behind in a pooled session. Should that fail, the session is closed (which
    ///    destroys its session objects) instead of returning to the pool.
    ///
    /// Keys generated before EC keys got `CKA_DERIVE` cannot do this and are refused with
    /// [`Error::UnsupportedKey`].
    fn diffie_hellman(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        if self.algorithm != KeyAlgorithm::EcdsaP256 {
            return Err(Error::UnsupportedKey("ECDH needs a P-256 key".to_owned()));
        }
        let peer = p256::PublicKey::from_sec1_bytes(peer)
            .map_err(|_| {
                Error::UnsupportedKey("the ECDH peer key is not a P-256 point".to_owned())
            })?
            .to_encoded_point(false);
        let mechanism =
            Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(EcKdf::null(), peer.as_bytes()));
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            // 32 fits every CK_ULONG, so the cast is exact.
            Attribute::ValueLen(Ulong::from(P256_SHARED_SECRET_LEN as c_ulong)),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
        ];
        self.token.with_session(Retry::Once, |session| {
            let key = find_one(session, &self.id, ObjectClass::PRIVATE_KEY)?.ok_or_else(|| missing_key(&self.id))?;
            let derived = session
                .derive_key(&mechanism, key, &template)
                .map_err(|error| match error {
                    CryptokiError::Pkcs11(RvError::KeyFunctionNotPermitted, _) => Failure::Key(Error::UnsupportedKey(
                        "this P-256 key was generated without CKA_DERIVE and cannot do ECDH; generate a new key"
                            .to_owned(),
                    )),
                    error => Failure::Call {
                        operation: "derive an ECDH secret",
                        error,
                    },
                })?;
            let secret = shared_secret_of(session, derived);
            if let Err(error) = session.destroy_object(derived) {
                return Err(Failure::SecretLeftBehind(error));
            }
            secret
        })
    }
}

/// `CKA_VALUE` of a derived ECDH secret, checked to be [`P256_SHARED_SECRET_LEN`] bytes.
///
/// cryptoki copies the value through buffers of its own that it does not zero; only the copy
/// handed back here is zeroed on drop.
fn shared_secret_of(
    session: &Session,
    derived: ObjectHandle,
) -> Result<Zeroizing<Vec<u8>>, Failure> {
    let attributes = session
        .get_attributes(derived, &[AttributeType::Value])
        .during("read the ECDH secret")?;
    let secret = attributes
        .into_iter()
        .find_map(|attribute| match attribute {
            Attribute::Value(bytes) => Some(Zeroizing::new(bytes)),
            _ => None,
        })
        .ok_or_else(|| {
            Failure::Backend("the derived ECDH secret has no readable CKA_VALUE".to_owned())
        })?;
    if secret.len() != P256_SHARED_SECRET_LEN {
        return Err(Failure::Backend(format!(
            "the derived ECDH secret is {} bytes, not {P256_SHARED_SECRET_LEN}",
            secret.len()
        )));
    }
    Ok(secret)
}

/// The mechanism and the bytes to hand to `C_Sign` for a digest.
fn signing_mechanism(
    algorithm: KeyAlgorithm,
    digest: &Digest,
    padding: RsaPadding,
) -> Result<(Mechanism<'static>, Vec<u8>), Error> {
    let hash = digest.as_bytes();
    Ok(match (algorithm, padding) {
        // CKM_ECDSA signs the hash as given (ANSI X9.62 truncation is the token's job).
        (KeyAlgorithm::EcdsaP256, _) => (Mechanism::Ecdsa, hash.to_vec()),
        // CKM_RSA_PKCS pads its input as is, so the DigestInfo goes in front (RFC 8017 §9.2).
        (KeyAlgorithm::Rsa3072, RsaPadding::Pkcs1v15) => {
            let mut data = digest.digest_info_prefix().to_vec();
            data.extend_from_slice(hash);
            (Mechanism::RsaPkcs, data)
        }
        // CKM_RSA_PKCS_PSS over a precomputed hash: MGF1 with the same hash, salt as long as
        // the hash (RFC 8017 §8.1, RFC 4055 §3.1).
        (KeyAlgorithm::Rsa3072, RsaPadding::Pss) => {
            let (hash_alg, mgf) = match digest {
                Digest::Sha256(_) => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
                Digest::Sha384(_) => (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384),
                Digest::Sha512(_) => (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512),
            };
            let s_len = Ulong::try_from(hash.len())
                .map_err(|_| Error::backend("PSS salt length does not fit a CK_ULONG"))?;
            (
                Mechanism::RsaPkcsPss(PkcsPssParams {
                    hash_alg,
                    mgf,
                    s_len,
                }),
                hash.to_vec(),
            )
        }
    })
}

/// The generation mechanism and the public and private key templates.
fn key_pair_templates(
    label: &str,
    id: &[u8],
    algorithm: KeyAlgorithm,
    agreement: bool,
) -> (Mechanism<'static>, Vec<Attribute>, Vec<Attribute>) {
    let mut public = vec![
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
    ];
    let mut private = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
    ];
    // Besides signing, an EC key generated for key agreement may derive
    // ([`KeySigner::diffie_hellman`]); a signing key may not. An RSA key may not decrypt.
    let mechanism = match algorithm {
        KeyAlgorithm::EcdsaP256 => {
            public.push(Attribute::EcParams(P256_PARAMETERS.to_vec()));
            private.push(Attribute::Derive(agreement));
            Mechanism::EccKeyPairGen
        }
        KeyAlgorithm::Rsa3072 => {
            // 3072 fits every CK_ULONG, so the cast is exact.
            public.push(Attribute::ModulusBits(Ulong::from(
                RSA_MODULUS_BITS as c_ulong,
            )));
            public.push(Attribute::PublicExponent(RSA_PUBLIC_EXPONENT.to_vec()));
            private.push(Attribute::Decrypt(false));
            Mechanism::RsaPkcsKeyPairGen
        }
    };
    (mechanism, public, private)
}

/// The public key of `object` (a public key, or an RSA private key) as SubjectPublicKeyInfo.
fn public_key_of(
    session: &Session,
    algorithm: KeyAlgorithm,
    object: ObjectHandle,
) -> Result<PublicKeyDer, Failure> {
    match algorithm {
        KeyAlgorithm::EcdsaP256 => {
            let point = bytes_attribute(session, object, AttributeType::EcPoint)?;
            ec_point_to_spki(&point).map_err(Failure::Key)
        }
        KeyAlgorithm::Rsa3072 => {
            let modulus = bytes_attribute(session, object, AttributeType::Modulus)?;
            let exponent = bytes_attribute(session, object, AttributeType::PublicExponent)?;
            rsa_to_spki(&modulus, &exponent).map_err(Failure::Key)
        }
    }
}

/// SubjectPublicKeyInfo (id-ecPublicKey, P-256; RFC 5480 §2) from `CKA_EC_POINT`, which PKCS#11
/// v2.40 defines as the DER of an OCTET STRING holding the SEC 1 point (SoftHSM2 does so); some
/// tokens return the bare point, which is accepted too.
fn ec_point_to_spki(ec_point: &[u8]) -> Result<PublicKeyDer, Error> {
    let point = match OctetStringRef::from_der(ec_point) {
        Ok(octets) => octets.as_bytes(),
        Err(_) => ec_point,
    };
    let key = p256::PublicKey::from_sec1_bytes(point)
        .map_err(|_| Error::UnsupportedKey("CKA_EC_POINT is not a P-256 point".to_owned()))?;
    let der = key
        .to_public_key_der()
        .map_err(|error| Error::backend_because("encode the P-256 public key", error))?;
    Ok(PublicKeyDer(der.into_vec()))
}

/// SubjectPublicKeyInfo (rsaEncryption; RFC 3279 §2.3.1) from `CKA_MODULUS` and
/// `CKA_PUBLIC_EXPONENT`, refusing moduli other than 3072 bits.
fn rsa_to_spki(modulus: &[u8], exponent: &[u8]) -> Result<PublicKeyDer, Error> {
    let key = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(modulus),
        rsa::BigUint::from_bytes_be(exponent),
    )
    .map_err(|error| Error::UnsupportedKey(format!("RSA public key: {error}")))?;
    let bits = key.n().bits();
    if bits != RSA_MODULUS_BITS {
        return Err(Error::UnsupportedKey(format!(
            "RSA key of {bits} bits (only {RSA_MODULUS_BITS} are used)"
        )));
    }
    let der = rsa::pkcs8::EncodePublicKey::to_public_key_der(&key)
        .map_err(|error| Error::backend_because("encode the RSA public key", error))?;
    Ok(PublicKeyDer(der.into_vec()))
}

/// The objects of `class` with `CKA_ID` = `id`.
fn find_all(
    session: &Session,
    id: &[u8],
    class: ObjectClass,
) -> Result<Vec<ObjectHandle>, Failure> {
    let template = [Attribute::Class(class), Attribute::Id(id.to_vec())];
    let found = session.find_objects(&template).during("find a key")?;
    // Private objects are invisible to a logged-out session (PKCS#11 v2.40 §4.4): tell
    // "not logged in" apart from "no such key", so that the former logs in again.
    if found.is_empty() && !logged_in(session)? {
        return Err(Failure::LoggedOut);
    }
    Ok(found)
}

/// The one object of `class` with `CKA_ID` = `id`, if any; two or more is an error, since
/// signing with the wrong one of them must not be possible.
fn find_one(
    session: &Session,
    id: &[u8],
    class: ObjectClass,
) -> Result<Option<ObjectHandle>, Failure> {
    let found = find_all(session, id, class)?;
    match found.as_slice() {
        [] => Ok(None),
        [object] => Ok(Some(*object)),
        more => Err(Failure::Backend(format!(
            "{} objects of class {class} share CKA_ID {}",
            more.len(),
            hex(id)
        ))),
    }
}

/// `CKA_KEY_TYPE` of a key object.
fn key_type_of(session: &Session, object: ObjectHandle) -> Result<KeyType, Failure> {
    let attributes = session
        .get_attributes(object, &[AttributeType::KeyType])
        .during("read CKA_KEY_TYPE")?;
    attributes
        .into_iter()
        .find_map(|attribute| match attribute {
            Attribute::KeyType(key_type) => Some(key_type),
            _ => None,
        })
        .ok_or_else(|| Failure::Backend("the key has no CKA_KEY_TYPE".to_owned()))
}

/// A byte-string attribute (`CKA_EC_PARAMS`, `CKA_EC_POINT`, `CKA_MODULUS`, ...) of an object.
fn bytes_attribute(
    session: &Session,
    object: ObjectHandle,
    kind: AttributeType,
) -> Result<Vec<u8>, Failure> {
    let attributes = session
        .get_attributes(object, &[kind])
        .during("read a key attribute")?;
    attributes
        .into_iter()
        .find_map(|attribute| match (kind, attribute) {
            (AttributeType::EcParams, Attribute::EcParams(bytes))
            | (AttributeType::EcPoint, Attribute::EcPoint(bytes))
            | (AttributeType::Modulus, Attribute::Modulus(bytes))
            | (AttributeType::PublicExponent, Attribute::PublicExponent(bytes)) => Some(bytes),
            _ => None,
        })
        .ok_or_else(|| Failure::Backend(format!("the key has no readable {kind}")))
}

/// `p11v1:` followed by the `CKA_ID`.
fn encode_reference(id: &[u8]) -> KeyReference {
    let mut bytes = Vec::with_capacity(REFERENCE_V1.len() + id.len());
    bytes.extend_from_slice(REFERENCE_V1);
    bytes.extend_from_slice(id);
    KeyReference(bytes)
}

/// The `CKA_ID` in a reference made by [`encode_reference`].
fn decode_reference(reference: &KeyReference) -> Result<&[u8], Error> {
    match reference.0.strip_prefix(REFERENCE_V1) {
        Some(id) if !id.is_empty() && id.len() <= MAX_KEY_ID_LEN => Ok(id),
        _ => Err(Error::backend(
            "the key reference was not made by the PKCS#11 backend",
        )),
    }
}

fn missing_key(id: &[u8]) -> Failure {
    Failure::Backend(format!("no private key with CKA_ID {}", hex(id)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Modules loaded in this process, by canonical path. PKCS#11 allows one `C_Initialize` per
/// process, so every backend on a module shares its context.
static MODULES: Mutex<Vec<(PathBuf, Pkcs11)>> = Mutex::new(Vec::new());

/// The initialised context of the module at `module`, loading it on first use.
fn loaded_module(module: &Path) -> Result<Pkcs11, Error> {
    let canonical = module.canonicalize().map_err(|error| {
        Error::backend_because(format!("PKCS#11 module {}", module.display()), error)
    })?;
    let mut modules = lock(&MODULES);
    if let Some((_, context)) = modules.iter().find(|(path, _)| *path == canonical) {
        return Ok(context.clone());
    }
    let context = Pkcs11::new(&canonical).map_err(|error| {
        Error::backend_because(format!("load PKCS#11 module {}", module.display()), error)
    })?;
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // Initialised by other code in this process (the library is loaded only once).
        Ok(()) | Err(CryptokiError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(error) => {
            return Err(Error::backend(format!(
                "initialise PKCS#11 module {}: {}",
                module.display(),
                describe(&error)
            )))
        }
    }
    modules.push((canonical, context.clone()));
    Ok(context)
}

/// The one slot holding a token labelled `label`.
fn find_slot(context: &Pkcs11, module: &Path, label: &str) -> Result<Slot, Error> {
    let failed = |operation: &str, error: CryptokiError| {
        Error::backend(format!(
            "PKCS#11 {operation} in module {}: {}",
            module.display(),
            describe(&error)
        ))
    };
    let mut matching = Vec::new();
    let mut others = Vec::new();
    for slot in context
        .get_slots_with_token()
        .map_err(|error| failed("list slots", error))?
    {
        let info = context
            .get_token_info(slot)
            .map_err(|error| failed("read token info", error))?;
        if info.label() == label {
            matching.push(slot);
        } else {
            others.push(format!("{:?}", info.label()));
        }
    }
    match matching.as_slice() {
        [slot] => Ok(*slot),
        [] => Err(Error::backend(format!(
            "no token labelled {label:?} in PKCS#11 module {} (tokens present: {})",
            module.display(),
            if others.is_empty() {
                "none".to_owned()
            } else {
                others.join(", ")
            }
        ))),
        _ => Err(Error::backend(format!(
            "{} tokens labelled {label:?} in PKCS#11 module {}; labels must be unique",
            matching.len(),
            module.display()
        ))),
    }
}

/// One token and its pool of idle, logged-in sessions.
struct Token {
    module: PathBuf,
    label: String,
    context: Pkcs11,
    slot: Slot,
    /// Kept to log in again after the token logged us out (all sessions closed, HSM restart).
    pin: AuthPin,
    idle: Mutex<Vec<Session>>,
}

/// Whether an operation may run again on a fresh session after its session broke.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// The operation changes nothing if repeated (find, sign, destroy).
    Once,
    /// Repeating could leave a second object behind (key generation).
    No,
}

impl Token {
    /// Runs `operation` on a pooled session. A session the token reports broken is closed
    /// along with all idle ones (they usually break together, e.g. after an HSM restart), and
    /// with [`Retry::Once`] the operation runs once more on a fresh session.
    fn with_session<T>(
        &self,
        retry: Retry,
        operation: impl Fn(&Session) -> Result<T, Failure>,
    ) -> Result<T, Error> {
        let mut retried = false;
        loop {
            let session = self
                .check_out()
                .map_err(|failure| failure.into_error(&self.label))?;
            match operation(&session) {
                Ok(value) => {
                    self.check_in(session);
                    return Ok(value);
                }
                Err(failure) if failure.breaks_session() => {
                    drop(session);
                    lock(&self.idle).clear();
                    tracing::warn!(token = %self.label, error = %failure.describe(), "PKCS#11 sessions dropped");
                    if retry == Retry::No || retried {
                        return Err(failure.into_error(&self.label));
                    }
                    retried = true;
                }
                Err(failure) => {
                    self.check_in(session);
                    return Err(failure.into_error(&self.label));
                }
            }
        }
    }

    fn check_out(&self) -> Result<Session, Failure> {
        let idle = lock(&self.idle).pop();
        match idle {
            Some(session) => Ok(session),
            None => self.open_session(),
        }
    }

    fn check_in(&self, session: Session) {
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE_SESSIONS {
            idle.push(session);
        }
    }

    /// A new read/write session, logged in as user unless the token already is.
    fn open_session(&self) -> Result<Session, Failure> {
        let session = self
            .context
            .open_rw_session(self.slot)
            .during("open a session")?;
        if !logged_in(&session)? {
            match session.login(UserType::User, Some(&self.pin)) {
                Ok(()) | Err(CryptokiError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
                Err(error) => {
                    return Err(Failure::Call {
                        operation: "log in as user",
                        error,
                    })
                }
            }
        }
        Ok(session)
    }
}

/// Whether the token is logged in as user in this session.
fn logged_in(session: &Session) -> Result<bool, Failure> {
    let state = session
        .get_session_info()
        .during("read the session state")?
        .session_state();
    Ok(matches!(state, SessionState::RoUser | SessionState::RwUser))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A thread that panicked while holding the lock cannot have left the Vec half-changed.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A failure inside a session, before the token label is attached.
#[derive(Debug)]
enum Failure {
    /// A PKCS#11 call failed.
    Call {
        /// What we were doing, for the message.
        operation: &'static str,
        /// The error cryptoki reported.
        error: CryptokiError,
    },
    /// Something about the token's objects is wrong (missing key, ambiguous id, ...).
    Backend(String),
    /// The key cannot be used as asked.
    Key(Error),
    /// The token logged us out (another session called `C_Logout`, or the token reset).
    LoggedOut,
    /// A derived secret could not be destroyed; closing its session removes it.
    SecretLeftBehind(CryptokiError),
}

impl Failure {
    /// Whether the session (and probably the login) is gone, so it must not return to the pool.
    fn breaks_session(&self) -> bool {
        matches!(
            self,
            Failure::LoggedOut
                | Failure::SecretLeftBehind(_)
                | Failure::Call {
                    error: CryptokiError::Pkcs11(
                        RvError::SessionHandleInvalid
                            | RvError::SessionClosed
                            | RvError::UserNotLoggedIn
                            | RvError::DeviceRemoved
                            | RvError::DeviceError
                            | RvError::TokenNotPresent
                            | RvError::TokenNotRecognized
                            | RvError::OperationActive
                            | RvError::CryptokiNotInitialized,
                        _,
                    ),
                    ..
                }
        )
    }

    fn describe(&self) -> String {
        match self {
            Failure::Call { operation, error } => format!("{operation}: {}", describe(error)),
            Failure::Backend(message) => message.clone(),
            Failure::Key(error) => error.to_string(),
            Failure::LoggedOut => "the token logged this application out".to_owned(),
            Failure::SecretLeftBehind(error) => {
                format!("destroy a derived secret: {}", describe(error))
            }
        }
    }

    fn into_error(self, token: &str) -> Error {
        match self {
            Failure::Call { operation, error } => Error::backend(format!(
                "PKCS#11 {operation} on token {token:?} failed: {}",
                describe(&error)
            )),
            Failure::Backend(message) => Error::backend(format!("{message} on token {token:?}")),
            Failure::Key(error) => error,
            Failure::LoggedOut => {
                Error::backend(format!("token {token:?} logged this application out"))
            }
            Failure::SecretLeftBehind(error) => Error::backend(format!(
                "PKCS#11 destroy a derived secret on token {token:?} failed: {}",
                describe(&error)
            )),
        }
    }
}

/// `C_Sign returned KeyHandleInvalid` rather than cryptoki's paragraph-long descriptions.
fn describe(error: &CryptokiError) -> String {
    match error {
        CryptokiError::Pkcs11(rv, function) => format!("C_{function:?} returned {rv:?}"),
        other => other.to_string(),
    }
}

/// Names the operation of a failed PKCS#11 call.
trait During<T> {
    fn during(self, operation: &'static str) -> Result<T, Failure>;
}

impl<T> During<T> for Result<T, CryptokiError> {
    fn during(self, operation: &'static str) -> Result<T, Failure> {
        self.map_err(|error| Failure::Call { operation, error })
    }
}

#[cfg(test)]
mod tests {
    //! Unit tests of the encodings, and tests against a real token: SoftHSM2 (or any module)
    //! named by `EIDPORTAL_TEST_PKCS11_MODULE`, `_TOKEN` and `_PIN`.

    use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
    use std::thread;

    use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
    use p256::pkcs8::DecodePublicKey as _;
    use sha2::{Sha256, Sha384, Sha512};

    use super::*;

    /// Tests share the token; the one that logs the whole process out runs alone.
    static TOKEN_USE: RwLock<()> = RwLock::new(());

    #[allow(dead_code)] // the guards are held, never read
    enum TokenGuard {
        Shared(RwLockReadGuard<'static, ()>),
        Exclusive(RwLockWriteGuard<'static, ()>),
    }

    /// The token the PKCS#11 tests run on.
    struct TestToken {
        module: PathBuf,
        label: String,
        pin: String,
        _guard: TokenGuard,
    }

    /// The token from the environment; `None` (test skipped) when unset, unless
    /// `EIDPORTAL_TEST_REQUIRE_ALL` demands that every test run.
    fn token_under_test(test: &str) -> Option<TestToken> {
        token_for(test, false)
    }

    fn token_for(test: &str, exclusive: bool) -> Option<TestToken> {
        let names = [
            "EIDPORTAL_TEST_PKCS11_MODULE",
            "EIDPORTAL_TEST_PKCS11_TOKEN",
            "EIDPORTAL_TEST_PKCS11_PIN",
        ];
        super::test_support::private_token().expect("a private copy of the test token");
        match names.map(std::env::var) {
            [Ok(module), Ok(label), Ok(pin)] => {
                let _guard = if exclusive {
                    TokenGuard::Exclusive(TOKEN_USE.write().unwrap_or_else(PoisonError::into_inner))
                } else {
                    TokenGuard::Shared(TOKEN_USE.read().unwrap_or_else(PoisonError::into_inner))
                };
                Some(TestToken {
                    module: PathBuf::from(module),
                    label,
                    pin,
                    _guard,
                })
            }
            _ if std::env::var_os("EIDPORTAL_TEST_REQUIRE_ALL").is_some() => panic!(
                "{test}: EIDPORTAL_TEST_REQUIRE_ALL is set but no PKCS#11 token is configured; set {} \
                 (and SOFTHSM2_CONF for SoftHSM2)",
                names.join(", ")
            ),
            _ => {
                println!(
                    "{test}: skipped, no PKCS#11 token configured (set {})",
                    names.join(", ")
                );
                None
            }
        }
    }

    fn open_backend(token: &TestToken) -> Pkcs11Backend {
        Pkcs11Backend::open(&token.module, &token.label, Pin::new(token.pin.clone()))
            .expect("open the test token")
    }

    fn label(test: &str) -> String {
        format!("eidportal-test-{test}-{}", std::process::id())
    }

    fn verify_p256(public_key: &PublicKeyDer, digest: &Digest, signature: &[u8]) -> bool {
        let key =
            p256::ecdsa::VerifyingKey::from_public_key_der(&public_key.0).expect("P-256 SPKI");
        let signature =
            p256::ecdsa::DerSignature::try_from(signature).expect("DER ECDSA signature");
        key.verify_prehash(digest.as_bytes(), &signature).is_ok()
    }

    fn verify_rsa(
        public_key: &PublicKeyDer,
        digest: &Digest,
        padding: RsaPadding,
        signature: &[u8],
    ) -> bool {
        let key = rsa::RsaPublicKey::from_public_key_der(&public_key.0).expect("RSA SPKI");
        let hash = digest.as_bytes();
        let result = match (padding, digest) {
            (RsaPadding::Pkcs1v15, Digest::Sha256(_)) => {
                key.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), hash, signature)
            }
            (RsaPadding::Pkcs1v15, Digest::Sha384(_)) => {
                key.verify(rsa::Pkcs1v15Sign::new::<Sha384>(), hash, signature)
            }
            (RsaPadding::Pkcs1v15, Digest::Sha512(_)) => {
                key.verify(rsa::Pkcs1v15Sign::new::<Sha512>(), hash, signature)
            }
            (RsaPadding::Pss, Digest::Sha256(_)) => {
                key.verify(rsa::Pss::new_with_salt::<Sha256>(32), hash, signature)
            }
            (RsaPadding::Pss, Digest::Sha384(_)) => {
                key.verify(rsa::Pss::new_with_salt::<Sha384>(48), hash, signature)
            }
            (RsaPadding::Pss, Digest::Sha512(_)) => {
                key.verify(rsa::Pss::new_with_salt::<Sha512>(64), hash, signature)
            }
        };
        result.is_ok()
    }

    /// Reads attributes of the key objects with the reference's CKA_ID straight through cryptoki.
    fn attributes(
        backend: &Pkcs11Backend,
        reference: &KeyReference,
        class: ObjectClass,
        kinds: &[AttributeType],
    ) -> Vec<Attribute> {
        let id = decode_reference(reference).expect("our reference").to_vec();
        backend
            .token
            .with_session(Retry::Once, |session| {
                let object = find_one(session, &id, class)?.ok_or_else(|| missing_key(&id))?;
                session
                    .get_attributes(object, kinds)
                    .during("read test attributes")
            })
            .expect("read the key's attributes")
    }

    /// The private key is sensitive, never left the token, signs, and derives (ECDH) only if it
    /// was generated for key agreement (`derive`).
    fn assert_private_key_is_locked_in(
        backend: &Pkcs11Backend,
        reference: &KeyReference,
        label: &str,
        derive: bool,
    ) {
        let id = decode_reference(reference).expect("our reference").to_vec();
        let private = attributes(
            backend,
            reference,
            ObjectClass::PRIVATE_KEY,
            &[
                AttributeType::Token,
                AttributeType::Private,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::NeverExtractable,
                AttributeType::AlwaysSensitive,
                AttributeType::Sign,
                AttributeType::Derive,
                AttributeType::Label,
                AttributeType::Id,
            ],
        );
        for expected in [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::NeverExtractable(true),
            Attribute::AlwaysSensitive(true),
            Attribute::Sign(true),
            Attribute::Derive(derive),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
        ] {
            assert!(
                private.contains(&expected),
                "private key lacks {expected:?}: {private:?}"
            );
        }
        let public = attributes(
            backend,
            reference,
            ObjectClass::PUBLIC_KEY,
            &[
                AttributeType::Token,
                AttributeType::Verify,
                AttributeType::Id,
            ],
        );
        for expected in [
            Attribute::Token(true),
            Attribute::Verify(true),
            Attribute::Id(id.clone()),
        ] {
            assert!(
                public.contains(&expected),
                "public key lacks {expected:?}: {public:?}"
            );
        }
        // The token refuses to reveal the private key itself.
        let secret = attributes(
            backend,
            reference,
            ObjectClass::PRIVATE_KEY,
            &[AttributeType::Value],
        );
        assert!(
            secret.is_empty(),
            "CKA_VALUE of the private key was readable: {secret:?}"
        );
    }

    #[test]
    fn p256_keys_are_made_in_the_token_and_sign_verifiably() {
        let Some(token) = token_under_test("p256_keys_are_made_in_the_token_and_sign_verifiably")
        else {
            return;
        };
        let backend = open_backend(&token);
        assert_eq!(backend.name(), "pkcs11");
        let label = label("p256");
        let generated = backend
            .generate(&label, KeyAlgorithm::EcdsaP256)
            .expect("generate P-256");
        assert_eq!(generated.reference.0.len(), REFERENCE_V1.len() + KEY_ID_LEN);
        // Finding 8: a signing key does no key agreement (CKA_DERIVE false).
        assert_private_key_is_locked_in(&backend, &generated.reference, &label, false);

        let signer = backend.open(&generated.reference).expect("open P-256");
        assert_eq!(signer.algorithm(), KeyAlgorithm::EcdsaP256);
        assert_eq!(signer.public_key(), &generated.public_key);
        for digest in [
            Digest::sha256(b"tbsCertificate"),
            Digest::sha384(b"tbsCertList"),
        ] {
            let signature = signer
                .sign_digest(&digest, RsaPadding::Pkcs1v15)
                .expect("sign");
            assert!(
                verify_p256(&generated.public_key, &digest, &signature),
                "bad signature over {digest:?}"
            );
            assert!(!verify_p256(
                &generated.public_key,
                &Digest::sha256(b"something else"),
                &signature
            ));
        }
        let signature = signer.sign(b"OCSP response data").expect("sign a message");
        assert!(verify_p256(
            &generated.public_key,
            &Digest::sha256(b"OCSP response data"),
            &signature
        ));

        backend.destroy(&generated.reference).expect("destroy");
    }

    #[test]
    fn rsa_3072_keys_sign_with_both_paddings() {
        let Some(token) = token_under_test("rsa_3072_keys_sign_with_both_paddings") else {
            return;
        };
        let backend = open_backend(&token);
        let label = label("rsa");
        let generated = backend
            .generate(&label, KeyAlgorithm::Rsa3072)
            .expect("generate RSA-3072");
        let public =
            rsa::RsaPublicKey::from_public_key_der(&generated.public_key.0).expect("RSA SPKI");
        assert_eq!(public.n().bits(), 3072);
        assert_eq!(public.e(), &rsa::BigUint::from(65_537u32));
        assert_private_key_is_locked_in(&backend, &generated.reference, &label, false);

        let signer = backend.open(&generated.reference).expect("open RSA");
        assert_eq!(signer.algorithm(), KeyAlgorithm::Rsa3072);
        assert_eq!(signer.public_key(), &generated.public_key);
        for padding in [RsaPadding::Pkcs1v15, RsaPadding::Pss] {
            for digest in [
                Digest::sha256(b"a"),
                Digest::sha384(b"b"),
                Digest::sha512(b"c"),
            ] {
                let signature = signer.sign_digest(&digest, padding).expect("sign");
                assert_eq!(signature.len(), 384);
                assert!(
                    verify_rsa(&generated.public_key, &digest, padding, &signature),
                    "bad {padding:?} signature over {digest:?}"
                );
                let other = if padding == RsaPadding::Pss {
                    RsaPadding::Pkcs1v15
                } else {
                    RsaPadding::Pss
                };
                assert!(!verify_rsa(
                    &generated.public_key,
                    &digest,
                    other,
                    &signature
                ));
            }
        }
        let peer = p256::SecretKey::from_slice(&[0x42; 32])
            .expect("scalar")
            .public_key();
        match signer.diffie_hellman(peer.to_encoded_point(false).as_bytes()) {
            Err(Error::UnsupportedKey(_)) => {}
            other => panic!("an RSA key did ECDH: {other:?}"),
        }

        backend.destroy(&generated.reference).expect("destroy");
    }

    /// Secret-key objects (such as derived ECDH secrets) this process can see in the token.
    fn secret_key_objects(backend: &Pkcs11Backend) -> usize {
        backend
            .token
            .with_session(Retry::Once, |session| {
                session
                    .find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)])
                    .during("find secret keys")
            })
            .expect("find secret keys")
            .len()
    }

    #[test]
    fn p256_keys_agree_on_ecdh_secrets_with_software_keys() {
        // Exclusive: it counts the secret-key objects of the whole token.
        let Some(token) = token_for("p256_keys_agree_on_ecdh_secrets_with_software_keys", true)
        else {
            return;
        };
        let backend = open_backend(&token);
        let ecdh_label = label("ecdh");
        let generated = backend
            .generate_agreement_key(&ecdh_label)
            .expect("generate P-256");
        assert_private_key_is_locked_in(&backend, &generated.reference, &ecdh_label, true);
        let signer = backend.open(&generated.reference).expect("open P-256");
        let token_public =
            p256::PublicKey::from_public_key_der(&generated.public_key.0).expect("P-256 SPKI");
        assert_eq!(
            secret_key_objects(&backend),
            0,
            "secret keys in the token before the test"
        );

        let mut secrets = Vec::new();
        for _ in 0..3 {
            let ephemeral = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
            let expected =
                p256::ecdh::diffie_hellman(ephemeral.to_nonzero_scalar(), token_public.as_affine());
            let uncompressed = ephemeral.public_key().to_encoded_point(false);
            assert_eq!(uncompressed.len(), 65);
            let secret = signer
                .diffie_hellman(uncompressed.as_bytes())
                .expect("ECDH in the token");
            assert_eq!(secret.as_slice(), &expected.raw_secret_bytes()[..]);
            // A compressed point names the same key and gives the same secret.
            let compressed = ephemeral.public_key().to_encoded_point(true);
            let again = signer
                .diffie_hellman(compressed.as_bytes())
                .expect("ECDH with a compressed point");
            assert_eq!(again, secret);
            secrets.push(secret);
        }
        assert!(
            secrets[0] != secrets[1] && secrets[1] != secrets[2],
            "ECDH ignored the peer key"
        );

        let mut off_curve = p256::SecretKey::from_slice(&[0x42; 32])
            .expect("scalar")
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        off_curve[64] ^= 1;
        let mut too_short = off_curve.clone();
        too_short.truncate(64);
        for invalid in [off_curve, too_short, vec![0x00], Vec::new()] {
            match signer.diffie_hellman(&invalid) {
                Err(Error::UnsupportedKey(message)) => {
                    assert!(message.contains("not a P-256 point"), "{message}")
                }
                other => panic!("ECDH with {invalid:02x?} gave {other:?}"),
            }
        }
        assert_eq!(
            secret_key_objects(&backend),
            0,
            "a derived ECDH secret stayed in the token"
        );

        backend.destroy(&generated.reference).expect("destroy");
    }

    #[test]
    fn ec_keys_made_without_derive_refuse_ecdh_clearly() {
        let Some(token) = token_for("ec_keys_made_without_derive_refuse_ecdh_clearly", true) else {
            return;
        };
        let backend = open_backend(&token);
        // A key as generated before EC keys got CKA_DERIVE.
        let label = label("no-derive");
        let id = backend
            .token
            .with_session(Retry::No, |session| {
                let id = session
                    .generate_random_vec(KEY_ID_LEN as u32)
                    .during("random CKA_ID")?;
                let (mechanism, public, mut private) =
                    key_pair_templates(&label, &id, KeyAlgorithm::EcdsaP256, true);
                for attribute in &mut private {
                    if let Attribute::Derive(derive) = attribute {
                        *derive = false;
                    }
                }
                session
                    .generate_key_pair(&mechanism, &public, &private)
                    .during("generate a key pair without CKA_DERIVE")?;
                Ok(id)
            })
            .expect("generate an old-style key");
        let reference = encode_reference(&id);
        let signer = backend.open(&reference).expect("open the old-style key");
        assert!(signer.sign(b"still signs").is_ok());

        let peer = p256::SecretKey::from_slice(&[0x42; 32])
            .expect("scalar")
            .public_key();
        match signer.diffie_hellman(peer.to_encoded_point(false).as_bytes()) {
            Err(Error::UnsupportedKey(message)) => {
                assert!(message.contains("CKA_DERIVE"), "{message}")
            }
            other => panic!("a key without CKA_DERIVE gave {other:?}"),
        }
        assert_eq!(
            secret_key_objects(&backend),
            0,
            "a failed ECDH left a secret in the token"
        );

        backend.destroy(&reference).expect("destroy");
    }

    #[test]
    fn keys_reopen_from_a_second_backend_and_are_gone_after_destroy() {
        let Some(token) =
            token_under_test("keys_reopen_from_a_second_backend_and_are_gone_after_destroy")
        else {
            return;
        };
        let first = open_backend(&token);
        let generated = first
            .generate(&label("reopen"), KeyAlgorithm::EcdsaP256)
            .expect("generate");
        let early_signer = first
            .open(&generated.reference)
            .expect("open in the first backend");

        let second = open_backend(&token);
        let signer = second
            .open(&generated.reference)
            .expect("open in the second backend");
        assert_eq!(signer.public_key(), &generated.public_key);
        let digest = Digest::sha256(b"issued by the second backend");
        let signature = signer
            .sign_digest(&digest, RsaPadding::Pkcs1v15)
            .expect("sign");
        assert!(verify_p256(&generated.public_key, &digest, &signature));
        drop(second);
        // Signers keep their token open after their backend is gone.
        assert!(signer.sign(b"still here").is_ok());

        first.destroy(&generated.reference).expect("destroy");
        let error = match first.open(&generated.reference) {
            Ok(_) => panic!("a destroyed key opened again"),
            Err(error) => error.to_string(),
        };
        assert!(
            error.contains("no private key"),
            "unexpected error: {error}"
        );
        assert!(
            early_signer.sign(b"after destroy").is_err(),
            "a destroyed key still signed"
        );
        first
            .destroy(&generated.reference)
            .expect("destroying twice is not an error");
        let objects = attributes_count(&first, &generated.reference);
        assert_eq!(objects, 0, "key objects left behind");
    }

    #[test]
    fn keys_whose_generation_was_cut_short_are_found_by_label() {
        let Some(token) =
            token_under_test("keys_whose_generation_was_cut_short_are_found_by_label")
        else {
            return;
        };
        let backend = open_backend(&token);
        let (whole, half, other) = (label("cut-whole"), label("cut-half"), label("cut-other"));
        let kept = backend
            .generate(&other, KeyAlgorithm::EcdsaP256)
            .expect("generate");
        let first = backend
            .generate(&whole, KeyAlgorithm::EcdsaP256)
            .expect("generate");
        // A crash between writing the private and the public object.
        let second = backend
            .generate(&half, KeyAlgorithm::EcdsaP256)
            .expect("generate");
        let id = decode_reference(&second.reference)
            .expect("our reference")
            .to_vec();
        backend
            .token
            .with_session(Retry::Once, |session| {
                let public = find_one(session, &id, ObjectClass::PUBLIC_KEY)?
                    .ok_or_else(|| missing_key(&id))?;
                session
                    .destroy_object(public)
                    .during("destroy the public half")
            })
            .expect("remove the public key");

        assert_eq!(
            backend.destroy_labelled(&whole).expect("destroy by label"),
            2,
            "private and public key"
        );
        assert_eq!(
            backend.destroy_labelled(&half).expect("destroy by label"),
            1,
            "the lone private key"
        );
        assert_eq!(
            backend.destroy_labelled(&whole).expect("destroy by label"),
            0,
            "nothing left"
        );
        assert_eq!(attributes_count(&backend, &first.reference), 0);
        assert_eq!(attributes_count(&backend, &second.reference), 0);
        assert_eq!(
            attributes_count(&backend, &kept.reference),
            2,
            "another label's key is untouched"
        );
        assert!(backend.open(&kept.reference).is_ok());
        backend.destroy(&kept.reference).expect("destroy");
    }

    /// Key objects (of any class) still carrying the reference's CKA_ID.
    fn attributes_count(backend: &Pkcs11Backend, reference: &KeyReference) -> usize {
        let id = decode_reference(reference).expect("our reference").to_vec();
        backend
            .token
            .with_session(Retry::Once, |session| {
                session
                    .find_objects(&[Attribute::Id(id.clone())])
                    .during("find test objects")
            })
            .expect("find objects")
            .len()
    }

    #[test]
    fn signers_work_from_four_threads_at_once() {
        let Some(token) = token_under_test("signers_work_from_four_threads_at_once") else {
            return;
        };
        let backend = open_backend(&token);
        let ec = backend
            .generate(&label("threads-ec"), KeyAlgorithm::EcdsaP256)
            .expect("generate EC");
        let rsa = backend
            .generate(&label("threads-rsa"), KeyAlgorithm::Rsa3072)
            .expect("generate RSA");
        let ec_signer = backend.open(&ec.reference).expect("open EC");
        let rsa_signer = backend.open(&rsa.reference).expect("open RSA");

        thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|worker| {
                    let (ec_signer, rsa_signer, ec, rsa) = (&ec_signer, &rsa_signer, &ec, &rsa);
                    scope.spawn(move || {
                        for round in 0..20 {
                            let digest =
                                Digest::sha256(format!("worker {worker} round {round}").as_bytes());
                            let signature = ec_signer
                                .sign_digest(&digest, RsaPadding::Pkcs1v15)
                                .expect("EC sign");
                            assert!(verify_p256(&ec.public_key, &digest, &signature));
                            if round % 4 == 0 {
                                let signature = rsa_signer
                                    .sign_digest(&digest, RsaPadding::Pss)
                                    .expect("RSA sign");
                                assert!(verify_rsa(
                                    &rsa.public_key,
                                    &digest,
                                    RsaPadding::Pss,
                                    &signature
                                ));
                            }
                        }
                    })
                })
                .collect();
            for worker in workers {
                worker.join().expect("signing thread");
            }
        });
        assert!(lock(&backend.token.idle).len() <= MAX_IDLE_SESSIONS);

        backend.destroy(&ec.reference).expect("destroy EC");
        backend.destroy(&rsa.reference).expect("destroy RSA");
    }

    #[test]
    fn signing_logs_in_again_after_the_token_logged_us_out() {
        let Some(token) = token_for("signing_logs_in_again_after_the_token_logged_us_out", true)
        else {
            return;
        };
        let backend = open_backend(&token);
        let generated = backend
            .generate(&label("relogin"), KeyAlgorithm::EcdsaP256)
            .expect("generate");
        let signer = backend.open(&generated.reference).expect("open");
        // C_Logout ends the login of every session of this process (PKCS#11 v2.40 §5.6).
        let session = backend.token.check_out().expect("a pooled session");
        session.logout().expect("log out");
        backend.token.check_in(session);

        let digest = Digest::sha256(b"after the logout");
        let signature = signer
            .sign_digest(&digest, RsaPadding::Pkcs1v15)
            .expect("sign after a logout");
        assert!(verify_p256(&generated.public_key, &digest, &signature));

        let session = backend.token.check_out().expect("a pooled session");
        session.logout().expect("log out");
        backend.token.check_in(session);
        backend
            .destroy(&generated.reference)
            .expect("destroy after a logout");
        assert!(
            backend.open(&generated.reference).is_err(),
            "destroy did nothing while logged out"
        );
    }

    #[test]
    fn an_unknown_token_label_is_named_in_the_error() {
        let Some(token) = token_under_test("an_unknown_token_label_is_named_in_the_error") else {
            return;
        };
        let error = Pkcs11Backend::open(&token.module, "no-such-token-7f3a", Pin::new(token.pin))
            .expect_err("opened a token that does not exist");
        let message = error.to_string();
        assert!(message.contains("no-such-token-7f3a"), "{message}");
        assert!(
            message.contains(&token.label),
            "the tokens present should be listed: {message}"
        );
    }

    #[test]
    fn a_missing_module_is_named_in_the_error() {
        let error = Pkcs11Backend::open(
            Path::new("/nonexistent/libpkcs11.so"),
            "token",
            Pin::from("1234"),
        )
        .expect_err("opened a module that does not exist");
        assert!(
            error.to_string().contains("/nonexistent/libpkcs11.so"),
            "{error}"
        );
    }

    #[test]
    fn references_carry_the_key_id_and_foreign_ones_are_refused() {
        let id = [7u8; KEY_ID_LEN];
        let reference = encode_reference(&id);
        assert_eq!(reference.0, [b"p11v1:".as_slice(), &id].concat());
        assert_eq!(decode_reference(&reference).expect("decode"), id);
        for foreign in [
            b"sw1:sealed".to_vec(),
            b"p11v1:".to_vec(),
            [b"p11v1:".as_slice(), &[1; 65]].concat(),
        ] {
            assert!(decode_reference(&KeyReference(foreign)).is_err());
        }
    }

    #[test]
    fn ec_points_are_accepted_wrapped_and_bare() {
        let secret = p256::SecretKey::from_slice(&[0x42; 32]).expect("scalar");
        let public = secret.public_key();
        let expected = public.to_public_key_der().expect("SPKI").into_vec();
        let point = p256::EncodedPoint::from(public);
        let bare = point.as_bytes().to_vec();
        let mut wrapped = vec![0x04, 0x41];
        wrapped.extend_from_slice(&bare);
        assert_eq!(
            ec_point_to_spki(&wrapped).expect("DER-wrapped point").0,
            expected
        );
        assert_eq!(ec_point_to_spki(&bare).expect("bare point").0, expected);
        let mut off_curve = bare.clone();
        off_curve[64] ^= 1;
        assert!(ec_point_to_spki(&off_curve).is_err());
    }

    #[test]
    fn rsa_keys_other_than_3072_bits_are_refused() {
        let modulus = [0xc5u8; 256];
        let error =
            rsa_to_spki(&modulus, &RSA_PUBLIC_EXPONENT).expect_err("accepted a 2048-bit key");
        assert!(matches!(error, Error::UnsupportedKey(_)), "{error}");
    }

    #[test]
    fn rsa_pkcs1_signs_the_digest_info_and_pss_names_the_hash() {
        let digest = Digest::sha384(b"x");
        let (mechanism, data) =
            signing_mechanism(KeyAlgorithm::Rsa3072, &digest, RsaPadding::Pkcs1v15)
                .expect("mechanism");
        assert_eq!(mechanism.mechanism_type(), MechanismType::RSA_PKCS);
        assert_eq!(
            data,
            [digest.digest_info_prefix(), digest.as_bytes()].concat()
        );
        let (mechanism, data) =
            signing_mechanism(KeyAlgorithm::Rsa3072, &digest, RsaPadding::Pss).expect("mechanism");
        match mechanism {
            Mechanism::RsaPkcsPss(params) => {
                assert_eq!(params.hash_alg, MechanismType::SHA384);
                assert_eq!(params.mgf, PkcsMgfType::MGF1_SHA384);
                assert_eq!(*params.s_len, 48);
            }
            other => panic!("PSS used {other:?}"),
        }
        assert_eq!(data, digest.as_bytes());
    }

    #[test]
    fn pins_are_redacted() {
        let pin = Pin::from("123456");
        assert_eq!(format!("{pin:?}"), "[redacted]");
    }
}
