//! Loupe's charts: a stored visualization of a result drawn as SVG, and
//! as PNG through resvg.
//!
//! A visualization is a type (`table`, `line`, `bar`, `area`, `scatter`,
//! `pie`, `counter`, `pivot`) and JSON options; [`Chart`] reads them with
//! the same fields and defaults the application stores. [`render_svg`]
//! draws a chart over Arrow record batches (usually the first few thousand
//! rows of a stored result), [`svg_to_png`] rasterizes it. Text is set in
//! DejaVu Sans, shipped in the crate: output does not depend on the fonts
//! of the machine.
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{Int64Array, RecordBatch, StringArray};
//! use arrow::datatypes::{DataType, Field, Schema};
//! use loupe_charts::{Chart, Frame, Size, render_svg, svg_to_png};
//!
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("country", DataType::Utf8, false),
//!     Field::new("orders", DataType::Int64, false),
//! ]));
//! let batch = RecordBatch::try_new(schema, vec![
//!     Arc::new(StringArray::from(vec!["DE", "FR", "NL"])),
//!     Arc::new(Int64Array::from(vec![120, 95, 40])),
//! ])?;
//! let options = serde_json::json!({"x": "country", "y": ["orders"]});
//! let chart = Chart::from_type_and_options("bar", &options)?;
//! let frame = Frame { title: Some("Orders by country"), ..Frame::default() };
//! let svg = render_svg(&chart, &[batch], &frame)?;
//! assert_eq!(svg.as_str().matches(r#"class="bar""#).count(), 3);
//! let png = svg_to_png(svg.as_str(), Size::DEFAULT)?;
//! assert!(png.starts_with(b"\x89PNG"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod data;
mod error;
mod format;
mod options;
mod png;
mod render;
mod scale;
mod svg;
mod text;

pub use arrow::array::RecordBatch;
pub use error::{ChartError, Result};
pub use format::NumberFormat;
pub use options::{
    Aggregation, Chart, CounterOptions, PieOptions, PivotOptions, ScatterOptions, SeriesOptions,
    TableOptions,
};
pub use png::{render_png, svg_to_png};
pub use render::{Frame, Size, Svg, render_svg};

/// The most categories a bar chart draws; the rest are counted in a note.
pub const MAX_BARS: usize = render::MAX_BARS;
/// The most slices a pie draws, "Other" included.
pub const MAX_SLICES: usize = render::MAX_SLICES;
/// The most series a line, bar, area or scatter chart draws.
pub const MAX_SERIES: usize = render::MAX_SERIES;
