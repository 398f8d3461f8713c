//! `/queries`: saved parameterized queries, their versions, and runs.

use loupe_core::codes;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use loupe_core::{ItemType, ParameterDef, ParameterType};
use loupe_services::{NewQuery, Query, QueryUpdate, QueryVersion, limits};
use poem_openapi::param::{Path, Query as Q};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::ApiTags;
use super::bounded::{Name, Text};
use super::common::{Created, IfMatch, NoContent, Stamps, Tagged, created, tagged, ts};
use super::lists::{self, FilterText, Page, PageLimit, PageOffset, Sort, list_request, page};
use super::runs::{MaxAge, Sql, StartedDto, max_age, parameter_values};
use crate::caller::Auth;
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;

/// Saved queries.
#[derive(Debug)]
pub(crate) struct QueriesApi(pub(crate) Arc<AppState>);

/// A parameter of a query: `{{ name }}` in its SQL, bound as a typed value.
#[derive(Debug, Clone, Object)]
pub(crate) struct ParameterDto {
    /// The name used in `{{ name }}`.
    pub name: Text<1, { limits::PARAMETER_NAME }>,
    /// `text`, `integer`, `number`, `boolean`, `date`, `datetime`,
    /// `date_range`, `enum` or `list`.
    #[oai(rename = "type")]
    pub type_: String,
    /// The allowed values (`enum`; optional for `list`).
    #[oai(skip_serializing_if_is_none)]
    pub options: Option<Vec<String>>,
    /// The type of each value of a `list`: `text`, `integer`, `number`, `date`.
    #[oai(skip_serializing_if_is_none)]
    pub item: Option<String>,
    /// Used when a run gives no value.
    #[oai(skip_serializing_if_is_none)]
    pub default: Option<serde_json::Value>,
    /// A label for forms.
    #[oai(skip_serializing_if_is_none)]
    pub title: Option<String>,
}

impl From<ParameterDef> for ParameterDto {
    fn from(def: ParameterDef) -> Self {
        let item_name = |item: ItemType| match item {
            ItemType::Text => "text",
            ItemType::Integer => "integer",
            ItemType::Number => "number",
            ItemType::Date => "date",
        };
        let (options, item) = match &def.ty {
            ParameterType::Enum { options } => (Some(options.clone()), None),
            ParameterType::List { item, options } => (
                Some(options.clone()).filter(|o| !o.is_empty()),
                Some(item_name(*item).to_owned()),
            ),
            _ => (None, None),
        };
        Self {
            type_: def.ty.name().to_owned(),
            name: Text(def.name),
            options,
            item,
            default: def.default,
            title: def.title,
        }
    }
}

/// Core parameter definitions from the API's, with a field error naming
/// the first one that is not valid.
pub(crate) fn parameter_defs(dtos: &[ParameterDto]) -> ApiResult<Vec<ParameterDef>> {
    dtos.iter()
        .enumerate()
        .map(|(i, p)| {
            let mut json = serde_json::json!({ "name": p.name.as_str(), "type": p.type_ });
            if let Some(options) = &p.options {
                json["options"] = serde_json::json!(options);
            }
            if let Some(item) = &p.item {
                json["item"] = serde_json::json!(item);
            }
            if let Some(default) = &p.default {
                json["default"] = default.clone();
            }
            if let Some(title) = &p.title {
                json["title"] = serde_json::json!(title);
            }
            serde_json::from_value(json).map_err(|e| {
                ApiError::from(loupe_core::Error::field(
                    format!("parameters[{i}]"),
                    codes::field::INVALID,
                    e.to_string(),
                ))
            })
        })
        .collect()
}

/// A saved query.
#[derive(Debug, Object)]
pub(crate) struct QueryDto {
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
    /// The current SQL template, with `{{ name }}` placeholders.
    pub sql: String,
    /// The current parameter definitions.
    pub parameters: Vec<ParameterDto>,
    /// Tags, lowercase and sorted.
    pub tags: Vec<String>,
    /// Other editors may change it too.
    pub shared: bool,
    /// Hidden from lists unless asked for.
    pub archived: bool,
    /// Its revision and times.
    #[oai(flatten)]
    pub stamps: Stamps,
}

impl From<Query> for QueryDto {
    fn from(q: Query) -> Self {
        Self {
            stamps: Stamps::of(&q),
            parameters: q.parameters.into_iter().map(ParameterDto::from).collect(),
            id: q.id,
            name: q.name,
            description: q.description,
            datasource_id: q.datasource_id,
            owner_id: q.owner_id,
            version: q.version,
            sql: q.sql,
            tags: q.tags,
            shared: q.shared,
            archived: q.archived,
        }
    }
}

