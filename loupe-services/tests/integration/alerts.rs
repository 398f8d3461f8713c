//! Alerts and subscriptions over real runs, on both backends: transitions
//! are notified once each, however many runners finish runs at once; a
//! subscription's occurrence becomes one delivery per destination however
//! many schedulers and dispatchers race; access rules hold.

use std::time::Duration;

use loupe_core::{ErrorKind, ParameterValues};
use loupe_services::delivery::{DestinationSettings, WebhookSettings};
use loupe_services::meta::{ListRequest, MetadataStore};
use loupe_services::runner::{Runner, RunnerConfig, Scheduler};
use loupe_services::{
    Actor, AlertInput, AlertState, Comparison, Condition, DatasourceInput, DestinationInput,
    Dispatcher, Literal, Quantifier, SubscriptionInput, TargetKind,
};

use super::{Env, on_both};

on_both!(
    an_alert_notifies_each_transition_once,
    reminders_come_while_triggered_and_muted_alerts_stay_quiet,
    alerts_and_subscriptions_are_checked_when_saved,
    a_subscription_occurrence_is_delivered_once_by_racing_processes,
    a_failing_subscription_tells_its_owner_once_per_streak,
);

fn runner_config() -> RunnerConfig {
    RunnerConfig {
        workers: 2,
        poll: Duration::from_millis(50),
        check_every: Duration::from_millis(100),
        ..RunnerConfig::default()
    }
}

/// A `files` datasource over a directory of its own holding `levels.csv`
/// with one `level` column, and a saved query of it.
struct Levels {
    dir: tempfile::TempDir,
    query_id: String,
}

impl Levels {
    async fn new(env: &Env) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let levels = Self {
            dir,
            query_id: String::new(),
        };
        levels.set(&[5]);
        let mut options = serde_json::Map::new();
        options.insert("root".into(), levels.dir.path().to_str().unwrap().into());
        let datasource = env
            .services
            .datasources
            .create(
                &env.admin,
                DatasourceInput {
                    name: "Levels".into(),
                    kind: "files".into(),
                    options,
                },
            )
            .await
            .unwrap();
        env.services
            .groups
            .grant(
                &env.admin,
                &env.everyone,
                &datasource.id,
                loupe_services::Access::Run,
            )
            .await
            .unwrap();
        let query = env
            .services
            .queries
            .create(
                &env.editor,
                loupe_services::NewQuery {
                    name: "Levels".into(),
                    datasource_id: datasource.id.clone(),
                    sql: "select level from levels order by level".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        Self {
            query_id: query.id,
            ..levels
        }
    }

    /// Replaces the table's rows.
    fn set(&self, levels: &[i64]) {
        let mut csv = String::from("level\n");
        for l in levels {
            csv.push_str(&format!("{l}\n"));
        }
        std::fs::write(self.dir.path().join("levels.csv"), csv).unwrap();
    }
}

async fn webhook(env: &Env, name: &str) -> String {
    env.services
        .destinations
        .create(
            &env.admin,
            DestinationInput {
                name: name.into(),
                settings: DestinationSettings::Webhook(WebhookSettings {
                    url: "https://hooks.example.com/loupe".into(),
                }),
                secrets: None,
            },
        )
        .await
        .unwrap()
        .id
}

fn above(level: f64) -> Condition {
    Condition::Rows {
        quantifier: Quantifier::Any,
        column: "level".into(),
        op: Comparison::Gt,
        value: Literal::Number(level),
    }
}

fn alert_input(query_id: &str, destination: &str) -> AlertInput {
    AlertInput {
        query_id: query_id.into(),
        name: "Level too high".into(),
        parameters: ParameterValues::new(),
        condition: above(10.0),
        destinations: vec![destination.into()],
        renotify_every: None,
        muted_until: None,
        enabled: true,
    }
}

async fn run(env: &Env, actor: &Actor, query_id: &str) {
    env.services
        .runs
        .enqueue_query(actor, query_id, &ParameterValues::new())
        .await
        .unwrap();
    Runner::new(&env.services, env.results.clone(), runner_config())
        .run_once()
        .await
        .unwrap();
}

async fn queued(env: &Env, source: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT source_kind, content FROM deliveries WHERE source_id = $1 ORDER BY occurrence",
    )
    .bind(source.to_owned())
    .fetch_all(env.store.pool())
    .await
    .unwrap()
}

