//! What wraps every request: its id, one log line, metrics, security
//! headers, and errors as problem+json.

use loupe_core::codes;
use std::sync::Arc;
use std::time::Instant;

use poem::http::{HeaderName, HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::OperationId;
use tracing::Instrument;

use crate::problem::{BODY_TOO_LARGE, REQUEST_ID, problem, problem_response, to_problem_response};
use crate::state::AppState;

const REQUEST_ID_HEADER: &str = "x-request-id";

/// Request id, access log, metrics, security headers and problem+json
/// for errors raised outside handlers.
pub(crate) struct Observe {
    pub(crate) state: Arc<AppState>,
    pub(crate) routes: Arc<Routes>,
}

/// The API's routes and their methods, from its OpenAPI document, for the
/// `Allow` header of a 405.
#[derive(Debug, Default)]
pub(crate) struct Routes(Vec<(Vec<Option<String>>, String)>);

impl Routes {
    /// The routes of `spec` (JSON), served under `prefix`.
    pub(crate) fn from_spec(spec: &str, prefix: &str) -> Self {
        let doc: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        let mut routes = Vec::new();
        if let Some(paths) = doc["paths"].as_object() {
            for (path, item) in paths {
                let segments = format!("{prefix}{path}")
                    .split('/')
                    .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                    .collect();
                let mut methods: Vec<String> = item
                    .as_object()
                    .map(|m| m.keys().map(|k| k.to_uppercase()).collect())
                    .unwrap_or_default();
                methods.sort();
                routes.push((segments, methods.join(", ")));
            }
        }
        Self(routes)
    }

    /// The methods `path` accepts, if it is a route.
    pub(crate) fn allowed(&self, path: &str) -> Option<&str> {
        let parts: Vec<&str> = path.split('/').collect();
        self.0
            .iter()
            .find(|(segments, _)| {
                segments.len() == parts.len()
                    && segments
                        .iter()
                        .zip(&parts)
                        .all(|(s, p)| s.as_deref().is_none_or(|s| s == *p))
            })
            .map(|(_, methods)| methods.as_str())
    }
}

impl<E: Endpoint> Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        ObserveEndpoint {
            inner: ep,
            state: self.state.clone(),
            routes: self.routes.clone(),
        }
    }
}

/// The endpoint [`Observe`] makes.
pub(crate) struct ObserveEndpoint<E> {
    inner: E,
    state: Arc<AppState>,
    routes: Arc<Routes>,
}

/// A request id from the client is kept when it is short and plain;
/// otherwise a new one is made.
fn request_id(req: &Request) -> String {
    req.headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string())
}

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let id = request_id(&req);
        let too_large = limit_body(&mut req, self.state.config.server.max_body_bytes);
        let method = req.method().to_string();
        // The path without the query string: tokens never appear in it,
        // but a query string could carry anything.
        let path = req.uri().path().to_owned();
        let ip = self.state.client_ip(&req);
        let is_docs = path == "/docs" || path.starts_with("/docs/");
        let span = tracing::info_span!("request", request_id = %id);
        let started = Instant::now();
        let result = REQUEST_ID
            .scope(id.clone(), async {
                if too_large {
                    return problem_response(problem(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        codes::REQUEST_TOO_LARGE,
                        format!(
                            "the request body is larger than {} bytes",
                            self.state.config.server.max_body_bytes
                        ),
                        Vec::new(),
                    ));
                }
                match self.inner.call(req).await {
                    Ok(out) => out.into_response(),
                    Err(error) => {
                        let operation = error.data::<OperationId>().map(|o| o.0);
                        let mut resp = to_problem_response(error);
                        if let Some(operation) = operation {
                            resp.set_data(OperationId(operation));
                        }
                        resp
                    }
                }
            })
            .instrument(span.clone())
            .await;
        let mut resp = result;
        let elapsed = started.elapsed();
        let status = resp.status();
        let route =
            resp.data::<OperationId>()
                .map(|o| o.0)
                .unwrap_or(if status == StatusCode::NOT_FOUND {
                    "unmatched"
                } else {
                    "other"
                });
        metrics::counter!(
            "loupe_http_requests_total",
            "route" => route,
            "method" => method.clone(),
            "status" => status.as_u16().to_string()
        )
        .increment(1);
        metrics::histogram!("loupe_http_request_duration_seconds", "route" => route)
            .record(elapsed.as_secs_f64());
        span.in_scope(|| {
            tracing::info!(
                method = %method,
                path = %path,
                route,
                status = status.as_u16(),
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                ip = ip.as_deref().unwrap_or("-"),
                "request"
            );
        });
        let allow = (status == StatusCode::METHOD_NOT_ALLOWED)
            .then(|| self.routes.allowed(&path))
            .flatten()
            .and_then(|m| HeaderValue::from_str(m).ok());
        let headers = resp.headers_mut();
        if let Some(allow) = allow {
            headers.insert(poem::http::header::ALLOW, allow);
        }
        if let Ok(value) = HeaderValue::from_str(&id) {
            headers.insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
        }
        security_headers(headers, is_docs, self.state.config.server.hsts);
        Ok(resp)
    }
}

/// Refuses a body announced larger than `max` (true), and cuts off a body
/// without a length once it passes `max`, so it fails to parse instead of
/// filling memory.
fn limit_body(req: &mut Request, max: u64) -> bool {
    use futures::StreamExt;
    let announced = req
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match announced {
        Some(n) => n > max,
        None => {
            let mut seen = 0u64;
            let stream = req.take_body().into_bytes_stream().map(move |chunk| {
                let chunk = chunk?;
                seen += chunk.len() as u64;
                if seen > max {
                    Err(std::io::Error::other(BODY_TOO_LARGE))
                } else {
                    Ok(chunk)
                }
            });
            req.set_body(poem::Body::from_bytes_stream(stream));
            false
        }
    }
}

fn security_headers(headers: &mut poem::http::HeaderMap, is_docs: bool, hsts: bool) {
    let set = |headers: &mut poem::http::HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    };
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "x-frame-options", "DENY");
    set(headers, "referrer-policy", "no-referrer");
    // The docs page is Swagger UI with its script and style inline; the
    // API itself serves no active content.
    set(
        headers,
        "content-security-policy",
        if is_docs {
            "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
        } else {
            "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
        },
    );
    if hsts {
        set(
            headers,
            "strict-transport-security",
            "max-age=31536000; includeSubDomains",
        );
    }
}
