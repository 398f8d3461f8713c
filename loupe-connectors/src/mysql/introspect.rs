//! The schema browser's view of a MySQL or MariaDB server: databases,
//! tables and views with their columns, from `information_schema` in one
//! query, without the system schemas.

use loupe_core::{CatalogInfo, ColumnInfo, Error, Result, TableKind};
use mysql_async::Row;
use mysql_async::prelude::Queryable;

use super::error::{self, Context};
use super::execute::Session;
use super::types::{self, ColumnShape};
use crate::remote::catalog::CatalogRows;

const COLUMNS: &str = "
SELECT c.TABLE_SCHEMA, c.TABLE_NAME, t.TABLE_TYPE, c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE,
       c.IS_NULLABLE, c.NUMERIC_PRECISION, c.NUMERIC_SCALE, c.CHARACTER_SET_NAME, t.TABLE_COMMENT
FROM information_schema.COLUMNS c
JOIN information_schema.TABLES t
  ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
WHERE c.TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')
ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION";

fn get<T: mysql_async::prelude::FromValue>(row: &mut Row, i: usize) -> Result<T> {
    row.take_opt(i)
        .ok_or_else(|| Error::internal(format!("catalog column {i} missing")))?
        .map_err(|e| Error::internal(format!("catalog column {i}: {e}")))
}

pub(super) async fn catalog(
    session: &mut Session,
    tinyint1_as_boolean: bool,
    cx: &Context,
) -> Result<CatalogInfo> {
    let rows: Vec<Row> = session
        .conn()?
        .query(COLUMNS)
        .await
        .map_err(|e| error::statement(e, cx))?;
    let mut catalog = CatalogRows::default();
    for mut row in rows {
        let schema: String = get(&mut row, 0)?;
        let table: String = get(&mut row, 1)?;
        let table_type: String = get(&mut row, 2)?;
        let name: String = get(&mut row, 3)?;
        let data_type: String = get(&mut row, 4)?;
        let column_type: String = get(&mut row, 5)?;
        let nullable: String = get(&mut row, 6)?;
        let precision: Option<u64> = get(&mut row, 7)?;
        let scale: Option<u64> = get(&mut row, 8)?;
        let charset: Option<String> = get(&mut row, 9)?;
        let comment: Option<String> = get(&mut row, 10)?;
        let shape = ColumnShape::from_catalog(
            &data_type.to_ascii_lowercase(),
            &column_type,
            precision,
            scale,
            charset.as_deref(),
        );
        let kind = if table_type.contains("VIEW") {
            TableKind::View
        } else {
            TableKind::Table
        };
        let description = comment.filter(|c| !c.is_empty() && c != "VIEW");
        let columns = catalog.table(schema, table, kind, description);
        columns.push(ColumnInfo {
            name,
            data_type: types::arrow_type(&shape, tinyint1_as_boolean),
            source_type: column_type,
            nullable: nullable == "YES",
        });
    }
    Ok(catalog.finish())
}
