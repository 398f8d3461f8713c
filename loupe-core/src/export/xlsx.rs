//! XLSX output: typed cells in sheets of at most Excel's 1,048,576 rows,
//! each with a bold, frozen header row.
//!
//! Rows never gather in memory: each sheet is a constant-memory
//! `rust_xlsxwriter` worksheet, which moves every finished row to a
//! temporary file (in the system's temporary directory, `TMPDIR`); the
//! zip container is written to the output at the end, from those files.
//! What a cell holds is described in the parent module's documentation.

use std::borrow::Cow;
use std::io::{self, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, UInt64Array,
};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, SchemaRef, Time32MillisecondType, Time32SecondType,
    Time64MicrosecondType, Time64NanosecondType, TimeUnit, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};
use arrow::util::display::ArrayFormatter;
use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

use super::{cell_text_options, for_text_cells};
use crate::codes;
use crate::error::{Error, Result};

/// Rows in a sheet, its header row included: Excel's limit.
pub(super) const SHEET_ROWS: u32 = 1_048_576;
/// Columns in a sheet: Excel's limit.
pub(super) const SHEET_COLUMNS: usize = 16_384;
/// Characters (UTF-16 code units, as Excel counts them) in a cell.
pub(super) const CELL_CHARS: usize = 32_767;
/// Integers up to this size are exact in a double, Excel's only number.
const EXACT_INTEGER: u64 = 1 << 53;
/// Serial number of 1970-01-01, the Unix epoch, in Excel's 1900 system.
const EPOCH_SERIAL: i64 = 25_569;
/// The first day Excel's serials count right (1900-03-01: before it,
/// Excel counts a 29 February 1900 that never was) and the last it shows
/// (9999-12-31). Days outside are written as text.
const FIRST_SERIAL: i64 = 61;
const LAST_SERIAL: i64 = 2_958_465;
/// Above this many bytes of sheet XML, the zip needs ZIP64 (4 GiB per
/// entry and for offsets), with some room for the estimate's slack.
const ZIP32_BYTES: u64 = (u32::MAX as u64) - (64 << 20);

/// Writes batches as an XLSX workbook to `out`.
pub(super) struct XlsxWriter<W: Write + Send> {
    out: W,
    workbook: Workbook,
    formats: Formats,
    names: Vec<String>,
    widths: Vec<f64>,
    /// The sheet rows go to, once one is started.
    sheet: Option<usize>,
    /// The next row of that sheet.
    row: u32,
    rows_per_sheet: u32,
    /// An upper bound of the sheets' XML size, to know when the zip needs
    /// ZIP64.
    xml_bytes: u64,
}

/// The cell formats, made once.
struct Formats {
    header: Format,
    date: Format,
    datetime: Format,
    time: Format,
}

impl<W: Write + Send> XlsxWriter<W> {
    /// Starts a workbook for `schema` whose sheets hold `rows_per_sheet`
    /// rows, header included ([`SHEET_ROWS`] but in tests).
    ///
    /// # Errors
    /// When the schema has more columns than a sheet holds, or the first
    /// sheet's temporary file cannot be made.
    pub(super) fn new(out: W, schema: &SchemaRef, rows_per_sheet: u32) -> Result<Self> {
        let columns = schema.fields().len();
        if columns > SHEET_COLUMNS {
            return Err(Error::invalid_input(
                codes::RESULTS_TOO_WIDE,
                format!(
                    "the result has {columns} columns and an XLSX sheet holds at most \
                     {SHEET_COLUMNS}; select fewer columns, or use CSV or Parquet"
                ),
            ));
        }
        let mut workbook = Workbook::new();
        // Excel's own level: about twice as fast as the default 6, for
        // files a few percent larger.
        workbook.set_zip_compression_level(3);
        let mut writer = Self {
            out,
            workbook,
            formats: Formats {
                header: Format::new().set_bold(),
                date: Format::new().set_num_format("yyyy-mm-dd"),
                datetime: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
                time: Format::new().set_num_format("hh:mm:ss"),
            },
            names: schema
                .fields()
                .iter()
                .map(|f| fit_cell(f.name()).into_owned())
                .collect(),
            widths: schema
                .fields()
                .iter()
                .map(|f| column_width(f.name(), f.data_type()))
                .collect(),
            sheet: None,
            row: 0,
            rows_per_sheet: rows_per_sheet.max(2),
            xml_bytes: 0,
        };
        writer.guarded(Self::start_sheet)?;
        Ok(writer)
    }

