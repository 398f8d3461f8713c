//! Alerts: a condition on a saved query's result for fixed parameter
//! values, evaluated after each run of the query with those values
//! (scheduled or started by hand), from the stored result.
//!
//! An alert is `ok`, `triggered`, or `unknown` (never evaluated, or its
//! last run failed). It notifies its destinations when its state changes,
//! except when a first evaluation finds it `ok` (nothing happened); again
//! every `renotify_every` while it stays triggered, if set; and never while
//! muted (the state still moves). Each evaluation moves the state by
//! compare-and-set on the alert's evaluation count, in the transaction that
//! queues the notifications: two runners finishing runs at once each
//! evaluate once, in turn, and a transition is notified once. A run that
//! ends after a newer run of the same alert was evaluated is ignored.

mod condition;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use loupe_core::{Error, ErrorKind, ParameterValues, Result, ResultId, codes};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

pub use condition::{
    Change, Comparison, Condition, Evaluation, Evaluator, Literal, Quantifier, Threshold,
};

use super::actor::{Actor, Role};
use super::audit;
use super::groups::{self, visible_datasources};
use super::runs::{Run, RunService, RunStatus, Subject};
use super::validate::Validator;
use crate::deliveries::{self, SourceKind};
use crate::meta::{Filter, ListPage, ListRequest, ListSpec, db_error, new_id, now_micros};
use crate::meta::{check_revision, col, fetch_in_org, flag, json, to_json};
use crate::services::Shared;

/// An alert's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition does not hold.
    Ok,
    /// The condition holds.
    Triggered,
    /// Not evaluated yet, or the last run failed.
    Unknown,
}

impl AlertState {
    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Triggered => "triggered",
            Self::Unknown => "unknown",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "ok" => Self::Ok,
            "triggered" => Self::Triggered,
            _ => Self::Unknown,
        }
    }
}

/// An alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Its id.
    pub id: String,
    /// The query whose result it watches.
    pub query_id: String,
    /// Who owns it.
    pub owner_id: String,
    /// Its name.
    pub name: String,
    /// The parameter values of the runs it watches.
    pub parameters: ParameterValues,
    /// When it triggers.
    pub condition: Condition,
    /// Where it notifies (destination ids).
    pub destinations: Vec<String>,
    /// Notify again this often while it stays triggered (seconds).
    pub renotify_secs: Option<i64>,
    /// No notifications until then (µs).
    pub muted_until: Option<i64>,
    /// A disabled alert is not evaluated.
    pub enabled: bool,
    /// Its state.
    pub state: AlertState,
    /// How many runs it was evaluated on.
    pub evaluations: i64,
    /// The value its last evaluation found.
    pub last_value: Option<serde_json::Value>,
    /// The run it was last evaluated on.
    pub last_run_id: Option<String>,
    /// When that run was queued (µs).
    #[serde(skip)]
    pub last_run_queued_at: Option<i64>,
    /// When it was last evaluated (µs).
    pub last_evaluated_at: Option<i64>,
    /// When it last notified (µs).
    pub last_notified_at: Option<i64>,
    /// Increases with each change.
    pub revision: i64,
    /// When it was created (µs).
    pub created_at: i64,
    /// When it last changed (µs).
    pub updated_at: i64,
}

/// An alert's settings.
#[derive(Debug, Clone)]
pub struct AlertInput {
    /// The query it watches.
    pub query_id: String,
    /// Its name.
    pub name: String,
    /// The parameter values of the runs it watches.
    pub parameters: ParameterValues,
    /// When it triggers.
    pub condition: Condition,
    /// Where it notifies.
    pub destinations: Vec<String>,
    /// Notify again this often while it stays triggered.
    pub renotify_every: Option<Duration>,
    /// No notifications until then (µs).
    pub muted_until: Option<i64>,
    /// Whether it is evaluated.
    pub enabled: bool,
}

/// The most destinations one alert or subscription sends to.
pub const MAX_DESTINATIONS: usize = 20;

