//! The edges: empty results, NULLs, more categories than fit, text that
//! tries to break out of the markup, columns that are missing or of the
//! wrong type, and sizes out of range.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use loupe_charts::{Chart, ChartError, Frame, MAX_BARS, MAX_SERIES, MAX_SLICES, Size, render_svg};
use serde_json::json;

use crate::support::{attrs, batch, chart, count, parse, svg, texts};

/// A chart of every type over columns `x` (text), `y` (float), `n` (int).
fn every_type() -> Vec<Chart> {
    vec![
        chart("table", json!({})),
        chart("line", json!({"x": "n", "y": ["y"]})),
        chart("bar", json!({"x": "x", "y": ["y"]})),
        chart("area", json!({"x": "n", "y": ["y"]})),
        chart("scatter", json!({"x": "n", "y": "y"})),
        chart("pie", json!({"label": "x", "value": "y"})),
        chart("counter", json!({"value": "y"})),
        chart(
            "pivot",
            json!({"rows": ["x"], "values": ["y"], "aggregation": "max"}),
        ),
    ]
}

fn xyn(
    x: Vec<Option<&str>>,
    y: Vec<Option<f64>>,
    n: Vec<Option<i64>>,
) -> arrow::array::RecordBatch {
    batch(vec![
        ("x", Arc::new(StringArray::from(x)) as ArrayRef),
        ("y", Arc::new(Float64Array::from(y))),
        ("n", Arc::new(Int64Array::from(n))),
    ])
}

#[test]
fn an_empty_result_is_drawn_as_no_rows_for_every_type() {
    let empty = xyn(vec![], vec![], vec![]);
    for c in every_type() {
        let s = svg(&c, std::slice::from_ref(&empty));
        assert_eq!(texts(&s, "empty"), ["No rows"], "{}", c.kind());
        // No batches at all: no schema, still no rows.
        let s = svg(&c, &[]);
        assert_eq!(texts(&s, "empty"), ["No rows"], "{}", c.kind());
    }
}

#[test]
fn nulls_are_skipped_and_counted() {
    let b = xyn(
        vec![Some("a"), Some("b"), None, Some("d")],
        vec![Some(1.0), None, Some(3.0), Some(f64::NAN)],
        vec![Some(1), Some(2), Some(3), None],
    );
    let line = svg(
        &chart("line", json!({"x": "n", "y": ["y"]})),
        std::slice::from_ref(&b),
    );
    assert_eq!(attrs(&line, "series", "data-points"), ["2"]);
    assert_eq!(texts(&line, "note"), ["2 NULL values skipped"]);
    let bar = svg(
        &chart("bar", json!({"x": "x", "y": ["y"]})),
        std::slice::from_ref(&b),
    );
    // A NULL category is a category of its own, named NULL.
    assert_eq!(attrs(&bar, "bar", "data-x"), ["a", "NULL"]);
    let pie = svg(
        &chart("pie", json!({"label": "x", "value": "y"})),
        std::slice::from_ref(&b),
    );
    assert_eq!(texts(&pie, "note"), ["2 NULL values skipped"]);
    let scatter = svg(
        &chart("scatter", json!({"x": "n", "y": "y"})),
        std::slice::from_ref(&b),
    );
    assert_eq!(count(&scatter, "point"), 2);
    assert_eq!(texts(&scatter, "note"), ["2 rows with NULL values skipped"]);
    let table = svg(&chart("table", json!({})), &[b]);
    assert_eq!(count(&table, "null"), 3, "NaN is shown as NaN, not NULL");
    assert!(texts(&table, "cell").contains(&"NaN".to_owned()));
}

#[test]
fn every_value_null_draws_a_message_not_an_axis() {
    let b = xyn(vec![Some("a")], vec![None], vec![Some(1)]);
    let s = svg(
        &chart("line", json!({"x": "n", "y": ["y"]})),
        std::slice::from_ref(&b),
    );
    assert_eq!(texts(&s, "empty"), ["No values to draw"]);
    let s = svg(&chart("counter", json!({"value": "y"})), &[b]);
    assert_eq!(texts(&s, "counter-value"), ["NULL"]);
}

