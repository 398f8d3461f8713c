//! Stored forms of the Arrow types that Parquet cannot hold, and the way
//! back to the original types.
//!
//! A result keeps the Arrow types its datasource produced. Parquet holds
//! almost all of them (durations, the other interval units, `Float16`,
//! views, maps and dictionaries included); for the rest, a field is
//! stored in another type that holds every value, and its metadata key
//! [`STORED_TYPE_KEY`] names the type it stands for:
//!
//! | Arrow type | stored as |
//! |---|---|
//! | `Interval(MonthDayNano)` | `Struct{months: Int32, days: Int32, nanoseconds: Int64}` |
//! | `Struct()` (no fields) | `Boolean`, true where the struct is not null |
//! | `FixedSizeBinary(0)` | `Boolean`, true where the value is not null |
//! | `Decimal32(1, s)` | `Decimal32(2, s)` (Parquet's writer puts a one-digit decimal in a 64-bit column and cannot fill it from 32-bit values) |
//!
//! The marks sit on the field that was changed, at any depth (an interval
//! in a list, a struct, a map), so a Parquet reader that does not know
//! Loupe still sees plain, named numbers. Every read restores the original
//! types from the marks.
//!
//! Packed representations whose values need a stored form (a dictionary
//! or run-end encoding of intervals) are stored unpacked and read back as
//! plain values: the values are the same. So are dictionaries of values
//! that Parquet reads back as a dictionary only for some types (numbers
//! held in 32 or 64 bits, dates, times, timestamps, durations, text and
//! bytes): a dictionary of booleans, views, nulls, `Float16`, fixed-size
//! binaries, the other interval units, decimals of more than 18 digits or
//! nested values is stored unpacked, where the Parquet reader would fail
//! or panic on it.
//! Run-end encoded columns are always stored unpacked, as Parquet reads
//! them back unpacked. The dictionaries Parquet does read back, it reads
//! with one dictionary per row group, which may hold more values than
//! the dictionary of any batch written: those with 8- or 16-bit keys are
//! stored, and read back, with 32-bit keys.
//!
//! Unions are refused with an error: Parquet has no form for them, and no
//! SQL datasource produces them. So are decimals with a negative scale,
//! which Parquet's decimal cannot express (the PostgreSQL connector
//! widens `numeric(5, -2)` to a scale of 0 before a result is stored).
//!
//! This module must not change a type Parquet holds faithfully, and knows
//! nothing of datasources.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeBinaryArray, FixedSizeListArray,
    GenericListArray, GenericListViewArray, Int32Array, Int64Array, IntervalMonthDayNanoArray,
    MapArray, OffsetSizeTrait, RecordBatch, RecordBatchOptions, StructArray,
};
use arrow::buffer::{BooleanBuffer, Buffer};
use arrow::datatypes::{
    DataType, Decimal32Type, Field, FieldRef, Fields, Int32Type, Int64Type, IntervalMonthDayNano,
    IntervalMonthDayNanoType, IntervalUnit, Schema, SchemaRef,
};

use crate::codes;
use crate::error::{Error, Result};

/// Field metadata key naming the Arrow type a stored field stands for, such
/// as `Interval(MonthDayNano)`.
pub const STORED_TYPE_KEY: &str = "loupe.arrow.type";

/// The mark of a stored `Interval(MonthDayNano)`.
const MONTH_DAY_NANO: &str = "Interval(MonthDayNano)";
/// The mark of a stored struct without fields.
const EMPTY_STRUCT: &str = "Struct()";
/// The mark of stored zero-byte values (Parquet's fixed-length values
/// have at least one byte).
const EMPTY_BINARY: &str = "FixedSizeBinary(0)";
/// The mark of a stored one-digit `Decimal32`.
const ONE_DIGIT_DECIMAL: &str = "Decimal32(1)";

/// How batches of one schema are written: as they are, or with some
/// fields in their stored forms.
#[derive(Debug, Clone)]
pub(crate) struct Storage {
    stored: SchemaRef,
    changed: bool,
}

