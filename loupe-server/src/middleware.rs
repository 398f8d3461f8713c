//! What wraps every request: its id, one log line, metrics, security
//! headers, and errors as problem+json; the browser origin check for the
//! server's own pages and the CORS rules for other origins ([`cors`]);
//! body types held to the document; and, below HTTP,
//! problem+json for requests hyper refuses before any of this runs.

mod body_schema;
mod cors;

pub(crate) use cors::{ALLOWED_HEADERS, ALLOWED_METHODS, cors};

use loupe_core::codes;
use loupe_services::trace_context::{self, TraceParent};
use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use futures::FutureExt;
use poem::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use poem::listener::{Acceptor, Listener};
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::OperationId;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::Instrument;

use crate::problem::{
    BODY_TOO_LARGE, FieldProblem, REQUEST_ID, problem, problem_response, to_problem_response,
};
use crate::state::AppState;

const REQUEST_ID_HEADER: &str = "x-request-id";

/// Request id, access log, metrics, security headers and problem+json
/// for errors raised outside handlers.
pub(crate) struct Observe {
    pub(crate) state: Arc<AppState>,
    pub(crate) routes: Arc<Routes>,
}

/// The API's routes, from its OpenAPI document: their methods, for the
/// `Allow` header of a 405, and the schema of each JSON request body.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    doc: Value,
    routes: Vec<Route>,
}

#[derive(Debug)]
struct Route {
    /// The path's segments; `None` for a parameter.
    segments: Vec<Option<String>>,
    /// `DELETE, GET, PATCH`.
    methods: String,
    /// The JSON body's schema by method.
    bodies: BTreeMap<String, Value>,
    /// The path as the document names it, with its prefix.
    template: String,
}

impl Routes {
    /// The routes of `doc`, served under `prefix`.
    pub(crate) fn from_spec(doc: &Value, prefix: &str) -> Self {
        let mut routes = Vec::new();
        if let Some(paths) = doc["paths"].as_object() {
            for (path, item) in paths {
                let segments = format!("{prefix}{path}")
                    .split('/')
                    .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                    .collect();
                let operations = item.as_object().cloned().unwrap_or_default();
                let mut methods: Vec<String> =
                    operations.keys().map(|k| k.to_uppercase()).collect();
                methods.sort();
                let bodies = operations
                    .iter()
                    .filter_map(|(method, op)| {
                        let content = op["requestBody"]["content"].as_object()?;
                        let (_, media) = content
                            .iter()
                            .find(|(media, _)| media.starts_with("application/json"))?;
                        Some((method.to_uppercase(), media["schema"].clone()))
                    })
                    .collect();
                routes.push(Route {
                    template: format!("{prefix}{path}"),
                    segments,
                    methods: methods.join(", "),
                    bodies,
                });
            }
        }
        Self {
            doc: doc.clone(),
            routes,
        }
    }

    fn route(&self, path: &str) -> Option<&Route> {
        let parts: Vec<&str> = path.split('/').collect();
        self.routes.iter().find(|route| {
            route.segments.len() == parts.len()
                && route
                    .segments
                    .iter()
                    .zip(&parts)
                    .all(|(s, p)| s.as_deref().is_none_or(|s| s == *p))
        })
    }

    /// The route `path` matches, as the document names it (the API path
    /// with `{placeholders}`), or `other`.
    pub(crate) fn template(&self, path: &str) -> &str {
        self.route(path).map_or("other", |r| r.template.as_str())
    }

    /// The methods `path` accepts, if it is a route.
    pub(crate) fn allowed(&self, path: &str) -> Option<&str> {
        self.route(path).map(|r| r.methods.as_str())
    }

