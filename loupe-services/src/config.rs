//! The deployment's configuration, shared by every host: defaults, then a
//! TOML file, then `LOUPE_*` environment variables (which win). Nested keys
//! use `__` in the environment: `LOUPE_RUNNER__WORKERS=8`. Secrets can come
//! from files (`secret_key_file`, `LOUPE_SECRET_KEY_FILE`, ...). Everything
//! is checked before anything starts, and errors name the key.
//!
//! A host with settings of its own (the HTTP server's listen address, say)
//! flattens [`DeploymentConfig`] into its own configuration and loads both
//! with [`load`], so that one file and one set of variables configure every
//! process of a deployment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A secret in the configuration: never printed.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub SecretString);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"********\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("********")
    }
}

impl JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Self {
        Self(SecretString::from(text.to_owned()))
    }
}

/// The application's settings: where metadata, results and secrets live,
/// how runs execute, what a first start creates. Every host of a
/// deployment reads the same keys.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct DeploymentConfig {
    /// Where SQLite metadata, results and generated secrets live.
    pub data_dir: PathBuf,
    /// Metadata database (`sqlite://…` or `postgres://…`); default: SQLite
    /// in the data directory.
    pub metadata_url: Option<String>,
    /// Result store: a directory; default `<data_dir>/results`.
    pub results_dir: Option<PathBuf>,
    /// Result store in an S3-compatible object store,
    /// `s3://bucket/prefix`, reached as `[s3]` says; instead of
    /// `results_dir`, and what several hosts share.
    pub results_url: Option<String>,
    /// How to reach the object store of `results_url`; what is not set
    /// comes from the standard `AWS_*` environment variables.
    pub s3: S3Settings,
    /// Key that encrypts datasource secrets (base64 of 32 bytes). When
    /// neither this nor `secret_key_file` is set, a process that serves the
    /// API generates one into the data directory; other processes use that
    /// file if it is there.
    pub secret_key: Option<Secret>,
    /// File holding the secret key.
    pub secret_key_file: Option<PathBuf>,
    /// Older secret keys, still accepted for decryption while rotating.
    pub previous_secret_keys: Vec<Secret>,
    /// Files holding older secret keys, one key per file.
    pub previous_secret_key_files: Vec<PathBuf>,
    /// Secret that signs access tokens; generated into the data directory
    /// when neither this nor `signing_secret_file` is set.
    pub signing_secret: Option<Secret>,
    /// File holding the signing secret.
    pub signing_secret_file: Option<PathBuf>,
    /// Lifetime of access tokens.
    #[serde(with = "duration")]
    #[schemars(with = "String")]
    pub access_token_ttl: Duration,
    /// Lifetime of refresh tokens.
    #[serde(with = "duration")]
    #[schemars(with = "String")]
    pub refresh_token_ttl: Duration,
    /// Failed sign-ins in a row, for one account from one address, after
    /// which that address waits before its next attempt is checked
    /// (it replaced `lockout_threshold`).
    pub login_backoff_threshold: u32,
    /// The longest wait of a backed-off address; the wait starts at 5 s
    /// and doubles with each further failure (it replaced
    /// `lockout_window`).
    #[serde(with = "duration")]
    #[schemars(with = "String")]
    pub login_backoff_max: Duration,
    /// The first admin's email, used once when no organization exists.
    pub admin_email: Option<String>,
    /// The first admin's password (or `admin_password_file`).
    pub admin_password: Option<Secret>,
    /// File holding the first admin's password.
    pub admin_password_file: Option<PathBuf>,
    /// The first admin's display name.
    pub admin_name: String,
    /// The first organization's name.
    pub org_name: String,
    /// Register the bundled sample dataset as a `files` datasource on
    /// first start.
    pub sample_datasource: bool,
    /// Where the bundled sample dataset is; found next to the binary or
    /// in the source tree when not set.
    pub sample_data_dir: Option<PathBuf>,
    /// Directories under which `files` datasources may have their root.
    /// The sample dataset's directory is allowed when `sample_datasource`
    /// is on. Empty (the default): no other directory, so nobody can point
    /// a datasource at the host's own files.
    pub files_roots: Vec<PathBuf>,
    /// Directories from which PostgreSQL and MySQL datasources may read a
    /// CA file (`sslrootcert`, `ssl_ca`). Empty (the default): no CA file
    /// can be named, the system's and the built-in roots still work. Kept
    /// apart from `files_roots`, so a data directory is never a trusted-CA
    /// directory.
    pub certificate_dirs: Vec<PathBuf>,
    /// How runs execute.
    pub runner: RunnerSettings,
    /// How often the scheduler looks for due schedules.
    #[serde(with = "duration")]
    #[schemars(with = "String")]
    pub schedule_every: Duration,
    /// Result retention.
    pub retention: RetentionSettings,
    /// What one user may ask of the deployment: how often schedules fire,
    /// how many fire, how many runs wait.
    pub quotas: QuotaSettings,
    /// Time in-flight requests and runs get on shutdown.
    #[serde(with = "duration")]
    #[schemars(with = "String")]
    pub shutdown_grace: Duration,
    /// Whether a process applies pending metadata migrations when it
    /// starts (`auto`, the default) or refuses to start until
    /// `loupe-server migrate` has applied them (`never`).
    pub migrate: MigrateMode,
    /// Where a process that serves no API (`loupe-server --role runner`
    /// or `scheduler`, `loupe runner`) serves `/health/live`,
    /// `/health/ready` and `/metrics`. The server's runner and scheduler
    /// roles use `listen` when this is not set; `loupe runner` serves none
    /// unless it is set (or `--listen` given). An API process serves them
    /// on `listen`, and here as well when set.
    pub ops_listen: Option<SocketAddr>,
    /// A bearer token `/metrics` requires (`Authorization: Bearer …`);
    /// without one, anyone who reaches the address may read metrics.
    pub metrics_token: Option<Secret>,
    /// File holding the metrics token.
    pub metrics_token_file: Option<PathBuf>,
    /// The URL people reach Loupe at, such as `https://loupe.example.com`:
    /// the set-up link, and the links in notifications (to a result, to a
    /// download past the attachment cap). Without it, notifications carry
    /// no links.
    pub public_url: Option<String>,
    /// Which addresses outbound connections (deliveries) may reach.
    pub egress: EgressSettings,
    /// Notifications: attachments, links, retries.
    pub deliveries: DeliverySettings,
    /// Public links and signed embedding: what a page shows, how often
    /// its views may refresh a result, how long embedding tokens live.
    pub sharing: SharingSettings,
    /// Errors, panics and failed runs sent to a Sentry-compatible
    /// endpoint (off without a DSN).
    pub error_tracking: ErrorTrackingSettings,
}

