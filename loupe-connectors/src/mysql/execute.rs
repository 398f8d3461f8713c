//! Running one statement: a pooled connection, a READ ONLY transaction (by
//! default) with a server-side time limit, the statement prepared and run
//! with bound values over the binary protocol, rows decoded into Arrow
//! batches on the connection's own task.
//!
//! When the consumer drops the stream, a row limit is reached or the
//! deadline passes, `KILL QUERY` goes to the server on a separate
//! connection and the statement's connection is closed rather than
//! returned to the pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use chrono::{Datelike, Timelike};
use futures::{FutureExt, pin_mut};
use loupe_core::{Error, LimitedStream, Limits, Result, SendableBatchStream, Statement, Value};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Params, Pool, Row, Value as MyValue};

use super::config::MysqlConfig;
use super::error::{self, Context};
use super::types::{self, Column, ColumnShape};
use crate::remote::batch::{BatchLimits, DecodeError};
use crate::remote::producer_stream::{BatchSender, ProducerStream};
use crate::remote::server_errors::{self, ConnectFailure};

/// Which server: their time-limit variables differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flavor {
    MySql,
    MariaDb,
}

impl Flavor {
    /// The statement that limits the next statements' run time.
    fn time_limit(self, timeout: Option<Duration>) -> String {
        match self {
            // MariaDB counts seconds (fractions allowed), MySQL milliseconds.
            Self::MariaDb => format!(
                "SET SESSION max_statement_time = {:.3}",
                timeout.map_or(0.0, |t| t.as_secs_f64())
            ),
            Self::MySql => format!(
                "SET SESSION max_execution_time = {}",
                timeout.map_or(0, |t| t.as_millis().clamp(1, u128::from(u32::MAX)))
            ),
        }
    }
}

/// A pooled connection. Unless [`release`](Self::release)d, dropping it
/// kills its running statement and closes it.
pub(super) struct Session {
    conn: Option<Conn>,
    id: u32,
    /// Options for a side connection that sends `KILL QUERY`.
    kill_opts: Opts,
    in_use: Arc<AtomicUsize>,
}

impl Session {
    pub(super) fn new(conn: Conn, kill_opts: Opts, in_use: Arc<AtomicUsize>) -> Self {
        Self {
            id: conn.id(),
            conn: Some(conn),
            kill_opts,
            in_use,
        }
    }

    /// The server's id of the connection.
    pub(super) fn id(&self) -> u32 {
        self.id
    }

    pub(super) fn conn(&mut self) -> Result<&mut Conn> {
        self.conn
            .as_mut()
            .ok_or_else(|| Error::internal("mysql session already released"))
    }

    /// Returns the connection to the pool (which resets its session).
    pub(super) fn release(mut self) {
        self.conn = None;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.in_use.fetch_sub(1, Ordering::Relaxed);
        let Some(conn) = self.conn.take() else {
            return;
        };
        let id = self.id;
        let opts = self.kill_opts.clone();
        let stop = async move {
            match Conn::new(opts).await {
                Ok(mut side) => {
                    if let Err(e) = side.query_drop(format!("KILL QUERY {id}")).await {
                        tracing::warn!(error = %e, "could not kill a MySQL statement");
                    }
                    let _ = side.disconnect().await;
                }
                Err(e) => tracing::warn!(error = %e, "could not connect to kill a MySQL statement"),
            }
            let _ = conn.disconnect().await;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(stop);
            }
            Err(_) => tracing::warn!("no runtime to kill a MySQL statement on"),
        }
    }
}

