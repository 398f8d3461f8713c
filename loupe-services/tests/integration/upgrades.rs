//! Upgrades. For every earlier schema version, a database as that release
//! left it, holding the data its schema could hold, is brought to the
//! current schema and used through the services: every object reads back
//! as it was, passwords, sealed secrets, API keys, refresh tokens and
//! invitations still work, stored results still page, and a run queued
//! before the upgrade runs after it. Down scripts undo their migration
//! exactly, and a schema that a newer release migrated is refused.
//!
//! The data is made once, through the services, on a current database
//! (the "scratch"), then copied into a database migrated up to the
//! earlier version, as far as that version's tables and columns go; what
//! only an earlier schema had (the account lock of 0001) is added to it
//! by hand. A migration that changes what a column holds must teach
//! `copy_into` how its earlier release wrote it.

use std::collections::BTreeMap;
use std::time::Duration;

use loupe_core::{ErrorKind, PageRequest, ParameterDef, ParameterType, ResultId, codes};
use loupe_services::meta::{ListRequest, MetadataStore, known_migrations};
use loupe_services::runner::{Runner, RunnerConfig};
use loupe_services::{
    CanvasEdge, CanvasInput, CanvasNode, DashboardInput, MigrateMode, NewQuery, NewUser, NodeKind,
    Role, RunStatus, Scope, Services, ServicesConfig, SessionConfig, SigningKey, WidgetKind,
};
use sqlx::AssertSqlSafe;

use super::{Env, Location, PASSWORD, on_both, password, schedule, shows, widget};

on_both!(
    every_earlier_schema_upgrades_with_its_data_intact,
    down_then_up_returns_to_the_same_schema,
    a_schema_from_a_newer_release_is_refused_naming_both_versions,
    migrate_never_refuses_a_schema_with_pending_migrations,
    reverting_more_migrations_than_are_applied_is_refused,
);

/// Every table, each after the tables it refers to.
const TABLES: &[&str] = &[
    "organizations",
    "users",
    "user_tokens",
    "user_groups",
    "group_members",
    "datasources",
    "datasource_grants",
    "queries",
    "query_tags",
    "query_versions",
    "schedules",
    "runs",
    "visualizations",
    "dashboards",
    "dashboard_tags",
    "dashboard_widgets",
    "canvases",
    "canvas_nodes",
    "canvas_edges",
    "api_keys",
    "refresh_tokens",
    "audit_events",
    "login_backoffs",
    "destinations",
    "alerts",
    "subscriptions",
    "subscription_firings",
    "deliveries",
    "shares",
    "share_refreshes",
    "embedding_secrets",
];

/// The migration that replaced the account lock with back-offs.
const BACKOFFS: i64 = 3;
/// The migration that lets the operator disable an organization.
const DISABLED_ORGS: i64 = 4;

fn current_version() -> i64 {
    known_migrations().last().map_or(0, |m| m.version)
}

fn runner_config() -> RunnerConfig {
    RunnerConfig {
        poll: Duration::from_millis(50),
        ..RunnerConfig::default()
    }
}

/// Services with sessions over `store`, with the scratch's keys and
/// result store.
fn services_over(env: &Env, store: &MetadataStore, signing: &SigningKey) -> Services {
    Services::new(
        store.clone(),
        loupe_connectors::registry(),
        ServicesConfig {
            secret_keys: Some(env.keys.clone()),
            sessions: Some(SessionConfig::new(signing.clone())),
            ..ServicesConfig::default()
        },
        Some(env.results.clone()),
    )
    .unwrap()
}

/// What the scratch holds beyond [`Env`]'s people and sample datasource,
/// and the secrets that must still work after an upgrade.
struct Seeded {
    query: loupe_services::Query,
    api_key: String,
    refresh_token: String,
    invitation: String,
    warehouse: Option<loupe_services::DatasourceRecord>,
    queued_run: String,
}

