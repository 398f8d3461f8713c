//! Signed links open what they name, without signing in, until they
//! expire; every change to one is refused. And the chart endpoint draws
//! from the latest stored result, for callers who may see it.

use loupe_server::config::Secret;
use loupe_services::links::{LinkKey, Resource};
use secrecy::SecretString;
use serde_json::json;

use crate::harness::Harness;

const SIGNING_SECRET: &str = "links-test signing secret, long and random enough: 7Hq2";

fn signed(resource: &Resource<'_>, expires: i64) -> String {
    let key = LinkKey::derive(SIGNING_SECRET.as_bytes()).expect("key");
    let signature = key.sign(resource, expires).expect("signature");
    // The path below the API root.
    resource
        .path(expires, &signature)
        .trim_start_matches("/api/v1")
        .to_owned()
}

#[tokio::test]
async fn signed_links_open_what_they_name_until_they_expire() {
    let h = Harness::with(|c| {
        c.deployment.signing_secret = Some(Secret(SecretString::from(SIGNING_SECRET.to_owned())));
    })
    .await;
    let _runner = h.runner();
    let ds = h.sample_datasource().await;
    let query = h
        .admin()
        .post(
            "/queries",
            json!({ "name": "Customers by country", "datasource_id": ds, "sql": "select country, count(*) as n from customers group by country order by country" }),
        )
        .await
        .expect(201);
    let query_id = query.id();
    let started = h
        .admin()
        .post(&format!("/queries/{query_id}/runs"), json!({}))
        .await
        .expect(202);
    let run = started.body["run"]["id"]
        .as_str()
        .expect("run id")
        .to_owned();
    h.wait_run(&h.admin, &run).await;
    let chart = h
        .admin()
        .post(
            "/visualizations",
            json!({ "query_id": query_id, "type": "bar", "name": "Customers by country", "options": { "x": "country", "y": ["n"] } }),
        )
        .await
        .expect(201);
    let chart_id = chart.id();

    let later = chrono::Utc::now().timestamp() + 600;
    let csv = Resource::Download {
        run_id: &run,
        format: "csv",
    };
    let link = signed(&csv, later);
    let reply = h.anonymous().get(&link).await.expect(200);
    assert!(reply.text().starts_with("country,n"), "{}", reply.text());
    let png = Resource::Image {
        visualization_id: &chart_id,
        run_id: &run,
        format: "png",
    };
    let reply = h.anonymous().get(&signed(&png, later)).await.expect(200);
    assert_eq!(reply.header("content-type"), Some("image/png"));
    assert!(reply.bytes.starts_with(b"\x89PNG"));

    // Each part changed, or the link late: refused, and the refusal does
    // not say which part was wrong.
    let other_format = link.replace("format=csv", "format=parquet");
    let other_expiry = link.replace(
        &format!("expires={later}"),
        &format!("expires={}", later + 1),
    );
    let signature = link
        .rsplit("signature=")
        .next()
        .expect("signature")
        .to_owned();
    let other_run =
        format!("/links/runs/{query_id}/download?format=csv&expires={later}&signature={signature}");
    let forged = link.replace(&signature, &"0".repeat(64));
    let expired = signed(&csv, chrono::Utc::now().timestamp() - 1);
    let image_as_download = signed(&png, later).replace(
        &format!("/links/visualizations/{chart_id}/image?format=png&run={run}"),
        &format!("/links/runs/{run}/download?format=csv"),
    );
    for refused in [
        other_format,
        other_expiry,
        other_run,
        forged,
        expired,
        image_as_download,
    ] {
        h.anonymous()
            .get(&refused)
            .await
            .problem(403, "link.invalid");
    }
    // Without a signature it is not a link at all.
    h.anonymous()
        .get(&format!(
            "/links/runs/{run}/download?format=csv&expires={later}"
        ))
        .await
        .invalid("signature");

    // The chart endpoint itself needs a caller who may see the chart.
    h.anonymous()
        .get(&format!("/visualizations/{chart_id}/image"))
        .await
        .problem_json(401);
    let svg = h
        .admin()
        .get(&format!(
            "/visualizations/{chart_id}/image?format=svg&width=640&height=360"
        ))
        .await
        .expect(200);
    assert_eq!(svg.header("content-type"), Some("image/svg+xml"));
    assert!(svg.text().contains("<svg"), "{}", svg.text());
    h.admin()
        .get(&format!("/visualizations/{chart_id}/image?width=640"))
        .await
        .invalid("width");
    h.admin()
        .get(&format!(
            "/visualizations/{chart_id}/image?width=5&height=5"
        ))
        .await
        .problem_json(422);
}

