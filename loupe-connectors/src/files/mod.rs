//! The `files` datasource: SQL over CSV, Parquet, NDJSON and Arrow IPC files
//! in one root directory, answered by DataFusion.
//!
//! It must never read outside its root and never write. Both are enforced
//! where they happen, not by looking at the SQL text: the session can reach
//! only a read-only object store confined to the root, DataFusion's
//! `SQLOptions` refuse DDL, DML, `COPY` and `SET`, and table names that look
//! like paths are refused before planning.
//!
//! A statement's row filters are applied to every reference to their table
//! ([`row_filters`]); restriction settings are refused, as the files have
//! no policies to read them.

mod catalog;
mod confined;
mod row_filters;

use loupe_core::codes;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::error::ArrowError;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider};
use datafusion::common::ScalarValue;
use datafusion::common::TableReference;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::execute_stream;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Statement as SqlStatement, TableFactor, Visit, Visitor};
use futures::{StreamExt, TryStreamExt};
use loupe_core::{
    BoundParam, CatalogInfo, ColumnInfo, Datasource, DatasourceFactory, DatasourceOptions, Dialect,
    Error, LimitedStream, Limits, OptionKind, OptionSpec, ParameterError, QueryError, Result,
    SchemaInfo, SendableBatchStream, Statement, StreamAdapter, TableInfo, TableKind, Value,
    parse_options,
};
use serde::Deserialize;

use crate::option_specs::{self, spec};
use catalog::RootSchema;
use confined::{ConfinedRegistry, ConfinedStore};

const KIND: &str = "files";

/// Builds [`FilesDatasource`]s. [`FilesFactory::default`] takes any root
/// directory, as befits a local tool; a host that lets others define
/// datasources confines them with [`FilesFactory::within`].
#[derive(Debug, Default, Clone)]
pub struct FilesFactory {
    /// Directories a root must be inside; `None` allows any.
    allowed: Option<Arc<[PathBuf]>>,
}

impl FilesFactory {
    /// A factory whose datasources may only have a root inside one of
    /// `dirs` (or one of them itself). Symbolic links are resolved before
    /// the check, at every build, so a link cannot lead outside. With no
    /// directories, no files datasource can be built.
    pub fn within(dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        Self {
            allowed: Some(dirs.into_iter().collect()),
        }
    }

    /// The root to open: `root` itself when any is allowed, else its
    /// canonical form once it is known to be inside an allowed directory. A
    /// root that does not exist is refused with the same words as one
    /// outside, so the answer does not tell which paths exist there.
    fn confine(&self, root: &Path) -> Result<PathBuf> {
        let Some(allowed) = &self.allowed else {
            return Ok(root.to_path_buf());
        };
        let inside = std::fs::canonicalize(root).ok().filter(|root| {
            allowed
                .iter()
                .filter_map(|dir| std::fs::canonicalize(dir).ok())
                .any(|dir| root.starts_with(dir))
        });
        if let Some(root) = inside {
            Ok(root)
        } else {
            Err(Error::config(format!(
                "files datasource: root {} is not an existing directory inside the directories \
                 this host allows files datasources to read",
                root.display()
            )))
        }
    }
}

const OPTIONS: &[OptionSpec] = &[
    spec(
        "root",
        OptionKind::Path,
        true,
        false,
        None,
        "Directory whose files are the tables; nothing outside it can be read",
    ),
    spec(
        "csv_has_header",
        OptionKind::Boolean,
        false,
        false,
        Some("true"),
        "Whether CSV files start with a header row",
    )
    .tuning(),
    spec(
        "csv_delimiter",
        OptionKind::String,
        false,
        false,
        Some(","),
        "The one-character field separator of CSV files",
    )
    .tuning(),
    spec(
        "memory_limit_mb",
        OptionKind::Integer,
        false,
        false,
        Some("1024"),
        "Memory one query may use for sorts, joins and aggregates before it fails or spills",
    )
    .tuning(),
];

/// Typed options of a files datasource. The defaults are in [`OPTIONS`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesConfig {
    root: PathBuf,
    csv_has_header: bool,
    csv_delimiter: Option<String>,
    memory_limit_mb: u64,
}

