//! `loupe runner`: a runner process over a shared metadata store.

use std::sync::Arc;

use loupe_core::meta::MetadataStore;
use loupe_core::runner::{Runner, RunnerConfig, Scheduler};
use loupe_core::services::{KeyRing, Services, ServicesConfig};
use loupe_core::{Limits, ParquetResultStore, ResultStore};
use tokio::signal::unix::{SignalKind, signal};

use crate::args::RunnerArgs;
use crate::commands::Failure;

pub(crate) async fn run(args: RunnerArgs) -> Result<(), Failure> {
    let secret_keys = match &args.secret_key_file {
        Some(path) => {
            let key = std::fs::read_to_string(path)
                .map_err(|e| Failure::Usage(format!("secret key file {}: {e}", path.display())))?;
            Some(KeyRing::new(&key.trim().to_owned().into(), &[])?)
        }
        None => None,
    };
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| Failure::Failed(format!("cannot listen for SIGTERM: {e}")))?;
    let store = MetadataStore::open(&args.metadata).await?;
    let results: Arc<dyn ResultStore> = Arc::new(ParquetResultStore::open(&args.results)?);
    let config = ServicesConfig {
        secret_keys,
        ..ServicesConfig::default()
    };
    let services = Services::new(
        store.clone(),
        loupe_connectors::registry(),
        config,
        Some(results.clone()),
    )?;
    let defaults = RunnerConfig::default();
    let config = RunnerConfig {
        name: args.name.unwrap_or(defaults.name.clone()),
        workers: args.workers.max(1),
        per_datasource: args.per_datasource.max(1),
        per_user: args.per_user.max(1),
        lease: args.lease,
        grace: args.grace,
        limits: Limits::NONE.with_timeout(args.timeout),
        ..defaults
    };
    eprintln!(
        "loupe: runner {} started ({} workers)",
        config.name, config.workers
    );
    let runner = Runner::new(&services, results, config).start();
    let scheduler = args
        .schedule_every
        .map(|every| Scheduler::new(&services, every).start());
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    eprintln!("loupe: stopping: no new runs; running ones get the grace period");
    if let Some(scheduler) = scheduler {
        scheduler.shutdown().await;
    }
    runner.shutdown().await;
    store.close().await;
    eprintln!("loupe: runner stopped");
    Ok(())
}
