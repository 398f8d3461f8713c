//! Who may do what. Each test fails if the rule it names is removed: it
//! asserts the refusal, and where it matters, that the right person is not
//! refused.

use loupe_core::ErrorKind::{Forbidden, NotFound, Unauthenticated};
use loupe_core::{Error, ParameterValues};
use loupe_services::{
    Access, Actor, CanvasInput, DashboardInput, NewApiKey, NewQuery, NewUser, QueryUpdate, Role,
    ScheduleInput, Scope, UserUpdate, VisualizationInput,
};

use super::{Env, kind, on_both, refusal, sample_input};

on_both!(
    other_organizations_answer_not_found,
    viewers_read_but_do_not_write,
    running_needs_a_run_grant,
    a_view_grant_shows_but_does_not_run_or_edit,
    editors_change_their_own_and_shared_objects,
    only_admins_manage_people_grants_and_datasources,
    api_keys_act_within_their_scopes,
    a_revoked_grant_takes_effect_at_once,
    row_level_contexts_keep_runs_apart,
    a_view_grant_without_rules_does_not_lift_a_run_grants_rules,
);

fn visualization(query_id: &str) -> VisualizationInput {
    super::table(query_id, "All rows")
}

fn schedule(query_id: &str) -> ScheduleInput {
    super::schedule(
        query_id,
        "0 6 * * *",
        "Europe/Paris",
        ParameterValues::new(),
    )
}

fn dashboard(name: &str) -> DashboardInput {
    DashboardInput {
        name: name.into(),
        ..Default::default()
    }
}

fn canvas(name: &str) -> CanvasInput {
    CanvasInput {
        name: name.into(),
        ..Default::default()
    }
}

/// An API key of `actor`'s with one scope, never expiring.
async fn api_key(env: &Env, actor: &Actor, name: &str, scope: Scope) -> Result<NewApiKey, Error> {
    env.services
        .api_keys
        .create(actor, name, &[scope], None)
        .await
}

/// No parameter values: the query's defaults.
fn defaults() -> ParameterValues {
    ParameterValues::new()
}

async fn other_organizations_answer_not_found(env: Env) {
    let s = &env.services;
    let e = &env.editor;
    let query = env.query(e, "Customers").await;
    let viz = env.table(e, &query.id, "All rows").await;
    let dashboard = s.dashboards.create(e, dashboard("Sales")).await.unwrap();
    let canvas = s.canvases.create(e, canvas("Map")).await.unwrap();
    let sched = s.schedules.create(e, schedule(&query.id)).await.unwrap();
    let run = env.enqueue(e, &query.id, &defaults()).await;
    let key = api_key(&env, e, "ci", Scope::Read).await.unwrap();

    // The other organization's admin sees none of it: not found, never
    // forbidden, so existence does not leak.
    let o = &env.outsider;
    assert_eq!(kind(s.queries.get(o, &query.id).await), NotFound);
    assert_eq!(kind(s.queries.versions(o, &query.id).await), NotFound);
    assert_eq!(kind(s.datasources.get(o, &env.sample.id).await), NotFound);
    assert_eq!(kind(s.visualizations.get(o, &viz.id).await), NotFound);
    assert_eq!(kind(s.dashboards.get(o, &dashboard.id).await), NotFound);
    let by_slug = s.dashboards.get_by_slug(o, &dashboard.slug).await;
    assert_eq!(kind(by_slug), NotFound);
    assert_eq!(kind(s.canvases.get(o, &canvas.id).await), NotFound);
    assert_eq!(kind(s.schedules.get(o, &sched.id).await), NotFound);
    assert_eq!(kind(s.runs.get(o, &run.id).await), NotFound);
    assert_eq!(kind(s.users.get(o, &env.editor.user_id).await), NotFound);
    assert_eq!(kind(s.groups.get(o, &env.everyone).await), NotFound);
    assert_eq!(kind(s.api_keys.get(o, &key.key.id).await), NotFound);

    // Nor can it change or delete anything.
    let unchanged = QueryUpdate::default();
    let update = s.queries.update(o, &query.id, query.revision, unchanged);
    assert_eq!(kind(update.await), NotFound);
    assert_eq!(kind(s.queries.delete(o, &query.id).await), NotFound);
    assert_eq!(kind(s.visualizations.delete(o, &viz.id).await), NotFound);
    assert_eq!(kind(s.dashboards.delete(o, &dashboard.id).await), NotFound);
    assert_eq!(kind(s.canvases.delete(o, &canvas.id).await), NotFound);
    assert_eq!(kind(s.schedules.delete(o, &sched.id).await), NotFound);
    let delete = s.datasources.delete(o, &env.sample.id).await;
    assert_eq!(kind(delete), NotFound);
    let started = s.runs.enqueue_query(o, &query.id, &defaults()).await;
    assert_eq!(kind(started), NotFound);
    assert_eq!(kind(s.api_keys.revoke(o, &key.key.id).await), NotFound);
    let disable = UserUpdate {
        disabled: Some(true),
        ..Default::default()
    };
    let update = s.users.update(o, &env.editor.user_id, 1, disable);
    assert_eq!(kind(update.await), NotFound);
    let grant = s
        .groups
        .grant(o, &env.everyone, &env.sample.id, Access::View);
    assert_eq!(kind(grant.await), NotFound);

    // Its own object cannot point into this organization either.
    assert_eq!(
        super::fields(s.visualizations.create(o, visualization(&query.id)).await),
        ["query_id"]
    );

    // And lists stay within the organization.
    let page = s.queries.list(o, &Default::default()).await.unwrap();
    assert_eq!(page.total, 0);
    let dashboards = s.dashboards.list(o, &Default::default()).await.unwrap();
    assert_eq!(dashboards.total, 0);
    assert_eq!(s.runs.list(o, &Default::default()).await.unwrap().total, 0);
    let mine = s.queries.list(&env.viewer, &Default::default()).await;
    assert_eq!(mine.unwrap().total, 1, "members of the organization see it");
}

