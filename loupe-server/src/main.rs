//! `loupe-server`: config -> prepare -> serve until SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use loupe_server::config::{Config, LogFormat};
use loupe_server::{Server, ServerRole};

/// Loupe's HTTP server: the API, the runner and the scheduler.
#[derive(Debug, Parser)]
#[command(name = "loupe-server", version)]
struct Args {
    /// A TOML configuration file; `LOUPE_*` environment variables override it.
    #[arg(long, short, env = "LOUPE_CONFIG")]
    config: Option<PathBuf>,
    /// What this process runs (overrides `role`).
    #[arg(long, value_enum)]
    role: Option<ServerRole>,
    /// Print the effective configuration, secrets masked, and exit.
    #[arg(long)]
    print_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loupe-server: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(role) = args.role {
        config.role = role;
    }
    if args.print_config {
        print!("{}", config.to_masked_toml());
        return ExitCode::SUCCESS;
    }
    init_logs(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loupe-server: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async {
        let server = match Server::prepare(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("loupe-server: {e}");
                return ExitCode::from(2);
            }
        };
        match server.run(signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("loupe-server: {e}");
                ExitCode::from(1)
            }
        }
    })
}

async fn signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("loupe-server: cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn init_logs(config: &Config) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_filter));
    let json = match config.log_format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().with_current_span(true).init();
    } else {
        builder.init();
    }
}
