//! What `loupe query` writes, as a shell pipeline sees it: a reader that
//! goes away early, and CSV cells a spreadsheet would run as formulas.

use std::io::Read;
use std::process::{Command, Stdio};

use super::{assert_success, query, sample, text};

/// Far more than a pipe's buffer (64 KiB on Linux) in every format, in
/// batches larger than the CSV writer's buffer (where the closed pipe used
/// to surface as a bare message): 20,000 rows with a random number, which
/// does not compress.
const BIG_SQL: &str = "select o.*, random() as noise from orders o";

/// `loupe query … -f csv | head -1` printed `loupe: internal error: Csv
/// error: Broken pipe` and exited 1: the CSV writer keeps only the message
/// of the I/O error. A reader that goes away is not a failure, in any
/// format: exit 0, nothing on stderr.
#[test]
fn a_reader_that_goes_away_early_ends_the_output_quietly() {
    for format in ["table", "csv", "json", "ndjson", "parquet", "arrow", "xlsx"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_loupe"))
            .args([
                "query",
                "--source",
                sample().to_str().unwrap(),
                "--format",
                format,
                "--preview-rows",
                "5000",
                BIG_SQL,
            ])
            .env_remove("LOUPE_SOURCE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read the start of the output, as `head -1` does, and go away.
        let mut stdout = child.stdout.take().unwrap();
        let mut start = [0u8; 64];
        stdout.read_exact(&mut start).unwrap();
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        assert_eq!(text(&out.stderr), "", "{format}: nothing on stderr");
        assert_eq!(out.status.code(), Some(0), "{format}: exit 0");
    }
}

const PAYLOADS_SQL: &str = "select '=HYPERLINK(\"http://evil.test\",\"open\")' as link, \
                            '@SUM(1)' as at, '-1.5' as text_number, -1.5 as number";

/// CSV text cells that a spreadsheet would run are escaped by default, as
/// in the server's downloads; `--csv-formulas keep` writes them as they
/// are for programs. Numbers never change.
#[test]
fn csv_escapes_formulas_unless_asked_to_keep_them() {
    let escaped = query(&["-f", "csv", PAYLOADS_SQL]);
    assert_success(&escaped);
    assert_eq!(
        text(&escaped.stdout),
        "link,at,text_number,number\n\"'=HYPERLINK(\"\"http://evil.test\"\",\"\"open\"\")\",'@SUM(1),-1.5,-1.5\n"
    );
    let kept = query(&["-f", "csv", "--csv-formulas", "keep", PAYLOADS_SQL]);
    assert_success(&kept);
    assert_eq!(
        text(&kept.stdout),
        "link,at,text_number,number\n\"=HYPERLINK(\"\"http://evil.test\"\",\"\"open\"\")\",@SUM(1),-1.5,-1.5\n"
    );
    let wrong = query(&["-f", "csv", "--csv-formulas", "sometimes", PAYLOADS_SQL]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        text(&wrong.stderr).contains("escape, keep"),
        "{}",
        text(&wrong.stderr)
    );
}
