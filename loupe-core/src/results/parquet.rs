//! [`ParquetResultStore`]: one zstd-compressed Parquet object per result, on
//! any `object_store` (a local directory by default).
//!
//! The Parquet footer is the result's metadata: schema, row count, row-group
//! sizes (from which the row offsets follow) and Loupe's own keys. There is no
//! second object to keep consistent, and a result is visible exactly when its
//! upload has completed. Footers are cached per result (results never change),
//! so a page read after the first costs only the pages it needs.

use crate::codes;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::{AsyncArrowWriter, ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::{KeyValue, PageIndexPolicy, ParquetMetaData};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use url::Url;

use super::encoding::{Restore, Storage};
use super::reader::CountingReader;
use super::s3::S3Options;
use super::{Page, PageRequest, ReadStats, ResultId, ResultMeta, ResultStore};
use crate::error::{Error, Result};
use crate::limits::Truncation;
use crate::stream::{SendableBatchStream, StreamAdapter};

/// Footer key holding the result's [`Truncation`] as JSON.
const TRUNCATION_KEY: &str = "loupe.truncation";
/// Rows per batch when scanning a whole result.
const SCAN_BATCH_ROWS: usize = 8192;
/// Footers kept in memory.
const CACHED_FOOTERS: usize = 256;

/// Tuning of a [`ParquetResultStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Most rows in one row group.
    pub row_group_rows: usize,
    /// Most (estimated, encoded) bytes in one row group; bounds write memory.
    pub row_group_bytes: usize,
    /// Most rows one page read may ask for.
    pub max_page_rows: u64,
    /// zstd compression level (1 is fast and still small).
    pub zstd_level: i32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            row_group_rows: 128 * 1024,
            row_group_bytes: 64 * 1024 * 1024,
            max_page_rows: super::MAX_PAGE_ROWS,
            zstd_level: 1,
        }
    }
}

impl StoreOptions {
    /// The Parquet writer settings results are written with. Also used by
    /// hosts that write Parquet downloads, so that both look the same.
    pub fn writer_properties(&self) -> Result<WriterProperties> {
        let level = ZstdLevel::try_new(self.zstd_level)
            .map_err(|e| Error::config(format!("zstd level {}: {e}", self.zstd_level)))?;
        if self.row_group_rows == 0 || self.row_group_bytes == 0 {
            return Err(Error::config(
                "row_group_rows and row_group_bytes must be greater than 0",
            ));
        }
        Ok(WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_max_row_group_row_count(Some(self.row_group_rows))
            .set_max_row_group_bytes(Some(self.row_group_bytes))
            // Page statistics imply an offset index: reads skip to the page
            // that holds an offset instead of decoding from the group start.
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_created_by(format!("loupe {}", env!("CARGO_PKG_VERSION")))
            .build())
    }
}

/// Results as Parquet objects under a prefix of an object store.
pub struct ParquetResultStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    location: String,
    /// Where this store is registered in DataFusion sessions:
    /// `loupe-results://<instance>/`.
    table_url: String,
    options: StoreOptions,
    footers: Mutex<FooterCache>,
    /// The directory, when the store is one on this machine.
    local_dir: Option<std::path::PathBuf>,
}

