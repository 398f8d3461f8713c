//! Where the metadata schema stands against the migrations this build
//! knows, and moving it: up (every pending migration), down (the last few,
//! with the down scripts), or not at all (`migrate = never`).
//!
//! A database that a newer release migrated (it has a version this build
//! does not know) is refused on every path, naming both versions: this
//! build would misread tables it has never seen, and its down scripts
//! cannot undo what it did not do.

use std::fmt;

use loupe_core::{Error, Result, codes};

use super::{Backend, MetadataStore, db_error, migrator};
use crate::config::MigrateMode;

/// One migration: its version and name, shown as `0003 auth_hardening`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MigrationId {
    /// The version, which orders migrations.
    pub version: i64,
    /// What it does, from its file name.
    pub name: String,
}

impl fmt::Display for MigrationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04} {}", self.version, self.name)
    }
}

/// The migrations of a database next to those of this build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaStatus {
    /// Applied and known to this build, oldest first.
    pub applied: Vec<MigrationId>,
    /// Known to this build and not applied, oldest first.
    pub pending: Vec<MigrationId>,
    /// Applied but unknown to this build (a newer release applied them),
    /// oldest first.
    pub unknown: Vec<MigrationId>,
    /// A migration that started and did not finish.
    pub failed: Option<MigrationId>,
}

impl SchemaStatus {
    /// The newest migration applied, 0 when none.
    pub fn version(&self) -> i64 {
        self.applied
            .iter()
            .chain(&self.unknown)
            .map(|m| m.version)
            .max()
            .unwrap_or(0)
    }

    /// True when every known migration is applied and no other is.
    pub fn is_current(&self) -> bool {
        self.pending.is_empty() && self.unknown.is_empty() && self.failed.is_none()
    }

    /// Refuses a schema this build cannot work on: one a newer release
    /// migrated, or one a migration left half-done.
    ///
    /// # Errors
    /// [`Error::Conflict`] with `metadata.schema_newer` (naming the
    /// database's version and this build's) or `metadata.schema_dirty`.
    pub fn refuse_unusable(&self) -> Result<()> {
        if let Some(newest) = self.unknown.last() {
            let known = known_migrations();
            let ours = known
                .last()
                .map_or_else(|| "none".to_owned(), ToString::to_string);
            return Err(Error::conflict(
                codes::METADATA_SCHEMA_NEWER,
                format!(
                    "the metadata schema is at version {} ({newest}), newer than this build of Loupe knows (version {}, {ours}): \
                     run a release that knows version {}, or restore the backup taken before the upgrade",
                    newest.version,
                    known.last().map_or(0, |m| m.version),
                    newest.version,
                ),
            ));
        }
        if let Some(failed) = &self.failed {
            return Err(Error::conflict(
                codes::METADATA_SCHEMA_DIRTY,
                format!(
                    "migration {failed} started and did not finish (it is marked failed in _sqlx_migrations); \
                     restore the backup taken before it, or finish its statements by hand and mark it successful"
                ),
            ));
        }
        Ok(())
    }

    /// Refuses a schema that lacks migrations, for a process that may not
    /// apply them (`migrate = never`).
    ///
    /// # Errors
    /// [`Error::Conflict`] with `metadata.schema_outdated`, listing them.
    pub fn refuse_pending(&self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        Err(Error::conflict(
            codes::METADATA_SCHEMA_OUTDATED,
            format!(
                "the metadata schema is at version {} and this build needs version {} (pending: {}); \
                 with `migrate = never` this process does not apply migrations: run `loupe-server migrate` first",
                self.version(),
                known_migrations().last().map_or(0, |m| m.version),
                list_migrations(&self.pending),
            ),
        ))
    }
}

/// `0003 auth_hardening, 0004 organizations_disabled`.
pub fn list_migrations(migrations: &[MigrationId]) -> String {
    migrations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The migrations this build knows, oldest first.
pub fn known_migrations() -> Vec<MigrationId> {
    let mut known: Vec<MigrationId> = migrator()
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| MigrationId {
            version: m.version,
            name: m.description.to_string(),
        })
        .collect();
    known.sort();
    known
}

impl MetadataStore {
    /// Connects to `location` (see [`connect`](Self::connect)) and brings
    /// the schema up to date, or with [`MigrateMode::Never`] only checks
    /// that it is.
    ///
    /// # Errors
    /// `metadata.schema_newer` when a newer release migrated the database,
    /// `metadata.schema_outdated` when migrations are pending and `mode`
    /// is `Never`.
    pub async fn open_with(location: &str, mode: MigrateMode) -> Result<Self> {
        let store = Self::connect(location).await?;
        let checked = match mode {
            MigrateMode::Auto => store.migrate().await.map(|_| ()),
            MigrateMode::Never => store.schema_status().await.and_then(|status| {
                status.refuse_unusable()?;
                status.refuse_pending()
            }),
        };
        if let Err(e) = checked {
            store.close().await;
            return Err(e);
        }
        Ok(store)
    }