    /// Writes the rows of `batch`, starting sheets as they fill.
    pub(super) fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let batch = for_text_cells(batch)?;
        let columns = batch
            .columns()
            .iter()
            .map(Column::new)
            .collect::<Result<Vec<_>>>()?;
        self.guarded(|this| this.write_rows(&columns, batch.num_rows()))
    }

    /// Writes the workbook to the output and returns it.
    pub(super) fn finish(mut self) -> Result<W> {
        self.guarded(|this| {
            this.workbook
                .use_zip_large_file(this.xml_bytes > ZIP32_BYTES)
                .save_to_writer(&mut this.out)
                .map_err(|e| xlsx_error(e, "writing the xlsx output"))?;
            this.out.flush().map_err(|source| Error::Io {
                message: "writing the xlsx output".to_owned(),
                source,
            })
        })?;
        Ok(self.out)
    }

    fn write_rows(&mut self, columns: &[Column<'_>], rows: usize) -> Result<()> {
        let mut next = 0;
        while next < rows {
            if self.row >= self.rows_per_sheet {
                self.start_sheet()?;
            }
            let room = (self.rows_per_sheet - self.row) as usize;
            let take = room.min(rows - next);
            let index = self.sheet.ok_or_else(|| Error::internal("no xlsx sheet"))?;
            let sheet = self
                .workbook
                .worksheet_from_index(index)
                .map_err(|e| xlsx_error(e, "finding the xlsx sheet"))?;
            for i in next..next + take {
                let mut bytes = ROW_XML;
                for (col, column) in columns.iter().enumerate() {
                    // At most `SHEET_COLUMNS` columns, checked at the start.
                    let col = col as u16;
                    bytes += column
                        .write(sheet, self.row, col, i, &self.formats)
                        .map_err(|e| xlsx_error(e, "writing an xlsx cell"))?;
                }
                self.xml_bytes += bytes;
                self.row += 1;
            }
            next += take;
        }
        Ok(())
    }

    /// Adds a sheet and writes its header row.
    fn start_sheet(&mut self) -> Result<()> {
        let sheet = self
            .workbook
            .add_worksheet_with_constant_memory()
            .map_err(|e| xlsx_error(e, "starting an xlsx sheet"))?;
        let mut bytes = ROW_XML;
        for (col, (name, width)) in self.names.iter().zip(&self.widths).enumerate() {
            let col = col as u16;
            sheet
                .write_string_with_format(0, col, name, &self.formats.header)
                .and_then(|s| s.set_column_width(col, *width))
                .map_err(|e| xlsx_error(e, "writing the xlsx header"))?;
            bytes += text_xml(name);
        }
        sheet
            .set_freeze_panes(1, 0)
            .map_err(|e| xlsx_error(e, "freezing the xlsx header"))?;
        self.xml_bytes += bytes;
        self.sheet = Some(self.sheet.map_or(0, |s| s + 1));
        self.row = 1;
        Ok(())
    }

    /// Runs `f`, turning a panic into an error. `rust_xlsxwriter` panics
    /// when a sheet's temporary file cannot be written (a full disk); a
    /// download must then end with an error, not with a cut-short file.
    fn guarded<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        catch_unwind(AssertUnwindSafe(|| f(self))).unwrap_or_else(|_| {
            Err(Error::Io {
                message: format!(
                    "writing the xlsx sheets' temporary files in {}",
                    std::env::temp_dir().display()
                ),
                source: io::Error::other(
                    "the writer stopped; is the temporary directory full or read-only? \
                     Set TMPDIR to a directory with room",
                ),
            })
        })
    }
}

/// Bytes of a row's XML around its cells (`<row r=".." spans="..">`).
const ROW_XML: u64 = 64;
/// Bytes of a cell's XML around its value.
const CELL_XML: u64 = 80;

/// An upper bound of the XML bytes of a text cell: escaping makes a byte
/// at most 7 (a control character becomes `_x0001_`).
fn text_xml(text: &str) -> u64 {
    CELL_XML + 7 * text.len() as u64
}

/// One column of a batch, ready to be written cell by cell.
struct Column<'a> {
    array: &'a ArrayRef,
    cells: Cells<'a>,
}

