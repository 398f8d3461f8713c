//! Public links: making, listing and revoking them
//! (`/dashboards/{id}/share`, `/visualizations/{id}/share`,
//! `/queries/{id}/share` and their `shares` and `share/{share_id}`), and
//! `/public/{token}`, the page a link opens without signing in. The page's
//! shape is shared with signed embedding (`super::embedding`): the
//! object's public definition and, per widget, its stored result's first
//! rows, read with the page reader of `/runs/{id}/results`. Who may share
//! what, which results a page shows and when it refreshes them are the
//! services' rules (`ShareService`).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use loupe_core::{Error, PageRequest, ParameterValues, codes};
use loupe_services::{
    PublicContent, PublicPage, PublicResult, ResultState, Share, ShareInput, ShareKind, limits,
};
use poem_openapi::param::{Path, Query as Q};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::ApiTags;
use super::bounded::Bounded;
use super::common::{NoContent, micros, no_store, same_variants, ts, ts_opt};
use super::dashboards::GridPlaceDto;
use super::runs::ColumnDto;
use super::visualizations::VisualizationTypeDto;
use crate::caller::Auth;
use crate::problem::ApiResult;
use crate::state::AppState;

/// A page's answer may hold rows only its link's holders should see, and
/// it changes as results refresh: no cache keeps it.
const PAGE_CACHE: &str = "no-store";
/// Public pages are not for search engines.
const PAGE_ROBOTS: &str = "noindex, nofollow";

/// Making, listing and revoking public links.
#[derive(Debug)]
pub(crate) struct SharesApi(pub(crate) Arc<AppState>);

/// The pages public links open.
#[derive(Debug)]
pub(crate) struct PublicApi(pub(crate) Arc<AppState>);

/// What a link or an embedding token shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub(crate) enum ShareKindDto {
    /// A dashboard: its widgets, each with its result.
    Dashboard,
    /// A visualization and its query's result.
    Visualization,
    /// A saved query's result, as a table.
    Query,
}

same_variants!(ShareKindDto, ShareKind: Dashboard, Visualization, Query);

/// How old a result a link's page shows before its views refresh it, in
/// seconds.
type ShareMaxAge = Bounded<1, { limits::MAX_AGE_SECONDS }>;

/// A new public link.
#[derive(Debug, Object)]
pub(crate) struct ShareInputDto {
    /// How old a result the page shows before a view queues a refresh
    /// (under the sharer's access, at most once per
    /// `sharing.refresh_every` per result).
    pub max_age_seconds: ShareMaxAge,
    /// When the link stops working; never, if absent.
    #[oai(skip_serializing_if_is_none)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Fixed values of the object's parameters (a dashboard's own
    /// parameters, else its query's); the object's defaults fill the rest.
    #[oai(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// Per parameter, the values a viewer may choose among (1 to 100);
    /// a fixed value given for it must be one of them. Parameters not
    /// listed here are fixed.
    #[oai(default)]
    pub options: BTreeMap<String, Vec<serde_json::Value>>,
}

