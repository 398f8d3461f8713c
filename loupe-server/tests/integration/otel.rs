//! With the `otel` feature: request spans reach an OpenTelemetry
//! collector over OTLP/HTTP. The collector here is a real HTTP listener
//! that keeps what it receives.

use std::sync::{Arc, Mutex};

use poem::web::Data;
use poem::{EndpointExt, Route, handler, post};

use crate::process::{ServerProcess, free_port};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_reach_the_collector() {
    let received: Received = Arc::default();
    let port = free_port();
    let collector = poem::Server::new(poem::listener::TcpListener::bind(format!(
        "127.0.0.1:{port}"
    )))
    .run(
        Route::new()
            .at("/v1/traces", post(traces))
            .data(received.clone()),
    );
    let collector = tokio::spawn(collector);

    let endpoint = format!("http://127.0.0.1:{port}/v1/traces");
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
