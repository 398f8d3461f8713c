//! Retention: deleting old runs and their stored results.
//!
//! A finished run is deleted when it is older than `max_age`, or when its
//! query has more than `keep_per_query` newer finished runs. Never deleted:
//! runs still queued or running, and the latest succeeded run of a query
//! that a dashboard (through a visualization) or a schedule uses, since
//! that result is what the dashboard shows.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::meta::MetadataStore;
use crate::meta::col;
use crate::meta::{db_error, now_micros};
use crate::services::Services;
use loupe_core::Result;
use loupe_core::{ResultId, ResultStore};
use tracing::Instrument;

/// What retention keeps.
#[derive(Debug, Clone, Default)]
pub struct Retention {
    /// Delete finished runs older than this.
    pub max_age: Option<Duration>,
    /// Keep at most this many finished runs per query (newest first).
    pub keep_per_query: Option<u32>,
}

/// What a retention pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Runs deleted.
    pub runs: u64,
    /// Stored results deleted.
    pub results: u64,
    /// Bytes of stored results left, per organization id.
    pub stored_bytes: BTreeMap<String, u64>,
}

/// The latest succeeded run of each query a dashboard or schedule uses.
const PROTECTED: &str = "SELECT id FROM ( \
      SELECT r.id, ROW_NUMBER() OVER (PARTITION BY r.query_id ORDER BY r.finished_at DESC, r.id DESC) AS rn \
      FROM runs r WHERE r.status = 'succeeded' AND r.query_id IN ( \
        SELECT v.query_id FROM dashboard_widgets w JOIN visualizations v ON v.id = w.visualization_id \
        UNION SELECT s.query_id FROM schedules s) \
    ) latest WHERE rn = 1";

impl Retention {
    /// Deletes what the policy no longer keeps, rows first, then results,
    /// and records what it did in the metrics.
    pub async fn apply(
        &self,
        services: &Services,
        results: &Arc<dyn ResultStore>,
    ) -> Result<RetentionReport> {
        let report = self.pass(services, results).await;
        crate::ops::retention_passed(report.is_ok());
        report
    }

    async fn pass(
        &self,
        services: &Services,
        results: &Arc<dyn ResultStore>,
    ) -> Result<RetentionReport> {
        let store = services.store();
        let mut doomed: Vec<(String, Option<String>)> = Vec::new();
        if let Some(max_age) = self.max_age {
            let cutoff =
                now_micros().saturating_sub(i64::try_from(max_age.as_micros()).unwrap_or(i64::MAX));
            let sql = format!(
                "SELECT id, result_location FROM runs WHERE status IN ('succeeded', 'failed', 'cancelled') \
                 AND finished_at < $1 AND id NOT IN ({PROTECTED})"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(cutoff)
                .fetch_all(store.pool())
                .await
                .map_err(db_error)?;
            for row in &rows {
                doomed.push((col(row, "id")?, col(row, "result_location")?));
            }
        }
        if let Some(keep) = self.keep_per_query {
            let sql = format!(
                "SELECT id, result_location FROM ( \
                   SELECT r.id, r.result_location, ROW_NUMBER() OVER (PARTITION BY r.query_id ORDER BY r.finished_at DESC, r.id DESC) AS rn \
                   FROM runs r WHERE r.query_id IS NOT NULL AND r.status IN ('succeeded', 'failed', 'cancelled') \
                 ) ranked WHERE rn > $1 AND id NOT IN ({PROTECTED})"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(i64::from(keep))
                .fetch_all(store.pool())
                .await
                .map_err(db_error)?;
            for row in &rows {
                doomed.push((col(row, "id")?, col(row, "result_location")?));
            }
        }
        doomed.sort();
        doomed.dedup();
        let mut report = RetentionReport::default();
        for chunk in doomed.chunks(200) {
            let mut tx = store.write().await?;
            for (id, _) in chunk {
                let deleted = sqlx::query("DELETE FROM runs WHERE id = $1 AND status IN ('succeeded', 'failed', 'cancelled')")
                    .bind(id.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                report.runs += deleted.rows_affected();
            }
            tx.commit().await.map_err(db_error)?;
            for (_, location) in chunk {
                let Some(id) = location.as_deref().and_then(|l| ResultId::parse(l).ok()) else {
                    continue;
                };
                match results.delete(&id).await {
                    Ok(()) => report.results += 1,
                    Err(e) if e.kind() == loupe_core::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(result = %id, error = %e, "could not delete a stored result")
                    }
                }
            }
        }
        report.stored_bytes = stored_bytes(store).await?;
        crate::ops::retention_deleted("runs", report.runs);
        crate::ops::retention_deleted("results", report.results);
        crate::ops::stored_bytes_gauge(services, &report.stored_bytes);
        Ok(report)
    }
}

impl Retention {
    /// Applies the policy every `every` in the background, until the
    /// handle is shut down.
    pub fn start(
        self,
        services: &Services,
        results: Arc<dyn ResultStore>,
        every: Duration,
    ) -> RetentionHandle {
        let stop = tokio_util::sync::CancellationToken::new();
        let token = stop.clone();
        let services = services.clone();
        let join = tokio::spawn(async move {
            loop {
                let span = tracing::info_span!(parent: None, "retention");
                match self.apply(&services, &results).instrument(span).await {
                    Ok(report) if report.runs > 0 => {
                        tracing::info!(
                            runs = report.runs,
                            results = report.results,
                            "retention deleted old runs"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "a retention pass failed"),
                }
                tokio::select! {
                    () = token.cancelled() => break,
                    () = tokio::time::sleep(every) => {}
                }
            }
        });
        RetentionHandle { stop, join }
    }
}

/// A retention job started in the background.
#[derive(Debug)]
pub struct RetentionHandle {
    stop: tokio_util::sync::CancellationToken,
    join: tokio::task::JoinHandle<()>,
}

impl RetentionHandle {
    /// Stops after the current pass.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.join.await;
    }
}

/// Bytes of stored results per organization, every organization included.
pub(crate) async fn stored_bytes(store: &MetadataStore) -> Result<BTreeMap<String, u64>> {
    let rows = sqlx::query(
        "SELECT o.id AS org_id, CAST(COALESCE(sum(r.byte_count), 0) AS BIGINT) AS bytes \
         FROM organizations o LEFT JOIN runs r ON r.org_id = o.id AND r.result_location IS NOT NULL \
         GROUP BY o.id",
    )
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    let mut out = BTreeMap::new();
    for row in &rows {
        let bytes: Option<i64> = col(row, "bytes")?;
        out.insert(
            col(row, "org_id")?,
            u64::try_from(bytes.unwrap_or(0)).unwrap_or(0),
        );
    }
    Ok(out)
}
