//! Options of a MySQL or MariaDB datasource, from configuration or a
//! `mysql://` URL. Unknown options are refused; the password never appears
//! in a message or a `Debug` string.

use std::path::PathBuf;
use std::time::Duration;

use loupe_core::{DatasourceOptions, Error, OptionKind, OptionSpec, Result, parse_options};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::common::settings::{
    self, BatchLimits, PoolSettings, defaults, percent_decode, spec, typed_value,
};

pub(super) const KIND: &str = "mysql";

/// TLS, with MySQL's `ssl-mode` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum SslMode {
    /// Plain TCP.
    Disabled,
    /// TLS when the server offers it, without checking its certificate.
    #[default]
    Preferred,
    /// TLS always, without checking the certificate.
    Required,
    /// TLS, and the certificate must chain to a trusted root.
    VerifyCa,
    /// TLS, a trusted chain, and a certificate for the host name.
    VerifyIdentity,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MysqlConfig {
    #[serde(default = "localhost")]
    pub(crate) host: String,
    #[serde(default = "default_port")]
    pub(crate) port: u16,
    pub(crate) user: String,
    #[serde(default)]
    pub(crate) password: Option<SecretString>,
    #[serde(default)]
    pub(crate) database: Option<String>,
    #[serde(default, alias = "sslmode")]
    pub(crate) ssl_mode: SslMode,
    /// PEM file of trusted roots; built-in roots when absent.
    #[serde(default)]
    pub(crate) ssl_ca: Option<PathBuf>,
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
    #[serde(default, deserialize_with = "settings::optional_duration")]
    pub(crate) statement_timeout: Option<Duration>,
    #[serde(default = "defaults::batch_rows")]
    pub(crate) batch_rows: usize,
    #[serde(default = "defaults::batch_bytes")]
    pub(crate) batch_bytes: usize,
    /// Read `TINYINT(1)` as Boolean instead of Int8.
    #[serde(default)]
    pub(crate) tinyint1_as_boolean: bool,
}

fn localhost() -> String {
    "localhost".to_owned()
}

fn default_port() -> u16 {
    3306
}

const NUMERIC: &[&str] = &["port", "pool_size", "batch_rows", "batch_bytes"];
const BOOLEAN: &[&str] = &["read_only", "tinyint1_as_boolean"];

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
        Some("3306"),
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
        "Default database",
    ),
    spec(
        "ssl_mode",
        OptionKind::String,
        false,
        false,
        Some("preferred"),
        "disabled, preferred, required, verify-ca or verify-identity",
    ),
    spec(
        "ssl_ca",
        OptionKind::Path,
        false,
        false,
        None,
        "PEM file of trusted CA certificates",
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
        "tinyint1_as_boolean",
        OptionKind::Boolean,
        false,
        false,
        Some("false"),
        "Read TINYINT(1) columns as booleans",
    ),
];

impl MysqlConfig {
    pub(crate) fn from_options(options: &DatasourceOptions) -> Result<Self> {
        let config: Self = parse_options(KIND, options)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.user.is_empty() {
            return Err(Error::config("mysql datasource: user must not be empty"));
        }
        if self.pool_size == 0 || self.pool_size > 1000 {
            return Err(Error::config(format!(
                "mysql datasource: pool_size must be between 1 and 1000, got {}",
                self.pool_size
            )));
        }
        if self.batch_rows == 0 || self.batch_bytes == 0 {
            return Err(Error::config(
                "mysql datasource: batch_rows and batch_bytes must be at least 1",
            ));
        }
        if self.ssl_ca.is_some()
            && !matches!(self.ssl_mode, SslMode::VerifyCa | SslMode::VerifyIdentity)
        {
            return Err(Error::config(
                "mysql datasource: ssl_ca is only used with ssl_mode verify-ca or verify-identity",
            ));
        }
        Ok(())
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

/// Options from `mysql://user:password@host:port/database?option=value`.
pub(super) fn options_from_url(text: &str) -> Result<DatasourceOptions> {
    // The URL may hold a password: messages never quote it.
    let url =
        Url::parse(text).map_err(|e| Error::config(format!("the mysql URL is not valid: {e}")))?;
    if !matches!(url.scheme(), "mysql" | "mariadb") {
        return Err(Error::config(format!(
            "a mysql URL starts with mysql:// or mariadb://, not {}://",
            url.scheme()
        )));
    }
    let decode = |s: &str| {
        percent_decode(s).map_err(|()| Error::config("the mysql URL has an invalid %-escape"))
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
            return Err(Error::config(format!("the mysql URL gives {key} twice")));
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
            "mysql://ana:p%40ss@db.example.com:3307/shop?ssl_mode=verify-identity&tinyint1_as_boolean=true",
        )
        .unwrap();
        let config = MysqlConfig::from_options(&options).unwrap();
        assert_eq!(
            (config.user.as_str(), config.host.as_str(), config.port),
            ("ana", "db.example.com", 3307)
        );
        assert_eq!(config.password.as_ref().unwrap().expose_secret(), "p@ss");
        assert_eq!(config.database.as_deref(), Some("shop"));
        assert_eq!(config.ssl_mode, SslMode::VerifyIdentity);
        assert!(config.tinyint1_as_boolean && config.read_only);
    }

    #[test]
    fn mistakes_name_the_option_and_never_the_password() {
        let err = MysqlConfig::from_options(
            &options_from_url("mysql://u:hunter2@h/db?local_infile=1").unwrap(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown field `local_infile`"),
            "{err}"
        );
        assert!(!err.to_string().contains("hunter2"));
        let config =
            MysqlConfig::from_options(&options_from_url("mysql://u:hunter2@h/db").unwrap())
                .unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
