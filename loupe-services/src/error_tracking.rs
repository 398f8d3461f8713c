//! Error tracking: errors of kind `internal` and `unavailable`, panics and
//! failed runs, sent to a Sentry-compatible endpoint when
//! `error_tracking.dsn` is set (see `docs/operations.md`).
//!
//! A host calls [`init`] once at start-up; without a DSN it returns `None`
//! and every capture below is a check of an empty hub. Requests and runs
//! each get a [`Hub`] of their own ([`request_hub`], [`run_hub`]) whose
//! scope names the request id, the route, the organization and the user
//! (by id), so that events, and panics caught by the panic hook, carry
//! them. An event is grouped by its stable error code and its message with
//! ids and numbers taken out ([`fingerprint`]), so one bug is one issue.
//!
//! What is never sent: email addresses (replaced in every text, see
//! [`scrub`]), passwords and tokens in URLs and `Authorization`-like
//! texts, client addresses, and the SQL of a run (a failed run is sent
//! with its code and, for `internal` and `unavailable`, its message).
//!
//! Envelopes go out through Loupe's own HTTP client (reqwest 0.12 on
//! rustls with ring, as the deliveries'), from one background thread with
//! a bounded queue: a slow or unreachable endpoint drops events rather
//! than slowing requests.

use std::any::Any;
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use loupe_core::{Error, ErrorKind};
use secrecy::ExposeSecret;
use sentry::protocol::{Event, Exception, Level, User, Values};
use sentry::types::Dsn;
use sentry::{ClientOptions, Envelope, Hub, Scope, Transport, TransportFactory, TransportOptions};

use crate::config::{ConfigError, ErrorTrackingSettings};

/// Envelopes waiting to be sent; more are dropped.
const QUEUE: usize = 64;
/// The longest one envelope may take to send.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`ErrorTracking`] waits for queued events when dropped.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// Keeps error tracking on; dropping it sends what is queued (for up to
/// two seconds) and stops the sending thread.
pub struct ErrorTracking {
    _guard: sentry::ClientInitGuard,
}

impl std::fmt::Debug for ErrorTracking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ErrorTracking")
    }
}

