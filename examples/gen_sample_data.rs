//! Writes the bundled sample dataset (`sample-data/`), or a large generated
//! table for memory and speed measurements.
//!
//! ```text
//! cargo run --example gen-sample-data                      # sample-data/
//! cargo run --release --example gen-sample-data -- --wide 10000000 --out /tmp/big
//! ```
//!
//! The output is deterministic: the same version writes the same rows.

use std::fs::File;
use std::io::BufWriter as IoBufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use loupe::deps::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use loupe::deps::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use loupe::{BatchWriter, ExportFormat};

#[path = "support/wide.rs"]
mod wide;
use wide::{
    ADJECTIVES, BATCH_ROWS, COUNTRIES, Rng, START_DAY, START_MICROS, STATUSES, WIDE_SEED,
    wide_batch, wide_schema,
};

const FIRST: &[&str] = &[
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Ken",
    "Barbara",
    "Dennis",
    "Frances",
    "Edsger",
    "Radia",
    "John",
    "Sophie",
    "Niklaus",
    "Katherine",
    "Tim",
    "Hedy",
    "Donald",
    "Shafi",
    "Leslie",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Thompson",
    "Liskov",
    "Ritchie",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Backus",
    "Wilson",
    "Wirth",
    "Johnson",
    "Berners-Lee",
    "Lamarr",
    "Knuth",
    "Goldwasser",
    "Lamport",
];
const REGIONS: &[(&str, &str, &str)] = &[
    ("FR", "France", "EMEA"),
    ("DE", "Germany", "EMEA"),
    ("US", "United States", "AMER"),
    ("GB", "United Kingdom", "EMEA"),
    ("JP", "Japan", "APAC"),
    ("BR", "Brazil", "AMER"),
    ("IN", "India", "APAC"),
    ("CA", "Canada", "AMER"),
    ("ES", "Spain", "EMEA"),
    ("NL", "Netherlands", "EMEA"),
];
const SEGMENTS: &[&str] = &["consumer", "corporate", "small_business"];
const CATEGORIES: &[&str] = &[
    "books", "games", "garden", "kitchen", "music", "outdoor", "toys",
];
const EVENTS: &[&str] = &["page_view", "search", "add_to_cart", "checkout"];

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let mut out = PathBuf::from("sample-data");
    let mut wide: Option<u64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => out = PathBuf::from(args.next().ok_or("--out needs a directory")?),
            "--wide" => wide = Some(args.next().ok_or("--wide needs a row count")?.parse()?),
            other => {
                return Err(
                    format!("unknown argument {other:?}; use --out DIR and --wide ROWS").into(),
                );
            }
        }
    }
    std::fs::create_dir_all(&out)?;
    match wide {
        Some(rows) => write_wide(&out.join("wide.parquet"), rows),
        None => write_sample(&out),
    }
}

fn write(path: &Path, format: ExportFormat, batches: &[RecordBatch]) -> Result<()> {
    let schema = batches.first().ok_or("nothing to write")?.schema();
    let file = IoBufWriter::new(File::create(path)?);
    let mut writer = BatchWriter::new(format, file, schema)?;
    for b in batches {
        writer.write(b)?;
    }
    writer.finish()?;
    println!("wrote {}", path.display());
    Ok(())
}

fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

