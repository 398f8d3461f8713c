//! The server's configuration: defaults, then a TOML file, then `LOUPE_*`
//! environment variables (which win). Nested keys use `__` in the
//! environment: `LOUPE_RATE_LIMIT__AUTH_PER_MINUTE=20`. Secrets can come
//! from files (`signing_secret_file`, `LOUPE_SIGNING_SECRET_FILE`, ...).
//! Everything is checked at start, and errors name the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use loupe_services::config::{self, field_names};
pub use loupe_services::config::{ConfigError, Secret};
use loupe_services::{DeploymentConfig, Parts};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which parts of the server this process runs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, clap::ValueEnum,
)]
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

    /// The role as configured: `all`, `api`, `runner` or `scheduler`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Api => "api",
            Self::Runner => "runner",
            Self::Scheduler => "scheduler",
        }
    }

    /// The parts of the deployment this role runs.
    pub fn parts(self) -> Parts {
        Parts {
            api: self.serves_api(),
            runner: self.runs(),
            scheduler: self.schedules(),
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Text in a terminal, JSON otherwise.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// The whole configuration: the deployment's settings, which every host
/// of a deployment shares (`loupe runner` reads the same keys), and the
/// server's own. Both are flat in the file and the environment.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Config {
    /// Metadata, results, secrets, runner, scheduler, retention, first start.
    #[serde(flatten)]
    pub deployment: DeploymentConfig,
    /// Listening, HTTP limits and security, logs and traces.
    #[serde(flatten)]
    pub server: ServerSettings,
}

/// The server's own settings.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ServerSettings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// What this process runs.
    pub role: ServerRole,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: u64,
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
}

/// Rate limits (token buckets).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins allowed to call the API from a browser; none by default.
    pub allowed_origins: Vec<String>,
    /// Let browsers send credentials (cookies, `Authorization`); never
    /// with a wildcard origin.
    pub allow_credentials: bool,
}

/// TLS certificate and key.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            role: ServerRole::All,
            max_body_bytes: 1024 * 1024,
            rate_limit: RateLimitConfig::default(),
            cors: CorsConfig::default(),
            tls: None,
            hsts: false,
            trust_forwarded_for: false,
            log_format: LogFormat::Auto,
            log_filter: "info".to_owned(),
            otlp_endpoint: None,
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

