//! Tenant isolation over HTTP, generated from the API document: for every
//! operation whose path names an object, a caller of one organization gets
//! 404 for each object of another organization, by every method the
//! document lists. A new endpoint is covered as soon as it is documented;
//! one with a path parameter this file cannot fill fails here until it can.

use std::collections::BTreeMap;

use poem::http::Method;
use serde_json::{Value, json};

use crate::harness::{Caller, Harness, Reply, id_of};

/// Objects of one organization, by the resource a path parameter names.
type Objects = BTreeMap<&'static str, String>;

/// The resource a path parameter of `path` names: `{id}` the path's own,
/// the others by their name.
fn resource(path: &str, param: &str) -> &'static str {
    let own = path.split('/').nth(1).unwrap_or_default();
    match (param, own) {
        ("user_id", _) => "users",
        ("datasource_id", _) => "datasources",
        ("share_id", _) => "shares",
        ("slug", "dashboards") => "dashboard-slugs",
        ("id", "alerts") => "alerts",
        ("id", "api-keys") => "api-keys",
        ("id", "canvases") => "canvases",
        ("id", "dashboards") => "dashboards",
        ("id", "datasources") => "datasources",
        ("id", "deliveries") => "deliveries",
        ("id", "destinations") => "destinations",
        ("id", "embedding") => "embedding-secrets",
        ("id", "groups") => "groups",
        ("id", "queries") => "queries",
        ("id", "runs") => "runs",
        ("id", "schedules") => "schedules",
        ("id", "subscriptions") => "subscriptions",
        ("id", "users") => "users",
        ("id", "visualizations") => "visualizations",
        _ => panic!(
            "{path}: no objects for the path parameter {{{param}}}; teach tenancy.rs to make one"
        ),
    }
}

/// One of everything the document's paths name, made by `caller` through
/// the API.
async fn objects(caller: &Caller<'_>, tag: &str) -> Objects {
    let created = |reply: Reply| reply.expect_created();
    let mut o = Objects::new();
    let datasource = created(
        caller
            .post(
                "/datasources",
                json!({
                    "name": format!("{tag} warehouse"), "kind": "postgres",
                    "options": { "host": "127.0.0.1", "port": 1, "user": "u", "database": "d" }
                }),
            )
            .await,
    );
    o.insert("datasources", id_of(&datasource.body));
    let query = created(
        caller
            .post(
                "/queries",
                json!({ "name": format!("{tag} query"), "datasource_id": o["datasources"], "sql": "select 1" }),
            )
            .await,
    );
    o.insert("queries", id_of(&query.body));
    let path = format!("/queries/{}/runs", o["queries"]);
    let run = created(caller.post(&path, json!({})).await);
    o.insert(
        "runs",
        run.body["run"]["id"]
            .as_str()
            .map_or_else(|| id_of(&run.body), str::to_owned),
    );
    let schedule = json!({ "query_id": o["queries"], "cron": "30 2 * * *", "timezone": "UTC" });
    let schedule = created(caller.post("/schedules", schedule).await);
    o.insert("schedules", id_of(&schedule.body));
    let visualization = json!({ "query_id": o["queries"], "type": "table", "name": "rows" });
    let visualization = created(caller.post("/visualizations", visualization).await);
    o.insert("visualizations", id_of(&visualization.body));
    let dashboard = json!({ "name": format!("{tag} board"), "slug": format!("{tag}-board") });
    let dashboard = created(caller.post("/dashboards", dashboard).await);
    o.insert("dashboards", id_of(&dashboard.body));
    o.insert(
        "dashboard-slugs",
        dashboard.body["slug"].as_str().unwrap().to_owned(),
    );
    let canvas = created(
        caller
            .post("/canvases", json!({ "name": format!("{tag} canvas") }))
            .await,
    );
    o.insert("canvases", id_of(&canvas.body));
    let group = created(
        caller
            .post("/groups", json!({ "name": format!("{tag} group") }))
            .await,
    );
    o.insert("groups", id_of(&group.body));
    let user = json!({ "email": format!("viewer@{tag}.test"), "name": "Vi", "role": "viewer" });
    let user = created(caller.post("/users", user).await);
    o.insert("users", id_of(&user.body["user"]).clone());
    let key = json!({ "name": format!("{tag} key"), "scopes": ["read"] });
    let key = created(caller.post("/api-keys", key).await);
    o.insert("api-keys", id_of(&key.body["key"]));
    // A destination that the default egress rules refuse (a private
    // address), so its test fails at once but is logged.
    let destination = json!({
        "name": format!("{tag} hook"),
        "settings": { "kind": "webhook", "url": "https://10.1.2.3/hook" },
    });
    let destination = created(caller.post("/destinations", destination).await);
    o.insert("destinations", id_of(&destination.body));
    let alert = json!({
        "query_id": o["queries"], "name": format!("{tag} alert"),
        "condition": { "kind": "row_count", "op": ">", "value": 1 },
        "destinations": [o["destinations"]],
    });
    let alert = created(caller.post("/alerts", alert).await);
    o.insert("alerts", id_of(&alert.body));
    let subscription = json!({
        "name": format!("{tag} report"), "target_kind": "query", "target_id": o["queries"],
        "cron": "30 2 * * *", "timezone": "UTC", "destinations": [o["destinations"]],
    });
    let subscription = created(caller.post("/subscriptions", subscription).await);
    o.insert("subscriptions", id_of(&subscription.body));
    let test = format!("/destinations/{}/test", o["destinations"]);
    let delivery = created(caller.post(&test, json!({})).await);
    o.insert("deliveries", id_of(&delivery.body));
    let share = format!("/queries/{}/share", o["queries"]);
    let share = created(caller.post(&share, json!({ "max_age_seconds": 60 })).await);
    o.insert("shares", id_of(&share.body["share"]));
    let secret = created(caller.post_empty("/embedding/secrets").await);
    o.insert("embedding-secrets", id_of(&secret.body["secret"]));
    o
}

