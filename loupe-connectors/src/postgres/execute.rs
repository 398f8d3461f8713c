//! Running one statement: a pooled connection, a transaction (READ ONLY by
//! default) with a server-side statement timeout, rows decoded into Arrow
//! batches on the connection's own task.
//!
//! Rows come one of two ways. A whole, unparameterized query is wrapped in
//! `COPY (…) TO STDOUT (FORMAT binary)`, the cheapest way PostgreSQL has to
//! send rows. Anything else (bound parameters, a row limit, statements COPY
//! does not take) is bound to a portal that is read in chunks, so a row
//! limit ends the read without cancelling anything.
//!
//! When the consumer drops the stream early, or the deadline passes, the
//! statement is cancelled on the server and the connection is closed
//! rather than returned to the pool in an unknown state.
//!
//! A statement's restriction settings (row-level security) are set in its
//! transaction with `set_config(name, value, true)`, values bound, so they
//! end with the transaction and never reach the connection's next user.

use std::collections::{BTreeMap, HashMap};
use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use bytes::{Buf, Bytes, BytesMut};
use deadpool_postgres::{Object, Pool};
use futures::{FutureExt, StreamExt, pin_mut};
use loupe_core::{
    Error, LimitedStream, Limits, Result, SendableBatchStream, Statement, Value, codes,
};
use tokio_postgres::types::{Format, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{CancelToken, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::config::{PostgresConfig, Transfer};
use super::error::{self, Context};
use super::types::{self, Column};
use crate::remote::batch::BatchLimits;
use crate::remote::producer_stream::{BatchSender, ProducerStream};

/// A bound value, sent in PostgreSQL's text format: the server parses it
/// with the input function of the type it inferred for the placeholder,
/// exactly as it would a literal, but the value never enters the SQL.
#[derive(Debug)]
struct TextParam<'a>(&'a Value);

impl ToSql for TextParam<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        use std::fmt::Write;
        write!(out, "{}", self.0)?;
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// Raw wire bytes of one value, borrowed from the row.
struct RawValue<'a>(&'a [u8]);

impl<'a> tokio_postgres::types::FromSql<'a> for RawValue<'a> {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(RawValue(raw))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

/// A pooled connection. Unless [`release`](Self::release)d, dropping it
/// cancels whatever runs on the server and closes the connection instead
/// of returning it to the pool in an unknown state.
pub(super) struct Session {
    client: Option<Object>,
    cancel: CancelToken,
    tls: Option<MakeRustlsConnect>,
}

impl Session {
    pub(super) async fn checkout(
        pool: &Pool,
        config: &PostgresConfig,
        tls: Option<MakeRustlsConnect>,
        cx: &Context,
    ) -> Result<Self> {
        let client = pool.get().await.map_err(|e| {
            error::pool(
                e,
                cx,
                config.server.pool_size,
                config.server.pool_wait_timeout,
            )
        })?;
        let cancel = client.cancel_token();
        Ok(Self {
            client: Some(client),
            cancel,
            tls,
        })
    }

    pub(super) fn client(&self) -> Result<&Object> {
        self.client
            .as_ref()
            .ok_or_else(|| Error::internal("postgres session already released"))
    }

    fn client_mut(&mut self) -> Result<&mut Object> {
        self.client
            .as_mut()
            .ok_or_else(|| Error::internal("postgres session already released"))
    }

    /// Returns the connection to the pool; only after its transaction ended.
    pub(super) fn release(mut self) {
        self.client = None;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        // Detach from the pool: the connection's state is unknown.
        let client = Object::take(client);
        let cancel = self.cancel.clone();
        let tls = self.tls.clone();
        let stop = async move {
            let sent = match tls {
                Some(tls) => cancel.cancel_query(tls).await,
                None => cancel.cancel_query(tokio_postgres::NoTls).await,
            };
            if let Err(e) = sent {
                tracing::warn!(error = %e, "could not send a cancel request to PostgreSQL");
            }
            drop(client);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(stop);
            }
            Err(_) => tracing::warn!("no runtime to cancel a PostgreSQL statement on"),
        }
    }
}

