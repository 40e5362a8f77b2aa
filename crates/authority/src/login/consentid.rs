//! ConsentID on the server (DESIGN §4, reference/mobile-auth.md §7): activation of a device
//! with its certificate, device-authenticated requests, the inbox, and the answers to login and
//! signing requests, with PIN proofs opened, checked and discarded.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use domain::login::{self, MAX_PIN_FAILURES, TRANSACTION_LIFETIME};
use domain::records::{DeviceRecord, TransactionRecord};
use domain::{
    CertificateKind, DeviceId, DeviceState, Jmbg, RateLimit, TransactionStatus, TxnId, UnixTime,
    UserId,
};
use pki::profile::{CertificateRequest, Person};
use pki::{KeyBackend, KeySigner, PublicKeyDer};
use proto::app::{
    ActivationChallenge, ActivationComplete, ActivationResult, Decision, DeviceStatus, Envelope,
    Inbox, RequestKind, RequestPayload, Response, ResponseOutcome, ResponseResult,
};
use proto::crypto;
use sha2::Sha256;
use store::{
    AccountQueries, AccountStore as _, AuditLog as _, CertificateQueries, Change, LoginStore,
    OidcStore, Transaction as _,
};
use zeroize::Zeroizing;

use crate::ca::random_serial;
use crate::login::LoginDb;
use crate::ra::accounts::check_activation_code;
use crate::settings::CaName;
use crate::{Account, DeviceSummary, Error, Login, Rejection};

/// The role names of the service's own keys.
const APP_SIGNING: &str = "app_signing";
const APP_ENCRYPTION: &str = "app_encryption";
/// The service key role of the VAPID key (RFC 8292 §3.2).
pub(crate) const VAPID_KEY: &str = "push_vapid";
/// Validity of a device certificate, years.
const DEVICE_CERTIFICATE_YEARS: i64 = 2;
/// The relying party id in approval messages.
pub const RP_ID: &str = "eidportal";

/// Where a request to the app API comes from.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The client's address.
    pub ip: String,
}

/// A device whose request signature was verified.
#[derive(Debug, Clone)]
pub struct AuthenticatedDevice(pub(crate) DeviceRecord);

impl AuthenticatedDevice {
    /// The device's id.
    pub fn id(&self) -> DeviceId {
        self.0.id.clone()
    }

    /// Its account.
    pub fn user_id(&self) -> UserId {
        self.0.user_id.clone()
    }

    /// The app's view of its state.
    pub fn status(&self) -> DeviceStatus {
        device_status(&self.0)
    }
}

/// A device request whose signature and time checked out, its nonce not spent yet: only this
/// module spends it, once ([`Login::respond_to`] or [`Login::spend_device_request`]).
#[derive(Debug)]
pub struct DeviceRequest {
    device: DeviceRecord,
    nonce_key: String,
    at: UnixTime,
}

impl DeviceRequest {
    /// Records the nonce inside `tx`; false if it was seen before.
    async fn spend(&self, tx: &mut impl LoginStore) -> Result<bool, Error> {
        Ok(tx
            .use_nonce(&self.nonce_key, self.remembered_until())
            .await?)
    }

    /// How long the nonce is kept: past it, the request's time is refused anyway.
    fn remembered_until(&self) -> UnixTime {
        self.at.plus_seconds(2 * login::CLOCK_SKEW)
    }
}

/// What [`Login::respond_to`] checked of an answer, and against which request and keys.
struct AnswerCheck {
    /// The request's id, kind, challenge and payload.
    txn: (TxnId, String, String, Vec<u8>),
    /// The device's id, key and PIN key.
    device: (DeviceId, Vec<u8>, Vec<u8>),
    /// The approval message (proto `approval_message`).
    message: String,
    /// The device signed `message`.
    signature_ok: bool,
    /// The PIN proof opened and verified; `None` when it is not base64.
    pin_ok: Option<bool>,
}

impl AnswerCheck {
    /// Whether this check holds for `txn` and `device` as read now.
    fn is_for(&self, txn: &TransactionRecord, device: &DeviceRecord) -> bool {
        let (id, kind, challenge, payload) = &self.txn;
        let (device_id, public_key, pin_public_key) = &self.device;
        *id == txn.id
            && *kind == txn.kind
            && *challenge == txn.challenge
            && *payload == txn.payload
            && *device_id == device.id
            && *public_key == device.public_key
            && *pin_public_key == device.pin_public_key
    }
}

/// Domain separation tag of the fixed ECDH peer point (RFC 9380 §3.1).
const AUDIT_PEER_DST: &[u8] = b"eidportal-audit-chain-v1-P256_XMD:SHA-256_SSWU_RO_";

