//! The rows a chart draws: columns found by name (or an error that lists
//! the ones there are) and read as numbers, instants or text.
//!
//! Values are read per row as `Option`: `None` is a NULL, and for numbers
//! also NaN and infinity, which no axis can place. Instants are
//! milliseconds of wall-clock time: a timestamp with a time zone is shown
//! in that zone, as the result's reader would see it.

use std::sync::Arc;

use arrow::array::timezone::Tz;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, TimeUnit, TimestampMillisecondType};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chrono::{DateTime, Datelike, NaiveDateTime, Offset, TimeZone, Timelike};

use crate::error::{ChartError, Result};

/// The rows of a result, as batches.
#[derive(Debug)]
pub(crate) struct Rows<'a> {
    batches: &'a [RecordBatch],
    names: Vec<String>,
    len: usize,
}

impl<'a> Rows<'a> {
    pub(crate) fn new(batches: &'a [RecordBatch]) -> Self {
        let names = batches
            .first()
            .map(|b| {
                b.schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect()
            })
            .unwrap_or_default();
        let len = batches.iter().map(RecordBatch::num_rows).sum();
        Self {
            batches,
            names,
            len,
        }
    }

    /// How many rows there are.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The columns' names.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// Column `name`, named by option `field` (for errors). With no batches
    /// at all there is no schema to check against: every name is taken, and
    /// has no rows.
    pub(crate) fn column(&self, field: &str, name: &str) -> Result<Column> {
        let mut arrays = Vec::with_capacity(self.batches.len());
        for batch in self.batches {
            match batch.column_by_name(name) {
                Some(array) => arrays.push(Arc::clone(array)),
                None => {
                    return Err(ChartError::MissingColumn {
                        field: field.to_owned(),
                        column: name.to_owned(),
                        available: self.names.clone(),
                    });
                }
            }
        }
        let data_type = arrays
            .first()
            .map(|a| a.data_type().clone())
            .unwrap_or(DataType::Null);
        Ok(Column {
            name: name.to_owned(),
            field: field.to_owned(),
            data_type,
            arrays,
        })
    }
}

/// How a column's values can be placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Integers, floats, decimals.
    Number,
    /// Dates and timestamps.
    Time,
    /// Anything else, as its text.
    Text,
}

fn kind_of(data_type: &DataType) -> Kind {
    match data_type {
        DataType::Dictionary(_, values) => kind_of(values),
        DataType::Null => Kind::Number,
        t if t.is_numeric() => Kind::Number,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => Kind::Time,
        _ => Kind::Text,
    }
}

/// One column of the rows.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    /// Its name.
    pub(crate) name: String,
    /// The option that named it.
    pub(crate) field: String,
    data_type: DataType,
    arrays: Vec<ArrayRef>,
}

impl Column {
    pub(crate) fn kind(&self) -> Kind {
        kind_of(&self.data_type)
    }

    /// Whether the column holds integers (written as they are, without
    /// separators: a year is 2024, not 2,024).
    pub(crate) fn is_integer(&self) -> bool {
        match &self.data_type {
            DataType::Dictionary(_, v) => v.is_integer(),
            t => t.is_integer(),
        }
    }

    fn not(&self, expected: &'static str) -> ChartError {
        ChartError::NotNumeric {
            field: self.field.clone(),
            column: self.name.clone(),
            data_type: self.data_type.to_string(),
            expected,
        }
    }

    fn arrow(&self, source: arrow::error::ArrowError) -> ChartError {
        ChartError::Arrow {
            column: self.name.clone(),
            source,
        }
    }

    /// The values as numbers.
    ///
    /// # Errors
    /// [`ChartError::NotNumeric`] for a column that does not hold numbers.
    pub(crate) fn numbers(&self) -> Result<Vec<Option<f64>>> {
        if self.kind() != Kind::Number {
            return Err(self.not("numeric"));
        }
        let mut out = Vec::new();
        for array in &self.arrays {
            let floats = cast(array, &DataType::Float64).map_err(|e| self.arrow(e))?;
            let floats = floats.as_primitive::<Float64Type>();
            let nulls = array.logical_nulls();
            out.extend(floats.values().iter().enumerate().map(|(i, v)| {
                let null = nulls.as_ref().is_some_and(|n| n.is_null(i)) || floats.is_null(i);
                (!null && v.is_finite()).then_some(*v)
            }));
        }
        Ok(out)
    }

    /// The values as wall-clock milliseconds.
    fn instants(&self) -> Result<Vec<Option<f64>>> {
        let tz: Option<Tz> = match &self.data_type {
            DataType::Timestamp(_, Some(tz)) => tz.parse().ok(),
            _ => None,
        };
        let target = match &self.data_type {
            DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
            _ => DataType::Timestamp(TimeUnit::Millisecond, None),
        };
        let mut out = Vec::new();
        for array in &self.arrays {
            let millis = cast(array, &target).map_err(|e| self.arrow(e))?;
            let millis = millis.as_primitive::<TimestampMillisecondType>();
            let nulls = array.logical_nulls();
            out.extend(millis.values().iter().enumerate().map(|(i, ms)| {
                if nulls.as_ref().is_some_and(|n| n.is_null(i)) || millis.is_null(i) {
                    return None;
                }
                let offset = tz.as_ref().map_or(0, |tz| {
                    DateTime::from_timestamp_millis(*ms).map_or(0, |utc| {
                        tz.offset_from_utc_datetime(&utc.naive_utc())
                            .fix()
                            .local_minus_utc()
                    })
                });
                Some(*ms as f64 + f64::from(offset) * 1000.0)
            }));
        }
        Ok(out)
    }

