//! From MySQL and MariaDB column types to Arrow types, and the decoder that
//! appends binary-protocol values to each column's builder.
//!
//! | MySQL | Arrow |
//! |---|---|
//! | `TINYINT` | Int8 (`TINYINT(1)` too, or Boolean with `tinyint1_as_boolean`) |
//! | `SMALLINT`, `MEDIUMINT`, `INT`, `BIGINT` | Int16, Int32, Int32, Int64 |
//! | the same `UNSIGNED` | UInt8, UInt16, UInt32, UInt32, UInt64 |
//! | `FLOAT`, `DOUBLE` | Float32, Float64 |
//! | `DECIMAL(p, s)` | Decimal128(p, s) for p <= 38, Decimal256(p, s) up to 65 |
//! | `DATE` | Date32 |
//! | `DATETIME(fsp)` | Timestamp(µs) |
//! | `TIMESTAMP(fsp)` | Timestamp(µs, "UTC") (the session runs in UTC) |
//! | `TIME` | Duration(µs): negative and past 24 hours are kept |
//! | `YEAR` | Int16 |
//! | `CHAR`, `VARCHAR`, `TEXT`, `ENUM`, `SET` | Utf8; Binary under a binary collation |
//! | `BINARY`, `VARBINARY`, `BLOB` | Binary |
//! | `JSON` | Utf8 with the `arrow.json` extension name |
//! | `BIT(n)` | UInt64 |
//! | `GEOMETRY` | Binary: MySQL's internal form, a 4-byte SRID and then WKB |
//!
//! A date or datetime that is not a real calendar day (`0000-00-00`,
//! `2024-02-00`, `2024-02-30`, allowed by some SQL modes) becomes NULL.
//! Every field carries its MySQL type in the metadata key `loupe.mysql.type`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder,
    DurationMicrosecondBuilder, Float32Builder, Float64Builder, Int8Builder, Int16Builder,
    Int32Builder, Int64Builder, StringArray, StringBuilder, TimestampMicrosecondBuilder,
    UInt8Builder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, TimeUnit, i256};
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime};
use mysql_async::Value;
use mysql_async::consts::{ColumnFlags, ColumnType};

use crate::remote::batch::{DecodeError, DecodeResult, FinishSized};

/// Metadata key holding the MySQL type of a field.
pub const MYSQL_TYPE_KEY: &str = "loupe.mysql.type";

/// The character set number of binary strings.
const BINARY_CHARSET: u16 = 63;

/// What is known of a column: from a result set's metadata, or from the
/// catalog for the schema browser.
#[derive(Debug, Clone)]
pub(crate) struct ColumnShape {
    pub(crate) kind: Shape,
    pub(crate) unsigned: bool,
    /// For DECIMAL: precision and scale.
    pub(crate) precision: u32,
    pub(crate) scale: u32,
    /// A `TINYINT(1)`.
    pub(crate) tiny_flag: bool,
    /// Binary collation: bytes, not text.
    pub(crate) binary: bool,
    /// The MySQL type name, for metadata.
    pub(crate) name: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Tiny,
    Short,
    Medium,
    Long,
    LongLong,
    Float,
    Double,
    Decimal,
    Date,
    DateTime,
    Timestamp,
    Time,
    Year,
    String,
    Json,
    Bit,
    Geometry,
    Null,
    Other,
}

