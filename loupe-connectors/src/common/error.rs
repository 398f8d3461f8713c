//! Error helpers the database connectors share: where a failure happened,
//! and how a connection failure becomes a Loupe error.

use std::sync::Arc;
use std::time::Duration;

use loupe_core::{Error, ErrorKind};

/// Where an error happened, for messages (never holds a password).
#[derive(Debug, Clone)]
pub(crate) struct Context {
    /// `host:port`.
    pub(crate) address: Arc<str>,
    pub(crate) database: Arc<str>,
    pub(crate) user: Arc<str>,
    /// The timeout that applied to the statement, if any.
    pub(crate) timeout: Option<Duration>,
}

/// A connection failure with its stable code.
pub(crate) fn connect(
    code: &'static str,
    message: String,
    kind: ErrorKind,
    retriable: bool,
    source: impl std::error::Error + Send + Sync + 'static,
) -> Error {
    Error::Connect {
        code,
        message,
        kind,
        retriable,
        source: Some(Box::new(source)),
    }
}

/// The messages of `e` and its causes, joined without repeats.
pub(crate) fn causes(e: &(dyn std::error::Error + 'static)) -> String {
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
pub(crate) fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        current = err.source();
    }
    None
}