impl FilesConfig {
    fn csv_delimiter_byte(&self) -> u8 {
        self.csv_delimiter
            .as_deref()
            .and_then(|d| d.as_bytes().first().copied())
            .unwrap_or(b',')
    }

    fn validate(&self) -> Result<()> {
        if let Some(d) = &self.csv_delimiter
            && (d.len() != 1 || !d.is_ascii())
        {
            return Err(Error::config(format!(
                "files datasource: csv_delimiter must be one ASCII character, got {d:?}"
            )));
        }
        if self.memory_limit_mb == 0 {
            return Err(Error::config(
                "files datasource: memory_limit_mb must be at least 1",
            ));
        }
        Ok(())
    }
}

impl DatasourceFactory for FilesFactory {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn description(&self) -> &'static str {
        "CSV, Parquet, NDJSON and Arrow files in one directory, queried with DataFusion"
    }

    fn dialect(&self) -> Dialect {
        Dialect::DataFusion
    }

    fn url_schemes(&self) -> &'static [&'static str] {
        &["file"]
    }

    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }

    fn options_from_url(&self, url: &str) -> Result<DatasourceOptions> {
        let root = if url.contains("://") {
            url::Url::parse(url)
                .ok()
                .filter(|u| u.scheme() == "file")
                .and_then(|u| u.to_file_path().ok())
                .ok_or_else(|| {
                    Error::config(format!("{url:?} is not a file:// URL of a directory"))
                })?
        } else {
            PathBuf::from(url)
        };
        let mut options = DatasourceOptions::new();
        options.insert("root".into(), root.to_string_lossy().into_owned().into());
        Ok(options)
    }

    fn build(&self, options: &DatasourceOptions) -> Result<Arc<dyn Datasource>> {
        let options = option_specs::complete(KIND, OPTIONS, &[], options)?;
        let mut config: FilesConfig = parse_options(KIND, &options)?;
        config.validate()?;
        config.root = self.confine(&config.root)?;
        Ok(Arc::new(FilesDatasource::new(config)?))
    }
}

/// SQL over the files in one directory.
#[derive(Debug)]
pub struct FilesDatasource {
    schema: Arc<RootSchema>,
    state: datafusion::execution::SessionState,
}

impl FilesDatasource {
    fn new(config: FilesConfig) -> Result<Self> {
        let root = std::fs::canonicalize(&config.root).map_err(|e| {
            Error::config(format!(
                "files datasource: root {} cannot be opened: {e}",
                config.root.display()
            ))
        })?;
        if !root.is_dir() {
            return Err(Error::config(format!(
                "files datasource: root {} is not a directory; give the folder that holds the files",
                config.root.display()
            )));
        }
        let store = ConfinedStore::new(root.clone()).map_err(|e| {
            Error::config(format!("files datasource: root {}: {e}", root.display()))
        })?;
        let memory = usize::try_from(config.memory_limit_mb.saturating_mul(1024 * 1024))
            .unwrap_or(usize::MAX);
        let runtime = RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::new(ConfinedRegistry::new(Arc::new(store))))
            .with_memory_limit(memory, 1.0)
            .build_arc()
            .map_err(|e| Error::internal_from("files datasource runtime", e))?;
        let session_config = || {
            SessionConfig::new()
                .with_create_default_catalog_and_schema(false)
                .with_information_schema(false)
        };
        let inference = SessionStateBuilder::new()
            .with_config(session_config())
            .with_runtime_env(runtime.clone())
            .with_default_features()
            .build();
        let schema = Arc::new(RootSchema::new(root, config, inference));
        let state = SessionStateBuilder::new()
            .with_config(session_config())
            .with_runtime_env(runtime)
            .with_default_features()
            .build();
        let catalog = MemoryCatalogProvider::new();
        catalog
            .register_schema("public", schema.clone())
            .map_err(|e| Error::internal_from("files catalog", e))?;
        state
            .catalog_list()
            .register_catalog("datafusion".to_owned(), Arc::new(catalog));
        Ok(Self { schema, state })
    }

    /// Plans `statement`: parse, refuse what may not run, check the tables
    /// it names, bind parameters.
    async fn plan(
        &self,
        ctx: &SessionContext,
        statement: &Statement,
    ) -> Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        let state = ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let ast = state
            .sql_to_statement(&statement.sql, &dialect)
            .map_err(df_error)?;
        refuse_non_queries(&ast)?;
        let functions = table_functions(&ast)?;
        for reference in state.resolve_table_references(&ast).map_err(df_error)? {
            let qualified = reference.schema().is_some() || reference.catalog().is_some();
            if !qualified && functions.iter().any(|f| f == reference.table()) {
                continue;
            }
            check_qualifiers(&reference)?;
            self.schema.check(reference.table())?;
        }
        let plan = state.statement_to_plan(ast).await.map_err(df_error)?;
        // The enforcement: DataFusion refuses any plan that writes or
        // changes the session, whatever the SQL looked like.
        read_only_options().verify_plan(&plan).map_err(|e| {
            Error::refused(
                codes::FILES_READ_ONLY,
                format!("the files datasource is read-only: {e}"),
            )
        })?;
        let plan = bind(plan, &statement.params)?;
        state.create_physical_plan(&plan).await.map_err(df_error)
    }
}