impl ColumnShape {
    /// From result-set metadata.
    pub(crate) fn from_column(column: &mysql_async::Column) -> Self {
        let flags = column.flags();
        let unsigned = flags.contains(ColumnFlags::UNSIGNED_FLAG);
        let binary = column.character_set() == BINARY_CHARSET;
        let decimals = u32::from(column.decimals());
        let (kind, name) = match column.column_type() {
            ColumnType::MYSQL_TYPE_TINY => (Shape::Tiny, "tinyint"),
            ColumnType::MYSQL_TYPE_SHORT => (Shape::Short, "smallint"),
            ColumnType::MYSQL_TYPE_INT24 => (Shape::Medium, "mediumint"),
            ColumnType::MYSQL_TYPE_LONG => (Shape::Long, "int"),
            ColumnType::MYSQL_TYPE_LONGLONG => (Shape::LongLong, "bigint"),
            ColumnType::MYSQL_TYPE_FLOAT => (Shape::Float, "float"),
            ColumnType::MYSQL_TYPE_DOUBLE => (Shape::Double, "double"),
            ColumnType::MYSQL_TYPE_DECIMAL | ColumnType::MYSQL_TYPE_NEWDECIMAL => {
                (Shape::Decimal, "decimal")
            }
            ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE => (Shape::Date, "date"),
            ColumnType::MYSQL_TYPE_DATETIME | ColumnType::MYSQL_TYPE_DATETIME2 => {
                (Shape::DateTime, "datetime")
            }
            ColumnType::MYSQL_TYPE_TIMESTAMP | ColumnType::MYSQL_TYPE_TIMESTAMP2 => {
                (Shape::Timestamp, "timestamp")
            }
            ColumnType::MYSQL_TYPE_TIME | ColumnType::MYSQL_TYPE_TIME2 => (Shape::Time, "time"),
            ColumnType::MYSQL_TYPE_YEAR => (Shape::Year, "year"),
            ColumnType::MYSQL_TYPE_JSON => (Shape::Json, "json"),
            ColumnType::MYSQL_TYPE_BIT => (Shape::Bit, "bit"),
            ColumnType::MYSQL_TYPE_GEOMETRY => (Shape::Geometry, "geometry"),
            ColumnType::MYSQL_TYPE_NULL => (Shape::Null, "null"),
            ColumnType::MYSQL_TYPE_ENUM => (Shape::String, "enum"),
            ColumnType::MYSQL_TYPE_SET => (Shape::String, "set"),
            ColumnType::MYSQL_TYPE_VARCHAR
            | ColumnType::MYSQL_TYPE_VAR_STRING
            | ColumnType::MYSQL_TYPE_STRING => {
                if flags.contains(ColumnFlags::ENUM_FLAG) {
                    (Shape::String, "enum")
                } else if flags.contains(ColumnFlags::SET_FLAG) {
                    (Shape::String, "set")
                } else if binary {
                    (Shape::String, "varbinary")
                } else {
                    (Shape::String, "varchar")
                }
            }
            ColumnType::MYSQL_TYPE_TINY_BLOB
            | ColumnType::MYSQL_TYPE_MEDIUM_BLOB
            | ColumnType::MYSQL_TYPE_LONG_BLOB
            | ColumnType::MYSQL_TYPE_BLOB => {
                if binary {
                    (Shape::String, "blob")
                } else {
                    (Shape::String, "text")
                }
            }
            _ => (Shape::Other, "other"),
        };
        // DECIMAL's display length counts the sign and the point.
        let length = column.column_length();
        let precision = if kind == Shape::Decimal {
            length
                .saturating_sub(u32::from(decimals > 0))
                .saturating_sub(u32::from(!unsigned))
        } else {
            0
        };
        Self {
            kind,
            unsigned,
            precision,
            scale: decimals,
            tiny_flag: kind == Shape::Tiny && length == 1,
            binary: binary && kind == Shape::String,
            name,
        }
    }

    /// From the catalog's `DATA_TYPE` and `COLUMN_TYPE`.
    pub(crate) fn from_catalog(
        data_type: &str,
        column_type: &str,
        precision: Option<u64>,
        scale: Option<u64>,
        charset: Option<&str>,
    ) -> Self {
        let lower = column_type.to_ascii_lowercase();
        let unsigned = lower.contains("unsigned");
        let binary_collation = charset.is_none()
            && matches!(
                data_type,
                "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob"
            );
        let (kind, name) = match data_type {
            "tinyint" => (Shape::Tiny, "tinyint"),
            "smallint" => (Shape::Short, "smallint"),
            "mediumint" => (Shape::Medium, "mediumint"),
            "int" | "integer" => (Shape::Long, "int"),
            "bigint" => (Shape::LongLong, "bigint"),
            "float" => (Shape::Float, "float"),
            "double" | "real" => (Shape::Double, "double"),
            "decimal" | "numeric" => (Shape::Decimal, "decimal"),
            "date" => (Shape::Date, "date"),
            "datetime" => (Shape::DateTime, "datetime"),
            "timestamp" => (Shape::Timestamp, "timestamp"),
            "time" => (Shape::Time, "time"),
            "year" => (Shape::Year, "year"),
            "json" => (Shape::Json, "json"),
            "bit" => (Shape::Bit, "bit"),
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection" | "geomcollection" => {
                (Shape::Geometry, "geometry")
            }
            "enum" => (Shape::String, "enum"),
            "set" => (Shape::String, "set"),
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
                (Shape::String, "varchar")
            }
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                (Shape::String, "varbinary")
            }
            _ => (Shape::Other, "other"),
        };
        Self {
            kind,
            unsigned,
            precision: precision.and_then(|p| u32::try_from(p).ok()).unwrap_or(0),
            scale: scale.and_then(|s| u32::try_from(s).ok()).unwrap_or(0),
            tiny_flag: lower.starts_with("tinyint(1)"),
            binary: binary_collation || charset == Some("binary"),
            name,
        }
    }
}

