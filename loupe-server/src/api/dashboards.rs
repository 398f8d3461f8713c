//! `/dashboards`: grids of widgets with parameters at the top, and a run
//! of every widget's query at once. The grid, the mappings and who may
//! change what are the core's rules.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use loupe_services::{
    Dashboard, DashboardInput, DashboardParameter, Widget, WidgetInput, WidgetKind,
};
use poem_openapi::param::{Path, Query as Q};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Union};

use super::ApiTags;
use super::bounded::Name;
use super::common::{Created, IfMatch, NoContent, Stamps, Tagged, created, tagged};
use super::lists::{self, FilterText, Page, PageLimit, PageOffset, Sort, list_request, page};
use super::queries::{ParameterDto, parameter_defs};
use super::runs::{MaxAge, StartedDto, max_age, parameter_values};
use crate::caller::Auth;
use crate::problem::{ApiResult, Problem};
use crate::state::AppState;

/// Dashboards.
#[derive(Debug)]
pub(crate) struct DashboardsApi(pub(crate) Arc<AppState>);

/// Where a widget sits on the grid of 24 columns. Widgets may not overlap.
#[derive(Debug, Clone, Object)]
pub(crate) struct GridPlaceDto {
    /// Column of its left edge, from 0.
    pub x: u32,
    /// Row of its top edge, from 0.
    pub y: u32,
    /// Width in columns (1 to 24; `x + w` at most 24).
    pub w: u32,
    /// Height in rows.
    pub h: u32,
}

/// A widget that shows a visualization.
#[derive(Debug, Object)]
pub(crate) struct VisualizationWidgetDto {
    /// Its id.
    pub id: String,
    /// The visualization.
    pub visualization_id: String,
    /// The query behind the visualization.
    #[oai(skip_serializing_if_is_none)]
    pub query_id: Option<String>,
    /// Its place on the grid.
    #[oai(flatten)]
    pub place: GridPlaceDto,
    /// Query parameter name -> dashboard parameter name.
    pub parameter_mappings: BTreeMap<String, String>,
}

/// A widget that shows text.
#[derive(Debug, Object)]
pub(crate) struct TextWidgetDto {
    /// Its id.
    pub id: String,
    /// The text (Markdown, rendered by the client).
    pub text: String,
    /// Its place on the grid.
    #[oai(flatten)]
    pub place: GridPlaceDto,
    /// Always empty: text has no parameters.
    pub parameter_mappings: BTreeMap<String, String>,
}

/// A widget that shows a visualization the caller may not see (none of
/// their groups has a grant on its query's datasource): only its place.
/// It stays where it is through updates by the caller.
#[derive(Debug, Object)]
pub(crate) struct HiddenWidgetDto {
    /// Its place on the grid.
    #[oai(flatten)]
    pub place: GridPlaceDto,
}

/// A widget of a dashboard; `kind` says what it shows.
#[derive(Debug, Union)]
#[oai(discriminator_name = "kind", one_of)]
pub(crate) enum WidgetDto {
    /// A visualization of a query's result.
    #[oai(mapping = "visualization")]
    Visualization(VisualizationWidgetDto),
    /// Text.
    #[oai(mapping = "text")]
    Text(TextWidgetDto),
    /// A visualization the caller may not see.
    #[oai(mapping = "hidden")]
    Hidden(HiddenWidgetDto),
}

impl From<Widget> for WidgetDto {
    fn from(w: Widget) -> Self {
        let place = GridPlaceDto {
            x: w.x,
            y: w.y,
            w: w.w,
            h: w.h,
        };
        match w.kind {
            WidgetKind::Visualization { visualization_id } => {
                Self::Visualization(VisualizationWidgetDto {
                    id: w.id,
                    visualization_id,
                    query_id: w.query_id,
                    place,
                    parameter_mappings: w.parameter_mappings,
                })
            }
            WidgetKind::Text { text } => Self::Text(TextWidgetDto {
                id: w.id,
                text,
                place,
                parameter_mappings: w.parameter_mappings,
            }),
            WidgetKind::Hidden {} => Self::Hidden(HiddenWidgetDto { place }),
        }
    }
}

