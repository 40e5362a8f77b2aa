//! Serialises laid-out pages as a PDF 1.7 file (ISO 32000-1): the object graph, Flate-compressed
//! streams, the cross-reference table with exact byte offsets, and the trailer.
//!
//! The text uses one composite font (§9.7): a `/Type0` font with `/Identity-H` encoding, so
//! every glyph is shown by its two-byte glyph id, over a `/CIDFontType2` descendant with
//! `/CIDToGIDMap /Identity` and the whole TrueType file as `/FontFile2`. The `/W` array gives the
//! advance of every glyph used, and a `/ToUnicode` CMap (§9.10.3) maps each back to its
//! character so that text extraction, search and screen readers see the real text.
//!
//! The output is a pure function of the input: no dates, no random ids (the file identifier is
//! a hash of the file's body), so the same agreement always gives the same bytes.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::font::{self, Font, Glyph, Metrics};
use crate::layout::{Page, Run, PAGE_HEIGHT, PAGE_WIDTH};

/// The `/Producer` written in the document information dictionary.
const PRODUCER: &str = "eidportal";
/// The document's natural language (§14.9.2.1): Serbian in Cyrillic script (BCP 47).
const LANGUAGE: &str = "sr-Cyrl";
/// The resource name of the one font.
const FONT_RESOURCE: &str = "F1";
/// Width of the stroke that thickens "bold" glyphs, as a fraction of the font size.
const BOLD_STROKE: f64 = 0.028;

// Object numbers. Pages follow the fixed objects, two objects each (page, content stream).
const CATALOG: usize = 1;
const PAGES: usize = 2;
const INFO: usize = 3;
const TYPE0_FONT: usize = 4;
const CID_FONT: usize = 5;
const FONT_DESCRIPTOR: usize = 6;
const FONT_FILE: usize = 7;
const TO_UNICODE: usize = 8;
const FIRST_PAGE: usize = 9;

/// The page object of page `index` (from zero).
fn page_object(index: usize) -> usize {
    FIRST_PAGE + 2 * index
}

/// The content stream of page `index` (from zero).
fn content_object(index: usize) -> usize {
    FIRST_PAGE + 2 * index + 1
}

/// The embedded font file, Flate-compressed once per process (it is the same for every
/// document and most of the work of writing one).
fn compressed_font() -> &'static [u8] {
    static COMPRESSED: OnceLock<Vec<u8>> = OnceLock::new();
    COMPRESSED.get_or_init(|| miniz_oxide::deflate::compress_to_vec_zlib(font::FONT_FILE, 9))
}

/// A number as PDF writes it: at most three decimals, no exponent, no trailing zeros.
fn number(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" || text.is_empty() {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// Upper-case hexadecimal, as in a PDF hexadecimal string.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02X}")).collect()
}

/// A text string (§7.9.2.2) as a hexadecimal string in UTF-16BE with a byte order mark, which
/// any reader decodes whatever the script.
fn text_string(text: &str) -> String {
    let units: String = text
        .encode_utf16()
        .map(|unit| format!("{unit:04X}"))
        .collect();
    format!("<FEFF{units}>")
}

/// Glyph ids as a hexadecimal string of two-byte codes (`/Identity-H`).
fn glyph_string(glyphs: &[Glyph]) -> String {
    let codes: String = glyphs
        .iter()
        .map(|glyph| format!("{:04X}", glyph.id))
        .collect();
    format!("<{codes}>")
}

/// A stream object's body: the dictionary entries (without `/Length` and `/Filter`) and the
/// data, compressed with Flate (zlib format, §7.4.4).
fn flate_stream(entries: &str, data: &[u8], level: u8) -> Vec<u8> {
    let compressed = miniz_oxide::deflate::compress_to_vec_zlib(data, level);
    raw_stream(&format!("{entries}/Filter /FlateDecode"), &compressed)
}

/// A stream object's body with the data as given (already encoded if `entries` says so).
fn raw_stream(entries: &str, data: &[u8]) -> Vec<u8> {
    let mut body = format!("<< {entries} /Length {} >>\nstream\n", data.len()).into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(b"\nendstream");
    body
}

