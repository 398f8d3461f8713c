//! The postgres datasource against a real PostgreSQL server.
//!
//! `scripts/test` starts one and sets `LOUPE_TEST_POSTGRES_URL` (the owner
//! of a scratch database) and `LOUPE_TEST_POSTGRES_CA`. Each test works in
//! its own schema. Without the variable the tests are skipped, except under
//! `CI=true`, where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    Array, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Decimal256Array,
    Float64Array, Int16Array, Int32Array, Int64Array, IntervalMonthDayNanoArray, ListArray,
    RecordBatch, StructArray, Time64MicrosecondArray, TimestampMicrosecondArray, UInt32Array,
};
use arrow::datatypes::{DataType, IntervalMonthDayNano, TimeUnit, i256};
use futures::StreamExt;
use loupe_core::{
    Datasource, Error, ItemType, Limits, ParameterDef, ParameterType, ParameterValues, Statement,
    Truncation,
};
use serde_json::{Value as Json, json};

/// The test server's URL, or `None` to skip (never under CI).
fn server() -> Option<String> {
    match std::env::var("LOUPE_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "LOUPE_TEST_POSTGRES_URL is not set: CI must run the tests through scripts/test, which starts PostgreSQL"
            )
        }
        Err(_) => {
            eprintln!(
                "skipped: LOUPE_TEST_POSTGRES_URL is not set (scripts/test starts PostgreSQL)"
            );
            None
        }
    }
}

macro_rules! server_or_skip {
    () => {
        match server() {
            Some(url) => url,
            None => return,
        }
    };
}

/// A plain client for setting up data, as the database owner.
async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// A fresh schema for one test, dropped on the next run.
async fn schema(url: &str, name: &str) -> tokio_postgres::Client {
    let client = admin(url).await;
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}; SET search_path = {name}"
        ))
        .await
        .unwrap();
    client
}

fn datasource(url: &str, extra: &str) -> Arc<dyn Datasource> {
    let url = if extra.is_empty() {
        url.to_owned()
    } else {
        format!("{url}&{extra}")
    };
    loupe_connectors::registry().from_url(&url).unwrap()
}

async fn run_with(
    ds: &Arc<dyn Datasource>,
    sql: &str,
    defs: &[ParameterDef],
    values: &[(&str, Json)],
    limits: &Limits,
) -> Result<(Vec<RecordBatch>, Option<Truncation>), Error> {
    let values: ParameterValues = values
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let statement = Statement::from_template(sql, ds.dialect(), defs, &values)?;
    let mut stream = ds.execute(&statement, limits).await?;
    let mut batches = Vec::new();
    while let Some(b) = stream.next().await {
        batches.push(b?);
    }
    Ok((batches, stream.truncation()))
}

async fn run(ds: &Arc<dyn Datasource>, sql: &str) -> Result<Vec<RecordBatch>, Error> {
    Ok(run_with(ds, sql, &[], &[], &Limits::NONE).await?.0)
}

fn one(batches: &[RecordBatch]) -> RecordBatch {
    arrow::compute::concat_batches(&batches[0].schema(), batches).unwrap()
}

fn ints(batches: &[RecordBatch], column: usize) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let c = arrow::compute::cast(b.column(column), &DataType::Int64).unwrap();
            c.as_primitive::<arrow::datatypes::Int64Type>()
                .values()
                .to_vec()
        })
        .collect()
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
    let url = server_or_skip!();
    let admin = schema(&url, "t_types").await;
    admin.batch_execute(TYPES_TABLE).await.unwrap();
    check_everything(&datasource(&url, "")).await;
    check_everything(&datasource(&url, "transfer=rows")).await;
    // A small batch size makes every column cross batch boundaries.
    check_everything(&datasource(&url, "transfer=rows&batch_rows=1")).await;
}

