//! With `error_tracking.dsn` set, the server's `internal` and
//! `unavailable` errors and its failed runs reach a Sentry-compatible
//! endpoint: here a real HTTP listener on loopback that keeps the
//! envelopes, which the test decodes. Each event names its request (id
//! and route), organization, user (by id), release and environment, is
//! grouped by its code, and carries no email address, secret or SQL.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poem::web::{Data, Path};
use poem::{EndpointExt, Route, handler, post};
use sentry::Envelope;
use sentry::protocol::Event;
use serde_json::{Value, json};

use crate::process::{ADMIN, ServerProcess, client, serve_on_loopback};

type Received = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

#[handler]
async fn receive(
    req: &poem::Request,
    project: Path<String>,
    body: poem::Body,
    received: Data<&Received>,
) -> &'static str {
    let auth = req.header("x-sentry-auth").unwrap_or_default().to_owned();
    let bytes = body.into_vec().await.unwrap_or_default();
    received
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((project.0, auth, bytes));
    "{}"
}

/// An envelope endpoint on a free port: what it received, its task, and
/// the DSN that points at it.
fn receiver() -> (
    Received,
    tokio::task::JoinHandle<std::io::Result<()>>,
    String,
) {
    let received: Received = Arc::default();
    let (task, port) = serve_on_loopback(
        Route::new()
            .at("/api/:project/envelope/", post(receive))
            .data(received.clone()),
    );
    (
        received,
        task,
        format!("http://loupe-test-key@127.0.0.1:{port}/42"),
    )
}

/// The events received so far, and every body as text.
fn events(received: &Received) -> (Vec<Event<'static>>, String) {
    let received = received.lock().unwrap_or_else(|p| p.into_inner());
    let mut events = Vec::new();
    let mut text = String::new();
    for (project, auth, body) in received.iter() {
        assert_eq!(project, "42", "the DSN's project");
        assert!(auth.contains("sentry_key=loupe-test-key"), "{auth}");
        text.push_str(&String::from_utf8_lossy(body));
        let envelope = Envelope::from_slice(body).expect("an envelope");
        if let Some(event) = envelope.event() {
            events.push(event.clone());
        }
    }
    (events, text)
}

