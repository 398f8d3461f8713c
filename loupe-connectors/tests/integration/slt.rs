//! The files datasource's SQL behaviour, written as sqllogictest files in
//! `tests/slt/` and run here through the path a user's run takes: the
//! registry builds the datasource over a fixture root, the SQL is parsed as
//! a Loupe [`Template`] in the datasource's dialect and bound to typed
//! parameters, and the statement runs through [`Datasource::execute`] under
//! [`Limits`]. Only the text formatting of the result is this module's own.
//!
//! A record's SQL may carry directives, comment lines of the form
//! `-- name: …` (parameters, limits, datasource options, restrictions);
//! see `tests/slt/README.md` for them, for the fixture tables, and for how
//! values are written. An error comes back as `code: message`
//! (`files.read_only: the files datasource is read-only: …`), for
//! `statement error <regex>` and `query error <regex>` to match.
//!
//! It must not grow a second way of running SQL: anything a `.slt` file
//! shows is what a run shows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array,
    RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use futures::StreamExt;
use loupe_core::{
    Datasource, DatasourceOptions, Error, ExportFormat, ItemType, Limits, ParameterDef,
    ParameterType, ParameterValues, Restrictions, RowFilter, Template,
};
use serde_json::Value as Json;
use sqllogictest::{
    AsyncDB, DBOutput, DefaultColumnType, ExpectedError, QueryExpect, Record, Runner,
    StatementExpect, strict_column_validator,
};

use crate::support::write_file;

/// Where the `.slt` files are.
fn slt_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt")
}

