//! `/runs`: ad-hoc runs, listing, cancellation, result pages and
//! downloads in every format, and who may see what.

// Helpers here are test code too: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use loupe_services::meta::ListRequest;
use loupe_services::{Access, EVERYONE, Role};
use serde_json::{Value, json};

use crate::harness::{Harness, Reply, id_of};

/// Starts ad-hoc SQL as `token`; returns the reply.
async fn start(h: &Harness, token: &str, datasource: &str, sql: &str) -> Reply {
    h.bearer(token)
        .post("/runs", json!({ "datasource_id": datasource, "sql": sql }))
        .await
}

/// Runs ad-hoc SQL as `token` to its end (needs a runner); returns the
/// finished run.
async fn run_sql(h: &Harness, token: &str, datasource: &str, sql: &str) -> Value {
    let started = start(h, token, datasource, sql).await.expect(202);
    h.wait_run(token, &id_of(&started.body["run"])).await
}

/// Runs ad-hoc SQL as the admin to a success (needs a runner); returns
/// the finished run and its id.
async fn succeeded(h: &Harness, datasource: &str, sql: &str) -> (Value, String) {
    let run = run_sql(h, &h.admin, datasource, sql).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let id = id_of(&run);
    (run, id)
}

/// The rows of a CSV without quoted fields (the columns these tests read
/// have no commas or quotes).
fn csv_rows(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    assert!(!text.contains('"'), "unexpected quoting: {text:.200}");
    let mut lines = text
        .lines()
        .map(|l| l.split(',').map(str::to_owned).collect());
    let header = lines.next().expect("header row");
    (header, lines.collect())
}

/// µs since the epoch of an RFC 3339 time as the text formats write it.
fn micros(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"))
        .timestamp_micros()
}

/// Whether a value of a JSON page and a CSV field say the same.
fn same_value(page: &Value, csv: &str) -> bool {
    match page {
        Value::Null => csv.is_empty(),
        Value::Bool(b) => b.to_string() == csv,
        Value::Number(n) => n.as_f64() == csv.parse::<f64>().ok(),
        Value::String(s) if s == csv => true,
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .zip(chrono::DateTime::parse_from_rfc3339(csv).ok())
            .is_some_and(|(a, b)| a == b),
        _ => false,
    }
}

/// One row of the orders query the format tests download.
#[derive(Debug, Clone, PartialEq)]
struct Order {
    id: i64,
    customer_id: i64,
    quantity: i64,
    unit_price: f64,
    status: String,
    ordered_at: i64,
}

const ORDERS_SQL: &str = "select id, customer_id, quantity, unit_price, status, ordered_at \
                          from orders where id <= 300 order by id";

fn order_from_json_array(row: &Value) -> Order {
    Order {
        id: row[0].as_i64().expect("id"),
        customer_id: row[1].as_i64().expect("customer_id"),
        quantity: row[2].as_i64().expect("quantity"),
        unit_price: row[3].as_f64().expect("unit_price"),
        status: row[4].as_str().expect("status").to_owned(),
        ordered_at: micros(row[5].as_str().expect("ordered_at")),
    }
}

fn order_from_json_object(row: &Value) -> Order {
    Order {
        id: row["id"].as_i64().expect("id"),
        customer_id: row["customer_id"].as_i64().expect("customer_id"),
        quantity: row["quantity"].as_i64().expect("quantity"),
        unit_price: row["unit_price"].as_f64().expect("unit_price"),
        status: row["status"].as_str().expect("status").to_owned(),
        ordered_at: micros(row["ordered_at"].as_str().expect("ordered_at")),
    }
}

fn order_from_csv(row: &[String]) -> Order {
    Order {
        id: row[0].parse().expect("id"),
        customer_id: row[1].parse().expect("customer_id"),
        quantity: row[2].parse().expect("quantity"),
        unit_price: row[3].parse().expect("unit_price"),
        status: row[4].clone(),
        ordered_at: micros(&row[5]),
    }
}