/// Gets a connection within the wait timeout; tells a full pool from a
/// slow server.
pub(super) async fn checkout(
    pool: &Pool,
    config: &MysqlConfig,
    kill_opts: Opts,
    in_use: Arc<AtomicUsize>,
    cx: &Context,
) -> Result<Session> {
    let busy = in_use.fetch_add(1, Ordering::Relaxed);
    // From here on the counter is given back by the session's drop.
    let wait = config.server.pool_wait_timeout;
    let got = tokio::time::timeout(wait, pool.get_conn()).await;
    let conn = match got {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            in_use.fetch_sub(1, Ordering::Relaxed);
            return Err(error::opening(e, cx));
        }
        Err(_) => {
            in_use.fetch_sub(1, Ordering::Relaxed);
            return Err(if busy >= config.server.pool_size {
                server_errors::pool_exhausted(cx, config.server.pool_size, wait)
            } else {
                ConnectFailure::TimedOut.error(cx, None)
            });
        }
    };
    Ok(Session::new(conn, kill_opts, in_use))
}

/// The prepared statement and its columns.
pub(super) struct Plan {
    schema: SchemaRef,
    columns: Vec<Column>,
    prepared: mysql_async::Statement,
}

/// Starts the transaction, sets the time limit and prepares the statement.
pub(super) async fn prepare(
    session: &mut Session,
    statement: &Statement,
    config: &MysqlConfig,
    flavor: Flavor,
    timeout: Option<Duration>,
    cx: &Context,
) -> Result<Plan> {
    let conn = session.conn()?;
    let begin = if config.server.read_only {
        "START TRANSACTION READ ONLY"
    } else {
        "START TRANSACTION"
    };
    conn.query_drop(format!("{}; {begin}", flavor.time_limit(timeout)))
        .await
        .map_err(|e| error::statement(e, cx))?;
    let prepared = conn
        .prep(statement.sql.as_str())
        .await
        .map_err(|e| error::statement(e, cx))?;
    if usize::from(prepared.num_params()) != statement.params.len() {
        return Err(Error::internal(format!(
            "the statement has {} placeholders but {} values",
            prepared.num_params(),
            statement.params.len()
        )));
    }
    let columns: Vec<Column> = prepared
        .columns()
        .iter()
        .map(|c| {
            types::column(
                &c.name_str(),
                &ColumnShape::from_column(c),
                config.mysql.tinyint1_as_boolean,
            )
        })
        .collect();
    let schema = Arc::new(Schema::new(
        columns.iter().map(|c| c.field.clone()).collect::<Vec<_>>(),
    ));
    Ok(Plan {
        schema,
        columns,
        prepared,
    })
}

/// A bound value as the binary protocol carries it.
fn param(value: &Value) -> MyValue {
    match value {
        Value::Text(s) => MyValue::Bytes(s.as_bytes().to_vec()),
        Value::Integer(i) => MyValue::Int(*i),
        Value::Number(n) => MyValue::Double(*n),
        Value::Boolean(b) => MyValue::Int(i64::from(*b)),
        Value::Date(d) => MyValue::Date(
            u16::try_from(d.year()).unwrap_or(0),
            d.month() as u8,
            d.day() as u8,
            0,
            0,
            0,
            0,
        ),
        Value::Datetime(t) => MyValue::Date(
            u16::try_from(t.year()).unwrap_or(0),
            t.month() as u8,
            t.day() as u8,
            t.hour() as u8,
            t.minute() as u8,
            t.second() as u8,
            t.timestamp_subsec_micros(),
        ),
    }
}

/// The rows, as a stream of batches under `limits`.
pub(super) fn stream(
    session: Session,
    plan: Plan,
    statement: &Statement,
    config: &MysqlConfig,
    limits: &Limits,
    deadline: Option<tokio::time::Instant>,
    cx: Context,
) -> SendableBatchStream {
    let schema = plan.schema.clone();
    let params: Vec<MyValue> = statement.values().map(param).collect();
    let batch = config.server.batch();
    let commit = !config.server.read_only;
    let row_budget = limits.max_rows.map(|m| m.saturating_add(1));
    let producer = move |tx: BatchSender| {
        async move {
            let mut session = session;
            let Plan {
                schema,
                columns,
                prepared,
            } = plan;
            let mut batcher = Batcher::new(schema, columns, batch);
            let outcome = {
                let work = read(
                    &mut session,
                    &prepared,
                    params,
                    &mut batcher,
                    &tx,
                    row_budget,
                    commit,
                    &cx,
                );
                pin_mut!(work);
                tokio::select! {
                    result = &mut work => Some(result),
                    () = tx.closed() => None,
                }
            };
            match outcome {
                Some(Ok(true)) => session.release(),
                // Stopped at the row limit: the rest of the result is killed.
                Some(Ok(false)) => {}
                Some(Err(e)) => tx.fail(e).await,
                None => {}
            }
        }
        .boxed()
    };
    let stream = ProducerStream::boxed(schema, producer);
    LimitedStream::boxed(stream, limits, deadline)
}