    /// The schema of the JSON body `method path` takes, if any.
    fn body_schema(&self, method: &Method, path: &str) -> Option<&Value> {
        self.route(path)?.bodies.get(method.as_str())
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

/// `path` as the access log shows it: the token of a public link or an
/// embedded page (`/api/v1/public/<token>`, `/api/v1/embed/<token>`) is a
/// credential and stays out of logs.
fn loggable_path(path: &str) -> String {
    for prefix in ["/api/v1/public/", "/api/v1/embed/"] {
        if path.len() > prefix.len() && path.starts_with(prefix) {
            return format!("{prefix}…");
        }
    }
    path.to_owned()
}

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let id = request_id(&req);
        let too_large = limit_body(&mut req, self.state.config.server.max_body_bytes);
        let method = req.method().to_string();
        // The path without the query string, which could carry anything;
        // the tokens of public links and embedded pages, which are paths,
        // are cut off.
        let path = loggable_path(req.uri().path());
        let ip = self.state.client_ip(&req);
        let is_docs = path == "/docs" || path.starts_with("/docs/");
        // A W3C trace context from the client (or its proxy): the request's
        // span continues it, and runs it queues carry it to their runner.
        let received = req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(TraceParent::parse);
        let span = tracing::info_span!(
            "request",
            request_id = %id,
            trace_id = received.as_ref().map(TraceParent::trace_id)
        );
        if let Some(parent) = &received {
            trace_context::continue_trace(&span, parent);
        }
        let started = Instant::now();
        let work = async {
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
            let called = std::panic::AssertUnwindSafe(self.inner.call(req))
                .catch_unwind()
                .await;
            match called {
                // A panic is a bug: the hook has reported it; the client
                // gets a 500 naming the request, not a dropped connection.
                Err(payload) => {
                    let error =
                        loupe_services::error_tracking::panicked("the handler", payload.as_ref());
                    tracing::error!(error = %error, "request failed");
                    problem_response(problem(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        codes::INTERNAL,
                        "the server could not complete the request; the request id names it in the server log"
                            .to_owned(),
                        Vec::new(),
                    ))
                }
                Ok(Ok(out)) => out.into_response(),
                Ok(Err(error)) => {
                    let operation = error.data::<OperationId>().map(|o| o.0);
                    let mut resp = to_problem_response(error);
                    if let Some(operation) = operation {
                        resp.set_data(OperationId(operation));
                    }
                    resp
                }
            }
        };
        let work = REQUEST_ID
            .scope(id.clone(), trace_context::scope(received, work))
            .instrument(span.clone());
        let route_template = self.routes.template(&path);
        let result = match loupe_services::error_tracking::request_hub(&id, route_template) {
            Some(hub) => sentry::SentryFutureExt::bind_hub(work, hub).await,
            None => work.await,
        };
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
            loupe_services::ops::HTTP_REQUESTS,
            "route" => route,
            "method" => method.clone(),
            "status" => status.as_u16().to_string()
        )
        .increment(1);
        metrics::histogram!(loupe_services::ops::HTTP_REQUEST_DURATION, "route" => route)
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

/// Holds JSON request bodies to the types their schema in the document
/// states ([`body_schema`]), before poem-openapi's more lenient parsing: a
/// body the document forbids is refused with 400 naming each field.
pub(crate) struct StrictBodies {
    pub(crate) routes: Arc<Routes>,
}

impl<E: Endpoint> Middleware<E> for StrictBodies {
    type Output = StrictBodiesEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        StrictBodiesEndpoint {
            inner: ep,
            routes: self.routes.clone(),
        }
    }
}

/// The endpoint [`StrictBodies`] makes.
pub(crate) struct StrictBodiesEndpoint<E> {
    inner: E,
    routes: Arc<Routes>,
}

impl<E: Endpoint> Endpoint for StrictBodiesEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let is_json = req
            .content_type()
            .is_some_and(|t| t.starts_with("application/json"));
        let schema = is_json
            .then(|| self.routes.body_schema(req.method(), req.uri().path()))
            .flatten();
        let Some(schema) = schema else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        let bytes = req.take_body().into_bytes().await.map_err(|e| {
            // A body cut off by the size limit keeps its cause for the 413.
            poem::Error::from_string(e.to_string(), StatusCode::BAD_REQUEST)
        })?;
        // A body that is not JSON is poem-openapi's to refuse, in its words.
        if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
            let found = body_schema::violations(&self.routes.doc, schema, &value);
            if !found.is_empty() {
                return Ok(schema_violation(found));
            }
        }
        req.set_body(bytes);
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

