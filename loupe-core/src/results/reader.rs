//! An [`AsyncFileReader`] over one object that counts what it fetches, so a
//! page read can report (and tests can assert) how much it touched.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

/// Bytes and requests fetched through a [`CountingReader`].
#[derive(Debug, Default)]
pub(super) struct FetchCounters {
    pub(super) bytes: AtomicU64,
    pub(super) requests: AtomicU64,
}

/// Reads byte ranges of one object, counting them.
#[derive(Debug, Clone)]
pub(super) struct CountingReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
    counters: Arc<FetchCounters>,
}

impl CountingReader {
    pub(super) fn new(store: Arc<dyn ObjectStore>, path: Path, size: u64) -> Self {
        Self {
            store,
            path,
            size,
            counters: Arc::default(),
        }
    }

    pub(super) fn counters(&self) -> Arc<FetchCounters> {
        self.counters.clone()
    }

    fn count(&self, ranges: &[Range<u64>]) {
        let bytes: u64 = ranges.iter().map(|r| r.end.saturating_sub(r.start)).sum();
        self.counters.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.counters
            .requests
            .fetch_add(ranges.len() as u64, Ordering::Relaxed);
    }
}

fn external(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for CountingReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, Result<Bytes>> {
        self.count(std::slice::from_ref(&range));
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, Result<Vec<Bytes>>> {
        self.count(&ranges);
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                // One request usually covers footer and page indexes.
                .with_prefetch_hint(Some(256 * 1024))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}
