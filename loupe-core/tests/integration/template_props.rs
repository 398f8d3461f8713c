//! Property tests of query templates, for every dialect:
//!
//! - parsing never panics, on any text;
//! - a template of valid SQL pieces and placeholders binds, and the rendered
//!   SQL has exactly one positional placeholder per bound value;
//! - no value text ever reaches the rendered SQL;
//! - a placeholder inside a string literal or comment is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use loupe_core::{
    Dialect, ItemType, ParameterDef, ParameterType, ParameterValues, Statement, Template, Value,
};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Value as Json, json};

/// The parameter names templates are built from.
const NAMES: [&str; 4] = ["a", "b_2", "ids", "_x"];

/// 256 cases per property, or `PROPTEST_CASES` for a longer run. Failures
/// are not saved to files; the cases found so far are the regression tests
/// at the end of this module.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------

/// Self-contained SQL pieces: each leaves the scanner in code, outside any
/// literal or comment, and holds no placeholder or positional parameter.
/// Pieces are separated by whitespace; placeholders may touch them.
fn sql_pieces(dialect: Dialect) -> Vec<&'static str> {
    let mut pieces = vec![
        // Words, numbers, operators.
        "select",
        "*",
        "from",
        "orders",
        "where",
        "and",
        "or",
        "in",
        "(",
        ")",
        ",",
        ";",
        "=",
        "<>",
        "<=",
        "+",
        "-",
        "/",
        "%",
        "||",
        ".",
        "t.col",
        "x1",
        "_y",
        "E",
        "e",
        "café",
        "日本語",
        "1",
        "42",
        "3.14",
        "1e10",
        "0x1F",
        "a$1",
        "a$b$",
        "$",
        "{ }",
        "}",
        "}}",
        // String literals and quoted identifiers.
        "'lit'",
        "''",
        "'it''s'",
        "'{{ open'",
        "'{{\"j\": 1}}'",
        "'$1 ? $x :p'",
        "'-- not a comment'",
        "'/* not a comment */'",
        "'}}{{'",
        "'multi\nline'",
        r"E'esc \' quote'",
        r"E'\\'",
        "\"ident\"",
        "\"q \"\" ident\"",
        "`tick`",
        "`t``k`",
        // Comments.
        "-- line comment\n",
        "-- {{ half\n",
        "-- ' \" `\n",
        "--\n",
        "/* block */",
        "/* multi\nline */",
        "/**/",
        "/* {{ x */",
        "/* ' */",
    ];
    match dialect {
        Dialect::Postgres | Dialect::DataFusion => pieces.extend([
            "$$dollar ' \" ` body$$",
            "$fn$ it's -- not $fn$",
            "$$$$",
            "$_t$ {{ $_t$",
            "/* outer /* inner */ still */",
            r"'back\'",
            "1--1\n",
        ]),
        Dialect::MySql => pieces.extend([
            r"'back\'slash'",
            r#""dq \" esc""#,
            "\"dq\"",
            r"'\\'",
            "# hash comment\n",
            "#\n",
            "1--1",
            "/* flat /* */",
            "$1",
            "$$",
        ]),
    }
    if dialect == Dialect::Postgres {
        // `?` is an operator in PostgreSQL, not a parameter.
        pieces.extend(["?", "j ?| k", "?&"]);
    }
    pieces
}