fn read_only_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Names a statement that is not a query, for a message a user recognises.
/// The plan check above is what enforces read-only; this only explains.
fn refuse_non_queries(statement: &DfStatement) -> Result<()> {
    let what = match statement {
        DfStatement::Statement(inner) => return refuse_non_query(inner),
        DfStatement::Explain(explain) => return refuse_non_queries(&explain.statement),
        DfStatement::CreateExternalTable(_) => "CREATE EXTERNAL TABLE".to_owned(),
        DfStatement::CopyTo(_) => "COPY".to_owned(),
        DfStatement::Reset(_) => "RESET".to_owned(),
    };
    Err(read_only(&what))
}

fn refuse_non_query(statement: &SqlStatement) -> Result<()> {
    match statement {
        SqlStatement::Query(_) | SqlStatement::ExplainTable { .. } => Ok(()),
        SqlStatement::Explain { statement, .. } => refuse_non_query(statement),
        other => {
            let text = other.to_string();
            let what: Vec<&str> = text
                .split_whitespace()
                .take_while(|w| w.chars().all(|c| c.is_ascii_uppercase()))
                .take(2)
                .collect();
            Err(read_only(&what.join(" ")))
        }
    }
}

fn read_only(what: &str) -> Error {
    let what = if what.is_empty() {
        "this statement"
    } else {
        what
    };
    Error::refused(
        codes::FILES_READ_ONLY,
        format!("the files datasource is read-only: {what} is not allowed; only queries can run"),
    )
}

fn check_qualifiers(reference: &TableReference) -> Result<()> {
    if let Some(catalog) = reference.catalog()
        && catalog != "datafusion"
    {
        return Err(Error::not_found("catalog", catalog));
    }
    match reference.schema() {
        None | Some("public") => Ok(()),
        Some(schema) => Err(Error::NotFound {
            what: "schema",
            name: schema.to_owned(),
            suggestion: "; the files datasource has one schema, public".into(),
        }),
    }
}

/// Table functions (`read_csv('/etc/passwd')`) could name any path: only
/// the built-in generators are allowed. Returns the ones used.
fn table_functions(statement: &DfStatement) -> Result<Vec<String>> {
    const ALLOWED: &[&str] = &["generate_series", "range"];
    #[derive(Default)]
    struct Finder {
        used: Vec<String>,
        refused: Option<String>,
    }
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            let name = match factor {
                TableFactor::Table {
                    name,
                    args: Some(_),
                    ..
                } => name.to_string(),
                TableFactor::Function { name, .. } => name.to_string(),
                _ => return ControlFlow::Continue(()),
            };
            if ALLOWED.contains(&name.to_ascii_lowercase().as_str()) {
                self.used.push(name);
                ControlFlow::Continue(())
            } else {
                self.refused = Some(name);
                ControlFlow::Break(())
            }
        }
    }
    let mut finder = Finder::default();
    match statement {
        DfStatement::Statement(inner) => {
            let _ = inner.visit(&mut finder);
        }
        DfStatement::Explain(explain) => return table_functions(&explain.statement),
        _ => {}
    }
    match finder.refused {
        Some(name) => Err(Error::refused(
            codes::FILES_TABLE_FUNCTION,
            format!(
                "table function {name} is not available: the files datasource reads only the tables under its root (list them with `loupe schema`)"
            ),
        )),
        None => Ok(finder.used),
    }
}

