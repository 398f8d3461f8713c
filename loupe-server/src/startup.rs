//! From a [`Config`] to a running server: open the stores, load or make
//! the secrets, bootstrap a first start, then serve and run until a
//! signal.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use loupe_core::meta::{ListRequest, MetadataStore};
use loupe_core::runner::{Retention, Runner, RunnerConfig, Scheduler};
use loupe_core::services::{
    Access, DatasourceInput, EVERYONE, KeyRing, Services, ServicesConfig, SessionConfig, Setup,
    SigningKey,
};
use loupe_core::{Limits, ParquetResultStore, ResultStore};
use poem::listener::{Listener, RustlsCertificate, RustlsConfig, TcpListener};
use poem::middleware::Cors;
use poem::{Endpoint, EndpointExt, Route, get};
use secrecy::SecretString;

use crate::config::{Config, ConfigError, read_secret};
use crate::middleware::{Observe, Routes};
use crate::setup::SetupGate;
use crate::state::{AppState, RateLimits};

/// A server that failed to start; the message names the cause.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
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

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let what = what.into();
    move |source| StartError::Io { what, source }
}

/// A prepared server: stores open, secrets loaded, first start done.
#[derive(Debug)]
pub struct Server {
    state: Arc<AppState>,
}

impl Server {
    /// Opens everything `config` names. On a first start it creates the
    /// admin from the configuration, or opens set-up and prints its token
    /// to stderr.
    pub async fn prepare(config: Config) -> Result<Self, StartError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(io(format!("data directory {}", config.data_dir.display())))?;
        let signing = match read_secret(
            "signing_secret_file",
            config.signing_secret.as_ref(),
            config.signing_secret_file.as_deref(),
        )? {
            Some(secret) => SigningKey::new(&secret)
                .map_err(|e| ConfigError::from(format!("`signing_secret`: {e}")))?,
            None => SigningKey::new(&generated_secret(
                &config.data_dir.join("signing.key"),
                SigningKey::generate_secret,
            )?)?,
        };
        let secret_key = match read_secret(
            "secret_key_file",
            config.secret_key.as_ref(),
            config.secret_key_file.as_deref(),
        )? {
            Some(key) => key,
            None => generated_secret(&config.data_dir.join("secret.key"), KeyRing::generate_key)?,
        };
        let previous: Vec<SecretString> = config
            .previous_secret_keys
            .iter()
            .map(|s| s.0.clone())
            .collect();
        let keys = KeyRing::new(&secret_key, &previous)
            .map_err(|e| ConfigError::from(format!("`secret_key`: {e}")))?;
        let results_dir = config.results_dir();
        std::fs::create_dir_all(&results_dir)
            .map_err(io(format!("result directory {}", results_dir.display())))?;
        let results: Arc<dyn ResultStore> = Arc::new(ParquetResultStore::open(
            results_dir.to_str().ok_or_else(|| {
                ConfigError::from(format!(
                    "`results_dir`: {} is not valid UTF-8",
                    results_dir.display()
                ))
            })?,
        )?);
        let store = MetadataStore::open(&config.metadata_url()).await?;
        let services = Services::new(
            store,
            connectors(&config),
            ServicesConfig {
                secret_keys: Some(keys),
                lockout_threshold: config.lockout_threshold,
                lockout_window: config.lockout_window,
                sessions: Some(SessionConfig {
                    key: signing,
                    access_ttl: config.access_token_ttl,
                    refresh_ttl: config.refresh_token_ttl,
                }),
                ..ServicesConfig::default()
            },
            Some(results.clone()),
        )?;
        let state = Arc::new(AppState {
            limits: RateLimits::new(&config.rate_limit),
            services,
            results,
            setup: SetupGate::default(),
            shutting_down: Default::default(),
            metrics: crate::ops::recorder(),
            config: Arc::new(config),
        });
        bootstrap(&state).await?;
        Ok(Self { state })
    }

    /// The shared state (for tests and embedding).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Serves and runs what the role asks until `shutdown` completes,
    /// then stops accepting, lets in-flight requests and runs finish
    /// within the grace period, and hands unfinished runs back.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), StartError> {
        let state = self.state;
        let config = state.config.clone();
        let runner = config.role.runs().then(|| {
            let defaults = RunnerConfig::default();
            let mut limits = Limits::NONE.with_timeout(config.runner.timeout);
            if config.runner.max_rows > 0 {
                limits = limits.with_max_rows(config.runner.max_rows);
            }
            if config.runner.max_bytes > 0 {
                limits = limits.with_max_bytes(config.runner.max_bytes);
            }
            Runner::new(
                &state.services,
                state.results.clone(),
                RunnerConfig {
                    workers: config.runner.workers,
                    per_datasource: config.runner.per_datasource,
                    per_user: config.runner.per_user,
                    grace: config.shutdown_grace,
                    limits,
                    ..defaults
                },
            )
            .start()
        });
        let scheduler = config
            .role
            .schedules()
            .then(|| Scheduler::new(&state.services, config.schedule_every).start());
        let retention = (config.role.schedules()
            && (!config.retention.max_age.is_zero() || config.retention.keep_per_query > 0))
            .then(|| {
                Retention {
                    max_age: (!config.retention.max_age.is_zero())
                        .then_some(config.retention.max_age),
                    keep_per_query: (config.retention.keep_per_query > 0)
                        .then_some(config.retention.keep_per_query),
                }
                .start(
                    &state.services,
                    state.results.clone(),
                    config.retention.every,
                )
            });
        let sweeper = {
            let state = state.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    state.limits.retain_recent();
                }
            })
        };
        let served = if config.role.serves_api() {
            let app = app(state.clone());
            let flag = state.clone();
            let signal = async move {
                shutdown.await;
                flag.shutting_down.store(true, Ordering::SeqCst);
                tracing::info!("shutting down: no new connections; finishing requests");
            };
            let grace = Some(config.shutdown_grace);
            let listener = TcpListener::bind(config.listen);
            tracing::info!(listen = %config.listen, role = ?config.role, "loupe-server started");
            match &config.tls {
                Some(tls) => {
                    let cert = std::fs::read(&tls.cert_file)
                        .map_err(io(format!("tls.cert_file {}", tls.cert_file.display())))?;
                    let key = std::fs::read(&tls.key_file)
                        .map_err(io(format!("tls.key_file {}", tls.key_file.display())))?;
                    let listener = listener.rustls(
                        RustlsConfig::new().fallback(RustlsCertificate::new().cert(cert).key(key)),
                    );
                    poem::Server::new(listener)
                        .run_with_graceful_shutdown(app, signal, grace)
                        .await
                }
                None => {
                    poem::Server::new(listener)
                        .run_with_graceful_shutdown(app, signal, grace)
                        .await
                }
            }
            .map_err(io(format!("serving on {}", config.listen)))
        } else {
            tracing::info!(role = ?config.role, "loupe-server started without the API");
            shutdown.await;
            state.shutting_down.store(true, Ordering::SeqCst);
            Ok(())
        };
        sweeper.abort();
        if let Some(scheduler) = scheduler {
            scheduler.shutdown().await;
        }
        if let Some(retention) = retention {
            retention.shutdown().await;
        }
        if let Some(runner) = runner {
            tracing::info!("stopping the runner: running runs get the grace period");
            runner.shutdown().await;
        }
        state.services.store().close().await;
        tracing::info!("loupe-server stopped");
        served
    }
}

