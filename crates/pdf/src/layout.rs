//! Page layout of an agreement: A4 with 2 cm margins, the title centred at the top of the first
//! page, paragraphs word-wrapped with the font's advance widths and justified, and on every page
//! a footer line with the caller's text and the page number ("страна N од M").
//!
//! Everything here is in PDF user-space units (points, 1/72 inch, origin at the bottom left;
//! ISO 32000-1 §8.3.2.3), except glyph widths and inter-word gaps, which are in thousandths of
//! an em as in the font's `/W` array. The output is a list of positioned text runs per page;
//! `writer` turns them into content streams without making any layout decision.

use crate::font::{self, Font, Glyph, Metrics};
use crate::Error;

/// A4 width, 210 mm (ISO 216).
pub(crate) const PAGE_WIDTH: f64 = 210.0 / 25.4 * 72.0;
/// A4 height, 297 mm (ISO 216).
pub(crate) const PAGE_HEIGHT: f64 = 297.0 / 25.4 * 72.0;
/// The margin on all four sides, 2 cm. Nothing is drawn outside it, footer included.
pub(crate) const MARGIN: f64 = 20.0 / 25.4 * 72.0;
/// The width available to text.
const CONTENT_WIDTH: f64 = PAGE_WIDTH - 2.0 * MARGIN;

/// The title: larger, drawn "bold" by stroking the outline too (we ship one font).
const TITLE: Style = Style {
    size: 16.0,
    leading: 1.3,
    bold: true,
};
/// Paragraph text.
const BODY: Style = Style {
    size: 11.0,
    leading: 1.4,
    bold: false,
};
/// The footer line(s).
const FOOTER: Style = Style {
    size: 8.5,
    leading: 1.3,
    bold: false,
};
/// Space between the title and the first paragraph.
const SPACE_AFTER_TITLE: f64 = 14.0;
/// Space between two paragraphs.
const SPACE_BETWEEN_PARAGRAPHS: f64 = 6.0;
/// Space between the footer text and the rule above it, and between the rule and the body.
const RULE_GAP: f64 = 5.0;
/// Minimum space between the footer text and the page number on the same line.
const LABEL_GAP: f64 = 18.0;
/// A justified line may stretch each inter-word space by at most this many spaces; a line that
/// would need more (a few long words) is left ragged instead.
const MAX_STRETCH_IN_SPACES: f64 = 3.0;
/// Tolerance for comparisons of positions computed in floating point.
const EPSILON: f64 = 1e-6;

/// The page number in the footer: "страна 3 од 12" ("page 3 of 12").
fn page_label(page: usize, pages: usize) -> String {
    format!("страна {page} од {pages}")
}

/// How text of one kind is set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Style {
    /// Font size in points.
    pub(crate) size: f64,
    /// Distance between baselines as a multiple of the size.
    leading: f64,
    /// Whether to stroke the glyph outlines as well as fill them (a faux bold).
    pub(crate) bold: bool,
}

impl Style {
    /// Distance between baselines in points.
    fn line_height(&self) -> f64 {
        self.size * self.leading
    }

    /// Text width in points that `units` thousandths of an em take at this size.
    fn points(&self, units: u32) -> f64 {
        f64::from(units) * self.size / 1000.0
    }

    /// How many thousandths of an em fit in `points` at this size.
    fn units(&self, points: f64) -> f64 {
        points * 1000.0 / self.size
    }
}

/// A piece of a run: glyphs shown together, then an extra advance before the next piece.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Segment {
    /// The glyphs, in order.
    pub(crate) glyphs: Vec<Glyph>,
    /// Extra space after the glyphs in thousandths of an em (how a justified line widens its
    /// inter-word spaces; written as a negative `TJ` adjustment, ISO 32000-1 §9.4.3).
    pub(crate) extra: f64,
}

/// One line of text at a fixed position.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Run {
    /// Left end of the baseline.
    pub(crate) x: f64,
    /// Baseline height.
    pub(crate) y: f64,
    /// How the text is set.
    pub(crate) style: Style,
    /// The text.
    pub(crate) segments: Vec<Segment>,
}