impl fmt::Debug for ParquetResultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParquetResultStore")
            .field("location", &self.location)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ParquetResultStore {
    /// Opens a store at `location`: a local directory (created if missing),
    /// or an object store URL such as `file:///var/lib/loupe/results`,
    /// `memory://` or (with the `s3` feature) `s3://bucket/prefix`.
    ///
    /// # Errors
    /// [`Error::Config`] when the location cannot be used.
    pub fn open(location: &str) -> Result<Self> {
        if location.starts_with("s3://") {
            return Self::open_s3(location, &S3Options::default());
        }
        if location.contains("://") {
            let url = Url::parse(location)
                .map_err(|e| Error::config(format!("result store URL {location:?}: {e}")))?;
            let (store, prefix) = object_store::parse_url(&url).map_err(|e| {
                Error::config(format!(
                    "result store URL {location:?}: {e} (is the scheme's feature enabled?)"
                ))
            })?;
            let mut opened = Self::new(Arc::from(store), prefix).with_location(location);
            if url.scheme() == "file" {
                private_dir(std::path::Path::new(url.path()))?;
                // The file store's paths start at the root: the prefix is
                // part of every object path.
                opened.local_dir = Some("/".into());
            }
            return Ok(opened);
        }
        private_dir(std::path::Path::new(location))?;
        let store = LocalFileSystem::new_with_prefix(location)
            .map_err(|e| Error::config(format!("result directory {location:?}: {e}")))?;
        let mut opened = Self::new(Arc::new(store), Path::default()).with_location(location);
        opened.local_dir = Some(location.into());
        Ok(opened)
    }

    /// Opens a store in an S3-compatible object store at `location`
    /// (`s3://bucket/prefix`), reached as `options` say; what they leave
    /// unset comes from the `AWS_*` environment variables. Nothing is
    /// sent before the first read or write: see
    /// [`check_writable`](ResultStore::check_writable).
    ///
    /// # Errors
    /// [`Error::Config`] when the URL or the options cannot be used, or
    /// when this build has no `s3` feature.
    pub fn open_s3(location: &str, options: &S3Options) -> Result<Self> {
        #[cfg(feature = "s3")]
        {
            let (store, prefix) = super::s3::store(location, options)?;
            Ok(Self::new(store, prefix).with_location(location))
        }
        #[cfg(not(feature = "s3"))]
        {
            let _ = options;
            super::s3::parse_s3_url(location)?;
            Err(Error::config(format!(
                "result store URL {location:?}: this build cannot reach S3; build with the `s3` feature"
            )))
        }
    }

    /// Makes a stored result readable by its owner only, on a local
    /// directory: results hold whatever the queries returned.
    fn make_private(&self, path: &Path) -> Result<()> {
        let Some(dir) = &self.local_dir else {
            return Ok(());
        };
        let file = dir.join(path.as_ref());
        set_mode(&file, 0o600)
            .map_err(|e| Error::store(format!("restricting {}", file.display()), e))
    }

    /// A store over `store`, keeping results under `prefix`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path) -> Self {
        let instance = uuid::Uuid::new_v4().simple();
        let table_url = format!("loupe-results://{instance}/");
        Self {
            location: store.to_string(),
            store,
            prefix,
            table_url,
            options: StoreOptions::default(),
            footers: Mutex::new(FooterCache::default()),
            local_dir: None,
        }
    }

    /// The same store with other tuning.
    pub fn with_options(mut self, options: StoreOptions) -> Self {
        self.options = options;
        self
    }

    fn with_location(mut self, location: &str) -> Self {
        self.location = location.to_owned();
        self
    }

    /// The tuning in use.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    fn path(&self, id: &ResultId) -> Path {
        self.prefix.clone().join(format!("{id}.parquet"))
    }

    /// The footer of result `id`, from the cache or the store.
    async fn footer(&self, id: &ResultId) -> Result<Arc<Footer>> {
        if let Some(hit) = self.cache().get(id) {
            return Ok(hit);
        }
        let path = self.path(id);
        let head = self
            .store
            .head(&path)
            .await
            .map_err(|e| object_error(e, id, "read"))?;
        let mut reader = CountingReader::new(self.store.clone(), path, head.size);
        let options = ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Optional);
        let metadata = ArrowReaderMetadata::load_async(&mut reader, options)
            .await
            .map_err(|e| parquet_error(e, id, "read the footer of"))?;
        let footer = Arc::new(Footer {
            restore: Restore::for_stored(metadata.schema()),
            metadata,
            size: head.size,
        });
        self.cache().insert(id.clone(), footer.clone());
        Ok(footer)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, FooterCache> {
        // The cache holds no invariant a panic could break; keep using it.
        self.footers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reader(&self, id: &ResultId, footer: &Footer) -> CountingReader {
        CountingReader::new(self.store.clone(), self.path(id), footer.size)
    }

    fn meta_of(&self, id: &ResultId, footer: &Footer) -> ResultMeta {
        describe(
            id,
            footer.restore.schema().clone(),
            footer.metadata.metadata(),
            footer.size,
        )
    }
}