#[derive(Debug, Clone)]
enum Item {
    Sql(&'static str),
    /// Index into [`NAMES`] and a spacing style.
    Placeholder(usize, usize),
}

fn placeholder_text(name: &str, style: usize) -> String {
    match style % 4 {
        0 => format!("{{{{{name}}}}}"),
        1 => format!("{{{{ {name} }}}}"),
        2 => format!("{{{{\t{name} }}}}"),
        _ => format!("{{{{  {name}\t}}}}"),
    }
}

fn item(dialect: Dialect) -> impl Strategy<Value = Item> {
    prop_oneof![
        select(sql_pieces(dialect)).prop_map(Item::Sql),
        (0..NAMES.len(), 0..4usize).prop_map(|(n, s)| Item::Placeholder(n, s)),
    ]
}

/// A generated template: its text and the name index of every placeholder
/// occurrence, in order.
#[derive(Debug, Clone)]
struct Generated {
    text: String,
    uses: Vec<usize>,
}

/// Valid templates: SQL pieces and placeholders, joined by nothing or by
/// whitespace (two SQL pieces always get whitespace between them).
fn template(dialect: Dialect) -> impl Strategy<Value = Generated> {
    prop::collection::vec((item(dialect), select(vec!["", " ", "\n", "\t "])), 0..20).prop_map(
        |items| {
            let mut text = String::new();
            let mut uses = Vec::new();
            let mut previous_was_sql = false;
            for (item, sep) in items {
                let is_sql = matches!(item, Item::Sql(_));
                if sep.is_empty() && is_sql && previous_was_sql {
                    text.push(' ');
                } else {
                    text.push_str(sep);
                }
                match item {
                    Item::Sql(s) => text.push_str(s),
                    Item::Placeholder(n, style) => {
                        text.push_str(&placeholder_text(NAMES[n], style));
                        uses.push(n);
                    }
                }
                previous_was_sql = is_sql;
            }
            Generated { text, uses }
        },
    )
}

/// A parameter definition with a valid value and the values it binds to.
#[derive(Debug, Clone)]
struct Param {
    ty: ParameterType,
    input: Json,
    expected: Vec<Value>,
}

/// An integer as a JSON number or as a string with spaces around it.
fn integer_input() -> impl Strategy<Value = (Json, i64)> {
    (any::<i64>(), any::<bool>()).prop_map(|(n, as_string)| {
        let input = if as_string {
            json!(format!(" {n} "))
        } else {
            json!(n)
        };
        (input, n)
    })
}

fn text_param() -> impl Strategy<Value = Param> {
    any::<String>().prop_map(|s| Param {
        ty: ParameterType::Text,
        input: json!(s),
        expected: vec![Value::Text(s)],
    })
}

fn integer_param() -> impl Strategy<Value = Param> {
    integer_input().prop_map(|(input, n)| Param {
        ty: ParameterType::Integer,
        input,
        expected: vec![Value::Integer(n)],
    })
}

fn integer_list_param() -> impl Strategy<Value = Param> {
    prop::collection::vec(integer_input(), 1..6).prop_map(|items| Param {
        ty: ParameterType::list(ItemType::Integer),
        input: Json::Array(items.iter().map(|(j, _)| j.clone()).collect()),
        expected: items.iter().map(|(_, n)| Value::Integer(*n)).collect(),
    })
}

fn params() -> impl Strategy<Value = Vec<Param>> {
    let one = prop_oneof![text_param(), integer_param(), integer_list_param()];
    prop::collection::vec(one, NAMES.len())
}

/// Text that reads like an injection attempt and ends in a marker that
/// appears nowhere else.
fn marker_text() -> impl Strategy<Value = String> {
    let payloads = vec![
        "'; DROP TABLE orders; --",
        "\" OR \"1\"=\"1",
        "*/ UNION SELECT secret FROM users /*",
        "$$; DELETE FROM orders; $$",
        "\\'; SHUTDOWN; #",
        "` OR 1=1 -- ",
        "{{ a }}",
        "$1",
        "?",
    ];
    (select(payloads), any::<u64>()).prop_map(|(p, n)| format!("{p}~mark{n:016x}~"))
}

/// Text and text-list parameters whose values are all marker texts.
fn marker_params() -> impl Strategy<Value = Vec<Param>> {
    let scalar = marker_text().prop_map(|s| Param {
        ty: ParameterType::Text,
        input: json!(s),
        expected: vec![Value::Text(s)],
    });
    let list = prop::collection::vec(marker_text(), 1..4).prop_map(|items| Param {
        ty: ParameterType::list(ItemType::Text),
        input: json!(items),
        expected: items.into_iter().map(Value::Text).collect(),
    });
    prop::collection::vec(prop_oneof![scalar, list], NAMES.len())
}

/// Strings from the characters that matter to a SQL scanner.
fn sqlish() -> impl Strategy<Value = String> {
    let pieces = vec![
        "'",
        "\"",
        "`",
        "$",
        "?",
        "{",
        "}",
        "{{",
        "}}",
        "-",
        "--",
        "/",
        "*",
        "/*",
        "*/",
        "#",
        "\\",
        "\n",
        "\r",
        " ",
        "\t",
        "a",
        "E",
        "e",
        "x",
        "1",
        "9",
        "_",
        ".",
        "é",
        "$$",
        "$a$",
        "''",
        "{{ a }}",
        "{{b}}",
        "{{ c.start }}",
        "\u{0}",
        "\u{b}",
    ];
    prop::collection::vec(select(pieces), 0..40).prop_map(|v| v.concat())
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

fn defs_and_values(params: &[Param]) -> (Vec<ParameterDef>, ParameterValues) {
    let defs = NAMES
        .iter()
        .zip(params)
        .map(|(name, p)| ParameterDef::new(*name, p.ty.clone()))
        .collect();
    let values = NAMES
        .iter()
        .zip(params)
        .map(|(name, p)| ((*name).to_owned(), p.input.clone()))
        .collect();
    (defs, values)
}

/// Binds a generated template and checks the counts and the order of the
/// bound values.
fn bind_generated(
    dialect: Dialect,
    generated: &Generated,
    params: &[Param],
) -> Result<Statement, TestCaseError> {
    let template = Template::parse(&generated.text, dialect).map_err(|e| {
        TestCaseError::fail(format!(
            "{dialect}: {:?} does not parse: {e}",
            generated.text
        ))
    })?;
    let (defs, values) = defs_and_values(params);
    let stmt = template.bind(&defs, &values).map_err(|e| {
        TestCaseError::fail(format!(
            "{dialect}: {:?} does not bind: {e}",
            generated.text
        ))
    })?;

    let expected: Vec<(&str, &Value)> = generated
        .uses
        .iter()
        .flat_map(|&n| params[n].expected.iter().map(move |v| (NAMES[n], v)))
        .collect();
    let got: Vec<(&str, &Value)> = stmt
        .params
        .iter()
        .map(|p| (p.name.as_str(), &p.value))
        .collect();
    prop_assert_eq!(
        &got,
        &expected,
        "{}: bound values of {:?}",
        dialect,
        generated.text
    );

    let count = stmt.placeholder_count().map_err(|e| {
        TestCaseError::fail(format!(
            "{dialect}: rendered {:?} does not scan: {e}",
            stmt.sql
        ))
    })?;
    prop_assert_eq!(
        count,
        stmt.params.len(),
        "{}: template {:?} rendered as {:?}",
        dialect,
        generated.text,
        stmt.sql
    );
    Ok(stmt)
}

/// Binds any parsed template with every parameter as text `"x"`; checks
/// that the rendered SQL has one placeholder per value. A `{{ name.field }}`
/// can only fail with `param.invalid_field`.
fn check_parsed_binds(text: &str, dialect: Dialect) -> Result<(), TestCaseError> {
    let Ok(template) = Template::parse(text, dialect) else {
        return Ok(());
    };
    let names = template.parameter_names();
    let defs: Vec<ParameterDef> = names
        .iter()
        .map(|n| ParameterDef::new(*n, ParameterType::Text))
        .collect();
    let values: ParameterValues = names
        .iter()
        .map(|n| ((*n).to_owned(), json!("x")))
        .collect();
    match template.bind(&defs, &values) {
        Ok(stmt) => {
            let count = stmt.placeholder_count().map_err(|e| {
                TestCaseError::fail(format!(
                    "{dialect}: rendered {:?} does not scan: {e}",
                    stmt.sql
                ))
            })?;
            prop_assert_eq!(
                count,
                stmt.params.len(),
                "{}: template {:?} rendered as {:?}",
                dialect,
                text,
                stmt.sql
            );
        }
        Err(e) => prop_assert_eq!(
            e.code(),
            "param.invalid_field",
            "{}: {:?}: {}",
            dialect,
            text,
            e
        ),
    }
    Ok(())
}

/// Where a misplaced placeholder goes.
#[derive(Debug, Clone, Copy)]
enum Wrapper {
    /// `'…{{ p }}…'`
    Literal,
    /// `'…{{ p }}…` to the end of the template.
    UnterminatedLiteral,
    /// `--…{{ p }}…\n`, with the comment opener at the index.
    LineComment(usize),
    /// `/*…{{ p }}…*/`
    BlockComment,
}

/// `--` openers that start a comment in the dialect.
fn line_comment_openers(dialect: Dialect) -> Vec<&'static str> {
    match dialect {
        Dialect::Postgres | Dialect::DataFusion => vec!["--", "-- ", "---", "--\t"],
        // MySQL needs whitespace or a control character after `--`.
        Dialect::MySql => vec![
            "-- ", "--\t", "--  ", "--\r", "--\u{c}", "--\u{b}", "--\u{1}",
        ],
    }
}

/// Text that cannot end the literal or comment it is put in.
fn filler(in_line_comment: bool, in_block_comment: bool) -> impl Strategy<Value = String> {
    let mut pieces = vec![
        "a", "Z", "0", " ", "{", "}", "{{", "}}", "$", "$1", "?", "#", "\"", "`", ",", ";", "(",
        ")", "é", ":p", "\\\\",
    ];
    if !in_block_comment {
        pieces.extend(["*", "/", "-", "--", "*/", "/*"]);
    }
    if !in_line_comment {
        pieces.push("\n");
    }
    if !in_line_comment && !in_block_comment {
        pieces.push("''");
    }
    prop::collection::vec(select(pieces), 0..8).prop_map(|v| v.concat())
}

#[derive(Debug, Clone)]
struct Misplaced {
    text: String,
    expected_code: &'static str,
}

fn misplaced(dialect: Dialect) -> impl Strategy<Value = Misplaced> {
    let wrapper = prop_oneof![
        Just(Wrapper::Literal),
        Just(Wrapper::UnterminatedLiteral),
        (0..line_comment_openers(dialect).len()).prop_map(Wrapper::LineComment),
        Just(Wrapper::BlockComment),
    ];
    (
        template(dialect),
        select(vec!["", " ", "\n"]),
        wrapper,
        0..NAMES.len(),
        0..4usize,
        template(dialect),
    )
        .prop_flat_map(move |(prefix, sep, wrapper, name, style, suffix)| {
            let (line, block) = match wrapper {
                Wrapper::LineComment(_) => (true, false),
                Wrapper::BlockComment => (false, true),
                Wrapper::Literal | Wrapper::UnterminatedLiteral => (false, false),
            };
            (filler(line, block), filler(line, block)).prop_map(move |(before, after)| {
                let ph = placeholder_text(NAMES[name], style);
                let (bad, expected_code, tail) = match wrapper {
                    Wrapper::Literal => (
                        format!("'{before}{ph}{after}'"),
                        "template.placeholder_in_literal",
                        format!(" {}", suffix.text),
                    ),
                    Wrapper::UnterminatedLiteral => (
                        format!("'{before}{ph}{after}"),
                        "template.placeholder_in_literal",
                        String::new(),
                    ),
                    Wrapper::LineComment(i) => (
                        format!("{}{before}{ph}{after}\n", line_comment_openers(dialect)[i]),
                        "template.placeholder_in_comment",
                        suffix.text.clone(),
                    ),
                    Wrapper::BlockComment => (
                        format!("/*{before}{ph}{after}*/"),
                        "template.placeholder_in_comment",
                        format!(" {}", suffix.text),
                    ),
                };
                Misplaced {
                    text: format!("{}{sep}{bad}{tail}", prefix.text),
                    expected_code,
                }
            })
        })
}

fn check_misplaced(dialect: Dialect, case: &Misplaced) -> Result<(), TestCaseError> {
    match Template::parse(&case.text, dialect) {
        Ok(t) => Err(TestCaseError::fail(format!(
            "{dialect}: {:?} parsed, with placeholders {:?}; expected {}",
            case.text,
            t.parameter_names(),
            case.expected_code
        ))),
        Err(e) => {
            prop_assert_eq!(
                e.code(),
                case.expected_code,
                "{}: {:?}: {}",
                dialect,
                case.text,
                e
            );
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------
// Properties, stamped out per dialect
// ---------------------------------------------------------------------------

macro_rules! per_dialect {
    ($($module:ident => $dialect:expr),* $(,)?) => {$(
        mod $module {
            use super::*;

            const DIALECT: Dialect = $dialect;

            proptest! {
                #![proptest_config(config())]

                #[test]
                fn parse_never_panics_on_any_text(text in any::<String>()) {
                    let _ = Template::parse(&text, DIALECT);
                    // Scanning rendered SQL must not panic either.
                    let stmt = Statement { sql: text, params: Vec::new(), dialect: DIALECT, restrictions: Default::default() };
                    let _ = stmt.placeholder_count();
                }

                #[test]
                fn parse_never_panics_on_sqlish_text(text in sqlish()) {
                    let stmt = Statement { sql: text.clone(), params: Vec::new(), dialect: DIALECT, restrictions: Default::default() };
                    let _ = stmt.placeholder_count();
                    check_parsed_binds(&text, DIALECT)?;
                }

                #[test]
                fn any_parsed_template_renders_one_placeholder_per_value(text in any::<String>()) {
                    check_parsed_binds(&text, DIALECT)?;
                }

                #[test]
                fn generated_templates_bind_one_placeholder_per_value(
                    generated in template(DIALECT),
                    params in params(),
                ) {
                    bind_generated(DIALECT, &generated, &params)?;
                }

                #[test]
                fn values_never_appear_in_sql(
                    generated in template(DIALECT),
                    params in marker_params(),
                ) {
                    let stmt = bind_generated(DIALECT, &generated, &params)?;
                    for p in &params {
                        for v in &p.expected {
                            let Value::Text(marker) = v else { unreachable!() };
                            prop_assert!(
                                !stmt.sql.contains(marker.as_str()),
                                "{}: value {:?} is in {:?}", DIALECT, marker, stmt.sql
                            );
                            let tail = &marker[marker.rfind("~mark").unwrap_or(0)..];
                            prop_assert!(!stmt.sql.contains(tail), "{}: {:?}", DIALECT, stmt.sql);
                        }
                    }
                }

                #[test]
                fn placeholders_in_literals_and_comments_are_refused(case in misplaced(DIALECT)) {
                    check_misplaced(DIALECT, &case)?;
                }
            }
        }
    )*};
}

per_dialect! {
    postgres => Dialect::Postgres,
    mysql => Dialect::MySql,
    datafusion => Dialect::DataFusion,
}

// ---------------------------------------------------------------------------
// Cases the properties found
// ---------------------------------------------------------------------------

fn code(text: &str, dialect: Dialect) -> &'static str {
    match Template::parse(text, dialect) {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

/// A placeholder right after a `{` in a literal or comment was missed: the
/// search skipped past the overlapping `{{`.
#[test]
fn placeholder_after_a_brace_in_a_literal_is_refused() {
    for d in Dialect::ALL {
        assert_eq!(
            code("select '{{{ a }}'", d),
            "template.placeholder_in_literal",
            "{d}"
        );
        assert_eq!(
            code("select 1 -- {{{ a }}\n", d),
            "template.placeholder_in_comment",
            "{d}"
        );
        assert_eq!(
            code("select '{{{{a}}}}'", d),
            "template.placeholder_in_literal",
            "{d}"
        );
    }
}

/// MySQL starts a `--` comment when the next character is whitespace or a
/// control character (`my_isspace || my_iscntrl` in its lexer), and reads
/// `---` as `-` then `--`.
#[test]
fn mysql_double_dash_comments_follow_mysql() {
    for opener in [
        "--\u{b}",
        "--\u{1}",
        "--\u{7f}",
        "--- ",
        "\n---\u{1}",
        "1--- ",
    ] {
        let text = format!("select {opener}{{{{ a }}}}\n");
        assert_eq!(
            code(&text, Dialect::MySql),
            "template.placeholder_in_comment",
            "{text:?}"
        );
    }
    // Still arithmetic: no whitespace after the dashes.
    for text in [
        "select 1--{{ a }}",
        "select 1---{{ a }}",
        "select 1 - -{{ a }}",
    ] {
        assert_eq!(code(text, Dialect::MySql), "ok", "{text:?}");
    }
}