/// Waits until an event passes `matches`; returns it and every body.
async fn wait_event(
    received: &Received,
    what: &str,
    matches: impl Fn(&Event<'static>) -> bool,
) -> (Event<'static>, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (events, text) = events(received);
        if let Some(event) = events.into_iter().find(|e| matches(e)) {
            return (event, text);
        }
        assert!(Instant::now() < deadline, "no event for {what}; got {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tag<'a>(event: &'a Event<'static>, name: &str) -> &'a str {
    event.tags.get(name).map_or("", String::as_str)
}

async fn call(
    server: &ServerProcess,
    token: &str,
    method: &str,
    path: &str,
    body: Value,
) -> (u16, String, Value) {
    let url = server.url(&format!("/api/v1{path}"));
    let request = match method {
        "POST" => client().post(url).json(&body),
        _ => client().get(url),
    };
    let reply = request.bearer_auth(token).send().await.expect("api call");
    let status = reply.status().as_u16();
    let id = reply
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, id, reply.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_failed_runs_reach_the_endpoint_scrubbed_and_grouped() {
    let (received, endpoint, dsn) = receiver();
    let results = tempfile::tempdir().expect("temp dir");
    let results_dir = results.path().join("results");
    let server = ServerProcess::start(&[
        ("LOUPE_ERROR_TRACKING__DSN", dsn.as_str()),
        ("LOUPE_ERROR_TRACKING__ENVIRONMENT", "e2e"),
        ("LOUPE_ERROR_TRACKING__RELEASE", "loupe@e2e-1"),
        (
            "LOUPE_RESULTS_DIR",
            results_dir.to_str().expect("utf-8 path"),
        ),
    ])
    .await;
    let token = server.login().await;
    let (_, _, me) = call(&server, &token, "GET", "/auth/me", Value::Null).await;
    let user_id = me["user"]["id"].as_str().expect("my id").to_owned();
    let org_id = me["organization"]["id"]
        .as_str()
        .expect("my organization")
        .to_owned();
    let (_, _, sources) = call(&server, &token, "GET", "/datasources", Value::Null).await;
    let sample = sources["items"][0]["id"]
        .as_str()
        .expect("sample")
        .to_owned();

    // Not tracked: a missing object, a bad token.
    let (status, missing_id, _) =
        call(&server, &token, "GET", "/queries/q_missing", Value::Null).await;
    assert_eq!(status, 404);
    let (status, refused_id, _) =
        call(&server, "not-a-token", "GET", "/queries", Value::Null).await;
    assert_eq!(status, 401);

    // `unavailable`: a PostgreSQL datasource nobody listens for, with a
    // password that must not leave the server.
    let (status, _, created) = call(
        &server,
        &token,
        "POST",
        "/datasources",
        json!({
            "name": "Nobody home",
            "kind": "postgres",
            "options": {
                "host": "127.0.0.1", "port": 1, "user": "u",
                "password": "hunter2-never-sent", "database": "d"
            }
        }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let ds = created["id"].as_str().expect("datasource id").to_owned();
    let (status, tested_id, problem) = call(
        &server,
        &token,
        "POST",
        &format!("/datasources/{ds}/test"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 503, "{problem}");
    let (unavailable, _) = wait_event(&received, "the unavailable datasource", |e| {
        tag(e, "request_id") == tested_id
    })
    .await;
    assert_eq!(tag(&unavailable, "kind"), "unavailable");
    assert_eq!(
        tag(&unavailable, "code"),
        problem["code"].as_str().unwrap_or("?")
    );
    assert_eq!(tag(&unavailable, "route"), "/api/v1/datasources/{id}/test");
    assert_eq!(tag(&unavailable, "org_id"), org_id);
    assert_eq!(
        unavailable.user.as_ref().and_then(|u| u.id.as_deref()),
        Some(user_id.as_str())
    );
    assert_eq!(unavailable.release.as_deref(), Some("loupe@e2e-1"));
    assert_eq!(unavailable.environment.as_deref(), Some("e2e"));
    assert_eq!(
        unavailable.fingerprint.first().map(|f| f.as_ref()),
        Some(tag(&unavailable, "code")),
        "grouped by its code"
    );

    // A failed run: its SQL (with an address in it) is never sent.
    let (status, _, started) = call(
        &server,
        &token,
        "POST",
        "/runs",
        json!({ "datasource_id": sample, "sql": "select 'leaked.person@example.org' as e from no_such_table_xyz" }),
    )
    .await;
    assert_eq!(status, 202, "{started}");
    let run_id = started["run"]["id"].as_str().expect("run id").to_owned();
    let (failed, _) = wait_event(&received, "the failed run", |e| tag(e, "run_id") == run_id).await;
    assert_eq!(tag(&failed, "run_failed"), "true");
    assert_eq!(tag(&failed, "datasource_kind"), "files");
    assert_eq!(tag(&failed, "org_id"), org_id);
    assert_eq!(
        failed.user.as_ref().and_then(|u| u.id.as_deref()),
        Some(user_id.as_str())
    );
    assert!(!tag(&failed, "code").is_empty());

    // A stored result that is no longer Parquet: the store failed.
    let (status, _, started) = call(
        &server,
        &token,
        "POST",
        "/runs",
        json!({ "datasource_id": sample, "sql": "select 1 as one" }),
    )
    .await;
    assert_eq!(status, 202, "{started}");
    let ok_run = started["run"]["id"].as_str().expect("run id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, run) = call(
            &server,
            &token,
            "GET",
            &format!("/runs/{ok_run}"),
            Value::Null,
        )
        .await;
        if run["status"] == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "{run}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut corrupted = 0;
    for entry in std::fs::read_dir(&results_dir).expect("results dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "parquet") {
            std::fs::write(&path, b"not parquet at all").expect("overwrite");
            corrupted += 1;
        }
    }
    assert!(
        corrupted >= 1,
        "no stored result in {}",
        results_dir.display()
    );
    let (status, page_id, problem) = call(
        &server,
        &token,
        "GET",
        &format!("/runs/{ok_run}/results"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["code"], "store.failed");
    let (unreadable, text) = wait_event(&received, "the unreadable result", |e| {
        tag(e, "request_id") == page_id
    })
    .await;
    assert_eq!(tag(&unreadable, "code"), "store.failed");
    assert_eq!(tag(&unreadable, "route"), "/api/v1/runs/{id}/results");
    assert_eq!(tag(&unreadable, "org_id"), org_id);
    assert_eq!(
        unreadable.fingerprint.first().map(|f| f.as_ref()),
        Some(tag(&unreadable, "code"))
    );

    // What the endpoint never got.
    let (events, _) = events(&received);
    for id in [&missing_id, &refused_id] {
        assert!(
            !events.iter().any(|e| tag(e, "request_id") == id.as_str()),
            "a 4xx was sent: {text}"
        );
    }
    for secret in [
        ADMIN,
        "leaked.person@example.org",
        "no_such_table_xyz",
        "hunter2-never-sent",
        token.as_str(),
    ] {
        assert!(!text.contains(secret), "{secret:?} was sent: {text}");
    }
    let (success, log) = server.stop().await;
    assert!(success, "{log}");
    endpoint.abort();
}
