//! Drawing a chart as SVG: the page every type shares (background, title,
//! legend, notes, the "No rows" state) and [`render_svg`], which hands the
//! body to the type's module.
//!
//! The markup is meant to be read by tests and tools as well as drawn:
//! each part carries a class (`title`, `legend`, `series`, `bar`, `point`,
//! `slice`, `tick`, `note`, `cell`) and the data behind it as `data-*`
//! attributes.

mod axes;
mod counter;
mod pie;
mod scatter;
mod series;
mod table;

use arrow::array::RecordBatch;

pub(crate) use pie::MAX_SLICES;
pub(crate) use series::{MAX_BARS, MAX_SERIES};

use crate::data::Rows;
use crate::error::{ChartError, Result};
use crate::format;
use crate::options::Chart;
use crate::svg::Doc;
use crate::text::{self, FONT_STACK};

/// Okabe and Ito's palette, told apart with every common colour-vision
/// deficiency; yellow and black last, as the weakest on white and the
/// heaviest.
pub(crate) const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
];

/// The colour of series `i`.
pub(crate) fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

pub(crate) const INK: &str = "#1F2328";
pub(crate) const MUTED: &str = "#57606A";
pub(crate) const FAINT: &str = "#6E7781";
pub(crate) const GRID: &str = "#E4E7EB";
pub(crate) const AXIS: &str = "#8C959F";

const TITLE_SIZE: f64 = 16.0;
const NOTE_SIZE: f64 = 11.0;
const LEGEND_SIZE: f64 = 12.0;
/// Space between the canvas's edge and anything drawn.
pub(crate) const PAD: f64 = 16.0;

/// The width and height of an image, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Size {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Size {
    /// The smallest width or height drawn.
    pub const MIN: u32 = 100;
    /// The largest width or height drawn (a 4000x4000 PNG is 64 MB of pixels).
    pub const MAX: u32 = 4000;
    /// The size used when none is asked for: 800x450.
    pub const DEFAULT: Size = Size {
        width: 800,
        height: 450,
    };

    /// A size, checked against the limits.
    ///
    /// # Errors
    /// [`ChartError::SizeOutOfRange`] when either side is outside
    /// [`Size::MIN`]..=[`Size::MAX`].
    pub fn new(width: u32, height: u32) -> Result<Size> {
        Size { width, height }.checked()
    }

    /// This size if it is within the limits.
    ///
    /// # Errors
    /// [`ChartError::SizeOutOfRange`] when either side is outside
    /// [`Size::MIN`]..=[`Size::MAX`].
    pub fn checked(self) -> Result<Size> {
        let ok = |v| (Self::MIN..=Self::MAX).contains(&v);
        if ok(self.width) && ok(self.height) {
            Ok(self)
        } else {
            Err(ChartError::SizeOutOfRange {
                width: self.width,
                height: self.height,
            })
        }
    }
}

impl Default for Size {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// An SVG document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Svg(String);

impl Svg {
    /// The markup.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The markup, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for Svg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What surrounds a chart: its title, its size, and whether the rows it is
/// given are the first of a longer result.
#[derive(Debug, Clone, Copy, Default)]
pub struct Frame<'a> {
    /// Drawn above the chart; usually the visualization's name.
    pub title: Option<&'a str>,
    /// The image's size.
    pub size: Size,
    /// The result has more rows than were given: the chart notes that it
    /// shows the first ones ("first 10,000 rows").
    pub more_rows: bool,
}

/// A rectangle on the canvas.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rect {
    pub(crate) x: f64,
    pub(crate) y: f64,
    pub(crate) w: f64,
    pub(crate) h: f64,
}

impl Rect {
    pub(crate) fn right(&self) -> f64 {
        self.x + self.w
    }

    pub(crate) fn bottom(&self) -> f64 {
        self.y + self.h
    }
}

/// A legend entry: a name and its colour.
#[derive(Debug, Clone)]
pub(crate) struct LegendEntry {
    pub(crate) name: String,
    pub(crate) color: &'static str,
    /// Extra text after the name, in a muted colour (a pie's share).
    pub(crate) detail: Option<String>,
}

/// The canvas a chart is drawn on, with the parts every type shares.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) doc: Doc,
    pub(crate) width: f64,
    pub(crate) height: f64,
    notes: Vec<String>,
    /// The top of what is left below the title (and legend).
    top: f64,
    rows: usize,
    more_rows: bool,
}

