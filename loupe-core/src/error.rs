//! The one error type of `loupe-core`.
//!
//! Every error has a stable machine [`code`](Error::code) (what a client
//! matches on) and a [`kind`](Error::kind) (what a host maps to an HTTP status
//! or an exit code). Messages are for people: lowercase, naming the offending
//! value and, where there is one, the fix. Messages never contain secrets.

use std::fmt;
use std::time::Duration;

use crate::codes::{self, Code};
use crate::params::ParameterError;
use crate::template::TemplateError;

/// A boxed error from a lower layer, kept as the `source` of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The category of an error: what a host does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The caller sent something wrong: fix the input and try again.
    InvalidInput,
    /// The thing asked for does not exist (or is not visible to the caller).
    NotFound,
    /// The caller is not signed in, or their credentials are not valid.
    Unauthenticated,
    /// The caller may not do this; retrying will not help.
    Forbidden,
    /// The request clashes with the current state (cancelled, already exists).
    Conflict,
    /// The object changed since the caller read it: reload and try again.
    Stale,
    /// A dependency (database, object store) could not be reached; a retry may help.
    Unavailable,
    /// A time limit was reached.
    Timeout,
    /// A bug or an unexpected state in Loupe itself.
    Internal,
}

impl ErrorKind {
    /// The stable name of this kind, as used in API bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "invalid_input",
            Self::NotFound => "not_found",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::Conflict => "conflict",
            Self::Stale => "stale",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error reported by a database or query engine while it ran a statement.
///
/// Keeps what the server said (SQLSTATE or vendor code, detail, hint,
/// position) so that a user can fix the query, and whether a retry can help.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryError {
    /// The server's message, without Loupe's prefix.
    pub message: String,
    /// The five-character SQLSTATE, when the server gave one.
    pub sqlstate: Option<String>,
    /// A vendor error number (a MySQL errno, for example).
    pub vendor_code: Option<String>,
    /// Longer explanation from the server.
    pub detail: Option<String>,
    /// The server's suggestion.
    pub hint: Option<String>,
    /// 1-based character position in the statement that the error points at.
    pub position: Option<u32>,
    /// True when running the same statement again may succeed (a lost
    /// connection, a serialization failure, a server shutting down).
    pub retriable: bool,
}

