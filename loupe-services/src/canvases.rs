//! Canvases: free-form boards of nodes (text, or links to a query, a
//! visualization or a dashboard) placed anywhere, joined by edges.
//!
//! A node that links to an object names one of the canvas's organization.
//! When that object is later deleted the node stays, with no target, and
//! the canvas shows it as missing. Edges join nodes of the same canvas.
//! Access works as for dashboards: every member reads; editors change
//! their own canvases and shared ones; admins any. As on a dashboard, a
//! node that links to a query or visualization on a datasource the reader
//! has no grant on shows as a `hidden` node (its id and place, not what it
//! links to); an update keeps such nodes as they are, and edges may still
//! join them.

use loupe_core::codes;
use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::actor::{Actor, Role};
use super::audit;
use super::groups::{self, visible_datasources};
use super::validate::Validator;
use crate::limits;
use crate::meta::{Children, ids};
use crate::meta::{
    Filter, ListPage, ListRequest, ListSpec, SqlBuilder, db_error, new_id, now_micros,
};
use crate::meta::{col, fetch_in_org, flag, only, update_at_revision};
use crate::services::Shared;
use loupe_core::{Error, Result};

/// Most nodes on one canvas.
pub const MAX_NODES: usize = 500;
/// Most edges on one canvas.
pub const MAX_EDGES: usize = 2000;
/// Coordinates stay within ±this, so clients can draw them.
const MAX_COORDINATE: f64 = 1.0e7;

/// What a node shows. A link whose target was deleted reads as `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NodeKind {
    /// Text (Markdown, rendered by the client).
    Text {
        /// The text.
        text: String,
    },
    /// A link to a saved query.
    Query {
        /// The query; `None` once it was deleted.
        query_id: Option<String>,
    },
    /// A link to a visualization.
    Visualization {
        /// The visualization; `None` once it was deleted.
        visualization_id: Option<String>,
    },
    /// A link to a dashboard.
    Dashboard {
        /// The dashboard; `None` once it was deleted.
        dashboard_id: Option<String>,
    },
    /// A link to a query or visualization the reader may not see (none of
    /// their groups has a grant on its datasource): only its id and place
    /// show. Given in an update, it is ignored: the node it stands for is
    /// kept as it is.
    Hidden {},
}

impl NodeKind {
    fn as_str(&self) -> &'static str {
        match self {
            Self::Text { .. } => "text",
            Self::Query { .. } => "query",
            Self::Visualization { .. } => "visualization",
            Self::Dashboard { .. } => "dashboard",
            Self::Hidden {} => "hidden",
        }
    }

    /// The table and id of the object a link node points at.
    fn target(&self) -> Option<(&'static str, &'static str, Option<&str>)> {
        match self {
            Self::Text { .. } | Self::Hidden {} => None,
            Self::Query { query_id } => Some(("queries", "query_id", query_id.as_deref())),
            Self::Visualization { visualization_id } => Some((
                "visualizations",
                "visualization_id",
                visualization_id.as_deref(),
            )),
            Self::Dashboard { dashboard_id } => {
                Some(("dashboards", "dashboard_id", dashboard_id.as_deref()))
            }
        }
    }
}

/// A node of a canvas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanvasNode {
    /// Its id, chosen by the client, unique in the canvas.
    pub id: String,
    /// What it shows.
    #[serde(flatten)]
    pub kind: NodeKind,
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width, above 0.
    pub w: f64,
    /// Height, above 0.
    pub h: f64,
}

/// An edge between two nodes of a canvas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanvasEdge {
    /// Its id, chosen by the client, unique in the canvas.
    pub id: String,
    /// The node it starts at.
    pub from: String,
    /// The node it ends at.
    pub to: String,
    /// A label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// A canvas.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Canvas {
    /// Its id.
    pub id: String,
    /// Who owns it.
    pub owner_id: String,
    /// Its name.
    pub name: String,
    /// Other editors may change it too.
    pub shared: bool,
    /// Its nodes.
    pub nodes: Vec<CanvasNode>,
    /// Its edges.
    pub edges: Vec<CanvasEdge>,
    /// Increases with each change.
    pub revision: i64,
    /// When it was created (µs).
    pub created_at: i64,
    /// When it last changed (µs).
    pub updated_at: i64,
}