fn write_sample(dir: &Path) -> Result<()> {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);

    const CUSTOMERS: i64 = 500;
    let names: Vec<String> = (0..CUSTOMERS)
        .map(|_| format!("{} {}", rng.pick(FIRST), rng.pick(LAST)))
        .collect();
    let emails: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{}.{i}@example.com", n.to_lowercase().replace(' ', ".")))
        .collect();
    let countries: Vec<&str> = (0..CUSTOMERS).map(|_| rng.pick(COUNTRIES)).collect();
    let signup: Vec<i32> = (0..CUSTOMERS)
        .map(|_| START_DAY + rng.below(365) as i32)
        .collect();
    let segments: Vec<&str> = (0..CUSTOMERS).map(|_| rng.pick(SEGMENTS)).collect();
    let customers = batch(
        vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("email", DataType::Utf8, false),
            Field::new("country", DataType::Utf8, false),
            Field::new("signup_date", DataType::Date32, false),
            Field::new("segment", DataType::Utf8, false),
        ],
        vec![
            Arc::new(Int64Array::from_iter_values(1..=CUSTOMERS)),
            Arc::new(StringArray::from_iter_values(&names)),
            Arc::new(StringArray::from_iter_values(&emails)),
            Arc::new(StringArray::from_iter_values(&countries)),
            Arc::new(Date32Array::from(signup)),
            Arc::new(StringArray::from_iter_values(&segments)),
        ],
    )?;
    write(&dir.join("customers.csv"), ExportFormat::Csv, &[customers])?;

    const PRODUCTS: i64 = 60;
    let product_names: Vec<String> = (0..PRODUCTS)
        .map(|i| format!("{} {} #{i}", rng.pick(ADJECTIVES), rng.pick(CATEGORIES)))
        .collect();
    let categories: Vec<&str> = product_names
        .iter()
        .map(|n| n.split(' ').nth(1).unwrap_or("toys"))
        .collect();
    let prices: Vec<f64> = (0..PRODUCTS)
        .map(|_| (rng.below(20_000) + 199) as f64 / 100.0)
        .collect();
    let in_stock: Vec<bool> = (0..PRODUCTS).map(|_| rng.below(10) > 1).collect();
    let products = batch(
        vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("category", DataType::Utf8, false),
            Field::new("price", DataType::Float64, false),
            Field::new("in_stock", DataType::Boolean, false),
        ],
        vec![
            Arc::new(Int64Array::from_iter_values(1..=PRODUCTS)),
            Arc::new(StringArray::from_iter_values(&product_names)),
            Arc::new(StringArray::from_iter_values(&categories)),
            Arc::new(Float64Array::from(prices.clone())),
            Arc::new(BooleanArray::from(in_stock)),
        ],
    )?;
    write(&dir.join("products.csv"), ExportFormat::Csv, &[products])?;

    const ORDERS: i64 = 20_000;
    let customer_ids: Vec<i64> = (0..ORDERS)
        .map(|_| 1 + rng.below(CUSTOMERS as u64) as i64)
        .collect();
    let product_ids: Vec<i64> = (0..ORDERS)
        .map(|_| 1 + rng.below(PRODUCTS as u64) as i64)
        .collect();
    let quantities: Vec<i32> = (0..ORDERS).map(|_| 1 + rng.below(5) as i32).collect();
    let unit_prices: Vec<f64> = product_ids
        .iter()
        .map(|p| prices[(*p - 1) as usize])
        .collect();
    let statuses: Vec<&str> = (0..ORDERS).map(|_| rng.pick(STATUSES)).collect();
    let mut ordered_at: Vec<i64> = (0..ORDERS)
        .map(|_| START_MICROS + rng.below(2 * 365 * 86_400) as i64 * 1_000_000)
        .collect();
    ordered_at.sort_unstable();
    let orders = batch(
        vec![
            Field::new("id", DataType::Int64, false),
            Field::new("customer_id", DataType::Int64, false),
            Field::new("product_id", DataType::Int64, false),
            Field::new("quantity", DataType::Int32, false),
            Field::new("unit_price", DataType::Float64, false),
            Field::new("status", DataType::Utf8, false),
            Field::new(
                "ordered_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
        ],
        vec![
            Arc::new(Int64Array::from_iter_values(1..=ORDERS)),
            Arc::new(Int64Array::from(customer_ids)),
            Arc::new(Int64Array::from(product_ids)),
            Arc::new(Int32Array::from(quantities)),
            Arc::new(Float64Array::from(unit_prices)),
            Arc::new(StringArray::from_iter_values(&statuses)),
            Arc::new(TimestampMicrosecondArray::from(ordered_at).with_timezone("UTC")),
        ],
    )?;
    write(
        &dir.join("orders.parquet"),
        ExportFormat::Parquet,
        &[orders],
    )?;

    const EVENT_ROWS: i64 = 3_000;
    let mut ts: Vec<i64> = (0..EVENT_ROWS)
        .map(|_| START_MICROS + rng.below(2 * 365 * 86_400) as i64 * 1_000_000)
        .collect();
    ts.sort_unstable();
    let event_customers: Vec<Option<i64>> = (0..EVENT_ROWS)
        .map(|_| (rng.below(4) > 0).then(|| 1 + rng.below(CUSTOMERS as u64) as i64))
        .collect();
    let kinds: Vec<&str> = (0..EVENT_ROWS).map(|_| rng.pick(EVENTS)).collect();
    let paths: Vec<String> = kinds
        .iter()
        .map(|k| match *k {
            "search" => format!("/search?q={}", rng.pick(CATEGORIES)),
            "page_view" => format!("/products/{}", 1 + rng.below(PRODUCTS as u64)),
            _ => "/cart".to_owned(),
        })
        .collect();
    let events = batch(
        vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("customer_id", DataType::Int64, true),
            Field::new("event", DataType::Utf8, false),
            Field::new("path", DataType::Utf8, false),
        ],
        vec![
            Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
            Arc::new(Int64Array::from(event_customers)),
            Arc::new(StringArray::from_iter_values(&kinds)),
            Arc::new(StringArray::from_iter_values(&paths)),
        ],
    )?;
    write(&dir.join("events.ndjson"), ExportFormat::Ndjson, &[events])?;

    let regions = batch(
        vec![
            Field::new("country", DataType::Utf8, false),
            Field::new("country_name", DataType::Utf8, false),
            Field::new("region", DataType::Utf8, false),
        ],
        vec![
            Arc::new(StringArray::from_iter_values(REGIONS.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(REGIONS.iter().map(|r| r.1))),
            Arc::new(StringArray::from_iter_values(REGIONS.iter().map(|r| r.2))),
        ],
    )?;
    write(&dir.join("regions.arrow"), ExportFormat::Arrow, &[regions])
}

/// A table of `rows` rows and ten columns of mixed types, written one batch
/// at a time so that generating it needs little memory.
fn write_wide(path: &Path, rows: u64) -> Result<()> {
    let mut rng = Rng(WIDE_SEED);
    let schema = wide_schema();
    let file = IoBufWriter::new(File::create(path)?);
    let mut writer = BatchWriter::new(ExportFormat::Parquet, file, schema.clone())?;
    let mut start = 0u64;
    while start < rows {
        let n = BATCH_ROWS.min(rows - start);
        writer.write(&wide_batch(&schema, &mut rng, start, n)?)?;
        start += n;
    }
    writer.finish()?;
    println!("wrote {} ({rows} rows)", path.display());
    Ok(())
}
