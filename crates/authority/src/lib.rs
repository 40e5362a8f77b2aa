//! The use cases of the trust service, as six services with one job each (Boulder's split):
//! [`Ca`] holds the CA keys and signs every certificate and CRL; [`Va`] revokes and answers
//! OCSP; [`Tsa`] stamps time; [`Ra`] registers and proofs accounts and runs the cloud
//! certificate's life; [`Login`] keeps sessions and speaks with ConsentID; [`Signing`] turns
//! approved requests into signatures. [`Authority`] builds them and runs the upkeep.
//!
//! Policy comes from `domain`, bytes from `pki`, persistence from `store`; each use case is one
//! database transaction, with the serial stored before anything is signed (a token's keys are
//! also recorded before the token makes them: `ca::keys`). The server gets views
//! (`views`), never the store's rows. docs/ARCHITECTURE.md maps who owns which tables.

pub mod ca;
pub mod clock;
pub mod login;
pub mod oidc;
pub mod ra;
pub mod settings;
pub mod signing;
#[cfg(any(test, feature = "test-support"))]
pub mod test_app;
#[cfg(test)]
mod test_support;
mod tsa;
pub mod va;
mod views;

use std::sync::Arc;

use der::Decode;
use x509_cert::Certificate;

use domain::cloud::CloudRefusal;
use domain::signing::{AuthorizeRefusal, SadRefusal};
use domain::{CertificateStatus, Refusal, Serial, UnixTime};
use pki::KeyBackend;
use store::{AccountStore, AuditQueries, Store};

pub use ca::IssuedCertificate;
pub use ca::{Ca, CaDb, CaTx};
pub use clock::{Clock, ManualClock, SystemClock};
pub use login::{Login, LoginDb, LoginTx};
pub use oidc::{Oidc, OidcDb, OidcRefusal, OidcTx};
pub use ra::{Ra, RaDb, RaTx};
pub use settings::{CaName, CloudValidity, ProviderIdentity, RegistrationMails, Settings};
pub use signing::documents::DocumentRefusal;
pub use signing::oauth::OAuthRefusal;
pub use signing::{Signing, SigningDb, SigningRefusal, SigningTx};
pub use tsa::Tsa;
pub use va::OcspAnswer;
pub use va::{Va, VaDb, VaTx};
pub use views::{Account, CertificateSummary, DeviceSummary, UndeliveredMail};