/// The audit chain's secret where the key backend has none of its own (a PKCS#11 token): ECDH
/// of the ConsentID encryption key, which never leaves the token, with a fixed point hashed to
/// the curve (RFC 9380, so nobody knows its discrete logarithm and only the token's key can
/// compute the shared secret), through HKDF-SHA256. `None` until that key exists: the first
/// start creates it.
pub async fn audit_secret_from_service_key(
    store: &(impl AccountQueries + CertificateQueries),
    keys: &dyn KeyBackend,
) -> Result<Option<Zeroizing<[u8; 32]>>, Error> {
    use p256::elliptic_curve::hash2curve::{ExpandMsgXmd, GroupDigest as _};
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    let Some(id) = store.service_key(APP_ENCRYPTION).await? else {
        return Ok(None);
    };
    let record = store.key(&id).await?;
    let signer = keys.open(&pki::KeyReference(record.reference))?;
    let peer = p256::NistP256::hash_from_bytes::<ExpandMsgXmd<Sha256>>(
        &[b"audit chain peer"],
        &[AUDIT_PEER_DST],
    )
    .map_err(|_| Error::Inconsistent("hash to curve failed".into()))?
    .to_affine()
    .to_encoded_point(false);
    let shared = signer.diffie_hellman(peer.as_bytes())?;
    let mut secret = Zeroizing::new([0u8; 32]);
    hkdf::Hkdf::<Sha256>::new(None, &shared)
        .expand(store::AuditKey::PURPOSE.as_bytes(), secret.as_mut())
        .map_err(|_| Error::Inconsistent("HKDF output length".into()))?;
    Ok(Some(secret))
}

impl<D: LoginDb> Login<D> {
    /// Opens the app-channel signing key, the PIN-material encryption key and the Web Push
    /// key, which the CA creates on first start (always P-256, whatever the CA key algorithm).
    pub(crate) async fn ensure_service_keys(&self) -> Result<(), Error> {
        for role in [
            APP_SIGNING,
            APP_ENCRYPTION,
            crate::login::consentid::VAPID_KEY,
        ] {
            // Only the encryption key does ECDH; the others only sign (no CKA_DERIVE).
            let key = self.ca.service_key(role, role == APP_ENCRYPTION).await?;
            self.service_keys
                .write()
                .map_err(|_| Error::Inconsistent("service key lock poisoned".into()))?
                .insert(role, key);
        }
        Ok(())
    }

    /// A service key opened at start (memory only: safe to call inside a transaction).
    fn service_key(&self, role: &str) -> Result<Arc<dyn KeySigner>, Error> {
        let keys = self
            .service_keys
            .read()
            .map_err(|_| Error::Inconsistent("service key lock poisoned".into()))?;
        keys.get(role)
            .cloned()
            .ok_or_else(|| Error::Inconsistent(format!("service key {role} missing")))
    }

