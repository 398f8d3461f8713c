//! From PostgreSQL types to Arrow types, and the decoder for each.
//!
//! | PostgreSQL | Arrow |
//! |---|---|
//! | `bool` | Boolean |
//! | `int2`, `int4`, `int8` | Int16, Int32, Int64 |
//! | `oid`, `xid`, `cid`, `reg*` | UInt32 |
//! | `float4`, `float8` | Float32, Float64 |
//! | `numeric(p, s)` | Decimal128(p, s) for p <= 38, Decimal256(p, s) for p <= 76; NaN is NULL |
//! | `numeric` (no precision) | Utf8, PostgreSQL's exact text (`NaN`, `Infinity` kept): lossless |
//! | `money` | Decimal128(19, 2) (assumes a locale with two fraction digits) |
//! | `text`, `varchar`, `bpchar`, `name`, `citext`, enums, `xml` | Utf8 |
//! | `json`, `jsonb` | Utf8 with the `arrow.json` extension name |
//! | `bytea` | Binary |
//! | `date` | Date32; ±infinity is NULL |
//! | `time` | Time64(µs); `timetz` is normalised to UTC |
//! | `timestamp` | Timestamp(µs); `timestamptz` is Timestamp(µs, "UTC"); ±infinity is NULL |
//! | `interval` | Interval(MonthDayNano); an infinite interval is NULL |
//! | `uuid`, `inet`, `cidr`, `macaddr`, `macaddr8`, `bit`, `varbit` | Utf8, as PostgreSQL prints them |
//! | arrays | List (nested to the column's declared dimensions) |
//! | composite types | Struct |
//! | ranges | Struct {lower, upper, lower_inclusive, upper_inclusive, empty}; multiranges a List of those |
//! | domains | their base type |
//! | anything else | Binary, the wire bytes |
//!
//! Every field carries its PostgreSQL type name in the metadata key
//! `loupe.pg.type`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder,
    IntervalMonthDayNanoBuilder, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder, UInt32Builder,
};
use arrow::datatypes::{DataType, Field, Fields, IntervalUnit, TimeUnit};
use tokio_postgres::types::{Kind, Type};

use super::decode::{self, Decode};

/// Metadata key holding the PostgreSQL type name of a field.
pub const PG_TYPE_KEY: &str = "loupe.pg.type";

/// Deepest nesting of types followed (arrays of composites of ranges...).
const MAX_NESTING: usize = 16;

/// A column's Arrow field and its decoder.
pub(crate) struct Column {
    pub(crate) field: Field,
    pub(crate) decoder: Box<dyn Decode>,
}

/// The Arrow field for a value of `ty` named `name`; `typmod` is the
/// column's type modifier (-1 when unknown) and `dims` the declared array
/// dimensions (0 when unknown).
pub(crate) fn column(name: &str, ty: &Type, typmod: i32, dims: usize) -> Column {
    let (data_type, decoder) = plan(ty, typmod, dims, 0);
    Column {
        field: field(name, data_type, ty),
        decoder,
    }
}

/// Only the Arrow type, for introspection.
pub(crate) fn arrow_type(ty: &Type, typmod: i32, dims: usize) -> DataType {
    plan(ty, typmod, dims, 0).0
}

fn field(name: &str, data_type: DataType, ty: &Type) -> Field {
    let mut metadata = HashMap::from([(PG_TYPE_KEY.to_owned(), ty.name().to_owned())]);
    if matches!(*ty, Type::JSON | Type::JSONB) {
        metadata.insert("ARROW:extension:name".to_owned(), "arrow.json".to_owned());
        metadata.insert("ARROW:extension:metadata".to_owned(), "{}".to_owned());
    }
    Field::new(name, data_type, true).with_metadata(metadata)
}

fn text(skip: usize) -> (DataType, Box<dyn Decode>) {
    (
        DataType::Utf8,
        Box::new(decode::Text {
            builder: StringBuilder::new(),
            skip,
        }),
    )
}

