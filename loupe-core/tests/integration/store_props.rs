//! Property tests of the Parquet result store over every Arrow type it
//! takes: whatever the schema (1 to 6 columns of any type, nested two
//! levels deep) and whatever the values (0 to 300 rows, with nulls and the
//! edge values of each type), a stored result reads back as written —
//! whole through `scan` (all columns, or some in any order) and by page
//! through `read_page` at any offset and limit — and a type the store
//! cannot hold is refused with an error that names it, never a panic.
//!
//! `store.rs` and `types.rs` hold fixed cases (one table of types with
//! three rows each, paging over large results); these draw the schemas,
//! the values, how the rows are cut into batches and row groups, and the
//! pages at random.
//!
//! Floating-point values compare bit for bit, which is stricter than
//! "NaN equals NaN": NaN payloads and `-0.0` come back as written.
//! Dictionaries compare by their values (Parquet rebuilds them in its own
//! order). What reads back in another, equal form is what
//! `results/encoding.rs` documents, and nothing else:
//!
//! - a dictionary whose values need a stored form (a month-day-nano
//!   interval, a struct without fields), or whose values Parquet reads
//!   back only unpacked (booleans, views, `Float16`, fixed-size binaries,
//!   the other intervals, decimals above 18 digits, nested values), reads
//!   back unpacked, as its values' type;
//! - any other dictionary with 8- or 16-bit keys reads back with 32-bit
//!   keys;
//! - a run-end encoded column reads back unpacked, as its values' type.
//!
//! Types with no stored form (a union, a decimal with a negative scale)
//! are refused as `results.unsupported_type`, naming the field. The
//! regression tests at the end pin what these properties found.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayData, ArrayRef, ArrowPrimitiveType, AsArray, BinaryViewArray, BooleanArray,
    DictionaryArray, FixedSizeBinaryArray, FixedSizeListArray, GenericBinaryArray,
    GenericListArray, GenericListViewArray, GenericStringArray, MapArray, NullArray,
    OffsetSizeTrait, PrimitiveArray, RecordBatch, RunArray, StringViewArray, StructArray,
    UnionArray, make_array,
};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{
    ArrowNativeType, DataType, Date32Type, Date64Type, Decimal32Type, Decimal64Type,
    Decimal128Type, Decimal256Type, DurationMicrosecondType, DurationMillisecondType,
    DurationNanosecondType, DurationSecondType, Field, FieldRef, Fields, Float32Type, Float64Type,
    Int8Type, Int16Type, Int32Type, Int64Type, IntervalDayTime, IntervalDayTimeType,
    IntervalMonthDayNano, IntervalMonthDayNanoType, IntervalUnit, IntervalYearMonthType,
    RunEndIndexType, Schema, SchemaRef, Time32MillisecondType, Time32SecondType,
    Time64MicrosecondType, Time64NanosecondType, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type, UnionFields, UnionMode, i256,
};
use futures::StreamExt;
use loupe_core::{
    ErrorKind, PageRequest, ParquetResultStore, ResultId, ResultStore, StoreOptions, batches_stream,
};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};

/// 32 cases per property, or `PROPTEST_CASES` for a longer run.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    ProptestConfig {
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..ProptestConfig::with_cases(cases)
    }
}

/// Runs `test` on values of `strategy`, failing with the smallest failing
/// value found.
fn check<S>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(config());
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

fn time_unit() -> impl Strategy<Value = TimeUnit> {
    select(vec![
        TimeUnit::Second,
        TimeUnit::Millisecond,
        TimeUnit::Microsecond,
        TimeUnit::Nanosecond,
    ])
}

fn time_zone() -> impl Strategy<Value = Option<Arc<str>>> {
    select(vec![
        None,
        Some("UTC"),
        Some("+02:00"),
        Some("Europe/Berlin"),
    ])
    .prop_map(|tz| tz.map(Arc::from))
}

/// A decimal's precision (1 to `max`) and a scale Arrow allows for it:
/// zero to the precision, or now and then negative (which a result cannot
/// store).
fn decimal(max: u8) -> impl Strategy<Value = (u8, i8)> {
    (1..=max).prop_flat_map(|p| {
        let p_scale = i8::try_from(p).unwrap_or(i8::MAX);
        (Just(p), prop_oneof![12 => 0..=p_scale, 1 => -5..0i8])
    })
}

/// Every type without children.
fn leaf() -> BoxedStrategy<DataType> {
    use DataType as T;
    prop_oneof![
        8 => select(vec![
            T::Int8,
            T::Int16,
            T::Int32,
            T::Int64,
            T::UInt8,
            T::UInt16,
            T::UInt32,
            T::UInt64,
            T::Float16,
            T::Float32,
            T::Float64,
            T::Boolean,
            T::Utf8,
            T::LargeUtf8,
            T::Utf8View,
            T::Binary,
            T::LargeBinary,
            T::BinaryView,
            T::Date32,
            T::Date64,
            T::Time32(TimeUnit::Second),
            T::Time32(TimeUnit::Millisecond),
            T::Time64(TimeUnit::Microsecond),
            T::Time64(TimeUnit::Nanosecond),
            T::Interval(IntervalUnit::YearMonth),
            T::Interval(IntervalUnit::DayTime),
            T::Interval(IntervalUnit::MonthDayNano),
            T::Null,
        ]),
        2 => (time_unit(), time_zone()).prop_map(|(u, tz)| T::Timestamp(u, tz)),
        1 => time_unit().prop_map(T::Duration),
        1 => decimal(9).prop_map(|(p, s)| T::Decimal32(p, s)),
        1 => decimal(18).prop_map(|(p, s)| T::Decimal64(p, s)),
        1 => decimal(38).prop_map(|(p, s)| T::Decimal128(p, s)),
        1 => decimal(76).prop_map(|(p, s)| T::Decimal256(p, s)),
        1 => (0..=16i32).prop_map(T::FixedSizeBinary),
    ]
    .boxed()
}

/// The types a dictionary may hold, or a run-end encoding repeat: any
/// leaf, and lists.
fn packed_value() -> impl Strategy<Value = DataType> {
    prop_oneof![
        8 => leaf(),
        1 => leaf().prop_map(|t| DataType::List(list_field(t, true, "item"))),
    ]
    // Arrow's cast, which builds the expected values, unpacks a list view
    // of zero-byte dictionary values into an invalid array.
    .prop_filter("zero-byte values", |t| t != &DataType::FixedSizeBinary(0))
}

fn dictionary_key() -> impl Strategy<Value = DataType> {
    use DataType as T;
    select(vec![
        T::Int8,
        T::Int16,
        T::Int32,
        T::Int64,
        T::UInt8,
        T::UInt16,
        T::UInt32,
        T::UInt64,
    ])
}

fn nullable_for(data_type: &DataType, nullable: bool) -> bool {
    nullable || only_nulls(data_type)
}

/// Whether values of `data_type` can only be NULL: the null type, packed
/// or not.
fn only_nulls(data_type: &DataType) -> bool {
    match data_type {
        DataType::Null => true,
        DataType::Dictionary(_, value) => only_nulls(value),
        DataType::RunEndEncoded(_, values) => only_nulls(values.data_type()),
        _ => false,
    }
}

/// The items of a list: named as Arrow (`item`) or Parquet (`element`)
/// names them.
fn list_field(data_type: DataType, nullable: bool, name: &'static str) -> FieldRef {
    let nullable = nullable_for(&data_type, nullable);
    Arc::new(Field::new(name, data_type, nullable))
}