impl Run {
    /// The width the run takes on the page, in points.
    #[cfg(test)]
    pub(crate) fn width(&self) -> f64 {
        self.segments
            .iter()
            .map(|segment| {
                self.style.points(font::width(&segment.glyphs))
                    + segment.extra * self.style.size / 1000.0
            })
            .sum()
    }

    /// The run's characters, for tests.
    #[cfg(test)]
    pub(crate) fn text(&self) -> String {
        self.segments
            .iter()
            .flat_map(|segment| segment.glyphs.iter().map(|glyph| glyph.character))
            .collect()
    }
}

/// A horizontal line from `x1` to `x2` at height `y`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Rule {
    /// Left end.
    pub(crate) x1: f64,
    /// Right end.
    pub(crate) x2: f64,
    /// Height.
    pub(crate) y: f64,
}

/// Everything drawn on one page.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Page {
    /// Title, paragraph and footer lines.
    pub(crate) runs: Vec<Run>,
    /// The rule that separates the footer from the body.
    pub(crate) rule: Rule,
}

/// A line of words after wrapping.
#[derive(Clone, Debug, Default, PartialEq)]
struct Line {
    /// The words, without the spaces between them.
    words: Vec<Vec<Glyph>>,
    /// True if the line was broken because the next word did not fit (so it may be justified);
    /// false for the last line of a paragraph or a line the text itself ends.
    soft_break: bool,
}

impl Line {
    /// Natural width in thousandths of an em, one space between words.
    fn width(&self, space: Glyph) -> u32 {
        let words: u32 = self.words.iter().map(|word| font::width(word)).sum();
        let gaps = u32::try_from(self.words.len().saturating_sub(1)).unwrap_or(u32::MAX);
        words.saturating_add(gaps.saturating_mul(space.width))
    }
}

/// How the lines of a block sit between the margins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Align {
    /// Centred (the title).
    Center,
    /// Flush left and right, except a paragraph's last line, which is flush left.
    Justify,
}

/// Lines that are set alike: the title, or one paragraph.
struct Block {
    style: Style,
    align: Align,
    space_before: f64,
    lines: Vec<Line>,
}

/// Whether `character` separates words. No-break spaces do not.
fn is_break_space(character: char) -> bool {
    character.is_whitespace() && !matches!(character, '\n' | '\u{a0}' | '\u{2007}' | '\u{202f}')
}

/// Splits a word that is wider than `max_units` into pieces that each fit (at least one glyph
/// per piece, so a single glyph wider than the line still makes progress).
fn split_long_word(word: Vec<Glyph>, max_units: f64) -> Vec<Vec<Glyph>> {
    if f64::from(font::width(&word)) <= max_units {
        return vec![word];
    }
    let mut pieces = Vec::new();
    let mut piece: Vec<Glyph> = Vec::new();
    let mut piece_width = 0u32;
    for glyph in word {
        if !piece.is_empty() && f64::from(piece_width.saturating_add(glyph.width)) > max_units {
            pieces.push(std::mem::take(&mut piece));
            piece_width = 0;
        }
        piece_width = piece_width.saturating_add(glyph.width);
        piece.push(glyph);
    }
    if !piece.is_empty() {
        pieces.push(piece);
    }
    pieces
}

/// Word-wraps `text` into lines no wider than `max_units` thousandths of an em (greedy, first
/// fit). Runs of spaces collapse to one; a line break in the text ends a line; an empty text is
/// one empty line.
fn wrap(font: &Font, text: &str, max_units: f64) -> Result<Vec<Line>, Error> {
    let space = font.glyph(' ')?;
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines = Vec::new();
    for hard_line in text.split('\n') {
        let mut line = Line::default();
        let mut line_width = 0u32;
        for word in hard_line
            .split(is_break_space)
            .filter(|word| !word.is_empty())
        {
            for piece in split_long_word(font.glyphs(word)?, max_units) {
                let piece_width = font::width(&piece);
                let widened = line_width
                    .saturating_add(space.width)
                    .saturating_add(piece_width);
                if !line.words.is_empty() && f64::from(widened) > max_units {
                    let full = Line {
                        words: std::mem::take(&mut line.words),
                        soft_break: true,
                    };
                    lines.push(full);
                    line_width = piece_width;
                } else if line.words.is_empty() {
                    line_width = piece_width;
                } else {
                    line_width = widened;
                }
                line.words.push(piece);
            }
        }
        lines.push(line);
    }
    Ok(lines)
}

