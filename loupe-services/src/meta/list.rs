//! Lists: limit and offset with a total, sorting by a whitelist of fields,
//! and filters. Unknown sort fields and filters are errors, not ignored.
//! A [`ListSpec`] also says where its rows come from, so every list of an
//! organization's objects reads its page the same way ([`ListSpec::page`]).
//!
//! Queries are assembled from fixed fragments with `$n` placeholders; the
//! only values that reach SQL text are table and column names from the
//! specs.

use loupe_core::codes;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe};

use loupe_core::{Error, FieldError, Result};

use super::{MetadataStore, TagTable, col, db_error};
use crate::limits::FILTER_VALUE;

/// Rows per page when the caller does not say.
pub const DEFAULT_LIMIT: u32 = 50;
/// The most rows a page may have.
pub const MAX_LIMIT: u32 = 200;
/// The most rows a list may skip: far past any real list, and small
/// enough for every database's integer types.
pub const MAX_OFFSET: u64 = 1_000_000_000_000;

/// A page request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ListRequest {
    /// Rows per page (default 50, at most 200).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Rows to skip.
    #[serde(default)]
    pub offset: Option<u64>,
    /// A field to sort by; `-field` sorts descending.
    #[serde(default)]
    pub sort: Option<String>,
    /// Filters by name, such as `owner`, `tag`, `status`, `q` (text search
    /// on the name), `created_after`, `updated_before` (RFC 3339 times).
    #[serde(default)]
    pub filters: BTreeMap<String, String>,
}

impl ListRequest {
    /// The same request with one more filter.
    pub fn filter(mut self, name: &str, value: impl Into<String>) -> Self {
        self.filters.insert(name.to_owned(), value.into());
        self
    }

    /// The same request sorted by `sort`.
    pub fn sorted(mut self, sort: &str) -> Self {
        self.sort = Some(sort.to_owned());
        self
    }

    /// The same request with a page size and offset.
    pub fn page(mut self, limit: u32, offset: u64) -> Self {
        self.limit = Some(limit);
        self.offset = Some(offset);
        self
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListPage<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Rows in the whole list.
    pub total: u64,
    /// The page size used.
    pub limit: u32,
    /// The offset used.
    pub offset: u64,
}

impl<T> ListPage<T> {
    /// The same page with `items` in place of its rows.
    pub(crate) fn with_items<U>(self, items: Vec<U>) -> ListPage<U> {
        ListPage {
            items,
            total: self.total,
            limit: self.limit,
            offset: self.offset,
        }
    }

    /// The same page with each row mapped by `f`.
    pub(crate) fn try_map<U>(self, f: impl FnMut(&T) -> Result<U>) -> Result<ListPage<U>> {
        let items = self.items.iter().map(f).collect::<Result<_>>()?;
        Ok(self.with_items(items))
    }
}

/// How a filter applies.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Filter {
    /// `column = value`.
    Equals(&'static str),
    /// `column >= time`.
    After(&'static str),
    /// `column < time`.
    Before(&'static str),
    /// Case-insensitive substring of `column`.
    Contains(&'static str),
    /// A tag in the tag table whose key column points at the row's id.
    Tag(TagTable),
    /// `column` is 1 for `true`, 0 for `false`.
    Flag(&'static str),
}

/// What a resource's list accepts: the fields it sorts by, its default
/// sort and its filters. Each resource's is public in [`crate::lists`], so
/// hosts document exactly what the service accepts.
#[derive(Debug)]
pub struct ListSpec {
    /// What the rows are selected from, the table with its alias, and
    /// whatever it is joined with (`queries q`).
    pub(crate) from: &'static str,
    /// The table's alias in the query: its rows are selected, their
    /// `org_id` says whose they are, their `id` ends every sort.
    pub(crate) alias: &'static str,
    /// Sortable fields, each a column of the table (`<alias>.<field>`).
    pub(crate) sorts: &'static [&'static str],
    /// The sort when none is asked for.
    pub(crate) default_sort: &'static str,
    /// Filters: name and how it applies, besides the times below.
    pub(crate) filters: &'static [(&'static str, Filter)],
    /// The column of the time a row was created, when the list filters by
    /// it: `created_after` and `created_before`.
    pub(crate) created: Option<&'static str>,
    /// The column of the time a row last changed, when the list filters
    /// by it: `updated_after` and `updated_before`.
    pub(crate) updated: Option<&'static str>,
}

impl ListSpec {
    /// The fields it sorts by (each also descending, as `-field`).
    pub fn sort_fields(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.sorts.iter().copied()
    }

    /// Every value `sort` accepts: each field, then the same descending.
    pub fn sort_values(&self) -> impl Iterator<Item = String> + '_ {
        self.sort_fields()
            .flat_map(|field| [field.to_owned(), format!("-{field}")])
    }

    /// The sort when the request names none, such as `-updated_at`.
    pub fn default_sort(&self) -> &'static str {
        self.default_sort
    }

