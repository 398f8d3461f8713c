//! MySQL and MariaDB errors as Loupe errors: the server's errno and SQLSTATE
//! are kept, and each way a connection can fail has its own code.

pub(super) use crate::common::error::Context;
use crate::common::error::{causes, connect, io_kind};

use loupe_core::{Error, ErrorKind, QueryError};
use mysql_async::{Error as MyError, ServerError};

/// Errnos of a statement stopped by a server-side time limit: MySQL's
/// `max_execution_time` (3024) and MariaDB's `max_statement_time` (1969).
const TIMED_OUT: [u16; 2] = [3024, 1969];
/// `KILL QUERY` (1317).
const INTERRUPTED: u16 = 1317;
/// Writes refused by a read-only transaction or server.
const READ_ONLY: [u16; 3] = [1792, 1290, 1836];
/// Deadlock, lock wait timeout, too many connections: a retry may work.
const RETRIABLE: [u16; 3] = [1213, 1205, 1040];

/// An error while running a statement on an open connection.
pub(super) fn statement(e: MyError, cx: &Context) -> Error {
    match &e {
        MyError::Server(server) => server_error(server, cx),
        MyError::Io(_) => connect(
            "datasource.connection_lost",
            format!("the connection to MySQL at {} was lost", cx.address),
            ErrorKind::Unavailable,
            true,
            e,
        ),
        MyError::Driver(_) | MyError::Other(_) | MyError::Url(_) => {
            Error::internal_from(format!("MySQL at {}", cx.address), e)
        }
    }
}

fn server_error(server: &ServerError, cx: &Context) -> Error {
    if TIMED_OUT.contains(&server.code)
        && let Some(after) = cx.timeout
    {
        return Error::Timeout { after };
    }
    if server.code == INTERRUPTED {
        return Error::Cancelled;
    }
    if READ_ONLY.contains(&server.code) {
        return Error::refused(
            "datasource.read_only",
            format!(
                "the datasource is read-only: {} (the statement runs in a READ ONLY transaction; set read_only=false on the datasource to allow writes)",
                server.message
            ),
        );
    }
    Error::query(QueryError {
        message: server.message.clone(),
        sqlstate: Some(server.state.clone()).filter(|s| !s.is_empty()),
        vendor_code: Some(server.code.to_string()),
        detail: None,
        hint: None,
        position: None,
        retriable: RETRIABLE.contains(&server.code),
    })
}

/// An error while opening a connection.
pub(super) fn opening(e: MyError, cx: &Context) -> Error {
    if let MyError::Server(server) = &e {
        return match server.code {
            1045 | 1044 | 1698 | 1251 => {
                let message = format!(
                    "MySQL at {} refused user {:?}: {}",
                    cx.address, cx.user, server.message
                );
                connect(
                    "datasource.auth_failed",
                    message,
                    ErrorKind::Forbidden,
                    false,
                    e,
                )
            }
            1049 => {
                let message = format!("MySQL at {} has no database {:?}", cx.address, cx.database);
                connect(
                    "datasource.database_missing",
                    message,
                    ErrorKind::NotFound,
                    false,
                    e,
                )
            }
            1040 | 1203 => {
                let message = format!(
                    "MySQL at {} is not accepting connections now: {}",
                    cx.address, server.message
                );
                connect(
                    "datasource.unavailable",
                    message,
                    ErrorKind::Unavailable,
                    true,
                    e,
                )
            }
            _ => server_error(server, cx),
        };
    }
    let chain = causes(&e);
    let lower = chain.to_ascii_lowercase();
    if io_kind(&e) == Some(std::io::ErrorKind::ConnectionRefused)
        || lower.contains("connection refused")
    {
        let message = format!(
            "cannot connect to MySQL at {}: connection refused (is the server running and listening there?)",
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
    if lower.contains("tls") || lower.contains("ssl") || lower.contains("certificate") {
        let message = format!("TLS with MySQL at {} failed: {chain}", cx.address);
        return connect(
            "datasource.tls_failed",
            message,
            ErrorKind::Unavailable,
            false,
            e,
        );
    }
    if lower.contains("timed out") || lower.contains("timeout") {
        let message = format!("connecting to MySQL at {} timed out", cx.address);
        return connect(
            "datasource.connect_timeout",
            message,
            ErrorKind::Unavailable,
            true,
            e,
        );
    }
    let message = format!("cannot connect to MySQL at {}: {chain}", cx.address);
    connect(
        "datasource.unreachable",
        message,
        ErrorKind::Unavailable,
        true,
        e,
    )
}
