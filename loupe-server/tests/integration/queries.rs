//! `/queries`: saved queries, versions, revert, fork, runs.

use loupe_services::Role;
use poem::http::Method;
use serde_json::{Value, json};

use crate::harness::Harness;

/// The simplest saved query on datasource `ds`.
fn select_one(ds: &str) -> Value {
    json!({ "name": "q", "datasource_id": ds, "sql": "select 1" })
}

#[tokio::test]
async fn a_saved_query_runs_with_its_parameters() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let ds = h.sample_datasource().await;
    let created = h
        .admin()
        .post(
            "/queries",
            json!({
                "name": "Customers of a country",
                "datasource_id": ds,
                "sql": "select count(*) as n from customers where country = {{ country }}",
                "parameters": [{ "name": "country", "type": "text", "default": "FR" }]
            }),
        )
        .await
        .expect(201);
    assert_eq!(created.header("etag"), Some("\"1\""));
    let runs = format!("/queries/{}/runs", created.id());
    assert_eq!(created.body["parameters"][0]["type"], "text");

    let run = h
        .admin()
        .post(&runs, json!({ "parameters": { "country": "DE" } }))
        .await
        .expect(202);
    assert_eq!(run.body["how"], "queued");
    let run_id = run.body["run"]["id"].as_str().unwrap().to_owned();
    let done = h.wait_run(&h.admin, &run_id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["rows"], 1);

    // The same values within max_age: answered from the result.
    let again = h
        .admin()
        .post(
            &runs,
            json!({ "parameters": { "country": "DE" }, "max_age_seconds": 600 }),
        )
        .await
        .expect(200);
    assert_eq!(again.body["how"], "cached");
    assert_eq!(again.body["run"]["id"], run_id.as_str());
}

#[tokio::test]
async fn updates_need_the_current_etag() {
    let h = Harness::new().await;
    let ds = h.sample_datasource().await;
    let created = h.admin().post("/queries", select_one(&ds)).await;
    let path = format!("/queries/{}", created.body["id"].as_str().unwrap());
    let change = || json!({ "sql": "select 2" });
    // A second writer that read revision 1 loses, and is told why.
    let first = h
        .admin()
        .update_guarded_by_etag(Method::PATCH, &path, change(), change())
        .await;
    assert_eq!(first.header("etag"), Some("\"2\""));
    assert_eq!(first.body["version"], 2);

    let versions = h.admin().get(&format!("{path}/versions")).await.expect(200);
    assert_eq!(versions.body.as_array().map(Vec::len), Some(2));

    let reverted = h
        .admin()
        .if_match("\"2\"")
        .post(&format!("{path}/revert"), json!({ "version": 1 }))
        .await
        .expect(200);
    assert_eq!(reverted.body["sql"], "select 1");
    assert_eq!(reverted.body["version"], 3);
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let h = Harness::new().await;
    let ds = h.sample_datasource().await;
    h.admin()
        .post(
            "/queries",
            json!({
                "name": "q", "datasource_id": ds, "sql": "select {{ x }}",
                "parameters": [{ "name": "x", "type": "colour" }]
            }),
        )
        .await
        .invalid("parameters[0]");

    h.admin()
        .post(
            "/queries",
            json!({ "name": "", "datasource_id": ds, "sql": "select 1" }),
        )
        .await
        .problem_json(400);
}

#[tokio::test]
async fn viewers_cannot_save_queries_and_other_orgs_see_nothing() {
    let h = Harness::new().await;
    let ds = h.sample_datasource().await;
    let (_, viewer) = h.user("viewer@acme.test", Role::Viewer).await;
    h.bearer(&viewer)
        .post("/queries", select_one(&ds))
        .await
        .problem(403, "access.role");

    let id = h.admin().post("/queries", select_one(&ds)).await.id();

    // An admin of another organization: not found, not forbidden.
    let other = h.other_org_admin().await;
    h.bearer(&other)
        .get(&format!("/queries/{id}"))
        .await
        .problem(404, "not_found");
    let list = h.bearer(&other).get("/queries").await.expect(200);
    assert_eq!(list.body["total"], 0);
}

#[tokio::test]
async fn forks_belong_to_the_caller() {
    let h = Harness::new().await;
    let ds = h.sample_datasource().await;
    let (editor_id, editor) = h.user("editor@acme.test", Role::Editor).await;
    let id = h.admin().post("/queries", select_one(&ds)).await.id();
    let fork = h
        .bearer(&editor)
        .post_empty(&format!("/queries/{id}/fork"))
        .await
        .expect(201);
    assert_eq!(fork.body["owner_id"], editor_id.as_str());
    h.bearer(&editor)
        .delete(&format!("/queries/{id}"))
        .await
        .problem(403, "access.owner");
}
