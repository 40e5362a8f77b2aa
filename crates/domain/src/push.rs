//! Where the server may send a Web Push (issue 22: server-side request forgery). A device
//! chooses its push endpoint's URL and the server opens a connection there, so the host's
//! addresses decide: only public unicast ones, never this machine, its private network or a
//! range with a special purpose (the IANA IPv4 and IPv6 Special-Purpose Address Registries,
//! RFC 6890). An IPv6 address that carries an IPv4 one (mapped, compatible, NAT64, 6to4) is
//! judged by the IPv4 address it reaches.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A special-purpose range an address is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpecialRange {
    /// `0.0.0.0/8` ("this network", RFC 791) and `::` (RFC 4291 §2.5.2).
    #[error("an unspecified address")]
    Unspecified,
    /// `127.0.0.0/8` (RFC 1122 §3.2.1.3) and `::1` (RFC 4291 §2.5.3).
    #[error("a loopback address")]
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16` (RFC 1918).
    #[error("a private address")]
    Private,
    /// `100.64.0.0/10`, carrier-grade NAT (RFC 6598).
    #[error("a shared (carrier-grade NAT) address")]
    Shared,
    /// `169.254.0.0/16` (RFC 3927) and `fe80::/10` (RFC 4291 §2.5.6).
    #[error("a link-local address")]
    LinkLocal,
    /// `fc00::/7` (RFC 4193) and the deprecated site-local `fec0::/10` (RFC 3879).
    #[error("a unique-local address")]
    UniqueLocal,
    /// `224.0.0.0/4` (RFC 5771) and `ff00::/8` (RFC 4291 §2.7).
    #[error("a multicast address")]
    Multicast,
    /// `255.255.255.255` (RFC 919).
    #[error("the broadcast address")]
    Broadcast,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24` (RFC 5737), `2001:db8::/32`
    /// (RFC 3849), `3fff::/20` (RFC 9637).
    #[error("a documentation address")]
    Documentation,
    /// `198.18.0.0/15` (RFC 2544) and `2001:2::/48` (RFC 5180).
    #[error("a benchmarking address")]
    Benchmarking,
    /// The rest of the registries and what is not allocated for global unicast:
    /// `192.0.0.0/24` (RFC 6890), `192.88.99.0/24` (RFC 7526), `240.0.0.0/4` (RFC 1112),
    /// `2001::/23` (RFC 2928: Teredo, ORCHID, …), `64:ff9b:1::/48` (RFC 8215), `100::/64`
    /// (RFC 6666), `5f00::/16` (RFC 9602), and every IPv6 address outside `2000::/3`.
    #[error("a reserved address")]
    Reserved,
}

/// The special-purpose range `address` is in; `None` for a public unicast address.
pub fn special_range(address: IpAddr) -> Option<SpecialRange> {
    match address {
        IpAddr::V4(v4) => special_range_v4(v4),
        IpAddr::V6(v6) => special_range_v6(v6),
    }
}

fn special_range_v4(address: Ipv4Addr) -> Option<SpecialRange> {
    let [a, b, c, _] = address.octets();
    Some(match (a, b, c) {
        (0, _, _) => SpecialRange::Unspecified,
        (127, _, _) => SpecialRange::Loopback,
        (10, _, _) | (192, 168, _) => SpecialRange::Private,
        (172, 16..=31, _) => SpecialRange::Private,
        (100, 64..=127, _) => SpecialRange::Shared,
        (169, 254, _) => SpecialRange::LinkLocal,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => SpecialRange::Documentation,
        (198, 18..=19, _) => SpecialRange::Benchmarking,
        (192, 0, 0) | (192, 88, 99) => SpecialRange::Reserved,
        (224..=239, _, _) => SpecialRange::Multicast,
        _ if address == Ipv4Addr::BROADCAST => SpecialRange::Broadcast,
        (240..=255, _, _) => SpecialRange::Reserved,
        _ => return None,
    })
}

fn special_range_v6(address: Ipv6Addr) -> Option<SpecialRange> {
    if address == Ipv6Addr::UNSPECIFIED {
        return Some(SpecialRange::Unspecified);
    }
    if address == Ipv6Addr::LOCALHOST {
        return Some(SpecialRange::Loopback);
    }
    if let Some(v4) = embedded_v4(address) {
        return special_range_v4(v4);
    }
    let s = address.segments();
    let (first, second) = (s[0], s[1]);
    Some(match first {
        0xff00..=0xffff => SpecialRange::Multicast,
        0xfe80..=0xfebf => SpecialRange::LinkLocal,
        0xfc00..=0xfdff | 0xfec0..=0xfeff => SpecialRange::UniqueLocal,
        0x2001 if second == 0x0db8 => SpecialRange::Documentation,
        0x2001 if second == 0x0002 && s[2] == 0 => SpecialRange::Benchmarking,
        // 2001::/23: second segment 0x0000..=0x01ff.
        0x2001 if second < 0x0200 => SpecialRange::Reserved,
        0x3fff if second < 0x1000 => SpecialRange::Documentation,
        // Global unicast is 2000::/3; the rest is special or not allocated.
        0x2000..=0x3fff => return None,
        _ => SpecialRange::Reserved,
    })
}

