//! The ConsentID app reduced to its keys and the protocol (crates/proto), for tests: the
//! services' unit tests (`test_support`) and the crate's integration tests (feature
//! `test-support`) drive activation, the inbox and answers through it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failure is the test's

use std::time::Duration;

use p256::SecretKey;

use domain::{TxnId, UnixTime};
use proto::app::{
    ActivationComplete, Decision, Envelope, RequestPayload, Response, ResponseOutcome,
};
use proto::crypto;

use crate::login::consentid::{AuthenticatedDevice, Caller};
use crate::{Authority, Error};

/// The caller of the app's requests.
pub fn caller() -> Caller {
    Caller {
        ip: "127.0.0.1".into(),
    }
}

/// The ConsentID app, reduced to its keys and the protocol.
pub struct App {
    device: SecretKey,
    /// The PIN key (`answer` with another one models a wrong PIN).
    pub pin: SecretKey,
    /// The device's id, as the server gave it at activation.
    pub device_id: String,
    /// The address the app calls from (`127.0.0.1` unless a test moves it).
    pub ip: String,
    /// Whether its answers confirm "I am at that computer".
    pub at_computer: bool,
    encryption_key: p256::PublicKey,
}

impl App {
    /// Where the app's requests come from.
    pub fn caller(&self) -> Caller {
        Caller {
            ip: self.ip.clone(),
        }
    }

    /// Activates a new app with an activation code.
    pub async fn activate(authority: &Authority, code: &str) -> Result<Self, Error> {
        let challenge = authority.login.activation_start(code, &caller()).await?;
        let encryption_key =
            crypto::public_key(&crypto::unb64(&challenge.server_encryption_key).unwrap()).unwrap();
        let device = SecretKey::random(&mut rand::rngs::OsRng);
        let pin = SecretKey::random(&mut rand::rngs::OsRng);
        let device_der = crypto::public_key_der(&device.public_key());
        let aad = challenge.activation_id.as_bytes();
        let sealed_pin = crypto::seal(
            &encryption_key,
            &crypto::public_key_der(&pin.public_key()),
            aad,
        )
        .unwrap();
        let message = crypto::activation_message(
            &challenge.activation_id,
            &challenge.nonce,
            &device_der,
            &sealed_pin,
        );
        let request = ActivationComplete {
            activation_id: challenge.activation_id.clone(),
            device_public_key: crypto::b64(&device_der),
            device_name: "test phone".into(),
            encrypted_pin_public_key: crypto::b64(&sealed_pin),
            device_signature: crypto::b64(&crypto::sign(&device, message.as_bytes())),
            encrypted_pin_signature: crypto::b64(
                &crypto::seal(
                    &encryption_key,
                    &crypto::sign(&pin, message.as_bytes()),
                    aad,
                )
                .unwrap(),
            ),
        };
        let result = authority
            .login
            .activation_complete(&request, &caller())
            .await?;
        Ok(Self {
            device,
            pin,
            device_id: result.device_id,
            ip: caller().ip,
            at_computer: false,
            encryption_key,
        })
    }

    /// The device's signed authorisation of one request, checked by the authority.
    pub async fn authenticated(
        &self,
        authority: &Authority,
        path: &str,
        body: &[u8],
    ) -> Result<AuthenticatedDevice, Error> {
        let nonce = crypto::b64(&rand::random::<[u8; 16]>());
        let now = authority.now().0;
        let message = crypto::request_message("POST", path, now, &nonce, body);
        let header = crypto::authorization_header(
            &self.device_id,
            now,
            &nonce,
            &crypto::sign(&self.device, message.as_bytes()),
        );
        authority
            .login
            .authenticate_device(&header, "POST", path, body)
            .await
    }

    /// The first request waiting in the app's inbox.
    pub async fn next_request(&self, authority: &Authority) -> (Envelope, RequestPayload) {
        let device = self.authenticated(authority, "/inbox", b"").await.unwrap();
        let inbox = authority
            .login
            .inbox(&device, &self.caller(), Duration::ZERO)
            .await
            .unwrap();
        let envelope = inbox.items.into_iter().next().expect("a pending request");
        let payload: RequestPayload =
            serde_json::from_slice(&crypto::unb64(&envelope.payload).unwrap()).unwrap();
        (envelope, payload)
    }

    /// Approves the first request waiting, with the right code and PIN, now.
    pub async fn approve_next(&self, authority: &Authority) -> ResponseOutcome {
        let (envelope, payload) = self.next_request(authority).await;
        let code = crypto::verification_code(&crypto::unb64(&payload.challenge).unwrap());
        let (txn, response) = self.answer(
            &envelope,
            Decision::Approve,
            &code,
            Some(&self.pin),
            authority.now(),
        );
        self.send(authority, &txn, &response).await.unwrap()
    }

    /// Builds an answer. `pin` is the PIN key to prove with (a wrong one models a wrong PIN,
    /// none an answer without a PIN proof).
    pub fn answer(
        &self,
        envelope: &Envelope,
        decision: Decision,
        code: &str,
        pin: Option<&SecretKey>,
        iat: UnixTime,
    ) -> (TxnId, Response) {
        let payload_bytes = crypto::unb64(&envelope.payload).unwrap();
        let payload: RequestPayload = serde_json::from_slice(&payload_bytes).unwrap();
        let message = crypto::approval_message(
            &payload.txn_id,
            payload.kind,
            decision,
            &payload.rp.id,
            &payload.challenge,
            &payload_bytes,
            code,
            &self.device_id,
            iat.0,
        );
        let pin_proof = pin.map(|key| {
            crypto::b64(
                &crypto::seal(
                    &self.encryption_key,
                    &crypto::sign(key, message.as_bytes()),
                    payload.txn_id.as_bytes(),
                )
                .unwrap(),
            )
        });
        let response = Response {
            decision,
            reason: None,
            verification_code: code.into(),
            issued_at: iat.0,
            device_signature: crypto::b64(&crypto::sign(&self.device, message.as_bytes())),
            pin_proof,
            at_computer: self.at_computer,
        };
        (TxnId::from(payload.txn_id), response)
    }

    /// Sends an answer as the app does.
    pub async fn send(
        &self,
        authority: &Authority,
        txn: &TxnId,
        response: &Response,
    ) -> Result<ResponseOutcome, Error> {
        let body = serde_json::to_vec(response).unwrap();
        let device = self
            .authenticated(authority, &format!("/requests/{txn}/response"), &body)
            .await?;
        Ok(authority
            .login
            .respond(&device, &self.caller(), txn, response)
            .await?
            .result)
    }
}
