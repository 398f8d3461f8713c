//! Runs: one execution of a saved query or of ad-hoc SQL, from queued to
//! finished. This module records them and decides who may start and see
//! them; executing them is the runner's job.
//!
//! Starting a run needs `run` on the datasource; seeing one (and its
//! result) needs at least `view`; a run (or query, or datasource) on a
//! datasource the actor has no grant on is not found. A user may have at
//! most `ServicesConfig::queued_runs_per_user` runs waiting in the queue.

use loupe_core::codes;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::actor::{Access, Actor, Role};
use super::groups::{self, visible_datasources};
use super::queries::value_errors;
use super::rls;
use crate::meta::{Backend, Filter, ListPage, ListRequest, ListSpec, db_error, new_id, now_micros};
use crate::meta::{col, fetch_in_org, fetch_one, flag, json, to_json};
use crate::services::Shared;
use loupe_core::ParameterValues;
use loupe_core::ResultId;
use loupe_core::Truncation;
use loupe_core::{BoundParam, Statement, Template};
use loupe_core::{Error, Result};

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for a runner.
    Queued,
    /// A runner is executing it.
    Running,
    /// Its result is stored.
    Succeeded,
    /// It failed; the error is kept.
    Failed,
    /// It was cancelled.
    Cancelled,
}

impl RunStatus {
    /// The status as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses a stored status.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// A run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    /// Its id (also the id of its stored result).
    pub id: String,
    /// The saved query, if it ran one.
    pub query_id: Option<String>,
    /// The query's version that ran.
    pub query_version: Option<i32>,
    /// Where it runs.
    pub datasource_id: String,
    /// The statement, with placeholders.
    pub sql: String,
    /// The bound values.
    pub parameters: Vec<BoundParam>,
    /// Runs with the same key would produce the same result.
    pub cache_key: String,
    /// Where it is.
    pub status: RunStatus,
    /// Higher runs first.
    pub priority: i16,
    /// Attempts so far.
    pub attempts: i32,
    /// When it was queued (µs).
    pub queued_at: i64,
    /// When it started (µs).
    pub started_at: Option<i64>,
    /// When it finished (µs).
    pub finished_at: Option<i64>,
    /// Rows in the result.
    pub rows: Option<i64>,
    /// Bytes of the stored result.
    pub bytes: Option<i64>,
    /// Why the result was cut short, if it was.
    pub truncated: Option<Truncation>,
    /// Where the result is stored.
    pub result_location: Option<String>,
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
    /// `""` for an unrestricted run; else the digest of the restrictions
    /// it ran under (row-level security): only callers under the same
    /// restrictions see it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub context: String,
}

impl Run {
    /// How long the run waited in the queue before it first started.
    pub fn queue_wait(&self) -> Option<Duration> {
        micros_between(self.queued_at, self.started_at?)
    }

    /// From the first start to the end (retries included).
    pub fn execution_time(&self) -> Option<Duration> {
        micros_between(self.started_at?, self.finished_at?)
    }
}

fn micros_between(from: i64, to: i64) -> Option<Duration> {
    u64::try_from(to.checked_sub(from)?)
        .ok()
        .map(Duration::from_micros)
}

/// A run's row, by id.
const BY_ID: &str = "SELECT * FROM runs WHERE id = $1";

/// Priority of runs people wait for.
pub(crate) const INTERACTIVE: i16 = 10;
/// Priority of scheduled runs: after interactive ones.
pub(crate) const SCHEDULED: i16 = 0;

pub(crate) const SPEC: ListSpec = ListSpec {
    from: "runs r",
    alias: "r",
    sorts: &["queued_at", "finished_at", "status"],
    default_sort: "-queued_at",
    filters: &[
        ("status", Filter::Equals("r.status")),
        ("query", Filter::Equals("r.query_id")),
        ("datasource", Filter::Equals("r.datasource_id")),
        ("owner", Filter::Equals("r.created_by")),
        ("schedule", Filter::Equals("r.schedule_id")),
    ],
    created: Some("r.queued_at"),
    updated: None,
};