#[async_trait]
impl ResultStore for ParquetResultStore {
    async fn write(&self, id: &ResultId, mut stream: SendableBatchStream) -> Result<ResultMeta> {
        let path = self.path(id);
        match self.store.head(&path).await {
            Ok(_) => {
                return Err(Error::invalid_input(
                    codes::RESULTS_EXISTS,
                    format!("result {id} already exists; results are written once"),
                ));
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(object_error(e, id, "write")),
        }
        let schema = stream.schema();
        // Types Parquet cannot hold are written in their stored forms.
        let storage = Storage::for_schema(&schema)?;
        let props = self.options.writer_properties()?;
        let upload = BufWriter::new(self.store.clone(), path);
        let mut writer = AsyncArrowWriter::try_new(upload, storage.schema().clone(), Some(props))
            .map_err(|e| parquet_error(e, id, "start writing"))?;

        let written: Result<(ParquetMetaData, Option<Truncation>)> = async {
            while let Some(batch) = stream.next().await {
                writer
                    .write(&storage.encode(&batch?)?)
                    .await
                    .map_err(|e| parquet_error(e, id, "write"))?;
            }
            let truncation = stream.truncation();
            if let Some(t) = truncation {
                let json = serde_json::to_string(&t)
                    .map_err(|e| Error::internal_from("encode truncation", e))?;
                writer.append_key_value_metadata(KeyValue::new(TRUNCATION_KEY.to_owned(), json));
            }
            let metadata = writer
                .finish()
                .await
                .map_err(|e| parquet_error(e, id, "finish"))?;
            Ok((metadata, truncation))
        }
        .await;

        match written {
            Ok((metadata, truncation)) => {
                self.make_private(&self.path(id))?;
                let bytes = writer.bytes_written() as u64;
                // The schema reads give back (packed columns whose values
                // have a stored form read back unpacked).
                let read_schema = Restore::for_stored(storage.schema()).schema().clone();
                let mut meta = describe(id, read_schema, &metadata, bytes);
                meta.truncation = truncation;
                Ok(meta)
            }
            Err(e) => {
                // Nothing becomes visible: abandon the upload.
                let mut upload = writer.into_inner();
                if let Err(abort) = upload.abort().await {
                    tracing::warn!(result = %id, error = %abort, "could not abort a failed result upload");
                }
                Err(e)
            }
        }
    }

    async fn meta(&self, id: &ResultId) -> Result<ResultMeta> {
        let footer = self.footer(id).await?;
        Ok(self.meta_of(id, &footer))
    }

    async fn read_page(&self, id: &ResultId, page: &PageRequest) -> Result<Page> {
        if page.limit > self.options.max_page_rows {
            return Err(Error::invalid_input(
                codes::RESULTS_PAGE_TOO_LARGE,
                format!(
                    "a page may have at most {} rows, {} were asked for; download the result for more",
                    self.options.max_page_rows, page.limit
                ),
            ));
        }
        let footer = self.footer(id).await?;
        let meta = self.meta_of(id, &footer);
        let projection = Projection::new(footer.metadata.schema(), page.columns.as_deref())?;
        let groups = meta.row_groups_for(page.offset, page.limit);
        let empty = Page {
            schema: projection.schema.clone(),
            batches: Vec::new(),
            offset: page.offset,
            total_rows: meta.rows,
            stats: ReadStats::default(),
        };
        let Some(&group_start) = meta.row_group_offsets.get(groups.start) else {
            return Ok(empty);
        };
        if groups.is_empty() {
            return Ok(empty);
        }

        let reader = self.reader(id, &footer);
        let counters = reader.counters();
        let stream =
            ParquetRecordBatchStreamBuilder::new_with_metadata(reader, footer.metadata.clone())
                .with_row_groups(groups.clone().collect())
                .with_offset(to_usize(page.offset - group_start)?)
                .with_limit(to_usize(page.limit)?)
                .with_projection(projection.mask(&footer.metadata))
                .with_batch_size(to_usize(page.limit.clamp(1, SCAN_BATCH_ROWS as u64))?)
                .build()
                .map_err(|e| parquet_error(e, id, "read"))?;
        let batches: Vec<RecordBatch> = stream
            .map_err(|e| parquet_error(e, id, "read"))
            .and_then(|b| futures::future::ready(projection.output(b)))
            .try_collect()
            .await?;
        Ok(Page {
            schema: projection.schema,
            batches,
            offset: page.offset,
            total_rows: meta.rows,
            stats: ReadStats {
                row_groups: groups.collect(),
                bytes_fetched: counters.bytes.load(Ordering::Relaxed),
                requests: counters.requests.load(Ordering::Relaxed),
            },
        })
    }

    async fn scan(&self, id: &ResultId, columns: Option<&[String]>) -> Result<SendableBatchStream> {
        let footer = self.footer(id).await?;
        let projection = Projection::new(footer.metadata.schema(), columns)?;
        let stream = ParquetRecordBatchStreamBuilder::new_with_metadata(
            self.reader(id, &footer),
            footer.metadata.clone(),
        )
        .with_projection(projection.mask(&footer.metadata))
        .with_batch_size(SCAN_BATCH_ROWS)
        .build()
        .map_err(|e| parquet_error(e, id, "read"))?;
        let schema = projection.schema.clone();
        let id = id.clone();
        let batches = stream
            .map(move |b| {
                b.map_err(|e| parquet_error(e, &id, "read"))
                    .and_then(|b| projection.output(b))
            })
            .boxed();
        Ok(StreamAdapter::boxed(schema, batches))
    }

    async fn check_writable(&self) -> Result<()> {
        let probe = self
            .prefix
            .clone()
            .join(format!(".ready-{}", uuid::Uuid::now_v7().simple()));
        let failed =
            |e: object_store::Error| Error::store(format!("{} takes no writes", self.location), e);
        self.store
            .put(&probe, bytes::Bytes::from_static(b"ok").into())
            .await
            .map_err(failed)?;
        self.store.delete(&probe).await.map_err(failed)
    }

    async fn delete(&self, id: &ResultId) -> Result<()> {
        self.cache().remove(id);
        self.store
            .delete(&self.path(id))
            .await
            .map_err(|e| object_error(e, id, "delete"))
    }

    async fn table(&self, ctx: &SessionContext, id: &ResultId) -> Result<Arc<dyn TableProvider>> {
        let footer = self.footer(id).await?;
        if footer.restore.is_needed() {
            // A listing table would show the stored forms of the fields
            // that have one; this reads the result whole, restored.
            let schema = footer.restore.schema().clone();
            let partition = RestoredPartition {
                reader: self.reader(id, &footer),
                footer,
                id: id.clone(),
            };
            let table = StreamingTable::try_new(schema, vec![Arc::new(partition)])
                .map_err(|e| Error::internal_from(format!("open result {id} as a table"), e))?;
            return Ok(Arc::new(table));
        }
        let base = Url::parse(&self.table_url)
            .map_err(|e| Error::internal_from(format!("store URL {}", self.table_url), e))?;
        ctx.runtime_env()
            .register_object_store(&base, self.store.clone());
        let url = format!("{}{}", self.table_url, self.path(id));
        let table_url = ListingTableUrl::parse(&url)
            .map_err(|e| Error::internal_from(format!("table URL {url}"), e))?;
        let listing =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new(table_url)
            .with_listing_options(listing)
            .with_schema(footer.metadata.schema().clone());
        let table = ListingTable::try_new(config)
            .map_err(|e| Error::internal_from(format!("open result {id} as a table"), e))?;
        Ok(Arc::new(table))
    }
}

/// A stored result with fields in stored forms, read for DataFusion in its
/// original types.
#[derive(Debug)]
struct RestoredPartition {
    reader: CountingReader,
    footer: Arc<Footer>,
    id: ResultId,
}

impl PartitionStream for RestoredPartition {
    fn schema(&self) -> &SchemaRef {
        self.footer.restore.schema()
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let id = self.id.clone();
        let restore = self.footer.restore.clone();
        let external = |e: Error| DataFusionError::External(Box::new(e));
        let built = ParquetRecordBatchStreamBuilder::new_with_metadata(
            self.reader.clone(),
            self.footer.metadata.clone(),
        )
        .with_batch_size(SCAN_BATCH_ROWS)
        .build();
        let batches = match built {
            Ok(stream) => stream
                .map(move |b| {
                    b.map_err(|e| parquet_error(e, &id, "read"))
                        .and_then(|b| restore.decode(b))
                        .map_err(external)
                })
                .boxed(),
            Err(e) => futures::stream::once(futures::future::ready(Err(external(parquet_error(
                e, &id, "read",
            )))))
            .boxed(),
        };
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema().clone(),
            batches,
        ))
    }
}

