//! No N+1: a list loads the children of its page (tags, widgets, nodes and
//! edges, members, grants) with one statement per child table, never one
//! per row. Each list is counted at a page of 1 and a page of 200 rows, on
//! the real metadata database: the counts must be equal and small.
//!
//! The count comes from sqlx itself: it emits one tracing event (target
//! `sqlx::query`) for every statement it executes, when the statement is
//! done. On PostgreSQL that happens in the calling task; on SQLite in the
//! connection's worker thread, which first enters the span the caller was
//! in and finishes the event before the caller sees the end of its rows.
//! So the counter is one global subscriber for the whole test binary
//! (a scoped one would miss SQLite's worker threads) that credits each
//! event to the `counted_statements` span around it: the SQLite and
//! PostgreSQL halves, running at the same time, keep separate counts.
//!
//! The 200 rows of each kind are written with plain SQL in one
//! transaction: the services would spend most of the test on creates,
//! and the reads are what is under test.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

use loupe_core::Result;
use loupe_services::meta::{ListPage, ListRequest, MetadataStore};
use loupe_services::{Access, CanvasInput, CanvasNode, DashboardInput, NodeKind, WidgetKind};
use sqlx::{Any, Transaction};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::subscriber::Interest;
use tracing::{Event, Instrument, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use super::{Env, on_both, shows, widget};

on_both!(
    lists_load_children_in_a_constant_number_of_statements,
    saves_look_up_their_links_with_one_statement_per_table,
);

/// Rows of each kind, and the page size counted.
const ROWS: usize = 200;

/// The name of the span whose statements are counted.
const SPAN: &str = "counted_statements";
/// The target sqlx logs statements under.
const SQLX: &str = "sqlx::query";

/// Statements seen, by the `tally` field of the span they ran in.
static SEEN: Mutex<BTreeMap<u64, Vec<String>>> = Mutex::new(BTreeMap::new());
static NEXT_TALLY: AtomicU64 = AtomicU64::new(1);

/// Credits each sqlx statement event to the enclosing counted span.
struct StatementCounter;

/// The tally of a counted span, kept in the span's extensions.
struct Tally(u64);

fn wanted(metadata: &Metadata<'_>) -> bool {
    metadata.target() == SQLX || metadata.name() == SPAN
}

impl<S> Layer<S> for StatementCounter
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        // Everything else in the binary stays as cheap as with no subscriber.
        if wanted(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        wanted(metadata)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != SPAN {
            return;
        }
        let mut field = TallyField(None);
        attrs.record(&mut field);
        if let (Some(tally), Some(span)) = (field.0, ctx.span(id)) {
            span.extensions_mut().insert(Tally(tally));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != SQLX {
            return;
        }
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            if let Some(Tally(tally)) = span.extensions().get::<Tally>() {
                let mut summary = Summary(String::new());
                event.record(&mut summary);
                // A connection the pool opens during the call runs its
                // PRAGMAs first: set-up of the connection, not statements
                // of the list, and only when the pool happens to grow.
                let first_word = summary.0.trim_start_matches(['"', ' ']);
                if first_word.to_ascii_uppercase().starts_with("PRAGMA") {
                    return;
                }
                SEEN.lock()
                    .unwrap()
                    .entry(*tally)
                    .or_default()
                    .push(summary.0);
                return;
            }
        }
    }
}

struct TallyField(Option<u64>);

impl Visit for TallyField {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "tally" {
            self.0 = Some(value);
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

/// The first words of a statement, as sqlx logs them.
struct Summary(String);

impl Visit for Summary {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "summary" {
            value.clone_into(&mut self.0);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.0 = format!("{value:?}");
        }
    }
}

/// Runs `work` and returns its output with the statements sqlx executed
/// for it (their first words).
async fn counted<T>(work: impl Future<Output = T>) -> (T, Vec<String>) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(StatementCounter),
        )
        .expect("the statement counter is the only global subscriber of the test binary");
    });
    let tally = NEXT_TALLY.fetch_add(1, Ordering::Relaxed);
    let output = work.instrument(tracing::info_span!(SPAN, tally)).await;
    let seen = SEEN.lock().unwrap().remove(&tally).unwrap_or_default();
    (output, seen)
}