/// Runs every `.slt` file; fails naming each `file:line` that went wrong
/// and what differed, all files at once.
#[tokio::test]
async fn every_slt_file_passes() {
    let fixture = Fixture::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(slt_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for required in [
        "confinement.slt",
        "dialect.slt",
        "limits.slt",
        "parameters.slt",
    ] {
        assert!(
            names.iter().any(|n| n == required),
            "tests/slt/{required} is missing; found {names:?}"
        );
    }
    let mut failures = Vec::new();
    for file in &files {
        let script = std::fs::read_to_string(file).unwrap();
        let name = format!(
            "loupe-connectors/tests/slt/{}",
            file.file_name().unwrap().to_string_lossy()
        );
        let report = run_script(&fixture, &name, &script).await;
        assert!(report.ran > 0, "{name} has no statement or query");
        failures.extend(report.failures);
    }
    assert!(
        failures.is_empty(),
        "{} .slt record(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The runner is not a test that cannot fail: a wrong value, a wrong error
/// and a malformed directive are each reported at their line.
#[tokio::test]
async fn wrong_expectations_fail_naming_their_line() {
    let fixture = Fixture::new();
    let script = "\
query I
SELECT 1 + 1
----
3

statement error files\\.read_only
SELECT 1

query I
-- param: n integre = 3
SELECT {{ n }}
----
3

statement error
DROP TABLE orders

query T
SELECT 'fine'
----
fine
";
    let report = run_script(&fixture, "wrong.slt", script).await;
    assert_eq!(report.ran, 5);
    let text = report.failures.join("\n\n");
    assert_eq!(report.failures.len(), 4, "{text}");
    for (line, words) in [
        (1, &["query result mismatch", "-   3", "+   2"][..]),
        (6, &["is expected to fail, but actually succeed"]),
        (9, &["unknown parameter type \"integre\""]),
        (15, &["name the error"]),
    ] {
        let at = format!("wrong.slt:{line}\n");
        assert!(
            report
                .failures
                .iter()
                .any(|f| f.contains(&at) && words.iter().all(|w| f.contains(w))),
            "no failure at {at} saying {words:?} in:\n{text}"
        );
    }
}

/// What running one script came to.
struct Report {
    /// Statements and queries run.
    ran: usize,
    /// One message per failed record, naming its `file:line`.
    failures: Vec<String>,
}

/// Runs every record of `script` (named `name` in messages), going on past
/// failures so that one run reports them all.
async fn run_script(fixture: &Fixture, name: &str, script: &str) -> Report {
    let records = match sqllogictest::parse_with_name::<DefaultColumnType>(script, name) {
        Ok(records) => records,
        Err(e) => {
            return Report {
                ran: 0,
                failures: vec![format!("{e}")],
            };
        }
    };
    let root = fixture.root.path().to_path_buf();
    let mut runner = Runner::new(move || {
        let root = root.clone();
        async move { Ok::<_, SltError>(FilesDb::new(root)) }
    });
    runner.with_column_validator(strict_column_validator);
    runner.set_var(
        "ROOT".into(),
        fixture.root.path().to_string_lossy().into_owned(),
    );
    runner.set_var(
        "OUTSIDE".into(),
        fixture.outside.path().to_string_lossy().into_owned(),
    );
    let mut report = Report {
        ran: 0,
        failures: Vec::new(),
    };
    for record in records {
        if let Err(problem) = check_record(&record) {
            report.ran += 1;
            report.failures.push(problem);
            continue;
        }
        if matches!(record, Record::Statement { .. } | Record::Query { .. }) {
            report.ran += 1;
        }
        if let Err(e) = runner.run_async(record).await {
            report.failures.push(e.display(false).to_string());
        }
    }
    runner.shutdown_async().await;
    report
}

/// Checks what the runner would let pass: a malformed directive (which
/// would otherwise satisfy `statement error` on its own), and an expected
/// error that names nothing.
fn check_record(record: &Record<DefaultColumnType>) -> Result<(), String> {
    let (sql, loc, unnamed_error) = match record {
        Record::Statement {
            sql, loc, expected, ..
        } => (
            sql,
            loc,
            matches!(expected, StatementExpect::Error(ExpectedError::Empty)),
        ),
        Record::Query {
            sql, loc, expected, ..
        } => (
            sql,
            loc,
            matches!(expected, QueryExpect::Error(ExpectedError::Empty)),
        ),
        _ => return Ok(()),
    };
    if let Err(e) = Case::parse(sql) {
        return Err(format!("{e}\nat {loc}\n"));
    }
    if unnamed_error {
        return Err(format!(
            "name the error this record expects, as `statement error <regex>` matching its code \
             (`files.read_only`, `param.missing`, …): any error, a typo included, would pass\nat {loc}\n"
        ));
    }
    Ok(())
}

/// A statement's failure as the `.slt` sees it: `code: message`.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
struct SltError {
    code: &'static str,
    message: String,
}

impl From<Error> for SltError {
    fn from(e: Error) -> Self {
        Self {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl From<DirectiveError> for SltError {
    fn from(e: DirectiveError) -> Self {
        Self {
            code: "slt.directive",
            message: e.0,
        }
    }
}

/// A directive that cannot be read; the message says how to write it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct DirectiveError(String);

/// The files datasource as a sqllogictest database: one per `.slt` file,
/// over the fixture root, with one datasource per set of options.
struct FilesDb {
    root: PathBuf,
    datasources: HashMap<String, Arc<dyn Datasource>>,
}

impl FilesDb {
    fn new(root: PathBuf) -> Self {
        Self {
            root,
            datasources: HashMap::new(),
        }
    }

    /// The datasource with `options` over the root, built by the registry
    /// as a host builds one from its configuration.
    fn datasource(&mut self, options: &DatasourceOptions) -> Result<Arc<dyn Datasource>, Error> {
        let key = Json::Object(options.clone()).to_string();
        if let Some(ds) = self.datasources.get(&key) {
            return Ok(ds.clone());
        }
        let mut all = options.clone();
        all.insert(
            "root".into(),
            Json::String(self.root.to_string_lossy().into_owned()),
        );
        let ds = loupe_connectors::registry().build("files", &all)?;
        self.datasources.insert(key, ds.clone());
        Ok(ds)
    }
}

#[async_trait]
impl AsyncDB for FilesDb {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let case = Case::parse(sql)?;
        let ds = self.datasource(&case.options)?;
        let template = Template::parse(&case.sql, ds.dialect()).map_err(Error::from)?;
        let mut statement = template.bind(&case.defs, &case.values)?;
        statement.restrictions = case.restrictions;
        let mut stream = ds.execute(&statement, &case.limits).await?;
        let schema = stream.schema();
        let types = schema
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let mut rows = Vec::new();
        while let Some(batch) = stream.next().await {
            format_batch(&batch?, &mut rows)?;
        }
        if let Some(truncation) = stream.truncation() {
            rows.push(vec![format!("(truncated: {truncation})")]);
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "loupe-files"
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }
}

/// sqllogictest's column letter for an Arrow type: `I` integers, `R`
/// floats and decimals, `T` everything else.
fn column_type(data_type: &DataType) -> DefaultColumnType {
    match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => DefaultColumnType::Integer,
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => DefaultColumnType::FloatingPoint,
        DataType::Dictionary(_, values) => column_type(values),
        _ => DefaultColumnType::Text,
    }
}

/// Appends `batch`'s rows as text, one string per value (see the README's
/// formatting rules).
fn format_batch(batch: &RecordBatch, rows: &mut Vec<Vec<String>>) -> Result<(), Error> {
    let options = FormatOptions::new().with_null("NULL");
    let columns: Vec<ColumnText> = batch
        .columns()
        .iter()
        .map(|c| ColumnText::new(c, &options))
        .collect::<Result<_, _>>()?;
    for row in 0..batch.num_rows() {
        rows.push(columns.iter().map(|c| c.value(row)).collect());
    }
    Ok(())
}

/// How one column's values are written.
enum ColumnText<'a> {
    /// Floats, by [`float_text`].
    Float(ArrayRef),
    /// Everything else, by Arrow's display.
    Display(&'a dyn Array, ArrayFormatter<'a>),
}

impl<'a> ColumnText<'a> {
    fn new(column: &'a ArrayRef, options: &FormatOptions<'a>) -> Result<Self, Error> {
        let unsupported = |e: arrow::error::ArrowError| {
            Error::internal(format!(
                "a {} column cannot be written as text: {e}",
                column.data_type()
            ))
        };
        if column.data_type().is_floating() {
            let floats = arrow::compute::cast(column, &DataType::Float64).map_err(unsupported)?;
            return Ok(Self::Float(floats));
        }
        let formatter = ArrayFormatter::try_new(column.as_ref(), options).map_err(unsupported)?;
        Ok(Self::Display(column.as_ref(), formatter))
    }

    fn value(&self, row: usize) -> String {
        match self {
            Self::Float(floats) if floats.is_null(row) => "NULL".into(),
            Self::Float(floats) => float_text(floats.as_primitive::<Float64Type>().value(row)),
            Self::Display(array, _) if array.is_null(row) => "NULL".into(),
            Self::Display(_, formatter) => {
                let text = formatter.value(row).to_string();
                if text.is_empty() {
                    "(empty)".into()
                } else {
                    text
                }
            }
        }
    }
}

/// A float rounded to 6 decimal places without trailing zeros: `2.5`,
/// `3`, `0.333333`; `NaN`, `Infinity`, `-Infinity`.
fn float_text(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let text = format!("{value:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.to_owned()
    }
}

/// One record's SQL with its directives taken out, and what they set.
#[derive(Debug, Default)]
struct Case {
    sql: String,
    defs: Vec<ParameterDef>,
    values: ParameterValues,
    limits: Limits,
    options: DatasourceOptions,
    restrictions: Restrictions,
}

/// The directives a record's SQL may carry.
const DIRECTIVES: &[&str] = &[
    "param",
    "value",
    "limits",
    "option",
    "row_filter",
    "setting",
];

impl Case {
    /// Splits `text` into SQL and directives. A line `-- word: …` is a
    /// directive, and an unknown word is an error, so that a misspelt one
    /// is not quietly a comment.
    fn parse(text: &str) -> Result<Self, DirectiveError> {
        let mut case = Case::default();
        let mut sql = Vec::new();
        for line in text.lines() {
            let Some((name, rest)) = directive(line) else {
                sql.push(line);
                continue;
            };
            let rest = rest.trim();
            match name {
                "param" => case.param(rest)?,
                "value" => {
                    let (name, value) = assignment(rest, "-- value: NAME = VALUE")?;
                    case.values.insert(name.to_owned(), param_value(value)?);
                }
                "limits" => {
                    for item in rest.split(',') {
                        case.limit(item.trim())?;
                    }
                }
                "option" => {
                    let (name, value) = assignment(rest, "-- option: NAME = VALUE")?;
                    let value = serde_json::from_str(value)
                        .unwrap_or_else(|_| Json::String(value.to_owned()));
                    case.options.insert(name.to_owned(), value);
                }
                "row_filter" => {
                    let (table, predicate) = rest.split_once(':').ok_or_else(|| {
                        DirectiveError(format!(
                            "{line:?}: write a row filter as `-- row_filter: TABLE: PREDICATE`"
                        ))
                    })?;
                    case.restrictions.row_filters.push(RowFilter {
                        table: table.trim().to_owned(),
                        predicate: predicate.trim().to_owned(),
                        params: Vec::new(),
                    });
                }
                "setting" => {
                    let (name, value) = assignment(rest, "-- setting: NAME = VALUE")?;
                    case.restrictions
                        .settings
                        .insert(name.to_owned(), value.to_owned());
                }
                other => {
                    return Err(DirectiveError(format!(
                        "{line:?}: unknown directive {other:?}; the directives are {}. \
                         Write other comments without a colon after their first word",
                        DIRECTIVES.join(", ")
                    )));
                }
            }
        }
        case.sql = sql.join("\n");
        Ok(case)
    }

    /// `NAME TYPE`, then `= VALUE` (a value) or `default VALUE` (a
    /// default) or nothing (no value).
    fn param(&mut self, rest: &str) -> Result<(), DirectiveError> {
        const FORM: &str = "-- param: NAME TYPE [= VALUE | default VALUE]";
        let malformed = || DirectiveError(format!("{rest:?}: write a parameter as `{FORM}`"));
        let (name, rest) = rest.split_once(char::is_whitespace).ok_or_else(malformed)?;
        let rest = rest.trim_start();
        let (ty, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let mut def = ParameterDef::new(name, parameter_type(ty)?);
        let rest = rest.trim();
        if let Some(value) = rest.strip_prefix('=') {
            self.values.insert(name.to_owned(), param_value(value)?);
        } else if let Some(default) = rest.strip_prefix("default") {
            def = def.with_default(param_value(default)?);
        } else if !rest.is_empty() {
            return Err(malformed());
        }
        self.defs.push(def);
        Ok(())
    }

    /// One `max_rows = N`, `max_bytes = N` or `timeout = DURATION`.
    fn limit(&mut self, item: &str) -> Result<(), DirectiveError> {
        const FORM: &str = "-- limits: max_rows = N, max_bytes = N, timeout = 200ms";
        let (name, value) = assignment(item, FORM)?;
        let number = || {
            value.parse::<u64>().map_err(|_| {
                DirectiveError(format!(
                    "{item:?}: {name} is a whole number; write `{FORM}`"
                ))
            })
        };
        match name {
            "max_rows" => self.limits.max_rows = Some(number()?),
            "max_bytes" => self.limits.max_bytes = Some(number()?),
            "timeout" => {
                let after = humantime::parse_duration(value).map_err(|e| {
                    DirectiveError(format!("{item:?}: {e}; write a duration like 200ms or 2s"))
                })?;
                self.limits.timeout = Some(after);
            }
            other => {
                return Err(DirectiveError(format!(
                    "{item:?}: unknown limit {other:?}; write `{FORM}`"
                )));
            }
        }
        Ok(())
    }
}

/// `Some((name, rest))` for a directive line `-- name: rest`.
fn directive(line: &str) -> Option<(&str, &str)> {
    let body = line.trim_start().strip_prefix("--")?.trim_start();
    let (word, rest) = body.split_once(':')?;
    let is_word = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    is_word.then_some((word, rest))
}

/// `NAME = VALUE`, both trimmed.
fn assignment<'t>(text: &'t str, form: &str) -> Result<(&'t str, &'t str), DirectiveError> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim(), value.trim())),
        _ => Err(DirectiveError(format!("{text:?}: write `{form}`"))),
    }
}

