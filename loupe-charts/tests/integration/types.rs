//! One test (or a few) per visualization type: what is drawn matches the
//! rows.

use std::sync::Arc;

use arrow::array::{Date32Array, Float64Array, Int64Array, StringArray};
use loupe_charts::{Frame, render_svg};
use serde_json::json;

use crate::support::{attrs, bars_of, batch, chart, count, svg, texts, ticks};

fn regions() -> arrow::array::RecordBatch {
    batch(vec![
        (
            "region",
            Arc::new(StringArray::from(vec!["North", "South", "West"])),
        ),
        (
            "revenue",
            Arc::new(Float64Array::from(vec![1_200_000.0, 800_000.0, 450_000.0])),
        ),
        (
            "cost",
            Arc::new(Int64Array::from(vec![700_000, 650_000, 300_000])),
        ),
    ])
}

#[test]
fn bars_are_one_rect_per_category_and_series_with_a_legend() {
    let c = chart(
        "bar",
        json!({"x": "region", "y": ["revenue", "cost"], "y_label": "USD"}),
    );
    let s = svg(&c, &[regions()]);
    assert_eq!(count(&s, "bar"), 6);
    assert_eq!(attrs(&s, "series", "data-series"), ["revenue", "cost"]);
    assert_eq!(
        attrs(&s, "legend-entry", "data-series"),
        ["revenue", "cost"]
    );
    assert_eq!(ticks(&s, "x"), ["North", "South", "West"]);
    let y = ticks(&s, "y");
    assert_eq!(y.first().map(String::as_str), Some("0"));
    assert!(y.iter().any(|t| t.ends_with('M')), "SI suffixes: {y:?}");
    assert_eq!(texts(&s, "axis-title"), ["region", "USD"]);
    assert_eq!(texts(&s, "title"), ["A chart"]);
    let revenue = bars_of(&s, "revenue");
    assert_eq!(
        attrs(&s, "bar", "data-y")[..3],
        ["1200000", "800000", "450000"]
    );
    // Taller value, taller bar; grouped bars sit side by side.
    assert!(revenue[0].3 > revenue[1].3 && revenue[1].3 > revenue[2].3);
    let cost = bars_of(&s, "cost");
    assert!((cost[0].0 - (revenue[0].0 + revenue[0].2)).abs() < 1.5);
}

#[test]
fn stacked_bars_sit_on_the_series_below() {
    let c = chart(
        "bar",
        json!({"x": "region", "y": ["revenue", "cost"], "stacked": true}),
    );
    let s = svg(&c, &[regions()]);
    let (revenue, cost) = (bars_of(&s, "revenue"), bars_of(&s, "cost"));
    for (r, c) in revenue.iter().zip(&cost) {
        assert!((r.0 - c.0).abs() < 0.01, "same x");
        assert!(
            (c.1 + c.3 - r.1).abs() < 0.02,
            "cost's bottom is revenue's top"
        );
    }
}

#[test]
fn a_series_column_splits_rows_into_series() {
    let b = batch(vec![
        (
            "month",
            Arc::new(StringArray::from(vec!["Jan", "Jan", "Feb", "Feb", "Feb"])),
        ),
        (
            "channel",
            Arc::new(StringArray::from(vec!["web", "shop", "web", "shop", "web"])),
        ),
        ("orders", Arc::new(Int64Array::from(vec![10, 4, 12, 5, 3]))),
    ]);
    let c = chart(
        "bar",
        json!({"x": "month", "y": ["orders"], "series": "channel"}),
    );
    let s = svg(&c, &[b]);
    assert_eq!(attrs(&s, "series", "data-series"), ["web", "shop"]);
    // Rows sharing a category and series are added up: web in Feb is 15.
    let web: Vec<String> = attrs(&s, "bar", "data-y");
    assert_eq!(web, ["10", "15", "4", "5"]);
}