/// The HTTP application: `/api/v1` (with its document at
/// `/api/v1/openapi.json`), Swagger UI at `/docs`, health and metrics.
pub fn app(state: Arc<AppState>) -> impl Endpoint<Output = poem::Response> {
    let api = crate::api::service(&state);
    let routes = Arc::new(Routes::from_spec(&api.spec(), "/api/v1"));
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    let config = state.config.clone();
    let mut cors = Cors::new().allow_credentials(config.cors.allow_credentials);
    if config.cors.allowed_origins.iter().any(|o| o == "*") {
        // Any origin, without credentials (checked at start).
    } else if !config.cors.allowed_origins.is_empty() {
        cors = cors.allow_origins(config.cors.allowed_origins.iter().map(String::as_str));
    } else {
        // No origin configured: no browser on another origin may call.
        cors = cors.allow_origins_fn(|_| false);
    }
    Route::new()
        .nest("/api/v1/openapi.json", spec)
        .nest("/api/v1", api)
        .nest("/docs", docs)
        .at("/health/live", get(crate::ops::live))
        .at("/health/ready", get(crate::ops::ready))
        .at("/metrics", get(crate::ops::prometheus))
        .with(cors)
        .with(Observe {
            state: state.clone(),
            routes,
        })
        .data(state)
}

