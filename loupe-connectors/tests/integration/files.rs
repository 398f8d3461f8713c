//! The files datasource over real files in temporary directories.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    Array, AsArray, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use futures::StreamExt;
use loupe_core::{
    BatchWriter, Datasource, Error, ExportFormat, ItemType, Limits, ParameterDef, ParameterType,
    ParameterValues, Statement, Template, Truncation,
};
use serde_json::{Value as Json, json};

/// Five people, with one column of each common type.
fn people() -> RecordBatch {
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
    let day = |y, m, d| {
        (chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap()
            - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
        .num_days() as i32
    };
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
            Arc::new(StringArray::from(vec![
                "ada", "alan", "grace", "o'brien", "linus",
            ])),
            Arc::new(Float64Array::from(vec![9.5, 7.0, 8.25, 3.0, 6.5])),
            Arc::new(BooleanArray::from(vec![true, false, true, true, false])),
            Arc::new(Date32Array::from(vec![
                day(1815, 12, 10),
                day(1912, 6, 23),
                day(1906, 12, 9),
                day(1990, 1, 1),
                day(1969, 12, 28),
            ])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    1_700_000_000_000_000,
                    1_700_000_100_000_000,
                    1_700_000_200_000_000,
                    1_700_000_300_000_000,
                    1_700_000_400_000_000,
                ])
                .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from(vec![
                Some("red"),
                Some("blue"),
                None,
                Some("red"),
                Some("blue"),
            ])),
        ],
    )
    .unwrap()
}

fn write_file(path: &Path, format: ExportFormat, batch: &RecordBatch) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = BatchWriter::new(format, file, batch.schema()).unwrap();
    writer.write(batch).unwrap();
    writer.finish().unwrap();
}

/// A root holding `people` in every format, and a folder table.
fn root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let b = people();
    write_file(
        &dir.path().join("people.parquet"),
        ExportFormat::Parquet,
        &b,
    );
    write_file(&dir.path().join("people_csv.csv"), ExportFormat::Csv, &b);
    write_file(
        &dir.path().join("people_json.ndjson"),
        ExportFormat::Ndjson,
        &b,
    );
    write_file(
        &dir.path().join("people_arrow.arrow"),
        ExportFormat::Arrow,
        &b,
    );
    std::fs::create_dir(dir.path().join("history")).unwrap();
    write_file(
        &dir.path().join("history/2023.parquet"),
        ExportFormat::Parquet,
        &b,
    );
    write_file(
        &dir.path().join("history/2024.parquet"),
        ExportFormat::Parquet,
        &b,
    );
    std::fs::write(dir.path().join("notes.txt"), "not a table").unwrap();
    dir
}

fn open(dir: &Path) -> Arc<dyn Datasource> {
    loupe_connectors::registry()
        .from_url(dir.to_str().unwrap())
        .unwrap()
}

async fn run_with(
    ds: &Arc<dyn Datasource>,
    sql: &str,
    defs: &[ParameterDef],
    values: &[(&str, Json)],
    limits: &Limits,
) -> Result<(Vec<RecordBatch>, Option<Truncation>), Error> {
    let values: ParameterValues = values
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let statement = Statement::from_template(sql, ds.dialect(), defs, &values)?;
    let mut stream = ds.execute(&statement, limits).await?;
    let mut batches = Vec::new();
    while let Some(b) = stream.next().await {
        batches.push(b?);
    }
    Ok((batches, stream.truncation()))
}

async fn run(ds: &Arc<dyn Datasource>, sql: &str) -> Result<Vec<RecordBatch>, Error> {
    Ok(run_with(ds, sql, &[], &[], &Limits::NONE).await?.0)
}

fn int_column(batches: &[RecordBatch], column: usize) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let c = arrow::compute::cast(b.column(column), &DataType::Int64).unwrap();
            c.as_primitive::<Int64Type>().values().to_vec()
        })
        .collect()
}

#[tokio::test]
async fn every_format_is_a_table() {
    let dir = root();
    let ds = open(dir.path());
    for table in ["people", "people_csv", "people_json", "people_arrow"] {
        let rows = run(&ds, &format!("select count(*), sum(id) from {table}"))
            .await
            .unwrap();
        assert_eq!(int_column(&rows, 0), vec![5], "{table}");
        assert_eq!(int_column(&rows, 1), vec![15], "{table}");
    }
    let rows = run(&ds, "select count(*) from history").await.unwrap();
    assert_eq!(
        int_column(&rows, 0),
        vec![10],
        "a folder is one table of all its files"
    );
}

