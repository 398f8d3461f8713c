//! `/organization`, `/users`, `/groups`, `/audit-events`: administration.

use loupe_services::Role;
use poem::http::Method;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::harness::{Harness, PASSWORD, Reply};

/// Creates a user through the API as the admin; returns the reply.
async fn create_user(h: &Harness, body: Value) -> Reply {
    h.admin().post("/users", body).await
}

/// Creates a group through the API as the admin; returns its id.
async fn create_group(h: &Harness, name: &str) -> String {
    let reply = h.admin().post("/groups", json!({ "name": name })).await;
    reply.expect(201).id()
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
    let read = h.bearer(&viewer).get("/organization").await.expect(200);
    assert_eq!(read.body["name"], "Acme");
    let slug = read.body["slug"].as_str().unwrap().to_owned();

    h.bearer(&viewer)
        .patch("/organization", json!({ "name": "Hijacked" }))
        .await
        .problem(403, "access.role");

    let renamed = h
        .admin()
        .patch("/organization", json!({ "name": "Acme Corp" }))
        .await
        .expect(200);
    assert_eq!(renamed.body["name"], "Acme Corp");
    // The slug people sign in with does not move.
    assert_eq!(renamed.body["slug"], slug.as_str());
    let again = h.bearer(&viewer).get("/organization").await;
    assert_eq!(again.body["name"], "Acme Corp");

    h.admin()
        .patch("/organization", json!({ "name": "" }))
        .await
        .problem(400, "request.invalid");
    h.assert_sign_in_required("/organization").await;
}

#[tokio::test]
async fn a_user_is_created_read_and_changed_with_etags() {
    let h = Harness::new().await;
    let created = create_user(
        &h,
        json!({ "email": "Ann@Acme.test", "name": "Ann", "role": "viewer", "password": PASSWORD }),
    )
    .await
    .expect(201);
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
    let path = format!("/users/{}", user["id"].as_str().unwrap());

    let read = h.admin().get(&path).await.expect(200);
    assert_eq!(read.header("etag"), Some("\"1\""));
    assert_eq!(read.body["name"], "Ann");
    assert_eq!(read.body["disabled"], false);

    // A second admin who read revision 1 is told the user changed.
    let changed = h
        .admin()
        .update_guarded_by_etag(
            Method::PATCH,
            &path,
            json!({ "name": "Ann B.", "role": "editor" }),
            json!({ "disabled": true }),
        )
        .await;
    assert_eq!(changed.header("etag"), Some("\"2\""));
    assert_eq!(changed.body["name"], "Ann B.");
    assert_eq!(changed.body["role"], "editor");
    let still = h.admin().get(&path).await;
    assert_eq!(still.body["disabled"], false);
}

#[tokio::test]
async fn a_user_without_a_password_is_invited_with_a_token_that_works() {
    let h = Harness::new().await;
    let created = create_user(
        &h,
        json!({ "email": "bob@acme.test", "name": "Bob", "role": "editor" }),
    )
    .await
    .expect(201);
    assert_eq!(created.header("cache-control"), Some("no-store"));
    assert_eq!(created.body["user"]["has_password"], false);
    let token = created.body["invitation"]["token"]
        .as_str()
        .expect("invitation token")
        .to_owned();
    assert!(created.body["invitation"]["expires_at"].is_string());

    let user = h
        .services()
        .users
        .redeem(&token, &SecretString::from(PASSWORD.to_owned()))
        .await
        .expect("the invitation token sets a password");
    assert_eq!(user.email, "bob@acme.test");
    let bob = h.login("bob@acme.test", PASSWORD).await;
    let me = h
        .bearer(&bob)
        .get(&format!("/users/{}", user.id))
        .await
        .expect(200);
    assert_eq!(me.body["has_password"], true);
}

#[tokio::test]
async fn user_validation_names_the_field() {
    let h = Harness::new().await;
    let bad_email = create_user(
        &h,
        json!({ "email": "not-an-email", "name": "X", "role": "viewer" }),
    )
    .await
    .invalid("email");
    assert_eq!(bad_email.body["errors"][0]["code"], "invalid_email");

    create_user(
        &h,
        json!({ "email": "weak@acme.test", "name": "W", "role": "viewer", "password": "short" }),
    )
    .await
    .invalid("password");

    let taken = create_user(
        &h,
        json!({ "email": "ADMIN@acme.test", "name": "Again", "role": "viewer" }),
    )
    .await
    .invalid("email");
    assert_eq!(taken.body["errors"][0]["code"], "taken");

    create_user(
        &h,
        json!({ "email": "long@acme.test", "name": "n".repeat(201), "role": "viewer" }),
    )
    .await
    .problem(400, "request.invalid");
    create_user(
        &h,
        json!({ "email": "root@acme.test", "name": "Root", "role": "root" }),
    )
    .await
    .problem(400, "request.invalid");

    h.admin()
        .get("/users?sort=password_hash")
        .await
        .invalid("sort");
}

