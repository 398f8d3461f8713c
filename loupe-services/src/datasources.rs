//! Datasources: configuration, secrets encrypted at rest, pausing, and the
//! live [`Datasource`] values the runner uses (cached per revision, so that
//! their connection pools live on).
//!
//! Secret options (those a connector marks secret) are never returned by a
//! read: their names are listed, their values replaced by [`SECRET_MASK`].
//! An update changes a secret only when it gives a new value; the mask or
//! leaving it out keeps the stored one, unless the update changes where
//! the datasource connects ([`is_connection_target`]): then the stored
//! secrets are dropped and only those the same update gives are kept, so
//! that nobody who may edit a datasource can send its password elsewhere.

use loupe_core::codes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use sqlx::any::AnyRow;

use super::actor::{Access, Actor, Role};
use super::audit::{self, Entry};
use super::crypto::{SEAL_FORMAT, Sealed};
use super::groups::{self, visible_datasources};
use super::runs;
use super::validate::{Validator, validate};
use crate::meta::{Filter, ListPage, ListRequest, ListSpec, db_error, new_id, now_micros};
use crate::meta::{check_revision, col, fetch_in_org, fetch_one, flag, json, require_unused};
use crate::meta::{taken, to_json};
use crate::services::Shared;
use loupe_core::{CatalogInfo, Datasource, DatasourceOptions, OptionSpec};
use loupe_core::{Error, Result};

/// What a read shows in place of a secret option's value.
pub const SECRET_MASK: &str = "********";

/// Whether option `name` says where (or as whom) a datasource of kind
/// `specs` connects: every option but those its connector marks as only
/// tuning (`OptionSpec::tuning`: pool, timeouts, batches), and any option
/// the connector does not list, so an option added later (a tunnel, say)
/// is safe until its connector says otherwise. A change of it drops the
/// stored secrets.
fn is_connection_target(specs: &[OptionSpec], name: &str) -> bool {
    specs
        .iter()
        .find(|s| s.name == name)
        .is_none_or(|s| !s.tuning)
}

/// Whether `after` connects somewhere other than `before` (plain options of
/// a datasource of kind `specs`): a connection target differs, an option
/// left out counting as its default.
fn target_changed(
    specs: &[OptionSpec],
    before: &DatasourceOptions,
    after: &DatasourceOptions,
) -> bool {
    let effective = |options: &DatasourceOptions, name: &str| -> Option<String> {
        match options.get(name) {
            None | Some(serde_json::Value::Null) => specs
                .iter()
                .find(|s| s.name == name)
                .and_then(|s| s.default)
                .map(str::to_owned),
            // `5432` and `"5432"` name the same port.
            Some(serde_json::Value::String(text)) => Some(text.clone()),
            Some(other) => Some(other.to_string()),
        }
    };
    before
        .keys()
        .chain(after.keys())
        .filter(|name| is_connection_target(specs, name))
        .any(|name| effective(before, name) != effective(after, name))
}

/// A datasource as stored, without its secrets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasourceRecord {
    /// Its id.
    pub id: String,
    /// Its name, unique in the organization.
    pub name: String,
    /// The connector kind.
    pub kind: String,
    /// Options; each secret one that is set shows as [`SECRET_MASK`].
    pub options: DatasourceOptions,
    /// Names of the secret options that are set.
    pub secret_options: Vec<String>,
    /// A paused datasource runs nothing (schedules skip it).
    pub paused: bool,
    /// Runs carry the caller's attributes as transaction settings
    /// (`loupe.user.<name>`) for the database's own row-level policies.
    pub user_settings: bool,
    /// The caller's access (`run` or `view`).
    pub access: Access,
    /// Increases with each change.
    pub revision: i64,
    /// When it was created (µs).
    pub created_at: i64,
    /// When it last changed (µs).
    pub updated_at: i64,
}

/// A key that signs the attributes a datasource passes on as settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingsKey {
    /// The key, hex; shown once.
    pub key: String,
    /// The SQL that installs it in the database and defines
    /// `loupe_rls.attribute(name)` for policies to call.
    pub setup_sql: String,
}