/// Error tracking (see `docs/operations.md`): what is sent where.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ErrorTrackingSettings {
    /// The project's DSN, `https://<key>@<host>/<project>`; nothing is
    /// sent without one. Plain `http://` only to a loopback address.
    pub dsn: Option<Secret>,
    /// A file holding the DSN, instead of `dsn`.
    pub dsn_file: Option<PathBuf>,
    /// The environment events are tagged with.
    pub environment: String,
    /// The release events are tagged with (Loupe's version by default).
    pub release: Option<String>,
    /// The share of errors sent, from 0 (none) to 1 (all).
    pub sample_rate: f32,
    /// A PEM file of certificate authorities to trust for the endpoint,
    /// beside the system's.
    pub ca_file: Option<PathBuf>,
}

impl Default for ErrorTrackingSettings {
    fn default() -> Self {
        Self {
            dsn: None,
            dsn_file: None,
            environment: "production".to_owned(),
            release: None,
            sample_rate: 1.0,
            ca_file: None,
        }
    }
}

impl ErrorTrackingSettings {
    fn check(&self) -> Result<(), ConfigError> {
        if self.dsn.is_some() && self.dsn_file.is_some() {
            return fail(
                "error_tracking.dsn",
                "set either error_tracking.dsn or error_tracking.dsn_file, not both",
            );
        }
        if !(0.0..=1.0).contains(&self.sample_rate) {
            return fail("error_tracking.sample_rate", "must be between 0 and 1");
        }
        if self.environment.trim().is_empty() || self.environment.len() > 64 {
            return fail(
                "error_tracking.environment",
                "must be 1 to 64 characters, such as production or staging",
            );
        }
        if let Some(release) = &self.release
            && (release.trim().is_empty() || release.len() > 200)
        {
            return fail("error_tracking.release", "must be 1 to 200 characters");
        }
        if let Some(dsn) = &self.dsn {
            crate::error_tracking::parse_dsn(dsn.0.expose_secret())
                .or_else(|why| fail("error_tracking.dsn", why))?;
        }
        Ok(())
    }

    /// The DSN from `dsn` or its file, checked.
    pub fn dsn(&self) -> Result<Option<SecretString>, ConfigError> {
        let dsn = read_secret(
            "error_tracking.dsn_file",
            self.dsn.as_ref(),
            self.dsn_file.as_deref(),
        )?;
        if let Some(dsn) = &dsn {
            crate::error_tracking::parse_dsn(dsn.expose_secret())
                .or_else(|why| fail("error_tracking.dsn", why))?;
        }
        Ok(dsn)
    }
}

/// Public links and signed embedding (see `docs/sharing.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SharingSettings {
    /// Rows of each result a public link or an embedded page shows (its
    /// first rows; the page says how many the result has).
    pub rows: u32,
    /// The shortest time between two refreshes of one result that the
    /// views of one public link (or of one embedded object) may queue.
    #[serde(with = "duration")]
    #[schemars(with = "String")]
    pub refresh_every: Duration,
    /// How old a result an embedded page shows before its views queue a
    /// refresh (a public link has its own, set when it is made).
    #[serde(with = "duration")]
    #[schemars(with = "String")]
    pub embed_max_age: Duration,
    /// The longest an embedding token may live (`exp - iat`); a token
    /// signed for longer is refused.
    #[serde(with = "duration")]
    #[schemars(with = "String")]
    pub embed_max_lifetime: Duration,
    /// How far the clock of the host that signs embedding tokens may be
    /// from Loupe's.
    #[serde(with = "duration")]
    #[schemars(with = "String")]
    pub embed_leeway: Duration,
}

impl Default for SharingSettings {
    fn default() -> Self {
        Self {
            rows: 1_000,
            refresh_every: Duration::from_secs(60),
            embed_max_age: Duration::from_secs(3600),
            embed_max_lifetime: Duration::from_secs(10 * 60),
            embed_leeway: Duration::from_secs(30),
        }
    }
}

