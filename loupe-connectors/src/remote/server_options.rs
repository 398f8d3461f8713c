//! The options every database-server connector takes, each defined once
//! with its default: where the server is and who connects, the pool, the
//! read-only and timeout limits, and how large a batch grows. A connector
//! lists them beside its own ([`option_specs`]), reads them into
//! [`ServerOptions`] and its own options into its own struct ([`parse`]),
//! and turns its URL into options with [`options_from_url`].
//!
//! Two structs rather than one with `#[serde(flatten)]`: flatten does not
//! work with `deny_unknown_fields`, and errors inside a flattened struct
//! lose the option's name.

use std::time::Duration;

use loupe_core::{DatasourceOptions, Error, OptionKind, OptionSpec, Result, parse_options};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use url::Url;

use super::batch::BatchLimits;
use crate::option_specs::{self, Alias, spec, url_value};

/// What every server connector reads from its options. The defaults are
/// in the spec list ([`option_specs`]), filled in before this is read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerOptions {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    #[serde(default)]
    pub(crate) password: Option<SecretString>,
    /// Only postgres applies it: mysql_async has no connect timeout, so a
    /// mysql connection attempt is bounded by `pool_wait_timeout` alone.
    #[serde(deserialize_with = "duration")]
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) connect_timeout: Duration,
    /// Most connections open at once.
    pub(crate) pool_size: usize,
    /// How long a query waits for a free connection before it fails.
    #[serde(deserialize_with = "duration")]
    pub(crate) pool_wait_timeout: Duration,
    /// Connections unused this long are closed.
    #[serde(deserialize_with = "duration")]
    pub(crate) idle_timeout: Duration,
    pub(crate) read_only: bool,
    /// Connect even as a role that may do more than read (see
    /// `server_errors::privileged_role`).
    pub(crate) allow_privileged_role: bool,
    /// Applies when a query has no timeout of its own.
    #[serde(default, deserialize_with = "optional_duration")]
    pub(crate) statement_timeout: Option<Duration>,
    pub(crate) batch_rows: usize,
    pub(crate) batch_bytes: usize,
}

/// Where the server is and who connects: first in a form.
fn address_specs(default_port: &'static str) -> [OptionSpec; 4] {
    [
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
            Some(default_port),
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
    ]
}

/// The pool, the limits and the batches: after the connector's own
/// connection options.
const SESSION_SPECS: [OptionSpec; 9] = [
    spec(
        "connect_timeout",
        OptionKind::Duration,
        false,
        false,
        Some("10s"),
        "How long connecting may take",
    )
    .tuning(),
    spec(
        "pool_size",
        OptionKind::Integer,
        false,
        false,
        Some("8"),
        "Most connections open at once",
    )
    .tuning(),
    spec(
        "pool_wait_timeout",
        OptionKind::Duration,
        false,
        false,
        Some("30s"),
        "How long a query waits for a free connection",
    )
    .tuning(),
    spec(
        "idle_timeout",
        OptionKind::Duration,
        false,
        false,
        Some("10m"),
        "Connections unused this long are closed",
    )
    .tuning(),
    spec(
        "read_only",
        OptionKind::Boolean,
        false,
        false,
        Some("true"),
        "Run every statement in a READ ONLY transaction",
    )
    .tuning(),
    spec(
        "allow_privileged_role",
        OptionKind::Boolean,
        false,
        false,
        Some("false"),
        "Connect even when the database role may do more than read (a superuser; reading \
         server files, running programs or ending other sessions; on MySQL, write grants while \
         read_only). Dangerous: a READ ONLY transaction does not stop such a role, anyone who \
         may run SQL here gets its powers; connect as a least-privilege role instead",
    ),
    spec(
        "statement_timeout",
        OptionKind::Duration,
        false,
        false,
        None,
        "Server-side limit for queries without their own timeout",
    )
    .tuning(),
    spec(
        "batch_rows",
        OptionKind::Integer,
        false,
        false,
        Some("65536"),
        "Rows per Arrow batch",
    )
    .tuning(),
    spec(
        "batch_bytes",
        OptionKind::Integer,
        false,
        false,
        Some("33554432"),
        "Bytes per Arrow batch, about",
    )
    .tuning(),
];