pub(crate) fn run(row: &AnyRow) -> Result<Run> {
    let status: String = col(row, "status")?;
    let truncated: Option<String> = col(row, "truncated")?;
    Ok(Run {
        id: col(row, "id")?,
        query_id: col(row, "query_id")?,
        query_version: col(row, "query_version")?,
        datasource_id: col(row, "datasource_id")?,
        sql: col(row, "sql")?,
        parameters: json(row, "parameters")?,
        cache_key: col(row, "cache_key")?,
        status: RunStatus::parse(&status)
            .ok_or_else(|| Error::internal(format!("stored run status {status:?}")))?,
        priority: col(row, "priority")?,
        attempts: col(row, "attempts")?,
        queued_at: col(row, "queued_at")?,
        started_at: col(row, "started_at")?,
        finished_at: col(row, "finished_at")?,
        rows: col(row, "row_count")?,
        bytes: col(row, "byte_count")?,
        truncated: truncated.and_then(|t| serde_json::from_str(&t).ok()),
        result_location: col(row, "result_location")?,
        error_code: col(row, "error_code")?,
        error_message: col(row, "error_message")?,
        created_by: col(row, "created_by")?,
        schedule_id: col(row, "schedule_id")?,
        cache_hits: col(row, "cache_hits")?,
        context: col(row, "context")?,
    })
}

/// The key under which identical runs share a result: the datasource, the
/// statement, its values, and the context of the caller's restrictions
/// (`""` when unrestricted), which covers the statement's restrictions.
pub(crate) fn cache_key(
    datasource_id: &str,
    statement: &Statement,
    context: &str,
) -> Result<String> {
    let mut hash = Sha256::new();
    hash.update(datasource_id.as_bytes());
    hash.update([0]);
    hash.update(statement.dialect.name().as_bytes());
    hash.update([0]);
    hash.update(statement.sql.as_bytes());
    hash.update([0]);
    hash.update(to_json(&statement.params)?.as_bytes());
    if !context.is_empty() {
        hash.update([0]);
        hash.update(context.as_bytes());
    }
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Where the results of the runs whose `column` is `id` are stored, one
/// entry per run: read in `tx` before a delete takes the runs with it, to
/// remove the results once it commits ([`delete_results`]). `column` is a
/// fixed name, never input.
pub(crate) async fn result_locations(
    tx: &mut Transaction<'static, Any>,
    column: &'static str,
    id: &str,
) -> Result<Vec<Option<String>>> {
    let sql = format!("SELECT result_location FROM runs WHERE {column} = $1");
    let rows: Vec<(Option<String>,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id.to_owned())
        .fetch_all(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(rows.into_iter().map(|(location,)| location).collect())
}

/// Removes stored results, best effort (a result already gone is fine).
pub(crate) async fn delete_results(shared: &Shared, locations: impl Iterator<Item = String>) {
    let Some(store) = &shared.results else {
        return;
    };
    for location in locations {
        let Ok(id) = ResultId::parse(&location) else {
            continue;
        };
        match store.delete(&id).await {
            Ok(()) | Err(Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!(result = %id, error = %e, "could not delete a stored result"),
        }
    }
}

/// How a start was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StartKind {
    /// With a recent succeeded run's result.
    Cached,
    /// By joining an identical run already queued or running.
    Joined,
    /// With a new queued run.
    Queued,
}

/// The run that answers a start, and how.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Started {
    /// The run.
    pub run: Run,
    /// Cached, joined or queued.
    pub how: StartKind,
}

/// What a new run row holds.
#[derive(Debug)]
pub(crate) struct NewRun<'a> {
    pub(crate) org_id: &'a str,
    pub(crate) query: Option<(&'a str, i32)>,
    pub(crate) datasource_id: &'a str,
    pub(crate) statement: &'a Statement,
    /// The caller's restrictions' context (`""` when unrestricted).
    pub(crate) context: &'a str,
    pub(crate) priority: i16,
    pub(crate) created_by: Option<String>,
    pub(crate) schedule_id: Option<&'a str>,
    /// Queued runs `created_by` may have (0: no limit), this one included.
    pub(crate) queued_cap: u32,
}

/// What a start runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Subject<'a> {
    /// A saved query, with values for its parameters.
    Query {
        /// The query's id.
        id: &'a str,
        /// Values by parameter name; defaults fill the rest.
        values: &'a ParameterValues,
    },
    /// Ad-hoc SQL on a datasource, without parameters.
    Sql {
        /// The datasource's id.
        datasource_id: &'a str,
        /// The statement.
        sql: &'a str,
    },
}