/// A dictionary or a run-end encoding of values of another type.
fn packed() -> BoxedStrategy<DataType> {
    use DataType as T;
    prop_oneof![
        (dictionary_key(), packed_value())
            .prop_map(|(k, v)| T::Dictionary(Box::new(k), Box::new(v))),
        // Arrow's run arrays always call their values nullable; whether
        // they hold NULLs follows the column.
        (select(vec![T::Int16, T::Int32, T::Int64]), packed_value()).prop_map(|(r, v)| {
            T::RunEndEncoded(
                Arc::new(Field::new("run_ends", r, false)),
                Arc::new(Field::new("values", v, true)),
            )
        }),
    ]
    .boxed()
}

/// Any type: a leaf, or lists, structs, maps, dictionaries and run-end
/// encodings of other types, nested up to two levels.
fn data_type() -> BoxedStrategy<DataType> {
    use DataType as T;
    let base = prop_oneof![6 => leaf(), 1 => packed()];
    base.prop_recursive(2, 12, 3, |inner| {
        let list_child = (
            inner.clone(),
            any::<bool>(),
            select(vec!["item", "element"]),
        );
        prop_oneof![
            list_child
                .clone()
                .prop_map(|(t, n, name)| T::List(list_field(t, n, name))),
            list_child
                .clone()
                .prop_map(|(t, n, name)| T::LargeList(list_field(t, n, name))),
            list_child
                .clone()
                .prop_map(|(t, n, name)| T::ListView(list_field(t, n, name))),
            list_child
                .clone()
                .prop_map(|(t, n, name)| T::LargeListView(list_field(t, n, name))),
            (list_child, 0..=3i32)
                .prop_map(|((t, n, name), size)| T::FixedSizeList(list_field(t, n, name), size)),
            proptest::collection::vec((inner.clone(), any::<bool>()), 0..=3).prop_map(|children| {
                T::Struct(Fields::from(
                    children
                        .into_iter()
                        .enumerate()
                        .map(|(i, (t, n))| {
                            let n = nullable_for(&t, n);
                            Field::new(format!("f{i}"), t, n)
                        })
                        .collect::<Vec<_>>(),
                ))
            }),
            (
                select(vec![T::Utf8, T::Int32, T::Int64, T::Date32, T::LargeUtf8]),
                inner,
                any::<bool>()
            )
                .prop_map(|(key, value, nullable)| {
                    let nullable = nullable_for(&value, nullable);
                    T::Map(
                        Arc::new(Field::new(
                            "entries",
                            T::Struct(Fields::from(vec![
                                Field::new("keys", key, false),
                                Field::new("values", value, nullable),
                            ])),
                            false,
                        )),
                        false,
                    )
                }),
        ]
    })
    .boxed()
}

/// A column name: plain, empty, dotted, spaced, non-ASCII.
fn column_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_]{0,8}",
        select(vec![
            "",
            "a.b",
            "with space",
            "Ünïcødé",
            "日本",
            "\"quoted\"",
            "a,b"
        ])
        .prop_map(str::to_owned),
        "\\PC{1,10}",
    ]
}

/// One column of a schema.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    data_type: DataType,
    nullable: bool,
}

/// A result to store, and how to store and read it.
#[derive(Debug, Clone)]
struct Case {
    columns: Vec<Column>,
    rows: usize,
    /// Percent of the values of a nullable column that are NULL.
    null_percent: u32,
    /// Values seldom repeat: edge values are rare.
    varied: bool,
    /// Seeds the values.
    seed: [u8; 32],
    /// Rows per batch written.
    batch_rows: usize,
    /// Rows per row group stored.
    row_group_rows: usize,
    /// Pages read back: offset and limit.
    pages: Vec<(u64, u64)>,
    /// Columns read back by `scan` and by some pages: indexes into
    /// `columns` (modulo their number), in the order asked.
    projection: Vec<usize>,
}

fn columns(types: BoxedStrategy<DataType>) -> impl Strategy<Value = Vec<Column>> {
    proptest::collection::vec((column_name(), types, any::<bool>()), 1..=6).prop_map(|columns| {
        let mut seen = std::collections::BTreeSet::new();
        columns
            .into_iter()
            .enumerate()
            .map(|(i, (name, data_type, nullable))| {
                // Names are unique: reads select columns by name.
                let name = if seen.insert(name.clone()) {
                    name
                } else {
                    format!("{name}#{i}")
                };
                seen.insert(name.clone());
                Column {
                    nullable: nullable_for(&data_type, nullable),
                    name,
                    data_type,
                }
            })
            .collect()
    })
}

fn case(types: BoxedStrategy<DataType>) -> impl Strategy<Value = Case> {
    (
        columns(types),
        prop_oneof![Just(0usize), 1..=20usize, 0..=300usize],
        select(vec![0u32, 10, 50, 100]),
        any::<[u8; 32]>(),
        1..=120usize,
        prop_oneof![1..=100usize, 101..=400usize],
        proptest::collection::vec((0..=310u64, 0..=310u64), 1..=4),
        proptest::collection::vec(any::<usize>(), 1..=4),
    )
        .prop_map(
            |(columns, rows, null_percent, seed, batch_rows, row_group_rows, pages, projection)| {
                Case {
                    columns,
                    rows,
                    null_percent,
                    varied: false,
                    seed,
                    batch_rows,
                    row_group_rows,
                    pages,
                    projection,
                }
            },
        )
}

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

/// Characters strings are made of: ASCII, the CSV and JSON specials, NUL,
/// a zero-width space, two- to four-byte UTF-8.
const CHARS: &[char] = &[
    'a', 'Z', '0', ' ', ',', '"', '\\', '\n', '\0', '\u{200b}', 'é', '日', '😀',
];

/// Makes arrays of any type from a seeded generator that favours the edge
/// values of each type.
struct Values {
    rng: TestRng,
    null_percent: u32,
    /// One value in this many is an edge value.
    edges: u32,
}

