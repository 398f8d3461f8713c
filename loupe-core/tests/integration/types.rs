//! Every Arrow type a connector can produce, through the result store, a
//! page, a SQL table over the result and every download format: one
//! table of cases, built here so that it runs without databases (the
//! connectors' tests run the same types from real queries).
//!
//! The cases: what the PostgreSQL decoder produces (`postgres/types.rs`),
//! what the MySQL decoder produces (`mysql/types.rs`), and what DataFusion
//! reads from files or computes (views, dictionaries, maps, every time
//! unit, `Float16`, run-end encoding).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryViewArray, BooleanArray, Date32Array, Date64Array,
    Decimal32Array, Decimal64Array, Decimal128Array, Decimal256Array, DictionaryArray,
    DurationMicrosecondArray, DurationMillisecondArray, DurationNanosecondArray,
    DurationSecondArray, FixedSizeBinaryArray, FixedSizeListArray, Float32Array, Float64Array,
    Int8Array, Int16Array, Int32Array, Int64Array, IntervalDayTimeArray, IntervalMonthDayNanoArray,
    IntervalYearMonthArray, LargeBinaryArray, LargeListArray, LargeStringArray, ListArray,
    MapBuilder, NullArray, RecordBatch, RunArray, StringArray, StringBuilder, StringViewArray,
    StructArray, Time32MillisecondArray, Time32SecondArray, Time64MicrosecondArray,
    Time64NanosecondArray, TimestampMicrosecondArray, TimestampNanosecondArray,
    TimestampSecondArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{
    DataType, Field, Fields, Int8Type, Int32Type, IntervalDayTime, IntervalMonthDayNano, Schema,
    i256,
};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use loupe_core::{
    BatchWriter, ExportFormat, PageRequest, ParquetResultStore, ResultId, ResultStore,
    STORED_TYPE_KEY, batches_stream, json_rows,
};
use serde_json::Value as Json;

/// One column type: three rows, the middle one NULL where the type allows.
struct Case {
    name: &'static str,
    column: ArrayRef,
    /// The field's metadata, as a connector sets it.
    metadata: HashMap<String, String>,
    /// The type a read gives back when it is not the type written: packed
    /// columns whose values have a stored form come back unpacked.
    reads_as: Option<DataType>,
    /// Whether the stored field carries [`STORED_TYPE_KEY`].
    stored_form: bool,
}

fn case(name: &'static str, column: impl Array + 'static) -> Case {
    case_of(name, Arc::new(column))
}

fn case_of(name: &'static str, column: ArrayRef) -> Case {
    Case {
        name,
        column,
        metadata: HashMap::new(),
        reads_as: None,
        stored_form: false,
    }
}

impl Case {
    fn metadata(mut self, key: &str, value: &str) -> Self {
        self.metadata.insert(key.to_owned(), value.to_owned());
        self
    }

    fn stored_form(mut self) -> Self {
        self.stored_form = true;
        self
    }

    fn reads_as(mut self, data_type: DataType) -> Self {
        self.reads_as = Some(data_type);
        self
    }

    fn batch(&self) -> RecordBatch {
        let field = Field::new(self.name, self.column.data_type().clone(), true)
            .with_metadata(self.metadata.clone());
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![field])),
            vec![self.column.clone()],
        )
        .unwrap()
    }

    /// What a read gives back.
    fn expected(&self) -> RecordBatch {
        let batch = self.batch();
        let Some(to) = &self.reads_as else {
            return batch;
        };
        let column = arrow::compute::cast(&self.column, to).unwrap();
        let field = batch.schema().field(0).clone().with_data_type(to.clone());
        RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![column]).unwrap()
    }
}

fn mdn(months: i32, days: i32, nanos: i64) -> IntervalMonthDayNano {
    IntervalMonthDayNano::new(months, days, nanos)
}

fn intervals() -> IntervalMonthDayNanoArray {
    IntervalMonthDayNanoArray::from(vec![
        Some(mdn(14, -3, 1_500_000_000)),
        None,
        Some(mdn(0, 1, 0)),
    ])
}

fn nulls() -> Option<NullBuffer> {
    Some(NullBuffer::from(vec![true, false, true]))
}