async fn seed(env: &Env, s: &Services) -> Seeded {
    let (admin, editor) = (&env.admin, &env.editor);
    let acme = Some(env.org.slug.as_str());
    let warehouse = super::runner::test_postgres(env).await;
    let country =
        ParameterDef::new("country", ParameterType::Text).with_default(serde_json::json!("FR"));
    let query = s
        .queries
        .create(
            editor,
            NewQuery {
                name: "Customers by country".into(),
                description: "Kept across upgrades".into(),
                datasource_id: env.sample.id.clone(),
                sql: "select id, name from customers where country = {{ country }} order by id"
                    .into(),
                parameters: vec![country],
                tags: vec!["sales".into(), "upgrade".into()],
                ..NewQuery::default()
            },
        )
        .await
        .unwrap();
    let query = env
        .change_query(
            editor,
            &query.id,
            query.revision,
            super::with_sql(
                "select id, name, country from customers where country = {{ country }} order by id",
            ),
        )
        .await;
    let query = env.share(editor, &query.id, query.revision).await;
    let viz = env.table(editor, &query.id, "Customers table").await;
    let dashboard = s
        .dashboards
        .create(
            editor,
            DashboardInput {
                name: "Sales".into(),
                tags: vec!["weekly".into()],
                widgets: vec![
                    widget(shows(&viz.id), (0, 0, 12, 6), &[]),
                    widget(
                        WidgetKind::Text {
                            text: "Read me".into(),
                        },
                        (12, 0, 6, 2),
                        &[],
                    ),
                ],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let node = |id: &str, kind, x| CanvasNode {
        id: id.into(),
        kind,
        x,
        y: 0.0,
        w: 10.0,
        h: 5.0,
    };
    s.canvases
        .create(
            editor,
            CanvasInput {
                name: "Map".into(),
                nodes: vec![
                    node(
                        "q",
                        NodeKind::Query {
                            query_id: Some(query.id.clone()),
                        },
                        0.0,
                    ),
                    node(
                        "d",
                        NodeKind::Dashboard {
                            dashboard_id: Some(dashboard.id.clone()),
                        },
                        20.0,
                    ),
                ],
                edges: vec![CanvasEdge {
                    id: "e".into(),
                    from: "q".into(),
                    to: "d".into(),
                    label: Some("feeds".into()),
                }],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    s.schedules
        .create(
            editor,
            schedule(&query.id, "0 6 * * 1", "Europe/Paris", Default::default()),
        )
        .await
        .unwrap();
    // Runs: two stored results, a failure, and one still queued.
    for values in [serde_json::json!("FR"), serde_json::json!("DE")] {
        s.runs
            .enqueue_query(editor, &query.id, &[("country".to_owned(), values)].into())
            .await
            .unwrap();
    }
    s.runs
        .enqueue_sql(editor, &env.sample.id, "select * from nowhere")
        .await
        .unwrap();
    let runner = Runner::new(s, env.results.clone(), runner_config());
    while runner.run_once().await.unwrap() > 0 {}
    let queued_run = s
        .runs
        .enqueue_sql(editor, &env.sample.id, "select count(*) as n from orders")
        .await
        .unwrap()
        .id;
    let api_key = s
        .api_keys
        .create(editor, "reporting", &[Scope::Read, Scope::Run], None)
        .await
        .unwrap()
        .secret;
    let refresh_token = s
        .sessions
        .login(acme, "erin@acme.test", &password(PASSWORD), None)
        .await
        .unwrap()
        .refresh_token;
    let (_, invitation) = s
        .users
        .create(
            admin,
            NewUser {
                email: "ivy@acme.test".into(),
                name: "Ivy".into(),
                role: Role::Viewer,
                password: None,
            },
        )
        .await
        .unwrap();
    // Back-offs: vic failed too often from one address.
    for _ in 0..5 {
        let wrong = s
            .sessions
            .login(
                acme,
                "vic@acme.test",
                &password("not the password"),
                Some("10.9.9.9"),
            )
            .await;
        assert_eq!(
            wrong.unwrap_err().code(),
            codes::AUTH_INVALID_CREDENTIALS.as_str()
        );
    }
    // Its first wait is 5 s; the upgrades take longer than that.
    let blocked = sqlx::query("UPDATE login_backoffs SET blocked_until = $1")
        .bind(loupe_services::meta::now_micros() + 3_600_000_000)
        .execute(env.store.pool())
        .await
        .unwrap();
    assert_eq!(blocked.rows_affected(), 1);
    s.organizations.set_disabled("globex", true).await.unwrap();
    Seeded {
        query,
        api_key,
        refresh_token,
        invitation: invitation.unwrap().token,
        warehouse,
        queued_run,
    }
}

/// A new, empty metadata database beside the scratch's.
async fn fresh_location(env: &Env, name: &str) -> Location {
    match &env.location {
        Location::Sqlite(_) => {
            let path = env._dir.path().join(format!("{name}.db"));
            Location::Sqlite(path.to_str().unwrap().to_owned())
        }
        Location::Postgres(_) => {
            let base = super::postgres_url().unwrap();
            let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
            let admin = MetadataStore::connect(&base).await.unwrap();
            sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(admin.pool())
                .await
                .unwrap();
            admin.close().await;
            let separator = if base.contains('?') { '&' } else { '?' };
            Location::Postgres(format!("{base}{separator}options[search_path]={schema}"))
        }
    }
}

/// The PostgreSQL schema of a test location.
fn pg_schema(location: &Location) -> &str {
    location
        .url()
        .rsplit("options[search_path]=")
        .next()
        .unwrap()
}

/// The tables of `store` (without sqlx's own).
async fn tables(store: &MetadataStore) -> Vec<String> {
    let sql = match store.backend() {
        loupe_services::meta::Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name"
        }
        loupe_services::meta::Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations' ORDER BY 1"
        }
    };
    let rows: Vec<(String,)> = sqlx::query_as(sql).fetch_all(store.pool()).await.unwrap();
    rows.into_iter().map(|(t,)| t).collect()
}

/// The columns of `table` in the schema `schema` (`main` or an attached
/// name on SQLite).
async fn columns(
    conn: &mut sqlx::AnyConnection,
    sqlite: bool,
    schema: &str,
    table: &str,
) -> Vec<String> {
    let sql = if sqlite {
        format!("SELECT name FROM pragma_table_info('{table}', '{schema}') ORDER BY cid")
    } else {
        format!(
            "SELECT CAST(column_name AS TEXT) FROM information_schema.columns \
             WHERE table_schema = '{schema}' AND table_name = '{table}' ORDER BY ordinal_position"
        )
    };
    let rows: Vec<(String,)> = sqlx::query_as(AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    rows.into_iter().map(|(c,)| c).collect()
}

/// Copies the scratch's rows into `target`, as far as its tables and
/// columns go.
async fn copy_into(env: &Env, target: &MetadataStore, target_location: &Location) {
    let present = tables(target).await;
    for table in &present {
        assert!(
            TABLES.contains(&table.as_str()),
            "table {table} is not in TABLES: add it, after the tables it refers to"
        );
    }
    let sqlite = target.backend() == loupe_services::meta::Backend::Sqlite;
    let mut conn = target.pool().acquire().await.unwrap();
    let (from, to) = if sqlite {
        sqlx::query("ATTACH DATABASE $1 AS scratch")
            .bind(env.location.url().to_owned())
            .execute(&mut *conn)
            .await
            .unwrap();
        ("scratch".to_owned(), "main".to_owned())
    } else {
        (
            pg_schema(&env.location).to_owned(),
            pg_schema(target_location).to_owned(),
        )
    };
    for table in TABLES.iter().filter(|t| present.iter().any(|p| p == *t)) {
        let theirs = columns(&mut conn, sqlite, &from, table).await;
        let shared: Vec<String> = columns(&mut conn, sqlite, &to, table)
            .await
            .into_iter()
            .filter(|c| theirs.contains(c))
            .collect();
        let list = shared.join(", ");
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {to}.{table} ({list}) SELECT {list} FROM {from}.{table}"
        )))
        .execute(&mut *conn)
        .await
        .unwrap();
    }
    if sqlite {
        sqlx::query("DETACH DATABASE scratch")
            .execute(&mut *conn)
            .await
            .unwrap();
    }
}