/// A subscription whose result is larger than the attachment cap sends a
/// signed link instead of the file, and the link downloads the result.
#[tokio::test]
async fn a_result_past_the_attachment_cap_is_sent_as_a_link_that_works() {
    let Some(receiver) =
        crate::process::test_server("LOUPE_TEST_RECEIVER_URL", "the HTTPS receiver")
    else {
        return;
    };
    let Some(received) =
        crate::process::test_server("LOUPE_TEST_RECEIVER_DIR", "the HTTPS receiver")
    else {
        return;
    };
    let Some(ca) = crate::process::test_server("LOUPE_TEST_CA", "the test CA") else {
        return;
    };
    let h = Harness::with(|c| {
        c.deployment.signing_secret = Some(Secret(SecretString::from(SIGNING_SECRET.to_owned())));
        c.deployment.public_url = Some("https://loupe.acme.test".to_owned());
        c.deployment.egress.allow_private = true;
        c.deployment.deliveries.ca_file = Some(ca.into());
        c.deployment.deliveries.attachment_max_bytes = 64;
    })
    .await;
    let _runner = h.runner();
    let ds = h.sample_datasource().await;
    let query = h
        .admin()
        .post(
            "/queries",
            json!({ "name": "All customers", "datasource_id": ds, "sql": "select * from customers order by id" }),
        )
        .await
        .expect(201);
    let path = format!("/cap-{}", uuid::Uuid::now_v7().simple());
    let hook = h
        .admin()
        .post(
            "/destinations",
            json!({ "name": "Reports", "settings": { "kind": "webhook", "url": format!("{receiver}{path}") } }),
        )
        .await
        .expect(201);
    h.admin()
        .post(
            "/subscriptions",
            json!({
                "name": "Customers daily", "target_kind": "query", "target_id": query.id(),
                "cron": "0 6 * * *", "timezone": "UTC", "attachment": "csv",
                "destinations": [hook.id()],
            }),
        )
        .await
        .expect(201);
    sqlx::query("UPDATE subscriptions SET next_run_at = 1")
        .execute(h.services().store().pool())
        .await
        .expect("due now");
    let scheduler =
        loupe_services::runner::Scheduler::new(h.services(), std::time::Duration::from_secs(1));
    assert_eq!(scheduler.tick().await.expect("tick"), 1);
    let dispatcher =
        loupe_services::Dispatcher::new(h.services(), "test", std::time::Duration::from_secs(1));
    let started = std::time::Instant::now();
    let payload = loop {
        dispatcher.tick().await.expect("dispatch");
        let found: Vec<serde_json::Value> = std::fs::read_dir(&received)
            .expect("receiver dir")
            .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
            .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .filter(|r| r["path"] == path.as_str())
            .collect();
        if let Some(request) = found.first() {
            use base64::Engine;
            let body = base64::engine::general_purpose::STANDARD
                .decode(request["body_base64"].as_str().expect("body"))
                .expect("base64");
            break serde_json::from_slice::<serde_json::Value>(&body).expect("json");
        }
        assert!(started.elapsed().as_secs() < 30, "nothing arrived");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(payload["attachments"], json!([]), "too large to attach");
    let links = payload["links"].as_array().expect("links");
    let download = links
        .iter()
        .find(|l| l["label"] == "Download (csv)")
        .and_then(|l| l["url"].as_str())
        .expect("a download link");
    let path = download
        .strip_prefix("https://loupe.acme.test/api/v1")
        .expect("under the public URL");
    let csv = h.anonymous().get(path).await.expect(200).text();
    assert!(
        csv.starts_with("id,name,email"),
        "{}",
        &csv[..40.min(csv.len())]
    );
    assert!(csv.len() > 64);
}
