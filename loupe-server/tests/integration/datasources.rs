//! `/datasources`: CRUD, secrets, schema, test, grants.

use loupe_services::Role;
use poem::http::Method;
use serde_json::{Value, json};

use crate::harness::{As, Harness, Reply, assert_problem};

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
    h.call(
        Method::POST,
        "/api/v1/datasources",
        As::Bearer(&h.admin),
        Some(body),
    )
    .await
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
    let list = h
        .call(
            Method::GET,
            "/api/v1/datasources",
            As::Bearer(&h.admin),
            None,
        )
        .await;
    list.expect(200);
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
    let path = format!("/api/v1/datasources/{}", sample["id"].as_str().unwrap());

    let read = h.call(Method::GET, &path, As::Bearer(&h.admin), None).await;
    read.expect(200);
    assert_eq!(
        read.header("etag"),
        Some(format!("\"{}\"", sample["revision"]).as_str())
    );
    assert_eq!(read.body["name"], "Sample data");

    let tested = h
        .call(
            Method::POST,
            &format!("{path}/test"),
            As::Bearer(&h.admin),
            None,
        )
        .await;
    tested.expect(204);

    // Everyone may run the sample, so a viewer browses its schema too.
    let (_, viewer) = h.user("viewer@acme.test", Role::Viewer).await;
    let schema = h
        .call(
            Method::GET,
            &format!("{path}/schema"),
            As::Bearer(&viewer),
            None,
        )
        .await;
    schema.expect(200);
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
    let created = create(&h, postgres("Warehouse")).await;
    created.expect(201);
    assert_no_secret(&created);
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert_eq!(created.body["options"]["password"], "********");
    assert_eq!(created.body["options"]["host"], "127.0.0.1");
    assert_eq!(created.body["secret_options"], json!(["password"]));
    let id = created.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/datasources/{id}");

    let read = h.call(Method::GET, &path, As::Bearer(&h.admin), None).await;
    read.expect(200);
    assert_no_secret(&read);
    assert_eq!(read.body["options"]["password"], "********");

    let list = h
        .call(
            Method::GET,
            "/api/v1/datasources?kind=postgres",
            As::Bearer(&h.admin),
            None,
        )
        .await;
    list.expect(200);
    assert_no_secret(&list);
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["items"][0]["options"]["password"], "********");

    // Sending the options back as read (with the mask) keeps the secret.
    let mut options = read.body["options"].clone();
    options["port"] = json!(2);
    let patched = h
        .call_if_match(
            Method::PATCH,
            &path,
            As::Bearer(&h.admin),
            Some(json!({ "name": "Warehouse 2", "options": options })),
            "\"1\"",
        )
        .await;
    patched.expect(200);
    assert_no_secret(&patched);
    assert_eq!(patched.body["name"], "Warehouse 2");
    assert_eq!(patched.body["options"]["port"], 2);
    assert_eq!(patched.body["secret_options"], json!(["password"]));
    assert_eq!(patched.body["options"]["password"], "********");

    // A failed connection test does not echo the password either.
    let tested = h
        .call(
            Method::POST,
            &format!("{path}/test"),
            As::Bearer(&h.admin),
            None,
        )
        .await;
    assert_eq!(tested.status, 503, "{}", tested.text());
    assert!(
        tested.code().starts_with("datasource."),
        "{}",
        tested.text()
    );
    assert_no_secret(&tested);

    // Nor the audit trail.
    let audit = h
        .call(
            Method::GET,
            &format!("/api/v1/audit-events?resource_id={id}"),
            As::Bearer(&h.admin),
            None,
        )
        .await;
    audit.expect(200);
    assert_eq!(audit.body["total"], 2, "{}", audit.text());
    assert_no_secret(&audit);

    // The stored secret is still the one given: core opens it for a build.
    let admin = h.admin_actor().await;
    let live = h
        .state
        .deployment
        .services
        .datasources
        .open(&admin, &id)
        .await;
    assert!(live.is_ok(), "the kept secret still builds the datasource");
}

#[tokio::test]
async fn a_secret_is_removed_with_null() {
    let h = Harness::new().await;
    let created = create(&h, postgres("Warehouse")).await;
    let path = format!(
        "/api/v1/datasources/{}",
        created.body["id"].as_str().unwrap()
    );
    let patched = h
        .call_if_match(
            Method::PATCH,
            &path,
            As::Bearer(&h.admin),
            Some(json!({ "options": {
                "host": "127.0.0.1", "port": 1, "user": "u", "database": "d", "password": null
            } })),
            "\"1\"",
        )
        .await;
    patched.expect(200);
    assert_eq!(patched.body["secret_options"], json!([]));
    assert!(patched.body["options"].get("password").is_none());
}

