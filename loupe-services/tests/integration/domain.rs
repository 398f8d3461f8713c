//! The rules of each kind of object: validation naming the field, secrets
//! at rest, query versions, passwords and logins, dashboards, canvases,
//! schedules.

use std::collections::BTreeMap;

use loupe_core::{Error, ErrorKind, ParameterDef, ParameterType, ParameterValues};
use loupe_services::meta::{ListPage, ListRequest};
use loupe_services::{
    AuditEvent, CanvasEdge, CanvasInput, CanvasNode, DashboardInput, DatasourceInput,
    DatasourceUpdate, KeyRing, NewQuery, NewUser, NodeKind, QueryUpdate, Role, SECRET_MASK,
    ScheduleInput, User, UserUpdate, VisualizationInput, VisualizationType, WidgetKind,
};
use serde_json::json;

use super::{Env, PASSWORD, fields, filtered, kind, on_both, password, shows, widget};

on_both!(
    validation_names_every_field,
    secrets_are_sealed_and_never_shown,
    query_versions_and_revert,
    logins_backoff_and_one_time_tokens,
    dashboards_keep_a_sound_layout,
    canvases_join_existing_nodes,
    schedules_check_cron_and_time_zone,
);

async fn validation_names_every_field(env: Env) {
    let s = &env.services;
    let e = &env.editor;
    let bad = NewQuery {
        name: "x".repeat(201),
        datasource_id: env.sample.id.clone(),
        sql: "select {{ a }}, {{ missing }} from t where b = {{ b".into(),
        parameters: vec![
            ParameterDef::new("a", ParameterType::Integer).with_default(json!("ten")),
            ParameterDef::new("a", ParameterType::Text),
            ParameterDef::new("kind", ParameterType::Enum { options: vec![] }),
        ],
        tags: vec!["no spaces please".into()],
        ..NewQuery::default()
    };
    let got = fields(s.queries.create(e, bad).await);
    for field in [
        "name",
        "tags[0]",
        "parameters[0]",
        "parameters[1].name",
        "parameters[2]",
        "sql",
    ] {
        assert!(
            got.iter().any(|f| f == field),
            "{field} missing from {got:?}"
        );
    }
    let huge = NewQuery {
        name: "Huge".into(),
        datasource_id: env.sample.id.clone(),
        sql: format!("select 1 -- {}", "x".repeat(1024 * 1024)),
        ..NewQuery::default()
    };
    assert_eq!(fields(s.queries.create(e, huge).await), ["sql"]);
    let undefined = NewQuery {
        name: "Q".into(),
        datasource_id: env.sample.id.clone(),
        sql: "select {{ nope }}".into(),
        ..NewQuery::default()
    };
    assert_eq!(fields(s.queries.create(e, undefined).await), ["sql"]);
    let elsewhere = NewQuery {
        name: "Q".into(),
        datasource_id: "no-such-datasource".into(),
        sql: "select 1".into(),
        ..NewQuery::default()
    };
    assert_eq!(
        fields(s.queries.create(e, elsewhere).await),
        ["datasource_id"]
    );

    // Parameter values of a run are checked against their definitions.
    let query = env.query(e, "Customers").await;
    let query = env
        .change_query(
            e,
            &query.id,
            query.revision,
            QueryUpdate {
                sql: Some(
                    "select * from orders where quantity >= {{ n }} and status = {{ status }}"
                        .into(),
                ),
                parameters: Some(vec![
                    ParameterDef::new("n", ParameterType::Integer),
                    ParameterDef::new(
                        "status",
                        ParameterType::Enum {
                            options: vec!["paid".into(), "shipped".into()],
                        },
                    ),
                ]),
                ..Default::default()
            },
        )
        .await;
    let values = |n: serde_json::Value, status: &str| -> ParameterValues {
        [("n".to_owned(), n), ("status".to_owned(), json!(status))].into()
    };
    let injected = values(json!("1 OR 1=1"), "lost");
    assert_eq!(
        fields(s.runs.enqueue_query(e, &query.id, &injected).await),
        ["parameters.n"]
    );
    let unknown_status = values(json!(2), "lost");
    assert_eq!(
        fields(s.runs.enqueue_query(e, &query.id, &unknown_status).await),
        ["parameters.status"]
    );
    let good = values(json!(2), "paid");
    let run = s.runs.enqueue_query(e, &query.id, &good).await.unwrap();
    assert!(
        run.sql.contains("$1") && !run.sql.contains("paid"),
        "values stay out of the SQL: {}",
        run.sql
    );

    // Users: emails, names and passwords.
    let person = NewUser {
        email: "not-an-email".into(),
        name: String::new(),
        role: Role::Viewer,
        password: Some(password("short")),
    };
    let got = fields(s.users.create(&env.admin, person).await);
    assert_eq!(got, ["email", "name", "password"]);
    let taken = NewUser {
        email: " ERIN@acme.test ".into(),
        name: "Erin again".into(),
        role: Role::Viewer,
        password: None,
    };
    assert_eq!(
        fields(s.users.create(&env.admin, taken).await),
        ["email"],
        "emails are unique, ignoring case"
    );

    // Visualizations: each type names the columns it needs; unknown keys.
    let viz = |kind, options| VisualizationInput {
        query_id: query.id.clone(),
        kind,
        name: "V".into(),
        options,
    };
    assert_eq!(
        fields(
            s.visualizations
                .create(e, viz(VisualizationType::Line, json!({"x": "day"})))
                .await
        ),
        ["options"]
    );
    assert_eq!(
        fields(
            s.visualizations
                .create(
                    e,
                    viz(
                        VisualizationType::Pie,
                        json!({"label": "a", "value": "b", "hole": 1})
                    )
                )
                .await
        ),
        ["options.hole"]
    );
    assert_eq!(
        fields(
            s.visualizations
                .create(e, viz(VisualizationType::Bar, json!({"x": "d", "y": []})))
                .await
        ),
        ["options.y"]
    );
    s.visualizations
        .create(e, viz(VisualizationType::Counter, json!({"value": "n"})))
        .await
        .unwrap();
}

