//! Query templates: SQL with `{{ name }}` placeholders, turned into a
//! [`Statement`] with the dialect's positional placeholders and typed values.
//!
//! No value is ever written into SQL text. A placeholder becomes `$n`
//! (PostgreSQL, DataFusion) or `?` (MySQL), and its value travels beside the
//! SQL to the driver, which binds it. A multi-value parameter becomes one
//! placeholder per value; a date range is used as `{{ r.start }}` and
//! `{{ r.end }}`.
//!
//! ```
//! use loupe_core::{Dialect, ParameterDef, ParameterType, Template, Value};
//! use serde_json::json;
//!
//! let template = Template::parse(
//!     "select * from orders where customer_id = {{ customer }} and status in ({{ statuses }})",
//!     Dialect::Postgres,
//! )?;
//! let defs = [
//!     ParameterDef::new("customer", ParameterType::Integer),
//!     ParameterDef::new("statuses", ParameterType::list(loupe_core::ItemType::Text)),
//! ];
//! let values = [
//!     ("customer".to_owned(), json!("42")),
//!     ("statuses".to_owned(), json!(["paid", "shipped"])),
//! ]
//! .into();
//! let stmt = template.bind(&defs, &values)?;
//! assert_eq!(
//!     stmt.sql,
//!     "select * from orders where customer_id = $1 and status in ($2, $3)"
//! );
//! assert_eq!(stmt.params[0].value, Value::Integer(42));
//! # Ok::<(), loupe_core::Error>(())
//! ```

mod lexer;

use crate::codes;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use lexer::Segment;
pub use lexer::SqlContext;
pub use lexer::{Placeholder, Position};

use crate::error::Result;
use crate::params::{ParameterDef, ParameterError, ParameterValues, Resolved, Value};
use crate::restrictions::Restrictions;

/// The SQL flavour a statement is written for: decides how literals and
/// comments are recognised and what placeholders look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// PostgreSQL: `$1…$n`, `E'…'` and `$$…$$` strings, nested comments.
    Postgres,
    /// MySQL and MariaDB: `?`, backslash escapes, `#` comments, backticks.
    MySql,
    /// DataFusion (the files datasource): `$1…$n`, PostgreSQL-like lexing.
    DataFusion,
}

impl Dialect {
    /// Every dialect, for tests and tools.
    pub const ALL: [Dialect; 3] = [Dialect::Postgres, Dialect::MySql, Dialect::DataFusion];

    /// The dialect's name as used in configuration and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::MySql => "mysql",
            Self::DataFusion => "datafusion",
        }
    }

    fn question_mark_is_placeholder(self) -> bool {
        matches!(self, Self::MySql | Self::DataFusion)
    }

    fn write_placeholder(self, out: &mut String, index: usize) {
        match self {
            Self::MySql => out.push('?'),
            Self::Postgres | Self::DataFusion => {
                out.push('$');
                out.push_str(&index.to_string());
            }
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a template could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// `{{` without a closing `}}` on the same line.
    #[error("unterminated placeholder at {at}: close `{{{{` with `}}}}` on the same line")]
    Unterminated {
        /// Where the `{{` is.
        at: Position,
    },
    /// `{{ … }}` whose content is not a parameter name.
    #[error(
        "{text:?} at {at} is not a placeholder: write {{{{ name }}}}, where the name starts with a letter or `_` and has only letters, digits and `_`"
    )]
    InvalidPlaceholder {
        /// The offending text (shortened).
        text: String,
        /// Where it starts.
        at: Position,
    },
    /// A placeholder inside a string literal, quoted identifier or comment.
    #[error("{{{{ {name} }}}} at {at} is inside a {}; {}", context_name(*.context), context_fix(*.context))]
    PlaceholderIn {
        /// The parameter name.
        name: String,
        /// Literal or comment.
        context: SqlContext,
        /// Where it starts.
        at: Position,
    },
    /// The dialect's own `$1` or `?` in a template.
    #[error(
        "{text:?} at {at} is a positional parameter; in a Loupe query write a named parameter like {{{{ name }}}} (for {dialect}, Loupe writes the {text:?} form itself)"
    )]
    PositionalParameter {
        /// The offending text.
        text: String,
        /// Where it is.
        at: Position,
        /// The dialect the template was parsed for.
        dialect: Dialect,
    },
}

fn context_name(context: SqlContext) -> &'static str {
    match context {
        SqlContext::StringLiteral => "string literal",
        SqlContext::QuotedIdentifier => "quoted identifier",
        SqlContext::Comment => "comment",
    }
}

fn context_fix(context: SqlContext) -> &'static str {
    match context {
        SqlContext::StringLiteral | SqlContext::QuotedIdentifier => {
            "values are bound, not pasted into the SQL, so remove the quotes around the placeholder"
        }
        SqlContext::Comment => "it would not be bound there; remove it from the comment",
    }
}