/// The orders of Arrow batches (from Parquet or Arrow IPC), whatever
/// string and integer widths the store chose.
fn orders_from_batches(batches: &[RecordBatch]) -> Vec<Order> {
    let column = |batch: &RecordBatch, name: &str, to: &DataType| -> Arc<dyn Array> {
        let array = batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("column {name} missing"));
        arrow::compute::cast(array, to).expect("cast")
    };
    let mut orders = Vec::new();
    for batch in batches {
        let id = column(batch, "id", &DataType::Int64);
        let customer = column(batch, "customer_id", &DataType::Int64);
        let quantity = column(batch, "quantity", &DataType::Int64);
        let price = column(batch, "unit_price", &DataType::Float64);
        let status = column(batch, "status", &DataType::Utf8);
        let ordered_at = column(batch, "ordered_at", &DataType::Int64);
        for i in 0..batch.num_rows() {
            orders.push(Order {
                id: id.as_primitive::<Int64Type>().value(i),
                customer_id: customer.as_primitive::<Int64Type>().value(i),
                quantity: quantity.as_primitive::<Int64Type>().value(i),
                unit_price: price.as_primitive::<Float64Type>().value(i),
                status: status.as_string::<i32>().value(i).to_owned(),
                ordered_at: ordered_at.as_primitive::<Int64Type>().value(i),
            });
        }
    }
    orders
}

/// The orders of an XLSX download: one sheet, a header row, then typed
/// cells (numbers, text, and the time as an Excel date in UTC).
fn orders_from_xlsx(bytes: Vec<u8>) -> Vec<Order> {
    use calamine::{Data, Reader, Xlsx};
    let mut book: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes)).expect("an XLSX file");
    assert_eq!(book.sheet_names(), ["Sheet1"]);
    let sheet = book.worksheet_range("Sheet1").expect("the sheet");
    let number = |cell: &Data| match cell {
        Data::Float(n) => *n,
        other => panic!("not a number cell: {other:?}"),
    };
    let text = |cell: &Data| match cell {
        Data::String(s) => s.clone(),
        other => panic!("not a text cell: {other:?}"),
    };
    let mut rows = sheet.rows();
    let header: Vec<String> = rows
        .next()
        .expect("a header row")
        .iter()
        .map(text)
        .collect();
    assert_eq!(
        header,
        [
            "id",
            "customer_id",
            "quantity",
            "unit_price",
            "status",
            "ordered_at"
        ]
    );
    rows.map(|row| Order {
        id: number(&row[0]) as i64,
        customer_id: number(&row[1]) as i64,
        quantity: number(&row[2]) as i64,
        unit_price: number(&row[3]),
        status: text(&row[4]),
        // Days since 1899-12-30; the sample's times are whole seconds.
        ordered_at: match &row[5] {
            Data::DateTime(at) => ((at.as_f64() - 25_569.0) * 86_400.0).round() as i64 * 1_000_000,
            other => panic!("not a date cell: {other:?}"),
        },
    })
    .collect()
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// Downloads a run's result in `format`, checking the headers every
/// format shares.
async fn download(h: &Harness, run_id: &str, format: &str, content_type: &str) -> Vec<u8> {
    let reply = h
        .admin()
        .get(&format!("/runs/{run_id}/download?format={format}"))
        .await
        .expect(200);
    assert_eq!(reply.header("content-type"), Some(content_type), "{format}");
    assert_eq!(
        reply.header("content-disposition"),
        Some(format!("attachment; filename=\"{run_id}.{format}\"").as_str()),
    );
    reply.bytes
}

