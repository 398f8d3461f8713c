//! The mysql datasource against a real MariaDB server.
//!
//! `scripts/test` starts one and sets `LOUPE_TEST_MYSQL_URL` (a user with
//! all rights on the scratch database `loupe_test`) and `LOUPE_TEST_CA`.
//! Without the variable the tests are skipped, except under `CI=true`,
//! where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    Array, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Decimal256Array,
    DurationMicrosecondArray, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array,
    Int64Array, RecordBatch, TimestampMicrosecondArray, UInt8Array, UInt64Array,
};
use arrow::datatypes::{DataType, TimeUnit};
use futures::StreamExt;
use loupe_core::{
    Datasource, Error, ItemType, Limits, ParameterDef, ParameterType, ParameterValues, Statement,
    Truncation,
};
use mysql_async::prelude::Queryable;
use serde_json::{Value as Json, json};

fn server() -> Option<String> {
    match std::env::var("LOUPE_TEST_MYSQL_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "LOUPE_TEST_MYSQL_URL is not set: CI must run the tests through scripts/test, which starts MariaDB"
            )
        }
        Err(_) => {
            eprintln!("skipped: LOUPE_TEST_MYSQL_URL is not set (scripts/test starts MariaDB)");
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

/// A plain connection for setting up data.
async fn admin(url: &str) -> mysql_async::Conn {
    let opts = mysql_async::Opts::from_url(&url.replace("?ssl_mode=disabled", "")).unwrap();
    mysql_async::Conn::new(opts).await.unwrap()
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
DROP TABLE IF EXISTS t_types;
SET SESSION sql_mode = '';
CREATE TABLE t_types (
    id INT PRIMARY KEY,
    ti TINYINT, tu TINYINT UNSIGNED, t1 TINYINT(1), si SMALLINT, su SMALLINT UNSIGNED,
    mi MEDIUMINT, mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, bu BIGINT UNSIGNED,
    f FLOAT, d DOUBLE, dec10 DECIMAL(10,2), dec65 DECIMAL(65,30), decu DECIMAL(8,3) UNSIGNED,
    dt DATE, dtm DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME(6), y YEAR,
    c CHAR(4), vc VARCHAR(20), tx TEXT, vbin VARCHAR(10) COLLATE utf8mb4_bin, vraw VARCHAR(10) CHARACTER SET binary,
    bn BINARY(4), vb VARBINARY(10), bl BLOB, js JSON, e ENUM('a','b','c'), st SET('x','y','z'), bt BIT(10),
    g POINT
) CHARACTER SET utf8mb4;
INSERT INTO t_types VALUES
(1, -128, 255, 1, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
 -9223372036854775808, 18446744073709551615, 1.5, 2.25, 12345678.91,
 12345678901234567890123456789012345.123456789012345678901234567890, 99999.999,
 '2024-02-29', '2024-02-29 23:59:59.999999', '2000-01-01 00:00:00.123', '-838:59:59.000000', 2155,
 'ab', 'héllo 🌍', 'long text', 'Bin', x'00ff', x'01020304', x'ff00', x'cafe', '{"a": [1, 2]}', 'b', 'x,z', b'1000000001',
 ST_GeomFromText('POINT(1 2)')),
(2, 127, 0, 0, 32767, 0, 8388607, 0, 2147483647, 0,
 9223372036854775807, 0, -0.5, -1e300, -0.01,
 -0.000000000000000000000000000001, 0,
 '0000-00-00', '0000-00-00 00:00:00', NULL, '34:05:06.5', 1901,
 '', '', '', '', '', x'00000000', '', '', 'null', 'a', '', b'0',
 NULL),
(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 '2024-02-00', NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"#;

/// Acceptance: every type maps exactly, with NULLs and edge values.
#[tokio::test]
async fn every_type_maps_exactly() {
    let url = server_or_skip!();
    let mut admin = admin(&url).await;
    admin.query_drop(TYPES_TABLE).await.unwrap();
    let ds = datasource(&url, "");
    let b = one(&run(&ds, "SELECT * FROM t_types ORDER BY id").await.unwrap());
    let col = |name: &str| {
        b.column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name}"))
            .clone()
    };
    let dt = |name: &str| {
        b.schema()
            .field_with_name(name)
            .unwrap()
            .data_type()
            .clone()
    };

    assert_eq!(
        col("ti")
            .as_any()
            .downcast_ref::<Int8Array>()
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        [Some(-128), Some(127), None]
    );
    assert_eq!(
        col("tu")
            .as_any()
            .downcast_ref::<UInt8Array>()
            .unwrap()
            .value(0),
        255
    );
    assert_eq!(dt("t1"), DataType::Int8, "TINYINT(1) stays Int8 by default");
    assert_eq!(dt("si"), DataType::Int16);
    assert_eq!(dt("su"), DataType::UInt16);
    assert_eq!(dt("mi"), DataType::Int32);
    assert_eq!(dt("mu"), DataType::UInt32);
    assert_eq!(
        col("i")
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap()
            .value(0),
        i32::MIN
    );
    assert_eq!(dt("iu"), DataType::UInt32);
    assert_eq!(
        col("bi")
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0),
        i64::MIN
    );
    assert_eq!(
        col("bu")
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap()
            .value(0),
        u64::MAX,
        "BIGINT UNSIGNED max is exact"
    );
    assert_eq!(
        col("f")
            .as_any()
            .downcast_ref::<Float32Array>()
            .unwrap()
            .value(0),
        1.5
    );
    assert_eq!(
        col("d")
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .value(1),
        -1e300
    );
    let dec10 = col("dec10");
    assert_eq!(dt("dec10"), DataType::Decimal128(10, 2));
    assert_eq!(
        dec10
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .unwrap()
            .value(0),
        1_234_567_891
    );
    assert_eq!(dt("dec65"), DataType::Decimal256(65, 30));
    let dec65 = col("dec65");
    let dec65 = dec65.as_any().downcast_ref::<Decimal256Array>().unwrap();
    assert_eq!(
        dec65.value_as_string(0),
        "12345678901234567890123456789012345.123456789012345678901234567890"
    );
    assert_eq!(
        dec65.value_as_string(1),
        "-0.000000000000000000000000000001"
    );
    assert_eq!(dt("decu"), DataType::Decimal128(8, 3));

    let date = col("dt");
    let date = date.as_any().downcast_ref::<Date32Array>().unwrap();
    assert_eq!(date.value(0), 19_782);
    assert!(date.is_null(1), "0000-00-00 is NULL");
    assert!(date.is_null(2), "2024-02-00 is NULL");
    let dtm = col("dtm");
    assert_eq!(dt("dtm"), DataType::Timestamp(TimeUnit::Microsecond, None));
    let dtm = dtm
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(dtm.value(0), 1_709_251_199_999_999);
    assert!(dtm.is_null(1));
    assert_eq!(
        dt("ts"),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(
        col("ts")
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap()
            .value(0),
        946_684_800_123_000
    );
    let tm = col("tm");
    let tm = tm
        .as_any()
        .downcast_ref::<DurationMicrosecondArray>()
        .unwrap();
    assert_eq!(
        tm.value(0),
        -(838 * 3600 + 59 * 60 + 59) * 1_000_000,
        "negative TIME"
    );
    assert_eq!(
        tm.value(1),
        (34 * 3600 + 5 * 60 + 6) * 1_000_000 + 500_000,
        "TIME past 24 hours"
    );
    assert_eq!(
        col("y")
            .as_any()
            .downcast_ref::<Int16Array>()
            .unwrap()
            .value(0),
        2155
    );

    assert_eq!(col("c").as_string::<i32>().value(0), "ab");
    assert_eq!(col("vc").as_string::<i32>().value(0), "héllo 🌍");
    assert_eq!(dt("vbin"), DataType::Utf8, "a _bin collation is still text");
    assert_eq!(
        dt("vraw"),
        DataType::Binary,
        "the binary character set is bytes"
    );
    assert_eq!(
        col("vraw")
            .as_any()
            .downcast_ref::<BinaryArray>()
            .unwrap()
            .value(0),
        [0x00, 0xff]
    );
    assert_eq!(
        col("bn")
            .as_any()
            .downcast_ref::<BinaryArray>()
            .unwrap()
            .value(0),
        [1, 2, 3, 4]
    );
    assert_eq!(dt("bl"), DataType::Binary);
    assert_eq!(col("js").as_string::<i32>().value(0), r#"{"a": [1, 2]}"#);
    assert_eq!(col("e").as_string::<i32>().value(0), "b");
    assert_eq!(col("st").as_string::<i32>().value(0), "x,z");
    assert_eq!(
        col("bt")
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap()
            .value(0),
        513
    );
    assert_eq!(dt("g"), DataType::Binary);
    assert_eq!(
        col("g")
            .as_any()
            .downcast_ref::<BinaryArray>()
            .unwrap()
            .value(0)
            .len(),
        25,
        "SRID + WKB point"
    );

    let as_bool = datasource(&url, "tinyint1_as_boolean=true");
    let b = one(&run(&as_bool, "SELECT t1, ti FROM t_types ORDER BY id")
        .await
        .unwrap());
    assert_eq!(
        b.column(0)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        [Some(true), Some(false), None]
    );
    assert_eq!(b.schema().field(1).data_type(), &DataType::Int8);
}

/// Acceptance: parameters of every template type are bound, never spliced.
#[tokio::test]
async fn parameters_of_every_type_are_bound() {
    let url = server_or_skip!();
    let mut admin = admin(&url).await;
    admin
        .query_drop(
            "DROP TABLE IF EXISTS people;
             CREATE TABLE people (id INT, name VARCHAR(20), score DECIMAL(5,2), active BOOL, born DATE, seen DATETIME(6), team VARCHAR(10));
             INSERT INTO people VALUES
               (1, 'ada', 9.5, 1, '1815-12-10', '2023-11-14 22:13:20', 'red'),
               (2, 'alan', 7, 0, '1912-06-23', '2023-11-14 22:15:00', 'blue'),
               (3, 'grace', 8.25, 1, '1906-12-09', '2023-11-14 22:16:40', NULL),
               (4, 'o''brien', 3, 1, '1990-01-01', '2023-11-14 22:18:20', 'red');",
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
            "id IN ({{p}})",
            ParameterType::list(ItemType::Integer),
            json!([1, 3]),
            vec![1, 3],
        ),
        (
            "name IN ({{p}})",
            ParameterType::list(ItemType::Text),
            json!(["ada", "grace"]),
            vec![1, 3],
        ),
    ];
    for (filter, ty, value, want) in cases {
        let sql = format!("SELECT id FROM people WHERE {filter} ORDER BY id");
        let defs = [ParameterDef::new("p", ty)];
        let (rows, _) = run_with(&ds, &sql, &defs, &[("p", value.clone())], &Limits::NONE)
            .await
            .unwrap_or_else(|e| panic!("{filter}: {e}"));
        assert_eq!(ints(&rows, 0), want, "{filter} with {value}");
    }
    let defs = [ParameterDef::new("r", ParameterType::DateRange)];
    let (rows, _) = run_with(
        &ds,
        "SELECT id FROM people WHERE born BETWEEN {{r.start}} AND {{r.end}} ORDER BY id",
        &defs,
        &[("r", json!("1900-01-01..1999-12-31"))],
        &Limits::NONE,
    )
    .await
    .unwrap();
    assert_eq!(ints(&rows, 0), vec![2, 3, 4]);

    let text = [ParameterDef::new("p", ParameterType::Text)];
    for payload in [
        "'; DROP TABLE people; --",
        "1 OR 1=1",
        "x' OR '1'='1",
        "\\'; DROP TABLE people; #",
    ] {
        let (rows, _) = run_with(
            &ds,
            "SELECT count(*) FROM people WHERE name = {{p}}",
            &text,
            &[("p", json!(payload))],
            &Limits::NONE,
        )
        .await
        .unwrap();
        assert_eq!(ints(&rows, 0), vec![0], "{payload}");
    }
    let integer = [ParameterDef::new("p", ParameterType::Integer)];
    let err = run_with(
        &ds,
        "SELECT id FROM people WHERE id = {{p}}",
        &integer,
        &[("p", json!("1 OR 1=1"))],
        &Limits::NONE,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "param.wrong_type");
    // MySQL compares the text '1 OR 1=1' to an integer as the number 1:
    // still one value, never a wider filter.
    let (rows, _) = run_with(
        &ds,
        "SELECT id FROM people WHERE id = {{p}}",
        &text,
        &[("p", json!("1 OR 1=1"))],
        &Limits::NONE,
    )
    .await
    .unwrap();
    assert_eq!(ints(&rows, 0), vec![1]);
    let count: Option<i64> = admin
        .query_first("SELECT count(*) FROM people")
        .await
        .unwrap();
    assert_eq!(count, Some(4));
}

#[tokio::test]
async fn server_errors_keep_errno_and_sqlstate() {
    let url = server_or_skip!();
    let ds = datasource(&url, "");
    let err = run(&ds, "SELECT * FROM no_such_table").await.unwrap_err();
    let q = err.as_query_error().unwrap();
    assert_eq!(
        (q.vendor_code.as_deref(), q.sqlstate.as_deref()),
        (Some("1146"), Some("42S02"))
    );
    let err = run(&ds, "SELEC 1").await.unwrap_err();
    assert_eq!(
        err.as_query_error().and_then(|q| q.vendor_code.as_deref()),
        Some("1064")
    );
}

/// Acceptance: writes fail in the server, whatever the route.
#[tokio::test]
async fn read_only_refuses_writes() {
    let url = server_or_skip!();
    let mut admin = admin(&url).await;
    admin
        .query_drop(
            "DROP TABLE IF EXISTS ro; CREATE TABLE ro (id INT); INSERT INTO ro VALUES (1), (2);
             DROP FUNCTION IF EXISTS sneaky;
             CREATE FUNCTION sneaky() RETURNS INT MODIFIES SQL DATA BEGIN INSERT INTO ro VALUES (99); RETURN 1; END",
        )
        .await
        .unwrap();
    let ds = datasource(&url, "");
    for sql in [
        "INSERT INTO ro VALUES (3)",
        "UPDATE ro SET id = 5",
        "DELETE FROM ro",
        "REPLACE INTO ro VALUES (4)",
        "CREATE TABLE ro2 (id INT)",
        "DROP TABLE ro",
        "TRUNCATE TABLE ro",
        "SELECT sneaky()",
    ] {
        let err = run(&ds, sql).await.map(|_| ()).unwrap_err();
        assert_eq!(err.code(), "datasource.read_only", "{sql}: {err}");
    }
    let err = run(&ds, "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE ro")
        .await
        .unwrap_err();
    assert!(
        err.as_query_error().is_some() || err.code() == "datasource.read_only",
        "{err}"
    );
    let count: Option<(i64, i32, i32)> = admin
        .query_first("SELECT count(*), min(id), max(id) FROM ro")
        .await
        .unwrap();
    assert_eq!(count, Some((2, 1, 2)));

    let rw = datasource(&url, "read_only=false");
    run(&rw, "INSERT INTO ro VALUES (3)").await.unwrap();
    let count: Option<i64> = admin.query_first("SELECT count(*) FROM ro").await.unwrap();
    assert_eq!(count, Some(3));
}

async fn gone_from_processlist(admin: &mut mysql_async::Conn, marker: &str) {
    let started = Instant::now();
    loop {
        let rows: Vec<(u64, Option<String>)> = admin
            .query("SELECT ID, INFO FROM information_schema.PROCESSLIST")
            .await
            .unwrap();
        if !rows.iter().any(|(_, info)| {
            info.as_deref()
                .is_some_and(|i| i.contains(marker) && !i.contains("PROCESSLIST"))
        }) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{marker} still running after 5s: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const HEAVY: &str = "SELECT sum(a.seq * b.seq) FROM seq_1_to_1000000 a, seq_1_to_1000000 b";

/// Acceptance: timeouts and drops stop the statement in the server.
#[tokio::test]
async fn timeouts_and_drops_kill_the_query() {
    let url = server_or_skip!();
    let mut admin = admin(&url).await;
    let ds = datasource(&url, "");

    let started = Instant::now();
    let err = run_with(
        &ds,
        &format!("{HEAVY} /* client-deadline */"),
        &[],
        &[],
        &Limits::NONE.with_timeout(Duration::from_millis(500)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "query.timeout");
    assert!(started.elapsed() < Duration::from_secs(3));
    gone_from_processlist(&mut admin, "client-deadline").await;

    let server_side = datasource(&url, "statement_timeout=300ms");
    let err = run(&server_side, &format!("{HEAVY} /* server-deadline */"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "query.timeout", "{err}");
    gone_from_processlist(&mut admin, "server-deadline").await;

    let statement = Statement::from_template(
        &format!("{HEAVY} /* dropped */"),
        ds.dialect(),
        &[],
        &Default::default(),
    )
    .unwrap();
    let mut stream = ds.execute(&statement, &Limits::NONE).await.unwrap();
    let _ = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    drop(stream);
    gone_from_processlist(&mut admin, "dropped").await;

    assert_eq!(ints(&run(&ds, "SELECT 7").await.unwrap(), 0), vec![7]);
}

#[tokio::test]
async fn row_limits_truncate() {
    let url = server_or_skip!();
    let ds = datasource(&url, "pool_size=1");
    let (rows, truncation) = run_with(
        &ds,
        "SELECT seq FROM seq_1_to_1000000",
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
        "SELECT seq FROM seq_1_to_1000",
        &[],
        &[],
        &Limits::NONE.with_max_rows(1000),
    )
    .await
    .unwrap();
    assert_eq!(truncation, None);
    assert_eq!(ints(&run(&ds, "SELECT 1").await.unwrap(), 0), vec![1]);
}

#[tokio::test]
async fn an_exhausted_pool_says_so() {
    let url = server_or_skip!();
    let ds = datasource(&url, "pool_size=1&pool_wait_timeout=200ms");
    let busy = Statement::from_template("SELECT SLEEP(2)", ds.dialect(), &[], &Default::default())
        .unwrap();
    let held = ds.execute(&busy, &Limits::NONE).await.unwrap();
    let err = run(&ds, "SELECT 1").await.unwrap_err();
    assert_eq!(err.code(), "datasource.pool_exhausted", "{err}");
    drop(held);
}

#[tokio::test]
async fn connection_failures_are_told_apart() {
    let url = server_or_skip!();
    let port = url::Url::parse(&url).unwrap().port().unwrap();
    let registry = loupe_connectors::registry();
    for (source, code) in [
        (
            format!("mysql://loupe:wrong-pw@127.0.0.1:{port}/loupe_test?ssl_mode=disabled"),
            "datasource.auth_failed",
        ),
        (
            format!("mysql://loupe:loupe-test-pw@127.0.0.1:{port}/loupe_missing?ssl_mode=disabled"),
            "datasource.database_missing",
        ),
        (
            format!(
                "mysql://loupe_tls:loupe-test-pw@127.0.0.1:{port}/loupe_test?ssl_mode=disabled"
            ),
            "datasource.auth_failed",
        ),
        (
            format!(
                "mysql://loupe:loupe-test-pw@127.0.0.1:{}/loupe_test?ssl_mode=disabled",
                free_port()
            ),
            "datasource.connection_refused",
        ),
        (
            format!(
                "mysql://loupe:loupe-test-pw@localhost:{port}/loupe_test?ssl_mode=verify-identity"
            ),
            "datasource.tls_failed",
        ),
    ] {
        let ds = registry.from_url(&source).unwrap();
        let err = ds.ping().await.unwrap_err();
        assert_eq!(err.code(), code, "{source}: {err}");
        assert!(
            !err.to_string().contains("loupe-test-pw") && !err.to_string().contains("wrong-pw")
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn tls_modes_connect() {
    let url = server_or_skip!();
    let Ok(ca) = std::env::var("LOUPE_TEST_CA") else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "LOUPE_TEST_CA is not set"
        );
        return;
    };
    let port = url::Url::parse(&url).unwrap().port().unwrap();
    for (host, mode) in [
        ("127.0.0.1", "preferred".to_owned()),
        ("127.0.0.1", "required".to_owned()),
        ("127.0.0.1", format!("verify-ca&ssl_ca={ca}")),
        ("localhost", format!("verify-identity&ssl_ca={ca}")),
    ] {
        let source =
            format!("mysql://loupe_tls:loupe-test-pw@{host}:{port}/loupe_test?ssl_mode={mode}");
        let ds = loupe_connectors::registry().from_url(&source).unwrap();
        let rows = run(&ds, "SELECT VARIABLE_VALUE <> '' FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_cipher'")
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(ints(&rows, 0), vec![1], "{mode} encrypts");
    }
}

#[tokio::test]
async fn introspection_lists_tables_and_views() {
    let url = server_or_skip!();
    let mut admin = admin(&url).await;
    admin
        .query_drop(
            "DROP VIEW IF EXISTS v_orders; DROP TABLE IF EXISTS i_orders;
             CREATE TABLE i_orders (id BIGINT UNSIGNED NOT NULL, total DECIMAL(12,2), flag TINYINT(1), note TEXT, raw VARBINARY(8)) COMMENT 'All orders';
             CREATE VIEW v_orders AS SELECT id, total FROM i_orders;",
        )
        .await
        .unwrap();
    let ds = datasource(&url, "");
    let catalog = ds.introspect().await.unwrap();
    assert!(!catalog.schemas.iter().any(|s| {
        ["mysql", "information_schema", "performance_schema", "sys"].contains(&s.name.as_str())
    }));
    let schema = catalog
        .schemas
        .iter()
        .find(|s| s.name == "loupe_test")
        .unwrap();
    let table = schema.tables.iter().find(|t| t.name == "i_orders").unwrap();
    assert_eq!(table.kind, loupe_core::TableKind::Table);
    assert_eq!(table.description.as_deref(), Some("All orders"));
    let column = |n: &str| table.columns.iter().find(|c| c.name == n).unwrap();
    assert_eq!(
        (column("id").data_type.clone(), column("id").nullable),
        (DataType::UInt64, false)
    );
    assert_eq!(column("total").data_type, DataType::Decimal128(12, 2));
    assert_eq!(column("flag").data_type, DataType::Int8);
    assert_eq!(column("note").data_type, DataType::Utf8);
    assert_eq!(column("raw").data_type, DataType::Binary);
    let view = schema.tables.iter().find(|t| t.name == "v_orders").unwrap();
    assert_eq!(view.kind, loupe_core::TableKind::View);
}

/// Acceptance: a server cannot make the client read a local file. A fake
/// server asks for one (`LOCAL INFILE` request) in answer to the first
/// query; the client must refuse without sending a byte of the file.
#[tokio::test]
async fn a_server_cannot_make_the_client_read_a_local_file() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "TOP-SECRET-MARKER").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let path = secret.display().to_string();
    let server = std::thread::spawn(move || fake_server(listener, &path));

    let ds = loupe_connectors::registry()
        .from_url(&format!(
            "mysql://u:p@127.0.0.1:{port}/db?ssl_mode=disabled&pool_wait_timeout=5s"
        ))
        .unwrap();
    let result = ds.ping().await;
    assert!(result.is_err(), "the connection must fail");
    let received = server.join().unwrap();
    assert!(
        String::from_utf8_lossy(&received).starts_with("<requested>"),
        "the fake server never got to ask for the file: {received:?}"
    );
    assert!(
        !String::from_utf8_lossy(&received).contains("TOP-SECRET-MARKER"),
        "the client sent the file"
    );
}

/// Speaks just enough of the protocol to ask the client for `path`, and
/// returns every byte the client sent after the request.
fn fake_server(listener: std::net::TcpListener, path: &str) -> Vec<u8> {
    let (mut socket, _) = listener.accept().unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let write_packet = |s: &mut std::net::TcpStream, seq: u8, payload: &[u8]| {
        let len = payload.len() as u32;
        let mut p = vec![len as u8, (len >> 8) as u8, (len >> 16) as u8, seq];
        p.extend_from_slice(payload);
        s.write_all(&p).unwrap();
    };
    let read_packet = |s: &mut std::net::TcpStream| -> Option<(u8, Vec<u8>)> {
        let mut header = [0u8; 4];
        s.read_exact(&mut header).ok()?;
        let len = header[0] as usize | (header[1] as usize) << 8 | (header[2] as usize) << 16;
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).ok()?;
        Some((header[3], body))
    };
    // Handshake v10: protocol 41, secure connection, plugin auth,
    // LOCAL FILES, deprecate EOF.
    let capabilities: u32 =
        0x0000_0200 | 0x0000_8000 | 0x0008_0000 | 0x0000_0080 | 0x0100_0000 | 0x0000_0008;
    let mut hello = vec![10u8];
    hello.extend_from_slice(b"5.7.99-fake\0");
    hello.extend_from_slice(&7u32.to_le_bytes());
    hello.extend_from_slice(b"abcdefgh\0");
    hello.extend_from_slice(&(capabilities as u16).to_le_bytes());
    hello.push(45);
    hello.extend_from_slice(&2u16.to_le_bytes());
    hello.extend_from_slice(&((capabilities >> 16) as u16).to_le_bytes());
    hello.push(21);
    hello.extend_from_slice(&[0u8; 10]);
    hello.extend_from_slice(b"ijklmnopqrst\0");
    hello.extend_from_slice(b"mysql_native_password\0");
    write_packet(&mut socket, 0, &hello);
    let Some((seq, _response)) = read_packet(&mut socket) else {
        return Vec::new();
    };
    write_packet(&mut socket, seq + 1, &[0, 0, 0, 2, 0, 0, 0]);
    // Answer every command with a request for the file.
    let mut received = Vec::new();
    while let Some((_, command)) = read_packet(&mut socket) {
        if !received.is_empty() || command.first() != Some(&0x03) {
            received.extend_from_slice(&command);
            continue;
        }
        let mut request = vec![0xFB];
        request.extend_from_slice(path.as_bytes());
        write_packet(&mut socket, 1, &request);
        received.extend_from_slice(b"<requested>");
        // Whatever comes back now would be the file.
        while let Some((_, data)) = read_packet(&mut socket) {
            received.extend_from_slice(&data);
        }
        break;
    }
    received
}

#[tokio::test]
async fn concurrent_queries_share_the_pool() {
    let url = server_or_skip!();
    let ds = datasource(&url, "pool_size=3");
    let mut tasks = Vec::new();
    for i in 1..=30i64 {
        let ds = ds.clone();
        tasks.push(tokio::spawn(async move {
            let defs = [ParameterDef::new("n", ParameterType::Integer)];
            let (rows, _) = run_with(
                &ds,
                "SELECT count(*) FROM seq_1_to_100000 WHERE seq <= {{n}}",
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
