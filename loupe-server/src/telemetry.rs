//! Logs, and with the `otel` feature, traces exported over OTLP/HTTP.
//!
//! Logs are JSON lines (or text in a terminal) on stderr, one per request
//! with its request id. When `otlp_endpoint` is set, the same spans are
//! also sent to an OpenTelemetry collector.

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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.server.log_filter));
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
    let registry = tracing_subscriber::registry().with(filter).with(logs);
    #[cfg(feature = "otel")]
    if let Some(endpoint) = &config.server.otlp_endpoint {
        let (layer, provider) = otel(endpoint)?;
        registry.with(layer).init();
        return Ok(Telemetry {
            provider: Some(provider),
        });
    }
    registry.init();
    Ok(Telemetry::default())
}

#[cfg(feature = "otel")]
fn otel<S>(
    endpoint: &str,
) -> Result<(impl Layer<S>, opentelemetry_sdk::trace::SdkTracerProvider), String>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use opentelemetry::trace::TracerProvider;
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| format!("`otlp_endpoint`: {e}"))?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("loupe-server")
                .build(),
        )
        .build();
    let tracer = provider.tracer("loupe-server");
    Ok((tracing_opentelemetry::layer().with_tracer(tracer), provider))
}
