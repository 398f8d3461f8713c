//! Rows of many parents read with one statement (`… WHERE parent IN ($1,
//! $2, …)`) and handed out per parent: the tags of a page of dashboards,
//! the members of a page of groups. A list then costs the same number of
//! statements for 1 row as for 200; a single read uses the same loader
//! with one parent, so each child table has one piece of reading code.
//!
//! It holds no rules: callers say which rows, in which order, and map
//! them. The parent ids are bound values, one placeholder each, so the
//! number of parents stays far below the databases' limits on
//! placeholders (a page is at most [`super::MAX_LIMIT`] rows).

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{Any, Decode, Type};

use super::{MetadataStore, SqlBuilder, col, db_error};
use loupe_core::Result;

/// Rows grouped by the parent they belong to, each parent's rows in the
/// order the statement returned them.
#[derive(Default)]
pub(crate) struct Children {
    by_parent: HashMap<String, Vec<AnyRow>>,
}

impl Children {
    /// Runs `select`, which ends with the parent column of its WHERE
    /// clause, completed with ` IN (…)` over `parents` and then `order`;
    /// each row carries its parent's id in column `key`. Without parents
    /// there is nothing to read and no statement runs.
    pub(crate) async fn load(
        store: &MetadataStore,
        mut select: SqlBuilder,
        parents: &[String],
        order: &str,
        key: &str,
    ) -> Result<Self> {
        if parents.is_empty() {
            // `IN ()` is not SQL on PostgreSQL; and there is nothing to ask.
            return Ok(Self::default());
        }
        select.push(" IN (");
        for (i, parent) in parents.iter().enumerate() {
            if i > 0 {
                select.push(", ");
            }
            select.bind_text(parent.as_str());
        }
        select.push(")").push(order);
        let rows = select
            .query()
            .fetch_all(store.pool())
            .await
            .map_err(db_error)?;
        let mut by_parent: HashMap<String, Vec<AnyRow>> = HashMap::new();
        for row in rows {
            by_parent.entry(col(&row, key)?).or_default().push(row);
        }
        Ok(Self { by_parent })
    }

    /// The rows of `parent`; none when it has none.
    pub(crate) fn get(&self, parent: &str) -> &[AnyRow] {
        self.by_parent.get(parent).map_or(&[], Vec::as_slice)
    }

    /// The rows of `parent`, each mapped by `f`.
    pub(crate) fn map<T>(
        &self,
        parent: &str,
        f: impl FnMut(&AnyRow) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.get(parent).iter().map(f).collect()
    }

    /// Column `name` of each row of `parent`: its tags, its members.
    pub(crate) fn values<T>(&self, parent: &str, name: &str) -> Result<Vec<T>>
    where
        T: for<'r> Decode<'r, Any> + Type<Any>,
    {
        self.map(parent, |row| col(row, name))
    }
}

/// The `id` column of each row, in order: the parents to load children of.
pub(crate) fn ids(rows: &[AnyRow]) -> Result<Vec<String>> {
    rows.iter().map(|row| col(row, "id")).collect()
}