impl TemplateError {
    /// The stable machine code of this error.
    pub fn code(&self) -> &'static str {
        self.catalogue_code().as_str()
    }

    /// The code of this error in [`codes`](crate::codes).
    pub fn catalogue_code(&self) -> crate::codes::Code {
        use crate::codes;
        match self {
            Self::Unterminated { .. } => codes::TEMPLATE_UNTERMINATED,
            Self::InvalidPlaceholder { .. } => codes::TEMPLATE_INVALID_PLACEHOLDER,
            Self::PlaceholderIn {
                context: SqlContext::Comment,
                ..
            } => codes::TEMPLATE_PLACEHOLDER_IN_COMMENT,
            Self::PlaceholderIn { .. } => codes::TEMPLATE_PLACEHOLDER_IN_LITERAL,
            Self::PositionalParameter { .. } => codes::TEMPLATE_POSITIONAL_PARAMETER,
        }
    }
}

/// A parsed query template, ready to be bound to parameter values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    dialect: Dialect,
    segments: Vec<Segment>,
}

impl Template {
    /// Parses `text` for `dialect`.
    ///
    /// # Errors
    /// A [`TemplateError`] for an unterminated or malformed placeholder, a
    /// placeholder inside a literal or comment, or a positional parameter.
    pub fn parse(text: &str, dialect: Dialect) -> Result<Self, TemplateError> {
        let segments = lexer::scan(text, dialect)?;
        Ok(Self {
            text: text.to_owned(),
            dialect,
            segments,
        })
    }

    /// The template's source text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The dialect the template was parsed for.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Every placeholder occurrence, in order.
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Placeholder(p) => Some(p),
            Segment::Sql(_) => None,
        })
    }

    /// The distinct parameter names the template uses.
    pub fn parameter_names(&self) -> BTreeSet<&str> {
        self.placeholders().map(|p| p.name.as_str()).collect()
    }

    /// Binds `values` (or the definitions' defaults) to the placeholders.
    ///
    /// # Errors
    /// [`ParameterError`] for a placeholder without a definition, a value for
    /// an undefined parameter, a missing value, a value of the wrong type or
    /// outside an enum's options, and a date range used without `.start` or
    /// `.end`.
    pub fn bind(&self, defs: &[ParameterDef], values: &ParameterValues) -> Result<Statement> {
        let by_name = index_definitions(defs)?;
        for name in values.keys() {
            if !by_name.contains_key(name.as_str()) {
                return Err(ParameterError::UnknownValue {
                    name: name.clone(),
                    defined: by_name.keys().map(|k| (*k).to_owned()).collect(),
                }
                .into());
            }
        }
        let mut resolved: BTreeMap<&str, Resolved> = BTreeMap::new();
        for def in defs {
            match values.get(&def.name) {
                Some(v) => {
                    resolved.insert(&def.name, def.resolve(v)?);
                }
                None => {
                    if let Some(default) = &def.default {
                        resolved.insert(&def.name, def.resolve(default)?);
                    }
                }
            }
        }

        let mut sql = String::with_capacity(self.text.len() + 16);
        let mut params = Vec::new();
        for segment in &self.segments {
            match segment {
                Segment::Sql(range) => sql.push_str(&self.text[range.clone()]),
                Segment::Placeholder(p) => {
                    if !by_name.contains_key(p.name.as_str()) {
                        return Err(ParameterError::Undefined {
                            name: p.name.clone(),
                            at: Position::of(&self.text, p.span.start).to_string(),
                        }
                        .into());
                    }
                    let value =
                        resolved
                            .get(p.name.as_str())
                            .ok_or_else(|| ParameterError::Missing {
                                name: p.name.clone(),
                            })?;
                    let values = value.expand(&p.name, p.field.as_deref())?;
                    self.write_placeholders(&mut sql, p, &values, params.len());
                    params.extend(values.into_iter().map(|value| BoundParam {
                        name: p.name.clone(),
                        value,
                    }));
                }
            }
        }
        Ok(Statement {
            sql,
            params,
            dialect: self.dialect,
            restrictions: Restrictions::default(),
        })
    }

    fn write_placeholders(
        &self,
        sql: &mut String,
        p: &Placeholder,
        values: &[Value],
        first: usize,
    ) {
        // Keep a placeholder from gluing onto a neighbouring word: `a{{x}}`
        // must not become the identifier `a$1`.
        let glued_before = sql.as_bytes().last().is_some_and(|&b| is_word_byte(b));
        let glued_after = self
            .text
            .as_bytes()
            .get(p.span.end)
            .is_some_and(|&b| is_word_byte(b));
        if glued_before {
            sql.push(' ');
        }
        for i in 0..values.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            self.dialect.write_placeholder(sql, first + i + 1);
        }
        if glued_after {
            sql.push(' ');
        }
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

