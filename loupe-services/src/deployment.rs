//! One assembly of the application, the same in every host: from a
//! [`DeploymentConfig`] to open stores, the key ring (with the previous keys
//! of a rotation), the connectors (with `files` datasources confined to
//! `files_roots`), the services, and the runner, scheduler and retention a
//! process runs. `loupe-server` and `loupe runner` both start this, so a
//! rule set here holds in every process of a deployment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use loupe_core::{DatasourceOptions, Limits, ParquetResultStore, Registry, ResultStore};
use secrecy::SecretString;

use crate::config::{ConfigError, DeploymentConfig, expose, read_secret};
use crate::deliveries::{DeliveryConfig, Dispatcher, DispatcherHandle};
use crate::delivery::Outbound;
use crate::egress::Egress;
use crate::links::LinkKey;
use crate::meta::{ListRequest, MetadataStore};
use crate::runner::{
    Alive, Retention, RetentionHandle, Runner, RunnerConfig, RunnerHandle, Scheduler,
    SchedulerHandle,
};
use crate::{
    Access, DatasourceInput, EVERYONE, KeyRing, Services, ServicesConfig, SessionConfig, Setup,
    SigningKey, User,
};

/// Which parts of the application a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    /// Serves the API: signs sessions, makes the first admin, may generate
    /// the secret keys.
    pub api: bool,
    /// Executes queued runs.
    pub runner: bool,
    /// Fires schedules and applies retention.
    pub scheduler: bool,
}

impl Parts {
    /// Everything in one process: the embedded default.
    pub const ALL: Self = Self {
        api: true,
        runner: true,
        scheduler: true,
    };

    /// True when this process runs every part, so nothing needs to be
    /// shared with another process.
    pub fn is_all(self) -> bool {
        self == Self::ALL
    }
}

/// A deployment that could not be opened; the message names the cause.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// The configuration is not valid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A store or a secret could not be opened.
    #[error("{0}")]
    Core(#[from] loupe_core::Error),
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DeploymentError {
    let what = what.into();
    move |source| DeploymentError::Io { what, source }
}

/// What a first start found or did.
#[derive(Debug, Clone, PartialEq)]
pub enum FirstStart {
    /// An organization exists already.
    Done,
    /// The first organization and its admin were made from the
    /// configuration (and the sample datasource registered).
    Created(User),
    /// No admin is configured: a host must let someone create one.
    NeedsSetup,
}

/// The opened application: services over the metadata store, the result
/// store, and the configuration they were built from.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Every business rule.
    pub services: Services,
    /// Where results live.
    pub results: Arc<dyn ResultStore>,
    /// The configuration in effect.
    pub config: Arc<DeploymentConfig>,
    parts: Parts,
    metrics_token: Option<SecretString>,
    loops: Arc<Loops>,
}

/// The background loops this process started, for readiness.
#[derive(Debug, Default)]
struct Loops {
    runner: std::sync::OnceLock<Alive>,
    scheduler: std::sync::OnceLock<Alive>,
    stopping: AtomicBool,
}

/// Whether a process can do its work, check by check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// True when every check passed.
    pub ready: bool,
    /// Each check and what it found: `ok`, or what is wrong.
    pub checks: BTreeMap<&'static str, String>,
}

impl Readiness {
    fn check(&mut self, name: &'static str, problem: Option<String>) {
        self.ready &= problem.is_none();
        self.checks
            .insert(name, problem.unwrap_or_else(|| "ok".to_owned()));
    }
}