/// Reads a secret kept in the data directory, or makes one there
/// (readable by the owner only).
fn generated_secret(
    path: &Path,
    generate: impl FnOnce() -> loupe_core::Result<SecretString>,
) -> Result<SecretString, StartError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            check_private(path)?;
            let trimmed = text.trim();
            if trimmed.is_empty() {
                return Err(ConfigError::from(format!("{} is empty", path.display())).into());
            }
            Ok(SecretString::from(trimmed.to_owned()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = generate()?;
            write_private(path, crate::config::expose(&secret))?;
            tracing::info!(path = %path.display(), "generated a secret");
            Ok(secret)
        }
        Err(e) => Err(io(format!("reading {}", path.display()))(e)),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> Result<(), StartError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("creating {}", path.display())))?;
    writeln!(file, "{text}").map_err(io(format!("writing {}", path.display())))
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), StartError> {
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

/// First start: make the organization and admin, or open set-up.
async fn bootstrap(state: &Arc<AppState>) -> Result<(), StartError> {
    if state.services.organizations.count().await? > 0 {
        return Ok(());
    }
    let config = &state.config;
    match (&config.admin_email, config.admin_password()?) {
        (Some(email), Some(password)) => {
            let (_, admin) = state
                .services
                .organizations
                .create_with_admin(Setup {
                    org_name: config.org_name.clone(),
                    admin_email: email.clone(),
                    admin_name: config.admin_name.clone(),
                    admin_password: password,
                })
                .await?;
            tracing::info!(email = %admin.email, "created the first admin");
            register_sample(state, &admin.id).await?;
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(ConfigError::from(
                "set both admin_email and admin_password (LOUPE_ADMIN_EMAIL, LOUPE_ADMIN_PASSWORD) or neither"
                    .to_owned(),
            )
            .into());
        }
        (None, None) => {
            let token = state
                .setup
                .open()
                .map_err(|e| loupe_core::Error::internal(format!("random token: {e}")))?;
            let base = config
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", config.listen));
            eprintln!(
                "loupe-server: no admin exists yet. Create one with this one-time token \
                 (valid until restart):\n\n  curl -X POST {base}/api/v1/setup -H 'content-type: application/json' \\\n    -d '{{\"token\": \"{token}\", \"org_name\": \"My team\", \"email\": \"you@example.com\", \"name\": \"You\", \"password\": \"a long passphrase\"}}'\n\n  or open {base}/docs#/Setup and use the token there.\n"
            );
        }
    }
    Ok(())
}

/// Registers the bundled sample dataset as a `files` datasource that
/// everyone may run, when configured and present.
pub(crate) async fn register_sample(state: &AppState, admin_id: &str) -> Result<(), StartError> {
    if !state.config.sample_datasource {
        return Ok(());
    }
    let Some(dir) = sample_dir(state.config.sample_data_dir.as_deref()) else {
        tracing::warn!("sample dataset not found; set sample_data_dir to register it");
        return Ok(());
    };
    let actor = state.services.users.actor(admin_id, None).await?;
    let mut options = loupe_core::DatasourceOptions::new();
    options.insert("root".into(), dir.to_string_lossy().into_owned().into());
    let datasource = state
        .services
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
    let everyone = state
        .services
        .groups
        .list(&actor, &ListRequest::default().filter("q", EVERYONE))
        .await?
        .items
        .into_iter()
        .find(|g| g.name == EVERYONE);
    if let Some(group) = everyone {
        state
            .services
            .groups
            .grant(&actor, &group.id, &datasource.id, Access::Run)
            .await?;
    }
    tracing::info!(root = %dir.display(), "registered the sample datasource");
    Ok(())
}

/// Every connector of this build, with `files` datasources confined to
/// `files_roots` and the sample's directory: the people who define
/// datasources here are not meant to read the server's own files.
#[cfg_attr(not(feature = "files"), allow(unused_variables))]
fn connectors(config: &Config) -> loupe_core::Registry {
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
    registry
}

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
