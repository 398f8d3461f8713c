//! Strings and numbers whose bounds are the services' own constants
//! ([`loupe_services::limits`], [`loupe_services::lists`], the engine's page
//! size): the OpenAPI schema shows the bound and parsing enforces it, both
//! from the same constant. poem-openapi's `validator(max_length = N)` takes
//! only literals, which would be copies of the rule.
//!
//! A value out of bounds fails to parse, so poem-openapi answers before the
//! handler runs: in a body it is a malformed request (400), in a parameter
//! an invalid field (422), as for its own validators.

use std::collections::BTreeMap;

use loupe_services::limits;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{
    ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type,
};
use serde_json::Value;

/// The part of [`Type`] the scalar types of the API share: required,
/// named `$name` in the document, its own raw value (what poem-openapi's
/// validators would look at) and no elements.
macro_rules! scalar_type {
    ($name:expr) => {
        const IS_REQUIRED: bool = true;
        type RawValueType = Self;
        type RawElementValueType = Self;

        fn name() -> ::std::borrow::Cow<'static, str> {
            $name.into()
        }

        fn as_raw_value(&self) -> Option<&Self::RawValueType> {
            Some(self)
        }

        fn raw_element_iter<'a>(
            &'a self,
        ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
            Box::new(self.as_raw_value().into_iter())
        }
    };
}
pub(crate) use scalar_type;

/// A name: of an object, a user, an organization.
pub(crate) type Name = Plain<1, { limits::NAME }>;

/// The characters the services refuse in names and other display text
/// (`char::is_control` but tab and newline), as a JSON Schema `pattern`:
/// the document states the rule [`Plain`] applies.
pub(crate) const NO_CONTROL_CHARACTERS: &str =
    "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$";

/// Whether `c` is a control character the services refuse in display text.
fn refused_control(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

/// Display text of `MIN` to `MAX` characters without control characters
/// (tab and newline allowed), such as a name. Its schema carries the
/// length bounds and [`NO_CONTROL_CHARACTERS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Plain<const MIN: usize, const MAX: usize>(pub(crate) String);

impl<const MIN: usize, const MAX: usize> Plain<MIN, MAX> {
    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    fn check(value: String) -> Result<Self, String> {
        let Text(value) = Text::<MIN, MAX>::check(value)?;
        if value.chars().any(refused_control) {
            return Err("control characters are not allowed (tab and newline are)".to_owned());
        }
        Ok(Self(value))
    }
}

impl<const MIN: usize, const MAX: usize> From<Plain<MIN, MAX>> for String {
    fn from(text: Plain<MIN, MAX>) -> Self {
        text.0
    }
}

impl<const MIN: usize, const MAX: usize> Type for Plain<MIN, MAX> {
    scalar_type!("string");

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            pattern: Some(NO_CONTROL_CHARACTERS.to_owned()),
            ..text_schema(MIN, MAX)
        }))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<const MIN: usize, const MAX: usize> ParseFromJSON for Plain<MIN, MAX> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(text) => Self::check(text).map_err(ParseError::custom),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl<const MIN: usize, const MAX: usize> ParseFromParameter for Plain<MIN, MAX> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Self::check(value.to_owned()).map_err(ParseError::custom)
    }
}

impl<const MIN: usize, const MAX: usize> ToJSON for Plain<MIN, MAX> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// A string schema of `min` to `max` characters.
fn text_schema(min: usize, max: usize) -> MetaSchema {
    MetaSchema {
        min_length: (min > 0).then_some(min),
        max_length: Some(max),
        ..MetaSchema::new("string")
    }
}

/// A string of `MIN` to `MAX` characters, such as
/// `Text<1, { limits::NAME }>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Text<const MIN: usize, const MAX: usize>(pub(crate) String);

impl<const MIN: usize, const MAX: usize> Text<MIN, MAX> {
    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub(crate) fn into_string(self) -> String {
        self.0
    }

    fn check(value: String) -> Result<Self, String> {
        // Characters, as the services count them (and as JSON Schema's
        // `maxLength` does).
        let n = value.chars().count();
        if n < MIN {
            Err(format!("{n} characters; at least {MIN} are needed"))
        } else if n > MAX {
            Err(format!("{n} characters; at most {MAX} are allowed"))
        } else {
            Ok(Self(value))
        }
    }
}

impl<const MIN: usize, const MAX: usize> From<Text<MIN, MAX>> for String {
    fn from(text: Text<MIN, MAX>) -> Self {
        text.0
    }
}

impl<const MIN: usize, const MAX: usize> Type for Text<MIN, MAX> {
    scalar_type!("string");

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(text_schema(MIN, MAX)))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<const MIN: usize, const MAX: usize> ParseFromJSON for Text<MIN, MAX> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(text) => Self::check(text).map_err(ParseError::custom),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl<const MIN: usize, const MAX: usize> ParseFromParameter for Text<MIN, MAX> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Self::check(value.to_owned()).map_err(ParseError::custom)
    }
}

