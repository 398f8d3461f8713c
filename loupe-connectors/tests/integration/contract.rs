//! The contract every connector meets, as tables of cases run against
//! every datasource kind, in the spirit of sqlx's `test_type!`: the Arrow
//! types of common SQL types, parameters of every template type, injection
//! payloads, write refusals, server errors, restrictions (row-level
//! security) each kind enforces or refuses, row and byte limits, timeouts,
//! the pool, connection failures and TLS, database roles that may do more
//! than read, and certificate files.
//!
//! A case carries its SQL, and what each kind must answer, in an [`Each`]:
//! `all(…)` where one spelling serves every kind, a field per kind where
//! dialects differ, `None` where the case does not apply to a kind. To put
//! a new connector under contract, add its field to [`Each`] (the compiler
//! then asks for its column wherever a case spells its dialects out), a
//! [`Kind`], its [`Target`] plumbing and one `contract_tests!` line. A new
//! case runs on every kind.
//!
//! Each area is one test per kind (`contract::postgres::…`), run on every
//! [`Target::variants`] of the kind, and reports every failing case at
//! once. A kind whose database is not configured is skipped, except under
//! `CI=true`, where that fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Each kind's cases and plumbing are used when its feature is on.
#![cfg_attr(
    not(all(feature = "postgres", feature = "mysql", feature = "files")),
    allow(dead_code, unused_macros)
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    Array, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::StreamExt;
use loupe_core::{
    BoundParam, Datasource, DatasourceFactory, Error, ErrorKind, ExportFormat, ItemType, Limits,
    ParameterDef, ParameterType, Restrictions, RowFilter, Statement, Truncation, Value,
};
use mysql_async::prelude::Queryable;
use serde_json::{Value as Json, json};

use crate::support::{self, free_port, ints, run, run_restricted, run_with};

/// A datasource kind under contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Postgres,
    Mysql,
    Files,
}

/// One value per kind: a case's SQL in each dialect, or what each kind
/// must answer. `None` where the case does not apply to that kind.
#[derive(Debug, Clone)]
struct Each<T> {
    postgres: Option<T>,
    mysql: Option<T>,
    files: Option<T>,
}

/// One value per kind, in the order of [`Each`]'s fields.
fn dialects<T>(postgres: Option<T>, mysql: Option<T>, files: Option<T>) -> Each<T> {
    Each {
        postgres,
        mysql,
        files,
    }
}

/// The same for every kind.
fn all<T: Clone>(value: T) -> Each<T> {
    dialects(Some(value.clone()), Some(value.clone()), Some(value))
}

/// The same for the database servers; files has no such thing.
fn servers<T: Clone>(value: T) -> Each<T> {
    Each {
        files: None,
        ..all(value)
    }
}

impl<T> Each<T> {
    fn get(&self, kind: Kind) -> Option<&T> {
        match kind {
            Kind::Postgres => self.postgres.as_ref(),
            Kind::Mysql => self.mysql.as_ref(),
            Kind::Files => self.files.as_ref(),
        }
    }
}

/// An error a statement must end in: its code, and the server's SQLSTATE
/// and errno where the case names them.
#[derive(Debug, Clone, Copy)]
struct Failure {
    code: &'static str,
    sqlstate: Option<&'static str>,
    vendor_code: Option<&'static str>,
}

const fn fails(code: &'static str) -> Failure {
    Failure {
        code,
        sqlstate: None,
        vendor_code: None,
    }
}

impl Failure {
    const fn sqlstate(self, sqlstate: &'static str) -> Self {
        Self {
            sqlstate: Some(sqlstate),
            ..self
        }
    }

    const fn vendor_code(self, code: &'static str) -> Self {
        Self {
            vendor_code: Some(code),
            ..self
        }
    }

    fn check(&self, err: &Error) -> Result<(), String> {
        let query = err.as_query_error();
        let sqlstate = query.and_then(|q| q.sqlstate.as_deref());
        let vendor_code = query.and_then(|q| q.vendor_code.as_deref());
        if err.code() != self.code
            || self.sqlstate.is_some_and(|s| sqlstate != Some(s))
            || self.vendor_code.is_some_and(|v| vendor_code != Some(v))
        {
            return Err(format!(
                "wanted {self:?}, got {} (sqlstate {sqlstate:?}, errno {vendor_code:?}): {err}",
                err.code()
            ));
        }
        Ok(())
    }
}

/// What a statement must come to.
#[derive(Debug, Clone)]
enum Outcome {
    /// These integers in the first column, in order.
    Ids(Vec<i64>),
    Fails(Failure),
}

fn ids(ids: &[i64]) -> Outcome {
    Outcome::Ids(ids.to_vec())
}

impl Outcome {
    fn check(&self, result: Result<Vec<RecordBatch>, Error>) -> Result<(), String> {
        match (self, result) {
            (Outcome::Ids(want), Ok(rows)) if ints(&rows, 0) == *want => Ok(()),
            (Outcome::Ids(want), Ok(rows)) => {
                Err(format!("wanted {want:?}, got {:?}", ints(&rows, 0)))
            }
            (Outcome::Ids(want), Err(e)) => Err(format!("wanted {want:?}, got {e}")),
            (Outcome::Fails(failure), Err(e)) => failure.check(&e),
            (Outcome::Fails(failure), Ok(rows)) => Err(format!(
                "wanted {failure:?}, got rows {:?}",
                rows.iter().map(RecordBatch::num_rows).sum::<usize>()
            )),
        }
    }
}

/// The failures of one area on one kind; the test fails when any case
/// failed or when no case applied.
struct Report {
    kind: Kind,
    ran: usize,
    failures: Vec<String>,
}

impl Report {
    fn new(kind: Kind) -> Self {
        Self {
            kind,
            ran: 0,
            failures: Vec::new(),
        }
    }

    fn check(&mut self, place: &str, result: Result<(), String>) {
        self.ran += 1;
        if let Err(e) = result {
            self.failures.push(format!("{place}: {e}"));
        }
    }

    fn finish(self) {
        assert!(self.ran > 0, "no case applies to {:?}", self.kind);
        assert!(
            self.failures.is_empty(),
            "{:?} broke {} of {} cases:\n{}",
            self.kind,
            self.failures.len(),
            self.ran,
            self.failures.join("\n")
        );
    }
}

/// A kind with its test database (or directories) and the contract's
/// fixtures.
struct Target {
    kind: Kind,
    /// The server's URL as the user datasources connect as; empty for
    /// files.
    url: String,
    /// The server's URL as the owner of the scratch database, who writes
    /// the fixtures: the same as `url` on PostgreSQL (an owner is not a
    /// privileged role), a user with write grants on MariaDB (which a
    /// read-only datasource refuses).
    owner_url: String,
    /// Files: the fixture tables as Parquet in one root, as CSV in another.
    roots: Vec<tempfile::TempDir>,
}

impl Target {
    /// `None` skips the test (outside CI, without the database).
    fn open(kind: Kind) -> Option<Self> {
        let server = |(var, name): support::Server, owner: support::Server| {
            let url = support::database_url(var, name)?;
            let owner_url = support::database_url(owner.0, owner.1)?;
            Some(Self {
                kind,
                url,
                owner_url,
                roots: Vec::new(),
            })
        };
        match kind {
            Kind::Postgres => server(support::POSTGRES, support::POSTGRES),
            Kind::Mysql => server(support::MARIADB, support::MARIADB_OWNER),
            Kind::Files => Some(Self {
                kind,
                url: String::new(),
                owner_url: String::new(),
                roots: vec![
                    files_root(ExportFormat::Parquet, "parquet"),
                    files_root(ExportFormat::Csv, "csv"),
                ],
            }),
        }
    }

    /// The datasource with query options `extra` (servers only).
    fn datasource(&self, extra: &str) -> Arc<dyn Datasource> {
        if self.kind == Kind::Files {
            assert!(extra.is_empty(), "files takes no URL options: {extra}");
            return support::files_datasource(self.roots[0].path());
        }
        support::datasource(&self.url, extra)
    }

    /// A datasource as a user that may write, with query options `extra`:
    /// the owner. On MariaDB a read-only datasource refuses the owner for
    /// its write grants unless `extra` allows it.
    fn writer(&self, extra: &str) -> Arc<dyn Datasource> {
        if self.kind == Kind::Files {
            return self.datasource(extra);
        }
        support::datasource(&self.owner_url, extra)
    }

    /// The datasources the table cases run on: every way the kind carries
    /// rows.
    fn variants(&self) -> Vec<(String, Arc<dyn Datasource>)> {
        self.variants_as(&self.url, "")
    }