    /// The names of its filters, such as `owner`, `q`, `created_after`.
    pub fn filter_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.all_filters().map(|(name, _)| name)
    }

    /// Its filters, the time filters last, each list naming them alike.
    fn all_filters(&self) -> impl Iterator<Item = (&'static str, Filter)> + '_ {
        let times = [
            ("created_after", self.created.map(Filter::After)),
            ("created_before", self.created.map(Filter::Before)),
            ("updated_after", self.updated.map(Filter::After)),
            ("updated_before", self.updated.map(Filter::Before)),
        ];
        let times = times
            .into_iter()
            .filter_map(|(name, filter)| Some((name, filter?)));
        self.filters.iter().copied().chain(times)
    }

    /// The rows of organization `org_id`, `FROM … WHERE <alias>.org_id =
    /// $1`, to narrow further and then read a [`page`](Self::page) of.
    pub(crate) fn org_rows(&self, org_id: &str) -> SqlBuilder {
        let mut rows = SqlBuilder::new(&format!(
            " FROM {} WHERE {}.org_id = ",
            self.from, self.alias
        ));
        rows.bind_text(org_id);
        rows
    }

    /// The page of `rows` (a `FROM … WHERE …` fragment) that `request`
    /// asks for, filtered and sorted as it says, with the total: one
    /// statement to count and one to read.
    pub(crate) async fn page(
        &self,
        store: &MetadataStore,
        mut rows: SqlBuilder,
        request: &ListRequest,
    ) -> Result<ListPage<AnyRow>> {
        let paging = self.apply(&mut rows, request)?;
        let total = count(store, &rows).await?;
        let mut select = rows.prefixed(&format!("SELECT {}.*", self.alias));
        select.page(&paging);
        let items = select
            .query()
            .fetch_all(store.pool())
            .await
            .map_err(db_error)?;
        Ok(ListPage {
            items,
            total,
            limit: paging.limit,
            offset: paging.offset,
        })
    }

    /// Adds the request's filters to `sql` (which ends in a WHERE clause)
    /// and returns the ORDER BY, LIMIT and OFFSET to append.
    pub(crate) fn apply(&self, sql: &mut SqlBuilder, request: &ListRequest) -> Result<Paging> {
        let mut errors = Vec::new();
        let limit = request.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            errors.push(FieldError::new(
                "limit",
                codes::field::OUT_OF_RANGE,
                format!("limit must be between 1 and {MAX_LIMIT}, got {limit}"),
            ));
        }
        let offset = request.offset.unwrap_or(0);
        if offset > MAX_OFFSET {
            errors.push(FieldError::new(
                "offset",
                codes::field::OUT_OF_RANGE,
                format!("offset must be at most {MAX_OFFSET}, got {offset}"),
            ));
        }
        let sort = request.sort.as_deref().unwrap_or(self.default_sort);
        let (descending, field) = match sort.strip_prefix('-') {
            Some(f) => (true, f),
            None => (false, sort),
        };
        let column = if self.sorts.contains(&field) {
            Some(format!("{}.{field}", self.alias))
        } else {
            errors.push(FieldError::new(
                "sort",
                codes::field::UNKNOWN_FIELD,
                format!(
                    "cannot sort by {field:?}; sort by one of: {}",
                    self.sorts.join(", ")
                ),
            ));
            None
        };
        for (name, value) in &request.filters {
            let Some((_, filter)) = self.all_filters().find(|(n, _)| n == name) else {
                let names: Vec<&str> = self.filter_names().collect();
                errors.push(FieldError::new(
                    name.clone(),
                    codes::field::UNKNOWN_FILTER,
                    format!(
                        "unknown filter {name:?}; this list filters by: {}",
                        names.join(", ")
                    ),
                ));
                continue;
            };
            // Every filter value has one bound, whatever the filter: no
            // id, tag or search text is longer.
            if value.chars().count() > FILTER_VALUE {
                errors.push(FieldError::new(
                    name.clone(),
                    codes::field::TOO_LONG,
                    format!("a filter value is at most {FILTER_VALUE} characters"),
                ));
                continue;
            }
            if let Err(e) = self.add_filter(sql, name, filter, value) {
                errors.push(e);
            }
        }
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        let direction = if descending { "DESC" } else { "ASC" };
        // A final id sort makes pages stable when the sort field ties.
        let order = format!(
            " ORDER BY {} {direction}, {}.id {direction}",
            column.as_deref().unwrap_or("id"),
            self.alias
        );
        Ok(Paging {
            order,
            limit,
            offset,
        })
    }

    fn add_filter(
        &self,
        sql: &mut SqlBuilder,
        name: &str,
        filter: Filter,
        value: &str,
    ) -> std::result::Result<(), FieldError> {
        match filter {
            Filter::Equals(column) => {
                sql.push(&format!(" AND {column} = "));
                sql.bind_text(value);
            }
            Filter::After(column) | Filter::Before(column) => {
                let micros = chrono::DateTime::parse_from_rfc3339(value)
                    .map_err(|_| {
                        FieldError::new(
                            name,
                            codes::field::INVALID_TIME,
                            format!("{value:?} is not a time; write it like 2024-05-01T00:00:00Z"),
                        )
                    })?
                    .timestamp_micros();
                let op = if matches!(filter, Filter::After(_)) {
                    ">="
                } else {
                    "<"
                };
                sql.push(&format!(" AND {column} {op} "));
                sql.bind_int(micros);
            }
            Filter::Contains(column) => {
                let escaped = value
                    .to_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                sql.push(&format!(" AND lower({column}) LIKE "));
                sql.bind_text(format!("%{escaped}%"));
                sql.push(" ESCAPE '\\'");
            }
            Filter::Tag(TagTable { table, key }) => {
                sql.push(&format!(
                    " AND EXISTS (SELECT 1 FROM {table} t WHERE t.{key} = {}.id AND t.tag = ",
                    self.alias
                ));
                sql.bind_text(value);
                sql.push(")");
            }
            Filter::Flag(column) => {
                let flag = match value {
                    "true" => 1,
                    "false" => 0,
                    _ => {
                        return Err(FieldError::new(
                            name,
                            codes::field::INVALID_FLAG,
                            "write true or false",
                        ));
                    }
                };
                sql.push(&format!(" AND {column} = "));
                sql.bind_int(flag);
            }
        }
        Ok(())
    }
}

