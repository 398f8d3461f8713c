//! Visualizations of a query's result: a type (table, line, bar, area,
//! scatter, pie, counter, pivot) and options checked against that type —
//! the columns each type needs must be named, unknown keys are refused.

use loupe_core::codes;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use super::actor::{Actor, Role};
use super::audit;
use super::groups::{self, visible_datasources};
use super::validate::Validator;
use crate::meta::{Filter, ListPage, ListRequest, ListSpec, db_error, new_id, now_micros};
use crate::meta::{col, fetch_in_org, flag, json, to_json, update_at_revision};
use crate::services::Shared;
use loupe_core::{Error, Result};

/// The kinds of visualization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisualizationType {
    /// A table of rows.
    Table,
    /// Lines over an x axis.
    Line,
    /// Bars.
    Bar,
    /// Filled areas.
    Area,
    /// Points.
    Scatter,
    /// Slices of a whole.
    Pie,
    /// One big number.
    Counter,
    /// A pivot table.
    Pivot,
}

impl VisualizationType {
    /// The type's name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::Line => "line",
            Self::Bar => "bar",
            Self::Area => "area",
            Self::Scatter => "scatter",
            Self::Pie => "pie",
            Self::Counter => "counter",
            Self::Pivot => "pivot",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "table" => Self::Table,
            "line" => Self::Line,
            "bar" => Self::Bar,
            "area" => Self::Area,
            "scatter" => Self::Scatter,
            "pie" => Self::Pie,
            "counter" => Self::Counter,
            "pivot" => Self::Pivot,
            _ => return None,
        })
    }
}

// Options per type are loupe-charts' (the shapes it draws from), with
// `deny_unknown_fields`: keys a type does not use are refused.
use loupe_charts::{
    CounterOptions, PieOptions, PivotOptions, ScatterOptions, SeriesOptions, TableOptions,
};

fn from_options<T: serde::de::DeserializeOwned>(
    v: &mut Validator,
    options: &serde_json::Value,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(options.clone()) {
        Ok(parsed) => Some(parsed),
        Err(e) => {
            let path = e.path().to_string();
            let field = if path == "." {
                "options".to_owned()
            } else {
                format!("options.{path}")
            };
            v.push(
                field,
                codes::field::INVALID_OPTION,
                e.into_inner().to_string(),
            );
            None
        }
    }
}

fn column(v: &mut Validator, field: &str, name: &str) {
    v.text(&format!("options.{field}"), name, 1, crate::limits::NAME);
}

fn columns(v: &mut Validator, field: &str, names: &[String], at_least_one: bool) {
    if at_least_one && names.is_empty() {
        v.push(
            format!("options.{field}"),
            codes::field::REQUIRED,
            format!("name at least one column in {field}"),
        );
    }
    for (i, name) in names.iter().enumerate() {
        column(v, &format!("{field}[{i}]"), name);
    }
}

