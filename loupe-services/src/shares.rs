//! Public links: a dashboard, a visualization or a saved query shown to
//! anyone who has the link, until it is revoked or expires; and the page
//! such a link (or a signed embedding token, `embedding`) shows.
//!
//! A link is a random token of 32 bytes, shown once and stored as its
//! SHA-256. It acts with the access its sharer has now: their grants and
//! row-level context decide which stored results it shows, and a sharer
//! who is disabled takes the link with them. Making a link needs the
//! right to change the object and to run its queries; making and revoking
//! links are audited.
//!
//! A page never runs SQL of its own. It shows stored results: for each
//! query, the newest succeeded run whose cache key is the one the sharer
//! would read with the page's values. When that run is older than the
//! link's `max_age`, or there is none, one view queues a refresh under the
//! sharer's access (answered from the cache or by joining a run in flight
//! when it can): only the view that moves the `share_refreshes` row of
//! (link, cache key) forward past `sharing.refresh_every`, so however many
//! views arrive, one link queues at most one run per result and interval.
//! Meanwhile the page shows the stale result, or that it is pending.
//!
//! A viewer may give values only for the parameters the sharer offered
//! (`options`), and only values offered; every other parameter keeps the
//! sharer's value. Unknown, revoked and expired links, and links whose
//! sharer is disabled, are answered alike: not found, `share.invalid`.
//!
//! This module must not show what a page's reader could not see through
//! the sharer: no SQL text, no owner, no datasource, no error detail of a
//! run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use loupe_core::{Error, ErrorKind, ParameterDef, ParameterValues, Result, ResultId, codes};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sqlx::any::AnyRow;

use crate::actor::Actor;
use crate::audit::{self, Entry};
use crate::crypto::{new_token, token_hash};
use crate::dashboards::{Dashboard, DashboardService, WidgetKind};
use crate::groups;
use crate::meta::{col, db_error, fetch_optional, json, new_id, now_micros, to_json};
use crate::queries::{Query, QueryService};
use crate::runs::{self, Run, RunService, StartKind, Subject};
use crate::services::Shared;
use crate::users::UserService;
use crate::validate::Validator;
use crate::visualizations::{Visualization, VisualizationService, VisualizationType};

/// The most values a link may offer for one parameter.
pub const MAX_SHARE_CHOICES: usize = 100;

/// How often the views counted in this process are written.
const VIEWS_EVERY: Duration = Duration::from_secs(5);

/// How many results of one page are looked up at once.
const RESULTS_AT_ONCE: usize = 8;

/// What a link shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareKind {
    /// A dashboard: its widgets, each with its result.
    Dashboard,
    /// A visualization and its query's result.
    Visualization,
    /// A saved query's result, as a table.
    Query,
}

impl ShareKind {
    /// The kind as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dashboard => "dashboard",
            Self::Visualization => "visualization",
            Self::Query => "query",
        }
    }

    /// Parses a stored kind.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "dashboard" => Self::Dashboard,
            "visualization" => Self::Visualization,
            "query" => Self::Query,
            _ => return None,
        })
    }
}

/// The values a viewer may choose among, per parameter.
pub type Choices = BTreeMap<String, Vec<Json>>;

/// A public link, as its object's editors list it: never the token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Share {
    /// Its id.
    pub id: String,
    /// What it shows.
    pub kind: ShareKind,
    /// The dashboard, visualization or query.
    pub object_id: String,
    /// Who made it; the link acts with their access.
    pub created_by: String,
    /// The fixed parameter values.
    pub parameters: ParameterValues,
    /// The values viewers may choose among, per parameter.
    pub options: Choices,
    /// How old a result the page shows before its views refresh it.
    pub max_age: Duration,
    /// When it stops working (µs).
    pub expires_at: Option<i64>,
    /// Views so far (those of the last few seconds may not be counted
    /// yet).
    pub views: i64,
    /// When it was last viewed (µs).
    pub last_viewed_at: Option<i64>,
    /// When it was made (µs).
    pub created_at: i64,
}

/// A new link's settings.
#[derive(Debug, Clone, Default)]
pub struct ShareInput {
    /// How old a result the page shows before its views refresh it (at
    /// least a second, at most [`limits::MAX_AGE_SECONDS`](crate::limits::MAX_AGE_SECONDS)).
    pub max_age: Duration,
    /// When it stops working (µs); never when absent.
    pub expires_at: Option<i64>,
    /// Fixed values of the object's parameters; the object's defaults
    /// fill the rest.
    pub parameters: ParameterValues,
    /// Per parameter, the values a viewer may choose among (the fixed
    /// value, if any, is one of them and applies until a viewer chooses).
    pub options: Choices,
}

/// A link just made: the only time its token is shown.
#[derive(Debug, Clone)]
pub struct NewShare {
    /// The link as stored.
    pub share: Share,
    /// The token: `GET /public/{token}` opens the page.
    pub token: String,
}

/// A page as a public link or an embedding token shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PublicPage {
    /// What it shows.
    pub kind: ShareKind,
    /// The object's name.
    pub name: String,
    /// The query's description (empty for the others).
    pub description: String,
    /// The object's parameters, with the value in effect and what a viewer
    /// may choose.
    pub parameters: Vec<PublicParameter>,
    /// A dashboard's widgets in order; one for a visualization or a query.
    pub widgets: Vec<PublicWidget>,
    /// When the link or token stops working (µs).
    pub expires_at: Option<i64>,
}