/// A public link as its object's editors list it: never its token.
#[derive(Debug, Object)]
pub(crate) struct ShareDto {
    /// Its id.
    pub id: String,
    /// What it shows.
    pub kind: ShareKindDto,
    /// The dashboard, visualization or query.
    pub object_id: String,
    /// Who made it: the link acts with their access.
    pub created_by: String,
    /// The fixed parameter values.
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// The values viewers may choose among, per parameter.
    pub options: BTreeMap<String, Vec<serde_json::Value>>,
    /// How old a result the page shows before its views refresh it.
    pub max_age_seconds: u64,
    /// When it stops working.
    #[oai(skip_serializing_if_is_none)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Views so far (the last few seconds' may not be counted yet).
    pub views: i64,
    /// When it was last viewed.
    #[oai(skip_serializing_if_is_none)]
    pub last_viewed_at: Option<DateTime<Utc>>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

impl From<Share> for ShareDto {
    fn from(s: Share) -> Self {
        Self {
            id: s.id,
            kind: s.kind.into(),
            object_id: s.object_id,
            created_by: s.created_by,
            parameters: s.parameters,
            options: s.options,
            max_age_seconds: s.max_age.as_secs(),
            expires_at: ts_opt(s.expires_at),
            views: s.views,
            last_viewed_at: ts_opt(s.last_viewed_at),
            created_at: ts(s.created_at),
        }
    }
}

/// A link just made: the only time its token is shown.
#[derive(Debug, Object)]
pub(crate) struct NewShareDto {
    /// The link as it will be listed.
    pub share: ShareDto,
    /// The token. Shown once; Loupe keeps only its hash.
    pub token: String,
    /// The page's address: `GET` it without signing in. Absolute when
    /// `public_url` is configured.
    pub url: String,
}

/// A link made.
#[derive(Debug, ApiResponse)]
pub(crate) enum ShareCreated {
    /// Made; the token is in the body, once.
    #[oai(status = 201)]
    Created(
        Json<NewShareDto>,
        /// Tokens are secrets: never cached.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

/// A parameter of a page: the value in effect and what a viewer may
/// choose. Its definition is limited to that: a fixed parameter offers
/// nothing.
#[derive(Debug, Object)]
pub(crate) struct PublicParameterDto {
    /// Its name; choose a value with `parameters={"<name>": <value>}`.
    pub name: String,
    /// Its label, if it has one.
    #[oai(skip_serializing_if_is_none)]
    pub title: Option<String>,
    /// `text`, `integer`, `number`, `boolean`, `date`, `datetime`,
    /// `date_range`, `enum` or `list`.
    #[oai(rename = "type")]
    pub type_: String,
    /// The value in effect; absent when the query's own default applies.
    #[oai(skip_serializing_if_is_none)]
    pub value: Option<serde_json::Value>,
    /// The values a viewer may choose among; empty when it is fixed.
    pub choices: Vec<serde_json::Value>,
}

/// What a widget of a page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub(crate) enum PublicWidgetKindDto {
    /// A visualization (`visualization`) of a stored result (`result`).
    Visualization,
    /// A query's stored result (`result`), as a table.
    Table,
    /// Text (`text`, Markdown).
    Text,
    /// Something the link's sharer may not see: its place only.
    Hidden,
}

/// A visualization as a page shows it.
#[derive(Debug, Object)]
pub(crate) struct PublicVisualizationDto {
    /// Its name.
    pub name: String,
    /// Its type.
    #[oai(rename = "type")]
    pub type_: VisualizationTypeDto,
    /// Options for its type (column names and display settings).
    pub options: serde_json::Value,
}

/// Whether a widget has a result to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub(crate) enum ResultStateDto {
    /// `columns` and `rows` hold the newest stored result.
    Ready,
    /// No result yet: the first run is queued (`refreshing`) or will be at
    /// a later view.
    Pending,
    /// The page cannot show this result any more.
    Unavailable,
}

/// The stored result a widget shows: its first rows.
#[derive(Debug, Object)]
pub(crate) struct PublicResultDto {
    /// Whether there is a result.
    pub state: ResultStateDto,
    /// The result is older than the page allows (or there is none); a
    /// refresh is queued at most once per interval.
    pub stale: bool,
    /// A run of this result is queued or running.
    pub refreshing: bool,
    /// When the result was made.
    #[oai(skip_serializing_if_is_none)]
    pub finished_at: Option<DateTime<Utc>>,
    /// The columns of `rows`.
    pub columns: Vec<ColumnDto>,
    /// The first rows (up to `sharing.rows`), encoded as `/runs/{id}/results`
    /// encodes them.
    pub rows: Vec<Vec<serde_json::Value>>,
    /// Rows in the whole result.
    pub total_rows: u64,
    /// A limit stopped the run before its end.
    pub truncated: bool,
}

/// One widget of a page.
#[derive(Debug, Object)]
pub(crate) struct PublicWidgetDto {
    /// The widget's id.
    pub id: String,
    /// What it shows.
    pub kind: PublicWidgetKindDto,
    /// Its place on a dashboard's grid (24 columns).
    #[oai(skip_serializing_if_is_none)]
    pub place: Option<GridPlaceDto>,
    /// A text widget's text.
    #[oai(skip_serializing_if_is_none)]
    pub text: Option<String>,
    /// A visualization widget's visualization.
    #[oai(skip_serializing_if_is_none)]
    pub visualization: Option<PublicVisualizationDto>,
    /// The result a visualization or table shows.
    #[oai(skip_serializing_if_is_none)]
    pub result: Option<PublicResultDto>,
}

/// A page: what a public link or an embedding token shows. Never the SQL,
/// the owner or the datasource.
#[derive(Debug, Object)]
pub(crate) struct PublicPageDto {
    /// What it shows.
    pub kind: ShareKindDto,
    /// The object's name.
    pub name: String,
    /// The query's description.
    #[oai(skip_serializing_if_is_none)]
    pub description: Option<String>,
    /// The object's parameters.
    pub parameters: Vec<PublicParameterDto>,
    /// A dashboard's widgets in order; one for a visualization or a query.
    pub widgets: Vec<PublicWidgetDto>,
    /// When the link or token stops working.
    #[oai(skip_serializing_if_is_none)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A page.
#[derive(Debug, ApiResponse)]
pub(crate) enum PublicPageResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(
        Json<PublicPageDto>,
        /// `no-store`: the page changes as results refresh, and only the
        /// link's holders should see it.
        #[oai(header = "Cache-Control")]
        String,
        /// `noindex, nofollow`.
        #[oai(header = "X-Robots-Tag")]
        String,
    ),
}

impl PublicPageResponse {
    /// `page` with each ready result's first rows read from the result
    /// store.
    pub(crate) async fn read(state: &AppState, page: PublicPage) -> loupe_core::Result<Self> {
        let rows = u64::from(state.config.deployment.sharing.rows);
        let widgets = futures::future::try_join_all(
            page.widgets
                .into_iter()
                .map(|w| widget(state, w.id, w.place, w.content, rows)),
        )
        .await?;
        let dto = PublicPageDto {
            kind: page.kind.into(),
            name: page.name,
            description: Some(page.description).filter(|d| !d.is_empty()),
            parameters: page
                .parameters
                .into_iter()
                .map(|p| PublicParameterDto {
                    name: p.name,
                    title: p.title,
                    type_: p.kind.to_owned(),
                    value: p.value,
                    choices: p.choices,
                })
                .collect(),
            widgets,
            expires_at: ts_opt(page.expires_at),
        };
        Ok(Self::Ok(
            Json(dto),
            PAGE_CACHE.to_owned(),
            PAGE_ROBOTS.to_owned(),
        ))
    }
}

async fn widget(
    state: &AppState,
    id: String,
    place: Option<loupe_services::GridPlace>,
    content: PublicContent,
    rows: u64,
) -> loupe_core::Result<PublicWidgetDto> {
    let place = place.map(|p| GridPlaceDto {
        x: p.x,
        y: p.y,
        w: p.w,
        h: p.h,
    });
    let mut dto = PublicWidgetDto {
        id,
        kind: PublicWidgetKindDto::Hidden,
        place,
        text: None,
        visualization: None,
        result: None,
    };
    match content {
        PublicContent::Text(text) => {
            dto.kind = PublicWidgetKindDto::Text;
            dto.text = Some(text);
        }
        PublicContent::Hidden => {}
        PublicContent::Visualization {
            name,
            kind,
            options,
            result,
        } => {
            dto.kind = PublicWidgetKindDto::Visualization;
            dto.visualization = Some(PublicVisualizationDto {
                name,
                type_: kind.into(),
                options,
            });
            dto.result = Some(result_dto(state, result, rows).await?);
        }
        PublicContent::Table(result) => {
            dto.kind = PublicWidgetKindDto::Table;
            dto.result = Some(result_dto(state, result, rows).await?);
        }
    }
    Ok(dto)
}

/// A widget's result with its first `rows` rows, read as
/// `/runs/{id}/results` reads a page.
async fn result_dto(
    state: &AppState,
    result: PublicResult,
    rows: u64,
) -> loupe_core::Result<PublicResultDto> {
    let mut dto = PublicResultDto {
        state: ResultStateDto::Pending,
        stale: result.stale,
        refreshing: result.refreshing,
        finished_at: None,
        columns: Vec::new(),
        rows: Vec::new(),
        total_rows: 0,
        truncated: false,
    };
    match result.state {
        ResultState::Pending => {}
        ResultState::Unavailable => dto.state = ResultStateDto::Unavailable,
        ResultState::Ready { run, result } => {
            let page = match state
                .deployment
                .results
                .read_page(&result, &PageRequest::new(0, rows))
                .await
            {
                Ok(page) => page,
                // Removed by retention since the run was read: as if
                // there were none yet.
                Err(Error::NotFound { .. }) => {
                    dto.stale = true;
                    return Ok(dto);
                }
                Err(e) => return Err(e),
            };
            dto.state = ResultStateDto::Ready;
            dto.finished_at = ts_opt(run.finished_at);
            dto.truncated = run.truncated.is_some();
            dto.columns = page
                .schema
                .fields()
                .iter()
                .map(|f| ColumnDto {
                    name: f.name().clone(),
                    type_: f.data_type().to_string(),
                })
                .collect();
            dto.rows = loupe_core::json_rows(&page.batches)?;
            dto.total_rows = page.total_rows;
        }
    }
    Ok(dto)
}

/// The values a viewer chose, from `parameters`: a JSON object of
/// parameter name to value.
pub(crate) fn choices(parameters: Option<&str>) -> loupe_core::Result<ParameterValues> {
    let Some(text) = parameters.filter(|t| !t.trim().is_empty()) else {
        return Ok(ParameterValues::new());
    };
    serde_json::from_str::<ParameterValues>(text).map_err(|e| {
        Error::field(
            "parameters",
            codes::field::INVALID,
            format!(
                "parameters is a JSON object of parameter name to value, such as {{\"region\":\"EU\"}} (URL-encoded): {e}"
            ),
        )
    })
}

impl SharesApi {
    async fn create(
        &self,
        auth: &Auth,
        kind: ShareKind,
        id: &str,
        body: ShareInputDto,
    ) -> ApiResult<ShareCreated> {
        let input = ShareInput {
            max_age: std::time::Duration::from_secs(body.max_age_seconds.get()),
            expires_at: body.expires_at.map(micros),
            parameters: body.parameters,
            options: body.options,
        };
        let created = self
            .0
            .services()
            .shares
            .create(auth.actor(), kind, id, input)
            .await?;
        let base = self
            .0
            .config
            .deployment
            .public_url
            .as_deref()
            .unwrap_or("")
            .trim_end_matches('/');
        let url = format!("{base}/api/v1/public/{}", created.token);
        Ok(ShareCreated::Created(
            Json(NewShareDto {
                share: created.share.into(),
                token: created.token,
                url,
            }),
            no_store(),
        ))
    }