/// A cached footer and the object's size.
#[derive(Debug)]
struct Footer {
    metadata: ArrowReaderMetadata,
    size: u64,
    /// From the stored schema back to the result's own.
    restore: Restore,
}

/// A small map of recently used footers, dropping the oldest entry when full.
#[derive(Debug, Default)]
struct FooterCache {
    entries: HashMap<ResultId, Arc<Footer>>,
    order: VecDeque<ResultId>,
}

impl FooterCache {
    fn get(&self, id: &ResultId) -> Option<Arc<Footer>> {
        self.entries.get(id).cloned()
    }

    fn insert(&mut self, id: ResultId, footer: Arc<Footer>) {
        if self.entries.insert(id.clone(), footer).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > CACHED_FOOTERS {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
    }

    fn remove(&mut self, id: &ResultId) {
        if self.entries.remove(id).is_some() {
            self.order.retain(|k| k != id);
        }
    }
}

fn describe(
    id: &ResultId,
    schema: SchemaRef,
    metadata: &ParquetMetaData,
    bytes: u64,
) -> ResultMeta {
    let mut offsets = Vec::with_capacity(metadata.num_row_groups());
    let mut rows = 0u64;
    for group in metadata.row_groups() {
        offsets.push(rows);
        rows += u64::try_from(group.num_rows()).unwrap_or(0);
    }
    let truncation = metadata
        .file_metadata()
        .key_value_metadata()
        .and_then(|kvs| kvs.iter().find(|kv| kv.key == TRUNCATION_KEY))
        .and_then(|kv| kv.value.as_deref())
        .and_then(|v| serde_json::from_str(v).ok());
    ResultMeta {
        id: id.clone(),
        schema,
        rows,
        bytes,
        row_group_offsets: offsets,
        truncation,
    }
}

/// The columns a read asked for: which root columns to decode, how to
/// put them back in the order asked, and in their original types.
struct Projection {
    /// Root column indexes in the order asked.
    wanted: Vec<usize>,
    /// Positions, within the decoded (file-ordered) columns, of `wanted`.
    positions: Option<Vec<usize>>,
    /// The schema of the output: the columns asked for, in their original types.
    schema: SchemaRef,
    restore: Restore,
}

impl Projection {
    fn new(schema: &SchemaRef, columns: Option<&[String]>) -> Result<Self> {
        let Some(columns) = columns else {
            let restore = Restore::for_stored(schema);
            return Ok(Self {
                wanted: (0..schema.fields().len()).collect(),
                positions: None,
                schema: restore.schema().clone(),
                restore,
            });
        };
        let mut wanted = Vec::with_capacity(columns.len());
        for name in columns {
            let index = schema.index_of(name).map_err(|_| {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                Error::invalid_input(
                    codes::RESULTS_UNKNOWN_COLUMN,
                    format!(
                        "column {name:?} is not in the result; its columns are: {}",
                        names.join(", ")
                    ),
                )
            })?;
            if wanted.contains(&index) {
                return Err(Error::invalid_input(
                    codes::RESULTS_DUPLICATE_COLUMN,
                    format!("column {name:?} is asked for twice"),
                ));
            }
            wanted.push(index);
        }
        let mut decoded = wanted.clone();
        decoded.sort_unstable();
        let positions: Vec<usize> = wanted
            .iter()
            .filter_map(|w| decoded.binary_search(w).ok())
            .collect();
        let projected = schema
            .project(&wanted)
            .map_err(|e| Error::internal_from("project result schema", e))?;
        let in_order = positions.windows(2).all(|w| w[0] < w[1]);
        let restore = Restore::for_stored(&Arc::new(projected));
        Ok(Self {
            wanted,
            positions: (!in_order).then_some(positions),
            schema: restore.schema().clone(),
            restore,
        })
    }

