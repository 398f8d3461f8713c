//! `loupe runner` as a real process over a PostgreSQL metadata store and a
//! PostgreSQL datasource: killed mid-run, its run is finished by another
//! runner once the lease runs out, with exactly one stored result; stopped
//! with SIGTERM, it hands its run back to the queue; with `--listen`, it
//! serves its health and metrics; with a DSN, its failed runs reach the
//! error-tracking endpoint.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use loupe_core::{PageRequest, ParquetResultStore, ResultId, ResultStore};
use loupe_services::meta::MetadataStore;
use loupe_services::runner::{Runner, RunnerConfig};
use loupe_services::{Actor, DatasourceInput, KeyRing, Run, Services, ServicesConfig, Setup};

use crate::databases::{receiver, s3_server, server};

/// Metadata in a schema of its own on the test server, a result
/// directory, an operator key in a file, an organization with its admin
/// and the test server as a `postgres` datasource.
struct Fixture {
    metadata: String,
    dir: tempfile::TempDir,
    store: MetadataStore,
    services: Services,
    results: Arc<dyn ResultStore>,
    admin: Actor,
    datasource: String,
}

impl Fixture {
    async fn new(server: &str) -> Self {
        let schema = format!("cli_{}", uuid::Uuid::now_v7().simple());
        let root = MetadataStore::connect(server).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(root.pool())
            .await
            .unwrap();
        root.close().await;
        let separator = if server.contains('?') { '&' } else { '?' };
        let metadata = format!("{server}{separator}options[search_path]={schema}");
        let dir = tempfile::tempdir().unwrap();
        let key = KeyRing::generate_key().unwrap();
        std::fs::write(
            dir.path().join("key"),
            secrecy::ExposeSecret::expose_secret(&key),
        )
        .unwrap();
        let results_dir = dir.path().join("results");
        let results: Arc<dyn ResultStore> =
            Arc::new(ParquetResultStore::open(results_dir.to_str().unwrap()).unwrap());
        let store = MetadataStore::open(&metadata).await.unwrap();
        let services = Services::new(
            store.clone(),
            loupe_connectors::registry(),
            ServicesConfig {
                secret_keys: Some(KeyRing::new(&key, &[]).unwrap()),
                ..ServicesConfig::default()
            },
            Some(results.clone()),
        )
        .unwrap();
        let (_, admin) = services
            .organizations
            .create_with_admin(Setup {
                org_name: "Runners".into(),
                admin_email: "admin@runners.test".into(),
                admin_name: "Ada".into(),
                admin_password: "a long runner passphrase".to_owned().into(),
            })
            .await
            .unwrap();
        let admin = services.users.actor(&admin.id, None).await.unwrap();
        let options = loupe_connectors::registry()
            .factory("postgres")
            .unwrap()
            .options_from_url(server)
            .unwrap();
        let datasource = services
            .datasources
            .create(
                &admin,
                DatasourceInput {
                    name: "warehouse".into(),
                    kind: "postgres".into(),
                    options,
                },
            )
            .await
            .unwrap()
            .id;
        Self {
            metadata,
            dir,
            store,
            services,
            results,
            admin,
            datasource,
        }
    }

    /// Starts `loupe runner` over the fixture's metadata and results, with
    /// the fixture's key unless `extra` names another.
    fn spawn_runner(&self, name: &str, extra: &[&str]) -> Child {
        self.spawn_runner_with_env(name, extra, &[])
    }

