//! Row filters of a files datasource: every reference to a filtered table
//! sees only the rows that pass its predicate.
//!
//! For a restricted statement the session's catalog is replaced by one in
//! which each filtered name resolves to a [`FilteredTable`]; the
//! unfiltered table has no name there, so a join, a subquery, a CTE, a
//! self-join, a qualified or quoted spelling all reach the same filtered
//! rows. A row is visible when it passes any of its table's filters (each
//! comes from another grant).
//!
//! The filter is a barrier: [`RowFilterExec`] runs the filtered scan as a
//! leaf whose inside the query's optimizer cannot see. The query's own
//! predicates are not pushed below it, so they are never evaluated on a
//! hidden row (an error such as a division by zero would otherwise tell
//! that the row exists), and neither statistics nor `EXPLAIN ANALYZE`
//! counts show hidden rows.
//!
//! It must not let any name reach the unfiltered table, and must refuse a
//! filter it cannot apply rather than drop it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    SchemaProvider, Session, TableProvider,
};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SessionState, SessionStateBuilder, TaskContext};
use datafusion::logical_expr::utils::disjunction;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, TableType};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use loupe_core::{Error, Result, RowFilter, codes};

use super::catalog::{self, RootSchema};

/// A session whose catalog is `base`'s with every table of `filters`
/// replaced by its filtered form.
///
/// # Errors
/// `datasource.restrictions_unsupported`, naming the table and the
/// problem, when a filter's table does not exist or its predicate does
/// not parse, names a column the table lacks, uses something other than
/// the row's own values, is not boolean, or does not match its values.
pub(super) async fn restricted_state(
    base: &SessionState,
    root: &Arc<RootSchema>,
    filters: &[RowFilter],
) -> Result<SessionState> {
    let mut by_table: HashMap<String, Vec<&RowFilter>> = HashMap::new();
    let tables = catalog::discover(root.root())?;
    for filter in filters {
        let name = table_name(&filter.table, |n| tables.contains_key(n));
        by_table.entry(name.to_owned()).or_default().push(filter);
    }
    let mut filtered: HashMap<String, Arc<dyn TableProvider>> = HashMap::new();
    for (name, filters) in by_table {
        let inner = root
            .open(&name)
            .await
            .map_err(|e| refused(&name, format!("{e}")))?;
        let table = FilteredTable::new(base, &name, inner, &filters)?;
        filtered.insert(name, Arc::new(table));
    }
    let schema = Arc::new(RestrictedSchema {
        root: Arc::clone(root),
        filtered,
    });
    let catalog = MemoryCatalogProvider::new();
    catalog
        .register_schema("public", schema)
        .map_err(|e| Error::internal_from("restricted files catalog", e))?;
    let catalogs = MemoryCatalogProviderList::new();
    catalogs.register_catalog("datafusion".to_owned(), Arc::new(catalog));
    Ok(SessionStateBuilder::new_from_existing(base.clone())
        .with_catalog_list(Arc::new(catalogs))
        .build())
}

/// The catalog's name for a filter's `table`: the name itself when a table
/// has it, else the name without a `public.` or `datafusion.public.`
/// qualifier when that is one. Table names are file names, used as they
/// are: no case folding, no quotes.
fn table_name(table: &str, exists: impl Fn(&str) -> bool) -> &str {
    [
        Some(table),
        table.strip_prefix("datafusion.public."),
        table.strip_prefix("public."),
    ]
    .into_iter()
    .flatten()
    .find(|name| exists(name))
    .unwrap_or(table)
}

/// A row filter that cannot be applied: the statement must not run.
fn refused(table: &str, problem: impl fmt::Display) -> Error {
    Error::refused(
        codes::DATASOURCE_RESTRICTIONS_UNSUPPORTED,
        format!(
            "the row filter on table {table:?} cannot be applied, so the statement does not run: \
             {problem}; an admin can correct the grant"
        ),
    )
}

/// The `public` schema of a restricted statement: filtered tables by
/// name, the rest as the root has them.
#[derive(Debug)]
struct RestrictedSchema {
    root: Arc<RootSchema>,
    filtered: HashMap<String, Arc<dyn TableProvider>>,
}

