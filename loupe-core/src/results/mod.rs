//! Where results live: the [`ResultStore`] trait and its Parquet
//! implementation.
//!
//! A stored result is immutable. It is written once from a stream of
//! batches, read back by page or as a stream, opened as a DataFusion table,
//! and deleted. Every read gives back the Arrow types that were written:
//! the few that Parquet cannot hold are stored in another form, named in
//! the field's metadata ([`STORED_TYPE_KEY`]), and restored on the way out.

pub(crate) mod encoding;
mod parquet;
mod reader;
mod s3;

use crate::codes;
use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::prelude::SessionContext;

pub use self::encoding::STORED_TYPE_KEY;
pub use self::parquet::{ParquetResultStore, StoreOptions};
pub use self::s3::{S3Options, parse_s3_url};
use crate::error::{Error, Result};
use crate::limits::Truncation;
use crate::stream::SendableBatchStream;

/// The identifier of a stored result: 1 to 128 ASCII letters, digits, `-`
/// and `_`, so that it is safe as an object name everywhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct ResultId(String);

impl ResultId {
    /// A new, unique, time-ordered id (a UUIDv7).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().simple().to_string())
    }

    /// Checks and wraps an id.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `id` is empty, too long or has other
    /// characters.
    pub fn parse(id: &str) -> Result<Self> {
        let valid = !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(Self(id.to_owned()))
        } else {
            Err(Error::invalid_input(
                codes::RESULTS_INVALID_ID,
                format!("{id:?} is not a result id: use 1 to 128 letters, digits, '-' or '_'"),
            ))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResultId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ResultId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// What is known about a stored result.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultMeta {
    /// The result's id.
    pub id: ResultId,
    /// The Arrow schema of its rows.
    pub schema: SchemaRef,
    /// How many rows it has.
    pub rows: u64,
    /// Its stored size in bytes.
    pub bytes: u64,
    /// The first row number of each row group, ascending; page reads use
    /// these to open only the row groups they need.
    pub row_group_offsets: Vec<u64>,
    /// Set when a limit cut the result short.
    pub truncation: Option<Truncation>,
}

impl ResultMeta {
    /// The row groups that hold rows `offset..offset + limit`.
    pub fn row_groups_for(&self, offset: u64, limit: u64) -> std::ops::Range<usize> {
        let end = offset.saturating_add(limit).min(self.rows);
        if offset >= end {
            return 0..0;
        }
        // The group containing `offset`: the last one starting at or before it.
        let first = self
            .row_group_offsets
            .partition_point(|&start| start <= offset)
            .saturating_sub(1);
        let last = self.row_group_offsets.partition_point(|&start| start < end);
        first..last
    }
}

/// Rows in a page when the reader asks for no number.
pub const DEFAULT_PAGE_ROWS: u64 = 100;
/// The most rows one page read may ask for, unless a store is tuned
/// otherwise ([`StoreOptions::max_page_rows`]): a page is held in memory
/// and sent whole, so larger reads are downloads.
pub const MAX_PAGE_ROWS: u64 = 10_000;

/// Which rows and columns of a result to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// The first row, counted from 0.
    pub offset: u64,
    /// How many rows at most.
    pub limit: u64,
    /// Which columns, in the order wanted; `None` for all.
    pub columns: Option<Vec<String>>,
}

impl PageRequest {
    /// `limit` rows from `offset`, all columns.
    pub fn new(offset: u64, limit: u64) -> Self {
        Self {
            offset,
            limit,
            columns: None,
        }
    }

    /// The same page with only `columns`.
    pub fn with_columns(mut self, columns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }
}

/// Rows read from a stored result.
#[derive(Debug, Clone)]
pub struct Page {
    /// The schema of `batches` (only the requested columns).
    pub schema: SchemaRef,
    /// The rows, in order.
    pub batches: Vec<RecordBatch>,
    /// The row number of the first row.
    pub offset: u64,
    /// Rows in the whole result.
    pub total_rows: u64,
    /// What the read cost.
    pub stats: ReadStats,
}

impl Page {
    /// Rows in this page.
    pub fn num_rows(&self) -> u64 {
        self.batches.iter().map(|b| b.num_rows() as u64).sum()
    }
}

/// What a read fetched from storage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Indexes of the row groups the read opened.
    pub row_groups: Vec<usize>,
    /// Bytes fetched from the object store, footer included.
    pub bytes_fetched: u64,
    /// Range requests made to the object store.
    pub requests: u64,
}

/// Stores results and reads them back.
///
/// Implementations are shared between tasks (`Arc<dyn ResultStore>`).
#[async_trait]
pub trait ResultStore: fmt::Debug + Send + Sync {
    /// Writes `stream` as result `id`, batch by batch as it arrives: memory
    /// does not grow with the size of the result. The result becomes
    /// visible only when complete.
    ///
    /// # Errors
    /// An error from the stream ends the write, removes what was written and
    /// is returned as is. [`Error::Store`] when the store fails;
    /// [`Error::InvalidInput`] (`results.exists`) when `id` is taken.
    ///
    /// # Cancellation
    /// Dropping the future abandons the write; the partial object is not
    /// visible as a result.
    async fn write(&self, id: &ResultId, stream: SendableBatchStream) -> Result<ResultMeta>;

    /// The result's metadata.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such result.
    async fn meta(&self, id: &ResultId) -> Result<ResultMeta>;

    /// Reads one page, opening only the row groups that hold it.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown result; [`Error::InvalidInput`]
    /// for an unknown column or a page larger than the store allows.
    async fn read_page(&self, id: &ResultId, page: &PageRequest) -> Result<Page>;

    /// Streams the whole result (optionally only `columns`), for downloads.
    async fn scan(&self, id: &ResultId, columns: Option<&[String]>) -> Result<SendableBatchStream>;

    /// Deletes the result.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such result.
    async fn delete(&self, id: &ResultId) -> Result<()>;

    /// The result as a DataFusion table in `ctx`, for SQL across results.
    async fn table(&self, ctx: &SessionContext, id: &ResultId) -> Result<Arc<dyn TableProvider>>;

    /// Checks that the store takes writes now, for readiness and start-up
    /// checks: writes a small object and removes it. The default trusts
    /// the store.
    ///
    /// # Errors
    /// [`Error::Store`] naming the store and the cause.
    async fn check_writable(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Schema;

    fn meta(offsets: Vec<u64>, rows: u64) -> ResultMeta {
        ResultMeta {
            id: ResultId::generate(),
            schema: Arc::new(Schema::empty()),
            rows,
            bytes: 0,
            row_group_offsets: offsets,
            truncation: None,
        }
    }

    #[test]
    fn row_groups_for_a_page() {
        let m = meta(vec![0, 100, 200, 300], 350);
        assert_eq!(m.row_groups_for(0, 10), 0..1);
        assert_eq!(m.row_groups_for(95, 10), 0..2);
        assert_eq!(m.row_groups_for(100, 100), 1..2);
        assert_eq!(m.row_groups_for(340, 100), 3..4);
        assert_eq!(m.row_groups_for(350, 10), 0..0);
        assert_eq!(m.row_groups_for(10, 0), 0..0);
        assert_eq!(meta(vec![], 0).row_groups_for(0, 10), 0..0);
    }

    #[test]
    fn result_ids_are_safe_names() {
        assert!(ResultId::parse("run_01-abc").is_ok());
        for bad in ["", "../x", "a/b", "a b", &"x".repeat(129)] {
            assert!(ResultId::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(ResultId::generate().as_str().len(), 32);
    }
}
