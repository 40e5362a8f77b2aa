//! Fuzzes `domain::forwarded`: the `Forwarded` (RFC 7239) and `X-Forwarded-For` header values a
//! trusted proxy passes on (or anyone sends), and the trusted-proxy list (`EIDPORTAL_TRUSTED_PROXIES`).
//!
//! Input: the first byte picks the TCP peer from `PEERS`; the rest is text (lossy UTF-8), one
//! item a line: the first line is the trusted-proxy list (when it does not parse, `DEFAULT_TRUSTED`
//! is used), then `F...` is a `Forwarded` value and `X...` an `X-Forwarded-For` value; other lines
//! are ignored. Invariants: nothing panics; the answer is canonical and the same twice; a peer
//! outside the trusted list is always the answer; an untrusted last hop added by a trusted peer is
//! the answer; otherwise the answer is the peer or an address
//! written in the header that counts (`Forwarded` whenever there is one, else `X-Forwarded-For`),
//! as an independent scan of that text finds them; every address of an accepted list lies in it.

#![no_main]

use std::net::IpAddr;

use domain::forwarded::{forwarded_chain, resolve_client, TrustedProxies};
use libfuzzer_sys::fuzz_target;

const PEERS: [&str; 8] = [
    "10.0.0.1",
    "::ffff:10.0.0.2",
    "2001:db8:ffff::1",
    "127.0.0.1",
    "203.0.113.5",
    "2001:db8:1::5",
    "::1",
    "0.0.0.0",
];
const DEFAULT_TRUSTED: &str = "10.0.0.0/8, 2001:db8:ffff::/48, 127.0.0.1";

/// Every address written in `text`: each run of address characters, whole and cut before each
/// `:` (a port), parsed by the standard library. Knows nothing of the header grammar.
fn written_addresses(text: &str) -> Vec<IpAddr> {
    let mut found = Vec::new();
    for run in text.split(|c: char| !(c.is_ascii_hexdigit() || c == ':' || c == '.')) {
        let mut candidates = vec![run];
        candidates.extend(run.match_indices(':').map(|(i, _)| &run[..i]));
        found.extend(candidates.iter().filter_map(|c| c.parse::<IpAddr>().ok()).map(|a| a.to_canonical()));
    }
    found
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Some(peer) = PEERS.get(usize::from(pick) % PEERS.len()).and_then(|p| p.parse::<IpAddr>().ok()) else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.split('\n');
    let list = lines.next().unwrap_or_default();
    let parsed = TrustedProxies::parse(list);
    if let Ok(trusted) = &parsed {
        for item in list.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()) {
            let address = item.split_once('/').map_or(item, |(a, _)| a);
            let address: IpAddr = address.parse().unwrap_or_else(|_| panic!("accepted {item:?} without an address"));
            assert!(trusted.contains(address), "{list:?} does not contain its own {address}");
        }
    }
    let trusted = match parsed {
        Ok(trusted) => trusted,
        Err(_) => TrustedProxies::parse(DEFAULT_TRUSTED).unwrap_or_default(),
    };
    let (mut forwarded, mut xff) = (Vec::new(), Vec::new());
    for line in lines {
        if let Some(value) = line.strip_prefix('F') {
            forwarded.push(value);
        } else if let Some(value) = line.strip_prefix('X') {
            xff.push(value);
        }
    }

    let client = resolve_client(peer, &forwarded, &xff, &trusted);
    assert_eq!(client, client.to_canonical(), "not canonical");
    assert_eq!(client, resolve_client(peer, &forwarded, &xff, &trusted), "not deterministic");
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        assert_eq!(client, peer, "headers believed from an untrusted peer");
    }
    assert_eq!(resolve_client(peer, &forwarded, &xff, &TrustedProxies::default()), peer, "no proxy trusted");
    // The last hop was appended by the trusted peer itself: an address there that is not a
    // trusted proxy is the client, whatever the hops before it claim.
    let chain = forwarded_chain(&forwarded, &xff);
    if let (true, Some(Some(last))) = (trusted.contains(peer), chain.last()) {
        if !trusted.contains(*last) {
            assert_eq!(client, *last, "the trusted peer's own hop {last} was passed over");
        }
    }
    if client != peer {
        let counted = if forwarded.is_empty() { &xff } else { &forwarded };
        let written: Vec<IpAddr> = counted.iter().flat_map(|v| written_addresses(v)).collect();
        assert!(written.contains(&client), "{client} is neither the peer nor written in {counted:?}");
        assert!(chain.contains(&Some(client)), "{client} not in the chain {chain:?}");
    }
});