/// A canvas's settings, for create and (whole) update.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CanvasInput {
    /// Its name.
    pub name: String,
    /// Let other editors change it.
    #[serde(default)]
    pub shared: bool,
    /// Its nodes; an update replaces them all.
    #[serde(default)]
    pub nodes: Vec<CanvasNode>,
    /// Its edges; an update replaces them all.
    #[serde(default)]
    pub edges: Vec<CanvasEdge>,
}

pub(crate) const SPEC: ListSpec = ListSpec {
    from: "canvases c",
    alias: "c",
    sorts: &["name", "created_at", "updated_at"],
    default_sort: "-updated_at",
    filters: &[
        ("owner", Filter::Equals("c.owner_id")),
        ("q", Filter::Contains("c.name")),
    ],
    created: Some("c.created_at"),
    updated: Some("c.updated_at"),
};

/// Checks the id a client chose for a node or an edge (`what`), and that
/// none before it (`seen`) has the same.
fn local_id<'a>(
    v: &mut Validator,
    seen: &mut BTreeSet<&'a str>,
    field: &str,
    what: &str,
    id: &'a str,
) {
    let ok = (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    v.check(ok, field, codes::field::INVALID_ID, || {
        format!("id {id:?}: use 1 to 64 letters, digits, '-' or '_'")
    });
    if !seen.insert(id) {
        v.push(
            field,
            codes::field::DUPLICATE,
            format!("{what} id {id:?} is used twice"),
        );
    }
}

/// Checks the graph: node ids unique, shapes finite, edges between
/// existing nodes, the nodes hidden from the caller that an update keeps
/// (`kept`) among them. `hidden` placeholders in the input are ignored.
/// Link targets are checked against the store separately.
fn check_graph(v: &mut Validator, nodes: &[CanvasNode], edges: &[CanvasEdge], kept: &[CanvasNode]) {
    let given = nodes
        .iter()
        .filter(|n| !matches!(n.kind, NodeKind::Hidden {}))
        .count();
    if given + kept.len() > MAX_NODES {
        v.push(
            "nodes",
            codes::field::TOO_MANY,
            format!("a canvas holds at most {MAX_NODES} nodes"),
        );
    }
    if edges.len() > MAX_EDGES {
        v.push(
            "edges",
            codes::field::TOO_MANY,
            format!("a canvas holds at most {MAX_EDGES} edges"),
        );
    }
    let mut ids: BTreeSet<&str> = kept.iter().map(|n| n.id.as_str()).collect();
    for (i, node) in nodes.iter().enumerate() {
        if matches!(node.kind, NodeKind::Hidden {}) {
            continue;
        }
        local_id(v, &mut ids, &format!("nodes[{i}].id"), "node", &node.id);
        for (name, value) in [("x", node.x), ("y", node.y)] {
            v.check(
                value.is_finite() && value.abs() <= MAX_COORDINATE,
                &format!("nodes[{i}].{name}"),
                codes::field::OUT_OF_RANGE,
                || format!("{name} must be a number within ±{MAX_COORDINATE}"),
            );
        }
        for (name, value) in [("w", node.w), ("h", node.h)] {
            v.check(
                value.is_finite() && value > 0.0 && value <= MAX_COORDINATE,
                &format!("nodes[{i}].{name}"),
                codes::field::OUT_OF_RANGE,
                || format!("{name} must be above 0 and at most {MAX_COORDINATE}"),
            );
        }
        match &node.kind {
            NodeKind::Text { text } => v.text(&format!("nodes[{i}].text"), text, 0, limits::TEXT),
            kind => {
                if let Some((_, field, None)) = kind.target() {
                    v.push(
                        format!("nodes[{i}].{field}"),
                        codes::field::REQUIRED,
                        format!("a {} node links to one", kind.as_str()),
                    );
                }
            }
        }
    }
    let mut edge_ids = BTreeSet::new();
    for (i, edge) in edges.iter().enumerate() {
        local_id(
            v,
            &mut edge_ids,
            &format!("edges[{i}].id"),
            "edge",
            &edge.id,
        );
        for (name, end) in [("from", &edge.from), ("to", &edge.to)] {
            v.check(
                ids.contains(end.as_str()),
                &format!("edges[{i}].{name}"),
                codes::field::UNKNOWN_NODE,
                || format!("the canvas has no node {end:?}"),
            );
        }
        v.check(
            edge.from != edge.to,
            &format!("edges[{i}].to"),
            codes::field::SELF_LOOP,
            || "an edge joins two different nodes".into(),
        );
        if let Some(label) = &edge.label {
            v.text(&format!("edges[{i}].label"), label, 0, limits::NAME);
        }
    }
}

fn coordinate(row: &AnyRow, name: &str) -> Result<f64> {
    col(row, name)
}

/// A node row as the reader may see it: a link to a query or visualization
/// on a datasource they have no grant on (the row's `visible` column,
/// [`groups::may_see`]) reads as a hidden node. A link whose target is gone
/// shows as it is: it tells nothing.
fn seen_node(row: &AnyRow) -> Result<CanvasNode> {
    let stored = node(row)?;
    let links = stored
        .kind
        .target()
        .is_some_and(|(t, _, id)| id.is_some() && matches!(t, "queries" | "visualizations"));
    if links && !flag(row, "visible")? {
        return Ok(CanvasNode {
            kind: NodeKind::Hidden {},
            ..stored
        });
    }
    Ok(stored)
}

/// A node row as stored.
fn node(row: &AnyRow) -> Result<CanvasNode> {
    let kind: String = col(row, "kind")?;
    let kind = match kind.as_str() {
        "text" => NodeKind::Text {
            text: col::<Option<String>>(row, "text")?.unwrap_or_default(),
        },
        "query" => NodeKind::Query {
            query_id: col(row, "query_id")?,
        },
        "visualization" => NodeKind::Visualization {
            visualization_id: col(row, "visualization_id")?,
        },
        "dashboard" => NodeKind::Dashboard {
            dashboard_id: col(row, "dashboard_id")?,
        },
        other => {
            return Err(Error::internal(format!(
                "stored canvas node kind {other:?}"
            )));
        }
    };
    Ok(CanvasNode {
        id: col(row, "node_id")?,
        kind,
        x: coordinate(row, "x")?,
        y: coordinate(row, "y")?,
        w: coordinate(row, "w")?,
        h: coordinate(row, "h")?,
    })
}

fn edge(row: &AnyRow) -> Result<CanvasEdge> {
    Ok(CanvasEdge {
        id: col(row, "edge_id")?,
        from: col(row, "from_node")?,
        to: col(row, "to_node")?,
        label: col(row, "label")?,
    })
}

/// Canvases.
#[derive(Debug, Clone)]
pub struct CanvasService {
    shared: Arc<Shared>,
}

impl CanvasService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The canvases of `rows` with their nodes and edges as `actor` may
    /// see them: one statement per child table however many rows, so a
    /// list page costs as much as a single read. Whether the actor may see
    /// what each node links to is decided in the statement that reads the
    /// nodes.
    async fn complete(&self, actor: &Actor, rows: &[AnyRow]) -> Result<Vec<Canvas>> {
        let ids = ids(rows)?;
        let store = &self.shared.store;
        let mut select = SqlBuilder::new("SELECT n.*, ");
        groups::may_see(
            &mut select,
            actor,
            "COALESCE(q.datasource_id, vq.datasource_id)",
        );
        select.push(
            " AS visible FROM canvas_nodes n LEFT JOIN queries q ON q.id = n.query_id \
             LEFT JOIN visualizations v ON v.id = n.visualization_id \
             LEFT JOIN queries vq ON vq.id = v.query_id WHERE n.canvas_id",
        );
        let order = " ORDER BY n.canvas_id, n.node_id";
        let nodes = Children::load(store, select, &ids, order, "canvas_id").await?;
        let select = SqlBuilder::new("SELECT * FROM canvas_edges WHERE canvas_id");
        let order = " ORDER BY canvas_id, edge_id";
        let edges = Children::load(store, select, &ids, order, "canvas_id").await?;
        rows.iter()
            .zip(ids)
            .map(|(row, id)| {
                Ok(Canvas {
                    owner_id: col(row, "owner_id")?,
                    name: col(row, "name")?,
                    shared: flag(row, "shared")?,
                    nodes: nodes.map(&id, seen_node)?,
                    edges: edges.map(&id, edge)?,
                    revision: col(row, "revision")?,
                    created_at: col(row, "created_at")?,
                    updated_at: col(row, "updated_at")?,
                    id,
                })
            })
            .collect()
    }

    /// A canvas of the actor's organization, with the nodes that link to
    /// what they may not see as hidden nodes.
    pub async fn get(&self, actor: &Actor, id: &str) -> Result<Canvas> {
        let sql = "SELECT * FROM canvases WHERE id = $1";
        let row = fetch_in_org(&self.shared.store, &actor.org_id, sql, "canvas", id).await?;
        only(
            self.complete(actor, std::slice::from_ref(&row)).await?,
            "canvas",
        )
    }

    /// The organization's canvases.
    pub async fn list(&self, actor: &Actor, request: &ListRequest) -> Result<ListPage<Canvas>> {
        let rows = SPEC.org_rows(&actor.org_id);
        let page = SPEC.page(&self.shared.store, rows, request).await?;
        let items = self.complete(actor, &page.items).await?;
        Ok(page.with_items(items))
    }

    /// The link targets of `nodes` that the actor may see, as (table, id):
    /// in their organization, and for queries and visualizations on a
    /// datasource they have a grant on (one they may not see is not found,
    /// as one that does not exist). One statement per kind of target
    /// however many nodes link (a canvas holds up to [`MAX_NODES`]).
    async fn targets_in_org(
        &self,
        actor: &Actor,
        nodes: &[CanvasNode],
    ) -> Result<BTreeSet<(&'static str, String)>> {
        let mut found = BTreeSet::new();
        // The tables are the fixed names of `NodeKind::target`, never input;
        // each is read with the datasource its rows show data of, if any.
        for (table, from, datasource) in [
            ("queries", "queries t", Some("t.datasource_id")),
            (
                "visualizations",
                "visualizations t JOIN queries q ON q.id = t.query_id",
                Some("q.datasource_id"),
            ),
            ("dashboards", "dashboards t", None),
        ] {
            let named: BTreeSet<String> = nodes
                .iter()
                .filter_map(|n| match n.kind.target() {
                    Some((t, _, Some(id))) if t == table => Some(id.to_owned()),
                    _ => None,
                })
                .collect();
            let named: Vec<String> = named.into_iter().collect();
            let mut select = SqlBuilder::new(&format!("SELECT t.id FROM {from} WHERE t.org_id = "));
            select.bind_text(&actor.org_id);
            if let Some(column) = datasource {
                visible_datasources(&mut select, actor, column);
            }
            select.push(" AND t.id");
            let rows = Children::load(&self.shared.store, select, &named, "", "id").await?;
            found.extend(
                named
                    .into_iter()
                    .filter(|id| !rows.get(id).is_empty())
                    .map(|id| (table, id)),
            );
        }
        Ok(found)
    }

    /// Validates `input`, around the nodes hidden from the actor that an
    /// update keeps (`kept`).
    async fn check(&self, actor: &Actor, input: &CanvasInput, kept: &[CanvasNode]) -> Result<()> {
        let mut v = Validator::new();
        v.name("name", input.name.trim());
        check_graph(&mut v, &input.nodes, &input.edges, kept);
        let found = self.targets_in_org(actor, &input.nodes).await?;
        for (i, n) in input.nodes.iter().enumerate() {
            let Some((table, field, Some(target))) = n.kind.target() else {
                continue;
            };
            let in_org = found.contains(&(table, target.to_owned()));
            v.check(
                in_org,
                &format!("nodes[{i}].{field}"),
                codes::NOT_FOUND,
                || format!("no {} {target}", n.kind.as_str()),
            );
        }
        v.finish()
    }

    /// Creates a canvas. Editors and admins.
    pub async fn create(&self, actor: &Actor, input: CanvasInput) -> Result<Canvas> {
        actor.require(Role::Editor, "creating canvases")?;
        self.check(actor, &input, &[]).await?;
        let id = new_id();
        let now = now_micros();
        let mut tx = self.shared.store.write().await?;
        sqlx::query(
            "INSERT INTO canvases (id, org_id, owner_id, name, shared, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.clone())
        .bind(actor.org_id.clone())
        .bind(actor.user_id.clone())
        .bind(input.name.trim().to_owned())
        .bind(i16::from(input.shared))
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        replace_graph(&mut tx, &id, &input, &[]).await?;
        tx.commit().await.map_err(db_error)?;
        self.get(actor, &id).await
    }

    /// Replaces a canvas's name, nodes and edges if `revision` is still
    /// current. Its owner, admins, or any editor when it is shared.
    pub async fn update(
        &self,
        actor: &Actor,
        id: &str,
        revision: i64,
        input: CanvasInput,
    ) -> Result<Canvas> {
        let current = self.get(actor, id).await?;
        actor.require_edit(&current.owner_id, current.shared, "canvas")?;
        let kept = self.hidden_nodes(&current).await?;
        self.check(actor, &input, &kept).await?;
        let mut tx = self.shared.store.write().await?;
        let update = sqlx::query(
            "UPDATE canvases SET name = $1, shared = $2, revision = revision + 1, updated_at = $3 WHERE id = $4 AND revision = $5",
        )
        .bind(input.name.trim().to_owned())
        .bind(i16::from(input.shared));
        update_at_revision(&mut *tx, update, "canvas", id, revision).await?;
        replace_graph(&mut tx, id, &input, &kept).await?;
        tx.commit().await.map_err(db_error)?;
        self.get(actor, id).await
    }

    /// The stored nodes of `canvas` (as read by the caller) that are hidden
    /// from the caller, as stored: an update keeps them.
    async fn hidden_nodes(&self, canvas: &Canvas) -> Result<Vec<CanvasNode>> {
        let hidden: Vec<String> = canvas
            .nodes
            .iter()
            .filter(|n| matches!(n.kind, NodeKind::Hidden {}))
            .map(|n| n.id.clone())
            .collect();
        let mut select = SqlBuilder::new("SELECT * FROM canvas_nodes WHERE canvas_id = ");
        select.bind_text(&canvas.id).push(" AND node_id");
        let rows = Children::load(&self.shared.store, select, &hidden, "", "node_id").await?;
        // A node deleted since the read has nothing left to keep.
        hidden
            .iter()
            .filter_map(|id| rows.get(id).first())
            .map(node)
            .collect()
    }

    /// Deletes a canvas (not what its nodes link to).
    pub async fn delete(&self, actor: &Actor, id: &str) -> Result<()> {
        let current = self.get(actor, id).await?;
        actor.require_edit(&current.owner_id, current.shared, "canvas")?;
        let detail = serde_json::json!({ "name": current.name });
        audit::delete_audited(&self.shared.store, actor, "canvases", "canvas", id, detail).await
    }
}

/// Writes the nodes and edges of `input` in place of the old ones, with
/// the `kept` nodes as they were. `hidden` placeholders in the input are
/// skipped: the nodes they stand for are in `kept`.
async fn replace_graph(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    input: &CanvasInput,
    kept: &[CanvasNode],
) -> Result<()> {
    // Edges first: they reference the nodes.
    for sql in [
        "DELETE FROM canvas_edges WHERE canvas_id = $1",
        "DELETE FROM canvas_nodes WHERE canvas_id = $1",
    ] {
        sqlx::query(sql)
            .bind(id.to_owned())
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    let given = input
        .nodes
        .iter()
        .filter(|n| !matches!(n.kind, NodeKind::Hidden {}));
    for n in given.chain(kept) {
        let (text, query_id, visualization_id, dashboard_id) = match &n.kind {
            NodeKind::Text { text } => (Some(text.clone()), None, None, None),
            NodeKind::Query { query_id } => (None, query_id.clone(), None, None),
            NodeKind::Visualization { visualization_id } => {
                (None, None, visualization_id.clone(), None)
            }
            NodeKind::Dashboard { dashboard_id } => (None, None, None, dashboard_id.clone()),
            // Filtered out above; a kept node is stored as it was.
            NodeKind::Hidden {} => continue,
        };
        sqlx::query(
            "INSERT INTO canvas_nodes (canvas_id, node_id, kind, text, query_id, visualization_id, dashboard_id, x, y, w, h) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(id.to_owned())
        .bind(n.id.clone())
        .bind(n.kind.as_str())
        .bind(text)
        .bind(query_id)
        .bind(visualization_id)
        .bind(dashboard_id)
        .bind(n.x)
        .bind(n.y)
        .bind(n.w)
        .bind(n.h)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    }
    for e in &input.edges {
        sqlx::query("INSERT INTO canvas_edges (canvas_id, edge_id, from_node, to_node, label) VALUES ($1, $2, $3, $4, $5)")
            .bind(id.to_owned())
            .bind(e.id.clone())
            .bind(e.from.clone())
            .bind(e.to.clone())
            .bind(e.label.clone())
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_node(id: &str) -> CanvasNode {
        CanvasNode {
            id: id.into(),
            kind: NodeKind::Text {
                text: "note".into(),
            },
            x: 0.0,
            y: 0.0,
            w: 100.0,
            h: 50.0,
        }
    }

    fn edge(id: &str, from: &str, to: &str) -> CanvasEdge {
        CanvasEdge {
            id: id.into(),
            from: from.into(),
            to: to.into(),
            label: None,
        }
    }

    #[test]
    fn edges_join_existing_distinct_nodes() {
        let nodes = [text_node("a"), text_node("b")];
        let mut v = Validator::new();
        check_graph(&mut v, &nodes, &[edge("e1", "a", "b")], &[]);
        assert!(v.is_ok());

        let mut v = Validator::new();
        check_graph(
            &mut v,
            &nodes,
            &[
                edge("e1", "a", "zz"),
                edge("e1", "b", "b"),
                edge("bad id", "a", "b"),
            ],
            &[],
        );
        assert_eq!(
            v.fields(),
            ["edges[0].to", "edges[1].id", "edges[1].to", "edges[2].id"]
        );
    }

    #[test]
    fn nodes_are_unique_finite_and_link_somewhere() {
        let mut nan = text_node("b");
        nan.x = f64::NAN;
        nan.w = 0.0;
        let link = CanvasNode {
            kind: NodeKind::Query { query_id: None },
            ..text_node("c")
        };
        let mut v = Validator::new();
        check_graph(
            &mut v,
            &[text_node("a"), text_node("a"), nan, link],
            &[],
            &[],
        );
        assert_eq!(
            v.fields(),
            [
                "nodes[1].id",
                "nodes[2].x",
                "nodes[2].w",
                "nodes[3].query_id"
            ]
        );
    }
}