impl Deployment {
    /// Checks `config` and opens everything it names for the `parts` this
    /// process runs: the metadata store (migrated), the result store, the
    /// key ring and, for the API, the signing key.
    ///
    /// # Errors
    /// A [`DeploymentError`] naming the key or the file at fault.
    pub async fn open(config: DeploymentConfig, parts: Parts) -> Result<Self, DeploymentError> {
        config.check()?;
        if !parts.is_all() && !config.shares_metadata() {
            return Err(ConfigError::from(
                "`metadata_url`: separate api, runner and scheduler processes share a PostgreSQL metadata_url; set it to postgres://…"
                    .to_owned(),
            )
            .into());
        }
        // A process that keeps nothing on this machine (PostgreSQL
        // metadata, results elsewhere, keys given) makes no data directory.
        if config.metadata_url.is_none() || config.results_in_data_dir() || parts.api {
            private_dir(&config.data_dir)?;
        }
        let keys = key_ring(&config, parts)?;
        let sessions = match parts.api {
            true => Some(SessionConfig {
                key: signing_key(&config)?,
                access_ttl: config.access_token_ttl,
                refresh_ttl: config.refresh_token_ttl,
            }),
            false => None,
        };
        let deliveries = delivery_config(&config, parts)?;
        let results = result_store(&config).await?;
        let store = MetadataStore::open_with(&config.metadata_url(), config.migrate).await?;
        let services = Services::new(
            store,
            connectors(&config),
            ServicesConfig {
                secret_keys: keys,
                login_backoff_threshold: config.login_backoff_threshold,
                login_backoff_max: config.login_backoff_max,
                sessions,
                min_schedule_interval: config.quotas.min_schedule_interval,
                enabled_schedules_per_user: config.quotas.enabled_schedules_per_user,
                queued_runs_per_user: config.quotas.queued_runs_per_user,
                deliveries,
                sharing: config.sharing.clone(),
                ..ServicesConfig::default()
            },
            Some(results.clone()),
        )?;
        let metrics_token = config.metrics_token()?;
        Ok(Self {
            services,
            results,
            config: Arc::new(config),
            parts,
            metrics_token,
            loops: Arc::default(),
        })
    }

    /// Whether a request with this `Authorization` header value may read
    /// `/metrics`: always without a configured `metrics_token`, else only
    /// with `Bearer <token>`.
    pub fn metrics_allowed(&self, authorization: Option<&str>) -> bool {
        crate::ops::metrics_allowed(self.metrics_token.as_ref(), authorization)
    }

    /// Whether this process can do its work: the metadata database answers
    /// with every migration applied, the result store takes writes, the
    /// runner and scheduler it runs are running, and shutdown has not
    /// begun.
    pub async fn readiness(&self) -> Readiness {
        let mut readiness = Readiness {
            ready: true,
            checks: BTreeMap::new(),
        };
        if self.loops.stopping.load(Ordering::SeqCst) {
            readiness.check("shutdown", Some("in progress".to_owned()));
        }
        let known = MetadataStore::known_version();
        let metadata = match self.services.store().schema_version().await {
            Ok(v) if v == known => None,
            Ok(v) => Some(format!("schema version {v}, expected {known}")),
            Err(e) => {
                tracing::warn!(error = %e, "readiness: metadata database");
                Some("unreachable".to_owned())
            }
        };
        readiness.check("metadata", metadata);
        let results = self.results.check_writable().await.err().map(|e| {
            tracing::warn!(error = %e, "readiness: result store");
            "not writable".to_owned()
        });
        readiness.check("results", results);
        for (name, runs, alive) in [
            ("runner", self.parts.runner, &self.loops.runner),
            ("scheduler", self.parts.scheduler, &self.loops.scheduler),
        ] {
            if runs {
                let problem = match alive.get() {
                    Some(alive) if alive.is_alive() => None,
                    Some(_) => Some("stopped".to_owned()),
                    None => Some("not started".to_owned()),
                };
                readiness.check(name, problem);
            }
        }
        readiness
    }

    /// The parts this process runs.
    pub fn parts(&self) -> Parts {
        self.parts
    }

    /// How this deployment's runners execute runs.
    pub fn runner_config(&self) -> RunnerConfig {
        let settings = &self.config.runner;
        let defaults = RunnerConfig::default();
        let mut limits = Limits::NONE.with_timeout(settings.timeout);
        if settings.max_rows > 0 {
            limits = limits.with_max_rows(settings.max_rows);
        }
        if settings.max_bytes > 0 {
            limits = limits.with_max_bytes(settings.max_bytes);
        }
        RunnerConfig {
            name: settings.name.clone().unwrap_or(defaults.name.clone()),
            workers: settings.workers,
            per_datasource: settings.per_datasource,
            per_user: settings.per_user,
            lease: settings.lease,
            grace: self.config.shutdown_grace,
            limits,
            ..defaults
        }
    }

    /// The retention policy (on by default), unless every part of it is
    /// turned off.
    pub fn retention(&self) -> Option<Retention> {
        let settings = &self.config.retention;
        let age = |d: std::time::Duration| (!d.is_zero()).then_some(d);
        let policy = Retention {
            max_age: age(settings.max_age),
            keep_per_query: (settings.keep_per_query > 0).then_some(settings.keep_per_query),
            audit_max_age: age(settings.audit_max_age),
            prune_tokens: settings.prune_tokens,
        };
        (policy.max_age.is_some()
            || policy.keep_per_query.is_some()
            || policy.audit_max_age.is_some()
            || policy.prune_tokens)
            .then_some(policy)
    }