impl Values {
    fn new(case: &Case) -> Self {
        Self {
            rng: TestRng::from_seed(RngAlgorithm::ChaCha, &case.seed),
            null_percent: case.null_percent,
            edges: if case.varied { 20 } else { 2 },
        }
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            self.rng.random_range(0..n)
        }
    }

    fn nulls(&mut self, len: usize, nullable: bool) -> Option<NullBuffer> {
        if !nullable || self.null_percent == 0 {
            return None;
        }
        let percent = self.null_percent;
        let valid: Vec<bool> = (0..len)
            .map(|_| self.rng.random_range(0..100) >= percent)
            .collect();
        Some(NullBuffer::from(valid))
    }

    /// An integer in `min..=max`, often one of its edges.
    fn int(&mut self, min: i128, max: i128) -> i128 {
        if self.rng.random_range(0..self.edges) != 0 {
            return self.rng.random_range(min..=max);
        }
        match self.rng.random_range(0..5) {
            0 => min,
            1 => max,
            2 => 0.clamp(min, max),
            3 => 1.clamp(min, max),
            _ => (-1).clamp(min, max),
        }
    }

    fn f64(&mut self) -> f64 {
        if self.rng.random_range(0..self.edges) != 0 {
            return f64::from_bits(self.rng.random());
        }
        match self.rng.random_range(0..14) {
            0 => f64::NAN,
            // A NaN with a payload, either sign.
            1 => f64::from_bits(
                0x7ff0_0000_0000_0001 | (self.rng.random::<u64>() & 0x800f_ffff_ffff_ffff),
            ),
            2 => f64::INFINITY,
            3 => f64::NEG_INFINITY,
            4 => -0.0,
            5 => 0.0,
            6 => f64::MIN_POSITIVE,
            7 => f64::from_bits(1),
            8 => f64::MAX,
            9 => f64::MIN,
            _ => f64::from_bits(self.rng.random()),
        }
    }

    fn f32(&mut self) -> f32 {
        if self.rng.random_range(0..self.edges) != 0 {
            return f32::from_bits(self.rng.random());
        }
        match self.rng.random_range(0..12) {
            0 => f32::NAN,
            1 => f32::from_bits(0x7f80_0001 | (self.rng.random::<u32>() & 0x807f_ffff)),
            2 => f32::INFINITY,
            3 => f32::NEG_INFINITY,
            4 => -0.0,
            5 => f32::MIN_POSITIVE,
            6 => f32::MAX,
            _ => f32::from_bits(self.rng.random()),
        }
    }

    fn text(&mut self) -> String {
        let len = match self.rng.random_range(0..4 * self.edges) {
            0 => 0,
            1 => self.rng.random_range(1..=12),
            // Longer than a view keeps inline.
            _ => self.rng.random_range(13..=40),
        };
        (0..len).map(|_| CHARS[self.below(CHARS.len())]).collect()
    }

    fn bytes(&mut self) -> Vec<u8> {
        let len = match self.rng.random_range(0..3 * self.edges) {
            0 => 0,
            1 => self.rng.random_range(1..=12),
            _ => self.rng.random_range(13..=40),
        };
        (0..len).map(|_| self.rng.random()).collect()
    }

    fn primitive<T: ArrowPrimitiveType>(
        &mut self,
        len: usize,
        nullable: bool,
        mut value: impl FnMut(&mut Self) -> T::Native,
    ) -> PrimitiveArray<T> {
        let nulls = self.nulls(len, nullable);
        let values: Vec<T::Native> = (0..len).map(|_| value(self)).collect();
        PrimitiveArray::new(ScalarBuffer::from(values), nulls)
    }

    /// Integers of `T`, between its native type's bounds.
    fn ints<T>(&mut self, len: usize, nullable: bool, min: i128, max: i128) -> PrimitiveArray<T>
    where
        T: ArrowPrimitiveType,
        T::Native: TryFrom<i128>,
    {
        self.primitive::<T>(len, nullable, |v| {
            T::Native::try_from(v.int(min, max)).unwrap_or_else(|_| unreachable!())
        })
    }

    fn decimal256(&mut self, precision: u8) -> i256 {
        let bound = i256::from_i128(10)
            .wrapping_pow(u32::from(precision))
            .wrapping_sub(i256::ONE);
        match self.rng.random_range(0..6) {
            0 => bound,
            1 => bound.wrapping_neg(),
            2 => i256::ZERO,
            _ => {
                let random = i256::from_parts(self.rng.random(), self.rng.random());
                random.wrapping_rem(bound.wrapping_add(i256::ONE))
            }
        }
    }

    fn strings<O: OffsetSizeTrait>(&mut self, len: usize, nullable: bool) -> GenericStringArray<O> {
        let nulls = self.nulls(len, nullable);
        (0..len)
            .map(|i| {
                let text = self.text();
                nulls.as_ref().is_none_or(|n| n.is_valid(i)).then_some(text)
            })
            .collect()
    }

    fn binaries<O: OffsetSizeTrait>(
        &mut self,
        len: usize,
        nullable: bool,
    ) -> GenericBinaryArray<O> {
        let nulls = self.nulls(len, nullable);
        let values: Vec<Option<Vec<u8>>> = (0..len)
            .map(|i| {
                let bytes = self.bytes();
                nulls
                    .as_ref()
                    .is_none_or(|n| n.is_valid(i))
                    .then_some(bytes)
            })
            .collect();
        values.into_iter().collect()
    }

    fn lengths(&mut self, len: usize, most: usize) -> Vec<usize> {
        (0..len).map(|_| self.rng.random_range(0..=most)).collect()
    }

    fn list<O: OffsetSizeTrait>(
        &mut self,
        field: &FieldRef,
        len: usize,
        nullable: bool,
    ) -> ArrayRef {
        let nulls = self.nulls(len, nullable);
        let lengths = self.lengths(len, 4);
        let values = self.array(field.data_type(), lengths.iter().sum(), field.is_nullable());
        Arc::new(
            GenericListArray::<O>::try_new(
                field.clone(),
                OffsetBuffer::<O>::from_lengths(lengths),
                values,
                nulls,
            )
            .unwrap(),
        )
    }

    fn list_view<O: OffsetSizeTrait>(
        &mut self,
        field: &FieldRef,
        len: usize,
        nullable: bool,
    ) -> ArrayRef {
        let nulls = self.nulls(len, nullable);
        let lengths = self.lengths(len, 4);
        let total: usize = lengths.iter().sum();
        let values = self.array(field.data_type(), total, field.is_nullable());
        // Views may point anywhere in the values: lay the rows out back to
        // front.
        let mut offsets = Vec::with_capacity(len);
        let mut end = total;
        for length in &lengths {
            end -= length;
            offsets.push(O::usize_as(end));
        }
        let sizes: Vec<O> = lengths.iter().map(|l| O::usize_as(*l)).collect();
        Arc::new(
            GenericListViewArray::<O>::try_new(
                field.clone(),
                ScalarBuffer::from(offsets),
                ScalarBuffer::from(sizes),
                values,
                nulls,
            )
            .unwrap(),
        )
    }

    fn dictionary(
        &mut self,
        key: &DataType,
        value: &DataType,
        len: usize,
        nullable: bool,
    ) -> ArrayRef {
        // Small, or as many values as the keys allow (up to 120), so that
        // the dictionaries of several batches together hold more.
        let size = match len {
            0 => 0,
            _ if self.edges < 10 && self.rng.random_bool(0.5) => 1 + self.below(5),
            _ => {
                let most = len.min(120);
                most.div_ceil(2) + self.below(most / 2 + 1)
            }
        };
        let values = self.array(value, size, nullable);
        let nulls = self.nulls(len, nullable);
        let keys: Vec<usize> = (0..len).map(|_| self.below(size)).collect();
        macro_rules! keyed {
            ($k:ty) => {{
                let keys = PrimitiveArray::<$k>::new(
                    keys.iter()
                        .map(|k| <<$k as ArrowPrimitiveType>::Native>::usize_as(*k))
                        .collect(),
                    nulls,
                );
                Arc::new(DictionaryArray::<$k>::try_new(keys, values).unwrap()) as ArrayRef
            }};
        }
        match key {
            DataType::Int8 => keyed!(Int8Type),
            DataType::Int16 => keyed!(Int16Type),
            DataType::Int32 => keyed!(Int32Type),
            DataType::Int64 => keyed!(Int64Type),
            DataType::UInt8 => keyed!(UInt8Type),
            DataType::UInt16 => keyed!(UInt16Type),
            DataType::UInt32 => keyed!(UInt32Type),
            DataType::UInt64 => keyed!(UInt64Type),
            other => unreachable!("dictionary key {other}"),
        }
    }

    fn run_ends<R: RunEndIndexType>(
        &mut self,
        values: &FieldRef,
        len: usize,
        nullable: bool,
    ) -> ArrayRef {
        let mut ends = Vec::new();
        let mut end = 0;
        while end < len {
            end = (end + 1 + self.below(5)).min(len);
            ends.push(R::Native::usize_as(end));
        }
        let run_values = self.array(values.data_type(), ends.len(), nullable);
        let ends = PrimitiveArray::<R>::new(ScalarBuffer::from(ends), None);
        Arc::new(RunArray::<R>::try_new(&ends, run_values.as_ref()).unwrap())
    }

    /// An array of `data_type` with `len` values; NULL only when
    /// `nullable`.
    fn array(&mut self, data_type: &DataType, len: usize, nullable: bool) -> ArrayRef {
        use DataType as T;
        let n = nullable;
        match data_type {
            T::Null => Arc::new(NullArray::new(len)),
            T::Boolean => {
                let nulls = self.nulls(len, n);
                let values: Vec<bool> = (0..len).map(|_| self.rng.random()).collect();
                Arc::new(BooleanArray::new(BooleanBuffer::from(values), nulls))
            }
            T::Int8 => Arc::new(self.ints::<Int8Type>(len, n, i8::MIN.into(), i8::MAX.into())),
            T::Int16 => Arc::new(self.ints::<Int16Type>(len, n, i16::MIN.into(), i16::MAX.into())),
            T::Int32 => Arc::new(self.ints::<Int32Type>(len, n, i32::MIN.into(), i32::MAX.into())),
            T::Int64 => Arc::new(self.ints::<Int64Type>(len, n, i64::MIN.into(), i64::MAX.into())),
            T::UInt8 => Arc::new(self.ints::<UInt8Type>(len, n, 0, u8::MAX.into())),
            T::UInt16 => Arc::new(self.ints::<UInt16Type>(len, n, 0, u16::MAX.into())),
            T::UInt32 => Arc::new(self.ints::<UInt32Type>(len, n, 0, u32::MAX.into())),
            T::UInt64 => Arc::new(self.ints::<UInt64Type>(len, n, 0, u64::MAX.into())),
            T::Float16 => {
                // Any bit pattern, NaN payloads included, as Arrow data.
                let nulls = self.nulls(len, n);
                let bits: Vec<u16> = (0..len)
                    .map(|_| match self.rng.random_range(0..6) {
                        0 => 0x7e00,
                        1 => 0x8000,
                        2 => 0x7c00,
                        _ => self.rng.random(),
                    })
                    .collect();
                let data = ArrayData::builder(T::Float16)
                    .len(len)
                    .add_buffer(Buffer::from_vec(bits))
                    .nulls(nulls)
                    .build()
                    .unwrap();
                make_array(data)
            }
            T::Float32 => Arc::new(self.primitive::<Float32Type>(len, n, Self::f32)),
            T::Float64 => Arc::new(self.primitive::<Float64Type>(len, n, Self::f64)),
            T::Utf8 => Arc::new(self.strings::<i32>(len, n)),
            T::LargeUtf8 => Arc::new(self.strings::<i64>(len, n)),
            T::Utf8View => {
                let strings = self.strings::<i32>(len, n);
                Arc::new(strings.iter().collect::<StringViewArray>())
            }
            T::Binary => Arc::new(self.binaries::<i32>(len, n)),
            T::LargeBinary => Arc::new(self.binaries::<i64>(len, n)),
            T::BinaryView => {
                let binaries = self.binaries::<i32>(len, n);
                Arc::new(binaries.iter().collect::<BinaryViewArray>())
            }
            T::FixedSizeBinary(size) => {
                let nulls = self.nulls(len, n);
                let bytes: Vec<u8> = (0..len * usize::try_from(*size).unwrap())
                    .map(|_| self.rng.random())
                    .collect();
                Arc::new(
                    FixedSizeBinaryArray::try_new_with_len(
                        *size,
                        Buffer::from_vec(bytes),
                        nulls,
                        len,
                    )
                    .unwrap(),
                )
            }
            T::Date32 => {
                Arc::new(self.ints::<Date32Type>(len, n, i32::MIN.into(), i32::MAX.into()))
            }
            T::Date64 => {
                // Whole days, as Arrow defines a Date64.
                const DAY: i64 = 86_400_000;
                let days = i128::from(i64::MAX / DAY);
                Arc::new(self.primitive::<Date64Type>(len, n, |v| {
                    i64::try_from(v.int(-days, days)).unwrap_or_default() * DAY
                }))
            }
            T::Time32(TimeUnit::Second) => {
                Arc::new(self.ints::<Time32SecondType>(len, n, 0, 86_399))
            }
            T::Time32(_) => Arc::new(self.ints::<Time32MillisecondType>(len, n, 0, 86_399_999)),
            T::Time64(TimeUnit::Microsecond) => {
                Arc::new(self.ints::<Time64MicrosecondType>(len, n, 0, 86_399_999_999))
            }
            T::Time64(_) => {
                Arc::new(self.ints::<Time64NanosecondType>(len, n, 0, 86_399_999_999_999))
            }
            T::Timestamp(unit, tz) => {
                let (min, max) = (i64::MIN.into(), i64::MAX.into());
                match unit {
                    TimeUnit::Second => Arc::new(
                        self.ints::<TimestampSecondType>(len, n, min, max)
                            .with_timezone_opt(tz.clone()),
                    ),
                    TimeUnit::Millisecond => Arc::new(
                        self.ints::<TimestampMillisecondType>(len, n, min, max)
                            .with_timezone_opt(tz.clone()),
                    ),
                    TimeUnit::Microsecond => Arc::new(
                        self.ints::<TimestampMicrosecondType>(len, n, min, max)
                            .with_timezone_opt(tz.clone()),
                    ),
                    TimeUnit::Nanosecond => Arc::new(
                        self.ints::<TimestampNanosecondType>(len, n, min, max)
                            .with_timezone_opt(tz.clone()),
                    ),
                }
            }
            T::Duration(unit) => {
                let (min, max) = (i64::MIN.into(), i64::MAX.into());
                match unit {
                    TimeUnit::Second => Arc::new(self.ints::<DurationSecondType>(len, n, min, max)),
                    TimeUnit::Millisecond => {
                        Arc::new(self.ints::<DurationMillisecondType>(len, n, min, max))
                    }
                    TimeUnit::Microsecond => {
                        Arc::new(self.ints::<DurationMicrosecondType>(len, n, min, max))
                    }
                    TimeUnit::Nanosecond => {
                        Arc::new(self.ints::<DurationNanosecondType>(len, n, min, max))
                    }
                }
            }
            T::Interval(IntervalUnit::YearMonth) => Arc::new(self.ints::<IntervalYearMonthType>(
                len,
                n,
                i32::MIN.into(),
                i32::MAX.into(),
            )),
            T::Interval(IntervalUnit::DayTime) => {
                Arc::new(self.primitive::<IntervalDayTimeType>(len, n, |v| {
                    let (lo, hi) = (i32::MIN.into(), i32::MAX.into());
                    IntervalDayTime::new(
                        i32::try_from(v.int(lo, hi)).unwrap_or_default(),
                        i32::try_from(v.int(lo, hi)).unwrap_or_default(),
                    )
                }))
            }
            T::Interval(IntervalUnit::MonthDayNano) => {
                Arc::new(self.primitive::<IntervalMonthDayNanoType>(len, n, |v| {
                    let (lo, hi) = (i32::MIN.into(), i32::MAX.into());
                    IntervalMonthDayNano::new(
                        i32::try_from(v.int(lo, hi)).unwrap_or_default(),
                        i32::try_from(v.int(lo, hi)).unwrap_or_default(),
                        i64::try_from(v.int(i64::MIN.into(), i64::MAX.into())).unwrap_or_default(),
                    )
                }))
            }
            T::Decimal32(p, s) => {
                let bound = 10i128.pow(u32::from(*p)) - 1;
                Arc::new(
                    self.ints::<Decimal32Type>(len, n, -bound, bound)
                        .with_precision_and_scale(*p, *s)
                        .unwrap(),
                )
            }
            T::Decimal64(p, s) => {
                let bound = 10i128.pow(u32::from(*p)) - 1;
                Arc::new(
                    self.ints::<Decimal64Type>(len, n, -bound, bound)
                        .with_precision_and_scale(*p, *s)
                        .unwrap(),
                )
            }
            T::Decimal128(p, s) => {
                let bound = 10i128.pow(u32::from(*p)) - 1;
                Arc::new(
                    self.ints::<Decimal128Type>(len, n, -bound, bound)
                        .with_precision_and_scale(*p, *s)
                        .unwrap(),
                )
            }
            T::Decimal256(p, s) => {
                let p = *p;
                Arc::new(
                    self.primitive::<Decimal256Type>(len, n, |v| v.decimal256(p))
                        .with_precision_and_scale(p, *s)
                        .unwrap(),
                )
            }
            T::List(field) => self.list::<i32>(field, len, n),
            T::LargeList(field) => self.list::<i64>(field, len, n),
            T::ListView(field) => self.list_view::<i32>(field, len, n),
            T::LargeListView(field) => self.list_view::<i64>(field, len, n),
            T::FixedSizeList(field, size) => {
                let nulls = self.nulls(len, n);
                let total = len * usize::try_from(*size).unwrap();
                let values = self.array(field.data_type(), total, field.is_nullable());
                Arc::new(
                    FixedSizeListArray::try_new_with_length(
                        field.clone(),
                        *size,
                        values,
                        nulls,
                        len,
                    )
                    .unwrap(),
                )
            }
            T::Struct(fields) => {
                let nulls = self.nulls(len, n);
                if fields.is_empty() {
                    return Arc::new(StructArray::new_empty_fields(len, nulls));
                }
                let children = fields
                    .iter()
                    .map(|f| self.array(f.data_type(), len, f.is_nullable()))
                    .collect();
                Arc::new(StructArray::try_new(fields.clone(), children, nulls).unwrap())
            }
            T::Map(entries, sorted) => {
                let nulls = self.nulls(len, n);
                let lengths = self.lengths(len, 3);
                let total = lengths.iter().sum();
                let T::Struct(parts) = entries.data_type() else {
                    unreachable!("map entries are a struct")
                };
                let children = parts
                    .iter()
                    .map(|f| self.array(f.data_type(), total, f.is_nullable()))
                    .collect();
                let entries_array = StructArray::try_new(parts.clone(), children, None).unwrap();
                Arc::new(
                    MapArray::try_new(
                        entries.clone(),
                        OffsetBuffer::from_lengths(lengths),
                        entries_array,
                        nulls,
                        *sorted,
                    )
                    .unwrap(),
                )
            }
            T::Dictionary(key, value) => self.dictionary(key, value, len, n),
            T::RunEndEncoded(ends, values) => match ends.data_type() {
                T::Int16 => self.run_ends::<Int16Type>(values, len, n),
                T::Int32 => self.run_ends::<Int32Type>(values, len, n),
                _ => self.run_ends::<Int64Type>(values, len, n),
            },
            T::Union(fields, UnionMode::Sparse) => {
                let type_ids: Vec<i8> = (0..len)
                    .map(|_| {
                        let ids: Vec<i8> = fields.iter().map(|(id, _)| id).collect();
                        ids[self.below(ids.len())]
                    })
                    .collect();
                let children = fields
                    .iter()
                    .map(|(_, f)| self.array(f.data_type(), len, f.is_nullable()))
                    .collect();
                Arc::new(
                    UnionArray::try_new(fields.clone(), type_ids.into(), None, children).unwrap(),
                )
            }
            other => unreachable!("no values for {other}"),
        }
    }
}