    /// As [`spawn_runner`](Self::spawn_runner), with `env` set; without
    /// the fixture's result directory when `extra` names `--results-url`.
    fn spawn_runner_with_env(&self, name: &str, extra: &[&str], env: &[(&str, &str)]) -> Child {
        let mut command = Command::new(env!("CARGO_BIN_EXE_loupe"));
        command.args(["runner", "--metadata", &self.metadata]);
        if !extra.contains(&"--results-url") {
            command
                .arg("--results")
                .arg(self.dir.path().join("results"));
        }
        command.envs(env.iter().copied());
        if !extra.contains(&"--secret-key-file") {
            command
                .arg("--secret-key-file")
                .arg(self.dir.path().join("key"));
        }
        command
            .args(["--name", name, "--workers", "1"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Waits until the run is running under `runner`.
    async fn wait_claimed(&self, run: &str, runner: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let row: Option<(String, Option<String>)> =
                sqlx::query_as("SELECT status, claimed_by FROM runs WHERE id = $1")
                    .bind(run.to_owned())
                    .fetch_optional(self.store.pool())
                    .await
                    .unwrap();
            if let Some((status, Some(by))) = &row
                && status == "running"
                && by == runner
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{runner} never claimed the run: {row:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the run has ended; returns it.
    async fn wait_ended(&self, run: &str) -> Run {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let found = self.services.runs.get(&self.admin, run).await.unwrap();
            if !matches!(found.status.as_str(), "queued" | "running") {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the run never ended: {found:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Queues `sql` on `datasource`, as the admin.
    async fn enqueue_on(&self, datasource: &str, sql: &str) -> Run {
        let runs = &self.services.runs;
        runs.enqueue_sql(&self.admin, datasource, sql)
            .await
            .unwrap()
    }

    /// Queues `sql` on the test server's datasource, as the admin.
    async fn enqueue(&self, sql: &str) -> Run {
        self.enqueue_on(&self.datasource, sql).await
    }

    /// Queues `sql` and starts `loupe runner` `name` with `extra`; returns
    /// the run and the runner once the runner runs it.
    async fn running_under(&self, name: &str, extra: &[&str], sql: &str) -> (Run, Child) {
        let run = self.enqueue(sql).await;
        let runner = self.spawn_runner(name, extra);
        self.wait_claimed(&run.id, name).await;
        (run, runner)
    }

    /// Runs `sql` on `datasource` through a `loupe runner` started with
    /// `extra`, then stops the runner; returns the ended run.
    async fn run_through_cli(&self, datasource: &str, sql: &str, extra: &[&str]) -> Run {
        let run = self.enqueue_on(datasource, sql).await;
        let mut runner = self.spawn_runner("cli", extra);
        let ended = self.wait_ended(&run.id).await;
        runner.kill().unwrap();
        runner.wait().unwrap();
        ended
    }
}

/// Stops `runner` with SIGTERM, as a service manager does, and asserts
/// that it exits cleanly.
fn terminate(runner: &mut Child) {
    let status = Command::new("kill")
        .args(["-TERM", &runner.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = runner.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// Asserts that `run` failed with an error message that says `message`.
#[track_caller]
fn assert_failed_with(run: &Run, message: &str) {
    assert_eq!(run.status.as_str(), "failed", "{run:?}");
    assert!(
        run.error_message
            .as_deref()
            .is_some_and(|m| m.contains(message)),
        "{run:?}"
    );
}

fn stored_results(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in walk(dir) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".parquet") {
            found.push(name);
        }
    }
    found
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runners_run_is_finished_by_another_after_its_lease() {
    let Some(server) = server() else { return };
    let f = Fixture::new(&server).await;
    let sql = "select 42 as answer from pg_sleep(2)";
    let (run, mut doomed) = f.running_under("doomed", &["--lease", "2s"], sql).await;
    doomed.kill().unwrap(); // SIGKILL: no clean-up of any kind
    doomed.wait().unwrap();

    let survivor = Runner::new(
        &f.services,
        f.results.clone(),
        RunnerConfig {
            name: "survivor".into(),
            ..RunnerConfig::default()
        },
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut waited_for_lease = false;
    while survivor.run_once().await.unwrap() == 0 {
        waited_for_lease = true;
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run was never taken over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        waited_for_lease,
        "the run was taken before the lease ran out"
    );

    let done = f.services.runs.get(&f.admin, &run.id).await.unwrap();
    assert_eq!(done.status.as_str(), "succeeded", "{done:?}");
    assert_eq!(done.attempts, 2);
    let location = ResultId::parse(done.result_location.as_deref().unwrap()).unwrap();
    let page = f
        .results
        .read_page(&location, &PageRequest::new(0, 10))
        .await
        .unwrap();
    assert_eq!(page.total_rows, 1);
    assert_eq!(
        stored_results(&f.dir.path().join("results")),
        [format!("{location}.parquet")],
        "exactly one result is stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_a_running_run_back_to_the_queue() {
    let Some(server) = server() else { return };
    let f = Fixture::new(&server).await;
    let sql = "select 1 as one from pg_sleep(30)";
    let (run, mut runner) = f.running_under("polite", &["--grace", "500ms"], sql).await;
    let stopped = tokio::time::Instant::now();
    terminate(&mut runner);
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "took {:?} to stop",
        stopped.elapsed()
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(runner.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("runner stopped"), "{stderr}");

    let back: (String, i32, Option<String>) =
        sqlx::query_as("SELECT status, attempts, claimed_by FROM runs WHERE id = $1")
            .bind(run.id.clone())
            .fetch_one(f.store.pool())
            .await
            .unwrap();
    assert_eq!(back, ("queued".to_owned(), 0, None));
    assert!(stored_results(&f.dir.path().join("results")).is_empty());
}

/// The runner process confines `files` datasources like the server: one
/// stored with a root outside `files_roots` (made here without the rule,
/// as a changed configuration or another process could have) fails, and
/// runs once its directory is listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_refuses_a_files_datasource_outside_files_roots() {
    let Some(server) = server() else { return };
    let f = Fixture::new(&server).await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secrets.csv"), "id,secret\n1,hunter2\n").unwrap();
    let mut options = loupe_core::DatasourceOptions::new();
    options.insert(
        "root".into(),
        outside.path().to_str().unwrap().to_owned().into(),
    );
    let files = f
        .services
        .datasources
        .create(
            &f.admin,
            DatasourceInput {
                name: "outside".into(),
                kind: "files".into(),
                options,
            },
        )
        .await
        .unwrap()
        .id;
    let sql = "select secret from secrets";

    let refused = f.run_through_cli(&files, sql, &[]).await;
    assert_failed_with(&refused, "inside the directories this host allows");
    assert!(stored_results(&f.dir.path().join("results")).is_empty());

    let root = outside.path().to_str().unwrap();
    let allowed = f
        .run_through_cli(&files, sql, &["--files-root", root])
        .await;
    assert_eq!(allowed.status.as_str(), "succeeded", "{allowed:?}");
}

/// `loupe runner --results-url`: the result goes to the bucket, where
/// any reader of the deployment finds it, and not to a local directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_keeps_results_in_s3_with_results_url() {
    let Some(server) = server() else { return };
    let Some((s3, bucket)) = s3_server() else {
        return;
    };
    let f = Fixture::new(&server).await;
    let url = format!("s3://{bucket}/cli-{}", uuid::Uuid::now_v7().simple());
    let env = s3_env(&s3);
    let run = f
        .enqueue("select g as n from generate_series(1, 500) g order by g")
        .await;
    let mut runner = f.spawn_runner_with_env("s3", &["--results-url", &url], &borrowed(&env));
    let ended = f.wait_ended(&run.id).await;
    runner.kill().unwrap();
    runner.wait().unwrap();
    assert_eq!(ended.status.as_str(), "succeeded", "{ended:?}");

    let store = ParquetResultStore::open_s3(&url, &s3).unwrap();
    let location = ResultId::parse(ended.result_location.as_deref().unwrap()).unwrap();
    let page = store
        .read_page(&location, &PageRequest::new(499, 10))
        .await
        .unwrap();
    assert_eq!((page.total_rows, page.num_rows()), (500, 1));
    assert!(stored_results(f.dir.path()).is_empty());
    store.delete(&location).await.unwrap();
}

/// A bucket the runner cannot write to stops it at start, naming the
/// setting, rather than failing every run later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_stops_the_runner_at_start() {
    let Some(server) = server() else { return };
    let Some((s3, _)) = s3_server() else {
        return;
    };
    let f = Fixture::new(&server).await;
    let env = s3_env(&s3);
    let url = "s3://loupe-no-such-bucket/results";
    let runner = f.spawn_runner_with_env("lost", &["--results-url", url], &borrowed(&env));
    let out = runner.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`results_url`"), "{stderr}");
    assert!(stderr.contains("loupe-no-such-bucket"), "{stderr}");
}

#[test]
fn results_dir_and_results_url_are_one_choice() {
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(["runner", "--results-dir", "/tmp/results"])
        .args(["--results-url", "s3://bucket/results"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}

/// The `[s3]` settings of `options`, as `LOUPE_S3__*` variables.
fn s3_env(options: &loupe_core::S3Options) -> Vec<(String, String)> {
    [
        ("LOUPE_S3__ENDPOINT", &options.endpoint),
        ("LOUPE_S3__REGION", &options.region),
        ("LOUPE_S3__ACCESS_KEY_ID", &options.access_key_id),
        ("LOUPE_S3__SECRET_ACCESS_KEY", &options.secret_access_key),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k.to_owned(), v.clone()?)))
    .collect()
}

fn borrowed(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// After a key rotation, the runner process opens datasource secrets
/// sealed with the previous key, given as `--previous-secret-key-file`;
/// without it, the run fails to open them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_opens_secrets_sealed_with_a_previous_key() {
    let Some(server) = server() else { return };
    let f = Fixture::new(&server).await;
    let new_key = f.dir.path().join("new-key");
    std::fs::write(
        &new_key,
        secrecy::ExposeSecret::expose_secret(&KeyRing::generate_key().unwrap()),
    )
    .unwrap();
    let new_key = new_key.to_str().unwrap().to_owned();
    let old_key = f.dir.path().join("key").to_str().unwrap().to_owned();
    let sql = "select 7 as seven";

    let without = f
        .run_through_cli(&f.datasource, sql, &["--secret-key-file", &new_key])
        .await;
    assert_failed_with(&without, "add it to the previous keys");

    let with = f
        .run_through_cli(
            &f.datasource,
            sql,
            &[
                "--secret-key-file",
                &new_key,
                "--previous-secret-key-file",
                &old_key,
            ],
        )
        .await;
    assert_eq!(with.status.as_str(), "succeeded", "{with:?}");
}

/// `GET path` over plain HTTP/1.1 on `address`, with an optional bearer
/// token: the status and the body. `None` while nothing listens.
fn http_get(address: &str, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    let status = reply.split(' ').nth(1)?.parse().ok()?;
    let body = reply.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// `loupe runner --listen` serves its health and metrics, as
/// `loupe-server --role runner` does: ready once its runner runs, the runs
/// it executed in the run histograms, metrics only with the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_serves_health_and_metrics_where_it_listens() {
    let Some(server) = server() else { return };
    let f = Fixture::new(&server).await;
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .to_string();
    let token = "a-token-for-the-runner-metrics";
    let token_file = f.dir.path().join("metrics-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let run = f.enqueue("select 42 as answer").await;
    let mut runner = f.spawn_runner(
        "observed",
        &[
            "--listen",
            &address,
            "--metrics-token-file",
            token_file.to_str().unwrap(),
        ],
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let ready = loop {
        if let Some((200, body)) = http_get(&address, "/health/ready", None) {
            break body;
        }
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(ready.contains("\"runner\":\"ok\""), "{ready}");
    let ended = f.wait_ended(&run.id).await;
    assert_eq!(ended.status.as_str(), "succeeded", "{ended:?}");

    let (status, _) = http_get(&address, "/metrics", None).unwrap();
    assert_eq!(status, 401, "metrics without the token");
    let (status, _) = http_get(&address, "/metrics", Some("not-the-token-at-all")).unwrap();
    assert_eq!(status, 401, "metrics with another token");
    let (status, text) = http_get(&address, "/metrics", Some(token)).unwrap();
    assert_eq!(status, 200, "{text}");
    let count = text
        .lines()
        .find(|l| {
            l.starts_with("loupe_run_duration_seconds_count{")
                && l.contains("kind=\"postgres\"")
                && l.contains("outcome=\"succeeded\"")
        })
        .unwrap_or_else(|| panic!("no run histogram in\n{text}"));
    assert!(count.ends_with(" 1"), "{count}");
    assert!(text.contains("loupe_build_info{"), "{text}");
    let (status, _) = http_get(&address, "/health/live", None).unwrap();
    assert_eq!(status, 200);

    terminate(&mut runner);
}

/// `loupe runner` reports its failed runs to `[error_tracking]`, as
/// `loupe-server --role runner` does: the envelope reaches the endpoint
/// (the HTTPS receiver, trusted through `ca_file`) with the run's tags and
/// code, and without the SQL, whose error message is the database's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_reports_a_failed_run_to_error_tracking() {
    let Some(server) = server() else { return };
    let Some((url, requests, ca)) = receiver() else {
        return;
    };
    let f = Fixture::new(&server).await;
    // A project of this test's own among the receiver's requests.
    let project = (uuid::Uuid::now_v7().as_u128() % 1_000_000_000).to_string();
    let dsn = url.replacen("https://", "https://loupe-public-key@", 1) + "/" + &project;
    let ca = ca.to_str().unwrap();
    let marker = "private-marker@example.com";
    let run = f.enqueue(&format!("select 1 / 0 as \"{marker}\"")).await;
    let mut runner = f.spawn_runner_with_env(
        "tracked",
        &[],
        &[
            ("LOUPE_ERROR_TRACKING__DSN", &dsn),
            ("LOUPE_ERROR_TRACKING__CA_FILE", ca),
            ("LOUPE_ERROR_TRACKING__ENVIRONMENT", "cli-test"),
        ],
    );
    let ended = f.wait_ended(&run.id).await;
    assert_eq!(ended.status.as_str(), "failed", "{ended:?}");

    let path = format!("/api/{project}/envelope/");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let envelope = loop {
        let found = std::fs::read_dir(&requests)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .find(|r| r["path"] == path.as_str());
        if let Some(record) = found {
            let body = record["body_base64"].as_str().unwrap();
            let body = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body);
            break String::from_utf8(body.unwrap()).unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no envelope reached {path}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    terminate(&mut runner);

    let event: serde_json::Value = envelope
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v.get("event_id").is_some() && v.get("tags").is_some())
        .unwrap_or_else(|| panic!("no event in {envelope}"));
    let tags = &event["tags"];
    assert_eq!(tags["run_id"], run.id.as_str(), "{event}");
    assert_eq!(tags["datasource_kind"], "postgres", "{event}");
    assert_eq!(tags["run_failed"], "true", "{event}");
    assert_eq!(tags["org_id"], f.admin.org_id.as_str(), "{event}");
    assert_eq!(event["environment"], "cli-test", "{event}");
    assert_eq!(event["user"]["id"], f.admin.user_id.as_str(), "{event}");
    assert!(
        !envelope.contains(marker) && !envelope.contains("1 / 0"),
        "the SQL reached the endpoint: {envelope}"
    );
}
