//! How a database server's failures become Loupe errors, the same way in
//! both server connectors: each way connecting fails has its own stable
//! code and words ([`ConnectFailure`]), as do a full pool and a write that
//! a READ ONLY transaction refused. A connector decides which failure its
//! driver reported; the words and codes are decided here.

use loupe_core::codes;
use std::sync::Arc;
use std::time::Duration;

use loupe_core::{BoxError, Error, ErrorKind};

/// Where an error happened, for messages (never holds a password).
#[derive(Debug, Clone)]
pub(crate) struct Context {
    /// The server's product name: `PostgreSQL`, `MySQL`.
    pub(crate) server: &'static str,
    /// `host:port`.
    pub(crate) address: Arc<str>,
    pub(crate) database: Arc<str>,
    pub(crate) user: Arc<str>,
    /// The timeout that applied to the statement, if any.
    pub(crate) timeout: Option<Duration>,
}

/// How connecting failed (or an open connection ended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnectFailure {
    /// The server refused the user; its words.
    AuthFailed(String),
    DatabaseMissing,
    /// The server takes no connections now (too many, starting up); its
    /// words.
    NotAccepting(String),
    /// Nothing listens at the address.
    Refused,
    TimedOut,
    /// The TLS handshake or the certificate check failed; the causes.
    Tls(String),
    /// The host name does not resolve; the causes.
    Unresolved(String),
    /// Any other failure to reach the server; the causes.
    Unreachable(String),
    /// An open connection went away.
    Lost,
}

impl ConnectFailure {
    /// What a driver's error says when the driver does not tell the
    /// failures apart: the kind of the first I/O error among its causes,
    /// else the words of its causes.
    pub(crate) fn from_causes(e: &(dyn std::error::Error + 'static)) -> Self {
        match io_kind(e) {
            Some(std::io::ErrorKind::ConnectionRefused) => return Self::Refused,
            Some(std::io::ErrorKind::TimedOut) => return Self::TimedOut,
            _ => {}
        }
        let chain = causes(e);
        let lower = chain.to_ascii_lowercase();
        if lower.contains("connection refused") {
            Self::Refused
        } else if lower.contains("tls") || lower.contains("certificate") || lower.contains("ssl") {
            Self::Tls(chain)
        } else if lower.contains("timeout") || lower.contains("timed out") {
            Self::TimedOut
        } else if lower.contains("failed to lookup address")
            || lower.contains("name or service not known")
        {
            Self::Unresolved(chain)
        } else {
            Self::Unreachable(chain)
        }
    }

    /// The Loupe error, with its code, naming the server and where.
    pub(crate) fn error(self, cx: &Context, source: Option<BoxError>) -> Error {
        let (server, at) = (cx.server, &cx.address);
        let (code, message, kind, retriable) = match self {
            Self::AuthFailed(said) => (
                codes::DATASOURCE_AUTH_FAILED,
                format!("{server} at {at} refused user {:?}: {said}", cx.user),
                ErrorKind::Forbidden,
                false,
            ),
            Self::DatabaseMissing => (
                codes::DATASOURCE_DATABASE_MISSING,
                format!("{server} at {at} has no database {:?}", cx.database),
                ErrorKind::NotFound,
                false,
            ),
            Self::NotAccepting(said) => (
                codes::DATASOURCE_UNAVAILABLE,
                format!("{server} at {at} is not accepting connections now: {said}"),
                ErrorKind::Unavailable,
                true,
            ),
            Self::Refused => (
                codes::DATASOURCE_CONNECTION_REFUSED,
                format!(
                    "cannot connect to {server} at {at}: connection refused (is the server running and listening there?)"
                ),
                ErrorKind::Unavailable,
                true,
            ),
            Self::TimedOut => (
                codes::DATASOURCE_CONNECT_TIMEOUT,
                format!("connecting to {server} at {at} timed out"),
                ErrorKind::Unavailable,
                true,
            ),
            // A certificate does not fix itself: no retry.
            Self::Tls(chain) => (
                codes::DATASOURCE_TLS_FAILED,
                format!("TLS with {server} at {at} failed: {chain}"),
                ErrorKind::Unavailable,
                false,
            ),
            Self::Unresolved(chain) => (
                codes::DATASOURCE_UNREACHABLE,
                format!("cannot resolve the {server} host in {at}: {chain}"),
                ErrorKind::Unavailable,
                true,
            ),
            Self::Unreachable(chain) => (
                codes::DATASOURCE_UNREACHABLE,
                format!("cannot connect to {server} at {at}: {chain}"),
                ErrorKind::Unavailable,
                true,
            ),
            Self::Lost => (
                codes::DATASOURCE_CONNECTION_LOST,
                format!("the connection to {server} at {at} was lost"),
                ErrorKind::Unavailable,
                true,
            ),
        };
        Error::Connect {
            code,
            message,
            kind,
            retriable,
            source,
        }
    }
}

/// Every one of the pool's `size` connections stayed busy for `wait`.
pub(crate) fn pool_exhausted(cx: &Context, size: usize, wait: Duration) -> Error {
    Error::Connect {
        code: codes::DATASOURCE_POOL_EXHAUSTED,
        message: format!(
            "all {size} connections to {} at {} are busy and none was free after {}; try again, or raise pool_size",
            cx.server,
            cx.address,
            humantime::format_duration(wait)
        ),
        kind: ErrorKind::Unavailable,
        retriable: true,
        source: None,
    }
}

/// The datasource's database role may do more than read: `found` names
/// each power (a superuser, a role membership, a grant). A READ ONLY
/// transaction does not stop a superuser from running a program on the
/// server or a member of `pg_signal_backend` from ending other sessions,
/// so such a role is the real boundary and is refused unless the
/// datasource says `allow_privileged_role`.
pub(crate) fn privileged_role(cx: &Context, found: &[String]) -> Error {
    Error::refused(
        codes::DATASOURCE_PRIVILEGED_ROLE,
        format!(
            "{} user {:?} at {} may do more than read, so Loupe does not use it: {}; connect as a role that may only read (see docs/security.md), or set allow_privileged_role=true on the datasource if that power is really meant to be given to everyone who runs queries on it",
            cx.server,
            cx.user,
            cx.address,
            found.join("; ")
        ),
    )
}

/// The server refused a write because the statement runs read-only; `said`
/// is its message.
pub(crate) fn read_only(said: &str) -> Error {
    Error::refused(
        codes::DATASOURCE_READ_ONLY,
        format!(
            "the datasource is read-only: {said} (the statement runs in a READ ONLY transaction; set read_only=false on the datasource to allow writes)"
        ),
    )
}

/// The messages of `e` and its causes, joined without repeats.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

/// The kind of the first I/O error in `e`'s chain of causes.
fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        current = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> Context {
        Context {
            server: "PostgreSQL",
            address: "db:5432".into(),
            database: "sales".into(),
            user: "ana".into(),
            timeout: None,
        }
    }