/// A new widget that shows a visualization.
#[derive(Debug, Object)]
pub(crate) struct VisualizationWidgetInputDto {
    /// A visualization of this organization.
    pub visualization_id: String,
    /// Its place on the grid.
    #[oai(flatten)]
    pub place: GridPlaceDto,
    /// Query parameter name -> dashboard parameter name, of the same type.
    /// Unmapped parameters take the query's defaults.
    #[oai(default)]
    pub parameter_mappings: BTreeMap<String, String>,
}

/// A new widget that shows text.
#[derive(Debug, Object)]
pub(crate) struct TextWidgetInputDto {
    /// The text (Markdown, rendered by the client).
    pub text: String,
    /// Its place on the grid.
    #[oai(flatten)]
    pub place: GridPlaceDto,
    /// Must be empty: text has no parameters.
    #[oai(default)]
    pub parameter_mappings: BTreeMap<String, String>,
}

/// A `hidden` widget as read, given back in an update: ignored, since the
/// widgets hidden from the caller keep their place whatever the update
/// says. Accepted so that a client can send back what it read.
#[derive(Debug, Object)]
pub(crate) struct HiddenWidgetInputDto {
    /// Its place as read (not changed by the update).
    #[oai(flatten)]
    pub place: GridPlaceDto,
}

/// A widget as given in a create or update; `kind` says what it shows.
#[derive(Debug, Union)]
#[oai(discriminator_name = "kind", one_of)]
pub(crate) enum WidgetInputDto {
    /// A visualization of a query's result.
    #[oai(mapping = "visualization")]
    Visualization(VisualizationWidgetInputDto),
    /// Text.
    #[oai(mapping = "text")]
    Text(TextWidgetInputDto),
    /// A widget hidden from the caller, as read: ignored.
    #[oai(mapping = "hidden")]
    Hidden(HiddenWidgetInputDto),
}

impl From<WidgetInputDto> for WidgetInput {
    fn from(w: WidgetInputDto) -> Self {
        let (kind, place, parameter_mappings) = match w {
            WidgetInputDto::Visualization(v) => (
                WidgetKind::Visualization {
                    visualization_id: v.visualization_id,
                },
                v.place,
                v.parameter_mappings,
            ),
            WidgetInputDto::Text(t) => (
                WidgetKind::Text { text: t.text },
                t.place,
                t.parameter_mappings,
            ),
            WidgetInputDto::Hidden(h) => (WidgetKind::Hidden {}, h.place, BTreeMap::new()),
        };
        Self {
            kind,
            x: place.x,
            y: place.y,
            w: place.w,
            h: place.h,
            parameter_mappings,
        }
    }
}

/// A dashboard.
#[derive(Debug, Object)]
pub(crate) struct DashboardDto {
    /// Its id.
    pub id: String,
    /// Who owns it.
    pub owner_id: String,
    /// Its name.
    pub name: String,
    /// Its address within the organization, unique there.
    pub slug: String,
    /// Tags, lowercase and sorted.
    pub tags: Vec<String>,
    /// Parameters shown at the top; widgets map their queries' parameters
    /// onto them.
    pub parameters: Vec<ParameterDto>,
    /// Other editors may change it too.
    pub shared: bool,
    /// Its widgets, top to bottom, left to right. A visualization on a
    /// datasource the caller has no grant on shows as a `hidden` widget.
    pub widgets: Vec<WidgetDto>,
    /// Its revision and times.
    #[oai(flatten)]
    pub stamps: Stamps,
}

impl From<Dashboard> for DashboardDto {
    fn from(d: Dashboard) -> Self {
        Self {
            stamps: Stamps::of(&d),
            id: d.id,
            owner_id: d.owner_id,
            name: d.name,
            slug: d.slug,
            tags: d.tags,
            parameters: d.parameters.into_iter().map(ParameterDto::from).collect(),
            shared: d.shared,
            widgets: d.widgets.into_iter().map(WidgetDto::from).collect(),
        }
    }
}

