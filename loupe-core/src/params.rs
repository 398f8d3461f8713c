//! Typed query parameters: definitions, the values a caller supplies, and
//! the typed [`Value`]s that are bound to a statement.
//!
//! Callers supply values as JSON (an API body) or as strings (a command
//! line, a URL). Each definition checks and converts its value: `"42"` is a
//! fine integer, `"1 OR 1=1"` is not. Nothing here produces SQL text.

mod flags;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// Values supplied by a caller, by parameter name.
pub type ParameterValues = BTreeMap<String, Json>;

pub use flags::parameters_from_flags;

/// The most values one multi-value parameter may expand to. Databases cap
/// bind parameters per statement (65,535 in PostgreSQL and MySQL).
pub const MAX_LIST_VALUES: usize = 10_000;

/// The longest parameter name (`{{ name }}`), in characters.
pub const MAX_PARAMETER_NAME: usize = 64;

/// A typed value bound to one placeholder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Value {
    /// Text.
    Text(String),
    /// A 64-bit signed integer.
    Integer(i64),
    /// A finite 64-bit float.
    Number(f64),
    /// True or false.
    Boolean(bool),
    /// A calendar date.
    Date(NaiveDate),
    /// An instant, normalised to UTC.
    Datetime(DateTime<Utc>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(s) => f.write_str(s),
            Self::Integer(i) => write!(f, "{i}"),
            Self::Number(n) => write!(f, "{n}"),
            Self::Boolean(b) => write!(f, "{b}"),
            Self::Date(d) => write!(f, "{d}"),
            Self::Datetime(t) => f.write_str(&t.to_rfc3339()),
        }
    }
}

/// The type of one element of a multi-value parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemType {
    /// Text values.
    Text,
    /// Integer values.
    Integer,
    /// Number values.
    Number,
    /// Date values.
    Date,
}

impl ItemType {
    fn scalar(self) -> ParameterType {
        match self {
            Self::Text => ParameterType::Text,
            Self::Integer => ParameterType::Integer,
            Self::Number => ParameterType::Number,
            Self::Date => ParameterType::Date,
        }
    }
}

/// What kind of value a parameter takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ParameterType {
    /// Any text.
    Text,
    /// A 64-bit integer: a JSON integer or a string of digits.
    Integer,
    /// A finite number.
    Number,
    /// `true` or `false` (also `1`/`0` as strings).
    Boolean,
    /// `YYYY-MM-DD`.
    Date,
    /// An RFC 3339 date and time with an offset, such as `2024-05-01T08:00:00+02:00`.
    Datetime,
    /// Two dates, used as `{{ name.start }}` and `{{ name.end }}`. Given as
    /// `{"start": …, "end": …}`, `[start, end]` or `"start..end"`.
    DateRange,
    /// One of a fixed list of text options.
    Enum {
        /// The allowed values.
        options: Vec<String>,
    },
    /// Several values, each placed as its own placeholder: `IN ({{ ids }})`.
    List {
        /// The type of each value.
        item: ItemType,
        /// When not empty, every value must be one of these.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        options: Vec<String>,
    },
}

impl ParameterType {
    /// A multi-value parameter of `item`s.
    pub fn list(item: ItemType) -> Self {
        Self::List {
            item,
            options: Vec::new(),
        }
    }

    /// The type's name in messages and configuration.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Date => "date",
            Self::Datetime => "datetime",
            Self::DateRange => "date_range",
            Self::Enum { .. } => "enum",
            Self::List { .. } => "list",
        }
    }

    /// Parses a scalar type name as used on the command line (`integer`).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "text" | "string" => Self::Text,
            "integer" | "int" => Self::Integer,
            "number" | "float" => Self::Number,
            "boolean" | "bool" => Self::Boolean,
            "date" => Self::Date,
            "datetime" | "timestamp" => Self::Datetime,
            "date_range" | "daterange" => Self::DateRange,
            _ => return None,
        })
    }
}

/// A named, typed parameter of a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParameterDef {
    /// The name used in `{{ name }}`.
    pub name: String,
    /// What values it takes.
    #[serde(flatten)]
    pub ty: ParameterType,
    /// Used when the caller gives no value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Json>,
    /// A label for forms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

