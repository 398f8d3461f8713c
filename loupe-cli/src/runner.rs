//! `loupe runner`: a runner process of a deployment. It starts the same
//! assembly as `loupe-server --role runner` (`loupe_services::Deployment`),
//! from the same configuration keys, and with `--listen` (`ops_listen`)
//! serves its health and metrics. Failed runs reach the error-tracking
//! endpoint when `[error_tracking]` has a DSN.

use loupe_services::config::{self, ConfigError, field_names};
use loupe_services::{Deployment, DeploymentConfig, DeploymentError, Parts};
use tokio::signal::unix::{SignalKind, signal};

use crate::args::RunnerArgs;
use crate::failure::Failure;

/// Variables of earlier releases, read when the new one is not set.
const RENAMED: [(&str, &str); 2] = [
    ("LOUPE_METADATA", "LOUPE_METADATA_URL"),
    ("LOUPE_RESULTS", "LOUPE_RESULTS_DIR"),
];

pub(crate) async fn run(args: RunnerArgs) -> Result<(), Failure> {
    let config = configuration(&args).map_err(|e| Failure::Usage(e.to_string()))?;
    // As `loupe-server` does: failed runs and panics go to the endpoint of
    // `[error_tracking]`, flushed when this guard drops at the end.
    let _tracking = loupe_services::error_tracking::init(&config.error_tracking)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let parts = Parts {
        api: false,
        runner: true,
        scheduler: args.schedule_every.is_some(),
    };
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| Failure::Failed(format!("cannot listen for SIGTERM: {e}")))?;
    let deployment = Deployment::open(config, parts).await.map_err(|e| match e {
        DeploymentError::Config(e) => Failure::Usage(e.to_string()),
        DeploymentError::Core(e) => Failure::from(e),
        other => Failure::Failed(other.to_string()),
    })?;
    let runner = deployment.runner_config();
    // Health and metrics stay up while runs drain on shutdown.
    let ops_stop = tokio_util::sync::CancellationToken::new();
    let ops = match deployment.config.ops_listen {
        Some(address) => {
            Some(crate::ops::serve(deployment.clone(), address, ops_stop.clone()).await?)
        }
        None => None,
    };
    eprintln!(
        "loupe: runner {} started ({} workers)",
        runner.name, runner.workers
    );
    let running = deployment.start();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    eprintln!("loupe: stopping: no new runs; running ones get the grace period");
    running.shutdown().await;
    ops_stop.cancel();
    if let Some(ops) = ops {
        let _ = ops.await;
    }
    deployment.services.store().close().await;
    eprintln!("loupe: runner stopped");
    Ok(())
}

/// Defaults < `--config` file < `LOUPE_*` variables < options.
fn configuration(args: &RunnerArgs) -> Result<DeploymentConfig, ConfigError> {
    let keys = field_names::<DeploymentConfig>();
    let sources = config::sources(
        DeploymentConfig::default(),
        args.config.as_deref(),
        keys.clone(),
    );
    let mut config: DeploymentConfig = config::extract(&sources, &keys)?;
    for (old, new) in RENAMED {
        if let Ok(value) = std::env::var(old)
            && std::env::var_os(new).is_none()
        {
            eprintln!("loupe: {old} is deprecated and will be removed; set {new} instead");
            match old {
                "LOUPE_METADATA" => config.metadata_url = Some(value),
                _ => config.results_dir = Some(value.into()),
            }
        }
    }
    if let Some(url) = &args.metadata_url {
        config.metadata_url = Some(url.clone());
    }
    // An option says where results go, whatever the file said.
    if let Some(dir) = &args.results_dir {
        config.results_dir = Some(dir.clone());
        config.results_url = None;
    }
    if let Some(url) = &args.results_url {
        config.results_url = Some(url.clone());
        config.results_dir = None;
    }
    if let Some(address) = args.listen {
        config.ops_listen = Some(address);
    }
    if let Some(file) = &args.metrics_token_file {
        config.metrics_token = None;
        config.metrics_token_file = Some(file.clone());
    }
    if let Some(file) = &args.secret_key_file {
        config.secret_key = None;
        config.secret_key_file = Some(file.clone());
    }
    config
        .previous_secret_key_files
        .extend(args.previous_secret_key_files.iter().cloned());
    config.files_roots.extend(args.files_roots.iter().cloned());
    config
        .certificate_dirs
        .extend(args.certificate_dirs.iter().cloned());
    let runner = &mut config.runner;
    runner.name = args.name.clone().or(runner.name.take());
    runner.workers = args.workers.unwrap_or(runner.workers);
    runner.per_datasource = args.per_datasource.unwrap_or(runner.per_datasource);
    runner.per_user = args.per_user.unwrap_or(runner.per_user);
    runner.lease = args.lease.unwrap_or(runner.lease);
    runner.timeout = args.timeout.unwrap_or(runner.timeout);
    config.shutdown_grace = args.grace.unwrap_or(config.shutdown_grace);
    config.schedule_every = args.schedule_every.unwrap_or(config.schedule_every);
    config.check()?;
    Ok(config)
}
