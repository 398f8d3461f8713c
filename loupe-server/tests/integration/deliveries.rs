//! Results that leave Loupe, end to end through HTTP: two server
//! processes (each with its scheduler, runner and dispatcher) share a
//! PostgreSQL metadata store; destinations of each kind point at a real
//! SMTP server and a real HTTPS receiver on loopback. An alert triggers on
//! its query's second run and clears on the third; a subscription delivers
//! a chart and a CSV attachment. Each server gets exactly the expected
//! messages, once each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use mail_parser::MimeHeaders;
use serde_json::{Value, json};

use crate::process::{ServerProcess, SharedDeployment, client, pairs, test_server};

/// The test SMTP server and HTTPS receiver (`scripts/databases.sh`).
struct Servers {
    smtp: String,
    smtp_user: String,
    smtp_password: String,
    maildir: PathBuf,
    receiver: String,
    received: PathBuf,
    ca: String,
}

impl Servers {
    fn from_env() -> Option<Self> {
        Some(Self {
            smtp: test_server("LOUPE_TEST_SMTP_STARTTLS", "the SMTP server")?,
            smtp_user: test_server("LOUPE_TEST_SMTP_USER", "the SMTP server")?,
            smtp_password: test_server("LOUPE_TEST_SMTP_PASSWORD", "the SMTP server")?,
            maildir: test_server("LOUPE_TEST_SMTP_MAILDIR", "the SMTP server")?.into(),
            receiver: test_server("LOUPE_TEST_RECEIVER_URL", "the HTTPS receiver")?,
            received: test_server("LOUPE_TEST_RECEIVER_DIR", "the HTTPS receiver")?.into(),
            ca: test_server("LOUPE_TEST_CA", "the test CA")?,
        })
    }
}

/// The requests the receiver recorded under `path`, oldest first.
fn received(dir: &Path, path: &str) -> Vec<Value> {
    let mut found: Vec<Value> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
                .filter_map(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
                .filter(|r| r["path"] == path)
                .collect()
        })
        .unwrap_or_default();
    found.sort_by(|a, b| {
        let at = |r: &Value| r["arrival"].as_f64().unwrap_or_default();
        at(a).total_cmp(&at(b))
    });
    found
}