#[tokio::test]
async fn ad_hoc_sql_runs_end_to_end_and_is_listed() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let ds = h.sample_datasource().await;
    let sql =
        "select country, count(*) as customers from customers group by country order by country";
    let started = start(&h, &h.admin, &ds, sql).await.expect(202);
    assert_eq!(started.body["how"], "queued");
    // The runner in this process may already have claimed it.
    assert!(
        matches!(
            started.body["run"]["status"].as_str(),
            Some("queued" | "running" | "succeeded")
        ),
        "{}",
        started.text()
    );
    assert_eq!(started.body["run"]["datasource_id"], ds.as_str());
    assert!(started.body["run"]["query_id"].is_null());
    let id = id_of(&started.body["run"]);

    let done = h.wait_run(&h.admin, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(done["error_code"].is_null());
    assert!(done["finished_at"].is_string());

    // The counts agree with the sample file itself.
    let file = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample-data/customers.csv"),
    )
    .expect("sample customers");
    let (header, customers) = csv_rows(&file);
    let country = header.iter().position(|c| c == "country").expect("country");
    let mut expected = std::collections::BTreeMap::<String, i64>::new();
    for row in &customers {
        *expected.entry(row[country].clone()).or_default() += 1;
    }
    assert_eq!(done["rows"], expected.len());

    let page = h
        .admin()
        .get(&format!("/runs/{id}/results?limit=1000"))
        .await
        .expect(200);
    assert_eq!(page.header("cache-control"), Some("private, max-age=3600"));
    assert_eq!(page.body["columns"][0]["name"], "country");
    assert!(
        page.body["columns"][0]["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("Utf8")),
        "{}",
        page.body["columns"]
    );
    assert_eq!(
        page.body["columns"][1],
        json!({ "name": "customers", "type": "Int64" })
    );
    let rows: Vec<(String, i64)> = page.body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_owned(), r[1].as_i64().unwrap()))
        .collect();
    assert_eq!(rows, expected.into_iter().collect::<Vec<_>>());
    assert_eq!(page.body["total_rows"], rows.len());
    assert_eq!(page.body["offset"], 0);
    assert_eq!(page.body["limit"], 1000);
    assert!(page.body["truncated"].is_null());

    // The same SQL within max_age: answered with the same run.
    let again = h
        .admin()
        .post(
            "/runs",
            json!({ "datasource_id": ds, "sql": sql, "max_age_seconds": 600 }),
        )
        .await
        .expect(200);
    assert_eq!(again.body["how"], "cached");
    assert_eq!(again.body["run"]["id"], id.as_str());

    let listed = h
        .admin()
        .get(&format!("/runs?status=succeeded&datasource={ds}"))
        .await
        .expect(200);
    assert_eq!(listed.body["total"], 1);
    assert_eq!(listed.body["items"][0]["id"], id.as_str());
    assert_eq!(listed.body["items"][0]["cache_hits"], 1);
    let failed = h.admin().get("/runs?status=failed").await.expect(200);
    assert_eq!(failed.body["total"], 0);
    h.admin().get("/runs?status=done").await.invalid("status");
}

#[tokio::test]
async fn page_two_matches_the_same_rows_of_the_csv_download() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let ds = h.sample_datasource().await;
    let (run, id) = succeeded(&h, &ds, "select * from orders").await;
    assert_eq!(run["rows"], 20_000);

    let page = h
        .admin()
        .get(&format!("/runs/{id}/results?offset=10&limit=10"))
        .await
        .expect(200);
    assert_eq!(page.body["offset"], 10);
    assert_eq!(page.body["limit"], 10);
    assert_eq!(page.body["total_rows"], 20_000);
    let columns: Vec<&str> = page.body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "id",
            "customer_id",
            "product_id",
            "quantity",
            "unit_price",
            "status",
            "ordered_at"
        ]
    );
    let rows = page.body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 10);

    let csv = download(&h, &id, "csv", "text/csv; charset=utf-8").await;
    let (header, lines) = csv_rows(&String::from_utf8(csv).unwrap());
    assert_eq!(header, columns);
    assert_eq!(lines.len(), 20_000);
    for (row, line) in rows.iter().zip(&lines[10..20]) {
        let values = row.as_array().unwrap();
        assert_eq!(values.len(), line.len());
        for (value, field) in values.iter().zip(line) {
            assert!(same_value(value, field), "{value} vs {field:?}");
        }
    }

    // Fewer columns, in the order asked for.
    let narrow = h
        .admin()
        .get(&format!(
            "/runs/{id}/results?offset=10&limit=10&columns=status,id"
        ))
        .await
        .expect(200);
    assert_eq!(narrow.body["columns"][0]["name"], "status");
    assert_eq!(narrow.body["columns"][1]["name"], "id");
    for (row, full) in narrow.body["rows"].as_array().unwrap().iter().zip(rows) {
        assert_eq!(row, &json!([full[5], full[0]]));
    }

    // Past the end: an empty page, not an error.
    let past = h
        .admin()
        .get(&format!("/runs/{id}/results?offset=20000&limit=10"))
        .await
        .expect(200);
    assert_eq!(past.body["rows"], json!([]));
    assert_eq!(past.body["total_rows"], 20_000);
}

