//! `/datasources`: connections, their schema, reachability and grants.
//! Secret options (a connector's passwords and keys) are sealed by core
//! and come back masked; no handler here ever sees a secret's value in a
//! read.

use std::collections::BTreeMap;
use std::sync::Arc;

use loupe_core::{
    CatalogInfo, ColumnInfo, DatasourceFactory, DatasourceOptions, Dialect, OptionKind, OptionSpec,
    SchemaInfo, TableInfo, TableKind,
};
use loupe_services::{DatasourceInput, DatasourceRecord, DatasourceUpdate, limits};
use poem_openapi::param::{Path, Query as Q};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::ApiTags;
use super::bounded::{BoundedMap, Name, Text};
use super::common::{
    Created, IfMatch, NoContent, Stamps, Tagged, created, no_store, same_variants, tagged,
};
use super::groups::{AccessDto, GrantDto};
use super::lists::{self, FilterText, Page, PageLimit, PageOffset, Sort, list_request, page};
use crate::caller::Auth;
use crate::problem::ApiResult;
use crate::state::AppState;

/// Datasources.
#[derive(Debug)]
pub(crate) struct DatasourcesApi(pub(crate) Arc<AppState>);

/// A datasource. Secret options never show their value.
#[derive(Debug, Object)]
pub(crate) struct DatasourceDto {
    /// Its id.
    pub id: String,
    /// Its name, unique in the organization.
    pub name: String,
    /// The connector kind, such as `postgres` or `files`.
    pub kind: String,
    /// Its options; a secret option that is set shows as `********`.
    pub options: BTreeMap<String, serde_json::Value>,
    /// Names of the secret options that are set.
    pub secret_options: Vec<String>,
    /// A paused datasource runs nothing (schedules skip it).
    pub paused: bool,
    /// Runs carry the caller's attributes as transaction-local settings
    /// (`loupe.user.<name>`), for the database's own row-level security
    /// policies (`current_setting('loupe.user.region', true)`).
    pub user_settings: bool,
    /// What the caller may do with it.
    pub access: AccessDto,
    /// Its revision and times.
    #[oai(flatten)]
    pub stamps: Stamps,
}

impl From<DatasourceRecord> for DatasourceDto {
    fn from(d: DatasourceRecord) -> Self {
        Self {
            stamps: Stamps::of(&d),
            id: d.id,
            name: d.name,
            kind: d.kind,
            options: d.options.into_iter().collect(),
            secret_options: d.secret_options,
            paused: d.paused,
            user_settings: d.user_settings,
            access: d.access.into(),
        }
    }
}

/// A new datasource.
#[derive(Debug, Object)]
pub(crate) struct NewDatasourceDto {
    /// Its name, unique in the organization.
    pub name: Name,
    /// The connector kind, such as `postgres`, `mysql` or `files`.
    pub kind: Text<1, { limits::KIND }>,
    /// The connector's options, secret ones included (they are stored
    /// encrypted and never shown back). The connector checks them.
    #[oai(default)]
    pub options: Options,
}

/// A datasource's options, by name.
type Options = BoundedMap<{ limits::OPTIONS }>;

/// Changes to a datasource; fields left out stay as they are.
#[derive(Debug, Object)]
pub(crate) struct DatasourceUpdateDto {
    /// New name.
    #[oai(skip_serializing_if_is_none)]
    pub name: Option<Name>,
    /// New options, replacing the current ones. A secret option left out
    /// or given as `********` keeps its stored value; `null` removes it.
    #[oai(skip_serializing_if_is_none)]
    pub options: Option<Options>,
    /// Pause (`true`) or resume (`false`).
    #[oai(skip_serializing_if_is_none)]
    pub paused: Option<bool>,
    /// Pass callers' attributes on as transaction settings
    /// (`loupe.user.<name>`; PostgreSQL datasources only), or stop.
    #[oai(skip_serializing_if_is_none)]
    pub user_settings: Option<bool>,
}

/// What a datasource holds, for a schema browser.
#[derive(Debug, Object)]
pub(crate) struct CatalogDto {
    /// Schemas (or databases), without system schemas.
    pub schemas: Vec<CatalogSchemaDto>,
}

