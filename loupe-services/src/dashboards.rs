//! Dashboards: a grid of widgets (a visualization, or text) with dashboard
//! parameters that feed the parameters of the widgets' queries.
//!
//! The grid is 24 columns wide; widgets may not overlap. A widget shows a
//! visualization of the dashboard's organization, and maps some of its
//! query's parameters onto dashboard parameters of the same type, so one
//! date range at the top drives every chart below it.
//!
//! Every member of the organization may open a dashboard; what each
//! visualization shows still depends on their grants (the visualization's
//! own read checks them). Text widgets are the dashboard's own content and
//! show to everyone who may open it; a visualization widget whose query's
//! datasource the reader has no grant on shows as a `hidden` placeholder,
//! its place on the grid and nothing of what it shows (no visualization,
//! no query, no mappings). Those widgets are not the reader's to change:
//! an update keeps them where they are, and refuses widgets that would
//! overlap them. Editors change their own dashboards and shared ones;
//! admins any.

use loupe_core::codes;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::actor::{Actor, Role};
use super::audit;
use super::groups::{self, visible_datasources};
use super::validate::{Validator, normalize_tags, slugify};
use crate::limits;
use crate::meta::update_at_revision;
use crate::meta::{Children, TagTable, ids};
use crate::meta::{
    Filter, ListPage, ListRequest, ListSpec, SqlBuilder, db_error, new_id, now_micros,
};
use crate::meta::{col, fetch_in_org, fetch_optional, flag, json, only, to_json};
use crate::services::Shared;
use loupe_core::{Error, Result};
use loupe_core::{ParameterDef, ParameterValues};

/// Columns of the grid.
pub const GRID_COLUMNS: u32 = 24;
/// Most widgets on one dashboard.
pub const MAX_WIDGETS: usize = 200;
/// Tallest widget, in grid rows, and the lowest row a widget may start on.
const MAX_HEIGHT: u32 = 1000;
const MAX_ROW: u32 = 100_000;

/// A dashboard parameter: a query parameter definition shown once at the
/// top of the dashboard.
pub type DashboardParameter = ParameterDef;

/// What a widget shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WidgetKind {
    /// A visualization of a query's result.
    Visualization {
        /// The visualization.
        visualization_id: String,
    },
    /// Text (Markdown, rendered by the client).
    Text {
        /// The text.
        text: String,
    },
    /// A visualization the reader may not see (none of their groups has a
    /// grant on its query's datasource): only its place shows. Given in an
    /// update, it is ignored: the widget it stands for keeps its place.
    Hidden {},
}

/// A widget of a dashboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Widget {
    /// Its id.
    pub id: String,
    /// What it shows.
    #[serde(flatten)]
    pub kind: WidgetKind,
    /// The query behind a visualization widget.
    pub query_id: Option<String>,
    /// Column of its left edge, from 0.
    pub x: u32,
    /// Row of its top edge, from 0.
    pub y: u32,
    /// Width in columns.
    pub w: u32,
    /// Height in rows.
    pub h: u32,
    /// Query parameter name -> dashboard parameter name.
    pub parameter_mappings: BTreeMap<String, String>,
}

/// A widget as given by a caller.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WidgetInput {
    /// What it shows.
    #[serde(flatten)]
    pub kind: WidgetKind,
    /// Column of its left edge, from 0.
    pub x: u32,
    /// Row of its top edge, from 0.
    pub y: u32,
    /// Width in columns (1 to 24).
    pub w: u32,
    /// Height in rows.
    pub h: u32,
    /// Query parameter name -> dashboard parameter name.
    #[serde(default)]
    pub parameter_mappings: BTreeMap<String, String>,
}

/// A dashboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dashboard {
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
    /// Parameters shown at the top.
    pub parameters: Vec<DashboardParameter>,
    /// Other editors may change it too.
    pub shared: bool,
    /// Its widgets, top to bottom, left to right.
    pub widgets: Vec<Widget>,
    /// Increases with each change.
    pub revision: i64,
    /// When it was created (µs).
    pub created_at: i64,
    /// When it last changed (µs).
    pub updated_at: i64,
}

