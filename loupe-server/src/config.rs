//! The server's configuration: defaults, then a TOML file, then `LOUPE_*`
//! environment variables (which win). Nested keys use `__` in the
//! environment: `LOUPE_RATE_LIMIT__AUTH_PER_MINUTE=20`. Secrets can come
//! from files (`signing_secret_file`, `LOUPE_SIGNING_SECRET_FILE`, ...).
//! Everything is checked at start, and errors name the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// A secret: never printed.
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

/// Which parts of the server this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ServerRole {
    /// API, runner and scheduler in one process (the default).
    All,
    /// Only the HTTP API; runs are executed by runner processes.
    Api,
    /// Only the runner: executes queued runs.
    Runner,
    /// Only the scheduler (and retention): queues scheduled runs.
    Scheduler,
}

impl ServerRole {
    /// Serves HTTP (the API, health and metrics).
    pub fn serves_api(self) -> bool {
        matches!(self, Self::All | Self::Api)
    }
    /// Executes runs.
    pub fn runs(self) -> bool {
        matches!(self, Self::All | Self::Runner)
    }
    /// Fires schedules and applies retention.
    pub fn schedules(self) -> bool {
        matches!(self, Self::All | Self::Scheduler)
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Text in a terminal, JSON otherwise.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where SQLite metadata, results and generated secrets live.
    pub data_dir: PathBuf,
    /// Metadata database (`sqlite://…` or `postgres://…`); default: SQLite
    /// in the data directory.
    pub metadata_url: Option<String>,
    /// Result store: a directory; default `<data_dir>/results`.
    pub results_dir: Option<PathBuf>,
    /// What this process runs.
    pub role: ServerRole,
    /// The URL users reach the server at (for the set-up link).
    pub public_url: Option<String>,
    /// Secret that signs access tokens; generated into the data directory
    /// when neither this nor `signing_secret_file` is set.
    pub signing_secret: Option<Secret>,
    /// File holding the signing secret.
    pub signing_secret_file: Option<PathBuf>,
    /// Key that encrypts datasource secrets (base64 of 32 bytes);
    /// generated into the data directory when not set.
    pub secret_key: Option<Secret>,
    /// File holding the secret key.
    pub secret_key_file: Option<PathBuf>,
    /// Older secret keys, still accepted for decryption while rotating.
    pub previous_secret_keys: Vec<Secret>,
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
    /// a datasource at the server's own files.
    pub files_roots: Vec<PathBuf>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: u64,
    /// Lifetime of access tokens.
    #[serde(with = "duration")]
    pub access_token_ttl: Duration,
    /// Lifetime of refresh tokens.
    #[serde(with = "duration")]
    pub refresh_token_ttl: Duration,
    /// Failed logins in a row that lock an account.
    pub lockout_threshold: u32,
    /// How long a locked account stays locked.
    #[serde(with = "duration")]
    pub lockout_window: Duration,
    /// Rate limits.
    pub rate_limit: RateLimitConfig,
    /// Cross-origin requests.
    pub cors: CorsConfig,
    /// TLS for direct exposure (PEM files).
    pub tls: Option<TlsConfig>,
    /// Send `Strict-Transport-Security` (behind TLS only).
    pub hsts: bool,
    /// Take the client address from `X-Forwarded-For` (behind a proxy).
    pub trust_forwarded_for: bool,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter, as `RUST_LOG` (default `info`).
    pub log_filter: String,
    /// Send traces to this OpenTelemetry collector (OTLP over HTTP, such
    /// as `http://collector:4318/v1/traces`); needs the `otel` feature.
    pub otlp_endpoint: Option<String>,
    /// The in-process runner.
    pub runner: RunnerSettings,
    /// How often the scheduler looks for due schedules.
    #[serde(with = "duration")]
    pub schedule_every: Duration,
    /// Result retention.
    pub retention: RetentionSettings,
    /// Time in-flight requests and runs get on shutdown.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
}

/// Rate limits (token buckets).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Requests per minute per client address on the sign-in endpoints.
    pub auth_per_minute: u32,
    /// Requests per second per user or API key on the rest.
    pub api_per_second: u32,
    /// Burst above the per-second rate.
    pub api_burst: u32,
}