async fn viewers_read_but_do_not_write(env: Env) {
    let s = &env.services;
    let v = &env.viewer;
    let query = env.query(&env.editor, "Customers").await;
    let viz = env.table(&env.editor, &query.id, "All rows").await;

    s.queries.get(v, &query.id).await.unwrap();
    s.visualizations.get(v, &viz.id).await.unwrap();
    let new_query = NewQuery {
        name: "Mine".into(),
        datasource_id: env.sample.id.clone(),
        sql: "select 1".into(),
        ..NewQuery::default()
    };
    assert_eq!(kind(s.queries.create(v, new_query).await), Forbidden);
    let unchanged = QueryUpdate::default();
    let update = s.queries.update(v, &query.id, query.revision, unchanged);
    assert_eq!(kind(update.await), Forbidden);
    assert_eq!(kind(s.queries.delete(v, &query.id).await), Forbidden);
    assert_eq!(kind(s.queries.fork(v, &query.id).await), Forbidden);
    let viz_of_mine = s.visualizations.create(v, visualization(&query.id));
    assert_eq!(kind(viz_of_mine.await), Forbidden);
    assert_eq!(kind(s.visualizations.delete(v, &viz.id).await), Forbidden);
    assert_eq!(
        kind(s.dashboards.create(v, dashboard("D")).await),
        Forbidden
    );
    assert_eq!(kind(s.canvases.create(v, canvas("C")).await), Forbidden);
    let sched = s.schedules.create(v, schedule(&query.id)).await;
    assert_eq!(kind(sched), Forbidden);
    let ad_hoc = s.runs.enqueue_sql(v, &env.sample.id, "select 1").await;
    assert_eq!(kind(ad_hoc), Forbidden);

    // Running a saved query is what viewers with a run grant do.
    env.enqueue(v, &query.id, &defaults()).await;
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
    env.enqueue(&env.admin, &query.id, &defaults()).await;

    // Without a grant the datasource and what is on it are not found, as
    // if they did not exist: a refusal would confirm that they do.
    let e = &env.editor;
    assert_eq!(
        refusal(s.runs.enqueue_query(e, &query.id, &defaults()).await),
        (NotFound, "not_found")
    );
    let ad_hoc = s.runs.enqueue_sql(e, &private.id, "select 1").await;
    assert_eq!(kind(ad_hoc), NotFound);
    let created = s.queries.create(e, new_query("Mine")).await;
    assert_eq!(super::fields(created), ["datasource_id"]);
    assert_eq!(kind(s.queries.get(e, &query.id).await), NotFound);
    assert_eq!(kind(s.datasources.get(e, &private.id).await), NotFound);
    let listed = s.queries.list(e, &Default::default()).await.unwrap();
    assert!(
        listed.items.iter().all(|q| q.id != query.id),
        "a query without a grant is not listed"
    );

    // A group with `run` on it opens all of that.
    env.group_granting("analysts", &e.user_id, &private.id, Access::Run)
        .await;
    env.enqueue(e, &query.id, &defaults()).await;
    s.queries.create(e, new_query("Mine")).await.unwrap();
    let by_other = s
        .runs
        .enqueue_query(&env.editor2, &query.id, &defaults())
        .await;
    assert_eq!(kind(by_other), NotFound);
}