impl SharingSettings {
    fn check(&self) -> Result<(), ConfigError> {
        // A page of a result: at most what one read of a result gives.
        if self.rows == 0 || u64::from(self.rows) > loupe_core::MAX_PAGE_ROWS {
            return fail(
                "sharing.rows",
                format!("must be between 1 and {}", loupe_core::MAX_PAGE_ROWS),
            );
        }
        for (key, value, min, max) in [
            (
                "sharing.refresh_every",
                self.refresh_every,
                Duration::from_secs(1),
                Duration::from_secs(7 * 24 * 3600),
            ),
            (
                "sharing.embed_max_age",
                self.embed_max_age,
                Duration::from_secs(1),
                Duration::from_secs(crate::limits::MAX_AGE_SECONDS),
            ),
            (
                "sharing.embed_max_lifetime",
                self.embed_max_lifetime,
                Duration::from_secs(10),
                Duration::from_secs(24 * 3600),
            ),
            (
                "sharing.embed_leeway",
                self.embed_leeway,
                Duration::ZERO,
                Duration::from_secs(300),
            ),
        ] {
            if value < min || value > max {
                return fail(
                    key,
                    format!(
                        "must be between {} and {}",
                        humantime::format_duration(min),
                        humantime::format_duration(max)
                    ),
                );
            }
        }
        Ok(())
    }
}

/// Which addresses outbound connections may reach.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EgressSettings {
    /// Allow loopback, link-local, private and other non-public addresses
    /// (off: a destination cannot be pointed at Loupe's own network).
    pub allow_private: bool,
}

/// How notifications are delivered.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// The largest attachment (bytes); a bigger result is sent as an
    /// expiring signed link to its download instead.
    pub attachment_max_bytes: u64,
    /// How long signed links in notifications stay valid.
    #[serde(with = "duration")]
    #[schemars(with = "String")]
    pub link_ttl: Duration,
    /// Attempts per notification before it is marked failed.
    pub max_attempts: u32,
    /// Wait before the first retry; it doubles with each attempt (at most
    /// an hour).
    #[serde(with = "duration")]
    #[schemars(with = "String")]
    pub retry_after: Duration,
    /// Time one send may take.
    #[serde(with = "duration")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// Extra certificate authorities (PEM) trusted for HTTPS and SMTP TLS,
    /// besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Rows of the result shown in a notification.
    pub preview_rows: u32,
    /// How often pending notifications are looked for.
    #[serde(with = "duration")]
    #[schemars(with = "String")]
    pub every: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            attachment_max_bytes: 10 * 1024 * 1024,
            link_ttl: Duration::from_secs(7 * 24 * 3600),
            max_attempts: 6,
            retry_after: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            ca_file: None,
            preview_rows: 10,
            every: Duration::from_secs(5),
        }
    }
}

/// What a process does at start with metadata migrations it knows and the
/// database lacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MigrateMode {
    /// Apply them (on PostgreSQL, one process at a time, under a lock).
    #[default]
    Auto,
    /// Refuse to start: migrations are a deploy step of their own
    /// (`loupe-server migrate`), as when several processes share one
    /// PostgreSQL database.
    Never,
}

impl std::str::FromStr for MigrateMode {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, ConfigError> {
        match text {
            "auto" => Ok(Self::Auto),
            "never" => Ok(Self::Never),
            other => fail("migrate", format!("{other:?} is neither auto nor never")),
        }
    }
}

/// How to reach the S3-compatible object store of `results_url`. Every
/// key is optional: what is not set comes from the standard `AWS_*`
/// variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), then from instance
/// credentials on AWS.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct S3Settings {
    /// The server's URL, for S3-compatible servers
    /// (`https://minio.internal:9000`); default: AWS.
    pub endpoint: Option<String>,
    /// The region; default `us-east-1`.
    pub region: Option<String>,
    /// Access key id; set together with the secret access key.
    pub access_key_id: Option<String>,
    /// Secret access key (or `secret_access_key_file`).
    pub secret_access_key: Option<Secret>,
    /// File holding the secret access key.
    pub secret_access_key_file: Option<PathBuf>,
    /// Plain HTTP to an endpoint that is not on loopback (an endpoint on
    /// loopback may always use it); off: keys and results would cross the
    /// network in clear text.
    pub allow_http: bool,
    /// Path-style requests (`endpoint/bucket/key`), which S3-compatible
    /// servers expect; `false` for virtual-hosted style
    /// (`bucket.endpoint/key`). Default: path-style.
    pub path_style: Option<bool>,
}

impl S3Settings {
    fn is_empty(&self) -> bool {
        self.endpoint.is_none()
            && self.region.is_none()
            && self.access_key_id.is_none()
            && self.secret_access_key.is_none()
            && self.secret_access_key_file.is_none()
            && !self.allow_http
            && self.path_style.is_none()
    }

    /// The settings as the result store takes them, the secret read from
    /// its file if need be.
    pub fn options(&self) -> Result<loupe_core::S3Options, ConfigError> {
        let secret = read_secret(
            "s3.secret_access_key_file",
            self.secret_access_key.as_ref(),
            self.secret_access_key_file.as_deref(),
        )?;
        Ok(loupe_core::S3Options {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: secret.map(|s| expose(&s).to_owned()),
            allow_http: self.allow_http,
            path_style: self.path_style,
        })
    }
}

/// How runs execute: the runner's settings.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RunnerSettings {
    /// This runner's name in the queue; default: `runner-<unique id>`.
    pub name: Option<String>,
    /// Runs executed at once by this process.
    pub workers: usize,
    /// Runs of one datasource executing at once, across all runners.
    pub per_datasource: usize,
    /// Runs of one user executing at once, across all runners.
    pub per_user: usize,
    /// How long a claim lasts without renewal; a runner that dies loses
    /// its runs to another after this.
    #[serde(with = "duration")]
    #[schemars(with = "String")]
    pub lease: Duration,
    /// Time limit of a run.
    #[serde(with = "duration")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// Rows kept of a result (0: no limit).
    pub max_rows: u64,
    /// Bytes kept of a result (0: no limit).
    pub max_bytes: u64,
}

