//! The options of each visualization type, as stored with a visualization,
//! and [`Chart`], a type with its options read and checked.
//!
//! The JSON fields and defaults are the ones the application stores;
//! unknown keys are refused, so a misspelt option is an error rather than a
//! silently different chart.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{ChartError, Result};

/// Options of a table: which columns, how many rows a page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableOptions {
    /// The columns to show, in order; empty shows all of them.
    #[serde(default)]
    pub columns: Vec<String>,
    /// Rows per page (1 to 1000). An image shows at most this many rows.
    #[serde(default)]
    pub page_size: Option<u32>,
}

/// Options of a line, bar or area chart.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesOptions {
    /// The column along the x axis.
    pub x: String,
    /// The numeric columns drawn, one series each (at least one).
    pub y: Vec<String>,
    /// A column whose values split the rows into series.
    #[serde(default)]
    pub series: Option<String>,
    /// Stack the series (bars and areas; lines are not stacked).
    #[serde(default)]
    pub stacked: bool,
    /// The x axis's title; the x column's name by default, none when empty.
    #[serde(default)]
    pub x_label: Option<String>,
    /// The y axis's title; the y column's name by default when there is one,
    /// none when empty.
    #[serde(default)]
    pub y_label: Option<String>,
}

/// Options of a scatter chart.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScatterOptions {
    /// The numeric or date column along the x axis.
    pub x: String,
    /// The numeric column along the y axis.
    pub y: String,
    /// A numeric column that sets each point's size.
    #[serde(default)]
    pub size: Option<String>,
    /// A column whose values split the points into series.
    #[serde(default)]
    pub series: Option<String>,
}

/// Options of a pie chart.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PieOptions {
    /// The column that names the slices.
    pub label: String,
    /// The numeric column of the slices' sizes.
    pub value: String,
}

/// Options of a counter: one big number from the first row.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterOptions {
    /// The column whose first value is shown.
    pub value: String,
    /// A numeric column whose first value the value is compared with.
    #[serde(default)]
    pub target: Option<String>,
    /// Text under the number; the value column's name by default.
    #[serde(default)]
    pub label: Option<String>,
    /// How the number is written: `0,0.00`, `0.0%`, `$0,0`, `0.0a ms`
    /// (see [`NumberFormat`](crate::NumberFormat)).
    #[serde(default)]
    pub format: Option<String>,
}

/// How a pivot table combines the values that fall in one cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// The sum.
    Sum,
    /// How many values are not NULL.
    Count,
    /// The mean.
    Avg,
    /// The least.
    Min,
    /// The greatest.
    Max,
}

impl Aggregation {
    /// The name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sum => "sum",
            Self::Count => "count",
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
        }
    }
}

/// Options of a pivot table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PivotOptions {
    /// The columns whose values make the rows (at least one).
    pub rows: Vec<String>,
    /// The columns whose values make the column headers.
    #[serde(default)]
    pub columns: Vec<String>,
    /// The columns aggregated in the cells (at least one).
    pub values: Vec<String>,
    /// How the values in a cell are combined.
    pub aggregation: Aggregation,
}

/// A visualization type with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chart {
    /// The first rows as a grid.
    Table(TableOptions),
    /// Lines over an x axis.
    Line(SeriesOptions),
    /// Vertical bars, grouped or stacked.
    Bar(SeriesOptions),
    /// Filled areas, stacked or overlaid.
    Area(SeriesOptions),
    /// Points.
    Scatter(ScatterOptions),
    /// Slices of a whole.
    Pie(PieOptions),
    /// One big number.
    Counter(CounterOptions),
    /// A table of aggregated values.
    Pivot(PivotOptions),
}

impl Chart {
    /// The type names, as stored.
    pub const KINDS: [&'static str; 8] = [
        "table", "line", "bar", "area", "scatter", "pie", "counter", "pivot",
    ];

    /// Reads a stored visualization: its type name and its options object.
    ///
    /// # Errors
    /// [`ChartError::UnknownType`] for a type not in [`Chart::KINDS`];
    /// [`ChartError::InvalidOptions`] naming the field, for options that are
    /// not an object, lack a required field, hold an unknown one or a value
    /// of the wrong shape, and for a stacked line or an empty `y`, `rows` or
    /// `values`.
    pub fn from_type_and_options(kind: &str, options: &serde_json::Value) -> Result<Chart> {
        if !Self::KINDS.contains(&kind) {
            return Err(ChartError::UnknownType {
                kind: kind.to_owned(),
            });
        }
        if !options.is_object() {
            return Err(invalid("options", "options must be an object"));
        }
        let chart = match kind {
            "table" => Chart::Table(parse(options)?),
            "line" => Chart::Line(parse(options)?),
            "bar" => Chart::Bar(parse(options)?),
            "area" => Chart::Area(parse(options)?),
            "scatter" => Chart::Scatter(parse(options)?),
            "pie" => Chart::Pie(parse(options)?),
            "counter" => Chart::Counter(parse(options)?),
            _ => Chart::Pivot(parse(options)?),
        };
        chart.check()?;
        Ok(chart)
    }

