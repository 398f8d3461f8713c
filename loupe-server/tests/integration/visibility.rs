//! What a member sees of objects on a datasource none of their groups has
//! a grant on (issue 12, finding 7): nothing. A read or a change of such a
//! query, visualization, run, schedule or of the datasource itself answers
//! exactly what it answers for an id that does not exist (404), so that a
//! refusal never confirms that an object exists; 403 stays for objects
//! the caller can see but may not change. Dashboards and canvases show
//! such widgets and nodes as `hidden` placeholders, their place only, and
//! an update by that member keeps them.

use loupe_services::Role;
use poem::http::Method;
use serde_json::{Value, json};

use crate::harness::{Harness, Reply};

/// What an editor without a grant on `private` must not learn about.
struct Private {
    datasource: String,
    query: String,
    visualization: String,
    schedule: String,
    run: String,
}

/// Objects of the admin's on a `private` datasource (the sample files,
/// with no grant for anyone) and a visualization on the sample datasource
/// (everyone may run on it), and an editor's token.
struct World {
    h: Harness,
    editor: String,
    private: Private,
    /// A visualization everyone may see.
    shared_visualization: String,
}

async fn world() -> World {
    let h = Harness::new().await;
    let (_, editor) = h.user("erin@acme.test", Role::Editor).await;
    let sample = h.sample_datasource().await;
    let read = h.admin().get(&format!("/datasources/{sample}")).await;
    let root = read.expect(200).body["options"]["root"].clone();
    let datasource = h
        .admin()
        .post(
            "/datasources",
            json!({ "name": "private", "kind": "files", "options": { "root": root } }),
        )
        .await
        .expect(201)
        .id();
    let query_on =
        |ds: &str| json!({ "name": "all", "datasource_id": ds, "sql": "select * from customers" });
    let query = h.admin().post("/queries", query_on(&datasource)).await;
    let query = query.expect(201).id();
    let table = |q: &str| json!({ "query_id": q, "type": "table", "name": "rows" });
    let visualization = h.admin().post("/visualizations", table(&query)).await;
    let visualization = visualization.expect(201).id();
    let schedule = json!({ "query_id": query, "cron": "0 6 * * *", "timezone": "UTC" });
    let schedule = h
        .admin()
        .post("/schedules", schedule)
        .await
        .expect(201)
        .id();
    let run = h
        .admin()
        .post(&format!("/queries/{query}/runs"), json!({}))
        .await
        .expect(202);
    let run = run.body["run"]["id"].as_str().unwrap().to_owned();
    let open = h.admin().post("/queries", query_on(&sample)).await;
    let open = open.expect(201).id();
    let shared_visualization = h.admin().post("/visualizations", table(&open)).await;
    let shared_visualization = shared_visualization.expect(201).id();
    World {
        h,
        editor,
        private: Private {
            datasource,
            query,
            visualization,
            schedule,
            run,
        },
        shared_visualization,
    }
}

/// An id of the right shape that names nothing.
const UNKNOWN: &str = "01900000-0000-7000-8000-000000000000";

/// Asserts that `reply`, about object `id`, is the 404 that the same
/// request gets for an id that does not exist (`unknown`, about
/// [`UNKNOWN`]): same status, code, title and words.
#[track_caller]
fn same_as_unknown(reply: &Reply, id: &str, unknown: &Reply) {
    assert_eq!(reply.status, 404, "{}", reply.text());
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    for field in ["code", "title", "type"] {
        assert_eq!(reply.body[field], unknown.body[field], "{field}");
    }
    let detail = |r: &Reply, id: &str| r.body["detail"].as_str().unwrap().replace(id, "ID");
    assert_eq!(detail(reply, id), detail(unknown, UNKNOWN));
}

/// Sends `method path` as `token`, and the same with `id` replaced by
/// [`UNKNOWN`]; asserts both answers are the same 404.
async fn hidden_like_unknown(
    h: &Harness,
    token: &str,
    method: Method,
    path: &str,
    id: &str,
    body: Option<Value>,
) {
    let caller = h.bearer(token).if_match("\"1\"");
    let reply = caller.send(method.clone(), path, body.clone()).await;
    let unknown = caller
        .send(method.clone(), &path.replace(id, UNKNOWN), body)
        .await;
    assert!(
        !reply.text().contains("access."),
        "{method} {path}: {}",
        reply.text()
    );
    same_as_unknown(&reply, id, &unknown);
}

