//! Every type a connector produces, from a real query, through the result
//! store: stored, read back a page at a time in its own Arrow type,
//! queried with SQL, and downloaded in every format. One table of column
//! types per datasource kind (a column of each, one row of values and one
//! of NULLs); a new type in a decoder belongs in its table here.
//!
//! `SELECT interval '1 day'` on PostgreSQL used to fail every run that
//! returned it: Parquet has no form for Arrow's month-day-nanosecond
//! intervals, which the store now keeps as three named numbers.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Some helpers serve only the kinds whose feature is on.
#![cfg_attr(
    not(all(feature = "postgres", feature = "mysql", feature = "files")),
    allow(dead_code, unused_imports)
)]

use std::sync::Arc;

use arrow::array::RecordBatch;
use futures::StreamExt;
use loupe_core::deps::datafusion::prelude::SessionContext;
use loupe_core::{
    BatchWriter, Datasource, ExportFormat, PageRequest, ParquetResultStore, ResultId, ResultStore,
    batches_stream, json_rows,
};
use serde_json::Value as Json;

#[cfg(feature = "mysql")]
use crate::support::{MARIADB, MARIADB_OWNER, mysql_owner};
#[cfg(feature = "postgres")]
use crate::support::{POSTGRES, postgres_owner};
use crate::support::{datasource, files_datasource, one, run};

/// Runs `sql` on `ds`, stores the result and checks every way of reading
/// it back against what the datasource produced.
async fn round_trip(kind: &str, ds: &Arc<dyn Datasource>, sql: &str) {
    let batches = run(ds, sql)
        .await
        .unwrap_or_else(|e| panic!("{kind}: {sql}: {e}"));
    let produced = one(&batches);
    let schema = produced.schema();
    let dir = tempfile::tempdir().unwrap();
    let store = ParquetResultStore::open(dir.path().to_str().unwrap()).unwrap();
    let id = ResultId::generate();
    let meta = store
        .write(&id, batches_stream(schema.clone(), batches))
        .await
        .unwrap_or_else(|e| panic!("{kind}: storing the result failed: {e}"));
    assert_eq!(meta.schema, schema, "{kind}: the stored schema");

    let page = store
        .read_page(&id, &PageRequest::new(0, 100))
        .await
        .unwrap();
    let read = arrow::compute::concat_batches(&page.schema, &page.batches).unwrap();
    for (i, field) in schema.fields().iter().enumerate() {
        assert_eq!(
            read.column(i).as_ref(),
            produced.column(i).as_ref(),
            "{kind}: column {} ({}) read back",
            field.name(),
            field.data_type()
        );
    }
    assert_eq!(read.schema(), schema, "{kind}: the page's schema");
    let rows = json_rows(&page.batches).unwrap_or_else(|e| panic!("{kind}: page JSON: {e}"));

    let ctx = SessionContext::new();
    ctx.register_table("r", store.table(&ctx, &id).await.unwrap())
        .unwrap();
    let selected = ctx
        .sql("select * from r")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{kind}: SQL over the result: {e}"));
    let selected = arrow::compute::concat_batches(&schema, &selected).unwrap();
    assert_eq!(selected, produced, "{kind}: SQL over the result");

    for format in ExportFormat::ALL {
        let mut scan = store.scan(&id, None).await.unwrap();
        let mut writer = BatchWriter::new(format, Vec::new(), scan.schema())
            .unwrap_or_else(|e| panic!("{kind}: {format}: {e}"));
        while let Some(batch) = scan.next().await {
            writer
                .write(&batch.unwrap())
                .unwrap_or_else(|e| panic!("{kind}: {format}: {e}"));
        }
        let bytes = writer
            .finish()
            .unwrap_or_else(|e| panic!("{kind}: {format}: {e}"));
        if format == ExportFormat::Json {
            // The download holds the page's values, column by column.
            let objects: Vec<serde_json::Map<String, Json>> =
                serde_json::from_slice(&bytes).unwrap();
            assert_eq!(objects.len(), rows.len());
            for (object, row) in objects.iter().zip(&rows) {
                for (field, value) in schema.fields().iter().zip(row) {
                    assert_eq!(&object[field.name()], value, "{kind}: {}", field.name());
                }
            }
        }
        if format == ExportFormat::Arrow {
            let reader =
                arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
            let ipc: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
            assert_eq!(
                arrow::compute::concat_batches(&schema, &ipc).unwrap(),
                produced,
                "{kind}: Arrow download"
            );
        }
    }
}