/// Binds `params` to `$1…$n` (a statement's values, or a row filter's). A
/// text value meets a placeholder whose type DataFusion inferred from
/// context (`id = $1`) as that type, with a parameter error when it does
/// not convert.
fn bind(plan: LogicalPlan, params: &[BoundParam]) -> Result<LogicalPlan> {
    if params.is_empty() {
        return Ok(plan);
    }
    let types = plan.get_parameter_types().map_err(df_error)?;
    let mut values = Vec::with_capacity(params.len());
    for (i, param) in params.iter().enumerate() {
        let scalar = scalar(&param.value)?;
        let target = types.get(&format!("${}", i + 1)).cloned().flatten();
        let value = match target {
            Some(t) if matches!(param.value, Value::Text(_)) && scalar.data_type() != t => {
                scalar.cast_to(&t).map_err(|_| ParameterError::WrongType {
                    name: param.name.clone(),
                    expected: "a value of the column's type",
                    got: format!("{:?}, which is not a valid {t}", param.value.to_string()),
                })?
            }
            _ => scalar,
        };
        values.push(value);
    }
    plan.with_param_values(values).map_err(df_error)
}

fn scalar(value: &Value) -> Result<ScalarValue> {
    Ok(match value {
        Value::Text(s) => ScalarValue::Utf8(Some(s.clone())),
        Value::Integer(i) => ScalarValue::Int64(Some(*i)),
        Value::Number(n) => ScalarValue::Float64(Some(*n)),
        Value::Boolean(b) => ScalarValue::Boolean(Some(*b)),
        Value::Date(d) => {
            let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
                .ok_or_else(|| Error::internal("epoch"))?;
            let days = i32::try_from((*d - epoch).num_days())
                .map_err(|_| Error::internal(format!("date {d} out of range")))?;
            ScalarValue::Date32(Some(days))
        }
        Value::Datetime(t) => {
            ScalarValue::TimestampMicrosecond(Some(t.timestamp_micros()), Some("UTC".into()))
        }
    })
}

/// Turns a DataFusion error into Loupe's: our own errors (raised by the
/// catalog or the confined store) come back unchanged; the rest are query
/// errors carrying DataFusion's message.
pub(crate) fn df_error(e: DataFusionError) -> Error {
    match e {
        DataFusionError::External(inner) => external(inner),
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            df_error(*inner)
        }
        DataFusionError::Shared(shared) => match Arc::try_unwrap(shared) {
            Ok(inner) => df_error(inner),
            Err(shared) => Error::query(QueryError::new(shared.to_string())),
        },
        DataFusionError::ArrowError(arrow, _) => match *arrow {
            ArrowError::ExternalError(inner) => external(inner),
            other => Error::query(QueryError::new(other.to_string())),
        },
        DataFusionError::ObjectStore(os) => object_store_error(*os),
        DataFusionError::ResourcesExhausted(message) => Error::query(QueryError {
            message: format!("the query needs more memory than the datasource allows: {message}"),
            hint: Some("raise memory_limit_mb, or filter or aggregate earlier".into()),
            ..QueryError::default()
        }),
        other => Error::query(QueryError::new(other.to_string())),
    }
}

fn external(inner: Box<dyn std::error::Error + Send + Sync>) -> Error {
    match inner.downcast::<Error>() {
        Ok(ours) => *ours,
        Err(other) => match other.downcast::<DataFusionError>() {
            Ok(df) => df_error(*df),
            Err(other) => match other.downcast::<object_store::Error>() {
                Ok(os) => object_store_error(*os),
                Err(other) => Error::query(QueryError::new(other.to_string())),
            },
        },
    }
}

fn object_store_error(e: object_store::Error) -> Error {
    match e {
        object_store::Error::PermissionDenied { path, .. } => Error::refused(
            codes::FILES_OUTSIDE_ROOT,
            format!("{path} resolves outside the datasource's root and cannot be read"),
        ),
        object_store::Error::NotSupported { .. } => {
            Error::refused(codes::FILES_READ_ONLY, "the files datasource is read-only")
        }
        other => Error::Unavailable {
            code: codes::FILES_UNREADABLE,
            message: "a file of the datasource could not be read".into(),
            source: Some(Box::new(other)),
        },
    }
}