async fn a_view_grant_shows_but_does_not_run_or_edit(env: Env) {
    let s = &env.services;
    let query = env.query(&env.editor, "Customers").await;
    let shared = env.share(&env.editor, &query.id, query.revision).await;
    let run = env.enqueue(&env.editor, &query.id, &defaults()).await;
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
    assert_eq!(
        refusal(s.runs.enqueue_query(e2, &query.id, &defaults()).await),
        (Forbidden, "access.view_only")
    );
    // Editing a shared query would be running new SQL: refused too.
    let change = QueryUpdate {
        sql: Some("select * from orders".into()),
        parameters: Some(vec![]),
        ..Default::default()
    };
    let update = s.queries.update(e2, &query.id, shared.revision, change);
    assert_eq!(kind(update.await), Forbidden);
    let sched = s.schedules.create(e2, schedule(&query.id)).await;
    assert_eq!(kind(sched), Forbidden);
    let tested = s.datasources.test(e2, &env.sample.id).await;
    assert_eq!(kind(tested), Forbidden);
}

async fn editors_change_their_own_and_shared_objects(env: Env) {
    let s = &env.services;
    let query = env.query(&env.editor, "Customers").await;
    let rename = super::renamed;

    let e2 = &env.editor2;
    let refused = s
        .queries
        .update(e2, &query.id, query.revision, rename("Mine now"))
        .await;
    assert_eq!(refusal(refused), (Forbidden, "access.owner"));
    assert_eq!(kind(s.queries.delete(e2, &query.id).await), Forbidden);
    let viz = env.table(&env.editor, &query.id, "All rows").await;
    let update = s
        .visualizations
        .update(e2, &viz.id, viz.revision, visualization(&query.id));
    assert_eq!(kind(update.await), Forbidden);
    let dashboard = s
        .dashboards
        .create(&env.editor, dashboard("Sales"))
        .await
        .unwrap();
    let same = DashboardInput {
        name: "Sales 2".into(),
        ..Default::default()
    };
    let update = s
        .dashboards
        .update(e2, &dashboard.id, dashboard.revision, same.clone());
    assert_eq!(kind(update.await), Forbidden);
    let sched = s
        .schedules
        .create(&env.editor, schedule(&query.id))
        .await
        .unwrap();
    let disable = s
        .schedules
        .set_enabled(e2, &sched.id, sched.revision, false);
    assert_eq!(kind(disable.await), Forbidden);

    // The owner may; sharing lets other editors; admins always may.
    let renamed = env
        .change_query(
            &env.editor,
            &query.id,
            query.revision,
            rename("Customers FR"),
        )
        .await;
    let shared = env.share(&env.editor, &query.id, renamed.revision).await;
    let by_other = env
        .change_query(e2, &query.id, shared.revision, rename("Shared"))
        .await;
    env.change_query(&env.admin, &query.id, by_other.revision, rename("Admin's"))
        .await;
    s.dashboards
        .update(&env.admin, &dashboard.id, dashboard.revision, same)
        .await
        .unwrap();
    // A viewer may not edit even a shared object.
    let by_viewer = s.queries.update(&env.viewer, &query.id, 99, rename("x"));
    assert_eq!(kind(by_viewer.await), Forbidden);
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
    let reset = s.users.start_reset(e, &env.viewer.user_id).await;
    assert_eq!(kind(reset), Forbidden);
    assert_eq!(kind(s.groups.create(e, "mine").await), Forbidden);
    let join = s.groups.add_member(e, &env.everyone, &e.user_id).await;
    assert_eq!(kind(join), Forbidden);
    let grant = s
        .groups
        .grant(e, &env.everyone, &env.sample.id, Access::Run);
    assert_eq!(kind(grant.await), Forbidden);
    let revoke = s.groups.revoke(e, &env.everyone, &env.sample.id).await;
    assert_eq!(kind(revoke), Forbidden);
    let created = s.datasources.create(e, sample_input("mine")).await;
    assert_eq!(kind(created), Forbidden);
    let pause = loupe_services::DatasourceUpdate {
        paused: Some(true),
        ..Default::default()
    };
    let update = s
        .datasources
        .update(e, &env.sample.id, env.sample.revision, pause.clone());
    assert_eq!(kind(update.await), Forbidden);
    let delete = s.datasources.delete(e, &env.sample.id).await;
    assert_eq!(kind(delete), Forbidden);
    assert_eq!(kind(s.audit.list(e, &Default::default()).await), Forbidden);
    assert_eq!(kind(s.api_keys.list(e, true).await), Forbidden);

    let (user, invite) = s.users.create(&env.admin, person).await.unwrap();
    assert!(
        invite.is_some(),
        "a user without a password gets an invitation"
    );
    env.group_granting("analysts", &user.id, &env.sample.id, Access::View)
        .await;
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
    let read = api_key(&env, &env.admin, "read", Scope::Read)
        .await
        .unwrap();
    let run = api_key(&env, &env.editor, "run", Scope::Run).await.unwrap();
    let write = api_key(&env, &env.editor, "write", Scope::Write)
        .await
        .unwrap();
    // Only admins mint admin keys.
    assert_eq!(
        super::fields(api_key(&env, &env.editor, "admin", Scope::Admin).await),
        ["scopes"]
    );

    let by_read = s
        .api_keys
        .authenticate(&read.secret, Some("10.1.1.1"))
        .await
        .unwrap();
    assert_eq!(by_read.user_id, env.admin.user_id);
    s.queries.get(&by_read, &query.id).await.unwrap();
    assert_eq!(
        refusal(s.runs.enqueue_query(&by_read, &query.id, &defaults()).await),
        (Forbidden, "access.scope")
    );
    // An admin's read key is not an admin.
    let admin = NewUser {
        email: "k@acme.test".into(),
        name: "K".into(),
        role: Role::Admin,
        password: None,
    };
    assert_eq!(kind(s.users.create(&by_read, admin).await), Forbidden);
    let more = api_key(&env, &by_read, "more", Scope::Read).await;
    assert_eq!(kind(more), Forbidden);

    let by_run = s.api_keys.authenticate(&run.secret, None).await.unwrap();
    env.enqueue(&by_run, &query.id, &defaults()).await;
    let unchanged = QueryUpdate::default();
    let update = s
        .queries
        .update(&by_run, &query.id, query.revision, unchanged);
    assert_eq!(kind(update.await), Forbidden);

    let by_write = s.api_keys.authenticate(&write.secret, None).await.unwrap();
    env.change_query(
        &by_write,
        &query.id,
        query.revision,
        super::renamed("Via key"),
    )
    .await;

    // Revoked, tampered, expired or disabled-owner keys all fail the same way.
    s.api_keys.revoke(&env.editor, &run.key.id).await.unwrap();
    for bad in [
        run.secret.clone(),
        format!("{}x", write.secret),
        write.secret.replace("loupe_", "loupe-"),
        String::new(),
    ] {
        assert_eq!(
            refusal(s.api_keys.authenticate(&bad, None).await),
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
    let expired = s.api_keys.authenticate(&short.secret, None).await;
    assert_eq!(kind(expired), Unauthenticated);
    env.disable(&env.editor.user_id).await;
    let disabled_owner = s.api_keys.authenticate(&write.secret, None).await;
    assert_eq!(kind(disabled_owner), Unauthenticated);

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
    env.enqueue(&env.viewer, &query.id, &defaults()).await;
    s.groups
        .revoke(&env.admin, &env.everyone, &env.sample.id)
        .await
        .unwrap();
    let refused = s
        .runs
        .enqueue_query(&env.viewer, &query.id, &defaults())
        .await;
    assert_eq!(kind(refused), NotFound);
    assert_eq!(kind(s.queries.get(&env.viewer, &query.id).await), NotFound);
}

/// Two editors whose grant locks a parameter to their own attribute run
/// the same query: each sees only their own run, by id and in lists (on
/// both metadata backends, whose list SQL differs), and neither may give
/// the locked value themselves.
async fn row_level_contexts_keep_runs_apart(env: Env) {
    let s = &env.services;
    let groups = &s.groups;
    groups
        .revoke(&env.admin, &env.everyone, &env.sample.id)
        .await
        .unwrap();
    let group = groups.create(&env.admin, "Regions").await.unwrap();
    for member in [&env.editor, &env.editor2] {
        groups
            .add_member(&env.admin, &group.id, &member.user_id)
            .await
            .unwrap();
    }
    let rules = loupe_services::GrantRules {
        locked: [("country".to_owned(), "home".to_owned())].into(),
        ..Default::default()
    };
    groups
        .grant_with_rules(&env.admin, &group.id, &env.sample.id, Access::Run, rules)
        .await
        .unwrap();
    let mut actors = Vec::new();
    for (member, home) in [(&env.editor, "FR"), (&env.editor2, "DE")] {
        let user = s.users.get(&env.admin, &member.user_id).await.unwrap();
        let change = UserUpdate {
            attributes: Some([("home".to_owned(), serde_json::json!(home))].into()),
            ..Default::default()
        };
        s.users
            .update(&env.admin, &user.id, user.revision, change)
            .await
            .unwrap();
        // The actor as a new request would see it, attributes included.
        actors.push(s.users.actor(&user.id, None).await.unwrap());
    }
    let query = env.query(&env.admin, "Customers").await;
    let fr = env
        .enqueue(&actors[0], &query.id, &ParameterValues::new())
        .await;
    let de = env
        .enqueue(&actors[1], &query.id, &ParameterValues::new())
        .await;
    assert_ne!(fr.id, de.id, "one context joined the other's run");
    assert_ne!(fr.context, de.context);
    assert_eq!(fr.parameters[0].value, loupe_core::Value::Text("FR".into()));

    for (actor, mine, theirs) in [(&actors[0], &fr, &de), (&actors[1], &de, &fr)] {
        let listed = s
            .runs
            .list(actor, &loupe_services::meta::ListRequest::default())
            .await
            .unwrap();
        let ids: Vec<&str> = listed.items.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, [mine.id.as_str()]);
        assert_eq!(kind(s.runs.get(actor, &theirs.id).await), NotFound);
        assert!(s.runs.get(actor, &mine.id).await.is_ok());
    }
    let all = s
        .runs
        .list(&env.admin, &loupe_services::meta::ListRequest::default())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2);

    let mut values = ParameterValues::new();
    values.insert("country".into(), serde_json::json!("DE"));
    let refused = s.runs.enqueue_query(&actors[0], &query.id, &values).await;
    assert_eq!(refusal(refused), (Forbidden, "access.locked_parameter"));
}

