//! Remote signing at sole control (DESIGN §6): API tokens, the user's credentials (their cloud
//! certificates), authorisations approved in ConsentID that bind the exact hashes, and signing
//! that spends the resulting SAD. The CSC API and the portal's PDF signing both use these.

pub mod documents;
pub mod oauth;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde_json::json;
use sha2::{Digest as _, Sha256};

use domain::login::effective_status;
use domain::records::{
    ApiTokenRecord, CertificateRecord, DeviceRecord, KeyRecord, KeyState, SignAuthorizationRecord,
};
use domain::signing::{
    self, AuthorizationStatus, AuthorizeRefusal, HashAlgorithm, SadRefusal, SadUse, SignatureScheme,
};
use domain::{
    AssuranceLevel, CertificateKind, CertificateStatus, DeviceId, DeviceState, Sad, Serial,
    TransactionStatus, UnixTime,
};
use pki::profile::CertificateDer;
use pki::{Digest, KeyAlgorithm, KeySigner, RsaPadding};
use proto::app::{DocumentToSign, RequestContext, RequestKind, SignDetails};
use store::{
    AuditLog as _, CertificateStore as _, Database, LoginStore as _, SigningQueries, SigningStore,
    Store, Transaction as _,
};

use crate::login::consentid::RequestDetails;
use crate::login::{LoginDb, LoginTx};
use crate::settings::CaName;
use crate::va::VaDb;
use crate::{Account, Ca, CertificateSummary, Clock, Error, Login, Rejection, Tsa, Va};

/// Seconds an API bearer token lives.
pub const API_TOKEN_LIFETIME: i64 = 3600;

/// An API bearer token. Only its hash is stored; `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(pub String);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken([redacted])")
    }
}

impl ApiToken {
    /// The hash the store keys tokens by.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

/// Whoever presented a valid bearer token.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    /// The token's account.
    pub user: Account,
    /// The token's hash.
    pub token_hash: String,
    /// The OAuth client the token was issued to, if any.
    pub client_id: Option<String>,
}

/// A signing credential: one of the user's cloud certificates and its key.
#[derive(Debug, Clone)]
pub struct Credential {
    /// Its id in the API: the certificate's serial, lower-case hex.
    pub id: String,
    /// The certificate's record (its key reference stays in this crate).
    pub(crate) certificate: CertificateRecord,
    /// The key type.
    pub algorithm: KeyAlgorithm,
    /// The certificate, then the issuing CA and the root.
    pub chain: Vec<CertificateDer>,
    /// `valid`, `expired` or `revoked` now.
    pub status: &'static str,
    /// The issuer's name, one line.
    pub issuer: String,
}

impl Credential {
    /// The certificate: subject, validity, status.
    pub fn certificate(&self) -> CertificateSummary {
        CertificateSummary::from(&self.certificate)
    }

    /// Whether it may sign now.
    pub fn usable(&self) -> bool {
        self.status == "valid"
    }
}

/// What an authorisation asks the user to approve.
#[derive(Debug, Clone)]
pub struct SignRequest {
    /// The credential.
    pub credential_id: String,
    /// The hashes' algorithm.
    pub algorithm: HashAlgorithm,
    /// The hashes, in order.
    pub hashes: Vec<Vec<u8>>,
    /// How many signatures the caller announced.
    pub num_signatures: usize,
    /// A title per hash, shown in the app.
    pub titles: Vec<String>,
    /// Who asks, shown in the app (the portal, or the integrator's software).
    pub requester: String,
    /// Where the request came from.
    pub context: RequestContext,
}

/// Where an authorisation is, for whoever polls it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizationCheck {
    /// The user has not answered yet.
    Pending {
        /// Seconds until the request expires.
        seconds_left: i64,
    },
    /// Approved: the SAD, handed out once.
    Authorized {
        /// The signature activation data.
        sad: Sad,
        /// Seconds it stays usable.
        expires_in: i64,
    },
}

/// What one signing step signs: the authorised hashes, their algorithm and the RSA padding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignBatch<'a> {
    /// The authorisation being spent.
    pub(crate) authorization_id: &'a str,
    /// The RSA padding (ignored by ECDSA keys).
    pub(crate) padding: RsaPadding,
    /// The hashes' algorithm.
    pub(crate) algorithm: HashAlgorithm,
    /// The hashes.
    pub(crate) hashes: &'a [Vec<u8>],
}

