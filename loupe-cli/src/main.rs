//! `loupe`: run SQL against Loupe datasources from a shell.
//!
//! Exit status: 0 when the command did its job (also when the reader of the
//! output went away, as with `| head`), 1 when the query ran and failed, 2
//! for a usage or configuration error.

mod admin;
mod args;
mod commands;
mod failure;
mod ops;
mod output;
mod runner;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loupe: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let handles_signals = matches!(cli.command, args::Command::Runner(_));
    let outcome = runtime.block_on(async {
        if handles_signals {
            // The runner shuts down gracefully on its own signals.
            return commands::run(cli).await;
        }
        tokio::select! {
            outcome = commands::run(cli) => outcome,
            // Dropping the running command cancels its statement.
            _ = tokio::signal::ctrl_c() => Err(failure::Failure::Interrupted),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}