/// Retention, applied by the scheduler: on by default.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// Delete finished runs and their results older than this (`0s`:
    /// keep); the latest result of each saved query and of each schedule
    /// is always kept.
    #[serde(with = "duration")]
    #[schemars(with = "String")]
    pub max_age: Duration,
    /// Keep at most this many results per saved query (0: no limit).
    pub keep_per_query: u32,
    /// Delete audit events older than this (`0s`: keep).
    #[serde(with = "duration")]
    #[schemars(with = "String")]
    pub audit_max_age: Duration,
    /// Delete expired refresh tokens and used or expired invitation and
    /// password-reset tokens.
    pub prune_tokens: bool,
    /// How often retention runs.
    #[serde(with = "duration")]
    #[schemars(with = "String")]
    pub every: Duration,
}

/// What one user may ask of the deployment, so that one editor cannot
/// fill the queue or the scheduler for everyone.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaSettings {
    /// The shortest time between two fires of a schedule; a cron that
    /// fires more often is refused.
    #[serde(with = "duration")]
    #[schemars(with = "String")]
    pub min_schedule_interval: Duration,
    /// Enabled schedules one user may own (0: no limit).
    pub enabled_schedules_per_user: u32,
    /// Queued runs one user may have waiting (0: no limit).
    pub queued_runs_per_user: u32,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        Self {
            min_schedule_interval: Duration::from_secs(60),
            enabled_schedules_per_user: 50,
            queued_runs_per_user: 100,
        }
    }
}

impl Default for DeploymentConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("loupe-data"),
            metadata_url: None,
            results_dir: None,
            results_url: None,
            s3: S3Settings::default(),
            secret_key: None,
            secret_key_file: None,
            previous_secret_keys: Vec::new(),
            previous_secret_key_files: Vec::new(),
            signing_secret: None,
            signing_secret_file: None,
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            login_backoff_threshold: 5,
            login_backoff_max: Duration::from_secs(15 * 60),
            admin_email: None,
            admin_password: None,
            admin_password_file: None,
            admin_name: "Admin".to_owned(),
            org_name: "Loupe".to_owned(),
            sample_datasource: true,
            sample_data_dir: None,
            files_roots: Vec::new(),
            certificate_dirs: Vec::new(),
            runner: RunnerSettings::default(),
            schedule_every: Duration::from_secs(5),
            retention: RetentionSettings::default(),
            quotas: QuotaSettings::default(),
            shutdown_grace: Duration::from_secs(30),
            migrate: MigrateMode::Auto,
            ops_listen: None,
            metrics_token: None,
            metrics_token_file: None,
            public_url: None,
            egress: EgressSettings::default(),
            deliveries: DeliverySettings::default(),
            sharing: SharingSettings::default(),
            error_tracking: ErrorTrackingSettings::default(),
        }
    }
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            name: None,
            workers: 4,
            per_datasource: 4,
            per_user: 4,
            lease: Duration::from_secs(30),
            timeout: Duration::from_secs(30 * 60),
            max_rows: 0,
            max_bytes: 0,
        }
    }
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            max_age: crate::runner::DEFAULT_MAX_AGE,
            keep_per_query: 0,
            audit_max_age: crate::runner::DEFAULT_AUDIT_MAX_AGE,
            prune_tokens: true,
            every: Duration::from_secs(3600),
        }
    }
}

/// The shortest metrics token accepted: long enough not to be guessed.
pub const MIN_METRICS_TOKEN: usize = 16;

/// A configuration that could not be loaded or is not valid; the message
/// names the key and, where it came from a file or a variable, which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl From<String> for ConfigError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

/// `Err` naming `key` and what is wrong with it.
fn fail<T>(key: &str, why: impl std::fmt::Display) -> Result<T, ConfigError> {
    Err(ConfigError(format!("`{key}`: {why}")))
}

