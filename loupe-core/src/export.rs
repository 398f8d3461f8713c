//! Writing result batches as CSV, JSON, NDJSON, Parquet or Arrow IPC, one
//! batch at a time, to any `Write` (a file, stdout, a response body buffer).
//!
//! JSON has one encoding, whether a result is downloaded (JSON, NDJSON)
//! or read a page at a time ([`json_rows`]): integers and floats are
//! numbers; decimals are strings, so that no digit is lost (most JSON
//! readers turn numbers into doubles); dates and times are ISO 8601
//! strings, with the zone's offset when the column has one; binary values
//! are hex strings; lists are arrays; NULL, NaN and infinities are `null`.

use std::fmt;
use std::io::Write;

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::csv;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow::ipc::writer::FileWriter;
use arrow::json::writer::{JsonArray, LineDelimited};
use arrow::json::{StructMode, Writer as JsonWriter, WriterBuilder as JsonWriterBuilder};
use parquet::arrow::ArrowWriter;
use parquet::errors::ParquetError;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::results::StoreOptions;

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
}

impl ExportFormat {
    /// Every format.
    pub const ALL: [ExportFormat; 5] = [
        ExportFormat::Csv,
        ExportFormat::Json,
        ExportFormat::Ndjson,
        ExportFormat::Parquet,
        ExportFormat::Arrow,
    ];

    /// The format's name: `csv`, `json`, ...
    pub fn name(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Ndjson => "ndjson",
            Self::Parquet => "parquet",
            Self::Arrow => "arrow",
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
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        self.name()
    }

    /// True for formats that are not text.
    pub fn is_binary(self) -> bool {
        matches!(self, Self::Parquet | Self::Arrow)
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Writes batches in one [`ExportFormat`] as they come.
pub struct BatchWriter<W: Write + Send> {
    inner: Inner<W>,
    schema: SchemaRef,
    wrote_any: bool,
}

enum Inner<W: Write + Send> {
    Csv(csv::Writer<W>),
    Json(JsonWriter<W, JsonArray>),
    Ndjson(JsonWriter<W, LineDelimited>),
    Parquet(Box<ArrowWriter<W>>),
    Arrow(FileWriter<W>),
}

impl<W: Write + Send> fmt::Debug for BatchWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = match self.inner {
            Inner::Csv(_) => ExportFormat::Csv,
            Inner::Json(_) => ExportFormat::Json,
            Inner::Ndjson(_) => ExportFormat::Ndjson,
            Inner::Parquet(_) => ExportFormat::Parquet,
            Inner::Arrow(_) => ExportFormat::Arrow,
        };
        f.debug_struct("BatchWriter")
            .field("format", &format)
            .finish_non_exhaustive()
    }
}

impl<W: Write + Send> BatchWriter<W> {
    /// Starts writing `format` to `out`. Parquet uses the result store's
    /// settings (zstd, page indexes).
    pub fn new(format: ExportFormat, out: W, schema: SchemaRef) -> Result<Self> {
        let inner = match format {
            ExportFormat::Csv => Inner::Csv(csv::WriterBuilder::new().with_header(true).build(out)),
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
                let props = StoreOptions::default().writer_properties()?;
                Inner::Parquet(Box::new(
                    ArrowWriter::try_new(out, schema.clone(), Some(props))
                        .map_err(|e| parquet_error(e, "start parquet output"))?,
                ))
            }
            ExportFormat::Arrow => Inner::Arrow(FileWriter::try_new(out, &schema)?),
        };
        Ok(Self {
            inner,
            schema,
            wrote_any: false,
        })
    }

    /// Writes one batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.wrote_any = true;
        match &mut self.inner {
            Inner::Csv(w) => w.write(batch)?,
            Inner::Json(w) => w.write(&for_json(batch)?)?,
            Inner::Ndjson(w) => w.write(&for_json(batch)?)?,
            Inner::Parquet(w) => w
                .write(batch)
                .map_err(|e| parquet_error(e, "write parquet output"))?,
            Inner::Arrow(w) => w.write(batch)?,
        }
        Ok(())
    }

    /// Writes what the format needs at the end (a closing bracket, a footer)
    /// and returns the output.
    pub fn finish(mut self) -> Result<W> {
        if !self.wrote_any {
            // A CSV of no rows still has its header.
            let empty = RecordBatch::new_empty(self.schema.clone());
            self.write(&empty)?;
        }
        let out = match self.inner {
            Inner::Csv(w) => w.into_inner(),
            Inner::Json(mut w) => {
                w.finish()?;
                w.into_inner()
            }
            Inner::Ndjson(mut w) => {
                w.finish()?;
                w.into_inner()
            }
            Inner::Parquet(w) => w
                .into_inner()
                .map_err(|e| parquet_error(e, "finish parquet output"))?,
            Inner::Arrow(mut w) => {
                w.finish()?;
                w.into_inner()?
            }
        };
        Ok(out)
    }
}

/// Rows as JSON arrays, one value per column: a page of a result, in the
/// same encoding as the JSON downloads (see the module's documentation).
pub fn json_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<serde_json::Value>>> {
    let mut writer = JsonWriterBuilder::new()
        .with_explicit_nulls(true)
        .with_struct_mode(StructMode::ListOnly)
        .build::<_, JsonArray>(Vec::new());
    for batch in batches {
        writer.write(&for_json(batch)?)?;
    }
    writer.finish()?;
    serde_json::from_slice(&writer.into_inner())
        .map_err(|e| Error::internal_from("reading a result page as JSON", e))
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
        match json_type(field.data_type()) {
            Some(to) => {
                columns.push(arrow::compute::cast(column, &to)?);
                fields.push(field.as_ref().clone().with_data_type(to));
            }
            None => {
                columns.push(column.clone());
                fields.push(field.as_ref().clone());
            }
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
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
        DataType::FixedSizeList(f, n) => field(f).map(|f| DataType::FixedSizeList(f, *n)),
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
