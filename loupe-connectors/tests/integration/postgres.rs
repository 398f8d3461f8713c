//! What only the postgres datasource does, against a real PostgreSQL
//! server: its own types through COPY and rows, its server's details in
//! errors, its catalog and connection recycling. What every connector does
//! is in the contract (`contract.rs`).
//!
//! `scripts/test` starts one and sets `LOUPE_TEST_POSTGRES_URL` (the owner
//! of a scratch database) and `LOUPE_TEST_POSTGRES_CA`. Each test works in
//! its own schema. Without the variable the tests are skipped, except under
//! `CI=true`, where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    Array, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Decimal256Array,
    Float64Array, Int16Array, Int32Array, Int64Array, IntervalMonthDayNanoArray, ListArray,
    StructArray, Time64MicrosecondArray, TimestampMicrosecondArray, UInt32Array,
};
use arrow::datatypes::{DataType, IntervalMonthDayNano, TimeUnit, i256};
use loupe_core::Datasource;

use crate::support::{
    POSTGRES, datasource, free_port, ints, one, postgres_owner, run, run_restricted,
};

/// A fresh schema for one test, dropped on the next run.
async fn schema(url: &str, name: &str) -> tokio_postgres::Client {
    let client = postgres_owner(url).await;
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}; SET search_path = {name}"
        ))
        .await
        .unwrap();
    client
}

const TYPES_TABLE: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE pair AS (label text, amount numeric(8,2), tags int[]);
CREATE DOMAIN positive AS int CHECK (VALUE > 0);
CREATE TABLE everything (
    id int PRIMARY KEY,
    b bool, i2 int2, i4 int4, i8 int8, o oid, f4 float4, f8 float8,
    n12 numeric(12,2), n60 numeric(60,10), nfree numeric,
    t text, vc varchar(10), bp char(5), nm name, ci public.citext, e mood,
    by bytea, d date, tm time, ttz timetz, ts timestamp, tstz timestamptz, iv interval,
    u uuid, js json, jb jsonb, ip inet, net cidr, mac macaddr, mac8 macaddr8, m money,
    bt bit(4), vb varbit, ai int[], at2 text[][], comp pair, r int4range, tr tstzrange,
    mr int4multirange, dom positive, pt point
);
INSERT INTO everything VALUES
(1, true, -32768, -2147483648, -9223372036854775808, 4294967295, 1.5, 'NaN',
 1234567890.12, 12345678901234567890123456789012345678901234567890.0123456789,
 '1e-1000'::numeric + 12345678901234567890,
 'héllo 🌍', 'short', 'ab', 'pg_class', 'MiXeD', 'happy',
 '\x00ff10', '2024-02-29', '23:59:59.999999', '10:00:00+02', '2000-01-01 00:00:00', '1999-12-31 23:00:00-01',
 '1 year 2 months 3 days 04:05:06.789',
 '550e8400-e29b-41d4-a716-446655440000', '{"a": [1, 2]}', '{"b": null}', '192.168.0.1', '10.0.0.0/8',
 '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05', '12.34',
 B'1010', B'110', '{1,NULL,3}', '{{a,b},{c,NULL}}', ROW('x', 12.5, '{7,8}'), '[1,5)', '[2024-01-01,)',
 '{[1,3), [5,7)}', 42, '(1.5,2.5)'),
(2, NULL, 32767, 2147483647, 9223372036854775807, 0, '-Infinity', 'Infinity',
 -0.01, -1, 'NaN',
 '', NULL, NULL, NULL, NULL, NULL,
 '', 'infinity', '00:00', NULL, '-infinity', 'infinity',
 '-1 days',
 NULL, 'null', '[]', '::1', '2001:db8::/32', NULL, NULL, '-1.00',
 NULL, B'', '{}', '{}', NULL, 'empty', '(,)',
 '{}', NULL, NULL),
(3, false, 0, 0, 0, NULL, 0, -0.0,
 NULL, NULL, 'Infinity',
 NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, '-infinity', NULL, NULL, NULL, NULL,
 NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, ROW(NULL, NULL, NULL), NULL, NULL,
 NULL, NULL, NULL);
"#;