/// Acceptance: parameters of every template type are bound, never spliced.
#[tokio::test]
async fn parameters_of_every_type_are_bound() {
    let url = server_or_skip!();
    let admin = schema(&url, "t_params").await;
    admin
        .batch_execute(
            "CREATE TABLE people (id int, name text, score numeric(5,2), active bool, born date, seen timestamptz, team text);
             INSERT INTO people VALUES
               (1, 'ada', 9.5, true, '1815-12-10', '2023-11-14 22:13:20+00', 'red'),
               (2, 'alan', 7, false, '1912-06-23', '2023-11-14 22:15:00+00', 'blue'),
               (3, 'grace', 8.25, true, '1906-12-09', '2023-11-14 22:16:40+00', NULL),
               (4, 'o''brien', 3, true, '1990-01-01', '2023-11-14 22:18:20+00', 'red');",
        )
        .await
        .unwrap();
    let ds = datasource(&url, "");
    let cases: Vec<(&str, ParameterType, Json, Vec<i64>)> = vec![
        (
            "name = {{p}}",
            ParameterType::Text,
            json!("o'brien"),
            vec![4],
        ),
        ("id = {{p}}", ParameterType::Integer, json!("2"), vec![2]),
        (
            "score > {{p}}",
            ParameterType::Number,
            json!(8.0),
            vec![1, 3],
        ),
        (
            "active = {{p}}",
            ParameterType::Boolean,
            json!(false),
            vec![2],
        ),
        (
            "born < {{p}}",
            ParameterType::Date,
            json!("1900-01-01"),
            vec![1],
        ),
        (
            "seen >= {{p}}",
            ParameterType::Datetime,
            json!("2023-11-14T23:16:40+01:00"),
            vec![3, 4],
        ),
        (
            "team = {{p}}",
            ParameterType::Enum {
                options: vec!["red".into(), "blue".into()],
            },
            json!("red"),
            vec![1, 4],
        ),
        (
            "id in ({{p}})",
            ParameterType::list(ItemType::Integer),
            json!([1, 3]),
            vec![1, 3],
        ),
        (
            "name = any(array[{{p}}])",
            ParameterType::list(ItemType::Text),
            json!(["ada", "grace"]),
            vec![1, 3],
        ),
    ];
    for (filter, ty, value, want) in cases {
        let sql = format!("SELECT id FROM t_params.people WHERE {filter} ORDER BY id");
        let defs = [ParameterDef::new("p", ty)];
        let (rows, _) = run_with(&ds, &sql, &defs, &[("p", value.clone())], &Limits::NONE)
            .await
            .unwrap_or_else(|e| panic!("{filter}: {e}"));
        assert_eq!(ints(&rows, 0), want, "{filter} with {value}");
    }
    let defs = [ParameterDef::new("r", ParameterType::DateRange)];
    let (rows, _) = run_with(
        &ds,
        "SELECT id FROM t_params.people WHERE born BETWEEN {{r.start}} AND {{r.end}} ORDER BY id",
        &defs,
        &[("r", json!({"start": "1900-01-01", "end": "1999-12-31"}))],
        &Limits::NONE,
    )
    .await
    .unwrap();
    assert_eq!(ints(&rows, 0), vec![2, 3, 4]);

    // Injection payloads are data.
    let text = [ParameterDef::new("p", ParameterType::Text)];
    for payload in [
        "'; DROP TABLE t_params.people; --",
        "1 OR 1=1",
        "x' OR '1'='1",
    ] {
        let (rows, _) = run_with(
            &ds,
            "SELECT count(*) FROM t_params.people WHERE name = {{p}}",
            &text,
            &[("p", json!(payload))],
            &Limits::NONE,
        )
        .await
        .unwrap();
        assert_eq!(ints(&rows, 0), vec![0], "{payload}");
    }
    // ...or a type error, never a wider filter.
    let integer = [ParameterDef::new("p", ParameterType::Integer)];
    let err = run_with(
        &ds,
        "SELECT id FROM t_params.people WHERE id = {{p}}",
        &integer,
        &[("p", json!("1 OR 1=1"))],
        &Limits::NONE,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "param.wrong_type");
    let err = run_with(
        &ds,
        "SELECT id FROM t_params.people WHERE id = {{p}}",
        &text,
        &[("p", json!("1 OR 1=1"))],
        &Limits::NONE,
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.as_query_error().and_then(|q| q.sqlstate.as_deref()),
        Some("22P02"),
        "{err}"
    );
    let count = admin
        .query_one("SELECT count(*) FROM t_params.people", &[])
        .await
        .unwrap();
    assert_eq!(count.get::<_, i64>(0), 4);
}

