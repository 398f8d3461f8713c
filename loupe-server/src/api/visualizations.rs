//! `/visualizations`: how a query's result is drawn. The options document
//! is free-form here; the core checks it against the type.

use std::sync::Arc;

use loupe_services::{Visualization, VisualizationInput, VisualizationType};
use poem_openapi::param::{Path, Query as Q};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};

use super::ApiTags;
use super::bounded::Name;
use super::common::{Created, IfMatch, NoContent, Stamps, Tagged, created, same_variants, tagged};
use super::links::{Image, ImageFormatDto};
use super::lists::{self, FilterText, Page, PageLimit, PageOffset, Sort, list_request, page};
use crate::caller::Auth;
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

same_variants!(
    VisualizationTypeDto,
    VisualizationType: Table, Line, Bar, Area, Scatter, Pie, Counter, Pivot
);

impl lists::FilterValue for VisualizationTypeDto {
    fn filter_value(&self) -> String {
        VisualizationType::from(*self).as_str().to_owned()
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
    /// Its revision and times.
    #[oai(flatten)]
    pub stamps: Stamps,
}

impl From<Visualization> for VisualizationDto {
    fn from(v: Visualization) -> Self {
        Self {
            stamps: Stamps::of(&v),
            id: v.id,
            query_id: v.query_id,
            owner_id: v.owner_id,
            type_: v.kind.into(),
            name: v.name,
            options: v.options,
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
    pub name: Name,
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
            name: v.name.into(),
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
        /// Rows per page.
        limit: Q<Option<PageLimit>>,
        /// Rows to skip.
        offset: Q<Option<PageOffset>>,
        /// The field to sort by; `-` first for descending.
        sort: Q<Option<Sort<lists::Visualizations>>>,
        /// Text in the name.
        q: Q<Option<FilterText>>,
        /// Only of this query.
        query: Q<Option<FilterText>>,
        /// Only this owner's.
        owner: Q<Option<FilterText>>,
        /// Only of this type.
        #[oai(name = "type")]
        type_: Q<Option<VisualizationTypeDto>>,
    ) -> ApiResult<Json<Page<VisualizationDto>>> {
        let request = list_request(
            limit.0,
            offset.0,
            sort.0,
            &[
                ("q", &q),
                ("query", &query),
                ("owner", &owner),
                ("type", &type_),
            ],
        );
        let visualizations = &self.0.services().visualizations;
        Ok(page(visualizations.list(auth.actor(), &request).await?))
    }

    /// Add a visualization to a query the caller may see. Editors and admins.
    #[oai(path = "/", method = "post", operation_id = "createVisualization")]
    async fn create(
        &self,
        auth: Auth,
        body: Json<VisualizationInputDto>,
    ) -> ApiResult<Created<VisualizationDto>> {
        let visualizations = &self.0.services().visualizations;
        let visualization = visualizations.create(auth.actor(), body.0.into()).await?;
        Ok(created(visualization))
    }

    /// Get a visualization.
    #[oai(path = "/:id", method = "get", operation_id = "getVisualization")]
    async fn get(&self, auth: Auth, id: Path<String>) -> ApiResult<Tagged<VisualizationDto>> {
        let visualizations = &self.0.services().visualizations;
        let visualization = visualizations.get(auth.actor(), &id).await?;
        Ok(tagged(visualization))
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
        #[oai(name = "If-Match")]
        if_match: IfMatch,
        body: Json<VisualizationInputDto>,
    ) -> ApiResult<Tagged<VisualizationDto>> {
        let visualizations = &self.0.services().visualizations;
        let visualization = visualizations
            .update(auth.actor(), &id, if_match.revision(), body.0.into())
            .await?;
        Ok(tagged(visualization))
    }

    /// Draw the visualization from the latest stored result of its query,
    /// as an image (the first 10,000 rows of the result). 409
    /// `result.not_found` when the query has no stored result yet.
    #[oai(
        path = "/:id/image",
        method = "get",
        operation_id = "getVisualizationImage"
    )]
    async fn image(
        &self,
        auth: Auth,
        id: Path<String>,
        /// `png` (the default) or `svg`.
        #[oai(default = "ImageFormatDto::png")]
        format: Q<ImageFormatDto>,
        /// Width in pixels (with `height`; 800 when both are left out).
        width: Q<Option<u32>>,
        /// Height in pixels (with `width`; 450 when both are left out).
        height: Q<Option<u32>>,
    ) -> ApiResult<Image> {
        let size = match (width.0, height.0) {
            (None, None) => None,
            (Some(w), Some(h)) => Some((w, h)),
            _ => {
                return Err(loupe_core::Error::field(
                    "width",
                    loupe_core::codes::field::REQUIRED,
                    "give both width and height, or neither",
                )
                .into());
            }
        };
        let visualizations = &self.0.services().visualizations;
        let image = visualizations
            .image(auth.actor(), &id, format.0.into(), size)
            .await?;
        Ok(Image(image))
    }

    /// Delete a visualization, and the dashboard widgets that show it.
    #[oai(path = "/:id", method = "delete", operation_id = "deleteVisualization")]
    async fn delete(&self, auth: Auth, id: Path<String>) -> ApiResult<NoContent> {
        self.0
            .services()
            .visualizations
            .delete(auth.actor(), &id)
            .await?;
        Ok(NoContent::Done)
    }
}
