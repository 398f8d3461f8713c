//! The `/api/v1` routes: one `#[OpenApi]` struct per resource, one module
//! per resource. Handlers parse, call a service, and map the result; no
//! rule lives here. Limits, sorts and filters come from the services'
//! definitions through the types of [`bounded`] and [`lists`].

pub(crate) mod alerts;
pub(crate) mod api_keys;
pub(crate) mod audit;
pub(crate) mod bounded;
pub(crate) mod canvases;
pub(crate) mod common;
pub(crate) mod dashboards;
pub(crate) mod datasources;
pub(crate) mod destinations;
pub(crate) mod embedding;
pub(crate) mod groups;
pub(crate) mod latest;
pub(crate) mod links;
pub(crate) mod lists;
pub(crate) mod organization;
pub(crate) mod public;
pub(crate) mod queries;
pub(crate) mod runs;
pub(crate) mod schedules;
pub(crate) mod sessions;
pub(crate) mod setup;
pub(crate) mod users;
pub(crate) mod visualizations;

use std::sync::Arc;

use poem_openapi::{OpenApiService, Tags};

use crate::state::AppState;

/// Groups of operations in the document.
#[derive(Debug, Tags)]
pub(crate) enum ApiTags {
    /// First start: create the organization and its first admin.
    Setup,
    /// Sign in, tokens, passwords.
    Auth,
    /// API keys for programs.
    ApiKeys,
    /// The organization.
    Organization,
    /// Users (admins).
    Users,
    /// Groups, members and datasource grants (admins).
    Groups,
    /// Datasources: connections, schema, tests.
    Datasources,
    /// Saved queries, their versions and runs.
    Queries,
    /// Runs and their results.
    Runs,
    /// Schedules of saved queries.
    Schedules,
    /// Visualizations of query results.
    Visualizations,
    /// Dashboards and widgets.
    Dashboards,
    /// Canvases.
    Canvases,
    /// Results that leave Loupe: destinations, alerts, subscriptions and
    /// the delivery log.
    Deliveries,
    /// Public links and signed embedding: pages that show stored results
    /// without signing in.
    Sharing,
    /// The audit trail (admins).
    Audit,
}

/// The whole API.
pub(crate) type Apis = (
    (setup::SetupApi, sessions::SessionsApi, api_keys::ApiKeysApi),
    (
        organization::OrganizationApi,
        users::UsersApi,
        groups::GroupsApi,
    ),
    (datasources::DatasourcesApi, datasources::ConnectorsApi),
    (queries::QueriesApi, latest::LatestResultsApi),
    runs::RunsApi,
    schedules::SchedulesApi,
    visualizations::VisualizationsApi,
    dashboards::DashboardsApi,
    canvases::CanvasesApi,
    (
        destinations::DestinationsApi,
        alerts::AlertsApi,
        alerts::SubscriptionsApi,
        destinations::DeliveriesApi,
        links::LinksApi,
    ),
    (
        public::SharesApi,
        public::PublicApi,
        embedding::EmbeddingApi,
    ),
    audit::AuditApi,
);

/// The OpenAPI service over `state`, served under `/api/v1`.
pub(crate) fn service(state: &Arc<AppState>) -> OpenApiService<Apis, ()> {
    let s = || state.clone();
    OpenApiService::new(
        (
            (
                setup::SetupApi(s()),
                sessions::SessionsApi(s()),
                api_keys::ApiKeysApi(s()),
            ),
            (
                organization::OrganizationApi(s()),
                users::UsersApi(s()),
                groups::GroupsApi(s()),
            ),
            (
                datasources::DatasourcesApi(s()),
                datasources::ConnectorsApi(s()),
            ),
            (queries::QueriesApi(s()), latest::LatestResultsApi(s())),
            runs::RunsApi(s()),
            schedules::SchedulesApi(s()),
            visualizations::VisualizationsApi(s()),
            dashboards::DashboardsApi(s()),
            canvases::CanvasesApi(s()),
            (
                destinations::DestinationsApi(s()),
                alerts::AlertsApi(s()),
                alerts::SubscriptionsApi(s()),
                destinations::DeliveriesApi(s()),
                links::LinksApi(s()),
            ),
            (
                public::SharesApi(s()),
                public::PublicApi(s()),
                embedding::EmbeddingApi(s()),
            ),
            audit::AuditApi(s()),
        ),
        "Loupe",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Loupe's HTTP API: datasources, saved parameterized queries, runs and their \
         Parquet results, schedules, visualizations, dashboards and canvases. \
         Authenticate with `Authorization: Bearer <access token>` (from `POST /auth/login`) \
         or `Authorization: Key <API key>`; an API key scoped to one query reads only that \
         query's latest results (`/queries/{id}/results/latest.csv` and the other formats). \
         Public links (`/public/{token}`) and embedded pages (`/embed/{token}`) need no \
         sign-in. Errors are `application/problem+json`.",
    )
    .server("/api/v1")
}