/// Rows per table.
async fn counts(store: &MetadataStore) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for table in tables(store).await {
        let (n,): (i64,) = sqlx::query_as(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(store.pool())
            .await
            .unwrap();
        counts.insert(table, n);
    }
    counts
}

async fn every_earlier_schema_upgrades_with_its_data_intact(env: Env) {
    let signing = SigningKey::new(&SigningKey::generate_secret().unwrap()).unwrap();
    let scratch = services_over(&env, &env.store, &signing);
    let seeded = seed(&env, &scratch).await;
    let scratch_counts = counts(&env.store).await;
    let everything = ListRequest::default().page(200, 0);
    let (admin, acme) = (&env.admin, Some(env.org.slug.as_str()));
    let current = current_version();
    assert!(current >= 1);
    for version in 0..current {
        let location = fresh_location(&env, &format!("v{version}")).await;
        let old = MetadataStore::connect(location.url()).await.unwrap();
        old.migrate_to(version).await.unwrap();
        assert_eq!(old.schema_status().await.unwrap().version(), version);
        copy_into(&env, &old, &location).await;
        if (1..BACKOFFS).contains(&version) {
            // The account lock of 0001: gone with the upgrade, and eve
            // signs in again.
            let until = loupe_services::meta::now_micros() + 3_600_000_000;
            sqlx::query(
                "UPDATE users SET failed_logins = 9, locked_until = $1 WHERE email = 'eve@acme.test'",
            )
            .bind(until)
            .execute(old.pool())
            .await
            .unwrap();
        }
        let copied = counts(&old).await;
        old.close().await;

        let store = MetadataStore::open(location.url()).await.unwrap();
        let status = store.schema_status().await.unwrap();
        assert!(status.is_current(), "from version {version}: {status:?}");
        let upgraded = counts(&store).await;
        for (table, n) in &copied {
            assert_eq!(
                upgraded[table], *n,
                "from version {version}: the rows of {table} survive the upgrade"
            );
            assert_eq!(
                *n, scratch_counts[table],
                "from version {version}: {table} was copied whole"
            );
        }
        let s = services_over(&env, &store, &signing);
        if version == 0 {
            // Nothing to keep: the new schema takes a first organization.
            assert!(upgraded.values().all(|n| *n == 0), "{upgraded:?}");
            s.organizations
                .create_with_admin(loupe_services::Setup {
                    org_name: "Fresh".into(),
                    admin_email: "a@fresh.test".into(),
                    admin_name: "A".into(),
                    admin_password: password(PASSWORD),
                })
                .await
                .unwrap();
            store.close().await;
            continue;
        }
        let from = |what: &str| format!("from version {version}: {what}");

        // Every object reads back as the scratch's services show it.
        let q = &scratch.queries;
        assert_eq!(
            s.queries.list(admin, &everything).await.unwrap().items,
            q.list(admin, &everything).await.unwrap().items,
            "{}",
            from("queries")
        );
        assert_eq!(
            s.queries.versions(admin, &seeded.query.id).await.unwrap(),
            q.versions(admin, &seeded.query.id).await.unwrap(),
        );
        let dashboards = scratch.dashboards.list(admin, &everything).await.unwrap();
        assert_eq!(
            s.dashboards.list(admin, &everything).await.unwrap().items,
            dashboards.items,
            "{}",
            from("dashboards")
        );
        for d in &dashboards.items {
            assert_eq!(s.dashboards.get(admin, &d.id).await.unwrap(), *d);
        }
        assert_eq!(
            s.visualizations
                .list(admin, &everything)
                .await
                .unwrap()
                .items,
            scratch
                .visualizations
                .list(admin, &everything)
                .await
                .unwrap()
                .items,
        );
        assert_eq!(
            s.canvases.list(admin, &everything).await.unwrap().items,
            scratch
                .canvases
                .list(admin, &everything)
                .await
                .unwrap()
                .items,
        );
        assert_eq!(
            s.schedules.list(admin, &everything).await.unwrap().items,
            scratch
                .schedules
                .list(admin, &everything)
                .await
                .unwrap()
                .items,
        );
        assert_eq!(
            s.datasources.list(admin, &everything).await.unwrap().items,
            scratch
                .datasources
                .list(admin, &everything)
                .await
                .unwrap()
                .items,
        );
        assert_eq!(
            s.groups.list(admin, &everything).await.unwrap().items,
            scratch.groups.list(admin, &everything).await.unwrap().items,
        );
        let runs = scratch.runs.list(admin, &everything).await.unwrap().items;
        assert_eq!(
            s.runs.list(admin, &everything).await.unwrap().items,
            runs,
            "{}",
            from("runs")
        );
        // Stored results still page.
        let mut stored = 0;
        for run in runs.iter().filter(|r| r.status == RunStatus::Succeeded) {
            let (_, id) = s.runs.result(admin, &run.id).await.unwrap();
            let page = env
                .results
                .read_page(&id, &PageRequest::new(0, 100))
                .await
                .unwrap();
            assert_eq!(Some(i64::try_from(page.total_rows).unwrap()), run.rows);
            stored += 1;
        }
        assert_eq!(stored, 2, "{}", from("stored results"));

        // Secrets, passwords and tokens still work.
        if let Some(warehouse) = &seeded.warehouse {
            s.datasources.test(admin, &warehouse.id).await.unwrap();
        }
        let key = s
            .api_keys
            .authenticate(&seeded.api_key, None)
            .await
            .unwrap();
        assert_eq!(key.user_id, env.editor.user_id);
        s.sessions
            .refresh(&seeded.refresh_token, None)
            .await
            .unwrap();
        s.users
            .redeem(&seeded.invitation, &password("a brand new passphrase"))
            .await
            .unwrap();
        s.sessions
            .login(acme, "admin@acme.test", &password(PASSWORD), None)
            .await
            .unwrap();
        // What the version could hold decides what still holds.
        let eve = s
            .sessions
            .login(acme, "eve@acme.test", &password(PASSWORD), None)
            .await;
        assert!(eve.is_ok(), "{}: {eve:?}", from("the account lock is gone"));
        let vic = s
            .sessions
            .login(acme, "vic@acme.test", &password(PASSWORD), Some("10.9.9.9"))
            .await;
        assert_eq!(
            vic.is_err(),
            version >= BACKOFFS,
            "{}: {vic:?}",
            from("back-offs")
        );
        let gus = s
            .sessions
            .login(
                Some("globex"),
                "admin@globex.test",
                &password(PASSWORD),
                None,
            )
            .await;
        assert_eq!(
            gus.is_err(),
            version >= DISABLED_ORGS,
            "{}: {gus:?}",
            from("disabled organizations")
        );

        // New work: the run queued before the upgrade runs after it, and
        // a new one too.
        let again = s
            .runs
            .enqueue_query(&env.viewer, &seeded.query.id, &Default::default())
            .await
            .unwrap();
        let runner = Runner::new(&s, env.results.clone(), runner_config());
        while runner.run_once().await.unwrap() > 0 {}
        for id in [&seeded.queued_run, &again.id] {
            let run = s.runs.get(admin, id).await.unwrap();
            assert_eq!(
                run.status,
                RunStatus::Succeeded,
                "{}: {:?}",
                from("runs after the upgrade"),
                run.error_message
            );
            ResultId::parse(run.result_location.as_deref().unwrap()).unwrap();
        }
        store.close().await;
    }
}

