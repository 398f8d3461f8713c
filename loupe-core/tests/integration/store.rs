//! The Parquet result store against real files in a temporary directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use loupe_core::{
    Error, LimitedStream, Limits, PageRequest, ParquetResultStore, ResultId, ResultStore,
    StoreOptions, StreamAdapter, Truncation, batches_stream,
};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Int64, true),
    ]))
}

fn batch(from: i64, n: i64) -> RecordBatch {
    let ids = Int64Array::from_iter_values(from..from + n);
    let names: StringArray = (from..from + n)
        .map(|i| (i % 7 != 0).then(|| format!("name-{i}")))
        .collect();
    let scores = Int64Array::from_iter_values((from..from + n).map(|i| i * 10));
    RecordBatch::try_new(
        schema(),
        vec![Arc::new(ids), Arc::new(names), Arc::new(scores)],
    )
    .unwrap()
}

fn ids(batches: &[RecordBatch], column: usize) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            b.column(column)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect()
}

fn store(dir: &tempfile::TempDir) -> ParquetResultStore {
    ParquetResultStore::open(dir.path().to_str().unwrap()).unwrap()
}

#[tokio::test]
async fn write_then_read_pages_with_columns_in_the_order_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).with_options(StoreOptions {
        row_group_rows: 1000,
        ..StoreOptions::default()
    });
    let id = ResultId::generate();
    let batches = vec![batch(0, 1500), batch(1500, 1500), batch(3000, 500)];
    let meta = store
        .write(&id, batches_stream(schema(), batches))
        .await
        .unwrap();
    assert_eq!(meta.rows, 3500);
    assert_eq!(meta.row_group_offsets, vec![0, 1000, 2000, 3000]);
    assert!(meta.bytes > 0);
    assert_eq!(meta.truncation, None);
    assert_eq!(store.meta(&id).await.unwrap(), meta);

    let page = store
        .read_page(
            &id,
            &PageRequest::new(995, 10).with_columns(["score", "id"]),
        )
        .await
        .unwrap();
    assert_eq!(page.total_rows, 3500);
    assert_eq!(page.schema.field(0).name(), "score");
    assert_eq!(ids(&page.batches, 1), (995..1005).collect::<Vec<_>>());
    assert_eq!(
        ids(&page.batches, 0),
        (995..1005).map(|i| i * 10).collect::<Vec<_>>()
    );
    assert_eq!(
        page.stats.row_groups,
        vec![0, 1],
        "the page spans two row groups"
    );

    let tail = store
        .read_page(&id, &PageRequest::new(3490, 100))
        .await
        .unwrap();
    assert_eq!(tail.num_rows(), 10);
    let past = store
        .read_page(&id, &PageRequest::new(10_000, 100))
        .await
        .unwrap();
    assert_eq!(past.num_rows(), 0);
    assert_eq!(past.schema.fields().len(), 3);
}

#[tokio::test]
async fn bad_page_requests_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let id = ResultId::generate();
    store
        .write(&id, batches_stream(schema(), vec![batch(0, 10)]))
        .await
        .unwrap();

    let err = store
        .read_page(&id, &PageRequest::new(0, 10).with_columns(["nope"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "results.unknown_column");
    assert!(err.to_string().contains("id, name, score"), "{err}");

    let err = store
        .read_page(&id, &PageRequest::new(0, 10).with_columns(["id", "id"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "results.duplicate_column");

    let err = store
        .read_page(&id, &PageRequest::new(0, 1_000_000))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "results.page_too_large");

    let missing = ResultId::generate();
    let err = store
        .read_page(&missing, &PageRequest::new(0, 10))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "result.not_found");
}

/// Acceptance: a page deep in a 10M-row result opens at most two row groups
/// and fetches about as much as a page at the start.
#[tokio::test]
async fn deep_page_of_ten_million_rows_touches_at_most_two_row_groups() {
    const ROWS: i64 = 10_000_000;
    const BATCH: i64 = 131_072;
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let narrow = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let schema = narrow.clone();
    let generated = futures::stream::iter((0..ROWS).step_by(BATCH as usize)).map(move |from| {
        let n = BATCH.min(ROWS - from);
        Ok(RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(from..from + n))],
        )
        .unwrap())
    });
    let id = ResultId::generate();
    let meta = store
        .write(&id, StreamAdapter::boxed(narrow, Box::pin(generated)))
        .await
        .unwrap();
    assert_eq!(meta.rows, ROWS as u64);
    let groups = meta.row_group_offsets.len() as u64;
    assert!(groups >= 10, "{groups} row groups");

    let first = store
        .read_page(&id, &PageRequest::new(0, 100))
        .await
        .unwrap();
    let deep = store
        .read_page(&id, &PageRequest::new(9_000_000, 100))
        .await
        .unwrap();
    assert_eq!(
        ids(&deep.batches, 0),
        (9_000_000..9_000_100).collect::<Vec<_>>()
    );
    assert!(deep.stats.row_groups.len() <= 2, "{:?}", deep.stats);
    // Only the pages holding the rows are fetched, not the row group.
    let average_group = meta.bytes / groups;
    assert!(
        deep.stats.bytes_fetched < average_group,
        "fetched {} bytes; a row group is about {average_group}",
        deep.stats.bytes_fetched
    );
    assert!(
        deep.stats.bytes_fetched <= 3 * first.stats.bytes_fetched.max(1),
        "deep {:?} vs first {:?}",
        deep.stats,
        first.stats
    );
}

