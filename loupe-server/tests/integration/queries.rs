//! `/queries`: saved queries, versions, revert, fork, runs.

use loupe_services::Role;
use poem::http::Method;
use serde_json::json;

use crate::harness::{As, Harness, assert_problem};

#[tokio::test]
async fn a_saved_query_runs_with_its_parameters() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let ds = h.sample_datasource().await;
    let created = h
        .call(
            Method::POST,
            "/api/v1/queries",
            As::Bearer(&h.admin),
            Some(json!({
                "name": "Customers of a country",
                "datasource_id": ds,
                "sql": "select count(*) as n from customers where country = {{ country }}",
                "parameters": [{ "name": "country", "type": "text", "default": "FR" }]
            })),
        )
        .await;
    created.expect(201);
    assert_eq!(created.header("etag"), Some("\"1\""));
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["parameters"][0]["type"], "text");

    let run = h
        .call(
            Method::POST,
            &format!("/api/v1/queries/{id}/runs"),
            As::Bearer(&h.admin),
            Some(json!({ "parameters": { "country": "DE" } })),
        )
        .await;
    run.expect(202);
    assert_eq!(run.body["how"], "queued");
    let run_id = run.body["run"]["id"].as_str().unwrap().to_owned();
    let done = h.wait_run(&h.admin, &run_id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["rows"], 1);

    // The same values within max_age: answered from the result.
    let again = h
        .call(
            Method::POST,
            &format!("/api/v1/queries/{id}/runs"),
            As::Bearer(&h.admin),
            Some(json!({ "parameters": { "country": "DE" }, "max_age_seconds": 600 })),
        )
        .await;
    again.expect(200);
    assert_eq!(again.body["how"], "cached");
    assert_eq!(again.body["run"]["id"], run_id.as_str());
}

#[tokio::test]
async fn updates_need_the_current_etag() {
    let h = Harness::new().await;
    let ds = h.sample_datasource().await;
    let created = h
        .call(
            Method::POST,
            "/api/v1/queries",
            As::Bearer(&h.admin),
            Some(json!({ "name": "q", "datasource_id": ds, "sql": "select 1" })),
        )
        .await;
    let path = format!("/api/v1/queries/{}", created.body["id"].as_str().unwrap());
    let change = || Some(json!({ "sql": "select 2" }));

    let missing = h
        .call(Method::PATCH, &path, As::Bearer(&h.admin), change())
        .await;
    assert_problem(&missing, 428, "precondition.required");

    let first = h
        .call_if_match(
            Method::PATCH,
            &path,
            As::Bearer(&h.admin),
            change(),
            "\"1\"",
        )
        .await;
    first.expect(200);
    assert_eq!(first.header("etag"), Some("\"2\""));
    assert_eq!(first.body["version"], 2);

    // A second writer that read revision 1 loses, and is told why.
    let stale = h
        .call_if_match(
            Method::PATCH,
            &path,
            As::Bearer(&h.admin),
            change(),
            "\"1\"",
        )
        .await;
    assert_problem(&stale, 412, "conflict.revision");

    let versions = h
        .call(
            Method::GET,
            &format!("{path}/versions"),
            As::Bearer(&h.admin),
            None,
        )
        .await;
    versions.expect(200);
    assert_eq!(versions.body.as_array().map(Vec::len), Some(2));

    let reverted = h
        .call_if_match(
            Method::POST,
            &format!("{path}/revert"),
            As::Bearer(&h.admin),
            Some(json!({ "version": 1 })),
            "\"2\"",
        )
        .await;
    reverted.expect(200);
    assert_eq!(reverted.body["sql"], "select 1");
    assert_eq!(reverted.body["version"], 3);
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let h = Harness::new().await;
    let ds = h.sample_datasource().await;
    let bad = h
        .call(
            Method::POST,
            "/api/v1/queries",
            As::Bearer(&h.admin),
            Some(json!({
                "name": "q", "datasource_id": ds, "sql": "select {{ x }}",
                "parameters": [{ "name": "x", "type": "colour" }]
            })),
        )
        .await;
    assert_problem(&bad, 422, "validation.failed");
    assert_eq!(bad.body["errors"][0]["field"], "parameters[0]");

    let empty_name = h
        .call(
            Method::POST,
            "/api/v1/queries",
            As::Bearer(&h.admin),
            Some(json!({ "name": "", "datasource_id": ds, "sql": "select 1" })),
        )
        .await;
    assert_eq!(empty_name.status, 400, "{}", empty_name.text());
    assert_eq!(
        empty_name.header("content-type"),
        Some("application/problem+json")
    );
}

#[tokio::test]
async fn viewers_cannot_save_queries_and_other_orgs_see_nothing() {
    let h = Harness::new().await;
    let ds = h.sample_datasource().await;
    let (_, viewer) = h.user("viewer@acme.test", Role::Viewer).await;
    let refused = h
        .call(
            Method::POST,
            "/api/v1/queries",
            As::Bearer(&viewer),
            Some(json!({ "name": "q", "datasource_id": ds, "sql": "select 1" })),
        )
        .await;
    assert_problem(&refused, 403, "access.role");

    let created = h
        .call(
            Method::POST,
            "/api/v1/queries",
            As::Bearer(&h.admin),
            Some(json!({ "name": "q", "datasource_id": ds, "sql": "select 1" })),
        )
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();

    // An admin of another organization: not found, not forbidden.
    let other = h.other_org_admin().await;
    let hidden = h
        .call(
            Method::GET,
            &format!("/api/v1/queries/{id}"),
            As::Bearer(&other),
            None,
        )
        .await;
    assert_problem(&hidden, 404, "not_found");
    let list = h
        .call(Method::GET, "/api/v1/queries", As::Bearer(&other), None)
        .await;
    list.expect(200);
    assert_eq!(list.body["total"], 0);
}

#[tokio::test]
async fn forks_belong_to_the_caller() {
    let h = Harness::new().await;
    let ds = h.sample_datasource().await;
    let (editor_id, editor) = h.user("editor@acme.test", Role::Editor).await;
    let created = h
        .call(
            Method::POST,
            "/api/v1/queries",
            As::Bearer(&h.admin),
            Some(json!({ "name": "q", "datasource_id": ds, "sql": "select 1" })),
        )
        .await;
    let id = created.body["id"].as_str().unwrap();
    let fork = h
        .call(
            Method::POST,
            &format!("/api/v1/queries/{id}/fork"),
            As::Bearer(&editor),
            None,
        )
        .await;
    fork.expect(201);
    assert_eq!(fork.body["owner_id"], editor_id.as_str());
    let deleted = h
        .call(
            Method::DELETE,
            &format!("/api/v1/queries/{id}"),
            As::Bearer(&editor),
            None,
        )
        .await;
    assert_problem(&deleted, 403, "access.owner");
}
