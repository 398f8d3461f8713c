//! Command-line arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run SQL against Loupe datasources: a folder of CSV/Parquet/JSON/Arrow
/// files, or a database URL.
#[derive(Debug, Parser)]
#[command(name = "loupe", version, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a query and print or save its result.
    Query(QueryArgs),
    /// List the datasource kinds built into this program.
    Sources,
    /// Print the tables and columns of a datasource.
    Schema(SchemaArgs),
    /// Execute queued runs from a metadata store until stopped (SIGTERM or
    /// Ctrl-C: stop claiming, let running runs finish within the grace
    /// period, hand the rest back to the queue).
    Runner(RunnerArgs),
    /// Administer the instance a deployment serves: its organizations.
    /// Reads the same configuration as `loupe-server` (`--config`,
    /// `LOUPE_*`) and works on its metadata store directly.
    Admin(AdminArgs),
}

/// `loupe admin`: the operator's commands, above every organization.
#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    /// A TOML configuration file, the same as the server's.
    #[arg(long, short, env = "LOUPE_CONFIG", value_name = "PATH", global = true)]
    pub(crate) config: Option<PathBuf>,

    /// The metadata store (`metadata_url`, `LOUPE_METADATA_URL`); without
    /// it, the SQLite file in `data_dir`.
    #[arg(long, value_name = "URL", global = true)]
    pub(crate) metadata_url: Option<String>,

    #[command(subcommand)]
    pub(crate) command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Organizations: create, list, disable, enable.
    #[command(subcommand)]
    Org(OrgCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum OrgCommand {
    /// Create an organization with its first admin; prints its id and slug.
    Create(OrgCreateArgs),
    /// List every organization: id, slug, status and name.
    List,
    /// Disable an organization: its users cannot sign in and its tokens
    /// and API keys are refused at once. Nothing is deleted.
    Disable {
        /// The organization's id or slug.
        #[arg(value_name = "ID|SLUG")]
        org: String,
    },
    /// Enable a disabled organization again.
    Enable {
        /// The organization's id or slug.
        #[arg(value_name = "ID|SLUG")]
        org: String,
    },
}

/// `loupe admin org create`.
#[derive(Debug, Args)]
pub(crate) struct OrgCreateArgs {
    /// The organization's name.
    #[arg(long, value_name = "NAME")]
    pub(crate) name: String,

    /// The first admin's email.
    #[arg(long, value_name = "EMAIL")]
    pub(crate) admin_email: String,

    /// The first admin's display name (default: the email's local part).
    #[arg(long, value_name = "NAME")]
    pub(crate) admin_name: Option<String>,

    /// A file holding the first admin's password (`-` reads standard
    /// input); a password never goes on the command line, where other
    /// users of the machine could read it.
    #[arg(long, value_name = "PATH")]
    pub(crate) admin_password_file: PathBuf,
}

/// `loupe runner`: the same settings as `loupe-server` (one TOML file, the
/// same `LOUPE_*` variables); these options override both.
#[derive(Debug, Args)]
pub(crate) struct RunnerArgs {
    /// A TOML configuration file, the same as the server's.
    #[arg(long, short, env = "LOUPE_CONFIG", value_name = "PATH")]
    pub(crate) config: Option<PathBuf>,

    /// The metadata store: a postgres:// URL shared with the other runners
    /// and servers (`metadata_url`, `LOUPE_METADATA_URL`).
    #[arg(long, visible_alias = "metadata", value_name = "URL")]
    pub(crate) metadata_url: Option<String>,

    /// Where results are stored (`results_dir`, `LOUPE_RESULTS_DIR`).
    #[arg(long, visible_alias = "results", value_name = "DIR")]
    pub(crate) results_dir: Option<PathBuf>,

    /// Store results in an S3-compatible object store shared with the
    /// other processes, `s3://bucket/prefix` (`results_url`,
    /// `LOUPE_RESULTS_URL`); reached as `[s3]` (`LOUPE_S3__ENDPOINT`, ...)
    /// or the `AWS_*` variables say.
    #[arg(long, value_name = "URL", conflicts_with = "results_dir")]
    pub(crate) results_url: Option<String>,

    /// A file holding the key that opens datasource secrets (32 bytes,
    /// base64; `secret_key_file`, `LOUPE_SECRET_KEY_FILE`). Without a key,
    /// only datasources without secrets run.
    #[arg(long, value_name = "PATH")]
    pub(crate) secret_key_file: Option<PathBuf>,

    /// A file holding a previous key, still accepted while keys rotate
    /// (`previous_secret_key_files`); repeat for several.
    #[arg(long = "previous-secret-key-file", value_name = "PATH")]
    pub(crate) previous_secret_key_files: Vec<PathBuf>,

    /// A directory under which `files` datasources may have their root
    /// (`files_roots`); repeat for several.
    #[arg(long = "files-root", value_name = "DIR")]
    pub(crate) files_roots: Vec<PathBuf>,

    /// A directory from which database datasources may read a CA file
    /// (`certificate_dirs`); repeat for several.
    #[arg(long = "certificate-dir", value_name = "DIR")]
    pub(crate) certificate_dirs: Vec<PathBuf>,

    /// This runner's name in the queue (`runner.name`).
    #[arg(long, value_name = "NAME")]
    pub(crate) name: Option<String>,

    /// Runs executed at once (`runner.workers`, default 4).
    #[arg(long, value_name = "N")]
    pub(crate) workers: Option<usize>,

    /// Runs of one datasource executing at once, across all runners
    /// (`runner.per_datasource`, default 4).
    #[arg(long, value_name = "N")]
    pub(crate) per_datasource: Option<usize>,

    /// Runs of one user executing at once, across all runners
    /// (`runner.per_user`, default 4).
    #[arg(long, value_name = "N")]
    pub(crate) per_user: Option<usize>,

    /// How long a claim lasts without renewal; a runner that dies loses
    /// its runs to another after this (`runner.lease`, default 30s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) lease: Option<Duration>,

    /// On shutdown, how long running runs may take to finish
    /// (`shutdown_grace`, default 30s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) grace: Option<Duration>,

    /// The longest a run may take (`runner.timeout`, default 30m).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) timeout: Option<Duration>,

    /// Also fire due schedules and apply retention, checking every this
    /// long (`schedule_every`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) schedule_every: Option<Duration>,

    /// Serve `/health/live`, `/health/ready` and `/metrics` on this
    /// address (`ops_listen`); without it, none are served.
    #[arg(long, visible_alias = "ops-listen", value_name = "ADDR")]
    pub(crate) listen: Option<std::net::SocketAddr>,

    /// A file holding the bearer token `/metrics` requires
    /// (`metrics_token_file`).
    #[arg(long, value_name = "PATH")]
    pub(crate) metrics_token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct QueryArgs {
    /// Datasource: a directory of data files, or a URL (postgres://…).
    #[arg(long, short, env = "LOUPE_SOURCE", value_name = "DIR|URL")]
    pub(crate) source: String,

    /// A parameter for a `{{ name }}` placeholder. Types: text (default),
    /// integer, number, boolean, date, datetime, date_range. Repeat a name to
    /// give a list.
    #[arg(long = "param", short = 'p', value_name = "NAME[:TYPE]=VALUE")]
    pub(crate) params: Vec<String>,

    /// Output format.
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Table)]
    pub(crate) format: OutputFormat,

    /// Write the result to this file instead of standard output.
    #[arg(long, short, value_name = "PATH")]
    pub(crate) output: Option<PathBuf>,

    /// Stop after this many rows (the result says it was truncated).
    #[arg(long, value_name = "N")]
    pub(crate) max_rows: Option<u64>,

    /// Stop after this much Arrow data, such as 500MB or 2GiB.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) max_bytes: Option<u64>,

    /// Fail the query after this long, such as 30s or 5m.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) timeout: Option<Duration>,

    /// Rows shown by the table format.
    #[arg(long, value_name = "N", default_value_t = 40)]
    pub(crate) preview_rows: usize,

    /// What CSV output does with text cells a spreadsheet would run as a
    /// formula (starting with =, +, -, @, a tab or a carriage return):
    /// `escape` prefixes them with ' so that a spreadsheet shows them as
    /// text; `keep` writes them as they are, for programs that read the
    /// CSV. Numbers are never changed.
    #[arg(
        long,
        value_name = "escape|keep",
        default_value = "escape",
        value_parser = crate::output::csv_formulas
    )]
    pub(crate) csv_formulas: loupe_core::CsvFormulas,

    /// Keep the result in a Loupe result store (a directory or an object
    /// store URL) instead of printing it; prints the result's id.
    #[arg(long, value_name = "DIR|URL", conflicts_with_all = ["output", "format"])]
    pub(crate) store: Option<String>,

    /// Read the SQL from this file.
    #[arg(long, value_name = "PATH", conflicts_with = "sql")]
    pub(crate) file: Option<PathBuf>,

    /// The SQL to run; `-` or nothing reads it from standard input.
    pub(crate) sql: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct SchemaArgs {
    /// Datasource: a directory of data files, or a URL (postgres://…).
    #[arg(long, short, env = "LOUPE_SOURCE", value_name = "DIR|URL")]
    pub(crate) source: String,

    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// How `loupe query` writes its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// An aligned preview of the first rows, and the row count.
    Table,
    /// Comma-separated values with a header.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// Apache Parquet (binary).
    Parquet,
    /// Apache Arrow IPC file (binary).
    Arrow,
    /// Excel workbook with typed cells (binary).
    Xlsx,
}

/// Parses `1000`, `64KB`, `500MB`, `2GiB` into bytes (KB = 1000, KiB = 1024).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| {
        format!("{text:?} is not a size; write a number with an optional unit, like 500MB")
    })?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown size unit {other:?}; use B, KB, MB, GB, KiB, MiB or GiB"
            ));
        }
    };
    let bytes = number * factor;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("64KB"), Ok(64_000));
        assert_eq!(parse_size("1.5 MiB"), Ok(1_572_864));
        assert_eq!(parse_size("2GiB"), Ok(2 * 1024 * 1024 * 1024));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn arguments_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
