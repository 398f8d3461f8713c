//! Writing result batches as CSV, JSON, NDJSON, Parquet, Arrow IPC or
//! XLSX, one batch at a time, to any `Write` (a file, stdout, a response
//! body buffer).
//!
//! JSON has one encoding, whether a result is downloaded (JSON, NDJSON)
//! or read a page at a time ([`json_rows`]): integers and floats are
//! numbers; decimals are strings, so that no digit is lost (most JSON
//! readers turn numbers into doubles); dates and times are ISO 8601
//! strings, with the zone's offset when the column has one; durations are
//! ISO 8601 durations (`PT90061.5S`); intervals are text such as
//! `14 mons -3 days 1.500000000 secs` (months, days and seconds, each
//! with its own sign); binary values are hex strings; lists are arrays;
//! structs and maps are objects; NULL, NaN and infinities are `null`.
//!
//! CSV writes scalar values as JSON does, without quotes, and a nested
//! value (a list, struct or map) as its JSON text in one cell. Text cells
//! that a spreadsheet would run as a formula (starting with `=`, `+`, `-`,
//! `@`, a tab or a carriage return) are prefixed with `'`, as OWASP
//! recommends, unless the output is for machines
//! ([`CsvFormulas::Keep`]); text that is a plain number (`-1.5`) is left
//! alone, and so are the number columns.
//!
//! Parquet holds each value in the stored form of the result store (an
//! interval as three named numbers, with the original type in the field's
//! `loupe.arrow.type` metadata); Arrow IPC holds the original types.
//!
//! XLSX writes a bold, frozen header row of column names, then typed
//! cells: integers and floats are numbers, except an integer beyond 2^53
//! and a decimal that a double does not hold exactly (more than about 15
//! significant digits), which are text so that no digit is lost (Excel
//! has doubles only, and shows 15 significant digits of them); booleans
//! are booleans; dates, timestamps and times are Excel dates formatted
//! `yyyy-mm-dd`, `yyyy-mm-dd hh:mm:ss` and `hh:mm:ss` (a timestamp with a
//! zone in UTC, as Excel has no zones; a date before 1900-03-01 or after
//! 9999-12-31, which Excel cannot show, as text); text is text, never a
//! formula, so nothing needs escaping. Every other value (a duration, an
//! interval, binary, a list, struct or map) is the text of its CSV cell.
//! NULL, NaN, infinities and empty text are empty cells. A cell holds at
//! most 32,767 characters: longer text is cut, ending with a note that
//! says so. A sheet holds 1,048,576 rows with its header; longer results
//! continue on `Sheet2`, `Sheet3`, ..., each with the header; a result of
//! more than 16,384 columns, a sheet's width, is refused
//! (`results.too_wide`). Rows are kept in temporary files (in `TMPDIR`)
//! until the end, where the file is written to the output: memory stays
//! flat whatever the size, and the first byte comes once every row is in.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, StringBuilder};
use arrow::csv;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow::ipc::writer::FileWriter;
use arrow::json::writer::{EncoderOptions, JsonArray, LineDelimited, make_encoder};
use arrow::json::{Writer as JsonWriter, WriterBuilder as JsonWriterBuilder};
use arrow::util::display::FormatOptions;
use parquet::arrow::ArrowWriter;
use parquet::errors::ParquetError;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::results::StoreOptions;
use crate::results::encoding::Storage;

mod xlsx;

use xlsx::XlsxWriter;

/// A file format results can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// Apache Parquet, zstd-compressed.
    Parquet,
    /// Apache Arrow IPC file format.
    Arrow,
    /// Office Open XML workbook (Excel), with typed cells.
    Xlsx,
}

impl ExportFormat {
    /// Every format.
    pub const ALL: [ExportFormat; 6] = [
        ExportFormat::Csv,
        ExportFormat::Json,
        ExportFormat::Ndjson,
        ExportFormat::Parquet,
        ExportFormat::Arrow,
        ExportFormat::Xlsx,
    ];

