//! The metadata store: organizations, users, datasources, queries, runs,
//! schedules, visualizations, dashboards, canvases, keys and audit events,
//! in SQLite (one file, the embedded default) or PostgreSQL (teams, several
//! processes).
//!
//! One set of migrations and one set of queries serve both backends (see
//! `migrations/0001_metadata.up.sql` for the conventions). This module owns
//! connections, migrations, transactions and the mapping of database errors,
//! and the reads and writes every service makes alike: a row by key or of an
//! organization, a page of a list, the children and tags of a page, a change
//! checked against its revision. The rules about who may do what live in
//! [`crate::services`].

mod children;
mod list;
mod rows;
mod schema;
mod tags;
mod tls;

use loupe_core::codes;
use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyPool, Executor, SqlStr, Transaction};

pub(crate) use children::{Children, ids};
pub use list::{DEFAULT_LIMIT, ListPage, ListRequest, ListSpec, MAX_LIMIT, MAX_OFFSET};
pub(crate) use list::{Filter, SqlBuilder};
pub(crate) use rows::{
    check_revision, col, fetch_in_org, fetch_one, fetch_optional, find_in_org, find_one, flag,
    json, only, require_unused, taken, to_json, update_at_revision,
};
pub use schema::{MigrationId, SchemaStatus, known_migrations, list_migrations};
pub(crate) use tags::TagTable;

use loupe_core::{Error, ErrorKind, Result};

/// Which database holds the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file: one process.
    Sqlite,
    /// PostgreSQL: any number of processes.
    Postgres,
}

/// A pool of connections to the metadata database.
#[derive(Debug, Clone)]
pub struct MetadataStore {
    pool: AnyPool,
    backend: Backend,
}

/// The migrations: version, name, up script, down script.
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "metadata",
        include_str!("../../migrations/0001_metadata.up.sql"),
        include_str!("../../migrations/0001_metadata.down.sql"),
    ),
    (
        2,
        "runner",
        include_str!("../../migrations/0002_runner.up.sql"),
        include_str!("../../migrations/0002_runner.down.sql"),
    ),
    (
        3,
        "auth_hardening",
        include_str!("../../migrations/0003_auth_hardening.up.sql"),
        include_str!("../../migrations/0003_auth_hardening.down.sql"),
    ),
    (
        4,
        "organizations_disabled",
        include_str!("../../migrations/0004_organizations_disabled.up.sql"),
        include_str!("../../migrations/0004_organizations_disabled.down.sql"),
    ),
    (
        5,
        "run_trace_context",
        include_str!("../../migrations/0005_run_trace_context.up.sql"),
        include_str!("../../migrations/0005_run_trace_context.down.sql"),
    ),
    (
        6,
        "deliveries",
        include_str!("../../migrations/0006_deliveries.up.sql"),
        include_str!("../../migrations/0006_deliveries.down.sql"),
    ),
    (
        7,
        "sharing",
        include_str!("../../migrations/0007_sharing.up.sql"),
        include_str!("../../migrations/0007_sharing.down.sql"),
    ),
];

/// The migrations, embedded in the binary.
fn migrator() -> Migrator {
    let mut migrations = Vec::with_capacity(MIGRATIONS.len() * 2);
    for &(version, name, up, down) in MIGRATIONS {
        for (kind, sql) in [
            (MigrationType::ReversibleUp, up),
            (MigrationType::ReversibleDown, down),
        ] {
            migrations.push(Migration::new(
                version,
                Cow::Borrowed(name),
                kind,
                SqlStr::from_static(sql),
                false,
            ));
        }
    }
    Migrator::with_migrations(migrations)
}

/// The newest migration version this build knows.
pub const SCHEMA_VERSION: i64 = 7;

