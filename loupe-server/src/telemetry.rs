//! Logs, and with the `otel` feature, traces exported over OTLP/HTTP.
//!
//! Logs are JSON lines (or text in a terminal) on stderr, one per request
//! with its request id. When `otlp_endpoint` is set, the same spans are
//! also sent to an OpenTelemetry collector: requests (continuing a W3C
//! `traceparent` the client sent), runs (`run`, with `claim`, `execute`,
//! `store` and `finish`, continuing the trace of the request that queued
//! them, whichever process runs them), schedule occurrences, retention
//! passes, and each metadata statement made inside one of them.

use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, LogFormat};

/// Keeps the trace exporter alive; [`Telemetry::shutdown`] flushes it.
#[derive(Debug, Default)]
pub struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still buffered.
    pub fn shutdown(self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("loupe-server: flushing traces: {e}");
        }
    }
}

/// Installs the global subscriber for `config`.
///
/// # Errors
/// When the OTLP exporter cannot be built from `otlp_endpoint`.
pub fn init(config: &Config) -> Result<Telemetry, String> {
    use std::io::IsTerminal;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.server.log_filter))
    };
    let json = match config.server.log_format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = if json {
        fmt.json().with_current_span(true).boxed()
    } else {
        fmt.boxed()
    };
    // Each layer has its own filter: the statement spans need sqlx's
    // statement events, which the logs leave out.
    let registry = tracing_subscriber::registry()
        .with(logs.with_filter(filter()))
        .with(loupe_services::error_tracking::enabled().then(breadcrumbs));
    #[cfg(feature = "otel")]
    if let Some(endpoint) = &config.server.otlp_endpoint {
        let (tracer, provider) = otel::tracer(endpoint)?;
        let spans = tracing_opentelemetry::layer().with_tracer(tracer.clone());
        registry
            .with(spans.with_filter(filter()))
            .with(otel::Statements::new(tracer).with_filter(otel::statement_events()))
            .init();
        loupe_services::trace_context::install(Box::new(otel::Propagator));
        return Ok(Telemetry {
            provider: Some(provider),
        });
    }
    registry.init();
    Ok(Telemetry::default())
}

/// Loupe's own log lines, at `info` and above, as the breadcrumbs of the
/// next error event (error tracking scrubs them); other crates' events,
/// which can quote statements, stay out.
fn breadcrumbs<S>() -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    sentry::integrations::tracing::BreadcrumbLayer::new().with_filter(
        tracing_subscriber::filter::filter_fn(|meta| {
            meta.target().starts_with("loupe") && *meta.level() <= tracing::Level::INFO
        }),
    )
}

#[cfg(feature = "otel")]
mod otel {
    use std::sync::OnceLock;
    use std::time::{Duration, SystemTime};

    use loupe_services::trace_context::{TraceParent, TracePropagator};
    use opentelemetry::trace::{
        Span as _, SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState,
        Tracer as _, TracerProvider as _,
    };
    use opentelemetry::{Context, KeyValue};
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
    use tracing::field::{Field, Visit};
    use tracing::{Dispatch, Event, Level, Subscriber};
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::Context as LayerContext;

