//! What every connector's tests share: reaching a test database (missing
//! under `CI=true` is a failure, never a skip), running a template, and
//! reading results.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Some helpers serve only the kinds whose feature is on.
#![cfg_attr(
    not(all(feature = "postgres", feature = "mysql", feature = "files")),
    allow(dead_code, unused_macros)
)]

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type};
use futures::StreamExt;
use loupe_core::{
    BatchWriter, Datasource, Error, ExportFormat, Limits, ParameterDef, ParameterValues,
    Restrictions, Statement, Truncation,
};
use serde_json::Value as Json;

/// The test server's URL from `var`, or `None` to skip. `scripts/test`
/// starts `server` and sets the variable; under `CI=true` a missing one
/// fails the test, so CI can never pass by skipping.
pub(crate) fn database_url(var: &str, server: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "{var} is not set: CI must run the tests through scripts/test, which starts {server}"
            )
        }
        Err(_) => {
            eprintln!("skipped: {var} is not set (scripts/test starts {server})");
            None
        }
    }
}

/// A file the test environment names in `var` (a CA certificate), or
/// `None` to skip; under `CI=true` a missing one fails the test.
pub(crate) fn env_file(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(path) => Some(path),
        Err(_) => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "{var} is not set"
            );
            None
        }
    }
}

/// The variable naming a test server, and the server `scripts/test` starts.
pub(crate) type Server = (&'static str, &'static str);

/// The owner of the scratch database: fixtures, and datasources (an
/// owner is not a privileged role).
pub(crate) const POSTGRES: Server = ("LOUPE_TEST_POSTGRES_URL", "PostgreSQL");
/// The cluster's superuser, which a datasource must refuse.
pub(crate) const POSTGRES_SUPERUSER: Server = ("LOUPE_TEST_POSTGRES_SUPERUSER_URL", "PostgreSQL");
/// A least-privilege reader of the scratch database: datasources.
pub(crate) const MARIADB: Server = ("LOUPE_TEST_MYSQL_URL", "MariaDB");
/// The owner of the scratch database (all rights on `loupe_%`): fixtures.
/// A read-only datasource refuses it for its write grants.
pub(crate) const MARIADB_OWNER: Server = ("LOUPE_TEST_MYSQL_OWNER_URL", "MariaDB");
/// A user with FILE, SUPER and other administrative privileges.
pub(crate) const MARIADB_PRIVILEGED: Server = ("LOUPE_TEST_MYSQL_PRIVILEGED_URL", "MariaDB");

/// The URL of a [`Server`], or returns from the test (see
/// [`database_url`]).
macro_rules! server_or_skip {
    ($server:expr) => {
        match crate::support::database_url($server.0, $server.1) {
            Some(url) => url,
            None => return,
        }
    };
}

/// A plain client of the test PostgreSQL server, as the owner of its
/// scratch database, for setting up data.
pub(crate) async fn postgres_owner(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// A plain connection to the test MariaDB server as the user of `url`:
/// [`MARIADB_OWNER`]'s to set up data.
pub(crate) async fn mysql_owner(url: &str) -> mysql_async::Conn {
    let opts = mysql_async::Opts::from_url(&url.replace("?ssl_mode=disabled", "")).unwrap();
    mysql_async::Conn::new(opts).await.unwrap()
}

/// `url` with user `user` instead: `scripts/databases.sh` gives every test
/// role the same password.
pub(crate) fn with_user(url: &str, user: &str) -> String {
    let mut url = url::Url::parse(url).unwrap();
    url.set_username(user).unwrap();
    url.to_string()
}

/// Builds the datasource of `url` with `registry` on a thread of its own,
/// so that a build that blocks (opening a fifo) fails the test instead of
/// hanging it.
pub(crate) fn build_within_seconds(
    registry: &loupe_core::Registry,
    url: &str,
) -> Result<Arc<dyn Datasource>, Error> {
    let (registry, url) = (registry.clone(), url.to_owned());
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(registry.from_url(&url));
    });
    receive
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("building the datasource did not end")
}

/// Writes `batch` to a new file at `path`.
pub(crate) fn write_file(path: &std::path::Path, format: ExportFormat, batch: &RecordBatch) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = BatchWriter::new(format, file, batch.schema()).unwrap();
    writer.write(batch).unwrap();
    writer.finish().unwrap();
}

/// A datasource from the test URL with `extra` query options.
pub(crate) fn datasource(url: &str, extra: &str) -> Arc<dyn Datasource> {
    let url = if extra.is_empty() {
        url.to_owned()
    } else {
        format!("{url}&{extra}")
    };
    loupe_connectors::registry().from_url(&url).unwrap()
}

/// A files datasource over `root`.
pub(crate) fn files_datasource(root: &std::path::Path) -> Arc<dyn Datasource> {
    loupe_connectors::registry()
        .from_url(root.to_str().unwrap())
        .unwrap()
}

/// Runs template `sql` with parameters `defs` set to `values`, and returns
/// every batch and whether the result was cut.
pub(crate) async fn run_with(
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

pub(crate) async fn run(ds: &Arc<dyn Datasource>, sql: &str) -> Result<Vec<RecordBatch>, Error> {
    Ok(run_with(ds, sql, &[], &[], &Limits::NONE).await?.0)
}

/// Runs `sql` (no parameters) under `restrictions`, as a caller whose
/// access carries them, and returns every batch.
pub(crate) async fn run_restricted(
    ds: &Arc<dyn Datasource>,
    sql: &str,
    restrictions: &Restrictions,
) -> Result<Vec<RecordBatch>, Error> {
    let mut statement =
        Statement::from_template(sql, ds.dialect(), &[], &ParameterValues::default())?;
    statement.restrictions = restrictions.clone();
    let mut stream = ds.execute(&statement, &Limits::NONE).await?;
    let mut batches = Vec::new();
    while let Some(b) = stream.next().await {
        batches.push(b?);
    }
    Ok(batches)
}

/// All batches as one.
pub(crate) fn one(batches: &[RecordBatch]) -> RecordBatch {
    arrow::compute::concat_batches(&batches[0].schema(), batches).unwrap()
}

/// Column `column` of every batch, cast to integers.
pub(crate) fn ints(batches: &[RecordBatch], column: usize) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let c = arrow::compute::cast(b.column(column), &DataType::Int64).unwrap();
            c.as_primitive::<Int64Type>().values().to_vec()
        })
        .collect()
}

/// A local port nothing listens on.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