impl Storage {
    /// The storage of batches of `schema`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (`results.unsupported_type`) for a type
    /// that has no stored form (a union, a decimal with a negative scale).
    pub(crate) fn for_schema(schema: &SchemaRef) -> Result<Self> {
        let mut changed = false;
        let mut fields = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            match stored_field(field)? {
                Some(stored) => {
                    changed = true;
                    fields.push(Arc::new(stored));
                }
                None => fields.push(field.clone()),
            }
        }
        let stored = if changed {
            Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
        } else {
            schema.clone()
        };
        Ok(Self { stored, changed })
    }

    /// The schema batches are written with.
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.stored
    }

    /// `batch` in its stored form.
    pub(crate) fn encode(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        if !self.changed {
            return Ok(batch.clone());
        }
        let columns = batch
            .columns()
            .iter()
            .zip(self.stored.fields())
            .map(|(column, field)| encode(column, field))
            .collect::<Result<Vec<_>>>()?;
        with_columns(self.stored.clone(), columns, batch.num_rows())
    }
}

/// How stored batches are read back in their original types.
#[derive(Debug, Clone)]
pub(crate) struct Restore {
    original: SchemaRef,
    changed: bool,
}

impl Restore {
    /// The way back from batches of the stored schema `stored`.
    pub(crate) fn for_stored(stored: &SchemaRef) -> Self {
        let mut changed = false;
        let fields: Vec<FieldRef> = stored
            .fields()
            .iter()
            .map(|field| match original_field(field) {
                Some(original) => {
                    changed = true;
                    Arc::new(original)
                }
                None => field.clone(),
            })
            .collect();
        let original = if changed {
            Arc::new(Schema::new_with_metadata(fields, stored.metadata().clone()))
        } else {
            stored.clone()
        };
        Self { original, changed }
    }

    /// The original schema.
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.original
    }

    /// True when some field is stored in another form.
    pub(crate) fn is_needed(&self) -> bool {
        self.changed
    }

    /// `batch`, read in the stored schema, in the original types.
    pub(crate) fn decode(&self, batch: RecordBatch) -> Result<RecordBatch> {
        if !self.changed {
            return Ok(batch);
        }
        let num_rows = batch.num_rows();
        let stored = batch.schema();
        let columns = batch
            .columns()
            .iter()
            .zip(stored.fields())
            .map(|(column, field)| decode(column, field))
            .collect::<Result<Vec<_>>>()?;
        with_columns(self.original.clone(), columns, num_rows)
    }
}

fn with_columns(schema: SchemaRef, columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
    // The row count is explicit: a batch may have no columns to count.
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        schema, columns, &options,
    )?)
}

