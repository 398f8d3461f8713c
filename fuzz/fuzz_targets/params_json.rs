//! Parameter values as an API body gives them (any JSON), bound against
//! definitions of every type. The first bytes choose the definitions
//! (`p0`..`p3`: type, list item type, options); the rest is the JSON text
//! of the values: an object by parameter name, or any other value for `p0`.
//!
//! Binding either succeeds, and then every bound value has its parameter's
//! declared type (an enum's or a list's options hold, a date range is
//! ordered, a list gives one placeholder per element), or fails with an
//! error that names a parameter that was defined or given.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_core::{
    Dialect, Error, ItemType, ParameterDef, ParameterType, ParameterValues, Template, Value,
};
use serde_json::Value as Json;

const OPTIONS: [&str; 4] = ["a", "1", "2", "2024-01-31"];

fn item(byte: u8) -> ItemType {
    match byte % 4 {
        0 => ItemType::Text,
        1 => ItemType::Integer,
        2 => ItemType::Number,
        _ => ItemType::Date,
    }
}

fn options(byte: u8) -> Vec<String> {
    OPTIONS
        .iter()
        .take(usize::from(byte % 5))
        .map(|o| (*o).to_owned())
        .collect()
}

/// The definition of parameter `index`, from two bytes.
fn definition(index: usize, ty: u8, extra: u8) -> ParameterDef {
    let ty = match ty % 9 {
        0 => ParameterType::Text,
        1 => ParameterType::Integer,
        2 => ParameterType::Number,
        3 => ParameterType::Boolean,
        4 => ParameterType::Date,
        5 => ParameterType::Datetime,
        6 => ParameterType::DateRange,
        7 => {
            // An enum needs at least one option.
            let mut options = options(extra);
            options.push("b".to_owned());
            ParameterType::Enum { options }
        }
        _ => ParameterType::List {
            item: item(extra),
            options: options(extra / 4),
        },
    };
    ParameterDef::new(format!("p{index}"), ty)
}

/// Whether `value` is a value of `ty` (for a list: of one element).
fn has_type(ty: &ParameterType, value: &Value) -> bool {
    let in_options =
        |options: &[String]| options.is_empty() || options.contains(&value.to_string());
    match (ty, value) {
        (ParameterType::Text, Value::Text(_))
        | (ParameterType::Integer, Value::Integer(_))
        | (ParameterType::Boolean, Value::Boolean(_))
        | (ParameterType::Date | ParameterType::DateRange, Value::Date(_))
        | (ParameterType::Datetime, Value::Datetime(_)) => true,
        (ParameterType::Number, Value::Number(n)) => n.is_finite(),
        (ParameterType::Enum { options }, Value::Text(_)) => in_options(options),
        (ParameterType::List { item, options }, v) => {
            let item_ok = match (item, v) {
                (ItemType::Text, Value::Text(_))
                | (ItemType::Integer, Value::Integer(_))
                | (ItemType::Date, Value::Date(_)) => true,
                (ItemType::Number, Value::Number(n)) => n.is_finite(),
                _ => false,
            };
            item_ok && in_options(options)
        }
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = 1 + usize::from(count % 4);
    let Some((head, body)) = rest.split_at_checked(2 * count) else {
        return;
    };
    let defs: Vec<ParameterDef> = head
        .chunks_exact(2)
        .enumerate()
        .map(|(i, b)| definition(i, b[0], b[1]))
        .collect();
    for def in &defs {
        assert!(def.validate().is_ok(), "{def:?} is a valid definition");
    }
    let Ok(json) = serde_json::from_slice::<Json>(body) else {
        return;
    };
    let values: ParameterValues = match json {
        Json::Object(map) => map.into_iter().collect(),
        other => [("p0".to_owned(), other)].into_iter().collect(),
    };

    // Each parameter once; a date range by both its fields.
    let sql = defs
        .iter()
        .map(|d| match d.ty {
            ParameterType::DateRange => format!("{{{{ {0}.start }}}}, {{{{ {0}.end }}}}", d.name),
            _ => format!("{{{{ {} }}}}", d.name),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let template = match Template::parse(&format!("SELECT {sql}"), Dialect::Postgres) {
        Ok(template) => template,
        Err(e) => panic!("the generated template {sql:?} does not parse: {e}"),
    };

    match template.bind(&defs, &values) {
        Ok(stmt) => {
            for def in &defs {
                let bound: Vec<&Value> = stmt
                    .params
                    .iter()
                    .filter(|p| p.name == def.name)
                    .map(|p| &p.value)
                    .collect();
                for value in &bound {
                    assert!(
                        has_type(&def.ty, value),
                        "{} ({}) bound as {value:?} from {:?}",
                        def.name,
                        def.ty.name(),
                        values.get(&def.name)
                    );
                }
                let expected = match (&def.ty, values.get(&def.name)) {
                    (ParameterType::DateRange, _) => 2,
                    (ParameterType::List { .. }, Some(Json::Array(items))) => items.len(),
                    _ => 1,
                };
                assert_eq!(bound.len(), expected, "{} from {:?}", def.name, values);
                if let [Value::Date(start), Value::Date(end)] = bound[..] {
                    assert!(start <= end, "{}: range {start}..{end}", def.name);
                }
            }
            let total: usize = stmt.params.len();
            assert_eq!(stmt.placeholder_count().ok(), Some(total), "{}", stmt.sql);
        }
        Err(Error::Parameter(e)) => {
            let name = e.parameter();
            assert!(
                defs.iter().any(|d| d.name == name) || values.contains_key(name),
                "{e} names {name:?}, neither defined nor given"
            );
            assert!(
                e.to_string().contains(&format!("{name:?}")),
                "{e} does not quote {name:?}"
            );
        }
        Err(e) => panic!("binding failed with a non-parameter error: {e}"),
    }
});
