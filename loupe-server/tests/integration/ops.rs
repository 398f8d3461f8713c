//! Health, metrics, the OpenAPI document, security headers and the error
//! shape outside handlers.

use poem::http::Method;
use serde_json::Value;

use crate::harness::{As, Harness, assert_problem};

#[tokio::test]
async fn health_and_readiness() {
    let h = Harness::new().await;
    let live = h
        .call(Method::GET, "/health/live", As::Anonymous, None)
        .await;
    live.expect(200);
    let ready = h
        .call(Method::GET, "/health/ready", As::Anonymous, None)
        .await;
    ready.expect(200);
    assert_eq!(ready.body["checks"]["metadata"], "ok");
    assert_eq!(ready.body["checks"]["results"], "ok");

    // Readiness fails once shutdown begins, so balancers stop sending.
    h.state
        .shutting_down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let draining = h
        .call(Method::GET, "/health/ready", As::Anonymous, None)
        .await;
    draining.expect(503);
    h.call(Method::GET, "/health/live", As::Anonymous, None)
        .await
        .expect(200);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let h = Harness::new().await;
    h.call(Method::GET, "/api/v1/auth/me", As::Bearer(&h.admin), None)
        .await
        .expect(200);
    let metrics = h.call(Method::GET, "/metrics", As::Anonymous, None).await;
    metrics.expect(200);
    let text = metrics.text();
    assert!(
        text.lines()
            .any(|l| l.starts_with("loupe_http_requests_total")
                && l.contains("route=\"me\"")
                && l.contains("status=\"200\"")),
        "{text}"
    );
    for name in [
        "loupe_http_request_duration_seconds",
        "loupe_metadata_pool_connections",
        "loupe_queue_depth",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_security_headers() {
    let h = Harness::new().await;
    let given = h
        .call_with(
            Method::GET,
            "/api/v1/auth/me",
            As::Anonymous,
            None,
            &[("X-Request-Id", "trace-abc.123")],
        )
        .await;
    assert_problem(&given, 401, "auth.missing");
    assert_eq!(given.header("x-request-id"), Some("trace-abc.123"));
    assert_eq!(given.body["request_id"], "trace-abc.123");

    // A request id that could forge log lines is replaced.
    let forged = h
        .call_with(
            Method::GET,
            "/health/live",
            As::Anonymous,
            None,
            &[("X-Request-Id", "a b\tc")],
        )
        .await;
    let id = forged.header("x-request-id").unwrap_or("");
    assert!(!id.is_empty() && id != "a b\tc");

    for reply in [&given, &forged] {
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(reply.header("x-frame-options"), Some("DENY"));
        assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
        assert!(
            reply
                .header("content-security-policy")
                .is_some_and(|c| c.contains("frame-ancestors 'none'"))
        );
        assert!(reply.header("strict-transport-security").is_none());
    }
    let docs = h.call(Method::GET, "/docs", As::Anonymous, None).await;
    docs.expect(200);
    assert!(docs.text().contains("swagger"));
    assert!(
        docs.header("content-security-policy")
            .is_some_and(|c| c.contains("script-src"))
    );
}

#[tokio::test]
async fn errors_outside_handlers_are_problems() {
    let h = Harness::with(|c| c.max_body_bytes = 2048).await;
    let unknown = h
        .call(Method::GET, "/api/v1/nothing-here", As::Anonymous, None)
        .await;
    assert_problem(&unknown, 404, "route.not_found");
    let big = serde_json::json!({ "email": "x".repeat(4096), "password": "y" });
    let too_large = h
        .call(Method::POST, "/api/v1/auth/login", As::Anonymous, Some(big))
        .await;
    assert_problem(&too_large, 413, "request.too_large");
    let not_json = h
        .call_with(
            Method::POST,
            "/api/v1/auth/login",
            As::Anonymous,
            None,
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(not_json.status, 400, "{}", not_json.text());
    assert_eq!(
        not_json.header("content-type"),
        Some("application/problem+json")
    );
}

#[tokio::test]
async fn the_openapi_document_is_valid_and_lists_every_route() {
    let h = Harness::new().await;
    let reply = h
        .call(Method::GET, "/api/v1/openapi.json", As::Anonymous, None)
        .await;
    reply.expect(200);
    let doc = &reply.body;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    assert!(schemes.contains_key("BearerAuth") && schemes.contains_key("KeyAuth"));

    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            operations.push(format!("{} {path}", method.to_uppercase()));
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(!id.is_empty(), "{method} {path} has no operationId");
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{method} {path}: no responses");
            // Every error is documented as problem+json.
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        response["content"]["application/problem+json"].is_object(),
                        "{method} {path} {status} is not problem+json"
                    );
                }
            }
            // References resolve.
            check_refs(doc, op);
        }
    }
    for expected in [
        "POST /setup",
        "POST /auth/login",
        "POST /auth/refresh",
        "POST /auth/logout",
        "GET /auth/me",
        "POST /auth/password",
        "POST /auth/password-reset",
        "POST /api-keys",
        "GET /api-keys",
        "DELETE /api-keys/{id}",
        "GET /queries",
        "POST /queries",
        "GET /queries/{id}",
        "PATCH /queries/{id}",
        "DELETE /queries/{id}",
        "GET /queries/{id}/versions",
        "POST /queries/{id}/revert",
        "POST /queries/{id}/fork",
        "POST /queries/{id}/runs",
        "POST /runs",
        "GET /runs",
        "GET /runs/{id}",
        "POST /runs/{id}/cancel",
        "GET /runs/{id}/results",
        "GET /datasources",
        "POST /datasources",
        "GET /datasources/{id}/schema",
        "POST /datasources/{id}/test",
        "GET /users",
        "POST /users",
        "GET /groups",
        "GET /organization",
        "GET /schedules",
        "POST /schedules",
        "GET /visualizations",
        "GET /dashboards",
        "POST /dashboards",
        "GET /canvases",
        "GET /audit-events",
    ] {
        assert!(
            operations.iter().any(|o| o == expected),
            "{expected} not in the document: {operations:?}"
        );
    }
}