    /// The tracer of the spans, and the provider that exports them.
    pub(super) fn tracer(endpoint: &str) -> Result<(SdkTracer, SdkTracerProvider), String> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| format!("`otlp_endpoint`: {e}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name("loupe-server")
                    .build(),
            )
            .build();
        let tracer = provider.tracer("loupe-server");
        Ok((tracer, provider))
    }

    /// What [`Statements`] listens to: sqlx's statement events, logged at
    /// debug when a statement ends.
    pub(super) fn statement_events() -> Targets {
        Targets::new().with_target("sqlx::query", Level::DEBUG)
    }

    /// Reads and sets span contexts through the OpenTelemetry layer, for
    /// the trace context runs carry through the queue.
    pub(super) struct Propagator;

    impl TracePropagator for Propagator {
        fn current(&self) -> Option<TraceParent> {
            let cx = tracing::Span::current().context();
            let span = cx.span();
            let context = span.span_context();
            if !context.is_valid() {
                return None;
            }
            TraceParent::from_parts(
                &context.trace_id().to_string(),
                &context.span_id().to_string(),
                context.trace_flags().to_u8(),
            )
        }

        fn continue_trace(&self, span: &tracing::Span, parent: &TraceParent) {
            let (Ok(trace_id), Ok(span_id)) = (
                TraceId::from_hex(parent.trace_id()),
                SpanId::from_hex(parent.parent_id()),
            ) else {
                return;
            };
            let remote = SpanContext::new(
                trace_id,
                span_id,
                TraceFlags::new(parent.flags()),
                true,
                TraceState::default(),
            );
            if let Err(e) = span.set_parent(Context::new().with_remote_span_context(remote)) {
                tracing::debug!(error = %e, "a span could not continue its trace");
            }
        }
    }

    /// Turns sqlx's statement events (logged when a statement ends, with
    /// its duration) into spans: children of the span the statement ran
    /// in. Statements outside any traced span (the runner polling an empty
    /// queue) make none.
    pub(super) struct Statements {
        tracer: SdkTracer,
        dispatch: OnceLock<tracing::dispatcher::WeakDispatch>,
    }

    impl Statements {
        pub(super) fn new(tracer: SdkTracer) -> Self {
            Self {
                tracer,
                dispatch: OnceLock::new(),
            }
        }
    }

    /// The fields of one statement event.
    #[derive(Default)]
    struct Statement {
        summary: String,
        sql: String,
        elapsed: f64,
        rows_affected: u64,
        rows_returned: u64,
    }

    impl Visit for Statement {
        fn record_str(&mut self, field: &Field, value: &str) {
            match field.name() {
                "summary" => value.clone_into(&mut self.summary),
                "db.statement" => value.trim().clone_into(&mut self.sql),
                _ => {}
            }
        }

        fn record_f64(&mut self, field: &Field, value: f64) {
            if field.name() == "elapsed_secs" {
                self.elapsed = value;
            }
        }

        fn record_u64(&mut self, field: &Field, value: u64) {
            match field.name() {
                "rows_affected" => self.rows_affected = value,
                "rows_returned" => self.rows_returned = value,
                _ => {}
            }
        }

        fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
    }

    impl<S: Subscriber> Layer<S> for Statements {
        fn on_register_dispatch(&self, subscriber: &Dispatch) {
            let _ = self.dispatch.set(subscriber.downgrade());
        }

        fn on_event(&self, event: &Event<'_>, _: LayerContext<'_, S>) {
            let Some(dispatch) = self.dispatch.get().and_then(|d| d.upgrade()) else {
                return;
            };
            // The span the statement ran in, as the registry sees it (this
            // layer's own filter lets no span through).
            let current = dispatch.current_span();
            let Some(id) = current.id() else {
                return;
            };
            let Some(parent) = tracing_opentelemetry::get_otel_context(id, &dispatch) else {
                return;
            };
            if !parent.span().span_context().is_valid() {
                return;
            }
            let mut statement = Statement::default();
            event.record(&mut statement);
            let end = SystemTime::now();
            let start = end
                .checked_sub(Duration::from_secs_f64(statement.elapsed.max(0.0)))
                .unwrap_or(end);
            let text = if statement.sql.is_empty() {
                statement.summary.clone()
            } else {
                statement.sql
            };
            let mut span = self
                .tracer
                .span_builder(statement.summary)
                .with_kind(SpanKind::Client)
                .with_start_time(start)
                .with_attributes([
                    KeyValue::new("db.system", "loupe_metadata"),
                    KeyValue::new("db.statement", text),
                    KeyValue::new(
                        "db.rows_affected",
                        i64::try_from(statement.rows_affected).unwrap_or(i64::MAX),
                    ),
                    KeyValue::new(
                        "db.rows_returned",
                        i64::try_from(statement.rows_returned).unwrap_or(i64::MAX),
                    ),
                ])
                .start_with_context(&self.tracer, &parent);
            span.end_with_timestamp(end);
        }
    }
}