    /// Opens a value sealed to the service's encryption key ([`proto::crypto::seal`]).
    async fn open_sealed(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, Rejection> {
        let key = self
            .service_key(APP_ENCRYPTION)
            .map_err(|_| Rejection::BadSignature)?;
        let (point, _) = crypto::split_sealed(sealed).map_err(|_| Rejection::BadSignature)?;
        let shared = key
            .diffie_hellman(point)
            .map_err(|_| Rejection::BadSignature)?;
        crypto::open_with(&shared, sealed, aad).map_err(|_| Rejection::BadSignature)
    }

    /// Counts one event against a rate limit inside `tx`; refuses when it is reached. Off only
    /// with the benchmark setting `dangerous_disable_rate_limits`.
    pub(crate) async fn rate_limit(
        &self,
        tx: &mut D::Tx,
        key: &str,
        limit: RateLimit,
    ) -> Result<(), Error> {
        crate::rate_limit(tx, &self.settings, self.clock.now(), key, limit).await
    }

    /// `POST /activation/start`: checks the code and hands out the nonce and the server keys.
    pub async fn activation_start(
        &self,
        code: &str,
        caller: &Caller,
    ) -> Result<ActivationChallenge, Error> {
        let mut tx = self.store.begin().await?;
        self.rate_limit(
            &mut tx,
            &format!("activation:ip:{}", caller.ip),
            RateLimit::ACTIVATION_PER_ADDRESS,
        )
        .await?;
        let activation = match check_activation_code(&mut tx, code, self.clock.now()).await? {
            Ok(activation) => activation,
            Err(rejection) => {
                // Keep the counted try even though the request is refused.
                tx.commit().await?;
                return Err(rejection.into());
            }
        };
        let user = tx
            .user(&activation.user_id)
            .await?
            .ok_or(Rejection::NotFound)?;
        let nonce = crypto::b64(&rand::random::<[u8; 16]>());
        tx.update_activation(&activation.id, activation.tries_left, Some(&nonce), None)
            .await?;
        tx.commit().await?;
        let signing = self.service_key(APP_SIGNING)?;
        let encryption = self.service_key(APP_ENCRYPTION)?;
        Ok(ActivationChallenge {
            activation_id: activation.id,
            nonce,
            server_signing_key: crypto::b64(&signing.public_key().0),
            server_encryption_key: crypto::b64(&encryption.public_key().0),
            user_hint: mask_email(&user.email),
            pin_length: 6,
            max_pin_failures: MAX_PIN_FAILURES,
        })
    }

    /// `POST /activation/complete`: proves both keys, records the device and issues its
    /// certificate from the ConsentID CA, all in one database transaction.
    pub async fn activation_complete(
        &self,
        request: &ActivationComplete,
        caller: &Caller,
    ) -> Result<ActivationResult, Error> {
        let decode = |field: &'static str, value: &str| {
            crypto::unb64(value).map_err(|_| Rejection::Invalid(field))
        };
        let device_key = decode("device_public_key", &request.device_public_key)?;
        let sealed_pin_key = decode(
            "encrypted_pin_public_key",
            &request.encrypted_pin_public_key,
        )?;
        let device_signature = decode("device_signature", &request.device_signature)?;
        let sealed_pin_signature =
            decode("encrypted_pin_signature", &request.encrypted_pin_signature)?;
        crypto::public_key(&device_key).map_err(|_| Rejection::Invalid("device_public_key"))?;
        let name = request.device_name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(Rejection::Invalid("device_name").into());
        }
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        self.rate_limit(
            &mut tx,
            &format!("activation:ip:{}", caller.ip),
            RateLimit::ACTIVATION_PER_ADDRESS,
        )
        .await?;
        let activation = tx
            .activation(&request.activation_id)
            .await?
            .ok_or(Rejection::ActivationMismatch)?;
        let Some(nonce) = activation.nonce.clone() else {
            return Err(Rejection::ActivationMismatch.into());
        };
        if activation.id != request.activation_id
            || activation.used_at.is_some()
            || activation.tries_left <= 0
            || now >= activation.expires_at
        {
            return Err(Rejection::InvalidCode.into());
        }
        // 1. Both keys prove possession over the same message.
        let message =
            crypto::activation_message(&activation.id, &nonce, &device_key, &sealed_pin_key);
        crypto::verify(&device_key, message.as_bytes(), &device_signature)
            .map_err(|_| Rejection::BadSignature)?;
        let pin_key = self
            .open_sealed(&sealed_pin_key, activation.id.as_bytes())
            .await?;
        crypto::public_key(&pin_key).map_err(|_| Rejection::Invalid("encrypted_pin_public_key"))?;
        let pin_signature = self
            .open_sealed(&sealed_pin_signature, activation.id.as_bytes())
            .await?;
        crypto::verify(&pin_key, message.as_bytes(), &pin_signature)
            .map_err(|_| Rejection::BadSignature)?;
        // 2. The device certificate: serial stored, then signed, in this transaction.
        let user = tx
            .user(&activation.user_id)
            .await?
            .ok_or(Rejection::NotFound)?;
        let jmbg = Jmbg::parse(&user.jmbg)
            .map_err(|_| Error::Inconsistent("stored JMBG invalid".into()))?;
        let person = Person {
            given_name: user.given_name.clone(),
            surname: user.surname.clone(),
            jmbg,
        };
        let device_id = DeviceId::from(hex::encode(rand::random::<[u8; 16]>()));
        let serial = random_serial();
        let subject = person.name()?;
        let not_after = now.plus_calendar_years(DEVICE_CERTIFICATE_YEARS);
        let public_key = PublicKeyDer(device_key.clone());
        let certificate_request = CertificateRequest {
            kind: CertificateKind::Device,
            serial,
            subject,
            public_key: &public_key,
            not_before: now,
            not_after,
        };
        let certificate = self
            .ca
            .issue_in(
                &mut tx,
                CaName::ConsentId,
                &certificate_request,
                Some(&user.email),
                None,
                now,
            )
            .await?;
        // 3. The device, and the code spent.
        tx.insert_device(&DeviceRecord {
            id: device_id.clone(),
            user_id: user.id.clone(),
            name: name.to_owned(),
            public_key: device_key,
            pin_public_key: pin_key,
            state: DeviceState::Active,
            pin_failures: 0,
            certificate_serial: serial,
            created_at: now,
            last_used_at: None,
        })
        .await?;
        tx.update_activation(
            &activation.id,
            activation.tries_left,
            Some(&nonce),
            Some(now),
        )
        .await?;
        tx.audit(
            now,
            &format!("user:{}", user.id),
            "device.activated",
            json!({ "device": device_id, "certificate": serial.to_hex(), "ip": caller.ip }),
        )
        .await?;
        tx.commit().await?;
        Ok(ActivationResult {
            device_id: device_id.to_string(),
            certificate: crypto::b64(&certificate.0),
            certificate_serial: serial.to_hex(),
        })
    }

    /// Verifies a device request: the signature over method, path, time, nonce and body; the
    /// time within the skew; the nonce never seen before; the device not revoked.
    pub async fn authenticate_device(
        &self,
        authorization: &str,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> Result<AuthenticatedDevice, Error> {
        let request = self
            .verify_device_request(authorization, method, path_and_query, body)
            .await?;
        self.spend_device_request(request).await
    }

    /// The first half of [`Self::authenticate_device`]: the signature and the time, without
    /// spending the nonce. [`Self::respond_to`] spends it in the answer's own transaction;
    /// anything else spends it with [`Self::spend_device_request`].
    pub async fn verify_device_request(
        &self,
        authorization: &str,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> Result<DeviceRequest, Error> {
        let parsed = crypto::parse_authorization(authorization)
            .ok_or(Rejection::Invalid("authorization"))?;
        let device = self
            .store
            .device(&parsed.device_id.as_str().into())
            .await?
            .ok_or(Rejection::BadSignature)?;
        let message = crypto::request_message(
            method,
            path_and_query,
            parsed.timestamp,
            &parsed.nonce,
            body,
        );
        crypto::verify(&device.public_key, message.as_bytes(), &parsed.signature)
            .map_err(|_| Rejection::BadSignature)?;
        let now = self.clock.now();
        if (parsed.timestamp - now.0).abs() > login::CLOCK_SKEW {
            return Err(Rejection::ClockSkew.into());
        }
        Ok(DeviceRequest {
            nonce_key: format!("{}:{}", device.id, parsed.nonce),
            device,
            at: now,
        })
    }

    /// The second half of [`Self::authenticate_device`]: spends the request's nonce (one
    /// statement, its own transaction), then refuses a revoked device.
    pub async fn spend_device_request(
        &self,
        request: DeviceRequest,
    ) -> Result<AuthenticatedDevice, Error> {
        if !self
            .store
            .use_nonce(&request.nonce_key, request.remembered_until())
            .await?
        {
            return Err(Rejection::Replay.into());
        }
        if request.device.state == DeviceState::Revoked {
            return Err(Rejection::DeviceRevoked.into());
        }
        Ok(AuthenticatedDevice(request.device))
    }

    /// The account's ConsentID devices, oldest first.
    pub async fn devices(&self, user: &Account) -> Result<Vec<DeviceSummary>, Error> {
        let devices = self.store.devices_of(&user.id).await?;
        Ok(devices.iter().map(DeviceSummary::from).collect())
    }

    /// `GET /status`: the device's state and its certificate's validity.
    pub async fn device_state(
        &self,
        device: &AuthenticatedDevice,
    ) -> Result<proto::app::DeviceState, Error> {
        let record = &device.0;
        let certificate = self.store.certificate(&record.certificate_serial).await?;
        let (not_before, not_after) = certificate
            .map(|c| (c.not_before.rfc3339(), c.not_after.rfc3339()))
            .unwrap_or_default();
        Ok(proto::app::DeviceState {
            device_id: record.id.to_string(),
            device_status: device.status(),
            certificate_serial: record.certificate_serial.to_hex(),
            not_before,
            not_after,
        })
    }

    /// `GET /inbox?wait=N`: pending requests for the device's user, waiting up to `wait` for
    /// one to arrive. It is woken by the use cases that change the account's requests or
    /// devices ([`Change::Requests`]), in any instance, and looks again at least every
    /// [`store::Watch::recheck`].
    pub async fn inbox(
        &self,
        device: &AuthenticatedDevice,
        caller: &Caller,
        wait: Duration,
    ) -> Result<Inbox, Error> {
        let deadline = tokio::time::Instant::now() + wait;
        let watch = self
            .store
            .watch(&Change::Requests(device.0.user_id.clone()));
        loop {
            let changed = watch.next();
            // Boxed: the waiting poll carries the queries' state only while they run.
            let inbox = Box::pin(self.inbox_now(&device.0.id, caller)).await?;
            let now = tokio::time::Instant::now();
            if !inbox.items.is_empty()
                || inbox.device_status != DeviceStatus::Active
                || now >= deadline
            {
                return Ok(inbox);
            }
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(deadline.min(now + watch.recheck())) => {}
            }
        }
    }

    async fn inbox_now(&self, device_id: &DeviceId, caller: &Caller) -> Result<Inbox, Error> {
        let device = self
            .store
            .device(device_id)
            .await?
            .ok_or(Rejection::NotFound)?;
        let now = self.clock.now();
        let mut items = Vec::new();
        let mut cancelled = Vec::new();
        if device.state == DeviceState::Active {
            for txn in self
                .store
                .transactions_of(&device.user_id, now.plus_seconds(-2 * TRANSACTION_LIFETIME))
                .await?
            {
                match login::effective_status(txn.status, txn.expires_at, now) {
                    TransactionStatus::Pending => {
                        items.push(envelope_for(&txn, caller, self.settings.geoip.as_deref()))
                    }
                    TransactionStatus::Approved | TransactionStatus::Consumed => {}
                    _ => cancelled.push(txn.id.to_string()),
                }
            }
        }
        Ok(Inbox {
            items,
            cancelled,
            device_status: device_status(&device),
        })
    }

    /// `POST /requests/{txn}/response` from an authenticated device: see [`Self::respond_to`].
    pub async fn respond(
        &self,
        device: &AuthenticatedDevice,
        caller: &Caller,
        txn_id: &TxnId,
        response: &Response,
    ) -> Result<ResponseResult, Error> {
        self.answer(&device.0, None, caller, txn_id, response).await
    }

    /// `POST /requests/{txn}/response`: one database transaction that spends the request's
    /// nonce, checks everything against the stored request (never against what the client
    /// echoes) and moves it on once. A refused answer rolls back, and its nonce is then spent
    /// on its own, so that no request is accepted twice.
    pub async fn respond_to(
        &self,
        request: DeviceRequest,
        caller: &Caller,
        txn_id: &TxnId,
        response: &Response,
    ) -> Result<ResponseResult, Error> {
        if request.device.state == DeviceState::Revoked {
            // As `authenticate_device`: the nonce spent, then the device refused.
            self.spend_device_request(request).await?;
            return Err(Rejection::DeviceRevoked.into());
        }
        match self
            .answer(&request.device, Some(&request), caller, txn_id, response)
            .await
        {
            Ok(result) => Ok(result),
            Err(Error::Rejected(Rejection::Replay)) => Err(Rejection::Replay.into()),
            Err(error) => {
                self.spend_device_request(request).await?;
                Err(error)
            }
        }
    }

    /// The signatures of an answer checked against a request and a device (CPU work only).
    async fn check_answer(
        &self,
        txn: &TransactionRecord,
        device: &DeviceRecord,
        response: &Response,
        device_signature: &[u8],
    ) -> AnswerCheck {
        let kind = RequestKind::parse(&txn.kind).unwrap_or(RequestKind::Login);
        let message = crypto::approval_message(
            &txn.id,
            kind,
            response.decision,
            RP_ID,
            &txn.challenge,
            &txn.payload,
            &response.verification_code,
            &device.id,
            response.issued_at,
        );
        let signature_ok =
            crypto::verify(&device.public_key, message.as_bytes(), device_signature).is_ok();
        let pin_ok = match &response.pin_proof {
            Some(sealed) => match crypto::unb64(sealed) {
                Ok(sealed) => Some(match self.open_sealed(&sealed, txn.id.as_bytes()).await {
                    Ok(signature) => {
                        crypto::verify(&device.pin_public_key, message.as_bytes(), &signature)
                            .is_ok()
                    }
                    Err(_) => false,
                }),
                Err(_) => None,
            },
            None => Some(false),
        };
        AnswerCheck {
            txn: (
                txn.id.clone(),
                txn.kind.clone(),
                txn.challenge.clone(),
                txn.payload.clone(),
            ),
            device: (
                device.id.clone(),
                device.public_key.clone(),
                device.pin_public_key.clone(),
            ),
            message,
            signature_ok,
            pin_ok,
        }
    }

    async fn answer(
        &self,
        device: &DeviceRecord,
        nonce: Option<&DeviceRequest>,
        caller: &Caller,
        txn_id: &TxnId,
        response: &Response,
    ) -> Result<ResponseResult, Error> {
        let device_signature = crypto::unb64(&response.device_signature)
            .map_err(|_| Rejection::Invalid("device_signature"))?;
        // 1. The signatures, checked before the write transaction against the request as read
        //    now (SQLite has one writer: its turn should not wait for elliptic curves), and
        //    checked again inside only if the request or the device changed meanwhile.
        let early = match self.store.transaction(txn_id).await? {
            Some(txn) => Some(
                self.check_answer(&txn, device, response, &device_signature)
                    .await,
            ),
            None => None,
        };
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        if let Some(request) = nonce {
            if !request.spend(&mut tx).await? {
                return Err(Rejection::Replay.into());
            }
        }
        let txn = tx
            .transaction_for_update(txn_id)
            .await?
            .ok_or(Rejection::NotFound)?;
        let current = tx.device(&device.id).await?.ok_or(Rejection::NotFound)?;
        let checked = match early {
            Some(check) if check.is_for(&txn, &current) => check,
            _ => {
                self.check_answer(&txn, &current, response, &device_signature)
                    .await
            }
        };
        // 2. The device signed exactly this request, decision, code and time.
        if !checked.signature_ok {
            return Err(Rejection::BadSignature.into());
        }
        let message = checked.message;
        // 3. It may answer now.
        let mine = txn.user_id.as_deref() == Some(current.user_id.as_str());
        login::may_answer(
            txn.status,
            txn.expires_at,
            current.state,
            mine,
            UnixTime(response.issued_at),
            now,
        )
        .map_err(|refusal| match refusal {
            login::AnswerRefusal::NotPending => Rejection::NotPending,
            login::AnswerRefusal::WrongDevice => Rejection::NotFound,
            login::AnswerRefusal::DeviceInactive if current.state == DeviceState::PinLocked => {
                Rejection::PinLocked
            }
            login::AnswerRefusal::DeviceInactive => Rejection::DeviceRevoked,
            login::AnswerRefusal::ClockSkew => Rejection::ClockSkew,
        })?;
        // Whatever the answer, the request or the device changes: the browser waiting for it
        // and the account's other apps look again once it is committed.
        tx.publish(Change::Requests(current.user_id.clone()));
        let actor = format!("device:{}", current.id);
        let code_matches = response.verification_code == txn.verification_code;
        // 4. A deny, or a wrong code (which denies).
        if response.decision == Decision::Deny || !code_matches {
            let (status, hint) = if code_matches {
                let reason = response.reason.as_deref().unwrap_or("user_deny");
                (
                    TransactionStatus::Denied,
                    if reason == "not_me" {
                        "not_me"
                    } else {
                        "user_deny"
                    },
                )
            } else {
                (TransactionStatus::Failed, "wrong_vc")
            };
            tx.move_transaction(
                &txn.id,
                TransactionStatus::Pending,
                status,
                hint,
                Some(&current.id),
                now,
            )
            .await?;
            ciba_answered(&mut tx, &txn, now).await?;
            tx.audit(
                now,
                &actor,
                "transaction.denied",
                json!({ "txn": txn.id, "kind": txn.kind, "hint": hint }),
            )
            .await?;
            tx.commit().await?;
            return Ok(ResponseResult {
                result: ResponseOutcome::Denied,
                attempts_left: None,
            });
        }
        // 5. A browser on another network than the phone: the citizen confirmed being at that
        //    computer (the app warned; a relayed QR code ends here unless the citizen says so).
        if !response.at_computer
            && !domain::network::same_network(&browser_address(&txn), &caller.ip)
        {
            return Err(Rejection::LocationNotConfirmed.into());
        }
        // 6. The PIN proof, opened, checked and dropped (in step 1).
        let pin_ok = checked.pin_ok.ok_or(Rejection::Invalid("pin_proof"))?;
        if !pin_ok {
            let (state, left) =
                login::after_wrong_pin(u8::try_from(current.pin_failures).unwrap_or(u8::MAX));
            tx.update_device(&current.id, state, current.pin_failures + 1, now)
                .await?;
            tx.audit(
                now,
                &actor,
                "device.wrong_pin",
                json!({ "txn": txn.id, "attempts_left": left }),
            )
            .await?;
            if state == DeviceState::PinLocked {
                tx.move_transaction(
                    &txn.id,
                    TransactionStatus::Pending,
                    TransactionStatus::Failed,
                    "pin_locked",
                    Some(&current.id),
                    now,
                )
                .await?;
                ciba_answered(&mut tx, &txn, now).await?;
                tx.audit(
                    now,
                    &actor,
                    "device.pin_locked",
                    json!({ "device": current.id }),
                )
                .await?;
                tx.commit().await?;
                return Ok(ResponseResult {
                    result: ResponseOutcome::PinLocked,
                    attempts_left: Some(0),
                });
            }
            tx.commit().await?;
            return Ok(ResponseResult {
                result: ResponseOutcome::WrongPin,
                attempts_left: Some(left),
            });
        }
        tx.update_device(&current.id, DeviceState::Active, 0, now)
            .await?;
        if !tx
            .move_transaction(
                &txn.id,
                TransactionStatus::Pending,
                TransactionStatus::Approved,
                "approved",
                Some(&current.id),
                now,
            )
            .await?
        {
            return Err(Rejection::NotPending.into());
        }
        ciba_answered(&mut tx, &txn, now).await?;
        // Kept with the request: a certificate operation stores it with the agreement, as the
        // evidence that the citizen approved that exact text.
        tx.record_approval(&txn.id, &message, &device_signature)
            .await?;
        tx.audit(
            now,
            &actor,
            "transaction.approved",
            json!({ "txn": txn.id, "kind": txn.kind, "approval": message, "device_signature": response.device_signature }),
        )
        .await?;
        tx.commit().await?;
        Ok(ResponseResult {
            result: ResponseOutcome::Approved,
            attempts_left: None,
        })
    }

    /// Builds and signs a request for the app, and stores it as a pending transaction,
    /// superseding the user's earlier pending one of the same kind.
    #[allow(clippy::too_many_arguments)] // one request's parts, each from a different source
    pub(crate) async fn create_transaction(
        &self,
        tx: &mut D::Tx,
        user: Option<(&UserId, String)>,
        kind: RequestKind,
        requester: &str,
        session_binding: &str,
        context: proto::app::RequestContext,
        details: Option<RequestDetails>,
        flow: Option<proto::app::LoginFlow>,
    ) -> Result<TransactionRecord, Error> {
        let now = self.clock.now();
        let id = TxnId::from(hex::encode(rand::random::<[u8; 16]>()));
        let challenge = rand::random::<[u8; 32]>();
        let push = match (&user, kind) {
            (Some((user_id, _)), RequestKind::Login) => {
                self.may_push_login(tx, user_id, &context.ip, &id).await?
            }
            _ => true,
        };
        // Every string here reaches the approval screen: printable text only, whatever path
        // it came by (each entry point validates too; this is the last line).
        let shown = |text: &str, max: usize| domain::text::display_text(text, max);
        let context = proto::app::RequestContext {
            browser: shown(&context.browser, 120),
            ip: shown(&context.ip, 64),
        };
        let (sign, certificate, message) = match details {
            // (Each entry point holds its own limit: a CIBA binding message 40 characters, a
            // transaction's text 200; a text cut here would not match what the service sent,
            // and its approval would bind nothing.)
            Some(RequestDetails::Message(text)) => (
                None,
                None,
                Some(shown(&text, domain::oidc::TRANSACTION_TEXT_MAX)),
            ),
            Some(RequestDetails::Sign(details)) => (
                Some(proto::app::SignDetails {
                    documents: details
                        .documents
                        .into_iter()
                        .map(|d| proto::app::DocumentToSign {
                            title: shown(&d.title, 240),
                            hash: d.hash,
                        })
                        .collect(),
                    certificate_serial: details.certificate_serial,
                }),
                None,
                None,
            ),
            Some(RequestDetails::Certificate(details)) => (
                None,
                Some(proto::app::CertificateDetails {
                    title: shown(&details.title, 160),
                    ..details
                }),
                None,
            ),
            None => (None, None, None),
        };
        let payload = RequestPayload {
            v: 1,
            txn_id: id.to_string(),
            kind,
            rp: proto::app::RelyingParty {
                id: RP_ID.into(),
                name: shown(requester, 120),
            },
            user: user
                .as_ref()
                .map(|(_, name)| shown(name, 120))
                .unwrap_or_default(),
            challenge: crypto::b64(&challenge),
            created_at: now.0,
            expires_at: now.plus_seconds(TRANSACTION_LIFETIME).0,
            context,
            sign,
            certificate,
            flow,
            message,
        };
        let payload_bytes =
            serde_json::to_vec(&payload).map_err(|e| Error::Inconsistent(e.to_string()))?;
        let signature = self.service_key(APP_SIGNING)?.sign(&payload_bytes)?;
        if let Some((user_id, _)) = &user {
            tx.publish(Change::Requests(UserId::clone(user_id)));
            // A new signing request supersedes the user's earlier signing request. A login
            // supersedes only an earlier login of the same browser session: anyone who knows
            // the username can start one, and a stranger's must never end the owner's (finding
            // 4 of issue 22). A login never cancels a signing request.
            let bound_to = (kind == RequestKind::Login).then_some(session_binding);
            tx.end_pending_of_kind(
                user_id,
                kind.as_str(),
                bound_to,
                TransactionStatus::Cancelled,
                "superseded",
                now,
            )
            .await?;
        }
        let record = TransactionRecord {
            id,
            user_id: user.map(|(id, _)| id.clone()),
            kind: kind.as_str().to_owned(),
            status: TransactionStatus::Pending,
            hint: "outstanding".into(),
            challenge: payload.challenge.clone(),
            payload: payload_bytes,
            signature,
            verification_code: crypto::verification_code(&challenge),
            session_binding: session_binding.to_owned(),
            device_id: None,
            created_at: now,
            expires_at: now.plus_seconds(TRANSACTION_LIFETIME),
            decided_at: None,
        };
        tx.insert_transaction(&record).await?;
        if let (Some(user_id), true) = (&record.user_id, push) {
            self.push_after_commit(user_id, &record.id, &record.kind);
        }
        Ok(record)
    }

    /// Whether a login request for `user_id` from `address` may ring the phone: within
    /// [`RateLimit::LOGIN_PUSHES_PER_USER_NETWORK`] and [`RateLimit::LOGIN_PUSHES_PER_USER`].
    /// Past them the request is still made and shown in the app's inbox; the withheld push is
    /// audited, so that an operator sees an account being flooded.
    async fn may_push_login(
        &self,
        tx: &mut D::Tx,
        user_id: &UserId,
        address: &str,
        txn_id: &TxnId,
    ) -> Result<bool, Error> {
        let now = self.clock.now();
        let network = domain::network::limit_network(address);
        let push = crate::within_rate_limit(
            tx,
            &self.settings,
            now,
            &format!("push:user:{user_id}:net:{network}"),
            RateLimit::LOGIN_PUSHES_PER_USER_NETWORK,
        )
        .await?
            && crate::within_rate_limit(
                tx,
                &self.settings,
                now,
                &format!("push:user:{user_id}"),
                RateLimit::LOGIN_PUSHES_PER_USER,
            )
            .await?;
        if !push {
            tx.audit(
                now,
                "anonymous",
                "login.push_withheld",
                json!({ "txn": txn_id, "user": user_id }),
            )
            .await?;
        }
        Ok(push)
    }
}

