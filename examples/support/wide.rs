//! The generated "wide" table: ten columns of mixed types, made batch by
//! batch from a seeded generator, so the same seed gives the same rows.
//! Shared by `gen-sample-data --wide`, `store-write-rss` and the result
//! store benchmark (and its generator and word lists by the sample data).

use std::sync::Arc;

use loupe::deps::arrow::array::{
    BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use loupe::deps::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use loupe::deps::arrow::error::ArrowError;

/// xorshift64*: small, fast and the same everywhere.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub(crate) fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The seed of the wide table.
pub(crate) const WIDE_SEED: u64 = 0xB16_DA7A;
/// Rows per generated batch.
pub(crate) const BATCH_ROWS: u64 = 65_536;
pub(crate) const STATUSES: &[&str] = &["placed", "paid", "shipped", "delivered", "returned"];
pub(crate) const COUNTRIES: &[&str] = &["FR", "DE", "US", "GB", "JP", "BR", "IN", "CA", "ES", "NL"];
pub(crate) const ADJECTIVES: &[&str] = &[
    "Classic", "Compact", "Deluxe", "Eco", "Pro", "Smart", "Tiny", "Vintage",
];
/// 2023-01-01 as days and microseconds since the Unix epoch.
pub(crate) const START_DAY: i32 = 19_358;
pub(crate) const START_MICROS: i64 = START_DAY as i64 * 86_400_000_000;

pub(crate) fn wide_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
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
    ]))
}

/// Rows `start..start + n` of the wide table.
pub(crate) fn wide_batch(
    schema: &SchemaRef,
    rng: &mut Rng,
    start: u64,
    n: u64,
) -> Result<RecordBatch, ArrowError> {
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
    RecordBatch::try_new(
        schema.clone(),
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
}
