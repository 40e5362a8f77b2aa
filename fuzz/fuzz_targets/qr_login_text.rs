//! Fuzzes `domain::qr`: the text a phone's camera read (`CID1.<id>.<t>.<mac>`) and the token of
//! a same-phone link (`L1.<id>.<mac>`), both sent by the app (so by anyone holding a device key).
//!
//! Input: lossy UTF-8 text. Invariants: nothing panics; whatever parses checks as `Invalid`
//! against a secret that did not make it (a MAC cannot be guessed), and a text made again from
//! what parsed, with the right secret, parses back to the same id and second and checks fine at
//! that second; a QR text is never a link token, nor the other way round.

#![no_main]

use domain::qr::{
    check_link, check_qr, link_token, parse_link, parse_qr, qr_text, QrRefusal, QrSecret,
};
use domain::UnixTime;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let secret = QrSecret([0x5a; 32]);
    let start = UnixTime(1_000_000);
    if let Ok(scanned) = parse_qr(&text) {
        assert!(parse_link(&text).is_err(), "{text:?} is both a QR text and a link");
        let now = UnixTime(start.0 + scanned.t);
        assert_eq!(check_qr(&scanned, &secret, start, now), Err(QrRefusal::Invalid), "{text:?}");
        let made = qr_text(&secret, &scanned.id, scanned.t);
        let again = parse_qr(&made).unwrap_or_else(|e| panic!("{made:?} does not parse: {e}"));
        assert_eq!((&again.id, again.t), (&scanned.id, scanned.t));
        assert_eq!(check_qr(&again, &secret, start, now), Ok(()));
    }
    if let Ok(opened) = parse_link(&text) {
        assert_eq!(check_link(&opened, &secret), Err(QrRefusal::Invalid), "{text:?}");
        let made = link_token(&secret, &opened.id);
        let again = parse_link(&made).unwrap_or_else(|e| panic!("{made:?} does not parse: {e}"));
        assert_eq!(again.id, opened.id);
        assert_eq!(check_link(&again, &secret), Ok(()));
    }
});
