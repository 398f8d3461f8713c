//! PostgreSQL's binary wire format into Arrow, as a `COPY BINARY` query
//! reads it. The first bytes choose a column type (a built-in type's OID;
//! other numbers pick among those, arrays, ranges, and a composite, an
//! enum and a domain of our own), its
//! type modifier (numeric precision) and array dimensions; the rest is the
//! COPY body: tuples of length-prefixed fields, then the -1 trailer.
//!
//! Splitting tuples and decoding values never panics. Tuples are found in
//! order, inside the buffer. Values are appended until one is refused (a
//! query stops there, and drops the column); the finished array of the
//! values before it has one entry per value and exactly the column's Arrow
//! type.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use loupe_connectors::fuzzing::{
    CopyTuple, PostgresColumn, PostgresField, PostgresKind, PostgresType, copy_tuple_at,
};
use loupe_core::deps::arrow::array::Array;

/// Every built-in type, then a few user-defined ones.
fn types() -> &'static [PostgresType] {
    static TYPES: OnceLock<Vec<PostgresType>> = OnceLock::new();
    TYPES.get_or_init(|| {
        let custom = |name: &str, oid, kind| {
            PostgresType::new(name.to_owned(), oid, kind, "public".to_owned())
        };
        let pair = custom(
            "pair",
            90_001,
            PostgresKind::Composite(vec![
                PostgresField::new("id".to_owned(), PostgresType::INT4),
                PostgresField::new("tags".to_owned(), PostgresType::TEXT_ARRAY),
                PostgresField::new("amount".to_owned(), PostgresType::NUMERIC),
                PostgresField::new("span".to_owned(), PostgresType::TSTZ_RANGE),
            ]),
        );
        let mood = custom(
            "mood",
            90_003,
            PostgresKind::Enum(vec!["sad".to_owned(), "happy".to_owned()]),
        );
        let mut types: Vec<PostgresType> =
            (0..10_000u32).filter_map(PostgresType::from_oid).collect();
        types.extend([
            custom("_pair", 90_002, PostgresKind::Array(pair.clone())),
            pair,
            custom("_mood", 90_004, PostgresKind::Array(mood.clone())),
            mood,
            custom("positive", 90_005, PostgresKind::Domain(PostgresType::INT8)),
        ]);
        types
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((head, body)) = data.split_at_checked(7) else {
        return;
    };
    // A built-in type's OID, or else an index into all the types.
    let code = u16::from_be_bytes([head[0], head[1]]);
    let ty = &PostgresType::from_oid(u32::from(code))
        .unwrap_or_else(|| types()[usize::from(code) % types().len()].clone());
    // Mostly a real numeric modifier: ((precision << 16) | scale) + 4.
    let typmod = match head[2] % 4 {
        0 => -1,
        1 => ((i32::from(head[3]) << 16) | i32::from(head[4])) + 4,
        _ => i32::from_be_bytes([head[3], head[4], head[5], head[2]]),
    };
    let dims = usize::from(head[6] % 4);
    let mut column = PostgresColumn::new(ty, typmod, dims);
    let expected_type = column.field().data_type().clone();

    let mut appended: Vec<Option<&[u8]>> = Vec::new();
    let mut refused = false;
    let mut at = 0usize;
    loop {
        let (end, fields) = match copy_tuple_at(body, at) {
            Ok(CopyTuple::Complete { end, fields }) => (end, fields),
            Ok(CopyTuple::Incomplete | CopyTuple::Trailer) | Err(_) => break,
        };
        assert!(at < end && end <= body.len(), "tuple at {at} ends at {end}");
        let mut from = at + 2;
        for range in fields.iter().flatten() {
            assert!(
                from <= range.start && range.end <= end,
                "field {range:?} outside the tuple"
            );
            from = range.end;
        }
        // A one-column result: other tuples are refused by the reader.
        let [raw] = &fields[..] else { break };
        let raw = raw.clone().map(|r| &body[r]);
        if column.append(raw).is_err() {
            refused = true;
            break;
        }
        appended.push(raw);
        at = end;
    }
    if refused {
        // A query drops a column whose value was refused; the values
        // before it, in a fresh column, must decode as they did.
        column = PostgresColumn::new(ty, typmod, dims);
        for raw in &appended {
            if let Err(e) = column.append(*raw) {
                panic!("{ty}: {raw:?} decoded once, then not: {e}");
            }
        }
    }
    let array = column.finish();
    assert_eq!(
        array.len(),
        appended.len(),
        "{ty} ({typmod}, {dims}): one entry per value"
    );
    assert_eq!(array.data_type(), &expected_type, "{ty} ({typmod}, {dims})");
});
