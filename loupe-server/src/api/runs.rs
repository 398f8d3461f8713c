//! `/runs`: ad-hoc runs, status, cancellation, and results (pages and
//! downloads). Who may start, see or cancel a run is core's decision;
//! this module maps requests to `RunService` and reads results from the
//! result store, never more than a page or a batch at a time.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use loupe_core::{
    BatchWriter, CsvFormulas, DEFAULT_PAGE_ROWS, Error, ExportFormat, ExportOptions, MAX_PAGE_ROWS,
    Page as StoredPage, PageRequest, ParameterValues, SendableBatchStream, Truncation,
};
use loupe_services::lists::MAX_OFFSET;
use loupe_services::{Run, RunStatus, StartKind, Started, limits};
use poem::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, ETAG, LAST_MODIFIED};
use poem::{Body, IntoResponse, Response};
use poem_openapi::param::{Path, Query as Q};
use poem_openapi::payload::Json;
use poem_openapi::registry::{
    MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use tokio::sync::mpsc;

use super::ApiTags;
use super::bounded::{Bounded, Text};
use super::common::{same_variants, ts, ts_opt};
use super::lists::{self, FilterText, Page, PageLimit, PageOffset, Sort, list_request, page};
use crate::caller::Auth;
use crate::problem::ApiResult;
use crate::state::AppState;

/// A run's result never changes once stored, so private caches may keep
/// it; an hour bounds how long a revoked grant or an expired result can
/// still be served from one.
const RESULT_CACHE: &str = "private, max-age=3600";
/// Bytes handed to a download's body at a time.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks waiting for a slow client before the writer pauses: a download
/// holds at most this many chunks, one batch and what its format buffers
/// (a Parquet row group; XLSX keeps its rows in temporary files until the
/// workbook is complete), whatever the size of the result.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Runs and results.
#[derive(Debug)]
pub(crate) struct RunsApi(pub(crate) Arc<AppState>);

/// Ad-hoc SQL to run.
#[derive(Debug, Object)]
pub(crate) struct NewRunDto {
    /// The datasource to run it on; needs `run` access to it.
    pub datasource_id: String,
    /// One statement in the datasource's SQL dialect, without parameters.
    pub sql: Sql,
    /// Reuse a result at most this many seconds old instead of running
    /// again; 0 or absent always runs (identical runs in flight are still
    /// joined).
    #[oai(skip_serializing_if_is_none)]
    pub max_age_seconds: Option<MaxAge>,
}

/// SQL text, of a saved query or an ad-hoc run.
pub(crate) type Sql = Text<1, { limits::SQL }>;

/// How old a reused result may be, in seconds.
pub(crate) type MaxAge = Bounded<0, { limits::MAX_AGE_SECONDS }>;

/// The age a start asks for; 0 is the same as none (always run).
pub(crate) fn max_age(seconds: Option<MaxAge>) -> Option<Duration> {
    seconds
        .map(Bounded::get)
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
}

/// `offset` of a result page: the first row, counted from 0. The same
/// bound as a list's offset.
type RowOffset = Bounded<0, MAX_OFFSET>;

/// `limit` of a result page: the engine's page size.
type PageRows = Bounded<1, MAX_PAGE_ROWS>;

fn default_page_rows() -> PageRows {
    Bounded(DEFAULT_PAGE_ROWS)
}

#[OpenApi(prefix_path = "/runs", tag = "ApiTags::Runs")]
impl RunsApi {
    /// Run ad-hoc SQL: answered from a recent result (`max_age_seconds`),
    /// by joining an identical run in flight, or by queueing a new run.
    /// Editors and admins with `run` access to the datasource. Poll
    /// `GET /runs/{id}` for its status.
    #[oai(path = "/", method = "post", operation_id = "startRun")]
    async fn start(&self, auth: Auth, body: Json<NewRunDto>) -> ApiResult<StartedResponse> {
        let body = body.0;
        let max_age = max_age(body.max_age_seconds);
        let started = self
            .0
            .services()
            .runs
            .start_sql(
                auth.actor(),
                &body.datasource_id,
                body.sql.as_str(),
                max_age,
            )
            .await?;
        Ok(StartedDto::respond(started))
    }

    /// List the runs the caller may see (those on datasources they have
    /// access to), newest first.
    #[oai(path = "/", method = "get", operation_id = "listRuns")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: Auth,
        /// Rows per page.
        limit: Q<Option<PageLimit>>,
        /// Rows to skip.
        offset: Q<Option<PageOffset>>,
        /// The field to sort by; `-` first for descending.
        sort: Q<Option<Sort<lists::Runs>>>,
        /// Only runs in this state.
        status: Q<Option<RunStatusDto>>,
        /// Only runs of this saved query.
        query: Q<Option<FilterText>>,
        /// Only runs on this datasource.
        datasource: Q<Option<FilterText>>,
        /// Only runs this user started.
        owner: Q<Option<FilterText>>,
        /// Only runs this schedule started.
        schedule: Q<Option<FilterText>>,
        /// Only runs queued at or after this time.
        created_after: Q<Option<DateTime<Utc>>>,
        /// Only runs queued before this time.
        created_before: Q<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<Page<RunDto>>> {
        let request = list_request(
            limit.0,
            offset.0,
            sort.0,
            &[
                ("status", &status),
                ("query", &query),
                ("datasource", &datasource),
                ("owner", &owner),
                ("schedule", &schedule),
                ("created_after", &created_after),
                ("created_before", &created_before),
            ],
        );
        let runs = &self.0.services().runs;
        Ok(page(runs.list(auth.actor(), &request).await?))
    }

    /// Get a run.
    #[oai(path = "/:id", method = "get", operation_id = "getRun")]
    async fn get(&self, auth: Auth, id: Path<String>) -> ApiResult<Json<RunDto>> {
        let run = self.0.services().runs.get(auth.actor(), &id).await?;
        Ok(Json(run.into()))
    }

    /// Cancel a run: a queued one at once; a running one is asked to stop
    /// and becomes `cancelled` when its runner has stopped it. Whoever
    /// started it, or an admin. A finished run answers 409.
    #[oai(path = "/:id/cancel", method = "post", operation_id = "cancelRun")]
    async fn cancel(&self, auth: Auth, id: Path<String>) -> ApiResult<Json<RunDto>> {
        let run = self.0.services().runs.cancel(auth.actor(), &id).await?;
        Ok(Json(run.into()))
    }

    /// Read one page of a succeeded run's result. Only the stored row
    /// groups that hold the page are read. A run that has not succeeded
    /// answers 409 (`run.not_finished`, `run.failed`, `run.cancelled`); an
    /// unknown column answers 400.
    #[oai(path = "/:id/results", method = "get", operation_id = "getRunResults")]
    async fn results(
        &self,
        auth: Auth,
        id: Path<String>,
        /// The first row, counted from 0.
        offset: Q<Option<RowOffset>>,
        /// Rows in the page.
        #[oai(default = "default_page_rows")]
        limit: Q<PageRows>,
        /// Only these columns, in this order, comma-separated; all when
        /// absent. A name the result does not have answers 400
        /// (`results.unknown_column`), naming the columns it has.
        #[oai(default, explode = false)]
        columns: Q<Vec<String>>,
    ) -> ApiResult<ResultPageResponse> {
        let (run, result) = self.0.services().runs.result(auth.actor(), &id).await?;
        let request = PageRequest {
            offset: offset.0.map_or(0, Bounded::get),
            limit: limit.0.get(),
            columns: selected(columns.0),
        };
        let stored = self
            .0
            .deployment
            .results
            .read_page(&result, &request)
            .await?;
        let dto = ResultPageDto::new(stored, request.limit, run.truncated)?;
        Ok(ResultPageResponse::Ok(Json(dto), RESULT_CACHE.to_owned()))
    }

    /// Download a succeeded run's whole result as a file, streamed as it
    /// is read (never held in memory). If reading or writing fails part
    /// way, the response ends with an error instead of a complete file.
    /// A run that has not succeeded answers 409; an unknown column 400.
    #[oai(
        path = "/:id/download",
        method = "get",
        operation_id = "downloadRunResult"
    )]
    async fn download(
        &self,
        auth: Auth,
        id: Path<String>,
        /// The file format (default `csv`).
        #[oai(default = "DownloadFormat::csv")]
        format: Q<DownloadFormat>,
        /// Only these columns, in this order, comma-separated; all when
        /// absent. A name the result does not have answers 400
        /// (`results.unknown_column`), naming the columns it has.
        #[oai(default, explode = false)]
        columns: Q<Vec<String>>,
        /// CSV only (XLSX writes text as text cells, which never run):
        /// what to do with a text cell a spreadsheet would run
        /// as a formula (one starting with `=`, `+`, `-`, `@`, a tab or a
        /// carriage return, such as `=HYPERLINK(…)`). `escape` (the
        /// default) prefixes it with `'`, as OWASP recommends, so that a
        /// spreadsheet shows it as text; `keep` writes it as it is, for
        /// programs that read the CSV. Numbers, and text that is a plain
        /// number such as `-1.5`, are never changed.
        #[oai(default = "CsvFormulasDto::escape")]
        csv_formulas: Q<CsvFormulasDto>,
    ) -> ApiResult<Download> {
        let (run, result) = self.0.services().runs.result(auth.actor(), &id).await?;
        let columns = selected(columns.0);
        let format = ExportFormat::from(format.0);
        let options = ExportOptions::default().with_csv_formulas(csv_formulas.0.into());
        let download = Download::of(
            &self.0,
            &run.id,
            &result,
            format,
            columns.as_deref(),
            options,
        );
        Ok(download.await?)
    }
}

