//! The metadata store and the domain services, run twice: on SQLite (the
//! embedded default) and on PostgreSQL. Every test is one `async fn`
//! taking an [`Env`]; `on_both!` makes a `sqlite` and a `postgres` test
//! of it. Each PostgreSQL test works in a schema of its own.
//!
//! PostgreSQL comes from `LOUPE_TEST_POSTGRES_URL` (`scripts/test` starts
//! one). Without it the PostgreSQL half is skipped, except under
//! `CI=true`, where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod admission;
mod alerts;
mod auth_hardening;
mod batching;
mod delivery;
mod domain;
mod metadata_tls;
mod properties;
mod quotas;
mod runner;
mod sharing;
mod store;
mod upgrades;

use std::sync::Arc;

use loupe_core::{Error, ErrorKind, ParameterDef, ParameterValues};
use loupe_services::meta::{ListRequest, MetadataStore};
use loupe_services::{
    Access, Actor, DatasourceInput, DatasourceRecord, Group, KeyRing, NewQuery, NewUser,
    Organization, Query, QueryUpdate, Role, Run, ScheduleInput, Services, ServicesConfig, Setup,
    UserUpdate, VisualizationInput, VisualizationType, WidgetInput, WidgetKind,
};
use secrecy::SecretString;
use tempfile::TempDir;

/// Generates a `sqlite` and a `postgres` test for each listed test
/// function.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::super::Env::sqlite().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(env) = super::super::Env::postgres().await {
                    super::$name(env).await;
                }
            }
        }
    )*};
}
pub(crate) use on_both;

pub(crate) const PASSWORD: &str = "correct horse battery staple";

pub(crate) fn password(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

/// The PostgreSQL server for tests, if any.
pub(crate) fn postgres_url() -> Option<String> {
    env_url("LOUPE_TEST_POSTGRES_URL")
}

/// A test server's URL from `variable`, which `scripts/test` sets: in CI
/// a missing one fails the test, elsewhere it skips it.
pub(crate) fn env_url(variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "{variable} is not set: CI must run the tests through scripts/test, which starts the test databases"
            )
        }
        Err(_) => {
            eprintln!("skipped: {variable} is not set (scripts/test starts the test databases)");
            None
        }
    }
}

/// Where a test's metadata lives.
pub(crate) enum Location {
    Sqlite(String),
    Postgres(String),
}

impl Location {
    pub(crate) fn url(&self) -> &str {
        match self {
            Self::Sqlite(path) | Self::Postgres(path) => path,
        }
    }
}

/// One organization with an admin, two editors and a viewer, the bundled
/// sample data as a `files` datasource on which the `everyone` group may
/// run, and a second organization with its own admin.
pub(crate) struct Env {
    pub(crate) location: Location,
    /// The operator key, as configuration holds it, and the ring made of it.
    pub(crate) key: SecretString,
    pub(crate) keys: KeyRing,
    pub(crate) services: Services,
    pub(crate) store: MetadataStore,
    pub(crate) results: Arc<dyn loupe_core::ResultStore>,
    pub(crate) org: Organization,
    pub(crate) admin: Actor,
    pub(crate) editor: Actor,
    pub(crate) editor2: Actor,
    pub(crate) viewer: Actor,
    pub(crate) outsider: Actor,
    pub(crate) sample: DatasourceRecord,
    pub(crate) everyone: String,
    pub(crate) _dir: TempDir,
}