impl<const MIN: usize, const MAX: usize> ToJSON for Text<MIN, MAX> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// A whole number from `MIN` to `MAX`, such as a row offset or an age in
/// seconds (`uint64` in the document).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Bounded<const MIN: u64, const MAX: u64>(pub(crate) u64);

impl<const MIN: u64, const MAX: u64> Bounded<MIN, MAX> {
    /// The number.
    pub(crate) fn get(self) -> u64 {
        self.0
    }

    fn check(n: u64) -> Result<Self, String> {
        if (MIN..=MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(format!("{n} is not between {MIN} and {MAX}"))
        }
    }
}

impl<const MIN: u64, const MAX: u64> Type for Bounded<MIN, MAX> {
    scalar_type!("integer_uint64");

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(integer_schema("uint64", MIN, MAX)))
    }
}

impl<const MIN: u64, const MAX: u64> ParseFromJSON for Bounded<MIN, MAX> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        let value = value.unwrap_or_default();
        match value.as_u64() {
            Some(n) => Self::check(n).map_err(ParseError::custom),
            None => Err(ParseError::expected_type(value)),
        }
    }
}

impl<const MIN: u64, const MAX: u64> ParseFromParameter for Bounded<MIN, MAX> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        whole_number(value)
            .and_then(Self::check)
            .map_err(ParseError::custom)
    }
}

/// A parameter's whole number, or why it is not one.
pub(crate) fn whole_number(value: &str) -> Result<u64, String> {
    value
        .parse::<u64>()
        .map_err(|_| format!("{value:?} is not a whole number"))
}

impl<const MIN: u64, const MAX: u64> ToJSON for Bounded<MIN, MAX> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::from(self.0))
    }
}

/// A JSON object of at most `MAX` members, such as a datasource's options.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct BoundedMap<const MAX: usize>(pub(crate) BTreeMap<String, Value>);

impl<const MAX: usize> Type for BoundedMap<MAX> {
    scalar_type!(<BTreeMap<String, Value> as Type>::name());

    fn schema_ref() -> MetaSchemaRef {
        <BTreeMap<String, Value> as Type>::schema_ref().merge(MetaSchema {
            max_properties: Some(MAX),
            ..MetaSchema::ANY
        })
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<const MAX: usize> ParseFromJSON for BoundedMap<MAX> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        let map =
            BTreeMap::<String, Value>::parse_from_json(value).map_err(ParseError::propagate)?;
        if map.len() > MAX {
            return Err(ParseError::custom(format!(
                "{} members; at most {MAX} are allowed",
                map.len()
            )));
        }
        Ok(Self(map))
    }
}

impl<const MAX: usize> ToJSON for BoundedMap<MAX> {
    fn to_json(&self) -> Option<Value> {
        self.0.to_json()
    }
}

/// An integer schema from `min` to `max`. JSON Schema bounds are numbers;
/// the constants here are far below 2^53, so they convert exactly.
pub(crate) fn integer_schema(format: &'static str, min: u64, max: u64) -> MetaSchema {
    let number = |n: u64| n as f64;
    MetaSchema {
        minimum: Some(number(min)),
        maximum: Some(number(max)),
        ..MetaSchema::new_with_format("integer", format)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_counts_characters_and_shows_its_bounds() {
        type Name = Text<1, 3>;
        assert!(Name::parse_from_parameter("äöü").is_ok());
        assert!(Name::parse_from_parameter("abcd").is_err());
        assert!(Name::parse_from_json(Some(Value::from(""))).is_err());
        assert!(Name::parse_from_json(Some(Value::from(3))).is_err());
        let MetaSchemaRef::Inline(schema) = Name::schema_ref() else {
            panic!("inline schema");
        };
        assert_eq!((schema.min_length, schema.max_length), (Some(1), Some(3)));
        let MetaSchemaRef::Inline(schema) = Text::<0, 3>::schema_ref() else {
            panic!("inline schema");
        };
        assert_eq!(schema.min_length, None);
    }

    #[test]
    fn plain_text_refuses_control_characters_as_its_pattern_says() {
        type Label = Plain<1, 10>;
        assert!(Label::parse_from_json(Some(Value::from("a\tb\nc"))).is_ok());
        assert!(Label::parse_from_json(Some(Value::from("a\u{7}b"))).is_err());
        assert!(Label::parse_from_json(Some(Value::from("a\u{85}b"))).is_err());
        // A JSON boolean is not text, whatever poem's `String` would make of it.
        assert!(Label::parse_from_json(Some(Value::from(false))).is_err());
        let MetaSchemaRef::Inline(schema) = Label::schema_ref() else {
            panic!("inline schema");
        };
        assert_eq!(schema.pattern.as_deref(), Some(NO_CONTROL_CHARACTERS));
    }

    #[test]
    fn bounded_numbers_refuse_what_is_outside() {
        type Rows = Bounded<1, 10>;
        assert_eq!(Rows::parse_from_parameter("10").ok(), Some(Bounded(10)));
        for bad in ["0", "11", "-1", "x"] {
            assert!(Rows::parse_from_parameter(bad).is_err(), "{bad}");
        }
        assert!(Rows::parse_from_json(Some(Value::from(1.5))).is_err());
    }
}