/// A parameter value: JSON when it starts with `[`, `{` or `"` (as an API
/// body gives it), otherwise the text itself (as the command line and URLs
/// give it).
fn param_value(text: &str) -> Result<Json, DirectiveError> {
    let text = text.trim();
    if text.starts_with(['[', '{', '"']) {
        serde_json::from_str(text)
            .map_err(|e| DirectiveError(format!("{text:?} is not valid JSON: {e}")))
    } else {
        Ok(Json::String(text.to_owned()))
    }
}

/// `integer`, `enum(a|b)`, `list<integer>`, `list<text>(a|b)`, …
fn parameter_type(text: &str) -> Result<ParameterType, DirectiveError> {
    let unknown = || {
        DirectiveError(format!(
            "unknown parameter type {text:?}; write text, integer, number, boolean, date, \
             datetime, date_range, enum(A|B) or list<ITEM> with ITEM text, integer, number or \
             date, optionally list<ITEM>(A|B)"
        ))
    };
    let options =
        |inside: &str| -> Vec<String> { inside.split('|').map(|o| o.trim().to_owned()).collect() };
    if let Some(inside) = text.strip_prefix("enum(").and_then(|t| t.strip_suffix(')')) {
        return Ok(ParameterType::Enum {
            options: options(inside),
        });
    }
    if let Some(rest) = text.strip_prefix("list<") {
        let (item, rest) = rest.split_once('>').ok_or_else(unknown)?;
        let item = match item {
            "text" => ItemType::Text,
            "integer" => ItemType::Integer,
            "number" => ItemType::Number,
            "date" => ItemType::Date,
            _ => return Err(unknown()),
        };
        let options = match rest {
            "" => Vec::new(),
            _ => options(
                rest.strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(unknown)?,
            ),
        };
        return Ok(ParameterType::List { item, options });
    }
    ParameterType::from_name(text).ok_or_else(unknown)
}