impl Env {
    pub(crate) async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta").join("loupe.db");
        Self::build(Location::Sqlite(path.to_str().unwrap().to_owned()), dir).await
    }

    pub(crate) async fn postgres() -> Option<Self> {
        let base = postgres_url()?;
        let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
        let admin = MetadataStore::connect(&base).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(admin.pool())
            .await
            .unwrap();
        admin.close().await;
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options[search_path]={schema}");
        Some(Self::build(Location::Postgres(url), tempfile::tempdir().unwrap()).await)
    }

    async fn build(location: Location, dir: TempDir) -> Self {
        let key = KeyRing::generate_key().unwrap();
        let keys = KeyRing::new(&key, &[]).unwrap();
        let store = MetadataStore::open(location.url()).await.unwrap();
        let results: Arc<dyn loupe_core::ResultStore> = Arc::new(
            loupe_core::ParquetResultStore::open(dir.path().join("results").to_str().unwrap())
                .unwrap(),
        );
        let services = services_with(&store, Some(keys.clone()), Some(results.clone()));
        let (org, admin_user) = services
            .organizations
            .create_with_admin(Setup {
                org_name: "Acme Analytics".into(),
                admin_email: "admin@acme.test".into(),
                admin_name: "Ada Admin".into(),
                admin_password: password(PASSWORD),
            })
            .await
            .unwrap();
        let admin = services
            .users
            .actor(&admin_user.id, Some("10.0.0.1"))
            .await
            .unwrap();
        let mut people = Vec::new();
        for (email, role) in [
            ("erin@acme.test", Role::Editor),
            ("eve@acme.test", Role::Editor),
            ("vic@acme.test", Role::Viewer),
        ] {
            let (user, _) = services
                .users
                .create(
                    &admin,
                    NewUser {
                        email: email.into(),
                        name: email.split('@').next().unwrap().into(),
                        role,
                        password: Some(password(PASSWORD)),
                    },
                )
                .await
                .unwrap();
            people.push(services.users.actor(&user.id, None).await.unwrap());
        }
        let viewer = people.pop().unwrap();
        let editor2 = people.pop().unwrap();
        let editor = people.pop().unwrap();

        let (_, outsider_user) = services
            .organizations
            .create_with_admin(Setup {
                org_name: "Globex".into(),
                admin_email: "admin@globex.test".into(),
                admin_name: "Gus".into(),
                admin_password: password(PASSWORD),
            })
            .await
            .unwrap();
        let outsider = services.users.actor(&outsider_user.id, None).await.unwrap();

        let sample = services
            .datasources
            .create(&admin, sample_input("sample"))
            .await
            .unwrap();
        let everyone = services
            .groups
            .list(&admin, &Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|g| g.name == loupe_services::EVERYONE)
            .unwrap()
            .id;
        services
            .groups
            .grant(&admin, &everyone, &sample.id, loupe_services::Access::Run)
            .await
            .unwrap();
        Self {
            location,
            key,
            keys,
            services,
            store,
            results,
            org,
            admin,
            editor,
            editor2,
            viewer,
            outsider,
            sample,
            everyone,
            _dir: dir,
        }
    }

    /// A saved query on the sample data, owned by `actor`.
    pub(crate) async fn query(&self, actor: &Actor, name: &str) -> Query {
        self.services
            .queries
            .create(
                actor,
                NewQuery {
                    name: name.into(),
                    datasource_id: self.sample.id.clone(),
                    sql: "select * from customers where country = {{ country }}".into(),
                    parameters: vec![
                        loupe_core::ParameterDef::new("country", loupe_core::ParameterType::Text)
                            .with_default(serde_json::json!("FR")),
                    ],
                    tags: vec!["sales".into()],
                    ..NewQuery::default()
                },
            )
            .await
            .unwrap()
    }

    /// A saved query of the editor's on the sample data: `sql` with
    /// `parameters`.
    pub(crate) async fn editor_query(
        &self,
        name: &str,
        sql: &str,
        parameters: Vec<ParameterDef>,
    ) -> Query {
        let new = NewQuery {
            name: name.into(),
            datasource_id: self.sample.id.clone(),
            sql: sql.into(),
            parameters,
            ..NewQuery::default()
        };
        self.services
            .queries
            .create(&self.editor, new)
            .await
            .unwrap()
    }

    /// Changes query `id` at `revision` as `actor`; returns it changed.
    pub(crate) async fn change_query(
        &self,
        actor: &Actor,
        id: &str,
        revision: i64,
        change: QueryUpdate,
    ) -> Query {
        let queries = &self.services.queries;
        queries.update(actor, id, revision, change).await.unwrap()
    }

    /// Shares query `id` at `revision` as `actor`; returns it shared.
    pub(crate) async fn share(&self, actor: &Actor, id: &str, revision: i64) -> Query {
        let shared = QueryUpdate {
            shared: Some(true),
            ..Default::default()
        };
        self.change_query(actor, id, revision, shared).await
    }

    /// Queues a run of query `id` with `values` as `actor`.
    pub(crate) async fn enqueue(&self, actor: &Actor, id: &str, values: &ParameterValues) -> Run {
        self.services
            .runs
            .enqueue_query(actor, id, values)
            .await
            .unwrap()
    }

    /// A group of the admin's with `member` in it, granted `access` to
    /// datasource `datasource_id`.
    pub(crate) async fn group_granting(
        &self,
        name: &str,
        member: &str,
        datasource_id: &str,
        access: Access,
    ) -> Group {
        let groups = &self.services.groups;
        let group = groups.create(&self.admin, name).await.unwrap();
        groups
            .add_member(&self.admin, &group.id, member)
            .await
            .unwrap();
        groups
            .grant(&self.admin, &group.id, datasource_id, access)
            .await
            .unwrap();
        group
    }

    /// A visualization of `query_id`, made by `actor`.
    pub(crate) async fn table(
        &self,
        actor: &Actor,
        query_id: &str,
        name: &str,
    ) -> loupe_services::Visualization {
        self.services
            .visualizations
            .create(actor, table(query_id, name))
            .await
            .unwrap()
    }

    /// Disables user `id` (as the admin, at its current revision).
    pub(crate) async fn disable(&self, id: &str) {
        let users = &self.services.users;
        let user = users.get(&self.admin, id).await.unwrap();
        let disable = UserUpdate {
            disabled: Some(true),
            ..Default::default()
        };
        users
            .update(&self.admin, &user.id, user.revision, disable)
            .await
            .unwrap();
    }

    /// Makes every schedule due at `at` (µs since the epoch).
    pub(crate) async fn schedules_due_at(&self, at: i64) {
        sqlx::query("UPDATE schedules SET next_run_at = $1")
            .bind(at)
            .execute(self.store.pool())
            .await
            .unwrap();
    }

    /// The runs of schedule `id`, as `actor` lists them.
    pub(crate) async fn runs_of_schedule(&self, actor: &Actor, id: &str) -> Vec<Run> {
        self.services
            .runs
            .list(actor, &ListRequest::default().filter("schedule", id))
            .await
            .unwrap()
            .items
    }

    /// A `postgres` datasource named `warehouse` on the server at `url`,
    /// made by the admin.
    pub(crate) async fn postgres_datasource(&self, url: &str) -> DatasourceRecord {
        let options = loupe_connectors::registry()
            .factory("postgres")
            .unwrap()
            .options_from_url(url)
            .unwrap();
        let input = DatasourceInput {
            name: "warehouse".into(),
            kind: "postgres".into(),
            options,
        };
        self.services
            .datasources
            .create(&self.admin, input)
            .await
            .unwrap()
    }
}