#[test]
fn bars_past_the_limit_are_counted_in_a_note() {
    let labels: Vec<String> = (0..MAX_BARS + 37).map(|i| format!("c{i}")).collect();
    let values: Vec<Option<f64>> = (0..labels.len()).map(|i| Some(i as f64)).collect();
    let b = xyn(
        labels.iter().map(|l| Some(l.as_str())).collect(),
        values,
        vec![Some(0); labels.len()],
    );
    let s = svg(&chart("bar", json!({"x": "x", "y": ["y"]})), &[b]);
    assert_eq!(count(&s, "bar"), MAX_BARS);
    assert_eq!(
        texts(&s, "note"),
        ["First 30 categories shown, and 37 more not drawn"]
    );
}

#[test]
fn pie_slices_past_the_limit_go_to_other() {
    let labels: Vec<String> = (0..20).map(|i| format!("s{i}")).collect();
    let b = xyn(
        labels.iter().map(|l| Some(l.as_str())).collect(),
        (0..20).map(|i| Some(100.0 - i as f64)).collect(),
        vec![Some(0); 20],
    );
    let s = svg(&chart("pie", json!({"label": "x", "value": "y"})), &[b]);
    let slices = attrs(&s, "slice", "data-label");
    assert_eq!(slices.len(), MAX_SLICES);
    assert_eq!(slices[0], "s0", "largest first");
    assert_eq!(slices.last().map(String::as_str), Some("Other"));
    assert_eq!(
        texts(&s, "note"),
        ["Top 7 slices shown, and 13 more in Other"]
    );
    let percents: f64 = attrs(&s, "slice", "data-percent")
        .iter()
        .map(|p| p.parse::<f64>().unwrap())
        .sum();
    assert!((percents - 100.0).abs() < 0.5, "{percents}");
}

#[test]
fn series_past_the_limit_are_counted_in_a_note() {
    let keys: Vec<String> = (0..MAX_SERIES + 3).map(|i| format!("k{i}")).collect();
    let b = xyn(
        keys.iter().map(|k| Some(k.as_str())).collect(),
        vec![Some(1.0); keys.len()],
        (0..keys.len() as i64).map(Some).collect(),
    );
    let s = svg(
        &chart("line", json!({"x": "n", "y": ["y"], "series": "x"})),
        &[b],
    );
    assert_eq!(count(&s, "series"), MAX_SERIES);
    assert_eq!(count(&s, "legend-entry"), MAX_SERIES);
    assert_eq!(
        texts(&s, "note"),
        ["First 8 series shown, and 3 more not drawn"]
    );
}

#[test]
fn hostile_names_and_values_stay_text() {
    let hostile = "<script>alert('x')</script> & \"quotes\" \u{0}\u{1b}";
    let b = batch(vec![
        (
            hostile,
            Arc::new(StringArray::from(vec![hostile, "ok"])) as ArrayRef,
        ),
        ("v", Arc::new(Float64Array::from(vec![1.0, 2.0]))),
    ]);
    let charts = [
        chart("bar", json!({"x": hostile, "y": ["v"], "x_label": hostile})),
        chart("line", json!({"x": hostile, "y": ["v"], "series": hostile})),
        chart("pie", json!({"label": hostile, "value": "v"})),
        chart("counter", json!({"value": hostile, "label": hostile})),
        chart("table", json!({})),
        chart(
            "pivot",
            json!({"rows": [hostile], "values": ["v"], "aggregation": "sum"}),
        ),
    ];
    for c in &charts {
        let frame = Frame {
            title: Some(hostile),
            ..Frame::default()
        };
        let s = render_svg(c, std::slice::from_ref(&b), &frame)
            .unwrap()
            .into_string();
        let doc = parse(&s);
        assert!(
            doc.descendants().all(|n| n.tag_name().name() != "script"),
            "{}: a script element got in",
            c.kind()
        );
        let all_text: String = doc.descendants().filter_map(|n| n.text()).collect();
        assert!(all_text.contains("<script>"), "{}: shown as text", c.kind());
        assert!(!s.contains('\u{0}') && !s.contains('\u{1b}'));
    }
}

