//! Browsers on other origins (`cors.allowed_origins`): preflights allow
//! exactly the methods and request headers the API uses, from the listed
//! origins only, and answers let scripts read the headers the API sends.

use std::collections::BTreeSet;

use poem::http::Method;
use serde_json::{Value, json};

use crate::harness::{Harness, Reply, id_of};

const APP: &str = "https://sheets.acme.test";

async fn browser_server() -> Harness {
    Harness::with(|c| c.server.cors.allowed_origins = vec![format!("{APP}/")]).await
}

/// A preflight from `origin` for `method` with `headers`.
async fn preflight(h: &Harness, origin: &str, method: &str, headers: &str) -> Reply {
    let mut caller = h
        .anonymous()
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method);
    if !headers.is_empty() {
        caller = caller.header("Access-Control-Request-Headers", headers);
    }
    caller
        .send(Method::OPTIONS, "/queries/q/results/latest.csv", None)
        .await
}

/// A comma-separated header as a set of lower-case names.
fn names(reply: &Reply, header: &str) -> BTreeSet<String> {
    reply
        .header(header)
        .unwrap_or_else(|| panic!("{header} missing: {:?}", reply.headers))
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

async fn document(h: &Harness) -> Value {
    h.anonymous().get("/openapi.json").await.expect(200).body
}

/// Every operation of the document: (method, operation).
fn operations(doc: &Value) -> Vec<(String, &Value)> {
    doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().iter())
        .map(|(method, op)| (method.to_uppercase(), op))
        .collect()
}

#[tokio::test]
async fn a_preflight_from_a_listed_origin_allows_exactly_what_the_api_uses() {
    let h = browser_server().await;
    let doc = document(&h).await;
    let reply = preflight(&h, APP, "GET", "authorization, if-none-match").await;
    let reply = reply.expect(200);
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP));
    assert!(
        reply.header("access-control-allow-credentials").is_none(),
        "credentials are off unless configured"
    );

    let methods: BTreeSet<String> = operations(&doc)
        .into_iter()
        .map(|(m, _)| m.to_ascii_lowercase())
        .collect();
    assert_eq!(names(&reply, "access-control-allow-methods"), methods);

    // Every header the document's operations read, the credentials and
    // JSON bodies, and trace context; nothing echoed, no wildcard.
    let allowed = names(&reply, "access-control-allow-headers");
    let mut read: BTreeSet<String> = operations(&doc)
        .into_iter()
        .flat_map(|(_, op)| op["parameters"].as_array().cloned().unwrap_or_default())
        .filter(|p| p["in"] == "header")
        .filter_map(|p| p["name"].as_str().map(str::to_ascii_lowercase))
        .collect();
    assert!(
        read.contains("if-none-match") && read.contains("if-match"),
        "{read:?}"
    );
    read.extend(["authorization", "content-type", "traceparent"].map(String::from));
    assert!(read.is_subset(&allowed), "{read:?} not all in {allowed:?}");
    assert!(!allowed.contains("*"), "{allowed:?}");
    assert_eq!(
        allowed,
        [
            "authorization",
            "content-type",
            "if-match",
            "if-modified-since",
            "if-none-match",
            "traceparent",
            "tracestate",
            "x-request-id"
        ]
        .map(String::from)
        .into_iter()
        .collect()
    );
}

#[tokio::test]
async fn preflights_from_other_origins_or_for_other_methods_and_headers_are_refused() {
    let h = browser_server().await;
    let refused = preflight(&h, "https://evil.test", "GET", "authorization").await;
    let refused = refused.problem(403, "request.origin_not_allowed");
    assert!(refused.header("access-control-allow-origin").is_none());
    // The same host on another scheme or port is another origin.
    for other in ["http://sheets.acme.test", "https://sheets.acme.test:8443"] {
        preflight(&h, other, "GET", "")
            .await
            .problem(403, "request.origin_not_allowed");
    }
    preflight(&h, APP, "TRACE", "")
        .await
        .problem(403, "request.preflight_refused");
    let unknown = preflight(&h, APP, "GET", "x-evil").await;
    let unknown = unknown.problem(403, "request.preflight_refused");
    assert!(
        unknown.text().contains("authorization"),
        "{}",
        unknown.text()
    );

    // Without configured origins, no other origin may call at all.
    let closed = Harness::new().await;
    preflight(&closed, APP, "GET", "")
        .await
        .problem(403, "request.origin_not_allowed");
}

#[tokio::test]
async fn a_cross_origin_get_lets_the_script_read_the_etag_and_the_file_name() {
    let h = browser_server().await;
    let _runner = h.runner();
    let ds = h.sample_datasource().await;
    let query =
        json!({ "name": "Countries", "datasource_id": ds, "sql": "select country from regions" });
    let id = h.admin().post("/queries", query).await.expect(201).id();
    let started = h
        .admin()
        .post(&format!("/queries/{id}/runs"), json!({}))
        .await
        .expect(202);
    h.wait_run(&h.admin, &id_of(&started.body["run"])).await;

    let url = format!("/queries/{id}/results/latest.csv");
    let reply = h.admin().header("Origin", APP).get(&url).await.expect(200);
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP));
    assert!(reply.header("etag").is_some());
    let vary = names(&reply, "vary");
    assert!(vary.contains("origin"), "{vary:?}");
    let exposed = names(&reply, "access-control-expose-headers");
    for header in [
        "etag",
        "last-modified",
        "content-disposition",
        "location",
        "retry-after",
        "x-request-id",
    ] {
        assert!(exposed.contains(header), "{header} not in {exposed:?}");
    }
    // Every header the document's responses carry is readable: exposed,
    // or one browsers always expose.
    let safelisted = [
        "cache-control",
        "content-language",
        "content-length",
        "content-type",
        "expires",
        "last-modified",
        "pragma",
    ];
    let doc = document(&h).await;
    for (method, op) in operations(&doc) {
        for response in op["responses"].as_object().unwrap().values() {
            for header in response["headers"].as_object().into_iter().flatten() {
                let name = header.0.to_ascii_lowercase();
                assert!(
                    exposed.contains(&name) || safelisted.contains(&name.as_str()),
                    "{method} {}: {name} is not readable from another origin",
                    op["operationId"]
                );
            }
        }
    }

    // An origin not listed gets no answer to read.
    let refused = h
        .admin()
        .header("Origin", "https://evil.test")
        .get(&url)
        .await;
    let refused = refused.problem(403, "request.origin_not_allowed");
    assert!(refused.header("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn credentials_are_allowed_only_when_configured_for_listed_origins() {
    let h = Harness::with(|c| {
        c.server.cors.allowed_origins = vec![APP.to_owned()];
        c.server.cors.allow_credentials = true;
    })
    .await;
    let reply = preflight(&h, APP, "POST", "content-type").await.expect(200);
    assert_eq!(
        reply.header("access-control-allow-credentials"),
        Some("true")
    );

    // Any origin, without credentials.
    let open = Harness::with(|c| c.server.cors.allowed_origins = vec!["*".to_owned()]).await;
    let reply = preflight(&open, "https://anywhere.test", "GET", "").await;
    let reply = reply.expect(200);
    assert!(reply.header("access-control-allow-credentials").is_none());
    let methods = names(&reply, "access-control-allow-methods");
    assert!(
        !methods.contains("trace") && !methods.contains("connect"),
        "{methods:?}"
    );
}
