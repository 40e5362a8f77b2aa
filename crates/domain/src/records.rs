//! What the trust service keeps, one type per kind of record: accounts, devices, requests,
//! sessions, keys, authorities, certificates, authorisations, jobs and mails. The store
//! persists them, and its rows, columns and SQL stay private to it; the services read and
//! write these records through the store's traits. None of them reaches the server, which
//! gets the services' views instead.

use crate::cloud::{CertificateOperation, OperationStatus};
use crate::login::{AssuranceLevel, DeviceState, TransactionStatus};
use crate::signing::AuthorizationStatus;
use crate::{
    CertificateKind, CertificateStatus, DeviceId, RevocationReason, Serial, TxnId, UnixTime, UserId,
};

// Accounts.

/// An account.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Random id.
    pub id: UserId,
    /// Lower-case e-mail, the username.
    pub email: String,
    /// Given name.
    pub given_name: String,
    /// Surname.
    pub surname: String,
    /// The JMBG (validated when stored).
    pub jmbg: String,
    /// Argon2id PHC string, if the account has a password.
    pub password_hash: Option<String>,
    /// Whether the e-mail address was verified.
    pub email_verified: bool,
    /// Basic or high.
    pub assurance: AssuranceLevel,
    /// When it was created.
    pub created_at: UnixTime,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UserRecord({}, {:?})", self.id, self.assurance)
    }
}

/// An activation code's record (the secret part only as a hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationRecord {
    /// Random id.
    pub id: String,
    /// The code's public lookup part.
    pub lookup: String,
    /// SHA-256 (hex) of the secret part.
    pub secret_hash: String,
    /// The account.
    pub user_id: UserId,
    /// End of validity.
    pub expires_at: UnixTime,
    /// Wrong secrets left.
    pub tries_left: i64,
    /// The nonce given at start.
    pub nonce: Option<String>,
    /// When it was used.
    pub used_at: Option<UnixTime>,
}

// The CA's keys, authorities and certificates.

/// Identifies a key record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(pub String);

/// Where a key is in its life. A key of a backend that keeps objects of its own (PKCS#11)
/// goes `generating` → `active` → `destroying` → `destroyed`, or `generating` → `abandoned`
/// when the use case that wanted it did not commit; a software key is recorded `active` and
/// ends `destroyed` in one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Recorded (with its label) before the backend generates it; no reference yet.
    Generating,
    /// In use.
    Active,
    /// Its certificate is revoked and the key must go; still in the backend until the
    /// destruction is done (the reference is kept to find it).
    Destroying,
    /// Destroyed in its backend.
    Destroyed,
    /// Its generation was cut short or its use case failed: destroyed in its backend by its
    /// label; it never signed anything and no certificate names it.
    Abandoned,
}

impl KeyState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generating => "generating",
            Self::Active => "active",
            Self::Destroying => "destroying",
            Self::Destroyed => "destroyed",
            Self::Abandoned => "abandoned",
        }
    }

    /// The state of a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Generating,
            Self::Active,
            Self::Destroying,
            Self::Destroyed,
            Self::Abandoned,
        ]
        .into_iter()
        .find(|state| state.as_str() == name)
    }
}

/// A key in a backend.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    /// Its id.
    pub id: KeyId,
    /// `software` or `pkcs11`.
    pub backend: String,
    /// The label it carries in the backend.
    pub label: String,
    /// `ecdsa-p256` or `rsa-3072`.
    pub algorithm: String,
    /// The backend's opaque reference.
    pub reference: Vec<u8>,
    /// SubjectPublicKeyInfo DER.
    pub public_key: Vec<u8>,
    /// Active or destroyed.
    pub state: KeyState,
    /// When it was generated.
    pub created_at: UnixTime,
}

/// A certificate the CA issued to one of its own services (OCSP signer, time-stamping unit):
/// serial, key, certificate (DER), end of validity.
pub type ServiceCertificate = (Serial, KeyId, Vec<u8>, UnixTime);