/// The server's own words come back: SQLSTATE, detail, hint, position.
#[tokio::test]
async fn server_errors_keep_their_details() {
    let url = server_or_skip!();
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
    let err = run(&ds, "SELECT 1; SELECT 2").await.unwrap_err();
    assert_eq!(
        err.as_query_error().and_then(|q| q.sqlstate.as_deref()),
        Some("42601"),
        "one statement at a time"
    );
}

/// Acceptance: writes fail in the database itself, whatever the route.
#[tokio::test]
async fn read_only_refuses_every_write_path() {
    let url = server_or_skip!();
    let admin = schema(&url, "t_ro").await;
    admin
        .batch_execute(
            "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);
             CREATE FUNCTION t_ro.sneaky() RETURNS int LANGUAGE sql AS 'INSERT INTO t_ro.t VALUES (99) RETURNING id';",
        )
        .await
        .unwrap();
    let ds = datasource(&url, "");
    for sql in [
        "INSERT INTO t_ro.t VALUES (3)",
        "UPDATE t_ro.t SET id = 5",
        "DELETE FROM t_ro.t",
        "CREATE TABLE t_ro.u (id int)",
        "DROP TABLE t_ro.t",
        "TRUNCATE t_ro.t",
        "SELECT * FROM t_ro.t FOR UPDATE",
        "WITH gone AS (DELETE FROM t_ro.t RETURNING *) SELECT * FROM gone",
        "SELECT t_ro.sneaky()",
        "COPY t_ro.t FROM STDIN",
        "SELECT set_config('transaction_read_only', 'off', false)",
        "DO $$ BEGIN SET LOCAL transaction_read_only = off; INSERT INTO t_ro.t VALUES (7); END $$",
    ] {
        let err = run(&ds, sql).await.map(|_| ()).unwrap_err();
        let refused = err.code() == "datasource.read_only"
            || err.as_query_error().and_then(|q| q.sqlstate.as_deref()) == Some("25001");
        assert!(refused, "{sql}: {err} ({})", err.code());
    }
    let count = admin
        .query_one("SELECT count(*), min(id), max(id) FROM t_ro.t", &[])
        .await
        .unwrap();
    assert_eq!(
        (
            count.get::<_, i64>(0),
            count.get::<_, i32>(1),
            count.get::<_, i32>(2)
        ),
        (2, 1, 2)
    );

    // A SET made by one statement is undone before the next one.
    let ds = datasource(&url, "pool_size=1");
    run(&ds, "SET application_name = 'changed'").await.unwrap();
    let rows = run(&ds, "SHOW application_name").await.unwrap();
    assert_eq!(one(&rows).column(0).as_string::<i32>().value(0), "loupe");

    // With read_only=false the same datasource kind writes.
    let rw = datasource(&url, "read_only=false");
    run(&rw, "INSERT INTO t_ro.t VALUES (3) RETURNING id")
        .await
        .unwrap();
    let count = admin
        .query_one("SELECT count(*) FROM t_ro.t", &[])
        .await
        .unwrap();
    assert_eq!(count.get::<_, i64>(0), 3);
}