/// The schema as the database describes it: tables with their columns,
/// constraints and indexes, without sqlx's own table.
async fn schema(store: &MetadataStore) -> Vec<String> {
    let queries: &[&str] = match store.backend() {
        loupe_services::meta::Backend::Sqlite => &[
            "SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_master \
             WHERE name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY type, name",
        ],
        loupe_services::meta::Backend::Postgres => &[
            "SELECT CAST(table_name || '.' || column_name || ' ' || data_type || ' null=' || is_nullable \
             || ' default=' || coalesce(column_default, '-') AS TEXT) FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations' ORDER BY 1",
            "SELECT CAST(conrelid::regclass AS TEXT) || ' ' || conname || ': ' || pg_get_constraintdef(oid) \
             FROM pg_constraint WHERE connamespace = current_schema()::regnamespace \
             AND conrelid::regclass::text <> '_sqlx_migrations' ORDER BY 1",
            "SELECT CAST(indexname || ': ' || replace(indexdef, schemaname || '.', '') AS TEXT) FROM pg_indexes \
             WHERE schemaname = current_schema() AND tablename <> '_sqlx_migrations' ORDER BY 1",
        ],
    };
    let mut lines = Vec::new();
    for sql in queries {
        let rows: Vec<(String,)> = sqlx::query_as(*sql).fetch_all(store.pool()).await.unwrap();
        // SQLite keeps a table's text as written and edited by ALTER
        // TABLE; only the spacing may differ.
        lines.extend(
            rows.into_iter()
                .map(|(l,)| l.split_whitespace().collect::<Vec<_>>().join(" ")),
        );
    }
    lines
}

