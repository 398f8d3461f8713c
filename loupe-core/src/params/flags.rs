//! `NAME[:TYPE]=VALUE` flags (the CLI's `--param`/`-p`), turned into
//! parameter definitions and values for a query template. The flags come
//! from a shell: any text is refused with a message, never a panic.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::{ItemType, ParameterDef, ParameterType, ParameterValues};

/// Parses `NAME=VALUE` (text) and `NAME:TYPE=VALUE` flags into definitions
/// and values. A name given more than once becomes a list of its values.
///
/// # Errors
/// A message naming the flag and how to write it: no `=`, an unknown type,
/// one name given with two types, a repeated type that cannot be a list, or
/// a name that is not a valid parameter name.
pub fn parameters_from_flags(
    flags: &[String],
) -> Result<(Vec<ParameterDef>, ParameterValues), String> {
    let mut seen: BTreeMap<String, (ParameterType, Vec<String>)> = BTreeMap::new();
    for flag in flags {
        let (key, value) = flag.split_once('=').ok_or_else(|| {
            format!("--param {flag:?} needs a value: write NAME=VALUE or NAME:TYPE=VALUE")
        })?;
        let (name, ty) = match key.split_once(':') {
            Some((name, ty)) => {
                let parsed = ParameterType::from_name(ty.trim()).ok_or_else(|| {
                    format!(
                        "--param {name}: unknown type {ty:?}; use text, integer, number, boolean, date, datetime or date_range"
                    )
                })?;
                (name.trim(), parsed)
            }
            None => (key.trim(), ParameterType::Text),
        };
        match seen.get_mut(name) {
            Some((existing, values)) => {
                if *existing != ty {
                    return Err(format!(
                        "--param {name} is given as both {} and {}",
                        existing.name(),
                        ty.name()
                    ));
                }
                values.push(value.to_owned());
            }
            None => {
                seen.insert(name.to_owned(), (ty, vec![value.to_owned()]));
            }
        }
    }
    let mut defs = Vec::with_capacity(seen.len());
    let mut values = ParameterValues::new();
    for (name, (ty, given)) in seen {
        let def = if given.len() > 1 {
            let item = match ty {
                ParameterType::Text => ItemType::Text,
                ParameterType::Integer => ItemType::Integer,
                ParameterType::Number => ItemType::Number,
                ParameterType::Date => ItemType::Date,
                other => {
                    return Err(format!(
                        "--param {name} is given {} times, but a {} cannot be a list",
                        given.len(),
                        other.name()
                    ));
                }
            };
            values.insert(
                name.clone(),
                Json::Array(given.into_iter().map(Json::String).collect()),
            );
            ParameterDef::new(name, ParameterType::list(item))
        } else {
            values.insert(name.clone(), Json::String(given.concat()));
            ParameterDef::new(name, ty)
        };
        def.validate().map_err(|e| e.to_string())?;
        defs.push(def);
    }
    Ok((defs, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_types_and_lists() {
        let flags = [
            "country=FR".to_owned(),
            "min:integer=3".to_owned(),
            "ids:integer=1".to_owned(),
            "ids:integer=2".to_owned(),
            "note=a=b".to_owned(),
        ];
        let (defs, values) = parameters_from_flags(&flags).unwrap();
        let by_name: BTreeMap<_, _> = defs.iter().map(|d| (d.name.as_str(), &d.ty)).collect();
        assert_eq!(by_name["country"], &ParameterType::Text);
        assert_eq!(by_name["min"], &ParameterType::Integer);
        assert_eq!(by_name["ids"], &ParameterType::list(ItemType::Integer));
        assert_eq!(values["note"], Json::String("a=b".into()));
        assert_eq!(values["ids"], serde_json::json!(["1", "2"]));
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(
            parameters_from_flags(&["x".into()])
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            parameters_from_flags(&["x:blob=1".into()])
                .unwrap_err()
                .contains("unknown type")
        );
        assert!(
            parameters_from_flags(&["x:integer=1".into(), "x=2".into()])
                .unwrap_err()
                .contains("both integer and text")
        );
        assert!(parameters_from_flags(&["1x=1".into()]).is_err());
    }
}
