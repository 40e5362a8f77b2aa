//! Whether two addresses are on the same network: the browser that started a request and the
//! phone that answers it (issue 22). A login relayed from elsewhere, by a phishing page that
//! shows a QR code it fetched, comes from another network than the citizen's phone; the app
//! then says so and asks the citizen to confirm being at that computer.

use std::net::IpAddr;

/// The network of an address: its /24 for IPv4, its /48 for IPv6 (an IPv4-mapped IPv6
/// address counts as its IPv4 address). `None` for text that is not an address.
pub fn network_of(address: &str) -> Option<String> {
    let address: IpAddr = address.trim().parse().ok()?;
    Some(match address.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    })
}

/// Whether the browser at `browser` and the phone at `phone` share a network ([`network_of`]).
/// An address that does not parse is on no known network: the answer is no, so the app warns.
pub fn same_network(browser: &str, phone: &str) -> bool {
    match (network_of(browser), network_of(phone)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_compares_by_24() {
        assert!(same_network("192.0.2.1", "192.0.2.254"));
        assert!(same_network("127.0.0.1", "127.0.0.200"));
        assert!(!same_network("127.0.0.1", "127.0.1.2"));
        assert!(!same_network("192.0.2.1", "192.0.3.1"));
        assert_eq!(
            network_of("198.51.100.77").as_deref(),
            Some("198.51.100.0/24")
        );
    }

    #[test]
    fn ipv6_compares_by_48_and_mapped_ipv4_as_ipv4() {
        assert!(same_network("2001:db8:1:2::1", "2001:db8:1:ffff::9"));
        assert!(!same_network("2001:db8:1::1", "2001:db8:2::1"));
        assert!(same_network("::ffff:192.0.2.1", "192.0.2.9"));
        assert!(!same_network("::1", "127.0.0.1"));
        assert_eq!(
            network_of("2001:db8:a:b::1").as_deref(),
            Some("2001:db8:a::/48")
        );
    }

    #[test]
    fn what_is_not_an_address_is_never_the_same_network() {
        assert!(!same_network("", ""));
        assert!(!same_network("unknown", "unknown"));
        assert!(!same_network("192.0.2.1", "192.0.2.1:443"));
        assert_eq!(network_of("300.1.1.1"), None);
    }
}