    /// The format's name: `csv`, `json`, ...
    pub fn name(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Ndjson => "ndjson",
            Self::Parquet => "parquet",
            Self::Arrow => "arrow",
            Self::Xlsx => "xlsx",
        }
    }

    /// Parses a format name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The HTTP media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Json => "application/json",
            Self::Ndjson => "application/x-ndjson",
            Self::Parquet => "application/vnd.apache.parquet",
            Self::Arrow => "application/vnd.apache.arrow.file",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        self.name()
    }

    /// True for formats that are not text.
    pub fn is_binary(self) -> bool {
        matches!(self, Self::Parquet | Self::Arrow | Self::Xlsx)
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What CSV output does with a text cell that a spreadsheet would run as
/// a formula (`=HYPERLINK(…)`, `+1+cmd|…`, `@SUM(1)`): a result holds
/// whatever its datasource returned, and a CSV file is often opened in a
/// spreadsheet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CsvFormulas {
    /// Prefix the cell with `'`, which spreadsheets show as text (OWASP's
    /// advice). Cells starting with `=`, `+`, `-`, `@`, a tab or a carriage
    /// return are escaped, unless they are a plain number such as `-1.5`.
    #[default]
    Escape,
    /// Write every cell as it is: for programs that read the CSV.
    Keep,
}

impl CsvFormulas {
    /// Both choices.
    pub const ALL: [CsvFormulas; 2] = [CsvFormulas::Escape, CsvFormulas::Keep];

    /// The choice's name: `escape` or `keep`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Escape => "escape",
            Self::Keep => "keep",
        }
    }

    /// Parses a name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl fmt::Display for CsvFormulas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Choices about how a [`BatchWriter`] writes values; the default is what
/// a person opening the file expects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportOptions {
    /// What CSV does with text cells a spreadsheet would run as formulas.
    pub csv_formulas: CsvFormulas,
}

impl ExportOptions {
    /// The same options with `csv_formulas`.
    pub fn with_csv_formulas(mut self, csv_formulas: CsvFormulas) -> Self {
        self.csv_formulas = csv_formulas;
        self
    }
}

/// Writes batches in one [`ExportFormat`] as they come.
///
/// A reader that goes away (a closed pipe or socket) makes every later
/// call fail with an error for which [`Error::is_broken_pipe`] is true,
/// whichever format noticed it.
pub struct BatchWriter<W: Write + Send> {
    inner: Inner<W>,
    schema: SchemaRef,
    options: ExportOptions,
    /// Set once the output reported a broken pipe.
    closed: Arc<AtomicBool>,
    wrote_any: bool,
}

enum Inner<W: Write + Send> {
    Csv(csv::Writer<Output<W>>),
    Json(JsonWriter<Output<W>, JsonArray>),
    Ndjson(JsonWriter<Output<W>, LineDelimited>),
    Parquet(Box<ArrowWriter<Output<W>>>, Storage),
    Arrow(FileWriter<Output<W>>),
    Xlsx(Box<XlsxWriter<Output<W>>>),
}

