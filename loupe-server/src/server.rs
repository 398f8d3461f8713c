//! From a [`Config`] to a running server: open the stores, load or make
//! the secrets, bootstrap a first start, then serve and run until a
//! signal.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use loupe_services::{Deployment, DeploymentError, FirstStart};
use poem::listener::{Listener, RustlsCertificate, RustlsConfig, TcpListener};
use poem::middleware::Cors;
use poem::{Endpoint, EndpointExt, Route, get};

use crate::config::Config;
use crate::middleware::{Observe, Routes};
use crate::setup_token::SetupGate;
use crate::state::{AppState, RateLimits};

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DeploymentError {
    let what = what.into();
    move |source| DeploymentError::Io { what, source }
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
    pub async fn prepare(config: Config) -> Result<Self, DeploymentError> {
        let deployment =
            Deployment::open(config.deployment.clone(), config.server.role.parts()).await?;
        let state = Arc::new(AppState {
            limits: RateLimits::new(&config.server.rate_limit),
            deployment,
            setup: SetupGate::default(),
            shutting_down: Default::default(),
            metrics: crate::ops::recorder(),
            config: Arc::new(config),
        });
        if state.config.server.role.serves_api() {
            first_start(&state).await?;
        }
        Ok(Self { state })
    }

    /// The shared state (for tests and embedding).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Serves and runs what the role asks until `shutdown` completes,
    /// then stops accepting, lets in-flight requests and runs finish
    /// within the grace period, and hands unfinished runs back.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), DeploymentError> {
        let state = self.state;
        let config = state.config.clone();
        let server = &config.server;
        let running = state.deployment.start();
        let sweeper = {
            let state = state.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    state.limits.retain_recent();
                }
            })
        };
        let served = if server.role.serves_api() {
            let app = app(state.clone());
            let flag = state.clone();
            let signal = async move {
                shutdown.await;
                flag.shutting_down.store(true, Ordering::SeqCst);
                tracing::info!("shutting down: no new connections; finishing requests");
            };
            let grace = Some(config.deployment.shutdown_grace);
            let listener = TcpListener::bind(server.listen);
            tracing::info!(listen = %server.listen, role = ?server.role, "loupe-server started");
            match &server.tls {
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
            .map_err(io(format!("serving on {}", server.listen)))
        } else {
            tracing::info!(role = ?server.role, "loupe-server started without the API");
            shutdown.await;
            state.shutting_down.store(true, Ordering::SeqCst);
            Ok(())
        };
        sweeper.abort();
        running.shutdown().await;
        state.deployment.services.store().close().await;
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
    let cors_config = &config.server.cors;
    let mut cors = Cors::new().allow_credentials(cors_config.allow_credentials);
    if cors_config.allowed_origins.iter().any(|o| o == "*") {
        // Any origin, without credentials (checked at start).
    } else if !cors_config.allowed_origins.is_empty() {
        cors = cors.allow_origins(cors_config.allowed_origins.iter().map(String::as_str));
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

/// First start: the deployment makes the organization and admin from the
/// configuration, or set-up opens and its token is printed.
async fn first_start(state: &Arc<AppState>) -> Result<(), DeploymentError> {
    if state.deployment.first_start().await? != FirstStart::NeedsSetup {
        return Ok(());
    }
    let server = &state.config.server;
    let token = state
        .setup
        .open()
        .map_err(|e| loupe_core::Error::internal(format!("random token: {e}")))?;
    let base = server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", server.listen));
    eprintln!(
        "loupe-server: no admin exists yet. Create one with this one-time token \
         (valid until restart):\n\n  curl -X POST {base}/api/v1/setup -H 'content-type: application/json' \\\n    -d '{{\"token\": \"{token}\", \"org_name\": \"My team\", \"email\": \"you@example.com\", \"name\": \"You\", \"password\": \"a long passphrase\"}}'\n\n  or open {base}/docs#/Setup and use the token there.\n"
    );
    Ok(())
}