#[tokio::test]
async fn introspection_lists_tables_and_typed_columns() {
    let dir = root();
    let ds = open(dir.path());
    let catalog = ds.introspect().await.unwrap();
    let tables: Vec<&str> = catalog.schemas[0]
        .tables
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(
        tables,
        [
            "history",
            "people",
            "people_arrow",
            "people_csv",
            "people_json"
        ]
    );
    let people = &catalog.schemas[0].tables[1];
    let id = &people.columns[0];
    assert_eq!((id.name.as_str(), &id.data_type), ("id", &DataType::Int64));
    assert!(people.columns.iter().any(|c| c.name == "seen"
        && matches!(c.data_type, DataType::Timestamp(TimeUnit::Microsecond, _))));
    ds.ping().await.unwrap();
}

/// Acceptance: every template type is bound through DataFusion's `$n`.
#[tokio::test]
async fn parameters_of_every_type_are_bound() {
    let dir = root();
    let ds = open(dir.path());
    let cases: Vec<(&str, ParameterType, Json, Vec<i64>)> = vec![
        ("name = {{p}}", ParameterType::Text, json!("grace"), vec![3]),
        ("id = {{p}}", ParameterType::Integer, json!("4"), vec![4]),
        (
            "score > {{p}}",
            ParameterType::Number,
            json!(8.0),
            vec![1, 3],
        ),
        (
            "active = {{p}}",
            ParameterType::Boolean,
            json!("false"),
            vec![2, 5],
        ),
        (
            "born < {{p}}",
            ParameterType::Date,
            json!("1900-01-01"),
            vec![1],
        ),
        (
            "seen >= {{p}}",
            ParameterType::Datetime,
            json!("2023-11-14T23:18:20+01:00"),
            vec![4, 5],
        ),
        (
            "team = {{p}}",
            ParameterType::Enum {
                options: vec!["red".into(), "blue".into()],
            },
            json!("blue"),
            vec![2, 5],
        ),
        (
            "id in ({{p}})",
            ParameterType::list(ItemType::Integer),
            json!([1, "3", 5]),
            vec![1, 3, 5],
        ),
        (
            "name in ({{p}})",
            ParameterType::list(ItemType::Text),
            json!(["ada", "linus", "nobody"]),
            vec![1, 5],
        ),
    ];
    for table in ["people", "people_csv"] {
        for (filter, ty, value, want) in &cases {
            let sql = format!("select id from {table} where {filter} order by id");
            let defs = [ParameterDef::new("p", ty.clone())];
            let (rows, _) = run_with(&ds, &sql, &defs, &[("p", value.clone())], &Limits::NONE)
                .await
                .unwrap_or_else(|e| panic!("{table}: {filter}: {e}"));
            assert_eq!(
                &int_column(&rows, 0),
                want,
                "{table}: {filter} with {value}"
            );
        }
    }
    let defs = [ParameterDef::new("r", ParameterType::DateRange)];
    let (rows, _) = run_with(
        &ds,
        "select id from people where born between {{r.start}} and {{r.end}} order by id",
        &defs,
        &[("r", json!("1900-01-01..1969-12-31"))],
        &Limits::NONE,
    )
    .await
    .unwrap();
    assert_eq!(int_column(&rows, 0), vec![2, 3, 5]);
}

/// Acceptance: injection payloads are data or a type error, never SQL.
#[tokio::test]
async fn injection_payloads_stay_data() {
    let dir = root();
    let ds = open(dir.path());
    let text = [ParameterDef::new("p", ParameterType::Text)];
    for payload in ["'; DROP TABLE people; --", "1 OR 1=1", "o'brien' OR '1'='1"] {
        let (rows, _) = run_with(
            &ds,
            "select count(*) from people where name = {{p}}",
            &text,
            &[("p", json!(payload))],
            &Limits::NONE,
        )
        .await
        .unwrap();
        assert_eq!(int_column(&rows, 0), vec![0], "{payload}");
    }
    let (rows, _) = run_with(
        &ds,
        "select id from people where name = {{p}}",
        &text,
        &[("p", json!("o'brien"))],
        &Limits::NONE,
    )
    .await
    .unwrap();
    assert_eq!(
        int_column(&rows, 0),
        vec![4],
        "quotes in values are just characters"
    );

    let integer = [ParameterDef::new("p", ParameterType::Integer)];
    let err = run_with(
        &ds,
        "select * from people where id = {{p}}",
        &integer,
        &[("p", json!("1 OR 1=1"))],
        &Limits::NONE,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "param.wrong_type");
    // A text value against an integer column must convert, not widen the filter.
    let err = run_with(
        &ds,
        "select * from people where id = {{p}}",
        &text,
        &[("p", json!("1 OR 1=1"))],
        &Limits::NONE,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "param.wrong_type", "{err}");
    assert_eq!(
        int_column(&run(&ds, "select count(*) from people").await.unwrap(), 0),
        vec![5]
    );
}

