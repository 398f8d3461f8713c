//! The real `loupe-server` binary as a child process on a free loopback
//! port, in a temporary directory of its own (its working directory, with
//! the data directory inside), and the test servers it may share with
//! other processes.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "correct horse battery staple";
pub const ADMIN: &str = "admin@e2e.test";

/// The value of the test server variable `var`. Without it the test is
/// skipped, except under `CI=true`, where it fails.
pub fn test_server(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) => Some(value),
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "{var} is not set: CI must run the tests through scripts/test, which starts {what}"
        ),
        Err(_) => {
            eprintln!("skipped: {var} is not set (scripts/test starts {what})");
            None
        }
    }
}

/// The PostgreSQL server for tests, if any.
pub fn postgres_url() -> Option<String> {
    test_server("LOUPE_TEST_POSTGRES_URL", "PostgreSQL")
}

/// The options of a `postgres` datasource on the server at `url`.
pub fn pg_options(url: &str) -> serde_json::Value {
    let u = url::Url::parse(url).expect("postgres url");
    serde_json::json!({
        "host": u.host_str().unwrap_or("127.0.0.1"),
        "port": u.port().unwrap_or(5432),
        "user": u.username(),
        "password": u.password().unwrap_or(""),
        "database": u.path().trim_start_matches('/'),
        "sslmode": "disable",
    })
}

/// The S3-protocol server for tests (see scripts/databases.sh), with a
/// bucket made for the tests.
#[derive(Debug, Clone)]
pub struct S3Server {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl S3Server {
    /// The server, if the tests have one.
    pub fn from_env() -> Option<Self> {
        let var = |name: &str| test_server(name, "an S3 server");
        Some(Self {
            endpoint: var("LOUPE_TEST_S3_ENDPOINT")?,
            bucket: var("LOUPE_TEST_S3_BUCKET")?,
            region: var("LOUPE_TEST_S3_REGION")?,
            access_key_id: var("LOUPE_TEST_S3_ACCESS_KEY_ID")?,
            secret_access_key: var("LOUPE_TEST_S3_SECRET_ACCESS_KEY")?,
        })
    }
}

/// A running server; killed if a test fails before stopping it.
pub struct ServerProcess {
    child: Child,
    pub port: u16,
    scheme: &'static str,
    dir: Option<tempfile::TempDir>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that trusts the tests' self-signed certificates.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("http client")
}

/// Serves `app` on a free loopback port, in the background: a real
/// HTTP peer for a test (a collector, a receiver). Its task and its port.
pub fn serve_on_loopback(
    app: impl poem::Endpoint + 'static,
) -> (tokio::task::JoinHandle<std::io::Result<()>>, u16) {
    let port = free_port();
    let server = poem::Server::new(poem::listener::TcpListener::bind(format!(
        "127.0.0.1:{port}"
    )))
    .run(app);
    (tokio::spawn(server), port)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl ServerProcess {
    /// Starts the server with an admin and `env`, and waits until it is
    /// ready.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        Self::start_as("http", env).await
    }

    /// Starts the server serving `scheme` (`https` when `env` configures
    /// TLS).
    pub async fn start_as(scheme: &'static str, env: &[(&str, &str)]) -> Self {
        let mut server = Self::spawn(scheme, env);
        server.wait_ready().await;
        server
    }

    /// Starts the server without waiting for HTTP (a runner or scheduler
    /// process serves none).
    pub fn spawn(scheme: &'static str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_loupe-server"));
        command
            .env("LOUPE_LISTEN", format!("127.0.0.1:{port}"))
            .env("LOUPE_DATA_DIR", dir.path().join("data"))
            .env("LOUPE_ADMIN_EMAIL", ADMIN)
            .env("LOUPE_ADMIN_PASSWORD", PASSWORD)
            .env("LOUPE_LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        command.current_dir(dir.path());
        let child = command.spawn().expect("loupe-server starts");
        Self {
            child,
            port,
            scheme,
            dir: Some(dir),
        }
    }

    /// Waits until `/health/ready` answers 200.
    pub async fn wait_ready(&mut self) {
        let server = self;
        let http = client();
        let started = Instant::now();
        loop {
            let ready = http.get(server.url("/health/ready")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("loupe-server exited early: {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "not ready in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.port)
    }

    /// Signs the admin in and returns the access token.
    pub async fn login(&self) -> String {
        let login: serde_json::Value = client()
            .post(self.url("/api/v1/auth/login"))
            .json(&serde_json::json!({ "email": ADMIN, "password": PASSWORD }))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("login body");
        login["access_token"].as_str().expect("token").to_owned()
    }

    /// Waits for the process to exit on its own (within 30 s); returns
    /// whether it exited with success, and what it logged.
    pub async fn wait_exit(mut self) -> (bool, String) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "did not exit");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut log = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            use std::io::Read;
            let _ = stderr.read_to_string(&mut log);
        }
        (status.success(), log)
    }

    /// Sends SIGTERM and waits for the exit; returns whether it exited
    /// with success, and what it logged.
    pub async fn stop(self) -> (bool, String) {
        let (success, log, _) = self.stop_keeping_dir().await;
        (success, log)
    }

    /// As [`stop`](Self::stop), and hands over the process's directory
    /// so that what it left there can be checked.
    pub async fn stop_keeping_dir(mut self) -> (bool, String, tempfile::TempDir) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
        let stopping = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                stopping.elapsed() < Duration::from_secs(40),
                "did not stop after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut log = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            use std::io::Read;
            let _ = stderr.read_to_string(&mut log);
        }
        let dir = self.dir.take().expect("the directory is kept");
        (status.success(), log, dir)
    }
}

