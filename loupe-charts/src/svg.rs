//! A small writer of SVG markup. Every attribute value and every text goes
//! through [`escape`], so names and values from a result cannot break out of
//! the document; coordinates are written finite, with two decimals at most.

use std::fmt::Write as _;

use crate::text::escape;

/// An SVG document being written.
#[derive(Debug, Default)]
pub(crate) struct Doc {
    buf: String,
}

impl Doc {
    /// An empty document.
    pub(crate) fn new() -> Self {
        Self {
            buf: String::with_capacity(16 * 1024),
        }
    }

    /// Starts element `tag`; give its attributes, then close or open it.
    pub(crate) fn el(&mut self, tag: &'static str) -> El<'_> {
        self.buf.push('<');
        self.buf.push_str(tag);
        El { doc: self, tag }
    }

    /// Ends an element started with [`El::open`].
    pub(crate) fn end(&mut self, tag: &'static str) {
        self.buf.push_str("</");
        self.buf.push_str(tag);
        self.buf.push('>');
    }

    /// Opens `<g class="...">`; end it with `end("g")`.
    pub(crate) fn group(&mut self, class: &str) {
        self.el("g").attr("class", class).open();
    }

    /// The markup written.
    pub(crate) fn finish(self) -> String {
        self.buf
    }
}

/// An element whose start tag is being written.
#[derive(Debug)]
pub(crate) struct El<'a> {
    doc: &'a mut Doc,
    tag: &'static str,
}

impl El<'_> {
    /// Adds attribute `name` with `value`, escaped.
    pub(crate) fn attr(self, name: &str, value: &str) -> Self {
        let buf = &mut self.doc.buf;
        buf.push(' ');
        buf.push_str(name);
        buf.push_str("=\"");
        escape(value, buf);
        buf.push('"');
        self
    }

    /// Adds a numeric attribute, as a coordinate.
    pub(crate) fn num(self, name: &str, value: f64) -> Self {
        let buf = &mut self.doc.buf;
        buf.push(' ');
        buf.push_str(name);
        buf.push_str("=\"");
        coord(buf, value);
        buf.push('"');
        self
    }

    /// Ends the element with no content: `<tag .../>`.
    pub(crate) fn close(self) {
        self.doc.buf.push_str("/>");
    }

    /// Ends the start tag; children follow, then [`Doc::end`].
    pub(crate) fn open(self) {
        self.doc.buf.push('>');
    }

    /// Gives the element `content` as escaped text and ends it.
    pub(crate) fn text(self, content: &str) {
        let buf = &mut self.doc.buf;
        buf.push('>');
        escape(content, buf);
        buf.push_str("</");
        buf.push_str(self.tag);
        buf.push('>');
    }
}

/// Writes `value` as a coordinate: finite, at most two decimals, no
/// trailing zeros. A value that is not finite (a degenerate scale) is 0.
pub(crate) fn coord(buf: &mut String, value: f64) {
    let value = if value.is_finite() {
        // Far outside any canvas, but finite and short.
        value.clamp(-1e7, 1e7)
    } else {
        0.0
    };
    let start = buf.len();
    let _ = write!(buf, "{value:.2}");
    while buf.ends_with('0') {
        buf.pop();
    }
    if buf.ends_with('.') {
        buf.pop();
    }
    if &buf[start..] == "-0" {
        buf.truncate(start);
        buf.push('0');
    }
}

/// Path data built from points.
#[derive(Debug, Default)]
pub(crate) struct PathData {
    d: String,
}

impl PathData {
    /// `M x y`.
    pub(crate) fn move_to(&mut self, x: f64, y: f64) {
        self.cmd('M', &[x, y]);
    }

    /// `L x y`.
    pub(crate) fn line_to(&mut self, x: f64, y: f64) {
        self.cmd('L', &[x, y]);
    }

    /// `A r r 0 large 1 x y`: a clockwise arc.
    pub(crate) fn arc_to(&mut self, r: f64, large: bool, x: f64, y: f64) {
        self.cmd('A', &[r, r, 0.0, f64::from(u8::from(large)), 1.0, x, y]);
    }

    /// `Z`.
    pub(crate) fn close(&mut self) {
        self.d.push('Z');
    }

    fn cmd(&mut self, c: char, args: &[f64]) {
        self.d.push(c);
        for (i, a) in args.iter().enumerate() {
            if i > 0 {
                self.d.push(' ');
            }
            coord(&mut self.d, *a);
        }
    }

    /// The `d` attribute's value.
    pub(crate) fn as_str(&self) -> &str {
        &self.d
    }

    /// Whether nothing was drawn.
    pub(crate) fn is_empty(&self) -> bool {
        self.d.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_are_short_and_finite() {
        let mut s = String::new();
        for v in [1.0, 1.256, -0.001, f64::NAN, f64::INFINITY, 1e300] {
            coord(&mut s, v);
            s.push(',');
        }
        assert_eq!(s, "1,1.26,0,0,0,10000000,");
    }

    #[test]
    fn attributes_and_text_are_escaped() {
        let mut doc = Doc::new();
        doc.el("text").attr("data-x", "\"><script>").text("<b>&");
        assert_eq!(
            doc.finish(),
            "<text data-x=\"&quot;&gt;&lt;script&gt;\">&lt;b&gt;&amp;</text>"
        );
    }
}