/// The fixture: a root of small tables in every format the datasource
/// reads, with the entries it must refuse, and a directory outside it. The
/// tables are listed in `tests/slt/README.md`; keep the two in step.
struct Fixture {
    root: tempfile::TempDir,
    outside: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let at = |name: &str| root.path().join(name);
        write_file(&at("orders.parquet"), ExportFormat::Parquet, &orders());
        std::fs::create_dir(at("events")).unwrap();
        let (january, february) = events();
        write_file(
            &at("events/2024-01.parquet"),
            ExportFormat::Parquet,
            &january,
        );
        write_file(
            &at("events/2024-02.parquet"),
            ExportFormat::Parquet,
            &february,
        );
        std::fs::write(
            at("customers.csv"),
            "id,name,country,since\n\
             1,Ada,UK,2019-03-01\n\
             2,Bo,SE,2021-07-15\n\
             3,Chen,CN,2020-01-10\n\
             4,Dana,US,2022-11-30\n",
        )
        .unwrap();
        std::fs::write(at("MixedCase.csv"), "Id,Label\n1,one\n2,two\n").unwrap();
        std::fs::write(
            at("tags.json"),
            "{\"customer_id\": 1, \"tag\": \"vip\"}\n{\"customer_id\": 3, \"tag\": \"new\"}\n",
        )
        .unwrap();

