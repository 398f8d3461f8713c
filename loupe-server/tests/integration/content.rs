//! `/schedules`, `/visualizations`, `/dashboards` (with "run all widgets")
//! and `/canvases`.

use chrono::{DateTime, Timelike, Utc};
use loupe_services::{Role, parse_timezone};
use poem::http::Method;
use serde_json::{Value, json};

use crate::harness::{Harness, Reply};

/// Saves a query as `token`; returns its id.
async fn query(h: &Harness, token: &str, sql: &str, parameters: Value) -> String {
    let ds = h.sample_datasource().await;
    let body = json!({
        "name": "customers", "datasource_id": ds, "sql": sql, "parameters": parameters
    });
    h.bearer(token)
        .post("/queries", body)
        .await
        .expect(201)
        .id()
}

/// Saves, as the admin, the ids of the customers of a country, the query's
/// one parameter defined as `country`; returns its id.
async fn customers_of(h: &Harness, country: Value) -> String {
    let sql = "select id from customers where country = {{ country }}";
    query(h, &h.admin, sql, json!([country])).await
}

/// A table visualization of `query_id`; returns its id.
async fn table(h: &Harness, token: &str, query_id: &str) -> String {
    let body = json!({ "query_id": query_id, "type": "table", "name": "rows" });
    h.bearer(token)
        .post("/visualizations", body)
        .await
        .expect(201)
        .id()
}

/// Creates `body` at `path` as the admin; returns the reply.
async fn create(h: &Harness, path: &str, body: Value) -> Reply {
    h.admin().post(path, body).await
}

fn fields(reply: &Reply) -> Vec<String> {
    reply.body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not a time: {value}"))
}

async fn put(h: &Harness, path: &str, token: &str, body: Value, etag: &str) -> Reply {
    h.bearer(token).if_match(etag).put(path, body).await
}

async fn post_if(h: &Harness, path: &str, etag: &str) -> Reply {
    h.admin().if_match(etag).post_empty(path).await
}

/// Deletes `path` as the admin, and checks it is gone.
async fn delete_and_check_gone(h: &Harness, path: &str) {
    h.admin().delete(path).await.expect(204);
    h.admin().get(path).await.problem(404, "not_found");
}

#[tokio::test]
async fn a_schedule_is_enabled_and_disabled_with_its_etag() {
    let h = Harness::new().await;
    let q = customers_of(&h, json!({ "name": "country", "type": "text" })).await;
    let created = create(
        &h,
        "/schedules",
        json!({
            "query_id": q, "cron": "30 2 * * *", "timezone": "Europe/Berlin",
            "parameters": { "country": "NL" }
        }),
    )
    .await
    .expect(201);
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert_eq!(created.body["enabled"], true, "enabled by default");
    assert_eq!(created.body["parameters"]["country"], "NL");
    assert_eq!(created.body["cron"], "30 2 * * *");
    let next = time(&created.body["next_run_at"]);
    assert!(next > Utc::now());
    let berlin = next.with_timezone(&parse_timezone("Europe/Berlin").expect("a time zone"));
    assert_eq!(
        (berlin.hour(), berlin.minute()),
        (2, 30),
        "read in Berlin time"
    );
    assert!(created.body["last_run_at"].is_null());
    let path = format!("/schedules/{}", created.id());

    let disabled = post_if(&h, &format!("{path}/disable"), "\"1\"")
        .await
        .expect(200);
    assert_eq!(disabled.header("etag"), Some("\"2\""));
    assert_eq!(disabled.body["enabled"], false);
    assert!(
        disabled.body["next_run_at"].is_null(),
        "{}",
        disabled.text()
    );
    assert_eq!(
        disabled.body["parameters"]["country"], "NL",
        "settings stay"
    );

    let listed = h
        .admin()
        .get(&format!("/schedules?enabled=false&query={q}"))
        .await
        .expect(200);
    assert_eq!(listed.body["total"], 1);
    assert_eq!(listed.body["items"][0]["enabled"], false);

    post_if(&h, &format!("{path}/enable"), "\"1\"")
        .await
        .problem(412, "conflict.revision");
    let enabled = post_if(&h, &format!("{path}/enable"), "\"2\"")
        .await
        .expect(200);
    assert_eq!(enabled.header("etag"), Some("\"3\""));
    assert_eq!(enabled.body["enabled"], true);
    assert_eq!(time(&enabled.body["next_run_at"]), next);

    let none = h.admin().get("/schedules?enabled=false").await;
    assert_eq!(none.body["total"], 0);

    // A whole update moves the next fire time.
    let moved = put(
        &h,
        &path,
        &h.admin,
        json!({ "query_id": q, "cron": "0 0 6 * * *", "timezone": "UTC",
                "parameters": { "country": "DE" } }),
        "\"3\"",
    )
    .await
    .expect(200);
    assert_eq!(moved.body["timezone"], "UTC");
    assert_eq!(time(&moved.body["next_run_at"]).hour(), 6);
    assert_eq!(moved.body["parameters"]["country"], "DE");

    delete_and_check_gone(&h, &path).await;
}