impl QueryError {
    /// A query error with only a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            ..Self::default()
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(state) = &self.sqlstate {
            write!(f, " (SQLSTATE {state})")?;
        }
        if let Some(detail) = &self.detail {
            write!(f, "; detail: {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "; hint: {hint}")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong in `loupe-core`, by category.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The query template is malformed.
    #[error(transparent)]
    Template(#[from] TemplateError),

    /// A parameter definition or value is wrong.
    #[error(transparent)]
    Parameter(#[from] ParameterError),

    /// A datasource, store or limit configuration is invalid.
    #[error("invalid configuration: {message}")]
    Config {
        /// Which option or value is wrong, and what would be right.
        message: String,
    },

    /// Some other request input is invalid (a page past its maximum size, an
    /// unknown column name).
    #[error("{message}")]
    InvalidInput {
        /// Stable code, such as `results.unknown_column`.
        code: Code,
        /// What was wrong.
        message: String,
    },

    /// Input failed validation; each problem names its field.
    #[error("{}", describe_fields(.0))]
    Validation(Vec<FieldError>),

    /// The request clashes with the current state: a name already taken,
    /// an object still in use, a run already finished.
    #[error("{message}")]
    Conflict {
        /// Stable code, such as `conflict.exists` or `conflict.in_use`.
        code: Code,
        /// What clashed, and what to do.
        message: String,
    },

    /// The object changed since the caller read it (its revision moved on).
    #[error("{message}")]
    Stale {
        /// What changed, and what to do.
        message: String,
    },

    /// No connector is compiled in for a datasource kind or URL scheme.
    #[error("no connector for {kind:?}; enabled: {enabled}")]
    UnknownKind {
        /// The kind or scheme that was asked for.
        kind: String,
        /// The kinds that are compiled in, comma separated.
        enabled: String,
    },

    /// The statement or request was refused before it ran: a write on a
    /// read-only datasource, a path outside a files root.
    #[error("{message}")]
    Refused {
        /// Stable code, such as `files.read_only` or `files.outside_root`.
        code: Code,
        /// Why it was refused.
        message: String,
    },

    /// Credentials were missing, wrong, expired or revoked, or the account
    /// may not sign in now (disabled, locked).
    #[error("{message}")]
    Unauthenticated {
        /// Stable code, such as `auth.invalid_credentials`.
        code: Code,
        /// What is wrong, without saying which part of a credential was.
        message: String,
    },

    /// The datasource ran the statement and reported an error.
    #[error("query failed: {0}")]
    Query(Box<QueryError>),

    /// Something that was asked for does not exist.
    #[error("{what} {name:?} not found{suggestion}")]
    NotFound {
        /// What kind of thing: `table`, `result`, ...
        what: &'static str,
        /// Its name or id.
        name: String,
        /// Extra help, starting with "; " when present.
        suggestion: String,
    },

    /// A datasource or store could not be reached.
    #[error("{message}")]
    Unavailable {
        /// Stable code, such as `datasource.unreachable`.
        code: Code,
        /// What could not be reached, without secrets.
        message: String,
        /// The lower-level cause.
        #[source]
        source: Option<BoxError>,
    },

    /// A datasource could not be connected to, or had no free connection.
    /// The code says which: `datasource.connection_refused`,
    /// `datasource.auth_failed`, `datasource.database_missing`,
    /// `datasource.tls_failed`, `datasource.connect_timeout`,
    /// `datasource.pool_exhausted`, `datasource.connection_lost`, ...
    #[error("{message}")]
    Connect {
        /// Stable code.
        code: Code,
        /// What happened, naming the server but never a password.
        message: String,
        /// How a host should treat it.
        kind: ErrorKind,
        /// Whether trying again later may help.
        retriable: bool,
        /// The lower-level cause.
        #[source]
        source: Option<BoxError>,
    },

    /// The statement ran longer than its time limit and was stopped.
    #[error("query timed out after {}", humanize(*.after))]
    Timeout {
        /// The limit that was reached.
        after: Duration,
    },

    /// The work was cancelled by its caller.
    #[error("query was cancelled")]
    Cancelled,

    /// The result store failed to read or write.
    #[error("result store: {message}")]
    Store {
        /// What the store was doing.
        message: String,
        /// The lower-level cause.
        #[source]
        source: Option<BoxError>,
    },

    /// Reading or writing a local file or stream failed.
    #[error("{message}: {source}")]
    Io {
        /// What was being read or written.
        message: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A bug or unexpected state in Loupe.
    #[error("internal error: {message}")]
    Internal {
        /// What went wrong.
        message: String,
        /// The lower-level cause.
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// The stable machine code of this error, such as `template.unterminated`.
    pub fn code(&self) -> &'static str {
        self.catalogue_code().as_str()
    }

    /// The code of this error in [`codes`].
    pub fn catalogue_code(&self) -> Code {
        match self {
            Self::Template(e) => e.catalogue_code(),
            Self::Validation(_) => codes::VALIDATION_FAILED,
            Self::Stale { .. } => codes::CONFLICT_REVISION,
            Self::Parameter(e) => e.catalogue_code(),
            Self::Config { .. } => codes::CONFIG_INVALID,
            Self::UnknownKind { .. } => codes::DATASOURCE_UNKNOWN_KIND,
            Self::InvalidInput { code, .. }
            | Self::Conflict { code, .. }
            | Self::Refused { code, .. }
            | Self::Unauthenticated { code, .. }
            | Self::Unavailable { code, .. }
            | Self::Connect { code, .. } => *code,
            Self::Query(e) if e.retriable => codes::QUERY_RETRIABLE,
            Self::Query(_) => codes::QUERY_FAILED,
            Self::NotFound { what, .. } => match *what {
                "table" => codes::TABLE_NOT_FOUND,
                "result" => codes::RESULT_NOT_FOUND,
                "column" => codes::COLUMN_NOT_FOUND,
                "public link" => codes::SHARE_INVALID,
                _ => codes::NOT_FOUND,
            },
            Self::Timeout { .. } => codes::QUERY_TIMEOUT,
            Self::Cancelled => codes::QUERY_CANCELLED,
            Self::Store { .. } => codes::STORE_FAILED,
            Self::Io { .. } => codes::IO_FAILED,
            Self::Internal { .. } => codes::INTERNAL,
        }
    }

    /// True when the message may carry internals (paths, a lower layer's
    /// words): a host logs it and shows the caller something general.
    pub fn hides_detail(&self) -> bool {
        matches!(
            self,
            Self::Internal { .. } | Self::Store { .. } | Self::Io { .. }
        )
    }

    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Conflict { .. } => ErrorKind::Conflict,
            Self::Stale { .. } => ErrorKind::Stale,
            Self::Template(_)
            | Self::Validation(_)
            | Self::Parameter(_)
            | Self::Config { .. }
            | Self::InvalidInput { .. }
            | Self::UnknownKind { .. } => ErrorKind::InvalidInput,
            Self::Query(e) if e.retriable => ErrorKind::Unavailable,
            Self::Query(_) => ErrorKind::InvalidInput,
            Self::Refused { .. } => ErrorKind::Forbidden,
            Self::Unauthenticated { .. } => ErrorKind::Unauthenticated,
            Self::Connect { kind, .. } => *kind,
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::Unavailable { .. } | Self::Store { .. } | Self::Io { .. } => {
                ErrorKind::Unavailable
            }
            Self::Timeout { .. } => ErrorKind::Timeout,
            Self::Cancelled => ErrorKind::Conflict,
            Self::Internal { .. } => ErrorKind::Internal,
        }
    }

    /// True when the same work may succeed if tried again.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Query(e) => e.retriable,
            Self::Unavailable { .. } => true,
            Self::Connect { retriable, .. } => *retriable,
            _ => false,
        }
    }

    /// A configuration error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::Config {
            message: message.into(),
        }
    }

    /// A refusal with a stable code.
    pub fn refused(code: Code, message: impl Into<String>) -> Self {
        Self::Refused {
            code,
            message: message.into(),
        }
    }

    /// A failed authentication with a stable code.
    pub fn unauthenticated(code: Code, message: impl Into<String>) -> Self {
        Self::Unauthenticated {
            code,
            message: message.into(),
        }
    }

    /// An invalid-input error with a stable code.
    pub fn invalid_input(code: Code, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            code,
            message: message.into(),
        }
    }

    /// A not-found error.
    pub fn not_found(what: &'static str, name: impl Into<String>) -> Self {
        Self::NotFound {
            what,
            name: name.into(),
            suggestion: String::new(),
        }
    }

    /// A query error from a datasource.
    pub fn query(error: QueryError) -> Self {
        Self::Query(Box::new(error))
    }

    /// A result store failure.
    pub fn store(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Store {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// An internal error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal {
            message: message.into(),
            source: None,
        }
    }

    /// An internal error with a cause.
    pub fn internal_from(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Internal {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// The [`QueryError`] carried by this error, if it came from a datasource.
    pub fn as_query_error(&self) -> Option<&QueryError> {
        match self {
            Self::Query(e) => Some(e),
            _ => None,
        }
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        // An Arrow error that wraps one of ours (raised inside a stream
        // adapter) comes back out unchanged.
        match e {
            arrow::error::ArrowError::ExternalError(inner) => match inner.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => Self::internal_from("arrow", other),
            },
            arrow::error::ArrowError::IoError(message, source) => Self::Io { message, source },
            other => Self::internal_from(other.to_string(), other),
        }
    }
}