/// The schema with each table's columns and constraints sorted: a down
/// script can only append the columns it adds back (SQLite's `ALTER
/// TABLE`), so an earlier version reached going down differs from the
/// same version reached going up in column order alone.
fn unordered(schema: &[String]) -> Vec<String> {
    schema
        .iter()
        .map(|line| {
            let (Some(open), Some(close)) = (line.find('('), line.rfind(')')) else {
                return line.clone();
            };
            if !line.starts_with("table ") {
                return line.clone();
            }
            let mut parts = Vec::new();
            let (mut depth, mut start) = (0, open + 1);
            for (i, c) in line[..close].char_indices().skip(open + 1) {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    ',' if depth == 0 => {
                        parts.push(line[start..i].trim().to_owned());
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            parts.push(line[start..close].trim().to_owned());
            parts.sort();
            format!("{}({})", &line[..open], parts.join(", "))
        })
        .collect()
}

async fn down_then_up_returns_to_the_same_schema(env: Env) {
    let store = &env.store;
    let current = current_version();
    let fresh = schema(store).await;
    // Each version's schema as the up migrations make it.
    let mut by_version = BTreeMap::new();
    let location = fresh_location(&env, "steps").await;
    let steps = MetadataStore::connect(location.url()).await.unwrap();
    for version in 0..=current {
        steps.migrate_to(version).await.unwrap();
        by_version.insert(version, schema(&steps).await);
    }
    steps.close().await;
    assert_eq!(by_version[&current], fresh);

    for count in 1..=usize::try_from(current).unwrap() {
        let reverted = store.migrate_down(count).await.unwrap();
        assert_eq!(reverted.len(), count);
        let at = current - i64::try_from(count).unwrap();
        assert_eq!(store.schema_status().await.unwrap().version(), at);
        assert_eq!(
            unordered(&schema(store).await),
            unordered(&by_version[&at]),
            "reverting {count} migrations gives version {at}'s schema"
        );
        let applied = store.migrate().await.unwrap();
        assert_eq!(applied.len(), count);
        assert_eq!(
            schema(store).await,
            fresh,
            "down {count} then up gives the same schema"
        );
    }
    // The data of what no migration touched stays through the round trip.
    let (users,): (i64,) = sqlx::query_as("SELECT count(*) FROM users")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(users, 0, "down to 0 and up again starts empty");
}

/// Marks the database as migrated by a release that knows version 9001.
async fn from_the_future(store: &MetadataStore) {
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9001, 'from_the_future', true, $1, 1)",
    )
    .bind(vec![0u8; 48])
    .execute(store.pool())
    .await
    .unwrap();
}

