//! Saved queries, their versions (every change of SQL or parameters keeps
//! the version it replaced), revert and fork.
//!
//! Seeing a query needs at least `view` on its datasource; changing one
//! needs `run` on it and the right to edit (owner, shared, or admin). A
//! query on a datasource the actor has no grant on is not found, as if it
//! did not exist.

use loupe_core::codes;
use std::sync::Arc;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::actor::{Actor, Role};
use super::audit;
use super::groups::{self, visible_datasources};
use super::runs;
use super::validate::{Validator, normalize_tags};
use crate::limits;
use crate::meta::{Filter, ListPage, ListRequest, ListSpec, TagTable, db_error, ids, new_id};
use crate::meta::{col, fetch_in_org, find_in_org, find_one, flag, json, only, to_json};
use crate::meta::{now_micros, require_unused, update_at_revision};
use crate::services::Shared;
use loupe_core::ParameterDef;
use loupe_core::{Dialect, Template};
use loupe_core::{Error, FieldError, Result};

/// A saved query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Query {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Free text about it.
    pub description: String,
    /// Where it runs.
    pub datasource_id: String,
    /// Who owns it.
    pub owner_id: String,
    /// The current version number.
    pub version: i32,
    /// The current SQL template.
    pub sql: String,
    /// The current parameter definitions.
    pub parameters: Vec<ParameterDef>,
    /// Tags, lowercase and sorted.
    pub tags: Vec<String>,
    /// Other editors may change it too.
    pub shared: bool,
    /// Hidden from lists unless asked for.
    pub archived: bool,
    /// Increases with each change.
    pub revision: i64,
    /// When it was created (µs).
    pub created_at: i64,
    /// When it last changed (µs).
    pub updated_at: i64,
}

/// One version of a query's SQL and parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryVersion {
    /// The version number, from 1.
    pub version: i32,
    /// The SQL template of that version.
    pub sql: String,
    /// Its parameter definitions.
    pub parameters: Vec<ParameterDef>,
    /// Who wrote it.
    pub author_id: Option<String>,
    /// When (µs).
    pub created_at: i64,
}

/// A new query.
#[derive(Debug, Clone, Default)]
pub struct NewQuery {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Datasource it runs on.
    pub datasource_id: String,
    /// SQL template with `{{ name }}` placeholders.
    pub sql: String,
    /// Definitions of the placeholders' parameters.
    pub parameters: Vec<ParameterDef>,
    /// Tags.
    pub tags: Vec<String>,
    /// Let other editors change it.
    pub shared: bool,
}

/// Changes to a query; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct QueryUpdate {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// Move it to another datasource.
    pub datasource_id: Option<String>,
    /// New SQL (makes a new version).
    pub sql: Option<String>,
    /// New parameters (makes a new version).
    pub parameters: Option<Vec<ParameterDef>>,
    /// New tags.
    pub tags: Option<Vec<String>>,
    /// Share or unshare.
    pub shared: Option<bool>,
    /// Archive or restore.
    pub archived: Option<bool>,
}

/// A saved query's row, by id.
pub(crate) const BY_ID: &str = "SELECT * FROM queries WHERE id = $1";

/// The queries' tags.
const TAGS: TagTable = TagTable {
    table: "query_tags",
    key: "query_id",
};

pub(crate) const SPEC: ListSpec = ListSpec {
    from: "queries q",
    alias: "q",
    sorts: &["name", "created_at", "updated_at"],
    default_sort: "-updated_at",
    filters: &[
        ("owner", Filter::Equals("q.owner_id")),
        ("datasource", Filter::Equals("q.datasource_id")),
        ("tag", Filter::Tag(TAGS)),
        ("q", Filter::Contains("q.name")),
        ("archived", Filter::Flag("q.archived")),
    ],
    created: Some("q.created_at"),
    updated: Some("q.updated_at"),
};

