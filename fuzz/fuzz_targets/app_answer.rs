//! Fuzzes what the ConsentID app sends and receives around an approval (issue 22): the answer
//! body the server parses (`proto::app::Response`, now with `at_computer`), the envelope the app
//! parses (`proto::app::Envelope`, now with the browser's `origin`), and the network rule that
//! compares the browser's address with the phone's, and the network the login limits count an
//! address by (`domain::network`).
//!
//! Input: bytes. Invariants: nothing panics; what parses serialises and parses back to the same
//! value; an address's network is itself an address prefix that compares equal to itself,
//! `same_network` is symmetric, the limits' network of a network is itself, and a location
//! (names from a GeoIP database) never carries a character that may not be shown.

#![no_main]

use domain::network::{limit_network, location_text, network_of, same_network};
use libfuzzer_sys::fuzz_target;
use proto::app::{Envelope, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(answer) = serde_json::from_slice::<Response>(data) {
        let again: Response = serde_json::from_slice(&serde_json::to_vec(&answer).unwrap()).unwrap();
        assert_eq!(again, answer);
    }
    if let Ok(envelope) = serde_json::from_slice::<Envelope>(data) {
        let again: Envelope =
            serde_json::from_slice(&serde_json::to_vec(&envelope).unwrap()).unwrap();
        assert_eq!(again, envelope);
    }
    let text = String::from_utf8_lossy(data);
    let (browser, phone) = text.split_once('|').unwrap_or((&text, ""));
    assert_eq!(same_network(browser, phone), same_network(phone, browser));
    if let Some(network) = network_of(browser) {
        assert!(same_network(browser, browser), "{browser:?}");
        assert!(network.ends_with("/24") || network.ends_with("/48"), "{network}");
    } else {
        assert!(!same_network(browser, browser), "{browser:?} is no address");
    }
    // The limits' network: an IPv6 address (or /64 key) its /48, which is stable; an IPv4
    // address itself; anything else itself.
    let counted = limit_network(browser);
    assert_eq!(limit_network(&counted), counted, "{browser:?}");
    if network_of(browser).is_none() && !browser.contains('/') {
        assert_eq!(counted, browser, "{browser:?}");
    }
    // Where the browser is, with the two halves as the city's and the country's names.
    let shown = location_text(Some(browser), Some(phone), browser);
    assert!(shown.chars().all(domain::text::is_display_char), "{shown:?}");
    assert!(shown.chars().count() <= 3 * 60 + 5, "{shown:?}");
});
