//! Fuzzes `authority::login::push::parse_subscription`: the `PushSubscription.toJSON()` body a
//! ConsentID device posts to `/api/app/v1/push/subscription`.
//!
//! Input: the first byte's low bit says whether http:// to loopback is allowed; the rest is the
//! body. Invariants: nothing panics; the answer is the same twice; an accepted subscription has
//! an https endpoint (http only when allowed, and then to a loopback host) without user
//! information or fragment, a 65-byte uncompressed point on P-256 and a 16-byte auth secret;
//! what is accepted without the loopback allowance is accepted with it.

#![no_main]

use authority::login::push::parse_subscription;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let allow = flags & 1 == 1;
    let answer = parse_subscription(body, allow);
    assert_eq!(answer, parse_subscription(body, allow), "not deterministic");
    if !allow && answer.is_ok() {
        assert_eq!(answer, parse_subscription(body, true), "the allowance refused more");
    }
    let Ok(subscription) = answer else {
        return;
    };
    let endpoint = &subscription.endpoint;
    let rest = if let Some(rest) = endpoint.strip_prefix("https://") {
        rest
    } else {
        let rest = endpoint.strip_prefix("http://").unwrap_or_else(|| panic!("{endpoint:?} accepted"));
        assert!(allow, "http accepted without the allowance: {endpoint:?}");
        let host = rest.split(['/', '?']).next().unwrap_or_default();
        let host = match host.rsplit_once(':') {
            Some((h, port)) if !h.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        assert!(
            host.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()),
            "http to a non-loopback host accepted: {endpoint:?}"
        );
        rest
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    assert!(!authority.is_empty() && !authority.contains('@'), "{endpoint:?} accepted");
    assert!(!endpoint.contains('#'), "a fragment accepted: {endpoint:?}");
    assert_eq!(subscription.p256dh.len(), 65);
    assert_eq!(subscription.p256dh.first(), Some(&4));
    assert!(p256::PublicKey::from_sec1_bytes(&subscription.p256dh).is_ok());
    assert_eq!(subscription.auth.len(), 16);
});