/// Checks a DSN: its form, and that it is `https://` unless it points at
/// this machine.
///
/// # Errors
/// Why it cannot be used, in words for the configuration's error.
pub fn parse_dsn(text: &str) -> Result<Dsn, String> {
    let dsn: Dsn = text.trim().parse().map_err(|e| {
        format!("is not a DSN such as https://<key>@sentry.example.com/<project> ({e})")
    })?;
    let loopback = match url::Host::parse(dsn.host()) {
        Ok(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Ok(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Ok(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Err(_) => false,
    };
    if dsn.scheme() == sentry::types::Scheme::Http && !loopback {
        return Err(format!(
            "is plain HTTP to {}: events would cross the network in clear text; use https://",
            dsn.host()
        ));
    }
    Ok(dsn)
}

/// Starts error tracking for this process when `settings` name a DSN:
/// binds the client to the process's main hub and installs the panic
/// hook. `None` without a DSN; nothing else is set up then.
///
/// # Errors
/// When the DSN, its file or the CA file cannot be used.
pub fn init(settings: &ErrorTrackingSettings) -> Result<Option<ErrorTracking>, ConfigError> {
    let Some(dsn) = settings.dsn()? else {
        return Ok(None);
    };
    let dsn = parse_dsn(dsn.expose_secret())
        .map_err(|why| ConfigError::from(format!("`error_tracking.dsn`: {why}")))?;
    let roots =
        crate::delivery::trusted_roots("error_tracking.ca_file", settings.ca_file.as_deref())
            .map_err(ConfigError::from)?;
    let http = http_client(&roots).map_err(ConfigError::from)?;
    let release = settings
        .release
        .clone()
        .unwrap_or_else(|| concat!("loupe@", env!("CARGO_PKG_VERSION")).to_owned());
    let mut options = ClientOptions::new()
        .release(release)
        .environment(settings.environment.clone())
        .sample_rate(settings.sample_rate)
        .send_default_pii(false)
        .attach_stacktrace(false)
        .max_breadcrumbs(50)
        .before_send(|event| Some(scrub(event)))
        .before_breadcrumb(|crumb| Some(scrub_breadcrumb(crumb)))
        .transport(Factory { http });
    options.dsn = Some(dsn);
    let guard = sentry::init(options);
    // Panics are caught where requests and runs are handled; the hook
    // reports them first, in the hub of the request or run.
    Ok(Some(ErrorTracking { _guard: guard }))
}

fn http_client(
    roots: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<reqwest::Client, String> {
    crate::delivery::outbound(roots, SEND_TIMEOUT)?
        .build()
        .map_err(|e| {
            format!(
                "error tracking's HTTP client: {}",
                crate::delivery::error_chain(&e)
            )
        })
}

/// True when this process sends events.
pub fn enabled() -> bool {
    Hub::main().client().is_some_and(|c| c.is_enabled())
}

/// A hub for one request: the main hub's client with a scope naming the
/// request and its route (the API path with `{placeholders}`). `None`
/// when error tracking is off.
pub fn request_hub(request_id: &str, route: &str) -> Option<Arc<Hub>> {
    if !enabled() {
        return None;
    }
    let hub = Arc::new(Hub::new_from_top(Hub::main()));
    hub.configure_scope(|scope| {
        scope.set_tag("request_id", request_id);
        scope.set_tag("route", route);
    });
    Some(hub)
}

/// A hub for one attempt of a run, naming the run, its datasource's kind,
/// its organization and the user who queued it. `None` when error
/// tracking is off.
pub fn run_hub(run_id: &str, kind: &str, org_id: &str, user_id: Option<&str>) -> Option<Arc<Hub>> {
    if !enabled() {
        return None;
    }
    let hub = Arc::new(Hub::new_from_top(Hub::main()));
    hub.configure_scope(|scope| {
        scope.set_tag("run_id", run_id);
        scope.set_tag("datasource_kind", kind);
        set_caller(scope, org_id, user_id);
    });
    Some(hub)
}

/// Names the caller of the current request in its hub's scope (by id).
pub fn set_request_caller(org_id: &str, user_id: Option<&str>) {
    Hub::with_active(|hub| hub.configure_scope(|scope| set_caller(scope, org_id, user_id)));
}

fn set_caller(scope: &mut Scope, org_id: &str, user_id: Option<&str>) {
    scope.set_tag("org_id", org_id);
    scope.set_user(user_id.map(|id| User {
        id: Some(id.to_owned()),
        ..User::default()
    }));
}

/// True for the errors that are Loupe's or its dependencies' to fix, which
/// are the ones sent.
pub fn is_tracked(error: &Error) -> bool {
    matches!(error.kind(), ErrorKind::Internal | ErrorKind::Unavailable)
}

/// Sends `error` in the current hub when it [`is_tracked`].
pub fn capture_error(error: &Error) {
    if !is_tracked(error) {
        return;
    }
    Hub::with_active(|hub| {
        hub.capture_event(event(error.code(), error.kind(), &error_text(error)));
    });
}

/// Sends the final failure of a run in the current hub: its code always,
/// its message only when it is Loupe's or a dependency's (an `internal` or
/// `unavailable` error), since other messages can quote the SQL.
pub fn capture_failed_run(error: &Error) {
    let code = error.code();
    let text = if is_tracked(error) {
        format!("run failed: {}", error_text(error))
    } else {
        format!("run failed: {code}")
    };
    Hub::with_active(|hub| {
        let mut event = event(code, error.kind(), &text);
        event
            .tags
            .insert("run_failed".to_owned(), "true".to_owned());
        hub.capture_event(event);
    });
}

/// The text of a panic's payload.
pub fn panic_text(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// The error a caught panic becomes: `internal`, naming what panicked.
/// The panic hook has reported it already.
pub fn panicked(what: &str, payload: &(dyn Any + Send)) -> Error {
    Error::internal(format!("{what} panicked: {}", panic_text(payload)))
}

/// The text of an error and its causes.
fn error_text(error: &Error) -> String {
    let mut text = error.to_string();
    let mut next = std::error::Error::source(error);
    while let Some(cause) = next {
        let words = cause.to_string();
        if !text.contains(&words) {
            text.push_str(": ");
            text.push_str(&words);
        }
        next = cause.source();
    }
    text
}

fn event(code: &str, kind: ErrorKind, text: &str) -> Event<'static> {
    let mut event = Event {
        level: Level::Error,
        message: Some(text.to_owned()),
        fingerprint: Cow::Owned(
            fingerprint(code, text)
                .into_iter()
                .map(Cow::Owned)
                .collect(),
        ),
        exception: Values::from(vec![Exception {
            ty: code.to_owned(),
            value: Some(text.to_owned()),
            ..Exception::default()
        }]),
        ..Event::default()
    };
    event.tags.insert("code".to_owned(), code.to_owned());
    event
        .tags
        .insert("kind".to_owned(), kind.as_str().to_owned());
    event
}

/// What groups events into one issue: the stable code and, for the codes
/// that cover many causes, the message with ids, numbers and quoted values
/// taken out.
pub fn fingerprint(code: &str, text: &str) -> Vec<String> {
    vec![code.to_owned(), shape(text)]
}

/// `text` with quoted parts, hex ids and numbers replaced by `*`.
fn shape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                for inner in chars.by_ref() {
                    if inner == c {
                        break;
                    }
                }
                out.push('*');
            }
            c if c.is_ascii_hexdigit() => {
                let mut word = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_ascii_alphanumeric() || n == '-' {
                        word.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                let idlike = word.chars().any(|c| c.is_ascii_digit())
                    && word.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
                if idlike {
                    out.push('*');
                } else {
                    out.push_str(&word);
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// An event with email addresses, URL passwords and credentials replaced
/// in every text it carries, and the client's address dropped.
pub fn scrub(mut event: Event<'static>) -> Event<'static> {
    event.fingerprint = Cow::Owned(
        event
            .fingerprint
            .iter()
            .map(|part| Cow::Owned(scrub_text(part)))
            .collect(),
    );
    if let Some(message) = &mut event.message {
        *message = scrub_text(message);
    }
    if let Some(entry) = &mut event.logentry {
        entry.message = scrub_text(&entry.message);
    }
    for exception in &mut event.exception.values {
        if let Some(value) = &mut exception.value {
            *value = scrub_text(value);
        }
    }
    for crumb in &mut event.breadcrumbs.values {
        scrub_crumb_in_place(crumb);
    }
    for value in event.extra.values_mut() {
        scrub_json(value);
    }
    for value in event.tags.values_mut() {
        *value = scrub_text(value);
    }
    if let Some(user) = &mut event.user {
        // Only the id is ever set; anything else came from elsewhere.
        *user = User {
            id: user.id.clone(),
            ..User::default()
        };
    }
    event.request = None;
    event
}

fn scrub_breadcrumb(mut crumb: sentry::Breadcrumb) -> sentry::Breadcrumb {
    scrub_crumb_in_place(&mut crumb);
    crumb
}

fn scrub_crumb_in_place(crumb: &mut sentry::Breadcrumb) {
    if let Some(message) = &mut crumb.message {
        *message = scrub_text(message);
    }
    // The access log's client address is personal data.
    crumb.data.remove("ip");
    for value in crumb.data.values_mut() {
        scrub_json(value);
    }
}

fn scrub_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => *s = scrub_text(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(scrub_json),
        serde_json::Value::Object(map) => map.values_mut().for_each(scrub_json),
        _ => {}
    }
}

/// `text` with email addresses, passwords in URLs (`://user:secret@`) and
/// credentials after `Bearer`, `Key`, `password=`, `token=` and similar
/// replaced by `[scrubbed]`.
pub fn scrub_text(text: &str) -> String {
    let words: Vec<&str> = text.split_inclusive(char::is_whitespace).collect();
    let mut out = String::with_capacity(text.len());
    let mut hide_next = false;
    for word in words {
        let trimmed = word.trim_end();
        let space = &word[trimmed.len()..];
        if hide_next && !trimmed.is_empty() {
            out.push_str("[scrubbed]");
            out.push_str(space);
            hide_next = false;
            continue;
        }
        let lower = trimmed.to_ascii_lowercase();
        if matches!(lower.as_str(), "bearer" | "key" | "basic") {
            hide_next = true;
        }
        out.push_str(&scrub_word(trimmed));
        out.push_str(space);
    }
    out
}

fn scrub_word(word: &str) -> String {
    const SECRET_KEYS: [&str; 6] = [
        "password=",
        "passwd=",
        "token=",
        "api_key=",
        "secret=",
        "sslpassword=",
    ];
    let lower = word.to_ascii_lowercase();
    for key in SECRET_KEYS {
        if let Some(at) = lower.find(key) {
            let start = at + key.len();
            let end = word[start..]
                .find(['&', ' ', ',', ';', ')', '"', '\''])
                .map_or(word.len(), |n| start + n);
            return format!("{}[scrubbed]{}", &word[..start], scrub_word(&word[end..]));
        }
    }
    if let Some(scheme) = word.find("://") {
        let rest = &word[scheme + 3..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            let shown = if userinfo.contains(':') {
                format!("{user}:[scrubbed]")
            } else {
                "[scrubbed]".to_owned()
            };
            return format!("{}{shown}{}", &word[..scheme + 3], &rest[at..]);
        }
        return word.to_owned();
    }
    scrub_emails(word)
}

/// Replaces every `local@domain.tld` in `word` with `[email]`.
fn scrub_emails(word: &str) -> String {
    let bytes = word.as_bytes();
    let mut out = String::with_capacity(word.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'@' {
            i += 1;
            continue;
        }
        let local = bytes[..i]
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(b))
            .count();
        let domain = bytes[i + 1..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || b".-".contains(b))
            .count();
        let domain_text = word[i + 1..i + 1 + domain].trim_end_matches('.');
        if local > 0 && domain_text.contains('.') {
            out.push_str(&word[copied..i - local]);
            out.push_str("[email]");
            copied = i + 1 + domain_text.len();
            i = copied;
        } else {
            i += 1;
        }
    }
    out.push_str(&word[copied..]);
    out
}

/// Sends envelopes from one background thread.
struct Factory {
    http: reqwest::Client,
}

impl TransportFactory for Factory {
    fn create_transport_with_options(&self, options: TransportOptions) -> Arc<dyn Transport> {
        Arc::new(HttpTransport::start(self.http.clone(), options.dsn))
    }
}

enum Task {
    Send(Box<Envelope>),
    Flush(SyncSender<()>),
}

struct HttpTransport {
    queue: SyncSender<Task>,
}

impl HttpTransport {
    fn start(http: reqwest::Client, dsn: Dsn) -> Self {
        let (queue, tasks) = std::sync::mpsc::sync_channel(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("loupe-error-tracking".to_owned())
            .spawn(move || send_loop(&http, &dsn, &tasks));
        if let Err(e) = spawned {
            eprintln!("loupe: error tracking: cannot start its thread: {e}");
        }
        Self { queue }
    }
}

impl Transport for HttpTransport {
    fn send_envelope(&self, envelope: Envelope) {
        match self.queue.try_send(Task::Send(Box::new(envelope))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!("error tracking: the queue is full; an event was dropped");
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn flush(&self, timeout: Duration) -> bool {
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        if self.queue.try_send(Task::Flush(done)).is_err() {
            return false;
        }
        wait.recv_timeout(timeout).is_ok()
    }

    fn shutdown(&self, timeout: Duration) -> bool {
        self.flush(timeout.min(SHUTDOWN_WAIT))
    }
}

fn send_loop(http: &reqwest::Client, dsn: &Dsn, tasks: &Receiver<Task>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loupe: error tracking: cannot start its runtime: {e}");
            return;
        }
    };
    let url = dsn.envelope_api_url().to_string();
    let auth = dsn
        .to_auth(Some(concat!("loupe/", env!("CARGO_PKG_VERSION"))))
        .to_string();
    // The endpoint asked to wait (429 or 503 with Retry-After).
    let mut quiet_until: Option<Instant> = None;
    loop {
        let task = match tasks.recv_timeout(Duration::from_secs(60)) {
            Ok(task) => task,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let envelope = match task {
            Task::Flush(done) => {
                let _ = done.try_send(());
                continue;
            }
            Task::Send(envelope) => envelope,
        };
        if quiet_until.is_some_and(|until| Instant::now() < until) {
            continue;
        }
        let mut body = Vec::new();
        if envelope.to_writer(&mut body).is_err() {
            continue;
        }
        // Built inside the runtime: the request's timeout needs its timer.
        let sent = runtime.block_on(async {
            http.post(&url)
                .header("X-Sentry-Auth", &auth)
                .header("Content-Type", "application/x-sentry-envelope")
                .body(body)
                .send()
                .await
        });
        match sent {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => {
                let status = response.status();
                let wait = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if let Some(seconds) = wait {
                    quiet_until = Some(Instant::now() + Duration::from_secs(seconds.min(3600)));
                }
                tracing::warn!(
                    status = status.as_u16(),
                    "error tracking: the endpoint refused an event"
                );
            }
            Err(e) => {
                tracing::warn!(error = %crate::delivery::error_chain(&e), "error tracking: an event could not be sent");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn emails_urls_and_credentials_are_scrubbed() {
        for (text, shown) in [
            ("user alice@example.com failed", "user [email] failed"),
            ("<bob.smith+x@mail.example.org>", "<[email]>"),
            ("at @ and a@b are kept", "at @ and a@b are kept"),
            (
                "postgres://loupe:hunter2@db.internal:5432/x",
                "postgres://loupe:[scrubbed]@db.internal:5432/x",
            ),
            ("https://token@host/p", "https://[scrubbed]@host/p"),
            (
                "Authorization: Bearer abc.def.ghi",
                "Authorization: Bearer [scrubbed]",
            ),
            ("Authorization: Key lk_123", "Authorization: Key [scrubbed]"),
            (
                "host=db password=s3cret user=x",
                "host=db password=[scrubbed] user=x",
            ),
            ("?api_key=abc&x=1", "?api_key=[scrubbed]&x=1"),
        ] {
            assert_eq!(scrub_text(text), shown, "{text}");
        }
    }

    #[test]
    fn every_text_of_an_event_is_scrubbed_and_the_user_is_only_an_id() {
        let mut event = event(
            "internal",
            ErrorKind::Internal,
            "user ada@acme.test: postgres://u:pw@db/x",
        );
        event.tags.insert("note".into(), "by ada@acme.test".into());
        event
            .extra
            .insert("who".into(), serde_json::json!(["ada@acme.test", 1]));
        let mut crumb = sentry::Breadcrumb {
            message: Some("signed in as ada@acme.test".into()),
            ..sentry::Breadcrumb::default()
        };
        crumb.data.insert("ip".into(), "10.0.0.1".into());
        crumb
            .data
            .insert("path".into(), "/api/v1/users/ada@acme.test".into());
        event.breadcrumbs.values.push(crumb);
        event.user = Some(User {
            id: Some("u1".into()),
            email: Some("ada@acme.test".into()),
            ip_address: Some(sentry::protocol::IpAddress::Auto),
            ..User::default()
        });
        let text = serde_json::to_string(&scrub(event.clone())).unwrap();
        assert!(
            serde_json::to_string(&event)
                .unwrap()
                .contains("ada@acme.test")
        );
        assert!(!text.contains("ada@acme.test"), "{text}");
        assert!(!text.contains(":pw@"), "{text}");
        assert!(!text.contains("10.0.0.1"), "{text}");
        assert!(text.contains("[email]"), "{text}");
        assert!(text.contains("\"u1\""), "{text}");
    }

    proptest::proptest! {
        #[test]
        fn no_text_makes_scrubbing_panic_and_no_address_survives_it(
            before in "\\PC{0,40}",
            local in "[a-z0-9._%+-]{1,20}",
            domain in "[a-z0-9-]{1,15}\\.[a-z]{2,6}",
            after in "\\PC{0,40}",
        ) {
            let address = format!("{local}@{domain}");
            let text = format!("{before} {address} {after}");
            let scrubbed = scrub_text(&text);
            proptest::prop_assert!(!scrubbed.contains(&address), "{scrubbed}");
            let _ = scrub_text(&before);
            let _ = fingerprint("internal", &after);
        }
    }

    #[test]
    fn a_fingerprint_keeps_the_code_and_drops_ids_numbers_and_quoted_values() {
        let a = fingerprint(
            "store.failed",
            "result 0192f3a1-7c2e-7d3b-9a55-0c1d2e3f4a5b: 'x' not found after 3 tries",
        );
        let b = fingerprint(
            "store.failed",
            "result 0192f3a1-0000-7d3b-9a55-ffffffffffff: 'yy' not found after 12 tries",
        );
        assert_eq!(a, b);
        assert_eq!(a[0], "store.failed");
        assert_ne!(
            a,
            fingerprint("store.failed", "result * could not be written")
        );
        assert_ne!(a, fingerprint("io.failed", &b[1]));
    }

    #[test]
    fn only_internal_and_unavailable_errors_are_tracked() {
        assert!(is_tracked(&Error::internal("x")));
        assert!(!is_tracked(&Error::not_found("query", "q1")));
        assert!(!is_tracked(&Error::invalid_input(
            loupe_core::codes::REQUEST_INVALID,
            "x"
        )));
    }

    #[test]
    fn a_dsn_is_https_unless_it_points_at_this_machine() {
        assert!(parse_dsn("https://key@sentry.example.com/42").is_ok());
        assert!(parse_dsn("http://key@127.0.0.1:9000/1").is_ok());
        assert!(parse_dsn("http://key@localhost:9000/1").is_ok());
        let refused = parse_dsn("http://key@sentry.example.com/42").unwrap_err();
        assert!(refused.contains("clear text"), "{refused}");
        let refused = parse_dsn("not a dsn").unwrap_err();
        assert!(refused.contains("is not a DSN"), "{refused}");
    }
}