    /// Starts the runner, the scheduler and retention, as far as this
    /// process runs them.
    pub fn start(&self) -> Running {
        let runner_config = self.runner_config();
        // Notifications are built and sent where runs execute: both read
        // stored results.
        let dispatcher = self.parts.runner.then(|| {
            Dispatcher::new(
                &self.services,
                &runner_config.name,
                self.config.deliveries.every,
            )
            .start()
        });
        let runner = self
            .parts
            .runner
            .then(|| Runner::new(&self.services, self.results.clone(), runner_config).start());
        let scheduler = self
            .parts
            .scheduler
            .then(|| Scheduler::new(&self.services, self.config.schedule_every).start());
        if let Some(runner) = &runner {
            let _ = self.loops.runner.set(runner.alive());
        }
        if let Some(scheduler) = &scheduler {
            let _ = self.loops.scheduler.set(scheduler.alive());
        }
        self.loops.stopping.store(false, Ordering::SeqCst);
        let retention = self
            .parts
            .scheduler
            .then(|| self.retention())
            .flatten()
            .map(|policy| {
                policy.start(
                    &self.services,
                    self.results.clone(),
                    self.config.retention.every,
                )
            });
        Running {
            runner,
            scheduler,
            retention,
            dispatcher,
            loops: self.loops.clone(),
        }
    }

    /// A first start: when no organization exists, makes the first one and
    /// its admin from `admin_email` and `admin_password`, and registers the
    /// sample datasource; without them, says that set-up is needed.
    ///
    /// # Errors
    /// A configuration error when only one of the two is set.
    pub async fn first_start(&self) -> Result<FirstStart, DeploymentError> {
        if self.services.organizations.count().await? > 0 {
            return Ok(FirstStart::Done);
        }
        match (&self.config.admin_email, self.config.admin_password()?) {
            (Some(email), Some(password)) => {
                let (_, admin) = self
                    .services
                    .organizations
                    .create_with_admin(Setup {
                        org_name: self.config.org_name.clone(),
                        admin_email: email.clone(),
                        admin_name: self.config.admin_name.clone(),
                        admin_password: password,
                    })
                    .await?;
                tracing::info!(email = %admin.email, "created the first admin");
                self.register_sample(&admin.id).await?;
                Ok(FirstStart::Created(admin))
            }
            (None, None) => Ok(FirstStart::NeedsSetup),
            _ => Err(ConfigError::from(
                "set both admin_email and admin_password (LOUPE_ADMIN_EMAIL, LOUPE_ADMIN_PASSWORD) or neither"
                    .to_owned(),
            )
            .into()),
        }
    }

    /// Registers the bundled sample dataset as a `files` datasource that
    /// everyone may run, when configured and present.
    pub async fn register_sample(&self, admin_id: &str) -> loupe_core::Result<()> {
        if !self.config.sample_datasource {
            return Ok(());
        }
        let Some(dir) = sample_dir(self.config.sample_data_dir.as_deref()) else {
            tracing::warn!("sample dataset not found; set sample_data_dir to register it");
            return Ok(());
        };
        let services = &self.services;
        let actor = services.users.actor(admin_id, None).await?;
        let mut options = DatasourceOptions::new();
        options.insert("root".into(), dir.to_string_lossy().into_owned().into());
        let datasource = services
            .datasources
            .create(
                &actor,
                DatasourceInput {
                    name: "Sample data".to_owned(),
                    kind: "files".to_owned(),
                    options,
                },
            )
            .await?;
        let everyone = services
            .groups
            .list(&actor, &ListRequest::default().filter("q", EVERYONE))
            .await?
            .items
            .into_iter()
            .find(|g| g.name == EVERYONE);
        if let Some(group) = everyone {
            services
                .groups
                .grant(&actor, &group.id, &datasource.id, Access::Run)
                .await?;
        }
        tracing::info!(root = %dir.display(), "registered the sample datasource");
        Ok(())
    }
}

/// The runner, scheduler and retention a process started.
#[derive(Debug)]
pub struct Running {
    runner: Option<RunnerHandle>,
    scheduler: Option<SchedulerHandle>,
    retention: Option<RetentionHandle>,
    dispatcher: Option<DispatcherHandle>,
    loops: Arc<Loops>,
}

