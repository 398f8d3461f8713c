//! From a [`Config`] to a running server: open the stores, load or make
//! the secrets, bootstrap a first start, then serve and run until a
//! signal.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use loupe_services::{Deployment, DeploymentError, FirstStart};
use poem::listener::{Listener, RustlsCertificate, RustlsConfig, TcpListener};
use poem::web::Html;
use poem::{Endpoint, EndpointExt, Response, Route, get};
use serde_json::Value;

use crate::config::Config;
use crate::middleware::{Observe, ProblemListener, Routes, SameOrigin, StrictBodies};
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
        loupe_services::ops::build_info(state.config.server.role.as_str());
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
        // Health and metrics of their own: on `ops_listen` when set, and for
        // a process without the API on `listen` otherwise. Bound before
        // anything starts, so a taken port stops the start.
        let ops_address = match server.role.serves_api() {
            true => config.deployment.ops_listen,
            false => Some(config.deployment.ops_listen.unwrap_or(server.listen)),
        };
        let ops_acceptor = match ops_address {
            Some(address) => Some(
                TcpListener::bind(address)
                    .into_acceptor()
                    .await
                    .map_err(io(format!("ops_listen {address}")))?,
            ),
            None => None,
        };
        let running = state.deployment.start();
        let sweeper = {
            let state = state.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    state.limits.retain_recent();
                    if let Some(metrics) = &state.metrics {
                        metrics.run_upkeep();
                    }
                }
            })
        };
        // The ops listener stays up while runs drain, so probes see the
        // process alive and not ready until it exits.
        let ops_stop = tokio_util::sync::CancellationToken::new();
        let ops = ops_acceptor.map(|acceptor| {
            if let Some(address) = ops_address {
                tracing::info!(listen = %address, "serving health and metrics");
            }
            let stop = ops_stop.clone().cancelled_owned();
            let app = crate::ops::app(state.clone());
            tokio::spawn(async move {
                poem::Server::new_with_acceptor(acceptor)
                    .run_with_graceful_shutdown(app, stop, Some(Duration::from_secs(5)))
                    .await
            })
        });
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
                    let listener = ProblemListener {
                        inner: listener.rustls(
                            RustlsConfig::new()
                                .fallback(RustlsCertificate::new().cert(cert).key(key)),
                        ),
                        hsts: server.hsts,
                    };
                    poem::Server::new(listener)
                        .run_with_graceful_shutdown(app, signal, grace)
                        .await
                }
                None => {
                    let listener = ProblemListener {
                        inner: listener,
                        hsts: server.hsts,
                    };
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
        ops_stop.cancel();
        if let Some(ops) = ops
            && let Ok(Err(e)) = ops.await
        {
            tracing::warn!(error = %e, "the health and metrics listener failed");
        }
        state.deployment.services.store().close().await;
        tracing::info!("loupe-server stopped");
        served
    }
}

/// The HTTP application: `/api/v1` (with its document at
/// `/api/v1/openapi.json`), Swagger UI at `/docs`, health and metrics.
pub fn app(state: Arc<AppState>) -> impl Endpoint<Output = poem::Response> {
    let api = crate::api::service(&state);
    let generated = api.spec();
    let doc = document(&generated);
    let text = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| generated.clone());
    // Swagger UI embeds the document; it shows the one the API serves.
    let docs_page = api.swagger_ui_html().replace(&generated, &text);
    let docs = Route::new().at(
        "/",
        get(poem::endpoint::make_sync(move |_| Html(docs_page.clone()))),
    );
    let spec = poem::endpoint::make_sync(move |_| {
        Response::builder()
            .content_type("application/json")
            .body(text.clone())
    });
    let routes = Arc::new(Routes::from_spec(&doc, "/api/v1"));
    let config = state.config.clone();
    let cors = crate::middleware::cors(&config.server.cors);
    Route::new()
        .nest("/api/v1/openapi.json", spec)
        .nest("/api/v1", api)
        .nest("/docs", docs)
        .at("/health/live", get(crate::ops::live))
        .at("/health/ready", get(crate::ops::ready))
        .at("/metrics", get(crate::ops::prometheus))
        .with(StrictBodies {
            routes: routes.clone(),
        })
        .with(cors)
        .with(SameOrigin {
            public: config
                .deployment
                .public_url
                .as_deref()
                .and_then(|u| url::Url::parse(u).ok())
                .map(|u| u.origin()),
            trust_forwarded: config.server.trust_forwarded_for,
        })
        .with(Observe {
            state: state.clone(),
            routes,
        })
        .data(state)
}

/// The API document as served: poem-openapi's, with the range each
/// integer format implies written out as `minimum`/`maximum` where the
/// schema has none. The parsers refuse a `uint32` above 2^32 - 1 whether or
/// not the document says so; saying it lets clients (and generated tests)
/// know.
fn document(generated: &str) -> Value {
    let mut doc: Value = serde_json::from_str(generated).unwrap_or_default();
    integer_ranges(&mut doc);
    doc
}

fn integer_ranges(node: &mut Value) {
    match node {
        Value::Object(map) => {
            let range = (map.get("type").and_then(Value::as_str) == Some("integer"))
                .then(|| map.get("format").and_then(Value::as_str))
                .flatten()
                .and_then(|format| {
                    // Whole numbers, not floats: 2^64 - 1 has no exact float.
                    let signed = |min: i64, max: i64| (Value::from(min), Value::from(max));
                    let unsigned = |max: u64| (Value::from(0), Value::from(max));
                    Some(match format {
                        "int8" => signed(i8::MIN.into(), i8::MAX.into()),
                        "int16" => signed(i16::MIN.into(), i16::MAX.into()),
                        "int32" => signed(i32::MIN.into(), i32::MAX.into()),
                        "int64" => signed(i64::MIN, i64::MAX),
                        "uint8" => unsigned(u8::MAX.into()),
                        "uint16" => unsigned(u16::MAX.into()),
                        "uint32" => unsigned(u32::MAX.into()),
                        "uint64" => unsigned(u64::MAX),
                        _ => return None,
                    })
                });
            if let Some((min, max)) = range {
                map.entry("minimum").or_insert(min);
                map.entry("maximum").or_insert(max);
            }
            map.values_mut().for_each(integer_ranges);
        }
        Value::Array(items) => items.iter_mut().for_each(integer_ranges),
        _ => {}
    }
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
    let base = state
        .config
        .deployment
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", server.listen));
    eprintln!(
        "loupe-server: no admin exists yet. Create one with this one-time token \
         (valid until restart):\n\n  curl -X POST {base}/api/v1/setup -H 'content-type: application/json' \\\n    -d '{{\"token\": \"{token}\", \"org_name\": \"My team\", \"email\": \"you@example.com\", \"name\": \"You\", \"password\": \"a long passphrase\"}}'\n\n  or open {base}/docs#/Setup and use the token there.\n"
    );
    Ok(())
}
