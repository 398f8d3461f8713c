//! The audit trail: logins (success and failure), permission changes,
//! datasource changes and deletes, written in the same transaction as the
//! change they describe. Only admins read it.

use std::sync::Arc;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Transaction};

use super::actor::{Actor, Role};
use crate::meta::col;
use crate::meta::{
    Filter, ListPage, ListRequest, ListSpec, MetadataStore, db_error, new_id, now_micros,
};
use crate::services::Shared;
use loupe_core::Result;

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It happened.
    Success,
    /// It was tried and failed (a wrong password).
    Failure,
    /// It was not allowed.
    Denied,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }
}

/// One audited action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    /// The event's id.
    pub id: String,
    /// The user who acted, if known.
    pub actor_user_id: Option<String>,
    /// The API key used, if any.
    pub actor_key_id: Option<String>,
    /// What was done, such as `user.login` or `datasource.delete`.
    pub action: String,
    /// The kind of object acted on.
    pub resource_type: String,
    /// The object's id.
    pub resource_id: Option<String>,
    /// How it ended.
    pub outcome: String,
    /// Where the request came from.
    pub ip: Option<String>,
    /// Anything else worth keeping (never a secret).
    pub detail: Option<serde_json::Value>,
    /// When, in microseconds since the Unix epoch.
    pub created_at: i64,
}

/// What to write to the trail.
#[derive(Debug, Clone)]
pub(crate) struct Entry<'a> {
    pub(crate) org_id: &'a str,
    pub(crate) actor: Option<&'a Actor>,
    pub(crate) action: &'a str,
    pub(crate) resource_type: &'a str,
    pub(crate) resource_id: Option<&'a str>,
    pub(crate) outcome: Outcome,
    pub(crate) detail: Option<serde_json::Value>,
}

impl<'a> Entry<'a> {
    /// `action` on `resource_type` `resource_id` in the trail of
    /// organization `org_id`; it succeeded. Nobody is named as its actor:
    /// a set-up or a redeemed link has none, [`by`](Self::by) names one.
    pub(crate) fn new(
        org_id: &'a str,
        action: &'a str,
        resource_type: &'a str,
        resource_id: &'a str,
    ) -> Self {
        Self {
            org_id,
            actor: None,
            action,
            resource_type,
            resource_id: Some(resource_id),
            outcome: Outcome::Success,
            detail: None,
        }
    }

    /// What `actor` did in its organization; it succeeded.
    pub(crate) fn by(
        actor: &'a Actor,
        action: &'a str,
        resource_type: &'a str,
        resource_id: &'a str,
    ) -> Self {
        Self {
            actor: Some(actor),
            ..Self::new(&actor.org_id, action, resource_type, resource_id)
        }
    }

    /// The same entry, ended otherwise.
    pub(crate) fn outcome(self, outcome: Outcome) -> Self {
        Self { outcome, ..self }
    }

    /// The same entry, with `detail`.
    pub(crate) fn detail(self, detail: serde_json::Value) -> Self {
        Self {
            detail: Some(detail),
            ..self
        }
    }
}

/// Writes an event with `executor` (a transaction, to be atomic with the
/// change, or the pool for failures).
pub(crate) async fn record<'e, E>(executor: E, entry: Entry<'_>) -> Result<()>
where
    E: Executor<'e, Database = Any>,
{
    let detail = entry.detail.map(|d| d.to_string());
    sqlx::query(
        "INSERT INTO audit_events (id, org_id, actor_user_id, actor_key_id, action, resource_type, resource_id, outcome, ip, detail, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(new_id())
    .bind(entry.org_id.to_owned())
    .bind(entry.actor.map(|a| a.user_id.clone()))
    .bind(entry.actor.and_then(|a| a.key_id().map(str::to_owned)))
    .bind(entry.action.to_owned())
    .bind(entry.resource_type.to_owned())
    .bind(entry.resource_id.map(str::to_owned))
    .bind(entry.outcome.as_str())
    .bind(entry.actor.and_then(|a| a.ip.clone()))
    .bind(detail)
    .bind(now_micros())
    .execute(executor)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Deletes row `id` of `table` in `tx` and records `<resource>.delete`
/// with `detail` in the same transaction. `table` is one of the service's
/// own table names, never input.
pub(crate) async fn delete_recorded(
    tx: &mut Transaction<'static, Any>,
    actor: &Actor,
    table: &'static str,
    resource: &'static str,
    id: &str,
    detail: Option<serde_json::Value>,
) -> Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {table} WHERE id = $1"
    )))
    .bind(id.to_owned())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    let action = format!("{resource}.delete");
    let entry = Entry {
        detail,
        ..Entry::by(actor, &action, resource, id)
    };
    record(&mut **tx, entry).await
}

/// [`delete_recorded`] in a transaction of its own: for objects whose
/// delete checks nothing else in the store.
pub(crate) async fn delete_audited(
    store: &MetadataStore,
    actor: &Actor,
    table: &'static str,
    resource: &'static str,
    id: &str,
    detail: serde_json::Value,
) -> Result<()> {
    let mut tx = store.write().await?;
    delete_recorded(&mut tx, actor, table, resource, id, Some(detail)).await?;
    tx.commit().await.map_err(db_error)
}

pub(crate) const SPEC: ListSpec = ListSpec {
    from: "audit_events a",
    alias: "a",
    sorts: &["created_at", "action"],
    default_sort: "-created_at",
    filters: &[
        ("action", Filter::Equals("a.action")),
        ("resource_type", Filter::Equals("a.resource_type")),
        ("resource_id", Filter::Equals("a.resource_id")),
        ("actor", Filter::Equals("a.actor_user_id")),
        ("outcome", Filter::Equals("a.outcome")),
    ],
    created: Some("a.created_at"),
    updated: None,
};

/// Reads the audit trail.
#[derive(Debug, Clone)]
pub struct AuditService {
    shared: Arc<Shared>,
}

impl AuditService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The organization's events, newest first by default. Admins only.
    pub async fn list(&self, actor: &Actor, request: &ListRequest) -> Result<ListPage<AuditEvent>> {
        actor.require(Role::Admin, "reading the audit trail")?;
        let rows = SPEC.org_rows(&actor.org_id);
        SPEC.page(&self.shared.store, rows, request)
            .await?
            .try_map(event)
    }
}

fn event(row: &AnyRow) -> Result<AuditEvent> {
    Ok(AuditEvent {
        id: col(row, "id")?,
        actor_user_id: col(row, "actor_user_id")?,
        actor_key_id: col(row, "actor_key_id")?,
        action: col(row, "action")?,
        resource_type: col(row, "resource_type")?,
        resource_id: col(row, "resource_id")?,
        outcome: col(row, "outcome")?,
        ip: col(row, "ip")?,
        detail: col::<Option<String>>(row, "detail")?.and_then(|d| serde_json::from_str(&d).ok()),
        created_at: col(row, "created_at")?,
    })
}
