//! What only the files datasource does, over real files in temporary
//! directories: every file format, confinement to its root, its catalog
//! and its configuration. What every connector does is in the contract
//! (`contract.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use arrow::array::Array;
use arrow::datatypes::{DataType, TimeUnit};
use loupe_core::{Datasource, Error, ExportFormat, Template};
use serde_json::json;

use crate::contract::people_batch;
use crate::support::{files_datasource, ints, run, write_file};

mod row_filters;

/// A root holding `people` in every format, and a folder table.
fn root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let b = people_batch();
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

#[tokio::test]
async fn every_format_is_a_table() {
    let dir = root();
    let ds = files_datasource(dir.path());
    for table in ["people", "people_csv", "people_json", "people_arrow"] {
        let rows = run(&ds, &format!("select count(*), sum(id) from {table}"))
            .await
            .unwrap();
        assert_eq!(ints(&rows, 0), vec![5], "{table}");
        assert_eq!(ints(&rows, 1), vec![15], "{table}");
    }
    let rows = run(&ds, "select count(*) from history").await.unwrap();
    assert_eq!(
        ints(&rows, 0),
        vec![10],
        "a folder is one table of all its files"
    );
}

#[tokio::test]
async fn introspection_lists_tables_and_typed_columns() {
    let dir = root();
    let ds = files_datasource(dir.path());
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
        &people_batch(),
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
        &people_batch(),
    );
    std::os::unix::fs::symlink(
        outside.path().join("secret.csv"),
        dir.path().join("mixed_in/b.csv"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("elsewhere")).unwrap();
    let secret = outside.path().join("secret.csv");
    let ds = files_datasource(dir.path());

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

/// Acceptance: the datasource never writes a file, even where the
/// statement names one. (Every other write is in the contract.)
#[tokio::test]
async fn copy_to_a_file_is_refused_and_writes_nothing() {
    let dir = root();
    let ds = files_datasource(dir.path());
    let target = dir.path().join("copied.csv");
    let sql = format!("copy (select * from people) to '{}'", target.display());
    let err = refusal(&ds, &sql).await;
    assert_eq!(err.code(), "files.read_only", "{sql}: {err}");
    assert!(!target.exists());
    assert_eq!(
        ints(&run(&ds, "select count(*) from people").await.unwrap(), 0),
        vec![5]
    );
}

#[tokio::test]
async fn unknown_tables_list_what_exists() {
    let dir = root();
    let ds = files_datasource(dir.path());
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
    write_file(
        &dir.path().join("people.csv"),
        ExportFormat::Csv,
        &people_batch(),
    );
    let ds = files_datasource(dir.path());
    let err = refusal(&ds, "select * from people").await;
    assert_eq!(err.code(), "files.refused_entry");
    assert!(
        err.to_string().contains("people.csv and people.parquet"),
        "{err}"
    );
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
        &people_batch(),
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
            assert_eq!(ints(&batches, 0), [5]);
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
    let ds = files_datasource(dir.path());
    let err = Template::parse("select * from people where id = ?", ds.dialect()).unwrap_err();
    assert_eq!(err.code(), "template.positional_parameter");
}

#[tokio::test]
async fn null_and_nested_values_come_back() {
    let dir = root();
    let ds = files_datasource(dir.path());
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
