//! Options of a PostgreSQL datasource, from configuration or a
//! `postgres://` URL. Unknown options are refused; the password never
//! appears in a message or a `Debug` string.

use std::path::PathBuf;
use std::time::Duration;

use loupe_core::{DatasourceOptions, Error, OptionKind, OptionSpec, Result, parse_options};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::common::settings::{
    self, BatchLimits, PoolSettings, defaults, percent_decode, spec, typed_value,
};

pub(super) const KIND: &str = "postgres";

/// How TLS is used, with libpq's names and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, without checking its certificate.
    #[default]
    Prefer,
    /// TLS always, without checking the certificate.
    Require,
    /// TLS, and the certificate must chain to a trusted root.
    VerifyCa,
    /// TLS, a trusted chain, and a certificate issued for the host name.
    VerifyFull,
}

/// How rows travel from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Transfer {
    /// `COPY … TO STDOUT (FORMAT binary)` for a whole, unparameterized
    /// query; extended-protocol rows otherwise.
    #[default]
    Auto,
    /// Always extended-protocol rows (a portal read in chunks).
    Rows,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PostgresConfig {
    #[serde(default = "localhost")]
    pub(crate) host: String,
    #[serde(default = "default_port")]
    pub(crate) port: u16,
    pub(crate) user: String,
    #[serde(default)]
    pub(crate) password: Option<SecretString>,
    /// Defaults to the user name, as in libpq.
    #[serde(default)]
    pub(crate) database: Option<String>,
    #[serde(default)]
    pub(crate) sslmode: SslMode,
    /// PEM file of trusted roots; the system's roots when absent.
    #[serde(default)]
    pub(crate) sslrootcert: Option<PathBuf>,
    #[serde(
        default = "defaults::connect_timeout",
        deserialize_with = "settings::duration"
    )]
    pub(crate) connect_timeout: Duration,
    #[serde(default = "defaults::pool_size")]
    pub(crate) pool_size: usize,
    #[serde(
        default = "defaults::wait_timeout",
        deserialize_with = "settings::duration"
    )]
    pub(crate) pool_wait_timeout: Duration,
    #[serde(
        default = "defaults::idle_timeout",
        deserialize_with = "settings::duration"
    )]
    pub(crate) idle_timeout: Duration,
    #[serde(default = "defaults::yes")]
    pub(crate) read_only: bool,
    /// Applies when a query has no timeout of its own.
    #[serde(default, deserialize_with = "settings::optional_duration")]
    pub(crate) statement_timeout: Option<Duration>,
    #[serde(default = "defaults::batch_rows")]
    pub(crate) batch_rows: usize,
    #[serde(default = "defaults::batch_bytes")]
    pub(crate) batch_bytes: usize,
    #[serde(default)]
    pub(crate) transfer: Transfer,
}

fn localhost() -> String {
    "localhost".to_owned()
}

fn default_port() -> u16 {
    5432
}

/// Options whose URL text is a number or a boolean.
const NUMERIC: &[&str] = &["port", "pool_size", "batch_rows", "batch_bytes"];
const BOOLEAN: &[&str] = &["read_only"];

pub(super) const OPTIONS: &[OptionSpec] = &[
    spec(
        "host",
        OptionKind::String,
        false,
        false,
        Some("localhost"),
        "Server host name or IP address",
    ),
    spec(
        "port",
        OptionKind::Integer,
        false,
        false,
        Some("5432"),
        "Server port",
    ),
    spec(
        "user",
        OptionKind::String,
        true,
        false,
        None,
        "User to connect as",
    ),
    spec(
        "password",
        OptionKind::String,
        false,
        true,
        None,
        "Password of the user",
    ),
    spec(
        "database",
        OptionKind::String,
        false,
        false,
        None,
        "Database name (default: the user name)",
    ),
    spec(
        "sslmode",
        OptionKind::String,
        false,
        false,
        Some("prefer"),
        "disable, prefer, require, verify-ca or verify-full",
    ),
    spec(
        "sslrootcert",
        OptionKind::Path,
        false,
        false,
        None,
        "PEM file of trusted CA certificates (default: the system's)",
    ),
    spec(
        "connect_timeout",
        OptionKind::Duration,
        false,
        false,
        Some("10s"),
        "How long connecting may take",
    ),
    spec(
        "pool_size",
        OptionKind::Integer,
        false,
        false,
        Some("8"),
        "Most connections open at once",
    ),
    spec(
        "pool_wait_timeout",
        OptionKind::Duration,
        false,
        false,
        Some("30s"),
        "How long a query waits for a free connection",
    ),
    spec(
        "idle_timeout",
        OptionKind::Duration,
        false,
        false,
        Some("10m"),
        "Connections unused this long are closed",
    ),
    spec(
        "read_only",
        OptionKind::Boolean,
        false,
        false,
        Some("true"),
        "Run every statement in a READ ONLY transaction",
    ),
    spec(
        "statement_timeout",
        OptionKind::Duration,
        false,
        false,
        None,
        "Server-side limit for queries without their own timeout",
    ),
    spec(
        "batch_rows",
        OptionKind::Integer,
        false,
        false,
        Some("65536"),
        "Rows per Arrow batch",
    ),
    spec(
        "batch_bytes",
        OptionKind::Integer,
        false,
        false,
        Some("33554432"),
        "Bytes per Arrow batch, about",
    ),
    spec(
        "transfer",
        OptionKind::String,
        false,
        false,
        Some("auto"),
        "auto (COPY BINARY when possible) or rows",
    ),
];