#[tokio::test]
async fn schedule_errors_name_the_cron_and_time_zone_fields() {
    let h = Harness::new().await;
    let q = query(&h, &h.admin, "select 1 as one", json!([])).await;
    let bad = create(
        &h,
        "/schedules",
        json!({ "query_id": q, "cron": "61 * * * *", "timezone": "Mars/Olympus" }),
    )
    .await
    .problem(422, "validation.failed");
    assert_eq!(fields(&bad), ["cron", "timezone"]);

    let no_query = create(
        &h,
        "/schedules",
        json!({ "query_id": "nope", "cron": "* * * *", "timezone": "UTC" }),
    )
    .await
    .problem(422, "validation.failed");
    assert_eq!(fields(&no_query), ["cron", "query_id"]);

    h.admin()
        .post_empty("/schedules/whatever/enable")
        .await
        .problem(428, "precondition.required");
}

#[tokio::test]
async fn a_visualization_is_created_changed_and_deleted() {
    let h = Harness::new().await;
    let q = query(
        &h,
        &h.admin,
        "select country, count(*) as n from customers group by country",
        json!([]),
    )
    .await;
    let created = create(
        &h,
        "/visualizations",
        json!({
            "query_id": q, "type": "bar", "name": "By country",
            "options": { "x": "country", "y": ["n"] }
        }),
    )
    .await
    .expect(201);
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert_eq!(created.body["type"], "bar");
    assert_eq!(created.body["options"]["y"], json!(["n"]));
    assert_eq!(created.body["query_id"], q.as_str());
    let path = format!("/visualizations/{}", created.id());

    let got = h.admin().get(&path).await.expect(200);
    assert_eq!(got.header("etag"), Some("\"1\""));
    assert_eq!(got.body["name"], "By country");

    let bars = h.admin().get("/visualizations?type=bar").await;
    assert_eq!(bars.body["total"], 1);
    let pies = h.admin().get("/visualizations?type=pie").await;
    assert_eq!(pies.body["total"], 0);

    let pie = json!({
        "query_id": q, "type": "pie", "name": "Share",
        "options": { "label": "country", "value": "n" }
    });
    let changed = h
        .admin()
        .update_guarded_by_etag(Method::PUT, &path, pie.clone(), pie)
        .await;
    assert_eq!(changed.header("etag"), Some("\"2\""));
    assert_eq!(changed.body["type"], "pie");
    assert_eq!(changed.body["options"]["label"], "country");

    // Options are checked against the type: the missing and the unknown
    // key are both named.
    let bad = put(
        &h,
        &path,
        &h.admin,
        json!({ "query_id": q, "type": "line", "name": "x", "options": { "x": "country", "y": [] } }),
        "\"2\"",
    )
    .await
    .problem(422, "validation.failed");
    assert_eq!(fields(&bad), ["options.y"]);
    let unknown = create(
        &h,
        "/visualizations",
        json!({ "query_id": q, "type": "counter", "name": "n",
                "options": { "value": "n", "colour": "red" } }),
    )
    .await
    .problem(422, "validation.failed");
    assert_eq!(fields(&unknown), ["options.colour"]);

    delete_and_check_gone(&h, &path).await;
}