/// A start that passed [`RunService::admit`]: what to queue.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) org_id: String,
    pub(crate) query: Option<(String, i32)>,
    pub(crate) datasource_id: String,
    pub(crate) statement: Statement,
    /// The caller's restrictions' context (`""` when unrestricted).
    pub(crate) context: String,
    /// Queued runs one user may have (0: no limit).
    pub(crate) queued_cap: u32,
}

impl Admitted {
    /// The cache key of the run it would queue.
    pub(crate) fn cache_key(&self) -> Result<String> {
        cache_key(&self.datasource_id, &self.statement, &self.context)
    }

    /// The run row to queue for it.
    pub(crate) fn run<'a>(
        &'a self,
        priority: i16,
        created_by: Option<String>,
        schedule_id: Option<&'a str>,
    ) -> NewRun<'a> {
        NewRun {
            org_id: &self.org_id,
            query: self
                .query
                .as_ref()
                .map(|(id, version)| (id.as_str(), *version)),
            datasource_id: &self.datasource_id,
            statement: &self.statement,
            context: &self.context,
            priority,
            created_by,
            schedule_id,
            queued_cap: self.queued_cap,
        }
    }
}

/// Who a run is recorded as started by (nobody, for the system).
pub(crate) fn created_by(actor: &Actor) -> Option<String> {
    match actor.via {
        super::actor::Via::System => None,
        _ => Some(actor.user_id.clone()),
    }
}

/// Binds `values` to a saved query's template, with field errors for
/// values that do not fit.
pub(crate) fn bind_query(
    saved: &super::queries::Query,
    dialect: loupe_core::Dialect,
    values: &ParameterValues,
) -> Result<Statement> {
    Template::parse(&saved.sql, dialect)
        .map_err(Error::from)
        .and_then(|t| t.bind(&saved.parameters, values))
        .map_err(|e| match value_errors("parameters", &e) {
            errors if errors.is_empty() => e,
            errors => Error::Validation(errors),
        })
}

/// The values to bind to a saved query under `context`: the caller's,
/// plus the locked parameters' values from their attributes. Refused with
/// `access.locked_parameter` when the caller gives a value for a locked
/// parameter, or the query does not take one (it would run unfiltered).
pub(crate) fn locked_values(
    saved: &super::queries::Query,
    dialect: loupe_core::Dialect,
    values: &ParameterValues,
    context: &rls::RunContext,
) -> Result<ParameterValues> {
    if context.locked.is_empty() {
        return Ok(values.clone());
    }
    let template = Template::parse(&saved.sql, dialect)?;
    let used = template.parameter_names();
    let mut bound = values.clone();
    for (name, value) in &context.locked {
        if values.contains_key(name) {
            return Err(Error::refused(
                codes::ACCESS_LOCKED_PARAMETER,
                format!(
                    "the parameter {name:?} is bound from your attributes by your access to this datasource; leave it out"
                ),
            ));
        }
        if !used.contains(name.as_str()) {
            return Err(Error::refused(
                codes::ACCESS_LOCKED_PARAMETER,
                format!(
                    "your access to this datasource binds the parameter {name:?} to your attributes, and query {} does not use it, so it cannot run under your access",
                    saved.id
                ),
            ));
        }
        bound.insert(name.clone(), value.clone());
    }
    Ok(bound)
}

