//! What a download holds beyond its rows: CSV cells a spreadsheet would
//! run as formulas (escaped unless asked otherwise), and results with
//! types Parquet cannot hold as they are (intervals).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use loupe_core::{CsvFormulas, STORED_TYPE_KEY};
use serde_json::{Value, json};

use crate::harness::{Harness, id_of};

/// Runs `sql` as the admin on the sample datasource to a success;
/// returns the run's id.
async fn succeeded(h: &Harness, sql: &str) -> String {
    let ds = h.sample_datasource().await;
    let started = h
        .admin()
        .post("/runs", json!({ "datasource_id": ds, "sql": sql }))
        .await
        .expect(202);
    let run = h.wait_run(&h.admin, &id_of(&started.body["run"])).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    id_of(&run)
}

/// Text cells that run as formulas, a text cell and a number column that
/// are negative numbers, and plain text.
const PAYLOADS_SQL: &str = "select '=HYPERLINK(\"http://evil.test\",\"open\")' as link, \
                            '+1+cmd|'' /C calc''!A0' as cmd, '@SUM(1)' as at, \
                            '-1.5' as text_number, -1.5 as number, 'plain' as plain";

#[tokio::test]
async fn csv_downloads_escape_formulas_unless_asked_to_keep_them() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let id = succeeded(&h, PAYLOADS_SQL).await;
    let csv = |query: &'static str| {
        let h = &h;
        let id = &id;
        async move {
            h.admin()
                .get(&format!("/runs/{id}/download?format=csv{query}"))
                .await
                .expect(200)
                .text()
        }
    };
    let header = "link,cmd,at,text_number,number,plain";
    let escaped = format!(
        "{header}\n\"'=HYPERLINK(\"\"http://evil.test\"\",\"\"open\"\")\",'+1+cmd|' /C calc'!A0,'@SUM(1),-1.5,-1.5,plain\n"
    );
    assert_eq!(csv("").await, escaped, "escaped by default");
    assert_eq!(csv("&csv_formulas=escape").await, escaped);
    assert_eq!(
        csv("&csv_formulas=keep").await,
        format!(
            "{header}\n\"=HYPERLINK(\"\"http://evil.test\"\",\"\"open\"\")\",+1+cmd|' /C calc'!A0,@SUM(1),-1.5,-1.5,plain\n"
        ),
        "kept for machines"
    );
    h.admin()
        .get(&format!("/runs/{id}/download?csv_formulas=sometimes"))
        .await
        .problem(422, "validation.failed");

    // Only CSV is for spreadsheets: JSON keeps the text as it is.
    let json = h
        .admin()
        .get(&format!("/runs/{id}/download?format=json"))
        .await
        .expect(200);
    let json: Value = serde_json::from_slice(&json.bytes).unwrap();
    assert_eq!(json[0]["at"], "@SUM(1)");
}

/// The parameter's choices in the API document are core's, and its
/// description says what it does.
#[tokio::test]
async fn the_openapi_document_describes_csv_formulas() {
    let h = Harness::new().await;
    let spec = h.anonymous().get("/openapi.json").await.expect(200);
    let parameters = spec.body["paths"]["/runs/{id}/download"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let parameter = parameters
        .iter()
        .find(|p| p["name"] == "csv_formulas")
        .unwrap_or_else(|| panic!("csv_formulas is documented: {parameters:?}"));
    assert_eq!(parameter["in"], "query");
    let description = parameter["description"].as_str().unwrap();
    assert!(description.contains("OWASP"), "{description}");
    let schema = &parameter["schema"];
    assert_eq!(schema["default"], "escape", "{schema}");
    // A named enum, referred to directly or through `allOf`.
    let reference = schema
        .get("$ref")
        .or_else(|| schema["allOf"][0].get("$ref"))
        .and_then(Value::as_str);
    let schema = match reference {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap();
            &spec.body["components"]["schemas"][name]
        }
        None => schema,
    };
    let names: Vec<&str> = CsvFormulas::ALL.iter().map(|c| c.name()).collect();
    assert_eq!(schema["enum"], json!(names), "{schema}");
}

/// `interval` values used to fail the run ("NYI: Attempting to write an
/// Arrow interval type MonthDayNano to parquet"): the result stores, pages
/// and downloads in every format.
#[tokio::test]
async fn a_result_with_intervals_is_stored_paged_and_downloaded() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let id = succeeded(
        &h,
        "select interval '1 month 2 days 3 seconds' as took, \
         make_array(interval '1 day', interval '-2 hours') as steps",
    )
    .await;
    let page = h
        .admin()
        .get(&format!("/runs/{id}/results"))
        .await
        .expect(200);
    assert_eq!(page.body["columns"][0]["type"], "Interval(MonthDayNano)");
    let row = &page.body["rows"][0];
    assert_eq!(
        row,
        &json!(["1 mons 2 days 3.000000000 secs", ["1 days", "-2 hours"]])
    );
    let download = |format: &'static str| {
        let h = &h;
        let id = &id;
        async move {
            h.admin()
                .get(&format!("/runs/{id}/download?format={format}"))
                .await
                .expect(200)
                .bytes
        }
    };
    let csv = String::from_utf8(download("csv").await).unwrap();
    assert_eq!(
        csv,
        "took,steps\n1 mons 2 days 3.000000000 secs,\"[\"\"1 days\"\",\"\"-2 hours\"\"]\"\n"
    );
    let json: Value = serde_json::from_slice(&download("json").await).unwrap();
    assert_eq!(json[0]["took"], row[0]);
    assert_eq!(json[0]["steps"], row[1]);
    let ndjson: Value = serde_json::from_slice(&download("ndjson").await).unwrap();
    assert_eq!(ndjson["took"], row[0]);

    let parquet = download("parquet").await;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(parquet),
    )
    .unwrap();
    let took = reader.schema().field(0).clone();
    assert_eq!(
        took.metadata().get(STORED_TYPE_KEY).map(String::as_str),
        Some("Interval(MonthDayNano)"),
        "{took:?}"
    );

    let ipc = download("arrow").await;
    let reader = arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(ipc), None).unwrap();
    assert_eq!(
        reader.schema().field(0).data_type(),
        &arrow::datatypes::DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano)
    );

    // XLSX has no cell type for intervals or lists: they are the CSV's text.
    let xlsx = download("xlsx").await;
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(xlsx)).unwrap();
    let sheet = calamine::Reader::worksheet_range(&mut book, "Sheet1").unwrap();
    let cell = |col: usize| match sheet.get((1, col)) {
        Some(calamine::Data::String(text)) => text.clone(),
        other => panic!("not a text cell: {other:?}"),
    };
    assert_eq!(cell(0), "1 mons 2 days 3.000000000 secs");
    assert_eq!(cell(1), r#"["1 days","-2 hours"]"#);
}
