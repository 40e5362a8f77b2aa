//! Who is asking behind a proxy: the pure part of the client address (the server's
//! `client_address` module puts it on axum). The client is the TCP peer unless that peer is a
//! trusted proxy (`EIDPORTAL_TRUSTED_PROXIES`); then the right-most address in `Forwarded`
//! (RFC 7239) or, without it, `X-Forwarded-For` that is not itself a trusted proxy.
//!
//! Everything here reads untrusted header text; `fuzz/fuzz_targets/forwarded_header.rs` fuzzes it.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

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

/// The client behind `peer`, believing the forwarding headers only from trusted proxies.
/// `forwarded` and `x_forwarded_for` are the values of every such header, in order.
pub fn resolve_client(
    peer: IpAddr,
    forwarded: &[&str],
    x_forwarded_for: &[&str],
    trusted: &TrustedProxies,
) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    let chain = forwarded_chain(forwarded, x_forwarded_for);
    // From the right: each hop was added by the one after it; the first that is not a
    // trusted proxy is the client. An entry we cannot read ends the walk at the last hop
    // we can vouch for.
    let mut client = peer;
    for entry in chain.iter().rev() {
        match entry {
            Some(address) if trusted.contains(*address) => client = *address,
            Some(address) => return *address,
            None => return client,
        }
    }
    client
}

/// The `for=` addresses of `Forwarded`, or else (no `Forwarded` header at all) those of
/// `X-Forwarded-For`, left to right over every such header; `None` for an entry that is not an
/// address (`unknown`, `_hidden`).
pub fn forwarded_chain(forwarded: &[&str], x_forwarded_for: &[&str]) -> Vec<Option<IpAddr>> {
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
    x_forwarded_for
        .iter()
        .flat_map(|v| v.split(','))
        .map(|item| parse_node(item.trim()))
        .collect()
}

/// An address as forwarding headers write it: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`,
/// `[2001:db8::1]:4711`, `2001:db8::1`.
pub fn parse_node(text: &str) -> Option<IpAddr> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
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

    #[test]
    fn nodes_in_every_form_forwarding_headers_write() {
        assert_eq!(parse_node("192.0.2.1"), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("192.0.2.1:4711"), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("[2001:db8::1]"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("[2001:db8::1]:4711"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("::ffff:192.0.2.1"), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("unknown"), None);
        assert_eq!(parse_node("_hidden"), None);
        assert_eq!(parse_node("[192.0.2.1]"), None);
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for() {
        let chain = forwarded_chain(
            &[
                "for=192.0.2.1;proto=https, by=10.0.0.1",
                "For=\"[2001:db8::2]:80\"",
            ],
            &["198.51.100.1"],
        );
        assert_eq!(chain, vec![Some(ip("192.0.2.1")), Some(ip("2001:db8::2"))]);
        // A Forwarded header without any for= still hides X-Forwarded-For.
        assert_eq!(forwarded_chain(&["proto=https"], &["198.51.100.1"]), vec![]);
        assert_eq!(
            forwarded_chain(&[], &["198.51.100.1, unknown", "10.0.0.1"]),
            vec![Some(ip("198.51.100.1")), None, Some(ip("10.0.0.1"))]
        );
    }

    #[test]
    fn only_a_trusted_peer_is_believed() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(
            resolve_client(ip("203.0.113.5"), &["for=198.51.100.8"], &[], &trusted),
            ip("203.0.113.5")
        );
        assert_eq!(
            resolve_client(ip("10.0.0.1"), &["for=198.51.100.8"], &[], &trusted),
            ip("198.51.100.8")
        );
        assert_eq!(
            resolve_client(
                ip("10.0.0.1"),
                &[],
                &["1.1.1.1, 198.51.100.7, 10.0.0.9"],
                &trusted
            ),
            ip("198.51.100.7")
        );
        assert_eq!(
            resolve_client(ip("10.0.0.1"), &["for=unknown"], &[], &trusted),
            ip("10.0.0.1")
        );
    }
}