/// The stored form of `field`, or `None` when Parquet holds it as it is.
fn stored_field(field: &Field) -> Result<Option<Field>> {
    let data_type = match field.data_type() {
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            return Ok(Some(marked(field, month_day_nano_parts(), MONTH_DAY_NANO)));
        }
        DataType::Struct(fields) if fields.is_empty() => {
            return Ok(Some(marked(field, DataType::Boolean, EMPTY_STRUCT)));
        }
        DataType::FixedSizeBinary(0) => {
            return Ok(Some(marked(field, DataType::Boolean, EMPTY_BINARY)));
        }
        DataType::Decimal32(1, scale) if *scale >= 0 => {
            let wider = DataType::Decimal32(2, *scale);
            return Ok(Some(marked(field, wider, ONE_DIGIT_DECIMAL)));
        }
        DataType::Union(..) => {
            return Err(Error::invalid_input(
                codes::RESULTS_UNSUPPORTED_TYPE,
                format!(
                    "column {:?} is a union ({}), which a result cannot store; \
                     select its members as separate columns",
                    field.name(),
                    field.data_type()
                ),
            ));
        }
        DataType::Decimal32(_, scale)
        | DataType::Decimal64(_, scale)
        | DataType::Decimal128(_, scale)
        | DataType::Decimal256(_, scale)
            if *scale < 0 =>
        {
            return Err(Error::invalid_input(
                codes::RESULTS_UNSUPPORTED_TYPE,
                format!(
                    "column {:?} is a decimal with a negative scale ({}), which a result \
                     cannot store; cast it to a decimal with a scale of 0",
                    field.name(),
                    field.data_type()
                ),
            ));
        }
        DataType::Dictionary(key, value) => {
            let plain = field.clone().with_data_type(value.as_ref().clone());
            return Ok(match stored_field(&plain)? {
                Some(stored) => Some(stored),
                None if !reads_back_as_dictionary(value) => Some(plain),
                // A read builds one dictionary per row group, whatever each
                // batch written held: more values than 8- or 16-bit keys
                // can index, once batches bring dictionaries of their own.
                None if key.primitive_width().is_some_and(|bytes| bytes < 4) => {
                    let wide = DataType::Dictionary(Box::new(DataType::Int32), value.clone());
                    Some(field.clone().with_data_type(wide))
                }
                None => None,
            });
        }
        DataType::RunEndEncoded(_, values) => {
            // Parquet reads run-end encoded columns back unpacked, whatever
            // the schema says: store them unpacked, so the two agree.
            let plain = field.clone().with_data_type(values.data_type().clone());
            return Ok(Some(stored_field(&plain)?.unwrap_or(plain)));
        }
        DataType::List(child) => stored_child(child)?.map(DataType::List),
        DataType::LargeList(child) => stored_child(child)?.map(DataType::LargeList),
        DataType::ListView(child) => stored_child(child)?.map(DataType::ListView),
        DataType::LargeListView(child) => stored_child(child)?.map(DataType::LargeListView),
        DataType::FixedSizeList(child, size) => {
            stored_child(child)?.map(|child| DataType::FixedSizeList(child, *size))
        }
        DataType::Map(entries, sorted) => {
            stored_child(entries)?.map(|entries| DataType::Map(entries, *sorted))
        }
        DataType::Struct(children) => {
            let mut changed = false;
            let mut stored = Vec::with_capacity(children.len());
            for child in children {
                match stored_field(child)? {
                    Some(s) => {
                        changed = true;
                        stored.push(Arc::new(s));
                    }
                    None => stored.push(child.clone()),
                }
            }
            changed.then(|| DataType::Struct(Fields::from(stored)))
        }
        _ => None,
    };
    Ok(data_type.map(|t| field.clone().with_data_type(t)))
}

