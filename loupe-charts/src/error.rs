//! The one error type of the crate: what was wrong with the options, the
//! result's columns or the size, and what to change.

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChartError {
    /// The visualization type is not one the crate draws.
    #[error(
        "unknown visualization type {kind:?}; expected one of: table, line, bar, area, scatter, pie, counter, pivot"
    )]
    UnknownType {
        /// The type as given.
        kind: String,
    },
    /// The options do not fit the type.
    #[error("{field}: {message}")]
    InvalidOptions {
        /// Where in the options: `options`, `options.y`, `options.y[0]`.
        field: String,
        /// What was wrong.
        message: String,
    },
    /// An option names a column the result does not have.
    #[error(
        "column {column:?} named in {field} is not in the result; its columns are: {}",
        list_columns(available)
    )]
    MissingColumn {
        /// The option that names it, as `options.x`.
        field: String,
        /// The column as named.
        column: String,
        /// The result's columns.
        available: Vec<String>,
    },
    /// An option that needs numbers (or dates) names a column of another type.
    #[error(
        "column {column:?} named in {field} is {data_type}, not {expected}; name a {expected} column there"
    )]
    NotNumeric {
        /// The option that names it, as `options.y[0]`.
        field: String,
        /// The column.
        column: String,
        /// Its Arrow type.
        data_type: String,
        /// What the option needs: `numeric`, or `numeric or date`.
        expected: &'static str,
    },
    /// The image size is outside the limits.
    #[error(
        "chart size {width}x{height} is out of range; width and height must be between {min} and {max} pixels",
        min = crate::Size::MIN,
        max = crate::Size::MAX
    )]
    SizeOutOfRange {
        /// The width asked for.
        width: u32,
        /// The height asked for.
        height: u32,
    },
    /// A value of a column could not be converted for drawing.
    #[error("could not read column {column:?}: {source}")]
    Arrow {
        /// The column.
        column: String,
        /// Arrow's error.
        #[source]
        source: arrow::error::ArrowError,
    },
    /// The SVG given to [`svg_to_png`](crate::svg_to_png) could not be read.
    #[error("the SVG could not be read: {source}")]
    Svg {
        /// The parser's error.
        #[source]
        source: resvg::usvg::Error,
    },
    /// The PNG could not be made.
    #[error("the PNG could not be made: {message}")]
    Png {
        /// What failed.
        message: String,
    },
}

/// The crate's result type.
pub type Result<T, E = ChartError> = std::result::Result<T, E>;

/// At most 30 names, then how many more: a result can have thousands.
fn list_columns(names: &[String]) -> String {
    const SHOWN: usize = 30;
    if names.is_empty() {
        return "none".to_owned();
    }
    let mut out = names
        .iter()
        .take(SHOWN)
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        out.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    out
}
