//! The store itself: migrations both ways, what deletes do to what
//! depends on them, lists, and two writers changing one object.

use loupe_core::ParameterValues;
use loupe_core::{ErrorKind, ParameterDef, ParameterType};
use loupe_services::meta::{ListRequest, MetadataStore};
use loupe_services::{CanvasInput, CanvasNode, DashboardInput, NodeKind, QueryUpdate, WidgetKind};

use super::{Env, fields, filtered, kind, on_both, schedule, shows, widget};

on_both!(
    migrations_go_down_and_up_again,
    deletes_cascade_or_refuse_deliberately,
    lists_page_sort_and_filter,
    concurrent_updates_lose_nothing,
);

async fn count(store: &MetadataStore, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {table}");
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_one(store.pool())
        .await
        .unwrap();
    n
}

async fn migrations_go_down_and_up_again(env: Env) {
    let store = &env.store;
    assert_eq!(
        store.schema_version().await.unwrap(),
        loupe_services::meta::SCHEMA_VERSION
    );
    assert!(count(store, "users").await >= 5);

    store.undo_migrations(0).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), 0);
    let gone = sqlx::query("SELECT count(*) FROM users")
        .fetch_one(store.pool())
        .await;
    assert!(
        gone.is_err(),
        "the tables are gone after the down migration"
    );

    store.migrate().await.unwrap();
    assert_eq!(
        store.schema_version().await.unwrap(),
        loupe_services::meta::SCHEMA_VERSION
    );
    assert_eq!(count(store, "users").await, 0);
    // Applying again is a no-op, and a fresh connection sees the same.
    store.migrate().await.unwrap();
    let again = MetadataStore::open(env.location.url()).await.unwrap();
    assert_eq!(
        again.schema_version().await.unwrap(),
        loupe_services::meta::SCHEMA_VERSION
    );
    // The schema works after the round trip.
    let services = super::services(&again, Some(env.keys.clone()));
    services
        .organizations
        .create_with_admin(loupe_services::Setup {
            org_name: "Again".into(),
            admin_email: "a@again.test".into(),
            admin_name: "A".into(),
            admin_password: super::password(super::PASSWORD),
        })
        .await
        .unwrap();
    again.close().await;
}