#[tokio::test]
async fn datasource_updates_need_the_current_etag() {
    let h = Harness::new().await;
    let created = create(&h, postgres("Warehouse")).await;
    let path = format!(
        "/api/v1/datasources/{}",
        created.body["id"].as_str().unwrap()
    );
    let pause = || Some(json!({ "paused": true }));

    let missing = h
        .call(Method::PATCH, &path, As::Bearer(&h.admin), pause())
        .await;
    assert_problem(&missing, 428, "precondition.required");

    let paused = h
        .call_if_match(Method::PATCH, &path, As::Bearer(&h.admin), pause(), "\"1\"")
        .await;
    paused.expect(200);
    assert_eq!(paused.header("etag"), Some("\"2\""));
    assert_eq!(paused.body["paused"], true);

    let stale = h
        .call_if_match(
            Method::PATCH,
            &path,
            As::Bearer(&h.admin),
            Some(json!({ "paused": false })),
            "\"1\"",
        )
        .await;
    assert_problem(&stale, 412, "conflict.revision");

    let only_paused = h
        .call(
            Method::GET,
            "/api/v1/datasources?paused=true",
            As::Bearer(&h.admin),
            None,
        )
        .await;
    only_paused.expect(200);
    assert_eq!(only_paused.body["total"], 1);
    assert_eq!(only_paused.body["items"][0]["name"], "Warehouse");
    let by_name = h
        .call(
            Method::GET,
            "/api/v1/datasources?q=sample&paused=false",
            As::Bearer(&h.admin),
            None,
        )
        .await;
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
    .await;
    assert_problem(&unknown, 422, "validation.failed");
    assert_eq!(unknown.body["errors"][0]["field"], "kind");
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
    .await;
    assert_problem(&bad_options, 422, "validation.failed");
    assert_eq!(bad_options.body["errors"][0]["field"], "options");
    assert_no_secret(&bad_options);

    let taken = create(
        &h,
        json!({ "name": "Sample data", "kind": "postgres", "options": { "user": "u" } }),
    )
    .await;
    assert_problem(&taken, 422, "validation.failed");
    assert_eq!(taken.body["errors"][0]["field"], "name");

    let empty_name = create(&h, json!({ "name": "", "kind": "postgres" })).await;
    assert_problem(&empty_name, 400, "request.invalid");
    let not_an_object = create(
        &h,
        json!({ "name": "X", "kind": "postgres", "options": ["user", "u"] }),
    )
    .await;
    assert_problem(&not_an_object, 400, "request.invalid");
}

#[tokio::test]
async fn connectors_describe_their_options_to_any_signed_in_caller() {
    let h = Harness::new().await;
    let (_, viewer) = h.user("viewer@acme.test", Role::Viewer).await;
    let reply = h
        .call(Method::GET, "/api/v1/connectors", As::Bearer(&viewer), None)
        .await;
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

    let anonymous = h
        .call(Method::GET, "/api/v1/connectors", As::Anonymous, None)
        .await;
    assert_problem(&anonymous, 401, "auth.missing");
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
        let refused = create(&h, files(root)).await;
        assert_problem(&refused, 422, "validation.failed");
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
    let refused = create(&h, files(elsewhere.path())).await;
    assert_problem(&refused, 422, "validation.failed");
    // The sample stays allowed beside the configured directories.
    let sample = h
        .call(
            Method::GET,
            "/api/v1/datasources",
            As::Bearer(&h.admin),
            None,
        )
        .await;
    let sample_id = sample.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "Sample data")
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .unwrap();
    let tested = h
        .call(
            Method::POST,
            &format!("/api/v1/datasources/{sample_id}/test"),
            As::Bearer(&h.admin),
            None,
        )
        .await;
    assert_eq!(tested.status, 204, "{}", tested.text());
}

#[tokio::test]
async fn only_admins_change_datasources_or_read_grants() {
    let h = Harness::new().await;
    let ds = h.sample_datasource().await;
    let path = format!("/api/v1/datasources/{ds}");
    let (_, editor) = h.user("editor@acme.test", Role::Editor).await;

    let add = h
        .call(
            Method::POST,
            "/api/v1/datasources",
            As::Bearer(&editor),
            Some(postgres("Mine")),
        )
        .await;
    assert_problem(&add, 403, "access.role");
    let change = h
        .call_if_match(
            Method::PATCH,
            &path,
            As::Bearer(&editor),
            Some(json!({ "paused": true })),
            "\"1\"",
        )
        .await;
    assert_problem(&change, 403, "access.role");
    let delete = h
        .call(Method::DELETE, &path, As::Bearer(&editor), None)
        .await;
    assert_problem(&delete, 403, "access.role");
    let grants = h
        .call(
            Method::GET,
            &format!("{path}/grants"),
            As::Bearer(&editor),
            None,
        )
        .await;
    assert_problem(&grants, 403, "access.role");

    // The editor may still read and test it: everyone runs the sample.
    h.call(Method::GET, &path, As::Bearer(&editor), None)
        .await
        .expect(200);
    h.call(
        Method::POST,
        &format!("{path}/test"),
        As::Bearer(&editor),
        None,
    )
    .await
    .expect(204);

    let admin_grants = h
        .call(
            Method::GET,
            &format!("{path}/grants"),
            As::Bearer(&h.admin),
            None,
        )
        .await;
    admin_grants.expect(200);
    assert_eq!(admin_grants.body[0]["access"], "run");
    assert_eq!(admin_grants.body[0]["datasource_id"], ds.as_str());

    let anonymous = h
        .call(Method::GET, "/api/v1/datasources", As::Anonymous, None)
        .await;
    assert_problem(&anonymous, 401, "auth.missing");
}

