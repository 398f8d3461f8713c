//! Alerts and subscriptions over HTTP, in process: every kind of alert
//! condition comes back as it was given; the lists filter, sort and page
//! as the document says; conditions that cannot be evaluated are refused
//! by field.

use serde_json::{Value, json};

use crate::harness::{Caller, Harness, id_of};

/// A datasource (never reached: nothing here runs), a query on it and a
/// webhook destination; returns the query's and the destination's ids.
async fn query_and_destination(admin: &Caller<'_>) -> (String, String) {
    let datasource = admin
        .post(
            "/datasources",
            json!({
                "name": "warehouse", "kind": "postgres",
                "options": { "host": "127.0.0.1", "port": 1, "user": "u", "database": "d" }
            }),
        )
        .await
        .expect(201);
    let query = admin
        .post(
            "/queries",
            json!({ "name": "sales", "datasource_id": id_of(&datasource.body), "sql": "select 1 as n" }),
        )
        .await
        .expect(201);
    let destination = admin
        .post(
            "/destinations",
            json!({ "name": "hook", "settings": { "kind": "webhook", "url": "https://10.1.2.3/hook" } }),
        )
        .await
        .expect(201);
    (id_of(&query.body), id_of(&destination.body))
}

/// The names in a list reply, in order.
fn names(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn every_alert_condition_round_trips_and_the_lists_filter_and_page() {
    let h = Harness::new().await;
    let admin = h.admin();
    let (query, destination) = query_and_destination(&admin).await;
    let conditions = [
        (
            "a count",
            json!({ "kind": "row_count", "op": ">=", "value": 3.0 }),
        ),
        (
            "b any text",
            json!({ "kind": "rows", "quantifier": "any", "column": "region", "op": "=", "value": "EU" }),
        ),
        (
            "c all numbers",
            json!({ "kind": "rows", "quantifier": "all", "column": "n", "op": "<", "value": 5.5 }),
        ),
        (
            "d no flags",
            json!({ "kind": "rows", "quantifier": "none", "column": "ok", "op": "!=", "value": true }),
        ),
        (
            "e changed",
            json!({ "kind": "change", "column": "n", "change": "changed" }),
        ),
        (
            "f up by amount",
            json!({ "kind": "change", "column": "n", "change": "increased", "by": { "amount": 10.0 } }),
        ),
        (
            "g down by percent",
            json!({ "kind": "change", "column": "n", "change": "decreased", "by": { "percent": 25.0 } }),
        ),
    ];
    for (i, (name, condition)) in conditions.iter().enumerate() {
        let created = admin
            .post(
                "/alerts",
                json!({
                    "query_id": query, "name": name, "condition": condition,
                    "destinations": [destination], "enabled": i % 2 == 0,
                }),
            )
            .await
            .expect(201);
        let read = admin
            .get(&format!("/alerts/{}", id_of(&created.body)))
            .await;
        assert_eq!(read.expect(200).body["condition"], *condition, "{name}");
    }

    let all = admin.get("/alerts?sort=name").await.expect(200);
    assert_eq!(all.body["total"], 7);
    assert_eq!(names(&all.body)[0], "a count");
    let page = admin
        .get("/alerts?sort=-name&limit=2&offset=1")
        .await
        .expect(200);
    assert_eq!(names(&page.body), ["f up by amount", "e changed"]);
    assert_eq!(page.body["total"], 7);
    let disabled = admin
        .get("/alerts?enabled=false&sort=name")
        .await
        .expect(200);
    assert_eq!(
        names(&disabled.body),
        ["b any text", "d no flags", "f up by amount"]
    );
    let on_query = admin.get(&format!("/alerts?query={query}")).await;
    assert_eq!(on_query.expect(200).body["total"], 7);
    let elsewhere = admin.get("/alerts?query=no-such-query").await.expect(200);
    assert_eq!(elsewhere.body["total"], 0);
    let unknown = admin.get("/alerts?state=unknown").await.expect(200);
    assert_eq!(unknown.body["total"], 7, "never evaluated");
    let later = admin
        .get("/alerts?created_after=2999-01-01T00:00:00Z")
        .await
        .expect(200);
    assert_eq!(later.body["total"], 0);
}

#[tokio::test]
async fn conditions_that_cannot_be_evaluated_are_refused_by_field() {
    let h = Harness::new().await;
    let admin = h.admin();
    let (query, destination) = query_and_destination(&admin).await;
    let alert = |condition: Value| {
        json!({
            "query_id": query, "name": "bad", "condition": condition,
            "destinations": [destination],
        })
    };
    let object_value = json!({ "kind": "rows", "quantifier": "any", "column": "n", "op": "=", "value": { "a": 1 } });
    admin
        .post("/alerts", alert(object_value))
        .await
        .invalid("condition.value");
    let both = json!({ "kind": "change", "column": "n", "change": "increased", "by": { "amount": 1.0, "percent": 2.0 } });
    admin
        .post("/alerts", alert(both))
        .await
        .invalid("condition.by");
    let neither = json!({ "kind": "change", "column": "n", "change": "increased", "by": {} });
    admin
        .post("/alerts", alert(neither))
        .await
        .invalid("condition.by");
    let listed = admin.get("/alerts").await.expect(200);
    assert_eq!(listed.body["total"], 0, "nothing was saved");
}

#[tokio::test]
async fn the_subscription_list_filters_by_target_and_state_and_pages() {
    let h = Harness::new().await;
    let admin = h.admin();
    let (query, destination) = query_and_destination(&admin).await;
    for (i, name) in ["daily", "hourly", "weekly"].iter().enumerate() {
        admin
            .post(
                "/subscriptions",
                json!({
                    "name": name, "target_kind": "query", "target_id": query,
                    "cron": "30 2 * * *", "timezone": "UTC", "destinations": [destination],
                    "enabled": i != 1,
                }),
            )
            .await
            .expect(201);
    }
    let all = admin.get("/subscriptions?sort=-name").await.expect(200);
    assert_eq!(names(&all.body), ["weekly", "hourly", "daily"]);
    let page = admin
        .get("/subscriptions?sort=name&limit=1&offset=1")
        .await
        .expect(200);
    assert_eq!(names(&page.body), ["hourly"]);
    assert_eq!(page.body["total"], 3);
    let off = admin.get("/subscriptions?enabled=false").await.expect(200);
    assert_eq!(names(&off.body), ["hourly"]);
    let on_query = admin
        .get(&format!("/subscriptions?target_kind=query&target={query}"))
        .await
        .expect(200);
    assert_eq!(on_query.body["total"], 3);
    let dashboards = admin
        .get("/subscriptions?target_kind=dashboard")
        .await
        .expect(200);
    assert_eq!(dashboards.body["total"], 0);
}