/// A column's field and decoder.
pub(crate) struct Column {
    pub(crate) field: Field,
    pub(crate) decoder: Decoder,
}

pub(crate) fn column(name: &str, shape: &ColumnShape, tinyint1_as_boolean: bool) -> Column {
    let (data_type, decoder) = plan(shape, tinyint1_as_boolean);
    let mut metadata = HashMap::from([(MYSQL_TYPE_KEY.to_owned(), shape.name.to_owned())]);
    if shape.kind == Shape::Json {
        metadata.insert("ARROW:extension:name".to_owned(), "arrow.json".to_owned());
        metadata.insert("ARROW:extension:metadata".to_owned(), "{}".to_owned());
    }
    Column {
        field: Field::new(name, data_type, true).with_metadata(metadata),
        decoder,
    }
}

pub(crate) fn arrow_type(shape: &ColumnShape, tinyint1_as_boolean: bool) -> DataType {
    plan(shape, tinyint1_as_boolean).0
}

fn plan(shape: &ColumnShape, tinyint1_as_boolean: bool) -> (DataType, Decoder) {
    use Decoder as D;
    let u = shape.unsigned;
    match shape.kind {
        Shape::Tiny if shape.tiny_flag && tinyint1_as_boolean => {
            (DataType::Boolean, D::Bool(BooleanBuilder::new()))
        }
        Shape::Tiny if u => (DataType::UInt8, D::UInt8(UInt8Builder::new())),
        Shape::Tiny => (DataType::Int8, D::Int8(Int8Builder::new())),
        Shape::Short if u => (DataType::UInt16, D::UInt16(UInt16Builder::new())),
        Shape::Short | Shape::Year => (DataType::Int16, D::Int16(Int16Builder::new())),
        Shape::Medium | Shape::Long if u => (DataType::UInt32, D::UInt32(UInt32Builder::new())),
        Shape::Medium | Shape::Long => (DataType::Int32, D::Int32(Int32Builder::new())),
        Shape::LongLong if u => (DataType::UInt64, D::UInt64(UInt64Builder::new())),
        Shape::LongLong => (DataType::Int64, D::Int64(Int64Builder::new())),
        Shape::Float => (DataType::Float32, D::Float32(Float32Builder::new())),
        Shape::Double => (DataType::Float64, D::Float64(Float64Builder::new())),
        Shape::Decimal => decimal(shape.precision, shape.scale),
        Shape::Date => (DataType::Date32, D::Date(Date32Builder::new())),
        Shape::DateTime => (
            DataType::Timestamp(TimeUnit::Microsecond, None),
            D::DateTime(TimestampMicrosecondBuilder::new()),
        ),
        Shape::Timestamp => (
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            D::DateTime(TimestampMicrosecondBuilder::new().with_timezone("UTC")),
        ),
        Shape::Time => (
            DataType::Duration(TimeUnit::Microsecond),
            D::Time(DurationMicrosecondBuilder::new()),
        ),
        Shape::Bit => (DataType::UInt64, D::Bits(UInt64Builder::new())),
        Shape::String if shape.binary => (DataType::Binary, D::Binary(BinaryBuilder::new())),
        Shape::String | Shape::Json | Shape::Null => {
            (DataType::Utf8, D::Text(BinaryBuilder::new()))
        }
        Shape::Geometry | Shape::Other => (DataType::Binary, D::Binary(BinaryBuilder::new())),
    }
}

fn decimal(precision: u32, scale: u32) -> (DataType, Decoder) {
    let (Ok(p), Ok(s)) = (u8::try_from(precision), i8::try_from(scale)) else {
        return (DataType::Utf8, Decoder::DecimalText(StringBuilder::new()));
    };
    let p = p.max(s.max(0) as u8).max(1);
    if p <= 38 {
        if let Ok(b) = Decimal128Builder::new().with_precision_and_scale(p, s) {
            return (DataType::Decimal128(p, s), Decoder::Decimal128(b, scale));
        }
    } else if p <= 76
        && let Ok(b) = Decimal256Builder::new().with_precision_and_scale(p, s)
    {
        return (DataType::Decimal256(p, s), Decoder::Decimal256(b, scale));
    }
    (DataType::Utf8, Decoder::DecimalText(StringBuilder::new()))
}