impl ParameterDef {
    /// A parameter without a default.
    pub fn new(name: impl Into<String>, ty: ParameterType) -> Self {
        Self {
            name: name.into(),
            ty,
            default: None,
            title: None,
        }
    }

    /// The same parameter with a default value.
    pub fn with_default(mut self, default: Json) -> Self {
        self.default = Some(default);
        self
    }

    /// Checks the definition itself: a usable name, enum options present,
    /// a default that is valid for the type.
    pub fn validate(&self) -> Result<(), ParameterError> {
        let invalid = |message: String| ParameterError::InvalidDefinition {
            name: self.name.clone(),
            message,
        };
        let mut chars = self.name.chars();
        let name_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && self.name.len() <= MAX_PARAMETER_NAME;
        if !name_ok {
            return Err(invalid(format!(
                "a parameter name starts with a letter or `_`, has only letters, digits and `_`, and is at most {MAX_PARAMETER_NAME} characters"
            )));
        }
        if let ParameterType::Enum { options } = &self.ty
            && options.is_empty()
        {
            return Err(invalid("an enum needs at least one option".into()));
        }
        if let Some(default) = &self.default {
            self.resolve(default).map_err(|e| {
                invalid(format!(
                    "the default is not a valid {}: {e}",
                    self.ty.name()
                ))
            })?;
        }
        Ok(())
    }

    /// Checks that `value` is a value of this parameter (its type, its
    /// options), as binding it would.
    pub fn check_value(&self, value: &Json) -> Result<(), ParameterError> {
        self.resolve(value).map(|_| ())
    }

    /// Checks and converts a supplied value.
    pub(crate) fn resolve(&self, input: &Json) -> Result<Resolved, ParameterError> {
        let name = &self.name;
        match &self.ty {
            ParameterType::DateRange => date_range(name, input),
            ParameterType::List { item, options } => {
                let items: Vec<&Json> = match input {
                    Json::Array(items) => items.iter().collect(),
                    single => vec![single],
                };
                if items.is_empty() {
                    return Err(ParameterError::EmptyList { name: name.clone() });
                }
                if items.len() > MAX_LIST_VALUES {
                    return Err(ParameterError::TooManyValues {
                        name: name.clone(),
                        count: items.len(),
                    });
                }
                let scalar = item.scalar();
                let mut out = Vec::with_capacity(items.len());
                for v in items {
                    let value = scalar_value(name, &scalar, v)?;
                    check_option(name, options, &value)?;
                    out.push(value);
                }
                Ok(Resolved::List(out))
            }
            ParameterType::Enum { options } => {
                let value = scalar_value(name, &ParameterType::Text, input)?;
                check_option(name, options, &value)?;
                Ok(Resolved::Scalar(value))
            }
            scalar => Ok(Resolved::Scalar(scalar_value(name, scalar, input)?)),
        }
    }
}

fn check_option(name: &str, options: &[String], value: &Value) -> Result<(), ParameterError> {
    if options.is_empty() {
        return Ok(());
    }
    let text = value.to_string();
    if options.contains(&text) {
        Ok(())
    } else {
        Err(ParameterError::NotAnOption {
            name: name.to_owned(),
            value: preview(&text),
            options: options.to_vec(),
        })
    }
}

/// A parameter's checked value, before it is placed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resolved {
    Scalar(Value),
    Range(NaiveDate, NaiveDate),
    List(Vec<Value>),
}

impl Resolved {
    /// The values one placeholder stands for.
    pub(crate) fn expand(
        &self,
        name: &str,
        field: Option<&str>,
    ) -> Result<Vec<Value>, ParameterError> {
        match (self, field) {
            (Self::Scalar(v), None) => Ok(vec![v.clone()]),
            (Self::List(vs), None) => Ok(vs.clone()),
            (Self::Range(start, _), Some("start")) => Ok(vec![Value::Date(*start)]),
            (Self::Range(_, end), Some("end")) => Ok(vec![Value::Date(*end)]),
            (Self::Range(..), _) => Err(ParameterError::InvalidField {
                name: name.to_owned(),
                message: format!(
                    "a date range is used as {{{{ {name}.start }}}} and {{{{ {name}.end }}}}"
                ),
            }),
            (_, Some(field)) => Err(ParameterError::InvalidField {
                name: name.to_owned(),
                message: format!("only date ranges have fields; remove `.{field}`"),
            }),
        }
    }
}