impl<W: Write + Send> fmt::Debug for BatchWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = match self.inner {
            Inner::Csv(_) => ExportFormat::Csv,
            Inner::Json(_) => ExportFormat::Json,
            Inner::Ndjson(_) => ExportFormat::Ndjson,
            Inner::Parquet(..) => ExportFormat::Parquet,
            Inner::Arrow(_) => ExportFormat::Arrow,
            Inner::Xlsx(_) => ExportFormat::Xlsx,
        };
        f.debug_struct("BatchWriter")
            .field("format", &format)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<W: Write + Send> BatchWriter<W> {
    /// Starts writing `format` to `out` with the default options. Parquet
    /// uses the result store's settings (zstd, page indexes).
    pub fn new(format: ExportFormat, out: W, schema: SchemaRef) -> Result<Self> {
        Self::with_options(format, out, schema, ExportOptions::default())
    }

    /// Starts writing `format` to `out` with `options`.
    ///
    /// # Errors
    /// When the format cannot hold the schema (a union in Parquet), or
    /// writing the start of the file fails.
    pub fn with_options(
        format: ExportFormat,
        out: W,
        schema: SchemaRef,
        options: ExportOptions,
    ) -> Result<Self> {
        let closed = Arc::new(AtomicBool::new(false));
        let out = Output {
            inner: out,
            closed: closed.clone(),
        };
        let started = (|| {
            Ok(match format {
                ExportFormat::Csv => {
                    Inner::Csv(csv::WriterBuilder::new().with_header(true).build(out))
                }
                ExportFormat::Json => Inner::Json(
                    JsonWriterBuilder::new()
                        .with_explicit_nulls(true)
                        .build(out),
                ),
                ExportFormat::Ndjson => Inner::Ndjson(
                    JsonWriterBuilder::new()
                        .with_explicit_nulls(true)
                        .build(out),
                ),
                ExportFormat::Parquet => {
                    let storage = Storage::for_schema(&schema)?;
                    let props = StoreOptions::default().writer_properties()?;
                    let writer = ArrowWriter::try_new(out, storage.schema().clone(), Some(props))
                        .map_err(|e| parquet_error(e, "start parquet output"))?;
                    Inner::Parquet(Box::new(writer), storage)
                }
                ExportFormat::Arrow => Inner::Arrow(FileWriter::try_new(out, &schema)?),
                ExportFormat::Xlsx => {
                    Inner::Xlsx(Box::new(XlsxWriter::new(out, &schema, xlsx::SHEET_ROWS)?))
                }
            })
        })();
        let inner = started.map_err(|e| closed_or(&closed, e))?;
        Ok(Self {
            inner,
            schema,
            options,
            closed,
            wrote_any: false,
        })
    }

    /// Writes one batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(broken_pipe("the reader went away".to_owned()));
        }
        self.wrote_any = true;
        let written = (|| {
            match &mut self.inner {
                Inner::Csv(w) => w.write(&for_csv(batch, self.options.csv_formulas)?)?,
                Inner::Json(w) => w.write(&for_json(batch)?)?,
                Inner::Ndjson(w) => w.write(&for_json(batch)?)?,
                Inner::Parquet(w, storage) => w
                    .write(&storage.encode(batch)?)
                    .map_err(|e| parquet_error(e, "write parquet output"))?,
                Inner::Arrow(w) => w.write(batch)?,
                Inner::Xlsx(w) => w.write(batch)?,
            }
            Ok(())
        })();
        written.map_err(|e| closed_or(&self.closed, e))
    }

    /// Writes what the format needs at the end (a closing bracket, a footer)
    /// and returns the output.
    pub fn finish(mut self) -> Result<W> {
        if !self.wrote_any {
            // A CSV of no rows still has its header.
            let empty = RecordBatch::new_empty(self.schema.clone());
            self.write(&empty)?;
        }
        if self.closed.load(Ordering::Relaxed) {
            return Err(broken_pipe("the reader went away".to_owned()));
        }
        let closed = self.closed.clone();
        let finished = (|| {
            Ok(match self.inner {
                Inner::Csv(w) => w.into_inner(),
                Inner::Json(mut w) => {
                    w.finish()?;
                    w.into_inner()
                }
                Inner::Ndjson(mut w) => {
                    w.finish()?;
                    w.into_inner()
                }
                Inner::Parquet(w, _) => w
                    .into_inner()
                    .map_err(|e| parquet_error(e, "finish parquet output"))?,
                Inner::Arrow(mut w) => {
                    w.finish()?;
                    w.into_inner()?
                }
                Inner::Xlsx(w) => w.finish()?,
            })
        })();
        finished
            .map(|out: Output<W>| out.inner)
            .map_err(|e| closed_or(&closed, e))
    }
}

/// The destination of a [`BatchWriter`], noting a broken pipe: arrow's CSV
/// writer keeps only the message of an I/O error, so its kind is caught
/// here, before it is wrapped.
struct Output<W> {
    inner: W,
    closed: Arc<AtomicBool>,
}