impl Error {
    /// True when this error, or one it was caused by, is a closed pipe or
    /// socket on the output: the reader went away, which is not a failure
    /// of the query.
    pub fn is_broken_pipe(&self) -> bool {
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = current {
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::BrokenPipe
            {
                return true;
            }
            current = e.source();
        }
        false
    }
}

/// One invalid field of an input.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// The field's path, such as `name` or `widgets[2].w`.
    pub field: String,
    /// Stable code from [`codes::field`], such as `too_long` or `required`.
    pub code: Code,
    /// What is wrong and what would be right.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, code: Code, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

fn describe_fields(errors: &[FieldError]) -> String {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    format!("invalid input: {}", parts.join("; "))
}

impl Error {
    /// A validation error about one field.
    pub fn field(field: impl Into<String>, code: Code, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, code, message)])
    }

    /// The object changed since revision `expected` was read.
    pub fn stale(message: impl Into<String>) -> Self {
        Self::Stale {
            message: message.into(),
        }
    }

    /// A conflict with a stable code.
    pub fn conflict(code: Code, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    /// The field errors, when this is a validation error.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            Self::Validation(errors) => errors,
            _ => &[],
        }
    }
}

/// Formats a duration the way people write it: `30s`, `1.5s`, `250ms`, `2m`.
pub(crate) fn humanize(d: Duration) -> String {
    let millis = d.as_millis();
    if millis == 0 {
        return format!("{}µs", d.as_micros());
    }
    if millis < 1000 {
        return format!("{millis}ms");
    }
    if millis.is_multiple_of(60_000) {
        return format!("{}m", millis / 60_000);
    }
    if millis.is_multiple_of(1000) {
        return format!("{}s", millis / 1000);
    }
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_has_its_own_code_and_kind() {
        let e = Error::Timeout {
            after: Duration::from_secs(30),
        };
        assert_eq!(e.code(), "query.timeout");
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert_eq!(e.to_string(), "query timed out after 30s");
    }

    #[test]
    fn retriable_query_errors_are_unavailable() {
        let mut q = QueryError::new("connection reset");
        q.retriable = true;
        let e = Error::query(q);
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_retriable());
        let e = Error::query(QueryError::new("syntax error"));
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(!e.is_retriable());
    }

    #[test]
    fn our_error_survives_a_trip_through_arrow() {
        let e = arrow::error::ArrowError::ExternalError(Box::new(Error::Cancelled));
        assert_eq!(Error::from(e).code(), "query.cancelled");
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(humanize(Duration::from_millis(250)), "250ms");
        assert_eq!(humanize(Duration::from_secs(90)), "90s");
        assert_eq!(humanize(Duration::from_secs(120)), "2m");
        assert_eq!(humanize(Duration::from_millis(1500)), "1.5s");
    }
}