#[test]
fn lines_are_drawn_in_x_order_over_dates() {
    // 2024-03-01 plus days, out of order.
    let days = vec![19_783 + 40, 19_783, 19_783 + 80, 19_783 + 20];
    let b = batch(vec![
        ("day", Arc::new(Date32Array::from(days))),
        ("users", Arc::new(Int64Array::from(vec![30, 10, 50, 20]))),
    ]);
    let c = chart("line", json!({"x": "day", "y": ["users"]}));
    let s = svg(&c, &[b]);
    assert_eq!(attrs(&s, "series", "data-points"), ["4"]);
    assert_eq!(attrs(&s, "point", "data-y"), ["10", "20", "30", "50"]);
    let path = attrs(&s, "line", "d").remove(0);
    let xs: Vec<f64> = path
        .split(['M', 'L'])
        .filter(|p| !p.is_empty())
        .map(|p| p.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(xs.windows(2).all(|w| w[0] < w[1]), "{path}");
    let x = ticks(&s, "x");
    assert!(
        x.iter().any(|t| t.contains("2024")),
        "dates label the axis: {x:?}"
    );
    assert!(
        x.iter().any(|t| t == "Apr" || t.starts_with("Apr")),
        "{x:?}"
    );
    assert_eq!(count(&s, "legend"), 0, "one series needs no legend");
}

#[test]
fn stacked_areas_fill_between_the_series() {
    let b = batch(vec![
        ("x", Arc::new(Int64Array::from(vec![1, 2, 3, 1, 2, 3]))),
        (
            "kind",
            Arc::new(StringArray::from(vec!["a", "a", "a", "b", "b", "b"])),
        ),
        ("n", Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5, 6]))),
    ]);
    let c = chart(
        "area",
        json!({"x": "x", "y": ["n"], "series": "kind", "stacked": true}),
    );
    let s = svg(&c, &[b]);
    assert_eq!(count(&s, "area"), 2);
    assert_eq!(attrs(&s, "series", "data-series"), ["a", "b"]);
    // The stack's top is 3 + 6 = 9: the y axis reaches it.
    let top: f64 = attrs(&s, "tick", "data-value")
        .iter()
        .filter_map(|v| v.parse().ok())
        .fold(0.0, f64::max);
    assert!(top >= 9.0, "{top}");
}

#[test]
fn scatter_points_take_size_and_series() {
    let b = batch(vec![
        ("x", Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0]))),
        ("y", Arc::new(Float64Array::from(vec![4.0, 3.0, 2.0, 1.0]))),
        (
            "w",
            Arc::new(Float64Array::from(vec![1.0, 10.0, 100.0, 50.0])),
        ),
        ("g", Arc::new(StringArray::from(vec!["p", "q", "p", "q"]))),
    ]);
    let c = chart(
        "scatter",
        json!({"x": "x", "y": "y", "size": "w", "series": "g"}),
    );
    let s = svg(&c, &[b]);
    assert_eq!(count(&s, "point"), 4);
    assert_eq!(attrs(&s, "legend-entry", "data-series"), ["p", "q"]);
    let radii: Vec<f64> = attrs(&s, "point", "r")
        .iter()
        .map(|r| r.parse().unwrap())
        .collect();
    // p: sizes 1 and 100; the larger value is the larger point.
    assert!(radii[1] > radii[0], "{radii:?}");
    assert_eq!(texts(&s, "axis-title"), ["x", "y"]);
}

#[test]
fn pie_slices_add_up_to_the_whole_with_shares_in_the_legend() {
    let b = batch(vec![
        (
            "category",
            Arc::new(StringArray::from(vec!["books", "games", "toys", "books"])),
        ),
        ("orders", Arc::new(Int64Array::from(vec![30, 25, 20, 25]))),
    ]);
    let c = chart("pie", json!({"label": "category", "value": "orders"}));
    let s = svg(&c, &[b]);
    assert_eq!(attrs(&s, "slice", "data-label"), ["books", "games", "toys"]);
    assert_eq!(attrs(&s, "slice", "data-percent"), ["55.0", "25.0", "20.0"]);
    assert_eq!(
        attrs(&s, "legend-entry", "data-series"),
        ["books", "games", "toys"]
    );
    let details = texts(&s, "legend-detail");
    assert!(details[0].starts_with("55.0%"), "{details:?}");
    assert!(texts(&s, "slice-label").contains(&"55%".to_owned()));
}

