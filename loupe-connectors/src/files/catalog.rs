//! Tables of a files root: discovery, and a DataFusion schema provider that
//! builds a table only when a query names it.
//!
//! Each data file directly in the root is a table named after the file
//! (`orders.parquet` -> `orders`); each folder whose files all share one
//! format is a table named after the folder. Names starting with `.` or `_`
//! are skipped. An entry that resolves outside the root (a symlink), mixes
//! formats, or shares its name with another entry is listed as refused, with
//! the reason, and cannot be queried.

use loupe_core::codes;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::arrow::ArrowFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::SessionState;
use loupe_core::Error;
use url::Url;

use super::FilesConfig;
use super::confined::ROOT_URL;

/// Folder depth searched when checking a folder table's files.
const MAX_DEPTH: usize = 8;

/// A file format the files datasource reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Format {
    Csv,
    Parquet,
    Ndjson,
    Arrow,
}

impl Format {
    fn from_extension(ext: &str) -> Option<Self> {
        Some(match ext.to_ascii_lowercase().as_str() {
            "csv" => Self::Csv,
            "parquet" => Self::Parquet,
            "json" | "ndjson" | "jsonl" => Self::Ndjson,
            "arrow" | "ipc" | "feather" => Self::Arrow,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Parquet => "parquet",
            Self::Ndjson => "ndjson",
            Self::Arrow => "arrow",
        }
    }
}

/// One table candidate found in the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The table name.
    pub(crate) name: String,
    /// Path relative to the root.
    pub(crate) relative: PathBuf,
    /// True for a folder of files.
    pub(crate) is_dir: bool,
    /// The data format and the extension its files carry.
    pub(crate) format: Option<(Format, String)>,
    /// Why the entry cannot be queried.
    pub(crate) refused: Option<String>,
    /// For caching inferred schemas of single files.
    modified: Option<FileStamp>,
}

/// Lists the table candidates in `root` (canonical), sorted by name.
pub(crate) fn discover(root: &Path) -> Result<BTreeMap<String, Entry>, Error> {
    let read = std::fs::read_dir(root).map_err(|e| unreadable(root, e))?;
    let mut found: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    for item in read {
        let item = item.map_err(|e| unreadable(root, e))?;
        let file_name = item.file_name();
        let Some(name) = file_name.to_str() else {
            continue;
        };
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let path = item.path();
        let relative = PathBuf::from(name);
        let entry = match std::fs::canonicalize(&path) {
            Err(_) => continue, // a dangling symlink: nothing to read
            Ok(real) if !real.starts_with(root) => {
                let table = table_name(name, real.is_dir());
                Entry {
                    name: table,
                    relative,
                    is_dir: real.is_dir(),
                    format: None,
                    refused: Some(format!(
                        "{name} is a link to a place outside the datasource's root"
                    )),
                    modified: None,
                }
            }
            Ok(real) if real.is_dir() => folder_entry(root, name, &real),
            Ok(real) if real.is_file() => {
                let Some(format) = extension_format(&real) else {
                    continue;
                };
                let modified = std::fs::metadata(&real)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())));
                Entry {
                    name: table_name(name, false),
                    relative,
                    is_dir: false,
                    format: Some(format),
                    refused: None,
                    modified,
                }
            }
            Ok(_) => continue,
        };
        found.entry(entry.name.clone()).or_default().push(entry);
    }
    let mut tables = BTreeMap::new();
    for (name, mut entries) in found {
        let mut entry = entries.remove(0);
        if !entries.is_empty() {
            let mut files: Vec<String> = entries
                .iter()
                .map(|e| e.relative.display().to_string())
                .collect();
            files.push(entry.relative.display().to_string());
            files.sort();
            entry.refused = Some(format!(
                "{} all make a table named {name:?}; rename all but one",
                files.join(" and ")
            ));
        }
        tables.insert(name, entry);
    }
    Ok(tables)
}

fn unreadable(root: &Path, e: std::io::Error) -> Error {
    Error::Unavailable {
        code: codes::FILES_UNREADABLE,
        message: format!("cannot read the datasource's root {}", root.display()),
        source: Some(Box::new(e)),
    }
}