impl Running {
    /// Stops scheduling, then lets running runs finish within the grace
    /// period and hands the rest back to the queue. Readiness fails from
    /// the start of it.
    pub async fn shutdown(self) {
        self.loops.stopping.store(true, Ordering::SeqCst);
        if let Some(scheduler) = self.scheduler {
            scheduler.shutdown().await;
        }
        if let Some(retention) = self.retention {
            retention.shutdown().await;
        }
        if let Some(dispatcher) = self.dispatcher {
            dispatcher.shutdown().await;
        }
        if let Some(runner) = self.runner {
            tracing::info!("stopping the runner: running runs get the grace period");
            runner.shutdown().await;
        }
    }
}

/// The result store: an object store at `results_url`, checked to take
/// writes now (a wrong bucket, endpoint or key is an error at start, not
/// at the first run), or a directory, which the store creates readable by
/// the owner only.
async fn result_store(config: &DeploymentConfig) -> Result<Arc<dyn ResultStore>, DeploymentError> {
    if let Some(url) = &config.results_url {
        let store = ParquetResultStore::open_s3(url, &config.s3.options()?)
            .map_err(|e| ConfigError::from(format!("`results_url`: {e}")))?;
        store.check_writable().await.map_err(|e| {
            let cause = std::error::Error::source(&e)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            ConfigError::from(format!(
                "`results_url`: {e}{cause}; check the bucket, s3.endpoint, s3.region and the credentials"
            ))
        })?;
        return Ok(Arc::new(store));
    }
    let dir = config.results_dir();
    let dir = dir.to_str().ok_or_else(|| {
        ConfigError::from(format!(
            "`results_dir`: {} is not valid UTF-8",
            dir.display()
        ))
    })?;
    Ok(Arc::new(ParquetResultStore::open(dir)?))
}

/// The key ring: the configured key (or the one in the data directory)
/// and every previous key. Only a process that serves the API generates a
/// key when none exists: a runner that made its own could open nothing.
fn key_ring(config: &DeploymentConfig, parts: Parts) -> Result<Option<KeyRing>, DeploymentError> {
    let path = config.data_dir.join("secret.key");
    let current = match read_secret(
        "secret_key_file",
        config.secret_key.as_ref(),
        config.secret_key_file.as_deref(),
    )? {
        Some(key) => Some(key),
        None if parts.api => Some(generated_secret(&path, KeyRing::generate_key)?),
        None => stored_secret(&path)?,
    };
    let Some(current) = current else {
        if !config.previous_secret_keys.is_empty() || !config.previous_secret_key_files.is_empty() {
            return Err(ConfigError::from(
                "`previous_secret_keys`: set secret_key (or secret_key_file) too; previous keys only open what the current key did not seal"
                    .to_owned(),
            )
            .into());
        }
        return Ok(None);
    };
    let mut previous: Vec<SecretString> = config
        .previous_secret_keys
        .iter()
        .map(|s| s.0.clone())
        .collect();
    for file in &config.previous_secret_key_files {
        if let Some(key) = read_secret("previous_secret_key_files", None, Some(file))? {
            previous.push(key);
        }
    }
    let keys = KeyRing::new(&current, &previous)
        .map_err(|e| ConfigError::from(format!("`secret_key`: {e}")))?;
    Ok(Some(keys))
}

/// The key that signs access tokens: configured, or kept in the data
/// directory.
/// How notifications are sent: the transports behind the egress rules,
/// and the key that signs their links. A process that serves the API
/// signs with the signing secret it uses (generated if need be); others
/// use the configured one, or the generated file when it is there, and
/// otherwise send notifications without signed links.
fn delivery_config(
    config: &DeploymentConfig,
    parts: Parts,
) -> Result<DeliveryConfig, DeploymentError> {
    let settings = &config.deliveries;
    let outbound = Outbound::new(
        Egress::new(config.egress.allow_private),
        settings.ca_file.as_deref(),
        settings.timeout,
    )
    .map_err(|e| ConfigError::from(format!("`deliveries.ca_file`: {e}")))?;
    let secret = match read_secret(
        "signing_secret_file",
        config.signing_secret.as_ref(),
        config.signing_secret_file.as_deref(),
    )? {
        Some(secret) => Some(secret),
        None if parts.api => Some(generated_secret(
            &config.data_dir.join("signing.key"),
            SigningKey::generate_secret,
        )?),
        None => stored_secret(&config.data_dir.join("signing.key"))?,
    };
    let link_key = secret
        .map(|s| LinkKey::derive(expose(&s).as_bytes()))
        .transpose()
        .map_err(|e| ConfigError::from(format!("`signing_secret`: {e}")))?;
    Ok(DeliveryConfig {
        outbound: Some(outbound),
        link_key,
        public_url: config.public_url.clone(),
        attachment_max_bytes: settings.attachment_max_bytes,
        link_ttl: settings.link_ttl,
        max_attempts: settings.max_attempts,
        retry_after: settings.retry_after,
        preview_rows: settings.preview_rows,
    })
}

