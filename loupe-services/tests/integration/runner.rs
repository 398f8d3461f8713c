//! The runner and the scheduler over the metadata queue, on both backends:
//! results stored, cache hits and joins, concurrency limits, retries only
//! of what may pass, cancellation, schedulers racing, retention.

use std::collections::BTreeMap;
use std::time::Duration;

use loupe_core::{PageRequest, ParameterDef, ParameterType, ParameterValues, ResultId};
use loupe_services::meta::MetadataStore;
use loupe_services::runner::{Retention, Runner, RunnerConfig, Scheduler};
use loupe_services::{
    Actor, DashboardInput, DatasourceInput, RunStatus, ScheduleInput, StartKind, Started,
};
use serde_json::json;

use super::{Env, n, on_both, schedule, shows, widget};

on_both!(
    a_run_goes_from_queued_to_a_stored_result,
    recent_results_are_reused_and_identical_runs_joined,
    claims_respect_datasource_and_user_limits,
    fifty_concurrent_submissions_stay_within_limits,
    only_retriable_failures_are_retried_with_backoff,
    interactive_runs_go_before_scheduled_ones,
    queued_runs_cancel_at_once,
    two_schedulers_fire_each_occurrence_once,
    retention_keeps_the_latest_result_of_each_saved_query_and_schedule,
    retention_by_default_deletes_old_results_tokens_and_audit_events,
);

fn config() -> RunnerConfig {
    RunnerConfig {
        workers: 4,
        poll: Duration::from_millis(50),
        check_every: Duration::from_millis(100),
        backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(1),
        ..RunnerConfig::default()
    }
}

/// Starts query `id` with `values` as `actor`, reusing a result up to
/// `max_age` old.
async fn start(
    env: &Env,
    actor: &Actor,
    id: &str,
    values: ParameterValues,
    max_age: Option<Duration>,
) -> Started {
    let runs = &env.services.runs;
    runs.start_query(actor, id, &values, max_age).await.unwrap()
}

fn runner(env: &Env, config: RunnerConfig) -> Runner {
    Runner::new(&env.services, env.results.clone(), config)
}

/// A saved query with an integer parameter, so values make distinct runs.
async fn numbered_query(env: &Env) -> loupe_services::Query {
    let sql = "select id, quantity from orders where quantity >= {{ n }} order by id";
    let n = ParameterDef::new("n", ParameterType::Integer).with_default(json!(1));
    env.editor_query("Orders over", sql, vec![n]).await
}

async fn a_run_goes_from_queued_to_a_stored_result(env: Env) {
    let s = &env.services;
    let query = numbered_query(&env).await;
    let started = start(&env, &env.viewer, &query.id, n(4), None).await;
    assert_eq!(
        (started.how, started.run.status),
        (StartKind::Queued, RunStatus::Queued)
    );
    assert_eq!(runner(&env, config()).run_once().await.unwrap(), 1);

    let run = s.runs.get(&env.viewer, &started.run.id).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error_message);
    assert_eq!(run.attempts, 1);
    assert!(
        run.started_at.unwrap() >= run.queued_at
            && run.finished_at.unwrap() >= run.started_at.unwrap()
    );
    let location = ResultId::parse(run.result_location.as_deref().unwrap()).unwrap();
    let page = env
        .results
        .read_page(&location, &PageRequest::new(0, 1000))
        .await
        .unwrap();
    assert_eq!(Some(i64::try_from(page.total_rows).unwrap()), run.rows);
    assert!(run.rows.unwrap() > 0 && run.bytes.unwrap() > 0);
    // Nothing left to claim.
    assert_eq!(runner(&env, config()).run_once().await.unwrap(), 0);

    // A failing statement fails the run with the datasource's error.
    let bad = s
        .runs
        .enqueue_sql(&env.editor, &env.sample.id, "select * from nowhere")
        .await
        .unwrap();
    runner(&env, config()).run_once().await.unwrap();
    let bad = s.runs.get(&env.editor, &bad.id).await.unwrap();
    assert_eq!(bad.status, RunStatus::Failed);
    assert!(
        bad.error_message.as_deref().unwrap().contains("nowhere"),
        "{bad:?}"
    );
    assert!(bad.result_location.is_none());
}

