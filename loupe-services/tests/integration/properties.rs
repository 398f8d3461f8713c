//! Property tests of the stored objects: saved queries, visualizations,
//! dashboards, canvases and schedules, on both metadata backends.
//!
//! - **Round trips.** Whatever valid input (every parameter type with
//!   defaults and options, every visualization type's options, layouts of
//!   widgets with text and parameter mappings, graphs of every node kind,
//!   crons in time zones with parameter values), what is created reads
//!   back equal to what was given, in the stored forms the services
//!   document (names trimmed, tags lowercase and sorted, a cron trimmed);
//!   so does an update. What is stored can be used again: a query's tags
//!   let it be forked, a visualization's options can be drawn, a
//!   dashboard is found by its slug.
//! - **Validation.** Inputs drawn from valid ones with one or two faults
//!   put in (each fault knows the field it breaks), from valid ones as
//!   they are, and from anything at all: whatever the services accept
//!   reads back as given; whatever they refuse is refused as invalid
//!   input whose field errors name fields of the input (a fault's own
//!   among them), and nothing was written.
//!
//! 32 cases per property, or `PROPTEST_CASES`. Each case starts from the
//! same organization: what earlier cases left is removed first.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::future::Future;

use chrono::{DateTime, FixedOffset, NaiveDate};
use loupe_core::{Error, ErrorKind, ItemType, ParameterDef, ParameterType, ParameterValues};
use loupe_services::meta::ListRequest;
use loupe_services::{
    Canvas, CanvasEdge, CanvasInput, CanvasNode, Dashboard, DashboardInput, NewQuery, NodeKind,
    Query, QueryUpdate, Schedule, ScheduleInput, Visualization, VisualizationInput,
    VisualizationType, WidgetInput, WidgetKind,
};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::TestRunner;
use serde_json::{Value as Json, json};

use super::{Env, on_both};

on_both!(
    queries_read_back_as_created_and_updated,
    visualizations_read_back_as_created_and_updated,
    dashboards_read_back_as_created_and_updated,
    canvases_read_back_as_created_and_updated,
    schedules_read_back_as_created_and_updated,
    query_inputs_are_stored_or_refused_by_field,
    visualization_inputs_are_stored_or_refused_by_field,
    dashboard_inputs_are_stored_or_refused_by_field,
    canvas_inputs_are_stored_or_refused_by_field,
    schedule_inputs_are_stored_or_refused_by_field,
);

// ---------------------------------------------------------------------------
// Running cases
// ---------------------------------------------------------------------------

/// 32 cases per property, or `PROPTEST_CASES`. Failures are not saved to
/// files: each failure prints the smallest input found.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    ProptestConfig {
        failure_persistence: None,
        max_shrink_iters: 512,
        ..ProptestConfig::with_cases(cases)
    }
}

/// Runs `test` on values of `strategy` on the test's runtime, failing
/// with the smallest failing value found.
fn check<S, F, Fut>(strategy: S, test: F)
where
    S: Strategy,
    S::Value: Debug,
    F: Fn(S::Value) -> Fut,
    Fut: Future<Output = Result<(), TestCaseError>>,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        let mut runner = TestRunner::new(config());
        if let Err(e) = runner.run(&strategy, |value| handle.block_on(test(value))) {
            panic!("{e}");
        }
    });
}

/// A service call that must succeed.
fn must<T>(what: &str, result: Result<T, Error>) -> Result<T, TestCaseError> {
    result.map_err(|e| TestCaseError::fail(format!("{what}: {e} ({}) {e:?}", e.code())))
}

/// A list request that sees everything a case makes.
fn all() -> ListRequest {
    ListRequest {
        limit: Some(200),
        ..ListRequest::default()
    }
}

// ---------------------------------------------------------------------------
// The organization every case starts from
// ---------------------------------------------------------------------------

/// What the cases refer to: a query with a parameter of most types (and
/// a visualization of it), the sample query of [`Env::query`] (and a
/// visualization of it), and a dashboard whose slug is taken.
struct Fixtures {
    typed: Query,
    typed_viz: Visualization,
    plain: Query,
    plain_viz: Visualization,
    dashboard: Dashboard,
}

/// The slug of the fixture dashboard.
const TAKEN_SLUG: &str = "fixture-slug-taken";

/// The parameters of the fixture query: the first four have no default,
/// so a schedule must give them values.
fn typed_parameters() -> Vec<ParameterDef> {
    vec![
        ParameterDef::new("region", ParameterType::Text),
        ParameterDef::new("period", ParameterType::DateRange),
        ParameterDef::new(
            "tier",
            ParameterType::Enum {
                options: vec!["gold".into(), "silver".into()],
            },
        ),
        ParameterDef::new("ids", ParameterType::list(ItemType::Integer)),
        ParameterDef::new("n", ParameterType::Integer).with_default(json!(10)),
        ParameterDef::new("ratio", ParameterType::Number).with_default(json!(0.5)),
        ParameterDef::new("flag", ParameterType::Boolean).with_default(json!(true)),
        ParameterDef::new("day", ParameterType::Date).with_default(json!("2024-01-31")),
        ParameterDef::new("at", ParameterType::Datetime)
            .with_default(json!("2024-01-31T08:00:00+01:00")),
    ]
}

impl Fixtures {
    async fn new(env: &Env) -> Self {
        let services = &env.services;
        let typed = services
            .queries
            .create(
                &env.admin,
                NewQuery {
                    name: "typed".into(),
                    datasource_id: env.sample.id.clone(),
                    sql: "select * from orders where region = {{ region }} \
                          and d between {{ period.start }} and {{ period.end }} \
                          and tier = {{ tier }} and id in ({{ ids }}) and n < {{ n }} \
                          and r > {{ ratio }} and f = {{ flag }} and day = {{ day }} \
                          and at < {{ at }}"
                        .into(),
                    parameters: typed_parameters(),
                    ..NewQuery::default()
                },
            )
            .await
            .unwrap();
        let typed_viz = env.table(&env.admin, &typed.id, "typed table").await;
        let plain = env.query(&env.admin, "plain").await;
        let plain_viz = env.table(&env.admin, &plain.id, "plain table").await;
        let dashboard = services
            .dashboards
            .create(
                &env.admin,
                DashboardInput {
                    name: "Fixture".into(),
                    slug: Some(TAKEN_SLUG.into()),
                    ..DashboardInput::default()
                },
            )
            .await
            .unwrap();
        Self {
            typed,
            typed_viz,
            plain,
            plain_viz,
            dashboard,
        }
    }

    /// The visualizations widgets may show, with their queries'
    /// parameters.
    fn visualizations(&self) -> Vec<(String, Vec<ParameterDef>)> {
        vec![
            (self.typed_viz.id.clone(), self.typed.parameters.clone()),
            (self.plain_viz.id.clone(), self.plain.parameters.clone()),
        ]
    }

    /// What canvas nodes may link to.
    fn targets(&self) -> Targets {
        Targets {
            queries: vec![self.typed.id.clone(), self.plain.id.clone()],
            visualizations: vec![self.typed_viz.id.clone(), self.plain_viz.id.clone()],
            dashboards: vec![self.dashboard.id.clone()],
        }
    }

    /// Removes what earlier cases made: every schedule, canvas, dashboard,
    /// visualization and query but these.
    async fn tidy(&self, env: &Env) -> Result<(), TestCaseError> {
        let s = &env.services;
        let a = &env.admin;
        for x in must("list", s.schedules.list(a, &all()).await)?.items {
            must("delete schedule", s.schedules.delete(a, &x.id).await)?;
        }
        for x in must("list", s.canvases.list(a, &all()).await)?.items {
            must("delete canvas", s.canvases.delete(a, &x.id).await)?;
        }
        for x in must("list", s.dashboards.list(a, &all()).await)?.items {
            if x.id != self.dashboard.id {
                must("delete dashboard", s.dashboards.delete(a, &x.id).await)?;
            }
        }
        let kept = [&self.typed_viz.id, &self.plain_viz.id];
        for x in must("list", s.visualizations.list(a, &all()).await)?.items {
            if !kept.contains(&&x.id) {
                must(
                    "delete visualization",
                    s.visualizations.delete(a, &x.id).await,
                )?;
            }
        }
        let kept = [&self.typed.id, &self.plain.id];
        let archived = all().filter("archived", "true");
        let queries = must("list", s.queries.list(a, &all()).await)?.items;
        let archived = must("list", s.queries.list(a, &archived).await)?.items;
        for x in queries.into_iter().chain(archived) {
            if !kept.contains(&&x.id) {
                must("delete query", s.queries.delete(a, &x.id).await)?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Generators of valid values
// ---------------------------------------------------------------------------

/// A character a display name may hold: anything but a control
/// character, and now and then a newline or tab (which are allowed).
fn name_char() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => "[^\\p{Cc}]",
        2 => "[a-z0-9 ]",
        1 => select(vec!["\n", "\t"]).prop_map(str::to_owned),
    ]
}

/// A valid name: 1 to 200 characters once trimmed, no control
/// characters but newlines and tabs; sometimes with white space around
/// it, which is trimmed.
fn name() -> impl Strategy<Value = String> {
    let core = (
        "[^\\p{Cc}\\s]",
        prop::collection::vec(name_char(), 0..=198),
        prop::option::of("[^\\p{Cc}\\s]"),
    )
        .prop_map(|(first, middle, last)| {
            let mut s = first;
            s.extend(middle);
            s.extend(last);
            s
        });
    let words = "[A-Za-z0-9]{1,9}( [A-Za-z0-9!]{1,9}){0,39}".prop_map(|s| {
        // Long names of ASCII words: the slugs made of them are long too.
        s.chars().take(200).collect::<String>()
    });
    (
        prop_oneof![3 => core, 1 => words],
        select(vec!["", " ", "\t", " \n "]),
        select(vec!["", " ", "\n"]),
    )
        .prop_map(|(core, before, after)| format!("{before}{core}{after}"))
        .prop_filter("names are not empty once trimmed", |s| {
            let n = s.trim().chars().count();
            (1..=200).contains(&n)
        })
}

/// Free text without control characters (newlines and tabs allowed), up
/// to `most` characters: short, or now and then exactly `most`.
fn text(most: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::collection::vec(name_char(), 0..=40).prop_map(|c| c.concat()),
        1 => Just("é".repeat(most)),
        1 => Just(String::new()),
    ]
}

/// Characters tags are made of: ASCII letters and digits, `-_:.`, and
/// letters and digits of other scripts, some with unusual lowercase forms.
const TAG_CHARS: &[char] = &[
    'a', 'B', 'z', 'Q', '0', '9', '-', '_', ':', '.', 'é', 'É', 'ß', 'ẞ', 'İ', 'Σ', 'ǅ', '日', '٣',
    'Ⅻ',
];

fn tag() -> impl Strategy<Value = String> {
    prop::collection::vec(select(TAG_CHARS), 1..=50).prop_map(|c| c.into_iter().collect())
}

fn tags() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(tag(), 0..=20)
}

/// A valid parameter name.
fn parameter_name() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_]{0,63}"
}

fn date() -> impl Strategy<Value = NaiveDate> {
    (1i32..=9999, 1u32..=12, 1u32..=28)
        .prop_map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN))
}

fn date_text() -> impl Strategy<Value = String> {
    date().prop_map(|d| d.format("%Y-%m-%d").to_string())
}

/// An RFC 3339 date and time with an offset.
fn datetime_text() -> impl Strategy<Value = String> {
    (
        -62_000_000_000i64..=253_000_000_000,
        0u32..1_000_000_000,
        -(14 * 60)..=(14 * 60i32),
    )
        .prop_map(|(secs, nanos, minutes)| {
            let offset =
                FixedOffset::east_opt(minutes * 60).unwrap_or(FixedOffset::east_opt(0).unwrap());
            DateTime::from_timestamp(secs, nanos)
                .unwrap_or_default()
                .with_timezone(&offset)
                .to_rfc3339()
        })
}

