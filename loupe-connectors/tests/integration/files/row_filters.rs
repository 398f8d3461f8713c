//! Row filters on the files datasource, over real Parquet and CSV files:
//! every way a query can name a filtered table sees only the rows its
//! filters let through, and a filter that cannot be applied stops the
//! statement. Each test tries to see a hidden row, so it fails if the
//! filter were dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use loupe_core::{BoundParam, Datasource, Error, ExportFormat, Restrictions, RowFilter, Value};

use crate::support::{files_datasource, ints, one, run, run_restricted, write_file};

/// Sales of three regions, one row without a region.
fn sales_batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("region", DataType::Utf8, true),
        Field::new("amount", DataType::Int64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5, 6, 7])),
            Arc::new(StringArray::from(vec![
                Some("EU"),
                Some("US"),
                Some("EU"),
                Some("US"),
                Some("EU"),
                Some("APAC"),
                None,
            ])),
            Arc::new(Int64Array::from(vec![10, 20, 30, 40, 50, 60, 70])),
        ],
    )
    .unwrap()
}

/// The ids of the EU rows: what a caller filtered to EU may see.
const EU: [i64; 3] = [1, 3, 5];

fn regions_batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("region", DataType::Utf8, false),
        Field::new("label", DataType::Utf8, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["EU", "US", "APAC"])),
            Arc::new(StringArray::from(vec!["Europe", "Americas", "Asia"])),
        ],
    )
    .unwrap()
}

/// A root with `sales` as Parquet, `sales_csv` as CSV, a `regions` lookup
/// table and `Mixed`, whose name has capitals.
fn root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let sales = sales_batch();
    write_file(
        &dir.path().join("sales.parquet"),
        ExportFormat::Parquet,
        &sales,
    );
    write_file(&dir.path().join("sales_csv.csv"), ExportFormat::Csv, &sales);
    write_file(
        &dir.path().join("Mixed.parquet"),
        ExportFormat::Parquet,
        &sales,
    );
    write_file(
        &dir.path().join("regions.csv"),
        ExportFormat::Csv,
        &regions_batch(),
    );
    dir
}

fn text(name: &str, value: &str) -> BoundParam {
    BoundParam {
        name: name.into(),
        value: Value::Text(value.into()),
    }
}

fn filter(table: &str, predicate: &str, params: Vec<BoundParam>) -> RowFilter {
    RowFilter {
        table: table.into(),
        predicate: predicate.into(),
        params,
    }
}

fn restricted(filters: Vec<RowFilter>) -> Restrictions {
    Restrictions {
        settings: BTreeMap::new(),
        row_filters: filters,
    }
}

/// The caller of region `region`, on `sales` and `sales_csv`.
fn region(region: &str) -> Restrictions {
    restricted(
        ["sales", "sales_csv"]
            .into_iter()
            .map(|t| filter(t, "region = $1", vec![text("user.region", region)]))
            .collect(),
    )
}

/// The first column of `sql` run under `restrictions`, as integers.
async fn ids(ds: &Arc<dyn Datasource>, sql: &str, restrictions: &Restrictions) -> Vec<i64> {
    let rows = run_restricted(ds, sql, restrictions)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    ints(&rows, 0)
}