/// Checks `options` for a visualization of type `kind`.
pub(crate) fn check_options(
    v: &mut Validator,
    kind: VisualizationType,
    options: &serde_json::Value,
) {
    if !options.is_object() {
        v.push(
            "options",
            codes::field::INVALID_OPTION,
            "options must be an object",
        );
        return;
    }
    match kind {
        VisualizationType::Table => {
            if let Some(o) = from_options::<TableOptions>(v, options) {
                columns(v, "columns", &o.columns, false);
                v.check(
                    o.page_size.is_none_or(|p| (1..=1000).contains(&p)),
                    "options.page_size",
                    codes::field::OUT_OF_RANGE,
                    || "page_size must be between 1 and 1000".into(),
                );
            }
        }
        VisualizationType::Line | VisualizationType::Bar | VisualizationType::Area => {
            if let Some(o) = from_options::<SeriesOptions>(v, options) {
                column(v, "x", &o.x);
                columns(v, "y", &o.y, true);
                if let Some(s) = &o.series {
                    column(v, "series", s);
                }
                v.check(
                    !o.stacked || kind != VisualizationType::Line,
                    "options.stacked",
                    codes::field::INVALID_OPTION,
                    || "lines are not stacked; use an area chart".into(),
                );
            }
        }
        VisualizationType::Scatter => {
            if let Some(o) = from_options::<ScatterOptions>(v, options) {
                column(v, "x", &o.x);
                column(v, "y", &o.y);
                for (field, c) in [("size", &o.size), ("series", &o.series)] {
                    if let Some(c) = c {
                        column(v, field, c);
                    }
                }
            }
        }
        VisualizationType::Pie => {
            if let Some(o) = from_options::<PieOptions>(v, options) {
                column(v, "label", &o.label);
                column(v, "value", &o.value);
            }
        }
        VisualizationType::Counter => {
            if let Some(o) = from_options::<CounterOptions>(v, options) {
                column(v, "value", &o.value);
                if let Some(t) = &o.target {
                    column(v, "target", t);
                }
                // The chart's own rule: a format it cannot read would be
                // saved, then fail every drawing.
                if let Some(Err(e)) = o.format.as_deref().map(loupe_charts::NumberFormat::parse) {
                    let message = match e {
                        loupe_charts::ChartError::InvalidOptions { message, .. } => message,
                        other => other.to_string(),
                    };
                    v.push("options.format", codes::field::INVALID_OPTION, message);
                }
            }
        }
        VisualizationType::Pivot => {
            if let Some(o) = from_options::<PivotOptions>(v, options) {
                columns(v, "rows", &o.rows, true);
                columns(v, "columns", &o.columns, false);
                columns(v, "values", &o.values, true);
            }
        }
    }
}

/// A visualization.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Visualization {
    /// Its id.
    pub id: String,
    /// The query whose result it shows.
    pub query_id: String,
    /// Who owns it.
    pub owner_id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: VisualizationType,
    /// Its name.
    pub name: String,
    /// Options for its type.
    pub options: serde_json::Value,
    /// Increases with each change.
    pub revision: i64,
    /// When it was created (µs).
    pub created_at: i64,
    /// When it last changed (µs).
    pub updated_at: i64,
}

/// A visualization's settings.
#[derive(Debug, Clone)]
pub struct VisualizationInput {
    /// The query whose result it shows (fixed after creation).
    pub query_id: String,
    /// Its type.
    pub kind: VisualizationType,
    /// Its name.
    pub name: String,
    /// Options for its type.
    pub options: serde_json::Value,
}

pub(crate) const SPEC: ListSpec = ListSpec {
    from: "visualizations v JOIN queries q ON q.id = v.query_id",
    alias: "v",
    sorts: &["name", "created_at", "updated_at"],
    default_sort: "-updated_at",
    filters: &[
        ("query", Filter::Equals("v.query_id")),
        ("owner", Filter::Equals("v.owner_id")),
        ("type", Filter::Equals("v.type")),
        ("q", Filter::Contains("v.name")),
    ],
    created: None,
    updated: None,
};

