//! Reading rows and writing documents: the mapping helpers every part of
//! the store uses.

use loupe_core::{Error, Result};
use sqlx::any::AnyRow;
use sqlx::{Any, Decode, Row, Type};

use super::{MetadataStore, db_error};

/// Reads column `name` of `row`.
pub(crate) fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T>
where
    T: Decode<'r, Any> + Type<Any>,
{
    row.try_get(name)
        .map_err(|e| Error::internal_from(format!("metadata column {name}"), e))
}

/// A 0/1 flag column as a bool.
pub(crate) fn flag(row: &AnyRow, name: &str) -> Result<bool> {
    Ok(col::<i16>(row, name)? != 0)
}

/// A JSON document column.
pub(crate) fn json<T: serde::de::DeserializeOwned>(row: &AnyRow, name: &str) -> Result<T> {
    let text: String = col(row, name)?;
    serde_json::from_str(&text)
        .map_err(|e| Error::internal_from(format!("metadata column {name}"), e))
}

/// A value as a JSON document for storage.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::internal_from("encode a metadata document", e))
}

/// Reads one row, or `None`.
pub(crate) async fn fetch_optional<'q>(
    store: &MetadataStore,
    query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
) -> Result<Option<AnyRow>> {
    query.fetch_optional(store.pool()).await.map_err(db_error)
}

/// Fails with [`Error::Conflict`] when an update matched no row because
/// the object changed since the caller read it.
pub(crate) fn check_revision(rows_affected: u64, what: &str, expected: i64) -> Result<()> {
    if rows_affected == 0 {
        Err(Error::conflict(
            "conflict.revision",
            format!(
                "the {what} changed since revision {expected} was read; reload it and try again"
            ),
        ))
    } else {
        Ok(())
    }
}
