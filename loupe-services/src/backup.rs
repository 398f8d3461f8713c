//! Backups of a deployment's storage, and restoring them.
//!
//! A backup is one tar archive: the SQLite metadata (a `VACUUM INTO`
//! snapshot, never a copy of the live file), the result objects that
//! snapshot's runs point at, the keys kept in the data directory, and last
//! a `manifest.json` with the SHA-256 of every file and the schema version.
//! It is taken while a server runs on the same data directory:
//!
//! - The snapshot decides what is in the backup. A result written after it
//!   is left out; a result its runs point at is hard-linked into a staging
//!   directory right after the snapshot, so that a deletion while the
//!   archive is written cannot take it away. A run's result is written
//!   before its row commits and deleted after its row is, so a result
//!   missing at that point means its run was deleted since the snapshot:
//!   the backup starts again with a new snapshot.
//! - With PostgreSQL metadata, `pg_dump -Fc` backs the metadata up and
//!   [`backup`] with `results_only` the results and keys. Taken after the
//!   dump, it holds every result the dump's runs point at, except those
//!   deleted in between; [`restore`] drops the runs of those, which were
//!   deleted anyway, and leaves out results the dump does not know.
//!
//! [`restore`] writes into an empty data directory only, checks every
//! checksum before anything is moved into place, and makes what it writes
//! readable by the owner alone (0700 directories, 0600 files).
//!
//! What this module must not do: copy a live SQLite file, or trust a path
//! in an archive (only the names it writes itself are accepted).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use loupe_core::ResultId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::ConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

use crate::config::{ConfigError, DeploymentConfig};
use crate::meta::{MetadataStore, db_error, known_migrations, now_micros};

/// The manifest's name in the archive; it is written last.
pub const MANIFEST: &str = "manifest.json";
/// What a manifest's `format` says.
const FORMAT: &str = "loupe-backup";
/// The newest archive layout this build reads and the one it writes.
const FORMAT_VERSION: u32 = 1;
/// Snapshots taken before giving up when results keep disappearing.
const ATTEMPTS: u32 = 5;
/// The SQLite metadata in the archive.
const METADATA_FILE: &str = "metadata/loupe.db";
/// Keys kept in the data directory, by file name.
const KEY_FILES: [&str; 2] = ["secret.key", "signing.key"];

/// A backup or restore that could not be done.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The configuration is not valid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Not possible as asked (a target that is not empty, an archive of
    /// the other kind of metadata); the message says what to do instead.
    #[error("{0}")]
    Refused(String),
    /// The archive is incomplete or damaged; the message names the file.
    #[error("{0}")]
    Damaged(String),
    /// Results kept being deleted while snapshots were taken.
    #[error("{0}")]
    Busy(String),
    /// The metadata store failed.
    #[error(transparent)]
    Core(#[from] loupe_core::Error),
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the file.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
}

/// Results in an object store (`results_url`) are not copied into an
/// archive: the bucket keeps them, and its own versioning or replication
/// backs them up. Said plainly rather than writing an archive whose runs
/// point at results it does not hold.
fn refuse_object_store(config: &DeploymentConfig) -> Result<(), BackupError> {
    match &config.results_url {
        Some(url) => Err(BackupError::Refused(format!(
            "the results are in an object store ({url}), which an archive does not hold: \
             back up the metadata with `pg_dump -Fc`, keep the key files apart, and protect \
             the bucket with its own versioning or replication"
        ))),
        None => Ok(()),
    }
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

/// Where the metadata of a backup is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetadataCopy {
    /// In the archive: a SQLite snapshot.
    Sqlite,
    /// Backed up apart (`pg_dump`): the archive holds results and keys.
    Separate,
}

/// The archive's table of contents, written last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always `loupe-backup`.
    pub format: String,
    /// The archive layout's version.
    pub format_version: u32,
    /// When the snapshot was taken, in microseconds since the Unix epoch.
    pub taken_at: i64,
    /// The release that made the backup.
    pub loupe_version: String,
    /// The metadata schema's version at the snapshot.
    pub schema_version: i64,
    /// Where the metadata is.
    pub metadata: MetadataCopy,
    /// Every other file of the archive with its size and SHA-256.
    pub files: Vec<ManifestFile>,
    /// Keys the configuration takes from outside the data directory,
    /// which this archive does not hold: they must be kept apart.
    pub keys_elsewhere: Vec<String>,
}