async fn refusal(ds: &Arc<dyn Datasource>, sql: &str) -> Error {
    match run(ds, sql).await {
        Ok(rows) => panic!("{sql} ran and returned {rows:?}"),
        Err(e) => e,
    }
}

/// Acceptance: no way of naming a path reads outside the root.
#[tokio::test]
async fn paths_outside_the_root_are_refused() {
    let dir = root();
    let outside = tempfile::tempdir().unwrap();
    write_file(
        &outside.path().join("secret.csv"),
        ExportFormat::Csv,
        &people(),
    );
    std::os::unix::fs::symlink(
        outside.path().join("secret.csv"),
        dir.path().join("leak.csv"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("mixed_in")).unwrap();
    write_file(
        &dir.path().join("mixed_in/a.csv"),
        ExportFormat::Csv,
        &people(),
    );
    std::os::unix::fs::symlink(
        outside.path().join("secret.csv"),
        dir.path().join("mixed_in/b.csv"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("elsewhere")).unwrap();
    let secret = outside.path().join("secret.csv");
    let ds = open(dir.path());

    let cases = [
        (
            "select * from \"../secret\"".to_owned(),
            "files.outside_root",
        ),
        (
            format!("select * from '{}'", secret.display()),
            "files.outside_root",
        ),
        (
            "select * from '/etc/passwd'".to_owned(),
            "files.outside_root",
        ),
        ("select * from leak".to_owned(), "files.refused_entry"),
        ("select * from mixed_in".to_owned(), "files.refused_entry"),
        ("select * from elsewhere".to_owned(), "files.refused_entry"),
        (
            "select * from read_csv('/etc/passwd')".to_owned(),
            "files.table_function",
        ),
        (
            format!("select * from read_parquet('{}')", secret.display()),
            "files.table_function",
        ),
        (
            format!(
                "create external table s stored as csv location '{}'",
                secret.display()
            ),
            "files.read_only",
        ),
    ];
    for (sql, code) in cases {
        let err = refusal(&ds, &sql).await;
        assert_eq!(err.code(), code, "{sql}: {err}");
        assert_eq!(err.kind(), loupe_core::ErrorKind::Forbidden, "{sql}");
    }
    let err = refusal(&ds, "select * from leak").await;
    assert!(
        err.to_string().contains("outside the datasource's root"),
        "{err}"
    );
    let tables: Vec<String> = ds.introspect().await.unwrap().schemas[0]
        .tables
        .iter()
        .map(|t| t.name.clone())
        .collect();
    assert!(
        !tables
            .iter()
            .any(|t| t == "leak" || t == "elsewhere" || t == "mixed_in"),
        "{tables:?}"
    );
}

/// Acceptance: the datasource never writes.
#[tokio::test]
async fn writes_and_session_changes_are_refused() {
    let dir = root();
    let ds = open(dir.path());
    let target = dir.path().join("copied.csv");
    let statements = [
        format!("copy (select * from people) to '{}'", target.display()),
        "insert into people select * from people".to_owned(),
        "delete from people".to_owned(),
        "update people set name = 'x'".to_owned(),
        "create table t as select 1".to_owned(),
        "create view v as select 1".to_owned(),
        "drop table people".to_owned(),
        "set datafusion.execution.batch_size = 1".to_owned(),
        "explain insert into people select * from people".to_owned(),
    ];
    for sql in &statements {
        let err = refusal(&ds, sql).await;
        assert_eq!(err.code(), "files.read_only", "{sql}: {err}");
    }
    assert!(!target.exists());
    assert_eq!(
        int_column(&run(&ds, "select count(*) from people").await.unwrap(), 0),
        vec![5]
    );
}

#[tokio::test]
async fn unknown_tables_list_what_exists() {
    let dir = root();
    let ds = open(dir.path());
    let err = refusal(&ds, "select * from peeple").await;
    assert_eq!(err.code(), "table.not_found");
    assert!(err.to_string().contains("people, people_arrow"), "{err}");
    let err = refusal(&ds, "select * from other.people").await;
    assert_eq!(err.code(), "not_found");
    assert!(refusal(&ds, "selec 1").await.to_string().contains("selec"));
}

#[tokio::test]
async fn ambiguous_names_are_refused_with_both_files() {
    let dir = root();
    write_file(&dir.path().join("people.csv"), ExportFormat::Csv, &people());
    let ds = open(dir.path());
    let err = refusal(&ds, "select * from people").await;
    assert_eq!(err.code(), "files.refused_entry");
    assert!(
        err.to_string().contains("people.csv and people.parquet"),
        "{err}"
    );
}

#[tokio::test]
async fn limits_truncate_and_time_out() {
    let dir = root();
    let ds = open(dir.path());
    let (rows, truncation) = run_with(
        &ds,
        "select * from generate_series(1, 100000)",
        &[],
        &[],
        &Limits::NONE.with_max_rows(1234),
    )
    .await
    .unwrap();
    assert_eq!(rows.iter().map(RecordBatch::num_rows).sum::<usize>(), 1234);
    assert_eq!(truncation, Some(Truncation::MaxRows { limit: 1234 }));

    let (rows, truncation) = run_with(
        &ds,
        "select * from people",
        &[],
        &[],
        &Limits::NONE.with_max_rows(5),
    )
    .await
    .unwrap();
    assert_eq!(rows.iter().map(RecordBatch::num_rows).sum::<usize>(), 5);
    assert_eq!(truncation, None, "exactly at the limit is not truncated");

    let err = run_with(
        &ds,
        "select count(*) from generate_series(1, 10000000000)",
        &[],
        &[],
        &Limits::NONE.with_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "query.timeout");
}

#[tokio::test]
async fn configuration_mistakes_are_named() {
    let registry = loupe_connectors::registry();
    let dir = root();
    let mut options = loupe_core::DatasourceOptions::new();
    options.insert("root".into(), json!(dir.path()));
    options.insert("rot".into(), json!("x"));
    let err = registry.build("files", &options).unwrap_err();
    assert_eq!(err.code(), "config.invalid");
    assert!(err.to_string().contains("unknown field `rot`"), "{err}");

    let err = registry
        .from_url(dir.path().join("people.parquet").to_str().unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
    let err = registry.from_url("/no/such/dir").unwrap_err();
    assert!(err.to_string().contains("/no/such/dir"), "{err}");
}

#[tokio::test]
async fn a_confined_factory_builds_roots_inside_its_directories_only() {
    use loupe_connectors::files::FilesFactory;
    use loupe_core::DatasourceFactory;

    let parent = tempfile::tempdir().unwrap();
    let allowed = parent.path().join("allowed");
    let data = allowed.join("sales");
    std::fs::create_dir(&allowed).unwrap();
    std::fs::create_dir(&data).unwrap();
    write_file(
        &data.join("people.parquet"),
        ExportFormat::Parquet,
        &people(),
    );
    // A sibling whose name starts with the allowed one's.
    let sibling = parent.path().join("allowed-other");
    std::fs::create_dir(&sibling).unwrap();
    let outside = root();
    std::os::unix::fs::symlink(outside.path(), allowed.join("link")).unwrap();

    let factory = FilesFactory::within([allowed.clone()]);
    let build = |root: &Path| {
        let mut options = loupe_core::DatasourceOptions::new();
        options.insert("root".into(), json!(root));
        factory.build(&options)
    };

    for inside in [allowed.clone(), data.clone(), data.join("../sales")] {
        let ds = build(&inside).unwrap_or_else(|e| panic!("{}: {e}", inside.display()));
        if inside == data {
            let batches = run(&ds, "SELECT count(*) AS n FROM people").await.unwrap();
            assert_eq!(int_column(&batches, 0), [5]);
        }
    }
    for refused in [
        outside.path().to_path_buf(),
        sibling.clone(),
        allowed.join("link"),
        data.join("../.."),
        allowed.join("missing"),
        std::path::PathBuf::from("/"),
    ] {
        let err = build(&refused)
            .err()
            .unwrap_or_else(|| panic!("{} was built", refused.display()));
        assert_eq!(err.code(), "config.invalid");
        assert!(
            err.to_string()
                .contains("is not an existing directory inside the directories this host allows"),
            "{}: {err}",
            refused.display()
        );
    }
    // No directories: nothing can be built.
    let mut options = loupe_core::DatasourceOptions::new();
    options.insert("root".into(), json!(data));
    assert!(FilesFactory::within([]).build(&options).is_err());
}

#[tokio::test]
async fn statements_for_other_dialects_are_not_accepted() {
    let dir = root();
    let ds = open(dir.path());
    let err = Template::parse("select * from people where id = ?", ds.dialect()).unwrap_err();
    assert_eq!(err.code(), "template.positional_parameter");
}

#[tokio::test]
async fn null_and_nested_values_come_back() {
    let dir = root();
    let ds = open(dir.path());
    let rows = run(
        &ds,
        "select team, [id, id * 2] as pair from people order by id",
    )
    .await
    .unwrap();
    assert_eq!(
        rows.iter().map(|b| b.column(0).null_count()).sum::<usize>(),
        1
    );
    assert!(matches!(
        rows[0].schema().field(1).data_type(),
        DataType::List(_)
    ));
}
