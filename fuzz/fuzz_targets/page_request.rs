//! A result page as the server's `GET /runs/{id}/results` and `/download`
//! take it: a query string (`offset`, `limit`, `columns` comma-separated,
//! `format`, `csv_formulas`), read from a stored result of 50 rows in
//! several row groups (the library-level parsing and validation; no server
//! is started).
//!
//! Reading never panics. A page that reads has the rows asked for, in
//! order (`min(limit, rows - offset)` of them, starting at `offset`) and
//! the columns asked for, in the order asked; it writes in the asked
//! format. A refusal is a page too large, an unknown or repeated column,
//! and its message names the limit or the column.

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use loupe_core::deps::arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use loupe_core::deps::arrow::datatypes::{DataType, Field, Schema};
use loupe_core::{
    BatchWriter, CsvFormulas, DEFAULT_PAGE_ROWS, ExportFormat, ExportOptions, PageRequest,
    ParquetResultStore, ResultId, ResultStore, StoreOptions, batches_stream, codes,
};

const ROWS: i64 = 50;
const MAX_PAGE_ROWS: u64 = 20;
const COLUMNS: [&str; 4] = ["id", "name", "amount", "with, comma"];

struct Stored {
    runtime: tokio::runtime::Runtime,
    store: ParquetResultStore,
    id: ResultId,
}

/// A result with every kind of cell a page shows: numbers, NULLs, text a
/// spreadsheet would run as a formula, non-ASCII text.
fn stored() -> &'static Stored {
    static STORED: OnceLock<Stored> = OnceLock::new();
    STORED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime starts");
        let store = ParquetResultStore::open("memory://")
            .expect("an in-memory store opens")
            .with_options(StoreOptions {
                row_group_rows: 7,
                max_page_rows: MAX_PAGE_ROWS,
                ..StoreOptions::default()
            });
        let schema = Arc::new(Schema::new(vec![
            Field::new(COLUMNS[0], DataType::Int64, false),
            Field::new(COLUMNS[1], DataType::Utf8, true),
            Field::new(COLUMNS[2], DataType::Float64, true),
            Field::new(COLUMNS[3], DataType::Utf8, true),
        ]));
        let texts = ["=1+1", "-2", "héllo", "", "@SUM(A1)", "plain"];
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(0..ROWS)),
                Arc::new(StringArray::from_iter((0..ROWS).map(|i| {
                    (i % 5 != 4).then(|| texts[usize::try_from(i).unwrap_or(0) % texts.len()])
                }))),
                Arc::new(Float64Array::from_iter(
                    (0..ROWS).map(|i| (i % 3 != 2).then_some(i as f64 / 4.0)),
                )),
                Arc::new(StringArray::from_iter_values(
                    (0..ROWS).map(|i| format!("r{i}")),
                )),
            ],
        )
        .expect("the columns match the schema");
        let id = ResultId::parse("fuzz").expect("a valid id");
        runtime
            .block_on(store.write(&id, batches_stream(schema, vec![batch])))
            .expect("the result is stored");
        Stored { runtime, store, id }
    })
}

fuzz_target!(|data: &[u8]| {
    let mut request = PageRequest::new(0, DEFAULT_PAGE_ROWS);
    let mut format = None;
    let mut csv_formulas = CsvFormulas::default();
    for (key, value) in url::form_urlencoded::parse(data) {
        match &*key {
            // What the server's typed parameters refuse is a 400 there.
            "offset" => match value.parse() {
                Ok(offset) => request.offset = offset,
                Err(_) => return,
            },
            "limit" => match value.parse() {
                Ok(limit) => request.limit = limit,
                Err(_) => return,
            },
            // As the server reads `columns=a,b` (empty names dropped).
            "columns" => {
                let columns: Vec<String> = value
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect();
                request.columns = (!columns.is_empty()).then_some(columns);
            }
            "format" => match ExportFormat::from_name(&value) {
                Some(f) => format = Some(f),
                None => return,
            },
            "csv_formulas" => match CsvFormulas::from_name(&value) {
                Some(f) => csv_formulas = f,
                None => return,
            },
            _ => return,
        }
    }

    let stored = stored();
    let read = stored
        .runtime
        .block_on(stored.store.read_page(&stored.id, &request));
    let page = match read {
        Ok(page) => page,
        Err(e) => {
            let message = e.to_string();
            if e.code() == codes::RESULTS_PAGE_TOO_LARGE.as_str() {
                assert!(request.limit > MAX_PAGE_ROWS, "{request:?}: {message}");
                assert!(message.contains(&request.limit.to_string()), "{message}");
            } else if e.code() == codes::RESULTS_UNKNOWN_COLUMN.as_str()
                || e.code() == codes::RESULTS_DUPLICATE_COLUMN.as_str()
            {
                let named = request
                    .columns
                    .iter()
                    .flatten()
                    .any(|c| message.contains(&format!("{c:?}")));
                assert!(named, "{request:?}: {message} names no asked column");
            } else {
                panic!("{request:?} refused with {}: {message}", e.code());
            }
            return;
        }
    };

    assert!(request.limit <= MAX_PAGE_ROWS, "{request:?} was read");
    let total = u64::try_from(ROWS).unwrap_or(0);
    assert_eq!(page.total_rows, total);
    assert_eq!(page.offset, request.offset);
    let expected_rows = request.limit.min(total.saturating_sub(request.offset));
    assert_eq!(page.num_rows(), expected_rows, "{request:?}");
    let names: Vec<&str> = page
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    match &request.columns {
        Some(asked) => assert_eq!(names, *asked, "{request:?}"),
        None => assert_eq!(names, COLUMNS, "{request:?}"),
    }
    if let Some(at) = names.iter().position(|n| *n == "id") {
        let ids: Vec<i64> = page
            .batches
            .iter()
            .filter_map(|b| b.column(at).as_any().downcast_ref::<Int64Array>())
            .flat_map(|a| a.values().iter().copied().collect::<Vec<_>>())
            .collect();
        let first = i64::try_from(request.offset).unwrap_or(i64::MAX);
        let wanted: Vec<i64> = (0..ROWS).filter(|i| *i >= first).take(ids.len()).collect();
        assert_eq!(ids, wanted, "{request:?}: rows out of order");
    }

    if let Some(format) = format {
        let options = ExportOptions::default().with_csv_formulas(csv_formulas);
        let written = BatchWriter::with_options(format, Vec::new(), page.schema.clone(), options)
            .and_then(|mut writer| {
                for batch in &page.batches {
                    writer.write(batch)?;
                }
                writer.finish()
            });
        match written {
            Ok(bytes) => assert!(
                !bytes.is_empty() || page.num_rows() == 0,
                "{format}: nothing written"
            ),
            Err(e) => panic!("{request:?} as {format}: {e}"),
        }
    }
});
