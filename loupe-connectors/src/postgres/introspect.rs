//! The schema browser's view of a PostgreSQL database: schemas, tables,
//! views, materialized views and foreign tables with their columns, in one
//! catalog query (plus one per level of user-defined types), so that large
//! catalogs come back quickly. System schemas and partitions are left out.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::Object;
use loupe_core::{CatalogInfo, ColumnInfo, Error, Result, TableKind};
use tokio_postgres::types::{Field as PgField, Kind, Type};

use super::error::{self, Context};
use super::types;
use crate::remote::catalog::CatalogRows;

const COLUMNS: &str = "
SELECT n.nspname, c.relname, c.relkind::text, a.attname, a.atttypid, a.atttypmod,
       a.attnotnull, a.attndims, pg_catalog.format_type(a.atttypid, a.atttypmod), d.description
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a
       ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_description d
       ON d.objoid = c.oid AND d.classoid = 'pg_catalog.pg_class'::regclass AND d.objsubid = 0
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND NOT c.relispartition
  AND n.nspname <> 'information_schema'
  AND n.nspname !~ '^pg_'
ORDER BY n.nspname, c.relname, a.attnum";

const TYPES: &str = "
SELECT t.oid, t.typname, t.typtype::text, t.typbasetype, t.typelem, t.typrelid,
       r.rngsubtype, mr.rngsubtype, n.nspname, t.typcategory::text
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_catalog.pg_range r ON r.rngtypid = t.oid
LEFT JOIN pg_catalog.pg_range mr ON mr.rngmultitypid = t.oid
WHERE t.oid = ANY($1)";

const ATTRIBUTES: &str = "
SELECT attrelid, attname, atttypid
FROM pg_catalog.pg_attribute
WHERE attrelid = ANY($1) AND attnum > 0 AND NOT attisdropped
ORDER BY attrelid, attnum";

fn row_error(e: tokio_postgres::Error) -> Error {
    Error::internal_from("read the PostgreSQL catalog", e)
}

pub(super) async fn catalog(client: &Object, cx: &Context) -> Result<CatalogInfo> {
    let rows = client
        .query(COLUMNS, &[])
        .await
        .map_err(|e| error::statement(e, cx))?;
    let mut custom = HashSet::new();
    for row in &rows {
        let oid: Option<u32> = row.try_get(4).map_err(row_error)?;
        if let Some(oid) = oid.filter(|o| Type::from_oid(*o).is_none()) {
            custom.insert(oid);
        }
    }
    let resolved = resolve(client, custom, cx).await?;

    let mut catalog = CatalogRows::default();
    for row in &rows {
        let schema: String = row.try_get(0).map_err(row_error)?;
        let table: String = row.try_get(1).map_err(row_error)?;
        let relkind: String = row.try_get(2).map_err(row_error)?;
        let description: Option<String> = row.try_get(9).map_err(row_error)?;
        let kind = match relkind.as_str() {
            "v" => TableKind::View,
            "m" => TableKind::MaterializedView,
            "f" => TableKind::External,
            _ => TableKind::Table,
        };
        let columns = catalog.table(schema, table, kind, description);
        let Some(name) = row.try_get::<_, Option<String>>(3).map_err(row_error)? else {
            continue; // a relation without columns
        };
        let oid: u32 = row.try_get(4).map_err(row_error)?;
        let typmod: i32 = row.try_get(5).map_err(row_error)?;
        let not_null: bool = row.try_get(6).map_err(row_error)?;
        let dims: i32 = row.try_get(7).map_err(row_error)?;
        let source_type: String = row.try_get(8).map_err(row_error)?;
        let ty = Type::from_oid(oid)
            .or_else(|| resolved.get(&oid).cloned())
            .unwrap_or_else(|| Type::new(source_type.clone(), oid, Kind::Simple, String::new()));
        columns.push(ColumnInfo {
            name,
            data_type: types::arrow_type(&ty, typmod, usize::try_from(dims).unwrap_or(0)),
            source_type,
            nullable: !not_null,
        });
    }
    Ok(catalog.finish())
}

/// One row of `pg_type`, enough to rebuild the type's kind.
struct TypeRow {
    name: String,
    schema: String,
    typtype: String,
    category: String,
    base: u32,
    element: u32,
    relation: u32,
    range_subtype: Option<u32>,
    /// For a multirange, the element type of its ranges.
    multirange_of: Option<u32>,
}

