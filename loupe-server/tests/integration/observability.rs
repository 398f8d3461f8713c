//! What an operator sees of the work: run metrics by datasource kind and
//! outcome, gauges that follow the store (back to 0 when a status empties,
//! one series per datasource id), the metrics token, stored bytes per
//! organization, and the trace context a run carries from its request.

use serde_json::json;

use crate::harness::{Harness, id_of};

/// The values of the series of `name` whose labels include all of
/// `labels`, in a Prometheus text exposition.
pub fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    let mut found = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (head, value) = match line.rsplit_once(' ') {
            Some(parts) => parts,
            None => continue,
        };
        let (metric, label_text) = match head.split_once('{') {
            Some((metric, rest)) => (metric, rest.trim_end_matches('}')),
            None => (head, ""),
        };
        if metric != name {
            continue;
        }
        let pairs: Vec<(&str, &str)> = label_text
            .split("\",")
            .filter_map(|pair| pair.split_once("=\""))
            .map(|(k, v)| (k, v.trim_end_matches('"')))
            .collect();
        if labels.iter().all(|wanted| pairs.contains(wanted))
            && let Ok(value) = value.parse()
        {
            found.push(value);
        }
    }
    found
}

/// The one value of a series; fails when there is none or several.
#[track_caller]
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    match series(text, name, labels)[..] {
        [one] => one,
        ref other => panic!("{name} {labels:?}: {other:?} in\n{text}"),
    }
}

async fn scrape(h: &Harness) -> String {
    h.site().get("/metrics").await.expect(200).text()
}

/// Starts ad-hoc SQL as the admin; returns the run's id.
async fn start(h: &Harness, datasource: &str, sql: &str) -> String {
    let started = h
        .admin()
        .post("/runs", json!({ "datasource_id": datasource, "sql": sql }))
        .await
        .expect(202);
    id_of(&started.body["run"])
}

#[tokio::test]
async fn runs_show_in_histograms_and_counters_by_kind_and_outcome() {
    let h = Harness::new().await;
    let runner = h.runner();
    let sample = h.sample_datasource().await;
    let ok = start(&h, &sample, "select count(*) as n from customers").await;
    assert_eq!(h.wait_run(&h.admin, &ok).await["status"], "succeeded");
    let bad = start(&h, &sample, "select * from no_such_table").await;
    let failed = h.wait_run(&h.admin, &bad).await;
    assert_eq!(failed["status"], "failed");
    runner.shutdown().await;

    let text = scrape(&h).await;
    for outcome in ["succeeded", "failed"] {
        let labels = [("kind", "files"), ("outcome", outcome)];
        for histogram in ["loupe_run_duration_seconds", "loupe_run_queue_wait_seconds"] {
            assert!(
                value(&text, &format!("{histogram}_count"), &labels) >= 1.0,
                "{histogram} {outcome}"
            );
            assert!(
                !series(&text, &format!("{histogram}_bucket"), &labels).is_empty(),
                "{histogram} has buckets"
            );
        }
    }
    assert!(value(&text, "loupe_runs_claimed_total", &[("kind", "files")]) >= 2.0);
    let code = failed["error_code"].as_str().unwrap_or_default();
    assert!(
        value(
            &text,
            "loupe_runs_failed_total",
            &[("kind", "files"), ("code", code)]
        ) >= 1.0
    );
    assert!(text.contains("# HELP loupe_run_duration_seconds"), "{text}");
}

/// Finding: `loupe_runs{status="queued"}` kept its last value once no run
/// was queued any more, because only statuses with runs were set.
#[tokio::test]
async fn a_status_gauge_goes_back_to_zero_when_its_runs_are_gone() {
    let h = Harness::new().await;
    let sample = h.sample_datasource().await;
    let run = start(&h, &sample, "select 1 as one").await;
    let queued = [("datasource_id", sample.as_str()), ("status", "queued")];
    let cancelled = [("datasource_id", sample.as_str()), ("status", "cancelled")];
    let text = scrape(&h).await;
    assert_eq!(value(&text, "loupe_runs", &queued), 1.0);
    assert_eq!(value(&text, "loupe_queue_depth", &[]), 1.0);

    h.admin()
        .post_empty(&format!("/runs/{run}/cancel"))
        .await
        .expect(200);
    let text = scrape(&h).await;
    assert_eq!(value(&text, "loupe_runs", &queued), 0.0);
    assert_eq!(value(&text, "loupe_runs", &cancelled), 1.0);
    assert_eq!(value(&text, "loupe_queue_depth", &[]), 0.0);
    assert_eq!(value(&text, "loupe_queue_oldest_seconds", &[]), 0.0);

    // A datasource whose runs are all gone keeps its series, at 0.
    sqlx::query("DELETE FROM runs")
        .execute(h.services().store().pool())
        .await
        .unwrap();
    let text = scrape(&h).await;
    assert_eq!(value(&text, "loupe_runs", &cancelled), 0.0);
}