fn finite_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        Just(-0.0),
        Just(f64::MIN_POSITIVE),
        Just(f64::MAX),
        Just(5e-324),
        -1e6..1e6,
    ]
}

/// A valid value of a parameter of type `ty`, in any of the forms it is
/// accepted in.
fn value_of(ty: &ParameterType) -> BoxedStrategy<Json> {
    match ty {
        ParameterType::Text => prop_oneof![
            "\\PC{0,20}".prop_map(Json::String),
            any::<String>().prop_map(Json::String),
        ]
        .boxed(),
        ParameterType::Integer => prop_oneof![
            any::<i64>().prop_map(Json::from),
            (any::<i32>(), select(vec!["", " ", "\t"]))
                .prop_map(|(n, pad)| Json::String(format!("{pad}{n}{pad}"))),
            (-9.0e14..9.0e14f64).prop_map(|f| json!(f.trunc())),
        ]
        .boxed(),
        ParameterType::Number => prop_oneof![
            finite_f64().prop_map(|f| json!(f)),
            any::<i64>().prop_map(Json::from),
            any::<u64>().prop_map(Json::from),
            "-?[0-9]{1,6}(\\.[0-9]{1,4})?(e[0-9]{1,2})?".prop_map(Json::String),
        ]
        .boxed(),
        ParameterType::Boolean => prop_oneof![
            any::<bool>().prop_map(Json::Bool),
            select(vec!["true", "false", "1", "0", "TRUE", " False "])
                .prop_map(|s| Json::String(s.into())),
        ]
        .boxed(),
        ParameterType::Date => date_text().prop_map(Json::String).boxed(),
        ParameterType::Datetime => datetime_text().prop_map(Json::String).boxed(),
        ParameterType::DateRange => (date(), date(), 0..3u8)
            .prop_map(|(a, b, form)| {
                let (start, end) = (a.min(b).to_string(), a.max(b).to_string());
                match form {
                    0 => json!({"start": start, "end": end}),
                    1 => json!([start, end]),
                    _ => json!(format!("{start}..{end}")),
                }
            })
            .boxed(),
        ParameterType::Enum { options } => select(options.clone()).prop_map(Json::String).boxed(),
        ParameterType::List { item, options } => {
            let one: BoxedStrategy<Json> = if options.is_empty() {
                value_of(&scalar(*item))
            } else {
                select(options.clone()).prop_map(Json::String).boxed()
            };
            prop_oneof![
                3 => prop::collection::vec(one.clone(), 1..=4).prop_map(Json::Array),
                1 => one,
            ]
            .boxed()
        }
    }
}

fn scalar(item: ItemType) -> ParameterType {
    match item {
        ItemType::Text => ParameterType::Text,
        ItemType::Integer => ParameterType::Integer,
        ItemType::Number => ParameterType::Number,
        ItemType::Date => ParameterType::Date,
    }
}

fn parameter_type() -> impl Strategy<Value = ParameterType> {
    prop_oneof![
        select(vec![
            ParameterType::Text,
            ParameterType::Integer,
            ParameterType::Number,
            ParameterType::Boolean,
            ParameterType::Date,
            ParameterType::Datetime,
            ParameterType::DateRange,
        ]),
        prop::collection::vec("\\PC{0,12}", 1..=4)
            .prop_map(|options| ParameterType::Enum { options }),
        select(vec![
            ItemType::Text,
            ItemType::Integer,
            ItemType::Number,
            ItemType::Date
        ])
        .prop_map(ParameterType::list),
        prop::collection::vec("[a-z]{1,6}", 1..=4).prop_map(|options| ParameterType::List {
            item: ItemType::Text,
            options,
        }),
        prop::collection::vec(any::<i16>(), 1..=4).prop_map(|numbers| ParameterType::List {
            item: ItemType::Integer,
            options: numbers.iter().map(ToString::to_string).collect(),
        }),
    ]
}

/// A valid definition named `name` of type `ty`, with or without a
/// default and a title.
fn definition(name: String, ty: ParameterType) -> BoxedStrategy<ParameterDef> {
    (
        prop::option::of(value_of(&ty)),
        prop::option::of("\\PC{0,30}"),
    )
        .prop_map(move |(default, title)| ParameterDef {
            name: name.clone(),
            ty: ty.clone(),
            default,
            title,
        })
        .boxed()
}

/// Valid definitions with distinct names, of any types (`alike`: also of
/// the fixture query's types, so that widgets can map onto them).
fn parameters(alike: bool) -> impl Strategy<Value = Vec<ParameterDef>> {
    let fixture_types: Vec<ParameterType> = typed_parameters().into_iter().map(|p| p.ty).collect();
    let ty = if alike {
        prop_oneof![parameter_type().boxed(), select(fixture_types).boxed()].boxed()
    } else {
        parameter_type().boxed()
    };
    prop::collection::btree_set(parameter_name(), 0..=5)
        .prop_flat_map(move |names| {
            let count = names.len();
            (Just(names), prop::collection::vec(ty.clone(), count))
        })
        .prop_flat_map(|(names, types)| {
            names
                .into_iter()
                .zip(types)
                .map(|(name, ty)| definition(name, ty))
                .collect::<Vec<_>>()
        })
}

/// A SQL template over `parameters`: each used in a placeholder of one of
/// its spellings (a date range by its start and end), some left unused.
fn template(parameters: Vec<ParameterDef>) -> impl Strategy<Value = (String, Vec<ParameterDef>)> {
    let count = parameters.len();
    (
        prop::collection::vec((any::<bool>(), 0..4u8), count),
        select(vec![
            "select * from orders",
            "select 'it''s' as t, \"Col\" from t -- a note\n",
            "with x as (select 1) select * from x /* c */",
        ]),
    )
        .prop_map(move |(uses, head)| {
            let mut conditions = Vec::new();
            for (p, (used, spelling)) in parameters.iter().zip(uses) {
                if !used {
                    continue;
                }
                let name = &p.name;
                let place = |field: &str| match spelling {
                    0 => format!("{{{{{name}{field}}}}}"),
                    1 => format!("{{{{ {name}{field} }}}}"),
                    2 => format!("{{{{\t{name}{field}\t}}}}"),
                    _ => format!("{{{{  {name}{field} }}}}"),
                };
                conditions.push(match &p.ty {
                    ParameterType::DateRange => {
                        format!("d between {} and {}", place(".start"), place(".end"))
                    }
                    ParameterType::List { .. } => format!("c in ({})", place("")),
                    _ => format!("c = {}", place("")),
                });
            }
            let sql = if conditions.is_empty() {
                head.to_owned()
            } else {
                format!("{head}\nwhere {}", conditions.join(" and "))
            };
            (sql, parameters.clone())
        })
}

fn sql_and_parameters() -> impl Strategy<Value = (String, Vec<ParameterDef>)> {
    parameters(false).prop_flat_map(template)
}

// ---------------------------------------------------------------------------
// Checking a refusal
// ---------------------------------------------------------------------------

/// An input, with how it was made: `valid` as drawn from valid inputs,
/// or with faults put into the fields `broken`, or drawn from anything.
#[derive(Debug, Clone)]
struct Judged<T> {
    input: T,
    valid: bool,
    broken: Vec<String>,
}

fn valid<T: Debug + Clone>(input: T) -> Judged<T> {
    Judged {
        input,
        valid: true,
        broken: Vec::new(),
    }
}

fn anything<T: Debug + Clone>(input: T) -> Judged<T> {
    Judged {
        input,
        valid: false,
        broken: Vec::new(),
    }
}

/// One step of a field path: `widgets`, `[2]`, `x`.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn steps(path: &str) -> Option<Vec<Step<'_>>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        while let Some(inner) = rest.strip_prefix('[') {
            let end = inner.find(']')?;
            out.push(Step::Index(inner[..end].parse().ok()?));
            rest = &inner[end + 1..];
        }
        if !rest.is_empty() {
            return None;
        }
    }
    Some(out)
}

/// Whether field path `path` names a field of `input` (a JSON picture of
/// it): its first name is a field, and every index on the way is in
/// range. A name below that may be missing: a parameter with no value
/// is named by where its value belongs.
fn names_field(input: &Json, path: &str) -> bool {
    let Some(steps) = steps(path) else {
        return false;
    };
    let mut at = input;
    for (i, step) in steps.iter().enumerate() {
        match (step, at) {
            (Step::Key(key), Json::Object(fields)) => match fields.get(*key) {
                Some(next) => at = next,
                None => return i > 0,
            },
            (Step::Index(n), Json::Array(items)) => match items.get(*n) {
                Some(next) => at = next,
                None => return false,
            },
            _ => return false,
        }
    }
    !steps.is_empty()
}

/// Whether one field path is the other or a part of it.
fn related(a: &str, b: &str) -> bool {
    let within = |outer: &str, inner: &str| {
        inner.len() > outer.len()
            && inner.starts_with(outer)
            && matches!(inner.as_bytes()[outer.len()], b'.' | b'[')
    };
    a == b || within(a, b) || within(b, a)
}

fn preview(json: &Json) -> String {
    json.to_string().chars().take(600).collect()
}

/// Judges the outcome of creating or changing an object from `case`
/// (pictured as `picture`): the object when it was accepted, `None` when
/// it was refused as the rules say.
fn judge<T, I: Debug>(
    outcome: Result<T, Error>,
    case: &Judged<I>,
    picture: &Json,
) -> Result<Option<T>, TestCaseError> {
    let error = match outcome {
        Ok(object) => {
            prop_assert!(
                case.broken.is_empty(),
                "accepted though broken at {:?}: {}",
                case.broken,
                preview(picture)
            );
            return Ok(Some(object));
        }
        Err(e) => e,
    };
    prop_assert!(
        !case.valid,
        "a valid input was refused: {error} {:?}: {}",
        error.field_errors(),
        preview(picture)
    );
    prop_assert_eq!(
        error.kind(),
        ErrorKind::InvalidInput,
        "{} ({})",
        error,
        error.code()
    );
    let fields: Vec<&str> = error
        .field_errors()
        .iter()
        .map(|f| f.field.as_str())
        .collect();
    prop_assert!(
        !fields.is_empty(),
        "refused without naming a field: {error} ({}): {}",
        error.code(),
        preview(picture)
    );
    for field in &fields {
        prop_assert!(
            names_field(picture, field),
            "the error names {field:?}, which the input does not have: {}",
            preview(picture)
        );
    }
    if !case.broken.is_empty() {
        prop_assert!(
            fields
                .iter()
                .any(|f| case.broken.iter().any(|b| related(f, b))),
            "broken at {:?}, refused at {:?}",
            case.broken,
            fields
        );
    }
    Ok(None)
}

/// What the services store for tags: trimmed, lowercase, each once,
/// sorted — checked as properties rather than copied: every tag read
/// back is one the tag rule accepts, each given tag has one that is the
/// same but for case, and nothing else is there. Case is folded as the
/// services fold it, character by character to the first character of
/// its lowercase (`İ` to `i`).
fn same_tags(read: &[String], given: &[String]) -> Result<(), TestCaseError> {
    let mut sorted = read.to_vec();
    sorted.sort();
    sorted.dedup();
    prop_assert_eq!(&sorted, read, "tags are sorted and each there once");
    for tag in read {
        let n = tag.chars().count();
        prop_assert!(
            (1..=50).contains(&n)
                && tag
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ':' | '.')),
            "tag {tag:?} as stored breaks the tag rule"
        );
        prop_assert_eq!(tag.to_lowercase(), tag.clone(), "stored tags are lowercase");
    }
    let fold = |tags: &[String]| -> BTreeSet<String> {
        tags.iter()
            .map(|t| {
                t.trim()
                    .chars()
                    .map(|c| c.to_lowercase().next().unwrap_or(c))
                    .collect()
            })
            .collect()
    };
    prop_assert_eq!(fold(read), fold(given), "the tags given, but for case");
    Ok(())
}

