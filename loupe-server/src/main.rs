//! `loupe-server`: config -> prepare -> serve until SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use loupe_server::config::Config;
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
    // poem's TLS brings aws-lc-rs beside the connectors' ring; one
    // process-wide choice keeps every rustls user on ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let mut config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loupe-server: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(role) = args.role {
        config.server.role = role;
    }
    if args.print_config {
        print!("{}", config.to_masked_toml());
        return ExitCode::SUCCESS;
    }
    let telemetry = match loupe_server::telemetry::init(&config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loupe-server: {e}");
            return ExitCode::from(2);
        }
    };
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
    let status = runtime.block_on(async {
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
    });
    telemetry.shutdown();
    status
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
