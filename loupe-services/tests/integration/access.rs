//! Who may do what. Each test fails if the rule it names is removed: it
//! asserts the refusal, and where it matters, that the right person is not
//! refused.

use loupe_core::ErrorKind::{Forbidden, NotFound, Unauthenticated};
use loupe_core::ParameterValues;
use loupe_services::{
    Access, CanvasInput, DashboardInput, NewQuery, NewUser, QueryUpdate, Role, ScheduleInput,
    Scope, UserUpdate, VisualizationInput, VisualizationType,
};
use serde_json::json;

use super::{Env, kind, on_both, sample_input};

on_both!(
    other_organizations_answer_not_found,
    viewers_read_but_do_not_write,
    running_needs_a_run_grant,
    a_view_grant_shows_but_does_not_run_or_edit,
    editors_change_their_own_and_shared_objects,
    only_admins_manage_people_grants_and_datasources,
    api_keys_act_within_their_scopes,
    a_revoked_grant_takes_effect_at_once,
);

fn visualization(query_id: &str) -> VisualizationInput {
    VisualizationInput {
        query_id: query_id.into(),
        kind: VisualizationType::Table,
        name: "All rows".into(),
        options: json!({}),
    }
}

fn schedule(query_id: &str) -> ScheduleInput {
    ScheduleInput {
        query_id: query_id.into(),
        cron: "0 6 * * *".into(),
        timezone: "Europe/Paris".into(),
        parameters: ParameterValues::new(),
        enabled: true,
    }
}

