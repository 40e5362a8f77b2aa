//! Bodies of the app API under `/api/app/v1/`.

use serde::{Deserialize, Serialize};

/// The state of a ConsentID device as the app shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    /// Usable.
    Active,
    /// Five wrong PINs in a row: re-activation needed.
    PinLocked,
    /// Revoked ("revoke all certificates", or by an officer): the app wipes its keys.
    Deactivated,
}

/// What a request asks the user to approve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// A portal login.
    Login,
    /// A qualified signature.
    Sign,
    /// An operation on the citizen's qualified certificate: issue, renew, revoke, or revoke
    /// everything ([`CertificateDetails`] says which).
    Certificate,
}

impl RequestKind {
    /// The name in the approval message.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Sign => "sign",
            Self::Certificate => "certificate",
        }
    }

    /// The kind of a stored name ([`Self::as_str`]).
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Login, Self::Sign, Self::Certificate]
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// The user's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// "Ауторизовати".
    Approve,
    /// "Одбиј".
    Deny,
}

impl Decision {
    /// The name in the approval message.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Deny => "deny",
        }
    }
}

/// `POST /activation/start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationStart {
    /// The activation code the officer gave (Crockford base32, dashes and spaces ignored).
    pub code: String,
}

/// Answer to [`ActivationStart`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationChallenge {
    /// Identifies this activation in the completion.
    pub activation_id: String,
    /// Fresh random value both activation signatures cover.
    pub nonce: String,
    /// The server's envelope-signing key (SPKI DER, base64url): the app pins it.
    pub server_signing_key: String,
    /// The server's encryption key for PIN material (SPKI DER, base64url).
    pub server_encryption_key: String,
    /// Masked e-mail of the account, e.g. `p***@example.rs`.
    pub user_hint: String,
    /// Digits of the PIN.
    pub pin_length: u8,
    /// Wrong PINs in a row that lock the device.
    pub max_pin_failures: u8,
}

/// `POST /activation/complete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationComplete {
    /// From [`ActivationChallenge`].
    pub activation_id: String,
    /// The device key (SPKI DER, base64url).
    pub device_public_key: String,
    /// A name for the device list, e.g. `consentid-cli on host`.
    pub device_name: String,
    /// The PIN public key (SPKI DER) sealed to the server's encryption key with
    /// aad = `activation_id` ([`crate::crypto::seal`]), base64url.
    pub encrypted_pin_public_key: String,
    /// Device-key signature over [`crate::crypto::activation_message`], base64url DER.
    pub device_signature: String,
    /// PIN-key signature over the same message, sealed like the PIN key, base64url.
    pub encrypted_pin_signature: String,
}

/// Answer to [`ActivationComplete`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationResult {
    /// The new device's id.
    pub device_id: String,
    /// The device certificate from the ConsentID CA (DER, base64url).
    pub certificate: String,
    /// Its serial in hex.
    pub certificate_serial: String,
}

/// A request delivered to the app: the exact payload bytes and the server's signature over
/// them. The app parses the payload only after verifying the signature, and keeps the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// JSON bytes of a [`RequestPayload`], base64url.
    pub payload: String,
    /// ECDSA-SHA256 signature by the server's signing key over the payload bytes, DER, base64url.
    pub signature: String,
    /// Where the browser is, seen from the address this app called from (not part of the
    /// signed payload: it depends on who fetches the request). Absent from older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<BrowserOrigin>,
}

/// Where the browser that made a request is, compared with the phone (issue 22).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowserOrigin {
    /// Whether the browser's network (its /24 for IPv4, /48 for IPv6) is the one this app
    /// calls from. When it is not, the app says so and the citizen must confirm being at that
    /// computer ([`Response::at_computer`]) before approving.
    pub same_network: bool,
    /// Where the browser is: its country and city when the operator configured a GeoIP
    /// database, and its address.
    pub location: String,
}

/// Who asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelyingParty {
    /// Stable id, e.g. `eidportal`.
    pub id: String,
    /// Display name, e.g. `Портал за електронску идентификацију`.
    pub name: String,
}

/// Where the request came from, shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestContext {
    /// Browser and system, from the User-Agent, e.g. `Chrome / Linux`.
    pub browser: String,
    /// The browser's address.
    pub ip: String,
}

/// A document to be signed, as the app shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentToSign {
    /// Title or file name.
    pub title: String,
    /// The hash to be signed, base64url.
    pub hash: String,
}

/// Signing details of a `sign` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignDetails {
    /// The documents, in order.
    pub documents: Vec<DocumentToSign>,
    /// The signing certificate's serial, hex.
    pub certificate_serial: String,
}