/// A schema and its tables.
#[derive(Debug, Object)]
pub(crate) struct CatalogSchemaDto {
    /// The schema's name.
    pub name: String,
    /// Its tables, views and files.
    pub tables: Vec<CatalogTableDto>,
}

/// What a table of a catalog is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub(crate) enum TableKindDto {
    /// A base table.
    Table,
    /// A view.
    View,
    /// A materialized view.
    MaterializedView,
    /// A foreign or external table.
    External,
    /// A file (or folder of files) read by the files connector.
    File,
}

same_variants!(TableKindDto, TableKind: Table, View, MaterializedView, External, File);

/// A table, view or file.
#[derive(Debug, Object)]
pub(crate) struct CatalogTableDto {
    /// The name to use in SQL.
    pub name: String,
    /// What it is.
    pub kind: TableKindDto,
    /// Its columns, in order.
    pub columns: Vec<CatalogColumnDto>,
    /// A comment, or a file path relative to the root.
    #[oai(skip_serializing_if_is_none)]
    pub description: Option<String>,
}

/// A column of a table.
#[derive(Debug, Object)]
pub(crate) struct CatalogColumnDto {
    /// The column's name.
    pub name: String,
    /// The datasource's own type name, such as `numeric(12,2)`.
    #[oai(rename = "type")]
    pub type_: String,
    /// The Arrow type results of this column have, such as `Int64`.
    pub arrow_type: String,
    /// Whether the column can hold NULL.
    pub nullable: bool,
}