#[tokio::test]
async fn a_dashboard_keeps_its_widgets_parameters_and_slug() {
    let h = Harness::new().await;
    let q = customers_of(&h, json!({ "name": "country", "type": "text" })).await;
    let viz = table(&h, &h.admin, &q).await;
    let created = create(
        &h,
        "/dashboards",
        json!({
            "name": "Sales Overview",
            "tags": ["Finance"],
            "parameters": [{ "name": "region", "type": "enum", "options": ["NL", "DE"], "default": "NL" }],
            "widgets": [
                { "kind": "text", "text": "# Hello", "x": 0, "y": 0, "w": 24, "h": 1 },
                { "kind": "visualization", "visualization_id": viz, "x": 0, "y": 1, "w": 12, "h": 6,
                  "parameter_mappings": { "country": "region" } }
            ]
        }),
    )
    .await
    // An enum dashboard parameter cannot feed a text query parameter.
    .problem(422, "validation.failed");
    assert_eq!(fields(&created), ["widgets[1].parameter_mappings.country"]);

    let body = json!({
        "name": "Sales Overview",
        "tags": ["Finance"],
        "parameters": [{ "name": "region", "type": "text", "default": "NL", "title": "Region" }],
        "widgets": [
            { "kind": "text", "text": "# Hello", "x": 0, "y": 0, "w": 24, "h": 1 },
            { "kind": "visualization", "visualization_id": viz, "x": 0, "y": 1, "w": 12, "h": 6,
              "parameter_mappings": { "country": "region" } }
        ]
    });
    let created = create(&h, "/dashboards", body.clone()).await.expect(201);
    assert_eq!(created.header("etag"), Some("\"1\""));
    let d = &created.body;
    assert_eq!(d["slug"], "sales-overview", "made from the name");
    assert_eq!(d["tags"], json!(["finance"]));
    assert_eq!(
        d["parameters"],
        json!([{ "name": "region", "type": "text", "default": "NL", "title": "Region" }])
    );
    assert_eq!(d["widgets"][0]["kind"], "text");
    assert_eq!(d["widgets"][0]["text"], "# Hello");
    assert_eq!(d["widgets"][1]["kind"], "visualization");
    assert_eq!(d["widgets"][1]["visualization_id"], viz.as_str());
    assert_eq!(d["widgets"][1]["query_id"], q.as_str());
    assert_eq!(d["widgets"][1]["w"], 12);
    assert_eq!(
        d["widgets"][1]["parameter_mappings"],
        json!({ "country": "region" })
    );
    let id = created.id();
    let path = format!("/dashboards/{id}");

    let by_slug = h
        .admin()
        .get("/dashboards/by-slug/sales-overview")
        .await
        .expect(200);
    assert_eq!(by_slug.body["id"], id.as_str());
    assert_eq!(by_slug.header("etag"), Some("\"1\""));

    // What a GET returns can be sent back as is.
    let mut changed = by_slug.body.clone();
    changed["name"] = json!("Sales");
    changed["slug"] = json!("sales");
    changed["widgets"] = json!([changed["widgets"][1].clone()]);
    let updated = put(&h, &path, &h.admin, changed, "\"1\"").await.expect(200);
    assert_eq!(updated.header("etag"), Some("\"2\""));
    assert_eq!(updated.body["slug"], "sales");
    assert_eq!(updated.body["widgets"].as_array().map(Vec::len), Some(1));
    assert_eq!(updated.body["widgets"][0]["visualization_id"], viz.as_str());

    let listed = h
        .admin()
        .get("/dashboards?tag=finance&q=Sal")
        .await
        .expect(200);
    assert_eq!(listed.body["total"], 1);
    assert_eq!(listed.body["items"][0]["id"], id.as_str());

    let taken = create(
        &h,
        "/dashboards",
        json!({ "name": "Other", "slug": "sales" }),
    )
    .await
    .problem(422, "validation.failed");
    assert_eq!(fields(&taken), ["slug"]);

    h.admin().delete(&path).await.expect(204);
    h.admin()
        .get("/dashboards/by-slug/sales")
        .await
        .problem(404, "not_found");
    // The visualization outlives the dashboard.
    h.admin()
        .get(&format!("/visualizations/{viz}"))
        .await
        .expect(200);
}

