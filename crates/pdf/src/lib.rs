//! The agreement PDF: the document a user reads before signing, rendered as a PDF 1.7 file
//! (ISO 32000-1) in Serbian Cyrillic or Latin with an embedded DejaVu Sans, without any PDF
//! library. [`agreement_pdf`] is the whole interface.
//!
//! - `font` maps characters to glyphs and reads their widths from the embedded TrueType file.
//! - `layout` wraps and paginates the text on A4 with 2 cm margins.
//! - `writer` serialises the pages: composite font, `/ToUnicode` CMap, cross-reference table.
//!
//! The font is DejaVu Sans as Debian's `fonts-dejavu-core` ships it (`fonts/`), under the
//! Bitstream Vera licence in `fonts/LICENSE-DejaVu.txt`; it is embedded unmodified.

mod font;
mod layout;
mod writer;

/// Why a document could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text holds a character that the embedded font cannot draw, or a control character
    /// other than a line break. Rather than show a missing-glyph box (or nothing) in a document
    /// that a user signs, the whole document is refused.
    #[error("the font has no glyph for {character:?} ({})", .character.escape_unicode())]
    UnsupportedCharacter {
        /// The character.
        character: char,
    },
    /// The footer is so long that it leaves no room for the text on a page.
    #[error("the footer leaves no room for the text on a page")]
    FooterTooLong,
    /// The embedded font file could not be parsed: a defect of this build, not of the input.
    #[error("the embedded font cannot be parsed")]
    Font(#[from] ttf_parser::FaceParsingError),
}

/// Renders an agreement as a PDF 1.7 document.
///
/// The pages are A4 with 2 cm margins. The title is centred at the top of the first page,
/// larger and bold; each paragraph is word-wrapped with the font's advance widths and
/// justified (a line break inside a paragraph is kept, runs of spaces count as one). Every
/// page ends with a footer line holding `footer` on the left and "страна N од M" on the
/// right. The text is extractable (`/ToUnicode`), the document's language is `sr-Cyrl`, its
/// `/Title` is `title` and its `/Producer` is "eidportal".
///
/// The output depends only on the arguments (no dates, no random identifiers).
///
/// # Errors
///
/// [`Error::UnsupportedCharacter`] if the text holds a character DejaVu Sans cannot draw (it
/// covers Cyrillic, Latin and Greek), [`Error::FooterTooLong`] if the footer fills the page.
///
/// # Example
///
/// ```
/// let paragraphs = vec!["Корисник Петар Петровић, ЈМБГ 0101990710008, …".to_string()];
/// let pdf = pdf::agreement_pdf("УГОВОР О ПРУЖАЊУ УСЛУГЕ", &paragraphs, "Уговор бр. 42")?;
/// assert!(pdf.starts_with(b"%PDF-1.7"));
/// # Ok::<(), pdf::Error>(())
/// ```
pub fn agreement_pdf(title: &str, paragraphs: &[String], footer: &str) -> Result<Vec<u8>, Error> {
    let font = font::Font::embedded()?;
    let pages = layout::document(&font, title, paragraphs, footer)?;
    Ok(writer::write(&font, &pages, title))
}

#[cfg(test)]
mod tests {
    //! These tests read the output with independent tools: poppler's `pdftotext` and `pdfinfo`
    //! (required when `EIDPORTAL_TEST_REQUIRE_ALL` is set, skipped with a note otherwise) and
    //! `qpdf --check` (optional).

    use std::path::{Path, PathBuf};
    use std::process::Command;

    use super::*;

    /// Runs `tool` with `args`; `None` (after a note) if the tool is not installed and not
    /// required.
    fn run_tool(tool: &str, args: &[&str], required: bool) -> Option<String> {
        match Command::new(tool).args(args).output() {
            Ok(output) => {
                let stdout = String::from_utf8(output.stdout).unwrap();
                let stderr = String::from_utf8_lossy(&output.stderr);
                assert!(
                    output.status.success(),
                    "{tool} {args:?} failed: {stdout}\n{stderr}"
                );
                Some(stdout)
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                if required && std::env::var_os("EIDPORTAL_TEST_REQUIRE_ALL").is_some() {
                    panic!("{tool} is not installed and EIDPORTAL_TEST_REQUIRE_ALL is set (install poppler-utils)");
                }
                println!("note: {tool} is not installed; skipping this check");
                None
            }
            Err(error) => panic!("cannot run {tool}: {error}"),
        }
    }

    fn save(directory: &Path, pdf: &[u8]) -> PathBuf {
        let path = directory.join("agreement.pdf");
        std::fs::write(&path, pdf).unwrap();
        path
    }

    fn agreement() -> (String, Vec<String>, String) {
        let title = "УГОВОР О ИЗДАВАЊУ КВАЛИФИКОВАНОГ ЕЛЕКТРОНСКОГ СЕРТИФИКАТА".to_string();
        let paragraphs = vec![
            "Корисник: Петар Петровић, ЈМБГ 0101990710008, Београд.".to_string(),
            "Члан 1. Пружалац услуге издаје кориснику квалификовани електронски сертификат за \
             електронски потпис у облаку, у складу са Законом о електронском документу, електронској \
             идентификацији и услугама од поверења у електронском пословању."
                .to_string(),
            "Члан 2. Корисник потврђује да су подаци тачни: Ђорђе, Љиљана, Његош, Ћирило, Џерард, Шабац, Жабаљ."
                .to_string(),
        ];
        (title, paragraphs, "Уговор бр. 2024-0042".to_string())
    }

