//! Options of a MySQL or MariaDB datasource, from configuration or a
//! `mysql://` URL: the ones every server connector takes
//! ([`ServerOptions`]) and MySQL's own ([`MysqlOptions`]). Unknown options
//! are refused; the password never appears in a message or a `Debug`
//! string.

use std::path::PathBuf;
use std::sync::LazyLock;

use loupe_core::{DatasourceOptions, Error, OptionKind, OptionSpec, Result};
use serde::Deserialize;

use crate::option_specs::{Alias, spec};
use crate::remote::server_options::{self, ServerOptions};

pub(super) const KIND: &str = "mysql";

/// The URL schemes that name a MySQL datasource.
pub(super) const SCHEMES: &[&str] = &["mysql", "mariadb"];

/// `sslmode`, as PostgreSQL spells it, is taken for `ssl_mode`.
const ALIASES: &[Alias] = &[("sslmode", "ssl_mode")];

/// TLS, with MySQL's `ssl-mode` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum SslMode {
    /// Plain TCP.
    Disabled,
    /// TLS when the server offers it, without checking its certificate.
    Preferred,
    /// TLS always, without checking the certificate.
    Required,
    /// TLS, and the certificate must chain to a trusted root.
    VerifyCa,
    /// TLS, a trusted chain, and a certificate for the host name.
    VerifyIdentity,
}

/// A mysql datasource's options.
#[derive(Debug, Clone)]
pub(crate) struct MysqlConfig {
    /// Address, user, pool, limits and batches, as every server connector
    /// takes them.
    pub(crate) server: ServerOptions,
    pub(crate) mysql: MysqlOptions,
}

/// MySQL's own options. Their defaults are in [`OPTIONS`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MysqlOptions {
    #[serde(default)]
    pub(crate) database: Option<String>,
    pub(crate) ssl_mode: SslMode,
    /// PEM file of trusted roots; built-in roots when absent.
    #[serde(default)]
    pub(crate) ssl_ca: Option<PathBuf>,
    /// Read `TINYINT(1)` as Boolean instead of Int8.
    pub(crate) tinyint1_as_boolean: bool,
}

pub(super) static OPTIONS: LazyLock<Vec<OptionSpec>> = LazyLock::new(|| {
    server_options::option_specs(
        "3306",
        &[
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
        ],
        &[spec(
            "tinyint1_as_boolean",
            OptionKind::Boolean,
            false,
            false,
            Some("false"),
            "Read TINYINT(1) columns as booleans",
        )
        .tuning()],
    )
});

impl MysqlConfig {
    pub(crate) fn from_options(options: &DatasourceOptions) -> Result<Self> {
        let (server, mysql) = server_options::parse(KIND, &OPTIONS, ALIASES, options)?;
        let config = Self { server, mysql };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.mysql.ssl_ca.is_some()
            && !matches!(
                self.mysql.ssl_mode,
                SslMode::VerifyCa | SslMode::VerifyIdentity
            )
        {
            return Err(Error::config(
                "mysql datasource: ssl_ca is only used with ssl_mode verify-ca or verify-identity",
            ));
        }
        Ok(())
    }
}

/// Options from `mysql://user:password@host:port/database?option=value`.
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
            "mysql://ana:p%40ss@db.example.com:3307/shop?ssl_mode=verify-identity&tinyint1_as_boolean=true",
        )
        .unwrap();
        let config = MysqlConfig::from_options(&options).unwrap();
        let server = &config.server;
        assert_eq!(
            (server.user.as_str(), server.host.as_str(), server.port),
            ("ana", "db.example.com", 3307)
        );
        assert_eq!(server.password.as_ref().unwrap().expose_secret(), "p@ss");
        assert_eq!(config.mysql.database.as_deref(), Some("shop"));
        assert_eq!(config.mysql.ssl_mode, SslMode::VerifyIdentity);
        assert!(config.mysql.tinyint1_as_boolean && server.read_only);
    }

    #[test]
    fn the_defaults_are_mysql_own_and_sslmode_is_ssl_mode() {
        let config = MysqlConfig::from_options(&options_from_url("mysql://u@h").unwrap()).unwrap();
        assert_eq!(config.server.port, 3306);
        assert_eq!(config.mysql.database, None);
        assert_eq!(config.mysql.ssl_mode, SslMode::Preferred);
        assert!(!config.mysql.tinyint1_as_boolean);

        let config =
            MysqlConfig::from_options(&options_from_url("mysql://u@h?sslmode=disabled").unwrap())
                .unwrap();
        assert_eq!(config.mysql.ssl_mode, SslMode::Disabled);
        let err = MysqlConfig::from_options(
            &options_from_url("mysql://u@h?sslmode=disabled&ssl_mode=required").unwrap(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("ssl_mode is given twice"), "{err}");
    }

    #[test]
    fn every_listed_option_is_read() {
        crate::option_specs::checks::every_spec_is_read(
            KIND,
            &OPTIONS,
            &options_from_url("mysql://u@h").unwrap(),
            MysqlConfig::from_options,
        );
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