async fn check_everything(ds: &Arc<dyn Datasource>) {
    let rows = run(ds, "SELECT * FROM t_types.everything ORDER BY id")
        .await
        .unwrap();
    let b = one(&rows);
    let col = |name: &str| {
        b.column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    let field = |name: &str| b.schema().field_with_name(name).unwrap().clone();
    assert_eq!(b.num_rows(), 3);

    assert_eq!(
        col("b")
            .as_any()
            .downcast_ref::<BooleanArray>()
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        [Some(true), None, Some(false)]
    );
    assert_eq!(
        col("i2")
            .as_any()
            .downcast_ref::<Int16Array>()
            .unwrap()
            .values()
            .to_vec(),
        [-32768, 32767, 0]
    );
    assert_eq!(
        col("i4")
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap()
            .values()
            .to_vec(),
        [i32::MIN, i32::MAX, 0]
    );
    assert_eq!(
        col("i8")
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .values()
            .to_vec(),
        [i64::MIN, i64::MAX, 0]
    );
    assert_eq!(
        col("o")
            .as_any()
            .downcast_ref::<UInt32Array>()
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        [Some(u32::MAX), Some(0), None]
    );
    let f8 = col("f8").as_any().downcast_ref::<Float64Array>().unwrap();
    assert!(f8.value(0).is_nan() && f8.value(1) == f64::INFINITY && f8.value(2) == 0.0);

    let n12 = col("n12")
        .as_any()
        .downcast_ref::<Decimal128Array>()
        .unwrap();
    assert_eq!(field("n12").data_type(), &DataType::Decimal128(12, 2));
    assert_eq!(
        n12.iter().collect::<Vec<_>>(),
        [Some(123_456_789_012), Some(-1), None]
    );
    let n60 = col("n60")
        .as_any()
        .downcast_ref::<Decimal256Array>()
        .unwrap();
    assert_eq!(field("n60").data_type(), &DataType::Decimal256(60, 10));
    assert_eq!(
        n60.value_as_string(0),
        "12345678901234567890123456789012345678901234567890.0123456789"
    );
    assert_eq!(n60.value(1), i256::from_i128(-10_000_000_000));
    let nfree = col("nfree").as_string::<i32>();
    assert_eq!(
        field("nfree").data_type(),
        &DataType::Utf8,
        "unconstrained numeric is exact text"
    );
    assert!(
        nfree.value(0).starts_with("12345678901234567890.000"),
        "{}",
        &nfree.value(0)[..30]
    );
    assert_eq!(
        nfree.value(0).len(),
        20 + 1 + 1000,
        "1000 fraction digits kept"
    );
    assert_eq!((nfree.value(1), nfree.value(2)), ("NaN", "Infinity"));

    let t = col("t").as_string::<i32>();
    assert_eq!((t.value(0), t.value(1)), ("héllo 🌍", ""));
    assert_eq!(col("bp").as_string::<i32>().value(0), "ab   ");
    assert_eq!(col("nm").as_string::<i32>().value(0), "pg_class");
    assert_eq!(col("ci").as_string::<i32>().value(0), "MiXeD");
    assert_eq!(col("e").as_string::<i32>().value(0), "happy");
    assert_eq!(
        col("by")
            .as_any()
            .downcast_ref::<BinaryArray>()
            .unwrap()
            .value(0),
        [0u8, 0xff, 0x10]
    );

    let d = col("d").as_any().downcast_ref::<Date32Array>().unwrap();
    assert_eq!(d.value(0), 19_782, "2024-02-29");
    assert!(d.is_null(1) && d.is_null(2), "±infinity dates are NULL");
    let tm = col("tm")
        .as_any()
        .downcast_ref::<Time64MicrosecondArray>()
        .unwrap();
    assert_eq!(tm.value(0), 86_399_999_999);
    let ttz = col("ttz")
        .as_any()
        .downcast_ref::<Time64MicrosecondArray>()
        .unwrap();
    assert_eq!(ttz.value(0), 8 * 3_600_000_000, "timetz normalised to UTC");
    let ts = col("ts")
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(
        field("ts").data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    assert_eq!(ts.value(0), 946_684_800_000_000);
    assert!(ts.is_null(1), "-infinity is NULL");
    let tstz = col("tstz")
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(
        field("tstz").data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(
        tstz.value(0),
        946_684_800_000_000,
        "23:00 at -01:00 is midnight UTC"
    );
    let iv = col("iv")
        .as_any()
        .downcast_ref::<IntervalMonthDayNanoArray>()
        .unwrap();
    assert_eq!(
        iv.value(0),
        IntervalMonthDayNano::new(14, 3, 14_706_789_000_000)
    );
    assert_eq!(iv.value(1), IntervalMonthDayNano::new(0, -1, 0));

    assert_eq!(
        col("u").as_string::<i32>().value(0),
        "550e8400-e29b-41d4-a716-446655440000"
    );
    assert_eq!(col("js").as_string::<i32>().value(0), r#"{"a": [1, 2]}"#);
    assert_eq!(col("jb").as_string::<i32>().value(0), r#"{"b": null}"#);
    assert_eq!(
        field("jb")
            .metadata()
            .get("ARROW:extension:name")
            .map(String::as_str),
        Some("arrow.json")
    );
    assert_eq!(col("ip").as_string::<i32>().value(0), "192.168.0.1");
    assert_eq!(col("ip").as_string::<i32>().value(1), "::1");
    assert_eq!(col("net").as_string::<i32>().value(0), "10.0.0.0/8");
    assert_eq!(col("net").as_string::<i32>().value(1), "2001:db8::/32");
    assert_eq!(col("mac").as_string::<i32>().value(0), "08:00:2b:01:02:03");
    assert_eq!(
        col("mac8").as_string::<i32>().value(0),
        "08:00:2b:01:02:03:04:05"
    );
    let money = col("m").as_any().downcast_ref::<Decimal128Array>().unwrap();
    assert_eq!((money.value(0), money.value(1)), (1234, -100));
    assert_eq!(col("bt").as_string::<i32>().value(0), "1010");
    assert_eq!(col("vb").as_string::<i32>().value(1), "");

    let ai = col("ai").as_any().downcast_ref::<ListArray>().unwrap();
    let first = ai.value(0);
    let first = first.as_any().downcast_ref::<Int32Array>().unwrap();
    assert_eq!(first.iter().collect::<Vec<_>>(), [Some(1), None, Some(3)]);
    assert_eq!(ai.value(1).len(), 0, "empty array");
    assert!(ai.is_null(2));
    let at2 = col("at2").as_any().downcast_ref::<ListArray>().unwrap();
    assert!(
        matches!(field("at2").data_type(), DataType::List(inner) if matches!(inner.data_type(), DataType::List(_))),
        "text[][] is a list of lists"
    );
    let rows_of_first = at2.value(0);
    let rows_of_first = rows_of_first.as_any().downcast_ref::<ListArray>().unwrap();
    assert_eq!(rows_of_first.len(), 2);
    let second_row = rows_of_first.value(1);
    assert_eq!(
        second_row.as_string::<i32>().iter().collect::<Vec<_>>(),
        [Some("c"), None]
    );

    let comp = col("comp").as_any().downcast_ref::<StructArray>().unwrap();
    assert_eq!(
        comp.column_by_name("label")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "x"
    );
    // Composite attributes carry no type modifier: numeric(8,2) is exact text.
    assert_eq!(
        comp.column_by_name("amount")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "12.50"
    );
    assert!(comp.is_valid(2), "a row of NULLs is not a NULL row");

    let r = col("r").as_any().downcast_ref::<StructArray>().unwrap();
    let lower = r
        .column_by_name("lower")
        .unwrap()
        .as_any()
        .downcast_ref::<Int32Array>()
        .unwrap();
    let upper = r
        .column_by_name("upper")
        .unwrap()
        .as_any()
        .downcast_ref::<Int32Array>()
        .unwrap();
    assert_eq!((lower.value(0), upper.value(0)), (1, 5));
    let empty = r
        .column_by_name("empty")
        .unwrap()
        .as_any()
        .downcast_ref::<BooleanArray>()
        .unwrap();
    assert!(empty.value(1));
    let tr = col("tr").as_any().downcast_ref::<StructArray>().unwrap();
    assert!(
        tr.column_by_name("upper").unwrap().is_null(0),
        "an unbounded side is NULL"
    );
    assert!(
        tr.column_by_name("lower").unwrap().is_null(1)
            && tr.column_by_name("upper").unwrap().is_null(1)
    );
    let mr = col("mr").as_any().downcast_ref::<ListArray>().unwrap();
    assert_eq!(mr.value(0).len(), 2);
    assert_eq!(
        col("dom")
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap()
            .value(0),
        42,
        "domain over int is Int32"
    );
    assert_eq!(field("pt").data_type(), &DataType::Binary);
    assert_eq!(
        field("pt")
            .metadata()
            .get("loupe.pg.type")
            .map(String::as_str),
        Some("point")
    );
    assert_eq!(
        col("pt")
            .as_any()
            .downcast_ref::<BinaryArray>()
            .unwrap()
            .value(0)
            .len(),
        16
    );
}

/// Acceptance: every type in the table maps, with NULLs and edge values,
/// the same way through COPY BINARY and through extended-protocol rows.
#[tokio::test]
async fn every_type_maps_through_copy_and_rows() {
    let url = server_or_skip!(POSTGRES);
    let admin = schema(&url, "t_types").await;
    admin.batch_execute(TYPES_TABLE).await.unwrap();
    check_everything(&datasource(&url, "")).await;
    check_everything(&datasource(&url, "transfer=rows")).await;
    // A small batch size makes every column cross batch boundaries.
    check_everything(&datasource(&url, "transfer=rows&batch_rows=1")).await;
}

/// A composite type may have no fields (`CREATE TYPE t AS ()`): its values
/// decode to a struct of no fields, with their NULLs, through COPY and
/// rows alike, instead of panicking.
#[tokio::test]
async fn a_composite_of_no_fields_decodes() {
    let url = server_or_skip!(POSTGRES);
    let admin = schema(&url, "t_empty_composite").await;
    admin
        .batch_execute(
            "CREATE TYPE nothing AS (); CREATE TABLE holes (id int, v nothing); \
             INSERT INTO holes VALUES (1, '()'), (2, NULL);",
        )
        .await
        .unwrap();
    for extra in ["", "transfer=rows"] {
        let batches = run(
            &datasource(&url, extra),
            "SELECT v FROM t_empty_composite.holes ORDER BY id",
        )
        .await
        .unwrap();
        let column = batches[0].column(0).as_struct();
        assert_eq!(column.num_columns(), 0, "{extra}");
        assert_eq!(column.len(), 2, "{extra}");
        assert!(column.is_valid(0) && column.is_null(1), "{extra}");
    }
}

/// The server's own words come back: detail, hint, position.
#[tokio::test]
async fn server_errors_keep_their_details() {
    let url = server_or_skip!(POSTGRES);
    let ds = datasource(&url, "");
    let err = run(&ds, "SELECT * FROM no_such_table").await.unwrap_err();
    let q = err.as_query_error().unwrap();
    assert_eq!(q.sqlstate.as_deref(), Some("42P01"));
    assert_eq!(q.position, Some(15));
    assert_eq!(err.code(), "query.failed");

    let err = run(
        &ds,
        "DO $$ BEGIN RAISE EXCEPTION 'boom' USING DETAIL = 'the detail', HINT = 'the hint', ERRCODE = '22023'; END $$",
    )
    .await
    .unwrap_err();
    let q = err.as_query_error().unwrap();
    assert_eq!(
        (q.message.as_str(), q.sqlstate.as_deref()),
        ("boom", Some("22023"))
    );
    assert_eq!(
        (q.detail.as_deref(), q.hint.as_deref()),
        (Some("the detail"), Some("the hint"))
    );

    let err = run(&ds, "SELECT 1/0").await.unwrap_err();
    assert_eq!(
        err.as_query_error().and_then(|q| q.sqlstate.as_deref()),
        Some("22012")
    );
}

/// A SET made by one statement is undone before the next one: the
/// statement runs in a transaction that is rolled back.
#[tokio::test]
async fn a_set_is_undone_before_the_next_statement() {
    let url = server_or_skip!(POSTGRES);
    let ds = datasource(&url, "pool_size=1");
    run(&ds, "SET application_name = 'changed'").await.unwrap();
    let rows = run(&ds, "SHOW application_name").await.unwrap();
    assert_eq!(one(&rows).column(0).as_string::<i32>().value(0), "loupe");
}

/// Acceptance: the schema browser lists user tables, views and
/// materialized views with both type names.
#[tokio::test]
async fn introspection_lists_user_objects() {
    let url = server_or_skip!(POSTGRES);
    let admin = schema(&url, "t_catalog").await;
    admin
        .batch_execute(
            "CREATE TYPE t_catalog.color AS ENUM ('red', 'green');
             CREATE DOMAIN t_catalog.email AS text;
             CREATE TABLE orders (id bigint NOT NULL, total numeric(12,2), tags text[], c t_catalog.color, e t_catalog.email, during tstzrange);
             COMMENT ON TABLE orders IS 'All orders';
             CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
             CREATE MATERIALIZED VIEW order_count AS SELECT count(*) AS n FROM orders;
             CREATE TABLE events (at date) PARTITION BY RANGE (at);
             CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');",
        )
        .await
        .unwrap();
    let ds = datasource(&url, "");
    let catalog = ds.introspect().await.unwrap();
    assert!(
        !catalog
            .schemas
            .iter()
            .any(|s| s.name == "pg_catalog" || s.name == "information_schema")
    );
    let ours = catalog
        .schemas
        .iter()
        .find(|s| s.name == "t_catalog")
        .unwrap();
    let names: Vec<(&str, loupe_core::TableKind)> = ours
        .tables
        .iter()
        .map(|t| (t.name.as_str(), t.kind))
        .collect();
    assert_eq!(
        names,
        [
            ("big_orders", loupe_core::TableKind::View),
            ("events", loupe_core::TableKind::Table),
            ("order_count", loupe_core::TableKind::MaterializedView),
            ("orders", loupe_core::TableKind::Table),
        ],
        "partitions are not listed on their own"
    );
    let orders = ours.tables.iter().find(|t| t.name == "orders").unwrap();
    assert_eq!(orders.description.as_deref(), Some("All orders"));
    let column = |n: &str| orders.columns.iter().find(|c| c.name == n).unwrap();
    assert_eq!(
        (column("id").data_type.clone(), column("id").nullable),
        (DataType::Int64, false)
    );
    assert_eq!(column("total").data_type, DataType::Decimal128(12, 2));
    assert_eq!(column("total").source_type, "numeric(12,2)");
    assert!(matches!(column("tags").data_type, DataType::List(_)));
    assert_eq!(column("c").data_type, DataType::Utf8, "enums are text");
    assert_eq!(
        column("e").data_type,
        DataType::Utf8,
        "domains are their base type"
    );
    assert!(matches!(column("during").data_type, DataType::Struct(_)));
}

async fn backend_pid(ds: &Arc<dyn Datasource>) -> i64 {
    ints(&run(ds, "SELECT pg_backend_pid()").await.unwrap(), 0)[0]
}

/// Connections idle past `idle_timeout` are replaced, and so is one the
/// server ended, without the next query noticing.
#[tokio::test]
async fn idle_and_broken_connections_are_replaced() {
    let url = server_or_skip!(POSTGRES);
    let admin = postgres_owner(&url).await;
    let ds = datasource(&url, "pool_size=1&idle_timeout=300ms");
    let first = backend_pid(&ds).await;
    assert_eq!(backend_pid(&ds).await, first, "reused while fresh");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = backend_pid(&ds).await;
    assert_ne!(second, first, "replaced after idle_timeout");

    let ds = datasource(&url, "pool_size=1");
    let pid = backend_pid(&ds).await;
    admin
        .execute("SELECT pg_terminate_backend($1::int)", &[&(pid as i32)])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let replaced = backend_pid(&ds).await;
    assert_ne!(replaced, pid);
}

/// Policies that read `loupe.user.region`: rows of two regions, row-level
/// security forced on the table's owner, which is the role datasources
/// connect as.
const REGION_POLICY: &str = r#"
CREATE TABLE sales (id int PRIMARY KEY, region text NOT NULL);
INSERT INTO sales VALUES (1, 'EU'), (2, 'US'), (3, 'EU'), (4, 'US'), (5, 'O''Brien; --');
ALTER TABLE sales ENABLE ROW LEVEL SECURITY;
ALTER TABLE sales FORCE ROW LEVEL SECURITY;
CREATE POLICY by_region ON sales USING (region = current_setting('loupe.user.region', true));
"#;

fn region(value: &str) -> loupe_core::Restrictions {
    let mut restrictions = loupe_core::Restrictions::default();
    restrictions
        .settings
        .insert("loupe.user.region".into(), value.into());
    restrictions
}

async fn ids_as(
    ds: &Arc<dyn Datasource>,
    sql: &str,
    restrictions: &loupe_core::Restrictions,
) -> Vec<i64> {
    ints(
        &run_restricted(ds, sql, restrictions)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}")),
        0,
    )
}

/// Acceptance: the database's own policies see the caller's settings, set
/// for the statement's transaction alone, through COPY and rows alike.
#[tokio::test]
async fn settings_reach_row_level_security_policies() {
    let url = server_or_skip!(POSTGRES);
    let admin = schema(&url, "t_rls").await;
    admin.batch_execute(REGION_POLICY).await.unwrap();
    let role = admin
        .query_one(
            "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .unwrap();
    assert!(
        !role.get::<_, bool>(0),
        "the test role must be subject to row-level security"
    );
    let sql = "SELECT id FROM t_rls.sales ORDER BY id";
    for extra in ["pool_size=1", "pool_size=1&transfer=rows"] {
        let ds = datasource(&url, extra);
        assert_eq!(ids_as(&ds, sql, &region("EU")).await, [1, 3], "{extra}");
        assert_eq!(ids_as(&ds, sql, &region("US")).await, [2, 4], "{extra}");
        assert!(
            ints(&run(&ds, sql).await.unwrap(), 0).is_empty(),
            "{extra}: no setting, no rows"
        );
        // The next statement on the same (only) connection runs without
        // the setting: it ended with the transaction.
        let pid = backend_pid(&ds).await;
        assert_eq!(ids_as(&ds, sql, &region("EU")).await, [1, 3], "{extra}");
        assert!(
            ints(&run(&ds, sql).await.unwrap(), 0).is_empty(),
            "{extra}: the setting leaked to the next statement"
        );
        let left = run(
            &ds,
            "SELECT coalesce(current_setting('loupe.user.region', true), '') AS v",
        )
        .await
        .unwrap();
        assert_eq!(one(&left).column(0).as_string::<i32>().value(0), "");
        assert_eq!(backend_pid(&ds).await, pid, "{extra}: one connection");
        // A value is bound, never spliced into SQL.
        assert_eq!(
            ids_as(&ds, sql, &region("O'Brien; --")).await,
            [5],
            "{extra}"
        );
        for payload in [
            "EU' OR '1'='1",
            "EU'; SET ROLE postgres; --",
            "x', true) --",
        ] {
            assert!(
                ids_as(&ds, sql, &region(payload)).await.is_empty(),
                "{extra}: {payload}"
            );
        }
    }
}

/// The settings join the transaction's own: it stays read-only and keeps
/// its statement timeout.
#[tokio::test]
async fn settings_keep_the_transaction_limits() {
    let url = server_or_skip!(POSTGRES);
    let ds = datasource(&url, "statement_timeout=7s");
    let rows = run_restricted(
        &ds,
        "SELECT current_setting('statement_timeout'), current_setting('transaction_read_only'), \
         current_setting('loupe.user.region')",
        &region("EU"),
    )
    .await
    .unwrap();
    let b = one(&rows);
    let text = |i: usize| b.column(i).as_string::<i32>().value(0).to_owned();
    assert_eq!(
        (text(0), text(1), text(2)),
        ("7s".into(), "on".into(), "EU".into())
    );
    let err = run_restricted(&ds, "CREATE TABLE t_rls_never (a int)", &region("EU"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "datasource.read_only", "{err}");
}

/// What the connector cannot enforce is refused before it connects: row
/// filters, and settings that are not custom ones (which could undo the
/// statement timeout or the read-only transaction).
#[tokio::test]
async fn unenforceable_restrictions_are_refused_before_connecting() {
    let url = server_or_skip!(POSTGRES);
    let mut nowhere = url::Url::parse(&url).unwrap();
    nowhere.set_port(Some(free_port())).unwrap();
    let mut filtered = loupe_core::Restrictions::default();
    filtered.row_filters.push(loupe_core::RowFilter {
        table: "sales".into(),
        predicate: "region = 'EU'".into(),
        params: Vec::new(),
    });
    let mut server_setting = loupe_core::Restrictions::default();
    server_setting
        .settings
        .insert("statement_timeout".into(), "0".into());
    for ds in [datasource(&url, ""), datasource(nowhere.as_str(), "")] {
        for (restrictions, says) in [
            (&filtered, "row filters"),
            (&server_setting, "\"statement_timeout\""),
        ] {
            let err = run_restricted(&ds, "SELECT 1", restrictions)
                .await
                .unwrap_err();
            assert_eq!(err.code(), "datasource.restrictions_unsupported", "{err}");
            assert!(err.to_string().contains(says), "{err}");
        }
    }
}