impl DeploymentConfig {
    /// Checks every setting that can be checked without opening anything.
    pub fn check(&self) -> Result<(), ConfigError> {
        for (key, inline, file) in [
            (
                "signing_secret",
                self.signing_secret.is_some(),
                self.signing_secret_file.is_some(),
            ),
            (
                "secret_key",
                self.secret_key.is_some(),
                self.secret_key_file.is_some(),
            ),
            (
                "admin_password",
                self.admin_password.is_some(),
                self.admin_password_file.is_some(),
            ),
            (
                "s3.secret_access_key",
                self.s3.secret_access_key.is_some(),
                self.s3.secret_access_key_file.is_some(),
            ),
            (
                "metrics_token",
                self.metrics_token.is_some(),
                self.metrics_token_file.is_some(),
            ),
        ] {
            if inline && file {
                return fail(key, format!("set either {key} or {key}_file, not both"));
            }
        }
        for (key, dirs) in [
            ("files_roots", &self.files_roots),
            ("certificate_dirs", &self.certificate_dirs),
        ] {
            for dir in dirs {
                if !dir.is_dir() {
                    return fail(
                        key,
                        format!("{} is not a directory on this machine", dir.display()),
                    );
                }
            }
        }
        if self.access_token_ttl < Duration::from_secs(30)
            || self.access_token_ttl > Duration::from_secs(24 * 3600)
        {
            return fail("access_token_ttl", "must be between 30s and 24h");
        }
        if self.refresh_token_ttl < self.access_token_ttl {
            return fail("refresh_token_ttl", "must be at least access_token_ttl");
        }
        if self.login_backoff_threshold == 0 {
            return fail("login_backoff_threshold", "must be at least 1");
        }
        for (key, value) in [
            ("runner.workers", self.runner.workers),
            ("runner.per_datasource", self.runner.per_datasource),
            ("runner.per_user", self.runner.per_user),
        ] {
            if value == 0 {
                return fail(key, "must be at least 1");
            }
        }
        if self.runner.lease < Duration::from_secs(1) {
            return fail("runner.lease", "must be at least 1s");
        }
        if self.runner.timeout.is_zero() {
            return fail("runner.timeout", "must be more than 0s");
        }
        if self.quotas.min_schedule_interval < Duration::from_secs(1) {
            // Cron's finest step is a second.
            return fail("quotas.min_schedule_interval", "must be at least 1s");
        }
        // As `schedule_every`: tests and demos pass often; 100 ms stops a
        // value that would spin.
        if self.retention.every < Duration::from_millis(100) {
            return fail("retention.every", "must be at least 100ms");
        }
        if let Some(token) = &self.metrics_token
            && token.0.expose_secret().len() < MIN_METRICS_TOKEN
        {
            return fail(
                "metrics_token",
                format!("must be at least {MIN_METRICS_TOKEN} characters"),
            );
        }
        if self.schedule_every < Duration::from_millis(100) {
            return fail("schedule_every", "must be at least 100ms");
        }
        self.check_deliveries()?;
        self.sharing.check()?;
        self.error_tracking.check()?;
        self.check_results()?;
        if let Some(url) = &self.metadata_url
            && !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
        {
            return fail(
                "metadata_url",
                "must start with sqlite:, postgres:// or postgresql://",
            );
        }
        Ok(())
    }

    /// The delivery settings and the public URL their links start with.
    fn check_deliveries(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.public_url {
            let parsed = url::Url::parse(url).or_else(|e| fail("public_url", e))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                return fail(
                    "public_url",
                    format!("{url:?} is not an http(s) URL such as https://loupe.example.com"),
                );
            }
        }
        let d = &self.deliveries;
        if d.max_attempts == 0 {
            return fail("deliveries.max_attempts", "must be at least 1");
        }
        if d.preview_rows > 100 {
            return fail("deliveries.preview_rows", "must be at most 100");
        }
        for (key, value, min) in [
            ("deliveries.every", d.every, Duration::from_millis(100)),
            ("deliveries.timeout", d.timeout, Duration::from_secs(1)),
            (
                "deliveries.retry_after",
                d.retry_after,
                Duration::from_millis(100),
            ),
            ("deliveries.link_ttl", d.link_ttl, Duration::from_secs(60)),
        ] {
            if value < min {
                return fail(
                    key,
                    format!("must be at least {}", humantime::format_duration(min)),
                );
            }
        }
        if let Some(file) = &d.ca_file
            && !file.is_file()
        {
            return fail(
                "deliveries.ca_file",
                format!("{} is not a file on this machine", file.display()),
            );
        }
        Ok(())
    }

    /// Where results go: one of `results_dir` and `results_url`, and the
    /// `[s3]` settings only with an `s3://` URL.
    fn check_results(&self) -> Result<(), ConfigError> {
        let Some(url) = &self.results_url else {
            if !self.s3.is_empty() {
                return fail(
                    "s3",
                    "these settings reach the object store of results_url; set results_url = \"s3://bucket/prefix\" too, or remove them",
                );
            }
            return Ok(());
        };
        if self.results_dir.is_some() {
            return fail(
                "results_url",
                "set either results_dir (a directory on this machine) or results_url (an object store, s3://bucket/prefix), not both",
            );
        }
        if !url.starts_with("s3://") {
            return fail(
                "results_url",
                format!(
                    "{url:?} is not an s3://bucket/prefix URL; for a directory on this machine set results_dir"
                ),
            );
        }
        loupe_core::parse_s3_url(url).or_else(|e| fail("results_url", e))?;
        let s3 = &self.s3;
        let has_secret = s3.secret_access_key.is_some() || s3.secret_access_key_file.is_some();
        if s3.access_key_id.is_some() != has_secret {
            return fail(
                "s3.access_key_id",
                "set it together with s3.secret_access_key (or s3.secret_access_key_file), or neither to use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            );
        }
        if let Some(endpoint) = &s3.endpoint {
            match url::Url::parse(endpoint) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
                _ => {
                    return fail(
                        "s3.endpoint",
                        format!("{endpoint:?} is not an http:// or https:// URL"),
                    );
                }
            }
        }
        let plain = loupe_core::S3Options {
            endpoint: s3.endpoint.clone(),
            allow_http: s3.allow_http,
            ..loupe_core::S3Options::default()
        };
        if let Some(endpoint) = plain.refused_http_endpoint() {
            return fail(
                "s3.endpoint",
                format!(
                    "{endpoint} is plain HTTP to another machine: keys and results would cross the network in clear text; use https://, or set s3.allow_http = true"
                ),
            );
        }
        Ok(())
    }

    /// True when results are kept in the data directory (no
    /// `results_dir`, no `results_url`).
    pub fn results_in_data_dir(&self) -> bool {
        self.results_dir.is_none() && self.results_url.is_none()
    }

    /// The metadata location in effect: the configured URL, or a SQLite
    /// file in the data directory (a path, so the file is created).
    pub fn metadata_url(&self) -> String {
        self.metadata_url
            .clone()
            .unwrap_or_else(|| self.data_dir.join("loupe.db").display().to_string())
    }

    /// True when the metadata is in PostgreSQL, which several processes
    /// can share.
    pub fn shares_metadata(&self) -> bool {
        self.metadata_url
            .as_deref()
            .is_some_and(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
    }

    /// The result directory in effect.
    pub fn results_dir(&self) -> PathBuf {
        self.results_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("results"))
    }

    /// The token `/metrics` requires, from `metrics_token` or its file.
    pub fn metrics_token(&self) -> Result<Option<SecretString>, ConfigError> {
        let token = read_secret(
            "metrics_token_file",
            self.metrics_token.as_ref(),
            self.metrics_token_file.as_deref(),
        )?;
        if let Some(token) = &token
            && token.expose_secret().len() < MIN_METRICS_TOKEN
        {
            return fail(
                "metrics_token_file",
                format!("the token must be at least {MIN_METRICS_TOKEN} characters"),
            );
        }
        Ok(token)
    }

    /// The admin password from `admin_password` or its file.
    pub fn admin_password(&self) -> Result<Option<SecretString>, ConfigError> {
        read_secret(
            "admin_password_file",
            self.admin_password.as_ref(),
            self.admin_password_file.as_deref(),
        )
    }

    /// The same configuration with every secret, and the password in the
    /// metadata URL, masked: for printing.
    pub fn masked(&self) -> Self {
        let mut shown = self.clone();
        if let Some(url) = &shown.metadata_url {
            shown.metadata_url = Some(mask_url_password(url));
        }
        shown
    }
}

