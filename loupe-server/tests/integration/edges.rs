//! The server's edges: browsers on its own origin and on others, and
//! requests so malformed that hyper refuses them before any middleware
//! runs (sent over a real TCP connection to the real binary, since the
//! test client cannot send them).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{ADMIN_EMAIL, Harness, PASSWORD};
use crate::process::ServerProcess;

fn login() -> Value {
    json!({ "email": ADMIN_EMAIL, "password": PASSWORD })
}

/// Swagger UI at `/docs` signs in with a same-origin POST, and a browser
/// sends `Origin` with it: poem's CORS check alone refused it with 403.
#[tokio::test]
async fn a_browser_on_the_servers_own_origin_may_sign_in_and_others_may_not() {
    let h = Harness::new().await;
    let browser = |origin| {
        h.anonymous()
            .header("Host", "loupe.acme.test:8080")
            .header("Origin", origin)
    };
    browser("http://loupe.acme.test:8080")
        .post("/auth/login", login())
        .await
        .expect(200);
    // Another host, scheme or port is another origin.
    for other in [
        "http://evil.test:8080",
        "https://loupe.acme.test:8080",
        "http://loupe.acme.test:8081",
        "null",
    ] {
        browser(other)
            .post("/auth/login", login())
            .await
            .problem(403, "request.origin_not_allowed");
    }

    // Behind a proxy, the browser's origin is `public_url`'s.
    let proxied =
        Harness::with(|c| c.deployment.public_url = Some("https://loupe.acme.test".to_owned()))
            .await;
    proxied
        .anonymous()
        .header("Host", "127.0.0.1:8080")
        .header("Origin", "https://loupe.acme.test")
        .post("/auth/login", login())
        .await
        .expect(200);
    proxied
        .anonymous()
        .header("Host", "127.0.0.1:8080")
        .header("Origin", "https://evil.test")
        .post("/auth/login", login())
        .await
        .problem(403, "request.origin_not_allowed");
}

/// Sends `request` as is and returns the status, the headers (lower case)
/// and the body of the answer.
fn raw(port: u16, request: &[u8]) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    // Every answer here closes the connection (or says how long it is).
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|n| n.trim().parse::<usize>().ok());
            if length.is_some_and(|n| answer.len() >= end + 4 + n) {
                break;
            }
        }
    }
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an answer");
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    (status, head, answer[end + 4..].to_vec())
}

#[track_caller]
fn assert_problem(answer: &(u16, String, Vec<u8>), status: u16, code: &str) {
    let (got, head, body) = answer;
    let text = String::from_utf8_lossy(body);
    assert_eq!(*got, status, "{head}\n\n{text}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    assert_eq!(body["code"], code, "{text}");
    assert_eq!(body["status"], status, "{text}");
    assert!(body["request_id"].is_string(), "{text}");
    assert!(head.contains("x-request-id: "), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_refused_before_routing_are_problems_too() {
    let server = ServerProcess::start(&[]).await;
    let port = server.port;
    let cases: [(&[u8], u16, &str); 5] = [
        // Invalid UTF-8 once percent-decoded: a route matches, its path
        // parameter cannot be read.
        (
            b"GET /api/v1/queries/%FF HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            400,
            "request.invalid",
        ),
        // A raw byte that is not valid in a request line: hyper refuses it.
        (
            b"GET /api/v1/queries/\xff HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
            "request.malformed",
        ),
        (
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: abc\r\n\r\n{}",
            400,
            "request.malformed",
        ),
        (
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 7\r\n\r\n{}",
            400,
            "request.malformed",
        ),
        (
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}",
            400,
            "request.malformed",
        ),
    ];
    for (request, status, code) in cases {
        let answer = tokio::task::spawn_blocking(move || raw(port, request))
            .await
            .unwrap();
        assert_problem(&answer, status, code);
    }
    // More headers than hyper reads are refused as a problem too.
    let headers: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let big = format!("GET /health/live HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
    let answer = tokio::task::spawn_blocking(move || raw(port, big.as_bytes()))
        .await
        .unwrap();
    assert_problem(&answer, 431, "request.headers_too_large");

    // A well-formed request on the same server is untouched.
    let answer = tokio::task::spawn_blocking(move || {
        raw(
            port,
            b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    })
    .await
    .unwrap();
    assert_eq!(answer.0, 200, "{}", answer.1);
    let (ok, log) = server.stop().await;
    assert!(ok, "{log}");
    assert!(log.contains("request refused before routing"), "{log}");
}