/// The app's view of a device's state.
pub(crate) fn device_status(device: &DeviceRecord) -> DeviceStatus {
    match device.state {
        DeviceState::Active => DeviceStatus::Active,
        DeviceState::PinLocked => DeviceStatus::PinLocked,
        DeviceState::Revoked => DeviceStatus::Deactivated,
    }
}

/// The citizen answered `txn` (approved, refused, or failed it): if it was made for a CIBA
/// request in ping mode, that request's notification is due now (CIBA Core §10.2), in the
/// same transaction as the answer, so that it is owed exactly when the answer is committed.
async fn ciba_answered(
    tx: &mut impl OidcStore,
    txn: &TransactionRecord,
    now: UnixTime,
) -> Result<(), Error> {
    if let Some(id_hash) = domain::oidc::ciba_of_binding(&txn.session_binding) {
        tx.oidc_ciba_answered(id_hash, now).await?;
    }
    Ok(())
}

/// The address of the browser that made a request, as its payload shows it to the app.
fn browser_address(txn: &TransactionRecord) -> String {
    serde_json::from_slice::<RequestPayload>(&txn.payload)
        .map(|payload| payload.context.ip)
        .unwrap_or_default()
}

/// A request as the app at `caller` receives it: the signed payload, and where the browser is
/// compared with the phone (its city and country from `geoip`, when the operator configured
/// a database).
pub(crate) fn envelope_for(
    txn: &TransactionRecord,
    caller: &Caller,
    geoip: Option<&super::geoip::GeoIp>,
) -> Envelope {
    let browser = browser_address(txn);
    Envelope {
        payload: crypto::b64(&txn.payload),
        signature: crypto::b64(&txn.signature),
        origin: Some(proto::app::BrowserOrigin {
            same_network: domain::network::same_network(&browser, &caller.ip),
            location: super::geoip::locate(geoip, &browser),
        }),
    }
}

/// What a request asks beyond a login: the documents of a signature, or a certificate
/// operation.
pub(crate) enum RequestDetails {
    /// A qualified signature.
    Sign(proto::app::SignDetails),
    /// An operation on the citizen's certificate.
    Certificate(proto::app::CertificateDetails),
    /// A service's text for the approval screen (a CIBA login's binding message, or the
    /// transaction text of an authorization request's `authorization_details`).
    Message(String),
}

/// `p***@example.rs`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, host)) => format!("{}***@{host}", local.chars().next().unwrap_or('*')),
        None => "***".into(),
    }
}