/// The columns a request names, or `None` for all.
fn selected(columns: Vec<String>) -> Option<Vec<String>> {
    let columns: Vec<String> = columns.into_iter().filter(|c| !c.is_empty()).collect();
    (!columns.is_empty()).then_some(columns)
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub(crate) enum RunStatusDto {
    /// Waiting for a runner.
    Queued,
    /// Executing.
    Running,
    /// Done; the result can be read.
    Succeeded,
    /// Failed; see `error_code` and `error_message`.
    Failed,
    /// Cancelled.
    Cancelled,
}

same_variants!(RunStatusDto, RunStatus: Queued, Running, Succeeded, Failed, Cancelled);

impl lists::FilterValue for RunStatusDto {
    fn filter_value(&self) -> String {
        RunStatus::from(*self).as_str().to_owned()
    }
}

/// A run of a query or of ad-hoc SQL.
#[derive(Debug, Object)]
pub(crate) struct RunDto {
    /// Its id (also its result's).
    pub id: String,
    /// The saved query, if it ran one.
    #[oai(skip_serializing_if_is_none)]
    pub query_id: Option<String>,
    /// The query's version that ran.
    #[oai(skip_serializing_if_is_none)]
    pub query_version: Option<i32>,
    /// Where it runs.
    pub datasource_id: String,
    /// Where it is.
    pub status: RunStatusDto,
    /// Higher runs first.
    pub priority: i16,
    /// Attempts so far.
    pub attempts: i32,
    /// When it was queued.
    pub queued_at: DateTime<Utc>,
    /// When it started.
    #[oai(skip_serializing_if_is_none)]
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    #[oai(skip_serializing_if_is_none)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Rows in the result.
    #[oai(skip_serializing_if_is_none)]
    pub rows: Option<i64>,
    /// Bytes of the stored result.
    #[oai(skip_serializing_if_is_none)]
    pub bytes: Option<i64>,
    /// Why the result was cut short (`rows`, `bytes`), if it was.
    #[oai(skip_serializing_if_is_none)]
    pub truncated: Option<String>,
    /// The error's stable code, when it failed.
    #[oai(skip_serializing_if_is_none)]
    pub error_code: Option<String>,
    /// The error's message, when it failed.
    #[oai(skip_serializing_if_is_none)]
    pub error_message: Option<String>,
    /// Who started it (none for schedules).
    #[oai(skip_serializing_if_is_none)]
    pub created_by: Option<String>,
    /// The schedule that started it.
    #[oai(skip_serializing_if_is_none)]
    pub schedule_id: Option<String>,
    /// How many starts were answered with this run's result.
    pub cache_hits: i32,
}

impl From<Run> for RunDto {
    fn from(r: Run) -> Self {
        Self {
            status: r.status.into(),
            truncated: truncation_name(r.truncated),
            id: r.id,
            query_id: r.query_id,
            query_version: r.query_version,
            datasource_id: r.datasource_id,
            priority: r.priority,
            attempts: r.attempts,
            queued_at: ts(r.queued_at),
            started_at: ts_opt(r.started_at),
            finished_at: ts_opt(r.finished_at),
            rows: r.rows,
            bytes: r.bytes,
            error_code: r.error_code,
            error_message: r.error_message,
            created_by: r.created_by,
            schedule_id: r.schedule_id,
            cache_hits: r.cache_hits,
        }
    }
}

/// How a start was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub(crate) enum StartKindDto {
    /// With a recent result.
    Cached,
    /// By joining an identical run in flight.
    Joined,
    /// With a new queued run.
    Queued,
}

