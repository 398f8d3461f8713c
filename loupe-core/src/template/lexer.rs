//! A SQL scanner that knows just enough of each dialect to tell code from
//! string literals, quoted identifiers and comments.
//!
//! It finds `{{ name }}` placeholders in code, refuses them inside literals
//! and comments, and refuses the dialect's own positional parameters (`$1`,
//! `?`) so that every bound value comes from a named parameter. It does not
//! validate SQL: anything it does not recognise is passed through for the
//! database to judge.

use std::ops::Range;

use super::{Dialect, TemplateError};

/// A piece of a scanned template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// SQL text, copied to the statement unchanged.
    Sql(Range<usize>),
    /// A `{{ name }}` or `{{ name.field }}` placeholder.
    Placeholder(Placeholder),
}

/// One `{{ … }}` occurrence in code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    /// The parameter name.
    pub name: String,
    /// `start` in `{{ range.start }}`.
    pub field: Option<String>,
    /// Byte range of the whole `{{ … }}` in the template.
    pub span: Range<usize>,
}

/// The part of SQL a misplaced placeholder was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlContext {
    /// `'…'`, `E'…'`, `$$…$$`, or `"…"` in MySQL.
    StringLiteral,
    /// `"…"` or `` `…` ``.
    QuotedIdentifier,
    /// `-- …`, `/* … */`, or `# …` in MySQL.
    Comment,
}

/// What the scanner reports besides SQL text.
#[derive(Debug)]
pub(crate) enum Event {
    Placeholder(Placeholder),
    /// A `$1`, `$name` or `?` outside literals and comments.
    Positional(Range<usize>),
}

/// Splits `sql` into SQL text and placeholders.
pub(crate) fn scan(sql: &str, dialect: Dialect) -> Result<Vec<Segment>, TemplateError> {
    let mut segments = Vec::new();
    let mut last = 0;
    Scanner::new(sql, dialect).run(|event| match event {
        Event::Placeholder(p) => {
            if p.span.start > last {
                segments.push(Segment::Sql(last..p.span.start));
            }
            last = p.span.end;
            segments.push(Segment::Placeholder(p));
            Ok(())
        }
        Event::Positional(range) => Err(TemplateError::PositionalParameter {
            text: sql[range.clone()].to_owned(),
            at: Position::of(sql, range.start),
            dialect,
        }),
    })?;
    if last < sql.len() {
        segments.push(Segment::Sql(last..sql.len()));
    }
    Ok(segments)
}

/// Counts the dialect's positional parameters (`$n` or `?`) in rendered SQL,
/// outside literals and comments.
pub(crate) fn count_positional(sql: &str, dialect: Dialect) -> Result<usize, TemplateError> {
    let mut n = 0;
    Scanner::new(sql, dialect).run(|event| {
        if let Event::Positional(_) = event {
            n += 1;
        }
        Ok(())
    })?;
    Ok(n)
}

/// A 1-based line and column (in characters) in a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

impl Position {
    pub(crate) fn of(text: &str, offset: usize) -> Self {
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        Self { line, column }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

struct Scanner<'a> {
    src: &'a str,
    bytes: &'a [u8],
    dialect: Dialect,
    pos: usize,
}

/// Bytes that continue an identifier. Every byte of a multi-byte UTF-8
/// character is >= 0x80, and PostgreSQL and MySQL both allow non-ASCII
/// letters in identifiers, so those count too.
fn is_ident_part(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

impl<'a> Scanner<'a> {
    fn new(src: &'a str, dialect: Dialect) -> Self {
        Self {
            src,
            bytes: src.as_bytes(),
            dialect,
            pos: 0,
        }
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.pos + ahead).copied()
    }

    fn run(
        mut self,
        mut on: impl FnMut(Event) -> Result<(), TemplateError>,
    ) -> Result<(), TemplateError> {
        let mysql = self.dialect == Dialect::MySql;
        while let Some(b) = self.peek(0) {
            match b {
                b'\'' => self.string_literal(b'\'', mysql)?,
                b'"' if mysql => self.string_literal(b'"', true)?,
                b'"' => self.quoted_identifier(b'"')?,
                b'`' => self.quoted_identifier(b'`')?,
                b'-' if self.peek(1) == Some(b'-') => {
                    // MySQL only starts a comment at `--` followed by
                    // whitespace or a control character; `1--1` is
                    // arithmetic there.
                    let is_comment = !mysql
                        || self
                            .peek(2)
                            .is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control());
                    if is_comment {
                        self.line_comment()?;
                    } else {
                        // Only the first `-` is a token: in `--- x` the
                        // second `-` starts a comment.
                        self.pos += 1;
                    }
                }
                b'#' if mysql => self.line_comment()?,
                b'/' if self.peek(1) == Some(b'*') => self.block_comment(!mysql)?,
                b'{' if self.peek(1) == Some(b'{') => {
                    let p = self.placeholder()?;
                    on(Event::Placeholder(p))?;
                }
                b'?' if self.dialect.question_mark_is_placeholder() => {
                    on(Event::Positional(self.pos..self.pos + 1))?;
                    self.pos += 1;
                }
                b'$' if !mysql => self.dollar(&mut on)?,
                b if is_ident_start(b) || b.is_ascii_digit() => self.word()?,
                _ => self.pos += 1,
            }
        }
        Ok(())
    }

