//! The one font this crate embeds, DejaVu Sans (`fonts/DejaVuSans.ttf`, from Debian's
//! `fonts-dejavu-core`): maps characters to glyph ids through the font's `cmap` and reads
//! their advance widths from `hmtx`, in the thousandths of an em that PDF font dictionaries
//! use (ISO 32000-1 §9.2.4, §9.7.4.3).
//!
//! There is no shaping: one character is one glyph, with no kerning and no ligatures. That is
//! enough for Serbian in Cyrillic and in Latin script, which need neither.

use crate::Error;

/// The TrueType file, embedded whole (not subset) as the PDF's `/FontFile2`.
pub(crate) const FONT_FILE: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

/// The font's PostScript name (its `name` table, name id 6); the PDF's `/BaseFont`. Since the
/// font is embedded whole it carries no subset tag (ISO 32000-1 §9.6.4).
pub(crate) const POSTSCRIPT_NAME: &str = "DejaVuSans";

/// A glyph as it is placed on a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Glyph {
    /// The glyph id; with `/CIDToGIDMap /Identity` it is also the CID and the two-byte code
    /// written in content streams (`/Identity-H`).
    pub(crate) id: u16,
    /// Advance width in thousandths of an em, as written in the `/W` array.
    pub(crate) width: u32,
    /// The character the glyph was chosen for, written in the `/ToUnicode` CMap so that text
    /// can be extracted and searched.
    pub(crate) character: char,
}

/// Font-wide metrics in thousandths of an em, for the `/FontDescriptor` (ISO 32000-1 §9.8.1)
/// and for placing lines.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Metrics {
    /// Height above the baseline (`hhea` ascender), positive.
    pub(crate) ascent: i32,
    /// Depth below the baseline (`hhea` descender), negative.
    pub(crate) descent: i32,
    /// Height of flat capital letters.
    pub(crate) cap_height: i32,
    /// The bounding box of all glyphs: left, bottom, right, top.
    pub(crate) bounding_box: [i32; 4],
    /// Slant of the font; zero for an upright font.
    pub(crate) italic_angle: f32,
}

/// The parsed embedded font.
pub(crate) struct Font {
    face: ttf_parser::Face<'static>,
}

impl Font {
    /// Parses the embedded font file.
    pub(crate) fn embedded() -> Result<Self, Error> {
        let face = ttf_parser::Face::parse(FONT_FILE, 0)?;
        Ok(Self { face })
    }

    /// Converts font units to thousandths of an em, rounded to the nearest unit.
    fn to_thousandths(&self, units: i32) -> i32 {
        let per_em = i64::from(self.face.units_per_em().max(1));
        let scaled = i64::from(units) * 1000;
        // Round half away from zero; the result is within ±1000 × |units| / per_em, which
        // fits an i32 for any i16/u16 input.
        let rounded = if scaled >= 0 {
            (scaled + per_em / 2) / per_em
        } else {
            (scaled - per_em / 2) / per_em
        };
        i32::try_from(rounded).unwrap_or(0)
    }

    /// The glyph for one character, or [`Error::UnsupportedCharacter`] if the font has none or
    /// the character is a control character (which has no place in running text).
    pub(crate) fn glyph(&self, character: char) -> Result<Glyph, Error> {
        let unsupported = Error::UnsupportedCharacter { character };
        if character.is_control() {
            return Err(unsupported);
        }
        let id = self.face.glyph_index(character).ok_or(unsupported)?;
        if id.0 == 0 {
            // Glyph 0 is .notdef, the "missing glyph" box.
            return Err(Error::UnsupportedCharacter { character });
        }
        let advance = self
            .face
            .glyph_hor_advance(id)
            .ok_or(Error::UnsupportedCharacter { character })?;
        let width = u32::try_from(self.to_thousandths(i32::from(advance))).unwrap_or(0);
        Ok(Glyph {
            id: id.0,
            width,
            character,
        })
    }

    /// The glyphs for each character of `text`, in order.
    pub(crate) fn glyphs(&self, text: &str) -> Result<Vec<Glyph>, Error> {
        text.chars()
            .map(|character| self.glyph(character))
            .collect()
    }