    fn long_agreement() -> Vec<String> {
        (1..=60)
            .map(|article| {
                format!(
                    "Члан {article}. {}",
                    "Уговорне стране су сагласне да ће све спорове решавати споразумно, а ако то не \
                     буде могуће, надлежан је суд у Београду. "
                        .repeat(1 + article % 4)
                )
            })
            .collect()
    }

    #[test]
    fn pdftotext_extracts_the_serbian_cyrillic_text() {
        let (title, paragraphs, footer) = agreement();
        let pdf = agreement_pdf(&title, &paragraphs, &footer).unwrap();
        let directory = tempfile::tempdir().unwrap();
        let path = save(directory.path(), &pdf);
        let Some(text) = run_tool("pdftotext", &[path.to_str().unwrap(), "-"], true) else {
            return;
        };
        for expected in [
            "УГОВОР",
            "Петар Петровић",
            "0101990710008",
            "Уговор бр. 2024-0042",
            "страна 1 од 1",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} not in the extracted text:\n{text}"
            );
        }
        // Every word of the input comes out, in order, with single spaces between words even on
        // justified lines (line breaks aside).
        let words = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
        let input = words(&format!(
            "{title}\n{}\n{footer}\nстрана 1 од 1",
            paragraphs.join("\n")
        ));
        assert_eq!(words(&text), input);
    }

    #[test]
    fn a_long_agreement_has_as_many_pages_as_pdfinfo_counts() {
        let paragraphs = long_agreement();
        let pdf = agreement_pdf("УГОВОР", &paragraphs, "Уговор бр. 7").unwrap();
        let font = font::Font::embedded().unwrap();
        let expected = layout::document(&font, "УГОВОР", &paragraphs, "Уговор бр. 7")
            .unwrap()
            .len();
        assert!(expected >= 3, "{expected} pages");
        let directory = tempfile::tempdir().unwrap();
        let path = save(directory.path(), &pdf);
        let Some(info) = run_tool("pdfinfo", &[path.to_str().unwrap()], true) else {
            return;
        };
        let field = |name: &str| {
            info.lines()
                .find_map(|line| {
                    line.strip_prefix(name)
                        .map(|value| value.trim_start_matches(':').trim().to_string())
                })
                .unwrap_or_else(|| panic!("no {name} in\n{info}"))
        };
        assert_eq!(field("Pages"), expected.to_string());
        assert_eq!(field("Title"), "УГОВОР");
        assert_eq!(field("Producer"), "eidportal");
        assert_eq!(field("PDF version"), "1.7");
        assert!(field("Page size").contains("(A4)"), "{info}");

        let last = expected.to_string();
        let args = ["-f", &last, "-l", &last, path.to_str().unwrap(), "-"];
        let Some(text) = run_tool("pdftotext", &args, true) else {
            return;
        };
        assert!(
            text.contains(&format!("страна {expected} од {expected}")),
            "{text}"
        );
        assert!(text.contains("Уговор бр. 7"));
    }

    #[test]
    fn qpdf_finds_no_structural_errors() {
        let (title, paragraphs, footer) = agreement();
        let mut paragraphs = paragraphs;
        paragraphs.extend(long_agreement());
        let pdf = agreement_pdf(&title, &paragraphs, &footer).unwrap();
        let directory = tempfile::tempdir().unwrap();
        let path = save(directory.path(), &pdf);
        // qpdf is optional: not part of poppler-utils.
        if let Some(output) = run_tool("qpdf", &["--check", path.to_str().unwrap()], false) {
            assert!(
                output.contains("No syntax or stream encoding errors found"),
                "{output}"
            );
        }
    }

    #[test]
    fn the_document_declares_its_language_and_font() {
        let (title, paragraphs, footer) = agreement();
        let pdf = agreement_pdf(&title, &paragraphs, &footer).unwrap();
        let text = String::from_utf8_lossy(&pdf);
        for expected in [
            "/Lang (sr-Cyrl)",
            "/Producer (eidportal)",
            "/Subtype /Type0",
            "/Encoding /Identity-H",
            "/Subtype /CIDFontType2",
            "/CIDToGIDMap /Identity",
            "/FontFile2 7 0 R",
            "/ToUnicode 8 0 R",
            "/W [",
        ] {
            assert!(text.contains(expected), "{expected} missing");
        }
    }

    #[test]
    fn a_character_the_font_lacks_is_refused() {
        let paragraphs = vec!["Петар 中".to_string()];
        assert!(matches!(
            agreement_pdf("УГОВОР", &paragraphs, ""),
            Err(Error::UnsupportedCharacter { character: '中' })
        ));
        let error = agreement_pdf("УГОВОР\u{7}", &[], "").unwrap_err();
        assert_eq!(
            error.to_string(),
            "the font has no glyph for '\\u{7}' (\\u{7})"
        );
    }
}