#[tokio::test]
async fn truncation_is_stored_with_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let id = ResultId::generate();
    {
        let store = store(&dir);
        let inner = batches_stream(schema(), vec![batch(0, 100), batch(100, 100)]);
        let limited = LimitedStream::boxed(inner, &Limits::NONE.with_max_rows(150), None);
        let meta = store.write(&id, limited).await.unwrap();
        assert_eq!(meta.rows, 150);
        assert_eq!(meta.truncation, Some(Truncation::MaxRows { limit: 150 }));
    }
    // A new store over the same directory reads it from the footer.
    let reopened = store(&dir);
    assert_eq!(
        reopened.meta(&id).await.unwrap().truncation,
        Some(Truncation::MaxRows { limit: 150 })
    );
}

#[tokio::test]
async fn a_failing_stream_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let id = ResultId::generate();
    let items = vec![
        Ok(batch(0, 10)),
        Err(Error::query(loupe_core::QueryError::new("connection lost"))),
    ];
    let failing = StreamAdapter::boxed(schema(), futures::stream::iter(items));
    let err = store.write(&id, failing).await.unwrap_err();
    assert_eq!(err.code(), "query.failed");
    assert_eq!(
        store.meta(&id).await.unwrap_err().code(),
        "result.not_found"
    );
    let leftovers: Vec<_> = walk(dir.path());
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn results_are_written_once_and_can_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let id = ResultId::generate();
    store
        .write(&id, batches_stream(schema(), vec![batch(0, 5)]))
        .await
        .unwrap();
    let err = store
        .write(&id, batches_stream(schema(), vec![batch(0, 5)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "results.exists");
    store.delete(&id).await.unwrap();
    assert_eq!(
        store.meta(&id).await.unwrap_err().code(),
        "result.not_found"
    );
    assert_eq!(
        store.delete(&id).await.unwrap_err().code(),
        "result.not_found"
    );
}

#[tokio::test]
async fn empty_results_keep_their_schema() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let id = ResultId::generate();
    let meta = store
        .write(&id, batches_stream(schema(), vec![]))
        .await
        .unwrap();
    assert_eq!(meta.rows, 0);
    let page = store
        .read_page(&id, &PageRequest::new(0, 10))
        .await
        .unwrap();
    assert_eq!(page.num_rows(), 0);
    assert_eq!(page.schema.fields().len(), 3);
}

#[tokio::test]
async fn scan_streams_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let id = ResultId::generate();
    store
        .write(
            &id,
            batches_stream(schema(), vec![batch(0, 20_000), batch(20_000, 5)]),
        )
        .await
        .unwrap();
    let columns = ["name".to_owned()];
    let mut stream = store.scan(&id, Some(&columns)).await.unwrap();
    assert_eq!(stream.schema().fields().len(), 1);
    let mut rows = 0;
    let mut nulls = 0;
    while let Some(b) = stream.next().await {
        let b = b.unwrap();
        rows += b.num_rows();
        nulls += b.column(0).null_count();
    }
    assert_eq!(rows, 20_005);
    assert_eq!(nulls, (0..20_005).filter(|i| i % 7 == 0).count());
}

#[tokio::test]
async fn stored_results_can_be_joined_with_sql() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let (a, b) = (ResultId::generate(), ResultId::generate());
    store
        .write(&a, batches_stream(schema(), vec![batch(0, 100)]))
        .await
        .unwrap();
    store
        .write(&b, batches_stream(schema(), vec![batch(50, 100)]))
        .await
        .unwrap();
    let ctx = SessionContext::new();
    ctx.register_table("a", store.table(&ctx, &a).await.unwrap())
        .unwrap();
    ctx.register_table("b", store.table(&ctx, &b).await.unwrap())
        .unwrap();
    let rows = ctx
        .sql("select count(*) as n, sum(a.score) as s from a join b on a.id = b.id")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(ids(&rows, 0), vec![50]);
    assert_eq!(ids(&rows, 1), vec![(50..100).map(|i| i * 10).sum::<i64>()]);
}

#[tokio::test]
async fn object_store_urls_work_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let file_url = format!("file://{}/nested", dir.path().display());
    for location in ["memory://", file_url.as_str()] {
        let store = ParquetResultStore::open(location).unwrap();
        let id = ResultId::generate();
        store
            .write(&id, batches_stream(schema(), vec![batch(0, 42)]))
            .await
            .unwrap();
        let page = store
            .read_page(&id, &PageRequest::new(40, 10))
            .await
            .unwrap();
        assert_eq!(ids(&page.batches, 0), vec![40, 41], "{location}");
    }
    assert!(dir.path().join("nested").is_dir());
    let err = ParquetResultStore::open("nosuchscheme://bucket/x").unwrap_err();
    assert_eq!(err.code(), "config.invalid");
}