/// The run that answers a start.
#[derive(Debug, Object)]
pub(crate) struct StartedDto {
    /// The run; poll `GET /runs/{id}` until it is `succeeded` or `failed`.
    pub run: RunDto,
    /// Cached, joined or queued.
    pub how: StartKindDto,
}

/// A started run.
#[derive(Debug, ApiResponse)]
pub(crate) enum StartedResponse {
    /// Answered by an existing run (cached or joined).
    #[oai(status = 200)]
    Existing(Json<StartedDto>),
    /// A new run was queued.
    #[oai(status = 202)]
    Queued(Json<StartedDto>),
}

same_variants!(StartKindDto, StartKind: Cached, Joined, Queued);

impl From<Started> for StartedDto {
    fn from(started: Started) -> Self {
        Self {
            run: started.run.into(),
            how: started.how.into(),
        }
    }
}

impl StartedDto {
    /// 202 for a queued run, 200 for a cached or joined one.
    pub(crate) fn respond(started: Started) -> StartedResponse {
        let dto = StartedDto::from(started);
        if dto.how == StartKindDto::Queued {
            StartedResponse::Queued(Json(dto))
        } else {
            StartedResponse::Existing(Json(dto))
        }
    }
}

/// Parameter values from a JSON object.
pub(crate) fn parameter_values(
    map: std::collections::BTreeMap<String, serde_json::Value>,
) -> ParameterValues {
    map
}