fn visualization(row: &AnyRow) -> Result<Visualization> {
    let kind: String = col(row, "type")?;
    Ok(Visualization {
        id: col(row, "id")?,
        query_id: col(row, "query_id")?,
        owner_id: col(row, "owner_id")?,
        kind: VisualizationType::parse(&kind)
            .ok_or_else(|| Error::internal(format!("stored visualization type {kind:?}")))?,
        name: col(row, "name")?,
        options: json(row, "options")?,
        revision: col(row, "revision")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

/// Visualizations.
#[derive(Debug, Clone)]
pub struct VisualizationService {
    shared: Arc<Shared>,
}

impl VisualizationService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The visualization, the datasource of its query, and whether the
    /// query is shared.
    async fn load(&self, actor: &Actor, id: &str) -> Result<(Visualization, String, bool)> {
        let sql = "SELECT v.*, q.datasource_id, q.shared AS query_shared FROM visualizations v JOIN queries q ON q.id = v.query_id WHERE v.id = $1";
        let row = fetch_in_org(&self.shared.store, &actor.org_id, sql, "visualization", id).await?;
        Ok((
            visualization(&row)?,
            col(&row, "datasource_id")?,
            flag(&row, "query_shared")?,
        ))
    }

    /// A visualization the actor may see. One on a datasource they have
    /// no grant on is not found, as if it did not exist.
    pub async fn get(&self, actor: &Actor, id: &str) -> Result<Visualization> {
        let (found, datasource, _) = self.load(actor, id).await?;
        groups::require_view(&self.shared, actor, &datasource, hidden(id)).await?;
        Ok(found)
    }

    /// A visualization the actor may see and change: its owner, admins,
    /// or any editor when its query is shared.
    async fn editable(&self, actor: &Actor, id: &str) -> Result<Visualization> {
        let (current, datasource, query_shared) = self.load(actor, id).await?;
        groups::require_view(&self.shared, actor, &datasource, hidden(id)).await?;
        actor.require_edit(&current.owner_id, query_shared, "visualization")?;
        Ok(current)
    }

    /// The visualizations the actor may see.
    pub async fn list(
        &self,
        actor: &Actor,
        request: &ListRequest,
    ) -> Result<ListPage<Visualization>> {
        let mut rows = SPEC.org_rows(&actor.org_id);
        visible_datasources(&mut rows, actor, "q.datasource_id");
        SPEC.page(&self.shared.store, rows, request)
            .await?
            .try_map(visualization)
    }

    /// Adds a visualization to a query the actor may see. Editors and admins.
    pub async fn create(&self, actor: &Actor, input: VisualizationInput) -> Result<Visualization> {
        actor.require(Role::Editor, "creating visualizations")?;
        let query = super::queries::QueryService::new(self.shared.clone())
            .get(actor, &input.query_id)
            .await
            .map_err(|e| match e {
                Error::NotFound { .. } => Error::field(
                    "query_id",
                    codes::NOT_FOUND,
                    format!("no query {}", input.query_id),
                ),
                other => other,
            })?;
        let mut v = Validator::new();
        v.name("name", input.name.trim());
        check_options(&mut v, input.kind, &input.options);
        v.finish()?;
        let id = new_id();
        let now = now_micros();
        sqlx::query(
            "INSERT INTO visualizations (id, org_id, query_id, owner_id, type, name, options, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id.clone())
        .bind(actor.org_id.clone())
        .bind(query.id.clone())
        .bind(actor.user_id.clone())
        .bind(input.kind.as_str())
        .bind(input.name.trim().to_owned())
        .bind(to_json(&input.options)?)
        .bind(now)
        .bind(now)
        .execute(self.shared.store.pool())
        .await
        .map_err(db_error)?;
        self.get(actor, &id).await
    }

    /// Changes a visualization's type, name or options if `revision` is
    /// still current. Its owner, admins, or any editor when its query is
    /// shared.
    pub async fn update(
        &self,
        actor: &Actor,
        id: &str,
        revision: i64,
        input: VisualizationInput,
    ) -> Result<Visualization> {
        let current = self.editable(actor, id).await?;
        let mut v = Validator::new();
        v.name("name", input.name.trim());
        check_options(&mut v, input.kind, &input.options);
        v.check(
            input.query_id == current.query_id,
            "query_id",
            codes::field::IMMUTABLE,
            || "a visualization stays with its query; create a new one for another query".into(),
        );
        v.finish()?;
        let update = sqlx::query(
            "UPDATE visualizations SET type = $1, name = $2, options = $3, revision = revision + 1, updated_at = $4 WHERE id = $5 AND revision = $6",
        )
        .bind(input.kind.as_str())
        .bind(input.name.trim().to_owned())
        .bind(to_json(&input.options)?);
        let pool = self.shared.store.pool();
        update_at_revision(pool, update, "visualization", id, revision).await?;
        self.get(actor, id).await
    }

    /// Deletes a visualization (and the dashboard widgets that show it).
    pub async fn delete(&self, actor: &Actor, id: &str) -> Result<()> {
        let current = self.editable(actor, id).await?;
        let detail = serde_json::json!({ "query": current.query_id });
        let store = &self.shared.store;
        audit::delete_audited(store, actor, "visualizations", "visualization", id, detail).await
    }
}

/// What an actor without a grant on visualization `id`'s datasource is
/// told: that it does not exist, as a read of an unknown id says.
/// What a chart is rendered as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageFormat {
    /// Scalable vector graphics.
    Svg,
    /// A PNG picture.
    Png,
}

impl ImageFormat {
    /// The format's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Svg => "svg",
            Self::Png => "png",
        }
    }

    /// The HTTP media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Svg => "image/svg+xml",
            Self::Png => "image/png",
        }
    }
}