/// The same without restrictions: what the filter must hide something of.
async fn unrestricted(ds: &Arc<dyn Datasource>, sql: &str) -> Vec<i64> {
    ints(
        &run(ds, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")),
        0,
    )
}

/// `sql` sees `want` under the EU filter, and something else without it.
async fn sees_only(ds: &Arc<dyn Datasource>, sql: &str, want: &[i64]) {
    assert_eq!(ids(ds, sql, &region("EU")).await, want, "{sql}");
    assert_ne!(
        unrestricted(ds, sql).await,
        want,
        "{sql} must see hidden rows without the filter, or it tests nothing"
    );
}

#[tokio::test]
async fn a_filtered_table_shows_only_its_rows_in_parquet_and_csv() {
    let dir = root();
    let ds = files_datasource(dir.path());
    for table in ["sales", "sales_csv"] {
        sees_only(&ds, &format!("SELECT id FROM {table} ORDER BY id"), &EU).await;
        sees_only(
            &ds,
            &format!("SELECT id FROM {table} WHERE region = 'US' ORDER BY id"),
            &[],
        )
        .await;
    }
    assert_eq!(
        ids(&ds, "SELECT id FROM sales ORDER BY id", &region("US")).await,
        [2, 4]
    );
    // A limit counts the rows that passed the filter.
    sees_only(&ds, "SELECT id FROM sales ORDER BY id LIMIT 2", &[1, 3]).await;
    let first = ids(&ds, "SELECT id FROM sales LIMIT 2", &region("EU")).await;
    assert!(
        first.len() == 2 && first.iter().all(|id| EU.contains(id)),
        "{first:?}"
    );
    assert_eq!(
        unrestricted(&ds, "SELECT count(*) FROM regions").await,
        [3],
        "a table without a filter is whole"
    );
}

#[tokio::test]
async fn a_join_sees_only_filtered_rows() {
    let dir = root();
    let ds = files_datasource(dir.path());
    sees_only(
        &ds,
        "SELECT s.id FROM regions r JOIN sales s ON s.region = r.region ORDER BY s.id",
        &EU,
    )
    .await;
    sees_only(
        &ds,
        "SELECT count(*) FROM regions r LEFT JOIN sales_csv s ON s.region = r.region WHERE s.id IS NOT NULL",
        &[3],
    )
    .await;
    sees_only(
        &ds,
        "SELECT p.id FROM sales p JOIN sales_csv c USING (id) ORDER BY p.id",
        &EU,
    )
    .await;
}

#[tokio::test]
async fn a_subquery_sees_only_filtered_rows() {
    let dir = root();
    let ds = files_datasource(dir.path());
    sees_only(&ds, "SELECT (SELECT max(amount) FROM sales)", &[50]).await;
    sees_only(
        &ds,
        "SELECT count(*) FROM (SELECT * FROM sales WHERE region <> 'EU') AS t",
        &[0],
    )
    .await;
    sees_only(
        &ds,
        "SELECT count(*) FROM regions r WHERE EXISTS (SELECT 1 FROM sales s WHERE s.region = r.region)",
        &[1],
    )
    .await;
    sees_only(
        &ds,
        "SELECT id FROM sales_csv WHERE id IN (SELECT id FROM sales) ORDER BY id",
        &EU,
    )
    .await;
}

#[tokio::test]
async fn a_cte_sees_only_filtered_rows() {
    let dir = root();
    let ds = files_datasource(dir.path());
    sees_only(
        &ds,
        "WITH hidden AS (SELECT * FROM sales WHERE region = 'US') SELECT count(*) FROM hidden",
        &[0],
    )
    .await;
    sees_only(
        &ds,
        "WITH sales AS (SELECT * FROM sales) SELECT id FROM sales ORDER BY id",
        &EU,
    )
    .await;
    // A recursive query runs its recursive part again for each step.
    sees_only(
        &ds,
        "WITH RECURSIVE chain AS (SELECT id FROM sales WHERE id = 1 \
         UNION ALL SELECT s.id FROM sales s JOIN chain c ON s.id = c.id + 2) \
         SELECT id FROM chain ORDER BY id",
        &EU,
    )
    .await;
    sees_only(
        &ds,
        "WITH RECURSIVE chain AS (SELECT id FROM sales WHERE id = 1 \
         UNION ALL SELECT s.id FROM sales s JOIN chain c ON s.id = c.id + 1) \
         SELECT id FROM chain ORDER BY id",
        &[1],
    )
    .await;
}

#[tokio::test]
async fn a_union_sees_only_filtered_rows() {
    let dir = root();
    let ds = files_datasource(dir.path());
    sees_only(
        &ds,
        "SELECT id FROM sales UNION ALL SELECT id + 100 FROM sales_csv ORDER BY 1",
        &[1, 3, 5, 101, 103, 105],
    )
    .await;
    sees_only(
        &ds,
        "SELECT id FROM sales WHERE region = 'US' UNION SELECT id FROM public.sales_csv WHERE region IS NULL",
        &[],
    )
    .await;
}

#[tokio::test]
async fn a_self_join_sees_only_filtered_rows() {
    let dir = root();
    let ds = files_datasource(dir.path());
    sees_only(&ds, "SELECT count(*) FROM sales a CROSS JOIN sales b", &[9]).await;
    sees_only(
        &ds,
        "SELECT a.id FROM sales a JOIN sales b ON a.id + 1 = b.id ORDER BY a.id",
        &[],
    )
    .await;
}

/// A count, a minimum or a maximum could come from the file's statistics,
/// which count every row; under a filter they must not.
#[tokio::test]
async fn aggregates_count_only_filtered_rows() {
    let dir = root();
    let ds = files_datasource(dir.path());
    for table in ["sales", "sales_csv"] {
        sees_only(&ds, &format!("SELECT count(*) FROM {table}"), &[3]).await;
        sees_only(&ds, &format!("SELECT count(region) FROM {table}"), &[3]).await;
        sees_only(&ds, &format!("SELECT max(id) FROM {table}"), &[5]).await;
        sees_only(&ds, &format!("SELECT max(amount) FROM {table}"), &[50]).await;
        sees_only(&ds, &format!("SELECT sum(amount) FROM {table}"), &[90]).await;
        sees_only(
            &ds,
            &format!("SELECT count(*) FROM {table} GROUP BY region ORDER BY 1"),
            &[3],
        )
        .await;
    }
}

/// However a query spells the table (qualified, quoted, in capitals that
/// the parser folds), it reaches the filtered table.
#[tokio::test]
async fn every_spelling_of_a_name_is_filtered() {
    let dir = root();
    let ds = files_datasource(dir.path());
    for name in [
        "sales",
        "SALES",
        "Sales",
        "\"sales\"",
        "public.sales",
        "PUBLIC.sales",
        "\"public\".\"sales\"",
        "datafusion.public.sales",
    ] {
        sees_only(&ds, &format!("SELECT count(*) FROM {name}"), &[3]).await;
    }
    // The grant names the table as the catalog does: `Mixed` is a name of
    // its own, reached only quoted.
    let mixed = restricted(vec![filter(
        "Mixed",
        "region = $1",
        vec![text("user.region", "US")],
    )]);
    for name in ["\"Mixed\"", "public.\"Mixed\""] {
        let sql = format!("SELECT id FROM {name} ORDER BY id");
        assert_eq!(ids(&ds, &sql, &mixed).await, [2, 4], "{sql}");
    }
    let err = run_restricted(&ds, "SELECT id FROM Mixed", &mixed)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "table.not_found", "{err}");
    // A grant may qualify the name.
    for table in ["public.sales", "datafusion.public.sales"] {
        let qualified = restricted(vec![filter(
            table,
            "region = $1",
            vec![text("user.region", "EU")],
        )]);
        assert_eq!(
            ids(&ds, "SELECT id FROM sales ORDER BY id", &qualified).await,
            EU,
            "{table}"
        );
    }
}