/// One file of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Its path in the archive.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The archive's manifest.
    pub manifest: Manifest,
    /// The archive's size in bytes.
    pub archive_bytes: u64,
    /// Result objects in the archive.
    pub results: usize,
    /// Snapshots taken: more than one when results were deleted while the
    /// backup ran.
    pub attempts: u32,
}

/// What a restore wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// The archive's manifest.
    pub manifest: Manifest,
    /// Result objects restored.
    pub results: usize,
    /// Key files restored.
    pub keys: usize,
    /// Runs dropped from restored PostgreSQL metadata because their
    /// results were deleted after the dump.
    pub dropped_runs: u64,
}

/// Backs up the deployment `config` describes into a new file `output`:
/// everything (SQLite metadata), or with `results_only` the results and
/// keys of a deployment whose metadata is in PostgreSQL.
///
/// # Errors
/// [`BackupError::Refused`] when `output` exists or `results_only` does
/// not match the metadata's kind; store and file errors otherwise.
pub async fn backup(
    config: &DeploymentConfig,
    output: &Path,
    results_only: bool,
) -> Result<BackupReport, BackupError> {
    config.check()?;
    refuse_object_store(config)?;
    let metadata = if config.shares_metadata() {
        MetadataCopy::Separate
    } else {
        MetadataCopy::Sqlite
    };
    match (metadata, results_only) {
        (MetadataCopy::Separate, false) => {
            return Err(BackupError::Refused(
                "the metadata is in PostgreSQL: back it up with `pg_dump -Fc`, then the results and keys with `loupe-server backup --results-only`".into(),
            ));
        }
        (MetadataCopy::Sqlite, true) => {
            return Err(BackupError::Refused(
                "the metadata is in SQLite and belongs in the archive with its results: leave out --results-only".into(),
            ));
        }
        _ => {}
    }
    if output.exists() {
        return Err(BackupError::Refused(format!(
            "{} exists; name a new file for the backup",
            output.display()
        )));
    }
    if metadata == MetadataCopy::Sqlite {
        let file = sqlite_file(config)?;
        if !file.is_file() {
            return Err(BackupError::Refused(format!(
                "no metadata database at {}: is data_dir (or metadata_url) the server's?",
                file.display()
            )));
        }
    }
    let store = MetadataStore::connect(&config.metadata_url()).await?;
    let made = snapshot_and_archive(&store, config, metadata, output).await;
    store.close().await;
    made
}

async fn snapshot_and_archive(
    store: &MetadataStore,
    config: &DeploymentConfig,
    metadata: MetadataCopy,
    output: &Path,
) -> Result<BackupReport, BackupError> {
    let results_dir = config.results_dir();
    if !results_dir.is_dir() {
        return Err(BackupError::Refused(format!(
            "no result directory at {}: is data_dir (or results_dir) the server's?",
            results_dir.display()
        )));
    }
    for attempt in 1..=ATTEMPTS {
        let staging = Staging::create(&results_dir, ".backup")?;
        let taken_at = now_micros();
        let (referenced, schema_version) = match metadata {
            MetadataCopy::Sqlite => {
                let snapshot = staging.path.join("loupe.db");
                let target = snapshot.to_str().ok_or_else(|| {
                    BackupError::Refused(format!("{} is not valid UTF-8", snapshot.display()))
                })?;
                // A consistent copy while others write: SQLite reads one
                // transaction's view into a new file.
                sqlx::query("VACUUM INTO $1")
                    .bind(target.to_owned())
                    .execute(store.pool())
                    .await
                    .map_err(db_error)?;
                read_snapshot(&snapshot).await?
            }
            MetadataCopy::Separate => {
                let status = store.schema_status().await?;
                (referenced_results(store).await?, status.version())
            }
        };
        let linked = {
            let (results_dir, staged) = (results_dir.clone(), staging.path.join("results"));
            blocking(move || link_results(&results_dir, &staged, &referenced)).await??
        };
        if !linked.missing.is_empty() {
            tracing::info!(
                attempt,
                missing = linked.missing.len(),
                "results were deleted since the snapshot; taking a new one"
            );
            continue;
        }
        let mut entries = Vec::new();
        if metadata == MetadataCopy::Sqlite {
            entries.push((METADATA_FILE.to_owned(), staging.path.join("loupe.db")));
        }
        for id in &linked.staged {
            entries.push((
                format!("results/{id}.parquet"),
                staging.path.join("results").join(format!("{id}.parquet")),
            ));
        }
        for name in KEY_FILES {
            let path = config.data_dir.join(name);
            if path.is_file() {
                entries.push((format!("keys/{name}"), path));
            }
        }
        let manifest = Manifest {
            format: FORMAT.to_owned(),
            format_version: FORMAT_VERSION,
            taken_at,
            loupe_version: env!("CARGO_PKG_VERSION").to_owned(),
            schema_version,
            metadata,
            files: Vec::new(),
            keys_elsewhere: keys_elsewhere(config),
        };
        let output = output.to_path_buf();
        let (manifest, archive_bytes) =
            blocking(move || write_archive(&output, entries, manifest)).await??;
        drop(staging);
        return Ok(BackupReport {
            manifest,
            archive_bytes,
            results: linked.staged.len(),
            attempts: attempt,
        });
    }
    Err(BackupError::Busy(format!(
        "results the metadata points at were deleted during each of {ATTEMPTS} snapshots; \
         retention or deletions are running hard: try again, or pause retention for the backup"
    )))
}