/// The operation of a `certificate` request, as the app shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateDetails {
    /// `issue`, `renew`, `revoke` or `revoke_all`.
    pub operation: String,
    /// The operation in the citizen's language, e.g. "Издавање квалификованог електронског
    /// сертификата у клауду".
    pub title: String,
    /// For `issue` and `renew`: the number of the agreement the citizen accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement_number: Option<String>,
    /// For `issue` and `renew`: SHA-256 of the agreement's text (UTF-8), base64url; the app
    /// shows its short fingerprint ([`crate::crypto::fingerprint`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement_hash: Option<String>,
    /// For `renew` and `revoke`: the serial (hex) of the certificate it acts on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_serial: Option<String>,
}

/// What the server asks the user to approve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestPayload {
    /// Protocol version, 1.
    pub v: u8,
    /// The transaction.
    pub txn_id: String,
    /// Login or sign.
    pub kind: RequestKind,
    /// Who asks.
    pub rp: RelyingParty,
    /// The account's display name.
    pub user: String,
    /// 32 random bytes, base64url; the verification code derives from it.
    pub challenge: String,
    /// When the request was made.
    pub created_at: i64,
    /// When it expires.
    pub expires_at: i64,
    /// Where it came from.
    pub context: RequestContext,
    /// For `sign`: what is signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign: Option<SignDetails>,
    /// For `certificate`: which operation, on which agreement or certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateDetails>,
    /// For a login without a username: how it reached this phone. Absent for a login started
    /// by username, where the app has the user pick the browser's verification code; with a
    /// flow the phone itself brought the request (it scanned the browser's QR code or opened
    /// its link), so there is no code to compare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<LoginFlow>,
    /// A service's text for the approval screen, validated display text: a CIBA
    /// `binding_message` (the same text the service shows the citizen at its counter), or the
    /// transaction a service asks the citizen to approve with a login (RFC 9396
    /// `authorization_details`, at most 200 characters). The device's signature covers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// How a login without a username reached the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginFlow {
    /// The app scanned the QR code the browser shows.
    Qr,
    /// The app was opened by the browser's link on the same phone.
    Link,
    /// A service asked for the login from its own server (OpenID CIBA): no browser, no code
    /// to compare; the service shows the citizen the request's `message` instead.
    Backchannel,
}

/// `GET /inbox?wait=SECONDS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbox {
    /// Pending requests for this device.
    pub items: Vec<Envelope>,
    /// Transactions that ended since they were delivered (superseded, cancelled, expired).
    pub cancelled: Vec<String>,
    /// The device's state.
    pub device_status: DeviceStatus,
}

/// `POST /requests/{txn}/response`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    /// Approve or deny.
    pub decision: Decision,
    /// For a deny: `user_deny`, `wrong_vc` or `not_me`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The code the user picked.
    pub verification_code: String,
    /// When the device signed, Unix seconds.
    pub issued_at: i64,
    /// Device-key signature over [`crate::crypto::approval_message`], DER, base64url.
    pub device_signature: String,
    /// For an approve: the PIN-key signature over the same message, sealed to the server's
    /// encryption key with aad = the transaction id, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_proof: Option<String>,
    /// The citizen confirmed "I am at that computer": required to approve a request whose
    /// browser is on another network than the phone ([`BrowserOrigin::same_network`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub at_computer: bool,
}

/// Outcome of a [`Response`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseOutcome {
    /// The approval was verified and accepted.
    Approved,
    /// The deny was recorded.
    Denied,
    /// The PIN proof did not verify; the request stays open.
    WrongPin,
    /// That was the fifth wrong PIN in a row: the device is locked.
    PinLocked,
}

/// Answer to a [`Response`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseResult {
    /// What happened.
    pub result: ResponseOutcome,
    /// Wrong PINs left before the lock, after a wrong PIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts_left: Option<u8>,
}

/// `GET /status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    /// The device.
    pub device_id: String,
    /// Its state.
    pub device_status: DeviceStatus,
    /// The device certificate's serial, hex.
    pub certificate_serial: String,
    /// Its validity, RFC 3339.
    pub not_before: String,
    /// Its validity, RFC 3339.
    pub not_after: String,
}

/// The body of every error answer: a stable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable code, e.g. `invalid_code`, `device_revoked`, `pin_locked`, `expired`,
    /// `not_pending`, `bad_signature`, `rate_limited`.
    pub error: String,
    /// What happened, in English.
    pub message: String,
}
