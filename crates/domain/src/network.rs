//! Networks of client addresses (issue 22): the one a client is counted by in the login and
//! password limits, and whether the browser that started a request and the phone that answers
//! it share a network. A login relayed from elsewhere, by a phishing page that shows a QR code
//! it fetched, comes from another network than the citizen's phone; the app then says so and
//! asks the citizen to confirm being at that computer.

use std::net::{IpAddr, Ipv6Addr};

/// An IPv6 address's /48: what one site is normally given.
fn site_of(v6: Ipv6Addr) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(v6) & (u128::MAX << 80))
}

/// The network a client address is counted by in the login and password limits: an IPv4
/// address itself, an IPv6 address's /48 (so that an attacker cannot buy a fresh budget with
/// each of their /64s). Takes the server's rate-limit key (an address, or `2001:db8:1:2::/64`);
/// anything else is counted as itself.
pub fn limit_network(address: &str) -> String {
    let bare = address.split_once('/').map_or(address, |(bare, _)| bare);
    match bare.parse::<IpAddr>().map(|a| a.to_canonical()) {
        Ok(IpAddr::V6(v6)) => format!("{}/48", site_of(v6)),
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => address.to_owned(),
    }
}

/// The network of an address: its /24 for IPv4, its /48 for IPv6 (an IPv4-mapped IPv6
/// address counts as its IPv4 address). `None` for text that is not an address.
pub fn network_of(address: &str) -> Option<String> {
    let address: IpAddr = address.trim().parse().ok()?;
    Some(match address.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => format!("{}/48", site_of(v6)),
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

/// The longest place name (a city's or a country's) shown on an approval screen.
const MAX_PLACE_CHARS: usize = 60;

/// Where the browser is, as the phone shows it: `Нови Сад, Србија (192.0.2.7)` when a GeoIP
/// database knows the address's city and country, `Србија (192.0.2.7)` when it knows only the
/// country, else just the address. Names are display text (no control or invisible
/// formatting characters, [`crate::text`]) of at most 60 characters: a GeoIP database is the
/// operator's file, but what reaches the phone is never able to draw on its screen.
pub fn location_text(city: Option<&str>, country: Option<&str>, address: &str) -> String {
    let shown = |name: Option<&str>| {
        name.map(|name| crate::text::display_text(name.trim(), MAX_PLACE_CHARS))
            .filter(|name| !name.trim().is_empty())
    };
    let address = crate::text::display_text(address, MAX_PLACE_CHARS);
    match (shown(city), shown(country)) {
        (Some(city), Some(country)) => format!("{city}, {country} ({address})"),
        (None, Some(place)) | (Some(place), None) => format!("{place} ({address})"),
        (None, None) => address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_ipv6_per_48_and_ipv4_per_address() {
        assert_eq!(limit_network("2001:db8:1:2::/64"), "2001:db8:1::/48");
        assert_eq!(limit_network("2001:db8:1:ffff::/64"), "2001:db8:1::/48");
        assert_eq!(limit_network("2001:db8:2:2::1"), "2001:db8:2::/48");
        assert_eq!(limit_network("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(limit_network("192.0.2.7"), "192.0.2.7");
        assert_eq!(limit_network("192.0.2.8"), "192.0.2.8");
        assert_eq!(limit_network("unknown"), "unknown");
    }

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

    #[test]
    fn a_location_names_city_and_country_before_the_address() {
        assert_eq!(
            location_text(Some("Нови Сад"), Some("Србија"), "192.0.2.7"),
            "Нови Сад, Србија (192.0.2.7)"
        );
        assert_eq!(
            location_text(None, Some("Serbia"), "192.0.2.7"),
            "Serbia (192.0.2.7)"
        );
        assert_eq!(location_text(None, None, "192.0.2.7"), "192.0.2.7");
        assert_eq!(location_text(Some(" "), Some(""), "192.0.2.7"), "192.0.2.7");
    }

    #[test]
    fn a_location_never_carries_what_draws_on_the_screen() {
        let shown = location_text(
            Some("Beograd\u{1b}[2K\nFake line"),
            Some("\u{202e}aibreS"),
            "192.0.2.7",
        );
        assert_eq!(shown, "Beograd[2KFake line, aibreS (192.0.2.7)");
        let long = "Б".repeat(500);
        let shown = location_text(Some(&long), None, "192.0.2.7");
        assert_eq!(
            shown.chars().count(),
            MAX_PLACE_CHARS + " (192.0.2.7)".len()
        );
    }
}
