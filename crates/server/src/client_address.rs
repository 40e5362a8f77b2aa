//! Who is asking: the client's address, as every rate limit keys it. It is the TCP peer unless
//! that peer is a trusted proxy (`EIDPORTAL_TRUSTED_PROXIES`); then the right-most address in
//! `Forwarded` (RFC 7239) or, without it, `X-Forwarded-For` that is not itself a trusted proxy.
//! IPv6 clients are limited per /64, the smallest network one subscriber normally gets.
//! The header parsing itself is pure and lives in [`domain::forwarded`] (fuzzed there).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;

/// Networks whose forwarding headers are believed (parsed in [`domain::forwarded`]).
pub use domain::forwarded::TrustedProxies;

/// The client's address; `None` when there is no connection (router tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub Option<IpAddr>);

impl ClientAddress {
    /// The client behind `peer`, believing the forwarding headers only from trusted proxies.
    pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> Self {
        let values = |name: &str| -> Vec<&str> {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect()
        };
        Self(Some(domain::forwarded::resolve_client(
            peer,
            &values("forwarded"),
            &values("x-forwarded-for"),
            trusted,
        )))
    }

    /// What rate limits count by: the IPv4 address, or the IPv6 /64 (`2001:db8:1:2::/64`).
    pub fn rate_key(&self) -> String {
        match self.0 {
            None => "unknown".into(),
            Some(IpAddr::V4(v4)) => v4.to_string(),
            Some(IpAddr::V6(v6)) => {
                let network = u128::from(v6) & (u128::MAX << 64);
                format!("{}/64", Ipv6Addr::from(network))
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            return Ok(Self(None));
        };
        let trusted = parts
            .extensions
            .get::<Arc<TrustedProxies>>()
            .cloned()
            .unwrap_or_default();
        Ok(Self::resolve(peer.ip(), &parts.headers, &trusted))
    }
}

/// The client's rate-limit key ([`ClientAddress::rate_key`]): the IPv4
/// address or the IPv6 /64, behind trusted proxies the forwarded client; `unknown` in
/// socket-less tests.
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let address = ClientAddress::from_request_parts(parts, state).await?;
        Ok(Self(address.rate_key()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn spoofed_headers_from_an_untrusted_peer_are_ignored() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let spoofed = headers(&[
            ("x-forwarded-for", "198.51.100.7"),
            ("forwarded", "for=198.51.100.8"),
        ]);
        let client = ClientAddress::resolve(ip("203.0.113.5"), &spoofed, &trusted);
        assert_eq!(client.rate_key(), "203.0.113.5");
        // No proxy trusted at all: the same.
        let client = ClientAddress::resolve(ip("10.1.2.3"), &spoofed, &TrustedProxies::default());
        assert_eq!(client.rate_key(), "10.1.2.3");
    }

    #[test]
    fn a_trusted_proxy_names_the_client_right_most_untrusted_first() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 2001:db8:ffff::/48").unwrap();
        // The client prepended a lie; the proxy appended the real peer.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.7, 10.0.0.9")]);
        assert_eq!(
            ClientAddress::resolve(ip("10.0.0.1"), &h, &trusted).rate_key(),
            "198.51.100.7"
        );
        // Forwarded wins over X-Forwarded-For, with quoting and ports.
        let h = headers(&[
            ("x-forwarded-for", "192.0.2.99"),
            (
                "forwarded",
                "for=1.1.1.1;proto=https, for=\"[2001:db8:cafe::17]:4711\";by=10.0.0.1",
            ),
        ]);
        assert_eq!(
            ClientAddress::resolve(ip("10.0.0.1"), &h, &trusted).rate_key(),
            "2001:db8:cafe::/64"
        );
        let h = headers(&[("forwarded", "for=192.0.2.60:8080")]);
        assert_eq!(
            ClientAddress::resolve(ip("::ffff:10.0.0.1"), &h, &trusted).rate_key(),
            "192.0.2.60"
        );
        // An unreadable hop: the last address we can vouch for.
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(
            ClientAddress::resolve(ip("10.0.0.1"), &h, &trusted).rate_key(),
            "10.0.0.1"
        );
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64() {
        let none = TrustedProxies::default();
        let a = ClientAddress::resolve(ip("2001:db8:1:2::1"), &HeaderMap::new(), &none);
        let b = ClientAddress::resolve(
            ip("2001:db8:1:2:ffff:ffff:ffff:fffe"),
            &HeaderMap::new(),
            &none,
        );
        let c = ClientAddress::resolve(ip("2001:db8:1:3::1"), &HeaderMap::new(), &none);
        assert_eq!(a.rate_key(), b.rate_key());
        assert_ne!(a.rate_key(), c.rate_key());
        assert_eq!(a.rate_key(), "2001:db8:1:2::/64");
    }
}