fn schema_violation(found: Vec<body_schema::Violation>) -> Response {
    let describe = |v: &body_schema::Violation| {
        if v.field.is_empty() {
            format!("the body: {}", v.message)
        } else {
            format!("{}: {}", v.field, v.message)
        }
    };
    let detail = format!(
        "the body does not match the API document: {}",
        found.iter().map(describe).collect::<Vec<_>>().join("; ")
    );
    let errors = found
        .into_iter()
        .map(|v| FieldProblem {
            field: v.field,
            code: v.code.to_owned(),
            message: v.message,
        })
        .collect();
    problem_response(problem(
        StatusCode::BAD_REQUEST,
        // Malformed, as poem-openapi's own parse failures are; `errors`
        // names each field.
        codes::REQUEST_INVALID,
        detail,
        errors,
    ))
}

/// Lets a browser on the server's own origin past the CORS check. A
/// browser sends `Origin` with a same-origin POST too (Swagger UI at
/// `/docs` signing in); such a request is not cross-origin, so its
/// `Origin` is dropped before [`poem::middleware::Cors`], which would
/// otherwise refuse every origin that `cors.allowed_origins` does not list.
///
/// The server's own origin is the request's scheme (or `X-Forwarded-Proto`
/// behind a trusted proxy) with its `Host`, or `public_url`'s origin.
pub(crate) struct SameOrigin {
    /// `public_url`'s origin, such as `https://loupe.example.com`.
    pub(crate) public: Option<url::Origin>,
    /// Read the scheme from `X-Forwarded-Proto` (`trust_forwarded_for`).
    pub(crate) trust_forwarded: bool,
}

impl SameOrigin {
    /// Whether `origin` is the origin `req` was sent to.
    fn is_own(&self, req: &Request, origin: &str) -> bool {
        let Ok(origin) = url::Url::parse(origin).map(|u| u.origin()) else {
            return false;
        };
        if !origin.is_tuple() {
            return false;
        }
        if self.public.as_ref() == Some(&origin) {
            return true;
        }
        let forwarded = self
            .trust_forwarded
            .then(|| req.headers().get("x-forwarded-proto"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_ascii_lowercase());
        let scheme = forwarded.unwrap_or_else(|| req.scheme().as_str().to_owned());
        let host = req
            .headers()
            .get(poem::http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()));
        // Only a host and port: anything else cannot name this server.
        let Some(host) = host.filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        }) else {
            return false;
        };
        matches!(scheme.as_str(), "http" | "https")
            && url::Url::parse(&format!("{scheme}://{host}")).is_ok_and(|u| u.origin() == origin)
    }
}

impl<E: Endpoint> Middleware<E> for SameOrigin {
    type Output = SameOriginEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        SameOriginEndpoint {
            inner: ep,
            check: SameOrigin {
                public: self.public.clone(),
                trust_forwarded: self.trust_forwarded,
            },
        }
    }
}

/// The endpoint [`SameOrigin`] makes.
pub(crate) struct SameOriginEndpoint<E> {
    inner: E,
    check: SameOrigin,
}

impl<E: Endpoint> Endpoint for SameOriginEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let own = req
            .headers()
            .get(poem::http::header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|origin| self.check.is_own(&req, origin));
        if own {
            req.headers_mut().remove(poem::http::header::ORIGIN);
        }
        self.inner.call(req).await
    }
}

/// A listener whose connections answer with problem+json what hyper
/// refuses on its own (a request line or header that is not valid HTTP,
/// a bad `Content-Length`, headers or a URI too large). Those requests
/// never reach a middleware: hyper writes a bare status line with an empty
/// body and closes the connection. [`ProblemIo`] recognizes that response
/// as it is written and sends a problem in its place.
pub(crate) struct ProblemListener<L> {
    pub(crate) inner: L,
    pub(crate) hsts: bool,
}

impl<L: Listener> Listener for ProblemListener<L> {
    type Acceptor = ProblemAcceptor<L::Acceptor>;

    async fn into_acceptor(self) -> io::Result<Self::Acceptor> {
        Ok(ProblemAcceptor {
            inner: self.inner.into_acceptor().await?,
            hsts: self.hsts,
        })
    }
}

/// The acceptor of a [`ProblemListener`].
pub(crate) struct ProblemAcceptor<A> {
    inner: A,
    hsts: bool,
}