/// How a column's cells are written.
enum Cells<'a> {
    /// Never a value (the null type).
    Empty,
    /// Signed integers: numbers, or text beyond 2^53.
    Int(Int64Array),
    /// Unsigned integers: numbers, or text beyond 2^53.
    UInt(UInt64Array),
    /// Floating point: numbers; NaN and infinities empty.
    Float(Float64Array),
    Bool(&'a BooleanArray),
    Text(Text<'a>),
    /// Decimals: numbers when a double holds them exactly, else text.
    Decimal(ArrayFormatter<'a>),
    /// Dates, times and timestamps: `ticks` per day since the epoch (or
    /// since midnight), as Excel serials in `kind`'s format; text outside
    /// Excel's calendar.
    Serial {
        ticks: Int64Array,
        per_day: i64,
        kind: SerialKind,
        text: ArrayFormatter<'a>,
    },
    /// Everything else: the CSV text.
    Formatted(ArrayFormatter<'a>),
}

#[derive(Clone, Copy)]
enum SerialKind {
    Date,
    DateTime,
    Time,
}

enum Text<'a> {
    Utf8(&'a arrow::array::StringArray),
    Large(&'a arrow::array::LargeStringArray),
    View(&'a arrow::array::StringViewArray),
}

impl Text<'_> {
    fn value(&self, row: usize) -> &str {
        match self {
            Self::Utf8(a) => a.value(row),
            Self::Large(a) => a.value(row),
            Self::View(a) => a.value(row),
        }
    }
}

impl<'a> Column<'a> {
    fn new(array: &'a ArrayRef) -> Result<Self> {
        let text = || ArrayFormatter::try_new(array.as_ref(), &cell_text_options());
        let serial = |ticks: Int64Array, per_day: i64, kind: SerialKind| -> Result<Cells<'a>> {
            Ok(Cells::Serial {
                ticks,
                per_day,
                kind,
                text: text()?,
            })
        };
        let int = |a: Int64Array| Cells::Int(a);
        let cells = match array.data_type() {
            DataType::Null => Cells::Empty,
            DataType::Int8 => int(array.as_primitive::<Int8Type>().unary(i64::from)),
            DataType::Int16 => int(array.as_primitive::<Int16Type>().unary(i64::from)),
            DataType::Int32 => int(array.as_primitive::<Int32Type>().unary(i64::from)),
            DataType::Int64 => int(array.as_primitive::<Int64Type>().clone()),
            DataType::UInt8 => int(array.as_primitive::<UInt8Type>().unary(i64::from)),
            DataType::UInt16 => int(array.as_primitive::<UInt16Type>().unary(i64::from)),
            DataType::UInt32 => int(array.as_primitive::<UInt32Type>().unary(i64::from)),
            DataType::UInt64 => Cells::UInt(array.as_primitive::<UInt64Type>().clone()),
            DataType::Float16 => Cells::Float(
                array
                    .as_primitive::<Float16Type>()
                    .unary(|v| shortest(v.to_f32())),
            ),
            DataType::Float32 => Cells::Float(array.as_primitive::<Float32Type>().unary(shortest)),
            DataType::Float64 => Cells::Float(array.as_primitive::<Float64Type>().clone()),
            DataType::Boolean => Cells::Bool(array.as_boolean()),
            DataType::Utf8 => Cells::Text(Text::Utf8(array.as_string::<i32>())),
            DataType::LargeUtf8 => Cells::Text(Text::Large(array.as_string::<i64>())),
            DataType::Utf8View => Cells::Text(Text::View(array.as_string_view())),
            DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..) => Cells::Decimal(text()?),
            DataType::Date32 => serial(
                array.as_primitive::<Date32Type>().unary(i64::from),
                1,
                SerialKind::Date,
            )?,
            DataType::Date64 => serial(
                array.as_primitive::<Date64Type>().reinterpret_cast(),
                86_400_000,
                SerialKind::DateTime,
            )?,
            // A zoned timestamp holds the UTC instant: written as UTC.
            DataType::Timestamp(unit, _) => serial(
                arrow::compute::cast(array, &DataType::Int64)?
                    .as_primitive::<Int64Type>()
                    .clone(),
                ticks_per_day(*unit),
                SerialKind::DateTime,
            )?,
            DataType::Time32(TimeUnit::Second) => serial(
                array.as_primitive::<Time32SecondType>().unary(i64::from),
                ticks_per_day(TimeUnit::Second),
                SerialKind::Time,
            )?,
            DataType::Time32(_) => serial(
                array
                    .as_primitive::<Time32MillisecondType>()
                    .unary(i64::from),
                ticks_per_day(TimeUnit::Millisecond),
                SerialKind::Time,
            )?,
            DataType::Time64(TimeUnit::Nanosecond) => serial(
                array
                    .as_primitive::<Time64NanosecondType>()
                    .reinterpret_cast(),
                ticks_per_day(TimeUnit::Nanosecond),
                SerialKind::Time,
            )?,
            DataType::Time64(_) => serial(
                array
                    .as_primitive::<Time64MicrosecondType>()
                    .reinterpret_cast(),
                ticks_per_day(TimeUnit::Microsecond),
                SerialKind::Time,
            )?,
            _ => Cells::Formatted(text()?),
        };
        Ok(Self { array, cells })
    }

    /// Writes row `i` of the column to (`row`, `col`) of `sheet`; returns
    /// an upper bound of the bytes of XML it makes.
    fn write(
        &self,
        sheet: &mut Worksheet,
        row: u32,
        col: u16,
        i: usize,
        formats: &Formats,
    ) -> Result<u64, XlsxError> {
        if self.array.is_null(i) {
            return Ok(0);
        }
        let text = |sheet: &mut Worksheet, text: &str| -> Result<u64, XlsxError> {
            let cell = fit_cell(text);
            sheet.write_string(row, col, cell.as_ref())?;
            Ok(text_xml(&cell))
        };
        match &self.cells {
            Cells::Empty => return Ok(0),
            Cells::Int(a) => {
                let v = a.value(i);
                if v.unsigned_abs() <= EXACT_INTEGER {
                    sheet.write_number(row, col, v as f64)?;
                } else {
                    return text(sheet, &v.to_string());
                }
            }
            Cells::UInt(a) => {
                let v = a.value(i);
                if v <= EXACT_INTEGER {
                    sheet.write_number(row, col, v as f64)?;
                } else {
                    return text(sheet, &v.to_string());
                }
            }
            Cells::Float(a) => {
                let v = a.value(i);
                if !v.is_finite() {
                    return Ok(0);
                }
                sheet.write_number(row, col, v)?;
            }
            Cells::Bool(a) => {
                sheet.write_boolean(row, col, a.value(i))?;
            }
            Cells::Text(a) => return text(sheet, a.value(i)),
            Cells::Decimal(f) => {
                let decimal = f.value(i).to_string();
                match exact_double(&decimal) {
                    Some(v) => {
                        sheet.write_number(row, col, v)?;
                    }
                    None => return text(sheet, &decimal),
                }
            }
            Cells::Serial {
                ticks,
                per_day,
                kind,
                text: formatter,
            } => match serial(ticks.value(i), *per_day, *kind) {
                Some(serial) => {
                    let format = match kind {
                        SerialKind::Date => &formats.date,
                        SerialKind::DateTime => &formats.datetime,
                        SerialKind::Time => &formats.time,
                    };
                    sheet.write_number_with_format(row, col, serial, format)?;
                }
                None => return text(sheet, &formatter.value(i).to_string()),
            },
            Cells::Formatted(f) => return text(sheet, &f.value(i).to_string()),
        }
        Ok(CELL_XML)
    }
}

fn ticks_per_day(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 86_400,
        TimeUnit::Millisecond => 86_400_000,
        TimeUnit::Microsecond => 86_400_000_000,
        TimeUnit::Nanosecond => 86_400_000_000_000,
    }
}

/// The Excel serial of `ticks` (since the epoch, or since midnight for a
/// time of day), or `None` outside the days Excel shows right.
fn serial(ticks: i64, per_day: i64, kind: SerialKind) -> Option<f64> {
    let days = ticks.div_euclid(per_day);
    let part = ticks.rem_euclid(per_day) as f64 / per_day as f64;
    if let SerialKind::Time = kind {
        return (days == 0).then_some(part);
    }
    let day = days.checked_add(EPOCH_SERIAL)?;
    (FIRST_SERIAL..=LAST_SERIAL)
        .contains(&day)
        .then_some(day as f64 + part)
}

/// The double whose shortest text is `v`'s: a 32-bit `0.1` is the
/// double `0.1`, not `0.10000000149011612`.
fn shortest(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

/// `decimal` (a decimal's text, such as `-0012.50`) as a double, when the
/// double's shortest text has the same digits: no digit lost or added.
fn exact_double(decimal: &str) -> Option<f64> {
    let v: f64 = decimal.parse().ok()?;
    (v.is_finite() && digits(decimal) == digits(&format!("{v:e}"))).then_some(v)
}

/// The sign, significant digits and the power of ten of the first digit
/// of a number's text: `-12.50`, `-0012.5` and `-1.25e1` are all
/// `(true, "125", 1)`; every zero is `(false, "", 0)`.
fn digits(text: &str) -> (bool, String, i64) {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().unwrap_or(0)),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all: String = whole.chars().chain(fraction.chars()).collect();
    let Some(first) = all.find(|c: char| c != '0') else {
        return (false, String::new(), 0);
    };
    let power = whole.len() as i64 - 1 - first as i64 + exponent;
    let significant = all[first..].trim_end_matches('0').to_owned();
    (negative, significant, power)
}

/// `text` cut to fit a cell, with a note saying so: Excel refuses longer
/// cells.
pub(super) fn fit_cell(text: &str) -> Cow<'_, str> {
    // A UTF-16 unit takes at least one byte of UTF-8.
    if text.len() <= CELL_CHARS {
        return Cow::Borrowed(text);
    }
    let units = text.encode_utf16().count();
    if units <= CELL_CHARS {
        return Cow::Borrowed(text);
    }
    let note = format!(" … [truncated: {units} characters; an Excel cell holds {CELL_CHARS}]");
    let budget = CELL_CHARS - note.encode_utf16().count();
    let mut used = 0;
    let end = text
        .char_indices()
        .find(|(_, c)| {
            used += c.len_utf16();
            used > budget
        })
        .map_or(text.len(), |(at, _)| at);
    Cow::Owned(format!("{}{note}", &text[..end]))
}