/// Draws one run: text object, with fill-and-stroke rendering for bold (§9.3.6).
fn draw_run(content: &mut String, run: &Run) {
    let size = number(run.style.size);
    let position = format!("{} {} Td", number(run.x), number(run.y));
    let justified = run.segments.iter().any(|segment| segment.extra != 0.0);
    let show = if justified {
        let parts: Vec<String> = run
            .segments
            .iter()
            .map(|segment| {
                if segment.extra == 0.0 {
                    glyph_string(&segment.glyphs)
                } else {
                    // A negative adjustment moves the next glyph right (§9.4.3).
                    format!(
                        "{} {}",
                        glyph_string(&segment.glyphs),
                        number(-segment.extra)
                    )
                }
            })
            .collect();
        format!("[{}] TJ", parts.join(" "))
    } else {
        let glyphs: Vec<Glyph> = run
            .segments
            .iter()
            .flat_map(|segment| segment.glyphs.iter().copied())
            .collect();
        format!("{} Tj", glyph_string(&glyphs))
    };
    if run.style.bold {
        let stroke = number(run.style.size * BOLD_STROKE);
        content.push_str(&format!(
            "q {stroke} w 2 Tr BT /{FONT_RESOURCE} {size} Tf {position} {show} ET Q\n"
        ));
    } else {
        content.push_str(&format!(
            "BT /{FONT_RESOURCE} {size} Tf {position} {show} ET\n"
        ));
    }
}

/// A page's content stream, before compression.
fn page_content(page: &Page) -> String {
    let rule = &page.rule;
    let mut content = format!(
        "q 0.5 w 0.6 G {} {y} m {} {y} l S Q\n",
        number(rule.x1),
        number(rule.x2),
        y = number(rule.y)
    );
    for run in &page.runs {
        draw_run(&mut content, run);
    }
    content
}

/// The `/W` array (§9.7.4.3): consecutive glyph ids grouped as `first [w1 w2 …]`.
fn widths(glyphs: &BTreeMap<u16, Glyph>) -> String {
    let mut groups: Vec<(u16, Vec<String>)> = Vec::new();
    for glyph in glyphs.values() {
        match groups.last_mut() {
            Some((first, group)) if usize::from(*first) + group.len() == usize::from(glyph.id) => {
                group.push(glyph.width.to_string());
            }
            _ => groups.push((glyph.id, vec![glyph.width.to_string()])),
        }
    }
    let groups: Vec<String> = groups
        .iter()
        .map(|(first, group)| format!("{first} [{}]", group.join(" ")))
        .collect();
    format!("[{}]", groups.join("\n"))
}

/// The `/ToUnicode` CMap (§9.10.3): each glyph id to the UTF-16BE of its character.
fn to_unicode(glyphs: &BTreeMap<u16, Glyph>) -> String {
    let mut cmap = String::from(
        "/CIDInit /ProcSet findresource begin\n\
         12 dict begin\n\
         begincmap\n\
         /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
         /CMapName /Adobe-Identity-UCS def\n\
         /CMapType 2 def\n\
         1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
    );
    let entries: Vec<&Glyph> = glyphs.values().collect();
    // At most 100 entries per bfchar block.
    for chunk in entries.chunks(100) {
        cmap.push_str(&format!("{} beginbfchar\n", chunk.len()));
        for glyph in chunk {
            let mut utf16 = [0u16; 2];
            let units: String = glyph
                .character
                .encode_utf16(&mut utf16)
                .iter()
                .map(|unit| format!("{unit:04X}"))
                .collect();
            cmap.push_str(&format!("<{:04X}> <{units}>\n", glyph.id));
        }
        cmap.push_str("endbfchar\n");
    }
    cmap.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
    cmap
}

/// The `/FontDescriptor` (§9.8): metrics in thousandths of an em. The flags say only
/// "nonsymbolic" (bit 6): DejaVu Sans is neither fixed-pitch, serif nor script.
fn font_descriptor(metrics: &Metrics) -> String {
    let [left, bottom, right, top] = metrics.bounding_box;
    format!(
        "<< /Type /FontDescriptor /FontName /{name} /Flags 32 /FontBBox [{left} {bottom} {right} {top}] \
         /ItalicAngle {angle} /Ascent {ascent} /Descent {descent} /CapHeight {cap} /StemV 80 \
         /FontFile2 {FONT_FILE} 0 R >>",
        name = font::POSTSCRIPT_NAME,
        angle = number(f64::from(metrics.italic_angle)),
        ascent = metrics.ascent,
        descent = metrics.descent,
        cap = metrics.cap_height,
    )
}