/// Appends binary-protocol values to one column's builder.
pub(crate) enum Decoder {
    Bool(BooleanBuilder),
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    UInt8(UInt8Builder),
    UInt16(UInt16Builder),
    UInt32(UInt32Builder),
    UInt64(UInt64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal128(Decimal128Builder, u32),
    Decimal256(Decimal256Builder, u32),
    DecimalText(StringBuilder),
    Date(Date32Builder),
    DateTime(TimestampMicrosecondBuilder),
    Time(DurationMicrosecondBuilder),
    Bits(UInt64Builder),
    /// Utf8, gathered as bytes and checked once a batch by `finish`: one
    /// check of the whole buffer costs less than one per value.
    Text(BinaryBuilder),
    Binary(BinaryBuilder),
}

fn integer(value: &Value) -> DecodeResult<i128> {
    match value {
        Value::Int(i) => Ok(i128::from(*i)),
        Value::UInt(u) => Ok(i128::from(*u)),
        Value::Bytes(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| DecodeError::new("integer value is not a number")),
        other => Err(DecodeError::new(format!("integer column sent {other:?}"))),
    }
}

fn narrow<T: TryFrom<i64> + TryFrom<u64> + TryFrom<i128>>(value: &Value) -> DecodeResult<T> {
    let fits = |wide: i128| DecodeError::new(format!("{wide} does not fit the column's type"));
    // The binary protocol sends integers as integers: convert those
    // without going through 128 bits.
    match value {
        Value::Int(i) => T::try_from(*i).map_err(|_| fits(i128::from(*i))),
        Value::UInt(u) => T::try_from(*u).map_err(|_| fits(i128::from(*u))),
        _ => {
            let wide = integer(value)?;
            T::try_from(wide).map_err(|_| fits(wide))
        }
    }
}

fn float(value: &Value) -> DecodeResult<f64> {
    match value {
        Value::Float(f) => Ok(f64::from(*f)),
        Value::Double(d) => Ok(*d),
        Value::Int(i) => Ok(*i as f64),
        Value::UInt(u) => Ok(*u as f64),
        Value::Bytes(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| DecodeError::new("float value is not a number")),
        other => Err(DecodeError::new(format!("float column sent {other:?}"))),
    }
}

fn bytes(value: &Value) -> DecodeResult<&[u8]> {
    match value {
        Value::Bytes(b) => Ok(b),
        other => Err(DecodeError::new(format!("string column sent {other:?}"))),
    }
}

fn text(value: &Value) -> DecodeResult<std::borrow::Cow<'_, str>> {
    match value {
        Value::Bytes(b) => std::str::from_utf8(b)
            .map(std::borrow::Cow::Borrowed)
            .map_err(|_| DecodeError::new("text value is not valid UTF-8")),
        // Values of expressions can come typed; render them as MySQL would.
        Value::Int(i) => Ok(i.to_string().into()),
        Value::UInt(u) => Ok(u.to_string().into()),
        Value::Float(f) => Ok(f.to_string().into()),
        Value::Double(d) => Ok(d.to_string().into()),
        other => Ok(other.as_sql(true).trim_matches('\'').to_owned().into()),
    }
}

/// A DECIMAL's text (`-123.4500`) as an integer scaled by `10^scale`.
fn scaled_decimal(text: &str, scale: u32) -> DecodeResult<Option<i256>> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(DecodeError::new(format!("{text:?} is not a decimal")));
    }
    let scale = scale as usize;
    let frac_digits = || frac.bytes().chain(std::iter::repeat(b'0')).take(scale);
    // Most decimals fit an i128 (up to 38 digits): add them up there, and
    // fall back to 256 bits only when that overflows.
    let mut small: Option<i128> = Some(0);
    for b in int.bytes().chain(frac_digits()) {
        small = small
            .and_then(|a| a.checked_mul(10))
            .and_then(|a| a.checked_add(i128::from(b - b'0')));
        if small.is_none() {
            break;
        }
    }
    if let Some(acc) = small {
        return Ok(Some(i256::from_i128(if negative { -acc } else { acc })));
    }
    let ten = i256::from_i128(10);
    let mut acc = i256::ZERO;
    for b in int.bytes().chain(frac_digits()) {
        let d = i256::from_i128(i128::from(b - b'0'));
        acc = match acc.checked_mul(ten).and_then(|a| a.checked_add(d)) {
            Some(a) => a,
            None => return Ok(None),
        };
    }
    Ok(Some(if negative { acc.wrapping_neg() } else { acc }))
}

