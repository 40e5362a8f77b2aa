//! The use cases of the trust service: the CA hierarchy's bootstrap, issuance, revocation,
//! CRLs and OCSP, the officer's listings, and the audit log. Policy comes from `domain`, bytes
//! from `pki`, persistence from `store`; each use case is one database transaction, with the
//! serial stored before anything is signed (a token's keys are also recorded before the token
//! makes them: `keys`).

pub mod accounts;
pub mod agreement;
mod bootstrap;
pub mod clock;
pub mod cloud;
pub mod consentid;
pub mod documents;
mod issuance;
mod keys;
pub mod login;
pub mod mail;
pub mod oauth;
mod ocsp;
pub mod push;
pub mod qr_login;
mod revocation;
pub mod settings;
pub mod signing;
mod tsa;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use der::Decode;
use x509_cert::Certificate;

use domain::{CertificateStatus, Refusal, Serial, UnixTime};
use pki::ocsp::IssuerHashes;
use pki::profile::CertificateDer;
use pki::{KeyBackend, KeySigner};
use store::{CertificateRecord, KeyId, Store};

pub use clock::{Clock, ManualClock, SystemClock};
pub use issuance::IssuedCertificate;
pub use ocsp::OcspAnswer;
pub use settings::{CaName, CloudValidity, ProviderIdentity, RegistrationMails, Settings};

/// Errors of the use cases.
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
    /// Stored data contradicts itself.
    #[error("inconsistent data: {0}")]
    Inconsistent(String),
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
            Self::QrLogin(refusal) => match refusal {
                domain::qr::QrRefusal::Invalid => "invalid_qr",
                domain::qr::QrRefusal::Stale => "stale_qr",
                domain::qr::QrRefusal::Closed => "expired",
                domain::qr::QrRefusal::OtherAddress => "other_address",
            },
        }
    }
}

/// A CA of the hierarchy, loaded with its key.
struct LoadedCa {
    certificate: Certificate,
    der: CertificateDer,
    signer: Arc<dyn KeySigner>,
    hashes: IssuerHashes,
    /// The delegated OCSP responder: certificate and key.
    responder: Option<(Certificate, Arc<dyn KeySigner>)>,
    /// The time-stamping unit this CA certified (the qualified CA only).
    tsa: Option<tsa::TsaUnit>,
}

/// The trust service's engine. Cheap to share behind an `Arc`.
pub struct Authority {
    store: Store,
    keys: Arc<dyn KeyBackend>,
    clock: Arc<dyn Clock>,
    settings: Settings,
    cas: RwLock<HashMap<CaName, Arc<LoadedCa>>>,
    /// The app-channel keys, opened once at start: a use case holding a database transaction
    /// must never wait for a second pooled connection (under load that exhausts the pool).
    service_keys: RwLock<HashMap<&'static str, Arc<dyn KeySigner>>>,
    ocsp_cache: ocsp::Cache,
    /// MACs the anonymous sessions' tokens.
    anonymous_key: login::AnonymousKey,
    /// Keys found to match a certificate's SubjectPublicKeyInfo: key id -> SHA-256 of that
    /// SPKI (finding 8: a certificate row pointed at another key signs nothing).
    key_bindings: std::sync::Mutex<HashMap<store::KeyId, [u8; 32]>>,
    /// Cloud keys opened to sign, kept between calls (`keys::OpenedKeys`).
    opened_keys: keys::OpenedKeys,
    /// When the upkeep last wrote an audit checkpoint (or the authority opened).
    last_checkpoint: std::sync::Mutex<UnixTime>,
    /// Counts of `POST /tsa` requests this second.
    tsa_limiter: tsa::TsaLimiter,
}

/// Seconds between two audit checkpoints written by the upkeep.
const AUDIT_CHECKPOINT_INTERVAL: i64 = 3600;