// ---------------------------------------------------------------------------
// What reads back
// ---------------------------------------------------------------------------

/// Whether values of `data_type` are stored in another type
/// (`results/encoding.rs`).
fn has_stored_form(data_type: &DataType) -> bool {
    use DataType as T;
    match data_type {
        T::Interval(IntervalUnit::MonthDayNano) | T::FixedSizeBinary(0) => true,
        T::Decimal32(1, scale) => *scale >= 0,
        T::Struct(fields) => {
            fields.is_empty() || fields.iter().any(|f| has_stored_form(f.data_type()))
        }
        T::Dictionary(_, value) => has_stored_form(value),
        // Always stored unpacked.
        T::RunEndEncoded(..) => true,
        T::List(f)
        | T::LargeList(f)
        | T::ListView(f)
        | T::LargeListView(f)
        | T::FixedSizeList(f, _)
        | T::Map(f, _) => has_stored_form(f.data_type()),
        _ => false,
    }
}

/// Whether Parquet reads a dictionary of `value` back as one; the others
/// are stored unpacked (`results/encoding.rs`).
fn reads_back_as_dictionary(value: &DataType) -> bool {
    use DataType as T;
    match value {
        T::Decimal128(p, _) | T::Decimal256(p, _) => *p <= 18,
        T::Int8
        | T::Int16
        | T::Int32
        | T::Int64
        | T::UInt8
        | T::UInt16
        | T::UInt32
        | T::UInt64
        | T::Float32
        | T::Float64
        | T::Decimal32(..)
        | T::Decimal64(..)
        | T::Date32
        | T::Date64
        | T::Time32(_)
        | T::Time64(_)
        | T::Timestamp(..)
        | T::Duration(_)
        | T::Utf8
        | T::LargeUtf8
        | T::Binary
        | T::LargeBinary => true,
        _ => false,
    }
}