/// A parameter of a page.
#[derive(Debug, Clone, PartialEq)]
pub struct PublicParameter {
    /// Its name.
    pub name: String,
    /// Its label, if it has one.
    pub title: Option<String>,
    /// Its type's name (`text`, `date_range`, ...).
    pub kind: &'static str,
    /// The value in effect; `None` when the query's own default applies.
    pub value: Option<Json>,
    /// The values a viewer may choose among; empty when it is fixed.
    pub choices: Vec<Json>,
}

/// Where a dashboard widget sits on the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridPlace {
    /// Column of its left edge.
    pub x: u32,
    /// Row of its top edge.
    pub y: u32,
    /// Width in columns.
    pub w: u32,
    /// Height in rows.
    pub h: u32,
}

/// One widget of a page.
#[derive(Debug, Clone, PartialEq)]
pub struct PublicWidget {
    /// The widget's id (the object's, for a visualization or a query).
    pub id: String,
    /// Its place on a dashboard's grid.
    pub place: Option<GridPlace>,
    /// What it shows.
    pub content: PublicContent,
}

/// What a widget of a page shows.
#[derive(Debug, Clone, PartialEq)]
pub enum PublicContent {
    /// Text (Markdown).
    Text(String),
    /// A widget the sharer may not see: its place only.
    Hidden,
    /// A visualization of a stored result.
    Visualization {
        /// Its name.
        name: String,
        /// Its type.
        kind: VisualizationType,
        /// Its options (column names and display settings).
        options: Json,
        /// The result it shows.
        result: PublicResult,
    },
    /// A query's stored result, as a table.
    Table(PublicResult),
}

/// The stored result a widget shows.
#[derive(Debug, Clone, PartialEq)]
pub struct PublicResult {
    /// The result, or why there is none.
    pub state: ResultState,
    /// The result is older than the page's `max_age` (or there is none).
    pub stale: bool,
    /// A run of it is queued or running.
    pub refreshing: bool,
}

/// Whether a widget has a result to show.
#[derive(Debug, Clone, PartialEq)]
pub enum ResultState {
    /// The newest stored result for the page's values.
    Ready {
        /// The run that made it (for its times and size; not shown).
        run: Box<Run>,
        /// Where it is stored.
        result: ResultId,
    },
    /// None yet: the first run is queued (or will be at a later view).
    Pending,
    /// The sharer can no longer read it (access, a changed query, a
    /// paused datasource); nothing of why is shown.
    Unavailable,
}

impl PublicResult {
    fn unavailable() -> Self {
        Self {
            state: ResultState::Unavailable,
            stale: false,
            refreshing: false,
        }
    }
}

/// The object a page shows, as its sharer reads it.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Dashboard(Dashboard),
    Visualization(Visualization, Query),
    Query(Query),
}

impl Target {
    /// The object of `kind` and `id` as `actor` may see it: not found
    /// when it is not in their organization or on a datasource they have
    /// no grant on.
    pub(crate) async fn load(
        shared: &Arc<Shared>,
        actor: &Actor,
        kind: ShareKind,
        id: &str,
    ) -> Result<Self> {
        let queries = QueryService::new(shared.clone());
        Ok(match kind {
            ShareKind::Dashboard => {
                Self::Dashboard(DashboardService::new(shared.clone()).get(actor, id).await?)
            }
            ShareKind::Visualization => {
                let visualization = VisualizationService::new(shared.clone())
                    .get(actor, id)
                    .await?;
                let query = queries.get(actor, &visualization.query_id).await?;
                Self::Visualization(visualization, query)
            }
            ShareKind::Query => Self::Query(queries.get(actor, id).await?),
        })
    }

    fn kind(&self) -> ShareKind {
        match self {
            Self::Dashboard(_) => ShareKind::Dashboard,
            Self::Visualization(..) => ShareKind::Visualization,
            Self::Query(_) => ShareKind::Query,
        }
    }

    /// The parameters a link or a token gives values for: a dashboard's
    /// own, else the query's.
    pub(crate) fn parameters(&self) -> &[ParameterDef] {
        match self {
            Self::Dashboard(d) => &d.parameters,
            Self::Visualization(_, q) | Self::Query(q) => &q.parameters,
        }
    }

    /// Fails unless `actor` may change it and, for a new link, run every
    /// query it shows (a dashboard with a widget hidden from them cannot
    /// be shared by them).
    async fn require_share(&self, shared: &Shared, actor: &Actor, to_run: bool) -> Result<()> {
        let datasources: BTreeSet<String> = match self {
            Self::Dashboard(d) => {
                actor.require_edit(&d.owner_id, d.shared, "dashboard")?;
                if !to_run {
                    return Ok(());
                }
                if d.widgets
                    .iter()
                    .any(|w| matches!(w.kind, WidgetKind::Hidden {}))
                {
                    return Err(Error::refused(
                        codes::ACCESS_NO_GRANT,
                        "some widgets of this dashboard show datasources you have no access to; only someone who may run every widget's query may share it",
                    ));
                }
                let ids: Vec<String> = d
                    .widgets
                    .iter()
                    .filter_map(|w| w.query_id.clone())
                    .collect();
                query_datasources(shared, &ids).await?
            }
            Self::Visualization(v, q) => {
                actor.require_edit(&v.owner_id, q.shared, "visualization")?;
                BTreeSet::from([q.datasource_id.clone()])
            }
            Self::Query(q) => {
                actor.require_edit(&q.owner_id, q.shared, "query")?;
                BTreeSet::from([q.datasource_id.clone()])
            }
        };
        if to_run {
            for datasource in datasources {
                let hidden = || Error::not_found("datasource", datasource.clone());
                groups::require_run(shared, actor, &datasource, hidden).await?;
            }
        }
        Ok(())
    }
}