/// A server connector's options in the order a form shows them: host,
/// port, user and password; the connector's `connection` options (the
/// database, TLS); the pool, limits and batches; then its `other` options.
pub(crate) fn option_specs(
    default_port: &'static str,
    connection: &[OptionSpec],
    other: &[OptionSpec],
) -> Vec<OptionSpec> {
    let mut specs = address_specs(default_port).to_vec();
    specs.extend_from_slice(connection);
    specs.extend_from_slice(&SESSION_SPECS);
    specs.extend_from_slice(other);
    specs
}

fn is_shared(name: &str) -> bool {
    address_specs("")
        .iter()
        .chain(&SESSION_SPECS)
        .any(|s| s.name == name)
}

/// Reads a server connector's options: the shared ones into
/// [`ServerOptions`], the connector's own into `T` (which should deny
/// unknown fields). Defaults and names come from `specs`; errors name the
/// option and never quote a password.
pub(crate) fn parse<T: DeserializeOwned>(
    kind: &str,
    specs: &[OptionSpec],
    aliases: &[Alias],
    options: &DatasourceOptions,
) -> Result<(ServerOptions, T)> {
    let (shared, own): (DatasourceOptions, DatasourceOptions) =
        option_specs::complete(kind, specs, aliases, options)?
            .into_iter()
            .partition(|(name, _)| is_shared(name));
    let server: ServerOptions = parse_options(kind, &shared)?;
    server.validate(kind)?;
    Ok((server, parse_options(kind, &own)?))
}

impl ServerOptions {
    fn validate(&self, kind: &str) -> Result<()> {
        if self.user.is_empty() {
            return Err(Error::config(format!(
                "{kind} datasource: user must not be empty"
            )));
        }
        if self.pool_size == 0 || self.pool_size > 1000 {
            return Err(Error::config(format!(
                "{kind} datasource: pool_size must be between 1 and 1000, got {}",
                self.pool_size
            )));
        }
        if self.batch_rows == 0 || self.batch_bytes == 0 {
            return Err(Error::config(format!(
                "{kind} datasource: batch_rows and batch_bytes must be at least 1"
            )));
        }
        Ok(())
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

/// Options from `scheme://user:password@host:port/database?option=value`,
/// for a connector of `kind` named by one of `schemes`. Query options use
/// the names of `specs`; numbers and booleans may be written as text.
pub(crate) fn options_from_url(
    kind: &str,
    schemes: &[&str],
    specs: &[OptionSpec],
    text: &str,
) -> Result<DatasourceOptions> {
    // The URL may hold a password: messages never quote it.
    let url =
        Url::parse(text).map_err(|e| Error::config(format!("the {kind} URL is not valid: {e}")))?;
    if !schemes.contains(&url.scheme()) {
        let starts: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
        return Err(Error::config(format!(
            "a {kind} URL starts with {}, not {}://",
            starts.join(" or "),
            url.scheme()
        )));
    }
    let decode = |s: &str| {
        percent_decode(s)
            .map_err(|()| Error::config(format!("the {kind} URL has an invalid %-escape")))
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
            return Err(Error::config(format!("the {kind} URL gives {key} twice")));
        }
        let value = url_value(specs, &key, &value);
        options.insert(key, value);
    }
    Ok(options)
}

/// A duration option: `"30s"`, `"1m 30s"`, `"250ms"` or a number of seconds.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Seconds(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

/// An optional duration option; `0` or `"0s"` mean none.
fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Ok(Some(duration(d)?).filter(|d| !d.is_zero()))
}

/// Parses `"30s"`, `"5m"`, `"250ms"`, or a plain number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration ({e}); write it like 30s, 5m or 250ms"))
}