/// One version of a query.
#[derive(Debug, Object)]
pub(crate) struct QueryVersionDto {
    /// The version number, from 1.
    pub version: i32,
    /// The SQL template of that version.
    pub sql: String,
    /// Its parameter definitions.
    pub parameters: Vec<ParameterDto>,
    /// Who wrote it.
    #[oai(skip_serializing_if_is_none)]
    pub author_id: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl From<QueryVersion> for QueryVersionDto {
    fn from(v: QueryVersion) -> Self {
        Self {
            parameters: v.parameters.into_iter().map(ParameterDto::from).collect(),
            version: v.version,
            sql: v.sql,
            author_id: v.author_id,
            created_at: ts(v.created_at),
        }
    }
}

/// A new query.
#[derive(Debug, Object)]
pub(crate) struct NewQueryDto {
    /// Its name.
    pub name: Name,
    /// Free text about it.
    #[oai(default)]
    pub description: Description,
    /// The datasource it runs on.
    pub datasource_id: String,
    /// SQL with `{{ name }}` placeholders.
    pub sql: Sql,
    /// Definitions of the placeholders.
    #[oai(default)]
    pub parameters: Vec<ParameterDto>,
    /// Tags.
    #[oai(default)]
    pub tags: Vec<String>,
    /// Let other editors change it.
    #[oai(default)]
    pub shared: bool,
}

/// Changes to a query; fields left out stay as they are. New SQL or
/// parameters make a new version.
#[derive(Debug, Object)]
pub(crate) struct QueryUpdateDto {
    /// New name.
    #[oai(skip_serializing_if_is_none)]
    pub name: Option<Name>,
    /// New description.
    #[oai(skip_serializing_if_is_none)]
    pub description: Option<Description>,
    /// Move it to another datasource.
    #[oai(skip_serializing_if_is_none)]
    pub datasource_id: Option<String>,
    /// New SQL.
    #[oai(skip_serializing_if_is_none)]
    pub sql: Option<Sql>,
    /// New parameters.
    #[oai(skip_serializing_if_is_none)]
    pub parameters: Option<Vec<ParameterDto>>,
    /// New tags.
    #[oai(skip_serializing_if_is_none)]
    pub tags: Option<Vec<String>>,
    /// Share or unshare.
    #[oai(skip_serializing_if_is_none)]
    pub shared: Option<bool>,
    /// Archive or restore.
    #[oai(skip_serializing_if_is_none)]
    pub archived: Option<bool>,
}

/// Free text about a query.
type Description = Text<0, { limits::DESCRIPTION }>;

/// Which version to go back to.
#[derive(Debug, Object)]
pub(crate) struct RevertDto {
    /// The version whose SQL and parameters become current (as a new version).
    #[oai(validator(minimum(value = "1")))]
    pub version: i32,
}

/// Values for a run of a saved query.
#[derive(Debug, Object)]
pub(crate) struct RunQueryDto {
    /// Parameter values by name; defaults fill the rest.
    #[oai(default)]
    pub parameters: std::collections::BTreeMap<String, serde_json::Value>,
    /// Reuse a result at most this many seconds old instead of running
    /// again; 0 or absent always runs (identical runs in flight are still
    /// joined).
    #[oai(skip_serializing_if_is_none)]
    pub max_age_seconds: Option<MaxAge>,
}

#[OpenApi(prefix_path = "/queries", tag = "ApiTags::Queries")]
impl QueriesApi {
    /// List the queries the caller may see.
    #[oai(path = "/", method = "get", operation_id = "listQueries")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: Auth,
        /// Rows per page.
        limit: Q<Option<PageLimit>>,
        /// Rows to skip.
        offset: Q<Option<PageOffset>>,
        /// The field to sort by; `-` first for descending.
        sort: Q<Option<Sort<lists::Queries>>>,
        /// Text in the name.
        q: Q<Option<FilterText>>,
        /// Only this owner's.
        owner: Q<Option<FilterText>>,
        /// Only with this tag.
        tag: Q<Option<FilterText>>,
        /// Only on this datasource.
        datasource: Q<Option<FilterText>>,
        /// Include (`true`) or only show (`only`) archived queries.
        archived: Q<Option<FilterText>>,
        /// Only created at or after this time.
        created_after: Q<Option<DateTime<Utc>>>,
        /// Only created before this time.
        created_before: Q<Option<DateTime<Utc>>>,
        /// Only changed at or after this time.
        updated_after: Q<Option<DateTime<Utc>>>,
        /// Only changed before this time.
        updated_before: Q<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<Page<QueryDto>>> {
        let request = list_request(
            limit.0,
            offset.0,
            sort.0,
            &[
                ("q", &q),
                ("owner", &owner),
                ("tag", &tag),
                ("datasource", &datasource),
                ("archived", &archived),
                ("created_after", &created_after),
                ("created_before", &created_before),
                ("updated_after", &updated_after),
                ("updated_before", &updated_before),
            ],
        );
        let queries = &self.0.services().queries;
        Ok(page(queries.list(auth.actor(), &request).await?))
    }