impl PostgresConfig {
    pub(crate) fn from_options(options: &DatasourceOptions) -> Result<Self> {
        let config: Self = parse_options(KIND, options)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.user.is_empty() {
            return Err(Error::config("postgres datasource: user must not be empty"));
        }
        if self.pool_size == 0 || self.pool_size > 1000 {
            return Err(Error::config(format!(
                "postgres datasource: pool_size must be between 1 and 1000, got {}",
                self.pool_size
            )));
        }
        if self.batch_rows == 0 || self.batch_bytes == 0 {
            return Err(Error::config(
                "postgres datasource: batch_rows and batch_bytes must be at least 1",
            ));
        }
        if matches!(
            self.sslmode,
            SslMode::Disable | SslMode::Prefer | SslMode::Require
        ) && self.sslrootcert.is_some()
        {
            return Err(Error::config(
                "postgres datasource: sslrootcert is only used with sslmode verify-ca or verify-full",
            ));
        }
        Ok(())
    }

    pub(crate) fn database(&self) -> &str {
        self.database.as_deref().unwrap_or(&self.user)
    }

    pub(crate) fn pool(&self) -> PoolSettings {
        PoolSettings {
            size: self.pool_size,
            wait_timeout: self.pool_wait_timeout,
            idle_timeout: self.idle_timeout,
            connect_timeout: self.connect_timeout,
        }
    }

    pub(crate) fn batch(&self) -> BatchLimits {
        BatchLimits {
            rows: self.batch_rows,
            bytes: self.batch_bytes,
        }
    }

    /// `host:port` for messages.
    pub(crate) fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Options from `postgres://user:password@host:port/database?option=value`.
/// Query options use the names of [`OPTIONS`]; numbers and booleans may be
/// written as text.
pub(super) fn options_from_url(text: &str) -> Result<DatasourceOptions> {
    // The URL may hold a password: messages never quote it.
    let url = Url::parse(text)
        .map_err(|e| Error::config(format!("the postgres URL is not valid: {e}")))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(Error::config(format!(
            "a postgres URL starts with postgres:// or postgresql://, not {}://",
            url.scheme()
        )));
    }
    let decode = |s: &str| {
        percent_decode(s).map_err(|()| Error::config("the postgres URL has an invalid %-escape"))
    };
    let mut options = DatasourceOptions::new();
    if let Some(host) = url.host_str() {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        options.insert("host".into(), decode(host)?.into());
    }
    if let Some(port) = url.port() {
        options.insert("port".into(), port.into());
    }
    if !url.username().is_empty() {
        options.insert("user".into(), decode(url.username())?.into());
    }
    if let Some(password) = url.password() {
        options.insert("password".into(), decode(password)?.into());
    }
    let database = url.path().trim_start_matches('/');
    if !database.is_empty() {
        options.insert("database".into(), decode(database)?.into());
    }
    for (key, value) in url.query_pairs() {
        let key = key.into_owned();
        if options.contains_key(&key) {
            return Err(Error::config(format!("the postgres URL gives {key} twice")));
        }
        options.insert(key.clone(), typed_value(&key, &value, NUMERIC, BOOLEAN));
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn urls_become_options() {
        let options = options_from_url(
            "postgres://ana%40corp:p%40ss%2Fw0rd@db.example.com:6543/sales?sslmode=verify-full&pool_size=4&read_only=off",
        )
        .unwrap();
        let config = PostgresConfig::from_options(&options).unwrap();
        assert_eq!(config.user, "ana@corp");
        assert_eq!(
            config.password.as_ref().unwrap().expose_secret(),
            "p@ss/w0rd"
        );
        assert_eq!(config.host, "db.example.com");
        assert_eq!(config.port, 6543);
        assert_eq!(config.database(), "sales");
        assert_eq!(config.sslmode, SslMode::VerifyFull);
        assert_eq!(config.pool_size, 4);
        assert!(!config.read_only);
        let ipv6 = options_from_url("postgresql://u@[::1]/db").unwrap();
        assert_eq!(ipv6["host"], "::1");
    }

    #[test]
    fn unknown_options_and_bad_values_are_refused_without_the_password() {
        let err = PostgresConfig::from_options(
            &options_from_url("postgres://u:hunter2@h/db?sslmod=require").unwrap(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `sslmod`"), "{err}");
        assert!(!err.to_string().contains("hunter2"));

        let err = options_from_url("postgres://u:hunter2@h:99999/db").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");

        let err = PostgresConfig::from_options(
            &options_from_url("postgres://u:hunter2@h/db?pool_size=0").unwrap(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("pool_size"), "{err}");

        let err = PostgresConfig::from_options(
            &options_from_url("postgres://u:hunter2@h/db?connect_timeout=soon").unwrap(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("connect_timeout"), "{err}");
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn debug_output_hides_the_password() {
        let config =
            PostgresConfig::from_options(&options_from_url("postgres://u:hunter2@h/db").unwrap())
                .unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
