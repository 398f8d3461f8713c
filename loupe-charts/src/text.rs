//! The one font every chart is drawn with, its advances for laying text
//! out, and text made safe to put in XML.
//!
//! Widths are measured with the same font file that the PNG renderer
//! shapes with, so labels placed here do not overlap there. Kerning is left
//! out of the measure: it changes a label's width by a pixel or two, which
//! the gaps around labels absorb.

use std::collections::HashMap;
use std::sync::LazyLock;

use skrifa::instance::{LocationRef, Size};
use skrifa::{FontRef, MetadataProvider};

/// DejaVu Sans, shipped in the crate (license in `fonts/LICENSE-DejaVu.txt`).
pub(crate) static FONT: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

/// The family name inside [`FONT`].
pub(crate) const FAMILY: &str = "DejaVu Sans";

/// What an SVG names as its font: the shipped one first; Verdana has nearly
/// the same metrics for browsers that show the SVG without DejaVu Sans.
pub(crate) const FONT_STACK: &str = "DejaVu Sans, Verdana, sans-serif";

/// Advances at a font size of 1 px, by character.
struct Advances {
    by_char: HashMap<char, f32>,
    /// The advance of a character the font lacks (drawn as its box).
    missing: f32,
}

static ADVANCES: LazyLock<Advances> = LazyLock::new(|| {
    let mut by_char = HashMap::new();
    let mut missing = 0.6;
    if let Ok(font) = FontRef::new(FONT) {
        let metrics = font.glyph_metrics(Size::new(1.0), LocationRef::default());
        for (code, glyph) in font.charmap().mappings() {
            if let (Some(c), Some(advance)) = (char::from_u32(code), metrics.advance_width(glyph)) {
                by_char.insert(c, advance);
            }
        }
        if let Some(advance) = metrics.advance_width(skrifa::GlyphId::NOTDEF) {
            missing = advance;
        }
    }
    Advances { by_char, missing }
});

/// The width of `text` drawn at `size` px.
pub(crate) fn width(text: &str, size: f64) -> f64 {
    let advances = &*ADVANCES;
    let em: f32 = text
        .chars()
        .map(|c| {
            advances
                .by_char
                .get(&c)
                .copied()
                .unwrap_or(advances.missing)
        })
        .sum();
    f64::from(em) * size
}

/// `text` cut to at most `max_width` px at `size`, ending in an ellipsis
/// when cut.
pub(crate) fn fit(text: &str, size: f64, max_width: f64) -> String {
    if width(text, size) <= max_width {
        return text.to_owned();
    }
    let ellipsis = width("…", size);
    let mut out = String::new();
    let mut used = 0.0;
    for c in text.chars() {
        let w = width(c.encode_utf8(&mut [0; 4]), size);
        if used + w + ellipsis > max_width {
            break;
        }
        used += w;
        out.push(c);
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push('…');
    out
}

/// One line of text as users gave it, with line breaks and tabs made spaces
/// and other characters XML cannot hold replaced, so a label measures as it
/// will be drawn.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => ' ',
            c if is_xml_char(c) => c,
            _ => char::REPLACEMENT_CHARACTER,
        })
        .collect()
}

/// Whether XML 1.0 allows `c` in a document.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// `text` escaped for XML content or a quoted attribute, with characters
/// XML cannot hold replaced by U+FFFD.
pub(crate) fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Kept as character references: a raw newline in an attribute
            // would be read back as a space.
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if is_xml_char(c) => out.push(c),
            _ => out.push(char::REPLACEMENT_CHARACTER),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_font_measures_text() {
        let narrow = width("iiii", 12.0);
        let wide = width("WWWW", 12.0);
        assert!(narrow > 5.0 && narrow < wide, "{narrow} {wide}");
        assert!((width("ab", 24.0) - 2.0 * width("ab", 12.0)).abs() < 1e-9);
    }

    #[test]
    fn fit_cuts_with_an_ellipsis_within_the_width() {
        let long = "a very long category label that will not fit";
        let cut = fit(long, 12.0, 80.0);
        assert!(cut.ends_with('…'));
        assert!(width(&cut, 12.0) <= 80.0);
        assert_eq!(fit("short", 12.0, 80.0), "short");
    }

    #[test]
    fn escape_makes_markup_and_control_characters_safe() {
        let mut out = String::new();
        escape("<script>&\"'\u{0}\n", &mut out);
        assert_eq!(out, "&lt;script&gt;&amp;&quot;&apos;\u{FFFD}&#10;");
        assert_eq!(one_line("a\nb\u{1}"), "a b\u{FFFD}");
    }
}