    async fn list(&self, auth: &Auth, kind: ShareKind, id: &str) -> ApiResult<Json<Vec<ShareDto>>> {
        let shares = self
            .0
            .services()
            .shares
            .list(auth.actor(), kind, id)
            .await?;
        Ok(Json(shares.into_iter().map(Into::into).collect()))
    }

    async fn revoke(
        &self,
        auth: &Auth,
        kind: ShareKind,
        id: &str,
        share_id: &str,
    ) -> ApiResult<NoContent> {
        let shares = &self.0.services().shares;
        shares.revoke(auth.actor(), kind, id, share_id).await?;
        Ok(NoContent::Done)
    }
}

#[OpenApi(tag = "ApiTags::Sharing")]
impl SharesApi {
    /// Share a dashboard by a public link.
    ///
    /// Its owner (an editor), any editor when it is shared, or an admin,
    /// who may also run every widget's query. The link acts with the
    /// sharer's access; the token is in this response only.
    #[oai(
        path = "/dashboards/:id/share",
        method = "post",
        operation_id = "createDashboardShare"
    )]
    async fn share_dashboard(
        &self,
        auth: Auth,
        id: Path<String>,
        body: Json<ShareInputDto>,
    ) -> ApiResult<ShareCreated> {
        self.create(&auth, ShareKind::Dashboard, &id, body.0).await
    }

    /// List a dashboard's public links that are not revoked (never their
    /// tokens). Whoever may change the dashboard.
    #[oai(
        path = "/dashboards/:id/shares",
        method = "get",
        operation_id = "listDashboardShares"
    )]
    async fn dashboard_shares(
        &self,
        auth: Auth,
        id: Path<String>,
    ) -> ApiResult<Json<Vec<ShareDto>>> {
        self.list(&auth, ShareKind::Dashboard, &id).await
    }

    /// Revoke a dashboard's public link: it stops working at once.
    #[oai(
        path = "/dashboards/:id/share/:share_id",
        method = "delete",
        operation_id = "revokeDashboardShare"
    )]
    async fn revoke_dashboard_share(
        &self,
        auth: Auth,
        id: Path<String>,
        share_id: Path<String>,
    ) -> ApiResult<NoContent> {
        self.revoke(&auth, ShareKind::Dashboard, &id, &share_id)
            .await
    }

    /// Share a visualization by a public link.
    ///
    /// Its owner (an editor), any editor when its query is shared, or an
    /// admin, who may also run its query. The token is in this response
    /// only.
    #[oai(
        path = "/visualizations/:id/share",
        method = "post",
        operation_id = "createVisualizationShare"
    )]
    async fn share_visualization(
        &self,
        auth: Auth,
        id: Path<String>,
        body: Json<ShareInputDto>,
    ) -> ApiResult<ShareCreated> {
        self.create(&auth, ShareKind::Visualization, &id, body.0)
            .await
    }

    /// List a visualization's public links that are not revoked.
    #[oai(
        path = "/visualizations/:id/shares",
        method = "get",
        operation_id = "listVisualizationShares"
    )]
    async fn visualization_shares(
        &self,
        auth: Auth,
        id: Path<String>,
    ) -> ApiResult<Json<Vec<ShareDto>>> {
        self.list(&auth, ShareKind::Visualization, &id).await
    }

    /// Revoke a visualization's public link: it stops working at once.
    #[oai(
        path = "/visualizations/:id/share/:share_id",
        method = "delete",
        operation_id = "revokeVisualizationShare"
    )]
    async fn revoke_visualization_share(
        &self,
        auth: Auth,
        id: Path<String>,
        share_id: Path<String>,
    ) -> ApiResult<NoContent> {
        self.revoke(&auth, ShareKind::Visualization, &id, &share_id)
            .await
    }

    /// Share a saved query's result by a public link.
    ///
    /// Its owner (an editor), any editor when it is shared, or an admin,
    /// who may also run it. The page shows the result as a table, never
    /// the SQL. The token is in this response only.
    #[oai(
        path = "/queries/:id/share",
        method = "post",
        operation_id = "createQueryShare"
    )]
    async fn share_query(
        &self,
        auth: Auth,
        id: Path<String>,
        body: Json<ShareInputDto>,
    ) -> ApiResult<ShareCreated> {
        self.create(&auth, ShareKind::Query, &id, body.0).await
    }

    /// List a saved query's public links that are not revoked.
    #[oai(
        path = "/queries/:id/shares",
        method = "get",
        operation_id = "listQueryShares"
    )]
    async fn query_shares(&self, auth: Auth, id: Path<String>) -> ApiResult<Json<Vec<ShareDto>>> {
        self.list(&auth, ShareKind::Query, &id).await
    }

    /// Revoke a saved query's public link: it stops working at once.
    #[oai(
        path = "/queries/:id/share/:share_id",
        method = "delete",
        operation_id = "revokeQueryShare"
    )]
    async fn revoke_query_share(
        &self,
        auth: Auth,
        id: Path<String>,
        share_id: Path<String>,
    ) -> ApiResult<NoContent> {
        self.revoke(&auth, ShareKind::Query, &id, &share_id).await
    }
}

#[OpenApi(tag = "ApiTags::Sharing")]
impl PublicApi {
    /// Open a public link's page, without signing in.
    ///
    /// The object's public definition and, per widget, its newest stored
    /// result (never older than the link allows, unless a refresh is on
    /// its way: `stale`, `refreshing`). No request here runs SQL; at most
    /// one refresh per result and interval is queued for the whole link.
    /// An unknown, revoked or expired link, or one whose sharer is
    /// disabled, answers 404 `share.invalid`.
    #[oai(
        path = "/public/:token",
        method = "get",
        operation_id = "getPublicPage"
    )]
    async fn page(
        &self,
        /// The link's token.
        token: Path<String>,
        /// Values for the parameters the link offers, as a JSON object
        /// (`{"region":"US"}`, URL-encoded); only offered values of offered
        /// parameters (otherwise 422 naming the parameter).
        parameters: Q<Option<String>>,
    ) -> ApiResult<PublicPageResponse> {
        let choices = choices(parameters.0.as_deref())?;
        let page = self.0.services().shares.open(&token, &choices).await?;
        Ok(PublicPageResponse::read(&self.0, page).await?)
    }
}