#[tokio::test]
async fn view_access_browses_but_does_not_test() {
    let h = Harness::new().await;
    let ds = h.sample_datasource().await;
    let (_, viewer) = h.user("viewer@acme.test", Role::Viewer).await;
    let groups = h
        .call(
            Method::GET,
            "/api/v1/groups?q=everyone",
            As::Bearer(&h.admin),
            None,
        )
        .await;
    let everyone = groups.body["items"][0]["id"].as_str().unwrap().to_owned();
    h.call(
        Method::PUT,
        &format!("/api/v1/groups/{everyone}/grants/{ds}"),
        As::Bearer(&h.admin),
        Some(json!({ "access": "view" })),
    )
    .await
    .expect(200);

    let path = format!("/api/v1/datasources/{ds}");
    let read = h.call(Method::GET, &path, As::Bearer(&viewer), None).await;
    read.expect(200);
    assert_eq!(read.body["access"], "view");
    h.call(
        Method::GET,
        &format!("{path}/schema"),
        As::Bearer(&viewer),
        None,
    )
    .await
    .expect(200);
    let test = h
        .call(
            Method::POST,
            &format!("{path}/test"),
            As::Bearer(&viewer),
            None,
        )
        .await;
    assert_problem(&test, 403, "access.view_only");
}

#[tokio::test]
async fn other_organizations_cannot_reach_a_datasource() {
    let h = Harness::new().await;
    let ds = h.sample_datasource().await;
    let path = format!("/api/v1/datasources/{ds}");
    let other = h.other_org_admin().await;

    for (method, suffix) in [
        (Method::GET, ""),
        (Method::DELETE, ""),
        (Method::POST, "/test"),
        (Method::GET, "/schema"),
        (Method::GET, "/grants"),
    ] {
        let reply = h
            .call(
                method.clone(),
                &format!("{path}{suffix}"),
                As::Bearer(&other),
                None,
            )
            .await;
        assert_problem(&reply, 404, "not_found");
    }
    let change = h
        .call_if_match(
            Method::PATCH,
            &path,
            As::Bearer(&other),
            Some(json!({ "name": "Mine now" })),
            "\"1\"",
        )
        .await;
    assert_problem(&change, 404, "not_found");
    let list = h
        .call(Method::GET, "/api/v1/datasources", As::Bearer(&other), None)
        .await;
    list.expect(200);
    assert_eq!(list.body["total"], 0);
    // Their admin cannot grant their groups our datasource.
    let theirs = h
        .call(Method::GET, "/api/v1/groups", As::Bearer(&other), None)
        .await;
    let their_group = theirs.body["items"][0]["id"].as_str().unwrap().to_owned();
    let grant = h
        .call(
            Method::PUT,
            &format!("/api/v1/groups/{their_group}/grants/{ds}"),
            As::Bearer(&other),
            Some(json!({ "access": "run" })),
        )
        .await;
    assert_problem(&grant, 404, "not_found");
    // And it is still ours, unchanged.
    let ours = h.call(Method::GET, &path, As::Bearer(&h.admin), None).await;
    ours.expect(200);
    assert_eq!(ours.body["name"], "Sample data");
}

#[tokio::test]
async fn a_datasource_in_use_is_not_deleted() {
    let h = Harness::new().await;
    let ds = h.sample_datasource().await;
    let query = h
        .call(
            Method::POST,
            "/api/v1/queries",
            As::Bearer(&h.admin),
            Some(json!({ "name": "q", "datasource_id": ds, "sql": "select 1" })),
        )
        .await;
    query.expect(201);
    let in_use = h
        .call(
            Method::DELETE,
            &format!("/api/v1/datasources/{ds}"),
            As::Bearer(&h.admin),
            None,
        )
        .await;
    assert_problem(&in_use, 409, "conflict.in_use");

    let created = create(&h, postgres("Scratch")).await;
    let path = format!(
        "/api/v1/datasources/{}",
        created.body["id"].as_str().unwrap()
    );
    h.call(Method::DELETE, &path, As::Bearer(&h.admin), None)
        .await
        .expect(204);
    let gone = h.call(Method::GET, &path, As::Bearer(&h.admin), None).await;
    assert_problem(&gone, 404, "not_found");
}
