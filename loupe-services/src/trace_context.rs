//! W3C trace context (`traceparent`) carried through the run queue, so that
//! the span of a run in a runner process continues the trace of the request
//! that queued it.
//!
//! A run row keeps the `traceparent` in effect when it was queued
//! ([`current`]); the runner makes its `run` span continue it
//! ([`continue_trace`]). This crate exports no traces and depends on no
//! tracing backend: a host that exports traces installs a
//! [`TracePropagator`] that reads and sets its backend's span contexts.
//! Without one, the `traceparent` a host received with a request
//! ([`scope`]) is what is stored, and runners log its trace id.

use std::fmt;
use std::sync::OnceLock;

/// A valid W3C `traceparent`: version `00`, a non-zero 16-byte trace id, a
/// non-zero 8-byte parent span id and the trace flags, in lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent(String);

impl TraceParent {
    /// Parses a `traceparent` header value; `None` unless it is valid
    /// (<https://www.w3.org/TR/trace-context/#traceparent-header>).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let mut parts = text.split('-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        // Version 00 has exactly four fields; a later version may add
        // some, and its first four are read the same way.
        if version.len() != 2 || !is_hex(version) || version == "ff" {
            return None;
        }
        if version == "00" && parts.next().is_some() {
            return None;
        }
        let valid = |field: &str, len: usize| field.len() == len && is_hex(field);
        if !valid(trace, 32) || !valid(parent, 16) || !valid(flags, 2) {
            return None;
        }
        if trace.bytes().all(|b| b == b'0') || parent.bytes().all(|b| b == b'0') {
            return None;
        }
        Some(Self(format!("00-{trace}-{parent}-{flags}")))
    }

    /// From the parts of a span context: 32 and 16 hex digits and the
    /// flags byte. `None` when the ids are not valid.
    pub fn from_parts(trace_id: &str, span_id: &str, flags: u8) -> Option<Self> {
        Self::parse(&format!("00-{trace_id}-{span_id}-{flags:02x}"))
    }

    /// The header value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The trace id, 32 hex digits.
    pub fn trace_id(&self) -> &str {
        self.0.get(3..35).unwrap_or_default()
    }

    /// The parent span id, 16 hex digits.
    pub fn parent_id(&self) -> &str {
        self.0.get(36..52).unwrap_or_default()
    }

    /// The trace flags (bit 0: sampled).
    pub fn flags(&self) -> u8 {
        self.0
            .get(53..55)
            .and_then(|f| u8::from_str_radix(f, 16).ok())
            .unwrap_or(0)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// How a host that exports traces reads and sets its spans' contexts.
pub trait TracePropagator: Send + Sync + 'static {
    /// The context of the span in effect, when it belongs to a trace.
    fn current(&self) -> Option<TraceParent>;

    /// Makes `span`, just created and not yet entered, a child of `parent`.
    fn continue_trace(&self, span: &tracing::Span, parent: &TraceParent);
}

static PROPAGATOR: OnceLock<Box<dyn TracePropagator>> = OnceLock::new();

/// Installs the process's propagator, once, as a host installs its
/// subscriber. Returns false if one was installed already.
pub fn install(propagator: Box<dyn TracePropagator>) -> bool {
    PROPAGATOR.set(propagator).is_ok()
}

tokio::task_local! {
    static RECEIVED: Option<TraceParent>;
}

/// Runs `work` with the `traceparent` a request came with, for the runs it
/// queues when no propagator knows better.
pub async fn scope<F: Future>(received: Option<TraceParent>, work: F) -> F::Output {
    RECEIVED.scope(received, work).await
}

/// The trace context to store with work queued now: the current span's,
/// when a propagator is installed and the span is traced, else the one the
/// request came with.
pub fn current() -> Option<TraceParent> {
    PROPAGATOR
        .get()
        .and_then(|p| p.current())
        .or_else(|| RECEIVED.try_with(Clone::clone).ok().flatten())
}

/// Makes `span` continue the trace of `parent` (see [`TracePropagator`]);
/// without a propagator, nothing.
pub fn continue_trace(span: &tracing::Span, parent: &TraceParent) {
    if let Some(propagator) = PROPAGATOR.get() {
        propagator.continue_trace(span, parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_valid_traceparents_parse() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(valid);
        assert_eq!(parsed.as_ref().map(TraceParent::as_str), Some(valid));
        let parsed = parsed.unwrap_or_else(|| TraceParent(String::new()));
        assert_eq!(parsed.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed.parent_id(), "00f067aa0ba902b7");
        assert_eq!(parsed.flags(), 1);
        // A later version's extra fields are ignored; stored as version 00.
        assert_eq!(
            TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-next")
                .map(|t| t.0),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00".to_owned())
        );
        for invalid in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
        ] {
            assert_eq!(TraceParent::parse(invalid), None, "{invalid:?}");
        }
    }
}
