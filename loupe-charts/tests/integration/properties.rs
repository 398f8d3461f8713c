//! Whatever small result and options of the right kinds, drawing does not
//! panic and gives well-formed XML.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Array, Float64Array, Int64Array, StringArray, TimestampSecondArray,
};
use loupe_charts::{Frame, Size, render_svg};
use proptest::prelude::*;
use serde_json::json;

use crate::support::{batch, chart, parse};

fn names() -> impl Strategy<Value = (String, String, String)> {
    ("\\PC{1,12}", "\\PC{1,12}", "\\PC{1,12}")
        .prop_filter("distinct names", |(a, b, c)| a != b && b != c && a != c)
}

fn f64s() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        Just(None),
        any::<f64>().prop_map(Some),
        (-1e6f64..1e6).prop_map(Some),
        Just(Some(0.0)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_small_result_draws_well_formed_svg(
        (text_name, float_name, int_name) in names(),
        rows in prop::collection::vec(
            (proptest::option::of(any::<String>()), f64s(), proptest::option::of(any::<i64>())),
            0..24,
        ),
        instants in prop::collection::vec((proptest::option::of(any::<i64>()), proptest::option::of(any::<i32>())), 24),
        kind in 0usize..12,
        flag in any::<bool>(),
        width in 100u32..1200,
        height in 100u32..900,
        title in proptest::option::of(any::<String>()),
    ) {
        let texts: Vec<Option<String>> = rows.iter().map(|r| r.0.clone()).collect();
        let floats: Vec<Option<f64>> = rows.iter().map(|r| r.1).collect();
        let ints: Vec<Option<i64>> = rows.iter().map(|r| r.2).collect();
        let b = batch(vec![
            (&text_name, Arc::new(StringArray::from(texts)) as ArrayRef),
            (&float_name, Arc::new(Float64Array::from(floats))),
            (&int_name, Arc::new(Int64Array::from(ints))),
            (
                "at",
                Arc::new(
                    TimestampSecondArray::from(
                        instants[..rows.len()].iter().map(|i| i.0).collect::<Vec<_>>(),
                    )
                    .with_timezone("Europe/Berlin"),
                ),
            ),
            (
                "day",
                Arc::new(Date32Array::from(
                    instants[..rows.len()].iter().map(|i| i.1).collect::<Vec<_>>(),
                )),
            ),
        ]);
        let (t, f, i) = (&text_name, &float_name, &int_name);
        let c = match kind {
            0 => chart("table", json!({"page_size": 5})),
            1 => chart("line", json!({"x": i, "y": [f], "series": flag.then_some(t)})),
            2 => chart("bar", json!({"x": t, "y": [f, i], "stacked": flag})),
            3 => chart("area", json!({"x": if flag { t } else { f }, "y": [f], "stacked": flag})),
            4 => chart("scatter", json!({"x": f, "y": i, "size": flag.then_some(f), "series": t})),
            5 => chart("pie", json!({"label": t, "value": f})),
            6 => chart("counter", json!({"value": if flag { t } else { f }, "target": i, "format": "$0,0.0#a"})),
            7 => chart("pivot", json!({"rows": [t], "columns": [i], "values": [f], "aggregation": if flag { "avg" } else { "count" }})),
            8 => chart("line", json!({"x": t, "y": [i, f]})),
            9 => chart("area", json!({"x": "at", "y": [f], "series": t})),
            10 => chart("scatter", json!({"x": "day", "y": i})),
            _ => chart("bar", json!({"x": if flag { "day" } else { "at" }, "y": [f]})),
        };
        let frame = Frame {
            title: title.as_deref(),
            size: Size::new(width, height).unwrap(),
            more_rows: flag,
        };
        let svg = render_svg(&c, &[b], &frame).unwrap().into_string();
        parse(&svg);
    }
}
