//! `/runs`: ad-hoc runs, status, cancellation, and results (pages and
//! downloads).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use loupe_core::ParameterValues;
use loupe_core::services::{Run, StartKind, Started};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::common::{ts, ts_opt};
use crate::state::AppState;

/// Runs and results.
#[derive(Debug)]
pub(crate) struct RunsApi(pub(crate) Arc<AppState>);

#[OpenApi]
impl RunsApi {}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub(crate) enum RunStatusDto {
    /// Waiting for a runner.
    Queued,
    /// Executing.
    Running,
    /// Done; the result can be read.
    Succeeded,
    /// Failed; see `error_code` and `error_message`.
    Failed,
    /// Cancelled.
    Cancelled,
}

/// A run of a query or of ad-hoc SQL.
#[derive(Debug, Object)]
pub(crate) struct RunDto {
    /// Its id (also its result's).
    pub id: String,
    /// The saved query, if it ran one.
    pub query_id: Option<String>,
    /// The query's version that ran.
    pub query_version: Option<i32>,
    /// Where it runs.
    pub datasource_id: String,
    /// Where it is.
    pub status: RunStatusDto,
    /// Higher runs first.
    pub priority: i16,
    /// Attempts so far.
    pub attempts: i32,
    /// When it was queued.
    pub queued_at: DateTime<Utc>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Rows in the result.
    pub rows: Option<i64>,
    /// Bytes of the stored result.
    pub bytes: Option<i64>,
    /// Why the result was cut short (`rows`, `bytes`), if it was.
    pub truncated: Option<String>,
    /// The error's stable code, when it failed.
    pub error_code: Option<String>,
    /// The error's message, when it failed.
    pub error_message: Option<String>,
    /// Who started it (none for schedules).
    pub created_by: Option<String>,
    /// The schedule that started it.
    pub schedule_id: Option<String>,
    /// How many starts were answered with this run's result.
    pub cache_hits: i32,
}

impl From<Run> for RunDto {
    fn from(r: Run) -> Self {
        use loupe_core::services::RunStatus;
        Self {
            status: match r.status {
                RunStatus::Queued => RunStatusDto::Queued,
                RunStatus::Running => RunStatusDto::Running,
                RunStatus::Succeeded => RunStatusDto::Succeeded,
                RunStatus::Failed => RunStatusDto::Failed,
                RunStatus::Cancelled => RunStatusDto::Cancelled,
            },
            truncated: r.truncated.map(|t| {
                serde_json::to_value(t)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| format!("{t:?}").to_lowercase())
            }),
            id: r.id,
            query_id: r.query_id,
            query_version: r.query_version,
            datasource_id: r.datasource_id,
            priority: r.priority,
            attempts: r.attempts,
            queued_at: ts(r.queued_at),
            started_at: ts_opt(r.started_at),
            finished_at: ts_opt(r.finished_at),
            rows: r.rows,
            bytes: r.bytes,
            error_code: r.error_code,
            error_message: r.error_message,
            created_by: r.created_by,
            schedule_id: r.schedule_id,
            cache_hits: r.cache_hits,
        }
    }
}

/// How a start was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub(crate) enum StartKindDto {
    /// With a recent result.
    Cached,
    /// By joining an identical run in flight.
    Joined,
    /// With a new queued run.
    Queued,
}

/// The run that answers a start.
#[derive(Debug, Object)]
pub(crate) struct StartedDto {
    /// The run; poll `GET /runs/{id}` until it is `succeeded` or `failed`.
    pub run: RunDto,
    /// Cached, joined or queued.
    pub how: StartKindDto,
}

/// A started run.
#[derive(Debug, ApiResponse)]
pub(crate) enum StartedResponse {
    /// Answered by an existing run (cached or joined).
    #[oai(status = 200)]
    Existing(Json<StartedDto>),
    /// A new run was queued.
    #[oai(status = 202)]
    Queued(Json<StartedDto>),
}

impl StartedDto {
    /// 202 for a queued run, 200 for a cached or joined one.
    pub(crate) fn respond(started: Started) -> StartedResponse {
        let how = match started.how {
            StartKind::Cached => StartKindDto::Cached,
            StartKind::Joined => StartKindDto::Joined,
            StartKind::Queued => StartKindDto::Queued,
        };
        let dto = StartedDto {
            run: started.run.into(),
            how,
        };
        if how == StartKindDto::Queued {
            StartedResponse::Queued(Json(dto))
        } else {
            StartedResponse::Existing(Json(dto))
        }
    }
}

/// Parameter values from a JSON object.
pub(crate) fn parameter_values(
    map: std::collections::BTreeMap<String, serde_json::Value>,
) -> ParameterValues {
    map
}