impl Authority {
    /// Opens the authority: creates the CA hierarchy on first use, loads every CA key and
    /// checks it against its certificate, and brings OCSP signers and CRLs up to date.
    pub async fn open(
        store: Store,
        keys: Arc<dyn KeyBackend>,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Result<Self, Error> {
        let authority = Self {
            store,
            keys,
            clock,
            settings,
            cas: RwLock::new(HashMap::new()),
            service_keys: RwLock::new(HashMap::new()),
            ocsp_cache: ocsp::Cache::default(),
            anonymous_key: login::AnonymousKey::generate(),
            key_bindings: std::sync::Mutex::new(HashMap::new()),
            opened_keys: keys::OpenedKeys::default(),
            last_checkpoint: std::sync::Mutex::new(UnixTime(0)),
            tsa_limiter: tsa::TsaLimiter::default(),
        };
        *authority
            .last_checkpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = authority.clock.now();
        authority.ensure_hierarchy().await?;
        authority.ensure_service_keys().await?;
        authority.load_hierarchy().await?;
        authority.maintain().await?;
        Ok(authority)
    }

    /// Periodic upkeep: renews OCSP signers and the TSA certificate near expiry, re-issues CRLs
    /// before nextUpdate, abandons serials and keys whose process died (destroying the keys),
    /// finishes the destruction of revoked certificates' keys, forgets expired device-request
    /// nonces, unverified registrations older than 24 hours and QR logins long over, and notices status changes made by other processes. The server calls it every
    /// minute.
    pub async fn maintain(&self) -> Result<(), Error> {
        self.renew_ocsp_signers().await?;
        self.renew_tsa().await?;
        self.refresh_crls().await?;
        self.abandon_stale_reservations().await?;
        self.finish_keys_left_half_way().await?;
        self.store.purge_used_nonces(self.clock.now()).await?;
        self.purge_unverified_registrations().await?;
        self.purge_qr_logins().await?;
        self.ocsp_cache
            .set_revision(self.store.status_revision().await?);
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

    /// Only re-reads the status revision, so that OCSP answers reflect revocations made by
    /// other processes (cheap: one small query).
    pub async fn sync_status(&self) -> Result<(), Error> {
        self.ocsp_cache
            .set_revision(self.store.status_revision().await?);
        Ok(())
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Now, by the authority's clock.
    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    fn ca(&self, name: CaName) -> Result<Arc<LoadedCa>, Error> {
        let cas = self
            .cas
            .read()
            .map_err(|_| Error::Inconsistent("CA table lock poisoned".into()))?;
        cas.get(&name)
            .cloned()
            .ok_or_else(|| Error::Inconsistent(format!("CA {} is not loaded", name.as_str())))
    }

    /// A CA certificate, DER.
    pub fn ca_certificate(&self, name: CaName) -> Result<CertificateDer, Error> {
        Ok(self.ca(name)?.der.clone())
    }

    /// The current CRL of a CA (the root's included), DER.
    pub async fn crl(&self, name: CaName) -> Result<Vec<u8>, Error> {
        let record =
            self.store.authority(name.as_str()).await?.ok_or_else(|| {
                Error::Inconsistent(format!("authority {} missing", name.as_str()))
            })?;
        record.crl.ok_or_else(|| {
            Error::Inconsistent(format!("authority {} has no CRL yet", name.as_str()))
        })
    }

    /// Certificates, oldest first, optionally only those of one e-mail address.
    pub async fn certificates(&self, email: Option<&str>) -> Result<Vec<CertificateRecord>, Error> {
        Ok(self.store.certificates(email).await?)
    }

    /// A certificate and, with `chain`, its issuers up to the root, as PEM.
    pub async fn certificate_pem(&self, serial: &Serial, chain: bool) -> Result<String, Error> {
        let record = self
            .store
            .certificate(serial)
            .await?
            .ok_or(Error::UnknownSerial(*serial))?;
        let der = record
            .der
            .ok_or(Error::NoCertificate(*serial, record.status))?;
        let mut pem = CertificateDer(der).to_pem();
        if chain {
            let mut issuer = CaName::parse(&record.authority);
            while let Some(name) = issuer {
                let ca = self.ca(name)?;
                if ca.certificate.tbs_certificate.serial_number.as_bytes() == serial.as_bytes() {
                    break;
                }
                pem.push_str(&ca.der.to_pem());
                issuer = if name == CaName::Root {
                    None
                } else {
                    Some(CaName::Root)
                };
            }
        }
        Ok(pem)
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

    async fn open_key(&self, id: &KeyId) -> Result<Arc<dyn KeySigner>, Error> {
        let record = self.store.key(id).await?;
        Ok(self.keys.open(&pki::KeyReference(record.reference))?)
    }
}

fn parse_certificate(der: &[u8]) -> Result<Certificate, Error> {
    Ok(Certificate::from_der(der)?)
}