    /// The type's name, as stored.
    pub fn kind(&self) -> &'static str {
        match self {
            Chart::Table(_) => "table",
            Chart::Line(_) => "line",
            Chart::Bar(_) => "bar",
            Chart::Area(_) => "area",
            Chart::Scatter(_) => "scatter",
            Chart::Pie(_) => "pie",
            Chart::Counter(_) => "counter",
            Chart::Pivot(_) => "pivot",
        }
    }

    /// The rules the options' shape cannot say, as the application checks
    /// them when a visualization is saved.
    pub(crate) fn check(&self) -> Result<()> {
        match self {
            Chart::Line(o) | Chart::Bar(o) | Chart::Area(o) => {
                if o.y.is_empty() {
                    return Err(invalid("options.y", "name at least one column in y"));
                }
                if o.stacked && matches!(self, Chart::Line(_)) {
                    return Err(invalid(
                        "options.stacked",
                        "lines are not stacked; use an area chart",
                    ));
                }
            }
            Chart::Pivot(o) => {
                if o.rows.is_empty() {
                    return Err(invalid("options.rows", "name at least one column in rows"));
                }
                if o.values.is_empty() {
                    return Err(invalid(
                        "options.values",
                        "name at least one column in values",
                    ));
                }
            }
            Chart::Counter(o) => {
                if let Some(format) = &o.format {
                    crate::format::NumberFormat::parse(format)?;
                }
            }
            Chart::Table(_) | Chart::Scatter(_) | Chart::Pie(_) => {}
        }
        Ok(())
    }
}

fn invalid(field: &str, message: &str) -> ChartError {
    ChartError::InvalidOptions {
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

/// Reads options of type `T`, naming the field at fault as
/// `options.<path>`.
fn parse<T: DeserializeOwned>(options: &serde_json::Value) -> Result<T> {
    serde_path_to_error::deserialize::<_, T>(options).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "options".to_owned()
        } else {
            format!("options.{path}")
        };
        ChartError::InvalidOptions {
            field,
            message: e.into_inner().to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(kind: &str, options: serde_json::Value) -> String {
        match Chart::from_type_and_options(kind, &options) {
            Err(ChartError::InvalidOptions { field, .. }) => field,
            other => panic!("expected invalid options, got {other:?}"),
        }
    }

    #[test]
    fn options_read_with_their_defaults() {
        let chart = Chart::from_type_and_options("bar", &json!({"x": "day", "y": ["n"]})).unwrap();
        assert_eq!(
            chart,
            Chart::Bar(SeriesOptions {
                x: "day".into(),
                y: vec!["n".into()],
                series: None,
                stacked: false,
                x_label: None,
                y_label: None,
            })
        );
        assert_eq!(
            Chart::from_type_and_options("table", &json!({})).unwrap(),
            Chart::Table(TableOptions::default())
        );
        let pivot = json!({"rows": ["a"], "values": ["b"], "aggregation": "avg"});
        let Chart::Pivot(p) = Chart::from_type_and_options("pivot", &pivot).unwrap() else {
            panic!("a pivot");
        };
        assert_eq!((p.aggregation, p.columns.len()), (Aggregation::Avg, 0));
    }

    #[test]
    fn the_field_at_fault_is_named() {
        assert_eq!(
            field_of("counter", json!({"value": "n", "colour": "red"})),
            "options.colour"
        );
        assert_eq!(
            field_of(
                "pivot",
                json!({"rows": ["a"], "values": ["b"], "aggregation": "median"})
            ),
            "options.aggregation"
        );
        assert_eq!(field_of("line", json!({"x": "d", "y": []})), "options.y");
        assert_eq!(
            field_of("line", json!({"x": "d", "y": ["n"], "stacked": true})),
            "options.stacked"
        );
        assert_eq!(field_of("bar", json!([1])), "options");
        assert_eq!(
            field_of("counter", json!({"value": "n", "format": "{}"})),
            "options.format"
        );
        let unknown = Chart::from_type_and_options("heatmap", &json!({})).unwrap_err();
        assert!(
            unknown.to_string().contains("table, line, bar"),
            "{unknown}"
        );
    }
}
