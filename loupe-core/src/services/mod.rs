//! The domain services: every business rule of Loupe, so that the server,
//! the CLI and an embedding application behave the same.
//!
//! Each operation takes an [`Actor`] and checks, in this order: that the
//! object is in the actor's organization (otherwise: not found), that the
//! actor's role and grants allow the operation (otherwise: refused), that
//! the input is valid (otherwise: every field error at once). Changes that
//! matter (logins, permissions, datasources, deletes) are audited in the
//! same transaction as the change.

mod actor;
mod api_keys;
mod audit;
mod canvases;
mod crypto;
mod dashboards;
mod datasources;
mod groups;
mod organizations;
mod queries;
mod runs;
mod schedules;
mod sessions;
mod users;
mod validate;
mod visualizations;

use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyRow;
use sqlx::{Any, Decode, Row, Type};

pub use actor::{Access, Actor, Role, Scope, Via};
pub use api_keys::{ApiKey, ApiKeyService, NewApiKey};
pub use audit::{AuditEvent, AuditService, Outcome};
pub use canvases::{
    Canvas, CanvasEdge, CanvasInput, CanvasNode, CanvasService, MAX_EDGES, MAX_NODES, NodeKind,
};
pub use crypto::{KeyRing, MAX_PASSWORD, MIN_PASSWORD, Passwords};
pub use dashboards::{
    Dashboard, DashboardInput, DashboardParameter, DashboardService, GRID_COLUMNS, MAX_WIDGETS,
    Widget, WidgetInput, WidgetKind,
};
pub use datasources::{
    DatasourceInput, DatasourceRecord, DatasourceService, DatasourceUpdate, SECRET_MASK,
};
pub use groups::{Grant, Group, GroupService};
pub use organizations::{EVERYONE, Organization, OrganizationService, Setup};
pub use queries::{NewQuery, Query, QueryService, QueryUpdate, QueryVersion};
pub use runs::{Run, RunService, RunStatus, StartKind, Started};
pub use schedules::{
    Schedule, ScheduleInput, ScheduleService, next_fire, parse_cron, parse_timezone,
};
pub use sessions::{MIN_SIGNING_SECRET, Session, SessionConfig, SessionService, SigningKey};
pub use users::{NewUser, OneTimeToken, User, UserService, UserUpdate};
pub use visualizations::{
    Visualization, VisualizationInput, VisualizationService, VisualizationType,
};

pub(crate) use groups::access_of_user;
pub(crate) use runs::{NewRun, SCHEDULED, bind_query, cache_key, insert_run};
pub(crate) use schedules::schedule as schedule_from_row;

use crate::datasource::Datasource;
use crate::error::{Error, Result};
use crate::meta::{MetadataStore, db_error};
use crate::registry::Registry;
use crate::results::ResultStore;

/// Settings of the services.
#[derive(Debug, Clone)]
pub struct ServicesConfig {
    /// Keys for datasource secrets; without them, secrets cannot be stored.
    pub secret_keys: Option<KeyRing>,
    /// Failed logins in a row that lock an account.
    pub lockout_threshold: u32,
    /// How long a locked account stays locked.
    pub lockout_window: Duration,
    /// How long an invitation stays valid.
    pub invite_ttl: Duration,
    /// How long a password reset stays valid.
    pub reset_ttl: Duration,
    /// Signing key and token lifetimes; without them, sessions cannot start.
    pub sessions: Option<SessionConfig>,
}

impl Default for ServicesConfig {
    fn default() -> Self {
        Self {
            secret_keys: None,
            lockout_threshold: 5,
            lockout_window: Duration::from_secs(15 * 60),
            invite_ttl: Duration::from_secs(7 * 24 * 3600),
            reset_ttl: Duration::from_secs(3600),
            sessions: None,
        }
    }
}

/// What every service shares.
pub(crate) struct Shared {
    pub(crate) store: MetadataStore,
    pub(crate) registry: Registry,
    pub(crate) passwords: Passwords,
    pub(crate) config: ServicesConfig,
    pub(crate) results: Option<Arc<dyn ResultStore>>,
    pub(crate) datasource_cache: datasources::Cache,
    /// Runs executing in this process, to cancel them at once.
    pub(crate) cancellations: Cancellations,
    /// Woken when a run is queued, so a runner in this process claims it
    /// without waiting for its next poll.
    pub(crate) queue_changed: tokio::sync::Notify,
}

/// Cancellation tokens of the runs executing in this process.
#[derive(Debug, Default)]
pub(crate) struct Cancellations(
    std::sync::Mutex<std::collections::HashMap<String, tokio_util::sync::CancellationToken>>,
);

impl Cancellations {
    pub(crate) fn insert(&self, run_id: &str, token: tokio_util::sync::CancellationToken) {
        self.lock().insert(run_id.to_owned(), token);
    }

    pub(crate) fn remove(&self, run_id: &str) {
        self.lock().remove(run_id);
    }