async fn an_alert_notifies_each_transition_once(env: Env) {
    let levels = Levels::new(&env).await;
    let hook = webhook(&env, "Ops hook").await;
    let alerts = &env.services.alerts;
    let alert = alerts
        .create(&env.editor, alert_input(&levels.query_id, &hook))
        .await
        .unwrap();
    assert_eq!(alert.state, AlertState::Unknown);

    // First run: fine; nothing to say.
    run(&env, &env.editor, &levels.query_id).await;
    let seen = alerts.get(&env.editor, &alert.id).await.unwrap();
    assert_eq!((seen.state, seen.evaluations), (AlertState::Ok, 1));
    assert!(queued(&env, &alert.id).await.is_empty());

    // Second run: a row over 10, not the first one: triggered, notified.
    levels.set(&[1, 50, 3]);
    run(&env, &env.viewer, &levels.query_id).await;
    let seen = alerts.get(&env.editor, &alert.id).await.unwrap();
    assert_eq!(seen.state, AlertState::Triggered);
    let notes = queued(&env, &alert.id).await;
    assert_eq!(notes.len(), 1);
    let content: serde_json::Value = serde_json::from_str(&notes[0].1).unwrap();
    assert_eq!(content["to"], "triggered");
    assert!(
        content["summary"].as_str().unwrap().contains("1 of 3 rows"),
        "{content}"
    );

    // Still over: no new notification (no re-notify interval).
    run(&env, &env.editor, &levels.query_id).await;
    assert_eq!(queued(&env, &alert.id).await.len(), 1);

    // Third state: back to normal, notified once.
    levels.set(&[5]);
    run(&env, &env.editor, &levels.query_id).await;
    let notes = queued(&env, &alert.id).await;
    assert_eq!(notes.len(), 2);
    let content: serde_json::Value = serde_json::from_str(&notes[1].1).unwrap();
    assert_eq!(
        (content["from"].as_str(), content["to"].as_str()),
        (Some("triggered"), Some("ok"))
    );

    // Two runners finish two triggering runs at once, in two processes:
    // one transition, one notification.
    levels.set(&[99]);
    let other_store = MetadataStore::open(env.location.url()).await.unwrap();
    let other = super::services_with(
        &other_store,
        Some(env.keys.clone()),
        Some(env.results.clone()),
    );
    for _ in 0..2 {
        env.services
            .runs
            .enqueue_query(&env.editor, &levels.query_id, &ParameterValues::new())
            .await
            .unwrap();
    }
    let (a, b) = (
        Runner::new(&env.services, env.results.clone(), runner_config()),
        Runner::new(&other, env.results.clone(), runner_config()),
    );
    let (ran_a, ran_b) = tokio::join!(a.run_once(), b.run_once());
    ran_a.unwrap();
    ran_b.unwrap();
    let notes = queued(&env, &alert.id).await;
    assert_eq!(
        notes.len(),
        3,
        "one notification for one transition: {notes:?}"
    );
    let seen = alerts.get(&env.editor, &alert.id).await.unwrap();
    assert_eq!(seen.state, AlertState::Triggered);

    let before = alerts
        .get(&env.editor, &alert.id)
        .await
        .unwrap()
        .evaluations;
    // A failed run makes the state unknown, and says so.
    std::fs::remove_file(levels.dir.path().join("levels.csv")).unwrap();
    run(&env, &env.editor, &levels.query_id).await;
    let seen = alerts.get(&env.editor, &alert.id).await.unwrap();
    assert_eq!(seen.state, AlertState::Unknown);
    assert_eq!(seen.evaluations, before + 1);
    assert_eq!(queued(&env, &alert.id).await.len(), 4);
    other_store.close().await;
}

