//! Fuzzes `domain::push`: which addresses a Web Push may connect to (issue 22). A device's
//! endpoint names its host; `authority::login::push` resolves it (an IP literal as written,
//! in any form the resolver reads) and asks `special_range` and `may_push_to` of every address.
//!
//! Input: the first byte picks the form: 0 the next 4 bytes as an IPv4 address, 1 the next 16
//! as an IPv6 one, anything else the rest as text parsed as an IP address (the hosts of an
//! endpoint URL, with or without brackets). Invariants: nothing panics; the answer is the same
//! twice; every address the standard library calls loopback, private, link-local, multicast,
//! broadcast, unspecified or documentation, and every shared (100.64/10), unique-local
//! (fc00::/7) or site-local (fec0::/10) one, is special; an IPv4-mapped IPv6 address is judged
//! as its IPv4 address; a public IPv6 address is in 2000::/3 unless it carries a public IPv4
//! address (mapped, compatible, NAT64); `may_push_to` admits exactly the
//! public addresses, and the tests' allowance admits more, never less.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use domain::push::{may_push_to, special_range};
use libfuzzer_sys::fuzz_target;

fn must_be_special(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_unspecified()
                || v4.is_documentation()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
                || a >= 240
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || first & 0xfe00 == 0xfc00
                || first & 0xffc0 == 0xfe80
                || first & 0xffc0 == 0xfec0
                || v6.to_ipv4_mapped().is_some_and(|v4| must_be_special(IpAddr::V4(v4)))
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&form, rest)) = data.split_first() else {
        return;
    };
    let address = match form {
        0 => match <[u8; 4]>::try_from(rest.get(..4).unwrap_or_default()) {
            Ok(octets) => IpAddr::V4(Ipv4Addr::from(octets)),
            Err(_) => return,
        },
        1 => match <[u8; 16]>::try_from(rest.get(..16).unwrap_or_default()) {
            Ok(octets) => IpAddr::V6(Ipv6Addr::from(octets)),
            Err(_) => return,
        },
        _ => {
            let text = String::from_utf8_lossy(rest);
            let bare = text.trim_start_matches('[').trim_end_matches(']');
            match bare.parse::<IpAddr>() {
                Ok(address) => address,
                Err(_) => return,
            }
        }
    };
    let range = special_range(address);
    assert_eq!(range, special_range(address), "not deterministic");
    if must_be_special(address) {
        assert!(range.is_some(), "{address} judged public");
    }
    if let IpAddr::V6(v6) = address {
        if let Some(v4) = v6.to_ipv4_mapped() {
            assert_eq!(range, special_range(IpAddr::V4(v4)), "{address} and {v4} differ");
        }
        // Outside 2000::/3 only an address carrying a public IPv4 one (mapped, compatible or
        // NAT64's 64:ff9b::/96) may be public, and then as that IPv4 address is.
        let segments = v6.segments();
        let nat64 = segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
        if range.is_none() && segments[0] & 0xe000 != 0x2000 {
            let [.., high, low] = segments;
            let carried = Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
            assert!(v6.to_ipv4().is_some() || nat64, "{address} outside 2000::/3 judged public");
            assert_eq!(special_range(IpAddr::V4(carried)), None, "{address} carries {carried}");
        }
    }
    let strict = may_push_to(&[address], false);
    assert_eq!(strict.is_ok(), range.is_none(), "{address}: {strict:?} but {range:?}");
    let allowed = may_push_to(&[address], true);
    if strict.is_ok() {
        assert!(allowed.is_ok(), "{address}: the allowance refused more");
    }
    // A public address beside it never makes a special one acceptable.
    let public = IpAddr::V4(Ipv4Addr::new(142, 250, 180, 10));
    assert_eq!(may_push_to(&[public, address], false).is_ok(), range.is_none());
});
