//! Web Push to ConsentID devices (RFC 8030): the subscriptions devices register, and the
//! message sent to each of a user's active devices when a login or signing request is made
//! for them. Messages are encrypted to the browser's key (RFC 8291, `aes128gcm` of RFC 8188)
//! and carry a VAPID token (RFC 8292) signed by the service key `push_vapid`, made and kept
//! like the other service keys (`consentid::ensure_service_keys`).
//!
//! The message says only that there is a request, of which kind and with which id; the app
//! fetches the request itself from the inbox, signed. A push never delays or fails the request:
//! it is sent in the background once the request's transaction is committed.
//!
//! The endpoint is the device's choice, so where the server connects is checked (issue 22,
//! server-side request forgery): its host is resolved and every address must be public
//! (`domain::push::may_push_to`) when the subscription is made, and again at each push (a
//! name may resolve elsewhere by then). The push connects to an address that was checked,
//! never resolving the name a second time, and follows no redirect (one request on a
//! connection of its own: a 3xx is a refusal like any other status).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::{Aead as _, KeyInit as _};
use hkdf::Hkdf;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::DecodePublicKey as _;
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

use domain::push::{may_push_to, EndpointRefusal};
use domain::records::PushSubscriptionRecord;
use domain::{TxnId, UnixTime, UserId};
use pki::KeySigner;
use proto::crypto;
use store::{AuditLog as _, PushStore as _, Transaction as _};

use crate::login::consentid::{AuthenticatedDevice, VAPID_KEY};
use crate::login::LoginDb;
use crate::{Error, Login, Rejection};

/// The longest endpoint URL accepted.
const MAX_ENDPOINT: usize = 2048;
/// Resolve, connect and overall time limits of one push.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Lifetime of a VAPID token (RFC 8292 §2: at most 24 hours).
const VAPID_LIFETIME: i64 = 12 * 3600;
/// The record size announced in the `aes128gcm` header (RFC 8188 §2.1).
const RECORD_SIZE: u32 = 4096;
/// How long the sender waits for the request's transaction to become visible (committed).
const COMMIT_WAIT: Duration = Duration::from_secs(10);

/// A subscription that passed [`parse_subscription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The push service's URL: `https://`, or `http://` to loopback where allowed.
    pub endpoint: String,
    /// The browser's uncompressed P-256 point.
    pub p256dh: Vec<u8>,
    /// The 16-byte authentication secret.
    pub auth: Vec<u8>,
}

#[derive(Deserialize)]
struct SubscriptionJson {
    endpoint: String,
    #[serde(rename = "expirationTime", default)]
    _expiration_time: Option<serde_json::Value>,
    keys: KeysJson,
}

#[derive(Deserialize)]
struct KeysJson {
    p256dh: String,
    auth: String,
}

/// Parses `PushSubscription.toJSON()` strictly: the endpoint an `https` URL without user
/// information or fragment (`http` only to a loopback host, and only with
/// `allow_http_loopback`), `p256dh` a valid uncompressed P-256 point, `auth` 16 bytes, both
/// base64url. Refuses with the field at fault.
pub fn parse_subscription(
    body: &[u8],
    allow_http_loopback: bool,
) -> Result<Subscription, Rejection> {
    let json: SubscriptionJson =
        serde_json::from_slice(body).map_err(|_| Rejection::Invalid("subscription"))?;
    check_endpoint(&json.endpoint, allow_http_loopback)?;
    let decode = |text: &str| crypto::unb64(text.trim_end_matches('='));
    let p256dh = decode(&json.keys.p256dh).map_err(|_| Rejection::Invalid("p256dh"))?;
    if p256dh.len() != 65
        || p256dh.first() != Some(&4)
        || p256::PublicKey::from_sec1_bytes(&p256dh).is_err()
    {
        return Err(Rejection::Invalid("p256dh"));
    }
    let auth = decode(&json.keys.auth).map_err(|_| Rejection::Invalid("auth"))?;
    if auth.len() != 16 {
        return Err(Rejection::Invalid("auth"));
    }
    Ok(Subscription {
        endpoint: json.endpoint,
        p256dh,
        auth,
    })
}