async fn reminders_come_while_triggered_and_muted_alerts_stay_quiet(env: Env) {
    let levels = Levels::new(&env).await;
    let hook = webhook(&env, "Ops hook").await;
    let alerts = &env.services.alerts;
    let mut input = alert_input(&levels.query_id, &hook);
    input.renotify_every = Some(Duration::from_secs(3600));
    let alert = alerts.create(&env.editor, input.clone()).await.unwrap();
    levels.set(&[50]);
    run(&env, &env.editor, &levels.query_id).await;
    assert_eq!(queued(&env, &alert.id).await.len(), 1, "triggered");
    // Still triggered within the hour: quiet.
    run(&env, &env.editor, &levels.query_id).await;
    assert_eq!(queued(&env, &alert.id).await.len(), 1);
    // An hour after the last notification: a reminder, said to be one.
    sqlx::query("UPDATE alerts SET last_notified_at = last_notified_at - 3600000001")
        .execute(env.store.pool())
        .await
        .unwrap();
    run(&env, &env.editor, &levels.query_id).await;
    let notes = queued(&env, &alert.id).await;
    assert_eq!(notes.len(), 2);
    let reminder: serde_json::Value = serde_json::from_str(&notes[1].1).unwrap();
    assert_eq!(reminder["renotify"], true, "{reminder}");

    // Muted: the state still moves, nobody hears of it.
    let current = alerts.get(&env.editor, &alert.id).await.unwrap();
    input.muted_until = Some(loupe_services::meta::now_micros() + 3_600_000_000);
    alerts
        .update(&env.editor, &alert.id, current.revision, input)
        .await
        .unwrap();
    levels.set(&[1]);
    run(&env, &env.editor, &levels.query_id).await;
    let seen = alerts.get(&env.editor, &alert.id).await.unwrap();
    assert_eq!(seen.state, AlertState::Ok);
    assert_eq!(queued(&env, &alert.id).await.len(), 2, "muted");
}