impl Dashboard {
    /// The parameter values for the query of `widget`, given values of the
    /// dashboard's parameters: each mapped query parameter takes the value
    /// of its dashboard parameter (or that parameter's default). Unmapped
    /// parameters are left out, so the query's own defaults apply.
    pub fn values_for(&self, widget: &Widget, values: &ParameterValues) -> ParameterValues {
        widget
            .parameter_mappings
            .iter()
            .filter_map(|(query_param, dashboard_param)| {
                let value = values.get(dashboard_param).cloned().or_else(|| {
                    self.parameters
                        .iter()
                        .find(|p| &p.name == dashboard_param)
                        .and_then(|p| p.default.clone())
                })?;
                Some((query_param.clone(), value))
            })
            .collect()
    }
}

/// A dashboard's settings, for create and (whole) update.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DashboardInput {
    /// Its name.
    pub name: String,
    /// Its address; made from the name when not given.
    #[serde(default)]
    pub slug: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Parameters shown at the top.
    #[serde(default)]
    pub parameters: Vec<DashboardParameter>,
    /// Let other editors change it.
    #[serde(default)]
    pub shared: bool,
    /// The widgets; an update replaces them all.
    #[serde(default)]
    pub widgets: Vec<WidgetInput>,
}

/// The dashboards' tags.
const TAGS: TagTable = TagTable {
    table: "dashboard_tags",
    key: "dashboard_id",
};

pub(crate) const SPEC: ListSpec = ListSpec {
    from: "dashboards d",
    alias: "d",
    sorts: &["name", "created_at", "updated_at"],
    default_sort: "-updated_at",
    filters: &[
        ("owner", Filter::Equals("d.owner_id")),
        ("tag", Filter::Tag(TAGS)),
        ("q", Filter::Contains("d.name")),
    ],
    created: Some("d.created_at"),
    updated: Some("d.updated_at"),
};

/// What validation needs to know about a visualization a widget names.
struct VisualizationFacts {
    parameters: Vec<ParameterDef>,
}

/// Where a widget hidden from the caller sits: it stays there through an
/// update, so the caller's widgets must leave it room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place {
    x: u32,
    y: u32,
    w: u32,
    h: u32,
}

impl Place {
    fn of(w: &WidgetInput) -> Self {
        Self {
            x: w.x,
            y: w.y,
            w: w.w,
            h: w.h,
        }
    }

    fn overlaps(self, other: Self) -> bool {
        let span = |start: u32, len: u32| (u64::from(start), u64::from(start) + u64::from(len));
        let (ax0, ax1) = span(self.x, self.w);
        let (ay0, ay1) = span(self.y, self.h);
        let (bx0, bx1) = span(other.x, other.w);
        let (by0, by1) = span(other.y, other.h);
        ax0 < bx1 && bx0 < ax1 && ay0 < by1 && by0 < ay1
    }
}

/// A stored widget hidden from the caller, kept as it is by an update.
#[derive(Debug, Clone)]
struct KeptWidget {
    id: String,
    visualization_id: Option<String>,
    place: Place,
    parameter_mappings: BTreeMap<String, String>,
}