async fn other_organizations_answer_not_found(env: Env) {
    let s = &env.services;
    let query = env.query(&env.editor, "Customers").await;
    let viz = s
        .visualizations
        .create(&env.editor, visualization(&query.id))
        .await
        .unwrap();
    let dashboard = s
        .dashboards
        .create(
            &env.editor,
            DashboardInput {
                name: "Sales".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let canvas = s
        .canvases
        .create(
            &env.editor,
            CanvasInput {
                name: "Map".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let sched = s
        .schedules
        .create(&env.editor, schedule(&query.id))
        .await
        .unwrap();
    let run = s
        .runs
        .enqueue_query(&env.editor, &query.id, &ParameterValues::new())
        .await
        .unwrap();
    let key = s
        .api_keys
        .create(&env.editor, "ci", &[Scope::Read], None)
        .await
        .unwrap();

    // The other organization's admin sees none of it: not found, never
    // forbidden, so existence does not leak.
    let o = &env.outsider;
    assert_eq!(kind(s.queries.get(o, &query.id).await), NotFound);
    assert_eq!(kind(s.queries.versions(o, &query.id).await), NotFound);
    assert_eq!(kind(s.datasources.get(o, &env.sample.id).await), NotFound);
    assert_eq!(kind(s.visualizations.get(o, &viz.id).await), NotFound);
    assert_eq!(kind(s.dashboards.get(o, &dashboard.id).await), NotFound);
    assert_eq!(
        kind(s.dashboards.get_by_slug(o, &dashboard.slug).await),
        NotFound
    );
    assert_eq!(kind(s.canvases.get(o, &canvas.id).await), NotFound);
    assert_eq!(kind(s.schedules.get(o, &sched.id).await), NotFound);
    assert_eq!(kind(s.runs.get(o, &run.id).await), NotFound);
    assert_eq!(kind(s.users.get(o, &env.editor.user_id).await), NotFound);
    assert_eq!(kind(s.groups.get(o, &env.everyone).await), NotFound);
    assert_eq!(kind(s.api_keys.get(o, &key.key.id).await), NotFound);

    // Nor can it change or delete anything.
    assert_eq!(
        kind(
            s.queries
                .update(o, &query.id, query.revision, QueryUpdate::default())
                .await
        ),
        NotFound
    );
    assert_eq!(kind(s.queries.delete(o, &query.id).await), NotFound);
    assert_eq!(kind(s.visualizations.delete(o, &viz.id).await), NotFound);
    assert_eq!(kind(s.dashboards.delete(o, &dashboard.id).await), NotFound);
    assert_eq!(kind(s.canvases.delete(o, &canvas.id).await), NotFound);
    assert_eq!(kind(s.schedules.delete(o, &sched.id).await), NotFound);
    assert_eq!(
        kind(s.datasources.delete(o, &env.sample.id).await),
        NotFound
    );
    assert_eq!(
        kind(
            s.runs
                .enqueue_query(o, &query.id, &ParameterValues::new())
                .await
        ),
        NotFound
    );
    assert_eq!(kind(s.api_keys.revoke(o, &key.key.id).await), NotFound);
    assert_eq!(
        kind(
            s.users
                .update(
                    o,
                    &env.editor.user_id,
                    1,
                    UserUpdate {
                        disabled: Some(true),
                        ..Default::default()
                    }
                )
                .await
        ),
        NotFound
    );
    assert_eq!(
        kind(
            s.groups
                .grant(o, &env.everyone, &env.sample.id, Access::View)
                .await
        ),
        NotFound
    );

    // Its own object cannot point into this organization either.
    assert_eq!(
        super::fields(s.visualizations.create(o, visualization(&query.id)).await),
        ["query_id"]
    );

    // And lists stay within the organization.
    let page = s.queries.list(o, &Default::default()).await.unwrap();
    assert_eq!(page.total, 0);
    assert_eq!(
        s.dashboards
            .list(o, &Default::default())
            .await
            .unwrap()
            .total,
        0
    );
    assert_eq!(s.runs.list(o, &Default::default()).await.unwrap().total, 0);
    let mine = s
        .queries
        .list(&env.viewer, &Default::default())
        .await
        .unwrap();
    assert_eq!(mine.total, 1, "members of the organization see it");
}

async fn viewers_read_but_do_not_write(env: Env) {
    let s = &env.services;
    let v = &env.viewer;
    let query = env.query(&env.editor, "Customers").await;
    let viz = s
        .visualizations
        .create(&env.editor, visualization(&query.id))
        .await
        .unwrap();

    s.queries.get(v, &query.id).await.unwrap();
    s.visualizations.get(v, &viz.id).await.unwrap();
    let new_query = NewQuery {
        name: "Mine".into(),
        datasource_id: env.sample.id.clone(),
        sql: "select 1".into(),
        ..NewQuery::default()
    };
    assert_eq!(kind(s.queries.create(v, new_query).await), Forbidden);
    assert_eq!(
        kind(
            s.queries
                .update(v, &query.id, query.revision, QueryUpdate::default())
                .await
        ),
        Forbidden
    );
    assert_eq!(kind(s.queries.delete(v, &query.id).await), Forbidden);
    assert_eq!(kind(s.queries.fork(v, &query.id).await), Forbidden);
    assert_eq!(
        kind(s.visualizations.create(v, visualization(&query.id)).await),
        Forbidden
    );
    assert_eq!(kind(s.visualizations.delete(v, &viz.id).await), Forbidden);
    assert_eq!(
        kind(
            s.dashboards
                .create(
                    v,
                    DashboardInput {
                        name: "D".into(),
                        ..Default::default()
                    }
                )
                .await
        ),
        Forbidden
    );
    assert_eq!(
        kind(
            s.canvases
                .create(
                    v,
                    CanvasInput {
                        name: "C".into(),
                        ..Default::default()
                    }
                )
                .await
        ),
        Forbidden
    );
    assert_eq!(
        kind(s.schedules.create(v, schedule(&query.id)).await),
        Forbidden
    );
    assert_eq!(
        kind(s.runs.enqueue_sql(v, &env.sample.id, "select 1").await),
        Forbidden
    );

    // Running a saved query is what viewers with a run grant do.
    s.runs
        .enqueue_query(v, &query.id, &ParameterValues::new())
        .await
        .unwrap();
}

async fn running_needs_a_run_grant(env: Env) {
    let s = &env.services;
    let private = s
        .datasources
        .create(&env.admin, sample_input("private"))
        .await
        .unwrap();
    let new_query = |name: &str| NewQuery {
        name: name.into(),
        datasource_id: private.id.clone(),
        sql: "select * from products".into(),
        ..NewQuery::default()
    };
    // Admins run everything; nobody else has a grant on `private`.
    let query = s
        .queries
        .create(&env.admin, new_query("Products"))
        .await
        .unwrap();
    s.runs
        .enqueue_query(&env.admin, &query.id, &ParameterValues::new())
        .await
        .unwrap();

    let e = &env.editor;
    let refused = s
        .runs
        .enqueue_query(e, &query.id, &ParameterValues::new())
        .await
        .unwrap_err();
    assert_eq!(
        (refused.kind(), refused.code()),
        (Forbidden, "access.no_grant")
    );
    assert_eq!(
        kind(s.runs.enqueue_sql(e, &private.id, "select 1").await),
        Forbidden
    );
    assert_eq!(
        kind(s.queries.create(e, new_query("Mine")).await),
        Forbidden
    );
    assert_eq!(kind(s.queries.get(e, &query.id).await), Forbidden);
    assert_eq!(kind(s.datasources.get(e, &private.id).await), Forbidden);
    let listed = s.queries.list(e, &Default::default()).await.unwrap();
    assert!(
        listed.items.iter().all(|q| q.id != query.id),
        "a query without a grant is not listed"
    );

    // A group with `run` on it opens all of that.
    let analysts = s.groups.create(&env.admin, "analysts").await.unwrap();
    s.groups
        .add_member(&env.admin, &analysts.id, &e.user_id)
        .await
        .unwrap();
    s.groups
        .grant(&env.admin, &analysts.id, &private.id, Access::Run)
        .await
        .unwrap();
    s.runs
        .enqueue_query(e, &query.id, &ParameterValues::new())
        .await
        .unwrap();
    s.queries.create(e, new_query("Mine")).await.unwrap();
    assert_eq!(
        kind(
            s.runs
                .enqueue_query(&env.editor2, &query.id, &ParameterValues::new())
                .await
        ),
        Forbidden
    );
}

async fn a_view_grant_shows_but_does_not_run_or_edit(env: Env) {
    let s = &env.services;
    let query = env.query(&env.editor, "Customers").await;
    let shared = s
        .queries
        .update(
            &env.editor,
            &query.id,
            query.revision,
            QueryUpdate {
                shared: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let run = s
        .runs
        .enqueue_query(&env.editor, &query.id, &ParameterValues::new())
        .await
        .unwrap();
    // Only `view` for everyone now.
    s.groups
        .grant(&env.admin, &env.everyone, &env.sample.id, Access::View)
        .await
        .unwrap();

    let e2 = &env.editor2;
    assert_eq!(
        s.datasources.get(e2, &env.sample.id).await.unwrap().access,
        Access::View
    );
    s.queries.get(e2, &query.id).await.unwrap();
    s.queries.versions(e2, &query.id).await.unwrap();
    s.runs.get(e2, &run.id).await.unwrap();
    let refused = s
        .runs
        .enqueue_query(e2, &query.id, &ParameterValues::new())
        .await
        .unwrap_err();
    assert_eq!(
        (refused.kind(), refused.code()),
        (Forbidden, "access.view_only")
    );
    // Editing a shared query would be running new SQL: refused too.
    let change = QueryUpdate {
        sql: Some("select * from orders".into()),
        parameters: Some(vec![]),
        ..Default::default()
    };
    assert_eq!(
        kind(
            s.queries
                .update(e2, &query.id, shared.revision, change)
                .await
        ),
        Forbidden
    );
    assert_eq!(
        kind(s.schedules.create(e2, schedule(&query.id)).await),
        Forbidden
    );
    assert_eq!(
        kind(s.datasources.test(e2, &env.sample.id).await),
        Forbidden
    );
}

async fn editors_change_their_own_and_shared_objects(env: Env) {
    let s = &env.services;
    let query = env.query(&env.editor, "Customers").await;
    let rename = |name: &str| QueryUpdate {
        name: Some(name.into()),
        ..Default::default()
    };

    let e2 = &env.editor2;
    let refused = s
        .queries
        .update(e2, &query.id, query.revision, rename("Mine now"))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.kind(), refused.code()),
        (Forbidden, "access.owner")
    );
    assert_eq!(kind(s.queries.delete(e2, &query.id).await), Forbidden);
    let viz = s
        .visualizations
        .create(&env.editor, visualization(&query.id))
        .await
        .unwrap();
    assert_eq!(
        kind(
            s.visualizations
                .update(e2, &viz.id, viz.revision, visualization(&query.id))
                .await
        ),
        Forbidden
    );
    let dashboard = s
        .dashboards
        .create(
            &env.editor,
            DashboardInput {
                name: "Sales".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let same = DashboardInput {
        name: "Sales 2".into(),
        ..Default::default()
    };
    assert_eq!(
        kind(
            s.dashboards
                .update(e2, &dashboard.id, dashboard.revision, same.clone())
                .await
        ),
        Forbidden
    );
    let sched = s
        .schedules
        .create(&env.editor, schedule(&query.id))
        .await
        .unwrap();
    assert_eq!(
        kind(
            s.schedules
                .set_enabled(e2, &sched.id, sched.revision, false)
                .await
        ),
        Forbidden
    );

    // The owner may; sharing lets other editors; admins always may.
    let renamed = s
        .queries
        .update(
            &env.editor,
            &query.id,
            query.revision,
            rename("Customers FR"),
        )
        .await
        .unwrap();
    let shared = s
        .queries
        .update(
            &env.editor,
            &query.id,
            renamed.revision,
            QueryUpdate {
                shared: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let by_other = s
        .queries
        .update(e2, &query.id, shared.revision, rename("Shared"))
        .await
        .unwrap();
    s.queries
        .update(&env.admin, &query.id, by_other.revision, rename("Admin's"))
        .await
        .unwrap();
    s.dashboards
        .update(&env.admin, &dashboard.id, dashboard.revision, same)
        .await
        .unwrap();
    // A viewer may not edit even a shared object.
    assert_eq!(
        kind(
            s.queries
                .update(&env.viewer, &query.id, 99, rename("x"))
                .await
        ),
        Forbidden
    );
}

async fn only_admins_manage_people_grants_and_datasources(env: Env) {
    let s = &env.services;
    let e = &env.editor;
    let person = NewUser {
        email: "new@acme.test".into(),
        name: "New".into(),
        role: Role::Viewer,
        password: None,
    };
    assert_eq!(kind(s.users.create(e, person.clone()).await), Forbidden);
    let promote = UserUpdate {
        role: Some(Role::Admin),
        ..Default::default()
    };
    assert_eq!(
        kind(s.users.update(e, &e.user_id, 1, promote.clone()).await),
        Forbidden,
        "no self-promotion"
    );
    assert_eq!(
        kind(s.users.start_reset(e, &env.viewer.user_id).await),
        Forbidden
    );
    assert_eq!(kind(s.groups.create(e, "mine").await), Forbidden);
    assert_eq!(
        kind(s.groups.add_member(e, &env.everyone, &e.user_id).await),
        Forbidden
    );
    assert_eq!(
        kind(
            s.groups
                .grant(e, &env.everyone, &env.sample.id, Access::Run)
                .await
        ),
        Forbidden
    );
    assert_eq!(
        kind(s.groups.revoke(e, &env.everyone, &env.sample.id).await),
        Forbidden
    );
    assert_eq!(
        kind(s.datasources.create(e, sample_input("mine")).await),
        Forbidden
    );
    let pause = loupe_services::DatasourceUpdate {
        paused: Some(true),
        ..Default::default()
    };
    assert_eq!(
        kind(
            s.datasources
                .update(e, &env.sample.id, env.sample.revision, pause.clone())
                .await
        ),
        Forbidden
    );
    assert_eq!(
        kind(s.datasources.delete(e, &env.sample.id).await),
        Forbidden
    );
    assert_eq!(kind(s.audit.list(e, &Default::default()).await), Forbidden);
    assert_eq!(kind(s.api_keys.list(e, true).await), Forbidden);

    let (user, invite) = s.users.create(&env.admin, person).await.unwrap();
    assert!(
        invite.is_some(),
        "a user without a password gets an invitation"
    );
    let group = s.groups.create(&env.admin, "analysts").await.unwrap();
    s.groups
        .add_member(&env.admin, &group.id, &user.id)
        .await
        .unwrap();
    s.groups
        .grant(&env.admin, &group.id, &env.sample.id, Access::View)
        .await
        .unwrap();
    s.datasources
        .update(&env.admin, &env.sample.id, env.sample.revision, pause)
        .await
        .unwrap();
    let promoted = s
        .users
        .update(&env.admin, &user.id, 1, promote)
        .await
        .unwrap();
    assert_eq!(promoted.role, Role::Admin);

    // Each permission change is in the audit trail, with who made it.
    let trail = s.audit.list(&env.admin, &Default::default()).await.unwrap();
    for action in [
        "user.invite",
        "group.create",
        "group.member_add",
        "grant.set",
        "datasource.update",
        "user.permissions",
    ] {
        let event = trail.items.iter().find(|e| e.action == action);
        let event = event.unwrap_or_else(|| panic!("no {action} in {:?}", trail.items));
        assert_eq!(
            event.actor_user_id.as_deref(),
            Some(env.admin.user_id.as_str()),
            "{action}"
        );
    }
}

async fn api_keys_act_within_their_scopes(env: Env) {
    let s = &env.services;
    let query = env.query(&env.editor, "Customers").await;
    let read = s
        .api_keys
        .create(&env.admin, "read", &[Scope::Read], None)
        .await
        .unwrap();
    let run = s
        .api_keys
        .create(&env.editor, "run", &[Scope::Run], None)
        .await
        .unwrap();
    let write = s
        .api_keys
        .create(&env.editor, "write", &[Scope::Write], None)
        .await
        .unwrap();
    // Only admins mint admin keys.
    assert_eq!(
        super::fields(
            s.api_keys
                .create(&env.editor, "admin", &[Scope::Admin], None)
                .await
        ),
        ["scopes"]
    );

    let by_read = s
        .api_keys
        .authenticate(&read.secret, Some("10.1.1.1"))
        .await
        .unwrap();
    assert_eq!(by_read.user_id, env.admin.user_id);
    s.queries.get(&by_read, &query.id).await.unwrap();
    let refused = s
        .runs
        .enqueue_query(&by_read, &query.id, &ParameterValues::new())
        .await
        .unwrap_err();
    assert_eq!(
        (refused.kind(), refused.code()),
        (Forbidden, "access.scope")
    );
    // An admin's read key is not an admin.
    assert_eq!(
        kind(
            s.users
                .create(
                    &by_read,
                    NewUser {
                        email: "k@acme.test".into(),
                        name: "K".into(),
                        role: Role::Admin,
                        password: None,
                    }
                )
                .await
        ),
        Forbidden
    );
    assert_eq!(
        kind(
            s.api_keys
                .create(&by_read, "more", &[Scope::Read], None)
                .await
        ),
        Forbidden
    );

    let by_run = s.api_keys.authenticate(&run.secret, None).await.unwrap();
    s.runs
        .enqueue_query(&by_run, &query.id, &ParameterValues::new())
        .await
        .unwrap();
    assert_eq!(
        kind(
            s.queries
                .update(&by_run, &query.id, query.revision, QueryUpdate::default())
                .await
        ),
        Forbidden
    );

    let by_write = s.api_keys.authenticate(&write.secret, None).await.unwrap();
    s.queries
        .update(
            &by_write,
            &query.id,
            query.revision,
            QueryUpdate {
                name: Some("Via key".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    // Revoked, tampered, expired or disabled-owner keys all fail the same way.
    s.api_keys.revoke(&env.editor, &run.key.id).await.unwrap();
    for bad in [
        run.secret.clone(),
        format!("{}x", write.secret),
        write.secret.replace("loupe_", "loupe-"),
        String::new(),
    ] {
        let e = s.api_keys.authenticate(&bad, None).await.unwrap_err();
        assert_eq!(
            (e.kind(), e.code()),
            (Unauthenticated, "auth.invalid_key"),
            "{bad}"
        );
    }
    let soon = loupe_services::meta::now_micros() + 1_000_000;
    let short = s
        .api_keys
        .create(&env.editor, "short", &[Scope::Read], Some(soon))
        .await
        .unwrap();
    s.api_keys.authenticate(&short.secret, None).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        kind(s.api_keys.authenticate(&short.secret, None).await),
        Unauthenticated
    );
    let editor = s.users.get(&env.admin, &env.editor.user_id).await.unwrap();
    s.users
        .update(
            &env.admin,
            &editor.id,
            editor.revision,
            UserUpdate {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        kind(s.api_keys.authenticate(&write.secret, None).await),
        Unauthenticated
    );

    // Listing shows prefixes, never secrets.
    let listed = s.api_keys.list(&env.admin, true).await.unwrap();
    assert_eq!(listed.len(), 4);
    for key in &listed {
        assert!(
            key.prefix.starts_with("loupe_") && key.prefix.len() == 18,
            "{}",
            key.prefix
        );
        assert!(
            ![&read.secret, &run.secret, &write.secret]
                .iter()
                .any(|s| s.as_str() == key.prefix)
        );
    }
}

async fn a_revoked_grant_takes_effect_at_once(env: Env) {
    let s = &env.services;
    let query = env.query(&env.editor, "Customers").await;
    // The actor was built before the change; the grant is read at use.
    s.runs
        .enqueue_query(&env.viewer, &query.id, &ParameterValues::new())
        .await
        .unwrap();
    s.groups
        .revoke(&env.admin, &env.everyone, &env.sample.id)
        .await
        .unwrap();
    assert_eq!(
        kind(
            s.runs
                .enqueue_query(&env.viewer, &query.id, &ParameterValues::new())
                .await
        ),
        Forbidden
    );
    assert_eq!(kind(s.queries.get(&env.viewer, &query.id).await), Forbidden);
}
