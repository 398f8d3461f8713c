//! PostgreSQL errors as Loupe errors: what the server said (SQLSTATE,
//! detail, hint, position) is kept, and each way a connection can fail has
//! its own code.

use std::time::Duration;

pub(super) use crate::common::error::Context;
use crate::common::error::{causes, connect, io_kind};

use deadpool_postgres::{PoolError, TimeoutType};
use loupe_core::{Error, ErrorKind, QueryError};
use tokio_postgres::error::{DbError, ErrorPosition, SqlState};

/// An error while running a statement on an open connection.
pub(super) fn statement(e: tokio_postgres::Error, cx: &Context) -> Error {
    if let Some(db) = e.as_db_error() {
        return server(db, cx);
    }
    if e.is_closed() {
        return connect(
            "datasource.connection_lost",
            format!("the connection to PostgreSQL at {} was lost", cx.address),
            ErrorKind::Unavailable,
            true,
            e,
        );
    }
    opening(e, cx)
}

/// An error reported by the server.
fn server(db: &DbError, cx: &Context) -> Error {
    let state = db.code();
    if *state == SqlState::QUERY_CANCELED {
        if db.message().contains("statement timeout")
            && let Some(after) = cx.timeout
        {
            return Error::Timeout { after };
        }
        return Error::Cancelled;
    }
    if *state == SqlState::READ_ONLY_SQL_TRANSACTION {
        return Error::refused(
            "datasource.read_only",
            format!(
                "the datasource is read-only: {} (the statement runs in a READ ONLY transaction; set read_only=false on the datasource to allow writes)",
                db.message()
            ),
        );
    }
    let code = state.code();
    let retriable = matches!(
        code,
        "40001" | "40P01" | "57P01" | "57P02" | "57P03" | "53300" | "55P03"
    ) || code.starts_with("08");
    Error::query(QueryError {
        message: db.message().to_owned(),
        sqlstate: Some(code.to_owned()),
        vendor_code: None,
        detail: db.detail().map(str::to_owned),
        hint: db.hint().map(str::to_owned),
        position: match db.position() {
            Some(ErrorPosition::Original(p)) => Some(*p),
            _ => None,
        },
        retriable,
    })
}

/// An error while opening a connection.
pub(super) fn opening(e: tokio_postgres::Error, cx: &Context) -> Error {
    if let Some(db) = e.as_db_error() {
        let state = db.code();
        if *state == SqlState::INVALID_PASSWORD
            || *state == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            let message = format!(
                "PostgreSQL at {} refused user {:?}: {}",
                cx.address,
                cx.user,
                db.message()
            );
            return connect(
                "datasource.auth_failed",
                message,
                ErrorKind::Forbidden,
                false,
                e,
            );
        }
        if *state == SqlState::INVALID_CATALOG_NAME {
            let message = format!(
                "PostgreSQL at {} has no database {:?}",
                cx.address, cx.database
            );
            return connect(
                "datasource.database_missing",
                message,
                ErrorKind::NotFound,
                false,
                e,
            );
        }
        if *state == SqlState::TOO_MANY_CONNECTIONS || *state == SqlState::CANNOT_CONNECT_NOW {
            let message = format!(
                "PostgreSQL at {} is not accepting connections now: {}",
                cx.address,
                db.message()
            );
            return connect(
                "datasource.unavailable",
                message,
                ErrorKind::Unavailable,
                true,
                e,
            );
        }
        return server(db, cx);
    }
    let chain = causes(&e);
    if let Some(io) = io_kind(&e) {
        use std::io::ErrorKind as Io;
        match io {
            Io::ConnectionRefused => {
                let message = format!(
                    "cannot connect to PostgreSQL at {}: connection refused (is the server running and listening there?)",
                    cx.address
                );
                return connect(
                    "datasource.connection_refused",
                    message,
                    ErrorKind::Unavailable,
                    true,
                    e,
                );
            }
            Io::TimedOut => {
                let message = format!("connecting to PostgreSQL at {} timed out", cx.address);
                return connect(
                    "datasource.connect_timeout",
                    message,
                    ErrorKind::Unavailable,
                    true,
                    e,
                );
            }
            _ => {}
        }
    }
    let lower = chain.to_ascii_lowercase();
    if lower.contains("tls") || lower.contains("certificate") || lower.contains("ssl") {
        let message = format!("TLS with PostgreSQL at {} failed: {chain}", cx.address);
        return connect(
            "datasource.tls_failed",
            message,
            ErrorKind::Unavailable,
            false,
            e,
        );
    }
    if lower.contains("timeout") || lower.contains("timed out") {
        let message = format!("connecting to PostgreSQL at {} timed out", cx.address);
        return connect(
            "datasource.connect_timeout",
            message,
            ErrorKind::Unavailable,
            true,
            e,
        );
    }
    if lower.contains("failed to lookup address") || lower.contains("name or service not known") {
        let message = format!(
            "cannot resolve the PostgreSQL host in {}: {chain}",
            cx.address
        );
        return connect(
            "datasource.unreachable",
            message,
            ErrorKind::Unavailable,
            true,
            e,
        );
    }
    let message = format!("cannot connect to PostgreSQL at {}: {chain}", cx.address);
    connect(
        "datasource.unreachable",
        message,
        ErrorKind::Unavailable,
        true,
        e,
    )
}

/// An error getting a connection from the pool.
pub(super) fn pool(e: PoolError, cx: &Context, size: usize, wait: Duration) -> Error {
    match e {
        PoolError::Backend(e) => opening(e, cx),
        PoolError::Timeout(TimeoutType::Wait) => Error::Connect {
            code: "datasource.pool_exhausted",
            message: format!(
                "all {size} connections to PostgreSQL at {} are busy and none was free after {}; try again, or raise pool_size",
                cx.address,
                humantime::format_duration(wait)
            ),
            kind: ErrorKind::Unavailable,
            retriable: true,
            source: None,
        },
        PoolError::Timeout(_) => Error::Connect {
            code: "datasource.connect_timeout",
            message: format!("connecting to PostgreSQL at {} timed out", cx.address),
            kind: ErrorKind::Unavailable,
            retriable: true,
            source: None,
        },
        other => Error::internal(format!("postgres pool: {other}")),
    }
}
