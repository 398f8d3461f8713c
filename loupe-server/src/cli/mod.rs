//! The `loupe-server` command line: serving (the default), and the
//! operator's maintenance commands, `migrate`, `backup` and `restore`,
//! each in a module of its own. Every command reads the same
//! configuration as the server (`--config`, `LOUPE_*`).
//!
//! Exit status: 0 success; 1 the command ran and failed; 2 a usage or
//! configuration error (including a request refused as asked, such as a
//! restore into a directory that is not empty); 3 `migrate --check` found
//! pending migrations.

mod backup;
mod migrate;

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use loupe_services::MigrateMode;

use crate::config::Config;
use crate::{Server, ServerRole};

/// The command ran and failed.
const FAILED: u8 = 1;
/// A usage or configuration error.
const USAGE: u8 = 2;
/// `migrate --check`: migrations are pending.
const PENDING: u8 = 3;

/// Loupe's HTTP server: the API, the runner and the scheduler; and the
/// commands that migrate, back up and restore its storage.
#[derive(Debug, clap::Parser)]
#[command(name = "loupe-server", version)]
pub struct Args {
    /// A TOML configuration file; `LOUPE_*` environment variables override it.
    #[arg(long, short, env = "LOUPE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// What this process runs (overrides `role`).
    #[arg(long, value_enum)]
    pub role: Option<ServerRole>,
    /// Apply pending metadata migrations at start (`auto`), or refuse to
    /// start until `loupe-server migrate` has (`never`); overrides `migrate`.
    #[arg(long, value_parser = PossibleValuesParser::new(["auto", "never"])
        .map(|mode| if mode == "never" { MigrateMode::Never } else { MigrateMode::Auto }))]
    pub migrate: Option<MigrateMode>,
    /// Print the effective configuration, secrets masked, and exit.
    #[arg(long)]
    pub print_config: bool,
    /// A maintenance command instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The maintenance commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Apply pending metadata migrations and exit; or check for them, or
    /// revert the last few.
    Migrate(migrate::MigrateArgs),
    /// Write a consistent backup of the metadata (SQLite), results and
    /// keys into one archive while the server runs.
    Backup(backup::BackupArgs),
    /// Restore a backup into an empty data directory.
    Restore(backup::RestoreArgs),
}

impl Args {
    /// The configuration with this command line's overrides.
    pub fn load_config(&self) -> Result<Config, String> {
        let mut config = Config::load(self.config.as_deref()).map_err(|e| e.to_string())?;
        if let Some(role) = self.role {
            config.server.role = role;
        }
        if let Some(mode) = self.migrate {
            config.deployment.migrate = mode;
        }
        Ok(config)
    }
}

/// Runs a maintenance command.
pub fn run(command: Command, config: Config) -> ExitCode {
    logs_for_commands();
    block_on(async move {
        match command {
            Command::Migrate(args) => migrate::run(&config, &args).await,
            Command::Backup(args) => backup::backup(&config, &args).await,
            Command::Restore(args) => backup::restore(&config, &args).await,
        }
    })
}

/// Serves until SIGTERM or Ctrl-C: config -> prepare -> run.
pub fn serve(config: Config) -> ExitCode {
    // Before the subscriber, which adds breadcrumbs when this is on.
    let tracking = match loupe_services::error_tracking::init(&config.deployment.error_tracking) {
        Ok(t) => t,
        Err(e) => return fail(USAGE, e),
    };
    let telemetry = match crate::telemetry::init(&config) {
        Ok(t) => t,
        Err(e) => return fail(USAGE, e),
    };
    let status = block_on(async {
        let server = match Server::prepare(config).await {
            Ok(s) => s,
            Err(e) => return fail(USAGE, e),
        };
        match server.run(signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(FAILED, e),
        }
    });
    telemetry.shutdown();
    drop(tracking);
    status
}

/// Prints `loupe-server: {message}` and returns `status`.
fn fail(status: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("loupe-server: {message}");
    ExitCode::from(status)
}

/// Prints `loupe-server: {message}`.
fn say(message: impl std::fmt::Display) {
    eprintln!("loupe-server: {message}");
}

fn block_on(work: impl Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(work),
        Err(e) => fail(FAILED, format!("cannot start the async runtime: {e}")),
    }
}

/// Warnings of the libraries as text on stderr, next to the command's own
/// messages (`RUST_LOG` shows more).
fn logs_for_commands() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            say(format!("cannot listen for SIGTERM: {e}"));
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
