//! `/canvases`: free-form boards of nodes (text, or links to a query, a
//! visualization or a dashboard) joined by edges. The graph's rules are the
//! core's.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use loupe_services::{Canvas, CanvasEdge, CanvasInput, CanvasNode, NodeKind};
use poem_openapi::param::{Path, Query as Q};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Union};

use super::ApiTags;
use super::bounded::Name;
use super::common::{Created, IfMatch, NoContent, Stamps, Tagged, created, tagged};
use super::lists::{self, FilterText, Page, PageLimit, PageOffset, Sort, list_request, page};
use crate::caller::Auth;
use crate::problem::ApiResult;
use crate::state::AppState;

/// Canvases.
#[derive(Debug)]
pub(crate) struct CanvasesApi(pub(crate) Arc<AppState>);

/// Where a node sits: any finite coordinates within ±10,000,000, a size
/// above 0.
#[derive(Debug, Clone, Object)]
pub(crate) struct NodeBoxDto {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

/// A node that shows text.
#[derive(Debug, Object)]
pub(crate) struct TextNodeDto {
    /// Its id, chosen by the client, unique in the canvas: 1 to 64 letters,
    /// digits, `-` or `_`.
    pub id: String,
    /// The text (Markdown, rendered by the client).
    pub text: String,
    /// Its place.
    #[oai(flatten)]
    pub place: NodeBoxDto,
}

/// A node that links to a saved query.
#[derive(Debug, Object)]
pub(crate) struct QueryNodeDto {
    /// Its id, chosen by the client, unique in the canvas.
    pub id: String,
    /// A query of this organization; `null` once it was deleted.
    #[oai(skip_serializing_if_is_none)]
    pub query_id: Option<String>,
    /// Its place.
    #[oai(flatten)]
    pub place: NodeBoxDto,
}

/// A node that links to a visualization.
#[derive(Debug, Object)]
pub(crate) struct VisualizationNodeDto {
    /// Its id, chosen by the client, unique in the canvas.
    pub id: String,
    /// A visualization of this organization; `null` once it was deleted.
    #[oai(skip_serializing_if_is_none)]
    pub visualization_id: Option<String>,
    /// Its place.
    #[oai(flatten)]
    pub place: NodeBoxDto,
}

/// A node that links to a dashboard.
#[derive(Debug, Object)]
pub(crate) struct DashboardNodeDto {
    /// Its id, chosen by the client, unique in the canvas.
    pub id: String,
    /// A dashboard of this organization; `null` once it was deleted.
    #[oai(skip_serializing_if_is_none)]
    pub dashboard_id: Option<String>,
    /// Its place.
    #[oai(flatten)]
    pub place: NodeBoxDto,
}

/// A node that links to a query or visualization the caller may not see
/// (none of their groups has a grant on its datasource): only its id and
/// place. Given back in an update it is ignored: the node stays as it is.
#[derive(Debug, Object)]
pub(crate) struct HiddenNodeDto {
    /// Its id, chosen by the client, unique in the canvas; edges may join it.
    pub id: String,
    /// Its place.
    #[oai(flatten)]
    pub place: NodeBoxDto,
}

/// A node of a canvas; `kind` says what it shows.
#[derive(Debug, Union)]
#[oai(discriminator_name = "kind", one_of)]
pub(crate) enum CanvasNodeDto {
    /// Text.
    #[oai(mapping = "text")]
    Text(TextNodeDto),
    /// A link to a saved query.
    #[oai(mapping = "query")]
    Query(QueryNodeDto),
    /// A link to a visualization.
    #[oai(mapping = "visualization")]
    Visualization(VisualizationNodeDto),
    /// A link to a dashboard.
    #[oai(mapping = "dashboard")]
    Dashboard(DashboardNodeDto),
    /// A link the caller may not see.
    #[oai(mapping = "hidden")]
    Hidden(HiddenNodeDto),
}

impl From<CanvasNode> for CanvasNodeDto {
    fn from(n: CanvasNode) -> Self {
        let id = n.id;
        let place = NodeBoxDto {
            x: n.x,
            y: n.y,
            w: n.w,
            h: n.h,
        };
        match n.kind {
            NodeKind::Text { text } => Self::Text(TextNodeDto { id, text, place }),
            NodeKind::Query { query_id } => Self::Query(QueryNodeDto {
                id,
                query_id,
                place,
            }),
            NodeKind::Visualization { visualization_id } => {
                Self::Visualization(VisualizationNodeDto {
                    id,
                    visualization_id,
                    place,
                })
            }
            NodeKind::Dashboard { dashboard_id } => Self::Dashboard(DashboardNodeDto {
                id,
                dashboard_id,
                place,
            }),
            NodeKind::Hidden {} => Self::Hidden(HiddenNodeDto { id, place }),
        }
    }
}

impl From<CanvasNodeDto> for CanvasNode {
    fn from(n: CanvasNodeDto) -> Self {
        let (id, kind, place) = match n {
            CanvasNodeDto::Text(t) => (t.id, NodeKind::Text { text: t.text }, t.place),
            CanvasNodeDto::Query(q) => (
                q.id,
                NodeKind::Query {
                    query_id: q.query_id,
                },
                q.place,
            ),
            CanvasNodeDto::Visualization(v) => (
                v.id,
                NodeKind::Visualization {
                    visualization_id: v.visualization_id,
                },
                v.place,
            ),
            CanvasNodeDto::Dashboard(d) => (
                d.id,
                NodeKind::Dashboard {
                    dashboard_id: d.dashboard_id,
                },
                d.place,
            ),
            CanvasNodeDto::Hidden(h) => (h.id, NodeKind::Hidden {}, h.place),
        };
        Self {
            id,
            kind,
            x: place.x,
            y: place.y,
            w: place.w,
            h: place.h,
        }
    }
}

/// An edge between two different nodes of the same canvas.
#[derive(Debug, Object)]
pub(crate) struct CanvasEdgeDto {
    /// Its id, chosen by the client, unique in the canvas.
    pub id: String,
    /// The node it starts at.
    pub from: String,
    /// The node it ends at.
    pub to: String,
    /// A label (at most 200 characters).
    #[oai(skip_serializing_if_is_none)]
    pub label: Option<String>,
}

impl From<CanvasEdge> for CanvasEdgeDto {
    fn from(e: CanvasEdge) -> Self {
        Self {
            id: e.id,
            from: e.from,
            to: e.to,
            label: e.label,
        }
    }
}

impl From<CanvasEdgeDto> for CanvasEdge {
    fn from(e: CanvasEdgeDto) -> Self {
        Self {
            id: e.id,
            from: e.from,
            to: e.to,
            label: e.label,
        }
    }
}

/// A canvas.
#[derive(Debug, Object)]
pub(crate) struct CanvasDto {
    /// Its id.
    pub id: String,
    /// Who owns it.
    pub owner_id: String,
    /// Its name.
    pub name: String,
    /// Other editors may change it too.
    pub shared: bool,
    /// Its nodes.
    pub nodes: Vec<CanvasNodeDto>,
    /// Its edges.
    pub edges: Vec<CanvasEdgeDto>,
    /// Its revision and times.
    #[oai(flatten)]
    pub stamps: Stamps,
}

impl From<Canvas> for CanvasDto {
    fn from(c: Canvas) -> Self {
        Self {
            stamps: Stamps::of(&c),
            id: c.id,
            owner_id: c.owner_id,
            name: c.name,
            shared: c.shared,
            nodes: c.nodes.into_iter().map(Into::into).collect(),
            edges: c.edges.into_iter().map(Into::into).collect(),
        }
    }
}

/// A canvas's settings, for create and (whole) update.
#[derive(Debug, Object)]
pub(crate) struct CanvasInputDto {
    /// Its name.
    pub name: Name,
    /// Let other editors change it.
    #[oai(default)]
    pub shared: bool,
    /// Its nodes (at most 500); an update replaces them all.
    #[oai(default)]
    pub nodes: Vec<CanvasNodeDto>,
    /// Its edges (at most 2000); an update replaces them all.
    #[oai(default)]
    pub edges: Vec<CanvasEdgeDto>,
}

impl From<CanvasInputDto> for CanvasInput {
    fn from(c: CanvasInputDto) -> Self {
        Self {
            name: c.name.into(),
            shared: c.shared,
            nodes: c.nodes.into_iter().map(Into::into).collect(),
            edges: c.edges.into_iter().map(Into::into).collect(),
        }
    }
}

#[OpenApi(prefix_path = "/canvases", tag = "ApiTags::Canvases")]
impl CanvasesApi {
    /// List the organization's canvases.
    #[oai(path = "/", method = "get", operation_id = "listCanvases")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: Auth,
        /// Rows per page.
        limit: Q<Option<PageLimit>>,
        /// Rows to skip.
        offset: Q<Option<PageOffset>>,
        /// The field to sort by; `-` first for descending.
        sort: Q<Option<Sort<lists::Canvases>>>,
        /// Text in the name.
        q: Q<Option<FilterText>>,
        /// Only this owner's.
        owner: Q<Option<FilterText>>,
        /// Only created at or after this time.
        created_after: Q<Option<DateTime<Utc>>>,
        /// Only created before this time.
        created_before: Q<Option<DateTime<Utc>>>,
        /// Only changed at or after this time.
        updated_after: Q<Option<DateTime<Utc>>>,
        /// Only changed before this time.
        updated_before: Q<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<Page<CanvasDto>>> {
        let request = list_request(
            limit.0,
            offset.0,
            sort.0,
            &[
                ("q", &q),
                ("owner", &owner),
                ("created_after", &created_after),
                ("created_before", &created_before),
                ("updated_after", &updated_after),
                ("updated_before", &updated_before),
            ],
        );
        let canvases = &self.0.services().canvases;
        Ok(page(canvases.list(auth.actor(), &request).await?))
    }