/// A dashboard's settings, for create and (whole) update.
#[derive(Debug, Object)]
pub(crate) struct DashboardInputDto {
    /// Its name.
    pub name: Name,
    /// Its address: 1 to 100 lowercase letters, digits and inner `-`; made
    /// from the name when not given.
    #[oai(skip_serializing_if_is_none)]
    pub slug: Option<String>,
    /// Tags.
    #[oai(default)]
    pub tags: Vec<String>,
    /// Parameters shown at the top.
    #[oai(default)]
    pub parameters: Vec<ParameterDto>,
    /// Let other editors change it.
    #[oai(default)]
    pub shared: bool,
    /// The widgets (at most 200); an update replaces them all, except the
    /// widgets hidden from the caller, which keep their place.
    #[oai(default)]
    pub widgets: Vec<WidgetInputDto>,
}

impl DashboardInputDto {
    /// The core input, with the parameters already converted (by
    /// [`parameter_defs`], which names the one that is not valid).
    fn into_core(self, parameters: Vec<DashboardParameter>) -> DashboardInput {
        DashboardInput {
            parameters,
            name: self.name.into(),
            slug: self.slug,
            tags: self.tags,
            shared: self.shared,
            widgets: self.widgets.into_iter().map(WidgetInput::from).collect(),
        }
    }
}

/// Values for a run of every widget of a dashboard.
#[derive(Debug, Object)]
pub(crate) struct RunDashboardDto {
    /// Dashboard parameter values by name; the dashboard's defaults, then
    /// the queries' own defaults, fill the rest.
    #[oai(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// Reuse results at most this many seconds old instead of running
    /// again; 0 or absent always runs (identical runs in flight are still
    /// joined).
    #[oai(skip_serializing_if_is_none)]
    pub max_age_seconds: Option<MaxAge>,
}

/// How the run of one widget started: `run`, or `error` when it could not.
#[derive(Debug, Object)]
pub(crate) struct WidgetRunDto {
    /// The widget.
    pub widget_id: String,
    /// The run of the widget's query; poll `GET /runs/{id}`.
    #[oai(skip_serializing_if_is_none)]
    pub run: Option<StartedDto>,
    /// Why the widget's query did not start (such as no grant on its
    /// datasource, or a parameter value that does not fit).
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<Problem>,
}

/// The runs of a dashboard's widgets.
#[derive(Debug, ApiResponse)]
pub(crate) enum WidgetRunsResponse {
    /// One entry per visualization widget: its run (poll `GET /runs/{id}`),
    /// or why it did not start.
    #[oai(status = 200)]
    Started(Json<Vec<WidgetRunDto>>),
}

impl WidgetRunDto {
    fn new(widget_id: String, started: ApiResult<StartedDto>) -> Self {
        let (run, error) = match started {
            Ok(run) => (Some(run), None),
            Err(e) => (None, Some(e.problem().clone())),
        };
        Self {
            widget_id,
            run,
            error,
        }
    }
}

#[OpenApi(prefix_path = "/dashboards", tag = "ApiTags::Dashboards")]
impl DashboardsApi {
    /// List the organization's dashboards.
    #[oai(path = "/", method = "get", operation_id = "listDashboards")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: Auth,
        /// Rows per page.
        limit: Q<Option<PageLimit>>,
        /// Rows to skip.
        offset: Q<Option<PageOffset>>,
        /// The field to sort by; `-` first for descending.
        sort: Q<Option<Sort<lists::Dashboards>>>,
        /// Text in the name.
        q: Q<Option<FilterText>>,
        /// Only this owner's.
        owner: Q<Option<FilterText>>,
        /// Only with this tag.
        tag: Q<Option<FilterText>>,
        /// Only created at or after this time.
        created_after: Q<Option<DateTime<Utc>>>,
        /// Only created before this time.
        created_before: Q<Option<DateTime<Utc>>>,
        /// Only changed at or after this time.
        updated_after: Q<Option<DateTime<Utc>>>,
        /// Only changed before this time.
        updated_before: Q<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<Page<DashboardDto>>> {
        let request = list_request(
            limit.0,
            offset.0,
            sort.0,
            &[
                ("q", &q),
                ("owner", &owner),
                ("tag", &tag),
                ("created_after", &created_after),
                ("created_before", &created_before),
                ("updated_after", &updated_after),
                ("updated_before", &updated_before),
            ],
        );
        let dashboards = &self.0.services().dashboards;
        Ok(page(dashboards.list(auth.actor(), &request).await?))
    }