// ---------------------------------------------------------------------------
// Saved queries
// ---------------------------------------------------------------------------

fn new_query(datasource: String) -> impl Strategy<Value = NewQuery> {
    (
        name(),
        text(10_000),
        sql_and_parameters(),
        tags(),
        any::<bool>(),
    )
        .prop_map(
            move |(name, description, (sql, parameters), tags, shared)| NewQuery {
                name,
                description,
                datasource_id: datasource.clone(),
                sql,
                parameters,
                tags,
                shared,
            },
        )
}

/// A change of SQL and parameters: none, the same again (no new
/// version), or new ones.
#[derive(Debug, Clone)]
enum TemplateChange {
    Keep,
    Same,
    New(String, Vec<ParameterDef>),
}

#[derive(Debug, Clone)]
struct QueryChange {
    name: Option<String>,
    description: Option<String>,
    template: TemplateChange,
    tags: Option<Vec<String>>,
    shared: Option<bool>,
    archived: Option<bool>,
}

impl QueryChange {
    fn update(&self, current: &Query) -> QueryUpdate {
        let (sql, parameters) = match &self.template {
            TemplateChange::Keep => (None, None),
            TemplateChange::Same => (Some(current.sql.clone()), Some(current.parameters.clone())),
            TemplateChange::New(sql, parameters) => (Some(sql.clone()), Some(parameters.clone())),
        };
        QueryUpdate {
            name: self.name.clone(),
            description: self.description.clone(),
            datasource_id: None,
            sql,
            parameters,
            tags: self.tags.clone(),
            shared: self.shared,
            archived: self.archived,
        }
    }
}

fn query_change() -> impl Strategy<Value = QueryChange> {
    (
        prop::option::of(name()),
        prop::option::of(text(10_000)),
        prop_oneof![
            Just(TemplateChange::Keep),
            Just(TemplateChange::Same),
            sql_and_parameters().prop_map(|(s, p)| TemplateChange::New(s, p)),
        ],
        prop::option::of(tags()),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
    )
        .prop_map(
            |(name, description, template, tags, shared, archived)| QueryChange {
                name,
                description,
                template,
                tags,
                shared,
                archived,
            },
        )
}

/// `q` as made from `new` by `env`'s admin.
fn same_query(env: &Env, q: &Query, new: &NewQuery) -> Result<(), TestCaseError> {
    prop_assert_eq!(&q.name, new.name.trim());
    prop_assert_eq!(&q.description, &new.description);
    prop_assert_eq!(&q.datasource_id, &new.datasource_id);
    prop_assert_eq!(&q.owner_id, &env.admin.user_id);
    prop_assert_eq!(&q.sql, &new.sql);
    prop_assert_eq!(&q.parameters, &new.parameters);
    same_tags(&q.tags, &new.tags)?;
    prop_assert_eq!(q.shared, new.shared);
    prop_assert!(!q.archived);
    prop_assert_eq!(q.version, 1);
    Ok(())
}

/// `after` is `before` changed by `change`.
fn query_changed(before: &Query, change: &QueryUpdate, after: &Query) -> Result<(), TestCaseError> {
    let name = change
        .name
        .as_deref()
        .map_or(before.name.as_str(), str::trim);
    prop_assert_eq!(&after.name, name);
    let description = change.description.as_ref().unwrap_or(&before.description);
    prop_assert_eq!(&after.description, description);
    let sql = change.sql.as_ref().unwrap_or(&before.sql);
    prop_assert_eq!(&after.sql, sql);
    let parameters = change.parameters.as_ref().unwrap_or(&before.parameters);
    prop_assert_eq!(&after.parameters, parameters);
    match &change.tags {
        Some(tags) => same_tags(&after.tags, tags)?,
        None => prop_assert_eq!(&after.tags, &before.tags),
    }
    prop_assert_eq!(after.shared, change.shared.unwrap_or(before.shared));
    prop_assert_eq!(after.archived, change.archived.unwrap_or(before.archived));
    let new_version = *sql != before.sql || *parameters != before.parameters;
    prop_assert_eq!(after.version, before.version + i32::from(new_version));
    prop_assert_eq!(after.revision, before.revision + 1);
    prop_assert_eq!(&after.id, &before.id);
    prop_assert_eq!(after.created_at, before.created_at);
    Ok(())
}

fn query_picture(q: &NewQuery) -> Json {
    json!({
        "name": q.name,
        "description": q.description,
        "datasource_id": q.datasource_id,
        "sql": q.sql,
        "parameters": q.parameters,
        "tags": q.tags,
        "shared": q.shared,
    })
}

async fn queries_read_back_as_created_and_updated(env: Env) {
    let fixtures = Fixtures::new(&env).await;
    let (env, fx) = (&env, &fixtures);
    let queries = &env.services.queries;
    let admin = &env.admin;
    check(
        (new_query(env.sample.id.clone()), query_change()),
        |(new, change)| async move {
            fx.tidy(env).await?;
            let created = must("create", queries.create(admin, new.clone()).await)?;
            same_query(env, &created, &new)?;
            prop_assert_eq!(
                &must("get", queries.get(admin, &created.id).await)?,
                &created
            );
            let listed = must("list", queries.list(admin, &all()).await)?.items;
            prop_assert!(listed.contains(&created), "the list shows it as read");

            // What was stored is input the rules accept: a fork copies it.
            let fork = must("fork", queries.fork(admin, &created.id).await)?;
            prop_assert_eq!(&fork.tags, &created.tags);
            prop_assert_eq!(&fork.parameters, &created.parameters);

            let update = change.update(&created);
            let changed = must(
                "update",
                queries
                    .update(admin, &created.id, created.revision, update.clone())
                    .await,
            )?;
            query_changed(&created, &update, &changed)?;
            prop_assert_eq!(
                &must("get", queries.get(admin, &created.id).await)?,
                &changed
            );
            let versions = must("versions", queries.versions(admin, &created.id).await)?;
            prop_assert_eq!(
                versions.len(),
                usize::try_from(changed.version).unwrap_or(0)
            );
            prop_assert_eq!(&versions[0].sql, &changed.sql);
            prop_assert_eq!(&versions[0].parameters, &changed.parameters);
            Ok(())
        },
    );
}

/// Puts a fault into `q`; returns the field it breaks.
fn break_query(q: &mut NewQuery, fault: u8, at: Index, salt: u16) -> String {
    let pick = |n: usize| at.index(n.max(1));
    match fault % 13 {
        0 => {
            q.name = select_str(&["", "   ", "\t\n"], salt).into();
            "name".into()
        }
        1 => {
            q.name = "n".repeat(201 + usize::from(salt % 50));
            "name".into()
        }
        2 => {
            q.name = format!("bell\u{7}{}", q.name);
            "name".into()
        }
        3 => {
            q.description = if salt.is_multiple_of(2) {
                "d".repeat(10_001)
            } else {
                "esc\u{1b}".into()
            };
            "description".into()
        }
        4 => {
            q.tags = (0..21).map(|i| format!("t{i}")).collect();
            "tags".into()
        }
        5 => {
            let bad = select_str(&["", "has space", "#hash", "tab\t", "comma,"], salt);
            let long = "x".repeat(51);
            let bad = if salt % 6 == 5 { long.as_str() } else { bad };
            if q.tags.is_empty() {
                q.tags.push("ok".into());
            }
            let i = pick(q.tags.len());
            q.tags[i] = bad.into();
            format!("tags[{i}]")
        }
        6 => {
            q.sql = String::new();
            "sql".into()
        }
        7 => {
            q.sql.push_str(" and x = {{ never_defined_zz }}");
            "sql".into()
        }
        8 => {
            q.sql.push_str(" and x = {{ unclosed");
            "sql".into()
        }
        9 => {
            let bad = select_str(&["1st", "has-dash", "", "é", "a b"], salt);
            let long = "p".repeat(65);
            let bad = if salt % 6 == 5 { long.as_str() } else { bad };
            q.parameters
                .push(ParameterDef::new(bad, ParameterType::Text));
            format!("parameters[{}]", q.parameters.len() - 1)
        }
        10 => {
            if q.parameters.is_empty() {
                q.parameters
                    .push(ParameterDef::new("p", ParameterType::Integer));
            }
            let i = pick(q.parameters.len());
            let copy = q.parameters[i].clone();
            q.parameters.push(copy);
            format!("parameters[{}].name", q.parameters.len() - 1)
        }
        11 => {
            let (ty, default) = wrong_default(salt);
            q.parameters.push(ParameterDef {
                name: "zz_bad_default".into(),
                ty,
                default,
                title: None,
            });
            format!("parameters[{}]", q.parameters.len() - 1)
        }
        _ => {
            q.datasource_id = "no-such-datasource".into();
            "datasource_id".into()
        }
    }
}

fn select_str<'a>(options: &[&'a str], salt: u16) -> &'a str {
    options[usize::from(salt) % options.len()]
}

/// A definition its own rules refuse: an enum without options, or a
/// default that is not a value of the type.
fn wrong_default(salt: u16) -> (ParameterType, Option<Json>) {
    match salt % 10 {
        0 => (ParameterType::Enum { options: vec![] }, None),
        1 => (ParameterType::Text, Some(json!(5))),
        2 => (ParameterType::Integer, Some(json!("1 OR 1=1"))),
        3 => (ParameterType::Number, Some(json!("NaN"))),
        4 => (ParameterType::Boolean, Some(json!("maybe"))),
        5 => (ParameterType::Date, Some(json!("2024-02-30"))),
        6 => (ParameterType::Datetime, Some(json!("yesterday"))),
        7 => (
            ParameterType::DateRange,
            Some(json!("2024-05-02..2024-05-01")),
        ),
        8 => (
            ParameterType::Enum {
                options: vec!["a".into()],
            },
            Some(json!("b")),
        ),
        _ => (ParameterType::list(ItemType::Integer), Some(json!([]))),
    }
}

/// Faults to put in: which, where, and a number that varies them.
fn faults() -> impl Strategy<Value = Vec<(u8, Index, u16)>> {
    prop::collection::vec((any::<u8>(), any::<Index>(), any::<u16>()), 1..=2)
}

fn arbitrary_definition() -> impl Strategy<Value = ParameterDef> {
    (
        prop_oneof!["[A-Za-z_][A-Za-z0-9_]{0,5}", "\\PC{0,4}"],
        parameter_type(),
        prop::option::of(prop_oneof![
            any::<i64>().prop_map(Json::from),
            "\\PC{0,8}".prop_map(Json::String),
            any::<bool>().prop_map(Json::Bool),
            Just(json!([])),
        ]),
    )
        .prop_map(|(name, ty, default)| ParameterDef {
            name,
            ty,
            default,
            title: None,
        })
}

fn judged_query(datasource: String) -> impl Strategy<Value = Judged<NewQuery>> {
    let datasource_for_valid = datasource.clone();
    let broken = (new_query(datasource.clone()), faults()).prop_map(|(mut q, faults)| {
        let broken = faults
            .into_iter()
            .map(|(fault, at, salt)| break_query(&mut q, fault, at, salt))
            .collect();
        Judged {
            input: q,
            valid: false,
            broken,
        }
    });
    let arbitrary = (
        any::<String>(),
        any::<String>(),
        prop_oneof!["\\PC{0,30}", "select \\{\\{ ?[a-z]{1,3} ?\\}\\}"],
        prop::collection::vec(arbitrary_definition(), 0..3),
        prop::collection::vec(any::<String>(), 0..3),
        any::<bool>(),
    )
        .prop_map(move |(name, description, sql, parameters, tags, shared)| {
            anything(NewQuery {
                name,
                description,
                datasource_id: datasource.clone(),
                sql,
                parameters,
                tags,
                shared,
            })
        });
    prop_oneof![
        1 => new_query(datasource_for_valid).prop_map(valid),
        4 => broken,
        2 => arbitrary,
    ]
}