/// Writes the document.
///
/// 1. Collect the glyphs the pages use, for `/W` and `/ToUnicode`.
/// 2. Build every object body, in object-number order.
/// 3. Write them after the header, noting each one's byte offset as it is written, then the
///    cross-reference table from those offsets (§7.5.4) and the trailer with a file identifier
///    that hashes everything before it (§14.4).
pub(crate) fn write(font: &Font, pages: &[Page], title: &str) -> Vec<u8> {
    // 1.
    let mut used: BTreeMap<u16, Glyph> = BTreeMap::new();
    for glyph in pages
        .iter()
        .flat_map(|page| &page.runs)
        .flat_map(|run| &run.segments)
        .flat_map(|segment| &segment.glyphs)
    {
        used.entry(glyph.id).or_insert(*glyph);
    }

    // 2.
    let kids: Vec<String> = (0..pages.len())
        .map(|index| format!("{} 0 R", page_object(index)))
        .collect();
    let media_box = format!("[0 0 {} {}]", number(PAGE_WIDTH), number(PAGE_HEIGHT));
    let mut info = format!("<< /Producer ({PRODUCER})");
    if !title.trim().is_empty() {
        info.push_str(&format!(" /Title {}", text_string(title.trim())));
    }
    info.push_str(" >>");
    let mut objects: Vec<Vec<u8>> = vec![
        // CATALOG
        format!(
            "<< /Type /Catalog /Pages {PAGES} 0 R /Lang ({LANGUAGE}) /ViewerPreferences << /DisplayDocTitle true >> >>"
        )
        .into_bytes(),
        // PAGES
        format!("<< /Type /Pages /Kids [{}] /Count {} /MediaBox {media_box} >>", kids.join(" "), pages.len())
            .into_bytes(),
        // INFO
        info.into_bytes(),
        // TYPE0_FONT
        format!(
            "<< /Type /Font /Subtype /Type0 /BaseFont /{name} /Encoding /Identity-H \
             /DescendantFonts [{CID_FONT} 0 R] /ToUnicode {TO_UNICODE} 0 R >>",
            name = font::POSTSCRIPT_NAME
        )
        .into_bytes(),
        // CID_FONT
        format!(
            "<< /Type /Font /Subtype /CIDFontType2 /BaseFont /{name} \
             /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> \
             /FontDescriptor {FONT_DESCRIPTOR} 0 R /CIDToGIDMap /Identity /DW 1000\n/W {widths} >>",
            name = font::POSTSCRIPT_NAME,
            widths = widths(&used)
        )
        .into_bytes(),
        // FONT_DESCRIPTOR
        font_descriptor(&font.metrics()).into_bytes(),
        // FONT_FILE: /Length1 is the length before compression (§9.9).
        raw_stream(&format!("/Length1 {} /Filter /FlateDecode", font::FONT_FILE.len()), compressed_font()),
        // TO_UNICODE
        flate_stream("", to_unicode(&used).as_bytes(), 6),
    ];
    debug_assert_eq!(objects.len(), TO_UNICODE);
    for (index, page) in pages.iter().enumerate() {
        debug_assert_eq!(objects.len() + 1, page_object(index));
        objects.push(
            format!(
                "<< /Type /Page /Parent {PAGES} 0 R /MediaBox {media_box} \
                 /Resources << /Font << /{FONT_RESOURCE} {TYPE0_FONT} 0 R >> >> /Contents {} 0 R >>",
                content_object(index)
            )
            .into_bytes(),
        );
        objects.push(flate_stream("", page_content(page).as_bytes(), 6));
    }

    // 3.
    // The comment of four bytes above 127 tells transfer programs the file is binary (§7.5.2).
    let mut file: Vec<u8> = b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (index, body) in objects.iter().enumerate() {
        offsets.push(file.len());
        file.extend_from_slice(format!("{} 0 obj\n", index + 1).as_bytes());
        file.extend_from_slice(body);
        file.extend_from_slice(b"\nendobj\n");
    }
    let identifier = hex(Sha256::digest(&file).get(..16).unwrap_or_default());
    let xref_offset = file.len();
    let size = objects.len() + 1;
    // Each entry is exactly 20 bytes: 10-digit offset, 5-digit generation, type, space, newline.
    let mut xref = format!("xref\n0 {size}\n0000000000 65535 f \n");
    for offset in offsets {
        xref.push_str(&format!("{offset:010} 00000 n \n"));
    }
    file.extend_from_slice(xref.as_bytes());
    file.extend_from_slice(
        format!(
            "trailer\n<< /Size {size} /Root {CATALOG} 0 R /Info {INFO} 0 R /ID [<{identifier}> <{identifier}>] >>\n\
             startxref\n{xref_offset}\n%%EOF\n"
        )
        .as_bytes(),
    );
    file
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let font = Font::embedded().unwrap();
        let paragraphs = vec!["Први став уговора.".to_string(); 200];
        let pages = crate::layout::document(&font, "УГОВОР", &paragraphs, "подножје").unwrap();
        write(&font, &pages, "УГОВОР")
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack
            .windows(needle.len())
            .rposition(|window| window == needle)
    }

    #[test]
    fn numbers_are_written_plainly() {
        assert_eq!(number(1.0), "1");
        assert_eq!(number(56.6929), "56.693");
        assert_eq!(number(-0.0001), "0");
        assert_eq!(number(-12.5), "-12.5");
        assert_eq!(number(0.0), "0");
    }

    #[test]
    fn text_strings_are_utf16_with_a_byte_order_mark() {
        assert_eq!(text_string("Ћ"), "<FEFF040B>");
        assert_eq!(text_string("a😀"), "<FEFF0061D83DDE00>");
    }

    #[test]
    fn every_cross_reference_entry_points_at_its_object() {
        let file = sample();
        let startxref = find(&file, b"startxref\n").unwrap();
        let tail = std::str::from_utf8(&file[startxref..]).unwrap();
        let xref_offset: usize = tail.lines().nth(1).unwrap().parse().unwrap();
        assert!(file[xref_offset..].starts_with(b"xref\n0 "));
        let table = std::str::from_utf8(&file[xref_offset..startxref]).unwrap();
        let mut lines = table.lines();
        assert_eq!(lines.next(), Some("xref"));
        let size: usize = lines
            .next()
            .unwrap()
            .strip_prefix("0 ")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(lines.next(), Some("0000000000 65535 f "));
        for number in 1..size {
            let entry = lines.next().unwrap();
            assert_eq!(entry.len(), 19, "{entry:?}"); // plus the newline: 20 bytes
            let offset: usize = entry[..10].parse().unwrap();
            assert!(entry.ends_with(" 00000 n "));
            let header = format!("{number} 0 obj\n");
            assert!(
                file[offset..].starts_with(header.as_bytes()),
                "object {number} is not at {offset}"
            );
        }
        assert_eq!(lines.next(), Some("trailer"));
        let trailer = std::str::from_utf8(&file[xref_offset..]).unwrap();
        assert!(trailer.contains(&format!(
            "trailer\n<< /Size {size} /Root 1 0 R /Info 3 0 R /ID [<"
        )));
        assert!(file.ends_with(b"%%EOF\n"));
    }

    #[test]
    fn output_is_deterministic() {
        assert_eq!(sample(), sample());
    }

    #[test]
    fn the_font_is_embedded_whole_and_decompresses_to_the_original() {
        let file = sample();
        let marker = format!("/Length1 {} ", font::FONT_FILE.len());
        assert!(find(&file, marker.as_bytes()).is_some());
        let decompressed = miniz_oxide::inflate::decompress_to_vec_zlib(compressed_font()).unwrap();
        assert_eq!(decompressed, font::FONT_FILE);
        assert!(compressed_font().len() < font::FONT_FILE.len());
    }

    #[test]
    fn widths_group_consecutive_glyphs_and_the_cmap_maps_them_back() {
        let font = Font::embedded().unwrap();
        let mut used = BTreeMap::new();
        for glyph in font.glyphs("абв").unwrap() {
            used.insert(glyph.id, glyph);
        }
        // A character outside the BMP maps to a surrogate pair (the font has none; the id is made up).
        used.insert(
            u16::MAX,
            Glyph {
                id: u16::MAX,
                width: 1000,
                character: '😀',
            },
        );
        let a = font.glyph('а').unwrap();
        let b = font.glyph('б').unwrap();
        assert_eq!(
            b.id,
            a.id + 1,
            "DejaVu Sans orders Cyrillic glyphs alphabetically"
        );
        assert!(widths(&used).starts_with(&format!("[{} [{} {} ", a.id, a.width, b.width)));
        let cmap = to_unicode(&used);
        assert!(cmap.contains(&format!("<{:04X}> <0430>\n", a.id)));
        assert!(cmap.contains("<FFFF> <D83DDE00>\n"));
        assert!(cmap.contains("4 beginbfchar\n"));
    }
}