/// Errors of the use cases: the crate's one error type. A refusal the caller may be told is a
/// typed variant (`Rejected`, `Signing`, `Document`, `OAuth`, `Cloud`); the rest keep their
/// source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// Building or signing a PKI object failed.
    #[error(transparent)]
    Pki(#[from] pki::Error),
    /// DER encoding or decoding failed.
    #[error("DER: {0}")]
    Der(#[from] der::Error),
    /// The rules refuse the request.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// No certificate has this serial.
    #[error("no certificate has the serial {0}")]
    UnknownSerial(Serial),
    /// The serial was reserved but no certificate was stored for it.
    #[error("the serial {0} is {status} and has no certificate", status = .1.as_str())]
    NoCertificate(Serial, CertificateStatus),
    /// The request is refused for a reason the caller is told.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// A signing step is refused: a credential, an authorisation or a SAD (the CSC API maps
    /// each to its error code, the portal to a message).
    #[error(transparent)]
    Signing(#[from] SigningRefusal),
    /// Documents cannot be signed in the portal (an upload or a job is refused).
    #[error(transparent)]
    Document(#[from] DocumentRefusal),
    /// An OAuth code or token is refused (RFC 6749 §5.2).
    #[error(transparent)]
    OAuth(#[from] OAuthRefusal),
    /// A cloud-certificate action is refused by the rules now.
    #[error(transparent)]
    Cloud(#[from] CloudRefusal),
    /// The OpenID provider refuses a client's request (its OAuth error code).
    #[error(transparent)]
    Oidc(#[from] OidcRefusal),
    /// Stored data contradicts itself.
    #[error("inconsistent data: {0}")]
    Inconsistent(String),
}

impl From<AuthorizeRefusal> for Error {
    fn from(refusal: AuthorizeRefusal) -> Self {
        Self::Signing(refusal.into())
    }
}

impl From<SadRefusal> for Error {
    fn from(refusal: SadRefusal) -> Self {
        Self::Signing(refusal.into())
    }
}

/// A request refused for a reason the caller may be told: the server maps each to an HTTP
/// status and a stable error code, the portal to a message in the user's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// A field is missing or malformed (the field's name).
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// An account with this e-mail exists.
    #[error("an account with this e-mail address exists")]
    AlreadyExists,
    /// No account has this e-mail (officer commands only; users never see this).
    #[error("no account has this e-mail address")]
    UnknownUser,
    /// The account's identity was not proofed.
    #[error("the account's identity was not proofed by an officer")]
    NotProofed,
    /// The activation code is wrong, used, expired or exhausted.
    #[error("the activation code is not valid")]
    InvalidCode,
    /// Too many attempts; try later.
    #[error("too many attempts, try again later")]
    RateLimited,
    /// The activation was not started, or the request does not fit it.
    #[error("the activation does not match")]
    ActivationMismatch,
    /// A signature or a sealed proof does not verify.
    #[error("a signature does not verify")]
    BadSignature,
    /// The device was revoked.
    #[error("the device was revoked")]
    DeviceRevoked,
    /// The device is locked after wrong PINs.
    #[error("the device is locked after too many wrong PINs")]
    PinLocked,
    /// The request is no longer open.
    #[error("the request is no longer open")]
    NotPending,
    /// Nothing here (or not yours).
    #[error("not found")]
    NotFound,
    /// The signed time is too far from the server's.
    #[error("the request's time is too far from the server's clock")]
    ClockSkew,
    /// A device request was replayed.
    #[error("this request was already received")]
    Replay,
    /// A scanned QR code or an opened login link is refused.
    #[error(transparent)]
    QrLogin(domain::qr::QrRefusal),
    /// The browser is on another network than the phone, and the citizen did not confirm
    /// being at that computer.
    #[error("the browser is on another network: confirm being at that computer")]
    LocationNotConfirmed,
    /// A Web Push endpoint's host is not public, or has no address (issue 22).
    #[error(transparent)]
    PushEndpoint(domain::push::EndpointRefusal),
}

impl Rejection {
    /// The stable code in API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_request",
            Self::AlreadyExists => "already_exists",
            Self::UnknownUser => "unknown_user",
            Self::NotProofed => "not_proofed",
            Self::InvalidCode => "invalid_code",
            Self::RateLimited => "rate_limited",
            Self::ActivationMismatch => "activation_mismatch",
            Self::BadSignature => "bad_signature",
            Self::DeviceRevoked => "device_revoked",
            Self::PinLocked => "pin_locked",
            Self::NotPending => "not_pending",
            Self::NotFound => "not_found",
            Self::ClockSkew => "clock_skew",
            Self::Replay => "replay",
            Self::LocationNotConfirmed => "confirm_location",
            Self::QrLogin(refusal) => match refusal {
                domain::qr::QrRefusal::Invalid => "invalid_qr",
                domain::qr::QrRefusal::Stale => "stale_qr",
                domain::qr::QrRefusal::Closed => "expired",
                domain::qr::QrRefusal::OtherAddress => "other_address",
            },
            Self::PushEndpoint(refusal) => match refusal {
                domain::push::EndpointRefusal::NoAddress => "endpoint_unresolved",
                domain::push::EndpointRefusal::NotPublic(_) => "endpoint_not_public",
            },
        }
    }
}

/// The trust service: its services, each with one job, and the upkeep that spans them.
/// Cheap to share behind an `Arc`; the server calls the services directly
/// (`authority.login.login_start(..)`).
pub struct Authority<D = Store> {
    /// Certificates and the only holder of the CA keys.
    pub ca: Arc<Ca<D>>,
    /// Revocation, CRLs, OCSP.
    pub va: Arc<Va<D>>,
    /// The time-stamping unit.
    pub tsa: Arc<Tsa<D>>,
    /// Accounts, proofing, the cloud certificate's life, mail.
    pub ra: Arc<Ra<D>>,
    /// Sessions and ConsentID: activation, login and signing requests, answers, push.
    pub login: Arc<Login<D>>,
    /// API tokens, authorisations and SADs, signatures, PDF signing jobs, OAuth.
    pub signing: Arc<Signing<D>>,
    /// The OpenID provider: "log in with eID" for other services.
    pub oidc: Arc<Oidc<D>>,
    store: D,
    clock: Arc<dyn Clock>,
    settings: Arc<Settings>,
    /// When the upkeep last wrote an audit checkpoint (or the authority opened).
    last_checkpoint: std::sync::Mutex<UnixTime>,
}

/// Seconds between two audit checkpoints written by the upkeep.
const AUDIT_CHECKPOINT_INTERVAL: i64 = 3600;

/// All of the store the authority's services use: every service's part, and the audit log
/// as committed (its verification and checkpoints). [`Store`] is one; another database
/// implementing the same `store` traits can stand in for it.
pub trait AuthorityDb: RaDb + SigningDb + OidcDb + AuditQueries {}
impl<D: RaDb + SigningDb + OidcDb + AuditQueries> AuthorityDb for D {}

impl<D: AuthorityDb> Authority<D> {
    /// Opens the authority: creates the CA hierarchy on first use, loads every CA key and
    /// checks it against its certificate, and brings OCSP signers and CRLs up to date.
    pub async fn open(
        store: D,
        keys: Arc<dyn KeyBackend>,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Result<Self, Error> {
        let settings = Arc::new(settings);
        let ca = Arc::new(Ca::new(
            store.clone(),
            keys,
            clock.clone(),
            settings.clone(),
        ));
        let va = Arc::new(Va::new(
            store.clone(),
            clock.clone(),
            settings.clone(),
            ca.clone(),
        ));
        let tsa = Arc::new(Tsa::new(
            store.clone(),
            clock.clone(),
            settings.clone(),
            ca.clone(),
        ));
        let login = Arc::new(Login::new(
            store.clone(),
            clock.clone(),
            settings.clone(),
            ca.clone(),
        ));
        let ra = Arc::new(Ra::new(
            store.clone(),
            clock.clone(),
            settings.clone(),
            ra::Services {
                ca: ca.clone(),
                va: va.clone(),
                login: login.clone(),
            },
        ));
        let signing = Arc::new(Signing::new(
            store.clone(),
            clock.clone(),
            signing::Services {
                ca: ca.clone(),
                va: va.clone(),
                tsa: tsa.clone(),
                login: login.clone(),
            },
        ));
        let oidc = Arc::new(Oidc::new(
            store.clone(),
            clock.clone(),
            settings.clone(),
            ca.clone(),
            login.clone(),
        ));
        let authority = Self {
            last_checkpoint: std::sync::Mutex::new(clock.now()),
            oidc,
            ca,
            va,
            tsa,
            ra,
            login,
            signing,
            store,
            clock,
            settings,
        };
        authority.ca.ensure_hierarchy().await?;
        authority.login.ensure_service_keys().await?;
        authority.oidc.refresh_signing_keys().await?;
        authority.ca.load_hierarchy().await?;
        authority.maintain().await?;
        Ok(authority)
    }

    /// Derives the keys that must be the same on every instance of a deployment (today: the
    /// anonymous session tokens' MAC key) from its secret, the one the audit key comes from.
    pub fn with_deployment_secret(self, secret: &[u8; 32]) -> Self {
        self.login.set_deployment_secret(secret);
        self.oidc.set_deployment_secret(secret);
        self
    }

    /// Periodic upkeep: renews OCSP signers and the TSA certificate near expiry, re-issues CRLs
    /// before nextUpdate, abandons serials and keys whose process died (destroying the keys),
    /// finishes the destruction of revoked certificates' keys, forgets expired device-request
    /// nonces, rate-limit counters whose window has ended, unverified registrations older than
    /// 24 hours and QR logins long over, and notices status changes made by other processes.
    /// The server calls it every minute.
    pub async fn maintain(&self) -> Result<(), Error> {
        if self.ca.renew_ocsp_signers().await? {
            self.va.forget_answers();
        }
        self.tsa.renew_tsa().await?;
        self.va.refresh_crls().await?;
        self.ca.abandon_stale_reservations().await?;
        self.ca.finish_keys_left_half_way().await?;
        self.store.purge_used_nonces(self.clock.now()).await?;
        self.store
            .purge_rate_limits(
                self.clock
                    .now()
                    .plus_seconds(-domain::RateLimit::LONGEST_WINDOW),
            )
            .await?;
        self.ra.purge_unverified_registrations().await?;
        self.login.purge_qr_logins().await?;
        // A key rotation made by another process (`eidportal oidc keys rotate`).
        self.oidc.refresh_signing_keys().await?;
        self.oidc.queue_expired_session_logouts().await?;
        // Ended a day ago: a code reused after that is unknown, and refused all the same; a
        // token is kept that long after its end for the back-channel logout of its session.
        self.store
            .purge_oidc(self.clock.now().plus_seconds(-24 * 3600))
            .await?;
        self.va.sync_status().await?;
        let now = self.clock.now();
        let due = {
            let last = self
                .last_checkpoint
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            now.0 - last.0 >= AUDIT_CHECKPOINT_INTERVAL
        };
        if due {
            self.write_audit_checkpoint().await?;
        }
        Ok(())
    }

    /// Writes a checkpoint of the audit chain's head to the checkpoint folder: the head's
    /// sequence number and hash, where the keyed part starts, MACed with the audit key. A
    /// file of its own per checkpoint, written to a temporary name, synced, then renamed.
    /// `None` when the store has no audit key or no folder is configured.
    pub async fn write_audit_checkpoint(&self) -> Result<Option<std::path::PathBuf>, Error> {
        let (Some(key), Some(folder)) = (
            self.store.audit_key(),
            self.settings.audit_checkpoints.as_ref(),
        ) else {
            return Ok(None);
        };
        let now = self.clock.now();
        let head = self.store.audit_head().await?;
        let keyed_from = self
            .store
            .audit_keyed_from()
            .await?
            .ok_or_else(|| Error::Inconsistent("the audit chain has no keyed part".into()))?;
        let checkpoint = store::Checkpoint::new(key, now, &head, keyed_from);
        let path = folder.join(format!("{:012}-{}.json", head.0, now.0));
        let (folder, path2, text) = (folder.clone(), path.clone(), checkpoint.to_json());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write as _;
            std::fs::create_dir_all(&folder)?;
            let temporary = path2.with_extension("tmp");
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temporary, &path2)?;
            std::fs::File::open(&folder)?.sync_all()
        })
        .await
        .map_err(|e| Error::Inconsistent(format!("the checkpoint thread failed: {e}")))?
        .map_err(|e| {
            Error::Inconsistent(format!(
                "cannot write the audit checkpoint {}: {e}",
                path.display()
            ))
        })?;
        *self
            .last_checkpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = now;
        Ok(Some(path))
    }

    /// The audit checkpoints in the checkpoint folder. A file that is not a checkpoint is an
    /// error: nothing else belongs there.
    fn audit_checkpoints(&self) -> Result<Vec<store::Checkpoint>, Error> {
        let Some(folder) = self.settings.audit_checkpoints.as_ref() else {
            return Ok(Vec::new());
        };
        let entries = match std::fs::read_dir(folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::Inconsistent(format!(
                    "cannot read {}: {e}",
                    folder.display()
                )))
            }
        };
        let mut checkpoints = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| Error::Inconsistent(e.to_string()))?
                .path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::Inconsistent(format!("cannot read {}: {e}", path.display())))?;
            let checkpoint = store::Checkpoint::from_json(&text).ok_or_else(|| {
                Error::Inconsistent(format!("{} is not an audit checkpoint", path.display()))
            })?;
            checkpoints.push(checkpoint);
        }
        checkpoints.sort_by_key(|c| (c.seq, c.at.0));
        Ok(checkpoints)
    }

    /// The store behind the use cases, for integration tests only (`test-support`).
    #[cfg(feature = "test-support")]
    pub fn store(&self) -> &D {
        &self.store
    }

    /// Closes the database cleanly (SQLite: the last writes are checkpointed).
    pub async fn close(&self) {
        self.store.close().await;
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Now, by the authority's clock.
    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// Checks the audit log's hash chain; returns the number of entries. With an audit key:
    /// the keyed part by its MACs, and the chain against every checkpoint outside the database.
    pub async fn verify_audit(&self) -> Result<Result<usize, store::ChainBreak>, Error> {
        let entries = self.store.audit_entries().await?;
        let head = self.store.audit_head().await?;
        match self.store.audit_key() {
            Some(key) => Ok(store::verify_keyed_chain(
                &entries,
                &head,
                key,
                &self.audit_checkpoints()?,
            )),
            None => Ok(store::verify_chain(&entries, &head)),
        }
    }
}

/// Counts one event against a rate limit inside `tx`; refuses when it is reached. Off only
/// with the benchmark setting `dangerous_disable_rate_limits`.
pub(crate) async fn rate_limit(
    tx: &mut impl AccountStore,
    settings: &Settings,
    now: UnixTime,
    key: &str,
    limit: domain::RateLimit,
) -> Result<(), Error> {
    if within_rate_limit(tx, settings, now, key, limit).await? {
        Ok(())
    } else {
        Err(Rejection::RateLimited.into())
    }
}

/// Counts one event against a rate limit inside `tx` and tells whether it was within it,
/// for a limit that changes what is done rather than refusing (a push withheld). Always
/// within with `dangerous_disable_rate_limits`.
pub(crate) async fn within_rate_limit(
    tx: &mut impl AccountStore,
    settings: &Settings,
    now: UnixTime,
    key: &str,
    limit: domain::RateLimit,
) -> Result<bool, Error> {
    Ok(settings.dangerous_disable_rate_limits || tx.rate_limit(key, limit, now).await?)
}

fn parse_certificate(der: &[u8]) -> Result<Certificate, Error> {
    Ok(Certificate::from_der(der)?)
}