#[tokio::test]
async fn every_download_format_holds_the_rows_of_the_page() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let ds = h.sample_datasource().await;
    let (_, id) = succeeded(&h, &ds, ORDERS_SQL).await;

    let page = h
        .admin()
        .get(&format!("/runs/{id}/results?limit=1000"))
        .await
        .expect(200);
    let expected: Vec<Order> = page.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(order_from_json_array)
        .collect();
    assert_eq!(
        expected.iter().map(|o| o.id).collect::<Vec<_>>(),
        (1..=300).collect::<Vec<_>>()
    );
    assert!(expected.iter().all(|o| (1..=5).contains(&o.quantity)));

    let csv = download(&h, &id, "csv", "text/csv; charset=utf-8").await;
    let (header, lines) = csv_rows(&String::from_utf8(csv).unwrap());
    assert_eq!(
        header,
        [
            "id",
            "customer_id",
            "quantity",
            "unit_price",
            "status",
            "ordered_at"
        ]
    );
    let from_csv: Vec<Order> = lines.iter().map(|l| order_from_csv(l)).collect();
    assert_eq!(from_csv, expected);

    let ndjson = download(&h, &id, "ndjson", "application/x-ndjson").await;
    let from_ndjson: Vec<Order> = String::from_utf8(ndjson)
        .unwrap()
        .lines()
        .map(|l| order_from_json_object(&serde_json::from_str(l).expect("a JSON line")))
        .collect();
    assert_eq!(from_ndjson, expected);

    let json = download(&h, &id, "json", "application/json").await;
    let json: Value = serde_json::from_slice(&json).expect("one JSON document");
    let from_json: Vec<Order> = json
        .as_array()
        .expect("an array")
        .iter()
        .map(order_from_json_object)
        .collect();
    assert_eq!(from_json, expected);

    let parquet = download(&h, &id, "parquet", "application/vnd.apache.parquet").await;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(parquet),
    )
    .expect("a Parquet file")
    .build()
    .expect("a Parquet reader");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("a Parquet batch")).collect();
    assert_eq!(orders_from_batches(&batches), expected);

    let ipc = download(&h, &id, "arrow", "application/vnd.apache.arrow.file").await;
    let reader = arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(ipc), None)
        .expect("an Arrow IPC file");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("an Arrow batch")).collect();
    assert_eq!(orders_from_batches(&batches), expected);

    let xlsx = download(&h, &id, "xlsx", XLSX).await;
    assert_eq!(orders_from_xlsx(xlsx), expected);

    // CSV is the default; `columns` picks and orders columns.
    let narrow = h
        .admin()
        .get(&format!("/runs/{id}/download?columns=status,id"))
        .await
        .expect(200);
    assert_eq!(
        narrow.header("content-type"),
        Some("text/csv; charset=utf-8")
    );
    assert_eq!(
        narrow.header("cache-control"),
        Some("private, max-age=3600")
    );
    let (header, lines) = csv_rows(&narrow.text());
    assert_eq!(header, ["status", "id"]);
    let pairs: Vec<(String, i64)> = lines
        .iter()
        .map(|l| (l[0].clone(), l[1].parse().unwrap()))
        .collect();
    let want: Vec<(String, i64)> = expected.iter().map(|o| (o.status.clone(), o.id)).collect();
    assert_eq!(pairs, want);
}