/// The results a SQLite snapshot's runs point at, and its schema version.
async fn read_snapshot(path: &Path) -> Result<(BTreeSet<ResultId>, i64), BackupError> {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .map_err(db_error)?;
    let (tables,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('_sqlx_migrations', 'runs')",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(db_error)?;
    if tables < 2 {
        return Err(BackupError::Refused(
            "the metadata database has no schema yet: start the server (or run `loupe-server migrate`) first".into(),
        ));
    }
    let (version,): (Option<i64>,) =
        sqlx::query_as("SELECT max(version) FROM _sqlx_migrations WHERE success = true")
            .fetch_one(&mut conn)
            .await
            .map_err(db_error)?;
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT result_location FROM runs WHERE result_location IS NOT NULL",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(db_error)?;
    drop(conn);
    Ok((parse_ids(rows)?, version.unwrap_or(0)))
}

/// The results the runs of a live store point at.
async fn referenced_results(store: &MetadataStore) -> Result<BTreeSet<ResultId>, BackupError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT result_location FROM runs WHERE result_location IS NOT NULL",
    )
    .fetch_all(store.pool())
    .await
    .map_err(db_error)?;
    parse_ids(rows)
}

fn parse_ids(rows: Vec<(String,)>) -> Result<BTreeSet<ResultId>, BackupError> {
    rows.into_iter()
        .map(|(location,)| ResultId::parse(&location).map_err(BackupError::from))
        .collect()
}

/// The results staged for the archive, and those already gone.
struct Linked {
    staged: Vec<ResultId>,
    missing: Vec<ResultId>,
}

/// Hard-links each result into `staged` (copies it where links do not
/// work), so that a deletion from now on does not take it out of the
/// backup.
fn link_results(
    results_dir: &Path,
    staged: &Path,
    ids: &BTreeSet<ResultId>,
) -> Result<Linked, BackupError> {
    make_private_dir(staged)?;
    let mut linked = Linked {
        staged: Vec::new(),
        missing: Vec::new(),
    };
    for id in ids {
        let name = format!("{id}.parquet");
        let (from, to) = (results_dir.join(&name), staged.join(&name));
        let done = match fs::hard_link(&from, &to) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => fs::copy(&from, &to).map(|_| ()),
            other => other,
        };
        match done {
            Ok(()) => linked.staged.push(id.clone()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => linked.missing.push(id.clone()),
            Err(e) => return Err(io_error(format!("staging {}", from.display()))(e)),
        }
    }
    Ok(linked)
}