const UNIX_EPOCH_DAYS_CE: i32 = 719_163;

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar;
/// `None` for a date that does not exist (MySQL's zero dates among them).
/// Arithmetic instead of a calendar type: this runs once per cell.
fn epoch_days(y: u16, m: u8, d: u8) -> Option<i32> {
    let leap = y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400));
    let month_days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if d == 0 || d > month_days {
        return None;
    }
    // Years start in March, so the leap day ends the year.
    let y = i32::from(y) - i32::from(m <= 2);
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month = (i32::from(m) + 9) % 12;
    let day_of_year = (153 * month + 2) / 5 + i32::from(d) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Some(era * 146_097 + day_of_era - 719_468)
}

/// Microseconds from the epoch to a date and time; `None` when either
/// does not exist.
fn epoch_micros(y: u16, m: u8, d: u8, h: u8, mi: u8, s: u8, us: u32) -> Option<i64> {
    if h > 23 || mi > 59 || s > 59 || us > 999_999 {
        return None;
    }
    let seconds = (i64::from(h) * 60 + i64::from(mi)) * 60 + i64::from(s);
    Some((i64::from(epoch_days(y, m, d)?) * 86_400 + seconds) * 1_000_000 + i64::from(us))
}

/// A DECIMAL's text scaled by `10^scale` into an `i128` in one pass, for
/// plain `-digits.digits` that fit; `None` sends the value to
/// [`scaled_decimal`], which handles (or refuses) the rest. Digits past
/// `scale` are dropped, as there.
fn scaled_i128(text: &[u8], scale: u32) -> Option<i128> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    // Up to 19 digits add up in a u64, which is much cheaper than i128
    // arithmetic; longer values continue in 128 bits.
    let mut small: u64 = 0;
    let mut wide: Option<i128> = None;
    let mut taken = 0u32;
    let mut fraction: Option<u32> = None;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                if let Some(seen) = fraction.as_mut() {
                    if *seen == scale {
                        continue;
                    }
                    *seen += 1;
                }
                let digit = b - b'0';
                match wide.as_mut() {
                    None if taken < 19 => small = small * 10 + u64::from(digit),
                    None => {
                        wide = Some(
                            i128::from(small)
                                .checked_mul(10)?
                                .checked_add(i128::from(digit))?,
                        );
                    }
                    Some(acc) => *acc = acc.checked_mul(10)?.checked_add(i128::from(digit))?,
                }
                taken += 1;
            }
            b'.' if fraction.is_none() => fraction = Some(0),
            _ => return None,
        }
    }
    if taken == 0 {
        return None;
    }
    let mut acc = wide.unwrap_or(i128::from(small));
    let missing = scale - fraction.unwrap_or(0);
    if missing > 0 {
        acc = acc.checked_mul(10i128.checked_pow(missing)?)?;
    }
    Some(if negative { -acc } else { acc })
}

