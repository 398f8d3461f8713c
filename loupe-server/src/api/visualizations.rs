//! `/visualizations`: how a query's result is drawn. The options document
//! is free-form here; the core checks it against the type.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use loupe_services::{Visualization, VisualizationInput, VisualizationType};
use poem_openapi::param::{Header, Path, Query as Q};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};

use super::ApiTags;
use super::common::{
    Created, NoContent, Page, Tagged, created, if_match, list_request, page, tagged, ts,
};
use crate::auth::Auth;
use crate::problem::ApiResult;
use crate::state::AppState;

/// Visualizations.
#[derive(Debug)]
pub(crate) struct VisualizationsApi(pub(crate) Arc<AppState>);

/// The kind of chart or table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub(crate) enum VisualizationTypeDto {
    /// A table of rows. Options: `columns`, `page_size`.
    Table,
    /// Lines over an x axis. Options: `x`, `y` (columns), `series`,
    /// `x_label`, `y_label`.
    Line,
    /// Bars. Options as for `line`, plus `stacked`.
    Bar,
    /// Filled areas. Options as for `line`, plus `stacked`.
    Area,
    /// Points. Options: `x`, `y`, `size`, `series`.
    Scatter,
    /// Slices of a whole. Options: `label`, `value`.
    Pie,
    /// One big number. Options: `value`, `target`, `label`, `format`.
    Counter,
    /// A pivot table. Options: `rows`, `columns`, `values`, `aggregation`
    /// (`sum`, `count`, `avg`, `min`, `max`).
    Pivot,
}

impl From<VisualizationType> for VisualizationTypeDto {
    fn from(kind: VisualizationType) -> Self {
        match kind {
            VisualizationType::Table => Self::Table,
            VisualizationType::Line => Self::Line,
            VisualizationType::Bar => Self::Bar,
            VisualizationType::Area => Self::Area,
            VisualizationType::Scatter => Self::Scatter,
            VisualizationType::Pie => Self::Pie,
            VisualizationType::Counter => Self::Counter,
            VisualizationType::Pivot => Self::Pivot,
        }
    }
}

impl From<VisualizationTypeDto> for VisualizationType {
    fn from(kind: VisualizationTypeDto) -> Self {
        match kind {
            VisualizationTypeDto::Table => Self::Table,
            VisualizationTypeDto::Line => Self::Line,
            VisualizationTypeDto::Bar => Self::Bar,
            VisualizationTypeDto::Area => Self::Area,
            VisualizationTypeDto::Scatter => Self::Scatter,
            VisualizationTypeDto::Pie => Self::Pie,
            VisualizationTypeDto::Counter => Self::Counter,
            VisualizationTypeDto::Pivot => Self::Pivot,
        }
    }
}

