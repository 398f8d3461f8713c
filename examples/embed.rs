//! Loupe as a library, end to end: open a datasource from a URL, bind a
//! parameter, stream the result into the Parquet result store, read a page
//! back and export the whole result as CSV. No metadata store, no server:
//! only the engine (`loupe-core`) and the connectors.
//!
//! ```text
//! cargo run --example embed                       # the bundled sample data
//! cargo run --example embed -- postgres://me@localhost/shop "select * from orders where quantity >= {{ min }}"
//! ```
//!
//! The first argument is a datasource URL (a directory of CSV/Parquet/JSON
//! files, `postgres://…` or `mysql://…`); the second a query with a
//! `{{ min }}` integer placeholder. Values are bound by the database, never
//! pasted into the SQL.

use std::sync::Arc;

use loupe::{
    BatchWriter, ExecutionRequest, Executor, ExportFormat, Limits, PageRequest, ParameterDef,
    ParameterType, ParameterValues, ParquetResultStore, ResultId, ResultStore, Statement,
    StreamingExecutor,
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const SAMPLE_SQL: &str =
    "select id, customer_id, quantity from orders where quantity >= {{ min }} order by id";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/sample-data").to_owned());
    let sql = args.next().unwrap_or_else(|| SAMPLE_SQL.to_owned());

    // 1. A datasource from a URL: the registry holds the connectors this
    //    build enabled, and names them when a URL fits none.
    let datasource = loupe::registry().from_url(&url)?;

    // 2. A template with a typed parameter, bound for the datasource's
    //    dialect (`$1` for PostgreSQL and DataFusion, `?` for MySQL).
    let definitions = [ParameterDef::new("min", ParameterType::Integer)];
    let values: ParameterValues = [("min".to_owned(), serde_json::json!(4))].into();
    let statement = Statement::from_template(&sql, datasource.dialect(), &definitions, &values)?;
    println!("bound statement: {}", statement.sql);

    // 3. Stream the result into the Parquet store: batches go from the
    //    source to row groups as they arrive, so memory stays bounded.
    let dir = tempfile::tempdir()?;
    let store = Arc::new(ParquetResultStore::open(
        dir.path()
            .to_str()
            .ok_or("the temporary directory is not UTF-8")?,
    )?);
    let id = ResultId::generate();
    let outcome = StreamingExecutor::new(store.clone())
        .execute(
            ExecutionRequest {
                result_id: id.clone(),
                datasource,
                statement,
                limits: Limits::NONE.with_max_rows(1_000_000),
            },
            Default::default(),
        )
        .await?;
    println!(
        "stored {} rows ({} bytes of Parquet)",
        outcome.result.rows, outcome.result.bytes
    );

    // 4. Read one page back: only the row groups that hold it are read.
    let page = store.read_page(&id, &PageRequest::new(0, 5)).await?;
    println!(
        "first page: {} of {} rows\n{}",
        page.num_rows(),
        page.total_rows,
        loupe::deps::arrow::util::pretty::pretty_format_batches(&page.batches)?
    );

    // 5. Export the whole result as CSV, a batch at a time.
    let mut batches = store.scan(&id, None).await?;
    let mut csv = BatchWriter::new(ExportFormat::Csv, Vec::new(), batches.schema())?;
    while let Some(batch) = futures::StreamExt::next(&mut batches).await {
        csv.write(&batch?)?;
    }
    let csv = csv.finish()?;
    println!(
        "CSV export: {} bytes, starting with {:?}",
        csv.len(),
        String::from_utf8_lossy(&csv[..csv.len().min(60)])
    );
    Ok(())
}
