//! `loupe runner --listen`: the runner's `/health/live`, `/health/ready`
//! and `/metrics`, as `loupe-server --role runner` serves them. What
//! readiness checks, who may read metrics and which metrics exist are the
//! deployment's rules (`loupe_services::Deployment`, `loupe_services::ops`);
//! this only answers HTTP.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use loupe_services::Deployment;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Json};
use poem::{EndpointExt, IntoResponse, Request, Response, Route, get, handler};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::failure::Failure;

/// What the handlers share.
struct Ops {
    deployment: Deployment,
    metrics: Option<PrometheusHandle>,
}

/// Binds `address` and serves until `stop` is cancelled.
pub(crate) async fn serve(
    deployment: Deployment,
    address: SocketAddr,
    stop: CancellationToken,
) -> Result<JoinHandle<()>, Failure> {
    let acceptor = TcpListener::bind(address)
        .into_acceptor()
        .await
        .map_err(|e| Failure::Usage(format!("`--listen` {address}: {e}")))?;
    let bound = acceptor
        .local_addr()
        .first()
        .map_or_else(|| address.to_string(), ToString::to_string);
    let metrics = recorder();
    if let Some(handle) = metrics.clone() {
        // Histograms are drained by scrapes; upkeep bounds them between.
        let stop = stop.clone();
        tokio::spawn(async move {
            while tokio::time::timeout(Duration::from_secs(60), stop.cancelled())
                .await
                .is_err()
            {
                handle.run_upkeep();
            }
        });
    }
    let ops = Arc::new(Ops {
        deployment,
        metrics,
    });
    let app = Route::new()
        .at("/health/live", get(live))
        .at("/health/ready", get(ready))
        .at("/metrics", get(prometheus))
        .data(ops);
    eprintln!("loupe: health and metrics on http://{bound}");
    Ok(tokio::spawn(async move {
        let served = poem::Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(app, stop.cancelled_owned(), Some(Duration::from_secs(5)))
            .await;
        if let Err(e) = served {
            eprintln!("loupe: the health and metrics listener failed: {e}");
        }
    }))
}

#[handler]
fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "live" }))
}

#[handler]
async fn ready(ops: Data<&Arc<Ops>>) -> Response {
    let readiness = ops.deployment.readiness().await;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if readiness.ready { "ready" } else { "not ready" },
        "role": "runner",
        "checks": readiness.checks,
    });
    Json(body).with_status(status).into_response()
}

#[handler]
async fn prometheus(req: &Request, ops: Data<&Arc<Ops>>) -> Response {
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if !ops.deployment.metrics_allowed(authorization) {
        // The same problem as the server's refusal.
        let code = match authorization {
            Some(_) => "auth.invalid_token",
            None => "auth.missing",
        };
        let body = json!({
            "type": format!("urn:loupe:problem:{code}"),
            "title": "Unauthorized",
            "status": 401,
            "code": code,
            "detail": "metrics need `Authorization: Bearer <metrics_token>`",
        });
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .content_type("application/problem+json")
            .header("www-authenticate", "Bearer realm=\"metrics\"")
            .body(body.to_string());
    }
    let Some(handle) = &ops.metrics else {
        return StatusCode::NOT_FOUND.into_response();
    };
    loupe_services::ops::scrape(&ops.deployment.services, |refreshed| {
        if let Err(e) = refreshed {
            eprintln!("loupe: metrics: reading the deployment's gauges: {e}");
        }
        handle.render()
    })
    .await
    .with_content_type("text/plain; version=0.0.4")
    .into_response()
}

/// The process's Prometheus recorder, with Loupe's histogram buckets and
/// help texts.
fn recorder() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let mut builder = Some(PrometheusBuilder::new());
            for (name, buckets) in loupe_services::ops::HISTOGRAM_BUCKETS {
                builder = builder.and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
                        .ok()
                });
            }
            let handle = builder.unwrap_or_default().install_recorder().ok()?;
            loupe_services::ops::describe();
            loupe_services::ops::build_info("runner");
            Some(handle)
        })
        .clone()
}