fn index_definitions(defs: &[ParameterDef]) -> Result<BTreeMap<&str, &ParameterDef>> {
    let mut by_name = BTreeMap::new();
    for def in defs {
        if by_name.insert(def.name.as_str(), def).is_some() {
            return Err(ParameterError::Duplicate {
                name: def.name.clone(),
            }
            .into());
        }
    }
    Ok(by_name)
}

/// One bound value and the parameter it came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BoundParam {
    /// The parameter's name (repeated for each value of a list).
    pub name: String,
    /// The typed value.
    pub value: Value,
}

/// SQL in one dialect with positional placeholders, and the values to bind
/// to them, in order: `params[0]` is `$1` or the first `?`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Statement {
    /// The SQL text, with placeholders and no values.
    pub sql: String,
    /// The values, one per placeholder, in order.
    pub params: Vec<BoundParam>,
    /// The dialect `sql` is written in.
    pub dialect: Dialect,
    /// What the caller is restricted to (row-level security); the
    /// datasource enforces it or refuses the statement.
    #[serde(default, skip_serializing_if = "Restrictions::is_empty")]
    pub restrictions: Restrictions,
}

impl Statement {
    /// Parses `text` as a template and binds `values` against `defs`.
    pub fn from_template(
        text: &str,
        dialect: Dialect,
        defs: &[ParameterDef],
        values: &ParameterValues,
    ) -> Result<Self> {
        Template::parse(text, dialect)?.bind(defs, values)
    }

    /// Checks that the statement was written for `dialect`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) (`statement.dialect`)
    /// when it was bound for another dialect.
    pub fn expect_dialect(&self, dialect: Dialect) -> Result<()> {
        if self.dialect == dialect {
            Ok(())
        } else {
            Err(crate::Error::invalid_input(
                codes::STATEMENT_DIALECT,
                format!(
                    "the statement was written for {}, but this datasource speaks {dialect}; parse the template for {dialect}",
                    self.dialect
                ),
            ))
        }
    }