#[tokio::test]
async fn objects_on_a_datasource_without_a_grant_are_not_found() {
    let w = world().await;
    let (h, e, p) = (&w.h, w.editor.as_str(), &w.private);
    let get = Method::GET;
    let cases: Vec<(Method, String, &str, Option<Value>)> = vec![
        (
            get.clone(),
            format!("/datasources/{}", p.datasource),
            &p.datasource,
            None,
        ),
        (
            get.clone(),
            format!("/datasources/{}/schema", p.datasource),
            &p.datasource,
            None,
        ),
        (
            Method::POST,
            format!("/datasources/{}/test", p.datasource),
            &p.datasource,
            None,
        ),
        (get.clone(), format!("/queries/{}", p.query), &p.query, None),
        (
            get.clone(),
            format!("/queries/{}/versions", p.query),
            &p.query,
            None,
        ),
        (
            Method::POST,
            format!("/queries/{}/fork", p.query),
            &p.query,
            None,
        ),
        (
            Method::POST,
            format!("/queries/{}/runs", p.query),
            &p.query,
            Some(json!({})),
        ),
        (
            Method::PATCH,
            format!("/queries/{}", p.query),
            &p.query,
            Some(json!({ "name": "mine" })),
        ),
        (
            Method::DELETE,
            format!("/queries/{}", p.query),
            &p.query,
            None,
        ),
        (
            get.clone(),
            format!("/visualizations/{}", p.visualization),
            &p.visualization,
            None,
        ),
        (
            Method::DELETE,
            format!("/visualizations/{}", p.visualization),
            &p.visualization,
            None,
        ),
        (get.clone(), format!("/runs/{}", p.run), &p.run, None),
        (
            get.clone(),
            format!("/runs/{}/results", p.run),
            &p.run,
            None,
        ),
        (
            Method::POST,
            format!("/runs/{}/cancel", p.run),
            &p.run,
            None,
        ),
        (
            get.clone(),
            format!("/schedules/{}", p.schedule),
            &p.schedule,
            None,
        ),
        (
            Method::POST,
            format!("/schedules/{}/disable", p.schedule),
            &p.schedule,
            None,
        ),
        (
            Method::DELETE,
            format!("/schedules/{}", p.schedule),
            &p.schedule,
            None,
        ),
    ];
    for (method, path, id, body) in cases {
        hidden_like_unknown(h, e, method, &path, id, body).await;
    }

    // Naming one in a new object reads as naming nothing.
    let sql = json!({ "datasource_id": p.datasource, "sql": "select 1" });
    let run = h.bearer(e).post("/runs", sql.clone()).await;
    let unknown = json!({ "datasource_id": UNKNOWN, "sql": "select 1" });
    same_as_unknown(
        &run,
        &p.datasource,
        &h.bearer(e).post("/runs", unknown).await,
    );
    for (path, field, body) in [
        (
            "/queries",
            "datasource_id",
            json!({ "name": "q", "datasource_id": p.datasource, "sql": "select 1" }),
        ),
        (
            "/visualizations",
            "query_id",
            json!({ "query_id": p.query, "type": "table", "name": "t" }),
        ),
        (
            "/schedules",
            "query_id",
            json!({ "query_id": p.query, "cron": "0 6 * * *", "timezone": "UTC" }),
        ),
    ] {
        let reply = h.bearer(e).post(path, body.clone()).await.invalid(field);
        let unknown: Value = serde_json::from_str(
            &body
                .to_string()
                .replace(&*p.datasource, UNKNOWN)
                .replace(&*p.query, UNKNOWN),
        )
        .unwrap();
        let other = h.bearer(e).post(path, unknown).await.invalid(field);
        assert_eq!(
            reply.body["errors"][0]["code"],
            other.body["errors"][0]["code"]
        );
    }

    // Lists leave them out.
    for list in [
        "/queries",
        "/visualizations",
        "/runs",
        "/schedules",
        "/datasources",
    ] {
        let page = h.bearer(e).get(list).await.expect(200);
        for id in [
            &p.datasource,
            &p.query,
            &p.visualization,
            &p.run,
            &p.schedule,
        ] {
            assert!(!page.text().contains(id.as_str()), "{list} shows {id}");
        }
    }
}

