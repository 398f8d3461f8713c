//! One admission for every start: a schedule runs as its owner under the
//! same rules as an interactive start, and a paused datasource runs
//! nothing, whichever path asks.

use std::time::Duration;

use loupe_core::{ErrorKind, ParameterDef, ParameterType, ParameterValues};
use loupe_services::meta::now_micros;
use loupe_services::runner::{Runner, RunnerConfig, Scheduler};
use loupe_services::{Access, DashboardInput, DatasourceUpdate, Query, RunStatus};

use super::{Env, n, on_both, schedule, shows, widget};

on_both!(
    a_schedule_whose_owner_lost_run_access_does_not_run_and_says_why,
    a_paused_datasource_runs_nothing_on_any_path,
);

async fn query(env: &Env) -> Query {
    let sql = "select id from orders where quantity >= {{ n }}";
    let n = ParameterDef::new("n", ParameterType::Integer);
    env.editor_query("Orders over", sql, vec![n]).await
}

/// Makes every schedule due now.
async fn all_due(env: &Env) {
    env.schedules_due_at(now_micros() - 60_000_000).await;
}

/// Pauses or resumes the sample datasource, as the admin.
async fn set_paused(env: &Env, paused: bool) {
    let datasources = &env.services.datasources;
    let current = datasources.get(&env.admin, &env.sample.id).await.unwrap();
    let update = DatasourceUpdate {
        paused: Some(paused),
        ..DatasourceUpdate::default()
    };
    datasources
        .update(&env.admin, &env.sample.id, current.revision, update)
        .await
        .unwrap();
}

async fn a_schedule_whose_owner_lost_run_access_does_not_run_and_says_why(env: Env) {
    let s = &env.services;
    let saved = query(&env).await;
    let every_5 = schedule(&saved.id, "*/5 * * * *", "UTC", n(3));
    let schedule = s.schedules.create(&env.editor, every_5).await.unwrap();
    // The owner's only grant becomes view-only.
    s.groups
        .grant(&env.admin, &env.everyone, &env.sample.id, Access::View)
        .await
        .unwrap();
    all_due(&env).await;
    let scheduler = Scheduler::new(s, Duration::from_secs(1));
    assert_eq!(scheduler.tick().await.unwrap(), 0, "nothing is queued");

    let runs = env.runs_of_schedule(&env.admin, &schedule.id).await;
    assert_eq!(runs.len(), 1, "the refused occurrence is recorded");
    let refused = &runs[0];
    assert_eq!(refused.status, RunStatus::Failed);
    assert_eq!(refused.error_code.as_deref(), Some("access.view_only"));
    assert!(
        refused
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("refused") && m.contains("view results")),
        "{:?}",
        refused.error_message
    );
    assert_eq!(
        refused.created_by.as_deref(),
        Some(env.editor.user_id.as_str())
    );
    assert!(refused.result_location.is_none());
    let after = s.schedules.get(&env.editor, &schedule.id).await.unwrap();
    assert_eq!(after.last_status, Some(RunStatus::Failed));
    assert!(
        after.next_run_at.unwrap() > now_micros(),
        "the occurrence is taken"
    );
    assert_eq!(
        Runner::new(s, env.results.clone(), RunnerConfig::default())
            .run_once()
            .await
            .unwrap(),
        0,
        "the refused run is never executed"
    );

    // With the grant back, the next occurrence runs.
    s.groups
        .grant(&env.admin, &env.everyone, &env.sample.id, Access::Run)
        .await
        .unwrap();
    all_due(&env).await;
    assert_eq!(scheduler.tick().await.unwrap(), 1);
    let runs = env.runs_of_schedule(&env.admin, &schedule.id).await;
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().any(|r| r.status == RunStatus::Queued));
}

async fn a_paused_datasource_runs_nothing_on_any_path(env: Env) {
    let s = &env.services;
    let saved = query(&env).await;
    // Queued before the pause: must wait for the resume.
    let waiting = env.enqueue(&env.editor, &saved.id, &n(1)).await;
    let visualization = env.table(&env.editor, &saved.id, "Table").await;
    let wall = DashboardInput {
        name: "Wall".into(),
        widgets: vec![widget(shows(&visualization.id), (0, 0, 6, 4), &[])],
        ..Default::default()
    };
    let dashboard = s.dashboards.create(&env.editor, wall).await.unwrap();
    let every_5 = schedule(&saved.id, "*/5 * * * *", "UTC", n(2));
    let schedule = s.schedules.create(&env.editor, every_5).await.unwrap();
    set_paused(&env, true).await;

    let paused = |e: loupe_core::Error| {
        assert_eq!(
            (e.kind(), e.code()),
            (ErrorKind::Conflict, "conflict.paused")
        );
    };
    // Interactive: a saved query, and ad-hoc SQL.
    paused(
        s.runs
            .start_query(&env.editor, &saved.id, &n(5), None)
            .await
            .unwrap_err(),
    );
    paused(
        s.runs
            .start_sql(&env.editor, &env.sample.id, "select 1", None)
            .await
            .unwrap_err(),
    );
    // A dashboard's widgets.
    let widgets = s
        .dashboards
        .run(&env.editor, &dashboard.id, &ParameterValues::new(), None)
        .await
        .unwrap();
    assert_eq!(widgets.len(), 1);
    for (_, outcome) in widgets {
        paused(outcome.unwrap_err());
    }
    // A schedule: the occurrence waits, nothing is queued or recorded.
    all_due(&env).await;
    let scheduler = Scheduler::new(s, Duration::from_secs(1));
    assert_eq!(scheduler.tick().await.unwrap(), 0);
    let runs = env.runs_of_schedule(&env.admin, &schedule.id).await;
    assert!(runs.is_empty());
    // The runner: the run queued before the pause is not claimed.
    let runner = Runner::new(s, env.results.clone(), RunnerConfig::default());
    assert_eq!(runner.run_once().await.unwrap(), 0);
    let still = s.runs.get(&env.editor, &waiting.id).await.unwrap();
    assert_eq!(still.status, RunStatus::Queued);

    // Resumed, everything runs again.
    set_paused(&env, false).await;
    assert_eq!(scheduler.tick().await.unwrap(), 1);
    assert_eq!(runner.run_once().await.unwrap(), 2);
    let done = s.runs.get(&env.editor, &waiting.id).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
}
