//! Retention: deleting old runs and their stored results, and the rows
//! that are only kept for a while (tokens, audit events).
//!
//! On by default: a finished run is deleted, with its stored result, when
//! it is older than `max_age` (30 days), or when its query has more than
//! `keep_per_query` newer finished runs (off by default). Never deleted:
//! runs still queued or running, and the latest succeeded run of each saved
//! query (so of every query a dashboard widget shows) and of each schedule,
//! since that result is what people open. Expired refresh tokens, used or
//! expired invitation and password-reset tokens, and audit events older
//! than `audit_max_age` (365 days) are deleted too.

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

/// What retention keeps. The default is the policy a deployment applies
/// unless configured otherwise.
#[derive(Debug, Clone)]
pub struct Retention {
    /// Delete finished runs older than this.
    pub max_age: Option<Duration>,
    /// Keep at most this many finished runs per query (newest first).
    pub keep_per_query: Option<u32>,
    /// Delete audit events older than this.
    pub audit_max_age: Option<Duration>,
    /// Delete expired refresh tokens, and invitation and password-reset
    /// tokens once used or expired.
    pub prune_tokens: bool,
}

/// Finished runs and their results are kept this long by default.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Audit events are kept this long by default.
pub const DEFAULT_AUDIT_MAX_AGE: Duration = Duration::from_secs(365 * 24 * 3600);

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_age: Some(DEFAULT_MAX_AGE),
            keep_per_query: None,
            audit_max_age: Some(DEFAULT_AUDIT_MAX_AGE),
            prune_tokens: true,
        }
    }
}

impl Retention {
    /// A policy that deletes nothing; set what it should delete.
    pub fn none() -> Self {
        Self {
            max_age: None,
            keep_per_query: None,
            audit_max_age: None,
            prune_tokens: false,
        }
    }
}

/// What a retention pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Runs deleted.
    pub runs: u64,
    /// Stored results deleted.
    pub results: u64,
    /// Refresh tokens deleted.
    pub refresh_tokens: u64,
    /// Invitation and password-reset tokens deleted.
    pub user_tokens: u64,
    /// Audit events deleted.
    pub audit_events: u64,
    /// Finished deliveries and resolved subscription firings deleted (by
    /// the audit trail's age: both are history).
    pub deliveries: u64,
    /// Bytes of stored results left, per organization id.
    pub stored_bytes: BTreeMap<String, u64>,
}

/// The latest succeeded run of each saved query (every query a dashboard
/// widget shows is one) and of each schedule.
const PROTECTED: &str = "SELECT id FROM ( \
      SELECT r.id, ROW_NUMBER() OVER (PARTITION BY r.query_id ORDER BY r.finished_at DESC, r.id DESC) AS rn \
      FROM runs r WHERE r.status = 'succeeded' AND r.query_id IS NOT NULL \
    ) by_query WHERE rn = 1 \
    UNION SELECT id FROM ( \
      SELECT r.id, ROW_NUMBER() OVER (PARTITION BY r.schedule_id ORDER BY r.finished_at DESC, r.id DESC) AS rn \
      FROM runs r WHERE r.status = 'succeeded' AND r.schedule_id IS NOT NULL \
    ) by_schedule WHERE rn = 1";

/// Rows deleted per statement, so one pass never holds a long lock.
const BATCH: i64 = 5_000;

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
            let cutoff = now_micros().saturating_sub(micros(max_age));
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
        let now = now_micros();
        if self.prune_tokens {
            report.refresh_tokens =
                delete_in_batches(store, "refresh_tokens", "expires_at < $1", now).await?;
            report.user_tokens = delete_in_batches(
                store,
                "user_tokens",
                "used_at IS NOT NULL OR expires_at < $1",
                now,
            )
            .await?;
        }
        if let Some(max_age) = self.audit_max_age {
            let cutoff = now.saturating_sub(micros(max_age));
            report.audit_events =
                delete_in_batches(store, "audit_events", "created_at < $1", cutoff).await?;
            let finished = "status IN ('delivered', 'failed') AND created_at < $1";
            report.deliveries = delete_in_batches(store, "deliveries", finished, cutoff).await?
                + delete_in_batches(
                    store,
                    "subscription_firings",
                    "status = 'done' AND created_at < $1",
                    cutoff,
                )
                .await?;
        }
        report.stored_bytes = stored_bytes(store).await?;
        for (what, n) in [
            ("runs", report.runs),
            ("results", report.results),
            ("refresh_tokens", report.refresh_tokens),
            ("user_tokens", report.user_tokens),
            ("audit_events", report.audit_events),
            ("deliveries", report.deliveries),
        ] {
            crate::ops::retention_deleted(what, n);
        }
        crate::ops::stored_bytes_gauge(services, &report.stored_bytes);
        Ok(report)
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Deletes the rows of `table` where `condition` (with `$1` bound to
/// `value`) holds, [`BATCH`] at a time; returns how many. `table` and
/// `condition` are fixed text, never input.
async fn delete_in_batches(
    store: &MetadataStore,
    table: &'static str,
    condition: &'static str,
    value: i64,
) -> Result<u64> {
    let sql = format!(
        "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {condition} LIMIT {BATCH})"
    );
    let mut deleted = 0;
    loop {
        let mut tx = store.write().await?;
        let done = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        deleted += done.rows_affected();
        if done.rows_affected() < BATCH.unsigned_abs() {
            return Ok(deleted);
        }
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
                    Ok(report)
                        if report.runs
                            + report.refresh_tokens
                            + report.user_tokens
                            + report.audit_events
                            + report.deliveries
                            > 0 =>
                    {
                        tracing::info!(
                            runs = report.runs,
                            results = report.results,
                            refresh_tokens = report.refresh_tokens,
                            user_tokens = report.user_tokens,
                            audit_events = report.audit_events,
                            deliveries = report.deliveries,
                            "retention deleted what it no longer keeps"
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
