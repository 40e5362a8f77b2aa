//! The server's connection loop: plain HTTP or HTTPS (rustls, TLS 1.3 and TLS 1.2 AEAD suites,
//! the certificate reloaded without dropping connections), a header-read timeout that also
//! ends idle keep-alive connections, a TLS handshake timeout, a cap on open connections and one
//! per client address, a deadline and a minimum rate for reading a request
//! ([`crate::connection_limits`]), and a graceful stop that lets requests in flight finish
//! within a bound.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::connection_limits::{
    connection_key, paced, PerAddress, RequestClock, RequestPace, Timed, TransportCounters,
};

/// How long a TLS handshake may take before the connection is closed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the certificate and key files are checked for changes.
const RELOAD_POLL: Duration = Duration::from_secs(5);
/// Connections the kernel queues for `accept` (capped by `net.core.somaxconn`). The standard
/// library's 128 overflowed under a burst of connects, each overflow costing a client, a
/// legitimate one too, a one-second SYN retry.
const LISTEN_BACKLOG: u32 = 4096;

/// How connections are served.
#[derive(Debug, Clone)]
pub struct Limits {
    /// From the connection (or the end of the previous response) to the end of a request's
    /// headers; an idle keep-alive connection is closed after the same time.
    pub header_read_timeout: Duration,
    /// Connections open at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Connections one address (an IPv6 /64) may hold open at once; a further one is closed
    /// as soon as it is accepted. Trusted proxies are not capped.
    pub max_connections_per_address: usize,
    /// How fast a request, body included, must arrive.
    pub request_pace: RequestPace,
    /// Where connections and requests cut short are counted (`/metrics`).
    pub counters: Arc<TransportCounters>,
    /// How long requests in flight may run on after a stop was asked for.
    pub shutdown_grace: Duration,
    /// Peers whose `Forwarded` and `X-Forwarded-For` are believed.
    pub trusted_proxies: Arc<crate::client_address::TrustedProxies>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 4096,
            max_connections_per_address: 256,
            request_pace: RequestPace::default(),
            counters: Arc::default(),
            shutdown_grace: Duration::from_secs(10),
            trusted_proxies: Arc::default(),
        }
    }
}

/// The PEM files of the server's certificate chain and private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, end-entity certificate first.
    pub cert: PathBuf,
    /// PKCS#8, PKCS#1 or SEC1 private key.
    pub key: PathBuf,
}

/// Reads a certificate chain and its key, and checks that they belong together.
pub fn load_certified_key(files: &TlsFiles) -> Result<CertifiedKey, String> {
    let cert_pem = std::fs::read(&files.cert)
        .map_err(|e| format!("EIDPORTAL_TLS_CERT {}: {e}", files.cert.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("EIDPORTAL_TLS_CERT {}: {e}", files.cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "EIDPORTAL_TLS_CERT {}: no certificate in the file",
            files.cert.display()
        ));
    }
    let key_pem = std::fs::read(&files.key)
        .map_err(|e| format!("EIDPORTAL_TLS_KEY {}: {e}", files.key.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!(
            "EIDPORTAL_TLS_KEY {}: no usable private key ({e})",
            files.key.display()
        )
    })?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
        format!(
            "EIDPORTAL_TLS_KEY {}: does not fit the certificate ({e})",
            files.key.display()
        )
    })
}

/// The aws-lc-rs provider (AWS-LC also signs with the software keys; the consentid client uses
/// the same provider) with its AEAD suites only (rustls offers no CBC suite; the filter keeps
/// it so should a later version add one).
fn provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites.retain(|suite| match suite {
        rustls::SupportedCipherSuite::Tls13(_) => true,
        rustls::SupportedCipherSuite::Tls12(suite) => {
            let name = format!("{:?}", suite.common.suite);
            name.contains("_GCM_") || name.contains("CHACHA20_POLY1305")
        }
    });
    provider
}

/// When the certificate and key files were last changed.
type Stamp = Option<(SystemTime, SystemTime)>;

/// The certificate in use; [`CertReloader::reload`] swaps it, and new handshakes get the new one
/// while established connections go on.
#[derive(Debug)]
pub struct CertReloader {
    files: TlsFiles,
    current: RwLock<(Arc<CertifiedKey>, Stamp)>,
}

impl CertReloader {
    /// Loads the files; an error stops the start.
    pub fn new(files: TlsFiles) -> Result<Self, String> {
        let stamp = modified(&files);
        let key = load_certified_key(&files)?;
        Ok(Self {
            files,
            current: RwLock::new((Arc::new(key), stamp)),
        })
    }