fn signing_key(config: &DeploymentConfig) -> Result<SigningKey, DeploymentError> {
    let secret = match read_secret(
        "signing_secret_file",
        config.signing_secret.as_ref(),
        config.signing_secret_file.as_deref(),
    )? {
        Some(secret) => secret,
        None => generated_secret(
            &config.data_dir.join("signing.key"),
            SigningKey::generate_secret,
        )?,
    };
    SigningKey::new(&secret).map_err(|e| ConfigError::from(format!("`signing_secret`: {e}")).into())
}

/// Every connector of this build, with `files` datasources confined to
/// `files_roots` and the sample's directory, and CA files of database
/// datasources to `certificate_dirs`: the people who define datasources
/// are not meant to read the host's own files.
#[cfg_attr(
    not(any(feature = "files", feature = "postgres", feature = "mysql")),
    allow(unused_variables)
)]
fn connectors(config: &DeploymentConfig) -> Registry {
    #[allow(unused_mut)]
    let mut registry = loupe_connectors::registry();
    #[cfg(feature = "files")]
    {
        let sample = config
            .sample_datasource
            .then(|| sample_dir(config.sample_data_dir.as_deref()))
            .flatten();
        let allowed = config.files_roots.iter().cloned().chain(sample);
        registry.register(Arc::new(loupe_connectors::files::FilesFactory::within(
            allowed,
        )));
    }
    #[cfg(feature = "postgres")]
    registry.register(Arc::new(
        loupe_connectors::postgres::PostgresFactory::certificates_within(
            config.certificate_dirs.iter().cloned(),
        ),
    ));
    #[cfg(feature = "mysql")]
    registry.register(Arc::new(
        loupe_connectors::mysql::MysqlFactory::certificates_within(
            config.certificate_dirs.iter().cloned(),
        ),
    ));
    registry
}

/// The bundled sample dataset: configured, or in the working directory,
/// next to the binary, or in the source tree.
fn sample_dir(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = configured {
        return Some(dir.to_path_buf());
    }
    let candidates = [
        std::env::current_dir().ok().map(|d| d.join("sample-data")),
        std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|p| p.join("sample-data"))),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sample-data")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|d| d.join("customers.csv").is_file())
        .and_then(|d| d.canonicalize().ok())
}

/// A secret kept in the data directory, if it is there.
fn stored_secret(path: &Path) -> Result<Option<SecretString>, DeploymentError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            check_private(path)?;
            let trimmed = text.trim();
            if trimmed.is_empty() {
                return Err(ConfigError::from(format!("{} is empty", path.display())).into());
            }
            Ok(Some(SecretString::from(trimmed.to_owned())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(format!("reading {}", path.display()))(e)),
    }
}

/// Reads a secret kept in the data directory, or makes one there
/// (readable by the owner only).
fn generated_secret(
    path: &Path,
    generate: impl FnOnce() -> loupe_core::Result<SecretString>,
) -> Result<SecretString, DeploymentError> {
    if let Some(secret) = stored_secret(path)? {
        return Ok(secret);
    }
    let secret = generate()?;
    write_private(path, expose(&secret))?;
    tracing::info!(path = %path.display(), "generated a secret");
    Ok(secret)
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> Result<(), DeploymentError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        private_dir(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("creating {}", path.display())))?;
    writeln!(file, "{text}").map_err(io(format!("writing {}", path.display())))
}

/// Creates `dir` (and its parents) readable by the owner only: results,
/// metadata and keys live there. A directory that exists is left as it is,
/// with a warning when others may read it.
fn private_dir(dir: &Path) -> Result<(), DeploymentError> {
    if dir.is_dir() {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(dir)
                && meta.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(dir = %dir.display(), "the data directory is readable by others; chmod 700 it");
            }
        }
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(io(format!("data directory {}", dir.display())))
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), DeploymentError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(io(format!("reading {}", path.display())))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(ConfigError::from(format!(
            "{} is readable by others (mode {:o}); run `chmod 600` on it",
            path.display(),
            mode & 0o777
        ))
        .into());
    }
    Ok(())
}