/// A table with a column of each type (`c0`, `c1`, ...), one row of the
/// values and one of NULLs.
fn table_sql(table: &str, cases: &[(&str, &str)]) -> (String, String) {
    let columns: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, (ty, _))| format!("c{i} {ty}"))
        .collect();
    let values: Vec<&str> = cases.iter().map(|(_, v)| *v).collect();
    let nulls = vec!["NULL"; cases.len()];
    (
        format!("CREATE TABLE {table} (id int, {})", columns.join(", ")),
        format!(
            "INSERT INTO {table} VALUES (1, {}), (2, {})",
            values.join(", "),
            nulls.join(", ")
        ),
    )
}

/// Every type the PostgreSQL decoder maps (`postgres/types.rs`), with a
/// value of each.
#[cfg(feature = "postgres")]
const POSTGRES_TYPES: &[(&str, &str)] = &[
    ("bool", "true"),
    ("int2", "-32768"),
    ("int4", "2147483647"),
    ("int8", "-9223372036854775808"),
    ("oid", "4294967295"),
    ("float4", "1.5"),
    ("float8", "'-Infinity'"),
    ("numeric(12,2)", "-1234567890.12"),
    (
        "numeric(60,10)",
        "12345678901234567890123456789012345678901234567890.0123456789",
    ),
    ("numeric", "'NaN'"),
    ("money", "'-12.34'"),
    ("text", "'=HYPERLINK(\"x\") héllo 🌍'"),
    ("varchar(10)", "'short'"),
    ("char(5)", "'ab'"),
    ("name", "'pg_class'"),
    ("mood", "'happy'"),
    ("bytea", "'\\x00ff10'"),
    ("date", "'2024-02-29'"),
    ("time", "'23:59:59.999999'"),
    ("timetz", "'10:00:00+02'"),
    ("timestamp", "'2000-01-01 00:00:00'"),
    ("timestamptz", "'1999-12-31 23:00:00-01'"),
    ("interval", "'1 year 2 months -3 days 04:05:06.789'"),
    ("interval", "'-1 days'"),
    ("uuid", "'550e8400-e29b-41d4-a716-446655440000'"),
    ("json", "'{\"a\": [1, 2]}'"),
    ("jsonb", "'{\"b\": null}'"),
    ("inet", "'192.168.0.1'"),
    ("cidr", "'10.0.0.0/8'"),
    ("macaddr", "'08:00:2b:01:02:03'"),
    ("bit(4)", "B'1010'"),
    ("varbit", "B'110'"),
    ("int[]", "'{1,NULL,3}'"),
    ("text[][]", "'{{a,b},{c,NULL}}'"),
    ("interval[]", "'{\"1 day\",\"-2 hours\",NULL}'"),
    ("numeric(8,2)[]", "'{1.5,NULL}'"),
    ("pair", "ROW('x', 12.5, '{7,8}', '3 days')"),
    ("int4range", "'[1,5)'"),
    ("tstzrange", "'[2024-01-01,)'"),
    ("int4multirange", "'{[1,3), [5,7)}'"),
    ("positive", "42"),
    ("point", "'(1.5,2.5)'"),
];