/// The most rows of a result a chart is drawn from; a chart of a longer
/// result says it shows the first ones.
pub const CHART_ROWS: u64 = 10_000;

/// A rendered chart and the run whose result it shows.
#[derive(Debug, Clone)]
pub struct RenderedImage {
    /// The image.
    pub bytes: Vec<u8>,
    /// Its format.
    pub format: ImageFormat,
    /// The run whose stored result it was drawn from.
    pub run_id: String,
}

impl VisualizationService {
    /// A visualization by id, without access checks (for deliveries and
    /// signed links, whose access was checked when they were made).
    pub(crate) async fn get_unchecked(&self, id: &str) -> Result<Visualization> {
        let sql = "SELECT * FROM visualizations WHERE id = $1";
        visualization(&crate::meta::fetch_one(&self.shared.store, sql, "visualization", id).await?)
    }

    /// The chart of the latest stored result of the visualization's
    /// query, as the actor may see it. `size` is width and height in
    /// pixels (800×450 by default).
    pub async fn image(
        &self,
        actor: &Actor,
        id: &str,
        format: ImageFormat,
        size: Option<(u32, u32)>,
    ) -> Result<RenderedImage> {
        let found = self.get(actor, id).await?;
        let query = crate::services::load_query(&self.shared.store, &found.query_id).await?;
        // Under row-level restrictions, the latest run of the caller's own
        // context; else the latest of all.
        let ids = [query.datasource_id.clone()];
        let visible = crate::rls::visible_contexts(&self.shared, actor, &ids).await?;
        let context = visible.get(&query.datasource_id).cloned().flatten();
        let latest: Option<(String,)> = sqlx::query_as(
            "SELECT id FROM runs WHERE query_id = $1 AND status = 'succeeded' AND result_location IS NOT NULL \
             AND ($2 = '' OR context = $2) ORDER BY finished_at DESC, id DESC LIMIT 1",
        )
        .bind(found.query_id.clone())
        .bind(context.unwrap_or_default())
        .fetch_optional(self.shared.store.pool())
        .await
        .map_err(db_error)?;
        let Some((run_id,)) = latest else {
            return Err(Error::conflict(
                codes::RESULT_NOT_FOUND,
                format!(
                    "query {} has no stored result yet; run it, then ask for the image again",
                    found.query_id
                ),
            ));
        };
        let run = super::runs::RunService::new(self.shared.clone())
            .get_unchecked(&run_id)
            .await?;
        let bytes = self.render_run(&found, &run, format, size).await?;
        Ok(RenderedImage {
            bytes,
            format,
            run_id,
        })
    }

    /// The chart of one run's result, for a signed link (checked by the
    /// caller): the run must be of the visualization's query.
    pub async fn image_of_run(
        &self,
        id: &str,
        run_id: &str,
        format: ImageFormat,
        size: Option<(u32, u32)>,
    ) -> Result<RenderedImage> {
        let found = self.get_unchecked(id).await?;
        let run = super::runs::RunService::new(self.shared.clone())
            .get_unchecked(run_id)
            .await?;
        if run.query_id.as_deref() != Some(found.query_id.as_str()) {
            return Err(Error::not_found("run", run_id));
        }
        let bytes = self.render_run(&found, &run, format, size).await?;
        Ok(RenderedImage {
            bytes,
            format,
            run_id: run_id.to_owned(),
        })
    }