/// A new datasource.
#[derive(Debug, Clone)]
pub struct DatasourceInput {
    /// Name, unique in the organization.
    pub name: String,
    /// Connector kind, such as `postgres`.
    pub kind: String,
    /// All options, secret ones included.
    pub options: DatasourceOptions,
}

/// Changes to a datasource; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct DatasourceUpdate {
    /// New name.
    pub name: Option<String>,
    /// New options. A secret option left out or given as the mask keeps
    /// its stored value, unless a connection target (host, port, user,
    /// database, TLS, ...) changes: then only the secrets given here are
    /// kept. `null` removes a secret.
    pub options: Option<DatasourceOptions>,
    /// Pause or resume.
    pub paused: Option<bool>,
    /// Pass callers' attributes on as transaction settings, or stop.
    pub user_settings: Option<bool>,
}

/// Live datasources by id, with the revision they were built from.
#[derive(Default)]
pub(crate) struct Cache(Mutex<HashMap<String, Cached>>);

/// A live datasource and the revision of the configuration it was built from.
type Cached = (i64, Arc<dyn Datasource>);

impl Cache {
    fn get(&self, id: &str, revision: i64) -> Option<Arc<dyn Datasource>> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id)
            .filter(|(r, _)| *r == revision)
            .map(|(_, d)| d.clone())
    }

    fn put(&self, id: &str, revision: i64, datasource: Arc<dyn Datasource>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(id.to_owned(), (revision, datasource));
    }

    /// The datasources built in this process, by id (for pool metrics).
    pub(crate) fn live(&self) -> Vec<(String, Arc<dyn Datasource>)> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .map(|(id, (_, datasource))| (id.clone(), datasource.clone()))
            .collect()
    }

    fn forget(&self, id: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
    }
}

/// A datasource's row, by id.
const BY_ID: &str = "SELECT * FROM datasources WHERE id = $1";

pub(crate) const SPEC: ListSpec = ListSpec {
    from: "datasources d",
    alias: "d",
    sorts: &["name", "kind", "created_at", "updated_at"],
    default_sort: "name",
    filters: &[
        ("kind", Filter::Equals("d.kind")),
        ("paused", Filter::Flag("d.paused")),
        ("q", Filter::Contains("d.name")),
    ],
    created: None,
    updated: None,
};

/// Datasources.
#[derive(Debug, Clone)]
pub struct DatasourceService {
    shared: Arc<Shared>,
}

/// The stored row, with the secrets still sealed.
struct Stored {
    name: String,
    kind: String,
    options: DatasourceOptions,
    sealed: Option<Sealed>,
    paused: bool,
    user_settings: bool,
    /// Whether a settings key was made.
    settings_key: bool,
    revision: i64,
    created_at: i64,
    updated_at: i64,
}