/// One CA of the hierarchy with its current CRL and OCSP signer.
#[derive(Debug, Clone)]
pub struct AuthorityRecord {
    /// `root`, `qualified` or `consentid`.
    pub name: String,
    /// The CA certificate's serial.
    pub serial: Serial,
    /// The CA key.
    pub key_id: KeyId,
    /// The CA certificate, DER.
    pub certificate: Vec<u8>,
    /// The number of the latest CRL (0: none yet).
    pub crl_number: i64,
    /// The latest CRL, DER.
    pub crl: Option<Vec<u8>>,
    /// The latest CRL's nextUpdate.
    pub crl_next_update: Option<UnixTime>,
    /// The delegated OCSP signer: serial, key, certificate, end of validity.
    pub ocsp_signer: Option<(Serial, KeyId, Vec<u8>, UnixTime)>,
    /// The time-stamping unit this CA certified (the qualified CA's only): serial, key,
    /// certificate, end of validity.
    pub tsa: Option<ServiceCertificate>,
}

/// A serial to reserve.
#[derive(Debug, Clone)]
pub struct NewCertificate {
    /// The serial.
    pub serial: Serial,
    /// The issuing authority's name.
    pub authority: String,
    /// The profile.
    pub kind: CertificateKind,
    /// The subject, one line.
    pub subject: String,
    /// The holder's e-mail, if a person.
    pub email: Option<String>,
    /// The key in our backend, if we hold it.
    pub key_id: Option<KeyId>,
    /// Start of validity.
    pub not_before: UnixTime,
    /// End of validity.
    pub not_after: UnixTime,
    /// When the serial was stored.
    pub reserved_at: UnixTime,
}

/// A certificate: its serial reserved, then issued, perhaps revoked.
#[derive(Debug, Clone)]
pub struct CertificateRecord {
    /// The serial.
    pub serial: Serial,
    /// The issuing authority's name.
    pub authority: String,
    /// The profile.
    pub kind: CertificateKind,
    /// Where it is in its life.
    pub status: CertificateStatus,
    /// The subject, one line.
    pub subject: String,
    /// The holder's e-mail.
    pub email: Option<String>,
    /// Our key, if we hold it.
    pub key_id: Option<KeyId>,
    /// Start of validity.
    pub not_before: UnixTime,
    /// End of validity.
    pub not_after: UnixTime,
    /// The certificate, once signed.
    pub der: Option<Vec<u8>>,
    /// When the serial was stored.
    pub reserved_at: UnixTime,
    /// When the certificate was stored.
    pub issued_at: Option<UnixTime>,
    /// When and why it was revoked.
    pub revocation: Option<(UnixTime, RevocationReason)>,
}

/// An entry of a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedRecord {
    /// The serial.
    pub serial: Serial,
    /// When it was revoked.
    pub revoked_at: UnixTime,
    /// Why.
    pub reason: RevocationReason,
}

// Logins.

/// A ConsentID device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Random id.
    pub id: DeviceId,
    /// Its account.
    pub user_id: UserId,
    /// Its name.
    pub name: String,
    /// Device key, SPKI DER.
    pub public_key: Vec<u8>,
    /// PIN key, SPKI DER (known only to the server).
    pub pin_public_key: Vec<u8>,
    /// Active, PIN-locked or revoked.
    pub state: DeviceState,
    /// Wrong PINs in a row.
    pub pin_failures: i64,
    /// The device certificate's serial, hex.
    pub certificate_serial: Serial,
    /// When it was activated.
    pub created_at: UnixTime,
    /// When it last answered.
    pub last_used_at: Option<UnixTime>,
}

/// A login or signing transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRecord {
    /// Random id.
    pub id: TxnId,
    /// The account; `None` when the username matched none (the browser gets the same answers).
    pub user_id: Option<UserId>,
    /// `login` or `sign`.
    pub kind: String,
    /// Where it is.
    pub status: TransactionStatus,
    /// Why, e.g. `superseded`, `wrong_vc`.
    pub hint: String,
    /// The challenge, base64url.
    pub challenge: String,
    /// The exact payload bytes the app is shown.
    pub payload: Vec<u8>,
    /// The server's signature over the payload.
    pub signature: Vec<u8>,
    /// The verification code.
    pub verification_code: String,
    /// SHA-256 (hex) of the session cookie that started it.
    pub session_binding: String,
    /// The device that answered.
    pub device_id: Option<DeviceId>,
    /// When it was created.
    pub created_at: UnixTime,
    /// When it expires.
    pub expires_at: UnixTime,
    /// When it was answered.
    pub decided_at: Option<UnixTime>,
}

