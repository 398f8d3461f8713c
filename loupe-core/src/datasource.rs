//! The datasource traits: a place that answers SQL, and the factory that
//! builds one from its configuration.
//!
//! Core defines the shape; connectors (in `loupe-connectors`) implement it.
//! Core never names a connector.

use std::fmt::Debug;
use std::sync::Arc;

use arrow::datatypes::DataType;
use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};

use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::stream::SendableBatchStream;
use crate::template::{Dialect, Statement};

/// Options of a datasource, as given in configuration or parsed from a URL.
pub type DatasourceOptions = serde_json::Map<String, serde_json::Value>;

/// A place that can answer SQL: one value per configured datasource.
///
/// Values are shared (`Arc<dyn Datasource>`) and used from many tasks at
/// once; a datasource that holds connections pools them.
#[async_trait]
pub trait Datasource: Debug + Send + Sync {
    /// The connector kind, such as `files` or `postgres`.
    fn kind(&self) -> &'static str;

    /// The SQL dialect statements for this datasource are written in.
    fn dialect(&self) -> Dialect;

    /// Runs one statement with its bound parameters and streams the result.
    ///
    /// The returned future prepares the statement (plans it, or asks the
    /// server to describe it), so errors in the SQL and the result's schema
    /// are known when it resolves. Rows are produced only when the stream is
    /// polled.
    ///
    /// The stream honours `limits`: it ends early at `max_rows` or
    /// `max_bytes` and reports it through
    /// [`BatchStream::truncation`](crate::BatchStream::truncation), and it
    /// fails with [`Error::Timeout`] once `timeout` has passed since this
    /// call. Implementations push the timeout down to the server where they
    /// can and use [`LimitedStream`](crate::LimitedStream) for the rest.
    ///
    /// # Errors
    /// - [`Error::Template`]/[`Error::Parameter`] never: the statement is already bound;
    /// - [`Error::Query`] when the datasource rejects or fails the statement,
    ///   with the server's code kept;
    /// - [`Error::Refused`] when the statement is not allowed (a write on a
    ///   read-only datasource, a path outside a files root);
    /// - [`Error::Unavailable`] when the datasource cannot be reached;
    /// - [`Error::Timeout`] when the deadline passes.
    ///
    /// # Cancellation
    /// No rows are read before the stream is first polled. Dropping the
    /// future or the stream stops the work, on the server too: connectors
    /// send the database's cancel request rather than leave the statement
    /// running.
    async fn execute(&self, statement: &Statement, limits: &Limits) -> Result<SendableBatchStream>;

    /// Lists schemas, tables and columns for a schema browser.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the datasource cannot be reached.
    async fn introspect(&self) -> Result<CatalogInfo>;

    /// A cheap check that the datasource is reachable and usable.
    ///
    /// # Errors
    /// [`Error::Unavailable`] (or a more specific error) when it is not.
    async fn ping(&self) -> Result<()>;

    /// How its pool of connections is used now, for metrics: cheap, no I/O.
    /// `None` (the default) for a datasource that pools no connections.
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }
}

/// How a datasource's connection pool is used at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections open, idle or in use.
    pub open: usize,
    /// Connections checked out by statements.
    pub in_use: usize,
    /// The most connections the pool opens.
    pub max: usize,
    /// Statements waiting for a connection.
    pub waiting: usize,
}

/// Builds [`Datasource`]s of one kind from validated options.
pub trait DatasourceFactory: Debug + Send + Sync {
    /// The kind this factory builds, such as `postgres`.
    fn kind(&self) -> &'static str;

    /// One line about the kind, for `loupe sources` and the API.
    fn description(&self) -> &'static str;

    /// The SQL dialect datasources of this kind speak.
    fn dialect(&self) -> Dialect;

    /// URL schemes that name this kind (`postgres`, `postgresql`). A plain
    /// path counts as the `file` scheme.
    fn url_schemes(&self) -> &'static [&'static str];

    /// The options this kind accepts.
    fn options(&self) -> &'static [OptionSpec];

    /// Turns a URL (or, for `file`, a path) into options.
    ///
    /// # Errors
    /// [`Error::Config`] naming what is wrong with the URL (never echoing a
    /// password).
    fn options_from_url(&self, url: &str) -> Result<DatasourceOptions>;

    /// Builds a datasource. Builds do not connect; use
    /// [`Datasource::ping`] to check a connection.
    ///
    /// # Errors
    /// [`Error::Config`] for unknown options, missing required ones, and
    /// values of the wrong type or out of range.
    fn build(&self, options: &DatasourceOptions) -> Result<Arc<dyn Datasource>>;
}

/// Describes one option of a datasource kind.
#[derive(Debug, Clone, Serialize)]
pub struct OptionSpec {
    /// The option's key.
    pub name: &'static str,
    /// What values it takes.
    pub kind: OptionKind,
    /// Whether it must be given.
    pub required: bool,
    /// Whether it is a secret (stored encrypted, never shown back).
    pub secret: bool,
    /// The value used when it is not given.
    pub default: Option<&'static str>,
    /// What it means.
    pub description: &'static str,
    /// True when the option only tunes how the datasource works (pool
    /// size, timeouts, batch sizes): changing it keeps the stored secrets.
    /// Every other option says where, or as whom, the datasource connects,
    /// and a change of it drops the secrets unless they are given again,
    /// so a password never follows a datasource to another server.
    pub tuning: bool,
}

impl OptionSpec {
    /// The same option, marked as only tuning the datasource.
    pub const fn tuning(mut self) -> Self {
        self.tuning = true;
        self
    }
}

/// The type of an option's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OptionKind {
    /// Text.
    String,
    /// An integer.
    Integer,
    /// True or false.
    Boolean,
    /// A filesystem path.
    Path,
    /// A duration such as `30s`.
    Duration,
}

/// Deserializes `options` into a connector's typed configuration, turning
/// serde's message (which names unknown and missing fields) into
/// [`Error::Config`].
pub fn parse_options<T: DeserializeOwned>(kind: &str, options: &DatasourceOptions) -> Result<T> {
    let value = serde_json::Value::Object(options.clone());
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            Error::config(format!("{kind} datasource: {inner}"))
        } else {
            Error::config(format!("{kind} datasource option {path}: {inner}"))
        }
    })
}

/// What a datasource holds, for a schema browser.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CatalogInfo {
    /// Schemas (or databases), without system schemas.
    pub schemas: Vec<SchemaInfo>,
}

/// One schema and its tables.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchemaInfo {
    /// The schema's name.
    pub name: String,
    /// Its tables and views.
    pub tables: Vec<TableInfo>,
}

/// One table, view or file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableInfo {
    /// The name to use in SQL.
    pub name: String,
    /// What it is.
    pub kind: TableKind,
    /// Its columns in order.
    pub columns: Vec<ColumnInfo>,
    /// Free text: a comment, a file path relative to the root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The kind of a [`TableInfo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    /// A base table.
    Table,
    /// A view.
    View,
    /// A materialized view.
    MaterializedView,
    /// A foreign or external table.
    External,
    /// A file (or folder of files) read by the files connector.
    File,
}

/// One column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnInfo {
    /// The column name.
    pub name: String,
    /// The Arrow type results of this column have.
    #[serde(serialize_with = "display")]
    pub data_type: DataType,
    /// The datasource's own type name (`numeric(12,2)`, `csv: Utf8`).
    pub source_type: String,
    /// Whether the column can hold NULL.
    pub nullable: bool,
}

fn display<S: Serializer>(t: &DataType, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(t)
}
