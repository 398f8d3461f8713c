//! `loupe` against real PostgreSQL and MariaDB servers (see scripts/test).

use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

pub(crate) fn server() -> Option<String> {
    match std::env::var("LOUPE_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("LOUPE_TEST_POSTGRES_URL is not set: CI must run the tests through scripts/test")
        }
        Err(_) => {
            eprintln!(
                "skipped: LOUPE_TEST_POSTGRES_URL is not set (scripts/test starts PostgreSQL)"
            );
            None
        }
    }
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
    let out = loupe(&[
        "query",
        "--source",
        &url,
        "-p",
        "n:integer=3",
        "-f",
        "csv",
        "select g, g * 2 as double from generate_series(1, {{n}}) g",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "g,double\n1,2\n2,4\n3,6\n"
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

    let out = loupe(&["schema", "--source", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// Acceptance: a 5M-row result goes from PostgreSQL to the Parquet store
/// in bounded memory.
#[test]
fn five_million_rows_to_the_store_in_bounded_memory() {
    let Some(url) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args([
            "query",
            "--source",
            &url,
            "--store",
            dir.path().to_str().unwrap(),
            "select a * 1000 + b as id, (a * 1000 + b)::text as label, now() as at, (b % 2 = 0) as even, \
             (a * 1000 + b)::numeric(12, 2) / 7 as amount \
             from generate_series(0, 4999) a, generate_series(0, 999) b",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, peak_kb) = wait_with_peak_rss(child);
    assert!(status.success());
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(files.len(), 1);
    let reader = loupe_core::deps::parquet::file::reader::SerializedFileReader::new(
        std::fs::File::open(files[0].path()).unwrap(),
    )
    .unwrap();
    use loupe_core::deps::parquet::file::reader::FileReader;
    assert_eq!(reader.metadata().file_metadata().num_rows(), 5_000_000);
    eprintln!("peak RSS for 5M rows into the store: {} MB", peak_kb / 1024);
    assert!(peak_kb < 300 * 1024, "peak RSS {} MB", peak_kb / 1024);
}

fn mysql_server() -> Option<String> {
    match std::env::var("LOUPE_TEST_MYSQL_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("LOUPE_TEST_MYSQL_URL is not set: CI must run the tests through scripts/test")
        }
        Err(_) => {
            eprintln!("skipped: LOUPE_TEST_MYSQL_URL is not set (scripts/test starts MariaDB)");
            None
        }
    }
}

#[test]
fn query_and_schema_with_a_mysql_url() {
    let Some(url) = mysql_server() else { return };
    let out = loupe(&[
        "query",
        "--source",
        &url,
        "-p",
        "n:integer=3",
        "-f",
        "csv",
        "select seq, seq * 2 as twice from seq_1_to_10 where seq <= {{n}}",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "seq,twice\n1,2\n2,4\n3,6\n"
    );
    let out = loupe(&["schema", "--json", "--source", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Acceptance: a 5M-row MariaDB result goes to the Parquet store in
/// bounded memory.
#[test]
fn five_million_mysql_rows_to_the_store_in_bounded_memory() {
    let Some(url) = mysql_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args([
            "query",
            "--source",
            &url,
            "--store",
            dir.path().to_str().unwrap(),
            "select seq as id, concat('label-', seq) as label, now(6) as at, seq % 2 = 0 as even, \
             cast(seq / 7 as decimal(12, 2)) as amount from seq_1_to_5000000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, peak_kb) = wait_with_peak_rss(child);
    assert!(status.success());
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    use loupe_core::deps::parquet::file::reader::FileReader;
    let reader = loupe_core::deps::parquet::file::reader::SerializedFileReader::new(
        std::fs::File::open(files[0].path()).unwrap(),
    )
    .unwrap();
    assert_eq!(reader.metadata().file_metadata().num_rows(), 5_000_000);
    eprintln!(
        "peak RSS for 5M MariaDB rows into the store: {} MB",
        peak_kb / 1024
    );
    assert!(peak_kb < 300 * 1024, "peak RSS {} MB", peak_kb / 1024);
}
