//! `loupe` against real PostgreSQL and MariaDB servers (see scripts/test).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::assert_success;

/// The URL of the PostgreSQL server for tests, if any.
pub(crate) fn server() -> Option<String> {
    test_server("LOUPE_TEST_POSTGRES_URL", "PostgreSQL")
}

/// The URL of the MariaDB server for tests, if any.
fn mysql_server() -> Option<String> {
    test_server("LOUPE_TEST_MYSQL_URL", "MariaDB")
}

/// The HTTPS receiver for tests: its URL (`https://localhost:port`), the
/// directory it writes each request to as JSON, and the CA of its
/// certificate, if any.
pub(crate) fn receiver() -> Option<(String, PathBuf, PathBuf)> {
    let var = |name: &str| test_server(name, "the HTTPS receiver");
    Some((
        var("LOUPE_TEST_RECEIVER_URL")?,
        var("LOUPE_TEST_RECEIVER_DIR")?.into(),
        var("LOUPE_TEST_CA")?.into(),
    ))
}

/// The S3-protocol server for tests and its bucket, if any.
pub(crate) fn s3_server() -> Option<(loupe_core::S3Options, String)> {
    let var = |name: &str| test_server(name, "an S3 server");
    let options = loupe_core::S3Options {
        endpoint: Some(var("LOUPE_TEST_S3_ENDPOINT")?),
        region: Some(var("LOUPE_TEST_S3_REGION")?),
        access_key_id: Some(var("LOUPE_TEST_S3_ACCESS_KEY_ID")?),
        secret_access_key: Some(var("LOUPE_TEST_S3_SECRET_ACCESS_KEY")?),
        ..loupe_core::S3Options::default()
    };
    Some((options, var("LOUPE_TEST_S3_BUCKET")?))
}

/// The value of `var`. Without it the test is skipped, except under
/// `CI=true`, where it fails.
fn test_server(var: &str, database: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{var} is not set: CI must run the tests through scripts/test")
        }
        Err(_) => {
            eprintln!("skipped: {var} is not set (scripts/test starts {database})");
            None
        }
    }
}

/// Runs `sql` on `url` with `n` = 3 as CSV, and checks the output.
#[track_caller]
fn assert_csv_up_to_three(url: &str, sql: &str, expected: &str) {
    let out = loupe(&[
        "query",
        "--source",
        url,
        "-p",
        "n:integer=3",
        "-f",
        "csv",
        sql,
    ]);
    assert_success(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}

fn loupe(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn query_and_schema_with_a_postgres_url() {
    let Some(url) = server() else { return };
    assert_csv_up_to_three(
        &url,
        "select g, g * 2 as double from generate_series(1, {{n}}) g",
        "g,double\n1,2\n2,4\n3,6\n",
    );

    let out = loupe(&["query", "--source", &url, "select * from missing_table"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("relation \"missing_table\" does not exist"),
        "{stderr}"
    );
    assert!(stderr.contains("SQLSTATE 42P01"), "{stderr}");
    assert!(
        !stderr.contains("loupe-test-pw"),
        "the password never shows"
    );

    assert_success(&loupe(&["schema", "--source", &url]));
}

/// Peak resident memory of a running child, read from /proc while it runs
/// (VmHWM only grows, so the last reading is within a few milliseconds of
/// the true peak).
fn wait_with_peak_rss(mut child: std::process::Child) -> (ExitStatus, u64) {
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0;
    loop {
        let hwm = std::fs::read_to_string(&status_file).ok().and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        });
        peak_kb = peak_kb.max(hwm.unwrap_or(0));
        if let Ok(Some(status)) = child.try_wait() {
            return (status, peak_kb);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `sql` on `url` into a Parquet store in a temporary directory,
/// checking that it succeeds; returns the directory, the files stored and
/// the peak resident memory in kB.
fn store_with_peak_rss(url: &str, sql: &str) -> (tempfile::TempDir, Vec<PathBuf>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(["query", "--source", url, "--store"])
        .arg(dir.path())
        .arg(sql)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, peak_kb) = wait_with_peak_rss(child);
    assert!(status.success());
    let files = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .collect();
    (dir, files, peak_kb)
}

/// The rows of a Parquet file, from its metadata.
fn parquet_rows(path: &Path) -> i64 {
    use loupe_core::deps::parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    reader.metadata().file_metadata().num_rows()
}

/// Acceptance: a 5M-row result goes from PostgreSQL to the Parquet store
/// in bounded memory.
#[test]
fn five_million_rows_to_the_store_in_bounded_memory() {
    let Some(url) = server() else { return };
    let (_dir, files, peak_kb) = store_with_peak_rss(
        &url,
        "select a * 1000 + b as id, (a * 1000 + b)::text as label, now() as at, (b % 2 = 0) as even, \
         (a * 1000 + b)::numeric(12, 2) / 7 as amount \
         from generate_series(0, 4999) a, generate_series(0, 999) b",
    );
    assert_eq!(files.len(), 1);
    assert_eq!(parquet_rows(&files[0]), 5_000_000);
    eprintln!("peak RSS for 5M rows into the store: {} MB", peak_kb / 1024);
    assert!(peak_kb < 300 * 1024, "peak RSS {} MB", peak_kb / 1024);
}

#[test]
fn query_and_schema_with_a_mysql_url() {
    let Some(url) = mysql_server() else { return };
    assert_csv_up_to_three(
        &url,
        "select seq, seq * 2 as twice from seq_1_to_10 where seq <= {{n}}",
        "seq,twice\n1,2\n2,4\n3,6\n",
    );
    assert_success(&loupe(&["schema", "--json", "--source", &url]));
}

/// Acceptance: a 5M-row MariaDB result goes to the Parquet store in
/// bounded memory.
#[test]
fn five_million_mysql_rows_to_the_store_in_bounded_memory() {
    let Some(url) = mysql_server() else { return };
    let (_dir, files, peak_kb) = store_with_peak_rss(
        &url,
        "select seq as id, concat('label-', seq) as label, now(6) as at, seq % 2 = 0 as even, \
         cast(seq / 7 as decimal(12, 2)) as amount from seq_1_to_5000000",
    );
    assert_eq!(parquet_rows(&files[0]), 5_000_000);
    eprintln!(
        "peak RSS for 5M MariaDB rows into the store: {} MB",
        peak_kb / 1024
    );
    assert!(peak_kb < 300 * 1024, "peak RSS {} MB", peak_kb / 1024);
}