/// Finding: series were labelled by datasource name, so two
/// organizations' datasources of the same name wrote one series.
#[tokio::test]
async fn same_named_datasources_of_two_organizations_are_two_series() {
    let h = Harness::new().await;
    let other = h.other_org_admin().await;
    let sample = h.sample_datasource().await;
    let read = h.admin().get(&format!("/datasources/{sample}")).await;
    let root = read.expect(200).body["options"]["root"].clone();
    let body = json!({ "name": "Warehouse", "kind": "files", "options": { "root": root } });
    let mut ids = Vec::new();
    for token in [&h.admin, &other] {
        let created = h.bearer(token).post("/datasources", body.clone()).await;
        let id = created.expect(201).id();
        h.bearer(token)
            .post(
                "/runs",
                json!({ "datasource_id": id, "sql": "select 1 as one" }),
            )
            .await
            .expect(202);
        ids.push(id);
    }
    let text = scrape(&h).await;
    let mut orgs = Vec::new();
    for id in &ids {
        let labels = [("datasource_id", id.as_str()), ("status", "queued")];
        assert_eq!(value(&text, "loupe_runs", &labels), 1.0);
        let line = text
            .lines()
            .find(|l| l.starts_with("loupe_runs{") && l.contains(id.as_str()))
            .unwrap();
        assert!(!line.contains("Warehouse"), "labelled by name: {line}");
        let org = line
            .split("org_id=\"")
            .nth(1)
            .and_then(|s| s.split('"').next());
        orgs.push(org.unwrap().to_owned());
    }
    assert_ne!(orgs[0], orgs[1], "one series per organization");
}

#[tokio::test]
async fn metrics_need_the_configured_token() {
    let token = "a-metrics-token-long-enough";
    let h = Harness::with(|c| {
        c.deployment.metrics_token = Some(loupe_server::config::Secret::from(token));
    })
    .await;
    let refused = h.site().get("/metrics").await.problem(401, "auth.missing");
    assert_eq!(
        refused.header("www-authenticate"),
        Some("Bearer realm=\"metrics\"")
    );
    assert!(!refused.text().contains("loupe_"), "{}", refused.text());
    h.site()
        .header("Authorization", "Bearer not-the-metrics-token")
        .get("/metrics")
        .await
        .problem(401, "auth.invalid_token");
    let bearer = format!("Bearer {token}");
    let allowed = h
        .site()
        .header("Authorization", &bearer)
        .get("/metrics")
        .await
        .expect(200);
    assert!(allowed.text().contains("loupe_queue_depth"));
    // Probes need no token.
    h.site().get("/health/live").await.expect(200);
}

#[tokio::test]
async fn the_organization_shows_what_it_stores() {
    let h = Harness::new().await;
    let runner = h.runner();
    let empty = h.admin().get("/organization").await.expect(200);
    assert_eq!(empty.body["stored_bytes"], 0);
    assert_eq!(empty.body["stored_results"], 0);
    let sample = h.sample_datasource().await;
    let run = start(&h, &sample, "select * from customers").await;
    let done = h.wait_run(&h.admin, &run).await;
    runner.shutdown().await;
    let bytes = done["bytes"].as_u64().unwrap_or_default();
    assert!(bytes > 0, "{done}");

    let org = h.admin().get("/organization").await.expect(200);
    assert_eq!(org.body["stored_bytes"], bytes);
    assert_eq!(org.body["stored_results"], 1);
    assert!(org.body["name"].is_string(), "{}", org.text());
    let other = h.other_org_admin().await;
    let theirs = h.bearer(&other).get("/organization").await.expect(200);
    assert_eq!(theirs.body["stored_bytes"], 0);

    let text = scrape(&h).await;
    let id = org.body["id"].as_str().unwrap();
    let theirs_id = theirs.body["id"].as_str().unwrap();
    assert_eq!(
        value(&text, "loupe_stored_result_bytes", &[("org_id", id)]),
        bytes as f64
    );
    assert_eq!(
        value(&text, "loupe_stored_result_bytes", &[("org_id", theirs_id)]),
        0.0
    );
}

/// A run keeps the W3C trace context of the request that queued it (a
/// malformed one is not kept), for its runner to continue.
#[tokio::test]
async fn a_run_keeps_the_trace_context_of_its_request() {
    let h = Harness::new().await;
    let sample = h.sample_datasource().await;
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let mut ids = Vec::new();
    for (header, sql) in [
        (traceparent, "select 1 as traced"),
        ("00-nonsense-b7ad6b7169203331-01", "select 2 as untraced"),
    ] {
        let started = h
            .admin()
            .header("traceparent", header)
            .post("/runs", json!({ "datasource_id": sample, "sql": sql }))
            .await
            .expect(202);
        ids.push(id_of(&started.body["run"]));
    }
    let stored: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT id, traceparent FROM runs ORDER BY id")
            .fetch_all(h.services().store().pool())
            .await
            .unwrap();
    let of = |id: &str| stored.iter().find(|(r, _)| r == id).map(|(_, t)| t.clone());
    assert_eq!(of(&ids[0]), Some(Some(traceparent.to_owned())));
    assert_eq!(of(&ids[1]), Some(None));

    // The runner finishes it as usual.
    let runner = h.runner();
    assert_eq!(h.wait_run(&h.admin, &ids[0]).await["status"], "succeeded");
    runner.shutdown().await;
}

/// The operations guide lists every metric Loupe records, with its labels:
/// a metric added without a line there, or renamed, fails here.
#[test]
fn the_operations_guide_lists_every_metric() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md");
    let guide = std::fs::read_to_string(&path).unwrap();
    for metric in loupe_services::ops::METRICS {
        let row = guide
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", metric.name)))
            .unwrap_or_else(|| panic!("{} is not in {}", metric.name, path.display()));
        for label in metric.labels {
            assert!(
                row.contains(&format!("`{label}`")),
                "{}: {label}",
                metric.name
            );
        }
    }
}