fn table_name(file_name: &str, is_dir: bool) -> String {
    if is_dir {
        return file_name.to_owned();
    }
    match file_name.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem.to_owned(),
        _ => file_name.to_owned(),
    }
}

fn extension_format(path: &Path) -> Option<(Format, String)> {
    let ext = path.extension()?.to_str()?;
    Some((Format::from_extension(ext)?, ext.to_owned()))
}

/// A folder is a table when every data file in it (at any depth) has the
/// same format and extension, and nothing in it leaves the root.
fn folder_entry(root: &Path, name: &str, real: &Path) -> Entry {
    let mut entry = Entry {
        name: name.to_owned(),
        relative: PathBuf::from(name),
        is_dir: true,
        format: None,
        refused: None,
        modified: None,
    };
    let mut formats: Vec<(Format, String)> = Vec::new();
    if let Err(reason) = walk(root, real, 0, &mut formats) {
        entry.refused = Some(format!("{name}/{reason}"));
        return entry;
    }
    formats.sort();
    formats.dedup();
    match formats.as_slice() {
        [] => {
            entry.refused = Some(format!(
                "{name}/ holds no csv, parquet, ndjson or arrow files"
            ))
        }
        [one] => entry.format = Some(one.clone()),
        many => {
            let exts: Vec<String> = many.iter().map(|(_, e)| format!(".{e}")).collect();
            entry.refused = Some(format!(
                "{name}/ mixes {}; a folder table needs files of one kind",
                exts.join(", ")
            ));
        }
    }
    entry
}

fn walk(
    root: &Path,
    dir: &Path,
    depth: usize,
    formats: &mut Vec<(Format, String)>,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!(" nests folders deeper than {MAX_DEPTH} levels"));
    }
    let read = std::fs::read_dir(dir).map_err(|e| format!(" cannot be read: {e}"))?;
    for item in read.flatten() {
        let file_name = item.file_name();
        let name = file_name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let Ok(real) = std::fs::canonicalize(item.path()) else {
            continue;
        };
        if !real.starts_with(root) {
            return Err(format!(
                " holds {name}, a link to a place outside the datasource's root"
            ));
        }
        if real.is_dir() {
            walk(root, &real, depth + 1, formats)?;
        } else if let Some(format) = extension_format(&real)
            && !formats.contains(&format)
        {
            formats.push(format);
        }
    }
    Ok(())
}

/// A file's modification time and size: when both are unchanged, so is its
/// inferred schema.
type FileStamp = (SystemTime, u64);

/// The `public` schema of a files datasource: tables are discovered when a
/// query names them.
#[derive(Debug)]
pub(crate) struct RootSchema {
    root: PathBuf,
    config: FilesConfig,
    /// A session used only to infer schemas; it shares the confined runtime.
    inference: SessionState,
    /// Inferred schemas of single files, by name, valid while the file's
    /// modification time and size stay the same.
    schemas: Mutex<HashMap<String, (FileStamp, SchemaRef)>>,
}

impl RootSchema {
    pub(crate) fn new(root: PathBuf, config: FilesConfig, inference: SessionState) -> Self {
        Self {
            root,
            config,
            inference,
            schemas: Mutex::default(),
        }
    }

    /// The entry for table `name`, or an error that says why there is none.
    pub(crate) fn check(&self, name: &str) -> Result<Entry, Error> {
        check_table_name(name)?;
        let mut tables = discover(&self.root)?;
        let suggestion = available(&tables);
        let Some(entry) = tables.remove(name) else {
            return Err(Error::NotFound {
                what: "table",
                name: name.to_owned(),
                suggestion,
            });
        };
        if let Some(reason) = &entry.refused {
            return Err(Error::refused(
                codes::FILES_REFUSED_ENTRY,
                format!("table {name:?} cannot be read: {reason}"),
            ));
        }
        Ok(entry)
    }