async fn query_inputs_are_stored_or_refused_by_field(env: Env) {
    let fixtures = Fixtures::new(&env).await;
    let (env, fx) = (&env, &fixtures);
    let queries = &env.services.queries;
    let admin = &env.admin;
    check(judged_query(env.sample.id.clone()), |case| async move {
        fx.tidy(env).await?;
        let picture = query_picture(&case.input);
        let before = must("list", queries.list(admin, &all()).await)?.items;
        match judge(
            queries.create(admin, case.input.clone()).await,
            &case,
            &picture,
        )? {
            Some(q) => same_query(env, &q, &case.input)?,
            None => prop_assert_eq!(
                &must("list", queries.list(admin, &all()).await)?.items,
                &before,
                "nothing was written"
            ),
        }

        // The same input as a change of every field of a saved query.
        let base = must("create", queries.create(admin, plain_query(env)).await)?;
        let change = QueryUpdate {
            name: Some(case.input.name.clone()),
            description: Some(case.input.description.clone()),
            datasource_id: Some(case.input.datasource_id.clone()),
            sql: Some(case.input.sql.clone()),
            parameters: Some(case.input.parameters.clone()),
            tags: Some(case.input.tags.clone()),
            shared: Some(case.input.shared),
            archived: None,
        };
        let outcome = queries
            .update(admin, &base.id, base.revision, change.clone())
            .await;
        match judge(outcome, &case, &picture)? {
            Some(q) => query_changed(&base, &change, &q)?,
            None => prop_assert_eq!(
                &must("get", queries.get(admin, &base.id).await)?,
                &base,
                "nothing was written"
            ),
        }
        Ok(())
    });
}

fn plain_query(env: &Env) -> NewQuery {
    NewQuery {
        name: "base".into(),
        datasource_id: env.sample.id.clone(),
        sql: "select 1".into(),
        ..NewQuery::default()
    }
}

// ---------------------------------------------------------------------------
// Visualizations
// ---------------------------------------------------------------------------

/// A column name: 1 to 200 characters, no control characters.
fn column() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-z_][a-z0-9_]{0,12}",
        2 => prop::collection::vec(name_char(), 1..=20).prop_map(|c| c.concat()),
        1 => Just("c".repeat(200)),
    ]
}

fn columns(least: usize) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(column(), least..=4)
}

/// A counter's number format, as people write them: a pattern of `0`s
/// and `#`s with text before and after.
fn number_format() -> impl Strategy<Value = String> {
    (
        "[^0#\\p{Cc}]{0,4}",
        select(vec![
            "0,0.00", "0.0%", "0,0", "0.0a", "#,##0.##", "0", "0.000", "0.0#",
        ]),
        // Not a digit, point or comma either, which would carry on the
        // pattern.
        "[^0-9#,.\\p{Cc}]{0,4}",
    )
        .prop_map(|(before, pattern, after)| format!("{before}{pattern}{after}"))
}

/// Puts `value` under `key` when given; now and then says `null` instead
/// of leaving it out.
fn optional(
    options: &mut serde_json::Map<String, Json>,
    key: &str,
    value: Option<Json>,
    null: bool,
) {
    match value {
        Some(v) => {
            options.insert(key.into(), v);
        }
        None if null => {
            options.insert(key.into(), Json::Null);
        }
        None => {}
    }
}

/// Options of a visualization type, valid for it.
fn options_of(kind: VisualizationType) -> BoxedStrategy<Json> {
    use VisualizationType as V;
    let null = any::<bool>();
    match kind {
        V::Table => (
            prop::option::of(columns(0)),
            prop::option::of(1u32..=1000),
            null,
        )
            .prop_map(|(columns, page_size, null)| {
                let mut o = serde_json::Map::new();
                optional(&mut o, "columns", columns.map(|c| json!(c)), false);
                optional(&mut o, "page_size", page_size.map(Json::from), null);
                Json::Object(o)
            })
            .boxed(),
        V::Line | V::Bar | V::Area => (
            column(),
            columns(1),
            prop::option::of(column()),
            any::<bool>(),
            prop::option::of("\\PC{0,20}"),
            prop::option::of("\\PC{0,20}"),
            null,
        )
            .prop_map(move |(x, y, series, stacked, x_label, y_label, null)| {
                let mut o = serde_json::Map::new();
                o.insert("x".into(), json!(x));
                o.insert("y".into(), json!(y));
                optional(&mut o, "series", series.map(Json::String), null);
                if kind != V::Line && stacked {
                    o.insert("stacked".into(), json!(true));
                } else if null {
                    o.insert("stacked".into(), json!(false));
                }
                optional(&mut o, "x_label", x_label.map(Json::String), null);
                optional(&mut o, "y_label", y_label.map(Json::String), false);
                Json::Object(o)
            })
            .boxed(),
        V::Scatter => (
            column(),
            column(),
            prop::option::of(column()),
            prop::option::of(column()),
            null,
        )
            .prop_map(|(x, y, size, series, null)| {
                let mut o = serde_json::Map::new();
                o.insert("x".into(), json!(x));
                o.insert("y".into(), json!(y));
                optional(&mut o, "size", size.map(Json::String), null);
                optional(&mut o, "series", series.map(Json::String), false);
                Json::Object(o)
            })
            .boxed(),
        V::Pie => (column(), column())
            .prop_map(|(label, value)| json!({"label": label, "value": value}))
            .boxed(),
        V::Counter => (
            column(),
            prop::option::of(column()),
            prop::option::of("\\PC{0,20}"),
            prop::option::of(number_format()),
            null,
        )
            .prop_map(|(value, target, label, format, null)| {
                let mut o = serde_json::Map::new();
                o.insert("value".into(), json!(value));
                optional(&mut o, "target", target.map(Json::String), null);
                optional(&mut o, "label", label.map(Json::String), false);
                optional(&mut o, "format", format.map(Json::String), null);
                Json::Object(o)
            })
            .boxed(),
        V::Pivot => (
            columns(1),
            prop::option::of(columns(0)),
            columns(1),
            select(vec!["sum", "count", "avg", "min", "max"]),
        )
            .prop_map(|(rows, columns, values, aggregation)| {
                let mut o = serde_json::Map::new();
                o.insert("rows".into(), json!(rows));
                optional(&mut o, "columns", columns.map(|c| json!(c)), false);
                o.insert("values".into(), json!(values));
                o.insert("aggregation".into(), json!(aggregation));
                Json::Object(o)
            })
            .boxed(),
    }
}

const KINDS: [VisualizationType; 8] = [
    VisualizationType::Table,
    VisualizationType::Line,
    VisualizationType::Bar,
    VisualizationType::Area,
    VisualizationType::Scatter,
    VisualizationType::Pie,
    VisualizationType::Counter,
    VisualizationType::Pivot,
];

fn visualization(query_id: String) -> impl Strategy<Value = VisualizationInput> {
    select(KINDS.to_vec())
        .prop_flat_map(|kind| (Just(kind), options_of(kind), name()))
        .prop_map(move |(kind, options, name)| VisualizationInput {
            query_id: query_id.clone(),
            kind,
            name,
            options,
        })
}

/// `v` as made from `input` by `env`'s admin, and drawable.
fn same_visualization(
    env: &Env,
    v: &Visualization,
    input: &VisualizationInput,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(&v.query_id, &input.query_id);
    prop_assert_eq!(&v.owner_id, &env.admin.user_id);
    prop_assert_eq!(v.kind, input.kind);
    prop_assert_eq!(&v.name, input.name.trim());
    prop_assert_eq!(&v.options, &input.options);
    // One rule, one definition: what the services save, charts draw.
    if let Err(e) = loupe_charts::Chart::from_type_and_options(v.kind.as_str(), &v.options) {
        return Err(TestCaseError::fail(format!(
            "a saved {} cannot be drawn: {e}: {}",
            v.kind.as_str(),
            v.options
        )));
    }
    Ok(())
}

fn visualization_picture(v: &VisualizationInput) -> Json {
    json!({
        "query_id": v.query_id,
        "kind": v.kind,
        "name": v.name,
        "options": v.options,
    })
}

async fn visualizations_read_back_as_created_and_updated(env: Env) {
    let fixtures = Fixtures::new(&env).await;
    let (env, fx) = (&env, &fixtures);
    let visualizations = &env.services.visualizations;
    let admin = &env.admin;
    let query = fx.typed.id.clone();
    check(
        (visualization(query.clone()), visualization(query)),
        |(input, change)| async move {
            fx.tidy(env).await?;
            let created = must("create", visualizations.create(admin, input.clone()).await)?;
            same_visualization(env, &created, &input)?;
            prop_assert_eq!(
                &must("get", visualizations.get(admin, &created.id).await)?,
                &created
            );
            let changed = must(
                "update",
                visualizations
                    .update(admin, &created.id, created.revision, change.clone())
                    .await,
            )?;
            same_visualization(env, &changed, &change)?;
            prop_assert_eq!(changed.revision, created.revision + 1);
            prop_assert_eq!(
                &must("get", visualizations.get(admin, &created.id).await)?,
                &changed
            );
            Ok(())
        },
    );
}

/// The keys each type requires, and a list of columns it has.
fn required_keys(kind: VisualizationType) -> (&'static [&'static str], Option<&'static str>) {
    use VisualizationType as V;
    match kind {
        V::Table => (&[], Some("columns")),
        V::Line | V::Bar | V::Area => (&["x", "y"], Some("y")),
        V::Scatter => (&["x", "y"], None),
        V::Pie => (&["label", "value"], None),
        V::Counter => (&["value"], None),
        V::Pivot => (&["rows", "values", "aggregation"], Some("rows")),
    }
}

/// Puts a fault into `v`; returns the field it breaks.
fn break_visualization(v: &mut VisualizationInput, fault: u8, salt: u16) -> String {
    let (required, list) = required_keys(v.kind);
    let object = |v: &mut VisualizationInput| -> serde_json::Map<String, Json> {
        v.options.as_object().cloned().unwrap_or_default()
    };
    match fault % 12 {
        0 => {
            v.options =
                [json!([1]), json!("x"), json!(3), Json::Null][usize::from(salt % 4)].clone();
            "options".into()
        }
        1 => {
            let mut o = object(v);
            o.insert("colour".into(), json!("red"));
            v.options = Json::Object(o);
            "options.colour".into()
        }
        2 if !required.is_empty() => {
            let mut o = object(v);
            o.remove(required[usize::from(salt) % required.len()]);
            v.options = Json::Object(o);
            "options".into()
        }
        3 if list.is_some_and(|l| l != "columns") => {
            let key = list.unwrap_or_default();
            let mut o = object(v);
            o.insert(key.into(), json!([]));
            v.options = Json::Object(o);
            format!("options.{key}")
        }
        4 if !required.is_empty() && required[0] != "rows" => {
            let key = required[0];
            let bad = ["", "bell\u{7}"][usize::from(salt % 2)];
            let long = "c".repeat(201);
            let bad = if salt % 3 == 2 { long } else { bad.to_owned() };
            let mut o = object(v);
            o.insert(key.into(), json!(bad));
            v.options = Json::Object(o);
            format!("options.{key}")
        }
        5 if list.is_some() => {
            let key = list.unwrap_or_default();
            let mut o = object(v);
            o.insert(key.into(), json!(["ok", ""]));
            v.options = Json::Object(o);
            format!("options.{key}[1]")
        }
        6 if !required.is_empty() => {
            let key = required[0];
            let mut o = object(v);
            o.insert(key.into(), json!(5));
            v.options = Json::Object(o);
            format!("options.{key}")
        }
        // Rules of one type: the input becomes one of that type.
        7 => {
            v.kind = VisualizationType::Table;
            let bad = [0, 1001][usize::from(salt % 2)];
            v.options = json!({ "page_size": bad });
            "options.page_size".into()
        }
        8 => {
            v.kind = VisualizationType::Line;
            v.options = json!({"x": "day", "y": ["n"], "stacked": true});
            "options.stacked".into()
        }
        9 => {
            v.kind = VisualizationType::Pivot;
            v.options = json!({"rows": ["a"], "values": ["b"], "aggregation": "median"});
            "options.aggregation".into()
        }
        10 => {
            v.kind = VisualizationType::Counter;
            let bad =
                ["no digits", "0.0.0", "0.00#0", "0.0000000000000", ""][usize::from(salt % 5)];
            v.options = json!({"value": "n", "format": bad});
            "options.format".into()
        }
        11 => {
            v.query_id = "no-such-query".into();
            "query_id".into()
        }
        _ => {
            v.name = ["", "  ", "\u{1b}x"][usize::from(salt % 3)].into();
            "name".into()
        }
    }
}