/// The datasources of the queries `ids`, in one statement.
async fn query_datasources(shared: &Shared, ids: &[String]) -> Result<BTreeSet<String>> {
    let select = crate::meta::SqlBuilder::new("SELECT id, datasource_id FROM queries WHERE id");
    let rows = crate::meta::Children::load(&shared.store, select, ids, "", "id").await?;
    let mut found = BTreeSet::new();
    for id in ids {
        for row in rows.get(id) {
            found.insert(col::<String>(row, "datasource_id")?);
        }
    }
    Ok(found)
}

/// Checks `values` against the parameters `defs`: each names one of them
/// and fits it. Errors name `<field>.<parameter>`.
pub(crate) fn check_values(
    v: &mut Validator,
    field: &str,
    defs: &[ParameterDef],
    values: &ParameterValues,
) {
    for (name, value) in values {
        let at = format!("{field}.{name}");
        match defs.iter().find(|d| &d.name == name) {
            None => v.push(
                at,
                codes::field::UNKNOWN_PARAMETER,
                format!(
                    "there is no parameter {name:?}; the parameters are: {}",
                    names(defs)
                ),
            ),
            Some(def) => {
                if let Err(e) = def.check_value(value) {
                    v.push(at, codes::field::TYPE_MISMATCH, e.to_string());
                }
            }
        }
    }
}