impl Decoder {
    /// Appends one value; `None` and `Value::NULL` are SQL NULL.
    pub(crate) fn append(&mut self, value: Option<Value>) -> DecodeResult {
        let value = match value {
            None | Some(Value::NULL) => return self.append_null(),
            Some(v) => v,
        };
        match self {
            Self::Bool(b) => b.append_value(integer(&value)? != 0),
            Self::Int8(b) => b.append_value(narrow(&value)?),
            Self::Int16(b) => b.append_value(narrow(&value)?),
            Self::Int32(b) => b.append_value(narrow(&value)?),
            Self::Int64(b) => b.append_value(narrow(&value)?),
            Self::UInt8(b) => b.append_value(narrow(&value)?),
            Self::UInt16(b) => b.append_value(narrow(&value)?),
            Self::UInt32(b) => b.append_value(narrow(&value)?),
            Self::UInt64(b) => b.append_value(narrow(&value)?),
            Self::Float32(b) => b.append_value(float(&value)? as f32),
            Self::Float64(b) => b.append_value(float(&value)?),
            Self::Decimal128(b, scale) => {
                if let Value::Bytes(raw) = &value
                    && let Some(scaled) = scaled_i128(raw, *scale)
                {
                    b.append_value(scaled);
                    return Ok(());
                }
                let scaled = scaled_decimal(&text(&value)?, *scale)?
                    .and_then(|v| v.to_i128())
                    .ok_or_else(|| {
                        DecodeError::new("decimal does not fit its declared precision")
                    })?;
                b.append_value(scaled);
            }
            Self::Decimal256(b, scale) => {
                let scaled = scaled_decimal(&text(&value)?, *scale)?.ok_or_else(|| {
                    DecodeError::new("decimal does not fit its declared precision")
                })?;
                b.append_value(scaled);
            }
            Self::DecimalText(b) => b.append_value(text(&value)?),
            Self::Text(b) | Self::Binary(b) => match &value {
                Value::Bytes(v) => b.append_value(v),
                other => b.append_value(text(other)?.as_bytes()),
            },
            Self::Date(b) => match value {
                Value::Date(y, m, d, ..) => b.append_option(epoch_days(y, m, d)),
                Value::Bytes(_) => b.append_option(
                    parse_datetime(&text(&value)?)
                        .map(|t| t.date().num_days_from_ce() - UNIX_EPOCH_DAYS_CE),
                ),
                other => return Err(DecodeError::new(format!("date column sent {other:?}"))),
            },
            Self::DateTime(b) => match value {
                Value::Date(y, m, d, h, mi, s, us) => {
                    b.append_option(epoch_micros(y, m, d, h, mi, s, us));
                }
                Value::Bytes(_) => b.append_option(
                    parse_datetime(&text(&value)?).map(|t| t.and_utc().timestamp_micros()),
                ),
                other => return Err(DecodeError::new(format!("datetime column sent {other:?}"))),
            },
            Self::Time(b) => match value {
                Value::Time(negative, days, h, m, s, us) => {
                    let seconds = ((i64::from(days) * 24 + i64::from(h)) * 60 + i64::from(m)) * 60
                        + i64::from(s);
                    // A server sends at most 838:59:59; anything beyond
                    // the microsecond range is malformed, not wrapped.
                    let micros = seconds
                        .checked_mul(1_000_000)
                        .and_then(|m| m.checked_add(i64::from(us)))
                        .ok_or_else(|| {
                            DecodeError::new(format!(
                                "time value of {days} days and {seconds} seconds is out of range"
                            ))
                        })?;
                    b.append_value(if negative { -micros } else { micros });
                }
                other => return Err(DecodeError::new(format!("time column sent {other:?}"))),
            },
            Self::Bits(b) => {
                let raw = bytes(&value)?;
                if raw.len() > 8 {
                    return Err(DecodeError::new("BIT value longer than 64 bits"));
                }
                b.append_value(
                    raw.iter()
                        .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte)),
                );
            }
        }
        Ok(())
    }

    fn append_null(&mut self) -> DecodeResult {
        match self {
            Self::Bool(b) => b.append_null(),
            Self::Int8(b) => b.append_null(),
            Self::Int16(b) => b.append_null(),
            Self::Int32(b) => b.append_null(),
            Self::Int64(b) => b.append_null(),
            Self::UInt8(b) => b.append_null(),
            Self::UInt16(b) => b.append_null(),
            Self::UInt32(b) => b.append_null(),
            Self::UInt64(b) | Self::Bits(b) => b.append_null(),
            Self::Float32(b) => b.append_null(),
            Self::Float64(b) => b.append_null(),
            Self::Decimal128(b, _) => b.append_null(),
            Self::Decimal256(b, _) => b.append_null(),
            Self::DecimalText(b) => b.append_null(),
            Self::Text(b) | Self::Binary(b) => b.append_null(),
            Self::Date(b) => b.append_null(),
            Self::DateTime(b) => b.append_null(),
            Self::Time(b) => b.append_null(),
        }
        Ok(())
    }

    /// The batch so far; the builder starts the next one. Fails on text that
    /// is not UTF-8.
    pub(crate) fn finish(&mut self) -> DecodeResult<ArrayRef> {
        Ok(match self {
            Self::Bool(b) => b.finish_sized_ref(),
            Self::Int8(b) => b.finish_sized_ref(),
            Self::Int16(b) => b.finish_sized_ref(),
            Self::Int32(b) => b.finish_sized_ref(),
            Self::Int64(b) => b.finish_sized_ref(),
            Self::UInt8(b) => b.finish_sized_ref(),
            Self::UInt16(b) => b.finish_sized_ref(),
            Self::UInt32(b) => b.finish_sized_ref(),
            Self::UInt64(b) | Self::Bits(b) => b.finish_sized_ref(),
            Self::Float32(b) => b.finish_sized_ref(),
            Self::Float64(b) => b.finish_sized_ref(),
            Self::Decimal128(b, _) => b.finish_sized_ref(),
            Self::Decimal256(b, _) => b.finish_sized_ref(),
            Self::DecimalText(b) => b.finish_sized_ref(),
            Self::Text(b) => Arc::new(
                StringArray::try_from_binary(b.finish_sized())
                    .map_err(|_| DecodeError::new("text value is not valid UTF-8"))?,
            ),
            Self::Binary(b) => b.finish_sized_ref(),
            Self::Date(b) => b.finish_sized_ref(),
            Self::DateTime(b) => b.finish_sized_ref(),
            Self::Time(b) => b.finish_sized_ref(),
        })
    }
}