    fn mask(&self, metadata: &ArrowReaderMetadata) -> ProjectionMask {
        ProjectionMask::roots(metadata.parquet_schema(), self.wanted.iter().copied())
    }

    /// A decoded batch in the order asked and the original types.
    fn output(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let batch = match &self.positions {
            None => batch,
            Some(positions) => batch
                .project(positions)
                .map_err(|e| Error::internal_from("reorder result columns", e))?,
        };
        self.restore.decode(batch)
    }
}

fn to_usize(n: u64) -> Result<usize> {
    usize::try_from(n)
        .map_err(|_| Error::invalid_input(codes::RESULTS_OUT_OF_RANGE, format!("{n} is too large")))
}

fn object_error(e: object_store::Error, id: &ResultId, doing: &str) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::not_found("result", id.as_str()),
        other => Error::store(format!("could not {doing} result {id}"), other),
    }
}

fn parquet_error(e: ParquetError, id: &ResultId, doing: &str) -> Error {
    match e {
        ParquetError::External(inner) => match inner.downcast::<object_store::Error>() {
            Ok(os) => object_error(*os, id, doing),
            Err(inner) => match inner.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => Error::store(format!("could not {doing} result {id}"), other),
            },
        },
        other => Error::store(format!("could not {doing} result {id}"), other),
    }
}

/// Creates `dir` (and its parents) readable by the owner only; a directory
/// that exists is left as it is.
fn private_dir(dir: &std::path::Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| Error::config(format!("result directory {}: {e}", dir.display())))
}

/// Sets a file's permission bits (no-op where there are none).
fn set_mode(file: &std::path::Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (file, mode);
        Ok(())
    }
}
