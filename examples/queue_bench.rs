//! Throughput of trivial runs through the run queue: `select {{ n }}` on
//! the bundled `files` datasource, executed by one runner with 1, 2 and 4
//! workers, results written to a local Parquet store.
//!
//! ```text
//! cargo run --release --example queue-bench -- METADATA [RUNS]
//! ```
//!
//! METADATA is a `postgres://` URL (each worker count gets a fresh schema
//! in that database, dropped at the end) or a directory for SQLite files.
//! For each worker count it prints:
//!
//! - `drain`: RUNS runs (default 2000) queued first, then drained; runs/s
//!   from the first claim to the last result;
//! - `paced`: runs submitted at half the drain rate for 4 seconds; p50 and
//!   p99 of the queue wait (queued to started) and of the whole run
//!   (queued to finished).

use std::sync::Arc;
use std::time::{Duration, Instant};

use loupe::services::meta::MetadataStore;
use loupe::services::runner::{Runner, RunnerConfig};
use loupe::services::{Actor, DatasourceInput, KeyRing, NewQuery, Services, ServicesConfig, Setup};
use loupe::{ParameterDef, ParameterType, ParquetResultStore, ResultStore};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Bench {
    services: Services,
    store: MetadataStore,
    results: Arc<dyn ResultStore>,
    admin: Actor,
    query: String,
    cleanup: Option<(String, String)>,
}

async fn setup(metadata: &str, label: &str, dir: &std::path::Path) -> Result<Bench> {
    let (location, cleanup) = if metadata.starts_with("postgres") {
        let schema = format!("queue_bench_{label}_{}", uuid::Uuid::now_v7().simple());
        let root = MetadataStore::connect(metadata).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(root.pool())
            .await?;
        root.close().await;
        let separator = if metadata.contains('?') { '&' } else { '?' };
        (
            format!("{metadata}{separator}options[search_path]={schema}"),
            Some((metadata.to_owned(), schema)),
        )
    } else {
        let path = std::path::Path::new(metadata).join(format!("queue-bench-{label}.db"));
        let _ = std::fs::remove_file(&path);
        (path.to_string_lossy().into_owned(), None)
    };
    let store = MetadataStore::open(&location).await?;
    let results: Arc<dyn ResultStore> = Arc::new(ParquetResultStore::open(
        dir.join(label).to_str().ok_or("path")?,
    )?);
    let services = Services::new(
        store.clone(),
        loupe::registry(),
        ServicesConfig {
            secret_keys: Some(KeyRing::new(&KeyRing::generate_key()?, &[])?),
            // The drain phase queues every run up front, as one user.
            queued_runs_per_user: 0,
            ..ServicesConfig::default()
        },
        Some(results.clone()),
    )?;
    let (_, admin) = services
        .organizations
        .create_with_admin(Setup {
            org_name: "Bench".into(),
            admin_email: "bench@loupe.test".into(),
            admin_name: "Bench".into(),
            admin_password: "a long queue passphrase".to_owned().into(),
        })
        .await?;
    let admin = services.users.actor(&admin.id, None).await?;
    let mut options = serde_json::Map::new();
    options.insert(
        "root".into(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/sample-data").into(),
    );
    let source = services
        .datasources
        .create(
            &admin,
            DatasourceInput {
                name: "sample".into(),
                kind: "files".into(),
                options,
            },
        )
        .await?;
    let query = services
        .queries
        .create(
            &admin,
            NewQuery {
                name: "Trivial".into(),
                datasource_id: source.id,
                sql: "select {{ n }} as n".into(),
                parameters: vec![ParameterDef::new("n", ParameterType::Integer)],
                ..NewQuery::default()
            },
        )
        .await?;
    Ok(Bench {
        services,
        store,
        results,
        admin,
        query: query.id,
        cleanup,
    })
}

async fn finished(store: &MetadataStore) -> Result<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM runs WHERE status IN ('succeeded', 'failed', 'cancelled')",
    )
    .fetch_one(store.pool())
    .await?;
    Ok(n)
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1000.0
}

async fn one(metadata: &str, workers: usize, runs: i64, dir: &std::path::Path) -> Result<()> {
    let bench = setup(metadata, &format!("w{workers}"), dir).await?;
    let values = |n: i64| [("n".to_owned(), serde_json::json!(n))].into();
    for n in 0..runs {
        bench
            .services
            .runs
            .enqueue_query(&bench.admin, &bench.query, &values(n))
            .await?;
    }
    let config = RunnerConfig {
        workers,
        per_datasource: workers,
        per_user: workers,
        poll: Duration::from_millis(20),
        ..RunnerConfig::default()
    };
    let started = Instant::now();
    let handle = Runner::new(&bench.services, bench.results.clone(), config).start();
    while finished(&bench.store).await? < runs {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain = runs as f64 / started.elapsed().as_secs_f64();
    let (failed,): (i64,) = sqlx::query_as("SELECT count(*) FROM runs WHERE status <> 'succeeded'")
        .fetch_one(bench.store.pool())
        .await?;

    // Paced: half the drain rate, for 4 seconds.
    let rate = (drain / 2.0).max(1.0);
    let paced_from = loupe::services::meta::now_micros();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let total = (rate * 4.0).round() as i64;
    let mut next = tokio::time::Instant::now();
    for n in 0..total {
        next += interval;
        tokio::time::sleep_until(next).await;
        bench
            .services
            .runs
            .enqueue_query(&bench.admin, &bench.query, &values(runs + n))
            .await?;
    }
    while finished(&bench.store).await? < runs + total {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    handle.shutdown().await;
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT queued_at, started_at, finished_at FROM runs WHERE queued_at >= $1 AND status = 'succeeded'",
    )
    .bind(paced_from)
    .fetch_all(bench.store.pool())
    .await?;
    let mut waits: Vec<i64> = rows.iter().map(|(q, s, _)| s - q).collect();
    let mut totals: Vec<i64> = rows.iter().map(|(q, _, f)| f - q).collect();
    waits.sort_unstable();
    totals.sort_unstable();
    println!(
        "workers={workers} drain_runs={runs} drain_runs_per_s={drain:.0} failed={failed} paced_rate={rate:.0}/s paced_runs={} \
         queue_wait_p50_ms={:.1} queue_wait_p99_ms={:.1} run_p50_ms={:.1} run_p99_ms={:.1}",
        rows.len(),
        percentile(&waits, 0.50),
        percentile(&waits, 0.99),
        percentile(&totals, 0.50),
        percentile(&totals, 0.99),
    );
    bench.store.close().await;
    if let Some((url, schema)) = bench.cleanup {
        let root = MetadataStore::connect(&url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(root.pool())
            .await?;
        root.close().await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let metadata = args
        .next()
        .ok_or("usage: queue-bench METADATA(postgres://… | DIR) [RUNS]")?;
    let runs: i64 = args.next().map_or(Ok(2000), |r| r.parse())?;
    let dir = tempfile::tempdir()?;
    for workers in [1, 2, 4] {
        one(&metadata, workers, runs, dir.path()).await?;
    }
    Ok(())
}