/// The first field, in the order of the schema and depth first, whose
/// type a result cannot store: a union, a decimal with a negative scale.
fn unsupported(name: &str, data_type: &DataType) -> Option<String> {
    use DataType as T;
    match data_type {
        T::Union(..) => Some(name.to_owned()),
        T::Decimal32(_, s) | T::Decimal64(_, s) | T::Decimal128(_, s) | T::Decimal256(_, s)
            if *s < 0 =>
        {
            Some(name.to_owned())
        }
        T::Dictionary(_, value) => unsupported(name, value),
        T::RunEndEncoded(_, values) => unsupported(name, values.data_type()),
        T::List(f)
        | T::LargeList(f)
        | T::ListView(f)
        | T::LargeListView(f)
        | T::FixedSizeList(f, _)
        | T::Map(f, _) => unsupported(f.name(), f.data_type()),
        T::Struct(fields) => fields
            .iter()
            .find_map(|f| unsupported(f.name(), f.data_type())),
        _ => None,
    }
}

/// The type values of `data_type` read back as: the same, but for packed
/// values that are stored unpacked.
fn read_type(data_type: &DataType) -> DataType {
    use DataType as T;
    let field =
        |f: &FieldRef| Arc::new(f.as_ref().clone().with_data_type(read_type(f.data_type())));
    match data_type {
        T::Dictionary(_, value) if has_stored_form(value) || !reads_back_as_dictionary(value) => {
            read_type(value)
        }
        T::Dictionary(key, value) if key.primitive_width().is_some_and(|bytes| bytes < 4) => {
            T::Dictionary(Box::new(T::Int32), value.clone())
        }
        T::RunEndEncoded(_, values) => read_type(values.data_type()),
        T::List(f) => T::List(field(f)),
        T::LargeList(f) => T::LargeList(field(f)),
        T::ListView(f) => T::ListView(field(f)),
        T::LargeListView(f) => T::LargeListView(field(f)),
        T::FixedSizeList(f, size) => T::FixedSizeList(field(f), *size),
        T::Map(f, sorted) => T::Map(field(f), *sorted),
        T::Struct(fields) => T::Struct(fields.iter().map(field).collect()),
        other => other.clone(),
    }
}

