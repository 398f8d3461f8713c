//! Every process of a deployment is observable: `--role runner` and
//! `--role scheduler` serve `/health/live`, `/health/ready` and `/metrics`
//! on their own address, behind the same metrics token as the API, and
//! each reports the work it does.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::observability::{series, value};
use crate::process::{ServerProcess, SharedDeployment, client, pairs};

const TOKEN: &str = "metrics-token-of-the-deployment";

/// `GET path` on `process`; status and body.
async fn get(process: &ServerProcess, path: &str, token: Option<&str>) -> (u16, String) {
    let mut request = client().get(process.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let reply = request.send().await.expect("request");
    let status = reply.status().as_u16();
    (status, reply.text().await.unwrap_or_default())
}

/// The metrics of `process`, after checking they need the token.
async fn metrics(process: &ServerProcess) -> String {
    let (refused, _) = get(process, "/metrics", None).await;
    assert_eq!(refused, 401, "metrics without the token");
    let (status, text) = get(process, "/metrics", Some(TOKEN)).await;
    assert_eq!(status, 200, "{text}");
    text
}

async fn ready(process: &ServerProcess) -> Value {
    let (status, body) = get(process, "/health/ready", None).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// An API call as `token`; the JSON answer.
async fn call(api: &ServerProcess, token: &str, method: &str, path: &str, body: Value) -> Value {
    let request = match method {
        "POST" => client()
            .post(api.url(&format!("/api/v1{path}")))
            .json(&body),
        _ => client().get(api.url(&format!("/api/v1{path}"))),
    };
    let reply = request.bearer_auth(token).send().await.expect("api call");
    assert!(
        reply.status().is_success(),
        "{method} {path}: {}",
        reply.status()
    );
    reply.json().await.unwrap_or(Value::Null)
}

/// Waits until `check` passes on the JSON of `GET path`.
async fn wait_for(api: &ServerProcess, token: &str, path: &str, check: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = call(api, token, "GET", path, Value::Null).await;
        if check(&got) {
            return;
        }
        assert!(Instant::now() < deadline, "{path}: {got}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_and_scheduler_processes_serve_health_and_metrics() {
    let Some(shared) = SharedDeployment::new().await else {
        return;
    };
    let extra = [
        ("LOUPE_METRICS_TOKEN", TOKEN),
        ("LOUPE_SCHEDULE_EVERY", "200ms"),
    ];
    let api = ServerProcess::start(&pairs(&shared.env("api", &extra))).await;
    let mut runner = ServerProcess::spawn("http", &pairs(&shared.env("runner", &extra)));
    let mut scheduler = ServerProcess::spawn("http", &pairs(&shared.env("scheduler", &extra)));
    runner.wait_ready().await;
    scheduler.wait_ready().await;
    for (process, role, runs, schedules) in [
        (&runner, "runner", true, false),
        (&scheduler, "scheduler", false, true),
        (&api, "api", false, false),
    ] {
        let (status, _) = get(process, "/health/live", None).await;
        assert_eq!(status, 200, "{role} is live");
        let ready = ready(process).await;
        assert_eq!(ready["role"], role);
        assert_eq!(ready["checks"]["metadata"], "ok", "{ready}");
        assert_eq!(ready["checks"]["runner"].is_string(), runs, "{ready}");
        assert_eq!(
            ready["checks"]["scheduler"].is_string(),
            schedules,
            "{ready}"
        );
    }

    // A saved query run from the API, then by a schedule made due.
    let token = api.login().await;
    let sources = call(&api, &token, "GET", "/datasources", Value::Null).await;
    let ds = sources["items"][0]["id"]
        .as_str()
        .expect("sample")
        .to_owned();
    let sql = "select count(*) as n from orders";
    let query = call(
        &api,
        &token,
        "POST",
        "/queries",
        json!({ "name": "Orders", "datasource_id": ds, "sql": sql }),
    )
    .await;
    let query = query["id"].as_str().expect("query id").to_owned();
    let started = call(
        &api,
        &token,
        "POST",
        &format!("/queries/{query}/runs"),
        json!({}),
    )
    .await;
    let run = started["run"]["id"].as_str().expect("run id").to_owned();
    wait_for(&api, &token, &format!("/runs/{run}"), |r| {
        r["status"] == "succeeded"
    })
    .await;
    let schedule = json!({ "query_id": query, "cron": "0 6 * * *", "timezone": "UTC" });
    let schedule = call(&api, &token, "POST", "/schedules", schedule).await;
    let schedule = schedule["id"].as_str().expect("schedule id").to_owned();
    let due = loupe_services::meta::now_micros() - 2_000_000;
    shared
        .execute(&format!("UPDATE schedules SET next_run_at = {due}"))
        .await;
    wait_for(
        &api,
        &token,
        &format!("/runs?schedule={schedule}"),
        |page| page["items"][0]["status"] == "succeeded",
    )
    .await;

    let text = metrics(&runner).await;
    let succeeded = [("kind", "files"), ("outcome", "succeeded")];
    assert!(value(&text, "loupe_run_duration_seconds_count", &succeeded) >= 2.0);
    assert!(!series(&text, "loupe_run_queue_wait_seconds_bucket", &succeeded).is_empty());
    assert!(value(&text, "loupe_runs_claimed_total", &[("kind", "files")]) >= 2.0);
    assert_eq!(value(&text, "loupe_build_info", &[("role", "runner")]), 1.0);
    assert_eq!(value(&text, "loupe_queue_depth", &[]), 0.0);

    let text = metrics(&scheduler).await;
    assert!(
        value(
            &text,
            "loupe_schedule_lag_seconds_count",
            &[("outcome", "queued")]
        ) >= 1.0
    );
    assert!(
        value(
            &text,
            "loupe_schedule_lag_seconds_sum",
            &[("outcome", "queued")]
        ) >= 2.0
    );
    assert!(value(&text, "loupe_scheduler_last_tick_timestamp_seconds", &[]) > 0.0);
    assert!(value(&text, "loupe_retention_last_pass_timestamp_seconds", &[]) > 0.0);
    assert!(series(&text, "loupe_run_duration_seconds_count", &[]).is_empty());

    let text = metrics(&api).await;
    assert!(!series(&text, "loupe_http_requests_total", &[("route", "runQuery")]).is_empty());
    assert!(
        series(&text, "loupe_run_duration_seconds_count", &[]).is_empty(),
        "the API runs nothing"
    );
    assert!(value(&text, "loupe_metadata_pool_max_connections", &[]) >= 1.0);

    for process in [runner, scheduler, api] {
        let (ok, log) = process.stop().await;
        assert!(ok, "{log}");
    }
    shared.drop().await;
}

/// A runner process whose ops address is taken does not start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_whose_ops_address_is_taken_does_not_start() {
    let Some(shared) = SharedDeployment::new().await else {
        return;
    };
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let address = taken.local_addr().expect("address").to_string();
    let runner = ServerProcess::spawn(
        "http",
        &pairs(&shared.env("runner", &[("LOUPE_OPS_LISTEN", address.as_str())])),
    );
    let (ok, log) = runner.wait_exit().await;
    assert!(!ok && log.contains("ops_listen"), "{log}");
    shared.drop().await;
}