/// A member of a group that may view every result and of one that may run
/// only under a locked parameter still runs under the lock: only grants
/// that give `run` decide what a run is restricted to. (They do see every
/// result: that is what the view grant gives.)
async fn a_view_grant_without_rules_does_not_lift_a_run_grants_rules(env: Env) {
    let s = &env.services;
    let groups = &s.groups;
    groups
        .revoke(&env.admin, &env.everyone, &env.sample.id)
        .await
        .unwrap();
    env.group_granting("Readers", &env.editor.user_id, &env.sample.id, Access::View)
        .await;
    let runners = groups.create(&env.admin, "Runners").await.unwrap();
    groups
        .add_member(&env.admin, &runners.id, &env.editor.user_id)
        .await
        .unwrap();
    let rules = loupe_services::GrantRules {
        locked: [("country".to_owned(), "home".to_owned())].into(),
        ..Default::default()
    };
    groups
        .grant_with_rules(&env.admin, &runners.id, &env.sample.id, Access::Run, rules)
        .await
        .unwrap();
    let user = s.users.get(&env.admin, &env.editor.user_id).await.unwrap();
    let change = UserUpdate {
        attributes: Some([("home".to_owned(), serde_json::json!("FR"))].into()),
        ..Default::default()
    };
    s.users
        .update(&env.admin, &user.id, user.revision, change)
        .await
        .unwrap();
    let editor = s.users.actor(&user.id, None).await.unwrap();
    let query = env.query(&env.admin, "Customers").await;

    let mut values = ParameterValues::new();
    values.insert("country".into(), serde_json::json!("DE"));
    let refused = s.runs.enqueue_query(&editor, &query.id, &values).await;
    assert_eq!(refusal(refused), (Forbidden, "access.locked_parameter"));
    let refused = s
        .runs
        .enqueue_sql(&editor, &env.sample.id, "select * from customers")
        .await;
    assert_eq!(refusal(refused), (Forbidden, "access.saved_only"));
    let run = env
        .enqueue(&editor, &query.id, &ParameterValues::new())
        .await;
    assert_eq!(
        run.parameters[0].value,
        loupe_core::Value::Text("FR".into())
    );
    // The unrestricted view grant shows the admin's runs too.
    let admin_run = env.enqueue(&env.admin, &query.id, &values).await;
    assert!(s.runs.get(&editor, &admin_run.id).await.is_ok());
    assert!(s.runs.get(&editor, &run.id).await.is_ok());
}
