//! `loupe-server`: arguments -> configuration -> serve until SIGTERM or
//! Ctrl-C, or run a maintenance command (`migrate`, `backup`, `restore`;
//! see the `cli` module).

use std::process::ExitCode;

use clap::Parser;
use loupe_server::cli::{self, Args};

fn main() -> ExitCode {
    // poem's TLS brings aws-lc-rs beside the connectors' ring; one
    // process-wide choice keeps every rustls user on ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut args = Args::parse();
    let config = match args.load_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loupe-server: {e}");
            return ExitCode::from(2);
        }
    };
    match args.command.take() {
        Some(command) => cli::run(command, config),
        None if args.print_config => {
            print!("{}", config.to_masked_toml());
            ExitCode::SUCCESS
        }
        None => cli::serve(config),
    }
}