    /// [`Self::variants`] as a user that may write, so that the READ ONLY
    /// transaction is what refuses writes: on MariaDB the owner, allowed
    /// on purpose (the least-privilege reader would be refused by its
    /// grants before the transaction could show anything).
    fn writer_variants(&self) -> Vec<(String, Arc<dyn Datasource>)> {
        match self.kind {
            Kind::Mysql => self.variants_as(&self.owner_url, "allow_privileged_role=true"),
            Kind::Postgres | Kind::Files => self.variants(),
        }
    }

    fn variants_as(&self, url: &str, common: &str) -> Vec<(String, Arc<dyn Datasource>)> {
        let options: &[&str] = match self.kind {
            // COPY BINARY, extended-protocol rows, and every value crossing
            // a batch boundary.
            Kind::Postgres => &["", "transfer=rows", "transfer=rows&batch_rows=1"],
            Kind::Mysql => &["", "batch_rows=1"],
            Kind::Files => {
                return ["parquet", "csv"]
                    .into_iter()
                    .zip(&self.roots)
                    .map(|(name, root)| {
                        (
                            format!("{name} files"),
                            support::files_datasource(root.path()),
                        )
                    })
                    .collect();
            }
        };
        options
            .iter()
            .map(|o| {
                let extra = [common, o]
                    .into_iter()
                    .filter(|o| !o.is_empty())
                    .collect::<Vec<_>>()
                    .join("&");
                (format!("{o:?}"), support::datasource(url, &extra))
            })
            .collect()
    }

    /// Runs `sql` (statements separated by `;`) as the database's owner.
    async fn setup(&self, sql: &str) {
        match self.kind {
            Kind::Postgres => support::postgres_owner(&self.owner_url)
                .await
                .batch_execute(&format!("SET TIME ZONE 'UTC'; {sql}"))
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
            Kind::Mysql => {
                let mut owner = support::mysql_owner(&self.owner_url).await;
                owner
                    .query_drop(sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                owner.disconnect().await.unwrap();
            }
            Kind::Files => panic!("files fixtures are files, written when the target opens"),
        }
    }

    /// The integer `sql` returns, asked as the user datasources connect
    /// as (on MariaDB, a user without PROCESS sees only its own
    /// statements).
    async fn count(&self, sql: &str) -> i64 {
        match self.kind {
            Kind::Postgres => support::postgres_owner(&self.url)
                .await
                .query_one(sql, &[])
                .await
                .unwrap()
                .get(0),
            Kind::Mysql => {
                let mut client = support::mysql_owner(&self.url).await;
                let count: Option<i64> = client.query_first(sql).await.unwrap();
                client.disconnect().await.unwrap();
                count.unwrap()
            }
            Kind::Files => panic!("files has no server"),
        }
    }

    /// Waits until the server runs no statement holding `marker`; an
    /// error after five seconds.
    async fn stopped(&self, marker: &str) -> Result<(), String> {
        // The asking statement holds the marker too, and is left out.
        let running = dialects(
            Some(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%{marker}%' AND pid <> pg_backend_pid()",
            ),
            Some(
                "SELECT count(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%{marker}%' AND INFO NOT LIKE '%PROCESSLIST%'",
            ),
            None,
        );
        let sql = running.get(self.kind).unwrap().replace("{marker}", marker);
        let started = Instant::now();
        while self.count(&sql).await > 0 {
            if started.elapsed() > Duration::from_secs(5) {
                return Err(format!("{marker} still runs after 5s"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Creates table `name` with `columns` and `rows` of SQL literals.
    async fn create_table(&self, name: &str, columns: &str, rows: &[String]) {
        // The test database's own character set may not hold every text.
        let charset = if self.kind == Kind::Mysql {
            " CHARACTER SET utf8mb4"
        } else {
            ""
        };
        self.setup(&format!(
            "DROP TABLE IF EXISTS {name}; CREATE TABLE {name} ({columns}){charset}; INSERT INTO {name} VALUES {}",
            rows.join(", ")
        ))
        .await;
    }
}

/// The people every parameter case filters, the same rows in every kind.
struct Person {
    id: i64,
    name: &'static str,
    score: f64,
    active: bool,
    born: &'static str,
    /// In UTC.
    seen: &'static str,
    team: Option<&'static str>,
}

const PEOPLE: [Person; 5] = [
    Person {
        id: 1,
        name: "ada",
        score: 9.5,
        active: true,
        born: "1815-12-10",
        seen: "2023-11-14 22:13:20",
        team: Some("red"),
    },
    Person {
        id: 2,
        name: "alan",
        score: 7.0,
        active: false,
        born: "1912-06-23",
        seen: "2023-11-14 22:15:00",
        team: Some("blue"),
    },
    Person {
        id: 3,
        name: "grace",
        score: 8.25,
        active: true,
        born: "1906-12-09",
        seen: "2023-11-14 22:16:40",
        team: None,
    },
    Person {
        id: 4,
        name: "o'brien",
        score: 3.0,
        active: true,
        born: "1990-01-01",
        seen: "2023-11-14 22:18:20",
        team: Some("red"),
    },
    Person {
        id: 5,
        name: "linus",
        score: 6.5,
        active: false,
        born: "1969-12-28",
        seen: "2023-11-14 22:20:00",
        team: Some("blue"),
    },
];

/// [`PEOPLE`] as Arrow, for files.
pub(crate) fn people_batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("score", DataType::Float64, false),
        Field::new("active", DataType::Boolean, false),
        Field::new("born", DataType::Date32, false),
        Field::new(
            "seen",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("team", DataType::Utf8, true),
    ]));
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let day = |d: &str| {
        (chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap() - epoch).num_days() as i32
    };
    let micros = |t: &str| {
        chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
            .timestamp_micros()
    };
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(PEOPLE.iter().map(|p| p.id))),
            Arc::new(StringArray::from_iter_values(PEOPLE.iter().map(|p| p.name))),
            Arc::new(Float64Array::from_iter_values(
                PEOPLE.iter().map(|p| p.score),
            )),
            Arc::new(BooleanArray::from_iter(
                PEOPLE.iter().map(|p| Some(p.active)),
            )),
            Arc::new(Date32Array::from_iter_values(
                PEOPLE.iter().map(|p| day(p.born)),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(PEOPLE.iter().map(|p| micros(p.seen)))
                    .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter(PEOPLE.iter().map(|p| p.team))),
        ],
    )
    .unwrap()
}

/// [`PEOPLE`] as SQL rows.
fn people_rows() -> Vec<String> {
    let text = |t: &str| format!("'{}'", t.replace('\'', "''"));
    PEOPLE
        .iter()
        .map(|p| {
            format!(
                "({}, {}, {}, {}, {}, {}, {})",
                p.id,
                text(p.name),
                p.score,
                p.active,
                text(p.born),
                text(p.seen),
                p.team.map_or("NULL".to_owned(), text)
            )
        })
        .collect()
}

/// The column types of `contract_people` per server dialect.
fn people_columns() -> Each<&'static str> {
    dialects(
        Some(
            "id int, name text, score numeric(5,2), active bool, born date, seen timestamptz, team text",
        ),
        Some(
            "id INT, name VARCHAR(20), score DECIMAL(5,2), active BOOL, born DATE, seen DATETIME(6), team VARCHAR(10)",
        ),
        None,
    )
}

/// Two rows (1 and 2) that writes must leave alone.
fn writes_batch() -> RecordBatch {
    RecordBatch::try_from_iter([(
        "id",
        Arc::new(Int64Array::from(vec![1, 2])) as Arc<dyn Array>,
    )])
    .unwrap()
}

/// A root with the contract's tables (`contract_people`,
/// `contract_writes`) as files of `format`.
fn files_root(format: ExportFormat, extension: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, batch) in [
        ("contract_people", people_batch()),
        ("contract_writes", writes_batch()),
    ] {
        support::write_file(
            &dir.path().join(format!("{name}.{extension}")),
            format,
            &batch,
        );
    }
    dir
}

/// Generates one test per area for a kind.
macro_rules! contract_tests {
    ($module:ident, $kind:expr, [$($area:ident),+ $(,)?]) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $area() {
                    super::$area($kind).await;
                }
            )+
        }
    };
}

