//! Telemetry for Skiff: logging, OpenTelemetry tracing and W3C trace-context
//! propagation, set up the same way by every Skiff binary.
//!
//! Skiff runs request paths that cross processes (gateway → activator →
//! function instance, broker → trigger → function). This crate gives all of
//! them one consistent setup:
//!
//! * [`init`] installs the global `tracing` subscriber: a compact log layer
//!   on stderr filtered by an `EnvFilter` and — only when an OTLP endpoint is
//!   configured — a `tracing-opentelemetry` layer exporting spans at INFO and
//!   above (whatever `RUST_LOG` says) through a batch processor. It returns a [`Telemetry`] handle whose
//!   [`Telemetry::shutdown`] flushes before exit.
//! * [`extract_context`] / [`inject_context`] move W3C `traceparent` /
//!   `tracestate` through `http::HeaderMap`s; [`set_parent_from_headers`],
//!   [`inject_span`], [`trace_id`] and [`traceresponse`] do the same for
//!   `tracing` spans.
//! * [`conventions`] holds the attribute keys and span-name helpers, so all
//!   crates name things alike.
//!
//! # Configuration
//!
//! [`TelemetryOptions`] fields override the standard environment variables:
//!
//! | Setting | Option | Environment | Default |
//! |---|---|---|---|
//! | service name | `service_name` | `OTEL_SERVICE_NAME` | argument of [`init`] |
//! | endpoint | `endpoint` | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, then `OTEL_EXPORTER_OTLP_ENDPOINT` | none: no export |
//! | protocol | `protocol` | `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, then `OTEL_EXPORTER_OTLP_PROTOCOL` | `http/protobuf` |
//! | sampler | `sampler_ratio` (parent-based ratio) | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | `parentbased_always_on` |
//! | log filter (stderr only) | `log_filter` | `RUST_LOG` | `info` |
//!
//! For http/protobuf, a generic endpoint (the option or
//! `OTEL_EXPORTER_OTLP_ENDPOINT`) gets `/v1/traces` appended unless its path
//! already ends with it; `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` and grpc
//! endpoints are used as given. Other exporter variables (headers, timeout,
//! compression) and `OTEL_RESOURCE_ATTRIBUTES` are honoured by
//! `opentelemetry-otlp` / `opentelemetry_sdk` themselves.
//!
//! # Example
//!
//! ```no_run
//! # fn main() -> Result<(), skiff_tracing::TelemetryError> {
//! let telemetry = skiff_tracing::init("skiff", skiff_tracing::TelemetryOptions::default())?;
//! // ... in a request handler:
//! # let request_headers = http::HeaderMap::new();
//! let span = tracing::info_span!("request", otel.kind = "server");
//! skiff_tracing::set_parent_from_headers(&span, &request_headers);
//! let mut response_headers = http::HeaderMap::new();
//! if let Some(value) = skiff_tracing::traceresponse(&span) {
//!     response_headers.insert(skiff_tracing::TRACERESPONSE_HEADER, value);
//! }
//! // ... before exit:
//! telemetry.shutdown();
//! # Ok(())
//! # }
//! ```

mod config;
mod error;
mod filter;
mod init;
mod propagation;

pub mod conventions;

pub use config::{Protocol, TelemetryOptions};
pub use error::TelemetryError;
pub use init::{Telemetry, init};
pub use propagation::{
    TRACERESPONSE_HEADER, extract_context, inject_context, inject_span, set_parent_from_headers, trace_id,
    traceresponse,
};

/// A request extension the platform sets on a request that waited for its pod to start (a
/// cold start), so that the runtime's invocation span says `faas.coldstart = true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColdStart;