    /// Save a new query.
    #[oai(path = "/", method = "post", operation_id = "createQuery")]
    async fn create(&self, auth: Auth, body: Json<NewQueryDto>) -> ApiResult<Created<QueryDto>> {
        let body = body.0;
        let new = NewQuery {
            parameters: parameter_defs(&body.parameters)?,
            name: body.name.into(),
            description: body.description.into(),
            datasource_id: body.datasource_id,
            sql: body.sql.into(),
            tags: body.tags,
            shared: body.shared,
        };
        let query = self.0.services().queries.create(auth.actor(), new).await?;
        Ok(created(query))
    }

    /// Get a query.
    #[oai(path = "/:id", method = "get", operation_id = "getQuery")]
    async fn get(&self, auth: Auth, id: Path<String>) -> ApiResult<Tagged<QueryDto>> {
        let query = self.0.services().queries.get(auth.actor(), &id).await?;
        Ok(tagged(query))
    }

    /// Change a query. Needs `If-Match` with the query's `ETag`.
    #[oai(path = "/:id", method = "patch", operation_id = "updateQuery")]
    async fn update(
        &self,
        auth: Auth,
        id: Path<String>,
        /// The `ETag` from a GET of this query.
        #[oai(name = "If-Match")]
        if_match: IfMatch,
        body: Json<QueryUpdateDto>,
    ) -> ApiResult<Tagged<QueryDto>> {
        let body = body.0;
        let change = QueryUpdate {
            parameters: body.parameters.as_deref().map(parameter_defs).transpose()?,
            name: body.name.map(Into::into),
            description: body.description.map(Into::into),
            datasource_id: body.datasource_id,
            sql: body.sql.map(Into::into),
            tags: body.tags,
            shared: body.shared,
            archived: body.archived,
        };
        let queries = &self.0.services().queries;
        let query = queries
            .update(auth.actor(), &id, if_match.revision(), change)
            .await?;
        Ok(tagged(query))
    }

    /// Delete a query, with its versions, runs and results.
    #[oai(path = "/:id", method = "delete", operation_id = "deleteQuery")]
    async fn delete(&self, auth: Auth, id: Path<String>) -> ApiResult<NoContent> {
        self.0.services().queries.delete(auth.actor(), &id).await?;
        Ok(NoContent::Done)
    }

    /// A query's versions, newest first.
    #[oai(
        path = "/:id/versions",
        method = "get",
        operation_id = "listQueryVersions"
    )]
    async fn versions(
        &self,
        auth: Auth,
        id: Path<String>,
    ) -> ApiResult<Json<Vec<QueryVersionDto>>> {
        let versions = self
            .0
            .services()
            .queries
            .versions(auth.actor(), &id)
            .await?;
        Ok(Json(versions.into_iter().map(Into::into).collect()))
    }

    /// Make an older version current again (as a new version). Needs
    /// `If-Match`.
    #[oai(path = "/:id/revert", method = "post", operation_id = "revertQuery")]
    async fn revert(
        &self,
        auth: Auth,
        id: Path<String>,
        /// The `ETag` from a GET of this query.
        #[oai(name = "If-Match")]
        if_match: IfMatch,
        body: Json<RevertDto>,
    ) -> ApiResult<Tagged<QueryDto>> {
        let queries = &self.0.services().queries;
        let query = queries
            .revert(auth.actor(), &id, if_match.revision(), body.0.version)
            .await?;
        Ok(tagged(query))
    }

    /// Copy a query; the copy belongs to the caller.
    #[oai(path = "/:id/fork", method = "post", operation_id = "forkQuery")]
    async fn fork(&self, auth: Auth, id: Path<String>) -> ApiResult<Created<QueryDto>> {
        let query = self.0.services().queries.fork(auth.actor(), &id).await?;
        Ok(created(query))
    }

    /// Run a query with parameter values: answered from a recent result
    /// (`max_age_seconds`), by joining an identical run in flight, or by
    /// queueing a new run. Poll `GET /runs/{id}` for its status.
    #[oai(path = "/:id/runs", method = "post", operation_id = "runQuery")]
    async fn run(
        &self,
        auth: Auth,
        id: Path<String>,
        body: Json<RunQueryDto>,
    ) -> ApiResult<super::runs::StartedResponse> {
        let values = parameter_values(body.0.parameters);
        let max_age = max_age(body.0.max_age_seconds);
        let runs = &self.0.services().runs;
        let started = runs
            .start_query(auth.actor(), &id, &values, max_age)
            .await?;
        Ok(StartedDto::respond(started))
    }
}