pub(crate) const SPEC: ListSpec = ListSpec {
    from: "alerts a JOIN queries q ON q.id = a.query_id",
    alias: "a",
    sorts: &["name", "created_at", "updated_at", "last_evaluated_at"],
    default_sort: "name",
    filters: &[
        ("query", Filter::Equals("a.query_id")),
        ("owner", Filter::Equals("a.owner_id")),
        ("state", Filter::Equals("a.state")),
        ("enabled", Filter::Flag("a.enabled")),
    ],
    created: Some("a.created_at"),
    updated: Some("a.updated_at"),
};

fn alert(row: &AnyRow) -> Result<Alert> {
    let state: String = col(row, "state")?;
    let last_value: Option<String> = col(row, "last_value")?;
    Ok(Alert {
        id: col(row, "id")?,
        query_id: col(row, "query_id")?,
        owner_id: col(row, "owner_id")?,
        name: col(row, "name")?,
        parameters: json(row, "parameters")?,
        condition: json(row, "condition")?,
        destinations: json(row, "destinations")?,
        renotify_secs: col(row, "renotify_secs")?,
        muted_until: col(row, "muted_until")?,
        enabled: flag(row, "enabled")?,
        state: AlertState::parse(&state),
        evaluations: col(row, "evaluations")?,
        last_value: last_value.and_then(|v| serde_json::from_str(&v).ok()),
        last_run_id: col(row, "last_run_id")?,
        last_run_queued_at: col(row, "last_run_queued_at")?,
        last_evaluated_at: col(row, "last_evaluated_at")?,
        last_notified_at: col(row, "last_notified_at")?,
        revision: col(row, "revision")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

/// Checks that each destination is one of the organization's, at most
/// [`MAX_DESTINATIONS`], none twice.
pub(crate) async fn check_destinations(
    shared: &Shared,
    org_id: &str,
    v: &mut Validator,
    ids: &[String],
) -> Result<()> {
    if ids.is_empty() {
        v.push(
            "destinations",
            codes::field::REQUIRED,
            "name at least one destination",
        );
    }
    if ids.len() > MAX_DESTINATIONS {
        v.push(
            "destinations",
            codes::field::TOO_MANY,
            format!("at most {MAX_DESTINATIONS} destinations"),
        );
        return Ok(());
    }
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) {
            v.push(
                format!("destinations[{i}]"),
                codes::field::INVALID,
                format!("{id} is listed twice"),
            );
            continue;
        }
        let found: Option<(String,)> =
            sqlx::query_as("SELECT id FROM destinations WHERE id = $1 AND org_id = $2")
                .bind(id.clone())
                .bind(org_id.to_owned())
                .fetch_optional(shared.store.pool())
                .await
                .map_err(db_error)?;
        if found.is_none() {
            v.push(
                format!("destinations[{i}]"),
                codes::NOT_FOUND,
                format!("no destination {id}"),
            );
        }
    }
    Ok(())
}

/// Alerts.
#[derive(Debug, Clone)]
pub struct AlertService {
    shared: Arc<Shared>,
}

impl AlertService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    async fn check(&self, actor: &Actor, input: &AlertInput) -> Result<()> {
        let mut v = Validator::new();
        v.name("name", &input.name);
        for (field, message) in input.condition.problems() {
            v.push(field, codes::field::INVALID, message);
        }
        if let Some(column) = input.condition.column() {
            v.text("condition.column", column, 1, crate::limits::NAME);
        }
        if let Some(every) = input.renotify_every {
            v.check(
                every >= Duration::from_secs(60),
                "renotify_secs",
                codes::field::OUT_OF_RANGE,
                || "notify again at most once a minute".into(),
            );
        }
        super::schedules::runnable_query(
            &self.shared,
            actor,
            &mut v,
            "query_id",
            &input.query_id,
            &input.parameters,
        )
        .await?;
        check_destinations(&self.shared, &actor.org_id, &mut v, &input.destinations).await?;
        v.finish()
    }

    async fn load(&self, actor: &Actor, id: &str) -> Result<(Alert, String)> {
        let sql = "SELECT a.*, q.datasource_id FROM alerts a JOIN queries q ON q.id = a.query_id WHERE a.id = $1";
        let row = fetch_in_org(&self.shared.store, &actor.org_id, sql, "alert", id).await?;
        Ok((alert(&row)?, col(&row, "datasource_id")?))
    }

    /// An alert the actor may see: one on a query they may see.
    pub async fn get(&self, actor: &Actor, id: &str) -> Result<Alert> {
        let (found, datasource) = self.load(actor, id).await?;
        let hidden = || Error::not_found("alert", id);
        groups::require_view(&self.shared, actor, &datasource, hidden).await?;
        Ok(found)
    }

    /// The alerts the actor may see.
    pub async fn list(&self, actor: &Actor, request: &ListRequest) -> Result<ListPage<Alert>> {
        let mut rows = SPEC.org_rows(&actor.org_id);
        visible_datasources(&mut rows, actor, "q.datasource_id");
        SPEC.page(&self.shared.store, rows, request)
            .await?
            .try_map(alert)
    }

    /// Creates an alert. Editors and admins who may run the query.
    pub async fn create(&self, actor: &Actor, input: AlertInput) -> Result<Alert> {
        actor.require(Role::Editor, "making alerts")?;
        self.check(actor, &input).await?;
        let id = new_id();
        let now = now_micros();
        let mut tx = self.shared.store.write().await?;
        sqlx::query(
            "INSERT INTO alerts (id, org_id, owner_id, query_id, name, parameters, condition, destinations, renotify_secs, muted_until, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(id.clone())
        .bind(actor.org_id.clone())
        .bind(actor.user_id.clone())
        .bind(input.query_id.clone())
        .bind(input.name.trim().to_owned())
        .bind(to_json(&input.parameters)?)
        .bind(to_json(&input.condition)?)
        .bind(to_json(&input.destinations)?)
        .bind(renotify_secs(&input))
        .bind(input.muted_until)
        .bind(i16::from(input.enabled))
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let detail = serde_json::json!({ "name": input.name.trim(), "query": input.query_id });
        audit::record(
            &mut *tx,
            audit::Entry::by(actor, "alert.create", "alert", &id).detail(detail),
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        self.get(actor, &id).await
    }

    /// Replaces an alert's settings if `revision` is still current. Its
    /// owner or an admin. Changing what it watches (the query, the
    /// parameters or the condition) starts it over as `unknown`.
    pub async fn update(
        &self,
        actor: &Actor,
        id: &str,
        revision: i64,
        input: AlertInput,
    ) -> Result<Alert> {
        let current = self.get(actor, id).await?;
        actor.require_edit(&current.owner_id, false, "alert")?;
        self.check(actor, &input).await?;
        let restart = current.query_id != input.query_id
            || current.parameters != input.parameters
            || current.condition != input.condition;
        let mut tx = self.shared.store.write().await?;
        let result = sqlx::query(
            "UPDATE alerts SET query_id = $1, name = $2, parameters = $3, condition = $4, destinations = $5, \
             renotify_secs = $6, muted_until = $7, enabled = $8, \
             state = CASE WHEN $9 = 1 THEN 'unknown' ELSE state END, \
             last_value = CASE WHEN $9 = 1 THEN NULL ELSE last_value END, \
             revision = revision + 1, updated_at = $10 WHERE id = $11 AND revision = $12",
        )
        .bind(input.query_id.clone())
        .bind(input.name.trim().to_owned())
        .bind(to_json(&input.parameters)?)
        .bind(to_json(&input.condition)?)
        .bind(to_json(&input.destinations)?)
        .bind(renotify_secs(&input))
        .bind(input.muted_until)
        .bind(i16::from(input.enabled))
        .bind(i16::from(restart))
        .bind(now_micros())
        .bind(id.to_owned())
        .bind(revision)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        check_revision(result.rows_affected(), "alert", revision)?;
        let detail = serde_json::json!({ "name": input.name.trim(), "restarted": restart });
        audit::record(
            &mut *tx,
            audit::Entry::by(actor, "alert.update", "alert", id).detail(detail),
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        self.get(actor, id).await
    }

    /// Deletes an alert. Its owner or an admin; its deliveries stay in the
    /// log.
    pub async fn delete(&self, actor: &Actor, id: &str) -> Result<()> {
        let current = self.get(actor, id).await?;
        actor.require_edit(&current.owner_id, false, "alert")?;
        let detail = serde_json::json!({ "name": current.name });
        audit::delete_audited(&self.shared.store, actor, "alerts", "alert", id, detail).await
    }

    /// Evaluates the alerts that watch `run` (a finished run of a saved
    /// query): those on its query whose parameter values give the same
    /// statement. Called by the runner that finished the run.
    pub(crate) async fn after_run(&self, run: &Run) -> Result<()> {
        let Some(query_id) = &run.query_id else {
            return Ok(());
        };
        if !matches!(run.status, RunStatus::Succeeded | RunStatus::Failed) {
            return Ok(());
        }
        let rows = sqlx::query("SELECT * FROM alerts WHERE query_id = $1 AND enabled = 1")
            .bind(query_id.clone())
            .fetch_all(self.shared.store.pool())
            .await
            .map_err(db_error)?;
        for row in &rows {
            let watched = alert(row)?;
            if !self.watches(&watched, run).await? {
                continue;
            }
            if let Err(e) = self.evaluate(&watched, run).await {
                tracing::warn!(alert = %watched.id, run = %run.id, error = %e, "evaluating an alert failed");
            }
        }
        Ok(())
    }

    /// Whether `run` is a run of the alert's query with its values, as its
    /// owner would start it now: the start admitted for the owner has the
    /// run's cache key (which covers the owner's row-level restrictions,
    /// so an alert never reads a result its owner could not see).
    async fn watches(&self, watched: &Alert, run: &Run) -> Result<bool> {
        let users = crate::users::UserService::new(self.shared.clone());
        let owner = match users.actor(&watched.owner_id, None).await {
            Ok(owner) => owner,
            // A disabled owner's alerts read nothing.
            Err(e) if e.kind() == ErrorKind::Unauthenticated => return Ok(false),
            Err(e) => return Err(e),
        };
        let subject = Subject::Query {
            id: &watched.query_id,
            values: &watched.parameters,
        };
        match RunService::new(self.shared.clone())
            .admit(&owner, subject)
            .await
        {
            Ok(admitted) => Ok(admitted.cache_key()? == run.cache_key),
            Err(e) if matches!(e.kind(), ErrorKind::Internal | ErrorKind::Unavailable) => Err(e),
            // The owner lost access, or the query changed so that the
            // alert's values no longer fit: no run matches them.
            Err(_) => Ok(false),
        }
    }

    /// Evaluates one alert on one run and moves its state; retried when
    /// another evaluation moved it first.
    async fn evaluate(&self, watched: &Alert, run: &Run) -> Result<()> {
        let mut current = watched.clone();
        for _ in 0..5 {
            // A run queued before the one last evaluated is older news; the
            // same run twice is news once.
            if current.last_run_id.as_deref() == Some(run.id.as_str())
                || current
                    .last_run_queued_at
                    .is_some_and(|at| at > run.queued_at)
            {
                return Ok(());
            }
            let (state, evaluation) = match run.status {
                RunStatus::Succeeded => {
                    let found = self.evaluate_result(&current, run).await?;
                    let state = match found.triggered {
                        true => AlertState::Triggered,
                        false => AlertState::Ok,
                    };
                    (state, found)
                }
                _ => (
                    AlertState::Unknown,
                    Evaluation {
                        triggered: false,
                        value: current
                            .last_value
                            .clone()
                            .unwrap_or(serde_json::Value::Null),
                        summary: format!(
                            "the run failed: {}",
                            run.error_message.as_deref().unwrap_or("unknown error")
                        ),
                    },
                ),
            };
            if self.record(&current, run, state, &evaluation).await? {
                return Ok(());
            }
            current = self.load_unchecked(&current.id).await?;
        }
        Err(Error::internal(format!(
            "alert {} kept changing while it was evaluated",
            watched.id
        )))
    }

    async fn load_unchecked(&self, id: &str) -> Result<Alert> {
        let sql = "SELECT * FROM alerts WHERE id = $1";
        alert(&crate::meta::fetch_one(&self.shared.store, sql, "alert", id).await?)
    }

    /// Reads the run's stored result a batch at a time (only the column
    /// the condition needs) and evaluates the condition.
    async fn evaluate_result(&self, watched: &Alert, run: &Run) -> Result<Evaluation> {
        let mut evaluator = Evaluator::new(&watched.condition, watched.last_value.as_ref());
        let Some(column) = watched.condition.column() else {
            // A row count needs no reading: the run counted its rows.
            let rows = run.rows.unwrap_or(0);
            let schema = Arc::new(loupe_core::deps::arrow::datatypes::Schema::empty());
            let options = loupe_core::deps::arrow::array::RecordBatchOptions::new()
                .with_row_count(Some(usize::try_from(rows).unwrap_or(usize::MAX)));
            let counted = loupe_core::deps::arrow::array::RecordBatch::try_new_with_options(
                schema,
                vec![],
                &options,
            )
            .map_err(|e| Error::internal_from("row count", e))?;
            evaluator.push(&counted)?;
            return Ok(evaluator.finish());
        };
        let results = self
            .shared
            .results
            .as_ref()
            .ok_or_else(|| Error::config("alerts need the result store"))?;
        let location = run
            .result_location
            .as_deref()
            .ok_or_else(|| Error::not_found("result", run.id.clone()))?;
        let id = ResultId::parse(location)?;
        let mut stream = results
            .scan(&id, Some(&[column.to_owned()]))
            .await
            .map_err(|e| match e.code() == codes::RESULTS_UNKNOWN_COLUMN.as_str() {
                true => Error::invalid_input(
                    codes::RESULTS_UNKNOWN_COLUMN,
                    format!(
                        "the alert's condition names the column {column:?}, which the result does not have"
                    ),
                ),
                false => e,
            })?;
        while let Some(batch) = stream.next().await {
            evaluator.push(&batch?)?;
        }
        Ok(evaluator.finish())
    }

    /// Records an evaluation if the alert was not evaluated since it was
    /// read, with the notifications it calls for; false when it was.
    async fn record(
        &self,
        current: &Alert,
        run: &Run,
        state: AlertState,
        evaluation: &Evaluation,
    ) -> Result<bool> {
        let now = now_micros();
        let first = current.evaluations == 0;
        let transition = state != current.state && !(first && state == AlertState::Ok);
        let renotify = state == AlertState::Triggered
            && current.state == AlertState::Triggered
            && current.renotify_secs.is_some_and(|every| {
                current
                    .last_notified_at
                    .is_none_or(|at| now - at >= every.saturating_mul(1_000_000))
            });
        let muted = current.muted_until.is_some_and(|until| until > now);
        let notify = (transition || renotify) && !muted;
        let evaluations = current.evaluations + 1;
        // A failed run keeps the last value, for the next change.
        let value = match state {
            AlertState::Unknown => current.last_value.clone(),
            _ => Some(evaluation.value.clone()),
        };
        let mut tx = self.shared.store.write().await?;
        let moved = sqlx::query(
            "UPDATE alerts SET state = $1, evaluations = $2, last_run_id = $3, last_run_queued_at = $4, \
             last_value = $5, last_evaluated_at = $6, last_notified_at = CASE WHEN $7 = 1 THEN $6 ELSE last_notified_at END \
             WHERE id = $8 AND evaluations = $9",
        )
        .bind(state.as_str())
        .bind(evaluations)
        .bind(run.id.clone())
        .bind(run.queued_at)
        .bind(value.as_ref().map(|v| v.to_string()))
        .bind(now)
        .bind(i16::from(notify))
        .bind(current.id.clone())
        .bind(current.evaluations)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if moved.rows_affected() == 0 {
            return Ok(false);
        }
        if notify {
            let (org_id,): (String,) = sqlx::query_as("SELECT org_id FROM alerts WHERE id = $1")
                .bind(current.id.clone())
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
            let content = serde_json::json!({
                "alert_id": current.id,
                "alert_name": current.name,
                "query_id": current.query_id,
                "run_id": run.id,
                "from": current.state,
                "to": state,
                "renotify": renotify && !transition,
                "condition": current.condition.describe(),
                "value": evaluation.value,
                "summary": evaluation.summary,
            });
            deliveries::queue(
                &mut tx,
                &org_id,
                SourceKind::Alert,
                &current.id,
                evaluations,
                &current.destinations,
                &content,
            )
            .await?;
        }
        tx.commit().await.map_err(db_error)?;
        tracing::info!(alert = %current.id, run = %run.id, state = state.as_str(), notify, "alert evaluated");
        Ok(true)
    }
}

fn renotify_secs(input: &AlertInput) -> Option<i64> {
    input
        .renotify_every
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