/// Checks the grid: sizes, the 24 columns, no two widgets overlapping, and
/// none over a widget hidden from the caller (`kept`). `hidden`
/// placeholders in the input are not checked: they are ignored.
fn check_layout(v: &mut Validator, widgets: &[WidgetInput], kept: &[Place]) {
    let given = widgets
        .iter()
        .filter(|w| !matches!(w.kind, WidgetKind::Hidden {}))
        .count();
    if given + kept.len() > MAX_WIDGETS {
        v.push(
            "widgets",
            codes::field::TOO_MANY,
            format!("a dashboard holds at most {MAX_WIDGETS} widgets"),
        );
        return;
    }
    for (i, w) in widgets.iter().enumerate() {
        if matches!(w.kind, WidgetKind::Hidden {}) {
            continue;
        }
        let field = |name: &str| format!("widgets[{i}].{name}");
        v.check(
            (1..=GRID_COLUMNS).contains(&w.w),
            &field("w"),
            codes::field::OUT_OF_RANGE,
            || format!("width must be between 1 and {GRID_COLUMNS} columns"),
        );
        v.check(
            (1..=MAX_HEIGHT).contains(&w.h),
            &field("h"),
            codes::field::OUT_OF_RANGE,
            || format!("height must be between 1 and {MAX_HEIGHT} rows"),
        );
        v.check(
            w.x.saturating_add(w.w) <= GRID_COLUMNS,
            &field("x"),
            codes::field::OUT_OF_GRID,
            || {
                format!(
                    "the widget ends at column {}, past the {GRID_COLUMNS} of the grid",
                    w.x.saturating_add(w.w)
                )
            },
        );
        v.check(
            w.y <= MAX_ROW,
            &field("y"),
            codes::field::OUT_OF_RANGE,
            || format!("y must be at most {MAX_ROW}"),
        );
    }
    let placed = |w: &WidgetInput| !matches!(w.kind, WidgetKind::Hidden {});
    for (i, a) in widgets.iter().enumerate().filter(|(_, w)| placed(w)) {
        if let Some(j) = widgets[..i]
            .iter()
            .position(|b| placed(b) && overlaps(a, b))
        {
            v.push(
                format!("widgets[{i}]"),
                codes::field::OVERLAP,
                format!("widget {i} overlaps widget {j}"),
            );
        } else if let Some(k) = kept.iter().find(|k| Place::of(a).overlaps(**k)) {
            v.push(
                format!("widgets[{i}]"),
                codes::field::OVERLAP,
                format!(
                    "widget {i} overlaps a widget you cannot see, at column {} row {} ({} by {}); it stays there",
                    k.x, k.y, k.w, k.h
                ),
            );
        }
    }
}

fn overlaps(a: &WidgetInput, b: &WidgetInput) -> bool {
    Place::of(a).overlaps(Place::of(b))
}

/// Checks what each widget shows and its parameter mappings.
fn check_widgets(
    v: &mut Validator,
    widgets: &[WidgetInput],
    parameters: &[DashboardParameter],
    visualizations: &BTreeMap<String, VisualizationFacts>,
) {
    for (i, w) in widgets.iter().enumerate() {
        match &w.kind {
            // A placeholder the caller read back; the widget it stands for
            // is kept as it is.
            WidgetKind::Hidden {} => {}
            WidgetKind::Text { text } => {
                v.text(&format!("widgets[{i}].text"), text, 0, limits::TEXT);
                v.check(
                    w.parameter_mappings.is_empty(),
                    &format!("widgets[{i}].parameter_mappings"),
                    codes::field::INVALID,
                    || "a text widget has no parameters to map".into(),
                );
            }
            WidgetKind::Visualization { visualization_id } => {
                let Some(facts) = visualizations.get(visualization_id) else {
                    v.push(
                        format!("widgets[{i}].visualization_id"),
                        codes::NOT_FOUND,
                        format!("no visualization {visualization_id}"),
                    );
                    continue;
                };
                for (query_param, dashboard_param) in &w.parameter_mappings {
                    let field = format!("widgets[{i}].parameter_mappings.{query_param}");
                    let Some(target) = facts.parameters.iter().find(|p| &p.name == query_param)
                    else {
                        v.push(
                            field,
                            codes::field::UNKNOWN_PARAMETER,
                            format!("the widget's query has no parameter {query_param:?}"),
                        );
                        continue;
                    };
                    match parameters.iter().find(|p| &p.name == dashboard_param) {
                        None => v.push(
                            field,
                            codes::field::UNKNOWN_PARAMETER,
                            format!("the dashboard has no parameter {dashboard_param:?}"),
                        ),
                        Some(source) if source.ty != target.ty => v.push(
                            field,
                            codes::field::TYPE_MISMATCH,
                            format!(
                                "dashboard parameter {dashboard_param:?} is a {}, query parameter {query_param:?} a {}",
                                source.ty.name(),
                                target.ty.name()
                            ),
                        ),
                        Some(_) => {}
                    }
                }
            }
        }
    }
}

fn check_slug(v: &mut Validator, slug: &str) {
    let ok = !slug.is_empty()
        && slug.len() <= limits::SLUG
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    v.check(ok, "slug", codes::field::INVALID_SLUG, || {
        format!(
            "slug {slug:?}: use 1 to {} lowercase letters, digits and inner '-'",
            limits::SLUG
        )
    });
}

