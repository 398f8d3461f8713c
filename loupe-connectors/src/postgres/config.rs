//! Options of a PostgreSQL datasource, from configuration or a
//! `postgres://` URL: the ones every server connector takes
//! ([`ServerOptions`]) and PostgreSQL's own ([`PostgresOptions`]). Unknown
//! options are refused; the password never appears in a message or a
//! `Debug` string.

use std::path::PathBuf;
use std::sync::LazyLock;

use loupe_core::{DatasourceOptions, Error, OptionKind, OptionSpec, Result};
use serde::Deserialize;

use crate::option_specs::spec;
use crate::remote::server_options::{self, ServerOptions};

pub(super) const KIND: &str = "postgres";

/// The URL schemes that name a PostgreSQL datasource.
pub(super) const SCHEMES: &[&str] = &["postgres", "postgresql"];

/// How TLS is used, with libpq's names and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, without checking its certificate.
    Prefer,
    /// TLS always, without checking the certificate.
    Require,
    /// TLS, and the certificate must chain to a trusted root.
    VerifyCa,
    /// TLS, a trusted chain, and a certificate issued for the host name.
    VerifyFull,
}

/// How rows travel from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Transfer {
    /// `COPY … TO STDOUT (FORMAT binary)` for a whole, unparameterized
    /// query; extended-protocol rows otherwise.
    Auto,
    /// Always extended-protocol rows (a portal read in chunks).
    Rows,
}

/// A postgres datasource's options.
#[derive(Debug, Clone)]
pub(crate) struct PostgresConfig {
    /// Address, user, pool, limits and batches, as every server connector
    /// takes them.
    pub(crate) server: ServerOptions,
    pub(crate) postgres: PostgresOptions,
}

/// PostgreSQL's own options. Their defaults are in [`OPTIONS`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PostgresOptions {
    /// Defaults to the user name, as in libpq.
    #[serde(default)]
    pub(crate) database: Option<String>,
    pub(crate) sslmode: SslMode,
    /// PEM file of trusted roots; the system's roots when absent.
    #[serde(default)]
    pub(crate) sslrootcert: Option<PathBuf>,
    pub(crate) transfer: Transfer,
}

pub(super) static OPTIONS: LazyLock<Vec<OptionSpec>> = LazyLock::new(|| {
    server_options::option_specs(
        "5432",
        &[
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
        ],
        &[spec(
            "transfer",
            OptionKind::String,
            false,
            false,
            Some("auto"),
            "auto (COPY BINARY when possible) or rows",
        )
        .tuning()],
    )
});

impl PostgresConfig {
    pub(crate) fn from_options(options: &DatasourceOptions) -> Result<Self> {
        let (server, postgres) = server_options::parse(KIND, &OPTIONS, &[], options)?;
        let config = Self { server, postgres };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if matches!(
            self.postgres.sslmode,
            SslMode::Disable | SslMode::Prefer | SslMode::Require
        ) && self.postgres.sslrootcert.is_some()
        {
            return Err(Error::config(
                "postgres datasource: sslrootcert is only used with sslmode verify-ca or verify-full",
            ));
        }
        Ok(())
    }

    pub(crate) fn database(&self) -> &str {
        self.postgres
            .database
            .as_deref()
            .unwrap_or(&self.server.user)
    }
}

/// Options from `postgres://user:password@host:port/database?option=value`.
/// Query options use the names of [`OPTIONS`]; numbers and booleans may be
/// written as text.
pub(super) fn options_from_url(text: &str) -> Result<DatasourceOptions> {
    server_options::options_from_url(KIND, SCHEMES, &OPTIONS, text)
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
        let server = &config.server;
        assert_eq!(server.user, "ana@corp");
        assert_eq!(
            server.password.as_ref().unwrap().expose_secret(),
            "p@ss/w0rd"
        );
        assert_eq!(server.host, "db.example.com");
        assert_eq!(server.port, 6543);
        assert_eq!(config.database(), "sales");
        assert_eq!(config.postgres.sslmode, SslMode::VerifyFull);
        assert_eq!(server.pool_size, 4);
        assert!(!server.read_only);
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
    fn the_defaults_are_postgres_own() {
        let config =
            PostgresConfig::from_options(&options_from_url("postgres://ana@h").unwrap()).unwrap();
        assert_eq!(config.server.port, 5432);
        assert_eq!(config.database(), "ana", "the user name, as in libpq");
        assert_eq!(config.postgres.sslmode, SslMode::Prefer);
        assert_eq!(config.postgres.transfer, Transfer::Auto);
        assert!(config.server.read_only);
    }

    #[test]
    fn every_listed_option_is_read() {
        crate::option_specs::checks::every_spec_is_read(
            KIND,
            &OPTIONS,
            &options_from_url("postgres://u@h").unwrap(),
            PostgresConfig::from_options,
        );
    }

    #[test]
    fn debug_output_hides_the_password() {
        let config =
            PostgresConfig::from_options(&options_from_url("postgres://u:hunter2@h/db").unwrap())
                .unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
