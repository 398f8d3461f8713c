//! Writes a generated result of ROWS rows and five typed columns (an
//! integer, a float, text of 20 characters, a timestamp, a boolean) as an
//! XLSX file at PATH through `BatchWriter`, then prints what it wrote and
//! the process's peak resident memory (VmHWM from /proc/self/status). Used
//! by `benches/rss.sh` to check that XLSX output takes constant memory.
//!
//! ```text
//! cargo run --release --example xlsx-write-rss -- 5000000 /tmp/result.xlsx
//! ```
//!
//! After measuring, it reads the file's sheet list and each sheet's
//! dimensions back (with calamine) and fails unless every sheet but the
//! last holds Excel's 1,048,576 rows, header included, and all of them
//! together hold every row.

#[path = "support/rss.rs"]
mod rss;
// Only the seeded generator of the wide table is used here.
#[allow(dead_code)]
#[path = "support/wide.rs"]
mod wide;
use rss::peak_rss_kb;
use wide::{BATCH_ROWS, Rng, START_MICROS, WIDE_SEED};

use std::fs::File;
use std::io::BufWriter;
use std::sync::Arc;
use std::time::Instant;

use loupe::deps::arrow::array::{
    BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use loupe::deps::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use loupe::{BatchWriter, ExportFormat};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Excel's rows per sheet, header included.
const SHEET_ROWS: u64 = 1_048_576;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: xlsx-write-rss ROWS PATH";
    let rows: u64 = args.next().ok_or(usage)?.parse()?;
    let path = args.next().ok_or(usage)?;

    let schema = schema();
    let started = Instant::now();
    let out = BufWriter::with_capacity(1 << 16, File::create(&path)?);
    let mut writer = BatchWriter::new(ExportFormat::Xlsx, out, schema.clone())?;
    let mut rng = Rng(WIDE_SEED);
    let mut next = 0;
    while next < rows {
        let n = BATCH_ROWS.min(rows - next);
        writer.write(&batch(&schema, &mut rng, next, n)?)?;
        next += n;
    }
    writer.finish()?;
    let elapsed = started.elapsed().as_secs_f64();
    let peak_kb = peak_rss_kb()?;
    let bytes = std::fs::metadata(&path)?.len();

    let sheets = check(&path, rows)?;
    println!(
        "rows={rows} bytes={bytes} sheets={sheets} elapsed_s={elapsed:.2} peak_rss_mb={:.1}",
        peak_kb as f64 / 1024.0
    );
    Ok(())
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("label", DataType::Utf8, false),
        Field::new(
            "created_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("paid", DataType::Boolean, false),
    ]))
}

/// Rows `start..start + n`.
fn batch(schema: &SchemaRef, rng: &mut Rng, start: u64, n: u64) -> Result<RecordBatch> {
    let ids = Int64Array::from_iter_values((start..start + n).map(|i| i as i64));
    let amounts =
        Float64Array::from_iter_values((0..n).map(|_| rng.below(10_000_000) as f64 / 100.0));
    let labels = StringArray::from_iter_values(
        (0..n).map(|_| format!("customer {:011}", rng.below(1 << 40))),
    );
    let created = TimestampMicrosecondArray::from_iter_values(
        (start..start + n).map(|i| START_MICROS + i as i64 * 1_000_000),
    )
    .with_timezone("UTC");
    let paid = BooleanArray::from_iter((0..n).map(|_| Some(rng.below(2) == 0)));
    Ok(RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(ids),
            Arc::new(amounts),
            Arc::new(labels),
            Arc::new(created),
            Arc::new(paid),
        ],
    )?)
}

/// Checks the sheets' sizes against `rows`; returns how many there are.
fn check(path: &str, rows: u64) -> Result<usize> {
    let mut book: calamine::Xlsx<_> = calamine::open_workbook(path)?;
    let names = calamine::Reader::sheet_names(&book);
    let mut data_rows = 0;
    for (i, name) in names.iter().enumerate() {
        let dimensions = book.worksheet_cells_reader(name)?.dimensions();
        let (first, last) = (dimensions.start.0, dimensions.end.0);
        let height = u64::from(last - first) + 1;
        if first != 0 || (i + 1 < names.len() && height != SHEET_ROWS) {
            return Err(format!("{name} holds rows {first} to {last}").into());
        }
        data_rows += height - 1;
    }
    if data_rows != rows {
        return Err(format!("the sheets hold {data_rows} rows, not {rows}").into());
    }
    Ok(names.len())
}
