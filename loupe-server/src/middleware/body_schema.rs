//! The JSON types a request body's schema states, checked as the document
//! says them. poem-openapi's own parsing is lenient where the document is
//! not: a `string` field takes `false` and stores `"false"`, and an
//! optional field takes `null` though the document does not mark it
//! `nullable`. This check holds a body to its schema's types, `null`,
//! `enum` values and numeric bounds before poem-openapi parses it; lengths
//! and everything else stay with the parsers and the services.

use serde_json::Value;

/// One way a value breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// Where: `name`, `widgets[2].w`, or `` for the body itself.
    pub(crate) field: String,
    /// `type_mismatch` or `out_of_range`.
    pub(crate) code: &'static str,
    /// What is wrong, lowercase.
    pub(crate) message: String,
}

/// Schemas nest through references (a canvas node holds nodes); deeper
/// than this, a body is not checked further.
const MAX_DEPTH: usize = 64;

/// Reported at most, so a large wrong body gives a short answer.
const MAX_VIOLATIONS: usize = 20;

/// The violations of `value` against `schema`, resolving `$ref`s in `doc`.
pub(crate) fn violations(doc: &Value, schema: &Value, value: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    check(doc, schema, value, "", &mut out, 0);
    out.truncate(MAX_VIOLATIONS);
    out
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    let mut schema = schema;
    // A reference to a reference is followed a few times, not forever.
    for _ in 0..8 {
        let Some(target) = schema.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let Some(name) = target.strip_prefix("#/components/schemas/") else {
            break;
        };
        match doc.pointer(&format!("/components/schemas/{name}")) {
            Some(found) => schema = found,
            None => break,
        }
    }
    schema
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn check(
    doc: &Value,
    schema: &Value,
    value: &Value,
    path: &str,
    out: &mut Vec<Violation>,
    depth: usize,
) {
    if depth > MAX_DEPTH || out.len() >= MAX_VIOLATIONS {
        return;
    }
    let schema = resolve(doc, schema);
    let mismatch = |out: &mut Vec<Violation>, expected: &str| {
        out.push(Violation {
            field: path.to_owned(),
            code: "type_mismatch",
            message: format!("expected {expected}, not {}", kind(value)),
        });
    };
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for part in all {
            check(doc, part, value, path, out, depth + 1);
        }
    }
    let nullable = schema.get("nullable").and_then(Value::as_bool) == Some(true);
    let constrained = ["type", "allOf", "oneOf", "anyOf", "$ref", "enum"]
        .iter()
        .any(|k| schema.get(*k).is_some());
    if value.is_null() {
        if constrained && !nullable {
            out.push(Violation {
                field: path.to_owned(),
                code: "type_mismatch",
                message: "null is not allowed here; leave the field out instead".to_owned(),
            });
        }
        return;
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(forms) = schema.get(key).and_then(Value::as_array) {
            let fits = forms.iter().any(|form| {
                let mut inner = Vec::new();
                check(doc, form, value, path, &mut inner, depth + 1);
                inner.is_empty()
            });
            if !fits {
                mismatch(out, "one of the forms the document lists");
            }
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let names: Vec<String> = allowed.iter().map(Value::to_string).collect();
        mismatch(out, &format!("one of {}", names.join(", ")));
        return;
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("string") if !value.is_string() => mismatch(out, "a string"),
        Some("boolean") if !value.is_boolean() => mismatch(out, "a boolean"),
        Some("integer") => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => {
                // Bounds are JSON numbers; near 2^64 a float is close enough.
                if let Some(n) = n.as_f64() {
                    bounds(schema, n, path, out);
                }
            }
            _ => mismatch(out, "an integer"),
        },
        Some("number") => match value.as_f64() {
            Some(n) => bounds(schema, n, path, out),
            None => mismatch(out, "a number"),
        },
        Some("array") => match value.as_array() {
            Some(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        let at = format!("{path}[{i}]");
                        check(doc, item_schema, item, &at, out, depth + 1);
                    }
                }
            }
            None => mismatch(out, "an array"),
        },
        Some("object") => match value.as_object() {
            Some(members) => {
                let properties = schema.get("properties").and_then(Value::as_object);
                let additional = schema.get("additionalProperties").filter(|a| a.is_object());
                for (key, member) in members {
                    let member_schema = properties.and_then(|p| p.get(key)).or(additional);
                    if let Some(member_schema) = member_schema {
                        check(doc, member_schema, member, &join(path, key), out, depth + 1);
                    }
                }
            }
            None => mismatch(out, "an object"),
        },
        _ => {}
    }
}

fn bounds(schema: &Value, n: f64, path: &str, out: &mut Vec<Violation>) {
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    let below = bound("minimum").is_some_and(|min| n < min);
    let above = bound("maximum").is_some_and(|max| n > max);
    if below || above {
        let range = match (bound("minimum"), bound("maximum")) {
            (Some(min), Some(max)) => format!("from {min} to {max}"),
            (Some(min), None) => format!("at least {min}"),
            (None, Some(max)) => format!("at most {max}"),
            (None, None) => String::new(),
        };
        out.push(Violation {
            field: path.to_owned(),
            code: "out_of_range",
            message: format!("{n} is out of range; the document allows {range}"),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({ "components": { "schemas": {
            "Input": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": { "type": "string" },
                    "age": { "type": "integer", "format": "uint32", "minimum": 0.0, "maximum": 4294967295.0 },
                    "note": { "type": "string", "nullable": true },
                    "tags": { "type": "array", "items": { "type": "string" } },
                    "kind": { "$ref": "#/components/schemas/Kind" },
                    "any": {}
                }
            },
            "Kind": { "type": "string", "enum": ["a", "b"] }
        }}})
    }

    fn fields(value: Value) -> Vec<String> {
        let doc = doc();
        let schema = json!({ "$ref": "#/components/schemas/Input" });
        violations(&doc, &schema, &value)
            .into_iter()
            .map(|v| v.field)
            .collect()
    }

    #[test]
    fn types_are_held_to_the_document() {
        assert!(fields(json!({ "name": "x", "age": 3, "note": null, "tags": ["a"], "kind": "b", "any": null })).is_empty());
        assert_eq!(fields(json!({ "name": false })), ["name"]);
        assert_eq!(fields(json!({ "name": null })), ["name"]);
        assert_eq!(fields(json!({ "name": "x", "age": null })), ["age"]);
        assert_eq!(fields(json!({ "name": "x", "age": 1.5 })), ["age"]);
        assert_eq!(
            fields(json!({ "name": "x", "age": 4294967296u64 })),
            ["age"]
        );
        assert_eq!(
            fields(json!({ "name": "x", "tags": ["a", 1] })),
            ["tags[1]"]
        );
        assert_eq!(fields(json!({ "name": "x", "kind": "c" })), ["kind"]);
        assert_eq!(fields(json!([])), [""]);
    }
}
