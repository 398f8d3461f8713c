//! The `loupe` binary, run as a user runs it, against the bundled sample
//! dataset.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

mod admin;
mod databases;
mod output;
mod runner;

use loupe_core::deps::arrow::array::RecordBatch;
use loupe_core::deps::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sample-data")
}

fn loupe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(args)
        .env_remove("LOUPE_SOURCE")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn query(extra: &[&str]) -> Output {
    let source = sample();
    let mut args = vec!["query", "--source", source.to_str().unwrap()];
    args.extend_from_slice(extra);
    loupe(&args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that `loupe` exited with success, showing its stderr if not.
#[track_caller]
fn assert_success(out: &Output) {
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Asserts that `loupe` exited with `code` and said `message` on stderr.
#[track_caller]
fn assert_fails(out: &Output, code: i32, message: &str) {
    assert_eq!(out.status.code(), Some(code));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(message), "{stderr}");
}

#[test]
fn table_output_shows_rows_and_a_count() {
    let out = query(&["select status, count(*) as n from orders group by status order by status"]);
    assert_success(&out);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("| delivered |"), "{stdout}");
    assert!(stdout.trim_end().ends_with("5 rows"), "{stdout}");
}

#[test]
fn table_output_is_a_bounded_preview() {
    let out = query(&["--preview-rows", "3", "select * from orders"]);
    assert_success(&out);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("3 of 20000 rows shown"), "{stdout}");
    assert!(stdout.lines().count() < 12, "{stdout}");
}

#[test]
fn csv_json_and_ndjson() {
    let sql = "select id, name from customers where id <= 3 order by id";
    let csv = query(&["--format", "csv", sql]);
    assert_success(&csv);
    let csv = text(&csv.stdout);
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.starts_with("id,name\n1,"), "{csv}");

    let json = query(&["--format", "json", sql]);
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(parsed.as_array().unwrap().len(), 3);
    assert_eq!(parsed[0]["id"], 1);

    let ndjson = query(&["-f", "ndjson", sql]);
    assert_eq!(text(&ndjson.stdout).lines().count(), 3);
}

#[test]
fn binary_outputs_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let parquet = dir.path().join("out.parquet");
    let to = parquet.to_str().unwrap();
    let sql = "select * from orders where quantity > 2";
    assert_success(&query(&["--format", "parquet", "--output", to, sql]));
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&parquet).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert!(rows > 5000 && rows < 20000, "{rows}");

    let arrow = dir.path().join("out.arrow");
    let to = arrow.to_str().unwrap();
    assert_success(&query(&["-f", "arrow", "-o", to, "select * from regions"]));
    let reader = loupe_core::deps::arrow::ipc::reader::FileReader::try_new(
        std::fs::File::open(&arrow).unwrap(),
        None,
    )
    .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 10);

    let xlsx = dir.path().join("out.xlsx");
    let to = xlsx.to_str().unwrap();
    assert_success(&query(&[
        "-f",
        "xlsx",
        "-o",
        to,
        "select country, region from regions order by country",
    ]));
    let mut book: calamine::Xlsx<_> = calamine::open_workbook(&xlsx).unwrap();
    let sheet = calamine::Reader::worksheet_range(&mut book, "Sheet1").unwrap();
    assert_eq!(sheet.get_size(), (11, 2), "a header and 10 rows");
    assert_eq!(
        sheet.get((0, 0)),
        Some(&calamine::Data::String("country".to_owned()))
    );
}

#[test]
fn parameters_are_typed_and_lists_repeat() {
    let out = query(&[
        "-p",
        "country=FR",
        "-p",
        "id:integer=3",
        "-p",
        "id:integer=4",
        "--format",
        "csv",
        "select count(*) as n from customers where country = {{country}} or id in ({{id}})",
    ]);
    assert_success(&out);
    let n: u64 = text(&out.stdout).lines().nth(1).unwrap().parse().unwrap();
    assert!(n > 2, "{n}");
}

#[test]
fn sql_comes_from_stdin_or_a_file() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(["query", "-s", sample().to_str().unwrap(), "-f", "csv"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"select 40 + 2 as answer")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "answer\n42\n");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.sql");
    std::fs::write(&file, "select count(*) as n from products").unwrap();
    let out = query(&["-f", "csv", "--file", file.to_str().unwrap()]);
    assert_eq!(text(&out.stdout), "n\n60\n");
}

/// Exit 1 when the query ran and failed, 2 for usage and configuration.
#[test]
fn exit_status_says_what_went_wrong() {
    let out = query(&["select * from nowhere"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("loupe: table \"nowhere\" not found; tables: customers"),
        "{stderr}"
    );

    let out = query(&["select {{missing}}"]);
    assert_fails(&out, 2, "no parameter \"missing\" is defined");

    let by_id = "select * from customers where id = {{n}}";
    let out = query(&["-p", "n:integer=1 OR 1=1", by_id]);
    assert_fails(&out, 2, "must be an integer");

    let out = loupe(&["query", "--source", "mssql://db/x", "select 1"]);
    assert_eq!(out.status.code(), Some(2));
    let enabled: Vec<&str> = [
        ("files", cfg!(feature = "files")),
        ("mysql", cfg!(feature = "mysql")),
        ("postgres", cfg!(feature = "postgres")),
    ]
    .into_iter()
    .filter_map(|(kind, on)| on.then_some(kind))
    .collect();
    assert_eq!(
        text(&out.stderr),
        format!(
            "loupe: no connector for \"mssql\"; enabled: {}\n",
            enabled.join(", ")
        )
    );

    let out = query(&["--format", "xml", "select 1"]);
    assert_eq!(out.status.code(), Some(2));

    let out = query(&["drop table orders"]);
    assert_fails(&out, 1, "read-only");

    let endless = "select count(*) from generate_series(1, 10000000000)";
    assert_fails(
        &query(&["--timeout", "200ms", endless]),
        1,
        "timed out after 200ms",
    );
}

#[test]
fn truncation_is_reported_on_stderr() {
    let out = query(&["--max-rows", "10", "-f", "csv", "select * from orders"]);
    assert_success(&out);
    assert_eq!(text(&out.stdout).lines().count(), 11);
    assert!(text(&out.stderr).contains("truncated: stopped at the limit of 10 rows"));
}

/// `loupe query … | head` must end quietly when head stops reading.
#[test]
fn a_closed_pipe_is_not_an_error() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args([
            "query",
            "-s",
            sample().to_str().unwrap(),
            "-f",
            "csv",
            "select * from generate_series(1, 100000000)",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut head = [0u8; 64];
    stdout.read_exact(&mut head).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn sources_and_schema() {
    let out = loupe(&["sources"]);
    assert_success(&out);
    assert!(text(&out.stdout).starts_with("files "));

    let source = sample();
    let out = loupe(&["schema", "--source", source.to_str().unwrap()]);
    assert_success(&out);
    let stdout = text(&out.stdout);
    for table in ["customers", "events", "orders", "products", "regions"] {
        assert!(stdout.contains(&format!("public.{table}")), "{stdout}");
    }
    let out = loupe(&["schema", "--json", "--source", source.to_str().unwrap()]);
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed["schemas"][0]["tables"].as_array().unwrap().len(), 5);
}