/// Whether Parquet reads a dictionary of `value` back as a dictionary:
/// its reader packs values held as 32- or 64-bit numbers or as byte
/// arrays, and fails on the others (or panics: on booleans, views and
/// nulls, and on fixed-size binaries whenever a read spans row groups).
fn reads_back_as_dictionary(value: &DataType) -> bool {
    match value {
        DataType::Decimal128(precision, _) | DataType::Decimal256(precision, _) => {
            // Held in 32 or 64 bits up to 18 digits; as fixed-length
            // bytes, which the dictionary reader refuses, above.
            *precision <= 18
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Date32
        | DataType::Date64
        | DataType::Time32(_)
        | DataType::Time64(_)
        | DataType::Timestamp(..)
        | DataType::Duration(_)
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Binary
        | DataType::LargeBinary => true,
        _ => false,
    }
}

/// The stored form of a child field (of a list, map or struct), if it
/// needs one.
fn stored_child(child: &FieldRef) -> Result<Option<FieldRef>> {
    Ok(stored_field(child)?.map(Arc::new))
}

fn marked(field: &Field, data_type: DataType, mark: &str) -> Field {
    let mut metadata = field.metadata().clone();
    metadata.insert(STORED_TYPE_KEY.to_owned(), mark.to_owned());
    field
        .clone()
        .with_data_type(data_type)
        .with_metadata(metadata)
}

/// The three parts of a month-day-nanosecond interval, as named numbers:
/// Parquet's own interval type holds unsigned months, days and
/// milliseconds, which loses signs and nanoseconds.
fn month_day_nano_parts() -> DataType {
    DataType::Struct(Fields::from(vec![
        Field::new("months", DataType::Int32, false),
        Field::new("days", DataType::Int32, false),
        Field::new("nanoseconds", DataType::Int64, false),
    ]))
}

/// The original form of stored `field`, or `None` when it was stored as
/// it is. A mark this version does not know is left alone: the field
/// reads back in its stored form rather than failing.
fn original_field(field: &Field) -> Option<Field> {
    if let Some(mark) = field.metadata().get(STORED_TYPE_KEY) {
        let data_type = match (mark.as_str(), field.data_type()) {
            (MONTH_DAY_NANO, DataType::Struct(_)) => DataType::Interval(IntervalUnit::MonthDayNano),
            (EMPTY_STRUCT, DataType::Boolean) => DataType::Struct(Fields::empty()),
            (EMPTY_BINARY, DataType::Boolean) => DataType::FixedSizeBinary(0),
            (ONE_DIGIT_DECIMAL, DataType::Decimal32(2, scale)) => DataType::Decimal32(1, *scale),
            _ => return None,
        };
        let mut metadata = field.metadata().clone();
        metadata.remove(STORED_TYPE_KEY);
        return Some(
            field
                .clone()
                .with_data_type(data_type)
                .with_metadata(metadata),
        );
    }
    let child = |child: &FieldRef| original_field(child).map(Arc::new);
    let data_type = match field.data_type() {
        DataType::List(c) => child(c).map(DataType::List),
        DataType::LargeList(c) => child(c).map(DataType::LargeList),
        DataType::ListView(c) => child(c).map(DataType::ListView),
        DataType::LargeListView(c) => child(c).map(DataType::LargeListView),
        DataType::FixedSizeList(c, size) => child(c).map(|c| DataType::FixedSizeList(c, *size)),
        DataType::Map(entries, sorted) => child(entries).map(|e| DataType::Map(e, *sorted)),
        DataType::Struct(children) => {
            let restored: Vec<Option<FieldRef>> = children.iter().map(child).collect();
            restored.iter().any(Option::is_some).then(|| {
                DataType::Struct(
                    restored
                        .into_iter()
                        .zip(children.iter())
                        .map(|(r, c)| r.unwrap_or_else(|| c.clone()))
                        .collect(),
                )
            })
        }
        _ => None,
    }?;
    Some(field.clone().with_data_type(data_type))
}

fn mismatch(what: &str, data_type: &DataType) -> Error {
    Error::internal(format!(
        "a stored result's {what} does not match its schema ({data_type})"
    ))
}

/// `array` in the form of the stored field `stored`.
fn encode(array: &ArrayRef, stored: &Field) -> Result<ArrayRef> {
    if array.data_type() == stored.data_type() {
        return Ok(array.clone());
    }
    let wrong = || mismatch("column", array.data_type());
    Ok(match array.data_type() {
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let intervals = array
                .as_primitive_opt::<IntervalMonthDayNanoType>()
                .ok_or_else(wrong)?;
            let values = intervals.values();
            let DataType::Struct(parts) = month_day_nano_parts() else {
                return Err(wrong());
            };
            Arc::new(StructArray::try_new(
                parts,
                vec![
                    Arc::new(Int32Array::from_iter_values(
                        values.iter().map(|v| v.months),
                    )),
                    Arc::new(Int32Array::from_iter_values(values.iter().map(|v| v.days))),
                    Arc::new(Int64Array::from_iter_values(
                        values.iter().map(|v| v.nanoseconds),
                    )),
                ],
                intervals.nulls().cloned(),
            )?)
        }
        DataType::Struct(fields) if fields.is_empty() => Arc::new(BooleanArray::new(
            BooleanBuffer::new_set(array.len()),
            array.nulls().cloned(),
        )),
        DataType::FixedSizeBinary(0) => Arc::new(BooleanArray::new(
            BooleanBuffer::new_set(array.len()),
            array.nulls().cloned(),
        )),
        DataType::Decimal32(1, scale) => Arc::new(
            array
                .as_primitive_opt::<Decimal32Type>()
                .ok_or_else(wrong)?
                .clone()
                .with_precision_and_scale(2, *scale)?,
        ),
        DataType::Dictionary(_, value) => {
            if let DataType::Dictionary(..) = stored.data_type() {
                // Wider keys.
                arrow::compute::cast(array, stored.data_type())?
            } else {
                let plain = arrow::compute::cast(array, value)?;
                encode(&plain, stored)?
            }
        }
        DataType::RunEndEncoded(_, values) => {
            let plain = arrow::compute::cast(array, values.data_type())?;
            encode(&plain, stored)?
        }
        DataType::List(_) => encode_list::<i32>(array, stored)?,
        DataType::LargeList(_) => encode_list::<i64>(array, stored)?,
        DataType::ListView(_) => encode_list_view::<i32>(array, stored)?,
        DataType::LargeListView(_) => encode_list_view::<i64>(array, stored)?,
        DataType::FixedSizeList(..) => {
            let list = array.as_fixed_size_list_opt().ok_or_else(wrong)?;
            let DataType::FixedSizeList(child, size) = stored.data_type() else {
                return Err(wrong());
            };
            // With the length given: a list of size 0 has no values to
            // count its rows by.
            Arc::new(FixedSizeListArray::try_new_with_length(
                child.clone(),
                *size,
                encode(list.values(), child)?,
                list.nulls().cloned(),
                list.len(),
            )?)
        }
        DataType::Map(..) => {
            let map = array.as_map_opt().ok_or_else(wrong)?;
            let DataType::Map(entries, sorted) = stored.data_type() else {
                return Err(wrong());
            };
            let encoded = encode(&(Arc::new(map.entries().clone()) as ArrayRef), entries)?;
            let encoded = encoded.as_struct_opt().ok_or_else(wrong)?.clone();
            Arc::new(MapArray::try_new(
                entries.clone(),
                map.offsets().clone(),
                encoded,
                map.nulls().cloned(),
                *sorted,
            )?)
        }
        DataType::Struct(_) => {
            let parts = array.as_struct_opt().ok_or_else(wrong)?;
            let DataType::Struct(fields) = stored.data_type() else {
                return Err(wrong());
            };
            let children = parts
                .columns()
                .iter()
                .zip(fields.iter())
                .map(|(c, f)| encode(c, f))
                .collect::<Result<Vec<_>>>()?;
            Arc::new(StructArray::try_new(
                fields.clone(),
                children,
                parts.nulls().cloned(),
            )?)
        }
        _ => return Err(wrong()),
    })
}