fn judged_visualization(query_id: String) -> impl Strategy<Value = Judged<VisualizationInput>> {
    let query_for_valid = query_id.clone();
    let broken = (visualization(query_id.clone()), faults()).prop_map(|(mut v, faults)| {
        let broken = faults
            .into_iter()
            .map(|(fault, _, salt)| break_visualization(&mut v, fault, salt))
            .collect();
        Judged {
            input: v,
            valid: false,
            broken,
        }
    });
    // Options of one type given to another, and options of any shape.
    let key = select(vec![
        "x",
        "y",
        "series",
        "label",
        "value",
        "rows",
        "columns",
        "page_size",
        "format",
        "zz",
    ]);
    let value = prop_oneof![
        column().prop_map(Json::String),
        columns(0).prop_map(|c| json!(c)),
        any::<i32>().prop_map(Json::from),
        any::<bool>().prop_map(Json::Bool),
        Just(Json::Null),
    ];
    let shapeless = prop::collection::btree_map(key, value, 0..5)
        .prop_map(|m| Json::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()));
    let options = prop_oneof![select(KINDS.to_vec()).prop_flat_map(options_of), shapeless,];
    let arbitrary = (
        select(KINDS.to_vec()),
        options,
        prop_oneof![name(), any::<String>()],
    )
        .prop_map(move |(kind, options, name)| {
            anything(VisualizationInput {
                query_id: query_id.clone(),
                kind,
                name,
                options,
            })
        });
    prop_oneof![
        1 => visualization(query_for_valid).prop_map(valid),
        4 => broken,
        2 => arbitrary,
    ]
}