impl Config {
    /// Loads defaults < `file` (if given) < `LOUPE_*` environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_figment(Self::figment(file))
    }

    /// Every top-level key, read from the two setting types.
    pub fn keys() -> Vec<&'static str> {
        let mut keys = field_names::<DeploymentConfig>();
        keys.extend(field_names::<ServerSettings>());
        keys
    }

    /// The sources, in order, for `load`.
    pub fn figment(file: Option<&Path>) -> Figment {
        config::sources(Config::default(), file, Self::keys())
    }

    /// Extracts and checks a configuration.
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        // Each part on its own, so that an error keeps the key's path.
        let keys = Self::keys();
        let config = Config {
            deployment: config::extract(&figment, &keys)?,
            server: config::extract(&figment, &keys)?,
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        self.deployment.check()?;
        let fail = |key: &str, why: &str| Err(ConfigError(format!("`{key}`: {why}")));
        let server = &self.server;
        if let Some(endpoint) = &server.otlp_endpoint {
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
        if server.max_body_bytes < 1024 {
            return fail("max_body_bytes", "must be at least 1024");
        }
        if server.rate_limit.auth_per_minute == 0 {
            return fail("rate_limit.auth_per_minute", "must be at least 1");
        }
        if server.rate_limit.api_per_second == 0 {
            return fail("rate_limit.api_per_second", "must be at least 1");
        }
        if server.cors.allow_credentials && server.cors.allowed_origins.iter().any(|o| o == "*") {
            return fail(
                "cors.allowed_origins",
                "a wildcard origin cannot be combined with allow_credentials; list the origins",
            );
        }
        for origin in &server.cors.allowed_origins {
            if origin != "*" && url::Url::parse(origin).is_err() {
                return fail(
                    "cors.allowed_origins",
                    &format!("{origin:?} is not an origin such as https://app.example.com"),
                );
            }
        }
        if server.hsts
            && server.tls.is_none()
            && self
                .deployment
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

    /// The configuration as TOML, secrets masked.
    pub fn to_masked_toml(&self) -> String {
        let shown = Self {
            deployment: self.deployment.masked(),
            server: self.server.clone(),
        };
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }
}

/// The configuration reference: every key of [`Config`] (nested keys
/// dotted), its environment variable, its default and its meaning, as a
/// Markdown table generated from the types' documentation.
/// `docs/operations.md` holds a copy, which a test keeps current.
pub fn reference() -> String {
    let schema = schemars::schema_for!(Config);
    let root = schema.as_value();
    let mut rows = Vec::new();
    reference_rows(root, root, "", &mut rows);
    let mut text = String::from("| key | environment | default | meaning |\n|---|---|---|---|\n");
    for row in rows {
        text.push_str(&format!(
            "| `{}` | `{}` | {} | {} |\n",
            row.key, row.env, row.default, row.meaning
        ));
    }
    text
}

/// One key of the reference.
struct ReferenceRow {
    key: String,
    env: String,
    default: String,
    meaning: String,
}

/// The rows for the properties of `schema` (within `root`, which holds
/// the definitions), under `prefix`.
fn reference_rows(
    root: &serde_json::Value,
    schema: &serde_json::Value,
    prefix: &str,
    rows: &mut Vec<ReferenceRow>,
) {
    let Some(properties) = schema.get("properties").and_then(|p| p.as_object()) else {
        return;
    };
    for (name, property) in properties {
        let key = format!("{prefix}{name}");
        let target = resolve(root, property);
        let meaning = property
            .get("description")
            .or_else(|| target.get("description"))
            .and_then(|d| d.as_str())
            .unwrap_or_default();
        if target.get("properties").is_some() {
            reference_rows(root, target, &format!("{key}."), rows);
            continue;
        }
        let default = match property.get("default") {
            None | Some(serde_json::Value::Null) => "none".to_owned(),
            Some(value) => format!("`{value}`"),
        };
        rows.push(ReferenceRow {
            env: format!("LOUPE_{}", key.to_uppercase().replace('.', "__")),
            key,
            default,
            meaning: meaning.split_whitespace().collect::<Vec<_>>().join(" "),
        });
    }
}

/// The schema `schema` stands for: through a `$ref`, and through the
/// `anyOf` of an optional value, to the one that is not `null`.
fn resolve<'a>(
    root: &'a serde_json::Value,
    schema: &'a serde_json::Value,
) -> &'a serde_json::Value {
    if let Some(reference) = schema.get("$ref").and_then(|r| r.as_str()) {
        let name = reference.rsplit('/').next().unwrap_or_default();
        if let Some(found) = root.get("$defs").and_then(|d| d.get(name)) {
            return resolve(root, found);
        }
    }
    if let Some(options) = schema.get("anyOf").and_then(|a| a.as_array())
        && let Some(some) = options
            .iter()
            .find(|o| o.get("type").and_then(|t| t.as_str()) != Some("null"))
    {
        return resolve(root, some);
    }
    schema
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
            assert_eq!(config.server.listen.port(), 9000);
            assert_eq!(config.server.max_body_bytes, 8192);
            assert_eq!(config.server.rate_limit.auth_per_minute, 3);
            assert_eq!(config.server.rate_limit.api_burst, 7);

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
            assert_eq!(config.deployment.files_roots, [Path::new("exports")]);
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
            deployment: DeploymentConfig {
                signing_secret: Some(Secret::from("a-real-secret-value")),
                metadata_url: Some("postgres://loupe:hunter2@db/loupe".to_owned()),
                ..DeploymentConfig::default()
            },
            ..Config::default()
        };
        let text = config.to_masked_toml();
        assert!(!text.contains("a-real-secret-value"));
        assert!(!text.contains("hunter2"));
        assert!(text.contains("********"));
    }

    /// The configuration reference in `docs/operations.md` is the one the
    /// types make, and every key says what it means. After a change of
    /// the configuration, `LOUPE_BLESS=1` rewrites the copy.
    #[test]
    fn the_operations_guide_documents_every_key() {
        let generated = reference();
        for line in generated.lines().skip(2) {
            assert!(!line.ends_with("|  |"), "a key without a meaning: {line}");
        }
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md");
        let guide = std::fs::read_to_string(&path).unwrap();
        let (start, end) = (
            "<!-- config-reference:start -->\n",
            "<!-- config-reference:end -->",
        );
        let from = guide.find(start).expect("start marker") + start.len();
        let to = guide.find(end).expect("end marker");
        if std::env::var("LOUPE_BLESS").as_deref() == Ok("1") {
            let updated = format!("{}{generated}{}", &guide[..from], &guide[to..]);
            std::fs::write(&path, updated).unwrap();
            return;
        }
        assert!(
            guide[from..to] == generated,
            "docs/operations.md's configuration reference is out of date; \
             run this test with LOUPE_BLESS=1 to rewrite it"
        );
    }
}
