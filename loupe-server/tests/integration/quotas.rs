//! What one user may ask of the deployment, over HTTP (issue 12, finding
//! 9): the deployment's `quotas` settings refuse a schedule that fires too
//! often (422 on `cron`), one enabled schedule too many and one queued run
//! too many (409, each with its code), and let the same requests through
//! below their caps.

use serde_json::{Value, json};

use crate::harness::Harness;

/// A server whose users may have one enabled schedule and two queued runs.
async fn capped() -> Harness {
    Harness::with(|c| {
        c.deployment.quotas.enabled_schedules_per_user = 1;
        c.deployment.quotas.queued_runs_per_user = 2;
    })
    .await
}

/// A saved query on the sample data, as the admin; returns its id.
async fn customers(h: &Harness) -> String {
    let ds = h.sample_datasource().await;
    let body = json!({
        "name": "customers", "datasource_id": ds,
        "sql": "select id from customers where country = {{ country }}",
        "parameters": [{ "name": "country", "type": "text", "default": "FR" }],
    });
    h.admin().post("/queries", body).await.expect(201).id()
}

fn schedule(query_id: &str, cron: &str, enabled: bool) -> Value {
    json!({ "query_id": query_id, "cron": cron, "timezone": "UTC", "enabled": enabled })
}

#[tokio::test]
async fn a_schedule_that_fires_every_second_is_refused_on_its_cron() {
    let h = Harness::new().await;
    let q = customers(&h).await;
    for cron in ["* * * * * *", "*/15 * * * * *"] {
        let refused = h
            .admin()
            .post("/schedules", schedule(&q, cron, true))
            .await
            .invalid("cron");
        assert_eq!(refused.body["errors"][0]["code"], "too_frequent");
    }
    // Once a minute is the default minimum itself.
    let body = schedule(&q, "* * * * *", false);
    h.admin().post("/schedules", body).await.expect(201);
}

#[tokio::test]
async fn one_enabled_schedule_too_many_is_a_conflict() {
    let h = capped().await;
    let q = customers(&h).await;
    h.admin()
        .post("/schedules", schedule(&q, "0 6 * * *", true))
        .await
        .expect(201);
    let refused = h
        .admin()
        .post("/schedules", schedule(&q, "0 7 * * *", true))
        .await
        .problem(409, "schedule.too_many_enabled");
    assert!(
        refused.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("disable or delete")),
        "{}",
        refused.text()
    );
    // A disabled one does not count; enabling it does.
    let off = h
        .admin()
        .post("/schedules", schedule(&q, "0 7 * * *", false))
        .await
        .expect(201);
    h.admin()
        .if_match("\"1\"")
        .post_empty(&format!("/schedules/{}/enable", off.id()))
        .await
        .problem(409, "schedule.too_many_enabled");
}

#[tokio::test]
async fn one_queued_run_too_many_is_a_conflict_but_joins_are_not() {
    let h = capped().await;
    let q = customers(&h).await;
    let run = |country: &str| json!({ "parameters": { "country": country } });
    let path = format!("/queries/{q}/runs");
    let first = h.admin().post(&path, run("FR")).await.expect(202);
    h.admin().post(&path, run("DE")).await.expect(202);
    let refused = h
        .admin()
        .post(&path, run("IT"))
        .await
        .problem(409, "run.too_many_queued");
    assert!(
        refused.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("2 runs waiting")),
        "{}",
        refused.text()
    );
    let ds = h.sample_datasource().await;
    h.admin()
        .post("/runs", json!({ "datasource_id": ds, "sql": "select 1" }))
        .await
        .problem(409, "run.too_many_queued");
    // The same start again joins the run in flight: nothing new waits.
    let joined = h.admin().post(&path, run("FR")).await.expect(200);
    assert_eq!(joined.body["run"]["id"], first.body["run"]["id"]);
    assert_eq!(joined.body["how"], "joined");
}
