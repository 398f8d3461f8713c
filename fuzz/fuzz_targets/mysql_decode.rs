//! MySQL's binary protocol into Arrow, as a prepared statement's rows are
//! read. The first bytes are the column's metadata (type, flags, length,
//! decimals, character set) and the `tinyint1_as_boolean` option; the rest
//! is a row's values, each a NULL marker byte (odd: NULL) then, for a
//! non-NULL value, its binary-protocol encoding, read by mysql_async's own
//! value reader (`mysql_common`).
//!
//! Decoding never panics. Values are appended until one is refused (a query
//! stops there, and drops the column); the values before it, finished, are
//! either refused as a whole (text that is not UTF-8) or give one entry per
//! value in exactly the column's Arrow type.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_connectors::fuzzing::{
    MysqlColumn, MysqlColumnFlags, MysqlColumnMeta, MysqlColumnType, MysqlValue,
};
use loupe_core::deps::arrow::array::Array;
use mysql_common::io::ParseBuf;
use mysql_common::value::{BinValue, ValueDeserializer};

use MysqlColumnType as T;

/// The column types a server sends in result-set metadata. Not the
/// binlog's TIMESTAMP2, DATETIME2 and TIME2: mysql_common's value reader
/// stops the process (`unimplemented!`) on them, and no server sends them
/// for a query's columns.
const TYPES: [MysqlColumnType; 28] = [
    T::MYSQL_TYPE_DECIMAL,
    T::MYSQL_TYPE_TINY,
    T::MYSQL_TYPE_SHORT,
    T::MYSQL_TYPE_LONG,
    T::MYSQL_TYPE_FLOAT,
    T::MYSQL_TYPE_DOUBLE,
    T::MYSQL_TYPE_NULL,
    T::MYSQL_TYPE_TIMESTAMP,
    T::MYSQL_TYPE_LONGLONG,
    T::MYSQL_TYPE_INT24,
    T::MYSQL_TYPE_DATE,
    T::MYSQL_TYPE_TIME,
    T::MYSQL_TYPE_DATETIME,
    T::MYSQL_TYPE_YEAR,
    T::MYSQL_TYPE_NEWDATE,
    T::MYSQL_TYPE_VARCHAR,
    T::MYSQL_TYPE_BIT,
    T::MYSQL_TYPE_JSON,
    T::MYSQL_TYPE_NEWDECIMAL,
    T::MYSQL_TYPE_ENUM,
    T::MYSQL_TYPE_SET,
    T::MYSQL_TYPE_TINY_BLOB,
    T::MYSQL_TYPE_MEDIUM_BLOB,
    T::MYSQL_TYPE_LONG_BLOB,
    T::MYSQL_TYPE_BLOB,
    T::MYSQL_TYPE_VAR_STRING,
    T::MYSQL_TYPE_STRING,
    T::MYSQL_TYPE_GEOMETRY,
];

/// utf8mb4_0900_ai_ci and binary.
const CHARSETS: [u16; 2] = [255, 63];

fuzz_target!(|data: &[u8]| {
    let Some((head, body)) = data.split_at_checked(6) else {
        return;
    };
    let column_type = TYPES[usize::from(head[0]) % TYPES.len()];
    let flags = MysqlColumnFlags::from_bits_truncate(u16::from_be_bytes([head[1], head[2]]));
    let meta = MysqlColumnMeta::new(column_type)
        .with_flags(flags)
        .with_column_length(u32::from(head[3]))
        .with_decimals(head[4])
        .with_character_set(CHARSETS[usize::from(head[5] & 1)]);
    let tinyint1_as_boolean = head[5] & 2 != 0;
    let mut column = MysqlColumn::new(&meta, tinyint1_as_boolean);
    let expected_type = column.field().data_type().clone();

    let mut buf = ParseBuf(body);
    let mut appended: Vec<Option<MysqlValue>> = Vec::new();
    let mut refused = false;
    while let Some((&marker, _)) = buf.0.split_first() {
        buf.0 = &buf.0[1..];
        let value = if marker & 1 == 1 {
            None
        } else {
            match buf.parse::<ValueDeserializer<BinValue>>((column_type, flags)) {
                Ok(read) => Some(read.0),
                // The driver's error: the connection fails, nothing decodes.
                Err(_) => break,
            }
        };
        if column.append(value.clone()).is_err() {
            refused = true;
            break;
        }
        appended.push(value);
    }
    if refused {
        column = MysqlColumn::new(&meta, tinyint1_as_boolean);
        for value in &appended {
            if let Err(e) = column.append(value.clone()) {
                panic!("{column_type:?}: {value:?} decoded once, then not: {e}");
            }
        }
    }
    if let Ok(array) = column.finish() {
        assert_eq!(array.len(), appended.len(), "{meta:?}: one entry per value");
        assert_eq!(array.data_type(), &expected_type, "{meta:?}");
    }
});