/// Cross-origin requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins allowed to call the API from a browser; none by default.
    pub allowed_origins: Vec<String>,
    /// Let browsers send credentials (cookies, `Authorization`); never
    /// with a wildcard origin.
    pub allow_credentials: bool,
}

/// TLS certificate and key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
}

/// The in-process runner.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunnerSettings {
    /// Runs executed at once.
    pub workers: usize,
    /// Runs at once per datasource.
    pub per_datasource: usize,
    /// Runs at once per user.
    pub per_user: usize,
    /// Time limit of a run.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Rows kept of a result (0: no limit).
    pub max_rows: u64,
    /// Bytes kept of a result (0: no limit).
    pub max_bytes: u64,
}

/// Result retention.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// Delete results older than this (`0s`: keep).
    #[serde(with = "duration")]
    pub max_age: Duration,
    /// Keep at most this many results per saved query (0: no limit).
    pub keep_per_query: u32,
    /// How often retention runs.
    #[serde(with = "duration")]
    pub every: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("loupe-data"),
            metadata_url: None,
            results_dir: None,
            role: ServerRole::All,
            public_url: None,
            signing_secret: None,
            signing_secret_file: None,
            secret_key: None,
            secret_key_file: None,
            previous_secret_keys: Vec::new(),
            admin_email: None,
            admin_password: None,
            admin_password_file: None,
            admin_name: "Admin".to_owned(),
            org_name: "Loupe".to_owned(),
            sample_datasource: true,
            sample_data_dir: None,
            files_roots: Vec::new(),
            max_body_bytes: 1024 * 1024,
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            lockout_threshold: 5,
            lockout_window: Duration::from_secs(15 * 60),
            rate_limit: RateLimitConfig::default(),
            cors: CorsConfig::default(),
            tls: None,
            hsts: false,
            trust_forwarded_for: false,
            log_format: LogFormat::Auto,
            log_filter: "info".to_owned(),
            otlp_endpoint: None,
            runner: RunnerSettings::default(),
            schedule_every: Duration::from_secs(5),
            retention: RetentionSettings::default(),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            auth_per_minute: 20,
            api_per_second: 50,
            api_burst: 200,
        }
    }
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            workers: 4,
            per_datasource: 4,
            per_user: 4,
            timeout: Duration::from_secs(300),
            max_rows: 0,
            max_bytes: 0,
        }
    }
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            max_age: Duration::ZERO,
            keep_per_query: 0,
            every: Duration::from_secs(3600),
        }
    }
}

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub(crate) String);

