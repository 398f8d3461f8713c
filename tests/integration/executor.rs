//! A statement on the files datasource, streamed into the Parquet store.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loupe::deps::arrow::array::AsArray;
use loupe::deps::arrow::datatypes::Int64Type;
use loupe::{
    Datasource, ExecutionRequest, Executor, Limits, PageRequest, ParameterDef, ParameterType,
    ParquetResultStore, ResultId, ResultStore, Statement, StreamingExecutor, Truncation,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn sample() -> Arc<dyn Datasource> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample-data");
    loupe::registry().from_url(dir.to_str().unwrap()).unwrap()
}

fn setup() -> (
    tempfile::TempDir,
    Arc<ParquetResultStore>,
    StreamingExecutor,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ParquetResultStore::open(dir.path().to_str().unwrap()).unwrap());
    let executor = StreamingExecutor::new(store.clone());
    (dir, store, executor)
}

fn request(ds: &Arc<dyn Datasource>, sql: &str, limits: Limits) -> ExecutionRequest {
    ExecutionRequest {
        result_id: ResultId::generate(),
        datasource: ds.clone(),
        statement: Statement::from_template(sql, ds.dialect(), &[], &Default::default()).unwrap(),
        limits,
    }
}

fn files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[tokio::test]
async fn a_parameterized_query_becomes_a_stored_result() {
    let ds = sample();
    let (_dir, store, executor) = setup();
    let defs = [ParameterDef::new("status", ParameterType::Text)];
    let values = [("status".to_owned(), json!("returned"))].into();
    let statement = Statement::from_template(
        "select id, customer_id, quantity * unit_price as amount from orders where status = {{status}} order by id",
        ds.dialect(),
        &defs,
        &values,
    )
    .unwrap();
    let id = ResultId::generate();
    let outcome = executor
        .execute(
            ExecutionRequest {
                result_id: id.clone(),
                datasource: ds.clone(),
                statement,
                limits: Limits::NONE,
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        outcome.result.rows, 4057,
        "rows with status 'returned' in the sample"
    );
    assert_eq!(outcome.result.truncation, None);
    let page = store
        .read_page(&id, &PageRequest::new(4050, 100).with_columns(["id"]))
        .await
        .unwrap();
    assert_eq!(page.num_rows(), 7);
    let ids = page.batches[0].column(0).as_primitive::<Int64Type>();
    assert!(
        ids.values().windows(2).all(|w| w[0] < w[1]),
        "ordered by id"
    );
}

#[tokio::test]
async fn limits_truncate_the_stored_result() {
    let ds = sample();
    let (_dir, store, executor) = setup();
    let req = request(
        &ds,
        "select * from orders",
        Limits::NONE.with_max_rows(1000),
    );
    let id = req.result_id.clone();
    let outcome = executor
        .execute(req, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcome.result.rows, 1000);
    assert_eq!(
        store.meta(&id).await.unwrap().truncation,
        Some(Truncation::MaxRows { limit: 1000 })
    );
}

#[tokio::test]
async fn a_timed_out_query_leaves_no_result() {
    let ds = sample();
    let (dir, _store, executor) = setup();
    let req = request(
        &ds,
        "select * from generate_series(1, 10000000000)",
        Limits::NONE.with_timeout(Duration::from_millis(300)),
    );
    let err = executor
        .execute(req, CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "query.timeout");
    assert_eq!(files_in(dir.path()), 0);
}

// Other tests of this binary run at the same time and keep the cores busy
// (password hashing, queries); the bound is far below the minutes the
// statement would take, and far above what a busy two-core machine needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_stops_the_query_promptly() {
    let ds = sample();
    let (dir, _store, executor) = setup();
    let cancel = CancellationToken::new();
    let req = request(
        &ds,
        "select * from generate_series(1, 10000000000)",
        Limits::NONE,
    );
    let canceller = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        canceller.cancel();
    });
    let started = Instant::now();
    let err = executor.execute(req, cancel).await.unwrap_err();
    assert_eq!(err.code(), "query.cancelled");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(files_in(dir.path()), 0, "the partial result is gone");
}

#[tokio::test]
async fn results_of_two_runs_join_in_sql() {
    let ds = sample();
    let (_dir, store, executor) = setup();
    let spend = request(
        &ds,
        "select customer_id, sum(quantity * unit_price) as spent from orders group by customer_id",
        Limits::NONE,
    );
    let people = request(&ds, "select id, country from customers", Limits::NONE);
    let (spend_id, people_id) = (spend.result_id.clone(), people.result_id.clone());
    executor
        .execute(spend, CancellationToken::new())
        .await
        .unwrap();
    executor
        .execute(people, CancellationToken::new())
        .await
        .unwrap();

    let ctx = loupe::deps::datafusion::prelude::SessionContext::new();
    ctx.register_table("spend", store.table(&ctx, &spend_id).await.unwrap())
        .unwrap();
    ctx.register_table("people", store.table(&ctx, &people_id).await.unwrap())
        .unwrap();
    let rows = ctx
        .sql("select count(distinct p.country) as n from spend s join people p on s.customer_id = p.id")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(rows[0].column(0).as_primitive::<Int64Type>().value(0), 10);
}