async fn recent_results_are_reused_and_identical_runs_joined(env: Env) {
    let s = &env.services;
    let query = numbered_query(&env).await;
    let within = |seconds| Some(Duration::from_secs(seconds));
    let first = start(&env, &env.viewer, &query.id, n(3), within(60)).await;
    assert_eq!(first.how, StartKind::Queued);
    // While it waits, the same statement joins it, even from someone else.
    let joined = start(&env, &env.editor, &query.id, n(3), None).await;
    assert_eq!(
        (joined.how, joined.run.id.as_str()),
        (StartKind::Joined, first.run.id.as_str())
    );
    // Defaults make the same statement as the explicit value.
    let other = start(&env, &env.viewer, &query.id, ParameterValues::new(), None).await;
    assert_eq!(other.how, StartKind::Queued);
    assert_ne!(other.run.id, first.run.id);
    let same_as_default = start(&env, &env.viewer, &query.id, n(1), None).await;
    assert_eq!(
        (same_as_default.how, same_as_default.run.id),
        (StartKind::Joined, other.run.id.clone())
    );
    runner(&env, config()).run_once().await.unwrap();

    let hit = start(&env, &env.viewer, &query.id, n(3), within(60)).await;
    assert_eq!(
        (hit.how, hit.run.id.as_str()),
        (StartKind::Cached, first.run.id.as_str())
    );
    assert_eq!(hit.run.cache_hits, 1);
    // Without max_age, or once the result is older, it runs again.
    let fresh = start(&env, &env.viewer, &query.id, n(3), None).await;
    assert_eq!(fresh.how, StartKind::Queued);
    runner(&env, config()).run_once().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = start(&env, &env.viewer, &query.id, n(3), within(1)).await;
    assert_eq!(stale.how, StartKind::Queued);

    // Many starts of one statement at once make one run.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let s = s.clone();
        let actor = env.viewer.clone();
        let id = query.id.clone();
        tasks.push(tokio::spawn(async move {
            s.runs
                .start_query(&actor, &id, &n(5), None)
                .await
                .unwrap()
                .run
                .id
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
}

async fn claims_respect_datasource_and_user_limits(env: Env) {
    let query = numbered_query(&env).await;
    for value in 0..4 {
        env.enqueue(&env.viewer, &query.id, &n(value)).await;
    }
    for value in 10..12 {
        env.enqueue(&env.editor, &query.id, &n(value)).await;
    }
    // Room for 10, but 3 per datasource and 2 per user: a claim takes 3,
    // at most 2 of them the viewer's.
    let limited = RunnerConfig {
        workers: 10,
        per_datasource: 3,
        per_user: 2,
        ..config()
    };
    assert_eq!(runner(&env, limited.clone()).run_once().await.unwrap(), 3);
    assert_eq!(runner(&env, limited.clone()).run_once().await.unwrap(), 3);
    assert_eq!(runner(&env, limited).run_once().await.unwrap(), 0);
}

async fn fifty_concurrent_submissions_stay_within_limits(env: Env) {
    let s = &env.services;
    let query = numbered_query(&env).await;
    let handle = runner(
        &env,
        RunnerConfig {
            workers: 8,
            per_datasource: 2,
            ..config()
        },
    )
    .start();
    let mut tasks = Vec::new();
    for value in 0..50 {
        let s = s.clone();
        let actor = if value % 2 == 0 {
            env.viewer.clone()
        } else {
            env.editor.clone()
        };
        let id = query.id.clone();
        tasks.push(tokio::spawn(async move {
            s.runs
                .enqueue_query(&actor, &id, &n(value))
                .await
                .unwrap()
                .id
        }));
    }
    let mut most_running = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (running,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM runs WHERE status = 'running'")
                .fetch_one(env.store.pool())
                .await
                .unwrap();
        most_running = most_running.max(running);
        let (done,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM runs WHERE status = 'succeeded'")
                .fetch_one(env.store.pool())
                .await
                .unwrap();
        if done == 50 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {done} of 50 runs finished"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    handle.shutdown().await;
    assert!(
        most_running <= 2,
        "{most_running} runs of one datasource ran at once; the limit is 2"
    );
}

async fn only_retriable_failures_are_retried_with_backoff(env: Env) {
    let s = &env.services;
    // Nothing listens on port 1: connection refused, which may pass.
    let mut options = serde_json::Map::new();
    for (key, value) in [
        ("host", json!("127.0.0.1")),
        ("port", json!(1)),
        ("user", json!("nobody")),
        ("database", json!("db")),
        ("sslmode", json!("disable")),
    ] {
        options.insert(key.into(), value);
    }
    let down = s
        .datasources
        .create(
            &env.admin,
            DatasourceInput {
                name: "down".into(),
                kind: "postgres".into(),
                options,
            },
        )
        .await
        .unwrap();
    let run = s
        .runs
        .enqueue_sql(&env.admin, &down.id, "select 1")
        .await
        .unwrap();
    let runner = runner(
        &env,
        RunnerConfig {
            max_attempts: 3,
            ..config()
        },
    );

    assert_eq!(runner.run_once().await.unwrap(), 1);
    let after_one = s.runs.get(&env.admin, &run.id).await.unwrap();
    assert_eq!(
        (after_one.status, after_one.attempts),
        (RunStatus::Queued, 1)
    );
    assert_eq!(
        after_one.error_code.as_deref(),
        Some("datasource.connection_refused")
    );
    // It waits out its backoff (0.15 to 0.25 s) before the next attempt.
    assert_eq!(
        runner.run_once().await.unwrap(),
        0,
        "claimed again before its backoff"
    );
    let (not_before,): (i64,) = sqlx::query_as("SELECT not_before FROM runs WHERE id = $1")
        .bind(run.id.clone())
        .fetch_one(env.store.pool())
        .await
        .unwrap();
    let wait = not_before
        - after_one
            .finished_at
            .unwrap_or(loupe_services::meta::now_micros());
    assert!(wait > 100_000, "backoff of {wait} µs");
    for attempt in 2..=3 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(runner.run_once().await.unwrap(), 1, "attempt {attempt}");
    }
    let last = s.runs.get(&env.admin, &run.id).await.unwrap();
    assert_eq!(
        (last.status, last.attempts),
        (RunStatus::Failed, 3),
        "{last:?}"
    );

    // A query error is not retried.
    let bad = s
        .runs
        .enqueue_sql(&env.editor, &env.sample.id, "select * from nowhere")
        .await
        .unwrap();
    runner.run_once().await.unwrap();
    let bad = s.runs.get(&env.editor, &bad.id).await.unwrap();
    assert_eq!((bad.status, bad.attempts), (RunStatus::Failed, 1));
}

async fn interactive_runs_go_before_scheduled_ones(env: Env) {
    let s = &env.services;
    let query = numbered_query(&env).await;
    let daily = schedule(&query.id, "0 6 * * *", "UTC", n(1));
    let schedule = s.schedules.create(&env.editor, daily).await.unwrap();
    env.schedules_due_at(loupe_services::meta::now_micros() - 1)
        .await;
    assert_eq!(
        Scheduler::new(s, Duration::from_secs(1))
            .tick()
            .await
            .unwrap(),
        1
    );
    // Queued after the scheduled run, but people are waiting for it.
    let interactive = env.enqueue(&env.viewer, &query.id, &n(2)).await;
    let one = RunnerConfig {
        workers: 1,
        ..config()
    };
    assert_eq!(runner(&env, one.clone()).run_once().await.unwrap(), 1);
    let done = s.runs.get(&env.viewer, &interactive.id).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    let scheduled = env.runs_of_schedule(&env.editor, &schedule.id).await;
    assert_eq!(scheduled[0].status, RunStatus::Queued);
    // Stats: waited, ran, rows.
    assert!(done.queue_wait().is_some() && done.execution_time().is_some());
    assert!(done.queue_wait().unwrap() < Duration::from_secs(60));
}

async fn queued_runs_cancel_at_once(env: Env) {
    let s = &env.services;
    let query = numbered_query(&env).await;
    let run = env.enqueue(&env.viewer, &query.id, &n(2)).await;
    let by_other = s.runs.cancel(&env.editor2, &run.id).await;
    assert_eq!(
        loupe_core::ErrorKind::Forbidden,
        super::kind(by_other),
        "only whoever started it, or an admin"
    );
    let cancelled = s.runs.cancel(&env.viewer, &run.id).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert_eq!(
        runner(&env, config()).run_once().await.unwrap(),
        0,
        "a cancelled run is never claimed"
    );
    let twice = s.runs.cancel(&env.viewer, &run.id).await;
    assert_eq!(twice.unwrap_err().code(), "conflict.finished");
    // A cancelled run is not joined: the next start queues anew.
    let again = start(&env, &env.viewer, &query.id, n(2), None).await;
    assert_eq!(again.how, StartKind::Queued);
}

async fn two_schedulers_fire_each_occurrence_once(env: Env) {
    let s = &env.services;
    let query = numbered_query(&env).await;
    let input = |enabled| ScheduleInput {
        enabled,
        ..schedule(&query.id, "*/5 * * * *", "Europe/Berlin", n(7))
    };
    let due = s.schedules.create(&env.editor, input(true)).await.unwrap();
    let off = s.schedules.create(&env.editor, input(false)).await.unwrap();
    // Both were due an hour ago (missed ticks included).
    let past = loupe_services::meta::now_micros() - 3_600_000_000;
    env.schedules_due_at(past).await;

    // A second scheduler with its own connections, as another process.
    let other_store = MetadataStore::open(env.location.url()).await.unwrap();
    let other = super::services(&other_store, Some(env.keys.clone()));
    let (a, b) = (
        Scheduler::new(s, Duration::from_secs(1)),
        Scheduler::new(&other, Duration::from_secs(1)),
    );
    let (fired_a, fired_b) = tokio::join!(a.tick(), b.tick());
    assert_eq!(
        fired_a.unwrap() + fired_b.unwrap(),
        1,
        "one occurrence, one run, however many schedulers"
    );
    assert_eq!(
        a.tick().await.unwrap() + b.tick().await.unwrap(),
        0,
        "missed ticks fire once, not once each"
    );

    let runs = env.runs_of_schedule(&env.editor, &due.id).await;
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(
        (run.priority, run.created_by.as_deref()),
        (0, Some(env.editor.user_id.as_str()))
    );
    let schedule = s.schedules.get(&env.editor, &due.id).await.unwrap();
    assert!(schedule.next_run_at.unwrap() > loupe_services::meta::now_micros());
    assert_eq!(schedule.last_status, Some(RunStatus::Queued));
    assert!(env.runs_of_schedule(&env.editor, &off.id).await.is_empty());

    // The run executes with the schedule's values; the schedule records it.
    runner(&env, config()).run_once().await.unwrap();
    let schedule = s.schedules.get(&env.editor, &due.id).await.unwrap();
    assert_eq!(schedule.last_status, Some(RunStatus::Succeeded));

    // Paused datasources' schedules do not fire.
    env.schedules_due_at(past).await;
    sqlx::query("UPDATE datasources SET paused = 1")
        .execute(env.store.pool())
        .await
        .unwrap();
    assert_eq!(a.tick().await.unwrap(), 0);
    other_store.close().await;
}

async fn retention_keeps_the_latest_result_of_each_saved_query_and_schedule(env: Env) {
    let s = &env.services;
    let shown = numbered_query(&env).await;
    let n_param = ParameterDef::new("n", ParameterType::Integer);
    let plain = env
        .editor_query("Plain", "select {{ n }} as n", vec![n_param])
        .await;
    let viz = env.table(&env.editor, &shown.id, "T").await;
    let wall = DashboardInput {
        name: "Wall".into(),
        widgets: vec![widget(shows(&viz.id), (0, 0, 6, 4), &[])],
        ..Default::default()
    };
    s.dashboards.create(&env.editor, wall).await.unwrap();
    let runner = runner(&env, config());
    let mut locations = BTreeMap::new();

    // The schedule's run comes first, so the query's latest result is not
    // the schedule's.
    let daily = s
        .schedules
        .create(&env.editor, schedule(&plain.id, "0 6 * * *", "UTC", n(7)))
        .await
        .unwrap();
    env.schedules_due_at(loupe_services::meta::now_micros() - 1_000_000)
        .await;
    assert_eq!(
        Scheduler::new(s, Duration::from_secs(1))
            .tick()
            .await
            .unwrap(),
        1
    );
    runner.run_once().await.unwrap();
    let scheduled = env.runs_of_schedule(&env.editor, &daily.id).await;
    let scheduled = s.runs.get(&env.editor, &scheduled[0].id).await.unwrap();
    locations.insert(scheduled.id.clone(), scheduled.result_location.unwrap());

    let mut latest = BTreeMap::new();
    for value in 0..3 {
        for query in [&shown, &plain] {
            let run = env.enqueue(&env.editor, &query.id, &n(value)).await;
            runner.run_once().await.unwrap();
            let run = s.runs.get(&env.editor, &run.id).await.unwrap();
            locations.insert(run.id.clone(), run.result_location.unwrap());
            latest.insert(query.id.clone(), run.id.clone());
        }
    }
    for sql in ["select 1 as one", "select 2 as two"] {
        let run = s
            .runs
            .enqueue_sql(&env.editor, &env.sample.id, sql)
            .await
            .unwrap();
        runner.run_once().await.unwrap();
        let run = s.runs.get(&env.editor, &run.id).await.unwrap();
        locations.insert(run.id.clone(), run.result_location.unwrap());
    }
    let waiting = env.enqueue(&env.editor, &plain.id, &n(99)).await;

    // Everything is old enough: only the latest result of each saved
    // query (the dashboard's included) and of the schedule stay, and the
    // queued run; ad-hoc runs go.
    let report = Retention {
        max_age: Some(Duration::ZERO),
        ..Retention::none()
    }
    .apply(s, &env.results)
    .await
    .unwrap();
    assert_eq!((report.runs, report.results), (6, 6), "{report:?}");
    let left: Vec<(String, String)> = sqlx::query_as("SELECT id, status FROM runs ORDER BY id")
        .fetch_all(env.store.pool())
        .await
        .unwrap();
    let mut kept: Vec<&str> = left.iter().map(|(id, _)| id.as_str()).collect();
    kept.sort_unstable();
    let mut expected = vec![
        latest[&shown.id].as_str(),
        latest[&plain.id].as_str(),
        scheduled.id.as_str(),
        waiting.id.as_str(),
    ];
    expected.sort_unstable();
    assert_eq!(kept, expected);
    for (id, location) in &locations {
        let stored = env
            .results
            .read_page(&ResultId::parse(location).unwrap(), &PageRequest::new(0, 1))
            .await;
        assert_eq!(
            stored.is_ok(),
            expected.contains(&id.as_str()),
            "result of {id}"
        );
    }
    let org_bytes = report.stored_bytes.get(&env.org.id).copied().unwrap_or(1);
    assert!(org_bytes > 0);
    // Every organization is reported, the one without results as 0.
    assert_eq!(report.stored_bytes.len(), 2, "{report:?}");
    assert_eq!(
        s.organizations
            .usage(&env.editor)
            .await
            .unwrap()
            .stored_bytes,
        org_bytes
    );

    // Keep-per-query counts only finished runs, newest first.
    for value in 10..14 {
        env.enqueue(&env.editor, &plain.id, &n(value)).await;
    }
    while runner.run_once().await.unwrap() > 0 {}
    let report = Retention {
        keep_per_query: Some(2),
        ..Retention::none()
    }
    .apply(s, &env.results)
    .await
    .unwrap();
    let (plain_runs,): (i64,) = sqlx::query_as("SELECT count(*) FROM runs WHERE query_id = $1")
        .bind(plain.id.clone())
        .fetch_one(env.store.pool())
        .await
        .unwrap();
    // Two newest, and the schedule's latest.
    assert_eq!(plain_runs, 3, "{report:?}");
}

const DAY: i64 = 24 * 3600 * 1_000_000;

/// Sets when run `id` was queued, started and finished: `age` ago.
async fn age_run(env: &Env, id: &str, age: i64) {
    let at = loupe_services::meta::now_micros() - age;
    sqlx::query("UPDATE runs SET queued_at = $1, started_at = $1, finished_at = $1 WHERE id = $2")
        .bind(at)
        .bind(id.to_owned())
        .execute(env.store.pool())
        .await
        .unwrap();
}

async fn count(env: &Env, sql: &'static str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql)
        .fetch_one(env.store.pool())
        .await
        .unwrap();
    n
}

/// Retention is on by default: 30 days for results (the latest of a saved
/// query kept), used or expired tokens, audit events after a year.
async fn retention_by_default_deletes_old_results_tokens_and_audit_events(env: Env) {
    let s = &env.services;
    let runner = runner(&env, config());
    let plain = env
        .editor_query(
            "Plain",
            "select {{ n }} as n",
            vec![ParameterDef::new("n", ParameterType::Integer)],
        )
        .await;
    let mut runs = Vec::new();
    for value in 0..2 {
        runs.push(env.enqueue(&env.editor, &plain.id, &n(value)).await.id);
        runner.run_once().await.unwrap();
    }
    for sql in ["select 1 as a", "select 2 as b", "select 3 as c"] {
        let run = s.runs.enqueue_sql(&env.editor, &env.sample.id, sql).await;
        runs.push(run.unwrap().id);
        runner.run_once().await.unwrap();
    }
    // 31 days: both saved-query runs (the latest is kept) and an ad-hoc
    // one; 29 days: an ad-hoc one, kept; the last is new.
    for (id, age) in runs.iter().zip([31 * DAY, 31 * DAY, 31 * DAY, 29 * DAY, 0]) {
        age_run(&env, id, age).await;
    }

    let now = loupe_services::meta::now_micros();
    let user = env.admin.user_id.clone();
    for (id, expires) in [("rt-expired", now - DAY), ("rt-valid", now + DAY)] {
        sqlx::query(
            "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at, created_at) \
             VALUES ($1, $2, $1, $1, $3, $4)",
        )
        .bind(id)
        .bind(user.clone())
        .bind(expires)
        .bind(now - 2 * DAY)
        .execute(env.store.pool())
        .await
        .unwrap();
    }
    for (id, purpose, expires, used) in [
        ("ut-used", "invite", now + DAY, Some(now - DAY)),
        ("ut-expired", "reset", now - DAY, None),
        ("ut-pending", "invite", now + DAY, None),
    ] {
        sqlx::query(
            "INSERT INTO user_tokens (id, user_id, purpose, token_hash, expires_at, used_at, created_at) \
             VALUES ($1, $2, $3, $1, $4, $5, $6)",
        )
        .bind(id)
        .bind(user.clone())
        .bind(purpose)
        .bind(expires)
        .bind(used)
        .bind(now - 2 * DAY)
        .execute(env.store.pool())
        .await
        .unwrap();
    }
    let events = count(&env, "SELECT count(*) FROM audit_events").await;
    assert!(events >= 2, "the set-up made audit events");
    sqlx::query(
        "UPDATE audit_events SET created_at = $1 WHERE id = (SELECT min(id) FROM audit_events)",
    )
    .bind(now - 366 * DAY)
    .execute(env.store.pool())
    .await
    .unwrap();

    let report = Retention::default().apply(s, &env.results).await.unwrap();
    assert_eq!(
        (
            report.runs,
            report.results,
            report.refresh_tokens,
            report.user_tokens,
            report.audit_events
        ),
        (2, 2, 1, 2, 1),
        "{report:?}"
    );
    let mut left: Vec<(String,)> = sqlx::query_as("SELECT id FROM runs")
        .fetch_all(env.store.pool())
        .await
        .unwrap();
    left.sort_unstable();
    let mut expected = vec![(runs[1].clone(),), (runs[3].clone(),), (runs[4].clone(),)];
    expected.sort_unstable();
    assert_eq!(left, expected, "the latest of the query, and the young");
    let tokens: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM refresh_tokens WHERE id LIKE 'rt-%'")
            .fetch_all(env.store.pool())
            .await
            .unwrap();
    assert_eq!(tokens, [("rt-valid".to_owned(),)]);
    let tokens: Vec<(String,)> = sqlx::query_as("SELECT id FROM user_tokens WHERE id LIKE 'ut-%'")
        .fetch_all(env.store.pool())
        .await
        .unwrap();
    assert_eq!(tokens, [("ut-pending".to_owned(),)]);
    assert_eq!(
        count(&env, "SELECT count(*) FROM audit_events").await,
        events - 1
    );

    // A second pass finds nothing more.
    let again = Retention::default().apply(s, &env.results).await.unwrap();
    assert_eq!((again.runs, again.audit_events), (0, 0));
}

on_both!(running_runs_cancel_in_the_database);

/// A `postgres` datasource on the test server (the metadata backend is
/// whichever the test runs on).
pub(crate) async fn test_postgres(env: &Env) -> Option<loupe_services::DatasourceRecord> {
    let url = super::postgres_url()?;
    Some(env.postgres_datasource(&url).await)
}

/// Backends running a statement that contains `marker`, as PostgreSQL sees them.
async fn backends_running(marker: &str) -> i64 {
    let url = super::postgres_url().unwrap();
    let store = MetadataStore::connect(&url).await.unwrap();
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 AND pid <> pg_backend_pid()",
    )
    .bind(format!("%{marker}%"))
    .fetch_one(store.pool())
    .await
    .unwrap();
    store.close().await;
    n
}

async fn running_runs_cancel_in_the_database(env: Env) {
    let Some(warehouse) = test_postgres(&env).await else {
        return;
    };
    let s = &env.services;
    let marker = format!("cancel_me_{}", uuid::Uuid::now_v7().simple());
    let sql = format!("select 1 as {marker} from pg_sleep(30)");
    let handle = runner(&env, config()).start();
    let run = s
        .runs
        .enqueue_sql(&env.admin, &warehouse.id, &sql)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while backends_running(&marker).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the statement never reached the server"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        s.runs.get(&env.admin, &run.id).await.unwrap().status,
        RunStatus::Running
    );

    let asked = tokio::time::Instant::now();
    s.runs.cancel(&env.admin, &run.id).await.unwrap();
    loop {
        let now = s.runs.get(&env.admin, &run.id).await.unwrap();
        if now.status == RunStatus::Cancelled && backends_running(&marker).await == 0 {
            break;
        }
        // "Within a second or two"; a little slack for a busy CI machine.
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "still {:?} after 3 s",
            now.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("cancelled in-process in {:?}", asked.elapsed());
    let cancelled = s.runs.get(&env.admin, &run.id).await.unwrap();
    assert_eq!(cancelled.error_code.as_deref(), Some("run.cancelled"));
    assert!(cancelled.result_location.is_none());

    // Cancelled from another process (another set of connections): the
    // runner notices on its next check and stops the statement.
    let run = s
        .runs
        .enqueue_sql(&env.admin, &warehouse.id, &format!("{sql} -- again"))
        .await
        .unwrap();
    while backends_running(&marker).await == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let other_store = MetadataStore::open(env.location.url()).await.unwrap();
    let other = super::services(&other_store, Some(env.keys.clone()));
    let asked = tokio::time::Instant::now();
    other.runs.cancel(&env.admin, &run.id).await.unwrap();
    while backends_running(&marker).await > 0
        || s.runs.get(&env.admin, &run.id).await.unwrap().status != RunStatus::Cancelled
    {
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "not cancelled within 3 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("cancelled from another process in {:?}", asked.elapsed());
    handle.shutdown().await;
    other_store.close().await;
}

on_both!(a_late_duplicate_result_is_discarded);

/// A runner that loses its lease (it does not renew in time) still
/// finishes its statement; by then another runner holds the run, so the
/// first one's result is thrown away and exactly one result is kept.
async fn a_late_duplicate_result_is_discarded(env: Env) {
    let Some(warehouse) = test_postgres(&env).await else {
        return;
    };
    let s = &env.services;
    let run = s
        .runs
        .enqueue_sql(
            &env.admin,
            &warehouse.id,
            "select 7 as seven from pg_sleep(1.5)",
        )
        .await
        .unwrap();
    // Lease 300 ms, but no check (or renewal) for 10 s: it runs out.
    let forgetful = RunnerConfig {
        name: "forgetful".into(),
        lease: Duration::from_millis(300),
        check_every: Duration::from_secs(10),
        ..config()
    };
    let first = runner(&env, forgetful);
    let late = tokio::spawn(async move { first.run_once().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = runner(
        &env,
        RunnerConfig {
            name: "second".into(),
            ..config()
        },
    );
    assert_eq!(
        second.run_once().await.unwrap(),
        1,
        "the expired lease lets another runner claim"
    );
    assert_eq!(late.await.unwrap(), 1);

    let done = s.runs.get(&env.admin, &run.id).await.unwrap();
    assert_eq!((done.status, done.attempts), (RunStatus::Succeeded, 2));
    let (claimed_by,): (Option<String>,) =
        sqlx::query_as("SELECT claimed_by FROM runs WHERE id = $1")
            .bind(run.id.clone())
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    assert_eq!(claimed_by, None);
    let stored: Vec<_> = std::fs::read_dir(env._dir.path().join("results"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        stored,
        [format!("{}.parquet", done.result_location.unwrap())],
        "exactly one result"
    );
}

/// A datasource kind whose code panics on every run, as a connector
/// with a bug would.
#[derive(Debug)]
struct Panicky;

#[async_trait::async_trait]
impl loupe_core::Datasource for Panicky {
    fn kind(&self) -> &'static str {
        "panicky"
    }

    fn dialect(&self) -> loupe_core::Dialect {
        loupe_core::Dialect::Postgres
    }

    async fn execute(
        &self,
        _: &loupe_core::Statement,
        _: &loupe_core::Limits,
    ) -> loupe_core::Result<loupe_core::SendableBatchStream> {
        panic!("the connector fell over");
    }

    async fn introspect(&self) -> loupe_core::Result<loupe_core::CatalogInfo> {
        Ok(loupe_core::CatalogInfo::default())
    }

    async fn ping(&self) -> loupe_core::Result<()> {
        Ok(())
    }
}

impl loupe_core::DatasourceFactory for Panicky {
    fn kind(&self) -> &'static str {
        "panicky"
    }

    fn description(&self) -> &'static str {
        "panics on every run"
    }

    fn dialect(&self) -> loupe_core::Dialect {
        loupe_core::Dialect::Postgres
    }

    fn url_schemes(&self) -> &'static [&'static str] {
        &[]
    }

    fn options(&self) -> &'static [loupe_core::OptionSpec] {
        &[]
    }

    fn options_from_url(&self, _: &str) -> loupe_core::Result<loupe_core::DatasourceOptions> {
        Ok(loupe_core::DatasourceOptions::new())
    }

    fn build(
        &self,
        _: &loupe_core::DatasourceOptions,
    ) -> loupe_core::Result<std::sync::Arc<dyn loupe_core::Datasource>> {
        Ok(std::sync::Arc::new(Panicky))
    }
}

/// Finding: a panic in a datasource's code ended the runner's task, so
/// the run stayed `running` until its lease ran out, and the next
/// attempt panicked again. Now the runner catches it at the task's
/// boundary and the run fails for good, as `internal`.
#[tokio::test]
async fn a_datasource_that_panics_fails_its_run_instead_of_the_runner() {
    let env = Env::sqlite().await;
    let mut registry = loupe_connectors::registry();
    registry.register(std::sync::Arc::new(Panicky));
    let services = loupe_services::Services::new(
        env.store.clone(),
        registry,
        loupe_services::ServicesConfig {
            secret_keys: Some(env.keys.clone()),
            ..loupe_services::ServicesConfig::default()
        },
        Some(env.results.clone()),
    )
    .unwrap();
    let source = services
        .datasources
        .create(
            &env.admin,
            DatasourceInput {
                name: "buggy".into(),
                kind: "panicky".into(),
                options: loupe_core::DatasourceOptions::new(),
            },
        )
        .await
        .unwrap();
    let started = services
        .runs
        .start_sql(&env.admin, &source.id, "select 1", None)
        .await
        .unwrap();
    let runner = Runner::new(&services, env.results.clone(), config());
    assert_eq!(runner.run_once().await.unwrap(), 1);
    let run = services
        .runs
        .get(&env.admin, &started.run.id)
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    assert_eq!(run.error_code.as_deref(), Some("internal"));
    let message = run.error_message.unwrap_or_default();
    assert!(
        message.contains("the panicky datasource panicked: the connector fell over"),
        "{message}"
    );
    assert_eq!(run.attempts, 1, "a panic is not retried");
}