#[async_trait]
impl Datasource for FilesDatasource {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn dialect(&self) -> Dialect {
        Dialect::DataFusion
    }

    async fn execute(&self, statement: &Statement, limits: &Limits) -> Result<SendableBatchStream> {
        statement.expect_dialect(Dialect::DataFusion)?;
        let restrictions = &statement.restrictions;
        restrictions.require_supported(KIND, false, true)?;
        let deadline = limits.deadline();
        let (ctx, plan) = limits
            .within(deadline, async {
                let state = if restrictions.row_filters.is_empty() {
                    self.state.clone()
                } else {
                    row_filters::restricted_state(
                        &self.state,
                        &self.schema,
                        &restrictions.row_filters,
                    )
                    .await?
                };
                let ctx = SessionContext::new_with_state(state);
                let plan = self.plan(&ctx, statement).await?;
                Ok((ctx, plan))
            })
            .await?;
        let schema = plan.schema();
        let task = ctx.task_ctx();
        // Executing a plan can start background tasks; do it on first poll
        // so that nothing runs before the caller asks for rows.
        let batches = futures::stream::once(async move { execute_stream(plan, task) })
            .map_err(df_error)
            .map_ok(|stream| stream.map_err(df_error))
            .try_flatten()
            .boxed();
        let stream = StreamAdapter::boxed(schema, batches);
        Ok(LimitedStream::boxed(stream, limits, deadline))
    }

    async fn introspect(&self) -> Result<CatalogInfo> {
        let tables = catalog::discover(self.schema.root())?;
        let mut infos = Vec::with_capacity(tables.len());
        for entry in tables.values() {
            if let Some(reason) = &entry.refused {
                tracing::info!(table = %entry.name, %reason, "files datasource: entry refused");
                continue;
            }
            let table = self.schema.open(&entry.name).await?;
            let format = entry.format.as_ref().map_or("", |(f, _)| f.name());
            let columns = table
                .schema()
                .fields()
                .iter()
                .map(|f| ColumnInfo {
                    name: f.name().clone(),
                    data_type: f.data_type().clone(),
                    source_type: format!("{format}: {}", f.data_type()),
                    nullable: f.is_nullable(),
                })
                .collect();
            let suffix = if entry.is_dir { "/" } else { "" };
            infos.push(TableInfo {
                name: entry.name.clone(),
                kind: TableKind::File,
                columns,
                description: Some(format!("{}{suffix} ({format})", entry.relative.display())),
            });
        }
        Ok(CatalogInfo {
            schemas: vec![SchemaInfo {
                name: "public".into(),
                tables: infos,
            }],
        })
    }

    async fn ping(&self) -> Result<()> {
        catalog::discover(self.schema.root()).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_listed_option_is_read() {
        let root = tempfile::tempdir().unwrap();
        let mut required = DatasourceOptions::new();
        required.insert("root".into(), root.path().to_string_lossy().into());
        crate::option_specs::checks::every_spec_is_read(KIND, OPTIONS, &required, |options| {
            FilesFactory::default().build(options)
        });
    }

    /// The read-only guarantee does not rest on the statement check in
    /// front: DataFusion's own plan verification refuses every write.
    #[tokio::test]
    async fn plan_verification_refuses_writes_on_its_own() {
        let ctx = SessionContext::new();
        ctx.sql("create table t (a int)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        for sql in [
            "insert into t values (1)",
            "delete from t",
            "copy (select 1) to '/tmp/never.csv'",
            "create table u as select 1",
            "set datafusion.execution.batch_size = 1",
        ] {
            let plan = ctx.state().create_logical_plan(sql).await.unwrap();
            assert!(read_only_options().verify_plan(&plan).is_err(), "{sql}");
        }
        let plan = ctx
            .state()
            .create_logical_plan("select * from t")
            .await
            .unwrap();
        assert!(read_only_options().verify_plan(&plan).is_ok());
    }
}