/// Paths whose token is the authority, not a caller: a link's or an
/// embedding token's refusals are tested with them (`links`, `sharing`).
fn token_path(path: &str) -> bool {
    ["/links/", "/public/", "/embed/"]
        .iter()
        .any(|prefix| path.starts_with(prefix))
}

impl Reply {
    /// Asserts a 2xx answer (201 or 202 for what is made).
    #[track_caller]
    fn expect_created(self) -> Self {
        assert!((200..300).contains(&self.status), "{}", self.text());
        self
    }
}

/// A body the schema accepts, as small as it can be, with the fields that
/// name other objects filled from `own` (the caller's own objects), so
/// that only the path can make the request fail.
fn minimal(doc: &Value, schema: &Value, own: &Objects, field: &str) -> Value {
    let schema = match schema["$ref"].as_str() {
        Some(target) => {
            let name = target.trim_start_matches("#/components/schemas/");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    };
    match field {
        "query_id" => return json!(own["queries"]),
        "datasource_id" => return json!(own["datasources"]),
        "visualization_id" => return json!(own["visualizations"]),
        "target_id" => return json!(own["queries"]),
        "destinations" => return json!([own["destinations"]]),
        "sql" => return json!("select 1"),
        "cron" => return json!("30 2 * * *"),
        "timezone" => return json!("UTC"),
        "email" => return json!("someone@acme.test"),
        _ => {}
    }
    if let Some(parts) = schema["allOf"].as_array() {
        // The parts of an object (a union's tag and its fields) merge.
        let parts: Vec<Value> = parts
            .iter()
            .map(|p| minimal(doc, p, own, field))
            .filter(|v| !v.is_null())
            .collect();
        if parts.iter().all(Value::is_object) {
            let merged: serde_json::Map<String, Value> = parts
                .into_iter()
                .filter_map(|p| match p {
                    Value::Object(members) => Some(members),
                    _ => None,
                })
                .flatten()
                .collect();
            return Value::Object(merged);
        }
        return parts.into_iter().next().unwrap_or(Value::Null);
    }
    if let Some(forms) = schema["oneOf"].as_array() {
        return minimal(doc, &forms[0], own, field);
    }
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    match schema["type"].as_str() {
        Some("string") => {
            let n = schema["minLength"].as_u64().unwrap_or(1).max(1) as usize;
            json!("x".repeat(n))
        }
        Some("integer") | Some("number") => json!(schema["minimum"].as_u64().unwrap_or(1).max(1)),
        Some("boolean") => json!(false),
        Some("array") => json!([]),
        Some("object") => {
            let mut body = serde_json::Map::new();
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap();
                let property = &schema["properties"][name];
                body.insert(name.to_owned(), minimal(doc, property, own, name));
            }
            Value::Object(body)
        }
        _ => Value::Null,
    }
}