fn quoted_names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Inserts a queued run in `tx`; returns its id. Refused with
/// `run.too_many_queued` when whoever starts it already has as many
/// queued runs as [`NewRun::queued_cap`] allows: every new queued run,
/// interactive or scheduled, is born here, and answers from the cache or
/// joins of a run in flight never come here.
pub(crate) async fn insert_run(
    tx: &mut Transaction<'static, Any>,
    new: &NewRun<'_>,
    key: &str,
) -> Result<String> {
    if let Some(user) = &new.created_by
        && new.queued_cap > 0
    {
        // One user's starts take turns, so that two cannot both see room
        // for one more.
        take_turns(tx, USER_QUEUE_LOCKS, user).await?;
        let (queued,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM runs WHERE created_by = $1 AND status = 'queued'")
                .bind(user.clone())
                .fetch_one(&mut **tx)
                .await
                .map_err(db_error)?;
        if queued >= i64::from(new.queued_cap) {
            return Err(Error::conflict(
                codes::RUN_TOO_MANY_QUEUED,
                format!(
                    "you have {queued} runs waiting in the queue, the most one user may have; start this one when some have finished, or cancel some"
                ),
            ));
        }
    }
    let id = new_id();
    sqlx::query(
        "INSERT INTO runs (id, org_id, query_id, query_version, datasource_id, sql, parameters, cache_key, status, priority, queued_at, created_by, schedule_id, traceparent, context, restrictions) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(id.clone())
    .bind(new.org_id.to_owned())
    .bind(new.query.map(|(q, _)| q.to_owned()))
    .bind(new.query.map(|(_, v)| v))
    .bind(new.datasource_id.to_owned())
    .bind(new.statement.sql.clone())
    .bind(to_json(&new.statement.params)?)
    .bind(key.to_owned())
    .bind(new.priority)
    .bind(now_micros())
    .bind(new.created_by.clone())
    .bind(new.schedule_id.map(str::to_owned))
    .bind(crate::trace_context::current().map(|t| t.as_str().to_owned()))
    .bind(new.context.to_owned())
    .bind(match new.statement.restrictions.is_empty() {
        true => None,
        false => Some(to_json(&new.statement.restrictions)?),
    })
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(id)
}

/// Records in `tx` a scheduled start of `query` that admission refused:
/// a failed run, finished at once, whose error says why.
pub(crate) async fn insert_refused(
    tx: &mut Transaction<'static, Any>,
    org_id: &str,
    query: &crate::Query,
    schedule: &crate::Schedule,
    refused: &Error,
) -> Result<()> {
    let now = now_micros();
    sqlx::query(
        "INSERT INTO runs (id, org_id, query_id, query_version, datasource_id, sql, parameters, cache_key, status, priority, queued_at, finished_at, error_code, error_message, created_by, schedule_id) \
         VALUES ($1, $2, $3, $4, $5, $6, '[]', '', 'failed', $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(new_id())
    .bind(org_id.to_owned())
    .bind(query.id.clone())
    .bind(query.version)
    .bind(query.datasource_id.clone())
    .bind(query.sql.clone())
    .bind(SCHEDULED)
    .bind(now)
    .bind(now)
    .bind(refused.code())
    .bind(format!("the schedule's start was refused: {refused}"))
    .bind(schedule.owner_id.clone())
    .bind(schedule.id.clone())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// The advisory locks that serialize one user's new queued runs.
const USER_QUEUE_LOCKS: i32 = 1;
/// The advisory locks that serialize one user's schedules being enabled.
pub(crate) const USER_SCHEDULE_LOCKS: i32 = 2;

/// Makes the transactions of user `user_id` that take `locks` wait for
/// each other until `tx` ends, so that a count-then-insert cap holds under
/// concurrency. On PostgreSQL an advisory lock keyed by (`locks`, user):
/// the two-key form keeps these apart from the cache keys' one-key locks.
/// SQLite's write transactions already take turns.
pub(crate) async fn take_turns(
    tx: &mut Transaction<'static, Any>,
    locks: i32,
    user_id: &str,
) -> Result<()> {
    if tx.backend_name() != <sqlx::Postgres as sqlx::Database>::NAME {
        return Ok(());
    }
    let hash = Sha256::digest(user_id.as_bytes());
    let user = i32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]);
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(locks)
        .bind(user)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// A 64-bit advisory lock id for a cache key (its first 8 bytes of hex).
fn lock_id(key: &str) -> i64 {
    key.get(..16)
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .map_or(0, |n| i64::from_ne_bytes(n.to_ne_bytes()))
}

/// Runs.
#[derive(Debug, Clone)]
pub struct RunService {
    shared: Arc<Shared>,
}

impl RunService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// A run the actor may see.
    pub async fn get(&self, actor: &Actor, id: &str) -> Result<Run> {
        let row = fetch_in_org(&self.shared.store, &actor.org_id, BY_ID, "run", id).await?;
        let found = run(&row)?;
        let hidden = || Error::not_found("run", id);
        groups::require_view(&self.shared, actor, &found.datasource_id, hidden).await?;
        // A run under other row-level restrictions than the caller's is
        // not theirs to see.
        if !rls::may_see_run(&self.shared, actor, &found.datasource_id, &found.context).await? {
            return Err(hidden());
        }
        Ok(found)
    }

    /// The runs the actor may see, newest first by default.
    pub async fn list(&self, actor: &Actor, request: &ListRequest) -> Result<ListPage<Run>> {
        let mut rows = SPEC.org_rows(&actor.org_id);
        visible_datasources(&mut rows, actor, "r.datasource_id");
        rls::visible_runs(&self.shared, actor, &mut rows, "r").await?;
        if let Some(status) = request.filters.get("status")
            && RunStatus::parse(status).is_none()
        {
            return Err(Error::field(
                "status",
                codes::field::INVALID,
                format!(
                    "{status:?} is not a run status; use queued, running, succeeded, failed or cancelled"
                ),
            ));
        }
        SPEC.page(&self.shared.store, rows, request)
            .await?
            .try_map(run)
    }

    /// Queues a run of a saved query with `values` for its parameters
    /// (defaults fill the rest), or joins an identical run already queued
    /// or running. Needs `run` on the query's datasource.
    pub async fn enqueue_query(
        &self,
        actor: &Actor,
        query_id: &str,
        values: &ParameterValues,
    ) -> Result<Run> {
        Ok(self.start_query(actor, query_id, values, None).await?.run)
    }

    /// Starts a run of a saved query: binds `values` (defaults fill the
    /// rest; types are checked), then answers with a succeeded run of the
    /// same datasource, statement and values that finished within `max_age`
    /// (a cache hit, counted on that run), else an identical run already
    /// queued or running (joined), else a new queued run.
    pub async fn start_query(
        &self,
        actor: &Actor,
        query_id: &str,
        values: &ParameterValues,
        max_age: Option<Duration>,
    ) -> Result<Started> {
        let admitted = self
            .admit(
                actor,
                Subject::Query {
                    id: query_id,
                    values,
                },
            )
            .await?;
        self.enqueue(admitted.run(INTERACTIVE, created_by(actor), None), max_age)
            .await
    }

    /// Queues a run of ad-hoc SQL (no parameters), or joins an identical
    /// one in flight. Editors and admins with `run` on the datasource.
    pub async fn enqueue_sql(&self, actor: &Actor, datasource_id: &str, sql: &str) -> Result<Run> {
        Ok(self.start_sql(actor, datasource_id, sql, None).await?.run)
    }

    /// Starts a run of ad-hoc SQL, with the cache and joining of
    /// [`start_query`](Self::start_query).
    pub async fn start_sql(
        &self,
        actor: &Actor,
        datasource_id: &str,
        sql: &str,
        max_age: Option<Duration>,
    ) -> Result<Started> {
        let admitted = self
            .admit(actor, Subject::Sql { datasource_id, sql })
            .await?;
        self.enqueue(admitted.run(INTERACTIVE, created_by(actor), None), max_age)
            .await
    }

    /// The one admission of every start, interactive, from a dashboard or
    /// from a schedule: the subject is in the actor's organization, the
    /// actor may run on its datasource (their grants, their key's scope;
    /// ad-hoc SQL only for editors and admins), the datasource is not
    /// paused, and the values fit the parameters. What passes is the
    /// statement to queue. (Per-user and per-datasource concurrency limits
    /// apply to every queued run alike, when runners claim them; the cap
    /// on one user's queued runs applies when a new run is queued,
    /// [`insert_run`], so that cache hits and joins are not refused.)
    pub(crate) async fn admit(&self, actor: &Actor, subject: Subject<'_>) -> Result<Admitted> {
        self.admission(actor, subject, Access::Run).await
    }

    /// What a start of a saved query would queue, for reading its stored
    /// results: [`admit`](Self::admit) with `view` access enough (and no
    /// run scope needed), so that its [`Admitted::cache_key`] finds the
    /// results the actor may see for these values.
    pub(crate) async fn admit_to_read(
        &self,
        actor: &Actor,
        query_id: &str,
        values: &ParameterValues,
    ) -> Result<Admitted> {
        let subject = Subject::Query {
            id: query_id,
            values,
        };
        self.admission(actor, subject, Access::View).await
    }

    async fn admission(
        &self,
        actor: &Actor,
        subject: Subject<'_>,
        need: Access,
    ) -> Result<Admitted> {
        match subject {
            Subject::Query { id, values } => {
                let sql = crate::queries::BY_ID;
                let row = fetch_in_org(&self.shared.store, &actor.org_id, sql, "query", id).await?;
                let saved = crate::queries::query(&row, Vec::new())?;
                let hidden = crate::queries::hidden(id);
                match need {
                    Access::Run => {
                        groups::require_run(&self.shared, actor, &saved.datasource_id, hidden)
                            .await?
                    }
                    Access::View => {
                        groups::require_view(&self.shared, actor, &saved.datasource_id, hidden)
                            .await
                            .map(|_| ())?
                    }
                }
                let context = rls::context(&self.shared, actor, &saved.datasource_id, need).await?;
                let dialect = self
                    .dialect(&saved.datasource_id, need == Access::Run)
                    .await?;
                let values = locked_values(&saved, dialect, values, &context)?;
                let mut statement = bind_query(&saved, dialect, &values)?;
                statement.restrictions = context.restrictions;
                Ok(Admitted {
                    org_id: actor.org_id.clone(),
                    query: Some((saved.id, saved.version)),
                    datasource_id: saved.datasource_id,
                    statement,
                    context: context.key,
                    queued_cap: self.shared.config.queued_runs_per_user,
                })
            }
            Subject::Sql { datasource_id, sql } => {
                actor.require(Role::Editor, "running ad-hoc SQL")?;
                groups::datasource_in_org(&self.shared, actor, datasource_id).await?;
                let hidden = || Error::not_found("datasource", datasource_id);
                groups::require_run(&self.shared, actor, datasource_id, hidden).await?;
                let context = rls::context(&self.shared, actor, datasource_id, Access::Run).await?;
                if context.saved_only || !context.locked.is_empty() {
                    return Err(Error::refused(
                        codes::ACCESS_SAVED_ONLY,
                        match context.saved_only {
                            true => "your access to this datasource allows saved queries only, not ad-hoc SQL".to_owned(),
                            false => format!(
                                "your access to this datasource binds the parameters {} to your attributes, so only saved queries that take them may run, not ad-hoc SQL",
                                quoted_names(context.locked.keys())
                            ),
                        },
                    ));
                }
                let mut v = crate::validate::Validator::new();
                v.text("sql", sql, 1, crate::limits::SQL);
                v.finish()?;
                let mut statement = Statement::from_template(
                    sql,
                    self.dialect(datasource_id, true).await?,
                    &[],
                    &ParameterValues::new(),
                )?;
                statement.restrictions = context.restrictions;
                Ok(Admitted {
                    org_id: actor.org_id.clone(),
                    query: None,
                    datasource_id: datasource_id.to_owned(),
                    statement,
                    context: context.key,
                    queued_cap: self.shared.config.queued_runs_per_user,
                })
            }
        }
    }

    /// The stored result of a run the actor may see: the run and its
    /// result id. A run without a result is a conflict that says why:
    /// `run.not_finished`, `run.failed` or `run.cancelled`.
    pub async fn result(&self, actor: &Actor, id: &str) -> Result<(Run, ResultId)> {
        let run = self.get(actor, id).await?;
        let (code, message) = match run.status {
            RunStatus::Succeeded => {
                let location = run
                    .result_location
                    .as_deref()
                    .ok_or_else(|| Error::not_found("result", id))?;
                let result = ResultId::parse(location)?;
                return Ok((run, result));
            }
            RunStatus::Queued | RunStatus::Running => (
                codes::RUN_NOT_FINISHED,
                format!(
                    "run {id} is {}; poll it until it has succeeded",
                    run.status.as_str()
                ),
            ),
            RunStatus::Failed => (
                codes::RUN_FAILED,
                format!(
                    "run {id} failed ({}), so it has no result; see the run's error message",
                    run.error_code.as_deref().unwrap_or("unknown error")
                ),
            ),
            RunStatus::Cancelled => (
                codes::RUN_CANCELLED,
                format!("run {id} was cancelled, so it has no result; start it again"),
            ),
        };
        Err(Error::conflict(code, message))
    }

    /// Cancels a run: a queued one at once; a running one is asked to stop
    /// (its runner drops the statement, which cancels it in the database,
    /// and marks it cancelled). Whoever started it, or an admin.
    pub async fn cancel(&self, actor: &Actor, id: &str) -> Result<Run> {
        let found = self.get(actor, id).await?;
        if found.created_by.as_deref() != Some(actor.user_id.as_str()) && !actor.is_admin() {
            return Err(Error::refused(
                codes::ACCESS_OWNER,
                "only whoever started a run, or an admin, may cancel it",
            ));
        }
        let now = now_micros();
        let queued = sqlx::query(
            "UPDATE runs SET status = 'cancelled', finished_at = $1, error_code = $3, \
             error_message = 'cancelled before it started' WHERE id = $2 AND status = 'queued'",
        )
        .bind(now)
        .bind(id.to_owned())
        .bind(codes::RUN_CANCELLED.as_str())
        .execute(self.shared.store.pool())
        .await
        .map_err(db_error)?;
        if queued.rows_affected() == 0 {
            let running = sqlx::query(
                "UPDATE runs SET cancel_requested = 1 WHERE id = $1 AND status = 'running'",
            )
            .bind(id.to_owned())
            .execute(self.shared.store.pool())
            .await
            .map_err(db_error)?;
            if running.rows_affected() == 0 {
                return Err(Error::conflict(
                    codes::CONFLICT_FINISHED,
                    format!("run {id} has already finished"),
                ));
            }
            // A runner in this process stops at once; others notice when
            // they next check, within a second.
            self.shared.cancellations.cancel(id);
        }
        self.get_unchecked(id).await
    }

    /// The datasource's dialect; refused while it is paused when `to_run`
    /// (reading stored results of a paused datasource is fine).
    async fn dialect(&self, datasource_id: &str, to_run: bool) -> Result<loupe_core::Dialect> {
        let sql = "SELECT kind, paused FROM datasources WHERE id = $1";
        let row = fetch_one(&self.shared.store, sql, "datasource", datasource_id).await?;
        if to_run && flag(&row, "paused")? {
            return Err(Error::conflict(
                codes::CONFLICT_PAUSED,
                "the datasource is paused; an admin can resume it",
            ));
        }
        let kind: String = col(&row, "kind")?;
        Ok(self.shared.registry.factory(&kind)?.dialect())
    }

    /// Answers an admitted start from the cache, by joining, or by
    /// queueing.
    pub(crate) async fn enqueue(
        &self,
        new: NewRun<'_>,
        max_age: Option<Duration>,
    ) -> Result<Started> {
        let key = cache_key(new.datasource_id, new.statement, new.context)?;
        let mut tx = self.shared.store.write().await?;
        if self.shared.store.backend() == Backend::Postgres {
            // Starts of one key take turns, so two cannot both miss and
            // queue twice. (SQLite's write transaction already serializes.)
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(lock_id(&key))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        if let Some(max_age) = max_age {
            let since =
                now_micros().saturating_sub(i64::try_from(max_age.as_micros()).unwrap_or(i64::MAX));
            let hit = sqlx::query(
                "SELECT id FROM runs WHERE cache_key = $1 AND status = 'succeeded' AND finished_at >= $2 \
                 AND result_location IS NOT NULL ORDER BY finished_at DESC LIMIT 1",
            )
            .bind(key.clone())
            .bind(since)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
            if let Some(hit) = hit {
                let id: String = col(&hit, "id")?;
                sqlx::query("UPDATE runs SET cache_hits = cache_hits + 1 WHERE id = $1")
                    .bind(id.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                tx.commit().await.map_err(db_error)?;
                return Ok(Started {
                    run: self.get_unchecked(&id).await?,
                    how: StartKind::Cached,
                });
            }
        }
        let in_flight = sqlx::query(
            "SELECT id FROM runs WHERE cache_key = $1 AND status IN ('queued', 'running') \
             AND cancel_requested = 0 ORDER BY queued_at LIMIT 1",
        )
        .bind(key.clone())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        if let Some(row) = in_flight {
            let id: String = col(&row, "id")?;
            tx.commit().await.map_err(db_error)?;
            return Ok(Started {
                run: self.get_unchecked(&id).await?,
                how: StartKind::Joined,
            });
        }
        let id = insert_run(&mut tx, &new, &key).await?;
        tx.commit().await.map_err(db_error)?;
        self.shared.queue_changed.notify_waiters();
        Ok(Started {
            run: self.get_unchecked(&id).await?,
            how: StartKind::Queued,
        })
    }

    pub(crate) async fn get_unchecked(&self, id: &str) -> Result<Run> {
        run(&fetch_one(&self.shared.store, BY_ID, "run", id).await?)
    }
}