/// Checks a template against its parameters: it parses for `dialect`,
/// every placeholder has a definition, every definition is valid.
pub(crate) fn check_template(
    v: &mut Validator,
    sql: &str,
    parameters: &[ParameterDef],
    dialect: Dialect,
) {
    v.text("sql", sql, 1, limits::SQL);
    let names = v.parameters(parameters);
    match Template::parse(sql, dialect) {
        Ok(template) => {
            for p in template.placeholders() {
                if !names.contains(p.name.as_str()) {
                    v.push(
                        "sql",
                        codes::field::UNDEFINED_PARAMETER,
                        format!(
                            "the SQL uses {{{{ {} }}}} but no parameter {:?} is defined",
                            p.name, p.name
                        ),
                    );
                }
            }
        }
        Err(e) => v.push("sql", e.catalogue_code(), e.to_string()),
    }
}

pub(crate) fn query(row: &AnyRow, tags: Vec<String>) -> Result<Query> {
    Ok(Query {
        id: col(row, "id")?,
        name: col(row, "name")?,
        description: col(row, "description")?,
        datasource_id: col(row, "datasource_id")?,
        owner_id: col(row, "owner_id")?,
        version: col(row, "current_version")?,
        sql: col(row, "sql")?,
        parameters: json(row, "parameters")?,
        tags,
        shared: flag(row, "shared")?,
        archived: flag(row, "archived")?,
        revision: col(row, "revision")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

/// Saved queries.
#[derive(Debug, Clone)]
pub struct QueryService {
    shared: Arc<Shared>,
}

impl QueryService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The queries of `rows` with their tags: one statement for the tags
    /// however many rows, so a list page costs as much as a single read.
    async fn with_tags(&self, rows: &[AnyRow]) -> Result<Vec<Query>> {
        let ids = ids(rows)?;
        let tags = TAGS.load(&self.shared.store, &ids).await?;
        rows.iter()
            .zip(&ids)
            .map(|(row, id)| query(row, tags.values(id, "tag")?))
            .collect()
    }

    /// Loads a query in the actor's organization, without access checks.
    pub(crate) async fn load(&self, actor: &Actor, id: &str) -> Result<Query> {
        let row = fetch_in_org(&self.shared.store, &actor.org_id, BY_ID, "query", id).await?;
        only(self.with_tags(std::slice::from_ref(&row)).await?, "query")
    }

    async fn dialect_of(&self, datasource_id: &str) -> Result<Dialect> {
        let sql = "SELECT kind FROM datasources WHERE id = $1";
        let row = find_one(&self.shared.store, sql, datasource_id)
            .await?
            .ok_or_else(|| no_datasource(datasource_id))?;
        let kind: String = col(&row, "kind")?;
        Ok(self.shared.registry.factory(&kind)?.dialect())
    }

    async fn datasource_in_org(&self, actor: &Actor, datasource_id: &str) -> Result<()> {
        let sql = "SELECT org_id FROM datasources WHERE id = $1";
        find_in_org(&self.shared.store, &actor.org_id, sql, datasource_id)
            .await?
            .map(|_| ())
            .ok_or_else(|| no_datasource(datasource_id))
    }

    /// A query the actor may see.
    pub async fn get(&self, actor: &Actor, id: &str) -> Result<Query> {
        let found = self.load(actor, id).await?;
        groups::require_view(&self.shared, actor, &found.datasource_id, hidden(id)).await?;
        Ok(found)
    }

    /// The queries the actor may see. Archived ones only with
    /// `archived=true`.
    pub async fn list(&self, actor: &Actor, request: &ListRequest) -> Result<ListPage<Query>> {
        let mut rows = SPEC.org_rows(&actor.org_id);
        visible_datasources(&mut rows, actor, "q.datasource_id");
        let mut request = request.clone();
        request
            .filters
            .entry("archived".into())
            .or_insert_with(|| "false".into());
        let page = SPEC.page(&self.shared.store, rows, &request).await?;
        let items = self.with_tags(&page.items).await?;
        Ok(page.with_items(items))
    }

    /// Saves a new query (version 1). Editors and admins with `run` on the
    /// datasource.
    pub async fn create(&self, actor: &Actor, new: NewQuery) -> Result<Query> {
        actor.require(Role::Editor, "saving queries")?;
        self.datasource_in_org(actor, &new.datasource_id).await?;
        let unseen = || no_datasource(&new.datasource_id);
        groups::require_run(&self.shared, actor, &new.datasource_id, unseen).await?;
        let dialect = self.dialect_of(&new.datasource_id).await?;
        let mut v = Validator::new();
        v.name("name", new.name.trim());
        v.text("description", &new.description, 0, limits::DESCRIPTION);
        v.tags("tags", &new.tags);
        check_template(&mut v, &new.sql, &new.parameters, dialect);
        v.finish()?;
        let id = new_id();
        let now = now_micros();
        let parameters = to_json(&new.parameters)?;
        let mut tx = self.shared.store.write().await?;
        sqlx::query(
            "INSERT INTO queries (id, org_id, name, description, datasource_id, owner_id, current_version, sql, parameters, shared, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9, $10, $11)",
        )
        .bind(id.clone())
        .bind(actor.org_id.clone())
        .bind(new.name.trim().to_owned())
        .bind(new.description.clone())
        .bind(new.datasource_id.clone())
        .bind(actor.user_id.clone())
        .bind(new.sql.clone())
        .bind(parameters.clone())
        .bind(i16::from(new.shared))
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        insert_version(&mut tx, &id, 1, &new.sql, &parameters, &actor.user_id).await?;
        TAGS.replace(&mut tx, &id, &normalize_tags(&new.tags))
            .await?;
        tx.commit().await.map_err(db_error)?;
        self.load(actor, &id).await
    }

    /// Changes a query if `revision` is still current. A change of SQL or
    /// parameters makes a new version and keeps the previous one.
    pub async fn update(
        &self,
        actor: &Actor,
        id: &str,
        revision: i64,
        change: QueryUpdate,
    ) -> Result<Query> {
        let current = self.get(actor, id).await?;
        actor.require_edit(&current.owner_id, current.shared, "query")?;
        groups::require_run(&self.shared, actor, &current.datasource_id, hidden(id)).await?;
        let datasource_id = change
            .datasource_id
            .clone()
            .unwrap_or_else(|| current.datasource_id.clone());
        if datasource_id != current.datasource_id {
            self.datasource_in_org(actor, &datasource_id).await?;
            let unseen = || no_datasource(&datasource_id);
            groups::require_run(&self.shared, actor, &datasource_id, unseen).await?;
        }
        let sql = change.sql.clone().unwrap_or_else(|| current.sql.clone());
        let parameters = change
            .parameters
            .clone()
            .unwrap_or_else(|| current.parameters.clone());
        let mut v = Validator::new();
        if let Some(name) = &change.name {
            v.name("name", name.trim());
        }
        if let Some(description) = &change.description {
            v.text("description", description, 0, limits::DESCRIPTION);
        }
        if let Some(tags) = &change.tags {
            v.tags("tags", tags);
        }
        check_template(
            &mut v,
            &sql,
            &parameters,
            self.dialect_of(&datasource_id).await?,
        );
        v.finish()?;
        let new_version = sql != current.sql || parameters != current.parameters;
        let version = if new_version {
            current.version + 1
        } else {
            current.version
        };
        let parameters_json = to_json(&parameters)?;
        let mut tx = self.shared.store.write().await?;
        let update = sqlx::query(
            "UPDATE queries SET name = $1, description = $2, datasource_id = $3, sql = $4, parameters = $5, current_version = $6, \
             shared = $7, archived = $8, revision = revision + 1, updated_at = $9 WHERE id = $10 AND revision = $11",
        )
        .bind(change.name.as_deref().map_or(current.name.clone(), |n| n.trim().to_owned()))
        .bind(change.description.clone().unwrap_or(current.description.clone()))
        .bind(datasource_id)
        .bind(sql.clone())
        .bind(parameters_json.clone())
        .bind(version)
        .bind(i16::from(change.shared.unwrap_or(current.shared)))
        .bind(i16::from(change.archived.unwrap_or(current.archived)));
        update_at_revision(&mut *tx, update, "query", id, revision).await?;
        if new_version {
            insert_version(&mut tx, id, version, &sql, &parameters_json, &actor.user_id).await?;
        }
        if let Some(tags) = &change.tags {
            TAGS.replace(&mut tx, id, &normalize_tags(tags)).await?;
        }
        tx.commit().await.map_err(db_error)?;
        self.load(actor, id).await
    }

    /// Every version of a query, newest first.
    pub async fn versions(&self, actor: &Actor, id: &str) -> Result<Vec<QueryVersion>> {
        self.get(actor, id).await?;
        let rows =
            sqlx::query("SELECT * FROM query_versions WHERE query_id = $1 ORDER BY version DESC")
                .bind(id.to_owned())
                .fetch_all(self.shared.store.pool())
                .await
                .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                Ok(QueryVersion {
                    version: col(row, "version")?,
                    sql: col(row, "sql")?,
                    parameters: json(row, "parameters")?,
                    author_id: col(row, "author_id")?,
                    created_at: col(row, "created_at")?,
                })
            })
            .collect()
    }

    /// Makes an old version current again, as a new version.
    pub async fn revert(
        &self,
        actor: &Actor,
        id: &str,
        revision: i64,
        version: i32,
    ) -> Result<Query> {
        let old = self
            .versions(actor, id)
            .await?
            .into_iter()
            .find(|v| v.version == version)
            .ok_or_else(|| {
                Error::field(
                    "version",
                    codes::NOT_FOUND,
                    format!("query {id} has no version {version}"),
                )
            })?;
        self.update(
            actor,
            id,
            revision,
            QueryUpdate {
                sql: Some(old.sql),
                parameters: Some(old.parameters),
                ..QueryUpdate::default()
            },
        )
        .await
    }

    /// Copies a query the actor may see into a new one they own.
    pub async fn fork(&self, actor: &Actor, id: &str) -> Result<Query> {
        let source = self.get(actor, id).await?;
        self.create(
            actor,
            NewQuery {
                name: fork_name(&source.name),
                description: source.description,
                datasource_id: source.datasource_id,
                sql: source.sql,
                parameters: source.parameters,
                tags: source.tags,
                shared: false,
            },
        )
        .await
    }

    /// Deletes a query, its versions, visualizations and runs (with their
    /// stored results). Refused while schedules run it: delete those first.
    pub async fn delete(&self, actor: &Actor, id: &str) -> Result<()> {
        let current = self.get(actor, id).await?;
        actor.require_edit(&current.owner_id, current.shared, "query")?;
        let mut tx = self.shared.store.write().await?;
        let schedules = "SELECT count(*) FROM schedules WHERE query_id = $1";
        require_unused(&mut tx, schedules, id, |n| {
            format!("{n} schedules run this query; delete them first")
        })
        .await?;
        let results = runs::result_locations(&mut tx, "query_id", id).await?;
        let detail = serde_json::json!({ "name": current.name, "runs": results.len() });
        audit::delete_recorded(&mut tx, actor, "queries", "query", id, Some(detail)).await?;
        tx.commit().await.map_err(db_error)?;
        runs::delete_results(&self.shared, results.into_iter().flatten()).await;
        Ok(())
    }
}

