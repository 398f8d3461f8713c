//! PNGs: decoded again and looked at pixel by pixel.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray};
use loupe_charts::{ChartError, Frame, Size, render_png, render_svg, svg_to_png};
use resvg::tiny_skia::Pixmap;
use serde_json::json;

use crate::support::{batch, chart};

fn bars() -> arrow::array::RecordBatch {
    batch(vec![
        (
            "region",
            Arc::new(StringArray::from(vec!["North", "South", "West"])) as ArrayRef,
        ),
        (
            "revenue",
            Arc::new(Float64Array::from(vec![120.0, 80.0, 45.0])),
        ),
    ])
}

/// Pixels as opaque RGB (every chart has a white background).
fn pixels(png: &[u8]) -> (Pixmap, Vec<[u8; 3]>) {
    let pixmap = Pixmap::decode_png(png).unwrap();
    let rgb = pixmap
        .pixels()
        .iter()
        .map(|p| {
            let c = p.demultiply();
            [c.red(), c.green(), c.blue()]
        })
        .collect();
    (pixmap, rgb)
}

#[test]
fn a_bar_chart_png_has_its_size_its_colours_and_its_bars() {
    let c = chart("bar", json!({"x": "region", "y": ["revenue"]}));
    let frame = Frame {
        title: Some("Revenue"),
        ..Frame::default()
    };
    let png = render_png(&c, &[bars()], &frame).unwrap();
    let (pixmap, rgb) = pixels(&png);
    assert_eq!((pixmap.width(), pixmap.height()), (800, 450));
    let distinct: HashSet<[u8; 3]> = rgb.iter().copied().collect();
    assert!(distinct.len() > 20, "not blank: {} colours", distinct.len());
    // The first palette colour, #0072B2, fills the bars.
    let bar_pixels = rgb.iter().filter(|p| **p == [0x00, 0x72, 0xB2]).count();
    assert!(bar_pixels > 10_000, "{bar_pixels} bar pixels");
    let white = rgb.iter().filter(|p| **p == [255, 255, 255]).count();
    assert!(white > rgb.len() / 2, "a white background");
}

#[test]
fn text_is_drawn_with_the_shipped_font() {
    let b = batch(vec![(
        "n",
        Arc::new(Float64Array::from(vec![88_888.0])) as ArrayRef,
    )]);
    let c = chart("counter", json!({"value": "n", "label": ""}));
    let png = render_png(&c, &[b], &Frame::default()).unwrap();
    let (_, rgb) = pixels(&png);
    // The number's ink (#1F2328); without a font there would be none.
    let ink = rgb
        .iter()
        .filter(|p| p[0] < 0x40 && p[1] < 0x40 && p[2] < 0x48)
        .count();
    assert!(ink > 5_000, "{ink} dark pixels");
}

#[test]
fn a_png_can_be_scaled_to_another_size() {
    let c = chart("bar", json!({"x": "region", "y": ["revenue"]}));
    let svg = render_svg(&c, &[bars()], &Frame::default()).unwrap();
    let png = svg_to_png(svg.as_str(), Size::new(400, 225).unwrap()).unwrap();
    let (pixmap, _) = pixels(&png);
    assert_eq!((pixmap.width(), pixmap.height()), (400, 225));
}

#[test]
fn markup_that_is_not_svg_is_an_error() {
    let err = svg_to_png("<html/>", Size::DEFAULT).unwrap_err();
    assert!(matches!(err, ChartError::Svg { .. }), "{err:?}");
    let err = svg_to_png("<svg", Size::DEFAULT).unwrap_err();
    assert!(
        err.to_string().starts_with("the SVG could not be read"),
        "{err}"
    );
    assert!(matches!(
        svg_to_png(
            "<svg xmlns='http://www.w3.org/2000/svg'/>",
            Size {
                width: 1,
                height: 1
            }
        ),
        Err(ChartError::SizeOutOfRange { .. })
    ));
}

#[test]
fn ten_thousand_points_render_quickly() {
    let n = 10_000;
    let xs: Vec<f64> = (0..n).map(f64::from).collect();
    let ys: Vec<f64> = (0..n)
        .map(|i| (f64::from(i) / 300.0).sin() * 1000.0)
        .collect();
    let b = batch(vec![
        ("x", Arc::new(Float64Array::from(xs)) as ArrayRef),
        ("y", Arc::new(Float64Array::from(ys))),
    ]);
    for c in [
        chart("line", json!({"x": "x", "y": ["y"]})),
        chart("scatter", json!({"x": "x", "y": "y"})),
    ] {
        let started = std::time::Instant::now();
        let png = render_png(&c, std::slice::from_ref(&b), &Frame::default()).unwrap();
        let took = started.elapsed();
        assert!(png.len() > 1000);
        // Unoptimized test builds are several times slower than release;
        // the bound catches quadratic work, not small regressions.
        assert!(took.as_secs_f64() < 10.0, "{}: {took:?}", c.kind());
        eprintln!("{} over {n} rows: {took:?}", c.kind());
    }
}