/// A column's width in characters: room for its header and, for dates and
/// times, for the whole value (Excel shows `####` in a column too narrow
/// for a date).
fn column_width(name: &str, data_type: &DataType) -> f64 {
    let value: f64 = match data_type {
        DataType::Date32 => 11.0,
        DataType::Date64 | DataType::Timestamp(..) => 20.0,
        DataType::Time32(_) | DataType::Time64(_) => 9.0,
        _ => 0.0,
    };
    let header = (name.chars().count() as f64 + 2.0).min(50.0);
    // Excel's default width.
    value.max(header).max(8.43)
}

fn xlsx_error(e: XlsxError, doing: &str) -> Error {
    match e {
        XlsxError::IoError(source) => Error::Io {
            message: doing.to_owned(),
            source,
        },
        XlsxError::TempFileError(dir, source) => Error::Io {
            message: format!(
                "making a temporary file for an xlsx sheet in {} (set TMPDIR to a writable \
                 directory)",
                dir.display()
            ),
            source,
        },
        other => Error::internal_from(doing.to_owned(), other),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Read};
    use std::sync::Arc;

    use arrow::array::{
        BinaryArray, Date32Array, Decimal128Array, DictionaryArray, DurationMillisecondArray,
        Float32Array, Int32Array, IntervalMonthDayNanoArray, ListBuilder, NullArray, StringArray,
        Time64MicrosecondArray, TimestampMicrosecondArray,
    };
    use arrow::datatypes::{Field, IntervalMonthDayNano, Schema};
    use calamine::{Data, Reader, Xlsx};

    use super::*;
    use crate::export::{BatchWriter, ExportFormat};

    /// `batches` as an XLSX file, through `BatchWriter` into memory (as an
    /// email attachment is made).
    fn render(schema: SchemaRef, batches: &[RecordBatch]) -> Vec<u8> {
        let mut w = BatchWriter::new(ExportFormat::Xlsx, Vec::new(), schema).unwrap();
        for b in batches {
            w.write(b).unwrap();
        }
        w.finish().unwrap()
    }

    /// Each sheet's name and rows, as calamine reads them.
    fn sheets(bytes: &[u8]) -> Vec<(String, Vec<Vec<Data>>)> {
        let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes.to_vec())).unwrap();
        book.sheet_names()
            .into_iter()
            .map(|name| {
                let range = book.worksheet_range(&name).unwrap();
                assert_eq!(range.start(), Some((0, 0)), "{name} starts at A1");
                let rows = range.rows().map(<[Data]>::to_vec).collect();
                (name, rows)
            })
            .collect()
    }

    /// One part of the XLSX zip, as text.
    fn part(bytes: &[u8], name: &str) -> String {
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut text = String::new();
        zip.by_name(name)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    /// The CSV download's cells of `batch`, as text.
    fn csv_cells(batch: &RecordBatch) -> Vec<Vec<String>> {
        let mut w = BatchWriter::new(ExportFormat::Csv, Vec::new(), batch.schema()).unwrap();
        w.write(batch).unwrap();
        let csv = w.finish().unwrap();
        let schema = Arc::new(Schema::new(
            batch
                .schema()
                .fields()
                .iter()
                .map(|f| Field::new(f.name(), DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
        let reader = arrow::csv::ReaderBuilder::new(schema)
            .with_header(true)
            .build(Cursor::new(csv))
            .unwrap();
        let mut rows = Vec::new();
        for b in reader {
            let b = b.unwrap();
            for row in 0..b.num_rows() {
                rows.push(
                    b.columns()
                        .iter()
                        .map(|c| {
                            let c = c.as_string::<i32>();
                            if c.is_null(row) {
                                String::new()
                            } else {
                                c.value(row).to_owned()
                            }
                        })
                        .collect(),
                );
            }
        }
        rows
    }

    fn text(s: &str) -> Data {
        Data::String(s.to_owned())
    }

    /// The serial of a date cell, failing on any other cell.
    fn date(cell: &Data) -> f64 {
        match cell {
            Data::DateTime(d) if d.is_datetime() => d.as_f64(),
            other => panic!("not a date cell: {other:?}"),
        }
    }

    const DAY_2024_01_02: i32 = 19_724;
    /// 2024-01-02 03:04:05 UTC, in µs.
    const AT: i64 = 1_704_164_645_000_000;

    fn typed_batch() -> RecordBatch {
        let big = 1_i64 << 53;
        let decimal = Decimal128Array::from(vec![
            Some(12_345),
            Some(-150),
            Some(1_234_567_890_123_456_789),
            None,
        ])
        .with_precision_and_scale(38, 2)
        .unwrap();
        let mut list = ListBuilder::new(Int64Array::builder(4));
        list.values().append_value(1);
        list.values().append_null();
        list.append(true);
        list.append(true);
        list.append_null();
        list.append(true);
        let columns: Vec<(&str, ArrayRef)> = vec![
            (
                "int",
                Arc::new(Int64Array::from(vec![42, -big, big + 1, i64::MIN])),
            ),
            (
                "uint",
                Arc::new(UInt64Array::from(vec![
                    7,
                    EXACT_INTEGER,
                    EXACT_INTEGER + 1,
                    u64::MAX,
                ])),
            ),
            ("i32", Arc::new(Int32Array::from(vec![1, 2, 3, i32::MIN]))),
            (
                "float",
                Arc::new(Float64Array::from(vec![
                    0.5,
                    f64::NAN,
                    f64::INFINITY,
                    -1e300,
                ])),
            ),
            (
                "f32",
                Arc::new(Float32Array::from(vec![0.1, 1.5, f32::NEG_INFINITY, -2.25])),
            ),
            (
                "bool",
                Arc::new(BooleanArray::from(vec![
                    Some(true),
                    Some(false),
                    None,
                    Some(true),
                ])),
            ),
            (
                "text",
                Arc::new(StringArray::from(vec!["=1+1", "plain", "", "é @SUM(1)"])),
            ),
            ("decimal", Arc::new(decimal)),
            (
                "date",
                Arc::new(Date32Array::from(vec![
                    DAY_2024_01_02,
                    0,
                    -25_568, // 1899-12-31: before Excel's calendar
                    -25_508, // 1900-03-01: its first right day
                ])),
            ),
            (
                "ts",
                Arc::new(TimestampMicrosecondArray::from(vec![AT, 0, AT, AT])),
            ),
            (
                "tsz",
                Arc::new(
                    TimestampMicrosecondArray::from(vec![AT, AT, AT, AT]).with_timezone("+02:00"),
                ),
            ),
            (
                "time",
                Arc::new(Time64MicrosecondArray::from(vec![
                    3_723_000_000,
                    0,
                    86_399_000_000,
                    43_200_000_000,
                ])),
            ),
            (
                "duration",
                Arc::new(DurationMillisecondArray::from(vec![90_061_500, 0, -1, 1])),
            ),
            (
                "interval",
                Arc::new(IntervalMonthDayNanoArray::from(vec![
                    IntervalMonthDayNano::new(14, -3, 1_500_000_000),
                    IntervalMonthDayNano::new(0, 0, 0),
                    IntervalMonthDayNano::new(1, 0, 0),
                    IntervalMonthDayNano::new(0, 1, 0),
                ])),
            ),
            (
                "binary",
                Arc::new(BinaryArray::from(vec![
                    &[0x01u8, 0x02, 0xff][..],
                    &[][..],
                    &[0x00][..],
                    &[0xab][..],
                ])),
            ),
            ("list", Arc::new(list.finish())),
            ("null", Arc::new(NullArray::new(4))),
            (
                "dictionary",
                Arc::new(
                    vec!["a", "b", "a", "c"]
                        .into_iter()
                        .collect::<DictionaryArray<Int32Type>>(),
                ),
            ),
        ];
        RecordBatch::try_from_iter(columns).unwrap()
    }

    /// Numbers are numbers, booleans booleans, dates dates (a zoned
    /// timestamp in UTC), text text; what Excel cannot hold exactly is
    /// text with every digit; the rest is the CSV cell's text.
    #[test]
    fn cells_keep_their_types() {
        let batch = typed_batch();
        let bytes = render(batch.schema(), std::slice::from_ref(&batch));
        let sheets = sheets(&bytes);
        assert_eq!(sheets.len(), 1);
        let (name, rows) = &sheets[0];
        assert_eq!(name, "Sheet1");
        assert_eq!(rows.len(), 5, "a header and four rows");
        let names: Vec<Data> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| text(f.name()))
            .collect();
        assert_eq!(rows[0], names, "the header row");
        let column = |name: &str| -> Vec<&Data> {
            let at = batch.schema().index_of(name).unwrap();
            rows[1..].iter().map(|r| &r[at]).collect()
        };

        assert_eq!(
            column("int"),
            [
                &Data::Float(42.0),
                &Data::Float(-9_007_199_254_740_992.0),
                &text("9007199254740993"),
                &text("-9223372036854775808"),
            ]
        );
        assert_eq!(
            column("uint"),
            [
                &Data::Float(7.0),
                &Data::Float(9_007_199_254_740_992.0),
                &text("9007199254740993"),
                &text("18446744073709551615"),
            ]
        );
        assert_eq!(
            column("i32"),
            [
                &Data::Float(1.0),
                &Data::Float(2.0),
                &Data::Float(3.0),
                &Data::Float(-2_147_483_648.0)
            ]
        );
        assert_eq!(
            column("float"),
            [
                &Data::Float(0.5),
                &Data::Empty,
                &Data::Empty,
                &Data::Float(-1e300)
            ]
        );
        assert_eq!(
            column("f32"),
            [
                &Data::Float(0.1),
                &Data::Float(1.5),
                &Data::Empty,
                &Data::Float(-2.25)
            ]
        );
        assert_eq!(
            column("bool"),
            [
                &Data::Bool(true),
                &Data::Bool(false),
                &Data::Empty,
                &Data::Bool(true)
            ]
        );
        assert_eq!(
            column("decimal"),
            [
                &Data::Float(123.45),
                &Data::Float(-1.5),
                &text("12345678901234567.89"),
                &Data::Empty,
            ]
        );

        let day = |serial: &Data| date(serial);
        let date_column = column("date");
        assert_eq!(day(date_column[0]), 45_293.0, "2024-01-02");
        assert_eq!(day(date_column[1]), 25_569.0, "1970-01-01");
        assert_eq!(date_column[2], &text("1899-12-31"), "before 1900 as text");
        assert_eq!(day(date_column[3]), 61.0, "1900-03-01");
        let at = 45_293.0 + (3.0 * 3600.0 + 4.0 * 60.0 + 5.0) / 86_400.0;
        for (name, cells) in [("ts", column("ts")), ("tsz", column("tsz"))] {
            assert!((day(cells[0]) - at).abs() < 1e-9, "{name}: in UTC");
        }
        assert_eq!(day(column("ts")[1]), 25_569.0);
        let times: Vec<f64> = column("time").into_iter().map(day).collect();
        assert!((times[0] - 3723.0 / 86_400.0).abs() < 1e-12, "{times:?}");
        assert_eq!(times[1], 0.0);
        assert_eq!(times[3], 0.5);

        // Formulas: text is a string cell, never a formula.
        assert_eq!(
            column("text"),
            [
                &text("=1+1"),
                &text("plain"),
                &Data::Empty,
                &text("é @SUM(1)")
            ]
        );
        let sheet = part(&bytes, "xl/worksheets/sheet1.xml");
        assert!(!sheet.contains("<f>"), "{sheet}");

        // The rest: the text of the CSV cell, one encoding for both.
        let csv = csv_cells(&batch);
        for name in ["duration", "interval", "binary", "list"] {
            let at = batch.schema().index_of(name).unwrap();
            for (row, cell) in column(name).into_iter().enumerate() {
                let want = &csv[row][at];
                let want = if want.is_empty() {
                    Data::Empty
                } else {
                    text(want)
                };
                assert_eq!(cell, &want, "{name}, row {row}");
            }
        }
        assert_eq!(column("binary")[0], &text("0102ff"));
        assert_eq!(column("list")[0], &text("[1,null]"));
        assert_eq!(column("null"), [&Data::Empty; 4]);
        assert_eq!(
            column("dictionary"),
            [&text("a"), &text("b"), &text("a"), &text("c")]
        );
    }

    /// The header is bold and frozen; date columns are wide enough to
    /// show their dates rather than `####`.
    #[test]
    fn the_header_row_is_bold_and_frozen() {
        let batch = typed_batch();
        let bytes = render(batch.schema(), std::slice::from_ref(&batch));
        let sheet = part(&bytes, "xl/worksheets/sheet1.xml");
        assert!(
            sheet.contains(
                r#"<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>"#
            ),
            "{sheet:.2000}"
        );
        let styles = part(&bytes, "xl/styles.xml");
        assert!(styles.contains("<b/>"), "{styles}");
        assert!(
            styles.contains(r#"formatCode="yyyy-mm-dd hh:mm:ss""#),
            "{styles}"
        );
        // Columns `ts` and `tsz` (J and K) are 20 characters wide.
        assert!(
            sheet.contains(r#"<col min="10" max="11" width="20.7109375" customWidth="1"/>"#),
            "{sheet:.2000}"
        );
    }

    /// A row of NULLs, in every type, is a row of empty cells.
    #[test]
    fn nulls_are_empty_cells() {
        let typed = typed_batch();
        let mut columns: Vec<(String, ArrayRef)> = vec![(
            "id".to_owned(),
            Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
        )];
        for (field, column) in typed.schema().fields().iter().zip(typed.columns()) {
            let nulls = arrow::array::new_null_array(column.data_type(), 2);
            columns.push((field.name().clone(), nulls));
        }
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let bytes = render(batch.schema(), std::slice::from_ref(&batch));
        let (_, rows) = &sheets(&bytes)[0];
        assert_eq!(rows.len(), 3);
        for row in &rows[1..] {
            assert!(row[1..].iter().all(|c| *c == Data::Empty), "{row:?}");
        }
    }

    #[test]
    fn an_empty_result_is_its_header_row() {
        let schema = typed_batch().schema();
        let bytes = render(schema.clone(), &[]);
        let sheets = sheets(&bytes);
        assert_eq!(sheets.len(), 1);
        let (_, rows) = &sheets[0];
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0],
            schema
                .fields()
                .iter()
                .map(|f| text(f.name()))
                .collect::<Vec<_>>()
        );
    }

    /// Sheets fill up to their limit, header included, and the rows go on
    /// in the next sheet, after its own header: here 4 rows a sheet.
    #[test]
    fn rows_past_a_sheets_limit_go_on_in_the_next_sheet() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let mut w = XlsxWriter::new(Vec::new(), &schema, 4).unwrap();
        for range in [0..3, 3..7] {
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from_iter_values(range))],
            )
            .unwrap();
            w.write(&batch).unwrap();
        }
        let bytes = w.finish().unwrap();
        let got: Vec<(String, Vec<Vec<Data>>)> = sheets(&bytes);
        let numbers = |ns: &[i64]| -> Vec<Vec<Data>> {
            std::iter::once(vec![text("n")])
                .chain(ns.iter().map(|n| vec![Data::Float(*n as f64)]))
                .collect()
        };
        assert_eq!(
            got,
            [
                ("Sheet1".to_owned(), numbers(&[0, 1, 2])),
                ("Sheet2".to_owned(), numbers(&[3, 4, 5])),
                ("Sheet3".to_owned(), numbers(&[6])),
            ]
        );
        let last = part(&bytes, "xl/worksheets/sheet3.xml");
        assert!(last.contains(r#"state="frozen""#), "{last}");

        // A result that fills its sheets exactly starts no empty one.
        let mut w = XlsxWriter::new(Vec::new(), &schema, 4).unwrap();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(0..6))],
        )
        .unwrap();
        w.write(&batch).unwrap();
        assert_eq!(sheets(&w.finish().unwrap()).len(), 2);
    }

    /// Excel's real limit: 1,048,575 rows and the header in the first
    /// sheet, the rest in the second.
    #[test]
    fn a_result_longer_than_a_sheet_takes_two() {
        let rows = i64::from(SHEET_ROWS) + 2;
        let batch = RecordBatch::try_from_iter([(
            "n",
            Arc::new(arrow::array::BooleanArray::from_iter(
                (0..rows).map(|i| Some(i % 2 == 0)),
            )) as ArrayRef,
        )])
        .unwrap();
        let bytes = render(batch.schema(), std::slice::from_ref(&batch));
        let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).unwrap();
        assert_eq!(book.sheet_names(), ["Sheet1", "Sheet2"]);
        let second = book.worksheet_range("Sheet2").unwrap();
        assert_eq!(second.get_size(), (4, 1), "the header and three rows");
    }

    /// Excel refuses a cell of more than 32,767 characters (UTF-16 units):
    /// longer text is cut, with a note that says so and how long it was.
    #[test]
    fn text_longer_than_a_cell_is_cut_with_a_note() {
        let long = "x".repeat(40_000);
        let emoji = "😀".repeat(20_000); // 40,000 UTF-16 units
        let fits = "é".repeat(CELL_CHARS); // 65,534 bytes, but it fits
        let batch = RecordBatch::try_from_iter([(
            "t",
            Arc::new(StringArray::from(vec![
                long.as_str(),
                emoji.as_str(),
                fits.as_str(),
            ])) as ArrayRef,
        )])
        .unwrap();
        let bytes = render(batch.schema(), std::slice::from_ref(&batch));
        let (_, rows) = &sheets(&bytes)[0];
        let cell = |row: usize| match &rows[row][0] {
            Data::String(s) => s.clone(),
            other => panic!("{other:?}"),
        };
        for (row, original) in [(1, &long), (2, &emoji)] {
            let cut = cell(row);
            assert_eq!(cut.encode_utf16().count(), CELL_CHARS, "row {row}");
            assert!(
                cut.ends_with(" … [truncated: 40000 characters; an Excel cell holds 32767]"),
                "{}",
                &cut[cut.len() - 100..]
            );
            let kept = cut.split(" … [truncated").next().unwrap();
            assert!(original.starts_with(kept) && kept.len() > 30_000);
        }
        assert_eq!(cell(3), fits);
    }

    #[test]
    fn a_result_wider_than_a_sheet_is_refused_by_its_width() {
        let schema = |n: usize| {
            Arc::new(Schema::new(
                (0..n)
                    .map(|i| Field::new(format!("c{i}"), DataType::Null, true))
                    .collect::<Vec<_>>(),
            ))
        };
        let err = BatchWriter::new(ExportFormat::Xlsx, Vec::new(), schema(SHEET_COLUMNS + 1))
            .unwrap_err();
        assert_eq!(err.code(), "results.too_wide");
        assert!(err.to_string().contains("16385 columns"), "{err}");
        assert!(BatchWriter::new(ExportFormat::Xlsx, Vec::new(), schema(SHEET_COLUMNS)).is_ok());
    }

    /// A decimal is a number when the double's shortest text has its
    /// digits, else text.
    #[test]
    fn decimals_are_numbers_only_when_a_double_holds_every_digit() {
        let cases = [
            ("123.45", Some(123.45)),
            ("-1.50", Some(-1.5)),
            ("0.00", Some(0.0)),
            ("-0.000", Some(0.0)),
            ("0.1", Some(0.1)),
            ("100000000000000000000", Some(1e20)),
            ("123456789012345.6", Some(123_456_789_012_345.6)),
            ("0.30000000000000004", Some(0.300_000_000_000_000_04)),
            ("9007199254740993", None),
            ("12345678901234567.89", None),
            ("0.12345678901234567890", None),
            ("1e400", None),
        ];
        for (decimal, want) in cases {
            assert_eq!(exact_double(decimal), want, "{decimal}");
        }
        assert_eq!(digits("-0012.50"), (true, "125".to_owned(), 1));
        assert_eq!(digits("-1.25e1"), (true, "125".to_owned(), 1));
        assert_eq!(digits("0.0012"), (false, "12".to_owned(), -3));
    }
}