impl<W> Output<W> {
    fn note<T>(&self, result: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &result
            && e.kind() == io::ErrorKind::BrokenPipe
        {
            self.closed.store(true, Ordering::Relaxed);
        }
        result
    }
}

// Once the reader has gone, nothing more can reach it: later bytes are
// dropped instead of failing again, so that a format that writes while it
// is dropped (the zip of XLSX writes its directory then) does not fail a
// second time and report it on stderr. `BatchWriter` refuses later calls.
impl<W: Write> Write for Output<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.closed.load(Ordering::Relaxed) {
            return Ok(data.len());
        }
        let written = self.inner.write(data);
        self.note(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed.load(Ordering::Relaxed) {
            return Ok(());
        }
        let flushed = self.inner.flush();
        self.note(flushed)
    }
}

/// `error`, or a broken pipe when the output was closed: whatever a format
/// made of the I/O error, the reader went away.
fn closed_or(closed: &AtomicBool, error: Error) -> Error {
    if !closed.load(Ordering::Relaxed) || error.is_broken_pipe() {
        return error;
    }
    broken_pipe(error.to_string())
}

fn broken_pipe(detail: String) -> Error {
    Error::Io {
        message: "writing the output".to_owned(),
        source: io::Error::new(io::ErrorKind::BrokenPipe, detail),
    }
}

/// How arrow's CSV writer formats a value that is not nested (it uses
/// these options, with `""` for NULL): the text of a CSV cell, which XLSX
/// writes for the values it has no cell type for (durations, intervals,
/// binary) and for those Excel cannot hold (a decimal with too many
/// digits, a date before 1900).
fn cell_text_options() -> FormatOptions<'static> {
    FormatOptions::default().with_null("")
}