async fn alerts_and_subscriptions_are_checked_when_saved(env: Env) {
    let levels = Levels::new(&env).await;
    let hook = webhook(&env, "Ops hook").await;
    let alerts = &env.services.alerts;

    // Viewers do not make alerts.
    let refused = alerts
        .create(&env.viewer, alert_input(&levels.query_id, &hook))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Forbidden);

    // Another organization's destination, a missing column name, and a
    // query the other organization's admin cannot see: named, refused.
    let theirs = env
        .services
        .destinations
        .create(
            &env.outsider,
            DestinationInput {
                name: "Theirs".into(),
                settings: DestinationSettings::Webhook(WebhookSettings {
                    url: "https://hooks.example.org/x".into(),
                }),
                secrets: None,
            },
        )
        .await
        .unwrap();
    let mut input = alert_input(&levels.query_id, &theirs.id);
    input.condition = Condition::Rows {
        quantifier: Quantifier::All,
        column: " ".into(),
        op: Comparison::Gt,
        value: Literal::Bool(true),
    };
    let fields = super::fields(alerts.create(&env.editor, input).await);
    assert!(fields.contains(&"destinations[0]".to_owned()), "{fields:?}");
    assert!(
        fields.contains(&"condition.column".to_owned()),
        "{fields:?}"
    );
    assert!(fields.contains(&"condition.op".to_owned()), "{fields:?}");
    let outsiders = super::fields(
        alerts
            .create(&env.outsider, alert_input(&levels.query_id, &theirs.id))
            .await,
    );
    assert_eq!(outsiders, ["query_id"]);

    // Only admins manage destinations, and nobody reads secrets back.
    let refused = env
        .services
        .destinations
        .create(
            &env.editor,
            DestinationInput {
                name: "Mine".into(),
                settings: DestinationSettings::Webhook(WebhookSettings {
                    url: "https://hooks.example.com/y".into(),
                }),
                secrets: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Forbidden);
    let seen = env
        .services
        .destinations
        .get(&env.editor, &hook)
        .await
        .unwrap();
    assert!(seen.settings.is_none(), "editors see names and kinds only");

    // Secrets never come back, and do not follow a changed target.
    let signed = env
        .services
        .destinations
        .create(
            &env.admin,
            DestinationInput {
                name: "Signed".into(),
                settings: DestinationSettings::Webhook(WebhookSettings {
                    url: "https://hooks.example.com/signed".into(),
                }),
                secrets: Some(loupe_services::delivery::DestinationSecrets {
                    signing_secret: Some("a signing secret of some length".into()),
                    ..Default::default()
                }),
            },
        )
        .await
        .unwrap();
    assert_eq!(signed.secrets_set, ["signing_secret"]);
    let renamed = env
        .services
        .destinations
        .update(
            &env.admin,
            &signed.id,
            signed.revision,
            DestinationInput {
                name: "Signed, renamed".into(),
                settings: DestinationSettings::Webhook(WebhookSettings {
                    url: "https://hooks.example.com/signed".into(),
                }),
                secrets: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.secrets_set, ["signing_secret"], "same target: kept");
    let moved = env
        .services
        .destinations
        .update(
            &env.admin,
            &signed.id,
            renamed.revision,
            DestinationInput {
                name: "Signed, moved".into(),
                settings: DestinationSettings::Webhook(WebhookSettings {
                    url: "https://attacker.example.net/collect".into(),
                }),
                secrets: None,
            },
        )
        .await
        .unwrap();
    assert!(
        moved.secrets_set.is_empty(),
        "a new target gets no old secret"
    );

    // A destination in use is not deleted.
    alerts
        .create(&env.editor, alert_input(&levels.query_id, &hook))
        .await
        .unwrap();
    let in_use = env
        .services
        .destinations
        .delete(&env.admin, &hook)
        .await
        .unwrap_err();
    assert_eq!(in_use.kind(), ErrorKind::Conflict, "{in_use}");

    // A subscription too often, to nothing, attaching what cannot be.
    let fields = super::fields(
        env.services
            .subscriptions
            .create(
                &env.editor,
                SubscriptionInput {
                    name: "Every second".into(),
                    target_kind: TargetKind::Query,
                    target_id: levels.query_id.clone(),
                    cron: "* * * * * *".into(),
                    timezone: "UTC".into(),
                    parameters: ParameterValues::new(),
                    attachment: Some(loupe_core::ExportFormat::Json),
                    destinations: vec![],
                    enabled: true,
                },
            )
            .await,
    );
    assert_eq!(fields, ["cron", "attachment", "destinations"]);
}

async fn a_subscription_occurrence_is_delivered_once_by_racing_processes(env: Env) {
    let levels = Levels::new(&env).await;
    let hooks = [webhook(&env, "One").await, webhook(&env, "Two").await];
    let subscription = env
        .services
        .subscriptions
        .create(
            &env.editor,
            SubscriptionInput {
                name: "Levels daily".into(),
                target_kind: TargetKind::Query,
                target_id: levels.query_id.clone(),
                cron: "0 8 * * *".into(),
                timezone: "Europe/Berlin".into(),
                parameters: ParameterValues::new(),
                attachment: Some(loupe_core::ExportFormat::Csv),
                destinations: hooks.to_vec(),
                enabled: true,
            },
        )
        .await
        .unwrap();
    sqlx::query("UPDATE subscriptions SET next_run_at = $1")
        .bind(loupe_services::meta::now_micros() - 60_000_000)
        .execute(env.store.pool())
        .await
        .unwrap();

    // Two schedulers, as two processes: the occurrence fires once.
    let other_store = MetadataStore::open(env.location.url()).await.unwrap();
    let other = super::services_with(
        &other_store,
        Some(env.keys.clone()),
        Some(env.results.clone()),
    );
    let (a, b) = (
        Scheduler::new(&env.services, Duration::from_secs(1)),
        Scheduler::new(&other, Duration::from_secs(1)),
    );
    let (fired_a, fired_b) = tokio::join!(a.tick(), b.tick());
    assert_eq!(fired_a.unwrap() + fired_b.unwrap(), 1);
    let (firings,): (i64,) = sqlx::query_as("SELECT count(*) FROM subscription_firings")
        .fetch_one(env.store.pool())
        .await
        .unwrap();
    assert_eq!(firings, 1);

    // Before the run ends, nothing is delivered.
    let (d1, d2) = (
        Dispatcher::new(&env.services, "one", Duration::from_secs(1)),
        Dispatcher::new(&other, "two", Duration::from_secs(1)),
    );
    let _ = tokio::join!(d1.tick(), d2.tick());
    assert!(queued(&env, &subscription.id).await.is_empty());

    Runner::new(&env.services, env.results.clone(), runner_config())
        .run_once()
        .await
        .unwrap();
    // Both dispatchers resolve the firing at once: one delivery per
    // destination. (These services have no transports, so each attempt
    // fails for good and says why.)
    let _ = tokio::join!(d1.tick(), d2.tick());
    let notes = queued(&env, &subscription.id).await;
    assert_eq!(notes.len(), 2, "{notes:?}");
    let page = env
        .services
        .deliveries
        .list(&env.editor, &ListRequest::default())
        .await
        .unwrap();
    assert_eq!(page.total, 2);
    for delivery in &page.items {
        assert_eq!(delivery.attempts, 1, "{delivery:?}");
        assert!(
            delivery
                .last_error
                .as_deref()
                .unwrap()
                .contains("no transports")
        );
    }
    // Another editor sees none of them.
    let theirs = env
        .services
        .deliveries
        .list(&env.editor2, &ListRequest::default())
        .await
        .unwrap();
    assert_eq!(theirs.total, 0);
    other_store.close().await;
}

async fn a_failing_subscription_tells_its_owner_once_per_streak(env: Env) {
    let levels = Levels::new(&env).await;
    let hook = webhook(&env, "Reports").await;
    let subscription = env
        .services
        .subscriptions
        .create(
            &env.editor,
            SubscriptionInput {
                name: "Levels hourly".into(),
                target_kind: TargetKind::Query,
                target_id: levels.query_id.clone(),
                cron: "0 * * * *".into(),
                timezone: "UTC".into(),
                parameters: ParameterValues::new(),
                attachment: None,
                destinations: vec![hook],
                enabled: true,
            },
        )
        .await
        .unwrap();
    let scheduler = Scheduler::new(&env.services, Duration::from_secs(1));
    let dispatcher = Dispatcher::new(&env.services, "one", Duration::from_secs(1));
    let runner = Runner::new(&env.services, env.results.clone(), runner_config());
    // One occurrence: fire it, run it, resolve it.
    let occurrence = async || {
        sqlx::query("UPDATE subscriptions SET next_run_at = $1")
            .bind(loupe_services::meta::now_micros() - 1)
            .execute(env.store.pool())
            .await
            .unwrap();
        assert_eq!(scheduler.tick().await.unwrap(), 1);
        runner.run_once().await.unwrap();
        dispatcher.tick().await.unwrap();
    };
    let kinds = async || -> Vec<String> {
        queued(&env, &subscription.id)
            .await
            .into_iter()
            .map(|(kind, _)| kind)
            .collect()
    };

    // The table is gone: the run fails; the owner hears of it once.
    std::fs::remove_file(levels.dir.path().join("levels.csv")).unwrap();
    occurrence().await;
    assert_eq!(kinds().await, ["failure"]);
    let notice: serde_json::Value =
        serde_json::from_str(&queued(&env, &subscription.id).await[0].1).unwrap();
    assert_eq!(notice["owner_email"], "erin@acme.test", "{notice}");
    occurrence().await;
    assert_eq!(
        kinds().await,
        ["failure"],
        "the same streak: no second notice"
    );
    let seen = env
        .services
        .subscriptions
        .get(&env.editor, &subscription.id)
        .await
        .unwrap();
    assert_eq!(seen.failure_streak, 2);

    // Back: delivered, the streak ends; the next failure is news again.
    levels.set(&[5]);
    occurrence().await;
    assert_eq!(kinds().await, ["failure", "subscription"]);
    std::fs::remove_file(levels.dir.path().join("levels.csv")).unwrap();
    occurrence().await;
    assert_eq!(kinds().await, ["failure", "subscription", "failure"]);
}
