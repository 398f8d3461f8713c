//! `/datasources`: CRUD, secrets, schema, test, grants.

use loupe_services::Role;
use poem::http::Method;
use serde_json::{Value, json};

use crate::harness::{Harness, Reply};

const SECRET: &str = "s3cret-value";

/// A PostgreSQL datasource nobody listens for, with a password.
fn postgres(name: &str) -> Value {
    json!({
        "name": name,
        "kind": "postgres",
        "options": {
            "host": "127.0.0.1", "port": 1, "user": "u",
            "password": SECRET, "database": "d"
        }
    })
}

async fn create(h: &Harness, body: Value) -> Reply {
    h.admin().post("/datasources", body).await
}

/// The path of a datasource `create` made.
fn path_of(created: &Reply) -> String {
    format!("/datasources/{}", created.body["id"].as_str().unwrap())
}

#[track_caller]
fn assert_no_secret(reply: &Reply) {
    assert!(
        !reply.text().contains(SECRET),
        "a response carries the secret: {}",
        reply.text()
    );
}

#[tokio::test]
async fn the_sample_datasource_is_listed_tested_and_browsed() {
    let h = Harness::new().await;
    let list = h.admin().get("/datasources").await.expect(200);
    let sample = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "Sample data")
        .expect("sample listed")
        .clone();
    assert_eq!(sample["kind"], "files");
    assert_eq!(sample["paused"], false);
    assert_eq!(sample["access"], "run");
    assert!(sample["options"]["root"].is_string());
    let path = format!("/datasources/{}", sample["id"].as_str().unwrap());

    let read = h.admin().get(&path).await.expect(200);
    assert_eq!(
        read.header("etag"),
        Some(format!("\"{}\"", sample["revision"]).as_str())
    );
    assert_eq!(read.body["name"], "Sample data");

    h.admin()
        .post_empty(&format!("{path}/test"))
        .await
        .expect(204);

    // Everyone may run the sample, so a viewer browses its schema too.
    let (_, viewer) = h.user("viewer@acme.test", Role::Viewer).await;
    let schema = h
        .bearer(&viewer)
        .get(&format!("{path}/schema"))
        .await
        .expect(200);
    let tables: Vec<&Value> = schema.body["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["tables"].as_array().unwrap())
        .collect();
    let customers = tables
        .iter()
        .find(|t| t["name"] == "customers")
        .unwrap_or_else(|| panic!("customers in {}", schema.text()));
    assert_eq!(customers["kind"], "file");
    let columns = customers["columns"].as_array().unwrap();
    assert!(!columns.is_empty());
    for column in columns {
        assert!(column["name"].is_string(), "{column}");
        assert!(column["type"].is_string(), "{column}");
        assert!(column["arrow_type"].is_string(), "{column}");
        assert!(column["nullable"].is_boolean(), "{column}");
    }
    let country = columns
        .iter()
        .find(|c| c["name"] == "country")
        .expect("a country column");
    assert_eq!(country["arrow_type"], "Utf8", "{country}");
}

#[tokio::test]
async fn secrets_never_leave_the_server() {
    let h = Harness::new().await;
    let created = create(&h, postgres("Warehouse")).await.expect(201);
    assert_no_secret(&created);
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert_eq!(created.body["options"]["password"], "********");
    assert_eq!(created.body["options"]["host"], "127.0.0.1");
    assert_eq!(created.body["secret_options"], json!(["password"]));
    let id = created.body["id"].as_str().unwrap().to_owned();
    let path = path_of(&created);

    let read = h.admin().get(&path).await.expect(200);
    assert_no_secret(&read);
    assert_eq!(read.body["options"]["password"], "********");

    let list = h
        .admin()
        .get("/datasources?kind=postgres")
        .await
        .expect(200);
    assert_no_secret(&list);
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["items"][0]["options"]["password"], "********");

    // Sending the options back as read (with the mask) keeps the secret,
    // as long as where it connects stays the same (`secrets.rs`).
    let mut options = read.body["options"].clone();
    options["pool_size"] = json!(2);
    let patched = h
        .admin()
        .if_match("\"1\"")
        .patch(&path, json!({ "name": "Warehouse 2", "options": options }))
        .await
        .expect(200);
    assert_no_secret(&patched);
    assert_eq!(patched.body["name"], "Warehouse 2");
    assert_eq!(patched.body["options"]["pool_size"], 2);
    assert_eq!(patched.body["secret_options"], json!(["password"]));
    assert_eq!(patched.body["options"]["password"], "********");

    // A failed connection test does not echo the password either.
    let tested = h.admin().post_empty(&format!("{path}/test")).await;
    assert_eq!(tested.status, 503, "{}", tested.text());
    assert!(
        tested.code().starts_with("datasource."),
        "{}",
        tested.text()
    );
    assert_no_secret(&tested);

    // Nor the audit trail.
    let audit = h
        .admin()
        .get(&format!("/audit-events?resource_id={id}"))
        .await
        .expect(200);
    assert_eq!(audit.body["total"], 2, "{}", audit.text());
    assert_no_secret(&audit);

    // The stored secret is still the one given: core opens it for a build.
    let admin = h.admin_actor().await;
    let live = h.services().datasources.open(&admin, &id).await;
    assert!(live.is_ok(), "the kept secret still builds the datasource");
}