/// Why a result was cut short, as the API names it: `rows` or `bytes`.
fn truncation_name(truncation: Option<Truncation>) -> Option<String> {
    truncation.map(|t| {
        match t {
            Truncation::MaxRows { .. } => "rows",
            Truncation::MaxBytes { .. } => "bytes",
        }
        .to_owned()
    })
}

/// A column of a result.
#[derive(Debug, Object)]
pub(crate) struct ColumnDto {
    /// Its name.
    pub name: String,
    /// Its Arrow type, such as `Int64`, `Utf8`, `Float64`,
    /// `Decimal128(10, 2)` or `Timestamp(µs, "UTC")`.
    #[oai(rename = "type")]
    pub type_: String,
}

/// One page of a run's result.
#[derive(Debug, Object)]
pub(crate) struct ResultPageDto {
    /// The columns of `rows`, in order.
    pub columns: Vec<ColumnDto>,
    /// The rows: one array per row, one value per column, encoded as the
    /// JSON downloads encode them. Integers and floats are numbers (64-bit
    /// integers exact); decimals are strings, so that no digit is lost;
    /// dates and times are ISO 8601 strings (with the offset when the
    /// column has a zone); binary values are hex strings; lists are
    /// arrays; nulls, NaN and infinities are `null`.
    pub rows: Vec<Vec<serde_json::Value>>,
    /// The row number of the first row, counted from 0.
    pub offset: u64,
    /// The page size asked for; fewer rows means the result ended.
    pub limit: u64,
    /// Rows in the whole result.
    pub total_rows: u64,
    /// Why the stored result was cut short (`rows`, `bytes`), if a limit
    /// stopped the run before its end.
    #[oai(skip_serializing_if_is_none)]
    pub truncated: Option<String>,
}

