//! Loupe's application: the metadata store, the services that hold every
//! rule, the runner that executes runs, and one assembly of them that every
//! host starts.
//!
//! - [`meta`]: the metadata store (SQLite or PostgreSQL), its migrations,
//!   lists and row mapping.
//! - [`Services`]: organizations, users, groups, datasources, queries, runs,
//!   schedules, latest results, visualizations, dashboards, canvases, API
//!   keys, sessions, public links and signed embedding, and the audit trail. Each operation takes an [`Actor`] and checks, in this
//!   order: that the object is in the actor's organization (otherwise: not
//!   found), that the actor's role and grants allow it (otherwise: refused),
//!   that the input is valid (otherwise: every field error at once). Changes
//!   that matter are audited in the same transaction as the change.
//! - [`limits`] and [`lists`]: how long or how many each field may be, and
//!   what each list sorts and filters by. Hosts derive their validators
//!   and documents from these, never from copies.
//! - [`runner`]: the runner, the scheduler and retention.
//! - [`ops`]: the metrics every process records, the gauges read when they
//!   are scraped; [`trace_context`]: W3C trace context carried from the
//!   request that queues a run to the runner that executes it.
//! - [`Deployment`]: the one assembly of all of it from a
//!   [`DeploymentConfig`], which `loupe-server` and `loupe runner` both start.
//! - [`backup`]: consistent online backups of a deployment's storage, and
//!   restoring them.
//!
//! The engine (datasources, templates, the result store) is `loupe-core`;
//! only the assembly names the connectors, to build the registry.

pub mod backup;
pub mod config;
pub mod delivery;
pub mod egress;
pub mod error_tracking;
pub mod limits;
pub mod lists;
pub mod meta;
pub mod ops;
pub mod runner;
pub mod trace_context;

mod actor;
mod alerts;
mod api_keys;
mod audit;
mod canvases;
mod crypto;
mod dashboards;
mod datasources;
mod deliveries;
mod deployment;
mod destinations;
mod embedding;
mod groups;
mod latest;
pub mod links;
mod organizations;
mod queries;
mod rls;
mod runs;
mod schedules;
mod services;
mod sessions;
mod shares;
mod subscriptions;
mod users;
mod validate;
mod visualizations;

pub use actor::{Access, Actor, Role, Scope, Via};
pub use alerts::{
    Alert, AlertInput, AlertService, AlertState, Change, Comparison, Condition, Evaluation,
    Evaluator, Literal, MAX_DESTINATIONS, Quantifier, Threshold,
};
pub use api_keys::{ApiKey, ApiKeyService, NewApiKey};
pub use audit::{AuditEvent, AuditService, Outcome};
pub use canvases::{
    Canvas, CanvasEdge, CanvasInput, CanvasNode, CanvasService, MAX_EDGES, MAX_NODES, NodeKind,
};
pub use config::{
    ConfigError, DeliverySettings, DeploymentConfig, EgressSettings, MigrateMode, QuotaSettings,
    RetentionSettings, RunnerSettings, Secret, SharingSettings,
};
pub use crypto::{KeyRing, Passwords};
pub use dashboards::{
    Dashboard, DashboardInput, DashboardParameter, DashboardService, GRID_COLUMNS, MAX_WIDGETS,
    Widget, WidgetInput, WidgetKind,
};
pub use datasources::SettingsKey;
pub use datasources::{
    DatasourceInput, DatasourceRecord, DatasourceService, DatasourceUpdate, SECRET_MASK,
};
pub use deliveries::{
    Attempt, Delivery, DeliveryConfig, DeliveryService, DeliveryStatus, Dispatcher,
    DispatcherHandle, SourceKind,
};
pub use deployment::{Deployment, DeploymentError, FirstStart, Parts, Readiness, Running};
pub use destinations::{Destination, DestinationInput, DestinationService};
pub use embedding::{
    ACTIVE_EMBEDDING_SECRETS, EmbeddingSecret, EmbeddingService, MAX_EMBED_TOKEN_BYTES,
    NewEmbeddingSecret,
};
pub use groups::{Grant, Group, GroupService};
pub use latest::{LatestResult, LatestResultService};
pub use organizations::{EVERYONE, Organization, OrganizationService, Setup, Usage};
pub use queries::{NewQuery, Query, QueryService, QueryUpdate, QueryVersion};
pub use rls::{Attributes, GrantRules};
pub use runs::{Run, RunService, RunStatus, StartKind, Started};
pub use schedules::{
    Schedule, ScheduleInput, ScheduleService, next_fire, parse_cron, parse_timezone,
};
pub use services::{Services, ServicesConfig};
pub use sessions::{
    MIN_SIGNING_SECRET, REFRESH_GRACE, Session, SessionConfig, SessionService, SigningKey,
};
pub use shares::{
    Choices, GridPlace, MAX_SHARE_CHOICES, NewShare, PublicContent, PublicPage, PublicParameter,
    PublicResult, PublicWidget, ResultState, Share, ShareInput, ShareKind, ShareService,
};
pub use subscriptions::{
    ATTACHMENT_FORMATS, Subscription, SubscriptionInput, SubscriptionService, TargetKind,
};
pub use users::{NewUser, OneTimeToken, User, UserService, UserUpdate, UserView};
pub use visualizations::{
    CHART_ROWS, ImageFormat, RenderedImage, Visualization, VisualizationInput,
    VisualizationService, VisualizationType,
};

/// The engine this crate is built on, so embedders use the same version.
pub use loupe_core as core;