#[async_trait]
impl SchemaProvider for RestrictedSchema {
    fn table_names(&self) -> Vec<String> {
        self.root.table_names()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        match self.filtered.get(name) {
            Some(table) => Ok(Some(Arc::clone(table))),
            None => self.root.table(name).await,
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.filtered.contains_key(name) || self.root.table_exist(name)
    }
}

/// A table as a restricted statement sees it: the rows of `inner` that
/// pass the predicate of `plan` (`Filter(predicate, TableScan(inner))`).
///
/// No filter of the query is pushed into it (the trait's default answer,
/// `Unsupported`), so the query's predicates run above the barrier.
#[derive(Debug)]
struct FilteredTable {
    name: String,
    inner: Arc<dyn TableProvider>,
    plan: LogicalPlan,
}

impl FilteredTable {
    /// Binds and checks each filter's predicate against `inner`'s columns;
    /// a row passes when any predicate holds.
    fn new(
        state: &SessionState,
        name: &str,
        inner: Arc<dyn TableProvider>,
        filters: &[&RowFilter],
    ) -> Result<Self> {
        let scan = LogicalPlanBuilder::scan(
            TableReference::bare(name),
            provider_as_source(Arc::clone(&inner)),
            None,
        )
        .and_then(LogicalPlanBuilder::build)
        .map_err(|e| Error::internal_from("scan of a filtered table", e))?;
        let mut predicates = Vec::with_capacity(filters.len());
        for filter in filters {
            predicates.push(predicate(state, &scan, filter).map_err(|p| refused(name, p))?);
        }
        let plan = disjunction(predicates)
            .ok_or_else(|| Error::internal(format!("no row filter for table {name:?}")))
            .and_then(|any| {
                LogicalPlanBuilder::from(scan)
                    .filter(any)
                    .and_then(LogicalPlanBuilder::build)
                    .map_err(|e| refused(name, e.strip_backtrace()))
            })?;
        Ok(Self {
            name: name.to_owned(),
            inner,
            plan,
        })
    }
}

/// The predicate of `filter` over `scan`'s row, with its values bound, or
/// what is wrong with it.
fn predicate(
    state: &SessionState,
    scan: &LogicalPlan,
    filter: &RowFilter,
) -> std::result::Result<Expr, String> {
    let text = &filter.predicate;
    let dialect = state.config().options().sql_parser.dialect;
    let parsed = state.sql_to_expr_with_alias(text, &dialect).map_err(|e| {
        format!(
            "the predicate {text:?} is not a SQL expression: {}",
            e.strip_backtrace()
        )
    })?;
    let schema = scan.schema();
    let expr = state
        .create_logical_expr_from_sql_expr(parsed, schema)
        .map_err(|e| {
            let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            format!(
                "the predicate {text:?} does not fit the table's columns ({}): {}",
                columns.join(", "),
                e.strip_backtrace()
            )
        })?
        .unalias();
    if let Some(what) = disallowed(&expr) {
        return Err(format!(
            "the predicate {text:?} uses {what}; a row filter may use only the row's own columns, \
             literals, placeholders and scalar functions"
        ));
    }
    // A placeholder's type may be known only once bound: checked again
    // below.
    if let Ok(ty) = expr.get_type(schema)
        && !matches!(ty, DataType::Boolean | DataType::Null)
    {
        return Err(not_boolean(text, &ty));
    }
    // Bound as the one column of a projection, which, unlike a filter,
    // takes a value of any type: the type is checked once it is known.
    let plan = LogicalPlanBuilder::from(scan.clone())
        .project([expr])
        .and_then(LogicalPlanBuilder::build)
        .map_err(|e| {
            format!(
                "the predicate {text:?} does not plan: {}",
                e.strip_backtrace()
            )
        })?;
    check_placeholders(&plan, filter)?;
    let bound = super::bind(plan, &filter.params)
        .map_err(|e| format!("a value of the predicate {text:?} does not fit: {e}"))?;
    let LogicalPlan::Projection(bound) = bound else {
        return Err(format!(
            "the predicate {text:?} did not bind to one expression"
        ));
    };
    let Some(predicate) = bound.expr.into_iter().next() else {
        return Err(format!(
            "the predicate {text:?} did not bind to one expression"
        ));
    };
    let predicate = predicate.unalias();
    match predicate.get_type(schema) {
        Ok(DataType::Boolean) => Ok(predicate),
        Ok(other) => Err(not_boolean(text, &other)),
        Err(e) => Err(format!(
            "the predicate {text:?} has no type: {}",
            e.strip_backtrace()
        )),
    }
}

/// A predicate of another type than boolean: which one.
fn not_boolean(text: &str, ty: &DataType) -> String {
    format!("the predicate {text:?} is of type {ty}, not boolean")
}

/// What in `expr` a row filter may not use: anything that reads other
/// rows or tables (subqueries, aggregates, window functions) or the
/// session (variables). Allowed kinds are listed, so an unknown kind is
/// refused.
fn disallowed(expr: &Expr) -> Option<&'static str> {
    let mut found = None;
    let _ = expr.apply(|e| {
        let what = match e {
            Expr::Column(_)
            | Expr::Literal(..)
            | Expr::BinaryExpr(_)
            | Expr::Like(_)
            | Expr::SimilarTo(_)
            | Expr::Not(_)
            | Expr::IsNotNull(_)
            | Expr::IsNull(_)
            | Expr::IsTrue(_)
            | Expr::IsFalse(_)
            | Expr::IsUnknown(_)
            | Expr::IsNotTrue(_)
            | Expr::IsNotFalse(_)
            | Expr::IsNotUnknown(_)
            | Expr::Negative(_)
            | Expr::Between(_)
            | Expr::Case(_)
            | Expr::Cast(_)
            | Expr::TryCast(_)
            | Expr::ScalarFunction(_)
            | Expr::InList(_)
            | Expr::Placeholder(_)
            | Expr::Alias(_) => return Ok(TreeNodeRecursion::Continue),
            Expr::AggregateFunction(_) => "an aggregate function",
            Expr::WindowFunction(_) => "a window function",
            Expr::Exists(_)
            | Expr::InSubquery(_)
            | Expr::ScalarSubquery(_)
            | Expr::SetComparison(_) => "a subquery",
            Expr::ScalarVariable(..) => "a session variable",
            _ => "an expression a row filter does not take",
        };
        found = Some(what);
        Ok::<_, DataFusionError>(TreeNodeRecursion::Stop)
    });
    found
}

