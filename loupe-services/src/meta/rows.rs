//! Reading rows and writing documents: the mapping helpers every part of
//! the store uses, and the reads and writes every service makes the same
//! way (one row by key, one object of an organization, a change checked
//! against the revision its editor read).

use loupe_core::codes;
use loupe_core::{Error, Result};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Decode, Executor, Row, Transaction, Type};

use super::{MetadataStore, db_error, now_micros};

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
    query: Query<'q, Any, AnyArguments>,
) -> Result<Option<AnyRow>> {
    query.fetch_optional(store.pool()).await.map_err(db_error)
}

/// The row `sql` selects by `key` (its one placeholder, `$1`), or `None`.
pub(crate) async fn find_one(
    store: &MetadataStore,
    sql: &'static str,
    key: &str,
) -> Result<Option<AnyRow>> {
    fetch_optional(store, sqlx::query(sql).bind(key.to_owned())).await
}

/// The row `sql` selects by `key`, or [`Error::NotFound`] naming `what`.
pub(crate) async fn fetch_one(
    store: &MetadataStore,
    sql: &'static str,
    what: &'static str,
    key: &str,
) -> Result<AnyRow> {
    find_one(store, sql, key)
        .await?
        .ok_or_else(|| Error::not_found(what, key))
}

/// The row `sql` selects by `id` when its `org_id` column is `org_id`, or
/// `None`. A row of another organization reads exactly like a missing one,
/// so its existence is not revealed (the rule of
/// [`Actor::same_org`](crate::Actor::same_org)).
pub(crate) async fn find_in_org(
    store: &MetadataStore,
    org_id: &str,
    sql: &'static str,
    id: &str,
) -> Result<Option<AnyRow>> {
    match find_one(store, sql, id).await? {
        Some(row) if col::<String>(&row, "org_id")? == org_id => Ok(Some(row)),
        _ => Ok(None),
    }
}

/// [`find_in_org`], or [`Error::NotFound`] naming `what`: how a service
/// reads the object an actor asks for before it applies its rules.
pub(crate) async fn fetch_in_org(
    store: &MetadataStore,
    org_id: &str,
    sql: &'static str,
    what: &'static str,
    id: &str,
) -> Result<AnyRow> {
    find_in_org(store, org_id, sql, id)
        .await?
        .ok_or_else(|| Error::not_found(what, id))
}

/// The object that a builder of whole pages made from a single row.
pub(crate) fn only<T>(mut built: Vec<T>, what: &str) -> Result<T> {
    built
        .pop()
        .ok_or_else(|| Error::internal(format!("a {what} row was read but not built")))
}

/// Maps a database error like [`db_error`], except that a name already in
/// use is an error of input `field`, saying `message`: the caller can
/// choose another name.
pub(crate) fn taken(field: &'static str, message: String) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| match db_error(e) {
        Error::Conflict { .. } => Error::field(field, codes::field::TAKEN, message),
        other => other,
    }
}

/// Fails with `conflict.in_use` when `count`, a `SELECT count(*) … WHERE
/// … = $1` run in `tx` with `id`, finds rows that still refer to object
/// `id`; `message` says, given their number, what to do first. Checked in
/// the transaction that then deletes, so none can appear in between.
pub(crate) async fn require_unused(
    tx: &mut Transaction<'static, Any>,
    count: &'static str,
    id: &str,
    message: impl FnOnce(i64) -> String,
) -> Result<()> {
    let (n,): (i64,) = sqlx::query_as(count)
        .bind(id.to_owned())
        .fetch_one(&mut **tx)
        .await
        .map_err(db_error)?;
    if n > 0 {
        Err(Error::conflict(codes::CONFLICT_IN_USE, message(n)))
    } else {
        Ok(())
    }
}

/// Runs `update` on object `id` if it is still at `revision`. `update`
/// ends `… revision = revision + 1, updated_at = $n WHERE id = $n+1 AND
/// revision = $n+2` and has the values before those bound; this binds the
/// time, `id` and `revision`. An object that changed since its editor read
/// it is a conflict ([`check_revision`]), not a silent overwrite.
pub(crate) async fn update_at_revision<'c, E>(
    executor: E,
    update: Query<'static, Any, AnyArguments>,
    what: &str,
    id: &str,
    revision: i64,
) -> Result<()>
where
    E: Executor<'c, Database = Any>,
{
    let result = update
        .bind(now_micros())
        .bind(id.to_owned())
        .bind(revision)
        .execute(executor)
        .await
        .map_err(db_error)?;
    check_revision(result.rows_affected(), what, revision)
}

/// Fails with [`Error::Conflict`] when an update matched no row because
/// the object changed since the caller read it.
pub(crate) fn check_revision(rows_affected: u64, what: &str, expected: i64) -> Result<()> {
    if rows_affected == 0 {
        Err(Error::stale(format!(
            "the {what} changed since revision {expected} was read; reload it and try again"
        )))
    } else {
        Ok(())
    }
}
