//! Public links and embedding secrets on both metadata backends: the
//! compare-and-set that lets one view per link, result and interval
//! queue a refresh, and at most two active embedding secrets.

use std::time::{Duration, Instant};

use loupe_core::{ErrorKind, ParameterValues};
use loupe_services::runner::{Runner, RunnerConfig};
use loupe_services::{
    PublicContent, PublicPage, ResultState, Services, ServicesConfig, ShareInput, ShareKind,
    SharingSettings,
};

use super::{Env, on_both};

on_both!(
    a_stale_result_is_refreshed_once_per_interval_however_many_views,
    an_organization_has_at_most_two_active_embedding_secrets,
);

/// The services of `env` with refreshes allowed every `every`.
fn refreshing_every(env: &Env, every: Duration) -> Services {
    Services::new(
        env.store.clone(),
        loupe_connectors::registry(),
        ServicesConfig {
            secret_keys: Some(env.keys.clone()),
            sharing: SharingSettings {
                refresh_every: every,
                ..SharingSettings::default()
            },
            ..ServicesConfig::default()
        },
        Some(env.results.clone()),
    )
    .unwrap()
}

/// The one result of a query's page: (ready, stale, refreshing).
fn result(page: &PublicPage) -> (bool, bool, bool) {
    match &page.widgets[0].content {
        PublicContent::Table(r) => (
            matches!(r.state, ResultState::Ready { .. }),
            r.stale,
            r.refreshing,
        ),
        other => panic!("a query's page shows a table, not {other:?}"),
    }
}

async fn runs_of(services: &Services, env: &Env, query_id: &str) -> Vec<loupe_services::Run> {
    let mut request = loupe_services::meta::ListRequest::default();
    request.filters.insert("query".into(), query_id.into());
    services
        .runs
        .list(&env.admin, &request)
        .await
        .unwrap()
        .items
}

/// Waits until the runs of `query_id` have all finished; returns them.
async fn settled(services: &Services, env: &Env, query_id: &str) -> Vec<loupe_services::Run> {
    for _ in 0..400 {
        let runs = runs_of(services, env, query_id).await;
        if runs.iter().all(|r| r.finished_at.is_some()) {
            return runs;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the runs of {query_id} did not finish");
}

/// `n` views of the link at once.
async fn views(services: &Services, token: &str, n: usize) -> Vec<PublicPage> {
    let none = ParameterValues::new();
    futures::future::join_all((0..n).map(|_| services.shares.open(token, &none)))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

async fn a_stale_result_is_refreshed_once_per_interval_however_many_views(env: Env) {
    let every = Duration::from_secs(4);
    let services = refreshing_every(&env, every);
    let query = env.query(&env.editor, "Customers").await;
    let made = services
        .shares
        .create(
            &env.editor,
            ShareKind::Query,
            &query.id,
            ShareInput {
                max_age: Duration::from_secs(1),
                ..ShareInput::default()
            },
        )
        .await
        .unwrap();
    // Before any run: every view says pending, and one run is queued
    // (the view that queued it says so; the others may have looked
    // before it was).
    let first = Instant::now();
    let pages = views(&services, &made.token, 12).await;
    for page in &pages {
        let (ready, stale, _) = result(page);
        assert!(!ready && stale, "{page:?}");
    }
    assert!(pages.iter().any(|page| result(page).2));
    assert_eq!(runs_of(&services, &env, &query.id).await.len(), 1);
    let runner = Runner::new(
        &services,
        env.results.clone(),
        RunnerConfig {
            poll: Duration::from_millis(50),
            ..RunnerConfig::default()
        },
    )
    .start();
    settled(&services, &env, &query.id).await;
    let (ready, stale, _) = result(&views(&services, &made.token, 1).await[0]);
    assert!(ready && !stale);

    // Stale, but within the interval of the first refresh: shown as it
    // is, nothing queued.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let pages = views(&services, &made.token, 12).await;
    if first.elapsed() < every - Duration::from_millis(500) {
        assert_eq!(settled(&services, &env, &query.id).await.len(), 1);
        for page in &pages {
            assert_eq!(result(page), (true, true, false));
        }
    }
    // Past it: one refresh between all the views.
    tokio::time::sleep((every + Duration::from_millis(200)).saturating_sub(first.elapsed())).await;
    views(&services, &made.token, 12).await;
    views(&services, &made.token, 12).await;
    let runs = settled(&services, &env, &query.id).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    runner.shutdown().await;

    // The views were counted, and written when the links are listed.
    let listed = services
        .shares
        .list(&env.editor, ShareKind::Query, &query.id)
        .await
        .unwrap();
    assert_eq!(listed[0].views, 12 + 1 + 12 + 24);
    assert!(listed[0].last_viewed_at.is_some());
}

async fn an_organization_has_at_most_two_active_embedding_secrets(env: Env) {
    let embedding = &env.services.embedding;
    let first = embedding.create_secret(&env.admin).await.unwrap();
    let second = embedding.create_secret(&env.admin).await.unwrap();
    assert!(first.retired.is_empty() && second.retired.is_empty());
    // Made at once, two more still leave two active.
    let (third, fourth) = tokio::join!(
        embedding.create_secret(&env.admin),
        embedding.create_secret(&env.admin)
    );
    let (third, fourth) = (third.unwrap(), fourth.unwrap());
    let listed = embedding.secrets(&env.admin).await.unwrap();
    let active: Vec<&str> = listed
        .iter()
        .filter(|s| s.retired_at.is_none())
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(active.len(), 2, "{listed:?}");
    for made in [&third, &fourth] {
        assert!(active.contains(&made.secret.id.as_str()));
    }
    let mut retired: Vec<String> = [third.retired, fourth.retired].concat();
    retired.sort();
    let mut expected = vec![first.secret.id.clone(), second.secret.id.clone()];
    expected.sort();
    assert_eq!(retired, expected);
    // Another organization sees none of them, and cannot retire them.
    assert!(embedding.secrets(&env.outsider).await.unwrap().is_empty());
    let refused = embedding
        .retire_secret(&env.outsider, &third.secret.id)
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::NotFound);
    // Editors do not manage them.
    assert!(embedding.create_secret(&env.editor).await.is_err());
}