/// The predicate's placeholders must be `$1` to `$n` for `n` values, each
/// used: a value without a placeholder, or the reverse, is a mistake in
/// the grant.
fn check_placeholders(plan: &LogicalPlan, filter: &RowFilter) -> std::result::Result<(), String> {
    let text = &filter.predicate;
    let count = filter.params.len();
    let types = plan.get_parameter_types().map_err(|e| {
        format!(
            "the predicate {text:?} has unreadable placeholders: {}",
            e.strip_backtrace()
        )
    })?;
    if let Some(unknown) = types.keys().find(|id| {
        !id.strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| (1..=count).contains(&n))
    }) {
        return Err(format!(
            "the predicate {text:?} uses placeholder {unknown}, but the filter has {count} value(s)"
        ));
    }
    if let Some(unused) = (1..=count).find(|n| !types.contains_key(&format!("${n}"))) {
        return Err(format!(
            "the filter has {count} value(s), but the predicate {text:?} does not use ${unused}"
        ));
    }
    Ok(())
}

#[async_trait]
impl TableProvider for FilteredTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        // The columns are chosen after the filter, which may read others;
        // the limit counts rows that passed it.
        let mut plan = LogicalPlanBuilder::from(self.plan.clone());
        if let Some(projection) = projection {
            let schema = self.plan.schema();
            let columns = projection
                .iter()
                .map(|&i| {
                    let (qualifier, field) = schema.qualified_field(i);
                    Expr::Column(Column::new(qualifier.cloned(), field.name()))
                })
                .collect::<Vec<_>>();
            plan = plan.project(columns)?;
        }
        if limit.is_some() {
            plan = plan.limit(0, limit)?;
        }
        let inner = state.create_physical_plan(&plan.build()?).await?;
        Ok(Arc::new(RowFilterExec::new(self.name.clone(), inner)))
    }
}

/// The filtered scan of one table, as a leaf: the plan above sees its rows
/// but not its inside, so no optimization moves a predicate of the query
/// below the filter, and no statistic or metric of the unfiltered rows
/// shows through.
#[derive(Debug)]
struct RowFilterExec {
    table: String,
    inner: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl RowFilterExec {
    fn new(table: String, inner: Arc<dyn ExecutionPlan>) -> Self {
        let properties = Arc::clone(inner.properties());
        Self {
            table,
            inner,
            properties,
        }
    }
}

impl DisplayAs for RowFilterExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, "RowFilterExec: table={}", self.table)
            }
            DisplayFormatType::TreeRender => write!(f, "table={}", self.table),
        }
    }
}

impl ExecutionPlan for RowFilterExec {
    fn name(&self) -> &str {
        "RowFilterExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(format!(
                "RowFilterExec of {:?} has no children to replace",
                self.table
            )))
        }
    }

    /// A recursive query runs its plan again: the inside starts afresh too.
    fn reset_state(self: Arc<Self>) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self {
            table: self.table.clone(),
            inner: reset_plan_states(Arc::clone(&self.inner))?,
            properties: Arc::clone(&self.properties),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        self.inner.execute(partition, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_names_its_table_as_the_catalog_does() {
        let tables = ["sales", "Sales", "public.x", "sales.2024"];
        let exists = |n: &str| tables.contains(&n);
        assert_eq!(table_name("sales", exists), "sales");
        assert_eq!(table_name("Sales", exists), "Sales");
        assert_eq!(table_name("public.sales", exists), "sales");
        assert_eq!(table_name("datafusion.public.Sales", exists), "Sales");
        assert_eq!(table_name("public.x", exists), "public.x", "a name first");
        assert_eq!(table_name("sales.2024", exists), "sales.2024");
        assert_eq!(
            table_name("SALES", exists),
            "SALES",
            "no case folding: not found, so refused"
        );
    }
}