/// Lists a page of 1 and a page of [`ROWS`] and checks that both take the
/// same number of statements, at most `budget`. Returns the big page.
async fn statements_per_page<T, F, Fut>(
    store: &MetadataStore,
    what: &str,
    budget: usize,
    list: F,
) -> Vec<T>
where
    F: Fn(ListRequest) -> Fut,
    Fut: Future<Output = Result<ListPage<T>>>,
{
    let page = |limit: usize| ListRequest::default().page(u32::try_from(limit).unwrap(), 0);
    // A new pool connection runs setup statements of its own (SQLite's
    // pragmas); a first call outside the count opens it.
    list(page(ROWS)).await.unwrap();
    let (one, one_statements) = counted(list(page(1))).await;
    assert_eq!(one.unwrap().items.len(), 1, "{what}: a page of one");
    let (full, statements) = counted(list(page(ROWS))).await;
    let full = full.unwrap();
    eprintln!(
        "{what} on {:?}: {} statements for a page of 1, {} for a page of {ROWS}",
        store.backend(),
        one_statements.len(),
        statements.len()
    );
    assert_eq!(full.items.len(), ROWS, "{what}: a full page");
    assert!(
        statements.len() <= budget,
        "{what}: {} statements for a page of {ROWS}, expected at most {budget}: {:#?}",
        statements.len(),
        by_text(&statements)
    );
    assert_eq!(
        statements.len(),
        one_statements.len(),
        "{what}: the statements grow with the page: {:?} for 1 row, {:#?} for {ROWS}",
        by_text(&one_statements),
        by_text(&statements)
    );
    full.items
}

/// How many times each statement ran, for messages.
fn by_text(statements: &[String]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for s in statements {
        *counts.entry(s.as_str()).or_default() += 1;
    }
    counts
}

/// The number at the end of a fixture row's name (`dashboard 042` -> 42),
/// `None` for rows the environment made.
fn index(name: &str, prefix: &str) -> Option<usize> {
    name.strip_prefix(prefix)?.parse().ok()
}

async fn exec(
    tx: &mut Transaction<'static, Any>,
    query: sqlx::query::Query<'_, Any, sqlx::any::AnyArguments>,
) {
    query.execute(&mut **tx).await.unwrap();
}

/// Tags row `id` with each of `tags` by `insert` (its id and a tag).
async fn tag(
    tx: &mut Transaction<'static, Any>,
    insert: &'static str,
    id: &str,
    tags: impl IntoIterator<Item = String>,
) {
    for tag in tags {
        exec(tx, sqlx::query(insert).bind(id.to_owned()).bind(tag)).await;
    }
}