/// A visualization of a query's result.
#[derive(Debug, Object)]
pub(crate) struct VisualizationDto {
    /// Its id.
    pub id: String,
    /// The query whose result it shows.
    pub query_id: String,
    /// Who owns it.
    pub owner_id: String,
    /// Its type.
    #[oai(rename = "type")]
    pub type_: VisualizationTypeDto,
    /// Its name.
    pub name: String,
    /// Options for its type.
    pub options: serde_json::Value,
    /// Increases with each change; the `ETag`.
    pub revision: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Visualization> for VisualizationDto {
    fn from(v: Visualization) -> Self {
        Self {
            id: v.id,
            query_id: v.query_id,
            owner_id: v.owner_id,
            type_: v.kind.into(),
            name: v.name,
            options: v.options,
            revision: v.revision,
            created_at: ts(v.created_at),
            updated_at: ts(v.updated_at),
        }
    }
}

fn empty_options() -> serde_json::Value {
    serde_json::json!({})
}

/// A visualization's settings, for create and (whole) update.
#[derive(Debug, Object)]
pub(crate) struct VisualizationInputDto {
    /// The query whose result it shows; it cannot change after creation.
    pub query_id: String,
    /// Its type.
    #[oai(rename = "type")]
    pub type_: VisualizationTypeDto,
    /// Its name.
    pub name: String,
    /// Options for its type (an object): the columns the type needs must
    /// be named; keys the type does not use are refused.
    #[oai(default = "empty_options")]
    pub options: serde_json::Value,
}

impl From<VisualizationInputDto> for VisualizationInput {
    fn from(v: VisualizationInputDto) -> Self {
        Self {
            query_id: v.query_id,
            kind: v.type_.into(),
            name: v.name,
            options: v.options,
        }
    }
}

#[OpenApi(prefix_path = "/visualizations", tag = "ApiTags::Visualizations")]
impl VisualizationsApi {
    /// List the visualizations of queries the caller may see.
    #[oai(path = "/", method = "get", operation_id = "listVisualizations")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: Auth,
        /// Rows per page (default 50, at most 200).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Q<Option<u32>>,
        /// Rows to skip.
        #[oai(validator(minimum(value = "0"), maximum(value = "1000000000000")))]
        offset: Q<Option<u64>>,
        /// `name`, `created_at` or `updated_at`; `-` first for descending
        /// (default `-updated_at`).
        #[oai(validator(pattern = "^(-?(name|created_at|updated_at))?$"))]
        sort: Q<Option<String>>,
        /// Text in the name.
        q: Q<Option<String>>,
        /// Only of this query.
        query: Q<Option<String>>,
        /// Only this owner's.
        owner: Q<Option<String>>,
        /// Only of this type.
        #[oai(name = "type")]
        type_: Q<Option<VisualizationTypeDto>>,
    ) -> ApiResult<Json<Page<VisualizationDto>>> {
        let kind = type_
            .0
            .map(|t| VisualizationType::from(t).as_str().to_owned());
        let request = list_request(
            limit.0,
            offset.0,
            sort.0,
            &[
                ("q", q.0),
                ("query", query.0),
                ("owner", owner.0),
                ("type", kind),
            ],
        );
        let found = self
            .0
            .deployment
            .services
            .visualizations
            .list(auth.actor(), &request)
            .await?;
        Ok(Json(page(found, VisualizationDto::from)))
    }

    /// Add a visualization to a query the caller may see. Editors and admins.
    #[oai(path = "/", method = "post", operation_id = "createVisualization")]
    async fn create(
        &self,
        auth: Auth,
        body: Json<VisualizationInputDto>,
    ) -> ApiResult<Created<VisualizationDto>> {
        let visualization = self
            .0
            .deployment
            .services
            .visualizations
            .create(auth.actor(), body.0.into())
            .await?;
        let revision = visualization.revision;
        Ok(created(visualization.into(), revision))
    }

    /// Get a visualization.
    #[oai(path = "/:id", method = "get", operation_id = "getVisualization")]
    async fn get(&self, auth: Auth, id: Path<String>) -> ApiResult<Tagged<VisualizationDto>> {
        let visualization = self
            .0
            .deployment
            .services
            .visualizations
            .get(auth.actor(), &id)
            .await?;
        let revision = visualization.revision;
        Ok(tagged(visualization.into(), revision))
    }

    /// Replace a visualization's type, name and options.
    ///
    /// Its query stays. Its owner, admins, or any editor when its query is
    /// shared. Needs `If-Match` with the visualization's `ETag`.
    #[oai(path = "/:id", method = "put", operation_id = "updateVisualization")]
    async fn update(
        &self,
        auth: Auth,
        id: Path<String>,
        /// The `ETag` from a GET of this visualization.
        #[oai(name = "If-Match", validator(pattern = r#"^(W/)?"[1-9][0-9]{0,17}"$"#))]
        if_match_header: Header<String>,
        body: Json<VisualizationInputDto>,
    ) -> ApiResult<Tagged<VisualizationDto>> {
        let revision = if_match(Some(if_match_header.0.as_str()))?;
        let visualization = self
            .0
            .deployment
            .services
            .visualizations
            .update(auth.actor(), &id, revision, body.0.into())
            .await?;
        let revision = visualization.revision;
        Ok(tagged(visualization.into(), revision))
    }

    /// Delete a visualization, and the dashboard widgets that show it.
    #[oai(path = "/:id", method = "delete", operation_id = "deleteVisualization")]
    async fn delete(&self, auth: Auth, id: Path<String>) -> ApiResult<NoContent> {
        self.0
            .deployment
            .services
            .visualizations
            .delete(auth.actor(), &id)
            .await?;
        Ok(NoContent::Done)
    }
}