    /// The table for `name`, or an error that says why there is none.
    pub(crate) async fn open(&self, name: &str) -> Result<Arc<dyn TableProvider>, Error> {
        let entry = self.check(name)?;
        let entry = &entry;
        let Some((format, ext)) = &entry.format else {
            return Err(Error::internal(format!("table {name:?} has no format")));
        };
        let url = table_url(entry)?;
        let options =
            ListingOptions::new(self.file_format(*format)).with_file_extension(format!(".{ext}"));
        let config = ListingTableConfig::new(url).with_listing_options(options);
        let schema = match self.cached_schema(entry) {
            Some(schema) => schema,
            None => {
                let inferred = config
                    .clone()
                    .infer_schema(&self.inference)
                    .await
                    .map_err(super::df_error)?;
                let schema = inferred
                    .file_schema
                    .clone()
                    .ok_or_else(|| Error::internal(format!("no schema inferred for {name:?}")))?;
                self.remember_schema(entry, schema.clone());
                schema
            }
        };
        let table = ListingTable::try_new(config.with_schema(schema)).map_err(super::df_error)?;
        Ok(Arc::new(table))
    }

    fn file_format(&self, format: Format) -> Arc<dyn FileFormat> {
        match format {
            Format::Csv => Arc::new(
                CsvFormat::default()
                    .with_has_header(self.config.csv_has_header)
                    .with_delimiter(self.config.csv_delimiter_byte()),
            ),
            Format::Parquet => Arc::new(ParquetFormat::default()),
            Format::Ndjson => Arc::new(JsonFormat::default()),
            Format::Arrow => Arc::new(ArrowFormat),
        }
    }

    fn cached_schema(&self, entry: &Entry) -> Option<SchemaRef> {
        let stamp = entry.modified?;
        let schemas = self.schemas.lock().unwrap_or_else(|p| p.into_inner());
        schemas
            .get(&entry.name)
            .filter(|(s, _)| *s == stamp)
            .map(|(_, schema)| schema.clone())
    }

    fn remember_schema(&self, entry: &Entry, schema: SchemaRef) {
        if let Some(stamp) = entry.modified {
            let mut schemas = self.schemas.lock().unwrap_or_else(|p| p.into_inner());
            schemas.insert(entry.name.clone(), (stamp, schema));
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }
}

/// Table names are file names in the root, never paths.
fn check_table_name(name: &str) -> Result<(), Error> {
    let looks_like_path = name.contains('/')
        || name.contains('\\')
        || name.contains('\0')
        || name.starts_with('.')
        || name.contains("..")
        || name.contains(':');
    if looks_like_path {
        return Err(Error::refused(
            codes::FILES_OUTSIDE_ROOT,
            format!(
                "{name:?} is a path, not a table; the files datasource reads only the tables under its root (list them with `loupe schema`)"
            ),
        ));
    }
    Ok(())
}

fn available(tables: &BTreeMap<String, Entry>) -> String {
    let names: Vec<&str> = tables
        .values()
        .filter(|e| e.refused.is_none())
        .map(|e| e.name.as_str())
        .collect();
    if names.is_empty() {
        "; the datasource's root has no tables".to_owned()
    } else {
        format!("; tables: {}", names.join(", "))
    }
}

fn table_url(entry: &Entry) -> Result<ListingTableUrl, Error> {
    let mut url = Url::parse(ROOT_URL).map_err(|e| Error::internal_from("root URL", e))?;
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|()| Error::internal("root URL cannot have a path"))?;
        segments.pop_if_empty();
        for part in entry.relative.iter() {
            segments.push(&part.to_string_lossy());
        }
        if entry.is_dir {
            // A trailing slash makes DataFusion list the folder.
            segments.push("");
        }
    }
    ListingTableUrl::parse(url.as_str()).map_err(|e| Error::internal_from("table URL", e))
}

#[async_trait]
impl SchemaProvider for RootSchema {
    fn table_names(&self) -> Vec<String> {
        discover(&self.root)
            .map(|t| {
                t.into_values()
                    .filter(|e| e.refused.is_none())
                    .map(|e| e.name)
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        match self.open(name).await {
            Ok(table) => Ok(Some(table)),
            // Unknown names may be table functions; DataFusion looks next.
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(DataFusionError::External(Box::new(e))),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        check_table_name(name).is_ok()
            && discover(&self.root).is_ok_and(|t| t.get(name).is_some_and(|e| e.refused.is_none()))
    }
}