fn list_of(values: ArrayRef, lengths: [usize; 3]) -> ListArray {
    let field = Arc::new(Field::new_list_field(values.data_type().clone(), true));
    ListArray::new(field, OffsetBuffer::from_lengths(lengths), values, nulls())
}

/// Decimals with as many digits as `precision` allows, up to 38.
fn decimal128(precision: u8, scale: i8) -> Decimal128Array {
    let widest = 10i128.pow(u32::from(precision)) - 1;
    Decimal128Array::from(vec![Some(widest), None, Some(-150)])
        .with_precision_and_scale(precision, scale)
        .unwrap()
}

/// A PostgreSQL range: `lower`, `upper`, their inclusivity and `empty`.
fn range() -> StructArray {
    let bound = || {
        Arc::new(TimestampMicrosecondArray::from(vec![
            Some(1_704_164_645_000_000),
            None,
            None,
        ])) as ArrayRef
    };
    let flags = || Arc::new(BooleanArray::from(vec![true, false, false])) as ArrayRef;
    StructArray::new(
        Fields::from(vec![
            Field::new(
                "lower",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
                true,
            ),
            Field::new(
                "upper",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
                true,
            ),
            Field::new("lower_inclusive", DataType::Boolean, true),
            Field::new("upper_inclusive", DataType::Boolean, true),
            Field::new("empty", DataType::Boolean, true),
        ]),
        vec![bound(), bound(), flags(), flags(), flags()],
        nulls(),
    )
}