fn formatted(
    format: fn(&[u8], &mut String) -> decode::DecodeResult,
) -> (DataType, Box<dyn Decode>) {
    (DataType::Utf8, Box::new(decode::Formatted::new(format)))
}

fn bytes() -> (DataType, Box<dyn Decode>) {
    (
        DataType::Binary,
        Box::new(decode::Bytes(BinaryBuilder::new())),
    )
}

/// Precision and scale from a `numeric` type modifier, or `None` when the
/// column is unconstrained. PostgreSQL 15 allows a negative scale and a
/// scale larger than the precision; both are widened to a plain Arrow
/// decimal that holds every value.
pub(crate) fn numeric_precision(typmod: i32) -> Option<(u8, i8)> {
    if typmod < 4 {
        return None;
    }
    let m = typmod - 4;
    let precision = (m >> 16) & 0xffff;
    let raw_scale = m & 0x7ff;
    let scale = if raw_scale & 0x400 != 0 {
        raw_scale - 0x800
    } else {
        raw_scale
    };
    let (precision, scale) = if scale < 0 {
        (precision - scale, 0)
    } else {
        (precision.max(scale), scale)
    };
    if precision == 0 || precision > 76 {
        return None;
    }
    Some((u8::try_from(precision).ok()?, i8::try_from(scale).ok()?))
}

fn plan(ty: &Type, typmod: i32, dims: usize, depth: usize) -> (DataType, Box<dyn Decode>) {
    if depth > MAX_NESTING {
        return bytes();
    }
    match ty.kind() {
        Kind::Enum(_) => return text(0),
        Kind::Domain(base) => return plan(base, typmod, dims, depth + 1),
        Kind::Array(element) => return array(element, typmod, dims, depth),
        Kind::Composite(attributes) => {
            let mut fields = Vec::with_capacity(attributes.len());
            let mut children = Vec::with_capacity(attributes.len());
            for attribute in attributes {
                let (data_type, decoder) = plan(attribute.type_(), -1, 0, depth + 1);
                fields.push(field(attribute.name(), data_type, attribute.type_()));
                children.push(decoder);
            }
            let fields = Fields::from(fields);
            return (
                DataType::Struct(fields.clone()),
                Box::new(decode::Composite::new(fields, children)),
            );
        }
        Kind::Range(subtype) => {
            let (data_type, range) = range(subtype, depth);
            return (data_type, Box::new(range));
        }
        // A multirange's kind names the element type, not the range type.
        Kind::Multirange(subtype) => {
            let (data_type, range) = range(subtype, depth);
            let item = Arc::new(Field::new_list_field(data_type, true));
            return (
                DataType::List(item.clone()),
                Box::new(decode::Multirange::new(item, range)),
            );
        }
        _ => {}
    }
    match *ty {
        Type::BOOL => (
            DataType::Boolean,
            Box::new(decode::Bool(BooleanBuilder::new())),
        ),
        Type::INT2 => (
            DataType::Int16,
            Box::new(decode::Primitive::new(Int16Builder::new(), decode::int2)),
        ),
        Type::INT4 => (
            DataType::Int32,
            Box::new(decode::Primitive::new(Int32Builder::new(), decode::int4)),
        ),
        Type::INT8 => (
            DataType::Int64,
            Box::new(decode::Primitive::new(Int64Builder::new(), decode::int8)),
        ),
        Type::OID
        | Type::XID
        | Type::CID
        | Type::REGPROC
        | Type::REGPROCEDURE
        | Type::REGOPER
        | Type::REGOPERATOR
        | Type::REGCLASS
        | Type::REGTYPE
        | Type::REGCONFIG
        | Type::REGDICTIONARY
        | Type::REGNAMESPACE
        | Type::REGROLE
        | Type::REGCOLLATION => (
            DataType::UInt32,
            Box::new(decode::Primitive::new(UInt32Builder::new(), decode::uint4)),
        ),
        Type::FLOAT4 => (
            DataType::Float32,
            Box::new(decode::Primitive::new(
                Float32Builder::new(),
                decode::float4,
            )),
        ),
        Type::FLOAT8 => (
            DataType::Float64,
            Box::new(decode::Primitive::new(
                Float64Builder::new(),
                decode::float8,
            )),
        ),
        Type::NUMERIC => numeric(typmod),
        Type::MONEY => match Decimal128Builder::new().with_precision_and_scale(19, 2) {
            Ok(builder) => (
                DataType::Decimal128(19, 2),
                Box::new(decode::Primitive::new(builder, decode::money)),
            ),
            Err(_) => bytes(),
        },
        Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::UNKNOWN
        | Type::JSON
        | Type::XML
        | Type::JSONPATH
        | Type::REFCURSOR => text(0),
        Type::JSONB => text(1),
        Type::CHAR => formatted(decode::single_char),
        Type::BYTEA => bytes(),
        Type::DATE => (
            DataType::Date32,
            Box::new(decode::Primitive::new(Date32Builder::new(), decode::date)),
        ),
        Type::TIME => (
            DataType::Time64(TimeUnit::Microsecond),
            Box::new(decode::Primitive::new(
                Time64MicrosecondBuilder::new(),
                decode::time,
            )),
        ),
        Type::TIMETZ => (
            DataType::Time64(TimeUnit::Microsecond),
            Box::new(decode::Primitive::new(
                Time64MicrosecondBuilder::new(),
                decode::timetz,
            )),
        ),
        Type::TIMESTAMP => (
            DataType::Timestamp(TimeUnit::Microsecond, None),
            Box::new(decode::Primitive::new(
                TimestampMicrosecondBuilder::new(),
                decode::timestamp,
            )),
        ),
        Type::TIMESTAMPTZ => (
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Box::new(decode::Primitive::new(
                TimestampMicrosecondBuilder::new().with_timezone("UTC"),
                decode::timestamp,
            )),
        ),
        Type::INTERVAL => (
            DataType::Interval(IntervalUnit::MonthDayNano),
            Box::new(decode::Interval(IntervalMonthDayNanoBuilder::new())),
        ),
        Type::UUID => formatted(decode::uuid),
        Type::INET | Type::CIDR => formatted(decode::inet),
        Type::MACADDR | Type::MACADDR8 => formatted(decode::macaddr),
        Type::BIT | Type::VARBIT => formatted(decode::bits),
        _ if ty.name() == "citext" => text(0),
        _ => bytes(),
    }
}