#[tokio::test]
async fn a_result_cut_short_by_the_row_limit_says_so() {
    let h = Harness::new().await;
    let _runner = h.runner_with(|c| {
        c.limits = loupe_core::Limits {
            max_rows: Some(25),
            ..loupe_core::Limits::NONE
        };
    });
    let ds = h.sample_datasource().await;
    let (run, id) = succeeded(&h, &ds, "select id from orders order by id").await;
    assert_eq!(run["rows"], 25);
    assert_eq!(run["truncated"], "rows");
    let page = h
        .admin()
        .get(&format!("/runs/{id}/results?limit=100"))
        .await
        .expect(200);
    assert_eq!(page.body["total_rows"], 25);
    assert_eq!(page.body["truncated"], "rows");
    let ids: Vec<i64> = page.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (1..=25).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_queued_run_is_cancelled_by_whoever_started_it() {
    // No runner: the run stays queued until cancelled.
    let h = Harness::new().await;
    let ds = h.sample_datasource().await;
    let started = start(&h, &h.admin, &ds, "select count(*) from orders")
        .await
        .expect(202);
    let id = id_of(&started.body["run"]);

    for early in ["results", "download"] {
        h.admin()
            .get(&format!("/runs/{id}/{early}"))
            .await
            .problem(409, "run.not_finished");
    }

    // Another editor sees the run but may not cancel it.
    let (_, editor) = h.user("ed@acme.test", Role::Editor).await;
    let cancel_path = format!("/runs/{id}/cancel");
    h.bearer(&editor)
        .post_empty(&cancel_path)
        .await
        .problem(403, "access.owner");

    let cancelled = h.admin().post_empty(&cancel_path).await.expect(200);
    assert_eq!(cancelled.body["id"], id.as_str());
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(cancelled.body["error_code"], "run.cancelled");
    assert!(cancelled.body["finished_at"].is_string());

    let run = h.admin().get(&format!("/runs/{id}")).await.expect(200);
    assert_eq!(run.body["status"], "cancelled");
    h.admin()
        .get(&format!("/runs/{id}/results"))
        .await
        .problem(409, "run.cancelled");
    h.admin()
        .post_empty(&cancel_path)
        .await
        .problem(409, "conflict.finished");
    let listed = h.admin().get("/runs?status=cancelled").await;
    assert_eq!(listed.body["total"], 1);
    assert_eq!(listed.body["items"][0]["id"], id.as_str());
}

#[tokio::test]
async fn a_failed_run_keeps_its_error_and_has_no_result() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let ds = h.sample_datasource().await;
    let run = run_sql(&h, &h.admin, &ds, "select * from no_such_table").await;
    assert_eq!(run["status"], "failed", "{run}");
    let code = run["error_code"].as_str().expect("error code").to_owned();
    assert!(!code.is_empty());
    assert!(
        run["error_message"]
            .as_str()
            .is_some_and(|m| m.contains("no_such_table")),
        "{run}"
    );
    assert!(run["rows"].is_null());
    let id = id_of(&run);

    let results = h
        .admin()
        .get(&format!("/runs/{id}/results"))
        .await
        .problem(409, "run.failed");
    assert!(
        results.body["detail"].as_str().unwrap().contains(&code),
        "{}",
        results.text()
    );
    h.admin()
        .get(&format!("/runs/{id}/download?format=parquet"))
        .await
        .problem(409, "run.failed");
}