#[cfg(feature = "postgres")]
#[tokio::test]
async fn every_postgres_type_round_trips_through_the_store() {
    let url = server_or_skip!(POSTGRES);
    let owner = postgres_owner(&url).await;
    let (create, insert) = table_sql("store_types.everything", POSTGRES_TYPES);
    owner
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS store_types CASCADE; CREATE SCHEMA store_types;
             SET search_path = store_types, public;
             CREATE TYPE mood AS ENUM ('sad', 'happy');
             CREATE TYPE pair AS (label text, amount numeric(8,2), tags int[], took interval);
             CREATE DOMAIN positive AS int CHECK (VALUE > 0);
             {create}; {insert};"
        ))
        .await
        .unwrap();
    let ds = datasource(&url, "");
    round_trip(
        "postgres",
        &ds,
        "SELECT * FROM store_types.everything ORDER BY id",
    )
    .await;
    // And without a table: the query from the issue.
    round_trip(
        "postgres",
        &ds,
        "SELECT interval '1 day' AS i, ARRAY[interval '1 month'] AS a",
    )
    .await;
}

/// Every type the MySQL decoder maps (`mysql/types.rs`), with a value of
/// each.
#[cfg(feature = "mysql")]
const MYSQL_TYPES: &[(&str, &str)] = &[
    ("TINYINT", "-128"),
    ("TINYINT UNSIGNED", "255"),
    ("TINYINT(1)", "1"),
    ("SMALLINT", "-32768"),
    ("SMALLINT UNSIGNED", "65535"),
    ("MEDIUMINT", "-8388608"),
    ("INT UNSIGNED", "4294967295"),
    ("BIGINT", "-9223372036854775808"),
    ("BIGINT UNSIGNED", "18446744073709551615"),
    ("FLOAT", "1.5"),
    ("DOUBLE", "-0.25"),
    ("DECIMAL(10,2)", "-12345678.91"),
    (
        "DECIMAL(65,30)",
        "12345678901234567890123456789012345.123456789012345678901234567890",
    ),
    ("DATE", "'2024-02-29'"),
    ("DATETIME(6)", "'2024-02-29 23:59:59.999999'"),
    ("TIMESTAMP(3) NULL", "'2000-01-01 00:00:00.123'"),
    ("TIME(6)", "'-838:59:59.000000'"),
    ("YEAR", "2155"),
    ("CHAR(4)", "'ab'"),
    ("VARCHAR(20)", "'=1+2 héllo 🌍'"),
    ("TEXT", "'long text'"),
    ("VARCHAR(10) CHARACTER SET binary", "x'00ff'"),
    ("VARBINARY(10)", "x'cafe'"),
    ("BLOB", "x'ff00'"),
    ("JSON", "'{\"a\": [1, 2]}'"),
    ("ENUM('a','b')", "'b'"),
    ("SET('x','y','z')", "'x,z'"),
    ("BIT(10)", "b'1000000001'"),
    ("POINT", "ST_GeomFromText('POINT(1 2)')"),
];

#[cfg(feature = "mysql")]
#[tokio::test]
async fn every_mysql_type_round_trips_through_the_store() {
    use mysql_async::prelude::Queryable;
    let url = server_or_skip!(MARIADB);
    let mut owner = mysql_owner(&server_or_skip!(MARIADB_OWNER)).await;
    let (create, insert) = table_sql("t_store_types", MYSQL_TYPES);
    owner
        .query_drop(format!(
            "DROP TABLE IF EXISTS t_store_types; {create} CHARACTER SET utf8mb4; {insert};"
        ))
        .await
        .unwrap();
    let ds = datasource(&url, "");
    round_trip("mysql", &ds, "SELECT * FROM t_store_types ORDER BY id").await;
}

/// What DataFusion computes over files: intervals, durations, structs and
/// maps, views and dictionaries.
#[cfg(feature = "files")]
#[tokio::test]
async fn datafusion_types_round_trip_through_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let ds = files_datasource(dir.path());
    round_trip(
        "files",
        &ds,
        "SELECT interval '1 month 2 days 3 seconds' AS i, \
         make_array(interval '1 day', NULL) AS li, \
         named_struct('n', 1, 'took', interval '-2 hours') AS s, \
         map(['k'], [interval '1 minute']) AS m, \
         arrow_cast(-3600, 'Duration(Second)') AS d, \
         arrow_cast('view', 'Utf8View') AS v, \
         arrow_cast('=x', 'Dictionary(Int32, Utf8)') AS dict, \
         arrow_cast(1.5, 'Float16') AS f16",
    )
    .await;
}