impl<A: Acceptor> Acceptor for ProblemAcceptor<A> {
    type Io = ProblemIo<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(
        &mut self,
    ) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, poem::http::uri::Scheme)> {
        let (io, local, remote, scheme) = self.inner.accept().await?;
        let io = ProblemIo {
            inner: io,
            hsts: self.hsts,
            pending: None,
        };
        Ok((io, local, remote, scheme))
    }
}

/// A connection that replaces hyper's bare refusals with problem+json.
/// It does not claim vectored writes, so hyper hands each response head
/// over in one buffer.
pub(crate) struct ProblemIo<T> {
    inner: T,
    hsts: bool,
    /// A replacement being written, and how much of it is written.
    pending: Option<(Vec<u8>, usize)>,
}

impl<T: AsyncWrite + Unpin> ProblemIo<T> {
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ProblemIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ProblemIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        if let Some(replacement) = refusal_as_problem(buf, this.hsts) {
            this.pending = Some((replacement, 0));
            // hyper's bytes count as written; the rest of the replacement
            // goes out on the next write, flush or shutdown.
            if let Poll::Ready(Err(e)) = this.drain(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// A problem+json response in place of `head`, if `head` is one of hyper's
/// own refusals: a whole response head with a 400, 414 or 431 status,
/// `content-length: 0` and `connection: close`. Every response Loupe
/// itself makes with such a status has a problem body, so it never matches.
fn refusal_as_problem(head: &[u8], hsts: bool) -> Option<Vec<u8>> {
    let head = std::str::from_utf8(head.strip_suffix(b"\r\n\r\n")?).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let version = ["HTTP/1.1 ", "HTTP/1.0 "]
        .into_iter()
        .find(|v| status_line.starts_with(v))?;
    let status: u16 = status_line
        .get(version.len()..version.len() + 3)?
        .parse()
        .ok()?;
    let headers: Vec<&str> = lines.collect();
    let has = |line: &str| headers.iter().any(|h| h.eq_ignore_ascii_case(line));
    if !has("content-length: 0") || !has("connection: close") {
        return None;
    }
    let (code, detail) = match status {
        400 => (
            codes::REQUEST_MALFORMED,
            "the request is not valid HTTP: check its request line (the path must be \
             percent-encoded UTF-8), its headers and its Content-Length",
        ),
        414 => (
            codes::REQUEST_URI_TOO_LONG,
            "the request's URI is too long; send long input in a body",
        ),
        431 => (
            codes::REQUEST_HEADERS_TOO_LARGE,
            "the request's headers are too large",
        ),
        _ => return None,
    };
    let status = StatusCode::from_u16(status).ok()?;
    let id = uuid::Uuid::now_v7().simple().to_string();
    let mut body = problem(status, code, detail.to_owned(), Vec::new());
    body.request_id = Some(id.clone());
    let body = poem_openapi::types::ToJSON::to_json_string(&body);
    tracing::info!(request_id = %id, status = status.as_u16(), route = "malformed", "request refused before routing");
    metrics::counter!(
        "loupe_http_requests_total",
        "route" => "malformed",
        "method" => "-",
        "status" => status.as_u16().to_string()
    )
    .increment(1);
    let mut extra = HeaderMap::new();
    security_headers(&mut extra, false, hsts);
    let mut out = format!("{status_line}\r\n");
    for line in headers
        .iter()
        .filter(|h| !h.to_ascii_lowercase().starts_with("content-length:"))
    {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("content-type: application/problem+json\r\n");
    out.push_str(&format!("content-length: {}\r\n", body.len()));
    out.push_str(&format!("{REQUEST_ID_HEADER}: {id}\r\n"));
    for (name, value) in &extra {
        if let Ok(value) = value.to_str() {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    out.push_str("\r\n");
    out.push_str(&body);
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_of_public_pages_stay_out_of_the_access_log() {
        assert_eq!(
            loggable_path("/api/v1/public/AbCdEf0123456789"),
            "/api/v1/public/…"
        );
        assert_eq!(
            loggable_path("/api/v1/embed/eyJhbGciOiJIUzI1NiJ9.e30.c2ln"),
            "/api/v1/embed/…"
        );
        for kept in ["/api/v1/queries/q1", "/api/v1/public/", "/health/live"] {
            assert_eq!(loggable_path(kept), kept);
        }
    }
}