    /// The migrations applied to the database, next to this build's.
    pub async fn schema_status(&self) -> Result<SchemaStatus> {
        let known = known_migrations();
        let mut status = SchemaStatus::default();
        let mut applied = Vec::new();
        if self.has_migrations_table().await? {
            let rows: Vec<(i64, String, i64)> = sqlx::query_as(
                "SELECT version, description, CAST(CASE WHEN success THEN 1 ELSE 0 END AS BIGINT) \
                 FROM _sqlx_migrations ORDER BY version",
            )
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            for (version, name, success) in rows {
                let id = MigrationId { version, name };
                if success == 0 {
                    status.failed = Some(id);
                } else {
                    applied.push(id);
                }
            }
        }
        for id in applied {
            if known.iter().any(|k| k.version == id.version) {
                status.applied.push(id);
            } else {
                status.unknown.push(id);
            }
        }
        status.pending = known
            .into_iter()
            .filter(|k| {
                !status.applied.iter().any(|a| a.version == k.version)
                    && status
                        .failed
                        .as_ref()
                        .is_none_or(|f| f.version != k.version)
            })
            .collect();
        Ok(status)
    }

    /// Applies the migrations this build knows and the database lacks;
    /// returns those that were pending.
    ///
    /// # Errors
    /// `metadata.schema_newer` or `metadata.schema_dirty` (see
    /// [`SchemaStatus::refuse_unusable`]), or the failure of a migration.
    pub async fn migrate(&self) -> Result<Vec<MigrationId>> {
        let status = self.schema_status().await?;
        status.refuse_unusable()?;
        migrator()
            .run(&self.pool)
            .await
            .map_err(|e| Error::internal_from(format!("applying metadata migrations: {e}"), e))?;
        Ok(status.pending)
    }

    /// Reverts the last `count` applied migrations with their down
    /// scripts, newest first; returns them. Down scripts drop what their
    /// migration added, data included.
    ///
    /// # Errors
    /// `metadata.revert_too_far` when fewer than `count` are applied;
    /// `metadata.schema_newer` when the newest is not this build's to undo.
    pub async fn migrate_down(&self, count: usize) -> Result<Vec<MigrationId>> {
        let status = self.schema_status().await?;
        status.refuse_unusable()?;
        let applied = &status.applied;
        if count > applied.len() {
            return Err(Error::conflict(
                codes::METADATA_REVERT_TOO_FAR,
                format!(
                    "cannot revert {count} migrations: {} applied ({}); ask for at most {}",
                    applied.len(),
                    if applied.is_empty() {
                        "none".to_owned()
                    } else {
                        list_migrations(applied)
                    },
                    applied.len()
                ),
            ));
        }
        let keep = applied.len() - count;
        let target = keep
            .checked_sub(1)
            .and_then(|i| applied.get(i))
            .map_or(0, |m| m.version);
        self.undo_migrations(target).await?;
        Ok(applied[keep..].iter().rev().cloned().collect())
    }

    /// Whether the database has sqlx's migration table at all.
    pub(super) async fn has_migrations_table(&self) -> Result<bool> {
        let exists = match self.backend {
            Backend::Sqlite => {
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
            }
            Backend::Postgres => {
                "SELECT count(*) FROM information_schema.tables WHERE table_name = '_sqlx_migrations' AND table_schema = current_schema()"
            }
        };
        let (count,): (i64,) = sqlx::query_as(exists)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(count > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(version: i64, name: &str) -> MigrationId {
        MigrationId {
            version,
            name: name.to_owned(),
        }
    }

    #[test]
    fn a_newer_schema_is_refused_naming_both_versions() {
        let status = SchemaStatus {
            applied: known_migrations(),
            unknown: vec![id(9001, "from_the_future")],
            ..SchemaStatus::default()
        };
        let message = status.refuse_unusable().unwrap_err().to_string();
        let ours = known_migrations().last().map_or(0, |m| m.version);
        assert!(
            message.contains("version 9001 (9001 from_the_future)"),
            "{message}"
        );
        assert!(
            message.contains(&format!("knows (version {ours}")),
            "{message}"
        );
        assert_eq!(status.version(), 9001);
    }

    #[test]
    fn pending_migrations_are_listed_with_the_command_that_applies_them() {
        let status = SchemaStatus {
            applied: vec![id(1, "metadata")],
            pending: vec![id(2, "runner"), id(3, "auth_hardening")],
            ..SchemaStatus::default()
        };
        let message = status.refuse_pending().unwrap_err().to_string();
        assert!(
            message.contains("pending: 0002 runner, 0003 auth_hardening"),
            "{message}"
        );
        assert!(message.contains("loupe-server migrate"), "{message}");
    }
}