/// Places one line with its left end at `x`. With `justify_to` set (in thousandths of an em),
/// the inter-word spaces are widened so that the line ends exactly there.
fn run(
    line: &Line,
    style: Style,
    space: Glyph,
    x: f64,
    y: f64,
    justify_to: Option<f64>,
) -> Option<Run> {
    if line.words.is_empty() {
        return None;
    }
    let gaps = line.words.len().saturating_sub(1);
    let extra = match justify_to {
        Some(target) if gaps > 0 => {
            let stretch = (target - f64::from(line.width(space))) / gaps as f64;
            if stretch > 0.0 && stretch <= MAX_STRETCH_IN_SPACES * f64::from(space.width) {
                stretch
            } else {
                0.0
            }
        }
        _ => 0.0,
    };
    let last = gaps;
    let segments = line
        .words
        .iter()
        .enumerate()
        .map(|(index, word)| {
            let mut glyphs = word.clone();
            if index < last {
                glyphs.push(space);
                Segment { glyphs, extra }
            } else {
                Segment { glyphs, extra: 0.0 }
            }
        })
        .collect();
    Some(Run {
        x,
        y,
        style,
        segments,
    })
}

/// Where the baseline of a line sits, given the top of its line box: the leading is split
/// evenly above the ascender and below the descender.
fn baseline(top: f64, style: Style, metrics: &Metrics) -> f64 {
    let ascent = f64::from(metrics.ascent) * style.size / 1000.0;
    let depth = f64::from(-metrics.descent) * style.size / 1000.0;
    let half_leading = (style.line_height() - ascent - depth) / 2.0;
    top - half_leading - ascent
}

/// Flows the blocks onto pages between `top` and `bottom`. A paragraph does not leave its first
/// line alone at the bottom of a page (orphan), nor, when it has four lines or more, its last
/// line alone at the top of the next (widow).
fn paginate(
    blocks: &[Block],
    metrics: &Metrics,
    space: Glyph,
    top: f64,
    bottom: f64,
) -> Vec<Vec<Run>> {
    let mut pages = Vec::new();
    let mut page: Vec<Run> = Vec::new();
    let mut page_has_lines = false;
    let mut y = top;
    for block in blocks {
        let count = block.lines.len();
        let line_height = block.style.line_height();
        let max_units = block.style.units(CONTENT_WIDTH);
        for (index, line) in block.lines.iter().enumerate() {
            let keep_together = if index == 0 {
                count.min(2)
            } else if count >= 4 && index == count - 2 {
                2
            } else {
                1
            };
            let mut before = if index == 0 && page_has_lines {
                block.space_before
            } else {
                0.0
            };
            let needed = before + keep_together as f64 * line_height;
            if page_has_lines && y - needed < bottom - EPSILON {
                pages.push(std::mem::take(&mut page));
                y = top;
                before = 0.0;
            }
            y -= before;
            let base = baseline(y, block.style, metrics);
            let placed = match block.align {
                Align::Center => {
                    let width = block.style.points(line.width(space));
                    let x = MARGIN + ((CONTENT_WIDTH - width) / 2.0).max(0.0);
                    run(line, block.style, space, x, base, None)
                }
                Align::Justify => {
                    let justify_to = line.soft_break.then_some(max_units);
                    run(line, block.style, space, MARGIN, base, justify_to)
                }
            };
            page.extend(placed);
            page_has_lines = true;
            y -= line_height;
        }
    }
    pages.push(page);
    pages
}

/// The number of decimal digits in `number`.
fn decimal_digits(number: usize) -> u32 {
    number.checked_ilog10().unwrap_or(0) + 1
}

/// The largest number with `digits` decimal digits (saturating).
fn largest_with_digits(digits: u32) -> usize {
    10usize
        .checked_pow(digits)
        .map_or(usize::MAX, |power| power - 1)
}

