//! Subscriptions: a schedule that delivers a saved query's result, a
//! visualization or a dashboard to destinations.
//!
//! Each occurrence is fired by the scheduler like a schedule's (the
//! occurrence is taken by compare-and-set on `next_run_at`, so two
//! schedulers fire it once): it queues, as the subscription's owner and
//! through the same admission as every start, one run per query it needs
//! (with the subscription's parameter values; a dashboard's widgets take
//! them as their parameter mappings say), and records the firing. When
//! every run has ended, the dispatcher turns the firing into one delivery
//! per destination, built from the stored results: the first rows, an
//! attachment (CSV, XLSX or Parquet, or past the cap a signed link), and
//! the charts as PNG images. When a run failed, the owner hears of it once
//! per streak of failed occurrences.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use loupe_core::{Error, ErrorKind, ExportFormat, ParameterValues, Result, codes};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use super::actor::{Actor, Role};
use super::alerts::check_destinations;
use super::audit;
use super::runs::{SCHEDULED, Subject, cache_key, insert_run};
use super::schedules::{check_timing, next_fire, parse_cron, parse_timezone, runnable_query};
use super::validate::Validator;
use crate::deliveries::{self, SourceKind, add_result, chart_image, escape_html, run_in_org};
use crate::delivery::Message;
use crate::meta::{Filter, ListPage, ListRequest, ListSpec, db_error, new_id, now_micros};
use crate::meta::{check_revision, col, fetch_in_org, flag, json, to_json};
use crate::runs::RunStatus;
use crate::services::{Services, Shared};

/// What a subscription delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// A saved query's result.
    Query,
    /// A visualization, as an image.
    Visualization,
    /// Every visualization of a dashboard, as images.
    Dashboard,
}

impl TargetKind {
    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Visualization => "visualization",
            Self::Dashboard => "dashboard",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "query" => Self::Query,
            "visualization" => Self::Visualization,
            "dashboard" => Self::Dashboard,
            other => return Err(Error::internal(format!("a subscription to a {other:?}"))),
        })
    }
}

/// The formats a result may be attached in.
pub const ATTACHMENT_FORMATS: [ExportFormat; 3] =
    [ExportFormat::Csv, ExportFormat::Xlsx, ExportFormat::Parquet];

/// A subscription.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subscription {
    /// Its id.
    pub id: String,
    /// Who owns it (its runs are started as them).
    pub owner_id: String,
    /// Its name (the subject of its messages).
    pub name: String,
    /// What it delivers.
    pub target_kind: TargetKind,
    /// The query, visualization or dashboard.
    pub target_id: String,
    /// When it fires: 5 cron fields, or 6 with seconds first.
    pub cron: String,
    /// The time zone the cron expression is read in.
    pub timezone: String,
    /// Values for the query's (or dashboard's) parameters.
    pub parameters: ParameterValues,
    /// The result attached as a file, in this format.
    pub attachment: Option<ExportFormat>,
    /// Where it delivers (destination ids).
    pub destinations: Vec<String>,
    /// A disabled subscription does not fire.
    pub enabled: bool,
    /// The next time it fires (µs), when enabled.
    pub next_run_at: Option<i64>,
    /// The last time it fired (µs).
    pub last_run_at: Option<i64>,
    /// Occurrences in a row that failed.
    pub failure_streak: i64,
    /// Increases with each change.
    pub revision: i64,
    /// When it was created (µs).
    pub created_at: i64,
    /// When it last changed (µs).
    pub updated_at: i64,
}

/// A subscription's settings.
#[derive(Debug, Clone)]
pub struct SubscriptionInput {
    /// Its name.
    pub name: String,
    /// What it delivers.
    pub target_kind: TargetKind,
    /// The query, visualization or dashboard.
    pub target_id: String,
    /// The cron expression.
    pub cron: String,
    /// The IANA time zone.
    pub timezone: String,
    /// Parameter values.
    pub parameters: ParameterValues,
    /// Attach the result in this format (`csv`, `xlsx`, `parquet`).
    pub attachment: Option<ExportFormat>,
    /// Where it delivers.
    pub destinations: Vec<String>,
    /// Whether it fires.
    pub enabled: bool,
}

