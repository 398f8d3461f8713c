//! Tags: each kind of object that has them keeps them in a table of its
//! own, `(key, tag)` rows that point at the object (`query_tags
//! (query_id, tag)`). One [`TagTable`] per kind serves every use: reading
//! the tags of a page at once, replacing an object's tags, and the `tag`
//! filter of its list.
//!
//! It holds no rules: callers check and normalize tags before they store
//! them. Table and column names come from the fixed definitions, never
//! from input.

use sqlx::{Any, AssertSqlSafe, Transaction};

use super::{Children, MetadataStore, SqlBuilder, db_error};
use loupe_core::Result;

/// A table of tags and the column in it that names the tagged object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TagTable {
    /// The table, such as `query_tags`.
    pub(crate) table: &'static str,
    /// Its column that holds the object's id, such as `query_id`.
    pub(crate) key: &'static str,
}

impl TagTable {
    /// The tags of each of `ids`, with one statement however many there
    /// are; each object's rows are in tag order, with the tag in column
    /// `tag` ([`Children::values`]).
    pub(crate) async fn load(&self, store: &MetadataStore, ids: &[String]) -> Result<Children> {
        let Self { table, key } = self;
        Children::load(
            store,
            SqlBuilder::new(&format!("SELECT {key}, tag FROM {table} WHERE {key}")),
            ids,
            &format!(" ORDER BY {key}, tag"),
            key,
        )
        .await
    }

    /// Replaces the tags of object `id` with `tags`, in `tx`.
    pub(crate) async fn replace(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: &str,
        tags: &[String],
    ) -> Result<()> {
        let Self { table, key } = self;
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE {key} = $1"
        )))
        .bind(id.to_owned())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
        for tag in tags {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {table} ({key}, tag) VALUES ($1, $2)"
            )))
            .bind(id.to_owned())
            .bind(tag.clone())
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
        }
        Ok(())
    }
}