    /// Create a dashboard with its parameters and widgets. Editors and admins.
    #[oai(path = "/", method = "post", operation_id = "createDashboard")]
    async fn create(
        &self,
        auth: Auth,
        body: Json<DashboardInputDto>,
    ) -> ApiResult<Created<DashboardDto>> {
        let parameters = parameter_defs(&body.parameters)?;
        let input = body.0.into_core(parameters);
        let dashboard = self
            .0
            .services()
            .dashboards
            .create(auth.actor(), input)
            .await?;
        Ok(created(dashboard))
    }

    /// Get a dashboard by id.
    #[oai(path = "/:id", method = "get", operation_id = "getDashboard")]
    async fn get(&self, auth: Auth, id: Path<String>) -> ApiResult<Tagged<DashboardDto>> {
        let dashboard = self.0.services().dashboards.get(auth.actor(), &id).await?;
        Ok(tagged(dashboard))
    }

    /// Get a dashboard by its slug.
    #[oai(
        path = "/by-slug/:slug",
        method = "get",
        operation_id = "getDashboardBySlug"
    )]
    async fn get_by_slug(&self, auth: Auth, slug: Path<String>) -> ApiResult<Tagged<DashboardDto>> {
        let dashboards = &self.0.services().dashboards;
        let dashboard = dashboards.get_by_slug(auth.actor(), &slug).await?;
        Ok(tagged(dashboard))
    }

    /// Replace a dashboard's settings, parameters and widgets.
    ///
    /// Its owner, admins, or any editor when it is shared. Needs `If-Match`
    /// with the dashboard's `ETag`.
    #[oai(path = "/:id", method = "put", operation_id = "updateDashboard")]
    async fn update(
        &self,
        auth: Auth,
        id: Path<String>,
        /// The `ETag` from a GET of this dashboard.
        #[oai(name = "If-Match")]
        if_match: IfMatch,
        body: Json<DashboardInputDto>,
    ) -> ApiResult<Tagged<DashboardDto>> {
        let parameters = parameter_defs(&body.parameters)?;
        let input = body.0.into_core(parameters);
        let dashboards = &self.0.services().dashboards;
        let dashboard = dashboards
            .update(auth.actor(), &id, if_match.revision(), input)
            .await?;
        Ok(tagged(dashboard))
    }

    /// Delete a dashboard and its widgets (not the visualizations).
    #[oai(path = "/:id", method = "delete", operation_id = "deleteDashboard")]
    async fn delete(&self, auth: Auth, id: Path<String>) -> ApiResult<NoContent> {
        self.0
            .services()
            .dashboards
            .delete(auth.actor(), &id)
            .await?;
        Ok(NoContent::Done)
    }

    /// Run all widgets.
    ///
    /// Starts the query of every visualization widget with the dashboard's
    /// parameter values, mapped onto each query's parameters. Answers one
    /// entry per visualization widget (text widgets have no query), in the
    /// dashboard's order; a widget that cannot start carries its `error`
    /// without hiding the others.
    #[oai(path = "/:id/run", method = "post", operation_id = "runDashboard")]
    async fn run(
        &self,
        auth: Auth,
        id: Path<String>,
        body: Json<RunDashboardDto>,
    ) -> ApiResult<WidgetRunsResponse> {
        let values = parameter_values(body.0.parameters);
        let max_age = max_age(body.0.max_age_seconds);
        let runs = self
            .0
            .services()
            .dashboards
            .run(auth.actor(), &id, &values, max_age)
            .await?
            .into_iter()
            .map(|(widget_id, started)| {
                WidgetRunDto::new(
                    widget_id,
                    started
                        .map(StartedDto::from)
                        .map_err(crate::problem::ApiError::from),
                )
            })
            .collect();
        Ok(WidgetRunsResponse::Started(Json(runs)))
    }
}
