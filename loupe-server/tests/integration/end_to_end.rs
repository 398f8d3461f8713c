//! The real `loupe-server` binary on a free loopback port, walked through
//! a user's journey over HTTP against a real PostgreSQL.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::process::{PASSWORD, ServerProcess, pg_options, postgres_url};

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body").to_vec();
        (status, headers, bytes)
    }

    async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        expect: u16,
    ) -> Value {
        let (status, _, bytes) = self.send(method.clone(), path, body).await;
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(status, expect, "{method} {path}: {text}");
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_journey_over_http_against_the_real_binary() {
    let Some(pg) = postgres_url() else { return };
    let table = format!("e2e_{}", uuid::Uuid::now_v7().simple());
    let db = sqlx::PgPool::connect(&pg).await.expect("postgres");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (id int PRIMARY KEY, country text NOT NULL, amount numeric(10,2) NOT NULL);
         INSERT INTO {table} SELECT g, CASE WHEN g % 3 = 0 THEN 'FR' ELSE 'DE' END, g * 1.25 FROM generate_series(1, 300) g;"
    )))
    .execute(&db)
    .await
    .expect("test table");

    // The schedule below fires every second: below the default minimum.
    let server = ServerProcess::start(&[
        ("LOUPE_SCHEDULE_EVERY", "200ms"),
        ("LOUPE_QUOTAS__MIN_SCHEDULE_INTERVAL", "1s"),
    ])
    .await;
    let base = server.url("/api/v1");
    let token = server.login().await;
    let http = reqwest::Client::new();
    let c = Client {
        http: http.clone(),
        base: base.clone(),
        token,
    };
    use reqwest::Method as M;

    // The sample datasource is there; add PostgreSQL.
    let sources = c.json(M::GET, "/datasources", None, 200).await;
    assert!(
        sources["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|d| d["name"] == "Sample data"))
    );
    let ds = c
        .json(
            M::POST,
            "/datasources",
            Some(json!({ "name": "Warehouse", "kind": "postgres", "options": pg_options(&pg) })),
            201,
        )
        .await;
    let ds_id = ds["id"].as_str().expect("datasource id").to_owned();
    assert!(
        !ds.to_string().contains("loupe-test-pw"),
        "secret returned: {ds}"
    );
    c.json(M::POST, &format!("/datasources/{ds_id}/test"), None, 204)
        .await;

    // A parameterized query, run and polled.
    let query = c
        .json(
            M::POST,
            "/queries",
            Some(json!({
                "name": "Orders of a country",
                "datasource_id": ds_id,
                "sql": format!("select id, country, amount from {table} where country = {{{{ country }}}} order by id"),
                "parameters": [{ "name": "country", "type": "text", "default": "DE" }]
            })),
            201,
        )
        .await;
    let query_id = query["id"].as_str().expect("query id").to_owned();
    let started = c
        .json(
            M::POST,
            &format!("/queries/{query_id}/runs"),
            Some(json!({ "parameters": { "country": "FR" } })),
            202,
        )
        .await;
    let run_id = started["run"]["id"].as_str().expect("run id").to_owned();
    let run = poll(&c, &run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["rows"], 100);

    // Page through it.
    let page = c
        .json(
            M::GET,
            &format!("/runs/{run_id}/results?offset=10&limit=5"),
            None,
            200,
        )
        .await;
    let rows = page["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0][0], 33, "{page}");
    assert_eq!(rows[0][1], "FR");

    // Download CSV and Parquet, and read them back.
    let (status, headers, csv) = c
        .send(M::GET, &format!("/runs/{run_id}/download?format=csv"), None)
        .await;
    assert_eq!(status, 200);
    assert!(
        headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/csv"))
    );
    let csv = String::from_utf8(csv).expect("utf-8 csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 101, "header + 100 rows");
    assert!(lines[0].starts_with("id,country,amount"), "{}", lines[0]);
    assert!(lines[11].starts_with("33,FR,41.25"), "{}", lines[11]);
    let (status, _, parquet_bytes) = c
        .send(
            M::GET,
            &format!("/runs/{run_id}/download?format=parquet"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(parquet_bytes),
    )
    .expect("parquet")
    .build()
    .expect("reader");
    let mut total = 0;
    let mut first_id = None;
    for batch in reader {
        let batch = batch.expect("batch");
        if first_id.is_none() {
            let ids = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Int64)
                .expect("cast");
            let ids = ids
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .expect("ints");
            first_id = Some(ids.value(0));
        }
        total += batch.num_rows();
    }
    assert_eq!((total, first_id), (100, Some(3)));

    // Schedule it every second; the scheduler in the server runs it.
    let schedule = c
        .json(
            M::POST,
            "/schedules",
            Some(json!({ "query_id": query_id, "cron": "* * * * * *", "timezone": "UTC", "parameters": { "country": "DE" }, "enabled": true })),
            201,
        )
        .await;
    let schedule_id = schedule["id"].as_str().expect("schedule id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let scheduled_run = loop {
        let runs = c
            .json(
                M::GET,
                &format!("/runs?query={query_id}&sort=-queued_at"),
                None,
                200,
            )
            .await;
        let found = runs["items"].as_array().and_then(|items| {
            items
                .iter()
                .find(|r| r["schedule_id"] == schedule_id.as_str() && r["status"] == "succeeded")
                .cloned()
        });
        if let Some(run) = found {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "no scheduled run succeeded: {runs}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(scheduled_run["rows"], 200);

    // A dashboard over a visualization of the query.
    let viz = c
        .json(
            M::POST,
            "/visualizations",
            Some(
                json!({ "query_id": query_id, "type": "table", "name": "All rows", "options": {} }),
            ),
            201,
        )
        .await;
    let dashboard = c
        .json(
            M::POST,
            "/dashboards",
            Some(json!({
                "name": "Sales",
                "widgets": [{ "kind": "visualization", "visualization_id": viz["id"], "x": 0, "y": 0, "w": 6, "h": 4 }]
            })),
            201,
        )
        .await;
    let dashboard_id = dashboard["id"].as_str().expect("dashboard id").to_owned();
    assert_eq!(
        dashboard["widgets"].as_array().map(Vec::len),
        Some(1),
        "{dashboard}"
    );

    // Delete things.
    c.json(M::DELETE, &format!("/dashboards/{dashboard_id}"), None, 204)
        .await;
    c.json(M::DELETE, &format!("/schedules/{schedule_id}"), None, 204)
        .await;
    c.json(M::DELETE, &format!("/queries/{query_id}"), None, 204)
        .await;
    c.json(M::GET, &format!("/runs/{run_id}"), None, 404).await;
    c.json(M::DELETE, &format!("/datasources/{ds_id}"), None, 204)
        .await;

    // SIGTERM: a clean stop.
    let (success, log) = server.stop().await;
    assert!(success, "loupe-server did not exit cleanly:\n{log}");
    assert!(!log.contains(PASSWORD), "the password reached the log");
    assert!(
        !log.contains("loupe-test-pw"),
        "a datasource password reached the log"
    );
    assert!(
        log.lines().any(|l| l.contains("\"request_id\"")),
        "no request id in the log:\n{log}"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
        .execute(&db)
        .await
        .expect("drop");
}

async fn poll(c: &Client, run_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = c
            .json(reqwest::Method::GET, &format!("/runs/{run_id}"), None, 200)
            .await;
        if matches!(
            run["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return run;
        }
        assert!(Instant::now() < deadline, "run not finished: {run}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_speaks_tls_when_configured() {
    let certs = tempfile::tempdir().expect("temp dir");
    let cert = certs.path().join("cert.pem");
    let key = certs.path().join("key.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let cert = cert.display().to_string();
    let key = key.display().to_string();
    let server = ServerProcess::start_as(
        "https",
        &[
            ("LOUPE_TLS__CERT_FILE", cert.as_str()),
            ("LOUPE_TLS__KEY_FILE", key.as_str()),
            ("LOUPE_HSTS", "true"),
        ],
    )
    .await;
    let reply = crate::process::client()
        .get(server.url("/health/live"))
        .send()
        .await
        .expect("https request");
    assert!(reply.status().is_success());
    assert!(reply.headers().contains_key("strict-transport-security"));
    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/health/live", server.port))
        .send()
        .await;
    assert!(plain.is_err() || plain.is_ok_and(|r| !r.status().is_success()));
    let (success, log) = server.stop().await;
    assert!(success, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_runner_processes_share_postgres_metadata() {
    let Some(pg) = postgres_url() else { return };
    let schema = format!("roles_{}", uuid::Uuid::now_v7().simple());
    let db = sqlx::PgPool::connect(&pg).await.expect("postgres");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&db)
        .await
        .expect("schema");
    let separator = if pg.contains('?') { '&' } else { '?' };
    let metadata = format!("{pg}{separator}options[search_path]={schema}");
    let results = tempfile::tempdir().expect("temp dir");
    let results = results.path().display().to_string();
    let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let signing = "q8Vv1rX0m3KpZ7tL2nY6wE4sA9dH5jF0gB1cN8uTzz";
    let shared = |role: &'static str| {
        vec![
            ("LOUPE_ROLE", role),
            ("LOUPE_METADATA_URL", metadata.as_str()),
            ("LOUPE_RESULTS_DIR", results.as_str()),
            ("LOUPE_SECRET_KEY", key),
            ("LOUPE_SIGNING_SECRET", signing),
        ]
    };
    let api = ServerProcess::start(&shared("api")).await;
    let token = api.login().await;
    let http = crate::process::client();
    let sources: Value = http
        .get(api.url("/api/v1/datasources"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("datasources")
        .json()
        .await
        .expect("json");
    let ds = sources["items"][0]["id"]
        .as_str()
        .expect("sample datasource");
    let started: Value = http
        .post(api.url("/api/v1/runs"))
        .bearer_auth(&token)
        .json(&json!({ "datasource_id": ds, "sql": "select count(*) as n from customers" }))
        .send()
        .await
        .expect("run")
        .json()
        .await
        .expect("json");
    let run_id = started["run"]["id"].as_str().expect("run id").to_owned();
    let c = Client {
        http: http.clone(),
        base: api.url("/api/v1"),
        token: token.clone(),
    };
    // The API process runs nothing itself.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let waiting = c
        .json(reqwest::Method::GET, &format!("/runs/{run_id}"), None, 200)
        .await;
    assert_eq!(waiting["status"], "queued", "{waiting}");

    let runner = ServerProcess::spawn("http", &shared("runner"));
    let run = poll(&c, &run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let page = c
        .json(
            reqwest::Method::GET,
            &format!("/runs/{run_id}/results"),
            None,
            200,
        )
        .await;
    assert!(page["rows"][0][0].as_i64().is_some_and(|n| n > 0), "{page}");

    let (ok, log) = runner.stop().await;
    assert!(ok, "{log}");
    let (ok, log) = api.stop().await;
    assert!(ok, "{log}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&db)
        .await
        .expect("drop schema");
}