        // What the datasource must not read, or not list.
        std::fs::write(outside.path().join("secret.csv"), "secret\nTOP\n").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.csv"), at("leak.csv")).unwrap();
        std::os::unix::fs::symlink(outside.path(), at("elsewhere")).unwrap();
        std::fs::create_dir(at("mixed")).unwrap();
        std::fs::write(at("mixed/a.csv"), "x\n1\n").unwrap();
        write_file(&at("mixed/b.parquet"), ExportFormat::Parquet, &january);
        std::fs::write(at("dup.csv"), "x\n1\n").unwrap();
        write_file(&at("dup.parquet"), ExportFormat::Parquet, &january);
        std::fs::create_dir(at("empty")).unwrap();
        std::fs::create_dir(at("linked")).unwrap();
        std::fs::write(at("linked/a.csv"), "x\n1\n").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.csv"), at("linked/b.csv")).unwrap();
        let deep = (1..=10).fold(at("deep"), |dir, level| dir.join(level.to_string()));
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("x.csv"), "x\n1\n").unwrap();
        std::fs::write(at("_hidden.csv"), "x\n1\n").unwrap();
        std::fs::write(at(".dotted.csv"), "x\n1\n").unwrap();
        std::fs::write(at("notes.txt"), "not a table\n").unwrap();
        Self { root, outside }
    }
}