    pub(crate) fn cancel(&self, run_id: &str) {
        if let Some(token) = self.lock().get(run_id) {
            token.cancel();
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<String, tokio_util::sync::CancellationToken>,
    > {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("store", &self.store)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// All services, over one metadata store.
#[derive(Debug, Clone)]
pub struct Services {
    /// Organizations and first-time set-up.
    pub organizations: OrganizationService,
    /// Users, passwords, logins, invitations.
    pub users: UserService,
    /// Groups, memberships and datasource grants.
    pub groups: GroupService,
    /// Datasources and their secrets.
    pub datasources: DatasourceService,
    /// Saved queries and their versions.
    pub queries: QueryService,
    /// Runs of queries (records; the runner executes them).
    pub runs: RunService,
    /// Schedules.
    pub schedules: ScheduleService,
    /// Visualizations.
    pub visualizations: VisualizationService,
    /// Dashboards and widgets.
    pub dashboards: DashboardService,
    /// Canvases.
    pub canvases: CanvasService,
    /// API keys.
    pub api_keys: ApiKeyService,
    /// Sign-in sessions (access and refresh tokens).
    pub sessions: SessionService,
    /// The audit trail.
    pub audit: AuditService,
    pub(crate) shared: Arc<Shared>,
}

impl Services {
    /// Services over `store`, building datasources with `registry`.
    /// `results` is where run results live (deleted with their runs).
    pub fn new(
        store: MetadataStore,
        registry: Registry,
        config: ServicesConfig,
        results: Option<Arc<dyn ResultStore>>,
    ) -> Result<Self> {
        let shared = Arc::new(Shared {
            store,
            registry,
            passwords: Passwords::owasp()?,
            config,
            results,
            datasource_cache: datasources::Cache::default(),
            cancellations: Cancellations::default(),
            queue_changed: tokio::sync::Notify::new(),
        });
        Ok(Self {
            organizations: OrganizationService::new(shared.clone()),
            users: UserService::new(shared.clone()),
            groups: GroupService::new(shared.clone()),
            datasources: DatasourceService::new(shared.clone()),
            queries: QueryService::new(shared.clone()),
            runs: RunService::new(shared.clone()),
            schedules: ScheduleService::new(shared.clone()),
            visualizations: VisualizationService::new(shared.clone()),
            dashboards: DashboardService::new(shared.clone()),
            canvases: CanvasService::new(shared.clone()),
            api_keys: ApiKeyService::new(shared.clone()),
            sessions: SessionService::new(shared.clone()),
            audit: AuditService::new(shared.clone()),
            shared,
        })
    }
}

impl Services {
    /// The metadata store, for hosts' health checks and pool metrics.
    pub fn store(&self) -> &MetadataStore {
        &self.shared.store
    }

    /// The connectors datasources are built with: their kinds, options and
    /// dialects, for hosts that describe them.
    pub fn connectors(&self) -> &Registry {
        &self.shared.registry
    }
}

/// A saved query by id, without access checks (for the scheduler).
pub(crate) async fn load_query(shared: &Shared, id: &str) -> Result<Query> {
    let row = fetch_optional(
        &shared.store,
        sqlx::query("SELECT * FROM queries WHERE id = $1").bind(id.to_owned()),
    )
    .await?
    .ok_or_else(|| Error::not_found("query", id))?;
    queries::query(&row, Vec::new())
}

/// The live datasource by id, without access checks (for the runner,
/// which executes runs whose access was checked when they were started).
pub(crate) async fn live_datasource(services: &Services, id: &str) -> Result<Arc<dyn Datasource>> {
    Ok(services.datasources.live(id).await?.0)
}

/// Reads column `name` of `row`.
pub(crate) fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T>
where
    T: Decode<'r, Any> + Type<Any>,
{
    row.try_get(name)
        .map_err(|e| Error::internal_from(format!("metadata column {name}"), e))
}

/// A 0/1 flag column as a bool.
pub(crate) fn flag(row: &AnyRow, name: &str) -> Result<bool> {
    Ok(col::<i16>(row, name)? != 0)
}

/// A JSON document column.
pub(crate) fn json<T: serde::de::DeserializeOwned>(row: &AnyRow, name: &str) -> Result<T> {
    let text: String = col(row, name)?;
    serde_json::from_str(&text)
        .map_err(|e| Error::internal_from(format!("metadata column {name}"), e))
}

/// A value as a JSON document for storage.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::internal_from("encode a metadata document", e))
}

/// Reads one row, or `None`.
pub(crate) async fn fetch_optional<'q>(
    store: &MetadataStore,
    query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
) -> Result<Option<AnyRow>> {
    query.fetch_optional(store.pool()).await.map_err(db_error)
}

/// Fails with [`Error::Conflict`] when an update matched no row because
/// the object changed since the caller read it.
pub(crate) fn check_revision(rows_affected: u64, what: &str, expected: i64) -> Result<()> {
    if rows_affected == 0 {
        Err(Error::conflict(
            "conflict.revision",
            format!(
                "the {what} changed since revision {expected} was read; reload it and try again"
            ),
        ))
    } else {
        Ok(())
    }
}