/// A recorded request's header `name` (any case), or "".
fn header(request: &Value, name: &str) -> String {
    request["headers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|pair| {
            pair[0]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .and_then(|pair| pair[1].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// A recorded request's raw body.
fn raw_body(request: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(request["body_base64"].as_str().unwrap_or_default())
        .expect("base64 body")
}

/// A recorded request's body as JSON.
fn body(request: &Value) -> Value {
    serde_json::from_slice(&raw_body(request)).expect("JSON body")
}

/// The messages the SMTP server accepted for `to`.
fn mails_to(dir: &Path, to: &str) -> Vec<Vec<u8>> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
                .filter(|m| {
                    mail_parser::MessageParser::default()
                        .parse(m)
                        .and_then(|p| {
                            p.to()
                                .and_then(|t| t.first())
                                .and_then(|a| a.address().map(|s| s == to))
                        })
                        .unwrap_or(false)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `check` holds (60 s at most).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what}: not within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct Api {
    base: String,
    token: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        expect: u16,
    ) -> Value {
        let mut request = client()
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        assert_eq!(status, expect, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn post(&self, path: &str, body: Value, expect: u16) -> Value {
        self.call(reqwest::Method::POST, path, Some(body), expect)
            .await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None, 200).await
    }

    /// Runs saved query `id` now and waits for it to end.
    async fn run(&self, id: &str) -> Value {
        let started = self
            .post(&format!("/queries/{id}/runs"), json!({}), 202)
            .await;
        let run = started["run"]["id"].as_str().expect("run id").to_owned();
        let began = Instant::now();
        loop {
            let seen = self.get(&format!("/runs/{run}")).await;
            if seen["status"] != "queued" && seen["status"] != "running" {
                return seen;
            }
            assert!(
                began.elapsed() < Duration::from_secs(60),
                "run {run} did not end"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_and_subscriptions_reach_smtp_and_https_receivers_once() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let Some(shared) = SharedDeployment::new().await else {
        return;
    };
    let data = tempfile::tempdir().expect("temp dir");
    let write_levels = |levels: &[i64]| {
        let mut csv = String::from("day,level\n");
        for (i, l) in levels.iter().enumerate() {
            csv.push_str(&format!("2026-11-{:02},{l}\n", i + 1));
        }
        std::fs::write(data.path().join("levels.csv"), csv).expect("levels.csv");
    };
    write_levels(&[5, 7, 6]);
    let roots = format!("[\"{}\"]", data.path().display());
    // Ids are unique per test, so the receiver's paths tell this test's
    // requests from any other's.
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let extra = [
        ("LOUPE_FILES_ROOTS", roots.as_str()),
        ("LOUPE_EGRESS__ALLOW_PRIVATE", "true"),
        ("LOUPE_DELIVERIES__CA_FILE", servers.ca.as_str()),
        ("LOUPE_DELIVERIES__EVERY", "200ms"),
        ("LOUPE_SCHEDULE_EVERY", "200ms"),
        ("LOUPE_PUBLIC_URL", "https://loupe.acme.test"),
    ];
    let env = shared.env("all", &extra);
    let first = ServerProcess::start(&pairs(&env)).await;
    let second = ServerProcess::start(&pairs(&env)).await;
    let api = Api {
        base: first.url("/api/v1"),
        token: first.login().await,
    };

    // A files datasource over the directory, a query, a bar chart of it.
    let ds = api
        .post(
            "/datasources",
            json!({ "name": "Levels", "kind": "files", "options": { "root": data.path() } }),
            201,
        )
        .await;
    let query = api
        .post(
            "/queries",
            json!({ "name": "Levels", "datasource_id": ds["id"], "sql": "select day, level from levels order by day" }),
            201,
        )
        .await;
    let query_id = query["id"].as_str().expect("query id").to_owned();
    let chart = api
        .post(
            "/visualizations",
            json!({ "query_id": query_id, "type": "bar", "name": "Levels by day", "options": { "x": "day", "y": ["level"] } }),
            201,
        )
        .await;

    // One destination of each kind.
    let (host, port) = servers.smtp.rsplit_once(':').expect("host:port");
    let mailbox = format!("reports-{tag}@acme.test");
    let email = api
        .post(
            "/destinations",
            json!({
                "name": "Reports by email",
                "settings": { "kind": "email", "host": host, "port": port.parse::<u16>().expect("port"), "tls": "starttls",
                              "username": servers.smtp_user, "from": "Loupe <loupe@acme.test>", "reply_to": "data@acme.test",
                              "to": [mailbox] },
                "secrets": { "password": servers.smtp_password },
            }),
            201,
        )
        .await;
    assert!(email["settings"]["to"].is_array());
    assert_eq!(
        email["secrets_set"],
        json!(["password"]),
        "secret names only"
    );
    let hook_path = format!("/hook-{tag}");
    let signing = "a webhook signing secret of some length";
    let webhook = api
        .post(
            "/destinations",
            json!({
                "name": "Ops webhook",
                "settings": { "kind": "webhook", "url": format!("{}{hook_path}", servers.receiver) },
                "secrets": { "signing_secret": signing, "headers": { "Authorization": "Bearer hook-token" } },
            }),
            201,
        )
        .await;
    let slack_path = format!("/slack-{tag}");
    let slack = api
        .post(
            "/destinations",
            json!({
                "name": "Ops channel",
                "settings": { "kind": "slack", "channel": "#ops" },
                "secrets": { "url": format!("{}{slack_path}", servers.receiver) },
            }),
            201,
        )
        .await;
    let text = serde_json::to_string(&slack).expect("json");
    assert!(
        !text.contains(&slack_path),
        "the Slack URL is a secret: {text}"
    );

    // Each destination's test message arrives, and says so.
    for destination in [&email, &webhook, &slack] {
        let id = destination["id"].as_str().expect("id");
        let tested = api
            .post(&format!("/destinations/{id}/test"), json!({}), 200)
            .await;
        assert_eq!(tested["status"], "delivered", "{tested}");
        assert_eq!(tested["attempts"], 1);
    }
    assert_eq!(mails_to(&servers.maildir, &mailbox).len(), 1);
    assert_eq!(received(&servers.received, &hook_path).len(), 1);
    assert_eq!(received(&servers.received, &slack_path).len(), 1);

    // An alert: any level over 10, to the webhook and Slack.
    let alert = api
        .post(
            "/alerts",
            json!({
                "query_id": query_id, "name": "Level too high",
                "condition": { "kind": "rows", "quantifier": "any", "column": "level", "op": ">", "value": 10 },
                "destinations": [webhook["id"], slack["id"]],
            }),
            201,
        )
        .await;
    let alert_id = alert["id"].as_str().expect("alert id").to_owned();
    assert_eq!(alert["state"], "unknown");
    assert_eq!(api.run(&query_id).await["status"], "succeeded");
    write_levels(&[5, 42, 6]);
    assert_eq!(api.run(&query_id).await["status"], "succeeded");
    write_levels(&[5, 7, 6]);
    assert_eq!(api.run(&query_id).await["status"], "succeeded");
    // The runner evaluates the alert just after it records the run's end.
    let started = Instant::now();
    let seen = loop {
        let seen = api.get(&format!("/alerts/{alert_id}")).await;
        if seen["evaluations"].as_i64() == Some(3) || started.elapsed() > Duration::from_secs(30) {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (seen["state"].as_str(), seen["evaluations"].as_i64()),
        (Some("ok"), Some(3)),
        "{seen}"
    );
    eventually("the alert's two transitions reach the webhook", || {
        received(&servers.received, &hook_path).len() == 3
    })
    .await;
    eventually("the alert's two transitions reach Slack", || {
        received(&servers.received, &slack_path).len() == 3
    })
    .await;

    // A subscription to the chart with the result as CSV, due now, with
    // two schedulers looking.
    let subscription = api
        .post(
            "/subscriptions",
            json!({
                "name": "Levels weekly", "target_kind": "visualization", "target_id": chart["id"],
                "cron": "0 8 * * 1", "timezone": "Europe/Berlin", "attachment": "csv",
                "destinations": [email["id"], webhook["id"]],
            }),
            201,
        )
        .await;
    let subscription_id = subscription["id"].as_str().expect("id").to_owned();
    shared
        .execute("UPDATE subscriptions SET next_run_at = 1")
        .await;
    eventually("the subscription's email arrives", || {
        mails_to(&servers.maildir, &mailbox).len() == 2
    })
    .await;
    eventually("the subscription's webhook arrives", || {
        received(&servers.received, &hook_path).len() == 4
    })
    .await;
    // Give a duplicate time to show up, if there were one.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Exactly the expected messages, once each.
    let hooks = received(&servers.received, &hook_path);
    let slacks = received(&servers.received, &slack_path);
    assert_eq!(hooks.len(), 4, "test, triggered, cleared, subscription");
    assert_eq!(slacks.len(), 3, "test, triggered, cleared");
    let mails = mails_to(&servers.maildir, &mailbox);
    assert_eq!(mails.len(), 2, "test and subscription");
    // Webhooks name their delivery, so a receiver can drop a copy (Slack
    // takes no such header; its count above says each came once).
    let ids: BTreeMap<String, usize> = hooks.iter().fold(BTreeMap::new(), |mut ids, r| {
        *ids.entry(header(r, "Loupe-Delivery")).or_default() += 1;
        ids
    });
    assert!(
        !ids.contains_key(""),
        "every request names its delivery: {ids:?}"
    );
    assert!(
        ids.values().all(|n| *n == 1),
        "a delivery arrived twice: {ids:?}"
    );

    // The webhook: signed, with the custom header; the alert's payloads
    // say what happened.
    for request in &hooks {
        assert_eq!(header(request, "Authorization"), "Bearer hook-token");
        let now = chrono::Utc::now().timestamp();
        let signature = header(request, "Loupe-Signature");
        loupe_services::delivery::verify(
            signing.as_bytes(),
            &signature,
            &raw_body(request),
            now,
            600,
        )
        .expect("a valid signature");
    }
    let events: Vec<Value> = hooks.iter().map(body).collect();
    assert_eq!(
        events[1]["event"]["alert"]["to"], "triggered",
        "{}",
        events[1]
    );
    assert_eq!(events[2]["event"]["alert"]["to"], "ok", "{}", events[2]);
    assert_eq!(events[3]["event"]["type"], "subscription", "{}", events[3]);
    let images = events[3]["images"].as_array().expect("images");
    assert_eq!(images.len(), 1, "the chart is attached to the webhook");
    let png = base64::engine::general_purpose::STANDARD
        .decode(images[0]["data_base64"].as_str().expect("image data"))
        .expect("png");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let slack_events: Vec<Value> = slacks.iter().map(body).collect();
    assert!(
        slack_events[1]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("triggered"),
        "{}",
        slack_events[1]
    );
    assert!(slack_events[1]["blocks"].is_array());

    // The email: a chart inline (referenced by its Content-ID) and the
    // result attached as CSV.
    let subscription_mail = mails
        .iter()
        .map(|m| {
            mail_parser::MessageParser::default()
                .parse(m)
                .expect("MIME")
        })
        .find(|m| m.subject().is_some_and(|s| s.contains("Levels weekly")))
        .expect("the subscription's email");
    assert_eq!(
        subscription_mail
            .reply_to()
            .and_then(|r| r.first())
            .and_then(|a| a.address()),
        Some("data@acme.test")
    );
    let html = subscription_mail.body_html(0).expect("an HTML part");
    let cid = html
        .split("cid:")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an inline image reference")
        .to_owned();
    let mut inline_png = false;
    let mut csv = None;
    for part in subscription_mail.attachments() {
        let content_type = part
            .content_type()
            .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or_default()));
        match content_type.as_deref() {
            Some("image/png") => {
                assert_eq!(part.content_id(), Some(cid.as_str()));
                assert!(part.contents().starts_with(b"\x89PNG"));
                inline_png = true;
            }
            Some("text/csv") => csv = Some(String::from_utf8_lossy(part.contents()).into_owned()),
            other => panic!("an unexpected part: {other:?}"),
        }
    }
    assert!(inline_png, "the chart is inline");
    let csv = csv.expect("the CSV attachment");
    assert_eq!(csv.lines().next(), Some("day,level"));
    assert_eq!(csv.lines().count(), 4, "{csv}");

    // The log agrees: every delivery delivered, on the first attempt.
    let log = api.get("/deliveries?limit=100").await;
    let items = log["items"].as_array().expect("items");
    assert_eq!(
        items.len(),
        9,
        "3 tests, 4 alert notes, 2 subscription sends: {log}"
    );
    for item in items {
        assert_eq!(
            (item["status"].as_str(), item["attempts"].as_i64()),
            (Some("delivered"), Some(1)),
            "{item}"
        );
    }
    let of_subscription = api
        .get(&format!("/deliveries?source={subscription_id}"))
        .await;
    assert_eq!(of_subscription["total"], 2);

    for server in [first, second] {
        let (ok, log) = server.stop().await;
        assert!(ok, "a server did not stop cleanly:\n{log}");
    }
    shared.drop().await;
}