impl ResultPageDto {
    fn new(
        stored: StoredPage,
        limit: u64,
        truncation: Option<Truncation>,
    ) -> loupe_core::Result<Self> {
        Ok(Self {
            columns: stored
                .schema
                .fields()
                .iter()
                .map(|f| ColumnDto {
                    name: f.name().clone(),
                    type_: f.data_type().to_string(),
                })
                .collect(),
            rows: loupe_core::json_rows(&stored.batches)?,
            offset: stored.offset,
            limit,
            total_rows: stored.total_rows,
            truncated: truncation_name(truncation),
        })
    }
}

/// A page of a result.
#[derive(Debug, ApiResponse)]
pub(crate) enum ResultPageResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(
        Json<ResultPageDto>,
        /// A run's result never changes: private caches may keep it.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

/// A file format for downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub(crate) enum DownloadFormat {
    /// Comma-separated values with a header row (`text/csv`).
    Csv,
    /// One JSON array of objects (`application/json`).
    Json,
    /// One JSON object per line (`application/x-ndjson`).
    Ndjson,
    /// Apache Parquet, zstd-compressed (`application/vnd.apache.parquet`).
    Parquet,
    /// Apache Arrow IPC file format (`application/vnd.apache.arrow.file`).
    Arrow,
    /// An Excel workbook with typed cells and a bold, frozen header row;
    /// a result longer than a sheet (1,048,576 rows with the header) goes
    /// on in the next sheets
    /// (`application/vnd.openxmlformats-officedocument.spreadsheetml.sheet`).
    Xlsx,
}

impl DownloadFormat {
    fn csv() -> Self {
        Self::Csv
    }
}

same_variants!(DownloadFormat, ExportFormat: Csv, Json, Ndjson, Parquet, Arrow, Xlsx);

/// What a CSV download does with text cells a spreadsheet would run as
/// formulas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub(crate) enum CsvFormulasDto {
    /// Prefix them with `'`: safe to open in a spreadsheet.
    Escape,
    /// Write them as they are: for programs.
    Keep,
}

impl CsvFormulasDto {
    fn escape() -> Self {
        Self::Escape
    }
}

same_variants!(CsvFormulasDto, CsvFormulas: Escape, Keep);

/// A result file, streamed. Written by hand rather than derived: one 200
/// response whose media type depends on the format asked for.
#[derive(Debug)]
pub(crate) struct Download {
    format: ExportFormat,
    filename: String,
    body: Body,
    /// `Cache-Control`.
    cache_control: &'static str,
    /// `ETag` and `Last-Modified`, when the URL's content can change.
    validators: Option<Validators>,
}

/// What a client revalidates a download with: a strong `ETag` and a
/// `Last-Modified` HTTP date, both as sent.
#[derive(Debug, Clone)]
pub(crate) struct Validators {
    /// The quoted entity tag.
    pub etag: String,
    /// The HTTP date.
    pub last_modified: String,
}

/// `Cache-Control` of a URL whose content changes (a query's latest
/// result): a private cache may keep it but asks again every time, and
/// gets a 304 while it is current.
pub(crate) const REVALIDATE: &str = "private, no-cache";