async fn deletes_cascade_or_refuse_deliberately(env: Env) {
    let s = &env.services;
    let e = &env.editor;
    let query = env.query(e, "Customers").await;
    let query = env
        .change_query(
            e,
            &query.id,
            query.revision,
            super::with_sql("select * from customers where country = {{ country }} limit 5"),
        )
        .await;
    let viz = env.table(e, &query.id, "T").await;
    let table_at = |x| widget(shows(&viz.id), (x, 0, 6, 4), &[]);
    let text = WidgetKind::Text {
        text: "Notes".into(),
    };
    let note = widget(text, (12, 0, 6, 2), &[]);
    let dashboard = s
        .dashboards
        .create(
            e,
            DashboardInput {
                name: "Sales".into(),
                widgets: vec![table_at(0), table_at(6), note],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let canvas = s
        .canvases
        .create(
            e,
            CanvasInput {
                name: "Map".into(),
                nodes: vec![
                    CanvasNode {
                        id: "q".into(),
                        kind: NodeKind::Query {
                            query_id: Some(query.id.clone()),
                        },
                        x: 0.0,
                        y: 0.0,
                        w: 10.0,
                        h: 10.0,
                    },
                    CanvasNode {
                        id: "d".into(),
                        kind: NodeKind::Dashboard {
                            dashboard_id: Some(dashboard.id.clone()),
                        },
                        x: 20.0,
                        y: 0.0,
                        w: 10.0,
                        h: 10.0,
                    },
                ],
                edges: vec![loupe_services::CanvasEdge {
                    id: "e".into(),
                    from: "q".into(),
                    to: "d".into(),
                    label: None,
                }],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let every_15 = schedule(&query.id, "*/15 * * * *", "UTC", ParameterValues::new());
    let schedule = s.schedules.create(e, every_15).await.unwrap();
    env.enqueue(e, &query.id, &ParameterValues::new()).await;

    // A datasource with queries is not deleted from under them.
    let refused = s
        .datasources
        .delete(&env.admin, &env.sample.id)
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Conflict, "{refused}");
    // A query with schedules is not either: delete them first.
    let refused = s.queries.delete(e, &query.id).await.unwrap_err();
    assert_eq!(
        (refused.kind(), refused.code()),
        (ErrorKind::Conflict, "conflict.in_use")
    );
    assert_eq!(count(&env.store, "queries").await, 1);

    // Deleting a visualization removes the widgets that show it, not the
    // text widget nor the dashboard.
    s.visualizations.delete(e, &viz.id).await.unwrap();
    let left = s.dashboards.get(e, &dashboard.id).await.unwrap();
    assert_eq!(left.widgets.len(), 1);
    assert!(matches!(left.widgets[0].kind, WidgetKind::Text { .. }));

    s.schedules.delete(e, &schedule.id).await.unwrap();
    s.queries.delete(e, &query.id).await.unwrap();
    // Versions and runs go with their query; the canvas node stays,
    // pointing nowhere, and the dashboard node still points at it.
    assert_eq!(count(&env.store, "query_versions").await, 0);
    assert_eq!(count(&env.store, "runs").await, 0);
    let canvas = s.canvases.get(e, &canvas.id).await.unwrap();
    assert_eq!(canvas.nodes[1].kind, NodeKind::Query { query_id: None });
    assert_eq!(canvas.edges.len(), 1);
    // The audit trail keeps the deletes.
    let deletes = s
        .audit
        .list(&env.admin, &filtered("action", "query.delete"))
        .await
        .unwrap();
    assert_eq!(deletes.total, 1);
    assert_eq!(
        deletes.items[0].actor_user_id.as_deref(),
        Some(e.user_id.as_str())
    );

    // With no queries left, the datasource goes, and its grants with it.
    s.datasources
        .delete(&env.admin, &env.sample.id)
        .await
        .unwrap();
    assert_eq!(count(&env.store, "datasource_grants").await, 0);
    assert_eq!(
        kind(s.datasources.get(&env.admin, &env.sample.id).await),
        ErrorKind::NotFound
    );
}

async fn lists_page_sort_and_filter(env: Env) {
    let s = &env.services;
    for i in 0..7 {
        let query = env.query(&env.editor, &format!("Report {i:02}")).await;
        if i % 3 == 0 {
            env.change_query(
                &env.editor,
                &query.id,
                query.revision,
                QueryUpdate {
                    tags: Some(vec!["Finance".into()]),
                    ..Default::default()
                },
            )
            .await;
        }
    }
    env.query(&env.editor2, "Other 50%_off").await;
    let viewer = &env.viewer;
    let list = |request: ListRequest| async move { s.queries.list(viewer, &request).await };

    let all = list(ListRequest::default()).await.unwrap();
    assert_eq!(
        (all.total, all.items.len(), all.limit, all.offset),
        (8, 8, 50, 0)
    );

    let page = list(ListRequest::default().sorted("name").page(3, 3))
        .await
        .unwrap();
    let names: Vec<&str> = page.items.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["Report 02", "Report 03", "Report 04"]);
    assert_eq!(page.total, 8);
    let last = list(ListRequest::default().sorted("-name").page(200, 7))
        .await
        .unwrap();
    assert_eq!(
        last.items
            .iter()
            .map(|q| q.name.as_str())
            .collect::<Vec<_>>(),
        ["Other 50%_off"]
    );
    let past = list(ListRequest::default().page(10, 1000)).await.unwrap();
    assert!(past.items.is_empty());
    assert_eq!((past.total, past.offset), (8, 1000));

    let finance = list(filtered("tag", "finance")).await.unwrap();
    assert_eq!(finance.total, 3);
    let mine = list(filtered("owner", env.editor2.user_id.clone()))
        .await
        .unwrap();
    assert_eq!(mine.total, 1);
    // `%` and `_` are searched for literally.
    assert_eq!(list(filtered("q", "50%_")).await.unwrap().total, 1);
    assert_eq!(list(filtered("q", "REPORT 0")).await.unwrap().total, 7);
    assert_eq!(list(filtered("q", "%")).await.unwrap().total, 1);
    let future = list(filtered("created_after", "2999-01-01T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(future.total, 0);

    // Bad paging, sort or filter names are errors naming the field.
    assert_eq!(
        fields(list(ListRequest::default().page(201, 0)).await),
        ["limit"]
    );
    assert_eq!(
        fields(list(ListRequest::default().page(0, 0)).await),
        ["limit"]
    );
    assert_eq!(
        fields(list(ListRequest::default().sorted("sql")).await),
        ["sort"]
    );
    assert_eq!(fields(list(filtered("password", "x")).await), ["password"]);
    assert_eq!(
        fields(list(filtered("created_after", "yesterday")).await),
        ["created_after"]
    );
    assert_eq!(
        fields(list(filtered("archived", "maybe")).await),
        ["archived"]
    );

    // Archived queries leave the default list.
    let first = all
        .items
        .iter()
        .find(|q| q.owner_id == env.editor.user_id)
        .unwrap();
    env.change_query(
        &env.editor,
        &first.id,
        first.revision,
        QueryUpdate {
            archived: Some(true),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(list(ListRequest::default()).await.unwrap().total, 7);
    assert_eq!(list(filtered("archived", "true")).await.unwrap().total, 1);

    // Runs filter by status.
    let query = &all.items[1];
    env.enqueue(&env.viewer, &query.id, &ParameterValues::new())
        .await;
    let queued = s
        .runs
        .list(&env.viewer, &filtered("status", "queued"))
        .await
        .unwrap();
    assert_eq!(queued.total, 1);
    let done = s
        .runs
        .list(&env.viewer, &filtered("status", "succeeded"))
        .await
        .unwrap();
    assert_eq!(done.total, 0);
}

async fn concurrent_updates_lose_nothing(env: Env) {
    let s = &env.services;
    let query = env.query(&env.editor, "Customers").await;
    let shared = env.share(&env.editor, &query.id, query.revision).await;
    // Two editors read revision N and both write: one wins, the other is
    // told to reload; no change is silently overwritten.
    let change = |sql: &str| QueryUpdate {
        sql: Some(sql.into()),
        parameters: Some(vec![ParameterDef::new("country", ParameterType::Text)]),
        ..Default::default()
    };
    let (a, b) = tokio::join!(
        s.queries.update(
            &env.editor,
            &query.id,
            shared.revision,
            change("select 1 where {{ country }} = 'a'")
        ),
        s.queries.update(
            &env.editor2,
            &query.id,
            shared.revision,
            change("select 2 where {{ country }} = 'b'")
        ),
    );
    let (won, lost) = match (a, b) {
        (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
        other => panic!("exactly one update must win: {other:?}"),
    };
    assert_eq!(
        (lost.kind(), lost.code()),
        (ErrorKind::Stale, "conflict.revision")
    );
    assert_eq!(won.revision, shared.revision + 1);
    let now = s.queries.get(&env.editor, &query.id).await.unwrap();
    assert_eq!(now.sql, won.sql);
    // Exactly one new version was kept.
    let versions = s.queries.versions(&env.editor, &query.id).await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [2, 1]
    );

    // Many writers at once on one row: each success is one revision.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        let actor = env.editor.clone();
        let id = query.id.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let current = s.queries.get(&actor, &id).await.unwrap();
                let change = QueryUpdate {
                    description: Some(format!("{} {i}", current.description)),
                    ..Default::default()
                };
                match s
                    .queries
                    .update(&actor, &id, current.revision, change)
                    .await
                {
                    Ok(_) => return,
                    Err(e) if e.code() == "conflict.revision" => continue,
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let last = s.queries.get(&env.editor, &query.id).await.unwrap();
    assert_eq!(last.revision, won.revision + 8);
    let mut words: Vec<&str> = last.description.split_whitespace().collect();
    words.sort_unstable();
    assert_eq!(
        words,
        ["0", "1", "2", "3", "4", "5", "6", "7"],
        "every writer's change is there"
    );
}