fn cases() -> Vec<Case> {
    let pg = |c: Case, ty: &str| c.metadata("loupe.pg.type", ty);
    let my = |c: Case, ty: &str| c.metadata("loupe.mysql.type", ty);
    let mut map = MapBuilder::new(None, StringBuilder::new(), Int32Array::builder(2));
    map.keys().append_value("k");
    map.values().append_value(1);
    map.append(true).unwrap();
    map.append(false).unwrap();
    map.keys().append_value("=x");
    map.values().append_null();
    map.append(true).unwrap();
    let composite = StructArray::new(
        Fields::from(vec![
            Field::new("n", DataType::Int32, true),
            Field::new("label", DataType::Utf8, true),
            Field::new(
                "took",
                DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano),
                true,
            ),
            Field::new("price", DataType::Decimal128(10, 2), true),
        ]),
        vec![
            Arc::new(Int32Array::from(vec![Some(1), None, Some(3)])),
            Arc::new(StringArray::from(vec![Some("a,\"b\""), None, Some("c")])),
            Arc::new(intervals()),
            Arc::new(decimal128(10, 2)),
        ],
        nulls(),
    );
    let interval_dictionary = DictionaryArray::<Int8Type>::try_new(
        Int8Array::from(vec![Some(0), None, Some(0)]),
        Arc::new(IntervalMonthDayNanoArray::from(vec![mdn(1, 2, 3)])),
    )
    .unwrap();
    let runs = RunArray::<Int32Type>::try_new(
        &Int32Array::from(vec![2, 3]),
        &Int64Array::from(vec![Some(7), None]),
    )
    .unwrap();
    let ts = |tz: Option<&str>| {
        let a = TimestampMicrosecondArray::from(vec![Some(1_704_164_645_123_456), None, Some(0)]);
        match tz {
            Some(tz) => a.with_timezone(tz),
            None => a,
        }
    };
    vec![
        // PostgreSQL.
        pg(
            case(
                "pg_bool",
                BooleanArray::from(vec![Some(true), None, Some(false)]),
            ),
            "bool",
        ),
        pg(
            case(
                "pg_int2",
                Int16Array::from(vec![Some(i16::MIN), None, Some(-1)]),
            ),
            "int2",
        ),
        pg(
            case(
                "pg_int4",
                Int32Array::from(vec![Some(i32::MAX), None, Some(-1)]),
            ),
            "int4",
        ),
        pg(
            case(
                "pg_int8",
                Int64Array::from(vec![Some(i64::MAX), None, Some(i64::MIN)]),
            ),
            "int8",
        ),
        pg(
            case(
                "pg_oid",
                UInt32Array::from(vec![Some(u32::MAX), None, Some(0)]),
            ),
            "oid",
        ),
        pg(
            case(
                "pg_float4",
                Float32Array::from(vec![Some(1.5), None, Some(-0.25)]),
            ),
            "float4",
        ),
        pg(
            case(
                "pg_float8",
                Float64Array::from(vec![Some(-1.5), None, Some(0.25)]),
            ),
            "float8",
        ),
        pg(case("pg_numeric", decimal128(38, 9)), "numeric"),
        pg(
            case(
                "pg_numeric_wide",
                Decimal256Array::from(vec![
                    Some(i256::from_i128(-150)),
                    None,
                    Some(i256::from_i128(i128::MAX)),
                ])
                .with_precision_and_scale(76, 10)
                .unwrap(),
            ),
            "numeric",
        ),
        pg(
            case(
                "pg_numeric_text",
                StringArray::from(vec![Some("-1.5"), None, Some("NaN")]),
            ),
            "numeric",
        ),
        pg(
            case(
                "pg_text",
                StringArray::from(vec![Some("a,\"b\"\nc"), None, Some("")]),
            ),
            "text",
        ),
        pg(
            case(
                "pg_jsonb",
                StringArray::from(vec![Some("{\"a\": 1}"), None, Some("[]")]),
            ),
            "jsonb",
        )
        .metadata("ARROW:extension:name", "arrow.json")
        .metadata("ARROW:extension:metadata", "{}"),
        pg(
            case(
                "pg_bytea",
                BinaryArray::from(vec![Some(&[0u8, 255][..]), None, Some(&[][..])]),
            ),
            "bytea",
        ),
        pg(
            case(
                "pg_date",
                Date32Array::from(vec![Some(19_724), None, Some(-1)]),
            ),
            "date",
        ),
        pg(
            case(
                "pg_time",
                Time64MicrosecondArray::from(vec![Some(86_399_999_999), None, Some(0)]),
            ),
            "time",
        ),
        pg(case("pg_timestamp", ts(None)), "timestamp"),
        pg(case("pg_timestamptz", ts(Some("UTC"))), "timestamptz"),
        pg(case("pg_interval", intervals()), "interval").stored_form(),
        pg(
            case(
                "pg_int4_array",
                list_of(
                    Arc::new(Int32Array::from(vec![Some(1), None, Some(3)])),
                    [2, 0, 1],
                ),
            ),
            "_int4",
        ),
        pg(
            case(
                "pg_int4_array_2d",
                list_of(
                    Arc::new(list_of(
                        Arc::new(Int32Array::from(vec![1, 2, 3])),
                        [1, 0, 2],
                    )),
                    [2, 0, 1],
                ),
            ),
            "_int4",
        ),
        pg(
            case(
                "pg_interval_array",
                list_of(Arc::new(intervals()), [2, 0, 1]),
            ),
            "_interval",
        )
        .stored_form(),
        pg(
            case(
                "pg_numeric_array",
                list_of(Arc::new(decimal128(10, 2)), [2, 0, 1]),
            ),
            "_numeric",
        ),
        pg(case("pg_composite", composite), "item").stored_form(),
        pg(
            case(
                "pg_empty_composite",
                StructArray::new_empty_fields(3, nulls()),
            ),
            "nothing",
        )
        .stored_form(),
        pg(case("pg_tsrange", range()), "tsrange"),
        pg(
            case("pg_tsmultirange", list_of(Arc::new(range()), [2, 0, 1])),
            "tsmultirange",
        ),
        // MySQL.
        my(
            case(
                "my_tinyint",
                Int8Array::from(vec![Some(-128), None, Some(127)]),
            ),
            "TINYINT",
        ),
        my(
            case(
                "my_tinyint_unsigned",
                UInt8Array::from(vec![Some(255), None, Some(0)]),
            ),
            "TINYINT UNSIGNED",
        ),
        my(
            case(
                "my_smallint_unsigned",
                UInt16Array::from(vec![Some(65_535), None, Some(0)]),
            ),
            "SMALLINT UNSIGNED",
        ),
        my(
            case(
                "my_bigint_unsigned",
                UInt64Array::from(vec![Some(u64::MAX), None, Some(0)]),
            ),
            "BIGINT UNSIGNED",
        ),
        my(
            case(
                "my_time",
                DurationMicrosecondArray::from(vec![
                    Some(-3_020_399_000_000),
                    None,
                    Some(90_061_500_000),
                ]),
            ),
            "TIME",
        ),
        my(case("my_datetime", ts(None)), "DATETIME"),
        // DataFusion over files, and what its SQL computes.
        case(
            "utf8_view",
            StringViewArray::from(vec![Some("a view longer than twelve"), None, Some("v")]),
        ),
        case(
            "binary_view",
            BinaryViewArray::from(vec![Some(&b"bytes"[..]), None, Some(&b""[..])]),
        ),
        case(
            "large_utf8",
            LargeStringArray::from(vec![Some("large"), None, Some("")]),
        ),
        case(
            "large_binary",
            LargeBinaryArray::from(vec![Some(&[1u8][..]), None, Some(&[][..])]),
        ),
        case(
            "fixed_size_binary",
            FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                vec![Some(vec![1u8, 2]), None, Some(vec![3, 4])].into_iter(),
                2,
            )
            .unwrap(),
        ),
        case_of(
            "float16",
            arrow::compute::cast(
                &Float32Array::from(vec![Some(1.5), None, Some(-2.0)]),
                &DataType::Float16,
            )
            .unwrap(),
        ),
        case(
            "decimal32",
            Decimal32Array::from(vec![Some(-150), None, Some(1)])
                .with_precision_and_scale(5, 2)
                .unwrap(),
        ),
        case(
            "decimal64",
            Decimal64Array::from(vec![Some(-150), None, Some(1)])
                .with_precision_and_scale(15, 2)
                .unwrap(),
        ),
        case(
            "date64",
            Date64Array::from(vec![Some(86_400_000), None, Some(0)]),
        ),
        case(
            "time32_s",
            Time32SecondArray::from(vec![Some(3_600), None, Some(0)]),
        ),
        case(
            "time32_ms",
            Time32MillisecondArray::from(vec![Some(3_600_000), None, Some(1)]),
        ),
        case(
            "time64_ns",
            Time64NanosecondArray::from(vec![Some(3_600), None, Some(1)]),
        ),
        case(
            "timestamp_s_offset",
            TimestampSecondArray::from(vec![Some(3_600), None, Some(0)]).with_timezone("+02:00"),
        ),
        case(
            "timestamp_ns_zone",
            TimestampNanosecondArray::from(vec![Some(1_704_164_645_000_000_001), None, Some(0)])
                .with_timezone("Europe/Berlin"),
        ),
        case(
            "duration_s",
            DurationSecondArray::from(vec![Some(-3_600), None, Some(0)]),
        ),
        case(
            "duration_ms",
            DurationMillisecondArray::from(vec![Some(1_500), None, Some(0)]),
        ),
        case(
            "duration_ns",
            DurationNanosecondArray::from(vec![Some(1), None, Some(-1)]),
        ),
        case(
            "interval_year_month",
            IntervalYearMonthArray::from(vec![Some(-14), None, Some(1)]),
        ),
        case(
            "interval_day_time",
            IntervalDayTimeArray::from(vec![
                Some(IntervalDayTime::new(-1, 5)),
                None,
                Some(IntervalDayTime::new(2, 0)),
            ]),
        ),
        case("interval_month_day_nano", intervals()).stored_form(),
        case("null", NullArray::new(3)),
        case(
            "dictionary",
            DictionaryArray::<Int32Type>::from_iter(vec![Some("a"), None, Some("a")]),
        ),
        case("map", map.finish()),
        case(
            "fixed_size_list",
            FixedSizeListArray::new(
                Arc::new(Field::new_list_field(DataType::Int32, true)),
                2,
                Arc::new(Int32Array::from(vec![
                    Some(1),
                    None,
                    Some(3),
                    Some(4),
                    Some(5),
                    None,
                ])),
                nulls(),
            ),
        ),
        case(
            "large_list",
            LargeListArray::new(
                Arc::new(Field::new_list_field(DataType::Int64, true)),
                OffsetBuffer::from_lengths([2, 0, 1]),
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                nulls(),
            ),
        ),
        case("interval_dictionary", interval_dictionary)
            .stored_form()
            .reads_as(DataType::Interval(
                arrow::datatypes::IntervalUnit::MonthDayNano,
            )),
        case("run_end_encoded", runs).reads_as(DataType::Int64),
    ]
}