fn check_endpoint(endpoint: &str, allow_http_loopback: bool) -> Result<(), Rejection> {
    let invalid = Rejection::Invalid("endpoint");
    // The scheme as browsers write it: the stored text is what the sender parses again, so it
    // must say what was checked (`hTtps://` would parse as https, yet read as something else).
    if endpoint.len() > MAX_ENDPOINT
        || !endpoint.bytes().all(|b| b.is_ascii_graphic())
        || endpoint.contains('#')
        || !(endpoint.starts_with("https://") || endpoint.starts_with("http://"))
    {
        return Err(invalid);
    }
    let uri: hyper::Uri = endpoint.parse().map_err(|_| invalid)?;
    let authority = uri.authority().ok_or(invalid)?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return Err(invalid);
    }
    // After the host only a port may follow, and a real one (`host:abc` parses, port-less).
    let after_host = authority
        .as_str()
        .get(authority.host().len()..)
        .unwrap_or(":");
    if !after_host.is_empty()
        && authority
            .port_u16()
            .is_none_or(|port| after_host != format!(":{port}"))
    {
        return Err(invalid);
    }
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if allow_http_loopback && is_loopback(authority.host()) => Ok(()),
        _ => Err(invalid),
    }
}

/// The endpoint's host resolved once (an IP literal as it is), and refused unless every
/// address may be pushed to (`domain::push::may_push_to`): the addresses to connect to.
async fn resolve_checked(
    uri: &hyper::Uri,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, EndpointRefusal> {
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let default_port = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let port = uri.port_u16().unwrap_or(default_port);
    let addresses: Vec<SocketAddr> =
        match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(found)) => found.collect(),
            Ok(Err(_)) | Err(_) => Vec::new(),
        };
    let ips: Vec<std::net::IpAddr> = addresses.iter().map(SocketAddr::ip).collect();
    may_push_to(&ips, allow_private)?;
    Ok(addresses)
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl<D: LoginDb> Login<D> {
    /// `GET /push/key`: the VAPID public key, base64url of the uncompressed point.
    pub fn push_public_key(&self) -> Result<String, Error> {
        Ok(crypto::b64(&vapid_point(self.vapid_key()?.as_ref())?))
    }

    fn vapid_key(&self) -> Result<Arc<dyn KeySigner>, Error> {
        let keys = self
            .service_keys
            .read()
            .map_err(|_| Error::Inconsistent("service key lock poisoned".into()))?;
        keys.get(VAPID_KEY)
            .cloned()
            .ok_or_else(|| Error::Inconsistent(format!("service key {VAPID_KEY} missing")))
    }

    /// `POST /push/subscription`: stores the device's subscription, replacing its earlier one.
    /// A body that does not parse, or whose endpoint's host is not public
    /// ([`Rejection::PushEndpoint`]), changes nothing.
    pub async fn register_push(
        &self,
        device: &AuthenticatedDevice,
        body: &[u8],
    ) -> Result<(), Error> {
        let subscription =
            parse_subscription(body, self.settings.push.dangerous_allow_http_loopback)?;
        let uri: hyper::Uri = subscription
            .endpoint
            .parse()
            .map_err(|_| Rejection::Invalid("endpoint"))?;
        resolve_checked(&uri, self.settings.push.dangerous_allow_private_endpoints)
            .await
            .map_err(Rejection::PushEndpoint)?;
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        tx.replace_push_subscription(&PushSubscriptionRecord {
            device_id: device.0.id.clone(),
            endpoint: subscription.endpoint,
            p256dh: subscription.p256dh,
            auth: subscription.auth,
            created_at: now,
        })
        .await?;
        tx.audit(
            now,
            &format!("device:{}", device.0.id),
            "push.subscribed",
            json!({ "device": device.0.id }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// `DELETE /push/subscription`: removes the device's subscription; false if it had none.
    pub async fn unregister_push(&self, device: &AuthenticatedDevice) -> Result<bool, Error> {
        let mut tx = self.store.begin().await?;
        let deleted = tx.delete_push_subscription(&device.0.id, None).await?;
        if deleted {
            tx.audit(
                self.clock.now(),
                &format!("device:{}", device.0.id),
                "push.unsubscribed",
                json!({ "device": device.0.id }),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    /// Called where a request for `user_id`'s devices is made, inside its transaction: in the
    /// background, waits for the request to be committed (a rolled-back one never appears and
    /// is never announced), then pushes `{"v":1,"kind","txn_id"}` to each of the user's active
    /// devices with a subscription. Failures are logged, never returned.
    pub(crate) fn push_after_commit(&self, user_id: &UserId, txn_id: &TxnId, kind: &str) {
        let key = match self.vapid_key() {
            Ok(key) => key,
            Err(error) => {
                tracing::error!(%error, "no VAPID key: Web Push is off");
                return;
            }
        };
        let job = PushJob {
            store: self.store.clone(),
            key,
            subject: self
                .settings
                .push
                .subject
                .clone()
                .unwrap_or_else(|| self.settings.public_url.clone()),
            allow_private: self.settings.push.dangerous_allow_private_endpoints,
            now: self.clock.now(),
            user_id: user_id.clone(),
            txn_id: txn_id.clone(),
            kind: kind.to_owned(),
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(job.run());
        }
    }
}

/// One request's pushes, sent by a background task.
struct PushJob<D> {
    store: D,
    key: Arc<dyn KeySigner>,
    subject: String,
    /// `dangerous_allow_private_endpoints`.
    allow_private: bool,
    now: UnixTime,
    user_id: UserId,
    txn_id: TxnId,
    kind: String,
}

impl<D: LoginDb> PushJob<D> {
    async fn run(self) {
        // 1. The request must be committed before the app is told to fetch it.
        let deadline = tokio::time::Instant::now() + COMMIT_WAIT;
        loop {
            match self.store.transaction(&self.txn_id).await {
                Ok(Some(_)) => break,
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(%error, "Web Push: cannot read the request");
                    return;
                }
            }
        }
        // 2. Each active device's subscription, one after another (a user has few devices).
        let subscriptions = match self.store.push_subscriptions_of(&self.user_id).await {
            Ok(subscriptions) => subscriptions,
            Err(error) => {
                tracing::warn!(%error, "Web Push: cannot read the subscriptions");
                return;
            }
        };
        let payload = json!({ "v": 1, "kind": self.kind, "txn_id": self.txn_id }).to_string();
        for subscription in subscriptions {
            match self.send(&subscription, payload.as_bytes()).await {
                Ok(status) if (200..300).contains(&status) => {}
                // RFC 8030 §7.3: the subscription is gone; only this one (not a newer one).
                Ok(404 | 410) => {
                    tracing::info!(device = %subscription.device_id, "Web Push: the subscription is gone; deleted");
                    let deleted = async {
                        let mut tx = self.store.begin().await?;
                        tx.delete_push_subscription(
                            &subscription.device_id,
                            Some(&subscription.endpoint),
                        )
                        .await?;
                        tx.commit().await
                    }
                    .await;
                    if let Err(error) = deleted {
                        tracing::warn!(%error, "Web Push: cannot delete a gone subscription");
                    }
                }
                Ok(status) => {
                    tracing::warn!(device = %subscription.device_id, status, "Web Push: the push service refused the message");
                }
                Err(error) => {
                    tracing::warn!(device = %subscription.device_id, %error, "Web Push: sending failed");
                }
            }
        }
    }

    async fn send(
        &self,
        subscription: &PushSubscriptionRecord,
        payload: &[u8],
    ) -> Result<u16, String> {
        let uri: hyper::Uri = subscription
            .endpoint
            .parse()
            .map_err(|_| "the stored endpoint does not parse".to_owned())?;
        let body = encrypt(&subscription.p256dh, &subscription.auth, payload)?;
        let origin = origin(&uri)?;
        let token = vapid_token(self.key.as_ref(), &origin, &self.subject, self.now)?;
        let public = crypto::b64(&vapid_point(self.key.as_ref()).map_err(|e| e.to_string())?);
        let request = hyper::Request::post(
            uri.path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
                .to_owned(),
        )
        .header(
            hyper::header::HOST,
            uri.authority().map(|a| a.as_str()).unwrap_or(""),
        )
        .header(
            hyper::header::AUTHORIZATION,
            format!("vapid t={token}, k={public}"),
        )
        .header("TTL", domain::login::TRANSACTION_LIFETIME.to_string())
        .header("Urgency", "high")
        .header(hyper::header::CONTENT_ENCODING, "aes128gcm")
        .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
        .header(hyper::header::CONTENT_LENGTH, body.len().to_string())
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .map_err(|e| format!("request: {e}"))?;
        tokio::time::timeout(SEND_TIMEOUT, post(&uri, request, self.allow_private))
            .await
            .map_err(|_| "timed out".to_owned())?
    }
}

type Body = http_body_util::Full<bytes::Bytes>;

/// POSTs a form to a URI the operator registered (an OpenID client's back-channel logout URI):
/// see [`post_to_operator_uri`].
pub(crate) async fn post_form(uri: &str, body: String) -> Result<(), String> {
    post_to_operator_uri(uri, "application/x-www-form-urlencoded", None, body).await
}

/// POSTs `body` of `content_type` to a URI the operator registered (an OpenID client's
/// back-channel logout URI or CIBA notification endpoint), with `Authorization: Bearer` if a
/// token is given: `https://`, or `http://` anywhere the operator said (private addresses
/// allowed, unlike a device's push endpoint), one request on a connection of its own, no
/// redirect followed. A 2xx answer is success.
pub(crate) async fn post_to_operator_uri(
    uri: &str,
    content_type: &str,
    bearer: Option<&str>,
    body: String,
) -> Result<(), String> {
    let parsed: hyper::Uri = uri
        .parse()
        .map_err(|_| "the URI does not parse".to_owned())?;
    if !matches!(parsed.scheme_str(), Some("https" | "http")) {
        return Err("the URI is not http(s)".into());
    }
    let request = hyper::Request::post(
        parsed
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_owned(),
    )
    .header(
        hyper::header::HOST,
        parsed.authority().map(|a| a.as_str()).unwrap_or(""),
    )
    .header(hyper::header::CONTENT_TYPE, content_type)
    .header(hyper::header::CONTENT_LENGTH, body.len().to_string());
    let request = match bearer {
        Some(token) => request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}")),
        None => request,
    }
    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
    .map_err(|e| format!("request: {e}"))?;
    let status = tokio::time::timeout(SEND_TIMEOUT, post(&parsed, request, true))
        .await
        .map_err(|_| "timed out".to_owned())??;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP {status}"))
    }
}

/// One HTTP/1.1 POST on a connection of its own (a push is rare: no pool), no redirect
/// followed.
///
/// 1. Resolve the host and check every address now (the subscription was checked when it was
///    made, but a name may point elsewhere since): nothing is connected to otherwise.
/// 2. Connect to a checked address itself, so that no second lookup can answer differently
///    (the TLS server name is still the host's, and its certificate is checked against it).
async fn post(
    uri: &hyper::Uri,
    request: hyper::Request<Body>,
    allow_private: bool,
) -> Result<u16, String> {
    let https = uri.scheme_str() == Some("https");
    let host = uri.host().ok_or("no host")?;
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    // 1.
    let addresses = resolve_checked(uri, allow_private)
        .await
        .map_err(|refusal| refusal.to_string())?;
    // 2.
    let mut failure = String::from("no address");
    let mut connected = None;
    for address in addresses {
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(address)).await {
            Ok(Ok(tcp)) => {
                connected = Some(tcp);
                break;
            }
            Ok(Err(e)) => failure = format!("connect: {e}"),
            Err(_) => failure = "connect timed out".to_owned(),
        }
    }
    let tcp = connected.ok_or(failure)?;
    if https {
        let name = rustls::pki_types::ServerName::try_from(bare)
            .map_err(|_| "the host is not a server name".to_owned())?;
        let tls = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        exchange(hyper_util::rt::TokioIo::new(tls), request).await
    } else {
        exchange(hyper_util::rt::TokioIo::new(tcp), request).await
    }
}

async fn exchange<I>(io: I, request: hyper::Request<Body>) -> Result<u16, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(connection);
    let response = sender.send_request(request).await;
    driver.abort();
    Ok(response
        .map_err(|e| format!("HTTP: {e}"))?
        .status()
        .as_u16())
}

/// The Mozilla root store, TLS 1.2 and 1.3 with ring, HTTP/1.1.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// `scheme://host[:port]` of the endpoint: the VAPID audience (RFC 8292 §2).
fn origin(uri: &hyper::Uri) -> Result<String, String> {
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => Ok(format!("{scheme}://{}", authority.as_str())),
        _ => Err("the endpoint has no origin".into()),
    }
}