impl From<String> for ConfigError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl Config {
    /// Loads defaults < `file` (if given) < `LOUPE_*` environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_figment(Self::figment(file))
    }

    /// The sources, in order, for `load`.
    pub fn figment(file: Option<&Path>) -> Figment {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        // Other programs' LOUPE_* variables (the CLI's, the tests') are not
        // this server's keys: only top-level keys of Config are read.
        let known = Self::top_level_keys();
        figment.merge(Env::prefixed("LOUPE_").split("__").filter(move |key| {
            known.iter().any(|k| {
                key.as_str()
                    .split('.')
                    .next()
                    .is_some_and(|f| f.eq_ignore_ascii_case(k))
            })
        }))
    }

    /// Extracts and checks a configuration.
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(|e| {
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
        })?;
        config.check()?;
        Ok(config)
    }

    fn top_level_keys() -> Vec<&'static str> {
        vec![
            "listen",
            "data_dir",
            "metadata_url",
            "results_dir",
            "role",
            "public_url",
            "signing_secret",
            "signing_secret_file",
            "secret_key",
            "secret_key_file",
            "previous_secret_keys",
            "admin_email",
            "admin_password",
            "admin_password_file",
            "admin_name",
            "org_name",
            "sample_datasource",
            "sample_data_dir",
            "files_roots",
            "max_body_bytes",
            "access_token_ttl",
            "refresh_token_ttl",
            "lockout_threshold",
            "lockout_window",
            "rate_limit",
            "cors",
            "tls",
            "hsts",
            "trust_forwarded_for",
            "log_format",
            "log_filter",
            "otlp_endpoint",
            "runner",
            "schedule_every",
            "retention",
            "shutdown_grace",
        ]
    }

    fn check(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, why: &str| Err(ConfigError(format!("`{key}`: {why}")));
        if self.signing_secret.is_some() && self.signing_secret_file.is_some() {
            return fail(
                "signing_secret",
                "set either signing_secret or signing_secret_file, not both",
            );
        }
        if self.secret_key.is_some() && self.secret_key_file.is_some() {
            return fail(
                "secret_key",
                "set either secret_key or secret_key_file, not both",
            );
        }
        if self.admin_password.is_some() && self.admin_password_file.is_some() {
            return fail(
                "admin_password",
                "set either admin_password or admin_password_file, not both",
            );
        }
        if let Some(endpoint) = &self.otlp_endpoint {
            if !cfg!(feature = "otel") {
                return fail(
                    "otlp_endpoint",
                    "this build cannot export traces; build loupe-server with `--features otel`",
                );
            }
            if url::Url::parse(endpoint).is_err() {
                return fail(
                    "otlp_endpoint",
                    "must be a URL such as http://collector:4318/v1/traces",
                );
            }
        }
        for dir in &self.files_roots {
            if !dir.is_dir() {
                return fail(
                    "files_roots",
                    &format!("{} is not a directory on this machine", dir.display()),
                );
            }
        }
        if self.max_body_bytes < 1024 {
            return fail("max_body_bytes", "must be at least 1024");
        }
        if self.access_token_ttl < Duration::from_secs(30)
            || self.access_token_ttl > Duration::from_secs(24 * 3600)
        {
            return fail("access_token_ttl", "must be between 30s and 24h");
        }
        if self.refresh_token_ttl < self.access_token_ttl {
            return fail("refresh_token_ttl", "must be at least access_token_ttl");
        }
        if self.lockout_threshold == 0 {
            return fail("lockout_threshold", "must be at least 1");
        }
        if self.rate_limit.auth_per_minute == 0 {
            return fail("rate_limit.auth_per_minute", "must be at least 1");
        }
        if self.rate_limit.api_per_second == 0 {
            return fail("rate_limit.api_per_second", "must be at least 1");
        }
        if self.runner.workers == 0 {
            return fail("runner.workers", "must be at least 1");
        }
        if self.schedule_every < Duration::from_millis(100) {
            return fail("schedule_every", "must be at least 100ms");
        }
        if self.cors.allow_credentials && self.cors.allowed_origins.iter().any(|o| o == "*") {
            return fail(
                "cors.allowed_origins",
                "a wildcard origin cannot be combined with allow_credentials; list the origins",
            );
        }
        for origin in &self.cors.allowed_origins {
            if origin != "*" && url::Url::parse(origin).is_err() {
                return fail(
                    "cors.allowed_origins",
                    &format!("{origin:?} is not an origin such as https://app.example.com"),
                );
            }
        }
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
        if !matches!(self.role, ServerRole::All)
            && self
                .metadata_url
                .as_deref()
                .is_none_or(|u| u.starts_with("sqlite:"))
        {
            return fail(
                "role",
                "separate api, runner and scheduler processes share a PostgreSQL metadata_url",
            );
        }
        if self.hsts
            && self.tls.is_none()
            && self
                .public_url
                .as_deref()
                .is_none_or(|u| !u.starts_with("https://"))
        {
            return fail(
                "hsts",
                "HSTS only makes sense behind TLS: set tls, or a public_url that starts with https://",
            );
        }
        Ok(())
    }

    /// The metadata location in effect: the configured URL, or a SQLite
    /// file in the data directory (a path, so the file is created).
    pub fn metadata_url(&self) -> String {
        self.metadata_url
            .clone()
            .unwrap_or_else(|| self.data_dir.join("loupe.db").display().to_string())
    }

    /// The result directory in effect.
    pub fn results_dir(&self) -> PathBuf {
        self.results_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("results"))
    }

    /// The configuration as TOML, secrets masked.
    pub fn to_masked_toml(&self) -> String {
        let mut shown = self.clone();
        if let Some(url) = &shown.metadata_url {
            shown.metadata_url = Some(mask_url_password(url));
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }

    /// The admin password from `admin_password` or its file.
    pub fn admin_password(&self) -> Result<Option<SecretString>, ConfigError> {
        read_secret(
            "admin_password_file",
            self.admin_password.as_ref(),
            self.admin_password_file.as_deref(),
        )
    }
}