fn fork_name(name: &str) -> String {
    let copy = format!("Copy of {name}");
    copy.chars().take(limits::NAME).collect()
}

async fn insert_version(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    version: i32,
    sql: &str,
    parameters: &str,
    author: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO query_versions (query_id, version, sql, parameters, author_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.to_owned())
    .bind(version)
    .bind(sql.to_owned())
    .bind(parameters.to_owned())
    .bind(author.to_owned())
    .bind(now_micros())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// What an actor without a grant on query `id`'s datasource is told: that
/// it does not exist, as a read of an unknown id says.
pub(crate) fn hidden(id: &str) -> impl FnOnce() -> Error {
    let id = id.to_owned();
    move || Error::not_found("query", id)
}

fn no_datasource(id: &str) -> Error {
    Error::field(
        "datasource_id",
        codes::NOT_FOUND,
        format!("no datasource {id}"),
    )
}

/// Field errors for parameter values that do not fit their definitions.
pub(crate) fn value_errors(field: &str, error: &Error) -> Vec<FieldError> {
    match error {
        Error::Parameter(e) => vec![FieldError::new(
            format!("{field}.{}", e.parameter()),
            e.catalogue_code(),
            e.to_string(),
        )],
        Error::Template(e) => vec![FieldError::new("sql", e.catalogue_code(), e.to_string())],
        _ => Vec::new(),
    }
}
