//! The run queue's SQL: claiming under concurrency limits, leases, and
//! finishing an attempt. Each statement runs on both metadata backends.
//!
//! Claims are made one claimer at a time: SQLite's write transaction
//! serializes them, and on PostgreSQL a transaction-scoped advisory lock
//! does (so per-datasource and per-user limits hold across processes, which
//! `SKIP LOCKED` alone would not guarantee). A claim is one short
//! transaction that takes up to all free slots at once.

use loupe_core::codes;
use std::collections::HashMap;

use sqlx::any::AnyRow;
use tracing::Instrument;

use crate::meta::{Backend, MetadataStore, db_error, new_id, now_micros};
use crate::meta::{col, to_json};
use crate::trace_context::{self, TraceParent};
use loupe_core::Truncation;
use loupe_core::{BoundParam, Restrictions, Statement};
use loupe_core::{Error, Result};

/// The advisory lock id that serializes claims on PostgreSQL.
const CLAIM_LOCK: i64 = 0x6c6f_7570_655f_7131; // "loupe_q1"

/// A run a runner has claimed.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub(crate) id: String,
    pub(crate) token: String,
    pub(crate) org_id: String,
    /// The user who queued it (none for a schedule's run of a deleted
    /// owner).
    pub(crate) created_by: Option<String>,
    pub(crate) datasource_id: String,
    /// The datasource's kind, for metrics.
    pub(crate) kind: String,
    pub(crate) sql: String,
    pub(crate) params: Vec<BoundParam>,
    /// What the caller who queued it is restricted to.
    pub(crate) restrictions: Restrictions,
    pub(crate) attempts: i32,
    pub(crate) schedule_id: Option<String>,
    /// How long it waited, from being ready (queued, or its retry due) to
    /// this claim.
    pub(crate) waited_micros: i64,
    /// The attempt's span: started at the claim, continuing the trace of
    /// the request that queued the run.
    pub(crate) span: tracing::Span,
}

impl Claimed {
    pub(crate) fn statement(&self, dialect: loupe_core::Dialect) -> Statement {
        Statement {
            sql: self.sql.clone(),
            params: self.params.clone(),
            dialect,
            restrictions: self.restrictions.clone(),
        }
    }
}

/// Limits a claim respects.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClaimLimits {
    pub(crate) slots: usize,
    pub(crate) per_datasource: usize,
    pub(crate) per_user: usize,
    pub(crate) lease_micros: i64,
    pub(crate) max_attempts: i32,
}

fn counts(rows: &[AnyRow]) -> Result<HashMap<String, usize>> {
    let mut out = HashMap::new();
    for row in rows {
        let key: Option<String> = col(row, "k")?;
        let n: i64 = col(row, "n")?;
        if let Some(key) = key {
            out.insert(key, usize::try_from(n).unwrap_or(usize::MAX));
        }
    }
    Ok(out)
}