/// The IPv4 address an IPv6 one reaches: IPv4-mapped `::ffff:0:0/96` and the deprecated
/// IPv4-compatible `::/96` (RFC 4291 §2.5.5), NAT64's well-known prefix `64:ff9b::/96`
/// (RFC 6052 §2.1), and 6to4's `2002::/16` (RFC 3056 §2).
fn embedded_v4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = address.segments();
    let low = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    match s {
        [0, 0, 0, 0, 0, 0xffff, h, l] | [0, 0, 0, 0, 0, 0, h, l] => Some(low(h, l)),
        [0x64, 0xff9b, 0, 0, 0, 0, h, l] => Some(low(h, l)),
        [0x2002, h, l, ..] => Some(low(h, l)),
        _ => None,
    }
}

/// Why the server does not push to an endpoint's host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EndpointRefusal {
    /// The host has no address.
    #[error("the push endpoint's host has no address")]
    NoAddress,
    /// An address of the host is in a special-purpose range.
    #[error("the push endpoint's host is {0}, not a public address")]
    NotPublic(SpecialRange),
}

/// Whether the server may push to a host with `addresses` (all of them, as resolved): only if
/// it has one and each is public, so that a name with one public and one internal address
/// cannot steer the connection inward. `allow_private` (`dangerous_*`, tests' local push
/// services) also admits loopback, private, shared, link-local and unique-local unicast ones.
pub fn may_push_to(addresses: &[IpAddr], allow_private: bool) -> Result<(), EndpointRefusal> {
    if addresses.is_empty() {
        return Err(EndpointRefusal::NoAddress);
    }
    for address in addresses {
        match special_range(*address) {
            None => {}
            Some(
                SpecialRange::Loopback
                | SpecialRange::Private
                | SpecialRange::Shared
                | SpecialRange::LinkLocal
                | SpecialRange::UniqueLocal,
            ) if allow_private => {}
            Some(range) => return Err(EndpointRefusal::NotPublic(range)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> Option<SpecialRange> {
        special_range(text.parse().unwrap_or(IpAddr::V4(Ipv4Addr::BROADCAST)))
    }

    #[test]
    fn ipv4_ranges_are_refused_to_their_edges() {
        use SpecialRange::*;
        for (address, expected) in [
            ("0.0.0.0", Some(Unspecified)),
            ("0.255.255.255", Some(Unspecified)),
            ("1.0.0.0", None),
            ("9.255.255.255", None),
            ("10.0.0.0", Some(Private)),
            ("10.255.255.255", Some(Private)),
            ("11.0.0.0", None),
            ("100.63.255.255", None),
            ("100.64.0.0", Some(Shared)),
            ("100.127.255.255", Some(Shared)),
            ("100.128.0.0", None),
            ("126.255.255.255", None),
            ("127.0.0.0", Some(Loopback)),
            ("127.0.0.1", Some(Loopback)),
            ("127.255.255.255", Some(Loopback)),
            ("128.0.0.0", None),
            ("169.253.255.255", None),
            ("169.254.0.0", Some(LinkLocal)),
            ("169.254.169.254", Some(LinkLocal)),
            ("169.255.0.0", None),
            ("172.15.255.255", None),
            ("172.16.0.0", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("172.32.0.0", None),
            ("192.0.0.0", Some(Reserved)),
            ("192.0.0.255", Some(Reserved)),
            ("192.0.1.0", None),
            ("192.0.2.0", Some(Documentation)),
            ("192.0.2.255", Some(Documentation)),
            ("192.0.3.0", None),
            ("192.88.99.1", Some(Reserved)),
            ("192.167.255.255", None),
            ("192.168.0.0", Some(Private)),
            ("192.168.255.255", Some(Private)),
            ("192.169.0.0", None),
            ("198.17.255.255", None),
            ("198.18.0.0", Some(Benchmarking)),
            ("198.19.255.255", Some(Benchmarking)),
            ("198.20.0.0", None),
            ("198.51.100.7", Some(Documentation)),
            ("203.0.113.7", Some(Documentation)),
            ("223.255.255.255", None),
            ("224.0.0.0", Some(Multicast)),
            ("239.255.255.255", Some(Multicast)),
            ("240.0.0.0", Some(Reserved)),
            ("255.255.255.254", Some(Reserved)),
            ("255.255.255.255", Some(Broadcast)),
            ("8.8.8.8", None),
            ("142.250.180.10", None),
        ] {
            assert_eq!(range(address), expected, "{address}");
        }
    }

    #[test]
    fn ipv6_ranges_are_refused_to_their_edges() {
        use SpecialRange::*;
        for (address, expected) in [
            ("::", Some(Unspecified)),
            ("::1", Some(Loopback)),
            ("::2", Some(Unspecified)),
            // IPv4-mapped and -compatible: judged by the IPv4 address.
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:10.1.2.3", Some(Private)),
            ("::ffff:169.254.169.254", Some(LinkLocal)),
            ("::ffff:8.8.8.8", None),
            ("::127.0.0.1", Some(Loopback)),
            ("::ffff:0:127.0.0.1", Some(Reserved)),
            // NAT64 (RFC 6052) and 6to4 (RFC 3056) carry an IPv4 address too.
            ("64:ff9b::7f00:1", Some(Loopback)),
            ("64:ff9b::808:808", None),
            ("64:ff9b:1::1", Some(Reserved)),
            ("2002:7f00:1::1", Some(Loopback)),
            ("2002:c0a8:101::1", Some(Private)),
            ("2002:808:808::1", None),
            ("100::1", Some(Reserved)),
            ("1fff:ffff::1", Some(Reserved)),
            ("2000::", None),
            ("2001::1", Some(Reserved)),
            ("2001:1ff:ffff::1", Some(Reserved)),
            ("2001:200::1", None),
            ("2001:2::1", Some(Benchmarking)),
            ("2001:db7:ffff::1", None),
            ("2001:db8::", Some(Documentation)),
            ("2001:db8:ffff:ffff::1", Some(Documentation)),
            ("2001:db9::1", None),
            ("2606:4700::1111", None),
            ("2a00:1450:4001::200e", None),
            ("3ffe:ffff::1", None),
            ("3fff::1", Some(Documentation)),
            ("3fff:fff:ffff::1", Some(Documentation)),
            ("3fff:1000::1", None),
            ("4000::1", Some(Reserved)),
            ("5f00::1", Some(Reserved)),
            ("fbff:ffff::1", Some(Reserved)),
            ("fc00::", Some(UniqueLocal)),
            ("fdff:ffff::1", Some(UniqueLocal)),
            ("fe7f::1", Some(Reserved)),
            ("fe80::", Some(LinkLocal)),
            ("febf:ffff::1", Some(LinkLocal)),
            ("fec0::1", Some(UniqueLocal)),
            ("feff::1", Some(UniqueLocal)),
            ("ff00::", Some(Multicast)),
            ("ff02::1", Some(Multicast)),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Multicast)),
        ] {
            assert_eq!(range(address), expected, "{address}");
        }
    }

    #[test]
    fn a_host_is_pushed_to_only_if_every_address_is_public() {
        let ip = |text: &str| {
            text.parse::<IpAddr>()
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        };
        let public = ip("142.250.180.10");
        assert_eq!(may_push_to(&[public, ip("2a00:1450::1")], false), Ok(()));
        assert_eq!(may_push_to(&[], false), Err(EndpointRefusal::NoAddress));
        assert_eq!(may_push_to(&[], true), Err(EndpointRefusal::NoAddress));
        // One internal address among public ones is enough to refuse.
        assert_eq!(
            may_push_to(&[public, ip("127.0.0.1")], false),
            Err(EndpointRefusal::NotPublic(SpecialRange::Loopback))
        );
        // The allowance (tests' local push services) admits private unicast ranges only.
        for allowed in [
            "127.0.0.1",
            "::1",
            "10.0.0.1",
            "100.64.0.1",
            "169.254.0.1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(may_push_to(&[ip(allowed)], false).is_err(), "{allowed}");
            assert_eq!(may_push_to(&[ip(allowed)], true), Ok(()), "{allowed}");
        }
        for refused in [
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "ff02::1",
            "255.255.255.255",
            "192.0.2.1",
            "240.0.0.1",
        ] {
            assert!(may_push_to(&[ip(refused)], true).is_err(), "{refused}");
        }
        assert_eq!(
            EndpointRefusal::NotPublic(SpecialRange::Loopback).to_string(),
            "the push endpoint's host is a loopback address, not a public address"
        );
    }
}