    /// Loads the files again if `force` or their modification times changed. A file that does
    /// not load keeps the old certificate and is reported.
    pub fn reload(&self, force: bool) {
        let stamp = modified(&self.files);
        let unchanged = self
            .current
            .read()
            .map(|current| current.1 == stamp)
            .unwrap_or(false);
        if unchanged && !force {
            return;
        }
        match load_certified_key(&self.files) {
            Ok(key) => {
                if let Ok(mut current) = self.current.write() {
                    *current = (Arc::new(key), stamp);
                }
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate loaded");
            }
            Err(error) => {
                // Remember the stamp so that a broken file is reported once, not every poll.
                if let Ok(mut current) = self.current.write() {
                    current.1 = stamp;
                }
                tracing::error!(%error, "TLS certificate not reloaded; the previous one stays in use");
            }
        }
    }
}

fn modified(files: &TlsFiles) -> Stamp {
    let time = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Some((time(&files.cert)?, time(&files.key)?))
}

impl ResolvesServerCert for CertReloader {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|current| current.0.clone())
    }
}

/// The rustls configuration over a reloading certificate: TLS 1.3 and 1.2, HTTP/1.1.
pub fn server_config(certificates: Arc<CertReloader>) -> Result<rustls::ServerConfig, String> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(certificates);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Reloads the certificate on SIGHUP and when its files change.
pub fn spawn_reloader(certificates: Arc<CertReloader>) {
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut poll = tokio::time::interval(RELOAD_POLL);
        loop {
            #[cfg(unix)]
            let force = match hangup.as_mut() {
                Some(signal) => tokio::select! {
                    _ = signal.recv() => true,
                    _ = poll.tick() => false,
                },
                None => {
                    poll.tick().await;
                    false
                }
            };
            #[cfg(not(unix))]
            let force = {
                poll.tick().await;
                false
            };
            certificates.reload(force);
        }
    });
}

/// `Strict-Transport-Security` on every answer (only when serving HTTPS).
pub fn with_hsts(router: Router) -> Router {
    router.layer(axum::middleware::map_response(
        |mut response: axum::response::Response| async move {
            response.headers_mut().insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000"),
            );
            response
        },
    ))
}

/// Tells long-running handlers (the app's long poll) that the server is stopping.
#[derive(Debug, Clone)]
pub struct Stopping(watch::Receiver<bool>);

impl Stopping {
    /// A signal and the handle that raises it.
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (sender, receiver) = watch::channel(false);
        (sender, Self(receiver))
    }

    /// Resolves when the server begins to stop.
    pub async fn wait(&self) {
        let mut receiver = self.0.clone();
        // An error means the sender is gone: the server is stopping too.
        let _ = receiver.wait_for(|stopping| *stopping).await;
    }
}

/// Listens on `address` (`host:port`; the first of its addresses that binds), with a listen
/// backlog of 4,096 (`LISTEN_BACKLOG`).
pub async fn bind(address: &str) -> std::io::Result<TcpListener> {
    let mut last_error = None;
    for address in tokio::net::lookup_host(address).await? {
        let socket = match address {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        };
        // As the standard library's bind: a restarted server may take its port back while old
        // connections linger in TIME_WAIT.
        let bound = socket.and_then(|socket| {
            socket.set_reuseaddr(true)?;
            socket.bind(address)?;
            socket.listen(LISTEN_BACKLOG)
        });
        match bound {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")
    }))
}