/// The batches of `case` as written, each made on its own (so each
/// dictionary has its own values, as a datasource's batches do), and
/// what reads must give back.
fn batches(case: &Case) -> (SchemaRef, Vec<RecordBatch>, Expected) {
    let mut values = Values::new(case);
    let schema = Arc::new(Schema::new(
        case.columns
            .iter()
            .map(|c| Field::new(&c.name, c.data_type.clone(), c.nullable))
            .collect::<Vec<_>>(),
    ));
    let read_schema = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_data_type(read_type(f.data_type())))
            .collect::<Vec<_>>(),
    ));
    let mut written = Vec::new();
    let mut rows = Vec::new();
    for start in (0..case.rows).step_by(case.batch_rows) {
        let n = case.batch_rows.min(case.rows - start);
        let columns: Vec<ArrayRef> = case
            .columns
            .iter()
            .map(|c| values.array(&c.data_type, n, c.nullable))
            .collect();
        // The values as they read back, then by value.
        let read_columns = columns
            .iter()
            .zip(read_schema.fields())
            .map(|(c, f)| convert(c, f.data_type()))
            .collect();
        let read = RecordBatch::try_new(read_schema.clone(), read_columns).unwrap();
        rows.push(by_value(&read));
        written.push(RecordBatch::try_new(schema.clone(), columns).unwrap());
    }
    let empty = by_value(&RecordBatch::new_empty(read_schema.clone()));
    let expected = Expected {
        rows: concat(&empty.schema(), &rows),
        schema: read_schema,
    };
    (schema, written, expected)
}

/// What a read must give back: the schema, and the rows by value (their
/// dictionaries unpacked, so that rows of several batches concatenate
/// whatever their dictionaries).
struct Expected {
    schema: SchemaRef,
    rows: RecordBatch,
}

impl Expected {
    fn project(&self, columns: &[usize]) -> Self {
        Self {
            schema: Arc::new(self.schema.project(columns).unwrap()),
            rows: self.rows.project(columns).unwrap(),
        }
    }

    fn slice(&self, offset: usize, length: usize) -> Self {
        Self {
            schema: self.schema.clone(),
            rows: self.rows.slice(offset, length),
        }
    }

    /// Where `got` differs: its schema, or the first column and the
    /// first row in it that differ, with both values.
    fn difference(&self, got: &Read) -> Option<String> {
        if let Some(other) = std::iter::once(&got.schema)
            .chain(got.batches.iter().map(RecordBatch::schema_ref))
            .find(|s| **s != self.schema)
        {
            return Some(format!(
                "schema\nexpected {:#?}\n     got {other:#?}",
                self.schema
            ));
        }
        let values: Vec<RecordBatch> = got.batches.iter().map(by_value).collect();
        let got = concat(&self.rows.schema(), &values);
        let expected = &self.rows;
        if expected.num_rows() != got.num_rows() {
            return Some(format!(
                "{} rows, expected {}",
                got.num_rows(),
                expected.num_rows()
            ));
        }
        for (i, (e, g)) in expected.columns().iter().zip(got.columns()).enumerate() {
            if e.as_ref() == g.as_ref() {
                continue;
            }
            let mut message = format!(
                "column {} ({}): ",
                self.schema.field(i).name(),
                e.data_type()
            );
            match (0..e.len()).find(|&r| e.slice(r, 1).as_ref() != g.slice(r, 1).as_ref()) {
                Some(r) => {
                    let _ = write!(
                        message,
                        "row {r}: expected {:?}, got {:?}",
                        e.slice(r, 1),
                        g.slice(r, 1)
                    );
                }
                None => message.push_str("the arrays differ but no row does"),
            }
            return Some(message);
        }
        None
    }
}

/// `batch` by value: its dictionaries unpacked ([`logical`]).
fn by_value(batch: &RecordBatch) -> RecordBatch {
    let columns: Vec<ArrayRef> = batch.columns().iter().map(logical).collect();
    let schema = Schema::new(
        batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_data_type(unpacked(f.data_type())))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(Arc::new(schema), columns).unwrap()
}

/// `data_type` with every dictionary replaced by its values' type, and
/// its nested fields nullable: values compare as values, whether a child
/// or its parent holds a NULL (the schemas compare first).
fn unpacked(data_type: &DataType) -> DataType {
    use DataType as T;
    let field = |f: &FieldRef| {
        Arc::new(
            f.as_ref()
                .clone()
                .with_data_type(unpacked(f.data_type()))
                .with_nullable(true),
        )
    };
    match data_type {
        T::Dictionary(_, value) => unpacked(value),
        T::List(f) => T::List(field(f)),
        T::LargeList(f) => T::LargeList(field(f)),
        T::ListView(f) => T::ListView(field(f)),
        T::LargeListView(f) => T::LargeListView(field(f)),
        T::FixedSizeList(f, size) => T::FixedSizeList(field(f), *size),
        T::Map(entries, sorted) => {
            let T::Struct(parts) = entries.data_type() else {
                unreachable!("map entries are a struct")
            };
            let key = parts[0]
                .as_ref()
                .clone()
                .with_data_type(unpacked(parts[0].data_type()));
            let parts = Fields::from(vec![Arc::new(key), field(&parts[1])]);
            T::Map(
                Arc::new(entries.as_ref().clone().with_data_type(T::Struct(parts))),
                *sorted,
            )
        }
        T::Struct(fields) => T::Struct(fields.iter().map(field).collect()),
        other => other.clone(),
    }
}

/// `array` with its dictionaries unpacked.
fn logical(array: &ArrayRef) -> ArrayRef {
    convert(array, &unpacked(array.data_type()))
}

/// `array` as `to`, a type that differs at most in packed values
/// (dictionaries, run-end encodings) unpacked. Nested arrays are rebuilt
/// here around their converted children; Arrow's cast does the leaves
/// (its nested casts lose the rows of fixed-size lists of size 0).
fn convert(array: &ArrayRef, to: &DataType) -> ArrayRef {
    use DataType as T;
    if array.data_type() == to {
        return array.clone();
    }
    let nulls = array.nulls().cloned();
    match (array.data_type(), to) {
        (T::List(_), T::List(f)) => {
            let list = array.as_list::<i32>();
            let values = convert(list.values(), f.data_type());
            Arc::new(
                GenericListArray::try_new(f.clone(), list.offsets().clone(), values, nulls)
                    .unwrap(),
            )
        }
        (T::LargeList(_), T::LargeList(f)) => {
            let list = array.as_list::<i64>();
            let values = convert(list.values(), f.data_type());
            Arc::new(
                GenericListArray::try_new(f.clone(), list.offsets().clone(), values, nulls)
                    .unwrap(),
            )
        }
        (T::ListView(_), T::ListView(f)) => {
            let list = array.as_list_view::<i32>();
            let values = convert(list.values(), f.data_type());
            let (offsets, sizes) = (list.offsets().clone(), list.sizes().clone());
            Arc::new(
                GenericListViewArray::try_new(f.clone(), offsets, sizes, values, nulls).unwrap(),
            )
        }
        (T::LargeListView(_), T::LargeListView(f)) => {
            let list = array.as_list_view::<i64>();
            let values = convert(list.values(), f.data_type());
            let (offsets, sizes) = (list.offsets().clone(), list.sizes().clone());
            Arc::new(
                GenericListViewArray::try_new(f.clone(), offsets, sizes, values, nulls).unwrap(),
            )
        }
        (T::FixedSizeList(_, size), T::FixedSizeList(f, _)) => {
            let list = array.as_fixed_size_list();
            let values = convert(list.values(), f.data_type());
            Arc::new(
                FixedSizeListArray::try_new_with_length(
                    f.clone(),
                    *size,
                    values,
                    nulls,
                    list.len(),
                )
                .unwrap(),
            )
        }
        (T::Struct(_), T::Struct(fields)) => {
            let parts = array.as_struct();
            let children = parts
                .columns()
                .iter()
                .zip(fields.iter())
                .map(|(c, f)| convert(c, f.data_type()))
                .collect();
            Arc::new(StructArray::try_new(fields.clone(), children, nulls).unwrap())
        }
        (T::Map(..), T::Map(entries, sorted)) => {
            let map = array.as_map();
            let converted = convert(
                &(Arc::new(map.entries().clone()) as ArrayRef),
                entries.data_type(),
            );
            Arc::new(
                MapArray::try_new(
                    entries.clone(),
                    map.offsets().clone(),
                    converted.as_struct().clone(),
                    nulls,
                    *sorted,
                )
                .unwrap(),
            )
        }
        _ => arrow::compute::cast(array, to).unwrap(),
    }
}