/// Every operation with path parameters: (method, path, parameter names,
/// operation).
fn operations_with_ids(doc: &Value) -> Vec<(Method, String, Vec<String>, Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let params: Vec<String> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect();
            if !params.is_empty() {
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                found.push((method, path.clone(), params, op.clone()));
            }
        }
    }
    found
}

fn fill(path: &str, ids: &[(String, String)]) -> String {
    let mut filled = path.to_owned();
    for (param, id) in ids {
        filled = filled.replace(&format!("{{{param}}}"), id);
    }
    filled
}

#[tokio::test]
async fn a_caller_of_one_organization_gets_404_for_every_object_of_another() {
    let h = Harness::new().await;
    let doc = h.anonymous().get("/openapi.json").await.expect(200).body;
    let other_token = h.other_org_admin().await;
    let other = h.bearer(&other_token);
    let theirs = objects(&other, "other").await;
    let ours = objects(&h.admin(), "acme").await;

    let operations = operations_with_ids(&doc);
    assert!(operations.len() > 40, "{} operations", operations.len());
    let mut leaks = Vec::new();
    let mut checked = 0;
    for (method, path, params, op) in &operations {
        // Signed links, public links and embedding tokens name no caller:
        // the token is the authority.
        if token_path(path) {
            continue;
        }
        let resources: Vec<&str> = params.iter().map(|p| resource(path, p)).collect();
        let body = op["requestBody"]["content"]
            .as_object()
            .and_then(|c| c.values().next())
            .map(|media| minimal(&doc, &media["schema"], &ours, ""));
        let needs_if_match = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["in"] == "header" && p["name"] == "If-Match");
        // Each path parameter from the other organization, the rest ours:
        // one at a time, then all together.
        let mut choices: Vec<Vec<bool>> = (0..params.len())
            .map(|i| (0..params.len()).map(|j| i == j).collect())
            .collect();
        if params.len() > 1 {
            choices.push(vec![true; params.len()]);
        }
        for choice in choices {
            let ids: Vec<(String, String)> = params
                .iter()
                .zip(&resources)
                .zip(&choice)
                .map(|((param, resource), foreign)| {
                    let from = if *foreign { &theirs } else { &ours };
                    (param.clone(), from[resource].clone())
                })
                .collect();
            let url = fill(path, &ids);
            let caller = h.admin();
            let caller = if needs_if_match {
                caller.if_match("\"1\"")
            } else {
                caller
            };
            let reply = caller.send(method.clone(), &url, body.clone()).await;
            checked += 1;
            if reply.status != 404
                || reply.header("content-type") != Some("application/problem+json")
            {
                leaks.push(format!(
                    "{method} {url} ({path}): {} {}",
                    reply.status,
                    reply.text()
                ));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "answered other than 404:\n{}",
        leaks.join("\n")
    );

    // The ids are real: their own organization finds them.
    for (method, path, params, _) in &operations {
        if *method != Method::GET || token_path(path) {
            continue;
        }
        let ids: Vec<(String, String)> = params
            .iter()
            .map(|p| (p.clone(), theirs[resource(path, p)].clone()))
            .collect();
        let url = fill(path, &ids);
        let reply = other.get(&url).await;
        // A query's latest result is 404 until a run of it succeeds; its
        // own code says the query was found.
        let found = reply.status != 404 || reply.code() == "result.none_yet";
        assert!(found, "{url} as its own organization: {}", reply.text());
    }
    eprintln!("{checked} cross-organization requests, every one 404");
}