/// Waits until no backend runs a query containing `marker`; fails after
/// five seconds.
async fn gone_from_activity(admin: &tokio_postgres::Client, marker: &str) -> Duration {
    let started = Instant::now();
    loop {
        let row = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()",
                &[&marker],
            )
            .await
            .unwrap();
        if row.get::<_, i64>(0) == 0 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{marker} still running after 5s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Acceptance: a timeout, a dropped stream and the server's own
/// statement_timeout all stop the query on the server.
#[tokio::test]
async fn timeouts_and_drops_cancel_on_the_server() {
    let url = server_or_skip!();
    let admin = admin(&url).await;
    let ds = datasource(&url, "");

    let started = Instant::now();
    let err = run_with(
        &ds,
        "SELECT pg_sleep(30) /* client-deadline */",
        &[],
        &[],
        &Limits::NONE.with_timeout(Duration::from_millis(500)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "query.timeout");
    assert!(started.elapsed() < Duration::from_secs(3));
    gone_from_activity(&admin, "client-deadline").await;

    let server_side = datasource(&url, "statement_timeout=300ms");
    let err = run(&server_side, "SELECT pg_sleep(30) /* server-deadline */")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "query.timeout", "{err}");
    gone_from_activity(&admin, "server-deadline").await;

    // Drop a stream mid-way: a long COPY, after its first batch.
    let statement = Statement::from_template(
        "SELECT a * 100000 + b /* dropped-copy */ FROM generate_series(1, 100000) a, generate_series(1, 100000) b",
        ds.dialect(),
        &[],
        &Default::default(),
    )
    .unwrap();
    let mut stream = ds.execute(&statement, &Limits::NONE).await.unwrap();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    gone_from_activity(&admin, "dropped-copy").await;

    // Drop a stream that never produced a row.
    let statement = Statement::from_template(
        "SELECT pg_sleep(30) /* dropped-early */",
        ds.dialect(),
        &[],
        &Default::default(),
    )
    .unwrap();
    let mut stream = ds.execute(&statement, &Limits::NONE).await.unwrap();
    let _ = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    drop(stream);
    gone_from_activity(&admin, "dropped-early").await;

    // The pool still works after all that.
    assert_eq!(ints(&run(&ds, "SELECT 7").await.unwrap(), 0), vec![7]);
}

/// A row limit ends the read cleanly and says the result was cut.
#[tokio::test]
async fn row_limits_truncate() {
    let url = server_or_skip!();
    let ds = datasource(&url, "pool_size=1");
    let (rows, truncation) = run_with(
        &ds,
        "SELECT g FROM generate_series(1, 1000000) g",
        &[],
        &[],
        &Limits::NONE.with_max_rows(1000),
    )
    .await
    .unwrap();
    assert_eq!(rows.iter().map(RecordBatch::num_rows).sum::<usize>(), 1000);
    assert_eq!(truncation, Some(Truncation::MaxRows { limit: 1000 }));
    let (_, truncation) = run_with(
        &ds,
        "SELECT g FROM generate_series(1, 1000) g",
        &[],
        &[],
        &Limits::NONE.with_max_rows(1000),
    )
    .await
    .unwrap();
    assert_eq!(truncation, None);
    let (rows, truncation) = run_with(
        &ds,
        "SELECT repeat('x', 1000) FROM generate_series(1, 100000)",
        &[],
        &[],
        &Limits::NONE.with_max_bytes(100_000),
    )
    .await
    .unwrap();
    assert!(rows.iter().map(RecordBatch::num_rows).sum::<usize>() < 200);
    assert_eq!(truncation, Some(Truncation::MaxBytes { limit: 100_000 }));
    assert_eq!(ints(&run(&ds, "SELECT 1").await.unwrap(), 0), vec![1]);
}

/// Acceptance: a full pool answers with its own error after the wait.
#[tokio::test]
async fn an_exhausted_pool_says_so() {
    let url = server_or_skip!();
    let ds = datasource(&url, "pool_size=1&pool_wait_timeout=200ms");
    let busy =
        Statement::from_template("SELECT pg_sleep(3)", ds.dialect(), &[], &Default::default())
            .unwrap();
    let held = ds.execute(&busy, &Limits::NONE).await.unwrap();
    let started = Instant::now();
    let err = run(&ds, "SELECT 1").await.unwrap_err();
    assert_eq!(err.code(), "datasource.pool_exhausted", "{err}");
    assert!(err.is_retriable());
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(err.to_string().contains("pool_size"), "{err}");
    drop(held);
}

/// Acceptance: each way connecting fails has its own error, and none
/// repeats the password.
#[tokio::test]
async fn connection_failures_are_told_apart() {
    let url = server_or_skip!();
    let parsed = url::Url::parse(&url).unwrap();
    let port = parsed.port().unwrap();
    let registry = loupe_connectors::registry();
    let check = |source: String, code: &'static str| {
        let registry = registry.clone();
        async move {
            let ds = registry.from_url(&source).unwrap();
            let err = ds.ping().await.unwrap_err();
            assert_eq!(err.code(), code, "{source}: {err}");
            assert!(!err.to_string().contains("loupe-test-pw"), "{err}");
            assert!(!err.to_string().contains("wrong-pw"), "{err}");
            err
        }
    };
    let err = check(
        format!("postgres://loupe:wrong-pw@127.0.0.1:{port}/loupe_test?sslmode=disable"),
        "datasource.auth_failed",
    )
    .await;
    assert_eq!(err.kind(), loupe_core::ErrorKind::Forbidden);
    check(
        format!("postgres://loupe:loupe-test-pw@127.0.0.1:{port}/no_such_db?sslmode=disable"),
        "datasource.database_missing",
    )
    .await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    check(
        format!("postgres://loupe:loupe-test-pw@127.0.0.1:{closed}/loupe_test?sslmode=disable&connect_timeout=2s"),
        "datasource.connection_refused",
    )
    .await;
    // The test server's certificate is not signed by a root this system trusts.
    check(
        format!("postgres://loupe:loupe-test-pw@localhost:{port}/loupe_test?sslmode=verify-full"),
        "datasource.tls_failed",
    )
    .await;
    // This user may only connect over TLS.
    check(
        format!("postgres://loupe_tls:loupe-test-pw@127.0.0.1:{port}/loupe_test?sslmode=disable"),
        "datasource.auth_failed",
    )
    .await;
}

