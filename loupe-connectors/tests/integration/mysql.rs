//! What only the mysql datasource does, against a real MariaDB server: its
//! own types, its catalog, and refusing a server's request for a local
//! file. What every connector does is in the contract (`contract.rs`).
//!
//! `scripts/test` starts one and sets `LOUPE_TEST_MYSQL_URL` (a user that
//! may only read the scratch database `loupe_test`: a datasource refuses
//! one with write grants), `LOUPE_TEST_MYSQL_OWNER_URL` (all rights on it,
//! to write fixtures) and `LOUPE_TEST_CA`. Without the variables the tests
//! are skipped, except under `CI=true`, where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::time::Duration;

use arrow::array::{
    Array, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Decimal256Array,
    DurationMicrosecondArray, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array,
    Int64Array, TimestampMicrosecondArray, UInt8Array, UInt64Array,
};
use arrow::datatypes::{DataType, TimeUnit};
use mysql_async::prelude::Queryable;

use crate::support::{
    MARIADB, MARIADB_OWNER, datasource, free_port, mysql_owner, one, run, run_restricted,
};

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
    let url = server_or_skip!(MARIADB);
    let mut admin = mysql_owner(&server_or_skip!(MARIADB_OWNER)).await;
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

#[tokio::test]
async fn introspection_lists_tables_and_views() {
    let url = server_or_skip!(MARIADB);
    let mut admin = mysql_owner(&server_or_skip!(MARIADB_OWNER)).await;
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

/// MySQL and MariaDB have no row-level security for settings to feed, and
/// the connector rewrites no SQL: a restricted statement is refused before
/// anything reaches the server (here, one that is not there).
#[tokio::test]
async fn restricted_statements_are_refused_before_connecting() {
    let url = server_or_skip!(MARIADB);
    let mut nowhere = url::Url::parse(&url).unwrap();
    nowhere.set_port(Some(free_port())).unwrap();
    let mut settings = loupe_core::Restrictions::default();
    settings
        .settings
        .insert("loupe.user.region".into(), "EU".into());
    let mut filtered = loupe_core::Restrictions::default();
    filtered.row_filters.push(loupe_core::RowFilter {
        table: "t_types".into(),
        predicate: "id = 1".into(),
        params: Vec::new(),
    });
    for ds in [datasource(&url, ""), datasource(nowhere.as_str(), "")] {
        for (restrictions, says) in [
            (&settings, "transaction settings"),
            (&filtered, "row filters"),
        ] {
            let err = run_restricted(&ds, "SELECT 1", restrictions)
                .await
                .unwrap_err();
            assert_eq!(err.code(), "datasource.restrictions_unsupported", "{err}");
            assert!(err.to_string().contains(says), "{err}");
        }
    }
    let rows = run_restricted(&datasource(&url, ""), "SELECT 1", &Default::default())
        .await
        .unwrap();
    assert_eq!(one(&rows).num_rows(), 1, "no restrictions, no refusal");
}