/// Transaction-local settings of a restricted statement, as the two
/// arrays one `set_config` statement reads them from.
#[derive(Debug, Default, Clone)]
pub(super) struct Settings {
    names: Vec<String>,
    values: Vec<String>,
}

impl Settings {
    /// The settings of a statement's restrictions. Only custom settings
    /// (`prefix.name`, as PostgreSQL spells them) are taken: a server
    /// setting such as `statement_timeout`, `role` or
    /// `transaction_read_only` would undo a limit this datasource sets.
    pub(super) fn new(settings: &BTreeMap<String, String>) -> Result<Self> {
        if let Some(name) = settings.keys().find(|name| !is_custom_setting(name)) {
            return Err(Error::refused(
                codes::DATASOURCE_RESTRICTIONS_UNSUPPORTED,
                format!(
                    "the postgres datasource sets only custom settings (`prefix.name`, such as \
                     `loupe.user.region`), not {name:?}, which could undo the datasource's own \
                     limits; an admin can rename it in the grant and in the policies that read it"
                ),
            ));
        }
        Ok(Self {
            names: settings.keys().cloned().collect(),
            values: settings.values().cloned().collect(),
        })
    }
}

/// A custom setting's name has a dot between two non-empty parts; no
/// setting of the server itself does.
fn is_custom_setting(name: &str) -> bool {
    name.split_once('.')
        .is_some_and(|(prefix, rest)| !prefix.is_empty() && !rest.is_empty())
}

/// Sets the statement timeout and every setting in one round trip, each
/// name and value bound: nothing the settings hold is spliced into SQL.
const SET_CONFIG: &str =
    "SELECT set_config(k, v, true) FROM unnest($1::text[], $2::text[]) AS s(k, v)";

/// Starts the statement's transaction: READ ONLY unless configured
/// otherwise, with the statement timeout and the restriction `settings`
/// set for it alone (transaction-local settings end with the
/// transaction, so nothing leaks to the connection's next user).
async fn begin<'c>(
    client: &'c mut Object,
    read_only: bool,
    timeout: Option<Duration>,
    settings: &Settings,
    cx: &Context,
) -> Result<deadpool_postgres::Transaction<'c>> {
    let txn = client
        .build_transaction()
        .read_only(read_only)
        .start()
        .await
        .map_err(|e| error::statement(e, cx))?;
    let millis = timeout.map_or(0, |t| t.as_millis().clamp(1, i32::MAX as u128));
    if settings.names.is_empty() {
        txn.batch_execute(&format!("SET LOCAL statement_timeout = {millis}"))
            .await
            .map_err(|e| error::statement(e, cx))?;
    } else {
        let names: Vec<&str> = std::iter::once("statement_timeout")
            .chain(settings.names.iter().map(String::as_str))
            .collect();
        let millis = millis.to_string();
        let values: Vec<&str> = std::iter::once(millis.as_str())
            .chain(settings.values.iter().map(String::as_str))
            .collect();
        txn.execute_typed(
            SET_CONFIG,
            &[(&names, Type::TEXT_ARRAY), (&values, Type::TEXT_ARRAY)],
        )
        .await
        .map_err(|e| error::statement(e, cx))?;
    }
    Ok(txn)
}

/// Ends the transaction. A read-only one is rolled back, which also undoes
/// any `SET` the statement made.
async fn end(txn: deadpool_postgres::Transaction<'_>, commit: bool, cx: &Context) -> Result<()> {
    let ended = if commit {
        txn.commit().await
    } else {
        txn.rollback().await
    };
    ended.map_err(|e| error::statement(e, cx))
}

/// The prepared statement and how its rows will be read.
pub(super) struct Plan {
    pub(super) schema: SchemaRef,
    pub(super) columns: Vec<Column>,
    pub(super) prepared: tokio_postgres::Statement,
    pub(super) copy: bool,
}