/// Claims up to `limits.slots` runs for `runner`: queued runs whose
/// backoff has passed, and running runs whose lease ran out (their runner
/// died), interactive before scheduled, oldest first, skipping those whose
/// datasource or user is at its limit and those of paused datasources.
/// Runs that ran out of attempts on an expired lease are failed instead.
pub(crate) async fn claim(
    store: &MetadataStore,
    runner: &str,
    limits: ClaimLimits,
) -> Result<Vec<Claimed>> {
    if limits.slots == 0 {
        return Ok(Vec::new());
    }
    let now = now_micros();
    let mut tx = store.write().await?;
    if store.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CLAIM_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    }
    let busy_sources = sqlx::query(
        "SELECT datasource_id AS k, count(*) AS n FROM runs WHERE status = 'running' AND lease_until >= $1 GROUP BY datasource_id",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    let busy_users = sqlx::query(
        "SELECT created_by AS k, count(*) AS n FROM runs WHERE status = 'running' AND lease_until >= $1 GROUP BY created_by",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    let mut by_source = counts(&busy_sources)?;
    let mut by_user = counts(&busy_users)?;
    // Look a little past the free slots, so runs held back by a limit do
    // not starve the ones behind them.
    let window = i64::try_from(limits.slots.saturating_mul(4).max(32)).unwrap_or(256);
    let candidates = sqlx::query(
        "SELECT r.*, d.kind AS datasource_kind FROM runs r JOIN datasources d ON d.id = r.datasource_id \
         WHERE d.paused = 0 AND ((r.status = 'queued' AND r.not_before <= $1 AND r.cancel_requested = 0) \
            OR (r.status = 'running' AND r.lease_until < $1)) \
         ORDER BY r.priority DESC, r.queued_at, r.id LIMIT $2",
    )
    .bind(now)
    .bind(window)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    let mut claimed = Vec::new();
    for row in &candidates {
        if claimed.len() >= limits.slots {
            break;
        }
        let id: String = col(row, "id")?;
        let status: String = col(row, "status")?;
        let attempts: i32 = col(row, "attempts")?;
        let abandoned = status == "running";
        if abandoned
            && (attempts >= limits.max_attempts || crate::meta::flag(row, "cancel_requested")?)
        {
            let (status, code, message) = if crate::meta::flag(row, "cancel_requested")? {
                (
                    "cancelled",
                    codes::RUN_CANCELLED.as_str(),
                    "cancelled while its runner was gone".to_owned(),
                )
            } else {
                (
                    "failed",
                    codes::RUN_ABANDONED.as_str(),
                    format!("its runner stopped answering {attempts} times; giving up"),
                )
            };
            sqlx::query(
                "UPDATE runs SET status = $1, error_code = $2, error_message = $3, finished_at = $4, \
                 claimed_by = NULL, attempt_token = NULL, lease_until = NULL WHERE id = $5",
            )
            .bind(status)
            .bind(code)
            .bind(message)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            if status == "failed" {
                let kind: String = col(row, "datasource_kind")?;
                crate::ops::failed_unclaimed(&kind, codes::RUN_ABANDONED.as_str());
            }
            continue;
        }
        let source: String = col(row, "datasource_id")?;
        let user: Option<String> = col(row, "created_by")?;
        if by_source.get(&source).copied().unwrap_or(0) >= limits.per_datasource {
            continue;
        }
        if let Some(user) = &user
            && by_user.get(user).copied().unwrap_or(0) >= limits.per_user
        {
            continue;
        }
        let kind: String = col(row, "datasource_kind")?;
        let traceparent: Option<String> = col(row, "traceparent")?;
        let span = run_span(&id, &source, &kind, attempts + 1, traceparent.as_deref());
        let token = new_id();
        sqlx::query(
            "UPDATE runs SET status = 'running', claimed_by = $1, attempt_token = $2, lease_until = $3, \
             attempts = attempts + 1, started_at = COALESCE(started_at, $4) WHERE id = $5",
        )
        .bind(runner.to_owned())
        .bind(token.clone())
        .bind(now + limits.lease_micros)
        .bind(now)
        .bind(id.clone())
        .execute(&mut *tx)
        .instrument(tracing::info_span!(parent: &span, "claim", runner))
        .await
        .map_err(db_error)?;
        *by_source.entry(source.clone()).or_default() += 1;
        if let Some(user) = &user {
            *by_user.entry(user.clone()).or_default() += 1;
        }
        let params: String = col(row, "parameters")?;
        let queued_at: i64 = col(row, "queued_at")?;
        let not_before: i64 = col(row, "not_before")?;
        let ready = if abandoned {
            // Ready again when its runner's lease ran out.
            col::<Option<i64>>(row, "lease_until")?.unwrap_or(queued_at)
        } else {
            queued_at.max(not_before)
        };
        claimed.push(Claimed {
            id,
            token,
            org_id: col(row, "org_id")?,
            created_by: user,
            datasource_id: source,
            kind,
            sql: col(row, "sql")?,
            params: serde_json::from_str(&params)
                .map_err(|e| Error::internal_from("stored run parameters", e))?,
            restrictions: match col::<Option<String>>(row, "restrictions")? {
                Some(text) => serde_json::from_str(&text)
                    .map_err(|e| Error::internal_from("stored run restrictions", e))?,
                None => Restrictions::default(),
            },
            attempts: attempts + 1,
            schedule_id: col(row, "schedule_id")?,
            waited_micros: (now - ready).max(0),
            span,
        });
    }
    tx.commit().await.map_err(db_error)?;
    for run in &claimed {
        crate::ops::claimed(&run.kind);
    }
    Ok(claimed)
}

/// The span of one attempt of a run: a child of the trace the run was
/// queued in, when its row carries a valid `traceparent`.
fn run_span(
    id: &str,
    datasource_id: &str,
    kind: &str,
    attempt: i32,
    traceparent: Option<&str>,
) -> tracing::Span {
    let parent = traceparent.and_then(TraceParent::parse);
    // A root of its own in this process: whatever span the claim loop is
    // in is not what the run belongs to.
    let span = tracing::info_span!(
        parent: None,
        "run",
        run = id,
        datasource_id,
        kind,
        attempt,
        trace_id = parent.as_ref().map(TraceParent::trace_id),
        outcome = tracing::field::Empty,
    );
    if let Some(parent) = &parent {
        trace_context::continue_trace(&span, parent);
    }
    span
}

/// What a runner learns when it renews its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaseState {
    /// Still ours; carry on.
    Held,
    /// Someone asked to cancel the run.
    CancelRequested,
    /// Another runner holds the run now (our lease ran out): stop.
    Lost,
}

