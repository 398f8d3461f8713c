//! PostgreSQL errors as Loupe errors: what the server said (SQLSTATE,
//! detail, hint, position) is kept, and each way a connection can fail is
//! told apart (the codes and words are in `remote::server_errors`).

use std::time::Duration;

pub(super) use crate::remote::server_errors::Context;
use crate::remote::server_errors::{self, ConnectFailure};

use deadpool_postgres::{HookError, PoolError, TimeoutType};
use loupe_core::{Error, QueryError};
use tokio_postgres::error::{DbError, ErrorPosition, SqlState};

/// An error while running a statement on an open connection.
pub(super) fn statement(e: tokio_postgres::Error, cx: &Context) -> Error {
    if let Some(db) = e.as_db_error() {
        return server(db, cx);
    }
    if e.is_closed() {
        return ConnectFailure::Lost.error(cx, Some(Box::new(e)));
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
        return server_errors::read_only(db.message());
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
    let failure = match e.as_db_error() {
        Some(db) => {
            let state = db.code();
            if *state == SqlState::INVALID_PASSWORD
                || *state == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            {
                ConnectFailure::AuthFailed(db.message().to_owned())
            } else if *state == SqlState::INVALID_CATALOG_NAME {
                ConnectFailure::DatabaseMissing
            } else if *state == SqlState::TOO_MANY_CONNECTIONS
                || *state == SqlState::CANNOT_CONNECT_NOW
            {
                ConnectFailure::NotAccepting(db.message().to_owned())
            } else {
                return server(db, cx);
            }
        }
        None => ConnectFailure::from_causes(&e),
    };
    failure.error(cx, Some(Box::new(e)))
}

/// The message of the `post_create` hook when asking what the role may
/// do took longer than `connect_timeout`; any other message of the hook
/// is what it found.
pub(super) const ROLE_CHECK_TIMED_OUT: &str = "asking what the role may do timed out";

/// An error getting a connection from the pool.
pub(super) fn pool(e: PoolError, cx: &Context, size: usize, wait: Duration) -> Error {
    match e {
        PoolError::Backend(e) => opening(e, cx),
        PoolError::Timeout(TimeoutType::Wait) => server_errors::pool_exhausted(cx, size, wait),
        PoolError::Timeout(_) => ConnectFailure::TimedOut.error(cx, None),
        PoolError::PostCreateHook(HookError::Backend(e)) => statement(e, cx),
        PoolError::PostCreateHook(HookError::Message(said)) if said == ROLE_CHECK_TIMED_OUT => {
            ConnectFailure::TimedOut.error(cx, None)
        }
        PoolError::PostCreateHook(HookError::Message(found)) => {
            server_errors::privileged_role(cx, &[found.into_owned()])
        }
        other => Error::internal(format!("postgres pool: {other}")),
    }
}