impl Download {
    /// The stored result `result` of `run_id` in `format`, streamed as it
    /// is read.
    pub(crate) async fn of(
        state: &AppState,
        run_id: &str,
        result: &loupe_core::ResultId,
        format: ExportFormat,
        columns: Option<&[String]>,
        options: ExportOptions,
    ) -> loupe_core::Result<Self> {
        let batches = state.deployment.results.scan(result, columns).await?;
        Ok(Self {
            body: export_body(format, options, batches)?,
            filename: format!("{run_id}.{}", format.extension()),
            format,
            cache_control: RESULT_CACHE,
            validators: None,
        })
    }

    /// The same download under another file name, for
    /// `Content-Disposition`: the caller makes it plain ASCII without
    /// quotes or backslashes.
    pub(crate) fn named(mut self, filename: String) -> Self {
        self.filename = filename;
        self
    }

    /// The same download for a URL whose content changes: revalidated on
    /// every use ([`REVALIDATE`]) with `validators`.
    pub(crate) fn revalidated(mut self, validators: Validators) -> Self {
        self.cache_control = REVALIDATE;
        self.validators = Some(validators);
        self
    }
}

impl IntoResponse for Download {
    fn into_response(self) -> Response {
        let mut response = Response::builder()
            .content_type(self.format.content_type())
            .header(
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", self.filename),
            )
            .header(CACHE_CONTROL, self.cache_control);
        if let Some(validators) = self.validators {
            response = response
                .header(ETAG, validators.etag)
                .header(LAST_MODIFIED, validators.last_modified);
        }
        response.body(self.body)
    }
}

/// What a download's body is in `format`, for the API document: JSON an
/// array of row objects, CSV and NDJSON text, Parquet, Arrow and XLSX
/// bytes.
pub(crate) fn download_schema(format: ExportFormat) -> MetaSchemaRef {
    let schema = match format {
        ExportFormat::Json => MetaSchema {
            items: Some(Box::new(MetaSchemaRef::Inline(Box::new(MetaSchema {
                description: Some("A row: column name to value."),
                additional_properties: Some(Box::new(MetaSchemaRef::Inline(Box::new(
                    MetaSchema::ANY,
                )))),
                ..MetaSchema::new("object")
            })))),
            ..MetaSchema::new("array")
        },
        f if f.is_binary() => MetaSchema {
            format: Some("binary"),
            ..MetaSchema::new("string")
        },
        _ => MetaSchema::new("string"),
    };
    MetaSchemaRef::Inline(Box::new(schema))
}

/// A response header for the API document, named in upper case as
/// poem-openapi writes the headers it derives.
pub(crate) fn document_header(name: &str, description: &str) -> MetaHeader {
    MetaHeader {
        name: name.to_uppercase(),
        description: Some(description.to_owned()),
        required: true,
        deprecated: false,
        schema: String::schema_ref(),
    }
}

impl ApiResponse for Download {
    fn meta() -> MetaResponses {
        let schema = download_schema;
        let header = document_header;
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The whole result in the format asked for (the media type \
                              says which). A response that ends with an error instead of \
                              a complete body means reading the result failed part way.",
                status: Some(200),
                status_range: None,
                content: ExportFormat::ALL
                    .iter()
                    .map(|f| MetaMediaType {
                        content_type: f.content_type(),
                        schema: schema(*f),
                    })
                    .collect(),
                headers: vec![
                    header(
                        "Content-Disposition",
                        "`attachment; filename=\"<run id>.<format>\"`.",
                    ),
                    header(
                        "Cache-Control",
                        "A run's result never changes: private caches may keep it.",
                    ),
                ],
            }],
        }
    }

    fn register(_registry: &mut Registry) {}
}

