//! Talking HTTP to the eidportal server: its address, and one blocking call that turns every
//! answer into either the body text or a typed [`Error`].
//!
//! Transport: `ureq` 2, with https through rustls (aws-lc-rs provider, TLS 1.3 and 1.2). The
//! server is verified with the Mozilla roots compiled in (`webpki-roots`), or with only the CA
//! that was given at activation (`--ca-file`, kept as [`CA_FILE`] in the app's home). Plain
//! `http://` is refused unless the host is this computer (127.0.0.0/8, ::1, `localhost`): the
//! activation code, the pinned server keys and the PIN proofs must not cross a network in clear.

use std::fmt;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proto::app::ErrorBody;

use crate::error::Error;

/// Longest error text kept from a server answer that is not an `ErrorBody`.
const MAX_RAW_ERROR: usize = 200;

/// The server's base address, e.g. `http://127.0.0.1:8080` (no trailing slash). It may carry
/// a path prefix, which is then part of every signed request path.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerUrl {
    base: String,
    prefix_start: usize,
}

impl ServerUrl {
    /// Checks and normalises an address: `https://host[:port][/prefix]` (or `http://` to this
    /// computer), no query, fragment or user name.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let refuse = |reason| Error::InvalidServerUrl {
            url: text.to_owned(),
            reason,
        };
        let base = text.trim().trim_end_matches('/');
        let (scheme, rest) = if let Some(rest) = base.strip_prefix("https://") {
            ("https://", rest)
        } else if let Some(rest) = base.strip_prefix("http://") {
            ("http://", rest)
        } else {
            return Err(refuse("it must start with https://"));
        };
        if rest.bytes().any(|b| {
            b.is_ascii_whitespace()
                || b.is_ascii_control()
                || matches!(b, b'?' | b'#' | b'@' | b'\\')
        }) {
            return Err(refuse("it must not contain spaces, '?', '#', '@' or '\\'"));
        }
        let host_len = rest.find('/').unwrap_or(rest.len());
        if host_len == 0 {
            return Err(refuse("the host is missing"));
        }
        if scheme == "http://" && !is_loopback(rest.get(..host_len).unwrap_or_default()) {
            return Err(refuse(
                "plain http:// is allowed only to this computer (127.0.0.1, ::1, localhost); use https://",
            ));
        }
        let prefix_start = scheme.len() + host_len;
        if base
            .get(prefix_start..)
            .is_some_and(|prefix| prefix.split('/').any(|s| s == "." || s == ".."))
        {
            return Err(refuse("the path must not contain '.' or '..' segments"));
        }
        Ok(Self {
            base: base.to_owned(),
            prefix_start,
        })
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.base
    }

    /// The full URL of an API path (`/api/app/v1/...`, with its query).
    pub(crate) fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    /// The path and query the server sees, as signed in a device request.
    pub(crate) fn signed_path(&self, path_and_query: &str) -> String {
        format!(
            "{}{path_and_query}",
            self.base.get(self.prefix_start..).unwrap_or_default()
        )
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

impl fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerUrl({})", self.base)
    }
}