#[tokio::test]
async fn a_secret_is_removed_with_null() {
    let h = Harness::new().await;
    let path = path_of(&create(&h, postgres("Warehouse")).await);
    let patched = h
        .admin()
        .if_match("\"1\"")
        .patch(
            &path,
            json!({ "options": {
                "host": "127.0.0.1", "port": 1, "user": "u", "database": "d", "password": null
            } }),
        )
        .await
        .expect(200);
    assert_eq!(patched.body["secret_options"], json!([]));
    assert!(patched.body["options"].get("password").is_none());
}

#[tokio::test]
async fn datasource_updates_need_the_current_etag() {
    let h = Harness::new().await;
    let path = path_of(&create(&h, postgres("Warehouse")).await);
    let paused = h
        .admin()
        .update_guarded_by_etag(
            Method::PATCH,
            &path,
            json!({ "paused": true }),
            json!({ "paused": false }),
        )
        .await;
    assert_eq!(paused.header("etag"), Some("\"2\""));
    assert_eq!(paused.body["paused"], true);

    let only_paused = h.admin().get("/datasources?paused=true").await.expect(200);
    assert_eq!(only_paused.body["total"], 1);
    assert_eq!(only_paused.body["items"][0]["name"], "Warehouse");
    let by_name = h.admin().get("/datasources?q=sample&paused=false").await;
    assert_eq!(by_name.body["total"], 1);
    assert_eq!(by_name.body["items"][0]["name"], "Sample data");
}

#[tokio::test]
async fn datasource_validation_names_the_field() {
    let h = Harness::new().await;
    let unknown = create(
        &h,
        json!({ "name": "Legacy", "kind": "mssql", "options": {} }),
    )
    .await
    .invalid("kind");
    assert!(
        unknown.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("postgres"),
        "the message lists the enabled kinds: {}",
        unknown.text()
    );

    let bad_options = create(
        &h,
        json!({ "name": "Bad", "kind": "postgres", "options": { "host": "h", "colour": "red", "password": SECRET } }),
    )
    .await
    .invalid("options");
    assert_no_secret(&bad_options);

    create(
        &h,
        json!({ "name": "Sample data", "kind": "postgres", "options": { "user": "u" } }),
    )
    .await
    .invalid("name");

    create(&h, json!({ "name": "", "kind": "postgres" }))
        .await
        .problem(400, "request.invalid");
    create(
        &h,
        json!({ "name": "X", "kind": "postgres", "options": ["user", "u"] }),
    )
    .await
    .problem(400, "request.invalid");
}

#[tokio::test]
async fn connectors_describe_their_options_to_any_signed_in_caller() {
    let h = Harness::new().await;
    let (_, viewer) = h.user("viewer@acme.test", Role::Viewer).await;
    let reply = h.bearer(&viewer).get("/connectors").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let connectors = reply.body.as_array().expect("a list");
    let kinds: Vec<&str> = connectors
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["files", "mysql", "postgres"]);
    let by_kind = |kind: &str| connectors.iter().find(|c| c["kind"] == kind).unwrap();
    let option = |kind: &str, name: &str| {
        by_kind(kind)["options"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .unwrap_or_else(|| panic!("{kind} has no option {name}"))
            .clone()
    };
    assert_eq!(by_kind("mysql")["dialect"], "mysql");
    assert_eq!(by_kind("postgres")["dialect"], "postgres");
    assert_eq!(by_kind("files")["dialect"], "datafusion");
    assert_eq!(by_kind("postgres")["url_schemes"][0], "postgres");
    let password = option("postgres", "password");
    assert_eq!(password["secret"], true);
    assert_eq!(password["type"], "string");
    let root = option("files", "root");
    assert_eq!(
        (root["type"].as_str(), root["required"].as_bool()),
        (Some("path"), Some(true))
    );
    assert!(
        root.get("default").is_none(),
        "no default is omitted: {root}"
    );
    assert_eq!(option("files", "csv_has_header")["default"], "true");

    h.assert_sign_in_required("/connectors").await;
}