/// Where a pending authorisation's request is (see [`Signing::settle_in`]).
pub(crate) enum Settled {
    /// Not answered yet.
    Pending {
        /// Seconds until it expires.
        seconds_left: i64,
    },
    /// Approved by this device.
    Approved {
        /// The approving device.
        device_id: DeviceId,
    },
    /// Refused: why.
    Refused(SigningRefusal),
}

/// Why a signing step is refused (the CSC API maps each to its error code, the portal to a
/// message in the user's language). Carried by [`Error::Signing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SigningRefusal {
    /// No such credential among the caller's.
    #[error("invalid parameter credentialID")]
    UnknownCredential,
    /// No such authorisation among the caller's, or it was already exchanged for a SAD.
    #[error("invalid parameter handle")]
    UnknownHandle,
    /// The credential's certificate is revoked.
    #[error("the signing certificate is revoked")]
    Revoked,
    /// The credential's certificate has expired.
    #[error("the signing certificate is expired")]
    Expired,
    /// The user's ConsentID device is locked after wrong PINs.
    #[error("credential locked")]
    Locked,
    /// The user has no active ConsentID device, or the approving one was deactivated.
    #[error("the credential is disabled: no active ConsentID device")]
    NoDevice,
    /// The request does not fit the rules.
    #[error(transparent)]
    Request(#[from] AuthorizeRefusal),
    /// The SAD cannot be spent.
    #[error(transparent)]
    Sad(#[from] SadRefusal),
    /// The user denied the request in ConsentID.
    #[error("the user denied the request")]
    Denied,
    /// The user did not answer in time, or the request was superseded.
    #[error("the request expired before the user approved it")]
    RequestExpired,
    /// The key cannot make this kind of signature.
    #[error("invalid parameter signAlgo")]
    WrongScheme,
}

fn digest_of(algorithm: HashAlgorithm, hash: &[u8]) -> Option<Digest> {
    match algorithm {
        HashAlgorithm::Sha256 => hash.try_into().ok().map(Digest::Sha256),
        HashAlgorithm::Sha384 => hash.try_into().ok().map(Digest::Sha384),
        HashAlgorithm::Sha512 => hash.try_into().ok().map(Digest::Sha512),
    }
}

/// The authorisation a SAD names, if the caller may spend it now on `hashes`: the caller's, for
/// this credential, live, unspent, covering every hash, its approving device still active.
fn spendable(
    user: &Account,
    credential: &Credential,
    auth: Option<SignAuthorizationRecord>,
    device: Option<DeviceRecord>,
    algorithm: HashAlgorithm,
    hashes: &[Vec<u8>],
    now: UnixTime,
) -> Result<SignAuthorizationRecord, Error> {
    let auth = auth
        .filter(|a| a.user_id == user.id && a.credential_id == credential.certificate.serial)
        .ok_or(SadRefusal::Invalid)?;
    let authorized_algorithm = HashAlgorithm::from_oid(&auth.hash_algorithm)
        .ok_or_else(|| Error::Inconsistent("stored hash algorithm".into()))?;
    let authorized = signing::split_hashes(&auth.hashes, authorized_algorithm)
        .ok_or_else(|| Error::Inconsistent("stored hashes".into()))?;
    signing::may_spend(
        &SadUse {
            status: auth.status,
            expires_at: auth.sad_expires_at.unwrap_or(UnixTime(0)),
            authorized_algorithm,
            authorized: &authorized,
            algorithm,
            requested: hashes,
        },
        now,
    )?;
    device_may_sign(device.as_ref())?;
    Ok(auth)
}

/// A credential that may sign now: known to the caller, valid (neither revoked nor expired).
pub(crate) fn usable(credential: Option<Credential>) -> Result<Credential, Error> {
    let credential = credential.ok_or(SigningRefusal::UnknownCredential)?;
    match credential.status {
        "valid" => Ok(credential),
        "revoked" => Err(SigningRefusal::Revoked.into()),
        _ => Err(SigningRefusal::Expired.into()),
    }
}

/// Whether the device that approved a signature may still sign: active, not locked.
fn device_may_sign(device: Option<&DeviceRecord>) -> Result<(), Error> {
    match device.map(|d| d.state) {
        Some(DeviceState::Active) => Ok(()),
        Some(DeviceState::PinLocked) => Err(SigningRefusal::Locked.into()),
        _ => Err(SigningRefusal::NoDevice.into()),
    }
}

/// Whether a certificate, as its record says now, may sign: issued and not expired.
fn certificate_may_sign(record: Option<&CertificateRecord>, now: UnixTime) -> Result<(), Error> {
    match record.map(|c| (c.status, c.not_after)) {
        Some((CertificateStatus::Issued, not_after)) if now <= not_after => Ok(()),
        Some((CertificateStatus::Issued, _)) => Err(SigningRefusal::Expired.into()),
        _ => Err(SigningRefusal::Revoked.into()),
    }
}

/// The RSA padding of a scheme, if the key can make it.
pub(crate) fn padding_for(key: KeyAlgorithm, scheme: SignatureScheme) -> Result<RsaPadding, Error> {
    match (key, scheme) {
        (KeyAlgorithm::EcdsaP256, SignatureScheme::Ecdsa)
        | (KeyAlgorithm::Rsa3072, SignatureScheme::RsaPkcs1) => Ok(RsaPadding::Pkcs1v15),
        (KeyAlgorithm::Rsa3072, SignatureScheme::RsaPss) => Ok(RsaPadding::Pss),
        _ => Err(SigningRefusal::WrongScheme.into()),
    }
}

/// Fewest signatures worth a thread of their own: a P-256 signature takes tens of
/// microseconds, handing work to a thread a few.
const SIGNATURES_PER_THREAD: usize = 16;

/// Signatures being made on blocking threads (a batch takes milliseconds), in slices of the
/// batch, in order.
struct InFlight(Vec<tokio::task::JoinHandle<Result<Vec<Vec<u8>>, pki::Error>>>);

impl InFlight {
    /// The signatures, once all are made, in the order of the hashes.
    async fn finish(self) -> Result<Vec<Vec<u8>>, Error> {
        let mut signatures = Vec::new();
        for slice in self.0 {
            let signed = slice
                .await
                .map_err(|e| Error::Inconsistent(format!("the signing thread failed: {e}")))?;
            signatures.extend(signed?);
        }
        Ok(signatures)
    }
}

/// Threads a batch of `count` signatures is spread over: as many as the key may use at once
/// ([`KeySigner::parallelism`]: for a software key one per core), each with at least
/// [`SIGNATURES_PER_THREAD`], so that one caller's batch uses an idle machine's every core.
fn signing_threads(signer: &dyn KeySigner, count: usize) -> usize {
    (count / SIGNATURES_PER_THREAD).clamp(1, signer.parallelism().max(1))
}

/// Starts `signer`'s signatures over `hashes` on blocking threads.
fn start_signing(
    signer: Arc<dyn KeySigner>,
    padding: RsaPadding,
    algorithm: HashAlgorithm,
    hashes: &[Vec<u8>],
) -> Result<InFlight, Error> {
    let digests = hashes
        .iter()
        .map(|h| digest_of(algorithm, h))
        .collect::<Option<Vec<_>>>()
        .ok_or(AuthorizeRefusal::WrongLength)?;
    let threads = signing_threads(signer.as_ref(), digests.len());
    let slice = digests.len().div_ceil(threads).max(1);
    let slices = digests
        .chunks(slice)
        .map(|slice| {
            let (signer, slice) = (Arc::clone(&signer), slice.to_vec());
            tokio::task::spawn_blocking(move || {
                slice
                    .iter()
                    .map(|d| signer.sign_digest(d, padding))
                    .collect::<Result<Vec<_>, _>>()
            })
        })
        .collect();
    Ok(InFlight(slices))
}

/// The services the signing service asks: the CA (its certificates and its keys' bindings),
/// validation (OCSP and CRLs for B-LT), the time-stamping unit (B-T), and login (ConsentID
/// requests and password checks).
pub(crate) struct Services<D> {
    pub(crate) ca: Arc<Ca<D>>,
    pub(crate) va: Arc<Va<D>>,
    pub(crate) tsa: Arc<Tsa<D>>,
    pub(crate) login: Arc<Login<D>>,
}

/// What the signing service reads of the store and, in [`SigningTx`], changes: API tokens,
/// authorisations, signatures and PDF jobs; beyond them the parts of the services it asks
/// (the CA's and the VA's for certificates and their status, login's for ConsentID).
pub trait SigningDb: VaDb + LoginDb + Database<Tx: SigningTx> + SigningQueries {}
impl<D: VaDb + LoginDb + Database<Tx: SigningTx> + SigningQueries> SigningDb for D {}

/// What the signing service changes in a use case's transaction.
pub trait SigningTx: LoginTx + SigningStore {}
impl<T: LoginTx + SigningStore> SigningTx for T {}

/// The signing service: API tokens, authorisations and SADs (SCAL2), signatures with the
/// users' keys, PDF signing jobs, OAuth.
pub struct Signing<D = Store> {
    pub(crate) store: D,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ca: Arc<Ca<D>>,
    pub(crate) va: Arc<Va<D>>,
    pub(crate) tsa: Arc<Tsa<D>>,
    pub(crate) login: Arc<Login<D>>,
}

impl<D: SigningDb> Signing<D> {
    pub(crate) fn new(store: D, clock: Arc<dyn Clock>, services: Services<D>) -> Self {
        let Services { ca, va, tsa, login } = services;
        Self {
            store,
            clock,
            ca,
            va,
            tsa,
            login,
        }
    }
}

impl<D: SigningDb> Signing<D> {
    /// `auth/login`: an e-mail and password (under the password rate limits) for a bearer
    /// token. Wrong e-mail and wrong password get the same refusal; the right password of an
    /// account below high assurance (never proofed by an officer) gets `NotProofed`, audited:
    /// an API token is for signing, which needs a proofed identity (finding 3 of issue 22).
    pub async fn api_login(
        &self,
        email: &str,
        password: &str,
        ip: &str,
    ) -> Result<(ApiToken, i64), Error> {
        let Some(user) = self.login.check_password(email, password, ip).await? else {
            return Err(Rejection::BadSignature.into());
        };
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let Some(user) = self.login.password_still_holds(&mut tx, user).await? else {
            return Err(Rejection::BadSignature.into());
        };
        if user.assurance != AssuranceLevel::High {
            tx.audit(
                now,
                &format!("user:{}", user.id),
                "api.login_refused",
                json!({ "ip": ip, "reason": "not_proofed" }),
            )
            .await?;
            tx.commit().await?;
            return Err(Rejection::NotProofed.into());
        }
        let token = ApiToken(proto::b64(&rand::random::<[u8; 32]>()));
        tx.insert_api_token(&ApiTokenRecord {
            token_hash: token.hash(),
            user_id: user.id.clone(),
            created_at: now,
            expires_at: now.plus_seconds(API_TOKEN_LIFETIME),
            revoked_at: None,
            client_id: None,
        })
        .await?;
        tx.audit(
            now,
            &format!("user:{}", user.id),
            "api.login",
            json!({ "ip": ip }),
        )
        .await?;
        tx.commit().await?;
        Ok((token, API_TOKEN_LIFETIME))
    }

    /// The caller behind a bearer token, if it is live and its account proofed (a token a
    /// basic account was given before `auth/login` refused them is worth nothing).
    pub async fn api_caller(&self, token: &ApiToken) -> Result<Option<ApiCaller>, Error> {
        let hash = token.hash();
        let Some(record) = self.store.api_token(&hash).await? else {
            return Ok(None);
        };
        if record.revoked_at.is_some() || self.clock.now() >= record.expires_at {
            return Ok(None);
        }
        Ok(self
            .store
            .user(&record.user_id)
            .await?
            .filter(|user| user.assurance == AssuranceLevel::High)
            .map(|user| ApiCaller {
                user: Account::from(user),
                token_hash: hash,
                client_id: record.client_id,
            }))
    }

    /// `auth/revoke`: ends the caller's own token.
    pub async fn api_logout(&self, caller: &ApiCaller) -> Result<(), Error> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        tx.revoke_api_token(&caller.token_hash, now).await?;
        tx.audit(
            now,
            &format!("user:{}", caller.user.id),
            "api.logout",
            json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    fn credential_of(
        &self,
        certificate: CertificateRecord,
        now: UnixTime,
    ) -> Result<Option<Credential>, Error> {
        let (Some(der), Some(_)) = (&certificate.der, &certificate.key_id) else {
            return Ok(None);
        };
        let status = match certificate.status {
            CertificateStatus::Revoked => "revoked",
            CertificateStatus::Issued if now > certificate.not_after => "expired",
            CertificateStatus::Issued => "valid",
            _ => return Ok(None),
        };
        let parsed = crate::parse_certificate(der)?;
        let algorithm = match parsed.tbs_certificate.subject_public_key_info.algorithm.oid {
            const_oid::db::rfc5912::ID_EC_PUBLIC_KEY => KeyAlgorithm::EcdsaP256,
            const_oid::db::rfc5912::RSA_ENCRYPTION => KeyAlgorithm::Rsa3072,
            other => return Err(Error::Inconsistent(format!("a cloud key of type {other}"))),
        };
        let chain = vec![
            CertificateDer(der.clone()),
            self.ca.ca_certificate(CaName::Qualified)?,
            self.ca.ca_certificate(CaName::Root)?,
        ];
        let issuer = pki::profile::name_to_string(&parsed.tbs_certificate.issuer);
        Ok(Some(Credential {
            id: certificate.serial.to_hex(),
            certificate,
            algorithm,
            chain,
            status,
            issuer,
        }))
    }

    /// The user's signing credentials, newest first; with `only_valid`, those that may sign.
    pub async fn credentials(
        &self,
        user: &Account,
        only_valid: bool,
    ) -> Result<Vec<Credential>, Error> {
        let now = self.clock.now();
        let mut out = Vec::new();
        for record in self.store.certificates(Some(&user.email)).await? {
            if record.kind != CertificateKind::CloudSigning {
                continue;
            }
            if let Some(credential) = self.credential_of(record, now)? {
                if !only_valid || credential.usable() {
                    out.push(credential);
                }
            }
        }
        out.sort_by_key(|c| std::cmp::Reverse(c.certificate.not_before));
        Ok(out)
    }

    /// One of the user's credentials; `None` for an id that is not theirs.
    pub async fn credential(
        &self,
        user: &Account,
        credential_id: &str,
    ) -> Result<Option<Credential>, Error> {
        let Some(serial) = Serial::parse_hex(credential_id) else {
            return Ok(None);
        };
        self.credential_by_serial(user, &serial).await
    }

    /// [`Signing::credential`] named by its certificate's serial, as an authorisation keeps it.
    pub(crate) async fn credential_by_serial(
        &self,
        user: &Account,
        serial: &Serial,
    ) -> Result<Option<Credential>, Error> {
        let Some(record) = self.store.certificate(serial).await? else {
            return Ok(None);
        };
        if record.kind != CertificateKind::CloudSigning
            || record.email.as_deref() != Some(user.email.as_str())
        {
            return Ok(None);
        }
        self.credential_of(record, self.clock.now())
    }

    pub(crate) async fn usable_credential(
        &self,
        user: &Account,
        credential_id: &str,
    ) -> Result<Credential, Error> {
        usable(self.credential(user, credential_id).await?)
    }

    /// Asks the user, in ConsentID, to approve signing exactly these hashes with this
    /// credential; returns the handle to poll. `binding` ties the request to its caller (the
    /// API token's or the browser session's hash).
    pub async fn authorize_signing(
        &self,
        user: &Account,
        request: &SignRequest,
        binding: &str,
    ) -> Result<String, Error> {
        let credential = self.usable_credential(user, &request.credential_id).await?;
        let mut tx = self.store.begin().await?;
        let id = self
            .authorize_in(&mut tx, user, &credential, request, binding)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// [`Signing::authorize_signing`] inside `tx`, for a credential already checked.
    pub(crate) async fn authorize_in(
        &self,
        tx: &mut D::Tx,
        user: &Account,
        credential: &Credential,
        request: &SignRequest,
        binding: &str,
    ) -> Result<String, Error> {
        signing::check_authorization_request(
            request.num_signatures,
            &request.hashes,
            request.algorithm,
        )?;
        self.login
            .rate_limit(
                tx,
                &format!("sign:user:{}", user.id),
                domain::RateLimit::SIGN_REQUESTS_PER_USER,
            )
            .await?;
        let now = self.clock.now();
        let devices = tx.devices_of(&user.id).await?;
        if !devices.iter().any(|d| d.state == DeviceState::Active) {
            return Err(
                if devices.iter().any(|d| d.state == DeviceState::PinLocked) {
                    SigningRefusal::Locked
                } else {
                    SigningRefusal::NoDevice
                }
                .into(),
            );
        }
        let documents = request
            .hashes
            .iter()
            .enumerate()
            .map(|(i, hash)| DocumentToSign {
                title: request
                    .titles
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("Документ {}", i + 1)),
                hash: proto::b64(hash),
            })
            .collect();
        let details = SignDetails {
            documents,
            certificate_serial: credential.id.clone(),
        };
        let owner = Some((&user.id, format!("{} {}", user.given_name, user.surname)));
        let txn = self
            .login
            .create_transaction(
                tx,
                owner,
                RequestKind::Sign,
                &request.requester,
                binding,
                request.context.clone(),
                Some(RequestDetails::Sign(details)),
                None,
            )
            .await?;
        let id = hex::encode(rand::random::<[u8; 16]>());
        tx.insert_sign_authorization(&SignAuthorizationRecord {
            id: id.clone(),
            user_id: user.id.clone(),
            credential_id: credential.certificate.serial,
            txn_id: txn.id.clone(),
            hash_algorithm: request.algorithm.oid().to_owned(),
            hashes: request.hashes.concat(),
            num_signatures: i64::try_from(request.num_signatures).unwrap_or(i64::MAX),
            status: AuthorizationStatus::Pending,
            sad_hash: None,
            sad_expires_at: None,
            device_id: None,
            created_at: now,
            used_at: None,
        })
        .await?;
        tx.audit(
            now,
            &format!("user:{}", user.id),
            "signature.requested",
            json!({
                "authorization": id,
                "txn": txn.id,
                "credential": credential.id,
                "hash_algorithm": request.algorithm.oid(),
                "hashes": request.hashes.iter().map(hex::encode).collect::<Vec<_>>(),
                "requester": request.requester,
            }),
        )
        .await?;
        Ok(id)
    }

    /// Polls an authorisation. Once approved, it hands out the SAD exactly once (only its hash
    /// is kept); a denial, expiry or lockout is reported as the refusal. Only the caller that
    /// asked (`binding`, as given to [`Signing::authorize_signing`]: the API token, and so its
    /// OAuth client) may poll it; to anyone else, even the same user's other token, the handle
    /// is unknown.
    pub async fn authorization_check(
        &self,
        user: &Account,
        handle: &str,
        binding: &str,
    ) -> Result<AuthorizationCheck, Error> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let auth = tx
            .sign_authorization(handle)
            .await?
            .filter(|a| a.user_id == user.id)
            .ok_or(SigningRefusal::UnknownHandle)?;
        let asked_by = tx
            .transaction_for_update(&auth.txn_id)
            .await?
            .map(|txn| txn.session_binding);
        if asked_by.as_deref() != Some(binding) {
            return Err(SigningRefusal::UnknownHandle.into());
        }
        match self.settle_in(&mut tx, user, &auth, now).await? {
            Settled::Pending { seconds_left } => Ok(AuthorizationCheck::Pending { seconds_left }),
            Settled::Refused(refusal) => {
                tx.commit().await?;
                Err(refusal.into())
            }
            Settled::Approved { device_id } => {
                let sad = Sad::from_random(rand::random());
                let expires_at = now.plus_seconds(signing::SAD_LIFETIME);
                if !tx
                    .settle_sign_authorization(
                        &auth.id,
                        AuthorizationStatus::Authorized,
                        Some((&sad.hash_hex(), expires_at)),
                        Some(&device_id),
                    )
                    .await?
                {
                    return Err(SigningRefusal::UnknownHandle.into());
                }
                tx.commit().await?;
                Ok(AuthorizationCheck::Authorized {
                    sad,
                    expires_in: signing::SAD_LIFETIME,
                })
            }
        }
    }

    /// Where a pending authorisation's ConsentID request is, inside `tx`. An approval moves the
    /// request to consumed (the caller then settles the authorisation in the same
    /// transaction); a refusal settles the authorisation as refused (the caller commits that).
    pub(crate) async fn settle_in(
        &self,
        tx: &mut D::Tx,
        user: &Account,
        auth: &SignAuthorizationRecord,
        now: UnixTime,
    ) -> Result<Settled, Error> {
        if auth.status != AuthorizationStatus::Pending {
            return Err(SigningRefusal::UnknownHandle.into());
        }
        let txn = tx
            .transaction_for_update(&auth.txn_id)
            .await?
            .ok_or(SigningRefusal::UnknownHandle)?;
        let actor = format!("user:{}", user.id);
        match effective_status(txn.status, txn.expires_at, now) {
            TransactionStatus::Pending => Ok(Settled::Pending {
                seconds_left: (txn.expires_at.0 - now.0).max(0),
            }),
            TransactionStatus::Approved => {
                let device_id = txn.device_id.clone().ok_or_else(|| {
                    Error::Inconsistent("an approved request without device".into())
                })?;
                if tx
                    .device(&device_id)
                    .await?
                    .is_none_or(|d| d.state != DeviceState::Active)
                {
                    return Err(SigningRefusal::NoDevice.into());
                }
                if !tx
                    .move_transaction(
                        &txn.id,
                        TransactionStatus::Approved,
                        TransactionStatus::Consumed,
                        "consumed",
                        None,
                        now,
                    )
                    .await?
                {
                    return Err(SigningRefusal::UnknownHandle.into());
                }
                tx.audit(
                    now,
                    &actor,
                    "signature.authorized",
                    json!({ "authorization": auth.id, "txn": txn.id, "credential": auth.credential_id.to_hex(), "device": device_id }),
                )
                .await?;
                Ok(Settled::Approved { device_id })
            }
            status => {
                tx.settle_sign_authorization(
                    &auth.id,
                    AuthorizationStatus::Refused,
                    None,
                    txn.device_id.as_ref(),
                )
                .await?;
                tx.audit(now, &actor, "signature.refused", json!({ "authorization": auth.id, "txn": txn.id, "status": status.as_str(), "hint": txn.hint }))
                    .await?;
                Ok(Settled::Refused(match (status, txn.hint.as_str()) {
                    (TransactionStatus::Denied, _) | (_, "wrong_vc") => SigningRefusal::Denied,
                    (_, "pin_locked") => SigningRefusal::Locked,
                    _ => SigningRefusal::RequestExpired,
                }))
            }
        }
    }

    /// Signs `hashes` with a credential's key and records it in the audit log inside `tx`:
    /// called only once the authorisation was checked and spent in the same transaction. The
    /// key signs on blocking threads while the audit entry is written.
    pub(crate) async fn sign_in(
        &self,
        tx: &mut D::Tx,
        user: &Account,
        credential: &Credential,
        batch: &SignBatch<'_>,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let SignBatch {
            authorization_id,
            padding,
            algorithm,
            hashes,
        } = *batch;
        let key_id = credential
            .certificate
            .key_id
            .clone()
            .ok_or_else(|| Error::Inconsistent("a credential without key".into()))?;
        let key = tx.key(&key_id).await?;
        let signer = self.credential_signer(&key, credential).await?;
        let signing = start_signing(signer, padding, algorithm, hashes)?;
        self.record_signatures(
            tx,
            user,
            credential,
            authorization_id,
            algorithm,
            hashes,
            self.clock.now(),
        )
        .await?;
        signing.finish().await
    }

    /// The signer of a credential's key, as `key` (its record, read for this signature) says,
    /// once it is known to be the key the credential's certificate certifies. A revoked
    /// certificate's key (`destroying`, `destroyed`) signs nothing.
    async fn credential_signer(
        &self,
        key: &KeyRecord,
        credential: &Credential,
    ) -> Result<Arc<dyn KeySigner>, Error> {
        let signer = self.ca.signing_key(key)?.ok_or(SigningRefusal::Revoked)?;
        let certificate = credential
            .chain
            .first()
            .ok_or_else(|| Error::Inconsistent("a credential without certificate".into()))?;
        let certificate = crate::parse_certificate(&certificate.0)?;
        self.ca
            .check_key_binding(&key.id, &certificate, &signer)
            .await?;
        Ok(signer)
    }

    /// The audit entry of signatures made: the authorisation, the credential and the hashes.
    #[allow(clippy::too_many_arguments)] // one audit entry's fields
    async fn record_signatures(
        &self,
        tx: &mut D::Tx,
        user: &Account,
        credential: &Credential,
        authorization_id: &str,
        algorithm: HashAlgorithm,
        hashes: &[Vec<u8>],
        now: UnixTime,
    ) -> Result<(), Error> {
        tx.audit(
            now,
            &format!("user:{}", user.id),
            "signature.created",
            json!({
                "authorization": authorization_id,
                "credential": credential.id,
                "hash_algorithm": algorithm.oid(),
                "hashes": hashes.iter().map(hex::encode).collect::<Vec<_>>(),
            }),
        )
        .await?;
        Ok(())
    }

    /// Signs hashes with a credential, spending a SAD, in this order:
    /// 1. checks on committed data, without the write lock: the SAD (the caller's `binding`,
    ///    this credential's, live, unspent, covering every hash), the approving device, the
    ///    certificate's status, and the key's record and its binding to the certificate;
    /// 2. the key starts signing, on blocking threads (only now: nothing is signed for a SAD
    ///    that does not hold);
    /// 3. meanwhile one database transaction checks again what may have changed since 1 (the
    ///    device, the certificate's status, the key's record), spends the SAD (only if it is
    ///    still unspent), records the signatures and commits, which waits for the disk;
    /// 4. the signatures are handed out only once both are done: a SAD is spent on disk before
    ///    its signatures leave, so a crash cannot make it sign twice. Signatures whose
    ///    transaction refused or failed are dropped and never leave.
    ///
    /// Signing while other calls hold the write lock keeps the cores busy. A key that fails
    /// after the commit leaves the SAD spent and nothing handed out (the caller asks for a new
    /// authorisation); the audit log then says so (`signature.failed`).
    #[allow(clippy::too_many_arguments)] // one signHash call's parts, and who makes it
    pub async fn sign_hashes(
        &self,
        user: &Account,
        binding: &str,
        credential_id: &str,
        sad: &Sad,
        algorithm: HashAlgorithm,
        scheme: SignatureScheme,
        hashes: &[Vec<u8>],
    ) -> Result<Vec<Vec<u8>>, Error> {
        let credential = self.usable_credential(user, credential_id).await?;
        let padding = padding_for(credential.algorithm, scheme)?;
        let key_id = credential
            .certificate
            .key_id
            .clone()
            .ok_or_else(|| Error::Inconsistent("a credential without key".into()))?;
        let now = self.clock.now();
        // 1.
        let auth = self
            .store
            .sign_authorization_by_sad(&sad.hash_hex())
            .await?;
        let device = match auth.as_ref().and_then(|a| a.device_id.as_ref()) {
            Some(id) => self.store.device(id).await?,
            None => None,
        };
        let auth = spendable(user, &credential, auth, device, algorithm, hashes, now)?;
        // Only the caller that asked for the SAD spends it (its API token, and so its OAuth
        // client): the same user's other token gets "invalid SAD".
        if self
            .store
            .transaction(&auth.txn_id)
            .await?
            .map(|txn| txn.session_binding)
            .as_deref()
            != Some(binding)
        {
            return Err(SadRefusal::Invalid.into());
        }
        let key = self.store.key(&key_id).await?;
        let signer = self.credential_signer(&key, &credential).await?;
        // 2.
        let signing = start_signing(signer, padding, algorithm, hashes)?;
        // 3.
        let mut tx = self.store.begin().await?;
        let device = match auth.device_id.as_ref() {
            Some(id) => tx.device(id).await?,
            None => None,
        };
        device_may_sign(device.as_ref())?;
        certificate_may_sign(
            tx.certificate(&credential.certificate.serial)
                .await?
                .as_ref(),
            now,
        )?;
        if tx.key(&key_id).await?.state != KeyState::Active {
            return Err(SigningRefusal::Revoked.into());
        }
        if !tx.spend_sign_authorization(&auth.id, now).await? {
            return Err(SadRefusal::Spent.into());
        }
        self.record_signatures(&mut tx, user, &credential, &auth.id, algorithm, hashes, now)
            .await?;
        let committed = tx.commit().await;
        // 4.
        let signed = signing.finish().await;
        committed?;
        match signed {
            Ok(signatures) => Ok(signatures),
            Err(error) => {
                self.record_failed_signing(user, &auth.id, &error).await;
                Err(error)
            }
        }
    }

    /// After a SAD was spent and its key failed: the audit log says that nothing was handed
    /// out. Never fails (the error is logged).
    async fn record_failed_signing(&self, user: &Account, authorization_id: &str, error: &Error) {
        tracing::error!(%error, authorization = %authorization_id, "the key failed after its SAD was spent");
        let result = async {
            let now = self.clock.now();
            let mut tx = self.store.begin().await?;
            tx.audit(
                now,
                &format!("user:{}", user.id),
                "signature.failed",
                json!({ "authorization": authorization_id, "error": error.to_string() }),
            )
            .await?;
            tx.commit().await
        }
        .await;
        if let Err(error) = result {
            tracing::error!(%error, authorization = %authorization_id, "the failed signing could not be audited");
        }
    }
}
