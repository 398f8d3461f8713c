//! Assembling a schema browser's catalog from one row per column, as both
//! server connectors' catalog queries return it: schemas and tables come
//! out in name order, a table listed once however many columns it has.

use std::collections::BTreeMap;

use loupe_core::{CatalogInfo, ColumnInfo, SchemaInfo, TableInfo, TableKind};

/// Tables by schema, filled row by row.
#[derive(Debug, Default)]
pub(crate) struct CatalogRows(BTreeMap<String, BTreeMap<String, TableInfo>>);

impl CatalogRows {
    /// The columns of table `schema.name`, listed on its first row with
    /// `kind` and `description`.
    pub(crate) fn table(
        &mut self,
        schema: String,
        name: String,
        kind: TableKind,
        description: Option<String>,
    ) -> &mut Vec<ColumnInfo> {
        &mut self
            .0
            .entry(schema)
            .or_default()
            .entry(name.clone())
            .or_insert_with(|| TableInfo {
                name,
                kind,
                columns: Vec::new(),
                description,
            })
            .columns
    }

    pub(crate) fn finish(self) -> CatalogInfo {
        CatalogInfo {
            schemas: self
                .0
                .into_iter()
                .map(|(name, tables)| SchemaInfo {
                    name,
                    tables: tables.into_values().collect(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::DataType;

    #[test]
    fn tables_are_listed_once_in_name_order() {
        let column = |name: &str| ColumnInfo {
            name: name.into(),
            data_type: DataType::Int32,
            source_type: "int".into(),
            nullable: true,
        };
        let mut rows = CatalogRows::default();
        for (schema, table, col) in [
            ("s", "b", "x"),
            ("s", "a", "y"),
            ("s", "b", "z"),
            ("r", "c", "w"),
        ] {
            rows.table(
                schema.into(),
                table.into(),
                TableKind::Table,
                Some(format!("first {col}")),
            )
            .push(column(col));
        }
        let catalog = rows.finish();
        let names: Vec<(&str, Vec<&str>)> = catalog
            .schemas
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.tables.iter().map(|t| t.name.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(names, [("r", vec!["c"]), ("s", vec!["a", "b"])]);
        let b = &catalog.schemas[1].tables[1];
        let columns: Vec<&str> = b.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(columns, ["x", "z"]);
        assert_eq!(b.description.as_deref(), Some("first x"), "the first row's");
    }
}