impl Page {
    fn new(kind: &str, frame: &Frame<'_>, rows: usize) -> Self {
        let width = f64::from(frame.size.width);
        let height = f64::from(frame.size.height);
        let mut doc = Doc::new();
        doc.el("svg")
            .attr("xmlns", "http://www.w3.org/2000/svg")
            .num("width", width)
            .num("height", height)
            .attr("viewBox", &format!("0 0 {width} {height}"))
            .attr("font-family", FONT_STACK)
            .attr("font-size", "12")
            .attr("class", "loupe-chart")
            .attr("data-type", kind)
            .open();
        doc.el("rect")
            .attr("class", "background")
            .num("width", width)
            .num("height", height)
            .attr("fill", "#FFFFFF")
            .close();
        let mut top = PAD;
        if let Some(title) = frame.title.map(text::one_line) {
            let title = title.trim();
            if !title.is_empty() {
                let fitted = text::fit(title, TITLE_SIZE, width - 2.0 * PAD);
                // One font, one weight: a hairline stroke in the fill's
                // colour sets the title a little heavier than the labels.
                doc.el("text")
                    .attr("class", "title")
                    .num("x", PAD)
                    .num("y", PAD + TITLE_SIZE * 0.8)
                    .num("font-size", TITLE_SIZE)
                    .attr("fill", INK)
                    .attr("stroke", INK)
                    .num("stroke-width", 0.4)
                    .text(&fitted);
                top += TITLE_SIZE + 12.0;
            }
        }
        Self {
            doc,
            width,
            height,
            notes: Vec::new(),
            top,
            rows,
            more_rows: frame.more_rows,
        }
    }

    /// Adds a note under the chart ("3 NULL values skipped"). Notes must
    /// all be added before [`Page::body`] is asked for.
    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// The note on rows cut off by the caller, for types that show fewer
    /// rows than they were given and say so themselves.
    pub(crate) fn take_more_rows(&mut self) -> bool {
        std::mem::take(&mut self.more_rows)
    }

    fn notes_height(&self) -> f64 {
        let lines = self.notes.len() + usize::from(self.more_rows);
        if lines == 0 {
            0.0
        } else {
            lines as f64 * (NOTE_SIZE + 5.0) + 4.0
        }
    }

    /// The space left for the chart itself: below the title and legend,
    /// above the notes, inside the padding.
    pub(crate) fn body(&self) -> Rect {
        let bottom = self.height - PAD - self.notes_height();
        Rect {
            x: PAD,
            y: self.top,
            w: (self.width - 2.0 * PAD).max(1.0),
            h: (bottom - self.top).max(1.0),
        }
    }

    /// Draws a legend across the top in as many rows as it needs (at
    /// most three), and moves the body below it.
    pub(crate) fn legend_top(&mut self, entries: &[LegendEntry]) {
        if entries.is_empty() {
            return;
        }
        let max_w = self.width - 2.0 * PAD;
        let row_h = LEGEND_SIZE + 8.0;
        let (mut x, mut y) = (PAD, self.top);
        let mut row = 0;
        self.doc.group("legend");
        for entry in entries {
            let name = text::fit(&text::one_line(&entry.name), LEGEND_SIZE, 180.0);
            let w = 16.0 + text::width(&name, LEGEND_SIZE) + 18.0;
            if x > PAD && x + w > PAD + max_w {
                row += 1;
                if row == 3 {
                    break;
                }
                x = PAD;
                y += row_h;
            }
            legend_entry(&mut self.doc, entry, &name, x, y, LEGEND_SIZE);
            x += w;
        }
        self.doc.end("g");
        self.top = y + row_h + 6.0;
    }

    /// Draws `message` in the middle of the body: the chart has nothing
    /// else to show.
    pub(crate) fn empty(&mut self, message: &str) {
        let body = self.body();
        self.doc
            .el("text")
            .attr("class", "empty")
            .num("x", body.x + body.w / 2.0)
            .num("y", body.y + body.h / 2.0)
            .attr("text-anchor", "middle")
            .num("font-size", 15.0)
            .attr("fill", FAINT)
            .text(message);
    }