fn names(defs: &[ParameterDef]) -> String {
    if defs.is_empty() {
        return "(none)".to_owned();
    }
    defs.iter()
        .map(|d| format!("{:?}", d.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value as a message shows it: its JSON, cut short.
fn shown(value: &Json) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

fn shown_all(values: &[Json]) -> String {
    values.iter().map(shown).collect::<Vec<_>>().join(", ")
}

/// How a page's views keep its results fresh.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Freshness<'a> {
    /// What the refreshes count against: a link's id, or
    /// `embed:<kind>:<id>`.
    pub(crate) via: &'a str,
    /// How old a result may be before a view refreshes it.
    pub(crate) max_age: Duration,
}

/// The page of `target` as `sharer` reads it, with `values` for its
/// parameters (the object's defaults fill the rest) and `choices` offered
/// to viewers. Runs nothing itself; may queue refreshes (see the module).
pub(crate) async fn page(
    shared: &Arc<Shared>,
    sharer: &Actor,
    target: &Target,
    values: &ParameterValues,
    choices: &Choices,
    freshness: Freshness<'_>,
) -> Result<PublicPage> {
    let parameters = target
        .parameters()
        .iter()
        .map(|def| PublicParameter {
            name: def.name.clone(),
            title: def.title.clone(),
            kind: def.ty.name(),
            value: values.get(&def.name).or(def.default.as_ref()).cloned(),
            choices: choices.get(&def.name).cloned().unwrap_or_default(),
        })
        .collect();
    // Values for parameters the object no longer has are left out, so a
    // changed query does not take the whole page down.
    let known: ParameterValues = values
        .iter()
        .filter(|(name, _)| target.parameters().iter().any(|d| &d.name == *name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let (name, description, widgets) = match target {
        Target::Dashboard(dashboard) => {
            // Futures made first and then streamed: a stream over a
            // closure that borrows would not be `Send` for the host.
            let pending: Vec<_> = dashboard
                .widgets
                .iter()
                .map(|widget| {
                    dashboard_widget(shared, sharer, dashboard, widget, &known, freshness)
                })
                .collect();
            let widgets = futures::stream::iter(pending)
                .buffered(RESULTS_AT_ONCE)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<Vec<_>>>()?;
            (dashboard.name.clone(), String::new(), widgets)
        }
        Target::Visualization(visualization, query) => {
            let result = serve(shared, sharer, &query.id, &known, freshness).await?;
            let widget = PublicWidget {
                id: visualization.id.clone(),
                place: None,
                content: PublicContent::Visualization {
                    name: visualization.name.clone(),
                    kind: visualization.kind,
                    options: visualization.options.clone(),
                    result,
                },
            };
            (visualization.name.clone(), String::new(), vec![widget])
        }
        Target::Query(query) => {
            let result = serve(shared, sharer, &query.id, &known, freshness).await?;
            let widget = PublicWidget {
                id: query.id.clone(),
                place: None,
                content: PublicContent::Table(result),
            };
            (query.name.clone(), query.description.clone(), vec![widget])
        }
    };
    Ok(PublicPage {
        kind: target.kind(),
        name,
        description,
        parameters,
        widgets,
        expires_at: None,
    })
}

/// One widget of a dashboard's page.
async fn dashboard_widget(
    shared: &Arc<Shared>,
    sharer: &Actor,
    dashboard: &Dashboard,
    widget: &crate::dashboards::Widget,
    values: &ParameterValues,
    freshness: Freshness<'_>,
) -> Result<PublicWidget> {
    let place = Some(GridPlace {
        x: widget.x,
        y: widget.y,
        w: widget.w,
        h: widget.h,
    });
    let content = match &widget.kind {
        WidgetKind::Text { text } => PublicContent::Text(text.clone()),
        WidgetKind::Hidden {} => PublicContent::Hidden,
        WidgetKind::Visualization { visualization_id } => {
            let values = dashboard.values_for(widget, values);
            visualization_widget(shared, sharer, visualization_id, &values, freshness).await?
        }
    };
    Ok(PublicWidget {
        id: widget.id.clone(),
        place,
        content,
    })
}

/// A dashboard's visualization widget: the visualization as the sharer
/// sees it and its query's result for `values`.
async fn visualization_widget(
    shared: &Arc<Shared>,
    sharer: &Actor,
    visualization_id: &str,
    values: &ParameterValues,
    freshness: Freshness<'_>,
) -> Result<PublicContent> {
    let visualizations = VisualizationService::new(shared.clone());
    let visualization = match visualizations.get(sharer, visualization_id).await {
        Ok(found) => found,
        Err(e) if unavailable(&e) => return Ok(PublicContent::Hidden),
        Err(e) => return Err(e),
    };
    let result = serve(shared, sharer, &visualization.query_id, values, freshness).await?;
    Ok(PublicContent::Visualization {
        name: visualization.name,
        kind: visualization.kind,
        options: visualization.options,
        result,
    })
}

/// Errors that mean the sharer can no longer read something (rather than
/// that Loupe failed): the page shows it as unavailable.
fn unavailable(error: &Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::NotFound | ErrorKind::Forbidden | ErrorKind::InvalidInput | ErrorKind::Conflict
    )
}

/// The stored result of query `query_id` with `values` as `sharer` reads
/// it, refreshed as the module says.
async fn serve(
    shared: &Arc<Shared>,
    sharer: &Actor,
    query_id: &str,
    values: &ParameterValues,
    freshness: Freshness<'_>,
) -> Result<PublicResult> {
    let runs = RunService::new(shared.clone());
    let admitted = match runs.admit_to_read(sharer, query_id, values).await {
        Ok(admitted) => admitted,
        Err(e) if unavailable(&e) => return Ok(PublicResult::unavailable()),
        Err(e) => return Err(e),
    };
    let key = admitted.cache_key()?;
    let now = now_micros();
    let max_age = micros(freshness.max_age);
    let mut latest = latest_result(shared, &key).await?;
    let fresh = |run: &Option<Run>| {
        run.as_ref()
            .and_then(|r| r.finished_at)
            .is_some_and(|at| at >= now.saturating_sub(max_age))
    };
    let mut refreshing = false;
    if !fresh(&latest) {
        refreshing = in_flight(shared, &key).await?;
        if !refreshing
            && take_refresh(
                shared,
                freshness.via,
                &key,
                now,
                shared.config.sharing.refresh_every,
            )
            .await?
        {
            match refresh(&runs, sharer, query_id, values, freshness.max_age).await {
                Some(started) if started.how == StartKind::Cached => {
                    latest = Some(started.run);
                }
                Some(_) => refreshing = true,
                None => {}
            }
        }
    }
    let stale = !fresh(&latest);
    let state = match latest {
        Some(run) => match run.result_location.as_deref().map(ResultId::parse) {
            Some(Ok(result)) => ResultState::Ready {
                run: Box::new(run),
                result,
            },
            _ => ResultState::Pending,
        },
        None => ResultState::Pending,
    };
    Ok(PublicResult {
        state,
        stale,
        refreshing,
    })
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// The newest succeeded run with a stored result under cache key `key`.
async fn latest_result(shared: &Shared, key: &str) -> Result<Option<Run>> {
    let row = fetch_optional(
        &shared.store,
        sqlx::query(
            "SELECT * FROM runs WHERE cache_key = $1 AND status = 'succeeded' \
             AND result_location IS NOT NULL ORDER BY finished_at DESC LIMIT 1",
        )
        .bind(key.to_owned()),
    )
    .await?;
    row.as_ref().map(runs::run).transpose()
}

/// Whether a run under cache key `key` is queued or running.
async fn in_flight(shared: &Shared, key: &str) -> Result<bool> {
    let row = fetch_optional(
        &shared.store,
        sqlx::query(
            "SELECT id FROM runs WHERE cache_key = $1 AND status IN ('queued', 'running') \
             AND cancel_requested = 0 LIMIT 1",
        )
        .bind(key.to_owned()),
    )
    .await?;
    Ok(row.is_some())
}

/// The compare-and-set that lets one view refresh: moves the
/// `share_refreshes` row of (`via`, `key`) to `now` if it is missing or
/// at least `every` old. True for the one view that moved it.
pub(crate) async fn take_refresh(
    shared: &Shared,
    via: &str,
    key: &str,
    now: i64,
    every: Duration,
) -> Result<bool> {
    let since = now.saturating_sub(micros(every));
    // Most views of a busy page come within the interval: a read answers
    // them without taking the write lock.
    let last = fetch_optional(
        &shared.store,
        sqlx::query("SELECT queued_at FROM share_refreshes WHERE via = $1 AND cache_key = $2")
            .bind(via.to_owned())
            .bind(key.to_owned()),
    )
    .await?;
    if let Some(row) = last
        && col::<i64>(&row, "queued_at")? > since
    {
        return Ok(false);
    }
    let mut tx = shared.store.write().await?;
    let moved = sqlx::query(
        "INSERT INTO share_refreshes (via, cache_key, queued_at) VALUES ($1, $2, $3) \
         ON CONFLICT (via, cache_key) DO UPDATE SET queued_at = excluded.queued_at \
         WHERE share_refreshes.queued_at <= $4",
    )
    .bind(via.to_owned())
    .bind(key.to_owned())
    .bind(now)
    .bind(since)
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    Ok(moved.rows_affected() == 1)
}

/// Queues (or joins, or answers from a result that just arrived) a run of
/// the query under the sharer's access. A refusal (the sharer may no
/// longer run it, has too many runs queued) is logged: the page goes on
/// showing what it has.
async fn refresh(
    runs: &RunService,
    sharer: &Actor,
    query_id: &str,
    values: &ParameterValues,
    max_age: Duration,
) -> Option<runs::Started> {
    let subject = Subject::Query {
        id: query_id,
        values,
    };
    let started = async {
        let admitted = runs.admit(sharer, subject).await?;
        let new = admitted.run(runs::INTERACTIVE, runs::created_by(sharer), None);
        runs.enqueue(new, Some(max_age)).await
    }
    .await;
    match started {
        Ok(started) => Some(started),
        Err(e) => {
            tracing::info!(query = %query_id, code = %e.code(), error = %e, "a shared page could not refresh a result");
            None
        }
    }
}

/// A link's row, with what only the services need.
struct Stored {
    share: Share,
    org_id: String,
    revoked_at: Option<i64>,
}

fn stored(row: &AnyRow) -> Result<Stored> {
    let kind: String = col(row, "kind")?;
    let max_age: i64 = col(row, "max_age_secs")?;
    Ok(Stored {
        share: Share {
            id: col(row, "id")?,
            kind: ShareKind::parse(&kind)
                .ok_or_else(|| Error::internal(format!("stored share kind {kind:?}")))?,
            object_id: col(row, "object_id")?,
            created_by: col(row, "created_by")?,
            parameters: json(row, "parameters")?,
            options: json(row, "options")?,
            max_age: Duration::from_secs(u64::try_from(max_age).unwrap_or(1)),
            expires_at: col(row, "expires_at")?,
            views: col(row, "views")?,
            last_viewed_at: col(row, "last_viewed_at")?,
            created_at: col(row, "created_at")?,
        },
        org_id: col(row, "org_id")?,
        revoked_at: col(row, "revoked_at")?,
    })
}

/// What every unusable link is answered: the same for an unknown, a
/// revoked and an expired one, and one whose sharer is disabled. The
/// token's first characters name it, so a reader can tell which link.
fn invalid(token: &str) -> Error {
    let start: String = token.chars().take(6).collect();
    Error::NotFound {
        what: "public link",
        name: format!("{start}…"),
        suggestion:
            "; it may have been revoked or have expired: ask whoever shared it for a new one"
                .to_owned(),
    }
}

/// Views counted in this process, written to the store every few
/// seconds in one transaction rather than one write per view.
#[derive(Debug)]
struct ViewTally {
    state: Mutex<TallyState>,
}

#[derive(Debug)]
struct TallyState {
    /// Share id -> (views, last view in µs).
    pending: HashMap<String, (i64, i64)>,
    written_at: Instant,
}

impl ViewTally {
    fn new() -> Self {
        Self {
            state: Mutex::new(TallyState {
                pending: HashMap::new(),
                written_at: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TallyState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a view of `share_id`; returns the counts to write when it is
    /// time to write them.
    fn count(&self, share_id: &str, now: i64) -> Option<HashMap<String, (i64, i64)>> {
        let mut state = self.lock();
        let entry = state.pending.entry(share_id.to_owned()).or_insert((0, now));
        entry.0 += 1;
        entry.1 = entry.1.max(now);
        if state.written_at.elapsed() < VIEWS_EVERY {
            return None;
        }
        state.written_at = Instant::now();
        Some(std::mem::take(&mut state.pending))
    }

    /// Every count not written yet.
    fn take(&self) -> HashMap<String, (i64, i64)> {
        let mut state = self.lock();
        state.written_at = Instant::now();
        std::mem::take(&mut state.pending)
    }

    /// Counts that could not be written, back for the next write.
    fn put_back(&self, counts: HashMap<String, (i64, i64)>) {
        let mut state = self.lock();
        for (id, (views, at)) in counts {
            let entry = state.pending.entry(id).or_insert((0, at));
            entry.0 += views;
            entry.1 = entry.1.max(at);
        }
    }
}

/// Public links.
#[derive(Debug, Clone)]
pub struct ShareService {
    shared: Arc<Shared>,
    views: Arc<ViewTally>,
}

impl ShareService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            views: Arc::new(ViewTally::new()),
        }
    }

    /// Makes a link to the `kind` object `object_id`. Whoever may change
    /// the object and run its queries (its owner if an editor, any editor
    /// when it is shared, admins). The token is in the answer only.
    pub async fn create(
        &self,
        actor: &Actor,
        kind: ShareKind,
        object_id: &str,
        input: ShareInput,
    ) -> Result<NewShare> {
        let target = Target::load(&self.shared, actor, kind, object_id).await?;
        target.require_share(&self.shared, actor, true).await?;
        let now = now_micros();
        check_input(&input, target.parameters(), now)?;
        let token = new_token()?;
        let id = new_id();
        let max_age = i64::try_from(input.max_age.as_secs()).unwrap_or(i64::MAX);
        let mut tx = self.shared.store.write().await?;
        sqlx::query(
            "INSERT INTO shares (id, org_id, kind, object_id, token_hash, created_by, parameters, options, max_age_secs, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(id.clone())
        .bind(actor.org_id.clone())
        .bind(kind.as_str())
        .bind(object_id.to_owned())
        .bind(token_hash(&token))
        .bind(actor.user_id.clone())
        .bind(to_json(&input.parameters)?)
        .bind(to_json(&input.options)?)
        .bind(max_age)
        .bind(input.expires_at)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let detail = serde_json::json!({
            "kind": kind.as_str(),
            "object_id": object_id,
            "max_age_seconds": max_age,
            "expires_at": input.expires_at,
            "parameters": input.parameters.keys().collect::<Vec<_>>(),
            "options": input.options.keys().collect::<Vec<_>>(),
        });
        audit::record(
            &mut *tx,
            Entry::by(actor, "share.create", "share", &id).detail(detail),
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        let share = self.load(&id).await?.share;
        Ok(NewShare { share, token })
    }

    /// The links to the `kind` object `object_id` that are not revoked,
    /// newest first (expired ones too). Whoever may change the object.
    pub async fn list(
        &self,
        actor: &Actor,
        kind: ShareKind,
        object_id: &str,
    ) -> Result<Vec<Share>> {
        let target = Target::load(&self.shared, actor, kind, object_id).await?;
        target.require_share(&self.shared, actor, false).await?;
        self.flush_views().await?;
        let rows = sqlx::query(
            "SELECT * FROM shares WHERE org_id = $1 AND kind = $2 AND object_id = $3 \
             AND revoked_at IS NULL ORDER BY created_at DESC, id DESC",
        )
        .bind(actor.org_id.clone())
        .bind(kind.as_str())
        .bind(object_id.to_owned())
        .fetch_all(self.shared.store.pool())
        .await
        .map_err(db_error)?;
        rows.iter().map(|row| Ok(stored(row)?.share)).collect()
    }

    /// Revokes link `share_id` of the `kind` object `object_id`: it stops
    /// working at once. Whoever may change the object.
    pub async fn revoke(
        &self,
        actor: &Actor,
        kind: ShareKind,
        object_id: &str,
        share_id: &str,
    ) -> Result<()> {
        let target = Target::load(&self.shared, actor, kind, object_id).await?;
        target.require_share(&self.shared, actor, false).await?;
        let mut tx = self.shared.store.write().await?;
        let done = sqlx::query(
            "UPDATE shares SET revoked_at = $1 WHERE id = $2 AND org_id = $3 AND kind = $4 \
             AND object_id = $5 AND revoked_at IS NULL",
        )
        .bind(now_micros())
        .bind(share_id.to_owned())
        .bind(actor.org_id.clone())
        .bind(kind.as_str())
        .bind(object_id.to_owned())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("share", share_id));
        }
        sqlx::query("DELETE FROM share_refreshes WHERE via = $1")
            .bind(share_id.to_owned())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let detail = serde_json::json!({ "kind": kind.as_str(), "object_id": object_id });
        audit::record(
            &mut *tx,
            Entry::by(actor, "share.revoke", "share", share_id).detail(detail),
        )
        .await?;
        tx.commit().await.map_err(db_error)
    }

    /// The page link `token` opens, with a viewer's `choices` for the
    /// parameters the link offers. No sign-in: the token is the authority.
    ///
    /// # Errors
    /// Not found (`share.invalid`) for a token that is unknown, revoked or
    /// expired, or whose sharer is disabled or can no longer see the
    /// object; a validation error naming `parameters.<name>` for a choice
    /// the link does not offer.
    pub async fn open(&self, token: &str, choices: &ParameterValues) -> Result<PublicPage> {
        let now = now_micros();
        let row = fetch_optional(
            &self.shared.store,
            sqlx::query("SELECT * FROM shares WHERE token_hash = $1").bind(token_hash(token)),
        )
        .await?;
        let Some(found) = row.as_ref().map(stored).transpose()? else {
            return Err(invalid(token));
        };
        if found.revoked_at.is_some() || found.share.expires_at.is_some_and(|at| at <= now) {
            return Err(invalid(token));
        }
        let users = UserService::new(self.shared.clone());
        let sharer = match users.actor(&found.share.created_by, None).await {
            Ok(actor) if actor.org_id == found.org_id => actor,
            Ok(_) => return Err(invalid(token)),
            Err(e) if matches!(e.kind(), ErrorKind::Unauthenticated | ErrorKind::NotFound) => {
                return Err(invalid(token));
            }
            Err(e) => return Err(e),
        };
        let share = &found.share;
        let values = chosen(share, choices)?;
        let target = match Target::load(&self.shared, &sharer, share.kind, &share.object_id).await {
            Ok(target) => target,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(invalid(token)),
            Err(e) => return Err(e),
        };
        let freshness = Freshness {
            via: &share.id,
            max_age: share.max_age,
        };
        let mut page = page(
            &self.shared,
            &sharer,
            &target,
            &values,
            &share.options,
            freshness,
        )
        .await?;
        page.expires_at = share.expires_at;
        if let Some(counts) = self.views.count(&share.id, now) {
            self.write_views(counts).await;
        }
        Ok(page)
    }

    /// Writes the views counted in this process and not written yet
    /// (every few seconds, views write themselves).
    pub async fn flush_views(&self) -> Result<()> {
        let counts = self.views.take();
        if counts.is_empty() {
            return Ok(());
        }
        let written = self.try_write_views(&counts).await;
        if written.is_err() {
            self.views.put_back(counts);
        }
        written
    }

    async fn write_views(&self, counts: HashMap<String, (i64, i64)>) {
        if let Err(e) = self.try_write_views(&counts).await {
            tracing::warn!(error = %e, "could not write the views of public links; they are kept for the next write");
            self.views.put_back(counts);
        }
    }

    async fn try_write_views(&self, counts: &HashMap<String, (i64, i64)>) -> Result<()> {
        let mut tx = self.shared.store.write().await?;
        for (id, (views, at)) in counts {
            sqlx::query(
                "UPDATE shares SET views = views + $1, last_viewed_at = CASE \
                 WHEN last_viewed_at IS NULL OR last_viewed_at < $2 THEN $2 ELSE last_viewed_at END \
                 WHERE id = $3",
            )
            .bind(*views)
            .bind(*at)
            .bind(id.clone())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn load(&self, id: &str) -> Result<Stored> {
        let row = crate::meta::fetch_one(
            &self.shared.store,
            "SELECT * FROM shares WHERE id = $1",
            "share",
            id,
        )
        .await?;
        stored(&row)
    }
}

/// Checks a new link's settings against the object's parameters `defs`.
fn check_input(input: &ShareInput, defs: &[ParameterDef], now: i64) -> Result<()> {
    let mut v = Validator::new();
    let seconds = input.max_age.as_secs();
    v.check(
        (1..=crate::limits::MAX_AGE_SECONDS).contains(&seconds),
        "max_age_seconds",
        codes::field::OUT_OF_RANGE,
        || {
            format!(
                "a link shows results between 1 and {} seconds old",
                crate::limits::MAX_AGE_SECONDS
            )
        },
    );
    if let Some(at) = input.expires_at {
        v.check(at > now, "expires_at", codes::field::IN_THE_PAST, || {
            "the expiry must be in the future".into()
        });
    }
    check_values(&mut v, "parameters", defs, &input.parameters);
    for (name, offered) in &input.options {
        let field = format!("options.{name}");
        let Some(def) = defs.iter().find(|d| &d.name == name) else {
            v.push(
                field,
                codes::field::UNKNOWN_PARAMETER,
                format!(
                    "there is no parameter {name:?}; the parameters are: {}",
                    names(defs)
                ),
            );
            continue;
        };
        if offered.is_empty() || offered.len() > MAX_SHARE_CHOICES {
            v.push(
                &field,
                codes::field::TOO_MANY,
                format!(
                    "offer 1 to {MAX_SHARE_CHOICES} values, or leave the parameter out to fix it"
                ),
            );
        }
        for (i, value) in offered.iter().enumerate() {
            let at = format!("{field}[{i}]");
            if let Err(e) = def.check_value(value) {
                v.push(&at, codes::field::TYPE_MISMATCH, e.to_string());
            } else if offered[..i].contains(value) {
                v.push(
                    &at,
                    codes::field::DUPLICATE,
                    format!("{} is offered twice", shown(value)),
                );
            }
        }
        if let Some(fixed) = input.parameters.get(name)
            && !offered.contains(fixed)
        {
            v.push(
                format!("parameters.{name}"),
                codes::field::INVALID_OPTION,
                format!(
                    "the value {} is not one of those offered for {name:?} ({}); it is what viewers see first, so offer it too",
                    shown(fixed),
                    shown_all(offered)
                ),
            );
        }
    }
    v.finish()
}

/// The values a link's page runs with: the fixed ones, with a viewer's
/// `choices` where the link offers them.
fn chosen(share: &Share, choices: &ParameterValues) -> Result<ParameterValues> {
    let mut v = Validator::new();
    let mut values = share.parameters.clone();
    for (name, value) in choices {
        let field = format!("parameters.{name}");
        match share.options.get(name) {
            None => {
                let offered: Vec<&String> = share.options.keys().collect();
                v.push(
                    field,
                    codes::field::NOT_CHOOSABLE,
                    match offered.is_empty() {
                        true => format!(
                            "this page lets viewers choose no parameter, and {name:?} is fixed by whoever shared it"
                        ),
                        false => format!(
                            "{name:?} is fixed by whoever shared this page; viewers may choose {}",
                            offered
                                .iter()
                                .map(|n| format!("{n:?}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    },
                );
            }
            Some(offered) if !offered.contains(value) => v.push(
                field,
                codes::field::INVALID_OPTION,
                format!(
                    "{} is not one of the values this page offers for {name:?}: {}",
                    shown(value),
                    shown_all(offered)
                ),
            ),
            Some(_) => {
                values.insert(name.clone(), value.clone());
            }
        }
    }
    v.finish()?;
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_core::ParameterType;
    use serde_json::json;

    fn share(options: Choices) -> Share {
        Share {
            id: "s".into(),
            kind: ShareKind::Query,
            object_id: "q".into(),
            created_by: "u".into(),
            parameters: [("region".to_owned(), json!("EU"))].into_iter().collect(),
            options,
            max_age: Duration::from_secs(60),
            expires_at: None,
            views: 0,
            last_viewed_at: None,
            created_at: 0,
        }
    }

    fn fields(e: Error) -> Vec<(String, String)> {
        e.field_errors()
            .iter()
            .map(|f| (f.field.clone(), f.code.to_string()))
            .collect()
    }

    #[test]
    fn viewers_choose_only_offered_values_of_offered_parameters() {
        let options: Choices = [("region".to_owned(), vec![json!("EU"), json!("US")])]
            .into_iter()
            .collect();
        let link = share(options);
        let picked: ParameterValues = [("region".to_owned(), json!("US"))].into_iter().collect();
        assert_eq!(chosen(&link, &picked).unwrap()["region"], json!("US"));
        assert_eq!(
            chosen(&link, &ParameterValues::new()).unwrap()["region"],
            json!("EU"),
            "without a choice, the fixed value"
        );
        let other: ParameterValues = [("region".to_owned(), json!("APAC"))].into_iter().collect();
        assert_eq!(
            fields(chosen(&link, &other).unwrap_err()),
            [("parameters.region".to_owned(), "invalid_option".to_owned())]
        );
        let fixed: ParameterValues = [("limit".to_owned(), json!(5))].into_iter().collect();
        assert_eq!(
            fields(chosen(&link, &fixed).unwrap_err()),
            [("parameters.limit".to_owned(), "not_choosable".to_owned())]
        );
        let nothing_offered = share(Choices::new());
        assert!(chosen(&nothing_offered, &picked).is_err());
    }

    #[test]
    fn a_new_link_offers_values_that_fit_and_fixes_one_of_them() {
        let defs = vec![
            ParameterDef::new("region", ParameterType::Text),
            ParameterDef::new("limit", ParameterType::Integer),
        ];
        let input = |parameters: ParameterValues, options: Choices| ShareInput {
            max_age: Duration::from_secs(300),
            expires_at: None,
            parameters,
            options,
        };
        let good = input(
            [("region".to_owned(), json!("EU"))].into_iter().collect(),
            [("region".to_owned(), vec![json!("EU"), json!("US")])]
                .into_iter()
                .collect(),
        );
        assert!(check_input(&good, &defs, 0).is_ok());
        let bad = input(
            [
                ("region".to_owned(), json!("APAC")),
                ("nope".to_owned(), json!(1)),
            ]
            .into_iter()
            .collect(),
            [
                ("region".to_owned(), vec![json!("EU"), json!("EU")]),
                ("limit".to_owned(), vec![json!("many")]),
            ]
            .into_iter()
            .collect(),
        );
        let mut found = fields(check_input(&bad, &defs, 0).unwrap_err());
        found.sort();
        assert_eq!(
            found,
            [
                ("options.limit[0]".to_owned(), "type_mismatch".to_owned()),
                ("options.region[1]".to_owned(), "duplicate".to_owned()),
                ("parameters.nope".to_owned(), "unknown_parameter".to_owned()),
                ("parameters.region".to_owned(), "invalid_option".to_owned()),
            ]
        );
        let mut stale = good.clone();
        stale.max_age = Duration::ZERO;
        stale.expires_at = Some(-1);
        let mut found = fields(check_input(&stale, &defs, 0).unwrap_err());
        found.sort();
        assert_eq!(
            found,
            [
                ("expires_at".to_owned(), "in_the_past".to_owned()),
                ("max_age_seconds".to_owned(), "out_of_range".to_owned()),
            ]
        );
    }

    #[test]
    fn views_are_written_in_batches_and_kept_when_a_write_fails() {
        let tally = ViewTally::new();
        assert!(tally.count("a", 10).is_none(), "not yet time to write");
        assert!(tally.count("a", 30).is_none());
        assert!(tally.count("b", 20).is_none());
        let counts = tally.take();
        assert_eq!(counts["a"], (2, 30));
        assert_eq!(counts["b"], (1, 20));
        assert!(tally.take().is_empty());
        tally.put_back(counts);
        tally.count("a", 40);
        assert_eq!(tally.take()["a"], (3, 40));
    }

    #[test]
    fn every_unusable_link_is_answered_alike() {
        let e = invalid("abcdefghij");
        assert_eq!(e.code(), codes::SHARE_INVALID.as_str());
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.to_string().contains("abcdef…"), "{e}");
        assert!(!e.to_string().contains("abcdefg"), "{e}");
    }
}
