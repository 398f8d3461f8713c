//! What a process tells its operator: the metrics the application records
//! (every name, its labels and meaning, listed once in [`METRICS`]), the
//! gauges read from the metadata store when metrics are scraped, and the
//! check of the token that guards them.
//!
//! Metrics are recorded through the `metrics` facade; a host installs a
//! recorder (Prometheus) and serves it, with [`HISTOGRAM_BUCKETS`]. This
//! module serves nothing and installs nothing, so an embedder that records
//! no metrics pays for none.
//!
//! Labels carry ids (organization, datasource), never names: names are not
//! unique across organizations, and two series with the same labels would
//! overwrite each other. Gauges of label sets that disappear (a status with
//! no more runs, a deleted datasource) are set to 0 rather than left at
//! their last value.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use loupe_core::Result;
use secrecy::{ExposeSecret, SecretString};

use crate::meta::{col, db_error, now_micros};
use crate::runs::RunStatus;
use crate::services::Services;

/// A metric's kind, as Prometheus shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// A value now.
    Gauge,
    /// A distribution of observations, in buckets.
    Histogram,
}

/// One metric: its name, kind, labels and meaning.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// The name, as scraped.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// The labels of its series.
    pub labels: &'static [&'static str],
    /// What it measures.
    pub help: &'static str,
}

macro_rules! metrics_table {
    ($($constant:ident = $name:literal, $kind:ident, [$($label:literal),*], $help:literal;)*) => {
        $(
            #[doc = $help]
            pub const $constant: &str = $name;
        )*
        /// Every metric Loupe records, in one place: hosts describe them to
        /// their recorder from this list, and the operations guide lists
        /// the same (a test checks it).
        pub const METRICS: &[Metric] = &[$(Metric {
            name: $name,
            kind: MetricKind::$kind,
            labels: &[$($label),*],
            help: $help,
        }),*];
    };
}