/// Reads the rows; `Ok(true)` when the whole result was read and the
/// transaction ended, `Ok(false)` when the row budget stopped it.
#[allow(clippy::too_many_arguments)]
async fn read(
    session: &mut Session,
    prepared: &mysql_async::Statement,
    params: Vec<MyValue>,
    batcher: &mut Batcher,
    tx: &BatchSender,
    row_budget: Option<u64>,
    commit: bool,
    cx: &Context,
) -> Result<bool> {
    let conn = session.conn()?;
    let params = if params.is_empty() {
        Params::Empty
    } else {
        Params::Positional(params)
    };
    let mut rows_read = 0u64;
    {
        let mut result = conn
            .exec_iter(prepared, params)
            .await
            .map_err(|e| error::statement(e, cx))?;
        while let Some(row) = result.next().await.map_err(|e| error::statement(e, cx))? {
            batcher.append(row)?;
            rows_read += 1;
            if batcher.full() {
                let batch = batcher.take()?;
                let _ = tx.send(batch).await;
            }
            if row_budget.is_some_and(|b| rows_read >= b) {
                if batcher.rows > 0 {
                    let batch = batcher.take()?;
                    let _ = tx.send(batch).await;
                }
                return Ok(false);
            }
        }
    }
    if batcher.rows > 0 {
        let batch = batcher.take()?;
        let _ = tx.send(batch).await;
    }
    let end = if commit { "COMMIT" } else { "ROLLBACK" };
    conn.query_drop(end)
        .await
        .map_err(|e| error::statement(e, cx))?;
    Ok(true)
}

/// Appends rows to the columns' decoders and closes batches at the limits.
struct Batcher {
    schema: SchemaRef,
    columns: Vec<Column>,
    limits: BatchLimits,
    rows: usize,
    bytes: usize,
}

impl Batcher {
    fn new(schema: SchemaRef, columns: Vec<Column>, limits: BatchLimits) -> Self {
        Self {
            schema,
            columns,
            limits,
            rows: 0,
            bytes: 0,
        }
    }

    fn append(&mut self, row: Row) -> Result<()> {
        let values = row.unwrap_raw();
        if values.len() != self.columns.len() {
            return Err(Error::internal(format!(
                "MySQL row with {} values, expected {}",
                values.len(),
                self.columns.len()
            )));
        }
        for (column, value) in self.columns.iter_mut().zip(values) {
            self.bytes += match &value {
                Some(MyValue::Bytes(b)) => b.len(),
                Some(MyValue::NULL) | None => 0,
                Some(_) => 8,
            };
            column
                .decoder
                .append(value)
                .map_err(|e| column_error(column, e))?;
        }
        self.rows += 1;
        Ok(())
    }

    fn full(&self) -> bool {
        self.limits.full(self.rows, self.bytes)
    }

    fn take(&mut self) -> Result<RecordBatch> {
        let arrays = self
            .columns
            .iter_mut()
            .map(|c| c.decoder.finish().map_err(|e| column_error(c, e)))
            .collect::<Result<Vec<_>>>()?;
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|e| Error::internal_from("build a batch from MySQL rows", e))
    }
}

/// A value of `column` that could not be decoded, naming the column and its
/// MySQL type.
#[cold]
fn column_error(column: &Column, e: DecodeError) -> Error {
    let ty = column
        .field
        .metadata()
        .get(types::MYSQL_TYPE_KEY)
        .map_or("", String::as_str);
    Error::internal(format!("column {:?} ({ty}): {}", column.field.name(), e.0))
}
