//! The bundle of services over one metadata store, and what they share.

use std::sync::Arc;
use std::time::Duration;

use loupe_core::{Datasource, Registry, Result, ResultStore};

use crate::crypto::{KeyRing, Passwords};
use crate::meta::{MetadataStore, fetch_one};
use crate::sessions::SessionConfig;
use crate::{
    ApiKeyService, AuditService, CanvasService, DashboardService, DatasourceService, GroupService,
    OrganizationService, Query, QueryService, RunService, ScheduleService, SessionService,
    UserService, VisualizationService,
};

/// Settings of the services.
#[derive(Debug, Clone)]
pub struct ServicesConfig {
    /// Keys for datasource secrets; without them, secrets cannot be stored.
    pub secret_keys: Option<KeyRing>,
    /// Failed sign-ins in a row, for one account from one address, after
    /// which that address waits before its next attempt is checked.
    pub login_backoff_threshold: u32,
    /// The longest such wait (it starts at 5 s and doubles).
    pub login_backoff_max: Duration,
    /// How long an invitation stays valid.
    pub invite_ttl: Duration,
    /// How long a password reset stays valid.
    pub reset_ttl: Duration,
    /// Signing key and token lifetimes; without them, sessions cannot start.
    pub sessions: Option<SessionConfig>,
    /// The shortest time between two fires of a schedule: a cron that
    /// would fire more often is refused.
    pub min_schedule_interval: Duration,
    /// Enabled schedules one user may own (0: no limit).
    pub enabled_schedules_per_user: u32,
    /// Queued runs one user may have waiting (0: no limit). Starts
    /// answered from the cache or by joining a run in flight add none.
    pub queued_runs_per_user: u32,
    /// How notifications are sent.
    pub deliveries: crate::DeliveryConfig,
    /// Public links and signed embedding.
    pub sharing: crate::SharingSettings,
}

impl Default for ServicesConfig {
    fn default() -> Self {
        Self {
            secret_keys: None,
            login_backoff_threshold: 5,
            login_backoff_max: Duration::from_secs(15 * 60),
            invite_ttl: Duration::from_secs(7 * 24 * 3600),
            reset_ttl: Duration::from_secs(3600),
            sessions: None,
            min_schedule_interval: Duration::from_secs(60),
            enabled_schedules_per_user: 50,
            queued_runs_per_user: 100,
            deliveries: crate::DeliveryConfig::default(),
            sharing: crate::SharingSettings::default(),
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
    pub(crate) datasource_cache: crate::datasources::Cache,
    /// Runs executing in this process, to cancel them at once.
    pub(crate) cancellations: Cancellations,
    /// Woken when a run is queued, so a runner in this process claims it
    /// without waiting for its next poll.
    pub(crate) queue_changed: tokio::sync::Notify,
    /// The gauge series this process last reported.
    pub(crate) gauges: crate::ops::GaugeSeries,
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
    /// The latest stored result of a saved query for some values.
    pub latest: crate::LatestResultService,
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
    /// Where notifications go.
    pub destinations: crate::DestinationService,
    /// Alerts on query results.
    pub alerts: crate::AlertService,
    /// Scheduled deliveries of results, charts and dashboards.
    pub subscriptions: crate::SubscriptionService,
    /// The delivery log.
    pub deliveries: crate::DeliveryService,
    /// Public links to dashboards, visualizations and queries.
    pub shares: crate::ShareService,
    /// Embedding secrets and the pages signed tokens open.
    pub embedding: crate::EmbeddingService,
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
            datasource_cache: crate::datasources::Cache::default(),
            cancellations: Cancellations::default(),
            queue_changed: tokio::sync::Notify::new(),
            gauges: crate::ops::GaugeSeries::default(),
        });
        Ok(Self {
            organizations: OrganizationService::new(shared.clone()),
            users: UserService::new(shared.clone()),
            groups: GroupService::new(shared.clone()),
            datasources: DatasourceService::new(shared.clone()),
            queries: QueryService::new(shared.clone()),
            runs: RunService::new(shared.clone()),
            latest: crate::LatestResultService::new(
                shared.clone(),
                RunService::new(shared.clone()),
            ),
            schedules: ScheduleService::new(shared.clone()),
            visualizations: VisualizationService::new(shared.clone()),
            dashboards: DashboardService::new(shared.clone()),
            canvases: CanvasService::new(shared.clone()),
            api_keys: ApiKeyService::new(shared.clone()),
            sessions: SessionService::new(shared.clone()),
            audit: AuditService::new(shared.clone()),
            destinations: crate::DestinationService::new(shared.clone()),
            alerts: crate::AlertService::new(shared.clone()),
            subscriptions: crate::SubscriptionService::new(shared.clone()),
            deliveries: crate::DeliveryService::new(shared.clone()),
            shares: crate::ShareService::new(shared.clone()),
            embedding: crate::EmbeddingService::new(shared.clone()),
            shared,
        })
    }
}

impl Services {
    /// Wakes the runners of this process: a run was queued or ended.
    pub(crate) fn queue_changed(&self) {
        self.shared.queue_changed.notify_waiters();
    }

    /// Resolves when a run is queued or ends in this process; the runner
    /// waits on it between polls of the queue.
    pub(crate) fn queue_notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.shared.queue_changed.notified()
    }

    /// The runs executing in this process, to cancel them at once.
    pub(crate) fn cancellations(&self) -> &Cancellations {
        &self.shared.cancellations
    }

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
pub(crate) async fn load_query(store: &MetadataStore, id: &str) -> Result<Query> {
    let row = fetch_one(store, crate::queries::BY_ID, "query", id).await?;
    crate::queries::query(&row, Vec::new())
}

/// The live datasource by id, without access checks (for the runner,
/// which executes runs whose access was checked when they were started).
pub(crate) async fn live_datasource(services: &Services, id: &str) -> Result<Arc<dyn Datasource>> {
    Ok(services.datasources.live(id).await?.0)
}