/// Serves `router` on `listener` until `stop` resolves, then lets requests in flight finish
/// within `limits.shutdown_grace`. With `tls`, every connection is HTTPS.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    stop: impl Future<Output = ()>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address = PerAddress::new(limits.max_connections_per_address);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors and the like: wait a little rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        // An address over its share is closed at once, before any task or TLS work, so that it
        // gives its global place back instead of holding it (issue 22, finding 1). A trusted
        // proxy's connections carry many clients and are not capped.
        let address_permit = if limits.trusted_proxies.contains(peer.ip()) {
            None
        } else {
            match per_address.admit(connection_key(peer.ip())) {
                Some(address_permit) => Some(address_permit),
                None => {
                    limits.counters.refused_per_address();
                    tracing::debug!(%peer, "connection closed: its address holds its share");
                    drop(stream);
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let served = Served {
            peer,
            trusted: limits.trusted_proxies.clone(),
            router: router.clone(),
            header_read_timeout: limits.header_read_timeout,
            clock: RequestClock::new(limits.request_pace, limits.counters.clone()),
            watcher: graceful.watcher(),
        };
        match acceptor.clone() {
            None => {
                tokio::spawn(async move {
                    let _permits = (permit, address_permit);
                    connection(stream, served).await;
                });
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    let _permits = (permit, address_permit);
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => connection(stream, served).await,
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!("requests still in flight after the grace period; stopping anyway");
        }
    }
}

/// A request that may wait (a long poll: `?wait=` in its query) gets a head of its own.
///
/// Hyper parses a request's head out of the connection's read buffer (8 KiB), and the head's
/// URI and header values stay slices of that buffer. While the request is in flight, hyper reads
/// on to notice a client that goes away; finding its buffer still shared, it takes a second
/// 8 KiB one. A long poll keeps its head for up to 25 s, so each waiting poll held both buffers
/// (issue 24: 10,000 waiting apps cost 250 MB). Copied here, before hyper's next read, the head
/// shares nothing, and the reader reuses its buffer. Other requests, OCSP's hot path among
/// them, are done too soon for the copy to pay.
fn detach_if_waiting<B>(request: Request<B>) -> Request<B> {
    let waits = request
        .uri()
        .query()
        .is_some_and(|query| query.split('&').any(|pair| pair.starts_with("wait=")));
    if !waits {
        return request;
    }
    let (mut parts, body) = request.into_parts();
    // An origin-form URI's text (path and query) parses back to the same URI.
    if let Ok(uri) = axum::http::Uri::try_from(parts.uri.to_string()) {
        parts.uri = uri;
    }
    let mut headers = axum::http::HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        let mut copy =
            HeaderValue::from_maybe_shared(axum::body::Bytes::copy_from_slice(value.as_bytes()))
                .unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        headers.append(name.clone(), copy);
    }
    parts.headers = headers;
    Request::from_parts(parts, body)
}

/// What serving one connection needs.
struct Served {
    peer: SocketAddr,
    trusted: Arc<crate::client_address::TrustedProxies>,
    router: Router,
    header_read_timeout: Duration,
    clock: Arc<RequestClock>,
    watcher: hyper_util::server::graceful::Watcher,
}

async fn connection<I>(io: I, served: Served)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Served {
        peer,
        trusted,
        router,
        header_read_timeout,
        clock,
        watcher,
    } = served;
    // The reader notes each request's first byte; the body keeps the pace counted from it.
    let io = Timed::new(io, clock.clone());
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let mut request = detach_if_waiting(request);
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(trusted.clone());
        let request = paced(request, &clock);
        tower_service::Service::call(&mut router.clone(), request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    if let Err(error) = watcher.watch(connection).await {
        tracing::debug!(%peer, %error, "connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `bytes` lie inside `buffer`.
    fn inside(bytes: &[u8], buffer: &[u8]) -> bool {
        let range = buffer.as_ptr_range();
        range.contains(&bytes.as_ptr())
    }

    /// A request whose URI and header values are slices of one buffer, as hyper parses them.
    fn parsed(path_and_query: &str) -> (axum::body::Bytes, Request<()>) {
        let buffer = axum::body::Bytes::from(format!(
            "{path_and_query}|Signature keyId=\"d\"|application/json|a, b"
        ));
        let field = |n: usize| {
            let mut start = 0;
            for _ in 0..n {
                start += buffer[start..].iter().position(|b| *b == b'|').unwrap() + 1;
            }
            let end = buffer[start..]
                .iter()
                .position(|b| *b == b'|')
                .map_or(buffer.len(), |e| start + e);
            buffer.slice(start..end)
        };
        let mut request = Request::new(());
        *request.uri_mut() = axum::http::Uri::from_maybe_shared(field(0)).unwrap();
        let mut authorization = HeaderValue::from_maybe_shared(field(1)).unwrap();
        authorization.set_sensitive(true);
        let headers = request.headers_mut();
        headers.insert(header::AUTHORIZATION, authorization);
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_maybe_shared(field(2)).unwrap(),
        );
        headers.append(
            header::VARY,
            HeaderValue::from_maybe_shared(field(3)).unwrap(),
        );
        headers.append(header::VARY, HeaderValue::from_static("origin"));
        (buffer, request)
    }

    #[test]
    fn a_waiting_request_keeps_no_byte_of_the_connections_buffer_and_nothing_else_changes() {
        let (buffer, request) = parsed("/api/app/v1/inbox?x=1&wait=25");
        let expected = (request.uri().clone(), request.headers().clone());
        assert!(
            inside(request.uri().path().as_bytes(), &buffer),
            "the test's own premise"
        );
        let detached = detach_if_waiting(request);
        assert_eq!(detached.uri(), &expected.0);
        assert_eq!(detached.headers(), &expected.1);
        assert!(!inside(detached.uri().path().as_bytes(), &buffer));
        assert!(!inside(detached.uri().query().unwrap().as_bytes(), &buffer));
        for value in detached.headers().values() {
            assert!(!inside(value.as_bytes(), &buffer), "{value:?}");
        }
        let authorization = detached.headers().get(header::AUTHORIZATION).unwrap();
        assert!(authorization.is_sensitive(), "still kept out of logs");
    }

    #[test]
    fn other_requests_are_left_as_they_are() {
        for path in [
            "/ocsp/MEow",
            "/api/app/v1/inbox",
            "/login/qr/ab/status?await=1",
        ] {
            let (buffer, request) = parsed(path);
            let kept = detach_if_waiting(request);
            assert!(inside(kept.uri().path().as_bytes(), &buffer), "{path}");
            let accept = kept.headers().get(header::ACCEPT).unwrap();
            assert!(inside(accept.as_bytes(), &buffer), "{path}");
        }
    }
}