/// Decodes `%XX` escapes of a URL part.
fn percent_decode(text: &str) -> Result<String, ()> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(())?;
            let hex = std::str::from_utf8(hex).map_err(|_| ())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_in_the_usual_spellings() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("soon").unwrap_err().contains("\"soon\""));
    }

    /// The connector's own struct for these tests.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Own {
        #[serde(default)]
        database: Option<String>,
    }

    fn specs() -> Vec<OptionSpec> {
        let database = spec("database", OptionKind::String, false, false, None, "");
        option_specs("1234", &[database], &[])
    }

    fn parsed(options: serde_json::Value) -> Result<(ServerOptions, Own)> {
        let serde_json::Value::Object(options) = options else {
            panic!("options are an object")
        };
        parse("test", &specs(), &[], &options)
    }

    #[test]
    fn the_shared_defaults_are_stated_once_and_apply() {
        let (server, own) = parsed(json!({ "user": "u" })).unwrap();
        assert_eq!((server.host.as_str(), server.port), ("localhost", 1234));
        assert_eq!(server.connect_timeout, Duration::from_secs(10));
        assert_eq!(server.pool_size, 8);
        assert_eq!(server.pool_wait_timeout, Duration::from_secs(30));
        assert_eq!(server.idle_timeout, Duration::from_secs(600));
        assert!(server.read_only);
        assert!(!server.allow_privileged_role);
        assert_eq!(server.statement_timeout, None);
        assert_eq!(
            server.batch(),
            BatchLimits {
                rows: 65_536,
                bytes: 32 * 1024 * 1024
            }
        );
        assert_eq!(own.database, None);
        let names: Vec<&str> = specs().iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "host",
                "port",
                "user",
                "password",
                "database",
                "connect_timeout",
                "pool_size",
                "pool_wait_timeout",
                "idle_timeout",
                "read_only",
                "allow_privileged_role",
                "statement_timeout",
                "batch_rows",
                "batch_bytes"
            ]
        );
    }

    #[test]
    fn shared_and_own_options_are_read_by_their_struct() {
        let (server, own) = parsed(json!({
            "user": "u", "database": "d", "statement_timeout": "0s", "pool_size": 2
        }))
        .unwrap();
        assert_eq!((server.pool_size, own.database.as_deref()), (2, Some("d")));
        assert_eq!(server.statement_timeout, None, "0s means none");

        for (options, names) in [
            (json!({ "user": "u", "pool_size": 0 }), "pool_size"),
            (json!({ "user": "u", "batch_rows": 0 }), "batch_rows"),
            (json!({ "user": "" }), "user"),
            (
                json!({ "user": "u", "idle_timeout": "soon" }),
                "idle_timeout",
            ),
            (json!({ "user": "u", "database": 5 }), "database"),
        ] {
            let err = parsed(options).unwrap_err();
            assert!(err.to_string().contains(names), "{err}");
        }
    }

    #[test]
    fn urls_are_read_by_the_spec_list() {
        let options = options_from_url(
            "test",
            &["a", "b"],
            &specs(),
            "b://u%40x:p%2F@[::1]:99/db%20one?pool_size=4&read_only=off&connect_timeout=5",
        )
        .unwrap();
        assert_eq!(
            serde_json::Value::Object(options),
            json!({
                "host": "::1", "port": 99, "user": "u@x", "password": "p/",
                "database": "db one", "pool_size": 4, "read_only": false,
                "connect_timeout": "5"
            })
        );
        let err = options_from_url("test", &["a", "b"], &specs(), "c://h").unwrap_err();
        assert!(
            err.to_string()
                .contains("a test URL starts with a:// or b://, not c://"),
            "{err}"
        );
        let err = options_from_url("test", &["a"], &specs(), "a://u:pw@h/d?user=v").unwrap_err();
        assert!(err.to_string().contains("gives user twice"), "{err}");
        let err = options_from_url("test", &["a"], &specs(), "a://u:p%zz@h").unwrap_err();
        assert!(!err.to_string().contains("p%zz"), "{err}");
    }
}