#[tokio::test]
async fn widgets_must_fit_the_grid() {
    let h = Harness::new().await;
    let bad = create(
        &h,
        "/dashboards",
        json!({
            "name": "Wide",
            "widgets": [
                { "kind": "text", "text": "a", "x": 20, "y": 0, "w": 6, "h": 2 },
                { "kind": "text", "text": "b", "x": 0, "y": 0, "w": 0, "h": 2 },
                { "kind": "text", "text": "c", "x": 0, "y": 5, "w": 4, "h": 2,
                  "parameter_mappings": { "a": "b" } },
                { "kind": "visualization", "visualization_id": "nope", "x": 4, "y": 5, "w": 4, "h": 2 }
            ]
        }),
    )
    .await
    .problem(422, "validation.failed");
    let errors = &bad.body["errors"];
    assert_eq!(
        fields(&bad),
        [
            "widgets[0].x",
            "widgets[1].w",
            "widgets[2].parameter_mappings",
            "widgets[3].visualization_id"
        ]
    );
    assert_eq!(errors[0]["code"], "out_of_grid");
    assert_eq!(errors[3]["code"], "not_found");

    let overlap = create(
        &h,
        "/dashboards",
        json!({
            "name": "Overlap",
            "widgets": [
                { "kind": "text", "text": "a", "x": 0, "y": 0, "w": 12, "h": 4 },
                { "kind": "text", "text": "b", "x": 11, "y": 3, "w": 4, "h": 4 }
            ]
        }),
    )
    .await
    .problem(422, "validation.failed");
    assert_eq!(fields(&overlap), ["widgets[1]"]);
    assert_eq!(overlap.body["errors"][0]["code"], "overlap");

    let unknown_kind = create(
        &h,
        "/dashboards",
        json!({
            "name": "Odd",
            "widgets": [{ "kind": "video", "x": 0, "y": 0, "w": 1, "h": 1 }]
        }),
    )
    .await;
    assert_eq!(unknown_kind.status, 400, "{}", unknown_kind.text());
}

#[tokio::test]
async fn dashboard_updates_need_the_current_etag() {
    let h = Harness::new().await;
    let created = create(&h, "/dashboards", json!({ "name": "Ops" }))
        .await
        .expect(201);
    let path = format!("/dashboards/{}", created.id());
    let body = || json!({ "name": "Ops 2" });

    h.admin()
        .put(&path, body())
        .await
        .problem(428, "precondition.required");
    put(&h, &path, &h.admin, body(), "1")
        .await
        .problem(422, "validation.failed");

    put(&h, &path, &h.admin, body(), "\"1\"").await.expect(200);
    put(&h, &path, &h.admin, json!({ "name": "Ops 3" }), "\"1\"")
        .await
        .problem(412, "conflict.revision");
    let now = h.admin().get(&path).await;
    assert_eq!(now.body["name"], "Ops 2", "the stale write changed nothing");
    assert_eq!(now.header("etag"), Some("\"2\""));
}

#[tokio::test]
async fn an_editor_cannot_change_another_editors_unshared_dashboard() {
    let h = Harness::new().await;
    let (_, alice) = h.user("alice@acme.test", Role::Editor).await;
    let (_, bob) = h.user("bob@acme.test", Role::Editor).await;
    let created = h
        .bearer(&alice)
        .post("/dashboards", json!({ "name": "Alice's" }))
        .await
        .expect(201);
    let path = format!("/dashboards/{}", created.id());

    // Bob may read it but not change or delete it.
    h.bearer(&bob).get(&path).await.expect(200);
    put(&h, &path, &bob, json!({ "name": "Bob's now" }), "\"1\"")
        .await
        .problem(403, "access.owner");
    h.bearer(&bob)
        .delete(&path)
        .await
        .problem(403, "access.owner");

    // Once Alice shares it, Bob may.
    let shared = |name: &str| json!({ "name": name, "shared": true });
    put(&h, &path, &alice, shared("Alice's"), "\"1\"")
        .await
        .expect(200);
    let changed = put(&h, &path, &bob, shared("Ours"), "\"2\"")
        .await
        .expect(200);
    assert_eq!(changed.body["name"], "Ours");

    // The same rule holds for canvases.
    let canvas = h
        .bearer(&alice)
        .post("/canvases", json!({ "name": "Alice's board" }))
        .await
        .expect(201);
    put(
        &h,
        &format!("/canvases/{}", canvas.id()),
        &bob,
        json!({ "name": "Bob's board" }),
        "\"1\"",
    )
    .await
    .problem(403, "access.owner");
}