/// A secret given inline or in a file (trailing newline trimmed).
pub(crate) fn read_secret(
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

fn mask_url_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("********"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Durations as people write them: `30s`, `15m`, `1h 30m`.
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration such as 30s or 15m: {e}"
            ))
        })
    }
}

/// Exposes a secret for the few places that need its text.
pub(crate) fn expose(secret: &SecretString) -> &str {
    secret.expose_secret()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_wins_over_the_file_and_errors_name_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "loupe.toml",
                "listen = \"127.0.0.1:9000\"\nmax_body_bytes = 4096\n[rate_limit]\nauth_per_minute = 3\n",
            )?;
            jail.set_env("LOUPE_MAX_BODY_BYTES", "8192");
            jail.set_env("LOUPE_RATE_LIMIT__API_BURST", "7");
            jail.set_env("LOUPE_TEST_POSTGRES_URL", "postgres://ignored");
            let config = Config::load(Some(Path::new("loupe.toml"))).map_err(|e| e.0)?;
            assert_eq!(config.listen.port(), 9000);
            assert_eq!(config.max_body_bytes, 8192);
            assert_eq!(config.rate_limit.auth_per_minute, 3);
            assert_eq!(config.rate_limit.api_burst, 7);

            jail.set_env("LOUPE_ACCESS_TOKEN_TTL", "soon");
            let e = Config::load(Some(Path::new("loupe.toml"))).unwrap_err();
            assert!(e.0.contains("access_token_ttl"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn unknown_file_keys_and_wildcard_credentials_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("a.toml", "lisen = \"127.0.0.1:1\"\n")?;
            let e = Config::load(Some(Path::new("a.toml"))).unwrap_err();
            assert!(e.0.contains("lisen"), "{e}");
            jail.create_file(
                "b.toml",
                "[cors]\nallowed_origins = [\"*\"]\nallow_credentials = true\n",
            )?;
            let e = Config::load(Some(Path::new("b.toml"))).unwrap_err();
            assert!(e.0.contains("cors.allowed_origins"), "{e}");
            jail.create_dir("exports")?;
            jail.set_env("LOUPE_FILES_ROOTS", "[\"exports\"]");
            let config = Config::load(None).map_err(|e| e.0)?;
            assert_eq!(config.files_roots, [Path::new("exports")]);
            jail.set_env("LOUPE_FILES_ROOTS", "[\"exports\", \"missing\"]");
            let e = Config::load(None).unwrap_err();
            assert!(
                e.0.contains("`files_roots`: missing is not a directory"),
                "{e}"
            );
            Ok(())
        });
    }

    #[test]
    fn printed_config_masks_secrets() {
        let config = Config {
            signing_secret: Some(Secret(SecretString::from("a-real-secret-value".to_owned()))),
            metadata_url: Some("postgres://loupe:hunter2@db/loupe".to_owned()),
            ..Config::default()
        };
        let text = config.to_masked_toml();
        assert!(!text.contains("a-real-secret-value"));
        assert!(!text.contains("hunter2"));
        assert!(text.contains("********"));
    }
}
