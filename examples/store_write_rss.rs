//! Writes a generated result of ROWS rows and ten mixed columns into a
//! `ParquetResultStore` at DIR, then prints what it wrote and the process's
//! peak resident memory (VmHWM from /proc/self/status). Used by
//! `benches/rss.sh` to check that writing a result takes constant memory.
//!
//! ```text
//! cargo run --release --example store-write-rss -- 10000000 /tmp/results
//! ```
//!
//! Batches are generated on the fly, one at a time, so the generator itself
//! holds only one batch (65,536 rows) at any moment.

#[path = "support/rss.rs"]
mod rss;
use rss::peak_rss_kb;

use std::sync::Arc;
use std::time::Instant;

use loupe::deps::arrow::array::{
    BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use loupe::deps::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use loupe::{ParquetResultStore, ResultId, ResultStore, StreamAdapter};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const BATCH_ROWS: u64 = 65_536;
const STATUSES: &[&str] = &["placed", "paid", "shipped", "delivered", "returned"];
const COUNTRIES: &[&str] = &["FR", "DE", "US", "GB", "JP", "BR", "IN", "CA", "ES", "NL"];
const ADJECTIVES: &[&str] = &[
    "Classic", "Compact", "Deluxe", "Eco", "Pro", "Smart", "Tiny", "Vintage",
];
/// 2023-01-01 in microseconds since the Unix epoch.
const START_MICROS: i64 = 19_358 * 86_400_000_000;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: store-write-rss ROWS DIR";
    let rows: u64 = args.next().ok_or(usage)?.parse()?;
    let dir = args.next().ok_or(usage)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let store = ParquetResultStore::open(&dir)?;
    let generator = WideBatches::new(rows);
    let schema = generator.schema.clone();
    let stream = StreamAdapter::boxed(schema, futures::stream::iter(generator.map(Ok)));

    let started = Instant::now();
    let meta = runtime.block_on(store.write(&ResultId::generate(), stream))?;
    let elapsed = started.elapsed().as_secs_f64();

    let peak_kb = peak_rss_kb()?;
    println!(
        "rows={} bytes={} row_groups={} elapsed_s={elapsed:.2} peak_rss_mb={:.1}",
        meta.rows,
        meta.bytes,
        meta.row_group_offsets.len(),
        peak_kb as f64 / 1024.0
    );
    Ok(())
}

/// xorshift64*: small, fast and deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Batches of a ten-column table, made one at a time as they are asked for.
struct WideBatches {
    schema: SchemaRef,
    rng: Rng,
    next: u64,
    rows: u64,
}

impl WideBatches {
    fn new(rows: u64) -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("customer_id", DataType::Int64, false),
            Field::new("quantity", DataType::Int32, false),
            Field::new("amount", DataType::Float64, false),
            Field::new("discount", DataType::Float64, true),
            Field::new("status", DataType::Utf8, false),
            Field::new("country", DataType::Utf8, false),
            Field::new("note", DataType::Utf8, true),
            Field::new("paid", DataType::Boolean, false),
            Field::new(
                "created_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
        ]));
        Self {
            schema,
            rng: Rng(0xB16_DA7A),
            next: 0,
            rows,
        }
    }

    fn batch(&mut self, start: u64, n: u64) -> RecordBatch {
        let rng = &mut self.rng;
        let ids = Int64Array::from_iter_values((start..start + n).map(|i| i as i64));
        let customers = Int64Array::from_iter_values((0..n).map(|_| rng.below(1_000_000) as i64));
        let quantities = Int32Array::from_iter_values((0..n).map(|_| 1 + rng.below(9) as i32));
        let amounts =
            Float64Array::from_iter_values((0..n).map(|_| rng.below(1_000_000) as f64 / 100.0));
        let discounts: Float64Array = (0..n)
            .map(|_| (rng.below(3) == 0).then(|| rng.below(50) as f64 / 100.0))
            .collect();
        let statuses = StringArray::from_iter_values((0..n).map(|_| rng.pick(STATUSES)));
        let countries = StringArray::from_iter_values((0..n).map(|_| rng.pick(COUNTRIES)));
        let notes: StringArray = (0..n)
            .map(|i| {
                (rng.below(4) == 0)
                    .then(|| format!("note {} for order {}", rng.pick(ADJECTIVES), start + i))
            })
            .collect();
        let paid = BooleanArray::from_iter((0..n).map(|_| Some(rng.below(2) == 0)));
        let created = TimestampMicrosecondArray::from_iter_values(
            (start..start + n).map(|i| START_MICROS + i as i64 * 1_000_000),
        )
        .with_timezone("UTC");
        // The columns match the schema by construction.
        RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(ids),
                Arc::new(customers),
                Arc::new(quantities),
                Arc::new(amounts),
                Arc::new(discounts),
                Arc::new(statuses),
                Arc::new(countries),
                Arc::new(notes),
                Arc::new(paid),
                Arc::new(created),
            ],
        )
        .unwrap_or_else(|e| panic!("generated batch does not match its schema: {e}"))
    }
}

impl Iterator for WideBatches {
    type Item = RecordBatch;

    fn next(&mut self) -> Option<RecordBatch> {
        if self.next >= self.rows {
            return None;
        }
        let start = self.next;
        let n = BATCH_ROWS.min(self.rows - start);
        self.next += n;
        Some(self.batch(start, n))
    }
}