    /// An identifier, keyword or number. Handles the `E'…'` escape-string
    /// prefix of PostgreSQL and DataFusion, which changes how the following
    /// literal ends.
    fn word(&mut self) -> Result<(), TemplateError> {
        let start = self.pos;
        while self.peek(0).is_some_and(is_ident_part) {
            self.pos += 1;
        }
        let word = &self.bytes[start..self.pos];
        if self.dialect != Dialect::MySql
            && matches!(word, b"E" | b"e")
            && self.peek(0) == Some(b'\'')
        {
            self.string_literal(b'\'', true)?;
        }
        Ok(())
    }

    /// A string literal that opens at `self.pos` with `quote`. A doubled quote
    /// is an escaped quote; with `backslash`, so is `\'`.
    fn string_literal(&mut self, quote: u8, backslash: bool) -> Result<(), TemplateError> {
        let start = self.pos;
        self.pos += 1;
        self.quoted_body(start, quote, backslash, SqlContext::StringLiteral)
    }

    fn quoted_identifier(&mut self, quote: u8) -> Result<(), TemplateError> {
        let start = self.pos;
        self.pos += 1;
        self.quoted_body(start, quote, false, SqlContext::QuotedIdentifier)
    }

    fn quoted_body(
        &mut self,
        start: usize,
        quote: u8,
        backslash: bool,
        context: SqlContext,
    ) -> Result<(), TemplateError> {
        while let Some(b) = self.peek(0) {
            if backslash && b == b'\\' {
                self.pos += 2;
            } else if b == quote {
                if self.peek(1) == Some(quote) {
                    self.pos += 2;
                } else {
                    self.pos += 1;
                    return self.refuse_placeholders(start..self.pos, context);
                }
            } else {
                self.pos += 1;
            }
        }
        // Unterminated: the rest is literal. The database reports the
        // syntax error; a placeholder in it is still refused here.
        self.pos = self.bytes.len();
        self.refuse_placeholders(start..self.pos, context)
    }

    fn line_comment(&mut self) -> Result<(), TemplateError> {
        let start = self.pos;
        // PostgreSQL also ends a `--` comment at a carriage return.
        let cr_ends = self.dialect == Dialect::Postgres;
        while let Some(b) = self.peek(0) {
            if b == b'\n' || (cr_ends && b == b'\r') {
                break;
            }
            self.pos += 1;
        }
        self.refuse_placeholders(start..self.pos, SqlContext::Comment)
    }

    /// `/* … */`, nested in PostgreSQL and DataFusion, flat in MySQL.
    fn block_comment(&mut self, nested: bool) -> Result<(), TemplateError> {
        let start = self.pos;
        self.pos += 2;
        let mut depth = 1usize;
        while let Some(b) = self.peek(0) {
            if b == b'*' && self.peek(1) == Some(b'/') {
                self.pos += 2;
                depth -= 1;
                if depth == 0 {
                    break;
                }
            } else if nested && b == b'/' && self.peek(1) == Some(b'*') {
                self.pos += 2;
                depth += 1;
            } else {
                self.pos += 1;
            }
        }
        self.pos = self.pos.min(self.bytes.len());
        self.refuse_placeholders(start..self.pos, SqlContext::Comment)
    }

    /// `$`: a positional parameter (`$1`, and `$name` in DataFusion), a
    /// dollar-quoted string (`$$…$$`, `$tag$…$tag$`), or a plain character.
    fn dollar(
        &mut self,
        on: &mut impl FnMut(Event) -> Result<(), TemplateError>,
    ) -> Result<(), TemplateError> {
        let start = self.pos;
        let mut end = start + 1;
        if self.bytes.get(end).is_some_and(u8::is_ascii_digit) {
            while self.bytes.get(end).is_some_and(u8::is_ascii_digit) {
                end += 1;
            }
            self.pos = end;
            return on(Event::Positional(start..end));
        }
        // A tag is an identifier without `$`.
        if self.bytes.get(end).copied().is_some_and(is_ident_start) {
            while self
                .bytes
                .get(end)
                .is_some_and(|&b| is_ident_part(b) && b != b'$')
            {
                end += 1;
            }
        }
        if self.bytes.get(end) == Some(&b'$') {
            let tag = &self.src[start..=end];
            let body = end + 1;
            let close = self.src.get(body..).and_then(|rest| rest.find(tag));
            self.pos = close.map_or(self.bytes.len(), |i| body + i + tag.len());
            return self.refuse_placeholders(start..self.pos, SqlContext::StringLiteral);
        }
        if self.dialect == Dialect::DataFusion && end > start + 1 {
            // `$name` is a named placeholder in DataFusion.
            self.pos = end;
            return on(Event::Positional(start..end));
        }
        self.pos = start + 1;
        Ok(())
    }