async fn visualization_inputs_are_stored_or_refused_by_field(env: Env) {
    let fixtures = Fixtures::new(&env).await;
    let (env, fx) = (&env, &fixtures);
    let visualizations = &env.services.visualizations;
    let admin = &env.admin;
    check(
        judged_visualization(fx.typed.id.clone()),
        |case| async move {
            fx.tidy(env).await?;
            let picture = visualization_picture(&case.input);
            let before = must("list", visualizations.list(admin, &all()).await)?.items;
            match judge(
                visualizations.create(admin, case.input.clone()).await,
                &case,
                &picture,
            )? {
                Some(v) => same_visualization(env, &v, &case.input)?,
                None => prop_assert_eq!(
                    &must("list", visualizations.list(admin, &all()).await)?.items,
                    &before,
                    "nothing was written"
                ),
            }
            // The same input as a change of a visualization of the query.
            let base = must(
                "create",
                visualizations
                    .create(admin, super::table(&fx.typed.id, "base"))
                    .await,
            )?;
            let outcome = visualizations
                .update(admin, &base.id, base.revision, case.input.clone())
                .await;
            match judge(outcome, &case, &picture)? {
                Some(v) => same_visualization(env, &v, &case.input)?,
                None => prop_assert_eq!(
                    &must("get", visualizations.get(admin, &base.id).await)?,
                    &base,
                    "nothing was written"
                ),
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// Dashboards
// ---------------------------------------------------------------------------

/// A valid slug (never the fixture's).
fn slug() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,98}[a-z0-9])?".prop_filter("not the fixture's", |s| s != TAKEN_SLUG)
}

/// What a widget shows, before it is placed.
#[derive(Debug, Clone)]
enum Shown {
    Text(String),
    /// A visualization (by index into the fixtures'), and the mappings
    /// to draw (by index into the pairs of same-typed parameters).
    Visualization(Index, Vec<Index>),
    Hidden,
}

fn shown() -> impl Strategy<Value = Shown> {
    prop_oneof![
        3 => text(100_000).prop_map(Shown::Text),
        4 => (any::<Index>(), prop::collection::vec(any::<Index>(), 0..4))
            .prop_map(|(v, m)| Shown::Visualization(v, m)),
        1 => Just(Shown::Hidden),
    ]
}

/// Widgets laid out on shelves, left to right, top to bottom: they never
/// overlap, and stay within the 24 columns.
fn layout(
    shown: Vec<Shown>,
    sizes: Vec<(u32, u32, u32, u32)>,
    parameters: &[ParameterDef],
    visualizations: &[(String, Vec<ParameterDef>)],
) -> Vec<WidgetInput> {
    let (mut x, mut y, mut shelf) = (0u32, 0u32, 0u32);
    let mut widgets = Vec::new();
    for (what, (w, h, skip, gap)) in shown.into_iter().zip(sizes) {
        let w = w.clamp(1, 24);
        if x + w > 24 {
            x = 0;
            y += shelf + gap;
            shelf = 0;
        }
        let place_x = x + skip.min(24 - w - x);
        let (kind, mappings) = match what {
            Shown::Text(text) => (WidgetKind::Text { text }, BTreeMap::new()),
            Shown::Hidden => (WidgetKind::Hidden {}, BTreeMap::new()),
            Shown::Visualization(which, picks) => {
                let (id, query_parameters) = &visualizations[which.index(visualizations.len())];
                let pairs: Vec<(String, String)> = query_parameters
                    .iter()
                    .flat_map(|q| {
                        parameters
                            .iter()
                            .filter(move |d| d.ty == q.ty)
                            .map(move |d| (q.name.clone(), d.name.clone()))
                    })
                    .collect();
                let mappings = if pairs.is_empty() {
                    BTreeMap::new()
                } else {
                    picks
                        .iter()
                        .map(|p| pairs[p.index(pairs.len())].clone())
                        .collect()
                };
                (
                    WidgetKind::Visualization {
                        visualization_id: id.clone(),
                    },
                    mappings,
                )
            }
        };
        widgets.push(WidgetInput {
            kind,
            x: place_x,
            y,
            w,
            h,
            parameter_mappings: mappings,
        });
        x = place_x + w;
        shelf = shelf.max(h);
    }
    widgets
}

fn dashboard(
    visualizations: Vec<(String, Vec<ParameterDef>)>,
) -> impl Strategy<Value = DashboardInput> {
    (
        name(),
        prop::option::of(slug()),
        tags(),
        parameters(true),
        any::<bool>(),
        prop::collection::vec(
            (
                shown(),
                (
                    prop_oneof![1u32..=24, Just(24), Just(1)],
                    prop_oneof![4 => 1u32..=8, 1 => 1u32..=1000],
                    0u32..4,
                    0u32..3,
                ),
            ),
            0..=8,
        ),
    )
        .prop_map(move |(name, slug, tags, parameters, shared, widgets)| {
            let (shown, sizes): (Vec<_>, Vec<_>) = widgets.into_iter().unzip();
            let widgets = layout(shown, sizes, &parameters, &visualizations);
            DashboardInput {
                name,
                slug,
                tags,
                parameters,
                shared,
                widgets,
            }
        })
}

/// Whether `slug` follows the slug rule.
fn is_slug(slug: &str) -> bool {
    (1..=100).contains(&slug.len())
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
}

/// `d` as made from `input` by `env`'s admin.
fn same_dashboard(
    env: &Env,
    fx: &Fixtures,
    d: &Dashboard,
    input: &DashboardInput,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(&d.owner_id, &env.admin.user_id);
    prop_assert_eq!(&d.name, input.name.trim());
    match &input.slug {
        Some(slug) => prop_assert_eq!(&d.slug, slug),
        None => {
            prop_assert!(
                is_slug(&d.slug),
                "slug {:?} made from {:?}",
                d.slug,
                input.name
            );
            // Made from the name: its first ASCII letter or digit, in
            // lowercase, starts it; without one it is `dashboard`.
            let first = input
                .name
                .chars()
                .flat_map(char::to_lowercase)
                .find(char::is_ascii_alphanumeric);
            match first {
                Some(first) => prop_assert!(d.slug.starts_with(first), "{}", d.slug),
                None => prop_assert_eq!(&d.slug, "dashboard"),
            }
        }
    }
    same_tags(&d.tags, &input.tags)?;
    prop_assert_eq!(&d.parameters, &input.parameters);
    prop_assert_eq!(d.shared, input.shared);
    // Hidden placeholders in the input stand for nothing: left out.
    let given: Vec<&WidgetInput> = input
        .widgets
        .iter()
        .filter(|w| !matches!(w.kind, WidgetKind::Hidden {}))
        .collect();
    prop_assert_eq!(d.widgets.len(), given.len());
    let query_of = |id: &str| {
        [&fx.typed_viz, &fx.plain_viz]
            .into_iter()
            .find(|v| v.id == id)
            .map(|v| v.query_id.clone())
    };
    for (read, given) in d.widgets.iter().zip(given) {
        prop_assert_eq!(&read.kind, &given.kind);
        prop_assert_eq!(
            (read.x, read.y, read.w, read.h),
            (given.x, given.y, given.w, given.h)
        );
        prop_assert_eq!(&read.parameter_mappings, &given.parameter_mappings);
        let query = match &given.kind {
            WidgetKind::Visualization { visualization_id } => query_of(visualization_id),
            _ => None,
        };
        prop_assert_eq!(&read.query_id, &query);
    }
    Ok(())
}

fn dashboard_picture(d: &DashboardInput) -> Json {
    let widgets: Vec<Json> = d
        .widgets
        .iter()
        .map(|w| {
            let mut picture = serde_json::to_value(&w.kind).unwrap_or_default();
            if let Json::Object(o) = &mut picture {
                o.insert("x".into(), json!(w.x));
                o.insert("y".into(), json!(w.y));
                o.insert("w".into(), json!(w.w));
                o.insert("h".into(), json!(w.h));
                o.insert("parameter_mappings".into(), json!(w.parameter_mappings));
            }
            picture
        })
        .collect();
    json!({
        "name": d.name,
        "slug": d.slug,
        "tags": d.tags,
        "parameters": d.parameters,
        "shared": d.shared,
        "widgets": widgets,
    })
}

async fn dashboards_read_back_as_created_and_updated(env: Env) {
    let fixtures = Fixtures::new(&env).await;
    let (env, fx) = (&env, &fixtures);
    let dashboards = &env.services.dashboards;
    let admin = &env.admin;
    check(
        (
            dashboard(fx.visualizations()),
            dashboard(fx.visualizations()),
        ),
        |(input, change)| async move {
            fx.tidy(env).await?;
            let created = must("create", dashboards.create(admin, input.clone()).await)?;
            same_dashboard(env, fx, &created, &input)?;
            prop_assert_eq!(
                &must("get", dashboards.get(admin, &created.id).await)?,
                &created
            );
            let by_slug = must(
                "get by slug",
                dashboards.get_by_slug(admin, &created.slug).await,
            )?;
            prop_assert_eq!(&by_slug, &created);
            let changed = must(
                "update",
                dashboards
                    .update(admin, &created.id, created.revision, change.clone())
                    .await,
            )?;
            same_dashboard(env, fx, &changed, &change)?;
            prop_assert_eq!(changed.revision, created.revision + 1);
            prop_assert_eq!(
                &must("get", dashboards.get(admin, &created.id).await)?,
                &changed
            );
            Ok(())
        },
    );
}

/// The first widget that is not a hidden placeholder, made if there is
/// none (below the others).
fn placed(d: &mut DashboardInput, at: Index) -> usize {
    let placed: Vec<usize> = (0..d.widgets.len())
        .filter(|&i| !matches!(d.widgets[i].kind, WidgetKind::Hidden {}))
        .collect();
    if placed.is_empty() {
        d.widgets.push(WidgetInput {
            kind: WidgetKind::Text { text: "t".into() },
            x: 0,
            y: 5000,
            w: 4,
            h: 2,
            parameter_mappings: BTreeMap::new(),
        });
        return d.widgets.len() - 1;
    }
    placed[at.index(placed.len())]
}

/// Puts a fault into `d`; returns the field it breaks.
fn break_dashboard(
    d: &mut DashboardInput,
    fault: u8,
    at: Index,
    salt: u16,
    fx: &[(String, Vec<ParameterDef>)],
) -> String {
    match fault % 16 {
        0 => {
            let i = placed(d, at);
            let copy = WidgetInput {
                kind: WidgetKind::Text {
                    text: "over".into(),
                },
                parameter_mappings: BTreeMap::new(),
                ..d.widgets[i].clone()
            };
            d.widgets.push(copy);
            format!("widgets[{}]", d.widgets.len() - 1)
        }
        1 => {
            let i = placed(d, at);
            d.widgets[i].w = [0, 25, u32::MAX][usize::from(salt % 3)];
            format!("widgets[{i}].w")
        }
        2 => {
            let i = placed(d, at);
            d.widgets[i].h = [0, 1001, u32::MAX][usize::from(salt % 3)];
            format!("widgets[{i}].h")
        }
        3 => {
            let i = placed(d, at);
            d.widgets[i].x = 25 - d.widgets[i].w.min(24) + u32::from(salt % 3);
            format!("widgets[{i}].x")
        }
        4 => {
            let i = placed(d, at);
            d.widgets[i].y = [100_001, u32::MAX][usize::from(salt % 2)];
            format!("widgets[{i}].y")
        }
        5 => {
            d.widgets = (0..201)
                .map(|i| WidgetInput {
                    kind: WidgetKind::Text {
                        text: String::new(),
                    },
                    x: 0,
                    y: i,
                    w: 1,
                    h: 1,
                    parameter_mappings: BTreeMap::new(),
                })
                .collect();
            "widgets".into()
        }
        6 => {
            let i = placed(d, at);
            d.widgets[i].kind = WidgetKind::Text {
                text: "nul\u{0}".into(),
            };
            d.widgets[i].parameter_mappings.clear();
            format!("widgets[{i}].text")
        }
        7 => {
            let i = placed(d, at);
            d.widgets[i].kind = WidgetKind::Text { text: "t".into() };
            d.widgets[i]
                .parameter_mappings
                .insert("a".into(), "b".into());
            format!("widgets[{i}].parameter_mappings")
        }
        8 => {
            let i = placed(d, at);
            d.widgets[i].kind = WidgetKind::Visualization {
                visualization_id: "no-such-visualization".into(),
            };
            format!("widgets[{i}].visualization_id")
        }
        9 | 10 => {
            let i = placed(d, at);
            let (id, _) = &fx[0];
            d.widgets[i].kind = WidgetKind::Visualization {
                visualization_id: id.clone(),
            };
            // A query parameter that is not there, or a dashboard one
            // that is not there.
            let (query, dashboard) = if fault % 16 == 9 {
                (
                    "zz_not_a_query_parameter",
                    d.parameters.first().map_or("p", |p| p.name.as_str()),
                )
            } else {
                ("region", "zz_not_a_dashboard_parameter")
            };
            d.widgets[i]
                .parameter_mappings
                .insert(query.to_owned(), dashboard.to_owned());
            format!("widgets[{i}].parameter_mappings.{query}")
        }
        11 => {
            let i = placed(d, at);
            let (id, _) = &fx[0];
            d.widgets[i].kind = WidgetKind::Visualization {
                visualization_id: id.clone(),
            };
            // `region` is text; map it onto a date range.
            d.parameters.retain(|p| p.name != "zz_range");
            d.parameters
                .push(ParameterDef::new("zz_range", ParameterType::DateRange));
            d.widgets[i]
                .parameter_mappings
                .insert("region".into(), "zz_range".into());
            format!("widgets[{i}].parameter_mappings.region")
        }
        12 => {
            let long = "s".repeat(101);
            let bad =
                ["Bad Slug", "-lead", "trail-", "", "ümlaut", long.as_str()][usize::from(salt % 6)];
            d.slug = Some(bad.to_owned());
            "slug".into()
        }
        13 => {
            d.slug = Some(TAKEN_SLUG.into());
            "slug".into()
        }
        14 => {
            d.name = ["", " \t", "\u{7f}x"][usize::from(salt % 3)].into();
            "name".into()
        }
        _ => {
            d.parameters.push(ParameterDef {
                name: "bad name".into(),
                ty: ParameterType::Text,
                default: None,
                title: None,
            });
            format!("parameters[{}]", d.parameters.len() - 1)
        }
    }
}

fn judged_dashboard(
    visualizations: Vec<(String, Vec<ParameterDef>)>,
) -> impl Strategy<Value = Judged<DashboardInput>> {
    let fixtures = visualizations.clone();
    let broken = (dashboard(visualizations.clone()), faults()).prop_map(move |(mut d, faults)| {
        let broken = faults
            .into_iter()
            .map(|(fault, at, salt)| break_dashboard(&mut d, fault, at, salt, &fixtures))
            .collect();
        Judged {
            input: d,
            valid: false,
            broken,
        }
    });
    let ids: Vec<String> = visualizations.iter().map(|(id, _)| id.clone()).collect();
    let widget = (
        prop_oneof![
            any::<String>().prop_map(|text| WidgetKind::Text { text }),
            select(ids).prop_map(|visualization_id| WidgetKind::Visualization { visualization_id }),
            "\\PC{0,8}".prop_map(|visualization_id| WidgetKind::Visualization { visualization_id }),
            Just(WidgetKind::Hidden {}),
        ],
        0u32..30,
        prop_oneof![0u32..30, any::<u32>()],
        0u32..30,
        prop_oneof![0u32..10, 990u32..1010],
        prop::collection::btree_map("[a-z]{1,6}", "[a-z]{1,6}", 0..2),
    )
        .prop_map(|(kind, x, y, w, h, parameter_mappings)| WidgetInput {
            kind,
            x,
            y,
            w,
            h,
            parameter_mappings,
        });
    let arbitrary = (
        any::<String>(),
        prop::option::of("\\PC{0,12}"),
        prop::collection::vec("\\PC{0,6}", 0..3),
        prop::collection::vec(arbitrary_definition(), 0..3),
        prop::collection::vec(widget, 0..6),
    )
        .prop_map(|(name, slug, tags, parameters, widgets)| {
            anything(DashboardInput {
                name,
                slug,
                tags,
                parameters,
                shared: false,
                widgets,
            })
        });
    prop_oneof![
        1 => dashboard(visualizations).prop_map(valid),
        4 => broken,
        2 => arbitrary,
    ]
}

async fn dashboard_inputs_are_stored_or_refused_by_field(env: Env) {
    let fixtures = Fixtures::new(&env).await;
    let (env, fx) = (&env, &fixtures);
    let dashboards = &env.services.dashboards;
    let admin = &env.admin;
    check(judged_dashboard(fx.visualizations()), |case| async move {
        fx.tidy(env).await?;
        let picture = dashboard_picture(&case.input);
        let before = must("list", dashboards.list(admin, &all()).await)?.items;
        match judge(
            dashboards.create(admin, case.input.clone()).await,
            &case,
            &picture,
        )? {
            Some(d) => {
                same_dashboard(env, fx, &d, &case.input)?;
                must("delete", dashboards.delete(admin, &d.id).await)?;
            }
            None => prop_assert_eq!(
                &must("list", dashboards.list(admin, &all()).await)?.items,
                &before,
                "nothing was written"
            ),
        }
        let base = must(
            "create",
            dashboards
                .create(
                    admin,
                    DashboardInput {
                        name: "base".into(),
                        slug: Some("zz-base".into()),
                        ..DashboardInput::default()
                    },
                )
                .await,
        )?;
        let outcome = dashboards
            .update(admin, &base.id, base.revision, case.input.clone())
            .await;
        match judge(outcome, &case, &picture)? {
            Some(d) => same_dashboard(env, fx, &d, &case.input)?,
            None => prop_assert_eq!(
                &must("get", dashboards.get(admin, &base.id).await)?,
                &base,
                "nothing was written"
            ),
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// Canvases
// ---------------------------------------------------------------------------

/// What canvas nodes may link to.
#[derive(Debug, Clone)]
struct Targets {
    queries: Vec<String>,
    visualizations: Vec<String>,
    dashboards: Vec<String>,
}

fn node_kind(targets: Targets) -> impl Strategy<Value = NodeKind> {
    prop_oneof![
        3 => text(100_000).prop_map(|text| NodeKind::Text { text }),
        1 => select(targets.queries).prop_map(|id| NodeKind::Query { query_id: Some(id) }),
        1 => select(targets.visualizations)
            .prop_map(|id| NodeKind::Visualization { visualization_id: Some(id) }),
        1 => select(targets.dashboards).prop_map(|id| NodeKind::Dashboard { dashboard_id: Some(id) }),
    ]
}

fn coordinate() -> impl Strategy<Value = f64> {
    prop_oneof![
        -1.0e7..=1.0e7f64,
        select(vec![0.0, -0.0, 1.0e7, -1.0e7, 5e-324, -2.5, 1e-300]),
    ]
}

fn extent() -> impl Strategy<Value = f64> {
    prop_oneof![
        1e-3..=1.0e7f64,
        select(vec![1.0e7, 5e-324, f64::MIN_POSITIVE, 1.0, 0.5]),
    ]
}

fn canvas(targets: Targets) -> impl Strategy<Value = CanvasInput> {
    (
        name(),
        any::<bool>(),
        prop::collection::btree_set("[A-Za-z0-9_-]{1,64}", 0..=8),
        prop::collection::vec(
            (
                node_kind(targets),
                coordinate(),
                coordinate(),
                extent(),
                extent(),
            ),
            8,
        ),
        prop::collection::btree_set("[A-Za-z0-9_-]{1,64}", 0..=10),
        prop::collection::vec(
            (any::<Index>(), any::<Index>(), prop::option::of(text(200))),
            10,
        ),
    )
        .prop_map(|(name, shared, node_ids, kinds, edge_ids, ends)| {
            let nodes: Vec<CanvasNode> = node_ids
                .into_iter()
                .zip(kinds)
                .map(|(id, (kind, x, y, w, h))| CanvasNode {
                    id,
                    kind,
                    x,
                    y,
                    w,
                    h,
                })
                .collect();
            let edges = if nodes.len() < 2 {
                Vec::new()
            } else {
                edge_ids
                    .into_iter()
                    .zip(ends)
                    .map(|(id, (from, to, label))| {
                        let from = from.index(nodes.len());
                        // Any other node.
                        let to = (from + 1 + to.index(nodes.len() - 1)) % nodes.len();
                        CanvasEdge {
                            id,
                            from: nodes[from].id.clone(),
                            to: nodes[to].id.clone(),
                            label,
                        }
                    })
                    .collect()
            };
            CanvasInput {
                name,
                shared,
                nodes,
                edges,
            }
        })
}

/// Adds hidden placeholders to `c`'s nodes (the services ignore them).
fn with_placeholders(mut c: CanvasInput, ids: Vec<String>) -> CanvasInput {
    for id in ids {
        c.nodes.push(CanvasNode {
            id,
            kind: NodeKind::Hidden {},
            x: 0.0,
            y: 0.0,
            w: 1.0,
            h: 1.0,
        });
    }
    c
}

fn canvas_with_placeholders(targets: Targets) -> impl Strategy<Value = CanvasInput> {
    (canvas(targets), prop::collection::vec("[a-z]{1,3}!", 0..2))
        .prop_map(|(c, ids)| with_placeholders(c, ids))
}

/// `c` as made from `input` by `env`'s admin: its nodes and edges as
/// given, whatever their order (hidden placeholders left out).
fn same_canvas(env: &Env, c: &Canvas, input: &CanvasInput) -> Result<(), TestCaseError> {
    prop_assert_eq!(&c.owner_id, &env.admin.user_id);
    prop_assert_eq!(&c.name, input.name.trim());
    prop_assert_eq!(c.shared, input.shared);
    let mut nodes = c.nodes.clone();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    let mut given: Vec<CanvasNode> = input
        .nodes
        .iter()
        .filter(|n| !matches!(n.kind, NodeKind::Hidden {}))
        .cloned()
        .collect();
    given.sort_by(|a, b| a.id.cmp(&b.id));
    prop_assert_eq!(&nodes, &given);
    // Bit for bit, but for the sign of zero.
    for (read, given) in nodes.iter().zip(&given) {
        for (r, g) in [
            (read.x, given.x),
            (read.y, given.y),
            (read.w, given.w),
            (read.h, given.h),
        ] {
            prop_assert!(
                r.to_bits() == g.to_bits() || (r == 0.0 && g == 0.0),
                "{r:e} read for {g:e}"
            );
        }
    }
    let mut edges = c.edges.clone();
    edges.sort_by(|a, b| a.id.cmp(&b.id));
    let mut given = input.edges.clone();
    given.sort_by(|a, b| a.id.cmp(&b.id));
    prop_assert_eq!(&edges, &given);
    Ok(())
}

fn canvas_picture(c: &CanvasInput) -> Json {
    json!({
        "name": c.name,
        "shared": c.shared,
        "nodes": c.nodes.iter().map(|n| {
            // Non-finite numbers have no JSON form: the field is there all
            // the same.
            let mut p = serde_json::to_value(&n.kind).unwrap_or_default();
            if let Json::Object(o) = &mut p {
                o.insert("id".into(), json!(n.id));
                for (k, v) in [("x", n.x), ("y", n.y), ("w", n.w), ("h", n.h)] {
                    o.insert(k.into(), json!(v.to_string()));
                }
                for link in ["query_id", "visualization_id", "dashboard_id"] {
                    if let Some(Json::Null) = o.get(link) {
                        o.insert(link.into(), json!(""));
                    }
                }
            }
            p
        }).collect::<Vec<_>>(),
        "edges": c.edges,
    })
}

async fn canvases_read_back_as_created_and_updated(env: Env) {
    let fixtures = Fixtures::new(&env).await;
    let (env, fx) = (&env, &fixtures);
    let canvases = &env.services.canvases;
    let admin = &env.admin;
    check(
        (
            canvas_with_placeholders(fx.targets()),
            canvas_with_placeholders(fx.targets()),
        ),
        |(input, change)| async move {
            fx.tidy(env).await?;
            let created = must("create", canvases.create(admin, input.clone()).await)?;
            same_canvas(env, &created, &input)?;
            prop_assert_eq!(
                &must("get", canvases.get(admin, &created.id).await)?,
                &created
            );
            let changed = must(
                "update",
                canvases
                    .update(admin, &created.id, created.revision, change.clone())
                    .await,
            )?;
            same_canvas(env, &changed, &change)?;
            prop_assert_eq!(changed.revision, created.revision + 1);
            prop_assert_eq!(
                &must("get", canvases.get(admin, &created.id).await)?,
                &changed
            );
            Ok(())
        },
    );
}

/// A node of `c` that is not a placeholder, made if there is none.
fn node(c: &mut CanvasInput, at: Index) -> usize {
    let real: Vec<usize> = (0..c.nodes.len())
        .filter(|&i| !matches!(c.nodes[i].kind, NodeKind::Hidden {}))
        .collect();
    if real.is_empty() {
        c.nodes.push(CanvasNode {
            id: "made".into(),
            kind: NodeKind::Text {
                text: String::new(),
            },
            x: 0.0,
            y: 0.0,
            w: 1.0,
            h: 1.0,
        });
        return c.nodes.len() - 1;
    }
    real[at.index(real.len())]
}

/// An edge of `c` between two of its nodes, made if there is none.
fn edge(c: &mut CanvasInput, at: Index) -> usize {
    if c.edges.is_empty() {
        let a = node(c, at);
        c.nodes.push(CanvasNode {
            id: "other-node".into(),
            kind: NodeKind::Text {
                text: String::new(),
            },
            x: 0.0,
            y: 0.0,
            w: 1.0,
            h: 1.0,
        });
        c.edges.push(CanvasEdge {
            id: "made-edge".into(),
            from: c.nodes[a].id.clone(),
            to: "other-node".into(),
            label: None,
        });
        return 0;
    }
    at.index(c.edges.len())
}

/// Puts a fault into `c`; returns the field it breaks.
fn break_canvas(c: &mut CanvasInput, fault: u8, at: Index, salt: u16) -> String {
    match fault % 15 {
        0 => {
            let i = node(c, at);
            let long = "n".repeat(65);
            let bad = ["", "a b", "é", "a/b", long.as_str()][usize::from(salt % 5)];
            // Edges keep pointing at the old id: they are broken too.
            c.edges.clear();
            c.nodes[i].id = bad.into();
            format!("nodes[{i}].id")
        }
        1 => {
            let i = node(c, at);
            let copy = CanvasNode {
                kind: NodeKind::Text {
                    text: "twin".into(),
                },
                ..c.nodes[i].clone()
            };
            c.nodes.push(copy);
            format!("nodes[{}].id", c.nodes.len() - 1)
        }
        2 => {
            let i = node(c, at);
            let bad = [f64::NAN, f64::INFINITY, -f64::INFINITY, 1.0e7 + 1.0, -2.0e7]
                [usize::from(salt % 5)];
            if salt.is_multiple_of(2) {
                c.nodes[i].x = bad;
                format!("nodes[{i}].x")
            } else {
                c.nodes[i].y = bad;
                format!("nodes[{i}].y")
            }
        }
        3 => {
            let i = node(c, at);
            let bad =
                [0.0, -0.0, -1.0, f64::NAN, f64::INFINITY, 1.0e7 + 1.0][usize::from(salt % 6)];
            if salt.is_multiple_of(2) {
                c.nodes[i].w = bad;
                format!("nodes[{i}].w")
            } else {
                c.nodes[i].h = bad;
                format!("nodes[{i}].h")
            }
        }
        4 => {
            let i = node(c, at);
            c.nodes[i].kind = NodeKind::Text {
                text: ["\u{0}", "a\u{8}b", "\r\n"][usize::from(salt % 3)].into(),
            };
            format!("nodes[{i}].text")
        }
        5 => {
            let i = node(c, at);
            let (kind, field) = match salt % 3 {
                0 => (NodeKind::Query { query_id: None }, "query_id"),
                1 => (
                    NodeKind::Visualization {
                        visualization_id: None,
                    },
                    "visualization_id",
                ),
                _ => (NodeKind::Dashboard { dashboard_id: None }, "dashboard_id"),
            };
            c.nodes[i].kind = kind;
            format!("nodes[{i}].{field}")
        }
        6 => {
            let i = node(c, at);
            let missing = Some("no-such-object".to_owned());
            let (kind, field) = match salt % 3 {
                0 => (NodeKind::Query { query_id: missing }, "query_id"),
                1 => (
                    NodeKind::Visualization {
                        visualization_id: missing,
                    },
                    "visualization_id",
                ),
                _ => (
                    NodeKind::Dashboard {
                        dashboard_id: missing,
                    },
                    "dashboard_id",
                ),
            };
            c.nodes[i].kind = kind;
            format!("nodes[{i}].{field}")
        }
        7 => {
            let i = edge(c, at);
            c.edges[i].id = ["", "e e", "ß"][usize::from(salt % 3)].into();
            format!("edges[{i}].id")
        }
        8 => {
            let i = edge(c, at);
            let copy = c.edges[i].clone();
            c.edges.push(copy);
            format!("edges[{}].id", c.edges.len() - 1)
        }
        9 => {
            let i = edge(c, at);
            if salt.is_multiple_of(2) {
                c.edges[i].to = "no-such-node".into();
                format!("edges[{i}].to")
            } else {
                c.edges[i].from = "no-such-node".into();
                format!("edges[{i}].from")
            }
        }
        10 => {
            let i = edge(c, at);
            c.edges[i].to = c.edges[i].from.clone();
            format!("edges[{i}].to")
        }
        11 => {
            let i = edge(c, at);
            c.edges[i].label =
                Some(["l".repeat(201), "tab\u{b}".into()][usize::from(salt % 2)].clone());
            format!("edges[{i}].label")
        }
        12 => {
            c.edges.clear();
            c.nodes = (0..501)
                .map(|i| CanvasNode {
                    id: format!("n{i}"),
                    kind: NodeKind::Text {
                        text: String::new(),
                    },
                    x: 0.0,
                    y: 0.0,
                    w: 1.0,
                    h: 1.0,
                })
                .collect();
            "nodes".into()
        }
        13 => {
            let i = edge(c, at);
            let template = c.edges[i].clone();
            c.edges = (0..2001)
                .map(|n| CanvasEdge {
                    id: format!("e{n}"),
                    ..template.clone()
                })
                .collect();
            "edges".into()
        }
        _ => {
            c.name = ["", "\n", "a\u{0}"][usize::from(salt % 3)].into();
            "name".into()
        }
    }
}

fn judged_canvas(targets: Targets) -> impl Strategy<Value = Judged<CanvasInput>> {
    let broken = (canvas(targets.clone()), faults()).prop_map(|(mut c, faults)| {
        let broken = faults
            .into_iter()
            .map(|(fault, at, salt)| break_canvas(&mut c, fault, at, salt))
            .collect();
        Judged {
            input: c,
            valid: false,
            broken,
        }
    });
    let ids = prop::collection::vec(prop_oneof!["[a-c]", "\\PC{0,3}"], 0..5);
    let arbitrary = (
        any::<String>(),
        ids.clone(),
        prop::collection::vec(
            (
                prop_oneof![
                    node_kind(targets.clone()).boxed(),
                    "\\PC{0,5}"
                        .prop_map(|id| NodeKind::Query { query_id: Some(id) })
                        .boxed(),
                    Just(NodeKind::Dashboard { dashboard_id: None }).boxed(),
                    Just(NodeKind::Hidden {}).boxed(),
                ],
                any::<f64>(),
                any::<f64>(),
                any::<f64>(),
                any::<f64>(),
            ),
            5,
        ),
        prop::collection::vec(
            (
                prop_oneof!["[a-c]", "\\PC{0,3}"],
                "[a-c]",
                "[a-c]",
                prop::option::of(any::<String>()),
            ),
            0..4,
        ),
    )
        .prop_map(|(name, ids, kinds, edges)| {
            anything(CanvasInput {
                name,
                shared: false,
                nodes: ids
                    .into_iter()
                    .zip(kinds)
                    .map(|(id, (kind, x, y, w, h))| CanvasNode {
                        id,
                        kind,
                        x,
                        y,
                        w,
                        h,
                    })
                    .collect(),
                edges: edges
                    .into_iter()
                    .map(|(id, from, to, label)| CanvasEdge {
                        id,
                        from,
                        to,
                        label,
                    })
                    .collect(),
            })
        });
    prop_oneof![
        1 => canvas_with_placeholders(targets).prop_map(valid),
        4 => broken,
        2 => arbitrary,
    ]
}

async fn canvas_inputs_are_stored_or_refused_by_field(env: Env) {
    let fixtures = Fixtures::new(&env).await;
    let (env, fx) = (&env, &fixtures);
    let canvases = &env.services.canvases;
    let admin = &env.admin;
    check(judged_canvas(fx.targets()), |case| async move {
        fx.tidy(env).await?;
        let picture = canvas_picture(&case.input);
        let before = must("list", canvases.list(admin, &all()).await)?.items;
        match judge(
            canvases.create(admin, case.input.clone()).await,
            &case,
            &picture,
        )? {
            Some(c) => same_canvas(env, &c, &case.input)?,
            None => prop_assert_eq!(
                &must("list", canvases.list(admin, &all()).await)?.items,
                &before,
                "nothing was written"
            ),
        }
        let base = must(
            "create",
            canvases
                .create(
                    admin,
                    CanvasInput {
                        name: "base".into(),
                        ..CanvasInput::default()
                    },
                )
                .await,
        )?;
        let outcome = canvases
            .update(admin, &base.id, base.revision, case.input.clone())
            .await;
        match judge(outcome, &case, &picture)? {
            Some(c) => same_canvas(env, &c, &case.input)?,
            None => prop_assert_eq!(
                &must("get", canvases.get(admin, &base.id).await)?,
                &base,
                "nothing was written"
            ),
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// Schedules
// ---------------------------------------------------------------------------

/// A cron expression that fires at most once a minute: 5 fields, or 6
/// with seconds, with white space around it now and then.
fn cron() -> impl Strategy<Value = String> {
    let minute = prop_oneof![
        (0u32..60).prop_map(|m| m.to_string()),
        Just("*".to_owned()),
        select(vec!["*/15", "0,30", "5-10", "59"]).prop_map(str::to_owned),
    ];
    let hour = prop_oneof![
        (0u32..24).prop_map(|h| h.to_string()),
        select(vec!["*", "*/2", "9-17", "0,12", "2"]).prop_map(str::to_owned),
    ];
    let day = select(vec!["*", "1", "15", "28", "1,15", "L", "31"]);
    let month = select(vec!["*", "1", "*/3", "6-8", "12", "JAN"]);
    let weekday = select(vec!["*", "1-5", "0", "6", "MON", "SUN,SAT"]);
    let fields = (minute, hour, day, month, weekday)
        .prop_map(|(m, h, d, mo, w)| format!("{m} {h} {d} {mo} {w}"));
    let seconds = (0u32..60, fields.clone()).prop_map(|(s, f)| format!("{s} {f}"));
    (
        prop_oneof![3 => fields, 1 => seconds],
        select(vec!["", " ", "\t"]),
        select(vec!["", " ", "\n"]),
    )
        .prop_map(|(cron, before, after)| format!("{before}{cron}{after}"))
}

fn timezone() -> impl Strategy<Value = String> {
    select(vec![
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Asia/Kolkata",
        "Australia/Lord_Howe",
        "Pacific/Chatham",
        "America/St_Johns",
        "Etc/GMT+12",
        "Pacific/Kiritimati",
    ])
    .prop_map(str::to_owned)
}

/// Values for the fixture query: those without a default always, the
/// others now and then.
fn schedule_values() -> impl Strategy<Value = ParameterValues> {
    let defs = typed_parameters();
    let strategies: Vec<BoxedStrategy<Option<(String, Json)>>> = defs
        .into_iter()
        .map(|def| {
            let name = def.name.clone();
            let value = value_of(&def.ty).prop_map(move |v| (name.clone(), v));
            if def.default.is_some() {
                prop::option::of(value).boxed()
            } else {
                value.prop_map(Some).boxed()
            }
        })
        .collect();
    strategies.prop_map(|values| values.into_iter().flatten().collect())
}

fn schedule(query_id: String) -> impl Strategy<Value = ScheduleInput> {
    (cron(), timezone(), schedule_values(), any::<bool>()).prop_map(
        move |(cron, timezone, parameters, enabled)| ScheduleInput {
            query_id: query_id.clone(),
            cron,
            timezone,
            parameters,
            enabled,
        },
    )
}

/// `s` as made from `input` by `env`'s admin, at a time after `since`
/// (µs).
fn same_schedule(
    env: &Env,
    s: &Schedule,
    input: &ScheduleInput,
    since: i64,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(&s.owner_id, &env.admin.user_id);
    prop_assert_eq!(&s.query_id, &input.query_id);
    prop_assert_eq!(&s.cron, input.cron.trim());
    prop_assert_eq!(&s.timezone, &input.timezone);
    prop_assert_eq!(&s.parameters, &input.parameters);
    prop_assert_eq!(s.enabled, input.enabled);
    prop_assert_eq!(
        s.next_run_at.is_some(),
        input.enabled,
        "an enabled schedule fires next"
    );
    if let Some(next) = s.next_run_at {
        prop_assert!(next > since, "the next fire {next} is after {since}");
    }
    prop_assert_eq!(s.last_run_at, None);
    Ok(())
}

fn schedule_picture(s: &ScheduleInput) -> Json {
    json!({
        "query_id": s.query_id,
        "cron": s.cron,
        "timezone": s.timezone,
        "parameters": s.parameters,
        "enabled": s.enabled,
    })
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

async fn schedules_read_back_as_created_and_updated(env: Env) {
    let fixtures = Fixtures::new(&env).await;
    let (env, fx) = (&env, &fixtures);
    let schedules = &env.services.schedules;
    let admin = &env.admin;
    let query = fx.typed.id.clone();
    check(
        (schedule(query.clone()), schedule(query)),
        |(input, change)| async move {
            fx.tidy(env).await?;
            let since = now_micros();
            let created = must("create", schedules.create(admin, input.clone()).await)?;
            same_schedule(env, &created, &input, since)?;
            prop_assert_eq!(
                &must("get", schedules.get(admin, &created.id).await)?,
                &created
            );
            let changed = must(
                "update",
                schedules
                    .update(admin, &created.id, created.revision, change.clone())
                    .await,
            )?;
            same_schedule(env, &changed, &change, since)?;
            prop_assert_eq!(changed.revision, created.revision + 1);
            prop_assert_eq!(
                &must("get", schedules.get(admin, &created.id).await)?,
                &changed
            );
            Ok(())
        },
    );
}

/// Puts a fault into `s`; returns the field it breaks.
fn break_schedule(s: &mut ScheduleInput, fault: u8, salt: u16) -> String {
    match fault % 7 {
        0 => {
            s.cron = [
                "",
                "* * * *",
                "61 * * * *",
                "* * * * * * *",
                "not a cron",
                "0 0 30 2 *",
                "*/10 * * * * *",
                "* * * * * *",
            ][usize::from(salt % 8)]
            .into();
            "cron".into()
        }
        1 => {
            s.timezone =
                ["Mars/Olympus", "", "Europe/Berlin ", "GMT+25"][usize::from(salt % 4)].into();
            "timezone".into()
        }
        2 => {
            s.query_id = "no-such-query".into();
            "query_id".into()
        }
        3 => {
            s.parameters.insert("zz_unknown".into(), json!(1));
            "parameters.zz_unknown".into()
        }
        4 => {
            let (name, value) = [
                ("n", json!("ten")),
                ("tier", json!("bronze")),
                ("ids", json!([])),
                ("period", json!("2024-05-02..2024-05-01")),
                ("region", json!(5)),
                ("flag", json!("maybe")),
            ][usize::from(salt % 6)]
            .clone();
            s.parameters.insert(name.into(), value);
            format!("parameters.{name}")
        }
        5 => {
            let name = ["region", "period", "tier", "ids"][usize::from(salt % 4)];
            s.parameters.remove(name);
            format!("parameters.{name}")
        }
        _ => {
            s.cron = ["@daily", "@hourly", "@weekly"][usize::from(salt % 3)].into();
            "cron".into()
        }
    }
}

/// Cron expressions of any kind: valid ones, shorthands, long lists, and
/// text.
fn any_cron() -> impl Strategy<Value = String> {
    prop_oneof![
        cron(),
        select(vec![
            "@daily",
            "@hourly",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually",
            "@midnight"
        ])
        .prop_map(str::to_owned),
        // Every minute of every hour, spelled out: far over 200
        // characters.
        Just(format!(
            "{} {} * * *",
            (0..60).map(|m| m.to_string()).collect::<Vec<_>>().join(","),
            (0..24).map(|h| h.to_string()).collect::<Vec<_>>().join(",")
        )),
        "\\PC{0,20}",
    ]
}

fn judged_schedule(query_id: String) -> impl Strategy<Value = Judged<ScheduleInput>> {
    let query_for_valid = query_id.clone();
    let broken = (schedule(query_id.clone()), faults()).prop_map(|(mut s, faults)| {
        let broken = faults
            .into_iter()
            .map(|(fault, _, salt)| break_schedule(&mut s, fault, salt))
            .collect();
        Judged {
            input: s,
            valid: false,
            broken,
        }
    });
    let arbitrary = (
        any_cron(),
        prop_oneof![timezone(), "\\PC{0,12}"],
        prop_oneof![
            schedule_values(),
            prop::collection::btree_map("[a-z]{1,6}", any::<i32>().prop_map(Json::from), 0..3),
        ],
        any::<bool>(),
    )
        .prop_map(move |(cron, timezone, parameters, enabled)| {
            anything(ScheduleInput {
                query_id: query_id.clone(),
                cron,
                timezone,
                parameters,
                enabled,
            })
        });
    prop_oneof![
        1 => schedule(query_for_valid).prop_map(valid),
        4 => broken,
        2 => arbitrary,
    ]
}

async fn schedule_inputs_are_stored_or_refused_by_field(env: Env) {
    let fixtures = Fixtures::new(&env).await;
    let (env, fx) = (&env, &fixtures);
    let schedules = &env.services.schedules;
    let admin = &env.admin;
    check(judged_schedule(fx.typed.id.clone()), |case| async move {
        fx.tidy(env).await?;
        let picture = schedule_picture(&case.input);
        let before = must("list", schedules.list(admin, &all()).await)?.items;
        let since = now_micros();
        match judge(
            schedules.create(admin, case.input.clone()).await,
            &case,
            &picture,
        )? {
            Some(s) => {
                same_schedule(env, &s, &case.input, since)?;
                must("delete", schedules.delete(admin, &s.id).await)?;
            }
            None => prop_assert_eq!(
                &must("list", schedules.list(admin, &all()).await)?.items,
                &before,
                "nothing was written"
            ),
        }
        let base = must(
            "create",
            schedules
                .create(
                    admin,
                    super::schedule(&fx.plain.id, "0 6 * * *", "UTC", ParameterValues::new()),
                )
                .await,
        )?;
        let outcome = schedules
            .update(admin, &base.id, base.revision, case.input.clone())
            .await;
        match judge(outcome, &case, &picture)? {
            Some(s) => same_schedule(env, &s, &case.input, since)?,
            None => prop_assert_eq!(
                &must("get", schedules.get(admin, &base.id).await)?,
                &base,
                "nothing was written"
            ),
        }
        Ok(())
    });
}