metrics_table! {
    HTTP_REQUESTS = "loupe_http_requests_total", Counter, ["route", "method", "status"],
        "HTTP requests answered, by route (operation id), method and status.";
    HTTP_REQUEST_DURATION = "loupe_http_request_duration_seconds", Histogram, ["route"],
        "Time to answer an HTTP request, by route.";
    RUN_DURATION = "loupe_run_duration_seconds", Histogram, ["kind", "outcome"],
        "Time from claiming a run to the end of the attempt, by datasource kind and outcome.";
    RUN_QUEUE_WAIT = "loupe_run_queue_wait_seconds", Histogram, ["kind", "outcome"],
        "Time a run waited between being ready (queued, or its retry due) and being claimed, by datasource kind and the attempt's outcome.";
    RUNS_CLAIMED = "loupe_runs_claimed_total", Counter, ["kind"],
        "Attempts claimed by this process's runner, by datasource kind.";
    RUNS_RETRIED = "loupe_runs_retried_total", Counter, ["kind", "code"],
        "Attempts that failed with an error that may pass and were queued again, by datasource kind and error code.";
    RUNS_FAILED = "loupe_runs_failed_total", Counter, ["kind", "code"],
        "Runs that failed for good, by datasource kind and error code.";
    SCHEDULE_LAG = "loupe_schedule_lag_seconds", Histogram, ["outcome"],
        "Time from a schedule's due time to its run being queued (or refused), by outcome.";
    SCHEDULES_FIRED = "loupe_schedules_fired_total", Counter, ["outcome"],
        "Schedule occurrences fired by this process: queued, or refused by admission or a quota.";
    SCHEDULER_LAST_TICK = "loupe_scheduler_last_tick_timestamp_seconds", Gauge, [],
        "When this process's scheduler last looked for due schedules without failing (Unix time).";
    DELIVERY_ATTEMPTS = "loupe_delivery_attempts_total", Counter, ["outcome"],
        "Notification attempts by this process: delivered, retry (a transient failure) or failed.";
    RETENTION_DELETED = "loupe_retention_deleted_total", Counter, ["what"],
        "Rows and stored results deleted by retention: runs, results, refresh_tokens, user_tokens, audit_events, deliveries.";
    RETENTION_LAST_PASS = "loupe_retention_last_pass_timestamp_seconds", Gauge, [],
        "When retention last completed a pass in this process (Unix time).";
    RETENTION_FAILURES = "loupe_retention_failures_total", Counter, [],
        "Retention passes that failed.";
    STORED_BYTES = "loupe_stored_result_bytes", Gauge, ["org_id"],
        "Bytes of stored results, by organization.";
    RUNS = "loupe_runs", Gauge, ["org_id", "datasource_id", "kind", "status"],
        "Runs in the metadata store, by organization, datasource and status (deployment-wide; every process reports the same).";
    RUN_CACHE_HITS = "loupe_run_cache_hits", Gauge, ["org_id", "datasource_id", "kind"],
        "Starts answered from a stored result instead of running again, by datasource (deployment-wide).";
    QUEUE_DEPTH = "loupe_queue_depth", Gauge, [],
        "Runs waiting in the queue (deployment-wide).";
    QUEUE_OLDEST = "loupe_queue_oldest_seconds", Gauge, [],
        "Age of the oldest run waiting in the queue, 0 when none waits (deployment-wide).";
    METADATA_POOL_CONNECTIONS = "loupe_metadata_pool_connections", Gauge, ["state"],
        "This process's connections to the metadata database, idle or in use.";
    METADATA_POOL_MAX = "loupe_metadata_pool_max_connections", Gauge, [],
        "The most connections this process opens to the metadata database.";
    DATASOURCE_POOL_CONNECTIONS = "loupe_datasource_pool_connections", Gauge, ["datasource_id", "kind", "state"],
        "This process's connections to a datasource, idle or in use (postgres and mysql).";
    DATASOURCE_POOL_MAX = "loupe_datasource_pool_max_connections", Gauge, ["datasource_id", "kind"],
        "The most connections this process opens to a datasource.";
    DATASOURCE_POOL_WAITING = "loupe_datasource_pool_waiting", Gauge, ["datasource_id", "kind"],
        "Statements of this process waiting for a connection to a datasource.";
    BUILD_INFO = "loupe_build_info", Gauge, ["version", "role"],
        "Always 1: the version and role of this process.";
}

/// Buckets of the histograms, in seconds: requests are quick, runs and
/// queue waits take from milliseconds to the run timeout, schedules should
/// fire within a tick or two.
pub const HISTOGRAM_BUCKETS: &[(&str, &[f64])] = &[
    (
        HTTP_REQUEST_DURATION,
        &[
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ],
    ),
    (RUN_DURATION, RUN_BUCKETS),
    (RUN_QUEUE_WAIT, RUN_BUCKETS),
    (
        SCHEDULE_LAG,
        &[
            0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
        ],
    ),
];

const RUN_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0,
];

/// Describes every metric of [`METRICS`] to the installed recorder, so the
/// scrape carries their help text.
pub fn describe() {
    for metric in METRICS {
        let help = metric.help;
        match metric.kind {
            MetricKind::Counter => metrics::describe_counter!(metric.name, help),
            MetricKind::Gauge => metrics::describe_gauge!(metric.name, help),
            MetricKind::Histogram => {
                metrics::describe_histogram!(metric.name, metrics::Unit::Seconds, help)
            }
        }
    }
}

/// Sets [`BUILD_INFO`] for a process running `role`.
pub fn build_info(role: &str) {
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "role" => role.to_owned())
        .set(1.0);
}