pub(crate) const SPEC: ListSpec = ListSpec {
    from: "subscriptions s",
    alias: "s",
    sorts: &["name", "next_run_at", "created_at", "updated_at"],
    default_sort: "name",
    filters: &[
        ("owner", Filter::Equals("s.owner_id")),
        ("target_kind", Filter::Equals("s.target_kind")),
        ("target", Filter::Equals("s.target_id")),
        ("enabled", Filter::Flag("s.enabled")),
    ],
    created: Some("s.created_at"),
    updated: Some("s.updated_at"),
};

fn subscription(row: &AnyRow) -> Result<Subscription> {
    let kind: String = col(row, "target_kind")?;
    let attachment: Option<String> = col(row, "attachment")?;
    Ok(Subscription {
        id: col(row, "id")?,
        owner_id: col(row, "owner_id")?,
        name: col(row, "name")?,
        target_kind: TargetKind::parse(&kind)?,
        target_id: col(row, "target_id")?,
        cron: col(row, "cron")?,
        timezone: col(row, "timezone")?,
        parameters: json(row, "parameters")?,
        attachment: attachment.as_deref().and_then(ExportFormat::from_name),
        destinations: json(row, "destinations")?,
        enabled: flag(row, "enabled")?,
        next_run_at: col(row, "next_run_at")?,
        last_run_at: col(row, "last_run_at")?,
        failure_streak: col(row, "failure_streak")?,
        revision: col(row, "revision")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

/// One run an occurrence needs: the query, its values, and the
/// visualization it is shown as (none for a query's own result).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Part {
    query_id: String,
    values: ParameterValues,
    visualization_id: Option<String>,
    /// The run queued for it, or why none was.
    run_id: Option<String>,
    refused: Option<String>,
}

/// The runs an occurrence needs, as `actor` (the owner) sees the target.
async fn plan(shared: &Arc<Shared>, actor: &Actor, found: &Subscription) -> Result<Vec<Part>> {
    let part = |query_id: &str, values: ParameterValues, visualization_id: Option<String>| Part {
        query_id: query_id.to_owned(),
        values,
        visualization_id,
        run_id: None,
        refused: None,
    };
    Ok(match found.target_kind {
        TargetKind::Query => vec![part(&found.target_id, found.parameters.clone(), None)],
        TargetKind::Visualization => {
            let visualizations = crate::VisualizationService::new(shared.clone());
            let v = visualizations.get(actor, &found.target_id).await?;
            vec![part(&v.query_id, found.parameters.clone(), Some(v.id))]
        }
        TargetKind::Dashboard => {
            let dashboards = crate::DashboardService::new(shared.clone());
            let dashboard = dashboards.get(actor, &found.target_id).await?;
            let mut parts = Vec::new();
            for widget in &dashboard.widgets {
                if let (crate::WidgetKind::Visualization { visualization_id }, Some(query_id)) =
                    (&widget.kind, &widget.query_id)
                {
                    let values = dashboard.values_for(widget, &found.parameters);
                    parts.push(part(query_id, values, Some(visualization_id.clone())));
                }
            }
            parts
        }
    })
}

/// Subscriptions.
#[derive(Debug, Clone)]
pub struct SubscriptionService {
    shared: Arc<Shared>,
}

impl SubscriptionService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    async fn check(&self, actor: &Actor, input: &SubscriptionInput) -> Result<Option<i64>> {
        let mut v = Validator::new();
        v.name("name", &input.name);
        let next = check_timing(&self.shared, &mut v, &input.cron, &input.timezone);
        if let Some(format) = input.attachment
            && !ATTACHMENT_FORMATS.contains(&format)
        {
            v.push(
                "attachment",
                codes::field::INVALID,
                format!("{format} is not attached; use csv, xlsx or parquet"),
            );
        }
        if input.attachment.is_some() && input.target_kind == TargetKind::Dashboard {
            v.push(
                "attachment",
                codes::field::INVALID,
                "a dashboard is delivered as images; attach results with a subscription to a query",
            );
        }
        check_destinations(&self.shared, &actor.org_id, &mut v, &input.destinations).await?;
        let probe = Subscription {
            id: String::new(),
            owner_id: actor.user_id.clone(),
            name: input.name.clone(),
            target_kind: input.target_kind,
            target_id: input.target_id.clone(),
            cron: input.cron.clone(),
            timezone: input.timezone.clone(),
            parameters: input.parameters.clone(),
            attachment: input.attachment,
            destinations: input.destinations.clone(),
            enabled: input.enabled,
            next_run_at: None,
            last_run_at: None,
            failure_streak: 0,
            revision: 0,
            created_at: 0,
            updated_at: 0,
        };
        match plan(&self.shared, actor, &probe).await {
            Ok(parts) => {
                if parts.is_empty() {
                    v.push(
                        "target_id",
                        codes::field::INVALID,
                        "the dashboard has no visualization to deliver",
                    );
                }
                for p in &parts {
                    runnable_query(
                        &self.shared,
                        actor,
                        &mut v,
                        "target_id",
                        &p.query_id,
                        &p.values,
                    )
                    .await?;
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => v.push(
                "target_id",
                codes::NOT_FOUND,
                format!("no {} {}", input.target_kind.as_str(), input.target_id),
            ),
            Err(e) => return Err(e),
        }
        v.finish()?;
        Ok(next.filter(|_| input.enabled))
    }

    async fn load(&self, actor: &Actor, id: &str) -> Result<Subscription> {
        let row = fetch_in_org(
            &self.shared.store,
            &actor.org_id,
            "SELECT * FROM subscriptions WHERE id = $1",
            "subscription",
            id,
        )
        .await?;
        subscription(&row)
    }

    /// A subscription the actor may see: their own, or any for admins.
    pub async fn get(&self, actor: &Actor, id: &str) -> Result<Subscription> {
        let found = self.load(actor, id).await?;
        if !actor.is_admin() && found.owner_id != actor.user_id {
            return Err(Error::not_found("subscription", id));
        }
        Ok(found)
    }

    /// The subscriptions the actor may see.
    pub async fn list(
        &self,
        actor: &Actor,
        request: &ListRequest,
    ) -> Result<ListPage<Subscription>> {
        let mut rows = SPEC.org_rows(&actor.org_id);
        if !actor.is_admin() {
            rows.push(" AND s.owner_id = ");
            rows.bind_text(&actor.user_id);
        }
        SPEC.page(&self.shared.store, rows, request)
            .await?
            .try_map(subscription)
    }

    /// Creates a subscription. Editors and admins who may run what it
    /// delivers.
    pub async fn create(&self, actor: &Actor, input: SubscriptionInput) -> Result<Subscription> {
        actor.require(Role::Editor, "subscribing to results")?;
        let next = self.check(actor, &input).await?;
        let id = new_id();
        let now = now_micros();
        let mut tx = self.shared.store.write().await?;
        sqlx::query(
            "INSERT INTO subscriptions (id, org_id, owner_id, name, target_kind, target_id, cron, timezone, parameters, attachment, destinations, enabled, next_run_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(id.clone())
        .bind(actor.org_id.clone())
        .bind(actor.user_id.clone())
        .bind(input.name.trim().to_owned())
        .bind(input.target_kind.as_str())
        .bind(input.target_id.clone())
        .bind(input.cron.trim().to_owned())
        .bind(input.timezone.clone())
        .bind(to_json(&input.parameters)?)
        .bind(input.attachment.map(ExportFormat::name))
        .bind(to_json(&input.destinations)?)
        .bind(i16::from(input.enabled))
        .bind(next)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let detail = serde_json::json!({ "name": input.name.trim(), "target": input.target_id });
        audit::record(
            &mut *tx,
            audit::Entry::by(actor, "subscription.create", "subscription", &id).detail(detail),
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        self.get(actor, &id).await
    }

    /// Replaces a subscription's settings if `revision` is still current.
    /// Its owner or an admin.
    pub async fn update(
        &self,
        actor: &Actor,
        id: &str,
        revision: i64,
        input: SubscriptionInput,
    ) -> Result<Subscription> {
        let current = self.get(actor, id).await?;
        actor.require_edit(&current.owner_id, false, "subscription")?;
        let next = self.check(actor, &input).await?;
        let mut tx = self.shared.store.write().await?;
        let result = sqlx::query(
            "UPDATE subscriptions SET name = $1, target_kind = $2, target_id = $3, cron = $4, timezone = $5, parameters = $6, \
             attachment = $7, destinations = $8, enabled = $9, next_run_at = $10, revision = revision + 1, updated_at = $11 \
             WHERE id = $12 AND revision = $13",
        )
        .bind(input.name.trim().to_owned())
        .bind(input.target_kind.as_str())
        .bind(input.target_id.clone())
        .bind(input.cron.trim().to_owned())
        .bind(input.timezone.clone())
        .bind(to_json(&input.parameters)?)
        .bind(input.attachment.map(ExportFormat::name))
        .bind(to_json(&input.destinations)?)
        .bind(i16::from(input.enabled))
        .bind(next)
        .bind(now_micros())
        .bind(id.to_owned())
        .bind(revision)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        check_revision(result.rows_affected(), "subscription", revision)?;
        let detail = serde_json::json!({ "name": input.name.trim() });
        audit::record(
            &mut *tx,
            audit::Entry::by(actor, "subscription.update", "subscription", id).detail(detail),
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        self.get(actor, id).await
    }

    /// Deletes a subscription. Its owner or an admin; its deliveries stay
    /// in the log.
    pub async fn delete(&self, actor: &Actor, id: &str) -> Result<()> {
        let current = self.get(actor, id).await?;
        actor.require_edit(&current.owner_id, false, "subscription")?;
        let detail = serde_json::json!({ "name": current.name });
        audit::delete_audited(
            &self.shared.store,
            actor,
            "subscriptions",
            "subscription",
            id,
            detail,
        )
        .await
    }
}

/// Fires every subscription due now (for the scheduler); how many fired.
pub(crate) async fn fire_due(services: &Services, now: i64) -> Result<usize> {
    let rows = sqlx::query(
        "SELECT * FROM subscriptions WHERE enabled = 1 AND next_run_at IS NOT NULL AND next_run_at <= $1 ORDER BY next_run_at LIMIT 200",
    )
    .bind(now)
    .fetch_all(services.store().pool())
    .await
    .map_err(db_error)?;
    let mut fired = 0;
    for row in &rows {
        let due = subscription(row)?;
        let org_id: String = col(row, "org_id")?;
        match fire(services, &org_id, &due, now).await {
            Ok(true) => fired += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(subscription = %due.id, error = %e, "firing a subscription failed")
            }
        }
    }
    if fired > 0 {
        services.queue_changed();
    }
    Ok(fired)
}

/// Fires one due subscription: queues its runs and records the firing, if
/// no other scheduler took this occurrence first.
async fn fire(services: &Services, org_id: &str, due: &Subscription, now: i64) -> Result<bool> {
    let Some(read_next) = due.next_run_at else {
        return Ok(false);
    };
    let after = Utc.timestamp_micros(now).single().unwrap_or_else(Utc::now);
    let next = match (parse_cron(&due.cron), parse_timezone(&due.timezone)) {
        (Ok(cron), Ok(tz)) => next_fire(&cron, tz, after).map(|t| t.timestamp_micros()),
        _ => None,
    };
    // The owner as they are now (a disabled owner's subscription fails,
    // and they hear of it), and the runs the target needs as they see it.
    let planned = match services.users.actor(&due.owner_id, None).await {
        Ok(owner) => match plan(&services.shared, &owner, due).await {
            Ok(parts) => Ok((owner, parts)),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let mut parts = match planned {
        Err(e) if matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Internal) => {
            return Err(e);
        }
        Err(e) => Err(e),
        Ok((owner, mut parts)) => {
            let mut admitted = Vec::new();
            for part in parts.iter_mut() {
                let subject = Subject::Query {
                    id: &part.query_id,
                    values: &part.values,
                };
                match services.runs.admit(&owner, subject).await {
                    Ok(a) => admitted.push(Some(a)),
                    Err(e) if matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Internal) => {
                        return Err(e);
                    }
                    Err(e) => {
                        part.refused = Some(e.to_string());
                        admitted.push(None);
                    }
                }
            }
            Ok((parts, admitted))
        }
    };
    let mut tx = services.store().write().await?;
    let moved = sqlx::query(
        "UPDATE subscriptions SET next_run_at = $1, last_run_at = $2 WHERE id = $3 AND next_run_at = $4 AND enabled = 1",
    )
    .bind(next)
    .bind(now)
    .bind(due.id.clone())
    .bind(read_next)
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    if moved.rows_affected() == 0 {
        return Ok(false);
    }
    let parts = match &mut parts {
        Ok((parts, admitted)) => {
            for (part, admitted) in parts.iter_mut().zip(admitted.iter()) {
                let Some(admitted) = admitted else { continue };
                let new = admitted.run(SCHEDULED, Some(due.owner_id.clone()), None);
                let key = cache_key(new.datasource_id, new.statement, new.context)?;
                match insert_run(&mut tx, &new, &key).await {
                    Ok(run_id) => part.run_id = Some(run_id),
                    Err(e) if e.kind() == ErrorKind::Conflict => part.refused = Some(e.to_string()),
                    Err(e) => return Err(e),
                }
            }
            std::mem::take(parts)
        }
        // The target is gone or hidden from its owner: the occurrence is
        // a failure the owner hears of.
        Err(e) => vec![Part {
            query_id: String::new(),
            values: ParameterValues::new(),
            visualization_id: None,
            run_id: None,
            refused: Some(e.to_string()),
        }],
    };
    sqlx::query(
        "INSERT INTO subscription_firings (id, subscription_id, occurrence, runs, status, created_at) VALUES ($1, $2, $3, $4, 'waiting', $5)",
    )
    .bind(new_id())
    .bind(due.id.clone())
    .bind(read_next)
    .bind(to_json(&parts)?)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    tracing::info!(subscription = %due.id, org = %org_id, "subscription fired");
    Ok(true)
}

/// Turns firings whose runs have all ended into deliveries: one per
/// destination when every run succeeded; when one failed, a notice to the
/// owner if the previous occurrence did not fail too.
pub(crate) async fn resolve_firings(services: &Services) -> Result<()> {
    let rows = sqlx::query(
        "SELECT f.id, f.subscription_id, f.occurrence, f.runs FROM subscription_firings f WHERE f.status = 'waiting' ORDER BY f.created_at LIMIT 100",
    )
    .fetch_all(services.store().pool())
    .await
    .map_err(db_error)?;
    for row in &rows {
        let firing_id: String = col(row, "id")?;
        let parts: Vec<Part> = json(row, "runs")?;
        let mut ended = true;
        let mut errors = Vec::new();
        for part in &parts {
            if let Some(refused) = &part.refused {
                errors.push(refused.clone());
                continue;
            }
            let Some(run_id) = &part.run_id else { continue };
            match services.runs.get_unchecked(run_id).await {
                Ok(run) => match run.status {
                    RunStatus::Queued | RunStatus::Running => ended = false,
                    RunStatus::Succeeded => {}
                    RunStatus::Failed | RunStatus::Cancelled => errors.push(format!(
                        "run {} {}: {}",
                        run.id,
                        run.status.as_str(),
                        run.error_message.as_deref().unwrap_or("no message")
                    )),
                },
                Err(Error::NotFound { .. }) => errors.push(format!("run {run_id} was deleted")),
                Err(e) => return Err(e),
            }
        }
        if !ended {
            continue;
        }
        let subscription_id: String = col(row, "subscription_id")?;
        let occurrence: i64 = col(row, "occurrence")?;
        if let Err(e) = resolve(
            services,
            &firing_id,
            &subscription_id,
            occurrence,
            &parts,
            &errors,
        )
        .await
        {
            tracing::warn!(firing = %firing_id, error = %e, "a subscription's firing could not be resolved");
        }
    }
    Ok(())
}

async fn resolve(
    services: &Services,
    firing_id: &str,
    subscription_id: &str,
    occurrence: i64,
    parts: &[Part],
    errors: &[String],
) -> Result<()> {
    let mut tx = services.store().write().await?;
    let done = sqlx::query(
        "UPDATE subscription_firings SET status = 'done' WHERE id = $1 AND status = 'waiting'",
    )
    .bind(firing_id.to_owned())
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    if done.rows_affected() == 0 {
        return Ok(());
    }
    let row = sqlx::query("SELECT * FROM subscriptions WHERE id = $1")
        .bind(subscription_id.to_owned())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
    let Some(row) = row else {
        // Deleted since it fired.
        return tx.commit().await.map_err(db_error);
    };
    let found = subscription(&row)?;
    let org_id: String = col(&row, "org_id")?;
    if errors.is_empty() {
        sqlx::query("UPDATE subscriptions SET failure_streak = 0 WHERE id = $1")
            .bind(found.id.clone())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let content = serde_json::json!({
            "subscription_id": found.id,
            "subscription_name": found.name,
            "target_kind": found.target_kind,
            "target_id": found.target_id,
            "attachment": found.attachment,
            "occurrence": occurrence,
            "parts": parts,
        });
        deliveries::queue(
            &mut tx,
            &org_id,
            SourceKind::Subscription,
            &found.id,
            occurrence,
            &found.destinations,
            &content,
        )
        .await?;
    } else {
        sqlx::query("UPDATE subscriptions SET failure_streak = failure_streak + 1 WHERE id = $1")
            .bind(found.id.clone())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if found.failure_streak == 0 {
            let owner: Option<(String,)> = sqlx::query_as("SELECT email FROM users WHERE id = $1")
                .bind(found.owner_id.clone())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
            let targets = failure_destinations(&mut tx, &found.destinations).await?;
            let content = serde_json::json!({
                "subscription_id": found.id,
                "subscription_name": found.name,
                "owner_email": owner.map(|(e,)| e),
                "occurrence": occurrence,
                "errors": errors.join("; "),
            });
            deliveries::queue(
                &mut tx,
                &org_id,
                SourceKind::Failure,
                &found.id,
                occurrence,
                &targets,
                &content,
            )
            .await?;
        }
    }
    tx.commit().await.map_err(db_error)
}

/// Where a failure notice goes: the first email destination (addressed to
/// the owner alone), or else every destination of the subscription.
async fn failure_destinations(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    destinations: &[String],
) -> Result<Vec<String>> {
    for id in destinations {
        let kind: Option<(String,)> = sqlx::query_as("SELECT kind FROM destinations WHERE id = $1")
            .bind(id.clone())
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_error)?;
        if kind.is_some_and(|(k,)| k == "email") {
            return Ok(vec![id.clone()]);
        }
    }
    Ok(destinations.to_vec())
}

/// The message of a subscription's occurrence, from its runs' stored
/// results.
pub(crate) async fn compose(
    services: &Services,
    org_id: &str,
    content: &serde_json::Value,
) -> Result<Message> {
    let name = content["subscription_name"].as_str().unwrap_or_default();
    let parts: Vec<Part> = serde_json::from_value(content["parts"].clone())
        .map_err(|e| Error::internal_from("a firing's runs", e))?;
    let attachment = content["attachment"]
        .as_str()
        .and_then(ExportFormat::from_name);
    let when = content["occurrence"]
        .as_i64()
        .and_then(|us| Utc.timestamp_micros(us).single())
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    let mut message = Message {
        subject: format!("[Loupe] {name}"),
        text: format!("{name} ({when})\n"),
        html: format!(
            "<h2>{}</h2><p>{}</p>",
            escape_html(name),
            escape_html(&when)
        ),
        event: serde_json::json!({ "type": "subscription", "subscription": content }),
        ..Message::default()
    };
    for part in &parts {
        let Some(run_id) = &part.run_id else { continue };
        let Some(run) = run_in_org(services, org_id, run_id).await? else {
            continue;
        };
        match &part.visualization_id {
            None => add_result(services, &mut message, &run, attachment).await?,
            Some(visualization_id) => {
                let visualization = services
                    .visualizations
                    .get_unchecked(visualization_id)
                    .await?;
                match chart_image(services, &visualization, &run).await {
                    Ok(Some(image)) => {
                        message.text.push_str(&format!(
                            "\n{}: see the attached image.\n",
                            visualization.name
                        ));
                        message.html.push_str(&format!(
                            "<h3>{}</h3><img src=\"cid:{}\" alt=\"{}\">",
                            escape_html(&visualization.name),
                            escape_html(&image.content_id),
                            escape_html(&image.alt)
                        ));
                        message.images.push(image);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        // One chart that cannot be drawn does not hold back
                        // the rest of the message.
                        tracing::warn!(visualization = %visualization.id, error = %e, "a chart could not be rendered");
                        message.text.push_str(&format!(
                            "\n{}: could not be drawn: {e}\n",
                            visualization.name
                        ));
                        message.html.push_str(&format!(
                            "<h3>{}</h3><p>Could not be drawn: {}</p>",
                            escape_html(&visualization.name),
                            escape_html(&e.to_string())
                        ));
                    }
                }
                if parts.len() == 1 && attachment.is_some() {
                    add_result(services, &mut message, &run, attachment).await?;
                }
            }
        }
    }
    if content["target_kind"] == "dashboard"
        && let Some(base) = &services.shared.config.deliveries.public_url
    {
        message.links.push(crate::delivery::Link {
            label: "Open the dashboard".to_owned(),
            url: format!(
                "{}/api/v1/dashboards/{}",
                base.trim_end_matches('/'),
                content["target_id"].as_str().unwrap_or_default()
            ),
        });
    }
    Ok(message)
}
