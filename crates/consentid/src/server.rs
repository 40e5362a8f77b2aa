//! Talking HTTP to the eidportal server: its address, and one blocking call that turns every
//! answer into either the body text or a typed [`Error`].
//!
//! Transport: `ureq` 2 without TLS. A `tls` feature of this crate forwarding to `ureq/tls`
//! (rustls, with the provider's CA pinned) is the way to add https; until then an https
//! address is refused with a clear error instead of failing at connect time.

use std::fmt;
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
    /// Checks and normalises an address: `http://host[:port][/prefix]`, no query, fragment or
    /// user name.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let refuse = |reason| Error::InvalidServerUrl { url: text.to_owned(), reason };
        let base = text.trim().trim_end_matches('/');
        let rest = if let Some(rest) = base.strip_prefix("http://") {
            rest
        } else if base.starts_with("https://") {
            return Err(refuse("https needs a TLS build of ConsentID, which this one is not; use http:// for now"));
        } else {
            return Err(refuse("it must start with http://"));
        };
        if rest
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || matches!(b, b'?' | b'#' | b'@' | b'\\'))
        {
            return Err(refuse("it must not contain spaces, '?', '#', '@' or '\\'"));
        }
        let host_len = rest.find('/').unwrap_or(rest.len());
        if host_len == 0 {
            return Err(refuse("the host is missing"));
        }
        let prefix_start = "http://".len() + host_len;
        if base.get(prefix_start..).is_some_and(|prefix| prefix.split('/').any(|s| s == "." || s == "..")) {
            return Err(refuse("the path must not contain '.' or '..' segments"));
        }
        Ok(Self { base: base.to_owned(), prefix_start })
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
        format!("{}{path_and_query}", self.base.get(self.prefix_start..).unwrap_or_default())
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

/// A blocking HTTP client with the app's settings.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    agent: ureq::Agent,
}

impl Http {
    /// A client that never follows redirects (a signed request is valid for one path only).
    pub(crate) fn new(connect_timeout: Duration) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(connect_timeout)
            .redirects(0)
            .user_agent(concat!("consentid/", env!("CARGO_PKG_VERSION")))
            .build();
        Self { agent }
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
        let mut request = self.agent.request(method, url).timeout(timeout).set("Accept", "application/json");
        if let Some(authorization) = authorization {
            request = request.set("Authorization", authorization);
        }
        let answer = match body {
            Some(body) => request.set("Content-Type", "application/json").send_bytes(body),
            None => request.call(),
        };
        match answer {
            Ok(response) => response
                .into_string()
                .map_err(|e| Error::BadAnswer { what: "body", detail: format!("reading {url}: {e}") }),
            Err(ureq::Error::Status(status, response)) => {
                let text = response.into_string().unwrap_or_default();
                Err(match serde_json::from_str::<ErrorBody>(&text) {
                    Ok(body) => Error::Server { status, code: body.error, message: body.message },
                    Err(_) => Error::Server {
                        status,
                        code: format!("http_{status}"),
                        message: text.chars().take(MAX_RAW_ERROR).collect(),
                    },
                })
            }
            Err(ureq::Error::Transport(transport)) => {
                Err(Error::Unreachable { url: url.to_owned(), source: Box::new(transport) })
            }
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
        assert_eq!(url.url("/api/app/v1/status"), "http://127.0.0.1:8080/api/app/v1/status");
        assert_eq!(url.signed_path("/api/app/v1/inbox?wait=5"), "/api/app/v1/inbox?wait=5");
        let prefixed = ServerUrl::parse("http://eid.example/portal/").unwrap();
        assert_eq!(prefixed.signed_path("/api/app/v1/status"), "/portal/api/app/v1/status");
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
            assert!(matches!(ServerUrl::parse(bad), Err(Error::InvalidServerUrl { .. })), "{bad}");
        }
        match ServerUrl::parse("https://eid.example") {
            Err(Error::InvalidServerUrl { reason, .. }) => assert!(reason.contains("TLS")),
            other => panic!("{other:?}"),
        }
    }
}