fn encode_list<O: OffsetSizeTrait>(array: &ArrayRef, stored: &Field) -> Result<ArrayRef> {
    let wrong = || mismatch("list", array.data_type());
    let list = array.as_list_opt::<O>().ok_or_else(wrong)?;
    let child = list_child(stored.data_type()).ok_or_else(wrong)?;
    Ok(Arc::new(GenericListArray::<O>::try_new(
        child.clone(),
        list.offsets().clone(),
        encode(list.values(), child)?,
        list.nulls().cloned(),
    )?))
}

fn encode_list_view<O: OffsetSizeTrait>(array: &ArrayRef, stored: &Field) -> Result<ArrayRef> {
    let wrong = || mismatch("list", array.data_type());
    let list = array.as_list_view_opt::<O>().ok_or_else(wrong)?;
    let child = list_child(stored.data_type()).ok_or_else(wrong)?;
    Ok(Arc::new(GenericListViewArray::<O>::try_new(
        child.clone(),
        list.offsets().clone(),
        list.sizes().clone(),
        encode(list.values(), child)?,
        list.nulls().cloned(),
    )?))
}

fn list_child(data_type: &DataType) -> Option<&FieldRef> {
    match data_type {
        DataType::List(c)
        | DataType::LargeList(c)
        | DataType::ListView(c)
        | DataType::LargeListView(c) => Some(c),
        _ => None,
    }
}