/// `batch` with every value that has no cell type of its own as the text
/// of its CSV cell (nested values as their JSON), and dictionaries
/// unpacked: what the XLSX writer takes.
fn for_text_cells(batch: &RecordBatch) -> Result<RecordBatch> {
    let batch = for_csv(batch, CsvFormulas::Keep)?;
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Dictionary(..)))
    {
        return Ok(batch);
    }
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        match field.data_type() {
            DataType::Dictionary(_, values) => {
                fields.push(Field::new(field.name(), values.as_ref().clone(), true));
                columns.push(arrow::compute::cast(column, values)?);
            }
            _ => {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// How JSON values are written, in downloads, pages and CSV cells alike.
fn json_options() -> EncoderOptions {
    EncoderOptions::default().with_explicit_nulls(true)
}

/// Rows as JSON arrays, one value per column: a page of a result, in the
/// same encoding as the JSON downloads (see the module's documentation).
pub fn json_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<serde_json::Value>>> {
    let options = json_options();
    let mut out = Vec::new();
    out.push(b'[');
    let mut first_row = true;
    for batch in batches {
        let batch = for_json(batch)?;
        let schema = batch.schema();
        let mut encoders = schema
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(field, column)| make_encoder(field, column.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            if !first_row {
                out.push(b',');
            }
            first_row = false;
            out.push(b'[');
            for (i, encoder) in encoders.iter_mut().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if encoder.is_null(row) {
                    out.extend_from_slice(b"null");
                } else {
                    encoder.encode(row, &mut out);
                }
            }
            out.push(b']');
        }
    }
    out.push(b']');
    serde_json::from_slice(&out)
        .map_err(|e| Error::internal_from("reading a result page as JSON", e))
}

/// `batch` as the CSV writer takes it: nested values as their JSON text
/// (arrow's CSV writer refuses them), and text cells that would run as
/// formulas escaped unless `formulas` keeps them.
fn for_csv(batch: &RecordBatch, formulas: CsvFormulas) -> Result<RecordBatch> {
    let schema = batch.schema();
    let mut changed = false;
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let text = if is_nested(field.data_type()) {
            let json = for_json_column(field, column)?;
            Some(json_text(&json.0, json.1.as_ref())?)
        } else if formulas == CsvFormulas::Escape {
            escape_formulas(column)
        } else {
            None
        };
        match text {
            Some(text) => {
                changed = true;
                fields.push(Field::new(field.name(), text.data_type().clone(), true));
                columns.push(text);
            }
            None => {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
    }
    if !changed {
        return Ok(batch.clone());
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

fn is_nested(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::List(_)
            | DataType::LargeList(_)
            | DataType::ListView(_)
            | DataType::LargeListView(_)
            | DataType::FixedSizeList(..)
            | DataType::Struct(_)
            | DataType::Map(..)
            | DataType::Union(..)
    )
}

/// Each value of `array` as its JSON text, in the one JSON encoding.
fn json_text(field: &FieldRef, array: &dyn Array) -> Result<ArrayRef> {
    let options = json_options();
    let mut encoder = make_encoder(field, array, &options)?;
    let mut builder = StringBuilder::with_capacity(array.len(), array.len() * 16);
    let mut value = Vec::new();
    for row in 0..array.len() {
        if encoder.is_null(row) {
            builder.append_null();
            continue;
        }
        value.clear();
        encoder.encode(row, &mut value);
        let text = std::str::from_utf8(&value)
            .map_err(|e| Error::internal_from("a JSON value that is not UTF-8", e))?;
        builder.append_value(text);
    }
    Ok(Arc::new(builder.finish()))
}

/// The text column `array` with formula cells escaped, or `None` when it
/// is not text or has no such cell.
fn escape_formulas(array: &ArrayRef) -> Option<ArrayRef> {
    match array.data_type() {
        DataType::Utf8 => escaped(array.as_string_opt::<i32>()?.iter()),
        DataType::LargeUtf8 => escaped(array.as_string_opt::<i64>()?.iter()),
        DataType::Utf8View => escaped(array.as_string_view_opt()?.iter()),
        DataType::Dictionary(..) => {
            let dictionary = array.as_any_dictionary_opt()?;
            let values = escape_formulas(dictionary.values())?;
            Some(dictionary.with_values(values))
        }
        _ => None,
    }
}

fn escaped<'a>(cells: impl Iterator<Item = Option<&'a str>> + Clone) -> Option<ArrayRef> {
    if !cells.clone().flatten().any(runs_as_formula) {
        return None;
    }
    let cells: StringArray = cells
        .map(|cell| {
            cell.map(|c| {
                if runs_as_formula(c) {
                    Cow::Owned(format!("'{c}"))
                } else {
                    Cow::Borrowed(c)
                }
            })
        })
        .collect();
    Some(Arc::new(cells))
}

/// True when a spreadsheet would take `cell` for a formula (OWASP's list
/// of first characters). A plain number (`-1.5`, `+3`, `-Infinity`, as
/// PostgreSQL writes an unconstrained `numeric`) stays a number.
fn runs_as_formula(cell: &str) -> bool {
    matches!(
        cell.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    ) && cell.parse::<f64>().is_err()
}

/// `batch` with every decimal, at any depth (in lists, structs, maps), as
/// text: arrow-json writes decimals as JSON numbers, which most readers
/// turn into doubles, losing digits past the 15th.
fn for_json(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = batch.schema();
    if !schema
        .fields()
        .iter()
        .any(|f| json_type(f.data_type()).is_some())
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let (field, column) = for_json_column(field, column)?;
        fields.push(field);
        columns.push(column);
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// One column as [`for_json`] makes it.
fn for_json_column(field: &FieldRef, column: &ArrayRef) -> Result<(FieldRef, ArrayRef)> {
    Ok(match json_type(field.data_type()) {
        Some(to) => (
            Arc::new(field.as_ref().clone().with_data_type(to.clone())),
            arrow::compute::cast(column, &to)?,
        ),
        None => (field.clone(), column.clone()),
    })
}

/// The type a column of `data_type` is written as in JSON, when it is not
/// itself: decimals become text, and so do decimals inside nested types.
fn json_type(data_type: &DataType) -> Option<DataType> {
    let field = |f: &FieldRef| -> Option<FieldRef> {
        json_type(f.data_type()).map(|t| Arc::new(Field::clone(f).with_data_type(t)))
    };
    match data_type {
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => Some(DataType::Utf8),
        DataType::List(f) => field(f).map(DataType::List),
        DataType::LargeList(f) => field(f).map(DataType::LargeList),
        DataType::ListView(f) => field(f).map(DataType::ListView),
        DataType::LargeListView(f) => field(f).map(DataType::LargeListView),
        DataType::FixedSizeList(f, n) => field(f).map(|f| DataType::FixedSizeList(f, *n)),
        DataType::Map(f, sorted) => field(f).map(|f| DataType::Map(f, *sorted)),
        DataType::Struct(fields) => {
            if fields.iter().all(|f| json_type(f.data_type()).is_none()) {
                return None;
            }
            Some(DataType::Struct(
                fields
                    .iter()
                    .map(|f| field(f).unwrap_or_else(|| f.clone()))
                    .collect(),
            ))
        }
        _ => None,
    }
}

fn parquet_error(e: ParquetError, doing: &str) -> Error {
    match e {
        ParquetError::External(inner) => match inner.downcast::<std::io::Error>() {
            Ok(io) => Error::Io {
                message: doing.to_owned(),
                source: *io,
            },
            Err(other) => Error::internal_from(doing, other),
        },
        other => Error::internal_from(doing, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("a,b"), None])),
            ],
        )
        .unwrap()
    }

    fn render(format: ExportFormat, batches: &[RecordBatch]) -> Vec<u8> {
        let schema = batch().schema();
        let mut w = BatchWriter::new(format, Vec::new(), schema).unwrap();
        for b in batches {
            w.write(b).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn text_formats() {
        let b = batch();
        let csv = String::from_utf8(render(ExportFormat::Csv, std::slice::from_ref(&b))).unwrap();
        assert_eq!(csv, "id,name\n1,\"a,b\"\n2,\n");
        let json = String::from_utf8(render(ExportFormat::Json, std::slice::from_ref(&b))).unwrap();
        assert_eq!(json, r#"[{"id":1,"name":"a,b"},{"id":2,"name":null}]"#);
        let nd = String::from_utf8(render(ExportFormat::Ndjson, &[b])).unwrap();
        assert_eq!(
            nd,
            "{\"id\":1,\"name\":\"a,b\"}\n{\"id\":2,\"name\":null}\n"
        );
    }

    /// A page and a JSON or NDJSON download write every value the same
    /// way: one encoding, with the values pinned here.
    #[test]
    fn pages_and_downloads_encode_values_alike() {
        use arrow::array::{
            ArrayRef, BinaryArray, Decimal128Array, Float64Array, ListBuilder, NullArray,
            TimestampMicrosecondArray,
        };
        let decimal = Decimal128Array::from(vec![Some(123_456_789_012_345_678_901_234_567), None])
            .with_precision_and_scale(38, 9)
            .unwrap();
        let mut list = ListBuilder::new(
            Decimal128Array::builder(2).with_data_type(DataType::Decimal128(10, 2)),
        );
        list.values().append_value(150);
        list.values().append_null();
        list.append(true);
        list.append_null();
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("d", Arc::new(decimal)),
            (
                "ts",
                Arc::new(
                    TimestampMicrosecondArray::from(vec![Some(1_704_164_645_000_000), None])
                        .with_timezone("+02:00"),
                ),
            ),
            (
                "b",
                Arc::new(BinaryArray::from(vec![
                    Some(&[0x01u8, 0x02, 0xff][..]),
                    None,
                ])),
            ),
            ("l", Arc::new(list.finish())),
            (
                "f",
                Arc::new(Float64Array::from(vec![Some(f64::NAN), Some(0.5)])),
            ),
            ("n", Arc::new(NullArray::new(2))),
        ];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let names: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let page = json_rows(std::slice::from_ref(&batch)).unwrap();
        assert_eq!(
            serde_json::Value::from(page.clone()),
            serde_json::json!([
                [
                    "123456789012345678.901234567",
                    "2024-01-02T05:04:05+02:00",
                    "0102ff",
                    ["1.50", null],
                    null,
                    null
                ],
                [null, null, null, null, 0.5, null]
            ])
        );
        let render_with = |format| {
            let mut w = BatchWriter::new(format, Vec::new(), batch.schema()).unwrap();
            w.write(&batch).unwrap();
            w.finish().unwrap()
        };
        let json: Vec<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_slice(&render_with(ExportFormat::Json)).unwrap();
        let ndjson: Vec<serde_json::Map<String, serde_json::Value>> =
            String::from_utf8(render_with(ExportFormat::Ndjson))
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect();
        for download in [json, ndjson] {
            assert_eq!(download.len(), page.len());
            for (object, row) in download.iter().zip(&page) {
                for (name, value) in names.iter().zip(row) {
                    assert_eq!(object.get(name), Some(value), "column {name}");
                }
            }
        }
    }

    fn csv_with(options: ExportOptions, batch: &RecordBatch) -> String {
        let mut w =
            BatchWriter::with_options(ExportFormat::Csv, Vec::new(), batch.schema(), options)
                .unwrap();
        w.write(batch).unwrap();
        String::from_utf8(w.finish().unwrap()).unwrap()
    }

    /// OWASP's CSV injection advice: a text cell that a spreadsheet would
    /// run as a formula gets a leading `'`; numbers, and text that is a
    /// plain number, stay as they are.
    #[test]
    fn csv_escapes_text_cells_a_spreadsheet_would_run_as_formulas() {
        use arrow::array::{DictionaryArray, Float64Array, StringViewArray};
        use arrow::datatypes::Int32Type;
        let payloads = [
            "=HYPERLINK(\"http://x\",\"y\")",
            "+1+cmd|' /C calc'!A0",
            "@SUM(1)",
            "-2+3",
            "\tx",
            "\rx",
            "-1.5",
            "plain",
        ];
        let batch = RecordBatch::try_from_iter([
            (
                "text",
                Arc::new(StringArray::from(payloads.to_vec())) as ArrayRef,
            ),
            (
                "view",
                Arc::new(StringViewArray::from(payloads.to_vec())) as ArrayRef,
            ),
            (
                "dictionary",
                Arc::new(payloads.into_iter().collect::<DictionaryArray<Int32Type>>()) as ArrayRef,
            ),
            (
                "number",
                Arc::new(Float64Array::from(vec![-1.5; payloads.len()])) as ArrayRef,
            ),
        ])
        .unwrap();
        let csv = csv_with(ExportOptions::default(), &batch);
        let read = |csv: &str| -> Vec<Vec<String>> {
            let schema = Arc::new(Schema::new(
                ["text", "view", "dictionary", "number"]
                    .map(|n| Field::new(n, DataType::Utf8, true))
                    .to_vec(),
            ));
            let reader = csv::ReaderBuilder::new(schema)
                .with_header(true)
                .build(std::io::Cursor::new(csv.as_bytes().to_vec()))
                .unwrap();
            let mut rows = Vec::new();
            for b in reader {
                let b = b.unwrap();
                for row in 0..b.num_rows() {
                    rows.push(
                        b.columns()
                            .iter()
                            .map(|c| c.as_string::<i32>().value(row).to_owned())
                            .collect(),
                    );
                }
            }
            rows
        };
        let escaped = [
            "'=HYPERLINK(\"http://x\",\"y\")",
            "'+1+cmd|' /C calc'!A0",
            "'@SUM(1)",
            "'-2+3",
            "'\tx",
            "'\rx",
            "-1.5",
            "plain",
        ];
        for (row, want) in read(&csv).iter().zip(escaped) {
            assert_eq!(row[..3], [want, want, want], "{csv}");
            assert_eq!(row[3], "-1.5");
        }
        let kept = csv_with(
            ExportOptions::default().with_csv_formulas(CsvFormulas::Keep),
            &batch,
        );
        for (row, want) in read(&kept).iter().zip(payloads) {
            assert_eq!(row[..3], [want, want, want], "{kept}");
        }
    }

    /// arrow's CSV writer refuses lists, structs and maps; a cell holds
    /// the value's JSON text instead, as a page encodes it.
    #[test]
    fn csv_writes_nested_values_as_their_json() {
        use arrow::array::{Decimal128Array, ListBuilder, StructArray};
        let mut list = ListBuilder::new(
            Decimal128Array::builder(2).with_data_type(DataType::Decimal128(10, 2)),
        );
        list.values().append_value(-150);
        list.values().append_null();
        list.append(true);
        list.append_null();
        let record = StructArray::from(vec![
            (
                Arc::new(Field::new("n", DataType::Int64, true)),
                Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
            ),
            (
                Arc::new(Field::new("s", DataType::Utf8, true)),
                Arc::new(StringArray::from(vec![Some("=a,\"b\""), None])) as ArrayRef,
            ),
        ]);
        let batch = RecordBatch::try_from_iter([
            ("l", Arc::new(list.finish()) as ArrayRef),
            ("r", Arc::new(record) as ArrayRef),
        ])
        .unwrap();
        let csv = csv_with(ExportOptions::default(), &batch);
        assert_eq!(
            csv,
            r#"l,r
"[""-1.50"",null]","{""n"":1,""s"":""=a,\""b\""""}"
,"{""n"":null,""s"":null}"
"#
        );
        assert_eq!(
            serde_json::Value::from(json_rows(std::slice::from_ref(&batch)).unwrap()),
            serde_json::json!([
                [["-1.50", null], {"n": 1, "s": "=a,\"b\""}],
                [null, {"n": null, "s": null}]
            ])
        );
    }

    /// A `Write` whose reader has gone.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "reader gone"))
        }

        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "reader gone"))
        }
    }

    /// `loupe query -f csv | head -1` must end quietly: arrow's CSV writer
    /// turns the I/O error into a message, which must still read as a
    /// closed pipe, in every format.
    #[test]
    fn a_closed_output_is_a_broken_pipe_in_every_format() {
        // More than the CSV writer buffers, so that the error comes from
        // writing a record (which arrow keeps only as a message).
        let b = RecordBatch::try_from_iter([(
            "n",
            Arc::new(Int64Array::from_iter_values(0..100_000)) as ArrayRef,
        )])
        .unwrap();
        for format in ExportFormat::ALL {
            let failed = BatchWriter::new(format, Closed, b.schema()).and_then(|mut w| {
                w.write(&b)?;
                w.finish().map(|_| ())
            });
            let err = failed.expect_err(format.name());
            assert!(err.is_broken_pipe(), "{format}: {err:?}");
        }
    }

    /// Once the reader has gone, the output drops what it is given (so
    /// that a format's clean-up does not fail twice), and every later call
    /// of the writer fails as the first did.
    #[test]
    fn calls_after_a_closed_output_fail_too() {
        let b = RecordBatch::try_from_iter([(
            "n",
            Arc::new(Int64Array::from_iter_values(0..100_000)) as ArrayRef,
        )])
        .unwrap();
        let mut w = BatchWriter::new(ExportFormat::Csv, Closed, b.schema()).unwrap();
        assert!(w.write(&b).unwrap_err().is_broken_pipe());
        assert!(w.write(&b).unwrap_err().is_broken_pipe());
        assert!(w.finish().err().is_some_and(|e| e.is_broken_pipe()));
    }

    #[test]
    fn empty_results_are_still_well_formed() {
        assert_eq!(render(ExportFormat::Csv, &[]), b"id,name\n");
        assert_eq!(render(ExportFormat::Json, &[]), b"[]");
        assert_eq!(render(ExportFormat::Ndjson, &[]), b"");
    }

    #[test]
    fn binary_formats_read_back() {
        let b = batch();
        let bytes = render(ExportFormat::Parquet, &[b.clone(), b.clone()]);
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::from(bytes),
        )
        .unwrap()
        .build()
        .unwrap();
        let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 4);

        let bytes = render(ExportFormat::Arrow, &[b]);
        let reader =
            arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
        assert_eq!(reader.map(|b| b.unwrap().num_rows()).sum::<usize>(), 2);
    }
}