/// What a command of the real binary did.
#[derive(Debug)]
pub struct Ran {
    /// The exit status (`None`: killed by a signal).
    pub code: Option<i32>,
    /// What it wrote to stderr.
    pub stderr: String,
}

/// Runs `loupe-server args…` with `env` until it exits (at most 60 s);
/// `LOUPE_*` settings come only from `env`.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loupe-server"));
    command
        .args(args)
        .env("LOUPE_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("loupe-server starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("loupe-server {args:?} did not exit in 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    Ran {
        code: status.code(),
        stderr,
    }
}

/// A new, empty schema on the test PostgreSQL server: its name and a
/// metadata URL that works in it.
pub async fn postgres_schema(base: &str) -> (String, String) {
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    let admin = loupe_services::meta::MetadataStore::connect(base)
        .await
        .expect("test PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(admin.pool())
        .await
        .expect("schema created");
    admin.close().await;
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options[search_path]={schema}");
    (schema, url)
}

/// A PostgreSQL schema and a result directory that processes of several
/// roles share, as a deployment's do. `None` without a test server
/// (a failure under `CI=true`).
pub struct SharedDeployment {
    db: sqlx::PgPool,
    schema: String,
    metadata: String,
    results: tempfile::TempDir,
}

impl SharedDeployment {
    pub async fn new() -> Option<Self> {
        let pg = match std::env::var("LOUPE_TEST_POSTGRES_URL") {
            Ok(url) => url,
            Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!(
                    "LOUPE_TEST_POSTGRES_URL is not set: CI must run the tests through scripts/test"
                )
            }
            Err(_) => {
                eprintln!("skipped: LOUPE_TEST_POSTGRES_URL is not set");
                return None;
            }
        };
        let schema = format!("roles_{}", uuid::Uuid::now_v7().simple());
        let db = sqlx::PgPool::connect(&pg).await.expect("postgres");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&db)
            .await
            .expect("schema");
        let separator = if pg.contains('?') { '&' } else { '?' };
        let metadata = format!("{pg}{separator}options[search_path]={schema}");
        Some(Self {
            db,
            schema,
            metadata,
            results: tempfile::tempdir().expect("temp dir"),
        })
    }

    /// The environment of a process with `role`, and `extra`.
    pub fn env(&self, role: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        [
            ("LOUPE_ROLE", role),
            ("LOUPE_METADATA_URL", self.metadata.as_str()),
            (
                "LOUPE_RESULTS_DIR",
                self.results.path().to_str().unwrap_or_default(),
            ),
            (
                "LOUPE_SECRET_KEY",
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            ),
            (
                "LOUPE_SIGNING_SECRET",
                "q8Vv1rX0m3KpZ7tL2nY6wE4sA9dH5jF0gB1cN8uTzz",
            ),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    /// Runs `sql` in the deployment's schema, for what the API does not
    /// change (a schedule's next fire time).
    pub async fn execute(&self, sql: &str) {
        let mut tx = self.db.begin().await.expect("begin");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SET LOCAL search_path TO {}; {sql}",
            self.schema
        )))
        .execute(&mut *tx)
        .await
        .expect("statement");
        tx.commit().await.expect("commit");
    }

    pub async fn drop(self) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.schema
        )))
        .execute(&self.db)
        .await
        .expect("drop schema");
    }
}

/// `env` as `spawn` takes it.
pub fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}