async fn secrets_are_sealed_and_never_shown(env: Env) {
    let s = &env.services;
    let url = super::postgres_url()
        .unwrap_or_else(|| "postgres://loupe:secret-pw@127.0.0.1:1/db?sslmode=disable".into());
    let parsed = url::Url::parse(&url).unwrap();
    let secret = parsed.password().unwrap().to_owned();
    let created = env.postgres_datasource(&url).await;
    assert_eq!(created.options.get("password"), Some(&json!(SECRET_MASK)));
    assert_eq!(created.secret_options, ["password"]);
    let listed = s
        .datasources
        .list(&env.admin, &ListRequest::default())
        .await
        .unwrap();
    let shown = serde_json::to_string(&listed.items).unwrap();
    assert!(!shown.contains(&secret), "a list never shows a secret");

    // At rest: ciphertext, not the password, under the current key id.
    let (plain, ciphertext, key_id): (String, Vec<u8>, String) = sqlx::query_as(
        "SELECT options, secret_ciphertext, secret_key_id FROM datasources WHERE id = $1",
    )
    .bind(created.id.clone())
    .fetch_one(env.store.pool())
    .await
    .unwrap();
    assert!(!plain.contains(&secret));
    assert!(
        !ciphertext
            .windows(secret.len())
            .any(|w| w == secret.as_bytes())
    );
    assert_eq!(key_id, env.keys.current_key_id());

    // The runner gets the real password back (a live connection proves it
    // when the test server is there).
    if super::postgres_url().is_some() {
        s.datasources.test(&env.admin, &created.id).await.unwrap();
    } else {
        s.datasources.open(&env.admin, &created.id).await.unwrap();
    }
    // An update that shows the mask keeps the secret; other options change.
    let mut options = created.options.clone();
    options.insert("pool_size".into(), json!(2));
    let updated = s
        .datasources
        .update(
            &env.admin,
            &created.id,
            created.revision,
            DatasourceUpdate {
                options: Some(options),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.secret_options, ["password"]);
    if super::postgres_url().is_some() {
        s.datasources.test(&env.admin, &created.id).await.unwrap();
    }

    // Another key cannot open it, and says so without leaking anything.
    let other_keys = KeyRing::new(&KeyRing::generate_key().unwrap(), &[]).unwrap();
    let stranger = super::services(&env.store, Some(other_keys.clone()));
    let error = stranger
        .datasources
        .open(&env.admin, &created.id)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains(env.keys.current_key_id()),
        "{error}"
    );
    assert!(!format!("{error:?}").contains(&secret));
    // Without any key, secrets are refused, clearly.
    let keyless = super::services(&env.store, None);
    let refused = keyless
        .datasources
        .create(
            &env.admin,
            DatasourceInput {
                name: "w2".into(),
                kind: "postgres".into(),
                options: created.options.clone(),
            },
        )
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("key"), "{refused}");

    // Rotation: a ring with a new key that still knows the old one.
    let new_key = KeyRing::generate_key().unwrap();
    let rotated = KeyRing::new(&new_key, std::slice::from_ref(&env.key)).unwrap();
    let rotating = super::services(&env.store, Some(rotated.clone()));
    assert_eq!(
        rotating
            .datasources
            .rotate_secrets(&env.admin)
            .await
            .unwrap(),
        1
    );
    let (key_id,): (String,) =
        sqlx::query_as("SELECT secret_key_id FROM datasources WHERE id = $1")
            .bind(created.id.clone())
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    assert_eq!(key_id, rotated.current_key_id());
    let only_new = super::services(&env.store, Some(KeyRing::new(&new_key, &[]).unwrap()));
    only_new
        .datasources
        .open(&env.admin, &created.id)
        .await
        .unwrap();
    // Changes to datasources are audited.
    let trail = s
        .audit
        .list(&env.admin, &filtered("resource_type", "datasource"))
        .await
        .unwrap();
    assert!(trail.total >= 2, "{:?}", trail.items);
}

