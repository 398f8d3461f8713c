//! HTTPS POSTs for webhooks and Slack: one client with Loupe's roots, no
//! proxy, no redirects, and a resolver that passes the egress rules; the
//! answer classified as sent, worth retrying, or not.
//!
//! The resolver sees only names: a URL whose host is an IP address is
//! connected to without a lookup, so [`post`] checks such an address
//! itself before sending.

use std::error::Error as StdError;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, redirect};
use rustls::pki_types::CertificateDer;
use url::{Host, Url};

use super::SendError;
use super::send::{Sent, Shared, certificate_refusal, error_chain};
use crate::egress::{Egress, ResolveError};

/// The User-Agent of every request.
pub(super) const USER_AGENT: &str = concat!("Loupe/", env!("CARGO_PKG_VERSION"));

/// The most of a refused answer's body quoted in the error.
const QUOTED_BODY_CHARS: usize = 200;

/// The most of a body read to quote from it.
const READ_BODY_BYTES: usize = 4096;

/// The HTTPS client every webhook and Slack send shares.
pub(super) fn client(
    egress: Egress,
    roots: &[CertificateDer<'static>],
    timeout: Duration,
) -> Result<reqwest::Client, String> {
    outbound(roots, timeout)?
        .dns_resolver(Arc::new(EgressResolver { egress }))
        .https_only(true)
        .build()
        .map_err(|e| format!("the HTTPS client for deliveries: {}", error_chain(&e)))
}

/// A client for Loupe's outbound HTTP: rustls on ring trusting `roots`,
/// no proxy, no redirects, `timeout` to connect and for the whole
/// request, Loupe's User-Agent.
pub(crate) fn outbound(
    roots: &[CertificateDer<'static>],
    timeout: Duration,
) -> Result<reqwest::ClientBuilder, String> {
    let mut store = rustls::RootCertStore::empty();
    store.add_parsable_certificates(roots.iter().cloned());
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("the HTTPS client's TLS settings: {e}"))?
    .with_root_certificates(store)
    .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(USER_AGENT))
}

/// Resolves names for the HTTPS client through the egress rules.
struct EgressResolver {
    egress: Egress,
}

impl fmt::Debug for EgressResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EgressResolver")
            .field("egress", &self.egress)
            .finish()
    }
}

impl Resolve for EgressResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let egress = self.egress;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: the client puts the URL's port in.
            let addresses: Vec<SocketAddr> = egress
                .lookup(&host, 0)
                .await
                .map_err(|e| Box::new(e) as Box<dyn StdError + Send + Sync>)?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// A POST to make.
pub(super) struct Post<'a> {
    /// What is posted to, in messages: `the webhook at example.com` (never
    /// a secret URL).
    pub(super) target: String,
    pub(super) url: &'a Url,
    pub(super) headers: HeaderMap,
    pub(super) body: Vec<u8>,
    /// Values that must not appear in an error, should the receiver echo
    /// them in its answer.
    pub(super) secrets: Vec<&'a str>,
}

/// POSTs once; a 2xx answer is sent, anything else an error that says
/// whether a retry may help.
pub(super) async fn post(shared: &Shared, post: Post<'_>) -> Result<Sent, SendError> {
    let target = &post.target;
    match post.url.host() {
        Some(Host::Ipv4(ip)) => shared.egress.check_ip(ip.into()),
        Some(Host::Ipv6(ip)) => shared.egress.check_ip(ip.into()),
        Some(Host::Domain(_)) => Ok(()),
        None => Err("the URL has no host".to_owned()),
    }
    .map_err(|refusal| SendError::permanent(format!("{target}: {refusal}")))?;

    let sent = shared
        .http
        .post(post.url.clone())
        .headers(post.headers)
        .body(post.body)
        .send()
        .await;
    let mut response = match sent {
        Ok(response) => response,
        Err(error) => return Err(request_failed(shared, target, error.without_url())),
    };
    let status = response.status();
    if status.is_success() {
        return Ok(Sent {
            detail: format!("HTTP {}", status.as_u16()),
        });
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(|v| format!(" (Retry-After: {})", quote(v, &post.secrets, 40)))
        .unwrap_or_default();
    let mut body = Vec::new();
    while body.len() < READ_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let text = quote(
        &String::from_utf8_lossy(&body),
        &post.secrets,
        QUOTED_BODY_CHARS,
    );
    let quoted = if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    };
    let message = format!("{target} answered HTTP {status}{retry_after}{quoted}");
    Err(if status.is_redirection() {
        SendError::permanent(format!(
            "{message} (redirects are not followed: give the URL it redirects to)"
        ))
    } else if retryable(status) {
        SendError::transient(message)
    } else {
        SendError::permanent(message)
    })
}

/// Whether an answer with `status` may be different later: a timeout, too
/// many requests, or a server error.
fn retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// The error of a request that got no answer.
fn request_failed(shared: &Shared, target: &str, error: reqwest::Error) -> SendError {
    let mut next: Option<&(dyn StdError + 'static)> = Some(&error);
    while let Some(current) = next {
        if let Some(refusal) = current.downcast_ref::<ResolveError>() {
            return match refusal {
                ResolveError::Refused(message) => {
                    SendError::permanent(format!("{target}: {message}"))
                }
                ResolveError::Unresolved(message) => {
                    SendError::transient(format!("{target}: {message}"))
                }
            };
        }
        next = current.source();
    }
    if let Some(reason) = certificate_refusal(&error) {
        return SendError::permanent(format!("{target}: {reason}"));
    }
    if error.is_timeout() {
        return SendError::transient(format!(
            "{target}: no answer within {} s",
            shared.timeout.as_secs_f64()
        ));
    }
    SendError::transient(format!("{target}: {}", error_chain(&error)))
}

/// `text` as it may appear in an error: secrets masked, control
/// characters as spaces, at most `limit` characters (then `…`).
fn quote(text: &str, secrets: &[&str], limit: usize) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret, "…");
    }
    let flat: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate(&flat, limit)
}

/// `text` cut to at most `limit` characters, the last one `…` when cut.
pub(super) fn truncate(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(limit.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_worth_retrying_are_timeouts_throttling_and_server_errors() {
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(
                retryable(StatusCode::from_u16(code).unwrap_or_default()),
                "{code}"
            );
        }
        for code in [400, 401, 403, 404, 410, 413, 422] {
            assert!(
                !retryable(StatusCode::from_u16(code).unwrap_or_default()),
                "{code}"
            );
        }
    }

    #[test]
    fn a_quoted_answer_hides_secrets_and_stays_short() {
        let echoed = format!("bad token s3cret-value\r\n{}", "x".repeat(500));
        let quoted = quote(&echoed, &["s3cret-value"], 200);
        assert!(!quoted.contains("s3cret"), "{quoted}");
        assert!(quoted.starts_with("bad token …  x"), "{quoted}");
        assert_eq!(quoted.chars().count(), 200);
        assert!(quoted.ends_with('…'));
        assert_eq!(truncate("short", 10), "short");
    }
}
