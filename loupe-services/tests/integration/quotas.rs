//! What one user may ask of a deployment (issue 12, finding 9): schedules
//! no more often than the minimum interval, so many enabled schedules, so
//! many runs waiting in the queue. Each test asserts the refusal with its
//! problem and that the same request below the cap passes, so it fails if
//! the cap is removed.

use std::time::Duration;

use loupe_core::ErrorKind::Conflict;
use loupe_core::{Error, ParameterValues};
use loupe_services::runner::Scheduler;
use loupe_services::{RunStatus, ScheduleInput, Services, ServicesConfig, StartKind};

use super::{Env, fields, on_both, refusal, schedule};

on_both!(
    schedules_that_fire_more_often_than_the_minimum_are_refused,
    a_user_may_enable_only_so_many_schedules,
    a_user_may_queue_only_so_many_runs,
);

/// The environment's services with `change` made to their settings.
fn services_with(env: &Env, change: impl FnOnce(&mut ServicesConfig)) -> Services {
    let mut config = ServicesConfig {
        secret_keys: Some(env.keys.clone()),
        ..ServicesConfig::default()
    };
    change(&mut config);
    Services::new(
        env.store.clone(),
        loupe_connectors::registry(),
        config,
        Some(env.results.clone()),
    )
    .unwrap()
}

/// Values for the environment's query: customers of `country`.
fn country(code: &str) -> ParameterValues {
    [("country".to_owned(), serde_json::json!(code))].into()
}

/// The code of the first field error of `result`.
#[track_caller]
fn field_code<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    let error = result.expect_err("expected a validation error");
    error.field_errors()[0].code.to_string()
}

async fn schedules_that_fire_more_often_than_the_minimum_are_refused(env: Env) {
    let s = &env.services;
    let e = &env.editor;
    let query = env.query(e, "Customers").await;
    let at = |cron: &str| schedule(&query.id, cron, "UTC", ParameterValues::new());

    // The default minimum is a minute: every second, every 30 seconds, or
    // two fires a second apart once a week are refused, on `cron`.
    for cron in ["* * * * * *", "*/30 * * * * *", "0,1 0 0 * * 1"] {
        let refused = s.schedules.create(e, at(cron)).await;
        assert_eq!(field_code(refused), "too_frequent", "{cron}");
        assert_eq!(fields(s.schedules.create(e, at(cron)).await), ["cron"]);
    }
    // Every minute is the minimum itself: allowed.
    let every_minute = s.schedules.create(e, at("* * * * *")).await.unwrap();
    // A change to a cron that fires too often is refused like a new one.
    let faster = ScheduleInput {
        cron: "*/10 * * * * *".into(),
        ..at("* * * * *")
    };
    let update = s
        .schedules
        .update(e, &every_minute.id, every_minute.revision, faster)
        .await;
    assert_eq!(field_code(update), "too_frequent");

    // With a minimum of an hour, a burst anywhere in the day is refused,
    // however the next two fires fall.
    let hourly = services_with(&env, |c| {
        c.min_schedule_interval = Duration::from_secs(3600)
    });
    for cron in ["*/30 * * * *", "0 9,10 * * *", "0 23 * * *"] {
        let input = at(cron);
        let created = hourly.schedules.create(e, input).await;
        match cron {
            "*/30 * * * *" => assert_eq!(field_code(created), "too_frequent", "{cron}"),
            _ => {
                created.unwrap();
            }
        }
    }
    let burst = hourly.schedules.create(e, at("0 0,5,30 12 * * *")).await;
    assert_eq!(field_code(burst), "too_frequent");
}