fn numeric(typmod: i32) -> (DataType, Box<dyn Decode>) {
    match numeric_precision(typmod) {
        Some((p, s)) if p <= 38 => match Decimal128Builder::new().with_precision_and_scale(p, s) {
            Ok(builder) => (
                DataType::Decimal128(p, s),
                Box::new(decode::Decimal128 {
                    builder,
                    scale: i32::from(s),
                }),
            ),
            Err(_) => formatted(decode::numeric_text),
        },
        Some((p, s)) => match Decimal256Builder::new().with_precision_and_scale(p, s) {
            Ok(builder) => (
                DataType::Decimal256(p, s),
                Box::new(decode::Decimal256 {
                    builder,
                    scale: i32::from(s),
                }),
            ),
            Err(_) => formatted(decode::numeric_text),
        },
        None => formatted(decode::numeric_text),
    }
}

fn array(element: &Type, typmod: i32, dims: usize, depth: usize) -> (DataType, Box<dyn Decode>) {
    let levels = dims.clamp(1, 6);
    let (leaf_type, leaf) = plan(element, typmod, 0, depth + 1);
    let leaf_field = Arc::new(Field::new_list_field(leaf_type, true));
    let list = decode::List::new(levels, leaf_field.clone(), leaf);
    let mut data_type = DataType::List(leaf_field);
    for _ in 1..levels {
        data_type = DataType::List(Arc::new(Field::new_list_field(data_type, true)));
    }
    (data_type, Box::new(list))
}