#[tokio::test]
async fn viewers_cannot_create_content() {
    let h = Harness::new().await;
    let q = query(&h, &h.admin, "select 1 as one", json!([])).await;
    let (_, viewer) = h.user("viewer@acme.test", Role::Viewer).await;
    let attempts = [
        ("/dashboards", json!({ "name": "Mine" })),
        ("/canvases", json!({ "name": "Mine" })),
        (
            "/visualizations",
            json!({ "query_id": q, "type": "table", "name": "Mine" }),
        ),
        (
            "/schedules",
            json!({ "query_id": q, "cron": "0 * * * *", "timezone": "UTC" }),
        ),
    ];
    for (path, body) in attempts {
        h.bearer(&viewer)
            .post(path, body)
            .await
            .problem(403, "access.role");
    }
    // Nothing was made.
    for path in ["/dashboards", "/canvases"] {
        let list = h.bearer(&viewer).get(path).await.expect(200);
        assert_eq!(list.body["total"], 0, "{path}");
    }
}

#[tokio::test]
async fn other_organizations_see_no_content() {
    let h = Harness::new().await;
    let q = query(&h, &h.admin, "select 1 as one", json!([])).await;
    let viz = table(&h, &h.admin, &q).await;
    let mut paths = vec![format!("/visualizations/{viz}")];
    for (path, body) in [
        ("/dashboards", json!({ "name": "Secret", "slug": "secret" })),
        ("/canvases", json!({ "name": "Secret" })),
        (
            "/schedules",
            json!({ "query_id": q, "cron": "0 * * * *", "timezone": "UTC" }),
        ),
    ] {
        let created = create(&h, path, body).await.expect(201);
        paths.push(format!("{path}/{}", created.id()));
    }
    paths.push("/dashboards/by-slug/secret".to_owned());

    let other = h.other_org_admin().await;
    for path in &paths {
        h.admin().get(path).await.expect(200);
        h.bearer(&other).get(path).await.problem(404, "not_found");
    }
    put(&h, &paths[1], &other, json!({ "name": "Mine" }), "\"1\"")
        .await
        .problem(404, "not_found");
    for list in ["/visualizations", "/dashboards", "/canvases", "/schedules"] {
        let listed = h.bearer(&other).get(list).await.expect(200);
        assert_eq!(listed.body["total"], 0, "{list}");
    }
}

/// Waits for the run of each entry of a dashboard run; returns (widget
/// id, rows of its result).
async fn rows_of(h: &Harness, reply: Reply) -> Vec<(String, i64)> {
    let reply = reply.expect(200);
    let mut rows = Vec::new();
    let entries = reply.body.as_array().cloned().unwrap_or_default();
    assert!(
        !entries.is_empty(),
        "one entry per widget: {}",
        reply.text()
    );
    for entry in &entries {
        let run_id = entry["run"]["run"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("a run: {entry}"));
        let done = h.wait_run(&h.admin, run_id).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        let widget = entry["widget_id"].as_str().unwrap_or_default().to_owned();
        rows.push((widget, done["rows"].as_i64().unwrap_or(-1)));
    }
    rows
}

/// Customers per country in `sample-data/customers.csv`.
const NL: i64 = 59;
const FR: i64 = 54;
const DE: i64 = 50;
const CA: i64 = 36;