async fn a_user_may_enable_only_so_many_schedules(env: Env) {
    let capped = services_with(&env, |c| c.enabled_schedules_per_user = 2);
    let s = &capped;
    let e = &env.editor;
    let query = env.query(e, "Customers").await;
    let daily = |hour: u32| schedule(&query.id, &format!("0 {hour} * * *"), "UTC", country("FR"));

    let first = s.schedules.create(e, daily(1)).await.unwrap();
    s.schedules.create(e, daily(2)).await.unwrap();
    assert_eq!(
        refusal(s.schedules.create(e, daily(3)).await),
        (Conflict, "schedule.too_many_enabled")
    );
    // Disabled schedules do not count, but enabling one does.
    let off = ScheduleInput {
        enabled: false,
        ..daily(3)
    };
    let third = s.schedules.create(e, off).await.unwrap();
    let enable = s.schedules.set_enabled(e, &third.id, third.revision, true);
    assert_eq!(
        refusal(enable.await),
        (Conflict, "schedule.too_many_enabled")
    );
    // Changing a schedule that is on already is not enabling another.
    let later = ScheduleInput {
        cron: "30 1 * * *".into(),
        ..daily(1)
    };
    let first = s
        .schedules
        .update(e, &first.id, first.revision, later)
        .await
        .unwrap();
    // The cap is per user.
    let query2 = env.query(&env.editor2, "Theirs").await;
    let theirs = schedule(&query2.id, "0 4 * * *", "UTC", country("DE"));
    s.schedules.create(&env.editor2, theirs).await.unwrap();
    // Below the cap again, enabling is allowed.
    s.schedules
        .set_enabled(e, &first.id, first.revision, false)
        .await
        .unwrap();
    let enabled = s
        .schedules
        .set_enabled(e, &third.id, third.revision, true)
        .await
        .unwrap();
    assert!(enabled.enabled);
}

async fn a_user_may_queue_only_so_many_runs(env: Env) {
    let capped = services_with(&env, |c| c.queued_runs_per_user = 2);
    let s = &capped;
    let e = &env.editor;
    let query = env.query(e, "Customers").await;
    let start = |code: &'static str, max_age: Option<Duration>| {
        let query = query.id.clone();
        async move { s.runs.start_query(e, &query, &country(code), max_age).await }
    };

    let fr = start("FR", None).await.unwrap();
    start("DE", None).await.unwrap();
    assert_eq!(
        refusal(start("IT", None).await),
        (Conflict, "run.too_many_queued")
    );
    let sql = s.runs.start_sql(e, &env.sample.id, "select 1", None).await;
    assert_eq!(refusal(sql), (Conflict, "run.too_many_queued"));
    // Joining a run in flight queues nothing new: allowed at the cap.
    let joined = start("FR", None).await.unwrap();
    assert_eq!(
        (joined.how, &joined.run.id),
        (StartKind::Joined, &fr.run.id)
    );
    // Another user has a queue of their own.
    let italy = country("IT");
    let theirs = s.runs.start_query(&env.editor2, &query.id, &italy, None);
    assert_eq!(theirs.await.unwrap().how, StartKind::Queued);

    // Once a run has finished, a cache hit is allowed and so is one more.
    sqlx::query(
        "UPDATE runs SET status = 'succeeded', finished_at = $1, result_location = 'r' WHERE id = $2",
    )
    .bind(loupe_services::meta::now_micros())
    .bind(fr.run.id.clone())
    .execute(env.store.pool())
    .await
    .unwrap();
    let cached = start("FR", Some(Duration::from_secs(3600))).await.unwrap();
    assert_eq!(cached.how, StartKind::Cached);
    assert_eq!(start("ES", None).await.unwrap().how, StartKind::Queued);
    assert_eq!(
        refusal(start("PT", None).await),
        (Conflict, "run.too_many_queued")
    );

    // A scheduled start counts for its owner too: while the owner's queue
    // is full, the occurrence is refused on the record, like any refused
    // start, and not retried at every tick.
    let weekly = schedule(&query.id, "0 6 * * 1", "UTC", country("NL"));
    let weekly = s.schedules.create(e, weekly).await.unwrap();
    env.schedules_due_at(loupe_services::meta::now_micros() - 1)
        .await;
    let scheduler = Scheduler::new(s, Duration::from_secs(1));
    assert_eq!(scheduler.tick().await.unwrap(), 0);
    let refused = env.runs_of_schedule(&env.admin, &weekly.id).await;
    let codes: Vec<_> = refused
        .iter()
        .map(|r| (r.status, r.error_code.as_deref()))
        .collect();
    assert_eq!(
        codes,
        [(RunStatus::Failed, Some("run.too_many_queued"))],
        "{refused:?}"
    );
    assert_eq!(
        scheduler.tick().await.unwrap(),
        0,
        "the occurrence was taken"
    );
    // With room in the owner's queue, the next occurrence is queued.
    let queued = super::filtered("status", "queued").filter("owner", &e.user_id);
    let mine = s.runs.list(e, &queued).await;
    let oldest = mine.unwrap().items.pop().unwrap();
    s.runs.cancel(e, &oldest.id).await.unwrap();
    env.schedules_due_at(loupe_services::meta::now_micros() - 1)
        .await;
    assert_eq!(scheduler.tick().await.unwrap(), 1);
}