    /// Renders `found` from the stored result of `run` (its first
    /// [`CHART_ROWS`] rows), off the async threads.
    pub(crate) async fn render_run(
        &self,
        found: &Visualization,
        run: &super::runs::Run,
        format: ImageFormat,
        size: Option<(u32, u32)>,
    ) -> Result<Vec<u8>> {
        let size = match size {
            Some((width, height)) => loupe_charts::Size::new(width, height)
                .map_err(|e| Error::field("width", codes::field::OUT_OF_RANGE, e.to_string()))?,
            None => loupe_charts::Size::DEFAULT,
        };
        let chart = loupe_charts::Chart::from_type_and_options(found.kind.as_str(), &found.options)
            .map_err(undrawable(&found.name))?;
        let results = self
            .shared
            .results
            .as_ref()
            .ok_or_else(|| Error::config("charts need the result store"))?;
        let location = run
            .result_location
            .as_deref()
            .filter(|_| run.status == super::runs::RunStatus::Succeeded)
            .ok_or_else(|| {
                Error::conflict(
                    codes::RUN_NOT_FINISHED,
                    format!("run {} has no stored result to draw", run.id),
                )
            })?;
        let result = loupe_core::ResultId::parse(location)?;
        let page = results
            .read_page(&result, &loupe_core::PageRequest::new(0, CHART_ROWS))
            .await?;
        let title = found.name.clone();
        tokio::task::spawn_blocking(move || {
            let invalid = undrawable(&title);
            let frame = loupe_charts::Frame {
                title: Some(&title),
                size,
                more_rows: page.total_rows > page.num_rows(),
            };
            let svg = loupe_charts::render_svg(&chart, &page.batches, &frame).map_err(&invalid)?;
            match format {
                ImageFormat::Svg => Ok(svg.into_string().into_bytes()),
                ImageFormat::Png => loupe_charts::svg_to_png(svg.as_str(), size).map_err(invalid),
            }
        })
        .await
        .map_err(|e| Error::internal_from("rendering a chart", e))?
    }
}

/// What says a visualization cannot be drawn from its query's result.
fn undrawable(name: &str) -> impl Fn(loupe_charts::ChartError) -> Error {
    let name = name.to_owned();
    move |e| Error::conflict(codes::CHART_UNDRAWABLE, format!("{name}: {e}"))
}

fn hidden(id: &str) -> impl FnOnce() -> Error {
    let id = id.to_owned();
    move || Error::not_found("visualization", id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(kind: VisualizationType, options: serde_json::Value) -> Vec<String> {
        let mut v = Validator::new();
        check_options(&mut v, kind, &options);
        match v.finish() {
            Ok(()) => vec![],
            Err(e) => e
                .field_errors()
                .iter()
                .map(|f| format!("{}:{}", f.field, f.code))
                .collect(),
        }
    }

    #[test]
    fn each_type_names_its_columns() {
        assert!(
            errors(
                VisualizationType::Line,
                json!({"x": "day", "y": ["revenue"]})
            )
            .is_empty()
        );
        assert_eq!(
            errors(VisualizationType::Line, json!({"x": "day", "y": []})),
            ["options.y:required"]
        );
        assert_eq!(
            errors(VisualizationType::Pie, json!({"label": "country"})),
            ["options:invalid_option"]
        );
        assert!(
            errors(
                VisualizationType::Pivot,
                json!({"rows": ["a"], "values": ["b"], "aggregation": "sum"})
            )
            .is_empty()
        );
        assert_eq!(
            errors(
                VisualizationType::Pivot,
                json!({"rows": ["a"], "values": ["b"], "aggregation": "median"})
            ),
            ["options.aggregation:invalid_option"]
        );
        assert!(errors(VisualizationType::Table, json!({})).is_empty());
    }

    #[test]
    fn a_counter_format_the_chart_cannot_read_is_refused() {
        assert!(
            errors(
                VisualizationType::Counter,
                json!({"value": "n", "format": "$0,0.00"})
            )
            .is_empty()
        );
        for bad in ["", "no digits", "0.0.0", "0.00#0"] {
            assert_eq!(
                errors(
                    VisualizationType::Counter,
                    json!({"value": "n", "format": bad})
                ),
                ["options.format:invalid_option"],
                "{bad:?}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = errors(
            VisualizationType::Counter,
            json!({"value": "n", "colour": "red"}),
        );
        assert_eq!(
            e,
            ["options.colour:invalid_option"],
            "the unknown key is named"
        );
        assert_eq!(
            errors(VisualizationType::Bar, json!([1])),
            ["options:invalid_option"]
        );
    }
}