/// Builds `Type`s for user-defined type OIDs (enums, domains, composites,
/// ranges and arrays of them), fetching what they refer to level by level.
async fn resolve(client: &Object, start: HashSet<u32>, cx: &Context) -> Result<HashMap<u32, Type>> {
    let mut rows: HashMap<u32, TypeRow> = HashMap::new();
    let mut attributes: HashMap<u32, Vec<(String, u32)>> = HashMap::new();
    let mut pending: Vec<u32> = start.into_iter().collect();
    for _ in 0..8 {
        pending.retain(|o| Type::from_oid(*o).is_none() && !rows.contains_key(o));
        if pending.is_empty() {
            break;
        }
        let fetched = client
            .query(TYPES, &[&pending])
            .await
            .map_err(|e| error::statement(e, cx))?;
        pending.clear();
        let mut relations = Vec::new();
        for row in fetched {
            let oid: u32 = row.try_get(0).map_err(row_error)?;
            let t = TypeRow {
                name: row.try_get(1).map_err(row_error)?,
                typtype: row.try_get(2).map_err(row_error)?,
                base: row.try_get(3).map_err(row_error)?,
                element: row.try_get(4).map_err(row_error)?,
                relation: row.try_get(5).map_err(row_error)?,
                range_subtype: row.try_get(6).map_err(row_error)?,
                multirange_of: row.try_get(7).map_err(row_error)?,
                schema: row.try_get(8).map_err(row_error)?,
                category: row.try_get(9).map_err(row_error)?,
            };
            pending.extend([t.base, t.element].into_iter().filter(|o| *o != 0));
            pending.extend(t.range_subtype);
            pending.extend(t.multirange_of);
            if t.typtype == "c" && t.relation != 0 {
                relations.push(t.relation);
            }
            rows.insert(oid, t);
        }
        if !relations.is_empty() {
            let fetched = client
                .query(ATTRIBUTES, &[&relations])
                .await
                .map_err(|e| error::statement(e, cx))?;
            for row in fetched {
                let relation: u32 = row.try_get(0).map_err(row_error)?;
                let name: String = row.try_get(1).map_err(row_error)?;
                let oid: u32 = row.try_get(2).map_err(row_error)?;
                pending.push(oid);
                attributes.entry(relation).or_default().push((name, oid));
            }
        }
    }
    let mut built = HashMap::new();
    let oids: Vec<u32> = rows.keys().copied().collect();
    for oid in oids {
        build(oid, &rows, &attributes, &mut built, 0);
    }
    Ok(built)
}

fn build(
    oid: u32,
    rows: &HashMap<u32, TypeRow>,
    attributes: &HashMap<u32, Vec<(String, u32)>>,
    built: &mut HashMap<u32, Type>,
    depth: usize,
) -> Type {
    if let Some(ty) = Type::from_oid(oid).or_else(|| built.get(&oid).cloned()) {
        return ty;
    }
    let Some(row) = rows.get(&oid) else {
        return Type::new(format!("oid {oid}"), oid, Kind::Simple, String::new());
    };
    let simple = || Type::new(row.name.clone(), oid, Kind::Simple, row.schema.clone());
    if depth > 8 {
        return simple();
    }
    let mut child = |o: u32| build(o, rows, attributes, built, depth + 1);
    let kind = match row.typtype.as_str() {
        "e" => Kind::Enum(Vec::new()),
        "d" => Kind::Domain(child(row.base)),
        "r" => match row.range_subtype {
            Some(sub) => Kind::Range(child(sub)),
            None => Kind::Simple,
        },
        "m" => match row.multirange_of {
            Some(subtype) => Kind::Multirange(child(subtype)),
            None => Kind::Simple,
        },
        "c" => Kind::Composite(
            attributes
                .get(&row.relation)
                .map(|attrs| {
                    attrs
                        .iter()
                        .map(|(name, o)| PgField::new(name.clone(), child(*o)))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        _ if row.category == "A" && row.element != 0 => Kind::Array(child(row.element)),
        _ => Kind::Simple,
    };
    let ty = Type::new(row.name.clone(), oid, kind, row.schema.clone());
    built.insert(oid, ty.clone());
    ty
}