    fn finish(mut self) -> Svg {
        let mut notes = std::mem::take(&mut self.notes);
        if self.more_rows {
            notes.push(format!(
                "Drawn from the first {} rows",
                format::fixed(self.rows as f64, 0, true)
            ));
        }
        let mut y = self.height - PAD - (notes.len().saturating_sub(1)) as f64 * (NOTE_SIZE + 5.0);
        for note in notes {
            let fitted = text::fit(&text::one_line(&note), NOTE_SIZE, self.width - 2.0 * PAD);
            self.doc
                .el("text")
                .attr("class", "note")
                .num("x", PAD)
                .num("y", y)
                .num("font-size", NOTE_SIZE)
                .attr("fill", FAINT)
                .text(&fitted);
            y += NOTE_SIZE + 5.0;
        }
        self.doc.end("svg");
        Svg(self.doc.finish())
    }
}

/// One legend entry at `(x, y)` (its top left): a swatch and the name.
pub(crate) fn legend_entry(
    doc: &mut Doc,
    entry: &LegendEntry,
    shown_name: &str,
    x: f64,
    y: f64,
    size: f64,
) {
    doc.el("g")
        .attr("class", "legend-entry")
        .attr("data-series", &entry.name)
        .open();
    doc.el("rect")
        .attr("class", "swatch")
        .num("x", x)
        .num("y", y + 1.0)
        .num("width", size - 1.0)
        .num("height", size - 1.0)
        .num("rx", 2.0)
        .attr("fill", entry.color)
        .close();
    doc.el("text")
        .attr("class", "legend-label")
        .num("x", x + size + 5.0)
        .num("y", y + size * 0.85)
        .num("font-size", size)
        .attr("fill", INK)
        .text(shown_name);
    if let Some(detail) = &entry.detail {
        doc.el("text")
            .attr("class", "legend-detail")
            .num("x", x + size + 5.0 + text::width(shown_name, size) + 8.0)
            .num("y", y + size * 0.85)
            .num("font-size", size)
            .attr("fill", MUTED)
            .text(detail);
    }
    doc.end("g");
}

/// "and 37 more", with the count grouped.
pub(crate) fn and_more(count: usize, what: &str) -> String {
    format!("and {} more {what}", format::fixed(count as f64, 0, true))
}

/// "3 NULL values skipped", with `one` or `many` as the count says.
pub(crate) fn nulls_note(count: usize, one: &str, many: &str) -> Option<String> {
    match count {
        0 => None,
        1 => Some(format!("1 {one} skipped")),
        n => Some(format!(
            "{} {many} skipped",
            format::fixed(n as f64, 0, true)
        )),
    }
}

/// Draws `chart` over `batches` as an SVG document.
///
/// The batches are the rows to draw, usually the first few thousand of a
/// stored result; [`Frame::more_rows`] says there were more. Rows whose
/// value is NULL (or NaN, or infinite) where a number is needed are
/// skipped and counted in a note; an empty result is drawn as "No rows".
///
/// # Errors
/// [`ChartError::SizeOutOfRange`] for a size outside the limits;
/// [`ChartError::InvalidOptions`] for options that break a rule of their
/// type; [`ChartError::MissingColumn`] for an option naming a column the
/// rows do not have (listing the ones they have);
/// [`ChartError::NotNumeric`] for an option that needs numbers naming a
/// text column.
pub fn render_svg(chart: &Chart, batches: &[RecordBatch], frame: &Frame<'_>) -> Result<Svg> {
    frame.size.checked()?;
    chart.check()?;
    let rows = Rows::new(batches);
    let mut page = Page::new(chart.kind(), frame, rows.len());
    match chart {
        Chart::Line(o) => series::draw(&mut page, &rows, o, series::Mark::Line)?,
        Chart::Bar(o) => series::draw(&mut page, &rows, o, series::Mark::Bar)?,
        Chart::Area(o) => series::draw(&mut page, &rows, o, series::Mark::Area)?,
        Chart::Scatter(o) => scatter::draw(&mut page, &rows, o)?,
        Chart::Pie(o) => pie::draw(&mut page, &rows, o)?,
        Chart::Counter(o) => counter::draw(&mut page, &rows, o)?,
        Chart::Table(o) => table::table(&mut page, &rows, o)?,
        Chart::Pivot(o) => table::pivot(&mut page, &rows, o)?,
    }
    Ok(page.finish())
}