#[tokio::test]
async fn runs_of_another_organization_are_not_found() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let ds = h.sample_datasource().await;
    let (_, id) = succeeded(&h, &ds, "select country from regions").await;
    let other = h.other_org_admin().await;
    let them = h.bearer(&other);

    for path in [
        format!("/runs/{id}"),
        format!("/runs/{id}/results"),
        format!("/runs/{id}/download?format=csv"),
    ] {
        them.get(&path).await.problem(404, "not_found");
    }
    them.post_empty(&format!("/runs/{id}/cancel"))
        .await
        .problem(404, "not_found");
    let listed = them.get("/runs").await.expect(200);
    assert_eq!(listed.body["total"], 0);
    // Nor may they run on this organization's datasource.
    start(&h, &other, &ds, "select 1")
        .await
        .problem(404, "not_found");
}

#[tokio::test]
async fn view_access_reads_results_but_does_not_run() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let ds = h.sample_datasource().await;
    let (editor_id, editor) = h.user("reader@acme.test", Role::Editor).await;
    let (viewer_id, viewer) = h.user("viewer@acme.test", Role::Viewer).await;
    let (_, outsider) = h.user("outsider@acme.test", Role::Editor).await;

    // Everyone may run on the sample datasource by default; narrow that to
    // `view` for one group.
    let admin = h.admin_actor().await;
    let groups = &h.services().groups;
    let everyone = groups
        .list(&admin, &ListRequest::default().filter("q", EVERYONE))
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|g| g.name == EVERYONE)
        .expect("the everyone group");
    groups.revoke(&admin, &everyone.id, &ds).await.unwrap();
    let readers = groups.create(&admin, "readers").await.unwrap();
    for user in [&editor_id, &viewer_id] {
        groups.add_member(&admin, &readers.id, user).await.unwrap();
    }
    groups
        .grant(&admin, &readers.id, &ds, Access::View)
        .await
        .unwrap();

    // Without a grant the datasource is not found, as if it did not exist.
    for (token, status, code) in [
        (&editor, 403, "access.view_only"),
        (&viewer, 403, "access.role"),
        (&outsider, 404, "not_found"),
    ] {
        start(&h, token, &ds, "select 1")
            .await
            .problem(status, code);
    }

    let (_, id) = succeeded(&h, &ds, "select count(*) as n from products where in_stock").await;
    let file = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample-data/products.csv"),
    )
    .expect("sample products");
    let in_stock = file
        .lines()
        .skip(1)
        .filter(|l| l.ends_with(",true"))
        .count();

    let results = format!("/runs/{id}/results");
    for token in [&editor, &viewer] {
        let page = h.bearer(token).get(&results).await.expect(200);
        assert_eq!(page.body["rows"], json!([[in_stock]]));
        let listed = h.bearer(token).get("/runs").await;
        assert_eq!(listed.body["total"], 1);
    }
    h.bearer(&outsider)
        .get(&results)
        .await
        .problem(404, "not_found");
    let listed = h.bearer(&outsider).get("/runs").await.expect(200);
    assert_eq!(listed.body["total"], 0);
}

#[tokio::test]
async fn bad_run_requests_are_problems() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let ds = h.sample_datasource().await;
    let (_, id) = succeeded(&h, &ds, "select country, region from regions").await;

    let bad = [
        (
            format!("/runs/{id}/download?format=xls"),
            422,
            "validation.failed",
        ),
        (
            format!("/runs/{id}/results?limit=0"),
            422,
            "validation.failed",
        ),
        (
            format!("/runs/{id}/results?limit=10001"),
            422,
            "validation.failed",
        ),
        (
            format!("/runs/{id}/results?columns=country,colour"),
            400,
            "results.unknown_column",
        ),
        (
            format!("/runs/{id}/download?columns=colour"),
            400,
            "results.unknown_column",
        ),
        ("/runs/nope/results".to_owned(), 404, "not_found"),
        ("/runs/nope".to_owned(), 404, "not_found"),
    ];
    for (path, status, code) in bad {
        h.admin().get(&path).await.problem(status, code);
    }

    start(&h, &h.admin, &ds, "")
        .await
        .problem(400, "request.invalid");
    start(&h, &h.admin, "nope", "select 1")
        .await
        .problem(404, "not_found");
}