/// `YYYY-MM-DD[ HH:MM:SS[.ffffff]]`, as MySQL writes dates in text; invalid
/// calendar days give `None`.
fn parse_datetime(text: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_time(NaiveTime::MIN))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn epoch_days_agree_with_the_calendar(y in 0u16..=9999, m in 0u8..=13, d in 0u8..=32) {
            let expected = NaiveDate::from_ymd_opt(i32::from(y), u32::from(m), u32::from(d))
                .map(|date| date.num_days_from_ce() - UNIX_EPOCH_DAYS_CE);
            prop_assert_eq!(epoch_days(y, m, d), expected);
        }

        #[test]
        fn epoch_micros_agree_with_the_calendar(
            y in 1000u16..=9999, m in 1u8..=12, d in 1u8..=28,
            h in 0u8..=24, mi in 0u8..=60, s in 0u8..=60, us in 0u32..=1_000_000,
        ) {
            let expected = (h < 24 && mi < 60 && s < 60 && us < 1_000_000)
                .then(|| {
                    NaiveDate::from_ymd_opt(i32::from(y), u32::from(m), u32::from(d))
                        .and_then(|date| date.and_hms_micro_opt(u32::from(h), u32::from(mi), u32::from(s), us))
                        .map(|t| t.and_utc().timestamp_micros())
                })
                .flatten();
            prop_assert_eq!(epoch_micros(y, m, d, h, mi, s, us), expected);
        }

        #[test]
        fn the_fast_decimal_path_agrees_with_the_exact_one(
            text in "-?[0-9]{0,40}(\\.[0-9]{0,12})?", scale in 0u32..=30,
        ) {
            if let Some(fast) = scaled_i128(text.as_bytes(), scale) {
                let exact = scaled_decimal(&text, scale).ok().flatten();
                prop_assert_eq!(Some(i256::from_i128(fast)), exact);
            }
        }
    }

    #[test]
    fn the_fast_decimal_path_takes_plain_decimals_only() {
        assert_eq!(scaled_i128(b"-123.45", 4), Some(-1_234_500));
        assert_eq!(scaled_i128(b"7.129", 2), Some(712));
        assert_eq!(scaled_i128(b"12", 2), Some(1200));
        for other in [&b""[..], b".", b"-", b"1.2.3", b"+1", b" 1", b"1e5"] {
            assert_eq!(scaled_i128(other, 2), None, "{other:?}");
        }
        assert_eq!(scaled_i128("9".repeat(40).as_bytes(), 0), None);
    }

    #[test]
    fn decimals_scale_exactly() {
        assert_eq!(
            scaled_decimal("-123.45", 4).unwrap(),
            Some(i256::from_i128(-1_234_500))
        );
        assert_eq!(scaled_decimal("0.5", 0).unwrap(), Some(i256::from_i128(0)));
        assert_eq!(
            scaled_decimal("99", 2).unwrap(),
            Some(i256::from_i128(9900))
        );
        assert!(scaled_decimal("1e5", 0).is_err());
        assert!(scaled_decimal("", 0).is_err());
        let big = format!("{}.{}", "9".repeat(35), "9".repeat(30));
        let v = scaled_decimal(&big, 30).unwrap().unwrap();
        assert_eq!(v.to_string(), "9".repeat(65));
    }

    #[test]
    fn zero_and_invalid_dates_are_null() {
        let mut d = Decoder::Date(Date32Builder::new());
        d.append(Some(Value::Date(0, 0, 0, 0, 0, 0, 0))).unwrap();
        d.append(Some(Value::Date(2024, 2, 30, 0, 0, 0, 0)))
            .unwrap();
        d.append(Some(Value::Date(1970, 1, 2, 0, 0, 0, 0))).unwrap();
        let a = d.finish().unwrap();
        let a = a
            .as_any()
            .downcast_ref::<arrow::array::Date32Array>()
            .unwrap();
        assert!(a.is_null(0) && a.is_null(1));
        assert_eq!(a.value(2), 1);
    }

    #[test]
    fn negative_and_long_times_are_kept() {
        let mut t = Decoder::Time(DurationMicrosecondBuilder::new());
        t.append(Some(Value::Time(true, 1, 2, 3, 4, 5))).unwrap();
        let a = t.finish().unwrap();
        let a = a
            .as_any()
            .downcast_ref::<arrow::array::DurationMicrosecondArray>()
            .unwrap();
        assert_eq!(a.value(0), -((26 * 3600 + 3 * 60 + 4) * 1_000_000 + 5));
    }

    #[test]
    fn a_time_beyond_the_microsecond_range_is_an_error_not_an_overflow() {
        // Found by the `mysql_decode` fuzz target: days * 86,400 s * 10^6
        // overflowed an i64 (a panic in debug builds, a wrapped value in
        // release builds).
        let mut t = Decoder::Time(DurationMicrosecondBuilder::new());
        let err = t
            .append(Some(Value::Time(false, u32::MAX, 23, 59, 59, 999_999)))
            .unwrap_err();
        assert!(err.0.contains("out of range"), "{}", err.0);
        t.append(Some(Value::Time(true, 34, 22, 59, 59, 0)))
            .unwrap();
        let a = t.finish().unwrap();
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn out_of_range_values_are_errors() {
        let mut b = Decoder::Int8(Int8Builder::new());
        assert!(b.append(Some(Value::Int(300))).is_err());
        let mut b = Decoder::UInt64(UInt64Builder::new());
        b.append(Some(Value::UInt(u64::MAX))).unwrap();
        assert!(b.append(Some(Value::Int(-1))).is_err());
    }

    fn text_column(values: &[Option<Value>]) -> DecodeResult<Vec<Option<String>>> {
        let mut d = Decoder::Text(BinaryBuilder::new());
        for v in values {
            d.append(v.clone())?;
        }
        let a = d.finish()?;
        let a = a.as_any().downcast_ref::<StringArray>().unwrap();
        Ok(a.iter().map(|v| v.map(str::to_owned)).collect())
    }

    proptest! {
        /// The batch's one UTF-8 check accepts exactly what a check of each
        /// value would: a character split across two values is refused even
        /// though the bytes together are valid.
        #[test]
        fn text_is_checked_value_by_value(
            values in proptest::collection::vec(
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..6)),
                0..8,
            ),
        ) {
            let wire: Vec<Option<Value>> = values.iter().map(|v| v.clone().map(Value::Bytes)).collect();
            let expected: Option<Vec<Option<String>>> = values
                .iter()
                .map(|v| match v {
                    None => Some(None),
                    Some(b) => String::from_utf8(b.clone()).ok().map(Some),
                })
                .collect();
            prop_assert_eq!(text_column(&wire).ok(), expected);
        }
    }

    #[test]
    fn text_keeps_every_value_and_refuses_split_characters() {
        let got = text_column(&[
            Some(Value::Bytes("héllo 🦀".into())),
            None,
            Some(Value::NULL),
            Some(Value::Int(-7)),
            Some(Value::Bytes(Vec::new())),
        ])
        .unwrap();
        assert_eq!(
            got,
            [
                Some("héllo 🦀".into()),
                None,
                None,
                Some("-7".into()),
                Some(String::new())
            ]
        );
        // "é" is C3 A9: valid together, not as two values.
        let split = text_column(&[
            Some(Value::Bytes(vec![0xC3])),
            Some(Value::Bytes(vec![0xA9])),
        ]);
        assert_eq!(split.unwrap_err().0, "text value is not valid UTF-8");
        // The builder starts the next batch clean after a refused one.
        let mut d = Decoder::Text(BinaryBuilder::new());
        d.append(Some(Value::Bytes(vec![0xFF]))).unwrap();
        assert!(d.finish().is_err());
        d.append(Some(Value::Bytes("ok".into()))).unwrap();
        assert_eq!(d.finish().unwrap().len(), 1);
    }
}