#[test]
fn a_counter_shows_the_first_value_formatted_against_its_target() {
    let b = batch(vec![
        (
            "revenue",
            Arc::new(Float64Array::from(vec![1_284_503.27, 5.0])),
        ),
        ("goal", Arc::new(Int64Array::from(vec![1_200_000, 0]))),
    ]);
    let c = chart(
        "counter",
        json!({"value": "revenue", "target": "goal", "label": "This month", "format": "$0,0"}),
    );
    let s = svg(&c, &[b]);
    assert_eq!(texts(&s, "counter-value"), ["$1,284,503"]);
    assert_eq!(texts(&s, "counter-label"), ["This month"]);
    assert_eq!(
        texts(&s, "counter-target"),
        ["▲ $84,503 (+7.0%) vs target $1,200,000"]
    );
    let plain = chart("counter", json!({"value": "revenue"}));
    let s = svg(&plain, &[regions_like_counter()]);
    assert_eq!(texts(&s, "counter-value"), ["1,234.5"]);
    assert_eq!(texts(&s, "counter-label"), ["revenue"]);
}

fn regions_like_counter() -> arrow::array::RecordBatch {
    batch(vec![(
        "revenue",
        Arc::new(Float64Array::from(vec![1234.5])),
    )])
}

#[test]
fn a_table_shows_the_chosen_columns_and_the_first_rows() {
    let c = chart(
        "table",
        json!({"columns": ["revenue", "region"], "page_size": 2}),
    );
    let s = svg(&c, &[regions()]);
    assert_eq!(texts(&s, "header"), ["revenue", "region"]);
    assert_eq!(
        texts(&s, "cell"),
        ["1,200,000", "800,000", "North", "South"],
        "numbers grouped, two rows (the page size)"
    );
    assert_eq!(texts(&s, "note"), ["First 2 of 3 rows shown"]);
    let all = svg(&chart("table", json!({})), &[regions()]);
    assert_eq!(texts(&all, "header"), ["region", "revenue", "cost"]);
    assert_eq!(count(&all, "cell"), 9);
    // Integers are written as they are (a year is not 2,024).
    assert!(texts(&all, "cell").contains(&"700000".to_owned()));
}

#[test]
fn a_pivot_aggregates_values_by_row_and_column_keys() {
    let b = batch(vec![
        (
            "country",
            Arc::new(StringArray::from(vec!["DE", "DE", "FR", "DE", "FR"])),
        ),
        (
            "status",
            Arc::new(StringArray::from(vec![
                "paid", "open", "paid", "paid", "open",
            ])),
        ),
        (
            "amount",
            Arc::new(Float64Array::from(vec![
                Some(10.0),
                Some(5.0),
                Some(7.5),
                Some(2.5),
                None,
            ])),
        ),
    ]);
    let c = chart(
        "pivot",
        json!({"rows": ["country"], "columns": ["status"], "values": ["amount"], "aggregation": "sum"}),
    );
    let s = svg(&c, std::slice::from_ref(&b));
    assert_eq!(texts(&s, "header"), ["country", "paid", "open"]);
    // Columns are drawn one after another: keys, then paid, then open.
    assert_eq!(texts(&s, "cell"), ["DE", "FR", "12.5", "7.5", "5", ""]);
    let count_chart = chart(
        "pivot",
        json!({"rows": ["country"], "values": ["status"], "aggregation": "count"}),
    );
    let s = svg(&count_chart, std::slice::from_ref(&b));
    assert_eq!(texts(&s, "header"), ["country", "count of status"]);
    assert_eq!(texts(&s, "cell"), ["DE", "FR", "3", "2"]);
    let avg = chart(
        "pivot",
        json!({"rows": ["status"], "values": ["amount"], "aggregation": "avg"}),
    );
    let s = render_svg(&avg, &[b], &Frame::default())
        .unwrap()
        .into_string();
    assert_eq!(
        texts(&s, "cell"),
        ["paid", "open", "6.67", "5.00"],
        "decimals line up"
    );
}