/// `array`, read as stored field `stored`, in its original form.
fn decode(array: &ArrayRef, stored: &Field) -> Result<ArrayRef> {
    let Some(original) = original_field(stored) else {
        return Ok(array.clone());
    };
    let wrong = || mismatch("column", array.data_type());
    if stored.metadata().contains_key(STORED_TYPE_KEY) {
        return Ok(match original.data_type() {
            DataType::Interval(IntervalUnit::MonthDayNano) => {
                let parts = array.as_struct_opt().ok_or_else(wrong)?;
                let part = |name: &str| parts.column_by_name(name).ok_or_else(wrong);
                let months = part("months")?.as_primitive_opt::<Int32Type>();
                let days = part("days")?.as_primitive_opt::<Int32Type>();
                let nanos = part("nanoseconds")?.as_primitive_opt::<Int64Type>();
                let (Some(months), Some(days), Some(nanos)) = (months, days, nanos) else {
                    return Err(wrong());
                };
                let values = months
                    .values()
                    .iter()
                    .zip(days.values().iter())
                    .zip(nanos.values().iter())
                    .map(|((&m, &d), &n)| IntervalMonthDayNano::new(m, d, n));
                Arc::new(IntervalMonthDayNanoArray::new(
                    values.collect(),
                    parts.nulls().cloned(),
                ))
            }
            DataType::Struct(_) => Arc::new(StructArray::new_empty_fields(
                array.len(),
                array.nulls().cloned(),
            )),
            DataType::FixedSizeBinary(0) => Arc::new(FixedSizeBinaryArray::try_new_with_len(
                0,
                Buffer::default(),
                array.nulls().cloned(),
                array.len(),
            )?),
            DataType::Decimal32(1, scale) => Arc::new(
                array
                    .as_primitive_opt::<Decimal32Type>()
                    .ok_or_else(wrong)?
                    .clone()
                    .with_precision_and_scale(1, *scale)?,
            ),
            _ => return Err(wrong()),
        });
    }
    Ok(match (array.data_type(), original.data_type()) {
        (DataType::List(child), DataType::List(to)) => {
            let list = array.as_list_opt::<i32>().ok_or_else(wrong)?;
            Arc::new(GenericListArray::<i32>::try_new(
                to.clone(),
                list.offsets().clone(),
                decode(list.values(), child)?,
                list.nulls().cloned(),
            )?)
        }
        (DataType::LargeList(child), DataType::LargeList(to)) => {
            let list = array.as_list_opt::<i64>().ok_or_else(wrong)?;
            Arc::new(GenericListArray::<i64>::try_new(
                to.clone(),
                list.offsets().clone(),
                decode(list.values(), child)?,
                list.nulls().cloned(),
            )?)
        }
        (DataType::ListView(child), DataType::ListView(to)) => {
            let list = array.as_list_view_opt::<i32>().ok_or_else(wrong)?;
            Arc::new(GenericListViewArray::<i32>::try_new(
                to.clone(),
                list.offsets().clone(),
                list.sizes().clone(),
                decode(list.values(), child)?,
                list.nulls().cloned(),
            )?)
        }
        (DataType::LargeListView(child), DataType::LargeListView(to)) => {
            let list = array.as_list_view_opt::<i64>().ok_or_else(wrong)?;
            Arc::new(GenericListViewArray::<i64>::try_new(
                to.clone(),
                list.offsets().clone(),
                list.sizes().clone(),
                decode(list.values(), child)?,
                list.nulls().cloned(),
            )?)
        }
        (DataType::FixedSizeList(child, size), DataType::FixedSizeList(to, _)) => {
            let list = array.as_fixed_size_list_opt().ok_or_else(wrong)?;
            Arc::new(FixedSizeListArray::try_new_with_length(
                to.clone(),
                *size,
                decode(list.values(), child)?,
                list.nulls().cloned(),
                list.len(),
            )?)
        }
        (DataType::Map(entries, sorted), DataType::Map(to, _)) => {
            let map = array.as_map_opt().ok_or_else(wrong)?;
            let decoded = decode(&(Arc::new(map.entries().clone()) as ArrayRef), entries)?;
            let decoded = decoded.as_struct_opt().ok_or_else(wrong)?.clone();
            Arc::new(MapArray::try_new(
                to.clone(),
                map.offsets().clone(),
                decoded,
                map.nulls().cloned(),
                *sorted,
            )?)
        }
        (DataType::Struct(children), DataType::Struct(to)) => {
            let parts = array.as_struct_opt().ok_or_else(wrong)?;
            let columns = parts
                .columns()
                .iter()
                .zip(children.iter())
                .map(|(c, f)| decode(c, f))
                .collect::<Result<Vec<_>>>()?;
            Arc::new(StructArray::try_new(
                to.clone(),
                columns,
                parts.nulls().cloned(),
            )?)
        }
        _ => return Err(wrong()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int8Array, IntervalMonthDayNanoBuilder, ListBuilder};

    fn intervals() -> ArrayRef {
        Arc::new(IntervalMonthDayNanoArray::from(vec![
            Some(IntervalMonthDayNano::new(14, -3, 1_500_000_000)),
            None,
            Some(IntervalMonthDayNano::new(-1, 0, i64::MIN)),
        ]))
    }

    fn round_trip(batch: &RecordBatch) -> (SchemaRef, RecordBatch) {
        let storage = Storage::for_schema(&batch.schema()).unwrap();
        let stored = storage.encode(batch).unwrap();
        assert_eq!(stored.schema(), *storage.schema());
        let restore = Restore::for_stored(storage.schema());
        (storage.schema().clone(), restore.decode(stored).unwrap())
    }

    #[test]
    fn intervals_are_stored_as_three_named_numbers_and_come_back() {
        let mut list = ListBuilder::new(IntervalMonthDayNanoBuilder::new());
        list.values()
            .append_value(IntervalMonthDayNano::new(1, 2, 3));
        list.values().append_null();
        list.append(true);
        list.append_null();
        list.append(true);
        let batch = RecordBatch::try_from_iter([
            ("i", intervals()),
            ("l", Arc::new(list.finish()) as ArrayRef),
            ("n", Arc::new(Int8Array::from(vec![1, 2, 3])) as ArrayRef),
        ])
        .unwrap();
        let (stored, back) = round_trip(&batch);
        assert_eq!(stored.field(0).data_type(), &month_day_nano_parts());
        assert_eq!(
            stored
                .field(0)
                .metadata()
                .get(STORED_TYPE_KEY)
                .map(String::as_str),
            Some(MONTH_DAY_NANO)
        );
        assert_eq!(back, batch);
    }

    #[test]
    fn empty_structs_keep_their_nulls() {
        let empty: ArrayRef = Arc::new(StructArray::new_empty_fields(
            3,
            Some(vec![true, false, true].into()),
        ));
        let batch = RecordBatch::try_from_iter([("e", empty)]).unwrap();
        let (stored, back) = round_trip(&batch);
        assert_eq!(stored.field(0).data_type(), &DataType::Boolean);
        assert_eq!(back, batch);
    }

    #[test]
    fn types_parquet_holds_are_left_alone() {
        let batch =
            RecordBatch::try_from_iter([("n", Arc::new(Int8Array::from(vec![1, 2])) as ArrayRef)])
                .unwrap();
        let storage = Storage::for_schema(&batch.schema()).unwrap();
        assert!(Arc::ptr_eq(storage.schema(), &batch.schema()));
        assert!(!Restore::for_stored(storage.schema()).is_needed());
    }
}
