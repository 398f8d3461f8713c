//! Operations endpoints outside the API: liveness, readiness and
//! Prometheus metrics. An API process serves them on its main address; a
//! runner or scheduler process serves only them, on `ops_listen` (or
//! `listen`). What readiness checks and who may read metrics are the
//! deployment's rules (`Deployment::readiness`, `metrics_token`); the
//! metrics themselves are listed in `loupe_services::ops`.

use std::sync::Arc;

use loupe_core::codes;
use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get, handler};
use serde_json::json;

use crate::problem::{problem, problem_response};
use crate::state::AppState;

/// `/health/live`: the process is up.
#[handler]
pub(crate) fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "live" }))
}

/// `/health/ready`: the process can do its work (see
/// `Deployment::readiness`), and shutdown has not begun.
#[handler]
pub(crate) async fn ready(state: Data<&Arc<AppState>>) -> Response {
    let mut readiness = state.deployment.readiness().await;
    if state.is_shutting_down() {
        readiness.ready = false;
        readiness
            .checks
            .insert("shutdown", "in progress".to_owned());
    }
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if readiness.ready { "ready" } else { "not ready" },
        "role": state.config.server.role,
        "checks": readiness.checks,
    });
    Json(body).with_status(status).into_response()
}

/// `/metrics`: Prometheus text, behind the metrics token when one is
/// configured. The deployment's gauges are read at scrape time.
#[handler]
pub(crate) async fn prometheus(req: &Request, state: Data<&Arc<AppState>>) -> Response {
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if !state.deployment.metrics_allowed(authorization) {
        let (code, detail) = match authorization {
            None => (
                codes::AUTH_MISSING,
                "metrics need `Authorization: Bearer <metrics_token>`",
            ),
            Some(_) => (
                codes::AUTH_INVALID_TOKEN,
                "the metrics token is not the one configured (`metrics_token`)",
            ),
        };
        let mut refused = problem_response(problem(
            StatusCode::UNAUTHORIZED,
            code,
            detail.to_owned(),
            Vec::new(),
        ));
        refused.headers_mut().insert(
            "www-authenticate",
            poem::http::HeaderValue::from_static("Bearer realm=\"metrics\""),
        );
        return refused;
    }
    let Some(handle) = &state.metrics else {
        return StatusCode::NOT_FOUND.into_response();
    };
    loupe_services::ops::scrape(&state.deployment.services, |refreshed| {
        if let Err(e) = refreshed {
            tracing::warn!(error = %e, "metrics: reading the deployment's gauges");
        }
        handle.render()
    })
    .await
    .with_content_type("text/plain; version=0.0.4")
    .into_response()
}

/// The three routes, for the API's application and for the ops listener.
pub(crate) fn routes() -> Route {
    Route::new()
        .at("/health/live", get(live))
        .at("/health/ready", get(ready))
        .at("/metrics", get(prometheus))
}

/// The application of a listener that serves only health and metrics.
pub(crate) fn app(state: Arc<AppState>) -> impl Endpoint<Output = Response> {
    routes().data(state).map_to_response()
}

/// The process's Prometheus recorder, installed once, with the histogram
/// buckets and help texts of every metric Loupe records.
pub(crate) fn recorder() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let mut builder = Some(PrometheusBuilder::new());
            for (name, buckets) in loupe_services::ops::HISTOGRAM_BUCKETS {
                builder = builder.and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
                        .map_err(|e| tracing::warn!(metric = name, error = %e, "histogram buckets"))
                        .ok()
                });
            }
            let handle = builder
                .unwrap_or_default()
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()?;
            loupe_services::ops::describe();
            Some(handle)
        })
        .clone()
}