/// A certificate operation waiting for, or done after, its approval in ConsentID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateOperationRecord {
    /// Random id.
    pub id: String,
    /// The account.
    pub user_id: UserId,
    /// Issue, renew, revoke or revoke everything.
    pub operation: CertificateOperation,
    /// The approval request in ConsentID.
    pub txn_id: TxnId,
    /// SHA-256 (hex) of the session cookie that asked: only that browser follows it.
    pub session_binding: String,
    /// For an issue or a renewal: the agreement's number and text, as the phone showed its hash.
    pub agreement: Option<(String, String)>,
    /// For a renewal or a revocation: the certificate it acts on.
    pub certificate_serial: Option<Serial>,
    /// Where it is.
    pub status: OperationStatus,
    /// Why, e.g. `denied`, `expired`.
    pub hint: String,
    /// The certificate an issue or a renewal made.
    pub result_serial: Option<Serial>,
    /// When the portal asked.
    pub created_at: UnixTime,
    /// When it was done or failed.
    pub finished_at: Option<UnixTime>,
}

/// What an agreement keeps as evidence that the citizen accepted its exact text: the request
/// the phone showed (its bytes hold the text's SHA-256), the approval message the device
/// signed over them, the signature, and the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementApproval {
    /// The request payload, exact bytes.
    pub payload: Vec<u8>,
    /// The approval message (`proto::crypto::approval_message`).
    pub approval: String,
    /// The device key's ECDSA signature over the message, DER.
    pub signature: Vec<u8>,
    /// The device that signed.
    pub device_id: DeviceId,
}

/// A browser session (anonymous until a login completes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 (hex) of the cookie value.
    pub id_hash: String,
    /// The logged-in account.
    pub user_id: Option<UserId>,
    /// How the login was made (none while anonymous).
    pub auth_method: Option<crate::oidc::AuthMethod>,
    /// The device that approved the login.
    pub device_id: Option<DeviceId>,
    /// The ConsentID login request whose approval made this session (none for anonymous and
    /// password sessions, and for sessions stored before it was kept): what the citizen saw
    /// on the phone for this login, e.g. a service's transaction text.
    pub login_txn: Option<TxnId>,
    /// The CSRF token of this session's forms.
    pub csrf_token: String,
    /// When it was created.
    pub created_at: UnixTime,
    /// When the login happened.
    pub authenticated_at: Option<UnixTime>,
    /// End of validity.
    pub expires_at: UnixTime,
    /// When it was ended (logout, revoke all).
    pub ended_at: Option<UnixTime>,
}

// Web Push.

/// A device's push subscription, as the browser's `PushSubscription` gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSubscriptionRecord {
    /// The device it belongs to.
    pub device_id: DeviceId,
    /// The push service's URL for this subscription.
    pub endpoint: String,
    /// The browser's P-256 public key, an uncompressed SEC1 point (RFC 8291 §3.1).
    pub p256dh: Vec<u8>,
    /// The browser's 16-byte authentication secret (RFC 8291 §3.2).
    pub auth: Vec<u8>,
    /// When it was registered.
    pub created_at: UnixTime,
}

// QR logins.

/// A QR login: shown by one browser session, taken by at most one phone.
#[derive(Clone, PartialEq, Eq)]
pub struct QrLoginRecord {
    /// Random id (32 hex digits), in the QR text and the link.
    pub id: String,
    /// The 32 bytes that MAC its QR frames and its link.
    pub secret: Vec<u8>,
    /// SHA-256 (hex) of the browser session's cookie.
    pub session_binding: String,
    /// The browser, as the app shows it.
    pub browser: String,
    /// The browser's address.
    pub ip: String,
    /// When it started (the QR frames count seconds from here).
    pub created_at: UnixTime,
    /// Until when a phone may take it.
    pub expires_at: UnixTime,
    /// The login transaction the phone made, once taken.
    pub txn_id: Option<TxnId>,
}

impl std::fmt::Debug for QrLoginRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QrLoginRecord({}, taken: {:?})", self.id, self.txn_id)
    }
}

// Remote signing.