fn range(subtype: &Type, depth: usize) -> (DataType, decode::Range) {
    let (bound_type, lower) = plan(subtype, -1, 0, depth + 1);
    let (_, upper) = plan(subtype, -1, 0, depth + 1);
    let fields = Fields::from(vec![
        Field::new("lower", bound_type.clone(), true),
        Field::new("upper", bound_type, true),
        Field::new("lower_inclusive", DataType::Boolean, true),
        Field::new("upper_inclusive", DataType::Boolean, true),
        Field::new("empty", DataType::Boolean, true),
    ]);
    (
        DataType::Struct(fields.clone()),
        decode::Range::new(fields, lower, upper),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_type_modifiers() {
        // numeric(12, 2): ((12 << 16) | 2) + 4
        assert_eq!(numeric_precision((12 << 16 | 2) + 4), Some((12, 2)));
        assert_eq!(numeric_precision(-1), None);
        assert_eq!(
            numeric_precision((1000 << 16) + 4),
            None,
            "beyond Decimal256"
        );
        // numeric(5, -2) holds values up to 9999900: scale 0, precision 7.
        assert_eq!(numeric_precision((5 << 16 | (0x800 - 2)) + 4), Some((7, 0)));
        // numeric(3, 5) holds values below 0.001: precision widened to 5.
        assert_eq!(numeric_precision((3 << 16 | 5) + 4), Some((5, 5)));
    }

    /// Found by the `postgres_decode` fuzz target: a multirange whose
    /// length is negative made the list's offsets go backwards, and
    /// finishing the column panicked.
    #[test]
    fn a_negative_multirange_length_is_an_error_and_the_column_still_finishes() {
        let mut column = column("c", &Type::INT4MULTI_RANGE, -1, 0);
        column.decoder.append(Some(&0i32.to_be_bytes())).unwrap();
        let negative = (-1i32).to_be_bytes();
        let error = column.decoder.append(Some(&negative)).unwrap_err();
        assert!(
            format!("{error:?}").contains("negative multirange"),
            "{error:?}"
        );
        let array = column.decoder.finish();
        assert_eq!(array.len(), 1, "the value before the refused one");
    }

    #[test]
    fn every_built_in_type_maps_without_panicking() {
        // Decoders must accept NULL and report malformed values as errors.
        for oid in 0..10_000u32 {
            if let Some(ty) = Type::from_oid(oid) {
                let mut column = column("c", &ty, -1, 0);
                column
                    .decoder
                    .append(None)
                    .unwrap_or_else(|e| panic!("{ty}: {e:?}"));
                let _ = column.decoder.append(Some(&[1, 2, 3]));
                let _ = column.decoder.append(Some(&[]));
                let _ = column.decoder.finish();
            }
        }
    }

    #[test]
    fn the_table_holds() {
        let t = |ty: &Type, typmod| arrow_type(ty, typmod, 0);
        assert_eq!(
            t(&Type::NUMERIC, (12 << 16 | 2) + 4),
            DataType::Decimal128(12, 2)
        );
        assert_eq!(
            t(&Type::NUMERIC, (60 << 16 | 10) + 4),
            DataType::Decimal256(60, 10)
        );
        assert_eq!(t(&Type::NUMERIC, -1), DataType::Utf8);
        assert_eq!(
            t(&Type::TIMESTAMPTZ, -1),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert!(matches!(t(&Type::INT4_ARRAY, -1), DataType::List(_)));
        assert!(matches!(
            arrow_type(&Type::INT4_ARRAY, -1, 2),
            DataType::List(inner) if matches!(inner.data_type(), DataType::List(_))
        ));
        assert!(matches!(t(&Type::INT4_RANGE, -1), DataType::Struct(_)));
        assert_eq!(t(&Type::TS_VECTOR, -1), DataType::Binary);
    }
}