    /// `{{ name }}` or `{{ name.field }}` at `self.pos`.
    fn placeholder(&mut self) -> Result<Placeholder, TemplateError> {
        let start = self.pos;
        let at = Position::of(self.src, start);
        if let Some(p) = match_placeholder(self.src, start) {
            self.pos = p.span.end;
            return Ok(p);
        }
        let body_start = start + 2;
        let rest = self.src.get(body_start..).unwrap_or("");
        match rest.find("}}") {
            Some(close) if !rest[..close].contains('\n') && !rest[..close].contains("{{") => {
                Err(TemplateError::InvalidPlaceholder {
                    text: preview(&self.src[start..body_start + close + 2]),
                    at,
                })
            }
            _ => Err(TemplateError::Unterminated { at }),
        }
    }

    /// Text in a literal or comment may mention `{{`, but a complete
    /// placeholder there is a mistake: it would not be bound.
    fn refuse_placeholders(
        &self,
        range: Range<usize>,
        context: SqlContext,
    ) -> Result<(), TemplateError> {
        let text = &self.src[range.clone()];
        let mut from = 0;
        while let Some(i) = text.get(from..).and_then(|t| t.find("{{")) {
            let offset = range.start + from + i;
            if let Some(p) = match_placeholder(self.src, offset)
                && p.span.end <= range.end
            {
                return Err(TemplateError::PlaceholderIn {
                    name: p.name,
                    context,
                    at: Position::of(self.src, offset),
                });
            }
            from += i + 1;
        }
        Ok(())
    }
}