#[tokio::test]
async fn running_a_dashboard_runs_each_widget_with_its_mapped_values() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let mapped = customers_of(&h, json!({ "name": "country", "type": "text" })).await;
    // Not mapped: it keeps its own default.
    let fixed = customers_of(
        &h,
        json!({ "name": "country", "type": "text", "default": "FR" }),
    )
    .await;
    let picked = customers_of(
        &h,
        json!({ "name": "country", "type": "enum", "options": ["NL", "CA"] }),
    )
    .await;
    let (mapped_viz, fixed_viz, picked_viz) = (
        table(&h, &h.admin, &mapped).await,
        table(&h, &h.admin, &fixed).await,
        table(&h, &h.admin, &picked).await,
    );
    let dashboard = create(
        &h,
        "/dashboards",
        json!({
            "name": "Customers",
            "parameters": [
                { "name": "region", "type": "text", "default": "DE" },
                { "name": "pick", "type": "enum", "options": ["NL", "CA"], "default": "CA" }
            ],
            "widgets": [
                { "kind": "visualization", "visualization_id": mapped_viz,
                  "x": 0, "y": 0, "w": 8, "h": 4, "parameter_mappings": { "country": "region" } },
                { "kind": "visualization", "visualization_id": fixed_viz,
                  "x": 8, "y": 0, "w": 8, "h": 4 },
                { "kind": "text", "text": "Notes", "x": 16, "y": 0, "w": 8, "h": 4 },
                { "kind": "visualization", "visualization_id": picked_viz,
                  "x": 0, "y": 4, "w": 24, "h": 4, "parameter_mappings": { "country": "pick" } }
            ]
        }),
    )
    .await
    .expect(201);
    let widget_ids: Vec<String> = dashboard.body["widgets"]
        .as_array()
        .expect("widgets")
        .iter()
        .map(|w| w["id"].as_str().expect("widget id").to_owned())
        .collect();
    let run_path = format!("/dashboards/{}/run", dashboard.id());
    let run = |values: Value| {
        let (h, run_path) = (&h, &run_path);
        async move { h.admin().post(run_path, values).await }
    };

    let nl = run(json!({ "parameters": { "region": "NL", "pick": "NL" } })).await;
    assert_eq!(
        nl.body.as_array().map(Vec::len),
        Some(3),
        "text widgets have no query: {}",
        nl.text()
    );
    assert_eq!(nl.body[0]["run"]["how"], "queued");
    assert_eq!(nl.body[0]["run"]["run"]["query_id"], mapped.as_str());
    assert_eq!(
        rows_of(&h, nl).await,
        [
            (widget_ids[0].clone(), NL),
            (widget_ids[1].clone(), FR),
            (widget_ids[3].clone(), NL),
        ]
    );

    // No values: the dashboard's defaults feed the mapped parameters.
    let rows = rows_of(&h, run(json!({})).await).await;
    assert_eq!(
        rows.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        [DE, FR, CA]
    );

    // A value one query refuses fails that widget only.
    let partly = run(json!({ "parameters": { "region": "CA", "pick": "XX" } }))
        .await
        .expect(200);
    let entries = partly.body.as_array().expect("entries").clone();
    assert_eq!(entries.len(), 3);
    let failed = &entries[2];
    assert_eq!(failed["widget_id"], widget_ids[3].as_str());
    assert!(failed.get("run").is_none(), "{failed}");
    assert_eq!(failed["error"]["status"], 422, "{failed}");
    assert_eq!(failed["error"]["code"], "validation.failed");
    assert!(failed["error"]["errors"][0]["field"].is_string());
    assert!(entries[0].get("error").is_none());
    let first = h
        .wait_run(
            &h.admin,
            entries[0]["run"]["run"]["id"].as_str().expect("run"),
        )
        .await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(first["rows"], CA);

    // A dashboard of another organization cannot be run.
    let other = h.other_org_admin().await;
    h.bearer(&other)
        .post(&run_path, json!({}))
        .await
        .problem(404, "not_found");
}