fn check_refs(doc: &Value, node: &Value) {
    match node {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                let name = target
                    .strip_prefix("#/components/schemas/")
                    .unwrap_or_else(|| panic!("unexpected $ref {target}"));
                assert!(
                    doc["components"]["schemas"][name].is_object(),
                    "$ref {target} does not resolve"
                );
            }
            for value in map.values() {
                check_refs(doc, value);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| check_refs(doc, v)),
        _ => {}
    }
}

#[tokio::test]
async fn a_wrong_method_answers_405_with_allow() {
    let h = Harness::new().await;
    let reply = h
        .call(
            Method::PUT,
            "/api/v1/queries/some-id",
            As::Bearer(&h.admin),
            None,
        )
        .await;
    assert_problem(&reply, 405, "route.method_not_allowed");
    assert_eq!(reply.header("allow"), Some("DELETE, GET, PATCH"));
    // An empty sort is no sort, not an error.
    h.call(
        Method::GET,
        "/api/v1/queries?sort=&q=",
        As::Bearer(&h.admin),
        None,
    )
    .await
    .expect(200);
    let negative = h
        .call(
            Method::GET,
            "/api/v1/queries?offset=-1",
            As::Bearer(&h.admin),
            None,
        )
        .await;
    assert_problem(&negative, 422, "validation.failed");
    assert_eq!(negative.body["errors"][0]["field"], "offset");
}

#[tokio::test]
async fn if_match_is_required_and_checked_before_the_handler() {
    let h = Harness::new().await;
    let missing = h
        .call(
            Method::PATCH,
            "/api/v1/queries/q1",
            As::Bearer(&h.admin),
            Some(serde_json::json!({ "name": "x" })),
        )
        .await;
    assert_problem(&missing, 428, "precondition.required");
    let malformed = h
        .call_with(
            Method::PATCH,
            "/api/v1/queries/q1",
            As::Bearer(&h.admin),
            Some(serde_json::json!({ "name": "x" })),
            &[("If-Match", "*")],
        )
        .await;
    assert_problem(&malformed, 422, "validation.failed");
    assert_eq!(malformed.body["errors"][0]["field"], "If-Match");
}