/// A change of a query's name only.
pub(crate) fn renamed(name: &str) -> QueryUpdate {
    QueryUpdate {
        name: Some(name.into()),
        ..Default::default()
    }
}

/// A change of a query's SQL only.
pub(crate) fn with_sql(sql: &str) -> QueryUpdate {
    QueryUpdate {
        sql: Some(sql.into()),
        ..Default::default()
    }
}

/// A list request with one filter.
pub(crate) fn filtered(name: &str, value: impl Into<String>) -> ListRequest {
    ListRequest::default().filter(name, value)
}

/// Values for a query's integer parameter `n`.
pub(crate) fn n(value: i64) -> ParameterValues {
    [("n".to_owned(), serde_json::json!(value))].into()
}

/// A table of `query_id`'s rows, named `name`.
pub(crate) fn table(query_id: &str, name: &str) -> VisualizationInput {
    VisualizationInput {
        query_id: query_id.into(),
        kind: VisualizationType::Table,
        name: name.into(),
        options: serde_json::json!({}),
    }
}

/// A widget showing visualization `id`.
pub(crate) fn shows(id: &str) -> WidgetKind {
    WidgetKind::Visualization {
        visualization_id: id.to_owned(),
    }
}

/// A widget of `kind` at `(x, y, w, h)`, its query's parameters fed from
/// the dashboard's as `mappings` (query parameter, dashboard parameter).
pub(crate) fn widget(
    kind: WidgetKind,
    (x, y, w, h): (u32, u32, u32, u32),
    mappings: &[(&str, &str)],
) -> WidgetInput {
    WidgetInput {
        kind,
        x,
        y,
        w,
        h,
        parameter_mappings: mappings
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect(),
    }
}

/// An enabled schedule of `query_id`.
pub(crate) fn schedule(
    query_id: &str,
    cron: &str,
    timezone: &str,
    parameters: ParameterValues,
) -> ScheduleInput {
    ScheduleInput {
        query_id: query_id.into(),
        cron: cron.into(),
        timezone: timezone.into(),
        parameters,
        enabled: true,
    }
}

/// Services over `store` with the connectors of this build.
pub(crate) fn services(store: &MetadataStore, keys: Option<KeyRing>) -> Services {
    services_with(store, keys, None)
}

/// Services over `store`, deleting run results from `results`.
pub(crate) fn services_with(
    store: &MetadataStore,
    keys: Option<KeyRing>,
    results: Option<Arc<dyn loupe_core::ResultStore>>,
) -> Services {
    Services::new(
        store.clone(),
        loupe_connectors::registry(),
        ServicesConfig {
            secret_keys: keys,
            ..ServicesConfig::default()
        },
        results,
    )
    .unwrap()
}

/// A `files` datasource over the bundled sample data.
pub(crate) fn sample_input(name: &str) -> DatasourceInput {
    let mut options = serde_json::Map::new();
    options.insert(
        "root".into(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/../sample-data").into(),
    );
    DatasourceInput {
        name: name.into(),
        kind: "files".into(),
        options,
    }
}

/// The kind of `result`'s error, failing the test on success.
#[track_caller]
pub(crate) fn kind<T: std::fmt::Debug>(result: Result<T, Error>) -> ErrorKind {
    result.expect_err("expected an error").kind()
}

/// The kind and code of `result`'s error, failing the test on success.
#[track_caller]
pub(crate) fn refusal<T: std::fmt::Debug>(result: Result<T, Error>) -> (ErrorKind, &'static str) {
    let error = result.expect_err("expected an error");
    (error.kind(), error.code())
}

/// The fields of a validation error, failing the test on anything else.
#[track_caller]
pub(crate) fn fields<T: std::fmt::Debug>(result: Result<T, Error>) -> Vec<String> {
    let error = result.expect_err("expected a validation error");
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    let fields: Vec<String> = error
        .field_errors()
        .iter()
        .map(|f| f.field.clone())
        .collect();
    assert!(!fields.is_empty(), "no field errors in {error:?}");
    fields
}