/// Matches `{{ ident }}` or `{{ ident.ident }}` (spaces optional) at `start`.
fn match_placeholder(src: &str, start: usize) -> Option<Placeholder> {
    let bytes = src.as_bytes();
    let mut i = start;
    if bytes.get(i..i + 2) != Some(b"{{") {
        return None;
    }
    i += 2;
    let skip_spaces = |mut i: usize| {
        while bytes.get(i).is_some_and(|&b| b == b' ' || b == b'\t') {
            i += 1;
        }
        i
    };
    let ident = |i: usize| -> Option<usize> {
        let first = *bytes.get(i)?;
        if !(first.is_ascii_alphabetic() || first == b'_') {
            return None;
        }
        let mut j = i + 1;
        while bytes
            .get(j)
            .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_')
        {
            j += 1;
        }
        Some(j)
    };
    i = skip_spaces(i);
    let name_start = i;
    let name_end = ident(i)?;
    let mut field = None;
    i = name_end;
    if bytes.get(i) == Some(&b'.') {
        let field_end = ident(i + 1)?;
        field = Some(src[i + 1..field_end].to_owned());
        i = field_end;
    }
    i = skip_spaces(i);
    if bytes.get(i..i + 2) != Some(b"}}") {
        return None;
    }
    Some(Placeholder {
        name: src[name_start..name_end].to_owned(),
        field,
        span: start..i + 2,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sql: &str, dialect: Dialect) -> Vec<String> {
        scan(sql, dialect)
            .unwrap_or_else(|e| panic!("{sql:?}: {e}"))
            .into_iter()
            .filter_map(|s| match s {
                Segment::Placeholder(p) => Some(p.name),
                Segment::Sql(_) => None,
            })
            .collect()
    }

    fn code(sql: &str, dialect: Dialect) -> &'static str {
        match scan(sql, dialect) {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn finds_placeholders_in_code() {
        for d in Dialect::ALL {
            assert_eq!(
                names("select * from t where a = {{a}} and b in ({{ b_2 }})", d),
                ["a", "b_2"]
            );
        }
    }

    #[test]
    fn placeholder_in_string_literal_is_refused() {
        for d in Dialect::ALL {
            assert_eq!(
                code("select '{{ a }}'", d),
                "template.placeholder_in_literal"
            );
        }
        assert_eq!(
            code("select \"{{ a }}\"", Dialect::MySql),
            "template.placeholder_in_literal"
        );
        assert_eq!(
            code("select $$ {{ a }} $$", Dialect::Postgres),
            "template.placeholder_in_literal"
        );
        assert_eq!(
            code("select $fn$ {{ a }} $fn$", Dialect::DataFusion),
            "template.placeholder_in_literal"
        );
    }

    #[test]
    fn placeholder_in_comment_is_refused() {
        for d in Dialect::ALL {
            assert_eq!(
                code("select 1 -- {{ a }}\n", d),
                "template.placeholder_in_comment"
            );
            assert_eq!(
                code("select 1 /* {{ a }} */", d),
                "template.placeholder_in_comment"
            );
        }
        assert_eq!(
            code("select 1 # {{ a }}", Dialect::MySql),
            "template.placeholder_in_comment"
        );
        // Nested comments in PostgreSQL keep the placeholder inside.
        assert_eq!(
            code("select /* /* x */ {{ a }} */ 1", Dialect::Postgres),
            "template.placeholder_in_comment"
        );
        // MySQL comments do not nest: the placeholder is code there.
        assert_eq!(
            names("select /* /* x */ {{ a }} */ 1", Dialect::MySql),
            ["a"]
        );
    }

    #[test]
    fn escaped_quotes_do_not_end_literals() {
        // Doubled quote stays in the literal everywhere.
        for d in Dialect::ALL {
            assert_eq!(
                code("select 'it''s {{ a }}'", d),
                "template.placeholder_in_literal"
            );
        }
        // A backslash escapes in MySQL and in E'' strings, not in standard strings.
        assert_eq!(
            code(r"select 'a\' {{ a }} '", Dialect::MySql),
            "template.placeholder_in_literal"
        );
        assert_eq!(
            code(r"select E'a\' {{ a }} '", Dialect::Postgres),
            "template.placeholder_in_literal"
        );
        assert_eq!(names(r"select 'a\' = {{ a }}", Dialect::Postgres), ["a"]);
    }

    #[test]
    fn braces_in_literals_that_are_not_placeholders_are_fine() {
        assert_eq!(
            names(r#"select '{{"a":1}}' as j, {{ x }}"#, Dialect::Postgres),
            ["x"]
        );
    }

    #[test]
    fn positional_parameters_are_refused() {
        assert_eq!(
            code("select $1", Dialect::Postgres),
            "template.positional_parameter"
        );
        assert_eq!(
            code("select $name", Dialect::DataFusion),
            "template.positional_parameter"
        );
        assert_eq!(
            code("select ?", Dialect::MySql),
            "template.positional_parameter"
        );
        // `?` is a jsonb operator in PostgreSQL, `$` can be part of a name.
        assert_eq!(code("select j ? 'k', a$1 from t", Dialect::Postgres), "ok");
        // Inside literals they are just text.
        assert_eq!(code("select '$1 ?'", Dialect::MySql), "ok");
        assert_eq!(code("select '$1'", Dialect::Postgres), "ok");
    }

    /// PostgreSQL's lexer ends `--` comments at `\r` too: what follows is
    /// code, and here a literal that holds the placeholder.
    #[test]
    fn postgres_comments_end_at_carriage_return() {
        assert_eq!(
            code("select 1 -- c\r'\n{{a}} '", Dialect::Postgres),
            "template.placeholder_in_literal"
        );
        assert_eq!(names("select 1 -- c\r{{a}}", Dialect::Postgres), ["a"]);
        assert_eq!(
            code("select 1 -- c\r{{a}}", Dialect::MySql),
            "template.placeholder_in_comment"
        );
    }

    #[test]
    fn mysql_double_dash_needs_a_space() {
        assert_eq!(names("select 1--{{ a }}", Dialect::MySql), ["a"]);
    }

    #[test]
    fn unterminated_and_invalid_placeholders() {
        assert_eq!(
            code("select {{ a", Dialect::Postgres),
            "template.unterminated"
        );
        assert_eq!(
            code("select {{ a\n }}", Dialect::Postgres),
            "template.unterminated"
        );
        assert_eq!(
            code("select {{ 1a }}", Dialect::Postgres),
            "template.invalid_placeholder"
        );
        assert_eq!(
            code("select {{ a b }}", Dialect::Postgres),
            "template.invalid_placeholder"
        );
    }

    #[test]
    fn positions_are_line_and_character_column() {
        let p = Position::of("ab\ncé{{", 6);
        assert_eq!(p, Position { line: 2, column: 3 });
    }

    #[test]
    fn counts_positional_parameters() {
        assert_eq!(
            count_positional("select $1, '$2', $3 -- $4", Dialect::Postgres).ok(),
            Some(2)
        );
        assert_eq!(
            count_positional("select ?, '?', `?` # ?", Dialect::MySql).ok(),
            Some(1)
        );
    }
}