/// Prepares the statement and decides how to read it.
pub(super) async fn prepare(
    session: &Session,
    statement: &Statement,
    config: &PostgresConfig,
    limits: &Limits,
    cx: &Context,
) -> Result<Plan> {
    let client = session.client()?;
    let prepared = client
        .prepare(&statement.sql)
        .await
        .map_err(|e| error::statement(e, cx))?;
    if prepared.params().len() != statement.params.len() {
        return Err(Error::internal(format!(
            "the statement has {} placeholders but {} values",
            prepared.params().len(),
            statement.params.len()
        )));
    }
    let dims = array_dims(client, &prepared, cx).await?;
    let columns: Vec<Column> = prepared
        .columns()
        .iter()
        .map(|c| {
            let d = match (c.table_oid(), c.column_id()) {
                (Some(t), Some(col)) => dims.get(&(t, col)).copied().unwrap_or(0),
                _ => 0,
            };
            types::column(c.name(), c.type_(), c.type_modifier(), d)
        })
        .collect();
    let schema = Arc::new(Schema::new(
        columns.iter().map(|c| c.field.clone()).collect::<Vec<_>>(),
    ));
    let copy = config.postgres.transfer == Transfer::Auto
        && statement.params.is_empty()
        && limits.max_rows.is_none()
        && !columns.is_empty()
        && is_plain_query(&statement.sql);
    Ok(Plan {
        schema,
        columns,
        prepared,
        copy,
    })
}

/// Declared dimensions of the array columns that come straight from a
/// table, so that `int[][]` becomes a list of lists.
async fn array_dims(
    client: &Object,
    prepared: &tokio_postgres::Statement,
    cx: &Context,
) -> Result<HashMap<(u32, i16), usize>> {
    let mut relations = Vec::new();
    let mut numbers = Vec::new();
    for c in prepared.columns() {
        if let (tokio_postgres::types::Kind::Array(_), Some(t), Some(n)) =
            (c.type_().kind(), c.table_oid(), c.column_id())
        {
            relations.push(t);
            numbers.push(n);
        }
    }
    if relations.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = client
        .query(
            "SELECT a.attrelid, a.attnum, a.attndims FROM pg_catalog.pg_attribute a \
             JOIN unnest($1::oid[], $2::int2[]) AS k(rel, num) ON a.attrelid = k.rel AND a.attnum = k.num",
            &[&relations, &numbers],
        )
        .await
        .map_err(|e| error::statement(e, cx))?;
    let mut dims = HashMap::new();
    for row in rows {
        let rel: u32 = row
            .try_get(0)
            .map_err(|e| Error::internal_from("attndims", e))?;
        let num: i16 = row
            .try_get(1)
            .map_err(|e| Error::internal_from("attndims", e))?;
        let d: i32 = row
            .try_get(2)
            .map_err(|e| Error::internal_from("attndims", e))?;
        dims.insert((rel, num), usize::try_from(d).unwrap_or(0));
    }
    Ok(dims)
}

/// True when `sql` starts (after comments and parentheses) with a keyword
/// that `COPY (…) TO` accepts and reads nothing else.
fn is_plain_query(sql: &str) -> bool {
    let mut rest = sql.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else if let Some(r) = rest.strip_prefix('(') {
            rest = r.trim_start();
        } else {
            break;
        }
    }
    let word: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_lowercase();
    matches!(word.as_str(), "select" | "values" | "table")
}