#[tokio::test]
async fn a_view_grant_shows_them_and_refuses_running_with_403() {
    let w = world().await;
    let (h, e, p) = (&w.h, w.editor.as_str(), &w.private);
    let everyone = h.everyone_group(&h.admin).await;
    h.admin()
        .put(
            &format!("/groups/{everyone}/grants/{}", p.datasource),
            json!({ "access": "view" }),
        )
        .await
        .expect(200);

    h.bearer(e)
        .get(&format!("/queries/{}", p.query))
        .await
        .expect(200);
    h.bearer(e)
        .get(&format!("/runs/{}", p.run))
        .await
        .expect(200);
    h.bearer(e)
        .get(&format!("/visualizations/{}", p.visualization))
        .await
        .expect(200);
    h.bearer(e)
        .get(&format!("/schedules/{}", p.schedule))
        .await
        .expect(200);
    let seen = h
        .bearer(e)
        .get(&format!("/datasources/{}", p.datasource))
        .await;
    assert_eq!(seen.expect(200).body["access"], "view");
    h.bearer(e)
        .post(&format!("/queries/{}/runs", p.query), json!({}))
        .await
        .problem(403, "access.view_only");
    h.bearer(e)
        .post_empty(&format!("/datasources/{}/test", p.datasource))
        .await
        .problem(403, "access.view_only");
    h.bearer(e)
        .if_match("\"1\"")
        .patch(&format!("/queries/{}", p.query), json!({ "name": "mine" }))
        .await
        .problem(403, "access.owner");
}