#[cfg(feature = "postgres")]
contract_tests!(
    postgres,
    super::Kind::Postgres,
    [
        types_map_to_the_same_arrow_types,
        parameters_are_bound_and_payloads_stay_data,
        writes_are_refused_by_the_datasource,
        errors_keep_the_code_of_their_cause,
        restrictions_are_enforced_or_refused,
        limits_cut_results_and_time_out,
        stopped_queries_stop_on_the_server,
        a_full_pool_says_so,
        concurrent_queries_share_the_datasource,
        connection_failures_are_told_apart,
        tls_modes_connect_encrypted,
        privileged_roles_are_refused,
        certificate_files_are_confined,
    ]
);

#[cfg(feature = "mysql")]
contract_tests!(
    mysql,
    super::Kind::Mysql,
    [
        types_map_to_the_same_arrow_types,
        parameters_are_bound_and_payloads_stay_data,
        writes_are_refused_by_the_datasource,
        errors_keep_the_code_of_their_cause,
        restrictions_are_enforced_or_refused,
        limits_cut_results_and_time_out,
        stopped_queries_stop_on_the_server,
        a_full_pool_says_so,
        concurrent_queries_share_the_datasource,
        connection_failures_are_told_apart,
        tls_modes_connect_encrypted,
        privileged_roles_are_refused,
        certificate_files_are_confined,
    ]
);

// Files has no pool, no connection and no TLS.
#[cfg(feature = "files")]
contract_tests!(
    files,
    super::Kind::Files,
    [
        types_map_to_the_same_arrow_types,
        parameters_are_bound_and_payloads_stay_data,
        writes_are_refused_by_the_datasource,
        errors_keep_the_code_of_their_cause,
        restrictions_are_enforced_or_refused,
        limits_cut_results_and_time_out,
        concurrent_queries_share_the_datasource,
    ]
);

// ---------------------------------------------------------------- types

