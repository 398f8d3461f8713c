//! The examples in `docs/charts/`, drawn from fixed, plausible shop data.
//! `LOUPE_BLESS=1 cargo test -p loupe-charts examples` writes them again;
//! without it the test draws each one and checks that the committed file is
//! a PNG of the same size.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use loupe_charts::{Chart, Frame, Size, render_png};
use resvg::tiny_skia::Pixmap;
use serde_json::json;

use crate::support::{Lcg, batch, chart};

/// 2024-01-01 as days since 1970-01-01.
const JAN_2024: i32 = 19_723;

fn days_from_civil(year: i32, month: u32) -> i32 {
    // Howard Hinnant's days_from_civil, for the first of a month.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i32;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn bar() -> RecordBatch {
    batch(vec![
        (
            "region",
            Arc::new(StringArray::from(vec![
                "North America",
                "Europe",
                "Asia Pacific",
                "Latin America",
                "Middle East & Africa",
            ])) as ArrayRef,
        ),
        (
            "2023",
            Arc::new(Float64Array::from(vec![
                4_820_000.0,
                3_910_000.0,
                2_750_000.0,
                1_120_000.0,
                640_000.0,
            ])),
        ),
        (
            "2024",
            Arc::new(Float64Array::from(vec![
                5_360_000.0,
                4_120_000.0,
                3_480_000.0,
                1_310_000.0,
                830_000.0,
            ])),
        ),
    ])
}

fn line() -> RecordBatch {
    let mut rng = Lcg(7);
    let (mut days, mut platforms, mut users) = (vec![], vec![], vec![]);
    for (platform, base, growth) in [
        ("web", 5200.0, 9.0),
        ("iOS", 3100.0, 14.0),
        ("Android", 2600.0, 17.0),
    ] {
        for d in 0..120 {
            let weekday = (d + 1) % 7; // 2024-01-01 was a Monday
            let weekend = if weekday >= 5 { 0.78 } else { 1.0 };
            let noise = 1.0 + (rng.next() - 0.5) * 0.08;
            days.push(JAN_2024 + d);
            platforms.push(platform);
            users.push(((base + growth * f64::from(d)) * weekend * noise).round() as i64);
        }
    }
    batch(vec![
        ("day", Arc::new(Date32Array::from(days)) as ArrayRef),
        ("platform", Arc::new(StringArray::from(platforms))),
        ("active_users", Arc::new(Int64Array::from(users))),
    ])
}

fn area() -> RecordBatch {
    let mut rng = Lcg(11);
    let (mut months, mut channels, mut orders) = (vec![], vec![], vec![]);
    for (channel, base, growth) in [
        ("Online store", 8200.0, 260.0),
        ("Marketplaces", 5100.0, 180.0),
        ("Retail partners", 3900.0, 40.0),
    ] {
        for m in 0..36u32 {
            let year = 2022 + (m / 12) as i32;
            let month = m % 12 + 1;
            // Busy Novembers and Decembers.
            let season = match month {
                11 => 1.35,
                12 => 1.6,
                1 => 0.85,
                _ => 1.0,
            };
            let noise = 1.0 + (rng.next() - 0.5) * 0.1;
            months.push(days_from_civil(year, month));
            channels.push(channel);
            orders.push(((base + growth * f64::from(m)) * season * noise).round() as i64);
        }
    }
    batch(vec![
        ("month", Arc::new(Date32Array::from(months)) as ArrayRef),
        ("channel", Arc::new(StringArray::from(channels))),
        ("orders", Arc::new(Int64Array::from(orders))),
    ])
}

fn scatter() -> RecordBatch {
    let mut rng = Lcg(3);
    let (mut orders, mut value, mut basket, mut segment) = (vec![], vec![], vec![], vec![]);
    for (name, reach, spend) in [
        ("Consumer", 14.0, 62.0),
        ("Small business", 26.0, 140.0),
        ("Corporate", 40.0, 310.0),
    ] {
        for _ in 0..50 {
            let n = (1.0 + rng.next() * reach).round();
            let avg = spend * (0.6 + rng.next() * 0.8);
            orders.push(n as i64);
            basket.push((avg * 100.0).round() / 100.0);
            value.push((n * avg * (0.9 + rng.next() * 0.2) * 100.0).round() / 100.0);
            segment.push(name);
        }
    }
    batch(vec![
        ("orders", Arc::new(Int64Array::from(orders)) as ArrayRef),
        ("lifetime_value", Arc::new(Float64Array::from(value))),
        ("avg_basket", Arc::new(Float64Array::from(basket))),
        ("segment", Arc::new(StringArray::from(segment))),
    ])
}

fn pie() -> RecordBatch {
    batch(vec![
        (
            "category",
            Arc::new(StringArray::from(vec![
                "Electronics",
                "Books",
                "Home & Garden",
                "Toys",
                "Games",
                "Sports",
                "Beauty",
                "Grocery",
                "Fashion",
                "Music",
                "Pet supplies",
            ])) as ArrayRef,
        ),
        (
            "orders",
            Arc::new(Int64Array::from(vec![
                4210, 3350, 2870, 2140, 1720, 1380, 960, 610, 540, 310, 190,
            ])),
        ),
    ])
}