/// A body that writes `batches` in `format` as they are read. A blocking
/// task encodes (CPU work, and `BatchWriter` wants a `std::io::Write`) into
/// a bounded channel, so a slow client slows the reading instead of
/// filling memory; a client that goes away stops it. A failure part way
/// ends the body with an error, so the client never takes a cut-short
/// file for a whole one.
///
/// # Errors
/// When the format cannot start with this schema (before any byte is sent).
fn export_body(
    format: ExportFormat,
    options: ExportOptions,
    mut batches: SendableBatchStream,
) -> loupe_core::Result<Body> {
    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
    let failures = tx.clone();
    let mut writer =
        BatchWriter::with_options(format, BodyWriter::new(tx), batches.schema(), options)?;
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let written = (|| -> loupe_core::Result<()> {
            while let Some(batch) = runtime.block_on(batches.next()) {
                writer.write(&batch?)?;
            }
            writer
                .finish()?
                .send_buffered()
                .map_err(|source| Error::Io {
                    message: "sending the download".to_owned(),
                    source,
                })
        })();
        if let Err(error) = written {
            let ended = io::Error::other(format!("the download failed part way: {error}"));
            if failures.blocking_send(Err(ended)).is_ok() {
                tracing::warn!(format = %format, error = %error, "a download failed part way");
            } else {
                tracing::debug!(format = %format, "the client left before the download ended");
            }
        }
    });
    Ok(Body::from_bytes_stream(futures::stream::poll_fn(
        move |cx| rx.poll_recv(cx),
    )))
}

/// A `Write` that hands what it is given to a response body, in chunks of
/// about [`CHUNK_BYTES`], waiting while the body's channel is full.
struct BodyWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buffer: Vec<u8>,
}

impl BodyWriter {
    fn new(tx: mpsc::Sender<io::Result<Bytes>>) -> Self {
        Self {
            tx,
            buffer: Vec::with_capacity(CHUNK_BYTES),
        }
    }

    fn send_buffered(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            io::Error::new(io::ErrorKind::BrokenPipe, "the client closed the download")
        })
    }
}

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK_BYTES {
            self.send_buffered()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Formats flush after every batch; small chunks would cost more
        // than they save, so only full chunks and the end are sent.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Decimal128Array, Float64Array, Int64Array, RecordBatch, StringArray};
    use loupe_core::StreamAdapter;

    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![i64::MAX, -7])) as _),
            (
                "amount",
                Arc::new(
                    Decimal128Array::from(vec![Some(1_234_567_890_123_456_789_012_345), None])
                        .with_precision_and_scale(38, 2)
                        .unwrap(),
                ) as _,
            ),
            (
                "ratio",
                Arc::new(Float64Array::from(vec![0.5, f64::NAN])) as _,
            ),
            (
                "name",
                Arc::new(StringArray::from(vec![Some("a,\"b\""), None])) as _,
            ),
        ])
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_download_that_fails_part_way_ends_with_an_error() {
        let good = batch();
        let schema = good.schema();
        let batches = StreamAdapter::boxed(
            schema,
            futures::stream::iter(vec![Ok(good), Err(Error::internal("the store went away"))]),
        );
        let body = export_body(ExportFormat::Csv, ExportOptions::default(), batches).unwrap();
        assert!(body.into_vec().await.is_err());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_download_larger_than_a_chunk_arrives_whole() {
        let rows = 50_000_i64;
        let big = RecordBatch::try_from_iter([(
            "n",
            Arc::new(Int64Array::from_iter_values(0..rows)) as _,
        )])
        .unwrap();
        let schema = big.schema();
        let batches = StreamAdapter::boxed(
            schema,
            futures::stream::iter(vec![
                Ok(big.slice(0, 20_000)),
                Ok(big.slice(20_000, 30_000)),
            ]),
        );
        let text = String::from_utf8(
            export_body(ExportFormat::Csv, ExportOptions::default(), batches)
                .unwrap()
                .into_vec()
                .await
                .unwrap(),
        )
        .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len() as i64, rows + 1);
        assert_eq!(lines[0], "n");
        assert_eq!(lines[1], "0");
        assert_eq!(lines.last().copied(), Some("49999"));
    }
}