/// An error with its causes.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

fn concat(schema: &SchemaRef, batches: &[RecordBatch]) -> RecordBatch {
    arrow::compute::concat_batches(schema, batches).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

#[test]
fn every_type_reads_back_as_written_whole_and_by_page() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    check(case(data_type()), |case| {
        rt.block_on(stored_and_read_back(&case, dir.path()))
    });
}

/// A column of 150 to 300 rows packed in a dictionary with narrow keys,
/// among other columns, written in batches that each bring dictionaries
/// of their own, into row groups of all the rows.
fn dictionaries_of_many_batches() -> impl Strategy<Value = Case> {
    use DataType as T;
    (
        case(leaf()),
        select(vec![T::Int8, T::UInt8, T::Int16]),
        // Values of many kinds, of which Parquet reads some back as a
        // dictionary and some not.
        select(vec![
            T::Utf8,
            T::LargeBinary,
            T::Int32,
            T::Int64,
            T::UInt32,
            T::Float64,
            T::Date32,
            T::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            T::Decimal128(12, 2),
            T::Decimal128(30, 4),
            T::Utf8View,
            T::Boolean,
        ]),
        150..=300usize,
        60..=120usize,
    )
        .prop_map(|(mut case, key, value, rows, batch_rows)| {
            let data_type = T::Dictionary(Box::new(key), Box::new(value));
            case.columns[0].nullable = nullable_for(&data_type, case.columns[0].nullable);
            case.columns[0].data_type = data_type;
            case.rows = rows;
            case.batch_rows = batch_rows;
            case.row_group_rows = 1000;
            case.varied = true;
            case.null_percent = case.null_percent.min(10);
            case
        })
}

#[test]
fn dictionaries_read_back_however_many_values_their_batches_bring() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    check(dictionaries_of_many_batches(), |case| {
        rt.block_on(stored_and_read_back(&case, dir.path()))
    });
}

/// Stores `case` in a store in `dir`, then reads it back whole and by
/// page.
async fn stored_and_read_back(case: &Case, dir: &std::path::Path) -> Result<(), TestCaseError> {
    let (schema, written, expected) = batches(case);
    let store = ParquetResultStore::open(dir.to_str().unwrap())
        .unwrap()
        .with_options(StoreOptions {
            row_group_rows: case.row_group_rows,
            ..StoreOptions::default()
        });
    let id = ResultId::generate();
    let unsupported = case
        .columns
        .iter()
        .find_map(|c| unsupported(&c.name, &c.data_type));
    let meta = match store
        .write(&id, batches_stream(schema.clone(), written))
        .await
    {
        Ok(_) if unsupported.is_some() => {
            return Err(TestCaseError::fail(format!("{schema} was stored")));
        }
        Ok(meta) => meta,
        Err(e) if unsupported.is_some() => {
            let name = unsupported.unwrap_or_default();
            prop_assert_eq!(e.kind(), ErrorKind::InvalidInput, "{}", e);
            prop_assert_eq!(e.code(), "results.unsupported_type");
            prop_assert!(e.to_string().contains(&format!("{name:?}")), "{e}");
            prop_assert!(store.meta(&id).await.is_err(), "nothing is stored");
            return Ok(());
        }
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "storing {schema} refused: {} ({})",
                chain(&e),
                e.code()
            )));
        }
    };
    prop_assert_eq!(meta.rows, case.rows as u64);
    prop_assert_eq!(&meta.schema, &expected.schema, "the stored schema");

    // The whole result.
    let scanned = scan(&store, &id, None).await?;
    if let Some(d) = expected.difference(&scanned) {
        return Err(TestCaseError::fail(format!("scan: {d}")));
    }

    // Some columns, in the order asked.
    let mut picked: Vec<usize> = Vec::new();
    for index in &case.projection {
        let i = index % case.columns.len();
        if !picked.contains(&i) {
            picked.push(i);
        }
    }
    let names: Vec<String> = picked
        .iter()
        .map(|&i| case.columns[i].name.clone())
        .collect();
    let projected = expected.project(&picked);
    let scanned = scan(&store, &id, Some(&names)).await?;
    if let Some(d) = projected.difference(&scanned) {
        return Err(TestCaseError::fail(format!("scan of {names:?}: {d}")));
    }

    // Pages anywhere, of any size, of all columns or some.
    for (n, &(offset, limit)) in case.pages.iter().enumerate() {
        let (request, whole) = if n % 2 == 0 {
            (PageRequest::new(offset, limit), &expected)
        } else {
            let request = PageRequest::new(offset, limit).with_columns(names.clone());
            (request, &projected)
        };
        let page = store
            .read_page(&id, &request)
            .await
            .map_err(|e| TestCaseError::fail(format!("page {offset}+{limit}: {}", chain(&e))))?;
        prop_assert_eq!(page.total_rows, case.rows as u64);
        prop_assert_eq!(page.offset, offset);
        let start = usize::try_from(offset).unwrap().min(case.rows);
        let length = usize::try_from(limit).unwrap().min(case.rows - start);
        let got = Read {
            schema: page.schema,
            batches: page.batches,
        };
        if let Some(d) = whole.slice(start, length).difference(&got) {
            return Err(TestCaseError::fail(format!("page {offset}+{limit}: {d}")));
        }
    }
    store.delete(&id).await.unwrap();
    Ok(())
}

/// Batches read back, with the schema the read announced.
struct Read {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

async fn scan(
    store: &ParquetResultStore,
    id: &ResultId,
    columns: Option<&[String]>,
) -> Result<Read, TestCaseError> {
    let failed =
        |e: loupe_core::Error| TestCaseError::fail(format!("scan {columns:?}: {}", chain(&e)));
    let mut stream = store.scan(id, columns).await.map_err(failed)?;
    let schema = stream.schema();
    let mut batches = Vec::new();
    while let Some(b) = stream.next().await {
        batches.push(b.map_err(failed)?);
    }
    Ok(Read { schema, batches })
}

/// A union where `at` says, among columns of other types: as a column, or
/// as a field of a struct or the items of a list.
fn with_union() -> impl Strategy<Value = (Case, usize, u8)> {
    (case(leaf()), any::<prop::sample::Index>(), 0..3u8).prop_map(|(mut case, at, depth)| {
        let union = DataType::Union(
            UnionFields::try_new(
                vec![0, 3],
                vec![
                    Field::new("n", DataType::Int32, true),
                    Field::new("s", DataType::Utf8, true),
                ],
            )
            .unwrap(),
            UnionMode::Sparse,
        );
        let data_type = match depth {
            0 => union,
            1 => DataType::Struct(Fields::from(vec![Field::new("either", union, true)])),
            _ => DataType::List(Arc::new(Field::new("either", union, true))),
        };
        let i = at.index(case.columns.len());
        case.columns[i].data_type = data_type;
        (case, i, depth)
    })
}

#[test]
fn a_union_anywhere_is_refused_by_name_and_nothing_is_stored() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    check(with_union(), |(case, _, _)| {
        rt.block_on(async {
            let (schema, written, _) = batches(&case);
            let store = ParquetResultStore::open(dir.path().to_str().unwrap()).unwrap();
            let id = ResultId::generate();
            let stream = batches_stream(schema, written);
            let Err(e) = store.write(&id, stream).await else {
                return Err(TestCaseError::fail("a union was stored"));
            };
            prop_assert_eq!(e.kind(), ErrorKind::InvalidInput, "{}", e);
            prop_assert_eq!(e.code(), "results.unsupported_type");
            let name = case
                .columns
                .iter()
                .find_map(|c| unsupported(&c.name, &c.data_type))
                .unwrap_or_default();
            prop_assert!(e.to_string().contains(&format!("{name:?}")), "{e}");
            prop_assert!(store.meta(&id).await.is_err(), "nothing is stored");
            Ok(())
        })
    });
}

