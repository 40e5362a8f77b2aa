//! Who is asking: the client's address, as every rate limit keys it. It is the TCP peer unless
//! that peer is a trusted proxy (`EIDPORTAL_TRUSTED_PROXIES`); then the right-most address in
//! `Forwarded` (RFC 7239) or, without it, `X-Forwarded-For` that is not itself a trusted proxy.
//! IPv6 clients are limited per /64, the smallest network one subscriber normally gets.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;

/// Networks whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Parses a list of CIDR blocks or single addresses, separated by commas or spaces:
    /// `10.0.0.0/8, 2001:db8::/32, 127.0.0.1`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut blocks = Vec::new();
        for item in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            let (address, prefix) = match item.split_once('/') {
                Some((address, prefix)) => (address, Some(prefix)),
                None => (item, None),
            };
            let address: IpAddr = address
                .parse()
                .map_err(|_| format!("`{item}` is not an address or CIDR block like 10.0.0.0/8"))?;
            let address = address.to_canonical();
            let longest = if address.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                None => longest,
                Some(p) => p
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= longest)
                    .ok_or_else(|| format!("`{item}`: the prefix length must be 0..={longest}"))?,
            };
            blocks.push((address, prefix));
        }
        Ok(Self(blocks))
    }

    /// Whether `address` lies in one of the blocks.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|(block, prefix)| match (block, address) {
            (IpAddr::V4(block), IpAddr::V4(address)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
                u32::from(*block) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(block), IpAddr::V6(address)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*prefix)).unwrap_or(0);
                u128::from(*block) & mask == u128::from(address) & mask
            }
            _ => false,
        })
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The client's address; `None` when there is no connection (router tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub Option<IpAddr>);

impl ClientAddress {
    /// The client behind `peer`, believing the forwarding headers only from trusted proxies.
    pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> Self {
        let peer = peer.to_canonical();
        if !trusted.contains(peer) {
            return Self(Some(peer));
        }
        let chain = forwarded_chain(headers);
        // From the right: each hop was added by the one after it; the first that is not a
        // trusted proxy is the client. An entry we cannot read ends the walk at the last hop
        // we can vouch for.
        let mut client = peer;
        for entry in chain.iter().rev() {
            match entry {
                Some(address) if trusted.contains(*address) => client = *address,
                Some(address) => return Self(Some(*address)),
                None => return Self(Some(client)),
            }
        }
        Self(Some(client))
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

/// The `for=` addresses of `Forwarded`, or else those of `X-Forwarded-For`, left to right
/// over every such header; `None` for an entry that is not an address (`unknown`, `_hidden`).
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !forwarded.is_empty() {
        let mut chain = Vec::new();
        for element in forwarded.iter().flat_map(|v| v.split(',')) {
            let value = element.split(';').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then_some(value.trim())
            });
            if let Some(value) = value {
                chain.push(parse_node(value.trim_matches('"')));
            }
        }
        return chain;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|item| parse_node(item.trim()))
        .collect()
}

/// An address as forwarding headers write it: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`,
/// `[2001:db8::1]:4711`, `2001:db8::1`.
fn parse_node(text: &str) -> Option<IpAddr> {
    if let Ok(address) = text.parse::<IpAddr>() {
        return Some(address.to_canonical());
    }
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(socket.ip().to_canonical());
    }
    text.strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(inside, _)| inside.parse::<Ipv6Addr>().ok())
        .map(|v6| IpAddr::V6(v6).to_canonical())
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

    #[test]
    fn bad_blocks_are_refused() {
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.example").is_err());
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert!(TrustedProxies::parse("::1").unwrap().contains(ip("::1")));
        assert!(TrustedProxies::parse("0.0.0.0/0")
            .unwrap()
            .contains(ip("192.0.2.1")));
    }
}