fn dashboard(row: &AnyRow, tags: Vec<String>, widgets: Vec<Widget>) -> Result<Dashboard> {
    Ok(Dashboard {
        id: col(row, "id")?,
        owner_id: col(row, "owner_id")?,
        name: col(row, "name")?,
        slug: col(row, "slug")?,
        tags,
        parameters: json(row, "parameters")?,
        shared: flag(row, "shared")?,
        widgets,
        revision: col(row, "revision")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

fn grid(row: &AnyRow, name: &str) -> Result<u32> {
    let n: i32 = col(row, name)?;
    u32::try_from(n).map_err(|_| Error::internal(format!("stored widget {name} {n}")))
}

/// A widget row as the reader may see it: a visualization on a datasource
/// they have no grant on (the row's `visible` column, [`groups::may_see`])
/// reads as a hidden placeholder.
fn widget(row: &AnyRow) -> Result<Widget> {
    let kind: String = col(row, "kind")?;
    if kind == "visualization" && !flag(row, "visible")? {
        return Ok(Widget {
            id: col(row, "id")?,
            kind: WidgetKind::Hidden {},
            query_id: None,
            x: grid(row, "x")?,
            y: grid(row, "y")?,
            w: grid(row, "w")?,
            h: grid(row, "h")?,
            parameter_mappings: BTreeMap::new(),
        });
    }
    let kind = match kind.as_str() {
        "visualization" => WidgetKind::Visualization {
            visualization_id: col(row, "visualization_id")?,
        },
        "text" => WidgetKind::Text {
            text: col(row, "text")?,
        },
        other => return Err(Error::internal(format!("stored widget kind {other:?}"))),
    };
    Ok(Widget {
        id: col(row, "id")?,
        kind,
        query_id: col(row, "query_id")?,
        x: grid(row, "x")?,
        y: grid(row, "y")?,
        w: grid(row, "w")?,
        h: grid(row, "h")?,
        parameter_mappings: json(row, "parameter_mappings")?,
    })
}

/// Dashboards.
#[derive(Debug, Clone)]
pub struct DashboardService {
    shared: Arc<Shared>,
}

impl DashboardService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The dashboards of `rows` with their tags and widgets as `actor` may
    /// see them: one statement per child table however many rows, so a
    /// list page costs as much as a single read. Whether the actor may see
    /// each widget is decided in the statement that reads the widgets.
    async fn complete(&self, actor: &Actor, rows: &[AnyRow]) -> Result<Vec<Dashboard>> {
        let ids = ids(rows)?;
        let store = &self.shared.store;
        let tags = TAGS.load(store, &ids).await?;
        let mut select = SqlBuilder::new("SELECT w.*, v.query_id, ");
        groups::may_see(&mut select, actor, "q.datasource_id");
        select.push(
            " AS visible FROM dashboard_widgets w LEFT JOIN visualizations v ON v.id = w.visualization_id \
             LEFT JOIN queries q ON q.id = v.query_id WHERE w.dashboard_id",
        );
        let widgets = Children::load(
            store,
            select,
            &ids,
            " ORDER BY w.dashboard_id, w.position",
            "dashboard_id",
        )
        .await?;
        rows.iter()
            .zip(&ids)
            .map(|(row, id)| dashboard(row, tags.values(id, "tag")?, widgets.map(id, widget)?))
            .collect()
    }

    /// One dashboard row with its tags and widgets.
    async fn complete_one(&self, actor: &Actor, row: AnyRow) -> Result<Dashboard> {
        only(
            self.complete(actor, std::slice::from_ref(&row)).await?,
            "dashboard",
        )
    }

    /// A dashboard of the actor's organization, by id, with the widgets
    /// they may not see as hidden placeholders.
    pub async fn get(&self, actor: &Actor, id: &str) -> Result<Dashboard> {
        let sql = "SELECT * FROM dashboards WHERE id = $1";
        let row = fetch_in_org(&self.shared.store, &actor.org_id, sql, "dashboard", id).await?;
        self.complete_one(actor, row).await
    }

    /// The dashboard of organization `org_id` with `slug`, if there is one.
    async fn find_by_slug(&self, org_id: &str, slug: &str) -> Result<Option<AnyRow>> {
        fetch_optional(
            &self.shared.store,
            sqlx::query("SELECT * FROM dashboards WHERE org_id = $1 AND slug = $2")
                .bind(org_id.to_owned())
                .bind(slug.to_owned()),
        )
        .await
    }

    /// A dashboard of the actor's organization, by slug.
    pub async fn get_by_slug(&self, actor: &Actor, slug: &str) -> Result<Dashboard> {
        let row = self
            .find_by_slug(&actor.org_id, slug)
            .await?
            .ok_or_else(|| Error::not_found("dashboard", slug))?;
        self.complete_one(actor, row).await
    }

    /// The organization's dashboards.
    pub async fn list(&self, actor: &Actor, request: &ListRequest) -> Result<ListPage<Dashboard>> {
        let rows = SPEC.org_rows(&actor.org_id);
        let page = SPEC.page(&self.shared.store, rows, request).await?;
        let items = self.complete(actor, &page.items).await?;
        Ok(page.with_items(items))
    }

    /// The visualizations `widgets` name that the actor may see (in their
    /// organization, on a datasource they have a grant on), with their
    /// queries' parameters. One they may not see is not found, as one that
    /// does not exist.
    async fn visualizations(
        &self,
        actor: &Actor,
        widgets: &[WidgetInput],
    ) -> Result<BTreeMap<String, VisualizationFacts>> {
        let named: BTreeSet<String> = widgets
            .iter()
            .filter_map(|w| match &w.kind {
                WidgetKind::Visualization { visualization_id } => Some(visualization_id.clone()),
                WidgetKind::Text { .. } | WidgetKind::Hidden {} => None,
            })
            .collect();
        let named: Vec<String> = named.into_iter().collect();
        // One statement for all of them: a dashboard may hold 200 widgets.
        let mut select = SqlBuilder::new(
            "SELECT v.id, q.parameters FROM visualizations v JOIN queries q ON q.id = v.query_id \
             WHERE v.org_id = ",
        );
        select.bind_text(&actor.org_id);
        visible_datasources(&mut select, actor, "q.datasource_id");
        select.push(" AND v.id");
        let rows = Children::load(&self.shared.store, select, &named, "", "id").await?;
        let mut found = BTreeMap::new();
        for id in named {
            if let Some(row) = rows.get(&id).first() {
                let parameters = json(row, "parameters")?;
                found.insert(id, VisualizationFacts { parameters });
            }
        }
        Ok(found)
    }

    /// Validates `input`, around the widgets hidden from the actor that an
    /// update keeps (`kept`), and returns its slug.
    async fn check(
        &self,
        actor: &Actor,
        input: &DashboardInput,
        id: Option<&str>,
        kept: &[KeptWidget],
    ) -> Result<String> {
        let slug = input
            .slug
            .clone()
            .unwrap_or_else(|| slugify(input.name.trim()));
        let mut v = Validator::new();
        v.name("name", input.name.trim());
        check_slug(&mut v, &slug);
        v.tags("tags", &input.tags);
        v.parameters(&input.parameters);
        let kept: Vec<Place> = kept.iter().map(|k| k.place).collect();
        check_layout(&mut v, &input.widgets, &kept);
        let visualizations = self.visualizations(actor, &input.widgets).await?;
        check_widgets(&mut v, &input.widgets, &input.parameters, &visualizations);
        let taken = self
            .find_by_slug(&actor.org_id, &slug)
            .await?
            .map(|row| col::<String>(&row, "id"))
            .transpose()?;
        v.check(
            taken.is_none() || taken.as_deref() == id,
            "slug",
            codes::field::TAKEN,
            || format!("another dashboard already uses the slug {slug:?}"),
        );
        v.finish()?;
        Ok(slug)
    }

    /// Creates a dashboard. Editors and admins.
    pub async fn create(&self, actor: &Actor, input: DashboardInput) -> Result<Dashboard> {
        actor.require(Role::Editor, "creating dashboards")?;
        let slug = self.check(actor, &input, None, &[]).await?;
        let id = new_id();
        let now = now_micros();
        let mut tx = self.shared.store.write().await?;
        sqlx::query(
            "INSERT INTO dashboards (id, org_id, owner_id, name, slug, parameters, shared, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id.clone())
        .bind(actor.org_id.clone())
        .bind(actor.user_id.clone())
        .bind(input.name.trim().to_owned())
        .bind(slug)
        .bind(to_json(&input.parameters)?)
        .bind(i16::from(input.shared))
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        replace_parts(&mut tx, &id, &input, &[]).await?;
        tx.commit().await.map_err(db_error)?;
        self.get(actor, &id).await
    }

    /// Replaces a dashboard's settings and widgets if `revision` is still
    /// current. Its owner, admins, or any editor when it is shared.
    pub async fn update(
        &self,
        actor: &Actor,
        id: &str,
        revision: i64,
        input: DashboardInput,
    ) -> Result<Dashboard> {
        let current = self.get(actor, id).await?;
        actor.require_edit(&current.owner_id, current.shared, "dashboard")?;
        let kept = self.hidden_widgets(&current).await?;
        let slug = self.check(actor, &input, Some(id), &kept).await?;
        let mut tx = self.shared.store.write().await?;
        let update = sqlx::query(
            "UPDATE dashboards SET name = $1, slug = $2, parameters = $3, shared = $4, revision = revision + 1, updated_at = $5 \
             WHERE id = $6 AND revision = $7",
        )
        .bind(input.name.trim().to_owned())
        .bind(slug)
        .bind(to_json(&input.parameters)?)
        .bind(i16::from(input.shared));
        update_at_revision(&mut *tx, update, "dashboard", id, revision).await?;
        replace_parts(&mut tx, id, &input, &kept).await?;
        tx.commit().await.map_err(db_error)?;
        self.get(actor, id).await
    }

    /// The stored widgets of `dashboard` (as read by the caller) that are
    /// hidden from the caller, as stored: an update keeps them.
    async fn hidden_widgets(&self, dashboard: &Dashboard) -> Result<Vec<KeptWidget>> {
        let hidden: Vec<String> = dashboard
            .widgets
            .iter()
            .filter(|w| matches!(w.kind, WidgetKind::Hidden {}))
            .map(|w| w.id.clone())
            .collect();
        let mut select = SqlBuilder::new("SELECT * FROM dashboard_widgets WHERE dashboard_id = ");
        select.bind_text(&dashboard.id).push(" AND id");
        let rows = Children::load(&self.shared.store, select, &hidden, "", "id").await?;
        let mut kept = Vec::with_capacity(hidden.len());
        for id in hidden {
            // A widget deleted since the read has nothing left to keep.
            let Some(row) = rows.get(&id).first() else {
                continue;
            };
            kept.push(KeptWidget {
                visualization_id: col(row, "visualization_id")?,
                place: Place {
                    x: grid(row, "x")?,
                    y: grid(row, "y")?,
                    w: grid(row, "w")?,
                    h: grid(row, "h")?,
                },
                parameter_mappings: json(row, "parameter_mappings")?,
                id,
            });
        }
        Ok(kept)
    }

    /// Runs every visualization widget of a dashboard: each widget's query
    /// starts with the dashboard's `values` mapped for that widget
    /// ([`Dashboard::values_for`]), answered from a result younger than
    /// `max_age`, by joining an identical run, or queued. One entry per
    /// visualization widget the actor may see, in order (hidden ones are
    /// left out); a widget that cannot start (no `run` access, an invalid
    /// value) has its error there and does not stop the others.
    pub async fn run(
        &self,
        actor: &Actor,
        id: &str,
        values: &ParameterValues,
        max_age: Option<std::time::Duration>,
    ) -> Result<Vec<(String, Result<super::runs::Started>)>> {
        let dashboard = self.get(actor, id).await?;
        let visualizations = super::visualizations::VisualizationService::new(self.shared.clone());
        let runs = super::runs::RunService::new(self.shared.clone());
        let mut started = Vec::with_capacity(dashboard.widgets.len());
        for widget in &dashboard.widgets {
            let WidgetKind::Visualization { visualization_id } = &widget.kind else {
                continue;
            };
            let widget_values = dashboard.values_for(widget, values);
            let outcome = async {
                let visualization = visualizations.get(actor, visualization_id).await?;
                runs.start_query(actor, &visualization.query_id, &widget_values, max_age)
                    .await
            }
            .await;
            started.push((widget.id.clone(), outcome));
        }
        Ok(started)
    }

    /// Deletes a dashboard and its widgets (not the visualizations).
    pub async fn delete(&self, actor: &Actor, id: &str) -> Result<()> {
        let current = self.get(actor, id).await?;
        actor.require_edit(&current.owner_id, current.shared, "dashboard")?;
        let detail = serde_json::json!({ "name": current.name, "slug": current.slug });
        audit::delete_audited(
            &self.shared.store,
            actor,
            "dashboards",
            "dashboard",
            id,
            detail,
        )
        .await
    }
}

/// Writes the tags and widgets of `input` in place of the old ones, then
/// the `kept` widgets as they were (with their ids). `hidden` placeholders
/// in the input are skipped: the widgets they stand for are in `kept`.
async fn replace_parts(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    input: &DashboardInput,
    kept: &[KeptWidget],
) -> Result<()> {
    TAGS.replace(tx, id, &normalize_tags(&input.tags)).await?;
    sqlx::query("DELETE FROM dashboard_widgets WHERE dashboard_id = $1")
        .bind(id.to_owned())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    let given = input.widgets.iter().filter_map(|w| {
        let (kind, visualization_id, text) = match &w.kind {
            WidgetKind::Visualization { visualization_id } => {
                ("visualization", Some(visualization_id.clone()), None)
            }
            WidgetKind::Text { text } => ("text", None, Some(text.clone())),
            WidgetKind::Hidden {} => return None,
        };
        let row = (new_id(), kind, visualization_id, text, Place::of(w));
        Some((row, &w.parameter_mappings))
    });
    let kept = kept.iter().map(|k| {
        let row = (
            k.id.clone(),
            "visualization",
            k.visualization_id.clone(),
            None,
            k.place,
        );
        (row, &k.parameter_mappings)
    });
    for (position, ((widget_id, kind, visualization_id, text, place), mappings)) in
        given.chain(kept).enumerate()
    {
        sqlx::query(
            "INSERT INTO dashboard_widgets (id, dashboard_id, kind, visualization_id, text, x, y, w, h, parameter_mappings, position) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(widget_id)
        .bind(id.to_owned())
        .bind(kind)
        .bind(visualization_id)
        .bind(text)
        .bind(i64::from(place.x))
        .bind(i64::from(place.y))
        .bind(i64::from(place.w))
        .bind(i64::from(place.h))
        .bind(to_json(mappings)?)
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_core::ParameterType;

    fn text(x: u32, y: u32, w: u32, h: u32) -> WidgetInput {
        WidgetInput {
            kind: WidgetKind::Text { text: "hi".into() },
            x,
            y,
            w,
            h,
            parameter_mappings: BTreeMap::new(),
        }
    }

    #[test]
    fn widgets_must_fit_the_grid_and_not_overlap() {
        let mut v = Validator::new();
        check_layout(
            &mut v,
            &[text(0, 0, 12, 4), text(12, 0, 12, 4), text(0, 4, 24, 2)],
            &[],
        );
        assert!(v.is_ok(), "side by side and below is fine");

        let mut v = Validator::new();
        check_layout(&mut v, &[text(0, 0, 12, 4), text(11, 3, 4, 4)], &[]);
        assert_eq!(v.fields(), ["widgets[1]"]);

        let mut v = Validator::new();
        check_layout(
            &mut v,
            &[text(20, 0, 5, 1), text(0, 0, 0, 1), text(0, 2, 1, 0)],
            &[],
        );
        assert_eq!(v.fields(), ["widgets[0].x", "widgets[1].w", "widgets[2].h"]);

        // A widget hidden from the caller stays where it is: the caller's
        // widgets leave it room; the placeholders they send back do not
        // count.
        let hidden = Place {
            x: 6,
            y: 0,
            w: 6,
            h: 4,
        };
        let placeholder = WidgetInput {
            kind: WidgetKind::Hidden {},
            ..text(6, 0, 6, 4)
        };
        let mut v = Validator::new();
        check_layout(&mut v, &[text(0, 0, 6, 4), placeholder], &[hidden]);
        assert!(v.is_ok());
        let mut v = Validator::new();
        check_layout(&mut v, &[text(0, 0, 6, 4), text(8, 3, 2, 2)], &[hidden]);
        assert_eq!(v.fields(), ["widgets[1]"]);

        // Corners that touch do not overlap; huge values do not wrap.
        assert!(!overlaps(&text(0, 0, 2, 2), &text(2, 2, 2, 2)));
        assert!(overlaps(
            &text(0, u32::MAX - 1, 24, u32::MAX),
            &text(0, u32::MAX, 1, 1)
        ));
    }

    #[test]
    fn mappings_name_parameters_of_the_same_type_on_both_sides() {
        let parameters = vec![
            ParameterDef::new("period", ParameterType::DateRange),
            ParameterDef::new("n", ParameterType::Integer),
        ];
        let mut visualizations = BTreeMap::new();
        visualizations.insert(
            "viz".to_owned(),
            VisualizationFacts {
                parameters: vec![
                    ParameterDef::new("range", ParameterType::DateRange),
                    ParameterDef::new("region", ParameterType::Text),
                ],
            },
        );
        let widget = |mappings: &[(&str, &str)], viz: &str| WidgetInput {
            kind: WidgetKind::Visualization {
                visualization_id: viz.into(),
            },
            x: 0,
            y: 0,
            w: 1,
            h: 1,
            parameter_mappings: mappings
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect(),
        };
        let mut v = Validator::new();
        check_widgets(
            &mut v,
            &[widget(&[("range", "period")], "viz")],
            &parameters,
            &visualizations,
        );
        assert!(v.is_ok());

        let mut v = Validator::new();
        check_widgets(
            &mut v,
            &[
                widget(
                    &[("range", "n"), ("nope", "period"), ("region", "missing")],
                    "viz",
                ),
                widget(&[], "other"),
            ],
            &parameters,
            &visualizations,
        );
        let errors = v.finish().unwrap_err();
        let codes: Vec<(&str, &str)> = errors
            .field_errors()
            .iter()
            .map(|f| (f.field.as_str(), f.code.as_str()))
            .collect();
        assert_eq!(
            codes,
            [
                ("widgets[0].parameter_mappings.nope", "unknown_parameter"),
                ("widgets[0].parameter_mappings.range", "type_mismatch"),
                ("widgets[0].parameter_mappings.region", "unknown_parameter"),
                ("widgets[1].visualization_id", "not_found"),
            ]
        );
    }

    #[test]
    fn widget_values_come_from_the_dashboard_or_its_defaults() {
        let dashboard = Dashboard {
            id: "d".into(),
            owner_id: "u".into(),
            name: "D".into(),
            slug: "d".into(),
            tags: vec![],
            parameters: vec![
                ParameterDef::new("region", ParameterType::Text)
                    .with_default(serde_json::json!("EU")),
                ParameterDef::new("n", ParameterType::Integer),
            ],
            shared: false,
            widgets: vec![],
            revision: 1,
            created_at: 0,
            updated_at: 0,
        };
        let widget = Widget {
            id: "w".into(),
            kind: WidgetKind::Text {
                text: String::new(),
            },
            query_id: None,
            x: 0,
            y: 0,
            w: 1,
            h: 1,
            parameter_mappings: [("area", "region"), ("limit", "n")]
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect(),
        };
        let given: ParameterValues = [("n".to_owned(), serde_json::json!(5))]
            .into_iter()
            .collect();
        let values = dashboard.values_for(&widget, &given);
        assert_eq!(values.get("area"), Some(&serde_json::json!("EU")));
        assert_eq!(values.get("limit"), Some(&serde_json::json!(5)));
        let none = dashboard.values_for(&widget, &ParameterValues::new());
        assert_eq!(
            none.len(),
            1,
            "no value and no default: the query's own default applies"
        );
    }
}
