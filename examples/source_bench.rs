//! Reads one query from a database through Loupe's `postgres` or `mysql`
//! datasource (whichever the URL names) and prints how many rows came back,
//! how long it took and the process's peak resident memory (VmHWM from
//! /proc/self/status). Used by `benches/postgres.sh` and `benches/mysql.sh`
//! to compare Loupe with the databases' own clients, ConnectorX and ADBC.
//!
//! ```text
//! cargo run --release --example source-bench -- URL SQL MODE
//! ```
//!
//! URL is any URL the registry knows (`postgres://…`, `mysql://…`). MODE is
//! one of:
//!
//! - `arrow`: drain the stream into Arrow batches in memory, count the rows
//!   and drop each batch (for PostgreSQL, the default transfer: `COPY … TO
//!   STDOUT (FORMAT binary)` for a plain query; for MySQL, a prepared
//!   statement over the binary protocol);
//! - `arrow-rows`: PostgreSQL only; the same, with `transfer=rows` added to
//!   the URL, so rows come through an extended-protocol portal instead;
//! - `parquet DIR`: write the result through a `ParquetResultStore` at DIR.
//!
//! The time covers building the datasource, connecting and reading every row
//! (and, for `parquet`, writing it).

#[path = "support/rss.rs"]
mod rss;
use rss::peak_rss_kb;

use std::time::Instant;

use futures::StreamExt;
use loupe::{Limits, ParquetResultStore, ResultId, ResultStore, Statement};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "usage: source-bench URL SQL (arrow | arrow-rows | parquet DIR)";

enum Mode {
    Arrow,
    ArrowRows,
    Parquet(String),
}

impl Mode {
    fn name(&self) -> &'static str {
        match self {
            Mode::Arrow => "arrow",
            Mode::ArrowRows => "arrow-rows",
            Mode::Parquet(_) => "parquet",
        }
    }
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or(USAGE)?;
    let sql = args.next().ok_or(USAGE)?;
    let mode = match args.next().ok_or(USAGE)?.as_str() {
        "arrow" => Mode::Arrow,
        "arrow-rows" => Mode::ArrowRows,
        "parquet" => Mode::Parquet(args.next().ok_or(USAGE)?),
        other => return Err(format!("unknown mode {other:?}; {USAGE}").into()),
    };
    if args.next().is_some() {
        return Err(USAGE.into());
    }
    let url = match mode {
        Mode::ArrowRows if !is_postgres(&url) => {
            return Err(format!("arrow-rows needs a postgres:// URL; {USAGE}").into());
        }
        Mode::ArrowRows => with_option(&url, "transfer=rows"),
        _ => url,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let rows = runtime.block_on(run(&url, &sql, &mode))?;
    let seconds = started.elapsed().as_secs_f64();
    let peak_kb = peak_rss_kb()?;
    println!(
        "mode={} rows={rows} seconds={seconds:.3} peak_rss_mb={:.1}",
        mode.name(),
        peak_kb as f64 / 1024.0
    );
    Ok(())
}

/// Runs `sql` on the datasource at `url`; returns the number of rows read.
async fn run(url: &str, sql: &str, mode: &Mode) -> Result<u64> {
    let source = loupe::registry().from_url(url)?;
    let statement = Statement::from_template(sql, source.dialect(), &[], &Default::default())?;
    let mut stream = source.execute(&statement, &Limits::NONE).await?;
    match mode {
        Mode::Arrow | Mode::ArrowRows => {
            let mut rows = 0u64;
            while let Some(batch) = stream.next().await {
                rows += batch?.num_rows() as u64;
            }
            Ok(rows)
        }
        Mode::Parquet(dir) => {
            let store = ParquetResultStore::open(dir)?;
            let meta = store.write(&ResultId::generate(), stream).await?;
            Ok(meta.rows)
        }
    }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `url` with `option` (`key=value`) added to its query string.
fn with_option(url: &str, option: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{option}")
}