/// Lays out the whole document.
///
/// 1. Wrap the title and the paragraphs to the text width; this does not depend on the footer.
/// 2. Wrap the footer into the width the page number leaves free. The page number's width
///    depends on the page count, which depends on how much height the footer takes, so start
///    by assuming a one-digit count and redo steps 2–3 with more digits if the count needs
///    them (the width only shrinks, so this ends within a few rounds).
/// 3. Flow the lines onto pages above the footer.
/// 4. Add the footer, the page numbers and the rule to each page.
pub(crate) fn document(
    font: &Font,
    title: &str,
    paragraphs: &[String],
    footer: &str,
) -> Result<Vec<Page>, Error> {
    let metrics = font.metrics();
    let space = font.glyph(' ')?;

    // 1.
    let mut blocks = Vec::with_capacity(paragraphs.len().saturating_add(1));
    if !title.trim().is_empty() {
        let lines = wrap(font, title.trim(), TITLE.units(CONTENT_WIDTH))?;
        blocks.push(Block {
            style: TITLE,
            align: Align::Center,
            space_before: 0.0,
            lines,
        });
    }
    for (index, paragraph) in paragraphs.iter().enumerate() {
        let space_before = if index == 0 {
            SPACE_AFTER_TITLE
        } else {
            SPACE_BETWEEN_PARAGRAPHS
        };
        let lines = wrap(font, paragraph, BODY.units(CONTENT_WIDTH))?;
        blocks.push(Block {
            style: BODY,
            align: Align::Justify,
            space_before,
            lines,
        });
    }

    let ascent = f64::from(metrics.ascent) * FOOTER.size / 1000.0;
    let depth = f64::from(-metrics.descent) * FOOTER.size / 1000.0;
    let top = PAGE_HEIGHT - MARGIN;
    let mut digits = 1;
    loop {
        // 2.
        let widest = largest_with_digits(digits);
        let widest_label = FOOTER.points(font::width(&font.glyphs(&page_label(widest, widest))?));
        let footer_width = CONTENT_WIDTH - widest_label - LABEL_GAP;
        if footer_width <= 0.0 {
            return Err(Error::FooterTooLong);
        }
        let footer_lines = wrap(font, footer.trim(), FOOTER.units(footer_width))?;
        let footer_count = footer_lines.len().max(1);
        let footer_height = (footer_count - 1) as f64 * FOOTER.line_height() + ascent + depth;
        let rule_y = MARGIN + footer_height + RULE_GAP;
        let bottom = rule_y + RULE_GAP;
        if top - bottom < TITLE.line_height().max(BODY.line_height()) {
            return Err(Error::FooterTooLong);
        }

        // 3.
        let flowed = paginate(&blocks, &metrics, space, top, bottom);
        let page_count = flowed.len();
        if decimal_digits(page_count) > digits {
            digits = decimal_digits(page_count);
            continue;
        }

        // 4.
        let rule = Rule {
            x1: MARGIN,
            x2: PAGE_WIDTH - MARGIN,
            y: rule_y,
        };
        let mut pages = Vec::with_capacity(page_count);
        for (index, mut runs) in flowed.into_iter().enumerate() {
            for (line_index, line) in footer_lines.iter().enumerate() {
                let y =
                    MARGIN + depth + (footer_count - 1 - line_index) as f64 * FOOTER.line_height();
                runs.extend(run(line, FOOTER, space, MARGIN, y, None));
            }
            let label = font.glyphs(&page_label(index + 1, page_count))?;
            let label_x = PAGE_WIDTH - MARGIN - FOOTER.points(font::width(&label));
            let label_y = MARGIN + depth + (footer_count - 1) as f64 * FOOTER.line_height();
            let segments = vec![Segment {
                glyphs: label,
                extra: 0.0,
            }];
            runs.push(Run {
                x: label_x,
                y: label_y,
                style: FOOTER,
                segments,
            });
            pages.push(Page { runs, rule });
        }
        return Ok(pages);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn font() -> Font {
        Font::embedded().unwrap()
    }

    fn words(count: usize) -> String {
        (0..count)
            .map(|i| format!("реч{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn a4_with_two_centimetre_margins() {
        assert!((PAGE_WIDTH - 595.276).abs() < 0.001);
        assert!((PAGE_HEIGHT - 841.89).abs() < 0.001);
        assert!((MARGIN - 56.693).abs() < 0.001);
    }

    #[test]
    fn wrap_breaks_between_words_and_fills_lines() {
        let font = font();
        let space = font.glyph(' ').unwrap();
        let max = BODY.units(CONTENT_WIDTH);
        let lines = wrap(&font, &words(200), max).unwrap();
        assert!(lines.len() > 5);
        for (index, line) in lines.iter().enumerate() {
            assert!(f64::from(line.width(space)) <= max, "line {index} too wide");
            // Greedy: the next line's first word would not have fitted on this one.
            if let Some(next) = lines.get(index + 1) {
                let with_next = line.width(space) + space.width + font::width(&next.words[0]);
                assert!(
                    f64::from(with_next) > max,
                    "line {index} could have taken another word"
                );
            }
        }
        assert!(lines[..lines.len() - 1].iter().all(|line| line.soft_break));
        assert!(!lines.last().unwrap().soft_break);
        let rejoined: Vec<String> = lines
            .iter()
            .flat_map(|l| {
                l.words
                    .iter()
                    .map(|w| w.iter().map(|g| g.character).collect())
            })
            .collect();
        assert_eq!(rejoined.join(" "), words(200));
    }

    #[test]
    fn wrap_uses_real_advance_widths() {
        // "Ш" is about twice as wide as "і": a line holds far fewer of the former.
        let font = font();
        let max = BODY.units(CONTENT_WIDTH);
        let wide = wrap(&font, &vec!["ШШШШ"; 100].join(" "), max).unwrap();
        let narrow = wrap(&font, &vec!["іііі"; 100].join(" "), max).unwrap();
        assert!(
            wide.len() > 2 * narrow.len(),
            "{} vs {}",
            wide.len(),
            narrow.len()
        );
    }

    #[test]
    fn wrap_keeps_hard_breaks_and_no_break_spaces_and_splits_overlong_words() {
        let font = font();
        let max = BODY.units(CONTENT_WIDTH);
        let lines = wrap(&font, "први ред\r\nдруги\u{a0}ред\n\nчетврти", max).unwrap();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].words.len(), 2);
        assert_eq!(lines[1].words.len(), 1);
        assert!(lines[2].words.is_empty());
        assert!(lines.iter().all(|line| !line.soft_break));

        let long = "Ж".repeat(200);
        let lines = wrap(&font, &long, max).unwrap();
        assert!(lines.len() >= 3);
        assert!(lines
            .iter()
            .all(|line| f64::from(font::width(&line.words[0])) <= max));
        assert_eq!(
            lines.iter().map(|line| line.words[0].len()).sum::<usize>(),
            200
        );
    }

    #[test]
    fn wrap_refuses_characters_the_font_lacks() {
        assert!(matches!(
            wrap(&font(), "уговор 中", 1000.0),
            Err(Error::UnsupportedCharacter { character: '中' })
        ));
    }

    #[test]
    fn everything_stays_inside_the_margins_and_justified_lines_reach_the_right_margin() {
        let paragraphs: Vec<String> = (0..30).map(|i| words(40 + i)).collect();
        let pages = document(&font(), &words(30), &paragraphs, &words(50)).unwrap();
        assert!(pages.len() > 2);
        let mut justified = 0;
        for page in &pages {
            for run in &page.runs {
                let right = run.x + run.width();
                assert!(
                    run.x >= MARGIN - EPSILON,
                    "{} starts left of the margin",
                    run.text()
                );
                assert!(
                    right <= PAGE_WIDTH - MARGIN + 0.01,
                    "{} ends right of the margin",
                    run.text()
                );
                assert!(
                    run.y >= MARGIN && run.y <= PAGE_HEIGHT - MARGIN,
                    "{} outside vertically",
                    run.text()
                );
                if run.style == BODY
                    && (right - (PAGE_WIDTH - MARGIN)).abs() < 0.01
                    && run.segments.len() > 1
                {
                    justified += 1;
                }
            }
        }
        assert!(justified > 50);
    }

    #[test]
    fn title_is_larger_bold_and_centred_on_the_first_page_only() {
        let pages = document(&font(), "УГОВОР", &[words(2000)], "").unwrap();
        let title: Vec<&Run> = pages[0]
            .runs
            .iter()
            .filter(|run| run.style == TITLE)
            .collect();
        assert_eq!(title.len(), 1);
        assert!(title[0].style.bold && title[0].style.size > BODY.size);
        let middle = title[0].x + title[0].width() / 2.0;
        assert!((middle - PAGE_WIDTH / 2.0).abs() < 0.01);
        assert!(pages[1..]
            .iter()
            .all(|page| page.runs.iter().all(|run| run.style != TITLE)));
    }

    #[test]
    fn every_page_has_its_number_and_the_footer() {
        let pages = document(&font(), "Наслов", &[words(3000)], "Уговор бр. 42").unwrap();
        let count = pages.len();
        assert!(count > 3);
        for (index, page) in pages.iter().enumerate() {
            let texts: Vec<String> = page
                .runs
                .iter()
                .filter(|r| r.style == FOOTER)
                .map(Run::text)
                .collect();
            assert_eq!(
                texts,
                vec![
                    "Уговор бр. 42".to_string(),
                    format!("страна {} од {count}", index + 1)
                ]
            );
            // Footer and label share a line; body text stays above the rule.
            let footer: Vec<&Run> = page.runs.iter().filter(|r| r.style == FOOTER).collect();
            assert_eq!(footer[0].y, footer[1].y);
            assert!(page
                .runs
                .iter()
                .filter(|r| r.style == BODY)
                .all(|r| r.y > page.rule.y + BODY.size * 0.2));
        }
    }

    #[test]
    fn page_count_with_two_digits_and_a_long_footer() {
        let footer = words(120);
        let pages = document(&font(), "Наслов", &[words(12000)], &footer).unwrap();
        assert!(pages.len() >= 10, "{} pages", pages.len());
        let last = pages.last().unwrap();
        let label = last.runs.last().unwrap();
        assert_eq!(label.text(), format!("страна {0} од {0}", pages.len()));
        assert!(label.x + label.width() <= PAGE_WIDTH - MARGIN + EPSILON);
        // The wrapped footer lines must not run into the page number.
        for run in last
            .runs
            .iter()
            .filter(|r| r.style == FOOTER && r.y == label.y && r.x < label.x)
        {
            assert!(run.x + run.width() < label.x);
        }
    }

    #[test]
    fn a_footer_that_leaves_no_room_is_refused() {
        assert!(matches!(
            document(&font(), "", &[], &words(20000)),
            Err(Error::FooterTooLong)
        ));
    }

    #[test]
    fn empty_input_makes_one_page_with_its_number() {
        let pages = document(&font(), "", &[], "").unwrap();
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0].runs.len(), 1);
        assert_eq!(pages[0].runs[0].text(), "страна 1 од 1");
    }

    fn block(lines: usize, space_before: f64) -> Block {
        let glyph = font().glyph('А').unwrap();
        let lines = (0..lines)
            .map(|_| Line {
                words: vec![vec![glyph]],
                soft_break: false,
            })
            .collect();
        Block {
            style: BODY,
            align: Align::Justify,
            space_before,
            lines,
        }
    }

    fn runs_per_page(blocks: &[Block]) -> Vec<usize> {
        // Room for six body lines (6 × 15.4 = 92.4 points) and not seven.
        let font = font();
        let pages = paginate(
            blocks,
            &font.metrics(),
            font.glyph(' ').unwrap(),
            100.0,
            0.0,
        );
        pages.iter().map(Vec::len).collect()
    }

    #[test]
    fn a_paragraph_does_not_leave_its_first_line_at_the_bottom_of_a_page() {
        // After five lines, 23 points are left: room for the gap and one line, not two.
        assert_eq!(
            runs_per_page(&[block(5, 0.0), block(3, SPACE_BETWEEN_PARAGRAPHS)]),
            vec![5, 3]
        );
        // A one-line paragraph may take that place.
        assert_eq!(
            runs_per_page(&[block(5, 0.0), block(1, SPACE_BETWEEN_PARAGRAPHS)]),
            vec![6]
        );
    }

    #[test]
    fn a_paragraph_does_not_leave_its_last_line_alone_at_the_top_of_a_page() {
        assert_eq!(runs_per_page(&[block(7, 0.0)]), vec![5, 2]);
        assert_eq!(runs_per_page(&[block(8, 0.0)]), vec![6, 2]);
        assert_eq!(runs_per_page(&[block(13, 0.0)]), vec![6, 5, 2]);
    }
}
