//! Stores a generated result of ROWS rows (the wide table of the store
//! benchmarks) in a result store in DIR, then, in a second run of this
//! program, evaluates alert conditions over the whole stored result a batch
//! at a time, as the runner does after a run, and prints what they found
//! and the process's peak resident memory (VmHWM from /proc/self/status).
//! Used by `benches/rss.sh` to check that an alert over a large result
//! takes bounded memory.
//!
//! ```text
//! cargo run --release --features services --example alert-eval-rss -- store 5000000 /tmp/alert
//! cargo run --release --features services --example alert-eval-rss -- evaluate /tmp/alert
//! ```

#[path = "support/rss.rs"]
mod rss;
#[path = "support/wide.rs"]
mod wide;
#[path = "support/wide_batches.rs"]
mod wide_batches;
use rss::peak_rss_kb;
use wide_batches::WideBatches;

use std::time::Instant;

use futures::StreamExt;
use loupe::services::{Condition, Evaluator};
use loupe::{ParquetResultStore, ResultId, ResultStore, StreamAdapter};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Where the stored result's id is kept between the two runs.
const ID_FILE: &str = "result-id";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: alert-eval-rss store ROWS DIR | alert-eval-rss evaluate DIR";
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.next().as_deref() {
        Some("store") => {
            let rows: u64 = args.next().ok_or(usage)?.parse()?;
            let dir = args.next().ok_or(usage)?;
            let store = ParquetResultStore::open(&dir)?;
            let batches = WideBatches::new(rows);
            let schema = batches.schema.clone();
            let stream = StreamAdapter::boxed(schema, futures::stream::iter(batches.map(Ok)));
            let id = ResultId::generate();
            let meta = runtime.block_on(store.write(&id, stream))?;
            std::fs::write(std::path::Path::new(&dir).join(ID_FILE), id.as_str())?;
            println!("stored rows={} bytes={}", meta.rows, meta.bytes);
        }
        Some("evaluate") => {
            let dir = args.next().ok_or(usage)?;
            let id = std::fs::read_to_string(std::path::Path::new(&dir).join(ID_FILE))?;
            let store = ParquetResultStore::open(&dir)?;
            let id = ResultId::parse(id.trim())?;
            // Any row with a large amount, every row paid or not, and the
            // last row's amount against a previous value.
            let conditions: Vec<Condition> = serde_json::from_value(serde_json::json!([
                { "kind": "rows", "quantifier": "any", "column": "amount", "op": ">", "value": 990.0 },
                { "kind": "rows", "quantifier": "all", "column": "status", "op": "!=", "value": "void" },
                { "kind": "change", "column": "amount", "change": "changed", "by": { "percent": 10 } },
            ]))?;
            let previous = serde_json::json!(100.0);
            for condition in &conditions {
                let started = Instant::now();
                let mut evaluator = Evaluator::new(condition, Some(&previous));
                let column = condition.column().map(|c| vec![c.to_owned()]);
                let found = runtime.block_on(async {
                    let mut stream = store.scan(&id, column.as_deref()).await?;
                    while let Some(batch) = stream.next().await {
                        evaluator.push(&batch?)?;
                    }
                    Ok::<_, loupe::Error>(evaluator.finish())
                })?;
                println!(
                    "{}: triggered={} {} elapsed_s={:.2}",
                    condition.describe(),
                    found.triggered,
                    found.summary,
                    started.elapsed().as_secs_f64()
                );
            }
            println!("peak_rss_mb={:.1}", peak_rss_kb()? as f64 / 1024.0);
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}
