//! MySQL and MariaDB errors as Loupe errors: the server's errno and SQLSTATE
//! are kept, and each way a connection can fail is told apart (the codes
//! and words are in `remote::server_errors`).

pub(super) use crate::remote::server_errors::Context;
use crate::remote::server_errors::{self, ConnectFailure};

use loupe_core::{Error, QueryError};
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
        MyError::Io(_) => ConnectFailure::Lost.error(cx, Some(Box::new(e))),
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
        return server_errors::read_only(&server.message);
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
    let failure = match &e {
        MyError::Server(server) => match server.code {
            1045 | 1044 | 1698 | 1251 => ConnectFailure::AuthFailed(server.message.clone()),
            1049 => ConnectFailure::DatabaseMissing,
            1040 | 1203 => ConnectFailure::NotAccepting(server.message.clone()),
            _ => return server_error(server, cx),
        },
        _ => ConnectFailure::from_causes(&e),
    };
    failure.error(cx, Some(Box::new(e)))
}
