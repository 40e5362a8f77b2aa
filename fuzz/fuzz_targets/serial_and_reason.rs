//! Fuzzes the small text parsers of `domain` that read user and operator input: serial numbers
//! (`Serial::parse_hex`), revocation reasons (`RevocationReason::from_str`, RFC 5280 §5.3.1) and
//! personal numbers (`Jmbg::parse`). None may panic, and what they accept must round-trip.

#![no_main]

use domain::{Jmbg, RevocationReason, Serial};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A DER INTEGER's content octets, as a CertID carries them.
    if let Some(serial) = Serial::from_integer_bytes(data) {
        assert_eq!(Serial::parse_hex(&serial.to_hex()), Some(serial));
    }

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Some(serial) = Serial::parse_hex(text) {
        let hex = serial.to_hex();
        assert_eq!(hex.len(), 32, "to_hex gave {hex:?}");
        assert_eq!(Serial::parse_hex(&hex), Some(serial), "lower-case hex does not round-trip");
        assert_eq!(Serial::parse_hex(&hex.to_uppercase()), Some(serial), "upper-case hex does not round-trip");
        assert_eq!(serial.to_string(), hex, "Display differs from to_hex");
    }

    if let Ok(reason) = text.parse::<RevocationReason>() {
        assert_eq!(RevocationReason::from_code(reason.code()), Some(reason), "code does not round-trip");
        assert_eq!(reason.as_str().parse::<RevocationReason>().ok(), Some(reason), "name does not round-trip");
        assert_eq!(reason.code().to_string().parse::<RevocationReason>().ok(), Some(reason), "code text does not round-trip");
    }

    if let Ok(jmbg) = Jmbg::parse(text) {
        assert_eq!(jmbg.as_str(), text, "a JMBG is kept as given");
        assert_eq!(jmbg.as_str().len(), 13);
        assert!(jmbg.as_str().bytes().all(|b| b.is_ascii_digit()), "a JMBG is 13 ASCII digits");
        assert_eq!(Jmbg::parse(jmbg.as_str()).ok(), Some(jmbg.clone()), "a JMBG does not re-parse");
    }
});