fn stored(row: &AnyRow) -> Result<Stored> {
    let ciphertext: Option<Vec<u8>> = col(row, "secret_ciphertext")?;
    let sealed = match ciphertext {
        Some(ciphertext) => Some(Sealed {
            key_id: col::<Option<String>>(row, "secret_key_id")?.unwrap_or_default(),
            nonce: col::<Option<Vec<u8>>>(row, "secret_nonce")?.unwrap_or_default(),
            ciphertext,
        }),
        None => None,
    };
    Ok(Stored {
        name: col(row, "name")?,
        kind: col(row, "kind")?,
        options: json(row, "options")?,
        sealed,
        paused: flag(row, "paused")?,
        user_settings: flag(row, "user_settings")?,
        settings_key: col::<Option<String>>(row, "settings_key")?.is_some(),
        revision: col(row, "revision")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

impl DatasourceService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Splits options into plain and secret ones, by the connector's specs.
    fn split(
        &self,
        kind: &str,
        options: &DatasourceOptions,
    ) -> Result<(DatasourceOptions, DatasourceOptions)> {
        let factory = self.shared.registry.factory(kind)?;
        let mut plain = DatasourceOptions::new();
        let mut secret = DatasourceOptions::new();
        for (key, value) in options {
            let is_secret = factory.options().iter().any(|o| o.name == key && o.secret);
            if is_secret {
                secret.insert(key.clone(), value.clone());
            } else {
                plain.insert(key.clone(), value.clone());
            }
        }
        Ok((plain, secret))
    }

    fn seal(&self, id: &str, secret: &DatasourceOptions) -> Result<Option<Sealed>> {
        if secret.is_empty() {
            return Ok(None);
        }
        let keys = self.shared.config.secret_keys.as_ref().ok_or_else(|| {
            Error::config(
                "cannot store secret datasource options: no encryption key is configured (set LOUPE_SECRET_KEY to 32 random bytes in base64)",
            )
        })?;
        let plaintext =
            serde_json::to_vec(secret).map_err(|e| Error::internal_from("encode secrets", e))?;
        keys.seal(id.as_bytes(), &plaintext).map(Some)
    }

    fn open_secrets(&self, id: &str, sealed: &Option<Sealed>) -> Result<DatasourceOptions> {
        let Some(sealed) = sealed else {
            return Ok(DatasourceOptions::new());
        };
        let keys = self.shared.config.secret_keys.as_ref().ok_or_else(|| {
            Error::config("this datasource has secret options but no encryption key is configured (LOUPE_SECRET_KEY)")
        })?;
        let plaintext = keys.open(sealed, id.as_bytes())?;
        serde_json::from_slice(&plaintext).map_err(|e| Error::internal_from("decode secrets", e))
    }

    /// Checks options by building the datasource (builds do not connect).
    fn check_options(
        &self,
        kind: &str,
        options: &DatasourceOptions,
    ) -> Result<Arc<dyn Datasource>> {
        self.shared
            .registry
            .build(kind, options)
            .map_err(|e| match e {
                Error::Config { message } => {
                    Error::field("options", codes::field::INVALID, message)
                }
                Error::UnknownKind { .. } => {
                    Error::field("kind", codes::field::UNKNOWN, e.to_string())
                }
                other => other,
            })
    }

    async fn load(&self, actor: &Actor, id: &str) -> Result<Stored> {
        stored(&fetch_in_org(&self.shared.store, &actor.org_id, BY_ID, "datasource", id).await?)
    }

    fn record(&self, id: &str, stored: Stored, access: Access) -> Result<DatasourceRecord> {
        let mut options = stored.options;
        let mut secret_options = Vec::new();
        if let Some(sealed) = &stored.sealed {
            // Names only: the values stay sealed unless the key is here.
            if let Ok(secrets) = self.open_secrets(id, &Some(sealed.clone())) {
                secret_options = secrets.keys().cloned().collect();
            } else {
                secret_options.push("(sealed)".to_owned());
            }
        }
        for name in &secret_options {
            options.insert(name.clone(), SECRET_MASK.into());
        }
        Ok(DatasourceRecord {
            id: id.to_owned(),
            name: stored.name,
            kind: stored.kind,
            options,
            secret_options,
            paused: stored.paused,
            user_settings: stored.user_settings,
            access,
            revision: stored.revision,
            created_at: stored.created_at,
            updated_at: stored.updated_at,
        })
    }

    /// A datasource the actor may see (their groups have a grant, or they
    /// are an admin). Never shows secrets.
    pub async fn get(&self, actor: &Actor, id: &str) -> Result<DatasourceRecord> {
        let found = self.load(actor, id).await?;
        let access = groups::require_view(&self.shared, actor, id, hidden(id)).await?;
        self.record(id, found, access)
    }

    /// The datasources the actor may see.
    pub async fn list(
        &self,
        actor: &Actor,
        request: &ListRequest,
    ) -> Result<ListPage<DatasourceRecord>> {
        let mut rows = SPEC.org_rows(&actor.org_id);
        visible_datasources(&mut rows, actor, "d.id");
        let page = SPEC.page(&self.shared.store, rows, request).await?;
        // The caller's grants for the whole page in one statement.
        let ids = crate::meta::ids(&page.items)?;
        let access = groups::access_to_each(&self.shared, actor, &ids).await?;
        let items = page
            .items
            .iter()
            .zip(&ids)
            .map(|(row, id)| {
                let access = access.get(id).copied().unwrap_or(Access::View);
                self.record(id, stored(row)?, access)
            })
            .collect::<Result<_>>()?;
        Ok(page.with_items(items))
    }

    /// Adds a datasource. Admins only. The options are checked by building
    /// the datasource; secret options are sealed.
    pub async fn create(&self, actor: &Actor, input: DatasourceInput) -> Result<DatasourceRecord> {
        actor.require(Role::Admin, "adding datasources")?;
        let mut v = Validator::new();
        v.name("name", input.name.trim());
        if self.shared.registry.factory(&input.kind).is_err() {
            let enabled: Vec<&str> = self.shared.registry.kinds().collect();
            v.push(
                "kind",
                codes::field::UNKNOWN,
                format!(
                    "no connector for {:?}; enabled: {}",
                    input.kind,
                    enabled.join(", ")
                ),
            );
        }
        v.finish()?;
        let built = self.check_options(&input.kind, &input.options)?;
        refuse_privileged_role(&built).await?;
        let (plain, secret) = self.split(&input.kind, &input.options)?;
        let id = new_id();
        let sealed = self.seal(&id, &secret)?;
        let now = now_micros();
        let mut tx = self.shared.store.write().await?;
        sqlx::query(
            "INSERT INTO datasources (id, org_id, name, kind, options, secret_ciphertext, secret_nonce, secret_key_id, secret_format, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(id.clone())
        .bind(actor.org_id.clone())
        .bind(input.name.trim().to_owned())
        .bind(input.kind.clone())
        .bind(to_json(&plain)?)
        .bind(sealed.as_ref().map(|s| s.ciphertext.clone()))
        .bind(sealed.as_ref().map(|s| s.nonce.clone()))
        .bind(sealed.as_ref().map(|s| s.key_id.clone()))
        .bind(sealed.as_ref().map(|_| SEAL_FORMAT))
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(taken(
            "name",
            format!("a datasource named {:?} already exists", input.name.trim()),
        ))?;
        let detail = serde_json::json!({ "kind": input.kind });
        let entry = Entry::by(actor, "datasource.create", "datasource", &id).detail(detail);
        audit::record(&mut *tx, entry).await?;
        tx.commit().await.map_err(db_error)?;
        self.get(actor, &id).await
    }

    /// Changes a datasource if `revision` is still current. Admins only.
    pub async fn update(
        &self,
        actor: &Actor,
        id: &str,
        revision: i64,
        change: DatasourceUpdate,
    ) -> Result<DatasourceRecord> {
        actor.require(Role::Admin, "changing datasources")?;
        let current = self.load(actor, id).await?;
        validate(|v| {
            if let Some(name) = &change.name {
                v.name("name", name.trim());
            }
            if change.user_settings == Some(true) && current.kind != "postgres" {
                v.push(
                    "user_settings",
                    codes::field::INVALID,
                    format!(
                        "only postgres datasources pass attributes on as transaction settings; on a {} datasource use grant rules",
                        current.kind
                    ),
                );
            } else if change.user_settings == Some(true) && !current.settings_key {
                v.push(
                    "user_settings",
                    codes::field::INVALID,
                    "make a settings key first (POST /datasources/{id}/settings-key) and install it in the database, so that the settings are signed",
                );
            }
        })?;
        let (plain, sealed, changed_options, secrets_dropped) = match &change.options {
            None => (
                current.options.clone(),
                current.sealed.clone(),
                false,
                false,
            ),
            Some(given) => {
                let (plain, given_secrets) = self.split(&current.kind, given)?;
                let specs = self.shared.registry.factory(&current.kind)?.options();
                // A new target gets only the secrets given with it: the
                // stored ones were meant for the old target.
                let moved = target_changed(specs, &current.options, &plain);
                let mut secrets = if moved {
                    DatasourceOptions::new()
                } else {
                    self.open_secrets(id, &current.sealed)?
                };
                let dropped = moved && current.sealed.is_some();
                for (key, value) in given_secrets {
                    if value.is_null() {
                        secrets.remove(&key);
                    } else if value.as_str() != Some(SECRET_MASK) {
                        secrets.insert(key, value);
                    }
                }
                let mut all = plain.clone();
                all.extend(secrets.clone());
                let built = self.check_options(&current.kind, &all)?;
                refuse_privileged_role(&built).await?;
                (plain, self.seal(id, &secrets)?, true, dropped)
            }
        };
        let mut tx = self.shared.store.write().await?;
        let result = sqlx::query(
            "UPDATE datasources SET name = $1, options = $2, secret_ciphertext = $3, secret_nonce = $4, secret_key_id = $5, \
             secret_format = $6, paused = $7, user_settings = $8, revision = revision + 1, updated_at = $9 WHERE id = $10 AND revision = $11",
        )
        .bind(change.name.as_deref().map_or(current.name.clone(), |n| n.trim().to_owned()))
        .bind(to_json(&plain)?)
        .bind(sealed.as_ref().map(|s| s.ciphertext.clone()))
        .bind(sealed.as_ref().map(|s| s.nonce.clone()))
        .bind(sealed.as_ref().map(|s| s.key_id.clone()))
        .bind(sealed.as_ref().map(|_| SEAL_FORMAT))
        .bind(i16::from(change.paused.unwrap_or(current.paused)))
        .bind(i16::from(change.user_settings.unwrap_or(current.user_settings)))
        .bind(now_micros())
        .bind(id.to_owned())
        .bind(revision)
        .execute(&mut *tx)
        .await
        .map_err(taken(
            "name",
            "a datasource with this name already exists".to_owned(),
        ))?;
        check_revision(result.rows_affected(), "datasource", revision)?;
        let detail = serde_json::json!({
            "options_changed": changed_options,
            "secrets_dropped": secrets_dropped,
            "paused": change.paused,
            "user_settings": change.user_settings,
            "renamed": change.name.is_some(),
        });
        let entry = Entry::by(actor, "datasource.update", "datasource", id).detail(detail);
        audit::record(&mut *tx, entry).await?;
        tx.commit().await.map_err(db_error)?;
        self.shared.datasource_cache.forget(id);
        self.get(actor, id).await
    }

    /// Makes a new key to sign the attributes a PostgreSQL datasource
    /// passes on as settings, replacing the earlier one; returns it once,
    /// with the SQL that installs it in the database (run it as a
    /// superuser there, then turn `user_settings` on). Admins only.
    pub async fn new_settings_key(&self, actor: &Actor, id: &str) -> Result<SettingsKey> {
        actor.require(Role::Admin, "making a settings key")?;
        let current = self.load(actor, id).await?;
        if current.kind != "postgres" {
            return Err(Error::conflict(
                codes::DATASOURCE_SETTINGS_KEY,
                format!(
                    "only postgres datasources pass attributes on as settings; this one is {}",
                    current.kind
                ),
            ));
        }
        let keys = self.shared.config.secret_keys.as_ref().ok_or_else(|| {
            Error::config(
                "cannot keep a settings key: no encryption key is configured (set LOUPE_SECRET_KEY to 32 random bytes in base64)",
            )
        })?;
        let key = crate::crypto::random_bytes::<32>()?;
        let sealed = keys
            .seal(&crate::rls::settings_key_associated(id), &key)?
            .to_text();
        let mut tx = self.shared.store.write().await?;
        sqlx::query(
            "UPDATE datasources SET settings_key = $1, revision = revision + 1, updated_at = $2 WHERE id = $3",
        )
        .bind(sealed)
        .bind(now_micros())
        .bind(id.to_owned())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let entry = Entry::by(actor, "datasource.settings_key", "datasource", id);
        audit::record(&mut *tx, entry).await?;
        tx.commit().await.map_err(db_error)?;
        self.shared.datasource_cache.forget(id);
        let role = current
            .options
            .get("user")
            .and_then(|u| u.as_str())
            .unwrap_or("loupe_reader");
        Ok(SettingsKey {
            key: crate::crypto::hex(&key),
            setup_sql: crate::rls::setup_sql(
                &key,
                id,
                &format!("\"{}\"", role.replace('"', "\"\"")),
            ),
        })
    }

    /// Deletes a datasource. Admins only. Refused while queries use it.
    pub async fn delete(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require(Role::Admin, "deleting datasources")?;
        self.load(actor, id).await?;
        let mut tx = self.shared.store.write().await?;
        let queries = "SELECT count(*) FROM queries WHERE datasource_id = $1";
        require_unused(&mut tx, queries, id, |n| {
            format!("{n} saved queries use this datasource; move or delete them first")
        })
        .await?;
        let results = runs::result_locations(&mut tx, "datasource_id", id).await?;
        audit::delete_recorded(&mut tx, actor, "datasources", "datasource", id, None).await?;
        tx.commit().await.map_err(db_error)?;
        self.shared.datasource_cache.forget(id);
        runs::delete_results(&self.shared, results.into_iter().flatten()).await;
        Ok(())
    }

    /// Re-seals every secret of the organization with the current key
    /// (after adding a new key). Admins only. Returns how many changed.
    pub async fn rotate_secrets(&self, actor: &Actor) -> Result<u64> {
        actor.require(Role::Admin, "rotating secrets")?;
        let keys = self
            .shared
            .config
            .secret_keys
            .as_ref()
            .ok_or_else(|| Error::config("no encryption key is configured"))?;
        let rows = sqlx::query("SELECT * FROM datasources WHERE org_id = $1 AND secret_key_id IS NOT NULL AND secret_key_id <> $2")
            .bind(actor.org_id.clone())
            .bind(keys.current_key_id().to_owned())
            .fetch_all(self.shared.store.pool())
            .await
            .map_err(db_error)?;
        let mut changed = 0;
        for row in &rows {
            let id: String = col(row, "id")?;
            let found = stored(row)?;
            let secrets = self.open_secrets(&id, &found.sealed)?;
            let sealed = self.seal(&id, &secrets)?;
            let mut tx = self.shared.store.write().await?;
            let result = sqlx::query(
                "UPDATE datasources SET secret_ciphertext = $1, secret_nonce = $2, secret_key_id = $3 WHERE id = $4 AND revision = $5",
            )
            .bind(sealed.as_ref().map(|s| s.ciphertext.clone()))
            .bind(sealed.as_ref().map(|s| s.nonce.clone()))
            .bind(sealed.as_ref().map(|s| s.key_id.clone()))
            .bind(id.clone())
            .bind(found.revision)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            changed += result.rows_affected();
            let entry = Entry::by(actor, "datasource.rotate_secrets", "datasource", &id);
            audit::record(&mut *tx, entry).await?;
            tx.commit().await.map_err(db_error)?;
        }
        Ok(changed)
    }

    /// The live datasource, with secrets opened, for running statements.
    /// Callers check access first. Cached per revision.
    pub(crate) async fn live(&self, id: &str) -> Result<(Arc<dyn Datasource>, bool)> {
        let found = stored(&fetch_one(&self.shared.store, BY_ID, "datasource", id).await?)?;
        if let Some(cached) = self.shared.datasource_cache.get(id, found.revision) {
            return Ok((cached, found.paused));
        }
        let mut options = found.options.clone();
        options.extend(self.open_secrets(id, &found.sealed)?);
        let built = self.shared.registry.build(&found.kind, &options)?;
        self.shared
            .datasource_cache
            .put(id, found.revision, built.clone());
        Ok((built, found.paused))
    }

    /// The live datasource for an actor who may run queries on it.
    pub async fn open(&self, actor: &Actor, id: &str) -> Result<Arc<dyn Datasource>> {
        self.load(actor, id).await?;
        groups::require_run(&self.shared, actor, id, hidden(id)).await?;
        let (datasource, paused) = self.live(id).await?;
        if paused {
            return Err(Error::conflict(
                codes::CONFLICT_PAUSED,
                "the datasource is paused; an admin can resume it",
            ));
        }
        Ok(datasource)
    }

    /// Checks that the datasource can be reached. Needs `run` access.
    pub async fn test(&self, actor: &Actor, id: &str) -> Result<()> {
        self.load(actor, id).await?;
        groups::require_run(&self.shared, actor, id, hidden(id)).await?;
        self.live(id).await?.0.ping().await
    }

    /// The datasource's tables and columns. Needs at least `view` access.
    pub async fn schema(&self, actor: &Actor, id: &str) -> Result<CatalogInfo> {
        self.load(actor, id).await?;
        groups::require_view(&self.shared, actor, id, hidden(id)).await?;
        self.live(id).await?.0.introspect().await
    }
}

/// How long creating or changing a datasource waits to learn its role.
const ROLE_CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Refuses, at once, a datasource whose database role may do more than
/// read (`datasource.privileged_role`), so an admin learns it when saving,
/// not at the first run. The connector checks the role on every connect
/// anyway, so a database that cannot be reached now (down, slow, not yet
/// created) does not stop the save: it is checked when it is first used.
async fn refuse_privileged_role(built: &Arc<dyn Datasource>) -> Result<()> {
    match tokio::time::timeout(ROLE_CHECK_WAIT, built.ping()).await {
        Ok(Err(e)) if e.code() == codes::DATASOURCE_PRIVILEGED_ROLE.as_str() => Err(e),
        _ => Ok(()),
    }
}

/// What an actor without a grant on datasource `id` is told: that it does
/// not exist, as [`DatasourceService::get`] says of an unknown id.
fn hidden(id: &str) -> impl FnOnce() -> Error {
    let id = id.to_owned();
    move || Error::not_found("datasource", id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_core::OptionKind;
    use serde_json::json;

    const SPECS: &[OptionSpec] = &[
        OptionSpec {
            name: "host",
            kind: OptionKind::String,
            required: false,
            secret: false,
            default: Some("localhost"),
            description: "",
            tuning: false,
        },
        OptionSpec {
            name: "port",
            kind: OptionKind::Integer,
            required: false,
            secret: false,
            default: Some("5432"),
            description: "",
            tuning: false,
        },
        OptionSpec {
            name: "pool_size",
            kind: OptionKind::Integer,
            required: false,
            secret: false,
            default: Some("8"),
            description: "",
            tuning: true,
        },
    ];

    fn options(value: serde_json::Value) -> DatasourceOptions {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_target_changes_when_where_it_connects_changes() {
        let before = options(json!({ "host": "db", "user": "u", "pool_size": 4 }));
        let same = |after| !target_changed(SPECS, &before, &options(after));
        assert!(same(json!({ "host": "db", "user": "u", "pool_size": 8 })));
        assert!(
            same(json!({ "host": "db", "user": "u", "port": 5432 })),
            "the default"
        );
        assert!(same(json!({ "host": "db", "user": "u", "port": "5432" })));
        assert!(!same(json!({ "host": "evil", "user": "u" })));
        assert!(!same(json!({ "host": "db", "user": "u", "port": 6543 })));
        assert!(!same(json!({ "host": "db", "user": "postgres" })));
        assert!(!same(json!({ "host": "db" })), "a target left out changes");
        // An option nobody listed yet (a tunnel, an alias) is a target.
        assert!(!same(
            json!({ "host": "db", "user": "u", "ssh_tunnel": "jump" })
        ));
        assert!(!same(
            json!({ "host": "db", "user": "u", "sslmode": "disable" })
        ));
    }
}