async fn lists_load_children_in_a_constant_number_of_statements(env: Env) {
    let s = &env.services;
    let (admin, editor) = (&env.admin, &env.editor);
    let base = env.query(editor, "base").await;
    let viz = env.table(editor, &base.id, "All rows").await;
    let org = &env.org.id;
    let now = chrono::Utc::now().timestamp_micros();
    let options = serde_json::Value::Object(env.sample.options.clone()).to_string();
    let mut members: Vec<&str> = Vec::new();
    let mut tx = env.store.write().await.unwrap();
    for i in 0..ROWS {
        let at = now + i64::try_from(i).unwrap();
        let id = |kind: &str| format!("{kind}-{i:03}");
        // Children go in out of order: the lists must sort them.
        exec(&mut tx, sqlx::query(
            "INSERT INTO dashboards (id, org_id, owner_id, name, slug, parameters, shared, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, '[]', 0, $6, $6)",
        )
        .bind(id("d"))
        .bind(org.clone())
        .bind(editor.user_id.clone())
        .bind(format!("dashboard {i:03}"))
        .bind(format!("dashboard-{i:03}"))
        .bind(at)).await;
        let tags = [format!("t{}", i % 7), "all".to_owned()];
        let insert = "INSERT INTO dashboard_tags (dashboard_id, tag) VALUES ($1, $2)";
        tag(&mut tx, insert, &id("d"), tags).await;
        exec(&mut tx, sqlx::query(
            "INSERT INTO dashboard_widgets (id, dashboard_id, kind, visualization_id, text, x, y, w, h, parameter_mappings, position) \
             VALUES ($1, $2, 'visualization', $3, NULL, 12, 0, 12, 4, '{}', 1)",
        )
        .bind(format!("{}-a", id("w")))
        .bind(id("d"))
        .bind(viz.id.clone())).await;
        exec(&mut tx, sqlx::query(
            "INSERT INTO dashboard_widgets (id, dashboard_id, kind, visualization_id, text, x, y, w, h, parameter_mappings, position) \
             VALUES ($1, $2, 'text', NULL, $3, 0, 0, 12, 4, '{}', 0)",
        )
        .bind(format!("{}-b", id("w")))
        .bind(id("d"))
        .bind(format!("note {i}"))).await;

        exec(&mut tx, sqlx::query(
            "INSERT INTO canvases (id, org_id, owner_id, name, shared, created_at, updated_at) VALUES ($1, $2, $3, $4, 0, $5, $5)",
        )
        .bind(id("c"))
        .bind(org.clone())
        .bind(editor.user_id.clone())
        .bind(format!("canvas {i:03}"))
        .bind(at)).await;
        for (node, kind, text, query, visualization) in [
            ("c", "visualization", None, None, Some(viz.id.clone())),
            ("b", "query", None, Some(base.id.clone()), None),
            ("a", "text", Some(format!("a{i}")), None, None),
        ] {
            exec(&mut tx, sqlx::query(
                "INSERT INTO canvas_nodes (canvas_id, node_id, kind, text, query_id, visualization_id, dashboard_id, x, y, w, h) \
                 VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, 0, 100, 50)",
            )
            .bind(id("c"))
            .bind(node)
            .bind(kind)
            .bind(text)
            .bind(query)
            .bind(visualization)
            .bind((i % 100) as f64)).await;
        }
        for (edge, from, to, label) in [("e2", "b", "c", Some("then")), ("e1", "a", "b", None)] {
            let label = label.map(str::to_owned);
            exec(&mut tx, sqlx::query(
                "INSERT INTO canvas_edges (canvas_id, edge_id, from_node, to_node, label) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id("c"))
            .bind(edge)
            .bind(from)
            .bind(to)
            .bind(label)).await;
        }

        exec(&mut tx, sqlx::query(
            "INSERT INTO queries (id, org_id, name, description, datasource_id, owner_id, current_version, sql, parameters, created_at, updated_at) \
             VALUES ($1, $2, $3, '', $4, $5, 1, 'select 1', '[]', $6, $6)",
        )
        .bind(id("q"))
        .bind(org.clone())
        .bind(format!("query {i:03}"))
        .bind(env.sample.id.clone())
        .bind(editor.user_id.clone())
        .bind(at)).await;
        let tags = [format!("t{}", i % 5), "all".to_owned()];
        let insert = "INSERT INTO query_tags (query_id, tag) VALUES ($1, $2)";
        tag(&mut tx, insert, &id("q"), tags).await;

        exec(&mut tx, sqlx::query(
            "INSERT INTO user_groups (id, org_id, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(id("g"))
        .bind(org.clone())
        .bind(format!("group {i:03}"))
        .bind(at)).await;
        members.clear();
        members.push(&editor.user_id);
        if i % 2 == 0 {
            members.push(&env.viewer.user_id);
        }
        if i % 3 == 0 {
            members.push(&admin.user_id);
        }
        for user in members.iter().rev() {
            exec(
                &mut tx,
                sqlx::query(
                    "INSERT INTO group_members (group_id, user_id, created_at) VALUES ($1, $2, $3)",
                )
                .bind(id("g"))
                .bind((*user).to_owned())
                .bind(at),
            )
            .await;
        }

        exec(&mut tx, sqlx::query(
            "INSERT INTO datasources (id, org_id, name, kind, options, created_at, updated_at) VALUES ($1, $2, $3, 'files', $4, $5, $5)",
        )
        .bind(id("s"))
        .bind(org.clone())
        .bind(format!("source {i:03}"))
        .bind(options.clone())
        .bind(at)).await;
    }
    // Grants, once every group exists: the editor is in all of them.
    for i in 0..ROWS {
        let mut grants = vec![(i, if i % 2 == 0 { "run" } else { "view" })];
        if i % 5 == 0 {
            grants.push(((i + 1) % ROWS, "run"));
        }
        for (group, access) in grants {
            exec(&mut tx, sqlx::query(
                "INSERT INTO datasource_grants (group_id, datasource_id, access, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(format!("g-{group:03}"))
            .bind(format!("s-{i:03}"))
            .bind(access)
            .bind(now)).await;
        }
    }
    tx.commit().await.unwrap();

    let store = &env.store;
    // count + page + tags + widgets.
    let dashboards = statements_per_page(store, "dashboards", 4, |r| async move {
        s.dashboards.list(editor, &r).await
    })
    .await;
    let mut checked = 0;
    for d in &dashboards {
        let Some(i) = index(&d.name, "dashboard ") else {
            continue;
        };
        checked += 1;
        assert_eq!(
            d.tags,
            ["all".to_owned(), format!("t{}", i % 7)],
            "{}",
            d.name
        );
        let kinds: Vec<&WidgetKind> = d.widgets.iter().map(|w| &w.kind).collect();
        assert_eq!(
            kinds,
            [
                &WidgetKind::Text {
                    text: format!("note {i}")
                },
                &WidgetKind::Visualization {
                    visualization_id: viz.id.clone()
                },
            ],
            "{}: widgets by position",
            d.name
        );
        assert_eq!(d.widgets[1].query_id.as_deref(), Some(base.id.as_str()));
    }
    assert_eq!(checked, ROWS);

    // count + page + nodes + edges.
    let canvases = statements_per_page(store, "canvases", 4, |r| async move {
        s.canvases.list(editor, &r).await
    })
    .await;
    for c in &canvases {
        let i = index(&c.name, "canvas ").unwrap();
        let nodes: Vec<&str> = c.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(nodes, ["a", "b", "c"], "{}", c.name);
        assert_eq!(
            c.nodes[0].kind,
            NodeKind::Text {
                text: format!("a{i}")
            }
        );
        let edges: Vec<(&str, Option<&str>)> = c
            .edges
            .iter()
            .map(|e| (e.id.as_str(), e.label.as_deref()))
            .collect();
        assert_eq!(edges, [("e1", None), ("e2", Some("then"))], "{}", c.name);
    }

    // count + page + tags.
    let queries = statements_per_page(store, "queries", 3, |r| async move {
        s.queries.list(editor, &r).await
    })
    .await;
    let mut checked = 0;
    for q in &queries {
        match index(&q.name, "query ") {
            Some(i) => {
                checked += 1;
                assert_eq!(
                    q.tags,
                    ["all".to_owned(), format!("t{}", i % 5)],
                    "{}",
                    q.name
                );
            }
            None => assert_eq!(q.tags, ["sales"], "{}", q.name),
        }
    }
    assert!(checked >= ROWS - 1);

    // count + page + members.
    let groups = statements_per_page(store, "groups", 3, |r| async move {
        s.groups.list(admin, &r).await
    })
    .await;
    let mut checked = 0;
    for g in &groups {
        let Some(i) = index(&g.name, "group ") else {
            continue;
        };
        checked += 1;
        let mut expected = vec![editor.user_id.clone()];
        if i % 2 == 0 {
            expected.push(env.viewer.user_id.clone());
        }
        if i % 3 == 0 {
            expected.push(admin.user_id.clone());
        }
        expected.sort();
        assert_eq!(g.members, expected, "{}", g.name);
    }
    assert!(checked >= ROWS - 1);

    // count + page + the editor's grants; an admin has every access and
    // needs no grants.
    let sources = statements_per_page(store, "datasources (editor)", 3, |r| async move {
        s.datasources.list(editor, &r).await
    })
    .await;
    let mut checked = 0;
    for d in &sources {
        let expected = match index(&d.name, "source ") {
            Some(i) if i % 2 == 0 || i % 5 == 0 => Access::Run,
            Some(_) => Access::View,
            None => Access::Run,
        };
        checked += usize::from(index(&d.name, "source ").is_some());
        assert_eq!(d.access, expected, "{}", d.name);
    }
    assert!(checked >= ROWS - 1);
    let all = statements_per_page(store, "datasources (admin)", 2, |r| async move {
        s.datasources.list(admin, &r).await
    })
    .await;
    assert!(all.iter().all(|d| d.access == Access::Run));

    // A single read builds the same object as the list.
    for i in [0, ROWS / 2, ROWS - 1] {
        assert_eq!(
            s.dashboards.get(editor, &dashboards[i].id).await.unwrap(),
            dashboards[i]
        );
        assert_eq!(
            s.canvases.get(editor, &canvases[i].id).await.unwrap(),
            canvases[i]
        );
        assert_eq!(
            s.queries.get(editor, &queries[i].id).await.unwrap(),
            queries[i]
        );
        assert_eq!(s.groups.get(admin, &groups[i].id).await.unwrap(), groups[i]);
        assert_eq!(
            s.datasources.get(editor, &sources[i].id).await.unwrap(),
            sources[i]
        );
    }
}

/// Saving a dashboard or a canvas checks that what its widgets and nodes
/// show exists in the organization: one lookup per kind of target, not
/// one per widget or node. The writes that follow are one per row anyway,
/// so the reads are what is compared: as many for 20 links as for 1.
async fn saves_look_up_their_links_with_one_statement_per_table(env: Env) {
    const LINKS: usize = 20;
    let s = &env.services;
    let editor = &env.editor;
    let query = env.query(editor, "base").await;
    let mut shown = Vec::new();
    for i in 0..LINKS {
        let viz = env.table(editor, &query.id, &format!("table {i}")).await;
        shown.push(viz.id);
    }
    let reads = |statements: &[String]| {
        statements
            .iter()
            .filter(|s| s.starts_with("SELECT"))
            .count()
    };

    let dashboard = |name: &str, links: &[String]| DashboardInput {
        name: name.into(),
        widgets: links
            .iter()
            .zip(0..)
            .map(|(id, x)| widget(shows(id), (x, 0, 1, 1), &[]))
            .collect(),
        ..DashboardInput::default()
    };
    let (one, one_statements) =
        counted(s.dashboards.create(editor, dashboard("One", &shown[..1]))).await;
    assert_eq!(one.unwrap().widgets.len(), 1);
    let (many, statements) = counted(s.dashboards.create(editor, dashboard("Many", &shown))).await;
    assert_eq!(many.unwrap().widgets.len(), LINKS);
    assert_eq!(
        reads(&statements),
        reads(&one_statements),
        "dashboard reads grow with the widgets: {:?} for 1, {:#?} for {LINKS}",
        by_text(&one_statements),
        by_text(&statements)
    );

    let canvas = |name: &str, links: &[String]| {
        let node = |id: String, kind: NodeKind| CanvasNode {
            id,
            kind,
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        };
        let mut nodes: Vec<CanvasNode> = links
            .iter()
            .enumerate()
            .map(|(i, id)| {
                node(
                    format!("v{i}"),
                    NodeKind::Visualization {
                        visualization_id: Some(id.clone()),
                    },
                )
            })
            .collect();
        nodes.push(node(
            "q".into(),
            NodeKind::Query {
                query_id: Some(query.id.clone()),
            },
        ));
        CanvasInput {
            name: name.into(),
            nodes,
            ..CanvasInput::default()
        }
    };
    let (one, one_statements) =
        counted(s.canvases.create(editor, canvas("One", &shown[..1]))).await;
    assert_eq!(one.unwrap().nodes.len(), 2);
    let (many, statements) = counted(s.canvases.create(editor, canvas("Many", &shown))).await;
    assert_eq!(many.unwrap().nodes.len(), LINKS + 1);
    assert_eq!(
        reads(&statements),
        reads(&one_statements),
        "canvas reads grow with the nodes: {:?} for 1, {:#?} for {LINKS}",
        by_text(&one_statements),
        by_text(&statements)
    );
}