/// No other way to the rows: information_schema and SHOW are not there,
/// table functions and paths are refused. (The files datasource has no
/// views: DDL is refused.)
#[tokio::test]
async fn no_other_way_reaches_the_unfiltered_rows() {
    let dir = root();
    let ds = files_datasource(dir.path());
    let eu = region("EU");
    for (sql, code) in [
        ("SELECT * FROM information_schema.tables", "not_found"),
        ("SELECT * FROM information_schema.columns", "not_found"),
        ("SHOW TABLES", "files.read_only"),
        (
            "SELECT * FROM read_parquet('sales.parquet')",
            "files.table_function",
        ),
        (
            "SELECT * FROM read_csv('sales_csv.csv')",
            "files.table_function",
        ),
        ("SELECT * FROM 'sales.parquet'", "table.not_found"),
        ("SELECT * FROM \"sales.parquet\"", "table.not_found"),
        ("SELECT * FROM other.sales", "not_found"),
        ("CREATE VIEW v AS SELECT * FROM sales", "files.read_only"),
    ] {
        match run_restricted(&ds, sql, &eu).await {
            Ok(rows) => panic!("{sql} ran and returned {} rows", one(&rows).num_rows()),
            Err(e) => assert_eq!(e.code(), code, "{sql}: {e}"),
        }
    }
}

/// The query's own predicates run above the filter: one that fails on a
/// hidden row (a division by zero) never sees it, so its error cannot
/// tell that the row exists.
#[tokio::test]
async fn the_query_predicates_never_see_hidden_rows() {
    let dir = root();
    let ds = files_datasource(dir.path());
    let sql = "SELECT id FROM sales \
               WHERE 10 / CASE WHEN region = 'US' THEN 0 ELSE 1 END > 1 ORDER BY id";
    assert_eq!(ids(&ds, sql, &region("EU")).await, EU);
    assert!(
        run(&ds, sql).await.is_err(),
        "without the filter the US rows divide by zero"
    );
    let joined = "SELECT s.id FROM regions r JOIN sales s ON s.region = r.region \
                  WHERE 10 / CASE WHEN s.amount = 40 THEN 0 ELSE 1 END > 1 ORDER BY s.id";
    assert_eq!(ids(&ds, joined, &region("EU")).await, EU);
    assert!(run(&ds, joined).await.is_err());
}