impl From<CatalogInfo> for CatalogDto {
    fn from(c: CatalogInfo) -> Self {
        Self {
            schemas: c.schemas.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<SchemaInfo> for CatalogSchemaDto {
    fn from(s: SchemaInfo) -> Self {
        Self {
            name: s.name,
            tables: s.tables.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<TableInfo> for CatalogTableDto {
    fn from(t: TableInfo) -> Self {
        Self {
            name: t.name,
            kind: t.kind.into(),
            columns: t.columns.into_iter().map(Into::into).collect(),
            description: t.description,
        }
    }
}

impl From<ColumnInfo> for CatalogColumnDto {
    fn from(c: ColumnInfo) -> Self {
        Self {
            arrow_type: c.data_type.to_string(),
            name: c.name,
            type_: c.source_type,
            nullable: c.nullable,
        }
    }
}

/// A kind of datasource this server can connect to, with what its options
/// are: what a form for a new datasource needs.
#[derive(Debug, Object)]
pub(crate) struct ConnectorDto {
    /// The kind, as given in a datasource's `kind`.
    pub kind: String,
    /// What it connects to.
    pub description: String,
    /// The SQL dialect of its queries.
    pub dialect: DialectDto,
    /// The URL schemes of its connection URLs, such as `postgres`.
    pub url_schemes: Vec<String>,
    /// Its options, in the order a form would show them.
    pub options: Vec<ConnectorOptionDto>,
}

/// An option of a connector.
#[derive(Debug, Object)]
pub(crate) struct ConnectorOptionDto {
    /// Its key in a datasource's `options`.
    pub name: String,
    /// What values it takes.
    #[oai(rename = "type")]
    pub type_: OptionTypeDto,
    /// Whether a datasource must set it.
    pub required: bool,
    /// Whether it is a secret: stored encrypted, never shown back.
    pub secret: bool,
    /// The value used when it is not set.
    #[oai(skip_serializing_if_is_none)]
    pub default: Option<String>,
    /// What it means.
    pub description: String,
}

/// The type of an option's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub(crate) enum OptionTypeDto {
    /// Text.
    String,
    /// An integer.
    Integer,
    /// True or false.
    Boolean,
    /// A path on the server's filesystem.
    Path,
    /// A duration such as `30s`.
    Duration,
}

same_variants!(OptionTypeDto, OptionKind: String, Integer, Boolean, Path, Duration);

/// The SQL a datasource's queries are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub(crate) enum DialectDto {
    /// PostgreSQL: `{{ name }}` parameters become `$1…$n`.
    #[oai(rename = "postgres")]
    Postgres,
    /// MySQL and MariaDB: parameters become `?`.
    #[oai(rename = "mysql")]
    MySql,
    /// DataFusion, for files: PostgreSQL-like, parameters become `$1…$n`.
    #[oai(rename = "datafusion")]
    DataFusion,
}

same_variants!(DialectDto, Dialect: Postgres, MySql, DataFusion);

impl From<&dyn DatasourceFactory> for ConnectorDto {
    fn from(f: &dyn DatasourceFactory) -> Self {
        Self {
            kind: f.kind().to_owned(),
            description: f.description().to_owned(),
            dialect: f.dialect().into(),
            url_schemes: f.url_schemes().iter().map(|s| (*s).to_owned()).collect(),
            options: f.options().iter().map(Into::into).collect(),
        }
    }
}

impl From<&OptionSpec> for ConnectorOptionDto {
    fn from(o: &OptionSpec) -> Self {
        Self {
            name: o.name.to_owned(),
            type_: o.kind.into(),
            required: o.required,
            secret: o.secret,
            default: o.default.map(str::to_owned),
            description: o.description.to_owned(),
        }
    }
}

/// The connectors of this server.
#[derive(Debug)]
pub(crate) struct ConnectorsApi(pub(crate) Arc<AppState>);

#[OpenApi(prefix_path = "/connectors", tag = "ApiTags::Datasources")]
impl ConnectorsApi {
    /// The kinds of datasource this server can connect to, by kind, with
    /// their options and dialects (any signed-in caller).
    #[oai(path = "/", method = "get", operation_id = "listConnectors")]
    async fn list(&self, _auth: Auth) -> ApiResult<Json<Vec<ConnectorDto>>> {
        let mut connectors: Vec<ConnectorDto> = self
            .0
            .services()
            .connectors()
            .factories()
            .map(|f| ConnectorDto::from(f.as_ref()))
            .collect();
        connectors.sort_by(|a, b| a.kind.cmp(&b.kind));
        Ok(Json(connectors))
    }
}

fn options(map: Options) -> DatasourceOptions {
    map.0.into_iter().collect()
}

#[OpenApi(prefix_path = "/datasources", tag = "ApiTags::Datasources")]
impl DatasourcesApi {
    /// The datasources the caller may see: all of them for admins, those
    /// their groups have a grant on for others.
    #[oai(path = "/", method = "get", operation_id = "listDatasources")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: Auth,
        /// Rows per page.
        limit: Q<Option<PageLimit>>,
        /// Rows to skip.
        offset: Q<Option<PageOffset>>,
        /// The field to sort by; `-` first for descending.
        sort: Q<Option<Sort<lists::Datasources>>>,
        /// Only of this connector kind.
        kind: Q<Option<FilterText>>,
        /// Only paused (`true`) or running (`false`) ones.
        paused: Q<Option<bool>>,
        /// Text in the name.
        q: Q<Option<FilterText>>,
    ) -> ApiResult<Json<Page<DatasourceDto>>> {
        let request = list_request(
            limit.0,
            offset.0,
            sort.0,
            &[("kind", &kind), ("paused", &paused), ("q", &q)],
        );
        let datasources = &self.0.services().datasources;
        Ok(page(datasources.list(auth.actor(), &request).await?))
    }

    /// Add a datasource (admins). The options are checked by the connector
    /// (without connecting; use `POST /datasources/{id}/test`); secret ones
    /// are stored encrypted.
    #[oai(path = "/", method = "post", operation_id = "createDatasource")]
    async fn create(
        &self,
        auth: Auth,
        body: Json<NewDatasourceDto>,
    ) -> ApiResult<Created<DatasourceDto>> {
        let body = body.0;
        let input = DatasourceInput {
            name: body.name.into(),
            kind: body.kind.into(),
            options: options(body.options),
        };
        let datasources = &self.0.services().datasources;
        let record = datasources.create(auth.actor(), input).await?;
        Ok(created(record))
    }

    /// Get a datasource the caller may see.
    #[oai(path = "/:id", method = "get", operation_id = "getDatasource")]
    async fn get(&self, auth: Auth, id: Path<String>) -> ApiResult<Tagged<DatasourceDto>> {
        let record = self.0.services().datasources.get(auth.actor(), &id).await?;
        Ok(tagged(record))
    }

    /// Change a datasource's name, options or paused flag (admins). Needs
    /// `If-Match` with the datasource's `ETag`.
    #[oai(path = "/:id", method = "patch", operation_id = "updateDatasource")]
    async fn update(
        &self,
        auth: Auth,
        id: Path<String>,
        /// The `ETag` from a GET of this datasource.
        #[oai(name = "If-Match")]
        if_match: IfMatch,
        body: Json<DatasourceUpdateDto>,
    ) -> ApiResult<Tagged<DatasourceDto>> {
        let body = body.0;
        let change = DatasourceUpdate {
            name: body.name.map(Into::into),
            options: body.options.map(options),
            paused: body.paused,
            user_settings: body.user_settings,
        };
        let datasources = &self.0.services().datasources;
        let record = datasources
            .update(auth.actor(), &id, if_match.revision(), change)
            .await?;
        Ok(tagged(record))
    }

    /// Delete a datasource with its runs and results (admins). Refused
    /// while saved queries use it.
    #[oai(path = "/:id", method = "delete", operation_id = "deleteDatasource")]
    async fn delete(&self, auth: Auth, id: Path<String>) -> ApiResult<NoContent> {
        self.0
            .services()
            .datasources
            .delete(auth.actor(), &id)
            .await?;
        Ok(NoContent::Done)
    }

    /// Check that the datasource can be reached (needs `run` access).
    /// 204 when it answers; otherwise the problem says why.
    #[oai(path = "/:id/test", method = "post", operation_id = "testDatasource")]
    async fn test(&self, auth: Auth, id: Path<String>) -> ApiResult<NoContent> {
        self.0
            .services()
            .datasources
            .test(auth.actor(), &id)
            .await?;
        Ok(NoContent::Done)
    }

    /// The datasource's schemas, tables and columns (needs `view` access).
    #[oai(
        path = "/:id/schema",
        method = "get",
        operation_id = "getDatasourceSchema"
    )]
    async fn schema(&self, auth: Auth, id: Path<String>) -> ApiResult<Json<CatalogDto>> {
        let catalog = self
            .0
            .services()
            .datasources
            .schema(auth.actor(), &id)
            .await?;
        Ok(Json(catalog.into()))
    }

    /// The groups that have access to the datasource (admins).
    #[oai(
        path = "/:id/grants",
        method = "get",
        operation_id = "listDatasourceGrants"
    )]
    async fn grants(&self, auth: Auth, id: Path<String>) -> ApiResult<Json<Vec<GrantDto>>> {
        let grants = self.0.services().groups.grants(auth.actor(), &id).await?;
        Ok(Json(grants.into_iter().map(Into::into).collect()))
    }

    /// Make a new key that signs the attributes a PostgreSQL datasource
    /// passes on as settings (`loupe.user.<name>`, signed in
    /// `loupe.signature.<name>`), replacing the earlier key (admins). The
    /// key is shown once, with the SQL to run as a superuser in the
    /// database: it keeps the key where the datasource's role cannot read
    /// it and defines `loupe_rls.attribute(name)`, which policies call and
    /// which answers only settings whose signature matches, so a statement
    /// that changes its own settings sees none. Then turn `user_settings`
    /// on.
    #[oai(
        path = "/:id/settings-key",
        method = "post",
        operation_id = "makeDatasourceSettingsKey"
    )]
    async fn settings_key(&self, auth: Auth, id: Path<String>) -> ApiResult<SettingsKeyMade> {
        let datasources = &self.0.services().datasources;
        let made = datasources.new_settings_key(auth.actor(), &id).await?;
        Ok(SettingsKeyMade::Created(
            Json(SettingsKeyDto {
                key: made.key,
                setup_sql: made.setup_sql,
            }),
            no_store(),
        ))
    }
}

/// A key that signs the attributes a datasource passes on as settings.
#[derive(Debug, Object)]
pub(crate) struct SettingsKeyDto {
    /// The key, 64 hex digits. Shown once.
    pub key: String,
    /// The SQL to run once as a superuser in the database.
    pub setup_sql: String,
}

/// A new settings key.
#[derive(Debug, ApiResponse)]
pub(crate) enum SettingsKeyMade {
    /// Made; the earlier key no longer signs anything.
    #[oai(status = 201)]
    Created(
        Json<SettingsKeyDto>,
        /// Keys are secrets: never cached.
        #[oai(header = "Cache-Control")]
        String,
    ),
}