impl MetadataStore {
    /// Connects to `location`: a `postgres://` URL, a `sqlite:` URL, or a
    /// file path (a SQLite database, created if missing). Does not migrate.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the database cannot be reached.
    pub async fn connect(location: &str) -> Result<Self> {
        install_default_drivers();
        let (url, backend) =
            if location.starts_with("postgres://") || location.starts_with("postgresql://") {
                tls::choose_crypto_provider();
                (tls::libpq_url(location)?, Backend::Postgres)
            } else if location.starts_with("sqlite:") {
                (location.to_owned(), Backend::Sqlite)
            } else {
                private_sqlite_file(Path::new(location))?;
                (format!("sqlite://{location}?mode=rwc"), Backend::Sqlite)
            };
        let options = AnyPoolOptions::new()
            .max_connections(match backend {
                // One writer at a time anyway; readers share the WAL.
                Backend::Sqlite => 4,
                Backend::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(
                            "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL",
                        )
                        .await?;
                    }
                    Ok(())
                })
            });
        let pool = options
            .connect(&url)
            .await
            .map_err(|e| Error::Unavailable {
                code: codes::METADATA_UNREACHABLE,
                message: format!(
                    "cannot open the metadata database ({}): {}",
                    redact(&url),
                    tls::connect_failure(&e)
                ),
                source: Some(Box::new(e)),
            })?;
        if backend == Backend::Sqlite && !url.contains(":memory:") {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .map_err(db_error)?;
        }
        Ok(Self { pool, backend })
    }

    /// Connects and applies every migration not yet applied (refusing a
    /// schema a newer release migrated).
    pub async fn open(location: &str) -> Result<Self> {
        Self::open_with(location, crate::config::MigrateMode::Auto).await
    }

    /// Applies this build's migrations up to `target` only: for tests
    /// that need a database as an earlier release left it.
    pub async fn migrate_to(&self, target: i64) -> Result<()> {
        migrator()
            .run_to(target, &self.pool)
            .await
            .map_err(|e| Error::internal_from(format!("applying metadata migrations: {e}"), e))
    }

    /// Reverts migrations down to `target` (0 removes everything).
    pub async fn undo_migrations(&self, target: i64) -> Result<()> {
        migrator()
            .undo(&self.pool, target)
            .await
            .map_err(|e| Error::internal_from(format!("reverting metadata migrations: {e}"), e))
    }

    /// The newest migration this build knows; the database is up to date
    /// when [`schema_version`](Self::schema_version) equals it.
    pub fn known_version() -> i64 {
        migrator().iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// The newest migration applied to the database, 0 when none.
    pub async fn schema_version(&self) -> Result<i64> {
        if !self.has_migrations_table().await? {
            return Ok(0);
        }
        let (version,): (Option<i64>,) =
            sqlx::query_as("SELECT max(version) FROM _sqlx_migrations WHERE success = true")
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(version.unwrap_or(0))
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection pool, for queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a transaction that will write. On SQLite it takes the write
    /// lock at once (`BEGIN IMMEDIATE`), so two writers queue instead of
    /// failing on a lock upgrade.
    pub async fn write(&self) -> Result<Transaction<'static, Any>> {
        let begin = match self.backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        self.pool.begin_with(begin).await.map_err(db_error)
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Makes a SQLite file (and its directory) that only its owner can read,
/// before SQLite opens it: SQLite gives the WAL and shared-memory files the
/// database file's permissions, so they follow. A file that exists is made
/// private too, with its WAL and shared-memory files.
fn private_sqlite_file(path: &Path) -> Result<()> {
    let fail = |what: &Path, e: std::io::Error| {
        Error::config(format!("metadata database {}: {e}", what.display()))
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut dir = std::fs::DirBuilder::new();
        dir.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
        dir.create(parent).map_err(|e| fail(parent, e))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| fail(path, e))?;
        for suffix in ["", "-wal", "-shm"] {
            let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            if file.exists() {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| fail(&file, e))?;
            }
        }
    }
    Ok(())
}

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// The current time in microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// A new identifier: a UUIDv7, so identifiers sort by creation time.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Maps a database error. Constraint violations are conflicts (a name in
/// use, an object still referenced); the rest mean the store is in trouble.
pub(crate) fn db_error(e: sqlx::Error) -> Error {
    if let Some(db) = e.as_database_error() {
        use sqlx::error::ErrorKind as Db;
        match db.kind() {
            Db::UniqueViolation => {
                return Error::conflict(
                    codes::CONFLICT_EXISTS,
                    "an object with the same name already exists",
                );
            }
            Db::ForeignKeyViolation => {
                return Error::conflict(
                    codes::CONFLICT_IN_USE,
                    "the object is referenced by others, or refers to one that does not exist",
                );
            }
            Db::CheckViolation | Db::NotNullViolation => {
                return Error::invalid_input(
                    codes::METADATA_CONSTRAINT,
                    format!("the value breaks a rule of the store: {}", db.message()),
                );
            }
            _ => {}
        }
    }
    match e {
        sqlx::Error::RowNotFound => Error::not_found("object", ""),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            Error::Unavailable {
                code: codes::METADATA_UNAVAILABLE,
                message: "the metadata database is not available".into(),
                source: Some(Box::new(e)),
            }
        }
        other => Error::Internal {
            message: "metadata database".into(),
            source: Some(Box::new(other)),
        },
    }
}

/// True when `e` says the store could not be reached (for readiness).
pub fn is_unavailable(e: &Error) -> bool {
    e.kind() == ErrorKind::Unavailable
}