/// Every sslmode against a server with TLS on.
#[tokio::test]
async fn tls_modes_connect() {
    let url = server_or_skip!();
    let Ok(ca) = std::env::var("LOUPE_TEST_POSTGRES_CA") else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "LOUPE_TEST_POSTGRES_CA is not set"
        );
        return;
    };
    let port = url::Url::parse(&url).unwrap().port().unwrap();
    for (host, mode) in [
        ("127.0.0.1", "prefer".to_owned()),
        ("127.0.0.1", "require".to_owned()),
        ("127.0.0.1", format!("verify-ca&sslrootcert={ca}")),
        ("localhost", format!("verify-full&sslrootcert={ca}")),
    ] {
        let source =
            format!("postgres://loupe_tls:loupe-test-pw@{host}:{port}/loupe_test?sslmode={mode}");
        let ds = loupe_connectors::registry().from_url(&source).unwrap();
        ds.ping().await.unwrap_or_else(|e| panic!("{mode}: {e}"));
        let rows = run(
            &ds,
            "SELECT ssl::int FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        )
        .await
        .unwrap();
        assert_eq!(ints(&rows, 0), vec![1], "{mode} encrypts");
    }
}

/// Acceptance: the schema browser lists user tables, views and
/// materialized views with both type names.
#[tokio::test]
async fn introspection_lists_user_objects() {
    let url = server_or_skip!();
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

/// Many queries at once share a bounded pool.
#[tokio::test]
async fn concurrent_queries_share_the_pool() {
    let url = server_or_skip!();
    let ds = datasource(&url, "pool_size=3");
    let mut tasks = Vec::new();
    for i in 0..30i64 {
        let ds = ds.clone();
        tasks.push(tokio::spawn(async move {
            let defs = [ParameterDef::new("n", ParameterType::Integer)];
            let (rows, _) = run_with(
                &ds,
                "SELECT count(*) FROM generate_series(1, {{n}})",
                &defs,
                &[("n", json!(i * 1000))],
                &Limits::NONE,
            )
            .await
            .unwrap();
            assert_eq!(ints(&rows, 0), vec![i * 1000]);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn backend_pid(ds: &Arc<dyn Datasource>) -> i64 {
    ints(&run(ds, "SELECT pg_backend_pid()").await.unwrap(), 0)[0]
}

/// Connections idle past `idle_timeout` are replaced, and so is one the
/// server ended, without the next query noticing.
#[tokio::test]
async fn idle_and_broken_connections_are_replaced() {
    let url = server_or_skip!();
    let admin = admin(&url).await;
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