/// The JSON value a CSV cell stands for: text as it is, nested values and
/// numbers as their JSON text, NULL as nothing.
fn csv_value(cell: &str, like: &Json) -> Json {
    match like {
        Json::Null if cell.is_empty() => Json::Null,
        Json::String(_) => Json::String(cell.to_owned()),
        // CSV writes `-2` for the float JSON writes as `-2.0`: the same number.
        Json::Number(n) if cell.parse::<f64>().ok() == n.as_f64() => like.clone(),
        _ => serde_json::from_str(cell).unwrap_or_else(|_| Json::String(cell.to_owned())),
    }
}

/// The cells of a CSV document, without its header: each case's column is
/// read as text, so that what was written is compared as written.
fn csv_cells(bytes: &[u8], name: &str) -> Vec<String> {
    let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, true)]));
    let reader = arrow::csv::ReaderBuilder::new(schema)
        .with_header(true)
        .build(std::io::Cursor::new(bytes))
        .unwrap();
    reader
        .flat_map(|b| {
            let b = b.unwrap();
            let cells = b
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone();
            (0..cells.len())
                .map(|i| {
                    if cells.is_null(i) {
                        String::new()
                    } else {
                        cells.value(i).to_owned()
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn download(store: &ParquetResultStore, id: &ResultId, format: ExportFormat) -> Vec<u8> {
    let mut batches = store.scan(id, None).await.unwrap();
    let mut writer = BatchWriter::new(format, Vec::new(), batches.schema()).unwrap();
    while let Some(batch) = batches.next().await {
        writer.write(&batch.unwrap()).unwrap();
    }
    writer.finish().unwrap()
}

#[tokio::test]
async fn every_type_a_connector_produces_round_trips_through_the_store_pages_and_downloads() {
    let dir = tempfile::tempdir().unwrap();
    let store = ParquetResultStore::open(dir.path().to_str().unwrap()).unwrap();
    for case in cases() {
        let name = case.name;
        let batch = case.batch();
        let expected = case.expected();
        let id = ResultId::generate();
        let meta = store
            .write(&id, batches_stream(batch.schema(), vec![batch.clone()]))
            .await
            .unwrap_or_else(|e| panic!("{name}: storing failed: {e}"));
        assert_eq!(meta.schema, expected.schema(), "{name}: the stored schema");
        assert_eq!(
            store.meta(&id).await.unwrap().schema,
            expected.schema(),
            "{name}: meta"
        );

        // A page gives back the values written, in their own types.
        let page = store
            .read_page(&id, &PageRequest::new(0, 10))
            .await
            .unwrap();
        assert_eq!(page.schema, expected.schema(), "{name}: the page's schema");
        let read = arrow::compute::concat_batches(&page.schema, &page.batches).unwrap();
        assert_eq!(read, expected, "{name}: the page's values");
        let rows = json_rows(&page.batches).unwrap_or_else(|e| panic!("{name}: json_rows: {e}"));
        assert_eq!(
            rows,
            json_rows(std::slice::from_ref(&expected)).unwrap(),
            "{name}: page JSON"
        );
        let values: Vec<&Json> = rows.iter().map(|r| &r[0]).collect();

        // SQL over the result sees the same types and values.
        let ctx = SessionContext::new();
        ctx.register_table("r", store.table(&ctx, &id).await.unwrap())
            .unwrap();
        let selected = ctx
            .sql("select * from r")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{name}: sql: {e}"));
        let selected = arrow::compute::concat_batches(&expected.schema(), &selected).unwrap();
        assert_eq!(selected, expected, "{name}: a SQL table over the result");

        // JSON and NDJSON downloads hold the page's values.
        let json: Vec<serde_json::Map<String, Json>> =
            serde_json::from_slice(&download(&store, &id, ExportFormat::Json).await).unwrap();
        let ndjson: Vec<serde_json::Map<String, Json>> =
            String::from_utf8(download(&store, &id, ExportFormat::Ndjson).await)
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect();
        for objects in [json, ndjson] {
            let downloaded: Vec<&Json> = objects.iter().map(|o| &o[name]).collect();
            assert_eq!(downloaded, values, "{name}: JSON download");
        }

        // CSV writes the same values as text.
        let csv = download(&store, &id, ExportFormat::Csv).await;
        let cells = csv_cells(&csv, name);
        assert_eq!(cells.len(), values.len(), "{name}: CSV rows");
        for (cell, value) in cells.iter().zip(&values) {
            assert_eq!(&csv_value(cell, value), *value, "{name}: CSV cell {cell:?}");
        }

        // XLSX has a cell where CSV has one, and a text cell holds the
        // CSV's text (numbers, booleans and dates have their own types).
        let xlsx = download(&store, &id, ExportFormat::Xlsx).await;
        let mut book: calamine::Xlsx<_> =
            calamine::open_workbook_from_rs(std::io::Cursor::new(xlsx)).unwrap();
        let sheet = calamine::Reader::worksheet_range(&mut book, "Sheet1").unwrap();
        assert_eq!(
            sheet.get((0, 0)),
            Some(&calamine::Data::String(name.to_owned())),
            "{name}: XLSX header"
        );
        for (row, cell) in cells.iter().enumerate() {
            let xlsx = sheet.get((row + 1, 0)).unwrap_or(&calamine::Data::Empty);
            match xlsx {
                calamine::Data::Empty => assert_eq!(cell, "", "{name}: XLSX row {row}"),
                calamine::Data::String(text) => assert_eq!(text, cell, "{name}: XLSX row {row}"),
                _ => assert_ne!(cell, "", "{name}: XLSX row {row}: {xlsx:?}"),
            }
        }

        // Arrow IPC holds the original types.
        let ipc = download(&store, &id, ExportFormat::Arrow).await;
        let reader =
            arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(ipc), None).unwrap();
        let ipc: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        assert_eq!(
            arrow::compute::concat_batches(&expected.schema(), &ipc).unwrap(),
            expected,
            "{name}: Arrow download"
        );

        // Parquet holds the stored form, named in the field's metadata.
        let parquet = download(&store, &id, ExportFormat::Parquet).await;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::from(parquet),
        )
        .unwrap();
        let stored = reader.schema().field(0).clone();
        // The mark sits on the field that changed, at any depth.
        assert_eq!(
            format!("{stored:?}").contains(STORED_TYPE_KEY),
            case.stored_form,
            "{name}: the Parquet download's field {stored:?}"
        );
        let rows: usize = reader.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 3, "{name}: Parquet download");
    }
}

/// A union has no stored form: storing one is refused with an error that
/// names the column, not a panic in the Parquet writer.
#[tokio::test]
async fn a_union_is_refused_by_name() {
    use arrow::array::UnionArray;
    use arrow::datatypes::UnionFields;
    let fields = UnionFields::try_new(
        vec![0, 1],
        vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Utf8, true),
        ],
    )
    .unwrap();
    let union = UnionArray::try_new(
        fields,
        vec![0i8, 1].into(),
        None,
        vec![
            Arc::new(Int32Array::from(vec![Some(1), None])) as ArrayRef,
            Arc::new(StringArray::from(vec![Some("a"), Some("b")])),
        ],
    )
    .unwrap();
    let batch = RecordBatch::try_from_iter([("u", Arc::new(union) as ArrayRef)]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ParquetResultStore::open(dir.path().to_str().unwrap()).unwrap();
    let err = store
        .write(
            &ResultId::generate(),
            batches_stream(batch.schema(), vec![batch.clone()]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "results.unsupported_type");
    assert!(err.to_string().contains("\"u\""), "{err}");
    let err = BatchWriter::new(ExportFormat::Parquet, Vec::new(), batch.schema()).unwrap_err();
    assert_eq!(err.code(), "results.unsupported_type");
}