/// The rows, as a stream of batches under `limits`.
#[allow(clippy::too_many_arguments)]
pub(super) fn stream(
    session: Session,
    plan: Plan,
    statement: &Statement,
    settings: Settings,
    config: &PostgresConfig,
    limits: &Limits,
    timeout: Option<Duration>,
    deadline: Option<tokio::time::Instant>,
    cx: Context,
) -> SendableBatchStream {
    let schema = plan.schema.clone();
    let params: Vec<Value> = statement.values().cloned().collect();
    let sql = statement.sql.clone();
    let batch = config.server.batch();
    let read_only = config.server.read_only;
    // One row past the limit tells the consumer the result was cut.
    let row_budget = limits.max_rows.map(|m| m.saturating_add(1));
    let producer = move |tx: BatchSender| {
        async move {
            let mut session = session;
            let Plan {
                schema,
                columns,
                prepared,
                copy,
            } = plan;
            let mut batcher = Batcher::new(schema, columns, batch);
            let job = Job {
                prepared: &prepared,
                copy,
                sql: &sql,
                params: &params,
                read_only,
                timeout,
                settings: &settings,
                row_budget,
                cx: &cx,
            };
            let outcome = {
                let work = job.run(&mut session, &mut batcher, &tx);
                pin_mut!(work);
                tokio::select! {
                    result = &mut work => Some(result),
                    () = tx.closed() => None,
                }
            };
            match outcome {
                Some(Ok(())) => session.release(),
                Some(Err(e)) => tx.fail(e).await,
                // The consumer went away: dropping the session cancels.
                None => {}
            }
        }
        .boxed()
    };
    let stream = ProducerStream::boxed(schema, producer);
    LimitedStream::boxed(stream, limits, deadline)
}

/// What the producer task reads, and how.
struct Job<'a> {
    prepared: &'a tokio_postgres::Statement,
    copy: bool,
    sql: &'a str,
    params: &'a [Value],
    read_only: bool,
    timeout: Option<Duration>,
    settings: &'a Settings,
    row_budget: Option<u64>,
    cx: &'a Context,
}

impl Job<'_> {
    async fn run(
        &self,
        session: &mut Session,
        batcher: &mut Batcher,
        tx: &BatchSender,
    ) -> Result<()> {
        let cx = self.cx;
        let client = session.client_mut()?;
        if self.copy {
            let wrapped = format!(
                "COPY (\n{}\n) TO STDOUT (FORMAT binary)",
                self.sql.trim_end().trim_end_matches(';')
            );
            let txn = begin(client, self.read_only, self.timeout, self.settings, cx).await?;
            match txn.copy_out(wrapped.as_str()).await {
                Ok(rows) => {
                    read_copy(rows, batcher, tx, cx).await?;
                    return end(txn, !self.read_only, cx).await;
                }
                // COPY does not take this form of statement (it refused it
                // before sending a row): read it as rows instead.
                Err(e) if copy_refused(&e) => {
                    tracing::debug!(error = %e, "COPY refused the statement; reading rows");
                    drop(txn);
                }
                Err(e) => return Err(error::statement(e, cx)),
            }
        }
        let txn = begin(client, self.read_only, self.timeout, self.settings, cx).await?;
        let text: Vec<TextParam<'_>> = self.params.iter().map(TextParam).collect();
        let portal = txn
            .bind_raw(self.prepared, text.iter().map(|p| p as &(dyn ToSql + Sync)))
            .await
            .map_err(|e| error::statement(e, cx))?;
        let columns = self.prepared.columns().len();
        let mut remaining = self.row_budget;
        loop {
            let chunk = match remaining {
                Some(0) => break,
                Some(r) => r.min(batcher.limits.rows as u64) as i32,
                None => batcher.limits.rows.min(i32::MAX as usize) as i32,
            };
            let rows = txn
                .query_portal_raw(&portal, chunk)
                .await
                .map_err(|e| error::statement(e, cx))?;
            pin_mut!(rows);
            let mut got = 0u64;
            while let Some(row) = rows.next().await {
                let row: Row = row.map_err(|e| error::statement(e, cx))?;
                batcher.append_row(&row, columns)?;
                got += 1;
                if batcher.full() {
                    send(batcher, tx).await?;
                }
            }
            if let Some(r) = remaining.as_mut() {
                *r = r.saturating_sub(got);
            }
            if got < chunk as u64 {
                break;
            }
        }
        if batcher.rows > 0 {
            send(batcher, tx).await?;
        }
        drop(portal);
        end(txn, !self.read_only, cx).await
    }
}

