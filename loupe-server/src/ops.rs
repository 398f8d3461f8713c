//! Operations endpoints outside the API: liveness, readiness and
//! Prometheus metrics.

use std::sync::Arc;

use loupe_services::meta::MetadataStore;
use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{IntoResponse, Response, handler};
use serde_json::json;

use crate::state::AppState;

/// `/health/live`: the process is up.
#[handler]
pub(crate) fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "live" }))
}

/// `/health/ready`: the metadata database answers with every migration
/// applied, the result store takes writes, and shutdown has not begun.
#[handler]
pub(crate) async fn ready(state: Data<&Arc<AppState>>) -> Response {
    let mut checks = serde_json::Map::new();
    let mut ok = true;
    if state.is_shutting_down() {
        ok = false;
        checks.insert("shutdown".into(), json!("in progress"));
    }
    match state.deployment.services.store().schema_version().await {
        Ok(v) if v == MetadataStore::known_version() => {
            checks.insert("metadata".into(), json!("ok"));
        }
        Ok(v) => {
            ok = false;
            checks.insert(
                "metadata".into(),
                json!(format!(
                    "schema version {v}, expected {}",
                    MetadataStore::known_version()
                )),
            );
        }
        Err(e) => {
            ok = false;
            tracing::warn!(error = %e, "readiness: metadata database");
            checks.insert("metadata".into(), json!("unreachable"));
        }
    }
    match state.deployment.results.check_writable().await {
        Ok(()) => {
            checks.insert("results".into(), json!("ok"));
        }
        Err(e) => {
            ok = false;
            tracing::warn!(error = %e, "readiness: result store");
            checks.insert("results".into(), json!("not writable"));
        }
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "status": if ok { "ready" } else { "not ready" }, "checks": checks });
    Json(body).with_status(status).into_response()
}

/// `/metrics`: Prometheus text. Gauges of the queue, runs and the
/// metadata pool are read at scrape time.
#[handler]
pub(crate) async fn prometheus(state: Data<&Arc<AppState>>) -> Response {
    let Some(handle) = &state.metrics else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let pool = state.deployment.services.store().pool();
    metrics::gauge!("loupe_metadata_pool_connections").set(f64::from(pool.size()));
    metrics::gauge!("loupe_metadata_pool_idle").set(pool.num_idle() as f64);
    match loupe_services::runner::run_counts(&state.deployment.services).await {
        Ok(counts) => {
            let mut queued = 0;
            let mut hits = std::collections::BTreeMap::<String, i64>::new();
            for c in counts {
                if c.status == "queued" {
                    queued += c.runs;
                }
                metrics::gauge!(
                    "loupe_runs",
                    "status" => c.status.clone(),
                    "datasource" => c.datasource_name.clone()
                )
                .set(c.runs as f64);
                *hits.entry(c.datasource_name).or_default() += c.cache_hits;
            }
            for (datasource, n) in hits {
                metrics::gauge!("loupe_run_cache_hits", "datasource" => datasource).set(n as f64);
            }
            metrics::gauge!("loupe_queue_depth").set(queued as f64);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: run counts"),
    }
    handle
        .render()
        .with_content_type("text/plain; version=0.0.4")
        .into_response()
}

/// The process's Prometheus recorder, installed once.
pub(crate) fn recorder() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()
        })
        .clone()
}
