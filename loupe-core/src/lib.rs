//! Loupe's engine: the pieces every host shares.
//!
//! - [`Datasource`] and [`DatasourceFactory`]: places that answer SQL, and
//!   how they are built; a [`Registry`] maps kinds to factories.
//! - [`Template`] and [`Statement`]: SQL with `{{ name }}` placeholders, bound
//!   to typed [`Value`]s; values never enter the SQL text.
//! - [`Limits`] and [`LimitedStream`]: time, row and byte bounds.
//! - [`ResultStore`] and [`ParquetResultStore`]: results as Parquet, paged
//!   reads, DataFusion tables over results.
//! - [`Executor`] and [`StreamingExecutor`]: a statement in, a stored result out.
//! - [`BatchWriter`]: results as CSV, JSON, NDJSON, Parquet, Arrow or XLSX.
//! - [`Error`]: one error type with a stable code and a kind.
//!
//! Connectors live in `loupe-connectors`; this crate never names one.
//!
//! ```
//! use loupe_core::{Limits, ParquetResultStore, PageRequest, ResultId, ResultStore, batches_stream};
//! use arrow::array::{Int64Array, RecordBatch};
//! use std::sync::Arc;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> loupe_core::Result<()> {
//! let dir = tempfile::tempdir().map_err(|e| loupe_core::Error::internal(e.to_string()))?;
//! let store = ParquetResultStore::open(dir.path().to_str().unwrap_or_default())?;
//! let batch = RecordBatch::try_from_iter([("n", Arc::new(Int64Array::from_iter_values(0..1000)) as _)])?;
//! let id = ResultId::generate();
//! let meta = store.write(&id, batches_stream(batch.schema(), vec![batch])).await?;
//! assert_eq!(meta.rows, 1000);
//! let page = store.read_page(&id, &PageRequest::new(990, 50)).await?;
//! assert_eq!(page.num_rows(), 10);
//! # Ok(())
//! # }
//! ```

pub mod codes;
mod datasource;
mod error;
mod executor;
mod export;
mod limits;
mod params;
mod registry;
mod restrictions;
mod results;
mod stream;
mod template;

pub use codes::Code;
pub use datasource::{
    CatalogInfo, ColumnInfo, Datasource, DatasourceFactory, DatasourceOptions, OptionKind,
    OptionSpec, PoolStatus, SchemaInfo, TableInfo, TableKind, parse_options,
};
pub use error::{BoxError, Error, ErrorKind, FieldError, QueryError, Result};
pub use executor::{ExecutionOutcome, ExecutionRequest, Executor, StreamingExecutor};
pub use export::{BatchWriter, CsvFormulas, ExportFormat, ExportOptions, json_rows};
pub use limits::{LimitedStream, Limits, Truncation};
pub use params::{
    ItemType, MAX_LIST_VALUES, MAX_PARAMETER_NAME, ParameterDef, ParameterError, ParameterType,
    ParameterValues, Value, parameters_from_flags,
};
pub use registry::Registry;
pub use restrictions::{Restrictions, RowFilter};
pub use results::{
    DEFAULT_PAGE_ROWS, MAX_PAGE_ROWS, Page, PageRequest, ParquetResultStore, ReadStats, ResultId,
    ResultMeta, ResultStore, S3Options, STORED_TYPE_KEY, StoreOptions, parse_s3_url,
};
pub use stream::{
    BatchStream, SendableBatchStream, StreamAdapter, batch_data_size, batches_stream,
};
pub use template::{
    BoundParam, Dialect, Placeholder, Position, SqlContext, Statement, Template, TemplateError,
};

/// The Arrow, DataFusion and Parquet crates Loupe is built on, so that
/// embedders use the same versions.
pub mod deps {
    pub use arrow;
    pub use datafusion;
    pub use object_store;
    pub use parquet;
}
