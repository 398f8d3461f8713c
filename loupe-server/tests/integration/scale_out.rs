//! Scale-out as across hosts: one `loupe-server --role api` and two
//! `loupe-server --role runner` processes, each in a directory of its own,
//! sharing nothing but a PostgreSQL metadata store (over TLS, with the
//! server's certificate and host name checked) and an S3 bucket. Runs
//! queued through the API are executed by both runners; pages and downloads
//! come from the bucket through the API; no process keeps a result on its
//! own disk.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{Value, json};

use crate::process::{S3Server, ServerProcess, client, pg_options, postgres_url, test_server};

/// Runs queued at once; each takes a while in the database, so that one
/// runner cannot drain the queue before the other looks at it.
const RUNS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runners_elsewhere_share_only_postgres_and_an_s3_bucket() {
    let Some(pg) = postgres_url() else { return };
    let Some(ca) = test_server("LOUPE_TEST_POSTGRES_CA", "PostgreSQL with TLS") else {
        return;
    };
    let Some(s3) = S3Server::from_env() else {
        return;
    };
    let id = uuid::Uuid::now_v7().simple().to_string();
    let schema = format!("scale_{id}");
    let db = sqlx::PgPool::connect(&pg).await.expect("postgres");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&db)
        .await
        .expect("schema");
    let metadata = verified_tls(&pg, &ca, &schema);
    let prefix = format!("scale-out-{id}");
    let results_url = format!("s3://{}/{prefix}", s3.bucket);
    // The S3 secret as a mounted secret file, outside every process's
    // directory.
    let secrets = tempfile::tempdir().expect("temp dir");
    let secret_file = secrets.path().join("s3-secret");
    std::fs::write(&secret_file, format!("{}\n", s3.secret_access_key)).expect("secret file");
    let secret_file = secret_file.display().to_string();

    let env = |role: &str, name: Option<&str>| -> Vec<(String, String)> {
        let mut env = vec![
            ("LOUPE_ROLE", role),
            ("LOUPE_METADATA_URL", metadata.as_str()),
            ("LOUPE_RESULTS_URL", results_url.as_str()),
            ("LOUPE_S3__ENDPOINT", s3.endpoint.as_str()),
            ("LOUPE_S3__REGION", s3.region.as_str()),
            ("LOUPE_S3__ACCESS_KEY_ID", s3.access_key_id.as_str()),
            ("LOUPE_S3__SECRET_ACCESS_KEY_FILE", secret_file.as_str()),
            (
                "LOUPE_SECRET_KEY",
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            ),
            (
                "LOUPE_SIGNING_SECRET",
                "q8Vv1rX0m3KpZ7tL2nY6wE4sA9dH5jF0gB1cN8uTzz",
            ),
            ("LOUPE_RUNNER__WORKERS", "1"),
        ];
        if let Some(name) = name {
            env.push(("LOUPE_RUNNER__NAME", name));
        }
        env.into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    let api = ServerProcess::start(&borrowed(&env("api", None))).await;
    let c = Api::login(&api).await;

    let ds = c
        .json(
            reqwest::Method::POST,
            "/datasources",
            Some(json!({ "name": "Warehouse", "kind": "postgres", "options": pg_options(&pg) })),
            201,
        )
        .await;
    let ds = ds["id"].as_str().expect("datasource id").to_owned();
    let mut runs = BTreeMap::new();
    for i in 0..RUNS {
        let rows = 1000 + i;
        let sql = format!(
            "with pause as materialized (select pg_sleep(0.4)) \
             select g as id, md5(g::text) as digest from pause, generate_series(1, {rows}) g order by g"
        );
        let started = c
            .json(
                reqwest::Method::POST,
                "/runs",
                Some(json!({ "datasource_id": ds, "sql": sql })),
                202,
            )
            .await;
        let run = started["run"]["id"].as_str().expect("run id").to_owned();
        runs.insert(run, rows);
    }

    let runner_a = ServerProcess::spawn("http", &borrowed(&env("runner", Some("runner-a"))));
    let runner_b = ServerProcess::spawn("http", &borrowed(&env("runner", Some("runner-b"))));
    for (run, rows) in &runs {
        let done = c.finished(run).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["rows"].as_u64(), Some(*rows as u64), "{done}");
    }

    // Pages and downloads, served by the API from the bucket.
    for (run, rows) in &runs {
        let page = c
            .json(
                reqwest::Method::GET,
                &format!("/runs/{run}/results?offset=5&limit=3"),
                None,
                200,
            )
            .await;
        assert_eq!(page["total_rows"].as_u64(), Some(*rows as u64), "{page}");
        assert_eq!(page["rows"][0][0], 6, "{page}");
        assert_eq!(page["rows"].as_array().map(Vec::len), Some(3), "{page}");
    }
    let (last, rows) = runs.iter().next_back().expect("a run");
    let csv = c.bytes(&format!("/runs/{last}/download?format=csv")).await;
    let csv = String::from_utf8(csv).expect("utf-8 csv");
    assert_eq!(csv.lines().count(), rows + 1, "header and every row");
    assert!(
        csv.starts_with("id,digest"),
        "{}",
        &csv[..40.min(csv.len())]
    );
    let parquet = c
        .bytes(&format!("/runs/{last}/download?format=parquet"))
        .await;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(parquet),
    )
    .expect("parquet")
    .build()
    .expect("reader");
    let downloaded: usize = reader.map(|b| b.expect("batch").num_rows()).sum();
    assert_eq!(downloaded, *rows);

    // Which runner ran what: every run exactly once, by both runners.
    let mut ran_by = BTreeMap::new();
    let mut dirs = Vec::new();
    for (name, runner) in [("runner-a", runner_a), ("runner-b", runner_b)] {
        let (ok, log, dir) = runner.stop_keeping_dir().await;
        assert!(ok, "{name} did not stop cleanly:\n{log}");
        for (run, by) in succeeded_runs(&log) {
            assert_eq!(by, name, "{name} logged another runner's name");
            assert!(ran_by.insert(run.clone(), by).is_none(), "{run} ran twice");
        }
        // A runner keeps nothing on its own disk: not even a data directory.
        assert!(
            !dir.path().join("data").exists(),
            "{name} made a data directory: {:?}",
            files_in(dir.path())
        );
        dirs.push((name, dir));
    }
    assert_eq!(
        ran_by.keys().cloned().collect::<BTreeSet<_>>(),
        runs.keys().cloned().collect::<BTreeSet<_>>(),
        "every run is logged by the runner that ran it"
    );
    let busy: BTreeSet<_> = ran_by.values().cloned().collect();
    assert_eq!(busy.len(), 2, "both runners took work: {ran_by:?}");
    let (ok, log, api_dir) = api.stop_keeping_dir().await;
    assert!(ok, "the API did not stop cleanly:\n{log}");
    assert!(
        succeeded_runs(&log).is_empty(),
        "the API process ran runs itself"
    );
    dirs.push(("api", api_dir));

    // The results are in the bucket, one object per run, and nowhere else.
    let stored: BTreeSet<String> = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
        "SELECT result_location FROM {schema}.runs WHERE status = 'succeeded'"
    )))
    .fetch_all(&db)
    .await
    .expect("result locations")
    .into_iter()
    .map(|location| format!("{prefix}/{location}.parquet"))
    .collect();
    assert_eq!(stored.len(), RUNS);
    let bucket = bucket(&s3);
    let objects: BTreeSet<String> = bucket
        .list(Some(&object_store::path::Path::from(prefix.as_str())))
        .map_ok(|o| o.location.to_string())
        .try_collect()
        .await
        .expect("list the bucket");
    assert_eq!(objects, stored, "the bucket holds exactly the results");
    for (name, dir) in &dirs {
        let results: Vec<PathBuf> = files_in(dir.path())
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "parquet"))
            .collect();
        assert!(results.is_empty(), "{name} stored results: {results:?}");
        assert!(!dir.path().join("data/results").exists(), "{name}");
    }

    for object in &objects {
        bucket
            .delete(&object_store::path::Path::from(object.as_str()))
            .await
            .expect("delete");
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&db)
        .await
        .expect("drop schema");
}