    #[test]
    fn causes_are_read_by_io_kind_then_by_words() {
        let io = |kind| std::io::Error::new(kind, "x");
        assert_eq!(
            ConnectFailure::from_causes(&io(std::io::ErrorKind::ConnectionRefused)),
            ConnectFailure::Refused
        );
        assert_eq!(
            ConnectFailure::from_causes(&io(std::io::ErrorKind::TimedOut)),
            ConnectFailure::TimedOut
        );
        let words =
            |text: &str| ConnectFailure::from_causes(&std::io::Error::other(text.to_owned()));
        assert_eq!(
            words("Connection refused (os error 111)"),
            ConnectFailure::Refused
        );
        assert!(matches!(
            words("invalid peer certificate: UnknownIssuer"),
            ConnectFailure::Tls(_)
        ));
        assert_eq!(words("handshake timed out"), ConnectFailure::TimedOut);
        assert!(matches!(
            words("failed to lookup address information"),
            ConnectFailure::Unresolved(_)
        ));
        assert_eq!(
            words("broken pipe"),
            ConnectFailure::Unreachable("broken pipe".into())
        );
    }

    #[test]
    fn each_failure_has_its_code_and_names_the_server() {
        let cases = [
            (
                ConnectFailure::AuthFailed("no".into()),
                codes::DATASOURCE_AUTH_FAILED,
                ErrorKind::Forbidden,
                false,
            ),
            (
                ConnectFailure::DatabaseMissing,
                codes::DATASOURCE_DATABASE_MISSING,
                ErrorKind::NotFound,
                false,
            ),
            (
                ConnectFailure::NotAccepting("full".into()),
                codes::DATASOURCE_UNAVAILABLE,
                ErrorKind::Unavailable,
                true,
            ),
            (
                ConnectFailure::Refused,
                codes::DATASOURCE_CONNECTION_REFUSED,
                ErrorKind::Unavailable,
                true,
            ),
            (
                ConnectFailure::TimedOut,
                codes::DATASOURCE_CONNECT_TIMEOUT,
                ErrorKind::Unavailable,
                true,
            ),
            (
                ConnectFailure::Tls("bad".into()),
                codes::DATASOURCE_TLS_FAILED,
                ErrorKind::Unavailable,
                false,
            ),
            (
                ConnectFailure::Unresolved("x".into()),
                codes::DATASOURCE_UNREACHABLE,
                ErrorKind::Unavailable,
                true,
            ),
            (
                ConnectFailure::Unreachable("x".into()),
                codes::DATASOURCE_UNREACHABLE,
                ErrorKind::Unavailable,
                true,
            ),
            (
                ConnectFailure::Lost,
                codes::DATASOURCE_CONNECTION_LOST,
                ErrorKind::Unavailable,
                true,
            ),
        ];
        for (failure, code, kind, retriable) in cases {
            let err = failure.error(&cx(), None);
            assert_eq!(
                (err.catalogue_code(), err.kind(), err.is_retriable()),
                (code, kind, retriable)
            );
            assert!(err.to_string().contains("PostgreSQL"), "{err}");
        }
        let err = privileged_role(&cx(), &["superuser".into(), "BYPASSRLS".into()]);
        assert_eq!(
            (err.catalogue_code(), err.kind(), err.is_retriable()),
            (
                codes::DATASOURCE_PRIVILEGED_ROLE,
                ErrorKind::Forbidden,
                false
            )
        );
        assert!(
            err.to_string().starts_with(
                "PostgreSQL user \"ana\" at db:5432 may do more than read, so Loupe does not use it: superuser; BYPASSRLS; connect as"
            ),
            "{err}"
        );
        let err = pool_exhausted(&cx(), 3, Duration::from_millis(200));
        assert!(
            err.to_string()
                .starts_with("all 3 connections to PostgreSQL at db:5432 are busy"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("200ms; try again, or raise pool_size"),
            "{err}"
        );
    }
}