/// Extends the lease of an attempt and reports whether to go on.
pub(crate) async fn renew(
    store: &MetadataStore,
    claimed: &Claimed,
    lease_micros: i64,
) -> Result<LeaseState> {
    let renewed = sqlx::query("UPDATE runs SET lease_until = $1 WHERE id = $2 AND attempt_token = $3 AND status = 'running'")
        .bind(now_micros() + lease_micros)
        .bind(claimed.id.clone())
        .bind(claimed.token.clone())
        .execute(store.pool())
        .await
        .map_err(db_error)?;
    if renewed.rows_affected() == 0 {
        return Ok(LeaseState::Lost);
    }
    cancel_state(store, claimed).await
}

/// Whether the attempt should stop, without renewing the lease.
pub(crate) async fn cancel_state(store: &MetadataStore, claimed: &Claimed) -> Result<LeaseState> {
    let row = sqlx::query("SELECT cancel_requested, attempt_token, status FROM runs WHERE id = $1")
        .bind(claimed.id.clone())
        .fetch_optional(store.pool())
        .await
        .map_err(db_error)?;
    let Some(row) = row else {
        return Ok(LeaseState::Lost);
    };
    let token: Option<String> = col(&row, "attempt_token")?;
    let status: String = col(&row, "status")?;
    Ok(
        if token.as_deref() != Some(claimed.token.as_str()) || status != "running" {
            LeaseState::Lost
        } else if crate::meta::flag(&row, "cancel_requested")? {
            LeaseState::CancelRequested
        } else {
            LeaseState::Held
        },
    )
}

/// How an attempt ended.
#[derive(Debug)]
pub(crate) enum Finish<'a> {
    Succeeded {
        location: &'a str,
        rows: u64,
        bytes: u64,
        truncated: Option<&'a Truncation>,
    },
    Failed {
        code: &'a str,
        message: &'a str,
    },
    Retry {
        code: &'a str,
        message: &'a str,
        not_before: i64,
    },
    Cancelled,
    /// Back to the queue as if never claimed (shutdown).
    Released,
}

/// Records how an attempt ended, if it still holds the run. Returns false
/// when another attempt owns the run (this one's result must be dropped).
pub(crate) async fn finish(
    store: &MetadataStore,
    claimed: &Claimed,
    how: Finish<'_>,
) -> Result<bool> {
    let now = now_micros();
    let clear = "claimed_by = NULL, attempt_token = NULL, lease_until = NULL";
    let guard = "WHERE id = $1 AND attempt_token = $2 AND status = 'running'";
    let mut tx = store.write().await?;
    let done = match how {
        Finish::Succeeded {
            location,
            rows,
            bytes,
            truncated,
        } => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE runs SET status = 'succeeded', finished_at = $3, row_count = $4, byte_count = $5, truncated = $6, \
             result_location = $7, error_code = NULL, error_message = NULL, {clear} {guard}"
        )))
        .bind(claimed.id.clone())
        .bind(claimed.token.clone())
        .bind(now)
        .bind(i64::try_from(rows).unwrap_or(i64::MAX))
        .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
        .bind(truncated.map(to_json).transpose()?)
        .bind(location.to_owned()),
        Finish::Failed { code, message } => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE runs SET status = 'failed', finished_at = $3, error_code = $4, error_message = $5, {clear} {guard}"
        )))
        .bind(claimed.id.clone())
        .bind(claimed.token.clone())
        .bind(now)
        .bind(code.to_owned())
        .bind(clip(message)),
        Finish::Retry {
            code,
            message,
            not_before,
        } => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE runs SET status = 'queued', not_before = $3, error_code = $4, error_message = $5, {clear} {guard}"
        )))
        .bind(claimed.id.clone())
        .bind(claimed.token.clone())
        .bind(not_before)
        .bind(code.to_owned())
        .bind(clip(message)),
        Finish::Cancelled => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE runs SET status = 'cancelled', finished_at = $3, error_code = $4, \
             error_message = 'cancelled while running', {clear} {guard}"
        )))
        .bind(claimed.id.clone())
        .bind(claimed.token.clone())
        .bind(now)
        .bind(codes::RUN_CANCELLED.as_str()),
        Finish::Released => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE runs SET status = 'queued', attempts = attempts - 1, not_before = $3, {clear} {guard}"
        )))
        .bind(claimed.id.clone())
        .bind(claimed.token.clone())
        .bind(0_i64),
    }
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    let held = done.rows_affected() == 1;
    if held && let Some(schedule) = &claimed.schedule_id {
        let status = match how {
            Finish::Succeeded { .. } => Some("succeeded"),
            Finish::Failed { .. } => Some("failed"),
            Finish::Cancelled => Some("cancelled"),
            Finish::Retry { .. } | Finish::Released => None,
        };
        if let Some(status) = status {
            sqlx::query("UPDATE schedules SET last_status = $1 WHERE id = $2")
                .bind(status)
                .bind(schedule.clone())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
    }
    tx.commit().await.map_err(db_error)?;
    Ok(held)
}

/// Error messages are kept to 10,000 characters.
fn clip(message: &str) -> String {
    message.chars().take(10_000).collect()
}