/// The sources of a configuration, in order: `defaults`, the TOML `file`
/// (if given), then the `LOUPE_*` variables whose first key is one of
/// `keys`. Other programs' `LOUPE_*` variables (the tests', another host's)
/// are not this configuration's keys and are left alone.
pub fn sources(defaults: impl Serialize, file: Option<&Path>, keys: Vec<&'static str>) -> Figment {
    let mut figment = Figment::from(Serialized::defaults(defaults));
    if let Some(file) = file {
        figment = figment.merge(Toml::file_exact(file));
    }
    figment.merge(Env::prefixed("LOUPE_").split("__").filter(move |key| {
        keys.iter().any(|k| {
            key.as_str()
                .split('.')
                .next()
                .is_some_and(|f| f.eq_ignore_ascii_case(k))
        })
    }))
}

/// Extracts a configuration from `figment`, refusing top-level keys that
/// are not in `keys` (a typo in a file must not be silently ignored).
pub fn extract<T: DeserializeOwned>(figment: &Figment, keys: &[&str]) -> Result<T, ConfigError> {
    let given: figment::value::Dict = figment.extract().map_err(describe)?;
    let mut unknown: Vec<&str> = given
        .keys()
        .map(String::as_str)
        .filter(|k| !keys.contains(k))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        return Err(ConfigError(format!(
            "invalid configuration: unknown key{} {}; the keys are: {}",
            if unknown.len() == 1 { "" } else { "s" },
            unknown
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", "),
            keys.join(", ")
        )));
    }
    figment.extract().map_err(describe)
}

/// Loads a [`DeploymentConfig`] alone: defaults < `file` < environment,
/// then checks it.
pub fn load(file: Option<&Path>) -> Result<DeploymentConfig, ConfigError> {
    let keys = field_names::<DeploymentConfig>();
    let config: DeploymentConfig = extract(
        &sources(DeploymentConfig::default(), file, keys.clone()),
        &keys,
    )?;
    config.check()?;
    Ok(config)
}

fn describe(e: figment::Error) -> ConfigError {
    let errors: Vec<String> = e
        .into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                String::new()
            } else {
                format!("`{}`: ", e.path.join("."))
            };
            let from = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            format!("{key}{}{from}", e.kind)
        })
        .collect();
    ConfigError(format!("invalid configuration: {}", errors.join("; ")))
}

/// The field names of a struct, as serde sees them: the top-level keys a
/// configuration accepts, read from the type itself so that no list of
/// names can drift from it.
pub fn field_names<T: DeserializeOwned>() -> Vec<&'static str> {
    let mut names = Vec::new();
    let _ = T::deserialize(FieldNames(&mut names));
    names
}

/// A deserializer that only records the fields a struct asks for.
struct FieldNames<'a>(&'a mut Vec<&'static str>);

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names recorded")
    }
}

impl std::error::Error for Stop {}

impl serde::de::Error for Stop {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Stop
    }
}

impl<'de> serde::Deserializer<'de> for FieldNames<'_> {
    type Error = Stop;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.0.extend_from_slice(fields);
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// A secret given inline or in a file (trailing newline trimmed).
pub fn read_secret(
    key: &str,
    inline: Option<&Secret>,
    file: Option<&Path>,
) -> Result<Option<SecretString>, ConfigError> {
    if let Some(secret) = inline {
        return Ok(Some(secret.0.clone()));
    }
    let Some(path) = file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("`{key}`: cannot read {}: {e}", path.display())))?;
    let trimmed = text.trim_end_matches(['\r', '\n']);
    if trimmed.is_empty() {
        return Err(ConfigError(format!("`{key}`: {} is empty", path.display())));
    }
    Ok(Some(SecretString::from(trimmed.to_owned())))
}

