//! With the `otel` feature: request spans reach an OpenTelemetry
//! collector over OTLP/HTTP, and a run's spans continue the trace of the
//! request that queued it, across processes. The collector here is a real
//! HTTP listener that keeps what it receives.

use std::sync::{Arc, Mutex};

use poem::web::Data;
use poem::{EndpointExt, Route, handler, post};

use crate::process::{ServerProcess, SharedDeployment, client, pairs, serve_on_loopback};

type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

#[handler]
async fn traces(req: &poem::Request, body: poem::Body, received: Data<&Received>) -> &'static str {
    let content_type = req.header("content-type").unwrap_or_default().to_owned();
    let bytes = body.into_vec().await.unwrap_or_default();
    received
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((content_type, bytes));
    ""
}

/// A collector on a free port: what it received, its task, its endpoint.
fn collector() -> (
    Received,
    tokio::task::JoinHandle<std::io::Result<()>>,
    String,
) {
    let received: Received = Arc::default();
    let (task, port) = serve_on_loopback(
        Route::new()
            .at("/v1/traces", post(traces))
            .data(received.clone()),
    );
    (received, task, format!("http://127.0.0.1:{port}/v1/traces"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_reach_the_collector() {
    let (received, collector, endpoint) = collector();
    let server = ServerProcess::start(&[("LOUPE_OTLP_ENDPOINT", endpoint.as_str())]).await;
    let token = server.login().await;
    let me = reqwest::Client::new()
        .get(server.url("/api/v1/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me");
    assert!(me.status().is_success());
    // Shutdown flushes the spans still buffered.
    let (success, log) = server.stop().await;
    assert!(success, "{log}");
    collector.abort();

    let received = received.lock().unwrap_or_else(|p| p.into_inner());
    assert!(
        !received.is_empty(),
        "the collector received nothing; log:\n{log}"
    );
    let (content_type, body) = &received[0];
    assert_eq!(content_type, "application/x-protobuf");
    let all: Vec<u8> = received.iter().flat_map(|(_, b)| b.clone()).collect();
    let contains = |needle: &[u8]| all.windows(needle.len()).any(|w| w == needle);
    assert!(!body.is_empty());
    assert!(contains(b"loupe-server"), "no service name in the export");
    assert!(contains(b"request"), "no request span in the export");
}

/// A span as exported, with the attributes this test reads.
#[derive(Debug, Clone)]
struct Exported {
    name: String,
    trace_id: String,
    span_id: String,
    parent_id: String,
    client: bool,
    db_system: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every span in what the collector received.
fn exported(received: &Received) -> Vec<Exported> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    use prost::Message;
    let received = received.lock().unwrap_or_else(|p| p.into_inner());
    let mut spans = Vec::new();
    for (_, body) in received.iter() {
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
        for span in request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
        {
            let db_system = span
                .attributes
                .iter()
                .find(|a| a.key == "db.system")
                .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                    Any::StringValue(s) => Some(s.clone()),
                    _ => None,
                });
            spans.push(Exported {
                name: span.name.clone(),
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_id: hex(&span.parent_span_id),
                client: span.kind == SpanKind::Client as i32,
                db_system,
            });
        }
    }
    spans
}

/// The request's `traceparent` is continued by the API's request span; the
/// run row carries that span's context to the runner process, whose `run`
/// span continues it, with `claim`, `execute`, `store` and `finish` under
/// it and the metadata statements of each as spans of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_continues_the_trace_of_the_request_that_queued_it() {
    let Some(shared) = SharedDeployment::new().await else {
        return;
    };
    let (received, collector, endpoint) = collector();
    let extra = [("LOUPE_OTLP_ENDPOINT", endpoint.as_str())];
    let api = ServerProcess::start(&pairs(&shared.env("api", &extra))).await;
    let mut runner = ServerProcess::spawn("http", &pairs(&shared.env("runner", &extra)));
    runner.wait_ready().await;

    let token = api.login().await;
    let http = client();
    let sources: serde_json::Value = http
        .get(api.url("/api/v1/datasources"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("datasources")
        .json()
        .await
        .expect("json");
    let ds = sources["items"][0]["id"]
        .as_str()
        .expect("sample")
        .to_owned();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let started: serde_json::Value = http
        .post(api.url("/api/v1/runs"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace}-{caller_span}-01"))
        .json(
            &serde_json::json!({ "datasource_id": ds, "sql": "select count(*) as n from orders" }),
        )
        .send()
        .await
        .expect("run")
        .json()
        .await
        .expect("json");
    let run = started["run"]["id"].as_str().expect("run id").to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let got: serde_json::Value = http
            .get(api.url(&format!("/api/v1/runs/{run}")))
            .bearer_auth(&token)
            .send()
            .await
            .expect("run")
            .json()
            .await
            .expect("json");
        if got["status"] == "succeeded" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{got}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Shutdown flushes the spans still buffered.
    for process in [runner, api] {
        let (ok, log) = process.stop().await;
        assert!(ok, "{log}");
    }
    collector.abort();
    shared.drop().await;

    let spans: Vec<Exported> = exported(&received)
        .into_iter()
        .filter(|s| s.trace_id == trace)
        .collect();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let one = |name: &str| -> Exported {
        let found: Vec<&Exported> = spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "{name} in {names:?}");
        found[0].clone()
    };
    let request = one("request");
    assert_eq!(
        request.parent_id, caller_span,
        "the caller's span is the parent"
    );
    let run_span = one("run");
    assert_eq!(run_span.parent_id, request.span_id, "{names:?}");
    for child in ["claim", "execute", "store", "finish"] {
        assert_eq!(one(child).parent_id, run_span.span_id, "{child}");
    }
    let statements_under = |parent: &Exported| {
        spans
            .iter()
            .filter(|s| {
                s.parent_id == parent.span_id
                    && s.client
                    && s.db_system.as_deref() == Some("loupe_metadata")
            })
            .count()
    };
    assert!(
        statements_under(&request) >= 1,
        "the INSERT of the run: {names:?}"
    );
    assert!(
        statements_under(&one("claim")) >= 1,
        "the claim's UPDATE: {names:?}"
    );
    assert!(
        statements_under(&one("finish")) >= 1,
        "the end's UPDATE: {names:?}"
    );
}