async fn query_versions_and_revert(env: Env) {
    let s = &env.services;
    let e = &env.editor;
    let v1 = env.query(e, "Customers").await;
    assert_eq!(v1.version, 1);
    let renamed = env
        .change_query(e, &v1.id, v1.revision, super::renamed("Clients"))
        .await;
    assert_eq!(renamed.version, 1, "a rename is not a new version");
    let v2 = env
        .change_query(
            e,
            &v1.id,
            renamed.revision,
            super::with_sql("select count(*) from customers where country = {{ country }}"),
        )
        .await;
    assert_eq!(v2.version, 2);
    let v3 = env
        .change_query(
            e,
            &v1.id,
            v2.revision,
            QueryUpdate {
                sql: Some("select * from orders limit {{ n }}".into()),
                parameters: Some(vec![
                    ParameterDef::new("n", ParameterType::Integer).with_default(json!(10)),
                ]),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(v3.version, 3);
    let versions = s.queries.versions(e, &v1.id).await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [3, 2, 1]
    );
    assert_eq!(versions[2].sql, v1.sql);
    assert_eq!(versions[2].parameters, v1.parameters);

    let reverted = s.queries.revert(e, &v1.id, v3.revision, 1).await.unwrap();
    assert_eq!(
        (reverted.version, reverted.sql.as_str()),
        (4, v1.sql.as_str())
    );
    assert_eq!(reverted.parameters, v1.parameters);
    assert_eq!(
        s.queries.versions(e, &v1.id).await.unwrap().len(),
        4,
        "a revert keeps history"
    );
    assert_eq!(
        fields(s.queries.revert(e, &v1.id, reverted.revision, 9).await),
        ["version"]
    );
    assert_eq!(
        kind(s.queries.revert(e, &v1.id, v3.revision, 2).await),
        ErrorKind::Stale,
        "stale revision"
    );

    // A fork is a new query of the forker's, at version 1.
    let fork = s.queries.fork(&env.editor2, &v1.id).await.unwrap();
    assert_eq!(
        (fork.owner_id.as_str(), fork.version, fork.name.as_str()),
        (env.editor2.user_id.as_str(), 1, "Copy of Clients")
    );
    assert_eq!(fork.sql, reverted.sql);
}

/// Signs in to the environment's organization from no known address.
async fn login(env: &Env, email: &str, secret: &str) -> Result<User, Error> {
    let slug = Some(env.org.slug.as_str());
    env.services
        .users
        .login(slug, email, &password(secret), None)
        .await
}

/// The audit events of signing in with `outcome`.
async fn logins(env: &Env, outcome: &str) -> ListPage<AuditEvent> {
    let request = ListRequest::default()
        .filter("action", "user.login")
        .filter("outcome", outcome);
    env.services.audit.list(&env.admin, &request).await.unwrap()
}

async fn logins_backoff_and_one_time_tokens(env: Env) {
    let s = &env.services;
    let slug = Some(env.org.slug.as_str());
    let ok = s
        .users
        .login(
            slug,
            "ERIN@acme.test",
            &password(PASSWORD),
            Some("10.0.0.7"),
        )
        .await
        .unwrap();
    assert_eq!(ok.id, env.editor.user_id);
    assert!(ok.last_login_at.is_some());
    let wrong = login(&env, "erin@acme.test", "wrong password!")
        .await
        .unwrap_err();
    let unknown = login(&env, "nobody@acme.test", PASSWORD).await.unwrap_err();
    assert_eq!(
        wrong.to_string(),
        unknown.to_string(),
        "no hint whether the email exists"
    );
    assert_eq!(wrong.kind(), ErrorKind::Unauthenticated);

    // Five failures in a row back the source off, even for the right
    // password, with the answer of a wrong one (`auth_hardening.rs` has
    // more).
    for _ in 0..4 {
        login(&env, "erin@acme.test", "wrong password!")
            .await
            .unwrap_err();
    }
    let backed_off = login(&env, "erin@acme.test", PASSWORD).await.unwrap_err();
    assert_eq!(backed_off.to_string(), wrong.to_string());
    assert_eq!(logins(&env, "failure").await.total, 5);
    let successes = logins(&env, "success").await;
    assert_eq!(successes.total, 1);
    assert_eq!(successes.items[0].ip.as_deref(), Some("10.0.0.7"));

    // An admin reset: one token, single use; it also lifts the back-off.
    let token = s
        .users
        .start_reset(&env.admin, &env.editor.user_id)
        .await
        .unwrap();
    s.users
        .redeem(&token.token, &password("a brand new passphrase"))
        .await
        .unwrap();
    let again = s
        .users
        .redeem(&token.token, &password("another new passphrase"))
        .await;
    assert_eq!(kind(again), ErrorKind::Unauthenticated);
    login(&env, "erin@acme.test", "a brand new passphrase")
        .await
        .unwrap();
    let old = login(&env, "erin@acme.test", PASSWORD).await;
    assert_eq!(kind(old), ErrorKind::Unauthenticated);

    // Changing one's own password needs the current one.
    let viewer = &env.viewer;
    let change = |old: &str, new: &str| {
        let (old, new) = (password(old), password(new));
        async move { s.users.change_password(viewer, &old, &new, None).await }
    };
    let wrong_old = change("not my password", "vic's next passphrase").await;
    assert_eq!(fields(wrong_old), ["old_password"]);
    assert_eq!(fields(change(PASSWORD, "short").await), ["new_password"]);
    change(PASSWORD, "vic's next passphrase").await.unwrap();
    login(&env, "vic@acme.test", "vic's next passphrase")
        .await
        .unwrap();

    // An invitation sets the first password; a disabled user cannot log in.
    let (invited, invite) = s
        .users
        .create(
            &env.admin,
            NewUser {
                email: "ivy@acme.test".into(),
                name: "Ivy".into(),
                role: Role::Viewer,
                password: None,
            },
        )
        .await
        .unwrap();
    assert!(!invited.has_password);
    let invite = invite.unwrap();
    let uninvited = login(&env, "ivy@acme.test", PASSWORD).await;
    assert_eq!(kind(uninvited), ErrorKind::Unauthenticated);
    s.users
        .redeem(&invite.token, &password(PASSWORD))
        .await
        .unwrap();
    login(&env, "ivy@acme.test", PASSWORD).await.unwrap();
    env.disable(&invited.id).await;
    let disabled = login(&env, "ivy@acme.test", PASSWORD).await;
    assert_eq!(kind(disabled), ErrorKind::Unauthenticated);
    assert_eq!(
        kind(s.users.actor(&invited.id, None).await),
        ErrorKind::Unauthenticated
    );

    // A reset token stops working when it expires.
    let hasty = loupe_services::Services::new(
        env.store.clone(),
        loupe_connectors::registry(),
        loupe_services::ServicesConfig {
            secret_keys: Some(env.keys.clone()),
            reset_ttl: std::time::Duration::ZERO,
            ..Default::default()
        },
        None,
    )
    .unwrap();
    let expired = hasty
        .users
        .start_reset(&env.admin, &env.viewer.user_id)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let refused = s
        .users
        .redeem(&expired.token, &password("a passphrase never set"))
        .await;
    assert_eq!(kind(refused), ErrorKind::Unauthenticated);

    // The last admin cannot be demoted or disabled.
    let admin = s.users.get(&env.admin, &env.admin.user_id).await.unwrap();
    let demote = UserUpdate {
        role: Some(Role::Editor),
        ..Default::default()
    };
    assert_eq!(
        kind(
            s.users
                .update(&env.admin, &admin.id, admin.revision, demote)
                .await
        ),
        ErrorKind::Conflict
    );
    // Stored hashes are argon2id with OWASP's parameters.
    let (hash,): (String,) = sqlx::query_as("SELECT password_hash FROM users WHERE id = $1")
        .bind(env.admin.user_id.clone())
        .fetch_one(env.store.pool())
        .await
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains(PASSWORD));
}