/// Writes `entries` and then the manifest into `output`, through a
/// partial file renamed at the end: an interrupted backup leaves no file
/// that looks whole.
fn write_archive(
    output: &Path,
    entries: Vec<(String, PathBuf)>,
    mut manifest: Manifest,
) -> Result<(Manifest, u64), BackupError> {
    let partial = PathBuf::from(format!("{}.partial", output.display()));
    let file = new_private_file(&partial)?;
    let written = (|| {
        let mut archive = tar::Builder::new(BufWriter::new(file));
        let mtime = u64::try_from(manifest.taken_at / 1_000_000).unwrap_or(0);
        for (name, path) in entries {
            let source =
                File::open(&path).map_err(io_error(format!("reading {}", path.display())))?;
            let bytes = source
                .metadata()
                .map_err(io_error(format!("reading {}", path.display())))?
                .len();
            let mut reader = Hashing::new(source.take(bytes));
            archive
                .append_data(&mut header(bytes, mtime), &name, &mut reader)
                .map_err(io_error(format!("writing {name} to {}", partial.display())))?;
            let (read, sha256) = reader.finish();
            if read != bytes {
                return Err(BackupError::Refused(format!(
                    "{} changed while it was archived; take the backup again",
                    path.display()
                )));
            }
            manifest.files.push(ManifestFile {
                path: name,
                bytes,
                sha256,
            });
        }
        let text = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| io_error("encoding the manifest")(io::Error::other(e)))?;
        let len = u64::try_from(text.len()).unwrap_or(u64::MAX);
        archive
            .append_data(&mut header(len, mtime), MANIFEST, text.as_slice())
            .map_err(io_error(format!("writing {}", partial.display())))?;
        let file = archive
            .into_inner()
            .and_then(|w| w.into_inner().map_err(io::IntoInnerError::into_error))
            .map_err(io_error(format!("writing {}", partial.display())))?;
        file.sync_all()
            .map_err(io_error(format!("writing {}", partial.display())))?;
        let size = file
            .metadata()
            .map_err(io_error(format!("reading {}", partial.display())))?
            .len();
        Ok(size)
    })();
    match written {
        Ok(size) => {
            fs::rename(&partial, output)
                .map_err(io_error(format!("renaming {}", partial.display())))?;
            Ok((manifest, size))
        }
        Err(e) => {
            let _ = fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn header(bytes: u64, mtime: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(bytes);
    header.set_mode(0o600);
    header.set_mtime(mtime);
    header
}

/// Restores the archive `input` into the deployment `config` describes:
/// its data directory (and results directory, and SQLite file, where they
/// are elsewhere) must be empty or not exist. With PostgreSQL metadata the
/// dump must have been restored first (`pg_restore`).
///
/// # Errors
/// [`BackupError::Refused`] for a target that is not empty or metadata of
/// the other kind; [`BackupError::Damaged`] naming the first file whose
/// checksum does not match, or what is missing.
pub async fn restore(
    config: &DeploymentConfig,
    input: &Path,
) -> Result<RestoreReport, BackupError> {
    config.check()?;
    refuse_object_store(config)?;
    let separate = config.shares_metadata();
    let results_dir = config.results_dir();
    let sqlite = match separate {
        true => None,
        false => Some(sqlite_file(config)?),
    };
    require_empty(&config.data_dir)?;
    require_empty(&results_dir)?;
    if let Some(file) = &sqlite
        && file.exists()
    {
        return Err(BackupError::Refused(format!(
            "{} exists: restore into a deployment without metadata",
            file.display()
        )));
    }
    if !input.is_file() {
        return Err(BackupError::Refused(format!(
            "{} is not a file",
            input.display()
        )));
    }
    make_private_dir(&config.data_dir)?;
    let staging = Staging::create(&config.data_dir, ".restore")?;
    let manifest = {
        let (input, staged) = (input.to_path_buf(), staging.path.clone());
        blocking(move || unpack(&input, &staged)).await??
    };
    let known = known_migrations().last().map_or(0, |m| m.version);
    if manifest.schema_version > known {
        return Err(BackupError::Refused(format!(
            "the backup's metadata schema is at version {}, newer than this build of Loupe knows (version {known}): restore it with the release that made it ({})",
            manifest.schema_version, manifest.loupe_version
        )));
    }
    let archived: BTreeSet<ResultId> = manifest
        .files
        .iter()
        .filter_map(|f| f.path.strip_prefix("results/"))
        .filter_map(|name| name.strip_suffix(".parquet"))
        .filter_map(|id| ResultId::parse(id).ok())
        .collect();
    let (referenced, dropped_runs) = match (manifest.metadata, sqlite) {
        (MetadataCopy::Sqlite, Some(file)) => {
            let (referenced, _) = read_snapshot(&staging.path.join(METADATA_FILE)).await?;
            if let Some(missing) = referenced.difference(&archived).next() {
                return Err(BackupError::Damaged(format!(
                    "the archive's metadata points at result {missing}, which the archive does not hold"
                )));
            }
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                make_private_dir(dir)?;
            }
            move_private(&staging.path.join(METADATA_FILE), &file)?;
            (referenced, 0)
        }
        (MetadataCopy::Separate, None) => {
            let store = MetadataStore::connect(&config.metadata_url()).await?;
            let outcome = adopt_dump(&store, &manifest, &archived).await;
            store.close().await;
            outcome?
        }
        (MetadataCopy::Sqlite, None) => {
            return Err(BackupError::Refused(
                "this archive holds SQLite metadata and metadata_url names PostgreSQL: restore it without a postgres metadata_url".into(),
            ));
        }
        (MetadataCopy::Separate, Some(_)) => {
            return Err(BackupError::Refused(
                "this archive holds results and keys only (--results-only): restore the metadata dump with pg_restore and set metadata_url to that database".into(),
            ));
        }
    };
    make_private_dir(&results_dir)?;
    let mut results = 0;
    for id in referenced.intersection(&archived) {
        let name = format!("{id}.parquet");
        move_private(
            &staging.path.join("results").join(&name),
            &results_dir.join(&name),
        )?;
        results += 1;
    }
    let mut keys = 0;
    for name in KEY_FILES {
        let staged = staging.path.join("keys").join(name);
        if staged.is_file() {
            move_private(&staged, &config.data_dir.join(name))?;
            keys += 1;
        }
    }
    drop(staging);
    Ok(RestoreReport {
        manifest,
        results,
        keys,
        dropped_runs,
    })
}

/// Checks restored PostgreSQL metadata against a results-only archive and
/// drops the runs whose results were deleted after the dump. Returns the
/// results to restore and the runs dropped.
async fn adopt_dump(
    store: &MetadataStore,
    manifest: &Manifest,
    archived: &BTreeSet<ResultId>,
) -> Result<(BTreeSet<ResultId>, u64), BackupError> {
    let status = store.schema_status().await?;
    if status.version() == 0 {
        return Err(BackupError::Refused(
            "the metadata database is empty: restore the dump into it with pg_restore first".into(),
        ));
    }
    status.refuse_unusable()?;
    let referenced = referenced_results(store).await?;
    let missing: Vec<&ResultId> = referenced.difference(archived).collect();
    if missing.is_empty() {
        return Ok((referenced, 0));
    }
    // A result deleted after the dump went with its run; a run that
    // finished after this archive was taken means the dump is the newer
    // of the two, and dropping its runs would lose real results.
    let mut tx = store.write().await?;
    let mut dropped = 0;
    for id in &missing {
        let (later,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM runs WHERE result_location = $1 AND finished_at > $2",
        )
        .bind(id.to_string())
        .bind(manifest.taken_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        if later > 0 {
            return Err(BackupError::Refused(format!(
                "the metadata has runs that finished after this results backup was taken (result {id}): \
                 the dump is newer than the archive; take the results backup after pg_dump, not before"
            )));
        }
        dropped += sqlx::query("DELETE FROM runs WHERE result_location = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
    }
    tx.commit().await.map_err(db_error)?;
    let kept = referenced.intersection(archived).cloned().collect();
    Ok((kept, dropped))
}

/// Unpacks `input` into `staged`, accepting only the names a backup
/// writes, and checks every file against the manifest.
fn unpack(input: &Path, staged: &Path) -> Result<Manifest, BackupError> {
    let reading = |e| io_error(format!("reading {}", input.display()))(e);
    let file = File::open(input).map_err(reading)?;
    let mut archive = tar::Archive::new(BufReader::new(file));
    let mut seen: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut manifest: Option<Manifest> = None;
    for entry in archive.entries().map_err(reading)? {
        let mut entry = entry.map_err(reading)?;
        let name = entry
            .path()
            .map_err(reading)?
            .to_str()
            .map(str::to_owned)
            .ok_or_else(|| {
                BackupError::Damaged("a file name in the archive is not UTF-8".into())
            })?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(BackupError::Damaged(format!(
                "{name} in the archive is not a regular file; this is not a Loupe backup"
            )));
        }
        if name == MANIFEST {
            let mut text = Vec::new();
            entry
                .by_ref()
                .take(16 * 1024 * 1024)
                .read_to_end(&mut text)
                .map_err(reading)?;
            let parsed: Manifest = serde_json::from_slice(&text).map_err(|e| {
                BackupError::Damaged(format!("{MANIFEST} in the archive cannot be read: {e}"))
            })?;
            manifest = Some(parsed);
            continue;
        }
        let target = staged_path(staged, &name)?;
        if seen.contains_key(&name) {
            return Err(BackupError::Damaged(format!(
                "{name} is twice in the archive"
            )));
        }
        if let Some(dir) = target.parent() {
            make_private_dir(dir)?;
        }
        let mut out = Hashing::new(BufWriter::new(new_private_file(&target)?));
        io::copy(&mut entry, &mut out).map_err(reading)?;
        out.inner
            .flush()
            .map_err(io_error(format!("writing {}", target.display())))?;
        seen.insert(name, out.finish());
    }
    let manifest = manifest.ok_or_else(|| {
        BackupError::Damaged(format!(
            "{} has no {MANIFEST}: the archive is incomplete (was the backup interrupted?)",
            input.display()
        ))
    })?;
    if manifest.format != FORMAT || manifest.format_version > FORMAT_VERSION {
        return Err(BackupError::Damaged(format!(
            "{} is not a Loupe backup this release reads (format {:?}, version {})",
            input.display(),
            manifest.format,
            manifest.format_version
        )));
    }
    for file in &manifest.files {
        match seen.remove(&file.path) {
            None => {
                return Err(BackupError::Damaged(format!(
                    "{} is listed in the manifest and missing from the archive",
                    file.path
                )));
            }
            Some((bytes, sha256)) if bytes != file.bytes || sha256 != file.sha256 => {
                return Err(BackupError::Damaged(format!(
                    "{} does not match its SHA-256 checksum in the manifest: the archive is damaged; restore another backup",
                    file.path
                )));
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = seen.keys().next() {
        return Err(BackupError::Damaged(format!(
            "{extra} is in the archive but not in its manifest"
        )));
    }
    Ok(manifest)
}

/// Where an archive entry is unpacked: only the names a backup writes.
fn staged_path(staged: &Path, name: &str) -> Result<PathBuf, BackupError> {
    let allowed = name == METADATA_FILE
        || KEY_FILES
            .iter()
            .any(|k| name.strip_prefix("keys/") == Some(*k))
        || name
            .strip_prefix("results/")
            .and_then(|n| n.strip_suffix(".parquet"))
            .is_some_and(|id| ResultId::parse(id).is_ok_and(|parsed| parsed.as_str() == id));
    if !allowed {
        return Err(BackupError::Damaged(format!(
            "{name} in the archive is not a file a Loupe backup holds"
        )));
    }
    Ok(staged.join(name))
}

/// The SQLite file of the metadata: the configured `sqlite:` URL's, or
/// `loupe.db` in the data directory.
fn sqlite_file(config: &DeploymentConfig) -> Result<PathBuf, BackupError> {
    let Some(url) = &config.metadata_url else {
        return Ok(config.data_dir.join("loupe.db"));
    };
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path.contains(":memory:") {
        return Err(BackupError::Refused(format!(
            "metadata_url {url} is not a SQLite file"
        )));
    }
    Ok(PathBuf::from(path))
}

/// Configured keys that live outside the data directory, by key name.
fn keys_elsewhere(config: &DeploymentConfig) -> Vec<String> {
    let mut elsewhere = Vec::new();
    let inline = [
        ("secret_key", config.secret_key.is_some()),
        ("signing_secret", config.signing_secret.is_some()),
        (
            "previous_secret_keys",
            !config.previous_secret_keys.is_empty(),
        ),
    ];
    for (key, set) in inline {
        if set {
            elsewhere.push(format!("{key} (in the configuration)"));
        }
    }
    let files = config
        .secret_key_file
        .iter()
        .map(|f| ("secret_key_file", f))
        .chain(
            config
                .signing_secret_file
                .iter()
                .map(|f| ("signing_secret_file", f)),
        )
        .chain(
            config
                .previous_secret_key_files
                .iter()
                .map(|f| ("previous_secret_key_files", f)),
        );
    for (key, file) in files {
        elsewhere.push(format!("{key} ({})", file.display()));
    }
    elsewhere
}

/// Refuses a directory that has anything in it; one that does not exist
/// is fine.
fn require_empty(dir: &Path) -> Result<(), BackupError> {
    match fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(BackupError::Refused(format!(
                "{} is not empty: restore into an empty or new directory",
                dir.display()
            ))),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(format!("reading {}", dir.display()))(e)),
    }
}

/// A directory of the backup's or restore's own, removed when dropped.
struct Staging {
    path: PathBuf,
}

impl Staging {
    fn create(parent: &Path, prefix: &str) -> Result<Self, BackupError> {
        let path = parent.join(format!("{prefix}-{}", uuid::Uuid::now_v7().simple()));
        make_private_dir(&path)?;
        Ok(Self { path })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.path) {
            tracing::warn!(dir = %self.path.display(), error = %e, "could not remove a staging directory");
        }
    }
}

/// Creates `dir` and its parents readable by the owner only, and makes
/// `dir` itself so if it existed.
fn make_private_dir(dir: &Path) -> Result<(), BackupError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(io_error(format!("creating {}", dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(io_error(format!("restricting {}", dir.display())))?;
    }
    Ok(())
}

/// A new file readable and writable by the owner only.
fn new_private_file(path: &Path) -> Result<File, BackupError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map_err(io_error(format!("creating {}", path.display())))
}

/// Moves a staged file to `to` (copying across file systems), readable by
/// the owner only.
fn move_private(from: &Path, to: &Path) -> Result<(), BackupError> {
    if fs::rename(from, to).is_err() {
        let mut source =
            File::open(from).map_err(io_error(format!("reading {}", from.display())))?;
        let mut target = new_private_file(to)?;
        io::copy(&mut source, &mut target)
            .and_then(|_| target.sync_all())
            .map_err(io_error(format!("writing {}", to.display())))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(to, fs::Permissions::from_mode(0o600))
            .map_err(io_error(format!("restricting {}", to.display())))?;
    }
    Ok(())
}

/// A reader or writer that counts and hashes what passes through.
struct Hashing<T> {
    inner: T,
    hash: Sha256,
    bytes: u64,
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Self {
        Self {
            inner,
            hash: Sha256::new(),
            bytes: 0,
        }
    }

    /// Bytes seen and their SHA-256 in lowercase hex.
    fn finish(self) -> (u64, String) {
        let digest = self.hash.finalize();
        let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
        (self.bytes, hex)
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Runs file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BackupError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BackupError::Io {
            what: "a file task stopped".into(),
            source: io::Error::other(e),
        })
}

#[cfg(test)]
mod tests {

    /// Results in S3 are not archived: backup and restore refuse with
    /// what to do instead, rather than an archive that points at results
    /// it does not hold.
    #[tokio::test]
    async fn results_in_an_object_store_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let config = DeploymentConfig {
            data_dir: dir.path().to_owned(),
            metadata_url: Some("postgres://loupe@db/loupe".to_owned()),
            results_url: Some("s3://loupe-results/prod".to_owned()),
            ..DeploymentConfig::default()
        };
        let out = dir.path().join("backup.tar");
        let refused = backup(&config, &out, true).await.unwrap_err().to_string();
        assert!(
            refused.contains("object store (s3://loupe-results/prod)"),
            "{refused}"
        );
        let refused = restore(&config, &out).await.unwrap_err().to_string();
        assert!(refused.contains("versioning or replication"), "{refused}");
        assert!(!out.exists());
    }

    use super::*;

    #[test]
    fn only_the_names_a_backup_writes_are_unpacked() {
        let staged = Path::new("/staging");
        let id = ResultId::generate();
        for good in [
            METADATA_FILE.to_owned(),
            "keys/secret.key".to_owned(),
            format!("results/{id}.parquet"),
        ] {
            assert!(staged_path(staged, &good).is_ok(), "{good}");
        }
        for bad in [
            "../etc/passwd",
            "results/../../x.parquet",
            "keys/other.key",
            "metadata/loupe.db-wal",
            "/abs/path",
            "results/not.an.id.parquet",
            "results/.parquet",
        ] {
            assert!(
                matches!(staged_path(staged, bad), Err(BackupError::Damaged(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn sqlite_urls_name_their_file() {
        let mut config = DeploymentConfig {
            data_dir: PathBuf::from("/srv/loupe"),
            ..DeploymentConfig::default()
        };
        assert_eq!(
            sqlite_file(&config).unwrap(),
            Path::new("/srv/loupe/loupe.db")
        );
        config.metadata_url = Some("sqlite:///var/lib/loupe/meta.db?mode=rwc".into());
        assert_eq!(
            sqlite_file(&config).unwrap(),
            Path::new("/var/lib/loupe/meta.db")
        );
        config.metadata_url = Some("sqlite::memory:".into());
        assert!(sqlite_file(&config).is_err());
    }
}