/// `pg` (the test server, TLS off) with TLS on, the certificate checked
/// against `ca` and issued for the host, and `schema` as the search path.
fn verified_tls(pg: &str, ca: &str, schema: &str) -> String {
    let mut url = url::Url::parse(pg).expect("postgres url");
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "sslmode" && k != "sslrootcert")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("sslmode", "verify-full")
        .append_pair("sslrootcert", ca)
        .append_pair("options[search_path]", schema);
    url.to_string()
}

fn borrowed(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// The runs a process logged as succeeded, with the runner it named.
fn succeeded_runs(log: &str) -> Vec<(String, String)> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["fields"]["message"] == "run succeeded")
        .map(|entry| {
            let field = |name: &str| {
                entry["fields"][name]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            };
            (field("run"), field("runner"))
        })
        .collect()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(files_in(&path));
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// The test bucket, read as any S3 client would.
fn bucket(s3: &S3Server) -> impl ObjectStore {
    AmazonS3Builder::new()
        .with_endpoint(&s3.endpoint)
        .with_region(&s3.region)
        .with_bucket_name(&s3.bucket)
        .with_access_key_id(&s3.access_key_id)
        .with_secret_access_key(&s3.secret_access_key)
        .with_allow_http(true)
        .build()
        .expect("s3 client")
}

/// The API of a server process, signed in as its admin.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn login(server: &ServerProcess) -> Self {
        Self {
            http: client(),
            base: server.url("/api/v1"),
            token: server.login().await,
        }
    }

    async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        expect: u16,
    ) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        assert_eq!(status, expect, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn bytes(&self, path: &str) -> Vec<u8> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status().as_u16(), 200, "GET {path}");
        response.bytes().await.expect("body").to_vec()
    }

    /// Waits until run `id` has ended; returns it.
    async fn finished(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let run = self
                .json(reqwest::Method::GET, &format!("/runs/{id}"), None, 200)
                .await;
            if matches!(
                run["status"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            ) {
                return run;
            }
            assert!(Instant::now() < deadline, "run not finished: {run}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