async fn a_schema_from_a_newer_release_is_refused_naming_both_versions(env: Env) {
    from_the_future(&env.store).await;
    let current = current_version();
    for mode in [MigrateMode::Auto, MigrateMode::Never] {
        let error = MetadataStore::open_with(env.location.url(), mode)
            .await
            .unwrap_err();
        assert_eq!(error.code(), codes::METADATA_SCHEMA_NEWER.as_str());
        let message = error.to_string();
        assert!(
            message.contains("at version 9001 (9001 from_the_future)")
                && message.contains(&format!("knows (version {current}")),
            "{message}"
        );
    }
    let error = env.store.migrate_down(1).await.unwrap_err();
    assert_eq!(error.code(), codes::METADATA_SCHEMA_NEWER.as_str());
    // Nothing was touched: the organizations are all there.
    let orgs = env.services.organizations.list_all().await.unwrap();
    assert_eq!(orgs.len(), 2);
}

async fn migrate_never_refuses_a_schema_with_pending_migrations(env: Env) {
    let location = fresh_location(&env, "behind").await;
    let old = MetadataStore::connect(location.url()).await.unwrap();
    old.migrate_to(1).await.unwrap();
    old.close().await;
    let error = MetadataStore::open_with(location.url(), MigrateMode::Never)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Conflict);
    assert_eq!(error.code(), codes::METADATA_SCHEMA_OUTDATED.as_str());
    let message = error.to_string();
    assert!(
        message.contains("at version 1") && message.contains("pending: 0002 runner"),
        "{message}"
    );
    assert!(message.contains("run `loupe-server migrate`"), "{message}");
    // Refused, and left as it was.
    let store = MetadataStore::connect(location.url()).await.unwrap();
    assert_eq!(store.schema_status().await.unwrap().version(), 1);
    // `auto` brings it up; then `never` is content.
    store.migrate().await.unwrap();
    store.close().await;
    MetadataStore::open_with(location.url(), MigrateMode::Never)
        .await
        .unwrap()
        .close()
        .await;
}

async fn reverting_more_migrations_than_are_applied_is_refused(env: Env) {
    let current = usize::try_from(current_version()).unwrap();
    let error = env.store.migrate_down(current + 1).await.unwrap_err();
    assert_eq!(error.code(), codes::METADATA_REVERT_TOO_FAR.as_str());
    assert!(
        error.to_string().contains(&format!(
            "cannot revert {} migrations: {current} applied",
            current + 1
        )),
        "{error}"
    );
    assert_eq!(
        env.store.schema_status().await.unwrap().version(),
        current_version()
    );
}