/// EXPLAIN shows the filter as one step, with no counts of the rows it
/// hides: what is above it counts only the rows it lets through.
#[tokio::test]
async fn explain_analyze_counts_no_hidden_rows() {
    let dir = root();
    let ds = files_datasource(dir.path());
    let sql = "EXPLAIN ANALYZE SELECT id FROM sales WHERE amount > 0";
    let plan = |rows: Vec<RecordBatch>| -> String {
        let b = one(&rows);
        let column = b.column(b.num_columns() - 1);
        let text = arrow::compute::cast(column, &DataType::Utf8).unwrap();
        let text = text.as_any().downcast_ref::<StringArray>().unwrap();
        text.iter().flatten().collect::<Vec<_>>().join("\n")
    };
    let filtered = plan(run_restricted(&ds, sql, &region("EU")).await.unwrap());
    assert!(
        filtered.contains("RowFilterExec: table=sales"),
        "{filtered}"
    );
    assert!(filtered.contains("output_rows=3"), "{filtered}");
    assert!(!filtered.contains("output_rows=7"), "{filtered}");
    let whole = plan(run(&ds, sql).await.unwrap());
    assert!(whole.contains("output_rows=7"), "{whole}");
}

/// Grants of several groups each add the rows they allow: a row is
/// visible when it passes any filter of its table.
#[tokio::test]
async fn several_filters_on_a_table_each_add_rows() {
    let dir = root();
    let ds = files_datasource(dir.path());
    let two = restricted(vec![
        filter("sales", "region = $1", vec![text("user.region", "EU")]),
        filter(
            "public.sales",
            "amount >= $1",
            vec![BoundParam {
                name: "min".into(),
                value: Value::Integer(60),
            }],
        ),
        filter("regions", "region = 'US'", vec![]),
    ]);
    assert_eq!(
        ids(&ds, "SELECT id FROM sales ORDER BY id", &two).await,
        [1, 3, 5, 6, 7]
    );
    assert_eq!(
        ids(&ds, "SELECT count(*) FROM regions", &two).await,
        [1],
        "another table's filter applies to it alone"
    );
    assert_eq!(
        ids(&ds, "SELECT count(*) FROM sales_csv", &two).await,
        [7],
        "a table without a filter is whole"
    );
}

/// A value is bound, never spliced: quotes and semicolons are data.
#[tokio::test]
async fn filter_values_are_data_not_sql() {
    let dir = root();
    let ds = files_datasource(dir.path());
    for payload in [
        "EU' OR '1'='1",
        "EU'; SELECT 1; --",
        "' OR true OR region = '",
        "EU\\",
    ] {
        assert_eq!(
            ids(&ds, "SELECT count(*) FROM sales", &region(payload)).await,
            [0],
            "{payload}"
        );
    }
}

/// A table of predicates, each checked against the same predicate in a
/// WHERE clause without the filter: the filter keeps exactly the rows the
/// predicate holds for (NULL is not true).
#[tokio::test]
async fn filters_keep_the_rows_their_predicate_holds_for() {
    let dir = root();
    let ds = files_datasource(dir.path());
    let int = |n: i64| BoundParam {
        name: "n".into(),
        value: Value::Integer(n),
    };
    let cases: Vec<(&str, Vec<BoundParam>, &str)> = vec![
        ("amount > $1", vec![int(25)], "amount > 25"),
        (
            "id BETWEEN $1 AND $2",
            vec![int(2), int(4)],
            "id BETWEEN 2 AND 4",
        ),
        ("region <> $1", vec![text("r", "EU")], "region <> 'EU'"),
        ("region IS NULL", vec![], "region IS NULL"),
        (
            "region IN ('US', 'APAC')",
            vec![],
            "region IN ('US', 'APAC')",
        ),
        ("region LIKE $1", vec![text("p", "A%")], "region LIKE 'A%'"),
        ("NOT (region = 'EU')", vec![], "NOT (region = 'EU')"),
        (
            "lower(region) = $1",
            vec![text("r", "us")],
            "lower(region) = 'us'",
        ),
        (
            "CASE WHEN region = 'EU' THEN amount > 20 ELSE id = 2 END",
            vec![],
            "CASE WHEN region = 'EU' THEN amount > 20 ELSE id = 2 END",
        ),
        ("id = $1", vec![text("id", "4")], "id = 4"),
        (
            "sales.region = 'US' AND amount < 30",
            vec![],
            "region = 'US' AND amount < 30",
        ),
        ("true", vec![], "true"),
        ("false", vec![], "false"),
        ("region = 'EU' OR NULL", vec![], "region = 'EU' OR NULL"),
    ];
    for (predicate, params, same) in cases {
        let restrictions = restricted(vec![filter("sales", predicate, params)]);
        let got = ids(&ds, "SELECT id FROM sales ORDER BY id", &restrictions).await;
        let want = unrestricted(
            &ds,
            &format!("SELECT id FROM sales WHERE {same} ORDER BY id"),
        )
        .await;
        assert_eq!(got, want, "{predicate}");
    }
}

