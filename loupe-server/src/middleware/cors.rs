//! Cross-origin requests: which browser origins may call the API
//! (`cors.allowed_origins`), with which methods and request headers, and
//! which response headers their scripts may read. Everything is listed:
//! nothing is echoed back from a request, and a preflight asking for
//! anything else is refused. A wildcard origin never goes with credentials
//! (the configuration check refuses it).
//!
//! The lists are the API's: the methods its operations use, the headers
//! its operations read, and the headers its responses carry beyond the
//! ones every browser exposes. `tests/integration/cors.rs` checks them
//! against the API document.

use std::collections::HashSet;

use poem::http::Method;
use poem::middleware::Cors;

use crate::config::CorsConfig;

/// The methods of the API's operations.
pub(crate) const ALLOWED_METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// The request headers the API reads, besides the ones browsers always
/// send: credentials, JSON bodies, conditional requests, W3C trace
/// context (`tracestate` travels with `traceparent`) and a request id.
pub(crate) const ALLOWED_HEADERS: [&str; 8] = [
    "authorization",
    "content-type",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "traceparent",
    "tracestate",
    "x-request-id",
];

/// The response headers a script on an allowed origin may read, besides
/// the CORS-safelisted ones (`Cache-Control`, `Content-Type`, …):
/// revisions and validators, where a created object is, when to retry
/// after a rate limit (`Retry-After`, the only rate-limit header the
/// server sends), a download's file name, and the request id that names a
/// request in the server's log.
pub(crate) const EXPOSED_HEADERS: [&str; 7] = [
    "etag",
    "last-modified",
    "location",
    "retry-after",
    "content-disposition",
    "x-request-id",
    "x-robots-tag",
];

/// The CORS middleware for `settings`. Origins are compared as origins
/// (scheme, host and port; `https://app.example.com/` lists the same
/// origin as `https://app.example.com`), and every answer to a listed
/// origin says `Vary: Origin`, so that a browser cache never hands one
/// origin's answer to another.
pub(crate) fn cors(settings: &CorsConfig) -> Cors {
    let any = settings.allowed_origins.iter().any(|o| o == "*");
    let listed: HashSet<String> = settings
        .allowed_origins
        .iter()
        .filter_map(|o| origin_of(o))
        .collect();
    Cors::new()
        .allow_credentials(settings.allow_credentials)
        .allow_methods(ALLOWED_METHODS)
        .allow_headers(ALLOWED_HEADERS)
        .expose_headers(EXPOSED_HEADERS)
        // With no origin configured, no browser on another origin may
        // call at all.
        .allow_origins_fn(move |origin| {
            any || origin_of(origin).is_some_and(|o| listed.contains(&o))
        })
}

/// `text` as an origin (`https://app.example.com:8443`), if it is one
/// with a scheme, host and port.
fn origin_of(text: &str) -> Option<String> {
    let origin = url::Url::parse(text).ok()?.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_as_origins() {
        assert_eq!(
            origin_of("https://app.example.com/").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            origin_of("HTTPS://App.Example.com:443").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            origin_of("http://app.example.com:8080").as_deref(),
            Some("http://app.example.com:8080")
        );
        assert_eq!(origin_of("null"), None);
        assert_eq!(origin_of("file:///etc/passwd"), None);
    }
}