#[tokio::test]
async fn only_admins_add_change_and_reset_users() {
    let h = Harness::new().await;
    let (viewer_id, viewer) = h.user("viewer@acme.test", Role::Viewer).await;
    let (_, editor) = h.user("editor@acme.test", Role::Editor).await;

    h.bearer(&editor)
        .post(
            "/users",
            json!({ "email": "new@acme.test", "name": "New", "role": "admin" }),
        )
        .await
        .problem(403, "access.role");

    // A viewer cannot make themselves admin.
    h.bearer(&viewer)
        .if_match("\"1\"")
        .patch(&format!("/users/{viewer_id}"), json!({ "role": "admin" }))
        .await
        .problem(403, "access.role");

    h.bearer(&editor)
        .post_empty(&format!("/users/{viewer_id}/password-reset"))
        .await
        .problem(403, "access.role");

    h.assert_sign_in_required("/users").await;
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted() {
    let h = Harness::new().await;
    let me = h.admin().get("/users?role=admin").await.expect(200);
    assert_eq!(me.body["total"], 1);
    let id = me.body["items"][0]["id"].as_str().unwrap();
    let revision = me.body["items"][0]["revision"].to_string();
    h.admin()
        .if_match(&format!("\"{revision}\""))
        .patch(&format!("/users/{id}"), json!({ "role": "viewer" }))
        .await
        .problem(409, "conflict.last_admin");
}

#[tokio::test]
async fn an_admin_reset_gives_a_one_time_token() {
    let h = Harness::new().await;
    let (id, _) = h.user("forgetful@acme.test", Role::Editor).await;
    let reset = h
        .admin()
        .post_empty(&format!("/users/{id}/password-reset"))
        .await
        .expect(201);
    assert_eq!(reset.header("cache-control"), Some("no-store"));
    let token = reset.body["token"].as_str().expect("token").to_owned();
    let expires: chrono::DateTime<chrono::Utc> = reset.body["expires_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("expires_at is a time");
    assert!(expires > chrono::Utc::now());

    let users = &h.services().users;
    let new_password = SecretString::from("a brand new long passphrase".to_owned());
    users
        .redeem(&token, &new_password)
        .await
        .expect("the reset token works");
    h.login("forgetful@acme.test", "a brand new long passphrase")
        .await;
    // Once only.
    let again = users.redeem(&token, &new_password).await;
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
    h.services()
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
        async move { h.admin().get(&format!("/users{query}")).await.expect(200) }
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
    let them = h.bearer(&other);

    them.get(&format!("/users/{id}"))
        .await
        .problem(404, "not_found");
    them.if_match("\"1\"")
        .patch(&format!("/users/{id}"), json!({ "disabled": true }))
        .await
        .problem(404, "not_found");
    them.post_empty(&format!("/users/{id}/password-reset"))
        .await
        .problem(404, "not_found");
    let users = them.get("/users").await;
    assert_eq!(emails(&users), ["boss@other.test"]);

    them.get(&format!("/groups/{group}"))
        .await
        .problem(404, "not_found");
    them.delete(&format!("/groups/{group}"))
        .await
        .problem(404, "not_found");
    // Nor put their own users into our groups, or ours into theirs.
    let theirs = them
        .post("/groups", json!({ "name": "Theirs" }))
        .await
        .expect(201);
    them.put_empty(&format!("/groups/{}/members/{id}", theirs.id()))
        .await
        .problem(404, "not_found");
    let groups = them.get("/groups").await;
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
        .admin()
        .post(
            "/datasources",
            json!({
                "name": "Warehouse",
                "kind": "postgres",
                "options": { "host": "127.0.0.1", "port": 1, "user": "u", "database": "d" }
            }),
        )
        .await
        .expect(201)
        .id();
    let ds_path = format!("/datasources/{ds}");
    // Without a grant the datasource is not found, as if it did not exist.
    h.bearer(&viewer)
        .get(&ds_path)
        .await
        .problem(404, "not_found");

    let created = h
        .admin()
        .post("/groups", json!({ "name": "Analysts" }))
        .await
        .expect(201);
    assert_eq!(created.body["name"], "Analysts");
    assert_eq!(created.body["members"], json!([]));
    let group = created.id();
    let group_path = format!("/groups/{group}");

    let added = h
        .admin()
        .put_empty(&format!("{group_path}/members/{viewer_id}"))
        .await
        .expect(200);
    assert_eq!(added.body["members"], json!([viewer_id]));

    let granted = h
        .admin()
        .put(
            &format!("{group_path}/grants/{ds}"),
            json!({ "access": "view" }),
        )
        .await
        .expect(200);
    assert_eq!(
        granted.body,
        json!({
            "group_id": group, "datasource_id": ds, "access": "view",
            "rules": { "saved_only": false, "locked": {}, "row_filters": {} }
        })
    );
    let seen = h.bearer(&viewer).get(&ds_path).await.expect(200);
    assert_eq!(seen.body["access"], "view");

    let grants = h
        .admin()
        .get(&format!("{ds_path}/grants"))
        .await
        .expect(200);
    assert_eq!(
        grants.body,
        json!([{
            "group_id": group, "datasource_id": ds, "access": "view",
            "rules": { "saved_only": false, "locked": {}, "row_filters": {} }
        }])
    );

    let read = h.admin().get(&group_path).await.expect(200);
    assert_eq!(read.body["members"], json!([viewer_id]));
    let list = h.admin().get("/groups?q=analy").await.expect(200);
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["items"][0]["id"], group.as_str());

    h.admin()
        .delete(&format!("{group_path}/grants/{ds}"))
        .await
        .expect(204);
    // Without a grant the datasource is not found, as if it did not exist.
    h.bearer(&viewer)
        .get(&ds_path)
        .await
        .problem(404, "not_found");

    let removed = h
        .admin()
        .delete(&format!("{group_path}/members/{viewer_id}"))
        .await
        .expect(200);
    assert_eq!(removed.body["members"], json!([]));

    h.admin().delete(&group_path).await.expect(204);
    h.admin().get(&group_path).await.problem(404, "not_found");
}

#[tokio::test]
async fn only_admins_manage_groups_and_everyone_stays() {
    let h = Harness::new().await;
    let (editor_id, editor) = h.user("editor@acme.test", Role::Editor).await;
    let ds = h.sample_datasource().await;
    let group = create_group(&h, "Editors").await;

    let as_editor = h.bearer(&editor);
    as_editor
        .post("/groups", json!({ "name": "Mine" }))
        .await
        .problem(403, "access.role");
    as_editor
        .put_empty(&format!("/groups/{group}/members/{editor_id}"))
        .await
        .problem(403, "access.role");
    as_editor
        .put(
            &format!("/groups/{group}/grants/{ds}"),
            json!({ "access": "run" }),
        )
        .await
        .problem(403, "access.role");
    as_editor
        .delete(&format!("/groups/{group}"))
        .await
        .problem(403, "access.role");

    h.admin()
        .put(
            &format!("/groups/{group}/grants/{ds}"),
            json!({ "access": "write" }),
        )
        .await
        .problem(400, "request.invalid");
    h.admin()
        .post("/groups", json!({ "name": "" }))
        .await
        .problem(400, "request.invalid");
    h.admin()
        .post("/groups", json!({ "name": "Editors" }))
        .await
        .invalid("name");

    let everyone = h.everyone_group(&h.admin).await;
    h.admin()
        .delete(&format!("/groups/{everyone}"))
        .await
        .problem(409, "conflict.builtin");

    h.assert_sign_in_required("/groups").await;
}

#[tokio::test]
async fn the_audit_trail_is_for_admins_and_filters() {
    let h = Harness::new().await;
    let group = create_group(&h, "Audited").await;
    let (_, editor) = h.user("editor@acme.test", Role::Editor).await;

    let created = h
        .admin()
        .get("/audit-events?action=group.create")
        .await
        .expect(200);
    assert_eq!(created.body["total"], 1, "{}", created.text());
    let event = &created.body["items"][0];
    assert_eq!(event["resource_type"], "group");
    assert_eq!(event["resource_id"], group.as_str());
    assert_eq!(event["outcome"], "success");
    assert!(event["actor_user_id"].is_string());
    assert!(event["created_at"].is_string());

    let total = |query: String| {
        let h = &h;
        async move { h.admin().get(&format!("/audit-events?{query}")).await.body["total"].clone() }
    };
    assert_eq!(
        total(format!(
            "resource_type=group&resource_id={group}&outcome=success"
        ))
        .await,
        1
    );
    assert_eq!(total("outcome=failure".into()).await, 0);
    assert_eq!(total("created_after=2999-01-01T00:00:00Z".into()).await, 0);
    let newest_first = h.admin().get("/audit-events?limit=2").await;
    let items = newest_first.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let at = |i: usize| -> chrono::DateTime<chrono::Utc> {
        items[i]["created_at"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .expect("created_at is a time")
    };
    assert!(at(0) >= at(1), "{}", newest_first.text());

    h.bearer(&editor)
        .get("/audit-events")
        .await
        .problem(403, "access.role");
    h.assert_sign_in_required("/audit-events").await;
    h.admin()
        .get("/audit-events?outcome=maybe")
        .await
        .invalid("outcome");

    let other = h.other_org_admin().await;
    let theirs = h
        .bearer(&other)
        .get("/audit-events?action=group.create")
        .await
        .expect(200);
    assert_eq!(theirs.body["total"], 0);
}