/// `SELECT count(*)` over a `FROM … WHERE …` fragment.
async fn count(store: &MetadataStore, rows: &SqlBuilder) -> Result<u64> {
    let row = rows
        .prefixed("SELECT count(*) AS n")
        .query()
        .fetch_one(store.pool())
        .await
        .map_err(db_error)?;
    let n: i64 = col(&row, "n")?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Sorting and paging for one list query.
#[derive(Debug)]
pub(crate) struct Paging {
    pub(crate) order: String,
    pub(crate) limit: u32,
    pub(crate) offset: u64,
}

#[derive(Debug, Clone)]
enum Arg {
    Text(String),
    Int(i64),
}

/// SQL text with `$n` placeholders and the values that go with them.
#[derive(Debug, Clone, Default)]
pub(crate) struct SqlBuilder {
    sql: String,
    args: Vec<Arg>,
}

impl SqlBuilder {
    pub(crate) fn new(sql: &str) -> Self {
        Self {
            sql: sql.to_owned(),
            args: Vec::new(),
        }
    }

    /// Appends fixed SQL text (never a value).
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    pub(crate) fn bind_text(&mut self, value: impl Into<String>) -> &mut Self {
        self.args.push(Arg::Text(value.into()));
        self.sql.push_str(&format!("${}", self.args.len()));
        self
    }

    pub(crate) fn bind_int(&mut self, value: i64) -> &mut Self {
        self.args.push(Arg::Int(value));
        self.sql.push_str(&format!("${}", self.args.len()));
        self
    }

    /// Appends `ORDER BY … LIMIT … OFFSET …`.
    pub(crate) fn page(&mut self, paging: &Paging) -> &mut Self {
        self.sql.push_str(&paging.order);
        self.sql.push_str(" LIMIT ");
        self.bind_int(i64::from(paging.limit));
        self.sql.push_str(" OFFSET ");
        self.bind_int(i64::try_from(paging.offset).unwrap_or(i64::MAX));
        self
    }

    /// A copy with `prefix` in front (a SELECT list before `FROM … WHERE …`);
    /// the prefix must hold no placeholders.
    pub(crate) fn prefixed(&self, prefix: &str) -> Self {
        Self {
            sql: format!("{prefix}{}", self.sql),
            args: self.args.clone(),
        }
    }

    /// The query, with every value bound.
    pub(crate) fn query(&self) -> Query<'static, Any, AnyArguments> {
        // The text is assembled only from fixed fragments and whitelisted
        // column names; values are bound.
        let mut q = sqlx::query(AssertSqlSafe(self.sql.clone()));
        for arg in &self.args {
            q = match arg {
                Arg::Text(s) => q.bind(s.clone()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: ListSpec = ListSpec {
        from: "queries q",
        alias: "q",
        sorts: &["name", "updated_at"],
        default_sort: "-updated_at",
        filters: &[
            ("owner", Filter::Equals("q.owner_id")),
            ("q", Filter::Contains("q.name")),
            (
                "tag",
                Filter::Tag(TagTable {
                    table: "query_tags",
                    key: "query_id",
                }),
            ),
        ],
        created: None,
        updated: Some("q.updated_at"),
    };

    #[test]
    fn filters_and_sorts_become_bound_sql() {
        let mut sql = SqlBuilder::new("SELECT * FROM queries q WHERE q.org_id = ");
        sql.bind_text("org");
        let request = ListRequest::default()
            .filter("owner", "u1")
            .filter("q", "50%_off")
            .filter("tag", "finance")
            .sorted("name");
        let paging = SPEC.apply(&mut sql, &request).unwrap();
        sql.page(&paging);
        assert_eq!(
            sql.sql,
            "SELECT * FROM queries q WHERE q.org_id = $1 AND q.owner_id = $2 AND lower(q.name) LIKE $3 ESCAPE '\\' \
             AND EXISTS (SELECT 1 FROM query_tags t WHERE t.query_id = q.id AND t.tag = $4) \
             ORDER BY q.name ASC, q.id ASC LIMIT $5 OFFSET $6"
        );
        assert!(matches!(&sql.args[2], Arg::Text(s) if s == "%50\\%\\_off%"));
    }

    #[test]
    fn unknown_fields_and_bad_values_are_errors() {
        let mut sql = SqlBuilder::new("");
        let request = ListRequest::default()
            .filter("colour", "red")
            .filter("updated_after", "yesterday")
            .sorted("-size")
            .page(500, 0);
        let err = SPEC.apply(&mut sql, &request).unwrap_err();
        let fields: Vec<&str> = err
            .field_errors()
            .iter()
            .map(|e| e.field.as_str())
            .collect();
        assert_eq!(fields, ["limit", "sort", "colour", "updated_after"]);
    }

    #[test]
    fn a_filter_value_past_the_limit_is_refused_whatever_the_filter() {
        for name in ["owner", "q", "tag"] {
            let mut sql = SqlBuilder::new("");
            let request = ListRequest::default().filter(name, "x".repeat(FILTER_VALUE + 1));
            let err = SPEC.apply(&mut sql, &request).unwrap_err();
            let codes: Vec<&str> = err.field_errors().iter().map(|e| e.code.as_str()).collect();
            assert_eq!(codes, ["too_long"], "{name}");
        }
        let mut sql = SqlBuilder::new("");
        let far = ListRequest::default().page(10, MAX_OFFSET + 1);
        assert!(SPEC.apply(&mut sql, &far).is_err());
    }
}
