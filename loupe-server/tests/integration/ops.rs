//! Health, metrics, the OpenAPI document, security headers and the error
//! shape outside handlers.

use serde_json::Value;

use crate::harness::{Harness, Reply};

#[tokio::test]
async fn health_and_readiness() {
    let h = Harness::new().await;
    h.site().get("/health/live").await.expect(200);
    // The process runs a runner and a scheduler: not ready until they run.
    let waiting = h.site().get("/health/ready").await.expect(503);
    assert_eq!(waiting.body["checks"]["runner"], "not started");
    assert_eq!(waiting.body["checks"]["metadata"], "ok");
    let running = h.state.deployment.start();
    let ready = h.site().get("/health/ready").await.expect(200);
    assert_eq!(ready.body["role"], "all");
    for check in ["metadata", "results", "runner", "scheduler"] {
        assert_eq!(ready.body["checks"][check], "ok", "{check}");
    }

    // Readiness fails once shutdown begins, so balancers stop sending.
    h.state
        .shutting_down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    h.site().get("/health/ready").await.expect(503);
    h.site().get("/health/live").await.expect(200);
    h.state
        .shutting_down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    running.shutdown().await;
    let stopped = h.site().get("/health/ready").await.expect(503);
    assert_eq!(stopped.body["checks"]["shutdown"], "in progress");
    assert_eq!(stopped.body["checks"]["runner"], "stopped");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let h = Harness::new().await;
    h.admin().get("/auth/me").await.expect(200);
    let metrics = h.site().get("/metrics").await.expect(200);
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
        .anonymous()
        .header("X-Request-Id", "trace-abc.123")
        .get("/auth/me")
        .await
        .problem(401, "auth.missing");
    assert_eq!(given.header("x-request-id"), Some("trace-abc.123"));
    assert_eq!(given.body["request_id"], "trace-abc.123");

    // A request id that could forge log lines is replaced.
    let forged = h
        .site()
        .header("X-Request-Id", "a b\tc")
        .get("/health/live")
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
    let docs = h.site().get("/docs").await.expect(200);
    assert!(docs.text().contains("swagger"));
    assert!(
        docs.header("content-security-policy")
            .is_some_and(|c| c.contains("script-src"))
    );
}

#[tokio::test]
async fn errors_outside_handlers_are_problems() {
    let h = Harness::with(|c| c.server.max_body_bytes = 2048).await;
    h.anonymous()
        .get("/nothing-here")
        .await
        .problem(404, "route.not_found");
    let big = serde_json::json!({ "email": "x".repeat(4096), "password": "y" });
    h.anonymous()
        .post("/auth/login", big)
        .await
        .problem(413, "request.too_large");
    h.anonymous()
        .header("content-type", "application/json")
        .post_empty("/auth/login")
        .await
        .problem_json(400);
}