fn day(date: &str) -> i32 {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    (chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap() - epoch).num_days() as i32
}

/// `orders`: one column per common type, with NULLs, an empty string and
/// text that looks like SQL.
fn orders() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("customer_id", DataType::Int64, true),
        Field::new("status", DataType::Utf8, true),
        Field::new("amount", DataType::Decimal128(10, 2), false),
        Field::new("discount", DataType::Float64, true),
        Field::new("express", DataType::Boolean, true),
        Field::new("ordered", DataType::Date32, false),
        Field::new(
            "created",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("note", DataType::Utf8, true),
    ]));
    let micros = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .timestamp_micros()
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5, 6])),
        Arc::new(Int64Array::from(vec![
            Some(1),
            Some(1),
            Some(2),
            Some(3),
            None,
            Some(4),
        ])),
        Arc::new(StringArray::from(vec![
            Some("paid"),
            Some("shipped"),
            Some("paid"),
            Some("refunded"),
            None,
            Some("shipped"),
        ])),
        Arc::new(
            Decimal128Array::from(vec![12050, 3500, 9999, 1000, 0, 123456])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        ),
        Arc::new(Float64Array::from(vec![
            Some(0.1),
            None,
            Some(0.25),
            Some(0.0),
            Some(1.5),
            Some(1.0 / 3.0),
        ])),
        Arc::new(BooleanArray::from(vec![
            Some(true),
            Some(false),
            Some(false),
            Some(true),
            None,
            Some(true),
        ])),
        Arc::new(Date32Array::from(
            [
                "2024-01-05",
                "2024-01-20",
                "2024-02-02",
                "2024-02-14",
                "2024-03-01",
                "2024-03-31",
            ]
            .map(day)
            .to_vec(),
        )),
        Arc::new(
            TimestampMicrosecondArray::from(
                [
                    "2024-01-05T09:30:00Z",
                    "2024-01-20T14:00:00Z",
                    "2024-02-02T08:15:30Z",
                    "2024-02-14T23:59:59Z",
                    "2024-03-01T00:00:00Z",
                    "2024-03-31T12:00:00.250Z",
                ]
                .map(micros)
                .to_vec(),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from(vec![
            Some("first order"),
            None,
            Some(""),
            Some("O'Brien'); DROP TABLE orders; --"),
            Some("gift"),
            Some("late"),
        ])),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

/// `events`, a folder table of two Parquet files: January's and February's.
fn events() -> (RecordBatch, RecordBatch) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("customer_id", DataType::Int64, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("day", DataType::Date32, false),
    ]));
    let batch = |rows: &[(i64, i64, &str, &str)]| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
                Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| day(r.3)))),
            ],
        )
        .unwrap()
    };
    (
        batch(&[
            (1, 1, "visit", "2024-01-03"),
            (2, 1, "buy", "2024-01-05"),
            (3, 2, "visit", "2024-01-28"),
        ]),
        batch(&[(4, 2, "buy", "2024-02-02"), (5, 3, "visit", "2024-02-10")]),
    )
}