    /// Font-wide metrics.
    pub(crate) fn metrics(&self) -> Metrics {
        let face = &self.face;
        let bbox = face.global_bounding_box();
        let ascent = i32::from(face.ascender());
        // OS/2 gives the cap height from table version 2 on; DejaVu's is older, so measure "H".
        let cap_height = face
            .capital_height()
            .filter(|height| *height > 0)
            .or_else(|| {
                face.glyph_index('H')
                    .and_then(|id| face.glyph_bounding_box(id))
                    .map(|bbox| bbox.y_max)
            })
            .map_or(ascent, i32::from);
        Metrics {
            ascent: self.to_thousandths(ascent),
            descent: self.to_thousandths(i32::from(face.descender())),
            cap_height: self.to_thousandths(cap_height),
            bounding_box: [
                self.to_thousandths(i32::from(bbox.x_min)),
                self.to_thousandths(i32::from(bbox.y_min)),
                self.to_thousandths(i32::from(bbox.x_max)),
                self.to_thousandths(i32::from(bbox.y_max)),
            ],
            italic_angle: face.italic_angle(),
        }
    }

    /// The font's PostScript name as its `name` table gives it, if it gives one.
    #[cfg(test)]
    fn postscript_name(&self) -> Option<String> {
        self.face
            .names()
            .into_iter()
            .find(|name| name.name_id == ttf_parser::name_id::POST_SCRIPT_NAME && name.is_unicode())
            .and_then(|name| name.to_string())
    }
}

/// The width of a run of glyphs, in thousandths of an em.
pub(crate) fn width(glyphs: &[Glyph]) -> u32 {
    glyphs.iter().map(|glyph| glyph.width).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postscript_name_matches_the_font_file() {
        let font = Font::embedded().unwrap();
        assert_eq!(font.postscript_name().as_deref(), Some(POSTSCRIPT_NAME));
    }

    #[test]
    fn serbian_cyrillic_and_latin_have_glyphs_with_real_widths() {
        let font = Font::embedded().unwrap();
        for character in
            "АБВГДЂЕЖЗИЈКЛЉМНЊОПРСТЋУФХЦЧЏШабвгдђежзијклљмнњопрстћуфхцчџшČĆĐŠŽčćđšž0123456789 .,;:-–—„“”()".chars()
        {
            let glyph = font.glyph(character).unwrap();
            assert_ne!(glyph.id, 0, "{character}");
            assert_eq!(glyph.character, character);
            assert!(glyph.width > 0, "{character} has no advance");
        }
        // DejaVu Sans: 2048 units per em; the space advances 651 units, "Ш" 2025, "і" narrower
        // than "Ш", digits are tabular.
        assert_eq!(font.glyph(' ').unwrap().width, 318);
        assert!(font.glyph('Ш').unwrap().width > font.glyph('і').unwrap().width);
        let digit_widths: Vec<u32> = font
            .glyphs("0123456789")
            .unwrap()
            .iter()
            .map(|g| g.width)
            .collect();
        assert!(digit_widths.iter().all(|w| *w == digit_widths[0]));
    }

    #[test]
    fn control_characters_and_missing_glyphs_are_refused() {
        let font = Font::embedded().unwrap();
        assert!(matches!(
            font.glyph('\u{7}'),
            Err(Error::UnsupportedCharacter { character: '\u{7}' })
        ));
        assert!(matches!(
            font.glyph('\n'),
            Err(Error::UnsupportedCharacter { .. })
        ));
        // A CJK ideograph: DejaVu Sans has none.
        assert!(matches!(
            font.glyph('中'),
            Err(Error::UnsupportedCharacter { character: '中' })
        ));
    }

    #[test]
    fn metrics_are_those_of_dejavu_sans() {
        let metrics = Font::embedded().unwrap().metrics();
        assert_eq!(metrics.ascent, 928);
        assert_eq!(metrics.descent, -236);
        assert_eq!(metrics.cap_height, 729);
        assert!(metrics.bounding_box[0] < 0 && metrics.bounding_box[2] > 1000);
        assert_eq!(metrics.italic_angle, 0.0);
    }
}
