//! The real `loupe-server` binary as a child process on a free loopback
//! port, with a temporary data directory.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "correct horse battery staple";
pub const ADMIN: &str = "admin@e2e.test";

/// A running server; killed if a test fails before stopping it.
pub struct ServerProcess {
    child: Child,
    pub port: u16,
    scheme: &'static str,
    _dir: tempfile::TempDir,
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
        let child = command.spawn().expect("loupe-server starts");
        Self {
            child,
            port,
            scheme,
            _dir: dir,
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
    pub async fn stop(mut self) -> (bool, String) {
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
        (status.success(), log)
    }
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
