//! Text that a server-side caller supplies and a citizen later reads on an approval screen
//! (ConsentID): a document title, a CSC `description`, a browser's name. Such text must not
//! be able to draw on the screen: no control characters (ANSI escapes start with ESC, and a
//! newline starts a fake line), and no invisible Unicode formatting that reorders or hides
//! what follows (bidirectional overrides and isolates, zero-width characters; Unicode TR #36
//! §2.1, "Trojan Source").

/// Whether `c` may appear in text shown on an approval screen.
pub fn is_display_char(c: char) -> bool {
    !c.is_control() && !is_invisible_format(c)
}

/// Bidirectional controls and zero-width characters (general category Cf that changes how
/// the surrounding text reads).
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Whether `text` is printable display text of at most `max_chars` characters.
pub fn is_display_text(text: &str, max_chars: usize) -> bool {
    text.chars().count() <= max_chars && text.chars().all(is_display_char)
}

/// `text` with every character that may not be shown left out, cut to `max_chars`.
pub fn display_text(text: &str, max_chars: usize) -> String {
    text.chars()
        .filter(|c| is_display_char(*c))
        .take(max_chars)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_in_any_script_is_display_text() {
        assert!(is_display_text("Уговор о закупу.pdf", 200));
        assert!(is_display_text("Ugovor (1/2) — Đorđe, ćevapi & €", 200));
        assert!(is_display_text("", 200));
        assert!(is_display_text(&"ж".repeat(200), 200));
    }

    #[test]
    fn escapes_newlines_and_invisible_formatting_are_not() {
        for bad in [
            "x\u{1b}[2A\u{1b}[2K",
            "a\nКо тражи: Портал",
            "a\r",
            "tab\there",
            "\u{7f}",
            "\u{9b}2A",
            "rtl\u{202E}fdp.exe",
            "zero\u{200B}width",
            "\u{2066}iso",
        ] {
            assert!(!is_display_text(bad, 200), "{bad:?}");
        }
        assert!(!is_display_text(&"ж".repeat(201), 200));
    }

    #[test]
    fn display_text_drops_what_may_not_be_shown() {
        assert_eq!(display_text("x\u{1b}[2A\nok\u{202E}", 60), "x[2Aok");
        assert_eq!(display_text("abcdef", 3), "abc");
    }
}