#[test]
fn a_missing_column_names_it_and_the_ones_there_are() {
    let b = xyn(vec![Some("a")], vec![Some(1.0)], vec![Some(1)]);
    let c = chart("bar", json!({"x": "x", "y": ["y", "revnue"]}));
    let err = render_svg(&c, &[b], &Frame::default()).unwrap_err();
    assert!(
        matches!(&err, ChartError::MissingColumn { field, column, available }
            if field == "options.y[1]" && column == "revnue" && available == &["x", "y", "n"]),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        r#"column "revnue" named in options.y[1] is not in the result; its columns are: "x", "y", "n""#
    );
}

#[test]
fn a_text_column_where_numbers_are_needed_is_refused() {
    let b = xyn(vec![Some("a")], vec![Some(1.0)], vec![Some(1)]);
    for c in [
        chart("line", json!({"x": "n", "y": ["x"]})),
        chart("pie", json!({"label": "n", "value": "x"})),
        chart("scatter", json!({"x": "x", "y": "y"})),
        chart("counter", json!({"value": "y", "target": "x"})),
        chart(
            "pivot",
            json!({"rows": ["n"], "values": ["x"], "aggregation": "sum"}),
        ),
    ] {
        let err = render_svg(&c, std::slice::from_ref(&b), &Frame::default()).unwrap_err();
        let ChartError::NotNumeric {
            column, data_type, ..
        } = &err
        else {
            panic!("{}: {err:?}", c.kind());
        };
        assert_eq!((column.as_str(), data_type.as_str()), ("x", "Utf8"));
        assert!(err.to_string().contains("is Utf8, not numeric"), "{err}");
    }
}

#[test]
fn sizes_outside_the_limits_are_refused() {
    assert!(Size::new(Size::MIN, Size::MAX).is_ok());
    for (w, h) in [(99, 450), (800, 4001), (0, 0)] {
        let err = Size::new(w, h).unwrap_err();
        assert!(
            err.to_string()
                .contains("must be between 100 and 4000 pixels"),
            "{err}"
        );
    }
    let frame = Frame {
        size: Size {
            width: 5000,
            height: 300,
        },
        ..Frame::default()
    };
    let c = chart("table", json!({}));
    assert!(matches!(
        render_svg(&c, &[], &frame),
        Err(ChartError::SizeOutOfRange { width: 5000, .. })
    ));
    assert_eq!(Size::default(), Size::new(800, 450).unwrap());
}

#[test]
fn the_smallest_size_still_draws_every_type() {
    let b = xyn(
        vec![Some("a"), Some("b")],
        vec![Some(1.0), Some(2.0)],
        vec![Some(1), Some(2)],
    );
    let frame = Frame {
        title: Some("A long title that cannot fit in a hundred pixels"),
        size: Size::new(100, 100).unwrap(),
        more_rows: true,
    };
    for c in every_type() {
        let s = render_svg(&c, std::slice::from_ref(&b), &frame)
            .unwrap()
            .into_string();
        parse(&s);
        assert!(texts(&s, "title")[0].ends_with('…'), "{}", c.kind());
    }
}

#[test]
fn a_cut_off_result_says_it_shows_the_first_rows() {
    let b = xyn(
        vec![Some("a"), Some("b")],
        vec![Some(1.0), Some(2.0)],
        vec![Some(1), Some(2)],
    );
    let frame = Frame {
        more_rows: true,
        ..Frame::default()
    };
    let c = chart("bar", json!({"x": "x", "y": ["y"]}));
    let s = render_svg(&c, std::slice::from_ref(&b), &frame)
        .unwrap()
        .into_string();
    assert_eq!(texts(&s, "note"), ["Drawn from the first 2 rows"]);
    let t = render_svg(&chart("table", json!({})), &[b], &frame)
        .unwrap()
        .into_string();
    assert_eq!(
        texts(&t, "note"),
        ["First 2 rows shown; the result has more than 2"]
    );
}

#[test]
fn options_broken_by_hand_are_checked_when_drawn() {
    let Chart::Line(mut o) = chart("line", json!({"x": "n", "y": ["y"]})) else {
        unreachable!()
    };
    o.stacked = true;
    let err = render_svg(&Chart::Line(o), &[], &Frame::default()).unwrap_err();
    assert!(
        matches!(&err, ChartError::InvalidOptions { field, .. } if field == "options.stacked"),
        "{err:?}"
    );
}