// ---------------------------------------------------------------------------
// Regression tests: what the properties found
// ---------------------------------------------------------------------------

/// A one-column case of `data_type`: 40 rows in batches of 15, row
/// groups of 25, NULLs where the type allows them, read back whole and
/// by pages across row groups.
fn one_column(data_type: DataType) -> Case {
    Case {
        columns: vec![Column {
            name: "c".into(),
            nullable: true,
            data_type,
        }],
        rows: 40,
        null_percent: 10,
        varied: false,
        seed: [7; 32],
        batch_rows: 15,
        row_group_rows: 25,
        pages: vec![(0, 40), (20, 10), (39, 5)],
        projection: vec![0],
    }
}

/// Stores a column of `data_type` and checks it reads back as
/// `reads_as`, with the values written.
async fn reads_back_as(data_type: DataType, reads_as: DataType) {
    let dir = tempfile::tempdir().unwrap();
    let case = one_column(data_type.clone());
    if let Err(e) = stored_and_read_back(&case, dir.path()).await {
        panic!("{data_type}: {e}");
    }
    let (schema, written, _) = batches(&case);
    let store = ParquetResultStore::open(dir.path().to_str().unwrap()).unwrap();
    let id = ResultId::generate();
    let meta = store
        .write(&id, batches_stream(schema, written))
        .await
        .unwrap();
    assert_eq!(meta.schema.field(0).data_type(), &reads_as, "{data_type}");
}

/// Parquet's reader packs a dictionary back only for some value types:
/// on the others it failed (`unsupported data type for byte array
/// dictionary reader`) or panicked (booleans, views, nulls, and
/// fixed-size binaries once a read spans row groups), so a stored result
/// could not be read. They are stored unpacked and read back as values.
#[tokio::test]
async fn dictionaries_parquet_cannot_read_back_are_stored_unpacked() {
    use DataType as T;
    let item = |t: T| T::List(Arc::new(Field::new("item", t, true)));
    for value in [
        T::Boolean,
        T::Utf8View,
        T::BinaryView,
        T::Null,
        T::Float16,
        T::FixedSizeBinary(3),
        T::Interval(IntervalUnit::YearMonth),
        T::Interval(IntervalUnit::DayTime),
        T::Decimal128(19, 2),
        T::Decimal256(40, 2),
        item(T::Int32),
    ] {
        let dictionary = T::Dictionary(Box::new(T::Int32), Box::new(value.clone()));
        reads_back_as(dictionary.clone(), value.clone()).await;
        reads_back_as(item(dictionary), item(value)).await;
    }
    // Those it reads back stay dictionaries.
    for value in [
        T::Utf8,
        T::LargeBinary,
        T::Int64,
        T::Float32,
        T::Decimal128(18, 2),
    ] {
        let dictionary = T::Dictionary(Box::new(T::Int32), Box::new(value));
        reads_back_as(dictionary.clone(), dictionary).await;
    }
}

/// Parquet reads a dictionary with one dictionary per row group: batches
/// that each held fewer values than 8-bit keys index, together held
/// more, and the read failed (`dictionary too large for index type`) or,
/// for numbers, panicked. Narrow keys are stored and read as 32-bit keys.
#[tokio::test]
async fn dictionaries_of_batches_with_their_own_values_read_back_whatever_the_keys() {
    use DataType as T;
    let dir = tempfile::tempdir().unwrap();
    for value in [T::Utf8, T::Int64] {
        let packed = T::Dictionary(Box::new(T::Int8), Box::new(value.clone()));
        let schema = Arc::new(Schema::new(vec![Field::new("c", packed.clone(), false)]));
        let batches: Vec<RecordBatch> = (0..3i64)
            .map(|b| {
                let plain: ArrayRef = match value {
                    T::Utf8 => Arc::new(arrow::array::StringArray::from_iter_values(
                        (0..100).map(|i| format!("value {}", b * 100 + i)),
                    )),
                    _ => Arc::new(arrow::array::Int64Array::from_iter_values(
                        (0..100).map(|i| b * 100 + i),
                    )),
                };
                let column = arrow::compute::cast(&plain, &packed).unwrap();
                RecordBatch::try_new(schema.clone(), vec![column]).unwrap()
            })
            .collect();
        let store = ParquetResultStore::open(dir.path().to_str().unwrap()).unwrap();
        let id = ResultId::generate();
        let meta = store
            .write(&id, batches_stream(schema, batches))
            .await
            .unwrap();
        let wide = T::Dictionary(Box::new(T::Int32), Box::new(value.clone()));
        assert_eq!(meta.schema.field(0).data_type(), &wide);
        let page = store
            .read_page(&id, &PageRequest::new(50, 200))
            .await
            .unwrap();
        let values = logical(&concat(&page.schema, &page.batches).column(0).clone());
        assert_eq!(values.len(), 200);
        let read = scan(&store, &id, None).await.unwrap();
        let rows: usize = read.batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 300, "{value}");
    }
}

/// Parquet's writer panicked on zero-byte values (`chunk size must be
/// non-zero`), put a one-digit `Decimal32` in a column it could not fill
/// (`Cannot coerce Decimal32(1, 0) to I64`), and a fixed-size list of
/// size 0 lost its rows when its items needed a stored form. They are
/// stored, in stored forms, and read back as written.
#[tokio::test]
async fn zero_byte_values_one_digit_decimals_and_empty_fixed_lists_are_stored() {
    use DataType as T;
    for data_type in [
        T::FixedSizeBinary(0),
        T::Struct(Fields::from(vec![Field::new(
            "z",
            T::FixedSizeBinary(0),
            true,
        )])),
        T::Decimal32(1, 0),
        T::Decimal32(1, 1),
        T::List(Arc::new(Field::new("item", T::Decimal32(1, 0), true))),
        T::FixedSizeList(
            Arc::new(Field::new(
                "item",
                T::Interval(IntervalUnit::MonthDayNano),
                true,
            )),
            0,
        ),
    ] {
        reads_back_as(data_type.clone(), data_type).await;
    }
}

/// A decimal with a negative scale was refused by the Parquet writer as a
/// store failure, which says to try again; it is refused as a type a
/// result cannot store, naming the column.
#[tokio::test]
async fn a_decimal_with_a_negative_scale_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let case = one_column(DataType::Decimal128(5, -2));
    let (schema, written, _) = batches(&case);
    let store = ParquetResultStore::open(dir.path().to_str().unwrap()).unwrap();
    let err = store
        .write(&ResultId::generate(), batches_stream(schema, written))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "results.unsupported_type");
    assert!(!err.is_retriable());
    assert!(err.to_string().contains("\"c\""), "{err}");
    assert!(err.to_string().contains("scale of 0"), "{err}");
}