async fn refusal(ds: &Arc<dyn Datasource>, restrictions: &Restrictions) -> Error {
    match run_restricted(ds, "SELECT id FROM sales", restrictions).await {
        Ok(rows) => panic!("ran and returned {} rows", one(&rows).num_rows()),
        Err(e) => e,
    }
}

/// A filter that cannot be applied stops the statement, naming the
/// table and what is wrong; the statement never runs unfiltered.
#[tokio::test]
async fn a_filter_that_cannot_be_applied_is_refused() {
    let dir = root();
    let ds = files_datasource(dir.path());
    let cases: Vec<(RowFilter, &str)> = vec![
        (
            filter("no_such", "true", vec![]),
            "table \"no_such\" not found",
        ),
        (filter("SALES", "true", vec![]), "table \"SALES\" not found"),
        (
            filter("sales", "region = ", vec![]),
            "is not a SQL expression",
        ),
        (
            filter("sales", "region = 'EU'; DROP", vec![]),
            "is not a SQL expression",
        ),
        (
            filter("sales", "regoin = 'EU'", vec![]),
            "id, region, amount",
        ),
        (
            filter("sales", "other.region = 'EU'", vec![]),
            "does not fit",
        ),
        (filter("sales", "amount + 1", vec![]), "not boolean"),
        (filter("sales", "NULL", vec![]), "not boolean"),
        (filter("sales", "$1", vec![text("x", "yes")]), "not boolean"),
        (
            filter("sales", "region IN (SELECT region FROM regions)", vec![]),
            "regions",
        ),
        (filter("sales", "EXISTS (SELECT 1)", vec![]), "a subquery"),
        (
            filter("sales", "count(*) > 0", vec![]),
            "an aggregate function",
        ),
        (
            filter("sales", "row_number() OVER () < 3", vec![]),
            "a window function",
        ),
        (
            filter("sales", "region = $1", vec![]),
            "uses placeholder $1",
        ),
        (
            filter(
                "sales",
                "region = $2",
                vec![text("a", "EU"), text("b", "US")],
            ),
            "does not use $1",
        ),
        (
            filter("sales", "region = 'EU'", vec![text("a", "EU")]),
            "does not use $1",
        ),
        (
            filter("sales", "id = $1", vec![text("user.id", "abc")]),
            "user.id",
        ),
    ];
    for (bad, says) in cases {
        let what = format!("{bad:?}");
        // A valid filter beside it does not let the statement through.
        let restrictions = restricted(vec![filter("sales_csv", "region = 'EU'", vec![]), bad]);
        let err = refusal(&ds, &restrictions).await;
        assert_eq!(
            err.code(),
            "datasource.restrictions_unsupported",
            "{what}: {err}"
        );
        let message = err.to_string();
        assert!(message.contains(says), "{what}: {message}");
        assert!(
            message.contains("the row filter on table"),
            "{what}: {message}"
        );
    }
}

/// Settings are for databases whose policies read them; the files have
/// none, so a statement carrying them does not run.
#[tokio::test]
async fn settings_are_refused() {
    let dir = root();
    let ds = files_datasource(dir.path());
    let mut restrictions = region("EU");
    restrictions
        .settings
        .insert("loupe.user.region".into(), "EU".into());
    let err = refusal(&ds, &restrictions).await;
    assert_eq!(err.code(), "datasource.restrictions_unsupported", "{err}");
    assert!(err.to_string().contains("transaction settings"), "{err}");
}