fn scalar_value(name: &str, ty: &ParameterType, input: &Json) -> Result<Value, ParameterError> {
    let wrong = || ParameterError::WrongType {
        name: name.to_owned(),
        expected: expected(ty),
        got: preview(&match input {
            Json::String(s) => format!("{s:?}"),
            other => other.to_string(),
        }),
    };
    let text = match input {
        Json::String(s) => Some(s.as_str()),
        _ => None,
    };
    let trimmed = text.map(str::trim);
    let value = match ty {
        ParameterType::Text => Value::Text(text.ok_or_else(wrong)?.to_owned()),
        ParameterType::Integer => match input {
            Json::Number(n) => Value::Integer(
                n.as_i64()
                    .or_else(|| {
                        n.as_f64()
                            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                            .map(|f| f as i64)
                    })
                    .ok_or_else(wrong)?,
            ),
            _ => Value::Integer(trimmed.and_then(|s| s.parse().ok()).ok_or_else(wrong)?),
        },
        ParameterType::Number => {
            let n = match input {
                Json::Number(n) => n.as_f64(),
                _ => trimmed.and_then(|s| s.parse::<f64>().ok()),
            };
            Value::Number(n.filter(|f| f.is_finite()).ok_or_else(wrong)?)
        }
        ParameterType::Boolean => match input {
            Json::Bool(b) => Value::Boolean(*b),
            _ => Value::Boolean(match trimmed.map(str::to_ascii_lowercase).as_deref() {
                Some("true" | "1") => true,
                Some("false" | "0") => false,
                _ => return Err(wrong()),
            }),
        },
        ParameterType::Date => Value::Date(trimmed.and_then(parse_date).ok_or_else(wrong)?),
        ParameterType::Datetime => {
            Value::Datetime(trimmed.and_then(parse_datetime).ok_or_else(wrong)?)
        }
        ParameterType::DateRange | ParameterType::Enum { .. } | ParameterType::List { .. } => {
            return Err(wrong());
        }
    };
    Ok(value)
}

fn expected(ty: &ParameterType) -> &'static str {
    match ty {
        ParameterType::Text => "text",
        ParameterType::Integer => "an integer",
        ParameterType::Number => "a finite number",
        ParameterType::Boolean => "true or false",
        ParameterType::Date => "a date like 2024-05-31",
        ParameterType::Datetime => "a date and time with an offset, like 2024-05-31T08:00:00Z",
        ParameterType::DateRange => "a date range like 2024-05-01..2024-05-31",
        ParameterType::Enum { .. } => "one of the options",
        ParameterType::List { .. } => "a list",
    }
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn date_range(name: &str, input: &Json) -> Result<Resolved, ParameterError> {
    let wrong = || ParameterError::WrongType {
        name: name.to_owned(),
        expected: expected(&ParameterType::DateRange),
        got: preview(&input.to_string()),
    };
    let (start, end) = match input {
        Json::Object(map) => (map.get("start"), map.get("end")),
        Json::Array(items) if items.len() == 2 => (items.first(), items.get(1)),
        Json::String(s) => {
            let (a, b) = s.split_once("..").ok_or_else(wrong)?;
            let start = parse_date(a.trim()).ok_or_else(wrong)?;
            let end = parse_date(b.trim()).ok_or_else(wrong)?;
            return ordered_range(name, start, end);
        }
        _ => return Err(wrong()),
    };
    let date = |v: Option<&Json>| {
        v.and_then(Json::as_str)
            .and_then(|s| parse_date(s.trim()))
            .ok_or_else(wrong)
    };
    ordered_range(name, date(start)?, date(end)?)
}

fn ordered_range(name: &str, start: NaiveDate, end: NaiveDate) -> Result<Resolved, ParameterError> {
    if start > end {
        return Err(ParameterError::WrongType {
            name: name.to_owned(),
            expected: "a date range whose start is not after its end",
            got: format!("{start}..{end}"),
        });
    }
    Ok(Resolved::Range(start, end))
}