#[tokio::test]
async fn a_canvas_links_objects_with_nodes_and_edges() {
    let h = Harness::new().await;
    let q = query(&h, &h.admin, "select 1 as one", json!([])).await;
    let viz = table(&h, &h.admin, &q).await;
    let dashboard = create(&h, "/dashboards", json!({ "name": "Board" }))
        .await
        .id();
    let nodes = json!([
        { "id": "note", "kind": "text", "text": "Start here", "x": 0.0, "y": 0.0, "w": 200.0, "h": 80.0 },
        { "id": "q", "kind": "query", "query_id": q, "x": 300.0, "y": 0.0, "w": 200.0, "h": 80.0 },
        { "id": "v", "kind": "visualization", "visualization_id": viz, "x": 300.0, "y": 200.0, "w": 200.0, "h": 120.5 },
        { "id": "d", "kind": "dashboard", "dashboard_id": dashboard, "x": -50.0, "y": 200.0, "w": 100.0, "h": 100.0 }
    ]);
    let created = create(
        &h,
        "/canvases",
        json!({
            "name": "Map",
            "nodes": nodes,
            "edges": [
                { "id": "e1", "from": "note", "to": "q", "label": "runs" },
                { "id": "e2", "from": "q", "to": "v" }
            ]
        }),
    )
    .await
    .expect(201);
    assert_eq!(created.header("etag"), Some("\"1\""));
    let c = &created.body;
    // Nodes come back ordered by id.
    let kinds: Vec<&str> = c["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds, ["dashboard", "text", "query", "visualization"]);
    assert_eq!(c["nodes"][0]["dashboard_id"], dashboard.as_str());
    assert_eq!(c["nodes"][0]["x"], -50.0);
    assert_eq!(c["nodes"][1]["text"], "Start here");
    assert_eq!(c["nodes"][2]["query_id"], q.as_str());
    assert_eq!(c["nodes"][3]["h"], 120.5);
    assert_eq!(c["edges"][0]["label"], "runs");
    assert!(c["edges"][1].get("label").is_none());
    let path = format!("/canvases/{}", created.id());

    // Deleting a linked object leaves its node without a target.
    h.admin()
        .delete(&format!("/dashboards/{dashboard}"))
        .await
        .expect(204);
    let got = h.admin().get(&path).await.expect(200);
    assert_eq!(got.body["nodes"][0]["kind"], "dashboard");
    assert!(
        got.body["nodes"][0]["dashboard_id"].is_null(),
        "{}",
        got.text()
    );

    let bad = put(
        &h,
        &path,
        &h.admin,
        json!({
            "name": "Map",
            "nodes": [
                { "id": "a", "kind": "text", "text": "", "x": 0.0, "y": 0.0, "w": 0.0, "h": 1.0 },
                { "id": "b", "kind": "query", "query_id": "nope", "x": 0.0, "y": 0.0, "w": 1.0, "h": 1.0 }
            ],
            "edges": [{ "id": "e", "from": "a", "to": "zz" }]
        }),
        "\"1\"",
    )
    .await
    .problem(422, "validation.failed");
    assert_eq!(
        fields(&bad),
        ["nodes[0].w", "edges[0].to", "nodes[1].query_id"]
    );

    let renamed = put(
        &h,
        &path,
        &h.admin,
        json!({ "name": "Map 2", "nodes": [got.body["nodes"][1].clone()] }),
        "\"1\"",
    )
    .await
    .expect(200);
    assert_eq!(renamed.header("etag"), Some("\"2\""));
    assert_eq!(renamed.body["name"], "Map 2");
    assert_eq!(renamed.body["nodes"].as_array().map(Vec::len), Some(1));
    assert_eq!(renamed.body["edges"], json!([]));
    put(&h, &path, &h.admin, json!({ "name": "Map 3" }), "\"1\"")
        .await
        .problem(412, "conflict.revision");

    let listed = h.admin().get("/canvases?q=Map").await;
    assert_eq!(listed.body["total"], 1);

    delete_and_check_gone(&h, &path).await;
}

#[tokio::test]
async fn the_openapi_document_describes_widget_and_node_kinds() {
    let h = Harness::new().await;
    let reply = h.anonymous().get("/openapi.json").await.expect(200);
    let schemas = &reply.body["components"]["schemas"];
    for (union, kinds) in [
        // `hidden`: what the caller may not see (`visibility.rs`).
        ("WidgetDto", vec!["hidden", "text", "visualization"]),
        ("WidgetInputDto", vec!["hidden", "text", "visualization"]),
        (
            "CanvasNodeDto",
            vec!["dashboard", "hidden", "query", "text", "visualization"],
        ),
    ] {
        let discriminator = &schemas[union]["discriminator"];
        assert_eq!(discriminator["propertyName"], "kind", "{union}");
        let mapped: Vec<&String> = discriminator["mapping"]
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(mapped, kinds, "{union}");
    }
    // The grid place is flattened into each widget.
    let required = &schemas["VisualizationWidgetInputDto"]["required"];
    assert_eq!(required, &json!(["visualization_id", "x", "y", "w", "h"]));
    assert_eq!(
        schemas["VisualizationTypeDto"]["enum"],
        json!([
            "table", "line", "bar", "area", "scatter", "pie", "counter", "pivot"
        ])
    );
    let paths = &reply.body["paths"];
    for (path, method, id) in [
        ("/schedules/{id}/enable", "post", "enableSchedule"),
        ("/schedules/{id}/disable", "post", "disableSchedule"),
        ("/dashboards/by-slug/{slug}", "get", "getDashboardBySlug"),
        ("/dashboards/{id}/run", "post", "runDashboard"),
    ] {
        assert_eq!(paths[path][method]["operationId"], id, "{path}");
    }
}