/// A SQL type and the Arrow type each kind reads it as.
struct TypeCase {
    /// The SQL type, as each dialect spells it.
    sql_type: Each<&'static str>,
    /// Three values as SQL literals in each dialect.
    literals: Each<[&'static str; 3]>,
    arrow: Each<DataType>,
    /// The three values as Arrow prints them; `None` is NULL.
    values: [Option<&'static str>; 3],
}

fn type_case(
    sql_type: Each<&'static str>,
    literals: [&'static str; 3],
    arrow: DataType,
    values: [Option<&'static str>; 3],
) -> TypeCase {
    TypeCase {
        sql_type,
        literals: all(literals),
        arrow: all(arrow),
        values,
    }
}

fn type_cases() -> Vec<TypeCase> {
    use DataType as A;
    vec![
        type_case(
            dialects(Some("int2"), Some("SMALLINT"), Some("SMALLINT")),
            ["'-32768'", "'32767'", "NULL"],
            A::Int16,
            [Some("-32768"), Some("32767"), None],
        ),
        type_case(
            dialects(Some("int4"), Some("INT"), Some("INT")),
            ["'-2147483648'", "'2147483647'", "NULL"],
            A::Int32,
            [Some("-2147483648"), Some("2147483647"), None],
        ),
        type_case(
            dialects(Some("int8"), Some("BIGINT"), Some("BIGINT")),
            ["'-9223372036854775808'", "'9223372036854775807'", "NULL"],
            A::Int64,
            [
                Some("-9223372036854775808"),
                Some("9223372036854775807"),
                None,
            ],
        ),
        type_case(
            dialects(Some("float4"), Some("FLOAT"), Some("REAL")),
            ["'1.5'", "'-0.5'", "NULL"],
            A::Float32,
            [Some("1.5"), Some("-0.5"), None],
        ),
        type_case(
            dialects(Some("float8"), Some("DOUBLE"), Some("DOUBLE")),
            ["'2.25'", "'-1e300'", "NULL"],
            A::Float64,
            [Some("2.25"), Some("-1e300"), None],
        ),
        type_case(
            all("DECIMAL(12,2)"),
            ["'1234567890.12'", "'-0.01'", "NULL"],
            A::Decimal128(12, 2),
            [Some("1234567890.12"), Some("-0.01"), None],
        ),
        type_case(
            all("DECIMAL(60,10)"),
            [
                "'12345678901234567890123456789012345678901234567890.0123456789'",
                "'-1'",
                "NULL",
            ],
            A::Decimal256(60, 10),
            [
                Some("12345678901234567890123456789012345678901234567890.0123456789"),
                Some("-1.0000000000"),
                None,
            ],
        ),
        // DataFusion's strings are views.
        TypeCase {
            arrow: dialects(Some(A::Utf8), Some(A::Utf8), Some(A::Utf8View)),
            ..type_case(
                dialects(Some("TEXT"), Some("TEXT"), Some("VARCHAR")),
                ["'héllo 🌍'", "''", "NULL"],
                A::Utf8,
                [Some("héllo 🌍"), Some(""), None],
            )
        },
        TypeCase {
            literals: dialects(
                Some([r"'\x00ff10'", "''", "NULL"]),
                Some(["x'00ff10'", "x''", "NULL"]),
                Some(["X'00ff10'", "X''", "NULL"]),
            ),
            ..type_case(
                dialects(Some("bytea"), Some("VARBINARY(10)"), Some("BYTEA")),
                ["", "", ""],
                A::Binary,
                [Some("00ff10"), Some(""), None],
            )
        },
        type_case(
            all("DATE"),
            ["'2024-02-29'", "'1970-01-01'", "NULL"],
            A::Date32,
            [Some("2024-02-29"), Some("1970-01-01"), None],
        ),
        // DataFusion's TIMESTAMP is in nanoseconds.
        type_case(
            dialects(Some("timestamp"), Some("DATETIME(6)"), None),
            [
                "'2000-01-01 00:00:00'",
                "'2024-02-29 23:59:59.999999'",
                "NULL",
            ],
            A::Timestamp(TimeUnit::Microsecond, None),
            [
                Some("2000-01-01T00:00:00"),
                Some("2024-02-29T23:59:59.999999"),
                None,
            ],
        ),
        // MySQL's BOOLEAN is TINYINT(1): Int8 unless tinyint1_as_boolean
        // (tests/integration/mysql.rs).
        type_case(
            dialects(Some("BOOLEAN"), None, Some("BOOLEAN")),
            ["'true'", "'false'", "NULL"],
            A::Boolean,
            [Some("true"), Some("false"), None],
        ),
        type_case(
            dialects(Some("jsonb"), Some("JSON"), None),
            [r#"'{"a": [1, 2]}'"#, "'null'", "NULL"],
            A::Utf8,
            [Some(r#"{"a": [1, 2]}"#), Some("null"), None],
        ),
    ]
}

async fn types_map_to_the_same_arrow_types(kind: Kind) {
    let Some(target) = Target::open(kind) else {
        return;
    };
    let cases = type_cases();
    let applies: Vec<(usize, &TypeCase, &str, &[&str; 3])> = cases
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((i, c, *c.sql_type.get(kind)?, c.literals.get(kind)?)))
        .collect();
    assert!(
        applies.iter().all(|(_, c, ..)| c.arrow.get(kind).is_some()),
        "a type case for {kind:?} without its Arrow type"
    );
    // The servers read each type from a column of one table; files casts
    // literals, having no tables to create.
    if kind != Kind::Files {
        let columns: Vec<String> = applies
            .iter()
            .map(|(i, _, ty, _)| format!("c{i} {ty}"))
            .collect();
        let rows: Vec<String> = (0..3)
            .map(|row| {
                let values: Vec<&str> = applies.iter().map(|(.., l)| l[row]).collect();
                format!("({}, {})", row + 1, values.join(", "))
            })
            .collect();
        target
            .create_table(
                "contract_types",
                &format!("id INT, {}", columns.join(", ")),
                &rows,
            )
            .await;
    }
    let mut report = Report::new(kind);
    for (variant, ds) in target.variants() {
        for (i, case, ty, literals) in &applies {
            let sql = if kind == Kind::Files {
                format!(
                    "SELECT CAST(v AS {ty}) AS v FROM (VALUES (1, {}), (2, {}), (3, {})) AS t(id, v) ORDER BY id",
                    literals[0], literals[1], literals[2]
                )
            } else {
                format!("SELECT c{i} AS v FROM contract_types ORDER BY id")
            };
            let result = match run(&ds, &sql).await {
                Ok(rows) => check_column(&rows, case.arrow.get(kind).unwrap(), &case.values),
                Err(e) => Err(e.to_string()),
            };
            report.check(&format!("{variant}: {ty}"), result);
        }
    }
    report.finish();
}

/// The first column has type `arrow` and prints as `values`.
fn check_column(
    batches: &[RecordBatch],
    arrow: &DataType,
    values: &[Option<&str>],
) -> Result<(), String> {
    let Some(first) = batches.first() else {
        return Err("no batch".into());
    };
    let batch = arrow::compute::concat_batches(&first.schema(), batches).unwrap();
    let column = batch.column(0);
    if column.data_type() != arrow {
        return Err(format!("read as {}, not {arrow}", column.data_type()));
    }
    let format = ArrayFormatter::try_new(column, &FormatOptions::default()).unwrap();
    let got: Vec<Option<String>> = (0..column.len())
        .map(|i| column.is_valid(i).then(|| format.value(i).to_string()))
        .collect();
    let want: Vec<Option<String>> = values.iter().map(|v| v.map(str::to_owned)).collect();
    if got != want {
        return Err(format!("wanted {want:?}, got {got:?}"));
    }
    Ok(())
}

// ----------------------------------------------------------- parameters

/// A filter on `contract_people` with one parameter `p`.
struct ParameterCase {
    what: &'static str,
    /// The `WHERE` clause in each dialect.
    filter: Each<&'static str>,
    ty: ParameterType,
    value: Json,
    /// The ids it selects, or how it fails.
    expect: Each<Outcome>,
}

fn parameter(
    what: &'static str,
    filter: &'static str,
    ty: ParameterType,
    value: Json,
    expect: Outcome,
) -> ParameterCase {
    ParameterCase {
        what,
        filter: all(filter),
        ty,
        value,
        expect: all(expect),
    }
}

fn parameter_cases() -> Vec<ParameterCase> {
    use ParameterType as T;
    let team = || T::Enum {
        options: vec!["red".into(), "blue".into()],
    };
    let text_list = Each {
        postgres: Some("name = any(array[{{p}}])"),
        ..all("name IN ({{p}})")
    };
    let range = "born BETWEEN {{p.start}} AND {{p.end}}";
    let payload =
        |what, value: &str| parameter(what, "name = {{p}}", T::Text, json!(value), ids(&[]));
    vec![
        parameter("text", "name = {{p}}", T::Text, json!("grace"), ids(&[3])),
        parameter(
            "quotes in text are characters",
            "name = {{p}}",
            T::Text,
            json!("o'brien"),
            ids(&[4]),
        ),
        parameter(
            "integer as text",
            "id = {{p}}",
            T::Integer,
            json!("2"),
            ids(&[2]),
        ),
        parameter(
            "integer as text",
            "id = {{p}}",
            T::Integer,
            json!("4"),
            ids(&[4]),
        ),
        parameter(
            "number",
            "score > {{p}}",
            T::Number,
            json!(8.0),
            ids(&[1, 3]),
        ),
        parameter(
            "boolean",
            "active = {{p}}",
            T::Boolean,
            json!(false),
            ids(&[2, 5]),
        ),
        parameter(
            "boolean as text",
            "active = {{p}}",
            T::Boolean,
            json!("false"),
            ids(&[2, 5]),
        ),
        parameter(
            "date",
            "born < {{p}}",
            T::Date,
            json!("1900-01-01"),
            ids(&[1]),
        ),
        parameter(
            "datetime with an offset",
            "seen >= {{p}}",
            T::Datetime,
            json!("2023-11-14T23:16:40+01:00"),
            ids(&[3, 4, 5]),
        ),
        parameter(
            "datetime with an offset",
            "seen >= {{p}}",
            T::Datetime,
            json!("2023-11-14T23:18:20+01:00"),
            ids(&[4, 5]),
        ),
        parameter("enum", "team = {{p}}", team(), json!("red"), ids(&[1, 4])),
        parameter("enum", "team = {{p}}", team(), json!("blue"), ids(&[2, 5])),
        parameter(
            "list of integers",
            "id IN ({{p}})",
            T::list(ItemType::Integer),
            json!([1, 3]),
            ids(&[1, 3]),
        ),
        parameter(
            "list of integers, one as text",
            "id IN ({{p}})",
            T::list(ItemType::Integer),
            json!([1, "3", 5]),
            ids(&[1, 3, 5]),
        ),
        ParameterCase {
            filter: text_list.clone(),
            ..parameter(
                "list of texts",
                "",
                T::list(ItemType::Text),
                json!(["ada", "grace"]),
                ids(&[1, 3]),
            )
        },
        ParameterCase {
            filter: text_list,
            ..parameter(
                "list of texts, one matching nobody",
                "",
                T::list(ItemType::Text),
                json!(["ada", "linus", "nobody"]),
                ids(&[1, 5]),
            )
        },
        parameter(
            "date range as an object",
            range,
            T::DateRange,
            json!({"start": "1900-01-01", "end": "1999-12-31"}),
            ids(&[2, 3, 4, 5]),
        ),
        parameter(
            "date range as text",
            range,
            T::DateRange,
            json!("1900-01-01..1999-12-31"),
            ids(&[2, 3, 4, 5]),
        ),
        parameter(
            "date range as text",
            range,
            T::DateRange,
            json!("1900-01-01..1969-12-31"),
            ids(&[2, 3, 5]),
        ),
        payload("payload", "'; DROP TABLE contract_people; --"),
        payload("payload", "1 OR 1=1"),
        payload("payload", "x' OR '1'='1"),
        payload("payload", "o'brien' OR '1'='1"),
        // MySQL reads a backslash in a literal as an escape.
        payload("payload", "\\'; DROP TABLE contract_people; #"),
        parameter(
            "a payload as an integer is a type error",
            "id = {{p}}",
            T::Integer,
            json!("1 OR 1=1"),
            Outcome::Fails(fails("param.wrong_type")),
        ),
        // Text against an integer column converts, or fails: never a
        // wider filter. MySQL reads '1 OR 1=1' as the number 1.
        ParameterCase {
            expect: dialects(
                Some(Outcome::Fails(fails("query.failed").sqlstate("22P02"))),
                Some(ids(&[1])),
                Some(Outcome::Fails(fails("param.wrong_type"))),
            ),
            ..parameter(
                "a payload as text against an integer column",
                "id = {{p}}",
                T::Text,
                json!("1 OR 1=1"),
                ids(&[]),
            )
        },
    ]
}

async fn parameters_are_bound_and_payloads_stay_data(kind: Kind) {
    let Some(target) = Target::open(kind) else {
        return;
    };
    if let Some(columns) = people_columns().get(kind) {
        target
            .create_table("contract_people", columns, &people_rows())
            .await;
    }
    let mut report = Report::new(kind);
    for (variant, ds) in target.variants() {
        for case in parameter_cases() {
            let (Some(filter), Some(expect)) = (case.filter.get(kind), case.expect.get(kind))
            else {
                continue;
            };
            let sql = format!("SELECT id FROM contract_people WHERE {filter} ORDER BY id");
            let defs = [ParameterDef::new("p", case.ty.clone())];
            let result = run_with(
                &ds,
                &sql,
                &defs,
                &[("p", case.value.clone())],
                &Limits::NONE,
            )
            .await
            .map(|(rows, _)| rows);
            report.check(
                &format!("{variant}: {} ({filter} with {})", case.what, case.value),
                expect.check(result),
            );
        }
        let left = run(&ds, "SELECT count(*) FROM contract_people").await;
        report.check(
            &format!("{variant}: every row is still there"),
            ids(&[5]).check(left),
        );
    }
    report.finish();
}

// ----------------------------------------------------- writes and errors

/// A statement and the error it must end in.
struct Refusal {
    what: &'static str,
    sql: Each<&'static str>,
    fails: Each<Failure>,
}

/// How each kind refuses a write.
fn read_only() -> Each<Failure> {
    Each {
        files: Some(fails("files.read_only")),
        ..servers(fails("datasource.read_only"))
    }
}

fn write(what: &'static str, sql: Each<&'static str>) -> Refusal {
    Refusal {
        what,
        sql,
        fails: read_only(),
    }
}

/// Every route to a write: what the kind's writes end in, on
/// `contract_writes` (rows 1 and 2).
fn write_cases() -> Vec<Refusal> {
    let postgres = |sql| dialects(Some(sql), None, None);
    let files = |sql| dialects(None, None, Some(sql));
    vec![
        write("insert", all("INSERT INTO contract_writes VALUES (3)")),
        write("update", all("UPDATE contract_writes SET id = 5")),
        write("delete", all("DELETE FROM contract_writes")),
        write(
            "create",
            Each {
                files: Some("CREATE TABLE contract_new AS SELECT 1"),
                ..all("CREATE TABLE contract_new (id INT)")
            },
        ),
        write("drop", all("DROP TABLE contract_writes")),
        write("truncate", servers("TRUNCATE TABLE contract_writes")),
        write(
            "replace",
            Each {
                mysql: Some("REPLACE INTO contract_writes VALUES (4)"),
                postgres: None,
                files: None,
            },
        ),
        write(
            "a function that writes",
            servers("SELECT contract_sneaky()"),
        ),
        write(
            "row locks",
            postgres("SELECT * FROM contract_writes FOR UPDATE"),
        ),
        write(
            "a write in a WITH",
            postgres("WITH gone AS (DELETE FROM contract_writes RETURNING *) SELECT * FROM gone"),
        ),
        write("copy in", postgres("COPY contract_writes FROM STDIN")),
        Refusal {
            fails: servers(fails("query.failed").sqlstate("25001")),
            ..write(
                "turning read-only off",
                postgres("SELECT set_config('transaction_read_only', 'off', false)"),
            )
        },
        Refusal {
            fails: servers(fails("query.failed").sqlstate("25001")),
            ..write(
                "turning read-only off in a block",
                postgres(
                    "DO $$ BEGIN SET LOCAL transaction_read_only = off; INSERT INTO contract_writes VALUES (7); END $$",
                ),
            )
        },
        // The server refuses before it would ask for the file (a client
        // that is asked refuses too: tests/integration/mysql.rs).
        write(
            "a local file",
            Each {
                mysql: Some("LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE contract_writes"),
                postgres: None,
                files: None,
            },
        ),
        write(
            "insert from a query",
            files("INSERT INTO contract_writes SELECT * FROM contract_writes"),
        ),
        write("a view", files("CREATE VIEW contract_view AS SELECT 1")),
        write(
            "a setting",
            files("SET datafusion.execution.batch_size = 1"),
        ),
        write(
            "a write under EXPLAIN",
            files("EXPLAIN INSERT INTO contract_writes SELECT * FROM contract_writes"),
        ),
    ]
}

async fn writes_are_refused_by_the_datasource(kind: Kind) {
    let Some(target) = Target::open(kind) else {
        return;
    };
    // A function that writes, and no table left by a run that could write.
    let sneaky = dialects(
        Some(
            "CREATE OR REPLACE FUNCTION contract_sneaky() RETURNS int LANGUAGE sql AS 'INSERT INTO contract_writes VALUES (99) RETURNING id'",
        ),
        Some(
            "DROP FUNCTION IF EXISTS contract_sneaky; CREATE FUNCTION contract_sneaky() RETURNS INT MODIFIES SQL DATA BEGIN INSERT INTO contract_writes VALUES (99); RETURN 1; END",
        ),
        None,
    );
    if let Some(function) = sneaky.get(kind) {
        target
            .create_table("contract_writes", "id INT", &["(1), (2)".to_owned()])
            .await;
        target
            .setup(&format!("DROP TABLE IF EXISTS contract_new; {function}"))
            .await;
    }
    let mut report = Report::new(kind);
    for (variant, ds) in target.writer_variants() {
        for case in write_cases() {
            let (Some(sql), Some(failure)) = (case.sql.get(kind), case.fails.get(kind)) else {
                continue;
            };
            let result = match run(&ds, sql).await {
                Ok(_) => Err("it ran".to_owned()),
                Err(e) => failure.check(&e),
            };
            report.check(&format!("{variant}: {} ({sql})", case.what), result);
        }
        let left = run(
            &ds,
            "SELECT count(*), min(id), max(id) FROM contract_writes",
        )
        .await;
        let unchanged = match left {
            Ok(rows) if (0..3).map(|c| ints(&rows, c)).eq([[2], [1], [2]]) => Ok(()),
            Ok(rows) => Err(format!(
                "{:?}",
                (0..3).map(|c| ints(&rows, c)).collect::<Vec<_>>()
            )),
            Err(e) => Err(e.to_string()),
        };
        report.check(&format!("{variant}: the rows are unchanged"), unchanged);
    }
    // With read_only=false the same kind writes (on MariaDB as the owner,
    // whose write grants a datasource that may write does not refuse).
    let writable = dialects(
        Some("INSERT INTO contract_writes VALUES (3) RETURNING id"),
        Some("INSERT INTO contract_writes VALUES (3)"),
        None,
    );
    if let Some(sql) = writable.get(kind) {
        let rw = target.writer("read_only=false");
        let wrote = match run(&rw, sql).await {
            Ok(_) => ids(&[3]).check(run(&rw, "SELECT count(*) FROM contract_writes").await),
            Err(e) => Err(e.to_string()),
        };
        report.check("read_only=false writes", wrote);
    }
    report.finish();
}

/// Errors of the statement itself: the code of the kind, and the server's
/// SQLSTATE and errno kept.
fn error_cases() -> Vec<Refusal> {
    vec![
        Refusal {
            what: "an unknown table",
            sql: all("SELECT * FROM contract_no_such_table"),
            fails: dialects(
                Some(fails("query.failed").sqlstate("42P01")),
                Some(fails("query.failed").sqlstate("42S02").vendor_code("1146")),
                Some(fails("table.not_found")),
            ),
        },
        Refusal {
            what: "a syntax error",
            sql: all("SELEC 1"),
            fails: dialects(
                Some(fails("query.failed").sqlstate("42601")),
                Some(fails("query.failed").sqlstate("42000").vendor_code("1064")),
                Some(fails("query.failed")),
            ),
        },
        Refusal {
            what: "two statements at once",
            sql: all("SELECT 1; SELECT 2"),
            fails: dialects(
                Some(fails("query.failed").sqlstate("42601")),
                Some(fails("query.failed").vendor_code("1064")),
                Some(fails("query.failed")),
            ),
        },
    ]
}

async fn errors_keep_the_code_of_their_cause(kind: Kind) {
    let Some(target) = Target::open(kind) else {
        return;
    };
    let mut report = Report::new(kind);
    for (variant, ds) in target.variants() {
        for case in error_cases() {
            let (Some(sql), Some(failure)) = (case.sql.get(kind), case.fails.get(kind)) else {
                continue;
            };
            let result = match run(&ds, sql).await {
                Ok(_) => Err("it ran".to_owned()),
                Err(e) => failure.check(&e),
            };
            report.check(&format!("{variant}: {}", case.what), result);
        }
    }
    report.finish();
}

// --------------------------------------------------------- restrictions

/// Restrictions a statement carries and what each kind makes of them.
struct RestrictionCase {
    what: &'static str,
    restrictions: Restrictions,
    outcome: Each<Outcome>,
}

fn restriction_cases() -> Vec<RestrictionCase> {
    let refused = || Outcome::Fails(fails("datasource.restrictions_unsupported"));
    let mut setting = Restrictions::default();
    setting
        .settings
        .insert("loupe.contract.region".into(), "EU".into());
    let filter = |table: &str| RowFilter {
        table: table.into(),
        predicate: "id <= $1".into(),
        params: vec![BoundParam {
            name: "user.max_id".into(),
            value: Value::Integer(2),
        }],
    };
    let filtered = |table: &str| Restrictions {
        row_filters: vec![filter(table)],
        ..Restrictions::default()
    };
    let mut both = filtered("contract_people");
    both.settings = setting.settings.clone();
    vec![
        RestrictionCase {
            what: "no restrictions",
            restrictions: Restrictions::default(),
            outcome: all(ids(&[1, 2, 3, 4, 5])),
        },
        RestrictionCase {
            what: "a transaction setting, for the database's policies",
            restrictions: setting,
            outcome: dialects(
                Some(ids(&[1, 2, 3, 4, 5])),
                Some(refused()),
                Some(refused()),
            ),
        },
        RestrictionCase {
            what: "a row filter",
            restrictions: filtered("contract_people"),
            outcome: dialects(Some(refused()), Some(refused()), Some(ids(&[1, 2]))),
        },
        RestrictionCase {
            what: "a row filter on a table the statement does not read",
            restrictions: filtered("contract_writes"),
            outcome: dialects(
                Some(refused()),
                Some(refused()),
                Some(ids(&[1, 2, 3, 4, 5])),
            ),
        },
        RestrictionCase {
            what: "a setting and a row filter",
            restrictions: both,
            outcome: all(refused()),
        },
    ]
}

/// Each kind enforces the restrictions it can and refuses the statement
/// otherwise: it never runs unrestricted.
async fn restrictions_are_enforced_or_refused(kind: Kind) {
    let Some(target) = Target::open(kind) else {
        return;
    };
    // The servers' own copy of the people, apart from other areas' tables.
    if let Some(columns) = people_columns().get(kind) {
        target
            .create_table("contract_restricted", columns, &people_rows())
            .await;
    }
    let sql = dialects(
        Some("SELECT id FROM contract_restricted ORDER BY id"),
        Some("SELECT id FROM contract_restricted ORDER BY id"),
        Some("SELECT id FROM contract_people ORDER BY id"),
    );
    let Some(sql) = sql.get(kind) else {
        return;
    };
    let mut report = Report::new(kind);
    for (variant, ds) in target.variants() {
        for case in restriction_cases() {
            let Some(outcome) = case.outcome.get(kind) else {
                continue;
            };
            let result = run_restricted(&ds, sql, &case.restrictions).await;
            report.check(&format!("{variant}: {}", case.what), outcome.check(result));
        }
    }
    report.finish();
}

// --------------------------------------------------------------- limits

/// How many rows a limited result must have.
#[derive(Debug, Clone, Copy)]
enum Rows {
    Exactly(usize),
    Fewer(usize),
}

struct LimitCase {
    what: &'static str,
    sql: Each<&'static str>,
    limits: Limits,
    rows: Rows,
    truncation: Option<Truncation>,
}

fn limit_cases() -> Vec<LimitCase> {
    let series = |pg, my, files| dialects(Some(pg), Some(my), Some(files));
    vec![
        LimitCase {
            what: "a row limit cuts a long result and says so",
            sql: series(
                "SELECT g FROM generate_series(1, 1000000) g",
                "SELECT seq FROM seq_1_to_1000000",
                "SELECT * FROM generate_series(1, 1000000)",
            ),
            limits: Limits::NONE.with_max_rows(1000),
            rows: Rows::Exactly(1000),
            truncation: Some(Truncation::MaxRows { limit: 1000 }),
        },
        // Files reads these rows from a file: 5 people, 200 times.
        LimitCase {
            what: "a result exactly at the row limit is whole",
            sql: series(
                "SELECT g FROM generate_series(1, 1000) g",
                "SELECT seq FROM seq_1_to_1000",
                "SELECT * FROM contract_people CROSS JOIN generate_series(1, 200)",
            ),
            limits: Limits::NONE.with_max_rows(1000),
            rows: Rows::Exactly(1000),
            truncation: None,
        },
        LimitCase {
            what: "a byte limit cuts wide rows and says so",
            sql: series(
                "SELECT repeat('x', 1000) FROM generate_series(1, 100000)",
                "SELECT REPEAT('x', 1000) FROM seq_1_to_100000",
                "SELECT repeat('x', 1000) FROM generate_series(1, 100000)",
            ),
            limits: Limits::NONE.with_max_bytes(100_000),
            rows: Rows::Fewer(200),
            truncation: Some(Truncation::MaxBytes { limit: 100_000 }),
        },
    ]
}

/// A statement that runs far longer than any test.
fn endless() -> Each<&'static str> {
    dialects(
        Some("SELECT pg_sleep(30)"),
        Some("SELECT sum(a.seq * b.seq) FROM seq_1_to_1000000 a, seq_1_to_1000000 b"),
        Some("SELECT count(*) FROM generate_series(1, 10000000000)"),
    )
}

async fn limits_cut_results_and_time_out(kind: Kind) {
    let Some(target) = Target::open(kind) else {
        return;
    };
    let mut report = Report::new(kind);
    for (variant, ds) in target.variants() {
        for case in limit_cases() {
            let Some(sql) = case.sql.get(kind) else {
                continue;
            };
            let result = match run_with(&ds, sql, &[], &[], &case.limits).await {
                Ok((rows, truncation)) => {
                    let n = rows.iter().map(RecordBatch::num_rows).sum::<usize>();
                    let rows_ok = match case.rows {
                        Rows::Exactly(want) => n == want,
                        Rows::Fewer(bound) => n < bound,
                    };
                    if rows_ok && truncation == case.truncation {
                        Ok(())
                    } else {
                        Err(format!(
                            "wanted {:?} rows and {:?}, got {n} and {truncation:?}",
                            case.rows, case.truncation
                        ))
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            report.check(&format!("{variant}: {}", case.what), result);
        }

        let sql = endless().get(kind).copied().unwrap();
        let started = Instant::now();
        let limits = Limits::NONE.with_timeout(Duration::from_millis(500));
        let result = match run_with(&ds, sql, &[], &[], &limits).await {
            Ok(_) => Err("it ran to the end".to_owned()),
            Err(_) if started.elapsed() >= Duration::from_secs(3) => {
                Err(format!("stopped after {:?}", started.elapsed()))
            }
            Err(e) => fails("query.timeout").check(&e),
        };
        report.check(&format!("{variant}: a timeout stops a long query"), result);

        // Neither a cut nor a timeout leaves the datasource unusable.
        let after = run(&ds, "SELECT 1").await;
        report.check(
            &format!("{variant}: it still answers"),
            ids(&[1]).check(after),
        );
    }
    report.finish();
}

/// A statement that streams rows for far longer than any test.
fn endless_rows() -> Each<&'static str> {
    dialects(
        Some(
            "SELECT a * 100000 + b FROM generate_series(1, 100000) a, generate_series(1, 100000) b",
        ),
        Some("SELECT a.seq FROM seq_1_to_1000000 a, seq_1_to_1000000 b"),
        None,
    )
}

/// A timeout, the server's own statement_timeout and a dropped stream
/// all stop the statement on the server, not only in the client.
async fn stopped_queries_stop_on_the_server(kind: Kind) {
    let Some(target) = Target::open(kind) else {
        return;
    };
    let endless = *endless().get(kind).unwrap();
    let ds = target.datasource("");
    let mut report = Report::new(kind);

    let started = Instant::now();
    let limits = Limits::NONE.with_timeout(Duration::from_millis(500));
    let result = match run_with(
        &ds,
        &format!("{endless} /* client-deadline */"),
        &[],
        &[],
        &limits,
    )
    .await
    {
        Ok(_) => Err("it ran to the end".to_owned()),
        Err(e) if started.elapsed() < Duration::from_secs(3) => fails("query.timeout").check(&e),
        Err(e) => Err(format!("stopped after {:?}: {e}", started.elapsed())),
    };
    report.check("a client deadline", result);
    report.check("a client deadline", target.stopped("client-deadline").await);

    let server_side = target.datasource("statement_timeout=300ms");
    let result = match run(&server_side, &format!("{endless} /* server-deadline */")).await {
        Ok(_) => Err("it ran to the end".to_owned()),
        Err(e) => fails("query.timeout").check(&e),
    };
    report.check("statement_timeout", result);
    report.check("statement_timeout", target.stopped("server-deadline").await);

    let execute = |sql: String| {
        let ds = ds.clone();
        async move {
            let statement =
                Statement::from_template(&sql, ds.dialect(), &[], &Default::default()).unwrap();
            ds.execute(&statement, &Limits::NONE).await.unwrap()
        }
    };
    let rows = *endless_rows().get(kind).unwrap();
    let mut stream = execute(format!("{rows} /* dropped-midway */")).await;
    let first = stream.next().await.map(|b| b.map(|b| b.num_rows()));
    drop(stream);
    report.check(
        "a stream dropped after its first batch",
        match first {
            Some(Ok(n)) if n > 0 => target.stopped("dropped-midway").await,
            other => Err(format!("no first batch: {other:?}")),
        },
    );

    let mut stream = execute(format!("{endless} /* dropped-early */")).await;
    let _ = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    drop(stream);
    report.check(
        "a stream dropped before its first row",
        target.stopped("dropped-early").await,
    );

    report.check(
        "the pool still works",
        ids(&[7]).check(run(&ds, "SELECT 7").await),
    );
    report.finish();
}

// ------------------------------------------------- pool and connections

/// A full pool answers with its own error after the wait.
async fn a_full_pool_says_so(kind: Kind) {
    let Some(target) = Target::open(kind) else {
        return;
    };
    let hold = dialects(Some("SELECT pg_sleep(3)"), Some("SELECT SLEEP(2)"), None);
    let hold = *hold.get(kind).expect("a kind with a pool");
    let ds = target.datasource("pool_size=1&pool_wait_timeout=200ms");
    let busy = Statement::from_template(hold, ds.dialect(), &[], &Default::default()).unwrap();
    let held = ds.execute(&busy, &Limits::NONE).await.unwrap();
    let started = Instant::now();
    let err = run(&ds, "SELECT 1").await.unwrap_err();
    assert_eq!(err.code(), "datasource.pool_exhausted", "{err}");
    assert!(err.is_retriable());
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(err.to_string().contains("pool_size"), "{err}");
    drop(held);
}

/// Queries in parallel on one datasource each get their own answer.
async fn concurrent_queries_share_the_datasource(kind: Kind) {
    let Some(target) = Target::open(kind) else {
        return;
    };
    let count = dialects(
        Some("SELECT count(*) FROM generate_series(1, {{n}})"),
        Some("SELECT count(*) FROM seq_1_to_100000 WHERE seq <= {{n}}"),
        Some("SELECT count(*) FROM generate_series(1, 100000) WHERE value <= {{n}}"),
    );
    let sql = *count.get(kind).unwrap();
    // A pool smaller than the crowd.
    let ds = target.datasource(if kind == Kind::Files {
        ""
    } else {
        "pool_size=3"
    });
    let mut tasks = Vec::new();
    for i in 0..30i64 {
        let ds = ds.clone();
        tasks.push(tokio::spawn(async move {
            let defs = [ParameterDef::new("n", ParameterType::Integer)];
            let (rows, _) = run_with(&ds, sql, &defs, &[("n", json!(i * 1000))], &Limits::NONE)
                .await
                .unwrap();
            assert_eq!(ints(&rows, 0), vec![i * 1000]);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// A way connecting fails, as a URL per dialect: `{port}` is the test
/// server's, `{closed}` one nothing listens on.
struct ConnectionCase {
    what: &'static str,
    url: Each<&'static str>,
    code: &'static str,
}

fn connection_cases() -> Vec<ConnectionCase> {
    let case = |what, postgres, mysql, code| ConnectionCase {
        what,
        url: dialects(Some(postgres), Some(mysql), None),
        code,
    };
    vec![
        case(
            "a wrong password",
            "postgres://loupe:wrong-pw@127.0.0.1:{port}/loupe_test?sslmode=disable",
            "mysql://loupe:wrong-pw@127.0.0.1:{port}/loupe_test?ssl_mode=disabled",
            "datasource.auth_failed",
        ),
        case(
            "a missing database",
            "postgres://loupe:loupe-test-pw@127.0.0.1:{port}/no_such_db?sslmode=disable",
            "mysql://loupe:loupe-test-pw@127.0.0.1:{port}/loupe_missing?ssl_mode=disabled",
            "datasource.database_missing",
        ),
        case(
            "a closed port",
            "postgres://loupe:loupe-test-pw@127.0.0.1:{closed}/loupe_test?sslmode=disable&connect_timeout=2s",
            "mysql://loupe:loupe-test-pw@127.0.0.1:{closed}/loupe_test?ssl_mode=disabled",
            "datasource.connection_refused",
        ),
        // The test server's certificate is not signed by a root this
        // system trusts.
        case(
            "an untrusted certificate",
            "postgres://loupe:loupe-test-pw@localhost:{port}/loupe_test?sslmode=verify-full",
            "mysql://loupe:loupe-test-pw@localhost:{port}/loupe_test?ssl_mode=verify-identity",
            "datasource.tls_failed",
        ),
        // This user may only connect over TLS.
        case(
            "a TLS-only user without TLS",
            "postgres://loupe_tls:loupe-test-pw@127.0.0.1:{port}/loupe_test?sslmode=disable",
            "mysql://loupe_tls:loupe-test-pw@127.0.0.1:{port}/loupe_test?ssl_mode=disabled",
            "datasource.auth_failed",
        ),
    ]
}

/// Each way connecting fails has its own error, and none repeats the
/// password.
async fn connection_failures_are_told_apart(kind: Kind) {
    let Some(target) = Target::open(kind) else {
        return;
    };
    let port = url::Url::parse(&target.url).unwrap().port().unwrap();
    let mut report = Report::new(kind);
    for case in connection_cases() {
        let Some(url) = case.url.get(kind) else {
            continue;
        };
        let url = url
            .replace("{port}", &port.to_string())
            .replace("{closed}", &free_port().to_string());
        let ds = loupe_connectors::registry().from_url(&url).unwrap();
        let result = match ds.ping().await {
            Ok(()) => Err("it connected".to_owned()),
            Err(e)
                if e.to_string().contains("loupe-test-pw")
                    || e.to_string().contains("wrong-pw") =>
            {
                Err(format!("the message repeats the password: {e}"))
            }
            Err(e) if case.code == "datasource.auth_failed" && e.kind() != ErrorKind::Forbidden => {
                Err(format!("{:?} is not Forbidden: {e}", e.kind()))
            }
            Err(e) => fails(case.code).check(&e),
        };
        report.check(case.what, result);
    }
    report.finish();
}

/// Every TLS mode connects, and the connection is encrypted.
async fn tls_modes_connect_encrypted(kind: Kind) {
    let Some(target) = Target::open(kind) else {
        return;
    };
    let (ca_var, encrypted, urls) = match kind {
        Kind::Postgres => (
            "LOUPE_TEST_POSTGRES_CA",
            "SELECT ssl::int FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            [
                "postgres://loupe_tls:loupe-test-pw@127.0.0.1:{port}/loupe_test?sslmode=prefer",
                "postgres://loupe_tls:loupe-test-pw@127.0.0.1:{port}/loupe_test?sslmode=require",
                "postgres://loupe_tls:loupe-test-pw@127.0.0.1:{port}/loupe_test?sslmode=verify-ca&sslrootcert={ca}",
                "postgres://loupe_tls:loupe-test-pw@localhost:{port}/loupe_test?sslmode=verify-full&sslrootcert={ca}",
            ],
        ),
        Kind::Mysql => (
            "LOUPE_TEST_CA",
            "SELECT VARIABLE_VALUE <> '' FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_cipher'",
            [
                "mysql://loupe_tls:loupe-test-pw@127.0.0.1:{port}/loupe_test?ssl_mode=preferred",
                "mysql://loupe_tls:loupe-test-pw@127.0.0.1:{port}/loupe_test?ssl_mode=required",
                "mysql://loupe_tls:loupe-test-pw@127.0.0.1:{port}/loupe_test?ssl_mode=verify-ca&ssl_ca={ca}",
                "mysql://loupe_tls:loupe-test-pw@localhost:{port}/loupe_test?ssl_mode=verify-identity&ssl_ca={ca}",
            ],
        ),
        Kind::Files => panic!("files has no TLS"),
    };
    let Some(ca) = support::env_file(ca_var) else {
        return;
    };
    let port = url::Url::parse(&target.url).unwrap().port().unwrap();
    let mut report = Report::new(kind);
    for url in urls {
        let url = url
            .replace("{port}", &port.to_string())
            .replace("{ca}", &ca);
        let ds = loupe_connectors::registry().from_url(&url).unwrap();
        let result = match ds.ping().await {
            Ok(()) => ids(&[1]).check(run(&ds, encrypted).await),
            Err(e) => Err(e.to_string()),
        };
        report.check(&url, result);
    }
    report.finish();
}

// ----------------------------------------------------- the database role

/// Where the URL of a role under test comes from.
#[derive(Debug, Clone, Copy)]
enum Login {
    /// A variable of the test environment.
    Env(support::Server),
    /// The datasource URL with this user (`scripts/databases.sh` makes it).
    User(&'static str),
    /// The owner of the scratch database.
    Owner,
}

/// A role that may do more than read, and exactly what its refusal must
/// name.
struct RoleCase {
    what: &'static str,
    login: Each<Login>,
    found: Each<&'static str>,
}

fn role_cases() -> Vec<RoleCase> {
    let postgres = |what, login, found| RoleCase {
        what,
        login: dialects(Some(login), None, None),
        found: dialects(Some(found), None, None),
    };
    let mysql = |what, login, found| RoleCase {
        what,
        login: dialects(None, Some(login), None),
        found: dialects(None, Some(found), None),
    };
    vec![
        postgres(
            "a superuser",
            Login::Env(support::POSTGRES_SUPERUSER),
            "superuser; REPLICATION; BYPASSRLS",
        ),
        postgres(
            "a member of a superuser role",
            Login::User("loupe_sudoer"),
            "member of postgres (superuser, REPLICATION, BYPASSRLS)",
        ),
        postgres(
            "a member of pg_signal_backend",
            Login::User("loupe_signaler"),
            "member of pg_signal_backend",
        ),
        postgres(
            "a member of the server file and program roles through another role",
            Login::User("loupe_operator"),
            "member of pg_execute_server_program; member of pg_read_server_files; member of pg_write_server_files",
        ),
        postgres(
            "a role with REPLICATION and BYPASSRLS",
            Login::User("loupe_replicator"),
            "REPLICATION; BYPASSRLS",
        ),
        mysql(
            "a user with administrative privileges",
            Login::Env(support::MARIADB_PRIVILEGED),
            "RELOAD, SHUTDOWN, PROCESS, FILE, SUPER, CONNECTION ADMIN, BINLOG ADMIN on *.*",
        ),
        mysql(
            "a user with write grants",
            Login::Owner,
            "ALL PRIVILEGES on `loupe_%`.*",
        ),
        mysql(
            "a user granted a role, not enabled, of a role with FILE",
            Login::User("loupe_role_user"),
            "FILE on *.* (granted to `loupe_file_role`)",
        ),
    ]
}

/// Testing, browsing and running on a datasource all connect, and each
/// is refused with the same error, naming exactly `found`.
async fn refused_naming(url: &str, found: &str) -> Result<(), String> {
    let ds = loupe_connectors::registry()
        .from_url(url)
        .map_err(|e| format!("not even built: {e}"))?;
    let named = format!("may do more than read, so Loupe does not use it: {found}; connect as");
    for (what, result) in [
        ("a test", ds.ping().await),
        ("the schema", ds.introspect().await.map(|_| ())),
        ("a run", run(&ds, "SELECT 1").await.map(|_| ())),
    ] {
        let e = match result {
            Ok(()) => return Err(format!("{what} connected")),
            Err(e) => e,
        };
        let message = e.to_string();
        if (e.code(), e.kind(), e.is_retriable())
            != ("datasource.privileged_role", ErrorKind::Forbidden, false)
        {
            return Err(format!("{what}: {} {:?}: {e}", e.code(), e.kind()));
        }
        if !message.contains(&named) {
            return Err(format!("{what} does not name exactly {found:?}: {e}"));
        }
        if message.contains("-pw") {
            return Err(format!("{what} repeats the password: {e}"));
        }
    }
    Ok(())
}

/// Acceptance (issue 12): a READ ONLY transaction does not hold back a
/// superuser (`COPY … TO PROGRAM`), a member of `pg_signal_backend` or a
/// MySQL user with FILE, so a datasource refuses such a role on every
/// connection, naming what it found, unless `allow_privileged_role` is
/// set; the least-privilege role of docs/security.md reads.
async fn privileged_roles_are_refused(kind: Kind) {
    let Some(target) = Target::open(kind) else {
        return;
    };
    let mut report = Report::new(kind);
    for case in role_cases() {
        let (Some(login), Some(found)) = (case.login.get(kind), case.found.get(kind)) else {
            continue;
        };
        let url = match *login {
            Login::Env((var, server)) => match support::database_url(var, server) {
                Some(url) => url,
                None => return,
            },
            Login::User(user) => support::with_user(&target.url, user),
            Login::Owner => target.owner_url.clone(),
        };
        report.check(case.what, refused_naming(&url, found).await);
        let allowed = support::datasource(&url, "allow_privileged_role=true");
        report.check(
            &format!("{}, allowed on purpose", case.what),
            ids(&[1]).check(run(&allowed, "SELECT 1").await),
        );
    }
    // The reader of docs/security.md reads what the owner writes, and
    // cannot write itself.
    target
        .create_table("contract_reader", "id INT", &["(1), (2)".to_owned()])
        .await;
    let reader = match kind {
        Kind::Postgres => support::datasource(&support::with_user(&target.url, "loupe_reader"), ""),
        Kind::Mysql | Kind::Files => target.datasource(""),
    };
    report.check(
        "the least-privilege role reads",
        ids(&[2]).check(run(&reader, "SELECT count(*) FROM contract_reader").await),
    );
    let wrote = support::datasource(
        &support::with_user(&target.url, "loupe_reader"),
        "read_only=false",
    );
    report.check(
        "the least-privilege role may not write, even read_only=false",
        match run(&wrote, "INSERT INTO contract_reader VALUES (3)").await {
            Ok(_) => Err("it wrote".to_owned()),
            Err(_) => ids(&[2]).check(run(&reader, "SELECT count(*) FROM contract_reader").await),
        },
    );
    report.finish();
}

// ----------------------------------------------------- certificate files

/// The factory of `kind` that reads certificate files inside `dirs` only.
fn confined_factory(kind: Kind, dirs: Vec<PathBuf>) -> Arc<dyn DatasourceFactory> {
    match kind {
        #[cfg(feature = "postgres")]
        Kind::Postgres => {
            Arc::new(loupe_connectors::postgres::PostgresFactory::certificates_within(dirs))
        }
        #[cfg(feature = "mysql")]
        Kind::Mysql => Arc::new(loupe_connectors::mysql::MysqlFactory::certificates_within(
            dirs,
        )),
        _ => panic!("{kind:?} reads no certificate file"),
    }
}

/// Acceptance (issue 12): a CA file is read only when it is a regular
/// file of at most 1 MiB inside the directories the factory allows, and
/// every other path gets one and the same answer, which tells nothing
/// about the file system; `/dev/zero` is refused even by the unconfined
/// factory instead of being read forever.
async fn certificate_files_are_confined(kind: Kind) {
    let Some(target) = Target::open(kind) else {
        return;
    };
    let Some(ca) = support::env_file("LOUPE_TEST_CA") else {
        return;
    };
    let port = url::Url::parse(&target.url).unwrap().port().unwrap();
    let (name, url) = match kind {
        Kind::Postgres => (
            "postgres datasource: sslrootcert",
            "postgres://loupe_tls:loupe-test-pw@127.0.0.1:{port}/loupe_test?sslmode=verify-ca&sslrootcert={path}",
        ),
        Kind::Mysql => (
            "mysql datasource: ssl_ca",
            "mysql://loupe_tls:loupe-test-pw@127.0.0.1:{port}/loupe_test?ssl_mode=verify-ca&ssl_ca={path}",
        ),
        Kind::Files => panic!("files reads no certificate file"),
    };
    let url = |path: &Path| {
        url.replace("{port}", &port.to_string())
            .replace("{path}", &path.display().to_string())
    };
    let allowed = tempfile::tempdir().unwrap();
    let good = allowed.path().join("ca.crt");
    std::fs::copy(&ca, &good).unwrap();
    let large = allowed.path().join("large.crt");
    let pem = std::fs::read(&ca).unwrap();
    std::fs::write(&large, pem.repeat(1 + (1 << 20) / pem.len())).unwrap();
    let fifo = allowed.path().join("fifo.crt");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.unwrap().success());
    let zero = allowed.path().join("zero.crt");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let outside = Path::new(&ca);

    let confined = loupe_connectors::registry()
        .with(confined_factory(kind, vec![allowed.path().to_path_buf()]));
    let unconfined = loupe_connectors::registry();
    let connects = |registry, path| async move {
        match support::build_within_seconds(registry, &url(path)) {
            Ok(ds) => ds.ping().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    };
    let refused = |registry, path: &Path, expected: &str| match support::build_within_seconds(
        registry,
        &url(path),
    ) {
        Ok(_) => Err("it was read".to_owned()),
        Err(e) => {
            let said = e.to_string().replace(&path.display().to_string(), "P");
            if said == expected {
                Ok(())
            } else {
                Err(format!("a different answer: {e}"))
            }
        }
    };
    let mut report = Report::new(kind);
    report.check("a CA inside", connects(&confined, &good).await);
    let same = format!(
        "invalid configuration: {name} P is not a readable regular file of at most 1 MiB inside the directories this host allows certificates in"
    );
    for (what, path) in [
        ("/dev/zero", Path::new("/dev/zero")),
        ("a link inside to /dev/zero", &zero),
        ("a directory", allowed.path()),
        ("a fifo", &fifo),
        ("a missing file", &allowed.path().join("missing.crt")),
        ("a CA outside", outside),
        ("a file over 1 MiB", &large),
    ] {
        report.check(what, refused(&confined, path, &same));
    }
    report.check(
        "unconfined, a CA anywhere",
        connects(&unconfined, outside).await,
    );
    let unconfined_answer =
        format!("invalid configuration: {name} P is not a readable regular file of at most 1 MiB");
    for (what, path) in [
        ("unconfined, /dev/zero", Path::new("/dev/zero")),
        ("unconfined, a fifo", &fifo),
        ("unconfined, a file over 1 MiB", &large),
    ] {
        report.check(what, refused(&unconfined, path, &unconfined_answer));
    }
    report.finish();
}