fn counter() -> RecordBatch {
    batch(vec![
        (
            "revenue",
            Arc::new(Float64Array::from(vec![1_284_503.27])) as ArrayRef,
        ),
        ("target", Arc::new(Float64Array::from(vec![1_200_000.0]))),
    ])
}

fn orders() -> RecordBatch {
    const NAMES: [&str; 8] = [
        "Ada Lovelace",
        "Grace Hopper",
        "Alan Turing",
        "Barbara Liskov",
        "Edsger Dijkstra",
        "Radia Perlman",
        "Ken Thompson",
        "Frances Allen",
    ];
    const COUNTRIES: [&str; 6] = ["DE", "FR", "US", "BR", "JP", "NL"];
    const STATUSES: [&str; 4] = ["paid", "shipped", "delivered", "refunded"];
    let mut rng = Lcg(5);
    let n = 40;
    let pick = |rng: &mut Lcg, len: usize| ((rng.next() * len as f64) as usize).min(len - 1);
    let (mut customer, mut country, mut status, mut amount, mut at) =
        (vec![], vec![], vec![], vec![], vec![]);
    // 2024-03-18 09:00 UTC, in microseconds, minus a few hours per order.
    let mut t: i64 = 1_710_752_400_000_000;
    for _ in 0..n {
        customer.push(NAMES[pick(&mut rng, NAMES.len())]);
        country.push(COUNTRIES[pick(&mut rng, COUNTRIES.len())]);
        status.push(STATUSES[pick(&mut rng, STATUSES.len())]);
        amount.push(20.0 + rng.next() * 480.0);
        t -= (rng.next() * 3.0 * 3_600_000_000.0) as i64;
        at.push(t);
    }
    let amount: Vec<f64> = amount.iter().map(|a| (a * 100.0).round() / 100.0).collect();
    batch(vec![
        (
            "id",
            Arc::new(Int64Array::from(
                (0..n).map(|i| 10_480 - i).collect::<Vec<i64>>(),
            )) as ArrayRef,
        ),
        ("customer", Arc::new(StringArray::from(customer))),
        ("country", Arc::new(StringArray::from(country))),
        ("status", Arc::new(StringArray::from(status))),
        ("amount", Arc::new(Float64Array::from(amount))),
        (
            "ordered_at",
            Arc::new(TimestampMicrosecondArray::from(at).with_timezone("UTC")),
        ),
    ])
}

/// Each example: file name, title, chart, rows.
fn examples() -> Vec<(&'static str, &'static str, Chart, RecordBatch)> {
    vec![
        (
            "bar",
            "Revenue by region",
            chart(
                "bar",
                json!({"x": "region", "y": ["2023", "2024"], "x_label": "", "y_label": "Revenue (USD)"}),
            ),
            bar(),
        ),
        (
            "line",
            "Daily active users by platform",
            chart(
                "line",
                json!({"x": "day", "y": ["active_users"], "series": "platform", "x_label": "", "y_label": "Active users"}),
            ),
            line(),
        ),
        (
            "area",
            "Orders per month by channel",
            chart(
                "area",
                json!({"x": "month", "y": ["orders"], "series": "channel", "stacked": true, "x_label": "", "y_label": "Orders"}),
            ),
            area(),
        ),
        (
            "scatter",
            "Customers: orders and lifetime value",
            chart(
                "scatter",
                json!({"x": "orders", "y": "lifetime_value", "size": "avg_basket", "series": "segment"}),
            ),
            scatter(),
        ),
        (
            "pie",
            "Orders by category",
            chart("pie", json!({"label": "category", "value": "orders"})),
            pie(),
        ),
        (
            "counter",
            "Revenue this month",
            chart(
                "counter",
                json!({"value": "revenue", "target": "target", "label": "Revenue, March 2024", "format": "$0,0"}),
            ),
            counter(),
        ),
        (
            "table",
            "Latest orders",
            chart("table", json!({})),
            orders(),
        ),
        (
            "pivot",
            "Order value by country and status",
            chart(
                "pivot",
                json!({"rows": ["country"], "columns": ["status"], "values": ["amount"], "aggregation": "sum"}),
            ),
            orders(),
        ),
    ]
}

#[test]
fn the_examples_in_docs_are_drawn_from_their_data() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/charts");
    let bless = std::env::var("LOUPE_BLESS").is_ok_and(|v| v == "1");
    for (name, title, c, rows) in examples() {
        let frame = Frame {
            title: Some(title),
            size: Size::DEFAULT,
            more_rows: false,
        };
        let png = render_png(&c, &[rows], &frame).unwrap();
        let path = dir.join(format!("{name}.png"));
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &png).unwrap();
            continue;
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run LOUPE_BLESS=1 cargo test -p loupe-charts examples",
                path.display()
            )
        });
        let committed = Pixmap::decode_png(&committed).unwrap();
        assert_eq!(
            (committed.width(), committed.height()),
            (Size::DEFAULT.width, Size::DEFAULT.height),
            "{name}"
        );
    }
}