#[tokio::test]
async fn the_openapi_document_is_valid_and_lists_every_route() {
    let h = Harness::new().await;
    let reply = h.anonymous().get("/openapi.json").await.expect(200);
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
    // Every route the server has, so a route that disappears (or one
    // added without updating this list) fails here.
    let expected = [
        "DELETE /alerts/{id}",
        "DELETE /api-keys/{id}",
        "DELETE /canvases/{id}",
        "DELETE /dashboards/{id}",
        "DELETE /dashboards/{id}/share/{share_id}",
        "DELETE /datasources/{id}",
        "DELETE /destinations/{id}",
        "DELETE /embedding/secrets/{id}",
        "DELETE /groups/{id}",
        "DELETE /groups/{id}/grants/{datasource_id}",
        "DELETE /groups/{id}/members/{user_id}",
        "DELETE /queries/{id}",
        "DELETE /queries/{id}/share/{share_id}",
        "DELETE /schedules/{id}",
        "DELETE /subscriptions/{id}",
        "DELETE /visualizations/{id}",
        "DELETE /visualizations/{id}/share/{share_id}",
        "GET /alerts",
        "GET /alerts/{id}",
        "GET /api-keys",
        "GET /audit-events",
        "GET /auth/me",
        "GET /canvases",
        "GET /canvases/{id}",
        "GET /connectors",
        "GET /dashboards",
        "GET /dashboards/by-slug/{slug}",
        "GET /dashboards/{id}",
        "GET /dashboards/{id}/shares",
        "GET /datasources",
        "GET /datasources/{id}",
        "GET /datasources/{id}/grants",
        "GET /datasources/{id}/schema",
        "GET /deliveries",
        "GET /deliveries/{id}",
        "GET /destinations",
        "GET /destinations/{id}",
        "GET /embed/{token}",
        "GET /embedding/secrets",
        "GET /groups",
        "GET /groups/{id}",
        "GET /links/runs/{id}/download",
        "GET /links/visualizations/{id}/image",
        "GET /organization",
        "GET /public/{token}",
        "GET /queries",
        "GET /queries/{id}",
        "GET /queries/{id}/results/latest.csv",
        "GET /queries/{id}/results/latest.json",
        "GET /queries/{id}/results/latest.parquet",
        "GET /queries/{id}/results/latest.xlsx",
        "GET /queries/{id}/shares",
        "GET /queries/{id}/versions",
        "GET /runs",
        "GET /runs/{id}",
        "GET /runs/{id}/download",
        "GET /runs/{id}/results",
        "GET /schedules",
        "GET /schedules/{id}",
        "GET /subscriptions",
        "GET /subscriptions/{id}",
        "GET /users",
        "GET /users/{id}",
        "GET /visualizations",
        "GET /visualizations/{id}",
        "GET /visualizations/{id}/image",
        "GET /visualizations/{id}/shares",
        "PATCH /datasources/{id}",
        "PATCH /organization",
        "PATCH /queries/{id}",
        "PATCH /users/{id}",
        "POST /alerts",
        "POST /api-keys",
        "POST /auth/login",
        "POST /auth/logout",
        "POST /auth/password",
        "POST /auth/password-reset",
        "POST /auth/refresh",
        "POST /canvases",
        "POST /dashboards",
        "POST /dashboards/{id}/run",
        "POST /dashboards/{id}/share",
        "POST /datasources",
        "POST /datasources/{id}/settings-key",
        "POST /datasources/{id}/test",
        "POST /destinations",
        "POST /destinations/{id}/test",
        "POST /embedding/secrets",
        "POST /groups",
        "POST /queries",
        "POST /queries/{id}/fork",
        "POST /queries/{id}/revert",
        "POST /queries/{id}/runs",
        "POST /queries/{id}/share",
        "POST /runs",
        "POST /runs/{id}/cancel",
        "POST /schedules",
        "POST /schedules/{id}/disable",
        "POST /schedules/{id}/enable",
        "POST /setup",
        "POST /subscriptions",
        "POST /users",
        "POST /users/{id}/password-reset",
        "POST /users/{id}/unlock",
        "POST /visualizations",
        "POST /visualizations/{id}/share",
        "PUT /alerts/{id}",
        "PUT /canvases/{id}",
        "PUT /dashboards/{id}",
        "PUT /destinations/{id}",
        "PUT /groups/{id}/grants/{datasource_id}",
        "PUT /groups/{id}/members/{user_id}",
        "PUT /schedules/{id}",
        "PUT /subscriptions/{id}",
        "PUT /visualizations/{id}",
    ];
    let mut listed = operations.clone();
    listed.sort();
    assert_eq!(listed, expected, "the document's operations changed");
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
        .admin()
        .put_empty("/queries/some-id")
        .await
        .problem(405, "route.method_not_allowed");
    assert_eq!(reply.header("allow"), Some("DELETE, GET, PATCH"));
    // An empty sort is no sort, not an error.
    h.admin().get("/queries?sort=&q=").await.expect(200);
    h.admin().get("/queries?offset=-1").await.invalid("offset");
}

#[tokio::test]
async fn if_match_is_required_and_checked_before_the_handler() {
    let h = Harness::new().await;
    let body = || serde_json::json!({ "name": "x" });
    h.admin()
        .patch("/queries/q1", body())
        .await
        .problem(428, "precondition.required");
    h.admin()
        .if_match("*")
        .patch("/queries/q1", body())
        .await
        .invalid("If-Match");
}

#[tokio::test]
async fn secrets_are_generated_private_and_weak_ones_refused() {
    use std::os::unix::fs::PermissionsExt;
    let h = Harness::new().await;
    for name in ["signing.key", "secret.key"] {
        let mode = std::fs::metadata(h.dir.path().join("data").join(name))
            .expect("generated secret")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    for weak in [
        "too-short",
        "changeme-changeme-changeme-changeme-0123456789",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = loupe_server::Config {
            deployment: loupe_services::DeploymentConfig {
                data_dir: dir.path().to_path_buf(),
                signing_secret: Some(loupe_server::config::Secret::from(weak)),
                ..loupe_services::DeploymentConfig::default()
            },
            ..loupe_server::Config::default()
        };
        let refused = loupe_server::Server::prepare(config).await.unwrap_err();
        assert!(refused.to_string().contains("signing_secret"), "{refused}");
    }
}

/// `GET /health/live` sent from `origin`.
async fn live_from(h: &Harness, origin: &str) -> Reply {
    h.site().header("Origin", origin).get("/health/live").await
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let h = Harness::with(|c| {
        c.server.cors.allowed_origins = vec!["https://app.acme.test".to_owned()];
        c.server.hsts = true;
        c.deployment.public_url = Some("https://loupe.acme.test".to_owned());
    })
    .await;
    let allowed = live_from(&h, "https://app.acme.test").await;
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.acme.test")
    );
    assert!(
        allowed
            .header("strict-transport-security")
            .is_some_and(|v| v.starts_with("max-age="))
    );
    let other = live_from(&h, "https://evil.test").await;
    assert!(other.header("access-control-allow-origin").is_none());

    // Without configured origins, no other origin may call.
    let closed = Harness::new().await;
    let reply = live_from(&closed, "https://app.acme.test").await;
    assert!(reply.header("access-control-allow-origin").is_none());
}