async fn dashboards_keep_a_sound_layout(env: Env) {
    let s = &env.services;
    let e = &env.editor;
    let query = env.query(e, "Customers").await;
    let viz = env.table(e, &query.id, "T").await;
    // A visualization of the other organization.
    let foreign_source = s
        .datasources
        .create(&env.outsider, super::sample_input("theirs"))
        .await
        .unwrap();
    let foreign_query = s
        .queries
        .create(
            &env.outsider,
            NewQuery {
                name: "Theirs".into(),
                datasource_id: foreign_source.id,
                sql: "select 1".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let foreign = env.table(&env.outsider, &foreign_query.id, "T").await;
    let region = ParameterDef::new("region", ParameterType::Text).with_default(json!("DE"));
    let input = DashboardInput {
        name: "Sales by Region!".into(),
        tags: vec!["Sales".into()],
        parameters: vec![region.clone()],
        widgets: vec![
            widget(shows(&viz.id), (0, 0, 12, 6), &[("country", "region")]),
            widget(
                WidgetKind::Text {
                    text: "## Notes".into(),
                },
                (12, 0, 12, 6),
                &[],
            ),
        ],
        ..Default::default()
    };
    let dashboard = s.dashboards.create(e, input.clone()).await.unwrap();
    assert_eq!(dashboard.slug, "sales-by-region");
    assert_eq!(dashboard.tags, ["sales"]);
    assert_eq!(
        dashboard.widgets[0].query_id.as_deref(),
        Some(query.id.as_str())
    );
    let values: ParameterValues = [("region".to_owned(), json!("FR"))].into();
    let mapped = dashboard.values_for(&dashboard.widgets[0], &values);
    assert_eq!(
        mapped,
        BTreeMap::from([("country".to_owned(), json!("FR"))])
    );
    // The mapped values run the widget's query.
    env.enqueue(e, &query.id, &mapped).await;
    assert_eq!(
        s.dashboards
            .get_by_slug(&env.viewer, "sales-by-region")
            .await
            .unwrap()
            .id,
        dashboard.id
    );

    let broken = DashboardInput {
        name: "Broken".into(),
        parameters: vec![region, ParameterDef::new("n", ParameterType::Integer)],
        widgets: vec![
            widget(shows(&viz.id), (0, 0, 12, 6), &[("country", "n")]),
            widget(shows(&viz.id), (6, 3, 12, 6), &[]),
            widget(shows(&foreign.id), (0, 10, 4, 4), &[]),
            widget(WidgetKind::Text { text: "x".into() }, (20, 20, 6, 1), &[]),
        ],
        ..Default::default()
    };
    let got = fields(s.dashboards.create(e, broken).await);
    assert_eq!(
        got,
        [
            "widgets[3].x",
            "widgets[1]",
            "widgets[0].parameter_mappings.country",
            "widgets[2].visualization_id",
        ]
    );
    // Slugs are unique in an organization, not across them.
    assert_eq!(
        fields(s.dashboards.create(e, input.clone()).await),
        ["slug"]
    );
    s.dashboards
        .create(
            &env.outsider,
            DashboardInput {
                name: input.name.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let bad_slug = DashboardInput {
        name: "x".into(),
        slug: Some("Not A Slug".into()),
        ..Default::default()
    };
    assert_eq!(fields(s.dashboards.create(e, bad_slug).await), ["slug"]);

    // An update replaces the widgets.
    let moved = DashboardInput {
        widgets: vec![widget(shows(&viz.id), (0, 0, 24, 3), &[])],
        ..input
    };
    let updated = s
        .dashboards
        .update(e, &dashboard.id, dashboard.revision, moved)
        .await
        .unwrap();
    assert_eq!(updated.widgets.len(), 1);
    assert_eq!(
        (updated.widgets[0].w, updated.revision),
        (24, dashboard.revision + 1)
    );
}

async fn canvases_join_existing_nodes(env: Env) {
    let s = &env.services;
    let e = &env.editor;
    let query = env.query(e, "Customers").await;
    let node = |id: &str, kind: NodeKind| CanvasNode {
        id: id.into(),
        kind,
        x: 10.0,
        y: -5.5,
        w: 200.0,
        h: 120.0,
    };
    let edge = |id: &str, from: &str, to: &str| CanvasEdge {
        id: id.into(),
        from: from.into(),
        to: to.into(),
        label: Some("feeds".into()),
    };
    let input = CanvasInput {
        name: "Pipeline".into(),
        nodes: vec![
            node(
                "source",
                NodeKind::Query {
                    query_id: Some(query.id.clone()),
                },
            ),
            node(
                "note",
                NodeKind::Text {
                    text: "Daily at 6".into(),
                },
            ),
        ],
        edges: vec![edge("e1", "source", "note")],
        shared: false,
    };
    let canvas = s.canvases.create(e, input.clone()).await.unwrap();
    assert_eq!(canvas.nodes.len(), 2);
    assert_eq!(canvas.edges[0].label.as_deref(), Some("feeds"));
    let note = canvas.nodes.iter().find(|n| n.id == "note").unwrap();
    assert_eq!((note.x, note.y), (10.0, -5.5));

    let broken = CanvasInput {
        name: "Broken".into(),
        nodes: vec![
            node(
                "a",
                NodeKind::Dashboard {
                    dashboard_id: Some("nope".into()),
                },
            ),
            node(
                "a",
                NodeKind::Text {
                    text: String::new(),
                },
            ),
        ],
        edges: vec![edge("e1", "a", "ghost")],
        shared: false,
    };
    assert_eq!(
        fields(s.canvases.create(e, broken).await),
        ["nodes[1].id", "edges[0].to", "nodes[0].dashboard_id"]
    );
    // A node cannot link into another organization.
    let theirs = CanvasInput {
        name: "Theirs".into(),
        nodes: vec![node(
            "q",
            NodeKind::Query {
                query_id: Some(query.id.clone()),
            },
        )],
        edges: vec![],
        shared: false,
    };
    assert_eq!(
        fields(s.canvases.create(&env.outsider, theirs).await),
        ["nodes[0].query_id"]
    );

    let stale = canvas.revision;
    let updated = s
        .canvases
        .update(
            e,
            &canvas.id,
            stale,
            CanvasInput {
                edges: vec![],
                ..input.clone()
            },
        )
        .await
        .unwrap();
    assert!(updated.edges.is_empty());
    assert_eq!(
        kind(s.canvases.update(e, &canvas.id, stale, input).await),
        ErrorKind::Stale
    );
}

async fn schedules_check_cron_and_time_zone(env: Env) {
    let s = &env.services;
    let e = &env.editor;
    let query = env.query(e, "Customers").await;
    let input = |cron: &str, timezone: &str| ScheduleInput {
        query_id: query.id.clone(),
        cron: cron.into(),
        timezone: timezone.into(),
        parameters: ParameterValues::new(),
        enabled: true,
    };
    let daily = s
        .schedules
        .create(e, input("30 6 * * *", "Europe/Berlin"))
        .await
        .unwrap();
    let next = chrono::DateTime::from_timestamp_micros(daily.next_run_at.unwrap()).unwrap();
    let local = next.with_timezone(&chrono_tz::Europe::Berlin);
    assert_eq!(local.format("%H:%M").to_string(), "06:30");
    assert!(next > chrono::Utc::now());
    s.schedules
        .create(e, input("0 */5 * * * *", "UTC"))
        .await
        .unwrap();

    assert_eq!(
        fields(s.schedules.create(e, input("61 * * * *", "UTC")).await),
        ["cron"]
    );
    assert_eq!(
        fields(s.schedules.create(e, input("* * *", "UTC")).await),
        ["cron"]
    );
    assert_eq!(
        fields(
            s.schedules
                .create(e, input("0 6 * * *", "Mars/Olympus"))
                .await
        ),
        ["timezone"]
    );
    // A run that never comes is refused too.
    assert_eq!(
        fields(s.schedules.create(e, input("0 0 30 2 *", "UTC")).await),
        ["cron"]
    );
    let mut bad_value = input("0 6 * * *", "UTC");
    bad_value
        .parameters
        .insert("country".into(), json!(["not", "text"]));
    assert_eq!(
        fields(s.schedules.create(e, bad_value).await),
        ["parameters.country"]
    );

    let off = s
        .schedules
        .set_enabled(e, &daily.id, daily.revision, false)
        .await
        .unwrap();
    assert!(!off.enabled);
    let page = s
        .schedules
        .list(&env.viewer, &ListRequest::default())
        .await
        .unwrap();
    assert_eq!(page.total, 2);
}

/// Issue 12, finding 1: a datasource whose database role may do more than
/// read is refused when it is saved, naming what was found, not only at
/// its first run; `allow_privileged_role` saves it. A change of target to
/// such a role is refused the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_privileged_role_is_refused_when_the_datasource_is_saved() {
    let Some(superuser) = super::env_url("LOUPE_TEST_POSTGRES_SUPERUSER_URL") else {
        return;
    };
    let env = Env::sqlite().await;
    let s = &env.services;
    let options_of = |url: &str| {
        loupe_connectors::registry()
            .factory("postgres")
            .unwrap()
            .options_from_url(url)
            .unwrap()
    };
    let input = |name: &str, options| DatasourceInput {
        name: name.into(),
        kind: "postgres".into(),
        options,
    };

    let refused = s
        .datasources
        .create(&env.admin, input("root", options_of(&superuser)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "datasource.privileged_role");
    assert!(refused.to_string().contains("superuser"), "{refused}");

    let mut allowed = options_of(&superuser);
    allowed.insert("allow_privileged_role".into(), json!(true));
    s.datasources
        .create(&env.admin, input("root, knowingly", allowed))
        .await
        .unwrap();

    let Some(reader) = super::postgres_url() else {
        return;
    };
    let saved = env.postgres_datasource(&reader).await;
    let change = DatasourceUpdate {
        options: Some(options_of(&superuser)),
        ..DatasourceUpdate::default()
    };
    let refused = s
        .datasources
        .update(&env.admin, &saved.id, saved.revision, change)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "datasource.privileged_role");
}