/// True when `authorization` (the header's value) is `Bearer <token>`,
/// compared in constant time. Without a configured token, anyone may read
/// metrics.
pub fn metrics_allowed(token: Option<&SecretString>, authorization: Option<&str>) -> bool {
    use subtle::ConstantTimeEq;
    let Some(token) = token else {
        return true;
    };
    let Some(given) = authorization.and_then(|h| {
        h.strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
    }) else {
        return false;
    };
    bool::from(
        given
            .trim()
            .as_bytes()
            .ct_eq(token.expose_secret().as_bytes()),
    )
}

/// How an attempt of a run ended, as metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptOutcome {
    Succeeded,
    Failed,
    Retried,
    Cancelled,
    /// Handed back to the queue on shutdown.
    Released,
    /// Another runner took the run over (this attempt's lease ran out).
    Lost,
}

impl AttemptOutcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Retried => "retried",
            Self::Cancelled => "cancelled",
            Self::Released => "released",
            Self::Lost => "lost",
        }
    }
}

/// Records the end of an attempt of a run on a datasource of `kind`.
pub(crate) fn attempt_ended(
    kind: &str,
    outcome: AttemptOutcome,
    queue_wait: Duration,
    duration: Duration,
    code: Option<&str>,
) {
    let labels = [
        ("kind", kind.to_owned()),
        ("outcome", outcome.as_str().to_owned()),
    ];
    metrics::histogram!(RUN_DURATION, &labels).record(duration.as_secs_f64());
    metrics::histogram!(RUN_QUEUE_WAIT, &labels).record(queue_wait.as_secs_f64());
    let code = code.unwrap_or("none").to_owned();
    match outcome {
        AttemptOutcome::Retried => {
            metrics::counter!(RUNS_RETRIED, "kind" => kind.to_owned(), "code" => code).increment(1)
        }
        AttemptOutcome::Failed => {
            metrics::counter!(RUNS_FAILED, "kind" => kind.to_owned(), "code" => code).increment(1)
        }
        _ => {}
    }
}

/// Records a claimed attempt.
pub(crate) fn claimed(kind: &str) {
    metrics::counter!(RUNS_CLAIMED, "kind" => kind.to_owned()).increment(1);
}

/// Records a run failed for good without an attempt (its runner vanished
/// too often).
pub(crate) fn failed_unclaimed(kind: &str, code: &str) {
    metrics::counter!(RUNS_FAILED, "kind" => kind.to_owned(), "code" => code.to_owned())
        .increment(1);
}

/// Records a fired schedule occurrence, `lag` after it was due.
pub(crate) fn schedule_fired(queued: bool, lag: Duration) {
    let outcome = if queued { "queued" } else { "refused" };
    metrics::histogram!(SCHEDULE_LAG, "outcome" => outcome).record(lag.as_secs_f64());
    metrics::counter!(SCHEDULES_FIRED, "outcome" => outcome).increment(1);
}

/// Records a scheduler tick that did not fail.
pub(crate) fn scheduler_ticked() {
    metrics::gauge!(SCHEDULER_LAST_TICK).set(unix_seconds());
}

/// Records the end of an attempt at a notification.
pub(crate) fn delivery_attempted(outcome: &str) {
    metrics::counter!(DELIVERY_ATTEMPTS, "outcome" => outcome.to_owned()).increment(1);
}

/// Records what a retention pass deleted.
pub(crate) fn retention_deleted(what: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!(RETENTION_DELETED, "what" => what).increment(n);
    }
}

/// Records the end of a retention pass.
pub(crate) fn retention_passed(ok: bool) {
    if ok {
        metrics::gauge!(RETENTION_LAST_PASS).set(unix_seconds());
    } else {
        metrics::counter!(RETENTION_FAILURES).increment(1);
    }
}

fn unix_seconds() -> f64 {
    now_micros() as f64 / 1e6
}