    /// The values in placeholder order.
    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.params.iter().map(|p| &p.value)
    }

    /// Counts the positional placeholders in [`sql`](Self::sql), outside
    /// literals and comments. For a statement made by [`Template::bind`]
    /// this equals `params.len()`.
    pub fn placeholder_count(&self) -> Result<usize> {
        Ok(lexer::count_positional(&self.sql, self.dialect)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{ItemType, ParameterType};
    use serde_json::json;

    fn values(pairs: &[(&str, serde_json::Value)]) -> ParameterValues {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    /// The messages a user reads: where a placeholder is and what to do,
    /// the dialect by the name configuration uses, and the text kept as
    /// written (pinned by mutation testing: each was free to change).
    #[test]
    fn refusals_name_the_context_and_the_fix_and_dialects_their_names() {
        let message = |sql: &str| {
            Template::parse(sql, Dialect::Postgres)
                .unwrap_err()
                .to_string()
        };
        let literal = message("select '{{ a }}'");
        assert!(literal.contains("inside a string literal"), "{literal}");
        assert!(literal.contains("remove the quotes"), "{literal}");
        let quoted = message("select \"{{ a }}\"");
        assert!(quoted.contains("inside a quoted identifier"), "{quoted}");
        assert!(quoted.contains("remove the quotes"), "{quoted}");
        let comment = message("select 1 -- {{ a }}");
        assert!(comment.contains("inside a comment"), "{comment}");
        assert!(comment.contains("remove it from the comment"), "{comment}");
        let positional = Template::parse("select ?", Dialect::MySql)
            .unwrap_err()
            .to_string();
        assert!(positional.contains("for mysql,"), "{positional}");

        let names: Vec<String> = Dialect::ALL.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["postgres", "mysql", "datafusion"]);
        assert_eq!(Dialect::DataFusion.name(), "datafusion");
        let text = "select {{ a }}  -- as written";
        assert_eq!(
            Template::parse(text, Dialect::Postgres).unwrap().text(),
            text
        );
    }

    /// A statement bound for one dialect is refused by a datasource of
    /// another: MySQL's `?` means nothing to PostgreSQL.
    #[test]
    fn a_statement_is_refused_by_a_datasource_of_another_dialect() {
        let defs = [ParameterDef::new("a", ParameterType::Integer)];
        let statement = Statement::from_template(
            "select {{ a }}",
            Dialect::MySql,
            &defs,
            &values(&[("a", json!(1))]),
        )
        .unwrap();
        assert!(statement.expect_dialect(Dialect::MySql).is_ok());
        for other in [Dialect::Postgres, Dialect::DataFusion] {
            let error = statement.expect_dialect(other).unwrap_err();
            assert_eq!(error.code(), "statement.dialect");
            let message = error.to_string();
            assert!(message.contains("written for mysql"), "{message}");
        }
    }

    #[test]
    fn placeholders_become_dollar_numbers_or_question_marks() {
        let defs = [
            ParameterDef::new("a", ParameterType::Integer),
            ParameterDef::new("b", ParameterType::Text),
        ];
        let v = values(&[("a", json!(1)), ("b", json!("x"))]);
        let sql = "select {{a}}, {{ b }}, {{a}}";
        let pg = Statement::from_template(sql, Dialect::Postgres, &defs, &v).unwrap();
        assert_eq!(pg.sql, "select $1, $2, $3");
        let my = Statement::from_template(sql, Dialect::MySql, &defs, &v).unwrap();
        assert_eq!(my.sql, "select ?, ?, ?");
        let vals: Vec<_> = my.values().cloned().collect();
        assert_eq!(
            vals,
            [
                Value::Integer(1),
                Value::Text("x".into()),
                Value::Integer(1)
            ]
        );
    }

    #[test]
    fn injection_payloads_stay_data() {
        let defs = [ParameterDef::new("name", ParameterType::Text)];
        let payload = "'; DROP TABLE orders; --";
        let v = values(&[("name", json!(payload))]);
        for d in Dialect::ALL {
            let stmt =
                Statement::from_template("select * from t where n = {{ name }}", d, &defs, &v)
                    .unwrap();
            assert!(!stmt.sql.contains("DROP"), "{}", stmt.sql);
            assert_eq!(stmt.params[0].value, Value::Text(payload.into()));
            assert_eq!(stmt.placeholder_count().unwrap(), 1);
        }
        let defs = [ParameterDef::new("id", ParameterType::Integer)];
        let v = values(&[("id", json!("1 OR 1=1"))]);
        for d in Dialect::ALL {
            let err = Statement::from_template("select * from t where id = {{ id }}", d, &defs, &v)
                .unwrap_err();
            assert_eq!(err.code(), "param.wrong_type");
        }
    }

    #[test]
    fn lists_expand_to_one_placeholder_per_value() {
        let defs = [ParameterDef::new(
            "ids",
            ParameterType::list(ItemType::Integer),
        )];
        let v = values(&[("ids", json!([3, "4", 5]))]);
        let stmt = Statement::from_template(
            "select * from t where id in ({{ ids }})",
            Dialect::Postgres,
            &defs,
            &v,
        )
        .unwrap();
        assert_eq!(stmt.sql, "select * from t where id in ($1, $2, $3)");
        assert_eq!(stmt.params.len(), 3);
        assert_eq!(stmt.params[1].value, Value::Integer(4));
    }

    #[test]
    fn date_range_uses_start_and_end() {
        let defs = [ParameterDef::new("r", ParameterType::DateRange)];
        let v = values(&[("r", json!({"start": "2024-01-01", "end": "2024-01-31"}))]);
        let stmt = Statement::from_template(
            "select * from t where d between {{ r.start }} and {{ r.end }}",
            Dialect::MySql,
            &defs,
            &v,
        )
        .unwrap();
        assert_eq!(stmt.sql, "select * from t where d between ? and ?");
        let err =
            Statement::from_template("select {{ r }}", Dialect::MySql, &defs, &v).unwrap_err();
        assert_eq!(err.code(), "param.invalid_field");
        assert!(err.to_string().contains("{{ r.start }}"), "{err}");
    }

    #[test]
    fn unknown_missing_and_defaults() {
        let defs = [ParameterDef::new("a", ParameterType::Integer).with_default(json!(7))];
        let stmt = Statement::from_template("select {{a}}", Dialect::Postgres, &defs, &values(&[]))
            .unwrap();
        assert_eq!(stmt.params[0].value, Value::Integer(7));

        let err = Statement::from_template("select {{b}}", Dialect::Postgres, &defs, &values(&[]))
            .unwrap_err();
        assert_eq!(err.code(), "param.undefined");
        assert!(err.to_string().contains("line 1, column 8"), "{err}");

        let err = Statement::from_template(
            "select {{a}}",
            Dialect::Postgres,
            &defs,
            &values(&[("zz", json!(1))]),
        )
        .unwrap_err();
        assert_eq!(err.code(), "param.unknown");

        let defs = [ParameterDef::new("a", ParameterType::Integer)];
        let err = Statement::from_template("select {{a}}", Dialect::Postgres, &defs, &values(&[]))
            .unwrap_err();
        assert_eq!(err.code(), "param.missing");
    }

    #[test]
    fn placeholders_do_not_glue_onto_words() {
        let defs = [ParameterDef::new("a", ParameterType::Integer)];
        let stmt = Statement::from_template(
            "select x{{a}}y",
            Dialect::Postgres,
            &defs,
            &values(&[("a", json!(1))]),
        )
        .unwrap();
        assert_eq!(stmt.sql, "select x $1 y");
    }
}