/// A bearer token of the CSC API (only its hash is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRecord {
    /// SHA-256 (hex) of the token.
    pub token_hash: String,
    /// Whose it is.
    pub user_id: UserId,
    /// When it was made.
    pub created_at: UnixTime,
    /// End of validity.
    pub expires_at: UnixTime,
    /// When it was revoked.
    pub revoked_at: Option<UnixTime>,
    /// The OAuth client it was issued to; `None` for HTTP Basic logins.
    pub client_id: Option<String>,
}

/// One authorisation: the hashes a user is asked to (or did) approve for one credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignAuthorizationRecord {
    /// Random id; the CSC `handle`.
    pub id: String,
    /// Whose credential.
    pub user_id: UserId,
    /// The credential (the cloud certificate's serial, hex).
    pub credential_id: Serial,
    /// The ConsentID transaction that asks the user.
    pub txn_id: TxnId,
    /// Dotted OID of the hash algorithm.
    pub hash_algorithm: String,
    /// The hashes, concatenated in order.
    pub hashes: Vec<u8>,
    /// How many signatures were asked for.
    pub num_signatures: i64,
    /// Where it is.
    pub status: AuthorizationStatus,
    /// SHA-256 (hex) of the SAD, once handed out.
    pub sad_hash: Option<String>,
    /// When the SAD stops being usable.
    pub sad_expires_at: Option<UnixTime>,
    /// The device that approved.
    pub device_id: Option<DeviceId>,
    /// When it was asked for.
    pub created_at: UnixTime,
    /// When its SAD was spent.
    pub used_at: Option<UnixTime>,
}

/// An OAuth 2.0 authorisation code (its hash) and what it was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthCodeRecord {
    /// SHA-256 (hex) of the code.
    pub code_hash: String,
    /// The account that allowed it.
    pub user_id: UserId,
    /// The client it was issued to.
    pub client_id: String,
    /// Where it was sent.
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// When it was issued.
    pub created_at: UnixTime,
    /// End of validity.
    pub expires_at: UnixTime,
}

/// A document-signing job of the portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningJobRecord {
    /// Random id.
    pub id: String,
    /// Whose documents.
    pub user_id: UserId,
    /// The authorisation the user approves in ConsentID.
    pub authorization_id: String,
    /// The PAdES level: `b-b`, `b-t` or `b-lt`.
    pub level: String,
    /// `pending` (waiting for the user), `signed` (signature values stored), `done`, `failed`.
    pub status: String,
    /// Why it failed, or `ok`.
    pub hint: String,
    /// When it was made.
    pub created_at: UnixTime,
    /// When it ended.
    pub finished_at: Option<UnixTime>,
}

/// One document of a signing job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningDocumentRecord {
    /// Its place in the job, from 0.
    pub position: i64,
    /// The uploaded file's name.
    pub filename: String,
    /// The prepared PDF and signed attributes (`pades::Prepared` bytes).
    pub prepared: Vec<u8>,
    /// The signature value, once made.
    pub signature: Option<Vec<u8>>,
    /// The signed PDF, once finished.
    pub signed_pdf: Option<Vec<u8>>,
}

// The mail outbox.

/// Where a message of the outbox is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// Delivered to the relay.
    Sent,
    /// Given up after too many attempts.
    Failed,
}

impl OutboxStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }
}

impl std::str::FromStr for OutboxStatus {
    type Err = ();
    fn from_str(text: &str) -> Result<Self, ()> {
        match text {
            "pending" => Ok(Self::Pending),
            "sent" => Ok(Self::Sent),
            "failed" => Ok(Self::Failed),
            _ => Err(()),
        }
    }
}

/// One message of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMail {
    /// Random id.
    pub id: String,
    /// The account it concerns, if any.
    pub user_id: Option<UserId>,
    /// The recipient's address.
    pub recipient: String,
    /// The subject (for the account page).
    pub subject: String,
    /// The RFC 5322 message (empty once sent).
    pub message: Vec<u8>,
    /// Where it is.
    pub status: OutboxStatus,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// When it was written.
    pub created_at: UnixTime,
    /// When the next attempt is due.
    pub next_attempt_at: UnixTime,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was sent or given up.
    pub finished_at: Option<UnixTime>,
}