/// A planning-time refusal by COPY (syntax or an unsupported form), as
/// opposed to an error the statement itself would also raise.
fn copy_refused(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        let code = db.code().code();
        code.starts_with("42") || code.starts_with("0A")
    })
}

async fn send(batcher: &mut Batcher, tx: &BatchSender) -> Result<()> {
    let batch = batcher.take()?;
    // A closed channel means the consumer left; the select above notices.
    let _ = tx.send(batch).await;
    Ok(())
}

/// The `COPY BINARY` stream: a header, then tuples of length-prefixed
/// fields, then a -1 trailer.
async fn read_copy(
    stream: tokio_postgres::CopyOutStream,
    batcher: &mut Batcher,
    tx: &BatchSender,
    cx: &Context,
) -> Result<()> {
    const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
    pin_mut!(stream);
    let mut buffer = BytesMut::new();
    let mut header_done = false;
    let mut trailer = false;
    let mut fields: Vec<Option<std::ops::Range<usize>>> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk: Bytes = chunk.map_err(|e| error::statement(e, cx))?;
        buffer.extend_from_slice(&chunk);
        if !header_done {
            if buffer.len() < SIGNATURE.len() + 8 {
                continue;
            }
            if &buffer[..SIGNATURE.len()] != SIGNATURE {
                return Err(Error::internal(
                    "COPY output does not start with the binary signature",
                ));
            }
            let ext = u32::from_be_bytes([buffer[15], buffer[16], buffer[17], buffer[18]]) as usize;
            if buffer.len() < 19 + ext {
                continue;
            }
            buffer.advance(19 + ext);
            header_done = true;
        }
        // Decode every complete tuple in the buffer.
        let mut at = 0usize;
        loop {
            match tuple_at(&buffer, at, &mut fields)? {
                Tuple::Incomplete => break,
                Tuple::Trailer => {
                    trailer = true;
                    at = buffer.len();
                    break;
                }
                Tuple::Complete(end) => {
                    let base = &buffer[..];
                    batcher.append_fields(fields.iter().map(|r| r.clone().map(|r| &base[r])))?;
                    at = end;
                    if batcher.full() {
                        send(batcher, tx).await?;
                    }
                }
            }
        }
        buffer.advance(at);
    }
    if !trailer && !buffer.is_empty() {
        return Err(Error::internal("COPY output ended in the middle of a row"));
    }
    if batcher.rows > 0 {
        send(batcher, tx).await?;
    }
    Ok(())
}

pub(super) enum Tuple {
    Incomplete,
    Trailer,
    Complete(usize),
}

/// Finds the fields of the tuple starting at `at`, if it is complete.
pub(super) fn tuple_at(
    buffer: &[u8],
    at: usize,
    fields: &mut Vec<Option<std::ops::Range<usize>>>,
) -> Result<Tuple> {
    let Some(count) = buffer.get(at..at + 2) else {
        return Ok(Tuple::Incomplete);
    };
    let count = i16::from_be_bytes([count[0], count[1]]);
    if count == -1 {
        return Ok(Tuple::Trailer);
    }
    let count = usize::try_from(count)
        .map_err(|_| Error::internal("COPY tuple with a negative field count"))?;
    fields.clear();
    let mut pos = at + 2;
    for _ in 0..count {
        let Some(len) = buffer.get(pos..pos + 4) else {
            return Ok(Tuple::Incomplete);
        };
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        pos += 4;
        if len < 0 {
            fields.push(None);
        } else {
            let end = pos + len as usize;
            if end > buffer.len() {
                return Ok(Tuple::Incomplete);
            }
            fields.push(Some(pos..end));
            pos = end;
        }
    }
    Ok(Tuple::Complete(pos))
}

/// Appends rows to the columns' decoders and closes batches at the limits.
pub(super) struct Batcher {
    schema: SchemaRef,
    columns: Vec<Column>,
    pub(super) limits: BatchLimits,
    pub(super) rows: usize,
    bytes: usize,
}