/// Whether `host` (with its port, as in a URL) names this computer.
fn is_loopback(host_port: &str) -> bool {
    let host = match host_port.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host_port
            .rsplit_once(':')
            .map_or(host_port, |(host, _)| host),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// The CA certificate (PEM) given at activation, kept in the app's home.
pub const CA_FILE: &str = "server-ca.pem";

/// Whom the app believes about the server's identity.
fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, Error> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let unusable = |detail: String| Error::CaFile {
                path: path.to_owned(),
                detail,
            };
            let pem = std::fs::read(path).map_err(|e| unusable(e.to_string()))?;
            for certificate in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                let certificate = certificate.map_err(|e| unusable(e.to_string()))?;
                roots
                    .add(certificate)
                    .map_err(|e| unusable(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(unusable("no certificate in the file".into()));
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
    .map_err(|e| Error::CaFile {
        path: PathBuf::new(),
        detail: e.to_string(),
    })?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// ureq's https through rustls.
struct Tls(Arc<rustls::ClientConfig>);

impl ureq::TlsConnector for Tls {
    fn connect(
        &self,
        dns_name: &str,
        io: Box<dyn ureq::ReadWrite>,
    ) -> Result<Box<dyn ureq::ReadWrite>, ureq::Error> {
        let host = dns_name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let name = rustls::pki_types::ServerName::try_from(host)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let connection =
            rustls::ClientConnection::new(self.0.clone(), name).map_err(std::io::Error::other)?;
        let mut stream = rustls::StreamOwned::new(connection, io);
        // The handshake now, so that a certificate that does not verify fails the connection.
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(Box::new(TlsStream(stream)))
    }
}

#[derive(Debug)]
struct TlsStream(rustls::StreamOwned<rustls::ClientConnection, Box<dyn ureq::ReadWrite>>);

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl ureq::ReadWrite for TlsStream {
    fn socket(&self) -> Option<&TcpStream> {
        self.0.sock.socket()
    }
}

/// A blocking HTTP client with the app's settings.
#[derive(Clone)]
pub(crate) struct Http {
    /// The agent, or why it cannot be made (an unreadable CA file), reported at the first call.
    agent: Result<ureq::Agent, (PathBuf, String)>,
}

impl fmt::Debug for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http").finish_non_exhaustive()
    }
}

impl Http {
    /// A client that never follows redirects (a signed request is valid for one path only). It
    /// trusts the CA in `home`'s [`CA_FILE`] if there is one, else the public roots.
    pub(crate) fn new(connect_timeout: Duration, home: &Path) -> Self {
        let ca = home.join(CA_FILE);
        let tls = tls_config(ca.exists().then_some(ca.as_path()));
        let agent = tls
            .map(|tls| {
                ureq::AgentBuilder::new()
                    .timeout_connect(connect_timeout)
                    .redirects(0)
                    .user_agent(concat!("consentid/", env!("CARGO_PKG_VERSION")))
                    .tls_connector(Arc::new(Tls(tls)))
                    .build()
            })
            .map_err(|e| match e {
                Error::CaFile { path, detail } => (path, detail),
                other => (ca.clone(), other.to_string()),
            });
        Self { agent }
    }

    /// Keeps `ca_file` as the only CA for the server of the app in `home` (`None`: removes an
    /// earlier one, so the public roots apply).
    pub(crate) fn install_ca(home: &Path, ca_file: Option<&Path>) -> Result<(), Error> {
        let target = home.join(CA_FILE);
        match ca_file {
            Some(source) => {
                // Checked before it is kept.
                tls_config(Some(source))?;
                std::fs::copy(source, &target)
                    .map(|_| ())
                    .map_err(|e| Error::CaFile {
                        path: source.to_owned(),
                        detail: e.to_string(),
                    })
            }
            None => match std::fs::remove_file(&target) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::CaFile {
                    path: target,
                    detail: e.to_string(),
                }),
            },
        }
    }

    /// One call. `Ok` carries the body of a 2xx answer; a 4xx/5xx answer becomes
    /// [`Error::Server`] with the `ErrorBody` code (or `http_<status>` when there is none).
    pub(crate) fn call(
        &self,
        method: &str,
        url: &str,
        authorization: Option<&str>,
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<String, Error> {
        let agent = match &self.agent {
            Ok(agent) => agent,
            Err((path, detail)) => {
                return Err(Error::CaFile {
                    path: path.clone(),
                    detail: detail.clone(),
                })
            }
        };
        let mut request = agent
            .request(method, url)
            .timeout(timeout)
            .set("Accept", "application/json");
        if let Some(authorization) = authorization {
            request = request.set("Authorization", authorization);
        }
        let answer = match body {
            Some(body) => request
                .set("Content-Type", "application/json")
                .send_bytes(body),
            None => request.call(),
        };
        match answer {
            Ok(response) => response.into_string().map_err(|e| Error::BadAnswer {
                what: "body",
                detail: format!("reading {url}: {e}"),
            }),
            Err(ureq::Error::Status(status, response)) => {
                let text = response.into_string().unwrap_or_default();
                Err(match serde_json::from_str::<ErrorBody>(&text) {
                    Ok(body) => Error::Server {
                        status,
                        code: body.error,
                        message: body.message,
                    },
                    Err(_) => Error::Server {
                        status,
                        code: format!("http_{status}"),
                        message: text.chars().take(MAX_RAW_ERROR).collect(),
                    },
                })
            }
            Err(ureq::Error::Transport(transport)) => Err(Error::Unreachable {
                url: url.to_owned(),
                source: Box::new(transport),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_are_normalised() {
        let url = ServerUrl::parse(" http://127.0.0.1:8080/ ").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:8080");
        assert_eq!(
            url.url("/api/app/v1/status"),
            "http://127.0.0.1:8080/api/app/v1/status"
        );
        assert_eq!(
            url.signed_path("/api/app/v1/inbox?wait=5"),
            "/api/app/v1/inbox?wait=5"
        );
        let prefixed = ServerUrl::parse("https://eid.example/portal/").unwrap();
        assert_eq!(
            prefixed.signed_path("/api/app/v1/status"),
            "/portal/api/app/v1/status"
        );
        assert_eq!(prefixed.url("/x"), "https://eid.example/portal/x");
    }

    #[test]
    fn unusable_addresses_are_refused_with_a_reason() {
        for bad in [
            "127.0.0.1:8080",
            "ftp://x",
            "http://",
            "http:///x",
            "http://a b",
            "http://x?y=1",
            "http://u@x",
            "http://x/../y",
        ] {
            assert!(
                matches!(ServerUrl::parse(bad), Err(Error::InvalidServerUrl { .. })),
                "{bad}"
            );
        }
        assert!(ServerUrl::parse("https://eid.example").is_ok());
    }

    #[test]
    fn plain_http_only_to_this_computer() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.8.9.10",
            "http://[::1]:80/x",
            "http://localhost:1",
            "http://LOCALHOST",
        ] {
            assert!(ServerUrl::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://192.0.2.1:8080",
            "http://eid.example",
            "http://[2001:db8::1]:80",
            "http://localhost.evil.example",
            "http://128.0.0.1",
        ] {
            match ServerUrl::parse(bad) {
                Err(Error::InvalidServerUrl { reason, .. }) => {
                    assert!(reason.contains("https://"), "{bad}: {reason}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
