//! Benchmarks of the Parquet result store.
//!
//! - `write/1000000_rows`: streaming 1,000,000 rows of ten mixed columns into
//!   a `ParquetResultStore` on a temporary directory (throughput in rows/s).
//!   The batches are built once, outside the timed loop; each iteration
//!   writes a new result and deletes it afterwards, untimed.
//! - `read_page/{0,9000000}`: one 100-row page of a stored 10,000,000-row
//!   result, at the start and near the end. The footer is cached after the
//!   first read (as in production), so both measure the page read itself;
//!   they should be close, since a read opens only the row group (and, with
//!   the offset index, only the pages) holding the rows asked for.
//!
//! ```text
//! cargo bench --bench result_store
//! cargo bench --bench result_store -- read_page
//! ```

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use loupe::deps::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use loupe::deps::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use loupe::{
    PageRequest, ParquetResultStore, ResultId, ResultStore, StreamAdapter, batches_stream,
};
use tokio::runtime::Runtime;

#[path = "../examples/support/wide.rs"]
mod wide;
use wide::{BATCH_ROWS, Rng, STATUSES, WIDE_SEED, wide_schema};

const WRITE_ROWS: u64 = 1_000_000;
const READ_ROWS: u64 = 10_000_000;
const PAGE_ROWS: u64 = 100;
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
}

fn temp_store() -> (tempfile::TempDir, ParquetResultStore) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let path = dir
        .path()
        .to_str()
        .unwrap_or_else(|| panic!("temp dir is not UTF-8"));
    let store = ParquetResultStore::open(path).unwrap_or_else(|e| panic!("open store: {e}"));
    (dir, store)
}

fn bench_write(c: &mut Criterion) {
    let rt = runtime();
    let (_dir, store) = temp_store();
    let schema = wide_schema();
    let mut rng = Rng(WIDE_SEED);
    let batches: Vec<RecordBatch> = chunks(WRITE_ROWS)
        .map(|(start, n)| wide_batch(&schema, &mut rng, start, n))
        .collect();

    let mut group = c.benchmark_group("write");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(WRITE_ROWS));
    let (store, schema, batches) = (&store, &schema, &batches);
    group.bench_function(BenchmarkId::new("rows", WRITE_ROWS), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            async move {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let id = ResultId::generate();
                    // Cloning a batch clones `Arc`s, not data.
                    let stream = batches_stream(schema.clone(), batches.clone());
                    let started = Instant::now();
                    let meta = store
                        .write(&id, stream)
                        .await
                        .unwrap_or_else(|e| panic!("write: {e}"));
                    timed += started.elapsed();
                    assert_eq!(meta.rows, WRITE_ROWS);
                    store
                        .delete(&id)
                        .await
                        .unwrap_or_else(|e| panic!("delete: {e}"));
                }
                timed
            }
        });
    });
    group.finish();
}

fn bench_read_page(c: &mut Criterion) {
    let rt = runtime();
    let (_dir, store) = temp_store();
    let id = ResultId::generate();
    let schema = narrow_schema();
    let generated = {
        let schema = schema.clone();
        let mut rng = Rng(0x5EED);
        chunks(READ_ROWS).map(move |(start, n)| Ok(narrow_batch(&schema, &mut rng, start, n)))
    };
    let meta = rt
        .block_on(store.write(
            &id,
            StreamAdapter::boxed(schema, futures::stream::iter(generated)),
        ))
        .unwrap_or_else(|e| panic!("set-up write: {e}"));
    assert_eq!(meta.rows, READ_ROWS);
    eprintln!(
        "read_page: stored {} rows, {} bytes, {} row groups",
        meta.rows,
        meta.bytes,
        meta.row_group_offsets.len()
    );

    let (store, id) = (&store, &id);
    let mut group = c.benchmark_group("read_page");
    group
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(PAGE_ROWS));
    for offset in [0, 9_000_000] {
        let request = PageRequest::new(offset, PAGE_ROWS);
        // The first read loads and caches the footer; later ones reuse it.
        let first = rt
            .block_on(store.read_page(id, &request))
            .unwrap_or_else(|e| panic!("read_page: {e}"));
        assert_eq!(first.num_rows(), PAGE_ROWS);
        let again = rt
            .block_on(store.read_page(id, &request))
            .unwrap_or_else(|e| panic!("read_page: {e}"));
        eprintln!(
            "read_page offset {offset}: row groups {:?}, {} bytes in {} requests (footer cached)",
            again.stats.row_groups, again.stats.bytes_fetched, again.stats.requests
        );
        group.bench_with_input(
            BenchmarkId::from_parameter(offset),
            &request,
            |b, request| {
                b.to_async(&rt).iter(|| async move {
                    let page = store
                        .read_page(id, request)
                        .await
                        .unwrap_or_else(|e| panic!("read_page: {e}"));
                    black_box(page)
                });
            },
        );
    }
    group.finish();
}

/// `(start, rows)` of each batch of a result of `rows` rows.
fn chunks(rows: u64) -> impl Iterator<Item = (u64, u64)> {
    (0..rows)
        .step_by(BATCH_ROWS as usize)
        .map(move |start| (start, BATCH_ROWS.min(rows - start)))
}

fn wide_batch(schema: &SchemaRef, rng: &mut Rng, start: u64, n: u64) -> RecordBatch {
    wide::wide_batch(schema, rng, start, n).unwrap_or_else(|e| panic!("wide batch: {e}"))
}

fn narrow_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("value", DataType::Float64, false),
        Field::new("label", DataType::Utf8, false),
    ]))
}

fn narrow_batch(schema: &SchemaRef, rng: &mut Rng, start: u64, n: u64) -> RecordBatch {
    let ids = Int64Array::from_iter_values((start..start + n).map(|i| i as i64));
    let values =
        Float64Array::from_iter_values((0..n).map(|_| rng.below(1_000_000) as f64 / 100.0));
    let labels = StringArray::from_iter_values((0..n).map(|_| rng.pick(STATUSES)));
    RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(ids), Arc::new(values), Arc::new(labels)],
    )
    .unwrap_or_else(|e| panic!("narrow batch: {e}"))
}

criterion_group!(benches, bench_write, bench_read_page);
criterion_main!(benches);