fn preview(text: &str) -> String {
    const MAX: usize = 60;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

/// A parameter definition or value that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParameterError {
    /// The template uses a parameter that has no definition.
    #[error("the query uses {{{{ {name} }}}} at {at}, but no parameter {name:?} is defined")]
    Undefined {
        /// The parameter name.
        name: String,
        /// Where in the template.
        at: String,
    },
    /// A value was given for a parameter that is not defined.
    #[error("a value was given for unknown parameter {name:?}; defined parameters: {}", list(.defined))]
    UnknownValue {
        /// The name that was given.
        name: String,
        /// The names that are defined.
        defined: Vec<String>,
    },
    /// No value and no default.
    #[error("parameter {name:?} needs a value")]
    Missing {
        /// The parameter name.
        name: String,
    },
    /// The value cannot be converted to the parameter's type.
    #[error("parameter {name:?} must be {expected}, got {got}")]
    WrongType {
        /// The parameter name.
        name: String,
        /// What would be accepted.
        expected: &'static str,
        /// A preview of what was given.
        got: String,
    },
    /// The value is not one of the allowed options.
    #[error("parameter {name:?} must be one of {}, got {value:?}", list(.options))]
    NotAnOption {
        /// The parameter name.
        name: String,
        /// A preview of what was given.
        value: String,
        /// The allowed options.
        options: Vec<String>,
    },
    /// A multi-value parameter with no values.
    #[error("parameter {name:?} needs at least one value")]
    EmptyList {
        /// The parameter name.
        name: String,
    },
    /// A multi-value parameter with more values than a statement can bind.
    #[error(
        "parameter {name:?} has {count} values; the most one parameter may have is {MAX_LIST_VALUES}"
    )]
    TooManyValues {
        /// The parameter name.
        name: String,
        /// How many were given.
        count: usize,
    },
    /// `{{ x.start }}` on a non-range or `{{ range }}` without a field.
    #[error("parameter {name:?}: {message}")]
    InvalidField {
        /// The parameter name.
        name: String,
        /// What to write instead.
        message: String,
    },
    /// Two definitions with the same name.
    #[error("parameter {name:?} is defined twice")]
    Duplicate {
        /// The parameter name.
        name: String,
    },
    /// The definition itself is unusable.
    #[error("parameter {name:?} is not a valid definition: {message}")]
    InvalidDefinition {
        /// The parameter name.
        name: String,
        /// What is wrong with it.
        message: String,
    },
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        return "(none)".to_owned();
    }
    items
        .iter()
        .map(|i| format!("{i:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ParameterError {
    /// The stable machine code of this error.
    pub fn code(&self) -> &'static str {
        self.catalogue_code().as_str()
    }

    /// The code of this error in [`codes`](crate::codes).
    pub fn catalogue_code(&self) -> crate::codes::Code {
        use crate::codes;
        match self {
            Self::Undefined { .. } => codes::PARAM_UNDEFINED,
            Self::UnknownValue { .. } => codes::PARAM_UNKNOWN,
            Self::Missing { .. } => codes::PARAM_MISSING,
            Self::WrongType { .. } => codes::PARAM_WRONG_TYPE,
            Self::NotAnOption { .. } => codes::PARAM_NOT_AN_OPTION,
            Self::EmptyList { .. } => codes::PARAM_EMPTY_LIST,
            Self::TooManyValues { .. } => codes::PARAM_TOO_MANY_VALUES,
            Self::InvalidField { .. } => codes::PARAM_INVALID_FIELD,
            Self::Duplicate { .. } => codes::PARAM_DUPLICATE,
            Self::InvalidDefinition { .. } => codes::PARAM_INVALID_DEFINITION,
        }
    }

    /// The parameter the error is about.
    pub fn parameter(&self) -> &str {
        match self {
            Self::Undefined { name, .. }
            | Self::UnknownValue { name, .. }
            | Self::Missing { name }
            | Self::WrongType { name, .. }
            | Self::NotAnOption { name, .. }
            | Self::EmptyList { name }
            | Self::TooManyValues { name, .. }
            | Self::InvalidField { name, .. }
            | Self::Duplicate { name }
            | Self::InvalidDefinition { name, .. } => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resolve(ty: ParameterType, v: Json) -> Result<Resolved, ParameterError> {
        ParameterDef::new("p", ty).resolve(&v)
    }

    fn scalar(ty: ParameterType, v: Json) -> Option<Value> {
        match resolve(ty, v) {
            Ok(Resolved::Scalar(v)) => Some(v),
            _ => None,
        }
    }

    /// What mutation testing found free to change: every command-line
    /// type name, JSON numbers and booleans, the edges of the limits, and
    /// what a refusal says.
    #[test]
    fn type_names_json_values_edges_and_messages_are_pinned() {
        let names = [
            ("text", ParameterType::Text),
            ("string", ParameterType::Text),
            ("integer", ParameterType::Integer),
            ("int", ParameterType::Integer),
            ("number", ParameterType::Number),
            ("float", ParameterType::Number),
            ("boolean", ParameterType::Boolean),
            ("bool", ParameterType::Boolean),
            ("date", ParameterType::Date),
            ("datetime", ParameterType::Datetime),
            ("timestamp", ParameterType::Datetime),
            ("date_range", ParameterType::DateRange),
            ("daterange", ParameterType::DateRange),
        ];
        for (name, ty) in names {
            assert_eq!(ParameterType::from_name(name), Some(ty), "{name}");
        }
        assert_eq!(ParameterType::from_name("enum"), None);

        assert_eq!(
            scalar(ParameterType::Number, json!(2.5)),
            Some(Value::Number(2.5))
        );
        for (given, expected) in [(json!(true), true), (json!(false), false)] {
            let got = scalar(ParameterType::Boolean, given);
            assert_eq!(got, Some(Value::Boolean(expected)));
        }
        for (given, expected) in [("false", false), ("0", false), ("1", true)] {
            let got = scalar(ParameterType::Boolean, json!(given));
            assert_eq!(got, Some(Value::Boolean(expected)), "{given}");
        }
        // Whole floats are integers below 9e15, where f64 is still exact.
        assert_eq!(
            scalar(ParameterType::Integer, json!(8.0e15)),
            Some(Value::Integer(8_000_000_000_000_000))
        );
        assert_eq!(scalar(ParameterType::Integer, json!(9.0e15)), None);

        let day = NaiveDate::from_ymd_opt(2024, 5, 1).unwrap();
        assert_eq!(
            resolve(ParameterType::DateRange, json!("2024-05-01..2024-05-01")).unwrap(),
            Resolved::Range(day, day),
            "a one-day range"
        );
        let three = json!(["2024-05-01", "2024-05-02", "2024-05-03"]);
        assert!(resolve(ParameterType::DateRange, three).is_err());

        let list = ParameterType::list(ItemType::Integer);
        let most: Vec<Json> = (0..MAX_LIST_VALUES).map(|i| json!(i)).collect();
        assert!(resolve(list.clone(), Json::Array(most.clone())).is_ok());
        let mut over = most;
        over.push(json!(0));
        let error = resolve(list, Json::Array(over)).unwrap_err();
        assert_eq!(error.code(), "param.too_many_values");

        let def = ParameterDef::new("region", ParameterType::Integer);
        assert!(def.check_value(&json!(3)).is_ok());
        let error = def.check_value(&json!("three")).unwrap_err();
        assert_eq!(error.parameter(), "region");
        let message = error.to_string();
        assert!(message.contains("an integer"), "{message}");
        assert!(message.contains("\"three\""), "{message}");
        let long = "x".repeat(100);
        let message = def.check_value(&json!(long)).unwrap_err().to_string();
        // The quoted value, cut at 60 characters.
        assert!(
            message.contains(&format!("\"{}…", "x".repeat(59))),
            "{message}"
        );
        assert!(!message.contains(&"x".repeat(60)), "{message}");
    }

    #[test]
    fn strings_convert_to_their_types() {
        assert_eq!(
            scalar(ParameterType::Integer, json!(" 42 ")),
            Some(Value::Integer(42))
        );
        assert_eq!(
            scalar(ParameterType::Integer, json!(5.0)),
            Some(Value::Integer(5))
        );
        assert_eq!(scalar(ParameterType::Integer, json!(5.5)), None);
        assert_eq!(
            scalar(ParameterType::Number, json!("2.5")),
            Some(Value::Number(2.5))
        );
        assert_eq!(scalar(ParameterType::Number, json!("NaN")), None);
        assert_eq!(scalar(ParameterType::Number, json!("inf")), None);
        assert_eq!(
            scalar(ParameterType::Boolean, json!("TRUE")),
            Some(Value::Boolean(true))
        );
        assert_eq!(scalar(ParameterType::Boolean, json!("yes please")), None);
        assert_eq!(
            scalar(ParameterType::Date, json!("2024-02-29")),
            Some(Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()))
        );
        assert_eq!(scalar(ParameterType::Date, json!("2023-02-29")), None);
        let t = scalar(ParameterType::Datetime, json!("2024-05-01T10:00:00+02:00")).unwrap();
        assert_eq!(t.to_string(), "2024-05-01T08:00:00+00:00");
        assert_eq!(
            scalar(ParameterType::Datetime, json!("2024-05-01 10:00:00")),
            None,
            "a datetime without an offset is ambiguous"
        );
        assert_eq!(scalar(ParameterType::Text, json!(12)), None);
    }

    #[test]
    fn enums_and_lists_check_options() {
        let ty = ParameterType::Enum {
            options: vec!["paid".into(), "shipped".into()],
        };
        assert!(scalar(ty.clone(), json!("paid")).is_some());
        let err = resolve(ty, json!("lost")).unwrap_err();
        assert_eq!(err.code(), "param.not_an_option");
        assert!(err.to_string().contains("\"paid\", \"shipped\""), "{err}");

        let ty = ParameterType::List {
            item: ItemType::Integer,
            options: vec!["1".into(), "2".into()],
        };
        assert!(resolve(ty.clone(), json!([1, "2"])).is_ok());
        assert_eq!(
            resolve(ty.clone(), json!([1, 3])).unwrap_err().code(),
            "param.not_an_option"
        );
        assert_eq!(
            resolve(ty, json!([])).unwrap_err().code(),
            "param.empty_list"
        );
    }

    #[test]
    fn date_ranges_in_three_spellings() {
        let want = Resolved::Range(
            NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
            NaiveDate::from_ymd_opt(2024, 1, 31).unwrap(),
        );
        for v in [
            json!({"start": "2024-01-01", "end": "2024-01-31"}),
            json!(["2024-01-01", "2024-01-31"]),
            json!("2024-01-01..2024-01-31"),
        ] {
            assert_eq!(resolve(ParameterType::DateRange, v).unwrap(), want);
        }
        assert_eq!(
            resolve(ParameterType::DateRange, json!("2024-02-01..2024-01-01"))
                .unwrap_err()
                .code(),
            "param.wrong_type"
        );
    }

    #[test]
    fn definitions_are_validated() {
        assert!(
            ParameterDef::new("ok_1", ParameterType::Text)
                .validate()
                .is_ok()
        );
        assert!(
            ParameterDef::new("1bad", ParameterType::Text)
                .validate()
                .is_err()
        );
        assert!(
            ParameterDef::new("e", ParameterType::Enum { options: vec![] })
                .validate()
                .is_err()
        );
        let bad_default = ParameterDef::new("n", ParameterType::Integer).with_default(json!("x"));
        assert_eq!(
            bad_default.validate().unwrap_err().code(),
            "param.invalid_definition"
        );
    }

    #[test]
    fn definitions_round_trip_through_json() {
        let def: ParameterDef = serde_json::from_value(json!({
            "name": "status", "type": "enum", "options": ["a", "b"], "default": "a"
        }))
        .unwrap();
        assert_eq!(
            def.ty,
            ParameterType::Enum {
                options: vec!["a".into(), "b".into()]
            }
        );
        let back = serde_json::to_value(&def).unwrap();
        assert_eq!(back["type"], "enum");
    }
}