#[tokio::test]
async fn a_dashboard_hides_widgets_on_datasources_without_a_grant() {
    let w = world().await;
    let (h, e, p) = (&w.h, w.editor.as_str(), &w.private);
    let widgets = json!([
        { "kind": "text", "text": "Quarterly numbers", "x": 0, "y": 0, "w": 6, "h": 2 },
        { "kind": "visualization", "visualization_id": p.visualization, "x": 6, "y": 0, "w": 6, "h": 4 },
        { "kind": "visualization", "visualization_id": w.shared_visualization, "x": 12, "y": 0, "w": 6, "h": 4 },
    ]);
    let body = json!({ "name": "Sales", "shared": true, "widgets": widgets });
    let dashboard = h.admin().post("/dashboards", body).await.expect(201).id();
    let path = format!("/dashboards/{dashboard}");

    let read = h.bearer(e).get(&path).await.expect(200);
    let seen = &read.body["widgets"];
    assert_eq!(
        seen[0]["text"], "Quarterly numbers",
        "text is the dashboard's own"
    );
    assert_eq!(
        seen[1],
        json!({ "kind": "hidden", "x": 6, "y": 0, "w": 6, "h": 4 }),
        "a hidden widget shows its place only"
    );
    assert_eq!(seen[2]["visualization_id"], w.shared_visualization.as_str());
    for id in [&p.visualization, &p.query] {
        assert!(!read.text().contains(id.as_str()), "the read shows {id}");
    }
    // The admin sees all of it.
    let full = h.admin().get(&path).await.expect(200);
    assert_eq!(
        full.body["widgets"][1]["visualization_id"],
        p.visualization.as_str()
    );

    // Running all widgets runs (and names) only those the editor sees.
    let runs = h.bearer(e).post(&format!("{path}/run"), json!({})).await;
    let runs = runs.expect(200).body;
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    assert_eq!(runs[0]["widget_id"], full.body["widgets"][2]["id"]);

    // An update by the editor keeps the hidden widget where it is, even
    // when the placeholder is left out...
    let mine = json!({ "kind": "text", "text": "Notes", "x": 0, "y": 4, "w": 6, "h": 2 });
    let without = json!([seen[0], seen[2], mine]);
    let changed = h
        .bearer(e)
        .if_match("\"1\"")
        .put(
            &path,
            json!({ "name": "Sales", "shared": true, "widgets": without }),
        )
        .await
        .expect(200);
    assert_eq!(changed.body["widgets"].as_array().map(Vec::len), Some(4));
    let full = h.admin().get(&path).await.expect(200);
    let kept = full.body["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["visualization_id"] == p.visualization.as_str())
        .cloned()
        .expect("the hidden widget is kept");
    assert_eq!((kept["x"].clone(), kept["w"].clone()), (json!(6), json!(6)));
    // ...or sent back as read; and a widget over its place is refused.
    let read = h.bearer(e).get(&path).await.expect(200);
    let as_read = read.body["widgets"].clone();
    h.bearer(e)
        .if_match("\"2\"")
        .put(
            &path,
            json!({ "name": "Sales", "shared": true, "widgets": as_read }),
        )
        .await
        .expect(200);
    let over = json!([{ "kind": "text", "text": "x", "x": 8, "y": 1, "w": 2, "h": 1 }]);
    let refused = h
        .bearer(e)
        .if_match("\"3\"")
        .put(&path, json!({ "name": "Sales", "widgets": over }))
        .await
        .invalid("widgets[0]");
    assert_eq!(refused.body["errors"][0]["code"], "overlap");

    // A new dashboard cannot show it: it reads as a visualization that
    // does not exist.
    let naming = |id: &str| {
        json!({ "name": "Mine", "widgets": [
            { "kind": "visualization", "visualization_id": id, "x": 0, "y": 0, "w": 6, "h": 4 }
        ] })
    };
    let refused = h
        .bearer(e)
        .post("/dashboards", naming(&p.visualization))
        .await;
    let unknown = h.bearer(e).post("/dashboards", naming(UNKNOWN)).await;
    let refused = refused.invalid("widgets[0].visualization_id");
    let unknown = unknown.invalid("widgets[0].visualization_id");
    assert_eq!(
        refused.body["errors"][0]["code"],
        unknown.body["errors"][0]["code"]
    );
}

#[tokio::test]
async fn a_canvas_hides_links_to_objects_without_a_grant() {
    let w = world().await;
    let (h, e, p) = (&w.h, w.editor.as_str(), &w.private);
    let node = |id: &str, extra: Value| {
        let mut node = json!({ "id": id, "x": 0.0, "y": 0.0, "w": 10.0, "h": 10.0 });
        for (k, v) in extra.as_object().unwrap() {
            node[k] = v.clone();
        }
        node
    };
    let nodes = json!([
        node("a", json!({ "kind": "text", "text": "start" })),
        node("p", json!({ "kind": "query", "query_id": p.query })),
        node(
            "v",
            json!({ "kind": "visualization", "visualization_id": p.visualization })
        ),
        node(
            "s",
            json!({ "kind": "visualization", "visualization_id": w.shared_visualization })
        ),
    ]);
    let edges = json!([{ "id": "e1", "from": "a", "to": "p" }]);
    let body = json!({ "name": "Map", "shared": true, "nodes": nodes, "edges": edges });
    let canvas = h.admin().post("/canvases", body).await.expect(201).id();
    let path = format!("/canvases/{canvas}");

    let read = h.bearer(e).get(&path).await.expect(200);
    let seen = read.body["nodes"].as_array().unwrap().clone();
    let by_id = |id: &str| seen.iter().find(|n| n["id"] == id).cloned().unwrap();
    assert_eq!(by_id("p"), node("p", json!({ "kind": "hidden" })));
    assert_eq!(by_id("v"), node("v", json!({ "kind": "hidden" })));
    assert_eq!(
        by_id("s")["visualization_id"],
        w.shared_visualization.as_str()
    );
    assert_eq!(by_id("a")["text"], "start");
    for id in [&p.visualization, &p.query] {
        assert!(!read.text().contains(id.as_str()), "the read shows {id}");
    }

    // Sent back as read, with a new edge to a hidden node: the links stay.
    let edges = json!([
        { "id": "e1", "from": "a", "to": "p" },
        { "id": "e2", "from": "s", "to": "v" },
    ]);
    let body = json!({ "name": "Map", "shared": true, "nodes": seen, "edges": edges });
    h.bearer(e)
        .if_match("\"1\"")
        .put(&path, body)
        .await
        .expect(200);
    let full = h.admin().get(&path).await.expect(200);
    let nodes = full.body["nodes"].as_array().unwrap();
    let links = |id: &str| nodes.iter().find(|n| n["id"] == id).cloned().unwrap();
    assert_eq!(links("p")["query_id"], p.query.as_str());
    assert_eq!(links("v")["visualization_id"], p.visualization.as_str());
    assert_eq!(full.body["edges"].as_array().map(Vec::len), Some(2));

    // A new canvas cannot link to it: it reads as a query that does not
    // exist.
    let naming = |id: &str| json!({ "name": "Mine", "nodes": [node("q", json!({ "kind": "query", "query_id": id }))] });
    let refused = h.bearer(e).post("/canvases", naming(&p.query)).await;
    let unknown = h.bearer(e).post("/canvases", naming(UNKNOWN)).await;
    let refused = refused.invalid("nodes[0].query_id");
    let unknown = unknown.invalid("nodes[0].query_id");
    assert_eq!(refused.body["errors"][0], {
        let mut same = unknown.body["errors"][0].clone();
        let message = same["message"].as_str().unwrap().replace(UNKNOWN, &p.query);
        same["message"] = message.into();
        same
    });
}