impl Batcher {
    pub(super) fn new(schema: SchemaRef, columns: Vec<Column>, limits: BatchLimits) -> Self {
        Self {
            schema,
            columns,
            limits,
            rows: 0,
            bytes: 0,
        }
    }

    fn append_row(&mut self, row: &Row, count: usize) -> Result<()> {
        for i in 0..count {
            let value: Option<RawValue<'_>> = row
                .try_get(i)
                .map_err(|e| Error::internal_from("read a PostgreSQL row", e))?;
            let raw = value.map(|v| v.0);
            self.bytes += raw.map_or(0, <[u8]>::len);
            self.decode(i, raw)?;
        }
        self.rows += 1;
        Ok(())
    }

    fn append_fields<'a>(
        &mut self,
        fields: impl ExactSizeIterator<Item = Option<&'a [u8]>>,
    ) -> Result<()> {
        if fields.len() != self.columns.len() {
            return Err(Error::internal(format!(
                "COPY row with {} fields, expected {}",
                fields.len(),
                self.columns.len()
            )));
        }
        for (i, raw) in fields.enumerate() {
            self.bytes += raw.map_or(0, <[u8]>::len);
            self.decode(i, raw)?;
        }
        self.rows += 1;
        Ok(())
    }

    fn decode(&mut self, i: usize, raw: Option<&[u8]>) -> Result<()> {
        let column = &mut self.columns[i];
        column.decoder.append(raw).map_err(|e| {
            let ty = column
                .field
                .metadata()
                .get(types::PG_TYPE_KEY)
                .cloned()
                .unwrap_or_default();
            Error::internal(format!("column {:?} ({ty}): {}", column.field.name(), e.0))
        })
    }

    pub(super) fn full(&self) -> bool {
        self.limits.full(self.rows, self.bytes)
    }

    pub(super) fn take(&mut self) -> Result<RecordBatch> {
        let arrays = self
            .columns
            .iter_mut()
            .map(|c| c.decoder.finish())
            .collect();
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|e| Error::internal_from("build a batch from PostgreSQL rows", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_queries_go_through_copy() {
        assert!(is_plain_query("select 1"));
        assert!(is_plain_query("  -- note\n (SELECT 1)"));
        assert!(is_plain_query("/* x */ values (1)"));
        assert!(is_plain_query("TABLE orders"));
        assert!(!is_plain_query("with x as (select 1) select * from x"));
        assert!(!is_plain_query("show work_mem"));
        assert!(!is_plain_query("explain select 1"));
        assert!(!is_plain_query("insert into t values (1) returning *"));
    }

    #[test]
    fn only_custom_settings_are_set() {
        for name in ["loupe.user.region", "app.tenant", "a.b.c"] {
            assert!(is_custom_setting(name), "{name}");
        }
        for name in [
            "statement_timeout",
            "role",
            "transaction_read_only",
            ".region",
            "loupe.",
            "",
        ] {
            assert!(!is_custom_setting(name), "{name}");
            let settings = BTreeMap::from([(name.to_owned(), "x".to_owned())]);
            let refused = Settings::new(&settings).map(|_| ());
            assert!(
                matches!(&refused, Err(e) if e.code() == codes::DATASOURCE_RESTRICTIONS_UNSUPPORTED.as_str()),
                "{name}: {refused:?}"
            );
        }
    }

    #[test]
    fn copy_tuples_are_split_at_boundaries() {
        let mut fields = Vec::new();
        // two fields: NULL and "ab"
        let tuple = [0u8, 2, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2, b'a', b'b'];
        assert!(matches!(
            tuple_at(&tuple, 0, &mut fields).unwrap(),
            Tuple::Complete(12)
        ));
        assert_eq!(fields, vec![None, Some(10..12)]);
        assert!(matches!(
            tuple_at(&tuple[..11], 0, &mut fields).unwrap(),
            Tuple::Incomplete
        ));
        assert!(matches!(
            tuple_at(&[0xff, 0xff], 0, &mut fields).unwrap(),
            Tuple::Trailer
        ));
    }
}