/// A URL with its password masked, for printing.
pub fn mask_url_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("********"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Exposes a secret for the few places that need its text.
pub(crate) fn expose(secret: &SecretString) -> &str {
    secret.expose_secret()
}

/// Durations as people write them: `30s`, `15m`, `1h 30m`.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `d` as `30s`, `15m`, ...
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    /// Reads `30s`, `15m`, `1h 30m`, ...
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration such as 30s or 15m: {e}"
            ))
        })
    }
}

#[cfg(test)]
// figment's `Jail` closures return its large error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn field_names_come_from_the_type() {
        let names = field_names::<DeploymentConfig>();
        for key in ["data_dir", "metadata_url", "runner", "files_roots"] {
            assert!(names.contains(&key), "{key} in {names:?}");
        }
        assert_eq!(
            field_names::<RunnerSettings>(),
            [
                "name",
                "workers",
                "per_datasource",
                "per_user",
                "lease",
                "timeout",
                "max_rows",
                "max_bytes"
            ]
        );
    }

    #[test]
    fn env_wins_over_the_file_and_unknown_keys_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("loupe.toml", "[runner]\nworkers = 2\nper_user = 3\n")?;
            jail.set_env("LOUPE_RUNNER__WORKERS", "8");
            jail.set_env("LOUPE_TEST_POSTGRES_URL", "postgres://ignored");
            let config = load(Some(Path::new("loupe.toml"))).map_err(|e| e.0)?;
            assert_eq!(config.runner.workers, 8);
            assert_eq!(config.runner.per_user, 3);

            jail.create_file("typo.toml", "metadata_ulr = \"sqlite:x\"\n")?;
            let e = load(Some(Path::new("typo.toml"))).unwrap_err();
            assert!(e.0.contains("`metadata_ulr`"), "{e}");

            jail.set_env("LOUPE_RUNNER__TIMEOUT", "soon");
            let e = load(None).unwrap_err();
            assert!(e.0.contains("runner.timeout"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn zero_workers_and_missing_roots_are_refused_by_name() {
        let config = DeploymentConfig {
            runner: RunnerSettings {
                workers: 0,
                ..RunnerSettings::default()
            },
            ..DeploymentConfig::default()
        };
        assert_eq!(
            config.check().unwrap_err().0,
            "`runner.workers`: must be at least 1"
        );
        let config = DeploymentConfig {
            files_roots: vec![PathBuf::from("/no/such/loupe/dir")],
            ..DeploymentConfig::default()
        };
        assert!(
            config
                .check()
                .unwrap_err()
                .0
                .contains("`files_roots`: /no/such/loupe/dir is not a directory")
        );
    }

    #[test]
    fn error_tracking_settings_are_refused_by_name() {
        let refused = |settings: ErrorTrackingSettings| {
            DeploymentConfig {
                error_tracking: settings,
                ..DeploymentConfig::default()
            }
            .check()
            .unwrap_err()
            .0
        };
        let message = refused(ErrorTrackingSettings {
            sample_rate: 1.5,
            ..ErrorTrackingSettings::default()
        });
        assert_eq!(
            message,
            "`error_tracking.sample_rate`: must be between 0 and 1"
        );
        let message = refused(ErrorTrackingSettings {
            dsn: Some(Secret::from("http://key@sentry.example.com/1")),
            ..ErrorTrackingSettings::default()
        });
        assert!(
            message.starts_with("`error_tracking.dsn`: is plain HTTP"),
            "{message}"
        );
        assert!(
            !message.contains("key@"),
            "the key is not echoed: {message}"
        );
        let message = refused(ErrorTrackingSettings {
            environment: " ".into(),
            ..ErrorTrackingSettings::default()
        });
        assert!(
            message.starts_with("`error_tracking.environment`"),
            "{message}"
        );
        // Off by default, and nothing to check then.
        assert!(DeploymentConfig::default().check().is_ok());
        assert!(ErrorTrackingSettings::default().dsn().unwrap().is_none());
    }

    #[test]
    fn schedules_cannot_be_allowed_to_fire_more_often_than_cron_can() {
        let config = DeploymentConfig {
            quotas: QuotaSettings {
                min_schedule_interval: Duration::from_millis(500),
                ..QuotaSettings::default()
            },
            ..DeploymentConfig::default()
        };
        assert_eq!(
            config.check().unwrap_err().0,
            "`quotas.min_schedule_interval`: must be at least 1s"
        );
        assert_eq!(
            field_names::<QuotaSettings>(),
            [
                "min_schedule_interval",
                "enabled_schedules_per_user",
                "queued_runs_per_user"
            ]
        );
    }

    #[test]
    fn results_go_to_a_directory_or_an_object_store_not_both() {
        let config = DeploymentConfig {
            results_dir: Some(PathBuf::from("/srv/loupe/results")),
            results_url: Some("s3://loupe-results/prod".to_owned()),
            ..DeploymentConfig::default()
        };
        let e = config.check().unwrap_err().0;
        assert!(
            e.starts_with("`results_url`: set either results_dir"),
            "{e}"
        );

        for (url, why) in [
            (
                "/srv/loupe/results",
                "for a directory on this machine set results_dir",
            ),
            (
                "gs://loupe-results/prod",
                "is not an s3://bucket/prefix URL",
            ),
            ("s3:///prod", "no bucket"),
        ] {
            let config = DeploymentConfig {
                results_url: Some(url.to_owned()),
                ..DeploymentConfig::default()
            };
            let e = config.check().unwrap_err().0;
            assert!(e.contains(why), "{url}: {e}");
        }
    }

    #[test]
    fn s3_settings_are_checked_by_name() {
        let s3 = |s3: S3Settings| DeploymentConfig {
            results_url: Some("s3://loupe-results/prod".to_owned()),
            s3,
            ..DeploymentConfig::default()
        };
        let half = s3(S3Settings {
            access_key_id: Some("AKIDEXAMPLE".to_owned()),
            ..S3Settings::default()
        });
        assert!(
            half.check()
                .unwrap_err()
                .0
                .starts_with("`s3.access_key_id`")
        );
        let both = s3(S3Settings {
            access_key_id: Some("AKIDEXAMPLE".to_owned()),
            secret_access_key: Some(Secret::from("inline")),
            secret_access_key_file: Some(PathBuf::from("/run/secrets/s3")),
            ..S3Settings::default()
        });
        assert!(
            both.check()
                .unwrap_err()
                .0
                .contains("set either s3.secret_access_key or s3.secret_access_key_file")
        );
        let endpoint = s3(S3Settings {
            endpoint: Some("minio.internal:9000".to_owned()),
            ..S3Settings::default()
        });
        assert!(endpoint.check().unwrap_err().0.starts_with("`s3.endpoint`"));
        let plain = |allow_http| {
            s3(S3Settings {
                endpoint: Some("http://minio.internal:9000".to_owned()),
                allow_http,
                ..S3Settings::default()
            })
        };
        assert!(
            plain(false)
                .check()
                .unwrap_err()
                .0
                .contains("s3.allow_http")
        );
        assert!(plain(true).check().is_ok());
        let local = s3(S3Settings {
            endpoint: Some("http://127.0.0.1:9000".to_owned()),
            ..S3Settings::default()
        });
        assert!(local.check().is_ok());
        // Settings for an object store without one are a mistake.
        let stray = DeploymentConfig {
            s3: S3Settings {
                region: Some("eu-west-1".to_owned()),
                ..S3Settings::default()
            },
            ..DeploymentConfig::default()
        };
        assert!(stray.check().unwrap_err().0.starts_with("`s3`:"));
    }

    #[test]
    fn the_s3_secret_comes_from_its_file_and_is_never_shown() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("s3-secret", "wJalrXUtnFEMI\n")?;
            jail.set_env("LOUPE_RESULTS_URL", "s3://loupe-results/prod");
            jail.set_env("LOUPE_S3__ACCESS_KEY_ID", "AKIDEXAMPLE");
            jail.set_env("LOUPE_S3__SECRET_ACCESS_KEY_FILE", "s3-secret");
            jail.set_env("LOUPE_S3__ENDPOINT", "http://127.0.0.1:9000");
            let config = load(None).map_err(|e| e.0)?;
            let options = config.s3.options().map_err(|e| e.0)?;
            assert_eq!(options.secret_access_key.as_deref(), Some("wJalrXUtnFEMI"));
            assert_eq!(options.endpoint.as_deref(), Some("http://127.0.0.1:9000"));

            let config = DeploymentConfig {
                s3: S3Settings {
                    secret_access_key: Some(Secret::from("wJalrXUtnFEMI")),
                    ..S3Settings::default()
                },
                ..DeploymentConfig::default()
            };
            let shown = serde_json::to_string(&config.masked()).unwrap_or_default();
            assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
            Ok(())
        });
    }

    #[test]
    fn retention_is_on_by_default() {
        let retention = DeploymentConfig::default().retention;
        assert_eq!(retention.max_age, Duration::from_secs(30 * 24 * 3600));
        assert_eq!(
            retention.audit_max_age,
            Duration::from_secs(365 * 24 * 3600)
        );
        assert!(retention.prune_tokens);
        assert_eq!(retention.keep_per_query, 0);
        assert_eq!(
            field_names::<RetentionSettings>(),
            [
                "max_age",
                "keep_per_query",
                "audit_max_age",
                "prune_tokens",
                "every"
            ]
        );
    }

    #[test]
    fn a_metrics_token_is_long_and_given_once() {
        let short = DeploymentConfig {
            metrics_token: Some(Secret::from("short")),
            ..DeploymentConfig::default()
        };
        assert_eq!(
            short.check().unwrap_err().0,
            "`metrics_token`: must be at least 16 characters"
        );
        let both = DeploymentConfig {
            metrics_token: Some(Secret::from("a-metrics-token-long-enough")),
            metrics_token_file: Some(PathBuf::from("token")),
            ..DeploymentConfig::default()
        };
        assert!(both.check().unwrap_err().0.contains("not both"));
        figment::Jail::expect_with(|jail| {
            jail.create_file("token", "a-metrics-token-from-a-file\n")?;
            jail.set_env("LOUPE_METRICS_TOKEN_FILE", "token");
            jail.set_env("LOUPE_OPS_LISTEN", "127.0.0.1:9464");
            let config = load(None).map_err(|e| e.0)?;
            let token = config.metrics_token().map_err(|e| e.0)?;
            assert_eq!(
                token.as_ref().map(ExposeSecret::expose_secret),
                Some("a-metrics-token-from-a-file")
            );
            assert_eq!(config.ops_listen.map(|a| a.port()), Some(9464));
            Ok(())
        });
    }

    #[test]
    fn masked_hides_the_metadata_password() {
        let config = DeploymentConfig {
            metadata_url: Some("postgres://loupe:hunter2@db/loupe".to_owned()),
            secret_key: Some(Secret::from("a-real-secret-value")),
            ..DeploymentConfig::default()
        };
        let text = serde_json::to_string(&config.masked()).unwrap_or_default();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("a-real-secret-value"), "{text}");
    }
}