/// A gauge's series, as label names and values.
type Labels = Vec<(&'static str, String)>;

/// The label sets this process last set, per gauge, so that a series that
/// is no longer reported is set to 0 instead of keeping its last value.
/// Kept per [`Services`], as the store it counts.
#[derive(Debug, Default)]
pub(crate) struct GaugeSeries(Mutex<HashMap<&'static str, HashSet<Labels>>>);

impl GaugeSeries {
    /// Sets gauge `name` to each value of `now`, and to 0 every series it
    /// was set for last time and is not in `now`.
    pub(crate) fn set(&self, name: &'static str, now: Vec<(Labels, f64)>) {
        let mut reported = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let before = reported.entry(name).or_default();
        let mut seen = HashSet::with_capacity(now.len());
        for (labels, value) in now {
            metrics::gauge!(name, &labels).set(value);
            seen.insert(labels);
        }
        for gone in before.difference(&seen) {
            metrics::gauge!(name, gone).set(0.0);
        }
        *before = seen;
    }
}

/// Reads the gauges of the deployment (runs by status, the queue, stored
/// bytes) from the metadata store, and this process's pools, and sets
/// them. Hosts call it through [`scrape`] when metrics are scraped.
///
/// # Errors
/// When the metadata store cannot be read; the pool gauges are set anyway.
pub async fn refresh_gauges(services: &Services) -> Result<()> {
    let series = &services.shared.gauges;
    let pool = services.store().pool();
    let open = pool.size() as usize;
    let idle = pool.num_idle();
    series.set(
        METADATA_POOL_CONNECTIONS,
        vec![
            (vec![("state", "idle".to_owned())], idle as f64),
            (
                vec![("state", "in_use".to_owned())],
                open.saturating_sub(idle) as f64,
            ),
        ],
    );
    metrics::gauge!(METADATA_POOL_MAX).set(f64::from(pool.options().get_max_connections()));
    datasource_pools(services);
    run_gauges(services).await?;
    stored_bytes_gauge(
        services,
        &crate::runner::stored_bytes(services.store()).await?,
    );
    Ok(())
}

/// Refreshes the gauges and hands the outcome to `render`, under one
/// process-wide lock: the gauges live in the process's one recorder, so
/// two deployments in a process (an embedding host, or tests) scraping at
/// once would otherwise render each other's unlabelled gauges, such as
/// [`QUEUE_DEPTH`].
pub async fn scrape<T>(services: &Services, render: impl FnOnce(Result<()>) -> T) -> T {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _held = ONE_AT_A_TIME.lock().await;
    let refreshed = refresh_gauges(services).await;
    render(refreshed)
}

/// Sets [`STORED_BYTES`] for every organization in `bytes`.
pub(crate) fn stored_bytes_gauge(services: &Services, bytes: &BTreeMap<String, u64>) {
    services.shared.gauges.set(
        STORED_BYTES,
        bytes
            .iter()
            .map(|(org, n)| (vec![("org_id", org.clone())], *n as f64))
            .collect(),
    );
}

fn datasource_pools(services: &Services) {
    let mut connections = Vec::new();
    let mut max = Vec::new();
    let mut waiting = Vec::new();
    for (id, datasource) in services.shared.datasource_cache.live() {
        let Some(status) = datasource.pool_status() else {
            continue;
        };
        let labels = || {
            vec![
                ("datasource_id", id.clone()),
                ("kind", datasource.kind().to_owned()),
            ]
        };
        for (state, n) in [
            ("idle", status.open.saturating_sub(status.in_use)),
            ("in_use", status.in_use),
        ] {
            let mut l = labels();
            l.push(("state", state.to_owned()));
            connections.push((l, n as f64));
        }
        max.push((labels(), status.max as f64));
        waiting.push((labels(), status.waiting as f64));
    }
    let series = &services.shared.gauges;
    series.set(DATASOURCE_POOL_CONNECTIONS, connections);
    series.set(DATASOURCE_POOL_MAX, max);
    series.set(DATASOURCE_POOL_WAITING, waiting);
}

const STATUSES: [RunStatus; 5] = [
    RunStatus::Queued,
    RunStatus::Running,
    RunStatus::Succeeded,
    RunStatus::Failed,
    RunStatus::Cancelled,
];

async fn run_gauges(services: &Services) -> Result<()> {
    let rows = sqlx::query(
        "SELECT r.org_id, r.datasource_id, d.kind, r.status, count(*) AS runs, \
         CAST(COALESCE(sum(r.cache_hits), 0) AS BIGINT) AS hits, min(r.queued_at) AS oldest \
         FROM runs r JOIN datasources d ON d.id = r.datasource_id \
         GROUP BY r.org_id, r.datasource_id, d.kind, r.status",
    )
    .fetch_all(services.store().pool())
    .await
    .map_err(db_error)?;
    // Every status of every datasource with runs, 0 where it has none, so
    // a status that empties shows 0 on the next scrape.
    let mut counts: BTreeMap<(String, String, String), [i64; 5]> = BTreeMap::new();
    let mut hits: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    let mut queued = 0;
    let mut oldest: Option<i64> = None;
    for row in &rows {
        let key = (
            col::<String>(row, "org_id")?,
            col::<String>(row, "datasource_id")?,
            col::<String>(row, "kind")?,
        );
        let status: String = col(row, "status")?;
        let n: i64 = col(row, "runs")?;
        if let Some(i) = STATUSES.iter().position(|s| s.as_str() == status) {
            counts.entry(key.clone()).or_default()[i] = n;
        }
        *hits.entry(key).or_default() += col::<i64>(row, "hits")?;
        if status == RunStatus::Queued.as_str() {
            queued += n;
            let at: Option<i64> = col(row, "oldest")?;
            oldest = match (oldest, at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    let labels = |(org, datasource, kind): &(String, String, String)| {
        vec![
            ("org_id", org.clone()),
            ("datasource_id", datasource.clone()),
            ("kind", kind.clone()),
        ]
    };
    let mut runs = Vec::new();
    for (key, by_status) in &counts {
        for (status, n) in STATUSES.iter().zip(by_status) {
            let mut l = labels(key);
            l.push(("status", status.as_str().to_owned()));
            runs.push((l, *n as f64));
        }
    }
    let series = &services.shared.gauges;
    series.set(RUNS, runs);
    series.set(
        RUN_CACHE_HITS,
        hits.iter().map(|(k, n)| (labels(k), *n as f64)).collect(),
    );
    metrics::gauge!(QUEUE_DEPTH).set(queued as f64);
    let age = oldest.map_or(0.0, |at| (now_micros() - at).max(0) as f64 / 1e6);
    metrics::gauge!(QUEUE_OLDEST).set(age);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_need_the_exact_bearer_token_when_one_is_set() {
        let token = SecretString::from("s3cret-token".to_owned());
        assert!(metrics_allowed(None, None));
        assert!(metrics_allowed(Some(&token), Some("Bearer s3cret-token")));
        for refused in [
            None,
            Some(""),
            Some("s3cret-token"),
            Some("Bearer s3cret-tokenx"),
            Some("Bearer s3cret"),
            Some("Basic s3cret-token"),
        ] {
            assert!(!metrics_allowed(Some(&token), refused), "{refused:?}");
        }
    }

    #[test]
    fn every_metric_is_named_once_and_histograms_have_buckets() {
        let mut names = HashSet::new();
        for metric in METRICS {
            assert!(names.insert(metric.name), "{} twice", metric.name);
            assert!(metric.name.starts_with("loupe_"), "{}", metric.name);
            if metric.kind == MetricKind::Histogram {
                assert!(metric.name.ends_with("_seconds"), "{}", metric.name);
                assert!(
                    HISTOGRAM_BUCKETS.iter().any(|(n, _)| *n == metric.name),
                    "{} has no buckets",
                    metric.name
                );
            }
            if metric.kind == MetricKind::Counter {
                assert!(metric.name.ends_with("_total"), "{}", metric.name);
            }
        }
    }
}