#[tokio::test]
async fn the_openapi_document_describes_runs() {
    let h = Harness::new().await;
    let spec = h.anonymous().get("/openapi.json").await.expect(200);
    let paths = &spec.body["paths"];
    let operations = [
        ("/runs", "post", "startRun"),
        ("/runs", "get", "listRuns"),
        ("/runs/{id}", "get", "getRun"),
        ("/runs/{id}/cancel", "post", "cancelRun"),
        ("/runs/{id}/results", "get", "getRunResults"),
        ("/runs/{id}/download", "get", "downloadRunResult"),
    ];
    for (path, method, id) in operations {
        let operation = &paths[path][method];
        assert_eq!(operation["operationId"], id, "{path} {method}");
        assert_eq!(operation["tags"], json!(["Runs"]), "{path} {method}");
        assert!(
            operation["description"].is_string() || operation["summary"].is_string(),
            "{path} {method} undocumented"
        );
    }
    let download = &paths["/runs/{id}/download"]["get"]["responses"]["200"];
    let types: Vec<&str> = download["content"]
        .as_object()
        .expect("media types")
        .keys()
        .map(String::as_str)
        .collect();
    for wanted in [
        "text/csv; charset=utf-8",
        "application/json",
        "application/x-ndjson",
        "application/vnd.apache.parquet",
        "application/vnd.apache.arrow.file",
        XLSX,
    ] {
        assert!(types.contains(&wanted), "{wanted} missing from {types:?}");
    }
    for binary in ["application/vnd.apache.parquet", XLSX] {
        assert_eq!(
            download["content"][binary]["schema"],
            json!({ "type": "string", "format": "binary" }),
            "{binary}"
        );
    }
    assert!(
        download["headers"]["CONTENT-DISPOSITION"].is_object(),
        "{download}"
    );
    assert!(
        download["headers"]["CACHE-CONTROL"].is_object(),
        "{download}"
    );
    let results = &paths["/runs/{id}/results"]["get"]["responses"]["200"];
    assert!(results["headers"]["CACHE-CONTROL"].is_object(), "{results}");
    assert!(
        paths["/runs/{id}/results"]["get"]["responses"]["409"].is_object(),
        "409 documented"
    );
}

/// A result page and the JSON and NDJSON downloads encode every value the
/// same way: a decimal as text with every digit, a time with its zone's
/// offset, binary as hex, lists as arrays, NULL as null.
#[tokio::test]
async fn pages_and_json_downloads_encode_values_alike() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let ds = h.sample_datasource().await;
    let sql = "select arrow_cast('123456789012345678.901234567', 'Decimal128(38, 9)') as d, \
               arrow_cast('2024-01-02T03:04:05Z', 'Timestamp(Microsecond, Some(\"+02:00\"))') as ts, \
               decode('0102ff', 'hex') as b, make_array(1, 2, 3) as l, \
               [arrow_cast('1.50', 'Decimal128(10, 2)'), null] as ld, null as n";
    let (_, id) = succeeded(&h, &ds, sql).await;
    let page = h
        .admin()
        .get(&format!("/runs/{id}/results"))
        .await
        .expect(200);
    let row = &page.body["rows"][0];
    assert_eq!(
        row,
        &json!([
            "123456789012345678.901234567",
            "2024-01-02T05:04:05+02:00",
            "0102ff",
            [1, 2, 3],
            ["1.50", null],
            null
        ])
    );
    let names = ["d", "ts", "b", "l", "ld", "n"];
    let json = download(&h, &id, "json", "application/json").await;
    let json: Value = serde_json::from_slice(&json).unwrap();
    let ndjson = download(&h, &id, "ndjson", "application/x-ndjson").await;
    let ndjson: Value = serde_json::from_slice(&ndjson).unwrap();
    for object in [&json[0], &ndjson] {
        for (i, name) in names.iter().enumerate() {
            assert_eq!(&object[name], &row[i], "column {name}");
        }
    }
}
