//! `loupe-server backup` and `loupe-server restore`: one archive of the
//! metadata (SQLite), results and keys, taken while the server runs; with
//! PostgreSQL metadata, `pg_dump -Fc` plus `backup --results-only`. The
//! rules (what is consistent, what is accepted back) are
//! `loupe_services::backup`'s.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use loupe_services::backup::{self, BackupError, MetadataCopy};

use super::{FAILED, USAGE, fail, say};
use crate::config::Config;

/// What `backup` writes.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The archive to write (a new file; tar).
    #[arg(long, short)]
    pub output: PathBuf,
    /// Only the results and keys, for metadata in PostgreSQL, which
    /// `pg_dump -Fc` backs up: run it after the dump.
    #[arg(long)]
    pub results_only: bool,
}

/// What `restore` reads.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The archive `loupe-server backup` wrote.
    #[arg(long, short)]
    pub input: PathBuf,
}

pub(super) async fn backup(config: &Config, args: &BackupArgs) -> ExitCode {
    let started = Instant::now();
    let report = match backup::backup(&config.deployment, &args.output, args.results_only).await {
        Ok(report) => report,
        Err(e) => return failed(e),
    };
    let manifest = &report.manifest;
    let keys = manifest
        .files
        .iter()
        .filter(|f| f.path.starts_with("keys/"))
        .count();
    say(format!(
        "backed up {}{} results and {keys} key files (schema version {}) to {}: {} bytes in {:.1} s",
        match manifest.metadata {
            MetadataCopy::Sqlite => "the metadata, ",
            MetadataCopy::Separate => "",
        },
        report.results,
        manifest.schema_version,
        args.output.display(),
        report.archive_bytes,
        started.elapsed().as_secs_f64(),
    ));
    if report.attempts > 1 {
        say(format!(
            "results were deleted while the backup ran; it took {} snapshots",
            report.attempts
        ));
    }
    for key in &manifest.keys_elsewhere {
        say(format!(
            "not in the backup: {key}; keep it safe apart, as without the secret key the datasource secrets cannot be opened"
        ));
    }
    ExitCode::SUCCESS
}

pub(super) async fn restore(config: &Config, args: &RestoreArgs) -> ExitCode {
    let report = match backup::restore(&config.deployment, &args.input).await {
        Ok(report) => report,
        Err(e) => return failed(e),
    };
    let manifest = &report.manifest;
    say(format!(
        "restored {}{} results and {} key files (schema version {}, backed up by Loupe {}) into {}",
        match manifest.metadata {
            MetadataCopy::Sqlite => "the metadata, ",
            MetadataCopy::Separate => "",
        },
        report.results,
        report.keys,
        manifest.schema_version,
        manifest.loupe_version,
        config.deployment.data_dir.display(),
    ));
    if report.dropped_runs > 0 {
        say(format!(
            "dropped {} runs of the dump whose results were deleted after it was taken",
            report.dropped_runs
        ));
    }
    for key in &manifest.keys_elsewhere {
        say(format!(
            "the backed-up deployment took {key}: configure the same here"
        ));
    }
    ExitCode::SUCCESS
}

fn failed(e: BackupError) -> ExitCode {
    match e {
        BackupError::Config(_) | BackupError::Refused(_) => fail(USAGE, e),
        _ => fail(FAILED, e),
    }
}