    /// The values as positions on an axis: numbers, or wall-clock
    /// milliseconds for dates and timestamps.
    ///
    /// # Errors
    /// [`ChartError::NotNumeric`] for text and other columns.
    pub(crate) fn positions(&self) -> Result<Vec<Option<f64>>> {
        match self.kind() {
            Kind::Number => self.numbers(),
            Kind::Time => self.instants(),
            Kind::Text => Err(self.not("numeric or date")),
        }
    }

    /// The values as text, as a result's reader sees them.
    pub(crate) fn texts(&self) -> Result<Vec<Option<String>>> {
        self.head_texts(usize::MAX)
    }

    /// The first `limit` values as text.
    pub(crate) fn head_texts(&self, limit: usize) -> Result<Vec<Option<String>>> {
        let options = FormatOptions::default();
        let mut out = Vec::new();
        for array in &self.arrays {
            if out.len() >= limit {
                break;
            }
            let formatter = ArrayFormatter::try_new(array, &options).map_err(|e| self.arrow(e))?;
            let nulls = array.logical_nulls();
            for i in 0..array.len().min(limit - out.len()) {
                if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                    out.push(None);
                } else {
                    out.push(Some(formatter.value(i).to_string()));
                }
            }
        }
        Ok(out)
    }

    /// The values as category labels: text, with dates and timestamps
    /// written as briefly as the values allow (`2024`, `Mar 2024`,
    /// `2024-03-05`, `2024-03-05 14:30`).
    pub(crate) fn labels(&self) -> Result<Vec<Option<String>>> {
        if self.kind() != Kind::Time {
            return self.texts();
        }
        let instants = self.instants()?;
        let times: Vec<Option<NaiveDateTime>> = instants
            .iter()
            .map(|ms| ms.and_then(|ms| DateTime::from_timestamp_millis(ms as i64)))
            .map(|t| t.map(|t| t.naive_utc()))
            .collect();
        let all = |f: &dyn Fn(&NaiveDateTime) -> bool| times.iter().flatten().all(f);
        let midnight = |t: &NaiveDateTime| t.num_seconds_from_midnight() == 0;
        let pattern = if all(&|t| midnight(t) && t.ordinal() == 1) {
            "%Y"
        } else if all(&|t| midnight(t) && t.day() == 1) {
            "%b %Y"
        } else if all(&midnight) {
            "%Y-%m-%d"
        } else if all(&|t| t.second() == 0 && t.nanosecond() == 0) {
            "%Y-%m-%d %H:%M"
        } else {
            "%Y-%m-%d %H:%M:%S"
        };
        Ok(times
            .iter()
            .zip(&instants)
            .map(|(t, ms)| match (t, ms) {
                (Some(t), _) => Some(t.format(pattern).to_string()),
                // Outside chrono's range: the number, rather than nothing.
                (None, Some(ms)) => Some(ms.to_string()),
                (None, None) => None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Date32Array, Float64Array, Int64Array, StringArray, TimestampSecondArray};
    use arrow::datatypes::{Field, Schema};

    fn rows() -> Vec<RecordBatch> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("f", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("d", DataType::Date32, true),
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Second, Some("+02:00".into())),
                true,
            ),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(Float64Array::from(vec![f64::NAN, 2.5])),
                Arc::new(StringArray::from(vec![Some("a"), None])),
                Arc::new(Date32Array::from(vec![Some(19_783), Some(19_814)])),
                Arc::new(TimestampSecondArray::from(vec![Some(0), None]).with_timezone("+02:00")),
            ],
        )
        .unwrap();
        vec![batch.clone(), batch]
    }

    #[test]
    fn columns_read_across_batches_with_nulls() {
        let batches = rows();
        let rows = Rows::new(&batches);
        assert_eq!(rows.len(), 4);
        let n = rows.column("options.y", "n").unwrap();
        assert_eq!(n.numbers().unwrap(), [Some(1.0), None, Some(1.0), None]);
        let f = rows.column("options.y", "f").unwrap();
        assert_eq!(f.numbers().unwrap()[..2], [None, Some(2.5)]);
        let s = rows.column("options.x", "s").unwrap();
        assert_eq!(s.texts().unwrap()[..2], [Some("a".to_owned()), None]);
        assert!(matches!(
            s.numbers(),
            Err(ChartError::NotNumeric { ref data_type, .. }) if data_type == "Utf8"
        ));
    }

    #[test]
    fn times_are_wall_clock_in_their_zone() {
        let batches = rows();
        let rows = Rows::new(&batches);
        let t = rows.column("options.x", "t").unwrap();
        assert_eq!(t.positions().unwrap()[0], Some(7_200_000.0));
        let d = rows.column("options.x", "d").unwrap();
        assert_eq!(d.kind(), Kind::Time);
        assert_eq!(
            d.labels().unwrap()[..2],
            [Some("Mar 2024".to_owned()), Some("Apr 2024".to_owned())]
        );
    }

    #[test]
    fn instants_outside_the_calendar_are_nulls_not_errors() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "t",
            DataType::Timestamp(TimeUnit::Second, None),
            true,
        )]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(TimestampSecondArray::from(vec![
                Some(i64::MAX),
                Some(60),
                Some(i64::MIN),
            ]))],
        )
        .unwrap();
        let batches = [batch];
        let t = Rows::new(&batches).column("options.x", "t").unwrap();
        assert_eq!(t.positions().unwrap(), [None, Some(60_000.0), None]);
        assert_eq!(t.labels().unwrap()[1].as_deref(), Some("1970-01-01 00:01"));
    }

    #[test]
    fn a_missing_column_lists_the_ones_there_are() {
        let batches = rows();
        let err = Rows::new(&batches)
            .column("options.y", "revnue")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"column "revnue" named in options.y is not in the result; its columns are: "n", "f", "s", "d", "t""#
        );
    }
}