#[tokio::test]
async fn files_datasources_read_only_the_configured_directories() {
    let allowed = tempfile::tempdir().unwrap();
    std::fs::write(allowed.path().join("visits.csv"), "day,n\n2026-01-01,3\n").unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("private.csv"), "secret\n42\n").unwrap();
    let files = |root: &std::path::Path| {
        let name = root.display().to_string();
        json!({ "name": name, "kind": "files", "options": { "root": root } })
    };

    // By default only the sample's directory: not the server's own files.
    let h = Harness::new().await;
    for root in [
        elsewhere.path(),
        std::path::Path::new("/etc"),
        allowed.path(),
    ] {
        let refused = create(&h, files(root))
            .await
            .problem(422, "validation.failed");
        assert!(
            refused
                .text()
                .contains("not an existing directory inside the directories"),
            "{}",
            refused.text()
        );
    }

    let h = Harness::with(|c| c.deployment.files_roots = vec![allowed.path().to_path_buf()]).await;
    let made = create(&h, files(allowed.path())).await;
    assert_eq!(made.status, 201, "{}", made.text());
    create(&h, files(elsewhere.path()))
        .await
        .problem(422, "validation.failed");
    // The sample stays allowed beside the configured directories.
    let sample = h.admin().get("/datasources").await;
    let sample_id = sample.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "Sample data")
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .unwrap();
    let tested = h
        .admin()
        .post_empty(&format!("/datasources/{sample_id}/test"))
        .await;
    assert_eq!(tested.status, 204, "{}", tested.text());
}

#[tokio::test]
async fn only_admins_change_datasources_or_read_grants() {
    let h = Harness::new().await;
    let ds = h.sample_datasource().await;
    let path = format!("/datasources/{ds}");
    let (_, editor) = h.user("editor@acme.test", Role::Editor).await;
    let as_editor = h.bearer(&editor);

    as_editor
        .post("/datasources", postgres("Mine"))
        .await
        .problem(403, "access.role");
    as_editor
        .if_match("\"1\"")
        .patch(&path, json!({ "paused": true }))
        .await
        .problem(403, "access.role");
    as_editor.delete(&path).await.problem(403, "access.role");
    as_editor
        .get(&format!("{path}/grants"))
        .await
        .problem(403, "access.role");

    // The editor may still read and test it: everyone runs the sample.
    as_editor.get(&path).await.expect(200);
    as_editor
        .post_empty(&format!("{path}/test"))
        .await
        .expect(204);

    let admin_grants = h.admin().get(&format!("{path}/grants")).await.expect(200);
    assert_eq!(admin_grants.body[0]["access"], "run");
    assert_eq!(admin_grants.body[0]["datasource_id"], ds.as_str());

    h.assert_sign_in_required("/datasources").await;
}

#[tokio::test]
async fn view_access_browses_but_does_not_test() {
    let h = Harness::new().await;
    let ds = h.sample_datasource().await;
    let (_, viewer) = h.user("viewer@acme.test", Role::Viewer).await;
    let everyone = h.everyone_group(&h.admin).await;
    h.admin()
        .put(
            &format!("/groups/{everyone}/grants/{ds}"),
            json!({ "access": "view" }),
        )
        .await
        .expect(200);

    let path = format!("/datasources/{ds}");
    let as_viewer = h.bearer(&viewer);
    let read = as_viewer.get(&path).await.expect(200);
    assert_eq!(read.body["access"], "view");
    as_viewer.get(&format!("{path}/schema")).await.expect(200);
    as_viewer
        .post_empty(&format!("{path}/test"))
        .await
        .problem(403, "access.view_only");
}

#[tokio::test]
async fn other_organizations_cannot_reach_a_datasource() {
    let h = Harness::new().await;
    let ds = h.sample_datasource().await;
    let path = format!("/datasources/{ds}");
    let other = h.other_org_admin().await;
    let them = h.bearer(&other);

    for (method, suffix) in [
        (Method::GET, ""),
        (Method::DELETE, ""),
        (Method::POST, "/test"),
        (Method::GET, "/schema"),
        (Method::GET, "/grants"),
    ] {
        them.send(method, &format!("{path}{suffix}"), None)
            .await
            .problem(404, "not_found");
    }
    them.if_match("\"1\"")
        .patch(&path, json!({ "name": "Mine now" }))
        .await
        .problem(404, "not_found");
    let list = them.get("/datasources").await.expect(200);
    assert_eq!(list.body["total"], 0);
    // Their admin cannot grant their groups our datasource.
    let their_group = them.get("/groups").await.first_id();
    them.put(
        &format!("/groups/{their_group}/grants/{ds}"),
        json!({ "access": "run" }),
    )
    .await
    .problem(404, "not_found");
    // And it is still ours, unchanged.
    let ours = h.admin().get(&path).await.expect(200);
    assert_eq!(ours.body["name"], "Sample data");
}

#[tokio::test]
async fn a_datasource_in_use_is_not_deleted() {
    let h = Harness::new().await;
    let ds = h.sample_datasource().await;
    h.admin()
        .post(
            "/queries",
            json!({ "name": "q", "datasource_id": ds, "sql": "select 1" }),
        )
        .await
        .expect(201);
    h.admin()
        .delete(&format!("/datasources/{ds}"))
        .await
        .problem(409, "conflict.in_use");

    let path = path_of(&create(&h, postgres("Scratch")).await);
    h.admin().delete(&path).await.expect(204);
    h.admin().get(&path).await.problem(404, "not_found");
}
