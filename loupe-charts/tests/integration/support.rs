//! Building results and reading the SVG back.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema};
use loupe_charts::{Chart, Frame, render_svg};

/// A batch of the named columns, every field nullable.
pub(crate) fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
        .collect();
    let arrays = columns.into_iter().map(|(_, a)| a).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

/// A chart from its stored form.
pub(crate) fn chart(kind: &str, options: serde_json::Value) -> Chart {
    Chart::from_type_and_options(kind, &options).unwrap()
}

/// The SVG of `chart` over `batches` at the default size.
pub(crate) fn svg(chart: &Chart, batches: &[RecordBatch]) -> String {
    let frame = Frame {
        title: Some("A chart"),
        ..Frame::default()
    };
    render_svg(chart, batches, &frame).unwrap().into_string()
}

/// Whether `node`'s class list holds `class`.
fn has_class(node: &roxmltree::Node<'_, '_>, class: &str) -> bool {
    node.attribute("class")
        .is_some_and(|c| c.split_whitespace().any(|c| c == class))
}

/// The parsed document; panics (failing the test) on malformed XML.
pub(crate) fn parse(svg: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("malformed SVG: {e}\n{svg}"))
}

/// How many elements have `class`.
pub(crate) fn count(svg: &str, class: &str) -> usize {
    parse(svg)
        .descendants()
        .filter(|n| has_class(n, class))
        .count()
}

/// The texts of the elements with `class`.
pub(crate) fn texts(svg: &str, class: &str) -> Vec<String> {
    parse(svg)
        .descendants()
        .filter(|n| has_class(n, class))
        .map(|n| n.text().unwrap_or_default().to_owned())
        .collect()
}

/// Attribute `attr` of the elements with `class`.
pub(crate) fn attrs(svg: &str, class: &str, attr: &str) -> Vec<String> {
    parse(svg)
        .descendants()
        .filter(|n| has_class(n, class))
        .filter_map(|n| n.attribute(attr).map(str::to_owned))
        .collect()
}

/// The tick labels of axis `axis` (`x` or `y`).
pub(crate) fn ticks(svg: &str, axis: &str) -> Vec<String> {
    parse(svg)
        .descendants()
        .filter(|n| has_class(n, "axis") && n.attribute("data-axis") == Some(axis))
        .flat_map(|axis| {
            axis.descendants()
                .filter(|n| has_class(n, "tick"))
                .map(|n| n.text().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The `class="bar"` rects of series `name`, as (x, y, width, height).
pub(crate) fn bars_of(svg: &str, name: &str) -> Vec<(f64, f64, f64, f64)> {
    let doc = parse(svg);
    let series = doc
        .descendants()
        .find(|n| has_class(n, "series") && n.attribute("data-series") == Some(name))
        .unwrap_or_else(|| panic!("no series {name:?}"));
    series
        .children()
        .filter(|n| has_class(n, "bar"))
        .map(|n| {
            let f = |a| n.attribute(a).unwrap().parse::<f64>().unwrap();
            (f("x"), f("y"), f("width"), f("height"))
        })
        .collect()
}

/// A small deterministic generator for plausible data.
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    /// A number in [0, 1).
    pub(crate) fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}
