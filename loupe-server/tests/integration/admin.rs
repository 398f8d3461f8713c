//! `/organization`, `/users`, `/groups`, `/audit-events`: administration.

use loupe_services::Role;
use poem::http::Method;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::harness::{As, Harness, PASSWORD, Reply, assert_problem};

/// Creates a user through the API as the admin; returns the reply.
async fn create_user(h: &Harness, body: Value) -> Reply {
    h.call(
        Method::POST,
        "/api/v1/users",
        As::Bearer(&h.admin),
        Some(body),
    )
    .await
}

/// Creates a group through the API as the admin; returns its id.
async fn create_group(h: &Harness, name: &str) -> String {
    let reply = h
        .call(
            Method::POST,
            "/api/v1/groups",
            As::Bearer(&h.admin),
            Some(json!({ "name": name })),
        )
        .await;
    reply.expect(201);
    reply.body["id"].as_str().unwrap_or_default().to_owned()
}

fn emails(reply: &Reply) -> Vec<&str> {
    reply.body["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|u| u["email"].as_str()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn everyone_reads_the_organization_and_only_admins_rename_it() {
    let h = Harness::new().await;
    let (_, viewer) = h.user("viewer@acme.test", Role::Viewer).await;
    let read = h
        .call(
            Method::GET,
            "/api/v1/organization",
            As::Bearer(&viewer),
            None,
        )
        .await;
    read.expect(200);
    assert_eq!(read.body["name"], "Acme");
    let slug = read.body["slug"].as_str().unwrap().to_owned();

    let refused = h
        .call(
            Method::PATCH,
            "/api/v1/organization",
            As::Bearer(&viewer),
            Some(json!({ "name": "Hijacked" })),
        )
        .await;
    assert_problem(&refused, 403, "access.role");

    let renamed = h
        .call(
            Method::PATCH,
            "/api/v1/organization",
            As::Bearer(&h.admin),
            Some(json!({ "name": "Acme Corp" })),
        )
        .await;
    renamed.expect(200);
    assert_eq!(renamed.body["name"], "Acme Corp");
    // The slug people sign in with does not move.
    assert_eq!(renamed.body["slug"], slug.as_str());
    let again = h
        .call(
            Method::GET,
            "/api/v1/organization",
            As::Bearer(&viewer),
            None,
        )
        .await;
    assert_eq!(again.body["name"], "Acme Corp");

    let empty = h
        .call(
            Method::PATCH,
            "/api/v1/organization",
            As::Bearer(&h.admin),
            Some(json!({ "name": "" })),
        )
        .await;
    assert_problem(&empty, 400, "request.invalid");

    let anonymous = h
        .call(Method::GET, "/api/v1/organization", As::Anonymous, None)
        .await;
    assert_problem(&anonymous, 401, "auth.missing");
}

#[tokio::test]
async fn a_user_is_created_read_and_changed_with_etags() {
    let h = Harness::new().await;
    let created = create_user(
        &h,
        json!({ "email": "Ann@Acme.test", "name": "Ann", "role": "viewer", "password": PASSWORD }),
    )
    .await;
    created.expect(201);
    assert_eq!(created.header("etag"), Some("\"1\""));
    let user = &created.body["user"];
    assert_eq!(user["email"], "ann@acme.test");
    assert_eq!(user["role"], "viewer");
    assert_eq!(user["has_password"], true);
    assert!(
        created.body.get("invitation").is_none(),
        "a user with a password gets no invitation: {}",
        created.text()
    );
    assert!(!created.text().contains(PASSWORD), "{}", created.text());
    let path = format!("/api/v1/users/{}", user["id"].as_str().unwrap());

    let read = h.call(Method::GET, &path, As::Bearer(&h.admin), None).await;
    read.expect(200);
    assert_eq!(read.header("etag"), Some("\"1\""));
    assert_eq!(read.body["name"], "Ann");
    assert_eq!(read.body["disabled"], false);

    let change = || Some(json!({ "name": "Ann B.", "role": "editor" }));
    let missing = h
        .call(Method::PATCH, &path, As::Bearer(&h.admin), change())
        .await;
    assert_problem(&missing, 428, "precondition.required");

    let changed = h
        .call_if_match(
            Method::PATCH,
            &path,
            As::Bearer(&h.admin),
            change(),
            "\"1\"",
        )
        .await;
    changed.expect(200);
    assert_eq!(changed.header("etag"), Some("\"2\""));
    assert_eq!(changed.body["name"], "Ann B.");
    assert_eq!(changed.body["role"], "editor");

    // A second admin who read revision 1 is told the user changed.
    let stale = h
        .call_if_match(
            Method::PATCH,
            &path,
            As::Bearer(&h.admin),
            Some(json!({ "disabled": true })),
            "\"1\"",
        )
        .await;
    assert_problem(&stale, 412, "conflict.revision");
    let still = h.call(Method::GET, &path, As::Bearer(&h.admin), None).await;
    assert_eq!(still.body["disabled"], false);
}

#[tokio::test]
async fn a_user_without_a_password_is_invited_with_a_token_that_works() {
    let h = Harness::new().await;
    let created = create_user(
        &h,
        json!({ "email": "bob@acme.test", "name": "Bob", "role": "editor" }),
    )
    .await;
    created.expect(201);
    assert_eq!(created.header("cache-control"), Some("no-store"));
    assert_eq!(created.body["user"]["has_password"], false);
    let token = created.body["invitation"]["token"]
        .as_str()
        .expect("invitation token")
        .to_owned();
    assert!(created.body["invitation"]["expires_at"].is_string());

    let user = h
        .state
        .deployment
        .services
        .users
        .redeem(&token, &SecretString::from(PASSWORD.to_owned()))
        .await
        .expect("the invitation token sets a password");
    assert_eq!(user.email, "bob@acme.test");
    let bob = h.login("bob@acme.test", PASSWORD).await;
    let me = h
        .call(
            Method::GET,
            &format!("/api/v1/users/{}", user.id),
            As::Bearer(&bob),
            None,
        )
        .await;
    me.expect(200);
    assert_eq!(me.body["has_password"], true);
}

#[tokio::test]
async fn user_validation_names_the_field() {
    let h = Harness::new().await;
    let bad_email = create_user(
        &h,
        json!({ "email": "not-an-email", "name": "X", "role": "viewer" }),
    )
    .await;
    assert_problem(&bad_email, 422, "validation.failed");
    assert_eq!(bad_email.body["errors"][0]["field"], "email");
    assert_eq!(bad_email.body["errors"][0]["code"], "invalid_email");

    let weak = create_user(
        &h,
        json!({ "email": "weak@acme.test", "name": "W", "role": "viewer", "password": "short" }),
    )
    .await;
    assert_problem(&weak, 422, "validation.failed");
    assert_eq!(weak.body["errors"][0]["field"], "password");

    let taken = create_user(
        &h,
        json!({ "email": "ADMIN@acme.test", "name": "Again", "role": "viewer" }),
    )
    .await;
    assert_problem(&taken, 422, "validation.failed");
    assert_eq!(taken.body["errors"][0]["field"], "email");
    assert_eq!(taken.body["errors"][0]["code"], "taken");

    let long_name = create_user(
        &h,
        json!({ "email": "long@acme.test", "name": "n".repeat(201), "role": "viewer" }),
    )
    .await;
    assert_problem(&long_name, 400, "request.invalid");
    let bad_role = create_user(
        &h,
        json!({ "email": "root@acme.test", "name": "Root", "role": "root" }),
    )
    .await;
    assert_problem(&bad_role, 400, "request.invalid");

    let bad_sort = h
        .call(
            Method::GET,
            "/api/v1/users?sort=password_hash",
            As::Bearer(&h.admin),
            None,
        )
        .await;
    assert_problem(&bad_sort, 422, "validation.failed");
    assert_eq!(bad_sort.body["errors"][0]["field"], "sort");
}

#[tokio::test]
async fn only_admins_add_change_and_reset_users() {
    let h = Harness::new().await;
    let (viewer_id, viewer) = h.user("viewer@acme.test", Role::Viewer).await;
    let (_, editor) = h.user("editor@acme.test", Role::Editor).await;

    let add = h
        .call(
            Method::POST,
            "/api/v1/users",
            As::Bearer(&editor),
            Some(json!({ "email": "new@acme.test", "name": "New", "role": "admin" })),
        )
        .await;
    assert_problem(&add, 403, "access.role");

    // A viewer cannot make themselves admin.
    let promote = h
        .call_if_match(
            Method::PATCH,
            &format!("/api/v1/users/{viewer_id}"),
            As::Bearer(&viewer),
            Some(json!({ "role": "admin" })),
            "\"1\"",
        )
        .await;
    assert_problem(&promote, 403, "access.role");

    let reset = h
        .call(
            Method::POST,
            &format!("/api/v1/users/{viewer_id}/password-reset"),
            As::Bearer(&editor),
            None,
        )
        .await;
    assert_problem(&reset, 403, "access.role");

    let anonymous = h
        .call(Method::GET, "/api/v1/users", As::Anonymous, None)
        .await;
    assert_problem(&anonymous, 401, "auth.missing");
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted() {
    let h = Harness::new().await;
    let me = h
        .call(
            Method::GET,
            "/api/v1/users?role=admin",
            As::Bearer(&h.admin),
            None,
        )
        .await;
    me.expect(200);
    assert_eq!(me.body["total"], 1);
    let id = me.body["items"][0]["id"].as_str().unwrap();
    let revision = me.body["items"][0]["revision"].to_string();
    let demoted = h
        .call_if_match(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            As::Bearer(&h.admin),
            Some(json!({ "role": "viewer" })),
            &format!("\"{revision}\""),
        )
        .await;
    assert_problem(&demoted, 409, "conflict.last_admin");
}

#[tokio::test]
async fn an_admin_reset_gives_a_one_time_token() {
    let h = Harness::new().await;
    let (id, _) = h.user("forgetful@acme.test", Role::Editor).await;
    let reset = h
        .call(
            Method::POST,
            &format!("/api/v1/users/{id}/password-reset"),
            As::Bearer(&h.admin),
            None,
        )
        .await;
    reset.expect(201);
    assert_eq!(reset.header("cache-control"), Some("no-store"));
    let token = reset.body["token"].as_str().expect("token").to_owned();
    let expires: chrono::DateTime<chrono::Utc> = reset.body["expires_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("expires_at is a time");
    assert!(expires > chrono::Utc::now());

    let new_password = SecretString::from("a brand new long passphrase".to_owned());
    h.state
        .deployment
        .services
        .users
        .redeem(&token, &new_password)
        .await
        .expect("the reset token works");
    h.login("forgetful@acme.test", "a brand new long passphrase")
        .await;
    // Once only.
    let again = h
        .state
        .deployment
        .services
        .users
        .redeem(&token, &new_password)
        .await;
    assert!(again.is_err(), "a reset token works once");
}

#[tokio::test]
async fn users_are_listed_with_filters() {
    let h = Harness::new().await;
    let (viewer_id, _) = h.user("vera@acme.test", Role::Viewer).await;
    h.user("eddie@acme.test", Role::Editor).await;
    h.user("edna@acme.test", Role::Editor).await;
    // Disable Vera through core so the filter has something to find.
    let admin = h.admin_actor().await;
    h.state
        .deployment
        .services
        .users
        .update(
            &admin,
            &viewer_id,
            1,
            loupe_services::UserUpdate {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("disabled");

    let list = |query: &'static str| {
        let h = &h;
        async move {
            let reply = h
                .call(
                    Method::GET,
                    &format!("/api/v1/users{query}"),
                    As::Bearer(&h.admin),
                    None,
                )
                .await;
            reply.expect(200);
            reply
        }
    };
    let all = list("").await;
    assert_eq!(all.body["total"], 4);
    let editors = list("?role=editor&sort=-email").await;
    assert_eq!(emails(&editors), ["edna@acme.test", "eddie@acme.test"]);
    let disabled = list("?disabled=true").await;
    assert_eq!(emails(&disabled), ["vera@acme.test"]);
    let by_email = list("?email=EDD").await;
    assert_eq!(emails(&by_email), ["eddie@acme.test"]);
    let by_name = list("?q=vera").await;
    assert_eq!(emails(&by_name), ["vera@acme.test"]);
    let future = list("?created_after=2999-01-01T00:00:00Z").await;
    assert_eq!(future.body["total"], 0);
    let past = list("?created_before=2999-01-01T00:00:00Z").await;
    assert_eq!(past.body["total"], 4);
    let paged = list("?limit=1&offset=1&sort=email").await;
    assert_eq!(paged.body["total"], 4);
    assert_eq!(paged.body["limit"], 1);
    assert_eq!(emails(&paged), ["eddie@acme.test"]);
}

#[tokio::test]
async fn other_organizations_cannot_reach_users_or_groups() {
    let h = Harness::new().await;
    let (id, _) = h.user("local@acme.test", Role::Viewer).await;
    let group = create_group(&h, "Locals").await;
    let other = h.other_org_admin().await;

    let user = h
        .call(
            Method::GET,
            &format!("/api/v1/users/{id}"),
            As::Bearer(&other),
            None,
        )
        .await;
    assert_problem(&user, 404, "not_found");
    let change = h
        .call_if_match(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            As::Bearer(&other),
            Some(json!({ "disabled": true })),
            "\"1\"",
        )
        .await;
    assert_problem(&change, 404, "not_found");
    let reset = h
        .call(
            Method::POST,
            &format!("/api/v1/users/{id}/password-reset"),
            As::Bearer(&other),
            None,
        )
        .await;
    assert_problem(&reset, 404, "not_found");
    let users = h
        .call(Method::GET, "/api/v1/users", As::Bearer(&other), None)
        .await;
    assert_eq!(emails(&users), ["boss@other.test"]);

    let read_group = h
        .call(
            Method::GET,
            &format!("/api/v1/groups/{group}"),
            As::Bearer(&other),
            None,
        )
        .await;
    assert_problem(&read_group, 404, "not_found");
    let delete_group = h
        .call(
            Method::DELETE,
            &format!("/api/v1/groups/{group}"),
            As::Bearer(&other),
            None,
        )
        .await;
    assert_problem(&delete_group, 404, "not_found");
    // Nor put their own users into our groups, or ours into theirs.
    let theirs = h
        .call(
            Method::POST,
            "/api/v1/groups",
            As::Bearer(&other),
            Some(json!({ "name": "Theirs" })),
        )
        .await;
    theirs.expect(201);
    let join = h
        .call(
            Method::PUT,
            &format!(
                "/api/v1/groups/{}/members/{id}",
                theirs.body["id"].as_str().unwrap()
            ),
            As::Bearer(&other),
            None,
        )
        .await;
    assert_problem(&join, 404, "not_found");
    let groups = h
        .call(Method::GET, "/api/v1/groups", As::Bearer(&other), None)
        .await;
    let names: Vec<&str> = groups.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(names, ["Theirs", "everyone"]);
}

#[tokio::test]
async fn groups_members_and_grants_decide_what_a_user_sees() {
    let h = Harness::new().await;
    let (viewer_id, viewer) = h.user("viewer@acme.test", Role::Viewer).await;
    // A datasource nobody but admins can see yet.
    let ds = h
        .call(
            Method::POST,
            "/api/v1/datasources",
            As::Bearer(&h.admin),
            Some(json!({
                "name": "Warehouse",
                "kind": "postgres",
                "options": { "host": "127.0.0.1", "port": 1, "user": "u", "database": "d" }
            })),
        )
        .await;
    ds.expect(201);
    let ds = ds.body["id"].as_str().unwrap().to_owned();
    let ds_path = format!("/api/v1/datasources/{ds}");
    let hidden = h
        .call(Method::GET, &ds_path, As::Bearer(&viewer), None)
        .await;
    assert_problem(&hidden, 403, "access.no_grant");

    let created = h
        .call(
            Method::POST,
            "/api/v1/groups",
            As::Bearer(&h.admin),
            Some(json!({ "name": "Analysts" })),
        )
        .await;
    created.expect(201);
    assert_eq!(created.body["name"], "Analysts");
    assert_eq!(created.body["members"], json!([]));
    let group = created.body["id"].as_str().unwrap().to_owned();
    let group_path = format!("/api/v1/groups/{group}");

    let added = h
        .call(
            Method::PUT,
            &format!("{group_path}/members/{viewer_id}"),
            As::Bearer(&h.admin),
            None,
        )
        .await;
    added.expect(200);
    assert_eq!(added.body["members"], json!([viewer_id]));

    let granted = h
        .call(
            Method::PUT,
            &format!("{group_path}/grants/{ds}"),
            As::Bearer(&h.admin),
            Some(json!({ "access": "view" })),
        )
        .await;
    granted.expect(200);
    assert_eq!(
        granted.body,
        json!({ "group_id": group, "datasource_id": ds, "access": "view" })
    );
    let seen = h
        .call(Method::GET, &ds_path, As::Bearer(&viewer), None)
        .await;
    seen.expect(200);
    assert_eq!(seen.body["access"], "view");

    let grants = h
        .call(
            Method::GET,
            &format!("{ds_path}/grants"),
            As::Bearer(&h.admin),
            None,
        )
        .await;
    grants.expect(200);
    assert_eq!(
        grants.body,
        json!([{ "group_id": group, "datasource_id": ds, "access": "view" }])
    );

    let read = h
        .call(Method::GET, &group_path, As::Bearer(&h.admin), None)
        .await;
    read.expect(200);
    assert_eq!(read.body["members"], json!([viewer_id]));
    let list = h
        .call(
            Method::GET,
            "/api/v1/groups?q=analy",
            As::Bearer(&h.admin),
            None,
        )
        .await;
    list.expect(200);
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["items"][0]["id"], group.as_str());

    let revoked = h
        .call(
            Method::DELETE,
            &format!("{group_path}/grants/{ds}"),
            As::Bearer(&h.admin),
            None,
        )
        .await;
    revoked.expect(204);
    let hidden_again = h
        .call(Method::GET, &ds_path, As::Bearer(&viewer), None)
        .await;
    assert_problem(&hidden_again, 403, "access.no_grant");

    let removed = h
        .call(
            Method::DELETE,
            &format!("{group_path}/members/{viewer_id}"),
            As::Bearer(&h.admin),
            None,
        )
        .await;
    removed.expect(200);
    assert_eq!(removed.body["members"], json!([]));

    let deleted = h
        .call(Method::DELETE, &group_path, As::Bearer(&h.admin), None)
        .await;
    deleted.expect(204);
    let gone = h
        .call(Method::GET, &group_path, As::Bearer(&h.admin), None)
        .await;
    assert_problem(&gone, 404, "not_found");
}

#[tokio::test]
async fn only_admins_manage_groups_and_everyone_stays() {
    let h = Harness::new().await;
    let (editor_id, editor) = h.user("editor@acme.test", Role::Editor).await;
    let ds = h.sample_datasource().await;
    let group = create_group(&h, "Editors").await;

    let create = h
        .call(
            Method::POST,
            "/api/v1/groups",
            As::Bearer(&editor),
            Some(json!({ "name": "Mine" })),
        )
        .await;
    assert_problem(&create, 403, "access.role");
    let join = h
        .call(
            Method::PUT,
            &format!("/api/v1/groups/{group}/members/{editor_id}"),
            As::Bearer(&editor),
            None,
        )
        .await;
    assert_problem(&join, 403, "access.role");
    let grant = h
        .call(
            Method::PUT,
            &format!("/api/v1/groups/{group}/grants/{ds}"),
            As::Bearer(&editor),
            Some(json!({ "access": "run" })),
        )
        .await;
    assert_problem(&grant, 403, "access.role");
    let delete = h
        .call(
            Method::DELETE,
            &format!("/api/v1/groups/{group}"),
            As::Bearer(&editor),
            None,
        )
        .await;
    assert_problem(&delete, 403, "access.role");

    let bad_access = h
        .call(
            Method::PUT,
            &format!("/api/v1/groups/{group}/grants/{ds}"),
            As::Bearer(&h.admin),
            Some(json!({ "access": "write" })),
        )
        .await;
    assert_problem(&bad_access, 400, "request.invalid");
    let empty_name = h
        .call(
            Method::POST,
            "/api/v1/groups",
            As::Bearer(&h.admin),
            Some(json!({ "name": "" })),
        )
        .await;
    assert_problem(&empty_name, 400, "request.invalid");
    let taken = h
        .call(
            Method::POST,
            "/api/v1/groups",
            As::Bearer(&h.admin),
            Some(json!({ "name": "Editors" })),
        )
        .await;
    assert_problem(&taken, 422, "validation.failed");
    assert_eq!(taken.body["errors"][0]["field"], "name");

    let everyone = h
        .call(
            Method::GET,
            "/api/v1/groups?q=everyone",
            As::Bearer(&h.admin),
            None,
        )
        .await;
    let everyone = everyone.body["items"][0]["id"].as_str().unwrap().to_owned();
    let builtin = h
        .call(
            Method::DELETE,
            &format!("/api/v1/groups/{everyone}"),
            As::Bearer(&h.admin),
            None,
        )
        .await;
    assert_problem(&builtin, 409, "conflict.builtin");

    let anonymous = h
        .call(Method::GET, "/api/v1/groups", As::Anonymous, None)
        .await;
    assert_problem(&anonymous, 401, "auth.missing");
}

#[tokio::test]
async fn the_audit_trail_is_for_admins_and_filters() {
    let h = Harness::new().await;
    let group = create_group(&h, "Audited").await;
    let (_, editor) = h.user("editor@acme.test", Role::Editor).await;

    let created = h
        .call(
            Method::GET,
            "/api/v1/audit-events?action=group.create",
            As::Bearer(&h.admin),
            None,
        )
        .await;
    created.expect(200);
    assert_eq!(created.body["total"], 1, "{}", created.text());
    let event = &created.body["items"][0];
    assert_eq!(event["resource_type"], "group");
    assert_eq!(event["resource_id"], group.as_str());
    assert_eq!(event["outcome"], "success");
    assert!(event["actor_user_id"].is_string());
    assert!(event["created_at"].is_string());

    let by_resource = h
        .call(
            Method::GET,
            &format!(
                "/api/v1/audit-events?resource_type=group&resource_id={group}&outcome=success"
            ),
            As::Bearer(&h.admin),
            None,
        )
        .await;
    assert_eq!(by_resource.body["total"], 1);
    let failures = h
        .call(
            Method::GET,
            "/api/v1/audit-events?outcome=failure",
            As::Bearer(&h.admin),
            None,
        )
        .await;
    assert_eq!(failures.body["total"], 0);
    let later = h
        .call(
            Method::GET,
            "/api/v1/audit-events?created_after=2999-01-01T00:00:00Z",
            As::Bearer(&h.admin),
            None,
        )
        .await;
    assert_eq!(later.body["total"], 0);
    let newest_first = h
        .call(
            Method::GET,
            "/api/v1/audit-events?limit=2",
            As::Bearer(&h.admin),
            None,
        )
        .await;
    let items = newest_first.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let at = |i: usize| -> chrono::DateTime<chrono::Utc> {
        items[i]["created_at"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .expect("created_at is a time")
    };
    assert!(at(0) >= at(1), "{}", newest_first.text());

    let refused = h
        .call(
            Method::GET,
            "/api/v1/audit-events",
            As::Bearer(&editor),
            None,
        )
        .await;
    assert_problem(&refused, 403, "access.role");
    let anonymous = h
        .call(Method::GET, "/api/v1/audit-events", As::Anonymous, None)
        .await;
    assert_problem(&anonymous, 401, "auth.missing");
    let bad_outcome = h
        .call(
            Method::GET,
            "/api/v1/audit-events?outcome=maybe",
            As::Bearer(&h.admin),
            None,
        )
        .await;
    assert_problem(&bad_outcome, 422, "validation.failed");
    assert_eq!(bad_outcome.body["errors"][0]["field"], "outcome");

    let other = h.other_org_admin().await;
    let theirs = h
        .call(
            Method::GET,
            "/api/v1/audit-events?action=group.create",
            As::Bearer(&other),
            None,
        )
        .await;
    theirs.expect(200);
    assert_eq!(theirs.body["total"], 0);
}