/// The VAPID key's public point, uncompressed (RFC 8292 §3.2).
fn vapid_point(key: &dyn KeySigner) -> Result<Vec<u8>, Error> {
    let public = p256::PublicKey::from_public_key_der(&key.public_key().0)
        .map_err(|_| Error::Inconsistent("the VAPID key is not a P-256 key".into()))?;
    Ok(public.to_encoded_point(false).as_bytes().to_vec())
}

/// The VAPID JWT (RFC 8292 §2): ES256 over `{"typ":"JWT","alg":"ES256"}` and the claims
/// `aud`, `exp`, `sub`, made like the OpenID provider's tokens (`oidc::jose::sign_es256`).
fn vapid_token(
    key: &dyn KeySigner,
    audience: &str,
    subject: &str,
    now: UnixTime,
) -> Result<String, String> {
    let claims = json!({ "aud": audience, "exp": now.0 + VAPID_LIFETIME, "sub": subject });
    crate::oidc::jose::sign_es256(key, None, "JWT", &claims).map_err(|e| format!("VAPID: {e}"))
}

/// RFC 8291 §3.4 and RFC 8188 §2: encrypts `payload` to the browser's key `p256dh` with its
/// authentication secret `auth`, under a fresh sender key and salt, as one record.
fn encrypt(p256dh: &[u8], auth: &[u8], payload: &[u8]) -> Result<Vec<u8>, String> {
    let receiver = p256::PublicKey::from_sec1_bytes(p256dh).map_err(|_| "bad p256dh".to_owned())?;
    let sender = p256::ecdh::EphemeralSecret::random(&mut rand::rngs::OsRng);
    let sender_public = sender.public_key().to_encoded_point(false);
    let shared = sender.diffie_hellman(&receiver);
    // PRK_key = HMAC(auth, ecdh); IKM = HKDF-Expand(PRK_key, "WebPush: info\0" ‖ ua ‖ as, 32).
    let mut info = b"WebPush: info\0".to_vec();
    info.extend_from_slice(p256dh);
    info.extend_from_slice(sender_public.as_bytes());
    let mut ikm = zeroize::Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(auth), shared.raw_secret_bytes().as_ref())
        .expand(&info, ikm.as_mut())
        .map_err(|_| "HKDF".to_owned())?;
    // RFC 8188 §2.2, §2.3: the content key and nonce from a random salt.
    let salt = rand::random::<[u8; 16]>();
    let prk = Hkdf::<Sha256>::new(Some(&salt), ikm.as_ref());
    let mut key = zeroize::Zeroizing::new([0u8; 16]);
    let mut nonce = [0u8; 12];
    prk.expand(b"Content-Encoding: aes128gcm\0", key.as_mut())
        .and_then(|()| prk.expand(b"Content-Encoding: nonce\0", &mut nonce))
        .map_err(|_| "HKDF".to_owned())?;
    // One record, the last: the payload and the delimiter 2 (RFC 8188 §2), no padding.
    let mut plaintext = payload.to_vec();
    plaintext.push(2);
    let cipher =
        aes_gcm::Aes128Gcm::new_from_slice(key.as_ref()).map_err(|_| "AES key".to_owned())?;
    let sealed = cipher
        .encrypt(&aes_gcm::Nonce::from(nonce), plaintext.as_slice())
        .map_err(|_| "AES-GCM".to_owned())?;
    // Header: salt ‖ rs ‖ idlen ‖ keyid (the sender's public key).
    let mut body = salt.to_vec();
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(65);
    body.extend_from_slice(sender_public.as_bytes());
    body.extend_from_slice(&sealed);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::PushQueries as _;

    fn body(endpoint: &str, p256dh: &str, auth: &str) -> Vec<u8> {
        json!({ "endpoint": endpoint, "expirationTime": null, "keys": { "p256dh": p256dh, "auth": auth } })
            .to_string()
            .into_bytes()
    }

    fn point() -> String {
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        crypto::b64(secret.public_key().to_encoded_point(false).as_bytes())
    }

    #[test]
    fn subscriptions_are_checked_strictly() {
        let (p, a) = (point(), crypto::b64(&[7u8; 16]));
        assert!(parse_subscription(&body("https://push.example/abc", &p, &a), false).is_ok());
        let refused = |e: &str, p: &str, a: &str, loopback| {
            parse_subscription(&body(e, p, a), loopback).err()
        };
        let endpoint = Some(Rejection::Invalid("endpoint"));
        assert_eq!(refused("http://push.example/abc", &p, &a, true), endpoint);
        // Found by the fuzz target: the scheme only as browsers write it.
        assert_eq!(refused("hTtps://push.example/abc", &p, &a, false), endpoint);
        assert_eq!(
            refused("http://127.0.0.1:abc9/push", &p, &a, true),
            endpoint
        );
        assert_eq!(
            refused("https://push.example:0443/abc", &p, &a, false),
            endpoint
        );
        assert!(refused("https://push.example:8443/abc", &p, &a, false).is_none());
        assert_eq!(refused("http://127.0.0.1:9/abc", &p, &a, false), endpoint);
        assert!(refused("http://127.0.0.1:9/abc", &p, &a, true).is_none());
        assert!(refused("http://[::1]:9/abc", &p, &a, true).is_none());
        assert_eq!(
            refused("https://user@push.example/", &p, &a, false),
            endpoint
        );
        assert_eq!(refused("ftp://push.example/", &p, &a, false), endpoint);
        assert_eq!(refused("/relative", &p, &a, false), endpoint);
        let compressed = crypto::b64(&[2u8; 33]);
        assert_eq!(
            refused("https://push.example/", &compressed, &a, false),
            Some(Rejection::Invalid("p256dh"))
        );
        let off_curve = crypto::b64(&[4u8; 65]);
        assert_eq!(
            refused("https://push.example/", &off_curve, &a, false),
            Some(Rejection::Invalid("p256dh"))
        );
        let short = crypto::b64(&[1u8; 15]);
        assert_eq!(
            refused("https://push.example/", &p, &short, false),
            Some(Rejection::Invalid("auth"))
        );
    }

    /// A listener on 127.0.0.1 that counts the connections it accepts (and closes each at once).
    fn counting_listener() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                // Counted before the close, which is what ends the sender's wait.
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(stream);
            }
        });
        (port, accepted)
    }

    /// Issue 22: a subscription to an internal host is refused when it is made, with the
    /// reason, and nothing is stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn subscriptions_to_internal_hosts_are_refused() {
        use crate::test_support::{authorities, enrol, App};
        use domain::push::{EndpointRefusal, SpecialRange};
        let dir = tempfile::tempdir().unwrap();
        for t in authorities(dir.path()).await {
            let name = t.name;
            let (user, code) = enrol(&t, "petar@example.rs").await;
            let app = App::activate(&t, &code).await.unwrap();
            let (p, a) = (point(), crypto::b64(&[7u8; 16]));
            for endpoint in [
                "https://127.0.0.1:19999/internal/admin",
                "https://localhost:19998/",
                "https://[::1]:19997/",
                "https://[::ffff:127.0.0.1]/",
                "https://169.254.169.254/latest/meta-data",
                "https://10.0.0.1/",
                "https://100.64.0.1/",
                "https://[fd00::1]/",
                "https://0.0.0.0/",
            ] {
                let body = body(endpoint, &p, &a);
                let path = "/api/app/v1/push/subscription";
                let device = app.authenticated(&t, path, &body).await.unwrap();
                let refused = t.login.register_push(&device, &body).await;
                assert!(
                    matches!(
                        refused,
                        Err(Error::Rejected(Rejection::PushEndpoint(
                            EndpointRefusal::NotPublic(_)
                        )))
                    ),
                    "{name} {endpoint}: {refused:?}"
                );
            }
            let body = body("https://localhost:19998/", &p, &a);
            let device = app
                .authenticated(&t, "/api/app/v1/push/subscription", &body)
                .await
                .unwrap();
            let refused = t.login.register_push(&device, &body).await;
            assert_eq!(
                refused.err().map(|e| e.to_string()),
                Some(EndpointRefusal::NotPublic(SpecialRange::Loopback).to_string()),
                "{name}"
            );
            assert!(
                t.store
                    .push_subscriptions_of(&user.id)
                    .await
                    .unwrap()
                    .is_empty(),
                "{name}: a refused subscription was stored"
            );
        }
    }

    /// Issue 22: a stored subscription whose host resolves to this machine at send time (DNS
    /// changed since it was checked; `localhost` here) gets no connection; with the tests'
    /// allowance the same push does connect, so the listener would have seen one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_push_to_a_host_that_resolves_inward_connects_nowhere() {
        use crate::test_support::{authorities, enrol, App};
        let dir = tempfile::tempdir().unwrap();
        let (port, accepted) = counting_listener();
        let accepted = || accepted.load(std::sync::atomic::Ordering::SeqCst);
        for t in authorities(dir.path()).await {
            let name = t.name;
            let email = "petar@example.rs";
            let (user, code) = enrol(&t, email).await;
            let app = App::activate(&t, &code).await.unwrap();
            let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
            let mut tx = t.store.begin().await.unwrap();
            tx.replace_push_subscription(&PushSubscriptionRecord {
                device_id: app.device_id.as_str().into(),
                endpoint: format!("https://localhost:{port}/push"),
                p256dh: secret
                    .public_key()
                    .to_encoded_point(false)
                    .as_bytes()
                    .to_vec(),
                auth: vec![7u8; 16],
                created_at: t.now(),
            })
            .await
            .unwrap();
            tx.commit().await.unwrap();
            // A login for the user: its own background push, with the settings' (default)
            // refusal, and the same push run to its end here.
            let (_, browser) = t.login.new_session();
            let started = t
                .login
                .login_start(&browser, email, "127.0.0.1", "test browser")
                .await
                .unwrap();
            let job = |allow_private| PushJob {
                store: t.store.clone(),
                key: t.login.vapid_key().unwrap(),
                subject: "mailto:ops@example.rs".into(),
                allow_private,
                now: t.now(),
                user_id: user.id.clone(),
                txn_id: started.txn_id.clone(),
                kind: "login".into(),
            };
            let before = accepted();
            job(false).run().await;
            assert_eq!(
                accepted(),
                before,
                "{name}: connected to a loopback address"
            );
            // The control: allowed, the push reaches the listener (and fails its TLS).
            job(true).run().await;
            assert!(
                accepted() > before,
                "{name}: the listener was not reachable"
            );
            // The stored subscription stays: the push was refused, not gone.
            assert_eq!(
                t.store.push_subscriptions_of(&user.id).await.unwrap().len(),
                1,
                "{name}"
            );
        }
    }

    #[test]
    fn the_message_has_the_rfc_8188_header() {
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let public = secret.public_key().to_encoded_point(false);
        let body = encrypt(public.as_bytes(), &[1u8; 16], b"{}").unwrap_or_default();
        assert_eq!(body.get(16..20), Some(&RECORD_SIZE.to_be_bytes()[..]));
        assert_eq!(body.get(20), Some(&65));
        // 2 bytes of payload, the delimiter, the 16-byte tag.
        assert_eq!(body.len(), 16 + 4 + 1 + 65 + 2 + 1 + 16);
    }
}