    /// Create a canvas with its nodes and edges. Editors and admins.
    #[oai(path = "/", method = "post", operation_id = "createCanvas")]
    async fn create(
        &self,
        auth: Auth,
        body: Json<CanvasInputDto>,
    ) -> ApiResult<Created<CanvasDto>> {
        let canvases = &self.0.services().canvases;
        let canvas = canvases.create(auth.actor(), body.0.into()).await?;
        Ok(created(canvas))
    }

    /// Get a canvas.
    #[oai(path = "/:id", method = "get", operation_id = "getCanvas")]
    async fn get(&self, auth: Auth, id: Path<String>) -> ApiResult<Tagged<CanvasDto>> {
        let canvas = self.0.services().canvases.get(auth.actor(), &id).await?;
        Ok(tagged(canvas))
    }

    /// Replace a canvas's name, nodes and edges.
    ///
    /// Its owner, admins, or any editor when it is shared. Needs `If-Match`
    /// with the canvas's `ETag`.
    #[oai(path = "/:id", method = "put", operation_id = "updateCanvas")]
    async fn update(
        &self,
        auth: Auth,
        id: Path<String>,
        /// The `ETag` from a GET of this canvas.
        #[oai(name = "If-Match")]
        if_match: IfMatch,
        body: Json<CanvasInputDto>,
    ) -> ApiResult<Tagged<CanvasDto>> {
        let canvases = &self.0.services().canvases;
        let canvas = canvases
            .update(auth.actor(), &id, if_match.revision(), body.0.into())
            .await?;
        Ok(tagged(canvas))
    }

    /// Delete a canvas (not what its nodes link to).
    #[oai(path = "/:id", method = "delete", operation_id = "deleteCanvas")]
    async fn delete(&self, auth: Auth, id: Path<String>) -> ApiResult<NoContent> {
        self.0.services().canvases.delete(auth.actor(), &id).await?;
        Ok(NoContent::Done)
    }
}
