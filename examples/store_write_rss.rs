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
#[path = "support/wide.rs"]
mod wide;
#[path = "support/wide_batches.rs"]
mod wide_batches;
use rss::peak_rss_kb;
use wide_batches::WideBatches;

use std::time::Instant;

use loupe::{ParquetResultStore, ResultId, ResultStore, StreamAdapter};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

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
